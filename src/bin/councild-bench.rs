//! `councild-bench`: a load test of the real daemon's ballot path, with ceilings.
//!
//! It builds a throw-away council folder (a generated roster of M members, one ballot
//! workflow that closes when all have voted, the repository's templates, and a secret key
//! it writes itself so that it can sign ballot links), runs `councild serve` in it, opens K
//! ballots and casts K × M × votes-per-member votes over HTTP with C concurrent clients.
//! It then measures, with the same clients and the same number of requests, what a bare
//! HTTP handler and a plain sled store can do on this machine, and prints councild's
//! throughput as a ratio of each.
//!
//! Progress goes to stderr; the report (or `--json`) to stdout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use clap::Parser;
use councild::token::{BallotRef, Key};
use rand::Rng as _;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// Clock ticks per second of `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;
/// Bytes of the value each vote writes in the plain-store ceilings (about an event record).
const SLED_VALUE: usize = 512;
/// Most writes one flush covers in the group-commit ceiling (as councild's writer).
const SLED_MAX_BATCH: usize = 512;
/// How long to wait for the outbox to send the ballot mails or the receipts.
const MAIL_WAIT: Duration = Duration::from_secs(600);

#[derive(Parser, Debug)]
#[command(
    name = "councild-bench",
    about = "Load test of councild's ballot path, with bare-HTTP and plain-sled ceilings"
)]
struct Args {
    /// Ballots (items) open at the same time.
    #[arg(long, default_value_t = 4)]
    ballots: usize,
    /// Members of the generated council (each votes in every ballot).
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Concurrent HTTP clients (tasks sharing one connection pool).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Votes per member and ballot; the extra ones change the member's vote.
    #[arg(long, default_value_t = 1)]
    votes_per_member: usize,
    /// The councild binary (default: `councild` next to this binary).
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Start voting at once instead of waiting for the ballot mails to be sent.
    #[arg(long)]
    no_mail_wait: bool,
    /// Print every figure as JSON instead of the text report.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // On SIGINT or SIGTERM the run is dropped: the daemon is killed and the folder removed.
    let result = tokio::select! {
        r = run(args) => r,
        s = interrupted() => s.and_then(|()| Err(anyhow::anyhow!("interrupted"))),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn interrupted() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("listening for SIGINT"),
        _ = term.recv() => Ok(()),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.ballots == 0 || args.members == 0 || args.clients == 0 || args.votes_per_member == 0 {
        bail!("--ballots, --members, --clients and --votes-per-member must be at least 1");
    }
    if args.members == 1 && args.votes_per_member > 1 {
        bail!("with one member the first vote closes the ballot: --votes-per-member must be 1");
    }
    let daemon_bin = match &args.daemon {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .parent()
            .context("this binary has no folder")?
            .join("councild"),
    };
    if !daemon_bin.is_file() {
        bail!(
            "no councild binary at {} (build it with `cargo build --release --bins`, or give --daemon)",
            daemon_bin.display()
        );
    }

    let load_before = loadavg();
    let folder = TempFolder::new()?;
    let key_bytes: [u8; 32] = rand::random();
    let key = Key::from_bytes(key_bytes);
    write_council(folder.path(), args.members, &key_bytes)?;
    eprintln!(
        "council folder {} ({} members)",
        folder.path().display(),
        args.members
    );

    // The daemon.
    let admin_token = hex::encode(rand::random::<[u8; 16]>());
    let mut daemon = Daemon::start(&daemon_bin, folder.path(), &admin_token)?;
    let admin = Admin::new(&daemon.admin, &admin_token)?;
    admin.wait_healthy(&mut daemon).await?;
    eprintln!(
        "councild pid {} ready: public {} admin {}",
        daemon.pid(),
        daemon.public,
        daemon.admin
    );

    // The ballots.
    let opened = Instant::now();
    let mut items = Vec::with_capacity(args.ballots);
    for _ in 0..args.ballots {
        items.push(admin.start_item().await?);
    }
    for id in &items {
        admin.wait_electorate(id, args.members).await?;
    }
    let open_s = opened.elapsed().as_secs_f64();
    eprintln!(
        "{} ballots open ({}) with {} voters each in {open_s:.2} s",
        items.len(),
        items.join(", "),
        args.members
    );
    let ballot_mails = (args.ballots * args.members) as f64;
    let fan_out_s = if args.no_mail_wait {
        None
    } else {
        let waited = admin.wait_mail(ballot_mails).await?;
        match waited {
            Some(s) => eprintln!("ballot mails sent ({ballot_mails}) in {s:.2} s"),
            None => eprintln!("ballot mails not all sent after {MAIL_WAIT:?}; voting anyway"),
        }
        waited
    };

    // The votes: every vote but the closing one of each ballot, then the closing ones.
    let (bulk, closing) = plan(&key, &items, args.members, args.votes_per_member);
    let total_votes = bulk.len() + closing.len();
    eprintln!(
        "casting {total_votes} votes with {} clients ({} per member and ballot)",
        args.clients, args.votes_per_member
    );
    let before = admin.metrics().await?;
    let cpu_before = proc_cpu(daemon.pid())?;
    let io_before = proc_io(daemon.pid())?;
    let self_cpu_before = proc_cpu_self()?;
    let client = http_client(args.clients)?;
    let started = Instant::now();
    let mut votes = drive(&client, &daemon.public, Arc::new(bulk), args.clients).await?;
    let closing_run = drive(&client, &daemon.public, Arc::new(closing), args.clients).await?;
    votes.merge(closing_run);
    votes.wall = started.elapsed();
    let last_ack = Instant::now();
    admin.wait_ended(items.len()).await?;
    let verdict_s = started.elapsed().as_secs_f64();
    let verdict_after_last_ms = last_ack.elapsed().as_secs_f64() * 1e3;
    let cpu_votes = proc_cpu(daemon.pid())? - cpu_before;
    let io_votes = proc_io(daemon.pid())?.since(&io_before);
    let client_cpu = proc_cpu_self()? - self_cpu_before;
    let after = admin.metrics().await?;
    eprintln!(
        "all {} items ended {verdict_s:.2} s after the first vote",
        items.len()
    );

    // The receipts the votes caused, then the daemon's totals.
    let receipts_target = ballot_mails + votes.ok as f64;
    let drained = Instant::now();
    let receipts_s = admin
        .wait_mail(receipts_target)
        .await?
        .map(|_| drained.elapsed().as_secs_f64());
    let cpu_drained = proc_cpu(daemon.pid())? - cpu_before;
    let cpu_total = proc_cpu(daemon.pid())?;
    let rss_mb = proc_hwm_kb(daemon.pid())? as f64 / 1024.0;
    let final_metrics = admin.metrics().await?;
    let store_mb = dir_size(&folder.path().join("data/store")) as f64 / 1e6;
    daemon.stop().await?;
    eprintln!("councild stopped");
    let anatomy = Anatomy::of(&folder.path().join("data/store"), &items[0])?;

    let delta = |name: &str| {
        after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
    };
    let batches = delta("councild_commit_batch_size_count");
    let batch_mean = ratio(delta("councild_commit_batch_size_sum"), batches);
    let flush_mean_ms = ratio(delta("councild_flush_seconds_sum"), batches) * 1e3;
    let recorded = delta("councild_votes_total");
    let councild_rate = votes.ok as f64 / votes.wall.as_secs_f64();

    // Ceilings, with the daemon stopped.
    eprintln!("ceiling: bare HTTP handler, {total_votes} requests");
    let (bare_rt, bare_addr) = start_bare_server()?;
    let bare_work = Arc::new(plan_all(&key, &items, args.members, args.votes_per_member));
    let bare_client = http_client(args.clients)?;
    let bare = drive(
        &bare_client,
        &format!("http://{bare_addr}"),
        bare_work,
        args.clients,
    )
    .await;
    bare_rt.shutdown_background();
    let mut bare = bare?;
    let bare_rate = bare.ok as f64 / bare.wall.as_secs_f64();

    eprintln!("ceiling: sled insert + flush per vote, {total_votes} writes");
    let unbatched = sled_unbatched(
        &folder.path().join("sled-unbatched"),
        total_votes,
        args.clients,
    )
    .await?;
    eprintln!("ceiling: sled single writer with group commit, {total_votes} writes");
    let grouped =
        sled_group_commit(&folder.path().join("sled-group"), total_votes, args.clients).await?;
    drop(folder);
    let load_after = loadavg();

    let lat = Latency::of(&mut votes.latencies_ns);
    let bare_lat = Latency::of(&mut bare.latencies_ns);
    let report = json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "loadavg_before": load_before, "loadavg_after": load_after,
        },
        "settings": {
            "ballots": args.ballots, "members": args.members, "clients": args.clients,
            "votes_per_member": args.votes_per_member, "requests": total_votes,
            "waited_for_ballot_mail": !args.no_mail_wait,
        },
        "councild": {
            "ballots_open_s": open_s,
            "ballot_mail_fan_out_s": fan_out_s,
            "votes_acknowledged": votes.ok,
            "votes_recorded_by_daemon": recorded,
            "errors": votes.errors(),
            "errors_by_status": votes.statuses,
            "transport_errors": votes.transport_errors,
            "first_error": votes.first_error,
            "wall_s": votes.wall.as_secs_f64(),
            "votes_per_s": councild_rate,
            "latency_ms": lat.json(),
            "verdict_after_first_vote_s": verdict_s,
            "verdict_seen_after_last_ack_ms": verdict_after_last_ms,
            "commit_batches": batches,
            "commit_batch_size_mean": batch_mean,
            "flush_ms_mean": flush_mean_ms,
            "cpu_during_votes_s": cpu_votes,
            "cpu_per_vote_us": ratio(cpu_votes, votes.ok as f64) * 1e6,
            "receipts_drained_after_verdict_s": receipts_s,
            "cpu_votes_and_receipts_s": cpu_drained,
            "cpu_total_s": cpu_total,
            "rss_peak_mb": rss_mb,
            "store_mb": store_mb,
            "disk_write_mb_during_votes": io_votes.write_bytes as f64 / 1e6,
            "syscall_write_mb_during_votes": io_votes.wchar as f64 / 1e6,
            "item_record": anatomy.json(),
            "mail_sent_total": final_metrics.get("councild_mail_sent_total"),
            "bench_client_cpu_during_votes_s": client_cpu,
        },
        "ceilings": {
            "bare_http": {
                "requests_ok": bare.ok, "errors": bare.errors(),
                "per_s": bare_rate, "latency_ms": bare_lat.json(),
                "councild_ratio": ratio(councild_rate, bare_rate),
            },
            "sled_insert_flush": {
                "writes": unbatched.writes, "per_s": unbatched.rate(),
                "latency_ms": unbatched.latency.json(),
                "councild_ratio": ratio(councild_rate, unbatched.rate()),
            },
            "sled_group_commit": {
                "writes": grouped.writes, "per_s": grouped.rate(),
                "latency_ms": grouped.latency.json(),
                "batch_size_mean": ratio(grouped.writes as f64, grouped.flushes as f64),
                "councild_ratio": ratio(councild_rate, grouped.rate()),
            },
            "sled_value_bytes": SLED_VALUE,
        },
    });
    let summary = format!(
        "summary: councild {:.0} votes/s (p99 {:.1} ms) = {} × bare HTTP ({:.0}/s), {} × sled insert+flush ({:.0}/s), {} × sled group commit ({:.0}/s); batch {:.1}; cpu {:.1} s; rss {:.0} MB",
        councild_rate,
        lat.p99,
        times(ratio(councild_rate, bare_rate)),
        bare_rate,
        times(ratio(councild_rate, unbatched.rate())),
        unbatched.rate(),
        times(ratio(councild_rate, grouped.rate())),
        grouped.rate(),
        batch_mean,
        cpu_votes,
        rss_mb,
    );
    if args.json {
        let mut report = report;
        report["summary"] = json!(summary);
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("printing the report")?
        );
        return Ok(());
    }
    println!(
        "councild-bench: {} ballots × {} members × {} votes each = {total_votes} votes, {} clients, {} CPUs",
        args.ballots, args.members, args.votes_per_member, args.clients, report["machine"]["cpus"]
    );
    println!("  load average before {load_before}, after {load_after} (1, 5, 15 min)");
    println!(
        "  ballots open in {open_s:.2} s; ballot mail fan-out {}",
        fan_out_s.map_or("not waited for".to_string(), |s| format!("{s:.2} s"))
    );
    println!(
        "  votes/s      {councild_rate:.0}  ({} acknowledged in {:.2} s; daemon counted {recorded})",
        votes.ok,
        votes.wall.as_secs_f64()
    );
    println!(
        "  latency      p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  (mean {:.2} ms)",
        lat.p50, lat.p99, lat.p999, lat.max, lat.mean
    );
    println!(
        "  errors       {} (by status {:?}, transport {}){}",
        votes.errors(),
        votes.statuses,
        votes.transport_errors,
        votes
            .first_error
            .as_ref()
            .map_or(String::new(), |e| format!("; first: {e}"))
    );
    println!(
        "  verdict      all items ended {verdict_s:.2} s after the first vote ({verdict_after_last_ms:.0} ms after the last acknowledgement)"
    );
    println!(
        "  group commit {batches:.0} batches, mean batch {batch_mean:.1} requests, mean commit+flush {flush_mean_ms:.2} ms"
    );
    println!(
        "  daemon CPU   {cpu_votes:.2} s during the votes ({:.0} µs/vote); {cpu_drained:.2} s until the receipts were sent ({}); {cpu_total:.2} s in all",
        ratio(cpu_votes, votes.ok as f64) * 1e6,
        receipts_s.map_or("not drained".to_string(), |s| format!(
            "{s:.2} s after the verdict"
        ))
    );
    println!(
        "  daemon RSS   peak {rss_mb:.0} MB; store on disk {store_mb:.0} MB; bench client CPU during the votes {client_cpu:.2} s"
    );
    println!(
        "  writes       {:.0} MB to disk during the votes ({:.1} KB/vote; {:.0} MB through write calls)",
        io_votes.write_bytes as f64 / 1e6,
        ratio(io_votes.write_bytes as f64, votes.ok as f64) / 1e3,
        io_votes.wchar as f64 / 1e6
    );
    println!(
        "  item record  {} stored as {:.0} KB of JSON ({} events): decode {:.2} ms, clone {:.2} ms, encode {:.2} ms",
        items[0],
        anatomy.bytes as f64 / 1e3,
        anatomy.events,
        anatomy.decode_ms,
        anatomy.clone_ms,
        anatomy.encode_ms
    );
    println!("ceilings (same clients, same number of requests, daemon stopped):");
    println!(
        "  bare HTTP handler       {bare_rate:.0}/s  p50 {:.2} ms  p99 {:.2} ms  errors {}  → councild = {} ×",
        bare_lat.p50,
        bare_lat.p99,
        bare.errors(),
        times(ratio(councild_rate, bare_rate))
    );
    println!(
        "  sled insert+flush/vote  {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  → councild = {} ×",
        unbatched.rate(),
        unbatched.latency.p50,
        unbatched.latency.p99,
        times(ratio(councild_rate, unbatched.rate()))
    );
    println!(
        "  sled group commit       {:.0}/s  p50 {:.2} ms  p99 {:.2} ms  mean batch {:.1}  → councild = {} ×",
        grouped.rate(),
        grouped.latency.p50,
        grouped.latency.p99,
        ratio(grouped.writes as f64, grouped.flushes as f64),
        times(ratio(councild_rate, grouped.rate()))
    );
    println!("{summary}");
    Ok(())
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every figure.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A ratio with two significant digits (at least two decimals): 0.62, 0.012, 0.0014.
fn times(r: f64) -> String {
    let decimals = if r > 0.0 && r < 0.1 {
        (-r.log10().floor()) as usize + 1
    } else {
        2
    };
    format!("{r:.decimals$}")
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

// ---------------------------------------------------------------------------------------
// The council folder

/// A folder under the system's temporary folder, removed when dropped.
struct TempFolder(PathBuf);

impl TempFolder {
    fn new() -> anyhow::Result<TempFolder> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "councild-bench-{}-{nanos}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempFolder(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

const WORKFLOW: &str = r#"# Generated by councild-bench: one ballot that closes when every member has voted.
workflow: bench
title: Load test ballot
start: vote
stages:
  vote:
    ballot:
      question: "Adopt the load test proposal?"
      choices: [yes, no]
      closes_after: 1h
      pass: simple_majority
      close: when_all_voted
    outcomes: { adopted: adopted, rejected: rejected, no_quorum: rejected }
  adopted:
    end: adopted
  rejected:
    end: rejected
"#;

fn member_id(i: usize) -> String {
    format!("M{:05}", i + 1)
}

/// Writes the roster, the workflow, the templates and the secret key.
fn write_council(root: &Path, members: usize, key: &[u8; 32]) -> anyhow::Result<()> {
    let mut rng = rand::thread_rng();
    let mut roster = String::from(
        "# Generated by councild-bench.\ncouncil: Bench Council\nsecretariat: { name: Bench Secretariat, email: secretariat@example.org }\nmembers:\n",
    );
    for i in 0..members {
        let id = member_id(i);
        let population: u64 = rng.gen_range(10_000..300_000_000);
        roster.push_str(&format!(
            "  - id: {id}\n    name: Member {id}\n    voting_right: true\n    attributes: {{ population: {population} }}\n    delegates:\n      - {{ name: Delegate {id}, email: {lower}@example.org, language: en, head: true }}\n",
            lower = id.to_lowercase()
        ));
    }
    let write = |rel: &str, text: &str| -> anyhow::Result<()> {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("config/council.yaml", &roster)?;
    write("workflows/bench.yaml", WORKFLOW)?;
    write("data/secret.key", &format!("{}\n", hex::encode(key)))?;
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    copy_dir(&templates, &root.join("templates"))
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if entry
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?
            .is_dir()
        {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)
                .with_context(|| format!("copying {} to {}", path.display(), target.display()))?;
        }
    }
    Ok(())
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

// ---------------------------------------------------------------------------------------
// The daemon

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("finding a free port")?.port())
}

/// `councild serve` as a child process; killed if dropped while still running.
struct Daemon {
    child: Child,
    public: String,
    admin: String,
    log: PathBuf,
}

impl Daemon {
    fn start(bin: &Path, root: &Path, admin_token: &str) -> anyhow::Result<Daemon> {
        let (public, admin) = (free_port()?, free_port()?);
        let log = root.join("daemon.log");
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(bin);
        // Settings of the caller's environment (an SMTP server, say) must not leak in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("COUNCILD_") {
                command.env_remove(&name);
            }
        }
        let child = command
            .arg("serve")
            .current_dir(root)
            .env("COUNCILD_PUBLIC_LISTEN", format!("127.0.0.1:{public}"))
            .env("COUNCILD_PUBLIC_URL", format!("http://127.0.0.1:{public}"))
            .env("COUNCILD_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
            .env("COUNCILD_ADMIN_TOKEN", admin_token)
            .env("RUST_LOG", "councild=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {} serve", bin.display()))?;
        Ok(Daemon {
            child,
            public: format!("http://127.0.0.1:{public}"),
            admin: format!("http://127.0.0.1:{admin}"),
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails if the daemon has exited.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("checking on councild")? {
            bail!("councild exited ({status}); log:\n{}", self.log_tail());
        }
        Ok(())
    }

    /// SIGTERM, then waits up to 30 s for a clean exit (SIGKILL after that).
    async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("sending SIGTERM to councild")?;
        if !sent.success() {
            bail!("kill -TERM {pid} failed");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for councild")? {
                if !status.success() {
                    eprintln!("councild exited with {status}; log:\n{}", self.log_tail());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                eprintln!("councild did not stop within 30 s of SIGTERM; killing it");
                self.child.kill().context("killing councild")?;
                self.child.wait().context("waiting for councild")?;
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// utime + stime of a process, in seconds.
fn proc_cpu(pid: u32) -> anyhow::Result<f64> {
    cpu_from_stat(&format!("/proc/{pid}/stat"))
}

fn proc_cpu_self() -> anyhow::Result<f64> {
    cpu_from_stat("/proc/self/stat")
}

fn cpu_from_stat(path: &str) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces; the fields after it start with the state.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .with_context(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime), counting from 1; `rest` starts at field 3.
    let tick = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i - 3)
            .with_context(|| format!("{path}: no field {i}"))?
            .parse::<f64>()
            .with_context(|| format!("{path}: field {i}"))
    };
    Ok((tick(14)? + tick(15)?) / CLOCK_TICKS)
}

/// Bytes a process wrote: through write calls (`wchar`) and to the block layer (`write_bytes`).
struct Io {
    wchar: u64,
    write_bytes: u64,
}

impl Io {
    fn since(&self, before: &Io) -> Io {
        Io {
            wchar: self.wchar.saturating_sub(before.wchar),
            write_bytes: self.write_bytes.saturating_sub(before.write_bytes),
        }
    }
}

fn proc_io(pid: u32) -> anyhow::Result<Io> {
    let path = format!("/proc/{pid}/io");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("{path}: no {name}"))?
            .trim()
            .parse()
            .with_context(|| format!("{path}: {name}"))
    };
    Ok(Io {
        wchar: field("wchar:")?,
        write_bytes: field("write_bytes:")?,
    })
}

/// What one item costs to handle, read back from the stopped daemon's store: every ballot
/// POST decodes the whole item, and the writer clones and encodes each item it changes
/// once per batch.
struct Anatomy {
    bytes: usize,
    events: usize,
    decode_ms: f64,
    clone_ms: f64,
    encode_ms: f64,
}

impl Anatomy {
    fn of(store: &Path, id: &str) -> anyhow::Result<Anatomy> {
        use councild::engine::Item;
        use councild::store;
        let db = store::Store::open(store)
            .with_context(|| format!("opening the daemon's store {}", store.display()))?;
        let item = db
            .item(id)
            .with_context(|| format!("reading {id}"))?
            .with_context(|| format!("no {id} in the store"))?;
        let events = db.events(id).count();
        let bytes = store::encode(&item);
        // Mean time of `f`, repeated for at least 200 ms (and at least 3 times).
        fn time(mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
            let started = Instant::now();
            let mut n = 0u32;
            while n < 3 || started.elapsed() < Duration::from_millis(200) {
                f()?;
                n += 1;
            }
            Ok(started.elapsed().as_secs_f64() * 1e3 / f64::from(n))
        }
        let decode_ms = time(|| {
            let item: Item =
                store::decode(id.as_bytes(), &bytes).with_context(|| format!("decoding {id}"))?;
            std::hint::black_box(item);
            Ok(())
        })?;
        let clone_ms = time(|| {
            std::hint::black_box(item.clone());
            Ok(())
        })?;
        let encode_ms = time(|| {
            std::hint::black_box(store::encode(&item));
            Ok(())
        })?;
        Ok(Anatomy {
            bytes: bytes.len(),
            events,
            decode_ms,
            clone_ms,
            encode_ms,
        })
    }

    fn json(&self) -> Value {
        json!({
            "bytes": self.bytes, "events": self.events, "decode_ms": self.decode_ms,
            "clone_ms": self.clone_ms, "encode_ms": self.encode_ms,
        })
    }
}

/// Peak resident set size (VmHWM), in kB.
fn proc_hwm_kb(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .with_context(|| format!("{path}: no VmHWM"))?;
    line.split_whitespace()
        .nth(1)
        .with_context(|| format!("{path}: {line}"))?
        .parse()
        .with_context(|| format!("{path}: {line}"))
}

// ---------------------------------------------------------------------------------------
// The admin API

struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    fn new(base: &str, token: &str) -> anyhow::Result<Admin> {
        Ok(Admin {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .context("building the admin client")?,
            base: base.to_string(),
            token: token.to_string(),
        })
    }

    async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| format!("GET {path}"))?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("GET {path}: not JSON"))
    }

    async fn wait_healthy(&self, daemon: &mut Daemon) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = self
                .http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && resp.status().is_success()
            {
                return Ok(());
            }
            daemon.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "councild did not answer /healthz; log:\n{}",
                    daemon.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn start_item(&self) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{}/api/items", self.base))
            .bearer_auth(&self.token)
            .json(&json!({"workflow": "bench", "inputs": {}}))
            .send()
            .await
            .context("POST /api/items")?;
        let status = resp.status();
        let text = resp.text().await.context("POST /api/items")?;
        if status != reqwest::StatusCode::CREATED {
            bail!("POST /api/items: {status}: {text}");
        }
        let body: Value = serde_json::from_str(&text).context("POST /api/items: not JSON")?;
        body["id"]
            .as_str()
            .map(String::from)
            .with_context(|| format!("POST /api/items: no id in {text}"))
    }

    async fn wait_electorate(&self, id: &str, members: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let item = self.get_json(&format!("/api/items/{id}")).await?;
            if item["ballots"][0]["eligible"].as_u64() == Some(members as u64) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{id}: the ballot has no electorate of {members} after 2 minutes: {item}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_ended(&self, count: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let list = self.get_json("/api/items?status=ended&limit=0").await?;
            if list["total"].as_u64() == Some(count as u64) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {count} items ended after 2 minutes",
                    list["total"]
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the outbox has handled `target` mails (sent or failed); the seconds
    /// waited, or None after [`MAIL_WAIT`].
    async fn wait_mail(&self, target: f64) -> anyhow::Result<Option<f64>> {
        let started = Instant::now();
        loop {
            let m = self.metrics().await?;
            let handled = m.get("councild_mail_sent_total").copied().unwrap_or(0.0)
                + m.get("councild_mail_failed_total").copied().unwrap_or(0.0);
            if handled >= target {
                return Ok(Some(started.elapsed().as_secs_f64()));
            }
            if started.elapsed() > MAIL_WAIT {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The unlabelled series of `/metrics`.
    async fn metrics(&self) -> anyhow::Result<BTreeMap<String, f64>> {
        let resp = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("GET /metrics")?;
        let status = resp.status();
        let text = resp.text().await.context("GET /metrics")?;
        if !status.is_success() {
            bail!("GET /metrics: {status}: {text}");
        }
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains('{'))
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                let name = parts.next()?;
                let value = parts.next()?.parse().ok()?;
                Some((name.to_string(), value))
            })
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// The votes

/// One request: a ballot path with its signed token, and the form body.
struct Vote {
    path: String,
    body: &'static str,
}

fn vote(key: &Key, item: &str, member: usize, choice: &'static str) -> Vote {
    let token = key.sign(&BallotRef {
        item: item.to_string(),
        ballot: 0,
        member: member_id(member),
        delegate: 0,
    });
    Vote {
        path: format!("/ballot/{token}"),
        body: if choice == "yes" {
            "choice=yes"
        } else {
            "choice=no"
        },
    }
}

/// The votes of every ballot: `(bulk, closing)`. A `when_all_voted` ballot closes as soon
/// as every member has voted once, so each member's changes must come before the last
/// member's first vote: the last member of each ballot is kept back and casts one vote, the
/// closing one, after every other vote is acknowledged; the other members cast all their
/// votes (round by round, ballots interleaved), and the last member's share of changes is
/// cast by the others, so that each ballot still gets members × votes-per-member votes.
fn plan(key: &Key, items: &[String], members: usize, per_member: usize) -> (Vec<Vote>, Vec<Vote>) {
    let others = members - 1;
    let mut bulk = Vec::with_capacity(items.len() * members * per_member);
    for round in 0..per_member {
        for m in 0..others {
            for item in items {
                // Two in three vote yes; a later round changes the vote.
                let choice = if (m + round) % 3 == 2 { "no" } else { "yes" };
                bulk.push(vote(key, item, m, choice));
            }
        }
    }
    for extra in 0..per_member - 1 {
        let m = extra % others.max(1);
        for item in items {
            bulk.push(vote(
                key,
                item,
                m,
                if extra % 2 == 0 { "no" } else { "yes" },
            ));
        }
    }
    let closing = items
        .iter()
        .map(|item| vote(key, item, members - 1, "yes"))
        .collect();
    (bulk, closing)
}

fn plan_all(key: &Key, items: &[String], members: usize, per_member: usize) -> Vec<Vote> {
    let (mut bulk, closing) = plan(key, items, members, per_member);
    bulk.extend(closing);
    bulk
}

fn http_client(clients: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .context("building the HTTP client")
}

/// What one run of requests gave.
#[derive(Default)]
struct Run {
    latencies_ns: Vec<u64>,
    ok: u64,
    /// Answers other than 2xx, by status.
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
    first_error: Option<String>,
    wall: Duration,
}

impl Run {
    fn errors(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }

    fn merge(&mut self, other: Run) {
        self.latencies_ns.extend(other.latencies_ns);
        self.ok += other.ok;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.wall += other.wall;
    }
}

/// Sends every request of `work` with `clients` concurrent tasks sharing `client`.
async fn drive(
    client: &reqwest::Client,
    base: &str,
    work: Arc<Vec<Vote>>,
    clients: usize,
) -> anyhow::Result<Run> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients.min(work.len().max(1)) {
        let (client, base, work, next) =
            (client.clone(), base.to_string(), work.clone(), next.clone());
        tasks.spawn(async move {
            let mut run = Run::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(v) = work.get(i) else { break };
                let sent = Instant::now();
                let result = client
                    .post(format!("{base}{}", v.path))
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(v.body)
                    .send()
                    .await;
                let outcome = match result {
                    Ok(resp) => {
                        let status = resp.status();
                        match resp.bytes().await {
                            Ok(body) => Ok((status, body)),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                };
                run.latencies_ns.push(sent.elapsed().as_nanos() as u64);
                match outcome {
                    Ok((status, _)) if status.is_success() => run.ok += 1,
                    Ok((status, body)) => {
                        *run.statuses.entry(status.as_u16()).or_default() += 1;
                        if run.first_error.is_none() {
                            let text = String::from_utf8_lossy(&body);
                            run.first_error = Some(format!(
                                "{status}: {}",
                                text.chars()
                                    .rev()
                                    .take(300)
                                    .collect::<Vec<_>>()
                                    .into_iter()
                                    .rev()
                                    .collect::<String>()
                            ));
                        }
                    }
                    Err(e) => {
                        run.transport_errors += 1;
                        if run.first_error.is_none() {
                            run.first_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            run
        });
    }
    let mut total = Run::default();
    while let Some(run) = tasks.join_next().await {
        total.merge(run.context("a client task failed")?);
    }
    total.wall = started.elapsed();
    Ok(total)
}

/// Percentiles in milliseconds.
struct Latency {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

impl Latency {
    fn of(ns: &mut [u64]) -> Latency {
        ns.sort_unstable();
        let at = |q: f64| -> f64 {
            if ns.is_empty() {
                return 0.0;
            }
            let rank = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len());
            ns[rank - 1] as f64 / 1e6
        };
        let mean = if ns.is_empty() {
            0.0
        } else {
            ns.iter().map(|&n| n as f64).sum::<f64>() / ns.len() as f64 / 1e6
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
            mean,
        }
    }

    fn json(&self) -> Value {
        json!({ "p50": self.p50, "p99": self.p99, "p99_9": self.p999, "max": self.max, "mean": self.mean })
    }
}

// ---------------------------------------------------------------------------------------
// Ceilings

/// An axum server whose ballot handler only answers 200, on its own runtime.
fn start_bare_server() -> anyhow::Result<(tokio::runtime::Runtime, SocketAddr)> {
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

struct Store {
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
    sled::Config::new()
        .path(path)
        .open()
        .with_context(|| format!("opening sled in {}", path.display()))
}

/// C tasks, each inserting one value and flushing it before its next vote.
///
/// The flush is sled's blocking `flush` on tokio's blocking pool: C concurrent
/// `flush_async` calls deadlock sled 0.34.7 once they occupy every thread of its IO pool
/// (each waits for a log write that is queued behind them on that same pool).
async fn sled_unbatched(path: &Path, writes: usize, clients: usize) -> anyhow::Result<Store> {
    let db = open_sled(path)?;
    let next = Arc::new(AtomicUsize::new(0));
    let value: Arc<[u8]> = vec![b'v'; SLED_VALUE].into();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (db, next, value) = (db.clone(), next.clone(), value.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= writes {
                    break;
                }
                let sent = Instant::now();
                let (db, value) = (db.clone(), value.clone());
                tokio::task::spawn_blocking(move || {
                    db.insert((i as u64).to_be_bytes(), &*value)
                        .context("sled insert")?;
                    db.flush().context("sled flush")
                })
                .await
                .context("a sled write failed")??;
                lat.push(sent.elapsed().as_nanos() as u64);
            }
            anyhow::Ok(lat)
        });
    }
    let mut lat = Vec::with_capacity(writes);
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.context("a sled task failed")??);
    }
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
async fn sled_group_commit(path: &Path, writes: usize, clients: usize) -> anyhow::Result<Store> {
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
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (tx, next) = (tx.clone(), next.clone());
        tasks.spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= writes {
                    break;
                }
                let sent = Instant::now();
                let (reply, done) = oneshot::channel();
                tx.send((i as u64, reply))
                    .await
                    .map_err(|_| anyhow::anyhow!("the sled writer stopped"))?;
                done.await.context("the sled writer stopped")?;
                lat.push(sent.elapsed().as_nanos() as u64);
            }
            anyhow::Ok(lat)
        });
    }
    drop(tx);
    let mut lat = Vec::with_capacity(writes);
    while let Some(r) = tasks.join_next().await {
        lat.extend(r.context("a sled task failed")??);
    }
    let wall = started.elapsed();
    let flushes = writer.await.context("the sled writer failed")??;
    Ok(Store {
        writes: lat.len(),
        flushes,
        wall,
        latency: Latency::of(&mut lat),
    })
}
