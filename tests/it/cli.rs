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
    let (code, out) = daemon.cli(&["next", &id]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("is moved on by hand; this one waits for its time"),
        "{out}"
    );
    let (code, out) = daemon.cli(&["signal", &id, "ratification_deposited", "--member", "XXX"]);
    assert_eq!(code, 1);
    assert!(out.contains("no member `XXX`"), "{out}");
    // A state deposits once; a withdrawal takes it out of the count until it deposits again.
    let (code, out) = daemon.cli(&["signal", &id, "ratification_deposited", "--member", "TUR"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`TUR` has already sent `ratification_deposited`"),
        "{out}"
    );
    let (code, out) = daemon.cli(&["signal", &id, "ratification_withdrawn", "--member", "IRN"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`IRN` has nothing standing to withdraw"),
        "{out}"
    );
    let (code, out) = daemon.cli(&["signal", &id, "ratification_withdrawn", "--member", "UZB"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ratification_deposited: 17 of 19") && out.contains("withdrawn: UZB"),
        "{out}"
    );
    let (code, out) = daemon.cli(&["signal", &id, "ratification_deposited", "--member", "UZB"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ratification_deposited: 18 of 19 (TUR, AZE,"),
        "{out}"
    );
    let item = daemon.item(&id).await;
    let p = &item["signal_progress"];
    assert_eq!(
        (p["count"].as_u64(), p["needed"].as_u64()),
        (Some(18), Some(19)),
        "{p}"
    );
    assert_eq!(p["standing"][0]["member"], "TUR", "{p}");
    let (_, table) = daemon.cli(&["item", &id]);
    assert!(
        table.contains("ratification_deposited: 18 of 19"),
        "{table}"
    );
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
    assert_eq!(
        item["signals"].as_array().unwrap().len(),
        21,
        "with the withdrawal and the new deposit"
    );
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
    // Times in the council's zone (Istanbul by default), to the second, the zone named.
    let first_event = table
        .lines()
        .skip_while(|l| !l.starts_with("#  "))
        .nth(1)
        .unwrap_or_default();
    let words: Vec<&str> = first_event.split_whitespace().collect();
    assert!(
        words.len() >= 5
            && chrono::NaiveDate::parse_from_str(words[1], "%Y-%m-%d").is_ok()
            && chrono::NaiveTime::parse_from_str(words[2], "%H:%M:%S").is_ok()
            && words[3] == "+03",
        "{first_event:?} in\n{table}"
    );

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

/// Completions for the three shells and the manual page, generated from the command line's
/// own definition: the bash script parses, the page renders, and both know every command.
#[test]
fn completions_and_the_manual_page_cover_every_command() {
    let council = Council::new(ROSTER, &[]);
    let commands = [
        "serve",
        "validate",
        "start",
        "status",
        "items",
        "item",
        "signal",
        "cancel",
        "extend",
        "reload",
        "outbox",
        "simulate",
        "completions",
        "man",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let (code, script) = council.run(&["completions", shell]);
        assert_eq!(code, 0, "{script}");
        for c in commands {
            assert!(script.contains(c), "{shell} completions lack `{c}`");
        }
    }
    // What the binary says about itself needs no configuration (packaging runs it so).
    let packaged = crate::harness::councild()
        .args(["completions", "bash"])
        .env("COUNCILD_MISSPELT_SETTING", "x")
        .output()
        .unwrap();
    assert!(
        packaged.status.success(),
        "{}",
        String::from_utf8_lossy(&packaged.stderr)
    );
    let (_, bash) = council.run(&["completions", "bash"]);
    let checked = std::process::Command::new("bash")
        .args(["-n", "-c", &bash])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let (code, page) = council.run(&["man"]);
    assert_eq!(code, 0, "{page}");
    assert!(page.contains(".TH councild 1"), "{page}");
    // As a reader sees it, when the machine has man's formatter.
    if let Ok(mut nroff) = std::process::Command::new("nroff")
        .args(["-man"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        nroff
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let shown = nroff.wait_with_output().unwrap();
        // Without the overstrikes of bold and underline (what `col -b` does for `man`).
        let mut shown_text = String::new();
        for c in String::from_utf8_lossy(&shown.stdout).chars() {
            match c {
                '\u{8}' => {
                    shown_text.pop();
                }
                c => shown_text.push(c),
            }
        }
        let shown = shown_text;
        assert!(
            shown.contains("NAME") && shown.contains("SYNOPSIS"),
            "{shown}"
        );
        for c in commands {
            assert!(shown.contains(c), "the manual page lacks `{c}`");
        }
    }
}

/// `councild schema` prints the schema the docs keep and the samples name.
#[test]
fn the_schema_command_prints_the_documented_schema() {
    let council = Council::new(ROSTER, &[]);
    let (code, printed) = council.run(&["schema"]);
    assert_eq!(code, 0, "{printed}");
    let kept = std::fs::read_to_string(repo().join("docs/workflow.schema.json")).unwrap();
    assert_eq!(printed, kept);
    let schema: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert!(schema["properties"]["stages"].is_object(), "{schema}");
}

/// A value the daemon would not understand is refused by the command line, naming the
/// valid ones, before anything is asked.
#[test]
fn filters_and_required_arguments_are_named() {
    let council = Council::new(ROSTER, &[]);
    let (code, out) = council.run(&["items", "--status", "closed"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[possible values: open, ended]"), "{out}");
    let (code, out) = council.run(&["simulate", "regulation-adoption"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("<--votes <VOTES>|--ballots <BALLOTS>>"),
        "{out}"
    );
}
