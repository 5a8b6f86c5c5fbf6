//! The log store in the running appliance (recorder, purge, alerts) and the `logs`,
//! `breaches`, `export` and `import` commands.
//!
//! sled lets one process open a database, so while the appliance runs the commands ask it
//! over `state/control.sock`; when it is stopped they open the store themselves. Either way
//! the answer is streamed as JSON lines, one value a line and `{"end":N}` last (or
//! `{"error":…}`), and printed as it comes: a query over millions of events holds a batch of
//! them at a time, in the appliance and in the command.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use hedgerow_config::Config;
use hedgerow_model::{AccessEvent, Category, Disposition, Severity};
use hedgerow_store::{
    Breach, EventFilter, Recorder, RecorderOptions, Retention, Store, StoreError, StoreOptions,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::CONTROL_SOCKET;

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

// === The answer: JSON lines ===

/// A query sent over the control socket, one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Query {
    Logs(EventFilter),
    Breaches { min: Option<Severity>, limit: usize },
    Breach(u64),
    Export(PathBuf),
}

/// An access event as `logs` sends it: its fields, and what happened in the one word that
/// the table shows and `--verdict` filters by.
#[derive(Serialize)]
struct Shown<'a> {
    verdict: Disposition,
    #[serde(flatten)]
    event: &'a AccessEvent,
}

/// The last line of an answer that went through: how many values came before it. An
/// answer without it was cut short.
#[derive(Serialize, Deserialize)]
struct End {
    end: u64,
}

/// Why an answer stopped early.
enum Stop {
    /// The store failed: the reader gets an error line.
    Store(StoreError),
    /// The reader went away (or its pipe closed): nobody to tell.
    Gone(std::io::Error),
}

/// Hands JSON lines (without their newline) to a sink, counting them.
struct Lines<'a> {
    sink: &'a mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    buf: Vec<u8>,
    count: u64,
}

impl Lines<'_> {
    fn value<T: Serialize>(&mut self, v: &T) -> Result<(), Stop> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, v).map_err(|e| Stop::Gone(e.into()))?;
        self.count += 1;
        (self.sink)(&self.buf).map_err(Stop::Gone)
    }
}

/// Answers `q` from the store, handing each JSON line to `sink` as it is made: the values,
/// then `{"end":N}`; or `{"error":…}` where the store fails. Stops reading the store when
/// `sink` fails (the reader went away) and returns that error.
pub(crate) fn answer(
    store: &Store,
    q: Query,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = Lines {
        sink,
        buf: Vec::with_capacity(1024),
        count: 0,
    };
    let result = (|| -> Result<(), Stop> {
        match q {
            Query::Logs(f) => {
                for e in store.events_iter(&f).map_err(Stop::Store)? {
                    let e = e.map_err(Stop::Store)?;
                    out.value(&Shown {
                        verdict: e.disposition(),
                        event: &e,
                    })?;
                }
            }
            Query::Breaches { min, limit } => {
                for b in store.breaches(min, limit).map_err(Stop::Store)? {
                    out.value(&b)?;
                }
            }
            Query::Breach(id) => out.value(&store.breach(id).map_err(Stop::Store)?)?,
            Query::Export(path) => {
                let n = std::fs::File::create(&path)
                    .map_err(StoreError::from)
                    .and_then(|f| store.export(&mut std::io::BufWriter::new(f)))
                    .map_err(Stop::Store)?;
                out.value(&serde_json::json!({
                    "events": n.events, "breaches": n.breaches, "audit": n.audit,
                    "admin": n.admin
                }))?;
            }
        }
        Ok(())
    })();
    let end = match result {
        Ok(()) => {
            let end = End { end: out.count };
            out.value(&end)
        }
        Err(Stop::Store(e)) => out.value(&serde_json::json!({ "error": e.to_string() })),
        Err(stop) => Err(stop),
    };
    match end {
        Ok(()) => Ok(()),
        Err(Stop::Gone(e)) => Err(e),
        Err(Stop::Store(e)) => Err(std::io::Error::other(e)),
    }
}

/// Bytes of answer the appliance gathers before handing them to the socket, and how many
/// such chunks may wait: what it holds for one reader, however long the answer.
const CHUNK: usize = 64 << 10;
const CHUNKS_WAITING: usize = 4;

/// Serves one query read from `state/control.sock`, streaming the answer to `write`: a
/// blocking task reads the store and fills chunks, which go to the socket as the reader
/// takes them. A reader that goes away (`hedgerow logs | head`) stops the task at its next
/// chunk.
pub(crate) async fn reply<W>(store: Arc<Store>, query: &str, write: &mut W)
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let q = match serde_json::from_str::<Query>(query) {
        Ok(q) => q,
        Err(e) => {
            let line = serde_json::json!({ "error": format!("bad query: {e}") });
            let _ = write.write_all(format!("{line}\n").as_bytes()).await;
            return;
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_WAITING);
    let task = tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK);
        let result = answer(&store, q, &mut |line| {
            chunk.extend_from_slice(line);
            chunk.push(b'\n');
            if chunk.len() >= CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                tx.blocking_send(full)
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
            }
            Ok(())
        });
        if result.is_ok() && !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
    });
    while let Some(chunk) = rx.recv().await {
        if write.write_all(&chunk).await.is_err() {
            break;
        }
    }
    drop(rx);
    if let Err(e) = task.await {
        tracing::error!("answering a query on the control socket: {e}");
    }
}

/// Runs `q` in the appliance if it is running, else on the store directly, handing each
/// value line of the answer to `each` as it arrives. Fails on an error answer and on an
/// answer cut short.
fn ask(config: &Config, q: Query, each: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    let sock = config.server.state_dir.join(CONTROL_SOCKET);
    let mut ended = false;
    let mut take = |line: &str| -> Result<()> {
        if line.is_empty() {
            return Ok(());
        }
        if line.starts_with("{\"error\":") {
            #[derive(Deserialize)]
            struct Failed {
                error: String,
            }
            let f: Failed = serde_json::from_str(line).context("reading the answer")?;
            bail!("{}", f.error);
        }
        if line.starts_with("{\"end\":") {
            ended = true;
            return Ok(());
        }
        each(line)
    };
    match std::os::unix::net::UnixStream::connect(&sock) {
        Ok(mut stream) => {
            let mut line = serde_json::to_string(&q)?;
            line.push('\n');
            stream.write_all(line.as_bytes())?;
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut reader = std::io::BufReader::with_capacity(CHUNK, stream);
            line.clear();
            while reader
                .read_line(&mut line)
                .context("reading the appliance's answer")?
                > 0
            {
                take(line.trim_end_matches('\n'))?;
                line.clear();
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(no_access(config));
        }
        Err(_) => {
            let store = open_store(config)?;
            let mut failed = None;
            let result = answer(&store, q, &mut |line| {
                let text = std::str::from_utf8(line).map_err(std::io::Error::other)?;
                take(text).map_err(|e| {
                    failed = Some(e);
                    std::io::Error::other("stopped")
                })
            });
            if let Some(e) = failed {
                return Err(e);
            }
            result?;
        }
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
            || c.downcast_ref::<csv::Error>().is_some_and(|e| {
                matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
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

// === Printing ===

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Csv,
    Json,
}

/// Rows held to size a table's columns; later rows use those widths.
const TABLE_SAMPLE: usize = 1000;
/// The widest a table cell gets; longer text is cut.
const TABLE_CELL: usize = 60;

/// Where rows go, in the chosen format. JSON lines pass through as the appliance sent them.
enum Printer<W: Write> {
    Json(W),
    Csv(Box<csv::Writer<W>>),
    Table(Table<W>),
}

impl<W: Write> Printer<W> {
    fn new(format: Format, out: W, header: &[&str]) -> Result<Self> {
        Ok(match format {
            Format::Json => Self::Json(out),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(header)?;
                Self::Csv(Box::new(w))
            }
            Format::Table => Self::Table(Table {
                out,
                header: header.iter().map(|h| (*h).to_owned()).collect(),
                held: Vec::new(),
                widths: None,
            }),
        })
    }

    /// Whether rows are wanted (else only the JSON line).
    fn wants_rows(&self) -> bool {
        !matches!(self, Self::Json(_))
    }

    /// The empty cell: nothing in CSV, a dash in a table.
    fn none(&self) -> &'static str {
        match self {
            Self::Table(_) => "-",
            _ => "",
        }
    }

    fn line(&mut self, json: &str) -> Result<()> {
        if let Self::Json(out) = self {
            out.write_all(json.as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn row(&mut self, row: Vec<String>) -> Result<()> {
        match self {
            Self::Json(_) => {}
            Self::Csv(w) => {
                for cell in &row {
                    w.write_field(neutralise(cell).as_bytes())?;
                }
                w.write_record(None::<&[u8]>)?;
            }
            Self::Table(t) => t.row(row)?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Self::Json(mut out) => out.flush()?,
            Self::Csv(mut w) => w.flush()?,
            Self::Table(t) => t.finish()?,
        }
        Ok(())
    }
}

/// A CSV cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or a
/// carriage return first) gets a `'` in front, so it shows as text. A search term is typed
/// by a pupil: `=HYPERLINK(…)` must not become a link in the DSL's spreadsheet.
fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A table printed as rows come: the first [`TABLE_SAMPLE`] size the columns.
struct Table<W: Write> {
    out: W,
    header: Vec<String>,
    held: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
}

impl<W: Write> Table<W> {
    fn row(&mut self, row: Vec<String>) -> std::io::Result<()> {
        if self.widths.is_none() {
            self.held.push(row);
            if self.held.len() >= TABLE_SAMPLE {
                self.start()?;
            }
            return Ok(());
        }
        self.print(&row)
    }

    fn start(&mut self) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for r in &self.held {
            for (w, f) in widths.iter_mut().zip(r) {
                *w = (*w).max(f.chars().count()).min(TABLE_CELL);
            }
        }
        self.widths = Some(widths);
        let header = self.header.clone();
        self.print(&header)?;
        for r in std::mem::take(&mut self.held) {
            self.print(&r)?;
        }
        Ok(())
    }

    fn print(&mut self, fields: &[String]) -> std::io::Result<()> {
        let widths = self.widths.as_deref().unwrap_or_default();
        let cells: Vec<String> = fields
            .iter()
            .zip(widths)
            .map(|(f, w)| {
                let f: String = f.chars().take(TABLE_CELL).collect();
                format!("{f:<w$}")
            })
            .collect();
        writeln!(self.out, "{}", cells.join("  ").trim_end())
    }

    fn finish(mut self) -> std::io::Result<()> {
        let empty = self.widths.is_none() && self.held.is_empty();
        if self.widths.is_none() {
            self.start()?;
        }
        if empty {
            writeln!(self.out, "(no matching entries)")?;
        }
        self.out.flush()
    }
}

/// Standard output, buffered: one write call per 64 KiB, not per row.
fn stdout() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock())
}

/// A time as people read it: in the school's time zone, to the second, with the zone.
fn local(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    hedgerow_alert::local_time(t, tz)
}

// === Parsing what people type ===

/// Reads a word naming a value of `T` (a verdict, a severity), in any case: the values are
/// `T`'s own names, so a new one is accepted as soon as `T` has it.
fn parse_word<T: DeserializeOwned>(s: &str, expected: &str) -> std::result::Result<T, String> {
    let word = s.trim().to_lowercase();
    serde_json::from_value(serde_json::Value::String(word))
        .map_err(|_| format!("{s:?}: expected {expected}"))
}

fn parse_verdict(s: &str) -> std::result::Result<Disposition, String> {
    parse_word(s, "allow, block, rewrite, refused, rate-limited or error")
}

fn parse_severity(s: &str) -> std::result::Result<Severity, String> {
    parse_word(s, "low, medium, high or critical")
}

/// A category as people type it: its id or its display name ("Hate speech"), in any case.
/// Anything else that is a valid id is taken as written (old events may carry ids outside the
/// vocabulary).
fn parse_category(s: &str) -> std::result::Result<Category, String> {
    let s = s.trim();
    if let Some(c) = hedgerow_model::VOCABULARY
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(s))
    {
        return Category::new(c.id).map_err(|e| e.to_string());
    }
    Category::new(&s.to_lowercase()).map_err(|e| e.to_string())
}

/// Reads when, as people type it: a span back from now (`1h`, `90m`, `2d`), `today`,
/// `yesterday` (their start), a local date (`2026-11-23`), a local date and time
/// (`2026-11-23 09:00`, `2026-11-23T09:00`), a local time today (`09:30`), or an RFC 3339
/// time with its offset.
fn parse_when(
    text: &str,
    tz: &jiff::tz::TimeZone,
    now: jiff::Timestamp,
) -> Result<jiff::Timestamp> {
    let t = text.trim();
    let today = now.to_zoned(tz.clone()).date();
    let start_of = |d: jiff::civil::Date| -> Result<jiff::Timestamp> {
        Ok(d.to_zoned(tz.clone())?.timestamp())
    };
    match t.to_lowercase().as_str() {
        "now" => return Ok(now),
        "today" => return start_of(today),
        "yesterday" => return start_of(today.yesterday()?),
        _ => {}
    }
    if let Ok(d) = hedgerow_config::parse_duration(t) {
        let back = jiff::SignedDuration::try_from(d)?;
        return Ok(now.checked_sub(back)?);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return Ok(dt.to_zoned(tz.clone())?.timestamp());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return start_of(d);
    }
    if let Ok(time) = t.parse::<jiff::civil::Time>() {
        return Ok(today.to_datetime(time).to_zoned(tz.clone())?.timestamp());
    }
    bail!(
        "{text:?}: expected a span back from now (1h, 90m, 2d), today, yesterday, a date (2026-11-23), a date and time (2026-11-23 09:00) or a time today (09:00)"
    )
}

fn load_config(path: &Path) -> Result<(Config, jiff::tz::TimeZone)> {
    let config = hedgerow_config::load(path).map_err(|e| anyhow!("{e}"))?;
    let tz = jiff::tz::TimeZone::get(&config.server.timezone)?;
    Ok((config, tz))
}

// === logs ===

#[derive(Debug, clap::Args)]
pub(crate) struct LogsArgs {
    #[arg(long, value_name = "PATH")]
    pub(crate) config: PathBuf,
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
    /// A category: its id (`hate`) or display name ("Hate speech"), in any case
    /// (docs/categories.md).
    #[arg(long, value_parser = parse_category)]
    pub(crate) category: Option<Category>,
    /// allow, block or rewrite, in any case.
    /// What happened, in any case: allow, block, rewrite, refused, rate-limited or error.
    #[arg(long, value_parser = parse_verdict)]
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
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(crate) format: Format,
}

const EVENT_HEADER: [&str; 14] = [
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
    "category_name",
    "tier",
    "search",
    "reference",
];

fn event_row(e: &AccessEvent, tz: &jiff::tz::TimeZone, none: &str) -> Vec<String> {
    let opt = |o: Option<&str>| o.unwrap_or(none).to_owned();
    vec![
        local(e.time, tz),
        format!("{:?}", e.front).to_lowercase(),
        e.client.to_string(),
        opt(e.device.as_deref()),
        opt(e.user.as_deref()),
        opt(e.group.as_deref()),
        e.target.clone(),
        opt(e.qtype.as_deref().or(e.method.as_deref())),
        e.disposition().to_string(),
        opt(e.category.as_ref().map(Category::as_str)),
        opt(e.category.as_ref().map(Category::display_name)),
        e.tier.to_string(),
        opt(e.search.as_deref()),
        e.reference.map_or(none.into(), |r| format!("{r:016x}")),
    ]
}

pub(crate) fn logs(args: LogsArgs) -> Result<ExitCode> {
    let (config, tz) = load_config(&args.config)?;
    let now = jiff::Timestamp::now();
    let when = |s: &Option<String>| s.as_deref().map(|s| parse_when(s, &tz, now)).transpose();
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
    let mut printer = Printer::new(args.format, stdout(), &EVENT_HEADER)?;
    let result = ask(&config, Query::Logs(filter), &mut |line| {
        printer.line(line)?;
        if printer.wants_rows() {
            let e: AccessEvent =
                serde_json::from_str(line).context("reading the appliance's answer")?;
            let row = event_row(&e, &tz, printer.none());
            printer.row(row)?;
        }
        Ok(())
    })
    .and_then(|()| printer.finish());
    finish(result)
}

// === breaches ===

#[derive(Debug, clap::Subcommand)]
pub(crate) enum BreachCommand {
    /// List breaches, newest first.
    List {
        /// Only these severities and above: low, medium, high, critical (any case).
        #[arg(long, value_parser = parse_severity)]
        severity: Option<Severity>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one breach in full: every request that raised it, and how its alerts went.
    Show { id: u64 },
}

const BREACH_HEADER: [&str; 13] = [
    "id", "severity", "rule", "first", "last", "count", "triggers", "device", "client", "user",
    "site", "category", "alerts",
];

fn breach_row(b: &Breach, tz: &jiff::tz::TimeZone, none: &str) -> Vec<String> {
    vec![
        b.id.to_string(),
        hedgerow_alert::severity_word(b.severity).to_lowercase(),
        b.rule.clone(),
        local(b.first, tz),
        local(b.last, tz),
        b.count.to_string(),
        b.triggers.len().to_string(),
        b.device.clone().unwrap_or_else(|| none.into()),
        b.client.to_string(),
        b.user.clone().unwrap_or_else(|| none.into()),
        b.site.clone(),
        b.category.as_ref().map_or(none.into(), ToString::to_string),
        deliveries(b, none),
    ]
}

pub(crate) fn breaches(config: &Path, cmd: Option<BreachCommand>) -> Result<ExitCode> {
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
        } => list_breaches(&config, &tz, severity, limit, format),
        BreachCommand::Show { id } => show_breach(&config, &tz, id),
    };
    finish(result)
}

fn list_breaches(
    config: &Config,
    tz: &jiff::tz::TimeZone,
    min: Option<Severity>,
    limit: usize,
    format: Format,
) -> Result<()> {
    let mut printer = Printer::new(format, stdout(), &BREACH_HEADER)?;
    ask(config, Query::Breaches { min, limit }, &mut |line| {
        printer.line(line)?;
        if printer.wants_rows() {
            let b: Breach = serde_json::from_str(line).context("reading the appliance's answer")?;
            let row = breach_row(&b, tz, printer.none());
            printer.row(row)?;
        }
        Ok(())
    })?;
    printer.finish()
}

fn show_breach(config: &Config, tz: &jiff::tz::TimeZone, id: u64) -> Result<()> {
    let mut found: Option<Breach> = None;
    ask(config, Query::Breach(id), &mut |line| {
        found = Some(serde_json::from_str(line).context("reading the appliance's answer")?);
        Ok(())
    })?;
    let b = found.context("the appliance sent no breach")?;
    let mut out = stdout();
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let raised = match b.triggers.first() {
        Some(t) if b.raised() => format!(
            " (raised from {})",
            hedgerow_alert::severity_word(t.severity)
        ),
        _ => String::new(),
    };
    writeln!(out, "breach:    {}", b.id)?;
    writeln!(
        out,
        "severity:  {}{raised}",
        hedgerow_alert::severity_word(b.severity)
    )?;
    writeln!(out, "rule:      {}", b.rule)?;
    writeln!(out, "device:    {} ({})", opt(&b.device), b.client)?;
    writeln!(out, "user:      {}", opt(&b.user))?;
    writeln!(out, "group:     {}", opt(&b.group))?;
    writeln!(out, "site:      {}", b.site)?;
    writeln!(out, "requested: {}", b.target)?;
    writeln!(out, "tier:      {}", b.tier)?;
    writeln!(
        out,
        "category:  {}",
        b.category
            .as_ref()
            .map_or("-".into(), |c| format!("{c} ({})", c.display_name()))
    )?;
    writeln!(out, "list:      {}", opt(&b.list))?;
    writeln!(out, "search:    {}", opt(&b.search))?;
    writeln!(out, "first:     {}", local(b.first, tz))?;
    writeln!(out, "last:      {}", local(b.last, tz))?;
    writeln!(out, "count:     {}", b.count)?;
    writeln!(
        out,
        "reference: {}",
        b.reference.map_or("-".into(), |r| format!("{r:016x}"))
    )?;
    writeln!(out, "alerts:    {}", deliveries(&b, "-"))?;
    writeln!(out, "triggers:  {}, in order", b.triggers.len())?;
    for (i, t) in b.triggers.iter().enumerate() {
        let what = match &t.search {
            Some(s) => format!("searched \"{s}\""),
            None => t.target.clone(),
        };
        writeln!(
            out,
            "  {:>3}. {}  {:<8}  {what}",
            i + 1,
            local(t.time, tz),
            hedgerow_alert::severity_word(t.severity),
        )?;
        let repeat = if t.count > 1 {
            format!(", {} times, last {}", t.count, local(t.last, tz))
        } else {
            String::new()
        };
        writeln!(
            out,
            "       device {} ({}), user {}, rule {}{repeat}",
            opt(&t.device),
            t.client,
            opt(&t.user),
            t.rule
        )?;
        if t.search.is_some() {
            writeln!(out, "       {}", t.target)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn deliveries(b: &Breach, none: &str) -> String {
    if b.deliveries.is_empty() {
        return none.into();
    }
    b.deliveries
        .iter()
        .map(|d| {
            let state = format!("{:?}", d.state).to_lowercase();
            let at = d
                .severity
                .filter(|s| *s != b.severity)
                .map(|s| format!(" at {}", hedgerow_alert::severity_word(s)))
                .unwrap_or_default();
            format!(
                "{} {}{at} ({} attempt{})",
                d.channel,
                state,
                d.attempts,
                if d.attempts == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// === export and import ===

pub(crate) fn export(config: &Path, out: &Path) -> Result<ExitCode> {
    let (config, _) = load_config(config)?;
    let out = std::path::absolute(out)?;
    let mut counts = String::new();
    ask(&config, Query::Export(out.clone()), &mut |line| {
        counts = line.to_owned();
        Ok(())
    })?;
    println!("exported to {}: {counts}", out.display());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_left_alone() {
        for hostile in ["=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "\r=1"] {
            assert_eq!(neutralise(hostile), format!("'{hostile}"));
        }
        for plain in ["homework help", "1+1", "a=b", "", "'quoted"] {
            assert_eq!(neutralise(plain), plain);
        }
    }

    #[test]
    fn words_in_any_case() {
        assert_eq!(parse_verdict("Block"), Ok(Disposition::Block));
        assert_eq!(parse_verdict(" ALLOW "), Ok(Disposition::Allow));
        assert_eq!(parse_verdict("Rate-Limited"), Ok(Disposition::RateLimited));
        assert!(
            parse_verdict("blocked")
                .unwrap_err()
                .contains("allow, block")
        );
        assert_eq!(parse_severity("HIGH"), Ok(Severity::High));
        assert_eq!(
            parse_category("Gambling").unwrap(),
            Category::new("gambling").unwrap()
        );
        assert_eq!(
            parse_category("hate SPEECH").unwrap(),
            Category::new("hate").unwrap()
        );
        assert_eq!(
            parse_category("Pornography").unwrap(),
            Category::new("adult").unwrap()
        );
    }

    #[test]
    fn when_as_people_type_it() {
        let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
        // 10:30 BST on a summer day.
        let now: jiff::Timestamp = "2026-06-10T09:30:00Z".parse().unwrap();
        let at = |s: &str| parse_when(s, &tz, now).unwrap().to_string();
        assert_eq!(at("1h"), "2026-06-10T08:30:00Z");
        assert_eq!(at("90m"), "2026-06-10T08:00:00Z");
        assert_eq!(at("2d"), "2026-06-08T09:30:00Z");
        assert_eq!(at("Yesterday"), "2026-06-08T23:00:00Z");
        assert_eq!(at("today"), "2026-06-09T23:00:00Z");
        assert_eq!(at("2026-06-01"), "2026-05-31T23:00:00Z");
        assert_eq!(at("2026-06-01 09:00"), "2026-06-01T08:00:00Z");
        assert_eq!(at("2026-06-01T09:00:30"), "2026-06-01T08:00:30Z");
        assert_eq!(at("09:00"), "2026-06-10T08:00:00Z");
        assert_eq!(at("2026-06-01T09:00:00+00:00"), "2026-06-01T09:00:00Z");
        assert!(parse_when("last tuesday", &tz, now).is_err());
    }
}
