//! This crate is Hedgerow's shared vocabulary: the normalised [`Host`], the normalised
//! [`UrlKey`] that URL-level lists match on, the [`Category`] name with its [`VOCABULARY`]
//! (stable ids, display names, the UKSIC category each answers for) and the [`Verdict`] that
//! every front logs and every block page explains.
//!
//! It also names the [`AccessEvent`] every front records, the [`EventSink`] it records into,
//! the [`BreachRule`]s that pick out events for the safeguarding lead, and the [`Clock`] it
//! reads time through. [`BlockNotes`] is the one piece of shared state: the DNS front's recent
//! blocks, which the block page server reads (see its module for why it lives here).
//! [`NameResolver`] is the DNS front's client as the proxy sees it (neither front may use the
//! other).
//!
//! It parses and displays these values and nothing more. It does not decide anything, read
//! files, or know about DNS, HTTP, configuration or storage; those crates build on it.
//!
//! Normalisation happens once, here, at the edge: a `Host` is lower-case, has no trailing dot,
//! is in IDNA A-label (`xn--`) form and knows whether it is an IP literal, so matching code
//! never compares raw strings.

mod breach;
mod event;
mod host;
mod list;
mod mac;
mod notes;
mod resolve;
mod urlkey;
mod verdict;
mod vocabulary;

pub use breach::BreachRule;
pub use event::{
    AccessEvent, Clock, Disposition, EventSink, FixedClock, Front, Outcome, SystemClock,
    UnknownDisposition, site_of,
};
pub use host::{Host, HostError, Suffixes, normalise_name_into};
pub use list::{ListFormat, ListKind, Severity, UrlMatch};
pub use mac::{MacAddr, MacError};
pub use notes::{BlockNote, BlockNotes};
pub use resolve::{Addresses, NameResolver, ResolveError};
pub use urlkey::{UrlError, UrlKey};
pub use verdict::{Action, Category, CategoryError, PROTECTED_RULE, Tier, Verdict};
pub use vocabulary::{
    CategoryInfo, POLICY_CATEGORIES, Uksic, VOCABULARY, category_info, suggest_category,
};
