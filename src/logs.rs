//! The log store in the running appliance (recorder, purge) and the `logs`, `breaches`,
//! `export` and `import` commands.
//!
//! sled lets one process open a database, so while the appliance runs the commands ask it
//! through its API (`STATE/api.sock`, signed in: who may read what, and every view in the
//! audit log, is decided there); when it is stopped they open the store themselves and record
//! the view under the local user's name. Either way the answer is JSON lines
//! ([`hedgerow_admin::records`]), printed as it comes ([`hedgerow_admin::report`]): a query
//! over millions of events holds a batch of them at a time, in the appliance and in the
//! command.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hedgerow_admin::records::{self, Line, Query};
use hedgerow_admin::report::{self, Format, Printer};
use hedgerow_config::Config;
use hedgerow_model::{Category, Disposition, Severity};
use hedgerow_store::{EventFilter, Recorder, RecorderOptions, Retention, Store, StoreOptions};

use crate::admin::{API_SOCKET, Client, Creds};

/// The store's folder inside the state directory.
pub(crate) fn store_dir(config: &Config) -> PathBuf {
    config.server.state_dir.join("store")
}

pub(crate) fn open_store(config: &Config) -> Result<Store> {
    let options = StoreOptions {
        cache_bytes: config.logs.cache_mb << 20,
        ..StoreOptions::default()
    };
    Store::open(&store_dir(config), &options).map_err(|e| {
        if e.is_permission_denied() {
            no_access(config)
        } else {
            // The error names the store's folder already.
            anyhow!(e)
        }
    })
}

/// The one sentence for a user who may not read the appliance's state.
fn no_access(config: &Config) -> anyhow::Error {
    anyhow!(
        "you have no access to the appliance's state directory {}: run this as root or as the user the appliance runs as",
        config.server.state_dir.display()
    )
}

pub(crate) fn recorder(store: Arc<Store>, config: &Config) -> Result<Arc<Recorder>> {
    Recorder::start(store, recorder_options(config)).context("starting the log writer")
}

/// The recorder's options from the configuration (at start, and on every reload).
pub(crate) fn recorder_options(config: &Config) -> RecorderOptions {
    RecorderOptions {
        capacity: config.logs.queue,
        interval: config.logs.flush_interval,
        rules: config.breaches.rules.clone(),
        window: config.breaches.window,
        access_log: config.server.access_log,
    }
}

/// Purges by the retention `keep()` gives (read at each purge, so a reload changes it) every
/// hour, and at once when `now` is notified; off the async workers.
pub(crate) fn spawn_purge(
    store: Arc<Store>,
    keep: impl Fn() -> Retention + Send + 'static,
    clock: Arc<dyn hedgerow_model::Clock>,
    now: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = now.notified() => {}
            }
            let store = store.clone();
            let (at, keep) = (clock.now(), keep());
            match tokio::task::spawn_blocking(move || store.purge(at, keep)).await {
                Ok(Ok(r)) if !r.days_dropped.is_empty() || r.breaches_removed > 0 => {
                    tracing::info!(days = ?r.days_dropped, breaches = r.breaches_removed, "retention purge");
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("retention purge: {e}"),
                Err(e) => tracing::error!("retention purge task: {e}"),
            }
        }
    })
}

// === Asking: the running appliance's API, or the store when it is stopped ===

/// Who reads the store when the appliance is stopped, for the audit log: the local user
/// (whoever can read the state directory can read the store).
pub(crate) fn local_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    format!("local:{user}")
}

/// Whether the appliance on `config`'s state directory is running (its API socket answers).
/// A socket the caller may not open is a clear error.
fn running(config: &Config) -> Result<bool> {
    let sock = config.server.state_dir.join(API_SOCKET);
    match std::os::unix::net::UnixStream::connect(&sock) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(no_access(config)),
        Err(_) => Ok(false),
    }
}

/// Runs `q` in the appliance if it is running (signed in with `creds`), else on the store
/// directly, handing each value line of the answer to `each` as it arrives. Fails on an
/// error answer and on an answer cut short.
pub(crate) fn ask(
    config: &Config,
    creds: &Creds,
    q: Query,
    each: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<()> {
    let mut ended = false;
    let mut take = |line: &[u8]| -> Result<()> {
        let line = std::str::from_utf8(line).context("reading the appliance's answer")?;
        if line.is_empty() {
            return Ok(());
        }
        match records::read_line(line)? {
            Line::Error(e) => bail!("{e}"),
            Line::End => {
                ended = true;
                Ok(())
            }
            Line::Value(v) => each(v),
        }
    };
    if running(config)? {
        let mut client = Client::at(config.server.state_dir.join(API_SOCKET), creds);
        let r = q.request();
        client.stream(r.method, &r.path, r.body, &mut take)?;
    } else {
        let store = open_store(config)?;
        records::record_view(&store, jiff::Timestamp::now(), &local_actor(), &q)?;
        let mut failed = None;
        let result = records::answer(&store, q, false, &mut |line| {
            take(line).map_err(|e| {
                failed = Some(e);
                std::io::Error::other("stopped")
            })
        });
        if let Some(e) = failed {
            return Err(e);
        }
        result?;
    }
    if !ended {
        bail!("the appliance's answer was cut short (did it stop?)");
    }
    Ok(())
}

/// Whether `e` is a write to a closed pipe (`hedgerow logs | head`): the reader has what it
/// wanted, so the command ends quietly.
fn closed_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Ends a printing command: success if the output pipe closed early.
fn finish(result: Result<()>) -> Result<ExitCode> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if closed_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e),
    }
}

/// Standard output, buffered: one write call per 64 KiB, not per row.
fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock())
}

pub(crate) fn load_config(path: &Path) -> Result<(Config, jiff::tz::TimeZone)> {
    let config = hedgerow_config::load(path).map_err(|e| anyhow!("{e}"))?;
    let tz = jiff::tz::TimeZone::get(&config.server.timezone)?;
    Ok((config, tz))
}

// === logs ===

#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    #[arg(long, value_name = "PATH")]
    pub(crate) config: PathBuf,
    /// Read an API token from this file (else `HEDGEROW_TOKEN`, else `--as`).
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
    /// Sign in as this account with its password (`--user` filters by user name here).
    #[arg(long = "as", value_name = "ACCOUNT")]
    pub(crate) sign_in: Option<String>,
    /// With `--as`: also ask for the account's authenticator (TOTP) code.
    #[arg(long)]
    pub(crate) totp: bool,
    /// A device name or its start, in any case: `library` matches Library-PC-3.
    #[arg(long)]
    pub(crate) device: Option<String>,
    #[arg(long)]
    pub(crate) ip: Option<IpAddr>,
    /// A user name or its start, in any case.
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// A group, in any case.
    #[arg(long)]
    pub(crate) group: Option<String>,
    #[arg(long, value_parser = report::parse_category)]
    pub(crate) category: Option<Category>,
    /// What happened, in any case: allow, block, rewrite, refused, rate-limited or error.
    #[arg(long, value_parser = report::parse_verdict)]
    pub(crate) verdict: Option<Disposition>,
    /// A site: the host and every name under it (`bbc.co.uk` matches www.bbc.co.uk).
    #[arg(long)]
    pub(crate) site: Option<String>,
    /// Text in the search terms, in any case.
    #[arg(long)]
    pub(crate) search: Option<String>,
    /// From: a span back from now (1h, 90m, 2d), today, yesterday, a local date
    /// (2026-11-23), a local date and time (2026-11-23 09:00) or a time today (09:00).
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Up to (not including): as --since.
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// At most this many, the most recent.
    #[arg(long, default_value_t = 200)]
    pub(crate) limit: usize,
    /// table, csv or json (one JSON object a line).
    #[arg(long, default_value = "table")]
    pub(crate) format: Format,
}

pub(crate) fn logs(args: LogsArgs) -> Result<ExitCode> {
    let (config, tz) = load_config(&args.config)?;
    let now = jiff::Timestamp::now();
    let when = |s: &Option<String>| {
        s.as_deref()
            .map(|s| report::parse_when(s, &tz, now))
            .transpose()
            .map_err(|e| anyhow!(e))
    };
    let filter = EventFilter {
        from: when(&args.since)?,
        to: when(&args.until)?,
        device: args.device,
        ip: args.ip,
        user: args.user,
        group: args.group,
        category: args.category,
        verdict: args.verdict,
        site: args.site,
        search: args.search,
        limit: Some(args.limit),
    };
    let mut printer = Printer::new(args.format, stdout(), &report::EVENT_HEADER)?;
    let creds = Creds {
        token_file: args.token_file,
        account: args.sign_in,
        totp: args.totp,
    };
    let result = ask(
        &config,
        &creds,
        Query::Logs(Box::new(filter)),
        &mut |line| Ok(printer.event(line, &tz)?),
    )
    .and_then(|()| Ok(printer.finish()?));
    finish(result)
}

// === breaches ===

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BreachCommand {
    /// List breaches, newest first.
    List {
        /// Only these severities and above: low, medium, high, critical (any case).
        #[arg(long, value_parser = report::parse_severity)]
        severity: Option<Severity>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// table, csv or json (one JSON object a line).
        #[arg(long, default_value = "table")]
        format: Format,
    },
    /// Show one breach in full: every request that raised it, and how its alerts went.
    Show { id: u64 },
}

pub(crate) fn breaches(
    config: &Path,
    creds: &Creds,
    cmd: Option<BreachCommand>,
) -> Result<ExitCode> {
    let (config, tz) = load_config(config)?;
    let cmd = cmd.unwrap_or(BreachCommand::List {
        severity: None,
        limit: 100,
        format: Format::Table,
    });
    let result = match cmd {
        BreachCommand::List {
            severity,
            limit,
            format,
        } => (|| {
            let mut printer = Printer::new(format, stdout(), &report::BREACH_HEADER)?;
            let q = Query::Breaches {
                min: severity,
                limit,
            };
            ask(
                &config,
                creds,
                q,
                &mut |line| Ok(printer.breach(line, &tz)?),
            )?;
            Ok(printer.finish()?)
        })(),
        BreachCommand::Show { id } => (|| {
            let mut found: Option<hedgerow_store::Breach> = None;
            ask(&config, creds, Query::Breach(id), &mut |line| {
                found = Some(serde_json::from_str(line).context("reading the appliance's answer")?);
                Ok(())
            })?;
            let b = found.context("the appliance sent no breach")?;
            Ok(report::write_breach(&mut stdout(), &b, &tz)?)
        })(),
    };
    finish(result)
}

// === export and import ===

/// What an export holds, counted from its lines as they are written.
#[derive(Default, serde::Serialize)]
struct Counted {
    events: u64,
    breaches: u64,
    audit: u64,
    reviews: u64,
    admin: u64,
}

impl Counted {
    fn line(&mut self, line: &[u8]) {
        for (kind, n) in [
            (&b"{\"kind\":\"access\""[..], &mut self.events),
            (b"{\"kind\":\"breach\"", &mut self.breaches),
            (b"{\"kind\":\"audit\"", &mut self.audit),
            (b"{\"kind\":\"review\"", &mut self.reviews),
            (b"{\"kind\":\"admin\"", &mut self.admin),
        ] {
            if line.starts_with(kind) {
                *n += 1;
            }
        }
    }
}

/// Writes the whole store to `out`: through the running appliance's API (signed in, as the
/// DSL), or from the store itself when it is stopped. The file appears whole or not at all.
pub(crate) fn export(config: &Path, creds: &Creds, out: &Path) -> Result<ExitCode> {
    let (config, _) = load_config(config)?;
    let out = std::path::absolute(out)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = out.with_file_name(format!(".{name}.part"));
    let mut file = std::io::BufWriter::with_capacity(
        64 << 10,
        std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?,
    );
    let mut counted = Counted::default();
    let result = if running(&config)? {
        let mut client = Client::at(config.server.state_dir.join(API_SOCKET), creds);
        client.stream("GET", "/api/v1/export", None, &mut |line| {
            counted.line(line);
            file.write_all(line)?;
            file.write_all(b"\n")?;
            Ok(())
        })
    } else {
        (|| {
            let store = open_store(&config)?;
            records::record_export(&store, jiff::Timestamp::now(), &local_actor(), Some(&out))?;
            let n = store.export(&mut file)?;
            counted = Counted {
                events: n.events,
                breaches: n.breaches,
                audit: n.audit,
                reviews: n.reviews,
                admin: n.admin,
            };
            Ok(())
        })()
    };
    let result = result.and_then(|()| {
        let f = file.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&part, &out)?;
        Ok(())
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&part);
        return Err(e);
    }
    println!(
        "exported to {}: {}",
        out.display(),
        serde_json::to_string(&counted)?
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn import(config: &Path, input: &Path) -> Result<ExitCode> {
    let (config, _) = load_config(config)?;
    if running(&config)? {
        bail!("the appliance is running: stop it before importing into its store");
    }
    let store = open_store(&config)?;
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let n = store.import(std::io::BufReader::new(file))?;
    store.append_audit(
        jiff::Timestamp::now(),
        &local_actor(),
        "import",
        &serde_json::json!({"file": input.display().to_string(), "events": n.events, "breaches": n.breaches, "audit": n.audit, "admin": n.admin}).to_string(),
    )?;
    println!(
        "imported {} access events, {} breaches, {} audit entries, {} admin records",
        n.events, n.breaches, n.audit, n.admin
    );
    Ok(ExitCode::SUCCESS)
}

/// The retention from the configuration.
pub(crate) fn retention(config: &Config) -> Retention {
    Retention {
        access: config.logs.access_retention,
        breaches: config.logs.breach_retention,
    }
}
