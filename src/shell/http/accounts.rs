//! The accounts on the admin listener: login and logout, one's own account (password,
//! sessions, API tokens), and the admins' list of accounts, as JSON under `/api/` and as
//! dashboard pages. Every change is `crate::accounts`' own; this file parses and renders.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::body;
use super::dashboard::{after, bad_form, from_elsewhere, layout, refused, sentence};
use super::{ApiError, App, AppState, COOKIE, Param, Peer, escape, path_segment};
use crate::accounts::{Actor, Credential, MIN_PASSWORD, Role, SESSION_LIFETIME};

pub fn routes() -> Vec<super::Route> {
    use Role::{Admin, Observer};
    vec![
        (Method::GET, "/api/account", Observer, get(whoami)),
        (
            Method::POST,
            "/api/account/password",
            Observer,
            post(own_password),
        ),
        (Method::GET, "/api/users", Admin, get(list_users)),
        (Method::POST, "/api/users", Admin, post(add_user)),
        (Method::POST, "/api/users/{name}", Admin, post(change_user)),
        (
            Method::DELETE,
            "/api/users/{name}",
            Admin,
            delete(remove_user),
        ),
        (Method::GET, "/api/sessions", Observer, get(list_sessions)),
        (
            Method::DELETE,
            "/api/sessions/{id}",
            Observer,
            delete(end_session),
        ),
        (Method::GET, "/api/tokens", Observer, get(list_tokens)),
        (Method::POST, "/api/tokens", Observer, post(add_token)),
        (
            Method::DELETE,
            "/api/tokens/{id}",
            Observer,
            delete(revoke_token),
        ),
        (
            Method::GET,
            "/dashboard/account",
            Observer,
            get(account_page),
        ),
        (
            Method::POST,
            "/dashboard/account/password",
            Observer,
            post(own_password_post),
        ),
        (
            Method::POST,
            "/dashboard/sessions/{id}/end",
            Observer,
            post(end_session_post),
        ),
        (
            Method::POST,
            "/dashboard/tokens",
            Observer,
            post(add_token_post),
        ),
        (
            Method::POST,
            "/dashboard/tokens/{id}/revoke",
            Observer,
            post(revoke_token_post),
        ),
        (Method::GET, "/dashboard/users", Admin, get(users_page)),
        (Method::POST, "/dashboard/users", Admin, post(add_user_post)),
        (
            Method::POST,
            "/dashboard/users/{name}",
            Admin,
            post(change_user_post),
        ),
        (
            Method::POST,
            "/dashboard/users/{name}/remove",
            Admin,
            post(remove_user_post),
        ),
    ]
}

/// Login and logout need no session.
pub fn open_routes() -> Router<Arc<App>> {
    Router::new()
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", post(logout))
}

/// The session secret carried by the cookie, if any.
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

const LOGIN_FORM: &str = r#"<form method="post" action="/dashboard/login">
<p><label for="name">Account name</label><br><input id="name" name="name" autocomplete="username" size="32"></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" required size="40"></p>
<p><button type="submit">Log in</button></p></form>
<p>Before the first account exists, leave the name empty and give the admin token as the password.</p>"#;

async fn login_form() -> Response {
    layout(StatusCode::OK, "Secretariat login", false, LOGIN_FORM)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    password: String,
}

/// Login and logout are posts too: a page elsewhere must not log a secretary in (to an
/// account it chose) or out.
fn refused_cross_site() -> Response {
    let body = r#"<p class="error" role="alert">Log in and out from this dashboard only.</p><p><a href="/dashboard/login">Log in</a></p>"#;
    layout(StatusCode::FORBIDDEN, "Secretariat login", false, body)
}

fn client(peer: Option<Extension<Peer>>) -> std::net::IpAddr {
    peer.map_or(
        std::net::Ipv4Addr::UNSPECIFIED.into(),
        |Extension(Peer(p))| crate::listen::client_of(p.ip().to_canonical()),
    )
}

async fn login(
    State(app): AppState,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if from_elsewhere(&headers).is_some() {
        return refused_cross_site();
    }
    let Ok(Form(f)) = form else {
        return layout(
            StatusCode::BAD_REQUEST,
            "Secretariat login",
            false,
            LOGIN_FORM,
        );
    };
    match app.accounts.login(&f.name, &f.password, client(peer)).await {
        Ok(secret) => {
            let cookie = format!(
                "{COOKIE}={secret}; Path=/dashboard; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
                SESSION_LIFETIME.num_seconds()
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/dashboard")).into_response()
        }
        Err(e) => {
            let e = ApiError::from(e);
            let body = format!(
                "<p class=\"error\" role=\"alert\">{}.</p>{LOGIN_FORM}",
                escape(&sentence(&e.1))
            );
            let mut page = layout(e.0, "Secretariat login", false, &body);
            if e.0 == StatusCode::TOO_MANY_REQUESTS {
                page.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("30"));
            }
            page
        }
    }
}

async fn logout(State(app): AppState, headers: HeaderMap) -> Response {
    if from_elsewhere(&headers).is_some() {
        return refused_cross_site();
    }
    if let Some(secret) = session_cookie(&headers)
        && let Err(e) = app.accounts.logout(&secret).await
    {
        return refused(e.into(), "/dashboard");
    }
    let cookie =
        format!("{COOKIE}=; Path=/dashboard; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    (
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/dashboard/login"),
    )
        .into_response()
}

fn role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no role `{text}`: observer, secretary or admin"),
        )
    })
}

async fn whoami(actor: Actor) -> Json<Value> {
    Json(json!({ "name": actor.name, "role": actor.role, "session": actor.session }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnPassword {
    current: String,
    new: String,
}

async fn own_password(
    State(app): AppState,
    actor: Actor,
    b: Result<Json<OwnPassword>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    app.accounts
        .change_own_password(&actor, &b.current, &b.new)
        .await?;
    Ok(Json(json!({ "changed": actor.name })))
}

async fn list_users(State(app): AppState) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "users": app.accounts.users()? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    role: String,
    password: String,
}

async fn add_user(
    State(app): AppState,
    actor: Actor,
    b: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let role = role(&b.role)?;
    app.accounts
        .add_user(&actor, &b.name, role, &b.password)
        .await?;
    let answer = json!({ "name": b.name, "role": role });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChange {
    role: Option<String>,
    password: Option<String>,
}

async fn change_user(
    State(app): AppState,
    actor: Actor,
    Param(name): Param<String>,
    b: Result<Json<UserChange>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let role = b.role.as_deref().map(role).transpose()?;
    app.accounts
        .change_user(&actor, &name, role, b.password.as_deref())
        .await?;
    Ok(Json(json!({ "changed": name })))
}

async fn remove_user(
    State(app): AppState,
    actor: Actor,
    Param(name): Param<String>,
) -> Result<Json<Value>, ApiError> {
    app.accounts.remove_user(&actor, &name).await?;
    Ok(Json(json!({ "removed": name })))
}

async fn list_sessions(State(app): AppState, actor: Actor) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "sessions": app.accounts.sessions(&actor)? })))
}

async fn end_session(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
) -> Result<Json<Value>, ApiError> {
    app.accounts.end(&actor, "session/", &id).await?;
    Ok(Json(json!({ "ended": id })))
}

async fn list_tokens(State(app): AppState, actor: Actor) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "tokens": app.accounts.tokens(&actor)? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    label: String,
}

async fn add_token(
    State(app): AppState,
    actor: Actor,
    b: Result<Json<NewToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let (id, token) = app.accounts.add_token(&actor, &b.label).await?;
    let answer = json!({ "id": id, "token": token, "user": actor.name, "label": b.label.trim() });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn revoke_token(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
) -> Result<Json<Value>, ApiError> {
    app.accounts.end(&actor, "token/", &id).await?;
    Ok(Json(json!({ "revoked": id })))
}

fn when(app: &App, at: chrono::DateTime<chrono::Utc>) -> String {
    at.with_timezone(&app.tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// A table of sessions or tokens, each with a button that ends it.
fn credential_table(app: &App, list: &[Credential], kind: &str, current: Option<&str>) -> String {
    let (label, action, button) = match kind {
        "sessions" => ("From", "end", "End"),
        _ => ("Label", "revoke", "Revoke"),
    };
    let mut html = format!(
        "<table><tr><th>Account</th><th>{label}</th><th>Since</th><th>Until</th><th></th></tr>"
    );
    for c in list {
        let this = if current == Some(c.id.as_str()) {
            " (this one)"
        } else {
            ""
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}{this}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/dashboard/{kind}/{}/{action}\" class=\"inline\"><button type=\"submit\">{button}</button></form></td></tr>",
            escape(&c.user),
            escape(&c.label),
            when(app, c.created_at),
            c.expires_at.map_or("until revoked".into(), |t| when(app, t)),
            path_segment(&c.id),
        ));
    }
    html.push_str("</table>");
    html
}

async fn account_page(State(app): AppState, actor: Actor) -> Result<Response, ApiError> {
    let sessions = app.accounts.sessions(&actor)?;
    let tokens = app.accounts.tokens(&actor)?;
    let whose = if actor.role == Role::Admin {
        "Every account's"
    } else {
        "Your"
    };
    let mut body = format!(
        "<p>Logged in as <strong>{}</strong>, {}.</p>",
        escape(&actor.name),
        actor.role.as_str()
    );
    if !actor.is_bootstrap() {
        body.push_str(&format!(
            r#"<h2>Change your password</h2><form method="post" action="/dashboard/account/password">
<p><label for="current">Current password</label><br><input id="current" name="current" type="password" autocomplete="current-password" required></p>
<p><label for="new">New password (at least {MIN_PASSWORD} characters)</label><br><input id="new" name="new" type="password" autocomplete="new-password" minlength="{MIN_PASSWORD}" required></p>
<p><button type="submit">Change password</button> Your other sessions end.</p></form>"#
        ));
    }
    body.push_str(&format!("<h2>{whose} sessions</h2>"));
    body.push_str(&credential_table(
        &app,
        &sessions,
        "sessions",
        actor.session.as_deref(),
    ));
    body.push_str(&format!(
        "<h2>{whose} API tokens</h2><p>For scripts and the CLI (<code>COUNCILD_TOKEN</code>); a token does what its account may.</p>"
    ));
    body.push_str(&credential_table(&app, &tokens, "tokens", None));
    if !actor.is_bootstrap() {
        body.push_str(
            r#"<form method="post" action="/dashboard/tokens"><label for="label">New token, for</label> <input id="label" name="label" required maxlength="80" placeholder="e.g. nightly report"> <button type="submit">Create token</button></form>"#,
        );
    }
    Ok(layout(StatusCode::OK, "Account", true, &body))
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    new: String,
}

async fn own_password_post(
    State(app): AppState,
    actor: Actor,
    headers: HeaderMap,
    form: Result<Form<PasswordForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let Ok(Form(f)) = form else {
        return refused(bad_form(), "/dashboard/account");
    };
    let done = app
        .accounts
        .change_own_password(&actor, &f.current, &f.new)
        .await;
    after(done.map_err(ApiError::from), "/dashboard/account")
}

async fn end_session_post(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let done = app.accounts.end(&actor, "session/", &id).await;
    // Ending one's own session is logging out.
    let page = if actor.session.as_deref() == Some(id.as_str()) {
        "/dashboard/login"
    } else {
        "/dashboard/account"
    };
    after(done.map_err(ApiError::from), page)
}

#[derive(Deserialize)]
struct TokenForm {
    label: String,
}

async fn add_token_post(
    State(app): AppState,
    actor: Actor,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let label = form.map(|Form(f)| f.label).unwrap_or_default();
    match app.accounts.add_token(&actor, &label).await {
        Ok((_, token)) => {
            let body = format!(
                "<p>Your new token for <strong>{}</strong>. Copy it now: it is not shown again.</p>\
                 <p><code id=\"token\">{}</code></p><p>Use it as <code>Authorization: Bearer …</code>, \
                 or with the CLI as <code>COUNCILD_TOKEN=… councild status</code>.</p>\
                 <p><a href=\"/dashboard/account\">Back to the account</a></p>",
                escape(label.trim()),
                escape(&token)
            );
            layout(StatusCode::CREATED, "API token created", true, &body)
        }
        Err(e) => refused(e.into(), "/dashboard/account"),
    }
}

async fn revoke_token_post(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let done = app.accounts.end(&actor, "token/", &id).await;
    after(done.map_err(ApiError::from), "/dashboard/account")
}

fn role_options(selected: Role) -> String {
    Role::ALL
        .iter()
        .map(|r| {
            let sel = if *r == selected { " selected" } else { "" };
            format!("<option value=\"{0}\"{sel}>{0}</option>", r.as_str())
        })
        .collect()
}

async fn users_page(State(app): AppState) -> Result<Response, ApiError> {
    let mut body = String::from(
        "<p>An <em>observer</em> reads; a <em>secretary</em> also acts on items and mail; an \
         <em>admin</em> also manages the accounts.</p><table><tr><th>Account</th><th>Role</th>\
         <th>New password</th><th>Created</th><th></th></tr>",
    );
    for u in app.accounts.users()? {
        let name = path_segment(&u.name);
        body.push_str(&format!(
            "<tr><td>{0}</td><td colspan=\"2\"><form method=\"post\" action=\"/dashboard/users/{name}\" class=\"inline\">\
             <select name=\"role\" aria-label=\"Role of {0}\">{1}</select> \
             <input name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"{MIN_PASSWORD}\" aria-label=\"New password of {0}\" placeholder=\"unchanged\"> \
             <button type=\"submit\">Save</button></form></td><td>{2} by {3}</td>\
             <td><form method=\"post\" action=\"/dashboard/users/{name}/remove\" class=\"inline\"><button type=\"submit\">Remove</button></form></td></tr>",
            escape(&u.name),
            role_options(u.role),
            when(&app, u.created_at),
            escape(&u.created_by),
        ));
    }
    body.push_str(&format!(
        r#"</table><h2>Add an account</h2><form method="post" action="/dashboard/users">
<p><label for="name">Name</label><br><input id="name" name="name" required maxlength="32" pattern="[a-z][a-z0-9._\-]*" autocomplete="off"> lowercase letters, digits, <code>. _ -</code></p>
<p><label for="role">Role</label><br><select id="role" name="role">{}</select></p>
<p><label for="password">Password (at least {MIN_PASSWORD} characters; they can change it)</label><br><input id="password" name="password" type="password" autocomplete="new-password" minlength="{MIN_PASSWORD}" required></p>
<p><button type="submit">Add account</button></p></form>"#,
        role_options(Role::Secretary)
    ));
    Ok(layout(StatusCode::OK, "Accounts", true, &body))
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(default)]
    name: String,
    role: String,
    #[serde(default)]
    password: String,
}

async fn add_user_post(
    State(app): AppState,
    actor: Actor,
    headers: HeaderMap,
    form: Result<Form<UserForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let Ok(Form(f)) = form else {
        return refused(bad_form(), "/dashboard/users");
    };
    let done = match role(&f.role) {
        Ok(r) => app
            .accounts
            .add_user(&actor, f.name.trim(), r, &f.password)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    after(done, "/dashboard/users")
}

async fn change_user_post(
    State(app): AppState,
    actor: Actor,
    Param(name): Param<String>,
    headers: HeaderMap,
    form: Result<Form<UserForm>, FormRejection>,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let Ok(Form(f)) = form else {
        return refused(bad_form(), "/dashboard/users");
    };
    let password = Some(f.password.as_str()).filter(|p| !p.is_empty());
    let done = match role(&f.role) {
        Ok(r) => app
            .accounts
            .change_user(&actor, &name, Some(r), password)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    after(done, "/dashboard/users")
}

async fn remove_user_post(
    State(app): AppState,
    actor: Actor,
    Param(name): Param<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let done = app.accounts.remove_user(&actor, &name).await;
    after(done.map_err(ApiError::from), "/dashboard/users")
}
