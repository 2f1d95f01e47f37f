//! `councild simulate`: dry runs that print a timeline and each ballot's arithmetic.

use serde_json::Value;

use crate::harness::{Council, repo};

fn sample_council(workflows: &[(&str, &str)]) -> Council {
    let roster = std::fs::read_to_string(repo().join("config/council.yaml")).unwrap();
    let regulation =
        std::fs::read_to_string(repo().join("workflows/regulation-adoption.yaml")).unwrap();
    let mut all = vec![("regulation-adoption.yaml", regulation.as_str())];
    all.extend_from_slice(workflows);
    Council::new(&roster, &all)
}

fn json(council: &Council, args: &[&str]) -> Value {
    let (code, out) = council.run(&[&["simulate", "--json"], args].concat());
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_regulation_is_simulated_from_circulation_to_its_number() {
    let council = sample_council(&[]);
    let (code, text) = council.run(&[
        "simulate",
        "regulation-adoption",
        "--votes",
        "yes=40,no=10,abstain=3",
        "--input",
        "title=Joint teams",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ballot opens in vote: 55 eligible"), "{text}");
    assert!(text.contains("mail vote-receipt to 53"), "{text}");
    assert!(
        text.contains("abstain 3, no 10, yes 40 → adopted"),
        "{text}"
    );
    assert!(
        text.contains("40 >= 2/3 * (40 + 10)"),
        "the arithmetic: {text}"
    );
    assert!(text.contains("outcome: adopted (CPCC/REG/"), "{text}");
    assert!(
        !council.path().join("data").exists(),
        "a simulation stores nothing"
    );

    let report = json(
        &council,
        &[
            "regulation-adoption",
            "--votes",
            "yes=30,no=20",
            "--input",
            "title=T",
        ],
    );
    let ballot = &report["ballots"][0];
    assert_eq!(ballot["stage"], "vote");
    assert_eq!(
        ballot["counts"],
        serde_json::json!({"yes": 30, "no": 20, "abstain": 0})
    );
    assert_eq!(ballot["quorum"], true);
    assert_eq!(ballot["verdict"], "rejected", "30 < 2/3 of 50");
    assert_eq!(report["outcome"], "rejected");

    // Without quorum the draft goes back to circulation, and with the same votes for ever.
    let report = json(
        &council,
        &[
            "regulation-adoption",
            "--votes",
            "yes=10",
            "--input",
            "title=T",
        ],
    );
    assert_eq!(report["ballots"][0]["quorum"], false);
    assert_eq!(report["ballots"][0]["verdict"], "no_quorum");
    assert!(
        report["stopped"].as_str().unwrap().contains("loop"),
        "{report}"
    );
}

const QMV: &str = r#"
workflow: eu-style
start: vote
stages:
  vote:
    ballot:
      question: "Adopt?"
      closes_after: 7d
      pass: qualified_majority_eu
      close: at_deadline
    outcomes: { adopted: yes, rejected: no, no_quorum: no }
  yes: { end: adopted }
  no: { end: rejected }
"#;

#[test]
fn weighted_rules_are_simulated_from_a_ballots_file() {
    let council = sample_council(&[("eu-style.yaml", QMV)]);
    // The four most populous members vote no: enough to block by population and members.
    std::fs::write(
        council.path().join("big-no.yaml"),
        "IDN: no\nPAK: no\nNGA: no\nBGD: no\nTUR: yes\nEGY: yes\nIRN: yes\n",
    )
    .unwrap();
    let report = json(&council, &["eu-style", "--ballots", "big-no.yaml"]);
    assert_eq!(report["ballots"][0]["verdict"], "rejected", "{report}");
    assert!(
        report["ballots"][0]["explanation"]
            .as_str()
            .unwrap()
            .contains("weight(population"),
        "{report}"
    );

    let bad = council.path().join("workflows/bad-weight.yaml");
    std::fs::write(
        &bad,
        QMV.replace("eu-style", "bad-weight").replace(
            "qualified_majority_eu",
            "\"weight(popluation, yes) > 1/2 * weight(population)\"",
        ),
    )
    .unwrap();
    let (code, out) = council.run(&["simulate", "workflows/bad-weight.yaml", "--votes", "yes=1"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("workflows/bad-weight.yaml:9:21:")
            && out.contains("did you mean `population`?"),
        "{out}"
    );
}

#[test]
fn a_statute_waits_for_its_signals_in_a_simulation() {
    let workflow =
        std::fs::read_to_string(repo().join("workflows/statute-ratification.yaml")).unwrap();
    let council = sample_council(&[("statute-ratification.yaml", &workflow)]);
    let (code, text) = council.run(&[
        "simulate",
        "statute-ratification",
        "--votes",
        "",
        "--input",
        "title=Statute",
    ]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(
            "no outcome: waits at stage `open-for-ratification` for signal `ratification_deposited`"
        ),
        "{text}"
    );
}

const TIE: &str = r#"
workflow: tied-motion
title: A motion that may tie
start: vote
stages:
  vote:
    ballot:
      question: "Adopt?"
      choices: [yes, no]
      closes_after: 7d
      pass: "yes > no"
      tie: lot
      close: at_deadline
    outcomes: { adopted: adopted, rejected: rejected, no_quorum: rejected }
  adopted:
    end: adopted
  rejected:
    end: rejected
"#;

#[test]
fn a_tie_by_lot_is_drawn_from_the_simulated_chain_as_the_daemon_would() {
    let council = sample_council(&[("tied-motion.yaml", TIE)]);
    let (code, text) = council.run(&["simulate", "tied-motion", "--votes", "yes=20,no=20"]);
    assert_eq!(code, 0, "{text}");
    // "tie 20–20: by lot, seed N is odd → adopted" (or even → rejected).
    let at = text.find("by lot, seed ").expect(&text) + "by lot, seed ".len();
    let seed: u64 = text[at..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect(&text);
    assert_ne!(
        seed, 0,
        "the seed is the chain's head, not a stand-in: {text}"
    );
    let outcome = if seed % 2 == 1 { "adopted" } else { "rejected" };
    assert!(text.contains(&format!("outcome: {outcome}")), "{text}");
}
