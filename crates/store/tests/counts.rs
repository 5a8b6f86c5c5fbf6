#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The counters reports read (`counts.rs`) against a scan of the events and breaches they
//! count, on a real sled store: across parts, days, a restart, the recorder, the retention
//! purge, a store that kept none, and a rebuild.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hedgerow_model::{
    AccessEvent, Action, Category, Disposition, EventSink, Front, Outcome, Severity, Tier,
};
use hedgerow_store::{EventFilter, Recorder, RecorderOptions, Retention, Store, StoreOptions};
use jiff::civil::Date;

const DAY0: &str = "2026-11-02";

fn t0() -> jiff::Timestamp {
    DAY0.parse::<Date>()
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
}

/// A spread of events: six groups, eight categories, every disposition, blocked sites,
/// some illegal-tier blocks (whose sites are never counted by name).
fn event(i: u64, t: jiff::Timestamp) -> AccessEvent {
    let mut e = AccessEvent::new(
        t,
        if i.is_multiple_of(5) {
            Front::Proxy
        } else {
            Front::Dns
        },
        format!("10.1.{}.{}", (i / 250) % 8, i % 250)
            .parse()
            .unwrap(),
        format!("www.site{}.example.", i % 97),
    );
    e.device = (!i.is_multiple_of(4)).then(|| Arc::from(format!("pc-{}", i % 61)));
    e.group = (!i.is_multiple_of(11))
        .then(|| Arc::from(["ks1", "ks2", "ks3", "ks4", "staff"][(i % 5) as usize]));
    let cats = [
        "adult",
        "gambling",
        "social-networking",
        "games",
        "malware",
        "news",
        "search-unenforceable",
    ];
    e.category = (!i.is_multiple_of(3)).then(|| Category::new(cats[(i % 7) as usize]).unwrap());
    e.outcome = match i % 13 {
        0..=5 => Outcome::Forwarded,
        6..=9 => Outcome::Blocked,
        10 => Outcome::SafeSearch,
        11 => Outcome::RateLimited,
        _ => Outcome::Failed,
    };
    if e.outcome == Outcome::Blocked {
        e.action = Action::Block;
        e.tier = if i.is_multiple_of(17) {
            Tier::Illegal
        } else {
            Tier::Category
        };
        if e.tier == Tier::Illegal {
            e.target = format!("{} #{:08x}", hedgerow_model::PROTECTED_RULE, i % 5);
        }
    }
    e
}

/// Events over `days` days from DAY0, `per_day` a day, in time order.
fn events(days: i64, per_day: u64) -> Vec<AccessEvent> {
    let mut out = Vec::new();
    for d in 0..days {
        for i in 0..per_day {
            let t = t0()
                + jiff::SignedDuration::from_hours(24 * d)
                + jiff::SignedDuration::from_millis((i * 86_399_000 / per_day) as i64);
            out.push(event(i + d as u64 * per_day, t));
        }
    }
    out
}

fn date(d: i64) -> Date {
    DAY0.parse::<Date>().unwrap() + jiff::Span::new().days(d)
}

type ByDay = BTreeMap<(Date, Option<String>, Option<String>, String), u64>;
type ByHour = BTreeMap<(Date, u8, String), u64>;
type BySite = BTreeMap<(Date, String), u64>;
type Counted = (ByDay, ByHour, BySite);

/// The counters of days `[0, days)` as one map.
fn counted(store: &Store, days: i64) -> Counted {
    let by_day = store
        .day_counts(date(0), date(days))
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                (
                    c.day,
                    c.group,
                    c.category.map(|c| c.as_str().to_owned()),
                    c.disposition.to_string(),
                ),
                c.count,
            )
        })
        .collect();
    let hours = store
        .hour_counts(date(0), date(days))
        .unwrap()
        .into_iter()
        .map(|c| ((c.day, c.hour, c.disposition.to_string()), c.count))
        .collect();
    let sites = store
        .site_counts(date(0), date(days))
        .unwrap()
        .into_iter()
        .map(|c| ((c.day, c.site), c.count))
        .collect();
    (by_day, hours, sites)
}

/// The same, from a scan of the stored events.
fn scanned(store: &Store) -> Counted {
    let mut by_day = ByDay::new();
    let mut hours = BTreeMap::new();
    let mut sites = BTreeMap::new();
    for e in store.events(&EventFilter::default()).unwrap() {
        let z = e.time.to_zoned(jiff::tz::TimeZone::UTC);
        let d = e.disposition();
        *by_day
            .entry((
                z.date(),
                e.group.as_deref().map(str::to_owned),
                e.category.as_ref().map(|c| c.as_str().to_owned()),
                d.to_string(),
            ))
            .or_default() += 1;
        *hours
            .entry((z.date(), z.hour() as u8, d.to_string()))
            .or_default() += 1;
        if d == Disposition::Block && e.tier != Tier::Illegal {
            let host = e.target.trim_end_matches('.').to_owned();
            *sites.entry((z.date(), host)).or_default() += 1;
        }
    }
    (by_day, hours, sites)
}

/// Opens the store again once sled, opened directly by the test, has let go of its files.
/// Opens the store again just after dropping it (`Store::open` waits for sled's threads
/// to let go of the files).
fn reopen(dir: &std::path::Path) -> Store {
    Store::open(dir, &small_parts()).unwrap()
}

/// Opens one of the store's sled databases by itself, as a tool or an older build would.
/// sled's own threads let go of a database's lock a moment after its last handle drops.
fn raw(path: &std::path::Path) -> sled::Db {
    (0..200)
        .find_map(|_| {
            sled::open(path).ok().or_else(|| {
                std::thread::sleep(Duration::from_millis(20));
                None
            })
        })
        .unwrap_or_else(|| sled::open(path).unwrap())
}

fn small_parts() -> StoreOptions {
    StoreOptions {
        // A few parts a day, so that parts are closed, added in, and read live.
        part_bytes: 64 << 10,
        ..StoreOptions::default()
    }
}

#[test]
fn counters_equal_a_scan_across_parts_days_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(3, 20_000);
    {
        let store = Store::open(dir.path(), &small_parts()).unwrap();
        for chunk in evs.chunks(2_000) {
            store.append_events(chunk).unwrap();
        }
        // Each day's parts close full at its end; a few more leave the last day's part open.
        store.append_events(&evs[evs.len() - 500..]).unwrap();
        let parts = std::fs::read_dir(dir.path().join("days/2026-11-02"))
            .unwrap()
            .count();
        assert!(parts > 2, "several parts a day: {parts}");
        let want = scanned(&store);
        assert_eq!(want.0.values().sum::<u64>(), evs.len() as u64 + 500);
        assert!(!want.2.is_empty(), "blocked sites were counted");
        assert_eq!(counted(&store, 3), want);
        // Reading them twice adds nothing.
        assert_eq!(counted(&store, 3), want);
        let r = store.check_integrity().unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }
    // After a restart (the last parts were never closed full) and more events.
    let store = Store::open(dir.path(), &small_parts()).unwrap();
    // The part being written when it stopped is added in once.
    assert_eq!(store.settle_all().unwrap(), 1);
    assert_eq!(store.settle_all().unwrap(), 0);
    store.append_events(&events(4, 3_000)[9_000..]).unwrap();
    let want = scanned(&store);
    assert_eq!(counted(&store, 4), want);
    // A range reads only its days.
    let one = store.day_counts(date(1), date(2)).unwrap();
    assert!(one.iter().all(|c| c.day == date(1)));
    let sum: u64 = one.iter().map(|c| c.count).sum();
    let in_day: u64 = want
        .0
        .iter()
        .filter(|(k, _)| k.0 == date(1))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(sum, in_day);
    assert!(store.check_integrity().unwrap().problems.is_empty());
    // No illegal-tier site is counted by name.
    assert!(
        counted(&store, 4)
            .2
            .keys()
            .all(|(_, s)| !s.starts_with(hedgerow_model::PROTECTED_RULE))
    );
}

#[test]
fn counters_kept_through_the_recorder_equal_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &small_parts()).unwrap());
    let rec = Recorder::start(
        store.clone(),
        RecorderOptions {
            capacity: 200_000,
            interval: Duration::from_millis(5),
            ..RecorderOptions::default()
        },
    )
    .unwrap();
    for e in events(2, 30_000) {
        rec.record(e);
    }
    rec.sync();
    assert_eq!(rec.stats().dropped, 0);
    // Read while the writer's parts are still open: the part being written read as it stands.
    assert_eq!(counted(&store, 2), scanned(&store));
    rec.stop();
    assert_eq!(counted(&store, 2), scanned(&store));
}

#[test]
fn the_purge_drops_a_days_counters_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &small_parts()).unwrap();
    store.append_events(&events(3, 5_000)).unwrap();
    assert!(!store.day_counts(date(0), date(1)).unwrap().is_empty());
    let now = t0() + jiff::SignedDuration::from_hours(24 * 3 + 1);
    let keep = Retention {
        access: Duration::from_secs(86_400 * 2),
        breaches: Duration::from_secs(86_400 * 30),
    };
    let report = store.purge(now, keep).unwrap();
    assert_eq!(report.days_dropped, ["2026-11-02"]);
    assert!(store.day_counts(date(0), date(1)).unwrap().is_empty());
    assert!(store.hour_counts(date(0), date(1)).unwrap().is_empty());
    assert!(store.site_counts(date(0), date(1)).unwrap().is_empty());
    // The kept days keep theirs (twin of the above).
    assert_eq!(counted(&store, 3), scanned(&store));
    assert!(!store.day_counts(date(1), date(3)).unwrap().is_empty());
}

#[test]
fn a_store_without_counters_gets_them_from_its_events_and_a_rebuild_repairs_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &small_parts()).unwrap();
        store.append_events(&events(2, 10_000)).unwrap();
        store.flush().unwrap();
    }
    // As an older build left it: no counts in any part, none in main.
    for day in std::fs::read_dir(dir.path().join("days")).unwrap() {
        for part in std::fs::read_dir(day.unwrap().path()).unwrap() {
            let db = raw(&part.unwrap().path());
            assert!(db.drop_tree("counts").unwrap());
            db.flush().unwrap();
        }
    }
    {
        let db = raw(&dir.path().join("main"));
        for t in [
            "counts-day",
            "counts-hour",
            "counts-site",
            "counts-parts",
            "breach-counts",
        ] {
            db.drop_tree(t).unwrap();
        }
        db.open_tree("meta")
            .unwrap()
            .remove("breach-counts-kept")
            .unwrap();
        db.flush().unwrap();
    }
    // sled's own threads let go of the files a moment after the last handle is dropped.
    let store = reopen(dir.path());
    let want = scanned(&store);
    assert_eq!(want.0.values().sum::<u64>(), 20_000);
    assert_eq!(counted(&store, 2), want);
    assert!(store.check_integrity().unwrap().problems.is_empty());
    // A rebuild gives the same counts.
    let r = store.rebuild_counts().unwrap();
    assert_eq!(r.events, 20_000);
    assert_eq!(counted(&store, 2), want);
    assert!(store.check_integrity().unwrap().problems.is_empty());
}

#[test]
fn the_integrity_check_finds_counters_that_disagree_and_the_rebuild_fixes_them() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &small_parts()).unwrap();
        store.append_events(&events(1, 10_000)).unwrap();
        let _ = store.day_counts(date(0), date(1)).unwrap();
        store.flush().unwrap();
    }
    {
        // One counter off by one, as if a part had been added twice in part.
        let db = raw(&dir.path().join("main"));
        let t = db.open_tree("counts-day").unwrap();
        let (k, v) = t.iter().next().unwrap().unwrap();
        let n = u64::from_be_bytes(v.as_ref().try_into().unwrap());
        t.insert(k, &(n + 1).to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let store = reopen(dir.path());
    let problems = store.check_integrity().unwrap().problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("2026-11-02"), "{problems:?}");
    assert_ne!(counted(&store, 1), scanned(&store));
    store.rebuild_counts().unwrap();
    assert_eq!(counted(&store, 1), scanned(&store));
    assert!(store.check_integrity().unwrap().problems.is_empty());
}

fn breach_event(t: jiff::Timestamp, n: u64) -> AccessEvent {
    let mut e = event(6, t);
    e.device = Some(Arc::from(format!("pc-{n}")));
    e.target = format!("bad{}.example", n % 5);
    e
}

fn breach_counts(store: &Store, days: i64) -> BTreeMap<(Date, Severity), u64> {
    store
        .breach_counts(date(0), date(days))
        .unwrap()
        .into_iter()
        .map(|c| ((c.day, c.severity), c.count))
        .collect()
}

fn breaches_scanned(store: &Store) -> BTreeMap<(Date, Severity), u64> {
    let mut m = BTreeMap::new();
    for b in store.breaches(None, usize::MAX).unwrap() {
        *m.entry((b.first.to_zoned(jiff::tz::TimeZone::UTC).date(), b.severity))
            .or_default() += 1;
    }
    m
}

#[test]
fn breach_counters_follow_new_raised_and_purged_breaches() {
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_secs(600);
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let severities = [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ];
        for n in 0..60u64 {
            let t = t0() + jiff::SignedDuration::from_mins((n * 97) as i64);
            store
                .record_breach(
                    &breach_event(t, n),
                    severities[(n % 4) as usize],
                    "r",
                    window,
                )
                .unwrap();
        }
        // A raise moves a breach from one severity to another; it is still one breach.
        let t = t0() + jiff::SignedDuration::from_secs(30);
        store
            .record_breach(&breach_event(t, 0), Severity::Critical, "raised", window)
            .unwrap();
        let want = breaches_scanned(&store);
        assert_eq!(want.values().sum::<u64>(), 60);
        assert_eq!(
            store.breach(1).unwrap().severity,
            Severity::Critical,
            "the first breach was raised"
        );
        assert_eq!(breach_counts(&store, 7), want);
        assert!(store.check_integrity().unwrap().problems.is_empty());
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(breach_counts(&store, 7), breaches_scanned(&store));
    // The purge takes breaches last seen before the cutoff off the counters.
    let now = t0() + jiff::SignedDuration::from_hours(24 * 31);
    let keep = Retention {
        access: Duration::from_secs(86_400 * 30),
        breaches: Duration::from_secs(86_400 * 28),
    };
    let removed = store.purge(now, keep).unwrap().breaches_removed;
    assert!(removed > 0 && removed < 60, "{removed}");
    assert_eq!(breach_counts(&store, 7), breaches_scanned(&store));
    assert_eq!(
        breach_counts(&store, 7).values().sum::<u64>(),
        60 - removed as u64
    );
}

#[test]
fn events_the_recorder_drops_are_counted_by_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
    let rec = Recorder::start(
        store.clone(),
        RecorderOptions {
            // A queue of 100 events and a writer that waits a second: most of 5,000 drop.
            capacity: 100,
            interval: Duration::from_secs(1),
            ..RecorderOptions::default()
        },
    )
    .unwrap();
    let now = jiff::Timestamp::now();
    for i in 0..5_000 {
        rec.record(event(i, now));
    }
    rec.sync();
    let stats = rec.stats();
    assert!(stats.dropped > 0, "{stats:?}");
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let counted = store
        .dropped_counts(today, today.tomorrow().unwrap())
        .unwrap();
    assert_eq!(counted, [(today, stats.dropped + stats.failed)]);
    rec.stop();
    // None lost, none counted (twin).
    let other = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(other.path(), &StoreOptions::default()).unwrap());
    let rec = Recorder::start(store.clone(), RecorderOptions::default()).unwrap();
    for i in 0..50 {
        rec.record(event(i, now));
    }
    rec.sync();
    assert_eq!(rec.stats().dropped, 0);
    assert!(
        store
            .dropped_counts(today, today.tomorrow().unwrap())
            .unwrap()
            .is_empty()
    );
    rec.stop();
}

fn top_of(sites: &BySite, n: usize) -> (u64, Vec<(String, u64)>) {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for ((_, s), c) in sites {
        *totals.entry(s.clone()).or_default() += c;
    }
    let distinct = totals.len() as u64;
    let mut all: Vec<(String, u64)> = totals.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    (distinct, all)
}

#[test]
fn the_most_blocked_sites_follow_the_events_when_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &small_parts()).unwrap();
    store.append_events(&events(3, 6_000)).unwrap();
    // Only the last day has a part being written: the first two are remembered.
    let top = |s: &Store| {
        let t = s.top_sites(date(0), date(2), 5).unwrap();
        (t.distinct, t.sites)
    };
    let want = |s: &Store| {
        let (_, _, sites) = scanned(s);
        let two: BySite = sites
            .into_iter()
            .filter(|((d, _), _)| *d < date(2))
            .collect();
        top_of(&two, 5)
    };
    assert_eq!(top(&store), want(&store));
    assert_eq!(top(&store), want(&store), "read again");
    // Late events for the first day (a new part of it): the answer follows.
    let mut late = events(1, 2_000);
    for e in &mut late {
        e.outcome = Outcome::Blocked;
        e.tier = Tier::Category;
        e.target = "late.example".into();
    }
    store.append_events(&late).unwrap();
    let (_, sites) = top(&store);
    assert_eq!(sites[0], ("late.example".to_owned(), 2_000));
    assert_eq!(top(&store), want(&store));
}

/// A flood of distinct blocked names (generated names, as malware makes) is not kept one row
/// each: a part names its 1,000 most blocked sites. The site blocked most is still first with
/// its exact count, and the counts by category and disposition still hold every event. The
/// twin: a part with fewer sites keeps every one (the tests above compare them to a scan).
#[test]
fn a_flood_of_distinct_blocked_names_keeps_the_most_blocked_and_every_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let blocked = |i: u64, target: String| {
        let mut e = AccessEvent::new(
            t0() + Duration::from_millis(i),
            Front::Dns,
            "10.1.0.1".parse().unwrap(),
            target,
        );
        e.outcome = Outcome::Blocked;
        e.action = Action::Block;
        e.tier = Tier::Category;
        e.category = Some(Category::new("malware").unwrap());
        e.group = Some(Arc::from("ks3"));
        e
    };
    let mut evs: Vec<AccessEvent> = (0..5_000)
        .map(|i| blocked(i, format!("x{i:05}.dga.example")))
        .collect();
    evs.extend((0..40).map(|i| blocked(5_000 + i, "c2.example".into())));
    store.append_events(&evs).unwrap();
    // Reopened: the part is closed and added in.
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(store.settle_all().unwrap(), 1);
    let top = store.top_sites(date(0), date(1), 3).unwrap();
    assert_eq!(top.sites[0], ("c2.example".to_owned(), 40));
    assert_eq!(top.distinct, 1_000);
    let blocked_total: u64 = store
        .day_counts(date(0), date(1))
        .unwrap()
        .iter()
        .filter(|c| c.disposition == Disposition::Block)
        .map(|c| c.count)
        .sum();
    assert_eq!(blocked_total, 5_040);
    let r = store.check_integrity().unwrap();
    assert!(r.problems.is_empty(), "{:?}", r.problems);
}
