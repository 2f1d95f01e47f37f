//! Workflow definitions: the YAML format a secretary writes, read and validated.
//!
//! `load` turns one file into a [`Workflow`] or into every [`Diagnostic`] it has, each with
//! line and column. A workflow is versioned by the hash of its source, so running items can
//! keep the version they started with. Pure: no I/O beyond the text handed in, no clock.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::roster::Roster;
use crate::rules::election::{Base, ElectionTie, Majority, Method, Then};
use crate::rules::{Rule, Verdict};
pub use crate::yaml::Invalid;
use crate::yaml::{self, Diagnostic, Diagnostics, Pos};

mod graph;
pub use graph::{MailKind, TemplateUse};
mod read;
mod values;

use read::read_workflow;
pub use values::{Duration, Schedule, format_number};

/// One workflow file, validated.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub title: String,
    /// Hex SHA-256 of the source, first 16 digits: the version running items pin.
    pub version: String,
    pub source: String,
    pub inputs: BTreeMap<String, Input>,
    pub start: String,
    /// Opens a new item at every occurrence (5-field crontab, council time zone).
    pub schedule: Option<Schedule>,
    pub stages: BTreeMap<String, Stage>,
    /// The item's text, one authentic version per language, when the workflow has one.
    pub documents: Option<Documents>,
    /// What `validate` says without refusing the file: a language of the roster's
    /// delegates without a text, say.
    pub warnings: Vec<Diagnostic>,
}

/// The text an item carries (a draft regulation, say): one authentic version in each of
/// `languages`, stored by its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documents {
    pub languages: Vec<String>,
    /// The comment period: this stage waits until every language has a version before
    /// its notice goes and its `after` starts, and a version replaced while the item is
    /// in it starts both again.
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub kind: InputKind,
    pub required: bool,
    /// Used when the item is started without this input.
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Text,
    Url,
    Number,
    Date,
}

/// A stage: what happens on entry, and how the item leaves it.
#[derive(Debug, Clone, Default)]
pub struct Stage {
    pub register: Option<RegisterSpec>,
    pub notify: Vec<Notify>,
    pub ballot: Option<BallotSpec>,
    /// Wait before following `next`: a duration or the next cron occurrence.
    pub wait: Option<Wait>,
    pub next: Option<String>,
    pub outcomes: BTreeMap<Verdict, String>,
    pub on_signal: Option<OnSignal>,
    /// The item ends here with this outcome.
    pub end: Option<String>,
    /// The council meets in this stage: attendance is taken, the agenda's decisions are
    /// recorded in the room, and the item goes on to `next` when the chair closes it.
    pub meeting: bool,
    /// Members may propose agenda points from the link in their mail while here.
    pub proposals: bool,
    /// Each amendment to the item's text is put to a ballot of this kind here, one after
    /// the other, furthest-reaching first; then the item goes on to `next`.
    pub amendments: Option<BallotSpec>,
    /// Members nominate candidates here (or the secretariat records them); the item goes on
    /// to `next` when the secretariat confirms the list of candidates.
    pub nominations: Option<Nominations>,
}

/// A stage that takes nominations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nominations {
    /// Nominations close this long after the stage is entered; the list is confirmed then.
    pub closes_after: Option<Duration>,
}

/// How an election is decided: its ballot's choices are the candidates confirmed in a
/// nominations stage (and `blank`, when allowed), and each round is counted by
/// `rules::election`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionSpec {
    /// Each voter marks up to this many candidates.
    pub seats: u32,
    pub majority: Majority,
    /// The majority of the last round, when it differs (a plurality in a run-off).
    pub last_round: Option<Majority>,
    pub base: Base,
    /// Who stands in a further round.
    pub runoff: Then,
    /// Most rounds, the first included.
    pub rounds: u32,
    /// A tie is drawn by lot (else a new round between the tied).
    pub lot: bool,
    /// A voter may cast a blank ballot (counted apart).
    pub blank: bool,
    /// A secret ballot: encrypted in the voter's browser, opened by these trustees.
    pub secret: Option<Trustees>,
}

/// The mail to the trustees' delegates: their link, when the ceremony starts and when a
/// round's tally waits for their decryption.
pub const TRUSTEE_CALL: &str = "trustee-call";

/// The trustees of a secret ballot: members whose delegates hold the shares of its key,
/// `needed` of whom open each round's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trustees {
    pub members: Vec<String>,
    pub needed: u32,
}

impl ElectionSpec {
    /// The counting method of round `round` (from 1); a lot is drawn from `seed`.
    pub fn method(&self, round: u32, seed: u64) -> Method {
        let last = round >= self.rounds;
        Method {
            majority: self.last_round.filter(|_| last).unwrap_or(self.majority),
            base: self.base,
            then: self.runoff,
            tie: if self.lot {
                ElectionTie::Lot(seed)
            } else {
                ElectionTie::Round
            },
        }
    }
}

#[derive(Debug, Clone)]
pub enum Wait {
    After(Duration),
    Schedule(Box<Schedule>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub to: Audience,
    pub template: String,
}

/// Who receives a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Every delegate of every member.
    Members,
    /// The voting delegate of each member (head, or first delegate).
    Heads,
    /// The secretariat address of the roster.
    Secretariat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterSpec {
    pub series: String,
    /// `CPCC/REG/{{year}}/{{seq:03}}`.
    pub number: String,
}

/// A text of the council in one or more languages: `Adopt it?`, or `{ ar: …, en: …, fr: … }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Texts {
    /// The text of the default language (`en`), or of the first language given, or the
    /// one text: what the log and the API keep, and what a language without one reads.
    pub default: String,
    /// Each language's text, when given per language.
    pub by_language: BTreeMap<String, String>,
}

impl Texts {
    pub fn one(text: impl Into<String>) -> Texts {
        Texts {
            default: text.into(),
            by_language: BTreeMap::new(),
        }
    }

    /// The text for a reader of `language`.
    pub fn get(&self, language: &str) -> &str {
        self.by_language
            .get(language)
            .map_or(self.default.as_str(), String::as_str)
    }
}

#[derive(Debug, Clone)]
pub struct BallotSpec {
    pub question: Texts,
    /// The choices' ids, as rules and votes name them.
    pub choices: Vec<String>,
    /// What readers see for each choice, when the workflow gives labels.
    pub labels: BTreeMap<String, Texts>,
    pub closes_after: Duration,
    pub quorum: Option<Rule>,
    pub pass: Rule,
    pub close: Close,
    pub template: String,
    pub remind: Vec<Duration>,
    pub remind_template: String,
    /// A recorded vote: who voted what is shown to the secretariat.
    pub recorded: bool,
    pub tie: Option<TieRule>,
    pub receipt_template: String,
    /// Taken in a meeting of the council (roll-call or show of hands) rather than by mail:
    /// no ballot mail, no deadline; it closes when the secretariat records the vote.
    pub in_session: bool,
    /// An election: its choices are the candidates, and `election` counts it (`pass` is
    /// then `cast >= 0`, never read).
    pub election: Option<ElectionSpec>,
}

/// When a ballot closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    AtDeadline,
    WhenAllVoted,
    WhenDecided,
}

#[derive(Debug, Clone)]
pub struct OnSignal {
    pub name: String,
    /// The signal by which a member takes its own back (an instrument withdrawn).
    pub withdrawal: Option<String>,
    /// Over `count` (members whose signal stands, and anonymous ones) and
    /// `members`/`eligible`.
    pub until: Rule,
    pub next: String,
}

impl Workflow {
    /// The ballot of a stage, if it has one (its amendments' ballots, in an amendments
    /// stage; its rounds, in an election).
    pub fn ballot(&self, stage: &str) -> Option<&BallotSpec> {
        self.stages
            .get(stage)
            .and_then(|s| s.ballot.as_ref().or(s.amendments.as_ref()))
    }

    /// Whether members may propose amendments to the text: in its comment period, when a
    /// stage puts them to the vote.
    pub fn takes_amendments(&self, stage: &str) -> bool {
        self.stages.values().any(|s| s.amendments.is_some())
            && self
                .documents
                .as_ref()
                .is_some_and(|d| d.comment.as_deref() == Some(stage))
    }
}

/// What the validator knows of the world outside the file.
pub struct Known<'a> {
    /// Template names found in the templates folder; `None` skips the check (stored versions).
    pub templates: Option<&'a BTreeSet<String>>,
    /// The roster, for weight attributes, groups and the chair; `None` skips those checks.
    pub roster: Option<&'a Roster>,
}

/// What breaks a tie (`yes == no`) once the quorum is met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TieRule {
    /// The motion fails.
    Fails,
    /// The chair's own vote decides.
    Chair(String),
    /// Drawn by lot, from the item's event chain (so it replays).
    Lot,
}

/// Reads and validates one workflow file.
pub fn load(source: &str, known: &Known) -> Result<Workflow, Invalid> {
    let mut diags = Diagnostics::default();
    let root = match yaml::parse(source) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(Invalid(vec![Diagnostic {
                pos: Pos { line: 1, col: 1 },
                message: "empty workflow file".into(),
            }]));
        }
        Err(d) => return Err(Invalid(vec![d])),
    };
    let workflow = read_workflow(source, &root, known, &mut diags);
    match workflow {
        Some(mut w) if diags.is_empty() => {
            w.warnings = yaml::sorted(diags.warnings);
            Ok(w)
        }
        _ => Err(Invalid(diags.into_sorted())),
    }
}

/// The version of a workflow source: its content hash.
pub fn version_of(source: &str) -> String {
    hex::encode(&Sha256::digest(source.as_bytes())[..8])
}

/// The workflows the daemon knows: the current version of each, and older versions that
/// running items still pin.
#[derive(Debug, Default, Clone)]
pub struct Definitions {
    versions: std::collections::HashMap<String, std::sync::Arc<Workflow>>,
    current: BTreeMap<String, String>,
}

impl Definitions {
    /// Adds a workflow as the current version of its name.
    pub fn insert_current(&mut self, w: Workflow) {
        self.current.insert(w.name.clone(), w.version.clone());
        self.versions
            .insert(w.version.clone(), std::sync::Arc::new(w));
    }

    /// A new set where `workflows` are the current versions; every version known so far
    /// stays, for the items that run on it.
    pub fn with_current(&self, workflows: Vec<Workflow>) -> Definitions {
        let mut next = Definitions {
            versions: self.versions.clone(),
            current: BTreeMap::new(),
        };
        for w in workflows {
            next.insert_current(w);
        }
        next
    }

    /// Adds an older version, kept for the items that started on it.
    pub fn insert_old(&mut self, w: Workflow) {
        self.versions
            .entry(w.version.clone())
            .or_insert_with(|| std::sync::Arc::new(w));
    }

    pub fn current(&self, name: &str) -> Option<&std::sync::Arc<Workflow>> {
        self.versions.get(self.current.get(name)?)
    }

    pub fn version(&self, version: &str) -> Option<&std::sync::Arc<Workflow>> {
        self.versions.get(version)
    }

    pub fn all_current(&self) -> impl Iterator<Item = &std::sync::Arc<Workflow>> {
        self.current.values().filter_map(|v| self.versions.get(v))
    }

    pub fn is_current(&self, version: &str) -> bool {
        self.current.values().any(|v| v == version)
    }
}
