//! The one driver of the engine: a request in, its records and effects out.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Context, Effect, Electorate, Event, Item, Record, Rejection, apply};

/// Most follow-up events (facts asked for by effects) one request may cause; a definition
/// that asks for more stops there, with what it logged so far.
pub const MAX_FOLLOW_UPS: usize = 16;

/// What only the world outside the engine knows, and where the engine's records go. The
/// writer answers from the roster and the store, replay from the log, the simulator from
/// its own roster and counters.
pub trait Facts {
    /// The voters of a ballot opening now, and the number of members of the council.
    fn electorate(&mut self) -> (Arc<Electorate>, u64);
    /// The next free number of a register series in a year.
    fn next_number(&mut self, series: &str, year: i32) -> u64;
    /// The item's texts with its adopted amendments applied: the new version of each
    /// language they change, its bytes stored; or why they cannot be made.
    fn consolidate(
        &mut self,
        item: &Item,
    ) -> Result<std::collections::BTreeMap<String, super::Version>, String>;
    /// A record is appended to the item's log; `item` is the state right after it, and
    /// `effects` (mail and timers) are for the world to carry out once it is durable.
    fn logged(&mut self, item: &Item, record: &Record, effects: Vec<Effect>);
}

/// What a stepped request logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Stepped {
    /// The request's own record: its place in the log and its hash (a vote's receipt).
    pub seq: u64,
    pub hash: String,
    /// A follow-up the engine refused, or the bound on follow-ups reached: the records
    /// before it stand, and the item waits where it is.
    pub stopped: Option<Rejection>,
}

/// Applies `event` to the item (`None` before `Started`) and every follow-up fact its
/// effects ask for, first in first out, all at `at`. Each applied event becomes the next
/// record of the item's chain, the request's own one saying who asked for it (`by`);
/// `facts` hears of each. A refused request changes nothing.
pub fn step(
    ctx: &Context,
    state: &mut Option<Item>,
    id: &str,
    at: DateTime<Utc>,
    event: Event,
    mut by: Option<String>,
    facts: &mut impl Facts,
) -> Result<Stepped, Rejection> {
    let mut queue = VecDeque::from([event]);
    let mut first: Option<(u64, String)> = None;
    let mut records = 0;
    let mut stopped = None;
    while let Some(event) = queue.pop_front() {
        let effects = match apply(ctx, state, id, at, &event) {
            Ok(effects) => effects,
            Err(rejection) if first.is_none() => return Err(rejection),
            Err(rejection) => {
                stopped = Some(rejection);
                break;
            }
        };
        let Some(item) = state.as_mut() else { break };
        let record = Record::new(
            item.seq + 1,
            at,
            event,
            by.take(),
            std::mem::take(&mut item.head),
        );
        item.seq = record.seq;
        item.head.clone_from(&record.hash);
        records += 1;
        first.get_or_insert_with(|| (record.seq, record.hash.clone()));
        let (asks, outward): (Vec<Effect>, Vec<Effect>) = effects.into_iter().partition(|e| {
            matches!(
                e,
                Effect::FixElectorate { .. } | Effect::Register { .. } | Effect::Consolidate
            )
        });
        facts.logged(item, &record, outward);
        for ask in asks {
            if records + queue.len() >= MAX_FOLLOW_UPS {
                stopped = Some(Rejection::TooManyFollowUps);
                break;
            }
            queue.push_back(match ask {
                Effect::FixElectorate { ballot } => {
                    let (electorate, members) = facts.electorate();
                    Event::ElectorateFixed {
                        ballot,
                        electorate,
                        members,
                    }
                }
                Effect::Register { series, year } => {
                    let seq = facts.next_number(&series, year);
                    Event::Registered { series, year, seq }
                }
                Effect::Consolidate => match facts.consolidate(item) {
                    Ok(versions) => Event::TextsConsolidated { versions },
                    Err(why) => {
                        stopped = Some(Rejection::NotConsolidated(why));
                        continue;
                    }
                },
                _ => continue,
            });
        }
    }
    let (seq, hash) = first.unwrap_or_default();
    Ok(Stepped { seq, hash, stopped })
}
