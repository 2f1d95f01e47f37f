//! Mail through a real SMTP server (aiosmtpd on loopback, writing a Maildir): delivered
//! with a stable `Message-ID`, and delivered exactly once after the server was down.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::cycle::QUICK;
use crate::harness::{
    Council, Daemon, Mail, ROSTER, free_port, gave_up, poll_blocking, until, until_blocking,
};

/// An SMTP handler that refuses any recipient whose address starts with `bounce`.
const BOUNCER: &str = "
from aiosmtpd.handlers import Mailbox

class Bouncer(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith('bounce'):
            return '550 5.1.1 no such mailbox'
        envelope.rcpt_tos.append(address)
        return '250 OK'
";

/// aiosmtpd as a child process on a fixed loopback port; killed when dropped.
pub(crate) struct SmtpServer {
    child: Child,
    pub(crate) port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    pub(crate) fn start(port: u16, maildir: &Path) -> SmtpServer {
        SmtpServer::start_with("aiosmtpd.handlers.Mailbox", port, maildir)
    }

    /// With a handler class of `bouncer.py` (next to the Maildir) or of aiosmtpd.
    fn start_with(handler: &str, port: u16, maildir: &Path) -> SmtpServer {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let python_path = maildir.parent().unwrap();
        std::fs::write(python_path.join("bouncer.py"), BOUNCER).unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                handler,
            ])
            .arg(maildir)
            .env("PYTHONPATH", python_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (pip install aiosmtpd==1.4.6; .ci/run installs it)");
        let what = "aiosmtpd to start (is it installed? .ci/run installs it)";
        until_blocking(what, Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
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
    /// Waits for a delivered mail that `pick` accepts.
    pub(crate) async fn mail_where(&self, what: &str, pick: impl Fn(&Mail) -> bool) -> Mail {
        crate::harness::until(
            what,
            std::time::Duration::from_secs(60),
            async || match self.mails().into_iter().find(|m| pick(m)) {
                Some(m) => Ok(m),
                None => Err(format!("{} mails, none fits", self.mails().len())),
            },
        )
        .await
    }

    pub(crate) fn mails(&self) -> Vec<Mail> {
        std::fs::read_dir(self.maildir.join("new"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| Mail::parse(&std::fs::read_to_string(e.path()).unwrap()))
            .collect()
    }

    fn wait_for(&self, count: usize) -> Vec<Mail> {
        let what = format!("{count} mails to be delivered");
        until_blocking(what, Duration::from_secs(60), || {
            let mails = self.mails();
            if mails.len() >= count {
                Ok(mails)
            } else {
                Err(format!("{} of {count} delivered", mails.len()))
            }
        })
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn smtp_env(port: u16) -> [(&'static str, String); 1] {
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
    let what = "mail to be held for retry";
    let status = until(what, Duration::from_secs(30), async || {
        let (_, status) = daemon.admin(reqwest::Method::GET, "/status", None).await;
        if status["outbox"]["retrying"].as_u64() >= Some(1) {
            Ok(status)
        } else {
            Err(status)
        }
    })
    .await;
    assert_eq!(
        status["outbox"]["failed"], 0,
        "a refused connection is transient: {status}"
    );
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

#[tokio::test]
async fn a_bounced_address_fails_for_good_and_the_secretariat_is_told() {
    let roster = ROSTER.replace("ccc.second@example.org", "bounce.ccc@example.org");
    let council = Council::new(&roster, &[("quick.yaml", QUICK)]);
    let smtp = SmtpServer::start_with(
        "bouncer.Bouncer",
        free_port(),
        &council.path().join("maildir"),
    );
    let env = smtp_env(smtp.port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation with a stale address"}),
        )
        .await;
    // 5 circulation mails arrive (the sixth bounces), then the secretariat's notice.
    let mails = tokio::task::spawn_blocking(move || {
        until_blocking("the failure notice", Duration::from_secs(60), || {
            let mails = smtp.mails();
            if mails
                .iter()
                .any(|m| m.to.contains("secretariat@example.org"))
            {
                Ok(mails)
            } else {
                Err(format!("{} mails", mails.len()))
            }
        })
    })
    .await
    .unwrap();
    let notice = mails
        .iter()
        .find(|m| m.to.contains("secretariat@example.org"))
        .unwrap();
    assert!(
        notice.subject.contains("bounce.ccc@example.org"),
        "{}",
        notice.subject
    );
    assert!(notice.body.contains("550"), "{}", notice.body);
    assert!(
        !mails.iter().any(|m| m.to.contains("bounce")),
        "nothing was delivered to the bounced address"
    );
    let (_, failed) = daemon
        .admin(reqwest::Method::GET, "/api/outbox?status=failed", None)
        .await;
    let failed = failed["mails"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["to"], "bounce.ccc@example.org");
    assert_eq!(
        failed[0]["attempts"], 0,
        "a permanent failure is not retried"
    );
}

#[tokio::test]
async fn a_fan_out_interrupted_by_the_smtp_server_delivers_every_mail_once() {
    let roster =
        std::fs::read_to_string(crate::harness::repo().join("config/council.yaml")).unwrap();
    let council = Council::new(&roster, &[("quick.yaml", QUICK)]);
    let port = free_port();
    let maildir = council.path().join("maildir");
    let smtp = SmtpServer::start(port, &maildir);
    let env = smtp_env(port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation sent to everyone"}),
        )
        .await;
    // Stop the server (SIGKILL) in the middle of the 111 circulation mails.
    let smtp = tokio::task::spawn_blocking(move || {
        // Look often, to stop it early in the fan-out.
        let within = Duration::from_secs(60);
        poll_blocking(within, Duration::from_millis(5), || {
            smtp.mails().len() >= 20
        })
        .unwrap_or_else(|seen| gave_up("the fan-out to start", within, seen));
        smtp.stop();
        std::thread::sleep(Duration::from_millis(1500));
        SmtpServer::start(port, &maildir)
    })
    .await
    .unwrap();
    let (_, status) = daemon.admin(reqwest::Method::GET, "/status", None).await;
    assert_eq!(
        status["outbox"]["failed"], 0,
        "a refused connection is transient: {status}"
    );
    // Circulation to 111 delegates, then ballots to 55 voters: 166 mails.
    let mails = tokio::task::spawn_blocking(move || smtp.wait_for(166))
        .await
        .unwrap();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &mails {
        *per_id.entry(m.message_id.clone()).or_default() += 1;
    }
    assert_eq!(per_id.len(), 166, "every mail arrived");
    // A mail in flight at the kill may arrive twice, always under its one Message-ID.
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= 1 && twice.iter().all(|(_, n)| **n == 2),
        "{twice:?}"
    );
}

/// SIGKILL of the daemon in the middle of a fan-out, three times: sent mail is recorded
/// durably as it goes, so each restart resends at most the mails that were in flight
/// (16 at a time), each under its one Message-ID, and every mail arrives.
#[tokio::test]
async fn a_fan_out_interrupted_by_kills_resends_at_most_the_mails_in_flight() {
    const IN_FLIGHT: usize = 16;
    let roster =
        std::fs::read_to_string(crate::harness::repo().join("config/council.yaml")).unwrap();
    let council = Council::new(&roster, &[("quick.yaml", QUICK)]);
    let port = free_port();
    let smtp = SmtpServer::start(port, &council.path().join("maildir"));
    let env = smtp_env(port);
    let env = [(env[0].0, env[0].1.as_str())];
    let mut daemon = Daemon::start(council.path(), &env);
    daemon
        .start_item("quick-adoption", json!({"title": "Regulation sent again"}))
        .await;
    let kills = [20, 60, 100];
    for arrived in kills {
        let within = Duration::from_secs(60);
        poll_blocking(within, Duration::from_millis(2), || {
            smtp.mails().len() >= arrived
        })
        .unwrap_or_else(|seen| gave_up("the fan-out to go on", within, seen));
        daemon.kill();
        daemon = Daemon::start(council.path(), &env);
    }
    // Every one of the 166 mails arrives (some more than once).
    let per_id = until_blocking("166 distinct mails", Duration::from_secs(60), || {
        let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
        for m in smtp.mails() {
            *per_id.entry(m.message_id).or_default() += 1;
        }
        if per_id.len() == 166 {
            Ok(per_id)
        } else {
            Err(format!("{} distinct mails", per_id.len()))
        }
    });
    let again: usize = per_id.values().map(|n| n - 1).sum();
    eprintln!(
        "fan-out: {again} mails sent again after {} kills",
        kills.len()
    );
    assert!(
        again <= kills.len() * IN_FLIGHT,
        "{again} mails sent again after {} kills",
        kills.len()
    );
    drop(daemon);
}

/// Mail that failed for good (two bounced addresses) is listed by `councild outbox
/// --failed`; once the mail server takes them again, one is retried and delivered, the
/// other dropped, each from the command line.
#[tokio::test]
async fn failed_mail_is_listed_then_retried_or_dropped_from_the_cli() {
    let roster = ROSTER
        .replace("aaa.deputy@example.org", "bounce.aaa@example.org")
        .replace("ccc.second@example.org", "bounce.ccc@example.org");
    let council = Council::new(&roster, &[("quick.yaml", QUICK)]);
    let maildir = council.path().join("maildir");
    let smtp = SmtpServer::start_with("bouncer.Bouncer", free_port(), &maildir);
    let port = smtp.port;
    let env = smtp_env(port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    daemon
        .start_item("quick-adoption", json!({"title": "Noticed twice"}))
        .await;
    let listed = until("2 failed mails", Duration::from_secs(60), async || {
        let (code, listed) = daemon.cli(&["outbox", "--failed"]);
        if code == 0 && listed.lines().count() == 3 {
            Ok(listed)
        } else {
            Err(listed)
        }
    })
    .await;
    let header = listed.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("MAIL") && header.contains("LAST ERROR"),
        "{listed}"
    );
    let ids: Vec<String> = listed
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect();
    assert!(
        listed.contains("bounce.aaa@") && listed.contains("550"),
        "{listed}"
    );

    // The mailboxes exist again: retry one, drop the other.
    smtp.stop();
    let smtp = SmtpServer::start(port, &maildir);
    let (code, said) = daemon.cli(&["outbox", "retry", &ids[0]]);
    assert_eq!(
        (code, said.trim()),
        (0, format!("{}: queued to send again", ids[0]).as_str())
    );
    let (code, said) = daemon.cli(&["outbox", "drop", &ids[1]]);
    assert_eq!(
        (code, said.trim()),
        (0, format!("{}: dropped", ids[1]).as_str())
    );
    let (code, said) = daemon.cli(&["outbox", "drop", &ids[1]]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("404") && said.contains(&ids[1]), "{said}");
    let mails = tokio::task::spawn_blocking(move || {
        until_blocking("the retried mail", Duration::from_secs(60), || {
            let mails = smtp.mails();
            let bounced: Vec<Mail> = mails
                .into_iter()
                .filter(|m| m.to.contains("bounce."))
                .collect();
            if bounced.is_empty() {
                Err("none yet".to_string())
            } else {
                Ok(bounced)
            }
        })
    })
    .await
    .unwrap();
    assert_eq!(mails.len(), 1, "only the retried one");
    let (_, listed) = daemon.cli(&["outbox", "--failed"]);
    assert_eq!(
        listed.lines().count(),
        1,
        "nothing failed any more:\n{listed}"
    );
}

/// A bounce is fixed in the roster: once it is reloaded, the failed mail retried goes to
/// the corrected address, under the Message-ID it always had.
#[tokio::test]
async fn a_retried_mail_goes_to_the_address_the_roster_now_has() {
    let roster = ROSTER.replace("aaa.deputy@example.org", "bounce.aaa@example.org");
    let council = Council::new(&roster, &[("quick.yaml", QUICK)]);
    let maildir = council.path().join("maildir");
    let smtp = SmtpServer::start_with("bouncer.Bouncer", free_port(), &maildir);
    let env = smtp_env(smtp.port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    daemon
        .start_item("quick-adoption", json!({"title": "Readdressed"}))
        .await;
    let id = until("the failed mail", Duration::from_secs(60), async || {
        let (_, failed) = daemon
            .admin(reqwest::Method::GET, "/api/outbox?status=failed", None)
            .await;
        match failed["mails"][0]["id"].as_str() {
            Some(id) => Ok(id.to_string()),
            None => Err(failed.to_string()),
        }
    })
    .await;
    std::fs::write(
        council.path().join("config/council.yaml"),
        roster.replace("bounce.aaa@example.org", "aaa.fixed@example.org"),
    )
    .unwrap();
    let (status, body) = daemon
        .admin(reqwest::Method::POST, "/api/reload", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = daemon
        .admin(
            reqwest::Method::POST,
            &format!("/api/outbox/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let fixed = tokio::task::spawn_blocking(move || {
        until_blocking("the retried mail", Duration::from_secs(60), || {
            let mails: Vec<Mail> = smtp
                .mails()
                .into_iter()
                .filter(|m| m.to.contains("aaa.fixed@"))
                .collect();
            if mails.is_empty() {
                Err("none yet".to_string())
            } else {
                Ok(mails)
            }
        })
    })
    .await
    .unwrap();
    assert_eq!(fixed.len(), 1);
    assert!(
        fixed[0].message_id.starts_with(&format!("<{id}@")),
        "{}",
        fixed[0].message_id
    );
}
