//! Mail through a real SMTP server (aiosmtpd on loopback, writing a Maildir): delivered
//! with a stable `Message-ID`, and delivered exactly once after the server was down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cycle::QUICK;
use crate::harness::{Council, Daemon, Mail, ROSTER};

/// aiosmtpd as a child process on a fixed loopback port; killed when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    fn start(port: u16, maildir: &Path) -> SmtpServer {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd==1.4.6; .ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start; is it installed? (.ci/run installs it)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer {
            child,
            port,
            maildir: maildir.to_path_buf(),
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Every delivered mail, parsed.
    fn mails(&self) -> Vec<Mail> {
        std::fs::read_dir(self.maildir.join("new"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| Mail::parse(&std::fs::read_to_string(e.path()).unwrap()))
            .collect()
    }

    fn wait_for(&self, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} mails delivered",
                mails.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn smtp_env(port: u16) -> [(&'static str, String); 1] {
    [("COUNCILD_MAIL_SMTP_URL", format!("smtp://127.0.0.1:{port}"))]
}

#[tokio::test]
async fn mail_goes_through_smtp_with_a_stable_message_id() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let smtp = SmtpServer::start(free_port(), &council.path().join("maildir"));
    let env = smtp_env(smtp.port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    let id = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation on cybercrime cooperation"}),
        )
        .await;
    // 6 circulation mails (every delegate), then 3 ballots (one per voting member).
    let mails = tokio::task::spawn_blocking(move || smtp.wait_for(9))
        .await
        .unwrap();
    let ballot: Vec<&Mail> = mails.iter().filter(|m| m.link().is_some()).collect();
    assert_eq!(ballot.len(), 3);
    for m in &mails {
        assert!(
            m.message_id.starts_with(&format!("<{id}.")) && m.message_id.ends_with("@example.org>"),
            "{}",
            m.message_id
        );
    }
    let head = mails
        .iter()
        .find(|m| m.to.contains("aaa.head@example.org") && m.link().is_none())
        .expect("circulation to the head");
    assert!(
        head.subject
            .contains("draft circulated for comment: Regulation on cybercrime cooperation"),
        "{}",
        head.subject
    );
    let deputy = mails
        .iter()
        .find(|m| m.to.contains("aaa.deputy@example.org"))
        .expect("circulation reaches deputies");
    assert_eq!(deputy.language.as_deref(), Some("fr"));
    assert!(
        deputy
            .subject
            .contains("Regulation on cybercrime cooperation"),
        "{}",
        deputy.subject
    );
    for m in &mails {
        assert!(
            m.html.is_some() && !m.body.is_empty(),
            "text and HTML parts: {}",
            m.raw
        );
    }
    assert!(
        !council.mail_dir().exists() || council.mails().is_empty(),
        "with SMTP set, no .eml files"
    );
    drop(daemon);
}

#[tokio::test]
async fn mail_held_while_the_server_is_down_is_delivered_once_when_it_returns() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let port = free_port();
    let maildir = council.path().join("maildir");
    let env = smtp_env(port);
    // No SMTP server yet: the fan-out fails and is kept for retry.
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    let id = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation on extradition requests"}),
        )
        .await;
    daemon
        .wait_item(&id, "the ballot", |i| i["ballots"][0]["eligible"] == 3)
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = daemon.admin(reqwest::Method::GET, "/status", None).await;
        if status["outbox"]["retrying"].as_u64() >= Some(1) {
            assert_eq!(
                status["outbox"]["failed"], 0,
                "a refused connection is transient: {status}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "mail was not held for retry: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server comes back: every mail arrives, each Message-ID exactly once.
    let smtp = SmtpServer::start(port, &maildir);
    let mails = tokio::task::spawn_blocking(move || {
        let mails = smtp.wait_for(9);
        std::thread::sleep(Duration::from_secs(3));
        let again = smtp.mails();
        smtp.stop();
        assert_eq!(again.len(), mails.len(), "no duplicates after delivery");
        again
    })
    .await
    .unwrap();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mails {
        *per_id.entry(m.message_id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 9, "{per_id:?}");
    assert!(per_id.values().all(|n| *n == 1), "{per_id:?}");
}
