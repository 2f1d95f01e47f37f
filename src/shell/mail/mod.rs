//! Mail: the outbox rows, their templates, and the worker that delivers them.
//!
//! The writer stages a [`Mail`] row per recipient in the same transaction as the event that
//! caused it. The worker renders it with Handlebars in strict mode, sends it over SMTP
//! (lettre) or writes it as an `.eml` file when no SMTP server is configured, and deletes
//! the row. Every try of a mail carries the same `Message-ID`, so a resend after a crash is
//! recognised by mail clients. Transient failures are retried with backoff; permanent ones
//! stay in the outbox marked failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::{Attachment, Mailbox, MultiPart, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::engine::{Item, Timer};
use crate::observe::Metrics;
use crate::rules::election::BLANK;
use crate::store::Store;
pub use crate::templates::Templates;
use crate::token::{BallotRef, Key};

/// Tries before a transiently failing mail is given up as failed.
const MAX_ATTEMPTS: u32 = 12;
/// The template of the secretariat's notice about a mail that failed for good.
const FAILURE_TEMPLATE: &str = "mail-failed";
/// Mails rendered or handed to the transport at the same time.
const IN_FLIGHT: usize = 16;
/// SMTP connections open at once (lettre's default pool size).
const MAX_CONNECTIONS: usize = 10;
/// Time allowed to connect, and to send one mail.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// SMTP connections unused this long are closed when the outbox is idle.
const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// Mails taken from the outbox per round.
const ROUND: usize = 256;

/// One mail to one recipient, as stored in the outbox.
///
/// A row is stored under short names (the long ones of earlier rows still read) and
/// leaves out the fields at their default, as they are in the row a vote commits for its
/// receipt: sled rewrites the outbox's pages in proportion to its rows' size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mail {
    /// Stable id: `ITEM.SEQ.EFFECT.RECIPIENT`; the `Message-ID` is built from it.
    pub id: String,
    #[serde(rename = "i", alias = "item")]
    pub item: String,
    #[serde(rename = "t", alias = "template")]
    pub template: String,
    pub to: Recipient,
    #[serde(
        rename = "b",
        alias = "ballot",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ballot: Option<usize>,
    /// The mail's own data; with `shared`, only what it adds to the data it shares.
    #[serde(
        rename = "c",
        alias = "context",
        default = "empty",
        skip_serializing_if = "is_empty"
    )]
    pub context: Value,
    /// The key of the data this mail shares with others (the recipients of one notice, the
    /// receipts of one ballot), kept once in the store's `contexts`.
    #[serde(
        rename = "s",
        alias = "shared",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub shared: Option<String>,
    /// The event, in the item's log, of the vote this mail tells (a receipt's choice and
    /// hash): read from the log when the mail is rendered rather than copied into the row.
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub vote: Option<u64>,
    #[serde(rename = "at", alias = "created_at")]
    pub created_at: DateTime<Utc>,
    #[serde(
        rename = "a",
        alias = "attempts",
        default,
        skip_serializing_if = "is_zero"
    )]
    pub attempts: u32,
    /// When the next try is due, if not at `created_at` (see [`Mail::due`]).
    #[serde(
        rename = "due",
        alias = "next_attempt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub next_attempt: Option<DateTime<Utc>>,
    #[serde(
        rename = "err",
        alias = "last_error",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub last_error: Option<String>,
    #[serde(
        rename = "f",
        alias = "failed",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub failed: bool,
}

fn empty() -> Value {
    json!({})
}

fn is_empty(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.is_empty())
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where a mail stands in the outbox (a sent mail leaves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailState {
    /// Not tried yet.
    Pending,
    /// Tried, failed for a reason that may pass; tried again later.
    Retrying,
    /// Failed for good (a permanent refusal, or every try used); the secretariat was told.
    Failed,
}

impl MailState {
    pub fn as_str(self) -> &'static str {
        match self {
            MailState::Pending => "pending",
            MailState::Retrying => "retrying",
            MailState::Failed => "failed",
        }
    }
}

impl Mail {
    /// When the mail is next tried.
    pub fn due(&self) -> DateTime<Utc> {
        self.next_attempt.unwrap_or(self.created_at)
    }

    pub fn state(&self) -> MailState {
        match (self.failed, self.attempts) {
            (true, _) => MailState::Failed,
            (false, 0) => MailState::Pending,
            _ => MailState::Retrying,
        }
    }

    /// The data the mail is rendered with: what it shares, with its own on top, and the
    /// vote it tells as the item's log holds it.
    pub fn data(&self, store: &Store) -> Result<Value, String> {
        let mut data = match &self.shared {
            None => self.context.clone(),
            Some(key) => {
                let mut data: Value = store
                    .context(key)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("its shared data `{key}` is not in the store"))?;
                overlay(&mut data, &self.context);
                data
            }
        };
        if let Some(seq) = self.vote {
            let vote = match store.event(&self.item, seq).map_err(|e| e.to_string())? {
                Some(crate::engine::Record {
                    event: crate::engine::Event::VoteCast { choice, .. },
                    hash,
                    ..
                }) => json!({ "choice": choice, "receipt": hash }),
                Some(_) => return Err(format!("event {seq} of {} is not a vote", self.item)),
                None => {
                    return Err(format!(
                        "its vote, event {seq} of {}, is not in the store",
                        self.item
                    ));
                }
            };
            let Some(fields) = data.as_object_mut() else {
                return Err("its data is not an object".into());
            };
            fields.insert("vote".into(), vote);
        }
        Ok(data)
    }

    /// A mail to send now, never tried yet.
    pub fn new(
        id: String,
        item: &str,
        template: &str,
        to: Recipient,
        ballot: Option<usize>,
        context: Value,
        at: DateTime<Utc>,
    ) -> Mail {
        Mail {
            id,
            item: item.to_string(),
            template: template.to_string(),
            to,
            ballot,
            context,
            shared: None,
            vote: None,
            created_at: at,
            attempts: 0,
            next_attempt: None,
            last_error: None,
            failed: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    #[serde(rename = "n", alias = "name")]
    pub name: String,
    #[serde(rename = "e", alias = "email")]
    pub email: String,
    #[serde(rename = "l", alias = "language")]
    pub language: String,
    #[serde(
        rename = "m",
        alias = "member",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub member: Option<String>,
    #[serde(
        rename = "mn",
        alias = "member_name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub member_name: Option<String>,
    #[serde(
        rename = "d",
        alias = "delegate",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub delegate: Option<usize>,
}

impl Recipient {
    /// A delegate of a member (or the secretariat, with no member).
    pub fn delegate(
        d: &crate::roster::Delegate,
        member: Option<(&str, &str)>,
        index: Option<usize>,
    ) -> Recipient {
        Recipient {
            name: d.name.clone(),
            email: d.email.clone(),
            language: d.language.clone(),
            member: member.map(|(id, _)| id.to_string()),
            member_name: member.map(|(_, name)| name.to_string()),
            delegate: index,
        }
    }

    /// The voting delegate of a member in a ballot's electorate.
    pub fn voter(v: &crate::engine::Voter) -> Recipient {
        Recipient {
            name: v.name.clone(),
            email: v.email.clone(),
            language: v.language.clone(),
            member: Some(v.member.clone()),
            member_name: Some(v.member_name.clone()),
            delegate: Some(v.delegate),
        }
    }
}

/// `to` as the roster in force has them: the address and language of the same delegate
/// now (the same member's delegate of the same name, or the secretariat), so that mail
/// queued or retried after the roster corrects an address goes to the corrected one. A
/// delegate no longer in the roster, or renamed, keeps the address the mail was queued with.
pub fn readdressed(to: &Recipient, roster: &crate::roster::Roster) -> Recipient {
    let now = match (&to.member, to.delegate) {
        (None, _) => Some(&roster.secretariat),
        (Some(m), Some(i)) => roster.member(m).and_then(|m| {
            // The same place first; a list reordered is searched by name.
            let same = |d: &&crate::roster::Delegate| d.name == to.name;
            m.delegates
                .get(i)
                .filter(same)
                .or_else(|| m.delegates.iter().find(same))
        }),
        (Some(_), None) => None,
    };
    match now {
        Some(d) => Recipient {
            name: d.name.clone(),
            email: d.email.clone(),
            language: d.language.clone(),
            ..to.clone()
        },
        None => to.clone(),
    }
}

/// Whether councild can send to `email`: the roster's check of each delegate.
///
/// The mail library's grammar is wider than what a relay delivers: it takes address
/// literals (`a@[127.0.0.1]`) and dotless hosts (`a@localhost`). A delegate's address is
/// one lettre accepts, with no control characters, at a domain of dot-separated names
/// (at least two).
pub fn is_address(email: &str) -> bool {
    let Some((_, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !email.chars().any(char::is_control)
        && is_domain_name(domain)
        && email.parse::<lettre::Address>().is_ok()
}

/// A dot-atom domain of two or more labels: letters, digits and inner hyphens.
fn is_domain_name(domain: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    domain.split('.').count() >= 2 && domain.split('.').all(label)
}

/// The data a template sees, taken from the item when the mail was caused.
///
/// Without a ballot of its own, a mail sees the item's last decided ballot (for results).
/// Times are kept as RFC 3339 in the council's zone (`templates::TIMES`); each is written
/// in the reader's language when the mail is rendered.
/// The workflow's words in other languages (the title's `title.LANG` inputs, the
/// question's and the choices' texts) ride along, and [`in_language`] picks the reader's.
pub fn context(
    council: &str,
    workflow: Option<&crate::definition::Workflow>,
    item: &Item,
    ballot: Option<usize>,
    tz: Tz,
) -> Value {
    let workflow_title = workflow.map_or(item.workflow.as_str(), |w| w.title.as_str());
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).to_rfc3339();
    let titles: serde_json::Map<String, Value> = item
        .inputs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("title.")?.to_string(), json!(v))))
        .collect();
    let mut data = json!({
        "council": council,
        "item": {
            "id": item.id,
            "workflow": item.workflow,
            "title": item.title(workflow_title),
            "titles": titles,
            "inputs": item.inputs,
            "stage": item.stage,
            "outcome": item.outcome,
            "register_number": item.register_number,
            "started": local(item.started_at),
        },
    });
    // A session's agenda, as it stands: the points listed, in order.
    if let Some(m) = &item.meeting {
        let agenda: Vec<Value> = m
            .agenda
            .iter()
            .filter(|p| p.status == crate::engine::PointStatus::Listed)
            .enumerate()
            .map(|(i, p)| json!({"place": i + 1, "title": p.title, "explanation": p.explanation, "url": p.url}))
            .collect();
        data["item"]["agenda"] = json!(agenda);
    }
    // The current version of each language's text, with its hash; each reader's mail
    // adds a link to it (`outbox`).
    let documents: Vec<Value> = item
        .documents
        .iter()
        .filter_map(|(language, versions)| {
            let v = versions.last()?;
            Some(json!({
                "language": language,
                "language_name": crate::locale::language_name(language),
                "sha256": v.sha256, "name": v.name, "bytes": v.bytes,
                "version": versions.len(), "revised": versions.len() > 1,
            }))
        })
        .collect();
    if !documents.is_empty() {
        data["item"]["documents"] = json!(documents);
    }
    // The amendments so far and their fates; and whether members may propose one now.
    if !item.amendments.is_empty() {
        let fates: Vec<Value> = item
            .amendments
            .iter()
            .map(|a| json!({"number": a.number, "member": a.member, "fate": a.fate.map(|f| f.as_str())}))
            .collect();
        data["item"]["amendments"] = json!(fates);
    }
    if workflow.is_some_and(|w| w.takes_amendments(&item.stage)) {
        data["item"]["takes_amendments"] = json!(true);
    }
    let stage = workflow.and_then(|w| w.stages.get(&item.stage));
    if stage.is_some_and(|s| s.proposals) {
        data["item"]["proposals"] = json!(true);
    }
    if stage.is_some_and(|s| s.nominations.is_some()) {
        data["item"]["nominations"] = json!(true);
    }
    // When the current stage waits, the time it moves on (a session's date, say).
    if let Some(due) = item.timers.get(&Timer::Next(item.stage.clone())) {
        data["item"]["next"] =
            json!({ "local": local(*due), "ics": due.format("%Y%m%dT%H%M%SZ").to_string() });
    }
    let ballot = ballot.or_else(|| item.ballots.iter().rposition(|b| b.result.is_some()));
    if let Some(b) = ballot.and_then(|b| item.ballots.get(b)) {
        let spec = workflow.and_then(|w| w.ballot(&b.stage));
        let result = b.result.as_ref().map(|r| {
            // What decided it, for a sentence in each language (the explanation is the
            // rule's formula, in the words of the workflow file): the closed ballot's
            // votes counted again under its rules.
            let decided_by = match spec.filter(|s| s.election.is_none()) {
                Some(s) => crate::engine::tally(s, b).decided_by.as_str(),
                None if r.verdict == crate::rules::Verdict::NoQuorum => "quorum",
                None => "rule",
            };
            json!({"verdict": r.verdict.as_str(), "counts": r.counts, "explanation": r.explanation, "decided_by": decided_by})
        });
        let mut labels: serde_json::Map<String, Value> = spec
            .map(|s| &s.labels)
            .into_iter()
            .flatten()
            .map(|(id, t)| {
                let mut texts = json!(t.by_language);
                texts["default"] = json!(t.default);
                (id.clone(), texts)
            })
            .collect();
        // An election: each candidate's name is the label of their choice.
        for c in &item.candidates {
            let mut names = json!(c.name);
            names["default"] = json!(c.name_in("en"));
            labels.insert(c.id.clone(), names);
        }
        if let (Some(round), Some(e)) = (b.round, spec.and_then(|s| s.election.as_ref())) {
            labels.entry(BLANK).or_insert_with(|| {
                json!({"en": "blank ballot", "fr": "bulletin blanc", "ar": "ورقة بيضاء", "default": "blank ballot"})
            });
            let candidates: Vec<&String> = b.choices.iter().filter(|c| *c != BLANK).collect();
            data["election"] = json!({
                "seats": e.seats, "round": round.number, "mark_up_to": round.seats,
                "candidates": candidates, "elected": item.elected, "blank": e.blank,
                "unfilled": (e.seats as usize).saturating_sub(item.elected.len()),
            });
        }
        // A ballot on an amendment: its passages and what replaces them, by language.
        if let Some(a) = b
            .amendment
            .and_then(|n| item.amendments.iter().find(|a| a.number == n))
        {
            let changes: Vec<Value> = a
                .changes
                .iter()
                .map(|(l, c)| json!({"language": l, "language_name": crate::locale::language_name(l), "passage": c.passage, "replacement": c.replacement}))
                .collect();
            data["amendment"] = json!({"number": a.number, "member": a.member, "reason": a.reason, "changes": changes});
        }
        data["ballot"] = json!({
            "question": b.question,
            "questions": spec.map(|s| &s.question.by_language),
            "choices": b.choices,
            "labels": labels,
            "closes_at": local(b.closes_at),
            "in_session": b.in_session,
            "eligible": b.electorate.len(),
            "result": result,
        });
        if b.sealed.is_some() {
            data["ballot"]["secret"] = json!(true);
        }
    }
    data
}

/// Puts the keys of `own` in `data`, in place of theirs.
pub fn overlay(data: &mut Value, own: &Value) {
    if let (Some(data), Some(own)) = (data.as_object_mut(), own.as_object()) {
        data.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// Whether `event`, just applied to `item`, left its [`context`] as it was: a vote cast in
/// a ballot it left open (the data shows no votes; a vote that closed its ballot changed
/// the result, the stage or more). What is derived from the data may be kept meanwhile.
pub fn keeps_context(item: &Item, event: &crate::engine::Event) -> bool {
    match event {
        crate::engine::Event::VoteCast { ballot, .. } => {
            item.ballots.get(*ballot).is_some_and(|b| !b.closed())
        }
        _ => false,
    }
}

/// Puts the reader's language's words in a mail's data: the item's title, the ballot's
/// question, and each choice's label (in `ballot.choices` and a receipt's `vote.choice`),
/// where the workflow or the item gives them; the default text otherwise.
pub fn in_language(data: &mut Value, language: &str) {
    let pick = |texts: &Value| -> Option<Value> {
        texts
            .get(language)
            .or_else(|| texts.get("default"))
            .filter(|t| t.is_string())
            .cloned()
    };
    if let Some(item) = data.get_mut("item").and_then(Value::as_object_mut)
        && let Some(title) = item.get("titles").and_then(|t| t.get(language)).cloned()
    {
        item.insert("title".into(), title);
    }
    let labels = data
        .get("ballot")
        .and_then(|b| b.get("labels"))
        .cloned()
        .unwrap_or(Value::Null);
    let one = |id: &str| -> Value { labels.get(id).and_then(pick).unwrap_or_else(|| json!(id)) };
    // A ballot marking several candidates (`a+b`): their names, joined by commas.
    let label = |choice: &Value| -> Value {
        let Some(id) = choice.as_str() else {
            return choice.clone();
        };
        match id.contains('+') {
            true => {
                let names: Vec<String> = id
                    .split('+')
                    .map(|c| one(c).as_str().unwrap_or(c).to_string())
                    .collect();
                json!(names.join(", "))
            }
            false => one(id),
        }
    };
    if let Some(election) = data.get_mut("election").and_then(Value::as_object_mut) {
        for key in ["candidates", "elected"] {
            if let Some(list) = election.get_mut(key).and_then(Value::as_array_mut) {
                for c in list.iter_mut() {
                    *c = label(c);
                }
            }
        }
    }
    if let Some(ballot) = data.get_mut("ballot").and_then(Value::as_object_mut) {
        // The result's counts, each under its label, in the order of the choices.
        let counts = ballot.get("result").and_then(|r| r.get("counts")).cloned();
        if let (Some(counts), Some(choices)) = (counts, ballot.get("choices").cloned()) {
            let tally: Vec<Value> = choices
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| {
                    Some(json!({"choice": label(c), "count": counts.get(c.as_str()?)?}))
                })
                .collect();
            if let Some(result) = ballot.get_mut("result").filter(|r| r.is_object()) {
                result["tally"] = json!(tally);
            }
        }
        if let Some(q) = ballot
            .get("questions")
            .and_then(|q| q.get(language))
            .cloned()
        {
            ballot.insert("question".into(), q);
        }
        if let Some(choices) = ballot.get_mut("choices").and_then(Value::as_array_mut) {
            for c in choices.iter_mut() {
                *c = label(c);
            }
        }
    }
    if let Some(choice) = data.get_mut("vote").and_then(|v| v.get_mut("choice")) {
        *choice = label(choice);
    }
}

mod outbox;
mod transport;

pub use outbox::Outbox;
pub use transport::{SmtpPool, Transport, smtp_reachable};

#[cfg(test)]
mod tests {
    use super::{Recipient, is_address, readdressed};

    #[test]
    fn a_mail_follows_its_delegate_not_a_place_in_the_list() {
        let roster = |delegates: &str| {
            crate::roster::Roster::parse(&format!(
                "council: C\nsecretariat: {{ name: S, email: s@example.org }}\nmembers:\n  - id: AAA\n    name: A\n    delegates:\n{delegates}"
            ), is_address)
            .unwrap()
        };
        let before = roster(
            "      - { name: First, email: first@example.org }\n      - { name: Second, email: second@example.org }\n",
        );
        let m = before.member("AAA").unwrap();
        let to = Recipient::delegate(&m.delegates[1], Some(("AAA", "A")), Some(1));
        // The address corrected: the new one.
        let fixed = roster(
            "      - { name: First, email: first@example.org }\n      - { name: Second, email: second@new.example.org }\n",
        );
        assert_eq!(readdressed(&to, &fixed).email, "second@new.example.org");
        // The first delegate gone: Second is now first in the list, and still gets it.
        let moved = roster("      - { name: Second, email: second@example.org }\n");
        assert_eq!(readdressed(&to, &moved).email, "second@example.org");
        // Gone altogether: the address it was queued with, not someone else's.
        let gone = roster("      - { name: First, email: first@example.org }\n");
        assert_eq!(readdressed(&to, &gone).email, "second@example.org");
    }

    #[test]
    fn addresses_are_what_councild_can_send_to() {
        for ok in [
            "a@b.org",
            "first.last+tag@mail.example.org",
            "x@xn--bcher-kva.de",
            "é@exämple.org",
        ] {
            assert!(is_address(ok), "{ok}");
        }
        for bad in [
            "a@[127.0.0.1]",
            "a@[IPv6:::1]",
            "a@localhost",
            "a@b..org",
            "a@.b.org",
            "a@b.org.",
            "a@-b.org",
            "a\n@b.org",
            "a@b.org\r\nBcc: c@d.org",
            "\"a\u{7}\"@b.org",
            "a",
            "@b.org",
            "a@",
        ] {
            assert!(!is_address(bad), "{bad:?}");
        }
    }
}
