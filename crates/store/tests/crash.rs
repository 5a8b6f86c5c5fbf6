#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash safety and rolling retention on a real sled database.
//!
//! The crash test runs this test binary again as a child (`HEDGEROW_CRASH_CHILD` names the
//! database): the child records access events and breaches under load and prints how many
//! breaches the recorder reports as recorded; the parent kills it with SIGKILL and reopens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hedgerow_model::{
    AccessEvent, Action, BreachRule, Category, EventSink, Front, Outcome, Severity, Tier,
};
use hedgerow_store::{EventFilter, Recorder, RecorderOptions, Retention, Store, StoreOptions};

fn access(t: jiff::Timestamp, i: u64) -> AccessEvent {
    let mut e = AccessEvent::new(
        t,
        Front::Dns,
        format!("10.0.{}.{}", (i / 200) % 4, i % 200)
            .parse()
            .unwrap(),
        format!("site{}.example", i % 5000),
    );
    e.device = (!i.is_multiple_of(3)).then(|| Arc::from(format!("pc-{}", i % 40)));
    e.group = Some(Arc::from("ks3"));
    e.qtype = Some("A".into());
    e
}

fn breach_event(t: jiff::Timestamp, n: u64) -> AccessEvent {
    let mut e = access(t, n);
    e.target = format!("b{n}.example");
    e.action = Action::Block;
    e.outcome = Outcome::Blocked;
    e.tier = Tier::Category;
    e.category = Some(Category::new("extremism").unwrap());
    e
}

fn child(dir: &str) -> ! {
    let store = Arc::new(Store::open(dir.as_ref(), &StoreOptions::default()).unwrap());
    let rec = Recorder::start(
        store,
        RecorderOptions {
            interval: Duration::from_millis(5),
            rules: vec![BreachRule {
                name: "extremism".into(),
                tiers: vec![],
                categories: vec![Category::new("extremism").unwrap()],
                concern: None,
                severity: Severity::High,
            }],
            ..Default::default()
        },
    )
    .unwrap();
    let mut printed = 0;
    let mut n = 0u64;
    for i in 0u64.. {
        let t = jiff::Timestamp::now();
        rec.record(access(t, i));
        if i % 97 == 0 {
            rec.record(breach_event(t, n));
            n += 1;
        }
        if i % 64 == 0 {
            let done = rec.stats().breaches;
            if done != printed {
                println!("recorded {done}");
                printed = done;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    unreachable!()
}

#[test]
fn kill_9_loses_no_recorded_breach_and_leaves_indexes_consistent() {
    if let Ok(dir) = std::env::var("HEDGEROW_CRASH_CHILD") {
        child(&dir);
    }
    for (round, run_for) in [700u64, 1300, 2100].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args([
                "kill_9_loses_no_recorded_breach_and_leaves_indexes_consistent",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HEDGEROW_CRASH_CHILD", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = proc.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("recorded ") {
                    let _ = tx.send(n.parse::<u64>().unwrap());
                }
            }
        });
        let started = Instant::now();
        let mut recorded = 0;
        while started.elapsed() < Duration::from_millis(run_for) || recorded == 0 {
            if let Ok(n) = rx.recv_timeout(Duration::from_millis(20)) {
                recorded = recorded.max(n);
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "child made no progress"
            );
        }
        proc.kill().unwrap(); // SIGKILL
        proc.wait().unwrap();
        while let Ok(n) = rx.recv_timeout(Duration::from_millis(100)) {
            recorded = recorded.max(n);
        }

        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let report = store.check_integrity().unwrap();
        assert!(
            report.problems.is_empty(),
            "round {round}: {:?}",
            report.problems
        );
        let breaches = store.breaches(None, usize::MAX).unwrap();
        let sites: std::collections::HashSet<String> =
            breaches.iter().map(|b| b.site.clone()).collect();
        let missing: Vec<u64> = (0..recorded)
            .filter(|n| !sites.contains(&format!("b{n}.example")))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: recorded breaches missing: {missing:?}"
        );
        let events = store.events(&EventFilter::default()).unwrap().len();
        println!(
            "round {round}: killed after {run_for} ms; {recorded} breaches reported recorded, {} on disk; {} access events in {} batches",
            breaches.len(),
            events,
            report.batches
        );
        assert!(events > 0);
    }
}

#[test]
fn rolling_retention_levels_off_disk_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let keep = Retention {
        access: Duration::from_secs(3 * 86_400),
        breaches: Duration::from_secs(30 * 86_400),
    };
    let start: jiff::Timestamp = "2026-09-01T00:00:00Z".parse().unwrap();
    let per_day = 40_000u64;
    let days: i64 = 16;
    let mut sizes = Vec::new();
    for d in 0..days {
        let day_start = start + jiff::SignedDuration::from_hours(24 * d);
        let mut batch = Vec::with_capacity(1000);
        for i in 0..per_day {
            let t = day_start + jiff::SignedDuration::from_millis((i * 2000) as i64);
            batch.push(access(t, i));
            if batch.len() == 1000 {
                store.append_events(&batch).unwrap();
                batch.clear();
            }
        }
        let now = day_start + jiff::SignedDuration::from_hours(23);
        store.purge(now, keep).unwrap();
        store.flush().unwrap();
        sizes.push(store.disk_bytes().unwrap());
    }
    let live = store.live_bytes().unwrap();
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "disk after each day (MB): {:?}",
        sizes
            .iter()
            .map(|&s| (mb(s) * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    let steady = *sizes.last().unwrap();
    println!(
        "steady {:.1} MB against {:.1} MB live ({} days kept): {:.2}x",
        mb(steady),
        mb(live),
        store.days().len(),
        steady as f64 / live as f64
    );
    assert_eq!(store.days().len(), 4, "three days back and today");
    // Levelling off: the second half grows no more than a little over the first half's peak.
    let mid_peak = *sizes[..days as usize / 2].iter().max().unwrap();
    let late_peak = *sizes[days as usize / 2..].iter().max().unwrap();
    assert!(
        late_peak as f64 <= mid_peak as f64 * 1.25,
        "disk use keeps growing: {sizes:?}"
    );
}
