//! SIGKILL in the middle of a ballot: every acknowledged vote survives, counted once, and
//! the ballot's deadline timer still fires after the restart.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::{Council, Daemon, repo};

const TIMED: &str = r#"
workflow: timed-adoption
inputs:
  title: { type: text, required: true }
start: vote
stages:
  vote:
    ballot:
      question: "Adopt “{{item.title}}”?"
      choices: [yes, no, abstain]
      closes_after: 12s
      quorum: "cast >= 1/2 * eligible"
      pass: simple_majority
    outcomes: { adopted: adopt, rejected: rejected, no_quorum: rejected }
  adopt:
    register: { series: regulations, number: "CPCC/REG/{{year}}/{{seq:03}}" }
    notify: { to: heads, template: regulation-adopted }
    end: adopted
  rejected:
    end: rejected
"#;

/// The last vote of each member, from the item's event log.
fn votes_in_log(item: &Value) -> BTreeMap<String, String> {
    let mut votes = BTreeMap::new();
    for e in item["events"].as_array().unwrap() {
        if e["event"]["type"] == "vote_cast" {
            votes.insert(
                e["event"]["member"].as_str().unwrap().to_string(),
                e["event"]["choice"].as_str().unwrap().to_string(),
            );
        }
    }
    votes
}

#[tokio::test]
async fn acknowledged_votes_survive_sigkill_and_the_deadline_still_fires() {
    let roster = std::fs::read_to_string(repo().join("config/council.yaml")).unwrap();
    let council = Council::new(&roster, &[("timed.yaml", TIMED)]);
    let daemon = council.start();
    let id = daemon
        .start_item(
            "timed-adoption",
            json!({"title": "Regulation on joint training"}),
        )
        .await;
    let item = daemon
        .wait_item(&id, "the ballot", |i| {
            i["ballots"][0]["eligible"].as_u64() > Some(0)
        })
        .await;
    let eligible = item["ballots"][0]["eligible"].as_u64().unwrap();
    assert_eq!(eligible, 55, "57 members, 2 suspended");

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let links: Vec<String> = loop {
        let links: Vec<String> = council.mails().iter().filter_map(|m| m.link()).collect();
        if links.len() as u64 == eligible {
            break links;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ballot mail not written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    // Vote from many concurrent clients; kill the daemon while votes are still in flight.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, String>::new()));
    let mut tasks = Vec::new();
    for (i, link) in links.iter().enumerate() {
        let link = link.clone();
        let acked = acked.clone();
        let choice = ["yes", "yes", "no"][i % 3];
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let resp = client.post(&link).form(&[("choice", choice)]).send().await;
            if let Ok(r) = resp
                && r.status() == 200
            {
                let page = r.text().await.unwrap_or_default();
                if page.contains("id=\"receipt\"") {
                    let member = page
                        .split("data-member=\"")
                        .nth(1)
                        .and_then(|s| s.split('"').next())
                        .unwrap_or_default()
                        .to_string();
                    acked.lock().unwrap().insert(member, choice.to_string());
                }
            }
        }));
    }
    // Let part of the votes land, then kill without warning.
    let start = std::time::Instant::now();
    while acked.lock().unwrap().len() < 20 && start.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    daemon.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "only {} votes acknowledged before the kill",
        acked.len()
    );

    // Restart on the same folder: every acknowledged vote is there, once.
    let daemon = Daemon::start(council.path(), &[]);
    let item = daemon.item(&id).await;
    assert_eq!(item["chain"]["verified"], true);
    assert!(
        !daemon.log().contains("differs from its event log"),
        "start-up replay found a mismatch:\n{}",
        daemon.log()
    );
    let logged = votes_in_log(&item);
    for (member, choice) in &acked {
        assert_eq!(
            logged.get(member),
            Some(choice),
            "acknowledged vote of {member} lost"
        );
    }
    let counts = &item["ballots"][0]["counts"];
    let total: u64 = ["yes", "no", "abstain"]
        .iter()
        .map(|c| counts[c].as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        logged.len() as u64,
        "each member counted once: {counts}"
    );
    assert_eq!(item["ballots"][0]["cast"], logged.len());

    // The deadline timer survived the crash and closes the ballot.
    let item = daemon
        .wait_item(&id, "the deadline", |i| i["status"] == "ended")
        .await;
    let result = &item["ballots"][0]["result"];
    assert_eq!(result["reason"], "the deadline passed");
    let yes = logged.values().filter(|c| *c == "yes").count() as u64;
    let no = logged.values().filter(|c| *c == "no").count() as u64;
    assert_eq!(item["ballots"][0]["counts"]["yes"], yes);
    let expected = if 2 * logged.len() as u64 >= eligible {
        if yes > no { "adopted" } else { "rejected" }
    } else {
        "no_quorum"
    };
    assert_eq!(result["verdict"], expected, "{item:#}");
    assert_eq!(item["chain"]["verified"], true);
}
