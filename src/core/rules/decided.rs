//! The verdict of a ballot (`tally`, quorum first, then ties, then the pass rule) and
//! whether it is already decided: no remaining or changed vote can change it.

use super::*;

/// `Some(n)` when `pass`'s ballot offers `yes` and `no` and each got the same `n > 0` votes.
pub(super) fn tied_at(pass: &Rule, yes: u64, no: u64) -> Option<u64> {
    let offers = |c: &str| pass.choices.iter().any(|x| x == c);
    (offers("yes") && offers("no") && yes == no && yes > 0).then_some(yes)
}

/// Quorum first (false → NoQuorum), then a tie's verdict, then the pass rule.
pub(super) fn decide(
    quorum: Option<bool>,
    tie: Option<Verdict>,
    pass: impl FnOnce() -> bool,
) -> Verdict {
    match (quorum, tie) {
        (Some(false), _) => Verdict::NoQuorum,
        (_, Some(v)) => v,
        _ if pass() => Verdict::Adopted,
        _ => Verdict::Rejected,
    }
}

/// Quorum first: if `quorum` is Some and false → NoQuorum; then, given a `tie` rule and a tie,
/// the tie rule decides; otherwise pass true → Adopted, else Rejected. An evaluation error
/// counts as the rule being false (and the explanation says so).
pub fn tally(quorum: Option<&Rule>, pass: &Rule, tie: Option<&Tie>, counts: &Counts) -> Tally {
    let holds = |r: &Rule| r.eval(counts).unwrap_or(false);
    let votes = |c: &str| counts.choices.get(c).copied().unwrap_or(0);
    let tied = tie.zip(tied_at(pass, votes("yes"), votes("no")));
    let chair = |m: &String| {
        let v = counts.voters.iter().find(|v| v.member == *m);
        v.and_then(|v| v.choice.as_deref())
    };
    let chair_yes = matches!(tie, Some(Tie::Chair(m)) if chair(m) == Some("yes"));
    let quorum_met = quorum.map(holds);
    let tie_verdict = tied.map(|(tie, _)| tie.verdict(chair_yes));
    let verdict = decide(quorum_met, tie_verdict, || holds(pass));
    let explain = |label, r: &Rule| format!("{label} {}", r.explain(counts));
    let mut parts: Vec<String> = quorum.iter().map(|q| explain("quorum", q)).collect();
    if verdict != Verdict::NoQuorum {
        parts.push(explain("pass", pass));
        if let Some((tie, n)) = tied {
            let how = match tie {
                Tie::Fails => "a tie fails".into(),
                Tie::Chair(m) => match chair(m) {
                    Some(c) => format!("the chair ({m}) voted {c}"),
                    None => format!("the chair ({m}) has not voted"),
                },
                Tie::Lot(seed) if seed % 2 == 1 => format!("by lot, seed {seed} is odd"),
                Tie::Lot(seed) => format!("by lot, seed {seed} is even"),
            };
            parts.push(format!("tie {n}–{n}: {how} → {}", verdict.as_str()));
        }
    }
    let explanation = format!("{} — {}", verdict.as_str(), parts.join("; "));
    let decided_by = match (verdict, tie_verdict) {
        (Verdict::NoQuorum, _) => DecidedBy::Quorum,
        (_, Some(_)) => DecidedBy::Tie,
        _ => DecidedBy::Rule,
    };
    Tally {
        verdict,
        quorum: quorum_met,
        decided_by,
        explanation,
    }
}

/// Where a term's value comes from in one of `decided`'s final states.
#[derive(Clone, Copy)]
pub(super) enum Src {
    Tally(usize), // votes for `names[i]`
    Cast,
    Fixed(u128),
    Sum(usize), // a per-member term
}

/// Whether the verdict can no longer change: `tally` gives the same verdict for every final
/// state still reachable — voters may change their votes but not withdraw them, non-voters may
/// vote or not. Over counts alone this enumerates final tallies (`cast` never decreases), the
/// chair of a [`Tie::Chair`] followed individually. When a rule reads per-member data
/// (`weight`, `count(…, group:)`) it enumerates every voter's final choice instead, which needs
/// `counts.voters` to agree with the counts (else false), as does a chair among the voters.
/// Enumerates at most 2,000,000 final states; beyond that returns false.
pub fn decided(quorum: Option<&Rule>, pass: &Rule, tie: Option<&Tie>, counts: &Counts) -> bool {
    let rules: Vec<&Rule> = quorum.into_iter().chain([pass]).collect();
    let mut names: Vec<&str> = counts.choices.keys().map(String::as_str).collect();
    for c in rules.iter().flat_map(|r| &r.choices) {
        if !names.contains(&c.as_str()) {
            names.push(c);
        }
    }
    let slot = |c: &str| names.iter().position(|n| *n == c).unwrap_or(usize::MAX);
    let mut sums: Vec<&Term> = Vec::new(); // the per-member terms, each summed once
    for t in rules.iter().flat_map(|r| &r.terms) {
        if t.per_member() && !sums.contains(&t) {
            sums.push(t);
        }
    }
    let src = |t: &Term| match t {
        Term::Choice(c) => Src::Tally(slot(c)),
        Term::Builtin("cast") => Src::Cast,
        Term::Builtin("present") if counts.present.is_none() => Src::Cast,
        Term::Builtin(_) => Src::Fixed(t.value(counts)),
        _ => Src::Sum(sums.iter().position(|s| *s == t).unwrap_or(usize::MAX)),
    };
    let srcs: Vec<Vec<Src>> = rules
        .iter()
        .map(|r| r.terms.iter().map(src).collect())
        .collect();
    let (yes, no) = (slot("yes"), slot("no"));
    let chair = match tie {
        Some(Tie::Chair(m)) if tied_at(pass, 1, 1).is_some() => {
            counts.voters.iter().position(|v| v.member == *m)
        }
        _ => None,
    };
    if (chair.is_some() || !sums.is_empty()) && !counts.voters_agree() {
        return false;
    }
    let mut envs: Vec<Env> = rules.iter().map(|r| r.env(counts)).collect();
    let mut first = None;
    // Whether a final state (votes per name, per-member sums) gives the verdict seen first
    // for each possibility in `chair_yes` (whether the chair's final vote is yes).
    let mut same = |tally: &[u64], sums: &[u128], chair_yes: &[bool]| {
        let cast = tally.iter().fold(0u64, |a, &x| a.saturating_add(x));
        let get = |j: usize| tally.get(j).copied().unwrap_or(0);
        for (env, srcs) in envs.iter_mut().zip(&srcs) {
            for (v, s) in env.vals.iter_mut().zip(srcs) {
                *v = match *s {
                    Src::Tally(j) => get(j).into(),
                    Src::Cast => cast.into(),
                    Src::Fixed(x) => x,
                    Src::Sum(j) => sums.get(j).copied().unwrap_or(0),
                };
            }
        }
        let Some((penv, qenv)) = envs.split_last() else {
            return false;
        };
        let met = quorum
            .zip(qenv.first())
            .map(|(q, e)| truth(&q.root, e).unwrap_or(false));
        let tied = tie.filter(|_| tied_at(pass, get(yes), get(no)).is_some());
        let holds = || truth(&pass.root, penv).unwrap_or(false);
        chair_yes.iter().all(|&chair_yes| {
            let v = decide(met, tied.map(|t| t.verdict(chair_yes)), holds);
            *first.get_or_insert(v) == v
        })
    };
    if !sums.is_empty() {
        return walk_members(counts, &names, &sums, &mut |tally, sums, choice| {
            let chair_yes = chair.and_then(|i| choice.get(i)).is_some_and(|&o| o == yes);
            same(tally, sums, &[chair_yes])
        });
    }
    let (lo, hi) = (counts.cast(), counts.cast().max(counts.eligible));
    if count_states(names.len(), lo, hi).is_none_or(|n| n > MAX_STATES) {
        return false;
    }
    // In a tie (some yes, some no), a chair among the voters can always end on other than yes:
    // on no if they have voted or the others leave room (`sum > lo`), else on none (then
    // `sum == lo < eligible`); and on yes under that same condition. Others never vote yes.
    let voted = chair
        .and_then(|i| counts.voters.get(i))
        .map(|v| v.choice.is_some());
    let mut visit = |tally: &[u64], sum| match voted.is_some_and(|v| v || sum > lo) {
        true => same(tally, &[], &[true, false]),
        false => same(tally, &[], &[false]),
    };
    walk(&mut vec![0; names.len()], 0, 0, (lo, hi), &mut visit)
}

pub(super) type Visit<'a> = &'a mut dyn FnMut(&[u64], u64) -> bool;

/// Visits every vector of non-negative counts (filling `v[i..]`) whose sum lies in `lo..=hi`,
/// calling `f(v, sum)`; stops and returns false as soon as `f` does.
pub(super) fn walk(v: &mut [u64], i: usize, sum: u64, (lo, hi): (u64, u64), f: Visit) -> bool {
    let Some(last) = v.len().checked_sub(1) else {
        return f(v, sum);
    };
    let from = if i == last { lo.saturating_sub(sum) } else { 0 };
    (from..=hi - sum).all(|x| {
        v[i] = x;
        if i == last {
            f(v, sum + x)
        } else {
            walk(v, i + 1, sum + x, (lo, hi), f)
        }
    })
}

pub(super) type VisitMembers<'a> = &'a mut dyn FnMut(&[u64], &[u128], &[usize]) -> bool;

/// Visits every combination of final choices of `counts.voters` — choice `o` is `names[o]`, or
/// no vote when `o == names.len()`, which only those who have not voted may keep — calling
/// `f(votes per name, sum per term, choice per voter)`. Stops and returns false as soon as `f`
/// does, or at once when there are more than `MAX_STATES` combinations.
pub(super) fn walk_members(
    counts: &Counts,
    names: &[&str],
    terms: &[&Term],
    f: VisitMembers,
) -> bool {
    let (voters, k) = (&counts.voters, names.len());
    let options: Vec<usize> = voters
        .iter()
        .map(|v| k + usize::from(v.choice.is_none()))
        .collect();
    let states = options
        .iter()
        .try_fold(1u128, |a, &n| a.checked_mul(n as u128));
    if states.is_none_or(|n| n == 0 || n > MAX_STATES) {
        return false;
    }
    let (mut tally, mut sums) = (vec![0u64; k], vec![0u128; terms.len()]);
    // Adds (or takes away) voter i's choice o. Wrapping sums are exact, as they never overflow.
    let put = |(tally, sums): (&mut [u64], &mut [u128]), i: usize, o: usize, add: bool| {
        if let Some(n) = tally.get_mut(o) {
            *n = if add {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            };
        }
        let (Some(v), choice) = (voters.get(i), names.get(o).copied()) else {
            return;
        };
        for (s, t) in sums.iter_mut().zip(terms) {
            let x = t.share(v, choice);
            *s = if add {
                s.wrapping_add(x)
            } else {
                s.wrapping_sub(x)
            };
        }
    };
    let mut choice = vec![0; voters.len()];
    for i in 0..voters.len() {
        put((&mut tally, &mut sums), i, 0, true);
    }
    let free: Vec<usize> = (0..voters.len()).filter(|&i| options[i] > 1).collect();
    loop {
        if !f(&tally, &sums, &choice) {
            return false;
        }
        // Odometer: advance the first voter not on their last choice, resetting those before.
        let Some(&i) = free.iter().find(|&&i| choice[i] + 1 < options[i]) else {
            return true;
        };
        for &j in free.iter().take_while(|&&j| j != i).chain([&i]) {
            put((&mut tally, &mut sums), j, choice[j], false);
            choice[j] = if j == i { choice[j] + 1 } else { 0 };
            put((&mut tally, &mut sums), j, choice[j], true);
        }
    }
}

/// Number of vectors of `k` non-negative counts with sum in `lo..=hi` (None on overflow):
/// C(hi + k, k) - C(lo - 1 + k, k).
pub(super) fn count_states(k: usize, lo: u64, hi: u64) -> Option<u128> {
    let k = k as u128;
    let binom = |n: u128| (0..k).try_fold(1u128, |a, i| a.checked_mul(n - i).map(|x| x / (i + 1)));
    let upto = |sum: u64| binom(u128::from(sum) + k); // vectors with a sum of at most `sum`
    let fewer = if lo == 0 { 0 } else { upto(lo - 1)? };
    upto(hi)?.checked_sub(fewer)
}
