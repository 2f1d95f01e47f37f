//! Where mail goes: an SMTP server over councild's own pooled connections, or `.eml` files.

use super::*;

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

    pub(super) async fn send(&self, id: &str, message: Message) -> Result<(), SendError> {
        match self {
            Transport::Files(dir) => {
                // Durable before the mail is marked sent, and readable by the owner only:
                // it holds a personal ballot link.
                let path = dir.join(format!("{id}.eml"));
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || crate::durable::write_file(&path, &bytes, true))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                    .map_err(|e| SendError::Transient(e.to_string()))
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
    pub(super) async fn close_idle(&self) {
        if let Transport::Smtp(pool) = self {
            pool.close_idle(IDLE_CLOSE).await;
        }
    }
}

/// How to secure a connection of the [`SmtpPool`].
pub(super) enum Security {
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
pub(super) fn transient(e: impl std::fmt::Display) -> SendError {
    SendError::Transient(e.to_string())
}

/// Percent-decodes the user name or password of a URL (as lettre does).
pub(super) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub(super) enum SendError {
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
