//! The public listener: the ballot page a delegate reaches from the link in their mail.
//!
//! `GET /ballot/{token}` shows the question, the choices and the member's current vote;
//! `POST /ballot/{token}` with form field `choice` records or changes the vote and shows a
//! receipt (the vote's event hash). A GET never votes. Invalid, forged or foreign tokens get
//! a clear page and a 4xx status, and change nothing.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, App, AppState};
use crate::engine::{Event, Item, Rejection, Status};
use crate::mail;
use crate::token::BallotRef;
use crate::writer::WriteError;

#[derive(Deserialize)]
pub struct VoteForm {
    choice: String,
}

/// What a token leads to, once checked against the stored item.
struct Found {
    r: BallotRef,
    item: Item,
}

fn find(app: &App, token: &str) -> Result<Found, Box<Response>> {
    let refuse = |status: StatusCode, title: &str, text: &str| {
        Box::new(page(status, title, &format!("<p>{}</p>", escape(text))))
    };
    let r = app.key.verify(token).ok_or_else(|| refuse(StatusCode::NOT_FOUND, "Link not valid", "This ballot link is not valid. Please use the link in your most recent ballot mail, or contact the secretariat."))?;
    let item = app.store.item(&r.item).ok().flatten().ok_or_else(|| {
        refuse(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "This ballot no longer exists.",
        )
    })?;
    let voter_ok = item.ballots.get(r.ballot).is_some_and(|b| {
        b.electorate
            .iter()
            .any(|v| v.member == r.member && v.delegate == r.delegate)
    });
    if !voter_ok {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Not in this ballot",
            "This link does not give a vote in this ballot.",
        ));
    }
    Ok(Found { r, item })
}

pub async fn ballot_page(State(app): AppState, Path(token): Path<String>) -> Response {
    match find(&app, &token) {
        Ok(f) => ballot_html(&app, &f, &token, None),
        Err(r) => *r,
    }
}

pub async fn ballot_vote(
    State(app): AppState,
    Path(token): Path<String>,
    form: Result<Form<VoteForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match find(&app, &token) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let Ok(Form(form)) = form else {
        return ballot_html(
            &app,
            &f,
            &token,
            Some((
                StatusCode::BAD_REQUEST,
                "Please choose one of the options.".into(),
            )),
        );
    };
    let event = Event::VoteCast {
        ballot: f.r.ballot,
        member: f.r.member.clone(),
        choice: form.choice.clone(),
    };
    match app.writer.event(f.r.item.clone(), event).await {
        Ok(done) => {
            let b = f.item.ballots.get(f.r.ballot);
            let question = b
                .map(|b| question(&app, &f.item, &b.question))
                .unwrap_or_default();
            let body = format!(
                "<p>Your vote <strong>{}</strong> on “{}” is recorded for {}.</p>\
                 <p>Receipt: <code id=\"receipt\">{}</code></p>\
                 <p>You can change your vote until the ballot closes: <a href=\"/ballot/{}\">back to the ballot</a>.</p>",
                escape(&form.choice),
                escape(&question),
                escape(&f.r.member),
                escape(&done.hash),
                escape(&token)
            );
            page(StatusCode::OK, "Vote recorded", &body)
        }
        Err(WriteError::Rejected(Rejection::BallotClosed | Rejection::Ended)) => page(
            StatusCode::CONFLICT,
            "Ballot closed",
            "<p>This ballot is closed; votes can no longer be cast or changed.</p>",
        ),
        Err(WriteError::Rejected(Rejection::NoSuchChoice(_))) => {
            let refreshed = Found {
                r: f.r.clone(),
                item: f.item.clone(),
            };
            ballot_html(
                &app,
                &refreshed,
                &token,
                Some((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Please choose one of the options.".into(),
                )),
            )
        }
        Err(e) => {
            let status = ApiError::from(e).0;
            page(
                status,
                "Vote not recorded",
                "<p>Your vote could not be recorded. Nothing was changed; please try again in a moment.</p>",
            )
        }
    }
}

fn question(app: &App, item: &Item, text: &str) -> String {
    let defs = app.defs.load();
    let title = defs
        .version(&item.version)
        .map_or(item.workflow.as_str(), |w| w.title.as_str());
    app.templates.load().render_text(
        text,
        &mail::context(&app.roster.council, title, item, None, app.tz),
    )
}

fn ballot_html(app: &App, f: &Found, token: &str, error: Option<(StatusCode, String)>) -> Response {
    let Some(b) = f.item.ballots.get(f.r.ballot) else {
        return page(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "<p>No such ballot.</p>",
        );
    };
    let title = f
        .item
        .inputs
        .get("title")
        .cloned()
        .unwrap_or_else(|| f.item.workflow.clone());
    let closes = b
        .closes_at
        .with_timezone(&app.tz)
        .format("%A %-d %B %Y, %H:%M %Z");
    let current = b.votes.get(&f.r.member);
    let mut body = format!(
        "<p class=\"item\">{} — {}</p><h2 id=\"question\">{}</h2>",
        escape(&app.roster.council),
        escape(&title),
        escape(&question(app, &f.item, &b.question))
    );
    if b.result.is_some() || f.item.status == Status::Ended {
        match &b.result {
            Some(result) => body.push_str(&format!(
                "<p>This ballot is closed. Result: <strong>{}</strong>.</p>",
                result.verdict.as_str()
            )),
            None => body.push_str("<p>This ballot is closed: the item was withdrawn.</p>"),
        }
        if let Some(c) = current {
            body.push_str(&format!(
                "<p>Your vote: <strong id=\"current\">{}</strong></p>",
                escape(c)
            ));
        }
        return page(StatusCode::OK, "Ballot closed", &body);
    }
    if let Some((_, message)) = &error {
        body.push_str(&format!(
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(message)
        ));
    }
    match current {
        Some(c) => body.push_str(&format!("<p>Your current vote: <strong id=\"current\">{}</strong>. You may change it until the ballot closes.</p>", escape(c))),
        None => body.push_str("<p>You have not voted yet.</p>"),
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"/ballot/{}\"><fieldset><legend>Your vote for {}</legend>",
        escape(token),
        escape(&f.r.member)
    ));
    for c in &b.choices {
        let checked = if current == Some(c) { " checked" } else { "" };
        body.push_str(&format!("<label><input type=\"radio\" name=\"choice\" value=\"{0}\" required{1}> {0}</label><br>", escape(c), checked));
    }
    body.push_str(&format!("</fieldset><button type=\"submit\">Cast vote</button></form><p>The ballot closes on {}.</p>", escape(&closes.to_string())));
    page(error.map_or(StatusCode::OK, |(s, _)| s), "Ballot", &body)
}

pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{0}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         label{{display:inline-block;padding:.4rem 0;font-size:1.1rem}}button{{font-size:1.1rem;padding:.5rem 1.5rem}}.error{{color:#a00}}</style></head>\
         <body><main><h1>{0}</h1>{1}</main></body></html>",
        escape(title),
        body
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
