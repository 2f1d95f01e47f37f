//! An item's texts: each language's authentic versions, given to the admin API as bytes
//! or a URL, stored under their SHA-256 (`store`), and read back checked against it, by
//! the secretariat (`/api/items/{id}/documents/{lang}`) and by members from the signed
//! link in their mail or on their ballot page (`/texts/{token}/{sha256}`).

use axum::body::Bytes;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{MethodRouter, get};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::{ApiError, App, AppState, Param, admin, dashboard, escape};
use crate::accounts::{Actor, Role};
use crate::engine::{Event, Item, Version};
use crate::token::BallotRef;

/// Largest version of a text: a regulation's PDF with its annexes.
pub const MAX_DOCUMENT: usize = 16 << 20;
/// Longest a URL's content may take to arrive.
/// (Less than the request's own limit, so that a slow fetch gets its own answer.)
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

pub fn routes() -> Vec<super::Route> {
    use Role::{Observer, Secretary};
    let put: MethodRouter<std::sync::Arc<App>> =
        axum::routing::put(put_document).layer(DefaultBodyLimit::max(MAX_DOCUMENT));
    vec![
        (
            Method::PUT,
            "/api/items/{id}/documents/{language}",
            Secretary,
            put,
        ),
        (
            Method::GET,
            "/api/items/{id}/documents/{language}",
            Observer,
            get(get_document),
        ),
        // The same, for the dashboard's links (its session cookie is the dashboard's).
        (
            Method::GET,
            "/dashboard/items/{id}/documents/{language}",
            Observer,
            get(get_document),
        ),
        (
            Method::POST,
            "/dashboard/items/{id}/documents",
            Secretary,
            axum::routing::post(dashboard_post).layer(DefaultBodyLimit::max(MAX_DOCUMENT + 4096)),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutQuery {
    /// The file's name, as members will see it.
    name: Option<String>,
    /// Fetch the version from here instead of the request's body.
    url: Option<String>,
    /// The SHA-256 the sender computed: bytes that arrive otherwise are refused.
    sha256: Option<String>,
}

/// `PUT /api/items/{id}/documents/{language}`: a new version of one language's text.
async fn put_document(
    State(app): AppState,
    actor: Actor,
    Param((id, language)): Param<(String, String)>,
    query: Result<Query<PutQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let given = match q.url {
        Some(url) if body.is_empty() => Given::Url(url),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "send the text's bytes or `?url=`, not both",
            ));
        }
        None => Given::Bytes(body.to_vec(), media_type),
    };
    add_version(&app, &actor, id, language, given, q.name, q.sha256).await
}

/// A version as it is given: its bytes (and their media type), or a URL to fetch.
enum Given {
    Bytes(Vec<u8>, Option<String>),
    Url(String),
}

/// Stores a version's bytes and records it: for the API and the dashboard. Whatever the
/// engine would refuse is refused before anything is stored.
async fn add_version(
    app: &App,
    actor: &Actor,
    id: String,
    language: String,
    given: Given,
    name: Option<String>,
    expected: Option<String>,
) -> Result<axum::Json<Value>, ApiError> {
    let item = app
        .items
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no item `{id}`")))?;
    let defs = app.defs.load_full();
    let workflow = defs.version(&item.version).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "the item's workflow version is not loaded",
        )
    })?;
    let check = |sha256: &str, name: &str, media_type: &str| {
        crate::engine::check_version(workflow, &item, &language, sha256, name, media_type)
            .map(|_| ())
    };
    let refused = |e| ApiError::from(crate::writer::WriteError::Rejected(e));
    let (bytes, media_type, url) = match given {
        Given::Url(url) => {
            // Refused before the URL is fetched, with a placeholder version.
            check(&"0".repeat(64), "-", "-").map_err(refused)?;
            let (bytes, media_type) = fetch(&url).await?;
            (bytes, media_type, Some(url))
        }
        Given::Bytes(bytes, media_type) => (bytes, media_type, None),
    };
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the version is empty: send its bytes, or give a URL",
        ));
    }
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    if let Some(expected) = expected.filter(|e| !e.trim().eq_ignore_ascii_case(&sha256)) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "the bytes received have the SHA-256 {sha256}, not {expected}: the text was changed or cut on the way; nothing is stored"
            ),
        ));
    }
    let name = name
        .filter(|n| !n.trim().is_empty())
        .or_else(|| url.as_deref().and_then(file_name))
        .unwrap_or_else(|| format!("text-{language}"));
    let media_type = media_type
        .map(|t| t.trim().to_string())
        .filter(|t| lettre::message::header::ContentType::parse(t).is_ok())
        .unwrap_or_else(|| "application/octet-stream".into());
    // A version of the item's given again: a stored copy that lost its hash is made
    // whole again, whether or not the version may still be given (it is logged only if so).
    if item.version(&sha256).is_some() {
        app.store.put_document(&bytes).await?;
    }
    check(&sha256, &name, &media_type).map_err(refused)?;
    app.store.put_document(&bytes).await?;
    admin::record(
        app,
        actor,
        id,
        Event::DocumentAdded {
            language,
            sha256,
            bytes: bytes.len() as u64,
            name,
            media_type,
            url,
        },
    )
    .await
}

/// `POST /dashboard/items/{id}/documents`: the dashboard's form (a file, or a URL).
async fn dashboard_post(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    let back = format!("/dashboard/items/{}", super::path_segment(&id));
    if let Some(refusal) = dashboard::from_elsewhere(&headers) {
        return refusal;
    }
    let Ok(mut form) = form else {
        return dashboard::refused(dashboard::bad_form(), &back);
    };
    let (mut language, mut url, mut file) = (String::new(), String::new(), None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return dashboard::refused(ApiError::new(e.status(), e.body_text()), &back),
        };
        let key = field.name().unwrap_or_default().to_string();
        let name = field.file_name().map(str::to_string);
        let media_type = field.content_type().map(str::to_string);
        let data = match field.bytes().await {
            Ok(data) => data,
            Err(e) => return dashboard::refused(ApiError::new(e.status(), e.body_text()), &back),
        };
        match key.as_str() {
            "language" => language = String::from_utf8_lossy(&data).trim().to_string(),
            "url" => url = String::from_utf8_lossy(&data).trim().to_string(),
            "file" if !data.is_empty() => file = Some((data.to_vec(), media_type, name)),
            _ => {}
        }
    }
    let (given, name) = match (file, url.is_empty()) {
        (Some((bytes, media_type, name)), true) => (Given::Bytes(bytes, media_type), name),
        (None, false) => (Given::Url(url), None),
        _ => {
            let e = ApiError::new(
                StatusCode::BAD_REQUEST,
                "choose a file, or give a URL (one of the two)",
            );
            return dashboard::refused(e, &back);
        }
    };
    match add_version(&app, &actor, id, language, given, name, None).await {
        Ok(_) => Redirect::to(&format!("{back}#texts")).into_response(),
        Err(e) => dashboard::refused(e, &back),
    }
}

/// The item page's section on its texts: each language's versions, with their hashes,
/// and (for a secretary, while the texts are not frozen) the form to give a new one.
pub(super) fn section(app: &App, item: &Item, may_give: bool) -> String {
    let defs = app.defs.load();
    let Some(spec) = defs
        .version(&item.version)
        .and_then(|w| w.documents.as_ref())
    else {
        return String::new();
    };
    let base = format!(
        "/dashboard/items/{}/documents",
        super::path_segment(&item.id)
    );
    let mut html = String::from(
        "<h2 id=\"texts\">Texts</h2><table><thead><tr><th>Language</th><th>Version</th><th>File</th><th>Given</th><th>SHA-256</th></tr></thead><tbody>",
    );
    for language in &spec.languages {
        let versions = item
            .documents
            .get(language)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if versions.is_empty() {
            html.push_str(&format!(
                "<tr><td lang=\"{0}\">{1}</td><td colspan=\"4\"><strong>missing</strong></td></tr>",
                escape(language),
                escape(crate::locale::language_name(language)),
            ));
        }
        for (i, v) in versions.iter().enumerate().rev() {
            let current = if i + 1 == versions.len() {
                " (current)"
            } else {
                ""
            };
            html.push_str(&format!(
                "<tr><td lang=\"{lang}\">{}</td><td>{}{current}</td><td><a href=\"{base}/{lang}?version={}\"><bdi>{}</bdi></a></td><td>{}</td><td><code class=\"sha256\">{}</code></td></tr>",
                escape(crate::locale::language_name(language)),
                i + 1,
                i + 1,
                escape(&v.name),
                v.at.with_timezone(&app.tz).format("%-d %B %Y, %H:%M"),
                escape(&v.sha256),
                lang = escape(language),
            ));
        }
    }
    html.push_str("</tbody></table>");
    let open = defs.version(&item.version).map(|w| {
        spec.languages
            .first()
            .map(|l| crate::engine::check_version(w, item, l, &"0".repeat(64), "-", "-"))
    });
    match open.flatten() {
        Some(Err(crate::engine::Rejection::TextsFrozen { ballot, at })) => html.push_str(&format!(
            "<p id=\"texts-frozen\">Frozen: ballot {ballot} opened on them on {}.</p>",
            at.with_timezone(&app.tz).format("%-d %B %Y, %H:%M")
        )),
        Some(Ok(_)) if may_give => {
            let options: String = spec
                .languages
                .iter()
                .map(|l| {
                    format!(
                        "<option value=\"{0}\">{1}</option>",
                        escape(l),
                        escape(crate::locale::language_name(l))
                    )
                })
                .collect();
            html.push_str(&format!(
                "<form method=\"post\" action=\"/dashboard/items/{}/documents\" enctype=\"multipart/form-data\">\
                 <label for=\"doc-language\">Language</label> <select id=\"doc-language\" name=\"language\">{options}</select> \
                 <label for=\"doc-file\">File</label> <input id=\"doc-file\" name=\"file\" type=\"file\"> \
                 <label for=\"doc-url\">or URL</label> <input id=\"doc-url\" name=\"url\" type=\"url\" size=\"30\"> \
                 <button type=\"submit\">Give this version</button></form>",
                super::path_segment(&item.id)
            ));
        }
        _ => {}
    }
    html
}

/// The content at `url`, at most [`MAX_DOCUMENT`] bytes, and its media type.
async fn fetch(url: &str) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m);
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(format!("`{url}`: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(bad(format!(
            "`{url}`: only http and https URLs are fetched"
        )));
    }
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| bad(e.to_string()))?;
    let mut response = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| bad(format!("`{url}` could not be fetched: {e}")))?;
    if !response.status().is_success() {
        return Err(bad(format!("`{url}` answered {}", response.status())));
    }
    let media_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| bad(format!("`{url}`: {e}")))?
    {
        if bytes.len() + chunk.len() > MAX_DOCUMENT {
            return Err(bad(format!(
                "`{url}` is larger than {} MiB",
                MAX_DOCUMENT >> 20
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((bytes, media_type))
}

/// The last segment of a URL's path, when it names a file.
fn file_name(url: &str) -> Option<String> {
    let path = reqwest::Url::parse(url).ok()?;
    let last = path.path_segments()?.next_back()?;
    let name = percent_encoding::percent_decode_str(last)
        .decode_utf8()
        .ok()?;
    (!name.is_empty()).then(|| name.into_owned())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    /// 1 for the first version; the current one without it.
    version: Option<usize>,
    /// The version with this SHA-256.
    sha256: Option<String>,
}

/// `GET /api/items/{id}/documents/{language}`: the current version, or `?version=N`.
async fn get_document(
    State(app): AppState,
    Param((id, language)): Param<(String, String)>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let item = app
        .items
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no item `{id}`")))?;
    let versions = item
        .documents
        .get(&language)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let version = match (q.version, &q.sha256) {
        (Some(n), _) => n.checked_sub(1).and_then(|i| versions.get(i)),
        (None, Some(sha256)) => versions.iter().find(|v| v.sha256 == *sha256),
        (None, None) => versions.last(),
    }
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("item `{id}` has no such `{language}` version"),
        )
    })?;
    serve(&app, version).map_err(|e| ApiError::new(e.0, e.1))
}

/// `GET /texts/{token}/{sha256}`: a version of the texts of the item a member's signed
/// link is for (a ballot link, or the link of a mail).
pub async fn member_text(
    State(app): AppState,
    axum::extract::Path((token, sha256)): axum::extract::Path<(String, String)>,
) -> Response {
    let link: Option<BallotRef> = app.key.verify(&token);
    let found = link
        .as_ref()
        .and_then(|r| app.items.get(&r.item))
        .and_then(|item| Some((item.version(&sha256)?.2.clone(), item)));
    let (Some(r), Some((version, _item))) = (link, found) else {
        return (
            StatusCode::NOT_FOUND,
            "This link is not valid, or the text is not one of its item's.\n",
        )
            .into_response();
    };
    if !app.limits.text_allowed(&r) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "3")],
            "This link has downloaded many texts in a short time: try again in a few seconds.\n",
        )
            .into_response();
    }
    // What went wrong is logged; the public answer does not describe the store.
    serve(&app, &version).unwrap_or_else(|(status, _)| {
        (
            status,
            "This text cannot be read now. The secretariat is told.\n",
        )
            .into_response()
    })
}

/// A version's bytes, checked against its hash, as a download that cannot run in the
/// page's origin (a sandboxed, never sniffed response).
fn serve(app: &App, v: &Version) -> Result<Response, (StatusCode, String)> {
    let bytes = match app.store.document(&v.sha256) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the text {} is missing from the store", v.sha256),
            ));
        }
        Err(e) => {
            tracing::error!(sha256 = %v.sha256, error = %e, "a stored text does not match its hash");
            return Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()));
        }
    };
    // A PDF is not a page of this origin (its viewer runs apart, and refuses a sandboxed
    // document); anything else a browser could run as a page is sandboxed. PDFs and plain
    // text open in the browser; anything else is saved.
    let pdf = v.media_type.starts_with("application/pdf");
    let inline = pdf || v.media_type.starts_with("text/plain");
    let disposition = format!(
        "{}; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        percent_encoding::utf8_percent_encode(&v.name, percent_encoding::NON_ALPHANUMERIC)
    );
    let digest = base64::engine::general_purpose::STANDARD
        .encode(hex::decode(&v.sha256).unwrap_or_default());
    let mut response = (
        [
            (header::CONTENT_TYPE, v.media_type.clone()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
            (header::ETAG, format!("\"{}\"", v.sha256)),
            (
                header::HeaderName::from_static("repr-digest"),
                format!("sha-256=:{digest}:"),
            ),
        ],
        bytes,
    )
        .into_response();
    if !pdf {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static("sandbox; default-src 'none'"),
        );
    }
    Ok(response)
}
