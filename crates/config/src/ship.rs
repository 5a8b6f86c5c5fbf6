//! `[ship]`: access events and breaches streamed to engines a trust already runs, ClickHouse
//! over HTTP and a SIEM over syslog (RFC 5424 on TCP, optionally TLS). Off unless configured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::duration::serde_duration;

/// `[ship]`: where events go besides the local store. At least one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShipConfig {
    /// This appliance's name in every row and message (the school); the host name when unset.
    pub appliance: Option<String>,
    /// Records waiting per destination; more are counted and dropped, never waited for.
    pub queue: usize,
    pub clickhouse: Option<ClickHouseConfig>,
    pub syslog: Option<SyslogConfig>,
}

/// `[ship.clickhouse]`: batched `INSERT … FORMAT JSONEachRow` over ClickHouse's HTTP interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickHouseConfig {
    /// `http://host:8123` or `https://host:8443`.
    pub url: String,
    pub database: String,
    pub events_table: String,
    pub breaches_table: String,
    pub user: Option<String>,
    /// A file holding the password (a systemd credential, `/run/credentials/hedgerow.service/…`).
    pub password_file: Option<PathBuf>,
    /// PEM certificates to trust for `https://` besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Rows per insert, at most.
    pub batch: usize,
    /// How long a record waits for its batch to fill, at most.
    pub flush_interval: Duration,
    /// Tries per batch before it is given up (counted as failed).
    pub attempts: u32,
}

/// `[ship.syslog]`: RFC 5424 messages, octet-counted on TCP (RFC 6587), optionally TLS (RFC 5425).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// `host:port`.
    pub address: String,
    pub tls: bool,
    /// PEM certificates to trust for TLS besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry; the address's host when unset.
    pub server_name: Option<String>,
    /// The syslog facility, 0–23 (`local0` = 16).
    pub facility: u8,
    /// Tries per batch of messages before it is given up (counted as failed).
    pub attempts: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShip {
    pub(crate) appliance: Option<Spanned<String>>,
    #[serde(default = "default_queue")]
    pub(crate) queue: usize,
    pub(crate) clickhouse: Option<Spanned<RawClickHouse>>,
    pub(crate) syslog: Option<Spanned<RawSyslog>>,
}

fn default_queue() -> usize {
    65_536
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClickHouse {
    url: Spanned<String>,
    #[serde(default = "default_database")]
    database: Spanned<String>,
    #[serde(default = "default_events_table")]
    events_table: Spanned<String>,
    #[serde(default = "default_breaches_table")]
    breaches_table: Spanned<String>,
    user: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default = "default_batch")]
    batch: usize,
    #[serde(default = "default_flush", with = "serde_duration")]
    flush_interval: Duration,
    #[serde(default = "default_attempts")]
    attempts: u32,
}

fn default_database() -> Spanned<String> {
    Spanned::new(0..0, "hedgerow".into())
}
fn default_events_table() -> Spanned<String> {
    Spanned::new(0..0, "access_events".into())
}
fn default_breaches_table() -> Spanned<String> {
    Spanned::new(0..0, "breaches".into())
}
fn default_batch() -> usize {
    10_000
}
fn default_flush() -> Duration {
    Duration::from_secs(1)
}
fn default_attempts() -> u32 {
    5
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSyslog {
    address: Spanned<String>,
    #[serde(default)]
    tls: bool,
    ca_file: Option<PathBuf>,
    server_name: Option<String>,
    #[serde(default = "default_facility")]
    facility: Spanned<String>,
    #[serde(default = "default_attempts")]
    attempts: u32,
}

fn default_facility() -> Spanned<String> {
    Spanned::new(0..0, "local0".into())
}

/// The facilities by name (RFC 5424 §6.2.1), their codes in order.
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// A ClickHouse identifier we put in a query unquoted.
fn identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// Validates `[ship]`; `err(span, reason)` reports a problem at a place in the file (a span
/// of `0..0`, a default, is reported at the table).
pub(crate) fn validate(
    raw: RawShip,
    resolve: &dyn Fn(&Path) -> PathBuf,
    err: &mut dyn FnMut(Option<std::ops::Range<usize>>, String),
) -> ShipConfig {
    let at = |s: &std::ops::Range<usize>| (s.end > 0).then(|| s.clone());
    if raw.clickhouse.is_none() && raw.syslog.is_none() {
        err(
            None,
            "[ship] needs a destination: [ship.clickhouse] or [ship.syslog]".into(),
        );
    }
    if raw.queue == 0 {
        err(None, "[ship] queue must be at least 1".into());
    }
    if let Some(a) = &raw.appliance {
        let name = a.get_ref();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !ok {
            err(
                at(&a.span()),
                format!(
                    "[ship] appliance {name:?} must be 1 to 64 letters, digits, '.', '-' or '_' (it is the syslog HOSTNAME)"
                ),
            );
        }
    }
    let clickhouse = raw.clickhouse.map(|c| {
        let span = c.span();
        let c = c.into_inner();
        let url = c.url.get_ref();
        let ok = url::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.query().is_none()
                && u.username().is_empty()
        });
        if !ok {
            err(
                at(&c.url.span()),
                format!(
                    "[ship.clickhouse] url {url:?} must be an http:// or https:// URL with no query or user (set user and password_file)"
                ),
            );
        }
        for name in [&c.database, &c.events_table, &c.breaches_table] {
            if !identifier(name.get_ref()) {
                err(
                    at(&name.span()).or_else(|| Some(span.clone())),
                    format!(
                        "[ship.clickhouse] {:?} is not a plain identifier (letters, digits and '_')",
                        name.get_ref()
                    ),
                );
            }
        }
        if c.batch == 0 {
            err(Some(span.clone()), "[ship.clickhouse] batch must be at least 1".into());
        }
        if c.attempts == 0 {
            err(Some(span.clone()), "[ship.clickhouse] attempts must be at least 1".into());
        }
        if c.flush_interval.is_zero() {
            err(
                Some(span.clone()),
                "[ship.clickhouse] flush_interval must be more than 0".into(),
            );
        }
        if c.password_file.is_some() && c.user.is_none() {
            err(
                Some(span),
                "[ship.clickhouse] password_file needs a user".into(),
            );
        }
        ClickHouseConfig {
            url: c.url.into_inner(),
            database: c.database.into_inner(),
            events_table: c.events_table.into_inner(),
            breaches_table: c.breaches_table.into_inner(),
            user: c.user,
            password_file: c.password_file.map(|p| resolve(&p)),
            ca_file: c.ca_file.map(|p| resolve(&p)),
            batch: c.batch,
            flush_interval: c.flush_interval,
            attempts: c.attempts,
        }
    });
    let syslog = raw.syslog.map(|s| {
        let span = s.span();
        let s = s.into_inner();
        let addr = s.address.get_ref();
        let port_ok = addr
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !port_ok {
            err(
                at(&s.address.span()),
                format!("[ship.syslog] address {addr:?} must be host:port"),
            );
        }
        let facility = FACILITIES
            .iter()
            .position(|f| *f == s.facility.get_ref())
            .and_then(|i| u8::try_from(i).ok());
        if facility.is_none() {
            err(
                at(&s.facility.span()).or_else(|| Some(span.clone())),
                format!(
                    "[ship.syslog] facility {:?} is not one of {}",
                    s.facility.get_ref(),
                    FACILITIES.join(", ")
                ),
            );
        }
        if s.attempts == 0 {
            err(
                Some(span.clone()),
                "[ship.syslog] attempts must be at least 1".into(),
            );
        }
        if !s.tls && (s.ca_file.is_some() || s.server_name.is_some()) {
            err(
                Some(span),
                "[ship.syslog] ca_file and server_name need tls = true".into(),
            );
        }
        SyslogConfig {
            address: s.address.into_inner(),
            tls: s.tls,
            ca_file: s.ca_file.map(|p| resolve(&p)),
            server_name: s.server_name,
            facility: facility.unwrap_or(16),
            attempts: s.attempts,
        }
    });
    ShipConfig {
        appliance: raw.appliance.map(Spanned::into_inner),
        queue: raw.queue,
        clickhouse,
        syslog,
    }
}
