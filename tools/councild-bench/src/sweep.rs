//! Sweeps: one measurement repeated over a range, written as a CSV and an SVG chart.
//!
//! - `--sweep members`: the closed-loop vote load (no ceilings) for each council size,
//!   with about `--sweep-votes` votes per point (as many ballots as that takes).
//! - `--sweep items`: the start-up scenario for each number of open items.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::svg::{Chart, Series};
use crate::{Args, Scenario, load, scenario};

const MEMBERS: [usize; 5] = [57, 300, 1000, 3000, 10000];
const ITEMS: [usize; 4] = [100, 1000, 10000, 100_000];

pub async fn members(args: &Args, daemon: &Path) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for members in MEMBERS {
        let settings = load::Settings {
            ballots: (args.sweep_votes as f64 / members as f64).round().max(1.0) as usize,
            members,
            clients: args.clients,
            votes_per_member: 1,
            rate: None,
            ceilings: false,
            wait_for_ballot_mail: !args.no_mail_wait,
            smtp_url: args.smtp_url.clone(),
        };
        eprintln!("sweep: {members} members, {} ballots", settings.ballots);
        let report = load::run(&settings, daemon).await?;
        print!("{}", report.text);
        rows.push((settings, report));
    }
    let csv = table(
        "members,ballots,votes,votes_per_s,cpu_us_per_vote,p99_ms,rss_peak_mb",
        rows.iter().map(|(s, r)| {
            format!(
                "{},{},{},{:.0},{:.0},{:.2},{:.0}",
                s.members,
                s.ballots,
                s.ballots * s.members,
                r.votes_per_s,
                r.cpu_per_vote_us,
                r.p99_ms,
                r.rss_mb
            )
        }),
    );
    let xs: Vec<f64> = rows.iter().map(|(s, _)| s.members as f64).collect();
    let rates: Vec<f64> = rows.iter().map(|(_, r)| r.votes_per_s).collect();
    let cpu: Vec<f64> = rows.iter().map(|(_, r)| r.cpu_per_vote_us).collect();
    let svg = Chart {
        title: &format!(
            "councild votes over HTTP, {} clients, closed loop, ~{} votes per point",
            args.clients, args.sweep_votes
        ),
        x_label: "members (voters per ballot)",
        log_x: true,
        xs: &xs,
        series: &[
            Series {
                name: "votes/s",
                axis: "votes acknowledged per second",
                values: &rates,
            },
            Series {
                name: "CPU µs/vote",
                axis: "daemon CPU µs per vote",
                values: &cpu,
            },
        ],
    }
    .render();
    write_outputs(&args.out, "perf-members", &csv, &svg)
}

pub async fn items(args: &Args, daemon: &Path) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for items in ITEMS {
        let settings = scenario::Settings::from_args(
            &Args {
                items: Some(items),
                ..args.clone()
            },
            Scenario::Startup,
        )?;
        eprintln!("sweep: start-up with {items} items");
        let report = scenario::run(&settings, daemon).await?;
        print!("{}", report.text());
        rows.push(report);
    }
    let csv = table(
        "items,events,build_s,healthz_s,readyz_s,rss_at_ready_mb,rss_peak_mb,cpu_until_ready_s",
        rows.iter().map(|r| {
            format!(
                "{},{},{:.1},{:.3},{:.3},{:.0},{:.0},{:.2}",
                r.settings.items,
                r.built.events,
                r.built.seconds,
                r.started.healthz_s,
                r.started.readyz_s,
                r.started.rss_ready_mb,
                r.started.rss_peak_mb,
                r.started.cpu_ready_s
            )
        }),
    );
    let xs: Vec<f64> = rows.iter().map(|r| r.settings.items as f64).collect();
    let ready: Vec<f64> = rows.iter().map(|r| r.started.readyz_s).collect();
    let rss: Vec<f64> = rows.iter().map(|r| r.started.rss_peak_mb).collect();
    let svg = Chart {
        title: &format!(
            "councild start-up: open items with {} events each",
            args.events_per_item
        ),
        x_label: "open items",
        log_x: true,
        xs: &xs,
        series: &[
            Series {
                name: "start-up s",
                axis: "seconds from spawn to /readyz 200",
                values: &ready,
            },
            Series {
                name: "peak RSS MB",
                axis: "daemon peak RSS (MB)",
                values: &rss,
            },
        ],
    }
    .render();
    write_outputs(&args.out, "perf-items", &csv, &svg)
}

fn table(header: &str, rows: impl Iterator<Item = String>) -> String {
    let mut out = format!("{header}\n");
    for row in rows {
        out.push_str(&row);
        out.push('\n');
    }
    out
}

/// Writes `NAME.csv` and `NAME.svg` in `dir`, and prints the table and both paths.
fn write_outputs(dir: &Path, name: &str, csv: &str, svg: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let write = |ext: &str, text: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(format!("{name}.{ext}"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let csv_path = write("csv", csv)?;
    let svg_path = write("svg", svg)?;
    print!("{csv}");
    println!("wrote {} and {}", csv_path.display(), svg_path.display());
    Ok(())
}
