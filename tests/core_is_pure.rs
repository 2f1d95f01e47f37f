//! The core (`src/core/`) does no I/O and reads no clock: the engine must replay a log and
//! simulate a workflow exactly as the daemon runs it. This test reads every file of the
//! core and fails on any use of the crates and calls that reach the outside world, or of
//! the shell and the application.

use std::path::{Path, PathBuf};

/// What the core may not name, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("tokio", "an async runtime"),
    ("sled", "the store"),
    ("lettre", "the mail transport"),
    ("axum", "the HTTP server"),
    ("hyper", "the HTTP stack"),
    ("reqwest", "an HTTP client"),
    ("std::fs", "the file system"),
    ("std::net", "the network"),
    ("std::env", "the environment"),
    ("std::process", "processes"),
    ("std::thread", "threads"),
    ("std::time", "the clock"),
    ("Utc::now", "the clock"),
    ("Local::now", "the clock"),
    ("SystemTime", "the clock"),
    ("Instant", "the clock"),
    ("rand::", "randomness"),
    ("println!", "the terminal"),
    ("eprintln!", "the terminal"),
    ("crate::shell", "the shell"),
    ("crate::app", "the application"),
];

/// Modules of the shell and the application, also reachable through the crate's root.
const OUTSIDE: &[&str] = &[
    "clock",
    "http",
    "inbound",
    "mail",
    "observe",
    "store",
    "templates",
    "timers",
    "token",
    "writer",
    "cli",
    "config",
    "daemon",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `word` occurs in `line` as a whole path segment.
fn names(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(ident) && (word.ends_with([':', '!']) || !after.is_some_and(ident))
    })
}

/// Problems in one file's text: `path:line: what`.
fn problems(path: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (word, what) in FORBIDDEN {
            if names(code, word) {
                out.push(format!("{path}:{}: `{word}` reaches {what}", n + 1));
            }
        }
        for module in OUTSIDE {
            if names(code, &format!("crate::{module}")) {
                out.push(format!(
                    "{path}:{}: `crate::{module}` is outside the core",
                    n + 1
                ));
            }
        }
    }
    out
}

#[test]
fn nothing_in_the_core_reaches_the_outside_world() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    rust_files(&core, &mut files);
    assert!(files.len() >= 6, "the core's files are under {core:?}");
    let mut all = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        all.extend(problems(&file.display().to_string(), &text));
    }
    assert!(
        all.is_empty(),
        "the core must stay pure:\n{}",
        all.join("\n")
    );
}

#[test]
fn the_check_sees_what_it_looks_for() {
    let bad = "use tokio::sync::mpsc;\nlet t = chrono::Utc::now();\nuse crate::store::Store;\nlet f = std::fs::read(p);";
    assert_eq!(
        problems("x.rs", bad).len(),
        4,
        "{:?}",
        problems("x.rs", bad)
    );
    let fine =
        "// tokio is not used here\nlet sledge = 1;\nuse crate::storey;\nlet instant_runoff = 2;";
    assert_eq!(problems("x.rs", fine), Vec::<String>::new());
}
