//! Start-up: every item read back and checked against the end of its log, and the full
//! replay (`check_on_start = "full"`); wherever the two disagree, the log wins.

use std::collections::HashMap;
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
