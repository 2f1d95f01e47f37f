//! A session of the council run whole through the real daemon, a real SMTP server and a
//! real Chromium: a member proposes a point from the link in the call, the agenda is
//! circulated, attendance is taken on the dashboard, a roll-call adopts a regulation under
//! its number, a show of hands rejects a decision, a point is deferred, and the record is
//! written in three languages (the Arabic one also as a PDF, read back and rendered). Each
//! refusal says why and changes nothing.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::harness::{Council, Daemon, ROSTER, free_port, repo, until_blocking};
use crate::smtp::{SmtpServer, smtp_env};

fn shipped(name: &str) -> (String, String) {
    let text = std::fs::read_to_string(repo().join("workflows").join(name)).unwrap();
    (name.to_string(), text)
}

fn council() -> Council {
    let files: Vec<(String, String)> = [
        "council-session.yaml",
        "regulation-in-session.yaml",
        "session-decision.yaml",
        "quick-vote.yaml",
    ]
    .into_iter()
    .map(shipped)
    .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    Council::new(ROSTER, &refs)
}

fn present(item: &Value) -> Vec<String> {
    item["meeting"]["present"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_whole_session_from_the_call_for_points_to_its_record_in_three_languages() {
    let council = council();
    let smtp = SmtpServer::start(free_port(), &council.path().join("maildir"));
    let env = smtp_env(smtp.port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    let session = daemon.start_item("council-session", json!({})).await;

    // The call for points reaches each head; Betaland's, in Arabic, carries its own link.
    let call = smtp
        .mail_where("the Arabic call for points", |m| {
            m.to.contains("bbb.head") && m.body.contains("/propose/")
        })
        .await;
    assert_eq!(call.language.as_deref(), Some("ar"));
    let link = call
        .body
        .split_whitespace()
        .find(|w| w.contains("/propose/"))
        .unwrap()
        .to_string();
    let (status, _) = daemon.get(&link.replace("/propose/", "/propose/x")).await;
    assert_eq!(status, 404, "a forged link proposes nothing");

    let browser = Browser::start().await;
    browser.client.goto(&link).await.unwrap();
    let page = browser.page().await;
    assert!(
        page.contains("dir=\"rtl\"") && page.contains("اقتراح بند لجدول الأعمال"),
        "{page}"
    );
    let form = browser.client.form(Locator::Css("form")).await.unwrap();
    form.set_by_name("title", "Cooperation with INTERPOL on cybercrime")
        .await
        .unwrap();
    form.set_by_name("explanation", "مذكرة تفاهم مقترحة")
        .await
        .unwrap();
    form.submit().await.unwrap();
    browser.settle("تم استلام الاقتراح").await;

    // The secretariat puts two items and a point of its own on the agenda.
    let regulation = daemon
        .start_item(
            "regulation-in-session",
            json!({"title": "Regulation on information exchange"}),
        )
        .await;
    let budget = daemon
        .start_item("session-decision", json!({"title": "Budget for 2027"}))
        .await;
    let email_vote = daemon
        .start_item("quick-vote", json!({"title": "An email ballot"}))
        .await;
    daemon.ok(&["agenda", &session, "add", &regulation]);
    daemon.ok(&["agenda", &session, "add", &budget]);
    daemon.ok(&["agenda", &session, "add", &email_vote]);
    let listed = daemon.ok(&["agenda", &session, "add", "--title", "Any other business"]);
    assert!(
        listed.contains("Cooperation with INTERPOL on cybercrime") && listed.contains("BBB"),
        "{listed}"
    );
    daemon
        .refused(
            &["agenda", &session, "add", &regulation],
            "already on the agenda",
            &session,
        )
        .await;
    daemon
        .refused(
            &["agenda", &session, "add", "item-99"],
            "no item `item-99`",
            &session,
        )
        .await;
    daemon
        .refused(
            &["attendance", &session, "--present", "AAA"],
            "not in its meeting",
            &session,
        )
        .await;
    // Withdrawn, then added again: the old point cannot come back beside the new one.
    daemon.ok(&["agenda", &session, "withdraw", "2"]);
    daemon.ok(&["agenda", &session, "add", &regulation]);
    daemon
        .refused(
            &["agenda", &session, "restore", "2"],
            "already on the agenda",
            &session,
        )
        .await;
    daemon.ok(&["agenda", &session, "move", "6", "--to", "2"]);

    // The agenda is circulated, in each delegate's language, with the member's point on it.
    daemon.ok(&["next", &session]);
    let agenda = smtp
        .mail_where("the agenda in French", |m| {
            m.to.contains("aaa.deputy") && m.body.contains("Ordre du jour provisoire")
        })
        .await;
    for title in [
        "Regulation on information exchange",
        "Cooperation with INTERPOL",
        "Any other business",
    ] {
        assert!(agenda.body.contains(title), "{}", agenda.body);
    }
    assert!(agenda.ics.is_some(), "with the calendar invitation");
    let (status, closed) = daemon.get(&link).await;
    assert_eq!(status, 409, "the call for points is over: {closed}");

    // The meeting opens; attendance is taken on the dashboard, one click per member.
    daemon.ok(&["next", &session]);
    browser
        .log_in_as(&daemon.admin, "", crate::harness::TOKEN)
        .await;
    browser.settle("Council dashboard").await;
    let meeting = format!("{}/dashboard/items/{session}/meeting", daemon.admin);
    browser.client.goto(&meeting).await.unwrap();
    for member in ["AAA", "BBB"] {
        browser
            .click(Locator::Css(&format!("#member-{member} button")))
            .await;
        browser
            .settle(&format!("<tr id=\"member-{member}\" class=\"present\">"))
            .await;
    }
    daemon.ok(&["attendance", &session, "--present", "CCC"]);
    assert_eq!(present(&daemon.item(&session).await), ["AAA", "BBB", "CCC"]);
    daemon.ok(&["agenda", &session, "adopt"]);
    daemon
        .refused(
            &["close-meeting", &session],
            "are not taken: record them, defer their points or send them to an email ballot",
            &session,
        )
        .await;

    // A roll-call adopts the regulation under its number.
    daemon.ok(&["next", &regulation]);
    daemon
        .refused(
            &["record", &regulation],
            "at least one member's vote",
            &regulation,
        )
        .await;
    daemon
        .refused(
            &["record", &regulation, "--yes", "AAA,DDD"],
            "`DDD` is not in this ballot's electorate",
            &regulation,
        )
        .await;
    daemon
        .refused(
            &["record", &regulation, "--yes", "AAA,ZZZ"],
            "`ZZZ` is not in this ballot's electorate",
            &regulation,
        )
        .await;
    daemon
        .refused(
            &["record", &regulation, "--count", "yes=3,no=1"],
            "4 counted, but only 3 members entitled to vote are present",
            &regulation,
        )
        .await;
    daemon
        .refused(
            &["record", &regulation, "--yes", "AAA", "--no", "AAA"],
            "counted twice",
            &regulation,
        )
        .await;
    daemon
        .refused(
            &["record", &email_vote, "--yes", "AAA"],
            "not taken in session",
            &email_vote,
        )
        .await;
    let (code, out) = daemon.cli(&["record", &regulation, "--yes", "AAA,BBB", "--no", "CCC"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("adopted (roll-call, 3 present)"), "{out}");
    assert!(
        out.contains("CPCC/REG/2026/001") || out.contains("/REG/"),
        "{out}"
    );
    daemon
        .refused(
            &["record", &regulation, "--yes", "CCC"],
            "the item has ended",
            &regulation,
        )
        .await;

    // Gammaland leaves; it can no longer be recorded as voting. A show of hands on the
    // dashboard rejects the budget.
    daemon.ok(&["attendance", &session, "--absent", "CCC"]);
    daemon
        .refused(
            &["record", &budget, "--yes", "CCC"],
            "member `CCC` is not present",
            &budget,
        )
        .await;
    browser.client.goto(&meeting).await.unwrap();
    let page = browser.page().await;
    assert!(page.contains("Quorum <code>present &gt; 1/2 * eligible</code> with the 2 present: <strong>met</strong>"), "{page}");
    let hands = browser
        .client
        .form(Locator::Css("form[id^=hands-]"))
        .await
        .unwrap();
    hands.set_by_name("count.yes", "0").await.unwrap();
    hands.set_by_name("count.no", "2").await.unwrap();
    browser.client.set_window_size(1100, 2200).await.unwrap();
    let shot = browser.screenshot("session-meeting-dashboard").await;
    hands.submit().await.unwrap();
    browser.settle("rejected").await;
    assert!(shot.is_file());
    let decided = daemon.item(&budget).await;
    assert_eq!(decided["outcome"], "rejected", "{decided}");
    assert_eq!(decided["ballots"][0]["room"]["method"], "show_of_hands");

    // An electronic vote in the room: the links go to the delegates present, who vote
    // from them (Betaland from its Arabic page), and the chair closes it.
    let date = daemon
        .start_item(
            "session-decision",
            json!({"title": "Date of the next session"}),
        )
        .await;
    daemon.ok(&["agenda", &session, "add", &date]);
    let opened = daemon.ok(&["record", &date, "--electronic", "open"]);
    assert!(opened.contains("2 members present"), "{opened}");
    let link_of = async |to: &str| {
        smtp.mail_where(&format!("the ballot link to {to}"), |m| {
            m.to.contains(to)
                && m.link().is_some_and(|l| l.contains("/ballot/"))
                && m.body.contains("Date of the next session")
        })
        .await
    };
    let aaa = link_of("aaa.head").await;
    assert!(
        aaa.subject.contains("vote in the meeting"),
        "{}",
        aaa.subject
    );
    let bbb = link_of("bbb.head").await;
    let (status, _) = daemon.vote(&aaa.link().unwrap(), "yes").await;
    assert_eq!(status, 200);
    browser.client.goto(&bbb.link().unwrap()).await.unwrap();
    let page = browser.page().await;
    assert!(page.contains("يجري التصويت في الجلسة"), "{page}");
    browser
        .click(Locator::Css("input[name=choice][value=yes]"))
        .await;
    browser
        .click(Locator::Css("form button[type=submit]"))
        .await;
    browser.settle("receipt").await;
    assert!(
        !smtp
            .mails()
            .iter()
            .any(|m| m.to.contains("ccc.") && m.body.contains("Date of the next session")),
        "Gammaland has left: no link"
    );
    let closed = daemon.ok(&["record", &date, "--electronic", "close"]);
    assert!(
        closed.contains("adopted (electronic vote, 2 present): abstain 0, no 0, yes 2"),
        "{closed}"
    );
    assert!(closed.contains("CPCC/EC/2026/D001"), "{closed}");

    // A point sent to an email ballot after the meeting: every voting member gets a link,
    // Gammaland too.
    let europol = daemon
        .start_item(
            "session-decision",
            json!({"title": "Cooperation agreement with Europol"}),
        )
        .await;
    daemon.ok(&["agenda", &session, "add", &europol]);
    let past = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    daemon
        .refused(
            &["email-ballot", &europol, "--until", &past],
            "the deadline must be in the future",
            &europol,
        )
        .await;
    // From the meeting page: its form offers a week; three days are chosen.
    browser.client.goto(&meeting).await.unwrap();
    let form = browser
        .client
        .form(Locator::Css("form[id^=email-ballot-]"))
        .await
        .unwrap();
    let until = (chrono::Utc::now() + chrono::Duration::days(3))
        .with_timezone(&chrono_tz::Europe::Istanbul)
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    form.set_by_name("until", &until).await.unwrap();
    form.submit().await.unwrap();
    daemon
        .wait_item(&europol, "the email ballot", |i| {
            i["ballots"][0]["in_session"].is_null()
        })
        .await;
    let by_mail = smtp
        .mail_where("the email ballot to Gammaland", |m| {
            m.to.contains("ccc.first") && m.body.contains("Cooperation agreement with Europol")
        })
        .await;
    assert!(
        by_mail.link().is_some() && !by_mail.subject.contains("meeting"),
        "{}",
        by_mail.subject
    );
    daemon
        .refused(
            &["record", &europol, "--yes", "AAA"],
            "not taken in session",
            &europol,
        )
        .await;

    // A point deferred, a statement for the record, the meeting closed.
    let points = daemon.item(&session).await["meeting"]["agenda"].clone();
    let other = points
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == "Any other business")
        .unwrap()["number"]
        .to_string();
    daemon.ok(&["agenda", &session, "defer", &other]);
    daemon.ok(&[
        "statement",
        &session,
        "--member",
        "CCC",
        "--point",
        "2",
        "Gammaland voted against: the draft leaves out data protection.",
    ]);
    daemon.ok(&["close-meeting", &session]);
    daemon
        .refused(
            &["attendance", &session, "--present", "CCC"],
            "the session is not in its meeting (stage `record`)",
            &session,
        )
        .await;
    assert_eq!(daemon.item(&session).await["stage"], "record");

    // The record, in each language.
    for (lang, heading) in [
        ("en", "Draft summary record"),
        ("fr", "Projet de compte rendu analytique"),
        ("ar", "مشروع المحضر الموجز"),
    ] {
        let html = daemon.ok(&["minutes", &session, "--lang", lang]);
        assert!(html.contains(heading), "{lang}: {html}");
        assert!(html.contains("CPCC/REG/2026/001"), "{lang}: the number");
        assert!(
            html.contains("Gammaland voted against"),
            "{lang}: the statement"
        );
        assert!(
            html.contains("Cooperation with INTERPOL"),
            "{lang}: the member's point"
        );
    }
    let en = daemon.ok(&["minutes", &session, "--lang", "en"]);
    assert!(
        en.contains("Vote by roll-call") && en.contains("Vote by show of hands"),
        "{en}"
    );
    assert!(en.contains("Deferred to a later session"), "{en}");
    let fr = daemon.ok(&["minutes", &session, "--lang", "fr"]);
    assert!(
        fr.contains("adopté") && fr.contains("rejeté") && fr.contains("Oui"),
        "{fr}"
    );

    // The Arabic PDF: shaped and in order as pdftotext reads it, and rendered to look at.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let pdf = dir.join("session-record-ar.pdf");
    let out = daemon
        .cli_command(&["minutes", &session, "--lang", "ar", "--format", "pdf"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"%PDF"), "a PDF");
    std::fs::write(&pdf, &out.stdout).unwrap();
    let text = std::process::Command::new("pdftotext")
        .args([pdf.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (poppler-utils; .ci/run installs it)");
    let text = String::from_utf8_lossy(&text.stdout);
    for expected in ["المحضر الموجز", "CPCC/REG/2026/001", "Alphaland"] {
        assert!(
            text.contains(expected),
            "`{expected}` in the PDF's text:\n{text}"
        );
    }
    let png = dir.join("session-record-ar");
    let rendered = std::process::Command::new("pdftoppm")
        .args([
            "-png",
            "-r",
            "80",
            "-f",
            "1",
            "-l",
            "1",
            pdf.to_str().unwrap(),
            png.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(rendered.success());
    until_blocking("the rendered page", Duration::from_secs(5), || {
        std::fs::read_dir(&dir).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("session-record-ar-")
        })
    });
    let fr = daemon.ok(&["minutes", &session, "--lang", "fr"]);
    assert!(
        fr.contains("Renvoyé à un scrutin par courrier électronique"),
        "{fr}"
    );

    // The draft record is circulated: its hashes enter the log; the next session's agenda
    // opens with its approval and the point deferred.
    let circulated = daemon.ok(&["minutes", &session, "--circulate"]);
    let en_hash = circulated
        .lines()
        .find_map(|l| l.trim().strip_prefix("en  "))
        .unwrap_or_else(|| panic!("{circulated}"))
        .to_string();
    assert_eq!(en_hash.len(), 64, "{circulated}");
    let log = daemon.ok(&["item", &session]);
    assert!(log.contains("record_circulated"), "{log}");
    // The text circulated is kept in the log, and is the text of its hash.
    let kept = daemon
        .cli_command(&["minutes", &session, "--lang", "en", "--as-circulated"])
        .output()
        .unwrap()
        .stdout;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&kept));
    assert_eq!(digest, en_hash, "the circulated text has the logged hash");
    daemon.ok(&["next", &session]);
    assert_eq!(daemon.item(&session).await["outcome"], "held");
    let next = daemon.start_item("council-session", json!({})).await;
    let agenda = daemon.ok(&["agenda", &next]);
    assert!(
        agenda.contains(&format!(
            "Approval of the summary record of the previous session ({session})"
        )),
        "{agenda}"
    );
    assert!(
        agenda.contains("Any other business"),
        "deferred, carried over: {agenda}"
    );
    let approval = &daemon.item(&next).await["meeting"]["agenda"][0];
    assert!(
        approval["explanation"].as_str().unwrap().contains(&en_hash),
        "{approval}"
    );
    browser.close().await;
}
