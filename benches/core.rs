//! Micro-benchmarks of the hot pure parts: `apply` for a vote, rule evaluation, template
//! rendering and token checks. Run with `cargo bench --bench core`; figures are in
//! docs/performance.md. No benchmark asserts a time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use councild::definition::{self, Known};
use councild::engine::{self, Context, Event};
use councild::roster::Roster;
use councild::rules::{Counts, Rule, Vocabulary};
use councild::simulate::Simulator;
use councild::templates::{Templates, sample_data};
use councild::token::{BallotRef, Key};
use criterion::{Criterion, black_box, criterion_group, criterion_main};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn apply(c: &mut Criterion) {
    let source =
        std::fs::read_to_string(repo().join("workflows/regulation-adoption.yaml")).unwrap();
    let workflow = definition::load(
        &source,
        &Known {
            templates: None,
            roster: None,
        },
    )
    .unwrap();
    let roster = Roster::parse(
        &std::fs::read_to_string(repo().join("config/council.yaml")).unwrap(),
        councild::mail::is_address,
    )
    .unwrap();
    let tz = "Europe/Istanbul".parse().unwrap();
    let mut sim = Simulator::new(
        &workflow,
        &roster,
        tz,
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
    );
    sim.start(BTreeMap::from([("title".to_string(), "T".to_string())]))
        .unwrap();
    sim.advance();
    let item = sim.state.clone();
    let ctx = Context {
        workflow: &workflow,
        tz,
    };
    let members: Vec<String> = roster
        .members
        .iter()
        .filter(|m| m.voting_right)
        .map(|m| m.id.clone())
        .collect();
    let mut i = 0;
    c.bench_function("apply: a vote in a 55-member ballot", |b| {
        b.iter_batched(
            || item.clone(),
            |mut state| {
                i = (i + 1) % members.len();
                let event = Event::VoteCast {
                    ballot: 0,
                    member: members[i].clone(),
                    choice: "yes".into(),
                    proofs: None,
                };
                black_box(
                    engine::apply(&ctx, &mut state, "simulated-1", Utc::now(), &event).unwrap(),
                );
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn rules(c: &mut Criterion) {
    let choices: Vec<String> = ["yes", "no", "abstain"].map(String::from).to_vec();
    let rule = Rule::parse(
        "cast >= 2/3 * eligible and yes >= 2/3 * (yes + no)",
        &Vocabulary::new(&choices),
    )
    .unwrap();
    let counts = Counts {
        choices: BTreeMap::from([("yes".into(), 40), ("no".into(), 10), ("abstain".into(), 3)]),
        eligible: 55,
        members: 57,
        voters: Vec::new(),
        present: None,
    };
    c.bench_function("rule: evaluate a two-thirds rule", |b| {
        b.iter(|| black_box(rule.eval(black_box(&counts)).unwrap()))
    });
    c.bench_function("rule: parse a two-thirds rule", |b| {
        b.iter(|| {
            black_box(
                Rule::parse(
                    "cast >= 2/3 * eligible and yes >= 2/3 * (yes + no)",
                    &Vocabulary::new(&choices),
                )
                .unwrap(),
            )
        })
    });
}

fn templates(c: &mut Criterion) {
    let templates = Templates::load(&repo().join("templates")).unwrap();
    let data = sample_data();
    c.bench_function(
        "template: render a ballot mail (subject, text, HTML)",
        |b| b.iter(|| black_box(templates.render("ballot", "en", &data).unwrap())),
    );
    c.bench_function("template: render an Arabic ballot mail", |b| {
        b.iter(|| black_box(templates.render("ballot", "ar", &data).unwrap()))
    });
}

fn tokens(c: &mut Criterion) {
    let key = Key::from_bytes([7; 32]);
    let r = BallotRef {
        item: "item-123".into(),
        ballot: 0,
        member: "TUR".into(),
        delegate: 0,
    };
    let token = key.sign(&r);
    c.bench_function("token: sign", |b| {
        b.iter(|| black_box(key.sign(black_box(&r))))
    });
    c.bench_function("token: verify", |b| {
        b.iter(|| black_box(key.verify(black_box(&token)).unwrap()))
    });
    c.bench_function("token: refuse a forgery", |b| {
        b.iter(|| black_box(key.verify(black_box("aXRlbS0xCjAKQUFBCjA.AAAAAAAAAAAAAAAAAAAAAA"))))
    });
}

criterion_group!(benches, apply, rules, templates, tokens);
criterion_main!(benches);
