//! Reading the configuration folder: templates, roster and workflow files, each checked,
//! every problem reported at once (`validate`, the daemon's start and `reload`).

use std::path::Path;

use crate::config::Config;
use crate::definition::{self, Known};
use crate::mail::Templates;
use crate::roster::Roster;

/// Everything read from the configuration folder, checked.
pub struct Loaded {
    pub templates: Templates,
    pub roster: Roster,
    pub workflows: Vec<definition::Workflow>,
}

/// Reads templates, roster and workflows; every problem is reported at once.
pub fn load(config: &Config) -> anyhow::Result<Loaded> {
    let report = check(config, std::slice::from_ref(&config.workflows.dir));
    let problems: Vec<String> = report.problems().cloned().collect();
    if !problems.is_empty() {
        anyhow::bail!("the configuration has problems:\n{}", problems.join("\n"));
    }
    report.log_warnings();
    let workflows = report
        .files
        .into_iter()
        .filter_map(|(_, r)| r.ok())
        .collect();
    match (report.templates, report.roster) {
        (Some(templates), Some(roster)) => Ok(Loaded {
            templates,
            roster,
            workflows,
        }),
        _ => anyhow::bail!("the configuration could not be read"),
    }
}

/// The admin API's `reload`: the workflow folder, templates and roster read and checked again.
pub fn reloader(config: Config) -> crate::http::Reload {
    crate::http::Reload::new(move || {
        let report = check(&config, std::slice::from_ref(&config.workflows.dir));
        let problems: Vec<String> = report.problems().cloned().collect();
        if !problems.is_empty() {
            return Err(problems);
        }
        report.log_warnings();
        let templates = report
            .templates
            .ok_or_else(|| vec!["the templates could not be read".to_string()])?;
        let roster = report
            .roster
            .ok_or_else(|| vec!["the roster could not be read".to_string()])?;
        let workflows = report
            .files
            .into_iter()
            .filter_map(|(_, r)| r.ok())
            .collect();
        Ok((workflows, templates, roster))
    })
}

/// What `validate` found: problems of the templates and roster, and each workflow file.
pub struct Report {
    pub templates: Option<Templates>,
    pub roster: Option<Roster>,
    /// Problems outside workflow files: templates, roster, unreadable folders.
    pub general: Vec<String>,
    pub files: Vec<(
        std::path::PathBuf,
        Result<definition::Workflow, Vec<String>>,
    )>,
}

impl Report {
    /// What `validate` would warn of, in the daemon's log (at start and on reload): a file
    /// in force with a gap an operator should know of.
    fn log_warnings(&self) {
        for (file, w) in self
            .files
            .iter()
            .filter_map(|(f, r)| Some((f, r.as_ref().ok()?)))
        {
            for warning in &w.warnings {
                let at = warning.pos;
                tracing::warn!(
                    workflow = %w.name,
                    "{}:{}:{}: {}",
                    file.display(),
                    at.line,
                    at.col,
                    warning.message
                );
            }
        }
    }

    pub fn problems(&self) -> impl Iterator<Item = &String> {
        self.general.iter().chain(
            self.files
                .iter()
                .filter_map(|(_, r)| r.as_ref().err())
                .flatten(),
        )
    }
}

/// Checks templates (rendering each with sample data), the roster, and the workflow files
/// under `paths`, including that no two files define the same workflow.
pub fn check(config: &Config, paths: &[std::path::PathBuf]) -> Report {
    let mut general = Vec::new();
    let dir = &config.workflows.templates;
    let templates = match Templates::load(dir) {
        Ok(t) => {
            general.extend(t.check(dir, &crate::templates::sample_data()));
            general.extend(t.check(dir, &crate::templates::secret_sample_data()));
            general.extend(t.check_daemon_mails(dir));
            // The daemon itself sends these, whatever the workflows say.
            for name in [
                "mail-failed",
                "reply-not-understood",
                crate::engine::BALLOT_EXTENDED,
                crate::engine::BALLOT_CANCELLED,
            ] {
                if !t.names().contains(name) {
                    general.push(format!(
                        "{}: template `{name}` is missing; councild sends it itself",
                        dir.join(crate::templates::DEFAULT_LANGUAGE).display()
                    ));
                }
            }
            Some(t)
        }
        Err(e) => {
            general.extend(e);
            None
        }
    };
    let roster = read_roster(&config.council.roster)
        .map_err(|e| general.extend(e))
        .ok();
    let names = templates.as_ref().map(Templates::names);
    let known = Known {
        templates: names.as_ref(),
        roster: roster.as_ref(),
    };
    let mut files = Vec::new();
    for path in paths {
        match workflow_files(path) {
            Ok(list) => files.extend(list),
            Err(e) => general.push(format!("{}: {e}", path.display())),
        }
    }
    let mut results: Vec<(
        std::path::PathBuf,
        Result<definition::Workflow, Vec<String>>,
    )> = Vec::new();
    for file in files {
        let result = match std::fs::read_to_string(&file) {
            Err(e) => Err(vec![format!("{}: {e}", file.display())]),
            Ok(source) => definition::load(&source, &known).map_err(|inv| {
                inv.0
                    .iter()
                    .map(|d| format!("{}:{d}", file.display()))
                    .collect()
            }),
        };
        let result = match result {
            Ok(w) => match results
                .iter()
                .find(|(_, r)| r.as_ref().is_ok_and(|o| o.name == w.name))
            {
                Some((other, _)) => Err(vec![format!(
                    "{}:1:1: workflow `{}` is also defined in {}",
                    file.display(),
                    w.name,
                    other.display()
                )]),
                None => Ok(w),
            },
            Err(e) => Err(e),
        };
        // Each template as this workflow's mails will have it, not only with every datum.
        let result = match (result, &templates) {
            (Ok(w), Some(t)) => {
                let problems = t.check_uses(&config.workflows.templates, &w);
                if problems.is_empty() {
                    Ok(w)
                } else {
                    Err(problems)
                }
            }
            (result, _) => result,
        };
        results.push((file, result));
    }
    Report {
        templates,
        roster,
        general,
        files: results,
    }
}

fn read_roster(path: &Path) -> Result<Roster, Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{}: {e}", path.display())])?;
    Roster::parse(&text, crate::mail::is_address).map_err(|inv| {
        inv.0
            .iter()
            .map(|d| format!("{}:{d}", path.display()))
            .collect()
    })
}

/// The workflow files of a folder (`*.yaml`, `*.yml`), sorted, or the one file given.
fn workflow_files(path: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    Ok(files)
}
