//! The decision-cycle engine: one item's state, the events that change it, and the effects
//! it asks of the world.
//!
//! `apply` is pure and deterministic: it does no I/O and reads no clock (time comes in as
//! `at`). Every refusal is checked before anything changes, so a rejected event leaves the
//! item exactly as it was. Folding an item's event log through `apply` from the start gives
//! exactly the stored item. Facts only the outside world knows (who may vote when a ballot
//! opens, the next free register number) are asked for with an effect and come back as an
//! event, so they are in the log too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::definition::{Audience, Close, InputKind, TieRule, Wait, Workflow};
use crate::rules::{self, Counts, Tie, Verdict, VoterInfo};

/// What `apply` needs besides the item and the event.
pub struct Context<'a> {
    pub workflow: &'a Workflow,
    pub tz: Tz,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub workflow: String,
    /// The definition version the item runs on, for its whole life.
    pub version: String,
    pub inputs: BTreeMap<String, String>,
    pub started_at: DateTime<Utc>,
    pub stage: String,
    pub entered_at: DateTime<Utc>,
    pub status: Status,
    pub outcome: Option<String>,
    pub register_number: Option<String>,
    pub ballots: Vec<Ballot>,
    pub signals: Vec<Signal>,
    /// Pending timers by name, with their due time.
    pub timers: BTreeMap<String, DateTime<Utc>>,
    /// A fact the engine asked for and waits on before the stage goes on.
    pub awaiting: Option<Awaiting>,
    /// Number of events in the item's log, and the hash of the last one (set by the store).
    pub seq: u64,
    pub head: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Awaiting {
    Register,
    Electorate(usize),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ballot {
    pub stage: String,
    pub question: String,
    pub choices: Vec<String>,
    pub opened_at: DateTime<Utc>,
    pub closes_at: DateTime<Utc>,
    /// Fixed when the ballot opens: one voter per member with a voting right. Shared, so
    /// that copying an item does not copy its voters; stored by its id (see `store`).
    #[serde(with = "electorate_by_id")]
    pub electorate: Arc<Electorate>,
    /// All members of the council when the ballot opened, suspended ones included.
    pub members: u64,
    /// Each voter's choice; a later vote replaces an earlier one. Stored as one row per
    /// member (see `store`), so that a vote writes a few bytes, not the whole ballot.
    #[serde(skip)]
    pub votes: Votes,
    pub result: Option<BallotResult>,
    /// A recorded vote: who voted what may be shown.
    #[serde(default)]
    pub recorded: bool,
    /// Where a lot is drawn from: the chain's head when the ballot opened, which no vote
    /// can influence and no voter sees.
    #[serde(default)]
    pub seed: String,
}

/// The voters of a ballot, named by a hash of their content: ballots opened on the same
/// roster share one copy in memory and one row in the store. Serialised as the list of
/// voters (so in the log, an `electorate_fixed` event carries every voter).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Electorate {
    id: String,
    voters: Vec<Voter>,
    /// Member id to place in `voters`.
    places: HashMap<String, usize>,
}

impl Electorate {
    pub fn new(voters: Vec<Voter>) -> Electorate {
        let json = serde_json::to_vec(&voters).unwrap_or_default();
        let id = hex::encode(&Sha256::digest(&json)[..16]);
        let places = voters
            .iter()
            .enumerate()
            .map(|(i, v)| (v.member.clone(), i))
            .collect();
        Electorate { id, voters, places }
    }

    /// The content hash: equal ids, equal voters.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// An electorate known only by its id, until the store puts the voters back.
    fn unresolved(id: String) -> Electorate {
        Electorate {
            id,
            ..Electorate::default()
        }
    }

    pub fn place(&self, member: &str) -> Option<usize> {
        self.places.get(member).copied()
    }

    pub fn voter(&self, member: &str) -> Option<&Voter> {
        self.voters.get(self.place(member)?)
    }
}

/// Each voter's choice, by the voter's place in the electorate: 0 for none, otherwise one
/// more than the choice's place in the ballot's choices. Copying it is one small memcpy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Votes {
    by_place: Vec<u16>,
    cast: usize,
}

impl Ballot {
    /// How many members have voted.
    pub fn cast(&self) -> usize {
        self.votes.cast
    }

    /// A member's current choice.
    pub fn vote(&self, member: &str) -> Option<&str> {
        let place = self.electorate.place(member)?;
        self.choice_at(place)
    }

    fn choice_at(&self, place: usize) -> Option<&str> {
        let c = usize::from(*self.votes.by_place.get(place)?);
        self.choices.get(c.checked_sub(1)?).map(String::as_str)
    }

    /// Every vote cast, in the electorate's order.
    pub fn votes(&self) -> impl Iterator<Item = (&Voter, &str)> {
        self.electorate
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((v, self.choice_at(i)?)))
    }

    /// Records (or changes) a member's vote; false, and nothing changed, when the member is
    /// not in the electorate or the choice is not offered.
    pub fn record(&mut self, member: &str, choice: &str) -> bool {
        let (Some(place), Some(c)) = (
            self.electorate.place(member),
            self.choices.iter().position(|x| x == choice),
        ) else {
            return false;
        };
        let Ok(c) = u16::try_from(c + 1) else {
            return false;
        };
        let votes = &mut self.votes;
        if votes.by_place.len() < self.electorate.len() {
            votes.by_place.resize(self.electorate.len(), 0);
        }
        if votes.by_place[place] == 0 {
            votes.cast += 1;
        }
        votes.by_place[place] = c;
        true
    }
}

impl std::ops::Deref for Electorate {
    type Target = [Voter];
    fn deref(&self) -> &[Voter] {
        &self.voters
    }
}

impl Serialize for Electorate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.voters.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Electorate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Electorate, D::Error> {
        Vec::<Voter>::deserialize(d).map(Electorate::new)
    }
}

/// A ballot's electorate inside a stored item: its id only.
mod electorate_by_id {
    use super::*;

    pub fn serialize<S: serde::Serializer>(e: &Arc<Electorate>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&e.id)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<Electorate>, D::Error> {
        String::deserialize(d).map(|id| Arc::new(Electorate::unresolved(id)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voter {
    pub member: String,
    pub member_name: String,
    /// Index of the voting delegate in the member's roster entry.
    pub delegate: usize,
    pub name: String,
    pub email: String,
    pub language: String,
    /// Roster attributes (e.g. population) and groups at opening, for weighted rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BallotResult {
    #[serde(with = "verdict_name")]
    pub verdict: Verdict,
    pub counts: BTreeMap<String, u64>,
    pub explanation: String,
    pub closed_at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub stage: String,
    pub name: String,
    pub member: Option<String>,
    pub at: DateTime<Utc>,
    pub data: serde_json::Value,
}

/// A fact appended to an item's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Started {
        workflow: String,
        version: String,
        inputs: BTreeMap<String, String>,
    },
    ElectorateFixed {
        ballot: usize,
        electorate: Arc<Electorate>,
        members: u64,
    },
    Registered {
        series: String,
        year: i32,
        seq: u64,
    },
    VoteCast {
        ballot: usize,
        member: String,
        choice: String,
    },
    TimerFired {
        timer: String,
    },
    Signal {
        name: String,
        member: Option<String>,
        data: serde_json::Value,
        members: u64,
        eligible: u64,
    },
    /// The secretariat moves a ballot's deadline later.
    DeadlineExtended {
        ballot: usize,
        closes_at: DateTime<Utc>,
    },
    Cancelled {
        reason: String,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Started { .. } => "started",
            Event::ElectorateFixed { .. } => "electorate_fixed",
            Event::Registered { .. } => "registered",
            Event::VoteCast { .. } => "vote_cast",
            Event::TimerFired { .. } => "timer_fired",
            Event::Signal { .. } => "signal",
            Event::DeadlineExtended { .. } => "deadline_extended",
            Event::Cancelled { .. } => "cancelled",
        }
    }
}

/// What the engine asks the world to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Mail {
        template: String,
        to: Recipients,
        ballot: Option<usize>,
    },
    SetTimer {
        name: String,
        due: DateTime<Utc>,
    },
    CancelTimer {
        name: String,
        due: DateTime<Utc>,
    },
    /// Answer with `Event::ElectorateFixed` from the current roster.
    FixElectorate {
        ballot: usize,
    },
    /// Answer with `Event::Registered` carrying the next free number of the series and year.
    Register {
        series: String,
        year: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    Audience(Audience),
    /// The voting delegate of one member of the ballot's electorate (a vote's receipt).
    Voter(usize, String),
    /// The voting delegate of every member in the ballot's electorate.
    Electorate(usize),
    /// Those of the electorate who have not voted yet.
    NotVoted(usize),
}

/// Why an event was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("item already exists")]
    AlreadyStarted,
    #[error("item does not exist")]
    NotStarted,
    #[error("the item has ended")]
    Ended,
    #[error("input `{0}` is required")]
    MissingInput(String),
    #[error("the workflow has no input `{0}`")]
    UnknownInput(String),
    #[error("input `{0}`: {1}")]
    BadInput(String, String),
    #[error("no such ballot")]
    NoSuchBallot,
    #[error("the ballot is closed")]
    BallotClosed,
    #[error("the ballot is not open yet")]
    BallotNotOpen,
    #[error("member `{0}` is not in this ballot's electorate")]
    NotInElectorate(String),
    #[error("`{0}` is not a choice of this ballot")]
    NoSuchChoice(String),
    #[error("stage `{stage}` does not accept signal `{name}`")]
    UnexpectedSignal { stage: String, name: String },
    #[error("timer `{0}` is not pending")]
    StaleTimer(String),
    #[error("the item is not waiting for this fact")]
    NotAwaiting,
    #[error("the new deadline must be later than the current one ({0}) and in the future")]
    DeadlineNotLater(DateTime<Utc>),
}

/// Applies one event to an item (`None` before `Started`), returning the effects.
pub fn apply(
    ctx: &Context,
    state: &mut Option<Item>,
    id: &str,
    at: DateTime<Utc>,
    event: &Event,
) -> Result<Vec<Effect>, Rejection> {
    let mut fx = Vec::new();
    if let Event::Started {
        workflow,
        version,
        inputs,
    } = event
    {
        if state.is_some() {
            return Err(Rejection::AlreadyStarted);
        }
        check_inputs(ctx.workflow, inputs)?;
        let mut inputs = inputs.clone();
        for (name, spec) in &ctx.workflow.inputs {
            if let Some(default) = &spec.default {
                inputs
                    .entry(name.clone())
                    .or_insert_with(|| default.clone());
            }
        }
        let start = ctx.workflow.start.clone();
        let item = state.insert(Item {
            id: id.to_string(),
            workflow: workflow.clone(),
            version: version.clone(),
            inputs,
            started_at: at,
            stage: start.clone(),
            entered_at: at,
            status: Status::Open,
            outcome: None,
            register_number: None,
            ballots: Vec::new(),
            signals: Vec::new(),
            timers: BTreeMap::new(),
            awaiting: None,
            seq: 0,
            head: String::new(),
        });
        enter(ctx, item, start, at, &mut fx);
        return Ok(fx);
    }
    let item = state.as_mut().ok_or(Rejection::NotStarted)?;
    if item.status == Status::Ended {
        return Err(Rejection::Ended);
    }
    match event {
        Event::Started { .. } => unreachable!("handled above"),
        Event::ElectorateFixed {
            ballot,
            electorate,
            members,
        } => {
            if item.awaiting != Some(Awaiting::Electorate(*ballot)) || *ballot >= item.ballots.len()
            {
                return Err(Rejection::NotAwaiting);
            }
            item.awaiting = None;
            let head = item.head.clone();
            let b = &mut item.ballots[*ballot];
            b.electorate = electorate.clone();
            b.seed = head;
            b.members = *members;
            let closes_at = b.closes_at;
            let no_voters = b.electorate.is_empty();
            if let Some(spec) = ballot_spec(ctx, item) {
                fx.push(Effect::Mail {
                    template: spec.template.clone(),
                    to: Recipients::Electorate(*ballot),
                    ballot: Some(*ballot),
                });
                set_ballot_timers(item, spec, *ballot, closes_at, at, &mut fx);
                if no_voters && spec.close != Close::AtDeadline {
                    close(
                        ctx,
                        item,
                        *ballot,
                        at,
                        "nobody is entitled to vote",
                        &mut fx,
                    );
                }
            }
        }
        Event::Registered {
            series: _,
            year,
            seq,
        } => {
            if item.awaiting != Some(Awaiting::Register) {
                return Err(Rejection::NotAwaiting);
            }
            item.awaiting = None;
            let pattern = ctx
                .workflow
                .stages
                .get(&item.stage)
                .and_then(|s| s.register.as_ref())
                .map(|r| r.number.clone());
            item.register_number = pattern.and_then(|p| format_number(&p, *year, *seq).ok());
            if let Some(next) = proceed(ctx, item, at, &mut fx) {
                enter(ctx, item, next, at, &mut fx);
            }
        }
        Event::VoteCast {
            ballot,
            member,
            choice,
        } => {
            let b = item.ballots.get(*ballot).ok_or(Rejection::NoSuchBallot)?;
            if b.result.is_some() {
                return Err(Rejection::BallotClosed);
            }
            if item.awaiting == Some(Awaiting::Electorate(*ballot)) {
                return Err(Rejection::BallotNotOpen);
            }
            if b.electorate.place(member).is_none() {
                return Err(Rejection::NotInElectorate(member.clone()));
            }
            if !b.choices.contains(choice) {
                return Err(Rejection::NoSuchChoice(choice.clone()));
            }
            let b = &mut item.ballots[*ballot];
            if !b.record(member, choice) {
                // More choices than a vote can name (65,535): nothing was changed.
                return Err(Rejection::NoSuchChoice(choice.clone()));
            }
            let all_voted = b.cast() == b.electorate.len();
            if let Some(spec) = ballot_spec(ctx, item) {
                fx.push(Effect::Mail {
                    template: spec.receipt_template.clone(),
                    to: Recipients::Voter(*ballot, member.clone()),
                    ballot: Some(*ballot),
                });
            }
            if let Some(spec) = ballot_spec(ctx, item) {
                match spec.close {
                    Close::WhenAllVoted if all_voted => {
                        close(ctx, item, *ballot, at, "every member voted", &mut fx)
                    }
                    Close::WhenDecided if all_voted => {
                        close(ctx, item, *ballot, at, "every member voted", &mut fx)
                    }
                    Close::WhenDecided
                        if rules::decided(
                            spec.quorum.as_ref(),
                            &spec.pass,
                            tie_rule(spec, &item.ballots[*ballot].seed).as_ref(),
                            &counts(&item.ballots[*ballot]),
                        ) =>
                    {
                        close(
                            ctx,
                            item,
                            *ballot,
                            at,
                            "decided: no remaining or changed vote can change the verdict",
                            &mut fx,
                        )
                    }
                    _ => {}
                }
            }
        }
        Event::TimerFired { timer } => {
            if item.timers.remove(timer).is_none() {
                return Err(Rejection::StaleTimer(timer.clone()));
            }
            if let Some(rest) = timer.strip_prefix("close:") {
                if let Ok(b) = rest.parse::<usize>() {
                    close(ctx, item, b, at, "the deadline passed", &mut fx);
                }
            } else if let Some(rest) = timer.strip_prefix("remind:") {
                let b = rest.split(':').next().and_then(|b| b.parse::<usize>().ok());
                let template = ballot_spec(ctx, item).map(|s| s.remind_template.clone());
                if let (Some(b), Some(template)) = (b, template) {
                    fx.push(Effect::Mail {
                        template,
                        to: Recipients::NotVoted(b),
                        ballot: Some(b),
                    });
                }
            } else if let Some(next) = ctx
                .workflow
                .stages
                .get(&item.stage)
                .and_then(|s| s.next.clone())
            {
                enter(ctx, item, next, at, &mut fx);
            }
        }
        Event::Signal {
            name,
            member,
            data,
            members,
            eligible,
        } => {
            let on = ctx
                .workflow
                .stages
                .get(&item.stage)
                .and_then(|s| s.on_signal.as_ref());
            let Some(on) = on.filter(|on| &on.name == name) else {
                return Err(Rejection::UnexpectedSignal {
                    stage: item.stage.clone(),
                    name: name.clone(),
                });
            };
            item.signals.push(Signal {
                stage: item.stage.clone(),
                name: name.clone(),
                member: member.clone(),
                at,
                data: data.clone(),
            });
            let count = signal_count(item, name);
            let c = Counts {
                choices: BTreeMap::from([("count".to_string(), count)]),
                eligible: *eligible,
                members: *members,
                voters: Vec::new(),
            };
            if on.until.eval(&c).unwrap_or(false) {
                enter(ctx, item, on.next.clone(), at, &mut fx);
            }
        }
        Event::DeadlineExtended { ballot, closes_at } => {
            let b = item.ballots.get(*ballot).ok_or(Rejection::NoSuchBallot)?;
            if b.result.is_some() {
                return Err(Rejection::BallotClosed);
            }
            if *closes_at <= b.closes_at || *closes_at <= at {
                return Err(Rejection::DeadlineNotLater(b.closes_at));
            }
            let spec = ballot_spec(ctx, item);
            if let (Some(spec), Some(b)) = (spec, item.ballots.get_mut(*ballot)) {
                b.closes_at = *closes_at;
                let prefixes = [format!("close:{ballot}"), format!("remind:{ballot}:")];
                let stale: Vec<String> = item
                    .timers
                    .keys()
                    .filter(|t| prefixes.iter().any(|p| t.starts_with(p.as_str())))
                    .cloned()
                    .collect();
                for name in stale {
                    if let Some(due) = item.timers.remove(&name) {
                        fx.push(Effect::CancelTimer { name, due });
                    }
                }
                set_ballot_timers(item, spec, *ballot, *closes_at, at, &mut fx);
            }
        }
        Event::Cancelled { .. } => {
            // The reason stays in the log; the item simply ends.
            cancel_timers(item, &mut fx);
            item.awaiting = None;
            item.status = Status::Ended;
            item.outcome = Some("cancelled".into());
        }
    }
    Ok(fx)
}

/// Signals of this name received in the current stage: one per member, each anonymous one counts.
fn signal_count(item: &Item, name: &str) -> u64 {
    let mut members = BTreeSet::new();
    let mut anonymous = 0;
    for s in item
        .signals
        .iter()
        .filter(|s| s.stage == item.stage && s.name == name && s.at >= item.entered_at)
    {
        match &s.member {
            Some(m) => {
                members.insert(m.as_str());
            }
            None => anonymous += 1,
        }
    }
    members.len() as u64 + anonymous
}

/// The electorate a ballot opens with: one voter per member with a voting right, the
/// member's head delegate (or first delegate), with the member's attributes and groups.
pub fn electorate(roster: &crate::roster::Roster) -> Electorate {
    let voters = roster
        .members
        .iter()
        .filter(|m| m.voting_right)
        .filter_map(|m| {
            let (index, d) = m.voter()?;
            Some(Voter {
                member: m.id.clone(),
                member_name: m.name.clone(),
                delegate: index,
                name: d.name.clone(),
                email: d.email.clone(),
                language: d.language.clone(),
                attributes: m.attributes.clone(),
                groups: m.groups.clone(),
            })
        })
        .collect();
    Electorate::new(voters)
}

/// The counts a ballot's rules are evaluated over.
pub fn counts(b: &Ballot) -> Counts {
    let voters = b
        .electorate
        .iter()
        .enumerate()
        .map(|(i, v)| VoterInfo {
            member: v.member.clone(),
            choice: b.choice_at(i).map(String::from),
            attributes: v.attributes.clone(),
            groups: v.groups.clone(),
        })
        .collect();
    Counts::from_voters(&b.choices, voters, b.members)
}

/// The ballot's tie rule for the rules module; a lot is drawn from the item's chain head,
/// so the draw is fixed by the log and replays the same.
fn tie_rule(spec: &crate::definition::BallotSpec, seed: &str) -> Option<Tie> {
    Some(match spec.tie.as_ref()? {
        TieRule::Fails => Tie::Fails,
        TieRule::Chair(member) => Tie::Chair(member.clone()),
        TieRule::Lot => {
            Tie::Lot(u64::from_str_radix(seed.get(..16).unwrap_or("0"), 16).unwrap_or(0))
        }
    })
}

fn check_inputs(w: &Workflow, inputs: &BTreeMap<String, String>) -> Result<(), Rejection> {
    for (name, spec) in &w.inputs {
        if spec.required && inputs.get(name).is_none_or(|v| v.trim().is_empty()) {
            return Err(Rejection::MissingInput(name.clone()));
        }
    }
    for (name, value) in inputs {
        let spec = w
            .inputs
            .get(name)
            .ok_or_else(|| Rejection::UnknownInput(name.clone()))?;
        let bad = |why: &str| Err(Rejection::BadInput(name.clone(), why.to_string()));
        match spec.kind {
            InputKind::Text => {}
            InputKind::Url if !(value.starts_with("https://") || value.starts_with("http://")) => {
                return bad("must be an http(s) URL");
            }
            InputKind::Number if !value.parse::<f64>().is_ok_and(f64::is_finite) => {
                return bad("must be a number");
            }
            InputKind::Date if chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() => {
                return bad("must be a date as YYYY-MM-DD");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Enters a stage, following instant `next` exits until the item waits or ends.
fn enter(
    ctx: &Context,
    item: &mut Item,
    mut name: String,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) {
    // Validation refuses instant loops; the bound keeps a broken definition from hanging.
    for _ in 0..=ctx.workflow.stages.len() {
        cancel_timers(item, fx);
        item.stage = name;
        item.entered_at = at;
        let Some(stage) = ctx.workflow.stages.get(&item.stage) else {
            return;
        };
        if let Some(register) = &stage.register {
            item.awaiting = Some(Awaiting::Register);
            fx.push(Effect::Register {
                series: register.series.clone(),
                year: at.with_timezone(&ctx.tz).year(),
            });
            return;
        }
        match proceed(ctx, item, at, fx) {
            Some(next) => name = next,
            None => return,
        }
    }
}

/// Runs the current stage's actions after registration; returns the stage to go on to at once.
fn proceed(
    ctx: &Context,
    item: &mut Item,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) -> Option<String> {
    let stage = ctx.workflow.stages.get(&item.stage)?;
    for n in &stage.notify {
        fx.push(Effect::Mail {
            template: n.template.clone(),
            to: Recipients::Audience(n.to),
            ballot: None,
        });
    }
    if let Some(spec) = &stage.ballot {
        let index = item.ballots.len();
        item.ballots.push(Ballot {
            stage: item.stage.clone(),
            question: spec.question.clone(),
            choices: spec.choices.clone(),
            opened_at: at,
            closes_at: at + spec.closes_after.0,
            electorate: Default::default(),
            members: 0,
            votes: Votes::default(),
            result: None,
            recorded: spec.recorded,
            seed: String::new(),
        });
        item.awaiting = Some(Awaiting::Electorate(index));
        fx.push(Effect::FixElectorate { ballot: index });
        return None;
    }
    if let Some(outcome) = &stage.end {
        item.status = Status::Ended;
        item.outcome = Some(outcome.clone());
        return None;
    }
    let timer = format!("next@{}", item.stage);
    match &stage.wait {
        Some(Wait::After(d)) => set_timer(item, timer, at + d.0, fx),
        Some(Wait::Schedule(s)) => {
            if let Some(due) = s.next_after(at, ctx.tz) {
                set_timer(item, timer, due, fx);
            }
        }
        None if stage.on_signal.is_none() => return stage.next.clone(),
        None => {}
    }
    None
}

fn close(
    ctx: &Context,
    item: &mut Item,
    index: usize,
    at: DateTime<Utc>,
    reason: &str,
    fx: &mut Vec<Effect>,
) {
    let Some(spec) = ballot_spec(ctx, item) else {
        return;
    };
    let Some(b) = item.ballots.get_mut(index) else {
        return;
    };
    if b.result.is_some() {
        return;
    }
    let c = counts(b);
    let tally = rules::tally(
        spec.quorum.as_ref(),
        &spec.pass,
        tie_rule(spec, &b.seed).as_ref(),
        &c,
    );
    b.result = Some(BallotResult {
        verdict: tally.verdict,
        counts: c.choices,
        explanation: tally.explanation,
        closed_at: at,
        reason: reason.to_string(),
    });
    let next = ctx
        .workflow
        .stages
        .get(&item.stage)
        .and_then(|s| s.outcomes.get(&tally.verdict))
        .cloned();
    if let Some(next) = next {
        enter(ctx, item, next, at, fx);
    }
}

/// The ballot of the item's current stage.
fn ballot_spec<'a>(ctx: &Context<'a>, item: &Item) -> Option<&'a crate::definition::BallotSpec> {
    ctx.workflow
        .stages
        .get(&item.stage)
        .and_then(|s| s.ballot.as_ref())
}

/// The deadline of a ballot, and its reminders still to come.
fn set_ballot_timers(
    item: &mut Item,
    spec: &crate::definition::BallotSpec,
    ballot: usize,
    closes_at: DateTime<Utc>,
    at: DateTime<Utc>,
    fx: &mut Vec<Effect>,
) {
    set_timer(item, format!("close:{ballot}"), closes_at, fx);
    for (i, before) in spec.remind.iter().enumerate() {
        let due = closes_at - before.0;
        if due > at {
            set_timer(item, format!("remind:{ballot}:{i}"), due, fx);
        }
    }
}

fn set_timer(item: &mut Item, name: String, due: DateTime<Utc>, fx: &mut Vec<Effect>) {
    item.timers.insert(name.clone(), due);
    fx.push(Effect::SetTimer { name, due });
}

fn cancel_timers(item: &mut Item, fx: &mut Vec<Effect>) {
    for (name, due) in std::mem::take(&mut item.timers) {
        fx.push(Effect::CancelTimer { name, due });
    }
}

/// Verdicts are stored by name (`adopted`, `rejected`, `no_quorum`).
mod verdict_name {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::rules::Verdict;

    pub fn serialize<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Verdict, D::Error> {
        let name = String::deserialize(d)?;
        Verdict::parse(&name).ok_or_else(|| D::Error::custom(format!("unknown verdict `{name}`")))
    }
}

/// Formats a register number: `{{year}}`, `{{seq}}` and `{{seq:03}}` (zero-padded).
pub fn format_number(pattern: &str, year: i32, seq: u64) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{{{{` without `}}}}` in number `{pattern}`"))?;
        let field = after[..close].trim();
        match field.split_once(':') {
            None if field == "year" => out.push_str(&year.to_string()),
            None if field == "seq" => out.push_str(&seq.to_string()),
            Some(("seq", width)) if width.starts_with('0') && width.len() <= 3 => {
                let w: usize = width
                    .parse()
                    .map_err(|_| format!("bad width `{width}` in number `{pattern}`"))?;
                out.push_str(&format!("{seq:0w$}"));
            }
            _ => {
                return Err(format!(
                    "unknown field `{field}` in number `{pattern}`: use {{{{year}}}}, {{{{seq}}}} or {{{{seq:03}}}}"
                ));
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    let has_seq = pattern
        .split("{{")
        .skip(1)
        .any(|f| f.trim_start().starts_with("seq"));
    if !has_seq {
        return Err(format!(
            "number `{pattern}` needs {{{{seq}}}} so that each act gets its own number"
        ));
    }
    Ok(out)
}
