//! Sessions of the council, on the admin listener: the agenda, attendance, the votes taken
//! in the room, statements for the record, closing the meeting, as JSON and as the page the
//! secretariat works from during a meeting.
//!
//! Each form of the meeting page calls the same function as its API route. Attendance and
//! the session a vote is taken in come from the session's own state in the writer, never
//! from the request, so a vote is checked against who is present when it is recorded.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{body, record};
use super::dashboard::{after, bad_form, from_elsewhere, layout, refused};
use super::{ApiError, App, AppState, Param, escape, path_segment};
use crate::accounts::{Actor, Role};
use crate::engine::{Event, Item, PointStatus, Rejection, RoomMethod, counts};
use crate::rules::Counts;

pub fn routes() -> Vec<super::Route> {
    use Role::{Observer, Secretary};
    let s = |path, handler| (Method::POST, path, Secretary, handler);
    vec![
        s("/api/items/{id}/agenda", post(add_point)),
        s("/api/items/{id}/agenda/{point}", post(change_point)),
        s("/api/items/{id}/attendance", post(attendance)),
        s("/api/items/{id}/statements", post(statement)),
        s(
            "/api/items/{id}/meeting/adopt-agenda",
            records(Event::AgendaAdopted),
        ),
        s(
            "/api/items/{id}/meeting/close",
            records(Event::MeetingClosed),
        ),
        s("/api/items/{id}/next", records(Event::MovedOn)),
        s("/api/items/{id}/record", post(record_vote)),
        (
            Method::GET,
            "/dashboard/items/{id}/meeting",
            Observer,
            get(meeting_page),
        ),
        s("/dashboard/items/{id}/meeting", post(meeting_post)),
        (
            Method::GET,
            "/api/items/{id}/minutes",
            Observer,
            get(super::minutes::minutes),
        ),
        s("/api/items/{id}/minutes/circulate", post(circulate)),
        s("/api/items/{id}/email-ballot", post(email_ballot)),
        (
            Method::GET,
            "/dashboard/items/{id}/minutes",
            Observer,
            get(super::minutes::minutes),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointBody {
    title: Option<String>,
    #[serde(default)]
    explanation: String,
    url: Option<String>,
    /// An item to decide under the point; its title is the point's when none is given.
    item: Option<String>,
}

async fn add_point(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<PointBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    add(&app, &actor, id, b).await
}

async fn add(app: &App, by: &Actor, id: String, b: PointBody) -> Result<Json<Value>, ApiError> {
    let title = match (b.title.filter(|t| !t.trim().is_empty()), &b.item) {
        (Some(t), _) => t,
        (None, Some(other)) => match app.items.get(other) {
            Some(i) => app.title_of(&i),
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no item `{other}`"),
                ));
            }
        },
        (None, None) => String::new(),
    };
    let event = Event::PointAdded {
        title,
        explanation: b.explanation,
        url: b.url.filter(|u| !u.trim().is_empty()),
        item: b.item,
        member: None,
        carried_from: None,
    };
    record(app, by, id, event).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointChange {
    /// The point's new place on the agenda, 1 for the first.
    place: Option<usize>,
    status: Option<PointStatus>,
}

async fn change_point(
    State(app): AppState,
    actor: Actor,
    Param((id, point)): Param<(String, u32)>,
    b: Result<Json<PointChange>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let event = match body(b)? {
        PointChange {
            place: Some(place),
            status: None,
        } => Event::PointMoved { point, place },
        PointChange {
            place: None,
            status: Some(status),
        } => Event::PointMarked { point, status },
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "give either `place` or `status`",
            ));
        }
    };
    record(&app, &actor, id, event).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttendanceBody {
    #[serde(default)]
    present: Vec<String>,
    #[serde(default)]
    absent: Vec<String>,
}

async fn attendance(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<AttendanceBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let event = Event::Attendance {
        arrived: b.present,
        left: b.absent,
    };
    record(&app, &actor, id, event).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementBody {
    member: String,
    point: Option<u32>,
    text: String,
}

async fn statement(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<StatementBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    let event = Event::StatementRecorded {
        member: b.member,
        point: b.point,
        text: b.text,
    };
    record(&app, &actor, id, event).await
}

/// A route that records one event, with no body (adopting the agenda, closing the
/// meeting, moving an item on).
fn records(event: Event) -> axum::routing::MethodRouter<std::sync::Arc<App>> {
    post(
        move |State(app): AppState, actor: Actor, Param(id): Param<String>| {
            let event = event.clone();
            async move { record(&app, &actor, id, event).await }
        },
    )
}

/// A vote taken in the room: `votes` (choice → members) for a roll-call, `counts`
/// (choice → number) for a show of hands, `electronic` to open or close an electronic
/// vote in the room.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordBody {
    votes: Option<BTreeMap<String, Vec<String>>>,
    counts: Option<BTreeMap<String, u64>>,
    electronic: Option<Electronic>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Electronic {
    Open,
    Close,
}

async fn record_vote(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<RecordBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    record_in_room(&app, &actor, id, b).await
}

async fn record_in_room(
    app: &App,
    by: &Actor,
    id: String,
    b: RecordBody,
) -> Result<Json<Value>, ApiError> {
    let (method, votes, hands) = match (b.votes, b.counts, b.electronic) {
        (None, None, Some(_)) => (RoomMethod::Electronic, BTreeMap::new(), BTreeMap::new()),
        (Some(lists), None, None) => {
            let mut votes = BTreeMap::new();
            for (choice, members) in lists {
                for m in members {
                    if votes.insert(m.clone(), choice.clone()).is_some() {
                        return Err(Rejection::CountedTwice(m).into());
                    }
                }
            }
            (RoomMethod::RollCall, votes, BTreeMap::new())
        }
        (None, Some(hands), None) => (RoomMethod::ShowOfHands, BTreeMap::new(), hands),
        _ => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "give one of `votes` (a roll-call), `counts` (a show of hands) or `electronic` (open or close an electronic vote)",
            ));
        }
    };
    let item = app
        .items
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no item `{id}`")))?;
    // The ballot open now (the engine says why when it is not one taken in session).
    let ballot = item
        .ballots
        .iter()
        .rposition(|b| b.result.is_none())
        .unwrap_or(item.ballots.len().saturating_sub(1));
    let event = match b.electronic {
        Some(Electronic::Open) => Event::RoomVoteOpened {
            ballot,
            session: String::new(),
            present: Vec::new(),
        },
        Some(Electronic::Close) => Event::RoomVoteClosed { ballot },
        None => Event::VoteRecorded {
            ballot,
            session: String::new(),
            present: Vec::new(),
            method,
            votes,
            hands,
        },
    };
    let Json(mut answer) = record(app, by, id.clone(), event).await?;
    if let Some(b) = app
        .items
        .get(&id)
        .and_then(|i| i.ballots.get(ballot).cloned())
    {
        answer["result"] = json!({
            "verdict": b.result.as_ref().map(|r| r.verdict.as_str()),
            "explanation": b.result.as_ref().map(|r| r.explanation.clone()),
            "counts": counts(&b).choices,
            "present": b.room.as_ref().map(|r| r.present.len()),
            "cast": counts(&b).cast(),
            "method": method,
        });
    }
    Ok(Json(answer))
}

/// The draft record is circulated: its text in each language is hashed and the hashes
/// entered in the session's log, so that the version approved is the version circulated.
async fn circulate(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
) -> Result<Json<Value>, ApiError> {
    circulate_record(&app, &actor, id).await
}

async fn circulate_record(app: &App, actor: &Actor, id: String) -> Result<Json<Value>, ApiError> {
    let item = app
        .items
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no item `{id}`")))?;
    if item.meeting.is_none() {
        return Err(Rejection::NotASession.into());
    }
    let texts: BTreeMap<String, String> = super::minutes::LANGUAGES
        .iter()
        .map(|l| (l.to_string(), super::minutes::render(app, &item, l)))
        .collect();
    let hashes: BTreeMap<String, String> = texts
        .iter()
        .map(|(l, html)| {
            let digest = <sha2::Sha256 as sha2::Digest>::digest(html.as_bytes());
            (l.clone(), hex::encode(digest))
        })
        .collect();
    let event = Event::RecordCirculated {
        hashes: hashes.clone(),
        texts,
    };
    let Json(mut answer) = record(app, actor, id, event).await?;
    answer["hashes"] = json!(hashes);
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBallotBody {
    closes_at: chrono::DateTime<chrono::Utc>,
}

/// An item's open ballot taken in session goes to an email ballot instead.
async fn email_ballot(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    b: Result<Json<EmailBallotBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let b = body(b)?;
    send_to_email_ballot(&app, &actor, id, b.closes_at).await
}

async fn send_to_email_ballot(
    app: &App,
    actor: &Actor,
    id: String,
    closes_at: chrono::DateTime<chrono::Utc>,
) -> Result<Json<Value>, ApiError> {
    let item = app
        .items
        .get(&id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no item `{id}`")))?;
    let ballot = item
        .ballots
        .iter()
        .rposition(|b| b.result.is_none())
        .unwrap_or(item.ballots.len().saturating_sub(1));
    let event = Event::SentToEmailBallot { ballot, closes_at };
    record(app, actor, id, event).await
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        crate::writer::WriteError::Rejected(r).into()
    }
}

/// The session of the council that has `item` on its agenda and sits now, if one does.
fn sitting_on(app: &App, item: &str) -> Option<std::sync::Arc<Item>> {
    app.items.all().into_iter().find(|s| {
        s.status == crate::engine::Status::Open
            && s.meeting.as_ref().is_some_and(|m| {
                m.opened_at.is_some() && m.closed_at.is_none() && m.point_of(item).is_some()
            })
    })
}

/// The API's view of a session: its agenda (each point with its item's state), who is
/// present, and the statements for the record.
pub fn meeting_json(app: &App, item: &Item) -> Option<Value> {
    let m = item.meeting.as_ref()?;
    let agenda: Vec<Value> = m
        .agenda
        .iter()
        .map(|p| {
            let mut v = json!(p);
            if let Some(decided) = p.item.as_deref().and_then(|i| app.items.get(i)) {
                v["decision"] = json!({
                    "stage": decided.stage, "status": decided.status.as_str(),
                    "outcome": decided.outcome, "register_number": decided.register_number,
                });
            }
            v
        })
        .collect();
    Some(json!({
        "agenda": agenda, "present": m.present(), "attendance": m.attendance,
        "statements": m.statements, "opened_at": m.opened_at, "closed_at": m.closed_at,
        "circulated": m.circulated,
        "agenda_adopted_at": m.agenda_adopted_at,
    }))
}

/// The dashboard's view of a session during its meeting: the agenda, attendance with one
/// button per member, the vote being recorded and the quorum with those present.
async fn meeting_page(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
) -> Result<Response, ApiError> {
    let Some(item) = app.items.get(&id) else {
        return Ok(super::dashboard::no_such_item());
    };
    let Some(m) = item.meeting.as_ref() else {
        return Ok(layout(
            StatusCode::NOT_FOUND,
            "Not a session",
            true,
            "<p>This item is not a session of the council.</p>",
        ));
    };
    let acts = actor.role >= Role::Secretary && m.closed_at.is_none();
    let sitting = m.opened_at.is_some() && m.closed_at.is_none();
    let roster = app.roster.load();
    let here = format!("/dashboard/items/{}/meeting", path_segment(&id));
    let button = |action: &str, fields: &[(&str, &str)], label: &str| {
        let hidden: String = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                    escape(v)
                )
            })
            .collect();
        format!(
            "<form method=\"post\" action=\"{here}\" class=\"inline\"><input type=\"hidden\" name=\"action\" value=\"{action}\">{hidden}<button type=\"submit\">{label}</button></form>"
        )
    };
    let present = m.present();
    let voting = roster.members.iter().filter(|x| x.voting_right).count();
    let present_voting = present
        .iter()
        .filter(|p| roster.member(p).is_some_and(|x| x.voting_right))
        .count();
    let state = match (m.opened_at, m.closed_at) {
        (_, Some(at)) => format!("closed {}", at.with_timezone(&app.tz).format("%F %H:%M %Z")),
        (Some(at), None) => format!(
            "sitting since {}",
            at.with_timezone(&app.tz).format("%F %H:%M %Z")
        ),
        (None, None) => format!("not yet open (stage {})", escape(&item.stage)),
    };
    let mut body = format!(
        "<p><a href=\"/dashboard/items/{sid}\">The session's item page and log</a></p>\
         <dl><dt>Place</dt><dd>{place}</dd><dt>Meeting</dt><dd id=\"meeting-state\">{state}</dd>\
         <dt>Present</dt><dd id=\"present-count\"><strong>{present_voting}</strong> of {voting} members entitled to vote ({all} members in all)</dd></dl>",
        sid = path_segment(&id),
        place = escape(item.inputs.get("place").map_or("", String::as_str)),
        all = present.len(),
    );
    // The agenda.
    let adopted = match m.agenda_adopted_at {
        Some(at) => format!(
            " — adopted {}",
            at.with_timezone(&app.tz).format("%H:%M %Z")
        ),
        None if acts && sitting => button("adopt-agenda", &[], "Adopt the agenda"),
        None => " — provisional".into(),
    };
    let mut agenda = String::new();
    agenda.push_str(&format!(
        "<h2>Agenda{adopted}</h2><table id=\"agenda\"><thead><tr><th>No.</th><th>Point</th><th>Decision</th><th>Status</th>{}</tr></thead><tbody>",
        if acts { "<th>Act</th>" } else { "" }
    ));
    let mut place = 0;
    let listed_count = m
        .agenda
        .iter()
        .filter(|p| p.status == PointStatus::Listed)
        .count();
    let mut to_record = Vec::new();
    for p in &m.agenda {
        let listed = p.status == PointStatus::Listed;
        if listed {
            place += 1;
        }
        let decided = p.item.as_deref().and_then(|i| app.items.get(i));
        let decision = match &decided {
            None => "—".to_string(),
            Some(d) => {
                let open_in_session = d
                    .ballots
                    .iter()
                    .enumerate()
                    .rfind(|(_, b)| b.result.is_none() && b.in_session);
                if let Some((i, _)) = open_in_session
                    && listed
                {
                    to_record.push((p.number, d.clone(), i));
                }
                let verdict = d
                    .ballots
                    .last()
                    .and_then(|b| b.result.as_ref())
                    .map(|r| escape(&r.explanation));
                format!(
                    "<a href=\"/dashboard/items/{}\">{}</a> — {}{}{}",
                    path_segment(&d.id),
                    escape(&d.id),
                    escape(d.outcome.as_deref().unwrap_or(&d.stage)),
                    d.register_number
                        .as_ref()
                        .map(|n| format!(", <strong>{}</strong>", escape(n)))
                        .unwrap_or_default(),
                    verdict
                        .map(|v| format!("<br><small>{v}</small>"))
                        .unwrap_or_default(),
                )
            }
        };
        let number = if listed {
            place.to_string()
        } else {
            String::new()
        };
        let proposer = p
            .proposed_by
            .as_deref()
            .map(|m| {
                format!(
                    "<br><small>proposed by {}</small>",
                    escape(&member_name(&roster, m))
                )
            })
            .unwrap_or_default();
        let n = p.number.to_string();
        let actions = if !acts {
            String::new()
        } else if listed {
            format!(
                "<td>{}{}{}{}</td>",
                if place > 1 {
                    button(
                        "move",
                        &[("point", &n), ("place", &(place - 1).to_string())],
                        "Up",
                    )
                } else {
                    String::new()
                },
                if place < listed_count {
                    button(
                        "move",
                        &[("point", &n), ("place", &(place + 1).to_string())],
                        "Down",
                    )
                } else {
                    String::new()
                },
                button("mark", &[("point", &n), ("status", "deferred")], "Defer"),
                button(
                    "mark",
                    &[("point", &n), ("status", "withdrawn")],
                    "Withdraw"
                ),
            )
        } else {
            format!(
                "<td>{}</td>",
                button("mark", &[("point", &n), ("status", "listed")], "Put back")
            )
        };
        agenda.push_str(&format!(
            "<tr id=\"point-{n}\"><td>{number}</td><td>{}{}{}</td><td>{decision}</td><td>{}</td>{actions}</tr>",
            escape(&p.title),
            p.url
                .as_deref()
                .map(|u| format!(" (<a href=\"{}\">document</a>)", escape(u)))
                .unwrap_or_default(),
            proposer,
            p.status.as_str(),
        ));
    }
    agenda.push_str("</tbody></table>");
    if acts {
        agenda.push_str(&format!(
            "<form method=\"post\" action=\"{here}\" id=\"add-point\"><fieldset><legend>Add a point</legend>\
             <input type=\"hidden\" name=\"action\" value=\"add\">\
             <label for=\"title\">Title</label> <input id=\"title\" name=\"title\" size=\"40\"> \
             <label for=\"point-item\">or the item decided under it</label> <input id=\"point-item\" name=\"item\" size=\"10\" placeholder=\"item-7\"> \
             <label for=\"url\">Document URL</label> <input id=\"url\" name=\"url\" type=\"url\" size=\"30\"> \
             <button type=\"submit\">Add</button></fieldset></form>"
        ));
    }
    // The votes to take now, then the agenda.
    for (number, decided, ballot) in &to_record {
        body.push_str(&vote_form(
            &app,
            &here,
            *number,
            decided,
            *ballot,
            &present,
            acts && sitting,
        ));
    }
    body.push_str(&agenda);
    // Attendance.
    body.push_str("<h2>Attendance</h2><table id=\"attendance\"><thead><tr><th>Member</th><th>Present</th><th>Since</th>");
    if acts && sitting {
        body.push_str("<th>Change</th>");
    }
    body.push_str("</tr></thead><tbody>");
    for member in &roster.members {
        let last = m.attendance.iter().rev().find(|p| p.member == member.id);
        let is = last.is_some_and(|p| p.present);
        let since = last
            .map(|p| p.at.with_timezone(&app.tz).format("%H:%M").to_string())
            .unwrap_or_default();
        let change = match (acts && sitting, is) {
            (false, _) => String::new(),
            (true, false) => format!(
                "<td>{}</td>",
                button(
                    "attend",
                    &[("member", &member.id), ("present", "1")],
                    "Arrived"
                )
            ),
            (true, true) => format!(
                "<td>{}</td>",
                button(
                    "attend",
                    &[("member", &member.id), ("present", "0")],
                    "Left"
                )
            ),
        };
        body.push_str(&format!(
            "<tr id=\"member-{id}\"{class}><td>{} ({id}){}</td><td>{}</td><td>{since}</td>{change}</tr>",
            escape(&member.name),
            if member.voting_right { "" } else { " <small>(no vote)</small>" },
            if is { "present" } else { "—" },
            id = escape(&member.id),
            class = if is { " class=\"present\"" } else { "" },
        ));
    }
    body.push_str("</tbody></table>");
    if acts && sitting {
        let options: String = present
            .iter()
            .map(|p| {
                format!(
                    "<option value=\"{0}\">{1} ({0})</option>",
                    escape(p),
                    escape(&member_name(&roster, p))
                )
            })
            .collect();
        let points: String = m
            .agenda
            .iter()
            .filter(|p| p.status == PointStatus::Listed)
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "<option value=\"{}\">{}. {}</option>",
                    p.number,
                    i + 1,
                    escape(&p.title)
                )
            })
            .collect();
        body.push_str(&format!(
            "<form method=\"post\" action=\"{here}\" id=\"statement\"><fieldset><legend>Enter a statement in the record</legend>\
             <input type=\"hidden\" name=\"action\" value=\"statement\">\
             <label for=\"st-member\">Member</label> <select id=\"st-member\" name=\"member\" required>{options}</select> \
             <label for=\"st-point\">On point</label> <select id=\"st-point\" name=\"point\"><option value=\"\">the session as a whole</option>{points}</select> \
             <label for=\"st-text\">Explanation of vote or reservation</label> <input id=\"st-text\" name=\"text\" size=\"40\" required> \
             <button type=\"submit\">Enter</button></fieldset></form>"
        ));
        body.push_str(&button("close", &[], "Close the meeting"));
    }
    if m.closed_at.is_some() {
        body.push_str("<h2>The summary record</h2><ul id=\"circulated\">");
        for c in &m.circulated {
            let hashes: Vec<String> = c
                .hashes
                .iter()
                .map(|(l, h)| format!("{l} <code>{}</code>", escape(h)))
                .collect();
            body.push_str(&format!(
                "<li>Circulated {}: {}</li>",
                c.at.with_timezone(&app.tz).format("%F %H:%M %Z"),
                hashes.join(", ")
            ));
        }
        body.push_str("</ul>");
        if actor.role >= Role::Secretary && item.status == crate::engine::Status::Open {
            body.push_str(&button(
                "circulate",
                &[],
                "Circulate the draft record (enter its hashes in the log)",
            ));
        }
    }
    if !m.statements.is_empty() {
        body.push_str("<h2>Statements for the record</h2><ul id=\"statements\">");
        for s in &m.statements {
            body.push_str(&format!(
                "<li>{}{}: {}</li>",
                escape(&member_name(&roster, &s.member)),
                s.point.map(|p| format!(" (point {p})")).unwrap_or_default(),
                escape(&s.text)
            ));
        }
        body.push_str("</ul>");
    }
    Ok(layout(
        StatusCode::OK,
        &format!("Meeting — {}", app.title_of(&item)),
        true,
        &body,
    ))
}

fn member_name(roster: &crate::roster::Roster, id: &str) -> String {
    roster.member(id).map_or(id.to_string(), |m| m.name.clone())
}

/// The form recording the vote on one point: a roll-call (a choice per member present) or
/// a show of hands (a count per choice), and the quorum with those present now.
fn vote_form(
    app: &App,
    here: &str,
    point: u32,
    decided: &Item,
    ballot: usize,
    present: &[String],
    acts: bool,
) -> String {
    let Some(b) = decided.ballots.get(ballot) else {
        return String::new();
    };
    let defs = app.defs.load();
    let spec = defs
        .version(&decided.version)
        .and_then(|w| w.ballot(&b.stage));
    let voters: Vec<&crate::engine::Voter> = b
        .electorate
        .iter()
        .filter(|v| present.contains(&v.member))
        .collect();
    let n = voters.len() as u64;
    // If every member present votes, is there a quorum?
    let quorum = spec.and_then(|s| s.quorum.as_ref()).map(|q| {
        let mut c: Counts = counts(b);
        if let Some(first) = b.choices.first() {
            c.choices.insert(first.clone(), n);
        }
        c.present = Some(n);
        let met = q.eval(&c).unwrap_or(false);
        format!(
            "<p id=\"quorum-{point}\">Quorum <code>{}</code> with the {n} present: <strong>{}</strong></p>",
            escape(q.source()),
            if met { "met" } else { "not met" }
        )
    });
    let label = |c: &str| {
        spec.and_then(|s| s.labels.get(c))
            .map_or(c.to_string(), |t| t.get("en").to_string())
    };
    let mut html = format!(
        "<h2>Vote on point: {}</h2><p>{}</p>{}<p>Rule: <code>{}</code></p>",
        escape(&app.title_of(decided)),
        escape(&super::ballot::question(app, decided, b, "en")),
        quorum.unwrap_or_default(),
        escape(spec.map_or("", |s| s.pass.source())),
    );
    if let Some(room) = &b.room {
        // An electronic vote is open: who has voted, and the chair's close.
        let voted = room.present.iter().filter(|m| b.vote(m).is_some()).count();
        html.push_str(&format!(
            "<p id=\"electronic-state-{point}\">Electronic vote open: <strong>{voted}</strong> of the {} present have voted.</p>",
            room.present.len()
        ));
    }
    if !acts {
        return html;
    }
    let item = escape(&decided.id);
    let electronic = |step: &str, label: &str| {
        format!(
            "<form method=\"post\" action=\"{here}\" id=\"electronic-{point}\"><fieldset><legend>Electronic vote in the room</legend>\
             <input type=\"hidden\" name=\"action\" value=\"electronic\"><input type=\"hidden\" name=\"item\" value=\"{item}\">\
             <input type=\"hidden\" name=\"step\" value=\"{step}\"><button type=\"submit\">{label}</button></fieldset></form>"
        )
    };
    if b.room.is_some() {
        html.push_str(&electronic("close", "Close the vote"));
        return html;
    }
    html.push_str(&format!(
        "<form method=\"post\" action=\"{here}\" id=\"roll-call-{point}\"><fieldset><legend>Roll-call</legend>\
         <input type=\"hidden\" name=\"action\" value=\"roll-call\"><input type=\"hidden\" name=\"item\" value=\"{item}\">\
         <table><thead><tr><th>Member</th>"
    ));
    for c in &b.choices {
        html.push_str(&format!("<th>{}</th>", escape(&label(c))));
    }
    html.push_str("<th>Not voting</th></tr></thead><tbody>");
    for v in &voters {
        html.push_str(&format!(
            "<tr><td>{} ({})</td>",
            escape(&v.member_name),
            escape(&v.member)
        ));
        for c in &b.choices {
            html.push_str(&format!(
                "<td><input type=\"radio\" name=\"vote.{m}\" value=\"{c}\" aria-label=\"{m} {c}\"></td>",
                m = escape(&v.member),
                c = escape(c)
            ));
        }
        html.push_str(&format!(
            "<td><input type=\"radio\" name=\"vote.{m}\" value=\"\" checked aria-label=\"{m} not voting\"></td></tr>",
            m = escape(&v.member)
        ));
    }
    html.push_str(
        "</tbody></table><button type=\"submit\">Record the roll-call</button></fieldset></form>",
    );
    html.push_str(&format!(
        "<form method=\"post\" action=\"{here}\" id=\"hands-{point}\"><fieldset><legend>Show of hands</legend>\
         <input type=\"hidden\" name=\"action\" value=\"hands\"><input type=\"hidden\" name=\"item\" value=\"{item}\">"
    ));
    for c in &b.choices {
        html.push_str(&format!(
            "<label for=\"count-{point}-{c}\">{l}</label> <input id=\"count-{point}-{c}\" name=\"count.{c}\" type=\"number\" min=\"0\" max=\"{n}\" size=\"4\" value=\"0\"> ",
            c = escape(c),
            l = escape(&label(c))
        ));
    }
    html.push_str("<button type=\"submit\">Record the show of hands</button></fieldset></form>");
    html.push_str(&electronic(
        "open",
        "Send the ballot links to the delegates present",
    ));
    let in_a_week = (app.clock.now() + chrono::Duration::days(7)).with_timezone(&app.tz);
    html.push_str(&format!(
        "<form method=\"post\" action=\"{here}\" id=\"email-ballot-{point}\"><fieldset><legend>Or send it to an email ballot of the members</legend>\
         <input type=\"hidden\" name=\"action\" value=\"email-ballot\"><input type=\"hidden\" name=\"item\" value=\"{item}\">\
         <label for=\"until-{point}\">Closing ({zone})</label> <input id=\"until-{point}\" name=\"until\" type=\"datetime-local\" required value=\"{value}\"> \
         <button type=\"submit\">Send to an email ballot</button></fieldset></form>",
        zone = escape(app.tz.name()),
        value = in_a_week.format("%Y-%m-%dT%H:%M"),
    ));
    html
}

/// Every form of the meeting page, told apart by `action`; the other fields as each needs.
async fn meeting_post(
    State(app): AppState,
    actor: Actor,
    Param(id): Param<String>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let here = format!("/dashboard/items/{}/meeting", path_segment(&id));
    if let Some(refusal) = from_elsewhere(&headers) {
        return refusal;
    }
    let Ok(Form(fields)) = form else {
        return refused(bad_form(), &here);
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let number = |name: &str| field(name).parse::<u32>().ok();
    let done = match field("action").as_str() {
        "add" => {
            let b = PointBody {
                title: Some(field("title")),
                explanation: String::new(),
                url: Some(field("url")),
                item: Some(field("item")).filter(|i| !i.is_empty()),
            };
            add(&app, &actor, id.clone(), b).await
        }
        "move" | "mark" => match number("point") {
            Some(point) => {
                let event = match field("place").parse::<usize>() {
                    Ok(place) => Event::PointMoved { point, place },
                    Err(_) => match field("status").as_str() {
                        "deferred" => Event::PointMarked {
                            point,
                            status: PointStatus::Deferred,
                        },
                        "withdrawn" => Event::PointMarked {
                            point,
                            status: PointStatus::Withdrawn,
                        },
                        _ => Event::PointMarked {
                            point,
                            status: PointStatus::Listed,
                        },
                    },
                };
                record(&app, &actor, id.clone(), event).await
            }
            None => Err(bad_form()),
        },
        "next" => {
            let page = format!("/dashboard/items/{}", path_segment(&id));
            return after(record(&app, &actor, id, Event::MovedOn).await, &page);
        }
        "adopt-agenda" => record(&app, &actor, id.clone(), Event::AgendaAdopted).await,
        "close" => record(&app, &actor, id.clone(), Event::MeetingClosed).await,
        "circulate" => circulate_record(&app, &actor, id.clone()).await,
        "email-ballot" => match super::dashboard::local_time(&app, &field("until"), None) {
            Ok(closes_at) => send_to_email_ballot(&app, &actor, field("item"), closes_at).await,
            Err(e) => Err(e),
        },
        "attend" => {
            let member = vec![field("member")];
            let (arrived, left) = match field("present").as_str() {
                "1" => (member, Vec::new()),
                _ => (Vec::new(), member),
            };
            record(
                &app,
                &actor,
                id.clone(),
                Event::Attendance { arrived, left },
            )
            .await
        }
        "statement" => {
            let event = Event::StatementRecorded {
                member: field("member"),
                point: number("point"),
                text: field("text"),
            };
            record(&app, &actor, id.clone(), event).await
        }
        "roll-call" => {
            let mut votes: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (k, v) in &fields {
                if let Some(member) = k.strip_prefix("vote.")
                    && !v.is_empty()
                {
                    votes.entry(v.clone()).or_default().push(member.to_string());
                }
            }
            let b = RecordBody {
                votes: Some(votes),
                counts: None,
                electronic: None,
            };
            record_in_room(&app, &actor, field("item"), b).await
        }
        "hands" => {
            let mut counts = BTreeMap::new();
            for (k, v) in &fields {
                if let Some(choice) = k.strip_prefix("count.") {
                    match v.trim().parse::<u64>() {
                        Ok(n) => {
                            counts.insert(choice.to_string(), n);
                        }
                        Err(_) => return refused(bad_form(), &here),
                    }
                }
            }
            let b = RecordBody {
                votes: None,
                counts: Some(counts),
                electronic: None,
            };
            record_in_room(&app, &actor, field("item"), b).await
        }
        "electronic" => {
            let electronic = match field("step").as_str() {
                "open" => Electronic::Open,
                "close" => Electronic::Close,
                _ => return refused(bad_form(), &here),
            };
            let b = RecordBody {
                votes: None,
                counts: None,
                electronic: Some(electronic),
            };
            record_in_room(&app, &actor, field("item"), b).await
        }
        _ => Err(bad_form()),
    };
    after(done, &here)
}

/// Whether `item` may be moved on by hand: a session, or an item on an open agenda.
pub fn movable(app: &App, item: &Item) -> bool {
    item.meeting.is_some()
        || app.items.all().into_iter().any(|s| {
            s.status == crate::engine::Status::Open
                && s.meeting
                    .as_ref()
                    .is_some_and(|m| m.closed_at.is_none() && m.point_of(&item.id).is_some())
        })
}

/// Whether `item` is decided in a session sitting now (for the item page's link).
pub fn sitting_session(app: &App, item: &str) -> Option<String> {
    sitting_on(app, item).map(|s| s.id.clone())
}

/// The item API's extra fields for a session and for a ballot taken in session.
pub fn extend_item_json(app: &App, item: &Item, out: &mut Value) {
    if let Some(m) = meeting_json(app, item) {
        out["meeting"] = m;
    }
    if let Some(list) = out["ballots"].as_array_mut() {
        for (v, b) in list.iter_mut().zip(&item.ballots) {
            if b.in_session {
                v["in_session"] = json!(true);
            }
            if let Some(r) = &b.room {
                v["room"] = json!(r);
            }
        }
    }
    if let Some(s) = sitting_session(app, &item.id) {
        out["session"] = json!(s);
    }
}
