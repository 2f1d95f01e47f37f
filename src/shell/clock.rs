//! The shell's clock: the one place the time is read. The engine never reads a clock; time
//! reaches it in events, stamped by the writer with this clock.
//!
//! The daemon runs on [`Clock::system`], the wall clock shifted by `COUNCILD_CLOCK_OFFSET`
//! (a duration such as `1d` or `-2h`, read at start): tests use it to see a daemon come
//! back after a day of downtime, and secretaries can rehearse a workflow's timing. Tests in
//! the process use [`Clock::manual`], a clock that moves only when told, and wakes the
//! tasks that sleep on it.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

#[derive(Clone)]
pub struct Clock(Arc<Inner>);

enum Inner {
    System(chrono::Duration),
    Manual {
        now: Mutex<DateTime<Utc>>,
        moved: Notify,
    },
}

impl Clock {
    /// The wall clock, shifted by `COUNCILD_CLOCK_OFFSET` if it is set.
    pub fn system() -> Clock {
        let offset = match std::env::var("COUNCILD_CLOCK_OFFSET") {
            Ok(text) => parse_offset(&text).unwrap_or_else(|e| {
                tracing::error!("COUNCILD_CLOCK_OFFSET ignored: {e}");
                chrono::Duration::zero()
            }),
            Err(_) => chrono::Duration::zero(),
        };
        Clock(Arc::new(Inner::System(offset)))
    }

    /// A clock that stands at `at` until [`Clock::advance`] moves it.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock(Arc::new(Inner::Manual {
            now: Mutex::new(at),
            moved: Notify::new(),
        }))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Inner::System(offset) => Utc::now() + *offset,
            Inner::Manual { now, .. } => *now.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Moves a manual clock on and wakes whoever waits on it (the system clock moves alone).
    pub fn advance(&self, by: chrono::Duration) {
        if let Inner::Manual { now, moved } = &*self.0 {
            *now.lock().unwrap_or_else(|p| p.into_inner()) += by;
            moved.notify_waiters();
        }
    }

    /// Resolves when a manual clock is moved after this call; never for the system clock.
    /// Take it before reading the time, so that a move in between is not missed.
    pub fn moved(&self) -> impl Future<Output = ()> + '_ {
        let notified = match &*self.0 {
            Inner::System(_) => None,
            Inner::Manual { moved, .. } => Some(moved.notified()),
        };
        async move {
            match notified {
                Some(n) => n.await,
                None => std::future::pending().await,
            }
        }
    }
}

/// `1d`, `+2h`, `-30m`.
fn parse_offset(text: &str) -> Result<chrono::Duration, String> {
    let text = text.trim();
    let (sign, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.trim_start_matches('+')),
    };
    let d: crate::definition::Duration = magnitude.parse()?;
    Ok(d.0 * sign)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn offsets_read_as_durations_with_a_sign() {
        assert_eq!(parse_offset("1d"), Ok(chrono::Duration::days(1)));
        assert_eq!(parse_offset("+2h"), Ok(chrono::Duration::hours(2)));
        assert_eq!(parse_offset(" -30m "), Ok(chrono::Duration::minutes(-30)));
        assert!(parse_offset("soon").is_err());
    }

    #[tokio::test]
    async fn a_manual_clock_moves_when_told_and_wakes_its_sleepers() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let clock = Clock::manual(at);
        assert_eq!(clock.now(), at);
        let moved = clock.moved();
        clock.advance(chrono::Duration::days(14));
        moved.await;
        assert_eq!(clock.now(), at + chrono::Duration::days(14));
    }
}
