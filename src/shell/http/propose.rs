//! A member's page for proposing agenda points during a session's call for points, on the
//! public listener, from the signed link in the call (`/propose/TOKEN`), in the delegate's
//! language. No JavaScript; a post from another site is refused; the link's rate limit is
//! the ballot links' one.

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::ballot::{Token, elsewhere_page, page, refused_post};
use super::{ApiError, App, AppState, escape};
use crate::engine::{Event, Item, PointStatus};
use crate::token::BallotRef;
use crate::writer::WriteError;

struct Words {
    title: &'static str,
    intro: &'static str,
    point: &'static str,
    explanation: &'static str,
    url: &'static str,
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
    no_title: &'static str,
    too_long: &'static str,
    bad_url: &'static str,
}

const EN: Words = Words {
    title: "Propose a point for the agenda",
    intro: "Your delegation's proposal for the agenda of",
    point: "Title of the point",
    explanation: "Short explanation",
    url: "Link to a document (optional)",
    send: "Propose",
    yours: "Points your delegation has proposed",
    done_title: "Proposal received",
    done: "Your point is on the provisional agenda as point",
    closed_title: "The call for points is closed",
    closed: "Points can no longer be proposed for this session. Please write to the Secretariat.",
    not_valid_title: "This link is not valid",
    not_valid: "This link is not a link to propose agenda points. Please use the link in the Secretariat's call for points.",
    refused: "The proposal was not accepted:",
    busy: "too many proposals from this link in a short time; please try again in a minute.",
    elsewhere: "This form can only be sent from its own page. Please open the link in the call again.",
    no_title: "the point needs a title.",
    too_long: "a title has at most 300 characters, an explanation 4,000.",
    bad_url: "the document's link must start with https:// or http://.",
};

const FR: Words = Words {
    title: "Proposer un point pour l'ordre du jour",
    intro: "Proposition de votre délégation pour l'ordre du jour de la session",
    point: "Titre du point",
    explanation: "Brève explication",
    url: "Lien vers un document (facultatif)",
    send: "Proposer",
    yours: "Points proposés par votre délégation",
    done_title: "Proposition reçue",
    done: "Votre point figure à l'ordre du jour provisoire sous le numéro",
    closed_title: "L'appel à propositions est clos",
    closed: "Il n'est plus possible de proposer des points pour cette session. Veuillez écrire au Secrétariat.",
    not_valid_title: "Ce lien n'est pas valide",
    not_valid: "Ce lien ne permet pas de proposer des points. Veuillez utiliser le lien de l'appel du Secrétariat.",
    refused: "La proposition n'a pas été acceptée :",
    busy: "trop de propositions depuis ce lien en peu de temps ; veuillez réessayer dans une minute.",
    elsewhere: "Ce formulaire ne peut être envoyé que depuis sa propre page. Veuillez rouvrir le lien de l'appel.",
    no_title: "le point doit avoir un titre.",
    too_long: "un titre compte au plus 300 caractères, une explication 4 000.",
    bad_url: "le lien du document doit commencer par https:// ou http://.",
};

const AR: Words = Words {
    title: "اقتراح بند لجدول الأعمال",
    intro: "اقتراح وفدكم لجدول أعمال",
    point: "عنوان البند",
    explanation: "شرح موجز",
    url: "رابط وثيقة (اختياري)",
    send: "اقتراح",
    yours: "البنود التي اقترحها وفدكم",
    done_title: "تم استلام الاقتراح",
    done: "أُدرج بندكم في جدول الأعمال المؤقت تحت الرقم",
    closed_title: "انتهت مهلة تقديم المقترحات",
    closed: "لم يعد من الممكن اقتراح بنود لهذه الدورة. يُرجى مراسلة الأمانة.",
    not_valid_title: "هذا الرابط غير صالح",
    not_valid: "هذا الرابط ليس رابطًا لاقتراح بنود. يُرجى استخدام الرابط الوارد في دعوة الأمانة.",
    refused: "لم يُقبل الاقتراح:",
    busy: "وردت مقترحات كثيرة من هذا الرابط في وقت قصير؛ يُرجى المحاولة مجددًا بعد دقيقة.",
    elsewhere: "لا يمكن إرسال هذا النموذج إلا من صفحته. يُرجى فتح الرابط الوارد في الدعوة مجددًا.",
    no_title: "يجب أن يكون للبند عنوان.",
    too_long: "لا يتجاوز العنوان 300 حرف، ولا يتجاوز الشرح 4000 حرف.",
    bad_url: "يجب أن يبدأ رابط الوثيقة بـ https:// أو http://.",
};

fn words(language: &str) -> &'static Words {
    match language {
        "fr" => &FR,
        "ar" => &AR,
        _ => &EN,
    }
}

/// The session and the member a link stands for, and the delegate's language.
fn find(
    app: &App,
    token: &str,
) -> Result<(BallotRef, std::sync::Arc<Item>, String), Box<Response>> {
    super::ballot::member_link(app, token, BallotRef::PROPOSALS)
        .filter(|(_, item, _)| item.meeting.is_some())
        .ok_or_else(|| {
            Box::new(page(
                StatusCode::NOT_FOUND,
                "en",
                EN.not_valid_title,
                &format!("<p>{}</p>", EN.not_valid),
            ))
        })
}

fn taking_proposals(app: &App, item: &Item) -> bool {
    let defs = app.defs.load();
    item.status == crate::engine::Status::Open
        && defs
            .version(&item.version)
            .and_then(|w| w.stages.get(&item.stage))
            .is_some_and(|s| s.proposals)
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
        escape(&app.title_of(item))
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
    body.push_str(&format!(
        "<form method=\"post\" action=\"/propose/{token}\">\
         <label for=\"title\">{}</label><input id=\"title\" name=\"title\" required maxlength=\"300\" dir=\"auto\" style=\"width:100%\">\
         <label for=\"explanation\">{}</label><textarea id=\"explanation\" name=\"explanation\" rows=\"4\" maxlength=\"4000\" dir=\"auto\" style=\"width:100%\"></textarea>\
         <label for=\"url\">{}</label><input id=\"url\" name=\"url\" type=\"url\" dir=\"ltr\" style=\"width:100%\">\
         <button type=\"submit\">{}</button></form>",
        w.point, w.explanation, w.url, w.send,
        token = escape(token),
    ));
    let mine: Vec<String> = item
        .meeting
        .iter()
        .flat_map(|m| &m.agenda)
        .filter(|p| p.proposed_by.as_deref() == Some(&r.member) && p.status == PointStatus::Listed)
        .map(|p| format!("<li><bdi>{}</bdi></li>", escape(&p.title)))
        .collect();
    if !mine.is_empty() {
        body.push_str(&format!(
            "<h2>{}</h2><ul id=\"proposed\">{}</ul>",
            w.yours,
            mine.join("")
        ));
    }
    page(status, language, w.title, &body)
}

pub async fn propose_page(State(app): AppState, Token(token): Token) -> Response {
    let (r, item, language) = match find(&app, &token) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    if !taking_proposals(&app, &item) {
        let w = words(&language);
        return page(
            StatusCode::CONFLICT,
            &language,
            w.closed_title,
            &format!("<p>{}</p>", w.closed),
        );
    }
    form_page(&app, &item, &r, &language, &token, None)
}

#[derive(Deserialize)]
pub struct ProposalForm {
    title: String,
    #[serde(default)]
    explanation: String,
    #[serde(default)]
    url: String,
}

pub async fn propose_post(
    State(app): AppState,
    Token(token): Token,
    headers: HeaderMap,
    peer: Option<axum::Extension<super::Peer>>,
    form: Result<Form<ProposalForm>, FormRejection>,
) -> Response {
    let (r, item, language) = match find(&app, &token) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let w = words(&language);
    if !taking_proposals(&app, &item) {
        return page(
            StatusCode::CONFLICT,
            &language,
            w.closed_title,
            &format!("<p>{}</p>", w.closed),
        );
    }
    let busy = || {
        let busy = Some((StatusCode::TOO_MANY_REQUESTS, w.busy.into()));
        form_page(&app, &item, &r, &language, &token, busy)
    };
    let refused = refused_post(
        &app,
        &headers,
        peer,
        &r,
        || elsewhere_page(&language, w.title, w.elsewhere),
        busy,
    );
    if let Some(refused) = refused {
        return refused;
    }
    let Ok(Form(f)) = form else {
        return form_page(
            &app,
            &item,
            &r,
            &language,
            &token,
            Some((StatusCode::BAD_REQUEST, w.point.into())),
        );
    };
    let event = Event::PointAdded {
        title: f.title,
        explanation: f.explanation,
        url: Some(f.url.trim().to_string()).filter(|u| !u.is_empty()),
        item: None,
        member: Some(r.member.clone()),
        carried_from: None,
    };
    match app.writer.event(r.item.clone(), event, None).await {
        Ok(_) => {
            let item = app.items.get(&r.item).unwrap_or(item);
            let place = item
                .meeting
                .iter()
                .flat_map(|m| &m.agenda)
                .filter(|p| p.status == PointStatus::Listed)
                .count();
            page(
                StatusCode::OK,
                &language,
                w.done_title,
                &format!(
                    "<p>{} {place}.</p><p><a href=\"/propose/{}\">{}</a></p>",
                    w.done,
                    escape(&token),
                    w.title
                ),
            )
        }
        Err(WriteError::Rejected(crate::engine::Rejection::NotTakingProposals)) => page(
            StatusCode::CONFLICT,
            &language,
            w.closed_title,
            &format!("<p>{}</p>", w.closed),
        ),
        Err(e) => {
            use crate::engine::Rejection::{BadInput, NoTitle};
            let why = match &e {
                WriteError::Rejected(NoTitle) => Some(w.no_title),
                WriteError::Rejected(BadInput(field, _)) if field == "url" => Some(w.bad_url),
                WriteError::Rejected(BadInput(..)) => Some(w.too_long),
                _ => None,
            };
            let e = ApiError::from(e);
            let message = why.map_or(e.1, String::from);
            form_page(&app, &item, &r, &language, &token, Some((e.0, message)))
        }
    }
}
