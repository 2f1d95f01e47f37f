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
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::message::{Attachment, Mailbox, MultiPart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::engine::Item;
use crate::observe::Metrics;
use crate::store::Store;
pub use crate::templates::Templates;
use crate::token::{BallotRef, Key};

/// Tries before a transiently failing mail is given up as failed.
const MAX_ATTEMPTS: u32 = 12;
/// The template of the secretariat's notice about a mail that failed for good.
const FAILURE_TEMPLATE: &str = "mail-failed";
/// Mails handed to the transport at the same time (the SMTP pool keeps up to 10 connections).
const IN_FLIGHT: usize = 16;
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

impl Mail {
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
            created_at: at,
            attempts: 0,
            next_attempt: at,
            last_error: None,
            failed: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub name: String,
    pub email: String,
    pub language: String,
    pub member: Option<String>,
    #[serde(default)]
    pub member_name: Option<String>,
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
    // When the current stage waits, the time it moves on (a session's date, say).
    if let Some(due) = item.timers.get(&format!("next@{}", item.stage)) {
        data["item"]["next"] =
            json!({ "local": local(*due), "ics": due.format("%Y%m%dT%H%M%SZ").to_string() });
    }
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
    /// Domain of the inbound listener's reply addresses (`ballot+TOKEN@domain`), if enabled.
    pub reply_domain: Option<String>,
    pub dkim: Option<lettre::message::dkim::DkimConfig>,
    /// Told of every mail that fails for good.
    pub secretariat: Recipient,
}

impl Outbox {
    pub async fn run(self, wake: Arc<Notify>, stop: CancellationToken) {
        let outbox = Arc::new(self);
        loop {
            let now = crate::clock::now();
            let mut next = None::<DateTime<Utc>>;
            let mut due = Vec::new();
            for mail in outbox.store.mails::<Mail>() {
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
            // Several mails at once over the SMTP pool; each keeps its own row and Message-ID.
            let mut sending = tokio::task::JoinSet::new();
            for mail in due {
                if stop.is_cancelled() {
                    break;
                }
                if sending.len() >= IN_FLIGHT {
                    sending.join_next().await;
                }
                let outbox = outbox.clone();
                sending.spawn(async move { outbox.deliver(mail).await });
            }
            while sending.join_next().await.is_some() {}
            if stop.is_cancelled() {
                return;
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
                    crate::clock::now() + chrono::Duration::milliseconds((backoff + jitter) as i64);
                tracing::warn!(item = %mail.item, mail = %mail.id, error = %e, attempt = mail.attempts, "mail delayed; will retry");
                mail.last_error = Some(e);
            }
            Err(SendError::Transient(e) | SendError::Permanent(e)) => {
                self.metrics.mail_failed.inc();
                tracing::error!(item = %mail.item, mail = %mail.id, error = %e, "mail failed");
                if mail.template != FAILURE_TEMPLATE {
                    self.report_failure(&mail, &e);
                }
                mail.failed = true;
                mail.last_error = Some(e);
            }
        }
        let _ = self.store.put_mail(&mail.id, &mail);
    }

    /// Tells the secretariat that a mail failed for good (never about such a notice itself).
    fn report_failure(&self, failed: &Mail, error: &str) {
        let mut context = failed.context.clone();
        context["failure"] =
            json!({ "to": failed.to.email, "error": error, "template": failed.template });
        let now = crate::clock::now();
        let id = format!("{}.failed.{}", failed.id, now.timestamp_millis());
        let notice = Mail::new(
            id,
            &failed.item,
            FAILURE_TEMPLATE,
            self.secretariat.clone(),
            None,
            context,
            now,
        );
        if let Err(e) = self.store.put_mail(&notice.id, &notice) {
            tracing::error!(item = %failed.item, error = %e, "the failure notice could not be queued");
        }
    }

    /// Builds the message; the same mail always gets the same `Message-ID`.
    fn message(&self, mail: &Mail) -> Result<Message, String> {
        let templates = self.templates.load();
        let mut data = mail.context.clone();
        data["recipient"] = json!({
            "name": mail.to.name, "language": mail.to.language,
            "member": mail.to.member, "member_name": mail.to.member_name,
        });
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
                // An address's local part holds at most 64 characters.
                if let Some(reply) = self.reply_domain.as_ref().filter(|_| token.len() + 7 <= 64) {
                    b["reply_to"] = json!(format!("ballot+{token}@{reply}"));
                }
            }
        }
        // The question may name item fields (`Adopt “{{item.title}}”?`).
        if let Some(b) = data.get_mut("ballot").filter(|b| b.is_object()) {
            let question = b["question"].as_str().unwrap_or_default().to_string();
            b["question"] = json!(templates.render_text(&question, &mail.context));
        }
        let rendered = templates.render(&mail.template, &mail.to.language, &data)?;
        let to: Mailbox = format!("{} <{}>", mail.to.name, mail.to.email)
            .parse()
            .or_else(|_| mail.to.email.parse())
            .map_err(|e| format!("address {}: {e}", mail.to.email))?;
        let domain = self.from.email.domain().to_string();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(format!("<{}@{domain}>", mail.id)))
            .header(ContentLanguage(rendered.language.clone()));
        if let Some(reply) = data["ballot"]["reply_to"].as_str() {
            builder = builder.reply_to(reply.parse().map_err(|e| format!("reply address: {e}"))?);
        }
        let alternative = MultiPart::alternative_plain_html(rendered.text, rendered.html);
        let body = match rendered.ics {
            None => alternative,
            Some(ics) => {
                let calendar = ContentType::parse("text/calendar; charset=utf-8; method=REQUEST")
                    .map_err(|e| e.to_string())?;
                MultiPart::mixed().multipart(alternative).singlepart(
                    Attachment::new("invitation.ics".into())
                        .body(ics.replace("\r\n", "\n").replace('\n', "\r\n"), calendar),
                )
            }
        };
        let message = builder.multipart(body).map_err(|e| e.to_string())?;
        Ok(match &self.dkim {
            Some(dkim) => {
                let mut message = message;
                message.sign(dkim);
                message
            }
            None => message,
        })
    }
}

/// The `Content-Language` header, so clients and screen readers know the mail's language.
#[derive(Clone)]
struct ContentLanguage(String);

impl lettre::message::header::Header for ContentLanguage {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ContentLanguage(s.to_string()))
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), self.0.clone())
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
