//! Who a mail effect reaches: delegates of the roster, or voters of a ballot's electorate.
//! One answer for the writer, which addresses the mail, and the simulator, which counts it.

use super::{Item, Recipients, Voter};
use crate::definition::Audience;
use crate::roster::{Delegate, Member, Roster};

/// One person a mail goes to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Addressee<'a> {
    /// The secretariat's own address.
    Secretariat(&'a Delegate),
    /// A delegate of a member, with its place in the member's roster entry.
    Delegate(&'a Member, usize, &'a Delegate),
    /// The voting delegate of a member of a ballot's electorate, as fixed when it opened.
    Voter(&'a Voter),
}

/// Everyone `to` names, in roster or electorate order.
pub fn recipients<'a>(roster: &'a Roster, item: &'a Item, to: &Recipients) -> Vec<Addressee<'a>> {
    let ballot = |b: &usize| item.ballots.get(*b);
    match to {
        Recipients::Audience(Audience::Secretariat) => {
            vec![Addressee::Secretariat(&roster.secretariat)]
        }
        Recipients::Audience(audience) => roster
            .members
            .iter()
            .flat_map(|m| {
                let delegates: Vec<(usize, &Delegate)> = match audience {
                    Audience::Heads => m.voter().into_iter().collect(),
                    _ => m.delegates.iter().enumerate().collect(),
                };
                delegates
                    .into_iter()
                    .map(move |(i, d)| Addressee::Delegate(m, i, d))
            })
            .collect(),
        Recipients::Electorate(b) => ballot(b)
            .map(|b| b.electorate.iter().map(Addressee::Voter).collect())
            .unwrap_or_default(),
        Recipients::Voter(b, member) => ballot(b)
            .and_then(|b| b.electorate.voter(member))
            .map(Addressee::Voter)
            .into_iter()
            .collect(),
        Recipients::InRoom(b) => ballot(b)
            .map(|b| {
                let present = b.room.as_ref().map(|r| &r.present[..]).unwrap_or_default();
                b.electorate
                    .iter()
                    .filter(|v| present.contains(&v.member))
                    .map(Addressee::Voter)
                    .collect()
            })
            .unwrap_or_default(),
        Recipients::NotVoted(b) => ballot(b)
            .map(|b| {
                b.electorate
                    .iter()
                    .filter(|v| b.vote(&v.member).is_none())
                    .map(Addressee::Voter)
                    .collect()
            })
            .unwrap_or_default(),
        Recipients::Trustees => {
            let trustees = item
                .trust
                .as_ref()
                .map(|t| &t.trustees[..])
                .unwrap_or_default();
            roster
                .members
                .iter()
                .filter(|m| trustees.iter().any(|t| t.member == m.id))
                .flat_map(|m| {
                    m.delegates
                        .iter()
                        .enumerate()
                        .map(move |(i, d)| Addressee::Delegate(m, i, d))
                })
                .collect()
        }
    }
}
