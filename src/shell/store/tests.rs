//! The store on a temporary folder, and the fixture of an older build's store.

use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::definition::{self, Definitions, Known};
use crate::engine::{Status, Timer};

#[test]
fn timer_keys_sort_by_due_and_round_trip() {
    let a = TimerKey {
        due: Utc.timestamp_millis_opt(1_000).unwrap(),
        owner: Owner::Item("item-9".into(), Timer::Close(0)),
    };
    let b = TimerKey {
        due: Utc.timestamp_millis_opt(2_000).unwrap(),
        owner: Owner::Schedule("council-session".into()),
    };
    assert!(a.encode() < b.encode());
    // The bytes are those the store has always had.
    assert_eq!(&a.encode()[8..], b"item-9\0close:0");
    assert_eq!(&b.encode()[8..], b"@schedule/council-session\0start");
    assert_eq!(TimerKey::decode(&a.encode()), Some(a));
    assert_eq!(TimerKey::decode(&b.encode()), Some(b));
    assert_eq!(TimerKey::decode(b"short"), None);
}

fn item_with_votes() -> Item {
    use crate::engine::{Ballot, Status, Voter};
    let at = Utc.timestamp_millis_opt(0).unwrap();
    let voter = |m: &str| Voter {
        member: m.into(),
        member_name: m.into(),
        delegate: 0,
        name: m.into(),
        email: format!("{m}@example.org"),
        language: "en".into(),
        attributes: Default::default(),
        groups: Vec::new(),
    };
    let electorate = Arc::new(Electorate::new(vec![voter("AAA"), voter("BBB")]));
    let mut item = Item {
        id: "item-1".into(),
        workflow: "w".into(),
        version: "v".into(),
        inputs: Default::default(),
        started_at: at,
        stage: "vote".into(),
        entered_at: at,
        status: Status::Open,
        outcome: None,
        register_number: None,
        ballots: vec![Ballot {
            stage: "vote".into(),
            question: "?".into(),
            choices: vec!["yes".into(), "no".into()],
            opened_at: at,
            closes_at: at,
            electorate,
            members: 2,
            votes: Default::default(),
            result: None,
            recorded: false,
            seed: String::new(),
            in_session: false,
            room: None,
            texts: Default::default(),
            amendment: None,
            round: None,
            sealed: None,
        }],
        signals: Vec::new(),
        timers: Default::default(),
        awaiting: None,
        seq: 3,
        head: "h".into(),
        meeting: None,
        documents: Default::default(),
        amendments: Vec::new(),
        candidates: Vec::new(),
        standing: Vec::new(),
        elected: Vec::new(),
        trust: None,
    };
    assert!(item.ballots[0].record("AAA", "yes"));
    item
}

#[tokio::test]
async fn an_item_is_stored_in_rows_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let item = item_with_votes();
    let mut batch = Batch::default();
    store.stage_item(&item, &mut batch).unwrap();
    store.commit(&batch).await.unwrap();
    assert_eq!(store.item("item-1").unwrap(), Some(item.clone()));
    // A row of another item, before and after it in key order, is not taken for its own.
    let mut other = item.clone();
    for id in ["item-0", "item-10"] {
        other.id = id.into();
        let mut batch = Batch::default();
        store.stage_item(&other, &mut batch).unwrap();
        store.commit(&batch).await.unwrap();
    }
    let all: Vec<(String, Item)> = store
        .items()
        .map(|r| r.map(|(id, item)| (id, item.unwrap())).unwrap())
        .collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all[1], ("item-1".to_string(), item.clone()));
    let row = store.items.get("item-1").unwrap().unwrap();
    assert!(row.len() < 1_000, "no voters in the item's row");

    // A vote row added behind the store's back, then an edited item row: both refused.
    store
        .votes
        .insert(vote_key("item-1", 0, "BBB"), "no")
        .unwrap();
    let err = store.item("item-1").unwrap_err().to_string();
    assert!(err.contains("vote rows"), "{err}");
    let mut edited = row.to_vec();
    let last = edited.len() - 2;
    edited[last] ^= 1;
    store.items.insert("item-1", edited).unwrap();
    let err = store.item("item-1").unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");

    // The end row: edited, of another body, or missing: refused as well.
    store.items.insert("item-1", row.clone()).unwrap();
    store.votes.remove(vote_key("item-1", 0, "BBB")).unwrap();
    assert_eq!(store.item("item-1").unwrap(), Some(item.clone()));
    let end = store.ends.get("item-1").unwrap().unwrap();
    let mut edited = end.to_vec();
    let last = edited.len() - 2;
    edited[last] ^= 1;
    store.ends.insert("item-1", edited).unwrap();
    let err = store.item("item-1").unwrap_err().to_string();
    assert!(err.contains("checksum"), "{err}");
    let mut other = item.clone();
    other.stage = "elsewhere".into();
    store
        .ends
        .insert("item-1", encode_item(&other).end)
        .unwrap();
    let err = store.item("item-1").unwrap_err().to_string();
    assert!(err.contains("another body"), "{err}");
    store.ends.remove("item-1").unwrap();
    let err = store.item("item-1").unwrap_err().to_string();
    assert!(err.contains("no end row"), "{err}");
}

#[test]
fn a_second_open_of_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Store::open(dir.path()).unwrap();
    let second = Store::open(dir.path());
    assert!(
        matches!(second, Err(Error::InUse(..))),
        "{:?}",
        second.err()
    );
}

/// A start that failed while sled wrote a snapshot (a full disk) leaves an empty
/// `snap.N.generating`, which sled would read as the newest snapshot: the store opens all
/// the same, with everything that was committed.
#[tokio::test]
async fn an_unfinished_snapshot_does_not_keep_the_store_closed() {
    let dir = tempfile::tempdir().unwrap();
    let item = item_with_votes();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut batch = Batch::default();
        store.stage_item(&item, &mut batch).unwrap();
        store.commit(&batch).await.unwrap();
    }
    let unfinished = dir.path().join("snap.7FFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, b"").unwrap();
    // The last handle on the first store may still be let go by the sync's blocking
    // thread: its lock is released a moment later.
    let mut store = Store::open(dir.path());
    for _ in 0..50 {
        if !matches!(store, Err(Error::InUse(..))) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        store = Store::open(dir.path());
    }
    let store = store.unwrap();
    assert_eq!(store.item("item-1").unwrap(), Some(item));
    assert!(!unfinished.exists());
}

/// Opens the store, again while the last handle of the one before still lets go of its lock
/// (the sync's blocking thread may hold it a moment longer).
async fn open_when_free(path: &Path) -> Store {
    for _ in 0..50 {
        match Store::open(path) {
            Err(Error::InUse(..)) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stays locked", path.display());
}

/// Compaction keeps every row and shrinks a store whose rows were overwritten and removed
/// (as mail is, once sent); interrupted at any point (each state of the folder it passes
/// through), the next open finds one whole store and nothing left beside it.
#[tokio::test]
async fn compaction_keeps_every_row_and_an_interrupted_one_leaves_one_whole_store() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("store");
    let (copy, old) = (
        root.path().join("store.compact"),
        root.path().join("store.old"),
    );
    let item = item_with_votes();
    {
        let store = Store::open(&path).unwrap();
        for i in 0..2_000 {
            store
                .put_mail(&format!("m{i}"), &"x".repeat(2_000))
                .unwrap();
        }
        for i in 0..2_000 {
            assert!(store.remove_mail(&format!("m{i}")).unwrap());
        }
        let mut batch = Batch::default();
        store.stage_item(&item, &mut batch).unwrap();
        store.commit(&batch).await.unwrap();
        assert!(store.live_bytes().unwrap() < 20_000);
    }
    drop(open_when_free(&path).await);
    let done = compact(&path).unwrap();
    assert!(
        done.after * 2 < done.before,
        "{} bytes on disk before, {} after",
        done.before,
        done.after
    );
    assert!(done.rows >= 3 && done.trees >= 9, "{done:?}");
    let whole = |store: &Store| {
        assert_eq!(store.item("item-1").unwrap(), Some(item.clone()));
        assert_eq!(store.mails::<String>().count(), 0);
        assert_eq!(
            store.meta.get("other").unwrap(),
            None,
            "the wrong store was kept"
        );
        assert!(!copy.exists() && !old.exists() && !path.join("compacted").exists());
    };
    whole(&open_when_free(&path).await);

    // A copy of the store, told apart by a row of its own, with the marker or not.
    let other_copy = |to: &Path, marker: bool| {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(&path).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
        let db = open_db(to).unwrap();
        db.open_tree("meta").unwrap().insert("other", "1").unwrap();
        db.flush().unwrap();
        if marker {
            std::fs::write(to.join("compacted"), b"").unwrap();
        }
    };
    // Killed while copying: a part of a copy beside the store.
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(copy.join("db"), b"half a log").unwrap();
    whole(&open_when_free(&path).await);
    // Killed between the renames: no store, the old one, and a whole copy beside it; the
    // old one comes back.
    other_copy(&copy, true);
    std::fs::rename(&path, &old).unwrap();
    whole(&open_when_free(&path).await);
    // Killed before the old store was removed: the new one (with the marker) stays.
    other_copy(&old, false);
    std::fs::write(path.join("compacted"), b"").unwrap();
    whole(&open_when_free(&path).await);
    // A `store.old` beside a store that is not the compacted one: nothing is removed and
    // the start is refused.
    other_copy(&old, false);
    let refused = Store::open(&path).err().map(|e| e.to_string());
    assert!(
        refused.as_deref().is_some_and(|e| e.contains("move one")),
        "{refused:?}"
    );
    assert!(old.exists());
    std::fs::remove_dir_all(&old).unwrap();
    // A compaction while the store is open is refused, and leaves it as it was; so is one
    // where there is no store.
    let open = open_when_free(&path).await;
    assert!(matches!(compact(&path), Err(Error::InUse(..))));
    whole(&open);
    drop(open);
    let nowhere = root.path().join("none/store");
    assert!(compact(&nowhere).is_err());
    assert!(!nowhere.join("db").exists());
}

/// A store written by the build before the stored form had a module of its own (commit
/// 23da507, `tests/fixtures/make-store.sh`) opens, and every value in it decodes and
/// encodes again to the very same bytes; every item is whole, ends where its log ends, has
/// a sound chain and replays from its log to exactly its stored state.
#[test]
fn a_store_of_an_older_build_reads_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1.tar.gz");
    let untar = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(untar.success(), "{archive:?}");
    let store = Store::open(&dir.path().join("store")).unwrap();
    let tz: chrono_tz::Tz = "Europe/Istanbul".parse().unwrap();

    let mut definitions = Definitions::default();
    let known = Known {
        templates: None,
        roster: None,
    };
    for (version, source) in store.definitions().unwrap() {
        let w = definition::load(&source, &known).unwrap();
        assert_eq!(w.version, version, "a definition is stored under its hash");
        definitions.insert_old(w);
    }

    let items: Vec<(String, Item)> = store
        .items()
        .map(|r| {
            let (id, item) = r.unwrap();
            (id.clone(), item.unwrap_or_else(|e| panic!("{id}: {e}")))
        })
        .collect();
    let ids: Vec<&str> = items.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["item-1", "item-2", "item-3", "item-4", "item-5", "item-6"]
    );
    for (id, item) in &items {
        // The old single row holds what the body and end rows of today hold, the same.
        let row = store.items.get(id).unwrap().unwrap();
        assert_eq!(
            store.ends.get(id).unwrap(),
            None,
            "{id}: an old store has no ends"
        );
        let (cast, mut old): (serde_json::Value, serde_json::Value) =
            serde_json::from_slice(&row[1 + CHECKSUM..]).unwrap();
        let seq = old.as_object_mut().unwrap().remove("seq").unwrap();
        let head = old.as_object_mut().unwrap().remove("head").unwrap();
        let rows = encode_item(item);
        let body: serde_json::Value = serde_json::from_slice(&rows.body[1 + CHECKSUM..]).unwrap();
        assert_eq!(body, old, "{id}: the body row");
        let end: serde_json::Value = serde_json::from_slice(&rows.end[1 + CHECKSUM..]).unwrap();
        assert_eq!(
            (&end["seq"], &end["head"], &end["cast"]),
            (&seq, &head, &cast),
            "{id}: the end row"
        );
        let (_, again) = decode_item(id, &rows.body, Some(&rows.end)).unwrap();
        assert_eq!(again.seq, item.seq, "{id}");
        assert_eq!(again.head, item.head, "{id}");
        assert!(store.log_ends_at(id, item.seq, &item.head).unwrap(), "{id}");
        assert_eq!(store.verify_chain(id).unwrap(), None, "{id}: the chain");
        let mut log = Vec::new();
        for row in store.events.scan_prefix(item_prefix(id)) {
            let (k, v) = row.unwrap();
            let record: Record = decode(&k, &v).unwrap();
            assert_eq!(encode(&record), v.to_vec(), "{id}: event {}", record.seq);
            log.push(record);
        }
        let replayed =
            crate::engine::replay(|v| definitions.version(v).map(|w| &**w), tz, id, &log)
                .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(replayed.as_ref(), Some(item), "{id}: replayed from its log");
    }

    // What the script did, as the secretariat would read it back.
    let item = |id: &str| &items.iter().find(|(i, _)| i == id).unwrap().1;
    assert_eq!(item("item-1").outcome.as_deref(), Some("adopted"));
    assert!(
        item("item-1")
            .register_number
            .as_deref()
            .unwrap()
            .starts_with("FIX/REG/")
    );
    assert_eq!(
        item("item-1").ballots[0].vote("AAA"),
        Some("yes"),
        "the changed vote"
    );
    assert_eq!(item("item-2").status, Status::Ended);
    assert!(
        item("item-2").ballots[0]
            .result
            .as_ref()
            .unwrap()
            .explanation
            .contains("by lot")
    );
    assert_eq!(item("item-3").signals.len(), 2);
    assert_eq!(item("item-3").signals[1].data["pages"], 3.5);
    assert_eq!(item("item-4").ballots[0].cast(), 1);
    assert_eq!(
        item("item-4").ballots[0].closes_at.to_rfc3339(),
        "2099-01-01T09:00:00+00:00"
    );
    assert!(item("item-4").timers.contains_key(&Timer::Close(0)));
    assert_eq!(item("item-5").outcome.as_deref(), Some("cancelled"));

    let mut timers = 0;
    for k in store.timers.iter().keys() {
        let k = k.unwrap();
        let key = TimerKey::decode(&k).unwrap();
        assert_eq!(key.encode(), k.to_vec(), "{key:?}");
        timers += 1;
    }
    assert!(timers >= 2, "item-4's deadline and reminder are pending");
    let mut mails = 0;
    for row in store.outbox.iter() {
        let (k, v) = row.unwrap();
        let mail: crate::mail::Mail = decode(&k, &v).unwrap();
        // A mail row now leaves out the fields at their default: the same mail reads back.
        let again: crate::mail::Mail = decode(&k, &encode(&mail)).unwrap();
        assert_eq!(again, mail);
        assert!(encode(&mail).len() <= v.len(), "mail {}", mail.id);
        mails += 1;
    }
    assert!(
        mails >= 4,
        "item-6's ballot mails wait in the outbox: {mails}"
    );
    let acts: Vec<Act> = store.acts().map(Result::unwrap).collect();
    assert!(!acts.is_empty());
    for row in store.registers.iter() {
        let (k, v) = row.unwrap();
        assert_eq!(encode(&decode::<Act>(&k, &v).unwrap()), v.to_vec());
    }
    for row in store.electorates.iter() {
        let (k, v) = row.unwrap();
        let e: Electorate = decode(&k, &v).unwrap();
        assert_eq!(e.id().as_bytes(), &*k);
        assert_eq!(encode(&e), v.to_vec());
    }

    // Made with sled's 512 KB segments, the store keeps them when opened, and `compact`
    // moves it to councild's own size, every item as it was.
    let path = dir.path().join("store");
    assert_eq!(segment_size(&path), 512 << 10);
    drop(store);
    compact(&path).unwrap();
    assert_eq!(segment_size(&path), SEGMENT_BYTES);
    let store = Store::open(&path).unwrap();
    for (id, item) in &items {
        assert_eq!(store.item(id).unwrap().as_ref(), Some(item), "{id}");
    }
    let new = tempfile::tempdir().unwrap();
    drop(Store::open(&new.path().join("store")).unwrap());
    assert_eq!(segment_size(&new.path().join("store")), SEGMENT_BYTES);
}

#[tokio::test]
async fn shared_mail_data_is_swept_once_no_mail_names_it_and_the_writer_let_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // A mail row names its shared data under `s`; one written by an earlier build, under
    // `shared`.
    let row = |id: &str, name: &str, shared: &str| {
        let mail = serde_json::json!({ "id": id, (name): shared });
        (id.as_bytes().to_vec(), encode(&mail))
    };
    let data = serde_json::json!({ "item": { "title": "Regulation" } });
    let mut batch = Batch::default();
    for key in ["item-1.3", "item-1.4.0", "item-2.5"] {
        batch
            .contexts
            .push((key.as_bytes().to_vec(), encode(&data)));
    }
    // A receipt still to send names item-1.3; a notice's recipients item-1.4.0; item-2.5
    // is the writer's, for receipts it has yet to stage.
    batch.outbox.push(row("item-1.3.0.0", "s", "item-1.3"));
    batch.outbox.push(row("item-1.4.0.0", "s", "item-1.4.0"));
    batch
        .outbox
        .push(row("item-1.4.0.1", "shared", "item-1.4.0"));
    store.hold_context("item-2.5");
    store.commit(&batch).await.unwrap();
    assert_eq!(store.sweep_contexts().unwrap(), 0);
    assert_eq!(
        store.context::<serde_json::Value>("item-1.3").unwrap(),
        Some(data.clone())
    );

    // Sent: the receipt and one of the notices.
    store.remove_mail("item-1.3.0.0").unwrap();
    store.remove_mail("item-1.4.0.0").unwrap();
    assert_eq!(store.sweep_contexts().unwrap(), 1);
    assert_eq!(
        store.context::<serde_json::Value>("item-1.3").unwrap(),
        None
    );
    assert!(
        store
            .context::<serde_json::Value>("item-1.4.0")
            .unwrap()
            .is_some()
    );

    store.remove_mail("item-1.4.0.1").unwrap();
    store.release_contexts(["item-2.5".to_string()]);
    assert_eq!(store.sweep_contexts().unwrap(), 2);
    assert_eq!(store.context_count(), 0);
}
