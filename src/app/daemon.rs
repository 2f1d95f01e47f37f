//! `councild serve`: loads everything, checks it, and runs the tasks until a signal.
//!
//! Start-up refuses to run on any invalid workflow, template or roster, printing every
//! problem. Shutdown (SIGINT or SIGTERM) stops the listeners, lets the writer finish its
//! batch and stops the timer and outbox tasks; correctness never depends on a clean exit.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::setup::{self, load};
use crate::clock::Clock;
use crate::config::Config;
use crate::definition::{self, Definitions, Known};
use crate::listen::{Caps, Gate};
use crate::mail::{Outbox, Transport};
use crate::observe::Metrics;
use crate::store::Store;
use crate::token::Key;
use crate::writer::{Wake, Writer};
use crate::{http, timers};

/// Runs the daemon until a signal (or a storage failure). Under systemd (`Type=notify`,
/// `$NOTIFY_SOCKET` set) it says `READY=1` once the store is open and every listener is
/// bound, and `STOPPING=1` when it begins to shut down.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("serving"),
    ]);
    let storage_failed = tokio::select! {
        _ = wait_for_signal() => false,
        _ = running.app.wake.storage_failed.notified() => true,
    };
    tracing::info!("shutting down");
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("shutting down"),
    ]);
    running.stop(storage_failed).await
}

/// Tells the service manager, if there is one, how the daemon is.
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "the service manager could not be told (NOTIFY_SOCKET)");
    }
}

/// The daemon once started: its application state and the tasks serving it.
pub struct Running {
    pub app: Arc<http::App>,
    /// The reply-by-email side, whether or not a listener takes sessions for it.
    pub replies: Arc<crate::inbound::Replies>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    writer: crate::writer::Handle,
    writer_task: tokio::task::JoinHandle<()>,
    store: Store,
}

impl Running {
    /// Stops the listeners, lets the writer finish its batch and flushes the store.
    pub async fn stop(self, storage_failed: bool) -> anyhow::Result<()> {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
        drop(self.app);
        drop(self.replies);
        drop(self.writer);
        let _ = self.writer_task.await;
        if storage_failed {
            anyhow::bail!(
                "the store failed to write (see the log: disk full or read-only?); nothing unacknowledged was kept. Fix the disk and start councild again"
            );
        }
        self.store.flush().await?;
        Ok(())
    }
}

/// Reads and checks everything, opens the store, recovers, binds the listeners and starts
/// every task; the daemon serves from here until [`Running::stop`].
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let clock = Clock::from_environment().map_err(|e| anyhow::anyhow!(e))?;
    let caps = connection_caps(&config);
    let loaded = load(&config)?;
    let tz = config.timezone()?;
    crate::durable::private_folder(&config.storage.path)
        .with_context(|| format!("creating {}", config.storage.path.display()))?;
    let opening = std::time::Instant::now();
    let store = Store::open(&config.store_path())?;
    tracing::info!(ms = opening.elapsed().as_millis() as u64, "store opened");
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
    let roster: crate::writer::SharedRoster = Arc::new(ArcSwap::from_pointee(loaded.roster));
    let templates = Arc::new(ArcSwap::from_pointee(loaded.templates));
    let key = Key::load_or_create(&config.storage.path.join("secret.key")).context("secret key")?;
    let accounts =
        crate::accounts::Accounts::new(store.clone(), clock.clone(), config.admin_token(true)?);
    let wake = Wake::default();
    let metrics = Arc::new(Metrics::default());
    let items = Arc::new(crate::writer::Items::default());
    let reading = std::time::Instant::now();
    let (mut writer, handle) = Writer::open(
        store.clone(),
        clock.clone(),
        defs.clone(),
        roster.clone(),
        tz,
        wake.clone(),
        metrics.clone(),
        items.clone(),
    )
    .await?;
    tracing::info!(
        items = items.count(),
        ms = reading.elapsed().as_millis() as u64,
        "items read and checked"
    );
    if config.storage.check_on_start == crate::config::StartCheck::Full {
        let repaired = writer.check_logs().await?;
        tracing::info!(repaired, "every item's log replayed");
    }
    let writer_task = tokio::spawn(writer.run());
    handle.reload(loaded.workflows, None).await?;

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
        roster: roster.clone(),
        clock: clock.clone(),
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
        config: config.clone(),
        store: store.clone(),
        writer: handle.clone(),
        defs,
        roster,
        templates,
        key,
        accounts,
        tz,
        started: Instant::now(),
        metrics,
        wake: wake.clone(),
        items,
        reload: setup::reloader(config.clone()),
        clock: clock.clone(),
        limits: Arc::default(),
        questions: Default::default(),
    });

    let inbound = &app.config.inbound;
    let tls = match (&inbound.tls_cert, &inbound.tls_key) {
        (Some(cert), Some(key)) => Some(crate::inbound::tls_acceptor(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!("inbound.tls_cert and inbound.tls_key go together"),
    };
    let replies = Arc::new(crate::inbound::Replies {
        domain: app.config.reply_domain(),
        key: app.key.clone(),
        items: app.items.clone(),
        writer: handle.clone(),
        defs: app.defs.clone(),
        roster: app.roster.clone(),
        tz,
        clock: clock.clone(),
        limits: app.limits.clone(),
        tls,
    });
    let mut tasks = Vec::new();
    if let Some(addr) = inbound.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("inbound listener {addr}"))?;
        tracing::info!(inbound = %listener.local_addr()?, starttls = replies.tls.is_some(), "replies by email accepted");
        tasks.push(tokio::spawn(crate::inbound::run(
            replies.clone(),
            listener,
            Gate::new("inbound", caps.inbound, &[], &app.metrics),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(timers::run(
        store.clone(),
        handle.clone(),
        wake.timers.clone(),
        clock.clone(),
        stop.clone(),
    )));
    tasks.push(spawn_outbox(outbox, wake.outbox.clone(), stop.clone())?);
    tasks.push(tokio::spawn(http::serve(
        public,
        Gate::new(
            "public",
            caps.public,
            &app.config.public.trusted_proxies,
            &app.metrics,
        ),
        http::public_router(app.clone()),
        stop.clone(),
    )));
    tasks.push(tokio::spawn(http::serve(
        admin,
        Gate::new("admin", caps.admin, &[], &app.metrics),
        http::admin_router(app.clone()),
        stop.clone(),
    )));
    Ok(Running {
        app,
        replies,
        stop,
        tasks,
        writer: handle,
        writer_task,
        store,
    })
}

/// Runs the outbox on a thread of its own, at a lower CPU priority than the threads that
/// take and acknowledge votes: under load, the kernel gives the CPU to a vote's answer
/// before a mail's rendering and writing, and the mail catches up when the load eases.
fn spawn_outbox(
    outbox: Outbox,
    wake: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("outbox-io")
        .on_thread_start(lower_priority)
        .build()
        .context("the outbox's runtime")?;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("outbox".into())
        .spawn(move || {
            lower_priority();
            runtime.block_on(outbox.run(wake, stop));
            let _ = done.send(());
        })
        .context("the outbox's thread")?;
    Ok(tokio::spawn(async move {
        let _ = finished.await;
    }))
}

/// Sets the calling thread's scheduling priority 10 nice steps below the daemon's main
/// thread (at most to 19; nice is per thread on Linux). Where it cannot, the outbox runs
/// at the daemon's priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the process's and the calling thread's own ids, no
    // memory passed.
    unsafe {
        let thread = libc::gettid() as libc::id_t;
        // -1 is also a priority: the error is told by errno, set to 0 before.
        *libc::__errno_location() = 0;
        let now = libc::getpriority(libc::PRIO_PROCESS, libc::getpid() as libc::id_t);
        if *libc::__errno_location() != 0
            || libc::setpriority(libc::PRIO_PROCESS, thread, (now + 10).min(19)) != 0
        {
            tracing::debug!("the outbox's priority could not be lowered");
        }
    }
}

/// Raises the open-file limit as far as allowed and sizes the listeners' caps below it,
/// so that connections can never take the descriptors the store and the outbox need.
fn connection_caps(config: &Config) -> Caps {
    let caps = Caps::new(config.public.connections_per_client);
    let Some(open_files) = crate::listen::raise_open_file_limit() else {
        tracing::warn!("the open-file limit could not be read; connection caps as configured");
        return caps;
    };
    let fitted = caps.fit(open_files);
    if fitted != caps {
        tracing::warn!(
            open_files,
            public = fitted.public.total,
            admin = fitted.admin.total,
            inbound = fitted.inbound.total,
            "the open-file limit is low: connection caps lowered to fit (raise `ulimit -n`)"
        );
    } else {
        tracing::info!(
            open_files,
            public = caps.public.total,
            admin = caps.admin.total,
            inbound = caps.inbound.total,
            per_client = caps.public.per_client,
            "open-file limit and connection caps"
        );
    }
    fitted
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
