//! Counting one round of an election: who is elected, and who stands in the next round.
//!
//! Each voter marks up to `seats` candidates, or casts a blank ballot. Blank ballots are
//! counted apart and, as in "present and voting", are not votes cast. A candidate is
//! elected with the majority the method asks of its base (the votes cast, the electorate
//! or all members), the best placed first, up to the seats of the round. When seats remain
//! and rounds are left, the next round is restricted as the workflow says: to the best
//! placed (twice as many as the seats left), or without the last placed. A tie that decides
//! a seat or a place in the next round is settled by the workflow's tie rule: a new round
//! between the tied candidates, or a lot drawn from a seed fixed before the vote.
//!
//! Pure: ids in, ids and an explanation out. Exact integer arithmetic.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// What a candidate needs to be elected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Majority {
    /// The most votes (at least one).
    Plurality,
    /// More than half of the base.
    Absolute,
    /// At least two thirds of the base.
    TwoThirds,
}

/// What the majority is a share of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The ballots cast for candidates: blank ballots do not count ("present and voting").
    VotesCast,
    /// The members of the electorate.
    Eligible,
    /// All members of the council, suspended ones too.
    Members,
}

/// Who stands in the next round when seats remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// The best placed not elected, twice as many as the seats left.
    TwoBest,
    /// Everyone not elected but the last placed.
    DropLast,
}

/// How a tie that decides a seat, or a place in the next round, is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionTie {
    /// A new round between the tied candidates.
    Round,
    /// Drawn by lot from this seed (the item's chain head when the round opened).
    Lot(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Method {
    pub majority: Majority,
    pub base: Base,
    pub then: Then,
    pub tie: ElectionTie,
}

/// The ballots of one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// Each candidate of the round, in the ballot's order, with the ballots that mark them.
    pub candidates: Vec<(String, u64)>,
    /// Ballots that mark at least one candidate.
    pub ballots: u64,
    pub blank: u64,
    pub eligible: u64,
    pub members: u64,
}

/// What one round decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Elected in this round, best placed first.
    pub elected: Vec<String>,
    /// The candidates of the next round, in the ballot's order, when seats remain and the
    /// round was not the last; empty otherwise.
    pub next: Vec<String>,
    /// The majority a candidate needed (0 for plurality: one vote).
    pub needed: u64,
    pub explanation: String,
}

impl Method {
    /// The fewest ballots that elect, out of `base` (0 when a plurality needs only to lead).
    pub fn needed(&self, m: &Marks) -> u64 {
        let base = match self.base {
            Base::VotesCast => m.ballots,
            Base::Eligible => m.eligible,
            Base::Members => m.members,
        };
        match self.majority {
            Majority::Plurality => 1,
            Majority::Absolute => base / 2 + 1,
            Majority::TwoThirds => (base * 2).div_ceil(3).max(1),
        }
    }
}

/// Counts one round for `seats` seats; `last` when no further round may be held.
pub fn count_round(method: &Method, m: &Marks, seats: usize, last: bool) -> Counted {
    let seats = seats.max(1);
    let needed = method.needed(m);
    let mut ranked: Vec<(usize, &str, u64)> = m
        .candidates
        .iter()
        .enumerate()
        .map(|(i, (c, n))| (i, c.as_str(), *n))
        .collect();
    ranked.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    let mut notes = vec![format!(
        "{}; blank {}; {} ballots for candidates; {}",
        ranked
            .iter()
            .map(|(_, c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        m.blank,
        m.ballots,
        match method.majority {
            Majority::Plurality => "the most votes elect".to_string(),
            _ => format!("{needed} needed"),
        }
    )];
    let qualified: Vec<&(usize, &str, u64)> = ranked.iter().filter(|r| r.2 >= needed).collect();
    let mut elected: Vec<String> = Vec::new();
    let mut tied_for_seat: Vec<String> = Vec::new();
    if qualified.len() <= seats {
        elected.extend(qualified.iter().map(|r| r.1.to_string()));
    } else {
        let cut = qualified[seats - 1].2;
        let above: Vec<&str> = qualified
            .iter()
            .filter(|r| r.2 > cut)
            .map(|r| r.1)
            .collect();
        let tied: Vec<&str> = qualified
            .iter()
            .filter(|r| r.2 == cut)
            .map(|r| r.1)
            .collect();
        elected.extend(above.iter().map(|c| c.to_string()));
        let left = seats - above.len();
        if tied.len() > left {
            match method.tie {
                ElectionTie::Lot(seed) => {
                    let drawn = draw(seed, &tied, left);
                    notes.push(format!(
                        "tie at {cut} between {}: drawn by lot (seed {seed}): {}",
                        tied.join(", "),
                        drawn.join(", ")
                    ));
                    elected.extend(drawn);
                }
                ElectionTie::Round => {
                    notes.push(format!(
                        "tie at {cut} between {} for {left} seat{}",
                        tied.join(", "),
                        if left == 1 { "" } else { "s" }
                    ));
                    tied_for_seat = tied.iter().map(|c| c.to_string()).collect();
                }
            }
        } else {
            elected.extend(tied.iter().map(|c| c.to_string()));
        }
    }
    if !elected.is_empty() {
        notes.push(format!("elected: {}", elected.join(", ")));
    }
    let left = seats - elected.len();
    let mut next = Vec::new();
    if left > 0 && !last {
        let rest: Vec<(usize, &str, u64)> = ranked
            .iter()
            .filter(|r| !elected.iter().any(|e| e == r.1))
            .copied()
            .collect();
        next = if !tied_for_seat.is_empty() {
            tied_for_seat
        } else {
            match method.then {
                Then::TwoBest => best(method, &rest, 2 * left, &mut notes),
                Then::DropLast => drop_last(method, &rest, left, &mut notes),
            }
        };
        // The ballot's order, not the ranking.
        next.sort_by_key(|c| m.candidates.iter().position(|(x, _)| x == c));
        if next.is_empty() {
            notes.push("no candidate left for a further round".into());
        } else {
            notes.push(format!("next round: {}", next.join(", ")));
        }
    } else if left > 0 {
        notes.push(format!(
            "{left} seat{} not filled: no further round",
            if left == 1 { "" } else { "s" }
        ));
    }
    Counted {
        elected,
        next,
        needed: match method.majority {
            Majority::Plurality => 0,
            _ => needed,
        },
        explanation: notes.join("; "),
    }
}

/// The `n` best placed of `rest` (ranked); a tie at the cut is settled by lot, or with a
/// round rule all the tied stand.
fn best(
    method: &Method,
    rest: &[(usize, &str, u64)],
    n: usize,
    notes: &mut Vec<String>,
) -> Vec<String> {
    if rest.len() <= n {
        return rest.iter().map(|r| r.1.to_string()).collect();
    }
    let cut = rest[n - 1].2;
    let mut out: Vec<String> = rest
        .iter()
        .filter(|r| r.2 > cut)
        .map(|r| r.1.to_string())
        .collect();
    let tied: Vec<&str> = rest.iter().filter(|r| r.2 == cut).map(|r| r.1).collect();
    match method.tie {
        ElectionTie::Lot(seed) if out.len() + tied.len() > n => {
            let drawn = draw(seed, &tied, n - out.len());
            notes.push(format!(
                "tie at {cut} for the next round between {}: drawn by lot (seed {seed}): {}",
                tied.join(", "),
                drawn.join(", ")
            ));
            out.extend(drawn);
        }
        _ => out.extend(tied.iter().map(|c| c.to_string())),
    }
    out
}

/// Everyone in `rest` but the last placed. Tied for last: a lot drops one; with a round
/// rule, all the tied are dropped, unless fewer than `left + 1` would remain (then none).
fn drop_last(
    method: &Method,
    rest: &[(usize, &str, u64)],
    left: usize,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let Some(last) = rest.last().map(|r| r.2) else {
        return Vec::new();
    };
    let tied: Vec<&str> = rest.iter().filter(|r| r.2 == last).map(|r| r.1).collect();
    let dropped: Vec<&str> = match method.tie {
        _ if tied.len() == 1 => tied,
        ElectionTie::Lot(seed) => {
            let dropped = draw(seed, &tied, 1);
            notes.push(format!(
                "tie for last at {last} between {}: {} dropped by lot (seed {seed})",
                tied.join(", "),
                dropped.join(", ")
            ));
            return rest
                .iter()
                .map(|r| r.1.to_string())
                .filter(|c| !dropped.contains(c))
                .collect();
        }
        ElectionTie::Round if rest.len() - tied.len() > left => tied,
        ElectionTie::Round => Vec::new(),
    };
    if !dropped.is_empty() {
        notes.push(format!("dropped: {}", dropped.join(", ")));
    }
    rest.iter()
        .map(|r| r.1)
        .filter(|c| !dropped.contains(c))
        .map(str::to_string)
        .collect()
}

/// `n` of `among`, drawn by lot: the order of SHA-256(seed ‖ candidate), so that the draw
/// is fixed by the seed and replays the same.
fn draw(seed: u64, among: &[&str], n: usize) -> Vec<String> {
    let mut keyed: Vec<([u8; 32], &str)> = among
        .iter()
        .map(|c| {
            let mut h = Sha256::new();
            h.update(seed.to_be_bytes());
            h.update(c.as_bytes());
            (h.finalize().into(), *c)
        })
        .collect();
    keyed.sort();
    keyed
        .into_iter()
        .take(n)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The marks of a round from each voter's choice: `blank`, or candidates joined by `+`.
pub fn marks(
    candidates: &[String],
    choices: impl IntoIterator<Item = String>,
    eligible: u64,
    members: u64,
) -> Marks {
    let mut per: BTreeMap<&str, u64> = candidates.iter().map(|c| (c.as_str(), 0)).collect();
    let (mut ballots, mut blank) = (0, 0);
    for choice in choices {
        if choice == BLANK {
            blank += 1;
            continue;
        }
        ballots += 1;
        for c in choice.split('+') {
            if let Some(n) = per.get_mut(c) {
                *n += 1;
            }
        }
    }
    Marks {
        candidates: candidates
            .iter()
            .map(|c| (c.clone(), per.get(c.as_str()).copied().unwrap_or(0)))
            .collect(),
        ballots,
        blank,
        eligible,
        members,
    }
}

/// The choice of a blank ballot.
pub const BLANK: &str = "blank";

#[cfg(test)]
mod tests {
    use super::*;

    fn round(votes: &[(&str, u64)], blank: u64) -> Marks {
        Marks {
            candidates: votes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            ballots: votes.iter().map(|v| v.1).sum(),
            blank,
            eligible: 57,
            members: 57,
        }
    }

    const ABSOLUTE: Method = Method {
        majority: Majority::Absolute,
        base: Base::VotesCast,
        then: Then::TwoBest,
        tie: ElectionTie::Round,
    };

    #[test]
    fn an_absolute_majority_of_the_votes_cast_elects_and_blank_ballots_are_not_votes() {
        // 26 of 50 votes cast: a majority, although not of the 54 ballots returned.
        let c = count_round(
            &ABSOLUTE,
            &round(&[("a", 26), ("b", 14), ("c", 10)], 4),
            1,
            false,
        );
        assert_eq!(c.elected, ["a"]);
        assert_eq!(c.needed, 26);
        assert!(c.next.is_empty());
        assert!(c.explanation.contains("blank 4"), "{}", c.explanation);
        // 25 of 50 is not more than half.
        let c = count_round(
            &ABSOLUTE,
            &round(&[("a", 25), ("b", 15), ("c", 10)], 0),
            1,
            false,
        );
        assert!(c.elected.is_empty());
        assert_eq!(c.next, ["a", "b"], "{}", c.explanation);
    }

    #[test]
    fn a_second_round_is_restricted_to_the_two_best_placed_in_the_ballot_order() {
        let c = count_round(
            &ABSOLUTE,
            &round(&[("c", 12), ("a", 20), ("b", 18)], 0),
            1,
            false,
        );
        assert!(c.elected.is_empty());
        assert_eq!(c.next, ["a", "b"]);
        // The last round elects nobody without the majority: the seat stays empty.
        let c = count_round(&ABSOLUTE, &round(&[("a", 20), ("b", 20)], 10), 1, true);
        assert!(c.elected.is_empty() && c.next.is_empty());
        assert!(
            c.explanation.contains("1 seat not filled"),
            "{}",
            c.explanation
        );
    }

    #[test]
    fn a_tie_for_the_second_place_in_the_next_round_takes_all_the_tied_or_a_lot() {
        let votes = round(&[("a", 20), ("b", 15), ("c", 15), ("d", 3)], 0);
        let c = count_round(&ABSOLUTE, &votes, 1, false);
        assert_eq!(c.next, ["a", "b", "c"]);
        let lot = Method {
            tie: ElectionTie::Lot(7),
            ..ABSOLUTE
        };
        let c = count_round(&lot, &votes, 1, false);
        assert_eq!(c.next.len(), 2);
        assert_eq!(c.next[0], "a");
        assert!(
            c.explanation.contains("drawn by lot (seed 7)"),
            "{}",
            c.explanation
        );
        // The same seed draws the same candidate.
        assert_eq!(count_round(&lot, &votes, 1, false).next, c.next);
    }

    #[test]
    fn a_tie_for_the_seat_goes_to_a_new_round_between_the_tied_or_to_a_lot() {
        let plurality = Method {
            majority: Majority::Plurality,
            ..ABSOLUTE
        };
        let votes = round(&[("a", 20), ("b", 20), ("c", 10)], 0);
        let c = count_round(&plurality, &votes, 1, false);
        assert!(c.elected.is_empty());
        assert_eq!(c.next, ["a", "b"]);
        let c = count_round(
            &Method {
                tie: ElectionTie::Lot(3),
                ..plurality
            },
            &votes,
            1,
            false,
        );
        assert_eq!(c.elected.len(), 1);
        assert!(["a", "b"].contains(&c.elected[0].as_str()));
    }

    #[test]
    fn three_seats_go_to_the_best_placed_with_the_majority_and_the_rest_to_a_restricted_round() {
        // 40 ballots, each marking up to three: a, b reach 21; c and d do not.
        let votes = round(&[("a", 30), ("b", 25), ("c", 18), ("d", 17), ("e", 5)], 0);
        let votes = Marks {
            ballots: 40,
            ..votes
        };
        let c = count_round(&ABSOLUTE, &votes, 3, false);
        assert_eq!(c.elected, ["a", "b"]);
        assert_eq!(c.needed, 21);
        // One seat left: the two best of the rest.
        assert_eq!(c.next, ["c", "d"]);
        // Under plurality the three best are elected at once.
        let plurality = Method {
            majority: Majority::Plurality,
            ..ABSOLUTE
        };
        assert_eq!(
            count_round(&plurality, &votes, 3, false).elected,
            ["a", "b", "c"]
        );
    }

    #[test]
    fn dropping_the_last_placed_and_the_other_bases() {
        let drop = Method {
            then: Then::DropLast,
            ..ABSOLUTE
        };
        let c = count_round(
            &drop,
            &round(&[("a", 20), ("b", 18), ("c", 12), ("d", 4)], 0),
            1,
            false,
        );
        assert_eq!(c.next, ["a", "b", "c"]);
        // Tied for last under a round rule: both dropped while two remain.
        let c = count_round(
            &drop,
            &round(&[("a", 20), ("b", 18), ("c", 4), ("d", 4)], 0),
            1,
            false,
        );
        assert_eq!(c.next, ["a", "b"]);
        // An absolute majority of the 57 members needs 29, whatever was cast.
        let members = Method {
            base: Base::Members,
            ..ABSOLUTE
        };
        let c = count_round(&members, &round(&[("a", 28), ("b", 2)], 0), 1, false);
        assert!(c.elected.is_empty());
        assert_eq!(c.needed, 29);
        let thirds = Method {
            majority: Majority::TwoThirds,
            ..ABSOLUTE
        };
        assert_eq!(thirds.needed(&round(&[("a", 20), ("b", 10)], 0)), 20);
    }

    #[test]
    fn marks_count_each_ballot_once_and_blank_apart() {
        let cands = ["a".to_string(), "b".into(), "c".into()];
        let votes = ["a+b", "blank", "c", "a", "zz"].map(String::from);
        let m = marks(&cands, votes, 5, 6);
        assert_eq!(m.ballots, 4);
        assert_eq!(m.blank, 1);
        assert_eq!(
            m.candidates,
            [("a".into(), 2), ("b".into(), 1), ("c".into(), 1)]
        );
    }

    #[test]
    fn nobody_voting_elects_nobody() {
        let c = count_round(
            &Method {
                majority: Majority::Plurality,
                ..ABSOLUTE
            },
            &round(&[("a", 0), ("b", 0)], 3),
            1,
            true,
        );
        assert!(c.elected.is_empty());
    }
}
