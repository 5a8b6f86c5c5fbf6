//! The `hedgerow` binary: command-line parsing, logging set-up and the runtime. Everything it
//! does is done by the library crates; this file wires them together and turns their typed
//! errors into messages and exit codes.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use hedgerow_model::{Host, UrlKey};
use hedgerow_policy::{BuildReport, PolicyHandle, PolicySnapshot, Target};

#[derive(Parser)]
#[command(
    name = "hedgerow",
    version,
    about = "Filtering and monitoring appliance for schools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the appliance with the configuration at PATH.
    Run {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
    },
    /// Check a configuration and every list it names; print every problem; exit 1 on errors.
    CheckConfig {
        #[arg(value_name = "PATH")]
        path: PathBuf,
    },
    /// Explain the verdict for a name or URL as a given client would get it.
    Lookup {
        #[arg(long, value_name = "PATH")]
        config: PathBuf,
        /// The client's IP address (decides the group, or the device's group).
        #[arg(long, value_name = "IP")]
        client: IpAddr,
        /// Decide as at this local time (for schedules), e.g. 2026-11-23T16:00. Default: now.
        #[arg(long, value_name = "DATETIME")]
        at: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// A host name (`example.com`) or URL (`http://example.com/page`, `example.com/page`).
        target: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::CheckConfig { path } => check_config(&path),
        Command::Lookup {
            config,
            client,
            at,
            json,
            target,
        } => lookup(&config, client, at.as_deref(), json, &target),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hedgerow: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEDGEROW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

/// Logs what a build found: list sizes and bad lines by file and line number (never the
/// line's text: it could be an illegal-tier entry).
fn log_report(report: &BuildReport) {
    for r in &report.lists {
        for b in &r.bad_lines {
            tracing::warn!(list = %r.list, "{}:{}: skipped bad line: {}", r.origin, b.line, b.reason);
        }
        if r.bad_line_count > r.bad_lines.len() {
            tracing::warn!(list = %r.list, "{}: {} more bad lines not shown", r.origin, r.bad_line_count - r.bad_lines.len());
        }
    }
    for s in &report.skipped {
        tracing::warn!(list = %s, "optional list file is absent; skipped");
    }
}

fn run(config: &Path) -> Result<ExitCode> {
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let path = config.to_owned();
        let handle = tokio::task::spawn_blocking(move || PolicyHandle::load(&path))
            .await
            .context("policy loader stopped")??;
        let handle = Arc::new(handle);
        let snap = handle.snapshot();
        std::fs::create_dir_all(&snap.config().server.state_dir).with_context(|| {
            format!(
                "creating state directory {}",
                snap.config().server.state_dir.display()
            )
        })?;
        announce(&snap);
        serve(handle).await
    })
}

fn announce(snap: &PolicySnapshot) {
    log_report(snap.report());
    let stats = snap.matcher().stats();
    tracing::info!(
        domains = stats.domains,
        urls = stats.urls,
        illegal = stats.illegal,
        regexes = stats.regexes,
        phrases = stats.phrases,
        groups = snap.config().groups.len(),
        elapsed_ms = snap.report().elapsed.as_millis() as u64,
        "policy loaded"
    );
}

/// Waits for signals: SIGHUP reloads (off the async workers), SIGINT/SIGTERM stop.
async fn serve(handle: Arc<PolicyHandle>) -> Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    tracing::info!("ready");
    loop {
        tokio::select! {
            _ = hup.recv() => {
                let h = handle.clone();
                match tokio::task::spawn_blocking(move || h.reload()).await {
                    Ok(Ok(snap)) => announce(&snap),
                    Ok(Err(e)) => tracing::error!("reload refused, previous policy still in force: {e}"),
                    Err(e) => tracing::error!("reload task failed, previous policy still in force: {e}"),
                }
            }
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    tracing::info!("stopping");
    Ok(ExitCode::SUCCESS)
}

fn check_config(path: &Path) -> Result<ExitCode> {
    let config = match hedgerow_config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!(
                "{}: {} error(s); configuration rejected",
                path.display(),
                errors.0.len()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let files = config.files.len();
    let snap = match PolicySnapshot::build(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let report = snap.report();
    for r in &report.lists {
        for b in &r.bad_lines {
            println!(
                "warning: {}:{}: skipped bad line: {}",
                r.origin, b.line, b.reason
            );
        }
    }
    for s in &report.skipped {
        println!("warning: list {s:?}: optional file absent, skipped");
    }
    let stats = snap.matcher().stats();
    println!(
        "{}: ok ({files} files, {} groups, {} lists; {} domains, {} URLs, {} illegal-tier entries, {} regexes, {} phrases; {} bad lines skipped; built in {} ms)",
        path.display(),
        snap.config().groups.len(),
        snap.config().lists.len(),
        stats.domains,
        stats.urls,
        stats.illegal,
        stats.regexes,
        stats.phrases,
        report.bad_line_count(),
        report.elapsed.as_millis()
    );
    Ok(ExitCode::SUCCESS)
}

fn lookup(
    config: &Path,
    client: IpAddr,
    at: Option<&str>,
    json: bool,
    target: &str,
) -> Result<ExitCode> {
    let snap = PolicySnapshot::load(config)?;
    let now = match at {
        None => jiff::Timestamp::now(),
        Some(text) => {
            let civil: jiff::civil::DateTime = text.parse().with_context(|| {
                format!("--at {text:?}: expected a local date and time such as 2026-11-23T16:00")
            })?;
            let tz = jiff::tz::TimeZone::get(&snap.config().server.timezone)?;
            civil.to_zoned(tz)?.timestamp()
        }
    };
    let Some(who) = snap.client(client, None) else {
        if json {
            println!(
                "{}",
                serde_json::json!({ "client": client.to_string(), "refused": true })
            );
        } else {
            println!("client {client}: in no configured network; DNS and proxy refuse it");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let (kind, verdict) = if target.contains('/') {
        let url = UrlKey::parse(target).with_context(|| format!("{target:?} is not a URL"))?;
        ("url", snap.decide(who.group, Target::Url(&url), now))
    } else {
        let host = Host::parse(target).with_context(|| format!("{target:?} is not a host name"))?;
        ("host", snap.decide(who.group, Target::Host(&host), now))
    };
    if json {
        let out = serde_json::json!({
            "client": client.to_string(),
            "group": who.group_name,
            "device": who.device.map(|d| d.name.clone()),
            "target": target,
            "kind": kind,
            "verdict": verdict,
        });
        println!("{out}");
    } else {
        println!(
            "client:   {client} (group {}{})",
            who.group_name,
            who.device
                .map(|d| format!(", device {}", d.name))
                .unwrap_or_default()
        );
        println!("{kind}:{}{target}", " ".repeat(9 - kind.len()));
        println!("verdict:  {}", verdict.action);
        println!("tier:     {}", verdict.tier);
        println!(
            "category: {}",
            verdict.category.as_ref().map_or("-", |c| c.as_str())
        );
        println!("list:     {}", verdict.list.as_deref().unwrap_or("-"));
        println!("rule:     {}", verdict.rule.as_deref().unwrap_or("-"));
    }
    Ok(ExitCode::SUCCESS)
}
