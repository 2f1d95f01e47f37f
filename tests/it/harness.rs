//! A small harness: a temporary council folder, the daemon as a child process, and
//! helpers to read the mail it writes and to call its two listeners, and `until`, the one
//! way the tests wait for something to happen.

use std::fmt::Display;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::MimeHeaders as _;
use serde_json::{Value, json};

pub const TOKEN: &str = "test-admin-token";

/// A small council: three members with a voting right, one suspended, one without a head.
pub const ROSTER: &str = r#"
council: Test Council
secretariat: { name: Secretariat, email: secretariat@example.org }
members:
  - id: AAA
    name: Alphaland
    delegates:
      - { name: A. Head, email: aaa.head@example.org, language: en, head: true }
      - { name: A. Deputy, email: aaa.deputy@example.org, language: fr }
  - id: BBB
    name: Betaland
    delegates:
      - { name: B. Head, email: bbb.head@example.org, language: ar, head: true }
  - id: CCC
    name: Gammaland
    delegates:
      - { name: C. First, email: ccc.first@example.org, language: en }
      - { name: C. Second, email: ccc.second@example.org, language: en }
  - id: DDD
    name: Deltaland
    voting_right: false       # suspended: arrears
    delegates:
      - { name: D. Head, email: ddd.head@example.org, language: en, head: true }
"#;

/// A council folder: config, roster, workflows and the repository's templates.
pub struct Council {
    pub dir: tempfile::TempDir,
}

impl Council {
    pub fn new(roster: &str, workflows: &[(&str, &str)]) -> Council {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("config")).unwrap();
        std::fs::create_dir_all(root.join("workflows")).unwrap();
        std::fs::write(root.join("config/council.yaml"), roster).unwrap();
        for (name, text) in workflows {
            std::fs::write(root.join("workflows").join(name), text).unwrap();
        }
        copy_dir(&repo().join("templates"), &root.join("templates"));
        Council { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.path().join("data/mail")
    }

    /// Runs the daemon in this folder.
    pub fn start(&self) -> Daemon {
        Daemon::start(self.path(), &[])
    }

    /// Every mail written so far, parsed.
    pub fn mails(&self) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(self.mail_dir()) else {
            return Vec::new();
        };
        let mut mails: Vec<Mail> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| Mail::parse(&std::fs::read_to_string(&p).unwrap()))
            .collect();
        mails.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        mails
    }

    /// Waits for the ballot mail (the one with a link) to the address starting `to`.
    pub async fn ballot_mail(&self, to: &str) -> Mail {
        until("the ballot mail", Duration::from_secs(30), async || {
            self.mails()
                .into_iter()
                .find(|m| m.link().is_some() && m.to.contains(to))
        })
        .await
    }

    /// Runs `councild` with arguments in this folder and returns (exit code, stdout + stderr).
    /// A command that does not end within a minute is killed and fails the test.
    pub fn run(&self, args: &[&str]) -> (i32, String) {
        let child = councild()
            .args(args)
            .current_dir(self.path())
            .env("COUNCILD_PUBLIC_LISTEN", "127.0.0.1:0")
            .env("COUNCILD_ADMIN_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the output while waiting, so a large answer cannot fill the pipe and stall.
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let Ok(out) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("councild {args:?} did not end");
        };
        let out = out.unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

/// The binary under test, without the `COUNCILD_*` variables of the test's own
/// environment (the test knobs such as `COUNCILD_CRASH_ROUNDS`, which the daemon would
/// refuse as unknown): each test sets what its daemon reads.
pub fn councild() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_councild"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("COUNCILD_") {
            command.env_remove(var);
        }
    }
    command
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A loopback port free at the moment of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How often a wait looks, unless it says otherwise.
pub const EVERY: Duration = Duration::from_millis(50);

/// What one look of a wait gives: `true`, `Some` or `Ok` when the wait is over (with the
/// value it waited for); `false`, `None` or `Err` when it is not, an `Err` with what it saw,
/// for the panic if time runs out. `Err` is only displayed then, so it can be a lazy value.
pub trait Outcome {
    type Done;
    type Seen: Display;
    fn done(self) -> Result<Self::Done, Option<Self::Seen>>;
}

impl Outcome for bool {
    type Done = ();
    type Seen = std::convert::Infallible;
    fn done(self) -> Result<(), Option<Self::Seen>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Outcome for Option<T> {
    type Done = T;
    type Seen = std::convert::Infallible;
    fn done(self) -> Result<T, Option<Self::Seen>> {
        self.ok_or(None)
    }
}

impl<T, E: Display> Outcome for Result<T, E> {
    type Done = T;
    type Seen = E;
    fn done(self) -> Result<T, Option<E>> {
        self.map_err(Some)
    }
}

/// Looks with `probe` every `every` until it is done, for at most `within` (and once more
/// when time is up): the value it waited for, or what it saw last. For the waits that do
/// not fail a test by themselves; the others use `until`.
pub async fn poll<O: Outcome>(
    within: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> O,
) -> Result<O::Done, Option<O::Seen>> {
    let deadline = Instant::now() + within;
    loop {
        let seen = match probe().await.done() {
            Ok(done) => return Ok(done),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(seen);
        }
        tokio::time::sleep(every).await;
    }
}

/// `poll` for code that is not async (threads, child processes, the driver's start).
pub fn poll_blocking<O: Outcome>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> O,
) -> Result<O::Done, Option<O::Seen>> {
    let deadline = Instant::now() + within;
    loop {
        let seen = match probe().done() {
            Ok(done) => return Ok(done),
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            return Err(seen);
        }
        std::thread::sleep(every);
    }
}

/// Polls `probe` (every `EVERY`) until it is done and returns what it waited for, or
/// panics after `within`, saying what was awaited and what the probe saw last.
pub async fn until<O: Outcome>(
    what: impl Display,
    within: Duration,
    probe: impl AsyncFnMut() -> O,
) -> O::Done {
    poll(within, EVERY, probe)
        .await
        .unwrap_or_else(|seen| gave_up(&what, within, seen))
}

/// `until` for code that is not async.
pub fn until_blocking<O: Outcome>(
    what: impl Display,
    within: Duration,
    probe: impl FnMut() -> O,
) -> O::Done {
    poll_blocking(within, EVERY, probe).unwrap_or_else(|seen| gave_up(&what, within, seen))
}

/// The panic of a wait that ran out of time (for `poll`s that must not, with their own
/// interval).
pub fn gave_up(what: impl Display, within: Duration, seen: Option<impl Display>) -> ! {
    match seen {
        Some(seen) => panic!("waited {within:?} for {what}; last seen: {seen}"),
        None => panic!("waited {within:?} for {what}"),
    }
}

/// A value shown with the daemon's log after it, read only when shown.
struct WithLog<'a, T>(T, &'a Daemon);

impl<T: Display> Display for WithLog<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}\nlog:\n{}", self.0, self.1.log())
    }
}

/// The daemon as a child process; killed (SIGKILL) when dropped.
pub struct Daemon {
    child: Child,
    pub public: String,
    pub admin: String,
    root: PathBuf,
    http: reqwest::Client,
}

impl Daemon {
    pub fn start(root: &Path, env: &[(&str, &str)]) -> Daemon {
        // A free port can be taken by another test between its choice and the bind.
        for _ in 0..3 {
            match Daemon::try_start(root, env) {
                Err(log) if log.contains("Address already in use") => continue,
                started => {
                    return started.unwrap_or_else(|log| panic!("councild exited:\n{log}"));
                }
            }
        }
        panic!("councild found no free port in three tries")
    }

    /// `start`, or the daemon's log if it exits before it listens.
    pub fn try_start(root: &Path, env: &[(&str, &str)]) -> Result<Daemon, String> {
        let (public, admin) = (free_port(), free_port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("daemon.log"))
            .unwrap();
        let child = councild()
            .arg("serve")
            .current_dir(root)
            .env("COUNCILD_PUBLIC_LISTEN", format!("127.0.0.1:{public}"))
            .env("COUNCILD_PUBLIC_URL", format!("http://127.0.0.1:{public}"))
            .env("COUNCILD_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .env("COUNCILD_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "councild=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = Daemon {
            child,
            public: format!("http://127.0.0.1:{public}"),
            admin: format!("http://127.0.0.1:{admin}"),
            root: root.to_path_buf(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        };
        if d.wait_ready() { Ok(d) } else { Err(d.log()) }
    }

    /// Whether the daemon listens on both addresses (within 30 s), not exited first.
    fn wait_ready(&mut self) -> bool {
        let listening = |url: &str| std::net::TcpStream::connect(url.trim_start_matches("http://"));
        let within = Duration::from_secs(30);
        let ready = poll_blocking(within, EVERY, || {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return Some(false);
            }
            (listening(&self.admin).is_ok() && listening(&self.public).is_ok()).then_some(true)
        });
        ready
            .unwrap_or_else(|_| gave_up(WithLog("councild to start", &*self), within, None::<&str>))
    }

    /// The daemon's process id (to set its limits, for one).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    /// Waits for the daemon to stop by itself; its exit code, or `None` if it runs on.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        poll_blocking(within, EVERY, || match self.child.try_wait() {
            Ok(Some(status)) => Some(status.code().unwrap_or(-1)),
            _ => None,
        })
        .ok()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.admin_as(TOKEN, method, path, body).await
    }

    /// An admin API call with `token`: the admin token or a personal API token.
    pub async fn admin_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Logs in on the dashboard (an empty name: with the admin token as the password) and
    /// returns the session's `Cookie` header value, or the login page's status.
    pub async fn log_in(&self, name: &str, password: &str) -> Result<String, u16> {
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/dashboard/login", self.admin))
            .form(&[("name", name), ("password", password)])
            .send()
            .await
            .unwrap();
        match resp.headers().get("set-cookie") {
            Some(c) => Ok(c.to_str().unwrap().split(';').next().unwrap().to_string()),
            None => Err(resp.status().as_u16()),
        }
    }

    pub async fn start_item(&self, workflow: &str, inputs: Value) -> String {
        let (status, body) = self
            .admin(
                reqwest::Method::POST,
                "/api/items",
                Some(json!({"workflow": workflow, "inputs": inputs})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    pub async fn item(&self, id: &str) -> Value {
        let (status, body) = self
            .admin(reqwest::Method::GET, &format!("/api/items/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls an item until `done` holds (the daemon's timers run on wall-clock time).
    pub async fn wait_item(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        until(what, Duration::from_secs(60), async || {
            let item = self.item(id).await;
            if done(&item) {
                Ok(item)
            } else {
                Err(WithLog(item, self))
            }
        })
        .await
    }

    /// Waits until every mail has left the outbox (sent, or written as a file).
    pub async fn wait_outbox_empty(&self) {
        until("the outbox to empty", Duration::from_secs(30), async || {
            let (_, outbox) = self.admin(reqwest::Method::GET, "/api/outbox", None).await;
            outbox["mails"].as_array().is_some_and(|m| m.is_empty())
        })
        .await
    }

    /// `/metrics`, as Prometheus reads it.
    pub async fn metrics(&self) -> String {
        self.admin_text("/metrics").await
    }

    /// A page of the admin listener that is not JSON (metrics, CSV), read with the token.
    pub async fn admin_text(&self, path: &str) -> String {
        let resp = self
            .http
            .get(format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.text().await.unwrap()
    }

    /// A `councild` command against this daemon (its admin address and token).
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = councild();
        command
            .args(args)
            .current_dir(&self.root)
            .env(
                "COUNCILD_ADMIN_LISTEN",
                self.admin.trim_start_matches("http://"),
            )
            .env("COUNCILD_ADMIN_TOKEN", TOKEN);
        command
    }

    /// Runs a `councild` command against this daemon; (exit code, stdout + stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        let out = self.cli_command(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// A CLI command that must succeed; its output.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out) = self.cli(args);
        assert_eq!(code, 0, "councild {}: {out}", args.join(" "));
        out
    }

    /// A CLI command that must be refused with `reason`, changing nothing in `item`.
    pub async fn refused(&self, args: &[&str], reason: &str, item: &str) {
        let before = self.item(item).await;
        let (code, out) = self.cli(args);
        assert_ne!(
            code,
            0,
            "councild {} was not refused: {out}",
            args.join(" ")
        );
        assert!(out.contains(reason), "councild {}: {out}", args.join(" "));
        let after = self.item(item).await;
        assert_eq!(
            before["events_count"], after["events_count"],
            "nothing logged"
        );
    }

    pub async fn get(&self, url: &str) -> (u16, String) {
        let resp = self.http.get(url).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub async fn vote(&self, link: &str, choice: &str) -> (u16, String) {
        let resp = self
            .http
            .post(link)
            .form(&[("choice", choice)])
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A mail as a delegate's client would show it (parsed with a real MIME parser).
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub reply_to: Option<String>,
    pub language: Option<String>,
    /// The plain-text part.
    pub body: String,
    pub html: Option<String>,
    pub ics: Option<String>,
    pub raw: String,
}

impl Mail {
    pub fn parse(raw: &str) -> Mail {
        let m = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .expect("a MIME message");
        let first = |a: Option<&mail_parser::Address>| {
            a.and_then(|a| a.first()).map(|a| {
                format!(
                    "{} <{}>",
                    a.name().unwrap_or_default(),
                    a.address().unwrap_or_default()
                )
            })
        };
        let ics = m
            .attachments()
            .find(|p| p.is_content_type("text", "calendar"))
            .map(|p| String::from_utf8_lossy(p.contents()).into_owned());
        Mail {
            to: first(m.to()).unwrap_or_default(),
            subject: m.subject().unwrap_or_default().to_string(),
            message_id: format!("<{}>", m.message_id().unwrap_or_default()),
            reply_to: first(m.reply_to()),
            language: m
                .header_raw("Content-Language")
                .map(|l| l.trim().to_string()),
            body: m.body_text(0).map(|b| b.into_owned()).unwrap_or_default(),
            html: m.body_html(0).map(|b| b.into_owned()),
            ics,
            raw: raw.to_string(),
        }
    }

    /// The bare address of `Reply-To`, if any (`ballot+TOKEN@domain`).
    pub fn reply_address(&self) -> Option<String> {
        let reply_to = self.reply_to.as_ref()?;
        let address = reply_to.trim_start_matches(|c| c != '<');
        Some(address.trim_matches(['<', '>']).to_string())
    }

    /// The ballot link in the text part, if any.
    pub fn link(&self) -> Option<String> {
        self.body
            .split_whitespace()
            .find(|w| w.starts_with("http://") && w.contains("/ballot/"))
            .map(str::to_string)
    }
}
