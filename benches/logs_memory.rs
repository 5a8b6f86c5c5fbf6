#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Peak memory of `hedgerow logs --limit N --format csv > /dev/null` over a store of millions
//! of events (issue 12), on both paths: the appliance stopped (the command reads the store)
//! and running (the command asks it through its API on `state/api.sock`, and the appliance's own
//! growth is measured too). Beside it, in the same run, the peer: what the command did before
//! it streamed (collect the events, keep each as a JSON line, parse them back, build every
//! row, then print), run as a child process on the same store.
//!
//! `cargo bench --bench logs_memory` (2M events, limits 10k, 100k and 1M); `ROWS=` and
//! `LIMITS=10000,1000000` change the sizes. Peaks are the kernel's high-water mark (`VmHWM`)
//! of each process, read every 2 ms until it exits. Not part of `cargo test`.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hedgerow_model::{AccessEvent, Front, Severity};
use hedgerow_store::{EventFilter, Store, StoreOptions};

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");
/// Set in the child that runs the peer: `STORE_DIR,LIMIT`.
const PEER: &str = "HEDGEROW_LOGS_PEER";

fn main() {
    if let Ok(spec) = std::env::var(PEER) {
        let (dir, limit) = spec.split_once(',').unwrap();
        peer(Path::new(dir), limit.parse().unwrap());
        return;
    }
    let rows: usize = env_or("ROWS", "2000000").parse().unwrap();
    let limits: Vec<usize> = env_or("LIMITS", "10000,100000,1000000")
        .split(',')
        .map(|l| l.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("hedgerow.toml");
    std::fs::write(&config, config_text(&state)).unwrap();
    let check = Command::new(BIN)
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let started = Instant::now();
    fill(&state.join("store"), rows);
    eprintln!("filled {rows} events in {:.1?}", started.elapsed());

    println!("| path | rows asked | rows printed | CSV bytes | peak RSS | time | note |");
    println!("|---|---|---|---|---|---|---|");
    for &limit in &limits {
        let (peak, secs, printed, bytes) = measure(logs_command(&config, limit));
        row(
            "stopped: `hedgerow logs`",
            limit,
            printed,
            bytes,
            peak,
            secs,
            "",
        );
        let mut peer = Command::new(std::env::current_exe().unwrap());
        peer.env(PEER, format!("{},{limit}", state.join("store").display()));
        let (peak, secs, printed, bytes) = measure(peer);
        let held = bytes as f64 / printed.max(1) as f64;
        row(
            "stopped: peer (collect, then print)",
            limit,
            printed,
            bytes,
            peak,
            secs,
            &format!("CSV alone is {:.0} B a row", held),
        );
    }

    // Running: the appliance answers.
    let cfg = std::fs::read_to_string(&config).unwrap();
    let app = hedgerow_testkit::Appliance::start(BIN.as_ref(), &cfg, &[], &[]);
    let app_config = app.config_path();
    for &limit in &limits {
        let before = peak_kib(app.pid());
        let mut command = logs_command(&app_config, limit);
        command.envs(app.reader_token().map(|t| ("HEDGEROW_TOKEN", t)));
        let (peak, secs, printed, bytes) = measure(command);
        let grew = peak_kib(app.pid()).saturating_sub(before);
        row(
            "running: `hedgerow logs`",
            limit,
            printed,
            bytes,
            peak,
            secs,
            &format!("the appliance's peak grew {:.1} MiB", grew as f64 / 1024.0),
        );
    }
    drop(app);
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

fn row(path: &str, asked: usize, printed: usize, bytes: u64, kib: u64, secs: f64, note: &str) {
    println!(
        "| {path} | {asked} | {printed} | {:.1} MB | **{:.1} MiB** | {secs:.2} s | {note} |",
        bytes as f64 / 1e6,
        kib as f64 / 1024.0
    );
    let _ = std::io::stdout().flush();
}

fn config_text(state: &Path) -> String {
    format!(
        r#"
[server]
state_dir = "{}"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "127.0.0.1:9" }}]

[groups.ks3]
networks = ["10.0.0.0/8"]
block_categories = []
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"
"#,
        state.display()
    )
}

fn logs_command(config: &Path, limit: usize) -> Command {
    let mut c = Command::new(BIN);
    c.args(["logs", "--config"]).arg(config).args([
        "--limit",
        &limit.to_string(),
        "--format",
        "csv",
    ]);
    c
}

/// A school's mix: DNS queries from 300 devices over 5,000 names, and one request in five
/// through the proxy, some of them searches.
fn fill(dir: &Path, n: usize) {
    let store = Store::open(dir, &StoreOptions::default()).unwrap();
    let now = jiff::Timestamp::now();
    let mut batch = Vec::with_capacity(4096);
    for i in 0..n {
        let t = now - jiff::SignedDuration::from_micros(((n - i) * 1000) as i64);
        let client = IpAddr::from([10, 20, (i % 300 / 250) as u8, (i % 250) as u8]);
        let mut e = if i % 5 == 0 {
            let mut e = AccessEvent::new(
                t,
                Front::Proxy,
                client,
                format!("https://www.site{}.example.co.uk/page/{}", i % 5000, i % 97),
            );
            e.method = Some("GET".into());
            if i % 25 == 0 {
                e.target = format!("https://www.google.com/search?q=homework+{}", i % 1000);
                e.search = Some(format!("homework {}", i % 1000).into());
                e.concern = (i % 1000 == 0).then_some(Severity::Medium);
            }
            e
        } else {
            let mut e = AccessEvent::new(
                t,
                Front::Dns,
                client,
                format!("www.site{}.example.co.uk", i % 5000),
            );
            e.qtype = Some("A".into());
            e
        };
        e.device = Some(Arc::from(format!("KS3-Laptop-{:03}", i % 300)));
        e.group = Some(Arc::from("ks3"));
        batch.push(e);
        if batch.len() == batch.capacity() {
            store.append_events(&batch).unwrap();
            batch.clear();
        }
    }
    store.append_events(&batch).unwrap();
    store.flush().unwrap();
}

/// Runs `cmd` with its output counted and thrown away; returns its peak memory (KiB), the
/// seconds it took, and the lines and bytes it printed.
fn measure(mut cmd: Command) -> (u64, f64, usize, u64) {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut out = child.stdout.take().unwrap();
    let counter = std::thread::spawn(move || {
        use std::io::Read;
        let (mut lines, mut bytes, mut buf) = (0usize, 0u64, vec![0u8; 1 << 16]);
        loop {
            let k = out.read(&mut buf).unwrap();
            if k == 0 {
                return (lines, bytes);
            }
            lines += buf[..k].iter().filter(|&&b| b == b'\n').count();
            bytes += k as u64;
        }
    });
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_kib(pid));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(child.wait().unwrap().success(), "{cmd:?} failed");
    let secs = started.elapsed().as_secs_f64();
    let (lines, bytes) = counter.join().unwrap();
    // Less the header.
    (peak, secs, lines.saturating_sub(1), bytes)
}

fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The command as it was before it streamed: the store's answer collected, each event kept
/// as its JSON line, the lines parsed back, every row built, then the CSV printed.
fn peer(dir: &Path, limit: usize) {
    let store = Store::open(dir, &StoreOptions::default()).unwrap();
    let filter = EventFilter {
        limit: Some(limit),
        ..Default::default()
    };
    let lines: Vec<String> = store
        .events(&filter)
        .unwrap()
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    let events: Vec<AccessEvent> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let opt = |o: Option<&str>| o.unwrap_or("-").to_owned();
            vec![
                e.time.to_string(),
                format!("{:?}", e.front).to_lowercase(),
                e.client.to_string(),
                opt(e.device.as_deref()),
                opt(e.user.as_deref()),
                opt(e.group.as_deref()),
                e.target.clone(),
                opt(e.qtype.as_deref().or(e.method.as_deref())),
                e.action.to_string(),
                opt(e.category.as_ref().map(|c| c.as_str())),
                e.tier.to_string(),
                opt(e.search.as_deref()),
                e.reference.map_or("-".into(), |r| format!("{r:016x}")),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "time,front,client,device,user,group,target,type,verdict,category,tier,search,reference"
    )
    .unwrap();
    for r in &rows {
        writeln!(out, "{}", r.join(",")).unwrap();
    }
}
