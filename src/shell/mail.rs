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
    pub fn state(&self) -> MailState {
        match (self.failed, self.attempts) {
            (true, _) => MailState::Failed,
            (false, 0) => MailState::Pending,
            _ => MailState::Retrying,
        }
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
/// Whether the mail library will send to `email`: the roster's check of each delegate.
pub fn is_address(email: &str) -> bool {
    email.parse::<lettre::Address>().is_ok()
}

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
            "title": item.title(workflow_title),
            "inputs": item.inputs,
            "stage": item.stage,
            "outcome": item.outcome,
            "register_number": item.register_number,
            "started": local(item.started_at),
        },
    });
    // When the current stage waits, the time it moves on (a session's date, say).
    if let Some(due) = item.timers.get(&Timer::Next(item.stage.clone())) {
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
    /// Plain SMTP or STARTTLS, over councild's own connections (with `TCP_NODELAY`).
    Smtp(Arc<SmtpPool>),
    /// Implicit TLS (`smtps://`), over lettre's pooled transport.
    Smtps(AsyncSmtpTransport<Tokio1Executor>),
}

impl Transport {
    pub fn from_config(smtp_url: Option<&str>, folder: PathBuf) -> anyhow::Result<Transport> {
        match smtp_url {
            Some(url) => {
                // lettre checks the URL as it always did (and builds the `smtps` transport).
                let lettre = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("mail.smtp_url `{url}`: {e}"))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .pool_config(PoolConfig::new().max_size(MAX_CONNECTIONS as u32))
                    .build();
                match SmtpPool::from_url(url)
                    .map_err(|e| anyhow::anyhow!("mail.smtp_url `{url}`: {e}"))?
                {
                    Some(pool) => Ok(Transport::Smtp(Arc::new(pool))),
                    None => Ok(Transport::Smtps(lettre)),
                }
            }
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
            Transport::Smtp(pool) => pool.send(&message).await,
            Transport::Smtps(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(SendError::from),
        }
    }

    /// Closes SMTP connections left unused for a while (when the outbox has nothing to do).
    async fn close_idle(&self) {
        if let Transport::Smtp(pool) = self {
            pool.close_idle(IDLE_CLOSE).await;
        }
    }
}

/// How to secure a connection of the [`SmtpPool`].
enum Security {
    Plain,
    StartTlsRequired(TlsParameters),
    StartTlsOpportunistic(TlsParameters),
}

/// SMTP connections to one server, reused from mail to mail.
///
/// lettre 0.11.23 does not set `TCP_NODELAY`: it writes a message's body and then its
/// final `\r\n.\r\n` as two writes, and Nagle holds the second until the server has
/// acknowledged the first, which a server answering nothing yet does only after its
/// delayed-ACK timer (40 ms on Linux). That capped each connection at about 25 mails/s.
/// Here councild opens the TCP connection itself, sets `TCP_NODELAY`, and hands it to
/// lettre's SMTP session ([`AsyncSmtpConnection::connect_with_transport`]), which still
/// does the EHLO, STARTTLS, AUTH and the mail transaction. (Fixed upstream in lettre
/// PR #1159, not released as of 0.11.23; `smtps://` keeps lettre's own transport.)
pub struct SmtpPool {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Connections not in use, each with the time it was last used.
    idle: std::sync::Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// At most [`MAX_CONNECTIONS`] connections open at once.
    open: tokio::sync::Semaphore,
}

impl SmtpPool {
    /// The pool for an `smtp://` URL (None for `smtps://`), read as lettre reads it.
    fn from_url(url: &str) -> Result<Option<SmtpPool>, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
        let host = parsed
            .host_str()
            .ok_or("smtp host undefined")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = parsed
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let params = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::StartTlsRequired(params()?), 587),
            ("smtp", Some("opportunistic")) => (Security::StartTlsOpportunistic(params()?), 587),
            ("smtps", _) => return Ok(None),
            (scheme, tls) => return Err(format!("unknown scheme `{scheme}` or tls `{tls:?}`")),
        };
        let hello = match parsed.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_string()),
        };
        let credentials = parsed.password().map(|password| {
            Credentials::new(percent_decode(parsed.username()), percent_decode(password))
        });
        Ok(Some(SmtpPool {
            port: parsed.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
            idle: std::sync::Mutex::new(Vec::new()),
            open: tokio::sync::Semaphore::new(MAX_CONNECTIONS),
        }))
    }

    /// Sends one message over an idle connection, or a new one; a connection that failed
    /// is closed, a healthy one goes back to the pool.
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let _permit = self.open.acquire().await.map_err(transient)?;
        let mut conn = self.checkout().await?;
        let raw = message.formatted();
        let sent = tokio::time::timeout(SMTP_TIMEOUT, conn.send(message.envelope(), &raw)).await;
        match sent {
            Ok(Ok(_)) => {
                self.checkin(conn);
                Ok(())
            }
            Ok(Err(e)) => {
                // lettre has already sent QUIT and marked the connection broken.
                if !conn.has_broken() {
                    self.checkin(conn);
                }
                Err(e.into())
            }
            Err(elapsed) => Err(transient(elapsed)),
        }
    }

    /// An idle connection that still answers (checked with NOOP after a pause), or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let popped = self.lock_idle().pop();
            let Some((mut conn, used)) = popped else {
                break;
            };
            if conn.has_broken() {
                continue;
            }
            if used.elapsed() < Duration::from_secs(5) {
                return Ok(conn);
            }
            let alive = tokio::time::timeout(Duration::from_secs(5), conn.test_connected()).await;
            if alive == Ok(true) {
                return Ok(conn);
            }
        }
        tokio::time::timeout(SMTP_TIMEOUT, self.connect())
            .await
            .map_err(transient)?
    }

    fn checkin(&self, conn: AsyncSmtpConnection) {
        self.lock_idle().push((conn, Instant::now()));
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(transient)?;
        tcp.set_nodelay(true).map_err(transient)?;
        let mut conn =
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
        match &self.security {
            Security::Plain => {}
            Security::StartTlsRequired(params) => {
                conn.starttls(params.clone(), &self.hello).await?;
            }
            Security::StartTlsOpportunistic(params) => {
                if conn.can_starttls() {
                    conn.starttls(params.clone(), &self.hello).await?;
                }
            }
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }

    /// Says QUIT on the connections unused for `after`.
    async fn close_idle(&self, after: Duration) {
        let stale: Vec<_> = {
            let mut idle = self.lock_idle();
            let (stale, keep) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|(_, used)| used.elapsed() >= after);
            *idle = keep;
            stale
        };
        for (mut conn, _) in stale {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.quit()).await;
        }
    }
}

/// A network failure or a time-out: worth another try.
fn transient(e: impl std::fmt::Display) -> SendError {
    SendError::Transient(e.to_string())
}

/// Percent-decodes the user name or password of a URL (as lettre does).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

enum SendError {
    Transient(String),
    Permanent(String),
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(e: lettre::transport::smtp::Error) -> SendError {
        if e.is_permanent() {
            SendError::Permanent(e.to_string())
        } else {
            SendError::Transient(e.to_string())
        }
    }
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
    pub clock: Clock,
}

impl Outbox {
    pub async fn run(self, wake: Arc<Notify>, stop: CancellationToken) {
        let outbox = Arc::new(self);
        // Several mails at once (over the SMTP pool); each keeps its own row and Message-ID.
        // The rows being delivered stay in the outbox until their try ends, so a new scan
        // skips them instead of waiting for a whole round to finish.
        let mut sending = tokio::task::JoinSet::new();
        // Task → mail id, so that even a try that panicked leaves the set.
        let mut in_flight = std::collections::HashMap::<tokio::task::Id, String>::new();
        loop {
            let moved = outbox.clock.moved();
            let now = outbox.clock.now();
            let mut next = None::<DateTime<Utc>>;
            let mut due = Vec::new();
            for mail in outbox.store.mails::<Mail>() {
                let Ok(mail) = mail else { continue };
                if mail.failed || in_flight.values().any(|id| *id == mail.id) {
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
                if !sending.is_empty() {
                    // Wait for a try to end (it may have queued a failure notice).
                    tokio::select! {
                        done = sending.join_next_with_id() => forget(&mut in_flight, done),
                        _ = wake.notified() => {}
                    }
                    continue;
                }
                outbox.transport.close_idle().await;
                let sleep = next.map_or(Duration::from_secs(60), |n| {
                    (n - now).to_std().unwrap_or_default()
                });
                tokio::select! {
                    _ = tokio::time::sleep(sleep) => {}
                    _ = wake.notified() => {}
                    _ = moved => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
            for mail in due {
                if stop.is_cancelled() {
                    break;
                }
                while sending.len() >= IN_FLIGHT {
                    let done = sending.join_next_with_id().await;
                    forget(&mut in_flight, done);
                }
                let id = mail.id.clone();
                let outbox = outbox.clone();
                let task = sending.spawn(async move { outbox.deliver(mail).await });
                in_flight.insert(task.id(), id);
            }
            if stop.is_cancelled() {
                while sending.join_next().await.is_some() {}
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
                    self.clock.now() + chrono::Duration::milliseconds((backoff + jitter) as i64);
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
        let now = self.clock.now();
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

/// Drops a finished try from the set of mails in flight.
fn forget(
    in_flight: &mut std::collections::HashMap<tokio::task::Id, String>,
    done: Option<Result<(tokio::task::Id, ()), tokio::task::JoinError>>,
) {
    match done {
        Some(Ok((task, ()))) => in_flight.remove(&task),
        Some(Err(e)) => in_flight.remove(&e.id()),
        None => None,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_user_and_password_are_percent_decoded() {
        assert_eq!(
            percent_decode("secretariat%40example.org"),
            "secretariat@example.org"
        );
        assert_eq!(percent_decode("p%3Aw%2fd%"), "p:w/d%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn smtp_urls_choose_port_and_security_as_lettre_does() {
        let pool = |url: &str| SmtpPool::from_url(url).ok().flatten();
        let plain = pool("smtp://relay.example.org")
            .map(|p| (p.port, matches!(p.security, Security::Plain)));
        assert_eq!(plain, Some((25, true)));
        let required = pool("smtp://u:p%40ss@relay.example.org:2587?tls=required");
        assert!(required.as_ref().is_some_and(|p| p.port == 2587
            && matches!(p.security, Security::StartTlsRequired(_))
            && p.credentials.is_some()));
        let opportunistic = pool("smtp://relay.example.org?tls=opportunistic");
        assert!(opportunistic.is_some_and(
            |p| p.port == 587 && matches!(p.security, Security::StartTlsOpportunistic(_))
        ));
        assert!(SmtpPool::from_url("smtps://mail.example.org").is_ok_and(|p| p.is_none()));
        assert!(SmtpPool::from_url("smtp://relay.example.org?tls=sometimes").is_err());
    }
}
