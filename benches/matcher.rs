//! Matcher benchmark: build time, memory per name and lookup time at 1 million and 5 million
//! synthetic names (and the shared category lists when present), each beside a peer measured
//! in the same run: a `std::collections::HashSet<String>` walking the same suffixes, which is
//! what a straightforward implementation holds.
//!
//! Run: `cargo bench --bench matcher` (HEDGEROW_BENCH_SCALES=1000000 to skip 5 million).
//! Memory is read from the allocator's view of the process (`/proc/self/statm` resident pages
//! before and after a build, with the list text freed) and printed as bytes per name.

// A benchmark harness: a failure to set up should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hedgerow_matcher::{ListSpec, Matcher, MatcherBuilder};
use hedgerow_model::{Category, Host, ListFormat, ListKind, Severity, UrlMatch};

/// splitmix64: a fixed-seed generator so every run lists the same names.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn label(&mut self, out: &mut String) {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let len = 5 + (self.next() % 8) as usize;
        for _ in 0..len {
            out.push(ALPHABET[(self.next() % ALPHABET.len() as u64) as usize] as char);
        }
    }

    /// `label.label.tld` names, as most blocklist entries are.
    fn name(&mut self) -> String {
        let mut s = String::with_capacity(32);
        self.label(&mut s);
        s.push('.');
        self.label(&mut s);
        s.push('.');
        s.push_str(["com", "net", "org", "xyz", "co.uk"][(self.next() % 5) as usize]);
        s
    }
}

fn spec() -> ListSpec {
    ListSpec {
        name: "synthetic".into(),
        kind: ListKind::Block,
        format: ListFormat::Domains,
        category: Category::new("synthetic").ok(),
        url_match: UrlMatch::Prefix,
        severity: Severity::Medium,
    }
}

fn write_list(dir: &Path, n: usize) -> (PathBuf, Vec<String>) {
    let path = dir.join(format!("synthetic-{n}.txt"));
    let mut rng = Rng(n as u64);
    let mut sample = Vec::new();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create list"));
    for i in 0..n {
        let name = rng.name();
        writeln!(out, "{name}").expect("write list");
        if i % (n / 4096).max(1) == 0 {
            sample.push(name);
        }
    }
    out.flush().expect("flush list");
    (path, sample)
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn build_matcher(path: &Path) -> Matcher {
    let mut b = MatcherBuilder::new();
    b.add_file(spec(), path).expect("load list");
    b.build().expect("build matcher")
}

fn build_peer(path: &Path) -> HashSet<String> {
    std::fs::read_to_string(path)
        .expect("read list")
        .lines()
        .map(|l| l.trim().to_ascii_lowercase())
        .collect()
}

fn peer_lookup(set: &HashSet<String>, host: &Host) -> bool {
    host.suffixes().any(|s| set.contains(s))
}

fn matcher_lookup(m: &Matcher, host: &Host) -> bool {
    let mut hit = false;
    m.host_hits(host, |_| hit = true);
    hit
}

struct Queries {
    exact: Vec<Host>,
    subdomain: Vec<Host>,
    miss: Vec<Host>,
}

fn queries(sample: &[String]) -> Queries {
    let mut rng = Rng(0xfeed);
    let mut miss = Vec::new();
    for _ in 0..sample.len() {
        let mut s = String::new();
        for _ in 0..4 {
            rng.label(&mut s);
            s.push('.');
        }
        s.push_str("com");
        miss.push(Host::parse(&s).expect("host"));
    }
    Queries {
        exact: sample
            .iter()
            .map(|s| Host::parse(s).expect("host"))
            .collect(),
        // Two labels in front of a three-label entry: five labels (six for co.uk).
        subdomain: sample
            .iter()
            .map(|s| Host::parse(&format!("www.cdn.{s}")).expect("host"))
            .collect(),
        miss,
    }
}

fn scales() -> Vec<usize> {
    std::env::var("HEDGEROW_BENCH_SCALES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000_000, 5_000_000])
}

fn bench_scale(c: &mut Criterion, dir: &Path, n: usize) {
    let (path, sample) = write_list(dir, n);

    // Memory: resident growth of one build, list text already freed by the loader.
    let before = resident_bytes();
    let started = Instant::now();
    let matcher = build_matcher(&path);
    let once = started.elapsed();
    let grown = resident_bytes().saturating_sub(before);
    let stats = matcher.stats();
    let before_peer = resident_bytes();
    let started = Instant::now();
    let peer = build_peer(&path);
    let peer_once = started.elapsed();
    let peer_grown = resident_bytes().saturating_sub(before_peer);
    println!(
        "scale {n}: hedgerow {} names, {:.1} bytes/name (structure), {:.1} bytes/name (RSS growth), first build {:.0} ms | peer HashSet<String> {:.1} bytes/name (RSS growth), first build {:.0} ms",
        stats.domains,
        stats.domain_bytes as f64 / stats.domains as f64,
        grown as f64 / stats.domains as f64,
        once.as_secs_f64() * 1e3,
        peer_grown as f64 / peer.len() as f64,
        peer_once.as_secs_f64() * 1e3,
    );

    let q = queries(&sample);
    // No false positives: every miss query must miss, every hit must hit, in both.
    for h in &q.miss {
        assert!(
            !matcher_lookup(&matcher, h) && !peer_lookup(&peer, h),
            "false positive {h}"
        );
    }
    for h in q.exact.iter().chain(&q.subdomain) {
        assert!(
            matcher_lookup(&matcher, h) && peer_lookup(&peer, h),
            "missed {h}"
        );
    }

    let mut g = c.benchmark_group(format!("lookup/{n}"));
    g.throughput(Throughput::Elements(1));
    for (kind, hosts) in [
        ("exact", &q.exact),
        ("subdomain-5-labels", &q.subdomain),
        ("miss-5-labels", &q.miss),
    ] {
        let mut i = 0;
        g.bench_function(BenchmarkId::new("hedgerow", kind), |b| {
            b.iter(|| {
                i = (i + 1) % hosts.len();
                black_box(matcher_lookup(&matcher, black_box(&hosts[i])))
            })
        });
        let mut i = 0;
        g.bench_function(BenchmarkId::new("peer-hashset", kind), |b| {
            b.iter(|| {
                i = (i + 1) % hosts.len();
                black_box(peer_lookup(&peer, black_box(&hosts[i])))
            })
        });
    }
    g.finish();
    drop(peer);
    drop(matcher);

    let mut g = c.benchmark_group(format!("build/{n}"));
    g.sample_size(10);
    g.bench_function("hedgerow", |b| b.iter(|| black_box(build_matcher(&path))));
    g.bench_function("peer-hashset", |b| b.iter(|| black_box(build_peer(&path))));
    g.finish();
}

fn shared_categories() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/categories");
    dir.is_dir().then_some(dir)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in scales() {
        bench_scale(c, dir.path(), n);
    }
    match shared_categories() {
        Some(cats) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&cats)
                .expect("read categories")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p.to_string_lossy();
                    (n.ends_with(".txt") || n.ends_with(".txt.gz")) && !n.ends_with(".urls.txt")
                })
                .collect();
            files.sort();
            let mut g = c.benchmark_group("build/shared-categories");
            g.sample_size(10);
            g.bench_function("hedgerow", |b| {
                b.iter(|| {
                    let mut m = MatcherBuilder::new();
                    for f in &files {
                        m.add_file(spec(), f).expect("load");
                    }
                    black_box(m.build().expect("build"))
                })
            });
            g.finish();
        }
        None => println!("SKIPPED shared categories: ../shared/data/categories not found"),
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
