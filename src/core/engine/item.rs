//! The state of one item: its stage, its ballots (with their electorates and votes), its
//! signals and its pending timers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Timer;
use crate::rules::Verdict;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub workflow: String,
    /// The definition version the item runs on, for its whole life.
    pub version: String,
    pub inputs: BTreeMap<String, String>,
    pub started_at: DateTime<Utc>,
    pub stage: String,
    pub entered_at: DateTime<Utc>,
    pub status: Status,
    pub outcome: Option<String>,
    pub register_number: Option<String>,
    pub ballots: Vec<Ballot>,
    pub signals: Vec<Signal>,
    /// Pending timers by name, with their due time.
    pub timers: BTreeMap<Timer, DateTime<Utc>>,
    /// A fact the engine asked for and waits on before the stage goes on.
    pub awaiting: Option<Awaiting>,
    /// Number of events in the item's log, and the hash of the last one (set by the store,
    /// which keeps them apart from the rest: see `store::encode_item`).
    #[serde(skip)]
    pub seq: u64,
    #[serde(skip)]
    pub head: String,
    /// A session of the council: its agenda and its meeting (absent for other items).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meeting: Option<Meeting>,
    /// The item's text: each language's versions, the current one last.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub documents: BTreeMap<String, Vec<Version>>,
    /// The amendments proposed to the text, by number (from 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amendments: Vec<Amendment>,
    /// An election's candidates, in the order they were nominated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// The candidates the secretariat confirmed, in the ballot paper's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub standing: Vec<String>,
    /// Those elected so far, round after round, best placed first within a round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elected: Vec<String>,
    /// A secret election's trustees and the key they make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<Trust>,
}

/// The trustees of a secret election, in the workflow's order (trustee `j`, from 1, is the
/// `j`-th), their key ceremony as it stands, and the election key it makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    pub needed: u32,
    pub trustees: Vec<Trustee>,
    /// The election key (a point, hex), once every trustee is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trustee {
    pub member: String,
    /// The key its shares are encrypted to (X25519, hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub box_key: Option<String>,
    /// Its polynomial's commitments (points, hex), once dealt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commitments: Vec<String>,
    /// Its share for each other trustee, encrypted to that trustee (base64).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shares: BTreeMap<String, String>,
    #[serde(default)]
    pub ready: bool,
}

impl Trust {
    /// Trustee `member`'s number (from 1).
    pub fn number(&self, member: &str) -> Option<u64> {
        let i = self.trustees.iter().position(|t| t.member == member)?;
        Some(i as u64 + 1)
    }

    /// Every trustee's commitments, as points (empty when one cannot be read).
    pub fn dealings(&self) -> Vec<Vec<curve25519_dalek::ristretto::RistrettoPoint>> {
        self.trustees
            .iter()
            .map(|t| {
                t.commitments
                    .iter()
                    .map(|c| crate::secret::point_from_hex(c))
                    .collect::<Option<Vec<_>>>()
                    .unwrap_or_default()
            })
            .collect()
    }

    /// What the ceremony waits for, in words.
    pub fn waiting_for(&self) -> Option<String> {
        let steps = [
            ("their keys", 0),
            ("their dealings", 1),
            ("their check of the shares", 2),
        ];
        let done = |t: &Trustee, step: u8| match step {
            0 => t.box_key.is_some(),
            1 => !t.commitments.is_empty(),
            _ => t.ready,
        };
        steps.iter().find_map(|(what, step)| {
            let missing: Vec<&str> = self
                .trustees
                .iter()
                .filter(|t| !done(t, *step))
                .map(|t| t.member.as_str())
                .collect();
            (!missing.is_empty()).then(|| format!("trustees {} to give {what}", missing.join(", ")))
        })
    }
}

/// A round of a secret election: the key its ballots are encrypted under, and once it is
/// closed, the sum of its ballots and the trustees' shares of its decryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tally: Option<Vec<crate::secret::Ciphertext>>,
    /// Each trustee's checked decryption shares of the tally, one per choice.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub decryptions: BTreeMap<String, Vec<crate::secret::PartialDecryption>>,
    /// When and why the round closed, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<(DateTime<Utc>, String)>,
    /// Why the tally's decryption does not add up, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// A candidate nominated for an election.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// How ballots and rules name the candidate: a word of letters, digits, `_` and `-`.
    pub id: String,
    /// The candidate's name, by language (at least one).
    pub name: BTreeMap<String, String>,
    /// The member that nominated the candidate; none when the secretariat recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nominated_by: Option<String>,
    pub at: DateTime<Utc>,
}

impl Candidate {
    /// The name for a reader of `language`: in that language, else English, else the first.
    pub fn name_in(&self, language: &str) -> &str {
        self.name
            .get(language)
            .or_else(|| self.name.get("en"))
            .or_else(|| self.name.values().next())
            .map_or(self.id.as_str(), String::as_str)
    }
}

/// A round of an election: its number (from 1) and the seats it fills, which is the most
/// candidates a ballot may mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    pub number: u32,
    pub seats: u32,
}

/// An amendment to an item's text: in one or more languages, a passage of the current
/// version and what replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amendment {
    pub number: u32,
    pub member: String,
    pub changes: BTreeMap<String, Change>,
    pub reason: String,
    pub at: DateTime<Utc>,
    /// The version of each changed language it amends (SHA-256).
    pub against: BTreeMap<String, String>,
    /// Where its passage is in each of those versions: bytes `[start, end)`.
    pub spans: BTreeMap<String, (u64, u64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruling: Option<Ruling>,
    /// The ballot it was put to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ballot: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fate: Option<Fate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub passage: String,
    /// Empty: the passage is deleted.
    #[serde(default)]
    pub replacement: String,
}

/// The secretariat's ruling on whether an amendment is put to the vote, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ruling {
    pub receivable: bool,
    /// The order of the votes: 1 is put to the vote first (the furthest-reaching).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    Adopted,
    /// Rejected, or without quorum: not adopted.
    Rejected,
    /// Not put to the vote: an amendment adopted before it changed the same passage.
    Fallen,
    NotReceivable,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Fate::Adopted => "adopted",
            Fate::Rejected => "rejected",
            Fate::Fallen => "fallen",
            Fate::NotReceivable => "not receivable",
        }
    }
}

impl Amendment {
    /// Waiting for its vote: not ruled out, not decided.
    pub fn pending(&self) -> bool {
        self.fate.is_none() && self.ruling.as_ref().is_none_or(|r| r.receivable)
    }

    /// Changes a passage that `other` changes too, in some language.
    pub fn overlaps(&self, other: &Amendment) -> bool {
        self.spans
            .iter()
            .any(|(l, (s, e))| other.spans.get(l).is_some_and(|(os, oe)| s < oe && os < e))
    }
}

/// One authentic version of an item's text in one language. Its bytes are stored under
/// its SHA-256 (`store`); the log holds the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub sha256: String,
    pub bytes: u64,
    /// The file's name, as given.
    pub name: String,
    pub media_type: String,
    /// Where it was fetched from, when it came from a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub at: DateTime<Utc>,
    /// The adopted amendments this version was made from, applied to the one before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amendments: Vec<u32>,
}

/// A session's agenda, and what happened in its meeting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    /// The points, in the agenda's order.
    pub agenda: Vec<Point>,
    /// When the meeting opened (its stage entered) and closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// When the meeting adopted its agenda: its first decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agenda_adopted_at: Option<DateTime<Utc>>,
    /// Every arrival and departure, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attendance: Vec<Presence>,
    /// Explanations of vote and reservations members asked to have recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<Statement>,
    /// Each circulation of the draft summary record: when, and each language's SHA-256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub circulated: Vec<Circulation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Circulation {
    pub at: DateTime<Utc>,
    pub hashes: BTreeMap<String, String>,
}

impl Meeting {
    /// The members present now, in the order they came.
    pub fn present(&self) -> Vec<String> {
        let mut now: Vec<String> = Vec::new();
        for p in &self.attendance {
            now.retain(|m| *m != p.member);
            if p.present {
                now.push(p.member.clone());
            }
        }
        now
    }

    pub fn is_present(&self, member: &str) -> bool {
        self.attendance
            .iter()
            .rev()
            .find(|p| p.member == member)
            .is_some_and(|p| p.present)
    }

    pub fn point(&self, number: u32) -> Option<&Point> {
        self.agenda.iter().find(|p| p.number == number)
    }

    /// The point under which `item` is decided, if it is on the agenda.
    pub fn point_of(&self, item: &str) -> Option<&Point> {
        self.agenda
            .iter()
            .find(|p| p.item.as_deref() == Some(item) && p.status == PointStatus::Listed)
    }
}

/// One point of an agenda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    /// Given in the order points are added, never reused: how the log names a point.
    pub number: u32,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub explanation: String,
    /// A document about the point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The item decided under this point (a regulation to adopt, say); none for a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The member who proposed it, when it came from a member's link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_by: Option<String>,
    /// The earlier session that deferred it to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried_from: Option<String>,
    pub status: PointStatus,
    pub added_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStatus {
    Listed,
    /// To a later session.
    Deferred,
    Withdrawn,
}

impl PointStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PointStatus::Listed => "listed",
            PointStatus::Deferred => "deferred",
            PointStatus::Withdrawn => "withdrawn",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub member: String,
    /// Came (true) or left (false).
    pub present: bool,
    pub at: DateTime<Utc>,
}

/// An explanation of vote or a reservation, entered in the record at a member's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub member: String,
    /// The agenda point it concerns, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<u32>,
    pub text: String,
    pub at: DateTime<Utc>,
}

impl Item {
    /// A choice of an election's round as a reader of `language` sees it: a candidate's
    /// name, or the names of the candidates a ballot marks, joined by commas. `None` for
    /// another ballot, and for `blank`.
    pub fn candidate_label(&self, ballot: &Ballot, choice: &str, language: &str) -> Option<String> {
        ballot.round?;
        let names = choice.split('+').map(|c| {
            let found = self.candidates.iter().find(|x| x.id == c);
            found.map(|x| x.name_in(language))
        });
        Some(names.collect::<Option<Vec<&str>>>()?.join(", "))
    }

    /// The current version of each language's text.
    pub fn texts(&self) -> BTreeMap<String, String> {
        self.documents
            .iter()
            .filter_map(|(l, v)| Some((l.clone(), v.last()?.sha256.clone())))
            .collect()
    }

    /// The version of any language whose SHA-256 is `sha256`.
    pub fn version(&self, sha256: &str) -> Option<(&str, usize, &Version)> {
        self.documents.iter().find_map(|(l, vs)| {
            let i = vs.iter().position(|v| v.sha256 == sha256)?;
            Some((l.as_str(), i + 1, &vs[i]))
        })
    }

    /// What the item is called: its `title` input, or else its workflow's title.
    pub fn title<'a>(&'a self, workflow_title: &'a str) -> &'a str {
        self.inputs
            .get("title")
            .map_or(workflow_title, String::as_str)
    }

    /// The title for a reader of `language`: its `title.LANG` input when given.
    pub fn title_in<'a>(&'a self, language: &str, workflow_title: &'a str) -> &'a str {
        self.inputs
            .get(&format!("title.{language}"))
            .map_or_else(|| self.title(workflow_title), String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Ended,
}

impl Status {
    /// As the API and the pages name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Awaiting {
    Register,
    Electorate(usize),
    /// The texts with the adopted amendments applied.
    Texts,
    /// The trustees' decryptions of a closed secret round's tally.
    Decryption(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ballot {
    pub stage: String,
    pub question: String,
    pub choices: Vec<String>,
    pub opened_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    /// Fixed when the ballot opens: one voter per member with a voting right. Shared, so
    /// that copying an item does not copy its voters; stored by its id (see `store`).
    #[serde(with = "electorate_by_id")]
    pub electorate: Arc<Electorate>,
    /// All members of the council when the ballot opened, suspended ones included.
    pub members: u64,
    /// Each voter's choice; a later vote replaces an earlier one. Stored as one row per
    /// member (see `store`), so that a vote writes a few bytes, not the whole ballot.
    #[serde(skip)]
    pub votes: Votes,
    pub result: Option<BallotResult>,
    /// A recorded vote: who voted what may be shown.
    #[serde(default)]
    pub recorded: bool,
    /// Where a lot is drawn from: the chain's head when the ballot opened, which no vote
    /// can influence and no voter sees.
    #[serde(default)]
    pub seed: String,
    /// Taken in a meeting: no mail, no deadline; closed when the vote is recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_session: bool,
    /// How the vote was taken in the room, once recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<Box<Room>>,
    /// The SHA-256 of each language's version of the text voted on (frozen from then on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub texts: BTreeMap<String, String>,
    /// The amendment this ballot is on, in an amendments stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amendment: Option<u32>,
    /// The round of an election this ballot is: its choices are candidates (and `blank`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<Round>,
    /// A secret round: its votes are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<Box<Sealed>>,
}

/// A vote taken in a meeting of the council.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// The session in whose meeting it was taken.
    pub session: String,
    /// The members of the electorate present when it was taken.
    pub present: Vec<String>,
    pub method: RoomMethod,
    /// A show of hands: the count of each choice (a roll-call's votes are the ballot's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hands: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomMethod {
    /// Each member's choice is recorded.
    RollCall,
    /// Counts only.
    ShowOfHands,
    /// The delegates present vote from their ballot links; the chair closes the vote.
    Electronic,
}

impl RoomMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RoomMethod::RollCall => "roll-call",
            RoomMethod::ShowOfHands => "show of hands",
            RoomMethod::Electronic => "electronic vote",
        }
    }
}

/// The voters of a ballot, named by a hash of their content: ballots opened on the same
/// roster share one copy in memory and one row in the store. Serialised as the list of
/// voters (so in the log, an `electorate_fixed` event carries every voter).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Electorate {
    id: String,
    voters: Vec<Voter>,
    /// Member id to place in `voters`.
    places: HashMap<String, usize>,
}

impl Electorate {
    pub fn new(voters: Vec<Voter>) -> Electorate {
        let json = serde_json::to_vec(&voters).unwrap_or_default();
        let id = hex::encode(&Sha256::digest(&json)[..16]);
        let places = voters
            .iter()
            .enumerate()
            .map(|(i, v)| (v.member.clone(), i))
            .collect();
        Electorate { id, voters, places }
    }

    /// The content hash: equal ids, equal voters.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An electorate known only by its id, until the store puts the voters back.
    fn unresolved(id: String) -> Electorate {
        Electorate {
            id,
            ..Electorate::default()
        }
    }

    pub fn place(&self, member: &str) -> Option<usize> {
        self.places.get(member).copied()
    }

    pub fn voter(&self, member: &str) -> Option<&Voter> {
        self.voters.get(self.place(member)?)
    }
}

/// Each voter's choice, by the voter's place in the electorate: 0 for none, otherwise one
/// more than the choice's place in the ballot's choices. Copying it is one small memcpy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Votes {
    by_place: Vec<u16>,
    cast: usize,
    /// The ballots of a round for several seats that mark more than one candidate
    /// (`a+b`), each once: the places after the choices.
    marked: Vec<String>,
}

impl Ballot {
    /// The seed a lot of this ballot is drawn from: the first 64 bits of the chain's head
    /// when it opened.
    pub fn lot_seed(&self) -> u64 {
        u64::from_str_radix(self.seed.get(..16).unwrap_or("0"), 16).unwrap_or(0)
    }

    /// What a ballot of this round may mark, for its encryption and proofs: its choices
    /// (`blank` last, when offered) and its seats.
    pub fn shape(&self) -> crate::secret::Shape {
        crate::secret::Shape {
            choices: self.choices.len(),
            seats: u64::from(self.round.map_or(1, |r| r.seats)),
            blank: self
                .choices
                .last()
                .is_some_and(|c| c == crate::rules::election::BLANK),
        }
    }

    /// Closed to votes: counted, or (a secret round) summed and waiting for its count.
    pub fn closed(&self) -> bool {
        self.result.is_some() || self.sealed.as_ref().is_some_and(|s| s.tally.is_some())
    }

    /// How many members have voted.
    pub fn cast(&self) -> usize {
        self.votes.cast
    }

    /// A member's current choice.
    pub fn vote(&self, member: &str) -> Option<&str> {
        let place = self.electorate.place(member)?;
        self.choice_at(place)
    }

    pub(crate) fn choice_at(&self, place: usize) -> Option<&str> {
        let c = usize::from(*self.votes.by_place.get(place)?).checked_sub(1)?;
        match c.checked_sub(self.choices.len()) {
            None => self.choices.get(c),
            Some(m) => self.votes.marked.get(m),
        }
        .map(String::as_str)
    }

    /// A vote as this ballot records it: one of its choices; in a round for several seats,
    /// also up to that many candidates joined by `+`, put in the ballot's order. `None`
    /// when it is neither.
    pub fn canonical(&self, choice: &str) -> Option<String> {
        if self.sealed.is_some() {
            // A secret vote: one ciphertext per choice.
            return crate::secret::decode_choices(choice, self.choices.len())
                .map(|_| choice.to_string());
        }
        self.marks(choice)
    }

    /// The marks `choice` names in this ballot's order (`a`, `a+c`, `blank`), as an open
    /// ballot records them; what a secret ballot encrypts. `None` when it names others.
    pub fn marks(&self, choice: &str) -> Option<String> {
        if self.choices.iter().any(|c| c == choice) {
            return Some(choice.to_string());
        }
        let seats = self.round.map_or(1, |r| r.seats) as usize;
        let marks: Vec<&str> = choice.split('+').collect();
        if seats < 2 || marks.len() > seats {
            return None;
        }
        let mut places = marks
            .iter()
            .map(|m| {
                let p = self.choices.iter().position(|c| c == m)?;
                (self.choices[p] != crate::rules::election::BLANK).then_some(p)
            })
            .collect::<Option<Vec<usize>>>()?;
        places.sort_unstable();
        places.dedup();
        (places.len() == marks.len()).then(|| {
            let marks: Vec<&str> = places.iter().map(|&p| self.choices[p].as_str()).collect();
            marks.join("+")
        })
    }

    /// Every vote cast, in the electorate's order.
    pub fn votes(&self) -> impl Iterator<Item = (&Voter, &str)> {
        self.electorate
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((v, self.choice_at(i)?)))
    }

    /// Records (or changes) a member's vote; false, and nothing changed, when the member is
    /// not in the electorate or the choice is not offered.
    pub fn record(&mut self, member: &str, choice: &str) -> bool {
        let Some(place) = self.electorate.place(member) else {
            return false;
        };
        let previous = self.votes.by_place.get(place).copied().unwrap_or(0);
        let c = match self.choices.iter().position(|x| x == choice) {
            Some(c) => c,
            // A secret round: each ballot is its voter's own, so a new one takes the place
            // of the voter's last (no list of every ballot ever cast).
            None if self.sealed.is_some() && self.canonical(choice).is_some() => {
                let marked = &mut self.votes.marked;
                match usize::from(previous).checked_sub(self.choices.len() + 1) {
                    Some(m) if m < marked.len() => {
                        marked[m] = choice.to_string();
                        self.choices.len() + m
                    }
                    _ => {
                        marked.push(choice.to_string());
                        self.choices.len() + marked.len() - 1
                    }
                }
            }
            None if self.canonical(choice).as_deref() == Some(choice) => {
                let marked = &mut self.votes.marked;
                let m = marked.iter().position(|x| x == choice).unwrap_or_else(|| {
                    marked.push(choice.to_string());
                    marked.len() - 1
                });
                self.choices.len() + m
            }
            None => return false,
        };
        let Ok(c) = u16::try_from(c + 1) else {
            return false;
        };
        let votes = &mut self.votes;
        if votes.by_place.len() < self.electorate.len() {
            votes.by_place.resize(self.electorate.len(), 0);
        }
        if votes.by_place[place] == 0 {
            votes.cast += 1;
        }
        votes.by_place[place] = c;
        true
    }
}

impl std::ops::Deref for Electorate {
    type Target = [Voter];
    fn deref(&self) -> &[Voter] {
        &self.voters
    }
}

impl Serialize for Electorate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.voters.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Electorate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Electorate, D::Error> {
        Vec::<Voter>::deserialize(d).map(Electorate::new)
    }
}

/// A ballot's electorate inside a stored item: its id only.
mod electorate_by_id {
    use super::*;

    pub fn serialize<S: serde::Serializer>(e: &Arc<Electorate>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&e.id)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<Electorate>, D::Error> {
        String::deserialize(d).map(|id| Arc::new(Electorate::unresolved(id)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voter {
    pub member: String,
    pub member_name: String,
    /// Index of the voting delegate in the member's roster entry.
    pub delegate: usize,
    pub name: String,
    pub email: String,
    pub language: String,
    /// Roster attributes (e.g. population) and groups at opening, for weighted rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallotResult {
    #[serde(with = "verdict_name")]
    pub verdict: Verdict,
    pub counts: BTreeMap<String, u64>,
    pub explanation: String,
    pub closed_at: DateTime<Utc>,
    pub reason: String,
    /// A round of an election: the candidates it elected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub elected: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub stage: String,
    pub name: String,
    pub member: Option<String>,
    pub at: DateTime<Utc>,
    pub data: serde_json::Value,
    /// The member's roster groups when it came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// Verdicts are stored by name (`adopted`, `rejected`, `no_quorum`).
mod verdict_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::rules::Verdict;

    pub fn serialize<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let name = String::deserialize(d)?;
        Verdict::parse(&name).ok_or_else(|| D::Error::custom(format!("unknown verdict `{name}`")))
    }
}
