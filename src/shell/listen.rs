//! Connection caps: how many connections each listener keeps open, in all and per client.
//!
//! Every open connection holds a file descriptor, and a process has a fixed number of them
//! (1,024 by default on Linux). Without a cap, a client that opens connections and sends
//! nothing takes them all, and then no listener can accept, the store cannot open a file
//! and the outbox cannot connect. So each listener has its own [`Gate`], checked at accept:
//! a connection over its listener's cap, or over its client's share, is closed at once,
//! counted in `councild_connections_refused`, and logged at most once a minute. The caps
//! of all listeners together stay below the open-file limit ([`Caps::fit`]), which the
//! daemon first raises as far as it may ([`raise_open_file_limit`]), so a flood on the
//! public side leaves the admin side (`/healthz`, `/metrics`) reachable.
//!
//! How long a connection may stay open is each protocol's business: HTTP in `http`,
//! SMTP in `inbound`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::{TcpListener, TcpStream};

use crate::observe::{ListenerLabel, Metrics};

/// Most connections open at once on the public listener (ballot pages): far more than a
/// council's delegates voting at the same moment.
pub const PUBLIC_CONNECTIONS: usize = 512;
/// Most connections open at once on the admin listener: the secretariat, monitoring and
/// the CLI. Its own cap is the admin side's reserve while the public side is flooded.
pub const ADMIN_CONNECTIONS: usize = 64;
/// Most sessions open at once on the inbound SMTP listener (replies arrive through a few
/// mail relays, each keeping a handful of sessions).
pub const INBOUND_CONNECTIONS: usize = 128;
/// The default share of one client (one IPv4 address, one IPv6 /64) on each listener, so
/// that one client cannot take a whole listener. Behind a reverse proxy every public
/// connection comes from the proxy: `[public] connections_per_client` raises it there.
pub const CONNECTIONS_PER_CLIENT: usize = 64;
/// Descriptors kept for everything but the listeners' connections: the store's files,
/// outgoing SMTP connections, templates being read, the log, the listeners themselves.
pub const RESERVED_FILES: u64 = 256;
/// How often, at most, refused connections are logged (they are counted every time).
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Pause after a failed accept (out of descriptors, most likely), so that the loop does
/// not spin while the cause lasts.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The caps of every listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub public: Limit,
    pub admin: Limit,
    pub inbound: Limit,
}

/// One listener's cap: connections in all, and per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub total: usize,
    pub per_client: usize,
}

impl Limit {
    fn new(total: usize, per_client: usize) -> Limit {
        Limit {
            total,
            per_client: per_client.clamp(1, total.max(1)),
        }
    }
}

impl Caps {
    /// The default caps, with the public listener's share per client as configured.
    pub fn new(public_per_client: usize) -> Caps {
        Caps {
            public: Limit::new(PUBLIC_CONNECTIONS, public_per_client),
            admin: Limit::new(ADMIN_CONNECTIONS, CONNECTIONS_PER_CLIENT),
            inbound: Limit::new(INBOUND_CONNECTIONS, CONNECTIONS_PER_CLIENT),
        }
    }

    /// These caps, shrunk in proportion when they and [`RESERVED_FILES`] do not fit under
    /// `open_files` (the process's limit), so that the listeners together can never take
    /// the last descriptor. Each listener keeps at least a few connections.
    pub fn fit(self, open_files: u64) -> Caps {
        let wanted = (self.public.total + self.admin.total + self.inbound.total) as u64;
        let available = open_files.saturating_sub(RESERVED_FILES);
        if available >= wanted {
            return self;
        }
        let shrink = |l: Limit| {
            let total = (l.total as u64 * available / wanted).max(4) as usize;
            Limit::new(total, l.per_client.min(total))
        };
        Caps {
            public: shrink(self.public),
            admin: shrink(self.admin),
            inbound: shrink(self.inbound),
        }
    }
}

/// Raises the soft limit on open files to the hard limit, where the system allows, and
/// returns the limit in force (or `None` if it cannot be read).
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given. A refusal (macOS refuses
        // RLIM_INFINITY, for one) leaves the soft limit where it was.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    #[allow(clippy::unnecessary_cast)] // `rlim_t` is not `u64` on every Unix.
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

/// One listener's count of open connections, in all and per client.
pub struct Gate {
    name: &'static str,
    limit: Limit,
    /// Reverse proxies: held to the listener's cap only, not to a client's share.
    trusted: Vec<IpAddr>,
    open: Mutex<Open>,
    refused: Counter,
    gauge: Gauge,
    /// When refusals were last logged, and how many since.
    warned: Mutex<(Option<Instant>, u64)>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// An admitted connection's place under its listener's cap, given back when dropped.
pub struct Slot {
    gate: Arc<Gate>,
    client: IpAddr,
}

impl Gate {
    /// The gate of listener `name` (`public`, `admin`, `inbound`: the metrics' label).
    pub fn new(
        name: &'static str,
        limit: Limit,
        trusted: &[IpAddr],
        metrics: &Metrics,
    ) -> Arc<Gate> {
        let label = ListenerLabel {
            listener: name.to_string(),
        };
        Arc::new(Gate {
            name,
            limit,
            trusted: trusted.to_vec(),
            open: Mutex::default(),
            refused: metrics.connections_refused.get_or_create(&label).clone(),
            gauge: metrics.connections_open.get_or_create(&label).clone(),
            warned: Mutex::new((None, 0)),
        })
    }

    /// A place for a connection from `peer`, or `None` (counted, and logged now and then)
    /// when the listener or that client is at its cap.
    pub fn admit(self: &Arc<Gate>, peer: SocketAddr) -> Option<Slot> {
        let client = client_of(peer.ip());
        let admitted = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let mine = open.by_client.get(&client).copied().unwrap_or(0);
            let ip = peer.ip().to_canonical();
            let share = match self.trusted.iter().any(|t| t.to_canonical() == ip) {
                true => self.limit.total,
                false => self.limit.per_client,
            };
            let room = open.total < self.limit.total && mine < share;
            if room {
                open.total += 1;
                open.by_client.insert(client, mine + 1);
            }
            room
        };
        if !admitted {
            self.refuse(client);
            return None;
        }
        self.gauge.inc();
        Some(Slot {
            gate: self.clone(),
            client,
        })
    }

    fn refuse(&self, client: IpAddr) {
        self.refused.inc();
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        warned.1 += 1;
        if warned.0.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                listener = self.name,
                %client,
                refused = warned.1,
                cap = self.limit.total,
                per_client = self.limit.per_client,
                "connections refused: the listener or this client is at its cap (logged at most once a minute; see councild_connections_refused)"
            );
            *warned = (Some(Instant::now()), 0);
        }
    }

    fn release(&self, client: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&client);
            }
        }
        drop(open);
        self.gauge.dec();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gate.release(self.client);
    }
}

/// The next connection under the gate's cap; connections over it are closed at once.
/// Accept errors (out of descriptors, most likely) are logged at most once a minute and
/// waited out, so the loop neither spins nor stops.
pub async fn accept(listener: &TcpListener, gate: &Arc<Gate>) -> (TcpStream, SocketAddr, Slot) {
    let mut last_error: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if let Some(slot) = gate.admit(peer) {
                    return (stream, peer, slot);
                }
                drop(stream);
            }
            Err(e) => {
                if last_error.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                    tracing::warn!(listener = gate.name, error = %e, "accept failed");
                    last_error = Some(Instant::now());
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

/// Who a peer counts as: its IPv4 address, or the /64 of its IPv6 address (one site's
/// machines share a /64, and a single machine may hold the whole of it).
pub fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_gate_admits_up_to_its_caps_and_frees_a_place_when_a_slot_drops() {
        let metrics = Metrics::default();
        let gate = Gate::new("public", Limit::new(3, 2), &[], &metrics);
        let a1 = gate.admit(peer("10.0.0.1:1000"));
        let a2 = gate.admit(peer("10.0.0.1:1001"));
        assert!(a1.is_some() && a2.is_some());
        assert!(gate.admit(peer("10.0.0.1:1002")).is_none(), "per client");
        let b1 = gate.admit(peer("10.0.0.2:1000"));
        assert!(b1.is_some());
        assert!(gate.admit(peer("10.0.0.3:1000")).is_none(), "in all");
        drop(a1);
        assert!(gate.admit(peer("10.0.0.3:1000")).is_some());
        assert!(
            metrics
                .render()
                .contains("councild_connections_refused_total{listener=\"public\"} 2")
        );
    }

    #[test]
    fn a_trusted_proxy_is_held_to_the_listeners_cap_only() {
        let metrics = Metrics::default();
        let proxy: IpAddr = [10, 0, 0, 9].into();
        let gate = Gate::new("public", Limit::new(4, 1), &[proxy], &metrics);
        let slots: Vec<_> = (0..4)
            .map(|port| gate.admit(SocketAddr::new(proxy, 1000 + port)))
            .collect();
        assert!(slots.iter().all(Option::is_some), "the proxy's connections");
        assert!(gate.admit(SocketAddr::new(proxy, 2000)).is_none(), "in all");
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let a = client_of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = client_of("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(
            client_of("::ffff:10.0.0.1".parse().unwrap()),
            client_of("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn caps_shrink_below_a_small_open_file_limit() {
        let caps = Caps::new(CONNECTIONS_PER_CLIENT);
        assert_eq!(caps.fit(1_024), caps, "the defaults fit under 1,024");
        let small = caps.fit(512);
        let sum = small.public.total + small.admin.total + small.inbound.total;
        assert!(sum as u64 + RESERVED_FILES <= 512, "{small:?}");
        assert!(small.admin.total >= 4 && small.public.per_client <= small.public.total);
        assert!(caps.fit(0).public.total >= 4);
    }
}
