//! The public record of a secret election, and its check by anyone: every ballot's proofs,
//! the sums of the ballots counted, each trustee's decryption, and the counts published.
//! `councild verify` runs [`check`] on the record the daemon exports; so can anyone else
//! who has it, without the daemon.

use std::collections::BTreeMap;

use curve25519_dalek::ristretto::RistrettoPoint;
use serde::{Deserialize, Serialize};

use crate::secret::{self, Ciphertext, PartialDecryption, Shape};

/// What the daemon publishes of a secret election (`GET /elections/{item}/record.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub item: String,
    pub needed: u32,
    /// In trustee order: trustee `j` (from 1) is the `j`-th.
    pub trustees: Vec<TrusteeRecord>,
    /// The election key, when made.
    pub key: Option<String>,
    pub rounds: Vec<RoundRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrusteeRecord {
    pub member: String,
    pub commitments: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundRecord {
    /// The ballot's index in the item, which the proofs are bound to.
    pub ballot: usize,
    pub round: u32,
    /// The candidates, then `blank` when offered.
    pub choices: Vec<String>,
    pub seats: u64,
    pub blank: bool,
    /// The members who may vote in the round: a ballot of anyone else does not count.
    pub electorate: Vec<String>,
    /// Every ballot cast, in the order cast; a member's last one is counted.
    pub ballots: Vec<CastRecord>,
    /// The sums, once the round closed.
    pub tally: Option<Vec<Ciphertext>>,
    /// Each trustee's decryption shares of the sums, by member.
    pub decryptions: BTreeMap<String, Vec<PartialDecryption>>,
    /// The counts the daemon published, once decrypted.
    pub counts: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CastRecord {
    pub member: String,
    pub tracker: String,
    pub ballot: secret::Ballot,
}

/// What a record that checks says: per round, the trackers counted and the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub rounds: Vec<RoundChecked>,
}

/// A round's number, its ballots counted, and its counts once decrypted.
pub type RoundChecked = (u32, usize, Option<BTreeMap<String, u64>>);

/// The trustees' commitments as points, and the election key, checked against each other.
fn key_of(r: &Record) -> Result<(Vec<Vec<RistrettoPoint>>, Option<RistrettoPoint>), String> {
    let dealings: Vec<Vec<_>> = r
        .trustees
        .iter()
        .map(|t| {
            t.commitments
                .iter()
                .map(|c| secret::point_from_hex(c))
                .collect::<Option<Vec<_>>>()
                .ok_or(format!("trustee {}'s commitments are not points", t.member))
        })
        .collect::<Result<_, _>>()?;
    let Some(k) = &r.key else {
        return Ok((dealings, None));
    };
    let key = secret::point_from_hex(k).ok_or("the election key is not a point")?;
    if secret::election_key(&dealings) != key {
        return Err("the election key is not the one the trustees' commitments make".into());
    }
    Ok((dealings, Some(key)))
}

/// A round's ballots checked (trackers, proofs), and the sum of the last one of each
/// member: what its tally must be; with how many ballots it counts.
fn sum_of(
    r: &Record,
    round: &RoundRecord,
    key: &RistrettoPoint,
) -> Result<(Vec<Ciphertext>, usize), String> {
    let n = round.round;
    let shape = Shape {
        choices: round.choices.len(),
        seats: round.seats,
        blank: round.blank,
    };
    let mut latest: BTreeMap<&str, &[Ciphertext]> = BTreeMap::new();
    for (i, cast) in round.ballots.iter().enumerate() {
        if !round.electorate.contains(&cast.member) {
            return Err(format!(
                "round {n}, ballot {} (tracker {}): `{}` is not in the round's electorate",
                i + 1,
                cast.tracker,
                cast.member
            ));
        }
        let context = secret::ballot_context(&r.item, round.ballot, &cast.member);
        if cast.ballot.tracker() != cast.tracker {
            return Err(format!(
                "round {n}, ballot {} (tracker {}): its tracker is not the hash of its ciphertexts",
                i + 1,
                cast.tracker
            ));
        }
        if !cast.ballot.verify(&context, key, &shape) {
            return Err(format!(
                "round {n}, ballot {} (tracker {}): its proofs do not check",
                i + 1,
                cast.tracker
            ));
        }
        latest.insert(&cast.member, &cast.ballot.choices);
    }
    let sum = secret::tally(shape.choices, latest.values().copied());
    Ok((sum, latest.len()))
}

/// What a trustee decrypts, checked first: the tally of round `ballot` is the sum of its
/// ballots, each of whose proofs checks under the key the trustees made.
pub fn checked_tally(r: &Record, ballot: usize) -> Result<Vec<Ciphertext>, String> {
    let (_, key) = key_of(r)?;
    let key = key.ok_or("the election key is not made")?;
    let round = r
        .rounds
        .iter()
        .find(|x| x.ballot == ballot)
        .ok_or("the record has no such round")?;
    let (sum, counted) = sum_of(r, round, &key)?;
    match &round.tally {
        Some(t) if *t == sum => Ok(sum),
        Some(_) => Err(format!(
            "round {}: the tally is not the sum of the {counted} ballots counted",
            round.round
        )),
        None => Err(format!("round {}: not closed", round.round)),
    }
}

/// Checks a record; the first thing that does not check, in words, otherwise.
pub fn check(r: &Record) -> Result<Checked, String> {
    let (dealings, key) = key_of(r)?;
    let key = match key {
        Some(k) => k,
        None if r.rounds.is_empty() => return Ok(Checked { rounds: Vec::new() }),
        None => return Err("rounds were held without an election key".into()),
    };
    let mut checked = Vec::new();
    for round in &r.rounds {
        let n = round.round;
        let (sum, counted) = sum_of(r, round, &key)?;
        let Some(tally) = &round.tally else {
            checked.push((n, counted, None));
            continue;
        };
        if *tally != sum {
            return Err(format!(
                "round {n}: the tally is not the sum of the {counted} ballots counted"
            ));
        }
        let mut parts: Vec<(u64, &Vec<PartialDecryption>)> = Vec::new();
        for (member, shares) in &round.decryptions {
            let j = r
                .trustees
                .iter()
                .position(|t| t.member == *member)
                .ok_or(format!("round {n}: `{member}` is not a trustee"))?
                as u64
                + 1;
            let public = secret::public_share(&dealings, j);
            let context = secret::decryption_context(&r.item, round.ballot, member);
            let all = shares.len() == tally.len()
                && shares
                    .iter()
                    .zip(tally)
                    .all(|(d, c)| d.verify(&context, &public, c));
            if !all {
                return Err(format!(
                    "round {n}: trustee {member}'s decryption does not check"
                ));
            }
            parts.push((j, shares));
        }
        let Some(published) = &round.counts else {
            checked.push((n, counted, None));
            continue;
        };
        if parts.len() < r.needed as usize {
            return Err(format!(
                "round {n}: counts published with {} of the {} decryptions needed",
                parts.len(),
                r.needed
            ));
        }
        let parts = &parts[..r.needed as usize];
        let mut counts = BTreeMap::new();
        for (i, (choice, c)) in round.choices.iter().zip(tally).enumerate() {
            let shares: Vec<_> = parts.iter().map(|(j, d)| (*j, d[i].share)).collect();
            let count = secret::decrypt(c, &shares, counted as u64)
                .ok_or(format!("round {n}: `{choice}` does not decrypt to a count"))?;
            counts.insert(choice.clone(), count);
        }
        if counts != *published {
            return Err(format!(
                "round {n}: the counts published are not those the trustees' decryption gives ({})",
                counts
                    .iter()
                    .map(|(c, k)| format!("{c} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        checked.push((n, counted, Some(counts)));
    }
    Ok(Checked { rounds: checked })
}
