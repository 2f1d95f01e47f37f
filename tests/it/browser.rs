//! Pages in a real headless Chromium (driven through chromedriver): a delegate votes from
//! the link in their mail, and the secretariat follows an item on the dashboard from start
//! to adoption. Screenshots land in `target/tmp/screenshots/` for a person to look at.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::cycle::QUICK;
use crate::harness::{Council, ROSTER, TOKEN, gave_up, poll, until, until_blocking};

/// chromedriver on a free port, with a headless Chromium session; both end when dropped.
pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian packages chromium and chromium-driver; .ci/run installs them)");
        until_blocking("chromedriver to start", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1100,900",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": "/usr/bin/chromium", "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser {
            driver,
            client,
            _profile: profile,
        }
    }

    /// Clicks an element (what follows may navigate asynchronously: see `settle`).
    pub async fn click(&self, locator: Locator<'_>) {
        self.client
            .find(locator)
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn page(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Saves a screenshot and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Waits (without reloading) until the current page contains `text`: clicks and form
    /// submissions navigate asynchronously.
    pub async fn settle(&self, text: &str) -> String {
        let what = format!("`{text}` to appear");
        until(what, Duration::from_secs(30), async || {
            let page = self.page().await;
            if page.contains(text) {
                Ok(page)
            } else {
                Err(page)
            }
        })
        .await
    }

    /// Reloads until the page contains `text`.
    pub async fn wait_for(&self, url: &str, text: &str) -> String {
        // Every 200 ms, not 50: each look reloads the page.
        let within = Duration::from_secs(30);
        let reloaded = poll(within, Duration::from_millis(200), async || {
            self.client.goto(url).await.unwrap();
            let page = self.page().await;
            if page.contains(text) {
                Ok(page)
            } else {
                Err(page)
            }
        });
        let what = format!("`{text}` to appear on {url}");
        reloaded
            .await
            .unwrap_or_else(|page| gave_up(what, within, page))
    }

    /// Logs in to the dashboard at `admin` with the test's admin token (as before any
    /// account exists: no name, the token as the password).
    pub async fn log_in(&self, admin: &str) {
        self.log_in_as(admin, "", TOKEN).await;
        self.settle("No open items").await;
    }

    /// Logs in with the test's admin token, opens `path` of the admin listener at `admin`,
    /// and finds the form that `css` selects there.
    pub async fn dashboard_form(
        &self,
        admin: &str,
        path: &str,
        css: &str,
    ) -> fantoccini::elements::Form {
        self.log_in_as(admin, "", TOKEN).await;
        self.settle("Council dashboard").await;
        self.client.goto(&format!("{admin}{path}")).await.unwrap();
        self.client.form(Locator::Css(css)).await.unwrap()
    }

    /// Fills in and sends the login form.
    pub async fn log_in_as(&self, admin: &str, name: &str, password: &str) {
        self.client
            .goto(&format!("{admin}/dashboard/login"))
            .await
            .unwrap();
        let form = self.client.form(Locator::Css("form")).await.unwrap();
        form.set_by_name("name", name).await.unwrap();
        form.set_by_name("password", password).await.unwrap();
        form.submit().await.unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

#[tokio::test]
async fn the_secretariat_follows_an_item_on_the_dashboard_while_a_delegate_votes_in_the_browser() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    let browser = Browser::start().await;
    let b = &browser.client;

    // The dashboard asks for a login first; a wrong one is refused.
    b.goto(&format!("{}/dashboard", daemon.admin))
        .await
        .unwrap();
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/dashboard/login")
    );
    browser.log_in_as(&daemon.admin, "", "not-the-token").await;
    browser
        .settle("The name or the password is not right")
        .await;
    browser.log_in(&daemon.admin).await;

    let id = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation on forensic data exchange"}),
        )
        .await;
    let overview = format!("{}/dashboard", daemon.admin);
    browser
        .wait_for(&overview, "Regulation on forensic data exchange")
        .await;
    browser.click(Locator::LinkText(&id)).await;
    browser.settle("Event log").await;
    let item_url = format!("{}/dashboard/items/{id}", daemon.admin);
    browser.wait_for(&item_url, "0 of 3 members voted").await;

    // A delegate opens the ballot link from their mail, votes, changes the vote.
    let links = until("the ballot mail", Duration::from_secs(30), async || {
        let links: Vec<String> = council.mails().iter().filter_map(|m| m.link()).collect();
        (links.len() == 3).then_some(links)
    })
    .await;
    let delegate = Browser::start().await;
    let d = &delegate.client;
    d.goto(&links[0]).await.unwrap();
    assert!(
        delegate
            .text("#question")
            .await
            .contains("Regulation on forensic data exchange")
    );
    delegate.click(Locator::Css("input[value=no]")).await;
    delegate.click(Locator::Css("button[type=submit]")).await;
    delegate.settle("id=\"receipt\"").await;
    assert!(
        delegate.text("#receipt").await.len() == 64,
        "a receipt hash"
    );
    delegate.click(Locator::Css("main a")).await;
    delegate.settle("Your current vote").await;
    assert_eq!(delegate.text("#current").await, "no");
    delegate.click(Locator::Css("input[value=yes]")).await;
    delegate.click(Locator::Css("button[type=submit]")).await;
    delegate.settle("id=\"choice\">yes<").await;
    let receipt = delegate.text("#receipt").await;
    assert_eq!(receipt.len(), 64);
    delegate.screenshot("ballot-receipt").await;
    d.goto(&links[0]).await.unwrap();
    assert_eq!(delegate.text("#current").await, "yes");
    delegate.screenshot("ballot-page").await;

    // The Arabic delegate's page is in Arabic, right to left.
    let arabic = council
        .mails()
        .into_iter()
        .find(|m| m.to.contains("bbb.head@") && m.link().is_some())
        .and_then(|m| m.link())
        .expect("a ballot mail to the Arabic-speaking head of delegation");
    d.goto(&arabic).await.unwrap();
    let html = delegate.page().await;
    assert!(
        html.contains("lang=\"ar\"") && html.contains("dir=\"rtl\""),
        "{html}"
    );
    assert!(
        html.contains("لم تصوّتوا بعد"),
        "not voted yet, in Arabic: {html}"
    );
    delegate.screenshot("ballot-page-ar").await;

    // The dashboard shows who has voted, not what.
    let page = browser.wait_for(&item_url, "1 of 3 members voted").await;
    assert!(page.contains("Alphaland (AAA)</td><td>voted"), "{page}");
    assert!(
        !page.contains(">yes<"),
        "a secret ballot does not show choices"
    );
    for link in &links[1..] {
        assert_eq!(daemon.vote(link, "yes").await.0, 200);
    }
    let year = chrono::Utc::now().format("%Y").to_string();
    browser
        .wait_for(&item_url, &format!("CPCC/REG/{year}/001"))
        .await;
    assert_eq!(browser.text("#outcome").await, "adopted");
    assert_eq!(browser.text("#chain").await, "verified");
    let shot = browser.screenshot("dashboard-item").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    browser.click(Locator::LinkText("Register")).await;
    browser.settle("Register of adopted acts").await;
    assert!(
        browser
            .page()
            .await
            .contains(&format!("CPCC/REG/{year}/001"))
    );
    browser.screenshot("dashboard-register").await;

    // Logging out ends the session.
    b.goto(&overview).await.unwrap();
    browser.click(Locator::Css("nav button")).await;
    b.wait()
        .for_url(&url::Url::parse(&format!("{}/dashboard/login", daemon.admin)).unwrap())
        .await
        .unwrap();
    b.goto(&overview).await.unwrap();
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/dashboard/login")
    );
    delegate.close().await;
    browser.close().await;
}

/// A secretary does the work without a terminal: the first admin (logged in with the admin
/// token) gives her an account on the accounts page; she logs in with it, starts the
/// ratification of the statute from the form built from the workflow's inputs, records a
/// member's deposit chosen from the roster, and cancels the item with a reason; every step
/// lands in the item's log, as the admin API would have done it, with her name on it.
#[tokio::test]
async fn a_secretary_starts_an_item_and_records_a_deposit_from_the_dashboard() {
    let roster =
        std::fs::read_to_string(crate::harness::repo().join("config/council.yaml")).unwrap();
    let statute =
        std::fs::read_to_string(crate::harness::repo().join("workflows/statute-ratification.yaml"))
            .unwrap();
    let council = Council::new(
        &roster,
        &[("statute.yaml", &statute), ("quick.yaml", QUICK)],
    );
    let daemon = council.start();
    let browser = Browser::start().await;
    let b = &browser.client;
    browser.log_in(&daemon.admin).await;

    // The account, made on the accounts page; then the admin token's session ends.
    browser.click(Locator::LinkText("Users")).await;
    browser.settle("Add an account").await;
    let add = b
        .form(Locator::Css("form[action='/dashboard/users']"))
        .await
        .unwrap();
    add.set_by_name("name", "amina").await.unwrap();
    add.set_by_name("password", "a long passphrase")
        .await
        .unwrap();
    add.submit().await.unwrap();
    browser.settle("<td>amina</td>").await;
    assert!(browser.page().await.contains("by admin token"));
    browser.screenshot("dashboard-accounts").await;
    browser.click(Locator::Css("nav button")).await;
    browser.settle("Account name").await;
    browser
        .log_in_as(&daemon.admin, "amina", "a long passphrase")
        .await;
    browser.settle("No open items").await;

    // Start: one form per workflow, its fields from the workflow's inputs.
    browser.click(Locator::Id("start-item")).await;
    browser.settle("Statute").await;
    let start = b
        .form(Locator::Css("#start-statute-ratification"))
        .await
        .unwrap();
    start
        .set_by_name("input.title", "Statute of the CPCC")
        .await
        .unwrap();
    start.submit().await.unwrap();
    let page = browser
        .settle("Record <code>ratification_deposited</code>")
        .await;
    assert!(page.contains("open-for-ratification"), "{page}");
    let url = b.current_url().await.unwrap();
    assert!(url.path().ends_with("/dashboard/items/item-1"), "{url}");

    // A deposit by Türkiye, chosen from the roster.
    b.find(Locator::Css("#member option[value=\"TUR\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let signal = b.form(Locator::Css("#signal-form")).await.unwrap();
    signal
        .set_by_name("note", "instrument deposited on 25 November 2026")
        .await
        .unwrap();
    signal.submit().await.unwrap();
    browser.settle("<td>signal</td>").await;
    assert_eq!(
        browser.text("#signals tbody tr td:nth-child(2)").await,
        "Türkiye (TUR)"
    );
    browser.screenshot("dashboard-deposit").await;
    let item = daemon.item("item-1").await;
    let signals = item["signals"].as_array().cloned().unwrap_or_default();
    assert_eq!(signals.len(), 1, "{item}");
    assert_eq!(signals[0]["member"], "TUR", "{item}");

    // Cancel with a reason; the item ends, the reason is in its log.
    let cancel = b.form(Locator::Css("#cancel-form")).await.unwrap();
    cancel
        .set_by_name("reason", "opened by mistake")
        .await
        .unwrap();
    cancel.submit().await.unwrap();
    browser.settle("<td>cancelled</td>").await;
    let item = daemon.item("item-1").await;
    assert_eq!(item["status"], "ended", "{item}");
    let log = item["events"].to_string();
    assert!(log.contains("opened by mistake"), "{log}");
    // Each of her acts carries her name, on the page as in the log; follow-ups none.
    let mut by = Vec::new();
    for cell in b
        .find_all(Locator::Css("#log tbody tr td:nth-child(4)"))
        .await
        .unwrap()
    {
        by.push(cell.text().await.unwrap());
    }
    assert_eq!(by.first().map(String::as_str), Some("amina"), "{by:?}");
    assert_eq!(by.iter().filter(|n| *n == "amina").count(), 3, "{by:?}");
    let events = item["events"].as_array().unwrap();
    for e in events {
        let kind = e["event"]["type"].as_str().unwrap();
        let asked = ["started", "signal", "cancelled"].contains(&kind);
        assert_eq!(e["by"] == "amina", asked, "{e}");
    }
    b.goto(&format!("{}/dashboard/ended", daemon.admin))
        .await
        .unwrap();
    browser.settle("Statute of the CPCC").await;
    browser.close().await;
}

/// Where each character of `needle` (the first match in an element of `selector`) is laid
/// out: the left edge of every character, in page pixels.
const LAYOUT: &str = r#"
const [selector, needle] = arguments;
for (const root of document.querySelectorAll(selector)) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  let text = '', nodes = [];
  while (walker.nextNode()) { nodes.push([walker.currentNode, text.length]); text += walker.currentNode.data; }
  const at = text.indexOf(needle);
  if (at < 0) continue;
  const lefts = [];
  for (let i = at; i < at + needle.length; i++) {
    const [node, start] = nodes.filter(([, s]) => s <= i).pop();
    const range = document.createRange();
    range.setStart(node, i - start);
    range.setEnd(node, i - start + 1);
    lefts.push(range.getBoundingClientRect().left);
  }
  return lefts;
}
return null;
"#;

/// The Arabic ballot page, as an Arabic reader sees it (measured on the laid-out page, not
/// read from the source): the Latin title keeps its own order and sits after the council's
/// name, reading right to left; the English question ends with its `?`; the deadline's
/// offset reads `UTC+03:00`, not `03:00+UTC`.
#[tokio::test]
async fn the_arabic_ballot_page_keeps_latin_text_numbers_and_punctuation_in_place() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation on liaison officers"}),
        )
        .await;
    let mail = council.ballot_mail("bbb.head@").await;
    let browser = Browser::start().await;
    browser.client.goto(&mail.link().unwrap()).await.unwrap();
    browser.settle("dir=\"rtl\"").await;
    let lefts = async |selector: &str, needle: &str| -> Vec<f64> {
        let found = browser
            .client
            .execute(LAYOUT, vec![json!(selector), json!(needle)])
            .await
            .unwrap();
        serde_json::from_value(found.clone())
            .unwrap_or_else(|_| panic!("`{needle}` in {selector}: {found}"))
    };
    let increasing = |xs: &[f64]| xs.windows(2).all(|w| w[0] < w[1]);

    // The title, a left-to-right run inside the right-to-left line, after the council's name.
    let title = lefts(".item", "Regulation on liaison officers").await;
    assert!(increasing(&[title[0], title[11], title[29]]), "{title:?}");
    let council_name = lefts(".item", "Test Council").await;
    assert!(
        council_name[0] > title[29],
        "the name first, on the right: {council_name:?} {title:?}"
    );

    // The question: English, so its `?` is at its right end, after the closing quote.
    let question = lefts("#question", "Adopt “Regulation on liaison officers”?").await;
    let n = question.len();
    assert!(
        increasing(&[question[0], question[n - 2], question[n - 1]]),
        "{question:?}"
    );

    // The deadline's offset, in its own order.
    let offset = lefts("p", "UTC+03:00").await;
    assert!(increasing(&offset), "{offset:?}");
    let shot = browser.screenshot("ballot-page-ar-bidi").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // The Arabic ballot mail's HTML part, as a mail client shows it: the same.
    let html = council.path().join("ballot-ar.html");
    std::fs::write(&html, mail.html.as_deref().unwrap()).unwrap();
    browser
        .client
        .goto(&format!("file://{}", html.display()))
        .await
        .unwrap();
    browser.settle("dir=\"rtl\"").await;
    let question = lefts("body", "Adopt “Regulation on liaison officers”?").await;
    let n = question.len();
    assert!(
        increasing(&[question[0], question[n - 2], question[n - 1]]),
        "{question:?}"
    );
    let offset = lefts("body", "UTC+03:00").await;
    assert!(increasing(&offset), "{offset:?}");
    browser.screenshot("ballot-mail-ar-bidi").await;
    browser.close().await;
}
