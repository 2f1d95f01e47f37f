//! The shell's clock: the one place the time is read. The engine never reads a clock; time
//! reaches it in events, stamped by the writer with this clock.
//!
//! The daemon runs on [`Clock::from_environment`], the wall clock shifted by
//! `COUNCILD_CLOCK_OFFSET` (a duration such as `1d` or `-2h`, read at start): tests use it
//! to see a daemon come back after a day of downtime, and secretaries can rehearse a
//! workflow's timing. An offset that does not read, or that puts the clock before 1970
//! (timer keys are milliseconds since 1970, unsigned, so such timers would never fire) or
//! past [`LATEST`], stops the start with an error. Tests in
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

/// The latest year a shifted clock may start in: far beyond any real council's timing, and
/// far below where adding a workflow's durations to it could overflow.
pub const LATEST: i32 = 2999;

impl Clock {
    /// The wall clock, as it is.
    pub fn system() -> Clock {
        Clock(Arc::new(Inner::System(chrono::Duration::zero())))
    }

    /// The wall clock, shifted by `COUNCILD_CLOCK_OFFSET` if it is set; an error that names
    /// the variable if its value does not read or puts the clock out of range.
    pub fn from_environment() -> Result<Clock, String> {
        let offset = match std::env::var("COUNCILD_CLOCK_OFFSET") {
            Ok(text) => shifted(Utc::now(), &text)
                .map_err(|e| format!("COUNCILD_CLOCK_OFFSET `{text}`: {e}"))?,
            Err(_) => chrono::Duration::zero(),
        };
        Ok(Clock(Arc::new(Inner::System(offset))))
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

/// The offset `text` names, if it keeps `now` between 1970 and [`LATEST`].
fn shifted(now: DateTime<Utc>, text: &str) -> Result<chrono::Duration, String> {
    use chrono::Datelike as _;
    let offset = parse_offset(text)?;
    match now.checked_add_signed(offset) {
        Some(at) if at.timestamp() < 0 => Err(format!(
            "it puts the clock at {}, before 1970; timers would never fire",
            at.format("%Y-%m-%d")
        )),
        Some(at) if at.year() <= LATEST => Ok(offset),
        _ => Err(format!("it puts the clock past the year {LATEST}")),
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

    #[test]
    fn an_offset_must_keep_the_clock_between_1970_and_the_latest_year() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        assert_eq!(shifted(now, "-1d"), Ok(chrono::Duration::days(-1)));
        let before = shifted(now, "-3000w").unwrap_err();
        assert!(before.contains("before 1970"), "{before}");
        assert!(shifted(now, "-60y").is_err(), "not a duration");
        let late = Utc.with_ymd_and_hms(2990, 1, 1, 0, 0, 0).unwrap();
        assert!(
            shifted(late, "5200w")
                .unwrap_err()
                .contains("past the year")
        );
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
