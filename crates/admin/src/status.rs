//! The system status a technician reads: what the running appliance reports about itself
//! (listeners, upstreams and their counters, each list's source, age and last update, events
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

/// An upstream resolver as configured.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStatus {
    pub address: String,
    pub protocol: String,
    /// Read from resolv.conf (`address = "system"`).
    pub system: bool,
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
        })
    }
}
