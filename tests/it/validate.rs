//! `councild validate`: the shipped workflows are clean; broken files get every problem,
//! each with its line and column, and exit code 1.

use crate::harness::{Council, ROSTER, repo};

#[test]
fn the_shipped_workflows_are_valid() {
    let out = crate::harness::councild()
        .arg("validate")
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for name in [
        "regulation-adoption",
        "statute-ratification",
        "council-session",
        "regulation-in-session",
        "session-decision",
    ] {
        assert!(
            stdout.contains(&format!("workflows/{name}.yaml: ok")),
            "{stdout}"
        );
    }
}

const BROKEN: &str = r#"workflow: broken
start: circulat
stages:
  circulate:
    notify: { to: members, template: draft-circulatd }
    after: 14x
    nxt: vote
  vote:
    ballot:
      question: "Adopt?"
      choices: [yes, no, abstain]
      closes_after: 7d
      quorum: "cast >= 2/3 * eligble"
      pass: "yes >= 2/3 * (yes + no"
      close: sometime
    outcomes: { adopted: adpot, rejected: rejected, no_quorum: rejected }
  rejected:
    end: rejected
  orphan:
    next: rejected
"#;

#[test]
fn broken_files_get_every_error_with_line_and_column() {
    let council = Council::new(
        ROSTER,
        &[
            ("broken.yaml", BROKEN),
            ("syntax.yaml", "workflow: x\nstages: [a, b\n"),
        ],
    );
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    let expected = [
        "workflows/broken.yaml:2:8: stage `circulat` does not exist; did you mean `circulate`?",
        "workflows/broken.yaml:5:38: template `draft-circulatd` does not exist in the templates folder; did you mean `draft-circulated`?",
        "workflows/broken.yaml:6:12: bad duration `14x`",
        "workflows/broken.yaml:7:5: unknown key `nxt` in stage `circulate`; did you mean `next`?",
        "workflows/broken.yaml:13:30: in rule `cast >= 2/3 * eligble`: unknown name `eligble`; did you mean `eligible`?",
        "workflows/broken.yaml:15:14: unknown `close` `sometime`",
        "workflows/broken.yaml:16:26: stage `adpot` does not exist",
    ];
    for e in expected {
        assert!(out.contains(e), "missing `{e}` in:\n{out}");
    }
    assert!(
        out.contains("workflows/broken.yaml:14:27: in rule `yes >= 2/3 * (yes + no`: unclosed `(`"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("workflows/syntax.yaml:3:1: YAML syntax")
                || l.starts_with("workflows/syntax.yaml:2:")),
        "{out}"
    );

    // A workflow that cannot be reached and one with no way out.
    let council = Council::new(
        ROSTER,
        &[(
            "shape.yaml",
            "workflow: shape\nstart: a\nstages:\n  a:\n    end: done\n  b:\n    notify: { to: members, template: ballot }\n",
        )],
    );
    let (code, out) = council.run(&["validate", "workflows/shape.yaml"]);
    assert_eq!(code, 1);
    assert!(
        out.contains("workflows/shape.yaml:6:3: stage `b` is unreachable from `a`"),
        "{out}"
    );
    assert!(
        out.contains("workflows/shape.yaml:6:3: stage `b` has no way out"),
        "{out}"
    );
}

#[test]
fn the_daemon_refuses_to_start_on_an_invalid_workflow() {
    let council = Council::new(ROSTER, &[("broken.yaml", BROKEN)]);
    let (code, out) = council.run(&["serve"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("workflows/broken.yaml:2:8: stage `circulat` does not exist"),
        "{out}"
    );
}

/// "Billion laughs": nine levels of ten aliases, a billion nodes once expanded.
fn alias_bomb() -> String {
    let mut text = String::from(
        "workflow: bomb\nstages:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 10].join(",");
        text.push_str(&format!("  {name}: &{name} [{refs}]\n"));
    }
    text
}

/// `levels` nested block sequences: `- ` under `- ` under ...
fn nested(levels: usize) -> String {
    (0..levels)
        .map(|i| format!("{}- \n", "  ".repeat(i)))
        .collect()
}

#[test]
fn hostile_workflow_files_are_refused_with_a_position() {
    let duplicate = "workflow: twice\nstart: a\nstart: b\nstages:\n  a:\n    end: done\n";
    let council = Council::new(
        ROSTER,
        &[
            ("bomb.yaml", &alias_bomb()),
            ("deep.yaml", &nested(20_000)),
            (
                "flow.yaml",
                &format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)),
            ),
            ("twice.yaml", duplicate),
            ("two.yaml", "workflow: two\n---\nworkflow: three\n"),
        ],
    );
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "workflows/bomb.yaml:3:9: aliases and anchors are not allowed",
        "workflows/deep.yaml:65:129: nested more than 64 levels deep",
        // The scanner refuses unclosed flow collections past 256 before any event.
        "workflows/flow.yaml:1:256: YAML syntax: recursion limit exceeded",
        "workflows/twice.yaml:3:1: key `start` is given twice in this mapping (first at 2:1)",
        "workflows/two.yaml:2:1: a second YAML document starts here; a file holds one",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn a_byte_order_mark_is_not_content() {
    let shipped = std::fs::read_to_string(repo().join("workflows/council-session.yaml")).unwrap();
    let council = Council::new(ROSTER, &[("bom.yaml", &format!("\u{feff}{shipped}"))]);
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("workflows/bom.yaml: ok"), "{out}");
}

#[test]
fn hostile_rosters_are_refused_with_a_position() {
    let members: String = nested(20_000).lines().map(|l| format!("  {l}\n")).collect();
    let council = Council::new(&format!("council: X\nmembers:\n{members}"), &[]);
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("nested more than 64 levels deep"), "{out}");

    let roster = ROSTER.replace(
        "    voting_right: false",
        "    voting_right: true\n    voting_right: false",
    );
    let (code, out) = Council::new(&roster, &[]).run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    let expected = "config/council.yaml:22:5: key `voting_right` is given twice in this mapping (first at 21:5)";
    assert!(out.contains(expected), "missing `{expected}` in:\n{out}");

    let roster = ROSTER
        .replace("id: BBB", "id: \"BB\\nB\"")
        .replace("ccc.first@example.org", "\"ccc@[127.0.0.1]\"");
    let (code, out) = Council::new(&roster, &[]).run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "config/council.yaml:10:9: member id \"BB\\nB\" contains '\\n'",
        "config/council.yaml:17:34: `ccc@[127.0.0.1]` is not an email address",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

/// Texts per language: a key that is not a language code, a choice without its id, a
/// label that is not a text: each refused at its line and column.
#[test]
fn bad_language_keys_and_choice_labels_get_a_position() {
    let texts = r#"workflow: texts
start: vote
stages:
  vote:
    ballot:
      question:
        en: "Adopt?"
        french: "Adopter ?"
      choices:
        - { id: yes, label: { ar: نعم, fr: Oui } }
        - { label: { en: "No" } }
        - { id: abstain, label: [a, b] }
      closes_after: 7d
      pass: "yes > 0"
    outcomes: { adopted: done, rejected: done, no_quorum: done }
  done:
    end: done
"#;
    let council = Council::new(ROSTER, &[("texts.yaml", texts)]);
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    for e in [
        "workflows/texts.yaml:8:9: `french` in `question` is not a language code (`ar`, `en`, `fr`, …)",
        "workflows/texts.yaml:11:13: a choice needs `id`",
        "workflows/texts.yaml:12:26: a choice's `label` must be a text, or a text per language",
    ] {
        assert!(out.contains(e), "missing `{e}` in:\n{out}");
    }
}

/// A language of the roster's delegates without a text is a warning, not an error: the
/// file is valid, and `validate` says who reads which text instead.
#[test]
fn a_language_without_its_text_is_a_warning_that_says_what_is_read_instead() {
    let two = r#"workflow: two
start: vote
stages:
  vote:
    ballot:
      question: { en: "Adopt?", fr: "Adopter ?" }
      choices:
        - { id: yes, label: { en: "Yes", fr: Oui } }
        - no
      closes_after: 7d
      pass: "yes > no"
    outcomes: { adopted: done, rejected: done, no_quorum: done }
  done:
    end: done
"#;
    let one = two.replace(
        "question: { en: \"Adopt?\", fr: \"Adopter ?\" }",
        "question: \"Adopt?\"",
    );
    let council = Council::new(
        ROSTER,
        &[
            ("two.yaml", two),
            (
                "one.yaml",
                one.replacen("workflow: two", "workflow: one", 1).as_str(),
            ),
        ],
    );
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 0, "warnings do not refuse a file:\n{out}");
    for e in [
        "workflows/two.yaml: ok",
        "workflows/two.yaml:6:7: warning: `question` has no `ar` text: delegates reading `ar` get the `en` one",
        "workflows/two.yaml:7:7: warning: the label of `yes` has no `ar` text: delegates reading `ar` get the `en` one",
        "workflows/one.yaml:6:7: warning: `question` is in one language; the roster's delegates read `ar`, `en`, `fr`",
    ] {
        assert!(out.contains(e), "missing `{e}` in:\n{out}");
    }
}

const BAD_SESSION: &str = r#"workflow: bad-session
start: call
stages:
  call:
    proposals: true
    after: 1d
    next: vote
  vote:
    ballot:
      in_session: true
      question: "Adopt?"
      closes_after: 7d
      pass: "yes > no"
    outcomes: { adopted: done, rejected: done, no_quorum: done }
  done:
    end: done
"#;

const BAD_MEETING: &str = r#"workflow: bad-meeting
start: meeting
stages:
  meeting:
    meeting: yes please
    after: 1d
    next: done
  done:
    end: done
"#;

#[test]
fn sessions_and_votes_in_session_get_clear_errors_with_line_and_column() {
    let council = Council::new(
        ROSTER,
        &[("session.yaml", BAD_SESSION), ("meeting.yaml", BAD_MEETING)],
    );
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    for e in [
        "workflows/session.yaml:4:3: stage `call` takes proposals of agenda points, but the workflow has no `meeting` stage",
        "workflows/session.yaml:12:7: a ballot taken in session closes when its vote is recorded in the room: it has no `closes_after`",
        "workflows/meeting.yaml:5:14: `meeting` must be true or false",
    ] {
        assert!(out.contains(e), "missing `{e}` in:\n{out}");
    }
    let fixed = BAD_MEETING.replace("yes please", "true");
    let (code, out) = Council::new(ROSTER, &[("meeting.yaml", &fixed)]).run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    let e = "workflows/meeting.yaml:6:5: stage `meeting` is a meeting: it ends when the chair closes it and goes to `next`, so it cannot have `after`";
    assert!(out.contains(e), "missing `{e}` in:\n{out}");
}

const LABELS: &str = r#"workflow: chair-election
title: Election of the chair
start: vote
stages:
  vote:
    ballot:
      question: "Who shall chair the council?"
      choices:
        - { id: öztürk, label: { en: "Ms Öztürk", fr: "Mme Öztürk" } }
        - { id: al_farsi, label: { en: "Mr Al-Farsi", fr: "Mme Öztürk" } }
      closes_after: 1d
      pass: "öztürk > al_farsi"
    outcomes: { adopted: done, rejected: done, no_quorum: done }
  done:
    end: done
"#;

#[test]
fn choices_of_any_script_are_taken_and_labels_that_read_the_same_are_refused() {
    let council = Council::new(ROSTER, &[("chair.yaml", LABELS)]);
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    let e = "workflows/chair.yaml:8:7: choices `öztürk` and `al_farsi` read the same in `fr` (`Mme Öztürk`): a reader could not tell them apart";
    assert!(out.contains(e), "missing `{e}` in:\n{out}");
    let fixed = LABELS.replace(
        r#"fr: "Mme Öztürk" } }
      closes_after"#,
        r#"fr: "M. Al-Farsi" } }
      closes_after"#,
    );
    let (code, out) = Council::new(ROSTER, &[("chair.yaml", &fixed)]).run(&["validate"]);
    assert_eq!(code, 0, "{out}");
}

const BAD_TEXTS: &str = r#"workflow: texts
documents:
  languages: [ar, EN, fr, ar]
  comment: vote
start: circulate
stages:
  circulate:
    after: 1d
    next: vote
  vote:
    ballot:
      question: "Adopt?"
      choices: [yes, no]
      closes_after: 1d
      pass: "yes > no"
    outcomes: { adopted: done, rejected: done, no_quorum: done }
  done:
    end: done
"#;

#[test]
fn the_texts_languages_and_comment_period_get_a_position() {
    let council = Council::new(ROSTER, &[("texts.yaml", BAD_TEXTS)]);
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    for e in [
        "workflows/texts.yaml:3:19: `EN` is not a language code",
        "workflows/texts.yaml:3:27: `ar` is listed twice",
        "workflows/texts.yaml:4:12: stage `vote` is the comment period, so it needs `after:`",
    ] {
        assert!(out.contains(e), "missing `{e}` in:\n{out}");
    }
    // Fixed, but without the roster's `en`: a warning that says what its readers get.
    let fixed = BAD_TEXTS
        .replace("[ar, EN, fr, ar]", "[ar, fr]")
        .replace("comment: vote", "comment: circulate");
    let (code, out) = Council::new(ROSTER, &[("texts.yaml", &fixed)]).run(&["validate"]);
    assert_eq!(code, 0, "{out}");
    let w = "workflows/texts.yaml:3:3: warning: the roster's delegates read `en`, but the text has no `en` version";
    assert!(out.contains(w), "missing `{w}` in:\n{out}");
    let unknown = fixed.replace("comment: circulate", "comment: circulation");
    let (code, out) = Council::new(ROSTER, &[("texts.yaml", &unknown)]).run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "workflows/texts.yaml:4:12: `documents.comment` names no stage: `circulation`"
        ),
        "{out}"
    );
}

const BAD_AMENDMENTS: &str = r#"workflow: amend
start: amend
stages:
  amend:
    amendments:
      question: "Adopt amendment {{amendment.number}}?"
      closes_after: 1d
      pass: "yes > no"
    after: 1d
  done:
    end: done
"#;

#[test]
fn an_amendments_stage_needs_a_comment_period_and_a_next_stage() {
    let council = Council::new(ROSTER, &[("amend.yaml", BAD_AMENDMENTS)]);
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    for e in [
        "workflows/amend.yaml:4:3: stage `amend` votes on amendments, but the workflow has no `documents` with a `comment` stage",
        "workflows/amend.yaml:9:5: stage `amend` puts the amendments to the vote and then goes to `next`, so it cannot have `after`",
        "stage `amend` puts the amendments to the vote but has no `next` stage to go to after them",
    ] {
        assert!(out.contains(e), "missing `{e}` in:\n{out}");
    }
}

const BAD_ELECTION: &str = r#"workflow: bad-election
start: elect
stages:
  elect:
    election:
      question: "Who shall chair the council?"
      choices: [a, b]
      majority: most
      seats: 0
      close: when_decided
      quorum: "count(group: permanent) > 0"
      closes_after: 1d
    outcomes: { elected: done, rejected: done }
  done:
    end: done
"#;

#[test]
fn elections_get_clear_errors_with_line_and_column() {
    let council = Council::new(ROSTER, &[("election.yaml", BAD_ELECTION)]);
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    for e in [
        "workflows/election.yaml:7:7: unknown key `choices`",
        "workflows/election.yaml:8:17: unknown `majority` `most`: use plurality, absolute or two_thirds",
        "workflows/election.yaml:13:5: `outcomes` of stage `elect` needs `no_winner`",
    ] {
        assert!(out.contains(e), "missing `{e}` in:\n{out}");
    }
    // Once the words are right, what is left is said too.
    let fixed = BAD_ELECTION
        .replace("      choices: [a, b]\n", "")
        .replace("most", "absolute")
        .replace("rejected: done", "no_winner: done");
    let (code, out) = Council::new(ROSTER, &[("election.yaml", &fixed)]).run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    for e in [
        "`seats` must be a whole number from 1 to 100",
        "an election closes `at_deadline` or `when_all_voted`",
        "in rule `count(group: permanent) > 0`: the roster has no group `permanent`",
    ] {
        assert!(out.contains(e), "missing `{e}` in:\n{out}");
    }
    // And an election needs its candidates from somewhere.
    let fixed = fixed
        .replace("seats: 0", "seats: 1")
        .replace("when_decided", "when_all_voted")
        .replace("count(group: permanent) > 0", "cast > 1/2 * eligible");
    let (code, out) = Council::new(ROSTER, &[("election.yaml", &fixed)]).run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    let e = "workflows/election.yaml:4:3: stage `elect` holds an election, but the workflow has no `nominations` stage";
    assert!(out.contains(e), "missing `{e}` in:\n{out}");
}

/// The shipped chair election with its `secret:` and `trustees:` lines replaced.
fn secret_election(secret: &str) -> String {
    let source = std::fs::read_to_string(repo().join("workflows/chair-election.yaml")).unwrap();
    let kept: String = source
        .lines()
        .filter(|l| !l.contains("secret: true") && !l.contains("trustees:"))
        .map(|l| format!("{l}\n"))
        .collect();
    kept.replace(
        "      blank: true\n",
        &format!("      blank: true\n{secret}"),
    )
}

#[test]
fn a_secret_election_gets_clear_errors_with_line_and_column() {
    let cases = [
        (
            "      secret: true\n",
            "workflows/chair-election.yaml:34:7: a secret ballot needs `trustees: { members: [MEMBER, ...], needed: N }`",
        ),
        (
            "      trustees: { members: [AAA, BBB], needed: 1 }\n",
            "workflows/chair-election.yaml:34:7: `trustees` open a secret ballot's count: add `secret: true`",
        ),
        (
            "      secret: true\n      trustees: { members: [AAA, BBX, AAA], needed: 3 }\n",
            "workflows/chair-election.yaml:35:34: the roster has no member `BBX`; did you mean `BBB`?",
        ),
        (
            "      secret: true\n      trustees: { members: [AAA, BBX, AAA], needed: 3 }\n",
            "workflows/chair-election.yaml:35:39: trustee `AAA` is named twice",
        ),
        (
            "      secret: true\n      trustees: { members: [AAA, BBB, CCC], needed: 3 }\n",
            "workflows/chair-election.yaml:35:53: `needed` must be a whole number from 1 to one less than the trustees named (3)",
        ),
    ];
    for (lines, error) in cases {
        let source = secret_election(lines);
        let (code, out) =
            Council::new(ROSTER, &[("chair-election.yaml", &source)]).run(&["validate"]);
        assert_eq!(code, 1, "{lines}: {out}");
        assert!(out.contains(error), "missing `{error}` in:\n{out}");
    }
    // Right, it validates; and without the trustees' mail template, it does not.
    let right = secret_election(
        "      secret: true\n      trustees: { members: [AAA, BBB, CCC], needed: 2 }\n",
    );
    let council = Council::new(ROSTER, &[("chair-election.yaml", &right)]);
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 0, "{out}");
    for language in ["en", "fr", "ar"] {
        for part in ["subject", "text", "html"] {
            let file = council
                .path()
                .join(format!("templates/{language}/trustee-call.{part}.hbs"));
            std::fs::remove_file(file).unwrap();
        }
    }
    let (code, out) = council.run(&["validate"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("a secret election sends `trustee-call` to its trustees"),
        "{out}"
    );
}
