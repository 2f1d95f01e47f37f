//! The admin side: every protected route refuses a missing or wrong token, metrics move
//! during a ballot, reload keeps running items on their version, cancel and deadline
//! extension are events, failed mail can be retried or dropped.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cycle::QUICK;
use crate::harness::{Council, Daemon, ROSTER, until};

/// Waits until `n` ballot links were written since `before` links existed.
async fn new_links(council: &Council, before: &[String], n: usize) -> Vec<String> {
    until("the ballot mail", Duration::from_secs(30), async || {
        let links: Vec<String> = council
            .mails()
            .iter()
            .filter_map(|m| m.link())
            .filter(|l| !before.contains(l))
            .collect();
        (links.len() >= n).then_some(links)
    })
    .await
}

#[tokio::test]
async fn every_protected_route_refuses_a_missing_or_wrong_token_and_changes_nothing() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Kept as it is"}))
        .await;
    let before = daemon.item(&id).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let table = councild::http::protected_route_table();
    assert!(table.len() >= 15, "{table:?}");
    for (method, pattern, _) in table {
        let path = pattern
            .replace("{id}", &id)
            .replace("{name}", "x")
            .replace("{ballot}", "0");
        for token in [None, Some("wrong"), Some("")] {
            let mut req = http
                .request(method.clone(), format!("{}{path}", daemon.admin))
                .json(&json!({"reason": "r", "workflow": "quick-adoption"}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            if path.starts_with("/dashboard") {
                assert_eq!(resp.status(), 303, "{method} {path} with {token:?}");
                assert_eq!(resp.headers()["location"], "/dashboard/login");
            } else {
                assert_eq!(resp.status(), 401, "{method} {path} with {token:?}");
            }
        }
        // A wrong session cookie is no better.
        let resp = http
            .request(method.clone(), format!("{}{path}", daemon.admin))
            .header("cookie", "councild_session=wrong")
            .send()
            .await
            .unwrap();
        assert!(
            resp.status() == 401 || resp.status() == 303,
            "{method} {path} with a wrong cookie"
        );
    }
    let after = daemon.item(&id).await;
    assert_eq!(
        before["events"], after["events"],
        "refused calls changed nothing"
    );
    let (_, items) = daemon.admin(Method::GET, "/api/items", None).await;
    assert_eq!(items["items"].as_array().unwrap().len(), 1);
    // The open endpoints stay open.
    assert_eq!(
        http.get(format!("{}/healthz", daemon.admin))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = http
        .get(format!("{}/readyz", daemon.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({"ready": true, "store": true, "definitions": true, "mail": true})
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn metrics_move_during_a_ballot() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let scrape = || daemon.metrics();
    let start = scrape().await;
    assert_eq!(metric(&start, "councild_votes_total"), 0.0);
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Measured"}))
        .await;
    let links = new_links(&council, &[], 3).await;
    assert_eq!(daemon.vote(&links[0], "yes").await.0, 200);
    let voted = scrape().await;
    assert_eq!(daemon.vote(&links[0], "no").await.0, 200);
    let mid = scrape().await;
    // A vote writes the item's small end row, not its whole state again.
    let bytes = |text: &str, tree: &str| {
        metric(
            text,
            &format!("councild_commit_bytes_total{{tree=\"{tree}\"}}"),
        )
    };
    assert_eq!(bytes(&mid, "items"), bytes(&voted, "items"), "{mid}");
    let end = bytes(&mid, "ends") - bytes(&voted, "ends");
    assert!(end > 0.0 && end < 200.0, "{end} bytes: {mid}");
    // Its receipt's outbox row holds the recipient and the number of the vote's event
    // (the choice and hash are the log's), under short names, no defaults.
    let receipt = bytes(&mid, "outbox") - bytes(&voted, "outbox");
    assert!(receipt > 0.0 && receipt < 250.0, "{receipt} bytes: {mid}");
    assert_eq!(metric(&mid, "councild_votes_total"), 2.0, "{mid}");
    assert!(
        metric(&mid, "councild_events_applied_total{kind=\"vote_cast\"}") == 2.0,
        "{mid}"
    );
    assert!(
        metric(&mid, "councild_mail_sent_total") >= 9.0,
        "circulation and ballot mail: {mid}"
    );
    assert!(
        metric(&mid, "councild_commit_batch_size_count") >= 3.0,
        "{mid}"
    );
    assert!(metric(&mid, "councild_flush_seconds_count") >= 3.0, "{mid}");
    assert!(
        metric(&mid, "councild_timer_lag_seconds_count") >= 1.0,
        "the circulation timer fired: {mid}"
    );
    assert!(
        mid.contains("councild_http_requests_total{route=\"/ballot/{token}\",status=\"200\"} 2"),
        "{mid}"
    );
    for link in &links[1..] {
        daemon.vote(link, "yes").await;
    }
    daemon
        .wait_item(&id, "the end", |i| i["status"] == "ended")
        .await;
    let end = scrape().await;
    assert_eq!(metric(&end, "councild_votes_total"), 4.0);
    assert_eq!(
        metric(&end, "councild_events_applied_total{kind=\"registered\"}"),
        1.0,
        "{end}"
    );
}

#[tokio::test]
async fn a_reload_keeps_running_items_on_their_version_and_starts_new_ones_on_the_new() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let old = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Begun under the old rules"}),
        )
        .await;
    let old_links = new_links(&council, &[], 3).await;
    let old_version = daemon.item(&old).await["version"]
        .as_str()
        .unwrap()
        .to_string();

    // A broken file is refused with the validator's message; nothing changes.
    let path = council.path().join("workflows/quick.yaml");
    std::fs::write(
        &path,
        QUICK.replace("closes_after: 1h", "closes_after: 1 hour"),
    )
    .unwrap();
    let (status, body) = daemon.admin(Method::POST, "/api/reload", None).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("quick.yaml:16:21: bad duration `1 hour`"),
        "{body}"
    );
    let (_, st) = daemon.admin(Method::GET, "/status", None).await;
    assert_eq!(st["definitions"][0]["version"], old_version.as_str());

    // A good change: decisions are now numbered as decisions.
    std::fs::write(
        &path,
        QUICK.replace(
            "series: regulations, number: \"CPCC/REG/",
            "series: decisions, number: \"CPCC/DEC/",
        ),
    )
    .unwrap();
    let (code, out) = daemon.cli(&["reload"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("quick-adoption") && !out.contains(&old_version),
        "{out}"
    );
    let new = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Begun under the new rules"}),
        )
        .await;
    let new_version = daemon.item(&new).await["version"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_version, old_version);
    let new_links = new_links(&council, &old_links, 3).await;

    for link in old_links.iter().chain(&new_links) {
        assert_eq!(daemon.vote(link, "yes").await.0, 200);
    }
    let year = chrono::Utc::now().format("%Y").to_string();
    let a = daemon
        .wait_item(&old, "the old item", |i| i["status"] == "ended")
        .await;
    let b = daemon
        .wait_item(&new, "the new item", |i| i["status"] == "ended")
        .await;
    assert_eq!(a["version"], old_version.as_str());
    assert_eq!(a["register_number"], format!("CPCC/REG/{year}/001"));
    assert_eq!(b["version"], new_version.as_str());
    assert_eq!(b["register_number"], format!("CPCC/DEC/{year}/001"));

    // Both versions survive a restart: the old one is kept in the store.
    drop(daemon);
    let daemon = crate::harness::Daemon::start(council.path(), &[]);
    assert_eq!(daemon.item(&old).await["chain"]["verified"], true);
}

/// When an item's (as the API shows it) first ballot closes.
fn closes_at(item: &Value) -> chrono::DateTime<chrono::Utc> {
    item["ballots"][0]["closes_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The question of a ballot page as the reader sees it: what follows `by ` up to the `?`.
fn asked_by(page: &str) -> String {
    let (_, rest) = page.split_once("” by ").unwrap_or_else(|| panic!("{page}"));
    rest.split_once('?').unwrap().0.to_string()
}

#[tokio::test]
async fn the_question_and_each_receipt_show_the_deadline_as_it_stood() {
    // The question names the deadline: votes leave it as it was, an extension changes it.
    let workflow = QUICK.replace(
        "question: \"Adopt “{{item.title}}”?\"",
        "question: \"Adopt “{{item.title}}” by {{ballot.closes_at}}?\"",
    );
    assert_ne!(workflow, QUICK);
    let council = Council::new(ROSTER, &[("quick.yaml", &workflow)]);
    let daemon = council.start();
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Asked in time"}))
        .await;
    new_links(&council, &[], 3).await;
    let link_of = |to: &str| {
        let mails = council.mails();
        let mail = mails
            .iter()
            .find(|m| m.to.contains(to) && m.link().is_some());
        mail.and_then(|m| m.link()).unwrap()
    };
    let (first, second) = (link_of("aaa.head"), link_of("ccc.first"));
    let (status, page) = daemon.get(&first).await;
    assert_eq!(status, 200, "{page}");
    let asked = asked_by(&page);
    assert!(page.contains("Adopt “Asked in time” by "), "{page}");
    let (status, page) = daemon.vote(&first, "yes").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        asked_by(&page),
        asked,
        "a vote changes nothing the question shows"
    );
    let (_, page) = daemon.get(&second).await;
    assert_eq!(asked_by(&page), asked);

    let closes = closes_at(&daemon.item(&id).await);
    let later = closes + chrono::Duration::days(2);
    let (status, body) = daemon
        .admin(
            Method::POST,
            &format!("/api/items/{id}/ballots/0/deadline"),
            Some(json!({"closes_at": later.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for link in [&first, &second] {
        let (_, page) = daemon.get(link).await;
        let now = asked_by(&page);
        assert_ne!(now, asked, "the page shows the deadline as extended");
    }
    let (status, page) = daemon.vote(&second, "no").await;
    assert_eq!(status, 200, "{page}");
    let extended = asked_by(&page);
    assert_ne!(extended, asked);
    // Each receipt tells the deadline as it stood at its vote.
    let council = &council;
    let receipt = async |to: &str| {
        until("the receipt", Duration::from_secs(30), async || {
            let mails = council.mails();
            let m = mails
                .iter()
                .find(|m| m.to.contains(to) && m.subject.contains("recorded"));
            m.map(|m| m.body.clone())
        })
        .await
    };
    let (first, second) = (receipt("aaa.head").await, receipt("ccc.first").await);
    assert!(
        first.contains(&asked) && !first.contains(&extended),
        "{first}"
    );
    assert!(
        second.contains(&extended) && !second.contains(&asked),
        "{second}"
    );
}

#[tokio::test]
async fn a_deadline_is_extended_and_an_item_cancelled_through_events() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let id = daemon
        .start_item("quick-adoption", json!({"title": "To be withdrawn"}))
        .await;
    let links = new_links(&council, &[], 3).await;
    let closes = closes_at(&daemon.item(&id).await);

    let path = format!("/api/items/{id}/ballots/0/deadline");
    let (status, body) = daemon
        .admin(
            Method::POST,
            &path,
            Some(json!({"closes_at": (closes - chrono::Duration::hours(1)).to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 422, "an earlier deadline is refused: {body}");
    let later = closes + chrono::Duration::days(2);
    let (status, body) = daemon
        .admin(
            Method::POST,
            &path,
            Some(json!({"closes_at": later.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let closes_now = closes_at(&body["item"]);
    assert_eq!(closes_now, later);
    assert_eq!(
        body["item"]["timers"]["close:0"]
            .as_str()
            .map(|t| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap()),
        Some(later)
    );
    let (status, _) = daemon
        .admin(
            Method::POST,
            "/api/items/item-9/ballots/0/deadline",
            Some(json!({"closes_at": later.to_rfc3339()})),
        )
        .await;
    assert_eq!(status, 404);

    let (status, body) = daemon
        .admin(
            Method::POST,
            &format!("/api/items/{id}/cancel"),
            Some(json!({"reason": " "})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (code, out) = daemon.cli(&["cancel", &id, "--reason", "withdrawn by the sponsor"]);
    assert_eq!(code, 0, "{out}");
    let item = daemon.item(&id).await;
    assert_eq!(item["outcome"], "cancelled");
    let kinds: Vec<&str> = item["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.ends_with(&["deadline_extended", "cancelled"]),
        "{kinds:?}"
    );
    assert_eq!(
        item["events"].as_array().unwrap().last().unwrap()["event"]["reason"],
        "withdrawn by the sponsor"
    );
    assert_eq!(
        daemon.vote(&links[0], "yes").await.0,
        409,
        "no vote on a cancelled item"
    );
    let (status, _) = daemon
        .admin(
            Method::POST,
            &format!("/api/items/{id}/cancel"),
            Some(json!({"reason": "again"})),
        )
        .await;
    assert_eq!(status, 409);
}

/// A template that names what its mail will not have (the ballot's deadline in the notice
/// sent before the ballot opens) passed `validate` and failed at send time, for every
/// member. Now `validate` and the start say so, naming the template, stage and variable.
#[tokio::test]
async fn a_template_naming_what_its_mail_lacks_is_refused() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let notice = council
        .path()
        .join("templates/en/draft-circulated.subject.hbs");
    std::fs::write(&notice, "{{council}}: vote closes {{ballot.closes_at}}").unwrap();
    let expected = "in a notice before any ballot of workflow `quick-adoption` at stage \
                    `circulate`: template en/draft-circulated.subject: line 1, col 26: \
                    `ballot.closes_at` is not in this mail's data";
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(expected), "{out}");
    let log = Daemon::try_start(council.path(), &[])
        .err()
        .expect("the start is refused");
    assert!(log.contains(expected), "{log}");
}

/// Writes a configuration that reload must refuse, and that takes a while to read: a
/// workflow nested 5,000 levels deep, two partials that include each other, a template
/// with blocks nested 5,000 deep, and large (legal) YAML files to read before the verdict.
fn write_hostile_folder(council: &Council) {
    let root = council.path();
    let deep: String = (0..5_000)
        .map(|i| format!("{}- \n", "  ".repeat(i)))
        .collect();
    std::fs::write(root.join("workflows/deep.yaml"), deep).unwrap();
    std::fs::write(root.join("templates/partials/a.hbs"), "{{> b}}").unwrap();
    std::fs::write(root.join("templates/partials/b.hbs"), "{{> a}}").unwrap();
    let ifs = format!(
        "{}x{}",
        "{{#if item}}".repeat(5_000),
        "{{/if}}".repeat(5_000)
    );
    std::fs::write(root.join("templates/fr/ballot.text.hbs"), ifs).unwrap();
    let big: String = "  - some text to read through\n".repeat(200_000);
    for i in 0..8 {
        let file = root.join(format!("workflows/big-{i}.yaml"));
        std::fs::write(file, format!("workflow: big-{i}\nnotes:\n{big}")).unwrap();
    }
}

#[tokio::test]
async fn a_hostile_reload_is_refused_while_the_daemon_keeps_answering() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    write_hostile_folder(&council);

    let healthz = format!("{}/healthz", daemon.admin);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let (first, second, ()) = tokio::join!(
        daemon.admin(Method::POST, "/api/reload", None),
        async {
            // The second reload arrives while the first is reading.
            tokio::time::sleep(Duration::from_millis(100)).await;
            daemon.admin(Method::POST, "/api/reload", None).await
        },
        async {
            let mut slowest = Duration::ZERO;
            let mut answers = 0;
            while started.elapsed() < Duration::from_secs(2) {
                let asked = std::time::Instant::now();
                let answer = client.get(&healthz).send().await;
                assert!(
                    answer.is_ok_and(|r| r.status() == 200),
                    "/healthz did not answer during the reload"
                );
                slowest = slowest.max(asked.elapsed());
                answers += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                slowest < Duration::from_secs(1),
                "/healthz took {slowest:?}"
            );
            assert!(answers > 10, "{answers} answers");
        }
    );
    let reload_took = started.elapsed();
    let (status, body) = first;
    assert_eq!(status, 422, "{body}");
    let problems = body["problems"].to_string();
    assert!(
        problems.contains("partials include each other in a circle"),
        "{problems}"
    );
    assert!(
        problems.contains("deep.yaml:65:129: nested more than 64 levels deep"),
        "{problems}"
    );
    assert!(
        problems.contains(
            "fr/ballot.text.hbs:1:385: blocks or subexpressions nested more than 32 deep"
        ),
        "{problems}"
    );
    let (status, body) = second;
    assert_eq!(status, 409, "{body} (the first took {reload_took:?})");

    // The daemon still runs on what it had.
    let (status, st) = daemon.admin(Method::GET, "/status", None).await;
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["definitions"][0]["name"], "quick-adoption", "{st}");
}

/// A filter value the API does not know is refused, naming the valid ones, instead of
/// answering an empty list as if nothing matched.
#[tokio::test]
async fn an_unknown_filter_value_is_named() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    for (path, valid) in [
        ("/api/items?status=closed", "use open, ended"),
        ("/api/outbox?status=sent", "use pending, retrying, failed"),
    ] {
        let (status, body) = daemon.admin(Method::GET, path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(valid),
            "{path}: {body}"
        );
    }
    let (status, _) = daemon
        .admin(Method::GET, "/api/items?status=ended", None)
        .await;
    assert_eq!(status, 200);
}

/// What an operator's alerts and eyes need: gauges of open ballots, waiting mail, pending
/// timers and the last commit on `/metrics`, and a log line when an item starts, a ballot
/// opens or closes and an item ends.
#[tokio::test]
async fn metrics_and_log_follow_an_item_through_its_life() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let gauge = |metrics: &str, name: &str| -> Option<i64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Gauged"}))
        .await;
    // The circulation notice is followed after 1 s by the ballot.
    let metrics = until(
        "an open ballot on /metrics",
        Duration::from_secs(30),
        async || {
            let m = daemon.metrics().await;
            if gauge(&m, "councild_ballots_open") == Some(1) {
                Ok(m)
            } else {
                Err(m)
            }
        },
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let committed = gauge(&metrics, "councild_last_commit_timestamp_seconds").unwrap_or(0);
    assert!((now - 60..=now + 1).contains(&committed), "{metrics}");
    assert!(
        gauge(&metrics, "councild_timers_pending").is_some_and(|n| n >= 1),
        "{metrics}"
    );
    for state in ["pending", "retrying", "failed"] {
        let name = format!("councild_mail_waiting{{state=\"{state}\"}}");
        assert!(gauge(&metrics, &name).is_some(), "{name} in {metrics}");
    }
    assert!(gauge(&metrics, "councild_mail_oldest_waiting_seconds").is_some());

    let (status, _) = daemon
        .admin(
            Method::POST,
            &format!("/api/items/{id}/cancel"),
            Some(json!({"reason": "gauged enough"})),
        )
        .await;
    assert_eq!(status, 200);
    let metrics = daemon.metrics().await;
    assert_eq!(
        gauge(&metrics, "councild_ballots_open"),
        Some(0),
        "{metrics}"
    );
    let log = until(
        "the item's end in the log",
        Duration::from_secs(10),
        async || {
            let log = daemon.log();
            if log.contains("item ended: cancelled") {
                Ok(log)
            } else {
                Err(log.len())
            }
        },
    )
    .await;
    for line in [
        "item started on workflow quick-adoption",
        "ballot 1 opened at stage vote: 3 voters, closes ",
        "item ended: cancelled",
    ] {
        let found = log.lines().find(|l| l.contains(line));
        assert!(
            found.is_some_and(|l| l.contains(" INFO ") && l.contains(&format!("item={id}"))),
            "`{line}` for {id} at INFO in:\n{log}"
        );
    }
}

/// `reload` takes a changed roster: mail from then on goes to the new delegates and a
/// ballot opening then gets the new electorate, while a ballot already open keeps the one
/// fixed when it opened; the change is logged. A roster with a mistake changes nothing.
#[tokio::test]
async fn a_reloaded_roster_is_used_from_then_on() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let first = daemon
        .start_item("quick-adoption", json!({"title": "Before"}))
        .await;
    council.ballot_mail("aaa.head@").await;
    let roster_file = council.path().join("config/council.yaml");
    let changed = ROSTER.replace("aaa.head@example.org", "aaa.new@example.org")
        + "  - id: EEE\n    name: Epsilonland\n    delegates:\n      - { name: E. Head, email: eee.head@example.org, language: en, head: true }\n";
    // First a roster with a mistake: refused, nothing changes.
    std::fs::write(&roster_file, changed.replace("id: EEE", "id: AAA")).unwrap();
    let (status, body) = daemon.admin(Method::POST, "/api/reload", None).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["problems"].to_string().contains("council.yaml"),
        "{body}"
    );
    std::fs::write(&roster_file, &changed).unwrap();
    let (status, body) = daemon.admin(Method::POST, "/api/reload", None).await;
    assert_eq!(status, 200, "{body}");
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("roster reloaded"))
        .unwrap_or_default();
    assert!(
        line.contains("added=[\"EEE\"]") && line.contains("changed=[\"AAA\"]"),
        "{log}"
    );

    assert_eq!(daemon.item(&first).await["ballots"][0]["eligible"], 3);
    let second = daemon
        .start_item("quick-adoption", json!({"title": "After"}))
        .await;
    let ballot = council.ballot_mail("eee.head@").await;
    assert!(ballot.subject.contains("After"), "{}", ballot.subject);
    let to_new = council.ballot_mail("aaa.new@").await;
    assert!(to_new.subject.contains("After"), "{}", to_new.subject);
    let item = daemon
        .wait_item(&second, "its ballot open", |i| {
            i["ballots"][0]["eligible"].is_number()
        })
        .await;
    assert_eq!(item["ballots"][0]["eligible"], 4, "{item}");
}

/// Extending a ballot tells its electorate the new deadline and why, with their link; cancelling
/// the item while the ballot is open tells them it is closed without a result, and why.
#[tokio::test]
async fn delegates_are_told_when_a_ballot_is_extended_or_cancelled() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Moved twice"}))
        .await;
    council.ballot_mail("aaa.head@").await;
    let until_time = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
    let (status, body) = daemon
        .admin(
            Method::POST,
            &format!("/api/items/{id}/ballots/0/deadline"),
            Some(json!({"closes_at": until_time, "reason": "two members asked for time"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = daemon
        .admin(
            Method::POST,
            &format!("/api/items/{id}/cancel"),
            Some(json!({"reason": "withdrawn by the sponsor"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    daemon.wait_outbox_empty().await;
    let mails = council.mails();
    let extended: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("now closes"))
        .collect();
    let cancelled: Vec<_> = mails
        .iter()
        .filter(|m| m.subject.contains("is cancelled"))
        .collect();
    // The three voters: AAA and CCC in English, BBB in Arabic.
    assert_eq!(
        mails.iter().filter(|m| m.subject.contains("تمديد")).count(),
        1
    );
    assert_eq!(
        extended.len(),
        2,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    assert!(
        extended.iter().all(|m| m.link().is_some()),
        "each with the voter's link"
    );
    assert!(
        extended
            .iter()
            .all(|m| m.body.contains("Reason: two members asked for time")),
        "{}",
        extended[0].body
    );
    let arabic = mails.iter().find(|m| m.subject.contains("تمديد")).unwrap();
    assert!(
        arabic
            .body
            .contains("السبب: \u{2068}two members asked for time\u{2069}"),
        "the reason, isolated among the Arabic words: {}",
        arabic.body
    );
    let log = daemon.item(&id).await["events"].to_string();
    assert!(
        log.contains("\"reason\":\"two members asked for time\""),
        "{log}"
    );
    assert_eq!(cancelled.len(), 2);
    assert!(
        cancelled
            .iter()
            .all(|m| m.body.contains("Reason: withdrawn by the sponsor")),
        "{}",
        cancelled[0].body
    );
}

/// Under systemd's `Type=notify` the daemon says `READY=1` once it serves, and
/// `STOPPING=1` when SIGTERM starts its shutdown; then it exits cleanly.
#[tokio::test]
async fn the_service_manager_is_told_when_the_daemon_serves_and_when_it_stops() {
    let council = Council::new(ROSTER, &[]);
    let path = council.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut daemon = Daemon::start(council.path(), &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let mut buf = [0u8; 1024];
    let n = socket.recv(&mut buf).unwrap();
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(ready.contains("STATUS=serving"), "{ready:?}");
    let (status, _) = daemon.admin(Method::GET, "/api/items", None).await;
    assert_eq!(status, 200, "it serves once it said so");

    let term = std::process::Command::new("kill")
        .args(["-TERM", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let n = socket.recv(&mut buf).unwrap();
    let stopping = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}
