//! The log store in the running appliance (recorder, purge, alerts) and the `logs`,
//! `breaches`, `export` and `import` commands.
//!
//! sled lets one process open a database, so while the appliance runs the commands ask it
//! over `state/control.sock`; when it is stopped they open the store themselves.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hedgerow_config::Config;
use hedgerow_model::{AccessEvent, Action, Category, Severity};
use hedgerow_store::{
    Breach, EventFilter, Recorder, RecorderOptions, Retention, Store, StoreOptions,
};
use serde::{Deserialize, Serialize};

use crate::CONTROL_SOCKET;

/// The store's folder inside the state directory.
pub(crate) fn store_dir(config: &Config) -> PathBuf {
    config.server.state_dir.join("store")
}

pub(crate) fn open_store(config: &Config) -> Result<Store> {
    let dir = store_dir(config);
    let options = StoreOptions {
        cache_bytes: config.logs.cache_mb << 20,
        ..StoreOptions::default()
    };
    Store::open(&dir, &options).with_context(|| {
        format!(
            "opening the log store at {} (is the appliance running without its control socket?)",
            dir.display()
        )
    })
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

/// A query sent over the control socket, one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Query {
    Logs(EventFilter),
    Breaches { min: Option<Severity>, limit: usize },
    Breach(u64),
    Export(PathBuf),
}

/// Answers a query from the store: JSON lines.
pub(crate) fn answer(store: &Store, q: Query) -> Vec<String> {
    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let result: Result<Vec<String>, hedgerow_store::StoreError> = match q {
        Query::Logs(f) => store.events(&f).map(|v| v.iter().map(json).collect()),
        Query::Breaches { min, limit } => {
            store.breaches(min, limit).map(|v| v.iter().map(json).collect())
        }
        Query::Breach(id) => store.breach(id).map(|b| vec![json(&b)]),
        Query::Export(path) => std::fs::File::create(&path)
            .map_err(hedgerow_store::StoreError::from)
            .and_then(|f| store.export(&mut std::io::BufWriter::new(f)))
            .map(|n| {
                vec![
                    serde_json::json!({"events": n.events, "breaches": n.breaches, "audit": n.audit})
                        .to_string(),
                ]
            }),
    };
    result.unwrap_or_else(|e| vec![serde_json::json!({ "error": e.to_string() }).to_string()])
}

/// Runs `q` in the appliance if it is running, else on the store directly.
fn ask(config: &Config, q: Query) -> Result<Vec<String>> {
    let sock = config.server.state_dir.join(CONTROL_SOCKET);
    match std::os::unix::net::UnixStream::connect(&sock) {
        Ok(mut stream) => {
            let mut line = serde_json::to_string(&q)?;
            line.push('\n');
            stream.write_all(line.as_bytes())?;
            stream.shutdown(std::net::Shutdown::Write)?;
            let lines: Vec<String> = std::io::BufReader::new(stream)
                .lines()
                .collect::<std::io::Result<_>>()?;
            Ok(lines.into_iter().filter(|l| !l.is_empty()).collect())
        }
        Err(_) => {
            let store = open_store(config)?;
            Ok(answer(&store, q))
        }
    }
}

/// Asks, fails on an error answer, and reads each line as a `T`.
fn ask_for<T: serde::de::DeserializeOwned>(
    config: &Config,
    q: Query,
) -> Result<(Vec<String>, Vec<T>)> {
    let lines = ask(config, q)?;
    check_error(&lines)?;
    let parsed = lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<std::result::Result<_, _>>()
        .context("reading the appliance's answer")?;
    Ok((lines, parsed))
}

fn check_error(lines: &[String]) -> Result<()> {
    if let [only] = lines
        && let Ok(serde_json::Value::Object(o)) = serde_json::from_str(only)
        && let Some(e) = o.get("error")
    {
        bail!("{}", e.as_str().unwrap_or_default());
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    #[arg(long, value_name = "PATH")]
    pub(crate) config: PathBuf,
    /// A device name from the registry or DHCP leases.
    #[arg(long)]
    pub(crate) device: Option<String>,
    #[arg(long)]
    pub(crate) ip: Option<IpAddr>,
    #[arg(long)]
    pub(crate) user: Option<String>,
    #[arg(long)]
    pub(crate) group: Option<String>,
    #[arg(long)]
    pub(crate) category: Option<Category>,
    /// allow, block or rewrite.
    #[arg(long, value_parser = parse_action)]
    pub(crate) verdict: Option<Action>,
    /// From: a local date or time (2026-11-23, 2026-11-23T09:00) or a span back from now (2h, 7d).
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Up to (not including): as --since.
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// At most this many, the most recent.
    #[arg(long, default_value_t = 200)]
    pub(crate) limit: usize,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

fn parse_action(s: &str) -> std::result::Result<Action, String> {
    match s {
        "allow" => Ok(Action::Allow),
        "block" => Ok(Action::Block),
        "rewrite" => Ok(Action::Rewrite),
        _ => Err(format!("{s:?}: expected allow, block or rewrite")),
    }
}

/// Reads `2h`/`7d` (back from now), a local date, or a local date and time.
fn parse_when(text: &str, tz: &jiff::tz::TimeZone) -> Result<jiff::Timestamp> {
    if let Ok(d) = hedgerow_config::parse_duration(text) {
        let back = jiff::SignedDuration::try_from(d)?;
        return Ok(jiff::Timestamp::now() - back);
    }
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        return Ok(dt.to_zoned(tz.clone())?.timestamp());
    }
    if let Ok(d) = text.parse::<jiff::civil::Date>() {
        return Ok(d.to_zoned(tz.clone())?.timestamp());
    }
    bail!(
        "{text:?}: expected a span such as 2h or 7d, a date such as 2026-11-23, or 2026-11-23T09:00"
    )
}

fn load_config(path: &Path) -> Result<(Config, jiff::tz::TimeZone)> {
    let config = hedgerow_config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let tz = jiff::tz::TimeZone::get(&config.server.timezone)?;
    Ok((config, tz))
}

fn local(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

pub(crate) fn logs(args: LogsArgs) -> Result<ExitCode> {
    let (config, tz) = load_config(&args.config)?;
    let filter = EventFilter {
        from: args
            .since
            .as_deref()
            .map(|s| parse_when(s, &tz))
            .transpose()?,
        to: args
            .until
            .as_deref()
            .map(|s| parse_when(s, &tz))
            .transpose()?,
        device: args.device,
        ip: args.ip,
        user: args.user,
        group: args.group,
        category: args.category,
        action: args.verdict,
        limit: Some(args.limit),
    };
    let (lines, events): (_, Vec<AccessEvent>) = ask_for(&config, Query::Logs(filter))?;
    let header = [
        "time",
        "front",
        "client",
        "device",
        "user",
        "group",
        "target",
        "type",
        "verdict",
        "category",
        "tier",
        "search",
        "reference",
    ];
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let opt = |o: Option<&str>| o.unwrap_or("-").to_owned();
            vec![
                local(e.time, &tz),
                format!("{:?}", e.front).to_lowercase(),
                e.client.to_string(),
                opt(e.device.as_deref()),
                opt(e.user.as_deref()),
                opt(e.group.as_deref()),
                e.target.clone(),
                opt(e.qtype.as_deref().or(e.method.as_deref())),
                e.action.to_string(),
                opt(e.category.as_ref().map(Category::as_str)),
                e.tier.to_string(),
                opt(e.search.as_deref()),
                e.reference.map_or("-".into(), |r| format!("{r:016x}")),
            ]
        })
        .collect();
    print(args.format, &lines, &header, &rows);
    Ok(ExitCode::SUCCESS)
}

/// Prints the answer as JSON lines (as sent), CSV or a table.
fn print(format: Format, lines: &[String], header: &[&str], rows: &[Vec<String>]) {
    match format {
        Format::Json => lines.iter().for_each(|l| println!("{l}")),
        Format::Csv => print_csv(header, rows),
        Format::Table => print_table(header, rows),
    }
}

fn print_csv(header: &[&str], rows: &[Vec<String>]) {
    let field = |f: &str| {
        if f.contains([',', '"', '\n']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_owned()
        }
    };
    println!("{}", header.join(","));
    for r in rows {
        println!(
            "{}",
            r.iter().map(|f| field(f)).collect::<Vec<_>>().join(",")
        );
    }
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, f) in widths.iter_mut().zip(r) {
            *w = (*w).max(f.chars().count()).min(60);
        }
    }
    let line = |fields: Vec<&str>| {
        let cells: Vec<String> = fields
            .iter()
            .zip(&widths)
            .map(|(f, w)| {
                let f: String = f.chars().take(*w).collect();
                format!("{f:<w$}")
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    if rows.is_empty() {
        println!("(no matching entries)");
    }
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BreachCommand {
    /// List breaches, newest first.
    List {
        /// Only these severities and above: low, medium, high, critical.
        #[arg(long, value_parser = parse_severity)]
        severity: Option<Severity>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one breach in full, with how its alerts went.
    Show { id: u64 },
}

fn parse_severity(s: &str) -> std::result::Result<Severity, String> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| format!("{s:?}: expected low, medium, high or critical"))
}

pub(crate) fn breaches(config: &Path, cmd: Option<BreachCommand>) -> Result<ExitCode> {
    let (config, tz) = load_config(config)?;
    let cmd = cmd.unwrap_or(BreachCommand::List {
        severity: None,
        limit: 100,
        format: Format::Table,
    });
    match cmd {
        BreachCommand::List {
            severity,
            limit,
            format,
        } => {
            let query = Query::Breaches {
                min: severity,
                limit,
            };
            let (lines, list): (_, Vec<Breach>) = ask_for(&config, query)?;
            let header = [
                "id", "severity", "rule", "first", "last", "count", "device", "client", "user",
                "site", "category", "alerts",
            ];
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|b| {
                    vec![
                        b.id.to_string(),
                        hedgerow_alert::severity_word(b.severity).to_lowercase(),
                        b.rule.clone(),
                        local(b.first, &tz),
                        local(b.last, &tz),
                        b.count.to_string(),
                        b.device.clone().unwrap_or_else(|| "-".into()),
                        b.client.to_string(),
                        b.user.clone().unwrap_or_else(|| "-".into()),
                        b.site.clone(),
                        b.category.as_ref().map_or("-".into(), ToString::to_string),
                        deliveries(b),
                    ]
                })
                .collect();
            print(format, &lines, &header, &rows);
        }
        BreachCommand::Show { id } => {
            let (_, found): (_, Vec<Breach>) = ask_for(&config, Query::Breach(id))?;
            let b = found
                .into_iter()
                .next()
                .context("the appliance sent no breach")?;
            let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            println!("breach:    {}", b.id);
            println!("severity:  {}", hedgerow_alert::severity_word(b.severity));
            println!("rule:      {}", b.rule);
            println!("device:    {} ({})", opt(&b.device), b.client);
            println!("user:      {}", opt(&b.user));
            println!("group:     {}", opt(&b.group));
            println!("site:      {}", b.site);
            println!("requested: {}", b.target);
            println!("tier:      {}", b.tier);
            println!(
                "category:  {}",
                b.category.as_ref().map_or("-".into(), ToString::to_string)
            );
            println!("list:      {}", opt(&b.list));
            println!("search:    {}", opt(&b.search));
            println!("first:     {}", local(b.first, &tz));
            println!("last:      {}", local(b.last, &tz));
            println!("count:     {}", b.count);
            println!(
                "reference: {}",
                b.reference.map_or("-".into(), |r| format!("{r:016x}"))
            );
            println!("alerts:    {}", deliveries(&b));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn deliveries(b: &Breach) -> String {
    if b.deliveries.is_empty() {
        return "-".into();
    }
    b.deliveries
        .iter()
        .map(|d| {
            let state = format!("{:?}", d.state).to_lowercase();
            format!(
                "{} {} ({} attempt{})",
                d.channel,
                state,
                d.attempts,
                if d.attempts == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn export(config: &Path, out: &Path) -> Result<ExitCode> {
    let (config, _) = load_config(config)?;
    let out = std::path::absolute(out)?;
    let lines = ask(&config, Query::Export(out.clone()))?;
    check_error(&lines)?;
    println!("exported to {}: {}", out.display(), lines.join(" "));
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn import(config: &Path, input: &Path) -> Result<ExitCode> {
    let (config, _) = load_config(config)?;
    let sock = config.server.state_dir.join(CONTROL_SOCKET);
    if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
        bail!("the appliance is running: stop it before importing into its store");
    }
    let store = open_store(&config)?;
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let n = store.import(std::io::BufReader::new(file))?;
    store.append_audit(
        jiff::Timestamp::now(),
        "hedgerow",
        "import",
        &serde_json::json!({"file": input.display().to_string(), "events": n.events, "breaches": n.breaches, "audit": n.audit}).to_string(),
    )?;
    println!(
        "imported {} access events, {} breaches, {} audit entries",
        n.events, n.breaches, n.audit
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
