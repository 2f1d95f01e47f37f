//! Elections through the real daemon, a real SMTP server and a real Chromium: candidates
//! nominated from the CLI and the API, confirmed on the dashboard, a chair elected in a
//! second round (a vote changed on the way, a blank ballot, an Arabic ballot page), a
//! committee's three seats marked in checkboxes; and what is refused changes nothing.

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::harness::{Council, Daemon, ROSTER, free_port, repo};
use crate::smtp::{SmtpServer, smtp_env};

/// A shipped election workflow, run by a daemon mailing through a real SMTP server; an
/// item started on it.
async fn election(workflow: &str, inputs: Value) -> (Council, SmtpServer, Daemon, String) {
    let file = format!("{workflow}.yaml");
    let source = std::fs::read_to_string(repo().join("workflows").join(&file)).unwrap();
    // The open ballot of the shipped workflow (the secret one has its own test).
    let source: String = source
        .lines()
        .filter(|l| !l.contains("secret: true") && !l.contains("trustees:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let council = Council::new(ROSTER, &[(&file, &source)]);
    let smtp = SmtpServer::start(free_port(), &council.path().join("maildir"));
    let env = smtp_env(smtp.port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    let item = daemon.start_item(workflow, inputs).await;
    (council, smtp, daemon, item)
}

/// The ballot link of round `round` in the mail to the address starting `to`.
async fn round_link(smtp: &SmtpServer, to: &str, round: &str) -> String {
    let what = format!("the ballot of round {round} to {to}");
    let mail = smtp
        .mail_where(&what, |m| {
            m.to.contains(to) && m.link().is_some() && m.subject.contains(round)
        })
        .await;
    mail.link().unwrap()
}

fn names(item: &Value) -> Vec<String> {
    let list = item["candidates"].as_array().unwrap();
    list.iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_chair_is_elected_in_a_second_round_from_nominations_to_the_register() {
    let titles =
        json!({"title.ar": "رئيس المجلس التنفيذي", "title.fr": "Président du Conseil exécutif"});
    let (_council, smtp, daemon, item) = election("chair-election", titles).await;
    let call = smtp
        .mail_where("the call for nominations in Arabic", |m| {
            m.to.contains("bbb.head") && m.subject.contains("دعوة إلى تقديم الترشيحات")
        })
        .await;
    assert_eq!(call.language.as_deref(), Some("ar"));
    assert!(
        call.subject.contains("رئيس المجلس التنفيذي"),
        "{}",
        call.subject
    );

    // Nominations: from the CLI (an id made from the name) and from the API.
    let out = daemon.ok(&[
        "nominate",
        &item,
        "--name",
        "Ahmed Al-Farsi",
        "--name-ar",
        "أحمد الفارسي",
        "--member",
        "AAA",
    ]);
    assert!(out.contains("candidate ahmed_al_farsi nominated"), "{out}");
    // Betaland nominates from the link in its call, on the Arabic page in Chromium.
    let link = call
        .body
        .split_whitespace()
        .find(|w| w.contains("/nominate/"))
        .expect("the call holds the member's link to nominate")
        .to_string();
    let browser = Browser::start().await;
    browser.client.goto(&link).await.unwrap();
    let form = browser.client.form(Locator::Css("form")).await.unwrap();
    form.set_by_name("name.ar", "عائشة أوزتورك").await.unwrap();
    form.set_by_name("name.en", "Ayşe Öztürk").await.unwrap();
    browser.screenshot("election-nominate-ar").await;
    form.submit().await.unwrap();
    let done = browser.settle("عائشة أوزتورك").await;
    assert!(done.contains("تسلّمت الأمانة ترشيحكم"), "{done}");
    let (status, answer) = daemon
        .admin(
            reqwest::Method::POST,
            &format!("/api/items/{item}/nominations"),
            Some(json!({"id": "diallo", "name": {"en": "Mamadou Diallo", "fr": "Mamadou Diallo"}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        names(&answer["item"]),
        ["ahmed_al_farsi", "ayse_ozturk", "diallo"]
    );
    // Refused, and nothing logged: a member not in the roster, a name taken, no name.
    daemon
        .refused(
            &["nominate", &item, "--name", "X", "--member", "ZZZ"],
            "the roster has no member `ZZZ`",
            &item,
        )
        .await;
    daemon
        .refused(
            &["nominate", &item, "--name", "D", "--id", "diallo"],
            "candidate `diallo` is already nominated",
            &item,
        )
        .await;
    daemon
        .refused(
            &["nominate", &item, "--id", "nobody"],
            "give the candidate's name",
            &item,
        )
        .await;

    // The secretariat confirms the list on the dashboard; the first round opens.
    let form = browser
        .dashboard_form(
            &daemon.admin,
            &format!("/dashboard/items/{item}"),
            "#confirm",
        )
        .await;
    form.submit().await.unwrap();
    let text = browser.settle("Round 1").await;
    assert!(text.contains("Ayşe Öztürk"), "{text}");
    browser.screenshot("election-dashboard-round-1").await;
    let open = daemon.item(&item).await;
    assert_eq!(open["stage"], "elect");
    assert_eq!(
        open["standing"],
        json!(["ahmed_al_farsi", "ayse_ozturk", "diallo"])
    );
    daemon
        .refused(
            &["nominate", &item, "--name", "Late"],
            "nominations are taken only",
            &item,
        )
        .await;
    let (status, page) = daemon.get(&link).await;
    assert_eq!(status, 409, "nominations are closed: {page}");
    // A forged link, and a ballot's link, nominate nobody.
    let last = if link.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &link[..link.len() - 1]);
    let ballot = round_link(&smtp, "aaa.head", "round 1").await;
    let as_nomination = ballot.replace("/ballot/", "/nominate/");
    for bad in [forged, as_nomination] {
        let (status, page) = daemon.get(&bad).await;
        assert_eq!(status, 404, "{bad}: {page}");
    }

    // Round 1: one vote each for two candidates and a blank ballot: no absolute majority
    // of the two votes cast.
    let a1 = round_link(&smtp, "aaa.head", "round 1").await;
    let b1 = round_link(&smtp, "bbb.head", "الجولة رقم 1").await;
    let c1 = round_link(&smtp, "ccc.first", "round 1").await;
    assert_eq!(daemon.vote(&a1, "ahmed_al_farsi").await.0, 200);
    assert_eq!(daemon.vote(&b1, "ayse_ozturk").await.0, 200);
    let (status, page) = daemon.vote(&c1, "nobody").await;
    assert_eq!(status, 422, "{page}");
    assert_eq!(daemon.vote(&c1, "blank").await.0, 200);
    let round2 = daemon
        .wait_item(&item, "the second round", |i| {
            i["ballots"].as_array().unwrap().len() == 2
        })
        .await;
    let r1 = &round2["ballots"][0];
    assert_eq!(r1["result"]["verdict"], "no_winner");
    assert_eq!(
        r1["counts"],
        json!({"ahmed_al_farsi": 1, "ayse_ozturk": 1, "diallo": 0, "blank": 1})
    );
    assert_eq!(
        round2["ballots"][1]["choices"],
        json!(["ahmed_al_farsi", "ayse_ozturk", "blank"])
    );

    // Round 2, between the two best placed: the Arabic delegate votes on the page in
    // Chromium; Alphaland votes, then changes its vote.
    let b2 = round_link(&smtp, "bbb.head", "الجولة رقم 2").await;
    browser.client.goto(&b2).await.unwrap();
    let page = browser.page().await;
    assert!(
        page.contains("أحمد الفارسي")
            && page.contains("عائشة أوزتورك")
            && !page.contains("Mamadou"),
        "{page}"
    );
    browser
        .click(Locator::Css("input[value=ayse_ozturk]"))
        .await;
    browser.screenshot("election-ballot-ar").await;
    browser.click(Locator::Css("button[type=submit]")).await;
    let receipt = browser.settle("عائشة أوزتورك").await;
    assert!(receipt.contains("عائشة أوزتورك"), "{receipt}");
    let a2 = round_link(&smtp, "aaa.head", "round 2").await;
    assert_eq!(daemon.vote(&a2, "ahmed_al_farsi").await.0, 200);
    assert_eq!(daemon.vote(&a2, "ayse_ozturk").await.0, 200);
    let c2 = round_link(&smtp, "ccc.first", "round 2").await;
    assert_eq!(daemon.vote(&c2, "blank").await.0, 200);
    let done = daemon
        .wait_item(&item, "the election's end", |i| i["status"] == "ended")
        .await;
    assert_eq!(done["elected"], json!(["ayse_ozturk"]));
    assert_eq!(done["outcome"], "elected");
    assert_eq!(done["register_number"], "CPCC/APP/2026/001");
    assert_eq!(
        done["ballots"][1]["result"]["elected"],
        json!(["ayse_ozturk"])
    );
    let (status, _) = daemon.vote(&a2, "ahmed_al_farsi").await;
    assert_eq!(status, 409, "votes after the close are refused");

    // The result, by mail in each delegate's language, and on the CLI.
    let ar = smtp
        .mail_where("the Arabic result", |m| {
            m.to.contains("bbb.head") && m.body.contains("CPCC/APP/2026/001")
        })
        .await;
    assert!(ar.body.contains("عائشة أوزتورك"), "{}", ar.body);
    let en = smtp
        .mail_where("the English result", |m| {
            m.to.contains("aaa.head") && m.body.contains("CPCC/APP/2026/001")
        })
        .await;
    assert!(en.body.contains("has elected: Ayşe Öztürk"), "{}", en.body);
    assert!(en.body.contains("Ayşe Öztürk: 2"), "{}", en.body);
    let shown = daemon.ok(&["item", &item]);
    assert!(shown.contains("elected: ayse_ozturk"), "{shown}");
    browser.close().await;
}

#[tokio::test]
async fn three_seats_are_marked_in_checkboxes_and_the_last_one_filled_in_a_restricted_round() {
    let (_council, smtp, daemon, item) = election(
        "committee-election",
        json!({"title": "Committee on Budget and Finance"}),
    )
    .await;
    for (id, name) in [
        ("a", "Amina Bello"),
        ("b", "Bilal Khan"),
        ("c", "Chen Wei"),
        ("d", "Dina Saleh"),
    ] {
        daemon.ok(&["nominate", &item, "--id", id, "--name", name]);
    }
    daemon
        .refused(
            &["candidates", &item, "a", "zz"],
            "no candidate `zz` is nominated",
            &item,
        )
        .await;
    daemon.ok(&["candidates", &item, "d", "c", "b", "a"]);
    let opened = daemon.item(&item).await;
    assert_eq!(
        opened["ballots"][0]["choices"],
        json!(["d", "c", "b", "a", "blank"])
    );

    // Alphaland marks three boxes in Chromium; four are refused.
    let a1 = round_link(&smtp, "aaa.head", "round 1").await;
    let browser = Browser::start().await;
    browser.client.goto(&a1).await.unwrap();
    let page = browser.page().await;
    assert!(page.contains("Mark up to 3 candidates"), "{page}");
    for id in ["a", "b", "c", "d"] {
        browser
            .click(Locator::Css(&format!("input[type=checkbox][value={id}]")))
            .await;
    }
    browser.click(Locator::Css("button[type=submit]")).await;
    let refused = browser.settle("role=\"alert\"").await;
    assert!(
        refused.contains("role=\"alert\">Mark up to 3 candidates"),
        "{refused}"
    );
    assert_eq!(
        daemon.item(&item).await["ballots"][0]["cast"],
        0,
        "nothing recorded"
    );
    browser.client.goto(&a1).await.unwrap();
    for id in ["a", "b", "c"] {
        browser
            .click(Locator::Css(&format!("input[type=checkbox][value={id}]")))
            .await;
    }
    browser.screenshot("election-three-seats").await;
    browser.click(Locator::Css("button[type=submit]")).await;
    let receipt = browser.settle("Receipt").await;
    assert!(
        receipt.contains("Chen Wei, Bilal Khan, Amina Bello"),
        "{receipt}"
    );
    browser.close().await;

    // The ballot marking three is on disk: killed and started again, the daemon has it.
    let root = _council.path().to_path_buf();
    daemon.kill();
    let env = smtp_env(smtp.port);
    let daemon = Daemon::start(&root, &[(env[0].0, env[0].1.as_str())]);
    let again = daemon.item(&item).await;
    assert_eq!(again["ballots"][0]["cast"], 1);
    assert_eq!(
        again["ballots"][0]["counts"],
        json!({"a": 1, "b": 1, "c": 1, "d": 0, "blank": 0})
    );
    let here = |link: &str| {
        format!(
            "{}{}",
            daemon.public,
            &link[link.find("/ballot/").unwrap()..]
        )
    };

    // a 3, b 2, c 1 of 3 ballots: 2 needed; a and b elected, c and d stand for the last seat.
    let b1 = here(&round_link(&smtp, "bbb.head", "الجولة رقم 1").await);
    let c1 = here(&round_link(&smtp, "ccc.first", "round 1").await);
    let client = reqwest::Client::new();
    let form = [("choice", "a"), ("choice", "b")];
    let answer = client.post(&b1).form(&form).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(daemon.vote(&c1, "a").await.0, 200);
    let round2 = daemon
        .wait_item(&item, "the second round", |i| {
            i["ballots"].as_array().unwrap().len() == 2
        })
        .await;
    assert_eq!(round2["elected"], json!(["a", "b"]));
    assert_eq!(round2["ballots"][1]["choices"], json!(["d", "c", "blank"]));
    assert_eq!(
        round2["ballots"][1]["round"],
        json!({"number": 2, "seats": 1})
    );
    for (to, round) in [
        ("aaa.head", "round 2"),
        ("bbb.head", "الجولة رقم 2"),
        ("ccc.first", "round 2"),
    ] {
        let link = here(&round_link(&smtp, to, round).await);
        assert_eq!(daemon.vote(&link, "c").await.0, 200, "{to}");
    }
    let done = daemon
        .wait_item(&item, "the election's end", |i| i["status"] == "ended")
        .await;
    assert_eq!(done["elected"], json!(["a", "b", "c"]));
    assert_eq!(done["outcome"], "announced");
}
