//! The middle ring: the daemon's writer, timer task and HTTP routers in this process, on a
//! real store in a temporary folder, with a clock the test moves. Between the pure engine
//! tests and the tests of the real binary: a 21-day cycle runs in milliseconds, nothing
//! waits on the wall clock, and a request reaches a handler without a socket.
//!
//! Also: the writer and `councild simulate` drive the engine through the same
//! `engine::step`, so given the same requests at the same times they log the same chain,
//! and a lot drawn from that chain comes out the same in both.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::TimeZone;
use councild::clock::Clock;
use councild::config::Config;
use councild::definition::{self, Definitions, Known, Workflow};
use councild::engine::{Event, Item, Record, Status};
use councild::http::App;
use councild::mail::Templates;
use councild::observe::Metrics;
use councild::roster::Roster;
use councild::simulate::Simulator;
use councild::store::Store;
use councild::token::{BallotRef, Key};
use councild::writer::{Handle, Items, Wake, Writer};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

const TIE: &str = r#"
workflow: tie-vote
title: A motion that ties
start: vote
stages:
  vote:
    ballot:
      question: "Adopt the motion?"
      choices: [yes, no]
      closes_after: 7d
      pass: "yes > no"
      tie: lot
      close: when_all_voted
    outcomes: { adopted: adopt, rejected: rejected, no_quorum: rejected }
  adopt:
    register: { series: motions, number: "M/{{year}}/{{seq:02}}" }
    end: adopted
  rejected:
    end: rejected
"#;

const SLOW: &str = r#"
workflow: slow
title: Circulated for two weeks, then a ballot of a week
start: circulate
stages:
  circulate:
    after: 14d
    next: vote
  vote:
    ballot:
      question: "Adopt?"
      choices: [yes, no]
      closes_after: 7d
      remind: { before_close: [1d] }
      pass: "yes > no"
      close: at_deadline
    outcomes: { adopted: adopted, rejected: rejected, no_quorum: rejected }
  adopted:
    end: adopted
  rejected:
    end: rejected
"#;

const ROSTER: &str = r#"
council: Test Council
secretariat: { name: Secretariat, email: secretariat@example.org }
members:
  - { id: AAA, name: A, voting_right: true, delegates: [{ name: a, email: a@example.org }] }
  - { id: BBB, name: B, voting_right: true, delegates: [{ name: b, email: b@example.org }] }
  - { id: CCC, name: C, voting_right: true, delegates: [{ name: c, email: c@example.org }] }
  - { id: DDD, name: D, voting_right: true, delegates: [{ name: d, email: d@example.org }] }
"#;

fn workflow(source: &str) -> Workflow {
    let known = Known {
        templates: None,
        roster: None,
    };
    definition::load(source, &known).unwrap()
}

fn roster() -> Roster {
    Roster::parse(ROSTER, councild::mail::is_address).unwrap()
}

fn tz() -> chrono_tz::Tz {
    "Europe/Istanbul".parse().unwrap()
}

/// The writer and the timer task on a store in a temporary folder.
struct Shell {
    _dir: tempfile::TempDir,
    store: Store,
    handle: Handle,
    items: Arc<Items>,
    defs: Arc<ArcSwap<Definitions>>,
    wake: Wake,
    clock: Clock,
    stop: CancellationToken,
}

impl Shell {
    async fn start(workflows: &[&Workflow], clock: Clock) -> Shell {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut defs = Definitions::default();
        for w in workflows {
            defs.insert_current((*w).clone());
        }
        let wake = Wake::default();
        let items = Arc::new(Items::default());
        let defs = Arc::new(ArcSwap::from_pointee(defs));
        let (writer, handle) = Writer::open(
            store.clone(),
            clock.clone(),
            defs.clone(),
            Arc::new(ArcSwap::from_pointee(roster())),
            tz(),
            wake.clone(),
            Arc::new(Metrics::default()),
            items.clone(),
        )
        .await
        .unwrap();
        tokio::spawn(writer.run());
        let stop = CancellationToken::new();
        tokio::spawn(councild::timers::run(
            store.clone(),
            handle.clone(),
            wake.timers.clone(),
            clock.clone(),
            stop.clone(),
        ));
        Shell {
            _dir: dir,
            store,
            handle,
            items,
            defs,
            wake,
            clock,
            stop,
        }
    }

    async fn vote(&self, item: &str, member: &str, choice: &str) {
        let vote = Event::VoteCast {
            ballot: 0,
            member: member.into(),
            choice: choice.into(),
            proofs: None,
        };
        self.handle.event(item.into(), vote, None).await.unwrap();
    }

    /// The item once `done` holds of it (the timer task works on its own time).
    async fn until(&self, id: &str, what: &str, done: impl Fn(&Item) -> bool) -> Arc<Item> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(item) = self.items.get(id).filter(|i| done(i)) {
                return item;
            }
            assert!(tokio::time::Instant::now() < deadline, "{id}: never {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The state both HTTP routers share, over this shell.
    fn app(&self) -> Arc<App> {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let templates = Templates::load(&repo.join("templates")).unwrap();
        Arc::new(App {
            config: Config::default(),
            store: self.store.clone(),
            writer: self.handle.clone(),
            defs: self.defs.clone(),
            roster: Arc::new(ArcSwap::from_pointee(roster())),
            templates: Arc::new(ArcSwap::from_pointee(templates)),
            key: Key::from_bytes([7; 32]),
            accounts: councild::accounts::Accounts::new(
                self.store.clone(),
                self.clock.clone(),
                ADMIN_TOKEN.into(),
            ),
            tz: tz(),
            started: std::time::Instant::now(),
            metrics: Arc::new(Metrics::default()),
            wake: self.wake.clone(),
            items: self.items.clone(),
            reload: councild::http::Reload::new(|| Err(vec!["no reload in this test".into()])),
            clock: self.clock.clone(),
            limits: Arc::default(),
            questions: Default::default(),
        })
    }

    fn log(&self, id: &str) -> Vec<Record> {
        self.store.events(id).map(Result::unwrap).collect()
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn a_three_week_cycle_runs_on_a_clock_the_test_moves() {
    let slow = workflow(SLOW);
    let start = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    let shell = Shell::start(&[&slow], Clock::manual(start)).await;
    let id = shell
        .handle
        .start(slow.name.clone(), BTreeMap::new(), None)
        .await
        .unwrap()
        .item;
    let item = shell.items.get(&id).unwrap();
    assert_eq!(item.stage, "circulate");

    // Thirteen days on, nothing is due yet; at fourteen the ballot opens.
    shell.clock.advance(chrono::Duration::days(13));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(shell.items.get(&id).unwrap().stage, "circulate");
    shell.clock.advance(chrono::Duration::days(1));
    let item = shell
        .until(&id, "opened its ballot", |i| i.stage == "vote")
        .await;
    assert_eq!(
        item.ballots[0].opened_at,
        start + chrono::Duration::days(14)
    );
    shell.vote(&id, "AAA", "yes").await;
    shell.vote(&id, "BBB", "no").await;
    shell.vote(&id, "CCC", "yes").await;

    // The deadline passes: the ballot closes on the votes cast, at the deadline's time.
    shell.clock.advance(chrono::Duration::days(7));
    let item = shell
        .until(&id, "ended", |i| i.status == Status::Ended)
        .await;
    assert_eq!(item.outcome.as_deref(), Some("adopted"));
    let result = item.ballots[0].result.as_ref().unwrap();
    assert_eq!(result.reason, "the deadline passed");
    assert_eq!(result.closed_at, start + chrono::Duration::days(21));
    // The reminder fired before the close; the log replays to the state.
    let log = shell.log(&id);
    let fired: Vec<String> = log
        .iter()
        .filter_map(|r| match &r.event {
            Event::TimerFired { timer } => Some(timer.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(fired, ["next@circulate", "remind:0:0", "close:0"]);
    let replayed = councild::engine::replay(|_| Some(&slow), tz(), &id, &log).unwrap();
    assert_eq!(replayed.as_ref(), Some(&*item));
}

#[tokio::test]
async fn the_simulator_draws_the_same_lot_as_the_daemon_on_the_same_requests() {
    let workflow = workflow(TIE);
    let roster = roster();
    let shell = Shell::start(&[&workflow], Clock::system()).await;
    let done = shell
        .handle
        .start(workflow.name.clone(), BTreeMap::new(), None)
        .await
        .unwrap();
    for (member, choice) in [("AAA", "yes"), ("BBB", "no"), ("CCC", "yes"), ("DDD", "no")] {
        shell.vote(&done.item, member, choice).await;
    }
    let log = shell.log(&done.item);

    // The same requests, at the same times, through the simulator.
    let mut sim = Simulator::new(&workflow, &roster, tz(), log[0].at);
    for record in &log {
        if matches!(record.event, Event::Started { .. } | Event::VoteCast { .. }) {
            sim.now = record.at;
            sim.apply(record.event.clone()).unwrap();
        }
    }
    assert_eq!(sim.world.log, log, "the same chain, record for record");

    let item = sim.item().unwrap();
    let result = item.ballots[0].result.clone().unwrap();
    assert!(
        result.explanation.contains("by lot, seed"),
        "{}",
        result.explanation
    );
    // The seed is the chain's head when the ballot opened, not a stand-in.
    let seed = &item.ballots[0].seed;
    assert_eq!(seed, &log[0].hash);
    let by_lot = if u64::from_str_radix(&seed[..16], 16).unwrap() % 2 == 1 {
        "adopted"
    } else {
        "rejected"
    };
    assert_eq!(item.outcome.as_deref(), Some(by_lot));
    // And the daemon's own item is the simulator's, but for its id.
    let mut daemon = (*shell.items.get(&done.item).unwrap()).clone();
    daemon.id = item.id.clone();
    assert_eq!(&daemon, item);
}

/// One request through a router, without a socket: the status and the body.
async fn call(
    router: axum::Router,
    request: axum::http::Request<axum::body::Body>,
) -> (u16, String) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_routers_start_an_item_and_take_a_vote_without_a_socket() {
    let tie = workflow(TIE);
    let shell = Shell::start(&[&tie], Clock::system()).await;
    let app = shell.app();
    let start = |token: &str| {
        axum::http::Request::post("/api/items")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(r#"{"workflow":"tie-vote"}"#))
            .unwrap()
    };
    let (status, _) = call(councild::http::admin_router(app.clone()), start("forged")).await;
    assert_eq!(status, 401, "a wrong token starts nothing");
    assert!(shell.items.all().is_empty());
    let (status, body) = call(
        councild::http::admin_router(app.clone()),
        start(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A delegate votes from the signed link of the ballot mail.
    let token = app.key.sign(&BallotRef {
        item: id.clone(),
        ballot: 0,
        member: "BBB".into(),
        delegate: 0,
    });
    let vote = axum::http::Request::post(format!("/ballot/{token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from("choice=no"))
        .unwrap();
    let (status, page) = call(councild::http::public_router(app.clone()), vote).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Vote recorded"), "{page}");
    let item = shell.items.get(&id).unwrap();
    assert_eq!(item.ballots[0].vote("BBB"), Some("no"));
    // The receipt on the page is the hash of the vote's record in the log.
    let log = shell.log(&id);
    let last = log.last().unwrap();
    assert!(matches!(&last.event, Event::VoteCast { member, .. } if member == "BBB"));
    assert!(
        page.contains(&last.hash),
        "the receipt is the record's hash"
    );
}

/// A writer on `store` with `workflow` current, and the items it publishes.
async fn writer_on(store: &Store, workflow: &Workflow) -> (Writer, Handle, Arc<Items>) {
    let mut defs = Definitions::default();
    defs.insert_current(workflow.clone());
    let items = Arc::new(Items::default());
    let (writer, handle) = Writer::open(
        store.clone(),
        Clock::system(),
        Arc::new(ArcSwap::from_pointee(defs)),
        Arc::new(ArcSwap::from_pointee(roster())),
        tz(),
        Wake::default(),
        Arc::new(Metrics::default()),
        items.clone(),
    )
    .await
    .unwrap();
    (writer, handle, items)
}

fn vote(member: &str) -> Event {
    Event::VoteCast {
        ballot: 0,
        member: member.into(),
        choice: "yes".into(),
        proofs: None,
    }
}

#[tokio::test]
async fn a_request_that_comes_before_the_idle_check_steps_the_item_its_log_has() {
    let tie = workflow(TIE);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (writer, handle, items) = writer_on(&store, &tie).await;
    let running = tokio::spawn(writer.run());
    let id = handle
        .start(tie.name.clone(), BTreeMap::new(), None)
        .await
        .unwrap()
        .item;
    let before = items.get(&id).unwrap();
    handle.event(id.clone(), vote("AAA"), None).await.unwrap();
    drop(handle);
    running.await.unwrap();

    // The item's rows put back as they were before AAA's vote, whole: only the log has it.
    let mut batch = councild::store::Batch::default();
    store.stage_item(&before, &mut batch).unwrap();
    store.commit(&batch).await.unwrap();

    // BBB's vote is waiting before the writer runs, so it comes before any idle check.
    let (writer, handle, items) = writer_on(&store, &tie).await;
    assert_eq!(
        items.get(&id).unwrap().ballots[0].cast(),
        0,
        "as its rows say"
    );
    let queued = tokio::spawn({
        let (handle, id) = (handle.clone(), id.clone());
        async move { handle.event(id, vote("BBB"), None).await }
    });
    tokio::task::yield_now().await;
    let running = tokio::spawn(writer.run());
    queued.await.unwrap().unwrap();
    let item = items.get(&id).unwrap();
    assert_eq!(
        item.ballots[0].cast(),
        2,
        "AAA's vote from the log, and BBB's"
    );
    let log: Vec<Record> = store.events(&id).map(Result::unwrap).collect();
    assert_eq!(log.len() as u64, item.seq, "no event written over another");
    drop(handle);
    running.await.unwrap();
}
