//! Due timers: an item's become `timer_fired` events, a workflow's schedule opens an
//! item and sets its next start; and `reload`, which stores new definitions and resets
//! the schedules they change.

use super::*;

impl Writer {
    pub(super) fn timer(&mut self, s: &mut Staged, now: DateTime<Utc>, key: TimerKey) {
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
        match self.step(s, id, now, event, None) {
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
        match self.start(s, now, workflow, BTreeMap::new(), None) {
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
    pub(super) fn reload(&mut self, s: &mut Staged, now: DateTime<Utc>, workflows: Vec<Workflow>) {
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
}
