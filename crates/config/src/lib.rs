//! This crate reads Hedgerow's configuration: strict, typed TOML that a school technician
//! edits, split over several files if they like (`include = [...]` in the main file).
//!
//! An unknown key is an error, because a typo silently ignored is a hole in the filtering.
//! Every error names the file, line, column and reason, and [`load`] reports all the errors it
//! can find rather than stopping at the first. Relative paths are resolved against the file
//! that names them.
//!
//! It does not read block lists, build matchers or hold runtime state: it turns text into a
//! validated [`Config`] value and nothing more. `config/README.md` documents every key.

mod console;
mod duration;
mod load;
mod reload;
mod schema;
mod ship;

pub use console::{
    ConsoleConfig, FALSE_POSITIVE, MAX_IDLE, Outcome, OutcomeField, default_outcomes,
};
pub use duration::parse_duration;
pub use hedgerow_model::{ListFormat, ListKind, Severity, UrlMatch};
pub use load::{DEFAULT_RESOLV_CONF, from_str, load, load_with, system_nameservers};
pub use reload::{ReloadDiff, diff};
pub use schema::{
    AlertsConfig, ApiConfig, BlockPageConfig, BreachesConfig, CacheConfig, ChangeControlConfig,
    Config, Credentials, DaySpec, Device, DnsBlockMode, DnsConfig, EmailConfig, Group, GroupMode,
    LeaseFile, LeaseFormat, ListFetch, ListSource, LocalEntry, Location, LogsConfig, MetricsConfig,
    PacDirect, ProxyConfig, RiskLevel, SafeSearch, SafeSearchConfig, Schedule, ServerConfig,
    SmtpTls, UNENFORCEABLE_ENGINES, Upstream, UpstreamProtocol, WebhookConfig, YouTubeMode,
};
pub use ship::{ClickHouseConfig, ShipConfig, SyslogConfig};

use std::fmt;
use std::path::PathBuf;

/// One problem in one place: `path:line:column: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {reason}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub reason: String,
}

/// Every problem found in a configuration, in file order. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
