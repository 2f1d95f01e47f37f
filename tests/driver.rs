//! The daemon's writer and `councild simulate` drive the engine through the same
//! `engine::step`: given the same requests at the same times they log the same chain, so a
//! lot drawn from that chain comes out the same in both.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use councild::definition::{self, Definitions, Known, Workflow};
use councild::engine::{Event, Record};
use councild::observe::Metrics;
use councild::roster::Roster;
use councild::simulate::Simulator;
use councild::store::Store;
use councild::writer::{Items, Wake, Writer};

const TIE: &str = r#"
workflow: tie-vote
title: A motion that ties
start: vote
stages:
  vote:
    ballot:
      question: "Adopt the motion?"
      choices: [yes, no]
      closes_after: 7d
      pass: "yes > no"
      tie: lot
      close: when_all_voted
    outcomes: { adopted: adopt, rejected: rejected, no_quorum: rejected }
  adopt:
    register: { series: motions, number: "M/{{year}}/{{seq:02}}" }
    end: adopted
  rejected:
    end: rejected
"#;

const ROSTER: &str = r#"
council: Test Council
secretariat: { name: Secretariat, email: secretariat@example.org }
members:
  - { id: AAA, name: A, voting_right: true, delegates: [{ name: a, email: a@example.org }] }
  - { id: BBB, name: B, voting_right: true, delegates: [{ name: b, email: b@example.org }] }
  - { id: CCC, name: C, voting_right: true, delegates: [{ name: c, email: c@example.org }] }
  - { id: DDD, name: D, voting_right: true, delegates: [{ name: d, email: d@example.org }] }
"#;

fn workflow() -> Workflow {
    let known = Known {
        templates: None,
        roster: None,
    };
    definition::load(TIE, &known).unwrap()
}

/// Runs a tied ballot on the real writer over a store on disk; returns its log.
async fn daemon_log(workflow: &Workflow, roster: &Roster, tz: chrono_tz::Tz) -> Vec<Record> {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut defs = Definitions::default();
    defs.insert_current(workflow.clone());
    let (writer, handle) = Writer::open(
        store.clone(),
        Arc::new(ArcSwap::from_pointee(defs)),
        Arc::new(roster.clone()),
        tz,
        Wake::default(),
        Arc::new(Metrics::default()),
        Arc::new(Items::default()),
    )
    .await
    .unwrap();
    tokio::spawn(writer.run());
    let done = handle
        .start(workflow.name.clone(), BTreeMap::new())
        .await
        .unwrap();
    for (member, choice) in [("AAA", "yes"), ("BBB", "no"), ("CCC", "yes"), ("DDD", "no")] {
        let vote = Event::VoteCast {
            ballot: 0,
            member: member.into(),
            choice: choice.into(),
        };
        handle.event(done.item.clone(), vote).await.unwrap();
    }
    store.events(&done.item).map(Result::unwrap).collect()
}

#[tokio::test]
async fn the_simulator_draws_the_same_lot_as_the_daemon_on_the_same_requests() {
    let workflow = workflow();
    let roster = Roster::parse(ROSTER, councild::mail::is_address).unwrap();
    let tz: chrono_tz::Tz = "Europe/Istanbul".parse().unwrap();
    let log = daemon_log(&workflow, &roster, tz).await;

    // The same requests, at the same times, through the simulator.
    let mut sim = Simulator::new(&workflow, &roster, tz, log[0].at);
    for record in &log {
        if matches!(record.event, Event::Started { .. } | Event::VoteCast { .. }) {
            sim.now = record.at;
            sim.apply(record.event.clone()).unwrap();
        }
    }
    assert_eq!(sim.world.log, log, "the same chain, record for record");

    let result = sim.item().unwrap().ballots[0].result.clone().unwrap();
    assert!(
        result.explanation.contains("by lot, seed"),
        "{}",
        result.explanation
    );
    // The seed is the chain's head when the ballot opened, not a stand-in.
    let seed = &sim.item().unwrap().ballots[0].seed;
    assert_eq!(seed, &log[0].hash);
    let outcome = sim.item().unwrap().outcome.clone().unwrap();
    let ended_by_lot = if u64::from_str_radix(&seed[..16], 16).unwrap() % 2 == 1 {
        "adopted"
    } else {
        "rejected"
    };
    assert_eq!(outcome, ended_by_lot);
    // And the daemon's own replay of its log gives the simulator's item.
    let replayed = councild::engine::replay(|_| Some(&workflow), tz, "simulated-1", &log)
        .unwrap()
        .unwrap();
    assert_eq!(Some(&replayed), sim.item());
}
