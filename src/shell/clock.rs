//! The daemon's wall clock, the one place the shell reads the time.
//!
//! `COUNCILD_CLOCK_OFFSET` (a duration such as `1d` or `-2h`, read once at start) shifts it:
//! tests use it to see a daemon come back after a day of downtime, and secretaries can
//! rehearse a workflow's timing. The engine never reads a clock; time reaches it in events.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

static OFFSET: LazyLock<chrono::Duration> = LazyLock::new(|| {
    let Ok(text) = std::env::var("COUNCILD_CLOCK_OFFSET") else {
        return chrono::Duration::zero();
    };
    let (sign, magnitude) = match text.trim().strip_prefix('-') {
        Some(rest) => (-1, rest.to_string()),
        None => (1, text.trim().trim_start_matches('+').to_string()),
    };
    match magnitude.parse::<crate::definition::Duration>() {
        Ok(d) => d.0 * sign,
        Err(e) => {
            tracing::error!("COUNCILD_CLOCK_OFFSET ignored: {e}");
            chrono::Duration::zero()
        }
    }
});

/// The current time, shifted by `COUNCILD_CLOCK_OFFSET` if set.
pub fn now() -> DateTime<Utc> {
    Utc::now() + *OFFSET
}
