//! Reading a workflow file's nodes into a [`Workflow`], every problem reported at its
//! line and column.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use super::graph::{check_instant_loops, check_reachable};
use super::*;
use crate::rules::election::{BLANK, Base, Majority, Then};
use crate::rules::{Rule, Vocabulary};
use crate::yaml::{self, Diagnostics, Node, Pos};

pub(super) const WORKFLOW_KEYS: &[&str] = &[
    "workflow",
    "title",
    "inputs",
    "start",
    "schedule",
    "documents",
    "stages",
];
pub(super) const STAGE_KEYS: &[&str] = &[
    "notify",
    "after",
    "schedule",
    "next",
    "ballot",
    "outcomes",
    "register",
    "on_signal",
    "end",
    "meeting",
    "proposals",
    "amendments",
    "election",
    "nominations",
];
pub(super) const BALLOT_KEYS: &[&str] = &[
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
    "in_session",
];
pub(super) const ELECTION_KEYS: &[&str] = &[
    "question",
    "seats",
    "majority",
    "of",
    "rounds",
    "runoff",
    "last_round",
    "tie",
    "blank",
    "secret",
    "trustees",
    "closes_after",
    "quorum",
    "close",
    "template",
    "remind",
    "receipt_template",
];

pub(super) fn read_workflow(
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
    let documents = f
        .get("documents")
        .and_then(|n| read_documents(n, &stages, known, d));
    // Amendments are proposed in the comment period, against the texts.
    if documents.as_ref().is_none_or(|d| d.comment.is_none()) {
        for (name, _) in stages.iter().filter(|(_, s)| s.amendments.is_some()) {
            d.error(
                stage_fields.key_pos(name),
                format!("stage `{name}` votes on amendments, but the workflow has no `documents` with a `comment` stage, in which they are proposed"),
            );
        }
    }
    // An election's candidates are those confirmed in a nominations stage.
    if !stages.values().any(|s| s.nominations.is_some()) {
        let elections = stages
            .iter()
            .filter(|(_, s)| s.ballot.as_ref().is_some_and(|b| b.election.is_some()));
        for (name, _) in elections {
            d.error(
                stage_fields.key_pos(name),
                format!("stage `{name}` holds an election, but the workflow has no `nominations` stage, in which its candidates are nominated and confirmed"),
            );
        }
    }
    // Points proposed are points of a session's agenda.
    if !stages.values().any(|s| s.meeting) {
        for (name, _) in stages.iter().filter(|(_, s)| s.proposals) {
            d.error(
                stage_fields.key_pos(name),
                format!("stage `{name}` takes proposals of agenda points, but the workflow has no `meeting` stage: only a session has an agenda"),
            );
        }
    }
    Some(Workflow {
        name: name?,
        title: title?,
        version: version_of(source),
        source: source.to_string(),
        inputs,
        start: start?,
        schedule,
        stages,
        documents,
        warnings: Vec::new(),
    })
}

/// `documents: { languages: [ar, en, fr], comment: circulate }`.
fn read_documents(
    node: &Node,
    stages: &BTreeMap<String, Stage>,
    known: &Known,
    d: &mut Diagnostics,
) -> Option<Documents> {
    let f = yaml::mapping(node, "`documents`", &["languages", "comment"], d)?;
    let list = f.require("languages", "`documents`", d)?;
    let mut languages: Vec<String> = Vec::new();
    for n in yaml::list(list, "`documents.languages`", d) {
        let Some(code) = yaml::string(n, "a language code", d) else {
            continue;
        };
        if !((2..=3).contains(&code.len()) && code.chars().all(|c| c.is_ascii_lowercase())) {
            d.error(
                yaml::pos(n),
                format!("`{code}` is not a language code (`ar`, `en`, `fr`, …)"),
            );
        } else if languages.contains(&code) {
            d.error(yaml::pos(n), format!("`{code}` is listed twice"));
        } else {
            languages.push(code);
        }
    }
    if languages.is_empty() {
        d.error(
            f.key_pos("languages"),
            "`documents.languages` names the languages of the authentic versions: at least one",
        );
        return None;
    }
    if let Some(roster) = known.roster {
        let read: BTreeSet<&str> = roster
            .members
            .iter()
            .flat_map(|m| &m.delegates)
            .map(|dl| dl.language.as_str())
            .collect();
        for language in read
            .into_iter()
            .filter(|l| !languages.iter().any(|x| x == l))
        {
            d.warn(
                f.key_pos("languages"),
                format!("the roster's delegates read `{language}`, but the text has no `{language}` version: they get the versions listed"),
            );
        }
    }
    let comment = f
        .get("comment")
        .and_then(|n| Some((n, yaml::string(n, "`documents.comment`", d)?)));
    if let Some((n, name)) = &comment {
        match stages.get(name) {
            None => d.error(yaml::pos(n), format!("`documents.comment` names no stage: `{name}`")),
            Some(s) if !matches!(s.wait, Some(Wait::After(_))) || s.ballot.is_some() || s.meeting => d.error(
                yaml::pos(n),
                format!("stage `{name}` is the comment period, so it needs `after:` (its length) and no ballot or meeting"),
            ),
            Some(_) => {}
        }
    }
    Some(Documents {
        languages,
        comment: comment.map(|(_, name)| name),
    })
}

pub(super) fn unknown_stage(name: &str, names: &[&str]) -> String {
    let hint = yaml::did_you_mean(name, names.iter().copied())
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    format!("stage `{name}` does not exist{hint}")
}

pub(super) fn read_inputs(node: &Node, d: &mut Diagnostics) -> BTreeMap<String, Input> {
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

pub(super) fn parse_value<T: FromStr<Err = String>>(
    node: &Node,
    what: &str,
    d: &mut Diagnostics,
) -> Option<T> {
    let text = yaml::string(node, what, d)?;
    text.parse().map_err(|e| d.error(yaml::pos(node), e)).ok()
}

pub(super) fn read_stage(
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
        stage.ballot = read_ballot(n, known, false, d);
    }
    if let Some(n) = f.get("election") {
        if f.get("ballot").is_some() {
            d.error(f.key_pos("election"), format!("{what} has both `ballot` and `election`: an election is the stage's ballot, keep one"));
        }
        stage.ballot = read_ballot(n, known, true, d);
    }
    if let Some(n) = f.get("nominations") {
        stage.nominations = read_nominations(n, d);
        for key in [
            "ballot",
            "election",
            "after",
            "schedule",
            "on_signal",
            "end",
            "meeting",
            "amendments",
        ] {
            if f.get(key).is_some() {
                d.error(f.key_pos(key), format!("{what} takes nominations and goes to `next` when the secretariat confirms the candidates, so it cannot have `{key}`"));
            }
        }
        if f.get("next").is_none() {
            d.error(at, format!("{what} takes nominations but has no `next` stage to go to once the candidates are confirmed"));
        }
    }
    if let Some(n) = f.get("amendments") {
        stage.amendments = read_ballot(n, known, false, d);
        for key in [
            "ballot",
            "after",
            "schedule",
            "on_signal",
            "end",
            "outcomes",
            "meeting",
        ] {
            if f.get(key).is_some() {
                d.error(f.key_pos(key), format!("{what} puts the amendments to the vote and then goes to `next`, so it cannot have `{key}`"));
            }
        }
        if f.get("next").is_none() {
            d.error(at, format!("{what} puts the amendments to the vote but has no `next` stage to go to after them"));
        }
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
    let verdicts = match f.get("election") {
        Some(_) => Verdict::ELECTION.as_slice(),
        None => Verdict::BALLOT.as_slice(),
    };
    let verdict_names: Vec<&str> = verdicts.iter().map(|v| v.as_str()).collect();
    if let Some(n) = f.get("outcomes")
        && let Some(o) = yaml::mapping(n, "`outcomes`", &verdict_names, d)
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
    let flag = |key: &str, d: &mut Diagnostics| {
        f.get(key)
            .and_then(|n| yaml::boolean(n, &format!("`{key}`"), d))
            .unwrap_or(false)
    };
    stage.meeting = flag("meeting", d);
    stage.proposals = flag("proposals", d);
    if stage.meeting {
        for key in [
            "ballot",
            "election",
            "after",
            "schedule",
            "on_signal",
            "end",
        ] {
            if f.get(key).is_some() {
                d.error(f.key_pos(key), format!("{what} is a meeting: it ends when the chair closes it and goes to `next`, so it cannot have `{key}`"));
            }
        }
        if f.get("next").is_none() {
            d.error(
                at,
                format!("{what} is a meeting but has no `next` stage to go to when it closes"),
            );
        }
    }
    // Exactly one way out.
    let has = |key: &str| f.get(key).is_some();
    let exits = [
        has("end"),
        has("ballot") || has("election"),
        has("next") && !has("on_signal"),
        has("on_signal"),
    ];
    match exits.iter().filter(|x| **x).count() {
        0 => d.error(at, format!("{what} has no way out: give it `next`, `ballot` with `outcomes`, `on_signal` or `end`")),
        1 => {}
        _ => d.error(at, format!("{what} has more than one way out: use one of `next`, `ballot`, `on_signal`, `end`")),
    }
    if has("ballot") || has("election") {
        for &v in verdicts {
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
                format!(
                    "{what} has a ballot but no `outcomes` ({})",
                    verdict_names.join(", ")
                ),
            );
        }
    } else if f.get("outcomes").is_some() {
        d.error(
            f.key_pos("outcomes"),
            format!("{what} has `outcomes` but no `ballot` or `election`"),
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

pub(super) fn read_notify(node: &Node, known: &Known, d: &mut Diagnostics) -> Option<Notify> {
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

pub(super) fn check_template(node: &Node, known: &Known, d: &mut Diagnostics) -> Option<String> {
    let name = yaml::string(node, "a template name", d)?;
    template_exists(&name, yaml::pos(node), known, d);
    Some(name)
}

pub(super) fn template_exists(name: &str, pos: Pos, known: &Known, d: &mut Diagnostics) {
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

pub(super) fn read_register(node: &Node, d: &mut Diagnostics) -> Option<RegisterSpec> {
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

/// A text, or a text per language: `{ ar: …, en: …, fr: … }` (language codes of two or
/// three lowercase letters). The default is the English text, or the first one given.
pub(super) fn read_texts(node: &Node, what: &str, d: &mut Diagnostics) -> Option<Texts> {
    if !yaml::is_mapping(node) {
        return yaml::string(node, what, d).map(Texts::one);
    }
    let f = yaml::mapping(node, what, &[], d)?;
    let mut by_language = BTreeMap::new();
    let mut first = None;
    for e in &f.entries {
        let code = (2..=3).contains(&e.key.len()) && e.key.chars().all(|c| c.is_ascii_lowercase());
        if !code {
            d.error(
                e.key_pos,
                format!(
                    "`{}` in {what} is not a language code (`ar`, `en`, `fr`, …)",
                    e.key
                ),
            );
            continue;
        }
        if let Some(text) = yaml::string(e.value, &format!("the `{}` text of {what}", e.key), d) {
            first.get_or_insert_with(|| text.clone());
            by_language.insert(e.key.clone(), text);
        }
    }
    let default = by_language.get("en").cloned().or(first);
    let Some(default) = default else {
        d.error(
            f.at,
            format!("{what} needs a text in at least one language"),
        );
        return None;
    };
    Some(Texts {
        default,
        by_language,
    })
}

/// Warns of each language of the roster's delegates that `texts` has no text in, and
/// says which text its delegates read instead.
fn language_gaps(what: &str, texts: &Texts, roster: &Roster, at: Pos, d: &mut Diagnostics) {
    let languages: BTreeSet<&str> = roster
        .members
        .iter()
        .flat_map(|m| &m.delegates)
        .map(|dl| dl.language.as_str())
        .collect();
    if texts.by_language.is_empty() {
        if languages.len() > 1 {
            let all: Vec<String> = languages.iter().map(|l| format!("`{l}`")).collect();
            d.warn(
                at,
                format!(
                    "{what} is in one language; the roster's delegates read {}: give it per language (`{{ ar: …, en: …, fr: … }}`) so that each reads theirs",
                    all.join(", ")
                ),
            );
        }
        return;
    }
    let fallback = if texts.by_language.contains_key("en") {
        "en"
    } else {
        texts.by_language.keys().next().map_or("en", String::as_str)
    };
    for language in languages {
        if !texts.by_language.contains_key(language) {
            d.warn(
                at,
                format!("{what} has no `{language}` text: delegates reading `{language}` get the `{fallback}` one"),
            );
        }
    }
}

/// One choice: its id (`yes`), or `{ id: yes, label: { ar: نعم, en: Yes, fr: Oui } }`.
fn read_choice(node: &Node, d: &mut Diagnostics) -> Option<(String, Option<Texts>)> {
    if !yaml::is_mapping(node) {
        return yaml::string(node, "a choice", d).map(|id| (id, None));
    }
    let f = yaml::mapping(node, "a choice", &["id", "label"], d)?;
    let id = f
        .require("id", "a choice", d)
        .and_then(|n| yaml::string(n, "a choice's `id`", d));
    let label = f.get("label").map(|n| {
        if yaml::scalar(n).is_none() && !yaml::is_mapping(n) {
            let what = "a choice's `label` must be a text, or a text per language";
            d.error(f.key_pos("label"), what);
            return None;
        }
        read_texts(n, "a choice's `label`", d)
    });
    match label {
        Some(None) => None,
        Some(label) => Some((id?, label)),
        None => Some((id?, None)),
    }
}

/// `nominations: { closes_after: 14d }` (or `nominations: {}`: open until confirmed).
fn read_nominations(node: &Node, d: &mut Diagnostics) -> Option<Nominations> {
    let f = yaml::mapping(node, "`nominations`", &["closes_after"], d)?;
    let closes_after = match f.get("closes_after") {
        Some(n) => Some(parse_value::<Duration>(n, "`closes_after`", d)?),
        None => None,
    };
    Some(Nominations { closes_after })
}

/// A stage's `ballot` or, with `election`, its `election` (whose choices are candidates).
pub(super) fn read_ballot(
    node: &Node,
    known: &Known,
    election: bool,
    d: &mut Diagnostics,
) -> Option<BallotSpec> {
    let (what, keys) = match election {
        true => ("`election`", ELECTION_KEYS),
        false => ("`ballot`", BALLOT_KEYS),
    };
    let f = yaml::mapping(node, what, keys, d)?;
    // An election in error is read on, so that every problem is said, and refused at the end.
    let (election, election_ok) = match election {
        true => {
            let (e, ok) = read_election(&f, known, d);
            (Some(e), ok)
        }
        false => (None, true),
    };
    let question = f
        .require("question", what, d)
        .and_then(|n| read_texts(n, "`question`", d));
    if let (Some(q), Some(roster)) = (&question, known.roster) {
        language_gaps("`question`", q, roster, f.key_pos("question"), d);
    }
    let mut labels = BTreeMap::new();
    let choices: Vec<String> = match f.get("choices") {
        Some(n) => {
            let mut ids = Vec::new();
            for c in yaml::list(n, "`choices`", d) {
                let Some((id, label)) = read_choice(c, d) else {
                    continue;
                };
                if let Some(label) = label {
                    if let Some(roster) = known.roster {
                        let what = format!("the label of `{id}`");
                        language_gaps(&what, &label, roster, f.key_pos("choices"), d);
                    }
                    labels.insert(id.clone(), label);
                }
                ids.push(id);
            }
            ids
        }
        None if election.as_ref().is_some_and(|e| e.blank) => vec![BLANK.to_string()],
        None if election.is_some() => Vec::new(),
        None => vec!["yes".into(), "no".into(), "abstain".into()],
    };
    if choices.is_empty() && election.is_none() {
        d.error(f.key_pos("choices"), "a ballot needs at least one choice");
    }
    let mut seen = BTreeSet::new();
    for c in &choices {
        let ok = !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '-');
        if !ok
            || !seen.insert(c)
            || ["cast", "eligible", "members", "and", "or", "not"].contains(&c.as_str())
        {
            d.error(f.key_pos("choices"), format!("choice `{c}` must be a unique word of letters, digits, `_` or `-`, and not a rule keyword"));
        }
    }
    // Files being loaded (not versions stored before this check): a reader must tell
    // the choices apart.
    if known.templates.is_some() {
        label_collisions(&choices, &labels, f.key_pos("choices"), d);
    }
    let in_session = f
        .get("in_session")
        .and_then(|n| yaml::boolean(n, "`in_session`", d))
        .unwrap_or(false);
    let closes_after = if in_session {
        for key in ["closes_after", "remind", "close"] {
            if f.get(key).is_some() {
                d.error(f.key_pos(key), format!("a ballot taken in session closes when its vote is recorded in the room: it has no `{key}`"));
            }
        }
        Some(Duration(chrono::TimeDelta::zero()))
    } else {
        f.require("closes_after", what, d)
            .and_then(|n| parse_value::<Duration>(n, "`closes_after`", d))
    };
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
    if let (Some(q), Some(_)) = (&quorum, &election)
        && q.needs_each_vote()
    {
        d.error(f.key_pos("quorum"), "an election's quorum counts ballots (`cast`, `blank`, `eligible`, `members`): `weight(…)` and `count(…, group: …)` would read who voted what");
    }
    let pass = match election {
        // Never read: the election's method decides.
        Some(_) => Rule::parse("cast >= 0", &vocabulary).ok(),
        None => f
            .require("pass", what, d)
            .and_then(|n| read_rule(n, &vocabulary, d)),
    };
    let tie = match election {
        Some(_) => None,
        None => f.get("tie").and_then(|n| read_tie(n, known, d)),
    };
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
        Some("when_decided") if election.is_none() => Close::WhenDecided,
        Some("when_decided") => Close::AtDeadline, // refused by `read_election`
        Some(other) => {
            let choices = match election {
                Some(_) => "at_deadline or when_all_voted",
                None => "at_deadline, when_all_voted or when_decided",
            };
            d.error(
                f.get("close").map_or(f.at, yaml::pos),
                format!("unknown `close` `{other}`: use {choices}"),
            );
            Close::AtDeadline
        }
    };
    let template = match f.get("template") {
        Some(n) => check_template(n, known, d)?,
        None => {
            let name = match election {
                Some(_) => "election-ballot",
                None => "ballot",
            };
            template_exists(name, f.at, known, d);
            name.to_string()
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
        if let Some(close) = closes_after.filter(|_| !in_session)
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
        labels,
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
        in_session,
        election: election.filter(|_| election_ok),
    })
    .filter(|_| election_ok)
}

/// The keys of an `election` that say how it is counted, and whether they are right:
/// every problem is said, and a key in error counts as its default.
fn read_election(f: &yaml::Fields, known: &Known, d: &mut Diagnostics) -> (ElectionSpec, bool) {
    let mut bad = false;
    // A key whose value is one of `words`: its value, `None` when absent; a bad word is
    // said and counts as absent.
    let mut one_of = |key: &str, words: &[(&str, u8)], hint: &str, d: &mut Diagnostics| {
        let n = f.get(key)?;
        let w = yaml::scalar(n).unwrap_or_default();
        let found = words.iter().find(|(x, _)| *x == w).map(|(_, v)| *v);
        if found.is_none() {
            d.error(yaml::pos(n), format!("unknown `{key}` `{w}`: use {hint}"));
            bad = true;
        }
        found
    };
    let majorities = [("plurality", 0), ("absolute", 1), ("two_thirds", 2)];
    let majority_hint = "plurality, absolute or two_thirds";
    let as_majority = |v: u8| match v {
        0 => Majority::Plurality,
        1 => Majority::Absolute,
        _ => Majority::TwoThirds,
    };
    let majority =
        one_of("majority", &majorities, majority_hint, d).map_or(Majority::Absolute, as_majority);
    let last_round = one_of("last_round", &majorities, majority_hint, d).map(as_majority);
    let base = match one_of(
        "of",
        &[("votes_cast", 0), ("eligible", 1), ("members", 2)],
        "votes_cast, eligible or members",
        d,
    ) {
        Some(1) => Base::Eligible,
        Some(2) => Base::Members,
        _ => Base::VotesCast,
    };
    let runoff = match one_of(
        "runoff",
        &[("two_best", 0), ("drop_last", 1)],
        "two_best or drop_last",
        d,
    ) {
        Some(1) => Then::DropLast,
        _ => Then::TwoBest,
    };
    let tie_hint = "round (a new round between the tied) or lot";
    let lot = one_of("tie", &[("round", 0), ("lot", 1)], tie_hint, d) == Some(1);
    let mut number = |key: &str, d: &mut Diagnostics| match f.get(key) {
        None => 1,
        Some(n) => match yaml::scalar(n).and_then(|w| w.parse::<u32>().ok()) {
            Some(v) if (1..=100).contains(&v) => v,
            _ => {
                d.error(
                    yaml::pos(n),
                    format!("`{key}` must be a whole number from 1 to 100"),
                );
                bad = true;
                1
            }
        },
    };
    let seats = number("seats", d);
    let rounds = number("rounds", d);
    if let Some(n) = f.get("close")
        && yaml::scalar(n).as_deref() == Some("when_decided")
    {
        d.error(
            yaml::pos(n),
            "an election closes `at_deadline` or `when_all_voted`: `when_decided` is for motions",
        );
    }
    if last_round.is_some() && rounds == 1 {
        d.error(
            f.key_pos("last_round"),
            "`last_round` needs `rounds` of 2 or more: with one round, `majority` is its majority",
        );
    }
    let blank = match f.get("blank") {
        None => Some(false),
        Some(n) => yaml::boolean(n, "`blank`", d),
    };
    let (secret, secret_ok) = read_secret(f, known, d);
    let spec = ElectionSpec {
        secret,
        seats,
        majority,
        last_round,
        base,
        runoff,
        rounds,
        lot,
        blank: blank.unwrap_or(false),
    };
    (spec, !bad && blank.is_some() && secret_ok)
}

/// `secret: true` with `trustees: { members: [A, B, C], needed: 2 }`: who holds the key's
/// shares, and how many of them open a count. Whether it reads without error.
fn read_secret(f: &yaml::Fields, known: &Known, d: &mut Diagnostics) -> (Option<Trustees>, bool) {
    let secret = match f.get("secret") {
        None => Some(false),
        Some(n) => yaml::boolean(n, "`secret`", d),
    };
    let Some(secret) = secret else {
        return (None, false);
    };
    let Some(node) = f.get("trustees") else {
        if secret {
            d.error(
                f.key_pos("secret"),
                "a secret ballot needs `trustees: { members: [MEMBER, ...], needed: N }`: the members whose delegates hold the key's shares, and how many of them open the count",
            );
        }
        return (None, !secret);
    };
    if !secret {
        d.error(
            f.key_pos("trustees"),
            "`trustees` open a secret ballot's count: add `secret: true`, or remove them",
        );
        return (None, false);
    }
    if let Some(names) = known.templates
        && !names.contains(TRUSTEE_CALL)
    {
        d.error(
            f.key_pos("secret"),
            format!(
                "a secret election sends `{}` to its trustees: the templates folder has no such template",
                TRUSTEE_CALL
            ),
        );
    }
    let Some(t) = yaml::mapping(node, "`trustees`", &["members", "needed"], d) else {
        return (None, false);
    };
    let mut ok = true;
    let mut members: Vec<String> = Vec::new();
    if let Some(list) = t.require("members", "`trustees`", d) {
        for m in yaml::list(list, "`members`", d) {
            let Some(id) = yaml::string(m, "a trustee", d) else {
                ok = false;
                continue;
            };
            ok &= known_member(known, &id, m, d);
            if members.contains(&id) {
                d.error(yaml::pos(m), format!("trustee `{id}` is named twice"));
                ok = false;
            }
            members.push(id);
        }
    }
    let count = members.len() as u32;
    let needed = match t.require("needed", "`trustees`", d) {
        None => 0,
        Some(n) => match yaml::scalar(n).and_then(|w| w.parse::<u32>().ok()) {
            Some(v) if v >= 1 && v < count => v,
            _ => {
                d.error(
                    yaml::pos(n),
                    format!(
                        "`needed` must be a whole number from 1 to one less than the trustees named ({count}): with all of them needed, the last to deal could choose the key"
                    ),
                );
                0
            }
        },
    };
    if !(2..=20).contains(&count) {
        d.error(
            t.key_pos("members"),
            format!("a secret ballot needs 2 to 20 trustees, not {count}: so that no one holds the whole key"),
        );
        ok = false;
    }
    match ok && needed > 0 {
        true => (Some(Trustees { members, needed }), true),
        false => (None, false),
    }
}

/// Two choices a reader of some language sees under the same words (`Oui` for `yes` and
/// for `approve`) could not be told apart, on the page or in a reply by mail.
fn label_collisions(
    choices: &[String],
    labels: &BTreeMap<String, Texts>,
    at: Pos,
    d: &mut Diagnostics,
) {
    let mut languages: BTreeSet<&str> = BTreeSet::from([""]);
    for t in labels.values() {
        languages.extend(t.by_language.keys().map(String::as_str));
    }
    for language in languages {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for c in choices {
            let text = match labels.get(c) {
                Some(t) if language.is_empty() => t.default.as_str(),
                Some(t) => t.get(language),
                None => c.as_str(),
            };
            let key = text.trim().to_lowercase();
            if let Some(other) = seen.insert(key, c) {
                let what = match language {
                    "" => String::new(),
                    l => format!(" in `{l}`"),
                };
                d.error(at, format!("choices `{other}` and `{c}` read the same{what} (`{}`): a reader could not tell them apart", text.trim()));
            }
        }
    }
}

/// `tie: fails`, `tie: lot` or `tie: { chair: MEMBER }`.
pub(super) fn read_tie(node: &Node, known: &Known, d: &mut Diagnostics) -> Option<TieRule> {
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
    known_member(known, &member, member_node, d);
    Some(TieRule::Chair(member))
}

/// Whether the roster (when known) has member `id`; says so at `node` when it has not.
fn known_member(known: &Known, id: &str, node: &Node, d: &mut Diagnostics) -> bool {
    let Some(roster) = known.roster else {
        return true;
    };
    if roster.member(id).is_some() {
        return true;
    }
    let hint = yaml::did_you_mean(id, roster.members.iter().map(|m| m.id.as_str()))
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    d.error(
        yaml::pos(node),
        format!("the roster has no member `{id}`{hint}"),
    );
    false
}

/// A rule, with errors placed at their column inside the quoted or plain scalar.
pub(super) fn read_rule(node: &Node, vocabulary: &Vocabulary, d: &mut Diagnostics) -> Option<Rule> {
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

pub(super) fn read_on_signal(
    node: &Node,
    target: &mut impl FnMut(&Node, &mut Diagnostics) -> Option<String>,
    d: &mut Diagnostics,
) -> Option<OnSignal> {
    let f = yaml::mapping(
        node,
        "`on_signal`",
        &["name", "withdrawal", "until", "next"],
        d,
    )?;
    let name = f
        .require("name", "`on_signal`", d)
        .and_then(|n| yaml::string(n, "`name`", d));
    let withdrawal = f
        .get("withdrawal")
        .and_then(|n| yaml::string(n, "`withdrawal`", d));
    if withdrawal.is_some() && withdrawal == name {
        d.error(
            f.key_pos("withdrawal"),
            "the withdrawal is a signal of its own: give it another name than `name`",
        );
    }
    let until = match f.get("until") {
        Some(n) => read_rule(n, &Vocabulary::new(&["count".to_string()]), d),
        None => Rule::parse("count >= 1", &Vocabulary::new(&["count".to_string()])).ok(),
    };
    let next = f
        .require("next", "`on_signal`", d)
        .and_then(|n| target(n, d));
    Some(OnSignal {
        name: name?,
        withdrawal,
        until: until?,
        next: next?,
    })
}
