//! This crate is the one owner of every change to filtering: accounts and roles, signing in
//! (passwords, the TOTP second factor, lockouts, sessions: `signin.rs`, `totp.rs`), change
//! requests with their risk assessment, preview and approvals, applying them to the TOML files
//! (comments kept, everything re-validated, written atomically, the appliance reloaded) and
//! reverting them, hand edits noticed as unreviewed changes, and the appliance's HTTP API
//! ([`api`]) that the CLI and the web console use, the one way into a running appliance. It
//! also owns reading pupil-level records through that API ([`records`]: access events,
//! breaches, review requests, export; who may, and each view audited) and how they are shown
//! ([`report`]: the table, CSV and JSON the CLI prints). Every step goes to the store's
//! hash-chained audit log, attributed to an authenticated account.
//!
//! It does not decide verdicts (the policy crate does, from the edited files) and it does not
//! talk DNS or HTTP proxying. Its operations are blocking (argon2, policy builds, fsync): the
//! API runs them off the async workers.

mod accounts;
pub mod api;
pub mod cases;
mod change;
pub mod checks;
pub mod dashboard;
mod edit;
pub mod records;
pub mod report;
mod service;
mod signin;
pub mod status;
pub mod tls;
mod totp;

pub use accounts::{Account, Permission, Role};
pub use change::{
    ChangeRequest, FileHashes, Origin, Preview, Proposal, Risk, RiskAssessment, Signature, Status,
    VerdictChange,
};
pub use edit::{BreachRuleSpec, DeviceSpec, Direction, Edit, ListSpec, ScheduleSpec};
pub use hedgerow_store::{EventFilter, ReviewRequest, ReviewStatus};
pub use service::{APPLIANCE, Admin, Notifier, ProposalPreview, Reloader};
pub use signin::{
    ACCOUNT_FAILURES, LOCAL, LOCKOUT, SOURCE_FAILURES, Scope, Session, SignIn, needs_totp,
};
pub use totp::{SECRETS_KEY, TotpEnrolment};

/// Why an admin operation was refused or failed. Each kind maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// No or bad credentials.
    #[error("not signed in: {0}")]
    Unauthenticated(String),
    /// Signed in, but the account's roles do not allow it.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request is malformed or names something that is not there.
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The change would touch the illegal tier: it cannot even be proposed.
    #[error("refused: illegal tier: {0}")]
    IllegalTier(String),
    /// The request is not in a state that allows this (already applied, self-approval, …).
    #[error("refused: {0}")]
    Conflict(String),
    /// The edited configuration does not validate, or the appliance would not reload it; no
    /// file was changed.
    #[error("the change does not validate; no file was changed:\n{0}")]
    Validation(String),
    /// The running appliance refused to reload; the old policy stays in force. Why.
    #[error("{0}")]
    ReloadRefused(String),
    /// Too many failed sign-ins from this account name or address: refused, without checking
    /// the password, until the lockout ends (when, in the message).
    #[error("locked: {0}")]
    Locked(String),
    #[error("store: {0}")]
    Store(#[from] hedgerow_store::StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl AdminError {
    /// A stable name for the kind of error, as the API reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            AdminError::Unauthenticated(_) => "unauthenticated",
            AdminError::Forbidden(_) => "forbidden",
            AdminError::Invalid(_) => "invalid",
            AdminError::NotFound(_) => "not-found",
            AdminError::IllegalTier(_) => "illegal-tier",
            AdminError::Conflict(_) => "conflict",
            AdminError::Validation(_) => "validation",
            AdminError::ReloadRefused(_) => "reload-refused",
            AdminError::Locked(_) => "locked",
            AdminError::Store(_) => "store",
            AdminError::Internal(_) => "internal",
        }
    }
}
