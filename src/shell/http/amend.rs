//! Amendments to an item's text: a member's page to propose one during the comment period,
//! from the signed link in the circulation mail (`/amend/TOKEN`, public, in the delegate's
//! language, no JavaScript, refused from another site, rate-limited as ballot links); the
//! admin API to record one for a member and to rule on each; the item page's section.

use axum::extract::State;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ballot::{Token, elsewhere_page, page, refused_post};
use super::{ApiError, App, AppState, Param, admin, dashboard, escape};
use crate::accounts::{Actor, Role};
use crate::engine::{Awaiting, Change, Event, Item, Rejection};
use crate::token::BallotRef;
use crate::writer::WriteError;

pub fn routes() -> Vec<super::Route> {
    use Role::Secretary;
    vec![
        (
            Method::POST,
            "/api/items/{id}/amendments",
            Secretary,
            post(propose_api),
        ),
        (
            Method::POST,
            "/api/items/{id}/amendments/{number}/ruling",
            Secretary,
            post(rule_api),
        ),
        (
            Method::POST,
            "/dashboard/items/{id}/amendments/{number}/ruling",
            Secretary,
            post(rule_dashboard),
        ),
        (
            Method::POST,
            "/api/items/{id}/consolidate",
            Secretary,
            post(consolidate_api),
        ),
        (
            Method::POST,
            "/dashboard/items/{id}/consolidate",
            Secretary,
            post(consolidate_dashboard),
        ),
    ]
}

struct Words {
    title: &'static str,
    intro: &'static str,
    how: &'static str,
    read: &'static str,
    passage: &'static str,
    replacement: &'static str,
    reason: &'static str,
    send: &'static str,
    yours: &'static str,
    done_title: &'static str,
    done: &'static str,
    next: &'static str,
    closed_title: &'static str,
    closed: &'static str,
    not_valid_title: &'static str,
    not_valid: &'static str,
    refused: &'static str,
    busy: &'static str,
    elsewhere: &'static str,
    nothing: &'static str,
    not_found: &'static str,
    twice: &'static str,
    not_text: &'static str,
    too_long: &'static str,
    /// An amendment's state: waiting for a ruling, receivable, and its fates.
    states: [&'static str; 6],
}

const EN: Words = Words {
    title: "Propose an amendment",
    intro: "Your delegation's amendment to the text of",
    how: "Copy the passage to change exactly as it stands in the current version (enough of it to be found only once), and write what replaces it; leave the replacement empty to delete the passage. Give it in each language you can.",
    read: "read the current version",
    passage: "Passage to change",
    replacement: "Replace it by",
    reason: "Reason (optional)",
    send: "Propose the amendment",
    yours: "Your delegation's amendments",
    done_title: "Amendment received",
    done: "Your amendment is recorded as amendment",
    next: "The Secretariat rules on whether it is receivable. After the comment period, each receivable amendment is put to the vote, the furthest-reaching first.",
    closed_title: "Amendments are closed",
    closed: "Amendments are proposed during the comment period, once every version of the text has been circulated.",
    not_valid_title: "This link is not valid",
    not_valid: "This link is not a link to propose amendments. Please use the link in the Secretariat's circulation notice.",
    refused: "The amendment was not recorded:",
    busy: "too many requests from this link in a short time; please try again in a minute.",
    elsewhere: "This form can only be sent from its own page. Please open the link in the notice again.",
    nothing: "give at least one passage to change.",
    not_found: "a passage is not in the current version: copy it exactly as it stands.",
    twice: "a passage appears more than once in the version: quote enough of it to be found once.",
    not_text: "this version is not plain text: please send the amendment to the Secretariat.",
    too_long: "a passage has at most 2,000 characters, a replacement or a reason 4,000.",
    states: [
        "awaiting the Secretariat's ruling",
        "receivable",
        "adopted",
        "rejected",
        "fallen (an adopted amendment changed the same passage)",
        "not receivable",
    ],
};

const FR: Words = Words {
    title: "Proposer un amendement",
    intro: "Amendement de votre délégation au texte de",
    how: "Recopiez le passage à modifier exactement tel qu'il figure dans la version en vigueur (assez pour qu'il n'y figure qu'une fois) et écrivez ce qui le remplace ; laissez le remplacement vide pour supprimer le passage. Donnez-le dans chaque langue que vous pouvez.",
    read: "lire la version en vigueur",
    passage: "Passage à modifier",
    replacement: "Le remplacer par",
    reason: "Motif (facultatif)",
    send: "Proposer l'amendement",
    yours: "Les amendements de votre délégation",
    done_title: "Amendement reçu",
    done: "Votre amendement est enregistré sous le numéro",
    next: "Le Secrétariat se prononce sur sa recevabilité. Après la période de commentaires, chaque amendement recevable est mis aux voix, en commençant par celui qui s'éloigne le plus du texte.",
    closed_title: "Les amendements sont clos",
    closed: "Les amendements se proposent pendant la période de commentaires, une fois toutes les versions du texte diffusées.",
    not_valid_title: "Ce lien n'est pas valide",
    not_valid: "Ce lien ne permet pas de proposer des amendements. Veuillez utiliser le lien de l'avis de diffusion du Secrétariat.",
    refused: "L'amendement n'a pas été enregistré :",
    busy: "trop de demandes depuis ce lien en peu de temps ; veuillez réessayer dans une minute.",
    elsewhere: "Ce formulaire ne peut être envoyé que depuis sa propre page. Veuillez rouvrir le lien de l'avis.",
    nothing: "indiquez au moins un passage à modifier.",
    not_found: "un passage ne figure pas dans la version en vigueur : recopiez-le exactement.",
    twice: "un passage figure plus d'une fois dans la version : citez-en assez pour qu'il n'y figure qu'une fois.",
    not_text: "cette version n'est pas du texte brut : veuillez adresser l'amendement au Secrétariat.",
    too_long: "un passage compte au plus 2 000 caractères, un remplacement ou un motif 4 000.",
    states: [
        "en attente de la décision du Secrétariat",
        "recevable",
        "adopté",
        "rejeté",
        "devenu sans objet (un amendement adopté modifiait le même passage)",
        "irrecevable",
    ],
};

const AR: Words = Words {
    title: "اقتراح تعديل",
    intro: "تعديل وفدكم على نص",
    how: "انسخوا الفقرة المراد تعديلها كما وردت حرفيًا في النسخة المعتمدة حاليًا (بما يكفي لأن ترد مرة واحدة فقط)، واكتبوا ما يحل محلها؛ واتركوا خانة البديل فارغة لحذف الفقرة. يُرجى تقديمه بكل لغة تستطيعونها.",
    read: "قراءة النسخة الحالية",
    passage: "الفقرة المراد تعديلها",
    replacement: "يُستعاض عنها بـ",
    reason: "المبرّر (اختياري)",
    send: "اقتراح التعديل",
    yours: "تعديلات وفدكم",
    done_title: "تم استلام التعديل",
    done: "سُجّل تعديلكم تحت الرقم",
    next: "تبتّ الأمانة في قبوله. وبعد انقضاء فترة إبداء الملاحظات، يُطرح كل تعديل مقبول للتصويت، بدءًا بالأبعد أثرًا.",
    closed_title: "انتهت مهلة تقديم التعديلات",
    closed: "تُقدَّم التعديلات خلال فترة إبداء الملاحظات، بعد تعميم جميع نسخ النص.",
    not_valid_title: "هذا الرابط غير صالح",
    not_valid: "هذا الرابط ليس رابطًا لاقتراح التعديلات. يُرجى استخدام الرابط الوارد في إشعار التعميم الصادر عن الأمانة.",
    refused: "لم يُسجَّل التعديل:",
    busy: "وردت طلبات كثيرة من هذا الرابط في وقت قصير؛ يُرجى المحاولة مجددًا بعد دقيقة.",
    elsewhere: "لا يمكن إرسال هذا النموذج إلا من صفحته. يُرجى فتح الرابط الوارد في الإشعار مجددًا.",
    nothing: "يُرجى إدخال فقرة واحدة على الأقل لتعديلها.",
    not_found: "إحدى الفقرات غير واردة في النسخة الحالية: يُرجى نسخها حرفيًا.",
    twice: "ترد إحدى الفقرات أكثر من مرة في النسخة: يُرجى اقتباس ما يكفي منها لتَرِد مرة واحدة.",
    not_text: "هذه النسخة ليست نصًا عاديًا: يُرجى إرسال التعديل إلى الأمانة.",
    too_long: "لا تتجاوز الفقرة 2000 حرف، ولا يتجاوز البديل أو المبرّر 4000 حرف.",
    states: [
        "في انتظار قرار الأمانة",
        "مقبول",
        "اعتُمد",
        "رُفض",
        "سقط (إذ عدّل تعديلٌ معتمد الفقرة نفسها)",
        "غير مقبول",
    ],
};

fn words(language: &str) -> &'static Words {
    match language {
        "fr" => &FR,
        "ar" => &AR,
        _ => &EN,
    }
}

/// The state of an amendment, as `states` names it.
fn state(a: &crate::engine::Amendment) -> usize {
    use crate::engine::Fate;
    match (a.fate, &a.ruling) {
        (Some(Fate::Adopted), _) => 2,
        (Some(Fate::Rejected), _) => 3,
        (Some(Fate::Fallen), _) => 4,
        (Some(Fate::NotReceivable), _) => 5,
        (None, Some(r)) if !r.receivable => 5,
        (None, Some(_)) => 1,
        (None, None) => 0,
    }
}

/// The item and member a link stands for, and the delegate's language.
fn find(
    app: &App,
    token: &str,
) -> Result<(BallotRef, std::sync::Arc<Item>, String), Box<Response>> {
    super::ballot::member_link(app, token, BallotRef::AMENDMENTS).ok_or_else(|| {
        Box::new(page(
            StatusCode::NOT_FOUND,
            "en",
            EN.not_valid_title,
            &format!("<p>{}</p>", EN.not_valid),
        ))
    })
}

/// The languages of the item's text, the reader's first; none when amendments are closed.
fn open_languages(app: &App, item: &Item, language: &str) -> Option<Vec<String>> {
    let defs = app.defs.load();
    let w = defs.version(&item.version)?;
    let spec = w.documents.as_ref()?;
    let complete = spec
        .languages
        .iter()
        .all(|l| item.documents.contains_key(l));
    if item.status != crate::engine::Status::Open || !w.takes_amendments(&item.stage) || !complete {
        return None;
    }
    let mut languages = spec.languages.clone();
    languages.sort_by_key(|l| l != language);
    Some(languages)
}

fn closed(language: &str) -> Response {
    let w = words(language);
    page(
        StatusCode::CONFLICT,
        language,
        w.closed_title,
        &format!("<p>{}</p>", w.closed),
    )
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
    let Some(languages) = open_languages(app, item, language) else {
        return closed(language);
    };
    let mut body = format!(
        "<p>{} <bdi>{}</bdi>.</p><p>{}</p>",
        w.intro,
        escape(&app.title_of(item)),
        w.how
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
    let current = item.texts();
    body.push_str(&format!(
        "<form method=\"post\" action=\"/amend/{}\">",
        escape(token)
    ));
    for l in &languages {
        let read = current
            .get(l)
            .map(|sha| {
                format!(
                    " (<a href=\"/texts/{}/{}\">{}</a>)",
                    escape(token),
                    escape(sha),
                    w.read
                )
            })
            .unwrap_or_default();
        body.push_str(&format!(
            "<fieldset><legend lang=\"{l}\">{}</legend>{read}\
             <label for=\"passage-{l}\">{}</label><textarea id=\"passage-{l}\" name=\"passage.{l}\" rows=\"3\" maxlength=\"2000\" lang=\"{l}\" dir=\"auto\" style=\"width:100%\"></textarea>\
             <label for=\"replacement-{l}\">{}</label><textarea id=\"replacement-{l}\" name=\"replacement.{l}\" rows=\"3\" maxlength=\"4000\" lang=\"{l}\" dir=\"auto\" style=\"width:100%\"></textarea></fieldset>",
            escape(crate::locale::language_name(l)),
            w.passage,
            w.replacement,
            l = escape(l),
        ));
    }
    body.push_str(&format!(
        "<label for=\"reason\">{}</label><textarea id=\"reason\" name=\"reason\" rows=\"3\" maxlength=\"4000\" dir=\"auto\" style=\"width:100%\"></textarea>\
         <button type=\"submit\">{}</button></form>",
        w.reason, w.send
    ));
    let mine: Vec<String> = item
        .amendments
        .iter()
        .filter(|a| a.member == r.member)
        .map(|a| format!("<li>{}: {}</li>", a.number, w.states[state(a)]))
        .collect();
    if !mine.is_empty() {
        body.push_str(&format!(
            "<h2>{}</h2><ul id=\"amendments\">{}</ul>",
            w.yours,
            mine.join("")
        ));
    }
    page(status, language, w.title, &body)
}

pub async fn amend_page(State(app): AppState, Token(token): Token) -> Response {
    match find(&app, &token) {
        Ok((r, item, language)) => form_page(&app, &item, &r, &language, &token, None),
        Err(refusal) => *refusal,
    }
}

/// `passage.LANG` and `replacement.LANG` fields: the changes, for the languages whose
/// passage is given.
fn changes(fields: &[(String, String)]) -> std::collections::BTreeMap<String, Change> {
    let field = |name: String| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("passage.")?, v)))
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(l, passage)| {
            let change = Change {
                passage: passage.trim().to_string(),
                replacement: field(format!("replacement.{l}")),
            };
            (l.to_string(), change)
        })
        .collect()
}

pub async fn amend_post(
    State(app): AppState,
    Token(token): Token,
    headers: HeaderMap,
    peer: Option<axum::Extension<super::Peer>>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (r, item, language) = match find(&app, &token) {
        Ok(found) => found,
        Err(refusal) => return *refusal,
    };
    let w = words(&language);
    if open_languages(&app, &item, &language).is_none() {
        return closed(&language);
    }
    let busy = || {
        let busy = Some((StatusCode::TOO_MANY_REQUESTS, w.busy.to_string()));
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
    let fields = form.map(|Form(f)| f).unwrap_or_default();
    let changes = changes(&fields);
    if changes.is_empty() {
        let nothing = Some((StatusCode::UNPROCESSABLE_ENTITY, w.nothing.to_string()));
        return form_page(&app, &item, &r, &language, &token, nothing);
    }
    let reason = fields
        .iter()
        .find(|(k, _)| k == "reason")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let event = Event::AmendmentProposed {
        member: r.member.clone(),
        changes,
        reason,
        against: Default::default(),
        spans: Default::default(),
    };
    match app.writer.event(r.item.clone(), event, None).await {
        Ok(_) => {
            let item = app.items.get(&r.item).unwrap_or(item);
            let number = item
                .amendments
                .iter()
                .rev()
                .find(|a| a.member == r.member)
                .map_or(0, |a| a.number);
            page(
                StatusCode::OK,
                &language,
                w.done_title,
                &format!(
                    "<p>{} <strong id=\"number\">{number}</strong>.</p><p>{}</p><p><a href=\"/amend/{}\">{}</a></p>",
                    w.done,
                    w.next,
                    escape(&token),
                    w.title
                ),
            )
        }
        Err(WriteError::Rejected(Rejection::NotTakingAmendments)) => closed(&language),
        Err(e) => {
            let why = match &e {
                WriteError::Rejected(Rejection::BadInput(field, why))
                    if field.starts_with("passage.") =>
                {
                    Some(if why.contains("more than once") {
                        w.twice
                    } else if why.contains("not plain text") {
                        w.not_text
                    } else if why.contains("not in the current") {
                        w.not_found
                    } else {
                        w.too_long
                    })
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeBody {
    member: String,
    /// Language → the passage and what replaces it.
    changes: std::collections::BTreeMap<String, Change>,
    #[serde(default)]
    reason: String,
}

/// `POST /api/items/{id}/amendments`: an amendment recorded for a member.
async fn propose_api(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<ProposeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = admin::body(b)?;
    let event = Event::AmendmentProposed {
        member: b.member,
        changes: b.changes,
        reason: b.reason,
        against: Default::default(),
        spans: Default::default(),
    };
    admin::record(&app, &actor, id, event).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulingBody {
    receivable: bool,
    /// 1 is put to the vote first.
    rank: Option<u32>,
    #[serde(default)]
    reason: String,
}

/// `POST /api/items/{id}/amendments/{number}/ruling`.
async fn rule_api(
    State(app): AppState,
    actor: Actor,
    Param((id, number)): Param<(String, u32)>,
    b: Result<Json<RulingBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = admin::body(b)?;
    let event = Event::AmendmentRuled {
        amendment: number,
        receivable: b.receivable,
        rank: b.rank,
        reason: b.reason,
    };
    admin::record(&app, &actor, id, event).await
}

#[derive(Deserialize)]
struct RulingForm {
    receivable: String,
    #[serde(default)]
    rank: String,
    #[serde(default)]
    reason: String,
}

/// The item page's ruling form.
async fn rule_dashboard(
    State(app): AppState,
    actor: Actor,
    Param((id, number)): Param<(String, u32)>,
    headers: HeaderMap,
    form: Result<Form<RulingForm>, FormRejection>,
) -> Response {
    let back = format!("/dashboard/items/{}", super::path_segment(&id));
    if let Some(refusal) = dashboard::from_elsewhere(&headers) {
        return refusal;
    }
    let Ok(Form(f)) = form else {
        return dashboard::refused(dashboard::bad_form(), &back);
    };
    let rank = match f.rank.trim() {
        "" => None,
        r => match r.parse::<u32>() {
            Ok(r) if r > 0 => Some(r),
            _ => {
                let e = ApiError::new(StatusCode::BAD_REQUEST, "the rank is a whole number from 1");
                return dashboard::refused(e, &back);
            }
        },
    };
    let event = Event::AmendmentRuled {
        amendment: number,
        receivable: f.receivable == "yes",
        rank,
        reason: f.reason.trim().to_string(),
    };
    match admin::record(&app, &actor, id, event).await {
        Ok(_) => Redirect::to(&format!("{back}#amendments")).into_response(),
        Err(e) => dashboard::refused(e, &back),
    }
}

/// Asks again for the texts with the adopted amendments applied; an error when they still
/// cannot be made (the retry stays in the log).
async fn consolidate(app: &App, actor: &Actor, id: &str) -> Result<String, ApiError> {
    let done = app
        .writer
        .event(
            id.to_string(),
            Event::ConsolidationRetried,
            Some(actor.name.clone()),
        )
        .await?;
    match done.stopped {
        Some(why) => Err(ApiError::new(StatusCode::CONFLICT, why)),
        None => Ok(done.hash),
    }
}

/// `POST /api/items/{id}/consolidate`.
async fn consolidate_api(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
) -> Result<Json<Value>, ApiError> {
    let event = consolidate(&app, &actor, &id).await?;
    let item = app.items.get(&id).map(|i| admin::item_view(&app, &i));
    Ok(Json(json!({ "event": event, "item": item })))
}

/// The item page's retry button.
async fn consolidate_dashboard(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
) -> Response {
    let back = format!("/dashboard/items/{}", super::path_segment(&id));
    if let Some(refusal) = dashboard::from_elsewhere(&headers) {
        return refusal;
    }
    match consolidate(&app, &actor, &id).await {
        Ok(_) => Redirect::to(&format!("{back}#amendments")).into_response(),
        Err(e) => dashboard::refused(e, &back),
    }
}

/// The item page's section on the amendments: each one's changes, its proposer and its
/// state, and (for a secretary, before its vote) the form to rule on it; when the amended
/// texts could not be made, what to do and the button to retry.
pub(super) fn section(item: &Item, may_rule: bool) -> String {
    if item.amendments.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h2 id=\"amendments\">Amendments</h2><table><thead><tr><th>No.</th><th>Member</th><th>Changes</th><th>Reason</th><th>State</th></tr></thead><tbody>",
    );
    for a in &item.amendments {
        let changes: Vec<String> = a
            .changes
            .iter()
            .map(|(l, c)| {
                format!(
                    "{}: replace <q><bdi lang=\"{l}\">{}</bdi></q> by <q><bdi lang=\"{l}\">{}</bdi></q>",
                    escape(crate::locale::language_name(l)),
                    escape(&c.passage),
                    escape(&c.replacement),
                    l = escape(l),
                )
            })
            .collect();
        let mut state = EN.states[state(a)].to_string();
        if let Some(rank) = a.ruling.as_ref().and_then(|r| r.rank) {
            state.push_str(&format!(", rank {rank}"));
        }
        let ruling = if may_rule && a.ballot.is_none() && a.fate.is_none() {
            format!(
                "<form method=\"post\" action=\"/dashboard/items/{}/amendments/{}/ruling\">\
                 <select name=\"receivable\" aria-label=\"Ruling\"><option value=\"yes\">receivable</option><option value=\"no\">not receivable</option></select> \
                 <input name=\"rank\" size=\"2\" aria-label=\"Rank (1 is voted first)\" placeholder=\"rank\"> \
                 <input name=\"reason\" size=\"20\" aria-label=\"Reason\" placeholder=\"reason\"> <button type=\"submit\">Rule</button></form>",
                super::path_segment(&item.id),
                a.number
            )
        } else {
            String::new()
        };
        html.push_str(&format!(
            "<tr id=\"amendment-{n}\"><td>{n}</td><td>{}</td><td>{}</td><td><bdi>{}</bdi></td><td class=\"state\">{}{ruling}</td></tr>",
            escape(&a.member),
            changes.join("<br>"),
            escape(&a.reason),
            escape(&state),
            n = a.number,
        ));
    }
    html.push_str("</tbody></table>");
    if item.awaiting == Some(Awaiting::Texts) {
        html.push_str("<p class=\"error\" role=\"alert\">The texts with the adopted amendments could not be made: a version they amend cannot be read from the store (the daemon's log says which). The item waits here rather than put the unamended texts to the vote. Give that version's file again, which repairs the stored copy, then retry.</p>");
        if may_rule {
            html.push_str(&format!(
                "<form method=\"post\" action=\"/dashboard/items/{}/consolidate\"><button type=\"submit\">Make the amended texts again</button></form>",
                super::path_segment(&item.id)
            ));
        }
    }
    html
}
