//! A regulation's three authentic versions, through the real daemon, a real SMTP server and
//! a real Chromium: given from the CLI and the dashboard's form, circulated with their
//! SHA-256 and each member's own link, one replaced during the comment period (which starts
//! again), frozen by the ballot, named in the ballot page, the receipts and the register;
//! a version changed on the way, or changed in the store, is refused.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::browser::Browser;
use crate::harness::{Council, Daemon, Mail, ROSTER, TOKEN, free_port, repo};
use crate::smtp::{SmtpServer, smtp_env};

/// The shipped cycle, with a comment period of `comment` and ballots that close once all
/// have voted, run by a daemon mailing through a real SMTP server; an item started on it.
async fn regulation(comment: &str) -> (Council, SmtpServer, Daemon, String) {
    let shipped =
        std::fs::read_to_string(repo().join("workflows/regulation-adoption.yaml")).unwrap();
    let quick = shipped
        .replace("after: 14d", &format!("after: {comment}"))
        .replace("close: at_deadline", "close: when_all_voted");
    assert_ne!(quick, shipped);
    let council = Council::new(ROSTER, &[("regulation-adoption.yaml", &quick)]);
    let smtp = SmtpServer::start(free_port(), &council.path().join("maildir"));
    let env = smtp_env(smtp.port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    let item = daemon
        .start_item(
            "regulation-adoption",
            json!({"title": "Regulation on joint investigation teams"}),
        )
        .await;
    (council, smtp, daemon, item)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The links to texts in a mail's plain-text part.
fn text_links(mail: &Mail) -> Vec<String> {
    mail.body
        .split_whitespace()
        .filter(|w| w.contains("/texts/"))
        .map(str::to_string)
        .collect()
}

fn current(item: &Value, language: &str) -> String {
    let versions = item["documents"][language].as_array().unwrap();
    versions.last().unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_regulation_in_three_authentic_versions_from_circulation_to_the_register() {
    let (council, smtp, daemon, item) = regulation("8s").await;
    let env = smtp_env(smtp.port);
    // Without its texts, nothing is circulated and no time runs.
    let started = daemon.item(&item).await;
    assert_eq!(started["stage"], "circulate");
    assert_eq!(started["timers"], json!({}), "{started}");

    let dir = council.path().join("texts");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        (path.to_str().unwrap().to_string(), text.as_bytes().to_vec())
    };
    let (ar_path, ar) = write(
        "regulation-ar.txt",
        "لائحة فرق التحقيق المشتركة\nالمادة 1: تُنشأ فرق التحقيق المشتركة باتفاق الدول الأعضاء المعنية.\n",
    );
    let (en_path, en) = write(
        "regulation-en.txt",
        "Regulation on joint investigation teams\nArticle 1: Joint investigation teams are set up by agreement of the member states concerned.\n",
    );
    let (en2_path, en2) = write(
        "regulation-en-rev1.txt",
        "Regulation on joint investigation teams\nArticle 1: Joint investigation teams are set up by written agreement of the member states concerned.\n",
    );
    let (fr_path, fr) = write(
        "reglement-fr.txt",
        "Règlement relatif aux équipes communes d'enquête\nArticle premier : Les équipes communes d'enquête sont créées par accord des États membres concernés.\n",
    );

    let out = daemon.ok(&["document", &item, "ar", &ar_path]);
    assert!(
        out.contains(&sha(&ar)) && out.contains("version 1"),
        "{out}"
    );
    daemon.ok(&["document", &item, "en", &en_path]);
    // Refused, and nothing logged: a language the text does not have, the same version
    // again, and bytes whose hash is not the one their sender computed.
    daemon
        .refused(
            &["document", &item, "de", &en_path],
            "the text's languages are ar, en, fr",
            &item,
        )
        .await;
    daemon
        .refused(
            &["document", &item, "en", &en_path],
            "already the current `en` version",
            &item,
        )
        .await;
    let before = daemon.item(&item).await;
    let changed = reqwest::Client::new()
        .put(format!(
            "{}/api/items/{item}/documents/fr?sha256={}",
            daemon.admin,
            sha(&fr)
        ))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain; charset=utf-8")
        .body(fr[..fr.len() - 10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 422);
    let said: Value = changed.json().await.unwrap();
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .contains("nothing is stored"),
        "{said}"
    );
    assert_eq!(
        daemon.item(&item).await["events_count"],
        before["events_count"]
    );
    let (status, _) = daemon
        .admin(
            reqwest::Method::GET,
            &format!("/api/items/{item}/documents/fr"),
            None,
        )
        .await;
    assert_eq!(status, 404, "no French version yet");

    // The French version from the dashboard's form, in Chromium: the comment period starts.
    let browser = Browser::start().await;
    let page = format!("/dashboard/items/{item}");
    let form = browser
        .dashboard_form(&daemon.admin, &page, "form[action$='/documents']")
        .await;
    form.set_by_name("language", "fr").await.unwrap();
    browser
        .client
        .find(Locator::Css("#doc-file"))
        .await
        .unwrap()
        .send_keys(&fr_path)
        .await
        .unwrap();
    form.submit().await.unwrap();
    let page = browser.settle(&sha(&fr)).await;
    assert!(page.contains("reglement-fr.txt"), "{page}");
    browser.screenshot("texts-dashboard-item").await;
    // Its link on the dashboard opens the version, with the dashboard's session.
    browser
        .client
        .goto(&format!(
            "{}/dashboard/items/{item}/documents/fr?version=1",
            daemon.admin
        ))
        .await
        .unwrap();
    let shown = browser.page().await;
    assert!(shown.contains("Article premier"), "{shown}");

    // The circulation notice: in the delegate's language, each version's hash, and the
    // member's own link to it.
    let notice = smtp
        .mail_where("the Arabic circulation notice", |m| {
            m.to.contains("bbb.head") && m.body.contains(&sha(&fr))
        })
        .await;
    assert_eq!(notice.language.as_deref(), Some("ar"));
    for hash in [sha(&ar), sha(&en), sha(&fr)] {
        assert!(notice.body.contains(&hash), "{}", notice.body);
    }
    assert!(notice.body.contains("العربية") && notice.body.contains("Français"));
    let links = text_links(&notice);
    assert_eq!(links.len(), 3, "{}", notice.body);
    let ar_link = links.iter().find(|l| l.ends_with(&sha(&ar))).unwrap();
    let read = reqwest::get(ar_link.as_str()).await.unwrap();
    assert_eq!(read.status(), 200);
    assert_eq!(
        read.headers()["content-security-policy"],
        "sandbox; default-src 'none'"
    );
    assert!(
        read.headers()["repr-digest"]
            .to_str()
            .unwrap()
            .starts_with("sha-256=:")
    );
    assert_eq!(read.bytes().await.unwrap().to_vec(), ar);
    let forged = ar_link.replace("/texts/", "/texts/x");
    assert_eq!(reqwest::get(forged).await.unwrap().status(), 404);
    // A link downloading in a loop is slowed down: 20 at once, then one every 3 s.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(
            reqwest::get(ar_link.as_str())
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    // A version replaced during the comment period: the period starts again, and the
    // notice goes again, saying so.
    let due = |item: &Value| {
        item["timers"]["next@circulate"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let first_due = due(&daemon.item(&item).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = daemon.ok(&["document", &item, "en", &en2_path]);
    assert!(
        out.contains("version 2") && out.contains(&sha(&en2)),
        "{out}"
    );
    let restarted = daemon.item(&item).await;
    assert!(due(&restarted) > first_due, "{restarted}");
    let revised = smtp
        .mail_where("the revised French notice", |m| {
            m.to.contains("aaa.deputy") && m.body.contains(&sha(&en2))
        })
        .await;
    assert!(
        revised.body.contains("remplace le précédent"),
        "{}",
        revised.body
    );

    // The ballot opens on the current versions, and freezes them.
    let voting = daemon
        .wait_item(&item, "the ballot to open", |i| i["stage"] == "vote")
        .await;
    let texts = json!({"ar": sha(&ar), "en": sha(&en2), "fr": sha(&fr)});
    assert_eq!(voting["ballots"][0]["texts"], texts);
    daemon
        .refused(
            &["document", &item, "en", &en_path],
            "the texts are frozen",
            &item,
        )
        .await;
    let ballot = smtp
        .mail_where("the Arabic ballot", |m| {
            m.to.contains("bbb.head") && m.link().is_some()
        })
        .await;
    assert!(ballot.body.contains(&sha(&en2)) && !ballot.body.contains(&sha(&en)));
    let link = ballot.link().unwrap();
    browser.client.goto(&link).await.unwrap();
    let page = browser.page().await;
    for hash in [sha(&ar), sha(&en2), sha(&fr)] {
        assert!(page.contains(&hash), "{page}");
    }
    // The hashes read left to right inside the Arabic page.
    let direction = browser
        .client
        .execute(
            "return getComputedStyle(document.querySelector('#texts code')).direction",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(direction, json!("ltr"));
    browser.screenshot("texts-ballot-ar").await;
    browser.close().await;

    // Everyone votes; each receipt names the versions; the act is registered with them.
    for (head, choice) in [
        ("aaa.head", "yes"),
        ("bbb.head", "yes"),
        ("ccc.first", "no"),
    ] {
        let mail = smtp
            .mail_where("a ballot", |m| m.to.contains(head) && m.link().is_some())
            .await;
        let (status, _) = daemon.vote(&mail.link().unwrap(), choice).await;
        assert_eq!(status, 200);
    }
    let receipt = smtp
        .mail_where("Betaland's receipt", |m| {
            m.to.contains("bbb.head") && m.body.contains("الإيصال")
        })
        .await;
    assert!(receipt.body.contains(&sha(&fr)), "{}", receipt.body);
    let adopted = daemon
        .wait_item(&item, "the adoption", |i| i["outcome"] == "adopted")
        .await;
    let number = adopted["register_number"].as_str().unwrap();
    let (_, register) = daemon
        .admin(reqwest::Method::GET, "/api/registers", None)
        .await;
    let act = register["acts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["number"] == number)
        .unwrap_or_else(|| panic!("{register}"));
    assert_eq!(act["texts"], texts);
    let csv = daemon.admin_text("/dashboard/register.csv").await;
    assert!(csv.contains(&format!("en:{}", sha(&en2))), "{csv}");
    let notice = smtp
        .mail_where("the adoption notice", |m| {
            m.to.contains("aaa.head") && m.body.contains(number)
        })
        .await;
    assert!(notice.body.contains(&sha(&en2)), "{}", notice.body);
    // Each earlier version is still there, by its number or its hash.
    let (status, _) = daemon
        .admin(
            reqwest::Method::GET,
            &format!("/api/items/{item}/documents/en?version=1"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(current(&adopted, "en"), sha(&en2));

    // A version changed in the store is found when it is read, and never served.
    daemon.kill();
    {
        let db = councild::store::open_db(&council.path().join("data/store")).unwrap();
        let tree = db.open_tree("documents").unwrap();
        let mut bytes = tree.get(sha(&ar)).unwrap().unwrap().to_vec();
        bytes[0] ^= 1;
        tree.insert(sha(&ar), bytes).unwrap();
        db.flush().unwrap();
    }
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    let (status, said) = daemon
        .admin(
            reqwest::Method::GET,
            &format!("/api/items/{item}/documents/ar"),
            None,
        )
        .await;
    assert_eq!(status, 500);
    assert!(
        said["error"]
            .as_str()
            .unwrap()
            .contains("the stored text was changed"),
        "{said}"
    );
    let (status, _) = daemon
        .admin(
            reqwest::Method::GET,
            &format!("/api/items/{item}/documents/fr"),
            None,
        )
        .await;
    assert_eq!(status, 200, "the others are whole");
    // The same file given again makes the copy whole (and logs nothing: the item has ended).
    daemon
        .refused(
            &["document", &item, "ar", &ar_path],
            "the item has ended",
            &item,
        )
        .await;
    let (status, _) = daemon
        .admin(
            reqwest::Method::GET,
            &format!("/api/items/{item}/documents/ar"),
            None,
        )
        .await;
    assert_eq!(status, 200, "repaired");
}

/// The ballot link in the mail to `to` whose text holds `marker`.
async fn link_where(smtp: &SmtpServer, to: &str, marker: &str) -> String {
    let what = format!("a ballot mail to {to} with `{marker}`");
    let mail = smtp
        .mail_where(&what, |m| {
            m.to.contains(to) && m.body.contains(marker) && m.link().is_some()
        })
        .await;
    mail.link().unwrap()
}

/// Gives each `(language, text)` as the item's version from a file, with the CLI; the files'
/// paths.
fn give_texts(
    daemon: &Daemon,
    council: &Council,
    item: &str,
    texts: &[(&str, &str)],
) -> Vec<String> {
    let dir = council.path().join("texts");
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (language, text) in texts {
        let path = dir.join(format!("regulation-{language}.txt"));
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap().to_string();
        daemon.ok(&["document", item, language, &path]);
        paths.push(path);
    }
    paths
}

/// Every member with a vote votes `choice` on the ballot the markers name (by language).
async fn all_vote(daemon: &Daemon, smtp: &SmtpServer, en: &str, ar: &str, choice: &str) {
    for (head, marker) in [("aaa.head", en), ("bbb.head", ar), ("ccc.first", en)] {
        let link = link_where(smtp, head, marker).await;
        // To this daemon, which may have been restarted on another port.
        let link = format!(
            "{}{}",
            daemon.public,
            &link[link.find("/ballot/").unwrap()..]
        );
        assert_eq!(daemon.vote(&link, choice).await.0, 200, "{head}");
    }
}

#[tokio::test]
async fn two_amendments_one_adopted_one_rejected_and_the_register_names_the_amended_texts() {
    let (council, smtp, daemon, item) = regulation("25s").await;
    let texts = [
        (
            "ar",
            "المادة 1: تُنشأ فرق التحقيق المشتركة باتفاق الدول الأعضاء المعنية.\nالمادة 2: تُحدَّد مدة الفريق في الاتفاق.\n",
        ),
        (
            "en",
            "Article 1: Joint investigation teams are set up by agreement of the member states concerned.\nArticle 2: The agreement sets the team's term.\n",
        ),
        (
            "fr",
            "Article premier : Les équipes communes d'enquête sont créées par accord des États membres concernés.\nArticle 2 : L'accord fixe la durée de l'équipe.\n",
        ),
    ];
    give_texts(&daemon, &council, &item, &texts);

    // Betaland proposes amendment 1 from its Arabic link, in Arabic and English.
    let notice = smtp
        .mail_where("the Arabic notice with its amendment link", |m| {
            m.to.contains("bbb.head") && m.body.contains("/amend/")
        })
        .await;
    let link = notice
        .body
        .split_whitespace()
        .find(|w| w.contains("/amend/"))
        .unwrap()
        .to_string();
    let browser = Browser::start().await;
    browser.client.goto(&link).await.unwrap();
    let page = browser.page().await;
    assert!(
        page.contains("dir=\"rtl\"") && page.contains("اقتراح تعديل"),
        "{page}"
    );
    let form = browser.client.form(Locator::Css("form")).await.unwrap();
    for (field, value) in [
        ("passage.ar", "باتفاق الدول الأعضاء"),
        ("replacement.ar", "باتفاق مكتوب بين الدول الأعضاء"),
        ("passage.en", "by agreement"),
        ("replacement.en", "by written agreement"),
        ("reason", "الاتفاق المكتوب أيسر في التحقق منه."),
    ] {
        form.set_by_name(field, value).await.unwrap();
    }
    browser.screenshot("amendment-form-ar").await;
    form.submit().await.unwrap();
    let done = browser.settle("id=\"number\"").await;
    assert!(done.contains("سُجّل تعديلكم"), "{done}");
    browser.screenshot("amendment-proposed-ar").await;
    // A passage that is not in the text is refused in the delegate's language.
    let refused = reqwest::Client::new()
        .post(&link)
        .form(&[
            ("passage.en", "by unanimous consent"),
            ("replacement.en", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(page.contains("غير واردة في النسخة الحالية"), "{page}");

    // Alphaland's amendment 2, recorded by the secretariat and ruled on from the dashboard.
    daemon.ok(&[
        "amend",
        &item,
        "--member",
        "AAA",
        "--lang",
        "en",
        "--passage",
        "The agreement sets the team's term.",
        "--replacement",
        "The team serves for one year.",
    ]);
    let page = format!("/dashboard/items/{item}");
    let form = browser
        .dashboard_form(&daemon.admin, &page, "form[action$='/amendments/2/ruling']")
        .await;
    form.set_by_name("receivable", "yes").await.unwrap();
    form.set_by_name("rank", "1").await.unwrap();
    form.submit().await.unwrap();
    let page = browser.settle("receivable, rank 1").await;
    assert!(page.contains("باتفاق مكتوب بين الدول الأعضاء"), "{page}");
    browser.screenshot("amendments-dashboard").await;
    browser.close().await;
    daemon
        .refused(
            &["rule", &item, "9", "--receivable"],
            "the text has no amendment 9",
            &item,
        )
        .await;
    daemon.ok(&["rule", &item, "1", "--receivable", "--rank", "2"]);
    let shown = daemon.ok(&["item", &item]);
    assert!(
        shown.contains("amendment 1 by BBB (ar, en): receivable, rank 2"),
        "{shown}"
    );

    // After the comment period, amendment 2 (rank 1) is voted first, and rejected; then
    // amendment 1, adopted.
    daemon
        .wait_item(&item, "the amendment votes", |i| i["stage"] == "amendments")
        .await;
    all_vote(&daemon, &smtp, "amendment 2 to", "التعديل رقم 2", "no").await;
    // Each amendment's ballot says in its subject which amendment it is on.
    for (head, subject) in [
        ("aaa.head", "ballot on amendment 2 to"),
        ("bbb.head", "اقتراع بشأن التعديل رقم 2 على"),
    ] {
        smtp.mail_where(subject, |m| {
            m.to.contains(head) && m.subject.contains(subject)
        })
        .await;
    }
    all_vote(&daemon, &smtp, "amendment 1 to", "التعديل رقم 1", "yes").await;
    let voting = daemon
        .wait_item(&item, "the final vote", |i| i["stage"] == "vote")
        .await;
    let fates: Vec<&Value> = voting["amendments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["fate"])
        .collect();
    assert_eq!(fates, [&json!("adopted"), &json!("rejected")]);
    // The final ballot is on the texts with amendment 1 applied, in both its languages.
    let amended = |language: &str| {
        let text = texts.iter().find(|(l, _)| *l == language).unwrap().1;
        match language {
            "ar" => text.replace("باتفاق الدول الأعضاء", "باتفاق مكتوب بين الدول الأعضاء"),
            "en" => text.replace("by agreement", "by written agreement"),
            _ => text.to_string(),
        }
    };
    let adopted_texts = json!({
        "ar": sha(amended("ar").as_bytes()),
        "en": sha(amended("en").as_bytes()),
        "fr": sha(amended("fr").as_bytes()),
    });
    assert_eq!(voting["ballots"][2]["texts"], adopted_texts, "{voting}");
    let (status, _) = daemon
        .admin(
            reqwest::Method::GET,
            &format!("/api/items/{item}/documents/en"),
            None,
        )
        .await;
    assert_eq!(status, 200);

    all_vote(
        &daemon,
        &smtp,
        "Adopt the regulation",
        "هل تُعتمد اللائحة",
        "yes",
    )
    .await;
    let adopted = daemon
        .wait_item(&item, "the adoption", |i| i["outcome"] == "adopted")
        .await;
    let number = adopted["register_number"].as_str().unwrap().to_string();
    let (_, register) = daemon
        .admin(reqwest::Method::GET, "/api/registers", None)
        .await;
    let act = register["acts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["number"] == number.as_str())
        .unwrap_or_else(|| panic!("{register}"));
    assert_eq!(act["texts"], adopted_texts);
    // The adoption notice tells each amendment's fate, in the reader's language.
    let notice = smtp
        .mail_where("the French adoption notice", |m| {
            m.to.contains("aaa.deputy") && m.body.contains(&number)
        })
        .await;
    assert!(
        notice.body.contains("1 (BBB) : adopté") && notice.body.contains("2 (AAA) : rejeté"),
        "{}",
        notice.body
    );
    assert!(
        notice.body.contains(&sha(amended("en").as_bytes())),
        "{}",
        notice.body
    );
    // The tally under the French labels, not the choices' ids, and why in French, not the
    // rule's formula.
    assert!(
        notice.body.contains("Oui 3") && !notice.body.contains("yes 3"),
        "{}",
        notice.body
    );
    assert!(
        notice.body.contains("La majorité requise a été atteinte.") && !notice.body.contains(">="),
        "{}",
        notice.body
    );
}

/// An adopted amendment whose text cannot be read from the store (its stored copy changed)
/// stops the item before the final vote, says so on the dashboard, the API and the CLI, and
/// goes on once the file is given again and the secretariat retries.
#[tokio::test]
async fn amended_texts_that_cannot_be_made_stop_the_item_until_the_secretariat_retries() {
    let (council, smtp, daemon, item) = regulation("6s").await;
    let en = "Article 1: Teams are set up by agreement.\n";
    let texts = [
        ("ar", "المادة 1: تُنشأ الفرق باتفاق.\n"),
        ("en", en),
        (
            "fr",
            "Article premier : Les équipes sont créées par accord.\n",
        ),
    ];
    let paths = give_texts(&daemon, &council, &item, &texts);
    daemon.ok(&[
        "amend",
        &item,
        "--member",
        "AAA",
        "--lang",
        "en",
        "--passage",
        "by agreement",
        "--replacement",
        "by written agreement",
    ]);
    daemon.ok(&["rule", &item, "1", "--receivable", "--rank", "1"]);
    daemon
        .wait_item(&item, "the amendment vote", |i| i["stage"] == "amendments")
        .await;

    // The English version's stored copy is changed while its amendment is voted on.
    daemon.kill();
    {
        let db = councild::store::open_db(&council.path().join("data/store")).unwrap();
        let tree = db.open_tree("documents").unwrap();
        let mut bytes = tree.get(sha(en.as_bytes())).unwrap().unwrap().to_vec();
        bytes[0] ^= 1;
        tree.insert(sha(en.as_bytes()), bytes).unwrap();
        db.flush().unwrap();
    }
    let env = smtp_env(smtp.port);
    let daemon = Daemon::start(council.path(), &[(env[0].0, env[0].1.as_str())]);
    all_vote(&daemon, &smtp, "amendment 1 to", "التعديل رقم 1", "yes").await;
    let stopped = daemon
        .wait_item(&item, "the item waiting for its texts", |i| {
            i["awaiting"] == "texts"
        })
        .await;
    assert_eq!(
        stopped["stage"], "amendments",
        "no final vote on the unamended text"
    );
    assert_eq!(stopped["ballots"].as_array().unwrap().len(), 1, "{stopped}");
    let page = daemon.admin_text(&format!("/dashboard/items/{item}")).await;
    assert!(
        page.contains("could not be made") && page.contains("/consolidate"),
        "{page}"
    );
    // A retry before the repair fails again, and says which version (the retry is logged).
    let (code, said) = daemon.cli(&["consolidate", &item]);
    assert_ne!(code, 0, "{said}");
    let why = format!("the en version {} cannot be read", sha(en.as_bytes()));
    assert!(said.contains(&why), "{said}");
    assert_eq!(daemon.item(&item).await["awaiting"], "texts");

    // The file given again repairs the copy (it is the current version: nothing is logged); the
    // retry makes the amended texts and the final vote opens on them.
    daemon
        .refused(
            &["document", &item, "en", &paths[1]],
            "already the current",
            &item,
        )
        .await;
    daemon.ok(&["consolidate", &item]);
    let voting = daemon
        .wait_item(&item, "the final vote", |i| i["stage"] == "vote")
        .await;
    let amended = en.replace("by agreement", "by written agreement");
    assert_eq!(current(&voting, "en"), sha(amended.as_bytes()));
    assert_eq!(
        voting["ballots"][1]["texts"]["en"],
        json!(sha(amended.as_bytes()))
    );
    assert_eq!(voting["awaiting"], Value::Null);
}
