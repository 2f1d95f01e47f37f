//! Mail: the outbox rows, their templates, and the worker that delivers them.
//!
//! The writer stages a [`Mail`] row per recipient in the same transaction as the event that
//! caused it. The worker renders it with Handlebars in strict mode, sends it over SMTP
//! (lettre) or writes it as an `.eml` file when no SMTP server is configured, and deletes
//! the row. Every try of a mail carries the same `Message-ID`, so a resend after a crash is
//! recognised by mail clients. Transient failures are retried with backoff; permanent ones
//! stay in the outbox marked failed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use handlebars::Handlebars;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::engine::Item;
use crate::observe::Metrics;
use crate::store::Store;
use crate::token::{BallotRef, Key};

/// Tries before a transiently failing mail is given up as failed.
const MAX_ATTEMPTS: u32 = 12;
/// Mails taken from the outbox per round.
const ROUND: usize = 256;

/// One mail to one recipient, as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mail {
    /// Stable id: `ITEM.SEQ.EFFECT.RECIPIENT`; the `Message-ID` is built from it.
    pub id: String,
    pub item: String,
    pub template: String,
    pub to: Recipient,
    pub ballot: Option<usize>,
    pub context: Value,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    pub last_error: Option<String>,
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub name: String,
    pub email: String,
    pub language: String,
    pub member: Option<String>,
    pub delegate: Option<usize>,
}

/// The data a template sees, taken from the item when the mail was caused.
///
/// Without a ballot of its own, a mail sees the item's last decided ballot (for results).
pub fn context(
    council: &str,
    workflow_title: &str,
    item: &Item,
    ballot: Option<usize>,
    tz: Tz,
) -> Value {
    let local = |t: DateTime<Utc>| {
        t.with_timezone(&tz)
            .format("%A %-d %B %Y, %H:%M %Z")
            .to_string()
    };
    let mut data = json!({
        "council": council,
        "item": {
            "id": item.id,
            "workflow": item.workflow,
            "title": item.inputs.get("title").map_or(workflow_title, String::as_str),
            "inputs": item.inputs,
            "stage": item.stage,
            "outcome": item.outcome,
            "register_number": item.register_number,
            "started": local(item.started_at),
        },
    });
    let ballot = ballot.or_else(|| item.ballots.iter().rposition(|b| b.result.is_some()));
    if let Some(b) = ballot.and_then(|b| item.ballots.get(b)) {
        let result = b.result.as_ref().map(|r| json!({"verdict": r.verdict.as_str(), "counts": r.counts, "explanation": r.explanation}));
        data["ballot"] = json!({
            "question": b.question,
            "choices": b.choices,
            "closes_at": local(b.closes_at),
            "eligible": b.electorate.len(),
            "result": result,
        });
    }
    data
}

/// The templates folder: `NAME.subject.hbs` and `NAME.text.hbs` per template.
pub struct Templates {
    hb: Handlebars<'static>,
    names: BTreeSet<String>,
}

impl Templates {
    /// Loads every template; all problems are returned together, each with its file.
    pub fn load(dir: &Path) -> Result<Templates, Vec<String>> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        let mut errors = Vec::new();
        let mut parts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let entries =
            std::fs::read_dir(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
                continue;
            };
            let Some(stem) = file.strip_suffix(".hbs") else {
                continue;
            };
            let Some((name, part)) = stem.rsplit_once('.') else {
                errors.push(format!(
                    "{}: name templates NAME.subject.hbs and NAME.text.hbs",
                    path.display()
                ));
                continue;
            };
            if part != "subject" && part != "text" {
                errors.push(format!(
                    "{}: unknown part `{part}`: use `subject` or `text`",
                    path.display()
                ));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(source) => {
                    match hb.register_template_string(stem, source.trim_end_matches('\n')) {
                        Ok(()) => {
                            parts
                                .entry(name.to_string())
                                .or_default()
                                .insert(part.to_string());
                        }
                        Err(e) => errors.push(format!("{}: {e}", path.display())),
                    }
                }
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
        for (name, have) in &parts {
            for part in ["subject", "text"] {
                if !have.contains(part) {
                    errors.push(format!(
                        "{}: template `{name}` has no {part} part",
                        dir.join(format!("{name}.{part}.hbs")).display()
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Templates {
            hb,
            names: parts.into_keys().collect(),
        })
    }

    pub fn names(&self) -> &BTreeSet<String> {
        &self.names
    }

    /// Renders a template's subject and text.
    pub fn render(&self, name: &str, data: &Value) -> Result<(String, String), String> {
        let part = |p: &str| {
            self.hb
                .render(&format!("{name}.{p}"), data)
                .map_err(|e| format!("template {name}.{p}: {e}"))
        };
        Ok((part("subject")?.trim().to_string(), part("text")?))
    }

    /// Renders a one-off string (a ballot question) against item data, leniently.
    pub fn render_text(&self, text: &str, data: &Value) -> String {
        let mut hb = Handlebars::new();
        hb.register_escape_fn(handlebars::no_escape);
        hb.render_template(text, data)
            .unwrap_or_else(|_| text.to_string())
    }
}

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    /// `.eml` files in a folder, one per mail, named by its id.
    Files(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    pub fn from_config(smtp_url: Option<&str>, folder: PathBuf) -> anyhow::Result<Transport> {
        match smtp_url {
            Some(url) => Ok(Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("mail.smtp_url `{url}`: {e}"))?
                    .timeout(Some(Duration::from_secs(30)))
                    .build(),
            )),
            None => {
                std::fs::create_dir_all(&folder)?;
                Ok(Transport::Files(folder))
            }
        }
    }

    async fn send(&self, id: &str, message: Message) -> Result<(), SendError> {
        match self {
            Transport::Files(dir) => {
                let tmp = dir.join(format!(".{id}.tmp"));
                let path = dir.join(format!("{id}.eml"));
                let write = async {
                    tokio::fs::write(&tmp, message.formatted()).await?;
                    tokio::fs::rename(&tmp, &path).await
                };
                write.await.map_err(|e| SendError::Transient(e.to_string()))
            }
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(e.to_string())
                } else {
                    SendError::Transient(e.to_string())
                }
            }),
        }
    }
}

enum SendError {
    Transient(String),
    Permanent(String),
}

/// Everything the outbox worker needs.
pub struct Outbox {
    pub store: Store,
    pub templates: Arc<ArcSwap<Templates>>,
    pub transport: Transport,
    pub from: Mailbox,
    pub public_url: String,
    pub key: Key,
    pub metrics: Arc<Metrics>,
}

impl Outbox {
    pub async fn run(self, wake: Arc<Notify>, stop: CancellationToken) {
        loop {
            let now = Utc::now();
            let mut next = None::<DateTime<Utc>>;
            let mut due = Vec::new();
            for mail in self.store.mails::<Mail>() {
                let Ok(mail) = mail else { continue };
                if mail.failed {
                    continue;
                }
                if mail.next_attempt <= now {
                    due.push(mail);
                    if due.len() == ROUND {
                        break;
                    }
                } else {
                    next = Some(next.map_or(mail.next_attempt, |n| n.min(mail.next_attempt)));
                }
            }
            if due.is_empty() {
                let sleep = next.map_or(Duration::from_secs(60), |n| {
                    (n - now).to_std().unwrap_or_default()
                });
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = wake.notified() => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
            for mail in due {
                if stop.is_cancelled() {
                    return;
                }
                self.deliver(mail).await;
            }
        }
    }

    async fn deliver(&self, mut mail: Mail) {
        let result = match self.message(&mail) {
            Ok(message) => self.transport.send(&mail.id, message).await,
            Err(e) => Err(SendError::Permanent(e)),
        };
        match result {
            Ok(()) => {
                self.metrics.mail_sent.inc();
                tracing::info!(item = %mail.item, mail = %mail.id, template = %mail.template, "mail sent");
                let _ = self.store.remove_mail(&mail.id);
                return;
            }
            Err(SendError::Transient(e)) if mail.attempts + 1 < MAX_ATTEMPTS => {
                self.metrics.mail_retried.inc();
                mail.attempts += 1;
                let backoff = 2u64.pow(mail.attempts.min(10)) * 1_000;
                let jitter = rand::random::<u64>() % (backoff / 2 + 1);
                mail.next_attempt =
                    Utc::now() + chrono::Duration::milliseconds((backoff + jitter) as i64);
                tracing::warn!(item = %mail.item, mail = %mail.id, error = %e, attempt = mail.attempts, "mail delayed; will retry");
                mail.last_error = Some(e);
            }
            Err(SendError::Transient(e) | SendError::Permanent(e)) => {
                self.metrics.mail_failed.inc();
                tracing::error!(item = %mail.item, mail = %mail.id, error = %e, "mail failed");
                mail.failed = true;
                mail.last_error = Some(e);
            }
        }
        let _ = self.store.put_mail(&mail.id, &mail);
    }

    /// Builds the message; the same mail always gets the same `Message-ID`.
    fn message(&self, mail: &Mail) -> Result<Message, String> {
        let mut data = mail.context.clone();
        data["recipient"] =
            json!({ "name": mail.to.name, "language": mail.to.language, "member": mail.to.member });
        if let (Some(ballot), Some(member), Some(delegate)) =
            (mail.ballot, &mail.to.member, mail.to.delegate)
        {
            let token = self.key.sign(&BallotRef {
                item: mail.item.clone(),
                ballot,
                member: member.clone(),
                delegate,
            });
            if let Some(b) = data.get_mut("ballot") {
                b["link"] = json!(format!(
                    "{}/ballot/{token}",
                    self.public_url.trim_end_matches('/')
                ));
                b["question"] = json!(
                    self.templates
                        .load()
                        .render_text(b["question"].as_str().unwrap_or_default(), &mail.context)
                );
            }
        }
        let (subject, body) = self.templates.load().render(&mail.template, &data)?;
        let to: Mailbox = format!("{} <{}>", mail.to.name, mail.to.email)
            .parse()
            .or_else(|_| mail.to.email.parse())
            .map_err(|e| format!("address {}: {e}", mail.to.email))?;
        let domain = self.from.email.domain().to_string();
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{}@{domain}>", mail.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| e.to_string())
    }
}

/// Whether the SMTP server answers (for `/readyz`).
pub async fn smtp_reachable(url: Option<&str>) -> bool {
    let Some(url) = url else { return true };
    match AsyncSmtpTransport::<Tokio1Executor>::from_url(url) {
        Ok(builder) => {
            let transport: AsyncSmtpTransport<Tokio1Executor> =
                builder.timeout(Some(Duration::from_secs(3))).build();
            transport.test_connection().await.unwrap_or(false)
        }
        Err(_) => false,
    }
}
