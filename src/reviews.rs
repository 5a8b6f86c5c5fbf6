//! The `reviews` command: review requests made from the block page, listed, shown and decided
//! until the console exists. Like `logs`, it asks the running appliance through its API
//! (signed in; decisions are the signed-in account's), or opens the store itself when the
//! appliance is stopped.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use hedgerow_admin::records::{self, Query};
use hedgerow_admin::report;
use hedgerow_store::{ReviewRequest, ReviewStatus};

use crate::admin::{API_SOCKET, Client, Creds};
use crate::logs::{ask, load_config, local_actor};

#[derive(Debug, Clone, clap::Subcommand)]
pub(crate) enum ReviewCommand {
    /// Review requests, newest first (the default command).
    List {
        /// Only requests in this state: pending, approved, declined or change-requested.
        #[arg(long, value_parser = report::parse_review_status)]
        status: Option<ReviewStatus>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object a line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One request in full, by the reference on its block page.
    Show {
        #[arg(value_name = "REFERENCE", value_parser = report::parse_reference)]
        reference: u64,
    },
    /// Decide a request: the requester sees the status (and note) on the block page server.
    Decide {
        #[arg(value_name = "REFERENCE", value_parser = report::parse_reference)]
        reference: u64,
        /// approved or declined.
        #[arg(value_parser = report::parse_review_status)]
        status: ReviewStatus,
        /// What to tell the requester (needed to decline: the reason).
        #[arg(long)]
        note: Option<String>,
        /// Who decided, for the audit log, when the appliance is stopped (default: the login
        /// name). While it runs the decision is the signed-in account's.
        #[arg(long)]
        by: Option<String>,
    },
}

fn collect(
    config: &hedgerow_config::Config,
    creds: &Creds,
    q: Query,
) -> Result<Vec<ReviewRequest>> {
    let mut out = Vec::new();
    ask(config, creds, q, &mut |line| {
        out.push(serde_json::from_str(line).context("reading a review request")?);
        Ok(())
    })?;
    Ok(out)
}

pub(crate) fn reviews(
    config: &Path,
    creds: &Creds,
    command: Option<ReviewCommand>,
) -> Result<ExitCode> {
    let (config, tz) = load_config(config)?;
    let command = command.unwrap_or(ReviewCommand::List {
        status: None,
        limit: 100,
        json: false,
    });
    let mut out = std::io::stdout().lock();
    match command {
        ReviewCommand::List {
            status,
            limit,
            json,
        } => {
            let all = collect(&config, creds, Query::Reviews { status, limit })?;
            if json {
                for r in &all {
                    println!("{}", serde_json::to_string(r)?);
                }
                return Ok(ExitCode::SUCCESS);
            }
            report::write_reviews(&mut out, &all, &tz)?;
        }
        ReviewCommand::Show { reference } => {
            for r in collect(&config, creds, Query::Review(reference))? {
                report::write_review(&mut out, &r, &tz)?;
            }
        }
        ReviewCommand::Decide {
            reference,
            status,
            note,
            by,
        } => {
            let sock = config.server.state_dir.join(API_SOCKET);
            let r: ReviewRequest = if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                let answer = Client::at(sock, creds).send(
                    "POST",
                    &format!("/api/v1/reviews/{reference:016x}/decide"),
                    Some(serde_json::json!({ "status": status, "note": note })),
                )?;
                match answer {
                    Ok(v) => serde_json::from_value(v).context("reading the decided request")?,
                    Err((_, msg)) => bail!("{msg}"),
                }
            } else {
                let store = crate::logs::open_store(&config)?;
                let by = by.unwrap_or_else(local_actor);
                records::decide_review(
                    &store,
                    jiff::Timestamp::now(),
                    &by,
                    reference,
                    status,
                    note.as_deref(),
                )
                .map_err(|e| anyhow!("{e}"))?
            };
            println!(
                "review request {:016x} for {} is now {}",
                r.reference, r.target, r.status
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
