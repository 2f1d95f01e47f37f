//! Reading YAML with positions: the shared walker behind workflow files and the roster.
//!
//! Files a secretary edits are read into a tree of nodes that remember their line and
//! column, so that every error can point at the place to fix. This module never panics on
//! input and reports problems as [`Diagnostic`]s instead of stopping at the first one.

use std::fmt;

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

/// A YAML node with its position.
pub type Node = MarkedYamlOwned;

/// A place in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.col, self.message)
    }
}

/// Collects diagnostics while a file is walked.
#[derive(Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.0.push(Diagnostic {
            pos,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The diagnostics in file order.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.0.sort_by_key(|d| d.pos);
        self.0.dedup();
        self.0
    }
}

/// Parses one YAML document. An empty file is an empty mapping's absence: `Ok(None)`.
pub fn parse(source: &str) -> Result<Option<Node>, Diagnostic> {
    match Node::load_from_str(source) {
        Ok(mut docs) => Ok(if docs.is_empty() {
            None
        } else {
            Some(docs.swap_remove(0))
        }),
        Err(e) => Err(Diagnostic {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: format!("YAML syntax: {}", e.info()),
        }),
    }
}

/// Where a node starts.
pub fn pos(node: &Node) -> Pos {
    Pos {
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

/// The text of a scalar node (numbers and booleans in their written form), or `None`.
pub fn scalar(node: &Node) -> Option<String> {
    match &node.data {
        YamlDataOwned::Value(s) => Some(match s {
            ScalarOwned::String(s) => s.clone(),
            ScalarOwned::Integer(i) => i.to_string(),
            ScalarOwned::FloatingPoint(f) => f.to_string(),
            ScalarOwned::Boolean(b) => b.to_string(),
            ScalarOwned::Null => return None,
        }),
        YamlDataOwned::Representation(s, ..) => Some(s.clone()),
        _ => None,
    }
}

/// Whether the node is an explicit or implicit null (`key:` with nothing after it).
pub fn is_null(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Value(ScalarOwned::Null))
}

/// A scalar as a string, or an error at the node.
pub fn string(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<String> {
    let text = scalar(node);
    if text.is_none() {
        diags.error(pos(node), format!("{what} must be a text value"));
    }
    text
}

/// A boolean scalar, or an error at the node.
pub fn boolean(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<bool> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(*b),
        _ => {
            diags.error(pos(node), format!("{what} must be true or false"));
            None
        }
    }
}

/// A non-negative integer scalar, or an error at the node.
pub fn integer(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<u64> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Integer(i)) if *i >= 0 => Some(*i as u64),
        _ => {
            diags.error(
                pos(node),
                format!("{what} must be a whole number, 0 or more"),
            );
            None
        }
    }
}

/// The items of a sequence; a single scalar counts as a sequence of one.
pub fn list<'a>(node: &'a Node, what: &str, diags: &mut Diagnostics) -> Vec<&'a Node> {
    match &node.data {
        YamlDataOwned::Sequence(items) => items.iter().collect(),
        YamlDataOwned::Value(_) | YamlDataOwned::Mapping(_) if !is_null(node) => vec![node],
        _ => {
            diags.error(pos(node), format!("{what} must be a list"));
            Vec::new()
        }
    }
}

/// A mapping's entries with string keys, checked against the keys it may have.
///
/// Unknown keys are reported (with a "did you mean" hint) and left out.
pub fn mapping<'a>(
    node: &'a Node,
    what: &str,
    allowed: &[&str],
    diags: &mut Diagnostics,
) -> Option<Fields<'a>> {
    let YamlDataOwned::Mapping(map) = &node.data else {
        diags.error(
            pos(node),
            format!("{what} must be a mapping of keys to values"),
        );
        return None;
    };
    let mut entries = Vec::with_capacity(map.len());
    for (key, value) in map {
        let Some(name) = scalar(key) else {
            diags.error(pos(key), format!("keys in {what} must be text"));
            continue;
        };
        if !allowed.is_empty() && !allowed.contains(&name.as_str()) {
            let hint = did_you_mean(&name, allowed.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            diags.error(pos(key), format!("unknown key `{name}` in {what}{hint}"));
            continue;
        }
        entries.push(Entry {
            key: name,
            key_pos: pos(key),
            value,
        });
    }
    // Block mappings carry no start mark of their own: use their first key.
    let at = match pos(node) {
        Pos { line: 0, .. } => entries
            .first()
            .map_or(Pos { line: 1, col: 1 }, |e| e.key_pos),
        p => p,
    };
    Some(Fields { entries, at })
}

/// One key and its value.
pub struct Entry<'a> {
    pub key: String,
    pub key_pos: Pos,
    pub value: &'a Node,
}

/// The entries of a mapping.
pub struct Fields<'a> {
    pub entries: Vec<Entry<'a>>,
    /// Where the mapping starts, for "missing key" errors.
    pub at: Pos,
}

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.value)
    }

    pub fn key_pos(&self, key: &str) -> Pos {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map_or(self.at, |e| e.key_pos)
    }

    /// A required key's value, or an error at the mapping.
    pub fn require(&self, key: &str, what: &str, diags: &mut Diagnostics) -> Option<&'a Node> {
        let value = self.get(key);
        if value.is_none() {
            diags.error(self.at, format!("{what} needs `{key}`"));
        }
        value
    }
}

/// The closest candidate within edit distance 2, for hints.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// All the problems of one file.
#[derive(Debug)]
pub struct Invalid(pub Vec<Diagnostic>);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let node = parse("a: 1\nbb:\n  c: x\n").unwrap().unwrap();
        let mut diags = Diagnostics::default();
        let fields = mapping(&node, "file", &["a"], &mut diags).unwrap();
        assert_eq!(fields.entries.len(), 1);
        assert_eq!(diags.0[0].pos, Pos { line: 2, col: 1 });
        assert_eq!(fields.key_pos("a"), Pos { line: 1, col: 1 });
        let err = parse("a: [1, 2\n").unwrap_err();
        assert!(err.message.starts_with("YAML syntax"), "{err}");
    }

    #[test]
    fn hints_close_names() {
        assert_eq!(
            did_you_mean("adpot", ["adopt", "rejected"].into_iter()),
            Some("adopt")
        );
        assert_eq!(did_you_mean("zzzzzz", ["adopt"].into_iter()), None);
    }
}
