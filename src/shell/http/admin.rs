//! The admin API (JSON) and the operators' endpoints: `/status`, `/metrics`, `/readyz`.
//!
//! Every change goes through the writer and is answered only once it is durable; refused
//! requests change nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, App, AppState, Param};
use crate::accounts::{Actor, Role};
use crate::engine::{Event, Item, Status, counts};
use crate::mail::{Mail, MailState};
use crate::observe;

pub fn routes() -> Vec<super::Route> {
    use Role::{Observer, Secretary};
    vec![
        (Method::GET, "/status", Observer, get(status)),
        (Method::GET, "/metrics", Observer, get(metrics)),
        (Method::GET, "/api/items", Observer, get(list_items)),
        (Method::POST, "/api/items", Secretary, post(start_item)),
        (Method::GET, "/api/items/{id}", Observer, get(show_item)),
        (
            Method::POST,
            "/api/items/{id}/signals/{name}",
            Secretary,
            post(signal),
        ),
        (
            Method::POST,
            "/api/items/{id}/cancel",
            Secretary,
            post(cancel),
        ),
        (
            Method::POST,
            "/api/items/{id}/ballots/{ballot}/deadline",
            Secretary,
            post(extend),
        ),
        (Method::POST, "/api/reload", Secretary, post(reload)),
        (Method::GET, "/api/outbox", Observer, get(list_outbox)),
        (
            Method::POST,
            "/api/outbox/{id}/retry",
            Secretary,
            post(retry_mail),
        ),
        (
            Method::DELETE,
            "/api/outbox/{id}",
            Secretary,
            delete(drop_mail),
        ),
        (Method::GET, "/api/registers", Observer, get(registers)),
    ]
}

/// A JSON body, or a 400 that says what is wrong with it.
pub(super) fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no {what} `{id}`"))
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
    actor: Actor,
    b: Result<Json<StartBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    // A JSON null is no input at all; numbers and booleans are kept as written.
    let inputs = b
        .inputs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), String::from)))
        .collect();
    let done = app
        .writer
        .start(b.workflow, inputs, Some(actor.name))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": done.item, "event": done.hash })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemFilter {
    pub workflow: Option<String>,
    pub stage: Option<String>,
    pub status: Option<String>,
    /// Text to find in the id, the workflow or an input (case-insensitive).
    pub q: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

impl ItemFilter {
    pub fn matches(&self, item: &Item) -> bool {
        let q = self.q.as_deref().map(str::to_lowercase);
        self.workflow.as_ref().is_none_or(|w| *w == item.workflow)
            && self.stage.as_ref().is_none_or(|s| *s == item.stage)
            && self
                .status
                .as_ref()
                .is_none_or(|s| *s == item.status.as_str())
            && q.is_none_or(|q| {
                let mut text = format!("{} {}", item.id, item.workflow);
                for v in item.inputs.values() {
                    text.push(' ');
                    text.push_str(v);
                }
                text.to_lowercase().contains(&q)
            })
    }
}

async fn list_items(
    State(app): AppState,
    filter: Result<Query<ItemFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) =
        filter.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    known_value("status", filter.status.as_deref(), &["open", "ended"])?;
    let mut items = Vec::new();
    for item in app.items.all() {
        if filter.matches(&item) {
            items.push(item);
        }
    }
    // Oldest first: `item-2` before `item-10`.
    items.sort_by_key(|i| {
        (
            i.id.rsplit('-').next().and_then(|n| n.parse::<u64>().ok()),
            i.id.clone(),
        )
    });
    let total = items.len();
    let page: Vec<Value> = items
        .iter()
        .skip(filter.offset.unwrap_or(0))
        .take(filter.limit.unwrap_or(usize::MAX))
        .map(|i| item_json(i))
        .collect();
    Ok(Json(json!({ "items": page, "total": total })))
}

async fn show_item(
    State(app): AppState,
    Param(id): Param<String>,
) -> Result<Json<Value>, ApiError> {
    let item = app.items.get(&id).ok_or_else(|| not_found("item", &id))?;
    let events: Vec<Value> = app
        .store
        .events(&id)
        .map(|r| r.map(|r| json!({"seq": r.seq, "at": r.at, "event": r.event, "by": r.by, "prev": r.prev, "hash": r.hash})))
        .collect::<Result<_, _>>()?;
    let broken = app.store.verify_chain(&id)?;
    let mut out = item_view(&app, &item);
    out["events"] = json!(events);
    out["chain"] = json!({ "verified": broken.is_none(), "broken_at": broken });
    Ok(Json(out))
}

/// Sends an event about an item, asked for by `by`, and answers with its receipt and the
/// item after it.
pub(super) async fn record(
    app: &App,
    by: &Actor,
    id: String,
    event: Event,
) -> Result<Json<Value>, ApiError> {
    let done = app
        .writer
        .event(id.clone(), event, Some(by.name.clone()))
        .await?;
    let item = app.items.get(&id).map(|i| item_view(app, &i));
    Ok(Json(json!({ "event": done.hash, "item": item })))
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
    actor: Actor,
    Param((id, name)): Param<(String, String)>,
    b: Result<Json<SignalBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    record_signal(&app, &actor, id, name, b.member, b.data).await
}

/// A signal on an item (a ratification deposited, say), for the API and the dashboard.
pub(super) async fn record_signal(
    app: &App,
    by: &Actor,
    id: String,
    name: String,
    member: Option<String>,
    data: Value,
) -> Result<Json<Value>, ApiError> {
    let roster = app.roster.load();
    if let Some(m) = &member
        && roster.member(m).is_none()
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no member `{m}` in the roster"),
        ));
    }
    let members = roster.members.len() as u64;
    let eligible = roster.members.iter().filter(|m| m.voting_right).count() as u64;
    let groups = member
        .as_deref()
        .and_then(|m| roster.member(m))
        .map(|m| m.groups.clone())
        .unwrap_or_default();
    let event = Event::Signal {
        name,
        member,
        data,
        members,
        eligible,
        groups,
    };
    record(app, by, id, event).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: String,
}

async fn cancel(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<CancelBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    record_cancel(&app, &actor, id, b.reason).await
}

/// Cancels an item with a reason, for the API and the dashboard.
pub(super) async fn record_cancel(
    app: &App,
    by: &Actor,
    id: String,
    reason: String,
) -> Result<Json<Value>, ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "give a reason for the cancellation",
        ));
    }
    record(app, by, id, Event::Cancelled { reason }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlineBody {
    closes_at: DateTime<Utc>,
    /// Why, kept in the log and told in the notice.
    reason: Option<String>,
}

async fn extend(
    State(app): AppState,
    actor: Actor,
    Param((id, ballot)): Param<(String, usize)>,
    b: Result<Json<DeadlineBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    record(
        &app,
        &actor,
        id,
        Event::DeadlineExtended {
            ballot,
            closes_at: b.closes_at,
            reason: b.reason.filter(|r| !r.trim().is_empty()),
        },
    )
    .await
}

/// Reads the workflow files and templates again. Invalid files are refused with the
/// validator's messages and the running versions stay in force. The reading runs on a
/// blocking thread, so the async workers keep serving; a reload asked for while one runs
/// is answered 409.
async fn reload(State(app): AppState, actor: Actor) -> Result<Json<Value>, ApiError> {
    let Ok(_running) = app.reload.running.try_lock() else {
        let message = "a reload is already running; try again when it has ended";
        return Err(ApiError(StatusCode::CONFLICT, message.into(), None));
    };
    let problems = |list: Vec<String>| {
        let message = "the definitions on disk have problems; the running versions stay in force";
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            message.into(),
            Some(json!(list)),
        )
    };
    let read = app.clone();
    let (workflows, templates, roster) = tokio::task::spawn_blocking(move || (read.reload.read)())
        .await
        .map_err(|_| problems(vec!["the definitions could not be read".into()]))?
        .map_err(problems)?;
    app.writer.reload(workflows, Some(roster)).await?;
    app.templates.store(Arc::new(templates));
    tracing::info!(by = %actor.name, "definitions reloaded");
    Ok(Json(json!({ "definitions": definitions_json(&app) })))
}

fn definitions_json(app: &App) -> Vec<Value> {
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    for item in app
        .items
        .all()
        .into_iter()
        .filter(|i| i.status == Status::Open)
    {
        *running.entry(item.version.clone()).or_default() += 1;
    }
    app.defs
        .load()
        .all_current()
        .map(|w| json!({"name": w.name, "title": w.title, "version": w.version, "items_running": running.get(&w.version).copied().unwrap_or(0)}))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxFilter {
    status: Option<String>,
}

/// How an outbox row stands: pending (never tried), retrying, or failed.
fn mail_json(m: &Mail) -> Value {
    json!({
        "id": m.id, "item": m.item, "template": m.template, "to": m.to.email, "status": m.state().as_str(),
        "attempts": m.attempts, "next_attempt": m.due(), "last_error": m.last_error, "created_at": m.created_at,
    })
}

async fn list_outbox(
    State(app): AppState,
    f: Result<Query<OutboxFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(f) = f.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    known_value(
        "status",
        f.status.as_deref(),
        &["pending", "retrying", "failed"],
    )?;
    let mut mails = Vec::new();
    for m in app.store.mails::<Mail>() {
        let m = m?;
        if f.status.as_deref().is_none_or(|s| s == m.state().as_str()) {
            mails.push(mail_json(&m));
        }
    }
    Ok(Json(json!({ "mails": mails })))
}

/// A filter's value, refused (400, naming the valid ones) when it is none of `valid`:
/// `?status=closed` would otherwise answer an empty list, as if nothing matched.
fn known_value(name: &str, value: Option<&str>, valid: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !valid.contains(&v) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown {name} `{v}`: use {}", valid.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// A failed mail, or the reason it cannot be acted on.
fn failed_mail(app: &App, id: &str) -> Result<Mail, ApiError> {
    let mail: Mail = app.store.mail(id)?.ok_or_else(|| not_found("mail", id))?;
    if !mail.failed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("mail `{id}` has not failed; it is still being sent"),
        ));
    }
    Ok(mail)
}

async fn retry_mail(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
) -> Result<Json<Value>, ApiError> {
    let mail = retry(&app, &actor, &id).await?;
    Ok(Json(mail_json(&mail)))
}

/// Queues a failed mail again (same id, same Message-ID), for the API and the dashboard.
pub(super) async fn retry(app: &App, by: &Actor, id: &str) -> Result<Mail, ApiError> {
    let mut mail = failed_mail(app, id)?;
    // To the address the roster has now: a bounce is usually fixed there first.
    mail.to = crate::mail::readdressed(&mail.to, &app.roster.load());
    mail.failed = false;
    mail.attempts = 0;
    mail.next_attempt = Some(app.clock.now());
    app.store.put_mail(id, &mail)?;
    app.store.flush().await?;
    app.wake.outbox.notify_one();
    tracing::info!(item = %mail.item, mail = %id, by = %by.name, "failed mail queued again");
    Ok(mail)
}

async fn drop_mail(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
) -> Result<Json<Value>, ApiError> {
    drop_failed(&app, &actor, &id).await?;
    Ok(Json(json!({ "dropped": id })))
}

/// Gives up a failed mail, logged, for the API and the dashboard.
pub(super) async fn drop_failed(app: &App, by: &Actor, id: &str) -> Result<(), ApiError> {
    let mail = failed_mail(app, id)?;
    app.store.remove_mail(id)?;
    app.store.flush().await?;
    tracing::warn!(item = %mail.item, mail = %id, to = %mail.to.email, by = %by.name, "failed mail dropped");
    Ok(())
}

async fn registers(State(app): AppState) -> Result<Json<Value>, ApiError> {
    let acts: Vec<_> = app.store.acts().collect::<Result<_, _>>()?;
    Ok(Json(json!({ "acts": acts })))
}

/// The mail not yet delivered, by state, and when the oldest still to send was queued.
struct Waiting {
    pending: u64,
    retrying: u64,
    failed: u64,
    oldest: Option<DateTime<Utc>>,
}

impl Waiting {
    fn count(app: &App) -> Waiting {
        let mut w = Waiting {
            pending: 0,
            retrying: 0,
            failed: 0,
            oldest: None,
        };
        for m in app.store.mails::<Mail>().flatten() {
            match m.state() {
                MailState::Failed => w.failed += 1,
                MailState::Pending => w.pending += 1,
                MailState::Retrying => w.retrying += 1,
            }
            if !m.failed {
                w.oldest = Some(w.oldest.map_or(m.created_at, |o| o.min(m.created_at)));
            }
        }
        w
    }
}

/// Prometheus metrics; the gauges of what is open and waiting are counted as they are read.
async fn metrics(State(app): AppState) -> Response {
    let m = &app.metrics;
    let open = app
        .items
        .all()
        .iter()
        .filter(|i| i.status == Status::Open)
        .map(|i| i.ballots.iter().filter(|b| b.result.is_none()).count())
        .sum::<usize>();
    m.ballots_open.set(open as i64);
    let waiting = Waiting::count(&app);
    for (state, n) in [
        ("pending", waiting.pending),
        ("retrying", waiting.retrying),
        ("failed", waiting.failed),
    ] {
        m.mail_waiting
            .get_or_create(&crate::observe::StateLabel {
                state: state.to_string(),
            })
            .set(n as i64);
    }
    let age = waiting
        .oldest
        .map_or(0, |o| (app.clock.now() - o).num_seconds().max(0));
    m.mail_oldest_waiting_seconds.set(age);
    m.timers_pending.set(app.store.timer_count() as i64);
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], m.render()).into_response()
}

/// Ready to serve: the store answers, definitions are loaded, mail can go out.
pub async fn ready(State(app): AppState) -> Response {
    let store = app.store.first_timer().is_ok();
    let definitions = app.defs.load().all_current().next().is_some();
    let mail = match &app.config.mail.smtp_url {
        None => std::fs::metadata(app.config.mail_folder()).is_ok_and(|m| m.is_dir()),
        Some(_) => crate::mail::smtp_reachable(app.config.mail.smtp_url.as_deref()).await,
    };
    let ok = store && definitions && mail;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": ok, "store": store, "definitions": definitions, "mail": mail })),
    )
        .into_response()
}

async fn status(State(app): AppState) -> Result<Json<Value>, ApiError> {
    let mut by_stage: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut by_outcome: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut open_ballots = Vec::new();
    let now = app.clock.now();
    for item in app.items.all() {
        match item.status {
            Status::Open => {
                *by_stage
                    .entry(item.workflow.clone())
                    .or_default()
                    .entry(item.stage.clone())
                    .or_default() += 1
            }
            Status::Ended => {
                *by_outcome
                    .entry(item.workflow.clone())
                    .or_default()
                    .entry(item.outcome.clone().unwrap_or_default())
                    .or_default() += 1
            }
        }
        if item.status == Status::Ended {
            continue;
        }
        for (i, b) in item
            .ballots
            .iter()
            .enumerate()
            .filter(|(_, b)| b.result.is_none())
        {
            open_ballots.push(json!({
                "item": item.id, "ballot": i, "stage": b.stage, "cast": b.cast(), "eligible": b.electorate.len(),
                // A vote in session has no deadline: the chair closes it.
                "closes_at": (!b.in_session).then_some(b.closes_at),
                "seconds_left": (!b.in_session).then(|| (b.closes_at - now).num_seconds().max(0)),
            }));
        }
    }
    let waiting = Waiting::count(&app);
    let next_timer = app.store.first_timer()?.map(|k| k.due);
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "store_bytes": app.store.size_on_disk(),
        "definitions": definitions_json(&app),
        "items": { "open_by_stage": by_stage, "ended_by_outcome": by_outcome, "total": app.store.item_count() },
        "open_ballots": open_ballots,
        "outbox": {
            "pending": waiting.pending, "retrying": waiting.retrying, "failed": waiting.failed,
            "oldest_seconds": waiting.oldest.map(|o| (now - o).num_seconds()),
            "sent_since_start": app.metrics.mail_sent.get(),
        },
        "timers": { "count": app.store.timer_count(), "next_due": next_timer },
        "last_errors": observe::recent_errors(),
    })))
}

/// One item as `GET /api/items/{id}` shows it: its fields, a session's agenda and
/// attendance, and the signals standing in its stage against what its rule needs.
pub(super) fn item_view(app: &App, item: &Item) -> Value {
    let mut out = item_json(item);
    super::session::extend_item_json(app, item, &mut out);
    if let Some(p) = signal_progress(app, item) {
        out["signal_progress"] = p;
    }
    out
}

/// "12 of 19": the members whose signal stands in the item's stage (a ratification
/// deposited, say), when each came, those withdrawn, and the count the stage's rule needs
/// with the roster in force.
pub(super) fn signal_progress(app: &App, item: &Item) -> Option<Value> {
    let defs = app.defs.load();
    let on = defs
        .version(&item.version)?
        .stages
        .get(&item.stage)?
        .on_signal
        .clone()?;
    let roster = app.roster.load();
    let members = roster.members.len() as u64;
    let eligible = roster.members.iter().filter(|m| m.voting_right).count() as u64;
    let s = crate::engine::signalled(item, &on);
    let list = |l: &[(String, DateTime<Utc>)]| -> Vec<Value> {
        l.iter()
            .map(|(m, at)| json!({ "member": m, "at": at }))
            .collect()
    };
    Some(json!({
        "signal": on.name, "withdrawal": on.withdrawal, "count": s.count(),
        "needed": crate::engine::signals_needed(&on, members, eligible),
        "standing": list(&s.members), "anonymous": s.anonymous, "withdrawn": list(&s.withdrawn),
    }))
}

/// The API's view of an item.
pub fn item_json(item: &Item) -> Value {
    let ballots: Vec<Value> = item
        .ballots
        .iter()
        .map(|b| {
            // A show of hands has counts but no member's vote: `cast` is what was counted.
            let c = counts(b);
            // A round of an election: the marks of each candidate (and the blank ballots).
            let counts = match b.round {
                // A secret round: nothing is known until the trustees have decrypted it.
                Some(_) if b.sealed.is_some() => match &b.result {
                    Some(r) => r.counts.clone(),
                    None => BTreeMap::new(),
                },
                Some(_) => {
                    let m = crate::engine::marks(b);
                    let mut per: BTreeMap<String, u64> = m.candidates.into_iter().collect();
                    if b.choices.iter().any(|c| c == crate::rules::election::BLANK) {
                        per.insert(crate::rules::election::BLANK.into(), m.blank);
                    }
                    per
                }
                None => c.choices.clone(),
            };
            json!({
                "stage": b.stage, "question": b.question, "choices": b.choices,
                // A vote in session has no deadline: the chair closes it.
                "opened_at": b.opened_at, "closes_at": (!b.in_session).then_some(b.closes_at),
                "eligible": b.electorate.len(), "cast": c.cast(),
                "counts": counts, "texts": b.texts, "amendment": b.amendment, "round": b.round,
                "secret": b.sealed.is_some(),
                "result": b.result.as_ref().map(|r| json!({"verdict": r.verdict.as_str(), "explanation": r.explanation, "reason": r.reason, "closed_at": r.closed_at, "elected": r.elected})),
            })
        })
        .collect();
    json!({
        "id": item.id, "workflow": item.workflow, "version": item.version,
        "stage": item.stage, "status": item.status.as_str(), "outcome": item.outcome,
        "register_number": item.register_number, "inputs": item.inputs,
        "started_at": item.started_at, "entered_at": item.entered_at,
        "ballots": ballots, "signals": item.signals, "timers": item.timers, "events_count": item.seq,
        "documents": item.documents, "amendments": item.amendments,
        "candidates": item.candidates, "standing": item.standing, "elected": item.elected,
        // A fact the item waits for: `texts` when the amended texts could not be made.
        "awaiting": item.awaiting,
    })
}
