//! The store: every sled call of councild lives here.
//!
//! Trees (DESIGN.md section 3): `definitions` (version → source), `items` (id → state),
//! `events` (item ‖ seq → event record, hash-chained), `timers` (due ‖ owner ‖ name),
//! `outbox` (mail id → mail), `registers` (series ‖ year ‖ number → act), `meta`.
//! Keys are big-endian so ranges scan in order; values are a format byte and JSON.
//! Writes that belong together go through [`Store::commit`] as one transaction followed by
//! a flush: nothing is acknowledged before it is on disk.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use sled::Transactional;

use crate::engine::{Event, Item};

/// The first byte of every stored value: the encoding's version.
const FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the data folder {0} is in use by another councild (or could not be opened): {1}")]
    Open(String, sled::Error),
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored value under {key} cannot be read: {reason}")]
    Corrupt { key: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

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
}

fn chain_hash(seq: u64, at: DateTime<Utc>, event: &Event, prev: &str) -> String {
    let body = serde_json::to_vec(&(seq, at, event)).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(&body);
    hex::encode(h.finalize())
}

/// A timer row: when, whose, which.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    pub due: DateTime<Utc>,
    /// An item id, or `@schedule/WORKFLOW` for a workflow's recurring start.
    pub owner: String,
    pub name: String,
}

impl TimerKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut k = (self.due.timestamp_millis().max(0) as u64)
            .to_be_bytes()
            .to_vec();
        k.extend_from_slice(self.owner.as_bytes());
        k.push(0);
        k.extend_from_slice(self.name.as_bytes());
        k
    }

    pub fn decode(k: &[u8]) -> Option<TimerKey> {
        let millis = u64::from_be_bytes(k.get(..8)?.try_into().ok()?);
        let rest = std::str::from_utf8(k.get(8..)?).ok()?;
        let (owner, name) = rest.split_once('\0')?;
        let due = Utc
            .timestamp_millis_opt(i64::try_from(millis).ok()?)
            .single()?;
        Some(TimerKey {
            due,
            owner: owner.into(),
            name: name.into(),
        })
    }
}

/// An act entered in a register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Act {
    pub series: String,
    pub year: i32,
    pub seq: u64,
    pub number: String,
    pub item: String,
    pub title: String,
    pub at: DateTime<Utc>,
}

/// Writes staged for one commit.
#[derive(Default)]
pub struct Batch {
    pub items: BTreeMap<String, Vec<u8>>,
    pub events: Vec<(Vec<u8>, Vec<u8>)>,
    pub timers: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub outbox: Vec<(Vec<u8>, Vec<u8>)>,
    pub registers: Vec<(Vec<u8>, Vec<u8>)>,
    pub meta: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Workflow versions: content hash → source.
    pub definitions: Vec<(String, String)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
            && self.events.is_empty()
            && self.timers.is_empty()
            && self.outbox.is_empty()
            && self.registers.is_empty()
            && self.meta.is_empty()
            && self.definitions.is_empty()
    }
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    definitions: sled::Tree,
    items: sled::Tree,
    events: sled::Tree,
    timers: sled::Tree,
    outbox: sled::Tree,
    registers: sled::Tree,
    meta: sled::Tree,
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT];
    // Serializing our own types to JSON cannot fail: no maps with non-string keys.
    serde_json::to_writer(&mut out, value).unwrap_or_default();
    out
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T> {
    let corrupt = |reason: String| Error::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&FORMAT, body)) => serde_json::from_slice(body).map_err(|e| corrupt(e.to_string())),
        Some((v, _)) => Err(corrupt(format!("unknown format {v}"))),
        None => Err(corrupt("empty value".into())),
    }
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

impl Store {
    /// Opens (or creates) the store in `path`. A second process on the same folder is refused.
    pub fn open(path: &Path) -> Result<Store> {
        let db = sled::Config::new()
            .path(path)
            .open()
            .map_err(|e| Error::Open(path.display().to_string(), e))?;
        let tree = |name: &str| db.open_tree(name);
        Ok(Store {
            definitions: tree("definitions")?,
            items: tree("items")?,
            events: tree("events")?,
            timers: tree("timers")?,
            outbox: tree("outbox")?,
            registers: tree("registers")?,
            meta: tree("meta")?,
            db,
        })
    }

    /// Commits a batch atomically across trees, then makes it durable.
    pub async fn commit(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let trees = (
            &self.items,
            &self.events,
            &self.timers,
            &self.outbox,
            &self.registers,
            &self.meta,
            &self.definitions,
        );
        trees
            .transaction(
                |(items, events, timers, outbox, registers, meta, definitions)| {
                    for (k, v) in &batch.items {
                        items.insert(k.as_bytes(), v.as_slice())?;
                    }
                    for (k, v) in &batch.events {
                        events.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &batch.timers {
                        match v {
                            Some(v) => timers.insert(k.as_slice(), v.as_slice())?,
                            None => timers.remove(k.as_slice())?,
                        };
                    }
                    for (k, v) in &batch.outbox {
                        outbox.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &batch.registers {
                        registers.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &batch.meta {
                        meta.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (version, source) in &batch.definitions {
                        definitions.insert(version.as_bytes(), source.as_bytes())?;
                    }
                    Ok::<(), sled::transaction::ConflictableTransactionError<()>>(())
                },
            )
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => Error::Sled(e),
                sled::transaction::TransactionError::Abort(()) => Error::Corrupt {
                    key: "transaction".into(),
                    reason: "aborted".into(),
                },
            })?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Makes every write so far durable (used by the outbox worker's own rows).
    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Keeps a workflow version's source, so items started on it can finish on it.
    pub fn save_definition(&self, version: &str, source: &str) -> Result<()> {
        self.definitions.insert(version, source.as_bytes())?;
        Ok(())
    }

    /// Every stored workflow version: (version, source).
    pub fn definitions(&self) -> Result<Vec<(String, String)>> {
        self.definitions
            .iter()
            .map(|r| {
                let (k, v) = r?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                ))
            })
            .collect()
    }

    /// Rows of the outbox, decoded.
    pub fn mails<T: DeserializeOwned>(&self) -> impl Iterator<Item = Result<T>> + '_ {
        self.outbox.iter().map(|r| {
            let (k, v) = r?;
            decode(&k, &v)
        })
    }

    pub fn mail<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>> {
        self.outbox
            .get(id)?
            .map(|v| decode(id.as_bytes(), &v))
            .transpose()
    }

    /// Updates a mail row (the outbox worker's and the admin's own writes; not flushed).
    pub fn put_mail<T: Serialize>(&self, id: &str, mail: &T) -> Result<()> {
        self.outbox.insert(id, encode(mail))?;
        Ok(())
    }

    pub fn remove_mail(&self, id: &str) -> Result<bool> {
        Ok(self.outbox.remove(id)?.is_some())
    }

    pub fn meta_u64(&self, key: &str) -> Result<u64> {
        Ok(self
            .meta
            .get(key)?
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, u64::from_be_bytes))
    }

    pub fn items(&self) -> impl Iterator<Item = Result<Item>> + '_ {
        self.items.iter().map(|r| {
            let (k, v) = r?;
            decode(&k, &v)
        })
    }

    pub fn item(&self, id: &str) -> Result<Option<Item>> {
        self.items
            .get(id)?
            .map(|v| decode(id.as_bytes(), &v))
            .transpose()
    }

    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    pub fn events(&self, item: &str) -> impl Iterator<Item = Result<Record>> + '_ {
        let mut prefix = item.as_bytes().to_vec();
        prefix.push(0);
        self.events.scan_prefix(prefix).map(|r| {
            let (k, v) = r?;
            decode(&k, &v)
        })
    }

    /// Checks an item's chain: each record's hash, and each link to the one before.
    /// Returns the first broken sequence number, if any.
    pub fn verify_chain(&self, item: &str) -> Result<Option<u64>> {
        let mut prev = String::new();
        for (expected, r) in (1..).zip(self.events(item)) {
            let r = r?;
            if r.seq != expected
                || r.prev != prev
                || chain_hash(r.seq, r.at, &r.event, &r.prev) != r.hash
            {
                return Ok(Some(r.seq));
            }
            prev = r.hash;
        }
        Ok(None)
    }

    pub fn first_timer(&self) -> Result<Option<TimerKey>> {
        Ok(self.timers.first()?.and_then(|(k, _)| TimerKey::decode(&k)))
    }

    pub fn timer_exists(&self, key: &TimerKey) -> Result<bool> {
        Ok(self.timers.contains_key(key.encode())?)
    }

    pub fn timers(&self) -> impl Iterator<Item = TimerKey> + '_ {
        self.timers
            .iter()
            .keys()
            .filter_map(|k| k.ok().and_then(|k| TimerKey::decode(&k)))
    }

    /// Timer rows with their values (a scheduled start keeps the version that set it).
    pub fn timers_with_values(&self) -> impl Iterator<Item = (TimerKey, String)> + '_ {
        self.timers.iter().filter_map(|r| {
            let (k, v) = r.ok()?;
            Some((
                TimerKey::decode(&k)?,
                String::from_utf8_lossy(&v).into_owned(),
            ))
        })
    }

    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// The last number given in a series and year (0 when none).
    pub fn last_register_seq(&self, series: &str, year: i32) -> Result<u64> {
        let mut prefix = series.as_bytes().to_vec();
        prefix.push(0);
        prefix.extend_from_slice(&(year as u32).to_be_bytes());
        Ok(self
            .registers
            .scan_prefix(&prefix)
            .keys()
            .next_back()
            .transpose()?
            .and_then(|k| k.get(prefix.len()..).and_then(|s| s.try_into().ok()))
            .map_or(0, u64::from_be_bytes))
    }

    pub fn acts(&self) -> impl Iterator<Item = Result<Act>> + '_ {
        self.registers.iter().map(|r| {
            let (k, v) = r?;
            decode(&k, &v)
        })
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_keys_sort_by_due_and_round_trip() {
        let a = TimerKey {
            due: Utc.timestamp_millis_opt(1_000).unwrap(),
            owner: "item-9".into(),
            name: "close:0".into(),
        };
        let b = TimerKey {
            due: Utc.timestamp_millis_opt(2_000).unwrap(),
            owner: "item-1".into(),
            name: "next@x".into(),
        };
        assert!(a.encode() < b.encode());
        assert_eq!(TimerKey::decode(&a.encode()), Some(a));
        assert_eq!(TimerKey::decode(b"short"), None);
    }

    #[test]
    fn a_second_open_of_the_same_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let second = Store::open(dir.path());
        assert!(matches!(second, Err(Error::Open(..))));
    }
}
