//! `apply`: one event, one item, the effects. Pure and deterministic.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};

use super::*;
use crate::definition::{BallotSpec, Close, InputKind, TieRule, Wait, Workflow, format_number};
use crate::rules::{self, Counts, Tie};

/// Applies one event to an item (`None` before `Started`), returning the effects.
pub fn apply(
    ctx: &Context,
    state: &mut Option<Item>,
    id: &str,
    at: DateTime<Utc>,
    event: &Event,
) -> Result<Vec<Effect>, Rejection> {
    let mut fx = Vec::new();
    if let Event::Started {
        workflow,
        version,
        inputs,
    } = event
    {
        if state.is_some() {
            return Err(Rejection::AlreadyStarted);
        }
        check_inputs(ctx.workflow, inputs)?;
        let mut inputs = inputs.clone();
        for (name, spec) in &ctx.workflow.inputs {
            if let Some(default) = &spec.default {
                inputs
                    .entry(name.clone())
                    .or_insert_with(|| default.clone());
            }
        }
        let start = ctx.workflow.start.clone();
        let item = state.insert(Item {
            id: id.to_string(),
            workflow: workflow.clone(),
            version: version.clone(),
            inputs,
            started_at: at,
            stage: start.clone(),
            entered_at: at,
            status: Status::Open,
            outcome: None,
            register_number: None,
            ballots: Vec::new(),
            signals: Vec::new(),
            timers: BTreeMap::new(),
            awaiting: None,
            seq: 0,
            head: String::new(),
            meeting: is_session(ctx.workflow).then(Meeting::default),
            documents: BTreeMap::new(),
            amendments: Vec::new(),
            candidates: Vec::new(),
            standing: Vec::new(),
            elected: Vec::new(),
            trust: sealed::trust(ctx.workflow),
        });
        if item.trust.is_some() {
            fx.push(Effect::Mail {
                template: sealed::TRUSTEE_CALL.into(),
                to: Recipients::Trustees,
                ballot: None,
            });
        }
        enter(ctx, item, start, at, &mut fx);
        return Ok(fx);
    }
    let item = state.as_mut().ok_or(Rejection::NotStarted)?;
    if item.status == Status::Ended {
        return Err(Rejection::Ended);
    }
    match event {
        Event::Started { .. } => unreachable!("handled above"),
        Event::ElectorateFixed {
            ballot,
            electorate,
            members,
        } => electorate_fixed(ctx, item, at, *ballot, electorate, *members, &mut fx),
        Event::Registered {
            series: _,
            year,
            seq,
        } => registered(ctx, item, at, *year, *seq, &mut fx),
        Event::VoteCast {
            ballot,
            member,
            choice,
            proofs,
        } => {
            let sealed = item
                .ballots
                .get(*ballot)
                .is_some_and(|b| b.sealed.is_some());
            match (sealed, proofs) {
                (true, None) => Err(Rejection::NotSealed),
                (false, Some(_)) => Err(Rejection::BadInput(
                    "proofs".into(),
                    "only a secret ballot's vote has proofs".into(),
                )),
                (true, Some(p)) => {
                    sealed::check_vote(item, *ballot, member, choice, p)?;
                    vote_cast(ctx, item, at, *ballot, member, choice, &mut fx)
                }
                (false, None) => vote_cast(ctx, item, at, *ballot, member, choice, &mut fx),
            }
        }
        Event::TrusteeKey { member, key } => sealed::trustee_key(item, member, key),
        Event::TrusteeDealt {
            member,
            commitments,
            shares,
        } => sealed::trustee_dealt(item, member, commitments, shares),
        Event::TrusteeReady { member } => sealed::trustee_ready(item, member, &mut fx),
        Event::Decrypted {
            ballot,
            member,
            shares,
        } => match sealed::decrypted(item, *ballot, member, shares)? {
            None => Ok(()),
            Some(marks) => {
                item.awaiting = None;
                let closed = item.ballots[*ballot]
                    .sealed
                    .as_ref()
                    .and_then(|s| s.closed.clone())
                    .unwrap_or((at, String::new()));
                if let Some(spec) = ballot_spec(ctx, item) {
                    let closed = (closed.0, closed.1.as_str());
                    election::count(ctx, item, *ballot, spec, marks, closed, &mut fx);
                }
                Ok(())
            }
        },
        Event::TimerFired { timer } => timer_fired(ctx, item, at, timer, &mut fx),
        Event::Signal {
            name,
            member,
            data,
            members,
            eligible,
            groups,
        } => signal(
            ctx,
            item,
            at,
            (name, member, data, groups),
            *members,
            *eligible,
            &mut fx,
        ),
        Event::DeadlineExtended {
            ballot, closes_at, ..
        } => deadline_extended(ctx, item, at, *ballot, *closes_at, &mut fx),
        Event::Cancelled { .. } => {
            // The reason stays in the log; the item ends. Whoever was asked to vote in a
            // ballot still open is told that their link no longer takes a vote.
            for (i, b) in item.ballots.iter().enumerate().filter(|(_, b)| !b.closed()) {
                // Those who had a link: the electorate, or those present for a vote in
                // the room; nobody for a vote in session not yet opened to links.
                let to = match &b.room {
                    _ if !b.in_session => Recipients::Electorate(i),
                    Some(r) if r.method == RoomMethod::Electronic => Recipients::InRoom(i),
                    _ => continue,
                };
                fx.push(Effect::Mail {
                    template: BALLOT_CANCELLED.into(),
                    to,
                    ballot: Some(i),
                });
            }
            cancel_timers(item, &mut fx);
            item.awaiting = None;
            item.status = Status::Ended;
            item.outcome = Some("cancelled".into());
            Ok(())
        }
        Event::PointAdded {
            title,
            explanation,
            url,
            item: decided,
            member,
            carried_from,
        } => point_added(
            ctx,
            item,
            at,
            title,
            explanation,
            url,
            decided,
            member,
            carried_from,
        ),
        Event::PointMoved { point, place } => {
            // Places are counted among the points listed, as the agenda shows them.
            let agenda = &mut agenda(item)?.agenda;
            let from = agenda
                .iter()
                .position(|p| p.number == *point)
                .ok_or(Rejection::NoSuchPoint(*point))?;
            let listed: Vec<usize> = (0..agenda.len())
                .filter(|i| agenda[*i].status == PointStatus::Listed)
                .collect();
            let Some(at) = listed.iter().position(|i| *i == from) else {
                return Err(Rejection::BadInput(
                    "point".into(),
                    "only a point on the agenda has a place: put it back first".into(),
                ));
            };
            if !(1..=listed.len()).contains(place) {
                return Err(Rejection::BadInput(
                    "place".into(),
                    format!("must be from 1 to {}", listed.len()),
                ));
            }
            if at + 1 == *place {
                return Err(Rejection::NothingChanged);
            }
            let to = listed[place - 1];
            let moved = agenda.remove(from);
            agenda.insert(to, moved);
            Ok(())
        }
        Event::PointMarked { point, status } => {
            let agenda = &mut agenda(item)?.agenda;
            let p = agenda
                .iter()
                .find(|p| p.number == *point)
                .ok_or(Rejection::NoSuchPoint(*point))?;
            if p.status == *status {
                return Err(Rejection::NothingChanged);
            }
            // Put back, its item must not be listed again under another point.
            if *status == PointStatus::Listed
                && let Some(other) = &p.item
                && agenda
                    .iter()
                    .any(|q| q.item.as_ref() == Some(other) && q.status == PointStatus::Listed)
            {
                return Err(Rejection::AlreadyOnAgenda(other.clone()));
            }
            if let Some(p) = agenda.iter_mut().find(|p| p.number == *point) {
                p.status = *status;
            }
            Ok(())
        }
        Event::AgendaAdopted => {
            let m = in_meeting(ctx, item)?;
            if m.agenda_adopted_at.is_some() {
                return Err(Rejection::NothingChanged);
            }
            m.agenda_adopted_at = Some(at);
            Ok(())
        }
        Event::Attendance { arrived, left } => {
            let m = in_meeting(ctx, item)?;
            let mut seen = BTreeSet::new();
            for member in arrived.iter().chain(left) {
                if !seen.insert(member) {
                    return Err(Rejection::CountedTwice(member.clone()));
                }
            }
            let changes: Vec<Presence> = arrived
                .iter()
                .map(|m| (m, true))
                .chain(left.iter().map(|m| (m, false)))
                .filter(|(member, present)| m.is_present(member) != *present)
                .map(|(member, present)| Presence {
                    member: member.clone(),
                    present,
                    at,
                })
                .collect();
            if changes.is_empty() {
                return Err(Rejection::NothingChanged);
            }
            m.attendance.extend(changes);
            Ok(())
        }
        Event::StatementRecorded {
            member,
            point,
            text,
        } => {
            let m = in_meeting(ctx, item)?;
            if let Some(n) = point
                && m.point(*n).is_none()
            {
                return Err(Rejection::NoSuchPoint(*n));
            }
            check_text("text", text, 4_000)?;
            m.statements.push(Statement {
                member: member.clone(),
                point: *point,
                text: text.trim().to_string(),
                at,
            });
            Ok(())
        }
        Event::MeetingClosed => {
            in_meeting(ctx, item)?.closed_at = Some(at);
            if let Some(next) = ctx
                .workflow
                .stages
                .get(&item.stage)
                .and_then(|s| s.next.clone())
            {
                enter(ctx, item, next, at, &mut fx);
            }
            Ok(())
        }
        Event::MovedOn => {
            let waits = Timer::Next(item.stage.clone());
            let stage = ctx.workflow.stages.get(&item.stage);
            if stage.is_some_and(|s| s.nominations.is_some()) {
                return Err(Rejection::ConfirmCandidates);
            }
            let next = stage.and_then(|s| s.next.clone());
            match next {
                Some(next) if item.timers.contains_key(&waits) => {
                    enter(ctx, item, next, at, &mut fx);
                    Ok(())
                }
                _ => Err(Rejection::NotWaiting(item.stage.clone())),
            }
        }
        Event::VoteRecorded {
            ballot,
            session,
            present,
            method,
            votes,
            hands,
        } => vote_recorded(
            ctx, item, at, *ballot, session, present, *method, votes, hands, &mut fx,
        ),
        Event::RoomVoteOpened {
            ballot,
            session,
            present,
        } => {
            let b = open_in_session(item, *ballot)?;
            let present: Vec<String> = present
                .iter()
                .filter(|m| b.electorate.place(m).is_some())
                .cloned()
                .collect();
            if present.is_empty() {
                return Err(Rejection::BadInput(
                    "present".into(),
                    "no member entitled to vote is present".into(),
                ));
            }
            let template = ballot_spec(ctx, item).map(|s| s.template.clone());
            let b = &mut item.ballots[*ballot];
            b.room = Some(Box::new(Room {
                session: session.clone(),
                present,
                method: RoomMethod::Electronic,
                hands: BTreeMap::new(),
            }));
            if let Some(template) = template {
                fx.push(Effect::Mail {
                    template,
                    to: Recipients::InRoom(*ballot),
                    ballot: Some(*ballot),
                });
            }
            Ok(())
        }
        Event::SentToEmailBallot { ballot, closes_at } => {
            open_in_session(item, *ballot)?;
            if *closes_at <= at {
                return Err(Rejection::BadInput(
                    "closes_at".into(),
                    "the deadline must be in the future".into(),
                ));
            }
            let template = ballot_spec(ctx, item).map(|s| s.template.clone());
            let b = &mut item.ballots[*ballot];
            b.in_session = false;
            b.closes_at = *closes_at;
            set_timer(item, Timer::Close(*ballot), *closes_at, &mut fx);
            if let Some(template) = template {
                fx.push(Effect::Mail {
                    template,
                    to: Recipients::Electorate(*ballot),
                    ballot: Some(*ballot),
                });
            }
            Ok(())
        }
        Event::RecordCirculated { hashes, texts } => {
            let m = item.meeting.as_mut().ok_or(Rejection::NotASession)?;
            if m.closed_at.is_none() {
                return Err(Rejection::MeetingNotClosed);
            }
            let hex = |h: &String| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
            if hashes.is_empty() || !hashes.values().all(hex) {
                return Err(Rejection::BadInput(
                    "hashes".into(),
                    "each language's SHA-256, in hex".into(),
                ));
            }
            let digest =
                |t: &String| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(t.as_bytes()));
            if texts.iter().any(|(l, t)| hashes.get(l) != Some(&digest(t))) {
                return Err(Rejection::BadInput(
                    "texts".into(),
                    "each text must have the SHA-256 given for its language".into(),
                ));
            }
            if m.circulated.last().is_some_and(|c| c.hashes == *hashes) {
                return Err(Rejection::NothingChanged);
            }
            m.circulated.push(Circulation {
                at,
                hashes: hashes.clone(),
            });
            Ok(())
        }
        Event::DocumentAdded {
            language,
            sha256,
            bytes,
            name,
            media_type,
            url,
        } => {
            let spec = check_version(ctx.workflow, item, language, sha256, name, media_type)?;
            let versions = item.documents.entry(language.clone()).or_default();
            versions.push(Version {
                sha256: sha256.clone(),
                bytes: *bytes,
                name: name.clone(),
                media_type: media_type.clone(),
                url: url.clone(),
                at,
                amendments: Vec::new(),
            });
            // In the comment period, the texts complete (or a version replaced) start it,
            // with its notice, again.
            if spec.comment.as_ref() == Some(&item.stage) && texts_complete(ctx, item) {
                cancel_timers(item, &mut fx);
                proceed(ctx, item, at, &mut fx);
            }
            Ok(())
        }
        Event::AmendmentProposed {
            member,
            changes,
            reason,
            against,
            spans,
        } => {
            if !ctx.workflow.takes_amendments(&item.stage) || !texts_complete(ctx, item) {
                return Err(Rejection::NotTakingAmendments);
            }
            let languages = ctx.workflow.documents.iter().flat_map(|d| &d.languages);
            let languages: Vec<&String> = languages.collect();
            if changes.is_empty() {
                return Err(Rejection::BadInput(
                    "changes".into(),
                    "an amendment changes a passage in at least one language".into(),
                ));
            }
            let current = item.texts();
            for (language, change) in changes {
                if !languages.contains(&language) {
                    return Err(Rejection::BadInput(
                        "language".into(),
                        format!(
                            "the text's languages are {}",
                            ctx.workflow
                                .documents
                                .iter()
                                .flat_map(|d| d.languages.clone())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                check_text(&format!("passage.{language}"), &change.passage, 2000)?;
                if change.replacement.chars().count() > 4000 {
                    return Err(Rejection::BadInput(
                        format!("replacement.{language}"),
                        "must be at most 4000 characters".into(),
                    ));
                }
                let placed = spans.get(language).is_some_and(|(s, e)| s < e);
                if against.get(language) != current.get(language) || !placed {
                    return Err(Rejection::BadInput(
                        format!("passage.{language}"),
                        "must be found in the current version".into(),
                    ));
                }
            }
            if reason.chars().count() > 4000 {
                return Err(Rejection::BadInput(
                    "reason".into(),
                    "must be at most 4000 characters".into(),
                ));
            }
            let number = item.amendments.len() as u32 + 1;
            item.amendments.push(Amendment {
                number,
                member: member.clone(),
                changes: changes.clone(),
                reason: reason.clone(),
                at,
                against: against.clone(),
                spans: spans.clone(),
                ruling: None,
                ballot: None,
                fate: None,
            });
            Ok(())
        }
        Event::AmendmentRuled {
            amendment,
            receivable,
            rank,
            reason,
        } => {
            let current = item.texts();
            let a = item
                .amendments
                .iter_mut()
                .find(|a| a.number == *amendment)
                .ok_or(Rejection::NoSuchAmendment(*amendment))?;
            if a.ballot.is_some() || a.fate.is_some() {
                return Err(Rejection::AmendmentDecided(*amendment));
            }
            if *rank == Some(0) {
                return Err(Rejection::BadInput(
                    "rank".into(),
                    "ranks start at 1 (voted first)".into(),
                ));
            }
            if reason.chars().count() > 4000 {
                return Err(Rejection::BadInput(
                    "reason".into(),
                    "must be at most 4000 characters".into(),
                ));
            }
            // Put to the vote, it must still amend the versions it was proposed against.
            if *receivable && a.against.iter().any(|(l, sha)| current.get(l) != Some(sha)) {
                return Err(Rejection::BadInput(
                    "amendment".into(),
                    format!(
                        "amendment {amendment} amends a version replaced since: it cannot be put to the vote"
                    ),
                ));
            }
            a.ruling = Some(Ruling {
                receivable: *receivable,
                rank: *rank,
                reason: reason.clone(),
                at,
            });
            Ok(())
        }
        Event::TextsConsolidated { versions } => {
            if item.awaiting != Some(Awaiting::Texts) {
                return Err(Rejection::NotAwaiting);
            }
            item.awaiting = None;
            for (language, version) in versions {
                let mut version = version.clone();
                version.at = at;
                item.documents
                    .entry(language.clone())
                    .or_default()
                    .push(version);
            }
            let next = ctx
                .workflow
                .stages
                .get(&item.stage)
                .and_then(|s| s.next.clone());
            if let Some(next) = next {
                enter(ctx, item, next, at, &mut fx);
            }
            Ok(())
        }
        Event::Nominated {
            candidate,
            name,
            member,
        } => election::nominated(ctx, item, at, candidate, name, member.as_ref()),
        Event::CandidatesConfirmed { candidates } => {
            election::confirmed(ctx, item, at, candidates, &mut fx)
        }
        Event::ConsolidationRetried => {
            if item.awaiting != Some(Awaiting::Texts) {
                return Err(Rejection::NotAwaiting);
            }
            fx.push(Effect::Consolidate);
            Ok(())
        }
        Event::RoomVoteClosed { ballot } => {
            let b = item.ballots.get(*ballot).ok_or(Rejection::NoSuchBallot)?;
            if b.result.is_some() {
                return Err(Rejection::BallotClosed);
            }
            if b.room
                .as_ref()
                .is_none_or(|r| r.method != RoomMethod::Electronic)
            {
                return Err(Rejection::NoElectronicVote);
            }
            close(
                ctx,
                item,
                *ballot,
                at,
                "recorded in session: electronic vote",
                &mut fx,
            );
            Ok(())
        }
    }?;
    Ok(fx)
}

/// An open ballot taken in session on which no electronic vote is open: one whose vote
/// can be recorded, or an electronic vote opened.
fn open_in_session(item: &Item, ballot: usize) -> Result<&Ballot, Rejection> {
    let b = item.ballots.get(ballot).ok_or(Rejection::NoSuchBallot)?;
    if b.closed() {
        return Err(Rejection::BallotClosed);
    }
    if item.awaiting == Some(Awaiting::Electorate(ballot)) {
        return Err(Rejection::BallotNotOpen);
    }
    if !b.in_session {
        return Err(Rejection::NotInSession);
    }
    if b.room.is_some() {
        return Err(Rejection::ElectronicVoteOpen);
    }
    Ok(b)
}

/// Whether a workflow is a session of the council: it has a meeting.
fn is_session(w: &Workflow) -> bool {
    w.stages.values().any(|s| s.meeting)
}

/// A session's meeting, while its agenda may still change.
fn agenda(item: &mut Item) -> Result<&mut Meeting, Rejection> {
    let m = item.meeting.as_mut().ok_or(Rejection::NotASession)?;
    if m.closed_at.is_some() {
        return Err(Rejection::MeetingOver);
    }
    Ok(m)
}

/// A session's meeting, while it sits.
fn in_meeting<'a>(ctx: &Context, item: &'a mut Item) -> Result<&'a mut Meeting, Rejection> {
    let sitting = ctx
        .workflow
        .stages
        .get(&item.stage)
        .is_some_and(|s| s.meeting);
    if item.meeting.is_some() && !sitting {
        return Err(Rejection::NotInMeeting(item.stage.clone()));
    }
    agenda(item)
}

pub(super) fn check_text(name: &str, text: &str, most: usize) -> Result<(), Rejection> {
    if text.trim().is_empty() {
        return Err(Rejection::BadInput(name.into(), "must not be empty".into()));
    }
    if text.chars().count() > most {
        return Err(Rejection::BadInput(
            name.into(),
            format!("must be at most {most} characters"),
        ));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn point_added(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    title: &str,
    explanation: &str,
    url: &Option<String>,
    decided: &Option<String>,
    member: &Option<String>,
    carried_from: &Option<String>,
) -> Result<(), Rejection> {
    let proposals = ctx
        .workflow
        .stages
        .get(&item.stage)
        .is_some_and(|s| s.proposals);
    let m = agenda(item)?;
    // A member proposes during the call; a point carried over was proposed before.
    if member.is_some() && carried_from.is_none() && !proposals {
        return Err(Rejection::NotTakingProposals);
    }
    if title.trim().is_empty() {
        return Err(Rejection::NoTitle);
    }
    check_text("title", title, 300)?;
    if !explanation.trim().is_empty() {
        check_text("explanation", explanation, 4_000)?;
    }
    // What a member writes goes into every member's mail: no control characters, so no
    // forged lines (an explanation may have its own line breaks).
    let control = |t: &str, lines: bool| {
        t.chars()
            .any(|c| c.is_control() && !(lines && matches!(c, '\n' | '\r')))
    };
    if control(title, false) || control(explanation, true) {
        return Err(Rejection::BadInput(
            "title".into(),
            "control characters are not text".into(),
        ));
    }
    if let Some(u) = url
        && (!(u.starts_with("https://") || u.starts_with("http://"))
            || u.len() > 2_000
            || u.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(Rejection::BadInput(
            "url".into(),
            "must be an http(s) URL of at most 2,000 characters, without spaces".into(),
        ));
    }
    if let Some(id) = decided
        && m.point_of(id).is_some()
    {
        return Err(Rejection::AlreadyOnAgenda(id.clone()));
    }
    let number = m.agenda.iter().map(|p| p.number).max().unwrap_or(0) + 1;
    m.agenda.push(Point {
        number,
        title: title.trim().to_string(),
        explanation: explanation.trim().to_string(),
        url: url.clone(),
        item: decided.clone(),
        proposed_by: member.clone(),
        carried_from: carried_from.clone(),
        status: PointStatus::Listed,
        added_at: at,
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn vote_recorded(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    ballot: usize,
    session: &str,
    present: &[String],
    method: RoomMethod,
    votes: &BTreeMap<String, String>,
    hands: &BTreeMap<String, u64>,
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    let b = open_in_session(item, ballot)?;
    // Those present who may vote in this ballot.
    let present: Vec<String> = present
        .iter()
        .filter(|m| b.electorate.place(m).is_some())
        .cloned()
        .collect();
    let counted = match method {
        RoomMethod::RollCall => {
            if !hands.is_empty() {
                return Err(Rejection::BadInput(
                    "hands".into(),
                    "a roll-call records each member's vote, not counts".into(),
                ));
            }
            if votes.is_empty() {
                return Err(Rejection::BadInput(
                    "votes".into(),
                    "a roll-call records at least one member's vote".into(),
                ));
            }
            for (member, choice) in votes {
                if b.electorate.place(member).is_none() {
                    return Err(Rejection::NotInElectorate(member.clone()));
                }
                if !present.contains(member) {
                    return Err(Rejection::NotPresent(member.clone()));
                }
                if !b.choices.contains(choice) {
                    return Err(Rejection::NoSuchChoice(choice.clone()));
                }
            }
            votes.len() as u64
        }
        RoomMethod::ShowOfHands => {
            // Counts alone cannot weigh or group the members: such rules need a roll-call.
            let spec = ballot_spec(ctx, item);
            let rules = spec
                .into_iter()
                .flat_map(|s| s.quorum.iter().chain([&s.pass]));
            if rules.into_iter().any(|r| r.needs_each_vote())
                || spec.is_some_and(|s| matches!(s.tie, Some(TieRule::Chair(_))))
            {
                return Err(Rejection::BadInput(
                    "counts".into(),
                    "this ballot's rules weigh or group each member's vote: take it by roll-call or electronic vote".into(),
                ));
            }
            if !votes.is_empty() {
                return Err(Rejection::BadInput(
                    "votes".into(),
                    "a show of hands records counts, not members".into(),
                ));
            }
            if let Some(c) = hands.keys().find(|c| !b.choices.contains(c)) {
                return Err(Rejection::NoSuchChoice(c.clone()));
            }
            let total = hands.values().fold(0u64, |a, n| a.saturating_add(*n));
            if total == 0 {
                return Err(Rejection::BadInput(
                    "counts".into(),
                    "a show of hands counts at least one hand".into(),
                ));
            }
            total
        }
        RoomMethod::Electronic => {
            return Err(Rejection::BadInput(
                "method".into(),
                "an electronic vote is opened, then closed by the chair".into(),
            ));
        }
    };
    if counted > present.len() as u64 {
        return Err(Rejection::AbovePresent {
            counted,
            present: present.len() as u64,
        });
    }
    let b = &mut item.ballots[ballot];
    for (member, choice) in votes {
        if !b.record(member, choice) {
            return Err(Rejection::NoSuchChoice(choice.clone()));
        }
    }
    b.room = Some(Box::new(Room {
        session: session.to_string(),
        present,
        method,
        hands: hands.clone(),
    }));
    let reason = format!("recorded in session: {}", method.as_str());
    close(ctx, item, ballot, at, &reason, fx);
    Ok(())
}

fn electorate_fixed(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    ballot: usize,
    electorate: &Arc<Electorate>,
    members: u64,
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    if item.awaiting != Some(Awaiting::Electorate(ballot)) || ballot >= item.ballots.len() {
        return Err(Rejection::NotAwaiting);
    }
    item.awaiting = None;
    let head = item.head.clone();
    let b = &mut item.ballots[ballot];
    b.electorate = electorate.clone();
    b.seed = head;
    b.members = members;
    let closes_at = b.closes_at;
    let no_voters = b.electorate.is_empty();
    if let Some(spec) = ballot_spec(ctx, item).filter(|s| !s.in_session) {
        fx.push(Effect::Mail {
            template: spec.template.clone(),
            to: Recipients::Electorate(ballot),
            ballot: Some(ballot),
        });
        set_ballot_timers(item, spec, ballot, closes_at, at, fx);
        if no_voters && spec.close != Close::AtDeadline {
            close(ctx, item, ballot, at, "nobody is entitled to vote", fx);
        }
    }
    Ok(())
}

fn registered(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    year: i32,
    seq: u64,
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    if item.awaiting != Some(Awaiting::Register) {
        return Err(Rejection::NotAwaiting);
    }
    item.awaiting = None;
    let pattern = ctx
        .workflow
        .stages
        .get(&item.stage)
        .and_then(|s| s.register.as_ref())
        .map(|r| r.number.clone());
    item.register_number = pattern.and_then(|p| format_number(&p, year, seq).ok());
    if let Some(next) = proceed(ctx, item, at, fx) {
        enter(ctx, item, next, at, fx);
    }
    Ok(())
}

fn vote_cast(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    ballot: usize,
    member: &str,
    choice: &str,
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    let b = item.ballots.get(ballot).ok_or(Rejection::NoSuchBallot)?;
    if b.closed() {
        return Err(Rejection::BallotClosed);
    }
    if item.awaiting == Some(Awaiting::Electorate(ballot)) {
        return Err(Rejection::BallotNotOpen);
    }
    if b.in_session {
        match &b.room {
            Some(r) if r.method == RoomMethod::Electronic => {
                if b.electorate.place(member).is_some() && !r.present.iter().any(|m| m == member) {
                    return Err(Rejection::NotPresent(member.to_string()));
                }
            }
            _ => return Err(Rejection::InSession),
        }
    }
    if b.electorate.place(member).is_none() {
        return Err(Rejection::NotInElectorate(member.to_string()));
    }
    let choice = match b.canonical(choice) {
        Some(c) => c,
        None => match b
            .round
            .filter(|r| choice.split('+').count() > r.seats as usize)
        {
            Some(r) => return Err(Rejection::TooManyMarks(r.seats)),
            None => return Err(Rejection::NoSuchChoice(choice.to_string())),
        },
    };
    let choice = choice.as_str();
    if b.vote(member) == Some(choice) {
        return Err(Rejection::SameChoice);
    }
    let b = &mut item.ballots[ballot];
    if !b.record(member, choice) {
        // More choices than a vote can name (65,535): nothing was changed.
        return Err(Rejection::NoSuchChoice(choice.to_string()));
    }
    let all_voted = b.cast() == b.electorate.len();
    if let Some(spec) = ballot_spec(ctx, item) {
        fx.push(Effect::Mail {
            template: spec.receipt_template.clone(),
            to: Recipients::Voter(ballot, member.to_string()),
            ballot: Some(ballot),
        });
    }
    if let Some(spec) = ballot_spec(ctx, item) {
        match spec.close {
            Close::WhenAllVoted if all_voted => {
                close(ctx, item, ballot, at, "every member voted", fx)
            }
            Close::WhenDecided if all_voted => {
                close(ctx, item, ballot, at, "every member voted", fx)
            }
            Close::WhenDecided
                if rules::decided(
                    spec.quorum.as_ref(),
                    &spec.pass,
                    tie_rule(spec, item.ballots[ballot].lot_seed()).as_ref(),
                    &counts(&item.ballots[ballot]),
                ) =>
            {
                close(
                    ctx,
                    item,
                    ballot,
                    at,
                    "decided: no remaining or changed vote can change the verdict",
                    fx,
                )
            }
            _ => {}
        }
    }
    Ok(())
}

fn timer_fired(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    timer: &Timer,
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    let Some(due) = item.timers.remove(timer) else {
        return Err(Rejection::StaleTimer(timer.clone()));
    };
    match timer {
        Timer::Close(b) => close(ctx, item, *b, at, "the deadline passed", fx),
        Timer::Remind(b, _) => {
            // After downtime several timers of a ballot can be overdue at once. A reminder
            // is worth sending only if nothing later of its ballot (its close, a later
            // reminder) is due too: no "vote now" for a ballot closing at this moment.
            let superseded = item
                .timers
                .iter()
                .any(|(t, d)| t.ballot() == Some(*b) && *d >= due && *d <= at);
            if superseded {
                fx.push(Effect::Notice(format!(
                    "reminder {timer} (due {due}) dropped: a later timer of its ballot is due too"
                )));
            } else if let Some(spec) = ballot_spec(ctx, item) {
                fx.push(Effect::Mail {
                    template: spec.remind_template.clone(),
                    to: Recipients::NotVoted(*b),
                    ballot: Some(*b),
                });
            }
        }
        Timer::Next(_)
            if ctx
                .workflow
                .stages
                .get(&item.stage)
                .is_some_and(|s| s.nominations.is_some()) =>
        {
            fx.push(Effect::Notice(
                "nominations closed: the secretariat confirms the candidates".into(),
            ));
        }
        Timer::Next(_) => {
            if let Some(next) = ctx
                .workflow
                .stages
                .get(&item.stage)
                .and_then(|s| s.next.clone())
            {
                enter(ctx, item, next, at, fx);
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn signal(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    (name, member, data, groups): (&str, &Option<String>, &serde_json::Value, &[String]),
    members: u64,
    eligible: u64,
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    let on = ctx
        .workflow
        .stages
        .get(&item.stage)
        .and_then(|s| s.on_signal.as_ref());
    let withdrawing = on.is_some_and(|on| on.withdrawal.as_deref() == Some(name));
    let Some(on) = on.filter(|on| on.name == name || withdrawing) else {
        return Err(Rejection::UnexpectedSignal {
            stage: item.stage.clone(),
            name: name.to_string(),
        });
    };
    // A second signal from a member standing is refused by the writer (`resolve`); logs
    // written before that keep it, recorded and not counted again, so they replay.
    let standing = signalled(item, on);
    match member {
        Some(m) if withdrawing && !standing.members.iter().any(|(s, _)| s == m) => {
            return Err(Rejection::NothingToWithdraw(m.clone()));
        }
        Some(_) => {}
        None if withdrawing => {
            return Err(Rejection::BadInput(
                "member".into(),
                "a withdrawal names the member withdrawing".into(),
            ));
        }
        None => {}
    }
    item.signals.push(Signal {
        stage: item.stage.clone(),
        name: name.to_string(),
        member: member.clone(),
        at,
        data: data.clone(),
        groups: groups.to_vec(),
    });
    if withdrawing {
        return Ok(());
    }
    let standing = signalled(item, on);
    // `count(group: permanent)` counts the members of the group whose signal stands.
    let voters = standing
        .members
        .iter()
        .map(|(m, _)| crate::rules::VoterInfo {
            member: m.clone(),
            choice: Some("count".into()),
            attributes: BTreeMap::new(),
            groups: item
                .signals
                .iter()
                .rev()
                .find(|s| s.member.as_deref() == Some(m))
                .map(|s| s.groups.clone())
                .unwrap_or_default(),
        })
        .collect();
    let c = Counts {
        choices: BTreeMap::from([("count".to_string(), standing.count())]),
        eligible,
        members,
        voters,
        present: None,
    };
    if on.until.eval(&c).unwrap_or(false) {
        enter(ctx, item, on.next.clone(), at, fx);
    }
    Ok(())
}

fn deadline_extended(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    ballot: usize,
    closes_at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    let b = item.ballots.get(ballot).ok_or(Rejection::NoSuchBallot)?;
    if b.closed() {
        return Err(Rejection::BallotClosed);
    }
    if b.in_session {
        return Err(Rejection::InSession);
    }
    if closes_at <= b.closes_at || closes_at <= at {
        return Err(Rejection::DeadlineNotLater(b.closes_at));
    }
    let spec = ballot_spec(ctx, item);
    if let (Some(spec), Some(b)) = (spec, item.ballots.get_mut(ballot)) {
        b.closes_at = closes_at;
        let stale: Vec<Timer> = item
            .timers
            .keys()
            .filter(|t| t.ballot() == Some(ballot))
            .cloned()
            .collect();
        for name in stale {
            if let Some(due) = item.timers.remove(&name) {
                fx.push(Effect::CancelTimer { name, due });
            }
        }
        set_ballot_timers(item, spec, ballot, closes_at, at, fx);
        // The electorate learns the new deadline (and that a vote may still change).
        fx.push(Effect::Mail {
            template: BALLOT_EXTENDED.into(),
            to: Recipients::Electorate(ballot),
            ballot: Some(ballot),
        });
    }
    Ok(())
}

/// A ballot's verdict under its rules, on its votes as they stand.
pub fn tally(spec: &BallotSpec, b: &Ballot) -> rules::Tally {
    let tie = tie_rule(spec, b.lot_seed());
    rules::tally(spec.quorum.as_ref(), &spec.pass, tie.as_ref(), &counts(b))
}

/// The ballot's tie rule for the rules module; a lot is drawn from the item's chain head,
/// so the draw is fixed by the log and replays the same.
fn tie_rule(spec: &BallotSpec, seed: u64) -> Option<Tie> {
    Some(match spec.tie.as_ref()? {
        TieRule::Fails => Tie::Fails,
        TieRule::Chair(member) => Tie::Chair(member.clone()),
        TieRule::Lot => Tie::Lot(seed),
    })
}

fn check_inputs(w: &Workflow, inputs: &BTreeMap<String, String>) -> Result<(), Rejection> {
    for (name, spec) in &w.inputs {
        if spec.required && inputs.get(name).is_none_or(|v| v.trim().is_empty()) {
            return Err(Rejection::MissingInput(name.clone()));
        }
    }
    for (name, value) in inputs {
        // A text input in another language: `title.fr`, `title.ar`.
        let translated = name.split_once('.').filter(|(_, lang)| {
            (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_lowercase())
        });
        let spec = match translated {
            Some((base, _)) => w.inputs.get(base).filter(|s| s.kind == InputKind::Text),
            None => w.inputs.get(name),
        }
        .ok_or_else(|| Rejection::UnknownInput(name.clone()))?;
        let bad = |why: &str| Err(Rejection::BadInput(name.clone(), why.to_string()));
        match spec.kind {
            InputKind::Text => {}
            InputKind::Url if !(value.starts_with("https://") || value.starts_with("http://")) => {
                return bad("must be an http(s) URL");
            }
            InputKind::Number if !value.parse::<f64>().is_ok_and(f64::is_finite) => {
                return bad("must be a number");
            }
            InputKind::Date if chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() => {
                return bad("must be a date as YYYY-MM-DD");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Enters a stage, following instant `next` exits until the item waits or ends.
pub(super) fn enter(
    ctx: &Context,
    item: &mut Item,
    mut name: String,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) {
    // Validation refuses instant loops; the bound keeps a broken definition from hanging.
    for _ in 0..=ctx.workflow.stages.len() {
        cancel_timers(item, fx);
        item.stage = name;
        item.entered_at = at;
        let Some(stage) = ctx.workflow.stages.get(&item.stage) else {
            return;
        };
        if let Some(register) = &stage.register {
            item.awaiting = Some(Awaiting::Register);
            fx.push(Effect::Register {
                series: register.series.clone(),
                year: at.with_timezone(&ctx.tz).year(),
            });
            return;
        }
        match proceed(ctx, item, at, fx) {
            Some(next) => name = next,
            None => return,
        }
    }
}

/// Runs the current stage's actions after registration; returns the stage to go on to at once.
fn proceed(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) -> Option<String> {
    let stage = ctx.workflow.stages.get(&item.stage)?;
    let comment = ctx
        .workflow
        .documents
        .as_ref()
        .and_then(|d| d.comment.as_ref());
    if comment == Some(&item.stage) && !texts_complete(ctx, item) {
        // The comment period starts when the last language's version is given.
        return None;
    }
    for n in &stage.notify {
        fx.push(Effect::Mail {
            template: n.template.clone(),
            to: Recipients::Audience(n.to),
            ballot: None,
        });
    }
    if stage.amendments.is_some() {
        return next_amendment(item, stage, at, fx);
    }
    if let Some(n) = &stage.nominations {
        // A new election (a workflow may come back here after one without a winner).
        item.standing.clear();
        item.elected.clear();
        if let Some(d) = n.closes_after {
            set_timer(item, Timer::Next(item.stage.clone()), at + d.0, fx);
        }
        return None;
    }
    if let Some(spec) = &stage.ballot {
        match &spec.election {
            Some(e) => {
                let round = Round {
                    number: 1,
                    seats: e.seats,
                };
                let candidates = item.standing.clone();
                election::open_round(item, spec, e, round, candidates, at, fx);
            }
            None => open_ballot(item, spec, None, at, fx),
        }
        return None;
    }
    if let Some(outcome) = &stage.end {
        item.status = Status::Ended;
        item.outcome = Some(outcome.clone());
        return None;
    }
    let timer = Timer::Next(item.stage.clone());
    match &stage.wait {
        Some(Wait::After(d)) => set_timer(item, timer, at + d.0, fx),
        Some(Wait::Schedule(s)) => {
            if let Some(due) = s.next_after(at, ctx.tz) {
                set_timer(item, timer, due, fx);
            }
        }
        None if stage.meeting => {
            if let Some(m) = item.meeting.as_mut() {
                m.opened_at.get_or_insert(at);
            }
        }
        None if stage.on_signal.is_none() => return stage.next.clone(),
        None => {}
    }
    None
}

/// Whether this version of the `language` text may be given now: the workflow's text has
/// that language, no ballot has opened on the texts (which freezes them) unless the item
/// is back in its comment period, and it is not the current version already. Asked before
/// the bytes are stored, too, so that a refused upload stores nothing.
pub fn check_version<'a>(
    workflow: &'a Workflow,
    item: &Item,
    language: &str,
    sha256: &str,
    name: &str,
    media_type: &str,
) -> Result<&'a crate::definition::Documents, Rejection> {
    let spec = workflow.documents.as_ref().ok_or(Rejection::NoDocuments)?;
    if item.status == Status::Ended {
        return Err(Rejection::Ended);
    }
    if !spec.languages.iter().any(|l| l == language) {
        return Err(Rejection::BadInput(
            "language".into(),
            format!("the text's languages are {}", spec.languages.join(", ")),
        ));
    }
    let hex = |b: u8| matches!(b, b'0'..=b'9' | b'a'..=b'f');
    if !(sha256.len() == 64 && sha256.bytes().all(hex)) {
        return Err(Rejection::BadInput(
            "sha256".into(),
            "64 lowercase hex digits".into(),
        ));
    }
    check_text("name", name, 200)?;
    check_text("media_type", media_type, 100)?;
    let current = item.documents.get(language).and_then(|v| v.last());
    if current.is_some_and(|v| v.sha256 == sha256) {
        return Err(Rejection::SameVersion(language.to_string()));
    }
    if let Some(a) = item.amendments.iter().find(|a| a.pending()) {
        return Err(Rejection::AmendedVersions(a.number));
    }
    // Back in the comment period (a ballot without quorum), the texts may be revised.
    if let Some(b) = item.ballots.last()
        && spec.comment.as_ref() != Some(&item.stage)
    {
        return Err(Rejection::TextsFrozen {
            ballot: item.ballots.len(),
            at: b.opened_at,
        });
    }
    Ok(spec)
}

/// Opens a ballot of the current stage (on an amendment, in an amendments stage), on the
/// texts as they stand, and asks for its electorate.
pub(super) fn open_ballot(
    item: &mut Item,
    spec: &BallotSpec,
    amendment: Option<u32>,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) {
    let index = item.ballots.len();
    item.ballots.push(Ballot {
        stage: item.stage.clone(),
        question: spec.question.default.clone(),
        choices: spec.choices.clone(),
        opened_at: at,
        closes_at: at + spec.closes_after.0,
        electorate: Default::default(),
        members: 0,
        votes: Votes::default(),
        result: None,
        recorded: spec.recorded,
        seed: String::new(),
        in_session: spec.in_session,
        room: None,
        texts: item.texts(),
        amendment,
        round: None,
        sealed: None,
    });
    item.awaiting = Some(Awaiting::Electorate(index));
    fx.push(Effect::FixElectorate { ballot: index });
}

/// In an amendments stage: opens the ballot on the next amendment still to decide, in the
/// order of their ranks (then numbers); one overlapping an adopted amendment falls, one
/// ruled out is not receivable. When none is left: the adopted amendments applied to the
/// texts (asked for), or the stage's `next` at once when none was adopted.
fn next_amendment(
    item: &mut Item,
    stage: &crate::definition::Stage,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) -> Option<String> {
    for a in item.amendments.iter_mut().filter(|a| a.fate.is_none()) {
        if a.ruling.as_ref().is_some_and(|r| !r.receivable) {
            a.fate = Some(Fate::NotReceivable);
        }
    }
    let next = |item: &Item| {
        item.amendments
            .iter()
            .enumerate()
            .filter(|(_, a)| a.fate.is_none())
            .min_by_key(|(_, a)| {
                (
                    a.ruling.as_ref().and_then(|r| r.rank).unwrap_or(u32::MAX),
                    a.number,
                )
            })
            .map(|(i, _)| i)
    };
    while let Some(i) = next(item) {
        let mut adopted = item
            .amendments
            .iter()
            .filter(|a| a.fate == Some(Fate::Adopted));
        if adopted.any(|a| a.overlaps(&item.amendments[i])) {
            item.amendments[i].fate = Some(Fate::Fallen);
            continue;
        }
        let spec = stage.amendments.as_ref()?;
        item.amendments[i].ballot = Some(item.ballots.len());
        let number = item.amendments[i].number;
        open_ballot(item, spec, Some(number), at, fx);
        return None;
    }
    // Adopted amendments not yet applied to the texts.
    let unapplied = item.amendments.iter().any(|a| {
        a.fate == Some(Fate::Adopted)
            && !item
                .documents
                .values()
                .flatten()
                .any(|v| v.amendments.contains(&a.number))
    });
    if unapplied {
        item.awaiting = Some(Awaiting::Texts);
        fx.push(Effect::Consolidate);
        return None;
    }
    stage.next.clone()
}

/// Every language of the workflow's text has a version.
fn texts_complete(ctx: &Context, item: &Item) -> bool {
    ctx.workflow.documents.as_ref().is_none_or(|d| {
        d.languages
            .iter()
            .all(|l| item.documents.get(l).is_some_and(|v| !v.is_empty()))
    })
}

fn close(
    ctx: &Context,
    item: &mut Item,
    index: usize,
    at: DateTime<Utc>,
    reason: &str,
    fx: &mut Vec<Effect>,
) {
    let Some(spec) = ballot_spec(ctx, item) else {
        return;
    };
    let Some(b) = item.ballots.get_mut(index) else {
        return;
    };
    if b.result.is_some() {
        return;
    }
    if spec.election.is_some() {
        return election::close_round(ctx, item, index, spec, at, reason, fx);
    }
    let c = counts(b);
    let tally = tally(spec, b);
    b.result = Some(BallotResult {
        verdict: tally.verdict,
        counts: c.choices,
        explanation: tally.explanation,
        closed_at: at,
        reason: reason.to_string(),
        elected: Vec::new(),
    });
    if let Some(number) = b.amendment {
        if let Some(a) = item.amendments.iter_mut().find(|a| a.number == number) {
            a.fate = Some(match tally.verdict {
                rules::Verdict::Adopted => Fate::Adopted,
                _ => Fate::Rejected,
            });
        }
        let next = ctx
            .workflow
            .stages
            .get(&item.stage)
            .and_then(|stage| next_amendment(item, stage, at, fx));
        if let Some(next) = next {
            enter(ctx, item, next, at, fx);
        }
        return;
    }
    let next = ctx
        .workflow
        .stages
        .get(&item.stage)
        .and_then(|s| s.outcomes.get(&tally.verdict))
        .cloned();
    if let Some(next) = next {
        enter(ctx, item, next, at, fx);
    }
}

/// The ballot of the item's current stage.
fn ballot_spec<'a>(ctx: &Context<'a>, item: &Item) -> Option<&'a BallotSpec> {
    ctx.workflow.ballot(&item.stage)
}

/// The deadline of a ballot, and its reminders still to come.
fn set_ballot_timers(
    item: &mut Item,
    spec: &BallotSpec,
    ballot: usize,
    closes_at: DateTime<Utc>,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) {
    set_timer(item, Timer::Close(ballot), closes_at, fx);
    for (i, before) in spec.remind.iter().enumerate() {
        let due = closes_at - before.0;
        if due > at {
            set_timer(item, Timer::Remind(ballot, i), due, fx);
        }
    }
}

fn set_timer(item: &mut Item, name: Timer, due: DateTime<Utc>, fx: &mut Vec<Effect>) {
    item.timers.insert(name.clone(), due);
    fx.push(Effect::SetTimer { name, due });
}

fn cancel_timers(item: &mut Item, fx: &mut Vec<Effect>) {
    for (name, due) in std::mem::take(&mut item.timers) {
        fx.push(Effect::CancelTimer { name, due });
    }
}
