//! The secret ballot on the public listener: the trustees' board (`/trustee/{token}`, the
//! signed link in a trustee's mail, for `councild trustee`), and the public record of a
//! secret election (`/elections/{item}`: the trackers counted; `/elections/{item}/record.json`:
//! everything `councild verify` checks).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ballot::{escape, member_link, page};
use super::{ApiError, AppState};
use crate::audit;
use crate::engine::{Event, Item};
use crate::secret::{self, PartialDecryption};
use crate::token::BallotRef;

/// A step of the key ceremony or of a round's decryption, as `councild trustee` posts it.
#[derive(Debug, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    Key {
        key: String,
    },
    Deal {
        commitments: Vec<String>,
        shares: BTreeMap<String, String>,
    },
    Ready,
    Decrypt {
        ballot: usize,
        shares: Vec<PartialDecryption>,
    },
}

fn not_valid() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "this link is not a trustee's link")
}

/// What a trustee's link shows: the ceremony as it stands, the shares dealt to this
/// trustee, and each secret round's tally.
fn board(item: &Item, member: &str) -> Option<Value> {
    let trust = item.trust.as_ref()?;
    let number = trust.number(member)?;
    let trustees: Vec<Value> = trust
        .trustees
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"member": t.member, "number": i + 1, "box_key": t.box_key,
                   "commitments": t.commitments, "ready": t.ready})
        })
        .collect();
    let shares_for_you: BTreeMap<&str, &String> = trust
        .trustees
        .iter()
        .filter_map(|t| Some((t.member.as_str(), t.shares.get(member)?)))
        .collect();
    let rounds: Vec<Value> = item
        .ballots
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let s = b.sealed.as_ref()?;
            Some(json!({
                "ballot": i, "round": b.round.map_or(1, |r| r.number), "choices": b.choices,
                "cast": b.cast(), "tally": s.tally, "decrypted": s.decryptions.contains_key(member),
                "counted": b.result.is_some(),
            }))
        })
        .collect();
    Some(json!({
        "item": item.id, "member": member, "number": number, "needed": trust.needed,
        "trustees": trustees, "shares_for_you": shares_for_you, "key": trust.key,
        "rounds": rounds, "waiting_for": trust.waiting_for(),
    }))
}

pub async fn board_get(State(app): AppState, Path(token): Path<String>) -> Response {
    let Some((r, item, _)) = member_link(&app, &token, BallotRef::TRUSTEE) else {
        return not_valid().into_response();
    };
    match board(&item, &r.member) {
        Some(b) => Json(b).into_response(),
        None => not_valid().into_response(),
    }
}

pub async fn board_post(
    State(app): AppState,
    Path(token): Path<String>,
    step: Result<Json<Step>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some((r, item, _)) = member_link(&app, &token, BallotRef::TRUSTEE) else {
        return not_valid().into_response();
    };
    let step = match step {
        Ok(Json(s)) => s,
        Err(e) => {
            return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()).into_response();
        }
    };
    let member = r.member.clone();
    let event = match step {
        Step::Key { key } => Event::TrusteeKey { member, key },
        Step::Deal {
            commitments,
            shares,
        } => Event::TrusteeDealt {
            member,
            commitments,
            shares,
        },
        Step::Ready => Event::TrusteeReady { member },
        Step::Decrypt { ballot, shares } => Event::Decrypted {
            ballot,
            member,
            shares,
        },
    };
    let kind = event.kind();
    match app.writer.event(item.id.clone(), event, None).await {
        Ok(done) => {
            tracing::info!(item = %item.id, member = %r.member, step = kind, "trustee step recorded");
            let item = app.items.get(&item.id).unwrap_or(item);
            let mut answer = board(&item, &r.member).unwrap_or_default();
            answer["event"] = json!(done.hash);
            Json(answer).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// The public record of an item's secret election, from its log: every ballot cast (the
/// member, the tracker, the ciphertexts and proofs), the tallies, the decryptions and the
/// counts. `None` when the item has no secret election.
pub fn record(app: &super::App, item: &Item) -> Result<Option<audit::Record>, ApiError> {
    let Some(trust) = &item.trust else {
        return Ok(None);
    };
    let mut rounds: Vec<audit::RoundRecord> = item
        .ballots
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let s = b.sealed.as_ref()?;
            let shape = b.shape();
            Some(audit::RoundRecord {
                ballot: i,
                round: b.round.map_or(1, |r| r.number),
                choices: b.choices.clone(),
                seats: shape.seats,
                blank: shape.blank,
                electorate: b.electorate.iter().map(|v| v.member.clone()).collect(),
                ballots: Vec::new(),
                tally: s.tally.clone(),
                decryptions: s.decryptions.clone(),
                counts: b.result.as_ref().map(|r| r.counts.clone()),
            })
        })
        .collect();
    for record in app.store.events(&item.id) {
        let record = record?;
        let Event::VoteCast {
            ballot,
            member,
            choice,
            proofs: Some(proofs),
        } = record.event
        else {
            continue;
        };
        let Some(round) = rounds.iter_mut().find(|r| r.ballot == ballot) else {
            continue;
        };
        let Some(choices) = secret::decode_choices(&choice, round.choices.len()) else {
            continue;
        };
        let ballot = secret::Ballot::join(choices, *proofs);
        round.ballots.push(audit::CastRecord {
            member,
            tracker: ballot.tracker(),
            ballot,
        });
    }
    Ok(Some(audit::Record {
        item: item.id.clone(),
        needed: trust.needed,
        trustees: trust
            .trustees
            .iter()
            .map(|t| audit::TrusteeRecord {
                member: t.member.clone(),
                commitments: t.commitments.clone(),
            })
            .collect(),
        key: trust.key.clone(),
        rounds,
    }))
}

pub fn routes() -> Vec<super::Route> {
    vec![(
        axum::http::Method::GET,
        "/api/items/{id}/election-record",
        crate::accounts::Role::Observer,
        axum::routing::get(record_json),
    )]
}

fn find(app: &super::App, id: &str) -> Option<Arc<Item>> {
    app.items.get(id).filter(|i| i.trust.is_some())
}

pub async fn record_json(State(app): AppState, Path(id): Path<String>) -> Response {
    let Some(item) = find(&app, &id) else {
        return ApiError::new(StatusCode::NOT_FOUND, "no secret election by this id")
            .into_response();
    };
    match record(&app, &item) {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => {
            ApiError::new(StatusCode::NOT_FOUND, "no secret election by this id").into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// The public list of the ballots counted in each round: every voter finds their tracker.
pub async fn trackers_page(State(app): AppState, Path(id): Path<String>) -> Response {
    let record = find(&app, &id).map(|item| (record(&app, &item), item));
    let Some((Ok(Some(r)), item)) = record else {
        return page(
            StatusCode::NOT_FOUND,
            "en",
            "No secret election by this id",
            "",
        );
    };
    let title = app.title_of(&item);
    let mut body = format!(
        "<p><bdi>{}</bdi> — <bdi>{}</bdi></p><p>Each ballot counted is listed by its tracker, the SHA-256 of its encrypted choices, which its voter received on the ballot page and by mail. Nothing here says how anyone voted. The whole record, for <code>councild verify</code>: <a href=\"/elections/{id}/record.json\">record.json</a>.</p>",
        escape(&app.roster.load().council),
        escape(&title),
        id = super::path_segment(&id),
    );
    for round in &r.rounds {
        let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
        for b in &round.ballots {
            latest.insert(&b.member, &b.tracker);
        }
        let mut trackers: Vec<&str> = latest.into_values().collect();
        trackers.sort_unstable();
        body.push_str(&format!(
            "<section class=\"round\" id=\"round-{n}\"><h2>Round {n}</h2><p>{} ballots counted{}.</p><ul>",
            trackers.len(),
            match &round.counts {
                Some(c) => format!(
                    "; counted: {}",
                    escape(
                        &c.iter()
                            .map(|(k, v)| format!("{k} {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                ),
                None => String::new(),
            },
            n = round.round,
        ));
        for t in trackers {
            body.push_str(&format!(
                "<li><code class=\"tracker\">{}</code></li>",
                escape(t)
            ));
        }
        body.push_str("</ul></section>");
    }
    page(StatusCode::OK, "en", "Ballots counted", &body)
}
