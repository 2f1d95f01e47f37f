//! Ballot quorum and pass rules: a small, pure expression language over vote counts.
//!
//! A rule is a preset name (see [`PRESETS`]) or an expression such as
//! `yes >= 2/3 * (yes + no)` or `yes > 50% * eligible and no == 0`.
//!
//! - Numbers are exact rationals (`Ratio<i128>`, checked arithmetic): `19`, `2/3`, `0.5`,
//!   `65%`, `12.5%`. Overflow and division by zero are [`EvalError`]s, never panics.
//! - Precedence, lowest first: `or`, `and`, `not`, comparisons `== != < <= > >=`
//!   (non-associative), `+ -`, `* /`, unary `-`, atoms (number, variable, `( … )`).
//! - Variables: the ballot's choices, `cast` (all votes returned), `eligible` (entitled to vote
//!   when the ballot opened) and `members` (all members, suspended ones too).
//! - Types are checked at parse time: a rule must be a condition, arithmetic needs numbers.
//!
//! No I/O, no clock, no floats.

use num_rational::Ratio;
use num_traits::{CheckedAdd, CheckedDiv, CheckedMul, CheckedSub, Zero};
use std::collections::BTreeMap;

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

/// Presets: (name, expression, one-line meaning). The pass presets assume choices `yes`/`no`.
#[rustfmt::skip]
pub const PRESETS: &[(&str, &str, &str)] = &[
    ("simple_majority", "yes > no", "more yes than no votes"),
    ("absolute_majority", "yes > 1/2 * eligible", "yes from more than half of the eligible members"),
    ("two_thirds_present_and_voting", "yes >= 2/3 * (yes + no)", "yes from at least two thirds of those voting yes or no"),
    ("three_fifths", "yes >= 3/5 * (yes + no)", "yes from at least three fifths of those voting yes or no"),
    ("unanimity", "yes == eligible", "every eligible member votes yes"),
    ("consensus", "no == 0", "nobody votes no"),
    ("majority_of_members", "cast > 1/2 * eligible", "quorum: more than half of the eligible members vote"),
    ("two_thirds_of_members", "cast >= 2/3 * eligible", "quorum: at least two thirds of the eligible members vote"),
];

/// Built-in variables, in the order of `Var::Builtin` indices and `Env::fixed`.
const BUILTINS: [&str; 3] = ["cast", "eligible", "members"];
/// Bounds that keep parsing and the recursive evaluator far from the stack limit.
const MAX_TOKENS: usize = 512;
const MAX_NESTING: usize = 32;
/// `decided` enumerates at most this many final tallies.
const MAX_STATES: u128 = 2_000_000;

/// The counts a rule is evaluated over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every choice of the ballot, 0 when no votes.
    pub choices: BTreeMap<String, u64>,
    pub eligible: u64,
    pub members: u64,
}

impl Counts {
    /// Votes returned: the sum over all choices (saturating).
    pub fn cast(&self) -> u64 {
        self.choices.values().fold(0, |a, &v| a.saturating_add(v))
    }
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub verdict: Verdict,
    pub explanation: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Choice(usize),
    Builtin(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Num(R, String), // value, and the literal as written
    Var(Var),
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
    root: Node,
}

impl Rule {
    /// Parses `source` either as a preset name or as an expression over `choices`.
    pub fn parse(source: &str, choices: &[String]) -> Result<Rule, RuleError> {
        if let Some(c) = choices.iter().find(|c| BUILTINS.contains(&c.as_str())) {
            let msg = format!("choice `{c}` clashes with the built-in `{c}`");
            return Err(err(0, msg));
        }
        let name = source.trim();
        let (expression, root) = match PRESETS.iter().find(|p| p.0 == name) {
            Some(&(_, expr, _)) => {
                let at = source.chars().take_while(|c| c.is_whitespace()).count();
                let msg = |e| format!("preset `{name}` means `{expr}`, which does not fit: {e}");
                let root = parse_expr(expr, choices, false).map_err(|e| err(at, msg(e)))?;
                (expr, root)
            }
            None => (name, parse_expr(source, choices, true)?),
        };
        let (source, expression) = (source.to_string(), expression.to_string());
        let choices = choices.to_vec();
        Ok(Rule {
            source,
            expression,
            choices,
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
        let vote = |c: &String| counts.choices.get(c).copied().unwrap_or(0);
        let vals = self.choices.iter().map(vote).collect();
        let fixed = [counts.cast(), counts.eligible, counts.members];
        Env {
            names: &self.choices,
            vals,
            fixed,
        }
    }
}

/// Quorum first: if `quorum` is Some and false → NoQuorum; otherwise pass true → Adopted, else
/// Rejected. An evaluation error counts as the rule being false (and the explanation says so).
pub fn tally(quorum: Option<&Rule>, pass: &Rule, counts: &Counts) -> Tally {
    let qenv = quorum.map(|q| (q, q.env(counts)));
    let verdict = verdict_of(qenv.as_ref().map(|(q, e)| (*q, e)), pass, &pass.env(counts));
    let explain = |label, r: &Rule| format!("{label} {}", r.explain(counts));
    let mut parts: Vec<String> = quorum.iter().map(|q| explain("quorum", q)).collect();
    if verdict != Verdict::NoQuorum {
        parts.push(explain("pass", pass));
    }
    let explanation = format!("{} — {}", verdict.as_str(), parts.join("; "));
    Tally {
        verdict,
        explanation,
    }
}

/// Whether the verdict can no longer change: `tally` gives the same verdict for every final
/// tally still reachable — voters may change their votes, non-voters may vote or not, `cast`
/// never decreases. Enumerates at most 2,000,000 final tallies; beyond that returns false.
pub fn decided(quorum: Option<&Rule>, pass: &Rule, counts: &Counts) -> bool {
    let rules: Vec<&Rule> = quorum.into_iter().chain([pass]).collect();
    let mut names: Vec<&String> = counts.choices.keys().collect();
    for c in rules.iter().flat_map(|r| &r.choices) {
        if !names.contains(&c) {
            names.push(c);
        }
    }
    let (lo, hi) = (counts.cast(), counts.cast().max(counts.eligible));
    if count_states(names.len(), lo, hi).is_none_or(|n| n > MAX_STATES) {
        return false;
    }
    // For each rule, where each of its choices sits in `names`, and an Env to refill per tally.
    let slot = |c: &String| names.iter().position(|n| *n == c).unwrap_or(usize::MAX);
    let maps: Vec<Vec<usize>> = rules
        .iter()
        .map(|r| r.choices.iter().map(slot).collect())
        .collect();
    let mut envs: Vec<Env> = rules.iter().map(|r| r.env(counts)).collect();
    let mut first = None;
    let mut same_verdict = |tally: &[u64], cast| {
        for (env, map) in envs.iter_mut().zip(&maps) {
            env.fixed[0] = cast;
            for (v, &j) in env.vals.iter_mut().zip(map) {
                *v = tally.get(j).copied().unwrap_or(0);
            }
        }
        let Some((penv, _)) = envs.split_last() else {
            return false;
        };
        let v = verdict_of(quorum.zip(envs.first()), pass, penv);
        *first.get_or_insert(v) == v
    };
    walk(&mut vec![0; names.len()], 0, 0, (lo, hi), &mut same_verdict)
}

fn verdict_of(quorum: Option<(&Rule, &Env)>, pass: &Rule, penv: &Env) -> Verdict {
    if quorum.is_some_and(|(q, e)| !truth(&q.root, e).unwrap_or(false)) {
        Verdict::NoQuorum
    } else if truth(&pass.root, penv).unwrap_or(false) {
        Verdict::Adopted
    } else {
        Verdict::Rejected
    }
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

fn node(kind: Kind, start: usize, at: usize) -> Node {
    Node { kind, start, at }
}

// ---------------------------------------------------------------- lexing and parsing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(R, String),
    Ident(String),
    Op(&'static str), // and or not == != < <= > >= + - * /
    LParen,
    RParen,
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
            } else {
                i += 1;
                match c {
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    _ => return Err(err(at, format!("unexpected character `{c}`"))),
                }
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
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
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
    choices: &'a [String],
    suggest_presets: bool,
    depth: usize,
}

fn parse_expr(src: &str, choices: &[String], presets_hint: bool) -> Result<Node, RuleError> {
    let toks = lex(src)?;
    let suggest_presets = presets_hint && toks.len() == 2; // a single word
    let (pos, depth) = (0, 0);
    let mut p = Parser {
        toks,
        pos,
        choices,
        suggest_presets,
        depth,
    };
    if p.peek().0 == Tok::End {
        return Err(err(0, "empty rule"));
    }
    let root = p.level(1)?;
    match p.peek() {
        (Tok::End, _) => {}
        (Tok::RParen, at) => return Err(err(*at, "unmatched `)`")),
        (t, at) => {
            let t = describe(t);
            let msg = format!("unexpected {t}; expected `and`, `or` or the end");
            return Err(err(*at, msg));
        }
    }
    if !check(&root, choices)? {
        let src = render(&root, &|v| name(choices, v), 0);
        let msg = format!("a rule must be a condition such as `yes > no`, but `{src}` is a number");
        return Err(err(root.start, msg));
    }
    Ok(root)
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
            (Tok::Ident(w), at) => Ok(node(Kind::Var(self.resolve(&w, at)?), at, at)),
            (Tok::LParen, open) => {
                let mut inner = self.nested(1, open)?;
                inner.start = open;
                match self.bump() {
                    (Tok::RParen, _) => Ok(inner),
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

    fn resolve(&self, w: &str, at: usize) -> Result<Var, RuleError> {
        if let Some(i) = BUILTINS.iter().position(|b| *b == w) {
            return Ok(Var::Builtin(i));
        }
        if let Some(i) = self.choices.iter().position(|c| c == w) {
            return Ok(Var::Choice(i));
        }
        let known: Vec<&str> = self
            .choices
            .iter()
            .map(String::as_str)
            .chain(BUILTINS)
            .collect();
        let presets = PRESETS.iter().map(|p| p.0).filter(|_| self.suggest_presets);
        let candidates = known.iter().copied().chain(presets);
        let best = candidates
            .map(|c| (edit_distance(w, c), c))
            .min_by_key(|p| p.0);
        let hint = match best {
            Some((d, c)) if d <= 2 => format!("did you mean `{c}`?"),
            _ if w.contains('-') => "to subtract, put spaces around `-`".into(),
            _ => format!("known names: {}", known.join(", ")),
        };
        Err(err(at, format!("unknown name `{w}`; {hint}")))
    }
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
fn check(n: &Node, names: &[String]) -> Result<bool, RuleError> {
    let src = |x: &Node| render(x, &|v| name(names, v), 0);
    let need = |x: &Node, want_condition: bool| match check(x, names)? == want_condition {
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

/// Values for one evaluation: `vals[i]` for choice `i`, `fixed` for the `BUILTINS`.
#[derive(Default)]
struct Env<'a> {
    names: &'a [String],
    vals: Vec<u64>,
    fixed: [u64; 3],
}

impl Env<'_> {
    fn get(&self, v: Var) -> u64 {
        match v {
            Var::Choice(i) => self.vals.get(i).copied().unwrap_or(0),
            Var::Builtin(i) => self.fixed.get(i).copied().unwrap_or(0),
        }
    }
}

fn name(names: &[String], v: Var) -> String {
    match v {
        Var::Choice(i) => names.get(i).cloned().unwrap_or_default(),
        Var::Builtin(i) => BUILTINS.get(i).copied().unwrap_or_default().to_string(),
    }
}

fn num(n: &Node, env: &Env) -> Result<R, EvalError> {
    let fail = |what: &str| {
        let src = render(n, &|v| name(env.names, v), 0);
        EvalError(format!("{what} in `{src}`"))
    };
    let r = match &n.kind {
        Kind::Num(r, _) => return Ok(*r),
        Kind::Var(v) => return Ok(R::from_integer(i128::from(env.get(*v)))),
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
fn render(n: &Node, var: &dyn Fn(Var) -> String, min: u8) -> String {
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
        Counts {
            choices,
            eligible,
            members,
        }
    }
    fn counts(yes: u64, no: u64, abstain: u64, eligible: u64, members: u64) -> Counts {
        votes(
            &[("yes", yes), ("no", no), ("abstain", abstain)],
            eligible,
            members,
        )
    }
    fn rule(src: &str) -> Rule {
        let choices = names(&["yes", "no", "abstain"]);
        Rule::parse(src, &choices).unwrap_or_else(|e| panic!("{src}: {e:?}"))
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
            assert_eq!(
                Rule::parse(src, &cs).map(|r| r.eval(&c)),
                Ok(Ok(true)),
                "{src}"
            );
        }
        let e = Rule::parse("option-a-option_b > 0", &cs).unwrap_err();
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
                Rule::parse(preset, &yn).unwrap(),
                votes(&[("yes", y), ("no", n)], e, e),
            );
            assert_eq!((r.source(), r.eval(&c)), (preset, Ok(want)));
            let expansion = PRESETS.iter().find(|p| p.0 == preset).unwrap().1;
            assert_eq!(r.expression(), expansion);
            assert_eq!(Rule::parse(expansion, &yn).unwrap().eval(&c), Ok(want));
        }
        assert_eq!(PRESETS.len(), 8);
        let for_against = names(&["for", "against"]);
        let e = Rule::parse("  consensus", &for_against).unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(
            e.message
                .starts_with("preset `consensus` means `no == 0`, which does not fit")
        );
        assert!(e.message.contains("unknown name `no`"), "{e:?}");
        assert!(Rule::parse("majority_of_members", &for_against).is_ok());
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
            let e = Rule::parse(src, &names(&["yes", "no", "abstain"])).expect_err(src);
            assert_eq!(e.offset, offset, "{src}: {e:?}");
            assert!(e.message.contains(fragment), "{src}: {e:?}");
        }
        let clash = Rule::parse("yes > no", &names(&["yes", "no", "cast"])).unwrap_err();
        assert_eq!(
            clash.message,
            "choice `cast` clashes with the built-in `cast`"
        );
        let deep = format!("{}yes > no{}", "(".repeat(40), ")".repeat(40));
        let e = Rule::parse(&deep, &names(&["yes", "no"])).unwrap_err();
        assert!(e.message.contains("nested too deeply"), "{e:?}");
        let e = Rule::parse(&format!("yes > 0{}", " + 1".repeat(300)), &[]).unwrap_err();
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
        let explain = |src: &str, c: &Counts| Rule::parse(src, &yn).unwrap().explain(c);
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
            let t = tally(with_quorum.then_some(&q), &p, &counts(y, n, 0, e, e));
            assert_eq!(t.verdict, want, "{t:?}");
            assert!(t.explanation.starts_with(want.as_str()), "{t:?}");
        }
        let t = tally(Some(&q), &p, &counts(1, 0, 0, 9, 9));
        let want = "no_quorum — quorum cast > 1/2 * eligible: 1 > 1/2 * 9 → 1 > 4 1/2 → false";
        assert_eq!(t.explanation, want);
        let t = tally(Some(&q), &p, &counts(5, 0, 0, 9, 9));
        assert!(
            t.explanation.ends_with("; pass yes > no: 5 > 0 → true"),
            "{t:?}"
        );
        // an evaluation error counts as false, and says so
        let t = tally(Some(&rule("cast / no > 1")), &p, &counts(5, 0, 0, 9, 9));
        assert_eq!(t.verdict, Verdict::NoQuorum);
        assert!(
            t.explanation
                .contains("division by zero in `cast / no` (counted as false)")
        );
        assert_eq!(
            tally(None, &rule("yes / no > 1"), &counts(5, 0, 0, 9, 9)).verdict,
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
        let r = |s: &str| Rule::parse(s, &yn).unwrap();
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
            assert_eq!(decided(q, p, &c), want, "case {i}: {}", p.source());
        }
        // three choices: C(60, 3) = 34220 final tallies, all within the rule
        assert!(decided(
            None,
            &rule("cast <= eligible"),
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
yes * yes * yes * yes * yes * yes * yes > no / (yes - yes + 1) / 3 / 7 / 11";

    #[test]
    fn odd_inputs_never_panic() {
        let choices = names(&["yes", "no", "abstain"]);
        let samples = [
            counts(0, 0, 0, 0, 0),
            counts(3, 2, 1, 9, 10),
            counts(u64::MAX, u64::MAX, 1, u64::MAX, u64::MAX),
        ];
        let mut parsed = 0;
        for src in ODD_INPUTS.split('\n') {
            let Ok(r) = Rule::parse(src, &choices) else {
                continue;
            };
            parsed += 1;
            for c in &samples {
                let t = tally(Some(&r), &r, c);
                assert_eq!(
                    t.verdict == Verdict::Adopted,
                    r.eval(c) == Ok(true),
                    "{src}"
                );
                assert!(r.explain(c).starts_with(&r.expression()), "{src}");
            }
            decided(None, &r, &counts(1, 1, 0, 6, 6));
        }
        assert_eq!(ODD_INPUTS.split('\n').count(), 50);
        assert!(parsed >= 10, "{parsed}");
    }
}
