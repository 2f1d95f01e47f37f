//! Reading a rule: lexing, parsing with precedence, names checked against the
//! vocabulary, and types checked (a rule is a condition, arithmetic needs numbers).

use super::*;

pub(super) fn err(offset: usize, message: impl Into<String>) -> RuleError {
    let message = message.into();
    RuleError { offset, message }
}

pub(super) fn clash(offset: usize, c: &str) -> RuleError {
    let msg = format!("choice `{c}` clashes with the built-in `{c}`");
    err(offset, msg)
}

pub(super) fn node(kind: Kind, start: usize, at: usize) -> Node {
    Node { kind, start, at }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Num(R, String),
    Ident(String),
    Op(&'static str), // and or not == != < <= > >= + - * /
    Sym(char),        // ( ) , :
    End,
}

pub(super) const OPS: [&str; 13] = [
    "and", "or", "not", "==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/",
];

pub(super) fn lex(src: &str) -> Result<Vec<(Tok, usize)>, RuleError> {
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
        } else if c.is_alphabetic() || c == '_' {
            // Any letters: a choice may be `öztürk` or `نعم`.
            while is(i, |c| c.is_alphanumeric() || c == '_' || c == '-') {
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

pub(super) fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(_, s) | Tok::Ident(s) => format!("`{s}`"),
        Tok::Op(s) => format!("`{s}`"),
        Tok::Sym(c) => format!("`{c}`"),
        Tok::End => "the end of the rule".into(),
    }
}

/// Binding strength: 1 `or`, 2 `and`, 3 `not`, 4 comparisons, 5 `+ -`, 6 `* /`, 7 unary `-`.
pub(super) fn prec(op: &str) -> u8 {
    match op {
        "or" => 1,
        "and" => 2,
        "not" => 3,
        "+" | "-" => 5,
        "*" | "/" => 6,
        _ => 4,
    }
}

pub(super) fn is_cmp(n: &Node) -> bool {
    matches!(n.kind, Kind::Bin(op, ..) if prec(op) == 4)
}

pub(super) struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    vocab: Vocabulary<'a>,
    terms: Vec<Term>,
    suggest_presets: bool,
    depth: usize,
}

/// One argument of a call: its label (`group` in `group: permanent`), its value, and the
/// offsets of its start and of its value.
pub(super) type Arg = (Option<String>, String, usize, usize);

pub(super) fn parse_expr(
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
pub(super) fn closest<'c>(
    w: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance(w, c), c))
        .min_by_key(|p| p.0);
    best.filter(|p| p.0 <= 2).map(|p| p.1)
}

/// Ok when `names` is None (not checked) or holds `w`; else `{missing} `w`` with a hint.
pub(super) fn known(
    w: &str,
    at: usize,
    names: Option<Vec<&str>>,
    missing: &str,
) -> Result<(), RuleError> {
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

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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

pub(super) fn has_vars(n: &Node) -> bool {
    match &n.kind {
        Kind::Num(..) => false,
        Kind::Var(_) => true,
        Kind::Neg(x) | Kind::Not(x) => has_vars(x),
        Kind::Bin(_, a, b) => has_vars(a) || has_vars(b),
    }
}

/// Type-checks `n` and rejects constant mistakes; returns whether `n` is a condition.
pub(super) fn check(n: &Node, terms: &[Term]) -> Result<bool, RuleError> {
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
