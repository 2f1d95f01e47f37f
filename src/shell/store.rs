//! The store: every sled call of councild lives here.
//!
//! Trees (DESIGN.md section 3): `definitions` (version → source), `items` (id → state),
//! `events` (item ‖ seq → event record, hash-chained), `timers` (due ‖ owner ‖ name),
//! `outbox` (mail id → mail), `registers` (series ‖ year ‖ number → act), `meta`.
//! An item's state is split so that a vote writes a few bytes: `votes` (item ‖ ballot ‖
//! member → choice) holds the ballots' votes and `electorates` (content hash → voters) one
//! copy of each distinct electorate; the `items` row holds the rest, with a checksum.
//! Keys are big-endian so ranges scan in order; values are a format byte and JSON (a vote
//! row's value is the choice itself).
//! Writes that belong together go through [`Store::commit`] as one transaction followed by
//! a flush: nothing is acknowledged before it is on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use sled::Transactional;

pub use crate::engine::Record;
use crate::engine::{Electorate, Item, Timer};

/// The first byte of every stored value: the encoding's version.
const FORMAT: u8 = 1;
/// The first byte of an item row: a checksum, then the item without votes and voters.
const SNAPSHOT: u8 = 2;
const CHECKSUM: usize = 16;
/// sled's page cache. Its default (1 GB) is mostly spent on mail rows already sent: the
/// writer keeps every item in memory and reads the store only at start.
const CACHE_BYTES: u64 = 64 << 20;

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
    /// Item rows, from [`encode_item`].
    pub items: BTreeMap<String, Vec<u8>>,
    pub events: Vec<(Vec<u8>, Vec<u8>)>,
    /// Vote rows ([`vote_key`] → choice); `None` removes one.
    pub votes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Electorates by id.
    pub electorates: BTreeMap<String, Vec<u8>>,
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
            && self.votes.is_empty()
            && self.electorates.is_empty()
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
    votes: sled::Tree,
    electorates: sled::Tree,
    /// Electorates read so far: items that share one share its copy.
    electorate_cache: Arc<Mutex<HashMap<String, Arc<Electorate>>>>,
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

/// An item's row: its state without the ballots' votes and voters (stored in their own
/// rows), the number of votes of each ballot, and a checksum of all that.
pub fn encode_item(item: &Item) -> Vec<u8> {
    let cast: Vec<usize> = item.ballots.iter().map(|b| b.cast()).collect();
    let body = serde_json::to_vec(&(cast, item)).unwrap_or_default();
    let mut out = Vec::with_capacity(1 + CHECKSUM + body.len());
    out.push(SNAPSHOT);
    out.extend_from_slice(&Sha256::digest(&body)[..CHECKSUM]);
    out.extend_from_slice(&body);
    out
}

fn item_prefix(item: &str) -> Vec<u8> {
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

impl Store {
    /// Opens (or creates) the store in `path`. A second process on the same folder is refused.
    pub fn open(path: &Path) -> Result<Store> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| Error::Open(path.display().to_string(), e))?;
        let tree = |name: &str| db.open_tree(name);
        Ok(Store {
            definitions: tree("definitions")?,
            items: tree("items")?,
            events: tree("events")?,
            votes: tree("votes")?,
            electorates: tree("electorates")?,
            electorate_cache: Default::default(),
            timers: tree("timers")?,
            outbox: tree("outbox")?,
            registers: tree("registers")?,
            meta: tree("meta")?,
            db,
        })
    }

    /// Every row an item's state needs: its own, its vote rows (and removals of rows it no
    /// longer has), and its electorates.
    pub fn stage_item(&self, item: &Item, batch: &mut Batch) -> Result<()> {
        for k in self.votes.scan_prefix(item_prefix(&item.id)).keys() {
            batch.votes.insert(k?.to_vec(), None);
        }
        for (i, b) in item.ballots.iter().enumerate() {
            for (voter, choice) in b.votes() {
                batch.votes.insert(
                    vote_key(&item.id, i, &voter.member),
                    Some(choice.as_bytes().to_vec()),
                );
            }
            batch
                .electorates
                .insert(b.electorate.id().to_string(), encode(&*b.electorate));
        }
        batch.items.insert(item.id.clone(), encode_item(item));
        Ok(())
    }

    /// Commits a batch atomically across trees, then makes it durable.
    pub async fn commit(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let trees = (
            &self.items,
            &self.events,
            &self.votes,
            &self.electorates,
            &self.timers,
            &self.outbox,
            &self.registers,
            &self.meta,
            &self.definitions,
        );
        trees
            .transaction(
                |(
                    items,
                    events,
                    votes,
                    electorates,
                    timers,
                    outbox,
                    registers,
                    meta,
                    definitions,
                )| {
                    for (k, v) in &batch.items {
                        items.insert(k.as_bytes(), v.as_slice())?;
                    }
                    for (k, v) in &batch.events {
                        events.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &batch.votes {
                        match v {
                            Some(v) => votes.insert(k.as_slice(), v.as_slice())?,
                            None => votes.remove(k.as_slice())?,
                        };
                    }
                    for (k, v) in &batch.electorates {
                        electorates.insert(k.as_bytes(), v.as_slice())?;
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

    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// An item's stored state, put together from its row, its vote rows and its
    /// electorates. A row whose checksum or vote count does not match is `Corrupt`.
    pub fn item(&self, id: &str) -> Result<Option<Item>> {
        let Some(row) = self.items.get(id)? else {
            return Ok(None);
        };
        let votes = self
            .votes
            .scan_prefix(item_prefix(id))
            .collect::<sled::Result<Vec<_>>>()?;
        self.assemble(id, &row, &votes).map(Some)
    }

    /// Every stored item in key order, read in one pass over the item and vote rows (much
    /// cheaper than one `item` call each). The outer error is a storage failure; the inner
    /// one, an item whose rows do not agree.
    pub fn items(&self) -> impl Iterator<Item = Result<(String, Result<Item>)>> + '_ {
        // Vote keys begin with their item's id and a 0 byte, so they sort as the ids do.
        let mut votes = self.votes.iter().peekable();
        self.items.iter().map(move |row| {
            let (key, row) = row?;
            let id = String::from_utf8_lossy(&key).into_owned();
            let prefix = item_prefix(&id);
            let mut rows = Vec::new();
            while let Some(next) = votes.peek() {
                match next {
                    Ok((k, _)) if k.starts_with(&prefix) => {}
                    // Rows of an item that has no row of its own.
                    Ok((k, _)) if k.as_ref() < prefix.as_slice() => {}
                    Ok(_) => break,
                    Err(_) => {}
                }
                if let Some(vote) = votes.next() {
                    let (k, v) = vote?;
                    if k.starts_with(&prefix) {
                        rows.push((k, v));
                    }
                }
            }
            let item = self.assemble(&id, &row, &rows);
            Ok((id, item))
        })
    }

    fn assemble(&self, id: &str, row: &[u8], votes: &[(sled::IVec, sled::IVec)]) -> Result<Item> {
        let corrupt = |reason: String| Error::Corrupt {
            key: id.to_string(),
            reason,
        };
        let body = match row.split_first() {
            Some((&SNAPSHOT, rest)) if rest.len() >= CHECKSUM => {
                let (sum, body) = rest.split_at(CHECKSUM);
                if Sha256::digest(body)[..CHECKSUM] != *sum {
                    return Err(corrupt("the checksum does not match".into()));
                }
                body
            }
            Some((v, _)) => return Err(corrupt(format!("unknown item format {v}"))),
            None => return Err(corrupt("empty value".into())),
        };
        let (cast, mut item): (Vec<usize>, Item) =
            serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))?;
        for b in item.ballots.iter_mut() {
            b.electorate = self.electorate(b.electorate.id())?;
        }
        let prefix = item_prefix(id).len();
        for (k, v) in votes {
            let (ballot, member) = k
                .get(prefix..prefix + 4)
                .and_then(|b| b.try_into().ok())
                .map(|b| (u32::from_be_bytes(b) as usize, &k[prefix + 4..]))
                .ok_or_else(|| corrupt("a vote row's key is cut short".into()))?;
            let member = String::from_utf8_lossy(member);
            let recorded = item
                .ballots
                .get_mut(ballot)
                .is_some_and(|b| b.record(&member, &String::from_utf8_lossy(v)));
            if !recorded {
                return Err(corrupt(format!(
                    "ballot {ballot} has a vote row of `{member}`, who cannot vote so"
                )));
            }
        }
        for (i, b) in item.ballots.iter().enumerate() {
            if cast.get(i) != Some(&b.cast()) {
                return Err(corrupt(format!(
                    "ballot {i} has {} vote rows, its item row counts {:?}",
                    b.cast(),
                    cast.get(i)
                )));
            }
        }
        Ok(item)
    }

    /// One copy of each electorate, shared by every item that has it.
    fn electorate(&self, id: &str) -> Result<Arc<Electorate>> {
        if id.is_empty() {
            return Ok(Arc::default());
        }
        let mut cache = self
            .electorate_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(e) = cache.get(id) {
            return Ok(e.clone());
        }
        let row = self.electorates.get(id)?.ok_or_else(|| Error::Corrupt {
            key: id.to_string(),
            reason: "electorate missing".into(),
        })?;
        let e: Electorate = decode(id.as_bytes(), &row)?;
        if e.id() != id {
            return Err(Error::Corrupt {
                key: id.to_string(),
                reason: "electorate does not match its id".into(),
            });
        }
        let e = Arc::new(e);
        cache.insert(id.to_string(), e.clone());
        Ok(e)
    }

    /// Whether `seq` is the last event of the item's log and has the hash `head`.
    pub fn log_ends_at(&self, item: &str, seq: u64, head: &str) -> Result<bool> {
        #[derive(Deserialize)]
        struct Hash {
            hash: String,
        }
        let key = event_key(item, seq);
        let Some(row) = self.events.get(&key)? else {
            return Ok(false);
        };
        let last: Hash = decode(&key, &row)?;
        Ok(last.hash == head && !self.events.contains_key(event_key(item, seq + 1))?)
    }

    pub fn events(&self, item: &str) -> impl Iterator<Item = Result<Record>> + '_ {
        self.events.scan_prefix(item_prefix(item)).map(|r| {
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
            if r.seq != expected || r.prev != prev || !r.is_sound() {
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
            owner: Owner::Item("item-9".into(), Timer::Close(0)),
        };
        let b = TimerKey {
            due: Utc.timestamp_millis_opt(2_000).unwrap(),
            owner: Owner::Schedule("council-session".into()),
        };
        assert!(a.encode() < b.encode());
        // The bytes are those the store has always had.
        assert_eq!(&a.encode()[8..], b"item-9\0close:0");
        assert_eq!(&b.encode()[8..], b"@schedule/council-session\0start");
        assert_eq!(TimerKey::decode(&a.encode()), Some(a));
        assert_eq!(TimerKey::decode(&b.encode()), Some(b));
        assert_eq!(TimerKey::decode(b"short"), None);
    }

    fn item_with_votes() -> Item {
        use crate::engine::{Ballot, Status, Voter};
        let at = Utc.timestamp_millis_opt(0).unwrap();
        let voter = |m: &str| Voter {
            member: m.into(),
            member_name: m.into(),
            delegate: 0,
            name: m.into(),
            email: format!("{m}@example.org"),
            language: "en".into(),
            attributes: Default::default(),
            groups: Vec::new(),
        };
        let electorate = Arc::new(Electorate::new(vec![voter("AAA"), voter("BBB")]));
        let mut item = Item {
            id: "item-1".into(),
            workflow: "w".into(),
            version: "v".into(),
            inputs: Default::default(),
            started_at: at,
            stage: "vote".into(),
            entered_at: at,
            status: Status::Open,
            outcome: None,
            register_number: None,
            ballots: vec![Ballot {
                stage: "vote".into(),
                question: "?".into(),
                choices: vec!["yes".into(), "no".into()],
                opened_at: at,
                closes_at: at,
                electorate,
                members: 2,
                votes: Default::default(),
                result: None,
                recorded: false,
                seed: String::new(),
            }],
            signals: Vec::new(),
            timers: Default::default(),
            awaiting: None,
            seq: 3,
            head: "h".into(),
        };
        assert!(item.ballots[0].record("AAA", "yes"));
        item
    }

    #[tokio::test]
    async fn an_item_is_stored_in_rows_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let item = item_with_votes();
        let mut batch = Batch::default();
        store.stage_item(&item, &mut batch).unwrap();
        store.commit(&batch).await.unwrap();
        assert_eq!(store.item("item-1").unwrap(), Some(item.clone()));
        // A row of another item, before and after it in key order, is not taken for its own.
        let mut other = item.clone();
        for id in ["item-0", "item-10"] {
            other.id = id.into();
            let mut batch = Batch::default();
            store.stage_item(&other, &mut batch).unwrap();
            store.commit(&batch).await.unwrap();
        }
        let all: Vec<(String, Item)> = store
            .items()
            .map(|r| r.map(|(id, item)| (id, item.unwrap())).unwrap())
            .collect();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1], ("item-1".to_string(), item.clone()));
        let row = store.items.get("item-1").unwrap().unwrap();
        assert!(row.len() < 1_000, "no voters in the item's row");

        // A vote row added behind the store's back, then an edited item row: both refused.
        store
            .votes
            .insert(vote_key("item-1", 0, "BBB"), "no")
            .unwrap();
        let err = store.item("item-1").unwrap_err().to_string();
        assert!(err.contains("vote rows"), "{err}");
        let mut edited = row.to_vec();
        let last = edited.len() - 2;
        edited[last] ^= 1;
        store.items.insert("item-1", edited).unwrap();
        let err = store.item("item-1").unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn a_second_open_of_the_same_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let second = Store::open(dir.path());
        assert!(matches!(second, Err(Error::Open(..))));
    }
}
