//! The secretariat's dashboard: server-rendered pages on the admin listener, no JavaScript.
//!
//! Login and the accounts' pages are in `accounts`. The pages show open and ended items, each open ballot's participation by member (who has
//! voted, and what only for a recorded vote), the register (also as CSV) and the mail
//! needing attention; their forms start an item, record a signal, extend a ballot, cancel
//! an item, retry or drop a failed mail. Forms work without JavaScript; every post is
//! refused when it comes from another site, and does what the admin API does (the same
//! functions, the same refusals).

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{ApiError, App, AppState, Param, escape};
use crate::accounts::{Actor, Role};
use crate::engine::Status;
use crate::mail::{Mail, MailState};

pub fn routes() -> Vec<super::Route> {
    use Role::{Observer, Secretary};
    vec![
        (Method::GET, "/dashboard", Observer, get(overview)),
        (
            Method::GET,
            "/dashboard/items/{id}",
            Observer,
            get(item_page),
        ),
        (Method::GET, "/dashboard/register", Observer, get(register)),
        (Method::GET, "/dashboard/outbox", Observer, get(outbox)),
        (Method::GET, "/dashboard/ended", Observer, get(ended)),
        (
            Method::GET,
            "/dashboard/register.csv",
            Observer,
            get(register_csv),
        ),
        (Method::GET, "/dashboard/start", Secretary, get(start_form)),
        (
            Method::POST,
            "/dashboard/items",
            Secretary,
            post(start_post),
        ),
        (
            Method::POST,
            "/dashboard/items/{id}/signal",
            Secretary,
            post(signal_post),
        ),
        (
            Method::POST,
            "/dashboard/items/{id}/cancel",
            Secretary,
            post(cancel_post),
        ),
        (
            Method::POST,
            "/dashboard/items/{id}/ballots/{ballot}/extend",
            Secretary,
            post(extend_post),
        ),
        (
            Method::POST,
            "/dashboard/outbox/{id}/retry",
            Secretary,
            post(retry_post),
        ),
        (
            Method::POST,
            "/dashboard/outbox/{id}/drop",
            Secretary,
            post(drop_post),
        ),
    ]
}

tokio::task_local! {
    /// The role of the request's actor, while its handler runs (set by the role check), so
    /// that pages offer only what the reader may do.
    pub static ROLE: Role;
}

/// Whether the request's actor may do what `role` may.
fn may(role: Role) -> bool {
    ROLE.try_with(|r| *r >= role).unwrap_or(false)
}

/// The page for an item id that names none.
pub(super) fn no_such_item() -> Response {
    let body = "<p>There is no such item.</p>";
    layout(StatusCode::NOT_FOUND, "No such item", true, body)
}

/// A page refusing an action the actor's role does not allow.
pub fn forbidden(message: &str) -> Response {
    let body = format!(
        "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/dashboard\">Back to the dashboard</a></p>",
        escape(message)
    );
    layout(StatusCode::FORBIDDEN, "Not allowed", true, &body)
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
    let start = match may(Role::Secretary) {
        true => r#"<a href="/dashboard/start" id="start-item">Start an item</a>. "#,
        false => "",
    };
    let body = format!(
        "<h2>Open items</h2><table><thead><tr><th>Item</th><th>Title</th><th>Workflow</th><th>Stage</th><th>Ballot</th></tr></thead><tbody>{}</tbody></table>\
         <p>{start}<a href=\"/dashboard/ended\">{ended} ended item(s)</a>. \
         <a href=\"/dashboard/register\">Register of adopted acts</a>. \
         <a href=\"/dashboard/outbox\">Failed mail: <strong id=\"failed-mail\">{failed}</strong></a>.</p>",
        if rows.is_empty() {
            "<tr><td colspan=\"5\">No open items.</td></tr>".to_string()
        } else {
            rows
        }
    );
    Ok(layout(StatusCode::OK, "Council dashboard", true, &body))
}

async fn item_page(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
) -> Result<Response, ApiError> {
    let Some(item) = app.items.get(&id) else {
        return Ok(no_such_item());
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
    body.push_str(&super::documents::section(
        &app,
        &item,
        may(Role::Secretary),
    ));
    body.push_str(&super::amend::section(&item, may(Role::Secretary)));
    let defs = app.defs.load();
    let workflow = defs.version(&item.version).map(|w| &**w);
    body.push_str(&super::elect::section(
        workflow,
        &item,
        may(Role::Secretary),
        app.tz,
    ));
    if item.meeting.is_some() {
        let base = format!("/dashboard/items/{}", super::path_segment(&item.id));
        body.push_str(&format!(
            "<p><a href=\"{base}/meeting\" id=\"meeting-link\">Agenda and meeting</a> · Summary record: \
             <a href=\"{base}/minutes?lang=en\">English</a> · <a href=\"{base}/minutes?lang=fr\" lang=\"fr\">Français</a> · \
             <a href=\"{base}/minutes?lang=ar\" lang=\"ar\">العربية</a></p>"
        ));
    }
    if let Some(session) = super::session::sitting_session(&app, &item.id) {
        body.push_str(&format!(
            "<p>On the agenda of <a href=\"/dashboard/items/{}/meeting\">{}</a>, sitting now: its vote is recorded there.</p>",
            super::path_segment(&session),
            escape(&session)
        ));
    }
    for (i, b) in item.ballots.iter().enumerate() {
        let state = match &b.result {
            Some(r) => format!(
                "closed: <strong>{}</strong> ({})",
                r.verdict.as_str(),
                escape(&r.explanation)
            ),
            None if b.in_session => "open: taken in session".to_string(),
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
    if !item.signals.is_empty() {
        let roster = app.roster.load();
        let progress = super::admin::signal_progress(&app, &item).map(|p| {
            format!(
                "<p id=\"signal-progress\"><strong>{}</strong> of {} <code>{}</code> standing{}</p>",
                p["count"],
                p["needed"].as_u64().map_or("-".to_string(), |n| n.to_string()),
                escape(p["signal"].as_str().unwrap_or_default()),
                match p["withdrawn"].as_array().map_or(0, Vec::len) {
                    0 => String::new(),
                    n => format!("; {n} withdrawn"),
                }
            )
        });
        body.push_str(&progress.unwrap_or_default());
        body.push_str(&format!(
            "<h2>Signals ({})</h2><table id=\"signals\"><thead><tr><th>Signal</th><th>Member</th><th>At</th><th>Data</th></tr></thead><tbody>",
            item.signals.len()
        ));
        for sig in &item.signals {
            let member = sig.member.as_deref().map_or("-".to_string(), |m| {
                roster
                    .member(m)
                    .map_or(m.to_string(), |x| format!("{} ({m})", x.name))
            });
            let data = if sig.data.is_null() {
                String::new()
            } else {
                sig.data.to_string()
            };
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&sig.name),
                escape(&member),
                sig.at.with_timezone(&app.tz).format("%F %T %Z"),
                escape(&data)
            ));
        }
        body.push_str("</tbody></table>");
    }
    if item.status == Status::Open && actor.role >= Role::Secretary {
        body.push_str(&item_forms(&app, &item));
    }
    body.push_str("<h2>Event log</h2><table id=\"log\"><thead><tr><th>#</th><th>At</th><th>Event</th><th>By</th><th>Hash</th></tr></thead><tbody>");
    for r in app.store.events(&id) {
        let r = r?;
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            r.seq,
            r.at.with_timezone(&app.tz).format("%F %T %Z"),
            r.event.kind(),
            escape(r.by.as_deref().unwrap_or("")),
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
        // The adopted versions, each by its hash.
        let texts: Vec<String> = act
            .texts
            .iter()
            .map(|(l, sha)| {
                format!(
                    "<a href=\"/dashboard/items/{}/documents/{l}?sha256={sha}\" lang=\"{l}\" title=\"SHA-256 {sha}\">{}</a> <code class=\"sha256\">{}</code>",
                    super::path_segment(&act.item),
                    escape(crate::locale::language_name(l)),
                    escape(&sha[..sha.len().min(12)]),
                    l = escape(l),
                    sha = escape(sha),
                )
            })
            .collect();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"/dashboard/items/{2}\">{2}</a></td><td>{3}</td><td>{4}</td></tr>",
            escape(&act.number),
            escape(&act.title),
            escape(&act.item),
            act.at.with_timezone(&app.tz).format("%-d %B %Y"),
            texts.join("<br>")
        ));
    }
    let body = format!(
        "<table><thead><tr><th>Number</th><th>Title</th><th>Item</th><th>Adopted</th><th>Authentic texts</th></tr></thead><tbody>{rows}</tbody></table>\
         <p><a href=\"/dashboard/register.csv\" download>Download as CSV</a></p>"
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
        let actions = if m.failed && may(Role::Secretary) {
            let id = super::path_segment(&m.id);
            format!(
                "<form method=\"post\" action=\"/dashboard/outbox/{id}/retry\" class=\"inline\"><button type=\"submit\">Retry</button></form> \
                 <form method=\"post\" action=\"/dashboard/outbox/{id}/drop\" class=\"inline\"><button type=\"submit\">Drop</button></form>"
            )
        } else {
            String::new()
        };
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.to.email),
            escape(&m.template),
            m.state().as_str(),
            m.attempts,
            escape(m.last_error.as_deref().unwrap_or_default()),
            actions
        ));
    }
    let body = format!(
        "<p>Mail that failed or is waiting for another try. A failed mail is retried with its own \
         Message-ID, or dropped (logged).</p>\
         <table><thead><tr><th>To</th><th>Template</th><th>Status</th><th>Tries</th><th>Last error</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
    );
    Ok(layout(
        StatusCode::OK,
        "Mail needing attention",
        true,
        &body,
    ))
}

pub(super) fn layout(status: StatusCode, title: &str, nav: bool, body: &str) -> Response {
    let nav = if nav {
        let start = match may(Role::Secretary) {
            true => r#" · <a href="/dashboard/start">Start an item</a>"#,
            false => "",
        };
        let users = match may(Role::Admin) {
            true => r#" · <a href="/dashboard/users">Users</a>"#,
            false => "",
        };
        format!(
            r#"<nav><a href="/dashboard">Open items</a>{start} · <a href="/dashboard/ended">Ended items</a> · <a href="/dashboard/register">Register</a> · <a href="/dashboard/outbox">Mail</a> · <a href="/dashboard/account">Account</a>{users}
           <form method="post" action="/dashboard/logout" class="inline"><button type="submit">Log out</button></form></nav>"#
        )
    } else {
        String::new()
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

/// The forms of an open item: its stage's signal, each open ballot's deadline, cancelling.
fn item_forms(app: &App, item: &crate::engine::Item) -> String {
    let id = super::path_segment(&item.id);
    let mut html = String::from("<h2>Act on this item</h2>");
    let defs = app.defs.load();
    let stage = defs
        .version(&item.version)
        .and_then(|w| w.stages.get(&item.stage));
    if let Some(on) = stage.and_then(|s| s.on_signal.as_ref()) {
        let roster = app.roster.load();
        let members: String = roster
            .members
            .iter()
            .map(|m| {
                format!(
                    "<option value=\"{}\">{} ({})</option>",
                    escape(&m.id),
                    escape(&m.name),
                    escape(&m.id)
                )
            })
            .collect();
        html.push_str(&format!(
            "<form method=\"post\" action=\"/dashboard/items/{id}/signal\" id=\"signal-form\"><fieldset><legend>Record <code>{name}</code></legend>\
             {which}\
             <label for=\"member\">Member</label> <select id=\"member\" name=\"member\" required><option value=\"\">Choose…</option>{members}</select> \
             <label for=\"note\">Note</label> <input id=\"note\" name=\"note\" size=\"30\"> \
             <button type=\"submit\">Record</button></fieldset></form>",
            name = escape(&on.name),
            which = match &on.withdrawal {
                None => format!("<input type=\"hidden\" name=\"name\" value=\"{}\">", escape(&on.name)),
                Some(w) => format!(
                    "<label for=\"signal-name\">What</label> <select id=\"signal-name\" name=\"name\"><option value=\"{0}\">{0}</option><option value=\"{1}\">{1}</option></select> ",
                    escape(&on.name),
                    escape(w)
                ),
            },
        ));
    }
    if let Some(due) = item
        .timers
        .get(&crate::engine::Timer::Next(item.stage.clone()))
        .filter(|_| super::session::movable(app, item))
    {
        html.push_str(&format!(
            "<form method=\"post\" action=\"/dashboard/items/{id}/meeting\" id=\"next-form\"><fieldset><legend>Move on now</legend>\
             <input type=\"hidden\" name=\"action\" value=\"next\">\
             Stage <code>{}</code> would move on {}. <button type=\"submit\">Move on to the next stage now</button></fieldset></form>",
            escape(&item.stage),
            due.with_timezone(&app.tz).format("%-d %B %Y, %H:%M %Z"),
        ));
    }
    for (i, b) in item
        .ballots
        .iter()
        .enumerate()
        .filter(|(_, b)| b.result.is_none() && !b.in_session)
    {
        let now = b.closes_at.with_timezone(&app.tz);
        html.push_str(&format!(
            "<form method=\"post\" action=\"/dashboard/items/{id}/ballots/{i}/extend\" id=\"extend-{n}\"><fieldset><legend>Extend ballot {n}</legend>\
             <label for=\"until-{n}\">New deadline ({zone})</label> \
             <input id=\"until-{n}\" name=\"until\" type=\"datetime-local\" required value=\"{value}\"> \
             <label for=\"extend-reason-{n}\">Reason</label> <input id=\"extend-reason-{n}\" name=\"reason\" size=\"30\"> \
             <button type=\"submit\">Extend</button></fieldset></form>",
            n = i + 1,
            zone = escape(app.tz.name()),
            value = now.format("%Y-%m-%dT%H:%M"),
        ));
    }
    html.push_str(&format!(
        "<form method=\"post\" action=\"/dashboard/items/{id}/cancel\" id=\"cancel-form\"><fieldset><legend>Cancel this item</legend>\
         <label for=\"reason\">Reason (kept in the item's log)</label><br><textarea id=\"reason\" name=\"reason\" required rows=\"2\" cols=\"50\"></textarea><br>\
         <button type=\"submit\">Cancel the item</button></fieldset></form>"
    ));
    html
}

/// A post from another site (or a page that does not say where it comes from, in a
/// browser that would say) is refused before anything is done.
pub(super) fn from_elsewhere(headers: &HeaderMap) -> Option<Response> {
    // An opaque origin (a sandboxed frame, a page from a file) is not the dashboard either;
    // ballot votes accept it, as some mail clients' pages send it.
    let opaque = headers
        .get(header::ORIGIN)
        .is_some_and(|o| o.as_bytes() == b"null");
    (opaque || super::cross_site(headers, None)).then(|| {
        let body = r#"<p class="error" role="alert">This form can only be sent from the dashboard itself.</p><p><a href="/dashboard">Back to the dashboard</a></p>"#;
        layout(StatusCode::FORBIDDEN, "Refused", true, body)
    })
}

/// The page for an action the daemon refused: its reason (and each problem), and a way back.
pub(super) fn refused(e: ApiError, back: &str) -> Response {
    let mut body = format!(
        "<p class=\"error\" role=\"alert\">{}</p>",
        escape(&sentence(&e.1))
    );
    if let Some(list) = e.2.as_ref().and_then(|p| p.as_array()) {
        body.push_str("<ul>");
        for p in list {
            body.push_str(&format!(
                "<li>{}</li>",
                escape(p.as_str().unwrap_or_default())
            ));
        }
        body.push_str("</ul>");
    }
    body.push_str(&format!("<p><a href=\"{}\">Back</a></p>", escape(back)));
    layout(e.0, "Not done", true, &body)
}

/// The answer to a form: to the page it concerns once done, or the refusal.
/// A message of the API as a sentence on a page: capital first letter.
pub(super) fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A dashboard form's action: refused from elsewhere before anything is done; then to
/// `back` once done, or the refusal.
pub(super) async fn act<T>(
    headers: &HeaderMap,
    back: &str,
    done: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Response {
    match from_elsewhere(headers) {
        Some(refusal) => refusal,
        None => after(done.await, back),
    }
}

pub(super) fn after<T>(done: Result<T, ApiError>, page: &str) -> Response {
    match done {
        Ok(_) => Redirect::to(page).into_response(),
        Err(e) => refused(e, page),
    }
}

fn item_url(id: &str) -> String {
    format!("/dashboard/items/{}", super::path_segment(id))
}

async fn start_form(State(app): AppState) -> Response {
    use crate::definition::InputKind;
    let mut body = String::from("<p>Each workflow's inputs; a field marked * is required.</p>");
    for w in app.defs.load().all_current() {
        let mut fields = String::new();
        for (name, input) in &w.inputs {
            // A number may have decimals (a contribution, a percentage).
            let (kind, step) = match input.kind {
                InputKind::Text => ("text", ""),
                InputKind::Url => ("url", ""),
                InputKind::Number => ("number", " step=\"any\""),
                InputKind::Date => ("date", ""),
            };
            let field = format!("{}-{}", w.name, name);
            fields.push_str(&format!(
                "<p><label for=\"{f}\">{name}{star}</label><br><input id=\"{f}\" name=\"input.{n}\" type=\"{kind}\"{step} size=\"50\"{req}{value}></p>",
                f = escape(&field),
                name = escape(name),
                n = escape(name),
                star = if input.required { " *" } else { "" },
                req = if input.required { " required" } else { "" },
                value = input
                    .default
                    .as_ref()
                    .map(|d| format!(" value=\"{}\"", escape(d)))
                    .unwrap_or_default(),
            ));
        }
        body.push_str(&format!(
            "<form method=\"post\" action=\"/dashboard/items\" id=\"start-{w}\"><fieldset><legend>{title} (<code>{w}</code>)</legend>\
             <input type=\"hidden\" name=\"workflow\" value=\"{w}\">{fields}<button type=\"submit\">Start</button></fieldset></form>",
            w = escape(&w.name),
            title = escape(&w.title),
        ));
    }
    layout(StatusCode::OK, "Start an item", true, &body)
}

async fn start_post(
    State(app): AppState,
    actor: Actor,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let fields = form.map(|Form(f)| f).unwrap_or_default();
    let workflow = fields
        .iter()
        .find(|(k, _)| k == "workflow")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // An empty optional field is no input (a default applies).
    let inputs = fields
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("input.")?.to_string(), v)))
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
    match app.writer.start(workflow, inputs, Some(actor.name)).await {
        Ok(done) => Redirect::to(&item_url(&done.item)).into_response(),
        Err(e) => refused(e.into(), "/dashboard/start"),
    }
}

#[derive(Deserialize)]
struct SignalForm {
    name: String,
    member: String,
    #[serde(default)]
    note: String,
}

async fn signal_post(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
    form: Result<Form<SignalForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let Ok(Form(f)) = form else {
        return refused(bad_form(), &item_url(&id));
    };
    let member = Some(f.member).filter(|m| !m.is_empty());
    let data = match f.note.trim() {
        "" => serde_json::Value::Null,
        note => serde_json::json!({ "note": note }),
    };
    after(
        super::admin::record_signal(&app, &actor, id.clone(), f.name, member, data).await,
        &item_url(&id),
    )
}

#[derive(Deserialize)]
struct CancelForm {
    reason: String,
}

async fn cancel_post(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
    form: Result<Form<CancelForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let reason = form.map(|Form(f)| f.reason).unwrap_or_default();
    after(
        super::admin::record_cancel(&app, &actor, id.clone(), reason).await,
        &item_url(&id),
    )
}

#[derive(Deserialize)]
struct ExtendForm {
    until: String,
    #[serde(default)]
    reason: String,
}

async fn extend_post(
    State(app): AppState,
    actor: Actor,
    Param((id, ballot)): Param<(String, usize)>,
    headers: HeaderMap,
    form: Result<Form<ExtendForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let (until, reason) = form.map(|Form(f)| (f.until, f.reason)).unwrap_or_default();
    let current = app
        .items
        .get(&id)
        .and_then(|i| i.ballots.get(ballot).map(|b| b.closes_at));
    let closes_at = match local_time(&app, &until, current) {
        Ok(t) => t,
        Err(e) => return refused(e, &item_url(&id)),
    };
    let event = crate::engine::Event::DeadlineExtended {
        ballot,
        closes_at,
        reason: Some(reason.trim().to_string()).filter(|r| !r.is_empty()),
    };
    after(
        super::admin::record(&app, &actor, id.clone(), event).await,
        &item_url(&id),
    )
}

/// A browser's `datetime-local`, read in the council's zone. A time the clocks pass twice
/// (autumn) is the later one if the earlier is not after `after` (the current deadline).
pub(super) fn local_time(
    app: &App,
    text: &str,
    after: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    use chrono::TimeZone as _;
    let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text.trim(), f).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("`{text}` is not a date and time (as 2026-12-20T17:00)"),
            )
        })?;
    let at = match app.tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t,
        chrono::LocalResult::Ambiguous(early, late) => {
            match after.is_some_and(|c| early.with_timezone(&chrono::Utc) <= c) {
                true => late,
                false => early,
            }
        }
        chrono::LocalResult::None => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "`{text}` does not exist in {} (the clocks skip it)",
                    app.tz.name()
                ),
            ));
        }
    };
    Ok(at.with_timezone(&chrono::Utc))
}

async fn retry_post(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    after(
        super::admin::retry(&app, &actor, &id).await,
        "/dashboard/outbox",
    )
}

async fn drop_post(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    after(
        super::admin::drop_failed(&app, &actor, &id).await,
        "/dashboard/outbox",
    )
}

pub(super) fn bad_form() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "the form was not filled in as expected",
    )
}

async fn ended(State(app): AppState) -> Response {
    let mut items: Vec<_> = app
        .items
        .all()
        .into_iter()
        .filter(|i| i.status == Status::Ended)
        .collect();
    items.sort_by_key(|i| std::cmp::Reverse(i.entered_at));
    let rows: String = items
        .iter()
        .map(|i| {
            format!(
                "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                item_url(&i.id),
                escape(&i.id),
                escape(&app.title_of(i)),
                escape(&i.workflow),
                escape(i.outcome.as_deref().unwrap_or("-")),
                escape(i.register_number.as_deref().unwrap_or("-")),
                i.entered_at.with_timezone(&app.tz).format("%-d %B %Y, %H:%M %Z")
            )
        })
        .collect();
    let body = format!(
        "<table><thead><tr><th>Item</th><th>Title</th><th>Workflow</th><th>Outcome</th><th>Number</th><th>Ended</th></tr></thead><tbody>{}</tbody></table>",
        if rows.is_empty() {
            "<tr><td colspan=\"6\">No ended items.</td></tr>".to_string()
        } else {
            rows
        }
    );
    layout(StatusCode::OK, "Ended items", true, &body)
}

/// The register as CSV (RFC 4180: quoted fields, CRLF; a byte-order mark so that
/// spreadsheets read it as UTF-8), for a spreadsheet. A field that a spreadsheet would
/// take for a formula (`=`, `+`, `-`, `@`, a tab or CR first) gets a `'` in front: a
/// title is text, never a formula run on the secretary's machine.
async fn register_csv(State(app): AppState) -> Result<Response, ApiError> {
    let field = |v: &str| {
        let text = match v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            true => format!("'{v}"),
            false => v.to_string(),
        };
        format!("\"{}\"", text.replace('"', "\"\""))
    };
    let mut csv = String::from("\u{feff}number,title,item,adopted,texts\r\n");
    for act in app.store.acts() {
        let act = act?;
        let adopted = act.at.with_timezone(&app.tz).format("%Y-%m-%d").to_string();
        let texts: Vec<String> = act
            .texts
            .iter()
            .map(|(l, sha)| format!("{l}:{sha}"))
            .collect();
        csv.push_str(&format!(
            "{},{},{},{},{}\r\n",
            field(&act.number),
            field(&act.title),
            field(&act.item),
            field(&adopted),
            field(&texts.join(" "))
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"register.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        csv,
    )
        .into_response())
}
