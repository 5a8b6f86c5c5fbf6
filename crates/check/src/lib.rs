//! This crate is the effectiveness check: a black box that tests a live appliance over the
//! wire, as a pupil's or teacher's device would. For each group in the school's probe set
//! ([`probes::ProbeSet`]) it sends DNS queries and proxied requests from the group's source
//! address: the canaries (IWF and police test entries, adult, profanity), a sample of each
//! category (built in, plus the school's own lists), a must-allow sample for over-blocking,
//! SafeSearch and YouTube steering, and circumvention (the DoH canary, iCloud Private Relay,
//! DoH provider names, VPN and proxy services, ECH, an SNI that differs from the CONNECT host,
//! IP literals). It compares each answer with what the school expects and lists every
//! difference ([`result::CheckResult`]), and renders the governors' report ([`report`]).
//!
//! It never reads the appliance's configuration or store (no dependency on the config, policy
//! or store crates: `tests/architecture.rs`): what a check knows of the policy is what the
//! school wrote in its probe set. The binary records each run in the check log through the
//! admin API.

pub mod probes;
pub mod report;
pub mod result;
pub mod run;
mod tls;

pub use probes::{ProbeSet, Via};
pub use report::{CheckRecord, ReportData};
pub use result::{CheckResult, Comparison, Failure, Remedy};
pub use run::{Outcome, run};

/// Why a check could not run or its report could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The probe-set file is not valid.
    #[error("probe set {path}: {message}")]
    ProbeSet {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("PDF: {0}")]
    Pdf(String),
    #[error("internal: {0}")]
    Internal(String),
}
