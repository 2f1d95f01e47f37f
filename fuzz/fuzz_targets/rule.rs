//! Any text as a quorum or pass rule, evaluated over counts drawn from the input.
#![no_main]
use std::collections::BTreeMap;

use councild::rules::{self, Counts, Rule, Tie, Vocabulary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (numbers, text) = data.split_at(data.len().min(8));
    let Ok(text) = std::str::from_utf8(text) else { return };
    let choices: Vec<String> = ["yes", "no", "abstain"].map(String::from).to_vec();
    let Ok(rule) = Rule::parse(text, &Vocabulary::new(&choices)) else { return };
    let n = |i: usize| u64::from(*numbers.get(i).unwrap_or(&0));
    let counts = Counts { choices: BTreeMap::from([("yes".into(), n(0)), ("no".into(), n(1)), ("abstain".into(), n(2))]), eligible: n(0) + n(1) + n(2) + n(3), members: 255, voters: Vec::new(), present: None };
    let _ = rule.eval(&counts);
    let _ = rule.explain(&counts);
    let _ = rules::tally(Some(&rule), &rule, Some(&Tie::Lot(n(4))), &counts);
    if counts.eligible < 40 {
        let _ = rules::decided(None, &rule, None, &counts);
    }
});
