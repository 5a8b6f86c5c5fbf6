//! Reading access events back: the filter, and an iterator that streams the matches batch by
//! batch, so a query over millions of events holds one batch at a time, not its answer.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use hedgerow_model::{AccessEvent, Category, Disposition};
use serde::{Deserialize, Serialize};

use crate::breach::site_of;
use crate::runs::{Damage, RunBytes, RunsFile, runs_path};
use crate::sites::{host_key, may_hold};
use crate::store::{DEVICES, EVENTS, PartId, PartTrees};
use crate::wire::{Dictionary, NANOS_PER_DAY, decode, decode_batch_if, nanos};
use crate::{Store, StoreError};

/// Which access events to return. Empty fields match everything. Text matches ignore case.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventFilter {
    pub from: Option<jiff::Timestamp>,
    pub to: Option<jiff::Timestamp>,
    /// The start of a device name: `library` matches `Library-PC-3`.
    pub device: Option<String>,
    pub ip: Option<IpAddr>,
    /// The start of a user name.
    pub user: Option<String>,
    /// A group name.
    pub group: Option<String>,
    pub category: Option<Category>,
    /// What happened (see [`hedgerow_model::Outcome::disposition`]).
    pub verdict: Option<Disposition>,
    /// A host and every name under it: `bbc.co.uk` matches `www.bbc.co.uk` and URLs there.
    pub site: Option<String>,
    /// Text anywhere in the search terms.
    pub search: Option<String>,
    /// Return at most this many, the most recent.
    pub limit: Option<usize>,
}

/// An [`EventFilter`] made ready to test many events: its text lowercased once.
struct Matcher {
    from: Option<jiff::Timestamp>,
    to: Option<jiff::Timestamp>,
    device: Option<String>,
    ip: Option<IpAddr>,
    user: Option<String>,
    group: Option<String>,
    category: Option<Category>,
    verdict: Option<Disposition>,
    site: Option<String>,
    search: Option<String>,
}

/// Whether `text`, ignoring case, starts with `prefix` (already lowercase).
fn starts_with_folded(text: &str, prefix: &str) -> bool {
    // Names are nearly always ASCII: compare bytes (a device query tests every device of
    // every part it reads).
    if text.is_ascii() && prefix.is_ascii() {
        return text
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|t| t.eq_ignore_ascii_case(prefix.as_bytes()));
    }
    let mut t = text.chars().flat_map(char::to_lowercase);
    prefix.chars().all(|p| t.next() == Some(p))
}

impl Matcher {
    fn new(f: &EventFilter) -> Self {
        let lower = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase)
        };
        let site = f.site.as_deref().map(|s| {
            site_of(s.trim())
                .trim_end_matches('.')
                .trim_start_matches("*.")
                .to_lowercase()
        });
        Self {
            from: f.from,
            to: f.to,
            device: lower(&f.device),
            ip: f.ip,
            user: lower(&f.user),
            group: lower(&f.group),
            category: f.category.clone(),
            verdict: f.verdict,
            site: site.filter(|s| !s.is_empty()),
            search: lower(&f.search),
        }
    }

    fn matches(&self, e: &AccessEvent) -> bool {
        let prefix = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(w) => have.is_some_and(|h| starts_with_folded(h, w)),
        };
        self.from.is_none_or(|f| e.time >= f)
            && self.to.is_none_or(|t| e.time < t)
            && prefix(&self.device, e.device.as_deref())
            // IPv4-mapped IPv6 is IPv4 (as the fronts store it), however it is asked for.
            && self
                .ip
                .is_none_or(|ip| e.client.to_canonical() == ip.to_canonical())
            && prefix(&self.user, e.user.as_deref())
            && self
                .group
                .as_deref()
                .is_none_or(|g| e.group.as_deref().is_some_and(|h| h.to_lowercase() == g))
            && self
                .category
                .as_ref()
                .is_none_or(|c| e.category.as_ref() == Some(c))
            && self.verdict.is_none_or(|v| e.disposition() == v)
            && self.site.as_deref().is_none_or(|s| {
                let host = host_key(&e.target);
                host == s || host.strip_suffix(s).is_some_and(|rest| rest.ends_with('.'))
            })
            && self.search.as_deref().is_none_or(|s| {
                e.search
                    .as_deref()
                    .is_some_and(|have| have.to_lowercase().contains(s))
            })
    }

    /// Whether a batch with this dictionary could hold a match: each of the filter's device,
    /// user, group and category must be among its strings, and its address among its
    /// clients. (A string may be another field's: this only rules batches out.)
    fn may_match(&self, d: &Dictionary<'_>) -> bool {
        let any =
            |want: &str, test: &dyn Fn(&str, &str) -> bool| d.strings.iter().any(|s| test(s, want));
        let prefix = |s: &str, w: &str| starts_with_folded(s, w);
        self.device.as_deref().is_none_or(|w| any(w, &prefix))
            && self.user.as_deref().is_none_or(|w| any(w, &prefix))
            && self.group.as_deref().is_none_or(|w| {
                any(w, &|s, w| {
                    s.eq_ignore_ascii_case(w) || (!s.is_ascii() && s.to_lowercase() == w)
                })
            })
            && self
                .category
                .as_ref()
                .is_none_or(|c| any(c.as_str(), &|s, w| s == w))
            && self.ip.is_none_or(|ip| {
                d.clients
                    .iter()
                    .any(|c| c.to_canonical() == ip.to_canonical())
            })
    }

    /// Whether a device index id (`d:NAME`) names a device the filter wants.
    fn device_id(&self, id: &str) -> bool {
        match (&self.device, id.strip_prefix("d:")) {
            (Some(want), Some(name)) => starts_with_folded(name, want),
            _ => false,
        }
    }
}

/// What to read of one part of a day, in order: each unit gives its matches sorted by time.
type Plan = Vec<Unit>;

enum Unit {
    /// A batch, and the positions of the events to look at when the device index narrowed
    /// it to the devices the filter names.
    Batch(sled::IVec, Option<Vec<u32>>),
    /// Runs of a part's runs file (`runs.rs`), read and checked when the part was opened,
    /// decoded together and merged by time: one run when the filter names one device, every
    /// run of the part when it names a few.
    Runs(Vec<RunBytes>),
}

/// The most devices a device filter may match in a part for it to be read from their runs
/// (merged in memory); a name prefix matching more reads the batches, most of which hold
/// one of them anyway.
const MOST_RUN_DEVICES: usize = 16;

/// Access events matching a filter, oldest first, streamed: see [`Store::events_iter`].
pub struct Events<'s> {
    store: &'s Store,
    matcher: Matcher,
    /// Parts still to open, oldest first.
    parts: VecDeque<PartId>,
    /// The part being read: its trees and what is still to read of it.
    current: Option<(Source, VecDeque<Unit>)>,
    /// Matches of the batch read last, oldest first.
    ready: VecDeque<AccessEvent>,
    /// Matches still to pass over: the older ones beyond the limit, in the first batch.
    skip: usize,
    /// Most matches still to return.
    left: usize,
    done: bool,
}

impl Iterator for Events<'_> {
    type Item = Result<AccessEvent, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done || self.left == 0 {
                return None;
            }
            if let Some(e) = self.ready.pop_front() {
                self.left -= 1;
                return Some(Ok(e));
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Events<'_> {
    /// Reads the next batch with a match into `ready`. False when there is none left.
    fn fill(&mut self) -> Result<bool, StoreError> {
        loop {
            if let Some((source, units)) = &mut self.current {
                while let Some(unit) = units.pop_front() {
                    let mut found = read_unit(source, &unit, &self.matcher)?;
                    let skip = std::mem::take(&mut self.skip).min(found.len());
                    found.drain(..skip);
                    if !found.is_empty() {
                        self.ready = found.into();
                        return Ok(true);
                    }
                }
            }
            self.current = None;
            let Some(part) = self.parts.pop_front() else {
                return Ok(false);
            };
            if let Some((source, plan)) = open_part(self.store, part, &self.matcher)? {
                self.current = Some((source, plan.into()));
            }
        }
    }
}

/// Where a part's units are read from: its database, or its device runs file alone (a
/// device query on a done part opens no database; the units hold the runs' bytes).
enum Source {
    Trees(PartTrees),
    Runs,
}

/// What to read of one part and where from; `None` if the part is gone.
fn open_part(
    store: &Store,
    part: PartId,
    m: &Matcher,
) -> Result<Option<(Source, Plan)>, StoreError> {
    if m.device.is_some() || m.site.is_some() {
        match runs_plan(store, part, m) {
            Ok(Some(plan)) => return Ok(Some((Source::Runs, plan))),
            Ok(None) => {}
            // Only ever a copy: the part's database has every event.
            Err(damage) => store.runs_damaged(part, &damage),
        }
    }
    let Some(trees) = store.part_trees(part)? else {
        return Ok(None);
    };
    let plan = plan(&trees, m)?;
    Ok(Some((Source::Trees(trees), plan)))
}

/// The plan of a done part read from its runs file, when that is the cheaper read: a device
/// filter matching a few devices, or a site search whose site few runs may hold. `None` when
/// the part has no runs file yet, or the batches are the cheaper read.
fn runs_plan(store: &Store, part: PartId, m: &Matcher) -> Result<Option<Plan>, Damage> {
    let Some(file) = RunsFile::open(&runs_path(&store.part_dir(part)))? else {
        return Ok(None);
    };
    if m.device.is_some() {
        let (runs, devices) = file.runs_of(|id| m.device_id(id))?;
        if devices > MOST_RUN_DEVICES {
            return Ok(None);
        }
        let runs = file.read_checked(&runs)?;
        return Ok(Some(match devices {
            // One device's runs are in time order already: read one at a time.
            1 => runs.into_iter().map(|r| Unit::Runs(vec![r])).collect(),
            0 => Vec::new(),
            _ => vec![Unit::Runs(runs)],
        }));
    }
    // A site search on a done part reads the runs whose site filter may hold the site.
    let Some(site) = &m.site else {
        return Ok(None);
    };
    Ok(match file.site_runs(site)? {
        Some(runs) if runs.is_empty() => Some(Vec::new()),
        Some(runs) => Some(vec![Unit::Runs(file.read_checked(&runs)?)]),
        None => None,
    })
}

/// The matches in one unit of a plan, oldest first.
fn read_unit(source: &Source, unit: &Unit, m: &Matcher) -> Result<Vec<AccessEvent>, StoreError> {
    match (unit, source) {
        (Unit::Batch(key, only), Source::Trees(t)) => {
            read_batch(&t.events, key, only.as_deref(), m)
        }
        (Unit::Runs(runs), Source::Runs) => {
            let mut found = Vec::new();
            for run in runs {
                found.extend(run.decode()?.into_iter().filter(|e| m.matches(e)));
            }
            found.sort_by_key(|e| e.time);
            Ok(found)
        }
        _ => Ok(Vec::new()),
    }
}

/// The matches in one stored batch (only the events at `only`, if given), oldest first.
fn read_batch(
    tree: &sled::Tree,
    key: &[u8],
    only: Option<&[u32]>,
    m: &Matcher,
) -> Result<Vec<AccessEvent>, StoreError> {
    let Some(value) = tree.get(key)? else {
        return Ok(Vec::new());
    };
    let Some(all) = decode_batch_if(EVENTS, &value, |d| m.may_match(d))? else {
        return Ok(Vec::new());
    };
    let mut found: Vec<AccessEvent> = match only {
        Some(positions) => {
            let mut all: Vec<Option<AccessEvent>> = all.into_iter().map(Some).collect();
            positions
                .iter()
                .filter_map(|&p| all.get_mut(p as usize).and_then(Option::take))
                .filter(|e| m.matches(e))
                .collect()
        }
        None => all.into_iter().filter(|e| m.matches(e)).collect(),
    };
    // Events are batched in the order they were recorded, which a slow request can put a
    // little behind its time.
    found.sort_by_key(|e| e.time);
    Ok(found)
}

/// What to read of one part's database. Without a device filter, every batch (those whose
/// site filter may hold the site, for a site search). With one, only the batches the device
/// index lists for the matching devices, and only those devices' events in them (a done
/// part's runs file is read instead when it can be: [`open_part`]).
fn plan(trees: &PartTrees, m: &Matcher) -> Result<Plan, StoreError> {
    if m.device.is_none() {
        // A site search reads only the batches whose site filter may hold the site.
        if let (Some(site), Some(filters)) = (&m.site, &trees.site_filters) {
            let mut plan = Vec::new();
            for item in trees.events.iter().keys() {
                let k = item?;
                if filters.get(&k)?.is_none_or(|f| may_hold(&f, site)) {
                    plan.push(Unit::Batch(k, None));
                }
            }
            return Ok(plan);
        }
        return trees
            .events
            .iter()
            .keys()
            .map(|k| Ok(Unit::Batch(k?, None)))
            .collect::<Result<_, StoreError>>();
    }
    let mut batches: BTreeMap<sled::IVec, Vec<u32>> = BTreeMap::new();
    for prefix in matching_devices(&trees.devices, m)? {
        for item in trees.devices.scan_prefix(&prefix) {
            let (k, v) = item?;
            let positions: Vec<u32> = decode(DEVICES, &v)?;
            let batch = k.get(prefix.len() + 8..).unwrap_or_default();
            batches
                .entry(sled::IVec::from(batch))
                .or_default()
                .extend(positions);
        }
    }
    Ok(batches
        .into_iter()
        .map(|(k, mut positions)| {
            positions.sort_unstable();
            positions.dedup();
            Unit::Batch(k, Some(positions))
        })
        .collect())
}

/// The device index prefixes (length ‖ id) of the devices in one part whose names the
/// filter matches. The index is keyed by device first, so this visits each device once,
/// seeking past the rest of its entries.
fn matching_devices(dev_tree: &sled::Tree, m: &Matcher) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut found = Vec::new();
    let mut from: Vec<u8> = Vec::new();
    loop {
        let Some(item) = dev_tree.range(from.as_slice()..).keys().next() else {
            break;
        };
        let k = item?;
        let len = k
            .get(..2)
            .map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let Some(prefix) = k.get(..2 + len) else {
            break;
        };
        if m.device_id(&String::from_utf8_lossy(&prefix[2..])) {
            found.push(prefix.to_vec());
        }
        // Every entry of this device is its prefix, a time (8 bytes) and a batch key (16):
        // 25 bytes of 0xff sort after them all and before the next device.
        from = prefix.to_vec();
        from.extend_from_slice(&[0xff; 25]);
    }
    Ok(found)
}

impl Store {
    /// Access events matching `filter`, oldest first (the most recent `limit` if set),
    /// streamed one batch at a time. A limit is applied by first counting matches back from
    /// the newest, then reading forward from where the limit was reached: memory stays that
    /// of a batch (and of one part's list of batches) however many events match.
    ///
    /// Events are returned in the order they were stored, each batch sorted by time; a
    /// request recorded late (a long download) may come a little out of time order.
    pub fn events_iter(&self, filter: &EventFilter) -> Result<Events<'_>, StoreError> {
        let matcher = Matcher::new(filter);
        let parts = self.event_parts(filter);
        let limit = filter.limit.unwrap_or(usize::MAX);
        let mut events = Events {
            store: self,
            matcher,
            parts,
            current: None,
            ready: VecDeque::new(),
            skip: 0,
            left: limit,
            done: false,
        };
        if limit == usize::MAX {
            return Ok(events);
        }
        // Count back from the newest to the batch where the limit is reached.
        let mut seen = 0usize;
        for at in (0..events.parts.len()).rev() {
            let Some((source, mut plan)) = open_part(self, events.parts[at], &events.matcher)?
            else {
                continue;
            };
            for i in (0..plan.len()).rev() {
                seen += read_unit(&source, &plan[i], &events.matcher)?.len();
                if seen >= limit {
                    // Start in this unit, past the older matches, then read on through
                    // the newer parts.
                    events.skip = seen - limit;
                    events.current = Some((source, plan.split_off(i).into()));
                    events.parts = events.parts.split_off(at + 1);
                    return Ok(events);
                }
            }
        }
        // Fewer matches than the limit: read them all, from the start.
        Ok(events)
    }

    /// Access events matching `filter`, oldest first (the most recent `limit` if set),
    /// collected (see [`Store::events_iter`] to stream them). With a limit, in one pass from
    /// the newest back (the stream counts back, then reads forward: every unit twice when
    /// fewer than the limit match, as a device's month under a timeline's cap does).
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<AccessEvent>, StoreError> {
        let Some(limit) = filter.limit else {
            return self.events_iter(filter)?.collect();
        };
        let matcher = Matcher::new(filter);
        // Newest unit first; each unit's matches oldest first.
        let mut found: Vec<Vec<AccessEvent>> = Vec::new();
        let mut n = 0usize;
        'parts: for part in self.event_parts(filter).into_iter().rev() {
            let Some((source, plan)) = open_part(self, part, &matcher)? else {
                continue;
            };
            for unit in plan.iter().rev() {
                let mut matches = read_unit(&source, unit, &matcher)?;
                n += matches.len();
                if n >= limit {
                    // Only the newest of this unit's matches are wanted.
                    matches.drain(..n - limit);
                    found.push(matches);
                    break 'parts;
                }
                found.push(matches);
            }
        }
        Ok(found.into_iter().rev().flatten().collect())
    }

    /// The parts of the days `filter`'s time range touches, oldest first.
    fn event_parts(&self, filter: &EventFilter) -> VecDeque<PartId> {
        let from_day = filter.from.map(|t| nanos(t).div_euclid(NANOS_PER_DAY));
        let to_day = filter.to.map(|t| nanos(t).div_euclid(NANOS_PER_DAY));
        self.part_ids()
            .into_iter()
            .filter(|(day, _)| {
                !(from_day.is_some_and(|f| *day < f) || to_day.is_some_and(|t| *day > t))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_prefixes() {
        assert!(starts_with_folded("Library-PC-3", "library"));
        assert!(starts_with_folded("Library-PC-3", "library-pc-3"));
        assert!(!starts_with_folded("Library-PC-3", "library-pc-30"));
        assert!(!starts_with_folded("Lib", "library"));
        assert!(starts_with_folded("ÉCOLE-1", "école"));
    }

    #[test]
    fn site_matches_the_host_and_names_under_it_only() {
        let m = Matcher::new(&EventFilter {
            site: Some("BBC.co.uk".into()),
            ..Default::default()
        });
        let ev = |target: &str| {
            AccessEvent::new(
                jiff::Timestamp::UNIX_EPOCH,
                hedgerow_model::Front::Proxy,
                IpAddr::from([10, 0, 0, 1]),
                target.into(),
            )
        };
        assert!(m.matches(&ev("bbc.co.uk")));
        assert!(m.matches(&ev("https://www.bbc.co.uk/news?x=1")));
        assert!(m.matches(&ev("WWW.BBC.CO.UK.")));
        assert!(!m.matches(&ev("notbbc.co.uk")));
        assert!(!m.matches(&ev("bbc.co.uk.evil.example")));
    }
}
