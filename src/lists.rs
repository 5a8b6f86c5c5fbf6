//! `hedgerow lists status`: each list's source, entries, age, last attempt and its result,
//! read from the configuration and `STATE/lists/` (no running appliance needed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ListsCommand {
    /// Each list: where it comes from, entries, age, the last download attempt and its result.
    Status {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn lists(command: ListsCommand) -> Result<ExitCode> {
    match command {
        ListsCommand::Status { config, json } => status(&config, json),
    }
}

fn status(path: &Path, json: bool) -> Result<ExitCode> {
    let config = match hedgerow_config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    let rows: Vec<serde_json::Value> = rows(&config)
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "list": r.name,
                "kind": r.kind,
                "source": r.source,
                "in_force": r.in_force,
                "entries": r.entries,
                "age_seconds": r.age_seconds,
                "max_age_seconds": r.max_age_seconds,
                "stale": r.stale,
                "last_attempt": r.last_attempt,
                "result": r.result,
                "staged": r.staged,
            })
        })
        .collect();
    if json {
        for r in &rows {
            println!("{r}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<9} {:>9} {:>10}  {:<25} {:<50} RESULT",
        "LIST", "KIND", "ENTRIES", "AGE", "LAST ATTEMPT", "SOURCE"
    );
    for r in &rows {
        let text = |k: &str| match &r[k] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".into(),
            v => v.to_string(),
        };
        let age = r["age_seconds"].as_u64().map_or("-".into(), human);
        let stale = if r["stale"].as_bool() == Some(true) && !r["max_age_seconds"].is_null() {
            " (STALE)"
        } else {
            ""
        };
        println!(
            "{:<20} {:<9} {:>9} {:>10}  {:<25} {:<50} {}{stale}",
            text("list"),
            text("kind"),
            text("entries"),
            age,
            text("last_attempt"),
            text("source"),
            text("result"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One list's row, as `lists status` prints it.
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) category: Option<String>,
    pub(crate) source: String,
    /// The list's file is there (in force).
    pub(crate) in_force: bool,
    pub(crate) downloaded: bool,
    pub(crate) entries: Option<u64>,
    pub(crate) age_seconds: Option<u64>,
    pub(crate) max_age_seconds: Option<u64>,
    pub(crate) stale: bool,
    pub(crate) last_attempt: Option<String>,
    pub(crate) result: String,
    pub(crate) staged: bool,
}

fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Each list's source, entries, age and last result, from the configuration and
/// `STATE/lists/`.
pub(crate) fn rows(config: &hedgerow_config::Config) -> Vec<Row> {
    let now = jiff::Timestamp::now();
    config
        .lists
        .iter()
        .map(|l| match &l.fetch {
            Some(f) => {
                let s = hedgerow_lists::status(&config.server.state_dir, &l.name);
                let age = s.age(now);
                let stale = age.is_some_and(|a| a > f.max_age);
                Row {
                    name: l.name.clone(),
                    kind: word(&l.kind),
                    category: l.category.as_ref().map(|c| c.as_str().to_owned()),
                    source: f.url.to_string(),
                    in_force: l.path.is_file(),
                    downloaded: true,
                    entries: s.entries.map(|n| n as u64),
                    age_seconds: age.map(|a| a.as_secs()),
                    max_age_seconds: Some(f.max_age.as_secs()),
                    stale: stale || age.is_none(),
                    last_attempt: s.attempted.map(|t| t.to_string()),
                    result: if s.result.is_empty() {
                        "not fetched yet".to_owned()
                    } else {
                        s.result
                    },
                    staged: hedgerow_lists::staged_path(l).is_file(),
                }
            }
            None => {
                let age = std::fs::metadata(&l.path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| std::time::SystemTime::now().duration_since(m).ok());
                Row {
                    name: l.name.clone(),
                    kind: word(&l.kind),
                    category: l.category.as_ref().map(|c| c.as_str().to_owned()),
                    source: l.path.display().to_string(),
                    in_force: l.path.is_file(),
                    downloaded: false,
                    entries: None,
                    age_seconds: age.map(|a| a.as_secs()),
                    max_age_seconds: None,
                    stale: false,
                    last_attempt: None,
                    result: if l.path.is_file() {
                        "file".to_owned()
                    } else {
                        "file missing".to_owned()
                    },
                    staged: false,
                }
            }
        })
        .collect()
}

fn human(s: u64) -> String {
    if s >= 86_400 {
        format!("{}d{}h", s / 86_400, s % 86_400 / 3600)
    } else if s >= 3600 {
        format!("{}h{}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
