//! Evaluating a parsed rule over the counts, exactly, and explaining the result.

use super::*;

/// Values for one evaluation: `vals[i]` for the rule's term `i`.
#[derive(Default)]
pub(super) struct Env<'a> {
    pub(super) terms: &'a [Term],
    pub(super) vals: Vec<u128>,
}

impl Env<'_> {
    fn get(&self, i: usize) -> u128 {
        self.vals.get(i).copied().unwrap_or(0)
    }
}

pub(super) fn term_name(terms: &[Term], i: usize) -> String {
    terms.get(i).map(Term::to_string).unwrap_or_default()
}

pub(super) fn num(n: &Node, env: &Env) -> Result<R, EvalError> {
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

pub(super) fn compare(op: &str, x: R, y: R) -> bool {
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
pub(super) fn truth(n: &Node, env: &Env) -> Result<bool, EvalError> {
    match &n.kind {
        Kind::Not(x) => Ok(!truth(x, env)?),
        Kind::Bin("and", a, b) => Ok(truth(a, env)? && truth(b, env)?),
        Kind::Bin("or", a, b) => Ok(truth(a, env)? || truth(b, env)?),
        Kind::Bin(op, a, b) => Ok(compare(op, num(a, env)?, num(b, env)?)),
        _ => Err(EvalError("a number used as a condition".into())),
    }
}

/// Renders `n` with minimal parentheses; `min` is the binding strength its context requires.
pub(super) fn render(n: &Node, var: &dyn Fn(usize) -> String, min: u8) -> String {
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
pub(super) fn fmt_ratio(r: R) -> String {
    let (n, d) = (*r.numer(), *r.denom());
    match (n / d, (n % d).abs()) {
        (w, 0) => w.to_string(),
        (0, _) => format!("{n}/{d}"),
        (w, rem) => format!("{w} {rem}/{d}"),
    }
}

pub(super) fn show(r: &Result<bool, EvalError>) -> String {
    match r {
        Ok(b) => b.to_string(),
        Err(e) => format!("error: {e} (counted as false)"),
    }
}

/// The explanation of a condition and its value (with the same semantics as `truth`).
pub(super) fn explain_node(n: &Node, env: &Env) -> (String, Result<bool, EvalError>) {
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
