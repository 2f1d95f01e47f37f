//! What a valid link, a page elsewhere or another local user can do: each bounded.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Council, ROSTER, TOKEN, until};

/// One link that votes as fast as it can (yes, no, yes, …) gets a burst of votes, then a
/// clear "try again" page, and fills neither the log nor the outbox.
#[tokio::test]
async fn a_link_that_votes_too_often_is_told_to_wait_and_changes_nothing() {
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let daemon = council.start();
    let id = daemon
        .start_item(
            "quick-adoption",
            json!({"title": "Regulation voted in a loop"}),
        )
        .await;
    let link = council.ballot_mail("aaa.head@").await.link().unwrap();
    let before = daemon.item(&id).await["events"].as_array().unwrap().len();
    let mut answers = Vec::new();
    for i in 0..40 {
        let choice = ["yes", "no"][i % 2];
        let resp = reqwest::Client::new()
            .post(&link)
            .form(&[("choice", choice)])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let retry = resp.headers().get("retry-after").cloned();
        let page = resp.text().await.unwrap();
        if status == 429 {
            assert_eq!(retry.as_ref().map(|v| v.to_str().unwrap()), Some("60"));
            assert!(page.contains("try again in a minute"), "{page}");
        }
        answers.push(status);
    }
    let accepted = answers.iter().filter(|s| **s == 200).count();
    assert_eq!(accepted, 10, "{answers:?}");
    assert!(answers[10..].iter().all(|s| *s == 429), "{answers:?}");
    let after = daemon.item(&id).await["events"].as_array().unwrap().len();
    assert_eq!(
        after - before,
        10,
        "one event per vote taken, none for the others"
    );
    // Another delegation's link is not held back.
    let other = council
        .mails()
        .into_iter()
        .filter(|m| m.to.contains("bbb.head@"))
        .find_map(|m| m.link())
        .unwrap();
    assert_eq!(daemon.vote(&other, "yes").await.0, 200);
    let metrics = daemon.metrics().await;
    assert!(
        metrics.contains("councild_votes_limited_total 30"),
        "{metrics}"
    );
}

/// The dashboard's login and logout refuse posts from another site's page, as votes do.
#[tokio::test]
async fn login_and_logout_refuse_cross_site_posts() {
    let council = Council::new(ROSTER, &[]);
    let daemon = council.start();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let host = daemon.admin.trim_start_matches("http://");
    for (path, origin, fetch_site, expected) in [
        ("/dashboard/login", Some("https://evil.example"), None, 403),
        ("/dashboard/login", None, Some("cross-site"), 403),
        ("/dashboard/logout", Some("https://evil.example"), None, 403),
        ("/dashboard/logout", None, Some("same-site"), 403),
        // From the dashboard itself: the browser names this very host.
        (
            "/dashboard/login",
            Some(&*format!("http://{host}")),
            Some("same-origin"),
            303,
        ),
        (
            "/dashboard/logout",
            Some(&*format!("http://{host}")),
            None,
            303,
        ),
    ] {
        let mut request = http
            .post(format!("{}{path}", daemon.admin))
            .form(&[("name", ""), ("password", TOKEN)]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        let cookie = resp.headers().get("set-cookie").is_some();
        assert_eq!(status, expected, "{path} from {origin:?} / {fetch_site:?}");
        assert_eq!(
            cookie,
            expected == 303,
            "{path}: a cookie only when allowed"
        );
    }
}

/// The data folder (every vote, and every personal ballot link in the mail files) is its
/// owner's alone.
#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let daemon = council.start();
    daemon
        .start_item("quick-adoption", json!({"title": "Private mail"}))
        .await;
    until("the ballot mail", Duration::from_secs(30), async || {
        !council.mails().is_empty()
    })
    .await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let data = council.path().join("data");
    assert_eq!(mode(&data), 0o700, "data/");
    let mut files = vec![data.join("secret.key"), data.join("store/db")];
    for entry in std::fs::read_dir(council.mail_dir()).unwrap() {
        files.push(entry.unwrap().path());
    }
    for file in files {
        assert_eq!(
            mode(&file) & 0o077,
            0,
            "{}: {:o}",
            file.display(),
            mode(&file)
        );
    }
}

/// A path parameter the admin API cannot read (not UTF-8, not a number) gets the API's JSON
/// error naming it, as every other refusal does, and changes nothing.
#[tokio::test]
async fn admin_paths_that_do_not_read_get_a_json_error() {
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let daemon = council.start();
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Test"}))
        .await;
    let deadline = json!({"until": "2030-01-01T00:00:00Z"});
    for (method, path, body) in [
        (reqwest::Method::GET, "/api/items/%FF%FE".to_string(), None),
        (
            reqwest::Method::POST,
            "/api/items/%C3/cancel".to_string(),
            Some(json!({"reason": "x"})),
        ),
        (
            reqwest::Method::POST,
            format!("/api/items/{id}/ballots/first/deadline"),
            Some(deadline),
        ),
        (reqwest::Method::DELETE, "/api/outbox/%80".to_string(), None),
    ] {
        let (status, body) = daemon.admin(method.clone(), &path, body).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            !error.is_empty(),
            "{method} {path}: not the JSON error: {body}"
        );
    }
    let item = daemon.item(&id).await;
    assert_eq!(item["status"], "open", "{item}");
}

/// Every form of the dashboard that acts (start, signal, extend, cancel, retry, drop) is
/// refused when posted from another site's page, even with the secretary's session, and
/// changes nothing; from the dashboard itself the same post is done.
#[tokio::test]
async fn dashboard_actions_refuse_cross_site_posts() {
    let council = Council::new(ROSTER, &[("quick.yaml", crate::cycle::QUICK)]);
    let daemon = council.start();
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Guarded"}))
        .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = daemon.log_in("", TOKEN).await.unwrap();
    let ours = format!("http://{}", daemon.admin.trim_start_matches("http://"));
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/dashboard/items".into(),
            vec![("workflow", "quick-adoption"), ("input.title", "Forged")],
        ),
        (
            format!("/dashboard/items/{id}/signal"),
            vec![("name", "x"), ("member", "AAA")],
        ),
        (
            format!("/dashboard/items/{id}/ballots/0/extend"),
            vec![("until", "2030-01-01T10:00")],
        ),
        (
            format!("/dashboard/items/{id}/cancel"),
            vec![("reason", "forged")],
        ),
        ("/dashboard/outbox/item-1.0.0.0/retry".into(), vec![]),
        ("/dashboard/outbox/item-1.0.0.0/drop".into(), vec![]),
    ];
    for (path, form) in &posts {
        for (origin, site) in [
            (Some("https://evil.example"), None),
            (None, Some("cross-site")),
            (Some("null"), None),
        ] {
            let mut request = http
                .post(format!("{}{path}", daemon.admin))
                .header("cookie", &cookie)
                .form(form);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some(site) = site {
                request = request.header("sec-fetch-site", site);
            }
            let status = request.send().await.unwrap().status().as_u16();
            assert_eq!(status, 403, "{path} from {origin:?} / {site:?}");
        }
    }
    let item = daemon.item(&id).await;
    assert_eq!(item["status"], "open", "{item}");
    let kinds = item["events"].to_string();
    for kind in ["\"signal\"", "\"cancelled\"", "\"deadline_extended\""] {
        assert!(!kinds.contains(kind), "{kind} recorded: {item}");
    }
    let (_, list) = daemon.admin(reqwest::Method::GET, "/api/items", None).await;
    assert_eq!(list["total"], 1, "{list}");
    // The same cancel from the dashboard's own page is done.
    let resp = http
        .post(format!("{}/dashboard/items/{id}/cancel", daemon.admin))
        .header("cookie", &cookie)
        .header("origin", &ours)
        .header("sec-fetch-site", "same-origin")
        .form(&[("reason", "withdrawn")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let item = daemon.item(&id).await;
    assert_eq!(item["status"], "ended");
    assert!(
        item["events"].to_string().contains("\"cancelled\""),
        "{item}"
    );
}
