//! This crate turns a validated configuration and the lists it names into one immutable
//! [`PolicySnapshot`], and decides [`Verdict`]s from it. [`PolicyHandle`] holds the live
//! snapshot in an `ArcSwap`: a reload compiles a whole new snapshot off the request path and
//! swaps it in only if it built, so a failed reload leaves the old policy serving.
//!
//! Precedence, highest first (see `Tier`): the illegal-content tier; the group's local allow
//! entries; the group's local block entries; then shared allow lists against category lists,
//! where the more specific match wins and an allow list wins a tie; a schedule that allows a
//! blocked category now; and last, allow by default.
//!
//! It does no I/O on the request path and reads no clock: callers pass the time in, so
//! schedules are tested without sleeping. It does not know about DNS, HTTP or storage.

mod covered;
mod decide;
mod leases;
mod snapshot;

pub use decide::{PhraseMatch, Target};
pub use leases::{Lease, parse_leases};
pub use snapshot::{
    BuildReport, Client, GroupId, PolicyError, PolicyHandle, PolicySnapshot, canonical_ip,
};

pub use hedgerow_model::Verdict;

/// The rule shown for an illegal-tier match: the entry itself is never available.
pub const PROTECTED_RULE: &str = "[protected entry]";
