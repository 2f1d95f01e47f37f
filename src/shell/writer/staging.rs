//! What the writer stages for the engine's records: the event rows, vote and electorate
//! rows, register acts, timer rows, and one outbox row per recipient of each mail.

use super::*;
use crate::engine::Addressee;

/// The items whose receipt data is kept (those voted on last), at most.
const RECEIPTS_KEPT: usize = 1_024;

/// The writer's answers to the engine, and where its records go: the batch.
pub(super) struct Staging<'a> {
    pub(super) store: &'a Store,
    pub(super) roster: &'a Roster,
    pub(super) electorate: &'a Arc<Electorate>,
    pub(super) registers: &'a mut HashMap<(String, i32), u64>,
    pub(super) tz: Tz,
    pub(super) workflow: &'a Workflow,
    pub(super) s: &'a mut Staged,
    /// The shared data receipts name, by item (`Writer::receipts`).
    pub(super) receipts: &'a mut HashMap<String, (usize, String)>,
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

    /// Applies each adopted amendment's replacement at its place in the version it amends,
    /// from the end of the text back (the places do not overlap: an amendment overlapping
    /// an adopted one fell), and stores the new bytes. A version that cannot be read (its
    /// stored copy missing or changed) stops it: the item waits rather than put the
    /// unamended text to the vote.
    fn consolidate(&mut self, item: &Item) -> Result<BTreeMap<String, engine::Version>, String> {
        let adopted: Vec<&engine::Amendment> = item
            .amendments
            .iter()
            .filter(|a| a.fate == Some(engine::Fate::Adopted))
            .collect();
        let mut versions = BTreeMap::new();
        for (language, current) in &item.documents {
            let Some(base) = current.last() else { continue };
            let mut edits: Vec<(u64, u64, &str, u32)> = adopted
                .iter()
                .filter(|a| a.against.get(language) == Some(&base.sha256))
                .filter_map(|a| {
                    let (s, e) = a.spans.get(language)?;
                    Some((
                        *s,
                        *e,
                        a.changes.get(language)?.replacement.as_str(),
                        a.number,
                    ))
                })
                .collect();
            if edits.is_empty() {
                continue;
            }
            let unreadable = |why: String| {
                format!(
                    "the {language} version {} cannot be read ({why}): give its file again to repair the stored copy, then retry",
                    base.sha256
                )
            };
            let mut bytes = match self.store.document(&base.sha256) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return Err(unreadable("it is not in the store".into())),
                Err(e) => return Err(unreadable(e.to_string())),
            };
            edits.sort_by_key(|(s, ..)| std::cmp::Reverse(*s));
            for (s, e, replacement, _) in &edits {
                let (s, e) = (*s as usize, *e as usize);
                if s <= e && e <= bytes.len() {
                    bytes.splice(s..e, replacement.bytes());
                }
            }
            let sha256 = self
                .store
                .insert_document(&bytes)
                .map_err(|e| format!("the amended {language} version cannot be stored: {e}"))?;
            let mut numbers: Vec<u32> = edits.iter().map(|(.., n)| *n).collect();
            numbers.sort_unstable();
            versions.insert(
                language.clone(),
                engine::Version {
                    sha256,
                    bytes: bytes.len() as u64,
                    name: base.name.clone(),
                    media_type: base.media_type.clone(),
                    url: None,
                    at: item.entered_at,
                    amendments: numbers,
                },
            );
        }
        Ok(versions)
    }

    fn logged(&mut self, item: &Item, record: &Record, effects: Vec<Effect>) {
        let id = item.id.as_str();
        if !mail::keeps_context(item, &record.event) {
            self.s.changed.insert(id.to_string());
            let released = self.receipts.remove(id).map(|(_, key)| key);
            self.s.released.extend(released);
        }
        let batch = &mut self.s.batch;
        batch
            .events
            .push((store::event_key(id, record.seq), store::encode(record)));
        match &record.event {
            Event::VoteCast {
                ballot,
                member,
                choice,
                ..
            } => {
                batch.votes.insert(
                    store::vote_key(id, *ballot, member),
                    Some(choice.clone().into_bytes()),
                );
            }
            Event::VoteRecorded { ballot, votes, .. } => {
                for (member, choice) in votes {
                    batch.votes.insert(
                        store::vote_key(id, *ballot, member),
                        Some(choice.clone().into_bytes()),
                    );
                }
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
                    title: item.title(&self.workflow.title).to_string(),
                    at: record.at,
                    texts: item.texts(),
                };
                batch.registers.push((
                    store::register_key(series, *year, *seq),
                    store::encode(&act),
                ));
            }
            _ => {}
        }
        self.s.kinds.push(record.event.kind());
        self.milestones(item, record);
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
                Effect::Notice(notice) => tracing::info!(item = id, "{notice}"),
                // Answered by `engine::step` before the effects reach the shell.
                Effect::FixElectorate { .. } | Effect::Register { .. } | Effect::Consolidate => {}
            }
        }
    }
}

impl Staging<'_> {
    /// The moments an operator follows in the log, from the item after `record`.
    fn milestones(&mut self, item: &Item, record: &Record) {
        let mut said = |what: String| {
            let entry = (item.id.clone(), what);
            if !self.s.milestones.contains(&entry) {
                self.s.milestones.push(entry);
            }
        };
        match &record.event {
            Event::Started { .. } => said(format!("item started on workflow {}", item.workflow)),
            Event::ElectorateFixed { ballot, .. } => {
                if let Some(b) = item.ballots.get(*ballot) {
                    let closes = match b.in_session {
                        true => "taken in session".to_string(),
                        false => format!(
                            "closes {}",
                            b.closes_at
                                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                    };
                    said(format!(
                        "ballot {} opened at stage {}: {} voters, {closes}",
                        ballot + 1,
                        b.stage,
                        b.electorate.len(),
                    ));
                }
            }
            Event::MeetingClosed => said("meeting closed".into()),
            _ => {}
        }
        for (i, b) in item.ballots.iter().enumerate() {
            if let Some(r) = b.result.as_ref().filter(|r| r.closed_at == record.at) {
                said(format!(
                    "ballot {} closed at stage {}: {} ({})",
                    i + 1,
                    b.stage,
                    r.verdict.as_str(),
                    r.reason
                ));
            }
        }
        // An ended item takes no more events: this record ended it (or follows in the
        // same request).
        if item.status == crate::engine::Status::Ended {
            said(format!(
                "item ended: {}",
                item.outcome.as_deref().unwrap_or("no outcome")
            ));
        }
    }

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
        let (roster, workflow, tz) = (self.roster, self.workflow, self.tz);
        let build = || mail::context(&roster.council, Some(workflow), item, ballot, tz);
        // What is the recipient's own: the vote the record casts, for its receipt. A
        // secret vote's tracker (and nothing of what it marks) goes in the row; an open
        // vote's choice and hash are read from the log when the mail is rendered.
        let mut own = serde_json::json!({});
        let mut vote = None;
        if let Event::VoteCast {
            choice,
            proofs,
            ballot,
            ..
        } = &record.event
        {
            match (proofs, item.ballots.get(*ballot)) {
                (Some(_), Some(b)) => {
                    let choices = crate::secret::decode_choices(choice, b.choices.len());
                    let tracker = choices.map(|c| crate::secret::tracker(&c));
                    own["vote"] = serde_json::json!({ "tracker": tracker, "receipt": record.hash });
                }
                _ => vote = Some(record.seq),
            }
        }
        let recipients: Vec<Recipient> = engine::recipients(roster, item, &to)
            .into_iter()
            .map(|a| match a {
                Addressee::Secretariat(d) => Recipient::delegate(d, None, None),
                Addressee::Delegate(m, i, d) => {
                    Recipient::delegate(d, Some((&m.id, &m.name)), Some(i))
                }
                Addressee::Voter(v) => Recipient::voter(v),
            })
            .collect();
        // The data several mails share is stored once, each row naming it: a ballot's
        // receipts share the item's data as it stands since its last change other than a
        // vote (kept while votes come), the recipients of one notice the notice's.
        let receipt = match &record.event {
            Event::VoteCast { ballot: b, .. } if ballot == Some(*b) => Some(*b),
            _ => None,
        };
        let shared = match receipt.filter(|_| mail::keeps_context(item, &record.event)) {
            Some(b) => Some(match self.receipts.get(&item.id) {
                Some((kept, key)) if *kept == b => key.clone(),
                _ => {
                    let key = format!("{}.{}", item.id, record.seq);
                    self.share(&key, &build());
                    self.store.hold_context(&key);
                    if self.receipts.len() >= RECEIPTS_KEPT {
                        let all = self.receipts.drain().map(|(_, (_, key))| key);
                        self.s.released.extend(all);
                    }
                    let replaced = self.receipts.insert(item.id.clone(), (b, key.clone()));
                    self.s.released.extend(replaced.map(|(_, key)| key));
                    key
                }
            }),
            None if recipients.len() > 1 => {
                let key = format!("{}.{}.{}", item.id, record.seq, index);
                let mut data = build();
                event_data(&mut data, item, record);
                self.share(&key, &data);
                Some(key)
            }
            None => None,
        };
        let context = match shared {
            Some(_) => own,
            None => {
                let mut data = build();
                event_data(&mut data, item, record);
                mail::overlay(&mut data, &own);
                data
            }
        };
        for (r, to) in recipients.into_iter().enumerate() {
            let id = format!("{}.{}.{}.{}", item.id, record.seq, index, r);
            let mut mail = Mail::new(
                id.clone(),
                &item.id,
                template,
                to,
                ballot,
                context.clone(),
                record.at,
            );
            mail.shared = shared.clone();
            mail.vote = vote;
            self.s
                .batch
                .outbox
                .push((id.into_bytes(), store::encode(&mail)));
        }
    }

    /// Stages data mails share, under `key`.
    fn share(&mut self, key: &str, data: &serde_json::Value) {
        let row = (key.as_bytes().to_vec(), store::encode(data));
        self.s.batch.contexts.push(row);
    }
}

/// What an event's notice says of it beyond the item's data.
fn event_data(data: &mut serde_json::Value, item: &Item, record: &Record) {
    match &record.event {
        // A notice caused by a version replacing another says so.
        Event::DocumentAdded { language, .. }
            if item.documents.get(language).is_some_and(|v| v.len() > 1) =>
        {
            data["item"]["texts_revised"] = serde_json::json!(true);
        }
        // A cancellation's notice gives its reason.
        Event::Cancelled { reason } => {
            data["cancellation"] = serde_json::json!({ "reason": reason });
        }
        // An extension's notice gives its reason, when one was given.
        Event::DeadlineExtended { reason, .. } => {
            data["extension"] = serde_json::json!({ "reason": reason });
        }
        _ => {}
    }
}
