//! The decision-cycle engine: one item's state, the events that change it, the effects it
//! asks of the world, and the one driver that turns a request into log records.
//!
//! - [`apply`] is one transition: pure and deterministic, no I/O, no clock (time comes in as
//!   `at`). Every refusal is checked before anything changes, so a rejected event leaves the
//!   item exactly as it was.
//! - [`step`] is the only way events reach `apply` outside tests of `apply` itself: it
//!   applies a request, chains each record to the one before ([`Record`]), and answers the
//!   facts the engine asks for (the electorate when a ballot opens, the next register
//!   number) through a [`Facts`] implementation, as follow-up events in the same log. The
//!   writer, start-up [`replay`] and the simulator are three such implementations, so they
//!   cannot disagree: folding a log through `step` gives exactly the stored item.

mod apply;
mod election;
mod event;
mod item;
mod log;
mod recipients;
mod sealed;
mod step;

use chrono_tz::Tz;

use crate::definition::Workflow;
use crate::rules::{Counts, VoterInfo};

pub use apply::{apply, check_version, tally};
pub use election::{candidate_id, marks, taking_nominations};
pub use event::{BALLOT_CANCELLED, BALLOT_EXTENDED, Effect, Event, Recipients, Rejection, Timer};
pub use item::{
    Amendment, Awaiting, Ballot, BallotResult, Candidate, Change, Circulation, Electorate, Fate,
    Item, Meeting, Point, PointStatus, Presence, Room, RoomMethod, Round, Ruling, Sealed, Signal,
    Statement, Status, Trust, Trustee, Version, Voter, Votes,
};
pub use log::{Record, ReplayError, replay};
pub use recipients::{Addressee, recipients};
pub use sealed::{TRUSTEE_CALL, secret_election};
pub use step::{Facts, MAX_FOLLOW_UPS, Stepped, step};

/// What `apply` needs besides the item and the event.
pub struct Context<'a> {
    pub workflow: &'a Workflow,
    pub tz: Tz,
}

/// The electorate a ballot opens with: one voter per member with a voting right, the
/// member's head delegate (or first delegate), with the member's attributes and groups.
pub fn electorate(roster: &crate::roster::Roster) -> Electorate {
    let voters = roster
        .members
        .iter()
        .filter(|m| m.voting_right)
        .filter_map(|m| {
            let (index, d) = m.voter()?;
            Some(Voter {
                member: m.id.clone(),
                member_name: m.name.clone(),
                delegate: index,
                name: d.name.clone(),
                email: d.email.clone(),
                language: d.language.clone(),
                attributes: m.attributes.clone(),
                groups: m.groups.clone(),
            })
        })
        .collect();
    Electorate::new(voters)
}

/// The counts a ballot's rules are evaluated over.
pub fn counts(b: &Ballot) -> Counts {
    let present = b.room.as_ref().map(|r| r.present.len() as u64);
    if let Some(room) = b
        .room
        .as_ref()
        .filter(|r| r.method == RoomMethod::ShowOfHands)
    {
        // Counts only: per-member terms (`weight`, `count(group:)`) see nobody.
        return Counts {
            choices: b
                .choices
                .iter()
                .map(|c| (c.clone(), room.hands.get(c).copied().unwrap_or(0)))
                .collect(),
            eligible: b.electorate.len() as u64,
            members: b.members,
            voters: Vec::new(),
            present,
        };
    }
    let voters = b
        .electorate
        .iter()
        .enumerate()
        .map(|(i, v)| VoterInfo {
            member: v.member.clone(),
            choice: b.choice_at(i).map(String::from),
            attributes: v.attributes.clone(),
            groups: v.groups.clone(),
        })
        .collect();
    Counts {
        present,
        ..Counts::from_voters(&b.choices, voters, b.members)
    }
}

/// The signals of a stage's `on_signal` that stand: each member whose last signal in the
/// stage is the signal (not its withdrawal), with when it came, and the anonymous ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signalled {
    pub members: Vec<(String, chrono::DateTime<chrono::Utc>)>,
    pub anonymous: u64,
    /// Members who withdrew theirs, with when.
    pub withdrawn: Vec<(String, chrono::DateTime<chrono::Utc>)>,
}

impl Signalled {
    /// What the stage's `until` rule counts.
    pub fn count(&self) -> u64 {
        self.members.len() as u64 + self.anonymous
    }
}

/// The signals standing in the item's current stage.
pub fn signalled(item: &Item, on: &crate::definition::OnSignal) -> Signalled {
    let mut out = Signalled::default();
    let here = item
        .signals
        .iter()
        .filter(|s| s.stage == item.stage && s.at >= item.entered_at);
    for s in here {
        let withdrawal = on.withdrawal.as_deref() == Some(s.name.as_str());
        if s.name != on.name && !withdrawal {
            continue;
        }
        match (&s.member, withdrawal) {
            (None, false) => out.anonymous += 1,
            (None, true) => {}
            (Some(m), false) if out.members.iter().any(|(d, _)| d == m) => {} // counted once
            (Some(m), false) => {
                out.withdrawn.retain(|(w, _)| w != m);
                out.members.push((m.clone(), s.at));
            }
            (Some(m), true) => {
                out.members.retain(|(d, _)| d != m);
                out.withdrawn.push((m.clone(), s.at));
            }
        }
    }
    out
}

/// The least `count` that meets a stage's `until` rule, given the council's members (the
/// "19" of "12 of 19"); `None` when no count up to every member and more does.
pub fn signals_needed(
    on: &crate::definition::OnSignal,
    members: u64,
    eligible: u64,
) -> Option<u64> {
    let most = members.max(eligible).saturating_add(1).min(100_000);
    (0..=most).find(|n| {
        let c = Counts {
            choices: std::collections::BTreeMap::from([("count".to_string(), *n)]),
            eligible,
            members,
            voters: Vec::new(),
            present: None,
        };
        on.until.eval(&c).unwrap_or(false)
    })
}
