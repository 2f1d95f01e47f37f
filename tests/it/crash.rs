//! SIGKILL in the middle of a ballot: every acknowledged vote survives, counted once, and
//! the ballot's deadline timer still fires after the restart.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Council, Daemon, councild, poll, repo, until};
use crate::lazyfs::{self, LazyFs};

const TIMED: &str = r#"
workflow: timed-adoption
inputs:
  title: { type: text, required: true }
start: vote
stages:
  vote:
    ballot:
      question: "Adopt “{{item.title}}”?"
      choices: [yes, no, abstain]
      closes_after: 12s
      quorum: "cast >= 1/2 * eligible"
      pass: simple_majority
    outcomes: { adopted: adopt, rejected: rejected, no_quorum: rejected }
  adopt:
    register: { series: regulations, number: "CPCC/REG/{{year}}/{{seq:03}}" }
    notify: { to: heads, template: regulation-adopted }
    end: adopted
  rejected:
    end: rejected
"#;

/// The last vote of each member, from the item's event log.
fn votes_in_log(item: &Value) -> BTreeMap<String, String> {
    let mut votes = BTreeMap::new();
    for e in item["events"].as_array().unwrap() {
        if e["event"]["type"] == "vote_cast" {
            votes.insert(
                e["event"]["member"].as_str().unwrap().to_string(),
                e["event"]["choice"].as_str().unwrap().to_string(),
            );
        }
    }
    votes
}

#[tokio::test]
async fn acknowledged_votes_survive_sigkill_and_the_deadline_still_fires() {
    let roster = std::fs::read_to_string(repo().join("config/council.yaml")).unwrap();
    let council = Council::new(&roster, &[("timed.yaml", TIMED)]);
    let daemon = council.start();
    let id = daemon
        .start_item(
            "timed-adoption",
            json!({"title": "Regulation on joint training"}),
        )
        .await;
    let item = daemon
        .wait_item(&id, "the ballot", |i| {
            i["ballots"][0]["eligible"].as_u64() > Some(0)
        })
        .await;
    let eligible = item["ballots"][0]["eligible"].as_u64().unwrap();
    assert_eq!(eligible, 55, "57 members, 2 suspended");

    let links = until("the ballot mail", Duration::from_secs(30), async || {
        let links: Vec<String> = council.mails().iter().filter_map(|m| m.link()).collect();
        (links.len() as u64 == eligible).then_some(links)
    })
    .await;

    // Vote from many concurrent clients; kill the daemon while votes are still in flight.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, String>::new()));
    let mut tasks = Vec::new();
    for (i, link) in links.iter().enumerate() {
        let link = link.clone();
        let acked = acked.clone();
        let choice = ["yes", "yes", "no"][i % 3];
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let resp = client.post(&link).form(&[("choice", choice)]).send().await;
            if let Ok(r) = resp
                && r.status() == 200
            {
                let page = r.text().await.unwrap_or_default();
                if page.contains("id=\"receipt\"") {
                    let member = page
                        .split("data-member=\"")
                        .nth(1)
                        .and_then(|s| s.split('"').next())
                        .unwrap_or_default()
                        .to_string();
                    acked.lock().unwrap().insert(member, choice.to_string());
                }
            }
        }));
    }
    // Let part of the votes land, then kill without warning: look often, so that many are
    // still in flight; too few acknowledged is checked after the kill.
    let (within, every) = (Duration::from_secs(10), Duration::from_millis(2));
    let _ = poll(within, every, async || acked.lock().unwrap().len() >= 20).await;
    daemon.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "only {} votes acknowledged before the kill",
        acked.len()
    );

    // Restart on the same folder: every acknowledged vote is there, once.
    let daemon = Daemon::start(council.path(), FULL_CHECK);
    let item = daemon.item(&id).await;
    assert_eq!(item["chain"]["verified"], true);
    assert!(
        !daemon.log().contains("differs from its event log"),
        "start-up replay found a mismatch:\n{}",
        daemon.log()
    );
    let logged = votes_in_log(&item);
    for (member, choice) in &acked {
        assert_eq!(
            logged.get(member),
            Some(choice),
            "acknowledged vote of {member} lost"
        );
    }
    let counts = &item["ballots"][0]["counts"];
    let total: u64 = ["yes", "no", "abstain"]
        .iter()
        .map(|c| counts[c].as_u64().unwrap())
        .sum();
    assert_eq!(
        total,
        logged.len() as u64,
        "each member counted once: {counts}"
    );
    assert_eq!(item["ballots"][0]["cast"], logged.len());

    // The deadline timer survived the crash and closes the ballot.
    let item = daemon
        .wait_item(&id, "the deadline", |i| i["status"] == "ended")
        .await;
    let result = &item["ballots"][0]["result"];
    assert_eq!(result["reason"], "the deadline passed");
    let yes = logged.values().filter(|c| *c == "yes").count() as u64;
    let no = logged.values().filter(|c| *c == "no").count() as u64;
    assert_eq!(item["ballots"][0]["counts"]["yes"], yes);
    let expected = if 2 * logged.len() as u64 >= eligible {
        if yes > no { "adopted" } else { "rejected" }
    } else {
        "no_quorum"
    };
    assert_eq!(result["verdict"], expected, "{item:#}");
    assert_eq!(item["chain"]["verified"], true);
}

/// A ballot over a generated council that closes when everyone has voted, then registers.
const ROUNDS: &str = r#"
workflow: crash-rounds
inputs:
  title: { type: text }
start: vote
stages:
  vote:
    ballot:
      question: "Adopt?"
      choices: [yes, no, abstain]
      closes_after: 1w
      pass: simple_majority
      close: when_all_voted
    outcomes: { adopted: adopt, rejected: rejected, no_quorum: rejected }
  adopt:
    register: { series: rounds, number: "R/{{year}}/{{seq}}" }
    notify: { to: heads, template: regulation-adopted }
    end: adopted
  rejected:
    end: rejected
"#;

fn generated_roster(members: usize) -> String {
    let mut r = String::from("council: Crash Council\nmembers:\n");
    for i in 0..members {
        r.push_str(&format!("  - {{ id: M{i:03}, name: Member {i}, delegates: [{{ name: D{i}, email: m{i}@example.org, head: true }}] }}\n"));
    }
    r
}

/// One vote request, and the receipt it was acknowledged with (the hash of the record of
/// the vote; for a repeat of the current choice, that of the vote it repeats).
#[derive(Clone)]
struct Attempt {
    item: String,
    member: String,
    choice: String,
    receipt: Option<String>,
}

/// The receipt on a ballot page's answer.
fn receipt(page: &str) -> Option<String> {
    let code = &page[page.find("id=\"receipt\"")?..];
    Some(code[code.find('>')? + 1..code.find("</code>")?].to_string())
}

/// How a round of vote load ends.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// SIGKILL: the process dies, the kernel keeps what it was given.
    Kill,
    /// SIGKILL, then the data folder loses what was not fsynced (`lazyfs`).
    PowerCut,
}

/// A number from the environment of the test process, or a default.
fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every acknowledged vote is in the log, none is counted twice, chains verify, register
/// numbers have no gaps, every mail is sent or still pending: after each of many SIGKILLs
/// at random moments under concurrent vote load. `COUNCILD_CRASH_ROUNDS` sets the rounds
/// (default 4), `COUNCILD_CRASH_CLIENTS` the concurrent clients (default 16) and
/// `COUNCILD_CRASH_SEED` the seed; the long run is in docs/reliability.md.
#[tokio::test]
async fn random_kills_under_vote_load_lose_nothing_and_count_nothing_twice() {
    rounds_under_vote_load(Fault::Kill, env_or("COUNCILD_CRASH_ROUNDS", 4)).await;
}

/// The same rounds and invariants with a power cut at a random moment instead of a kill:
/// `data/` is a `lazyfs` mount, so whatever councild acknowledged without an fsync is gone
/// after the cut. `COUNCILD_POWERCUT_ROUNDS` sets the rounds (default 3); the clients and
/// the seed are the crash test's variables.
#[tokio::test]
async fn random_power_cuts_under_vote_load_lose_nothing_and_count_nothing_twice() {
    if let Err(why) = lazyfs::usable() {
        eprintln!("skipped: {why}");
        return;
    }
    rounds_under_vote_load(Fault::PowerCut, env_or("COUNCILD_POWERCUT_ROUNDS", 3)).await;
}

/// Rounds of concurrent vote load on two ballots of a 120-member council, each ended by
/// `fault` at a random moment, with `check` after every restart. Acknowledged votes found
/// lost are counted per round and reported at the end; any other broken invariant fails
/// at once.
async fn rounds_under_vote_load(fault: Fault, rounds: usize) {
    use rand::{Rng, SeedableRng};
    let seed: u64 = env_or("COUNCILD_CRASH_SEED", 7);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    const MEMBERS: usize = 120;
    let clients: usize = env_or("COUNCILD_CRASH_CLIENTS", 16);
    let council = Council::new(&generated_roster(MEMBERS), &[("rounds.yaml", ROUNDS)]);
    let (name, faults_are) = match fault {
        Fault::Kill => ("crash rounds", "kills"),
        Fault::PowerCut => ("power-cut rounds", "power cuts"),
    };
    // Power cuts: data/ is the layer's mount point, its backing folder beside it. The key
    // is there durably before the first start, so that these rounds measure votes; a key
    // lost at the first start is `a_power_cut_right_after_the_first_start_…`'s subject.
    let mut disk = (fault == Fault::PowerCut).then(|| {
        let backing = council.path().join("data.backing");
        councild::token::Key::load_or_create(&backing.join("secret.key")).unwrap();
        LazyFs::mount(&backing, &council.path().join("data")).unwrap()
    });
    let mut attempts: Vec<Attempt> = Vec::new();
    let (mut faults, mut acked_total) = (0, 0);
    // Acknowledged votes lost, in all and by the round whose fault lost them.
    let mut lost = Lost::default();
    let mut lost_by_round: Vec<String> = Vec::new();
    let mut tally = |round: usize, now: Lost| {
        let (n, examples) = now.since(&lost);
        if n > 0 {
            lost_by_round.push(format!(
                "round {round}: {n} lost, e.g. {}",
                examples.join(", ")
            ));
        }
        lost = now;
    };
    for round in 0..rounds {
        let daemon = Daemon::start(council.path(), FULL_CHECK);
        tally(round, check(&daemon, &council, &attempts, round).await);
        // Keep two ballots open.
        let (_, open) = daemon
            .admin(reqwest::Method::GET, "/api/items?status=open", None)
            .await;
        let mut items: Vec<String> = open["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        while items.len() < 2 {
            items.push(
                daemon
                    .start_item("crash-rounds", json!({"title": format!("round {round}")}))
                    .await,
            );
        }
        let key =
            councild::token::Key::load_or_create(&council.path().join("data/secret.key")).unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Attempt>::new()));
        let mut tasks = Vec::new();
        for client in 0..clients {
            let (items, key, log, public) = (
                items.clone(),
                key.clone(),
                log.clone(),
                daemon.public.clone(),
            );
            let mut rng =
                rand::rngs::StdRng::seed_from_u64(seed ^ ((round * clients + client) as u64 + 1));
            tasks.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let item = items[rng.gen_range(0..items.len())].clone();
                    let member = format!("M{:03}", rng.gen_range(0..MEMBERS));
                    let choice = ["yes", "yes", "no", "abstain"][rng.gen_range(0..4)].to_string();
                    let token = key.sign(&councild::token::BallotRef {
                        item: item.clone(),
                        ballot: 0,
                        member: member.clone(),
                        delegate: 0,
                    });
                    let index = {
                        let mut log = log.lock().unwrap();
                        log.push(Attempt {
                            item,
                            member,
                            choice: choice.clone(),
                            receipt: None,
                        });
                        log.len() - 1
                    };
                    match http
                        .post(format!("{public}/ballot/{token}"))
                        .form(&[("choice", &choice)])
                        .send()
                        .await
                    {
                        // Acknowledged once the whole answer, with its receipt, arrived.
                        Ok(r) if r.status() == 200 => match r.text().await {
                            Ok(page) => log.lock().unwrap()[index].receipt = receipt(&page),
                            Err(_) => return,
                        },
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(rng.gen_range(100..700))).await;
        daemon.kill();
        if let Some(mounted) = disk.take() {
            disk = Some(mounted.power_cut().expect("the power cut"));
        }
        faults += 1;
        for t in tasks {
            let _ = t.await;
        }
        let log = std::mem::take(&mut *log.lock().unwrap());
        acked_total += log.iter().filter(|a| a.receipt.is_some()).count();
        attempts.extend(log);
        if (round + 1) % 10 == 0 {
            eprintln!(
                "{name}: {} of {rounds}, {acked_total} acknowledged votes so far",
                round + 1
            );
        }
    }
    let daemon = Daemon::start(council.path(), FULL_CHECK);
    tally(rounds, check(&daemon, &council, &attempts, rounds).await);
    drop(daemon);
    if let Some(mounted) = disk {
        mounted.unmount().unwrap();
    }
    eprintln!(
        "{name}: {rounds} rounds, {faults} {faults_are}, {acked_total} acknowledged votes, {} lost, {} attempts, seed {seed}",
        lost.count(),
        attempts.len()
    );
    assert!(acked_total > 0);
    assert!(
        lost.count() == 0,
        "{name}: {} of {acked_total} acknowledged votes lost (seed {seed}):\n{}\n{}",
        lost.count(),
        lost_by_round.join("\n"),
        lost.details.join("\n"),
    );
}

/// Acknowledged votes missing from the logs, per item/member/choice, and the items gone
/// altogether (a new item may then take the same id).
#[derive(Default)]
struct Lost {
    votes: BTreeMap<String, usize>,
    gone: Vec<String>,
    /// For the first few lost votes: the receipt, and the member's vote records in the log.
    details: Vec<String>,
}

impl Lost {
    fn count(&self) -> usize {
        self.votes.values().sum()
    }

    /// What `self` lost that `before` had not: (how many, a few of them).
    fn since(&self, before: &Lost) -> (usize, Vec<String>) {
        let new: Vec<(&String, usize)> = self
            .votes
            .iter()
            .map(|(k, n)| (k, n - before.votes.get(k).copied().unwrap_or(0).min(*n)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let gone = self.gone.iter().filter(|id| !before.gone.contains(id));
        let mut examples: Vec<String> = gone.map(|id| format!("{id} gone")).collect();
        examples.extend(new.iter().take(3).map(|(k, n)| format!("{k} ×{n}")));
        (new.iter().map(|(_, n)| n).sum(), examples)
    }
}

/// The invariants, checked through the admin API and the mail folder.
/// Restarts replay every item's whole log and compare it with the stored state.
const FULL_CHECK: &[(&str, &str)] = &[("COUNCILD_STORAGE_CHECK_ON_START", "full")];

/// `round` is the round whose fault the restart followed (0: none yet), for the messages.
/// Lost acknowledged votes are returned; any other broken invariant panics.
async fn check(daemon: &Daemon, council: &Council, attempts: &[Attempt], round: usize) -> Lost {
    let after = format!("after round {round}");
    assert!(
        !daemon.log().contains("differs from its event log"),
        "{after}: start-up check found a mismatch:\n{}",
        daemon.log()
    );
    // Mail moves from the outbox to the mail folder, so the outbox is read first.
    let (_, outbox) = daemon
        .admin(reqwest::Method::GET, "/api/outbox", None)
        .await;
    let outbox: std::collections::BTreeSet<String> = outbox["mails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["status"] != "failed")
        .filter_map(|m| m["id"].as_str().map(String::from))
        .collect();
    // Requests per item, member and choice, and the acknowledged ones per item.
    let mut requests = BTreeMap::<&str, BTreeMap<(&str, &str), usize>>::new();
    let mut acknowledged = BTreeMap::<&str, Vec<&Attempt>>::new();
    for a in attempts {
        *requests
            .entry(a.item.as_str())
            .or_default()
            .entry((a.member.as_str(), a.choice.as_str()))
            .or_default() += 1;
        if a.receipt.is_some() {
            acknowledged.entry(a.item.as_str()).or_default().push(a);
        }
    }
    let (_, list) = daemon.admin(reqwest::Method::GET, "/api/items", None).await;
    let mut numbers = BTreeMap::<String, Vec<u64>>::new();
    let mut lost = Lost::default();
    for summary in list["items"].as_array().unwrap() {
        let id = summary["id"].as_str().unwrap();
        let item = daemon.item(id).await;
        assert_eq!(
            item["chain"]["verified"], true,
            "{after}: {id}: broken chain"
        );
        // Vote records by hash, and the last choice of each member.
        let mut records = BTreeMap::<String, (String, String)>::new();
        let mut logged = BTreeMap::<(String, String), usize>::new();
        let mut last = BTreeMap::<String, String>::new();
        for e in item["events"].as_array().unwrap() {
            if e["event"]["type"] == "vote_cast" {
                let member = e["event"]["member"].as_str().unwrap().to_string();
                let choice = e["event"]["choice"].as_str().unwrap().to_string();
                records.insert(
                    e["hash"].as_str().unwrap().to_string(),
                    (member.clone(), choice.clone()),
                );
                *logged.entry((member.clone(), choice.clone())).or_default() += 1;
                last.insert(member, choice);
                // Its receipt is still waiting in the outbox (listed first), or was sent.
                let receipt = format!("{id}.{}.0.0", e["seq"]);
                let pending = outbox.contains(&receipt);
                let sent = council.mail_dir().join(format!("{receipt}.eml")).exists();
                assert!(
                    pending || sent,
                    "{after}: {receipt}: the receipt was neither sent nor pending"
                );
            }
        }
        // Every acknowledged vote is in the log, under its receipt: nothing lost.
        for a in acknowledged.remove(id).unwrap_or_default() {
            let found = a.receipt.as_ref().and_then(|r| records.get(r));
            if found != Some(&(a.member.clone(), a.choice.clone())) {
                *lost
                    .votes
                    .entry(format!("{id}/{}/{}", a.member, a.choice))
                    .or_default() += 1;
                if lost.details.len() < 5 {
                    let theirs: Vec<String> = item["events"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|e| e["event"]["member"] == a.member.as_str())
                        .map(|e| {
                            let hash = e["hash"].as_str().unwrap_or_default();
                            format!("{} {} {}", e["seq"], e["event"]["choice"], &hash[..8])
                        })
                        .collect();
                    let receipt = a.receipt.as_deref().unwrap_or_default();
                    lost.details.push(format!(
                        "{id}/{}/{}: receipt {}, found {found:?}; the member's records: {theirs:?}",
                        a.member,
                        a.choice,
                        &receipt[..receipt.len().min(8)]
                    ));
                }
            }
        }
        // Each request is applied at most once: nothing counted twice.
        let requested = requests.remove(id).unwrap_or_default();
        for ((member, choice), n) in &logged {
            let tried = requested
                .get(&(member.as_str(), choice.as_str()))
                .copied()
                .unwrap_or_default();
            assert!(
                *n <= tried,
                "{after}: {id}/{member}/{choice}: {n} in the log for {tried} requests (counted twice)"
            );
        }
        // The tally counts each member once, with the last choice the log holds.
        for (choice, n) in item["ballots"][0]["counts"].as_object().unwrap() {
            let in_log = last.values().filter(|c| *c == choice).count() as u64;
            assert_eq!(
                n.as_u64(),
                Some(in_log),
                "{after}: {id}: {choice} counted {n}, the log's last votes say {in_log}"
            );
        }
        if let Some(n) = item["register_number"].as_str() {
            numbers
                .entry(n.rsplit_once('/').unwrap().0.to_string())
                .or_default()
                .push(n.rsplit('/').next().unwrap().parse().unwrap());
        }
    }
    for (series, mut n) in numbers {
        n.sort();
        assert_eq!(
            n,
            (1..=n.len() as u64).collect::<Vec<_>>(),
            "{after}: {series}: numbers with gaps or repeats"
        );
    }
    // An item that is gone lost every vote acknowledged on it.
    for (id, votes) in acknowledged {
        for a in votes {
            *lost
                .votes
                .entry(format!("{id}/{}/{}", a.member, a.choice))
                .or_default() += 1;
        }
        lost.gone.push(id.to_string());
    }
    lost
}

/// A power cut as soon as the daemon first listens on a fresh folder: it starts again, with
/// the secret key (every ballot link is signed with it) and the admin token it made then.
#[tokio::test]
async fn a_power_cut_right_after_the_first_start_leaves_a_daemon_that_starts() {
    if let Err(why) = lazyfs::usable() {
        eprintln!("skipped: {why}");
        return;
    }
    let council = Council::new(&generated_roster(3), &[("rounds.yaml", ROUNDS)]);
    let data = council.path().join("data");
    let disk = LazyFs::mount(&council.path().join("data.backing"), &data).unwrap();
    // No admin token in the environment: the daemon makes data/admin.token.
    let env = &[("COUNCILD_ADMIN_TOKEN", "")];
    let read =
        |file: &str| std::fs::read_to_string(data.join(file)).unwrap_or_else(|e| format!("({e})"));
    let daemon = Daemon::start(council.path(), env);
    let made = (read("secret.key"), read("admin.token"));
    daemon.kill();
    let disk = disk.power_cut().unwrap();
    let after = (read("secret.key"), read("admin.token"));
    let restarted = Daemon::try_start(council.path(), env);
    if let Err(log) = &restarted {
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        panic!(
            "councild does not start after a power cut right after its first start \
             (secret.key {:?}, was {:?}):\n{}",
            after.0,
            made.0,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    assert_eq!(
        after.0, made.0,
        "data/secret.key changed: every mailed link is void"
    );
    assert_eq!(after.1, made.1, "data/admin.token changed");
    drop(restarted);
    disk.unmount().unwrap();
}

/// The record of each item as the daemon reads it back: its events' hashes, stage and
/// register number.
async fn records(daemon: &Daemon, items: &[String]) -> Vec<Value> {
    let mut all = Vec::new();
    for id in items {
        let item = daemon.item(id).await;
        let hashes: Vec<Value> = item["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["hash"].clone())
            .collect();
        all.push(json!([id, item["stage"], item["register_number"], hashes]));
    }
    all
}

/// `councild compact` refused while the daemon runs, then killed at random moments, each
/// kill followed by a power cut when `lazyfs` is usable: every start after finds every item
/// with its whole log, and nothing left beside the store; a compaction run to its end is
/// durable at once.
#[tokio::test]
async fn a_compaction_killed_or_cut_anywhere_leaves_the_whole_store() {
    use rand::{Rng, SeedableRng};
    const MEMBERS: usize = 20;
    let mut rng = rand::rngs::StdRng::seed_from_u64(env_or("COUNCILD_CRASH_SEED", 7));
    let council = Council::new(&generated_roster(MEMBERS), &[("rounds.yaml", ROUNDS)]);
    let data = council.path().join("data");
    let mut disk = match lazyfs::usable() {
        Ok(()) => {
            let backing = council.path().join("data.backing");
            councild::token::Key::load_or_create(&backing.join("secret.key")).unwrap();
            Some(LazyFs::mount(&backing, &data).unwrap())
        }
        Err(why) => {
            eprintln!("kills only, no power cuts: {why}");
            None
        }
    };
    let daemon = Daemon::start(council.path(), &[]);
    let key = councild::token::Key::load_or_create(&data.join("secret.key")).unwrap();
    let mut items = Vec::new();
    for (n, voters) in [(0, MEMBERS), (1, MEMBERS), (2, MEMBERS / 2)] {
        let id = daemon
            .start_item("crash-rounds", json!({"title": format!("item {n}")}))
            .await;
        for m in 0..voters {
            let token = key.sign(&councild::token::BallotRef {
                item: id.clone(),
                ballot: 0,
                member: format!("M{m:03}"),
                delegate: 0,
            });
            let link = format!("{}/ballot/{token}", daemon.public);
            let (status, _) = daemon.vote(&link, ["yes", "no"][m % 3 / 2]).await;
            assert_eq!(status, 200, "a vote in {id}");
        }
        items.push(id);
    }
    let before = records(&daemon, &items).await;
    assert_eq!(
        before[0][1], "adopt",
        "the first ballot closed: {}",
        before[0]
    );
    let (code, out) = council.run(&["compact"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("stop the daemon first"), "{out}");
    daemon.kill();

    // A whole compaction first, to know how long one takes: the kills fall within that.
    let started = std::time::Instant::now();
    let (code, out) = council.run(&["compact"]);
    assert_eq!(code, 0, "{out}");
    let whole_ms = (started.elapsed().as_millis() as u64).max(20);
    let (mut finished, mut interrupted) = (0, 0);
    for round in 0..8 {
        let mut compact = councild()
            .arg("compact")
            .current_dir(council.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..whole_ms)));
        match compact.try_wait().unwrap() {
            Some(status) => {
                let mut said = String::new();
                if let Some(mut err) = compact.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut err, &mut said);
                }
                assert!(
                    status.success(),
                    "round {round}: compact failed on its own: {said}"
                );
                finished += 1;
            }
            None => interrupted += 1,
        }
        let _ = compact.kill();
        let _ = compact.wait();
        if let Some(d) = disk.take() {
            disk = Some(d.power_cut().unwrap());
        }
        let daemon = Daemon::start(council.path(), &[]);
        assert_eq!(
            records(&daemon, &items).await,
            before,
            "round {round}: the store after the fault is not the one before"
        );
        for leftover in ["store.compact", "store.old"] {
            assert!(
                !data.join(leftover).exists(),
                "round {round}: {leftover} left"
            );
        }
        daemon.kill();
    }
    eprintln!(
        "compactions of {whole_ms} ms: {interrupted} killed while running, {finished} ended before the kill"
    );
    assert!(interrupted > 0, "no kill fell during a compaction");
    let (code, out) = council.run(&["compact"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("compacted") && out.contains("checked"),
        "{out}"
    );
    let (code, out) = council.run(&["--json", "compact"]);
    assert_eq!(code, 0, "{out}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    if let Some(d) = disk.take() {
        disk = Some(d.power_cut().unwrap());
    }
    // The compacted store, not the one before, is what the cut left.
    assert_eq!(
        councild::store::folder_bytes(&data.join("store")),
        answer["bytes_after"].as_u64().unwrap()
    );
    let daemon = Daemon::start(council.path(), &[]);
    assert_eq!(records(&daemon, &items).await, before);
    daemon.kill();
    if let Some(d) = disk {
        d.unmount().unwrap();
    }
}
