//! Counters kept as events are written, so that reports read counts, not events: a week of a
//! school's traffic is millions of events, a week of counters a few thousand rows.
//!
//! ```text
//! days/DAY/PART  counts        batch key                     → [1, BatchCounts]   (with its batch, one transaction)
//! main           counts-day    day ‖ group ‖ category ‖ disp → u64   (UTC day; group, category: u16 length ‖ text, 0xffff for none)
//!                counts-hour   day ‖ hour ‖ disp             → u64
//!                counts-site   day ‖ site                    → u64   (blocked events outside the illegal tier)
//!                counts-parts  day ‖ part                    → ()    (the parts added in)
//!                breach-counts day ‖ severity                → u64   (breaches by the day first seen, at their severity now)
//!                counts-dropped day                          → u64   (events the recorder dropped or failed to write)
//! ```
//!
//! Each batch's counts are written beside it, in the same transaction, so a part's counts are
//! exact whatever stops the appliance. A part is added into the `main` counters once, in one
//! transaction with its mark in `counts-parts`: when it is closed full, or, for the last part
//! of a day, a part left by a restart and a part written by a build that kept no counts (its
//! events are read instead), by the first read that covers its day. The part being written is
//! read as it stands. So the counters stay exact, and an old store gets them as it is read.
//! [`Store::rebuild_counts`] recomputes every counter from the events; the integrity check
//! compares them.

use std::collections::BTreeMap;

use hedgerow_model::{AccessEvent, Category, Disposition, Severity, Tier};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::store::{EVENTS, PartId, tx_err};
use crate::wire::{NANOS_PER_DAY, decode, decode_batch, encode, from_nanos, nanos, time_key};
use crate::{Store, StoreError};

/// A part's tree of per-batch counts.
pub(crate) const COUNTS: &str = "counts";
pub(crate) const COUNTS_DAY: &str = "counts-day";
pub(crate) const COUNTS_HOUR: &str = "counts-hour";
pub(crate) const COUNTS_SITE: &str = "counts-site";
pub(crate) const COUNTS_PARTS: &str = "counts-parts";
pub(crate) const BREACH_COUNTS: &str = "breach-counts";
/// Access events the recorder dropped (its queue full) or failed to write, per UTC day.
pub(crate) const COUNTS_DROPPED: &str = "counts-dropped";
/// The key in `meta` saying the breach counters are kept (set once they were first built).
const BREACH_COUNTS_KEPT: &str = "breach-counts-kept";

/// One row of a batch's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Row {
    pub(crate) hour: u8,
    pub(crate) group: Option<String>,
    pub(crate) category: Option<String>,
    pub(crate) disposition: u8,
    pub(crate) n: u32,
}

/// What the events of one batch count towards, stored beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchCounts {
    pub(crate) rows: Vec<Row>,
    /// Blocked events per site, outside the illegal tier.
    pub(crate) sites: Vec<(String, u32)>,
}

pub(crate) fn disposition_code(d: Disposition) -> u8 {
    match d {
        Disposition::Allow => 0,
        Disposition::Block => 1,
        Disposition::Error => 2,
        Disposition::RateLimited => 3,
        Disposition::Refused => 4,
        Disposition::Rewrite => 5,
    }
}

fn disposition_of(code: u8) -> Option<Disposition> {
    Some(match code {
        0 => Disposition::Allow,
        1 => Disposition::Block,
        2 => Disposition::Error,
        3 => Disposition::RateLimited,
        4 => Disposition::Refused,
        5 => Disposition::Rewrite,
        _ => return None,
    })
}

fn severity_code(s: Severity) -> u8 {
    match s {
        Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High => 2,
        Severity::Critical => 3,
    }
}

fn severity_of(code: u8) -> Option<Severity> {
    Some(match code {
        0 => Severity::Low,
        1 => Severity::Medium,
        2 => Severity::High,
        3 => Severity::Critical,
        _ => return None,
    })
}

/// The events of one day for one group, category and disposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    /// The UTC day (the store's days are UTC days).
    pub day: jiff::civil::Date,
    pub group: Option<String>,
    pub category: Option<Category>,
    pub disposition: Disposition,
    pub count: u64,
}

/// The events of one hour (UTC) with one disposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCount {
    pub day: jiff::civil::Date,
    /// 0–23, UTC.
    pub hour: u8,
    pub disposition: Disposition,
    pub count: u64,
}

/// Blocked events of one day to one site (a host), outside the illegal tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCount {
    pub day: jiff::civil::Date,
    pub site: String,
    pub count: u64,
}

/// Breaches first seen on one day, by their severity now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreachCount {
    pub day: jiff::civil::Date,
    pub severity: Severity,
    pub count: u64,
}

/// The most-blocked sites of a range of days: how many different sites, and the top ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopSites {
    /// Different sites counted (each part of a day counts its 1,000 most blocked).
    pub distinct: u64,
    /// Most blocked first (ties by name).
    pub sites: Vec<(String, u64)>,
}

/// [`Store::top_sites`] of recent ranges: (from, to, n) → (parts added in then, answer).
/// A week's sites are tens of thousands of rows; a past week's answer does not change
/// until another of its parts is added in.
pub(crate) type TopSitesCache = Vec<((i64, i64, usize), (usize, TopSites))>;

/// Sites a closed part adds to its day's per-site counts, at most: the most blocked. A
/// part holds about 150,000 events; a flood of distinct blocked names (a malware's generated
/// names, or the DNS benchmark's million) made one row each in `main`, whose memory sled gives
/// back only when it closes (measured: resident memory after a 10 s DNS run with the log on
/// 421 MiB, against 270 MiB before per-site counts). The most-blocked sites of a day or week
/// are the sites each part blocked most; a site blocked once or twice a part among more than
/// this many others is not named.
pub(crate) const SITES_KEPT_PER_PART: usize = 1000;

/// Ranges [`Store::top_sites`] remembers.
const TOP_SITES_KEPT: usize = 8;

/// What [`Store::rebuild_counts`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub days: usize,
    pub parts: usize,
    pub events: u64,
    pub breaches: u64,
}

/// The day number (days since the Unix epoch, UTC) of a date.
pub(crate) fn day_number(date: jiff::civil::Date) -> i64 {
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| nanos(z.timestamp()).div_euclid(NANOS_PER_DAY))
        .unwrap_or(0)
}

pub(crate) fn day_date(day: i64) -> jiff::civil::Date {
    from_nanos(day.saturating_mul(NANOS_PER_DAY))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// The day number of a time.
pub(crate) fn day_at(t: jiff::Timestamp) -> i64 {
    nanos(t).div_euclid(NANOS_PER_DAY)
}

fn text(k: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            let s = &s.as_bytes()[..s.len().min(0xfffe)];
            k.extend_from_slice(&(s.len() as u16).to_be_bytes());
            k.extend_from_slice(s);
        }
        None => k.extend_from_slice(&[0xff, 0xff]),
    }
}

/// Reads what [`text`] wrote at the start of `k`; the rest after it.
fn read_text(k: &[u8]) -> Option<(Option<String>, &[u8])> {
    let len = u16::from_be_bytes([*k.first()?, *k.get(1)?]);
    if len == 0xffff {
        return Some((None, k.get(2..)?));
    }
    let end = 2 + usize::from(len);
    let s = String::from_utf8_lossy(k.get(2..end)?).into_owned();
    Some((Some(s), k.get(end..)?))
}

fn day_of_key(k: &[u8]) -> Option<i64> {
    let b: [u8; 8] = k.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(b) ^ (1 << 63)) as i64)
}

fn u64_of(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

type Key = (Option<String>, Option<String>, u8);

/// Counts added up over batches, parts or days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Per day: group, category, disposition.
    pub(crate) day: BTreeMap<(i64, Key), u64>,
    /// Per day: hour, disposition.
    pub(crate) hour: BTreeMap<(i64, u8, u8), u64>,
    pub(crate) site: BTreeMap<(i64, String), u64>,
}

impl Tally {
    pub(crate) fn add(&mut self, day: i64, c: &BatchCounts) {
        for r in &c.rows {
            let n = u64::from(r.n);
            *self
                .day
                .entry((day, (r.group.clone(), r.category.clone(), r.disposition)))
                .or_default() += n;
            *self.hour.entry((day, r.hour, r.disposition)).or_default() += n;
        }
        for (site, n) in &c.sites {
            *self.site.entry((day, site.clone())).or_default() += u64::from(*n);
        }
    }

    /// Keeps of a part's per-site counts only the [`SITES_KEPT_PER_PART`] most blocked.
    /// Counts by group, category, disposition and hour stay whole.
    pub(crate) fn cap_sites(&mut self) {
        if self.site.len() <= SITES_KEPT_PER_PART {
            return;
        }
        let mut all: Vec<((i64, String), u64)> =
            std::mem::take(&mut self.site).into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(SITES_KEPT_PER_PART);
        self.site = all.into_iter().collect();
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        for (k, n) in other.day {
            *self.day.entry(k).or_default() += n;
        }
        for (k, n) in other.hour {
            *self.hour.entry(k).or_default() += n;
        }
        for (k, n) in other.site {
            *self.site.entry(k).or_default() += n;
        }
    }

    fn total(&self) -> u64 {
        self.day.values().sum()
    }
}

/// The counts of events read back (for a part written before counts were kept, a rebuild
/// and the integrity check): the same rows the writer makes.
pub(crate) fn counts_of(events: &[AccessEvent]) -> BatchCounts {
    type RowKey<'a> = (u8, Option<&'a str>, Option<&'a str>, u8);
    let mut rows: BTreeMap<RowKey<'_>, u32> = BTreeMap::new();
    let mut sites: BTreeMap<&str, u32> = BTreeMap::new();
    for e in events {
        let t = nanos(e.time);
        let hour = u8::try_from(t.rem_euclid(NANOS_PER_DAY) / 3_600_000_000_000).unwrap_or(0);
        let d = e.disposition();
        *rows
            .entry((
                hour,
                e.group.as_deref(),
                e.category.as_ref().map(Category::as_str),
                disposition_code(d),
            ))
            .or_default() += 1;
        if d == Disposition::Block && e.tier != Tier::Illegal {
            *sites
                .entry(crate::breach::site_of(&e.target).trim_end_matches('.'))
                .or_default() += 1;
        }
    }
    BatchCounts {
        rows: rows
            .into_iter()
            .map(|((hour, group, category, disposition), n)| Row {
                hour,
                group: group.map(str::to_owned),
                category: category.map(str::to_owned),
                disposition,
                n,
            })
            .collect(),
        sites: sites.into_iter().map(|(s, n)| (s.to_owned(), n)).collect(),
    }
}

fn add_in(
    tree: &TransactionalTree,
    key: &[u8],
    n: i128,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    let old = tree.get(key)?.map_or(0, |v| u64_of(&v));
    let new = (i128::from(old) + n).clamp(0, i128::from(u64::MAX)) as u64;
    if new == 0 {
        tree.remove(key)?;
    } else {
        tree.insert(key, &new.to_be_bytes())?;
    }
    Ok(())
}

fn day_key(day: i64, group: Option<&str>, category: Option<&str>, disposition: u8) -> Vec<u8> {
    let mut k = time_key(day).to_vec();
    text(&mut k, group);
    text(&mut k, category);
    k.push(disposition);
    k
}

fn hour_key(day: i64, hour: u8, disposition: u8) -> Vec<u8> {
    let mut k = time_key(day).to_vec();
    k.push(hour);
    k.push(disposition);
    k
}

fn site_key(day: i64, site: &str) -> Vec<u8> {
    let mut k = time_key(day).to_vec();
    k.extend_from_slice(site.as_bytes());
    k
}

/// A part's key in `main`'s trees of parts: day then part, both big-endian.
pub(crate) fn part_key(id: PartId) -> Vec<u8> {
    let mut k = time_key(id.0).to_vec();
    k.extend_from_slice(&id.1.to_be_bytes());
    k
}

pub(crate) fn breach_count_key(first: jiff::Timestamp, severity: Severity) -> Vec<u8> {
    let mut k = time_key(day_at(first)).to_vec();
    k.push(severity_code(severity));
    k
}

/// Adds `n` (may be negative) to a breach counter inside a breach transaction.
pub(crate) fn add_breach(
    tree: &TransactionalTree,
    first: jiff::Timestamp,
    severity: Severity,
    n: i128,
) -> Result<(), ConflictableTransactionError<StoreError>> {
    add_in(tree, &breach_count_key(first, severity), n)
}

/// The range of keys of the days `[from, to)`.
fn days_range(from: i64, to: i64) -> std::ops::Range<Vec<u8>> {
    time_key(from).to_vec()..time_key(to).to_vec()
}

impl Store {
    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.main_db().open_tree(name)?)
    }

    /// Builds the breach counters of a store that had none (once; afterwards every breach
    /// transaction keeps them).
    pub(crate) fn init_breach_counts(&self) -> Result<(), StoreError> {
        if self.meta.get(BREACH_COUNTS_KEPT)?.is_none() {
            self.rebuild_breach_counts()?;
        }
        Ok(())
    }

    pub(crate) fn rebuild_breach_counts(&self) -> Result<u64, StoreError> {
        let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let mut n = 0;
        self.for_each_breach_head(|b| {
            *counts
                .entry(breach_count_key(b.first, b.severity))
                .or_default() += 1;
            n += 1;
            Ok(())
        })?;
        // Written as a whole in one transaction: what was there, then the new counts.
        let tree = self.tree(BREACH_COUNTS)?;
        let old: Vec<sled::IVec> = tree.iter().keys().collect::<Result<_, _>>()?;
        (&tree, &self.meta)
            .transaction(|(t, meta)| {
                for k in &old {
                    t.remove(k)?;
                }
                for (k, v) in &counts {
                    t.insert(k.as_slice(), &v.to_be_bytes())?;
                }
                meta.insert(BREACH_COUNTS_KEPT, &[1])?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_err)?;
        Ok(n)
    }

    /// The batch counts tree of a part, if that part kept counts.
    fn part_counts(db: &sled::Db) -> Result<Option<sled::Tree>, StoreError> {
        if db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == COUNTS.as_bytes())
        {
            Ok(Some(db.open_tree(COUNTS)?))
        } else {
            Ok(None)
        }
    }

    /// What a part's events count towards: its batches' counts, or, in a part written before
    /// counts were kept, its events; its sites capped ([`Tally::cap_sites`]).
    fn part_tally(&self, id: PartId, db: &sled::Db) -> Result<Tally, StoreError> {
        let mut tally = Tally::default();
        match Self::part_counts(db)? {
            Some(tree) => {
                for v in tree.iter().values() {
                    let c: BatchCounts = decode(COUNTS, &v?)?;
                    tally.add(id.0, &c);
                }
            }
            None => {
                for v in db.open_tree(EVENTS)?.iter().values() {
                    tally.add(id.0, &counts_of(&decode_batch(EVENTS, &v?)?));
                }
            }
        }
        tally.cap_sites();
        Ok(tally)
    }

    /// Adds a part's counts into the `main` counters, once.
    pub(crate) fn fold_part(&self, id: PartId, db: &sled::Db) -> Result<(), StoreError> {
        let parts = self.tree(COUNTS_PARTS)?;
        let mark = part_key(id);
        if parts.contains_key(&mark)? {
            return Ok(());
        }
        let tally = self.part_tally(id, db)?;
        let (d, h, s) = (
            self.tree(COUNTS_DAY)?,
            self.tree(COUNTS_HOUR)?,
            self.tree(COUNTS_SITE)?,
        );
        (&d, &h, &s, &parts)
            .transaction(|(d, h, s, parts)| {
                if parts.get(&mark)?.is_some() {
                    return Ok(());
                }
                for ((day, (group, category, disp)), n) in &tally.day {
                    let k = day_key(*day, group.as_deref(), category.as_deref(), *disp);
                    add_in(d, &k, i128::from(*n))?;
                }
                for ((day, hour, disp), n) in &tally.hour {
                    add_in(h, &hour_key(*day, *hour, *disp), i128::from(*n))?;
                }
                for ((day, site), n) in &tally.site {
                    add_in(s, &site_key(*day, site), i128::from(*n))?;
                }
                parts.insert(mark.as_slice(), &[])?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_err)?;
        Ok(())
    }

    /// Adds every closed part not yet added into the day counters (the recorder does this
    /// at start, in the background). Returns how many parts it added.
    pub fn settle_all(&self) -> Result<usize, StoreError> {
        let mut added = 0;
        self.settle_counting(i64::MIN, i64::MAX, &mut added)?;
        Ok(added)
    }

    /// Adds in every closed part of the days `[from, to)` not yet added, and returns the
    /// counts of the parts being written now, read as they stand.
    fn settle(&self, from: i64, to: i64) -> Result<Tally, StoreError> {
        self.settle_counting(from, to, &mut 0)
    }

    fn settle_counting(&self, from: i64, to: i64, added: &mut usize) -> Result<Tally, StoreError> {
        let parts = self.tree(COUNTS_PARTS)?;
        let mut live = Tally::default();
        for name in self.days() {
            let Some(day) = crate::store::day_of(&name).filter(|d| (from..to).contains(d)) else {
                continue;
            };
            for part in self.parts(&name) {
                let id = (day, part);
                if parts.contains_key(part_key(id))? {
                    continue;
                }
                let Some(db) = self.part_db_if_exists(id)? else {
                    continue;
                };
                if self.is_writing(id) {
                    live.merge(self.part_tally(id, &db)?);
                } else {
                    self.fold_part(id, &db)?;
                    *added += 1;
                }
            }
        }
        Ok(live)
    }

    /// Events per UTC day in `[from, to)`, by group, category and disposition: from the
    /// counters, never the events.
    pub fn day_counts(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Vec<DayCount>, StoreError> {
        let (from, to) = (day_number(from), day_number(to));
        let live = self.settle(from, to)?;
        let mut all: BTreeMap<(i64, Key), u64> = live.day;
        for item in self.tree(COUNTS_DAY)?.range(days_range(from, to)) {
            let (k, v) = item?;
            let Some(day) = day_of_key(&k) else { continue };
            let Some((group, rest)) = k.get(8..).and_then(read_text) else {
                continue;
            };
            let Some((category, rest)) = read_text(rest) else {
                continue;
            };
            let Some(&disp) = rest.first() else { continue };
            *all.entry((day, (group, category, disp))).or_default() += u64_of(&v);
        }
        Ok(all
            .into_iter()
            .filter_map(|((day, (group, category, disp)), count)| {
                Some(DayCount {
                    day: day_date(day),
                    group,
                    category: category.and_then(|c| Category::new(&c).ok()),
                    disposition: disposition_of(disp)?,
                    count,
                })
            })
            .collect())
    }

    /// Events per UTC hour in the days `[from, to)`, by disposition.
    pub fn hour_counts(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Vec<HourCount>, StoreError> {
        let (from, to) = (day_number(from), day_number(to));
        let mut all = self.settle(from, to)?.hour;
        for item in self.tree(COUNTS_HOUR)?.range(days_range(from, to)) {
            let (k, v) = item?;
            let (Some(day), Some(&hour), Some(&disp)) = (day_of_key(&k), k.get(8), k.get(9)) else {
                continue;
            };
            *all.entry((day, hour, disp)).or_default() += u64_of(&v);
        }
        Ok(all
            .into_iter()
            .filter_map(|((day, hour, disp), count)| {
                Some(HourCount {
                    day: day_date(day),
                    hour,
                    disposition: disposition_of(disp)?,
                    count,
                })
            })
            .collect())
    }

    /// Blocked events per UTC day in `[from, to)` and site (outside the illegal tier).
    pub fn site_counts(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Vec<SiteCount>, StoreError> {
        let (from, to) = (day_number(from), day_number(to));
        let mut all = self.settle(from, to)?.site;
        for item in self.tree(COUNTS_SITE)?.range(days_range(from, to)) {
            let (k, v) = item?;
            let Some(day) = day_of_key(&k) else { continue };
            let site = String::from_utf8_lossy(k.get(8..).unwrap_or_default()).into_owned();
            *all.entry((day, site)).or_default() += u64_of(&v);
        }
        Ok(all
            .into_iter()
            .map(|((day, site), count)| SiteCount {
                day: day_date(day),
                site,
                count,
            })
            .collect())
    }

    /// The `n` most-blocked sites of the UTC days `[from, to)` and how many different sites
    /// were blocked, from the counters. The answer for days no part is being written to is
    /// remembered until another of their parts is added in (a week is tens of thousands of
    /// site rows; reading them again for each view of a past week's report was most of it).
    pub fn top_sites(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
        n: usize,
    ) -> Result<TopSites, StoreError> {
        let (f, t) = (day_number(from), day_number(to));
        let live = self.settle(f, t)?;
        let folded = self.tree(COUNTS_PARTS)?.range(days_range(f, t)).count();
        let key = (f, t, n);
        let cacheable = live.site.is_empty() && live.day.is_empty();
        if cacheable {
            let cache = self
                .top_sites
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((_, (parts, answer))) = cache.iter().find(|(k, _)| *k == key)
                && *parts == folded
            {
                return Ok(answer.clone());
            }
        }
        let mut totals: std::collections::HashMap<String, u64> = live
            .site
            .into_iter()
            .map(|((_, s), c)| (s, c))
            .fold(std::collections::HashMap::new(), |mut m, (s, c)| {
                *m.entry(s).or_default() += c;
                m
            });
        for item in self.tree(COUNTS_SITE)?.range(days_range(f, t)) {
            let (k, v) = item?;
            let site = k.get(8..).unwrap_or_default();
            let c = u64_of(&v);
            match std::str::from_utf8(site) {
                Ok(s) => match totals.get_mut(s) {
                    Some(n) => *n += c,
                    None => {
                        totals.insert(s.to_owned(), c);
                    }
                },
                Err(_) => {
                    *totals
                        .entry(String::from_utf8_lossy(site).into_owned())
                        .or_default() += c;
                }
            }
        }
        let distinct = totals.len() as u64;
        let mut sites: Vec<(String, u64)> = totals.into_iter().collect();
        sites.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sites.truncate(n);
        let answer = TopSites { distinct, sites };
        if cacheable {
            let mut cache = self
                .top_sites
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.retain(|(k, _)| *k != key);
            cache.push((key, (folded, answer.clone())));
            if cache.len() > TOP_SITES_KEPT {
                cache.remove(0);
            }
        }
        Ok(answer)
    }

    /// Breaches first seen on each UTC day in `[from, to)`, by severity.
    pub fn breach_counts(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Vec<BreachCount>, StoreError> {
        let (from, to) = (day_number(from), day_number(to));
        let mut out = Vec::new();
        for item in self.tree(BREACH_COUNTS)?.range(days_range(from, to)) {
            let (k, v) = item?;
            let (Some(day), Some(severity)) =
                (day_of_key(&k), k.get(8).and_then(|&c| severity_of(c)))
            else {
                continue;
            };
            out.push(BreachCount {
                day: day_date(day),
                severity,
                count: u64_of(&v),
            });
        }
        Ok(out)
    }

    /// Adds `n` access events lost at `t` (dropped by the recorder's full queue, or not
    /// written) to that day's count.
    pub fn add_dropped(&self, t: jiff::Timestamp, n: u64) -> Result<(), StoreError> {
        let key = time_key(day_at(t));
        self.tree(COUNTS_DROPPED)?.update_and_fetch(key, |old| {
            let was = old.map_or(0, u64_of);
            Some(was.saturating_add(n).to_be_bytes().to_vec())
        })?;
        Ok(())
    }

    /// Access events lost (dropped or not written) per UTC day in `[from, to)`.
    pub fn dropped_counts(
        &self,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
    ) -> Result<Vec<(jiff::civil::Date, u64)>, StoreError> {
        let (from, to) = (day_number(from), day_number(to));
        let mut out = Vec::new();
        for item in self.tree(COUNTS_DROPPED)?.range(days_range(from, to)) {
            let (k, v) = item?;
            if let Some(day) = day_of_key(&k) {
                out.push((day_date(day), u64_of(&v)));
            }
        }
        Ok(out)
    }

    /// Drops the event counters of the days before `first_kept` (the retention purge).
    pub(crate) fn purge_counts(&self, first_kept: i64) -> Result<(), StoreError> {
        self.top_sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        for name in [
            COUNTS_DAY,
            COUNTS_HOUR,
            COUNTS_SITE,
            COUNTS_PARTS,
            COUNTS_DROPPED,
        ] {
            let tree = self.tree(name)?;
            let old: Vec<sled::IVec> = tree
                .range(..time_key(first_kept).to_vec())
                .keys()
                .collect::<Result<_, _>>()?;
            let mut batch = sled::Batch::default();
            for k in old {
                batch.remove(k);
            }
            tree.apply_batch(batch)?;
        }
        Ok(())
    }

    /// Recomputes every counter from the stored events and breaches: each closed part's
    /// batch counts (the part being written keeps its own, written with its events), the
    /// `main` counters, the breach counters. For a store whose counters are in doubt.
    pub fn rebuild_counts(&self) -> Result<RebuildReport, StoreError> {
        let mut report = RebuildReport::default();
        self.top_sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        for name in [COUNTS_DAY, COUNTS_HOUR, COUNTS_SITE, COUNTS_PARTS] {
            self.tree(name)?.clear()?;
        }
        for name in self.days() {
            let Some(day) = crate::store::day_of(&name) else {
                continue;
            };
            report.days += 1;
            for part in self.parts(&name) {
                let id = (day, part);
                let Some(db) = self.part_db_if_exists(id)? else {
                    continue;
                };
                report.parts += 1;
                if !self.is_writing(id) {
                    let counts = db.open_tree(COUNTS)?;
                    counts.clear()?;
                    for item in db.open_tree(EVENTS)?.iter() {
                        let (k, v) = item?;
                        let events = decode_batch(EVENTS, &v)?;
                        report.events += events.len() as u64;
                        counts.insert(k, encode(&counts_of(&events)))?;
                    }
                    self.fold_part(id, &db)?;
                }
            }
        }
        report.breaches = self.rebuild_breach_counts()?;
        self.flush()?;
        Ok(report)
    }

    /// The counter half of [`Store::check_integrity`]: each day's counters against a count
    /// of its events, and the breach counters against the breaches.
    pub(crate) fn check_counts(
        &self,
        from_events: &Tally,
        problems: &mut Vec<String>,
    ) -> Result<(), StoreError> {
        let mut days: Vec<i64> = from_events.day.keys().map(|(d, _)| *d).collect();
        days.dedup();
        for day in days {
            let date = day_date(day);
            let next = day_date(day + 1);
            let mut counted = Tally::default();
            for c in self.day_counts(date, next)? {
                let key = (
                    c.group,
                    c.category.map(|c| c.as_str().to_owned()),
                    disposition_code(c.disposition),
                );
                counted.day.insert((day, key), c.count);
            }
            for c in self.hour_counts(date, next)? {
                counted
                    .hour
                    .insert((day, c.hour, disposition_code(c.disposition)), c.count);
            }
            for c in self.site_counts(date, next)? {
                counted.site.insert((day, c.site), c.count);
            }
            let want = Tally {
                day: from_events
                    .day
                    .range((day, (None, None, 0))..)
                    .take_while(|((d, _), _)| *d == day)
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
                hour: from_events
                    .hour
                    .range((day, 0, 0)..(day + 1, 0, 0))
                    .map(|(k, v)| (*k, *v))
                    .collect(),
                site: from_events
                    .site
                    .range((day, String::new())..(day + 1, String::new()))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            };
            if counted != want {
                problems.push(format!(
                    "{date}: the counters hold {} events, the day has {} (or they differ by group, category, hour or site); `rebuild_counts` recomputes them",
                    counted.total(),
                    want.total()
                ));
            }
        }
        let mut want: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        self.for_each_breach_head(|b| {
            *want
                .entry(breach_count_key(b.first, b.severity))
                .or_default() += 1;
            Ok(())
        })?;
        let mut have: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for item in self.tree(BREACH_COUNTS)?.iter() {
            let (k, v) = item?;
            have.insert(k.to_vec(), u64_of(&v));
        }
        if have != want {
            problems.push(format!(
                "breach counters hold {} breaches, the store has {}; `rebuild_counts` recomputes them",
                have.values().sum::<u64>(),
                want.values().sum::<u64>()
            ));
        }
        Ok(())
    }
}
