//! The two HTTP listeners: public ballot pages for delegates, and the admin side.
//!
//! Handlers stay thin: parse, send an event to the writer, wait for the durable answer,
//! render. On the admin listener every route but `/healthz`, `/readyz` and the login needs
//! an actor (`crate::accounts`): `Authorization: Bearer <token>` (the admin token or a
//! personal API token) or the dashboard's session cookie; and each route names the least
//! role that may call it.
//!
//! [`serve`] runs a listener: each connection it accepts under its `listen::Gate`, served
//! by hyper with [`HEADER_TIMEOUT`], so a connection that sends nothing, or half a
//! request, or stays idle between requests, is closed instead of holding a descriptor;
//! and with [`WRITE_TIMEOUT`], so is one that stops reading its answers.

mod accounts;
mod admin;
mod amend;
mod ballot;
mod dashboard;
mod documents;
mod elect;
mod minutes;
mod propose;
mod session;
pub mod trustee;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::accounts::{Accounts, Actor, Role};
use crate::config::Config;
use crate::definition::Definitions;
use crate::engine::Rejection;
use crate::mail::Templates;
use crate::observe::{Metrics, RequestLabels};
use crate::roster::Roster;
use crate::store::Store;
use crate::token::Key;
use crate::writer::{Handle, Wake, WriteError};

pub use ballot::escape;

/// Largest request body accepted, on both listeners.
const MAX_BODY: usize = 64 * 1024;
/// Longest a request may take before it is answered 503 (a vote then may or may not have
/// been recorded, as with a lost connection; the ballot page shows which).
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Longest wait for a request's head: from the connection's opening, and after each
/// answer (hyper runs the same timer for both, so this is also how long an idle
/// keep-alive connection stays open). A browser opens a new connection when it needs one.
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest a write of an answer may wait for the client to read: a client that asks and
/// never reads (or reads a byte a minute) would otherwise keep its connection forever.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The dashboard's session cookie: a session's secret (`crate::accounts`).
const COOKIE: &str = "councild_session";

/// What every handler shares.
pub struct App {
    pub config: Config,
    pub store: Store,
    pub writer: Handle,
    pub defs: Arc<ArcSwap<Definitions>>,
    /// The roster in force (swapped by the writer on a reload that changes it).
    pub roster: crate::writer::SharedRoster,
    pub templates: Arc<ArcSwap<Templates>>,
    pub key: Key,
    /// The secretariat's accounts, sessions and tokens, and the admin token.
    pub accounts: Accounts,
    pub tz: Tz,
    pub started: Instant,
    pub metrics: Arc<Metrics>,
    pub wake: Wake,
    /// The committed items, as the writer last published them.
    pub items: Arc<crate::writer::Items>,
    /// Reads the definitions on disk again, for `POST /api/reload`.
    pub reload: Reload,
    pub clock: crate::clock::Clock,
    pub limits: Arc<crate::limits::Limits>,
    /// Ballot questions as rendered, while their item is unchanged.
    pub questions: ballot::Questions,
}

/// What reading the definitions on disk gives: the workflows, templates and roster, checked, or
/// every problem found.
pub type Read = Result<(Vec<crate::definition::Workflow>, Templates, Roster), Vec<String>>;

/// Reads the workflow files and templates on disk and checks them, for `POST /api/reload`.
/// The application provides the reading (it knows where the files are and how they are
/// checked); the HTTP layer runs it on a blocking thread, one reload at a time.
pub struct Reload {
    read: Box<dyn Fn() -> Read + Send + Sync>,
    /// Held for a whole reload, reading and swapping in, so two reloads never interleave
    /// (an older reading swapped in after a newer one) and a burst of them cannot fill the
    /// blocking pool.
    running: tokio::sync::Mutex<()>,
}

impl Reload {
    pub fn new(read: impl Fn() -> Read + Send + Sync + 'static) -> Reload {
        Reload {
            read: Box::new(read),
            running: tokio::sync::Mutex::new(()),
        }
    }
}

type AppState = State<Arc<App>>;

/// A form posted from another site, as a browser says in `Sec-Fetch-Site` or `Origin`.
/// `ours` is the URL the pages are served under; without one (the admin listener, which
/// may sit behind any name), the origin must name the host the request was sent to.
pub fn cross_site(headers: &axum::http::HeaderMap, ours: Option<&str>) -> bool {
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| s == "cross-site" || s == "same-site") {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    // (scheme://, host[:port]) of a URL, without any path.
    let split = |url: &str| {
        let start = url.find("://").map_or(0, |i| i + 3);
        let rest = &url[start..];
        let host = &rest[..rest.find('/').unwrap_or(rest.len())];
        (url[..start].to_ascii_lowercase(), host.to_ascii_lowercase())
    };
    let origin = split(origin);
    match ours {
        Some(url) => origin != split(url),
        None => match headers.get(header::HOST).and_then(|v| v.to_str().ok()) {
            Some(host) => origin.1 != host.to_ascii_lowercase(),
            None => true,
        },
    }
}

impl App {
    /// An item's title, falling back on the title of the workflow version it runs on.
    pub fn title_of(&self, item: &crate::engine::Item) -> String {
        let defs = self.defs.load();
        let workflow = defs.version(&item.version).map(|w| w.title.as_str());
        item.title(workflow.unwrap_or(&item.workflow)).to_string()
    }
}

pub fn public_router(app: Arc<App>) -> Router {
    Router::new()
        .route(
            "/ballot/{token}",
            get(ballot::ballot_page).post(ballot::ballot_vote),
        )
        .route(
            "/propose/{token}",
            get(propose::propose_page).post(propose::propose_post),
        )
        .route("/texts/{token}/{sha256}", get(documents::member_text))
        .route(
            "/amend/{token}",
            get(amend::amend_page).post(amend::amend_post),
        )
        .route(
            "/nominate/{token}",
            get(elect::nominate_page).post(elect::nominate_post),
        )
        .route(
            "/trustee/{token}",
            get(trustee::board_get).post(trustee::board_post),
        )
        .route("/elections/{item}", get(trustee::trackers_page))
        .route("/assets/secret-ballot.js", get(ballot::secret_ballot_js))
        .route("/elections/{item}/record.json", get(trustee::record_json))
        .layer(middleware::from_fn(time_limit))
        .layer(middleware::from_fn_with_state(app.clone(), count_request))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// A protected admin route: method, path pattern, the least role that may call it, and
/// its handler.
type Route = (Method, &'static str, Role, MethodRouter<Arc<App>>);

/// Every protected admin route. Tests walk this table, so a new route cannot forget the
/// actor's check nor its role.
fn protected_routes() -> Vec<Route> {
    let mut routes = admin::routes();
    routes.extend(dashboard::routes());
    routes.extend(accounts::routes());
    routes.extend(session::routes());
    routes.extend(documents::routes());
    routes.extend(amend::routes());
    routes.extend(elect::routes());
    routes.extend(trustee::routes());
    routes
}

/// The method, path and least role of every route that needs an actor.
pub fn protected_route_table() -> Vec<(Method, &'static str, Role)> {
    protected_routes()
        .into_iter()
        .map(|(m, p, r, _)| (m, p, r))
        .collect()
}

pub fn admin_router(app: Arc<App>) -> Router {
    let mut protected = Router::new();
    let mut by_path: Vec<(&str, MethodRouter<Arc<App>>)> = Vec::new();
    for (_, path, role, handler) in protected_routes() {
        let handler = handler.route_layer(middleware::from_fn(move |r, n| needs(role, r, n)));
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(handler),
            None => by_path.push((path, handler)),
        }
    }
    for (path, handler) in by_path {
        protected = protected.route(path, handler);
    }
    let protected =
        protected.route_layer(middleware::from_fn_with_state(app.clone(), authenticate));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(admin::ready))
        .merge(accounts::open_routes())
        .merge(protected)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such route; see docs/http-api.md")
        })
        .layer(middleware::from_fn(time_limit))
        .layer(middleware::from_fn_with_state(app.clone(), count_request))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Serves `router` on `listener` until `stop`, each connection under `gate`'s cap; then
/// lets every open connection finish its request and waits for them.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gate: Arc<crate::listen::Gate>,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer, slot) = tokio::select! {
            accepted = crate::listen::accept(&listener, &gate) => accepted,
            _ = stop.cancelled() => break,
        };
        let (router, stop) = (router.clone(), stop.clone());
        connections.spawn(async move {
            connection(stream, peer, router, stop).await;
            tracing::trace!(%peer, "connection closed");
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One HTTP/1.1 connection, to its end or, after `stop`, to the end of its request.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
) {
    // Answers are small and written at once: no reason to wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let router = tower::ServiceExt::map_request(
        router,
        move |mut request: axum::http::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            request
        },
    );
    let service = hyper_util::service::TowerToHyperService::new(router);
    let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
    stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let stream = Box::pin(stream);
    let served = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    let mut served = std::pin::pin!(served);
    let ended = tokio::select! {
        ended = served.as_mut() => ended,
        _ = stop.cancelled() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

/// Answers 503 to a request that takes longer than [`REQUEST_TIMEOUT`].
async fn time_limit(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the request took too long; try again",
        )
        .into_response(),
    }
}

/// Counts each request by its route pattern (never the token in a path) and status.
async fn count_request(State(app): AppState, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let path = request.uri().path().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    // The item a request is about, when its path names one.
    let item = ["/api/items/", "/dashboard/items/"]
        .iter()
        .find_map(|p| path.strip_prefix(p))
        .and_then(|rest| rest.split('/').next());
    let micros = started.elapsed().as_micros() as u64;
    tracing::debug!(route = %route, status, item, micros, "request");
    app.metrics
        .requests
        .get_or_create(&RequestLabels { route, status })
        .inc();
    response
}

/// Finds who is asking, from the bearer token or the dashboard's session cookie, and lets
/// the request through with its [`Actor`]; 401 otherwise (the dashboard's pages send the
/// browser to the login form instead).
async fn authenticate(State(app): AppState, mut request: Request, next: Next) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| app.accounts.by_token(t.trim()));
    let cookie = accounts::session_cookie(request.headers()).map(|c| app.accounts.by_session(&c));
    let actor = match bearer.or(cookie) {
        Some(Ok(actor)) => actor,
        Some(Err(e)) => {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response();
        }
        None => None,
    };
    if let Some(actor) = actor {
        request.extensions_mut().insert(actor);
        return next.run(request).await;
    }
    if request.uri().path().starts_with("/dashboard") {
        return accounts::login_redirect();
    }
    let body =
        Json(json!({"error": "missing or wrong token (the admin token or a personal API token)"}));
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        body,
    )
        .into_response()
}

/// Lets a request through when its actor's role is at least `role`; 403 otherwise.
async fn needs(role: Role, request: Request, next: Next) -> Response {
    let Some(actor) = request.extensions().get::<Actor>() else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "no actor").into_response();
    };
    if actor.role >= role {
        let role = actor.role;
        return dashboard::ROLE.scope(role, next.run(request)).await;
    }
    let message = format!(
        "this needs the {} role; {} is {}",
        role.as_str(),
        actor.name,
        actor.role.as_str()
    );
    if request.uri().path().starts_with("/dashboard") {
        return dashboard::forbidden(&message);
    }
    ApiError::new(StatusCode::FORBIDDEN, message).into_response()
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Actor, ApiError> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "no actor"))
    }
}

impl From<crate::accounts::Refused> for ApiError {
    fn from(e: crate::accounts::Refused) -> Self {
        use crate::accounts::Refused::*;
        let status = match &e {
            WrongLogin => StatusCode::UNAUTHORIZED,
            TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Invalid(_) | NotAnAccount => StatusCode::UNPROCESSABLE_ENTITY,
            Exists(_) => StatusCode::CONFLICT,
            NoUser(_) | NoCredential(_) => StatusCode::NOT_FOUND,
            Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.to_string())
    }
}

/// An API error: a status, a message the caller can act on, and optional details.
pub struct ApiError(pub StatusCode, pub String, pub Option<Value>);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(status, message.into(), None)
    }
}

/// What is escaped in a path segment or a query value: all but letters, digits, `-_.`.
const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// An id as one segment of a path (an API path, a dashboard link or form action).
pub fn path_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, ESCAPED).to_string()
}

/// The address a request's connection came from (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// The client a public request is from, for its rate limit: the connection's address, or
/// the one a trusted proxy says it forwarded (`X-Forwarded-For`).
pub(super) fn client(
    app: &App,
    headers: &axum::http::HeaderMap,
    peer: Option<axum::Extension<Peer>>,
) -> Option<std::net::IpAddr> {
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let trusted = &app.config.public.trusted_proxies;
    peer.map(|axum::Extension(Peer(p))| {
        crate::limits::client(p.ip(), &forwarded.join(","), trusted)
    })
}

/// The parameters of an admin path (`/api/items/{id}`), or a JSON 400 naming what is
/// wrong, as every other refusal of the admin API: axum's own `Path` answers in plain text.
pub struct Param<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Param<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Param<T>, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Param(value)),
            Err(e) => Err(ApiError::new(StatusCode::BAD_REQUEST, e.body_text())),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.is_server_error() {
            tracing::error!(error = %self.1, "request failed");
        }
        let mut body = json!({ "error": self.1 });
        if let Some(details) = self.2 {
            body["problems"] = details;
        }
        (self.0, Json(body)).into_response()
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
                | Rejection::DeadlineNotLater(_)
                | Rejection::NoTitle
                | Rejection::UnknownMember(_)
                | Rejection::NotPresent(_)
                | Rejection::NotInElectorate(_)
                | Rejection::CountedTwice(_)
                | Rejection::AbovePresent { .. }
                | Rejection::ProofsFail,
            ) => StatusCode::UNPROCESSABLE_ENTITY,
            WriteError::Rejected(
                Rejection::NoSuchBallot | Rejection::NoSuchPoint(_) | Rejection::NoSuchAmendment(_),
            ) => StatusCode::NOT_FOUND,
            WriteError::Rejected(_) => StatusCode::CONFLICT,
            WriteError::NoItem(_) | WriteError::NoWorkflow(_) => StatusCode::NOT_FOUND,
            WriteError::Store(_) | WriteError::Closed => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<crate::store::Error> for ApiError {
    fn from(e: crate::store::Error) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}
