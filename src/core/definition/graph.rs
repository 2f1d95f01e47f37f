//! The shape of a workflow: every stage reachable from the start, and no loop of stages
//! that move on at once.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::Stage;
use crate::yaml::{self, Diagnostics, Pos};

pub(super) fn check_reachable(
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
pub(super) fn check_instant_loops(
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
