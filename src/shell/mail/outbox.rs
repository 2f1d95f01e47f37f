//! The outbox worker: renders each due mail, hands it to the transport, and marks it
//! sent (the row goes), to be retried, or failed (and tells the secretariat).

use super::transport::SendError;
use super::*;

/// What is escaped of an item's id in a link's path: all but letters, digits, `-_.`.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

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
    /// The roster in force: who the secretariat is, and every recipient's address now.
    pub roster: Arc<ArcSwap<crate::roster::Roster>>,
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
                let at = mail.due();
                if at <= now {
                    due.push(mail);
                    if due.len() == ROUND {
                        break;
                    }
                } else {
                    next = Some(next.map_or(at, |n| n.min(at)));
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
                // Nothing in flight: the data no mail names any more goes.
                match outbox.store.sweep_contexts() {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(contexts = n, "shared mail data removed"),
                    Err(e) => tracing::warn!(error = %e, "shared mail data could not be swept"),
                }
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
        let to = super::readdressed(&mail.to, &self.roster.load());
        if to.email != mail.to.email {
            tracing::info!(item = %mail.item, mail = %mail.id, from = %mail.to.email, to = %to.email, "mail readdressed: the roster changed");
        }
        mail.to = to;
        let result = match self.message(&mail) {
            Ok(message) => self.transport.send(&mail.id, message).await,
            Err(e) => Err(SendError::Permanent(e)),
        };
        match result {
            Ok(()) => {
                self.metrics.mail_sent.inc();
                tracing::info!(item = %mail.item, mail = %mail.id, template = %mail.template, "mail sent");
                // Durable at once (the syncs of mails in flight are shared), so that a
                // crash resends at most the mails that were in flight.
                if let Err(e) = self.store.remove_mail(&mail.id) {
                    tracing::error!(mail = %mail.id, error = %e, "a sent mail could not be marked sent");
                }
                self.sync(&mail).await;
                return;
            }
            Err(SendError::Transient(e)) if mail.attempts + 1 < MAX_ATTEMPTS => {
                self.metrics.mail_retried.inc();
                mail.attempts += 1;
                let backoff = 2u64.pow(mail.attempts.min(10)) * 1_000;
                let jitter = rand::random::<u64>() % (backoff / 2 + 1);
                mail.next_attempt = Some(
                    self.clock.now() + chrono::Duration::milliseconds((backoff + jitter) as i64),
                );
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
        if let Err(e) = self.store.put_mail(&mail.id, &mail) {
            tracing::error!(mail = %mail.id, error = %e, "a mail's state could not be stored");
        }
        self.sync(&mail).await;
    }

    /// Makes the mail's new state durable. A failure leaves the mail to be sent again
    /// after a restart, under its one Message-ID.
    async fn sync(&self, mail: &Mail) {
        if let Err(e) = self.store.flush_soon().await {
            tracing::error!(mail = %mail.id, error = %e, "a mail's state could not be made durable");
        }
    }

    /// Tells the secretariat that a mail failed for good (never about such a notice itself).
    fn report_failure(&self, failed: &Mail, error: &str) {
        let mut context = failed.context.clone();
        context["failure"] =
            json!({ "to": failed.to.email, "error": error, "template": failed.template });
        let now = self.clock.now();
        let id = format!("{}.failed.{}", failed.id, now.timestamp_millis());
        let mut notice = Mail::new(
            id,
            &failed.item,
            FAILURE_TEMPLATE,
            Recipient::delegate(&self.roster.load().secretariat, None, None),
            None,
            context,
            now,
        );
        notice.shared = failed.shared.clone();
        if let Err(e) = self.store.put_mail(&notice.id, &notice) {
            tracing::error!(item = %failed.item, error = %e, "the failure notice could not be queued");
        }
    }

    /// Builds the message; the same mail always gets the same `Message-ID`.
    fn message(&self, mail: &Mail) -> Result<Message, String> {
        let templates = self.templates.load();
        let mut data = mail.data(&self.store)?;
        data["recipient"] = json!({
            "name": mail.to.name, "language": mail.to.language,
            "member": mail.to.member, "member_name": mail.to.member_name,
        });
        // A secret ballot's public list of the ballots counted, by tracker.
        if data["ballot"]["secret"] == true {
            let base = self.public_url.trim_end_matches('/');
            data["ballot"]["trackers"] = json!(format!(
                "{base}/elections/{}",
                percent_encoding::utf8_percent_encode(&mail.item, PATH_SEGMENT)
            ));
        }
        let trustee_call = mail.template == crate::engine::TRUSTEE_CALL;
        if let (false, Some(ballot), Some(member), Some(delegate)) =
            (trustee_call, mail.ballot, &mail.to.member, mail.to.delegate)
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
                // An address's local part holds at most 64 characters; a secret ballot
                // takes no vote by mail.
                let secret = b["secret"] == true;
                if let Some(reply) = self
                    .reply_domain
                    .as_ref()
                    .filter(|_| token.len() + 7 <= 64 && !secret)
                {
                    b["reply_to"] = json!(format!("ballot+{token}@{reply}"));
                }
            }
        }
        // Each member's own links, signed for its delegate: (whether this mail has it, the
        // token's kind, the page's path, where the mail's data holds it).
        let member_links = [
            // A call for agenda points: to propose one.
            (
                data["item"]["proposals"] == true,
                BallotRef::PROPOSALS,
                "propose",
                "proposal",
            ),
            // A call for nominations: to nominate a candidate.
            (
                data["item"]["nominations"] == true,
                BallotRef::NOMINATIONS,
                "nominate",
                "nomination",
            ),
            // During the comment period: to propose an amendment.
            (
                data["item"]["takes_amendments"] == true,
                BallotRef::AMENDMENTS,
                "amend",
                "amend",
            ),
            // A trustee's call: to the board of the key ceremony and of the decryptions.
            (trustee_call, BallotRef::TRUSTEE, "trustee", "trustee"),
        ];
        if let (Some(member), Some(delegate)) = (&mail.to.member, mail.to.delegate) {
            let base = self.public_url.trim_end_matches('/');
            for (wanted, kind, path, key) in member_links {
                if !wanted {
                    continue;
                }
                let token = self.key.sign(&BallotRef {
                    item: mail.item.clone(),
                    ballot: kind,
                    member: member.clone(),
                    delegate,
                });
                data[key] = json!({ "link": format!("{base}/{path}/{token}") });
            }
            if trustee_call {
                data["trustee"]["decrypt"] = json!(mail.ballot.is_some());
            }
        }
        // The texts: each member's own link to read them.
        if let (Some(documents), Some(member), Some(delegate)) = (
            data["item"]["documents"].as_array_mut(),
            &mail.to.member,
            mail.to.delegate,
        ) {
            let token = self.key.sign(&BallotRef {
                item: mail.item.clone(),
                ballot: BallotRef::DOCUMENTS,
                member: member.clone(),
                delegate,
            });
            let base = self.public_url.trim_end_matches('/');
            for d in documents {
                let link = format!(
                    "{base}/texts/{token}/{}",
                    d["sha256"].as_str().unwrap_or("")
                );
                d["link"] = json!(link);
            }
        }
        super::in_language(&mut data, &mail.to.language);
        // The question may name item fields (`Adopt “{{item.title}}”?`).
        if let Some(question) = data["ballot"]["question"].as_str() {
            let question = templates.render_text(question, &data, &mail.to.language);
            if let Some(b) = data.get_mut("ballot").and_then(Value::as_object_mut) {
                b.insert("question".into(), json!(question));
            }
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
pub(super) fn forget(
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
pub(super) struct ContentLanguage(String);

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
