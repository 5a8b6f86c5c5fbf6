//! The `reviews` command: review requests made from the block page, listed, shown and decided
//! until the console exists. Like `logs`, it asks the running appliance over
//! `state/control.sock` (a JSON line `{"reviews": …}`), or opens the store itself when the
//! appliance is stopped.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hedgerow_store::{ReviewRequest, ReviewStatus, Store};
use serde::{Deserialize, Serialize};

use crate::CONTROL_SOCKET;

#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum ReviewCommand {
    /// Review requests, newest first (the default command).
    List {
        /// Only requests in this state: pending, approved or declined.
        #[arg(long, value_parser = parse_status)]
        status: Option<ReviewStatus>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object a line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One request in full, by the reference on its block page.
    Show {
        #[arg(value_name = "REFERENCE")]
        reference: String,
    },
    /// Decide a request: the requester sees the status (and note) on the block page server.
    Decide {
        #[arg(value_name = "REFERENCE")]
        reference: String,
        /// approved or declined.
        #[arg(value_parser = parse_status)]
        status: ReviewStatus,
        /// What to tell the requester.
        #[arg(long)]
        note: Option<String>,
        /// Who decided, for the audit log (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
}

fn parse_status(s: &str) -> Result<ReviewStatus, String> {
    match s {
        "pending" => Ok(ReviewStatus::Pending),
        "approved" => Ok(ReviewStatus::Approved),
        "declined" => Ok(ReviewStatus::Declined),
        _ => Err(format!("{s:?}: expected pending, approved or declined")),
    }
}

/// A query over the control socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Query {
    Reviews(Ask),
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Ask {
    List {
        status: Option<ReviewStatus>,
        limit: usize,
    },
    Show(u64),
    Decide {
        reference: u64,
        status: ReviewStatus,
        by: String,
        note: Option<String>,
    },
}

/// Whether a control socket line is a `reviews` query.
pub(crate) fn is_query(line: &str) -> bool {
    serde_json::from_str::<Query>(line).is_ok()
}

/// Answers a `reviews` query line from the store: JSON lines, or one `{"error": …}`.
pub(crate) fn answer_line(store: &Store, line: &str) -> String {
    match serde_json::from_str::<Query>(line) {
        Ok(Query::Reviews(ask)) => answer(store, ask).join("\n"),
        Err(e) => serde_json::json!({ "error": format!("bad query: {e}") }).to_string(),
    }
}

fn answer(store: &Store, ask: Ask) -> Vec<String> {
    let json = |r: &ReviewRequest| serde_json::to_string(r).unwrap_or_default();
    let error = |e: String| vec![serde_json::json!({ "error": e }).to_string()];
    match ask {
        Ask::List { status, limit } => match store.reviews(status, limit) {
            Ok(v) => v.iter().map(json).collect(),
            Err(e) => error(e.to_string()),
        },
        Ask::Show(reference) => match store.review(reference) {
            Ok(Some(r)) => vec![json(&r)],
            Ok(None) => error(format!("no review request with reference {reference:016x}")),
            Err(e) => error(e.to_string()),
        },
        Ask::Decide {
            reference,
            status,
            by,
            note,
        } => {
            match store.decide_review(
                reference,
                status,
                &by,
                note.as_deref(),
                jiff::Timestamp::now(),
            ) {
                Ok(r) => vec![json(&r)],
                Err(e) => error(e.to_string()),
            }
        }
    }
}

/// Runs `ask` in the appliance if it is running, else on the store directly.
fn ask(config: &hedgerow_config::Config, ask: Ask) -> Result<Vec<ReviewRequest>> {
    let sock = config.server.state_dir.join(CONTROL_SOCKET);
    let lines = match std::os::unix::net::UnixStream::connect(&sock) {
        Ok(mut stream) => {
            let mut line = serde_json::to_string(&Query::Reviews(ask))?;
            line.push('\n');
            stream.write_all(line.as_bytes())?;
            stream.shutdown(std::net::Shutdown::Write)?;
            std::io::BufReader::new(stream)
                .lines()
                .collect::<std::io::Result<Vec<String>>>()?
        }
        Err(_) => {
            let store = crate::logs::open_store(config)?;
            answer(&store, ask)
        }
    };
    let mut out = Vec::new();
    for l in lines.iter().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(l).context("reading the answer")?;
        if let Some(e) = v.get("error") {
            bail!("{}", e.as_str().unwrap_or_default());
        }
        out.push(serde_json::from_value(v).context("reading a review request")?);
    }
    Ok(out)
}

fn parse_reference(text: &str) -> Result<u64> {
    let t = text.trim();
    if t.is_empty() || t.len() > 16 {
        bail!("{text:?}: a reference is the 16 hex digits shown on the block page");
    }
    u64::from_str_radix(t, 16).with_context(|| {
        format!("{text:?}: a reference is the 16 hex digits shown on the block page")
    })
}

pub(crate) fn reviews(config: &Path, command: Option<ReviewCommand>) -> Result<ExitCode> {
    let config = hedgerow_config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tz = jiff::tz::TimeZone::get(&config.server.timezone)?;
    let when = |t: jiff::Timestamp| {
        t.to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let command = command.unwrap_or(ReviewCommand::List {
        status: None,
        limit: 100,
        json: false,
    });
    match command {
        ReviewCommand::List {
            status,
            limit,
            json,
        } => {
            let all = ask(&config, Ask::List { status, limit })?;
            if json {
                for r in &all {
                    println!("{}", serde_json::to_string(r)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<16}  {:<19}  {:<8}  {:<12}  {:<16}  {:<30}  reason",
                "reference", "asked", "status", "group", "device", "target"
            );
            for r in &all {
                println!(
                    "{:016x}  {:<19}  {:<8}  {:<12}  {:<16}  {:<30}  {}",
                    r.reference,
                    when(r.asked),
                    r.status,
                    r.group.as_deref().unwrap_or("-"),
                    r.device.as_deref().unwrap_or("-"),
                    r.target,
                    r.reason.replace('\n', " ")
                );
            }
            println!("{} review request(s)", all.len());
        }
        ReviewCommand::Show { reference } => {
            let reference = parse_reference(&reference)?;
            for r in ask(&config, Ask::Show(reference))? {
                println!("reference: {:016x}", r.reference);
                println!("status:    {}", r.status);
                println!("asked:     {}", when(r.asked));
                if let Some(b) = r.blocked {
                    println!("blocked:   {}", when(b));
                }
                println!("client:    {}", r.client);
                println!("device:    {}", r.device.as_deref().unwrap_or("-"));
                println!("user:      {}", r.user.as_deref().unwrap_or("-"));
                println!("group:     {}", r.group.as_deref().unwrap_or("-"));
                println!("target:    {}", r.target);
                println!("tier:      {}", r.tier);
                println!(
                    "category:  {}",
                    r.category
                        .as_ref()
                        .map_or("-".into(), |c| format!("{c} ({})", c.display_name()))
                );
                println!("rule:      {}", r.rule.as_deref().unwrap_or("-"));
                println!("name:      {}", r.name.as_deref().unwrap_or("-"));
                println!("reason:    {}", r.reason);
                if let Some(d) = r.decided {
                    println!(
                        "decided:   {} by {}",
                        when(d),
                        r.decided_by.as_deref().unwrap_or("-")
                    );
                }
                if let Some(n) = &r.note {
                    println!("note:      {n}");
                }
            }
        }
        ReviewCommand::Decide {
            reference,
            status,
            note,
            by,
        } => {
            let reference = parse_reference(&reference)?;
            let by = by
                .or_else(|| std::env::var("SUDO_USER").ok())
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "technician".into());
            let decided = ask(
                &config,
                Ask::Decide {
                    reference,
                    status,
                    by,
                    note,
                },
            )?;
            for r in decided {
                println!(
                    "review request {:016x} for {} is now {}",
                    r.reference, r.target, r.status
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
