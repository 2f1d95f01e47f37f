//! Faults around the daemon: a second daemon on the same folder, a day of downtime.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Council, Daemon, ROSTER, until};

const DAY_LONG: &str = r#"
workflow: day-long
inputs:
  title: { type: text, required: true }
start: vote
stages:
  vote:
    ballot:
      question: "Adopt “{{item.title}}”?"
      closes_after: 1h
      remind: { before_close: [30m] }
      pass: simple_majority
    outcomes: { adopted: adopt, rejected: rejected, no_quorum: rejected }
  adopt:
    register: { series: regulations, number: "CPCC/REG/{{year}}/{{seq:03}}" }
    end: adopted
  rejected:
    end: rejected
"#;

#[tokio::test]
async fn a_second_daemon_on_the_same_folder_refuses_to_start() {
    let council = Council::new(ROSTER, &[("day.yaml", DAY_LONG)]);
    let first = council.start();
    let (code, out) = council.run(&["serve"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is in use by another councild"), "{out}");
    // The first one is unharmed.
    let id = first
        .start_item("day-long", json!({"title": "Still served"}))
        .await;
    assert_eq!(first.item(&id).await["chain"]["verified"], true);
}

#[tokio::test]
async fn after_a_day_of_downtime_overdue_timers_fire_once_in_order() {
    let council = Council::new(ROSTER, &[("day.yaml", DAY_LONG)]);
    let daemon = council.start();
    let id = daemon
        .start_item(
            "day-long",
            json!({"title": "Decided while the server was off"}),
        )
        .await;
    let links = until("the ballot mail", Duration::from_secs(30), async || {
        let links: Vec<String> = council.mails().iter().filter_map(|m| m.link()).collect();
        (links.len() == 3).then_some(links)
    })
    .await;
    assert_eq!(daemon.vote(&links[0], "yes").await.0, 200);
    assert_eq!(daemon.vote(&links[1], "yes").await.0, 200);
    daemon.kill();

    // The machine comes back a day later: the reminder and the deadline are both overdue.
    let daemon = Daemon::start(council.path(), &[("COUNCILD_CLOCK_OFFSET", "1d")]);
    let item = daemon
        .wait_item(&id, "the overdue deadline", |i| i["status"] == "ended")
        .await;
    assert_eq!(item["outcome"], "adopted");
    let fired: Vec<&str> = item["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"]["type"] == "timer_fired")
        .map(|e| e["event"]["timer"].as_str().unwrap())
        .collect();
    assert_eq!(
        fired,
        ["remind:0:0", "close:0"],
        "each overdue timer once, oldest first"
    );
    assert_eq!(item["ballots"][0]["counts"]["yes"], 2);
    assert_eq!(item["chain"]["verified"], true);
    let (_, status) = daemon.admin(reqwest::Method::GET, "/status", None).await;
    assert_eq!(status["timers"]["count"], 0, "{status}");

    // The reminder was overdue with the deadline: nobody is asked to vote in a ballot that
    // closed on the same start, and the log says why.
    daemon.wait_outbox_empty().await;
    let remind_seq = item["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["timer"] == "remind:0:0")
        .map(|e| e["seq"].as_u64().unwrap())
        .unwrap();
    let reminders: Vec<String> = council
        .mails()
        .into_iter()
        .filter(|m| m.message_id.starts_with(&format!("<{id}.{remind_seq}.")))
        .map(|m| m.subject)
        .collect();
    assert!(reminders.is_empty(), "reminders sent: {reminders:?}");
    assert!(
        daemon
            .log()
            .contains("dropped: a later timer of its ballot is due too"),
        "{}",
        daemon.log()
    );
}

/// A small filesystem of its own (tmpfs), unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    /// `None` where mounting is not allowed (not root, or a container without the right).
    fn mount(path: std::path::PathBuf, megabytes: u32) -> Option<SmallDisk> {
        std::fs::create_dir_all(&path).ok()?;
        let size = format!("size={megabytes}m");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &size, "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { path })
    }

    fn fill(&self) {
        let filler = self.path.join("filler");
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .stderr(std::process::Stdio::null())
            .status();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.path.join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_votes_stops_the_daemon_and_loses_nothing() {
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let Some(disk) = SmallDisk::mount(council.path().join("disk"), 64) else {
        eprintln!(
            "SKIPPED: this machine does not allow mounting a tmpfs (needs root); the disk-full test did not run"
        );
        return;
    };
    let data = disk.path.join("data");
    let env = [("COUNCILD_STORAGE_PATH", data.to_str().unwrap())];
    let daemon = Daemon::start(council.path(), &env);
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Voted on a full disk"}))
        .await;
    let mail_dir = data.join("mail");
    let links = until("the ballot mail", Duration::from_secs(30), async || {
        let links: Vec<String> = std::fs::read_dir(&mail_dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    // Not the temporary file of a mail being written.
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .map(|e| {
                        crate::harness::Mail::parse(
                            &std::fs::read_to_string(e.path()).unwrap_or_default(),
                        )
                    })
                    .filter_map(|m| m.link())
                    .collect()
            })
            .unwrap_or_default();
        (links.len() == 3).then_some(links)
    })
    .await;
    assert_eq!(
        daemon.vote(&links[0], "yes").await.0,
        200,
        "before the disk fills"
    );

    disk.fill();
    // The page sled was writing into may still have room for a vote or two: those are
    // written, and answered 200. Vote (no, abstain, no, ...) until one cannot be stored.
    let mut stored = None;
    let mut status = 0;
    for choice in ["no", "abstain"].iter().cycle().take(10) {
        status = daemon.vote(&links[1], choice).await.0;
        match status {
            200 => stored = Some(*choice),
            _ => break,
        }
    }
    assert_eq!(
        status, 503,
        "a vote that cannot be stored is refused, not acknowledged"
    );
    let mut daemon = daemon;
    assert_eq!(
        daemon.wait_exit(Duration::from_secs(30)),
        Some(1),
        "the daemon stops for its supervisor to restart it"
    );
    assert!(
        daemon.log().contains("No space left on device"),
        "{}",
        daemon.log()
    );

    // The supervisor starts it again at once, the disk still full. However far that start
    // gets, it must not leave a store that no later start can open, nor blame another
    // process.
    let log_so_far = daemon.log().len();
    drop(daemon);
    if let Ok(started) = Daemon::try_start(council.path(), &env) {
        drop(started);
    }
    let log = std::fs::read_to_string(council.path().join("daemon.log")).unwrap();
    let log = &log[log_so_far..];
    assert!(!log.contains("in use by another councild"), "{log}");

    // The disk is freed and the daemon started again: the acknowledged vote is there.
    disk.free();
    let daemon = Daemon::start(council.path(), &env);
    let item = daemon.item(&id).await;
    assert_eq!(item["chain"]["verified"], true);
    let mut counts = json!({"yes": 1, "no": 0, "abstain": 0});
    if let Some(choice) = stored {
        counts[choice] = json!(1);
    }
    assert_eq!(
        item["ballots"][0]["counts"], counts,
        "the votes stored are kept, the refused one is not"
    );
    let again = format!(
        "{}/ballot/{}",
        daemon.public,
        links[1].rsplit('/').next().unwrap()
    );
    assert_eq!(
        daemon.vote(&again, "no").await.0,
        200,
        "votes are taken again"
    );
    assert_eq!(daemon.item(&id).await["ballots"][0]["cast"], 2);
}

#[tokio::test]
async fn a_stored_state_that_disagrees_with_its_log_is_rebuilt_from_the_log() {
    let council = Council::new(ROSTER, &[("day.yaml", DAY_LONG)]);
    let daemon = council.start();
    let id = daemon
        .start_item("day-long", json!({"title": "Tampered"}))
        .await;
    let before = daemon
        .wait_item(&id, "the ballot", |i| i["ballots"][0]["eligible"] == 3)
        .await;
    daemon.kill();

    // Someone edits the stored state behind the daemon's back: the stage, in the item's
    // row, and a vote, added as a row of its own.
    let db = councild::store::open_db(&council.path().join("data/store")).unwrap();
    let items = db.open_tree("items").unwrap();
    let mut row = items.get(&id).unwrap().unwrap().to_vec();
    let from = br#""stage":"vote""#;
    let at = row
        .windows(from.len())
        .position(|w| w == from)
        .expect("the stage is in the row");
    row.splice(at..at + from.len(), br#""stage":"adopt""#.iter().copied());
    items.insert(id.as_bytes(), row).unwrap();
    db.open_tree("votes")
        .unwrap()
        .insert(councild::store::vote_key(&id, 0, "AAA"), "yes")
        .unwrap();
    db.flush().unwrap();
    drop((items, db));

    let daemon = Daemon::start(council.path(), &[]);
    let after = daemon.item(&id).await;
    assert_eq!(after["stage"], before["stage"], "the log wins");
    assert_eq!(after["ballots"][0]["cast"], 0);
    assert!(
        daemon
            .log()
            .contains("stored state differs from its event log"),
        "{}",
        daemon.log()
    );

    // The repaired state is whole: a full replay of every log agrees with it.
    daemon.kill();
    let daemon = Daemon::start(
        council.path(),
        &[("COUNCILD_STORAGE_CHECK_ON_START", "full")],
    );
    assert_eq!(daemon.item(&id).await["stage"], before["stage"]);
    assert!(daemon.log().contains("every item's log replayed"));
    let log = daemon.log();
    assert_eq!(
        log.matches("differs").count(),
        1,
        "only the first start: {log}"
    );
}

#[tokio::test]
async fn rows_that_end_before_their_log_are_replayed_once_the_daemon_is_up() {
    let council = Council::new(ROSTER, &[("day.yaml", DAY_LONG)]);
    let daemon = council.start();
    let id = daemon
        .start_item("day-long", json!({"title": "Restored from an old copy"}))
        .await;
    let links = until("the ballot mail", Duration::from_secs(30), async || {
        let links: Vec<String> = council.mails().iter().filter_map(|m| m.link()).collect();
        (links.len() == 3).then_some(links)
    })
    .await;
    daemon.kill();
    let store = council.path().join("data/store");
    let db = councild::store::open_db(&store).unwrap();
    let end = db.open_tree("ends").unwrap().get(&id).unwrap().unwrap();
    drop(db);

    let daemon = Daemon::start(council.path(), &[]);
    let link = format!(
        "{}/ballot/{}",
        daemon.public,
        links[0].rsplit('/').next().unwrap()
    );
    assert_eq!(daemon.vote(&link, "yes").await.0, 200);
    daemon.kill();

    // The item's rows are put back as they were before the vote, whole and agreeing with
    // each other (the end row with its checksum, no vote row): only the log has the vote.
    let db = councild::store::open_db(&store).unwrap();
    db.open_tree("ends").unwrap().insert(&id, end).unwrap();
    let votes = db.open_tree("votes").unwrap();
    let rows: Vec<_> = votes.scan_prefix(&id).keys().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "the vote's row");
    for k in rows {
        votes.remove(k).unwrap();
    }
    db.flush().unwrap();
    drop((votes, db));

    let daemon = Daemon::start(council.path(), &[]);
    daemon
        .wait_item(&id, "the vote replayed from the log", |i| {
            i["ballots"][0]["cast"] == 1
        })
        .await;
    let log = daemon.log();
    assert!(log.contains("which is not where its log ends"), "{log}");
    assert!(
        log.contains("every item's rows checked against the end of its log"),
        "{log}"
    );
    // Repaired on disk too: the next start finds nothing to repair (the log file goes on
    // from start to start).
    daemon.kill();
    let daemon = Daemon::start(council.path(), &[]);
    assert_eq!(daemon.item(&id).await["ballots"][0]["cast"], 1);
    let log = until("the check", Duration::from_secs(30), async || {
        let log = daemon.log();
        (log.matches("every item's rows checked").count() == 3).then_some(log)
    })
    .await;
    assert_eq!(log.matches("differs").count(), 1, "only once: {log}");
}
