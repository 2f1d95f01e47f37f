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
    /// Hash of the previous record (empty for the first).
    pub prev: String,
    pub hash: String,
}

impl Record {
    pub fn new(seq: u64, at: DateTime<Utc>, event: Event, prev: String) -> Record {
        let hash = chain_hash(seq, at, &event, &prev);
        Record {
            seq,
            at,
            event,
            prev,
            hash,
        }
    }

    /// Whether the record's hash is that of its contents and its link.
    pub fn is_sound(&self) -> bool {
        chain_hash(self.seq, self.at, &self.event, &self.prev) == self.hash
    }
}

/// SHA-256 over the previous hash and the record's JSON: a record cannot change without
/// every later hash changing too.
fn chain_hash(seq: u64, at: DateTime<Utc>, event: &Event, prev: &str) -> String {
    let body = serde_json::to_vec(&(seq, at, event)).unwrap_or_default();
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

    fn logged(&mut self, _item: &Item, record: &Record, _effects: Vec<super::Effect>) {
        let same = self.log.get(self.logged).is_some_and(|r| r == record);
        if !same && self.differs.is_none() {
            self.differs = Some(record.seq);
        }
        self.logged += 1;
    }
}
