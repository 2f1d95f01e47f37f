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

use std::net::IpAddr;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::token::BallotRef;

/// Votes one link may cast at once: a delegate who changes their mind a few times.
const VOTE_BURST: u32 = 10;
/// And then one vote every this long.
const VOTE_EVERY: Duration = Duration::from_secs(6);
/// Votes one client address (an IPv4 address, an IPv6 /64) may send at once, over all the
/// links it holds: a delegation's office behind one address votes a few times each.
const ADDRESS_BURST: u32 = 120;
/// And then one vote every this long.
const ADDRESS_EVERY: Duration = Duration::from_millis(500);
/// Texts one link may download at once (each of the three languages, a few times), then
/// one every this long: each download reads and checks up to 16 MiB.
const TEXT_BURST: u32 = 20;
const TEXT_EVERY: Duration = Duration::from_secs(3);
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
    pub fn new(burst: u32, every: Duration) -> Self {
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
    addresses: Limiter<IpAddr>,
    notices: Limiter<Link>,
    texts: Limiter<Link>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            votes: Limiter::new(VOTE_BURST, VOTE_EVERY),
            addresses: Limiter::new(ADDRESS_BURST, ADDRESS_EVERY),
            notices: Limiter::new(1, NOTICE_EVERY),
            texts: Limiter::new(TEXT_BURST, TEXT_EVERY),
        }
    }
}

impl Limits {
    /// Whether a vote from this link, sent from `client` (see [`client`]) when known, is
    /// taken now; if not, the page says to try again.
    pub fn vote_allowed(&self, r: &BallotRef, client: Option<IpAddr>) -> bool {
        // The link first: one link retrying in a loop must not spend its office's budget.
        self.votes.allow(&link(r)) && client.is_none_or(|c| self.addresses.allow(&c))
    }

    /// Whether a reply to this link's address may be answered with a notice now.
    pub fn notice_allowed(&self, r: &BallotRef) -> bool {
        self.notices.allow(&link(r))
    }

    /// Whether this link may download a text now.
    pub fn text_allowed(&self, r: &BallotRef) -> bool {
        self.texts.allow(&link(r))
    }
}

/// Who sent a request that reached us from `peer`: `peer` itself, or, when `peer` is one
/// of the `trusted` proxies, the last address of `forwarded` (`X-Forwarded-For`, empty when
/// absent) that is not (each proxy
/// appends the address it got the request from; what comes before may be forged). As one
/// client, an IPv6 address counts by its /64, as for connection caps.
pub fn client(peer: IpAddr, forwarded: &str, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_proxy = |ip: &IpAddr| trusted.iter().any(|t| t.to_canonical() == *ip);
    let mut client = peer;
    if is_proxy(&peer) && !forwarded.trim().is_empty() {
        for hop in forwarded.rsplit(',') {
            match hop_address(hop.trim()) {
                Some(ip) => {
                    client = ip;
                    if !is_proxy(&ip) {
                        break;
                    }
                }
                None => break,
            }
        }
    }
    crate::listen::client_of(client)
}

/// One `X-Forwarded-For` hop: an address, or an address with a port as some proxies write
/// it (`203.0.113.7:51234`, `[2001:db8::1]:443`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .or_else(|_| hop.trim_start_matches('[').trim_end_matches(']').parse())
        .ok()
        .map(|ip| ip.to_canonical())
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
        let allowed = (0..50)
            .filter(|_| limits.vote_allowed(&r("AAA"), None))
            .count();
        assert_eq!(allowed, VOTE_BURST as usize);
        assert!(
            limits.vote_allowed(&r("BBB"), None),
            "another member's link"
        );
        assert!(limits.notice_allowed(&r("AAA")));
        assert!(!limits.notice_allowed(&r("AAA")), "one notice an hour");
    }

    #[test]
    fn one_address_votes_in_a_burst_over_all_its_links() {
        let limits = Limits::default();
        let one: IpAddr = [192, 0, 2, 1].into();
        let r = |n: u32| BallotRef {
            item: "item-1".into(),
            ballot: 0,
            member: format!("M{n}"),
            delegate: 0,
        };
        let allowed = (0..1000)
            .filter(|n| limits.vote_allowed(&r(n % 200), Some(one)))
            .count();
        assert_eq!(allowed, ADDRESS_BURST as usize);
        assert!(limits.vote_allowed(&r(7), Some([192, 0, 2, 2].into())));
    }

    #[test]
    fn only_a_trusted_proxy_says_who_the_client_is() {
        let proxy: IpAddr = [10, 0, 0, 1].into();
        let inner: IpAddr = [10, 0, 0, 2].into();
        let trusted = [proxy, inner];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Untrusted peer: the header is whatever the client wrote.
        assert_eq!(
            client(ip("192.0.2.9"), "198.51.100.1", &trusted),
            ip("192.0.2.9")
        );
        // Through one proxy, or two: the last address that is not a proxy; what the client
        // put in front is not believed.
        assert_eq!(
            client(proxy, "1.1.1.1, 198.51.100.1", &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client(proxy, "198.51.100.1, 10.0.0.2", &trusted),
            ip("198.51.100.1")
        );
        // No header, or a last hop that is not an address: the proxy.
        assert_eq!(client(proxy, "", &trusted), proxy);
        assert_eq!(client(proxy, "junk", &trusted), proxy);
        assert_eq!(client(proxy, "198.51.100.1, junk", &trusted), proxy);
        // Hops with ports; an IPv4 proxy seen on a dual-stack listener.
        assert_eq!(
            client(proxy, "198.51.100.1:51234", &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client(proxy, "[2001:db8::1]:443", &trusted),
            ip("2001:db8::")
        );
        assert_eq!(
            client(ip("::ffff:10.0.0.1"), "198.51.100.1", &trusted),
            ip("198.51.100.1")
        );
        // IPv6 clients count by their /64.
        assert_eq!(client(ip("2001:db8::1"), "", &[]), ip("2001:db8::"));
    }
}
