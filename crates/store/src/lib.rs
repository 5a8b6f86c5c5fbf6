//! Hedgerow's log store: who reached what, when, from which device; the breaches the
//! Designated Safeguarding Lead must see; and the append-only audit log of filter changes.
//!
//! Everything lives in one sled database in the state directory, behind this crate's API:
//! no other crate names sled. The layout answers the weaknesses measured in sled 0.34.7:
//!
//! - **A tree per day** for access events (`events/DAY`, time-ordered batches: the time index
//!   across devices) and their per-device index (`devices/DAY`). Retention drops whole trees,
//!   which returns disk space; per-key deletes did not.
//! - **Many events per stored value.** An access batch is one postcard value holding every
//!   event a flush took, so the writer does one insert per batch, not one per event.
//! - **One transaction across related trees.** A batch and its device index entries, and a
//!   breach and its de-duplication key, are written together or not at all: separate writes
//!   were left out of step after `kill -9`.
//! - **Versioned values.** Every stored value starts with a format byte.
//! - **Export and import** of the whole store as JSON lines, so the data can move to another
//!   engine.
//!
//! The [`Recorder`] is what the fronts use: a bounded queue that never waits and a writer
//! thread that batches. Access events are dropped (and counted) when the queue is full;
//! breaches are never dropped, and count as recorded only once they are on disk.

mod breach;
mod error;
mod export;
mod recorder;
mod store;
mod wire;

pub use breach::{Breach, Delivery, DeliveryState, breach_for};
pub use error::StoreError;
pub use export::Counts;
pub use recorder::{Recorder, RecorderOptions, RecorderStats};
pub use store::{
    AuditEntry, EventFilter, IntegrityReport, PurgeReport, Retention, Store, StoreOptions,
};
