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
            let instant = stage.wait.is_none()
                && stage.ballot.is_none()
                && stage.amendments.is_none()
                && stage.on_signal.is_none()
                && !stage.meeting;
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

/// What a mail of a workflow knows when it is sent, as far as its template can tell:
/// which of the data a template may name is there (see `templates::data_for`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum MailKind {
    /// A stage's `notify`: `ballot` is the last ballot closed before, if any.
    Notify { after_ballot: bool },
    /// A ballot's mail to its voters, or a reminder: the open ballot, with the voter's link.
    Ballot,
    /// A vote's receipt: the open ballot, the link, and the `vote`.
    Receipt,
}

/// One template as one workflow uses it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TemplateUse {
    pub template: String,
    pub stage: String,
    pub kind: MailKind,
    /// The stage waits (`after`, `schedule`): `item.next` is known.
    pub waits: bool,
}

impl super::Workflow {
    /// Every mail this workflow can send, each with what it knows: a notify in a stage that
    /// can be reached both before and after a ballot is listed twice. Stages are walked
    /// from the start, leaving a ballot stage only by its outcomes (after its ballot closed).
    pub fn template_uses(&self) -> BTreeSet<TemplateUse> {
        let mut uses = BTreeSet::new();
        let mut seen = BTreeSet::from([(self.start.clone(), false)]);
        let mut queue = VecDeque::from([(self.start.clone(), false)]);
        while let Some((name, after_ballot)) = queue.pop_front() {
            let Some(stage) = self.stages.get(&name) else {
                continue;
            };
            let waits =
                stage.wait.is_some() || stage.nominations.is_some_and(|n| n.closes_after.is_some());
            let used = |template: &str, kind| TemplateUse {
                template: template.to_string(),
                stage: name.clone(),
                kind,
                waits,
            };
            for n in &stage.notify {
                uses.insert(used(&n.template, MailKind::Notify { after_ballot }));
            }
            let mut next: Vec<(&String, bool)> = Vec::new();
            if let Some(b) = stage.ballot.as_ref().or(stage.amendments.as_ref()) {
                uses.insert(used(&b.template, MailKind::Ballot));
                if !b.remind.is_empty() {
                    uses.insert(used(&b.remind_template, MailKind::Ballot));
                }
                uses.insert(used(&b.receipt_template, MailKind::Receipt));
                next.extend(stage.outcomes.values().map(|s| (s, true)));
            }
            // After an amendments stage, a ballot may have closed (or none was needed).
            let after_ballot = after_ballot || stage.amendments.is_some();
            next.extend(stage.next.iter().map(|s| (s, after_ballot)));
            next.extend(stage.on_signal.iter().map(|o| (&o.next, after_ballot)));
            for (to, after) in next {
                if seen.insert((to.clone(), after)) {
                    queue.push_back((to.clone(), after));
                }
            }
        }
        uses
    }
}
