//! Hedgerow's log store: who reached what, when, from which device; the breaches the
//! Designated Safeguarding Lead must see; and the append-only audit log of filter changes.
//!
//! Everything lives in sled databases in the state directory, behind this crate's API: no
//! other crate names sled. The layout answers the weaknesses measured in sled 0.34.7:
//!
//! - **A directory per day** for access events (`days/DAY/PART`: time-ordered batches, the
//!   time index across devices, and their per-device index). Retention deletes whole days,
//!   which returns disk space; dropped trees and per-key deletes did not. A day is written in
//!   parts of 2 MiB, because sled gives back the memory of what it was given only when its
//!   database closes, and a new part opens faster than an old one reopens.
//! - **Many events per stored value.** An access batch is one compressed value holding about
//!   16 KiB of encoded events, so the writer does one insert per batch, not one per event.
//! - **One transaction across related trees.** A few batches and their device index entries,
//!   and a breach, its triggers, its de-duplication key and the id counter, are written
//!   together or not at all: separate writes were left out of step after `kill -9`.
//!   Breaches, their alert state and the audit log are in one more database (`main`).
//! - **Breaches keep their evidence.** Every distinct request (search, URL, name) that joins
//!   a breach is kept as a trigger with its time, device and user; ids are dense (1, 2, 3…).
//! - **Device runs.** Once a part is closed, a background thread copies its events again,
//!   grouped by device, to a file beside it (`runs.rs`), so one device's week reads its own
//!   events, opening no database, rather than
//!   every batch of the week ([`Store::write_device_runs`]); and each batch's site filter
//!   (`sites.rs`), so a search by site decodes only the batches that may hold it.
//! - **Queries stream.** [`Store::events_iter`] reads a batch at a time.
//! - **Versioned values.** Every stored value starts with a format byte.
//! - **Review requests** from the block page, by reference, in the main database
//!   (`review.rs`).
//! - **Export and import** of the whole store as JSON lines, so the data can move to another
//!   engine.
//!
//! The [`Recorder`] is what the fronts use: a bounded queue that never waits and a writer
//! thread that batches. Access events are dropped (and counted) when the queue is full;
//! breaches are never dropped, and count as recorded only once they are on disk.

mod admin;
mod audit;
mod breach;
mod breaches;
mod counts;
mod error;
mod events;
mod export;
#[doc(hidden)]
pub mod fuzzing;
mod recorder;
mod review;
mod runs;
mod sites;
mod store;
mod wire;

pub use admin::{AdminRecord, AdminTree};
pub use audit::AuditCheck;
pub use breach::{Breach, Change, Delivery, DeliveryState, Recorded, Trigger, breach_for};
pub use counts::{BreachCount, DayCount, HourCount, RebuildReport, SiteCount, TopSites};
pub use error::StoreError;
pub use events::{EventFilter, Events};
pub use export::Counts;
pub use recorder::{BlockCount, Recorder, RecorderOptions, RecorderStats, Tap};
pub use review::{ReviewError, ReviewRequest, ReviewStatus};
pub use store::{AuditEntry, IntegrityReport, PurgeReport, Retention, Store, StoreOptions};
