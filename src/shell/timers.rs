//! The timer task: turns due rows of the `timers` tree into events, in due order.
//!
//! It sleeps until the earliest row or until the writer says timers changed. Rows already
//! overdue at start (downtime, a clock jump) fire once each, oldest first. The writer
//! deletes a row in the same transaction as the event it causes, so a crash between the
//! two neither loses nor doubles a firing.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::Store;
use crate::writer::Handle;

/// Most due timers handed to the writer at once (they commit in batches of
/// `writer::MAX_BATCH`). Enough to keep the writer busy while the next lot is read; half
/// of its queue, so that votes still find room.
const MAX_DUE: usize = crate::writer::QUEUE / 2;
/// Longest sleep, so that a wall-clock jump is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub async fn run(
    store: Store,
    writer: Handle,
    wake: Arc<Notify>,
    clock: Clock,
    stop: CancellationToken,
) {
    loop {
        let moved = clock.moved();
        let now = clock.now();
        let due: Vec<_> = store
            .timers()
            .take_while(|k| k.due <= now)
            .take(MAX_DUE)
            .collect();
        if !due.is_empty() {
            let mut waits = Vec::with_capacity(due.len());
            for key in due {
                match writer.fire(key).await {
                    Ok(rx) => waits.push(rx),
                    Err(_) => return,
                }
            }
            for rx in waits {
                if rx.await.is_err() {
                    // The writer failed the batch; try again shortly.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            continue;
        }
        let sleep = match store.first_timer() {
            Ok(Some(k)) => (k.due - now).to_std().unwrap_or_default().min(MAX_SLEEP),
            _ => MAX_SLEEP,
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = wake.notified() => {}
            _ = moved => {}
            _ = stop.cancelled() => return,
        }
    }
}
