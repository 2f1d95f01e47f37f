//! A secret election in the engine: the trustees' key ceremony, the encrypted rounds, and
//! the count once `needed` trustees have decrypted a round's tally.
//!
//! The engine never sees a vote in the clear. A secret round's votes are ciphertexts (one
//! per choice, `secret::encode_choices`), whose proofs the shell checks when the vote
//! arrives and `councild verify` checks again. At the close, the latest ballot of each
//! member is added up, choice by choice; each trustee decrypts the sums only, with a proof
//! the engine checks here; the counts then go to the election's count as an open round's.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::*;
use crate::definition::{ElectionSpec, Workflow};
use crate::rules::election::{self, BLANK};
use crate::secret::{self, PartialDecryption};

pub use crate::definition::TRUSTEE_CALL;

/// The secret election of a workflow, if it has one (the first stage that holds one).
pub fn secret_election(w: &Workflow) -> Option<&ElectionSpec> {
    w.stages
        .values()
        .filter_map(|s| s.ballot.as_ref()?.election.as_ref())
        .find(|e| e.secret.is_some())
}

/// The trustees an item of `w` starts with, before any has done anything.
pub(super) fn trust(w: &Workflow) -> Option<Trust> {
    let t = secret_election(w)?.secret.as_ref()?;
    Some(Trust {
        needed: t.needed,
        trustees: t
            .members
            .iter()
            .map(|m| Trustee {
                member: m.clone(),
                box_key: None,
                commitments: Vec::new(),
                shares: BTreeMap::new(),
                ready: false,
            })
            .collect(),
        key: None,
    })
}

fn step(why: impl Into<String>) -> Rejection {
    Rejection::TrusteeStep(why.into())
}

/// The trustee `member` of an item whose key is still being made.
fn ceremony<'a>(item: &'a mut Item, member: &str) -> Result<(&'a mut Trust, usize), Rejection> {
    let trust = item
        .trust
        .as_mut()
        .ok_or_else(|| Rejection::NotTrustee(member.to_string()))?;
    let i = trust
        .trustees
        .iter()
        .position(|t| t.member == member)
        .ok_or_else(|| Rejection::NotTrustee(member.to_string()))?;
    if trust.key.is_some() {
        return Err(step("the election key is already made"));
    }
    Ok((trust, i))
}

pub(super) fn trustee_key(item: &mut Item, member: &str, key: &str) -> Result<(), Rejection> {
    let (trust, i) = ceremony(item, member)?;
    let valid = hex::decode(key).is_ok_and(|b| b.len() == 32);
    if !valid {
        return Err(Rejection::BadInput(
            "key".into(),
            "an X25519 public key in 64 hex digits".into(),
        ));
    }
    if trust.trustees[i].box_key.is_some() {
        return Err(step(format!(
            "trustee `{member}` has already given its key"
        )));
    }
    trust.trustees[i].box_key = Some(key.to_string());
    Ok(())
}

pub(super) fn trustee_dealt(
    item: &mut Item,
    member: &str,
    commitments: &[String],
    shares: &BTreeMap<String, String>,
) -> Result<(), Rejection> {
    let (trust, i) = ceremony(item, member)?;
    if let Some(t) = trust.trustees.iter().find(|t| t.box_key.is_none()) {
        return Err(step(format!(
            "trustee `{}` has not given its key yet: deal once every trustee has",
            t.member
        )));
    }
    if !trust.trustees[i].commitments.is_empty() {
        return Err(step(format!("trustee `{member}` has already dealt")));
    }
    let points = commitments
        .iter()
        .all(|c| secret::point_from_hex(c).is_some());
    if commitments.len() != trust.needed as usize || !points {
        return Err(Rejection::BadInput(
            "commitments".into(),
            format!("{} points in 64 hex digits", trust.needed),
        ));
    }
    let others: BTreeSet<&str> = trust
        .trustees
        .iter()
        .filter(|t| t.member != member)
        .map(|t| t.member.as_str())
        .collect();
    let given: BTreeSet<&str> = shares.keys().map(String::as_str).collect();
    let sized = shares.values().all(|s| !s.is_empty() && s.len() <= 400);
    if given != others || !sized {
        return Err(Rejection::BadInput(
            "shares".into(),
            format!(
                "one encrypted share for each other trustee: {}",
                others.into_iter().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let t = &mut trust.trustees[i];
    t.commitments = commitments.to_vec();
    t.shares = shares.clone();
    Ok(())
}

pub(super) fn trustee_ready(
    item: &mut Item,
    member: &str,
    fx: &mut Vec<Effect>,
) -> Result<(), Rejection> {
    let (trust, i) = ceremony(item, member)?;
    if let Some(t) = trust.trustees.iter().find(|t| t.commitments.is_empty()) {
        return Err(step(format!(
            "trustee `{}` has not dealt yet: check the shares once every trustee has",
            t.member
        )));
    }
    if trust.trustees[i].ready {
        return Err(step(format!("trustee `{member}` is already ready")));
    }
    trust.trustees[i].ready = true;
    if trust.trustees.iter().all(|t| t.ready) {
        let key = secret::election_key(&trust.dealings());
        trust.key = Some(secret::point_hex(&key));
        fx.push(Effect::Notice(
            "the trustees have made the election key: the election can open".into(),
        ));
    }
    Ok(())
}

/// A round of a secret election opens: its ballots are encrypted under the election key.
pub(super) fn seal_round(item: &mut Item, index: usize) {
    let key = item.trust.as_ref().and_then(|t| t.key.clone());
    if let (Some(b), Some(key)) = (item.ballots.get_mut(index), key) {
        b.sealed = Some(Box::new(Sealed {
            key,
            tally: None,
            decryptions: BTreeMap::new(),
            closed: None,
            failure: None,
        }));
    }
}

/// A secret vote, checked: its ciphertexts (the vote's `choice`) and their proofs are a
/// ballot of this round, for this member, under the round's key.
pub(super) fn check_vote(
    item: &Item,
    ballot: usize,
    member: &str,
    choice: &str,
    proofs: &secret::Proofs,
) -> Result<(), Rejection> {
    let b = item.ballots.get(ballot).ok_or(Rejection::NoSuchBallot)?;
    let key = b
        .sealed
        .as_ref()
        .and_then(|s| secret::point_from_hex(&s.key))
        .ok_or(Rejection::NotSealed)?;
    let choices = secret::decode_choices(choice, b.choices.len()).ok_or(Rejection::ProofsFail)?;
    let context = secret::ballot_context(&item.id, ballot, member);
    let cast = secret::Ballot::join(choices, proofs.clone());
    match cast.verify(&context, &key, &b.shape()) {
        true => Ok(()),
        false => Err(Rejection::ProofsFail),
    }
}

/// A secret round closes: the latest ballot of each member is added up, and the item waits
/// for the trustees' decryptions, whom it asks by mail.
pub(super) fn close(
    item: &mut Item,
    index: usize,
    at: DateTime<Utc>,
    reason: &str,
    fx: &mut Vec<Effect>,
) {
    let Some(b) = item.ballots.get_mut(index) else {
        return;
    };
    let n = b.choices.len();
    let ballots: Vec<Vec<secret::Ciphertext>> = (0..b.electorate.len())
        .filter_map(|i| secret::decode_choices(b.choice_at(i)?, n))
        .collect();
    let tally = secret::tally(n, ballots.iter().map(Vec::as_slice));
    if let Some(s) = b.sealed.as_mut() {
        s.tally = Some(tally);
        s.closed = Some((at, reason.to_string()));
    }
    for name in [Timer::Close(index)]
        .into_iter()
        .chain(
            item.timers
                .keys()
                .filter(|t| t.ballot() == Some(index))
                .cloned(),
        )
        .collect::<BTreeSet<_>>()
    {
        if let Some(due) = item.timers.remove(&name) {
            fx.push(Effect::CancelTimer { name, due });
        }
    }
    item.awaiting = Some(Awaiting::Decryption(index));
    fx.push(Effect::Mail {
        template: TRUSTEE_CALL.into(),
        to: Recipients::Trustees,
        ballot: Some(index),
    });
}

/// A trustee's decryption shares of a closed round's tally, checked against its public
/// share; with `needed` of them, the round is counted.
pub(super) fn decrypted(
    item: &mut Item,
    ballot: usize,
    member: &str,
    shares: &[PartialDecryption],
) -> Result<Option<election::Marks>, Rejection> {
    if item.awaiting != Some(Awaiting::Decryption(ballot)) {
        return Err(Rejection::NotAwaiting);
    }
    let trust = item
        .trust
        .as_ref()
        .ok_or_else(|| Rejection::NotTrustee(member.to_string()))?;
    let j = trust
        .number(member)
        .ok_or_else(|| Rejection::NotTrustee(member.to_string()))?;
    let public = secret::public_share(&trust.dealings(), j);
    let needed = trust.needed as usize;
    let context = secret::decryption_context(&item.id, ballot, member);
    let b = item.ballots.get(ballot).ok_or(Rejection::NoSuchBallot)?;
    let s = b.sealed.as_ref().ok_or(Rejection::NotAwaiting)?;
    let tally = s.tally.as_ref().ok_or(Rejection::NotAwaiting)?;
    if s.decryptions.contains_key(member) {
        return Err(step(format!(
            "trustee `{member}` has already decrypted this round"
        )));
    }
    if shares.len() != tally.len() {
        return Err(Rejection::BadInput(
            "shares".into(),
            format!("one decryption share per choice ({})", tally.len()),
        ));
    }
    if let Some(i) = (0..shares.len()).find(|&i| !shares[i].verify(&context, &public, &tally[i])) {
        return Err(Rejection::BadInput(
            "shares".into(),
            format!(
                "the share of choice `{}` does not prove a decryption with trustee `{member}`'s key",
                b.choices.get(i).map_or("?", String::as_str)
            ),
        ));
    }
    let (cast, eligible, members) = (b.cast() as u64, b.electorate.len() as u64, b.members);
    let choices = b.choices.clone();
    let tally = tally.clone();
    let Some(s) = item.ballots[ballot].sealed.as_mut() else {
        return Err(Rejection::NotAwaiting);
    };
    s.decryptions.insert(member.to_string(), shares.to_vec());
    if s.decryptions.len() < needed {
        return Ok(None);
    }
    let by: Vec<(u64, &Vec<PartialDecryption>)> = s
        .decryptions
        .iter()
        .take(needed)
        .filter_map(|(m, d)| Some((trust.number(m)?, d)))
        .collect();
    let counts: Option<Vec<u64>> = tally
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let parts: Vec<(u64, _)> = by.iter().map(|(j, d)| (*j, d[i].share)).collect();
            secret::decrypt(c, &parts, cast)
        })
        .collect();
    let Some(counts) = counts else {
        s.failure = Some(format!(
            "the trustees' shares do not decrypt to counts of at most {cast}"
        ));
        return Ok(None);
    };
    let blank = choices
        .iter()
        .zip(&counts)
        .find(|(c, _)| *c == BLANK)
        .map_or(0, |(_, n)| *n);
    Ok(Some(election::Marks {
        candidates: choices
            .iter()
            .zip(&counts)
            .filter(|(c, _)| *c != BLANK)
            .map(|(c, n)| (c.clone(), *n))
            .collect(),
        ballots: cast.saturating_sub(blank),
        blank,
        eligible,
        members,
    }))
}
