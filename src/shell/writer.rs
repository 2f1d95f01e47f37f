//! The single writer: the one task that changes items, with group commit.
//!
//! HTTP handlers, the timer task and the CLI (through the admin API) send requests over a
//! bounded channel. The writer takes every queued request up to [`MAX_BATCH`], runs
//! `engine::apply` for each, stages the event records, item states, timers, outbox mail and
//! register entries, commits them in one transaction, flushes once, and only then answers
//! every waiting request and wakes the timer and outbox tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::clock::Clock;
use crate::definition::{Audience, Definitions, Workflow};
use crate::engine::{self, Context, Effect, Electorate, Event, Facts, Item, Recipients, Rejection};
use crate::mail::{self, Mail, Recipient};
use crate::observe::{KindLabel, Metrics};
use crate::roster::Roster;
use crate::store::{self, Act, Batch, Owner, Record, Store, TimerKey};

/// Most requests committed together.
pub const MAX_BATCH: usize = 512;
/// Requests that may wait for the writer before senders are slowed down.
pub const QUEUE: usize = 8_192;
const NEXT_ITEM: &str = "next_item";

/// What a committed request answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub item: String,
    pub seq: u64,
    /// Hash of the request's event record: the receipt.
    pub hash: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Rejected(#[from] Rejection),
    #[error("no item `{0}`")]
    NoItem(String),
    #[error("no workflow `{0}`")]
    NoWorkflow(String),
    #[error("storage failure: {0}")]
    Store(String),
    #[error("the daemon is shutting down")]
    Closed,
}

enum Request {
    Start {
        workflow: String,
        inputs: BTreeMap<String, String>,
        reply: oneshot::Sender<Result<Done, WriteError>>,
    },
    Event {
        item: String,
        event: Event,
        reply: oneshot::Sender<Result<Done, WriteError>>,
    },
    Timer {
        key: TimerKey,
        reply: oneshot::Sender<()>,
    },
    Reload {
        workflows: Vec<Workflow>,
        reply: oneshot::Sender<()>,
    },
    /// A mail not caused by an item's event (an answer to an inbound reply).
    Mail {
        mail: Box<Mail>,
        reply: oneshot::Sender<()>,
    },
}

/// Wakes the tasks that act on committed state.
#[derive(Clone, Default)]
pub struct Wake {
    pub timers: Arc<Notify>,
    pub outbox: Arc<Notify>,
    /// Told when a commit failed: the store may be unusable until a restart (sled keeps a
    /// failed I/O state), so the daemon stops and its supervisor starts it again.
    pub storage_failed: Arc<Notify>,
}

/// The committed state of every item, for readers: replaced after each durable batch, so
/// that ballot pages and votes read an item without decoding it from the store.
#[derive(Default)]
pub struct Items(std::sync::RwLock<HashMap<String, Arc<Item>>>);

impl Items {
    pub fn get(&self, id: &str) -> Option<Arc<Item>> {
        self.0.read().ok()?.get(id).cloned()
    }

    /// Every item, in no particular order.
    pub fn all(&self) -> Vec<Arc<Item>> {
        self.0
            .read()
            .map(|map| map.values().cloned().collect())
            .unwrap_or_default()
    }

    fn publish(&self, items: impl Iterator<Item = Arc<Item>>) {
        if let Ok(mut map) = self.0.write() {
            for item in items {
                map.insert(item.id.clone(), item);
            }
        }
    }
}

/// A cheap handle to send requests to the writer.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
}

impl Handle {
    pub async fn start(
        &self,
        workflow: String,
        inputs: BTreeMap<String, String>,
    ) -> Result<Done, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Start {
            workflow,
            inputs,
            reply,
        })
        .await?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    pub async fn event(&self, item: String, event: Event) -> Result<Done, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Event { item, event, reply }).await?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    /// Queues a due timer; the receiver answers once it is committed (or found gone).
    pub async fn fire(&self, key: TimerKey) -> Result<oneshot::Receiver<()>, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Timer { key, reply }).await?;
        Ok(rx)
    }

    /// Makes `workflows` the current versions; returns once they are stored and in force.
    pub async fn reload(&self, workflows: Vec<Workflow>) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Reload { workflows, reply }).await?;
        rx.await
            .map_err(|_| WriteError::Store("the definitions could not be stored".into()))
    }

    /// Queues a mail in the outbox; returns once it is durable.
    pub async fn mail(&self, mail: Mail) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Mail {
            mail: Box::new(mail),
            reply,
        })
        .await?;
        rx.await
            .map_err(|_| WriteError::Store("the mail could not be stored".into()))
    }

    async fn send(&self, r: Request) -> Result<(), WriteError> {
        self.tx.send(r).await.map_err(|_| WriteError::Closed)
    }
}

pub struct Writer {
    store: Store,
    clock: Clock,
    defs: Arc<ArcSwap<Definitions>>,
    roster: Arc<Roster>,
    tz: Tz,
    /// The electorate a ballot opening now gets (the roster is fixed while the daemon runs).
    electorate: Arc<engine::Electorate>,
    /// Shared with the published items until a request changes one.
    items: HashMap<String, Arc<Item>>,
    next_item: u64,
    registers: HashMap<(String, i32), u64>,
    wake: Wake,
    metrics: Arc<Metrics>,
    published: Arc<Items>,
    rx: mpsc::Receiver<Request>,
}

/// What one batch changes, and how to take it back if the commit fails.
#[derive(Default)]
struct Staged {
    batch: Batch,
    undo: HashMap<String, Option<Arc<Item>>>,
    dirty: BTreeSet<String>,
    /// Kinds of the events staged, counted once the batch is durable.
    kinds: Vec<&'static str>,
    /// New definitions, in force once the batch is durable.
    definitions: Option<Definitions>,
}

impl Writer {
    /// Loads every item and checks it against the end of its log (an item whose stored
    /// state does not match is rebuilt from its log); returns the writer and its handle.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        store: Store,
        clock: Clock,
        defs: Arc<ArcSwap<Definitions>>,
        roster: Arc<Roster>,
        tz: Tz,
        wake: Wake,
        metrics: Arc<Metrics>,
        published: Arc<Items>,
    ) -> anyhow::Result<(Writer, Handle)> {
        let mut items = HashMap::new();
        let mut repaired = Batch::default();
        for stored in store.items() {
            let (id, stored) = stored?;
            let item = match check_stored(&store, &id, stored) {
                Ok(item) => Some(item),
                Err(problem) => {
                    let replayed = replay(&store, &defs.load(), tz, &id)?;
                    log_wins(&store, &id, &problem, replayed.as_ref(), &mut repaired)?;
                    replayed
                }
            };
            if let Some(item) = item {
                items.insert(id, Arc::new(item));
            }
        }
        store.commit(&repaired).await?;
        let next_item = store.meta_u64(NEXT_ITEM)?;
        published.publish(items.values().cloned());
        let electorate = Arc::new(engine::electorate(&roster));
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            store,
            clock,
            defs,
            roster,
            tz,
            electorate,
            items,
            next_item,
            registers: HashMap::new(),
            wake,
            metrics,
            published,
            rx,
        };
        Ok((writer, Handle { tx }))
    }

    /// Replays every item's whole log; an item whose stored state differs from it is
    /// replaced by the replayed one (the log wins). Returns how many were replaced.
    pub async fn check_logs(&mut self) -> anyhow::Result<usize> {
        let mut repaired = Batch::default();
        let mut ids = Vec::new();
        for (id, item) in &self.items {
            let replayed = replay(&self.store, &self.defs.load(), self.tz, id)?;
            if replayed.as_ref() != Some(&**item) {
                let problem = "a full replay gives another state";
                log_wins(&self.store, id, problem, replayed.as_ref(), &mut repaired)?;
                ids.extend(replayed.map(|r| (id.clone(), r)));
            }
        }
        self.store.commit(&repaired).await?;
        let count = ids.len();
        for (id, item) in ids {
            self.items.insert(id, Arc::new(item));
        }
        self.published.publish(self.items.values().cloned());
        Ok(count)
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        let mut queue = Vec::with_capacity(MAX_BATCH);
        while self.rx.recv_many(&mut queue, MAX_BATCH).await > 0 {
            self.batch(std::mem::take(&mut queue)).await;
        }
    }

    async fn batch(&mut self, requests: Vec<Request>) {
        let now = self.clock.now();
        let mut s = Staged::default();
        let next_item = self.next_item;
        let mut replies = Vec::with_capacity(requests.len());
        for request in requests {
            match request {
                Request::Start {
                    workflow,
                    inputs,
                    reply,
                } => replies.push(Reply::Write(
                    reply,
                    self.start(&mut s, now, &workflow, inputs),
                )),
                Request::Event { item, event, reply } => {
                    replies.push(Reply::Write(reply, self.step(&mut s, &item, now, event)))
                }
                Request::Timer { key, reply } => {
                    self.timer(&mut s, now, key);
                    replies.push(Reply::Timer(reply));
                }
                Request::Reload { workflows, reply } => {
                    self.reload(&mut s, now, workflows);
                    replies.push(Reply::Committed(reply));
                }
                Request::Mail { mail, reply } => {
                    s.batch
                        .outbox
                        .push((mail.id.clone().into_bytes(), store::encode(&mail)));
                    replies.push(Reply::Committed(reply));
                }
            }
        }
        for id in &s.dirty {
            if let Some(item) = self.items.get(id) {
                s.batch.items.insert(id.clone(), store::encode_item(item));
            }
        }
        let timers_changed = !s.batch.timers.is_empty();
        let mail_added = !s.batch.outbox.is_empty();
        let started = std::time::Instant::now();
        if let Err(e) = self.store.commit(&s.batch).await {
            tracing::error!(error = %e, "commit failed; the batch is refused");
            self.wake.storage_failed.notify_one();
            for (id, before) in s.undo {
                match before {
                    Some(item) => self.items.insert(id, item),
                    None => self.items.remove(&id),
                };
            }
            self.next_item = next_item;
            self.registers.clear();
            for reply in replies {
                reply.send(Err(WriteError::Store(e.to_string())));
            }
            return;
        }
        self.metrics
            .flush_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.batch_size.observe(replies.len() as f64);
        for kind in s.kinds {
            self.metrics
                .events
                .get_or_create(&KindLabel {
                    kind: kind.to_string(),
                })
                .inc();
            if kind == "vote_cast" {
                self.metrics.votes.inc();
            }
        }
        if let Some(definitions) = s.definitions {
            self.defs.store(Arc::new(definitions));
        }
        self.published
            .publish(s.dirty.iter().filter_map(|id| self.items.get(id).cloned()));
        if timers_changed {
            self.wake.timers.notify_one();
        }
        if mail_added {
            self.wake.outbox.notify_one();
        }
        for reply in replies {
            reply.send(Ok(()));
        }
    }

    fn start(
        &mut self,
        s: &mut Staged,
        now: DateTime<Utc>,
        workflow: &str,
        inputs: BTreeMap<String, String>,
    ) -> Result<Done, WriteError> {
        let def = self
            .defs
            .load()
            .current(workflow)
            .cloned()
            .ok_or_else(|| WriteError::NoWorkflow(workflow.to_string()))?;
        let id = format!("item-{}", self.next_item + 1);
        let event = Event::Started {
            workflow: def.name.clone(),
            version: def.version.clone(),
            inputs,
        };
        let done = self.step(s, &id, now, event)?;
        self.next_item += 1;
        s.batch.meta.insert(
            NEXT_ITEM.as_bytes().to_vec(),
            self.next_item.to_be_bytes().to_vec(),
        );
        Ok(done)
    }

    fn timer(&mut self, s: &mut Staged, now: DateTime<Utc>, key: TimerKey) {
        let encoded = key.encode();
        let staged = s.batch.timers.get(&encoded).cloned();
        let exists = match staged {
            Some(row) => row.is_some(),
            None => self.store.timer_exists(&key).unwrap_or(false),
        };
        if !exists {
            return;
        }
        s.batch.timers.insert(encoded, None);
        self.metrics
            .timer_lag_seconds
            .observe((now - key.due).to_std().unwrap_or_default().as_secs_f64());
        let (id, timer) = match &key.owner {
            Owner::Schedule(workflow) => return self.scheduled_start(s, now, workflow, key.due),
            Owner::Item(id, timer) => (id, timer),
        };
        let event = Event::TimerFired {
            timer: timer.clone(),
        };
        match self.step(s, id, now, event) {
            Ok(_) | Err(WriteError::Rejected(Rejection::StaleTimer(_) | Rejection::Ended)) => {}
            Err(e) => tracing::warn!(item = %id, %timer, error = %e, "timer refused"),
        }
    }

    /// A scheduled workflow's start is due: open its item, and set the next start.
    fn scheduled_start(
        &mut self,
        s: &mut Staged,
        now: DateTime<Utc>,
        workflow: &str,
        due: DateTime<Utc>,
    ) {
        let Some(def) = self
            .defs
            .load()
            .current(workflow)
            .cloned()
            .filter(|d| d.schedule.is_some())
        else {
            return;
        };
        match self.start(s, now, workflow, BTreeMap::new()) {
            Ok(done) => tracing::info!(item = %done.item, workflow, "scheduled item opened"),
            Err(e) => tracing::error!(workflow, error = %e, "scheduled item could not open"),
        }
        if let Some(due) = def
            .schedule
            .as_ref()
            .and_then(|sch| sch.next_after(due.max(now), self.tz))
        {
            let key = TimerKey {
                due,
                owner: Owner::Schedule(workflow.to_string()),
            };
            s.batch
                .timers
                .insert(key.encode(), Some(def.version.clone().into_bytes()));
        }
    }

    /// Makes `workflows` the current versions: their sources are stored with the batch, and
    /// each scheduled workflow gets its next start if none is pending.
    fn reload(&mut self, s: &mut Staged, now: DateTime<Utc>, workflows: Vec<Workflow>) {
        let defs = self.defs.load();
        // Pending starts, with the version that set them (the row's value).
        let mut pending: BTreeMap<String, Vec<(TimerKey, String)>> = BTreeMap::new();
        for (key, version) in self.store.timers_with_values() {
            if let Owner::Schedule(name) = &key.owner {
                pending
                    .entry(name.clone())
                    .or_default()
                    .push((key.clone(), version));
            }
        }
        for w in &workflows {
            s.batch
                .definitions
                .push((w.version.clone(), w.source.clone()));
            let rows = pending.remove(&w.name).unwrap_or_default();
            // The same version keeps its pending start (even an overdue one); a changed or
            // removed schedule replaces it.
            if w.schedule.is_some() && rows.iter().any(|(_, v)| *v == w.version) {
                continue;
            }
            for (key, _) in rows {
                s.batch.timers.insert(key.encode(), None);
            }
            let Some(schedule) = &w.schedule else {
                continue;
            };
            if let Some(due) = schedule.next_after(now, self.tz) {
                let key = TimerKey {
                    due,
                    owner: Owner::Schedule(w.name.clone()),
                };
                s.batch
                    .timers
                    .insert(key.encode(), Some(w.version.clone().into_bytes()));
            }
        }
        // Workflows no longer on disk open no more items.
        for (key, _) in pending.into_values().flatten() {
            s.batch.timers.insert(key.encode(), None);
        }
        s.definitions = Some(defs.with_current(workflows));
    }

    /// Steps one request through the engine, staging every record and effect.
    fn step(
        &mut self,
        s: &mut Staged,
        id: &str,
        at: DateTime<Utc>,
        event: Event,
    ) -> Result<Done, WriteError> {
        let before = self.items.remove(id);
        let version = match (&before, &event) {
            (Some(item), _) => item.version.clone(),
            (None, Event::Started { version, .. }) => version.clone(),
            (None, _) => return Err(WriteError::NoItem(id.to_string())),
        };
        let Some(def) = self.defs.load().version(&version).cloned() else {
            if let Some(item) = before {
                self.items.insert(id.to_string(), item);
            }
            return Err(WriteError::NoWorkflow(version));
        };
        let ctx = Context {
            workflow: &def,
            tz: self.tz,
        };
        s.undo
            .entry(id.to_string())
            .or_insert_with(|| before.clone());
        // Copied only on the batch's first change: readers keep the committed state.
        let mut state = before.map(Arc::unwrap_or_clone);
        let mut staging = Staging {
            store: &self.store,
            roster: &self.roster,
            electorate: &self.electorate,
            registers: &mut self.registers,
            tz: self.tz,
            title: &def.title,
            s,
        };
        let stepped = engine::step(&ctx, &mut state, id, at, event, &mut staging);
        if let Some(item) = state {
            self.items.insert(id.to_string(), Arc::new(item));
        }
        let stepped = stepped?;
        if let Some(why) = stepped.stopped {
            tracing::error!(item = id, error = %why, "follow-up event refused");
        }
        s.dirty.insert(id.to_string());
        Ok(Done {
            item: id.to_string(),
            seq: stepped.seq,
            hash: stepped.hash,
        })
    }
}

/// The writer's answers to the engine, and where its records go: the batch.
struct Staging<'a> {
    store: &'a Store,
    roster: &'a Roster,
    electorate: &'a Arc<Electorate>,
    registers: &'a mut HashMap<(String, i32), u64>,
    tz: Tz,
    title: &'a str,
    s: &'a mut Staged,
}

impl Facts for Staging<'_> {
    fn electorate(&mut self) -> (Arc<Electorate>, u64) {
        (self.electorate.clone(), self.roster.members.len() as u64)
    }

    fn next_number(&mut self, series: &str, year: i32) -> u64 {
        let key = (series.to_string(), year);
        let last = match self.registers.get(&key) {
            Some(n) => *n,
            None => self.store.last_register_seq(series, year).unwrap_or(0),
        };
        self.registers.insert(key, last + 1);
        last + 1
    }

    fn logged(&mut self, item: &Item, record: &Record, effects: Vec<Effect>) {
        let id = item.id.as_str();
        let batch = &mut self.s.batch;
        batch
            .events
            .push((store::event_key(id, record.seq), store::encode(record)));
        match &record.event {
            Event::VoteCast {
                ballot,
                member,
                choice,
            } => {
                batch.votes.insert(
                    store::vote_key(id, *ballot, member),
                    Some(choice.clone().into_bytes()),
                );
            }
            Event::ElectorateFixed { electorate, .. } => {
                batch
                    .electorates
                    .insert(electorate.id().to_string(), store::encode(&**electorate));
            }
            Event::Registered { series, year, seq } => {
                let act = Act {
                    series: series.clone(),
                    year: *year,
                    seq: *seq,
                    number: item.register_number.clone().unwrap_or_default(),
                    item: id.to_string(),
                    title: item.title(self.title).to_string(),
                    at: record.at,
                };
                batch.registers.push((
                    store::register_key(series, *year, *seq),
                    store::encode(&act),
                ));
            }
            _ => {}
        }
        self.s.kinds.push(record.event.kind());
        tracing::debug!(
            item = id,
            seq = record.seq,
            event = record.event.kind(),
            "event staged"
        );
        for (index, effect) in effects.into_iter().enumerate() {
            let timer = |name, due| {
                TimerKey {
                    due,
                    owner: Owner::Item(id.to_string(), name),
                }
                .encode()
            };
            match effect {
                Effect::SetTimer { name, due } => {
                    self.s
                        .batch
                        .timers
                        .insert(timer(name, due), Some(Vec::new()));
                }
                Effect::CancelTimer { name, due } => {
                    self.s.batch.timers.insert(timer(name, due), None);
                }
                Effect::Mail {
                    template,
                    to,
                    ballot,
                } => self.stage_mail(item, record, index, &template, to, ballot),
                // Answered by `engine::step` before the effects reach the shell.
                Effect::FixElectorate { .. } | Effect::Register { .. } => {}
            }
        }
    }
}

impl Staging<'_> {
    /// One outbox row per recipient, each with an id fixed by the record and the effect.
    fn stage_mail(
        &mut self,
        item: &Item,
        record: &Record,
        index: usize,
        template: &str,
        to: Recipients,
        ballot: Option<usize>,
    ) {
        let mut context = mail::context(&self.roster.council, self.title, item, ballot, self.tz);
        // A vote's receipt carries the choice and the event hash.
        if let Event::VoteCast { choice, .. } = &record.event {
            context["vote"] = serde_json::json!({ "choice": choice, "receipt": record.hash });
        }
        let voter = Recipient::voter;
        let recipients: Vec<Recipient> = match to {
            Recipients::Audience(Audience::Secretariat) => {
                vec![Recipient::delegate(&self.roster.secretariat, None, None)]
            }
            Recipients::Audience(audience) => self
                .roster
                .members
                .iter()
                .flat_map(|m| {
                    let delegates: Vec<(usize, &crate::roster::Delegate)> = match audience {
                        Audience::Heads => m.voter().into_iter().collect(),
                        _ => m.delegates.iter().enumerate().collect(),
                    };
                    delegates
                        .into_iter()
                        .map(|(i, d)| Recipient::delegate(d, Some((&m.id, &m.name)), Some(i)))
                })
                .collect(),
            Recipients::Electorate(b) => item
                .ballots
                .get(b)
                .map(|b| b.electorate.iter().map(voter).collect())
                .unwrap_or_default(),
            Recipients::Voter(b, member) => item
                .ballots
                .get(b)
                .and_then(|b| b.electorate.voter(&member))
                .map(voter)
                .into_iter()
                .collect(),
            Recipients::NotVoted(b) => item
                .ballots
                .get(b)
                .map(|b| {
                    b.electorate
                        .iter()
                        .filter(|v| b.vote(&v.member).is_none())
                        .map(voter)
                        .collect()
                })
                .unwrap_or_default(),
        };
        for (r, to) in recipients.into_iter().enumerate() {
            let id = format!("{}.{}.{}.{}", item.id, record.seq, index, r);
            let mail = Mail::new(
                id.clone(),
                &item.id,
                template,
                to,
                ballot,
                context.clone(),
                record.at,
            );
            self.s
                .batch
                .outbox
                .push((id.into_bytes(), store::encode(&mail)));
        }
    }
}

enum Reply {
    Write(
        oneshot::Sender<Result<Done, WriteError>>,
        Result<Done, WriteError>,
    ),
    Timer(oneshot::Sender<()>),
    /// Dropped unanswered when the commit fails.
    Committed(oneshot::Sender<()>),
}

impl Reply {
    fn send(self, commit: Result<(), WriteError>) {
        match self {
            Reply::Write(tx, result) => {
                let _ = tx.send(commit.and(result));
            }
            Reply::Timer(tx) => {
                let _ = tx.send(());
            }
            Reply::Committed(tx) => {
                if commit.is_ok() {
                    let _ = tx.send(());
                }
            }
        }
    }
}

/// Stages the state rebuilt from an item's log over a stored state that disagrees with it.
fn log_wins(
    store: &Store,
    id: &str,
    problem: &str,
    replayed: Option<&Item>,
    batch: &mut Batch,
) -> store::Result<()> {
    tracing::error!(item = %id, %problem, "stored state differs from its event log; the log wins");
    match replayed {
        Some(item) => store.stage_item(item, batch),
        None => Ok(()),
    }
}

/// An item's stored state, if it is whole and ends where its log ends.
fn check_stored(store: &Store, id: &str, stored: store::Result<Item>) -> Result<Item, String> {
    let item = stored.map_err(|e| e.to_string())?;
    match store.log_ends_at(id, item.seq, &item.head) {
        Ok(true) => Ok(item),
        Ok(false) => Err(format!(
            "the item row is at event {}, which is not where its log ends",
            item.seq
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Rebuilds an item by folding its log through the engine (the stored state must equal it).
pub fn replay(store: &Store, defs: &Definitions, tz: Tz, id: &str) -> anyhow::Result<Option<Item>> {
    let log = store.events(id).collect::<store::Result<Vec<Record>>>()?;
    engine::replay(|v| defs.version(v).map(|w| &**w), tz, id, &log)
        .map_err(|e| anyhow::anyhow!("{id}: {e}"))
}
