//! Elections in the engine: nominations, the confirmed list, and each round's count,
//! which elects, opens the next round, or ends the election.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::apply::{check_text, enter, open_ballot};
use super::*;
use crate::definition::{BallotSpec, ElectionSpec, Workflow};
use crate::rules::election::{self, BLANK};
use crate::rules::{Counts, Verdict};

/// Whether the item's stage takes nominations now: a nominations stage, before its
/// deadline (whose timer is pending while they are open).
pub fn taking_nominations(workflow: &Workflow, item: &Item) -> bool {
    let Some(n) = workflow.stages.get(&item.stage).and_then(|s| s.nominations) else {
        return false;
    };
    item.status == Status::Open
        && (n.closes_after.is_none() || item.timers.contains_key(&Timer::Next(item.stage.clone())))
}

/// A candidate's id: a word of letters, digits, `_` and `-`, not `blank`.
fn check_id(id: &str) -> Result<(), Rejection> {
    let word = !id.is_empty()
        && id.len() <= 40
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !word || id == BLANK {
        return Err(Rejection::BadInput(
            "candidate".into(),
            "an id of at most 40 lowercase letters, digits, `_` or `-`, not `blank`".into(),
        ));
    }
    Ok(())
}

pub(super) fn nominated(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    candidate: &str,
    name: &BTreeMap<String, String>,
    member: Option<&String>,
) -> Result<(), Rejection> {
    if !taking_nominations(ctx.workflow, item) {
        return Err(Rejection::NotTakingNominations);
    }
    check_id(candidate)?;
    if item.candidates.iter().any(|c| c.id == candidate) {
        return Err(Rejection::CandidateExists(candidate.to_string()));
    }
    if name.is_empty() {
        return Err(Rejection::BadInput(
            "name".into(),
            "give the candidate's name in at least one language".into(),
        ));
    }
    for (language, text) in name {
        let code =
            (2..=3).contains(&language.len()) && language.chars().all(|c| c.is_ascii_lowercase());
        if !code {
            return Err(Rejection::BadInput(
                "name".into(),
                format!("`{language}` is not a language code such as ar, en or fr"),
            ));
        }
        check_text(&format!("name.{language}"), text, 200)?;
    }
    item.candidates.push(Candidate {
        id: candidate.to_string(),
        name: name.clone(),
        nominated_by: member.cloned(),
        at,
    });
    Ok(())
}

pub(super) fn confirmed(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    candidates: &[String],
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    let stage = ctx.workflow.stages.get(&item.stage);
    let next = stage
        .filter(|s| s.nominations.is_some())
        .and_then(|s| s.next.clone())
        .ok_or(Rejection::NotTakingNominations)?;
    if candidates.is_empty() {
        return Err(Rejection::NoCandidates);
    }
    let mut seen = BTreeSet::new();
    for c in candidates {
        if !item.candidates.iter().any(|x| x.id == *c) {
            return Err(Rejection::NoSuchCandidate(c.clone()));
        }
        if !seen.insert(c) {
            return Err(Rejection::ListedTwice(c.clone()));
        }
    }
    let secret = ctx
        .workflow
        .ballot(&next)
        .and_then(|b| b.election.as_ref())
        .is_some_and(|e| e.secret.is_some());
    if secret && item.trust.as_ref().is_none_or(|t| t.key.is_none()) {
        return Err(Rejection::NoElectionKey);
    }
    item.standing = candidates.to_vec();
    enter(ctx, item, next, at, fx);
    Ok(())
}

/// Opens round `number` of the stage's election, for `seats` seats, between `candidates`.
pub(super) fn open_round(
    item: &mut Item,
    spec: &BallotSpec,
    e: &ElectionSpec,
    round: Round,
    candidates: Vec<String>,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) {
    open_ballot(item, spec, None, at, fx);
    if let Some(b) = item.ballots.last_mut() {
        b.choices = candidates;
        if e.blank {
            b.choices.push(BLANK.to_string());
        }
        b.round = Some(round);
    }
    if e.secret.is_some() {
        super::sealed::seal_round(item, item.ballots.len() - 1);
    }
}

/// The marks of a round: each candidate's, the ballots for candidates, the blank ones.
pub fn marks(b: &Ballot) -> election::Marks {
    let candidates: Vec<String> = b.choices.iter().filter(|c| *c != BLANK).cloned().collect();
    let choices = (0..b.electorate.len()).filter_map(|i| b.choice_at(i).map(String::from));
    election::marks(&candidates, choices, b.electorate.len() as u64, b.members)
}

/// Counts a closed round: records its result and who it elected; then opens the next
/// round, or goes to the stage's `elected` or `no_winner` outcome.
pub(super) fn close_round(
    ctx: &Context,
    item: &mut Item,
    index: usize,
    spec: &BallotSpec,
    at: DateTime<Utc>,
    reason: &str,
    fx: &mut Vec<Effect>,
) {
    let Some(b) = item.ballots.get(index) else {
        return;
    };
    match &b.sealed {
        // A secret round: summed now, counted once the trustees have decrypted the sums.
        Some(s) if s.tally.is_none() => super::sealed::close(item, index, at, reason, fx),
        Some(_) => {}
        None => {
            let m = marks(b);
            count(ctx, item, index, spec, m, (at, reason), fx);
        }
    }
}

/// Counts a closed round from its marks (an open round's, or a secret round's decrypted
/// sums); then as [`close_round`].
pub(super) fn count(
    ctx: &Context,
    item: &mut Item,
    index: usize,
    spec: &BallotSpec,
    m: election::Marks,
    (at, reason): (DateTime<Utc>, &str),
    fx: &mut Vec<Effect>,
) {
    let (Some(b), Some(e)) = (item.ballots.get(index), spec.election.as_ref()) else {
        return;
    };
    let round = b.round.unwrap_or(Round {
        number: 1,
        seats: e.seats,
    });
    let eligible = b.electorate.len() as u64;
    let mut counts: BTreeMap<String, u64> = m.candidates.iter().cloned().collect();
    if e.blank {
        counts.insert(BLANK.into(), m.blank);
    }
    // The quorum sees `blank` and `cast` (every ballot returned, blank ones too).
    let quorum = spec.quorum.as_ref().map(|q| {
        let c = Counts {
            choices: BTreeMap::from([(BLANK.into(), m.blank), ("ballots".into(), m.ballots)]),
            eligible,
            members: b.members,
            voters: Vec::new(),
            present: None,
        };
        (q.eval(&c).unwrap_or(false), q.explain(&c))
    });
    let seed = b.lot_seed();
    let (elected, next, explanation) = match quorum {
        Some((false, why)) => (
            Vec::new(),
            Vec::new(),
            format!("round {}: no quorum — quorum {why}", round.number),
        ),
        _ => {
            let method = e.method(round.number, seed);
            let last = round.number >= e.rounds;
            let c = election::count_round(&method, &m, round.seats as usize, last);
            let prefix = match quorum {
                Some((_, why)) => format!("quorum {why}; "),
                None => String::new(),
            };
            (
                c.elected,
                c.next,
                format!("round {}: {prefix}{}", round.number, c.explanation),
            )
        }
    };
    item.elected.extend(elected.iter().cloned());
    let verdict = match item.elected.is_empty() {
        false if next.is_empty() => Verdict::Elected,
        _ => Verdict::NoWinner,
    };
    if let Some(b) = item.ballots.get_mut(index) {
        b.result = Some(BallotResult {
            verdict,
            counts,
            explanation,
            closed_at: at,
            reason: reason.to_string(),
            elected: elected.clone(),
        });
    }
    if !next.is_empty() {
        let round = Round {
            number: round.number + 1,
            seats: round.seats - elected.len() as u32,
        };
        open_round(item, spec, e, round, next, at, fx);
        return;
    }
    let outcome = ctx
        .workflow
        .stages
        .get(&item.stage)
        .and_then(|s| s.outcomes.get(&verdict))
        .cloned();
    if let Some(outcome) = outcome {
        enter(ctx, item, outcome, at, fx);
    }
}

/// An id for a candidate nominated without one: their name in English, French or the
/// first language given, its letters without accents, lower case, words joined by `_`;
/// `candidate-N` when that leaves nothing or is taken.
pub fn candidate_id(item: &Item, name: &BTreeMap<String, String>) -> String {
    let text = name
        .get("en")
        .or_else(|| name.get("fr"))
        .or_else(|| name.values().next())
        .map_or("", String::as_str);
    let mut id = String::new();
    let nfd = icu_normalizer::DecomposingNormalizerBorrowed::new_nfd().normalize(text);
    for c in nfd.chars() {
        // Latin letters that do not decompose into a letter and its accent.
        let plain = match c.to_lowercase().next().unwrap_or(c) {
            'ı' => Some("i"),
            'ł' => Some("l"),
            'ø' => Some("o"),
            'đ' => Some("d"),
            'ß' => Some("ss"),
            'æ' => Some("ae"),
            'œ' => Some("oe"),
            _ => None,
        };
        if let Some(p) = plain {
            id.push_str(p);
        } else if c.is_ascii_alphanumeric() {
            id.push(c.to_ascii_lowercase());
        } else if (c.is_whitespace() || c == '-' || c == '_' || c == '.')
            && !id.is_empty()
            && !id.ends_with('_')
        {
            id.push('_');
        }
    }
    let id: String = id.chars().take(40).collect();
    let id = id.trim_end_matches('_').to_string();
    let taken = |id: &str| item.candidates.iter().any(|c| c.id == id);
    if id.len() < 2 || id == BLANK || taken(&id) {
        let mut n = item.candidates.len() + 1;
        while taken(&format!("candidate-{n}")) {
            n += 1;
        }
        return format!("candidate-{n}");
    }
    id
}
