//! What the daemon tells its operators: Prometheus metrics and the recent errors.
//!
//! `Metrics` is created once in `serve` and handed to the writer, the timer task, the
//! outbox worker and the HTTP layer. `RecentErrors` is a tracing layer that keeps the last
//! warnings and errors for `/status`.

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

/// Which listener a connection metric is about: `public`, `admin` or `inbound`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabel {
    pub listener: String,
}

/// Which tree of the store rows were written to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TreeLabel {
    pub tree: &'static str,
}

/// Which state a mail is in: `pending`, `retrying` or `failed`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    pub events: Family<KindLabel, Counter>,
    pub votes: Counter,
    /// Bytes of the rows committed, by tree: what the writes to disk are compared to.
    pub commit_bytes: Family<TreeLabel, Counter>,
    pub votes_limited: Counter,
    pub batch_size: Histogram,
    pub flush_seconds: Histogram,
    pub mail_sent: Counter,
    pub mail_failed: Counter,
    pub mail_retried: Counter,
    pub timer_lag_seconds: Histogram,
    pub requests: Family<RequestLabels, Counter>,
    /// Connections closed at accept because their listener or client was at its cap.
    pub connections_refused: Family<ListenerLabel, Counter>,
    pub connections_open: Family<ListenerLabel, Gauge>,
    /// When the writer last committed a batch (Unix seconds): alert when it stops moving
    /// while requests come in.
    pub last_commit: Gauge,
    // Set when `/metrics` is read, from the items, the outbox and the timers.
    pub ballots_open: Gauge,
    pub mail_waiting: Family<StateLabel, Gauge>,
    pub mail_oldest_waiting_seconds: Gauge,
    pub timers_pending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("councild");
        let m = Metrics {
            events: Family::default(),
            votes: Counter::default(),
            commit_bytes: Family::default(),
            votes_limited: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            flush_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            mail_sent: Counter::default(),
            mail_failed: Counter::default(),
            mail_retried: Counter::default(),
            timer_lag_seconds: Histogram::new(exponential_buckets(0.001, 4.0, 10)),
            requests: Family::default(),
            connections_refused: Family::default(),
            connections_open: Family::default(),
            last_commit: Gauge::default(),
            ballots_open: Gauge::default(),
            mail_waiting: Family::default(),
            mail_oldest_waiting_seconds: Gauge::default(),
            timers_pending: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_applied",
            "Events appended to item logs, by kind",
            m.events.clone(),
        );
        registry.register("votes", "Votes recorded (new or changed)", m.votes.clone());
        registry.register(
            "commit_bytes",
            "Bytes of the rows committed (keys and values, before the store's own overhead), by tree",
            m.commit_bytes.clone(),
        );
        registry.register(
            "votes_limited",
            "Votes refused because their link sent too many in a short time",
            m.votes_limited.clone(),
        );
        registry.register(
            "commit_batch_size",
            "Requests committed together by one flush",
            m.batch_size.clone(),
        );
        registry.register(
            "flush_seconds",
            "Time to commit and flush one batch",
            m.flush_seconds.clone(),
        );
        registry.register(
            "mail_sent",
            "Mails handed to the transport",
            m.mail_sent.clone(),
        );
        registry.register(
            "mail_failed",
            "Mails given up (permanent failure or too many tries)",
            m.mail_failed.clone(),
        );
        registry.register(
            "mail_retried",
            "Transient mail failures to be retried",
            m.mail_retried.clone(),
        );
        registry.register(
            "timer_lag_seconds",
            "How late timers fire after their due time",
            m.timer_lag_seconds.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at accept: the listener or the client was at its cap",
            m.connections_refused.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open, by listener",
            m.connections_open.clone(),
        );
        registry.register(
            "last_commit_timestamp_seconds",
            "When the writer last committed a batch to disk (Unix time)",
            m.last_commit.clone(),
        );
        registry.register("ballots_open", "Ballots open now", m.ballots_open.clone());
        registry.register(
            "mail_waiting",
            "Mail not yet delivered, by state: pending, retrying, failed (given up)",
            m.mail_waiting.clone(),
        );
        registry.register(
            "mail_oldest_waiting_seconds",
            "Age of the oldest mail still to be sent (pending or retrying); 0 when none",
            m.mail_oldest_waiting_seconds.clone(),
        );
        registry.register(
            "timers_pending",
            "Timers waiting to fire (deadlines, reminders, scheduled starts)",
            m.timers_pending.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One warning or error, as shown on `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedError {
    pub at: chrono::DateTime<chrono::Utc>,
    pub level: String,
    pub message: String,
    pub item: Option<String>,
}

/// How many recent warnings and errors are kept.
const RECENT: usize = 20;

static ERRORS: LazyLock<Mutex<VecDeque<LoggedError>>> =
    LazyLock::new(|| Mutex::new(VecDeque::with_capacity(RECENT)));

/// The last warnings and errors, newest last.
pub fn recent_errors() -> Vec<LoggedError> {
    ERRORS
        .lock()
        .map(|e| e.iter().cloned().collect())
        .unwrap_or_default()
}

/// A tracing layer that keeps the recent warnings and errors.
pub struct RecentErrors;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RecentErrors {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > tracing::Level::WARN {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let entry = LoggedError {
            at: chrono::Utc::now(),
            level: level.to_string(),
            message: fields.text,
            item: fields.item,
        };
        if let Ok(mut errors) = ERRORS.lock() {
            if errors.len() == RECENT {
                errors.pop_front();
            }
            errors.push_back(entry);
        }
    }
}

#[derive(Default)]
struct Fields {
    text: String,
    item: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.text.insert_str(0, &format!("{value:?}")),
            "item" => self.item = Some(format!("{value:?}").trim_matches('"').to_string()),
            name => self.text.push_str(&format!(" {name}={value:?}")),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.text.insert_str(0, value),
            "item" => self.item = Some(value.to_string()),
            name => self.text.push_str(&format!(" {name}={value}")),
        }
    }
}
