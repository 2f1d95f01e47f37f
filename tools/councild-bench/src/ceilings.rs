//! Ceilings: what a bare HTTP handler and a plain sled store do on this machine with the
//! same clients and the same number of requests, with the daemon stopped.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::load::{Latency, Run, versus};
use crate::ratio;

/// Bytes of the value each vote writes in the plain-store ceilings (about an event record).
const SLED_VALUE: usize = 512;
/// Most writes one flush covers in the group-commit ceiling (as councild's writer).
const SLED_MAX_BATCH: usize = 512;

/// The ceilings measured: the bare handler always; sled only in closed loop.
pub struct Ceilings {
    bare: Run,
    bare_latency: Latency,
    sled: Option<(Store, Store)>,
}

impl Ceilings {
    pub fn bare_only(mut bare: Run) -> Ceilings {
        let bare_latency = Latency::of(&mut bare.latencies_ns);
        Ceilings {
            bare,
            bare_latency,
            sled: None,
        }
    }

    pub fn all(bare: Run, unbatched: Store, grouped: Store) -> Ceilings {
        Ceilings {
            sled: Some((unbatched, grouped)),
            ..Ceilings::bare_only(bare)
        }
    }

    fn bare_rate(&self) -> f64 {
        self.bare.rate()
    }

    pub fn json(&self, councild_rate: f64) -> Value {
        let mut j = json!({
            "bare_http": {
                "requests_ok": self.bare.ok, "errors": self.bare.errors(),
                "per_s": self.bare_rate(), "latency_ms": self.bare_latency.json(),
                "councild_ratio": ratio(councild_rate, self.bare_rate()),
            },
            "sled_value_bytes": SLED_VALUE,
        });
        if let Some((unbatched, grouped)) = &self.sled {
            j["sled_insert_flush"] = json!({
                "writes": unbatched.writes, "per_s": unbatched.rate(),
                "latency_ms": unbatched.latency.json(),
                "councild_ratio": ratio(councild_rate, unbatched.rate()),
            });
            j["sled_group_commit"] = json!({
                "writes": grouped.writes, "per_s": grouped.rate(),
                "latency_ms": grouped.latency.json(),
                "batch_size_mean": ratio(grouped.writes as f64, grouped.flushes as f64),
                "councild_ratio": ratio(councild_rate, grouped.rate()),
            });
        }
        j
    }

    pub fn write_text(&self, out: &mut String, councild_rate: f64) {
        use std::fmt::Write as _;
        let bare_rate = self.bare_rate();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "ceilings (same clients, same number of requests, daemon stopped{}):",
            if self.sled.is_none() {
                "; bare handler at the same rate"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "  bare HTTP handler       {bare_rate:.0}/s  p50 {:.2} ms  p99 {:.2} ms  errors {}  → councild = {} ×",
            self.bare_latency.p50,
            self.bare_latency.p99,
            self.bare.errors(),
            versus(councild_rate, bare_rate)
        );
        if let Some((unbatched, grouped)) = &self.sled {
            let _ = writeln!(
                out,
                "  sled insert+flush/vote  {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  → councild = {} ×",
                unbatched.rate(),
                unbatched.latency.p50,
                unbatched.latency.p99,
                versus(councild_rate, unbatched.rate())
            );
            let _ = writeln!(
                out,
                "  sled group commit       {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  mean batch {:.1}  → councild = {} ×",
                grouped.rate(),
                grouped.latency.p50,
                grouped.latency.p99,
                ratio(grouped.writes as f64, grouped.flushes as f64),
                versus(councild_rate, grouped.rate())
            );
        }
    }

    /// `0.047 × bare HTTP (57515/s), …` for the summary line.
    pub fn ratios(&self, councild_rate: f64) -> String {
        let mut parts = vec![format!(
            "{} × bare HTTP ({:.0}/s)",
            versus(councild_rate, self.bare_rate()),
            self.bare_rate()
        )];
        if let Some((unbatched, grouped)) = &self.sled {
            parts.push(format!(
                "{} × sled insert+flush ({:.0}/s)",
                versus(councild_rate, unbatched.rate()),
                unbatched.rate()
            ));
            parts.push(format!(
                "{} × sled group commit ({:.0}/s)",
                versus(councild_rate, grouped.rate()),
                grouped.rate()
            ));
        }
        parts.join(", ")
    }
}

/// An axum server whose ballot handler only answers 200, on its own runtime.
pub fn start_bare_server() -> anyhow::Result<(tokio::runtime::Runtime, SocketAddr)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bare-http")
        .build()
        .context("starting the bare HTTP runtime")?;
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("binding the bare HTTP server")?;
    listener
        .set_nonblocking(true)
        .context("binding the bare HTTP server")?;
    let addr = listener
        .local_addr()
        .context("binding the bare HTTP server")?;
    let router = axum::Router::new().route(
        "/ballot/{token}",
        axum::routing::post(
            |UrlPath(_token): UrlPath<String>, _body: axum::body::Bytes| async {
                (StatusCode::OK, "<p>recorded</p>")
            },
        ),
    );
    runtime.spawn(async move {
        match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => {
                if let Err(e) = axum::serve(listener, router).await {
                    eprintln!("bare HTTP server: {e}");
                }
            }
            Err(e) => eprintln!("bare HTTP server: {e}"),
        }
    });
    Ok((runtime, addr))
}

pub struct Store {
    writes: usize,
    flushes: usize,
    wall: Duration,
    latency: Latency,
}

impl Store {
    fn rate(&self) -> f64 {
        ratio(self.writes as f64, self.wall.as_secs_f64())
    }
}

fn open_sled(path: &Path) -> anyhow::Result<sled::Db> {
    councild::store::open_db(path).with_context(|| format!("opening sled in {}", path.display()))
}

/// C tasks, each inserting one value and flushing it before its next vote.
///
/// The flush is sled's blocking `flush` on tokio's blocking pool: C concurrent
/// `flush_async` calls deadlock sled 0.34.7 once they occupy every thread of its IO pool
/// (each waits for a log write that is queued behind them on that same pool).
pub async fn sled_unbatched(path: &Path, writes: usize, clients: usize) -> anyhow::Result<Store> {
    let db = open_sled(path)?;
    let value: Arc<[u8]> = vec![b'v'; SLED_VALUE].into();
    let started = Instant::now();
    let mut lat = drive(writes, clients, move |i| {
        let (db, value) = (db.clone(), value.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                db.insert(i.to_be_bytes(), &*value).context("sled insert")?;
                db.flush().context("sled flush")
            })
            .await
            .context("a sled write failed")??;
            Ok(())
        }
    })
    .await?;
    let wall = started.elapsed();
    Ok(Store {
        writes: lat.len(),
        flushes: lat.len(),
        wall,
        latency: Latency::of(&mut lat),
    })
}

/// C tasks hand their writes to one writer that inserts every queued write (up to
/// [`SLED_MAX_BATCH`]), flushes once, and then answers them all: councild's scheme.
pub async fn sled_group_commit(
    path: &Path,
    writes: usize,
    clients: usize,
) -> anyhow::Result<Store> {
    let db = open_sled(path)?;
    let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<()>)>(8_192);
    let writer_db = db.clone();
    let writer = tokio::spawn(async move {
        let value = vec![b'v'; SLED_VALUE];
        let mut queue = Vec::with_capacity(SLED_MAX_BATCH);
        let mut flushes = 0usize;
        while rx.recv_many(&mut queue, SLED_MAX_BATCH).await > 0 {
            let mut batch = sled::Batch::default();
            for (i, _) in &queue {
                batch.insert(&i.to_be_bytes(), value.as_slice());
            }
            writer_db.apply_batch(batch).context("sled apply_batch")?;
            writer_db.flush_async().await.context("sled flush")?;
            flushes += 1;
            for (_, reply) in queue.drain(..) {
                let _ = reply.send(());
            }
        }
        anyhow::Ok(flushes)
    });
    let started = Instant::now();
    let mut lat = drive(writes, clients, move |i| {
        let tx = tx.clone();
        async move {
            let (reply, done) = oneshot::channel();
            tx.send((i, reply))
                .await
                .map_err(|_| anyhow::anyhow!("the sled writer stopped"))?;
            done.await.context("the sled writer stopped")
        }
    })
    .await?;
    let wall = started.elapsed();
    let flushes = writer.await.context("the sled writer failed")??;
    Ok(Store {
        writes: lat.len(),
        flushes,
        wall,
        latency: Latency::of(&mut lat),
    })
}

/// Runs operations 0..`count` from `clients` concurrent tasks, each taking the next index
/// until none is left; returns the latency of every operation, in nanoseconds.
async fn drive<F, Fut>(count: usize, clients: usize, op: F) -> anyhow::Result<Vec<u64>>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (next, op) = (next.clone(), op.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let sent = Instant::now();
                op(i as u64).await?;
                lat.push(sent.elapsed().as_nanos() as u64);
            }
            anyhow::Ok(lat)
        });
    }
    let mut lat = Vec::with_capacity(count);
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.context("a sled task failed")??);
    }
    Ok(lat)
}
