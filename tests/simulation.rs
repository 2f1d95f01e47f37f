//! Deterministic simulation: the pure engine under seeded random interleavings of votes,
//! signals, deadline extensions, cancellations, timer storms and restarts from the log, with
//! the invariants checked after every step. CI runs seeds 0..64; replay one failing seed
//! with `COUNCILD_SEED=N cargo test --test simulation`, or run many more with
//! `COUNCILD_SEEDS=10000 cargo test --release --test simulation`.

use chrono::{Duration, TimeZone, Utc};
use councild::definition::{self, Known, Workflow};
use councild::engine::{Event, Status};
use councild::roster::Roster;
use councild::simulate::Simulator;
use rand::{Rng, SeedableRng, rngs::StdRng};

fn workflow(name: &str) -> Workflow {
    let path = format!("{}/workflows/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    definition::load(
        &std::fs::read_to_string(path).unwrap(),
        &Known {
            templates: None,
            roster: None,
        },
    )
    .unwrap()
}

fn run(seed: u64, workflows: &[Workflow], roster: &Roster) {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = &workflows[rng.gen_range(0..workflows.len())];
    let tz = "Europe/Istanbul".parse().unwrap();
    let mut sim = Simulator::new(
        w,
        roster,
        tz,
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap(),
    );
    let inputs = if w.inputs.contains_key("title") {
        [("title".to_string(), format!("seed {seed}"))].into()
    } else {
        Default::default()
    };
    sim.start(inputs).unwrap();
    let members: Vec<String> = roster.members.iter().map(|m| m.id.clone()).collect();
    for step in 0..400 {
        let item = sim.item().unwrap().clone();
        if item.status == Status::Ended {
            break;
        }
        let ballot = item.ballots.len().checked_sub(1);
        let _ = match rng.gen_range(0..100) {
            0..55 => match ballot {
                Some(b) => {
                    let member = members[rng.gen_range(0..members.len())].clone();
                    let choice = ["yes", "no", "abstain", "maybe"][rng.gen_range(0..4)].to_string();
                    sim.apply(Event::VoteCast {
                        ballot: b,
                        member,
                        choice,
                        proofs: None,
                    })
                }
                None => Ok(()),
            },
            55..70 => {
                let member = Some(members[rng.gen_range(0..members.len())].clone());
                sim.apply(Event::Signal {
                    name: "ratification_deposited".into(),
                    member,
                    data: serde_json::Value::Null,
                    members: 57,
                    eligible: 55,
                    groups: Vec::new(),
                })
            }
            70..85 => {
                sim.advance();
                Ok(())
            }
            // A timer storm: everything pending fires, in due order.
            85..90 => {
                for _ in 0..item.timers.len() {
                    sim.advance();
                }
                Ok(())
            }
            90..94 => match ballot {
                Some(b) => {
                    let closes_at =
                        item.ballots[b].closes_at + Duration::hours(rng.gen_range(-2..48));
                    sim.apply(Event::DeadlineExtended {
                        reason: None,
                        ballot: b,
                        closes_at,
                    })
                }
                None => Ok(()),
            },
            94..95 => sim.apply(Event::Cancelled {
                reason: format!("seed {seed}"),
            }),
            // A restart: the state is rebuilt from the log and must be the same.
            _ => {
                let rebuilt = sim
                    .replayed()
                    .unwrap_or_else(|e| panic!("seed {seed} step {step}: replay refused: {e}"));
                assert_eq!(
                    rebuilt.as_ref(),
                    sim.state.as_ref(),
                    "seed {seed} step {step}: replay differs"
                );
                sim.state = rebuilt;
                Ok(())
            }
        };
        let item = sim.item().unwrap();
        for b in &item.ballots {
            assert!(
                b.cast() <= b.electorate.len(),
                "seed {seed} step {step}: more votes than voters"
            );
            assert_eq!(
                b.votes().count(),
                b.cast(),
                "seed {seed} step {step}: the count of votes is off"
            );
            for (v, c) in b.votes() {
                assert!(
                    b.choices.iter().any(|x| x == c),
                    "seed {seed}: {} chose unknown {c}",
                    v.member
                );
            }
            if let Some(r) = &b.result {
                assert_eq!(
                    r.counts.values().sum::<u64>(),
                    b.cast() as u64,
                    "seed {seed}: the tally counts each vote once"
                );
            }
        }
        assert!(
            item.ballots.iter().filter(|b| b.result.is_none()).count() <= 1,
            "seed {seed}: two open ballots"
        );
        if item.status == Status::Ended {
            assert!(
                item.timers.is_empty(),
                "seed {seed}: an ended item keeps timers"
            );
        }
        if let Some(n) = &item.register_number {
            assert!(
                n.ends_with("/001"),
                "seed {seed}: one item, one number: {n}"
            );
        }
    }
    let rebuilt = sim.replayed().unwrap();
    assert_eq!(
        rebuilt.as_ref(),
        sim.state.as_ref(),
        "seed {seed}: replay at the end differs"
    );
}

#[test]
fn seeded_runs_keep_every_invariant() {
    let workflows = [
        workflow("regulation-adoption"),
        workflow("statute-ratification"),
        workflow("council-session"),
    ];
    let roster = Roster::parse(
        include_str!("../config/council.yaml"),
        councild::mail::is_address,
    )
    .unwrap();
    let seeds: Vec<u64> = match (
        std::env::var("COUNCILD_SEED"),
        std::env::var("COUNCILD_SEEDS"),
    ) {
        (Ok(one), _) => vec![one.parse().expect("COUNCILD_SEED is a number")],
        (_, Ok(n)) => (0..n.parse().expect("COUNCILD_SEEDS is a number")).collect(),
        _ => (0..64).collect(),
    };
    for seed in seeds {
        run(seed, &workflows, &roster);
    }
}
