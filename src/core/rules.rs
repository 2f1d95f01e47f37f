//! Ballot quorum and pass rules: a small, pure expression language over vote counts.
//!
//! A rule is a preset name (see [`PRESETS`]) or an expression such as
//! `yes >= 2/3 * (yes + no)` or `yes > 50% * eligible and no == 0`.
//!
//! - Numbers are exact rationals (`Ratio<i128>`, checked arithmetic): `19`, `2/3`, `0.5`,
//!   `65%`, `12.5%`. Overflow and division by zero are [`EvalError`]s, never panics.
//! - Precedence, lowest first: `or`, `and`, `not`, comparisons `== != < <= > >=`
//!   (non-associative), `+ -`, `* /`, unary `-`, atoms (number, variable, call, `( … )`).
//! - Variables: the ballot's choices (votes for each), `cast` (ballots returned), `present`
//!   (the same number: an email ballot records a member's presence by the returned ballot
//!   itself), `eligible` (entitled to vote when the ballot opened) and `members` (all members,
//!   suspended ones too).
//! - Calls over the electorate's roster ([`Counts::voters`]): `weight(ATTR)` sums the attribute
//!   ATTR (e.g. `population`; 0 where a member lacks it) over the electorate and
//!   `weight(ATTR, CHOICE)` over those who voted CHOICE; `count(group: GROUP)` is the number of
//!   voters in GROUP and `count(CHOICE, group: GROUP)` those of them who voted CHOICE.
//! - Names are checked at parse time against a [`Vocabulary`] (the ballot's choices and, when
//!   known, the roster's attributes and groups), and so are types: a rule must be a condition,
//!   arithmetic needs numbers.
//!
//! The UN Security Council on a substantive question, for example:
//! `yes >= 9 and count(no, group: permanent) == 0`.
//!
//! No I/O, no clock, no floats.

use num_rational::Ratio;
use num_traits::{CheckedAdd, CheckedDiv, CheckedMul, CheckedSub, Zero};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

type R = Ratio<i128>;

/// One position in the rule source: 0-based char offset from the start of the rule string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub offset: usize,
    pub message: String,
}

/// A failure while evaluating a rule (arithmetic overflow, division by zero).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// Presets: (name, expression, one-line meaning). The pass presets assume choices `yes`/`no`,
/// except `consensus` and `silence`, which need only `no`; a preset that mentions a choice the
/// ballot lacks does not parse.
#[rustfmt::skip]
pub const PRESETS: &[(&str, &str, &str)] = &[
    ("simple_majority", "yes > no", "more yes than no votes"),
    ("absolute_majority", "yes > 1/2 * eligible", "yes from more than half of the eligible members"),
    ("two_thirds_present_and_voting", "yes >= 2/3 * (yes + no)", "yes from at least two thirds of those voting yes or no"),
    ("three_fifths", "yes >= 3/5 * (yes + no)", "yes from at least three fifths of those voting yes or no"),
    ("unanimity", "yes == eligible", "every eligible member votes yes"),
    ("unanimity_abstention_allowed", "no == 0 and yes >= 1", "nobody votes no and somebody votes yes; abstentions do not block"),
    ("consensus", "no == 0", "nobody votes no"),
    ("silence", "no == 0", "adopted unless an objection (a `no`) arrives before the deadline; the ballot needs only the choice `no`"),
    ("qualified_majority_eu",
     "yes >= 55% * eligible and (weight(population, yes) >= 65% * weight(population) or eligible - yes < 4)",
     "yes from 55% of the members comprising 65% of the population; a blocking minority needs at least four members"),
    ("majority_of_members", "cast > 1/2 * eligible", "quorum: more than half of the eligible members vote"),
    ("two_thirds_of_members", "cast >= 2/3 * eligible", "quorum: at least two thirds of the eligible members vote"),
];

/// Built-in variables. A ballot choice may not be called like one of the first three;
/// `present` came later, and as "voting present" is a real choice, that clash is reported only
/// where a rule uses the name.
const BUILTINS: [&str; 4] = ["cast", "eligible", "members", "present"];
/// The functions, with their usage.
const FUNCTIONS: [(&str, &str); 2] = [
    ("weight", "`weight(ATTR)` or `weight(ATTR, CHOICE)`"),
    (
        "count",
        "`count(group: GROUP)` or `count(CHOICE, group: GROUP)`",
    ),
];
/// Bounds that keep parsing and the recursive evaluator far from the stack limit.
const MAX_TOKENS: usize = 512;
const MAX_NESTING: usize = 32;
/// `decided` enumerates at most this many final states.
const MAX_STATES: u128 = 2_000_000;

/// The counts a rule is evaluated over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every choice of the ballot, 0 when no votes.
    pub choices: BTreeMap<String, u64>,
    pub eligible: u64,
    pub members: u64,
    /// One entry per member of the electorate (eligible members), in roster order; may be
    /// empty when a caller only has counts (then weight()/count(..., group:) evaluate over nothing).
    pub voters: Vec<VoterInfo>,
}

/// One member of the electorate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoterInfo {
    pub member: String,
    /// None = has not voted.
    pub choice: Option<String>,
    /// e.g. population
    pub attributes: BTreeMap<String, u64>,
    /// e.g. ["permanent"]
    pub groups: Vec<String>,
}

impl Counts {
    /// Builds counts from the electorate: `choices` gets every ballot choice (0 when unused) and
    /// each vote (a vote for a choice not on the ballot is counted under its own name);
    /// `eligible` is the number of voters.
    pub fn from_voters(choices: &[String], voters: Vec<VoterInfo>, members: u64) -> Counts {
        let choices = choice_counts(choices, &voters);
        let eligible = u64::try_from(voters.len()).unwrap_or(u64::MAX);
        Counts {
            choices,
            eligible,
            members,
            voters,
        }
    }

    /// Votes returned: the sum over all choices (saturating).
    pub fn cast(&self) -> u64 {
        self.choices.values().fold(0, |a, &v| a.saturating_add(v))
    }

    /// Whether `voters` account for exactly these counts: one per eligible member, same votes.
    fn voters_agree(&self) -> bool {
        u64::try_from(self.voters.len()) == Ok(self.eligible)
            && choice_counts(self.choices.keys(), &self.voters) == self.choices
    }
}

fn choice_counts<'a>(
    choices: impl IntoIterator<Item = &'a String>,
    voters: &[VoterInfo],
) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = choices.into_iter().map(|c| (c.clone(), 0)).collect();
    for c in voters.iter().filter_map(|v| v.choice.as_ref()) {
        let n = out.entry(c.clone()).or_default();
        *n = n.saturating_add(1);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Adopted,
    Rejected,
    NoQuorum,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Adopted, Verdict::Rejected, Verdict::NoQuorum];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Adopted => "adopted",
            Verdict::Rejected => "rejected",
            Verdict::NoQuorum => "no_quorum",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What settles a tie: `yes == no`, at least one vote each, on a ballot offering both, quorum
/// met. Given a tie rule, a tie is settled by it whatever the pass rule says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tie {
    /// A tie is rejected.
    Fails,
    /// The chair (a member id) decides by their own vote: `yes` adopts; any other vote, or none,
    /// rejects (a chair not among [`Counts::voters`] has no vote).
    Chair(String),
    /// Drawn by lot from a seed fixed beforehand: adopted iff the seed is odd.
    Lot(u64),
}

impl Tie {
    fn verdict(&self, chair_yes: bool) -> Verdict {
        match self {
            Tie::Chair(_) if chair_yes => Verdict::Adopted,
            Tie::Lot(seed) if seed % 2 == 1 => Verdict::Adopted,
            _ => Verdict::Rejected,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub verdict: Verdict,
    /// Whether the quorum rule holds; None when there is no quorum rule.
    pub quorum: Option<bool>,
    pub explanation: String,
}

/// The names a rule may use.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vocabulary<'a> {
    pub choices: &'a [String],
    /// Attribute names the roster has; None = do not check.
    pub attributes: Option<&'a BTreeSet<String>>,
    /// Group names the roster has; None = do not check.
    pub groups: Option<&'a BTreeSet<String>>,
}

impl<'a> Vocabulary<'a> {
    /// The ballot's choices only; attribute and group names go unchecked.
    pub fn new(choices: &'a [String]) -> Self {
        Vocabulary {
            choices,
            ..Vocabulary::default()
        }
    }
}

/// A value a rule reads; `Kind::Var` holds its index in `Rule::terms`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Choice(String),
    Builtin(&'static str),
    Weight(String, Option<String>), // attribute, choice
    Count(String, Option<String>),  // group, choice
}

impl Term {
    fn per_member(&self) -> bool {
        matches!(self, Term::Weight(..) | Term::Count(..))
    }

    fn value(&self, c: &Counts) -> u128 {
        match self {
            Term::Choice(x) => c.choices.get(x).copied().unwrap_or(0).into(),
            Term::Builtin("eligible") => c.eligible.into(),
            Term::Builtin("members") => c.members.into(),
            Term::Builtin(_) => c.cast().into(), // cast, present
            _ => c.voters.iter().fold(0, |a, v| {
                a.saturating_add(self.share(v, v.choice.as_deref()))
            }),
        }
    }

    /// What voter `v` adds to a per-member term when their vote is `choice`. (A sum of these
    /// over a `Vec` stays below 2^125, so it never overflows a `u128`.)
    fn share(&self, v: &VoterInfo, choice: Option<&str>) -> u128 {
        let chose = |want: &Option<String>| want.as_deref().is_none_or(|w| choice == Some(w));
        match self {
            Term::Weight(a, want) if chose(want) => {
                v.attributes.get(a).copied().unwrap_or(0).into()
            }
            Term::Count(g, want) if chose(want) && v.groups.contains(g) => 1,
            _ => 0,
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Term::Choice(c) => f.write_str(c),
            Term::Builtin(b) => f.write_str(b),
            Term::Weight(a, None) => write!(f, "weight({a})"),
            Term::Weight(a, Some(c)) => write!(f, "weight({a}, {c})"),
            Term::Count(g, None) => write!(f, "count(group: {g})"),
            Term::Count(g, Some(c)) => write!(f, "count({c}, group: {g})"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Num(R, String), // value, and the literal as written
    Var(usize),     // index into the rule's terms
    Neg(Box<Node>),
    Not(Box<Node>),
    Bin(&'static str, Box<Node>, Box<Node>), // or and == != < <= > >= + - * /
}

/// `start`: first char of the node (its `(` if parenthesised); `at`: its operator or token.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: Kind,
    start: usize,
    at: usize,
}

/// A parsed, type-checked rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    source: String,
    expression: String,
    choices: Vec<String>,
    terms: Vec<Term>,
    root: Node,
}

impl Rule {
    /// Parses `source` either as a preset name or as an expression over `vocabulary`.
    pub fn parse(source: &str, vocabulary: &Vocabulary) -> Result<Rule, RuleError> {
        let choices = vocabulary.choices;
        if let Some(c) = choices.iter().find(|c| BUILTINS[..3].contains(&c.as_str())) {
            return Err(clash(0, c));
        }
        let name = source.trim();
        let (expression, (root, terms)) = match PRESETS.iter().find(|p| p.0 == name) {
            Some(&(_, expr, _)) => {
                let at = source.chars().take_while(|c| c.is_whitespace()).count();
                let msg = |e| format!("preset `{name}` means `{expr}`, which does not fit: {e}");
                let parsed = parse_expr(expr, vocabulary, false).map_err(|e| err(at, msg(e)))?;
                (expr, parsed)
            }
            None => (name, parse_expr(source, vocabulary, true)?),
        };
        let (source, expression) = (source.to_string(), expression.to_string());
        let choices = choices.to_vec();
        Ok(Rule {
            source,
            expression,
            choices,
            terms,
            root,
        })
    }

    /// The text as written (preset name or expression).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The expression the rule stands for (the preset's expansion, or the source).
    pub fn expression(&self) -> String {
        self.expression.clone()
    }

    pub fn eval(&self, counts: &Counts) -> Result<bool, EvalError> {
        truth(&self.root, &self.env(counts))
    }

    /// One line: the rule, the numbers substituted, the values compared, and the result, e.g.
    /// `yes >= 2/3 * (yes + no): 30 >= 2/3 * (30 + 10) → 30 >= 26 2/3 → true`.
    pub fn explain(&self, counts: &Counts) -> String {
        let (body, result) = explain_node(&self.root, &self.env(counts));
        match is_cmp(&self.root) {
            true => format!("{}: {body}", self.expression),
            false => format!("{}: {body} → {}", self.expression, show(&result)),
        }
    }

    fn env(&self, counts: &Counts) -> Env<'_> {
        let vals = self.terms.iter().map(|t| t.value(counts)).collect();
        let terms = &self.terms;
        Env { terms, vals }
    }
}

/// `Some(n)` when `pass`'s ballot offers `yes` and `no` and each got the same `n > 0` votes.
fn tied_at(pass: &Rule, yes: u64, no: u64) -> Option<u64> {
    let offers = |c: &str| pass.choices.iter().any(|x| x == c);
    (offers("yes") && offers("no") && yes == no && yes > 0).then_some(yes)
}

/// Quorum first (false → NoQuorum), then a tie's verdict, then the pass rule.
fn decide(quorum: Option<bool>, tie: Option<Verdict>, pass: impl FnOnce() -> bool) -> Verdict {
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
    Tally {
        verdict,
        quorum: quorum_met,
        explanation,
    }
}

/// Where a term's value comes from in one of `decided`'s final states.
#[derive(Clone, Copy)]
enum Src {
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
        Term::Builtin("cast" | "present") => Src::Cast,
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

type Visit<'a> = &'a mut dyn FnMut(&[u64], u64) -> bool;

/// Visits every vector of non-negative counts (filling `v[i..]`) whose sum lies in `lo..=hi`,
/// calling `f(v, sum)`; stops and returns false as soon as `f` does.
fn walk(v: &mut [u64], i: usize, sum: u64, (lo, hi): (u64, u64), f: Visit) -> bool {
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

type VisitMembers<'a> = &'a mut dyn FnMut(&[u64], &[u128], &[usize]) -> bool;

/// Visits every combination of final choices of `counts.voters` — choice `o` is `names[o]`, or
/// no vote when `o == names.len()`, which only those who have not voted may keep — calling
/// `f(votes per name, sum per term, choice per voter)`. Stops and returns false as soon as `f`
/// does, or at once when there are more than `MAX_STATES` combinations.
fn walk_members(counts: &Counts, names: &[&str], terms: &[&Term], f: VisitMembers) -> bool {
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
fn count_states(k: usize, lo: u64, hi: u64) -> Option<u128> {
    let k = k as u128;
    let binom = |n: u128| (0..k).try_fold(1u128, |a, i| a.checked_mul(n - i).map(|x| x / (i + 1)));
    let upto = |sum: u64| binom(u128::from(sum) + k); // vectors with a sum of at most `sum`
    let fewer = if lo == 0 { 0 } else { upto(lo - 1)? };
    upto(hi)?.checked_sub(fewer)
}

fn err(offset: usize, message: impl Into<String>) -> RuleError {
    let message = message.into();
    RuleError { offset, message }
}

fn clash(offset: usize, c: &str) -> RuleError {
    let msg = format!("choice `{c}` clashes with the built-in `{c}`");
    err(offset, msg)
}

fn node(kind: Kind, start: usize, at: usize) -> Node {
    Node { kind, start, at }
}

// ---------------------------------------------------------------- lexing and parsing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(R, String),
    Ident(String),
    Op(&'static str), // and or not == != < <= > >= + - * /
    Sym(char),        // ( ) , :
    End,
}

const OPS: [&str; 13] = [
    "and", "or", "not", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/",
];

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, RuleError> {
    let cs: Vec<char> = src.chars().collect();
    let is = |i: usize, p: fn(char) -> bool| cs.get(i).is_some_and(|&c| p(c));
    let (mut out, mut i) = (Vec::new(), 0);
    while let Some(&c) = cs.get(i) {
        let at = i;
        let tok = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_digit() {
            let mut scale = 0; // decimal places, +2 for a percentage
            while is(i, |c| c.is_ascii_digit()) {
                i += 1;
            }
            if is(i, |c| c == '.') {
                i += 1;
                while is(i, |c| c.is_ascii_digit()) {
                    (i, scale) = (i + 1, scale + 1);
                }
                if scale == 0 {
                    return Err(err(i - 1, "a decimal point must be followed by digits"));
                }
            }
            if is(i, |c| c == '%') {
                (i, scale) = (i + 1, scale + 2);
            }
            let text: String = cs[at..i].iter().collect();
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            match (digits.parse::<i128>(), 10i128.checked_pow(scale)) {
                (Ok(n), Some(d)) => Tok::Num(R::new(n, d), text),
                _ => {
                    let msg = format!("number `{text}` is too large or too precise");
                    return Err(err(at, msg));
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' {
            while is(i, |c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                i += 1;
            }
            while is(i - 1, |c| c == '-') {
                i -= 1; // an identifier never ends in `-`
            }
            let word: String = cs[at..i].iter().collect();
            match OPS[..3].iter().find(|k| **k == word) {
                Some(keyword) => Tok::Op(keyword),
                None => Tok::Ident(word),
            }
        } else {
            let rest: String = cs[i..cs.len().min(i + 2)].iter().collect();
            let hints = [
                ('=', "`==`"),
                ('!', "`!=` or `not`"),
                ('&', "`and`"),
                ('|', "`or`"),
            ];
            if let Some(op) = OPS[3..].iter().find(|o| rest.starts_with(**o)) {
                i += op.len();
                Tok::Op(op)
            } else if let Some((_, hint)) = hints.iter().find(|h| h.0 == c) {
                return Err(err(at, format!("unexpected `{c}`; use {hint}")));
            } else if "(),:".contains(c) {
                i += 1;
                Tok::Sym(c)
            } else {
                return Err(err(at, format!("unexpected character `{c}`")));
            }
        };
        if out.len() >= MAX_TOKENS {
            let msg = format!("rule is too long (over {MAX_TOKENS} tokens)");
            return Err(err(at, msg));
        }
        out.push((tok, at));
    }
    out.push((Tok::End, cs.len()));
    Ok(out)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(_, s) | Tok::Ident(s) => format!("`{s}`"),
        Tok::Op(s) => format!("`{s}`"),
        Tok::Sym(c) => format!("`{c}`"),
        Tok::End => "the end of the rule".into(),
    }
}

/// Binding strength: 1 `or`, 2 `and`, 3 `not`, 4 comparisons, 5 `+ -`, 6 `* /`, 7 unary `-`.
fn prec(op: &str) -> u8 {
    match op {
        "or" => 1,
        "and" => 2,
        "not" => 3,
        "+" | "-" => 5,
        "*" | "/" => 6,
        _ => 4,
    }
}

fn is_cmp(n: &Node) -> bool {
    matches!(n.kind, Kind::Bin(op, ..) if prec(op) == 4)
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    vocab: Vocabulary<'a>,
    terms: Vec<Term>,
    suggest_presets: bool,
    depth: usize,
}

/// One argument of a call: its label (`group` in `group: permanent`), its value, and the
/// offsets of its start and of its value.
type Arg = (Option<String>, String, usize, usize);

fn parse_expr(
    src: &str,
    vocab: &Vocabulary,
    presets_hint: bool,
) -> Result<(Node, Vec<Term>), RuleError> {
    let toks = lex(src)?;
    let suggest_presets = presets_hint && toks.len() == 2; // a single word
    let (pos, depth, vocab, terms) = (0, 0, *vocab, Vec::new());
    let mut p = Parser {
        toks,
        pos,
        vocab,
        terms,
        suggest_presets,
        depth,
    };
    if p.peek().0 == Tok::End {
        return Err(err(0, "empty rule"));
    }
    let root = p.level(1)?;
    match p.peek() {
        (Tok::End, _) => {}
        (Tok::Sym(')'), at) => return Err(err(*at, "unmatched `)`")),
        (t, at) => {
            let t = describe(t);
            let msg = format!("unexpected {t}; expected `and`, `or` or the end");
            return Err(err(*at, msg));
        }
    }
    if !check(&root, &p.terms)? {
        let src = render(&root, &|v| term_name(&p.terms, v), 0);
        let msg = format!("a rule must be a condition such as `yes > no`, but `{src}` is a number");
        return Err(err(root.start, msg));
    }
    Ok((root, p.terms))
}

impl Parser<'_> {
    fn peek(&self) -> &(Tok, usize) {
        &self.toks[self.pos] // `pos` never passes the final `End`
    }

    fn bump(&mut self) -> (Tok, usize) {
        let t = self.toks[self.pos].clone();
        self.pos = (self.pos + 1).min(self.toks.len() - 1);
        t
    }

    fn op_at(&self, level: u8) -> Option<&'static str> {
        match self.peek().0 {
            Tok::Op(op) if prec(op) == level => Some(op),
            _ => None,
        }
    }

    fn nested(&mut self, level: u8, at: usize) -> Result<Node, RuleError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            let msg = format!("rule is nested too deeply (over {MAX_NESTING})");
            return Err(err(at, msg));
        }
        let node = self.level(level);
        self.depth -= 1;
        node
    }

    /// Parses an expression whose operators bind at least as tightly as `level` (see `prec`).
    fn level(&mut self, level: u8) -> Result<Node, RuleError> {
        match (level, self.peek().clone()) {
            (3, (Tok::Op("not"), at)) | (7, (Tok::Op("-"), at)) => {
                self.bump();
                let x = Box::new(self.nested(level, at)?);
                let kind = if level == 3 {
                    Kind::Not(x)
                } else {
                    Kind::Neg(x)
                };
                Ok(node(kind, at, at))
            }
            (3, _) => self.level(4),
            (7, _) => self.atom(),
            _ => {
                let mut lhs = self.level(level + 1)?;
                while let Some(op) = self.op_at(level) {
                    let at = self.bump().1;
                    let rhs = Box::new(self.level(level + 1)?);
                    let start = lhs.start;
                    lhs = node(Kind::Bin(op, Box::new(lhs), rhs), start, at);
                    if level == 4 && self.op_at(4).is_some() {
                        let msg = "comparisons cannot be chained; combine them with `and`";
                        return Err(err(self.peek().1, msg));
                    }
                }
                Ok(lhs)
            }
        }
    }

    fn atom(&mut self) -> Result<Node, RuleError> {
        match self.bump() {
            (Tok::Num(r, text), at) => Ok(node(Kind::Num(r, text), at, at)),
            (Tok::Ident(w), at) => {
                let function = FUNCTIONS.iter().any(|f| f.0 == w) || !self.is_var(&w);
                let term = match self.peek().0 == Tok::Sym('(') && function {
                    true => self.call(&w, at)?,
                    false => self.resolve(&w, at)?,
                };
                let i = self.terms.iter().position(|t| *t == term);
                let i = i.unwrap_or(self.terms.len());
                if i == self.terms.len() {
                    self.terms.push(term);
                }
                Ok(node(Kind::Var(i), at, at))
            }
            (Tok::Sym('('), open) => {
                let mut inner = self.nested(1, open)?;
                inner.start = open;
                match self.bump() {
                    (Tok::Sym(')'), _) => Ok(inner),
                    (Tok::End, _) => Err(err(open, "unclosed `(`")),
                    (t, at) => {
                        let t = describe(&t);
                        let msg = format!("expected `)` for the `(` at {open}, found {t}");
                        Err(err(at, msg))
                    }
                }
            }
            (t, at) => {
                let msg = format!("expected a number, a name or `(`, found {}", describe(&t));
                Err(err(at, msg))
            }
        }
    }

    fn is_var(&self, w: &str) -> bool {
        BUILTINS.contains(&w) || self.vocab.choices.iter().any(|c| c == w)
    }

    fn resolve(&self, w: &str, at: usize) -> Result<Term, RuleError> {
        let is_choice = self.vocab.choices.iter().any(|c| c == w);
        match BUILTINS.iter().find(|b| **b == w) {
            Some(_) if is_choice => return Err(clash(at, w)), // only `present` gets here
            Some(b) => return Ok(Term::Builtin(b)),
            None if is_choice => return Ok(Term::Choice(w.into())),
            None => {}
        }
        let known: Vec<&str> = self
            .vocab
            .choices
            .iter()
            .map(String::as_str)
            .chain(BUILTINS)
            .collect();
        let presets = PRESETS.iter().map(|p| p.0).filter(|_| self.suggest_presets);
        let hint = match closest(w, known.iter().copied().chain(presets)) {
            Some(c) => format!("did you mean `{c}`?"),
            _ if w.contains('-') => "to subtract, put spaces around `-`".into(),
            _ => match FUNCTIONS.iter().find(|f| f.0 == w) {
                Some((_, usage)) => format!("`{w}` is a function: use {usage}"),
                None => format!("known names: {}", known.join(", ")),
            },
        };
        Err(err(at, format!("unknown name `{w}`; {hint}")))
    }

    fn name(&mut self) -> Result<(String, usize), RuleError> {
        match self.bump() {
            (Tok::Ident(w), at) => Ok((w, at)),
            (t, at) => Err(err(at, format!("expected a name, found {}", describe(&t)))),
        }
    }

    /// Parses the call `f( … )` (`f` at `at`, `(` next) into a per-member term.
    fn call(&mut self, f: &str, at: usize) -> Result<Term, RuleError> {
        let Some(&(_, usage)) = FUNCTIONS.iter().find(|u| u.0 == f) else {
            let hint = match closest(f, FUNCTIONS.map(|u| u.0)) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "the functions are `weight` and `count`".into(),
            };
            return Err(err(at, format!("unknown function `{f}`; {hint}")));
        };
        let open = self.bump().1;
        let mut args: Vec<Arg> = Vec::new();
        let mut more = self.peek().0 != Tok::Sym(')');
        while more {
            let (w, at) = self.name()?;
            let arg = match self.peek().0 == Tok::Sym(':') {
                true => {
                    self.bump();
                    let (v, value_at) = self.name()?;
                    (Some(w), v, at, value_at)
                }
                false => (None, w, at, at),
            };
            args.push(arg);
            more = self.peek().0 == Tok::Sym(',');
            if more {
                self.bump();
            }
        }
        let close = match self.bump() {
            (Tok::Sym(')'), close) => close,
            (Tok::End, _) => return Err(err(open, "unclosed `(`")),
            (t, at) => {
                let msg = format!("expected `,` or `)`, found {}", describe(&t));
                return Err(err(at, msg));
            }
        };
        let labels: Vec<Option<&str>> = args.iter().map(|a| a.0.as_deref()).collect();
        let (main, choice) = match (f, &labels[..], &args[..]) {
            ("weight", [None], [a]) | ("count", [Some("group")], [a]) => (a, None),
            ("weight", [None, None], [a, c]) | ("count", [None, Some("group")], [c, a]) => {
                (a, Some(c))
            }
            _ => {
                let shapes: [&[Option<&str>]; 2] = match f {
                    "weight" => [&[None], &[None, None]],
                    _ => [&[Some("group")], &[None, Some("group")]],
                };
                let fits = |(i, l)| shapes.iter().any(|s| s.get(i) == Some(l));
                let bad = labels.iter().enumerate().position(|p| !fits(p));
                let problem = match bad.and_then(|i| Some((i, args.get(i)?))) {
                    None => format!("`{f}` is missing arguments"),
                    Some((2.., _)) => format!("too many arguments to `{f}`"),
                    Some((_, (Some(l), ..))) => format!("`{f}` has no argument `{l}:`"),
                    Some((_, (None, v, ..))) => format!("expected `group: …`, found `{v}`"),
                };
                let at = bad.and_then(|i| args.get(i)).map_or(close, |a| a.2);
                return Err(err(at, format!("{problem}; use {usage}")));
            }
        };
        let vocab = self.vocab;
        if let Some((_, c, _, at)) = choice {
            let choices = vocab.choices.iter().map(String::as_str).collect();
            known(c, *at, Some(choices), "the ballot has no choice")?;
        }
        let (kind, roster) = match f {
            "weight" => ("attribute", vocab.attributes),
            _ => ("group", vocab.groups),
        };
        let roster = roster.map(|r| r.iter().map(String::as_str).collect());
        known(
            &main.1,
            main.3,
            roster,
            &format!("the roster has no {kind}"),
        )?;
        let (main, choice) = (main.1.clone(), choice.map(|c| c.1.clone()));
        Ok(match f {
            "weight" => Term::Weight(main, choice),
            _ => Term::Count(main, choice),
        })
    }
}

/// The candidate closest to `w`, if within two edits.
fn closest<'c>(w: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance(w, c), c))
        .min_by_key(|p| p.0);
    best.filter(|p| p.0 <= 2).map(|p| p.1)
}

/// Ok when `names` is None (not checked) or holds `w`; else `{missing} `w`` with a hint.
fn known(w: &str, at: usize, names: Option<Vec<&str>>, missing: &str) -> Result<(), RuleError> {
    let Some(names) = names.filter(|n| !n.contains(&w)) else {
        return Ok(());
    };
    let hint = match closest(w, names.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if names.is_empty() => "it has none".into(),
        None => format!("it has {}", names.join(", ")),
    };
    Err(err(at, format!("{missing} `{w}`; {hint}")))
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb)).min(row[j].min(row[j + 1]) + 1);
            (diag, row[j + 1]) = (row[j + 1], next);
        }
    }
    row[b.len()]
}

fn has_vars(n: &Node) -> bool {
    match &n.kind {
        Kind::Num(..) => false,
        Kind::Var(_) => true,
        Kind::Neg(x) | Kind::Not(x) => has_vars(x),
        Kind::Bin(_, a, b) => has_vars(a) || has_vars(b),
    }
}

/// Type-checks `n` and rejects constant mistakes; returns whether `n` is a condition.
fn check(n: &Node, terms: &[Term]) -> Result<bool, RuleError> {
    let src = |x: &Node| render(x, &|v| term_name(terms, v), 0);
    let need = |x: &Node, want_condition: bool| match check(x, terms)? == want_condition {
        true => Ok(()),
        false if want_condition => {
            let msg = format!(
                "expected a condition (such as a comparison), but `{}` is a number",
                src(x)
            );
            Err(err(x.start, msg))
        }
        false => {
            let msg = format!(
                "expected a number, but `{}` is a condition (true or false)",
                src(x)
            );
            Err(err(x.start, msg))
        }
    };
    let konst = |x: &Node| num(x, &Env::default()).map_err(|e| err(x.at, e.0));
    match &n.kind {
        Kind::Num(..) | Kind::Var(_) => Ok(false),
        Kind::Neg(x) => need(x, false).map(|_| false),
        Kind::Not(x) => need(x, true).map(|_| true),
        Kind::Bin(op, a, b) => {
            let logic = prec(op) <= 2;
            need(a, logic)?;
            need(b, logic)?;
            if *op == "/" && !has_vars(b) && konst(b)?.is_zero() {
                return Err(err(b.start, "division by zero"));
            }
            if prec(op) >= 5 && !has_vars(n) {
                konst(n)?; // a constant that overflows
            }
            if prec(op) == 4 && !has_vars(n) {
                let always = compare(op, konst(a)?, konst(b)?);
                let msg = format!(
                    "`{}` is always {always}; a rule must depend on the votes",
                    src(n)
                );
                return Err(err(n.at, msg));
            }
            Ok(prec(op) <= 4)
        }
    }
}

// ---------------------------------------------------------------- evaluation

/// Values for one evaluation: `vals[i]` for the rule's term `i`.
#[derive(Default)]
struct Env<'a> {
    terms: &'a [Term],
    vals: Vec<u128>,
}

impl Env<'_> {
    fn get(&self, i: usize) -> u128 {
        self.vals.get(i).copied().unwrap_or(0)
    }
}

fn term_name(terms: &[Term], i: usize) -> String {
    terms.get(i).map(Term::to_string).unwrap_or_default()
}

fn num(n: &Node, env: &Env) -> Result<R, EvalError> {
    let fail = |what: &str| {
        let src = render(n, &|v| term_name(env.terms, v), 0);
        EvalError(format!("{what} in `{src}`"))
    };
    let r = match &n.kind {
        Kind::Num(r, _) => return Ok(*r),
        Kind::Var(v) => {
            let v = i128::try_from(env.get(*v)).map_err(|_| fail("arithmetic overflow"));
            return v.map(R::from_integer);
        }
        Kind::Neg(x) => R::zero().checked_sub(&num(x, env)?),
        Kind::Bin(op, a, b) => {
            let (x, y) = (num(a, env)?, num(b, env)?);
            match *op {
                "+" => x.checked_add(&y),
                "-" => x.checked_sub(&y),
                "*" => x.checked_mul(&y),
                "/" if y.is_zero() => return Err(fail("division by zero")),
                "/" => x.checked_div(&y),
                _ => return Err(fail("a condition used as a number")),
            }
        }
        Kind::Not(_) => return Err(fail("a condition used as a number")),
    };
    // i128::MIN has no positive counterpart; keeping it out keeps num-rational panic-free.
    let r = r.filter(|r| *r.numer() != i128::MIN);
    r.ok_or_else(|| fail("arithmetic overflow"))
}

fn compare(op: &str, x: R, y: R) -> bool {
    match op {
        "==" => x == y,
        "!=" => x != y,
        "<" => x < y,
        "<=" => x <= y,
        ">" => x > y,
        _ => x >= y,
    }
}

/// Evaluates a condition; `and`/`or` short-circuit (an error on the skipped side is ignored).
fn truth(n: &Node, env: &Env) -> Result<bool, EvalError> {
    match &n.kind {
        Kind::Not(x) => Ok(!truth(x, env)?),
        Kind::Bin("and", a, b) => Ok(truth(a, env)? && truth(b, env)?),
        Kind::Bin("or", a, b) => Ok(truth(a, env)? || truth(b, env)?),
        Kind::Bin(op, a, b) => Ok(compare(op, num(a, env)?, num(b, env)?)),
        _ => Err(EvalError("a number used as a condition".into())),
    }
}

/// Renders `n` with minimal parentheses; `min` is the binding strength its context requires.
fn render(n: &Node, var: &dyn Fn(usize) -> String, min: u8) -> String {
    let lit = |x: &Node| match &x.kind {
        Kind::Neg(y) => matches!(y.kind, Kind::Num(..)),
        k => matches!(k, Kind::Num(..)),
    };
    let (p, s) = match &n.kind {
        Kind::Num(_, text) => (8, text.clone()),
        Kind::Var(v) => (8, var(*v)),
        Kind::Neg(x) => (7, format!("-{}", render(x, var, 7))),
        Kind::Not(x) => (3, format!("not {}", render(x, var, 3))),
        Kind::Bin(op, a, b) => {
            let p = prec(op);
            let (l, r) = if p == 4 { (5, 5) } else { (p, p + 1) };
            let tight = *op == "/" && lit(a) && lit(b); // `2/3`, a fraction
            let sep = if tight { "/".into() } else { format!(" {op} ") };
            (
                p,
                format!("{}{sep}{}", render(a, var, l), render(b, var, r)),
            )
        }
    };
    if p < min { format!("({s})") } else { s }
}

/// An exact rational as `7`, `2/3`, `-1/3` or `26 2/3`.
fn fmt_ratio(r: R) -> String {
    let (n, d) = (*r.numer(), *r.denom());
    match (n / d, (n % d).abs()) {
        (w, 0) => w.to_string(),
        (0, _) => format!("{n}/{d}"),
        (w, rem) => format!("{w} {rem}/{d}"),
    }
}

fn show(r: &Result<bool, EvalError>) -> String {
    match r {
        Ok(b) => b.to_string(),
        Err(e) => format!("error: {e} (counted as false)"),
    }
}

/// The explanation of a condition and its value (with the same semantics as `truth`).
fn explain_node(n: &Node, env: &Env) -> (String, Result<bool, EvalError>) {
    match &n.kind {
        Kind::Not(x) => {
            let (s, r) = explain_node(x, env);
            (format!("not ({s})"), r.map(|b| !b))
        }
        Kind::Bin(op @ ("and" | "or"), a, b) => {
            let ((sa, ra), (sb, rb)) = (explain_node(a, env), explain_node(b, env));
            let r = match ra {
                Ok(x) if x == (*op == "or") => Ok(x),
                Ok(_) => rb,
                Err(e) => Err(e),
            };
            (format!("({sa}) {op} ({sb})"), r)
        }
        Kind::Bin(op, a, b) => {
            let subst = |x: &Node| render(x, &|v| env.get(v).to_string(), 5);
            let simple = |x: &Node| matches!(x.kind, Kind::Num(..) | Kind::Var(_));
            let mut s = format!("{} {op} {}", subst(a), subst(b));
            let r = num(a, env)
                .and_then(|x| Ok((x, num(b, env)?)))
                .map(|(x, y)| {
                    if !(simple(a) && simple(b)) {
                        s += &format!(" → {} {op} {}", fmt_ratio(x), fmt_ratio(y));
                    }
                    compare(op, x, y)
                });
            s += &format!(" → {}", show(&r));
            (s, r)
        }
        _ => (String::new(), truth(n, env)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }
    fn votes(list: &[(&str, u64)], eligible: u64, members: u64) -> Counts {
        let choices = list.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let voters = Vec::new();
        Counts {
            choices,
            eligible,
            members,
            voters,
        }
    }
    fn counts(yes: u64, no: u64, abstain: u64, eligible: u64, members: u64) -> Counts {
        votes(
            &[("yes", yes), ("no", no), ("abstain", abstain)],
            eligible,
            members,
        )
    }
    fn parse(src: &str, choices: &[String]) -> Result<Rule, RuleError> {
        Rule::parse(src, &Vocabulary::new(choices))
    }
    fn rule(src: &str) -> Rule {
        let choices = names(&["yes", "no", "abstain"]);
        parse(src, &choices).unwrap_or_else(|e| panic!("{src}: {e:?}"))
    }

    fn voter(
        member: &str,
        choice: Option<&str>,
        attrs: &[(&str, u64)],
        groups: &[&str],
    ) -> VoterInfo {
        VoterInfo {
            member: member.into(),
            choice: choice.map(Into::into),
            attributes: attrs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            groups: names(groups),
        }
    }
    fn set(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }
    /// `n` voters per (choice, n, total population), the population spread evenly over them.
    fn electorate(parts: &[(Option<&str>, u64, u64)], groups: &[&str]) -> Vec<VoterInfo> {
        let mut out = Vec::new();
        for &(choice, n, pop) in parts {
            for i in 0..n {
                let share = pop / n + if i == 0 { pop % n } else { 0 };
                let id = format!("m{}", out.len());
                out.push(voter(&id, choice, &[("population", share)], groups));
            }
        }
        out
    }

    #[test]
    fn evaluates_exactly_with_precedence() {
        // (rule, yes, no, abstain, eligible, members, expected)
        let table: &[(&str, u64, u64, u64, u64, u64, bool)] = &[
            ("yes + no * 2 == 7", 1, 3, 0, 9, 9, true),
            ("(yes + no) * 2 == 8", 1, 3, 0, 9, 9, true),
            ("yes - no - 1 == -3", 1, 3, 0, 9, 9, true),
            ("yes / 2 / 2 == 1/4 * yes", 5, 0, 0, 9, 9, true),
            ("-yes + 3 == 2", 1, 0, 0, 9, 9, true),
            ("- -yes == yes", 4, 0, 0, 9, 9, true),
            ("not yes > no or no > 0", 1, 0, 0, 9, 9, false),
            ("not (yes > no or no > 0)", 1, 0, 0, 9, 9, false),
            ("yes > no or yes == 1 and no == 100", 2, 1, 0, 9, 9, true),
            ("(yes > no or yes == 1) and no == 100", 2, 1, 0, 9, 9, false),
            ("not not yes > no", 2, 1, 0, 9, 9, true),
            ("yes*2<=no", 1, 2, 0, 5, 5, true),
            ("abstain != 0", 0, 0, 2, 5, 5, true),
            // percentages and decimals are exact rationals
            ("yes > 50% * eligible", 28, 0, 0, 57, 60, false),
            ("yes > 50% * eligible", 29, 0, 0, 57, 60, true),
            ("yes >= 12.5% * eligible", 1, 0, 0, 8, 8, true),
            ("yes >= 12.5% * eligible", 1, 0, 0, 9, 9, false),
            ("yes >= 0.5 * eligible", 5, 0, 0, 10, 10, true),
            ("yes == (0.1 + 0.2) * eligible", 3, 0, 0, 10, 10, true),
            // boundaries where floats go wrong: 2/3 of 57 is exactly 38, 2/3 of 3 exactly 2
            ("yes >= 2/3 * eligible", 38, 0, 0, 57, 57, true),
            ("yes >= 2/3 * eligible", 37, 0, 0, 57, 57, false),
            ("yes >= 2/3 * eligible", 2, 0, 0, 3, 3, true),
            ("yes >= 66.67% * eligible", 2, 0, 0, 3, 3, false),
            ("cast >= 2/3 * eligible", 20, 15, 3, 57, 60, true),
            ("cast > 1/2 * members", 20, 10, 0, 57, 60, false),
            ("yes > 50% * eligible and no == 0", 30, 0, 1, 57, 57, true),
        ];
        for &(src, y, n, a, e, m, want) in table {
            assert_eq!(rule(src).eval(&counts(y, n, a, e, m)), Ok(want), "{src}");
        }
        assert_eq!(rule("yes > no"), rule("yes > no").clone());
    }

    #[test]
    fn hyphenated_choice_names() {
        let cs = names(&["option-a", "option_b"]);
        let c = votes(&[("option-a", 5), ("option_b", 3)], 8, 8);
        for src in [
            "option-a > option_b",
            "option-a - option_b == 2",
            "option-a- option_b == 2",
        ] {
            assert_eq!(parse(src, &cs).map(|r| r.eval(&c)), Ok(Ok(true)), "{src}");
        }
        let e = parse("option-a-option_b > 0", &cs).unwrap_err();
        assert_eq!(
            e.message,
            "unknown name `option-a-option_b`; to subtract, put spaces around `-`"
        );
    }

    #[test]
    fn presets() {
        // (preset, yes, no, eligible, expected)
        let table: &[(&str, u64, u64, u64, bool)] = &[
            ("simple_majority", 5, 4, 20, true),
            ("simple_majority", 4, 4, 20, false),
            ("absolute_majority", 10, 0, 20, false),
            ("absolute_majority", 11, 0, 20, true),
            ("two_thirds_present_and_voting", 30, 15, 57, true),
            ("two_thirds_present_and_voting", 29, 15, 57, false),
            ("three_fifths", 3, 2, 9, true),
            ("three_fifths", 5, 4, 9, false),
            ("unanimity", 9, 0, 9, true),
            ("unanimity", 8, 0, 9, false),
            ("consensus", 3, 0, 9, true),
            ("consensus", 8, 1, 9, false),
            ("majority_of_members", 5, 0, 9, true),
            ("majority_of_members", 4, 0, 9, false),
            ("two_thirds_of_members", 4, 2, 9, true),
            ("two_thirds_of_members", 3, 2, 9, false),
        ];
        let yn = names(&["yes", "no"]);
        for &(preset, y, n, e, want) in table {
            let (r, c) = (
                parse(preset, &yn).unwrap(),
                votes(&[("yes", y), ("no", n)], e, e),
            );
            assert_eq!((r.source(), r.eval(&c)), (preset, Ok(want)));
            let expansion = PRESETS.iter().find(|p| p.0 == preset).unwrap().1;
            assert_eq!(r.expression(), expansion);
            assert_eq!(parse(expansion, &yn).unwrap().eval(&c), Ok(want));
        }
        assert_eq!(PRESETS.len(), 11);
        let for_against = names(&["for", "against"]);
        let e = parse("  consensus", &for_against).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(
            e.message
                .starts_with("preset `consensus` means `no == 0`, which does not fit")
        );
        assert!(e.message.contains("unknown name `no`"), "{e:?}");
        assert!(parse("majority_of_members", &for_against).is_ok());
        let padded = rule(" consensus ");
        assert_eq!(
            (padded.source(), padded.expression()),
            (" consensus ", "no == 0".into())
        );
    }

    #[test]
    fn parse_errors_have_offsets_and_messages() {
        // (source, char offset, message fragment)
        let table: &[(&str, usize, &str)] = &[
            ("", 0, "empty rule"),
            ("   ", 0, "empty rule"),
            (
                "yes >",
                5,
                "expected a number, a name or `(`, found the end of the rule",
            ),
            ("(yes > no", 0, "unclosed `(`"),
            ("((yes > no)", 0, "unclosed `(`"),
            ("(yes > (no)", 0, "unclosed `(`"),
            ("yes > no)", 8, "unmatched `)`"),
            (
                "(yes > no no)",
                10,
                "expected `)` for the `(` at 0, found `no`",
            ),
            (
                "yes > no no",
                9,
                "unexpected `no`; expected `and`, `or` or the end",
            ),
            ("yes < no < 3", 9, "comparisons cannot be chained"),
            ("yess > no", 0, "unknown name `yess`; did you mean `yes`?"),
            ("yes > eligble", 6, "did you mean `eligible`?"),
            (
                "yes > quorum",
                6,
                "known names: yes, no, abstain, cast, eligible, members",
            ),
            ("simple_majorty", 0, "did you mean `simple_majority`?"),
            (
                "yes + (no > 1) > 0",
                6,
                "expected a number, but `no > 1` is a condition",
            ),
            (
                "yes + no",
                0,
                "a rule must be a condition such as `yes > no`, but `yes + no` is",
            ),
            (
                "yes and no > 1",
                0,
                "expected a condition (such as a comparison), but `yes` is a",
            ),
            ("not yes", 4, "expected a condition"),
            ("(yes > no) < 3", 0, "`yes > no` is a condition"),
            (
                "1 > 0",
                2,
                "`1 > 0` is always true; a rule must depend on the votes",
            ),
            ("yes > no or 1 > 2", 14, "`1 > 2` is always false"),
            ("2/3 * 3 == 2 and yes > 1", 8, "always true"),
            ("yes > no / 0", 11, "division by zero"),
            ("1/0 > 1", 2, "division by zero"),
            ("yes / (2 - 2) > 1", 6, "division by zero"),
            (
                "yes > 99999999999999999 * 99999999999999999 * 99999999999",
                44,
                "arithmetic overflow",
            ),
            ("yes = no", 4, "unexpected `=`; use `==`"),
            ("yes > no && no == 0", 9, "use `and`"),
            ("!yes", 0, "use `!=` or `not`"),
            (
                "yes > 99999999999999999999999999999999999999999",
                6,
                "too large",
            ),
            ("yes > 1.", 7, "a decimal point must be followed by digits"),
            ("yes > é", 6, "unexpected character `é`"),
            ("yes > no or ü", 12, "unexpected character `ü`"), // char, not byte, offsets
            ("and > 1", 0, "found `and`"),
            ("yes > not no", 6, "found `not`"),
            ("yes >= 50 %", 10, "unexpected character `%`"),
        ];
        for &(src, offset, fragment) in table {
            let e = parse(src, &names(&["yes", "no", "abstain"])).expect_err(src);
            assert_eq!(e.offset, offset, "{src}: {e:?}");
            assert!(e.message.contains(fragment), "{src}: {e:?}");
        }
        let clash = parse("yes > no", &names(&["yes", "no", "cast"])).unwrap_err();
        assert_eq!(
            clash.message,
            "choice `cast` clashes with the built-in `cast`"
        );
        let deep = format!("{}yes > no{}", "(".repeat(40), ")".repeat(40));
        let e = parse(&deep, &names(&["yes", "no"])).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e:?}");
        let e = parse(&format!("yes > 0{}", " + 1".repeat(300)), &[]).unwrap_err();
        assert!(e.message.contains("too long"), "{e:?}");
        let long = rule(&format!("yes > 0{}", " + 1".repeat(200)));
        assert_eq!(long.eval(&counts(200, 0, 0, 1, 1)), Ok(false));
    }

    #[test]
    fn eval_errors_are_errors_not_panics() {
        let e = rule("yes / no > 1")
            .eval(&counts(3, 0, 0, 3, 3))
            .unwrap_err();
        assert_eq!(e.0, "division by zero in `yes / no`");
        let big = counts(u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
        let e = rule("yes * no * abstain > 0").eval(&big).unwrap_err();
        assert_eq!(e.0, "arithmetic overflow in `yes * no`"); // (2^64 - 1)^2 exceeds i128
        assert_eq!(rule("yes + no > 2 * eligible - 1").eval(&big), Ok(true));
        assert_eq!(rule("cast > 0").eval(&big), Ok(true)); // `cast` saturates
        // `and`/`or` short-circuit: the failing side is not evaluated
        assert_eq!(
            rule("no == 0 or yes / no > 1").eval(&counts(3, 0, 0, 3, 3)),
            Ok(true)
        );
    }

    #[test]
    fn explains_with_numbers_substituted() {
        let yn = names(&["yes", "no"]);
        let explain = |src: &str, c: &Counts| parse(src, &yn).unwrap().explain(c);
        let c = votes(&[("yes", 30), ("no", 10)], 57, 60);
        let table = [
            (
                "two_thirds_present_and_voting",
                "yes >= 2/3 * (yes + no): 30 >= 2/3 * (30 + 10) → 30 >= 26 2/3 → true",
            ),
            (
                "yes > 50% * eligible and no == 0",
                "yes > 50% * eligible and no == 0: (30 > 50% * 57 → 30 > 28 1/2 → true) \
                 and (10 == 0 → false) → false",
            ),
            (
                "not (yes - no < -1/3)",
                "not (yes - no < -1/3): not (30 - 10 < -1/3 → 20 < -1/3 → false) → true",
            ),
            ("yes>no", "yes>no: 30 > 10 → true"),
        ];
        for (src, want) in table {
            assert_eq!(explain(src, &c), want);
        }
        let zero_no = votes(&[("yes", 1), ("no", 0)], 1, 1);
        let e = explain("yes / no > 1", &zero_no);
        assert!(
            e.ends_with("→ error: division by zero in `yes / no` (counted as false)"),
            "{e}"
        );
        assert_eq!(fmt_ratio(R::new(-4, 3)), "-1 1/3");
        assert_eq!(fmt_ratio(R::new(6, 3)), "2");
    }

    #[test]
    fn tally_checks_quorum_first() {
        let (q, p) = (rule("majority_of_members"), rule("simple_majority"));
        // (with quorum, yes, no, eligible, verdict)
        let table = [
            (true, 1, 0, 9, Verdict::NoQuorum),
            (true, 0, 5, 9, Verdict::Rejected),
            (true, 5, 0, 9, Verdict::Adopted),
            (false, 1, 0, 9, Verdict::Adopted),
            (false, 0, 0, 9, Verdict::Rejected),
        ];
        for (with_quorum, y, n, e, want) in table {
            let t = tally(with_quorum.then_some(&q), &p, None, &counts(y, n, 0, e, e));
            assert_eq!(t.verdict, want, "{t:?}");
            assert!(t.explanation.starts_with(want.as_str()), "{t:?}");
        }
        let t = tally(Some(&q), &p, None, &counts(1, 0, 0, 9, 9));
        let want = "no_quorum — quorum cast > 1/2 * eligible: 1 > 1/2 * 9 → 1 > 4 1/2 → false";
        assert_eq!(t.explanation, want);
        let t = tally(Some(&q), &p, None, &counts(5, 0, 0, 9, 9));
        assert!(
            t.explanation.ends_with("; pass yes > no: 5 > 0 → true"),
            "{t:?}"
        );
        // an evaluation error counts as false, and says so
        let t = tally(
            Some(&rule("cast / no > 1")),
            &p,
            None,
            &counts(5, 0, 0, 9, 9),
        );
        assert_eq!(t.verdict, Verdict::NoQuorum);
        assert!(
            t.explanation
                .contains("division by zero in `cast / no` (counted as false)")
        );
        assert_eq!(
            tally(None, &rule("yes / no > 1"), None, &counts(5, 0, 0, 9, 9)).verdict,
            Verdict::Rejected
        );
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(Verdict::parse("passed"), None);
    }

    #[test]
    fn decided_only_when_no_final_tally_changes_the_verdict() {
        let yn = names(&["yes", "no"]);
        let r = |s: &str| parse(s, &yn).unwrap();
        let (quorum, two_thirds) = (r("majority_of_members"), r("yes >= 2/3 * eligible"));
        type Case<'a> = (Option<&'a Rule>, &'a Rule, u64, u64, u64, bool);
        // (quorum, pass, yes, no, eligible, decided)
        let table: &[Case] = &[
            (None, &two_thirds, 39, 0, 57, false), // the 39 may still change their votes
            (None, &two_thirds, 57, 0, 57, false), // even when everyone voted yes
            (None, &r("consensus"), 5, 1, 10, false), // the `no` can be changed
            (None, &r("consensus"), 9, 0, 9, false), // and a `yes` can become a `no`
            (None, &r("cast >= 6"), 4, 2, 10, true), // cast never decreases
            (None, &r("cast >= 6"), 4, 1, 10, false),
            (Some(&quorum), &r("cast >= 6"), 4, 2, 10, true), // a met quorum stays met
            (Some(&quorum), &r("cast >= 6"), 3, 2, 10, false), // no quorum yet, it may come
            (Some(&r("cast > members")), &two_thirds, 0, 0, 20, true), // quorum unreachable
            (None, &r("yes >= 0"), 3, 0, 20, true),
            (None, &r("cast == eligible"), 3, 2, 5, true), // everyone has voted
            (None, &r("yes > no"), 0, 0, 0, true),         // nobody can vote
            (None, &r("cast >= 0"), 0, 0, 100_000, false), // too many tallies to enumerate
        ];
        for (i, &(q, p, y, n, e, want)) in table.iter().enumerate() {
            let c = votes(&[("yes", y), ("no", n)], e, e);
            assert_eq!(decided(q, p, None, &c), want, "case {i}: {}", p.source());
        }
        // three choices: C(60, 3) = 34220 final tallies, all within the rule
        assert!(decided(
            None,
            &rule("cast <= eligible"),
            None,
            &counts(10, 10, 10, 57, 57)
        ));
        assert_eq!(count_states(3, 0, 57), Some(34220));
        assert_eq!(count_states(2, 5, 5), Some(6));
        assert_eq!(count_states(0, 0, 9), Some(1));
        assert_eq!(count_states(40, 0, u64::MAX), None);
    }

    /// One odd input per line (the first line is the empty rule).
    const ODD_INPUTS: &str = "
 \t
(((
)))
()
(yes
yes)
1/0 > 1
yes / 0 > 1
yes / no > 0
99999999999999999999999999999999999999999 > yes
170141183460469231731687303715884105727 > yes
yes > 170141183460469231731687303715884105727 * 2
yes * 170141183460469231731687303715884105727 > 0
-170141183460469231731687303715884105727 - 1 < yes
yes - 170141183460469231731687303715884105727 - 2 < 0
yes / 0.0000000000000000000000000000000000001 > 1
0.00000000000000000000000000000000000000001 < yes
100000000000000000000000000000000000000% > yes
yes ÷ 2 > 1
ÿés > nö
🗳 > 0
yes\u{0} > 0
yes >= 2/3*(yes+no)
not
not not
and
or or
> no
yes == == no
yes <> no
yes => no
--
- - - yes < 0
yes -
yes- > 0
_ > 0
_a-_ > 0
1.5.5 > yes
5%% > yes
%
.5 > yes
yes > no and
yes > no AND no == 0
cast/members > eligible/members
members - members > 0
(cast) ( members )
unanimity
nonsense_preset
yes * yes * yes * yes * yes * yes * yes > no / (yes - yes + 1) / 3 / 7 / 11
weight(
weight()
weight)
count(group:)
count(:)
count(group: permanent
count(, group: permanent) > 0
weight(population, yes) / weight(population) > 1/2
weight(population, yes) / weight(population, no) > 1
count(yes, group: permanent, group: x) > 0
weight(,) > 0
present ≥ 1
count(group: permanent) == count(yes, group: permanent)
weight(population) * weight(population) * weight(population) > 0
yes((no)) > 0
f(f(f(1))) > 0
weight(population)(yes) > 0
,
:
count(group: permanent):
weight(population, yes) > 65% * weight(population)
present - cast == 0
qualified_majority_eu
silence
count(group: permanent) > 0 and not count(no, group: permanent) > 0
weight(weight(population)) > 0
count(group: count) > 0
weight(population, yes, no, abstain, present) > 0
weight(yes: population) > 0
unanimity_abstention_allowed
weight(population, yes) - weight(population, no) >= -170141183460469231731687303715884105727";

    #[test]
    fn odd_inputs_never_panic() {
        let choices = names(&["yes", "no", "abstain"]);
        let (huge, permanent) = ([("population", u64::MAX)], ["permanent"]);
        let roster = vec![
            voter("a", Some("yes"), &huge, &permanent),
            voter("b", Some("no"), &huge, &[]),
            voter("c", None, &huge, &permanent),
        ];
        let small = Counts::from_voters(&choices, roster, 3);
        let samples = [
            counts(0, 0, 0, 0, 0),
            counts(3, 2, 1, 9, 10),
            counts(u64::MAX, u64::MAX, 1, u64::MAX, u64::MAX),
            small.clone(),
        ];
        let ties = [
            None,
            Some(Tie::Fails),
            Some(Tie::Chair("a".into())),
            Some(Tie::Lot(1)),
        ];
        let mut parsed = 0;
        for src in ODD_INPUTS.split('\n') {
            let Ok(r) = parse(src, &choices) else {
                continue;
            };
            parsed += 1;
            for c in &samples {
                let t = tally(Some(&r), &r, None, c);
                assert_eq!(
                    t.verdict == Verdict::Adopted,
                    r.eval(c) == Ok(true),
                    "{src}"
                );
                assert!(r.explain(c).starts_with(&r.expression()), "{src}");
                for tie in &ties {
                    let t = tally(Some(&r), &r, tie.as_ref(), c);
                    assert!(t.explanation.starts_with(t.verdict.as_str()), "{src}");
                }
            }
            for tie in &ties {
                decided(None, &r, tie.as_ref(), &counts(1, 1, 0, 6, 6));
                decided(Some(&r), &r, tie.as_ref(), &small);
            }
        }
        assert_eq!(ODD_INPUTS.split('\n').count(), 81);
        assert!(parsed >= 20, "{parsed}");
    }

    #[test]
    fn per_member_atoms() {
        let choices = names(&["yes", "no", "abstain"]);
        let roster = vec![
            voter("A", Some("yes"), &[("population", 50)], &["permanent"]),
            voter("B", Some("no"), &[("population", 30)], &["permanent"]),
            voter("C", Some("abstain"), &[("population", 15)], &[]),
            voter("D", None, &[("population", 5)], &["permanent"]),
            voter("E", Some("yes"), &[], &["elected"]), // no population: counts 0
        ];
        let c = Counts::from_voters(&choices, roster, 6);
        let want = votes(&[("yes", 2), ("no", 1), ("abstain", 1)], 5, 6);
        assert_eq!((&c.choices, c.eligible, c.cast()), (&want.choices, 5, 4));
        let table = [
            "present == 4",
            "present == cast",
            "weight(population) == 100",
            "weight(population, yes) == 50",
            "weight(population, no) == 30",
            "weight(population, abstain) == 15",
            "weight(area) == 0",
            "count(group: permanent) == 3",
            "count(yes, group: permanent) == 1",
            "count(no, group: permanent) == 1",
            "count(abstain, group: permanent) == 0",
            "count(group: elected) == 1 and count(yes, group: elected) == 1",
            "count(group: nobody) == 0",
            "weight(population, yes) * 2 == weight(population)",
            "eligible == 5 and members == 6",
            "count(group:permanent)-count(no,group:permanent)==2",
        ];
        for src in table {
            assert_eq!(rule(src).eval(&c), Ok(true), "{src}");
        }
        let e = rule("weight(population, yes) >= 1/2 * weight(population)").explain(&c);
        assert!(e.ends_with(": 50 >= 1/2 * 100 → 50 >= 50 → true"), "{e}");
        let e = rule("count(no, group: permanent) == 0").explain(&c);
        assert_eq!(e, "count(no, group: permanent) == 0: 1 == 0 → false");
        // without a roster, the per-member atoms evaluate over nobody
        let only_counts = counts(2, 1, 1, 5, 6);
        let r = rule("weight(population) == 0 and count(group: permanent) == 0 and present == 4");
        assert_eq!(r.eval(&only_counts), Ok(true));
        // a vote for a choice not on the ballot is counted under its own name
        let odd = Counts::from_voters(&choices, vec![voter("A", Some("maybe"), &[], &[])], 1);
        assert_eq!((odd.choices.get("maybe"), odd.cast()), (Some(&1), 1));
        let huge = [("population", u64::MAX)];
        let big = Counts::from_voters(&choices, vec![voter("A", None, &huge, &[]); 3], 3);
        assert_eq!(
            rule("weight(population) > 3 * 18446744073709551614").eval(&big),
            Ok(true)
        );
        let e = rule("weight(population) * weight(population) > 0")
            .eval(&big)
            .unwrap_err();
        assert!(e.0.starts_with("arithmetic overflow"), "{e:?}");
    }

    #[test]
    fn qualified_majority_eu_boundaries() {
        let yna = names(&["yes", "no", "abstain"]);
        let population = set(&["population"]);
        let vocab = Vocabulary {
            attributes: Some(&population),
            ..Vocabulary::new(&yna)
        };
        let qmv = Rule::parse("qualified_majority_eu", &vocab).unwrap();
        let (yes, no, abstain) = (Some("yes"), Some("no"), Some("abstain"));
        // ([(choice, members, their population)], adopted); 27 members, population 3000
        type Case<'a> = (&'a [(Option<&'a str>, u64, u64)], bool);
        let table: &[Case] = &[
            (&[(yes, 15, 1950), (no, 12, 1050)], true), // 55.6% of members, exactly 65%
            (&[(yes, 15, 1949), (no, 12, 1051)], false), // just under 65% of the population
            (&[(yes, 14, 2900), (no, 13, 100)], false), // 51.9% of members is too few
            (&[(yes, 23, 1950), (no, 4, 1050)], true),
            (&[(yes, 24, 100), (no, 3, 2900)], true), // three members cannot block
            (&[(yes, 24, 100), (abstain, 3, 2900)], true),
            (&[(yes, 23, 100), (no, 4, 2900)], false), // four can
            (&[(yes, 23, 1000), (None, 4, 2000)], false), // silence counts against, too
            (&[(yes, 27, 3000)], true),
        ];
        for &(parts, want) in table {
            let c = Counts::from_voters(&yna, electorate(parts, &[]), 27);
            assert_eq!(c.eligible, 27);
            assert_eq!(qmv.eval(&c), Ok(want), "{parts:?}: {}", qmv.explain(&c));
        }
        // without a roster check the preset parses too; with a roster lacking the attribute, not
        assert!(parse("qualified_majority_eu", &yna).is_ok());
        let pop = set(&["pop"]);
        let vocab = Vocabulary {
            attributes: Some(&pop),
            ..vocab
        };
        let e = Rule::parse(" qualified_majority_eu", &vocab).unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(
            e.message
                .starts_with("preset `qualified_majority_eu` means `yes >= 55%"),
            "{e}"
        );
        assert!(
            e.message
                .ends_with("the roster has no attribute `population`; it has pop"),
            "{e}"
        );
    }

    #[test]
    fn un_security_council_substantive_question() {
        let yna = names(&["yes", "no", "abstain"]);
        let groups = set(&["permanent", "elected"]);
        let vocab = Vocabulary {
            groups: Some(&groups),
            ..Vocabulary::new(&yna)
        };
        let src = "yes >= 9 and count(no, group: permanent) == 0";
        let r = Rule::parse(src, &vocab).unwrap();
        let (y, n, a) = (Some("yes"), Some("no"), Some("abstain"));
        // (the five permanent members, the ten elected members, adopted)
        type Case<'a> = ([Option<&'a str>; 5], [Option<&'a str>; 10], bool);
        let table: &[Case] = &[
            ([y, y, y, y, y], [y, y, y, y, n, n, n, n, n, n], true),
            ([y, y, y, y, y], [y, y, y, n, n, n, n, n, n, n], false), // 8 votes are too few
            ([y, y, y, y, n], [y; 10], false),                        // a veto
            ([y, y, y, y, a], [y, y, y, y, y, n, n, n, a, a], true),  // abstaining is no veto
            ([y, y, y, y, None], [y, y, y, y, y, n, n, n, n, n], true), // nor is absence
            ([n, n, n, n, n], [y; 10], false),
        ];
        for (i, (p5, elected, want)) in table.iter().enumerate() {
            let member = |group: &str, j: usize, c: &Option<&str>| {
                voter(&format!("{group}{j}"), *c, &[], &[group])
            };
            let p5 = p5
                .iter()
                .enumerate()
                .map(|(j, c)| member("permanent", j, c));
            let e10 = elected
                .iter()
                .enumerate()
                .map(|(j, c)| member("elected", j, c));
            let c = Counts::from_voters(&yna, p5.chain(e10).collect(), 15);
            assert_eq!(c.eligible, 15);
            assert_eq!(rule("count(group: permanent) == 5").eval(&c), Ok(true));
            assert_eq!(r.eval(&c), Ok(*want), "case {i}: {}", r.explain(&c));
        }
    }

    #[test]
    fn ties_follow_the_tie_rule() {
        let yna = names(&["yes", "no", "abstain"]);
        let chair = |m: &str| Tie::Chair(m.into());
        let (sm, ge) = (rule("simple_majority"), rule("yes >= no"));
        let (adopted, rejected) = (Verdict::Adopted, Verdict::Rejected);
        let (fails, tur, xyz) = (Some(Tie::Fails), Some(chair("TUR")), Some(chair("XYZ")));
        // (tie rule, the chair TUR's vote, other yes, other no, pass, verdict, explanation end)
        type Case<'a> = (
            Option<Tie>,
            Option<&'a str>,
            u64,
            u64,
            &'a Rule,
            Verdict,
            &'a str,
        );
        #[rustfmt::skip]
        let table: &[Case] = &[
            (None, Some("yes"), 9, 10, &sm, rejected, "rejected — pass yes > no: 10 > 10 → false"),
            (None, Some("yes"), 9, 10, &ge, adopted, "adopted — pass yes >= no: 10 >= 10 → true"),
            (fails.clone(), Some("yes"), 9, 10, &ge, rejected, "; tie 10–10: a tie fails → rejected"),
            (tur.clone(), Some("yes"), 9, 10, &sm, adopted, "; tie 10–10: the chair (TUR) voted yes → adopted"),
            (tur.clone(), Some("no"), 10, 9, &ge, rejected, "; tie 10–10: the chair (TUR) voted no → rejected"),
            (tur.clone(), Some("abstain"), 10, 10, &ge, rejected, "; tie 10–10: the chair (TUR) voted abstain → rejected"),
            (tur.clone(), None, 10, 10, &ge, rejected, "; tie 10–10: the chair (TUR) has not voted → rejected"),
            (xyz, Some("yes"), 9, 10, &sm, rejected, "; tie 10–10: the chair (XYZ) has not voted → rejected"),
            (Some(Tie::Lot(7)), None, 10, 10, &sm, adopted, "; tie 10–10: by lot, seed 7 is odd → adopted"),
            (Some(Tie::Lot(8)), None, 10, 10, &ge, rejected, "; tie 10–10: by lot, seed 8 is even → rejected"),
            (fails, Some("yes"), 10, 10, &sm, adopted, "adopted — pass yes > no: 11 > 10 → true"), // no tie
            (Some(Tie::Lot(1)), None, 0, 0, &sm, rejected, "rejected — pass yes > no: 0 > 0 → false"), // 0–0 is none
        ];
        for (tie, tur, y, n, pass, verdict, end) in table {
            let mut roster = vec![voter("TUR", *tur, &[], &[])];
            roster.extend((0..*y).map(|i| voter(&format!("y{i}"), Some("yes"), &[], &[])));
            roster.extend((0..*n).map(|i| voter(&format!("n{i}"), Some("no"), &[], &[])));
            let c = Counts::from_voters(&yna, roster, 30);
            let t = tally(None, pass, tie.as_ref(), &c);
            assert_eq!((t.verdict, t.quorum), (*verdict, None), "{t:?}");
            assert!(t.explanation.ends_with(end), "{t:?}");
            assert!(t.explanation.starts_with(verdict.as_str()), "{t:?}");
            assert_eq!(t.explanation.contains("tie"), end.contains("tie"), "{t:?}");
        }
        let c = Counts::from_voters(
            &yna,
            electorate(&[(Some("yes"), 1, 0), (Some("no"), 1, 0)], &[]),
            2,
        );
        let t = tally(None, &sm, Some(&chair("m0")), &c).explanation;
        assert_eq!(
            t,
            "adopted — pass yes > no: 1 > 1 → false; tie 1–1: the chair (m0) voted yes → adopted"
        );
        let c = counts(10, 10, 0, 20, 20);
        let (quorum, lot) = (rule("cast >= 21"), Tie::Lot(1));
        let t = tally(Some(&quorum), &sm, Some(&lot), &c);
        assert_eq!(
            (t.verdict, t.quorum),
            (Verdict::NoQuorum, Some(false)),
            "{t:?}"
        );
        assert!(!t.explanation.contains("tie"), "{t:?}");
        let t = tally(Some(&rule("majority_of_members")), &sm, Some(&lot), &c);
        assert_eq!(
            (t.verdict, t.quorum),
            (Verdict::Adopted, Some(true)),
            "{t:?}"
        );
        // a ballot without `yes` and `no` has no ties
        let fa = names(&["for", "against"]);
        let r = parse("for > against", &fa).unwrap();
        let c = votes(&[("for", 3), ("against", 3)], 6, 6);
        assert_eq!(tally(None, &r, Some(&lot), &c).verdict, Verdict::Rejected);
    }

    #[test]
    fn new_presets() {
        let yna = names(&["yes", "no", "abstain"]);
        // (preset, yes, no, abstain, expected)
        let table: &[(&str, u64, u64, u64, bool)] = &[
            ("unanimity_abstention_allowed", 3, 0, 2, true),
            ("unanimity_abstention_allowed", 1, 0, 0, true),
            ("unanimity_abstention_allowed", 0, 0, 5, false), // nobody for it
            ("unanimity_abstention_allowed", 9, 1, 0, false),
            ("silence", 0, 0, 0, true),
            ("silence", 0, 1, 0, false),
        ];
        for &(preset, y, n, a, want) in table {
            let r = parse(preset, &yna).unwrap();
            assert_eq!(r.eval(&counts(y, n, a, 9, 9)), Ok(want), "{preset}");
        }
        // a silence ballot needs only `no`; presets that mention `yes` do not fit it
        let only_no = names(&["no"]);
        let silence = parse("silence", &only_no).unwrap();
        assert_eq!(silence.eval(&votes(&[("no", 0)], 9, 9)), Ok(true));
        assert_eq!(silence.eval(&votes(&[("no", 1)], 9, 9)), Ok(false));
        for preset in [
            "simple_majority",
            "unanimity_abstention_allowed",
            "qualified_majority_eu",
        ] {
            let e = parse(preset, &only_no).unwrap_err();
            assert!(e.message.contains("unknown name `yes`"), "{preset}: {e}");
        }
        assert!(PRESETS.iter().all(|p| !p.2.is_empty()));
    }

    #[test]
    fn validation_errors_have_offsets_and_hints() {
        let yna = names(&["yes", "no", "abstain"]);
        let (attributes, groups) = (set(&["population", "gdp"]), set(&["permanent", "elected"]));
        let vocab = Vocabulary {
            choices: &yna,
            attributes: Some(&attributes),
            groups: Some(&groups),
        };
        let weight = "use `weight(ATTR)` or `weight(ATTR, CHOICE)`";
        let count = "use `count(group: GROUP)` or `count(CHOICE, group: GROUP)`";
        // (source, char offset, message fragment)
        #[rustfmt::skip]
        let table: &[(&str, usize, &str)] = &[
            ("weight(popluation) > 0", 7, "the roster has no attribute `popluation`; did you mean `population`?"),
            ("weight(area) > 0", 7, "the roster has no attribute `area`; it has gdp, population"),
            ("count(no, group: permanant) == 0", 17, "the roster has no group `permanant`; did you mean `permanent`?"),
            ("wieght(population) > 0", 0, "unknown function `wieght`; did you mean `weight`?"),
            ("yes > sum(population)", 6, "unknown function `sum`; the functions are `weight` and"),
            ("weight() > 0", 7, "`weight` is missing arguments; use `weight(ATTR)`"),
            ("weight(population, yes, no) > 0", 24, "too many arguments to `weight`"),
            ("weight(population, group: permanent) > 0", 19, "`weight` has no argument `group:`"),
            ("count(yes) > 0", 9, "`count` is missing arguments"),
            ("count(yes, permanent) > 0", 11, "expected `group: …`, found `permanent`"),
            ("count(yes, grp: permanent) > 0", 11, "`count` has no argument `grp:`"),
            ("count(yes, group: permanent, group: elected) > 0", 29, "too many arguments"),
            ("count(maybe, group: permanent) > 0", 6, "the ballot has no choice `maybe`; it has yes, no, abstain"),
            ("weight(population, nay) > 0", 19, "the ballot has no choice `nay`; did you mean `no`?"),
            ("weight(population, cast) > 0", 19, "the ballot has no choice `cast`"),
            ("count(group: 5) > 0", 13, "expected a name, found `5`"),
            ("weight(population,) > 0", 18, "expected a name, found `)`"),
            ("weight(population > 0", 18, "expected `,` or `)`, found `>`"),
            ("count(group: permanent) > 0 and count(group permanent) > 0", 44, "found `permanent`"),
            ("weight(population", 6, "unclosed `(`"),
            ("weight > 0", 0, "unknown name `weight`; `weight` is a function: use `weight(ATTR)`"),
            ("count(group: permanent) + 1", 0, "a rule must be a condition"),
            ("count(group: permanent) > 0 > 1", 28, "comparisons cannot be chained"),
        ];
        for &(src, offset, fragment) in table {
            let e = Rule::parse(src, &vocab).expect_err(src);
            assert_eq!(e.offset, offset, "{src}: {e:?}");
            assert!(e.message.contains(fragment), "{src}: {e:?}");
            let usage = if src.starts_with("weight(") {
                weight
            } else {
                count
            };
            if fragment.contains("argument") {
                assert!(e.message.ends_with(usage), "{src}: {e:?}");
            }
        }
        // without a roster to check against, any attribute and group name will do
        let free = "weight(anything) > 0 and count(no, group: whatever) == 0";
        assert!(parse(free, &yna).is_ok());
        let none = BTreeSet::new();
        let e = Rule::parse(
            "weight(population) > 0",
            &Vocabulary {
                attributes: Some(&none),
                ..vocab
            },
        );
        assert_eq!(
            e.unwrap_err().message,
            "the roster has no attribute `population`; it has none"
        );
        // `present` as a choice clashes only where a rule uses the name
        let present = names(&["yes", "no", "present"]);
        assert!(parse("simple_majority", &present).is_ok());
        let e = parse("yes > no and present > 2", &present).unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (13, "choice `present` clashes with the built-in `present`")
        );
        // a choice may be named like a function; a call is still a call
        let odd = names(&["weight", "no"]);
        let r = parse("weight > no and weight(population) >= 0", &odd).unwrap();
        assert_eq!(r.eval(&votes(&[("weight", 2), ("no", 1)], 3, 3)), Ok(true));
        let signal = names(&["count"]); // as councild's `on_signal.until` uses it
        let r = parse("count >= 1", &signal).unwrap();
        assert_eq!(r.eval(&votes(&[("count", 1)], 3, 3)), Ok(true));
    }

    /// Whether every reachable final state gives the same `tally` verdict, by brute force over
    /// each voter's final choice (`choices` only).
    fn decided_by_brute_force(q: Option<&Rule>, p: &Rule, tie: Option<&Tie>, c: &Counts) -> bool {
        let choices: Vec<String> = c.choices.keys().cloned().collect();
        let mut seen = BTreeSet::new();
        let mut voters = c.voters.clone();
        fn each(i: usize, v: &mut Vec<VoterInfo>, c: &Counts, f: &mut dyn FnMut(&[VoterInfo])) {
            let Some(original) = c.voters.get(i) else {
                return f(v);
            };
            let options = c.choices.keys().map(Some);
            let stay = original.choice.is_none().then_some(None);
            for choice in options.chain(stay) {
                v[i].choice = choice.cloned();
                each(i + 1, v, c, f);
            }
        }
        each(0, &mut voters, c, &mut |v| {
            let state = Counts::from_voters(&choices, v.to_vec(), c.members);
            seen.insert(tally(q, p, tie, &state).verdict);
        });
        seen.len() == 1
    }

    #[test]
    fn decided_with_per_member_rules() {
        let yn = names(&["yes", "no"]);
        let r = |s: &str| parse(s, &yn).unwrap();
        let pops = [("A", 40), ("B", 30), ("C", 20), ("D", 10)];
        let council = |choices: [Option<&str>; 4]| {
            let roster = pops.iter().zip(choices).map(|(&(m, pop), c)| {
                voter(
                    m,
                    c,
                    &[("population", pop)],
                    if pop > 25 { &["board"] } else { &[] },
                )
            });
            Counts::from_voters(&yn, roster.collect(), 4)
        };
        let (y, n) = (Some("yes"), Some("no"));
        let present = r("weight(population, yes) + weight(population, no) >= 70");
        let weighted = r("weight(population, yes) > 1/2 * weight(population)");
        let never = r("weight(population, yes) > 100");
        let board = r("count(group: board) == 2");
        let veto = r("count(no, group: board) == 0 and yes >= 1");
        // (quorum, pass, the four votes, decided)
        type Case<'a> = (Option<&'a Rule>, &'a Rule, [Option<&'a str>; 4], bool);
        let table: &[Case] = &[
            (None, &present, [y, n, None, None], true), // 70 have voted and cannot withdraw
            (None, &present, [y, None, n, None], false), // 60 have: B may vote or not
            (None, &present, [n, None, y, y], true),
            (None, &weighted, [y, y, y, y], false), // anyone may still change their vote
            (None, &never, [y, y, y, None], true),  // can never pass
            (Some(&board), &never, [None; 4], true),
            (Some(&present), &r("yes >= 0"), [y, y, None, None], true), // quorum met for good
            (Some(&present), &r("yes >= 0"), [y, None, None, None], false),
            (None, &veto, [None, None, n, n], false),
            (
                None,
                &r("yes + no >= 2 and weight(population) > 0"),
                [n, y, None, None],
                true,
            ),
        ];
        for (i, &(q, p, choices, want)) in table.iter().enumerate() {
            let c = council(choices);
            assert_eq!(decided(q, p, None, &c), want, "case {i}");
            assert_eq!(decided_by_brute_force(q, p, None, &c), want, "case {i}");
        }
        // the roster must agree with the counts, else nothing can be concluded
        let mut off = council([y, y, None, None]);
        off.choices.insert("yes".into(), 3);
        assert!(!decided(None, &never, None, &off));
        assert!(!decided(None, &never, None, &counts(1, 0, 0, 1, 1)));
        // 3^13 = 1,594,323 combinations are enumerated; 3^14 = 4,782,969 are too many
        let always = r("weight(population) >= 0");
        let silent = |n| Counts::from_voters(&yn, electorate(&[(None, n, 0)], &[]), n);
        assert!(decided(None, &always, None, &silent(13)));
        assert!(!decided(None, &always, None, &silent(14)));
    }

    #[test]
    fn decided_agrees_with_brute_force() {
        let yn = names(&["yes", "no"]);
        let r = |s: &str| parse(s, &yn).unwrap();
        // each rule also with a per-member term that is always true, to force that enumeration
        let pairs = |s: &str| {
            [
                r(s),
                r(&format!("({}) and weight(x) >= 0", r(s).expression())),
            ]
        };
        let quorums = [
            None,
            Some(pairs("majority_of_members")),
            Some(pairs("present >= 2")),
        ];
        let passes = [
            pairs("simple_majority"),
            pairs("yes >= no"),
            pairs("cast >= 2"),
            pairs("yes >= 1"),
            pairs("weight(population, yes) >= 1/2 * weight(population)"),
            pairs("consensus"),
            pairs("yes > eligible"), // never: ties alone decide
        ];
        let ties = [
            None,
            Some(Tie::Fails),
            Some(Tie::Chair("A".into())),
            Some(Tie::Chair("Z".into())),
            Some(Tie::Lot(1)),
            Some(Tie::Lot(2)),
        ];
        let options = [Some("yes"), Some("no"), None];
        let (mut checked, mut settled) = (0, 0);
        for size in 1..=4 {
            for code in 0..3usize.pow(size) {
                let roster = (0..size).map(|i| {
                    let choice = options[code / 3usize.pow(i) % 3];
                    let id = ["A", "B", "C", "D"][i as usize];
                    voter(id, choice, &[("population", u64::from(i) * 7 + 3)], &[])
                });
                let c = Counts::from_voters(&yn, roster.collect(), 5);
                let ties = &ties;
                for (q, p, tie) in quorums.iter().flat_map(|q| {
                    passes
                        .iter()
                        .flat_map(move |p| ties.iter().map(move |t| (q, p, t)))
                }) {
                    let want =
                        decided_by_brute_force(q.as_ref().map(|q| &q[0]), &p[0], tie.as_ref(), &c);
                    for i in 0..2 {
                        let q = q.as_ref().map(|q| &q[i]);
                        let got = decided(q, &p[i], tie.as_ref(), &c);
                        assert_eq!(
                            got,
                            want,
                            "{:?} {} {tie:?} {c:?}",
                            q.map(Rule::source),
                            p[i].source()
                        );
                    }
                    (checked, settled) = (checked + 1, settled + usize::from(want));
                }
            }
        }
        assert!(
            settled > 100 && checked - settled > 100,
            "{settled} of {checked}"
        );
        // ties decided by the lot's seed, with everyone having voted
        let both = Counts::from_voters(
            &yn,
            vec![
                voter("A", Some("yes"), &[], &[]),
                voter("B", Some("no"), &[], &[]),
            ],
            2,
        );
        let cast = r("cast >= 2");
        assert!(decided(None, &cast, Some(&Tie::Lot(3)), &both));
        assert!(!decided(None, &cast, Some(&Tie::Lot(4)), &both));
        assert!(decided(None, &cast, None, &both));
    }
}
