//! The commands of a session of the council: its agenda, attendance, the votes taken in
//! the room, statements, closing the meeting, moving an item on, and the record.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{cell, print_table, request, when};
use crate::config::Config;
use crate::http::path_segment;

#[derive(Subcommand)]
pub enum AgendaAction {
    /// Add a point: an item to decide under it, or a point with a title only.
    Add {
        /// The item decided under the point (its title is the point's unless --title).
        item: Option<String>,
        #[arg(long)]
        title: Option<String>,
        /// A short explanation of the point.
        #[arg(long, default_value = "")]
        explanation: String,
        /// A document about the point.
        #[arg(long)]
        url: Option<String>,
    },
    /// Move a point (by its number) to a place on the agenda (1 for the first).
    Move {
        point: u32,
        #[arg(long)]
        to: usize,
    },
    /// Defer a point to a later session.
    Defer { point: u32 },
    /// Withdraw a point.
    Withdraw { point: u32 },
    /// Put a deferred or withdrawn point back on the agenda.
    Restore { point: u32 },
    /// The meeting adopts its agenda (its first decision).
    Adopt,
}

/// The vote taken in the room, as the command line gives it.
#[derive(clap::Args)]
pub struct InRoom {
    #[arg(long, value_delimiter = ',')]
    yes: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    no: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    abstain: Vec<String>,
    /// Members voting another choice: CHOICE=TUR,EGY (repeatable).
    #[arg(long = "vote", value_name = "CHOICE=MEMBERS")]
    votes: Vec<String>,
    /// A show of hands: yes=30,no=5,abstain=3.
    #[arg(long)]
    count: Option<String>,
    /// An electronic vote in the room: `open` sends the ballot links to the delegates
    /// present; `close` ends it and prints the verdict.
    #[arg(long, value_parser = ["open", "close"])]
    electronic: Option<String>,
}

fn item_path(id: &str, tail: &str) -> String {
    format!("/api/items/{}{tail}", path_segment(id))
}

pub async fn agenda(
    out: &mut String,
    config: &Config,
    json: bool,
    session: String,
    action: Option<AgendaAction>,
) -> anyhow::Result<Value> {
    let change =
        |point: u32, body: Value| (item_path(&session, &format!("/agenda/{point}")), Some(body));
    let (path, body) = match action {
        None => {
            let answer = request(config, Method::GET, &item_path(&session, ""), None).await?;
            if !json {
                print_agenda(out, &answer);
                return Ok(Value::Null);
            }
            return Ok(answer);
        }
        Some(AgendaAction::Add {
            item,
            title,
            explanation,
            url,
        }) => {
            if item.is_none() && title.is_none() {
                anyhow::bail!("give the item decided under the point, or --title");
            }
            let body =
                json!({"item": item, "title": title, "explanation": explanation, "url": url});
            (item_path(&session, "/agenda"), Some(body))
        }
        Some(AgendaAction::Move { point, to }) => change(point, json!({ "place": to })),
        Some(AgendaAction::Defer { point }) => change(point, json!({"status": "deferred"})),
        Some(AgendaAction::Withdraw { point }) => change(point, json!({"status": "withdrawn"})),
        Some(AgendaAction::Restore { point }) => change(point, json!({"status": "listed"})),
        Some(AgendaAction::Adopt) => (item_path(&session, "/meeting/adopt-agenda"), None),
    };
    let answer = request(config, Method::POST, &path, body).await?;
    if json {
        return Ok(answer);
    }
    print_agenda(out, &answer["item"]);
    Ok(Value::Null)
}

fn print_agenda(out: &mut String, item: &Value) {
    let m = &item["meeting"];
    if m.is_null() {
        put!(out, "{} is not a session of the council", cell(&item["id"]));
        return;
    }
    let adopted = match m["agenda_adopted_at"].is_null() {
        true => "provisional",
        false => "adopted",
    };
    put!(out, "agenda of {} ({adopted})", cell(&item["id"]));
    let mut place = 0;
    let rows: Vec<Vec<String>> = m["agenda"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let listed = p["status"] == "listed";
            place += usize::from(listed);
            let d = &p["decision"];
            let decision = match d.is_null() {
                true => "-".to_string(),
                false => {
                    let state = d["outcome"].as_str().or(d["stage"].as_str());
                    let number = d["register_number"]
                        .as_str()
                        .map(|n| format!(" {n}"))
                        .unwrap_or_default();
                    format!("{}{number}", state.unwrap_or("-"))
                }
            };
            vec![
                if listed {
                    place.to_string()
                } else {
                    "-".into()
                },
                cell(&p["number"]),
                cell(&p["title"]),
                cell(&p["item"]),
                decision,
                cell(&p["status"]),
                cell(&p["proposed_by"]),
            ]
        })
        .collect();
    print_table(
        out,
        &[
            "#",
            "POINT",
            "TITLE",
            "ITEM",
            "DECISION",
            "STATUS",
            "PROPOSED BY",
        ],
        &rows,
    );
}

pub async fn attendance(
    out: &mut String,
    config: &Config,
    json: bool,
    session: String,
    present: Vec<String>,
    absent: Vec<String>,
    zone: &chrono_tz::Tz,
) -> anyhow::Result<Value> {
    let answer = if present.is_empty() && absent.is_empty() {
        request(config, Method::GET, &item_path(&session, ""), None).await?
    } else {
        let body = json!({ "present": present, "absent": absent });
        let path = item_path(&session, "/attendance");
        let answer = request(config, Method::POST, &path, Some(body)).await?;
        if json {
            return Ok(answer);
        }
        answer["item"].clone()
    };
    if json {
        return Ok(answer);
    }
    let m = &answer["meeting"];
    let present: Vec<&Value> = m["present"].as_array().into_iter().flatten().collect();
    put!(out, "{} present in {}", present.len(), cell(&answer["id"]));
    let rows: Vec<Vec<String>> = m["attendance"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let what = if p["present"] == true {
                "arrived"
            } else {
                "left"
            };
            vec![when(&p["at"], zone), cell(&p["member"]), what.to_string()]
        })
        .collect();
    put!(
        out,
        "present now: {}",
        present
            .iter()
            .map(|p| cell(p))
            .collect::<Vec<_>>()
            .join(", ")
    );
    print_table(out, &["AT", "MEMBER", ""], &rows);
    Ok(Value::Null)
}

/// `yes=30,no=5` as counts.
fn parse_counts(text: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (choice, n) = pair
            .split_once('=')
            .with_context(|| format!("`{pair}`: write CHOICE=NUMBER, e.g. yes=30"))?;
        let n: u64 = n
            .trim()
            .parse()
            .with_context(|| format!("`{pair}`: the count must be a whole number"))?;
        if counts.insert(choice.trim().to_string(), n).is_some() {
            anyhow::bail!("`{choice}` is counted twice");
        }
    }
    Ok(counts)
}

pub async fn record(
    out: &mut String,
    config: &Config,
    json: bool,
    item: String,
    v: InRoom,
) -> anyhow::Result<Value> {
    let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (choice, members) in [("yes", v.yes), ("no", v.no), ("abstain", v.abstain)] {
        if !members.is_empty() {
            lists.insert(choice.into(), members);
        }
    }
    for spec in &v.votes {
        let (choice, members) = spec
            .split_once('=')
            .with_context(|| format!("`{spec}`: write CHOICE=MEMBER,MEMBER"))?;
        lists.entry(choice.trim().to_string()).or_default().extend(
            members
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty()),
        );
    }
    let body = match (v.count, lists.is_empty(), v.electronic) {
        (None, true, Some(step)) => json!({ "electronic": step }),
        (Some(c), true, None) => json!({ "counts": parse_counts(&c)? }),
        (None, _, None) => json!({ "votes": lists }),
        _ => anyhow::bail!(
            "a vote is a roll-call (--yes, --no, …), a show of hands (--count) or an electronic vote (--electronic): one of them"
        ),
    };
    let opening = body["electronic"] == "open";
    let answer = request(
        config,
        Method::POST,
        &item_path(&item, "/record"),
        Some(body),
    )
    .await?;
    if json {
        return Ok(answer);
    }
    let r = &answer["result"];
    if opening {
        put!(
            out,
            "electronic vote open: the ballot links go to the delegates of the {} members present; `--electronic close` ends it",
            cell(&r["present"])
        );
        return Ok(Value::Null);
    }
    let counts: Vec<String> = r["counts"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    put!(
        out,
        "{} ({}, {} present): {}",
        cell(&r["verdict"]),
        match r["method"].as_str() {
            Some("roll_call") => "roll-call",
            Some("show_of_hands") => "show of hands",
            Some("electronic") => "electronic vote",
            _ => "-",
        },
        cell(&r["present"]),
        counts.join(", ")
    );
    put!(out, "{}", cell(&r["explanation"]));
    let i = &answer["item"];
    let number = i["register_number"]
        .as_str()
        .map(|n| format!(", number {n}"))
        .unwrap_or_default();
    put!(
        out,
        "item {item} is {}, at stage {}{number}",
        cell(&i["status"]),
        cell(&i["stage"])
    );
    Ok(Value::Null)
}

/// A POST without a body on an item, answered with the change as usual.
pub async fn act(
    config: &Config,
    item: &str,
    tail: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    request(config, Method::POST, &item_path(item, tail), body).await
}

/// The summary record of a session in one language: the HTML page, or that page printed to
/// PDF by a headless Chromium (`COUNCILD_CHROMIUM`, else `chromium` or Chrome on the PATH).
pub async fn minutes(
    config: &Config,
    session: &str,
    language: &str,
    pdf: bool,
    as_circulated: bool,
) -> anyhow::Result<Vec<u8>> {
    let path = item_path(
        session,
        &format!("/minutes?lang={language}&circulated={as_circulated}"),
    );
    let html = super::request_text(config, &path).await?;
    if !pdf {
        return Ok(html.into_bytes());
    }
    let dir = std::env::temp_dir().join(format!("councild-minutes-{:016x}", rand::random::<u64>()));
    // Readable by its owner only: the record is the council's until circulated.
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&dir)?;
    let (page, out) = (dir.join("record.html"), dir.join("record.pdf"));
    std::fs::write(&page, html)?;
    let printed = print_pdf(&page, &out);
    let bytes = printed.and_then(|()| std::fs::read(&out).context("reading the printed PDF"));
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn print_pdf(page: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let named = std::env::var("COUNCILD_CHROMIUM")
        .ok()
        .filter(|c| !c.trim().is_empty());
    if let Some(c) = &named
        && !std::path::Path::new(c).is_file()
        && which(c).is_none()
    {
        anyhow::bail!("COUNCILD_CHROMIUM names `{c}`, which is not a program here");
    }
    let candidates: Vec<String> = match named {
        Some(c) => vec![c],
        _ => [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ]
        .map(String::from)
        .to_vec(),
    };
    for browser in &candidates {
        let run = std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                &format!("--print-to-pdf={}", out.display()),
                &format!("file://{}", page.display()),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output();
        match run {
            Ok(o) if o.status.success() && out.is_file() => return Ok(()),
            Ok(o) => anyhow::bail!(
                "{browser} could not print the record: {}",
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no message")
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => anyhow::bail!("{browser}: {e}"),
        }
    }
    anyhow::bail!(
        "a PDF needs Chromium or Chrome (set COUNCILD_CHROMIUM to its path); `--format html` needs nothing, and prints well from any browser"
    )
}

/// A program's path on the `PATH`, if it is there.
fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt as _;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
