//! `councild-bench`: load tests of the real daemon, with ceilings, start-up and timer
//! scenarios, sweeps and their plots.
//!
//! The default mode builds a throw-away council folder (a generated roster of M members,
//! one ballot workflow that closes when all have voted, the repository's templates, and a
//! secret key it writes itself so that it can sign ballot links), runs `councild serve` in
//! it, opens K ballots and casts K × M × votes-per-member votes over HTTP with C concurrent
//! clients. It then measures, with the same clients and the same number of requests, what
//! a bare HTTP handler and a plain sled store can do on this machine, and prints
//! councild's throughput as a ratio of each. With `--rate R` the votes are sent open-loop
//! at R per second instead, and latency is counted from each vote's scheduled time.
//!
//! `--scenario startup` and `--scenario timers` build a large store offline, in process,
//! through the library's writer, then time the daemon's start on it (see `scenario.rs`);
//! `--scenario year` builds a year of activity month by month and follows the store's size
//! against its live data, then times the start before and after `councild compact`
//! (`year.rs`).
//! `--sweep members|items` repeats a measurement over a range and writes a CSV and an SVG
//! chart (see `sweep.rs`).
//!
//! Progress goes to stderr; the report (or `--json`) to stdout.

mod ceilings;
mod harness;
mod load;
mod scenario;
mod svg;
mod sweep;
mod year;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, ValueEnum};

/// Clock ticks per second of `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;
/// How long to wait for the outbox to send the ballot mails or the receipts.
const MAIL_WAIT: Duration = Duration::from_secs(600);
/// Members of the generated council in the scenarios (the size of the OIC's).
const SCENARIO_MEMBERS: usize = 57;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "councild-bench",
    about = "Load test of councild's ballot path, with bare-HTTP and plain-sled ceilings; start-up and timer scenarios; sweeps with plots"
)]
pub struct Args {
    /// Ballots (items) open at the same time.
    #[arg(long, default_value_t = 4)]
    ballots: usize,
    /// Members of the generated council (each votes in every ballot). Default: 1000 for
    /// the vote load, 57 for the scenarios.
    #[arg(long)]
    members: Option<usize>,
    /// Concurrent HTTP clients (tasks sharing one connection pool); with --rate, the most
    /// requests in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Votes per member and ballot; the extra ones change the member's vote.
    #[arg(long, default_value_t = 1)]
    votes_per_member: usize,
    /// Open loop: send the votes at this many per second (vote i at start + i/R), and count
    /// latency from the scheduled time. Default: closed loop, as fast as the clients go.
    #[arg(long)]
    rate: Option<f64>,
    /// Skip the ceilings (bare HTTP handler, plain sled) after the vote load.
    #[arg(long)]
    no_ceilings: bool,
    /// Time the daemon's start on a large store built offline instead of the vote load.
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Open items the scenarios build (default 100,000); in the year, the council's items
    /// over all its months (default 2,000).
    #[arg(long)]
    items: Option<usize>,
    /// In the start-up scenario, also time a start after `councild compact`.
    #[arg(long)]
    compact: bool,
    /// The start-up and timer scenarios: build the council folder here and keep it; when it
    /// already holds one this tool built, time the start on it without building again.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Months of activity in the year scenario.
    #[arg(long, default_value_t = 12)]
    months: usize,
    /// Ballots of the large electorate over the year scenario's months.
    #[arg(long, default_value_t = 100)]
    big_ballots: usize,
    /// Members of the year scenario's large electorate.
    #[arg(long, default_value_t = 10_000)]
    big_members: usize,
    /// Events per item in the start-up scenario (started, electorate fixed, then votes).
    #[arg(long, default_value_t = 10)]
    events_per_item: usize,
    /// Run the vote load (members) or the start-up scenario (items) over a range, and write
    /// a CSV and an SVG chart.
    #[arg(long, value_enum)]
    sweep: Option<Sweep>,
    /// Votes per point of `--sweep members` (split over enough ballots).
    #[arg(long, default_value_t = 10_000)]
    sweep_votes: usize,
    /// Where `--sweep` writes `perf-members.{csv,svg}` or `perf-items.{csv,svg}`.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    /// The councild binary (default: `councild` next to this binary).
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Start voting at once instead of waiting for the ballot mails to be sent.
    #[arg(long)]
    no_mail_wait: bool,
    /// Send the daemon's mail to this SMTP server (`[mail] smtp_url`) instead of `.eml`
    /// files, e.g. `smtp://127.0.0.1:2525`.
    #[arg(long)]
    smtp_url: Option<String>,
    /// Print every figure as JSON instead of the text report.
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// N open items with about N × E events: time until /readyz, and peak RSS.
    Startup,
    /// N items whose timers are all due when the daemon starts: time until all fired.
    Timers,
    /// A year of activity month by month: the store on disk against its live data, the
    /// start on the aged store and on the same store compacted.
    Year,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// The vote load for 57, 300, 1000, 3000 and 10000 members.
    Members,
    /// The start-up scenario for 100, 1000, 10000 and 100000 items.
    Items,
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
    if args.scenario.is_some() && args.sweep.is_some() {
        bail!("give either --scenario or --sweep, not both");
    }
    if let Some(r) = args.rate
        && !(r.is_finite() && r > 0.0)
    {
        bail!("--rate must be a positive number of votes per second");
    }
    let daemon = daemon_binary(args.daemon.as_deref())?;
    match (args.sweep, args.scenario) {
        (Some(Sweep::Members), _) => sweep::members(&args, &daemon).await,
        (Some(Sweep::Items), _) => sweep::items(&args, &daemon).await,
        (None, Some(Scenario::Year)) => {
            let settings = year::Settings::from_args(&args)?;
            let report = year::run(&settings, &daemon).await?;
            for path in report.write_plot(&args.out)? {
                eprintln!("wrote {}", path.display());
            }
            report.print(args.json)
        }
        (None, Some(scenario)) => {
            let settings = scenario::Settings::from_args(&args, scenario)?;
            let report = scenario::run(&settings, &daemon).await?;
            report.print(args.json)
        }
        (None, None) => {
            let settings = load::Settings::from_args(&args)?;
            let report = load::run(&settings, &daemon).await?;
            report.print(args.json)
        }
    }
}

/// The councild binary: `--daemon`, or `councild` next to this binary.
fn daemon_binary(given: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => std::env::current_exe()
            .context("locating this binary")?
            .parent()
            .context("this binary has no folder")?
            .join("councild"),
    };
    if !path.is_file() {
        bail!(
            "no councild binary at {} (build both with `cargo build --release --workspace --bins`, or give --daemon)",
            path.display()
        );
    }
    Ok(path)
}

/// The number of CPUs this process may use.
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

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
