#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Events per second into the log store, beside the naive peer measured in the same run: one
//! sled row per event (postcard value, time-ordered key), which is what sled does without
//! batching. Also prints the disk bytes per event after a sustained run.
//!
//! And the two reads the console leans on, from a part's device runs file (`runs.rs`: the
//! runs are read, checked against their CRC-32 and decoded) beside the baseline in the same
//! run, the same store's parts read through their databases before the runs are written: one
//! device's day, and a search by site.
//!
//! `cargo bench -p hedgerow-store`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hedgerow_model::{AccessEvent, EventSink, Front};
use hedgerow_store::{EventFilter, Recorder, RecorderOptions, Store, StoreOptions};

/// A DNS access event as the resolver writes it: 40 devices, 5,000 names.
fn event(t: jiff::Timestamp, i: u64) -> AccessEvent {
    let mut e = AccessEvent::new(
        t,
        Front::Dns,
        format!("10.20.{}.{}", (i / 250) % 4, i % 250)
            .parse()
            .unwrap(),
        format!("www.site{}.example.co.uk", i % 5000),
    );
    e.device = Some(Arc::from(format!("KS2-iPad-{:02}", i % 40)));
    e.group = Some(Arc::from("ks2"));
    e.qtype = Some("A".into());
    e
}

fn events(n: u64) -> Vec<AccessEvent> {
    let t0 = jiff::Timestamp::now();
    (0..n)
        .map(|i| event(t0 + jiff::SignedDuration::from_micros(i as i64 * 10), i))
        .collect()
}

const BATCH: u64 = 2_000; // one 20 ms flush at 100k events a second

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("store-append");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(8));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    g.bench_function(
        "hedgerow (one value per batch + device index, one transaction)",
        |b| {
            b.iter_batched(
                || events(BATCH),
                |evs| store.append_events(&evs).unwrap(),
                BatchSize::LargeInput,
            );
        },
    );
    let peer_dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(peer_dir.path())
        .cache_capacity(64 << 20)
        .open()
        .unwrap();
    let tree = db.open_tree("events").unwrap();
    let mut seq = 0u64;
    g.bench_function("peer: sled, one row per event", |b| {
        b.iter_batched(
            || events(BATCH),
            |evs| {
                for e in &evs {
                    seq += 1;
                    let mut k = (e.time.as_nanosecond() as u64).to_be_bytes().to_vec();
                    k.extend_from_slice(&seq.to_be_bytes());
                    let v = postcard::to_stdvec(&(
                        e.client,
                        e.device.as_deref(),
                        e.group.as_deref(),
                        &e.target,
                        e.qtype.as_deref(),
                        e.action,
                        e.tier,
                    ))
                    .unwrap();
                    tree.insert(k, v).unwrap();
                }
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

/// Sustained: 1M events handed to the recorder (queue large enough to drop none), timed until
/// the writer has stored them all: the rate the writer sustains.
fn sustained(c: &mut Criterion) {
    let mut g = c.benchmark_group("recorder-sustained");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("1M events via Recorder, 50 ms flushes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                let store = Arc::new(Store::open(dir.path(), &StoreOptions::default()).unwrap());
                let options = RecorderOptions {
                    capacity: 2_000_000,
                    ..RecorderOptions::default()
                };
                let rec = Recorder::start(store.clone(), options).unwrap();
                let evs = events(1_000_000);
                let start = Instant::now();
                for e in evs {
                    rec.record(e);
                }
                rec.sync();
                store.flush().unwrap();
                total += start.elapsed();
                let stats = rec.stats();
                let bytes = store.disk_bytes().unwrap();
                eprintln!(
                    "recorder: {} written, {} dropped; {:.1} disk bytes per event ({:.1} live)",
                    stats.written,
                    stats.dropped,
                    bytes as f64 / stats.written.max(1) as f64,
                    store.live_bytes().unwrap() as f64 / stats.written.max(1) as f64
                );
                rec.stop();
            }
            total
        });
    });
    g.finish();
}

/// 400,000 events of 400 devices in one day, in parts of 1 MiB (about 40): a store whose
/// runs are written, and the same store before they are.
fn queries(c: &mut Criterion) {
    let t0: jiff::Timestamp = "2026-11-05T08:00:00Z".parse().unwrap();
    let fill = |dir: &std::path::Path| {
        let options = StoreOptions {
            part_bytes: 1 << 20,
            ..StoreOptions::default()
        };
        let store = Store::open(dir, &options).unwrap();
        let evs: Vec<AccessEvent> = (0..400_000u64)
            .map(|i| {
                let mut e = event(t0 + jiff::SignedDuration::from_millis(i as i64 * 50), i);
                e.device = Some(Arc::from(format!("pc-{:03}", i % 400)));
                e
            })
            .collect();
        for chunk in evs.chunks(BATCH as usize) {
            store.append_events(chunk).unwrap();
        }
        store.flush().unwrap();
        store
    };
    let (with, without) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let runs = fill(with.path());
    assert!(runs.write_device_runs(|| true).unwrap() > 0);
    let parts = fill(without.path());
    let device = EventFilter {
        device: Some("pc-123".into()),
        ..EventFilter::default()
    };
    let site = EventFilter {
        site: Some("www.site4321.example.co.uk".into()),
        ..EventFilter::default()
    };
    assert_eq!(
        runs.events(&device).unwrap(),
        parts.events(&device).unwrap()
    );
    assert_eq!(runs.events(&site).unwrap(), parts.events(&site).unwrap());
    let mut g = c.benchmark_group("store-query");
    g.sample_size(20);
    for (name, filter) in [("one device's day", &device), ("a site search", &site)] {
        g.bench_function(format!("{name}: runs files"), |b| {
            b.iter(|| runs.events(filter).unwrap().len())
        });
        g.bench_function(format!("{name}: baseline, the parts' databases"), |b| {
            b.iter(|| parts.events(filter).unwrap().len())
        });
    }
    g.finish();
}

criterion_group!(benches, append, sustained, queries);
criterion_main!(benches);
