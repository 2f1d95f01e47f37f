//! `councild serve`: loads everything, checks it, and runs the tasks until a signal.
//!
//! Start-up refuses to run on any invalid workflow, template or roster, printing every
//! problem. Shutdown (SIGINT or SIGTERM) stops the listeners, lets the writer finish its
//! batch and stops the timer and outbox tasks; correctness never depends on a clean exit.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::definition::{self, Definitions, Known};
use crate::mail::{Outbox, Templates, Transport};
use crate::observe::Metrics;
use crate::roster::Roster;
use crate::store::Store;
use crate::token::Key;
use crate::writer::{Wake, Writer};
use crate::{http, timers};

/// Everything read from the configuration folder, checked.
pub struct Loaded {
    pub templates: Templates,
    pub roster: Roster,
    pub workflows: Vec<definition::Workflow>,
}

/// Reads templates, roster and workflows; every problem is reported at once.
pub fn load(config: &Config) -> anyhow::Result<Loaded> {
    let report = check(config, std::slice::from_ref(&config.workflows.dir));
    let problems: Vec<String> = report.problems().cloned().collect();
    if !problems.is_empty() {
        anyhow::bail!("the configuration has problems:\n{}", problems.join("\n"));
    }
    let workflows = report
        .files
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .collect();
    match (report.templates, report.roster) {
        (Some(templates), Some(roster)) => Ok(Loaded {
            templates,
            roster,
            workflows,
        }),
        _ => anyhow::bail!("the configuration could not be read"),
    }
}

/// What `validate` found: problems of the templates and roster, and each workflow file.
pub struct Report {
    pub templates: Option<Templates>,
    pub roster: Option<Roster>,
    /// Problems outside workflow files: templates, roster, unreadable folders.
    pub general: Vec<String>,
    pub files: Vec<(
        std::path::PathBuf,
        Result<definition::Workflow, Vec<String>>,
    )>,
}

impl Report {
    pub fn problems(&self) -> impl Iterator<Item = &String> {
        self.general.iter().chain(
            self.files
                .iter()
                .filter_map(|(_, r)| r.as_ref().err())
                .flatten(),
        )
    }
}

/// Checks templates (rendering each with sample data), the roster, and the workflow files
/// under `paths`, including that no two files define the same workflow.
pub fn check(config: &Config, paths: &[std::path::PathBuf]) -> Report {
    let mut general = Vec::new();
    let dir = &config.workflows.templates;
    let templates = match Templates::load(dir) {
        Ok(t) => {
            general.extend(t.check(dir, &crate::templates::sample_data()));
            // The daemon itself sends these, whatever the workflows say.
            for name in ["mail-failed", "reply-not-understood"] {
                if !t.names().contains(name) {
                    general.push(format!(
                        "{}: template `{name}` is missing; councild sends it itself",
                        dir.join(crate::templates::DEFAULT_LANGUAGE).display()
                    ));
                }
            }
            Some(t)
        }
        Err(e) => {
            general.extend(e);
            None
        }
    };
    let roster = read_roster(&config.council.roster)
        .map_err(|e| general.extend(e))
        .ok();
    let names = templates.as_ref().map(Templates::names);
    let known = Known {
        templates: names.as_ref(),
        roster: roster.as_ref(),
    };
    let mut files = Vec::new();
    for path in paths {
        match workflow_files(path) {
            Ok(list) => files.extend(list),
            Err(e) => general.push(format!("{}: {e}", path.display())),
        }
    }
    let mut results: Vec<(
        std::path::PathBuf,
        Result<definition::Workflow, Vec<String>>,
    )> = Vec::new();
    for file in files {
        let result = match std::fs::read_to_string(&file) {
            Err(e) => Err(vec![format!("{}: {e}", file.display())]),
            Ok(source) => definition::load(&source, &known).map_err(|inv| {
                inv.0
                    .iter()
                    .map(|d| format!("{}:{d}", file.display()))
                    .collect()
            }),
        };
        let result = match result {
            Ok(w) => match results
                .iter()
                .find(|(_, r)| r.as_ref().is_ok_and(|o| o.name == w.name))
            {
                Some((other, _)) => Err(vec![format!(
                    "{}:1:1: workflow `{}` is also defined in {}",
                    file.display(),
                    w.name,
                    other.display()
                )]),
                None => Ok(w),
            },
            Err(e) => Err(e),
        };
        results.push((file, result));
    }
    Report {
        templates,
        roster,
        general,
        files: results,
    }
}

fn read_roster(path: &Path) -> Result<Roster, Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    Roster::parse(&text, crate::mail::is_address).map_err(|inv| {
        inv.0
            .iter()
            .map(|d| format!("{}:{d}", path.display()))
            .collect()
    })
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let loaded = load(&config)?;
    let tz = config.timezone()?;
    std::fs::create_dir_all(&config.storage.path)
        .with_context(|| format!("creating {}", config.storage.path.display()))?;
    let store = Store::open(&config.store_path())?;
    // Every version items may run on; the files on disk become current through the writer.
    let mut stored = Definitions::default();
    for (version, source) in store.definitions()? {
        match definition::load(
            &source,
            &Known {
                templates: None,
                roster: None,
            },
        ) {
            Ok(w) => stored.insert_old(w),
            Err(e) => tracing::error!(version, "a stored workflow version no longer reads: {e}"),
        }
    }
    let defs = Arc::new(ArcSwap::from_pointee(stored));
    let roster = Arc::new(loaded.roster);
    let templates = Arc::new(ArcSwap::from_pointee(loaded.templates));
    let key = Key::load_or_create(&config.storage.path.join("secret.key")).context("secret key")?;
    let admin_token = config.admin_token(true)?;
    let wake = Wake::default();
    let metrics = Arc::new(Metrics::default());
    let items = Arc::new(crate::writer::Items::default());
    let (mut writer, handle) = Writer::open(
        store.clone(),
        defs.clone(),
        roster.clone(),
        tz,
        wake.clone(),
        metrics.clone(),
        items.clone(),
    )
    .await?;
    if config.storage.check_on_start == crate::config::StartCheck::Full {
        let repaired = writer.check_logs().await?;
        tracing::info!(repaired, "every item's log replayed");
    }
    let writer_task = tokio::spawn(writer.run());
    handle.reload(loaded.workflows).await?;

    let stop = CancellationToken::new();
    let transport = Transport::from_config(config.mail.smtp_url.as_deref(), config.mail_folder())?;
    let outbox = Outbox {
        store: store.clone(),
        templates: templates.clone(),
        transport,
        from: config.mail.from.parse()?,
        public_url: config.public.url.clone(),
        key: key.clone(),
        metrics: metrics.clone(),
        reply_domain: config.inbound.listen.map(|_| config.reply_domain()),
        dkim: config.dkim()?,
        secretariat: crate::mail::Recipient::delegate(&roster.secretariat, None, None),
    };
    let public = tokio::net::TcpListener::bind(config.public.listen)
        .await
        .with_context(|| format!("public listener {}", config.public.listen))?;
    let admin = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| format!("admin listener {}", config.admin.listen))?;
    let mail_to = config
        .mail
        .smtp_url
        .clone()
        .unwrap_or_else(|| config.mail_folder().display().to_string());
    tracing::info!(public = %public.local_addr()?, admin = %admin.local_addr()?, mail = %mail_to, "councild ready");
    let app = Arc::new(http::App {
        config,
        store: store.clone(),
        writer: handle.clone(),
        defs,
        roster,
        templates,
        key,
        admin_token,
        tz,
        started: Instant::now(),
        metrics,
        wake: wake.clone(),
        items,
    });

    let inbound_task = match app.config.inbound.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("inbound listener {addr}"))?;
            tracing::info!(inbound = %listener.local_addr()?, "replies by email accepted");
            Some(tokio::spawn(crate::inbound::run(
                app.clone(),
                listener,
                stop.clone(),
            )))
        }
        None => None,
    };
    let timer_task = tokio::spawn(timers::run(
        store.clone(),
        handle.clone(),
        wake.timers.clone(),
        stop.clone(),
    ));
    let outbox_task = tokio::spawn(outbox.run(wake.outbox.clone(), stop.clone()));
    let shutdown = |stop: CancellationToken| async move { stop.cancelled().await };
    let public_task = tokio::spawn(
        axum::serve(public, http::public_router(app.clone()))
            .with_graceful_shutdown(shutdown(stop.clone()))
            .into_future(),
    );
    let admin_task = tokio::spawn(
        axum::serve(admin, http::admin_router(app.clone()))
            .with_graceful_shutdown(shutdown(stop.clone()))
            .into_future(),
    );

    let storage_failed = tokio::select! {
        _ = wait_for_signal() => false,
        _ = wake.storage_failed.notified() => true,
    };
    tracing::info!("shutting down");
    stop.cancel();
    let _ = tokio::join!(public_task, admin_task, timer_task, outbox_task);
    if let Some(task) = inbound_task {
        let _ = task.await;
    }
    drop(app);
    drop(handle);
    let _ = writer_task.await;
    if storage_failed {
        anyhow::bail!(
            "the store failed to write (see the log: disk full or read-only?); nothing unacknowledged was kept. Fix the disk and start councild again"
        );
    }
    store.flush().await?;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The workflow files of a folder (`*.yaml`, `*.yml`), sorted, or the one file given.
fn workflow_files(path: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}
