//! A dry run of a workflow on a simulated clock: `councild simulate`.
//!
//! The [`Simulator`] drives the pure engine the way the daemon's writer does (answering the
//! electorate and register questions itself) and moves its own clock to the next timer, so
//! a 30-day workflow runs in microseconds. Nothing is stored and no mail is sent; what would
//! happen is written down as a timeline. Tests use the same simulator.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::definition::Workflow;
use crate::engine::{
    self, Awaiting, Context, Effect, Event, Facts, Item, Recipients, Record, Rejection, Status,
};
use crate::roster::Roster;
use crate::secret;
use curve25519_dalek::scalar::Scalar;

/// The id every simulated item gets.
const ITEM: &str = "simulated-1";
/// Most timer firings before a run is stopped (a workflow that loops for ever).
const MAX_STEPS: usize = 200;

/// One thing that would happen.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    Stage {
        at: DateTime<Utc>,
        stage: String,
    },
    Mail {
        at: DateTime<Utc>,
        template: String,
        recipients: usize,
    },
    Timer {
        at: DateTime<Utc>,
        name: String,
        due: DateTime<Utc>,
    },
    BallotOpened {
        at: DateTime<Utc>,
        stage: String,
        eligible: usize,
        closes_at: DateTime<Utc>,
    },
    BallotClosed {
        at: DateTime<Utc>,
        stage: String,
        counts: BTreeMap<String, u64>,
        quorum: bool,
        verdict: String,
        reason: String,
        explanation: String,
    },
    Registered {
        at: DateTime<Utc>,
        number: String,
    },
    Ended {
        at: DateTime<Utc>,
        outcome: String,
    },
    Waiting {
        at: DateTime<Utc>,
        stage: String,
        what: String,
    },
}

/// The engine with a stand-in for the shell.
pub struct Simulator<'a> {
    pub workflow: &'a Workflow,
    pub roster: &'a Roster,
    pub tz: Tz,
    pub state: Option<Item>,
    pub now: DateTime<Utc>,
    /// What the engine logged, what it would send, and the answers it was given.
    pub world: World<'a>,
}

/// The simulator's side of [`Facts`]: the roster's electorate, register counters, and
/// every record and effect written down.
pub struct World<'a> {
    roster: &'a Roster,
    /// Every record, as the daemon would log it.
    pub log: Vec<Record>,
    pub timeline: Vec<Entry>,
    /// Every mail effect: template and recipients.
    pub mails: Vec<(String, Recipients)>,
    registers: BTreeMap<(String, i32), u64>,
    /// The stage and closed ballots after the last record, to see what changed.
    stage: Option<String>,
    closed: usize,
}

impl<'a> Simulator<'a> {
    pub fn new(
        workflow: &'a Workflow,
        roster: &'a Roster,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> Simulator<'a> {
        Simulator {
            workflow,
            roster,
            tz,
            state: None,
            now,
            world: World {
                roster,
                log: Vec::new(),
                timeline: Vec::new(),
                mails: Vec::new(),
                registers: BTreeMap::new(),
                stage: None,
                closed: 0,
            },
        }
    }

    /// The item (after `start`).
    pub fn item(&self) -> Option<&Item> {
        self.state.as_ref()
    }

    pub fn start(&mut self, inputs: BTreeMap<String, String>) -> Result<(), Rejection> {
        let event = Event::Started {
            workflow: self.workflow.name.clone(),
            version: self.workflow.version.clone(),
            inputs,
        };
        self.apply(event)?;
        // The secretariat gives the text's versions at once (a version per language, its
        // hash that of a sample text), so the comment period starts with the item.
        for language in self.workflow.documents.iter().flat_map(|d| &d.languages) {
            let text = format!("The {language} text of {ITEM}, simulated.");
            self.apply(Event::DocumentAdded {
                language: language.clone(),
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes())),
                bytes: text.len() as u64,
                name: format!("text-{language}.txt"),
                media_type: "text/plain; charset=utf-8".into(),
                url: None,
            })?;
        }
        Ok(())
    }

    /// The trustees of a secret election make its key: each gives a (simulated) box key,
    /// deals, and is ready. Returns each trustee's key share, in trustee order.
    fn ceremony(&mut self, rng: &mut secret::Stream) -> Result<Vec<Scalar>, Rejection> {
        let Some(trust) = self.item().and_then(|i| i.trust.clone()) else {
            return Ok(Vec::new());
        };
        let members: Vec<String> = trust.trustees.iter().map(|t| t.member.clone()).collect();
        for m in &members {
            let key = "00".repeat(32);
            self.apply(Event::TrusteeKey {
                member: m.clone(),
                key,
            })?;
        }
        let dealings: Vec<secret::Dealing> = members
            .iter()
            .map(|_| secret::Dealing::new(rng, trust.needed as usize))
            .collect();
        for (m, d) in members.iter().zip(&dealings) {
            let shares = members
                .iter()
                .filter(|o| *o != m)
                .map(|o| (o.clone(), "simulated".to_string()))
                .collect();
            let commitments = d.commitments().iter().map(secret::point_hex).collect();
            self.apply(Event::TrusteeDealt {
                member: m.clone(),
                commitments,
                shares,
            })?;
        }
        for m in &members {
            self.apply(Event::TrusteeReady { member: m.clone() })?;
        }
        Ok((1..=members.len() as u64)
            .map(|j| dealings.iter().map(|d| d.share_for(j)).sum())
            .collect())
    }

    /// The first trustees a round needs decrypt its tally.
    fn decrypt(
        &mut self,
        rng: &mut secret::Stream,
        ballot: usize,
        key_shares: &[Scalar],
    ) -> Result<(), Rejection> {
        let Some(item) = self.item().cloned() else {
            return Ok(());
        };
        let (Some(trust), Some(b)) = (&item.trust, item.ballots.get(ballot)) else {
            return Ok(());
        };
        let tally = b
            .sealed
            .as_ref()
            .and_then(|s| s.tally.clone())
            .unwrap_or_default();
        for (t, x) in trust
            .trustees
            .iter()
            .zip(key_shares)
            .take(trust.needed as usize)
        {
            let context = secret::decryption_context(ITEM, ballot, &t.member);
            let shares = tally
                .iter()
                .map(|c| secret::PartialDecryption::new(rng, &context, x, c))
                .collect();
            self.apply(Event::Decrypted {
                ballot,
                member: t.member.clone(),
                shares,
            })?;
        }
        Ok(())
    }

    /// Applies an event and the follow-ups its effects ask for, through the engine's one
    /// driver, as the daemon's writer does.
    pub fn apply(&mut self, event: Event) -> Result<(), Rejection> {
        let ctx = Context {
            workflow: self.workflow,
            tz: self.tz,
        };
        engine::step(
            &ctx,
            &mut self.state,
            ITEM,
            self.now,
            event,
            None,
            &mut self.world,
        )?;
        Ok(())
    }

    /// Moves the clock to the earliest pending timer and fires it; false when none is left.
    pub fn advance(&mut self) -> bool {
        let next = self.item().and_then(|i| {
            i.timers
                .iter()
                .min_by_key(|(_, d)| **d)
                .map(|(n, d)| (n.clone(), *d))
        });
        let Some((timer, due)) = next else {
            return false;
        };
        self.now = self.now.max(due);
        let _ = self.apply(Event::TimerFired { timer });
        true
    }

    /// Folds the log from nothing, as the daemon's start-up does: it must give exactly the
    /// current state.
    pub fn replayed(&self) -> Result<Option<Item>, engine::ReplayError> {
        engine::replay(|_| Some(self.workflow), self.tz, ITEM, &self.world.log)
    }
}

impl Facts for World<'_> {
    fn electorate(&mut self) -> (Arc<engine::Electorate>, u64) {
        (
            Arc::new(engine::electorate(self.roster)),
            self.roster.members.len() as u64,
        )
    }

    fn next_number(&mut self, series: &str, year: i32) -> u64 {
        let seq = self
            .registers
            .entry((series.to_string(), year))
            .or_default();
        *seq += 1;
        *seq
    }

    /// A version per language an adopted amendment changes, its hash that of the version
    /// amended and the amendments' numbers (the simulator has no bytes).
    fn consolidate(&mut self, item: &Item) -> Result<BTreeMap<String, engine::Version>, String> {
        let mut versions = BTreeMap::new();
        for (language, current) in &item.documents {
            let Some(base) = current.last() else { continue };
            let numbers: Vec<u32> = item
                .amendments
                .iter()
                .filter(|a| {
                    a.fate == Some(engine::Fate::Adopted) && a.changes.contains_key(language)
                })
                .map(|a| a.number)
                .collect();
            if numbers.is_empty() {
                continue;
            }
            let text = format!("{} amended by {numbers:?}", base.sha256);
            let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()));
            let version = engine::Version {
                sha256,
                url: None,
                amendments: numbers,
                ..base.clone()
            };
            versions.insert(language.clone(), version);
        }
        Ok(versions)
    }

    fn logged(&mut self, item: &Item, record: &Record, effects: Vec<Effect>) {
        let at = record.at;
        if let Event::ElectorateFixed {
            ballot, electorate, ..
        } = &record.event
        {
            self.timeline.push(Entry::BallotOpened {
                at,
                stage: item.stage.clone(),
                eligible: electorate.len(),
                closes_at: item.ballots.get(*ballot).map_or(at, |b| b.closes_at),
            });
        }
        let closed: Vec<&engine::Ballot> =
            item.ballots.iter().filter(|b| b.result.is_some()).collect();
        for b in closed.iter().skip(self.closed) {
            if let Some(r) = &b.result {
                self.timeline.push(Entry::BallotClosed {
                    at,
                    stage: b.stage.clone(),
                    counts: r.counts.clone(),
                    quorum: r.verdict != crate::rules::Verdict::NoQuorum,
                    verdict: r.verdict.as_str().to_string(),
                    reason: r.reason.clone(),
                    explanation: r.explanation.clone(),
                });
            }
        }
        self.closed = closed.len();
        if self.stage.as_deref() != Some(item.stage.as_str())
            || matches!(record.event, Event::Started { .. })
        {
            self.timeline.push(Entry::Stage {
                at,
                stage: item.stage.clone(),
            });
            self.stage = Some(item.stage.clone());
        }
        for effect in effects {
            match effect {
                Effect::Mail { template, to, .. } => {
                    let recipients = engine::recipients(self.roster, item, &to).len();
                    // Mails of one template at one moment (say, vote receipts) make one line.
                    match self.timeline.last_mut() {
                        Some(Entry::Mail {
                            at: last,
                            template: t,
                            recipients: n,
                        }) if *last == at && *t == template => *n += recipients,
                        _ => self.timeline.push(Entry::Mail {
                            at,
                            template: template.clone(),
                            recipients,
                        }),
                    }
                    self.mails.push((template, to));
                }
                Effect::SetTimer { name, due } => self.timeline.push(Entry::Timer {
                    at,
                    name: name.to_string(),
                    due,
                }),
                _ => {}
            }
        }
        if let (Event::Registered { .. }, Some(number)) = (&record.event, &item.register_number) {
            self.timeline.push(Entry::Registered {
                at,
                number: number.clone(),
            });
        }
        if item.status == Status::Ended {
            self.timeline.push(Entry::Ended {
                at,
                outcome: item.outcome.clone().unwrap_or_default(),
            });
        }
        self.log.push(record.clone());
    }
}

/// How simulated members vote in every ballot.
#[derive(Debug, Clone)]
pub enum Votes {
    /// Counts per choice, handed to eligible members in roster order; the rest do not vote.
    Counts(Vec<(String, u64)>),
    /// Member id to choice.
    Ballots(BTreeMap<String, String>),
}

impl Votes {
    /// Reads `yes=40,no=10,abstain=3`.
    pub fn parse_counts(text: &str) -> Result<Votes, String> {
        let mut counts = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (choice, n) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: write CHOICE=COUNT, e.g. yes=40"))?;
            let n: u64 = n
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the count must be a whole number"))?;
            counts.push((choice.trim().to_string(), n));
        }
        Ok(Votes::Counts(counts))
    }

    /// The candidates an election's votes name, in the order they come (not `blank`).
    fn candidates(&self) -> Vec<String> {
        let choices: Vec<&String> = match self {
            Votes::Counts(counts) => counts.iter().map(|(c, _)| c).collect(),
            Votes::Ballots(map) => map.values().collect(),
        };
        let mut out: Vec<String> = Vec::new();
        for c in choices.iter().flat_map(|c| c.split('+')) {
            if c != crate::rules::election::BLANK && !out.iter().any(|o| o == c) {
                out.push(c.to_string());
            }
        }
        out
    }

    /// The (member, choice) pairs for a ballot's electorate.
    fn assign(&self, electorate: &[engine::Voter]) -> Result<Vec<(String, String)>, String> {
        match self {
            Votes::Ballots(map) => Ok(map.iter().map(|(m, c)| (m.clone(), c.clone())).collect()),
            Votes::Counts(counts) => {
                let total: u64 = counts.iter().map(|(_, n)| n).sum();
                if total > electorate.len() as u64 {
                    return Err(format!(
                        "{total} votes for {} eligible members",
                        electorate.len()
                    ));
                }
                let mut voters = electorate.iter();
                let mut out = Vec::new();
                for (choice, n) in counts {
                    for v in voters.by_ref().take(*n as usize) {
                        out.push((v.member.clone(), choice.clone()));
                    }
                }
                Ok(out)
            }
        }
    }
}

/// A simulated voter's ballot of a secret round: the marks of `choice` (`a`, `a+b`,
/// `blank`), encrypted under the round's key with their proofs.
fn seal(
    rng: &mut secret::Stream,
    item: &str,
    index: usize,
    b: &crate::engine::Ballot,
    member: &str,
    choice: &str,
) -> Result<(String, secret::Proofs), String> {
    let key = b
        .sealed
        .as_ref()
        .and_then(|s| secret::point_from_hex(&s.key))
        .ok_or("the round has no key")?;
    let marked: Vec<&str> = choice.split('+').collect();
    let marks: Vec<bool> = b
        .choices
        .iter()
        .map(|c| marked.contains(&c.as_str()))
        .collect();
    let shape = b.shape();
    let context = secret::ballot_context(item, index, member);
    let ballot = secret::Ballot::encrypt(rng, &context, &key, &shape, &marks)
        .ok_or_else(|| format!("`{choice}` is not a ballot this round allows"))?;
    let (choices, proofs) = ballot.split();
    Ok((secret::encode_choices(&choices), proofs))
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub workflow: String,
    pub version: String,
    pub outcome: Option<String>,
    pub register_number: Option<String>,
    pub stopped: Option<String>,
    pub timeline: Vec<Entry>,
    pub ballots: Vec<Entry>,
}

/// Runs a workflow from start to end (or until it waits for a signal), voting `votes` in
/// every ballot it opens.
pub fn run(
    workflow: &Workflow,
    roster: &Roster,
    tz: Tz,
    inputs: BTreeMap<String, String>,
    votes: &Votes,
    start: DateTime<Utc>,
) -> Result<Report, String> {
    let mut sim = Simulator::new(workflow, roster, tz, start);
    sim.start(inputs)
        .map_err(|e| format!("the item cannot start: {e}"))?;
    // A secret election: the trustees make its key, as `councild trustee` would.
    let mut rng = secret::Stream(0);
    let key_shares = sim
        .ceremony(&mut rng)
        .map_err(|e| format!("the trustees' key ceremony: {e}"))?;
    let mut voted = 0;
    let mut stopped = None;
    for step in 0..=MAX_STEPS {
        let Some(item) = sim.item().cloned() else {
            break;
        };
        if item.status == Status::Ended {
            break;
        }
        if step == MAX_STEPS {
            stopped = Some(format!(
                "stopped after {MAX_STEPS} steps: the workflow goes round in a loop with these votes"
            ));
            break;
        }
        // An election: the candidates are the votes' choices, nominated and confirmed.
        if workflow
            .stages
            .get(&item.stage)
            .is_some_and(|s| s.nominations.is_some())
        {
            let candidates = votes.candidates();
            for c in &candidates {
                let name = BTreeMap::from([("en".to_string(), c.clone())]);
                let event = Event::Nominated {
                    candidate: c.clone(),
                    name,
                    member: None,
                };
                sim.apply(event)
                    .map_err(|e| format!("nominating `{c}`: {e}"))?;
            }
            sim.apply(Event::CandidatesConfirmed { candidates })
                .map_err(|e| format!("confirming the candidates: {e}"))?;
            continue;
        }
        // A secret round closed: the first trustees it needs decrypt its tally.
        if let Some(Awaiting::Decryption(b)) = item.awaiting {
            sim.decrypt(&mut rng, b, &key_shares)
                .map_err(|e| format!("decrypting round {}: {e}", b + 1))?;
            continue;
        }
        for (index, ballot) in item.ballots.iter().enumerate().skip(voted) {
            if ballot.closed() {
                continue;
            }
            voted = index + 1;
            for (member, choice) in votes.assign(&ballot.electorate)? {
                // A later round of an election: votes for those no longer standing lapse.
                let canonical = ballot.marks(&choice);
                if ballot.round.is_some() && canonical.is_none() {
                    continue;
                }
                let (cast, proofs) = match (&ballot.sealed, canonical) {
                    (Some(_), Some(c)) => {
                        let (c, p) = seal(&mut rng, ITEM, index, ballot, &member, &c)?;
                        (c, Some(Box::new(p)))
                    }
                    _ => (choice.clone(), None),
                };
                sim.apply(Event::VoteCast {
                    ballot: index,
                    member: member.clone(),
                    choice: cast,
                    proofs,
                })
                .map_err(|e| {
                    format!(
                        "ballot in stage `{}`: vote {member}={choice}: {e}",
                        ballot.stage
                    )
                })?;
            }
        }
        if sim.item().is_some_and(|i| i.status == Status::Ended) {
            break;
        }
        if !sim.advance() {
            let item = sim.item().cloned().unwrap_or(item);
            let what = workflow
                .stages
                .get(&item.stage)
                .and_then(|s| s.on_signal.as_ref())
                .map_or("nothing".to_string(), |on| format!("signal `{}`", on.name));
            sim.world.timeline.push(Entry::Waiting {
                at: sim.now,
                stage: item.stage.clone(),
                what: what.clone(),
            });
            stopped = Some(format!("waits at stage `{}` for {what}", item.stage));
            break;
        }
    }
    let item = sim.item().cloned();
    let ballots = sim
        .world
        .timeline
        .iter()
        .filter(|e| matches!(e, Entry::BallotClosed { .. }))
        .cloned()
        .collect();
    Ok(Report {
        workflow: workflow.name.clone(),
        version: workflow.version.clone(),
        outcome: item.as_ref().and_then(|i| i.outcome.clone()),
        register_number: item.and_then(|i| i.register_number),
        stopped,
        timeline: sim.world.timeline,
        ballots,
    })
}

/// The timeline as text, times in the council's zone.
pub fn render(report: &Report, tz: Tz) -> String {
    let t = |at: &DateTime<Utc>| {
        at.with_timezone(&tz)
            .format("%Y-%m-%d %H:%M %Z")
            .to_string()
    };
    let mut out = format!(
        "{} (version {}), simulated; nothing is sent\n\n",
        report.workflow, report.version
    );
    for e in &report.timeline {
        let line = match e {
            Entry::Stage { at, stage } => format!("{}  stage {stage}", t(at)),
            Entry::Mail {
                at,
                template,
                recipients,
            } => format!("{}  mail {template} to {recipients}", t(at)),
            Entry::Timer { at, name, due } => format!("{}  timer {name} set for {}", t(at), t(due)),
            Entry::BallotOpened {
                at,
                stage,
                eligible,
                closes_at,
            } => format!(
                "{}  ballot opens in {stage}: {eligible} eligible, closes {}",
                t(at),
                t(closes_at)
            ),
            Entry::BallotClosed {
                at,
                stage,
                counts,
                verdict,
                reason,
                explanation,
                ..
            } => {
                let counts: Vec<String> = counts.iter().map(|(c, n)| format!("{c} {n}")).collect();
                format!(
                    "{}  ballot in {stage} closes ({reason}): {} → {verdict}\n{:18}{explanation}",
                    t(at),
                    counts.join(", "),
                    ""
                )
            }
            Entry::Registered { at, number } => format!("{}  registered as {number}", t(at)),
            Entry::Ended { at, outcome } => format!("{}  ended: {outcome}", t(at)),
            Entry::Waiting { at, stage, what } => format!("{}  waits in {stage} for {what}", t(at)),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.push('\n');
    match (&report.outcome, &report.stopped) {
        (Some(o), _) => out.push_str(&format!(
            "outcome: {o}{}\n",
            report
                .register_number
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        )),
        (None, Some(why)) => out.push_str(&format!("no outcome: {why}\n")),
        (None, None) => out.push_str("no outcome\n"),
    }
    out
}
