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
//!   (in a meeting, the members of the electorate in the room when the vote is taken; in an
//!   email ballot the same number as `cast`, a returned ballot being the member's presence), `eligible` (entitled to vote when the ballot opened) and `members` (all members,
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
    /// Members of the electorate present in the room when the vote was taken; `None` for a
    /// ballot by mail, where a returned ballot is the member's presence (`present` = `cast`).
    pub present: Option<u64>,
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
            present: None,
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
    /// An election's: at least one candidate elected (a seat may stay empty).
    Elected,
    /// An election's: nobody elected (and a round that leads to another).
    NoWinner,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Adopted,
        Verdict::Rejected,
        Verdict::NoQuorum,
        Verdict::Elected,
        Verdict::NoWinner,
    ];
    /// The outcomes a stage with a ballot needs.
    pub const BALLOT: [Verdict; 3] = [Verdict::Adopted, Verdict::Rejected, Verdict::NoQuorum];
    /// The outcomes a stage with an election needs.
    pub const ELECTION: [Verdict; 2] = [Verdict::Elected, Verdict::NoWinner];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Adopted => "adopted",
            Verdict::Rejected => "rejected",
            Verdict::NoQuorum => "no_quorum",
            Verdict::Elected => "elected",
            Verdict::NoWinner => "no_winner",
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
    /// Which clause gave the verdict.
    pub decided_by: DecidedBy,
    pub explanation: String,
}

/// What gave a ballot's verdict: the quorum (not met), the tie rule, or the pass rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    Quorum,
    Tie,
    Rule,
}

impl DecidedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Quorum => "quorum",
            DecidedBy::Tie => "tie",
            DecidedBy::Rule => "rule",
        }
    }
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
            Term::Builtin("present") => c.present.unwrap_or_else(|| c.cast()).into(),
            Term::Builtin(_) => c.cast().into(), // cast
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

    /// Whether the rule reads who voted what (`weight(…)`, `count(…, group: …)`), which
    /// counts alone (a show of hands) cannot tell.
    pub fn needs_each_vote(&self) -> bool {
        self.terms.iter().any(Term::per_member)
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

mod decided;
pub mod election;
mod eval;
mod syntax;
#[cfg(test)]
mod tests;

pub use decided::{decided, tally};
use eval::*;
use syntax::*;
