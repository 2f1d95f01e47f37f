//! A whole decision cycle through the real daemon: circulation, ballot mail, votes over
//! HTTP (a changed vote, a forged token, a GET that must not vote), adoption under a number.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Council, ROSTER, until};

pub const QUICK: &str = r#"
workflow: quick-adoption
title: Quick adoption (test)
inputs:
  title: { type: text, required: true }
start: circulate
stages:
  circulate:
    notify: { to: members, template: draft-circulated }
    after: 1s
    next: vote
  vote:
    ballot:
      question: "Adopt “{{item.title}}”?"
      choices: [yes, no, abstain]
      closes_after: 1h
      quorum: "cast >= 2/3 * eligible"
      pass: "yes >= 2/3 * (yes + no)"
      close: when_all_voted
    outcomes: { adopted: adopt, rejected: rejected, no_quorum: rejected }
  adopt:
    register: { series: regulations, number: "CPCC/REG/{{year}}/{{seq:03}}" }
    notify: { to: members, template: regulation-adopted }
    end: adopted
  rejected:
    notify: { to: members, template: regulation-rejected }
    end: rejected
"#;

fn ballot_links(council: &Council) -> Vec<(String, String)> {
    council
        .mails()
        .into_iter()
        .filter_map(|m| Some((m.to.clone(), m.link()?)))
        .collect()
}

fn link_for(links: &[(String, String)], email: &str) -> String {
    links
        .iter()
        .find(|(to, _)| to.contains(email))
        .map(|(_, l)| l.clone())
        .unwrap_or_else(|| panic!("no ballot mail to {email}: {links:?}"))
}

#[tokio::test]
async fn a_regulation_is_circulated_voted_and_adopted_under_a_number() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let id = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation on the exchange of police information"}),
        )
        .await;

    // Circulation goes to every delegate of every member, suspended ones included.
    let item = daemon
        .wait_item(&id, "the ballot to open", |i| {
            i["ballots"][0]["eligible"] == 3
        })
        .await;
    assert_eq!(item["stage"], "vote");
    until("the ballot mail", Duration::from_secs(30), async || {
        ballot_links(&council).len() >= 3
    })
    .await;
    let mails = council.mails();
    // The circulation (item-1, event 1, effect 0) reaches every delegate, in their language.
    let circulated: Vec<_> = mails
        .iter()
        .filter(|m| m.message_id.starts_with("<item-1.1.0."))
        .collect();
    assert_eq!(
        circulated.len(),
        6,
        "one per delegate: {:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let to = |who: &str| {
        circulated
            .iter()
            .find(|m| m.to.contains(who))
            .unwrap_or_else(|| panic!("no mail to {who}"))
    };
    assert_eq!(to("aaa.head@").language.as_deref(), Some("en"));
    assert!(
        to("aaa.head@")
            .subject
            .contains("draft circulated for comment")
    );
    assert_eq!(to("aaa.deputy@").language.as_deref(), Some("fr"));
    assert_eq!(to("bbb.head@").language.as_deref(), Some("ar"));
    assert!(
        to("bbb.head@")
            .html
            .as_deref()
            .unwrap()
            .contains("dir=\"rtl\""),
        "Arabic is right-to-left"
    );
    assert!(
        to("ddd.head@")
            .body
            .contains("Regulation on the exchange of police information"),
        "suspended members are still informed"
    );

    // One ballot per member with a voting right, to its head (or first) delegate.
    let links = ballot_links(&council);
    assert_eq!(links.len(), 3, "{links:?}");
    let recipients: Vec<&str> = links.iter().map(|(to, _)| to.as_str()).collect();
    assert!(recipients.iter().any(|t| t.contains("aaa.head@")));
    assert!(
        recipients.iter().any(|t| t.contains("ccc.first@")),
        "no head: the first delegate votes"
    );
    assert!(
        !recipients.iter().any(|t| t.contains("ddd.")),
        "a suspended member gets no ballot"
    );
    let ballot_mail = mails
        .iter()
        .find(|m| m.link().is_some() && m.to.contains("aaa.head@"))
        .unwrap();
    assert!(
        ballot_mail
            .body
            .contains("Adopt “Regulation on the exchange of police information”?"),
        "{}",
        ballot_mail.body
    );
    assert!(
        ballot_mail
            .subject
            .contains("ballot on Regulation on the exchange"),
        "{}",
        ballot_mail.subject
    );

    let a = link_for(&links, "aaa.head@");
    let b = link_for(&links, "bbb.head@");
    let c = link_for(&links, "ccc.first@");

    // A GET shows the ballot and never votes.
    let (status, page) = daemon.get(&a).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Adopt “Regulation on the exchange of police information”?"),
        "{page}"
    );
    assert!(page.contains("You have not voted yet"));
    assert_eq!(daemon.item(&id).await["ballots"][0]["cast"], 0);

    // Votes, a changed vote, and a receipt with the event hash.
    let (status, receipt) = daemon.vote(&a, "yes").await;
    assert_eq!(status, 200, "{receipt}");
    assert!(receipt.contains("id=\"receipt\""), "{receipt}");
    // The same choice again is acknowledged with the same receipt, and changes nothing:
    // no new event, so no second receipt mail.
    let events = daemon.item(&id).await["events"].as_array().unwrap().len();
    let (status, again) = daemon.vote(&a, "yes").await;
    assert_eq!(status, 200, "{again}");
    let hash = |page: &str| {
        let start = page.find("id=\"receipt\"").unwrap();
        let code = &page[start..];
        code[code.find('>').unwrap() + 1..code.find("</code>").unwrap()].to_string()
    };
    assert_eq!(hash(&again), hash(&receipt));
    assert_eq!(
        daemon.item(&id).await["events"].as_array().unwrap().len(),
        events
    );
    let (status, first) = daemon.vote(&b, "no").await;
    assert_eq!(status, 200, "{first}");
    let (status, changed) = daemon.vote(&b, "yes").await;
    assert_eq!(status, 200, "{changed}");
    // Each vote's receipt mail (in Arabic, bbb's language) tells that vote: its own
    // receipt, and its choice, which differs between the two.
    let receipts = until("bbb's two receipts", Duration::from_secs(30), async || {
        let mails: Vec<_> = council
            .mails()
            .into_iter()
            .filter(|m| m.to.contains("bbb.head@") && m.body.contains("الإيصال: "))
            .collect();
        match mails.len() {
            2 => Ok(mails),
            n => Err(format!("{n} receipts")),
        }
    })
    .await;
    let bodies: Vec<&str> = receipts.iter().map(|m| m.body.as_str()).collect();
    let told = |page: &str| {
        let said = format!("الإيصال: {}", hash(page));
        let told: Vec<&str> = bodies
            .iter()
            .copied()
            .filter(|b| b.contains(&said))
            .collect();
        assert_eq!(told.len(), 1, "{said}: {bodies:#?}");
        let choice = told[0]
            .split("على النحو التالي: ")
            .nth(1)
            .unwrap_or_default();
        choice.lines().next().unwrap_or_default().to_string()
    };
    let (no, yes) = (told(&first), told(&changed));
    assert!(!no.is_empty() && no != yes, "{no} / {yes}: {bodies:#?}");
    let (_, page) = daemon.get(&b).await;
    assert!(page.contains("data-choice=\"yes\""), "{page}");
    assert_eq!(
        daemon.item(&id).await["ballots"][0]["counts"],
        json!({"yes": 2, "no": 0, "abstain": 0})
    );

    // A forged token, a tampered one, and a choice the ballot does not have change nothing.
    let forged = format!("{}/ballot/aXRlbS0xCjAKQUFBCjA.AAAA", daemon.public);
    assert_eq!(daemon.vote(&forged, "no").await.0, 404);
    let tampered = format!("{}x", a);
    assert_eq!(daemon.vote(&tampered, "no").await.0, 404);
    assert_eq!(daemon.vote(&c, "maybe").await.0, 422);
    assert_eq!(
        daemon.item(&id).await["ballots"][0]["counts"],
        json!({"yes": 2, "no": 0, "abstain": 0})
    );

    // The last vote closes the ballot: adopted, numbered, notified.
    assert_eq!(daemon.vote(&c, "abstain").await.0, 200);
    let item = daemon
        .wait_item(&id, "adoption", |i| i["status"] == "ended")
        .await;
    assert_eq!(item["outcome"], "adopted");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(item["register_number"], format!("CPCC/REG/{year}/001"));
    assert_eq!(
        item["ballots"][0]["counts"],
        json!({"yes": 2, "no": 0, "abstain": 1})
    );
    assert_eq!(item["ballots"][0]["result"]["verdict"], "adopted");
    assert_eq!(item["chain"]["verified"], true);

    // After close, the link says so and refuses votes.
    let (status, _) = daemon.vote(&a, "no").await;
    assert_eq!(status, 409);
    let (_, page) = daemon.get(&a).await;
    assert!(page.contains("This ballot is closed"), "{page}");

    let number = format!("CPCC/REG/{year}/001");
    let adopted = until("6 adoption notices", Duration::from_secs(30), async || {
        let adopted: Vec<_> = council
            .mails()
            .into_iter()
            .filter(|m| m.subject.contains(&number))
            .collect();
        if adopted.len() == 6 {
            Ok(adopted)
        } else {
            Err(format!("{} written", adopted.len()))
        }
    })
    .await;
    let english = adopted
        .iter()
        .find(|m| m.language.as_deref() == Some("en"))
        .unwrap();
    assert!(
        english.body.contains("yes 2; no 0; abstain 1;"),
        "the tally: {}",
        english.body
    );

    // The register lists the act.
    let (status, registers) = daemon
        .admin(reqwest::Method::GET, "/api/registers", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        registers["acts"][0]["number"],
        format!("CPCC/REG/{year}/001")
    );
    assert_eq!(registers["acts"][0]["item"], id.as_str());

    // A second adoption takes the next number, with no gap.
    let second = daemon
        .start_item("quick-adoption", json!({"title": "@SUM(1) regulation"}))
        .await;
    daemon
        .wait_item(&second, "the second ballot", |i| {
            i["ballots"][0]["eligible"] == 3
        })
        .await;
    let links = until(
        "the second ballot mail",
        Duration::from_secs(30),
        async || {
            let new: Vec<_> = ballot_links(&council)
                .into_iter()
                .filter(|(_, l)| !links.iter().any(|(_, old)| old == l))
                .collect();
            (new.len() == 3).then_some(new)
        },
    )
    .await;
    for (_, link) in &links {
        assert_eq!(daemon.vote(link, "yes").await.0, 200);
    }
    let item = daemon
        .wait_item(&second, "second adoption", |i| i["status"] == "ended")
        .await;
    assert_eq!(item["register_number"], format!("CPCC/REG/{year}/002"));

    // The register as a spreadsheet takes it: UTF-8 marked, the title as text, not a formula.
    let csv = daemon.admin_text("/dashboard/register.csv").await;
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], "\u{feff}number,title,item,adopted,texts", "{csv}");
    assert!(
        lines[2].starts_with(&format!("\"CPCC/REG/{year}/002\",\"'@SUM(1) regulation\"")),
        "{csv}"
    );
}

#[tokio::test]
async fn bad_admin_requests_are_refused_and_create_nothing() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let (status, body) = daemon
        .admin(
            reqwest::Method::POST,
            "/api/items",
            Some(json!({"workflow": "quick-adoption", "inputs": {}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`title` is required"),
        "{body}"
    );
    let (status, _) = daemon
        .admin(
            reqwest::Method::POST,
            "/api/items",
            Some(json!({"workflow": "nope"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = daemon
        .admin(
            reqwest::Method::POST,
            "/api/items",
            Some(json!({"workflow": "quick-adoption", "extra": 1})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = daemon
        .admin(reqwest::Method::GET, "/api/items/item-404", None)
        .await;
    assert_eq!(status, 404);
    let (_, items) = daemon.admin(reqwest::Method::GET, "/api/items", None).await;
    assert_eq!(
        items["items"],
        json!([]),
        "refused requests created nothing"
    );
}
