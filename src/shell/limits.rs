//! Rate limits on what one ballot link can make the daemon do: votes from the ballot page,
//! and the "reply not understood" mails a reply address can ask for. A valid link is a
//! delegate's; these limits are far above what a delegate does and far below what a
//! script does (one link once cast 234 votes a second, each an event and a receipt mail).
//!
//! Each limit is a token bucket per key (governor's keyed limiter, on the monotonic
//! clock). Keys are forgotten once their bucket is full again, so the memory is bounded by
//! the keys active in the last refill period.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::token::BallotRef;

/// Votes one link may cast at once: a delegate who changes their mind a few times.
const VOTE_BURST: u32 = 10;
/// And then one vote every this long.
const VOTE_EVERY: Duration = Duration::from_secs(6);
/// "Reply not understood" notices one reply address may cause: one, then one an hour.
const NOTICE_EVERY: Duration = Duration::from_secs(3600);
/// Checks between two sweeps of the keys whose buckets are full again.
const SWEEP_EVERY: u32 = 4096;

/// A token bucket per key.
pub struct Limiter<K: Hash + Eq + Clone> {
    buckets: DefaultKeyedRateLimiter<K>,
    checks: AtomicU32,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `burst` at once, then one every `every`.
    fn new(burst: u32, every: Duration) -> Self {
        let quota = Quota::with_period(every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Limiter {
            buckets: RateLimiter::keyed(quota),
            checks: AtomicU32::new(0),
        }
    }

    /// Whether `key` may act now (and if so, counts it).
    pub fn allow(&self, key: &K) -> bool {
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            self.buckets.retain_recent();
        }
        self.buckets.check_key(key).is_ok()
    }
}

/// One ballot link: the same member's vote in the same ballot (any of its delegates).
type Link = (String, usize, String);

fn link(r: &BallotRef) -> Link {
    (r.item.clone(), r.ballot, r.member.clone())
}

/// The daemon's rate limits.
pub struct Limits {
    votes: Limiter<Link>,
    notices: Limiter<Link>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            votes: Limiter::new(VOTE_BURST, VOTE_EVERY),
            notices: Limiter::new(1, NOTICE_EVERY),
        }
    }
}

impl Limits {
    /// Whether a vote from this link is taken now; if not, the page says to try again.
    pub fn vote_allowed(&self, r: &BallotRef) -> bool {
        self.votes.allow(&link(r))
    }

    /// Whether a reply to this link's address may be answered with a notice now.
    pub fn notice_allowed(&self, r: &BallotRef) -> bool {
        self.notices.allow(&link(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_votes_in_a_burst_then_waits_and_others_are_unaffected() {
        let limits = Limits::default();
        let r = |member: &str| BallotRef {
            item: "item-1".into(),
            ballot: 0,
            member: member.into(),
            delegate: 0,
        };
        let allowed = (0..50).filter(|_| limits.vote_allowed(&r("AAA"))).count();
        assert_eq!(allowed, VOTE_BURST as usize);
        assert!(limits.vote_allowed(&r("BBB")), "another member's link");
        assert!(limits.notice_allowed(&r("AAA")));
        assert!(!limits.notice_allowed(&r("AAA")), "one notice an hour");
    }
}
