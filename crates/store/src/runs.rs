//! Device runs: each closed part of a day's access events copied again, grouped by device,
//! so that one device's week is read from its own events rather than from every batch.
//!
//! Batches are written in the order events arrive, so a busy school's batch holds events of
//! hundreds of devices, and one device has an event in nearly every batch: reading a device's
//! last 7 days through the device index alone decoded every batch of the week (1.5–7 s at
//! 2 million events a day, `docs/performance.md`). Once a part is closed (it is never written
//! again), a background thread at the lowest priority reads it once and writes each device's
//! events of that part as batches of their own (the same [`BATCH_FORMAT`](crate::wire) value)
//! to a file beside the part, `days/DATE/NNNNNN.runs`, with an index of device, first time,
//! offset and length at its end. A device query reads a done part's runs file and the device
//! index of any other part (the one being written, or one not reached yet).
//!
//! A file, not a tree in the part's sled database: opening a part's database costs about
//! 11 ms and 4.6 MB resident (sled recovers its log), and a week is 175 parts at 2 million
//! events a day, so the first version, which kept runs in the part, took 19 s for a week's
//! timeline. A runs file opens in microseconds and is read with two `pread`s a device.
//! It is written whole to a temporary name, synced and renamed: present means complete.
//!
//! The same pass writes a site filter (`sites.rs`) for each run, in the file, so a search by
//! site reads only the runs that may hold it, and for each batch, in the part's database.
//!
//! The copy costs disk (each closed part's events are held twice, compressed) and one decode
//! and encode of every event, off the write path. Nothing here decides what a query returns:
//! the runs hold exactly the part's events, and `check_integrity` says so.
//!
//! A runs file is only ever a copy, so damage loses nothing: the index, each run and each
//! run's site filter carry a CRC-32, checked before use. A query that meets a damaged file
//! (or `check_integrity`, which reads it all) reads the part through its database instead,
//! deletes the file and unmarks the part, and the background pass writes it again.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hedgerow_model::AccessEvent;
use serde::{Deserialize, Serialize};

use crate::counts::part_key;
use crate::sites::{FilterBuilder, SITE_FILTERS, host_key, may_hold};
use crate::store::{EVENTS, PartId, device_id};
use crate::wire::{BatchBuilder, ValueScratch, decode_batch, time_key};
use crate::{Store, StoreError};

/// The start and end of a runs file.
const MAGIC: &[u8; 4] = b"HRN3";
/// The most an index may claim to be (a part holds at most a few thousand devices).
const MAX_INDEX: u32 = 64 << 20;

/// The tree of a part whose one key says its site filters are complete (and, at version 2,
/// that its runs were kept in the part: they are written again, to a file).
const RUNS_DONE: &str = "device-runs-done";
/// The tree where version 2 kept a part's runs; dropped when the part is done again.
const OLD_RUNS: &str = "device-runs";
/// In `main`: the parts whose runs are written, so finding work does not open every part.
pub(crate) const RUNS_PARTS: &str = "device-runs-parts";

/// What a done part has, marked in [`RUNS_DONE`] and [`RUNS_PARTS`]: 1, device runs in the
/// part; 2, and site filters; 3, site filters in the part and runs in a file; 4, and each
/// run's site filter in the file; 5, and checksums in the file. A part done at an older
/// version is done again.
const VERSION: u8 = 5;

/// The site filter tree of a part, if its filters are complete.
pub(crate) fn site_filters(db: &sled::Db) -> Result<Option<sled::Tree>, StoreError> {
    let has = |name: &str| {
        db.tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
    };
    if !has(RUNS_DONE) || !has(SITE_FILTERS) {
        return Ok(None);
    }
    match db.open_tree(RUNS_DONE)?.get("done")? {
        Some(v) if v.first().is_some_and(|&n| n >= VERSION) => {
            Ok(Some(db.open_tree(SITE_FILTERS)?))
        }
        _ => Ok(None),
    }
}

/// One run in a runs file's index (read borrowing the index's bytes).
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    /// The device index id (`d:NAME` or `ip:ADDRESS`).
    #[serde(borrow)]
    device: std::borrow::Cow<'a, str>,
    first: i64,
    offset: u64,
    len: u32,
    /// The CRC-32 of the run's bytes.
    crc: u32,
    /// Where its site filter is (`sites.rs`): the filters follow the runs, together.
    sites: u64,
    sites_len: u32,
    /// The CRC-32 of the site filter's bytes.
    sites_crc: u32,
}

/// Why a runs file cannot be used (the part is then read through its database, and the
/// file written again).
pub(crate) struct Damage(pub(crate) String);

/// Where a run is in its file, and its checksum: offset, length, CRC-32.
pub(crate) type RunAt = (u64, u32, u32);

/// One run's bytes, read and checked: decoded when its unit is read.
pub(crate) struct RunBytes(Vec<u8>);

/// A part's runs file, open for reading: its index's bytes in memory (read each time
/// without copying a name), its runs read on demand.
pub(crate) struct RunsFile {
    file: std::fs::File,
    index: Vec<u8>,
}

/// Where a part's runs file is: beside the part's database, in the day's directory.
pub(crate) fn runs_path(part_dir: &Path) -> PathBuf {
    part_dir.with_extension("runs")
}

impl RunsFile {
    /// Opens a part's runs file. `Ok(None)` if there is none yet; `Err` if it is damaged
    /// (its footer or its index's checksum does not check). The index is parsed when used.
    pub(crate) fn open(path: &Path) -> Result<Option<Self>, Damage> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Damage(e.to_string())),
        };
        let index = Self::read_index(&file).map_err(Damage)?;
        Ok(Some(Self { file, index }))
    }

    /// Footer: the index's offset (8 bytes), length (4) and CRC-32 (4), then the end mark.
    fn read_index(file: &std::fs::File) -> Result<Vec<u8>, String> {
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        let mut foot = [0u8; FOOTER];
        let at = size.checked_sub(FOOTER as u64).ok_or("too short")?;
        file.read_exact_at(&mut foot, at)
            .map_err(|e| e.to_string())?;
        if &foot[16..] != MAGIC {
            return Err("no end mark (or an older layout, written again soon)".into());
        }
        let word = |r: std::ops::Range<usize>| foot.get(r).unwrap_or_default();
        let offset = u64::from_le_bytes(word(0..8).try_into().map_err(|_| "footer")?);
        let len = u32::from_le_bytes(word(8..12).try_into().map_err(|_| "footer")?);
        let crc = u32::from_le_bytes(word(12..16).try_into().map_err(|_| "footer")?);
        if len > MAX_INDEX || offset.checked_add(u64::from(len)) != Some(at) {
            return Err("index out of place".into());
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, offset)
            .map_err(|e| e.to_string())?;
        if crc32fast::hash(&bytes) != crc {
            return Err("the index does not match its checksum".into());
        }
        Ok(bytes)
    }

    /// The index (checked against its checksum when the file was opened; parsed each time,
    /// borrowing its bytes).
    fn entries(&self) -> Result<Vec<Entry<'_>>, Damage> {
        postcard::from_bytes(&self.index).map_err(|e| Damage(format!("index: {e}")))
    }

    /// The runs at `at`, read and each checked against its checksum.
    pub(crate) fn read_checked(&self, at: &[RunAt]) -> Result<Vec<RunBytes>, Damage> {
        at.iter().map(|&run| self.read_run(run)).collect()
    }

    /// One run, checked against its checksum.
    fn read_run(&self, (offset, len, crc): RunAt) -> Result<RunBytes, Damage> {
        let mut bytes = vec![0u8; len.min(MAX_INDEX) as usize];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(|e| Damage(format!("a run: {e}")))?;
        checksum(&bytes, crc, || format!("the run at {offset}"))?;
        Ok(RunBytes(bytes))
    }

    /// One run's site filter, checked against its checksum (for the integrity check; a
    /// query reads them all at once, [`RunsFile::site_runs`]).
    fn read_filter(&self, e: &Entry<'_>) -> Result<Vec<u8>, Damage> {
        let mut filter = vec![0u8; e.sites_len.min(MAX_INDEX) as usize];
        self.file
            .read_exact_at(&mut filter, e.sites)
            .map_err(|err| Damage(format!("a site filter: {err}")))?;
        checksum(&filter, e.sites_crc, || {
            format!("the site filter of the run at {}", e.offset)
        })?;
        Ok(filter)
    }

    /// The runs of the devices `wanted` accepts, in time order for each device, and how
    /// many devices that is.
    pub(crate) fn runs_of(
        &self,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<(Vec<RunAt>, usize), Damage> {
        let mut devices = 0;
        let mut last: Option<&str> = None;
        let mut runs = Vec::new();
        let entries = self.entries()?;
        for e in &entries {
            if wanted(&e.device) {
                if last != Some(&*e.device) {
                    devices += 1;
                    last = Some(&e.device);
                }
                runs.push((e.offset, e.len, e.crc));
            }
        }
        Ok((runs, devices))
    }

    /// The runs whose site filter may hold `site` (a [`host_key`]); `None` when more than a
    /// quarter of them may (a name most events are under): the part's batches, in time
    /// order already, are then the cheaper read.
    pub(crate) fn site_runs(&self, site: &str) -> Result<Option<Vec<RunAt>>, Damage> {
        let index = self.entries()?;
        let (Some(start), Some(end)) = (
            index.iter().map(|e| e.sites).min(),
            index
                .iter()
                .map(|e| e.sites.saturating_add(u64::from(e.sites_len)))
                .max(),
        ) else {
            return Ok(Some(Vec::new()));
        };
        let mut filters = vec![
            0u8;
            usize::try_from(end.saturating_sub(start))
                .unwrap_or(0)
                .min(MAX_INDEX as usize)
        ];
        self.file
            .read_exact_at(&mut filters, start)
            .map_err(|e| Damage(format!("site filters: {e}")))?;
        let mut runs = Vec::new();
        for e in &index {
            let at = usize::try_from(e.sites.saturating_sub(start)).unwrap_or(usize::MAX);
            let filter = filters
                .get(at..at.saturating_add(e.sites_len as usize))
                .unwrap_or_default();
            checksum(filter, e.sites_crc, || {
                format!("the site filter of the run at {}", e.offset)
            })?;
            if may_hold(filter, site) {
                runs.push((e.offset, e.len, e.crc));
            }
        }
        if runs.len() * 4 > index.len() && runs.len() > MOST_SITE_RUNS {
            return Ok(None);
        }
        // Read as one unit, merged by time (`events.rs`).
        Ok(Some(runs))
    }
}

/// Whether `bytes` match their CRC-32; if not, the damage names `what`.
fn checksum(bytes: &[u8], crc: u32, what: impl FnOnce() -> String) -> Result<(), Damage> {
    if crc32fast::hash(bytes) == crc {
        Ok(())
    } else {
        Err(Damage(format!("{} does not match its checksum", what())))
    }
}

impl RunBytes {
    /// The run's events.
    pub(crate) fn decode(&self) -> Result<Vec<AccessEvent>, StoreError> {
        decode_batch(RUNS_FILE, &self.0)
    }
}

/// The footer's length: the index's offset, length and checksum, and the end mark.
const FOOTER: usize = 8 + 4 + 4 + MAGIC.len();

/// A site search reads a part's runs whenever this few or fewer may hold the site.
const MOST_SITE_RUNS: usize = 64;

/// What errors name a runs file's values as.
pub(crate) const RUNS_FILE: &str = "device runs file";

/// One run as written: its device, first time, value and site filter.
type Run = (String, i64, Vec<u8>, Vec<u8>);

/// Writes a runs file whole: to a temporary name, synced, then renamed into place. The runs,
/// then their site filters, then the index, then where the index is and the end mark.
fn write_file(path: &Path, runs: &[Run]) -> Result<(), StoreError> {
    use std::io::Write;
    let tmp = path.with_extension("runs.tmp");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    out.write_all(MAGIC)?;
    let mut offset = MAGIC.len() as u64;
    let mut index = Vec::with_capacity(runs.len());
    for (device, first, value, _) in runs {
        out.write_all(value)?;
        let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        index.push(Entry {
            device: device.as_str().into(),
            first: *first,
            offset,
            len,
            crc: crc32fast::hash(value),
            sites: 0,
            sites_len: 0,
            sites_crc: 0,
        });
        offset += value.len() as u64;
    }
    for ((_, _, _, filter), entry) in runs.iter().zip(index.iter_mut()) {
        out.write_all(filter)?;
        entry.sites = offset;
        entry.sites_len = u32::try_from(filter.len()).unwrap_or(u32::MAX);
        entry.sites_crc = crc32fast::hash(filter);
        offset += filter.len() as u64;
    }
    let bytes = postcard::to_stdvec(&index).map_err(|e| StoreError::Decode {
        tree: RUNS_FILE.into(),
        reason: e.to_string(),
    })?;
    out.write_all(&bytes)?;
    out.write_all(&offset.to_le_bytes())?;
    out.write_all(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes())?;
    out.write_all(&crc32fast::hash(&bytes).to_le_bytes())?;
    out.write_all(MAGIC)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Whether `main` marks a part done at this [`VERSION`].
fn is_done(done: &sled::Tree, id: PartId) -> Result<bool, StoreError> {
    Ok(done
        .get(part_key(id))?
        .is_some_and(|v| v.first().is_some_and(|&n| n >= VERSION)))
}

impl Store {
    /// Writes the device runs and site filters of one closed part, unless they are there.
    /// `go_on` is asked after each batch read; when it says no, the part is left as it was.
    /// Returns whether it wrote them.
    fn write_runs(
        &self,
        id: PartId,
        db: &sled::Db,
        go_on: &mut dyn FnMut() -> bool,
    ) -> Result<bool, StoreError> {
        let path = runs_path(&self.part_dir(id));
        if site_filters(db)?.is_some() && path.exists() {
            // Done before a stop that came before `main` was told.
            self.db
                .open_tree(RUNS_PARTS)?
                .insert(part_key(id), &[VERSION])?;
            return Ok(false);
        }
        // Device id -> its builder; each sealed batch is a run, kept compressed until the
        // part is read through.
        let mut builders: std::collections::BTreeMap<String, (BatchBuilder, FilterBuilder)> =
            Default::default();
        let mut runs: Vec<Run> = Vec::new();
        let mut scratch = ValueScratch::default();
        let mut filters = sled::Batch::default();
        let mut filter = FilterBuilder::default();
        for item in db.open_tree(EVENTS)?.iter() {
            let (key, value) = item?;
            for e in decode_batch(EVENTS, &value)? {
                filter.add(&e.target);
                let dev = device_id(&e);
                let (b, f) = match builders.get_mut(&dev) {
                    Some(b) => b,
                    None => builders.entry(dev.clone()).or_default(),
                };
                // The event that seals a run starts the next one.
                if let Some(sealed) = b.push(&e) {
                    runs.push((dev, sealed.first, sealed.value_with(&mut scratch), f.take()));
                }
                f.add(&e.target);
            }
            filters.insert(key, filter.take());
            if !go_on() {
                return Ok(false);
            }
        }
        for (dev, (mut b, mut f)) in builders {
            if let Some(sealed) = b.seal() {
                runs.push((dev, sealed.first, sealed.value_with(&mut scratch), f.take()));
            }
        }
        // By device, then time (a sort that keeps a device's runs in the order written).
        runs.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        write_file(&path, &runs)?;
        db.open_tree(SITE_FILTERS)?.apply_batch(filters)?;
        if db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == OLD_RUNS.as_bytes())
        {
            db.drop_tree(OLD_RUNS)?;
        }
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
        for id in self.part_ids() {
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
        Ok(wrote)
    }

    /// Closed parts whose device runs are not written yet: how far the background work is
    /// behind (for system status).
    pub fn runs_pending(&self) -> Result<usize, StoreError> {
        let done = self.db.open_tree(RUNS_PARTS)?;
        let mut n = 0;
        for id in self.part_ids() {
            if !self.is_writing(id) && !is_done(&done, id)? {
                n += 1;
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

    /// A damaged runs file: said in the log, deleted, and its part unmarked, so that the
    /// background pass writes it again within seconds. Meanwhile the part is read through
    /// its database, as before the file was first written.
    pub(crate) fn runs_damaged(&self, id: PartId, damage: &Damage) {
        let path = runs_path(&self.part_dir(id));
        tracing::warn!(
            "{}: damaged runs file ({}); reading its part instead, and writing the file again",
            path.display(),
            damage.0
        );
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("{}: could not delete it: {e}", path.display());
        }
        if let Err(e) = self
            .db
            .open_tree(RUNS_PARTS)
            .and_then(|t| t.remove(part_key(id)))
        {
            tracing::warn!(
                "{}: could not mark it to be written again: {e}",
                path.display()
            );
        }
    }

    /// For `check_integrity`: whether a done part's runs file holds its `events` events,
    /// each run only its device's, each run's site filter its hosts, and whether each
    /// batch's site filter holds its events' hosts. A part with a problem is written again
    /// (`runs_damaged`). A part not done yet (or waiting to be done again) has nothing to
    /// check.
    pub(crate) fn check_runs(
        &self,
        name: &str,
        id: PartId,
        db: &sled::Db,
        events: u64,
        problems: &mut Vec<String>,
    ) -> Result<(), StoreError> {
        let Some(filters) = site_filters(db)? else {
            return Ok(());
        };
        if !is_done(&self.db.open_tree(RUNS_PARTS)?, id)? {
            return Ok(());
        }
        let before = problems.len();
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
        match RunsFile::open(&runs_path(&self.part_dir(id))) {
            Ok(Some(file)) => check_file(name, &file, events, problems)?,
            Ok(None) => problems.push(format!(
                "{name}: part {} is marked done but has no runs file",
                id.1
            )),
            Err(Damage(why)) => problems.push(format!("{name}: a damaged runs file ({why})")),
        }
        if problems.len() > before {
            self.runs_damaged(
                id,
                &Damage(format!(
                    "the integrity check: {}",
                    problems[before..].join("; ")
                )),
            );
        }
        Ok(())
    }
}

/// Checks every run and site filter of a runs file, and that it holds `events` events.
fn check_file(
    name: &str,
    file: &RunsFile,
    events: u64,
    problems: &mut Vec<String>,
) -> Result<(), StoreError> {
    let damaged = |Damage(why)| format!("{name}: a damaged runs file ({why})");
    let entries = match file.entries() {
        Ok(entries) => entries,
        Err(damage) => {
            problems.push(damaged(damage));
            return Ok(());
        }
    };
    let mut held = 0u64;
    for e in &entries {
        let (run, filter) = match file
            .read_run((e.offset, e.len, e.crc))
            .and_then(|run| Ok((run, file.read_filter(e)?)))
        {
            Ok(read) => read,
            Err(damage) => {
                problems.push(damaged(damage));
                return Ok(());
            }
        };
        let batch = run.decode()?;
        held += batch.len() as u64;
        if let Some(ev) = batch
            .iter()
            .find(|ev| !may_hold(&filter, &host_key(&ev.target)))
        {
            problems.push(format!(
                "{name}: the run of {}'s site filter does not hold {}",
                e.device,
                host_key(&ev.target)
            ));
        }
        if batch.iter().any(|ev| device_id(ev) != e.device) {
            problems.push(format!(
                "{name}: the run of {} holds another device's events",
                e.device
            ));
        }
    }
    if held != events {
        problems.push(format!(
            "{name}: a runs file holds {held} events, its part's batches {events}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::sync::Arc;

    use hedgerow_model::Front;

    use super::*;

    /// A small runs file's runs: four devices' events, written as `write_runs` does.
    fn runs() -> Vec<Run> {
        let start: jiff::Timestamp = "2026-11-05T08:00:00Z".parse().unwrap();
        let mut runs = Vec::new();
        let mut scratch = ValueScratch::default();
        for d in 0..4 {
            let mut b = BatchBuilder::default();
            let mut f = FilterBuilder::default();
            for i in 0..6i64 {
                let t = start + jiff::SignedDuration::from_secs(i * 60 + d);
                let mut e = AccessEvent::new(
                    t,
                    Front::Dns,
                    format!("10.0.0.{d}").parse().unwrap(),
                    format!("w{i}.example"),
                );
                e.device = Some(Arc::from(format!("pc-{d}")));
                f.add(&e.target);
                assert!(b.push(&e).is_none());
            }
            let sealed = b.seal().unwrap();
            runs.push((
                format!("d:pc-{d}"),
                sealed.first,
                sealed.value_with(&mut scratch),
                f.take(),
            ));
        }
        runs
    }

    /// Everything a query may read of a runs file: every run's events, and a site lookup.
    fn read_all(path: &Path) -> Result<(Vec<AccessEvent>, usize), Damage> {
        let file = RunsFile::open(path)?.ok_or(Damage("gone".into()))?;
        let (at, _) = file.runs_of(|_| true)?;
        let mut events = Vec::new();
        for run in file.read_checked(&at)? {
            events.extend(run.decode().map_err(|e| Damage(e.to_string()))?);
        }
        let sites = file
            .site_runs("w3.example")?
            .map_or(usize::MAX, |r| r.len());
        Ok((events, sites))
    }

    #[test]
    fn a_changed_or_missing_byte_anywhere_is_found_or_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000000.runs");
        write_file(&path, &runs()).unwrap();
        let good = std::fs::read(&path).unwrap();
        let want = read_all(&path).ok().unwrap();
        assert_eq!(want.0.len(), 24);
        let mut found = 0;
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x41;
            std::fs::write(&path, &bad).unwrap();
            match read_all(&path) {
                Ok(got) => assert!(got == want, "a change at byte {at} read as other events"),
                Err(_) => found += 1,
            }
        }
        // Every byte but the leading mark's is checked.
        assert_eq!(found, good.len() - MAGIC.len());
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(read_all(&path).is_err(), "cut to {len} bytes and read");
        }
    }
}
