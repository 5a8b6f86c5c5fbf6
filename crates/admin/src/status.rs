//! The system status a technician reads: what the running appliance reports about itself
//! (listeners, upstreams and each one's health, each list's source, age and last update, events
//! written and dropped; asked of the binary through a [`StatusSource`] at each view) and the
//! store's size, which change control reads itself.

use std::sync::Arc;

use serde::Serialize;

use crate::{Account, Admin, AdminError, Permission};

/// A listening address: what listens there.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerStatus {
    pub what: String,
    pub address: String,
}

/// An upstream resolver as configured, and how it has been answering since the start (only
/// cache misses are sent upstream, in the configured order: the next upstream is asked when
/// one fails or times out).
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStatus {
    pub address: String,
    pub protocol: String,
    /// Read from resolv.conf (`address = "system"`).
    pub system: bool,
    /// In plain words: see [`UpstreamState`].
    pub state: UpstreamState,
    /// Queries it answered (any answer, SERVFAIL and REFUSED included).
    pub answers: u64,
    /// Queries that failed with an error (refused, unreachable, a failed TLS handshake).
    pub errors: u64,
    /// Queries it did not answer in time (the next upstream was asked, or SERVFAIL given).
    pub timeouts: u64,
    pub last_answer: Option<jiff::Timestamp>,
    pub last_failure: Option<jiff::Timestamp>,
    /// The first failure since its last answer, while its latest attempts fail.
    pub failing_since: Option<jiff::Timestamp>,
    /// The last failure in words ("timed out", or the error).
    pub last_error: Option<String>,
    /// How long its answers take: a moving average, each answer weighing 1/8.
    pub latency_ms: Option<f64>,
}

/// How an upstream resolver is doing, in words a technician reads at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UpstreamState {
    /// Its last attempt was answered.
    #[serde(rename = "answering")]
    Answering,
    /// Its latest attempts failed (since `failing_since`; `last_error` says how).
    #[serde(rename = "failing")]
    Failing,
    /// No query has needed it since the start: normal for a second upstream behind a healthy
    /// first one, or before the first cache miss.
    #[serde(rename = "not asked yet")]
    NotAskedYet,
}

impl UpstreamState {
    /// The state from an upstream's counters: failing when its latest attempt failed
    /// (a failure later than its last answer), answering when it answered, else not asked.
    pub fn of(
        answers: u64,
        failures: u64,
        last_answer: Option<jiff::Timestamp>,
        last_failure: Option<jiff::Timestamp>,
    ) -> Self {
        match (last_answer, last_failure) {
            (_, Some(f)) if failures > 0 && last_answer.is_none_or(|a| f > a) => Self::Failing,
            (Some(_), _) if answers > 0 => Self::Answering,
            _ => Self::NotAskedYet,
        }
    }

    /// The words, as serialized.
    pub fn words(self) -> &'static str {
        match self {
            Self::Answering => "answering",
            Self::Failing => "failing",
            Self::NotAskedYet => "not asked yet",
        }
    }
}

impl std::fmt::Display for UpstreamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.words())
    }
}

/// One list: where it comes from and how current it is.
#[derive(Debug, Clone, Serialize)]
pub struct ListStatus {
    pub name: String,
    pub kind: String,
    pub category: Option<String>,
    /// The URL it is downloaded from, or the file it is read from.
    pub source: String,
    pub downloaded: bool,
    pub entries: Option<u64>,
    /// Since the copy in force was made (downloaded, or the file written).
    pub age_seconds: Option<u64>,
    pub max_age_seconds: Option<u64>,
    pub stale: bool,
    /// The last download's result, or `file` / `file missing`.
    pub result: String,
}

/// What the running appliance says about itself.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuntimeStatus {
    pub started: Option<jiff::Timestamp>,
    pub listeners: Vec<ListenerStatus>,
    pub upstreams: Vec<UpstreamStatus>,
    /// DNS queries answered, sent upstream (cache misses), answered SERVFAIL (no upstream
    /// answered in time), since the start.
    pub dns_queries: u64,
    pub dns_forwarded: u64,
    pub dns_servfail: u64,
    pub lists: Vec<ListStatus>,
    /// Access events written to the store, dropped (the recorder's buffer was full) and lost
    /// to a failed write, since the start.
    pub events_written: u64,
    pub events_dropped: u64,
    pub events_failed: u64,
}

/// Asks the running appliance for its [`RuntimeStatus`] (the binary provides it).
pub type StatusSource = Arc<dyn Fn() -> RuntimeStatus + Send + Sync>;

/// The system status page's data.
#[derive(Debug, Clone, Serialize)]
pub struct SystemStatus {
    pub runtime: RuntimeStatus,
    /// The store's size on disk.
    pub store_bytes: u64,
    /// Days of access events held.
    pub days: usize,
    /// Closed parts of days whose events are not yet copied by device (the store's device
    /// runs, written in the background): until then their timelines read more slowly.
    pub timeline_parts_waiting: usize,
}

impl Admin {
    /// Where [`Admin::system_status`] asks the running appliance about itself.
    pub fn with_status(mut self, source: StatusSource) -> Self {
        self.status = Some(source);
        self
    }

    /// The appliance's status, for technicians and approvers.
    pub fn system_status(&self, actor: &Account) -> Result<SystemStatus, AdminError> {
        actor.authorize(Permission::SystemStatus)?;
        let runtime = self.status.as_ref().map(|s| s()).unwrap_or_default();
        Ok(SystemStatus {
            runtime,
            store_bytes: self.store().disk_bytes()?,
            days: self.store().days().len(),
            timeline_parts_waiting: self.store().runs_pending()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upstream_state_is_its_latest_attempt() {
        let t = |s: i64| Some(jiff::Timestamp::from_second(1_700_000_000 + s).unwrap());
        use UpstreamState::*;
        assert_eq!(UpstreamState::of(0, 0, None, None), NotAskedYet);
        assert_eq!(UpstreamState::of(3, 0, t(0), None), Answering);
        assert_eq!(UpstreamState::of(0, 2, None, t(0)), Failing);
        // Failed once, answered since: answering again.
        assert_eq!(UpstreamState::of(5, 1, t(10), t(5)), Answering);
        // Answered, then failed since: failing.
        assert_eq!(UpstreamState::of(5, 1, t(5), t(10)), Failing);
        assert_eq!(Failing.to_string(), "failing");
        assert_eq!(
            serde_json::to_value(NotAskedYet).unwrap(),
            serde_json::json!("not asked yet")
        );
    }
}
