//! Elections: the admin API to record a nomination and to confirm the candidates, the
//! item page's Election section and its forms; and a member's page to nominate a
//! candidate during the call for nominations, on the public listener, from the signed link
//! in the call (`/nominate/TOKEN`), in the delegate's language, no JavaScript, refused from
//! another site, rate-limited as ballot links.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::Value;

use super::ballot::{Token, elsewhere_page, member_link, page, refused_post};
use super::{ApiError, App, AppState, Param, admin, dashboard, escape};
use crate::accounts::{Actor, Role};
use crate::definition::Workflow;
use crate::engine::{Event, Item, Rejection};
use crate::token::BallotRef;
use crate::writer::WriteError;

pub fn routes() -> Vec<super::Route> {
    use Role::Secretary;
    vec![
        (
            Method::POST,
            "/api/items/{id}/nominations",
            Secretary,
            post(nominate_api),
        ),
        (
            Method::POST,
            "/api/items/{id}/candidates",
            Secretary,
            post(confirm_api),
        ),
        (
            Method::POST,
            "/dashboard/items/{id}/nominations",
            Secretary,
            post(nominate_dashboard),
        ),
        (
            Method::POST,
            "/dashboard/items/{id}/candidates",
            Secretary,
            post(confirm_dashboard),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NominationBody {
    /// The candidate's name by language: `{"en": "…", "ar": "…"}`.
    name: BTreeMap<String, String>,
    /// How ballots name the candidate; made from the name when not given.
    #[serde(default)]
    id: Option<String>,
    /// The member that nominates the candidate.
    #[serde(default)]
    member: Option<String>,
}

fn nomination(name: BTreeMap<String, String>, id: Option<String>, member: Option<String>) -> Event {
    Event::Nominated {
        candidate: id.unwrap_or_default(),
        name: name
            .into_iter()
            .map(|(l, n)| (l, n.trim().to_string()))
            .filter(|(_, n)| !n.is_empty())
            .collect(),
        member: member.filter(|m| !m.is_empty()),
    }
}

/// `POST /api/items/{id}/nominations`.
async fn nominate_api(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<NominationBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = admin::body(b)?;
    admin::record(&app, &actor, id, nomination(b.name, b.id, b.member)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    /// The candidates standing, in the ballot paper's order.
    candidates: Vec<String>,
}

/// `POST /api/items/{id}/candidates`: the list confirmed; the election opens.
async fn confirm_api(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<ConfirmBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = admin::body(b)?;
    let event = Event::CandidatesConfirmed {
        candidates: b.candidates,
    };
    admin::record(&app, &actor, id, event).await
}

/// The item page's nomination form: a name in each language, and the member nominating.
async fn nominate_dashboard(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let back = format!("/dashboard/items/{}#election", super::path_segment(&id));
    dashboard::act(&headers, &back, async {
        let Form(f) = form.map_err(|_| dashboard::bad_form())?;
        let name = f
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("name.")?.to_string(), v.clone())))
            .collect();
        let member = f.get("member").map(|m| m.trim().to_string());
        admin::record(&app, &actor, id.clone(), nomination(name, None, member)).await
    })
    .await
}

/// The item page's confirmation: the candidates ticked, in the order of their places.
async fn confirm_dashboard(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let back = format!("/dashboard/items/{}#election", super::path_segment(&id));
    dashboard::act(&headers, &back, async {
        let Form(fields) = form.map_err(|_| dashboard::bad_form())?;
        let candidates = fields
            .into_iter()
            .filter(|(k, _)| k == "candidate")
            .map(|(_, v)| v)
            .collect();
        let event = Event::CandidatesConfirmed { candidates };
        admin::record(&app, &actor, id.clone(), event).await
    })
    .await
}

/// The item page's section on an election: the candidates nominated, by whom, and (for a
/// secretary, while nominations are taken) the forms to record one and to confirm the list;
/// then each round's count, and who is elected.
pub(super) fn section(
    workflow: Option<&Workflow>,
    item: &Item,
    may: bool,
    tz: chrono_tz::Tz,
) -> String {
    let nominating = workflow
        .and_then(|w| w.stages.get(&item.stage))
        .is_some_and(|s| s.nominations.is_some());
    let taking = workflow.is_some_and(|w| crate::engine::taking_nominations(w, item));
    if item.candidates.is_empty() && !nominating {
        return String::new();
    }
    let mut html = String::from("<h2 id=\"election\">Election</h2>");
    if item.candidates.is_empty() {
        html.push_str("<p>No candidate is nominated yet.</p>");
    } else {
        html.push_str("<table id=\"candidates\"><thead><tr><th>Id</th><th>Name</th><th>Nominated by</th><th>Standing</th></tr></thead><tbody>");
        for c in &item.candidates {
            let names: Vec<String> = c
                .name
                .iter()
                .map(|(l, n)| format!("<bdi lang=\"{}\">{}</bdi>", escape(l), escape(n)))
                .collect();
            let standing = item.standing.iter().position(|s| *s == c.id);
            html.push_str(&format!(
                "<tr id=\"candidate-{id}\"><td><code>{id}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                names.join(" · "),
                escape(c.nominated_by.as_deref().unwrap_or("the secretariat")),
                standing.map_or(String::new(), |p| format!("place {}", p + 1)),
                id = escape(&c.id),
            ));
        }
        html.push_str("</tbody></table>");
    }
    if nominating && !taking {
        html.push_str("<p id=\"nominations-closed\">Nominations are closed: confirm the candidates to open the election.</p>");
    }
    let path = super::path_segment(&item.id);
    if taking && may {
        html.push_str(&format!(
            "<form method=\"post\" action=\"/dashboard/items/{path}/nominations\" id=\"nominate\"><fieldset><legend>Record a nomination</legend>\
             <label>Name (English) <input name=\"name.en\"></label> <label>Nom (français) <input name=\"name.fr\" lang=\"fr\"></label> \
             <label>الاسم (العربية) <input name=\"name.ar\" lang=\"ar\" dir=\"rtl\"></label> \
             <label>Nominated by (member id) <input name=\"member\" size=\"5\"></label> <button type=\"submit\">Record</button></fieldset></form>"
        ));
    }
    if nominating && may && !item.candidates.is_empty() {
        {
            let boxes: String = item
                .candidates
                .iter()
                .map(|c| {
                    format!(
                        "<label><input type=\"checkbox\" name=\"candidate\" value=\"{id}\" checked> {}</label> ",
                        escape(c.name_in("en")),
                        id = escape(&c.id)
                    )
                })
                .collect();
            html.push_str(&format!(
                "<form method=\"post\" action=\"/dashboard/items/{path}/candidates\" id=\"confirm\"><fieldset><legend>Confirm the candidates (the ballot lists them in this order) and open the election</legend>{boxes}\
                 <button type=\"submit\">Confirm and open the election</button></fieldset></form>"
            ));
        }
    }
    if let Some(t) = &item.trust {
        let members: Vec<String> = t.trustees.iter().map(|t| escape(&t.member)).collect();
        let state = match (&t.key, t.waiting_for()) {
            (Some(_), _) => "the election key is made".to_string(),
            (None, Some(w)) => format!("the key ceremony waits for {}", escape(&w)),
            (None, None) => String::new(),
        };
        html.push_str(&format!(
            "<p id=\"trustees\">Secret ballot, opened by {} of the trustees {}: {state}.</p>",
            t.needed,
            members.join(", ")
        ));
    }
    for b in item.ballots.iter().filter(|b| b.round.is_some()) {
        let Some(round) = b.round else { continue };
        let decryptions = b.sealed.as_ref().filter(|s| s.tally.is_some());
        let state = match (&b.result, decryptions) {
            (Some(r), _) => escape(&r.explanation),
            (None, Some(s)) => format!(
                "closed, {} of {} voted; the sealed tally waits for the trustees' decryptions ({} of {} given){}",
                b.cast(),
                b.electorate.len(),
                s.decryptions.len(),
                item.trust.as_ref().map_or(0, |t| t.needed),
                s.failure
                    .as_ref()
                    .map(|f| format!(": {}", escape(f)))
                    .unwrap_or_default()
            ),
            (None, None) => format!(
                "open until {}, {} of {} voted",
                b.closes_at.with_timezone(&tz).format("%-d %B %Y, %H:%M %Z"),
                b.cast(),
                b.electorate.len()
            ),
        };
        html.push_str(&format!(
            "<p id=\"round-{n}\"><strong>Round {n}</strong> ({} seat{}): {state}</p>",
            round.seats,
            if round.seats == 1 { "" } else { "s" },
            n = round.number
        ));
    }
    if !item.elected.is_empty() {
        let names: Vec<String> = item
            .elected
            .iter()
            .map(|id| {
                let c = item.candidates.iter().find(|c| c.id == *id);
                escape(c.map_or(id.as_str(), |c| c.name_in("en")))
            })
            .collect();
        html.push_str(&format!(
            "<p>Elected: <strong id=\"elected\">{}</strong></p>",
            names.join(", ")
        ));
    }
    html
}

/// The words of a member's nomination page.
struct Words {
    title: &'static str,
    intro: &'static str,
    /// The name fields, by the language of the name.
    name_en: &'static str,
    name_fr: &'static str,
    name_ar: &'static str,
    hint: &'static str,
    send: &'static str,
    yours: &'static str,
    done_title: &'static str,
    done: &'static str,
    closed_title: &'static str,
    closed: &'static str,
    not_valid_title: &'static str,
    not_valid: &'static str,
    refused: &'static str,
    busy: &'static str,
    elsewhere: &'static str,
    no_name: &'static str,
    too_long: &'static str,
}

const EN: Words = Words {
    title: "Nominate a candidate",
    intro: "Your delegation's nomination of a candidate for",
    name_en: "Name in English",
    name_fr: "Name in French (optional)",
    name_ar: "Name in Arabic (optional)",
    hint: "Give the name as it should stand on the ballot paper.",
    send: "Nominate",
    yours: "Candidates your delegation has nominated",
    done_title: "Nomination received",
    done: "The Secretariat has your nomination of",
    closed_title: "Nominations are closed",
    closed: "Candidates can no longer be nominated for this election. Please write to the Secretariat.",
    not_valid_title: "This link is not valid",
    not_valid: "This link is not a link to nominate candidates. Please use the link in the Secretariat's call for nominations.",
    refused: "The nomination was not accepted:",
    busy: "too many nominations from this link in a short time; please try again in a minute.",
    elsewhere: "This form can only be sent from its own page. Please open the link in the call again.",
    no_name: "give the candidate's name in at least one language.",
    too_long: "a name has at most 200 characters.",
};

const FR: Words = Words {
    title: "Présenter une candidature",
    intro: "Candidature présentée par votre délégation pour",
    name_en: "Nom en anglais (facultatif)",
    name_fr: "Nom en français",
    name_ar: "Nom en arabe (facultatif)",
    hint: "Indiquez le nom tel qu'il doit figurer sur le bulletin de vote.",
    send: "Présenter",
    yours: "Candidatures présentées par votre délégation",
    done_title: "Candidature reçue",
    done: "Le Secrétariat a reçu votre candidature :",
    closed_title: "Les candidatures sont closes",
    closed: "Il n'est plus possible de présenter des candidatures pour cette élection. Veuillez écrire au Secrétariat.",
    not_valid_title: "Ce lien n'est pas valide",
    not_valid: "Ce lien ne permet pas de présenter des candidatures. Veuillez utiliser le lien de l'appel du Secrétariat.",
    refused: "La candidature n'a pas été acceptée :",
    busy: "trop de candidatures depuis ce lien en peu de temps ; veuillez réessayer dans une minute.",
    elsewhere: "Ce formulaire ne peut être envoyé que depuis sa propre page. Veuillez rouvrir le lien de l'appel.",
    no_name: "indiquez le nom du candidat dans au moins une langue.",
    too_long: "un nom compte au plus 200 caractères.",
};

const AR: Words = Words {
    title: "تقديم ترشيح",
    intro: "ترشيح وفدكم لمنصب",
    name_en: "الاسم بالإنجليزية (اختياري)",
    name_fr: "الاسم بالفرنسية (اختياري)",
    name_ar: "الاسم بالعربية",
    hint: "يُرجى كتابة الاسم كما ينبغي أن يرد في ورقة الاقتراع.",
    send: "ترشيح",
    yours: "المرشحون الذين قدّمهم وفدكم",
    done_title: "تم استلام الترشيح",
    done: "تسلّمت الأمانة ترشيحكم:",
    closed_title: "انتهت مهلة تقديم الترشيحات",
    closed: "لم يعد من الممكن تقديم ترشيحات لهذا الانتخاب. يُرجى مراسلة الأمانة.",
    not_valid_title: "هذا الرابط غير صالح",
    not_valid: "هذا الرابط ليس رابطًا لتقديم الترشيحات. يُرجى استخدام الرابط الوارد في دعوة الأمانة.",
    refused: "لم يُقبل الترشيح:",
    busy: "وردت ترشيحات كثيرة من هذا الرابط في وقت قصير؛ يُرجى المحاولة مجددًا بعد دقيقة.",
    elsewhere: "لا يمكن إرسال هذا النموذج إلا من صفحته. يُرجى فتح الرابط الوارد في الدعوة مجددًا.",
    no_name: "يُرجى كتابة اسم المرشح بلغة واحدة على الأقل.",
    too_long: "لا يتجاوز الاسم 200 حرف.",
};

fn words(language: &str) -> &'static Words {
    match language {
        "fr" => &FR,
        "ar" => &AR,
        _ => &EN,
    }
}

/// The item and the member a nomination link stands for, and the delegate's language.
fn find(app: &App, token: &str) -> Result<(BallotRef, Arc<Item>, String), Box<Response>> {
    member_link(app, token, BallotRef::NOMINATIONS).ok_or_else(|| {
        let text = format!("<p>{}</p>", EN.not_valid);
        Box::new(page(StatusCode::NOT_FOUND, "en", EN.not_valid_title, &text))
    })
}

/// Whether the item takes nominations now (its stage, its deadline).
fn taking_nominations(app: &App, item: &Item) -> bool {
    let defs = app.defs.load();
    defs.version(&item.version)
        .is_some_and(|w| crate::engine::taking_nominations(w, item))
}

fn closed(language: &str) -> Response {
    let w = words(language);
    let text = format!("<p>{}</p>", w.closed);
    page(StatusCode::CONFLICT, language, w.closed_title, &text)
}

fn form_page(
    app: &App,
    item: &Item,
    r: &BallotRef,
    language: &str,
    token: &str,
    error: Option<(StatusCode, String)>,
) -> Response {
    let w = words(language);
    let mut body = format!(
        "<p>{} <bdi>{}</bdi>.</p>",
        w.intro,
        escape(item.title_in(language, &app.title_of(item)))
    );
    let status = match &error {
        Some((status, message)) => {
            body.push_str(&format!(
                "<p class=\"error\" role=\"alert\">{} <bdi>{}</bdi></p>",
                w.refused,
                escape(message)
            ));
            *status
        }
        None => StatusCode::OK,
    };
    // The reader's own language first; that field is the one required.
    let mut fields = [
        ("en", w.name_en, "ltr"),
        ("fr", w.name_fr, "ltr"),
        ("ar", w.name_ar, "rtl"),
    ];
    fields.sort_by_key(|(l, _, _)| *l != language);
    body.push_str(&format!(
        "<form method=\"post\" action=\"/nominate/{}\"><p>{}</p>",
        escape(token),
        w.hint
    ));
    for (i, (l, label, dir)) in fields.iter().enumerate() {
        body.push_str(&format!(
            "<label for=\"name-{l}\">{label}</label><input id=\"name-{l}\" name=\"name.{l}\" lang=\"{l}\" dir=\"{dir}\" maxlength=\"200\"{} style=\"width:100%\">",
            if i == 0 { " required" } else { "" }
        ));
    }
    body.push_str(&format!(
        "<button type=\"submit\">{}</button></form>",
        w.send
    ));
    let mine: Vec<String> = item
        .candidates
        .iter()
        .filter(|c| c.nominated_by.as_deref() == Some(&r.member))
        .map(|c| format!("<li><bdi>{}</bdi></li>", escape(c.name_in(language))))
        .collect();
    if !mine.is_empty() {
        body.push_str(&format!(
            "<h2>{}</h2><ul id=\"nominated\">{}</ul>",
            w.yours,
            mine.join("")
        ));
    }
    page(status, language, w.title, &body)
}

/// `GET /nominate/{token}`: the member's nomination form, from the link in the call.
pub async fn nominate_page(State(app): AppState, Token(token): Token) -> Response {
    let (r, item, language) = match find(&app, &token) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    if !taking_nominations(&app, &item) {
        return closed(&language);
    }
    form_page(&app, &item, &r, &language, &token, None)
}

/// `POST /nominate/{token}`: records the member's nomination (fields `name.LANG`).
pub async fn nominate_post(
    State(app): AppState,
    Token(token): Token,
    headers: HeaderMap,
    peer: Option<axum::Extension<super::Peer>>,
    form: Result<Form<BTreeMap<String, String>>, FormRejection>,
) -> Response {
    let (r, item, language) = match find(&app, &token) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let w = words(&language);
    if !taking_nominations(&app, &item) {
        return closed(&language);
    }
    let busy = || {
        let busy = Some((StatusCode::TOO_MANY_REQUESTS, w.busy.to_string()));
        form_page(&app, &item, &r, &language, &token, busy)
    };
    if let Some(refused) = refused_post(
        &app,
        &headers,
        peer,
        &r,
        || elsewhere_page(&language, w.title, w.elsewhere),
        busy,
    ) {
        return refused;
    }
    let fields = form.map(|Form(f)| f).unwrap_or_default();
    let name = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("name.")?.to_string(), v.clone())))
        .collect();
    let event = nomination(name, None, Some(r.member.clone()));
    match app.writer.event(r.item.clone(), event, None).await {
        Ok(_) => {
            let item = app.items.get(&r.item).unwrap_or(item);
            let name = item
                .candidates
                .last()
                .map_or(String::new(), |c| c.name_in(&language).to_string());
            let text = format!(
                "<p>{} <strong id=\"candidate\"><bdi>{}</bdi></strong>.</p><p><a href=\"/nominate/{}\">{}</a></p>",
                w.done,
                escape(&name),
                escape(&token),
                w.title
            );
            page(StatusCode::OK, &language, w.done_title, &text)
        }
        Err(WriteError::Rejected(Rejection::NotTakingNominations)) => closed(&language),
        Err(e) => {
            let why = match &e {
                WriteError::Rejected(Rejection::BadInput(field, _)) if field == "name" => {
                    Some(w.no_name)
                }
                WriteError::Rejected(Rejection::BadInput(..)) => Some(w.too_long),
                _ => None,
            };
            let e = ApiError::from(e);
            let message = why.map_or(e.1, String::from);
            form_page(&app, &item, &r, &language, &token, Some((e.0, message)))
        }
    }
}
