//! Named accounts: the first admin made with the admin token, roles that bound what each
//! person may do (walked over the whole route table), personal tokens, sessions that end,
//! and every act attributed in the item's log, across a restart.

use reqwest::Method;
use serde_json::{Value, json};

use crate::cycle::QUICK;
use crate::harness::{Council, Daemon, ROSTER, TOKEN};

const PASSWORD: &str = "correct horse battery";

/// Makes an account with the admin token.
async fn add(daemon: &Daemon, name: &str, role: &str) {
    let (status, body) = daemon
        .admin(
            Method::POST,
            "/api/users",
            Some(json!({"name": name, "role": role, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Logs `name` in and makes a personal token with its session.
async fn token_of(daemon: &Daemon, name: &str) -> String {
    let cookie = daemon.log_in(name, PASSWORD).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/api/tokens", daemon.admin))
        .header("cookie", cookie)
        .json(&json!({"label": "tests"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("cdt_"), "{body}");
    token
}

/// A GET of a dashboard page with a session cookie: its status and body.
async fn page(daemon: &Daemon, cookie: &str, path: &str) -> (u16, String) {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}{path}", daemon.admin))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn each_person_acts_under_a_role_and_the_log_says_who_did_what() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let mut daemon = council.start();

    // Bad accounts are refused with a reason, and none is made.
    for (body, status, says) in [
        (
            json!({"name": "Amina", "role": "admin", "password": PASSWORD}),
            422,
            "not an account name",
        ),
        (
            json!({"name": "amina", "role": "root", "password": PASSWORD}),
            422,
            "no role `root`",
        ),
        (
            json!({"name": "amina", "role": "admin", "password": "short"}),
            422,
            "12 to 256 characters",
        ),
        (json!({"name": "amina", "role": "admin"}), 400, "password"),
    ] {
        let (got, answer) = daemon.admin(Method::POST, "/api/users", Some(body)).await;
        assert_eq!(got, status, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let (_, users) = daemon.admin(Method::GET, "/api/users", None).await;
    assert_eq!(users["users"], json!([]));

    // The admin token makes the first admin; she makes the others.
    add(&daemon, "amina", "admin").await;
    let (status, _) = daemon
        .admin(
            Method::POST,
            "/api/users",
            Some(json!({"name": "amina", "role": "observer", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 409, "a second `amina`");
    let amina = token_of(&daemon, "amina").await;
    for (name, role) in [("omar", "secretary"), ("lena", "observer")] {
        let (status, body) = daemon
            .admin_as(
                &amina,
                Method::POST,
                "/api/users",
                Some(json!({"name": name, "role": role, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, users) = daemon.admin(Method::GET, "/api/users", None).await;
    let made_by: Vec<(&str, &str)> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap(),
                u["created_by"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        made_by,
        [
            ("amina", "admin token"),
            ("lena", "amina"),
            ("omar", "amina")
        ]
    );
    assert!(!users.to_string().contains("argon2"), "no hash is shown");

    // A wrong password and an unknown name get the same answer.
    assert_eq!(daemon.log_in("omar", "not his password").await, Err(401));
    assert_eq!(daemon.log_in("nobody", PASSWORD).await, Err(401));

    let omar = token_of(&daemon, "omar").await;
    let lena = token_of(&daemon, "lena").await;
    let (_, me) = daemon
        .admin_as(&lena, Method::GET, "/api/account", None)
        .await;
    assert_eq!(
        me,
        json!({"name": "lena", "role": "observer", "session": null})
    );

    // The observer reads and cannot act; the secretary acts and cannot manage accounts.
    let (status, items) = daemon
        .admin_as(&lena, Method::GET, "/api/items", None)
        .await;
    assert_eq!((status, items["total"].clone()), (200, json!(0)));
    let start = json!({"workflow": "quick-adoption", "inputs": {"title": "Attributed"}});
    let (status, refusal) = daemon
        .admin_as(&lena, Method::POST, "/api/items", Some(start.clone()))
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        refusal["error"],
        "this needs the secretary role; lena is observer"
    );
    let (status, _) = daemon
        .admin_as(
            &omar,
            Method::POST,
            "/api/users",
            Some(json!({"name": "x", "role": "admin", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, started) = daemon
        .admin_as(&omar, Method::POST, "/api/items", Some(start))
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    daemon
        .wait_item(&id, "the ballot", |i| i["ballots"][0]["eligible"] == 3)
        .await;
    let (status, _) = daemon
        .admin_as(
            &amina,
            Method::POST,
            &format!("/api/items/{id}/cancel"),
            Some(json!({"reason": "withdrawn by the chair"})),
        )
        .await;
    assert_eq!(status, 200);

    // Who asked for each record; the follow-ups and timers are no one's.
    let by = |item: &Value| -> Vec<(String, Value)> {
        item["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["event"]["type"].as_str().unwrap().to_string(),
                    e["by"].clone(),
                )
            })
            .collect()
    };
    let log = by(&daemon.item(&id).await);
    assert_eq!(
        log.first(),
        Some(&("started".into(), json!("omar"))),
        "{log:?}"
    );
    assert_eq!(
        log.last(),
        Some(&("cancelled".into(), json!("amina"))),
        "{log:?}"
    );
    assert!(
        log[1..log.len() - 1].iter().all(|(_, b)| b.is_null()),
        "{log:?}"
    );
    let item = daemon.item(&id).await;
    assert_eq!(item["chain"]["verified"], true);
    let cookie = daemon.log_in("lena", PASSWORD).await.unwrap();
    let (status, html) = page(&daemon, &cookie, &format!("/dashboard/items/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<td>omar</td>") && html.contains("<td>amina</td>"),
        "{html}"
    );
    assert!(
        !html.contains("id=\"cancel-form\""),
        "an observer gets no forms"
    );
    // Nor links to what she may not do; an admin sees them all.
    let (_, overview) = page(&daemon, &cookie, "/dashboard").await;
    assert!(overview.contains("/dashboard/account"), "{overview}");
    assert!(
        !overview.contains("/dashboard/start") && !overview.contains("/dashboard/users"),
        "{overview}"
    );
    let amina_cookie = daemon.log_in("amina", PASSWORD).await.unwrap();
    let (_, overview) = page(&daemon, &amina_cookie, "/dashboard").await;
    assert!(
        overview.contains("/dashboard/start") && overview.contains("/dashboard/users"),
        "{overview}"
    );

    // The CLI with a personal token acts as its account.
    let (code, out) = daemon
        .cli_command(&["start", "quick-adoption", "--input", "title=From the CLI"])
        .env("COUNCILD_TOKEN", &omar)
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).into_owned(),
            )
        })
        .unwrap();
    assert_eq!(code, 0, "{out}");
    let (_, item) = daemon.cli(&["item", "item-2"]);
    assert!(item.contains("omar"), "{item}");

    // Accounts, sessions and tokens survive a kill -9.
    daemon.kill();
    daemon = council.start();
    let (status, _) = daemon
        .admin_as(&omar, Method::GET, "/api/items", None)
        .await;
    assert_eq!(status, 200, "the token after a restart");
    assert_eq!(
        page(&daemon, &cookie, "/dashboard").await.0,
        200,
        "the session too"
    );

    // A revoked token and a removed account's token and session open nothing.
    let (_, tokens) = daemon
        .admin_as(&omar, Method::GET, "/api/tokens", None)
        .await;
    let tokens = tokens["tokens"].as_array().unwrap().clone();
    assert_eq!(tokens.len(), 1, "omar sees his own: {tokens:?}");
    let token_id = tokens[0]["id"].as_str().unwrap();
    let (status, _) = daemon
        .admin_as(
            &lena,
            Method::DELETE,
            &format!("/api/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "not lena's to revoke");
    let (status, _) = daemon
        .admin_as(
            &omar,
            Method::DELETE,
            &format!("/api/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        daemon
            .admin_as(&omar, Method::GET, "/api/items", None)
            .await
            .0,
        401
    );
    // An admin cannot lock herself out, nor change nothing.
    for (method, body, says) in [
        (Method::DELETE, None, "cannot remove their own account"),
        (
            Method::POST,
            Some(json!({"role": "observer"})),
            "cannot take the admin role",
        ),
        (
            Method::POST,
            Some(json!({})),
            "give a new role or a new password",
        ),
    ] {
        let (status, answer) = daemon
            .admin_as(&amina, method, "/api/users/amina", body)
            .await;
        assert_eq!(status, 422, "{answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let (status, _) = daemon
        .admin_as(&amina, Method::DELETE, "/api/users/lena", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        daemon
            .admin_as(&lena, Method::GET, "/api/items", None)
            .await
            .0,
        401
    );
    assert_eq!(
        page(&daemon, &cookie, "/dashboard").await.0,
        303,
        "back to the login"
    );
    assert_eq!(daemon.log_in("lena", PASSWORD).await, Err(401));
}

#[tokio::test]
async fn a_new_password_ends_the_other_sessions_and_a_session_ends_after_twelve_hours() {
    let council = Council::new(ROSTER, &[]);
    let mut daemon = council.start();
    add(&daemon, "omar", "secretary").await;
    let here = daemon.log_in("omar", PASSWORD).await.unwrap();
    let there = daemon.log_in("omar", PASSWORD).await.unwrap();
    let (_, sessions) = daemon.admin(Method::GET, "/api/sessions", None).await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        2,
        "{sessions}"
    );

    let change = |current: &str, new: &str| {
        let (current, new, cookie) = (current.to_string(), new.to_string(), here.clone());
        let url = format!("{}/api/account/password", daemon.admin);
        async move {
            reqwest::Client::new()
                .post(url)
                .header("cookie", cookie)
                .json(&json!({"current": current, "new": new}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(change("wrong", "a new long passphrase").await, 422);
    assert_eq!(
        page(&daemon, &there, "/dashboard").await.0,
        200,
        "nothing changed"
    );
    assert_eq!(change(PASSWORD, "a new long passphrase").await, 200);
    assert_eq!(
        page(&daemon, &here, "/dashboard").await.0,
        200,
        "this session stays"
    );
    assert_eq!(
        page(&daemon, &there, "/dashboard").await.0,
        303,
        "the other ended"
    );
    assert_eq!(daemon.log_in("omar", PASSWORD).await, Err(401));
    assert!(daemon.log_in("omar", "a new long passphrase").await.is_ok());

    // Logging out ends the session for good, not only in this browser.
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/dashboard/logout", daemon.admin))
        .header("cookie", &here)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(page(&daemon, &here, "/dashboard").await.0, 303);

    // A replaced admin token ends the sessions opened with the old one.
    let with_token = daemon.log_in("", TOKEN).await.unwrap();
    assert_eq!(page(&daemon, &with_token, "/dashboard").await.0, 200);
    daemon.kill();
    let replaced = "another-admin-token-0123456789";
    daemon = Daemon::start(council.path(), &[("COUNCILD_ADMIN_TOKEN", replaced)]);
    assert_eq!(page(&daemon, &with_token, "/dashboard").await.0, 303);

    // Thirteen hours later (the daemon's clock moved on), a session of now has ended.
    let later = daemon
        .log_in("omar", "a new long passphrase")
        .await
        .unwrap();
    daemon.kill();
    daemon = Daemon::start(council.path(), &[("COUNCILD_CLOCK_OFFSET", "13h")]);
    assert_eq!(page(&daemon, &later, "/dashboard").await.0, 303);
    let (_, sessions) = daemon.admin(Method::GET, "/api/sessions", None).await;
    assert_eq!(
        sessions["sessions"],
        json!([]),
        "ended sessions are not listed"
    );
}

#[tokio::test]
async fn login_attempts_are_limited_and_the_right_password_does_not_get_past_the_limit() {
    let council = Council::new(ROSTER, &[]);
    let daemon = council.start();
    add(&daemon, "omar", "secretary").await;
    for attempt in 0..10 {
        assert_eq!(
            daemon.log_in("omar", "guess").await,
            Err(401),
            "attempt {attempt}"
        );
    }
    assert_eq!(daemon.log_in("omar", PASSWORD).await, Err(429));
    // The address is held back too, whatever name it tries.
    assert_eq!(daemon.log_in("", TOKEN).await, Err(429));
    // Tokens are not logins: the API still answers.
    let (status, _) = daemon.admin(Method::GET, "/api/items", None).await;
    assert_eq!(status, 200);
    assert!(daemon.log().contains("login refused: too many attempts"));
    assert!(
        !daemon.log().contains("guess"),
        "what was typed is not logged"
    );
}

/// Someone holding an account's session or token guesses its password no faster through
/// the password change than through the login.
#[tokio::test]
async fn guessing_the_current_password_is_limited_like_a_login() {
    let council = Council::new(ROSTER, &[]);
    let daemon = council.start();
    add(&daemon, "lena", "observer").await;
    let lena = token_of(&daemon, "lena").await;
    let change = json!({"current": "guess", "new": "a brand new passphrase"});
    for attempt in 0..9 {
        let (status, _) = daemon
            .admin_as(
                &lena,
                Method::POST,
                "/api/account/password",
                Some(change.clone()),
            )
            .await;
        assert_eq!(status, 422, "attempt {attempt}");
    }
    let (status, answer) = daemon
        .admin_as(&lena, Method::POST, "/api/account/password", Some(change))
        .await;
    assert_eq!(status, 429, "{answer}");
}

/// Every protected route is walked with a token of each role: below the route's role the
/// answer is 403 and nothing changes.
#[tokio::test]
async fn every_route_refuses_a_role_below_its_own_and_changes_nothing() {
    let council = Council::new(ROSTER, &[("quick.yaml", QUICK)]);
    let daemon = council.start();
    add(&daemon, "lena", "observer").await;
    add(&daemon, "omar", "secretary").await;
    let lena = token_of(&daemon, "lena").await;
    let omar = token_of(&daemon, "omar").await;
    let id = daemon
        .start_item("quick-adoption", json!({"title": "Kept as it is"}))
        .await;
    let before = daemon.item(&id).await;
    let (_, users_before) = daemon.admin(Method::GET, "/api/users", None).await;
    let table = councild::http::protected_route_table();
    let mut walked = 0;
    for (method, pattern, role) in table {
        let path = pattern
            .replace("{id}", &id)
            .replace("{name}", "omar")
            .replace("{ballot}", "0");
        for (token, has) in [
            (&lena, councild::accounts::Role::Observer),
            (&omar, councild::accounts::Role::Secretary),
        ] {
            if has >= role {
                continue;
            }
            walked += 1;
            let resp = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap()
                .request(method.clone(), format!("{}{path}", daemon.admin))
                .bearer_auth(token)
                .json(&json!({"reason": "r", "workflow": "quick-adoption", "name": "x", "role": "admin", "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 403, "{method} {path} as {}", has.as_str());
        }
    }
    assert!(walked >= 20, "{walked}");
    assert_eq!(before["events"], daemon.item(&id).await["events"]);
    assert_eq!(
        users_before,
        daemon.admin(Method::GET, "/api/users", None).await.1
    );
}
