//! Reading YAML with positions: the shared walker behind workflow files and the roster.
//!
//! Files a secretary edits are read into a tree of nodes that remember their line and
//! column, so that every error can point at the place to fix. This module never panics on
//! input and reports problems as [`Diagnostic`]s instead of stopping at the first one.

use std::collections::HashMap;
use std::fmt;

use saphyr::{MarkedYamlOwned, Marker, ScalarOwned, YamlDataOwned, YamlLoader};
use saphyr_parser::{Event, Parser, Span, SpannedEventReceiver};

/// A YAML node with its position.
pub type Node = MarkedYamlOwned;

/// A place in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One problem found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.col, self.message)
    }
}

/// Collects diagnostics while a file is walked: errors, which refuse the file, and
/// warnings, which do not.
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            pos,
            message: message.into(),
        });
    }

    pub fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            pos,
            message: message.into(),
        });
    }

    /// Whether there is no error (warnings aside).
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The errors in file order.
    pub fn into_sorted(self) -> Vec<Diagnostic> {
        sorted(self.errors)
    }
}

/// Diagnostics in file order, each once.
pub fn sorted(mut list: Vec<Diagnostic>) -> Vec<Diagnostic> {
    list.sort_by_key(|d| d.pos);
    list.dedup();
    list
}

/// Nesting deeper than any real file: a deeper document is refused while it is read, so
/// that nothing recursive (building, walking, dropping the tree) ever sees it.
pub const MAX_DEPTH: usize = 64;

/// Parses one YAML document. An empty file is an empty mapping's absence: `Ok(None)`.
///
/// The event stream is checked before the tree is built, so a hostile file is refused at
/// its first offending event: aliases and anchors (an alias bomb expands exponentially),
/// nesting past [`MAX_DEPTH`], a key given twice in one mapping (YAML would keep the last
/// silently) and a second document (which would be ignored). A UTF-8 byte-order mark, as
/// some editors write, is skipped.
pub fn parse(source: &str) -> Result<Option<Node>, Diagnostic> {
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    let mut loader = YamlLoader::<Node>::default();
    let mut guard = Guard::default();
    // The parser's iterator is a state machine; its `load` recurses once per level.
    for next in Parser::new_from_str(source) {
        let (event, span) =
            next.map_err(|e| syntax_error(source, marker_pos(e.marker()), e.info()))?;
        guard.check(&event, span)?;
        loader.on_event(event, span);
    }
    Ok(loader.into_documents().into_iter().next())
}

/// The scanner's error, said where the mistake is when the scanner only notices it later:
/// a quote never closed is reported by the scanner lines further down, as "invalid
/// indentation in quoted scalar" or an end of stream.
fn syntax_error(source: &str, pos: Pos, info: &str) -> Diagnostic {
    if info.contains("quoted scalar")
        && let Some(open) = unclosed_quote(source, pos.line)
    {
        return Diagnostic {
            pos: open,
            message: "YAML syntax: this quote is never closed (or a line inside the quoted text is not indented)".into(),
        };
    }
    Diagnostic {
        pos,
        message: format!("YAML syntax: {info}"),
    }
}

/// The last quote opened and not closed on its own line, up to line `upto`: where a
/// quoted text most likely begins that does not end. Comments and the other kind of
/// quote inside a quoted text are skipped; `''` and `\"` are a quote within the text.
fn unclosed_quote(source: &str, upto: usize) -> Option<Pos> {
    let mut found = None;
    for (n, line) in source.lines().take(upto).enumerate() {
        let mut open: Option<(char, usize)> = None;
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match open {
                None if c == '#' && (i == 0 || chars[i - 1].is_whitespace()) => break,
                // A quote opens a quoted text only where a value starts (after `: `, `- `,
                // `[`, `{`, `,` or the indentation): `note: it's fine` has none.
                None if (c == '"' || c == '\'')
                    && chars[..i]
                        .iter()
                        .rev()
                        .find(|c| !c.is_whitespace())
                        .is_none_or(|p| matches!(p, ':' | '-' | '[' | '{' | ',')) =>
                {
                    open = Some((c, i))
                }
                Some(('"', _)) if c == '\\' => i += 1,
                Some(('\'', _)) if c == '\'' && chars.get(i + 1) == Some(&'\'') => i += 1,
                Some((q, _)) if c == q => open = None,
                _ => {}
            }
            i += 1;
        }
        if let Some((_, col)) = open {
            found = Some(Pos {
                line: n + 1,
                col: col + 1,
            });
        }
    }
    found
}

fn marker_pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// What [`parse`] refuses, checked event by event.
#[derive(Default)]
struct Guard {
    documents: usize,
    open: Vec<Open>,
    /// The last real position: block collections start with a mark of line 0.
    last: Pos,
}

/// A collection being read.
enum Open {
    Sequence,
    /// Its keys so far, with where each was first given.
    Mapping {
        keys: HashMap<String, Pos>,
        next_is_key: bool,
    },
}

impl Guard {
    fn check(&mut self, event: &Event, span: Span) -> Result<(), Diagnostic> {
        let at = match marker_pos(&span.start) {
            Pos { line: 0, .. } => self.last,
            p => p,
        };
        self.last = at;
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(refusal(
                        at,
                        "a second YAML document starts here; a file holds one",
                    ));
                }
            }
            Event::Alias(_) => return Err(refusal(at, ALIASES)),
            Event::Scalar(text, _, anchor, _) => {
                refuse_anchor(*anchor, at)?;
                self.node(Some(text), at)?;
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                refuse_anchor(*anchor, at)?;
                self.node(None, at)?;
                if self.open.len() >= MAX_DEPTH {
                    return Err(refusal(
                        at,
                        format!("nested more than {MAX_DEPTH} levels deep"),
                    ));
                }
                self.open.push(match event {
                    Event::SequenceStart(..) => Open::Sequence,
                    _ => Open::Mapping {
                        keys: HashMap::new(),
                        next_is_key: true,
                    },
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.open.pop();
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    /// A node starts: a mapping's key or value, or a sequence's item. A key's text is
    /// checked against the mapping's earlier keys.
    fn node(&mut self, text: Option<&str>, at: Pos) -> Result<(), Diagnostic> {
        let Some(Open::Mapping { keys, next_is_key }) = self.open.last_mut() else {
            return Ok(());
        };
        let is_key = std::mem::replace(next_is_key, !*next_is_key);
        let Some(key) = text.filter(|_| is_key) else {
            return Ok(());
        };
        if let Some(first) = keys.get(key) {
            let message = format!(
                "key `{key}` is given twice in this mapping (first at {}:{})",
                first.line, first.col
            );
            return Err(refusal(at, message));
        }
        keys.insert(key.to_string(), at);
        Ok(())
    }
}

const ALIASES: &str = "aliases and anchors are not allowed";

fn refuse_anchor(anchor: usize, at: Pos) -> Result<(), Diagnostic> {
    match anchor {
        0 => Ok(()),
        _ => Err(refusal(at, ALIASES)),
    }
}

fn refusal(pos: Pos, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        pos,
        message: message.into(),
    }
}

/// Where a node starts.
pub fn pos(node: &Node) -> Pos {
    Pos {
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

pub fn is_mapping(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Mapping(_))
}

/// The text of a scalar node (numbers and booleans in their written form), or `None`.
pub fn scalar(node: &Node) -> Option<String> {
    match &node.data {
        YamlDataOwned::Value(s) => Some(match s {
            ScalarOwned::String(s) => s.clone(),
            ScalarOwned::Integer(i) => i.to_string(),
            ScalarOwned::FloatingPoint(f) => f.to_string(),
            ScalarOwned::Boolean(b) => b.to_string(),
            ScalarOwned::Null => return None,
        }),
        YamlDataOwned::Representation(s, ..) => Some(s.clone()),
        _ => None,
    }
}

/// Whether the node is an explicit or implicit null (`key:` with nothing after it).
pub fn is_null(node: &Node) -> bool {
    matches!(node.data, YamlDataOwned::Value(ScalarOwned::Null))
}

/// A scalar as a string, or an error at the node.
pub fn string(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<String> {
    let text = scalar(node);
    if text.is_none() {
        diags.error(pos(node), format!("{what} must be a text value"));
    }
    text
}

/// A boolean scalar, or an error at the node.
pub fn boolean(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<bool> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Boolean(b)) => Some(*b),
        _ => {
            diags.error(pos(node), format!("{what} must be true or false"));
            None
        }
    }
}

/// A non-negative integer scalar, or an error at the node.
pub fn integer(node: &Node, what: &str, diags: &mut Diagnostics) -> Option<u64> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Integer(i)) if *i >= 0 => Some(*i as u64),
        _ => {
            diags.error(
                pos(node),
                format!("{what} must be a whole number, 0 or more"),
            );
            None
        }
    }
}

/// The items of a sequence; a single scalar counts as a sequence of one.
pub fn list<'a>(node: &'a Node, what: &str, diags: &mut Diagnostics) -> Vec<&'a Node> {
    match &node.data {
        YamlDataOwned::Sequence(items) => items.iter().collect(),
        YamlDataOwned::Value(_) | YamlDataOwned::Mapping(_) if !is_null(node) => vec![node],
        _ => {
            diags.error(pos(node), format!("{what} must be a list"));
            Vec::new()
        }
    }
}

/// A mapping's entries with string keys, checked against the keys it may have.
///
/// Unknown keys are reported (with a "did you mean" hint) and left out.
pub fn mapping<'a>(
    node: &'a Node,
    what: &str,
    allowed: &[&str],
    diags: &mut Diagnostics,
) -> Option<Fields<'a>> {
    let YamlDataOwned::Mapping(map) = &node.data else {
        diags.error(
            pos(node),
            format!("{what} must be a mapping of keys to values"),
        );
        return None;
    };
    let mut entries = Vec::with_capacity(map.len());
    for (key, value) in map {
        let Some(name) = scalar(key) else {
            diags.error(pos(key), format!("keys in {what} must be text"));
            continue;
        };
        if !allowed.is_empty() && !allowed.contains(&name.as_str()) {
            let hint = did_you_mean(&name, allowed.iter().copied())
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            diags.error(pos(key), format!("unknown key `{name}` in {what}{hint}"));
            continue;
        }
        entries.push(Entry {
            key: name,
            key_pos: pos(key),
            value,
        });
    }
    // Block mappings carry no start mark of their own: use their first key.
    let at = match pos(node) {
        Pos { line: 0, .. } => entries
            .first()
            .map_or(Pos { line: 1, col: 1 }, |e| e.key_pos),
        p => p,
    };
    Some(Fields { entries, at })
}

/// One key and its value.
pub struct Entry<'a> {
    pub key: String,
    pub key_pos: Pos,
    pub value: &'a Node,
}

/// The entries of a mapping.
pub struct Fields<'a> {
    pub entries: Vec<Entry<'a>>,
    /// Where the mapping starts, for "missing key" errors.
    pub at: Pos,
}

impl<'a> Fields<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.value)
    }

    pub fn key_pos(&self, key: &str) -> Pos {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map_or(self.at, |e| e.key_pos)
    }

    /// A required key's value, or an error at the mapping.
    pub fn require(&self, key: &str, what: &str, diags: &mut Diagnostics) -> Option<&'a Node> {
        let value = self.get(key);
        if value.is_none() {
            diags.error(self.at, format!("{what} needs `{key}`"));
        }
        value
    }
}

/// The closest candidate within edit distance 2, for hints.
pub fn did_you_mean<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// All the problems of one file.
#[derive(Debug)]
pub struct Invalid(pub Vec<Diagnostic>);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let node = parse("a: 1\nbb:\n  c: x\n").unwrap().unwrap();
        let mut diags = Diagnostics::default();
        let fields = mapping(&node, "file", &["a"], &mut diags).unwrap();
        assert_eq!(fields.entries.len(), 1);
        assert_eq!(diags.errors[0].pos, Pos { line: 2, col: 1 });
        assert_eq!(fields.key_pos("a"), Pos { line: 1, col: 1 });
        let err = parse("a: [1, 2\n").unwrap_err();
        assert!(err.message.starts_with("YAML syntax"), "{err}");
    }

    #[test]
    fn an_unclosed_quote_is_reported_where_it_opens() {
        let text = "# a \"comment\n\ntitle: \"Quick ballot\nstart: vote\nstages:\n  vote: {}\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 8 }, "{err}");
        assert!(err.message.contains("this quote is never closed"), "{err}");
        // Quotes closed on their line, escaped or doubled, are not it.
        let text = "a: 'it''s'\nn: it's plain\nb: \"say \\\"x\\\"\"\nc: 'open\nd: x\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.pos, Pos { line: 4, col: 4 }, "{err}");
    }

    #[test]
    fn hints_close_names() {
        assert_eq!(
            did_you_mean("adpot", ["adopt", "rejected"].into_iter()),
            Some("adopt")
        );
        assert_eq!(did_you_mean("zzzzzz", ["adopt"].into_iter()), None);
    }

    fn refused(source: &str) -> Diagnostic {
        parse(source).expect_err("the file should be refused")
    }

    #[test]
    fn aliases_and_anchors_are_refused_before_expansion() {
        // Ten aliases a level: 10^n nodes if expanded (kept small, for the code before).
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ["a", "b", "c", "d"].iter().zip(["b", "c", "d", "e"]) {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let err = refused(&bomb);
        assert_eq!(err.pos, Pos { line: 1, col: 7 }, "{err}");
        assert_eq!(err.message, "aliases and anchors are not allowed");
        let err = refused("a: x\nb: &x\n  c: 1\n");
        assert_eq!(err.message, "aliases and anchors are not allowed", "{err}");
        // The anchored node's place (the anchor token has none of its own).
        assert_eq!(err.pos, Pos { line: 3, col: 3 }, "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_while_reading() {
        let block: String = (0..20_000)
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect();
        let err = refused(&block);
        assert!(err.message.contains("nested more than 64 levels"), "{err}");
        assert_eq!(err.pos.line, MAX_DEPTH + 1, "{err}");
        let flow = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let err = refused(&flow);
        assert!(err.message.contains("nested more than 64"), "{err}");
        assert_eq!(err.pos, Pos { line: 1, col: 65 }, "{err}");
        // The scanner has a limit of its own on unclosed flow collections.
        assert!(parse(&"[".repeat(100_000)).is_err());
        let mapping: String = (0..5_000)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        assert!(refused(&mapping).message.contains("nested more than 64"));
        // Up to the limit is fine.
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn a_key_given_twice_is_refused_with_both_places() {
        let err = refused("id: A\nvoting_right: true\nname: x\nvoting_right: false\n");
        assert_eq!(err.pos, Pos { line: 4, col: 1 });
        assert_eq!(
            err.message,
            "key `voting_right` is given twice in this mapping (first at 2:1)"
        );
        let err = refused("a: {b: 1, b: 2}\n");
        assert!(err.message.contains("(first at 1:5)"), "{err}");
        // The same key in two mappings is fine.
        assert!(parse("x:\n  - a: 1\n  - a: 2\ny: {a: 1}\n").is_ok());
    }

    #[test]
    fn one_document_per_file() {
        let err = refused("a: 1\n---\nb: 2\n");
        assert_eq!(err.pos, Pos { line: 2, col: 1 });
        assert!(err.message.contains("second YAML document"), "{err}");
        assert!(parse("---\na: 1\n...\n").is_ok());
        assert!(parse("").is_ok_and(|n| n.is_none()));
        assert!(parse("# only a comment\n").is_ok_and(|n| n.is_none()));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let node = parse("\u{feff}a: 1\nb: 2\n").unwrap().unwrap();
        let mut diags = Diagnostics::default();
        let fields = mapping(&node, "file", &["a", "b"], &mut diags).unwrap();
        assert!(diags.is_empty());
        assert_eq!(fields.key_pos("a"), Pos { line: 1, col: 1 });
    }
}
