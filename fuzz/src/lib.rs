//! The daemon's inputs as a whole, for the fuzz targets (`fuzz_targets/`) and for
//! `tests/fuzzed.rs`, which replays every stored corpus file in `cargo test`:
//!
//! - [`folder`]: a configuration folder (roster, workflow files, templates) read and checked
//!   as `validate`, the start and `reload` do;
//! - [`request`]: one HTTP request to the running daemon's public router (ballot pages and
//!   votes) or, for a `GET`, its admin router;
//! - [`smtp`]: one inbound SMTP session with the running daemon (replies by email).
//!
//! The last two share one daemon started in this process on the sample council, with an
//! open `quick-vote` ballot (`item-1`) and a cancelled one (`item-2`). In an input,
//! `{T0}`…`{T4}` stand for ballot links and `{R0}`…`{R4}` for reply addresses (see
//! [`Daemon::fill`]), `{ADMIN}` for the admin token; an input that cannot be sent at all
//! (an invalid method, header or URI) is skipped, as the HTTP stack would refuse it.
//!
//! What is checked, beyond "no panic, no hang": a request never gets a 500, every SMTP
//! reply line is a well-formed reply, and the daemon still answers after each input.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use councild::config::Config;
use councild::token::BallotRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// The repository: the sample council, workflows and templates (this file is compiled in
/// the fuzz package, one folder down, and in the repository's tests).
fn repo() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    match here.join("workflows").is_dir() {
        true => here.to_path_buf(),
        false => here.parent().map(Path::to_path_buf).unwrap_or_default(),
    }
}

/// A scratch folder, in memory where the machine has one.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    if n == 0 {
        remove_stale(&base);
    }
    base.join(format!("councild-fuzz-{}-{n}", std::process::id()))
}

/// Removes the scratch folders of fuzz processes that have ended (a fuzzer is stopped, not
/// shut down, so it never cleans up after itself).
fn remove_stale(base: &Path) {
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("councild-fuzz-")
            .and_then(|rest| rest.split('-').next());
        if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Longest time one input may take before it counts as a hang.
const HANG: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// A configuration folder

/// The sample folder's files: (path under the repository, bytes).
fn sample_files() -> &'static [(PathBuf, Vec<u8>)] {
    static FILES: OnceLock<Vec<(PathBuf, Vec<u8>)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let root = repo();
        let mut files = vec![];
        let mut todo = vec![
            PathBuf::from("config/council.yaml"),
            PathBuf::from("workflows"),
            PathBuf::from("templates"),
        ];
        while let Some(path) = todo.pop() {
            let full = root.join(&path);
            if full.is_dir() {
                for entry in std::fs::read_dir(&full).into_iter().flatten().flatten() {
                    todo.push(path.join(entry.file_name()));
                }
            } else if let Ok(bytes) = std::fs::read(&full) {
                files.push((path, bytes));
            }
        }
        files
    })
}

/// Files given by the input, each after a line `==> PATH <==` (as `head` prints several
/// files): PATH under `config/`, `workflows/` or `templates/`, made only of letters,
/// digits, `.`, `_` and `-` between slashes. An empty file removes the sample's.
fn overrides(text: &str) -> Vec<(PathBuf, &str)> {
    let mut files = vec![];
    let mut rest = text;
    while let Some(start) = rest.find("==> ") {
        let after = &rest[start + 4..];
        let Some(end) = after.find(" <==") else { break };
        let name = &after[..end];
        let body_start = after[end + 4..]
            .strip_prefix('\n')
            .unwrap_or(&after[end + 4..]);
        let body_end = body_start
            .find("\n==> ")
            .map_or(body_start.len(), |i| i + 1);
        rest = &body_start[body_end..];
        if let Some(path) = safe_path(name) {
            files.push((path, &body_start[..body_end]));
        }
    }
    files
}

fn safe_path(name: &str) -> Option<PathBuf> {
    let parts: Vec<&str> = name.split('/').collect();
    let plain = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    let top = ["config", "workflows", "templates"];
    (parts.len() <= 4 && parts.iter().all(plain) && top.contains(&parts[0]))
        .then(|| parts.iter().collect())
}

/// The sample folder with the input's files in place, checked as `validate` and `reload`
/// check it: every problem a message, never a panic or a hang.
pub fn folder(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let root = scratch();
    for (path, bytes) in sample_files() {
        write(&root.join(path), bytes);
    }
    for (path, body) in overrides(text) {
        let full = root.join(&path);
        if full.is_dir() {
            continue;
        }
        if body.is_empty() {
            let _ = std::fs::remove_file(&full);
        } else {
            write(&full, body.as_bytes());
        }
    }
    let mut config = base_config();
    config.council.roster = root.join("config/council.yaml");
    config.workflows.dir = root.join("workflows");
    config.workflows.templates = root.join("templates");
    let report = councild::setup::check(&config, std::slice::from_ref(&config.workflows.dir));
    for problem in report.problems() {
        assert!(!problem.trim().is_empty(), "an empty problem message");
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::write(path, bytes);
}

/// The built-in defaults, as `councild` reads them with no file and no variables.
fn base_config() -> Config {
    let mut config = Config::load(Path::new("/nonexistent/councild.toml"), false)
        .unwrap_or_else(|e| panic!("the default configuration: {e}"));
    let root = repo();
    config.council.roster = root.join("config/council.yaml");
    config.workflows.dir = root.join("workflows");
    config.workflows.templates = root.join("templates");
    config
}

// ---------------------------------------------------------------------------------------
// The running daemon

/// One daemon for the process, on the sample council.
pub struct Daemon {
    runtime: tokio::runtime::Runtime,
    running: councild::daemon::Running,
    /// What `{T0}`… and `{R0}`… stand for.
    links: Vec<String>,
    replies: Vec<String>,
    admin_token: String,
}

const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789";

impl Daemon {
    pub fn get() -> &'static Daemon {
        static DAEMON: OnceLock<Daemon> = OnceLock::new();
        DAEMON.get_or_init(Daemon::start)
    }

    fn start() -> Daemon {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let mut config = base_config();
        config.storage.path = scratch();
        config.public.listen = ([127, 0, 0, 1], 0).into();
        config.admin.listen = ([127, 0, 0, 1], 0).into();
        config.admin.token = Some(ADMIN_TOKEN.to_string());
        let running = runtime
            .block_on(councild::daemon::start(config))
            .unwrap_or_else(|e| panic!("the daemon did not start: {e:#}"));
        let app = running.app.clone();
        runtime.block_on(async {
            for title in ["Open ballot", "Cancelled ballot"] {
                let body =
                    serde_json::json!({"workflow": "quick-vote", "inputs": {"title": title}});
                admin(&app, "POST", "/api/items", Some(body)).await;
            }
            let reason = serde_json::json!({"reason": "fuzz harness"});
            admin(&app, "POST", "/api/items/item-2/cancel", Some(reason)).await;
        });
        let sign = |item: &str, ballot, member: &str, delegate| {
            app.key.sign(&BallotRef {
                item: item.into(),
                ballot,
                member: member.into(),
                delegate,
            })
        };
        // Open ballot: two head delegates, a member with no voting right; then a closed
        // ballot and a ballot that does not exist.
        let links = vec![
            sign("item-1", 0, "TUR", 0),
            sign("item-1", 0, "DZA", 0),
            sign("item-1", 0, "GNB", 0),
            sign("item-2", 0, "TUR", 0),
            sign("item-1", 7, "TUR", 0),
        ];
        let domain = &running.replies.domain;
        let replies = links
            .iter()
            .map(|t| format!("ballot+{t}@{domain}"))
            .collect();
        Daemon {
            runtime,
            running,
            links,
            replies,
            admin_token: ADMIN_TOKEN.to_string(),
        }
    }

    /// The input with its placeholders replaced.
    fn fill(&self, text: &str) -> String {
        let mut text = text.replace("{ADMIN}", &self.admin_token);
        for (i, (link, reply)) in self.links.iter().zip(&self.replies).enumerate() {
            text = text
                .replace(&format!("{{T{i}}}"), link)
                .replace(&format!("{{R{i}}}"), reply);
        }
        text
    }

    /// The daemon still answers: `/healthz` on the admin router.
    fn alive(&self) {
        let app = self.running.app.clone();
        self.runtime.block_on(async {
            let (status, _) = admin(&app, "GET", "/healthz", None).await;
            assert_eq!(status, StatusCode::OK, "the daemon stopped answering");
        });
    }
}

/// One call to the admin router with the token, as the CLI makes it.
async fn admin(
    app: &std::sync::Arc<councild::http::App>,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
    let req = req
        .body(body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    send(councild::http::admin_router(app.clone()), req).await
}

async fn send(router: axum::Router, req: Request<Body>) -> (StatusCode, Vec<u8>) {
    let what = format!("{} {}", req.method(), req.uri());
    let answer = async {
        let response = router.oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .unwrap_or_else(|e| panic!("{what}: the body could not be read: {e}"));
        (status, body.to_vec())
    };
    tokio::time::timeout(HANG, answer)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in {HANG:?}"))
}

// ---------------------------------------------------------------------------------------
// Requests

/// The input as an HTTP request: a line `METHOD PATH`, header lines `name: value`, an empty
/// line, the body. Paths under `/ballot/` and `/propose/` go to the public router, `GET`s of anything else to
/// the admin router, and so do changes to accounts (the login, users, sessions, tokens); a
/// 500 is a failure.
pub fn request(data: &[u8]) {
    let daemon = Daemon::get();
    let text = daemon.fill(&String::from_utf8_lossy(data));
    let (head, body) = match text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
    {
        Some((head, body)) => (head, body),
        None => (text.as_str(), ""),
    };
    let mut lines = head.lines();
    let Some((method, path)) = lines.next().and_then(|l| l.trim_end().split_once(' ')) else {
        return;
    };
    let mut req = Request::builder().method(method).uri(path);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            req = req.header(name.trim(), value.trim());
        }
    }
    let Ok(req) = req.body(Body::from(body.to_string())) else {
        return;
    };
    // Changes through the admin router only where they touch nothing but accounts: the
    // login, and accounts, sessions and tokens (so a hostile login form or account body is
    // fuzzed too, while the items the other inputs need stay as they are).
    let path = req.uri().path();
    let accounts = [
        "/dashboard/login",
        "/dashboard/logout",
        "/api/users",
        "/api/tokens",
        "/api/sessions",
        "/api/account",
    ]
    .iter()
    .any(|p| path.starts_with(p));
    let router = if path.starts_with("/ballot/") || path.starts_with("/propose/") {
        councild::http::public_router(daemon.running.app.clone())
    } else if req.method() == "GET" || accounts {
        councild::http::admin_router(daemon.running.app.clone())
    } else {
        return;
    };
    let what = format!("{} {}", req.method(), req.uri());
    let (status, body) = daemon.runtime.block_on(send(router, req));
    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{what}: {}",
        String::from_utf8_lossy(&body)
    );
    daemon.alive();
}

// ---------------------------------------------------------------------------------------
// Inbound SMTP

/// The input as what a client says in one SMTP session (then it closes its side): each reply
/// line must be `NNN text` or `NNN-text` with a code from 2xx to 5xx.
pub fn smtp(data: &[u8]) {
    let daemon = Daemon::get();
    let said = daemon.fill(&String::from_utf8_lossy(data));
    let replies = daemon.running.replies.clone();
    let heard = daemon.runtime.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let session = tokio::spawn(async move {
            let _ = councild::inbound::session(&replies, server).await;
        });
        let talk = async {
            let mut heard = Vec::new();
            let (mut read, mut write) = tokio::io::split(&mut client);
            let say = async {
                let _ = write.write_all(said.as_bytes()).await;
                let _ = write.shutdown().await;
            };
            let listen = read.read_to_end(&mut heard);
            let _ = tokio::join!(say, listen);
            heard
        };
        let heard = tokio::time::timeout(HANG, talk)
            .await
            .unwrap_or_else(|_| panic!("the SMTP session did not end in {HANG:?}"));
        tokio::time::timeout(HANG, session)
            .await
            .unwrap_or_else(|_| panic!("the SMTP session task did not end in {HANG:?}"))
            .unwrap_or_else(|e| panic!("the SMTP session task failed: {e}"));
        heard
    });
    let heard = String::from_utf8(heard).unwrap_or_else(|e| panic!("SMTP replies not UTF-8: {e}"));
    for line in heard.split_terminator("\r\n") {
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        let sep = line.as_bytes().get(3).copied();
        assert!(
            code.is_some_and(|c| (200..600).contains(&c))
                && matches!(sep, None | Some(b' ' | b'-')),
            "not an SMTP reply line: {line:?}"
        );
    }
    daemon.alive();
}

/// Each target by its name, for the corpus replay.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    match name {
        "folder" => Some(folder),
        "request" => Some(request),
        "smtp" => Some(smtp),
        _ => None,
    }
}
