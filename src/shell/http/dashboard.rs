//! The secretariat's dashboard: server-rendered pages on the admin listener, no JavaScript.
//!
//! Login takes the admin token and keeps it in an HttpOnly, SameSite=Strict cookie. The
//! pages only read: open items and their stage, each open ballot's participation by member
//! (who has voted, and what only for a recorded vote), the register, failed mail.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::{ApiError, App, AppState, COOKIE, Param, constant_time_eq, escape};
use crate::engine::Status;
use crate::mail::{Mail, MailState};

pub fn routes() -> Vec<(Method, &'static str, MethodRouter<Arc<App>>)> {
    vec![
        (Method::GET, "/dashboard", get(overview)),
        (Method::GET, "/dashboard/items/{id}", get(item_page)),
        (Method::GET, "/dashboard/register", get(register)),
        (Method::GET, "/dashboard/outbox", get(outbox)),
    ]
}

/// Login and logout need no session.
pub fn open_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", post(logout))
}

/// The admin token carried by the session cookie, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(COOKIE)?
                .strip_prefix('=')
                .map(String::from)
        })
}

pub fn login_redirect() -> Response {
    Redirect::to("/dashboard/login").into_response()
}

async fn login_form() -> Response {
    layout(
        StatusCode::OK,
        "Secretariat login",
        false,
        r#"<form method="post" action="/dashboard/login"><label for="token">Admin token</label><br>
           <input id="token" name="token" type="password" autocomplete="current-password" required size="40">
           <button type="submit">Log in</button></form>"#,
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// Login and logout are posts too: a page elsewhere must not log a secretary in (to an
/// account it chose) or out.
fn refused_cross_site() -> Response {
    let body = r#"<p class="error" role="alert">Log in and out from this dashboard only.</p><p><a href="/dashboard/login">Log in</a></p>"#;
    layout(StatusCode::FORBIDDEN, "Secretariat login", false, body)
}

async fn login(
    State(app): AppState,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if super::cross_site(&headers, None) {
        return refused_cross_site();
    }
    let given = form.map(|Form(f)| f.token).unwrap_or_default();
    if !constant_time_eq(given.trim().as_bytes(), app.admin_token.as_bytes()) {
        let body = r#"<p class="error" role="alert">That token is not right.</p><p><a href="/dashboard/login">Try again</a></p>"#;
        return layout(StatusCode::UNAUTHORIZED, "Secretariat login", false, body);
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/dashboard; HttpOnly; Secure; SameSite=Strict",
        given.trim()
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response()
}

async fn logout(headers: HeaderMap) -> Response {
    if super::cross_site(&headers, None) {
        return refused_cross_site();
    }
    let cookie =
        format!("{COOKIE}=; Path=/dashboard; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/dashboard/login"),
    )
        .into_response()
}

async fn overview(State(app): AppState) -> Result<Response, ApiError> {
    let mut rows = String::new();
    let mut ended = 0;
    for item in app.items.all() {
        if item.status == Status::Ended {
            ended += 1;
            continue;
        }
        let participation = item
            .ballots
            .iter()
            .rfind(|b| b.result.is_none())
            .map(|b| format!("{} of {} voted", b.cast(), b.electorate.len()))
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><td><a href=\"/dashboard/items/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td></tr>",
            escape(&item.id),
            escape(&app.title_of(&item)),
            escape(&item.workflow),
            escape(&item.stage),
            participation
        ));
    }
    let failed = app
        .store
        .mails::<Mail>()
        .flatten()
        .filter(|m| m.failed)
        .count();
    let body = format!(
        "<h2>Open items</h2><table><thead><tr><th>Item</th><th>Title</th><th>Workflow</th><th>Stage</th><th>Ballot</th></tr></thead><tbody>{}</tbody></table>\
         <p>{ended} ended item(s). <a href=\"/dashboard/register\">Register of adopted acts</a>. \
         <a href=\"/dashboard/outbox\">Failed mail: <strong id=\"failed-mail\">{failed}</strong></a>.</p>",
        if rows.is_empty() {
            "<tr><td colspan=\"5\">No open items.</td></tr>".to_string()
        } else {
            rows
        }
    );
    Ok(layout(StatusCode::OK, "Council dashboard", true, &body))
}

async fn item_page(State(app): AppState, Param(id): Param<String>) -> Result<Response, ApiError> {
    let Some(item) = app.items.get(&id) else {
        return Ok(layout(
            StatusCode::NOT_FOUND,
            "No such item",
            true,
            "<p>There is no such item.</p>",
        ));
    };
    let mut body = format!(
        "<dl><dt>Workflow</dt><dd>{}</dd><dt>Stage</dt><dd id=\"stage\">{}</dd><dt>Status</dt><dd id=\"status\">{}</dd>",
        escape(&item.workflow),
        escape(&item.stage),
        item.status.as_str()
    );
    if let Some(o) = &item.outcome {
        body.push_str(&format!(
            "<dt>Outcome</dt><dd id=\"outcome\">{}</dd>",
            escape(o)
        ));
    }
    if let Some(n) = &item.register_number {
        body.push_str(&format!(
            "<dt>Register number</dt><dd id=\"register-number\">{}</dd>",
            escape(n)
        ));
    }
    body.push_str("</dl>");
    for (i, b) in item.ballots.iter().enumerate() {
        let state = match &b.result {
            Some(r) => format!(
                "closed: <strong>{}</strong> ({})",
                r.verdict.as_str(),
                escape(&r.explanation)
            ),
            None => format!(
                "open until {}",
                b.closes_at
                    .with_timezone(&app.tz)
                    .format("%-d %B %Y, %H:%M %Z")
            ),
        };
        body.push_str(&format!(
            "<h2>Ballot {} ({})</h2><p>{}</p><p>{} of {} members voted.</p><table><thead><tr><th>Member</th><th>Voted</th></tr></thead><tbody>",
            i + 1,
            escape(&b.stage),
            state,
            b.cast(),
            b.electorate.len()
        ));
        for v in b.electorate.iter() {
            let cell = match b.vote(&v.member) {
                Some(choice) if b.recorded => escape(choice),
                Some(_) => "voted".to_string(),
                None => "—".to_string(),
            };
            body.push_str(&format!(
                "<tr><td>{} ({})</td><td>{}</td></tr>",
                escape(&v.member_name),
                escape(&v.member),
                cell
            ));
        }
        body.push_str("</tbody></table>");
        if let Some(r) = &b.result {
            let counts: Vec<String> = r
                .counts
                .iter()
                .map(|(c, n)| format!("{} {n}", escape(c)))
                .collect();
            body.push_str(&format!("<p>Tally: {}</p>", counts.join(", ")));
        }
    }
    body.push_str("<h2>Event log</h2><table><thead><tr><th>#</th><th>At</th><th>Event</th><th>Hash</th></tr></thead><tbody>");
    for r in app.store.events(&id) {
        let r = r?;
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            r.seq,
            r.at.with_timezone(&app.tz).format("%F %T %Z"),
            r.event.kind(),
            &r.hash[..12.min(r.hash.len())]
        ));
    }
    let chain = if app.store.verify_chain(&id)?.is_none() {
        "verified"
    } else {
        "BROKEN"
    };
    body.push_str(&format!(
        "</tbody></table><p>Event chain: <strong id=\"chain\">{chain}</strong></p>"
    ));
    Ok(layout(
        StatusCode::OK,
        &format!("{} — {}", item.id, app.title_of(&item)),
        true,
        &body,
    ))
}

async fn register(State(app): AppState) -> Result<Response, ApiError> {
    let mut rows = String::new();
    for act in app.store.acts() {
        let act = act?;
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"/dashboard/items/{2}\">{2}</a></td><td>{3}</td></tr>",
            escape(&act.number),
            escape(&act.title),
            escape(&act.item),
            act.at.with_timezone(&app.tz).format("%-d %B %Y")
        ));
    }
    let body = format!(
        "<table><thead><tr><th>Number</th><th>Title</th><th>Item</th><th>Adopted</th></tr></thead><tbody>{rows}</tbody></table>"
    );
    Ok(layout(
        StatusCode::OK,
        "Register of adopted acts",
        true,
        &body,
    ))
}

async fn outbox(State(app): AppState) -> Result<Response, ApiError> {
    let mut rows = String::new();
    for m in app.store.mails::<Mail>() {
        let m = m?;
        if m.state() == MailState::Pending {
            continue;
        }
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.to.email),
            escape(&m.template),
            m.state().as_str(),
            m.attempts,
            escape(m.last_error.as_deref().unwrap_or_default())
        ));
    }
    let body = format!(
        "<p>Mail that failed or is waiting for another try. Retry or drop failed mail with the admin API.</p>\
         <table><thead><tr><th>To</th><th>Template</th><th>Status</th><th>Tries</th><th>Last error</th></tr></thead><tbody>{rows}</tbody></table>"
    );
    Ok(layout(
        StatusCode::OK,
        "Mail needing attention",
        true,
        &body,
    ))
}

fn layout(status: StatusCode, title: &str, nav: bool, body: &str) -> Response {
    let nav = if nav {
        r#"<nav><a href="/dashboard">Open items</a> · <a href="/dashboard/register">Register</a> · <a href="/dashboard/outbox">Mail</a>
           <form method="post" action="/dashboard/logout" class="inline"><button type="submit">Log out</button></form></nav>"#
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{0}</title><style>body{{font-family:system-ui,sans-serif;margin:1.5rem;line-height:1.45;color:#1b1b1b}}\
         table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}th,td{{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}}\
         th{{background:#f0f3f7}}nav{{margin-bottom:1rem}}.inline{{display:inline}}dt{{font-weight:bold}}dd{{margin:0 0 .4rem}}\
         .error{{color:#a00}}</style></head><body>{2}<main><h1>{0}</h1>{1}</main></body></html>",
        escape(title),
        body,
        nav
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}
