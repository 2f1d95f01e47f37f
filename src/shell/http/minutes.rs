//! The draft summary record of a session, written from its state and the items decided in
//! it: place and dates, the members present (when they came and left), the adopted agenda,
//! and for each point what was decided (the question, how the vote was taken, the tally,
//! the rule and its explanation, the register number, how each member voted in a
//! roll-call), the statements members asked to have recorded, and the points deferred or
//! withdrawn. In Arabic, English or French, as one HTML page that prints well (A4, print
//! CSS, right to left in Arabic, every name and title isolated).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{ApiError, App, AppState, Param, escape};
use crate::engine::{Item, PointStatus, RoomMethod, counts};
use crate::rules::Verdict;

struct Words {
    record: &'static str,
    place: &'static str,
    opened: &'static str,
    closed: &'static str,
    not_closed: &'static str,
    present: &'static str,
    arrived: &'static str,
    left: &'static str,
    agenda: &'static str,
    agenda_adopted: &'static str,
    agenda_provisional: &'static str,
    point: &'static str,
    question: &'static str,
    roll_call: &'static str,
    show_of_hands: &'static str,
    electronic: &'static str,
    by_mail: &'static str,
    members_present: &'static str,
    tally: &'static str,
    rule: &'static str,
    decision: &'static str,
    number: &'static str,
    pending: &'static str,
    no_decision: &'static str,
    statements: &'static str,
    deferred: &'static str,
    withdrawn: &'static str,
    proposed_by: &'static str,
    verdicts: [&'static str; 5],
    draft: &'static str,
    /// Between the items of a list.
    comma: &'static str,
}

const EN: Words = Words {
    record: "Draft summary record",
    place: "Place",
    opened: "Opened",
    closed: "Closed",
    not_closed: "still sitting",
    present: "Members present",
    arrived: "arrived",
    left: "left",
    agenda: "Agenda",
    agenda_adopted: "The agenda was adopted",
    agenda_provisional: "The agenda has not been adopted.",
    point: "Point",
    question: "Question",
    roll_call: "Vote by roll-call",
    show_of_hands: "Vote by show of hands",
    electronic: "Electronic vote in the room",
    by_mail: "Sent to an email ballot of the members, closing",
    members_present: "members entitled to vote present",
    tally: "Tally",
    rule: "Rule applied",
    decision: "Decision",
    number: "Number",
    pending: "Not yet decided.",
    no_decision: "No decision under this point.",
    statements: "Statements for the record",
    deferred: "Deferred to a later session",
    withdrawn: "Withdrawn",
    proposed_by: "proposed by",
    verdicts: [
        "adopted",
        "rejected",
        "no quorum",
        "elected",
        "no candidate elected",
    ],
    draft: "Draft written by councild from the session's log; the record is approved at the next session.",
    comma: ", ",
};

const FR: Words = Words {
    record: "Projet de compte rendu analytique",
    place: "Lieu",
    opened: "Ouverture",
    closed: "Clôture",
    not_closed: "en séance",
    present: "Membres présents",
    arrived: "arrivée",
    left: "départ",
    agenda: "Ordre du jour",
    agenda_adopted: "L'ordre du jour a été adopté",
    agenda_provisional: "L'ordre du jour n'a pas été adopté.",
    point: "Point",
    question: "Question",
    roll_call: "Vote par appel nominal",
    show_of_hands: "Vote à main levée",
    electronic: "Vote électronique en séance",
    by_mail: "Renvoyé à un scrutin par courrier électronique des membres, clos le",
    members_present: "membres ayant le droit de vote présents",
    tally: "Résultat",
    rule: "Règle appliquée",
    decision: "Décision",
    number: "Numéro",
    pending: "Pas encore décidé.",
    no_decision: "Pas de décision au titre de ce point.",
    statements: "Déclarations consignées",
    deferred: "Reporté à une session ultérieure",
    withdrawn: "Retiré",
    proposed_by: "proposé par",
    verdicts: [
        "adopté",
        "rejeté",
        "quorum non atteint",
        "élection acquise",
        "aucun candidat élu",
    ],
    draft: "Projet établi par councild à partir du journal de la session ; le compte rendu est approuvé à la session suivante.",
    comma: ", ",
};

const AR: Words = Words {
    record: "مشروع المحضر الموجز",
    place: "المكان",
    opened: "الافتتاح",
    closed: "الاختتام",
    not_closed: "ما زالت منعقدة",
    present: "الأعضاء الحاضرون",
    arrived: "حضر",
    left: "غادر",
    agenda: "جدول الأعمال",
    agenda_adopted: "اعتُمد جدول الأعمال",
    agenda_provisional: "لم يُعتمد جدول الأعمال.",
    point: "البند",
    question: "السؤال",
    roll_call: "تصويت بنداء الأسماء",
    show_of_hands: "تصويت برفع الأيدي",
    electronic: "تصويت إلكتروني في القاعة",
    by_mail: "أُحيل إلى اقتراع الأعضاء بالبريد الإلكتروني، ويُغلق في",
    members_present: "من الأعضاء الذين يحق لهم التصويت حاضرون",
    tally: "النتيجة",
    rule: "القاعدة المطبقة",
    decision: "القرار",
    number: "الرقم",
    pending: "لم يُبت فيه بعد.",
    no_decision: "لا قرار في إطار هذا البند.",
    statements: "البيانات المدرجة في المحضر",
    deferred: "أُرجئ إلى دورة لاحقة",
    withdrawn: "سُحب",
    proposed_by: "اقترحه",
    verdicts: [
        "اعتُمد",
        "رُفض",
        "لم يكتمل النصاب",
        "تمّ الانتخاب",
        "لم يُنتخب أي مرشح",
    ],
    draft: "مشروع أعده councild من سجل الدورة؛ ويُعتمد المحضر في الدورة التالية.",
    comma: "، ",
};

fn words(language: &str) -> &'static Words {
    match language {
        "fr" => &FR,
        "ar" => &AR,
        _ => &EN,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinutesQuery {
    lang: Option<String>,
    /// The text as last circulated (from the log), rather than as it stands now.
    #[serde(default)]
    circulated: bool,
}

/// `GET /api/items/{id}/minutes?lang=ar|en|fr`: the record as an HTML page.
pub async fn minutes(
    State(app): AppState,
    Param(id): Param<String>,
    q: Result<Query<MinutesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let language = q.lang.unwrap_or_else(|| "en".into());
    if !LANGUAGES.contains(&language.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "`lang` must be ar, en or fr",
        ));
    }
    let item = app
        .items
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no item `{id}`")))?;
    if item.meeting.is_none() {
        return Err(crate::engine::Rejection::NotASession.into());
    }
    let html = match q.circulated {
        false => render(&app, &item, &language),
        true => circulated(&app, &id, &language)?,
    };
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Html(html),
    )
        .into_response())
}

/// The record in `language` as last circulated: the text kept in the session's log, whose
/// SHA-256 the log and the next session's approval name.
fn circulated(app: &App, id: &str, language: &str) -> Result<String, ApiError> {
    let mut last = None;
    for r in app.store.events(id) {
        if let crate::engine::Event::RecordCirculated { mut texts, .. } = r?.event
            && let Some(text) = texts.remove(language)
        {
            last = Some(text);
        }
    }
    last.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "the record has not been circulated in this language",
        )
    })
}

/// The languages a record is written in.
pub const LANGUAGES: [&str; 3] = ["ar", "en", "fr"];

/// A value placed among words of the page's direction.
fn bdi(text: &str) -> String {
    format!("<bdi>{}</bdi>", escape(text))
}

/// The record of a session in one language.
pub fn render(app: &App, item: &Item, language: &str) -> String {
    let w = words(language);
    let roster = app.roster.load();
    let defs = app.defs.load();
    let when = |t: DateTime<Utc>| {
        escape(&crate::locale::datetime(
            language,
            t.with_timezone(&app.tz).fixed_offset(),
        ))
    };
    let name = |m: &str| roster.member(m).map_or(m.to_string(), |x| x.name.clone());
    let Some(m) = item.meeting.as_ref() else {
        return String::new();
    };
    let title = item
        .inputs
        .get(&format!("title.{language}"))
        .cloned()
        .unwrap_or_else(|| app.title_of(item));
    let mut body = format!(
        "<header><p class=\"council\">{}</p><h1>{}</h1><p class=\"session\">{} <span class=\"ref\">({})</span></p></header>",
        escape(&roster.council),
        w.record,
        bdi(&title),
        bdi(&item.id)
    );
    body.push_str(&format!(
        "<dl><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>",
        w.place,
        bdi(item.inputs.get("place").map_or("", String::as_str)),
        w.opened,
        m.opened_at.map(when).unwrap_or_default(),
        w.closed,
        m.closed_at.map_or(w.not_closed.to_string(), when),
    ));
    // Attendance: each member who came, with the times they came and left.
    let mut members: Vec<&str> = Vec::new();
    for p in &m.attendance {
        if !members.contains(&p.member.as_str()) {
            members.push(&p.member);
        }
    }
    body.push_str(&format!(
        "<h2>{} ({})</h2><ul class=\"present\">",
        w.present,
        members.len()
    ));
    for member in &members {
        let times: Vec<String> = m
            .attendance
            .iter()
            .filter(|p| p.member == *member)
            .map(|p| {
                let t = p.at.with_timezone(&app.tz).format("%H:%M").to_string();
                format!("{} {}", if p.present { w.arrived } else { w.left }, bdi(&t))
            })
            .collect();
        body.push_str(&format!(
            "<li>{} <small>({})</small></li>",
            bdi(&name(member)),
            times.join(w.comma)
        ));
    }
    body.push_str("</ul>");
    // The agenda.
    let listed: Vec<_> = m
        .agenda
        .iter()
        .filter(|p| p.status == PointStatus::Listed)
        .collect();
    body.push_str(&format!("<h2>{}</h2>", w.agenda));
    match m.agenda_adopted_at {
        Some(at) => body.push_str(&format!("<p>{}: {}.</p>", w.agenda_adopted, when(at))),
        None => body.push_str(&format!("<p>{}</p>", w.agenda_provisional)),
    }
    body.push_str("<ol class=\"agenda\">");
    for p in &listed {
        body.push_str(&format!("<li>{}</li>", bdi(&p.title)));
    }
    body.push_str("</ol>");
    // Each point and what was decided.
    for (i, p) in listed.iter().enumerate() {
        body.push_str(&format!(
            "<section class=\"point\" id=\"point-{}\"><h2>{} {} — {}</h2>",
            p.number,
            w.point,
            i + 1,
            bdi(&p.title)
        ));
        if let Some(by) = &p.proposed_by {
            body.push_str(&format!(
                "<p><small>{} {}</small></p>",
                w.proposed_by,
                bdi(&name(by))
            ));
        }
        if !p.explanation.is_empty() {
            body.push_str(&format!("<p>{}</p>", bdi(&p.explanation)));
        }
        let decided = p.item.as_deref().and_then(|id| app.items.get(id));
        // Every vote taken on it in this session (a vote without quorum, then the next).
        let votes: Vec<crate::engine::Ballot> = decided
            .iter()
            .flat_map(|d| &d.ballots)
            .filter(|b| b.room.as_ref().is_some_and(|r| r.session == item.id))
            .cloned()
            .collect();
        match &decided {
            None => body.push_str(&format!("<p>{}</p>", w.no_decision)),
            Some(d) if votes.is_empty() => {
                // Sent to an email ballot from the meeting: taken in session by its
                // workflow, by mail now.
                let workflow = defs.version(&d.version);
                let by_mail = d.ballots.iter().rfind(|b| {
                    !b.in_session
                        && workflow
                            .and_then(|wf| wf.ballot(&b.stage))
                            .is_some_and(|s| s.in_session)
                });
                match by_mail {
                    Some(b) => {
                        let verdict = b.result.as_ref().and_then(|r| {
                            Verdict::ALL
                                .iter()
                                .position(|v| *v == r.verdict)
                                .map(|i| w.verdicts[i])
                        });
                        body.push_str(&format!(
                            "<p>{} {}{}</p>",
                            w.by_mail,
                            when(b.closes_at),
                            verdict
                                .map(|v| format!(": <span class=\"verdict\">{v}</span>"))
                                .unwrap_or_default()
                        ));
                    }
                    None => body.push_str(&format!("<p>{}</p>", w.pending)),
                }
            }
            Some(d) => {
                for b in &votes {
                    let workflow = defs.version(&d.version);
                    let spec = workflow.and_then(|wf| wf.ballot(&b.stage));
                    let label = |c: &str| {
                        spec.and_then(|s| s.labels.get(c))
                            .map_or(c.to_string(), |t| t.get(language).to_string())
                    };
                    let question = super::ballot::question(app, d, b, language);
                    let Some(room) = &b.room else { continue };
                    let method = match room.method {
                        RoomMethod::RollCall => w.roll_call,
                        RoomMethod::ShowOfHands => w.show_of_hands,
                        RoomMethod::Electronic => w.electronic,
                    };
                    let tally: Vec<String> = counts(b)
                        .choices
                        .iter()
                        .map(|(c, n)| format!("{} {}", bdi(&label(c)), n))
                        .collect();
                    body.push_str(&format!(
                    "<p><strong>{}:</strong> {}</p><p>{}: {} {}</p><p><strong>{}:</strong> {}</p>",
                    w.question,
                    bdi(&question),
                    method,
                    room.present.len(),
                    w.members_present,
                    w.tally,
                    tally.join(" · ")
                ));
                    // A recorded vote names how each member voted (a roll-call always does).
                    if room.method == RoomMethod::RollCall || b.recorded {
                        body.push_str("<ul class=\"roll-call\">");
                        for c in &b.choices {
                            let who: Vec<String> = b
                                .votes()
                                .filter(|(_, choice)| *choice == c)
                                .map(|(v, _)| bdi(&v.member_name))
                                .collect();
                            if !who.is_empty() {
                                body.push_str(&format!(
                                    "<li>{} ({}): {}</li>",
                                    bdi(&label(c)),
                                    who.len(),
                                    who.join(w.comma)
                                ));
                            }
                        }
                        body.push_str("</ul>");
                    }
                    if let Some(r) = &b.result {
                        let verdict = Verdict::ALL
                            .iter()
                            .position(|v| *v == r.verdict)
                            .map_or("", |i| w.verdicts[i]);
                        // The rule's arithmetic, without the verdict's English name before it.
                        let why = r
                            .explanation
                            .strip_prefix(r.verdict.as_str())
                            .and_then(|rest| rest.strip_prefix(" — "))
                            .unwrap_or(&r.explanation);
                        body.push_str(&format!(
                        "<p><strong>{}:</strong> <span class=\"verdict\">{}</span>{}</p><p class=\"rule\"><small>{}:</small></p><p class=\"rule\" dir=\"ltr\"><code>{}</code></p>",
                        w.decision,
                        verdict,
                        d.register_number
                            .as_ref()
                            .filter(|_| r.verdict == Verdict::Adopted)
                            .map(|n| format!(" — {} <strong class=\"number\">{}</strong>", w.number, bdi(n)))
                            .unwrap_or_default(),
                        w.rule,
                        escape(why),
                    ));
                    }
                }
            }
        }
        let said: Vec<String> = m
            .statements
            .iter()
            .filter(|s| s.point == Some(p.number))
            .map(|s| format!("<li>{}: {}</li>", bdi(&name(&s.member)), bdi(&s.text)))
            .collect();
        if !said.is_empty() {
            body.push_str(&format!(
                "<h3>{}</h3><ul class=\"statements\">{}</ul>",
                w.statements,
                said.join("")
            ));
        }
        body.push_str("</section>");
    }
    let general: Vec<String> = m
        .statements
        .iter()
        .filter(|s| {
            s.point
                .is_none_or(|n| !listed.iter().any(|p| p.number == n))
        })
        .map(|s| format!("<li>{}: {}</li>", bdi(&name(&s.member)), bdi(&s.text)))
        .collect();
    if !general.is_empty() {
        body.push_str(&format!(
            "<h2>{}</h2><ul class=\"statements\">{}</ul>",
            w.statements,
            general.join("")
        ));
    }
    for (status, heading) in [
        (PointStatus::Deferred, w.deferred),
        (PointStatus::Withdrawn, w.withdrawn),
    ] {
        let points: Vec<String> = m
            .agenda
            .iter()
            .filter(|p| p.status == status)
            .map(|p| format!("<li>{}</li>", bdi(&p.title)))
            .collect();
        if !points.is_empty() {
            body.push_str(&format!("<h2>{heading}</h2><ul>{}</ul>", points.join("")));
        }
    }
    body.push_str(&format!("<footer><p>{}</p></footer>", w.draft));
    let dir = crate::templates::direction(language);
    format!(
        "<!doctype html><html lang=\"{language}\" dir=\"{dir}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — {}</title><style>\
         @page{{size:A4;margin:2cm 2cm 2.2cm}}\
         body{{font-family:\"Noto Naskh Arabic\",\"Noto Serif\",\"DejaVu Serif\",Georgia,serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#111}}\
         header{{text-align:center;border-bottom:2px solid #333;margin-bottom:1rem}}h1{{font-size:1.6rem;margin:.2rem 0}}\
         .council{{font-variant:small-caps;letter-spacing:.05em;margin:0}}h2{{font-size:1.15rem;margin-top:1.4rem;border-bottom:1px solid #bbb}}\
         dt{{font-weight:bold;float:inline-start;min-width:7rem}}dd{{margin-inline-start:8rem}}\
         .present{{columns:2}}p.rule{{margin:.2rem 0}}section.point{{break-inside:avoid-page}}footer{{margin-top:2rem;border-top:1px solid #bbb;font-size:.85rem;color:#444}}\
         code{{font-family:\"DejaVu Sans Mono\",monospace;font-size:.85em}}\
         @media print{{body{{margin:0;max-width:none}}a{{color:inherit;text-decoration:none}}}}\
         </style></head><body>{body}</body></html>",
        w.record,
        escape(&title),
    )
}
