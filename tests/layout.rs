//! The shape of the tree, checked: the core (`src/core/`) does no I/O and reads no clock,
//! so the engine replays a log and simulates a workflow exactly as the daemon runs it; and
//! no two modules import each other, directly or round a circle.

use std::collections::{BTreeMap, BTreeSet};
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
    "durable",
    "http",
    "inbound",
    "limits",
    "listen",
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

/// The crate's modules (as re-exported at its root), and the folder each lives in.
const MODULES: &[(&str, &str)] = &[
    ("yaml", "core"),
    ("roster", "core"),
    ("rules", "core"),
    ("definition", "core"),
    ("engine", "core"),
    ("simulate", "core"),
    ("clock", "shell"),
    ("durable", "shell"),
    ("http", "shell"),
    ("inbound", "shell"),
    ("limits", "shell"),
    ("listen", "shell"),
    ("mail", "shell"),
    ("observe", "shell"),
    ("store", "shell"),
    ("templates", "shell"),
    ("timers", "shell"),
    ("token", "shell"),
    ("writer", "shell"),
    ("cli", "app"),
    ("config", "app"),
    ("daemon", "app"),
    ("setup", "app"),
];

/// The modules a file's code names as `crate::NAME` (also inside `crate::{a, b::c}`).
fn imports(text: &str) -> BTreeSet<String> {
    let known: BTreeSet<&str> = MODULES.iter().map(|(m, _)| *m).collect();
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => {
                let end = group.find('}').unwrap_or(group.len());
                group[..end].split(',').collect()
            }
            None => vec![rest],
        };
        for name in names {
            let word: String = name
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let word = match word.as_str() {
                "core" | "shell" | "app" => {
                    let after = name.trim()[word.len()..].trim_start_matches("::");
                    after
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect()
                }
                _ => word,
            };
            if known.contains(word.as_str()) {
                out.insert(word);
            }
        }
    }
    out
}

/// Which modules each module imports, read from its files.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = BTreeMap::new();
    for (module, folder) in MODULES {
        let base = src.join(folder);
        let mut files = Vec::new();
        let file = base.join(format!("{module}.rs"));
        if file.is_file() {
            files.push(file);
        }
        let dir = base.join(module);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        assert!(!files.is_empty(), "module {module} is not in src/{folder}/");
        let mut uses = BTreeSet::new();
        // Tests (a `tests.rs`, or what follows `#[cfg(test)]`) may use what they like.
        for f in files.iter().filter(|f| !f.ends_with("tests.rs")) {
            let text = std::fs::read_to_string(f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            uses.extend(imports(code));
        }
        uses.remove(*module);
        graph.insert(module.to_string(), uses);
    }
    graph
}

/// A circle of imports, if there is one: the modules round it, the first repeated.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            let mut round = path[at..].to_vec();
            round.push(m.to_string());
            return Some(round);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(round) = visit(next, graph, path, done) {
                return Some(round);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = graph();
    if let Some(round) = circle(&graph) {
        panic!("an import circle: {}", round.join(" -> "));
    }
    // Layers: the core imports only the core; the shell never the application, except
    // `config`, the settings every part is given.
    let layer: BTreeMap<&str, &str> = MODULES.iter().copied().collect();
    for (module, uses) in &graph {
        for used in uses {
            let (from, to) = (layer[module.as_str()], layer[used.as_str()]);
            let allowed = match from {
                "core" => to == "core",
                "shell" => to != "app" || used == "config",
                _ => true,
            };
            assert!(allowed, "{module} ({from}) imports {used} ({to})");
        }
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    let edges = |list: &[(&str, &[&str])]| -> BTreeMap<String, BTreeSet<String>> {
        list.iter()
            .map(|(m, uses)| (m.to_string(), uses.iter().map(|u| u.to_string()).collect()))
            .collect()
    };
    let round = circle(&edges(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])]));
    assert_eq!(round.unwrap().join(" -> "), "a -> b -> c -> a");
    assert_eq!(
        circle(&edges(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])])),
        None
    );
    let found = imports("use crate::{mail::Mail, store};\nlet x = crate::core::engine::step;");
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["engine", "mail", "store"]
    );
}
