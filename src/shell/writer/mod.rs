//! The single writer: the one task that changes items, with group commit.
//!
//! HTTP handlers, the timer task and the CLI (through the admin API) send requests over a
//! bounded channel. The writer takes every queued request up to [`MAX_BATCH`], steps each
//! through `engine::step` (answering its facts, see `staging`), stages the event records,
//! item states, timers, outbox mail and register entries, commits them in one transaction,
//! flushes once, and only then answers every waiting request and wakes the timer and
//! outbox tasks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::clock::Clock;
use crate::definition::{Definitions, Workflow};
use crate::engine::{self, Context, Effect, Electorate, Event, Facts, Item, Recipients, Rejection};
use crate::mail::{self, Mail, Recipient};
use crate::observe::{KindLabel, Metrics, TreeLabel};
use crate::roster::Roster;
use crate::store::{self, Act, Batch, Owner, Record, Store, TimerKey};

mod recovery;
mod schedules;
mod staging;

pub use recovery::replay;
use staging::Staging;

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
    /// A follow-up the engine refused (the request's own record stands).
    pub stopped: Option<String>,
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
        by: Option<String>,
        reply: oneshot::Sender<Result<Done, WriteError>>,
    },
    Event {
        item: String,
        event: Event,
        by: Option<String>,
        reply: oneshot::Sender<Result<Done, WriteError>>,
    },
    Timer {
        key: TimerKey,
        reply: oneshot::Sender<()>,
    },
    Reload {
        workflows: Vec<Workflow>,
        /// A new roster, in force for what happens from this batch on.
        roster: Option<Arc<Roster>>,
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
pub struct Items(std::sync::RwLock<Published>);

#[derive(Default)]
struct Published {
    /// Each item with its revision and the event count it began at. The revision
    /// changes whenever the item's data for mail and pages ([`mail::context`]) may have
    /// changed, that is after any event but a vote that leaves its ballot open; every
    /// state of the item since it began has the same data.
    items: HashMap<String, Revised>,
    revisions: u64,
}

struct Revised {
    item: Arc<Item>,
    revision: u64,
    since: u64,
}

impl Items {
    pub fn get(&self, id: &str) -> Option<Arc<Item>> {
        Some(self.0.read().ok()?.items.get(id)?.item.clone())
    }

    /// The revision `item` belongs to, if it is the current one (`item` may be a state
    /// read before the latest votes): what is derived from its data may be kept under it.
    pub fn revision(&self, item: &Item) -> Option<u64> {
        let published = self.0.read().ok()?;
        let current = published.items.get(&item.id)?;
        (item.seq >= current.since && item.seq <= current.item.seq).then_some(current.revision)
    }

    /// Forgets an item that turned out to have no log.
    fn forget(&self, id: &str) {
        if let Ok(mut p) = self.0.write() {
            p.items.remove(id);
        }
    }

    /// How many items there are.
    pub fn count(&self) -> usize {
        self.0.read().map(|p| p.items.len()).unwrap_or_default()
    }

    /// Every item, in no particular order.
    pub fn all(&self) -> Vec<Arc<Item>> {
        self.0
            .read()
            .map(|p| p.items.values().map(|r| r.item.clone()).collect())
            .unwrap_or_default()
    }

    /// Publishes items, each with whether its data changed (a new revision).
    fn publish(&self, items: impl Iterator<Item = (Arc<Item>, bool)>) {
        let Ok(mut p) = self.0.write() else { return };
        for (item, changed) in items {
            let kept = match p.items.get(&item.id) {
                Some(r) if !changed => Some((r.revision, r.since)),
                _ => None,
            };
            let (revision, since) = kept.unwrap_or_else(|| {
                p.revisions += 1;
                (p.revisions, item.seq)
            });
            p.items.insert(
                item.id.clone(),
                Revised {
                    item,
                    revision,
                    since,
                },
            );
        }
    }
}

/// A cheap handle to send requests to the writer.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
}

/// `by` in the requests below is who asked for them, kept in the item's log: an account's
/// name, or `None` for a delegate's vote (the member is in the event) and the daemon.
impl Handle {
    pub async fn start(
        &self,
        workflow: String,
        inputs: BTreeMap<String, String>,
        by: Option<String>,
    ) -> Result<Done, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Start {
            workflow,
            inputs,
            by,
            reply,
        })
        .await?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    pub async fn event(
        &self,
        item: String,
        event: Event,
        by: Option<String>,
    ) -> Result<Done, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Event {
            item,
            event,
            by,
            reply,
        })
        .await?;
        rx.await.map_err(|_| WriteError::Closed)?
    }

    /// Queues a due timer; the receiver answers once it is committed (or found gone).
    pub async fn fire(&self, key: TimerKey) -> Result<oneshot::Receiver<()>, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Timer { key, reply }).await?;
        Ok(rx)
    }

    /// Makes `workflows` the current versions, and `roster` (if given) the roster; returns
    /// once they are stored and in force.
    pub async fn reload(
        &self,
        workflows: Vec<Workflow>,
        roster: Option<Roster>,
    ) -> Result<(), WriteError> {
        let (reply, rx) = oneshot::channel();
        let roster = roster.map(Arc::new);
        self.send(Request::Reload {
            workflows,
            roster,
            reply,
        })
        .await?;
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
    /// The roster in force, and where it is published for the listeners.
    roster: Arc<Roster>,
    shared_roster: SharedRoster,
    tz: Tz,
    /// The electorate a ballot opening now gets, from the roster in force.
    electorate: Arc<engine::Electorate>,
    /// Shared with the published items until a request changes one.
    items: HashMap<String, Arc<Item>>,
    /// Items read at start whose rows are yet to be checked against the end of their log
    /// (see `recovery`), and since when.
    unchecked: BTreeSet<String>,
    checking: std::time::Instant,
    next_item: u64,
    registers: HashMap<(String, i32), u64>,
    /// For each item voted on last, its ballot and the key of the data its receipts share:
    /// the same for every vote until the item changes otherwise ([`mail::keeps_context`]).
    receipts: HashMap<String, (usize, String)>,
    /// The checksum of each item's body row as last committed: a body equal to it is not
    /// written again (a vote changes only the item's end row, see [`store::ItemRows`]).
    bodies: HashMap<String, [u8; store::CHECKSUM]>,
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
    /// The dirty items whose data for mail and pages may have changed (not only votes).
    changed: BTreeSet<String>,
    /// Kinds of the events staged, counted once the batch is durable.
    kinds: Vec<&'static str>,
    /// What an operator reads in the log, logged once the batch is durable: an item
    /// started or ended, a ballot opened or closed. (item, what, said once per batch).
    milestones: Vec<(String, String)>,
    /// Keys of shared mail data no later mail will name, released once the batch is durable.
    released: Vec<String>,
    /// New definitions, in force once the batch is durable.
    definitions: Option<Definitions>,
    /// A new roster, in force once the batch is durable.
    roster: Option<Arc<Roster>>,
}

/// The roster the listeners read: the writer swaps in a reloaded one.
pub type SharedRoster = Arc<ArcSwap<Roster>>;

impl Writer {
    /// Makes `roster` the one in force: ballots opening from now get its electorate, mail
    /// goes to its delegates; ballots already open keep the electorate they were given.
    fn use_roster(&mut self, roster: Arc<Roster>) {
        if *roster == *self.roster {
            return;
        }
        let ids =
            |r: &Roster| -> BTreeSet<String> { r.members.iter().map(|m| m.id.clone()).collect() };
        let (before, after) = (ids(&self.roster), ids(&roster));
        let added: Vec<&String> = after.difference(&before).collect();
        let removed: Vec<&String> = before.difference(&after).collect();
        let changed: Vec<&str> = roster
            .members
            .iter()
            .filter(|m| self.roster.member(&m.id).is_some_and(|old| old != *m))
            .map(|m| m.id.as_str())
            .collect();
        tracing::info!(
            members = roster.members.len(),
            ?added,
            ?removed,
            ?changed,
            "roster reloaded: ballots opening from now use it; open ballots keep their electorate"
        );
        self.electorate = Arc::new(engine::electorate(&roster));
        // The receipts' data names the council.
        self.release_receipts();
        self.shared_roster.store(roster.clone());
        self.roster = roster;
    }

    /// Forgets the receipts' shared data: later receipts get theirs anew.
    fn release_receipts(&mut self) {
        let keys = self.receipts.drain().map(|(_, (_, key))| key);
        self.store.release_contexts(keys);
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        let mut queue = Vec::with_capacity(MAX_BATCH);
        loop {
            if !self.unchecked.is_empty() && self.rx.is_empty() {
                self.check_some().await;
                continue;
            }
            if self.rx.recv_many(&mut queue, MAX_BATCH).await == 0 {
                break;
            }
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
                    by,
                    reply,
                } => replies.push(Reply::Write(
                    reply,
                    self.start(&mut s, now, &workflow, inputs, by),
                )),
                Request::Event {
                    item,
                    event,
                    by,
                    reply,
                } => replies.push(Reply::Write(
                    reply,
                    self.step(&mut s, &item, now, event, by),
                )),
                Request::Timer { key, reply } => {
                    self.timer(&mut s, now, key);
                    replies.push(Reply::Timer(reply));
                }
                Request::Reload {
                    workflows,
                    roster,
                    reply,
                } => {
                    self.reload(&mut s, now, workflows);
                    s.roster = roster.or(s.roster.take());
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
        let mut bodies = Vec::new();
        for id in &s.dirty {
            if let Some(item) = self.items.get(id) {
                let rows = store::encode_item(item);
                if self.bodies.get(id) != Some(&rows.sum) {
                    s.batch.items.insert(id.clone(), rows.body);
                    bodies.push((id.clone(), rows.sum));
                }
                s.batch.ends.insert(id.clone(), rows.end);
            }
        }
        let bytes = s.batch.bytes_by_tree();
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
            self.store.release_contexts(s.released);
            self.release_receipts();
            for reply in replies {
                reply.send(Err(WriteError::Store(e.to_string())));
            }
            return;
        }
        self.store.release_contexts(s.released);
        self.bodies.extend(bodies);
        self.metrics
            .flush_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.last_commit.set(self.clock.now().timestamp());
        self.metrics.batch_size.observe(replies.len() as f64);
        for (tree, n) in bytes.into_iter().filter(|(_, n)| *n > 0) {
            self.metrics
                .commit_bytes
                .get_or_create(&TreeLabel { tree })
                .inc_by(n as u64);
        }
        for (item, what) in s.milestones {
            tracing::info!(item = %item, "{what}");
        }
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
        if let Some(roster) = s.roster {
            self.use_roster(roster);
        }
        self.published.publish(s.dirty.iter().filter_map(|id| {
            let item = self.items.get(id)?.clone();
            Some((item, s.changed.contains(id)))
        }));
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
        by: Option<String>,
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
        let done = self.step(s, &id, now, event, by)?;
        self.next_item += 1;
        s.batch.meta.insert(
            NEXT_ITEM.as_bytes().to_vec(),
            self.next_item.to_be_bytes().to_vec(),
        );
        if def.stages.values().any(|st| st.meeting) {
            self.carry_over(s, &id, now, &def.name);
        }
        Ok(done)
    }

    /// A new session's agenda opens with what the last session of its workflow left to it:
    /// the approval of its summary record (with the hashes it was circulated under), and
    /// the points it deferred. Each is an event of the new session's log, by the daemon.
    fn carry_over(&mut self, s: &mut Staged, id: &str, now: DateTime<Utc>, workflow: &str) {
        let last = self
            .items
            .values()
            .filter(|i| i.workflow == workflow && i.id != id)
            .filter_map(|i| Some((i.meeting.as_ref()?.closed_at?, i.clone())))
            .max_by_key(|(closed, _)| *closed)
            .map(|(_, i)| i);
        let Some(last) = last else { return };
        let Some(m) = last.meeting.as_ref() else {
            return;
        };
        // Once: a session started later (an extraordinary one) does not take it again.
        let taken = self.items.values().any(|i| {
            i.id != id
                && i.meeting.as_ref().is_some_and(|s| {
                    s.agenda
                        .iter()
                        .any(|p| p.carried_from.as_deref() == Some(&last.id))
                })
        });
        if taken {
            return;
        }
        let explanation = match m.circulated.last() {
            Some(c) => {
                let hashes: Vec<String> =
                    c.hashes.iter().map(|(l, h)| format!("{l} {h}")).collect();
                format!(
                    "Draft circulated {}; SHA-256: {}",
                    c.at.with_timezone(&self.tz).format("%Y-%m-%d"),
                    hashes.join(", ")
                )
            }
            None => "The draft record has not been circulated.".to_string(),
        };
        let mut points = vec![Event::PointAdded {
            title: format!(
                "Approval of the summary record of the previous session ({})",
                last.id
            ),
            explanation,
            url: None,
            item: None,
            member: None,
            carried_from: Some(last.id.clone()),
        }];
        for p in m
            .agenda
            .iter()
            .filter(|p| p.status == engine::PointStatus::Deferred)
        {
            // An item that has ended since is no longer to decide: the point stays a point.
            let open = p
                .item
                .as_deref()
                .and_then(|i| self.items.get(i))
                .is_some_and(|i| i.status == engine::Status::Open);
            points.push(Event::PointAdded {
                title: p.title.clone(),
                explanation: p.explanation.clone(),
                url: p.url.clone(),
                item: p.item.clone().filter(|_| open),
                member: p.proposed_by.clone(),
                carried_from: Some(last.id.clone()),
            });
        }
        for event in points {
            if let Err(e) = self.step(s, id, now, event, None) {
                tracing::warn!(item = id, error = %e, "a point of the last session was not carried over");
            }
        }
    }

    /// The versions an amendment changes (the current ones) and where in each its passage
    /// is: found exactly once, in a version that is text.
    #[allow(clippy::type_complexity)]
    fn place_amendment(
        &self,
        id: &str,
        changes: &BTreeMap<String, engine::Change>,
    ) -> Result<(BTreeMap<String, String>, BTreeMap<String, (u64, u64)>), WriteError> {
        let item = self
            .items
            .get(id)
            .ok_or_else(|| WriteError::NoItem(id.into()))?;
        let current = item.texts();
        let (mut against, mut spans) = (BTreeMap::new(), BTreeMap::new());
        for (language, change) in changes {
            let bad = |why: String| {
                WriteError::Rejected(Rejection::BadInput(format!("passage.{language}"), why))
            };
            let Some(sha256) = current.get(language) else {
                return Err(bad(format!("the text has no `{language}` version")));
            };
            let bytes = self
                .store
                .document(sha256)
                .map_err(|e| WriteError::Store(e.to_string()))?
                .unwrap_or_default();
            let Ok(text) = std::str::from_utf8(&bytes) else {
                return Err(bad(format!(
                    "the `{language}` version is not plain text: amend it by a new version"
                )));
            };
            let passage = change.passage.as_str();
            let mut found = text.match_indices(passage).map(|(at, _)| at);
            match (passage.is_empty(), found.next(), found.next()) {
                (false, Some(at), None) => {
                    against.insert(language.clone(), sha256.clone());
                    spans.insert(language.clone(), (at as u64, (at + passage.len()) as u64));
                }
                (false, None, _) => {
                    return Err(bad(format!(
                        "this passage is not in the current `{language}` version"
                    )));
                }
                _ => {
                    return Err(bad(format!(
                        "this passage is in the current `{language}` version more than once: quote enough of it to be found once"
                    )));
                }
            }
        }
        Ok((against, spans))
    }

    /// What only the writer knows of a request from outside: whether the members it names
    /// are the roster's, whether an item it names exists, and, for a vote in the room, the
    /// session sitting on the item and who is present there now (never the caller's word).
    fn resolve(&self, id: &str, event: Event) -> Result<Event, WriteError> {
        let member = |m: &String| match self.roster.member(m) {
            Some(_) => Ok(()),
            None => Err(WriteError::Rejected(Rejection::UnknownMember(m.clone()))),
        };
        match event {
            // The bytes are stored first, under their hash: no event names a text the store
            // does not hold.
            Event::DocumentAdded { ref sha256, .. } => match self.store.has_document(sha256) {
                Ok(true) => Ok(event),
                Ok(false) => Err(Rejection::BadInput(
                    "sha256".into(),
                    "no stored document has this SHA-256: send its bytes first".into(),
                )
                .into()),
                Err(e) => Err(WriteError::Store(e.to_string())),
            },
            Event::AmendmentProposed {
                member: m,
                changes,
                reason,
                ..
            } => {
                member(&m)?;
                let (against, spans) = self.place_amendment(id, &changes)?;
                Ok(Event::AmendmentProposed {
                    member: m,
                    changes,
                    reason,
                    against,
                    spans,
                })
            }
            Event::Attendance { arrived, left } => {
                arrived.iter().chain(&left).try_for_each(member)?;
                // The log keeps what changed: who came, who left, not who was asked about.
                let meeting = self.items.get(id).and_then(|i| i.meeting.clone());
                let Some(m) = meeting else {
                    return Ok(Event::Attendance { arrived, left });
                };
                let twice = arrived.iter().find(|a| left.contains(a));
                if let Some(m) = twice {
                    return Err(Rejection::CountedTwice(m.clone()).into());
                }
                Ok(Event::Attendance {
                    arrived: arrived.into_iter().filter(|a| !m.is_present(a)).collect(),
                    left: left.into_iter().filter(|l| m.is_present(l)).collect(),
                })
            }
            Event::Signal {
                ref name,
                member: Some(ref m),
                ..
            } => {
                // A member signals once in a stage (a ratification deposited once).
                let item = self.items.get(id);
                let defs = self.defs.load();
                let on = item.and_then(|i| {
                    let w = defs.version(&i.version)?;
                    w.stages.get(&i.stage)?.on_signal.clone()
                });
                if let (Some(item), Some(on)) = (item, on.filter(|on| on.name == *name))
                    && let Some((_, at)) = engine::signalled(item, &on)
                        .members
                        .into_iter()
                        .find(|(s, _)| s == m)
                {
                    return Err(Rejection::AlreadySignalled {
                        member: m.clone(),
                        name: name.clone(),
                        at,
                    }
                    .into());
                }
                Ok(event)
            }
            Event::Nominated {
                candidate,
                name,
                member: m,
            } => {
                m.iter().try_for_each(member)?;
                // A candidate nominated without an id gets one from their name.
                let candidate = match (candidate.is_empty(), self.items.get(id)) {
                    (true, Some(item)) => engine::candidate_id(item, &name),
                    _ => candidate,
                };
                Ok(Event::Nominated {
                    candidate,
                    name,
                    member: m,
                })
            }
            Event::MeetingClosed => {
                // Every vote due in the room is taken first (or its point deferred, or sent
                // to an email ballot), and an electronic vote closed by the chair.
                let undecided: Vec<&Item> = self
                    .agenda_items(id)
                    .filter(|d| d.ballots.iter().any(|b| b.result.is_none() && b.in_session))
                    .collect();
                if let Some(open) = undecided
                    .iter()
                    .find(|d| d.ballots.iter().any(|b| electronic_in(b, id)))
                {
                    return Err(Rejection::ElectronicVoteOpenOn(open.id.clone()).into());
                }
                if !undecided.is_empty() {
                    let ids = undecided.iter().map(|d| format!("`{}`", d.id)).collect();
                    return Err(Rejection::VotesNotTaken(ids).into());
                }
                Ok(Event::MeetingClosed)
            }
            Event::PointMarked { point, status } if status != engine::PointStatus::Listed => {
                // A point whose electronic vote is open keeps its place until the chair
                // closes the vote.
                let decided = self
                    .items
                    .get(id)
                    .and_then(|s| s.meeting.as_ref()?.point(point)?.item.clone())
                    .and_then(|d| self.items.get(&d));
                if let Some(d) = decided.filter(|d| d.ballots.iter().any(|b| electronic_in(b, id)))
                {
                    return Err(Rejection::ElectronicVoteOpenOn(d.id.clone()).into());
                }
                Ok(Event::PointMarked { point, status })
            }
            Event::MovedOn => {
                // A session's stages, and the items on a session's agenda (a comment
                // period ended for the meeting), are moved on by hand; a statute's thirty
                // days are not.
                let session = self.items.get(id).is_some_and(|i| i.meeting.is_some());
                let on_agenda = self.items.values().any(|s| {
                    s.status == engine::Status::Open
                        && s.meeting
                            .as_ref()
                            .is_some_and(|m| m.closed_at.is_none() && m.point_of(id).is_some())
                });
                if session || on_agenda {
                    Ok(Event::MovedOn)
                } else {
                    Err(Rejection::NotMovable.into())
                }
            }
            Event::PointMarked {
                point,
                status: engine::PointStatus::Listed,
            } => {
                let decided = self
                    .items
                    .get(id)
                    .and_then(|s| s.meeting.as_ref()?.point(point)?.item.clone());
                if let Some(other) = decided {
                    self.on_one_agenda(id, &other)?;
                }
                Ok(Event::PointMarked {
                    point,
                    status: engine::PointStatus::Listed,
                })
            }
            Event::StatementRecorded { .. } | Event::PointAdded { .. } => {
                if let Event::StatementRecorded { member: m, .. }
                | Event::PointAdded {
                    member: Some(m), ..
                } = &event
                {
                    member(m)?;
                }
                if let Event::PointAdded {
                    item: Some(other), ..
                } = &event
                {
                    if other == id {
                        let why = "a session cannot be decided under its own agenda";
                        return Err(Rejection::BadInput("item".into(), why.into()).into());
                    }
                    if !self.items.contains_key(other) {
                        return Err(WriteError::NoItem(other.clone()));
                    }
                    self.on_one_agenda(id, other)?;
                }
                Ok(event)
            }
            Event::VoteRecorded {
                ballot,
                method,
                votes,
                hands,
                ..
            } => {
                let (session, present) = self.sitting(id)?;
                Ok(Event::VoteRecorded {
                    ballot,
                    session,
                    present,
                    method,
                    votes,
                    hands,
                })
            }
            Event::RoomVoteOpened { ballot, .. } => {
                let (session, present) = self.sitting(id)?;
                Ok(Event::RoomVoteOpened {
                    ballot,
                    session,
                    present,
                })
            }
            other => Ok(other),
        }
    }

    /// The open items listed on a session's agenda.
    fn agenda_items<'a>(&'a self, session: &str) -> impl Iterator<Item = &'a Item> + 'a {
        let points: Vec<String> = self
            .items
            .get(session)
            .and_then(|s| s.meeting.as_ref())
            .map(|m| {
                m.agenda
                    .iter()
                    .filter(|p| p.status == engine::PointStatus::Listed)
                    .filter_map(|p| p.item.clone())
                    .collect()
            })
            .unwrap_or_default();
        points
            .into_iter()
            .filter_map(|i| self.items.get(&i).map(|a| &**a))
            .filter(|i| i.status == engine::Status::Open)
    }

    /// An item is on one open agenda at a time, so that its vote has one session to sit in.
    fn on_one_agenda(&self, session: &str, item: &str) -> Result<(), WriteError> {
        let elsewhere = self.items.values().find(|s| {
            s.id != session
                && s.status == engine::Status::Open
                && s.meeting
                    .as_ref()
                    .is_some_and(|m| m.closed_at.is_none() && m.point_of(item).is_some())
        });
        match elsewhere {
            Some(s) => {
                let why = format!("`{item}` is on the agenda of session `{}`", s.id);
                Err(Rejection::BadInput("item".into(), why).into())
            }
            None => Ok(()),
        }
    }

    /// The session sitting now with item `id` on its agenda, and who is present in it.
    fn sitting(&self, id: &str) -> Result<(String, Vec<String>), Rejection> {
        self.items
            .values()
            .find_map(|s| {
                let m = s
                    .meeting
                    .as_ref()
                    .filter(|_| s.status == engine::Status::Open)?;
                let open = m.opened_at.is_some() && m.closed_at.is_none();
                (open && m.point_of(id).is_some()).then(|| (s.id.clone(), m.present()))
            })
            .ok_or(Rejection::NotOnAgenda)
    }

    /// Steps one request through the engine, staging every record and effect.
    fn step(
        &mut self,
        s: &mut Staged,
        id: &str,
        at: DateTime<Utc>,
        event: Event,
        by: Option<String>,
    ) -> Result<Done, WriteError> {
        if self.check_end(id, &mut s.batch) {
            s.dirty.insert(id.to_string());
            s.changed.insert(id.to_string());
        }
        let event = self.resolve(id, event)?;
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
            workflow: &def,
            s,
            receipts: &mut self.receipts,
        };
        let stepped = engine::step(&ctx, &mut state, id, at, event, by, &mut staging);
        if let Some(item) = state {
            self.items.insert(id.to_string(), Arc::new(item));
        }
        let stepped = stepped?;
        let stopped = stepped.stopped.map(|why| why.to_string());
        if let Some(why) = &stopped {
            tracing::error!(item = id, error = %why, "follow-up event refused");
        }
        s.dirty.insert(id.to_string());
        Ok(Done {
            item: id.to_string(),
            seq: stepped.seq,
            hash: stepped.hash,
            stopped,
        })
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

/// Whether an electronic vote is open on ballot `b` in the meeting of `session`.
fn electronic_in(b: &engine::Ballot, session: &str) -> bool {
    b.result.is_none()
        && b.room
            .as_ref()
            .is_some_and(|r| r.session == session && r.method == engine::RoomMethod::Electronic)
}
