//! Keys of the store's trees: big-endian where they hold numbers, so that a range scans in
//! order; an item's rows begin with its id and a 0 byte.

use chrono::{DateTime, TimeZone, Utc};

use crate::engine::Timer;

/// A timer row: when, and whose.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    pub due: DateTime<Utc>,
    pub owner: Owner,
}

/// Whose a timer is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    /// One of an item's timers.
    Item(String, Timer),
    /// A workflow's next recurring start.
    Schedule(String),
}

/// How a schedule's row names its owner and itself (`@schedule/WORKFLOW`, `start`): no
/// item id begins with `@`.
const SCHEDULE: &str = "@schedule/";
const START: &str = "start";

impl TimerKey {
    /// due (big-endian milliseconds) ‖ owner ‖ 0 ‖ name, so the first key is the next due.
    pub fn encode(&self) -> Vec<u8> {
        let mut k = (self.due.timestamp_millis().max(0) as u64)
            .to_be_bytes()
            .to_vec();
        let (owner, name) = match &self.owner {
            Owner::Item(id, timer) => (id.clone(), timer.to_string()),
            Owner::Schedule(workflow) => (format!("{SCHEDULE}{workflow}"), START.to_string()),
        };
        k.extend_from_slice(owner.as_bytes());
        k.push(0);
        k.extend_from_slice(name.as_bytes());
        k
    }

    pub fn decode(k: &[u8]) -> Option<TimerKey> {
        let millis = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
        let rest = std::str::from_utf8(k.get(8..)?).ok()?;
        let (owner, name) = rest.split_once('\0')?;
        let due = Utc
            .timestamp_millis_opt(i64::try_from(millis).ok()?)
            .single()?;
        let owner = match owner.strip_prefix(SCHEDULE) {
            Some(workflow) if name == START => Owner::Schedule(workflow.into()),
            Some(_) => return None,
            None => Owner::Item(owner.into(), name.parse().ok()?),
        };
        Some(TimerKey { due, owner })
    }
}

pub(super) fn item_prefix(item: &str) -> Vec<u8> {
    let mut k = item.as_bytes().to_vec();
    k.push(0);
    k
}

fn ballot_prefix(item: &str, ballot: usize) -> Vec<u8> {
    let mut k = item_prefix(item);
    k.extend_from_slice(&(ballot as u32).to_be_bytes());
    k
}

pub fn vote_key(item: &str, ballot: usize, member: &str) -> Vec<u8> {
    let mut k = ballot_prefix(item, ballot);
    k.extend_from_slice(member.as_bytes());
    k
}

pub fn event_key(item: &str, seq: u64) -> Vec<u8> {
    let mut k = item.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn register_key(series: &str, year: i32, seq: u64) -> Vec<u8> {
    let mut k = series.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&(year as u32).to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}
