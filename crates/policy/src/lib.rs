//! This crate turns a validated configuration and the lists it names into one immutable
//! [`PolicySnapshot`], and decides [`Verdict`]s from it. [`PolicyHandle`] holds the live
//! snapshot in an `ArcSwap`: a reload compiles a whole new snapshot off the request path and
//! swaps it in only if it built, so a failed reload leaves the old policy serving.
//!
//! Precedence, highest first (see `Tier`): the illegal-content tier; the group's local allow
//! entries; the group's local block entries; then shared allow lists against category lists,
//! where the more specific match wins and an allow list wins a tie; a schedule that allows a
//! blocked category now; for approved-only groups (walled gardens), block as "not on the
//! approved list"; and last, allow by default.
//!
//! It does no I/O on the request path and reads no clock: callers pass the time in, so
//! schedules are tested without sleeping. It does not know about DNS, HTTP or storage.

mod covered;
mod decide;
mod enforce;
mod illegal_guard;
mod leases;
mod snapshot;

pub use decide::{PhraseMatch, Target};
pub use enforce::{Engine, Interception, SAFESEARCH_LIST, Steer, UNENFORCEABLE_CATEGORY};
pub use illegal_guard::{BuildMode, IllegalSource, IllegalStatus};
pub use leases::{Lease, parse_leases};
pub use snapshot::{
    BuildReport, Client, GroupId, PolicyError, PolicyHandle, PolicySnapshot, Staged, canonical_ip,
};

pub use hedgerow_model::Verdict;

/// The rule shown for an illegal-tier match: the entry itself is never available.
pub use hedgerow_model::PROTECTED_RULE;

/// The rule shown for an illegal-tier match: `[protected entry] #3f9a1c2b`, where the
/// reference is 32 bits of the entry's keyed hash. It is the same for the same entry across
/// restarts (the key is kept in the state directory), so a DSL can quote it to the IWF or the
/// police, and it cannot be turned back into the entry.
pub fn protected_rule(reference: u32) -> String {
    format!("{PROTECTED_RULE} #{reference:08x}")
}
