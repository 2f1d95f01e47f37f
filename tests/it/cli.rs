//! The CLI against a running daemon: start an item, record signals, read the status.

use std::process::Stdio;

use crate::harness::{Council, ROSTER, repo};

#[tokio::test]
async fn the_statute_is_ratified_through_the_cli() {
    let roster = std::fs::read_to_string(repo().join("config/council.yaml")).unwrap();
    let workflow =
        std::fs::read_to_string(repo().join("workflows/statute-ratification.yaml")).unwrap();
    let council = Council::new(&roster, &[("statute-ratification.yaml", &workflow)]);
    let daemon = council.start();

    let (code, out) = daemon.cli(&[
        "start",
        "statute-ratification",
        "--input",
        "title=Statute of the CPCC",
    ]);
    assert_eq!(code, 0, "{out}");
    let id = out.trim().to_string();
    assert_eq!(id, "item-1");

    let members = [
        "TUR", "AZE", "PAK", "MYS", "IDN", "SAU", "EGY", "QAT", "KWT", "JOR", "MAR", "DZA", "TUN",
        "SEN", "NGA", "BGD", "KAZ", "UZB",
    ];
    for m in members {
        let (code, out) = daemon.cli(&[
            "signal",
            &id,
            "ratification_deposited",
            "--member",
            m,
            "--data",
            r#"{"deposited": "2026-11-25"}"#,
        ]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("at stage open-for-ratification"), "{out}");
    }
    let (code, out) = daemon.cli(&["signal", &id, "ratification_deposited", "--member", "XXX"]);
    assert_eq!(code, 1);
    assert!(out.contains("no member `XXX`"), "{out}");
    let (code, out) = daemon.cli(&["signal", &id, "ratification_deposited", "--member", "OMN"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("at stage pending-entry-into-force"),
        "the 19th deposit: {out}"
    );
    let (code, out) = daemon.cli(&["signal", &id, "ratification_deposited", "--member", "IRN"]);
    assert_eq!(code, 1, "no more deposits expected at this stage: {out}");
    assert!(out.contains("does not accept signal"), "{out}");

    let (code, out) = daemon.cli(&["status", &id, "--json"]);
    assert_eq!(code, 0, "{out}");
    let item: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(item["signals"].as_array().unwrap().len(), 19);
    assert_eq!(item["chain"]["verified"], true);
    let (code, out) = daemon.cli(&["status", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"pending-entry-into-force\": 1"), "{out}");
    let (code, table) = daemon.cli(&["status"]);
    assert_eq!(code, 0);
    let line = table
        .lines()
        .find(|l| l.contains("pending-entry-into-force"))
        .unwrap_or_default();
    assert!(
        line.split_whitespace()
            .eq(["statute-ratification", "pending-entry-into-force", "1"]),
        "{table}"
    );
    let (code, table) = daemon.cli(&["items", "--status", "open"]);
    assert_eq!(code, 0);
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("item-1") && l.contains("Statute of the CPCC")),
        "{table}"
    );
    let (code, table) = daemon.cli(&["item", &id]);
    assert_eq!(code, 0);
    assert!(table.contains("event chain: verified"), "{table}");

    let admin = daemon.admin.clone();
    daemon.kill();
    let out = crate::harness::councild()
        .args(["start", "statute-ratification", "--input", "title=x"])
        .current_dir(council.path())
        .env("COUNCILD_ADMIN_LISTEN", admin.trim_start_matches("http://"))
        .env("COUNCILD_ADMIN_TOKEN", "a-token-long-enough")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("councild is not running at {admin}")),
        "{stderr}"
    );
}

/// A reader that stops early (`councild status | head -1`) is no error: every printing
/// command ends quietly with its own exit code, also after it changed something.
#[tokio::test]
async fn output_cut_short_ends_each_command_quietly() {
    let workflow =
        std::fs::read_to_string(repo().join("workflows/statute-ratification.yaml")).unwrap();
    let council = Council::new(ROSTER, &[("statute-ratification.yaml", &workflow)]);
    let daemon = council.start();
    for args in [
        &["start", "statute-ratification", "--input", "title=Statute"][..],
        &["status"],
        &["items"],
        &["item", "item-1"],
        &["reload"],
        &["validate"],
        &["--json", "status"],
    ] {
        let mut child = daemon
            .cli_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the command writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert_eq!(daemon.item("item-1").await["chain"]["verified"], true);
}

/// A misspelt `COUNCILD_*` variable is refused, naming it, as an unknown key in the file is.
#[test]
fn an_unknown_councild_variable_is_refused() {
    let council = Council::new(ROSTER, &[]);
    for command in ["validate", "serve"] {
        let out = crate::harness::councild()
            .arg(command)
            .current_dir(council.path())
            .env("COUNCILD_MAIL_SMTP", "smtp://127.0.0.1:2525")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("unknown environment variable COUNCILD_MAIL_SMTP;"),
            "{command}: {stderr}"
        );
        assert!(stderr.contains("COUNCILD_MAIL_SMTP_URL"), "{stderr}");
    }
}

/// An admin token file left empty (a crash while it was written, a careless edit) must not
/// open the admin side to an empty cookie: the daemon refuses to start and says why.
#[test]
fn an_empty_admin_token_file_is_refused() {
    let council = Council::new(ROSTER, &[]);
    std::fs::create_dir_all(council.path().join("data")).unwrap();
    for text in ["", " \n", "short\n"] {
        std::fs::write(council.path().join("data/admin.token"), text).unwrap();
        let (code, out) = council.run(&["serve"]);
        assert_eq!(code, 1, "{text:?}: {out}");
        assert!(
            out.contains("holds no token of at least 16 characters"),
            "{out}"
        );
    }
}
