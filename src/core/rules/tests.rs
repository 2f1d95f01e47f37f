//! Rules drawn from real bodies' rules of procedure, and the edges of the language.
use super::decided::count_states;
use super::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
fn votes(list: &[(&str, u64)], eligible: u64, members: u64) -> Counts {
    let choices = list.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let voters = Vec::new();
    Counts {
        choices,
        eligible,
        members,
        voters,
        present: None,
    }
}
fn counts(yes: u64, no: u64, abstain: u64, eligible: u64, members: u64) -> Counts {
    votes(
        &[("yes", yes), ("no", no), ("abstain", abstain)],
        eligible,
        members,
    )
}
fn parse(src: &str, choices: &[String]) -> Result<Rule, RuleError> {
    Rule::parse(src, &Vocabulary::new(choices))
}
fn rule(src: &str) -> Rule {
    let choices = names(&["yes", "no", "abstain"]);
    parse(src, &choices).unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

fn voter(member: &str, choice: Option<&str>, attrs: &[(&str, u64)], groups: &[&str]) -> VoterInfo {
    VoterInfo {
        member: member.into(),
        choice: choice.map(Into::into),
        attributes: attrs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        groups: names(groups),
    }
}
fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}
/// `n` voters per (choice, n, total population), the population spread evenly over them.
fn electorate(parts: &[(Option<&str>, u64, u64)], groups: &[&str]) -> Vec<VoterInfo> {
    let mut out = Vec::new();
    for &(choice, n, pop) in parts {
        for i in 0..n {
            let share = pop / n + if i == 0 { pop % n } else { 0 };
            let id = format!("m{}", out.len());
            out.push(voter(&id, choice, &[("population", share)], groups));
        }
    }
    out
}

#[test]
fn evaluates_exactly_with_precedence() {
    // (rule, yes, no, abstain, eligible, members, expected)
    let table: &[(&str, u64, u64, u64, u64, u64, bool)] = &[
        ("yes + no * 2 == 7", 1, 3, 0, 9, 9, true),
        ("(yes + no) * 2 == 8", 1, 3, 0, 9, 9, true),
        ("yes - no - 1 == -3", 1, 3, 0, 9, 9, true),
        ("yes / 2 / 2 == 1/4 * yes", 5, 0, 0, 9, 9, true),
        ("-yes + 3 == 2", 1, 0, 0, 9, 9, true),
        ("- -yes == yes", 4, 0, 0, 9, 9, true),
        ("not yes > no or no > 0", 1, 0, 0, 9, 9, false),
        ("not (yes > no or no > 0)", 1, 0, 0, 9, 9, false),
        ("yes > no or yes == 1 and no == 100", 2, 1, 0, 9, 9, true),
        ("(yes > no or yes == 1) and no == 100", 2, 1, 0, 9, 9, false),
        ("not not yes > no", 2, 1, 0, 9, 9, true),
        ("yes*2<=no", 1, 2, 0, 5, 5, true),
        ("abstain != 0", 0, 0, 2, 5, 5, true),
        // percentages and decimals are exact rationals
        ("yes > 50% * eligible", 28, 0, 0, 57, 60, false),
        ("yes > 50% * eligible", 29, 0, 0, 57, 60, true),
        ("yes >= 12.5% * eligible", 1, 0, 0, 8, 8, true),
        ("yes >= 12.5% * eligible", 1, 0, 0, 9, 9, false),
        ("yes >= 0.5 * eligible", 5, 0, 0, 10, 10, true),
        ("yes == (0.1 + 0.2) * eligible", 3, 0, 0, 10, 10, true),
        // boundaries where floats go wrong: 2/3 of 57 is exactly 38, 2/3 of 3 exactly 2
        ("yes >= 2/3 * eligible", 38, 0, 0, 57, 57, true),
        ("yes >= 2/3 * eligible", 37, 0, 0, 57, 57, false),
        ("yes >= 2/3 * eligible", 2, 0, 0, 3, 3, true),
        ("yes >= 66.67% * eligible", 2, 0, 0, 3, 3, false),
        ("cast >= 2/3 * eligible", 20, 15, 3, 57, 60, true),
        ("cast > 1/2 * members", 20, 10, 0, 57, 60, false),
        ("yes > 50% * eligible and no == 0", 30, 0, 1, 57, 57, true),
    ];
    for &(src, y, n, a, e, m, want) in table {
        assert_eq!(rule(src).eval(&counts(y, n, a, e, m)), Ok(want), "{src}");
    }
    assert_eq!(rule("yes > no"), rule("yes > no").clone());
}

#[test]
fn hyphenated_choice_names() {
    let cs = names(&["option-a", "option_b"]);
    let c = votes(&[("option-a", 5), ("option_b", 3)], 8, 8);
    for src in [
        "option-a > option_b",
        "option-a - option_b == 2",
        "option-a- option_b == 2",
    ] {
        assert_eq!(parse(src, &cs).map(|r| r.eval(&c)), Ok(Ok(true)), "{src}");
    }
    let e = parse("option-a-option_b > 0", &cs).unwrap_err();
    assert_eq!(
        e.message,
        "unknown name `option-a-option_b`; to subtract, put spaces around `-`"
    );
}

#[test]
fn presets() {
    // (preset, yes, no, eligible, expected)
    let table: &[(&str, u64, u64, u64, bool)] = &[
        ("simple_majority", 5, 4, 20, true),
        ("simple_majority", 4, 4, 20, false),
        ("absolute_majority", 10, 0, 20, false),
        ("absolute_majority", 11, 0, 20, true),
        ("two_thirds_present_and_voting", 30, 15, 57, true),
        ("two_thirds_present_and_voting", 29, 15, 57, false),
        ("three_fifths", 3, 2, 9, true),
        ("three_fifths", 5, 4, 9, false),
        ("unanimity", 9, 0, 9, true),
        ("unanimity", 8, 0, 9, false),
        ("consensus", 3, 0, 9, true),
        ("consensus", 8, 1, 9, false),
        ("majority_of_members", 5, 0, 9, true),
        ("majority_of_members", 4, 0, 9, false),
        ("two_thirds_of_members", 4, 2, 9, true),
        ("two_thirds_of_members", 3, 2, 9, false),
    ];
    let yn = names(&["yes", "no"]);
    for &(preset, y, n, e, want) in table {
        let (r, c) = (
            parse(preset, &yn).unwrap(),
            votes(&[("yes", y), ("no", n)], e, e),
        );
        assert_eq!((r.source(), r.eval(&c)), (preset, Ok(want)));
        let expansion = PRESETS.iter().find(|p| p.0 == preset).unwrap().1;
        assert_eq!(r.expression(), expansion);
        assert_eq!(parse(expansion, &yn).unwrap().eval(&c), Ok(want));
    }
    assert_eq!(PRESETS.len(), 11);
    let for_against = names(&["for", "against"]);
    let e = parse("  consensus", &for_against).unwrap_err();
    assert_eq!(e.offset, 2);
    assert!(
        e.message
            .starts_with("preset `consensus` means `no == 0`, which does not fit")
    );
    assert!(e.message.contains("unknown name `no`"), "{e:?}");
    assert!(parse("majority_of_members", &for_against).is_ok());
    let padded = rule(" consensus ");
    assert_eq!(
        (padded.source(), padded.expression()),
        (" consensus ", "no == 0".into())
    );
}

#[test]
fn parse_errors_have_offsets_and_messages() {
    // (source, char offset, message fragment)
    let table: &[(&str, usize, &str)] = &[
        ("", 0, "empty rule"),
        ("   ", 0, "empty rule"),
        (
            "yes >",
            5,
            "expected a number, a name or `(`, found the end of the rule",
        ),
        ("(yes > no", 0, "unclosed `(`"),
        ("((yes > no)", 0, "unclosed `(`"),
        ("(yes > (no)", 0, "unclosed `(`"),
        ("yes > no)", 8, "unmatched `)`"),
        (
            "(yes > no no)",
            10,
            "expected `)` for the `(` at 0, found `no`",
        ),
        (
            "yes > no no",
            9,
            "unexpected `no`; expected `and`, `or` or the end",
        ),
        ("yes < no < 3", 9, "comparisons cannot be chained"),
        ("yess > no", 0, "unknown name `yess`; did you mean `yes`?"),
        ("yes > eligble", 6, "did you mean `eligible`?"),
        (
            "yes > quorum",
            6,
            "known names: yes, no, abstain, cast, eligible, members",
        ),
        ("simple_majorty", 0, "did you mean `simple_majority`?"),
        (
            "yes + (no > 1) > 0",
            6,
            "expected a number, but `no > 1` is a condition",
        ),
        (
            "yes + no",
            0,
            "a rule must be a condition such as `yes > no`, but `yes + no` is",
        ),
        (
            "yes and no > 1",
            0,
            "expected a condition (such as a comparison), but `yes` is a",
        ),
        ("not yes", 4, "expected a condition"),
        ("(yes > no) < 3", 0, "`yes > no` is a condition"),
        (
            "1 > 0",
            2,
            "`1 > 0` is always true; a rule must depend on the votes",
        ),
        ("yes > no or 1 > 2", 14, "`1 > 2` is always false"),
        ("2/3 * 3 == 2 and yes > 1", 8, "always true"),
        ("yes > no / 0", 11, "division by zero"),
        ("1/0 > 1", 2, "division by zero"),
        ("yes / (2 - 2) > 1", 6, "division by zero"),
        (
            "yes > 99999999999999999 * 99999999999999999 * 99999999999",
            44,
            "arithmetic overflow",
        ),
        ("yes = no", 4, "unexpected `=`; use `==`"),
        ("yes > no && no == 0", 9, "use `and`"),
        ("!yes", 0, "use `!=` or `not`"),
        (
            "yes > 99999999999999999999999999999999999999999",
            6,
            "too large",
        ),
        ("yes > 1.", 7, "a decimal point must be followed by digits"),
        ("yes > é", 6, "unknown name `é`"), // a letter: choices may be `öztürk`
        ("yes > no or ü", 12, "unknown name `ü`"), // char, not byte, offsets
        ("yes > §", 6, "unexpected character `§`"),
        ("and > 1", 0, "found `and`"),
        ("yes > not no", 6, "found `not`"),
        ("yes >= 50 %", 10, "unexpected character `%`"),
    ];
    for &(src, offset, fragment) in table {
        let e = parse(src, &names(&["yes", "no", "abstain"])).expect_err(src);
        assert_eq!(e.offset, offset, "{src}: {e:?}");
        assert!(e.message.contains(fragment), "{src}: {e:?}");
    }
    let clash = parse("yes > no", &names(&["yes", "no", "cast"])).unwrap_err();
    assert_eq!(
        clash.message,
        "choice `cast` clashes with the built-in `cast`"
    );
    let deep = format!("{}yes > no{}", "(".repeat(40), ")".repeat(40));
    let e = parse(&deep, &names(&["yes", "no"])).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{e:?}");
    let e = parse(&format!("yes > 0{}", " + 1".repeat(300)), &[]).unwrap_err();
    assert!(e.message.contains("too long"), "{e:?}");
    let long = rule(&format!("yes > 0{}", " + 1".repeat(200)));
    assert_eq!(long.eval(&counts(200, 0, 0, 1, 1)), Ok(false));
}

#[test]
fn eval_errors_are_errors_not_panics() {
    let e = rule("yes / no > 1")
        .eval(&counts(3, 0, 0, 3, 3))
        .unwrap_err();
    assert_eq!(e.0, "division by zero in `yes / no`");
    let big = counts(u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX);
    let e = rule("yes * no * abstain > 0").eval(&big).unwrap_err();
    assert_eq!(e.0, "arithmetic overflow in `yes * no`"); // (2^64 - 1)^2 exceeds i128
    assert_eq!(rule("yes + no > 2 * eligible - 1").eval(&big), Ok(true));
    assert_eq!(rule("cast > 0").eval(&big), Ok(true)); // `cast` saturates
    // `and`/`or` short-circuit: the failing side is not evaluated
    assert_eq!(
        rule("no == 0 or yes / no > 1").eval(&counts(3, 0, 0, 3, 3)),
        Ok(true)
    );
}

#[test]
fn explains_with_numbers_substituted() {
    let yn = names(&["yes", "no"]);
    let explain = |src: &str, c: &Counts| parse(src, &yn).unwrap().explain(c);
    let c = votes(&[("yes", 30), ("no", 10)], 57, 60);
    let table = [
        (
            "two_thirds_present_and_voting",
            "yes >= 2/3 * (yes + no): 30 >= 2/3 * (30 + 10) → 30 >= 26 2/3 → true",
        ),
        (
            "yes > 50% * eligible and no == 0",
            "yes > 50% * eligible and no == 0: (30 > 50% * 57 → 30 > 28 1/2 → true) \
             and (10 == 0 → false) → false",
        ),
        (
            "not (yes - no < -1/3)",
            "not (yes - no < -1/3): not (30 - 10 < -1/3 → 20 < -1/3 → false) → true",
        ),
        ("yes>no", "yes>no: 30 > 10 → true"),
    ];
    for (src, want) in table {
        assert_eq!(explain(src, &c), want);
    }
    let zero_no = votes(&[("yes", 1), ("no", 0)], 1, 1);
    let e = explain("yes / no > 1", &zero_no);
    assert!(
        e.ends_with("→ error: division by zero in `yes / no` (counted as false)"),
        "{e}"
    );
    assert_eq!(fmt_ratio(R::new(-4, 3)), "-1 1/3");
    assert_eq!(fmt_ratio(R::new(6, 3)), "2");
}

#[test]
fn tally_checks_quorum_first() {
    let (q, p) = (rule("majority_of_members"), rule("simple_majority"));
    // (with quorum, yes, no, eligible, verdict)
    let table = [
        (true, 1, 0, 9, Verdict::NoQuorum),
        (true, 0, 5, 9, Verdict::Rejected),
        (true, 5, 0, 9, Verdict::Adopted),
        (false, 1, 0, 9, Verdict::Adopted),
        (false, 0, 0, 9, Verdict::Rejected),
    ];
    for (with_quorum, y, n, e, want) in table {
        let t = tally(with_quorum.then_some(&q), &p, None, &counts(y, n, 0, e, e));
        assert_eq!(t.verdict, want, "{t:?}");
        assert!(t.explanation.starts_with(want.as_str()), "{t:?}");
    }
    let t = tally(Some(&q), &p, None, &counts(1, 0, 0, 9, 9));
    let want = "no_quorum — quorum cast > 1/2 * eligible: 1 > 1/2 * 9 → 1 > 4 1/2 → false";
    assert_eq!(t.explanation, want);
    let t = tally(Some(&q), &p, None, &counts(5, 0, 0, 9, 9));
    assert!(
        t.explanation.ends_with("; pass yes > no: 5 > 0 → true"),
        "{t:?}"
    );
    // an evaluation error counts as false, and says so
    let t = tally(
        Some(&rule("cast / no > 1")),
        &p,
        None,
        &counts(5, 0, 0, 9, 9),
    );
    assert_eq!(t.verdict, Verdict::NoQuorum);
    assert_eq!(t.decided_by, DecidedBy::Quorum);
    assert!(
        t.explanation
            .contains("division by zero in `cast / no` (counted as false)")
    );
    assert_eq!(
        tally(None, &rule("yes / no > 1"), None, &counts(5, 0, 0, 9, 9)).verdict,
        Verdict::Rejected
    );
    for v in Verdict::ALL {
        assert_eq!(Verdict::parse(v.as_str()), Some(v));
    }
    assert_eq!(Verdict::parse("passed"), None);
}

#[test]
fn decided_only_when_no_final_tally_changes_the_verdict() {
    let yn = names(&["yes", "no"]);
    let r = |s: &str| parse(s, &yn).unwrap();
    let (quorum, two_thirds) = (r("majority_of_members"), r("yes >= 2/3 * eligible"));
    type Case<'a> = (Option<&'a Rule>, &'a Rule, u64, u64, u64, bool);
    // (quorum, pass, yes, no, eligible, decided)
    let table: &[Case] = &[
        (None, &two_thirds, 39, 0, 57, false), // the 39 may still change their votes
        (None, &two_thirds, 57, 0, 57, false), // even when everyone voted yes
        (None, &r("consensus"), 5, 1, 10, false), // the `no` can be changed
        (None, &r("consensus"), 9, 0, 9, false), // and a `yes` can become a `no`
        (None, &r("cast >= 6"), 4, 2, 10, true), // cast never decreases
        (None, &r("cast >= 6"), 4, 1, 10, false),
        (Some(&quorum), &r("cast >= 6"), 4, 2, 10, true), // a met quorum stays met
        (Some(&quorum), &r("cast >= 6"), 3, 2, 10, false), // no quorum yet, it may come
        (Some(&r("cast > members")), &two_thirds, 0, 0, 20, true), // quorum unreachable
        (None, &r("yes >= 0"), 3, 0, 20, true),
        (None, &r("cast == eligible"), 3, 2, 5, true), // everyone has voted
        (None, &r("yes > no"), 0, 0, 0, true),         // nobody can vote
        (None, &r("cast >= 0"), 0, 0, 100_000, false), // too many tallies to enumerate
    ];
    for (i, &(q, p, y, n, e, want)) in table.iter().enumerate() {
        let c = votes(&[("yes", y), ("no", n)], e, e);
        assert_eq!(decided(q, p, None, &c), want, "case {i}: {}", p.source());
    }
    // three choices: C(60, 3) = 34220 final tallies, all within the rule
    assert!(decided(
        None,
        &rule("cast <= eligible"),
        None,
        &counts(10, 10, 10, 57, 57)
    ));
    assert_eq!(count_states(3, 0, 57), Some(34220));
    assert_eq!(count_states(2, 5, 5), Some(6));
    assert_eq!(count_states(0, 0, 9), Some(1));
    assert_eq!(count_states(40, 0, u64::MAX), None);
}

/// One odd input per line (the first line is the empty rule).
const ODD_INPUTS: &str = "
 \t
(((
)))
()
(yes
yes)
1/0 > 1
yes / 0 > 1
yes / no > 0
99999999999999999999999999999999999999999 > yes
170141183460469231731687303715884105727 > yes
yes > 170141183460469231731687303715884105727 * 2
yes * 170141183460469231731687303715884105727 > 0
-170141183460469231731687303715884105727 - 1 < yes
yes - 170141183460469231731687303715884105727 - 2 < 0
yes / 0.0000000000000000000000000000000000001 > 1
0.00000000000000000000000000000000000000001 < yes
100000000000000000000000000000000000000% > yes
yes ÷ 2 > 1
ÿés > nö
🗳 > 0
yes\u{0} > 0
yes >= 2/3*(yes+no)
not
not not
and
or or
> no
yes == == no
yes <> no
yes => no
--
- - - yes < 0
yes -
yes- > 0
_ > 0
_a-_ > 0
1.5.5 > yes
5%% > yes
%
.5 > yes
yes > no and
yes > no AND no == 0
cast/members > eligible/members
members - members > 0
(cast) ( members )
unanimity
nonsense_preset
yes * yes * yes * yes * yes * yes * yes > no / (yes - yes + 1) / 3 / 7 / 11
weight(
weight()
weight)
count(group:)
count(:)
count(group: permanent
count(, group: permanent) > 0
weight(population, yes) / weight(population) > 1/2
weight(population, yes) / weight(population, no) > 1
count(yes, group: permanent, group: x) > 0
weight(,) > 0
present ≥ 1
count(group: permanent) == count(yes, group: permanent)
weight(population) * weight(population) * weight(population) > 0
yes((no)) > 0
f(f(f(1))) > 0
weight(population)(yes) > 0
,
:
count(group: permanent):
weight(population, yes) > 65% * weight(population)
present - cast == 0
qualified_majority_eu
silence
count(group: permanent) > 0 and not count(no, group: permanent) > 0
weight(weight(population)) > 0
count(group: count) > 0
weight(population, yes, no, abstain, present) > 0
weight(yes: population) > 0
unanimity_abstention_allowed
weight(population, yes) - weight(population, no) >= -170141183460469231731687303715884105727";

#[test]
fn odd_inputs_never_panic() {
    let choices = names(&["yes", "no", "abstain"]);
    let (huge, permanent) = ([("population", u64::MAX)], ["permanent"]);
    let roster = vec![
        voter("a", Some("yes"), &huge, &permanent),
        voter("b", Some("no"), &huge, &[]),
        voter("c", None, &huge, &permanent),
    ];
    let small = Counts::from_voters(&choices, roster, 3);
    let samples = [
        counts(0, 0, 0, 0, 0),
        counts(3, 2, 1, 9, 10),
        counts(u64::MAX, u64::MAX, 1, u64::MAX, u64::MAX),
        small.clone(),
    ];
    let ties = [
        None,
        Some(Tie::Fails),
        Some(Tie::Chair("a".into())),
        Some(Tie::Lot(1)),
    ];
    let mut parsed = 0;
    for src in ODD_INPUTS.split('\n') {
        let Ok(r) = parse(src, &choices) else {
            continue;
        };
        parsed += 1;
        for c in &samples {
            let t = tally(Some(&r), &r, None, c);
            assert_eq!(
                t.verdict == Verdict::Adopted,
                r.eval(c) == Ok(true),
                "{src}"
            );
            assert!(r.explain(c).starts_with(&r.expression()), "{src}");
            for tie in &ties {
                let t = tally(Some(&r), &r, tie.as_ref(), c);
                assert!(t.explanation.starts_with(t.verdict.as_str()), "{src}");
            }
        }
        for tie in &ties {
            decided(None, &r, tie.as_ref(), &counts(1, 1, 0, 6, 6));
            decided(Some(&r), &r, tie.as_ref(), &small);
        }
    }
    assert_eq!(ODD_INPUTS.split('\n').count(), 81);
    assert!(parsed >= 20, "{parsed}");
}

#[test]
fn per_member_atoms() {
    let choices = names(&["yes", "no", "abstain"]);
    let roster = vec![
        voter("A", Some("yes"), &[("population", 50)], &["permanent"]),
        voter("B", Some("no"), &[("population", 30)], &["permanent"]),
        voter("C", Some("abstain"), &[("population", 15)], &[]),
        voter("D", None, &[("population", 5)], &["permanent"]),
        voter("E", Some("yes"), &[], &["elected"]), // no population: counts 0
    ];
    let c = Counts::from_voters(&choices, roster, 6);
    let want = votes(&[("yes", 2), ("no", 1), ("abstain", 1)], 5, 6);
    assert_eq!((&c.choices, c.eligible, c.cast()), (&want.choices, 5, 4));
    let table = [
        "present == 4",
        "present == cast",
        "weight(population) == 100",
        "weight(population, yes) == 50",
        "weight(population, no) == 30",
        "weight(population, abstain) == 15",
        "weight(area) == 0",
        "count(group: permanent) == 3",
        "count(yes, group: permanent) == 1",
        "count(no, group: permanent) == 1",
        "count(abstain, group: permanent) == 0",
        "count(group: elected) == 1 and count(yes, group: elected) == 1",
        "count(group: nobody) == 0",
        "weight(population, yes) * 2 == weight(population)",
        "eligible == 5 and members == 6",
        "count(group:permanent)-count(no,group:permanent)==2",
    ];
    for src in table {
        assert_eq!(rule(src).eval(&c), Ok(true), "{src}");
    }
    let e = rule("weight(population, yes) >= 1/2 * weight(population)").explain(&c);
    assert!(e.ends_with(": 50 >= 1/2 * 100 → 50 >= 50 → true"), "{e}");
    let e = rule("count(no, group: permanent) == 0").explain(&c);
    assert_eq!(e, "count(no, group: permanent) == 0: 1 == 0 → false");
    // without a roster, the per-member atoms evaluate over nobody
    let only_counts = counts(2, 1, 1, 5, 6);
    let r = rule("weight(population) == 0 and count(group: permanent) == 0 and present == 4");
    assert_eq!(r.eval(&only_counts), Ok(true));
    // a vote for a choice not on the ballot is counted under its own name
    let odd = Counts::from_voters(&choices, vec![voter("A", Some("maybe"), &[], &[])], 1);
    assert_eq!((odd.choices.get("maybe"), odd.cast()), (Some(&1), 1));
    let huge = [("population", u64::MAX)];
    let big = Counts::from_voters(&choices, vec![voter("A", None, &huge, &[]); 3], 3);
    assert_eq!(
        rule("weight(population) > 3 * 18446744073709551614").eval(&big),
        Ok(true)
    );
    let e = rule("weight(population) * weight(population) > 0")
        .eval(&big)
        .unwrap_err();
    assert!(e.0.starts_with("arithmetic overflow"), "{e:?}");
}

#[test]
fn qualified_majority_eu_boundaries() {
    let yna = names(&["yes", "no", "abstain"]);
    let population = set(&["population"]);
    let vocab = Vocabulary {
        attributes: Some(&population),
        ..Vocabulary::new(&yna)
    };
    let qmv = Rule::parse("qualified_majority_eu", &vocab).unwrap();
    let (yes, no, abstain) = (Some("yes"), Some("no"), Some("abstain"));
    // ([(choice, members, their population)], adopted); 27 members, population 3000
    type Case<'a> = (&'a [(Option<&'a str>, u64, u64)], bool);
    let table: &[Case] = &[
        (&[(yes, 15, 1950), (no, 12, 1050)], true), // 55.6% of members, exactly 65%
        (&[(yes, 15, 1949), (no, 12, 1051)], false), // just under 65% of the population
        (&[(yes, 14, 2900), (no, 13, 100)], false), // 51.9% of members is too few
        (&[(yes, 23, 1950), (no, 4, 1050)], true),
        (&[(yes, 24, 100), (no, 3, 2900)], true), // three members cannot block
        (&[(yes, 24, 100), (abstain, 3, 2900)], true),
        (&[(yes, 23, 100), (no, 4, 2900)], false), // four can
        (&[(yes, 23, 1000), (None, 4, 2000)], false), // silence counts against, too
        (&[(yes, 27, 3000)], true),
    ];
    for &(parts, want) in table {
        let c = Counts::from_voters(&yna, electorate(parts, &[]), 27);
        assert_eq!(c.eligible, 27);
        assert_eq!(qmv.eval(&c), Ok(want), "{parts:?}: {}", qmv.explain(&c));
    }
    // without a roster check the preset parses too; with a roster lacking the attribute, not
    assert!(parse("qualified_majority_eu", &yna).is_ok());
    let pop = set(&["pop"]);
    let vocab = Vocabulary {
        attributes: Some(&pop),
        ..vocab
    };
    let e = Rule::parse(" qualified_majority_eu", &vocab).unwrap_err();
    assert_eq!(e.offset, 1);
    assert!(
        e.message
            .starts_with("preset `qualified_majority_eu` means `yes >= 55%"),
        "{e}"
    );
    assert!(
        e.message
            .ends_with("the roster has no attribute `population`; it has pop"),
        "{e}"
    );
}

#[test]
fn un_security_council_substantive_question() {
    let yna = names(&["yes", "no", "abstain"]);
    let groups = set(&["permanent", "elected"]);
    let vocab = Vocabulary {
        groups: Some(&groups),
        ..Vocabulary::new(&yna)
    };
    let src = "yes >= 9 and count(no, group: permanent) == 0";
    let r = Rule::parse(src, &vocab).unwrap();
    let (y, n, a) = (Some("yes"), Some("no"), Some("abstain"));
    // (the five permanent members, the ten elected members, adopted)
    type Case<'a> = ([Option<&'a str>; 5], [Option<&'a str>; 10], bool);
    let table: &[Case] = &[
        ([y, y, y, y, y], [y, y, y, y, n, n, n, n, n, n], true),
        ([y, y, y, y, y], [y, y, y, n, n, n, n, n, n, n], false), // 8 votes are too few
        ([y, y, y, y, n], [y; 10], false),                        // a veto
        ([y, y, y, y, a], [y, y, y, y, y, n, n, n, a, a], true),  // abstaining is no veto
        ([y, y, y, y, None], [y, y, y, y, y, n, n, n, n, n], true), // nor is absence
        ([n, n, n, n, n], [y; 10], false),
    ];
    for (i, (p5, elected, want)) in table.iter().enumerate() {
        let member = |group: &str, j: usize, c: &Option<&str>| {
            voter(&format!("{group}{j}"), *c, &[], &[group])
        };
        let p5 = p5
            .iter()
            .enumerate()
            .map(|(j, c)| member("permanent", j, c));
        let e10 = elected
            .iter()
            .enumerate()
            .map(|(j, c)| member("elected", j, c));
        let c = Counts::from_voters(&yna, p5.chain(e10).collect(), 15);
        assert_eq!(c.eligible, 15);
        assert_eq!(rule("count(group: permanent) == 5").eval(&c), Ok(true));
        assert_eq!(r.eval(&c), Ok(*want), "case {i}: {}", r.explain(&c));
    }
}

#[test]
fn ties_follow_the_tie_rule() {
    let yna = names(&["yes", "no", "abstain"]);
    let chair = |m: &str| Tie::Chair(m.into());
    let (sm, ge) = (rule("simple_majority"), rule("yes >= no"));
    let (adopted, rejected) = (Verdict::Adopted, Verdict::Rejected);
    let (fails, tur, xyz) = (Some(Tie::Fails), Some(chair("TUR")), Some(chair("XYZ")));
    // (tie rule, the chair TUR's vote, other yes, other no, pass, verdict, explanation end)
    type Case<'a> = (
        Option<Tie>,
        Option<&'a str>,
        u64,
        u64,
        &'a Rule,
        Verdict,
        &'a str,
    );
    #[rustfmt::skip]
    let table: &[Case] = &[
        (None, Some("yes"), 9, 10, &sm, rejected, "rejected — pass yes > no: 10 > 10 → false"),
        (None, Some("yes"), 9, 10, &ge, adopted, "adopted — pass yes >= no: 10 >= 10 → true"),
        (fails.clone(), Some("yes"), 9, 10, &ge, rejected, "; tie 10–10: a tie fails → rejected"),
        (tur.clone(), Some("yes"), 9, 10, &sm, adopted, "; tie 10–10: the chair (TUR) voted yes → adopted"),
        (tur.clone(), Some("no"), 10, 9, &ge, rejected, "; tie 10–10: the chair (TUR) voted no → rejected"),
        (tur.clone(), Some("abstain"), 10, 10, &ge, rejected, "; tie 10–10: the chair (TUR) voted abstain → rejected"),
        (tur.clone(), None, 10, 10, &ge, rejected, "; tie 10–10: the chair (TUR) has not voted → rejected"),
        (xyz, Some("yes"), 9, 10, &sm, rejected, "; tie 10–10: the chair (XYZ) has not voted → rejected"),
        (Some(Tie::Lot(7)), None, 10, 10, &sm, adopted, "; tie 10–10: by lot, seed 7 is odd → adopted"),
        (Some(Tie::Lot(8)), None, 10, 10, &ge, rejected, "; tie 10–10: by lot, seed 8 is even → rejected"),
        (fails, Some("yes"), 10, 10, &sm, adopted, "adopted — pass yes > no: 11 > 10 → true"), // no tie
        (Some(Tie::Lot(1)), None, 0, 0, &sm, rejected, "rejected — pass yes > no: 0 > 0 → false"), // 0–0 is none
    ];
    for (tie, tur, y, n, pass, verdict, end) in table {
        let mut roster = vec![voter("TUR", *tur, &[], &[])];
        roster.extend((0..*y).map(|i| voter(&format!("y{i}"), Some("yes"), &[], &[])));
        roster.extend((0..*n).map(|i| voter(&format!("n{i}"), Some("no"), &[], &[])));
        let c = Counts::from_voters(&yna, roster, 30);
        let t = tally(None, pass, tie.as_ref(), &c);
        assert_eq!((t.verdict, t.quorum), (*verdict, None), "{t:?}");
        assert!(t.explanation.ends_with(end), "{t:?}");
        assert!(t.explanation.starts_with(verdict.as_str()), "{t:?}");
        assert_eq!(t.explanation.contains("tie"), end.contains("tie"), "{t:?}");
        let by = if end.contains("tie") {
            DecidedBy::Tie
        } else {
            DecidedBy::Rule
        };
        assert_eq!(t.decided_by, by, "{t:?}");
    }
    let c = Counts::from_voters(
        &yna,
        electorate(&[(Some("yes"), 1, 0), (Some("no"), 1, 0)], &[]),
        2,
    );
    let t = tally(None, &sm, Some(&chair("m0")), &c).explanation;
    assert_eq!(
        t,
        "adopted — pass yes > no: 1 > 1 → false; tie 1–1: the chair (m0) voted yes → adopted"
    );
    let c = counts(10, 10, 0, 20, 20);
    let (quorum, lot) = (rule("cast >= 21"), Tie::Lot(1));
    let t = tally(Some(&quorum), &sm, Some(&lot), &c);
    assert_eq!(
        (t.verdict, t.quorum),
        (Verdict::NoQuorum, Some(false)),
        "{t:?}"
    );
    assert!(!t.explanation.contains("tie"), "{t:?}");
    let t = tally(Some(&rule("majority_of_members")), &sm, Some(&lot), &c);
    assert_eq!(
        (t.verdict, t.quorum),
        (Verdict::Adopted, Some(true)),
        "{t:?}"
    );
    // a ballot without `yes` and `no` has no ties
    let fa = names(&["for", "against"]);
    let r = parse("for > against", &fa).unwrap();
    let c = votes(&[("for", 3), ("against", 3)], 6, 6);
    assert_eq!(tally(None, &r, Some(&lot), &c).verdict, Verdict::Rejected);
}

#[test]
fn new_presets() {
    let yna = names(&["yes", "no", "abstain"]);
    // (preset, yes, no, abstain, expected)
    let table: &[(&str, u64, u64, u64, bool)] = &[
        ("unanimity_abstention_allowed", 3, 0, 2, true),
        ("unanimity_abstention_allowed", 1, 0, 0, true),
        ("unanimity_abstention_allowed", 0, 0, 5, false), // nobody for it
        ("unanimity_abstention_allowed", 9, 1, 0, false),
        ("silence", 0, 0, 0, true),
        ("silence", 0, 1, 0, false),
    ];
    for &(preset, y, n, a, want) in table {
        let r = parse(preset, &yna).unwrap();
        assert_eq!(r.eval(&counts(y, n, a, 9, 9)), Ok(want), "{preset}");
    }
    // a silence ballot needs only `no`; presets that mention `yes` do not fit it
    let only_no = names(&["no"]);
    let silence = parse("silence", &only_no).unwrap();
    assert_eq!(silence.eval(&votes(&[("no", 0)], 9, 9)), Ok(true));
    assert_eq!(silence.eval(&votes(&[("no", 1)], 9, 9)), Ok(false));
    for preset in [
        "simple_majority",
        "unanimity_abstention_allowed",
        "qualified_majority_eu",
    ] {
        let e = parse(preset, &only_no).unwrap_err();
        assert!(e.message.contains("unknown name `yes`"), "{preset}: {e}");
    }
    assert!(PRESETS.iter().all(|p| !p.2.is_empty()));
}

#[test]
fn validation_errors_have_offsets_and_hints() {
    let yna = names(&["yes", "no", "abstain"]);
    let (attributes, groups) = (set(&["population", "gdp"]), set(&["permanent", "elected"]));
    let vocab = Vocabulary {
        choices: &yna,
        attributes: Some(&attributes),
        groups: Some(&groups),
    };
    let weight = "use `weight(ATTR)` or `weight(ATTR, CHOICE)`";
    let count = "use `count(group: GROUP)` or `count(CHOICE, group: GROUP)`";
    // (source, char offset, message fragment)
    #[rustfmt::skip]
    let table: &[(&str, usize, &str)] = &[
        ("weight(popluation) > 0", 7, "the roster has no attribute `popluation`; did you mean `population`?"),
        ("weight(area) > 0", 7, "the roster has no attribute `area`; it has gdp, population"),
        ("count(no, group: permanant) == 0", 17, "the roster has no group `permanant`; did you mean `permanent`?"),
        ("wieght(population) > 0", 0, "unknown function `wieght`; did you mean `weight`?"),
        ("yes > sum(population)", 6, "unknown function `sum`; the functions are `weight` and"),
        ("weight() > 0", 7, "`weight` is missing arguments; use `weight(ATTR)`"),
        ("weight(population, yes, no) > 0", 24, "too many arguments to `weight`"),
        ("weight(population, group: permanent) > 0", 19, "`weight` has no argument `group:`"),
        ("count(yes) > 0", 9, "`count` is missing arguments"),
        ("count(yes, permanent) > 0", 11, "expected `group: …`, found `permanent`"),
        ("count(yes, grp: permanent) > 0", 11, "`count` has no argument `grp:`"),
        ("count(yes, group: permanent, group: elected) > 0", 29, "too many arguments"),
        ("count(maybe, group: permanent) > 0", 6, "the ballot has no choice `maybe`; it has yes, no, abstain"),
        ("weight(population, nay) > 0", 19, "the ballot has no choice `nay`; did you mean `no`?"),
        ("weight(population, cast) > 0", 19, "the ballot has no choice `cast`"),
        ("count(group: 5) > 0", 13, "expected a name, found `5`"),
        ("weight(population,) > 0", 18, "expected a name, found `)`"),
        ("weight(population > 0", 18, "expected `,` or `)`, found `>`"),
        ("count(group: permanent) > 0 and count(group permanent) > 0", 44, "found `permanent`"),
        ("weight(population", 6, "unclosed `(`"),
        ("weight > 0", 0, "unknown name `weight`; `weight` is a function: use `weight(ATTR)`"),
        ("count(group: permanent) + 1", 0, "a rule must be a condition"),
        ("count(group: permanent) > 0 > 1", 28, "comparisons cannot be chained"),
    ];
    for &(src, offset, fragment) in table {
        let e = Rule::parse(src, &vocab).expect_err(src);
        assert_eq!(e.offset, offset, "{src}: {e:?}");
        assert!(e.message.contains(fragment), "{src}: {e:?}");
        let usage = if src.starts_with("weight(") {
            weight
        } else {
            count
        };
        if fragment.contains("argument") {
            assert!(e.message.ends_with(usage), "{src}: {e:?}");
        }
    }
    // without a roster to check against, any attribute and group name will do
    let free = "weight(anything) > 0 and count(no, group: whatever) == 0";
    assert!(parse(free, &yna).is_ok());
    let none = BTreeSet::new();
    let e = Rule::parse(
        "weight(population) > 0",
        &Vocabulary {
            attributes: Some(&none),
            ..vocab
        },
    );
    assert_eq!(
        e.unwrap_err().message,
        "the roster has no attribute `population`; it has none"
    );
    // `present` as a choice clashes only where a rule uses the name
    let present = names(&["yes", "no", "present"]);
    assert!(parse("simple_majority", &present).is_ok());
    let e = parse("yes > no and present > 2", &present).unwrap_err();
    assert_eq!(
        (e.offset, e.message.as_str()),
        (13, "choice `present` clashes with the built-in `present`")
    );
    // a choice may be named like a function; a call is still a call
    let odd = names(&["weight", "no"]);
    let r = parse("weight > no and weight(population) >= 0", &odd).unwrap();
    assert_eq!(r.eval(&votes(&[("weight", 2), ("no", 1)], 3, 3)), Ok(true));
    let signal = names(&["count"]); // as councild's `on_signal.until` uses it
    let r = parse("count >= 1", &signal).unwrap();
    assert_eq!(r.eval(&votes(&[("count", 1)], 3, 3)), Ok(true));
}

/// Whether every reachable final state gives the same `tally` verdict, by brute force over
/// each voter's final choice (`choices` only).
fn decided_by_brute_force(q: Option<&Rule>, p: &Rule, tie: Option<&Tie>, c: &Counts) -> bool {
    let choices: Vec<String> = c.choices.keys().cloned().collect();
    let mut seen = BTreeSet::new();
    let mut voters = c.voters.clone();
    fn each(i: usize, v: &mut Vec<VoterInfo>, c: &Counts, f: &mut dyn FnMut(&[VoterInfo])) {
        let Some(original) = c.voters.get(i) else {
            return f(v);
        };
        let options = c.choices.keys().map(Some);
        let stay = original.choice.is_none().then_some(None);
        for choice in options.chain(stay) {
            v[i].choice = choice.cloned();
            each(i + 1, v, c, f);
        }
    }
    each(0, &mut voters, c, &mut |v| {
        let state = Counts::from_voters(&choices, v.to_vec(), c.members);
        seen.insert(tally(q, p, tie, &state).verdict);
    });
    seen.len() == 1
}

#[test]
fn decided_with_per_member_rules() {
    let yn = names(&["yes", "no"]);
    let r = |s: &str| parse(s, &yn).unwrap();
    let pops = [("A", 40), ("B", 30), ("C", 20), ("D", 10)];
    let council = |choices: [Option<&str>; 4]| {
        let roster = pops.iter().zip(choices).map(|(&(m, pop), c)| {
            voter(
                m,
                c,
                &[("population", pop)],
                if pop > 25 { &["board"] } else { &[] },
            )
        });
        Counts::from_voters(&yn, roster.collect(), 4)
    };
    let (y, n) = (Some("yes"), Some("no"));
    let present = r("weight(population, yes) + weight(population, no) >= 70");
    let weighted = r("weight(population, yes) > 1/2 * weight(population)");
    let never = r("weight(population, yes) > 100");
    let board = r("count(group: board) == 2");
    let veto = r("count(no, group: board) == 0 and yes >= 1");
    // (quorum, pass, the four votes, decided)
    type Case<'a> = (Option<&'a Rule>, &'a Rule, [Option<&'a str>; 4], bool);
    let table: &[Case] = &[
        (None, &present, [y, n, None, None], true), // 70 have voted and cannot withdraw
        (None, &present, [y, None, n, None], false), // 60 have: B may vote or not
        (None, &present, [n, None, y, y], true),
        (None, &weighted, [y, y, y, y], false), // anyone may still change their vote
        (None, &never, [y, y, y, None], true),  // can never pass
        (Some(&board), &never, [None; 4], true),
        (Some(&present), &r("yes >= 0"), [y, y, None, None], true), // quorum met for good
        (Some(&present), &r("yes >= 0"), [y, None, None, None], false),
        (None, &veto, [None, None, n, n], false),
        (
            None,
            &r("yes + no >= 2 and weight(population) > 0"),
            [n, y, None, None],
            true,
        ),
    ];
    for (i, &(q, p, choices, want)) in table.iter().enumerate() {
        let c = council(choices);
        assert_eq!(decided(q, p, None, &c), want, "case {i}");
        assert_eq!(decided_by_brute_force(q, p, None, &c), want, "case {i}");
    }
    // the roster must agree with the counts, else nothing can be concluded
    let mut off = council([y, y, None, None]);
    off.choices.insert("yes".into(), 3);
    assert!(!decided(None, &never, None, &off));
    assert!(!decided(None, &never, None, &counts(1, 0, 0, 1, 1)));
    // 3^13 = 1,594,323 combinations are enumerated; 3^14 = 4,782,969 are too many
    let always = r("weight(population) >= 0");
    let silent = |n| Counts::from_voters(&yn, electorate(&[(None, n, 0)], &[]), n);
    assert!(decided(None, &always, None, &silent(13)));
    assert!(!decided(None, &always, None, &silent(14)));
}

#[test]
fn decided_agrees_with_brute_force() {
    let yn = names(&["yes", "no"]);
    let r = |s: &str| parse(s, &yn).unwrap();
    // each rule also with a per-member term that is always true, to force that enumeration
    let pairs = |s: &str| {
        [
            r(s),
            r(&format!("({}) and weight(x) >= 0", r(s).expression())),
        ]
    };
    let quorums = [
        None,
        Some(pairs("majority_of_members")),
        Some(pairs("present >= 2")),
    ];
    let passes = [
        pairs("simple_majority"),
        pairs("yes >= no"),
        pairs("cast >= 2"),
        pairs("yes >= 1"),
        pairs("weight(population, yes) >= 1/2 * weight(population)"),
        pairs("consensus"),
        pairs("yes > eligible"), // never: ties alone decide
    ];
    let ties = [
        None,
        Some(Tie::Fails),
        Some(Tie::Chair("A".into())),
        Some(Tie::Chair("Z".into())),
        Some(Tie::Lot(1)),
        Some(Tie::Lot(2)),
    ];
    let options = [Some("yes"), Some("no"), None];
    let (mut checked, mut settled) = (0, 0);
    for size in 1..=4 {
        for code in 0..3usize.pow(size) {
            let roster = (0..size).map(|i| {
                let choice = options[code / 3usize.pow(i) % 3];
                let id = ["A", "B", "C", "D"][i as usize];
                voter(id, choice, &[("population", u64::from(i) * 7 + 3)], &[])
            });
            let c = Counts::from_voters(&yn, roster.collect(), 5);
            let ties = &ties;
            for (q, p, tie) in quorums.iter().flat_map(|q| {
                passes
                    .iter()
                    .flat_map(move |p| ties.iter().map(move |t| (q, p, t)))
            }) {
                let want =
                    decided_by_brute_force(q.as_ref().map(|q| &q[0]), &p[0], tie.as_ref(), &c);
                for i in 0..2 {
                    let q = q.as_ref().map(|q| &q[i]);
                    let got = decided(q, &p[i], tie.as_ref(), &c);
                    assert_eq!(
                        got,
                        want,
                        "{:?} {} {tie:?} {c:?}",
                        q.map(Rule::source),
                        p[i].source()
                    );
                }
                (checked, settled) = (checked + 1, settled + usize::from(want));
            }
        }
    }
    assert!(
        settled > 100 && checked - settled > 100,
        "{settled} of {checked}"
    );
    // ties decided by the lot's seed, with everyone having voted
    let both = Counts::from_voters(
        &yn,
        vec![
            voter("A", Some("yes"), &[], &[]),
            voter("B", Some("no"), &[], &[]),
        ],
        2,
    );
    let cast = r("cast >= 2");
    assert!(decided(None, &cast, Some(&Tie::Lot(3)), &both));
    assert!(!decided(None, &cast, Some(&Tie::Lot(4)), &both));
    assert!(decided(None, &cast, None, &both));
}

#[test]
fn choices_may_be_words_of_any_script() {
    let candidates = names(&["al_farsi", "öztürk", "بن_علي"]);
    let r = parse("öztürk > al_farsi and öztürk > بن_علي", &candidates)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let c = votes(&[("al_farsi", 20), ("öztürk", 30), ("بن_علي", 5)], 55, 57);
    assert_eq!(r.eval(&c), Ok(true));
    let e = parse("ozturk > al_farsi", &candidates).unwrap_err();
    assert!(
        e.message.contains("öztürk"),
        "a hint to the right word: {e:?}"
    );
}
