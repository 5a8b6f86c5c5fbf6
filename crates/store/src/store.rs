//! The sled database and its trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hedgerow_model::AccessEvent;
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::StoreError;
use crate::breaches::{BREACH_KEYS, BREACHES, PENDING, TRIGGER_KEYS, TRIGGERS};
use crate::wire::{
    self, BatchBuilder, NANOS_PER_DAY, Sealed, ValueScratch, address_device_id, decode,
    decode_batch, encode, from_nanos, named_device_id, nanos, time_key,
};

pub(crate) const EVENTS: &str = "events";
pub(crate) const DEVICES: &str = "devices";
const DAYS_DIR: &str = "days";
/// How long, at most, opening a database waits for the one just closed to let go of
/// its lock: `LOCK_TRIES` waits of `LOCK_WAIT`.
const LOCK_TRIES: u32 = 400;
const LOCK_WAIT: Duration = Duration::from_millis(5);
/// Parts of days kept open at once (the one being written and whatever a query read last).
const OPEN_PARTS: usize = 3;
const AUDIT: &str = "audit";
const META: &str = "meta";

/// How the database is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled's page cache, in bytes. sled's default grows with use; a cap keeps the appliance's
    /// memory predictable.
    pub cache_bytes: u64,
    /// Bytes of access events written to a part of a day before it is closed and the next
    /// part begun (see `Store::recycle`): 2 MiB, about 150,000 DNS events.
    pub part_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 64 << 20,
            part_bytes: 2 << 20,
        }
    }
}

/// How long each kind of record is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub access: Duration,
    pub breaches: Duration,
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Day trees dropped (events and their device index), as `YYYY-MM-DD`.
    pub days_dropped: Vec<String>,
    pub breaches_removed: usize,
    /// Review requests asked before the breach retention.
    pub reviews_removed: usize,
}

/// One entry of the append-only audit log (filter changes, reviews, imports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: u64,
    pub time: jiff::Timestamp,
    /// Who did it: a technician's or leader's name, or `hedgerow` for the appliance itself.
    pub actor: String,
    /// What kind of thing happened, such as `proposal`, `approval`, `rollback`, `import`.
    pub action: String,
    /// The details, usually JSON.
    pub detail: String,
    /// The hash chain (see `audit.rs`): the previous chained entry's hash and this entry's,
    /// as hex. `None` on entries written before the chain began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
}

/// Whether every index agrees with the data it indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntegrityReport {
    pub days: usize,
    pub batches: usize,
    pub events: u64,
    pub breaches: usize,
    /// Each disagreement found, in words. Empty means consistent.
    pub problems: Vec<String>,
}

/// The log store. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Store {
    /// Breaches, their keys, pending alerts, the audit log, meta.
    pub(crate) db: sled::Db,
    path: PathBuf,
    options: StoreOptions,
    /// The parts of days open now (each `days/YYYY-MM-DD/NNNNNN`), by day number and part.
    day_dbs: std::sync::Mutex<BTreeMap<PartId, sled::Db>>,
    /// For the last few days appended to: the part appends go to, and the bytes written to it.
    writing: std::sync::Mutex<BTreeMap<i64, (u32, u64)>>,
    /// The most-blocked sites of recent ranges of whole days (`counts.rs`), with the count
    /// of parts added in that they were read after.
    pub(crate) top_sites: std::sync::Mutex<crate::counts::TopSitesCache>,
    pub(crate) breaches: sled::Tree,
    pub(crate) breach_keys: sled::Tree,
    pub(crate) pending: sled::Tree,
    pub(crate) triggers: sled::Tree,
    pub(crate) trigger_keys: sled::Tree,
    pub(crate) meta: sled::Tree,
    pub(crate) audit: sled::Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

type TxError = TransactionError<StoreError>;

pub(crate) fn tx_err(e: TxError) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

fn day_name(day: i64) -> String {
    let ts = from_nanos(day.saturating_mul(NANOS_PER_DAY));
    ts.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

/// A batch of access events ready to write (see [`Store::prepare`]).
pub(crate) struct Prepared {
    day: i64,
    /// Events in the batch.
    pub(crate) events: usize,
    key: Vec<u8>,
    value: Vec<u8>,
    index: Vec<(Vec<u8>, Vec<u8>)>,
    /// The batch's counts (`counts.rs`), written beside it.
    counts: Vec<u8>,
}

/// The trees a query reads in one part of a day (see [`Store::part_trees`]).
pub(crate) struct PartTrees {
    pub(crate) events: sled::Tree,
    pub(crate) devices: sled::Tree,
    /// Each batch's site filter, keyed as the batch (`sites.rs`), once written.
    pub(crate) site_filters: Option<sled::Tree>,
}

/// A part of a day's access events: the day number and the part's number within the day.
pub(crate) type PartId = (i64, u32);

fn part_name(part: u32) -> String {
    format!("{part:06}")
}

pub(crate) fn day_of(name: &str) -> Option<i64> {
    let date: jiff::civil::Date = name.parse().ok()?;
    let ts = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(nanos(ts).div_euclid(NANOS_PER_DAY))
}

/// [`Store::check_integrity`] for one part of the day `name`: every device index entry points
/// at events of that device, and every event is indexed exactly once.
fn check_part(
    name: &str,
    ev_tree: &sled::Tree,
    dev_tree: &sled::Tree,
    r: &mut IntegrityReport,
    tally: &mut crate::counts::Tally,
) -> Result<(), StoreError> {
    let day = day_of(name).unwrap_or(0);
    // For each batch, how many times each event position is indexed.
    let mut seen: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut devices: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for item in ev_tree.iter() {
        let (k, v) = item?;
        r.batches += 1;
        let events = decode_batch(EVENTS, &v)?;
        r.events += events.len() as u64;
        tally.add(day, &crate::counts::counts_of(&events));
        let ids = events.iter().map(device_id).collect::<Vec<_>>();
        seen.insert(k.to_vec(), vec![0; ids.len()]);
        devices.insert(k.to_vec(), ids);
    }
    for item in dev_tree.iter() {
        let (k, v) = item?;
        let len = k
            .get(..2)
            .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let dev = String::from_utf8_lossy(k.get(2..2 + len).unwrap_or_default()).into_owned();
        let batch = k.get(2 + len + 8..).unwrap_or_default().to_vec();
        let positions: Vec<u32> = decode(DEVICES, &v)?;
        let (Some(counts), Some(ids)) = (seen.get_mut(&batch), devices.get(&batch)) else {
            r.problems.push(format!(
                "{name}: device index for {dev} points at a missing batch"
            ));
            continue;
        };
        for p in positions {
            match (counts.get_mut(p as usize), ids.get(p as usize)) {
                (Some(c), Some(id)) if *id == dev => *c += 1,
                _ => r.problems.push(format!(
                    "{name}: device index for {dev} points at event {p}, which is not that device's"
                )),
            }
        }
    }
    for counts in seen.values() {
        let bad = counts.iter().filter(|&&c| c != 1).count();
        if bad > 0 {
            r.problems.push(format!(
                "{name}: {bad} events are not indexed exactly once by device"
            ));
        }
    }
    Ok(())
}

/// The device index key of an event: its device name, or its address when it has none.
pub(crate) fn device_id(e: &AccessEvent) -> String {
    match &e.device {
        Some(d) => named_device_id(d),
        None => address_device_id(e.client),
    }
}

fn device_prefix(id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 2);
    k.extend_from_slice(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

/// Opens a sled database, waiting for its file lock. A database just dropped (a part
/// closed by `recycle`, or the whole store closed and opened again at once) keeps its lock
/// until sled's flusher and I/O threads finish the writes they had under way.
fn open_waiting(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let mut tries = 0;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            // sled reports it as `Other` with this text (sled 0.34, config.rs).
            Err(sled::Error::Io(e))
                if tries < LOCK_TRIES && e.to_string().starts_with("could not acquire lock") =>
            {
                tries += 1;
                std::thread::sleep(LOCK_WAIT);
            }
            Err(e) => return Err(e),
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let path = dir.to_path_buf();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let db = open_waiting(
            &sled::Config::new()
                .path(dir.join("main"))
                .cache_capacity(options.cache_bytes / 2)
                .flush_every_ms(Some(500)),
        )
        .map_err(open_err)?;
        let meta = db.open_tree(META)?;
        match meta.get("format")? {
            None => {
                meta.insert("format", &[wire::FORMAT])?;
            }
            Some(v) if v.as_ref() == [wire::FORMAT] => {}
            Some(v) => {
                return Err(StoreError::Format {
                    tree: META.into(),
                    found: v.first().copied().unwrap_or(0),
                    expected: wire::FORMAT,
                });
            }
        }
        let store = Self {
            breaches: db.open_tree(BREACHES)?,
            breach_keys: db.open_tree(BREACH_KEYS)?,
            pending: db.open_tree(PENDING)?,
            triggers: db.open_tree(TRIGGERS)?,
            trigger_keys: db.open_tree(TRIGGER_KEYS)?,
            meta,
            audit: db.open_tree(AUDIT)?,
            db,
            path,
            options: options.clone(),
            day_dbs: std::sync::Mutex::new(BTreeMap::new()),
            writing: std::sync::Mutex::new(BTreeMap::new()),
            top_sites: std::sync::Mutex::new(Default::default()),
        };
        store.init_breach_ids()?;
        store.init_breach_counts()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database of breaches, the audit log and the other records that are not access
    /// events (review requests open their own tree in it).
    pub(crate) fn main_db(&self) -> &sled::Db {
        &self.db
    }

    /// Writes everything to disk and waits for it.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        for db in self.open_parts().values() {
            db.flush()?;
        }
        Ok(())
    }

    /// Bytes the store's files take on disk.
    pub fn disk_bytes(&self) -> Result<u64, StoreError> {
        fn walk(p: &Path) -> std::io::Result<u64> {
            let mut n = 0;
            for entry in std::fs::read_dir(p)? {
                // sled renames and removes files as it works: one gone since the listing
                // no longer counts.
                let Ok((path, meta)) = entry.and_then(|e| Ok((e.path(), e.metadata()?))) else {
                    continue;
                };
                n += if meta.is_dir() {
                    walk(&path).unwrap_or(0)
                } else {
                    meta.len()
                };
            }
            Ok(n)
        }
        Ok(walk(&self.path)?)
    }

    /// Bytes of keys and values held: the live data, to compare with [`Self::disk_bytes`].
    pub fn live_bytes(&self) -> Result<u64, StoreError> {
        let mut dbs = vec![self.db.clone()];
        for name in self.days() {
            let Some(day) = day_of(&name) else { continue };
            for part in self.parts(&name) {
                dbs.extend(self.part_db((day, part), false)?);
            }
        }
        let mut n = 0u64;
        for db in dbs {
            for name in db.tree_names() {
                for item in db.open_tree(name)?.iter() {
                    let (k, v) = item?;
                    n += (k.len() + v.len()) as u64;
                }
            }
        }
        Ok(n)
    }

    fn open_parts(&self) -> std::sync::MutexGuard<'_, BTreeMap<PartId, sled::Db>> {
        self.day_dbs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn writing(&self) -> std::sync::MutexGuard<'_, BTreeMap<i64, (u32, u64)>> {
        self.writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The parts of a day on disk, in the order they were written.
    pub(crate) fn parts(&self, day_name: &str) -> Vec<u32> {
        let mut parts: Vec<u32> = std::fs::read_dir(self.path.join(DAYS_DIR).join(day_name))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        parts.sort_unstable();
        parts
    }

    /// The database of one part of a day, opened if need be (and created if `create`). Each
    /// day is a directory of its own because sled does not give back the space of a dropped
    /// tree: measured, a tree per day dropped after three days grew without bound (143 MB on
    /// disk for 12 MB live after 60 days). A day's directory is deleted whole. A day is
    /// written in parts (see [`Store::recycle`]).
    fn part_db(&self, id: PartId, create: bool) -> Result<Option<sled::Db>, StoreError> {
        let mut open = self.open_parts();
        if let Some(db) = open.get(&id) {
            return Ok(Some(db.clone()));
        }
        let path = self.part_dir(id);
        if !create && !path.is_dir() {
            return Ok(None);
        }
        let config = sled::Config::new()
            .path(&path)
            // Small on purpose: sled under-counts large values against its cache, so a day
            // database given a share of 64 MiB grew to ~200 MiB resident over 3M events;
            // with 2 MiB it stays near 35 MiB at the same speed (measured).
            .cache_capacity((self.options.cache_bytes / 32).max(1 << 20))
            .flush_every_ms(Some(500));
        let db = open_waiting(&config).map_err(|source| StoreError::Open { path, source })?;
        open.insert(id, db.clone());
        // Keep a few open: the part being written, and those read last.
        let writing = self.writing().clone();
        while open.len() > OPEN_PARTS {
            let Some(oldest) = open
                .keys()
                .copied()
                .find(|(day, part)| writing.get(day).map(|w| w.0) != Some(*part))
            else {
                break;
            };
            open.remove(&oldest);
        }
        Ok(Some(db))
    }

    /// The directory of a part's database.
    pub(crate) fn part_dir(&self, id: PartId) -> PathBuf {
        self.path
            .join(DAYS_DIR)
            .join(day_name(id.0))
            .join(part_name(id.1))
    }

    /// The trees appends to `day` go to: the part being written, or a new part after the
    /// last one on disk (a new part opens at once; reopening one replays its log).
    fn day_trees(
        &self,
        day: i64,
    ) -> Result<(PartId, sled::Tree, sled::Tree, sled::Tree), StoreError> {
        let id = {
            let mut writing = self.writing();
            let part = match writing.get(&day) {
                Some(&(part, _)) => part,
                None => {
                    let part = self.parts(&day_name(day)).last().copied().unwrap_or(0) + 1;
                    writing.insert(day, (part, 0));
                    // Events of a few days at most arrive together (around midnight).
                    while writing.len() > OPEN_PARTS {
                        writing.pop_first();
                    }
                    part
                }
            };
            (day, part)
        };
        let db = self
            .part_db(id, true)?
            .ok_or_else(|| std::io::Error::other("day database could not be created"))?;
        Ok((
            id,
            db.open_tree(EVENTS)?,
            db.open_tree(DEVICES)?,
            db.open_tree(crate::counts::COUNTS)?,
        ))
    }

    /// The database of a part of a day, if it is on disk.
    pub(crate) fn part_db_if_exists(&self, id: PartId) -> Result<Option<sled::Db>, StoreError> {
        self.part_db(id, false)
    }

    /// Whether `id` is the part appends to its day go to now.
    pub(crate) fn is_writing(&self, id: PartId) -> bool {
        self.writing().get(&id.0).map(|w| w.0) == Some(id.1)
    }

    /// The trees of each part of a day, in the order they were written.
    fn existing_day(&self, name: &str) -> Result<Vec<(sled::Tree, sled::Tree)>, StoreError> {
        let Some(day) = day_of(name) else {
            return Ok(Vec::new());
        };
        let mut trees = Vec::new();
        for part in self.parts(name) {
            if let Some(db) = self.part_db((day, part), false)? {
                trees.push((db.open_tree(EVENTS)?, db.open_tree(DEVICES)?));
            }
        }
        Ok(trees)
    }

    /// The trees of one part of a day, if it is on disk: its batches, its device index and,
    /// once written, its site filters (`sites.rs`).
    pub(crate) fn part_trees(&self, id: PartId) -> Result<Option<PartTrees>, StoreError> {
        match self.part_db(id, false)? {
            Some(db) => Ok(Some(PartTrees {
                events: db.open_tree(EVENTS)?,
                devices: db.open_tree(DEVICES)?,
                site_filters: crate::runs::site_filters(&db)?,
            })),
            None => Ok(None),
        }
    }

    /// Every part of every day on disk, oldest first.
    pub(crate) fn part_ids(&self) -> Vec<PartId> {
        let mut ids = Vec::new();
        for name in self.days() {
            if let Some(day) = day_of(&name) {
                ids.extend(self.parts(&name).into_iter().map(|p| (day, p)));
            }
        }
        ids
    }

    /// The days that hold access events, oldest first.
    pub fn days(&self) -> Vec<String> {
        let mut days: Vec<String> = std::fs::read_dir(self.path.join(DAYS_DIR))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| day_of(n).is_some())
            .collect();
        days.sort();
        days
    }

    /// Appends access events: one stored value per day they fall on (or per full batch),
    /// written in one transaction per day with their device index entries.
    pub fn append_events(&self, events: &[AccessEvent]) -> Result<(), StoreError> {
        let mut batch = BatchBuilder::default();
        let mut sealed: Vec<Sealed> = events.iter().filter_map(|e| batch.push(e)).collect();
        sealed.extend(batch.seal());
        self.append_sealed(&sealed, &mut ValueScratch::default())
    }

    /// Writes encoded batches and their device index rows (see [`Store::write_prepared`]).
    pub(crate) fn append_sealed(
        &self,
        batches: &[Sealed],
        scratch: &mut ValueScratch,
    ) -> Result<(), StoreError> {
        let ready = batches
            .iter()
            .map(|b| self.prepare(b, scratch))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_prepared(&ready)
    }

    /// A batch made ready to write: its key, its compressed value and its device index rows.
    /// The writer prepares batches one at a time and writes them a few at a time, so that
    /// neither step holds a shared core for long.
    pub(crate) fn prepare(
        &self,
        batch: &Sealed,
        scratch: &mut ValueScratch,
    ) -> Result<Prepared, StoreError> {
        let mut key = Vec::with_capacity(16);
        key.extend_from_slice(&time_key(batch.first));
        key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
        // Device index: for each device, the positions of its events in this batch.
        let index = batch
            .devices()
            .map(|(id, t, positions)| {
                let mut k = device_prefix(&id);
                k.extend_from_slice(&time_key(t));
                k.extend_from_slice(&key);
                (k, encode(positions))
            })
            .collect();
        Ok(Prepared {
            day: batch.day,
            events: batch.events,
            counts: encode(&batch.counts()),
            value: batch.value_with(scratch),
            key,
            index,
        })
    }

    /// Writes prepared batches: one transaction for those of each day. A sled transaction
    /// writes its part of the log to disk and waits for it (two writes and two
    /// `sync_file_range` calls, whatever its size): one a batch cost the writer and sled's
    /// I/O threads more than the encoding.
    pub(crate) fn write_prepared(&self, ready: &[Prepared]) -> Result<(), StoreError> {
        for rows in ready.chunk_by(|a, b| a.day == b.day) {
            let Some(day) = rows.first().map(|r| r.day) else {
                continue;
            };
            let (part, ev_tree, dev_tree, counts_tree) = self.day_trees(day)?;
            (&ev_tree, &dev_tree, &counts_tree)
                .transaction(|(evs, devs, counts)| {
                    for row in rows {
                        evs.insert(row.key.as_slice(), row.value.as_slice())?;
                        counts.insert(row.key.as_slice(), row.counts.as_slice())?;
                        for (k, v) in &row.index {
                            devs.insert(k.as_slice(), v.as_slice())?;
                        }
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(())
                })
                .map_err(tx_err)?;
            self.recycle(part, rows.iter().map(|r| r.value.len()).sum());
        }
        Ok(())
    }

    /// Closes the part being written after every `part_bytes` written to it; the next
    /// append starts a new part. sled keeps the values it was given in memory whatever its
    /// cache capacity (heaptrack: its transaction values were the largest live allocation,
    /// and the appliance's resident memory grew with every event logged); closing the
    /// database is what gives that memory back. At 16 MiB the proxy under load held 9 MiB
    /// more than at 2 MiB. Reopening the same database instead replayed its log: 4–15 ms of
    /// the writer's time at once, every half second at 150k DNS queries a second, which
    /// stalled the answers (a new part opens in under 1 ms).
    fn recycle(&self, id: PartId, written: usize) {
        let full = {
            let mut writing = self.writing();
            match writing.get_mut(&id.0) {
                Some(w) if w.0 == id.1 => {
                    w.1 += written as u64;
                    let full = w.1 >= self.options.part_bytes;
                    if full {
                        *w = (id.1 + 1, 0);
                    }
                    full
                }
                _ => false,
            }
        };
        if !full {
            return;
        }
        // Its counts go into the day's counters now (a read would otherwise open it again).
        let db = self.open_parts().get(&id).cloned();
        if let Some(db) = db
            && let Err(e) = self.fold_part(id, &db)
        {
            tracing::warn!("adding a closed part's counts to the day's: {e}");
        }
        if let Some(db) = self.open_parts().remove(&id)
            && let Err(e) = db.flush()
        {
            tracing::warn!("flushing a day database before closing it: {e}");
        }
    }

    /// Appends to the audit log. On disk when this returns.
    pub fn append_audit(
        &self,
        time: jiff::Timestamp,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> Result<AuditEntry, StoreError> {
        crate::audit::append(self, time, actor, action, detail)
    }

    /// The whole audit log, oldest first.
    pub fn audit(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit
            .iter()
            .values()
            .map(|v| crate::audit::decode_entry(&v?))
            .collect()
    }

    /// A value kept in the meta tree (for example when the last digest went out).
    pub fn meta_time(&self, key: &str) -> Result<Option<jiff::Timestamp>, StoreError> {
        Ok(self.db.open_tree(META)?.get(key)?.map(|v| {
            let mut b = [0u8; 8];
            if let Some(src) = v.get(..8) {
                b.copy_from_slice(src);
            }
            from_nanos(i64::from_be_bytes(b))
        }))
    }

    pub fn set_meta_time(&self, key: &str, t: jiff::Timestamp) -> Result<(), StoreError> {
        self.db
            .open_tree(META)?
            .insert(key, &nanos(t).to_be_bytes())?;
        self.flush()
    }

    /// Drops day trees older than the access retention and breaches last seen before the
    /// breach retention. The audit log is kept.
    pub fn purge(&self, now: jiff::Timestamp, keep: Retention) -> Result<PurgeReport, StoreError> {
        let mut report = PurgeReport::default();
        let cutoff = |d: Duration| {
            let back = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
            nanos(now).saturating_sub(back)
        };
        // A day goes only once all of it is older than the retention.
        let first_kept_day = cutoff(keep.access).div_euclid(NANOS_PER_DAY);
        for name in self.days() {
            let Some(day) = day_of(&name).filter(|&d| d < first_kept_day) else {
                continue;
            };
            // Close its parts first; sled's own threads hold them open until the last handle
            // goes. The open-parts lock is held until the directory is gone: a reader opening
            // a part of this day (`part_db`) waits, then finds no directory, instead of
            // opening files half deleted ("Read corrupted data") or re-creating the part.
            let mut open = self.open_parts();
            let ids: Vec<PartId> = open.keys().copied().filter(|k| k.0 == day).collect();
            for db in ids.iter().filter_map(|id| open.remove(id)) {
                db.flush()?;
            }
            self.writing().remove(&day);
            std::fs::remove_dir_all(self.path.join(DAYS_DIR).join(&name))?;
            drop(open);
            report.days_dropped.push(name);
        }
        self.purge_counts(first_kept_day)?;
        self.purge_runs(first_kept_day)?;
        let breach_cutoff = from_nanos(cutoff(keep.breaches));
        report.breaches_removed = self.purge_breaches(breach_cutoff)?;
        report.reviews_removed = self.purge_reviews(breach_cutoff)?;
        self.flush()?;
        Ok(report)
    }

    /// Checks that every device index entry points at events of that device, that every event
    /// is indexed exactly once, that a part's device runs and site filters hold its events,
    /// that every de-duplication key points at its breach, and that the counters agree with
    /// the events and breaches they count.
    pub fn check_integrity(&self) -> Result<IntegrityReport, StoreError> {
        let mut r = IntegrityReport::default();
        let mut tally = crate::counts::Tally::default();
        for name in self.days() {
            let Some(day) = day_of(&name) else { continue };
            let mut any = false;
            for part in self.parts(&name) {
                let Some(db) = self.part_db((day, part), false)? else {
                    continue;
                };
                any = true;
                let before = r.events;
                let (ev_tree, dev_tree) = (db.open_tree(EVENTS)?, db.open_tree(DEVICES)?);
                let mut part_tally = crate::counts::Tally::default();
                check_part(&name, &ev_tree, &dev_tree, &mut r, &mut part_tally)?;
                part_tally.cap_sites();
                tally.merge(part_tally);
                self.check_runs(&name, (day, part), &db, r.events - before, &mut r.problems)?;
            }
            if any {
                r.days += 1;
            }
        }
        self.check_breaches(&mut r)?;
        self.check_counts(&tally, &mut r.problems)?;
        Ok(r)
    }

    /// Every access event, day by day, oldest first (for export).
    pub(crate) fn for_each_event(
        &self,
        mut f: impl FnMut(AccessEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for name in self.days() {
            for (tree, _) in self.existing_day(&name)? {
                for item in tree.iter().values() {
                    let v = item?;
                    for e in decode_batch(EVENTS, &v)? {
                        f(e)?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn put_audit(&self, a: &AuditEntry) -> Result<(), StoreError> {
        crate::audit::put(self, a)?;
        while self.db.generate_id()? <= a.id {}
        Ok(())
    }
}
