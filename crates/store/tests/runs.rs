#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Device runs (issue 16's device timeline): closed parts copied by device on a real sled
//! store, and device queries answering the same events from them as from the batches.

use std::sync::Arc;

use hedgerow_model::{AccessEvent, Front};
use hedgerow_store::{EventFilter, Recorder, RecorderOptions, Store, StoreOptions};

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// 9,000 events over three days from 40 devices (`pc-00`…`pc-39`) and, every seventh, a
/// device with no name (its address is its id), interleaved as a school's traffic is.
fn traffic() -> Vec<AccessEvent> {
    let start = ts("2026-11-05T08:00:00Z");
    (0..9000i64)
        .map(|i| {
            let t = start + jiff::SignedDuration::from_secs(i * 19);
            let ip = format!("10.0.{}.{}", i % 3, i % 40 + 1);
            let mut e =
                AccessEvent::new(t, Front::Dns, ip.parse().unwrap(), format!("w{i}.example"));
            if i % 7 != 0 {
                e.device = Some(Arc::from(format!("pc-{:02}", i % 40)));
            }
            e.group = Some(Arc::from("ks3"));
            e
        })
        .collect()
}

fn small_parts() -> StoreOptions {
    StoreOptions {
        part_bytes: 8 << 10,
        ..StoreOptions::default()
    }
}

/// A store in `dir` with `all` appended in chunks of 300, as the recorder hands them over.
fn filled(dir: &std::path::Path, all: &[AccessEvent]) -> Store {
    let store = Store::open(dir, &small_parts()).unwrap();
    for chunk in all.chunks(300) {
        store.append_events(chunk).unwrap();
    }
    store
}

/// The events of the device named `name`, in order.
fn of_device(all: &[AccessEvent], name: &str) -> Vec<AccessEvent> {
    all.iter()
        .filter(|e| e.device.as_deref() == Some(name))
        .cloned()
        .collect()
}

fn device(name: &str) -> EventFilter {
    EventFilter {
        device: Some(name.into()),
        ..EventFilter::default()
    }
}

fn site(name: &str) -> EventFilter {
    EventFilter {
        site: Some(name.into()),
        ..EventFilter::default()
    }
}

fn run_dirs(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for day in std::fs::read_dir(dir.join("days")).unwrap() {
        // Parts are directories; a part's runs file sits beside it.
        n += std::fs::read_dir(day.unwrap().path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count();
    }
    n
}

#[test]
fn device_queries_answer_the_same_from_runs_as_from_batches_and_only_that_device() {
    let dir = tempfile::tempdir().unwrap();
    let all = traffic();
    let store = filled(dir.path(), &all);
    assert!(run_dirs(dir.path()) >= 6, "want several parts");
    let queries = [
        device("pc-07"),
        // A prefix matching pc-10..pc-19: ten devices, merged by time.
        device("pc-1"),
        // A prefix matching all forty: read from the batches.
        device("pc"),
        EventFilter {
            limit: Some(25),
            ..device("pc-33")
        },
        EventFilter {
            from: Some(ts("2026-11-05T20:00:00Z")),
            to: Some(ts("2026-11-06T03:00:00Z")),
            ..device("PC-2")
        },
        // Site searches, read through the batches' site filters once they are written: one
        // host, a name every host is under (with a limit), and hosts that are not there.
        site("W4321.example."),
        EventFilter {
            limit: Some(25),
            ..site("example")
        },
        site("4321.example"),
        site("w4321.example.org"),
    ];
    let before: Vec<Vec<AccessEvent>> = queries.iter().map(|q| store.events(q).unwrap()).collect();
    // Everything is what the events say, whichever way it is read.
    let want_07 = of_device(&all, "pc-07");
    assert_eq!(before[0], want_07);
    assert!(!want_07.is_empty());
    assert_eq!(before[5].len(), 1);
    assert_eq!(before[5][0].target, "w4321.example");
    assert_eq!(before[6].len(), 25);
    assert!(before[7].is_empty() && before[8].is_empty());

    let wrote = store.write_device_runs(|| true).unwrap();
    // Every part but the one appends to each day go to now.
    assert_eq!(store.days().len(), 3);
    assert_eq!(wrote, run_dirs(dir.path()) - 3, "parts with runs");
    assert_eq!(store.runs_pending().unwrap(), 0);
    assert_eq!(store.write_device_runs(|| true).unwrap(), 0, "once only");
    for (q, want) in queries.iter().zip(&before) {
        let got = store.events(q).unwrap();
        let mut got_sorted = got.clone();
        got_sorted.sort_by_key(|e| (e.time, e.target.clone()));
        let mut want_sorted = want.clone();
        want_sorted.sort_by_key(|e| (e.time, e.target.clone()));
        assert_eq!(got_sorted, want_sorted, "{q:?}");
        // In time order, as a timeline reads them.
        assert!(got.windows(2).all(|w| w[0].time <= w[1].time), "{q:?}");
    }
    // The twin: no other device's events, and a device that is not there has none.
    assert!(
        store
            .events(&device("pc-07"))
            .unwrap()
            .iter()
            .all(|e| e.device.as_deref() == Some("pc-07"))
    );
    assert!(store.events(&device("pc-7")).unwrap().is_empty());
    // Address-only events are still found by address.
    let by_ip = EventFilter {
        ip: Some("10.0.0.1".parse().unwrap()),
        ..EventFilter::default()
    };
    let want_ip: Vec<_> = all
        .iter()
        .filter(|e| e.client == "10.0.0.1".parse::<std::net::IpAddr>().unwrap())
        .cloned()
        .collect();
    assert_eq!(store.events(&by_ip).unwrap(), want_ip);
    let report = store.check_integrity().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.events, all.len() as u64);
}

#[test]
fn a_run_stopped_half_way_leaves_the_part_read_by_its_batches_then_done_whole() {
    let dir = tempfile::tempdir().unwrap();
    let all = traffic();
    let store = filled(dir.path(), &all);
    // Stop after a few batches: nothing is marked done.
    let mut asked = 0;
    let wrote = store
        .write_device_runs(|| {
            asked += 1;
            asked < 3
        })
        .unwrap();
    assert_eq!(wrote, 0);
    let want = of_device(&all, "pc-21");
    assert_eq!(store.events(&device("pc-21")).unwrap(), want);
    assert!(store.write_device_runs(|| true).unwrap() > 0);
    assert_eq!(store.events(&device("pc-21")).unwrap(), want);
    let report = store.check_integrity().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn the_recorder_writes_runs_for_parts_a_previous_run_left_and_they_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let all = traffic();
    drop(filled(dir.path(), &all));
    let store = Arc::new(Store::open(dir.path(), &small_parts()).unwrap());
    assert!(store.runs_pending().unwrap() >= 6);
    let recorder = Recorder::start(store.clone(), RecorderOptions::default()).unwrap();
    // The runs thread starts at once (none of these parts is being written: the store was
    // reopened).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while store.runs_pending().unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the runs thread did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    recorder.stop();
    drop(recorder);
    drop(store);
    let store = Store::open(dir.path(), &small_parts()).unwrap();
    assert_eq!(
        store.write_device_runs(|| true).unwrap(),
        0,
        "kept across a reopen"
    );
    let want = of_device(&all, "pc-05");
    assert_eq!(store.events(&device("pc-05")).unwrap(), want);
}

#[test]
fn a_damaged_runs_file_is_passed_over_then_written_again_and_the_integrity_check_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let all = traffic();
    let store = filled(dir.path(), &all);
    assert!(store.write_device_runs(|| true).unwrap() > 0);
    let want = of_device(&all, "pc-12");
    let want_site: Vec<_> = all
        .iter()
        .filter(|e| e.target == "w4242.example")
        .cloned()
        .collect();
    // The twin: intact files pass the check and are not written again.
    assert!(store.check_integrity().unwrap().problems.is_empty());
    assert_eq!(store.write_device_runs(|| true).unwrap(), 0);
    assert_eq!(store.runs_pending().unwrap(), 0);

    // Each done part has its runs file beside it: cut one short, and change a byte in a
    // second's index.
    let day = dir.path().join("days/2026-11-05");
    let mut runs: Vec<_> = std::fs::read_dir(&day)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "runs"))
        .collect();
    runs.sort();
    assert!(runs.len() >= 3, "{runs:?}");
    let flip = |path: &std::path::Path, at: u64| {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at as usize] ^= 0x40;
        std::fs::write(path, bytes).unwrap();
    };
    let len = |path: &std::path::Path| std::fs::metadata(path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&runs[0])
        .unwrap()
        .set_len(len(&runs[0]) / 2)
        .unwrap();
    // The index ends just before the 20-byte footer.
    flip(&runs[1], len(&runs[1]) - 21);
    // Every answer is whole: those parts are read through their databases instead, and
    // their files are put aside to be written again.
    assert_eq!(store.events(&device("pc-12")).unwrap(), want);
    assert_eq!(store.events(&site("w4242.example")).unwrap(), want_site);
    assert!(!runs[0].exists() && !runs[1].exists());
    assert_eq!(store.runs_pending().unwrap(), 2);

    // A byte changed inside a third's first run (device `pc-00`'s: runs are in device
    // order after the 4-byte mark): a query for `pc-12` does not read it; the integrity
    // check, which reads every run, finds it.
    flip(&runs[2], 5);
    assert_eq!(store.events(&device("pc-12")).unwrap(), want);
    let report = store.check_integrity().unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("damaged runs file")),
        "{:?}",
        report.problems
    );
    assert!(!runs[2].exists());
    // ...and the damaged files, and only they, are written again by the background pass.
    assert!(runs[3..].iter().all(|p| p.exists()));
    assert_eq!(store.runs_pending().unwrap(), 3);
    assert_eq!(store.write_device_runs(|| true).unwrap(), 3);
    assert!(runs.iter().all(|p| p.exists()));
    assert!(store.check_integrity().unwrap().problems.is_empty());
    assert_eq!(store.events(&device("pc-12")).unwrap(), want);
    assert_eq!(store.events(&site("w4242.example")).unwrap(), want_site);
}
