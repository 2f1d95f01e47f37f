//! The store: every sled call of councild lives here.
//!
//! Trees (DESIGN.md section 3): `definitions` (version → source), `items` (id → state),
//! `ends` (id → where the item's log ends and how many votes each ballot has),
//! `events` (item ‖ seq → event record, hash-chained), `timers` (due ‖ owner ‖ name),
//! `outbox` (mail id → mail), `contexts` (key → the data several mails share, see
//! [`Store::sweep_contexts`]), `registers` (series ‖ year ‖ number → act), `meta`, and
//! `accounts` (the secretariat's users, sessions and API tokens, see `crate::accounts`),
//! and `documents` (SHA-256 → the bytes of a version of an item's text).
//! An item's state is split so that a vote writes a few bytes: `votes` (item ‖ ballot ‖
//! member → choice) holds the ballots' votes and `electorates` (content hash → voters) one
//! copy of each distinct electorate; the `items` row holds the rest, with a checksum, and
//! the small `ends` row what a vote changes besides its vote row ([`codec::ItemRows`]).
//! Keys are big-endian so ranges scan in order; values are a format byte and JSON (a vote
//! row's value is the choice itself).
//! Writes that belong together go through [`Store::commit`] as one transaction followed by
//! a flush and an `fdatasync` ([`crate::shell::durable`]): nothing is acknowledged before it would
//! survive a power cut.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::Transactional;

mod codec;
mod compact;
mod keys;

pub use crate::engine::Record;
use crate::engine::{Electorate, Item};
pub use codec::{CHECKSUM, ItemRows, decode, decode_item, encode, encode_item};
pub use compact::{Compacted, compact, folder_bytes};
use keys::item_prefix;
pub use keys::{Owner, TimerKey, event_key, register_key, vote_key};

/// sled's page cache. Its default (1 GB) is mostly spent on mail rows already sent: the
/// writer keeps every item in memory and reads the store only at start.
const CACHE_BYTES: u64 = 64 << 20;
/// sled's segment (and io buffer) for a new store; its default is 512 KB. A store's log
/// is cleaned a segment at a time: with larger segments sled relocates fewer live pages
/// and has fewer segments to read at start (10.0 against 14.1 KB written a vote, and a
/// start 0.6 × as long, in `docs/performance.md`). sled keeps the size a store was made
/// with and refuses another, so a store made before keeps its own until `councild compact`.
const SEGMENT_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the data folder {0} is in use by another councild: {1}")]
    InUse(String, sled::Error),
    #[error("the store in {0} cannot be opened: {1}")]
    Open(String, sled::Error),
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("storage: {0}")]
    Durable(#[from] crate::shell::durable::Error),
    #[error("stored value under {key} cannot be read: {reason}")]
    Corrupt { key: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

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
    /// The SHA-256 of each language's adopted version of the text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub texts: BTreeMap<String, String>,
}

/// Writes staged for one commit.
#[derive(Default)]
pub struct Batch {
    /// Items' body rows and end rows, from [`encode_item`]: a body is written only when it
    /// changed, an end with every change.
    pub items: BTreeMap<String, Vec<u8>>,
    pub ends: BTreeMap<String, Vec<u8>>,
    pub events: Vec<(Vec<u8>, Vec<u8>)>,
    /// Vote rows ([`vote_key`] → choice); `None` removes one.
    pub votes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Electorates by id.
    pub electorates: BTreeMap<String, Vec<u8>>,
    pub timers: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub outbox: Vec<(Vec<u8>, Vec<u8>)>,
    /// Data shared by the mails of this batch and later ones (key → encoded JSON).
    pub contexts: Vec<(Vec<u8>, Vec<u8>)>,
    pub registers: Vec<(Vec<u8>, Vec<u8>)>,
    pub meta: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Workflow versions: content hash → source.
    pub definitions: Vec<(String, String)>,
}

impl Batch {
    /// Bytes of the rows written (keys and values; a removal counts its key), by tree:
    /// what the bytes written to disk are compared to.
    pub fn bytes_by_tree(&self) -> [(&'static str, usize); 11] {
        fn rows<K: AsRef<[u8]>, V: AsRef<[u8]>>(rows: impl Iterator<Item = (K, V)>) -> usize {
            rows.map(|(k, v)| k.as_ref().len() + v.as_ref().len()).sum()
        }
        let maybe = |m: &BTreeMap<Vec<u8>, Option<Vec<u8>>>| {
            rows(m.iter().map(|(k, v)| (k, v.as_deref().unwrap_or_default())))
        };
        [
            (
                "items",
                rows(self.items.iter().map(|(k, v)| (k.as_bytes(), v))),
            ),
            (
                "ends",
                rows(self.ends.iter().map(|(k, v)| (k.as_bytes(), v))),
            ),
            ("events", rows(self.events.iter().map(|(k, v)| (k, v)))),
            ("votes", maybe(&self.votes)),
            (
                "electorates",
                rows(self.electorates.iter().map(|(k, v)| (k.as_bytes(), v))),
            ),
            ("timers", maybe(&self.timers)),
            ("outbox", rows(self.outbox.iter().map(|(k, v)| (k, v)))),
            ("contexts", rows(self.contexts.iter().map(|(k, v)| (k, v)))),
            (
                "registers",
                rows(self.registers.iter().map(|(k, v)| (k, v))),
            ),
            ("meta", rows(self.meta.iter())),
            (
                "definitions",
                rows(
                    self.definitions
                        .iter()
                        .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
                ),
            ),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
            && self.ends.is_empty()
            && self.events.is_empty()
            && self.votes.is_empty()
            && self.electorates.is_empty()
            && self.timers.is_empty()
            && self.outbox.is_empty()
            && self.contexts.is_empty()
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
    ends: sled::Tree,
    events: sled::Tree,
    votes: sled::Tree,
    electorates: sled::Tree,
    /// Electorates read so far: items that share one share its copy.
    electorate_cache: Arc<Mutex<HashMap<String, Arc<Electorate>>>>,
    timers: sled::Tree,
    outbox: sled::Tree,
    contexts: sled::Tree,
    /// Contexts the writer may still name in mails it has yet to stage.
    held: Arc<Mutex<HashSet<Vec<u8>>>>,
    registers: sled::Tree,
    meta: sled::Tree,
    accounts: sled::Tree,
    documents: sled::Tree,
    sync: Arc<crate::shell::durable::Sync>,
}

impl Store {
    /// Opens (or creates) the store in `path`. A second process on the same folder is refused.
    pub fn open(path: &Path) -> Result<Store> {
        let lock = compact::lock_store(path)?;
        compact::recover(path)?;
        let db = open_db(path)?;
        drop(lock);
        let tree = |name: &str| db.open_tree(name);
        Ok(Store {
            definitions: tree("definitions")?,
            items: tree("items")?,
            ends: tree("ends")?,
            events: tree("events")?,
            votes: tree("votes")?,
            electorates: tree("electorates")?,
            electorate_cache: Default::default(),
            timers: tree("timers")?,
            outbox: tree("outbox")?,
            contexts: tree("contexts")?,
            held: Default::default(),
            registers: tree("registers")?,
            meta: tree("meta")?,
            accounts: tree("accounts")?,
            documents: tree("documents")?,
            sync: Arc::new(crate::shell::durable::Sync::open(path)?),
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
        let rows = encode_item(item);
        batch.items.insert(item.id.clone(), rows.body);
        batch.ends.insert(item.id.clone(), rows.end);
        Ok(())
    }

    /// Commits a batch atomically across trees, then makes it durable.
    pub async fn commit(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let trees = (
            &self.items,
            &self.ends,
            &self.events,
            &self.votes,
            &self.electorates,
            &self.timers,
            &self.outbox,
            &self.contexts,
            &self.registers,
            &self.meta,
            &self.definitions,
        );
        trees
            .transaction(
                |(
                    items,
                    ends,
                    events,
                    votes,
                    electorates,
                    timers,
                    outbox,
                    contexts,
                    registers,
                    meta,
                    definitions,
                )| {
                    for (k, v) in &batch.items {
                        items.insert(k.as_bytes(), v.as_slice())?;
                    }
                    for (k, v) in &batch.ends {
                        ends.insert(k.as_bytes(), v.as_slice())?;
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
                    for (k, v) in &batch.contexts {
                        contexts.insert(k.as_slice(), v.as_slice())?;
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
        self.flush().await
    }

    /// Makes every write so far durable, across a power cut (the outbox worker's and the
    /// admin's own rows use it too). Overlapping calls share one sync.
    pub async fn flush(&self) -> Result<()> {
        Ok(self.sync.sync(&self.db).await?)
    }

    /// The same for the outbox's marks: while the writer commits, they are made durable by
    /// its next sync rather than by one of their own that its commit would wait behind.
    pub async fn flush_soon(&self) -> Result<()> {
        Ok(self.sync.sync_soon(&self.db).await?)
    }

    /// Stores a document's bytes under their SHA-256, durably, before any event names it
    /// (a version no event names is harmless: content-addressed, written once). Returns
    /// the hash.
    pub async fn put_document(&self, bytes: &[u8]) -> Result<String> {
        let sha256 = self.insert_document(bytes)?;
        self.flush().await?;
        Ok(sha256)
    }

    /// The same, made durable by the next flush (the writer's commit, for a version it
    /// makes itself).
    pub fn insert_document(&self, bytes: &[u8]) -> Result<String> {
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
        // Written when new, or when the stored copy no longer has its hash (repaired).
        if self.document(&sha256).ok().flatten().is_none() {
            self.documents.insert(sha256.as_bytes(), bytes)?;
        }
        Ok(sha256)
    }

    pub fn has_document(&self, sha256: &str) -> Result<bool> {
        Ok(self.documents.contains_key(sha256.as_bytes())?)
    }

    /// A document's bytes, checked against their hash: a changed stored version is an
    /// error, never served.
    pub fn document(&self, sha256: &str) -> Result<Option<Vec<u8>>> {
        let Some(bytes) = self.documents.get(sha256.as_bytes())? else {
            return Ok(None);
        };
        let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if actual != sha256 {
            return Err(Error::Corrupt {
                key: format!("documents/{sha256}"),
                reason: format!("its bytes have the SHA-256 {actual}: the stored text was changed"),
            });
        }
        Ok(Some(bytes.to_vec()))
    }

    /// An account row: `user/NAME`, `session/HASH`, `token/HASH` (see `crate::accounts`).
    /// Account writes are made durable by the caller's [`Store::flush`].
    pub fn account<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.accounts.get(key)? {
            Some(v) => Ok(Some(decode(key.as_bytes(), &v)?)),
            None => Ok(None),
        }
    }

    pub fn put_account<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        self.accounts.insert(key, encode(value))?;
        Ok(())
    }

    /// Writes an account row only if there is none under `key`; false if there was.
    pub fn add_account<T: Serialize>(&self, key: &str, value: &T) -> Result<bool> {
        let added = self
            .accounts
            .compare_and_swap(key, None::<&[u8]>, Some(encode(value)))?;
        Ok(added.is_ok())
    }

    pub fn remove_account(&self, key: &str) -> Result<bool> {
        Ok(self.accounts.remove(key)?.is_some())
    }

    /// Every account row under `prefix`, in key order, with its key.
    pub fn accounts<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, T)>> + '_ {
        self.accounts.scan_prefix(prefix).map(|row| {
            let (k, v) = row?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let value = decode(&k, &v)?;
            Ok((key, value))
        })
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

    /// Updates a mail row (the outbox worker's and the admin's own writes; durable after
    /// the next [`Store::flush`]).
    pub fn put_mail<T: Serialize>(&self, id: &str, mail: &T) -> Result<()> {
        self.outbox.insert(id, encode(mail))?;
        Ok(())
    }

    pub fn remove_mail(&self, id: &str) -> Result<bool> {
        Ok(self.outbox.remove(id)?.is_some())
    }

    /// The data mails share under `key`, decoded.
    pub fn context<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.contexts
            .get(key)?
            .map(|v| decode(key.as_bytes(), &v))
            .transpose()
    }

    /// Marks `key` as one the writer may name in mails it has not staged yet (the context
    /// it commits with the first of them), so that a sweep keeps it meanwhile.
    pub fn hold_context(&self, key: &str) {
        self.held_contexts().insert(key.as_bytes().to_vec());
    }

    /// The writer names `keys` in no more mails: once the mails naming them are sent, a
    /// sweep removes them. Called only after the commit of the last mail naming them.
    pub fn release_contexts(&self, keys: impl IntoIterator<Item = String>) {
        let mut held = self.held_contexts();
        for key in keys {
            held.remove(key.as_bytes());
        }
    }

    fn held_contexts(&self) -> std::sync::MutexGuard<'_, HashSet<Vec<u8>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the contexts no mail names and the writer does not hold; returns how many.
    /// The held set is read first, the contexts listed next, the mails scanned last: a
    /// context committed after the listing is not a candidate, one committed before it
    /// came with its mails, and one released before the sweep began has all its mails
    /// committed already. The removals are made durable by the next sync (one lost to a
    /// crash is swept again; a removal that lasts implies the mails' removals before it).
    pub fn sweep_contexts(&self) -> Result<usize> {
        /// The one field of a mail row a sweep reads (`mail::Mail::shared`).
        #[derive(Deserialize)]
        struct Names {
            #[serde(rename = "s", alias = "shared")]
            shared: Option<String>,
        }
        let held = self.held_contexts().clone();
        let mut unnamed = BTreeSet::new();
        for key in self.contexts.iter().keys() {
            let key = key?;
            if !held.contains(&*key) {
                unnamed.insert(key.to_vec());
            }
        }
        if unnamed.is_empty() {
            return Ok(0);
        }
        for row in self.outbox.iter() {
            let (k, v) = row?;
            if let Ok(Names { shared: Some(key) }) = decode(&k, &v) {
                unnamed.remove(key.as_bytes());
            }
        }
        for key in &unnamed {
            self.contexts.remove(key)?;
        }
        Ok(unnamed.len())
    }

    /// Rows in `contexts`: the data of mails still to send, or of ones failed.
    pub fn context_count(&self) -> usize {
        self.contexts.len()
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
        let end = self.ends.get(id)?;
        let votes = self
            .votes
            .scan_prefix(item_prefix(id))
            .collect::<sled::Result<Vec<_>>>()?;
        self.assemble(id, &row, end.as_deref(), &votes).map(Some)
    }

    /// Every stored item in key order, read in one pass over the item, end and vote rows
    /// (much cheaper than one `item` call each). The outer error is a storage failure; the
    /// inner one, an item whose rows do not agree.
    pub fn items(&self) -> impl Iterator<Item = Result<(String, Result<Item>)>> + '_ {
        // Vote keys begin with their item's id and a 0 byte, so they sort as the ids do.
        let mut votes = self.votes.iter().peekable();
        let mut ends = self.ends.iter().peekable();
        self.items.iter().map(move |row| {
            let (key, row) = row?;
            let id = String::from_utf8_lossy(&key).into_owned();
            // Ends of items that have no row of their own are passed over.
            let end = loop {
                let order = match ends.peek() {
                    Some(Ok((k, _))) => Some(k.as_ref().cmp(key.as_ref())),
                    // Taken next, so that its error is returned.
                    Some(Err(_)) => Some(Ordering::Less),
                    None => None,
                };
                match order {
                    Some(Ordering::Less) => {
                        ends.next().transpose()?;
                    }
                    Some(Ordering::Equal) => break ends.next().transpose()?.map(|(_, v)| v),
                    _ => break None,
                }
            };
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
            let item = self.assemble(&id, &row, end.as_deref(), &rows);
            Ok((id, item))
        })
    }

    fn assemble(
        &self,
        id: &str,
        row: &[u8],
        end: Option<&[u8]>,
        votes: &[(sled::IVec, sled::IVec)],
    ) -> Result<Item> {
        let corrupt = |reason: String| Error::Corrupt {
            key: id.to_string(),
            reason,
        };
        let (cast, mut item) = decode_item(id, row, end)?;
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

    /// Event `seq` of the item's log.
    pub fn event(&self, item: &str, seq: u64) -> Result<Option<Record>> {
        let key = event_key(item, seq);
        self.events.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    pub fn events(&self, item: &str) -> impl Iterator<Item = Result<Record>> + '_ {
        self.events.scan_prefix(item_prefix(item)).map(|r| {
            let (k, v) = r?;
            decode(&k, &v)
        })
    }

    /// The record of a member's latest vote for `choice` in a ballot: the receipt it was
    /// given. Read from the end of the log, so recent votes are found at once. The choice
    /// is part of the question because a later vote may have come in since the caller
    /// learnt that `choice` was the member's vote: its receipt is not this one's.
    pub fn last_vote(
        &self,
        item: &str,
        ballot: usize,
        member: &str,
        choice: &str,
    ) -> Result<Option<Record>> {
        for row in self.events.scan_prefix(item_prefix(item)).rev() {
            let (k, v) = row?;
            let record: Record = decode(&k, &v)?;
            if let crate::engine::Event::VoteCast {
                ballot: b,
                member: m,
                choice: c,
                ..
            } = &record.event
                && *b == ballot
                && m == member
                && c == choice
            {
                return Ok(Some(record));
            }
        }
        Ok(None)
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

/// Opens sled's store in `path` (made if absent) as councild configures it: also for the
/// tools and tests that reach its trees directly, since sled refuses a store opened with
/// another segment size than it was made with.
pub fn open_db(path: &Path) -> Result<sled::Db> {
    remove_unfinished_snapshots(path)?;
    sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        .segment_size(segment_size(path))
        .open()
        .map_err(|e| {
            let folder = path.display().to_string();
            // sled's words when another process holds the lock on its `db` file.
            if e.to_string().contains("could not acquire lock") {
                Error::InUse(folder, e)
            } else {
                Error::Open(folder, e)
            }
        })
}

/// The segment size of the store in `path`: the one its `conf` file names (sled writes it
/// as `segment_size: N` lines, then a CRC), or [`SEGMENT_BYTES`] for a new store. A `conf`
/// that cannot be read this way is left to sled, which names what is wrong with it.
fn segment_size(path: &Path) -> usize {
    let Ok(conf) = std::fs::read(path.join("conf")) else {
        return SEGMENT_BYTES;
    };
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size: ")?.trim().parse().ok())
        .unwrap_or(SEGMENT_BYTES)
}

/// sled writes a snapshot as `snap.N.generating` and renames it when it is whole, but
/// reads a `.generating` file as a snapshot too. One left by a start that failed midway (a
/// full disk) is empty or cut short, and every later start would fail on it; the log and
/// the previous snapshot hold everything it would have, so it goes.
fn remove_unfinished_snapshots(path: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing a snapshot sled did not finish writing");
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::Open(path.display().to_string(), sled::Error::Io(e)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
