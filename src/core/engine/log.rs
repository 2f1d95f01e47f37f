//! An item's log: records chained by hash, and the replay that folds a log back into the
//! item it built.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Context, Event, Facts, Item, Rejection, step};
use crate::definition::Workflow;

/// One entry of an item's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub event: Event,
    /// Who asked for it, when a person of the secretariat did: an account's name, or
    /// `admin token`. Absent for votes (the member is in the event), timers, follow-ups
    /// and records written before accounts existed (their stored bytes stay the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Hash of the previous record (empty for the first).
    pub prev: String,
    pub hash: String,
}

impl Record {
    pub fn new(
        seq: u64,
        at: DateTime<Utc>,
        event: Event,
        by: Option<String>,
        prev: String,
    ) -> Record {
        let mut record = Record {
            seq,
            at,
            event,
            by,
            prev,
            hash: String::new(),
        };
        record.hash = chain_hash(&record);
        record
    }

    /// Whether the record's hash is that of its contents and its link.
    pub fn is_sound(&self) -> bool {
        chain_hash(self) == self.hash
    }
}

/// SHA-256 over the previous hash and the record's JSON (who asked for it included, when
/// anyone did): a record cannot change without every later hash changing too.
fn chain_hash(r: &Record) -> String {
    let (seq, at, event, prev) = (r.seq, r.at, &r.event, &r.prev);
    let body = match &r.by {
        None => serde_json::to_vec(&(seq, at, event)),
        Some(by) => serde_json::to_vec(&(seq, at, event, by)),
    }
    .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(&body);
    hex::encode(h.finalize())
}

/// Why a log does not fold back into an item.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("the log does not begin with `started`")]
    NoStart,
    #[error("the item runs on workflow version {0}, which is not stored")]
    NoVersion(String),
    #[error("event {seq}: {rejection}")]
    Refused { seq: u64, rejection: Rejection },
    #[error("event {0} is not the record the engine makes of it: the log was changed")]
    Differs(u64),
}

/// Folds an item's log through [`step`] from the start, answering the facts from the log
/// itself: the result must be exactly the stored item. Each request is stepped again and
/// its records compared with the log's, hashes included, so a changed log is found.
pub fn replay<'w>(
    workflow: impl Fn(&str) -> Option<&'w Workflow>,
    tz: Tz,
    id: &str,
    log: &[Record],
) -> Result<Option<Item>, ReplayError> {
    let mut state: Option<Item> = None;
    let mut at = 0;
    while let Some(first) = log.get(at) {
        let version = match (&state, &first.event) {
            (Some(item), _) => item.version.clone(),
            (None, Event::Started { version, .. }) => version.clone(),
            (None, _) => return Err(ReplayError::NoStart),
        };
        let def = workflow(&version).ok_or(ReplayError::NoVersion(version))?;
        let ctx = Context { workflow: def, tz };
        let mut facts = FromLog {
            log: &log[at..],
            logged: 0,
            asked: 0,
            differs: None,
        };
        step(
            &ctx,
            &mut state,
            id,
            first.at,
            first.event.clone(),
            first.by.clone(),
            &mut facts,
        )
        .map_err(|rejection| ReplayError::Refused {
            seq: first.seq,
            rejection,
        })?;
        if let Some(seq) = facts.differs {
            return Err(ReplayError::Differs(seq));
        }
        at += facts.logged.max(1);
    }
    Ok(state)
}

/// The facts of a replayed request: the follow-up records that answered them then.
struct FromLog<'a> {
    /// The log from the request's record on.
    log: &'a [Record],
    logged: usize,
    asked: usize,
    differs: Option<u64>,
}

impl FromLog<'_> {
    /// The follow-up record answering the next question (the k-th question is answered
    /// by the k-th record after the request's own).
    fn answer(&mut self) -> Option<&Event> {
        self.asked += 1;
        self.log.get(self.asked).map(|r| &r.event)
    }
}

impl Facts for FromLog<'_> {
    fn electorate(&mut self) -> (std::sync::Arc<super::Electorate>, u64) {
        match self.answer() {
            Some(Event::ElectorateFixed {
                electorate,
                members,
                ..
            }) => (electorate.clone(), *members),
            _ => Default::default(),
        }
    }

    fn next_number(&mut self, _series: &str, _year: i32) -> u64 {
        match self.answer() {
            Some(Event::Registered { seq, .. }) => *seq,
            _ => 0,
        }
    }

    fn consolidate(
        &mut self,
        _item: &Item,
    ) -> Result<std::collections::BTreeMap<String, super::Version>, String> {
        match self.answer() {
            Some(Event::TextsConsolidated { versions }) => Ok(versions.clone()),
            _ => {
                // They could not be made then either: no record answered.
                self.asked -= 1;
                Err("not made when this was logged".into())
            }
        }
    }

    fn logged(&mut self, _item: &Item, record: &Record, _effects: Vec<super::Effect>) {
        let same = self.log.get(self.logged).is_some_and(|r| r == record);
        if !same && self.differs.is_none() {
            self.differs = Some(record.seq);
        }
        self.logged += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_asked_is_in_the_chain_and_a_record_without_anyone_is_stored_as_before() {
        let at = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let event = Event::Cancelled {
            reason: "withdrawn".into(),
        };
        let plain = Record::new(3, at, event.clone(), None, "ab".into());
        let by = Record::new(3, at, event, Some("omar".into()), "ab".into());
        assert!(plain.is_sound() && by.is_sound());
        assert_ne!(plain.hash, by.hash);
        let mut forged = by.clone();
        forged.by = Some("amina".into());
        assert!(!forged.is_sound(), "a changed name breaks the chain");
        forged.by = None;
        assert!(!forged.is_sound(), "so does a removed one");
        // No `by` key at all: the bytes of records written before accounts existed.
        let json = serde_json::to_string(&plain).unwrap_or_default();
        assert!(!json.contains("\"by\""), "{json}");
        let json = serde_json::to_string(&by).unwrap_or_default();
        assert!(json.contains("\"by\":\"omar\""), "{json}");
    }
}
