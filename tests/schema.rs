//! `docs/workflow.schema.json`, the schema editors check workflow files with, held to the
//! loader: every sample workflow passes both, each sample names the schema on its first
//! line, and small variants of the samples are refused by both or accepted by both. The
//! schema may be more permissive than the loader (it cannot know which stages exist or
//! parse a rule), never stricter.

use std::path::{Path, PathBuf};

use councild::definition::{self, Known};
use councild::yaml::{self, Node};
use saphyr::{ScalarOwned, YamlDataOwned};
use serde_json::Value;

const SCHEMA_LINE: &str = "# yaml-language-server: $schema=../docs/workflow.schema.json";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The compiled schema; compiling also checks it against the draft-07 meta-schema.
struct Schema {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Schema {
    fn load() -> Schema {
        let path = repo().join("docs/workflow.schema.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text).expect("the schema is JSON");
        assert_eq!(
            value["$schema"], "http://json-schema.org/draft-07/schema#",
            "draft-07: what yaml-language-server checks fully"
        );
        let url = "file:///docs/workflow.schema.json";
        let mut compiler = boon::Compiler::new();
        compiler.add_resource(url, value).unwrap();
        let mut schemas = boon::Schemas::new();
        let index = compiler
            .compile(url, &mut schemas)
            .unwrap_or_else(|e| panic!("{e:#}"));
        Schema { schemas, index }
    }

    /// `Err` with the validator's report when the workflow does not fit.
    fn check(&self, source: &str) -> Result<(), String> {
        let node = yaml::parse(source)
            .unwrap_or_else(|d| panic!("{d}"))
            .expect("a document");
        self.schemas
            .validate(&json(&node), self.index)
            .map_err(|e| e.to_string())
    }
}

/// A YAML node as JSON, read by the loader's own YAML reader, so that `yes` stays a text
/// and `true` a boolean exactly as the loader sees them.
fn json(node: &Node) -> Value {
    match &node.data {
        YamlDataOwned::Value(scalar) => match scalar {
            ScalarOwned::Null => Value::Null,
            ScalarOwned::Boolean(b) => Value::Bool(*b),
            ScalarOwned::Integer(i) => Value::from(*i),
            ScalarOwned::FloatingPoint(f) => serde_json::Number::from_f64(f.0)
                .map(Value::Number)
                .expect("a finite number"),
            ScalarOwned::String(s) => Value::String(s.clone()),
        },
        YamlDataOwned::Representation(s, ..) => Value::String(s.clone()),
        YamlDataOwned::Sequence(items) => Value::Array(items.iter().map(json).collect()),
        YamlDataOwned::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (yaml::scalar(k).expect("a text key"), json(v)))
                .collect(),
        ),
        other => panic!("no JSON for {other:?}"),
    }
}

/// Whether the loader takes the file, leaving out what a schema cannot know (the
/// templates folder and the roster).
fn loads(source: &str) -> Result<(), String> {
    let known = Known {
        templates: None,
        roster: None,
    };
    definition::load(source, &known)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn samples() -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

fn sample(name: &str) -> String {
    std::fs::read_to_string(repo().join("workflows").join(name)).unwrap()
}

/// `regulation-adoption.yaml` without its amendments stage (whose ballot repeats the
/// final vote's keys): each edit below then meets its text once.
fn regulation() -> String {
    let text = sample("regulation-adoption.yaml");
    let start = text.find("  amendments:").unwrap();
    let end = start + text[start..].find("  vote:\n").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    edit(&text, "    next: amendments\n", "    next: vote\n")
}

/// `text` with `from` (which must occur exactly once) replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "`{from}` once in the sample");
    text.replacen(from, to, 1)
}

#[test]
fn every_sample_workflow_fits_the_schema() {
    let schema = Schema::load();
    let samples = samples();
    assert!(samples.len() >= 4, "the four sample workflows");
    for (path, text) in &samples {
        let name = path.display();
        loads(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        schema.check(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn each_sample_names_the_schema_on_its_first_line() {
    for (path, text) in samples() {
        assert_eq!(text.lines().next(), Some(SCHEMA_LINE), "{}", path.display());
        let target = SCHEMA_LINE.split_once("$schema=").unwrap().1;
        let folder = path.parent().unwrap();
        assert!(Path::new(folder).join(target).is_file(), "{target}");
    }
}

#[test]
fn a_misspelt_key_and_a_bad_close_are_refused_where_they_are() {
    let schema = Schema::load();
    let text = regulation();
    let misspelt = edit(&text, "    next: vote\n", "    nxt: vote\n");
    let err = schema.check(&misspelt).unwrap_err();
    assert!(
        err.contains("/stages/circulate") && err.contains("nxt"),
        "{err}"
    );
    let bad_close = edit(&text, "close: at_deadline", "close: at_the_deadline");
    let err = schema.check(&bad_close).unwrap_err();
    assert!(err.contains("/stages/vote/ballot/close"), "{err}");
    assert!(loads(&misspelt).is_err() && loads(&bad_close).is_err());
}

/// Variants of the regulation workflow that the loader refuses: the schema must refuse
/// them too, or it passes files `councild validate` fails.
/// The choices of `regulation-adoption.yaml`, with their labels.
const CHOICES: &str = "choices:\n        - { id: yes, label: { ar: نعم, en: \"Yes\", fr: Oui } }\n        - { id: no, label: { ar: لا, en: \"No\", fr: Non } }\n        - { id: abstain, label: { ar: امتناع, en: Abstain, fr: Abstention } }";

#[test]
fn the_schema_refuses_what_the_loader_refuses() {
    let schema = Schema::load();
    let text = regulation();
    // (what is wrong, text of the sample, replaced by)
    #[rustfmt::skip]
    let variants: &[(&str, &str, &str)] = &[
        ("unknown top-level key", "title: Adoption", "titel: Adoption"),
        ("unknown stage key", "    after: 14d", "    afterr: 14d"),
        ("unknown ballot key", "      closes_after: 7d", "      closes_in: 7d"),
        ("bad close", "close: at_deadline", "close: sometime"),
        ("bad workflow name", "workflow: regulation-adoption", "workflow: regulation adoption"),
        ("no start", "start: circulate\n", ""),
        ("bad duration", "after: 14d", "after: 14 days"),
        ("duration without unit", "after: 14d", "after: 14"),
        ("zero duration", "closes_after: 7d", "closes_after: 0d"),
        ("bad input type", "draft_url: { type: url }", "draft_url: { type: link }"),
        ("required is a YAML boolean", "required: true", "required: yes"),
        ("required with a default", "required: true }", "required: true, default: x }"),
        ("url default", "{ type: url }", "{ type: url, default: example.org }"),
        ("number default", "{ type: url }", "{ type: number, default: twelve }"),
        ("date default", "{ type: url }", "{ type: date, default: 25/11/2026 }"),
        ("outcomes need no_quorum", ", no_quorum: circulate }", " }"),
        ("unknown verdict", "no_quorum: circulate }", "no_quorum: circulate, tie: adopt }"),
        ("ballot needs outcomes", "    outcomes: { adopted: adopt, rejected: rejected, no_quorum: circulate }\n", ""),
        ("outcomes need a ballot", "    end: rejected", "    end: rejected\n    outcomes: { adopted: a, rejected: b, no_quorum: c }"),
        ("two ways out", "    end: rejected", "    end: rejected\n    next: circulate"),
        ("ballot and next", "    outcomes: {", "    next: adopt\n    outcomes: {"),
        ("no way out", "    end: adopted\n", ""),
        ("a wait needs next", "    next: vote\n", "    end: waited\n"),
        ("after and schedule", "    after: 14d ", "    schedule: \"0 9 * * 1\"\n    after: 14d "),
        ("six-field cron", "    after: 14d ", "    schedule: \"0 0 9 * * 1\" "),
        ("number without seq", "/{{year}}/{{seq:03}}", "/{{year}}"),
        ("unknown number field", "{{seq:03}}", "{{number}}"),
        ("bad width", "{{seq:03}}", "{{seq:3}}"),
        ("unknown audience", "{ to: members, template: regulation-rejected }", "{ to: everyone, template: regulation-rejected }"),
        ("notify needs a template", "{ to: members, template: regulation-rejected }", "{ to: members }"),
        ("empty choices", CHOICES, "choices: []"),
        ("choice with a space", CHOICES, "choices: [yes, no, \"abstain now\"]"),
        ("choice given twice", CHOICES, "choices: [yes, no, no]"),
        ("choice is a rule word", CHOICES, "choices: [yes, no, cast]"),
        ("label in no language", "label: { ar: لا, en: \"No\", fr: Non }", "label: {}"),
        ("label not a language code", "en: \"No\", fr: Non", "english: \"No\", fr: Non"),
        ("label is a list", "label: { ar: لا, en: \"No\", fr: Non }", "label: [No, Non]"),
        ("choice without an id", "{ id: no, label:", "{ label:"),
        ("question not a language code", "        fr: \"Adopter", "        French: \"Adopter"),
        ("no pass rule", "      pass: \"yes >= 2/3 * (yes + no) and yes > 0\"   # abstentions are not counted\n", ""),
        ("recorded is a YAML boolean", "close: at_deadline", "close: at_deadline\n      recorded: yes"),
        ("bad tie", "close: at_deadline", "close: at_deadline\n      tie: coin"),
        ("tie chair needs a member", "close: at_deadline", "close: at_deadline\n      tie: { chair: }"),
        ("reminder is a duration", "before_close: [3d, 1d]", "before_close: [3d, soon]"),
        ("unknown remind key", "remind: { before_close", "remind: { every: 1d, before_close"),
        ("a stage is a mapping", "  rejected:\n    notify: { to: members, template: regulation-rejected }\n    end: rejected", "  rejected:"),
    ];
    // The amendments stage: it goes on to `next`, and has no other way out.
    let full = sample("regulation-adoption.yaml");
    for (what, from, to) in [
        (
            "amendments need next",
            "      close: at_deadline\n    next: vote\n",
            "      close: at_deadline\n",
        ),
        (
            "amendments and end",
            "      close: at_deadline\n    next: vote\n",
            "      close: at_deadline\n    next: vote\n    end: x\n",
        ),
    ] {
        let variant = edit(&full, from, to);
        assert!(loads(&variant).is_err(), "{what}: the loader takes it");
        assert!(
            schema.check(&variant).is_err(),
            "{what}: the schema takes it"
        );
    }
    for (what, from, to) in variants {
        let variant = edit(&text, from, to);
        assert!(loads(&variant).is_err(), "{what}: the loader takes it");
        assert!(
            schema.check(&variant).is_err(),
            "{what}: the schema takes it"
        );
    }
    let empty = "workflow: x\nstart: a\nstages: {}\n";
    assert!(
        loads(empty).is_err() && schema.check(empty).is_err(),
        "no stages"
    );
    // A scheduled workflow cannot have required inputs.
    let text = sample("council-session.yaml");
    let variant = edit(
        &text,
        "default: \"CPCC Headquarters, Istanbul\"",
        "required: true",
    );
    assert!(loads(&variant).is_err());
    assert!(schema.check(&variant).is_err());
}

/// Workflows the loader takes, written in every form it allows: the schema must take
/// them too, or an editor would mark a good file as wrong.
#[test]
fn the_schema_accepts_what_the_loader_accepts() {
    let schema = Schema::load();
    let base = r#"
workflow: motion_2
title: 2026
schedule: "@monthly"
inputs:
  place: { type: text, default: 12 }
  copies: { type: number, default: 3 }
  ratio: { type: number, default: "-1.5e3" }
  deadline: { type: date, default: "2026-11-25" }
  link: { type: url, default: "https://example.org/draft" }
  note: {}
  kind: { type: }
  optional: { required: false }
start: open
stages:
  open:
    notify:
      - { to: heads, template: call-for-agenda-items }
      - { template: call-for-agenda-items }
      - { to: secretariat, template: call-for-agenda-items }
      - { to: , template: call-for-agenda-items }
    schedule: "0 9 * * 1"
    next: vote
  vote:
    notify: []
    ballot:
      question: Adopt?
      choices: [yes, no, abstain, 2027, present]
      closes_after: 1w3d
      remind: { before_close: 2d, template: ballot-reminder }
      quorum: two_thirds_of_members
      pass: simple_majority
      close:
      tie: { chair: TUR }
      recorded: true
      template: ballot
      receipt_template: vote-receipt
    outcomes: { adopted: register, rejected: silence, no_quorum: wait }
  silence:
    ballot:
      question: Any objection?
      choices: no
      closes_after: 0s90s
      pass: silence
      tie: lot
      close: when_all_voted
      remind: {}
    outcomes: { adopted: register, rejected: done, no_quorum: done }
  wait:
    on_signal: { name: deposited, next: done }
    after: 30d
    next: done
  register:
    register: { series: acts, number: "{ A }/{{ year }}/{{seq}}-{{seq:0}}{" }
    next: signals
  signals:
    on_signal: { name: 7, until: "count >= 1/2 * eligible", next: done }
  done:
    end: 1
"#;
    loads(base).unwrap_or_else(|e| panic!("{e}"));
    schema.check(base).unwrap_or_else(|e| panic!("{e}"));
}
