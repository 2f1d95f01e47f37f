//! Faults around the daemon: a second daemon on the same folder, a day of downtime.

use serde_json::json;

use crate::harness::{Council, Daemon, ROSTER};

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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let links = loop {
        let links: Vec<String> = council.mails().iter().filter_map(|m| m.link()).collect();
        if links.len() == 3 {
            break links;
        }
        assert!(std::time::Instant::now() < deadline, "no ballot mail");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
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
}
