#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store on a real sled database in a temporary directory.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hedgerow_model::{
    AccessEvent, Action, BreachRule, Category, EventSink, Front, Outcome, Severity, Tier,
};
use hedgerow_store::{EventFilter, Recorder, RecorderOptions, Retention, Store, StoreOptions};

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn event(t: jiff::Timestamp, ip: &str, device: Option<&str>, target: &str) -> AccessEvent {
    let mut e = AccessEvent::new(t, Front::Dns, ip.parse().unwrap(), target.into());
    e.device = device.map(Arc::from);
    e.group = Some(Arc::from("ks2"));
    e.qtype = Some("A".into());
    e
}

fn blocked(mut e: AccessEvent, category: &str) -> AccessEvent {
    e.action = Action::Block;
    e.outcome = Outcome::Blocked;
    e.tier = Tier::Category;
    e.category = Some(Category::new(category).unwrap());
    e.list = Some(Arc::from(category));
    e.rule = Some(Arc::from(e.target.as_str()));
    e
}

fn open(dir: &std::path::Path) -> Store {
    Store::open(dir, &StoreOptions::default()).unwrap()
}

#[test]
fn events_round_trip_and_scan_by_device_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let day1 = ts("2026-11-02T09:00:00Z");
    let mut all = Vec::new();
    for i in 0..300i64 {
        let t = day1 + jiff::SignedDuration::from_mins(i * 10); // spans two days
        let (ip, dev) = match i % 3 {
            0 => ("10.0.0.1", Some("lab-pc-01")),
            1 => ("10.0.0.2", Some("lab-pc-02")),
            _ => ("10.0.0.3", None),
        };
        let mut e = event(t, ip, dev, &format!("site{i}.example"));
        if i % 10 == 0 {
            e = blocked(e, "gambling");
            e.user = Some(Arc::from("pupil7"));
        }
        all.push(e);
    }
    // Written in several batches, as the recorder would.
    for chunk in all.chunks(37) {
        store.append_events(chunk).unwrap();
    }
    assert_eq!(store.days(), vec!["2026-11-02", "2026-11-03", "2026-11-04"]);

    let every = store.events(&EventFilter::default()).unwrap();
    assert_eq!(
        every, all,
        "everything comes back, in time order, unchanged"
    );

    let f = EventFilter {
        device: Some("lab-pc-02".into()),
        ..Default::default()
    };
    let got = store.events(&f).unwrap();
    let want: Vec<_> = all
        .iter()
        .filter(|e| e.device.as_deref() == Some("lab-pc-02"))
        .cloned()
        .collect();
    assert_eq!(got, want);

    let from = ts("2026-11-03T00:00:00Z");
    let to = ts("2026-11-03T12:00:00Z");
    let f = EventFilter {
        from: Some(from),
        to: Some(to),
        ..Default::default()
    };
    let got = store.events(&f).unwrap();
    assert_eq!(got.len(), 72);
    assert!(got.iter().all(|e| e.time >= from && e.time < to));
    assert!(got.windows(2).all(|w| w[0].time <= w[1].time));

    let f = EventFilter {
        ip: Some("10.0.0.3".parse::<IpAddr>().unwrap()),
        action: Some(Action::Block),
        ..Default::default()
    };
    let got = store.events(&f).unwrap();
    assert!(!got.is_empty());
    assert!(
        got.iter()
            .all(|e| e.client.to_string() == "10.0.0.3" && e.action == Action::Block)
    );

    let f = EventFilter {
        category: Some(Category::new("gambling").unwrap()),
        user: Some("pupil7".into()),
        limit: Some(5),
        ..Default::default()
    };
    let got = store.events(&f).unwrap();
    let want: Vec<_> = all
        .iter()
        .filter(|e| e.category.is_some())
        .cloned()
        .collect();
    assert_eq!(got, want[want.len() - 5..], "a limit keeps the most recent");

    // Reopened, the data is the same.
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.events(&EventFilter::default()).unwrap(), all);
    let report = store.check_integrity().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.events, 300);
}

#[test]
fn a_day_written_in_parts_reads_back_whole_across_reopens_and_purges_whole() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny parts, so a few thousand events span several.
    let options = StoreOptions {
        part_bytes: 4 << 10,
        ..StoreOptions::default()
    };
    let day = ts("2026-11-05T08:00:00Z");
    let all: Vec<AccessEvent> = (0..6000i64)
        .map(|i| {
            let t = day + jiff::SignedDuration::from_millis(i * 500);
            let dev = if i % 4 == 0 { Some("lab-pc-09") } else { None };
            event(
                t,
                &format!("10.0.1.{}", i % 50),
                dev,
                &format!("w{i}.example"),
            )
        })
        .collect();
    let (first, second) = all.split_at(4000);
    let store = Store::open(dir.path(), &options).unwrap();
    for chunk in first.chunks(500) {
        store.append_events(chunk).unwrap();
    }
    let parts_dir = dir.path().join("days").join("2026-11-05");
    let parts_before = std::fs::read_dir(&parts_dir).unwrap().count();
    assert!(parts_before >= 3, "{parts_before} parts");
    // Reopened, appends go to a new part after the last.
    drop(store);
    let store = Store::open(dir.path(), &options).unwrap();
    for chunk in second.chunks(500) {
        store.append_events(chunk).unwrap();
    }
    assert!(std::fs::read_dir(&parts_dir).unwrap().count() > parts_before);
    assert_eq!(store.days(), vec!["2026-11-05"]);
    assert_eq!(store.events(&EventFilter::default()).unwrap(), all);
    let f = EventFilter {
        device: Some("lab-pc-09".into()),
        ..Default::default()
    };
    let want: Vec<_> = all.iter().filter(|e| e.device.is_some()).cloned().collect();
    assert_eq!(store.events(&f).unwrap(), want);
    let f = EventFilter {
        limit: Some(10),
        ..Default::default()
    };
    assert_eq!(store.events(&f).unwrap(), all[all.len() - 10..]);
    let report = store.check_integrity().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.days, report.events), (1, 6000));
    // The day goes whole, open parts and all, and a later append starts it afresh.
    let keep = Retention {
        access: Duration::from_secs(86_400),
        breaches: Duration::from_secs(86_400),
    };
    let report = store.purge(ts("2026-11-08T00:00:00Z"), keep).unwrap();
    assert_eq!(report.days_dropped, vec!["2026-11-05"]);
    assert!(!parts_dir.exists());
    store.append_events(&all[..10]).unwrap();
    assert_eq!(store.events(&EventFilter::default()).unwrap(), all[..10]);
}

#[test]
fn events_alternating_between_two_days_keep_one_part_each() {
    // Around midnight (or after a clock step) batches of two days arrive interleaved: each
    // day keeps appending to its own part rather than starting a new one at every switch.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let late = ts("2026-11-05T23:59:59Z");
    let early = ts("2026-11-06T00:00:01Z");
    let mut all = Vec::new();
    for i in 0..20 {
        let t = if i % 2 == 0 { late } else { early };
        let e = event(t, "10.0.2.1", None, &format!("m{i}.example"));
        store.append_events(std::slice::from_ref(&e)).unwrap();
        all.push(e);
    }
    for day in ["2026-11-05", "2026-11-06"] {
        let parts = std::fs::read_dir(dir.path().join("days").join(day))
            .unwrap()
            .count();
        assert_eq!(parts, 1, "{day}");
    }
    all.sort_by_key(|e| e.time);
    let got = store.events(&EventFilter::default()).unwrap();
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|e| all.contains(e)));
}

#[test]
fn breaches_are_deduplicated_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t0 = ts("2026-11-02T10:00:00Z");
    let e = |mins: i64, site: &str| {
        blocked(
            event(
                t0 + jiff::SignedDuration::from_mins(mins),
                "10.0.0.1",
                Some("lab-pc-01"),
                site,
            ),
            "gambling",
        )
    };
    let w = Duration::from_secs(3600);
    let (b1, new1) = store
        .record_breach(&e(0, "bet.example"), Severity::High, "gambling", w)
        .unwrap();
    let (b2, new2) = store
        .record_breach(&e(30, "bet.example"), Severity::High, "gambling", w)
        .unwrap();
    let (b3, new3) = store
        .record_breach(&e(80, "bet.example"), Severity::High, "gambling", w)
        .unwrap();
    let (b4, new4) = store
        .record_breach(&e(81, "poker.example"), Severity::High, "gambling", w)
        .unwrap();
    assert!(new1 && !new2 && new3 && new4);
    assert_eq!(b1.id, b2.id);
    assert_ne!(b1.id, b3.id);
    let first = store.breach(b1.id).unwrap();
    assert_eq!(first.count, 2);
    assert_eq!(first.first, t0);
    assert_eq!(first.last, t0 + jiff::SignedDuration::from_mins(30));
    assert_eq!(store.breach(b3.id).unwrap().count, 1);
    assert_eq!(store.breach(b4.id).unwrap().site, "poker.example");
    let listed = store.breaches(None, 10).unwrap();
    assert_eq!(
        listed.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![b4.id, b3.id, b1.id],
        "newest first"
    );
    assert_eq!(store.pending_alerts().unwrap().len(), 3);
    assert!(store.check_integrity().unwrap().problems.is_empty());
}

#[test]
fn recorder_applies_rules_never_drops_breaches_and_redacts_the_illegal_tier() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let rules = vec![
        BreachRule {
            name: "extremism".into(),
            tiers: vec![],
            categories: vec![Category::new("extremism").unwrap()],
            concern: None,
            severity: Severity::High,
        },
        BreachRule {
            name: "concerning-search".into(),
            tiers: vec![],
            categories: vec![],
            concern: Some(Severity::High),
            severity: Severity::High,
        },
    ];
    let rec = Recorder::start(
        store.clone(),
        RecorderOptions {
            capacity: 10, // tiny, so access events overflow
            interval: Duration::from_millis(200),
            rules,
            window: Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .unwrap();
    let t = ts("2026-11-02T10:00:00Z");
    for i in 0..50 {
        rec.record(event(t, "10.0.0.9", None, &format!("ok{i}.example")));
    }
    rec.record(blocked(
        event(t, "10.0.0.9", Some("lab-pc-09"), "bad.example"),
        "extremism",
    ));
    rec.record(blocked(
        event(t, "10.0.0.9", Some("lab-pc-09"), "bet.example"),
        "gambling",
    ));
    let mut search = event(
        t,
        "10.0.0.9",
        Some("lab-pc-09"),
        "https://www.google.com/search?q=x",
    );
    search.front = Front::Proxy;
    search.concern = Some(Severity::High);
    search.search = Some("how to hurt myself".into());
    rec.record(search);
    let mut illegal = blocked(
        event(
            t,
            "10.0.0.9",
            Some("lab-pc-09"),
            "http://illegal.example/a/b/c.html",
        ),
        "iwf",
    );
    illegal.tier = Tier::Illegal;
    illegal.rule = Some(Arc::from("[protected entry]"));
    rec.record(illegal);
    rec.sync();
    let stats = rec.stats();
    assert_eq!(stats.breaches, 3, "{stats:?}");
    assert!(stats.dropped >= 44, "{stats:?}");
    assert_eq!(stats.written + stats.dropped, 54);

    let breaches = store.breaches(None, 10).unwrap();
    let by_rule = |r: &str| breaches.iter().find(|b| b.rule == r).unwrap();
    assert_eq!(by_rule("extremism").severity, Severity::High);
    assert_eq!(by_rule("extremism").device.as_deref(), Some("lab-pc-09"));
    assert_eq!(
        by_rule("concerning-search").search.as_deref(),
        Some("how to hurt myself")
    );
    let ill = by_rule("illegal");
    assert_eq!(ill.severity, Severity::Critical);
    assert_eq!(ill.target, "illegal.example", "the path is withheld");
    assert!(
        breaches.iter().all(|b| b.site != "bet.example"),
        "gambling has no rule"
    );
    // The access log holds the illegal-tier request without its path too.
    let evs = store.events(&EventFilter::default()).unwrap();
    assert!(evs.iter().all(|e| !e.target.contains("/a/b/c.html")));
    rec.stop();
}

#[test]
fn purge_drops_old_days_and_breaches_but_keeps_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let start = ts("2026-10-01T12:00:00Z");
    for d in 0..10 {
        let t = start + jiff::SignedDuration::from_hours(24 * d);
        store
            .append_events(&[event(t, "10.0.0.1", Some("pc"), "a.example")])
            .unwrap();
        let b = blocked(event(t, "10.0.0.1", Some("pc"), "bet.example"), "gambling");
        store
            .record_breach(&b, Severity::Medium, "gambling", Duration::from_secs(60))
            .unwrap();
    }
    store
        .append_audit(start, "tech", "proposal", "{\"add\":\"x\"}")
        .unwrap();
    let now = start + jiff::SignedDuration::from_hours(24 * 9);
    let report = store
        .purge(
            now,
            Retention {
                access: Duration::from_secs(3 * 86_400),
                breaches: Duration::from_secs(6 * 86_400),
            },
        )
        .unwrap();
    assert_eq!(report.days_dropped.len(), 6, "{report:?}");
    assert_eq!(store.days().first().map(String::as_str), Some("2026-10-07"));
    assert_eq!(report.breaches_removed, 3);
    assert_eq!(store.breaches(None, 100).unwrap().len(), 7);
    assert_eq!(store.audit().unwrap().len(), 1);
    assert!(store.check_integrity().unwrap().problems.is_empty());
}

#[test]
fn export_and_import_carry_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let t = ts("2026-11-02T10:00:00Z");
    let evs: Vec<_> = (0..500)
        .map(|i| {
            event(
                t + jiff::SignedDuration::from_secs(i * 300),
                "10.0.0.1",
                Some("pc"),
                &format!("s{i}.example"),
            )
        })
        .collect();
    store.append_events(&evs).unwrap();
    store
        .record_breach(
            &blocked(evs[3].clone(), "adult"),
            Severity::High,
            "adult",
            Duration::from_secs(60),
        )
        .unwrap();
    store.append_audit(t, "head", "approval", "ok").unwrap();
    let mut first = Vec::new();
    let counts = store.export(&mut first).unwrap();
    assert_eq!((counts.events, counts.breaches, counts.audit), (500, 1, 1));

    let dir2 = tempfile::tempdir().unwrap();
    let other = open(dir2.path());
    let read = other.import(first.as_slice()).unwrap();
    assert_eq!(read, counts);
    let mut second = Vec::new();
    other.export(&mut second).unwrap();
    assert_eq!(
        String::from_utf8(first).unwrap(),
        String::from_utf8(second).unwrap()
    );
    assert_eq!(other.pending_alerts().unwrap().len(), 1);

    let err = other
        .import("{\"kind\":\"access\",\"event\":{}}\n".as_bytes())
        .unwrap_err();
    assert!(err.to_string().contains("import line 1"), "{err}");
}

#[test]
fn reconfigure_puts_new_breach_rules_and_access_log_setting_in_force_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path()));
    let rec = Recorder::start(
        store.clone(),
        RecorderOptions {
            interval: Duration::from_millis(10),
            ..Default::default()
        },
    )
    .unwrap();
    let t = ts("2026-11-02T10:00:00Z");
    let bet = || {
        blocked(
            event(t, "10.0.0.9", Some("lab-pc-09"), "bet.example"),
            "gambling",
        )
    };
    rec.record(bet());
    rec.sync();
    assert_eq!(rec.stats().breaches, 0, "no rule yet");
    assert_eq!(rec.stats().written, 1);

    let gambling = BreachRule {
        name: "gambling".into(),
        tiers: vec![],
        categories: vec![Category::new("gambling").unwrap()],
        concern: None,
        severity: Severity::Medium,
    };
    rec.reconfigure(RecorderOptions {
        interval: Duration::from_millis(10),
        rules: vec![gambling],
        access_log: false,
        ..Default::default()
    });
    assert!(!rec.options().access_log);
    rec.record(bet());
    rec.record(event(t, "10.0.0.9", None, "ok.example"));
    rec.sync();
    let stats = rec.stats();
    assert_eq!(stats.breaches, 1, "{stats:?}");
    assert_eq!(stats.written, 1, "access log off: nothing more written");
    let breaches = store.breaches(None, 10).unwrap();
    assert_eq!(breaches.len(), 1);
    assert_eq!(&*breaches[0].rule, "gambling");
    rec.stop();
}
