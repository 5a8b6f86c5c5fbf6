//! Breach rules: which access events the Designated Safeguarding Lead must hear about.

use std::sync::Arc;

use crate::{Category, Severity, Tier};

/// One rule from `[[breaches.rules]]`. An event matches when it was blocked or carried a
/// concerning phrase, and every condition the rule sets holds: its tier is one of `tiers`,
/// its category one of `categories`, its phrase concern at least `concern`. A rule with no
/// conditions matches every blocked request.
///
/// The illegal tier needs no rule: it is always a critical breach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachRule {
    pub name: Arc<str>,
    pub tiers: Vec<Tier>,
    pub categories: Vec<Category>,
    /// Raise on search terms or URLs with a concerning phrase of at least this severity, even
    /// when the request was allowed.
    pub concern: Option<Severity>,
    pub severity: Severity,
}
