//! The secret ballot through the real daemon, a real SMTP server and a real Chromium: three
//! trustees make the election key with `councild trustee`, delegates vote in Chromium (the
//! page encrypts the vote), one changes its vote, two of the three trustees decrypt the
//! tally, `councild verify` checks the public record and fails on each kind of tampering;
//! and nothing in the store or the mail puts a member next to a choice.

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::harness::{Council, Daemon, ROSTER, free_port, repo};
use crate::smtp::{SmtpServer, smtp_env};

const CANDIDATES: [&str; 3] = ["ahmed_al_farsi", "ayse_ozturk", "diallo"];

/// The link `/{kind}/…` in the body of the first mail to `to` whose subject has `subject`.
async fn link_in(smtp: &SmtpServer, to: &str, subject: &str, kind: &str) -> String {
    let what = format!("a mail to {to} about {subject}");
    let mail = smtp
        .mail_where(&what, |m| {
            m.to.contains(to) && m.subject.contains(subject) && m.body.contains(kind)
        })
        .await;
    mail.body
        .split_whitespace()
        .find(|w| w.contains(kind))
        .unwrap_or_else(|| panic!("no {kind} link in {}", mail.body))
        .to_string()
}

/// Every trustee runs `councild trustee` once, in turn (with the box keys' digest when
/// given); what each said.
fn trustees_run(
    daemon: &Daemon,
    links: &[(String, std::path::PathBuf)],
    digest: Option<&str>,
) -> Vec<String> {
    links
        .iter()
        .map(|(link, key)| {
            let mut args = vec!["trustee", link, "--key", key.to_str().unwrap()];
            args.extend(digest.map(|d| ["--keys", d]).into_iter().flatten());
            daemon.ok(&args)
        })
        .collect()
}

/// The digest of the box keys a trustee's run printed.
fn digest_in(said: &str) -> String {
    let after = said
        .split("their digest is ")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {said}"));
    after.chars().take(32).collect()
}

/// Posts an encrypted ballot's JSON to a ballot link, as a script would; the answer.
async fn post_sealed(link: &str, sealed: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(link)
        .form(&[("sealed", sealed)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Votes on a secret ballot page in Chromium: ticks `choice`, sends, and returns the
/// tracker the answer gives.
async fn vote(browser: &Browser, link: &str, choice: &str) -> String {
    browser.client.goto(link).await.unwrap();
    browser.settle("This ballot is secret").await;
    let css = format!("input[data-choice=\"{choice}\"]");
    browser.click(Locator::Css(&css)).await;
    browser.click(Locator::Css("button[type=submit]")).await;
    browser.settle("Receipt").await;
    // The page's script: the tracker given is the one the browser computed.
    browser
        .settle("Your browser computed this same tracker")
        .await;
    browser.text("#tracker").await
}

#[tokio::test]
async fn a_secret_ballot_is_cast_encrypted_tallied_by_two_trustees_and_verified() {
    let source = std::fs::read_to_string(repo().join("workflows/chair-election.yaml")).unwrap();
    let source = source.replace("members: [TUR, SAU, MYS]", "members: [AAA, BBB, CCC]");
    let council = Council::new(ROSTER, &[("chair-election.yaml", &source)]);
    let smtp = SmtpServer::start(free_port(), &council.path().join("maildir"));
    let env = smtp_env(smtp.port);
    // With replies by mail on: a secret ballot's mail still has no reply address.
    let inbound = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start(
        council.path(),
        &[
            (env[0].0, env[0].1.as_str()),
            ("COUNCILD_INBOUND_LISTEN", inbound.as_str()),
        ],
    );
    let item = daemon.start_item("chair-election", json!({})).await;

    // The key ceremony: each trustee's link, from its mail; three runs each.
    let mut links = Vec::new();
    for (to, member) in [
        ("aaa.head", "AAA"),
        ("bbb.head", "BBB"),
        ("ccc.first", "CCC"),
    ] {
        let link = link_in(&smtp, to, "", "/trustee/").await;
        links.push((link, council.path().join(format!("trustee-{member}.json"))));
    }
    let first = trustees_run(&daemon, &links, None);
    assert!(
        first[0].contains("waiting for trustees BBB, CCC"),
        "{}",
        first[0]
    );
    // The last to give its key sees every key: it deals only once the digest is compared,
    // the same for all three; a wrong digest deals nothing.
    let digest = digest_in(&first[2]);
    assert_eq!(
        digest_in(&trustees_run(&daemon, &links[..1], None)[0]),
        digest
    );
    let (code, out) = daemon.cli(&[
        "trustee",
        &links[0].0,
        "--key",
        links[0].1.to_str().unwrap(),
        "--keys",
        "00000000000000000000000000000000",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("are not the ones compared"), "{out}");
    // Before the key is made, the election cannot open.
    daemon.ok(&["nominate", &item, "--name", "Ahmed Al-Farsi"]);
    daemon.ok(&["nominate", &item, "--name", "Ayşe Öztürk"]);
    daemon.ok(&["nominate", &item, "--name", "Diallo"]);
    daemon
        .refused(
            &[
                "candidates",
                &item,
                "ahmed_al_farsi",
                "ayse_ozturk",
                "diallo",
            ],
            "the trustees have not made the election key yet",
            &item,
        )
        .await;
    trustees_run(&daemon, &links, Some(&digest));
    let last = trustees_run(&daemon, &links, Some(&digest));
    assert!(last[2].contains("the election key is made"), "{}", last[2]);
    // A trustee's key file is its own: 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&links[0].1).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the key file is private");
    daemon.ok(&[
        "candidates",
        &item,
        "ahmed_al_farsi",
        "ayse_ozturk",
        "diallo",
    ]);

    // The ballot mail has no reply address: a secret ballot is not answered by mail.
    let ballot_mail = smtp
        .mail_where("round 1's ballot to aaa.head", |m| {
            m.to.contains("aaa.head") && m.link().is_some_and(|l| l.contains("/ballot/"))
        })
        .await;
    assert!(ballot_mail.reply_to.is_none(), "{:?}", ballot_mail.reply_to);
    let a = ballot_mail.link().unwrap();
    let b = link_in(&smtp, "bbb.head", "", "/ballot/").await;
    let c = link_in(&smtp, "ccc.first", "", "/ballot/").await;

    // Without JavaScript nothing can be sent; the page says why. A plain choice posted
    // (as a script would) is refused and changes nothing.
    let (_, page) = daemon.get(&a).await;
    assert!(
        page.contains("needs JavaScript") && page.contains("<noscript>"),
        "{page}"
    );
    assert!(
        !page.contains("name=\"choice\""),
        "no plain choice on a secret form"
    );
    let (status, _) = daemon.vote(&a, "ahmed_al_farsi").await;
    assert_eq!(status, 400);
    // A forged ballot (valid JSON, wrong proofs) is refused.
    let forged = json!({"choices": [], "proofs": [], "overall": []}).to_string();
    assert_eq!(post_sealed(&a, &forged).await.0, 422);
    assert_eq!(daemon.item(&item).await["ballots"][0]["cast"], 0);

    // Gammaland votes for Al-Farsi, then changes to Öztürk; the others vote.
    let browser = Browser::start().await;
    let t1 = vote(&browser, &c, "ahmed_al_farsi").await;
    let tc = vote(&browser, &c, "ayse_ozturk").await;
    assert_ne!(t1, tc, "a new ballot has a new tracker");
    browser.client.goto(&b).await.unwrap();
    browser.settle("اقتراع سري").await;
    browser.screenshot("secret-ballot-ar").await;
    let tb = {
        browser
            .click(Locator::Css("input[data-choice=\"ayse_ozturk\"]"))
            .await;
        browser.click(Locator::Css("button[type=submit]")).await;
        browser.settle("سُجّل").await;
        browser.settle("حسب متصفحكم رمز التتبّع نفسه").await;
        browser.text("#tracker").await
    };
    // Another member's ballot, proofs and all, replayed on Alphaland's link: refused (the
    // proofs are bound to their member).
    let public = daemon.public.clone();
    let (_, record) = daemon
        .get(&format!("{public}/elections/{item}/record.json"))
        .await;
    let record: Value = serde_json::from_str(&record).unwrap();
    let theirs = record["rounds"][0]["ballots"][0]["ballot"].to_string();
    let (status, page) = post_sealed(&a, &theirs).await;
    assert_eq!(status, 422);
    assert!(page.contains("could not be checked"), "{page}");
    let ta = vote(&browser, &a, "ahmed_al_farsi").await;
    browser.screenshot("secret-ballot-recorded").await;

    // Every member voted: the round closes, and waits for the trustees.
    let waiting = daemon
        .wait_item(&item, "the round to wait for its decryption", |i| {
            i["awaiting"] == json!({"decryption": 0})
        })
        .await;
    assert!(waiting["ballots"][0]["result"].is_null(), "{waiting}");
    assert_eq!(
        waiting["ballots"][0]["counts"],
        json!({}),
        "nothing known before"
    );
    // Closed: the page says the count waits, and a late ballot is refused.
    let (_, page) = daemon.get(&a).await;
    assert!(page.contains("the count waits for the trustees"), "{page}");
    let (status, _) = daemon.vote(&a, "ayse_ozturk").await;
    assert_eq!(status, 409);
    // Killed while the sealed tally waits: it comes back as it was (on new ports: the
    // links' tokens stay good).
    let old = daemon.public.clone();
    daemon.kill();
    let env = [
        (env[0].0, env[0].1.as_str()),
        ("COUNCILD_INBOUND_LISTEN", inbound.as_str()),
    ];
    let daemon = Daemon::start(council.path(), &env);
    let back = daemon.item(&item).await;
    assert_eq!(back["awaiting"], waiting["awaiting"]);
    assert_eq!(back["ballots"][0]["cast"], 3);
    for (link, _) in links.iter_mut() {
        *link = link.replace(&old, &daemon.public);
    }
    // The receipts give trackers, never a candidate.
    for (to, tracker) in [("aaa.head", &ta), ("bbb.head", &tb), ("ccc.first", &tc)] {
        let receipt = smtp
            .mail_where("a receipt with its tracker", |m| {
                m.to.contains(to) && m.body.contains(tracker.as_str())
            })
            .await;
        for name in ["Al-Farsi", "Öztürk", "Diallo", "ahmed", "ayse"] {
            assert!(!receipt.body.contains(name), "{name} in {}", receipt.body);
        }
    }
    // Two of the three trustees decrypt; the round is counted.
    let decrypt = link_in(&smtp, "aaa.head", "waits for your decryption", "/trustee/").await;
    let token = |l: &str| l.rsplit('/').next().unwrap().to_string();
    assert_eq!(token(&decrypt), token(&links[0].0));
    trustees_run(&daemon, &links[..2], Some(&digest));
    let done = daemon
        .wait_item(&item, "the election to end", |i| i["status"] == "ended")
        .await;
    assert_eq!(done["outcome"], "elected");
    assert_eq!(done["elected"], json!(["ayse_ozturk"]));
    assert_eq!(
        done["ballots"][0]["counts"],
        json!({"ahmed_al_farsi": 1, "ayse_ozturk": 2, "diallo": 0, "blank": 0})
    );

    // The public list holds the three trackers counted, not the one replaced.
    let public = daemon.public.clone();
    let (status, list) = daemon.get(&format!("{public}/elections/{item}")).await;
    assert_eq!(status, 200);
    for t in [&ta, &tb, &tc] {
        assert!(list.contains(t.as_str()), "{t} in {list}");
    }
    assert!(
        !list.contains(t1.as_str()),
        "the replaced ballot is not counted"
    );

    // `councild verify` checks the record; and names what does not check in one tampered.
    let out = daemon.ok(&["verify", &item]);
    assert!(out.contains("the record checks"), "{out}");
    let (_, record) = daemon
        .get(&format!("{public}/elections/{item}/record.json"))
        .await;
    let record: Value = serde_json::from_str(&record).unwrap();
    let tampered = |name: &str, change: &dyn Fn(&mut Value)| {
        let mut r = record.clone();
        change(&mut r);
        let path = council.path().join(format!("{name}.json"));
        std::fs::write(&path, r.to_string()).unwrap();
        let (code, out) = daemon.cli(&["verify", "--file", path.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {out}");
        out
    };
    let other = record["rounds"][0]["ballots"][0]["ballot"]["choices"][1]["alpha"].clone();
    let out = tampered("ciphertext", &|r| {
        r["rounds"][0]["ballots"][1]["ballot"]["choices"][0]["alpha"] = other.clone();
    });
    assert!(out.contains("its tracker is not the hash"), "{out}");
    let response = record["rounds"][0]["ballots"][0]["ballot"]["proofs"][1][0]["response"].clone();
    let out = tampered("proof", &|r| {
        r["rounds"][0]["ballots"][2]["ballot"]["proofs"][0][0]["response"] = response.clone();
    });
    assert!(out.contains("its proofs do not check"), "{out}");
    let out = tampered("decryption", &|r| {
        let d = r["rounds"][0]["decryptions"]["AAA"][0]["share"].clone();
        r["rounds"][0]["decryptions"]["AAA"][1]["share"] = d;
    });
    assert!(
        out.contains("trustee AAA's decryption does not check"),
        "{out}"
    );
    let out = tampered("dropped", &|r| {
        let list = r["rounds"][0]["ballots"].as_array_mut().unwrap();
        let last = list.len() - 1;
        list.remove(last);
    });
    assert!(out.contains("the tally is not the sum"), "{out}");
    let out = tampered("counts", &|r| {
        r["rounds"][0]["counts"]["ahmed_al_farsi"] = json!(2);
    });
    assert!(out.contains("the counts published are not"), "{out}");
    browser.close().await;

    // Nothing stored puts a member next to a choice: every vote row and every vote in the
    // log is ciphertext; no row of any tree holds a choice in the clear.
    daemon.kill();
    let db = councild::store::open_db(&council.path().join("data/store")).unwrap();
    let hex = |v: &[u8]| !v.is_empty() && v.iter().all(|b| b.is_ascii_hexdigit());
    let mut votes = 0;
    for (_, v) in db.open_tree("votes").unwrap().iter().flatten() {
        assert!(
            hex(&v),
            "a vote row in the clear: {}",
            String::from_utf8_lossy(&v)
        );
        votes += 1;
    }
    assert_eq!(votes, 3, "one row per member, the latest ballot");
    let clear = |text: &str| {
        CANDIDATES.iter().chain(&["blank"]).any(|c| {
            text.contains(&format!("\"choice\":\"{c}"))
                || text.contains(&format!("\"choice\":\"{c}+"))
        })
    };
    // The scan finds a choice in the clear where there is one.
    assert!(clear(r#"{"vote_cast":{"member":"AAA","choice":"diallo"}}"#));
    for name in db.tree_names() {
        for (k, v) in db.open_tree(&name).unwrap().iter().flatten() {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            );
            assert!(
                !clear(&text),
                "a choice in the clear in tree {:?}: {text}",
                String::from_utf8_lossy(&name)
            );
        }
    }
    let log: Vec<Value> = db
        .open_tree("events")
        .unwrap()
        .iter()
        .flatten()
        .filter_map(|(_, v)| serde_json::from_slice(v.get(1..)?).ok())
        .collect();
    let cast: Vec<&Value> = log
        .iter()
        .map(|r| &r["event"])
        .filter(|e| e["type"] == "vote_cast")
        .collect();
    assert_eq!(cast.len(), 4, "four ballots cast, one replaced");
    for v in cast {
        assert!(hex(v["choice"].as_str().unwrap().as_bytes()), "{v}");
    }
}
