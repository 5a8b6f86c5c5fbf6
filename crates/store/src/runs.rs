//! Device runs: each closed part of a day's access events copied again, grouped by device,
//! so that one device's week is read from its own events rather than from every batch.
//!
//! Batches are written in the order events arrive, so a busy school's batch holds events of
//! hundreds of devices, and one device has an event in nearly every batch: reading a device's
//! last 7 days through the device index alone decoded every batch of the week (1.5–7 s at
//! 2 million events a day, `docs/performance.md`). Once a part is closed (it is never written
//! again), a background thread at the log writer's priority reads it once and writes, in the
//! part's own database, each device's events of that part as batches of their own (the same
//! [`BATCH_FORMAT`](crate::wire) value, keyed device ‖ first time ‖ sequence), then marks
//! the part done. A device query reads the runs of a done part and the device index of any
//! other part (the one being written, or one not reached yet).
//!
//! The same pass writes each batch's site filter (`sites.rs`).
//!
//! The copy costs disk (each closed part's events are held twice: about 12% more on disk,
//! as sled keeps them)
//! and one decode and encode of every event, off the write path. Nothing here decides what a
//! query returns: the runs hold exactly the part's events, and `check_integrity` says so.

use crate::counts::part_key;
use crate::sites::{FilterBuilder, SITE_FILTERS, host_key, may_hold};
use crate::store::{EVENTS, PartId, device_id, device_prefix};
use crate::wire::{BatchBuilder, ValueScratch, decode_batch, time_key};
use crate::{Store, StoreError};

/// The tree of a part holding its device runs.
pub(crate) const RUNS: &str = "device-runs";
/// The tree of a part whose one key says its runs are complete: written after the runs are
/// on disk, so a part with the mark has every run and a part without is read by its index.
const RUNS_DONE: &str = "device-runs-done";
/// In `main`: the parts whose runs are written, so finding work does not open every part.
pub(crate) const RUNS_PARTS: &str = "device-runs-parts";

/// What a done part holds, marked in [`RUNS_DONE`] and [`RUNS_PARTS`]: 1, device runs; 2,
/// device runs and site filters (`sites.rs`). A part done at an older version is done again.
const VERSION: u8 = 2;

/// The runs and site filter trees of a part, if they are complete.
pub(crate) fn done_runs(db: &sled::Db) -> Result<Option<(sled::Tree, sled::Tree)>, StoreError> {
    let has = |name: &str| {
        db.tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
    };
    if !has(RUNS_DONE) || !has(RUNS) || !has(SITE_FILTERS) {
        return Ok(None);
    }
    match db.open_tree(RUNS_DONE)?.get("done")? {
        Some(v) if v.first().is_some_and(|&n| n >= VERSION) => {
            Ok(Some((db.open_tree(RUNS)?, db.open_tree(SITE_FILTERS)?)))
        }
        _ => Ok(None),
    }
}

/// Whether `main` marks a part done at this [`VERSION`].
fn is_done(done: &sled::Tree, id: PartId) -> Result<bool, StoreError> {
    Ok(done
        .get(part_key(id))?
        .is_some_and(|v| v.first().is_some_and(|&n| n >= VERSION)))
}

impl Store {
    /// Writes the device runs and site filters of one closed part, unless they are there. `go_on` is asked
    /// after each batch read; when it says no, the part is left as it was. Returns whether
    /// it wrote them.
    fn write_runs(
        &self,
        id: PartId,
        db: &sled::Db,
        go_on: &mut dyn FnMut() -> bool,
    ) -> Result<bool, StoreError> {
        if done_runs(db)?.is_some() {
            return Ok(false);
        }
        // Device id -> its builder; each sealed batch is a run.
        let mut builders: std::collections::BTreeMap<String, BatchBuilder> = Default::default();
        let mut rows = sled::Batch::default();
        let mut scratch = ValueScratch::default();
        let mut seq: u32 = 0;
        let mut put = |dev: &str, sealed: crate::wire::Sealed, rows: &mut sled::Batch| {
            let mut k = device_prefix(dev);
            k.extend_from_slice(&time_key(sealed.first));
            k.extend_from_slice(&seq.to_be_bytes());
            seq = seq.wrapping_add(1);
            rows.insert(k, sled::IVec::from(sealed.value_with(&mut scratch)));
        };
        let mut filters = sled::Batch::default();
        let mut filter = FilterBuilder::default();
        for item in db.open_tree(EVENTS)?.iter() {
            let (key, value) = item?;
            for e in decode_batch(EVENTS, &value)? {
                filter.add(&e.target);
                let dev = device_id(&e);
                let b = match builders.get_mut(&dev) {
                    Some(b) => b,
                    None => builders.entry(dev.clone()).or_default(),
                };
                if let Some(sealed) = b.push(&e) {
                    put(&dev, sealed, &mut rows);
                }
            }
            filters.insert(key, filter.take());
            if !go_on() {
                return Ok(false);
            }
        }
        for (dev, mut b) in builders {
            if let Some(sealed) = b.seal() {
                put(&dev, sealed, &mut rows);
            }
        }
        db.open_tree(RUNS)?.apply_batch(rows)?;
        db.open_tree(SITE_FILTERS)?.apply_batch(filters)?;
        db.flush()?;
        db.open_tree(RUNS_DONE)?.insert("done", &[VERSION])?;
        db.flush()?;
        self.db
            .open_tree(RUNS_PARTS)?
            .insert(part_key(id), &[VERSION])?;
        Ok(true)
    }

    /// Writes the device runs of every closed part that has none yet, oldest first. `go_on`
    /// is asked between batches and between parts (to pace the work, or to stop it: a part
    /// left half way is done again whole next time). The recorder runs this in the
    /// background, at start and every few seconds. Returns how many parts it wrote.
    pub fn write_device_runs(&self, mut go_on: impl FnMut() -> bool) -> Result<usize, StoreError> {
        let done = self.db.open_tree(RUNS_PARTS)?;
        let mut wrote = 0;
        for name in self.days() {
            let Some(day) = crate::store::day_of(&name) else {
                continue;
            };
            for part in self.parts(&name) {
                let id = (day, part);
                if !go_on() {
                    return Ok(wrote);
                }
                if self.is_writing(id) || is_done(&done, id)? {
                    continue;
                }
                let Some(db) = self.part_db_if_exists(id)? else {
                    continue;
                };
                // Still the part being written if appends reached it after the check above.
                if self.is_writing(id) {
                    continue;
                }
                if self.write_runs(id, &db, &mut go_on)? {
                    wrote += 1;
                }
            }
        }
        Ok(wrote)
    }

    /// Closed parts whose device runs are not written yet: how far the background work is
    /// behind (for system status).
    pub fn runs_pending(&self) -> Result<usize, StoreError> {
        let done = self.db.open_tree(RUNS_PARTS)?;
        let mut n = 0;
        for name in self.days() {
            let Some(day) = crate::store::day_of(&name) else {
                continue;
            };
            for part in self.parts(&name) {
                let id = (day, part);
                if !self.is_writing(id) && !is_done(&done, id)? {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Forgets which parts of the days before `first_kept` have runs (the retention purge
    /// deleted those days).
    pub(crate) fn purge_runs(&self, first_kept: i64) -> Result<(), StoreError> {
        let tree = self.db.open_tree(RUNS_PARTS)?;
        let mut batch = sled::Batch::default();
        for k in tree.range(..time_key(first_kept).to_vec()).keys() {
            batch.remove(k?);
        }
        tree.apply_batch(batch)?;
        Ok(())
    }
}

/// For `check_integrity`: the events a part's runs hold, and whether each run holds only
/// its device's events. `None` when the part has no complete runs.
pub(crate) fn check_runs(
    name: &str,
    db: &sled::Db,
    problems: &mut Vec<String>,
) -> Result<Option<u64>, StoreError> {
    let Some((runs, filters)) = done_runs(db)? else {
        return Ok(None);
    };
    for item in db.open_tree(EVENTS)?.iter() {
        let (k, v) = item?;
        let filter = filters.get(&k)?.map(|f| f.to_vec()).unwrap_or_default();
        if let Some(e) = decode_batch(EVENTS, &v)?
            .iter()
            .find(|e| !may_hold(&filter, &host_key(&e.target)))
        {
            problems.push(format!(
                "{name}: a batch's site filter does not hold {}",
                host_key(&e.target)
            ));
        }
    }
    let mut events = 0u64;
    for item in runs.iter() {
        let (k, v) = item?;
        let len = k
            .get(..2)
            .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let dev = String::from_utf8_lossy(k.get(2..2 + len).unwrap_or_default()).into_owned();
        let batch = decode_batch(RUNS, &v)?;
        events += batch.len() as u64;
        if batch.iter().any(|e| device_id(e) != dev) {
            problems.push(format!(
                "{name}: the run of {dev} holds another device's events"
            ));
        }
    }
    Ok(Some(events))
}
