//! Log shipping: a copy of every access event and breach, streamed to the engines a trust or
//! local authority already runs, so that one view covers many schools without a central
//! Hedgerow server.
//!
//! - **ClickHouse** over its HTTP interface: batched `INSERT … FORMAT JSONEachRow` into an
//!   access events table and a breaches table (schema in `docs/trust.md`), each batch retried
//!   with exponential backoff.
//! - **Syslog** (RFC 5424) over TCP, octet-counted (RFC 6587), optionally TLS (RFC 5425), for
//!   a SIEM.
//!
//! The [`Shipper`] is the store's [`Tap`]: the recorder hands it each event after withholding
//! any illegal-tier entry, and each breach request once it is in the store. Handing over is a
//! `try_send` on a bounded queue per destination and nothing else: a full queue (a slow or
//! dead destination) drops the record and counts it, and answers are never slowed. Delivery
//! is at least once to ClickHouse (a batch whose answer was lost is sent again) and at most
//! once to syslog (messages in flight when a TCP connection breaks are lost, as RFC 6587
//! notes); failures are counted and logged.

mod clickhouse;
mod record;
mod syslog;
mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hedgerow_config::ShipConfig;
use hedgerow_model::AccessEvent;
use hedgerow_store::{Recorded, Tap};
use tokio::sync::mpsc;

pub use record::{Record, SD_ID, syslog_message};

/// Why shipping could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Url(String),
}

/// Counters for one destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DestinationStats {
    /// Records the destination accepted.
    pub sent: u64,
    /// Records dropped because its queue was full (the destination slow or down).
    pub dropped: u64,
    /// Records given up after every attempt failed.
    pub failed: u64,
    /// Attempts that failed (each retried until `attempts` runs out).
    pub errors: u64,
}

/// Counters for every destination; `None` for one not configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipStats {
    pub clickhouse: Option<DestinationStats>,
    pub syslog: Option<DestinationStats>,
}

#[derive(Default)]
pub(crate) struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    pub(crate) fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn failed(&self, n: usize) {
        self.failed.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
    fn snapshot(&self) -> DestinationStats {
        DestinationStats {
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// One destination's queue.
struct Outlet {
    name: &'static str,
    tx: mpsc::Sender<Arc<Record>>,
    counters: Arc<Counters>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Outlet {
    fn offer(&self, r: &Arc<Record>) {
        if self.tx.try_send(r.clone()).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The running shipper: queues and one task per destination, and a task that reports drops.
pub struct Shipper {
    outlets: Vec<Outlet>,
    /// Asked to stop: the destinations send what is queued and end.
    stopping: Arc<AtomicBool>,
    reporter: tokio::task::JoinHandle<()>,
}

/// Shared by a destination's task.
pub(crate) struct Context {
    pub(crate) appliance: String,
    pub(crate) counters: Arc<Counters>,
    pub(crate) stopping: Arc<AtomicBool>,
}

impl Context {
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// How often dropped and failed records are reported in the service log, at most.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The first retry's wait; it doubles on each retry up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_millis(250);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// This machine's host name, for `appliance` when it is not set.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "hedgerow".into())
}

impl Shipper {
    /// Reads the files `config` names (password, CA) and starts a task per destination.
    /// Must be called inside a tokio runtime. Connections are made by the tasks: a
    /// destination that is down is retried and counted, and never stops the appliance.
    pub fn start(config: &ShipConfig) -> Result<Arc<Self>, ShipError> {
        let appliance = config.appliance.clone().unwrap_or_else(host_name);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut outlets = Vec::new();
        let context = |counters: &Arc<Counters>| Context {
            appliance: appliance.clone(),
            counters: counters.clone(),
            stopping: stopping.clone(),
        };
        if let Some(c) = &config.clickhouse {
            let client = clickhouse::Client::new(c)?;
            let (tx, rx) = mpsc::channel(config.queue);
            let counters = Arc::new(Counters::default());
            let task = tokio::spawn(clickhouse::run(client, rx, context(&counters)));
            tracing::info!(
                "shipping events and breaches to ClickHouse at {} (database {})",
                c.url,
                c.database
            );
            outlets.push(Outlet {
                name: "clickhouse",
                tx,
                counters,
                task: std::sync::Mutex::new(Some(task)),
            });
        }
        if let Some(s) = &config.syslog {
            let client = syslog::Client::new(s)?;
            let (tx, rx) = mpsc::channel(config.queue);
            let counters = Arc::new(Counters::default());
            let task = tokio::spawn(syslog::run(client, rx, context(&counters)));
            tracing::info!(
                "shipping events and breaches to syslog at {} ({})",
                s.address,
                if s.tls { "TLS" } else { "TCP" }
            );
            outlets.push(Outlet {
                name: "syslog",
                tx,
                counters,
                task: std::sync::Mutex::new(Some(task)),
            });
        }
        let watched: Vec<(&'static str, Arc<Counters>)> = outlets
            .iter()
            .map(|o| (o.name, o.counters.clone()))
            .collect();
        let reporter = tokio::spawn(report(watched));
        Ok(Arc::new(Self {
            outlets,
            stopping,
            reporter,
        }))
    }

    pub fn stats(&self) -> ShipStats {
        let mut stats = ShipStats::default();
        for o in &self.outlets {
            let s = Some(o.counters.snapshot());
            match o.name {
                "clickhouse" => stats.clickhouse = s,
                _ => stats.syslog = s,
            }
        }
        stats
    }

    /// Sends what is queued (each destination gets one more try, within `grace`) and stops.
    pub async fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::SeqCst);
        for o in &self.outlets {
            let task = o.task.lock().ok().and_then(|mut t| t.take());
            if let Some(mut task) = task
                && tokio::time::timeout(grace, &mut task).await.is_err()
            {
                task.abort();
                tracing::warn!("shipping to {}: stopped with records still queued", o.name);
            }
        }
        self.reporter.abort();
    }

    fn offer(&self, r: Record) {
        let r = Arc::new(r);
        for o in &self.outlets {
            o.offer(&r);
        }
    }
}

impl Tap for Shipper {
    fn access(&self, event: AccessEvent) {
        self.offer(Record::Access(event));
    }

    fn breach(&self, event: &AccessEvent, recorded: &Recorded, rule: &str) {
        self.offer(Record::breach(event, recorded, rule));
    }
}

/// Logs, at most every [`REPORT_EVERY`], how many records each destination dropped or gave
/// up since the last report.
async fn report(watched: Vec<(&'static str, Arc<Counters>)>) {
    let mut last = vec![DestinationStats::default(); watched.len()];
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        for ((name, counters), last) in watched.iter().zip(last.iter_mut()) {
            let now = counters.snapshot();
            let dropped = now.dropped - last.dropped;
            let failed = now.failed - last.failed;
            if dropped > 0 || failed > 0 {
                tracing::warn!(
                    destination = name,
                    dropped,
                    failed,
                    total_dropped = now.dropped,
                    total_failed = now.failed,
                    "shipping: records dropped (queue full) or given up (destination failing)"
                );
            }
            *last = now;
        }
    }
}
