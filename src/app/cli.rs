//! The command line: `serve`, `validate`, and the commands that talk to a running daemon
//! through its admin API. Those print tables for people, or JSON with `--json`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::config::Config;
use crate::http::path_segment;
use crate::{daemon, setup};

const DEFAULT_CONFIG: &str = "config/councild.toml";
/// The workflow format for editors: one copy, in the docs, built into the binary.
const WORKFLOW_SCHEMA: &str = include_str!("../../docs/workflow.schema.json");

#[derive(Parser)]
#[command(
    name = "councild",
    version,
    about = "Runs the decision cycles of an executive council"
)]
pub struct Cli {
    /// Configuration file (default: config/councild.toml, or built-in defaults when absent).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Log format: `text` (default) or `json` lines.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Print the daemon's answer as JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve,
    /// Check workflow files (default: the workflows folder); exits 1 on any problem.
    Validate {
        /// Workflow files or folders to check (default: the configured workflows folder).
        paths: Vec<PathBuf>,
    },
    /// Start an item of a workflow.
    Start {
        /// The workflow's name (`councild status` lists them).
        workflow: String,
        /// An input, as NAME=VALUE (repeatable).
        #[arg(long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
    },
    /// Show the daemon's status, or one item (same as `item ITEM`).
    Status {
        /// An item's id, e.g. item-1.
        item: Option<String>,
    },
    /// List items.
    Items {
        /// Only items of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only items at this stage.
        #[arg(long)]
        stage: Option<String>,
        /// Only open or only ended items.
        #[arg(long, value_parser = ["open", "ended"])]
        status: Option<String>,
        /// Text to find in the id, the workflow or an input.
        #[arg(long)]
        text: Option<String>,
    },
    /// Show one item: stage, ballots and its event log.
    Item {
        /// The item's id, e.g. item-1.
        id: String,
    },
    /// Record a signal on an item (e.g. a ratification deposited).
    Signal {
        /// The item's id.
        item: String,
        /// The signal's name, as the workflow's stage names it (e.g. ratification_deposited).
        name: String,
        /// The member it is about, by roster id (e.g. TUR).
        #[arg(long)]
        member: Option<String>,
        /// JSON data to keep with the signal.
        #[arg(long)]
        data: Option<String>,
    },
    /// Cancel an item, with a reason kept in its log.
    Cancel {
        /// The item's id.
        item: String,
        /// Why, as it will stand in the item's log.
        #[arg(long)]
        reason: String,
    },
    /// Give a version of an item's text in one language: a file, or a URL whose content
    /// councild fetches and keeps. Prints its SHA-256, which mail and the register name.
    Document {
        /// The item's id.
        item: String,
        /// The version's language, one the workflow's `documents.languages` lists (ar, en, fr).
        language: String,
        /// The file to send.
        #[arg(required_unless_present = "url", conflicts_with = "url")]
        file: Option<std::path::PathBuf>,
        /// Fetch the version from this URL instead.
        #[arg(long)]
        url: Option<String>,
        /// The name members see (the file's name by default).
        #[arg(long)]
        name: Option<String>,
        /// Its media type (from the file's extension by default: pdf, txt, md, html, docx, odt).
        #[arg(long, conflicts_with = "url")]
        media_type: Option<String>,
    },
    /// Record a member's amendment to an item's text (members also propose them from the
    /// link in the circulation notice): in one language, a passage and what replaces it.
    Amend {
        /// The item's id.
        item: String,
        /// The member proposing it, by roster id (e.g. TUR).
        #[arg(long)]
        member: String,
        /// The language of the version it changes.
        #[arg(long)]
        lang: String,
        /// The passage to change, exactly as it stands in the current version.
        #[arg(long)]
        passage: String,
        /// What replaces it (nothing: the passage is deleted).
        #[arg(long, default_value = "")]
        replacement: String,
        /// Why, as the member gives it.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Rule on an amendment: receivable (put to the vote, in the order of --rank) or not.
    Rule {
        /// The item's id.
        item: String,
        /// The amendment's number.
        amendment: u32,
        #[arg(
            long,
            conflicts_with = "not_receivable",
            required_unless_present = "not_receivable"
        )]
        receivable: bool,
        #[arg(long)]
        not_receivable: bool,
        /// The order of the votes: 1 is put to the vote first (the furthest-reaching).
        #[arg(long)]
        rank: Option<u32>,
        /// Why, kept in the item's log.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Make the texts with the adopted amendments again, after they could not be made (a
    /// version they amend could not be read: give its file again first, to repair it).
    Consolidate {
        /// The item's id.
        item: String,
    },
    /// Record a candidate nominated for an election (during its nominations stage).
    Nominate {
        /// The item's id.
        item: String,
        /// The candidate's name in English.
        #[arg(long)]
        name: Option<String>,
        /// The name in French.
        #[arg(long)]
        name_fr: Option<String>,
        /// The name in Arabic.
        #[arg(long)]
        name_ar: Option<String>,
        /// How ballots name the candidate (made from the name when not given).
        #[arg(long)]
        id: Option<String>,
        /// The member that nominates the candidate, by roster id (e.g. TUR).
        #[arg(long)]
        member: Option<String>,
    },
    /// Confirm an election's candidates, in the ballot paper's order: nominations close and
    /// the election opens.
    Candidates {
        /// The item's id.
        item: String,
        /// The candidates' ids, in the order of the ballot paper.
        #[arg(required = true)]
        candidates: Vec<String>,
    },
    /// A trustee's part of a secret election, on the trustee's own computer: makes and
    /// keeps its key in FILE, deals and checks the key's shares with the other trustees,
    /// and decrypts each closed round's tally. Run it again until it waits for nothing.
    Trustee {
        /// The trustee link from the mail `trustee-call`.
        link: String,
        /// The trustee's key file (made at the first run; keep it private and backed up).
        #[arg(long)]
        key: PathBuf,
        /// The digest of the trustees' box keys, once compared with the other trustees:
        /// the command deals only to keys of that digest.
        #[arg(long)]
        keys: Option<String>,
    },
    /// Check a secret election's public record: every ballot's proofs, the tally of the
    /// ballots counted, every trustee's decryption and the counts; names the first thing
    /// that does not check.
    Verify {
        /// The item's id (its record is read from the daemon).
        #[arg(required_unless_present = "file")]
        item: Option<String>,
        /// A record saved from `/elections/ITEM/record.json` instead.
        #[arg(long, conflicts_with = "item")]
        file: Option<PathBuf>,
    },
    /// Move a ballot's deadline later (RFC 3339 time, e.g. 2026-12-01T17:00:00+03:00).
    Extend {
        /// The item's id.
        item: String,
        /// The ballot's number as shown by `item` (1 for the first).
        #[arg(long, default_value_t = 1)]
        ballot: usize,
        /// The new deadline, RFC 3339 with its offset.
        #[arg(long)]
        until: String,
        /// Why, as it will stand in the item's log and in the notice to the voters.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Read the workflow files, templates and roster again; running items keep their version.
    Reload,
    /// A session's agenda: list it, add a point, move, defer, withdraw or restore one, adopt it.
    Agenda {
        /// The session's id.
        session: String,
        #[command(subcommand)]
        action: Option<session::AgendaAction>,
    },
    /// A session's attendance: print it, or record arrivals and departures during the meeting.
    Attendance {
        /// The session's id.
        session: String,
        /// Members who are present (arrived), by roster id: TUR,EGY.
        #[arg(long, value_delimiter = ',')]
        present: Vec<String>,
        /// Members who have left.
        #[arg(long, value_delimiter = ',')]
        absent: Vec<String>,
    },
    /// Record the vote taken in the room on an item's ballot taken in session: a roll-call
    /// (--yes, --no, --abstain, --vote) or a show of hands (--count). Prints the verdict.
    Record {
        /// The item decided (on the agenda of the session sitting now).
        item: String,
        #[command(flatten)]
        vote: session::InRoom,
    },
    /// Enter a member's explanation of vote or reservation in the session's record.
    Statement {
        /// The session's id.
        session: String,
        /// The member, by roster id.
        #[arg(long)]
        member: String,
        /// The agenda point it concerns, by its number.
        #[arg(long)]
        point: Option<u32>,
        /// What the member asks to have recorded.
        text: String,
    },
    /// Close a session's meeting: the session goes on to its next stage.
    CloseMeeting {
        /// The session's id.
        session: String,
    },
    /// Write a session's draft summary record to stdout, in one of the council's languages.
    Minutes {
        /// The session's id.
        session: String,
        #[arg(long, default_value = "en", value_parser = ["ar", "en", "fr"])]
        lang: String,
        /// `html` (prints well from a browser) or `pdf` (needs Chromium or Chrome).
        #[arg(long, default_value = "html", value_parser = ["html", "pdf"])]
        format: String,
        /// Circulate the draft record: its SHA-256 in each language is entered in the
        /// session's log (and printed), for the next session's approval.
        #[arg(long)]
        circulate: bool,
        /// The record as last circulated (kept in the log), not as it stands now.
        #[arg(long, conflicts_with = "circulate")]
        as_circulated: bool,
    },
    /// Send an item's ballot taken in session to an email ballot, closing at a deadline.
    EmailBallot {
        /// The item's id.
        item: String,
        /// The deadline, RFC 3339 with its offset.
        #[arg(long)]
        until: String,
    },
    /// Move an item on to its next stage now, without waiting for its stage's time.
    Next {
        /// The item's id.
        item: String,
    },
    /// List the mail waiting to be sent, retried or failed; retry or drop a failed one.
    #[command(args_conflicts_with_subcommands = true)]
    Outbox {
        /// Only mail that failed for good.
        #[arg(long)]
        failed: bool,
        #[command(subcommand)]
        action: Option<OutboxAction>,
    },
    /// The mail written to the mail folder (when no SMTP server is set): to whom, in which
    /// language, its subject and ballot link. For rehearsals and trying councild out.
    Mail {
        /// Only the mail of this item.
        item: Option<String>,
        /// Print only the ballot links, one per line.
        #[arg(long)]
        links: bool,
    },
    /// Dry-run a workflow on a simulated clock and print its timeline; nothing is sent.
    #[command(group(clap::ArgGroup::new("cast").required(true).args(["votes", "ballots"])))]
    Simulate {
        /// A workflow file, or the name of a workflow in the workflows folder.
        workflow: String,
        /// Roster to vote with (default: the configured one).
        #[arg(long)]
        roster: Option<PathBuf>,
        /// Votes per choice in every ballot, handed out in roster order: yes=40,no=10,abstain=3.
        #[arg(long)]
        votes: Option<String>,
        /// A YAML map from member id to choice, used in every ballot.
        #[arg(long)]
        ballots: Option<PathBuf>,
        /// An input, as NAME=VALUE (repeatable).
        #[arg(long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
    },
    /// Rewrite the store with only what it holds now (the daemon stopped): sled keeps what
    /// was overwritten or removed, every mail sent, until it reclaims it, lazily. Safe to
    /// interrupt: the next start or compaction finishes or undoes it.
    Compact,
    /// Print a shell completion script: `councild completions bash > /etc/bash_completion.d/councild`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `councild man | man -l -`.
    Man,
    /// Print the JSON Schema of workflow files (docs/workflow.schema.json), for editors.
    Schema,
}

#[derive(Subcommand)]
pub enum OutboxAction {
    /// Send a failed mail again (it keeps its Message-ID).
    Retry {
        /// The mail's id, as `councild outbox` lists it.
        id: String,
    },
    /// Give up on a failed mail; the drop is logged.
    Drop {
        /// The mail's id, as `councild outbox` lists it.
        id: String,
    },
}

/// Runs a command. Its output is written once it is complete; a reader that goes away
/// early (`councild status | head -1`) ends the command quietly, with its own exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let code = command(cli, &mut out).await;
    emit(&out)?;
    code
}

fn emit(out: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Appends a line to a command's output.
macro_rules! put {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        $out.push_str(&format!($($arg)*));
        $out.push('\n');
    }};
}

mod session;

async fn command(cli: Cli, out: &mut String) -> anyhow::Result<ExitCode> {
    // What the binary can say about itself needs no configuration (packaging runs these).
    match &cli.command {
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "councild", &mut script);
            out.push_str(&String::from_utf8_lossy(&script));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page)?;
            out.push_str(&String::from_utf8_lossy(&page));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Schema => {
            out.push_str(WORKFLOW_SCHEMA);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Trustee { link, key, keys } => {
            for line in crate::shell::trustee::run(link, key, keys.as_deref()).await? {
                put!(out, "{line}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Verify {
            file: Some(file), ..
        } => {
            let bytes =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let record: crate::audit::Record = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a secret election's record", file.display()))?;
            return Ok(verified(out, &record));
        }
        _ => {}
    }
    let config = match &cli.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(&PathBuf::from(DEFAULT_CONFIG), false)?,
    };
    let json = cli.json;
    let zone = config.timezone()?;
    let api = |method: Method, path: String, body: Option<Value>| {
        let config = config.clone();
        async move { request(&config, method, &path, body).await }
    };
    let answer = match cli.command {
        // Answered above, before the configuration is read.
        Command::Completions { .. }
        | Command::Man
        | Command::Schema
        | Command::Trustee { .. }
        | Command::Verify { item: None, .. } => {
            return Ok(ExitCode::SUCCESS);
        }
        Command::Serve => return daemon::serve(config).await.map(|()| ExitCode::SUCCESS),
        Command::Mail { item, links } => return written_mail(out, &config, item, links),
        Command::Compact => {
            let path = config.store_path();
            let c = crate::store::compact(&path).map_err(|e| match e {
                crate::store::Error::InUse(..) => anyhow::anyhow!(
                    "{e}\nstop the daemon first (or let the other compaction end): `councild compact` rewrites the store"
                ),
                e => anyhow::anyhow!("{}: {e}; the store is the one before", path.display()),
            })?;
            if json {
                let answer = json!({
                    "store": path, "bytes_before": c.before, "bytes_after": c.after,
                    "rows": c.rows, "row_bytes": c.live, "trees": c.trees,
                });
                put!(out, "{answer:#}");
            } else {
                put!(
                    out,
                    "{} compacted: {} → {} on disk ({} rows in {} trees, {} of rows; checked)",
                    path.display(),
                    megabytes(c.before),
                    megabytes(c.after),
                    c.rows,
                    c.trees,
                    megabytes(c.live)
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Minutes {
            session, circulate, ..
        } if circulate => {
            let answer = session::act(&config, &session, "/minutes/circulate", None).await?;
            if json {
                answer
            } else {
                put!(
                    out,
                    "record of {session} circulated; SHA-256 of each language:"
                );
                for (lang, hash) in answer["hashes"].as_object().into_iter().flatten() {
                    put!(out, "  {lang}  {}", cell(hash));
                }
                return Ok(ExitCode::SUCCESS);
            }
        }
        Command::EmailBallot { item, until } => {
            let body = json!({ "closes_at": until });
            let answer = session::act(&config, &item, "/email-ballot", Some(body)).await?;
            print_change(out, json, &answer, &item)
        }
        Command::Minutes {
            session,
            lang,
            format,
            as_circulated,
            ..
        } => {
            let pdf = format == "pdf";
            let bytes = session::minutes(&config, &session, &lang, pdf, as_circulated).await?;
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&bytes).and_then(|()| stdout.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => return Ok(ExitCode::SUCCESS),
            }
        }
        Command::Validate { paths } => return Ok(validate(out, &config, paths)),
        Command::Simulate {
            workflow,
            roster,
            votes,
            ballots,
            inputs,
        } => {
            let request = SimulateRequest {
                workflow,
                roster,
                votes,
                ballots,
                inputs: parse_inputs(inputs)?,
            };
            return simulate(out, &config, request, json);
        }
        Command::Start { workflow, inputs } => {
            let map = parse_inputs(inputs)?;
            let answer = api(
                Method::POST,
                "/api/items".into(),
                Some(json!({"workflow": workflow, "inputs": map})),
            )
            .await?;
            if !json {
                put!(out, "{}", answer["id"].as_str().unwrap_or_default());
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
        Command::Status { item: Some(id) } | Command::Item { id } => {
            let answer = api(
                Method::GET,
                format!("/api/items/{}", path_segment(&id)),
                None,
            )
            .await?;
            if !json {
                print_item(out, &answer, &zone);
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
        Command::Status { item: None } => {
            let answer = api(Method::GET, "/status".into(), None).await?;
            if !json {
                print_status(out, &answer, &zone);
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
        Command::Items {
            workflow,
            stage,
            status,
            text,
        } => {
            let query: Vec<(&str, String)> = [
                ("workflow", workflow),
                ("stage", stage),
                ("status", status),
                ("q", text),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
            let query = query_string(&query);
            let answer = api(Method::GET, format!("/api/items{query}"), None).await?;
            if !json {
                print_items(out, &answer);
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
        Command::Signal {
            item,
            name,
            member,
            data,
        } => {
            let data: Value = match data {
                Some(d) => serde_json::from_str(&d).context("--data must be JSON")?,
                None => Value::Null,
            };
            let answer = api(
                Method::POST,
                format!(
                    "/api/items/{}/signals/{}",
                    path_segment(&item),
                    path_segment(&name)
                ),
                Some(json!({"member": member, "data": data})),
            )
            .await?;
            print_change(out, json, &answer, &item)
        }
        Command::Document {
            item,
            language,
            file,
            url,
            name,
            media_type,
        } => {
            let mut query = vec![];
            let (bytes, media_type) = match &file {
                Some(path) => {
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("{} cannot be read", path.display()))?;
                    let name = name
                        .clone()
                        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()));
                    query.extend(name.map(|n| ("name", n)));
                    // The hash the daemon must find, so bytes changed on the way are refused.
                    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
                    query.push(("sha256", sha256));
                    let media_type = media_type.or_else(|| media_type_of(path));
                    (bytes, media_type)
                }
                None => {
                    query.extend(name.map(|n| ("name", n)));
                    query.extend(url.clone().map(|u| ("url", u)));
                    (Vec::new(), None)
                }
            };
            let path = format!(
                "/api/items/{}/documents/{}{}",
                path_segment(&item),
                path_segment(&language),
                query_string(&query)
            );
            let answer = request_bytes(&config, &path, bytes, media_type).await?;
            if !json {
                if let Some(v) = answer["item"]["documents"][&language]
                    .as_array()
                    .and_then(|v| v.last())
                {
                    put!(
                        out,
                        "{item}: {language} version {} recorded, {} bytes\nSHA-256 {}",
                        answer["item"]["documents"][&language]
                            .as_array()
                            .map_or(0, Vec::len),
                        cell(&v["bytes"]),
                        cell(&v["sha256"])
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
        Command::Amend {
            item,
            member,
            lang,
            passage,
            replacement,
            reason,
        } => {
            let body = json!({
                "member": member, "reason": reason,
                "changes": { lang: { "passage": passage, "replacement": replacement } },
            });
            let path = format!("/api/items/{}/amendments", path_segment(&item));
            let answer = api(Method::POST, path, Some(body)).await?;
            if !json {
                let number = answer["item"]["amendments"].as_array().map_or(0, Vec::len);
                put!(out, "{item}: amendment {number} recorded");
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
        Command::Rule {
            item,
            amendment,
            receivable,
            not_receivable: _,
            rank,
            reason,
        } => {
            let path = format!(
                "/api/items/{}/amendments/{amendment}/ruling",
                path_segment(&item)
            );
            let body = json!({ "receivable": receivable, "rank": rank, "reason": reason });
            let answer = api(Method::POST, path, Some(body)).await?;
            print_change(out, json, &answer, &item)
        }
        Command::Nominate {
            item,
            name,
            name_fr,
            name_ar,
            id,
            member,
        } => {
            let names: serde_json::Map<String, serde_json::Value> =
                [("en", name), ("fr", name_fr), ("ar", name_ar)]
                    .into_iter()
                    .filter_map(|(l, n)| Some((l.to_string(), json!(n?))))
                    .collect();
            let body = json!({ "name": names, "id": id, "member": member });
            let path = format!("/api/items/{}/nominations", path_segment(&item));
            let answer = api(Method::POST, path, Some(body)).await?;
            if !json {
                let last = answer["item"]["candidates"]
                    .as_array()
                    .and_then(|c| c.last())
                    .cloned()
                    .unwrap_or_default();
                put!(out, "{item}: candidate {} nominated", cell(&last["id"]));
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
        Command::Verify {
            item: Some(item), ..
        } => {
            let path = format!("/api/items/{}/election-record", path_segment(&item));
            let answer = api(Method::GET, path, None).await?;
            let record: crate::audit::Record = serde_json::from_value(answer)
                .context("the daemon's answer is not a secret election's record")?;
            return Ok(verified(out, &record));
        }
        Command::Candidates { item, candidates } => {
            let path = format!("/api/items/{}/candidates", path_segment(&item));
            let body = json!({ "candidates": candidates });
            let answer = api(Method::POST, path, Some(body)).await?;
            print_change(out, json, &answer, &item)
        }
        Command::Consolidate { item } => {
            let path = format!("/api/items/{}/consolidate", path_segment(&item));
            let answer = api(Method::POST, path, None).await?;
            print_change(out, json, &answer, &item)
        }
        Command::Cancel { item, reason } => {
            let answer = api(
                Method::POST,
                format!("/api/items/{}/cancel", path_segment(&item)),
                Some(json!({ "reason": reason })),
            )
            .await?;
            print_change(out, json, &answer, &item)
        }
        Command::Extend {
            item,
            ballot,
            until,
            reason,
        } => {
            let index = ballot
                .checked_sub(1)
                .context("ballots are numbered from 1")?;
            let path = format!(
                "/api/items/{}/ballots/{index}/deadline",
                path_segment(&item)
            );
            let answer = api(
                Method::POST,
                path,
                Some(json!({ "closes_at": until, "reason": reason })),
            )
            .await?;
            print_change(out, json, &answer, &item)
        }
        Command::Outbox { failed, action } => {
            let (method, path) = match &action {
                None if failed => (Method::GET, "/api/outbox?status=failed".to_string()),
                None => (Method::GET, "/api/outbox".to_string()),
                Some(OutboxAction::Retry { id }) => (
                    Method::POST,
                    format!("/api/outbox/{}/retry", path_segment(id)),
                ),
                Some(OutboxAction::Drop { id }) => {
                    (Method::DELETE, format!("/api/outbox/{}", path_segment(id)))
                }
            };
            let answer = api(method, path, None).await?;
            if json {
                answer
            } else {
                match action {
                    None => print_outbox(out, &answer, &zone),
                    Some(OutboxAction::Retry { id }) => put!(out, "{id}: queued to send again"),
                    Some(OutboxAction::Drop { id }) => put!(out, "{id}: dropped"),
                }
                return Ok(ExitCode::SUCCESS);
            }
        }
        Command::Agenda { session, action } => {
            session::agenda(out, &config, json, session, action).await?
        }
        Command::Attendance {
            session,
            present,
            absent,
        } => session::attendance(out, &config, json, session, present, absent, &zone).await?,
        Command::Record { item, vote } => session::record(out, &config, json, item, vote).await?,
        Command::Statement {
            session,
            member,
            point,
            text,
        } => {
            let body = json!({ "member": member, "point": point, "text": text });
            let answer = session::act(&config, &session, "/statements", Some(body)).await?;
            print_change(out, json, &answer, &session)
        }
        Command::CloseMeeting { session } => {
            let answer = session::act(&config, &session, "/meeting/close", None).await?;
            print_change(out, json, &answer, &session)
        }
        Command::Next { item } => {
            let answer = session::act(&config, &item, "/next", None).await?;
            print_change(out, json, &answer, &item)
        }
        Command::Reload => {
            let answer = api(Method::POST, "/api/reload".into(), None).await?;
            if !json {
                let rows = rows(
                    &answer["definitions"],
                    &["name", "version", "items_running"],
                );
                print_table(out, &["WORKFLOW", "VERSION", "RUNNING ITEMS"], &rows);
                return Ok(ExitCode::SUCCESS);
            }
            answer
        }
    };
    if !answer.is_null() {
        put!(out, "{}", serde_json::to_string_pretty(&answer)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn query_string(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", path_segment(v)))
        .collect();
    format!("?{}", encoded.join("&"))
}

fn parse_inputs(inputs: Vec<String>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for input in inputs {
        let (k, v) = input
            .split_once('=')
            .with_context(|| format!("--input `{input}`: write NAME=VALUE"))?;
        map.insert(k.to_string(), v.to_string());
    }
    Ok(map)
}

struct SimulateRequest {
    workflow: String,
    roster: Option<PathBuf>,
    votes: Option<String>,
    ballots: Option<PathBuf>,
    inputs: BTreeMap<String, String>,
}

/// `councild simulate`: reads and checks the workflow, then runs it on a simulated clock.
fn simulate(
    out: &mut String,
    config: &Config,
    r: SimulateRequest,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use crate::simulate::{self, Votes};
    let mut config = config.clone();
    if let Some(roster) = r.roster {
        config.council.roster = roster;
    }
    let path = if std::path::Path::new(&r.workflow).is_file() {
        PathBuf::from(&r.workflow)
    } else {
        config.workflows.dir.join(format!("{}.yaml", r.workflow))
    };
    let report = setup::check(&config, std::slice::from_ref(&path));
    let problems: Vec<String> = report.problems().cloned().collect();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("{p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let (Some(roster), Some(Ok(workflow))) = (
        report.roster,
        report.files.into_iter().next().map(|(_, w)| w),
    ) else {
        anyhow::bail!("{}: no workflow to simulate", path.display());
    };
    let votes = match (r.votes, r.ballots) {
        (Some(text), _) => {
            Votes::parse_counts(&text).map_err(|e| anyhow::anyhow!("--votes {e}"))?
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            Votes::Ballots(
                parse_ballots(&text).map_err(|e| anyhow::anyhow!("{}:{e}", file.display()))?,
            )
        }
        (None, None) => anyhow::bail!("give --votes or --ballots"),
    };
    let tz = config.timezone()?;
    let start = chrono::Utc::now();
    let result = simulate::run(&workflow, &roster, tz, r.inputs, &votes, start)
        .map_err(|e| anyhow::anyhow!(e))?;
    if json {
        put!(out, "{}", serde_json::to_string_pretty(&result)?);
    } else {
        out.push_str(&simulate::render(&result, tz));
    }
    Ok(ExitCode::SUCCESS)
}

/// A `--ballots` file: a YAML map from member id to choice.
fn parse_ballots(text: &str) -> Result<BTreeMap<String, String>, crate::yaml::Diagnostic> {
    use crate::yaml;
    let mut d = yaml::Diagnostics::default();
    let root = yaml::parse(text)?.ok_or(yaml::Diagnostic {
        pos: yaml::Pos { line: 1, col: 1 },
        message: "empty ballots file".into(),
    })?;
    let mut map = BTreeMap::new();
    if let Some(f) = yaml::mapping(&root, "the ballots file", &[], &mut d) {
        for e in &f.entries {
            if let Some(choice) = yaml::string(e.value, "a choice", &mut d) {
                map.insert(e.key.clone(), choice);
            }
        }
    }
    match d.into_sorted().into_iter().next() {
        Some(first) => Err(first),
        None => Ok(map),
    }
}

fn print_change(out: &mut String, json: bool, answer: &Value, item: &str) -> Value {
    if json {
        return answer.clone();
    }
    print_changed(out, answer, item);
    Value::Null
}

fn print_changed(out: &mut String, answer: &Value, item: &str) {
    let stage = answer["item"]["stage"].as_str().unwrap_or_default();
    let status = answer["item"]["status"].as_str().unwrap_or_default();
    put!(
        out,
        "recorded ({}); item {item} is {status}, at stage {stage}",
        answer["event"].as_str().unwrap_or_default()
    );
    if let Some(p) = progress(&answer["item"]) {
        put!(out, "{p}");
    }
}

/// "ratification_deposited: 12 of 19 (TUR, EGY, …); withdrawn: IRN".
fn progress(item: &Value) -> Option<String> {
    let p = item.get("signal_progress")?;
    let names = |key: &str| -> Vec<String> {
        p[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| cell(&s["member"]))
            .collect()
    };
    let mut line = format!(
        "{}: {} of {}",
        cell(&p["signal"]),
        cell(&p["count"]),
        cell(&p["needed"])
    );
    let standing = names("standing");
    if !standing.is_empty() {
        line.push_str(&format!(" ({})", standing.join(", ")));
    }
    let withdrawn = names("withdrawn");
    if !withdrawn.is_empty() {
        line.push_str(&format!("; withdrawn: {}", withdrawn.join(", ")));
    }
    Some(line)
}

fn print_outbox(out: &mut String, answer: &Value, zone: &chrono_tz::Tz) {
    let mails: Vec<Vec<String>> = answer["mails"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            vec![
                cell(&m["id"]),
                cell(&m["status"]),
                cell(&m["to"]),
                cell(&m["template"]),
                cell(&m["attempts"]),
                when(&m["next_attempt"], zone),
                // A remote server's words: no control characters reach the terminal.
                cell(&m["last_error"])
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect(),
            ]
        })
        .collect();
    let headers = [
        "MAIL",
        "STATUS",
        "TO",
        "TEMPLATE",
        "ATTEMPTS",
        "NEXT ATTEMPT",
        "LAST ERROR",
    ];
    print_table(out, &headers, &mails);
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// `councild mail`: the `.eml` files of the mail folder, oldest first.
fn written_mail(
    out: &mut String,
    config: &Config,
    item: Option<String>,
    links_only: bool,
) -> anyhow::Result<ExitCode> {
    let dir = config.mail_folder();
    let entries = std::fs::read_dir(&dir).with_context(|| {
        format!(
            "{}: no mail written here (is [mail] smtp_url set, or nothing sent yet?)",
            dir.display()
        )
    })?;
    let mut files: Vec<(Vec<u64>, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|path| {
            let name = path
                .file_name()?
                .to_str()?
                .strip_suffix(".eml")?
                .to_string();
            if let Some(item) = &item
                && !name.starts_with(&format!("{item}."))
            {
                return None;
            }
            // `item-1.2.0.10`: by item number, then event, effect and recipient.
            let order = name
                .split(['.', '-'])
                .filter_map(|n| n.parse().ok())
                .collect();
            Some((order, path))
        })
        .collect();
    files.sort();
    let prefix = format!("{}/ballot/", config.public.url.trim_end_matches('/'));
    let mut rows = Vec::new();
    for (_, path) in &files {
        let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
        let Some(message) = mail_parser::MessageParser::default().parse(&bytes) else {
            continue;
        };
        let text = message.body_text(0).unwrap_or_default();
        let link = text.find(&prefix).map(|at| {
            text[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '<' | '>'))
                .collect::<String>()
        });
        if links_only {
            // Each link once: a receipt repeats its ballot's link.
            if let Some(link) = link
                && !rows.iter().any(|r: &Vec<String>| r[0] == link)
            {
                put!(out, "{link}");
                rows.push(vec![link]);
            }
            continue;
        }
        let to = message
            .to()
            .and_then(|to| to.first())
            .and_then(|a| a.address())
            .unwrap_or_default();
        let language = message
            .header_raw("Content-Language")
            .unwrap_or_default()
            .trim();
        rows.push(vec![
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            to.to_string(),
            language.to_string(),
            // Without the invisible bidi isolates, which would throw the columns off.
            message
                .subject()
                .unwrap_or_default()
                .replace(['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'], ""),
            link.unwrap_or_else(|| "-".into()),
        ]);
    }
    if !links_only {
        print_table(
            out,
            &["MAIL", "TO", "LANG", "SUBJECT", "BALLOT LINK"],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A time from the API (RFC 3339, UTC) as the council reads it: in its zone, to the second,
/// the zone named (`2026-12-01 17:45:03 +03`).
fn when(v: &Value, zone: &chrono_tz::Tz) -> String {
    match v.as_str().map(chrono::DateTime::parse_from_rfc3339) {
        Some(Ok(t)) => t
            .with_timezone(zone)
            .format("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        _ => cell(v),
    }
}

/// The text of a JSON value for a table cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rows(list: &Value, fields: &[&str]) -> Vec<Vec<String>> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|v| fields.iter().map(|f| cell(&v[*f])).collect())
        .collect()
}

fn print_table(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        put!(out, "{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn print_status(out: &mut String, s: &Value, zone: &chrono_tz::Tz) {
    put!(
        out,
        "councild {}, up {} s, store {} bytes",
        cell(&s["version"]),
        cell(&s["uptime_seconds"]),
        cell(&s["store_bytes"])
    );
    put!(out);
    print_table(
        out,
        &["WORKFLOW", "VERSION", "RUNNING ITEMS"],
        &rows(&s["definitions"], &["name", "version", "items_running"]),
    );
    let mut stages = Vec::new();
    for (workflow, by_stage) in s["items"]["open_by_stage"]
        .as_object()
        .into_iter()
        .flatten()
    {
        for (stage, n) in by_stage.as_object().into_iter().flatten() {
            stages.push(vec![workflow.clone(), stage.clone(), cell(n)]);
        }
    }
    put!(out);
    print_table(out, &["WORKFLOW", "STAGE", "OPEN ITEMS"], &stages);
    put!(out);
    // Ballots are counted from 1 here, as `item` and `extend --ballot` count them.
    let ballots: Vec<Vec<String>> = s["open_ballots"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            vec![
                cell(&b["item"]),
                b["ballot"]
                    .as_u64()
                    .map_or("-".into(), |n| (n + 1).to_string()),
                cell(&b["stage"]),
                cell(&b["cast"]),
                cell(&b["eligible"]),
                cell(&b["seconds_left"]),
            ]
        })
        .collect();
    print_table(
        out,
        &[
            "ITEM",
            "BALLOT",
            "STAGE",
            "CAST",
            "ELIGIBLE",
            "SECONDS LEFT",
        ],
        &ballots,
    );
    let o = &s["outbox"];
    put!(out);
    put!(
        out,
        "outbox: {} pending, {} retrying, {} failed",
        cell(&o["pending"]),
        cell(&o["retrying"]),
        cell(&o["failed"])
    );
    put!(
        out,
        "timers: {} pending, next due {}",
        cell(&s["timers"]["count"]),
        when(&s["timers"]["next_due"], zone)
    );
    if let Some(errors) = s["last_errors"].as_array().filter(|e| !e.is_empty()) {
        put!(out);
        let errors: Vec<Vec<String>> = errors
            .iter()
            .map(|e| {
                vec![
                    when(&e["at"], zone),
                    cell(&e["level"]),
                    cell(&e["item"]),
                    cell(&e["message"]),
                ]
            })
            .collect();
        print_table(out, &["AT", "LEVEL", "ITEM", "MESSAGE"], &errors);
    }
}

fn print_items(out: &mut String, answer: &Value) {
    let mut list = Vec::new();
    for i in answer["items"].as_array().into_iter().flatten() {
        list.push(vec![
            cell(&i["id"]),
            cell(&i["workflow"]),
            cell(&i["stage"]),
            cell(&i["status"]),
            cell(&i["outcome"]),
            cell(&i["register_number"]),
            cell(&i["inputs"]["title"]),
        ]);
    }
    print_table(
        out,
        &[
            "ITEM", "WORKFLOW", "STAGE", "STATUS", "OUTCOME", "NUMBER", "TITLE",
        ],
        &list,
    );
}

fn print_item(out: &mut String, i: &Value, zone: &chrono_tz::Tz) {
    put!(
        out,
        "{} ({} version {})",
        cell(&i["id"]),
        cell(&i["workflow"]),
        cell(&i["version"])
    );
    put!(
        out,
        "stage {}, {}, outcome {}, number {}",
        cell(&i["stage"]),
        cell(&i["status"]),
        cell(&i["outcome"]),
        cell(&i["register_number"])
    );
    if let Some(p) = progress(i) {
        put!(out, "{p}");
    }
    for (language, versions) in i["documents"].as_object().into_iter().flatten() {
        let all = versions.as_array().map_or(&[][..], Vec::as_slice);
        if let Some(v) = all.last() {
            put!(
                out,
                "text ({language}): {}, version {} of {}, {} bytes, SHA-256 {}",
                cell(&v["name"]),
                all.len(),
                when(&v["at"], zone),
                cell(&v["bytes"]),
                cell(&v["sha256"])
            );
        }
    }
    for a in i["amendments"].as_array().into_iter().flatten() {
        let state = match (a["fate"].as_str(), a["ruling"]["receivable"].as_bool()) {
            (Some(fate), _) => fate.replace('_', " "),
            (None, Some(true)) => format!("receivable, rank {}", cell(&a["ruling"]["rank"])),
            (None, Some(false)) => "not receivable".into(),
            (None, None) => "awaiting a ruling".into(),
        };
        let langs: Vec<&String> = a["changes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(l, _)| l)
            .collect();
        put!(
            out,
            "amendment {} by {} ({}): {state}",
            cell(&a["number"]),
            cell(&a["member"]),
            langs
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for c in i["candidates"].as_array().into_iter().flatten() {
        let standing = i["standing"]
            .as_array()
            .and_then(|s| s.iter().position(|x| *x == c["id"]));
        let names: Vec<String> = c["name"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(l, n)| format!("{l}: {}", cell(n)))
            .collect();
        put!(
            out,
            "candidate {} ({}), nominated by {}{}",
            cell(&c["id"]),
            names.join("; "),
            c["nominated_by"].as_str().unwrap_or("the secretariat"),
            standing.map_or(String::new(), |p| format!(
                ", place {} on the ballot",
                p + 1
            ))
        );
    }
    if let Some(elected) = i["elected"].as_array().filter(|e| !e.is_empty()) {
        let ids: Vec<String> = elected.iter().map(cell).collect();
        put!(out, "elected: {}", ids.join(", "));
    }
    for (n, b) in i["ballots"].as_array().into_iter().flatten().enumerate() {
        let counts: Vec<String> = b["counts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(c, v)| format!("{c} {v}"))
            .collect();
        let state = match b["result"]["verdict"].as_str() {
            Some(_) if b["round"].is_object() => {
                format!("closed: {}", cell(&b["result"]["explanation"]))
            }
            Some(v) => format!("closed: {v}"),
            None if i["awaiting"]["decryption"] == n => {
                "closed: the sealed tally waits for the trustees' decryptions".to_string()
            }
            None if b["in_session"] == true => "open, taken in session".to_string(),
            None => format!("open until {}", when(&b["closes_at"], zone)),
        };
        put!(
            out,
            "ballot {} ({}): {} of {} voted ({}); {state}",
            n + 1,
            cell(&b["stage"]),
            cell(&b["cast"]),
            cell(&b["eligible"]),
            counts.join(", ")
        );
    }
    put!(out);
    let events: Vec<Vec<String>> = i["events"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            vec![
                cell(&e["seq"]),
                when(&e["at"], zone),
                cell(&e["event"]["type"]),
                cell(&e["by"]),
                cell(&e["hash"]).chars().take(16).collect(),
            ]
        })
        .collect();
    print_table(out, &["#", "AT", "EVENT", "BY", "HASH"], &events);
    put!(
        out,
        "event chain: {}",
        if i["chain"]["verified"] == true {
            "verified"
        } else {
            "BROKEN"
        }
    );
}

fn validate(out: &mut String, config: &Config, paths: Vec<PathBuf>) -> ExitCode {
    let paths = if paths.is_empty() {
        vec![config.workflows.dir.clone()]
    } else {
        paths
    };
    let report = setup::check(config, &paths);
    for problem in &report.general {
        put!(out, "{problem}");
    }
    for (file, result) in &report.files {
        match result {
            Ok(w) => {
                put!(out, "{}: ok", file.display());
                for warning in &w.warnings {
                    let at = warning.pos;
                    put!(
                        out,
                        "{}:{}:{}: warning: {}",
                        file.display(),
                        at.line,
                        at.col,
                        warning.message
                    );
                }
            }
            Err(problems) => problems.iter().for_each(|p| put!(out, "{p}")),
        }
    }
    if report.problems().next().is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One call to the running daemon's admin API.
/// A personal API token, when one is given (what is done is then attributed to its
/// account), or else the admin token.
fn token(config: &Config) -> anyhow::Result<String> {
    match std::env::var("COUNCILD_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => config.admin_token(false),
    }
}

/// A GET answered with text (a page), with the same token and errors as [`request`].
async fn request_text(config: &Config, path: &str) -> anyhow::Result<String> {
    let token = token(config)?;
    let url = format!("http://{}{path}", config.admin.listen);
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        anyhow::bail!(
            "{status}: {}",
            value["error"].as_str().unwrap_or("request refused")
        );
    }
    Ok(text)
}

async fn request(
    config: &Config,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let token = token(config)?;
    let url = format!("http://{}{path}", config.admin.listen);
    let mut req = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    answer(config, &url, req).await
}

/// A PUT of raw bytes (a document's version), with the same token and errors as [`request`].
async fn request_bytes(
    config: &Config,
    path: &str,
    bytes: Vec<u8>,
    media_type: Option<String>,
) -> anyhow::Result<Value> {
    let token = token(config)?;
    let url = format!("http://{}{path}", config.admin.listen);
    let mut req = reqwest::Client::new()
        .put(&url)
        .bearer_auth(token)
        .body(bytes);
    if let Some(t) = media_type {
        req = req.header(reqwest::header::CONTENT_TYPE, t);
    }
    answer(config, &url, req).await
}

/// The media type of a text's file, from its extension.
fn media_type_of(path: &std::path::Path) -> Option<String> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    let t = match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "odt" => "application/vnd.oasis.opendocument.text",
        _ => return None,
    };
    Some(t.to_string())
}

/// The JSON answer of a request to the admin API, or an error that says why it failed.
async fn answer(config: &Config, url: &str, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let response = req.send().await.map_err(|e| {
        if e.is_connect() {
            anyhow::anyhow!(
                "councild is not running at http://{} (start it with `councild serve`)",
                config.admin.listen
            )
        } else {
            anyhow::anyhow!("{url}: {e}")
        }
    })?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let mut message = format!(
            "{status}: {}",
            value["error"].as_str().unwrap_or("request refused")
        );
        for p in value["problems"].as_array().into_iter().flatten() {
            message.push_str(&format!("\n  {}", cell(p)));
        }
        anyhow::bail!(message);
    }
    Ok(value)
}

/// Checks a secret election's record and says what checks, or the first thing that does
/// not (exit code 1).
fn verified(out: &mut String, record: &crate::audit::Record) -> ExitCode {
    match crate::audit::check(record) {
        Ok(checked) => {
            put!(out, "{}: the record checks", record.item);
            for (round, ballots, counts) in checked.rounds {
                let counts = match counts {
                    Some(c) => c
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => "not counted yet".into(),
                };
                put!(
                    out,
                    "  round {round}: {ballots} ballots counted, every proof checks; {counts}"
                );
            }
            ExitCode::SUCCESS
        }
        Err(why) => {
            put!(out, "{}: the record does NOT check: {why}", record.item);
            ExitCode::FAILURE
        }
    }
}
