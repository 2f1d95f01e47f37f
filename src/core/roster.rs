//! The council's roster: members, their voting rights and their delegates.
//!
//! Read from `config/council.yaml` with the same positioned errors as workflow files.

use std::collections::{BTreeMap, BTreeSet};

use crate::yaml::{self, Diagnostics, Invalid, Node};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    pub council: String,
    pub secretariat: Delegate,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub name: String,
    /// False while suspended (e.g. in arrears): no ballot, counted nowhere.
    pub voting_right: bool,
    pub attributes: BTreeMap<String, u64>,
    pub groups: Vec<String>,
    pub delegates: Vec<Delegate>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delegate {
    pub name: String,
    pub email: String,
    pub language: String,
    #[serde(default)]
    pub head: bool,
}

impl Member {
    /// The delegate who casts the member's vote: the head, or the first delegate.
    pub fn voter(&self) -> Option<(usize, &Delegate)> {
        self.delegates
            .iter()
            .enumerate()
            .find(|(_, d)| d.head)
            .or_else(|| self.delegates.iter().enumerate().next())
    }
}

impl Roster {
    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Reads a roster file's text. Whether a delegate's email is an address is for the
    /// caller to say (the shell asks its mail library, which is what will send to it).
    pub fn parse(source: &str, is_address: fn(&str) -> bool) -> Result<Roster, Invalid> {
        let mut d = Diagnostics::default();
        let root = match yaml::parse(source) {
            Ok(Some(root)) => root,
            Ok(None) => {
                return Err(Invalid(vec![yaml::Diagnostic {
                    pos: yaml::Pos { line: 1, col: 1 },
                    message: "empty roster".into(),
                }]));
            }
            Err(e) => return Err(Invalid(vec![e])),
        };
        let roster = read(&root, is_address, &mut d);
        match roster {
            Some(r) if d.is_empty() => Ok(r),
            _ => Err(Invalid(d.into_sorted())),
        }
    }
}

fn read(root: &Node, is_address: fn(&str) -> bool, d: &mut Diagnostics) -> Option<Roster> {
    let f = yaml::mapping(
        root,
        "the roster",
        &["council", "secretariat", "members"],
        d,
    )?;
    let council = f
        .require("council", "the roster", d)
        .and_then(|n| yaml::string(n, "`council`", d));
    let secretariat = match f.get("secretariat") {
        Some(n) => read_delegate(n, is_address, d),
        None => Some(Delegate {
            name: "Secretariat".into(),
            email: "secretariat@example.org".into(),
            language: "en".into(),
            head: false,
        }),
    };
    let mut members = Vec::new();
    let mut ids = BTreeSet::new();
    for node in yaml::list(f.require("members", "the roster", d)?, "`members`", d) {
        if let Some(m) = read_member(node, is_address, d) {
            if !ids.insert(m.id.clone()) {
                d.error(
                    yaml::pos(node),
                    format!("member `{}` is listed twice", m.id),
                );
            }
            members.push(m);
        }
    }
    Some(Roster {
        council: council?,
        secretariat: secretariat?,
        members,
    })
}

fn read_member(node: &Node, is_address: fn(&str) -> bool, d: &mut Diagnostics) -> Option<Member> {
    let f = yaml::mapping(
        node,
        "a member",
        &[
            "id",
            "name",
            "voting_right",
            "attributes",
            "groups",
            "delegates",
        ],
        d,
    )?;
    let id = f
        .require("id", "a member", d)
        .and_then(|n| yaml::string(n, "`id`", d).map(|id| (id, n)))
        .map(|(id, n)| {
            if let Some(problem) = id_problem(&id) {
                d.error(yaml::pos(n), format!("member id {id:?} {problem}"));
            }
            id
        });
    let name = f
        .require("name", "a member", d)
        .and_then(|n| yaml::string(n, "`name`", d));
    let voting_right = f
        .get("voting_right")
        .map_or(Some(true), |n| yaml::boolean(n, "`voting_right`", d));
    let mut attributes = BTreeMap::new();
    if let Some(a) = f
        .get("attributes")
        .and_then(|n| yaml::mapping(n, "`attributes`", &[], d))
    {
        for e in &a.entries {
            if let Some(v) = yaml::integer(e.value, &format!("attribute `{}`", e.key), d) {
                attributes.insert(e.key.clone(), v);
            }
        }
    }
    let groups = f
        .get("groups")
        .map(|n| {
            yaml::list(n, "`groups`", d)
                .into_iter()
                .filter_map(|g| yaml::string(g, "a group", d))
                .collect()
        })
        .unwrap_or_default();
    let delegates: Vec<Delegate> = f
        .get("delegates")
        .map(|n| {
            yaml::list(n, "`delegates`", d)
                .into_iter()
                .filter_map(|x| read_delegate(x, is_address, d))
                .collect()
        })
        .unwrap_or_default();
    if delegates.is_empty() {
        d.error(f.at, "a member needs at least one delegate to receive mail");
    }
    Some(Member {
        id: id?,
        name: name?,
        voting_right: voting_right?,
        attributes,
        groups,
        delegates,
    })
}

/// Longest member id: ids are short codes (`TUR`), and go into every ballot token.
const MAX_ID: usize = 64;

/// What is wrong with a member id, if anything. Ids go into signed ballot tokens (whose
/// fields are separated by newlines), mail ids, URLs and logs: no control characters or
/// spaces, which would pass `validate` and break one of those later.
fn id_problem(id: &str) -> Option<String> {
    if id.is_empty() {
        Some("is empty".into())
    } else if id.chars().count() > MAX_ID {
        Some(format!("is longer than {MAX_ID} characters"))
    } else {
        id.chars()
            .find(|c| c.is_control() || c.is_whitespace())
            .map(|c| format!("contains {c:?}: use letters, digits, `-` or `_`"))
    }
}

fn read_delegate(
    node: &Node,
    is_address: fn(&str) -> bool,
    d: &mut Diagnostics,
) -> Option<Delegate> {
    let f = yaml::mapping(
        node,
        "a delegate",
        &["name", "email", "language", "head"],
        d,
    )?;
    let name = f
        .require("name", "a delegate", d)
        .and_then(|n| yaml::string(n, "`name`", d));
    let email_node = f.require("email", "a delegate", d)?;
    let email = yaml::string(email_node, "`email`", d)?;
    if !is_address(&email) {
        d.error(
            yaml::pos(email_node),
            format!("`{email}` is not an email address"),
        );
    }
    let language = f
        .get("language")
        .map_or(Some("en".to_string()), |n| yaml::string(n, "`language`", d));
    let head = f
        .get("head")
        .map_or(Some(false), |n| yaml::boolean(n, "`head`", d));
    Some(Delegate {
        name: name?,
        email,
        language: language?,
        head: head?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell asks its mail library; here, an address is anything with an `@`.
    fn has_at(email: &str) -> bool {
        email.contains('@')
    }

    #[test]
    fn sample_roster_reads() {
        let r = Roster::parse(include_str!("../../config/council.yaml"), has_at).unwrap();
        assert_eq!(r.members.len(), 57);
        assert_eq!(r.members.iter().filter(|m| !m.voting_right).count(), 2);
        let kaz = r.member("KAZ").unwrap();
        assert_eq!(
            kaz.voter().unwrap().0,
            0,
            "no head: the first delegate votes"
        );
    }

    #[test]
    fn errors_point_at_the_field() {
        let err = Roster::parse("council: X\nmembers:\n  - id: A\n    name: A\n    voting_right: maybe\n    delegates: [{name: n, email: bad}]\n", has_at).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("5:19: `voting_right` must be true or false"),
            "{text}"
        );
        assert!(text.contains("is not an email address"), "{text}");
    }

    #[test]
    fn member_ids_with_control_characters_or_spaces_are_refused() {
        let roster = |id: &str| {
            format!(
                "council: X\nmembers:\n  - id: {id}\n    name: A\n    delegates: [{{name: n, email: a@b.org}}]\n"
            )
        };
        for (id, says) in [
            (r#""A\nB""#, r#"3:9: member id "A\nB" contains '\n'"#),
            (r#""A\tB""#, r#"3:9: member id "A\tB" contains '\t'"#),
            (r#""A\u0000""#, r#"3:9: member id "A\0" contains '\0'"#),
            (r#""A B""#, r#"3:9: member id "A B" contains ' '"#),
            (r#""""#, r#"3:9: member id "" is empty"#),
        ] {
            let text = Roster::parse(&roster(id), has_at).unwrap_err().to_string();
            assert!(text.contains(says), "{id}: {text}");
        }
        assert!(Roster::parse(&roster("TUR-2_b"), has_at).is_ok());
        let long = "X".repeat(MAX_ID + 1);
        assert!(Roster::parse(&roster(&long), has_at).is_err());
    }

    #[test]
    fn a_roster_key_given_twice_is_refused() {
        let text = "council: X\nmembers:\n  - id: A\n    name: A\n    voting_right: true\n    voting_right: false\n    delegates: [{name: n, email: a@b.org}]\n";
        let err = Roster::parse(text, has_at).unwrap_err().to_string();
        assert!(
            err.contains("6:5: key `voting_right` is given twice in this mapping (first at 5:5)"),
            "{err}"
        );
    }
}
