//! The command line: `serve`, `validate`, and the commands that talk to a running daemon
//! through its admin API (`start`, `status`, `signal`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::Config;
use crate::daemon;
use crate::mail::Templates;

const DEFAULT_CONFIG: &str = "config/councild.toml";

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
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve,
    /// Check workflow files (default: the workflows folder); exits 1 on any problem.
    Validate { paths: Vec<PathBuf> },
    /// Start an item of a workflow.
    Start {
        workflow: String,
        /// An input, as NAME=VALUE (repeatable).
        #[arg(long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
    },
    /// Show the daemon's status, or one item with its event log.
    Status { item: Option<String> },
    /// Record a signal on an item (e.g. a ratification deposited).
    Signal {
        item: String,
        name: String,
        #[arg(long)]
        member: Option<String>,
        /// JSON data to keep with the signal.
        #[arg(long)]
        data: Option<String>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = match &cli.config {
        Some(path) => Config::load(path, true)?,
        None => Config::load(&PathBuf::from(DEFAULT_CONFIG), false)?,
    };
    match cli.command {
        Command::Serve => daemon::serve(config).await.map(|()| ExitCode::SUCCESS),
        Command::Validate { paths } => Ok(validate(&config, paths)),
        Command::Start { workflow, inputs } => {
            let mut map = BTreeMap::new();
            for input in inputs {
                let (k, v) = input
                    .split_once('=')
                    .with_context(|| format!("--input `{input}`: write NAME=VALUE"))?;
                map.insert(k.to_string(), v.to_string());
            }
            let answer = request(
                &config,
                reqwest::Method::POST,
                "/api/items",
                Some(json!({"workflow": workflow, "inputs": map})),
            )
            .await?;
            println!("{}", answer["id"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { item } => {
            let path = item.map_or_else(|| "/status".to_string(), |i| format!("/api/items/{i}"));
            let answer = request(&config, reqwest::Method::GET, &path, None).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(ExitCode::SUCCESS)
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
            let answer = request(
                &config,
                reqwest::Method::POST,
                &format!("/api/items/{item}/signals/{name}"),
                Some(json!({"member": member, "data": data})),
            )
            .await?;
            let stage = answer["item"]["stage"].as_str().unwrap_or_default();
            println!(
                "recorded ({}); item {item} is at stage {stage}",
                answer["event"].as_str().unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn validate(config: &Config, paths: Vec<PathBuf>) -> ExitCode {
    let templates = match Templates::load(&config.workflows.templates) {
        Ok(t) => t,
        Err(errors) => {
            for e in errors {
                println!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let paths = if paths.is_empty() {
        vec![config.workflows.dir.clone()]
    } else {
        paths
    };
    let mut failed = false;
    for path in paths {
        let files = match crate::definition::files(&path) {
            Ok(f) => f,
            Err(e) => {
                println!("{}: {e}", path.display());
                failed = true;
                continue;
            }
        };
        for file in files {
            let (_, problems) = daemon::validate(&file, &templates);
            if problems.is_empty() {
                println!("{}: ok", file.display());
            } else {
                failed = true;
                for p in problems {
                    println!("{p}");
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One call to the running daemon's admin API.
async fn request(
    config: &Config,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let token = config.admin_token(false)?;
    let url = format!("http://{}{path}", config.admin.listen);
    let mut req = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
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
        anyhow::bail!(
            "{status}: {}",
            value["error"].as_str().unwrap_or("request refused")
        );
    }
    Ok(value)
}
