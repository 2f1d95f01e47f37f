//! Start-up: every item read back whole (its rows' checksums, its vote rows against their
//! counts), then, once the daemon is ready, checked against the end of its log: before its
//! first change, or in the writer's idle time, whichever comes first. And the full replay
//! (`check_on_start = "full"`). Wherever the rows and the log disagree, the log wins.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::*;

impl Writer {
    /// Loads every item and checks it against the end of its log (an item whose stored
    /// state does not match is rebuilt from its log); returns the writer and its handle.
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        store: Store,
        clock: Clock,
        defs: Arc<ArcSwap<Definitions>>,
        shared_roster: SharedRoster,
        tz: Tz,
        wake: Wake,
        metrics: Arc<Metrics>,
        published: Arc<Items>,
    ) -> anyhow::Result<(Writer, Handle)> {
        let mut items = HashMap::new();
        let mut unchecked = BTreeSet::new();
        let mut repaired = Batch::default();
        for stored in store.items() {
            let (id, stored) = stored?;
            let item = match stored {
                Ok(item) => {
                    unchecked.insert(id.clone());
                    Some(item)
                }
                Err(problem) => {
                    let replayed = replay(&store, &defs.load(), tz, &id)?;
                    log_wins(
                        &store,
                        &id,
                        &problem.to_string(),
                        replayed.as_ref(),
                        &mut repaired,
                    )?;
                    replayed
                }
            };
            if let Some(item) = item {
                items.insert(id, Arc::new(item));
            }
        }
        store.commit(&repaired).await?;
        let next_item = store.meta_u64(NEXT_ITEM)?;
        published.publish(items.values().map(|i| (i.clone(), true)));
        let roster = shared_roster.load_full();
        let electorate = Arc::new(engine::electorate(&roster));
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer {
            store,
            clock,
            defs,
            roster,
            shared_roster,
            tz,
            electorate,
            items,
            unchecked,
            checking: std::time::Instant::now(),
            next_item,
            registers: HashMap::new(),
            receipts: HashMap::new(),
            bodies: HashMap::new(),
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
        self.unchecked.clear();
        let count = ids.len();
        for (id, item) in ids {
            self.items.insert(id, Arc::new(item));
        }
        self.published
            .publish(self.items.values().map(|i| (i.clone(), true)));
        Ok(count)
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

impl Writer {
    /// Checks, once after start, that `id`'s rows end where its log ends; where they do not,
    /// the log wins: the item is replayed and its rows staged in `batch`. Whether the item
    /// changed.
    pub(super) fn check_end(&mut self, id: &str, batch: &mut Batch) -> bool {
        if !self.unchecked.remove(id) {
            return false;
        }
        let Some(item) = self.items.get(id) else {
            return false;
        };
        let problem = match self.store.log_ends_at(id, item.seq, &item.head) {
            Ok(true) => return false,
            Ok(false) => format!(
                "the item row is at event {}, which is not where its log ends",
                item.seq
            ),
            Err(e) => e.to_string(),
        };
        let replayed = match replay(&self.store, &self.defs.load(), self.tz, id) {
            Ok(replayed) => replayed,
            Err(e) => {
                tracing::error!(item = %id, %problem, error = %e, "stored state differs from its event log, which does not replay; the stored state is kept");
                return false;
            }
        };
        if let Err(e) = log_wins(&self.store, id, &problem, replayed.as_ref(), batch) {
            tracing::error!(item = %id, error = %e, "the state replayed from the log cannot be staged");
        }
        match replayed {
            Some(item) => self.items.insert(id.to_string(), Arc::new(item)),
            None => {
                self.published.forget(id);
                self.items.remove(id)
            }
        };
        true
    }

    /// Checks the ends of up to [`CHECK_AT_ONCE`] items not yet checked, and commits what
    /// their logs repair.
    pub(super) async fn check_some(&mut self) {
        let mut batch = Batch::default();
        let mut changed = Vec::new();
        for _ in 0..CHECK_AT_ONCE {
            let Some(id) = self.unchecked.first().cloned() else {
                break;
            };
            if self.check_end(&id, &mut batch) {
                changed.push(id);
            }
        }
        if let Err(e) = self.store.commit(&batch).await {
            tracing::error!(error = %e, "the items repaired from their logs cannot be stored");
            self.wake.storage_failed.notify_one();
        }
        self.published.publish(
            changed
                .iter()
                .filter_map(|id| Some((self.items.get(id)?.clone(), true))),
        );
        if self.unchecked.is_empty() {
            tracing::info!(
                items = self.items.len(),
                ms = self.checking.elapsed().as_millis() as u64,
                "every item's rows checked against the end of its log"
            );
        }
        tokio::task::yield_now().await;
    }
}

/// Items whose log ends the writer checks at a time in its idle time: a few milliseconds.
const CHECK_AT_ONCE: usize = 256;

/// Rebuilds an item by folding its log through the engine (the stored state must equal it).
pub fn replay(store: &Store, defs: &Definitions, tz: Tz, id: &str) -> anyhow::Result<Option<Item>> {
    let log = store.events(id).collect::<store::Result<Vec<Record>>>()?;
    engine::replay(|v| defs.version(v).map(|w| &**w), tz, id, &log)
        .map_err(|e| anyhow::anyhow!("{id}: {e}"))
}
