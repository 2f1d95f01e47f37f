//! The README's "Using it" steps, run as they are written (with `cargo run --release --`
//! standing for the binary under test), on a fresh copy of the sample council: a newcomer
//! reaches a delegate's vote and the verdict. One command at a time, as a person types
//! them: each after the daemon has written the mail of the one before.

use std::process::Command;

use crate::harness::{Council, TOKEN, repo};

/// The commands of the README's "Using it" section: its indented blocks, comments and all.
fn using_it() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("\n## Using it\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a section `## Using it` in README.md");
    section
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_readme_steps_reach_a_verdict() {
    let roster = std::fs::read_to_string(repo().join("config/council.yaml")).unwrap();
    let workflows: Vec<(String, String)> = std::fs::read_dir(repo().join("workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    let workflows: Vec<(&str, &str)> = workflows
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let council = Council::new(&roster, &workflows);
    let daemon = council.start();

    let steps = using_it();
    assert!(steps.contains("start quick-vote"), "{steps}");
    let binary = env!("CARGO_BIN_EXE_councild");
    let script = steps
        .replace("cargo run -q --release --", binary)
        .replace("cargo run --release --", binary);
    let mut said = String::new();
    for command in script
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        daemon.wait_outbox_empty().await;
        let out = tokio::task::spawn_blocking({
            let (command, root, public, admin) = (
                command.to_string(),
                council.path().to_path_buf(),
                daemon.public.clone(),
                daemon.admin.trim_start_matches("http://").to_string(),
            );
            move || {
                Command::new("bash")
                    .args(["-euo", "pipefail", "-c", &command])
                    .current_dir(root)
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .env("COUNCILD_PUBLIC_URL", public)
                    .env("COUNCILD_ADMIN_LISTEN", admin)
                    .env("COUNCILD_ADMIN_TOKEN", TOKEN)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        said.push_str(&format!(
            "$ {command}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
        assert!(out.status.success(), "a README step failed:\n{said}");
    }
    // What the comments promise.
    for expected in [
        "workflows/quick-vote.yaml: ok",
        "dza.head@example.org  ar",
        "closed: adopted",
        "number CPCC/REG/",
        "item item-2 is open, at stage open-for-ratification",
        "ratification_deposited: 1 of 19 (TUR)",
        "ratification_deposited: 0 of 19; withdrawn: TUR",
        "item item-3 is ended",
        "adopted (roll-call, 55 present)",
        "number CPCC/REG/2026/002",
    ] {
        assert!(said.contains(expected), "`{expected}` not in:\n{said}");
    }
    let log = daemon.log();
    assert!(
        log.contains("ballot 1 closed at stage vote: adopted (every member voted)"),
        "{log}"
    );
    let item = daemon.item("item-1").await;
    assert_eq!(item["ballots"][0]["cast"], 55, "{item}");
    assert_eq!(item["outcome"], "adopted", "{item}");
    let session = daemon.item("item-4").await;
    assert_eq!(session["stage"], "record", "{session}");
    let record = std::fs::read_to_string(council.path().join("record-fr.html")).unwrap();
    assert!(
        record.contains("Projet de compte rendu analytique")
            && record.contains("CPCC/REG/2026/002"),
        "{record}"
    );
}
