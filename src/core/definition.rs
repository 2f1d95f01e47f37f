//! Workflow definitions: the YAML format a secretary writes, read and validated.
//!
//! `load` turns one file into a [`Workflow`] or into every [`Diagnostic`] it has, each with
//! line and column. A workflow is versioned by the hash of its source, so running items can
//! keep the version they started with. Pure: no I/O beyond the text handed in, no clock.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

use crate::roster::Roster;
use crate::rules::{Rule, Verdict, Vocabulary};
use crate::yaml::{self, Diagnostic, Diagnostics, Node, Pos};

/// One workflow file, validated.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub title: String,
    /// Hex SHA-256 of the source, first 16 digits: the version running items pin.
    pub version: String,
    pub source: String,
    pub inputs: BTreeMap<String, Input>,
    pub start: String,
    /// Opens a new item at every occurrence (5-field crontab, council time zone).
    pub schedule: Option<Schedule>,
    pub stages: BTreeMap<String, Stage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub kind: InputKind,
    pub required: bool,
    /// Used when the item is started without this input.
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Text,
    Url,
    Number,
    Date,
}

/// A stage: what happens on entry, and how the item leaves it.
#[derive(Debug, Clone, Default)]
pub struct Stage {
    pub register: Option<RegisterSpec>,
    pub notify: Vec<Notify>,
    pub ballot: Option<BallotSpec>,
    /// Wait before following `next`: a duration or the next cron occurrence.
    pub wait: Option<Wait>,
    pub next: Option<String>,
    pub outcomes: BTreeMap<Verdict, String>,
    pub on_signal: Option<OnSignal>,
    /// The item ends here with this outcome.
    pub end: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Wait {
    After(Duration),
    Schedule(Box<Schedule>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub to: Audience,
    pub template: String,
}

/// Who receives a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Every delegate of every member.
    Members,
    /// The voting delegate of each member (head, or first delegate).
    Heads,
    /// The secretariat address of the roster.
    Secretariat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterSpec {
    pub series: String,
    /// `CPCC/REG/{{year}}/{{seq:03}}`.
    pub number: String,
}

#[derive(Debug, Clone)]
pub struct BallotSpec {
    pub question: String,
    pub choices: Vec<String>,
    pub closes_after: Duration,
    pub quorum: Option<Rule>,
    pub pass: Rule,
    pub close: Close,
    pub template: String,
    pub remind: Vec<Duration>,
    pub remind_template: String,
    /// A recorded vote: who voted what is shown to the secretariat.
    pub recorded: bool,
    pub tie: Option<TieRule>,
    pub receipt_template: String,
}

/// When a ballot closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    AtDeadline,
    WhenAllVoted,
    WhenDecided,
}

#[derive(Debug, Clone)]
pub struct OnSignal {
    pub name: String,
    /// Over `count` (signals received, one per member) and `members`/`eligible`.
    pub until: Rule,
    pub next: String,
}

/// A length of time written as `90s`, `30m`, `72h`, `14d`, `2w` or combined (`1d12h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub chrono::Duration);

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "bad duration `{text}`: write a number and a unit (s, m, h, d, w), e.g. `14d` or `1d12h`"
            )
        };
        let mut total: i64 = 0;
        let mut digits = String::new();
        for c in text.trim().chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(bad()),
            };
            let n: i64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            total = n
                .checked_mul(unit)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(bad)?;
        }
        if !digits.is_empty() || total == 0 || total > 100 * 365 * 86_400 {
            return Err(bad());
        }
        Ok(Duration(chrono::Duration::seconds(total)))
    }
}

/// A 5-field crontab line: minute hour day-of-month month day-of-week (0 or 7 = Sunday,
/// Monday = 1), day-of-month OR day-of-week when both are restricted, in the council's zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub text: String,
    cron: croner::Cron,
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        use croner::parser::{CronParser, Seconds, Year};
        let fields = text.split_whitespace().count();
        if fields != 5 && !text.trim_start().starts_with('@') {
            return Err(format!(
                "bad cron `{text}`: write 5 fields (minute hour day-of-month month day-of-week), found {fields}"
            ));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(text)
            .map_err(|e| format!("bad cron `{text}`: {e}"))?;
        // A line like `0 9 30 2 *` parses but never comes.
        let reference = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        if cron.find_next_occurrence(&reference, false).is_err() {
            return Err(format!("cron `{text}` never occurs"));
        }
        Ok(Schedule {
            text: text.to_string(),
            cron,
        })
    }
}

impl Schedule {
    /// The first occurrence strictly after `after`, in zone `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// All the problems of one file.
#[derive(Debug)]
pub struct Invalid(pub Vec<Diagnostic>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// What the validator knows of the world outside the file.
pub struct Known<'a> {
    /// Template names found in the templates folder; `None` skips the check (stored versions).
    pub templates: Option<&'a BTreeSet<String>>,
    /// The roster, for weight attributes, groups and the chair; `None` skips those checks.
    pub roster: Option<&'a Roster>,
}

/// What breaks a tie (`yes == no`) once the quorum is met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TieRule {
    /// The motion fails.
    Fails,
    /// The chair's own vote decides.
    Chair(String),
    /// Drawn by lot, from the item's event chain (so it replays).
    Lot,
}

const WORKFLOW_KEYS: &[&str] = &["workflow", "title", "inputs", "start", "schedule", "stages"];
const STAGE_KEYS: &[&str] = &[
    "notify",
    "after",
    "schedule",
    "next",
    "ballot",
    "outcomes",
    "register",
    "on_signal",
    "end",
];
const BALLOT_KEYS: &[&str] = &[
    "question",
    "choices",
    "closes_after",
    "quorum",
    "pass",
    "close",
    "template",
    "remind",
    "recorded",
    "tie",
    "receipt_template",
];

/// Reads and validates one workflow file.
pub fn load(source: &str, known: &Known) -> Result<Workflow, Invalid> {
    let mut diags = Diagnostics::default();
    let root = match yaml::parse(source) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(Invalid(vec![Diagnostic {
                pos: Pos { line: 1, col: 1 },
                message: "empty workflow file".into(),
            }]));
        }
        Err(d) => return Err(Invalid(vec![d])),
    };
    let workflow = read_workflow(source, &root, known, &mut diags);
    match workflow {
        Some(w) if diags.is_empty() => Ok(w),
        _ => Err(Invalid(diags.into_sorted())),
    }
}

fn read_workflow(
    source: &str,
    root: &Node,
    known: &Known,
    d: &mut Diagnostics,
) -> Option<Workflow> {
    let f = yaml::mapping(root, "a workflow", WORKFLOW_KEYS, d)?;
    let name = f
        .require("workflow", "a workflow", d)
        .and_then(|n| yaml::string(n, "`workflow`", d));
    if let Some(n) = &name
        && (n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        let at = f.get("workflow").map_or(f.at, yaml::pos);
        d.error(
            at,
            format!("workflow name `{n}` may hold only letters, digits, `-` and `_`"),
        );
    }
    let title = match f.get("title") {
        Some(n) => yaml::string(n, "`title`", d),
        None => name.clone(),
    };
    let inputs = f
        .get("inputs")
        .map(|n| read_inputs(n, d))
        .unwrap_or_default();
    let schedule = f
        .get("schedule")
        .and_then(|n| parse_value::<Schedule>(n, "`schedule`", d));
    if schedule.is_some() && inputs.values().any(|i| i.required) {
        d.error(
            f.key_pos("schedule"),
            "a scheduled workflow opens items by itself, so it cannot have required inputs",
        );
    }
    let start_node = f.require("start", "a workflow", d);
    let start = start_node.and_then(|n| yaml::string(n, "`start`", d));
    let stages_node = f.require("stages", "a workflow", d)?;
    let stage_fields = yaml::mapping(stages_node, "`stages`", &[], d)?;
    let names: Vec<&str> = stage_fields
        .entries
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    let mut stages = BTreeMap::new();
    let mut links: Vec<(String, Vec<(String, Pos)>)> = Vec::new();
    for entry in &stage_fields.entries {
        let mut targets = Vec::new();
        if let Some(stage) = read_stage(
            entry.value,
            &entry.key,
            entry.key_pos,
            known,
            &mut targets,
            d,
        ) {
            stages.insert(entry.key.clone(), stage);
        }
        for (target, pos) in &targets {
            if !names.contains(&target.as_str()) {
                d.error(*pos, unknown_stage(target, &names));
            }
        }
        links.push((entry.key.clone(), targets));
    }
    if let (Some(start), Some(node)) = (&start, start_node) {
        if !names.contains(&start.as_str()) {
            d.error(yaml::pos(node), unknown_stage(start, &names));
        } else {
            check_reachable(start, &links, &stage_fields, d);
        }
    }
    check_instant_loops(&stages, &stage_fields, d);
    Some(Workflow {
        name: name?,
        title: title?,
        version: version_of(source),
        source: source.to_string(),
        inputs,
        start: start?,
        schedule,
        stages,
    })
}

/// The version of a workflow source: its content hash.
pub fn version_of(source: &str) -> String {
    hex::encode(&Sha256::digest(source.as_bytes())[..8])
}

fn unknown_stage(name: &str, names: &[&str]) -> String {
    let hint = yaml::did_you_mean(name, names.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    format!("stage `{name}` does not exist{hint}")
}

fn read_inputs(node: &Node, d: &mut Diagnostics) -> BTreeMap<String, Input> {
    let mut inputs = BTreeMap::new();
    let Some(f) = yaml::mapping(node, "`inputs`", &[], d) else {
        return inputs;
    };
    for e in &f.entries {
        let Some(spec) = yaml::mapping(
            e.value,
            &format!("input `{}`", e.key),
            &["type", "required", "default"],
            d,
        ) else {
            continue;
        };
        let kind = match spec.get("type").and_then(yaml::scalar).as_deref() {
            None | Some("text") => InputKind::Text,
            Some("url") => InputKind::Url,
            Some("number") => InputKind::Number,
            Some("date") => InputKind::Date,
            Some(other) => {
                d.error(
                    spec.key_pos("type"),
                    format!("unknown input type `{other}`: use text, url, number or date"),
                );
                InputKind::Text
            }
        };
        let required = spec
            .get("required")
            .and_then(|n| yaml::boolean(n, "`required`", d))
            .unwrap_or(false);
        let default = spec
            .get("default")
            .and_then(|n| yaml::string(n, "`default`", d));
        if let Some(value) = &default {
            let at = spec.key_pos("default");
            if required {
                d.error(
                    at,
                    format!(
                        "input `{}` is required, so its default would never be used",
                        e.key
                    ),
                );
            }
            let fits = match kind {
                InputKind::Text => true,
                InputKind::Url => value.starts_with("https://") || value.starts_with("http://"),
                InputKind::Number => value.parse::<f64>().is_ok_and(f64::is_finite),
                InputKind::Date => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(),
            };
            if !fits {
                d.error(
                    at,
                    format!(
                        "the default `{value}` of input `{}` does not fit its type",
                        e.key
                    ),
                );
            }
        }
        inputs.insert(
            e.key.clone(),
            Input {
                kind,
                required,
                default,
            },
        );
    }
    inputs
}

fn parse_value<T: FromStr<Err = String>>(
    node: &Node,
    what: &str,
    d: &mut Diagnostics,
) -> Option<T> {
    let text = yaml::string(node, what, d)?;
    text.parse().map_err(|e| d.error(yaml::pos(node), e)).ok()
}

fn read_stage(
    node: &Node,
    name: &str,
    at: Pos,
    known: &Known,
    targets: &mut Vec<(String, Pos)>,
    d: &mut Diagnostics,
) -> Option<Stage> {
    let what = format!("stage `{name}`");
    let f = yaml::mapping(node, &what, STAGE_KEYS, d)?;
    let mut stage = Stage::default();
    let mut target = |n: &Node, d: &mut Diagnostics| {
        let t = yaml::string(n, "a stage name", d)?;
        targets.push((t.clone(), yaml::pos(n)));
        Some(t)
    };
    if let Some(n) = f.get("notify") {
        for item in yaml::list(n, "`notify`", d) {
            stage.notify.extend(read_notify(item, known, d));
        }
    }
    if let Some(n) = f.get("register") {
        stage.register = read_register(n, d);
    }
    if let Some(n) = f.get("ballot") {
        stage.ballot = read_ballot(n, known, d);
    }
    stage.wait = match (f.get("after"), f.get("schedule")) {
        (Some(_), Some(_)) => {
            d.error(
                f.key_pos("schedule"),
                format!("{what} has both `after` and `schedule`: keep one"),
            );
            None
        }
        (Some(n), None) => parse_value(n, "`after`", d).map(Wait::After),
        (None, Some(n)) => parse_value(n, "`schedule`", d).map(|s| Wait::Schedule(Box::new(s))),
        (None, None) => None,
    };
    stage.next = f.get("next").and_then(|n| target(n, d));
    if let Some(n) = f.get("outcomes")
        && let Some(o) = yaml::mapping(n, "`outcomes`", &["adopted", "rejected", "no_quorum"], d)
    {
        for e in &o.entries {
            if let (Some(v), Some(t)) = (Verdict::parse(&e.key), target(e.value, d)) {
                stage.outcomes.insert(v, t);
            }
        }
    }
    if let Some(n) = f.get("on_signal") {
        stage.on_signal = read_on_signal(n, &mut target, d);
    }
    if let Some(n) = f.get("end") {
        stage.end = yaml::string(n, "`end`", d);
    }
    // Exactly one way out.
    let has = |key: &str| f.get(key).is_some();
    let exits = [
        has("end"),
        has("ballot"),
        has("next") && !has("on_signal"),
        has("on_signal"),
    ];
    match exits.iter().filter(|x| **x).count() {
        0 => d.error(at, format!("{what} has no way out: give it `next`, `ballot` with `outcomes`, `on_signal` or `end`")),
        1 => {}
        _ => d.error(at, format!("{what} has more than one way out: use one of `next`, `ballot`, `on_signal`, `end`")),
    }
    if has("ballot") {
        for v in Verdict::ALL {
            if !stage.outcomes.contains_key(&v) && f.get("outcomes").is_some() {
                d.error(
                    f.key_pos("outcomes"),
                    format!("`outcomes` of {what} needs `{}`", v.as_str()),
                );
            }
        }
        if f.get("outcomes").is_none() {
            d.error(
                at,
                format!("{what} has a ballot but no `outcomes` (adopted, rejected, no_quorum)"),
            );
        }
    } else if f.get("outcomes").is_some() {
        d.error(
            f.key_pos("outcomes"),
            format!("{what} has `outcomes` but no `ballot`"),
        );
    }
    if has("on_signal") && has("next") && !(has("after") || has("schedule")) {
        d.error(f.key_pos("next"), format!("{what}: beside `on_signal`, `next` is a deadline and needs `after` or `schedule`; the signal's own `next` is in `on_signal`"));
    }
    if (has("after") || has("schedule")) && !has("next") {
        d.error(at, format!("{what} waits but has no `next` stage to go to"));
    }
    Some(stage)
}

fn read_notify(node: &Node, known: &Known, d: &mut Diagnostics) -> Option<Notify> {
    let f = yaml::mapping(node, "`notify`", &["to", "template"], d)?;
    let to = match f.get("to").and_then(yaml::scalar).as_deref() {
        None | Some("members") => Audience::Members,
        Some("heads") => Audience::Heads,
        Some("secretariat") => Audience::Secretariat,
        Some(other) => {
            d.error(
                f.key_pos("to"),
                format!("unknown audience `{other}`: use members, heads or secretariat"),
            );
            return None;
        }
    };
    let node = f.require("template", "`notify`", d)?;
    let template = check_template(node, known, d)?;
    Some(Notify { to, template })
}

fn check_template(node: &Node, known: &Known, d: &mut Diagnostics) -> Option<String> {
    let name = yaml::string(node, "a template name", d)?;
    template_exists(&name, yaml::pos(node), known, d);
    Some(name)
}

fn template_exists(name: &str, pos: Pos, known: &Known, d: &mut Diagnostics) {
    if let Some(templates) = known.templates
        && !templates.contains(name)
    {
        let hint = yaml::did_you_mean(name, templates.iter().map(String::as_str))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        d.error(
            pos,
            format!("template `{name}` does not exist in the templates folder{hint}"),
        );
    }
}

fn read_register(node: &Node, d: &mut Diagnostics) -> Option<RegisterSpec> {
    let f = yaml::mapping(node, "`register`", &["series", "number"], d)?;
    let series = f
        .require("series", "`register`", d)
        .and_then(|n| yaml::string(n, "`series`", d));
    let number_node = f.require("number", "`register`", d)?;
    let number = yaml::string(number_node, "`number`", d)?;
    if let Err(e) = format_number(&number, 2026, 1) {
        d.error(yaml::pos(number_node), e);
    }
    Some(RegisterSpec {
        series: series?,
        number,
    })
}

fn read_ballot(node: &Node, known: &Known, d: &mut Diagnostics) -> Option<BallotSpec> {
    let f = yaml::mapping(node, "`ballot`", BALLOT_KEYS, d)?;
    let question = f
        .require("question", "`ballot`", d)
        .and_then(|n| yaml::string(n, "`question`", d));
    let choices: Vec<String> = match f.get("choices") {
        Some(n) => yaml::list(n, "`choices`", d)
            .into_iter()
            .filter_map(|c| yaml::string(c, "a choice", d))
            .collect(),
        None => vec!["yes".into(), "no".into(), "abstain".into()],
    };
    if choices.is_empty() {
        d.error(f.key_pos("choices"), "a ballot needs at least one choice");
    }
    let mut seen = BTreeSet::new();
    for c in &choices {
        let ok = !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
        if !ok
            || !seen.insert(c)
            || ["cast", "eligible", "members", "and", "or", "not"].contains(&c.as_str())
        {
            d.error(f.key_pos("choices"), format!("choice `{c}` must be a unique word of letters, digits, `_` or `-`, and not a rule keyword"));
        }
    }
    let closes_after = f
        .require("closes_after", "`ballot`", d)
        .and_then(|n| parse_value::<Duration>(n, "`closes_after`", d));
    let (attributes, groups): (BTreeSet<String>, BTreeSet<String>) = match known.roster {
        Some(r) => (
            r.members
                .iter()
                .flat_map(|m| m.attributes.keys().cloned())
                .collect(),
            r.members
                .iter()
                .flat_map(|m| m.groups.iter().cloned())
                .collect(),
        ),
        None => Default::default(),
    };
    let vocabulary = Vocabulary {
        choices: &choices,
        attributes: known.roster.map(|_| &attributes),
        groups: known.roster.map(|_| &groups),
    };
    let quorum = f.get("quorum").and_then(|n| read_rule(n, &vocabulary, d));
    let pass = f
        .require("pass", "`ballot`", d)
        .and_then(|n| read_rule(n, &vocabulary, d));
    let tie = f.get("tie").and_then(|n| read_tie(n, known, d));
    let receipt_template = match f.get("receipt_template") {
        Some(n) => check_template(n, known, d)?,
        None => {
            template_exists("vote-receipt", f.at, known, d);
            "vote-receipt".to_string()
        }
    };
    let close = match f.get("close").and_then(yaml::scalar).as_deref() {
        None | Some("at_deadline") => Close::AtDeadline,
        Some("when_all_voted") => Close::WhenAllVoted,
        Some("when_decided") => Close::WhenDecided,
        Some(other) => {
            d.error(
                f.get("close").map_or(f.at, yaml::pos),
                format!(
                    "unknown `close` `{other}`: use at_deadline, when_all_voted or when_decided"
                ),
            );
            Close::AtDeadline
        }
    };
    let template = match f.get("template") {
        Some(n) => check_template(n, known, d)?,
        None => {
            template_exists("ballot", f.at, known, d);
            "ballot".to_string()
        }
    };
    let mut remind = Vec::new();
    let mut remind_template = "ballot-reminder".to_string();
    if let Some(n) = f.get("remind") {
        if let Some(r) = yaml::mapping(n, "`remind`", &["before_close", "template"], d) {
            if let Some(list) = r.get("before_close") {
                remind = yaml::list(list, "`before_close`", d)
                    .into_iter()
                    .filter_map(|x| parse_value(x, "a reminder", d))
                    .collect();
            }
            match r.get("template") {
                Some(t) => remind_template = check_template(t, known, d)?,
                None => template_exists(&remind_template, r.at, known, d),
            }
        }
        if let Some(close) = closes_after
            && remind.iter().any(|r| *r >= close)
        {
            d.error(
                f.key_pos("remind"),
                "a reminder must come before the ballot closes",
            );
        }
    }
    let recorded = f
        .get("recorded")
        .map_or(Some(false), |n| yaml::boolean(n, "`recorded`", d));
    Some(BallotSpec {
        question: question?,
        choices,
        closes_after: closes_after?,
        quorum,
        pass: pass?,
        close,
        template,
        remind,
        remind_template,
        recorded: recorded?,
        tie,
        receipt_template,
    })
}

/// `tie: fails`, `tie: lot` or `tie: { chair: MEMBER }`.
fn read_tie(node: &Node, known: &Known, d: &mut Diagnostics) -> Option<TieRule> {
    if let Some(word) = yaml::scalar(node) {
        return match word.as_str() {
            "fails" => Some(TieRule::Fails),
            "lot" => Some(TieRule::Lot),
            _ => {
                d.error(
                    yaml::pos(node),
                    format!("unknown tie rule `{word}`: use fails, lot or {{ chair: MEMBER }}"),
                );
                None
            }
        };
    }
    let f = yaml::mapping(node, "`tie`", &["chair"], d)?;
    let member_node = f.require("chair", "`tie`", d)?;
    let member = yaml::string(member_node, "`chair`", d)?;
    if let Some(roster) = known.roster
        && roster.member(&member).is_none()
    {
        let hint = yaml::did_you_mean(&member, roster.members.iter().map(|m| m.id.as_str()))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        d.error(
            yaml::pos(member_node),
            format!("the roster has no member `{member}`{hint}"),
        );
    }
    Some(TieRule::Chair(member))
}

/// A rule, with errors placed at their column inside the quoted or plain scalar.
fn read_rule(node: &Node, vocabulary: &Vocabulary, d: &mut Diagnostics) -> Option<Rule> {
    let text = yaml::string(node, "a rule", d)?;
    Rule::parse(&text, vocabulary)
        .map_err(|e| {
            let mut at = yaml::pos(node);
            let quoted = node.span.len() > text.chars().count();
            at.col += e.offset + usize::from(quoted);
            d.error(at, format!("in rule `{text}`: {}", e.message));
        })
        .ok()
}

fn read_on_signal(
    node: &Node,
    target: &mut impl FnMut(&Node, &mut Diagnostics) -> Option<String>,
    d: &mut Diagnostics,
) -> Option<OnSignal> {
    let f = yaml::mapping(node, "`on_signal`", &["name", "until", "next"], d)?;
    let name = f
        .require("name", "`on_signal`", d)
        .and_then(|n| yaml::string(n, "`name`", d));
    let until = match f.get("until") {
        Some(n) => read_rule(n, &Vocabulary::new(&["count".to_string()]), d),
        None => Rule::parse("count >= 1", &Vocabulary::new(&["count".to_string()])).ok(),
    };
    let next = f
        .require("next", "`on_signal`", d)
        .and_then(|n| target(n, d));
    Some(OnSignal {
        name: name?,
        until: until?,
        next: next?,
    })
}

fn check_reachable(
    start: &str,
    links: &[(String, Vec<(String, Pos)>)],
    stages: &yaml::Fields,
    d: &mut Diagnostics,
) {
    let mut seen = BTreeSet::from([start.to_string()]);
    let mut queue = VecDeque::from([start.to_string()]);
    while let Some(s) = queue.pop_front() {
        for (t, _) in links.iter().filter(|(n, _)| *n == s).flat_map(|(_, t)| t) {
            if seen.insert(t.clone()) {
                queue.push_back(t.clone());
            }
        }
    }
    for (name, _) in links {
        if !seen.contains(name) {
            d.error(
                stages.key_pos(name),
                format!("stage `{name}` is unreachable from `{start}`"),
            );
        }
    }
}

/// A cycle of stages that move on at once (no wait, ballot or signal) would never stop.
fn check_instant_loops(
    stages: &BTreeMap<String, Stage>,
    fields: &yaml::Fields,
    d: &mut Diagnostics,
) {
    for start in stages.keys() {
        let mut at = start.as_str();
        for _ in 0..=stages.len() {
            let Some(stage) = stages.get(at) else { break };
            let instant =
                stage.wait.is_none() && stage.ballot.is_none() && stage.on_signal.is_none();
            match (&stage.next, instant) {
                (Some(next), true) => at = next,
                _ => break,
            }
            if at == start {
                d.error(
                    fields.key_pos(start),
                    format!("stage `{start}` loops back to itself without waiting"),
                );
                break;
            }
        }
    }
}

/// The workflows the daemon knows: the current version of each, and older versions that
/// running items still pin.
#[derive(Debug, Default, Clone)]
pub struct Definitions {
    versions: std::collections::HashMap<String, std::sync::Arc<Workflow>>,
    current: BTreeMap<String, String>,
}

impl Definitions {
    /// Adds a workflow as the current version of its name.
    pub fn insert_current(&mut self, w: Workflow) {
        self.current.insert(w.name.clone(), w.version.clone());
        self.versions
            .insert(w.version.clone(), std::sync::Arc::new(w));
    }

    /// A new set where `workflows` are the current versions; every version known so far
    /// stays, for the items that run on it.
    pub fn with_current(&self, workflows: Vec<Workflow>) -> Definitions {
        let mut next = Definitions {
            versions: self.versions.clone(),
            current: BTreeMap::new(),
        };
        for w in workflows {
            next.insert_current(w);
        }
        next
    }

    /// Adds an older version, kept for the items that started on it.
    pub fn insert_old(&mut self, w: Workflow) {
        self.versions
            .entry(w.version.clone())
            .or_insert_with(|| std::sync::Arc::new(w));
    }

    pub fn current(&self, name: &str) -> Option<&std::sync::Arc<Workflow>> {
        self.versions.get(self.current.get(name)?)
    }

    pub fn version(&self, version: &str) -> Option<&std::sync::Arc<Workflow>> {
        self.versions.get(version)
    }

    pub fn all_current(&self) -> impl Iterator<Item = &std::sync::Arc<Workflow>> {
        self.current.values().filter_map(|v| self.versions.get(v))
    }

    pub fn is_current(&self, version: &str) -> bool {
        self.current.values().any(|v| v == version)
    }
}

/// Formats a register number: `{{year}}`, `{{seq}}` and `{{seq:03}}` (zero-padded).
pub fn format_number(pattern: &str, year: i32, seq: u64) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in number `{pattern}`"))?;
        let field = after[..close].trim();
        match field.split_once(':') {
            None if field == "year" => out.push_str(&year.to_string()),
            None if field == "seq" => out.push_str(&seq.to_string()),
            Some(("seq", width)) if width.starts_with('0') && width.len() <= 3 => {
                let w: usize = width
                    .parse()
                    .map_err(|_| format!("bad width `{width}` in number `{pattern}`"))?;
                out.push_str(&format!("{seq:0w$}"));
            }
            _ => {
                return Err(format!(
                    "unknown field `{field}` in number `{pattern}`: use {{{{year}}}}, {{{{seq}}}} or {{{{seq:03}}}}"
                ));
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    let has_seq = pattern
        .split("{{")
        .skip(1)
        .any(|f| f.trim_start().starts_with("seq"));
    if !has_seq {
        return Err(format!(
            "number `{pattern}` needs {{{{seq}}}} so that each act gets its own number"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = |t: &str| t.parse::<Duration>().map(|d| d.0.num_seconds());
        assert_eq!(s("90s"), Ok(90));
        assert_eq!(s("14d"), Ok(14 * 86_400));
        assert_eq!(s("1d12h"), Ok(36 * 3_600));
        assert_eq!(s("2w"), Ok(14 * 86_400));
        for bad in ["", "14", "d", "3y", "0s", "-1d", "99999999999999999999d"] {
            assert!(s(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_is_crontab() {
        use chrono::TimeZone;
        let tz: Tz = "Europe/Istanbul".parse().unwrap();
        // Monday = 1: 2026-11-30 is a Monday.
        let s: Schedule = "0 9 * * 1".parse().unwrap();
        let from = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
        let next = s.next_after(from, tz).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap());
        // Day-of-month OR day-of-week: the 13th or any Friday, whichever comes first.
        let s: Schedule = "0 9 13 * 5".parse().unwrap();
        let next = s.next_after(from, tz).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 27, 6, 0, 0).unwrap());
        assert!(
            "0 0 9 * * 1".parse::<Schedule>().is_err(),
            "6 fields are refused"
        );
        assert!("61 * * * *".parse::<Schedule>().is_err());
        assert!(
            "0 9 30 2 *".parse::<Schedule>().is_err(),
            "30 February never comes"
        );
    }

    #[test]
    fn cron_keeps_daylight_saving_sane() {
        use chrono::TimeZone;
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let s: Schedule = "30 2 * * *".parse().unwrap();
        // Spring forward (02:30 does not exist on 2026-03-29): one run that day, not none.
        let from = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let first = s.next_after(from, tz).unwrap();
        assert_eq!(
            first.with_timezone(&tz).format("%F").to_string(),
            "2026-03-29"
        );
        // Fall back (02:30 happens twice on 2026-10-25): one run that day, not two.
        let from = Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        let first = s.next_after(from, tz).unwrap();
        let second = s.next_after(first, tz).unwrap();
        assert_eq!(
            first.with_timezone(&tz).format("%F").to_string(),
            "2026-10-25"
        );
        assert_eq!(
            second.with_timezone(&tz).format("%F").to_string(),
            "2026-10-26"
        );
    }
}
