//! The two HTTP listeners: public ballot pages for delegates, and the admin API.
//!
//! Handlers stay thin: parse, send an event to the writer, wait for the durable answer,
//! render. A GET never votes (mail scanners follow links). On the admin listener every
//! route but `/healthz` needs `Authorization: Bearer <admin token>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::Utc;
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::definition::Definitions;
use crate::engine::{Event, Item, Rejection, Status, counts};
use crate::mail::{self, Templates};
use crate::observe::{self, Metrics, RequestLabels};
use crate::roster::Roster;
use crate::store::Store;
use crate::token::{BallotRef, Key};
use crate::writer::{Handle, WriteError};

/// Largest request body accepted, on both listeners.
const MAX_BODY: usize = 64 * 1024;

pub struct App {
    pub store: Store,
    pub writer: Handle,
    pub defs: Arc<Definitions>,
    pub roster: Arc<Roster>,
    pub templates: Arc<Templates>,
    pub key: Key,
    pub admin_token: String,
    pub tz: Tz,
    pub started: Instant,
    pub metrics: Arc<Metrics>,
}

type AppState = State<Arc<App>>;

pub fn public_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/ballot/{token}", get(ballot_page).post(ballot_vote))
        .layer(middleware::from_fn_with_state(app.clone(), count_request))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

pub fn admin_router(app: Arc<App>) -> Router {
    let protected = Router::new()
        .route("/status", get(status))
        .route(
            "/metrics",
            get(|State(app): AppState| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    app.metrics.render(),
                )
            }),
        )
        .route("/api/items", get(list_items).post(start_item))
        .route("/api/items/{id}", get(show_item))
        .route("/api/items/{id}/signals/{name}", post(signal))
        .route("/api/registers", get(registers))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .layer(middleware::from_fn_with_state(app.clone(), count_request))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Counts each request by its route pattern (never the token in the path) and status.
async fn count_request(State(app): AppState, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    app.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

async fn require_token(State(app): AppState, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let ok = given.is_some_and(|g| constant_time_eq(g.as_bytes(), app.admin_token.as_bytes()));
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": "missing or wrong admin token"})),
        )
            .into_response();
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An API error: a status and a message the caller can act on.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            tracing::error!(error = %self.1, "request failed");
        }
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        let status = match &e {
            WriteError::Rejected(
                Rejection::MissingInput(_)
                | Rejection::UnknownInput(_)
                | Rejection::BadInput(..)
                | Rejection::NoSuchChoice(_)
                | Rejection::NoSuchBallot,
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            WriteError::Rejected(_) => StatusCode::CONFLICT,
            WriteError::NoItem(_) | WriteError::NoWorkflow(_) => StatusCode::NOT_FOUND,
            WriteError::Store(_) | WriteError::Closed => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    workflow: String,
    #[serde(default)]
    inputs: BTreeMap<String, Value>,
}

async fn start_item(
    State(app): AppState,
    body: Result<Json<StartBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let inputs = body
        .inputs
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), String::from)))
        .collect();
    let done = app.writer.start(body.workflow, inputs).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": done.item, "event": done.hash })),
    )
        .into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    workflow: Option<String>,
    status: Option<String>,
}

async fn list_items(
    State(app): AppState,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut items = Vec::new();
    for item in app.store.items() {
        let item = item?;
        if q.workflow.as_ref().is_some_and(|w| *w != item.workflow)
            || q.status
                .as_ref()
                .is_some_and(|s| *s != status_name(item.status))
        {
            continue;
        }
        items.push(item_json(&item));
    }
    Ok(Json(json!({ "items": items })))
}

async fn show_item(State(app): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let item = app
        .store
        .item(&id)?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no item `{id}`")))?;
    let events: Vec<Value> = app.store.events(&id).map(|r| r.map(|r| json!({"seq": r.seq, "at": r.at, "event": r.event, "prev": r.prev, "hash": r.hash}))).collect::<Result<_, _>>()?;
    let broken = app.store.verify_chain(&id)?;
    let mut out = item_json(&item);
    out["events"] = json!(events);
    out["chain"] = json!({ "verified": broken.is_none(), "broken_at": broken });
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalBody {
    member: Option<String>,
    #[serde(default)]
    data: Value,
}

async fn signal(
    State(app): AppState,
    Path((id, name)): Path<(String, String)>,
    body: Result<Json<SignalBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    if let Some(m) = &body.member
        && app.roster.member(m).is_none()
    {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no member `{m}` in the roster"),
        ));
    }
    let members = app.roster.members.len() as u64;
    let eligible = app.roster.members.iter().filter(|m| m.voting_right).count() as u64;
    let event = Event::Signal {
        name,
        member: body.member,
        data: body.data,
        members,
        eligible,
    };
    let done = app.writer.event(id.clone(), event).await?;
    let item = app.store.item(&id)?.map(|i| item_json(&i));
    Ok(Json(json!({ "event": done.hash, "item": item })))
}

async fn registers(State(app): AppState) -> Result<Json<Value>, ApiError> {
    let acts: Vec<_> = app.store.acts().collect::<Result<_, _>>()?;
    Ok(Json(json!({ "acts": acts })))
}

async fn status(State(app): AppState) -> Result<Json<Value>, ApiError> {
    let mut by_stage: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut by_outcome: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    let mut open_ballots = Vec::new();
    let now = Utc::now();
    for item in app.store.items() {
        let item = item?;
        match item.status {
            Status::Open => {
                *by_stage
                    .entry(item.workflow.clone())
                    .or_default()
                    .entry(item.stage.clone())
                    .or_default() += 1;
                *running.entry(item.version.clone()).or_default() += 1;
            }
            Status::Ended => {
                *by_outcome
                    .entry(item.workflow.clone())
                    .or_default()
                    .entry(item.outcome.clone().unwrap_or_default())
                    .or_default() += 1
            }
        }
        for (i, b) in item
            .ballots
            .iter()
            .enumerate()
            .filter(|(_, b)| b.result.is_none())
        {
            open_ballots.push(json!({"item": item.id, "ballot": i, "stage": b.stage, "cast": b.votes.len(), "eligible": b.electorate.len(), "closes_at": b.closes_at, "seconds_left": (b.closes_at - now).num_seconds().max(0)}));
        }
    }
    let definitions: Vec<Value> = app.defs.all_current().map(|w| json!({"name": w.name, "version": w.version, "items_running": running.get(&w.version).copied().unwrap_or(0)})).collect();
    let (mut pending, mut retrying, mut failed, mut oldest) = (0u64, 0u64, 0u64, None);
    for row in app.store.outbox.iter() {
        let Ok((k, v)) = row else { continue };
        let Ok(m) = crate::store::decode::<mail::Mail>(&k, &v) else {
            continue;
        };
        match (m.failed, m.attempts) {
            (true, _) => failed += 1,
            (false, 0) => pending += 1,
            _ => retrying += 1,
        }
        if !m.failed {
            oldest =
                Some(oldest.map_or(m.created_at, |o: chrono::DateTime<Utc>| o.min(m.created_at)));
        }
    }
    let next_timer = app.store.first_timer()?.map(|k| k.due);
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "store_bytes": app.store.size_on_disk(),
        "definitions": definitions,
        "items": { "open_by_stage": by_stage, "ended_by_outcome": by_outcome, "total": app.store.item_count() },
        "open_ballots": open_ballots,
        "outbox": { "pending": pending, "retrying": retrying, "failed": failed, "oldest_seconds": oldest.map(|o| (now - o).num_seconds()),
                    "sent_since_start": app.metrics.mail_sent.get() },
        "timers": { "count": app.store.timer_count(), "next_due": next_timer },
        "last_errors": observe::recent_errors(),
    })))
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Ended => "ended",
    }
}

/// The API's view of an item.
pub fn item_json(item: &Item) -> Value {
    let ballots: Vec<Value> = item
        .ballots
        .iter()
        .map(|b| {
            json!({
                "stage": b.stage, "question": b.question, "choices": b.choices,
                "opened_at": b.opened_at, "closes_at": b.closes_at,
                "eligible": b.electorate.len(), "cast": b.votes.len(),
                "counts": counts(b).choices,
                "result": b.result.as_ref().map(|r| json!({"verdict": r.verdict.as_str(), "explanation": r.explanation, "reason": r.reason, "closed_at": r.closed_at})),
            })
        })
        .collect();
    json!({
        "id": item.id, "workflow": item.workflow, "version": item.version,
        "stage": item.stage, "status": status_name(item.status), "outcome": item.outcome,
        "register_number": item.register_number, "inputs": item.inputs,
        "started_at": item.started_at, "entered_at": item.entered_at,
        "ballots": ballots, "signals": item.signals, "timers": item.timers, "events_count": item.seq,
    })
}

// ---- ballot pages ----

#[derive(Deserialize)]
struct VoteForm {
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

async fn ballot_page(State(app): AppState, Path(token): Path<String>) -> Response {
    match find(&app, &token) {
        Ok(f) => ballot_html(&app, &f, &token, None),
        Err(r) => *r,
    }
}

async fn ballot_vote(
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
    let title = app
        .defs
        .version(&item.version)
        .map_or(item.workflow.as_str(), |w| w.title.as_str());
    app.templates.render_text(
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
    if let Some(result) = &b.result {
        body.push_str(&format!(
            "<p>This ballot is closed. Result: <strong>{}</strong>.</p>",
            result.verdict.as_str()
        ));
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

fn page(status: StatusCode, title: &str, body: &str) -> Response {
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
