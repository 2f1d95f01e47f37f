//! What happens to an item (events), what the engine asks of the world (effects), and why
//! an event is refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Electorate, PointStatus, RoomMethod};
use crate::definition::Audience;

/// A fact appended to an item's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started {
        workflow: String,
        version: String,
        inputs: BTreeMap<String, String>,
    },
    ElectorateFixed {
        ballot: usize,
        electorate: Arc<Electorate>,
        members: u64,
    },
    Registered {
        series: String,
        year: i32,
        seq: u64,
    },
    /// A member's vote. In a secret ballot, `choice` is the ballot's ciphertexts
    /// (`secret::encode_choices`) and `proofs` their proofs: nothing says what it marks.
    VoteCast {
        ballot: usize,
        member: String,
        choice: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proofs: Option<Box<crate::secret::Proofs>>,
    },
    TimerFired {
        timer: Timer,
    },
    Signal {
        name: String,
        member: Option<String>,
        data: serde_json::Value,
        members: u64,
        eligible: u64,
        /// The member's groups in the roster then (`permanent`, say), for rules such as
        /// "two thirds of the members, all the permanent ones among them".
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        groups: Vec<String>,
    },
    /// The secretariat moves a ballot's deadline later.
    DeadlineExtended {
        ballot: usize,
        closes_at: DateTime<Utc>,
        /// Why, when the secretariat said (absent in records written before it could).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Cancelled {
        reason: String,
    },
    /// A point put on a session's agenda: by the secretariat, or proposed by a member from
    /// the link in the call for points (`member`).
    PointAdded {
        title: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        explanation: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        /// The item decided under the point.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<String>,
        /// The session that deferred it, when it is carried over to this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        carried_from: Option<String>,
    },
    /// A point moved to a place on the agenda (1 is the first).
    PointMoved {
        point: u32,
        place: usize,
    },
    /// A point deferred to a later session, withdrawn, or put back on the agenda.
    PointMarked {
        point: u32,
        status: PointStatus,
    },
    /// The meeting adopts its agenda.
    AgendaAdopted,
    /// Members arrive in or leave the meeting.
    Attendance {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        arrived: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left: Vec<String>,
    },
    /// An explanation of vote or a reservation a member asks to have in the record.
    StatementRecorded {
        member: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        point: Option<u32>,
        text: String,
    },
    /// The chair closes the meeting; the session goes on to its `next` stage.
    MeetingClosed,
    /// The secretariat moves the item on to its `next` stage now, without waiting for the
    /// end of the stage's wait (a call for points closed early, a meeting opened on the day).
    MovedOn,
    /// A vote taken in the room on an in-session ballot. The writer fills in the session
    /// and who was present then, from the session's own state, so the record is whole.
    VoteRecorded {
        ballot: usize,
        session: String,
        present: Vec<String>,
        method: RoomMethod,
        /// A roll-call: each member's choice.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        votes: BTreeMap<String, String>,
        /// A show of hands: each choice's count.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        hands: BTreeMap<String, u64>,
    },
    /// An electronic vote in the room opens on an in-session ballot: its links go to the
    /// delegates of the members present (filled in by the writer, as for `VoteRecorded`),
    /// who vote as in an email ballot until the chair closes it.
    RoomVoteOpened {
        ballot: usize,
        session: String,
        present: Vec<String>,
    },
    /// The chair closes the electronic vote in the room: the ballot is decided.
    RoomVoteClosed {
        ballot: usize,
    },
    /// A ballot taken in session is sent to an email ballot instead, closing at a deadline.
    SentToEmailBallot {
        ballot: usize,
        closes_at: DateTime<Utc>,
    },
    /// A version of the item's text in one language, its bytes already stored.
    DocumentAdded {
        language: String,
        sha256: String,
        bytes: u64,
        name: String,
        media_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// A member's amendment to the text. `against` and `spans` (the versions it amends and
    /// where its passages are in them) are filled in by the writer, which has the bytes.
    AmendmentProposed {
        member: String,
        changes: BTreeMap<String, super::Change>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
        #[serde(default)]
        against: BTreeMap<String, String>,
        #[serde(default)]
        spans: BTreeMap<String, (u64, u64)>,
    },
    /// The secretariat rules an amendment receivable (put to the vote, in the order of its
    /// rank) or not.
    AmendmentRuled {
        amendment: u32,
        receivable: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rank: Option<u32>,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
    },
    /// The texts with the adopted amendments applied: a new version of each language they
    /// change (answering `Effect::Consolidate`).
    TextsConsolidated {
        versions: BTreeMap<String, super::Version>,
    },
    /// The secretariat asks again for the texts with the adopted amendments applied, after
    /// they could not be made (a version they amend could not be read).
    ConsolidationRetried,
    /// A candidate nominated for an election: by a member from the link in its call for
    /// nominations (`member`), or recorded by the secretariat.
    Nominated {
        candidate: String,
        name: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<String>,
    },
    /// The secretariat confirms the candidates, in the ballot paper's order: nominations
    /// close, and the item goes on to the election.
    CandidatesConfirmed {
        candidates: Vec<String>,
    },
    /// A trustee of a secret ballot gives the key (X25519, hex) that the others encrypt
    /// its shares of the election key to.
    TrusteeKey {
        member: String,
        key: String,
    },
    /// A trustee deals: the commitments of its polynomial (points, hex) and, for each
    /// other trustee, that trustee's share, encrypted to its key (base64).
    TrusteeDealt {
        member: String,
        commitments: Vec<String>,
        shares: BTreeMap<String, String>,
    },
    /// A trustee has checked the shares dealt to it against their commitments: it holds
    /// its part of the key. Once every trustee has, the election key is made.
    TrusteeReady {
        member: String,
    },
    /// A trustee's share of the decryption of a closed secret round's tally, one per
    /// choice, each with its proof.
    Decrypted {
        ballot: usize,
        member: String,
        shares: Vec<crate::secret::PartialDecryption>,
    },
    /// The draft summary record of a session is circulated: the SHA-256 of each language's
    /// text, so that the version approved later is the version circulated.
    RecordCirculated {
        hashes: BTreeMap<String, String>,
        /// Each language's text as circulated, kept in the log (not in the item), so that
        /// the version approved can be read again whatever has changed since.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        texts: BTreeMap<String, String>,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Started { .. } => "started",
            Event::ElectorateFixed { .. } => "electorate_fixed",
            Event::Registered { .. } => "registered",
            Event::VoteCast { .. } => "vote_cast",
            Event::TimerFired { .. } => "timer_fired",
            Event::Signal { .. } => "signal",
            Event::DeadlineExtended { .. } => "deadline_extended",
            Event::Cancelled { .. } => "cancelled",
            Event::PointAdded { .. } => "point_added",
            Event::PointMoved { .. } => "point_moved",
            Event::PointMarked { .. } => "point_marked",
            Event::AgendaAdopted => "agenda_adopted",
            Event::Attendance { .. } => "attendance",
            Event::StatementRecorded { .. } => "statement_recorded",
            Event::MeetingClosed => "meeting_closed",
            Event::MovedOn => "moved_on",
            Event::VoteRecorded { .. } => "vote_recorded",
            Event::RoomVoteOpened { .. } => "room_vote_opened",
            Event::RoomVoteClosed { .. } => "room_vote_closed",
            Event::SentToEmailBallot { .. } => "sent_to_email_ballot",
            Event::RecordCirculated { .. } => "record_circulated",
            Event::DocumentAdded { .. } => "document_added",
            Event::AmendmentProposed { .. } => "amendment_proposed",
            Event::AmendmentRuled { .. } => "amendment_ruled",
            Event::TextsConsolidated { .. } => "texts_consolidated",
            Event::ConsolidationRetried => "consolidation_retried",
            Event::Nominated { .. } => "nominated",
            Event::CandidatesConfirmed { .. } => "candidates_confirmed",
            Event::TrusteeKey { .. } => "trustee_key",
            Event::TrusteeDealt { .. } => "trustee_dealt",
            Event::TrusteeReady { .. } => "trustee_ready",
            Event::Decrypted { .. } => "decrypted",
        }
    }
}

/// The mail to a ballot's electorate when its deadline is moved later (no workflow names
/// it: the daemon sends it for every workflow, so the templates folder must have it).
pub const BALLOT_EXTENDED: &str = "ballot-extended";
/// The mail to the electorate of a ballot still open when its item is cancelled.
pub const BALLOT_CANCELLED: &str = "ballot-cancelled";

/// What the engine asks the world to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Mail {
        template: String,
        to: Recipients,
        ballot: Option<usize>,
    },
    SetTimer {
        name: Timer,
        due: DateTime<Utc>,
    },
    CancelTimer {
        name: Timer,
        due: DateTime<Utc>,
    },
    /// Answer with `Event::ElectorateFixed` from the current roster.
    FixElectorate {
        ballot: usize,
    },
    /// Answer with `Event::Registered` carrying the next free number of the series and year.
    Register {
        series: String,
        year: i32,
    },
    /// Apply the adopted amendments to the texts (answered by `TextsConsolidated`).
    Consolidate,
    /// Something the operator should be told (the shell logs it), such as a reminder
    /// dropped because its ballot closes at the same moment.
    Notice(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    Audience(Audience),
    /// The voting delegate of one member of the ballot's electorate (a vote's receipt).
    Voter(usize, String),
    /// The voting delegate of every member in the ballot's electorate.
    Electorate(usize),
    /// Those of the electorate who have not voted yet.
    NotVoted(usize),
    /// The voting delegates of the members present in the room for an electronic vote.
    InRoom(usize),
    /// Every delegate of each trustee of the item's secret ballot.
    Trustees,
}

/// Why an event was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("item already exists")]
    AlreadyStarted,
    #[error("item does not exist")]
    NotStarted,
    #[error("the item has ended")]
    Ended,
    #[error("input `{0}` is required")]
    MissingInput(String),
    #[error("the workflow has no input `{0}`")]
    UnknownInput(String),
    #[error("input `{0}`: {1}")]
    BadInput(String, String),
    #[error("no such ballot")]
    NoSuchBallot,
    #[error("the ballot is closed")]
    BallotClosed,
    #[error("the ballot is not open yet")]
    BallotNotOpen,
    #[error("member `{0}` is not in this ballot's electorate")]
    NotInElectorate(String),
    #[error("`{0}` is not a choice of this ballot")]
    NoSuchChoice(String),
    /// The member's vote already is this choice: a repeat changes nothing (and the
    /// answer is the receipt of the vote that recorded it).
    #[error("this choice is already the member's vote")]
    SameChoice,
    #[error("stage `{stage}` does not accept signal `{name}`")]
    UnexpectedSignal { stage: String, name: String },
    #[error("timer `{0}` is not pending")]
    StaleTimer(Timer),
    #[error("the item is not waiting for this fact")]
    NotAwaiting,
    #[error(
        "more than {} follow-up events from one request",
        super::MAX_FOLLOW_UPS
    )]
    TooManyFollowUps,
    /// The texts with the adopted amendments could not be made: the item waits for them
    /// (and for the secretariat's retry) rather than put the unamended texts to the vote.
    #[error("the texts with the adopted amendments could not be made: {0}")]
    NotConsolidated(String),
    #[error("the new deadline must be later than the current one ({0}) and in the future")]
    DeadlineNotLater(DateTime<Utc>),
    #[error("this item is not a session: its workflow has no meeting stage")]
    NotASession,
    #[error("the session is not in its meeting (stage `{0}`)")]
    NotInMeeting(String),
    #[error("the session's meeting is closed: its agenda and record no longer change")]
    MeetingOver,
    #[error("members may propose points only during the call for points")]
    NotTakingProposals,
    #[error("the agenda has no point {0}")]
    NoSuchPoint(u32),
    #[error("item `{0}` is already on the agenda")]
    AlreadyOnAgenda(String),
    #[error("a point needs a title")]
    NoTitle,
    #[error("the roster has no member `{0}`")]
    UnknownMember(String),
    #[error("member `{0}` is not present")]
    NotPresent(String),
    #[error("member `{0}` is counted twice")]
    CountedTwice(String),
    #[error("this ballot is not taken in session")]
    NotInSession,
    #[error("this ballot is taken in session: its vote is recorded in the meeting")]
    InSession,
    #[error("the item is not on the agenda of a session in its meeting")]
    NotOnAgenda,
    #[error("{counted} counted, but only {present} members entitled to vote are present")]
    AbovePresent { counted: u64, present: u64 },
    #[error("stage `{0}` does not wait for a time: nothing to move on from")]
    NotWaiting(String),
    #[error("an electronic vote is open on this ballot: the chair closes it")]
    ElectronicVoteOpen,
    #[error("the electronic vote on `{0}` is open: the chair closes it first")]
    ElectronicVoteOpenOn(String),
    #[error("the votes on {} are not taken: record them, defer their points or send them to an email ballot", .0.join(", "))]
    VotesNotTaken(Vec<String>),
    #[error(
        "only a session, or an item on the agenda of a session, is moved on by hand; this one waits for its time"
    )]
    NotMovable,
    #[error("no electronic vote is open on this ballot")]
    NoElectronicVote,
    #[error("the record is circulated once the meeting has closed")]
    MeetingNotClosed,
    #[error("`{member}` has already sent `{name}` in this stage ({at}): once per member")]
    AlreadySignalled {
        member: String,
        name: String,
        at: DateTime<Utc>,
    },
    #[error("`{0}` has nothing standing to withdraw")]
    NothingToWithdraw(String),
    #[error("nothing to change")]
    NothingChanged,
    #[error("this item's workflow gives it no documents")]
    NoDocuments,
    #[error("the texts are frozen: ballot {ballot} opened on them at {}", at.format("%Y-%m-%d %H:%M UTC"))]
    TextsFrozen { ballot: usize, at: DateTime<Utc> },
    #[error("this is already the current `{0}` version")]
    SameVersion(String),
    #[error("amendments are proposed only during the comment period, on the whole texts")]
    NotTakingAmendments,
    #[error("the text has no amendment {0}")]
    NoSuchAmendment(u32),
    #[error("amendment {0} is being voted on or decided: its ruling no longer changes")]
    AmendmentDecided(u32),
    #[error(
        "amendment {0} is proposed against these versions: rule it not receivable before replacing one"
    )]
    AmendedVersions(u32),
    #[error("nominations are taken only in a nominations stage, until they close")]
    NotTakingNominations,
    #[error("candidate `{0}` is already nominated")]
    CandidateExists(String),
    #[error("no candidate `{0}` is nominated")]
    NoSuchCandidate(String),
    #[error("`{0}` is listed twice")]
    ListedTwice(String),
    #[error("confirm at least one candidate")]
    NoCandidates,
    #[error("the item goes on to its election when the secretariat confirms the candidates")]
    ConfirmCandidates,
    #[error("mark at most {0} candidates")]
    TooManyMarks(u32),
    #[error("member `{0}` is not a trustee of this election")]
    NotTrustee(String),
    /// A step of the trustees' key ceremony out of its order, or given twice.
    #[error("{0}")]
    TrusteeStep(String),
    #[error("the trustees have not made the election key yet: the election cannot open")]
    NoElectionKey,
    #[error("a secret ballot's vote must be encrypted in the ballot page")]
    NotSealed,
    #[error("the encrypted vote's proofs do not check: it is not a ballot of this round")]
    ProofsFail,
}

/// An item's pending timer. Stored and logged by its name (`close:0`, `remind:0:1`,
/// `next@STAGE`), which is also its order, so the bytes on disk are those of a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Timer {
    /// A ballot's deadline.
    Close(usize),
    /// A ballot's reminder: the ballot, then the place of the reminder in `remind`.
    Remind(usize, usize),
    /// The wait of a stage (`after` or `schedule`), then `next`.
    Next(String),
}

impl Timer {
    /// The ballot a deadline or reminder belongs to.
    pub fn ballot(&self) -> Option<usize> {
        match self {
            Timer::Close(b) | Timer::Remind(b, _) => Some(*b),
            Timer::Next(_) => None,
        }
    }
}

impl std::fmt::Display for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Timer::Close(b) => write!(f, "close:{b}"),
            Timer::Remind(b, i) => write!(f, "remind:{b}:{i}"),
            Timer::Next(stage) => write!(f, "next@{stage}"),
        }
    }
}

impl std::str::FromStr for Timer {
    type Err = String;
    fn from_str(name: &str) -> Result<Timer, String> {
        let number = |s: &str| s.parse::<usize>().ok();
        let parsed = if let Some(rest) = name.strip_prefix("close:") {
            number(rest).map(Timer::Close)
        } else if let Some(rest) = name.strip_prefix("remind:") {
            rest.split_once(':')
                .and_then(|(b, i)| Some(Timer::Remind(number(b)?, number(i)?)))
        } else {
            name.strip_prefix("next@")
                .map(|stage| Timer::Next(stage.to_string()))
        };
        parsed.ok_or_else(|| format!("`{name}` is not a timer's name"))
    }
}

impl Ord for Timer {
    /// The order of the names, as the stored maps have always been.
    fn cmp(&self, other: &Timer) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Timer) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for Timer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Timer, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Timer;

    #[test]
    fn timer_names_round_trip_and_sort_as_strings() {
        let timers = [
            Timer::Close(0),
            Timer::Close(10),
            Timer::Close(2),
            Timer::Next("ballot-2".into()),
            Timer::Remind(0, 1),
        ];
        for t in &timers {
            assert_eq!(t.to_string().parse::<Timer>().as_ref(), Ok(t));
        }
        let mut sorted = timers.to_vec();
        sorted.sort();
        assert_eq!(sorted, timers);
        for bad in ["close:", "close:x", "remind:1", "later", "next"] {
            assert!(bad.parse::<Timer>().is_err(), "{bad}");
        }
    }
}
