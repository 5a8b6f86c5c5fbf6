//! Operations end to end (issue 18): lists that keep themselves current, downloaded from a
//! local HTTPS origin (a test CA); Prometheus metrics and health checks scraped during real
//! traffic; a SIGTERM that drains what is in flight; the `system` upstream read from a
//! resolv.conf. The real binary, real DNS packets, a real store. No test sends anything
//! beyond loopback: the `system` tests write their own resolv.conf naming a loopback fixture.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hedgerow_testkit::{
    Appliance, ListOrigin, Reply, RunningUpstream, TestCa, Transport, UpstreamDns, Webhook, query,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

async fn upstream() -> RunningUpstream {
    let mut u = UpstreamDns::new().a("fine.example", Ipv4Addr::new(192, 0, 2, 1));
    for n in ["adult-a", "adult-b", "adult-c", "adult-d", "bet"] {
        u = u.a(&format!("{n}.example"), Ipv4Addr::new(192, 0, 2, 2));
    }
    for i in 0..11 {
        u = u.a(&format!("iwf-{i}.example"), Ipv4Addr::new(192, 0, 2, 3));
    }
    u.start().await
}

async fn start(cfg: String, files: Vec<(&'static str, String)>) -> Appliance {
    start_env(cfg, files, Vec::new()).await
}

async fn start_env(
    cfg: String,
    files: Vec<(&'static str, String)>,
    env: Vec<(&'static str, String)>,
) -> Appliance {
    tokio::task::spawn_blocking(move || {
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(n, t)| (*n, t.as_str())).collect();
        Appliance::start(BIN.as_ref(), &cfg, &files, &env)
    })
    .await
    .unwrap()
}

/// The answer's code for `name`/A; `None` when nothing answers.
async fn ask(app: &Appliance, name: &str) -> Option<ResponseCode> {
    query(app.dns_udp, Transport::Udp, name, RecordType::A)
        .await
        .map(|m| m.metadata.response_code)
}

/// Waits up to `secs` for `check` to hold, polling every 100 ms.
async fn until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The kept status of downloaded list `name` (`STATE/lists/NAME.json`).
fn status(app: &Appliance, name: &str) -> serde_json::Value {
    let path = app.dir().join(format!("state/lists/{name}.json"));
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn result(app: &Appliance, name: &str) -> String {
    status(app, name)["result"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn domains(prefix: &str, n: std::ops::Range<usize>) -> String {
    n.map(|i| format!("{prefix}-{i}.example\n")).collect()
}

/// Sends a query every 20 ms until stopped; counts those that got no answer.
fn keep_asking(server: SocketAddr) -> (Arc<AtomicBool>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (asked, lost) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, a, l) = (stop.clone(), asked.clone(), lost.clone());
    tokio::spawn(async move {
        while !s.load(Ordering::SeqCst) {
            let r = query(server, Transport::Udp, "fine.example", RecordType::A).await;
            a.fetch_add(1, Ordering::SeqCst);
            if r.map(|m| m.metadata.response_code) != Some(ResponseCode::NoError) {
                l.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (stop, asked, lost)
}

// === lists that keep themselves current ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn downloaded_lists_update_verify_and_keep_the_last_good_copy() {
    let ca = TestCa::new("list origin CA");
    let origin = ListOrigin::start(&ca).await;
    let key = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let other = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
    let sign = |kp: &minisign::KeyPair, body: &str| {
        minisign::sign(Some(&kp.pk), &kp.sk, body.as_bytes(), Some("test"), None)
            .unwrap()
            .into_string()
    };
    let adult_v1 = "adult-a.example\nadult-b.example\nadult-c.example\n";
    origin.set("/adult.txt", Reply::ok(adult_v1, "\"v1\""));
    let iwf_v1 = domains("iwf", 0..10);
    origin.set("/iwf.txt", Reply::ok(iwf_v1.clone(), "\"i1\""));
    origin.set("/iwf.txt.minisig", Reply::ok(sign(&key, &iwf_v1), "\"s1\""));
    let hook = Webhook::start(0);
    let up = upstream().await;
    let cfg = format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{up}" }}]
rate_limit_qps = 0
cache = {{ size = 0 }}

[lists.iwf]
url = "{iwf}"
every = "1s"
max_age = "4s"
ca_file = "{{dir}}/ca.pem"
credential = "iwf-token"
minisign_key = "{pk}"
format = "domains"
kind = "illegal"
category = "child-abuse"

[lists.adult]
url = "{adult}"
every = "1s"
max_age = "1h"
ca_file = "{{dir}}/ca.pem"
credentials_file = "{{dir}}/adult.token"
min_entries = 2
format = "domains"
category = "adult"

[lists.never]
url = "{never}"
every = "1s"
max_age = "2s"
ca_file = "{{dir}}/ca.pem"
format = "domains"
category = "gambling"

[groups.pupils]
networks = ["127.0.0.0/8"]
block_categories = ["adult", "gambling"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[alerts]
attempts = 1

[alerts.webhook]
url = "{hook}"
"#,
        up = up.addr,
        iwf = origin.url("/iwf.txt"),
        adult = origin.url("/adult.txt"),
        never = origin.url("/never.txt"),
        pk = key.pk.to_base64(),
        hook = hook.url,
    );
    // The IWF list's token as systemd passes credentials: a file in $CREDENTIALS_DIRECTORY.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("iwf-token"), "t0ken-for-iwf\n").unwrap();
    let app = start_env(
        cfg,
        vec![
            ("ca.pem", ca.cert_pem()),
            ("adult.token", "lists-user:s3cret\n".into()),
        ],
        vec![("CREDENTIALS_DIRECTORY", creds.path().display().to_string())],
    )
    .await;
    // First start: both downloaded before the policy was built; the credential was sent.
    assert_eq!(
        ask(&app, "adult-a.example").await,
        Some(ResponseCode::NXDomain)
    );
    assert_eq!(
        ask(&app, "iwf-3.example").await,
        Some(ResponseCode::NXDomain)
    );
    assert_eq!(ask(&app, "fine.example").await, Some(ResponseCode::NoError));
    assert_eq!(
        ask(&app, "adult-d.example").await,
        Some(ResponseCode::NoError)
    );
    let basic = "authorization: basic bglzdhmtdxnlcjpzm2nyzxq=";
    assert!(
        origin.requests("/adult.txt")[0].contains(basic),
        "{:?}",
        origin.requests("/adult.txt")
    );
    assert!(origin.requests("/iwf.txt")[0].contains("authorization: bearer t0ken-for-iwf"));
    assert!(
        !app.logs().contains("t0ken") && !app.logs().contains("s3cret"),
        "a secret in the log"
    );
    let (stop, asked, lost) = keep_asking(app.dns_udp);

    // 304: the next requests carry the ETag and are answered Not Modified.
    until(10, "a 304 for the adult list", || async {
        result(&app, "adult") == "ok: not modified"
    })
    .await;
    assert!(
        origin
            .requests("/adult.txt")
            .iter()
            .any(|h| h.contains("if-none-match: \"v1\""))
    );
    assert_eq!(status(&app, "adult")["entries"], 3);

    // A normal update: in force with the next reload; a removed entry is no longer blocked.
    origin.set(
        "/adult.txt",
        Reply::ok(
            "adult-b.example\nadult-c.example\nadult-d.example\n",
            "\"v2\"",
        ),
    );
    until(15, "the new adult list in force", || async {
        ask(&app, "adult-d.example").await == Some(ResponseCode::NXDomain)
    })
    .await;
    assert_eq!(
        ask(&app, "adult-a.example").await,
        Some(ResponseCode::NoError)
    );
    assert!(
        app.logs().contains("downloaded lists in force: adult"),
        "{}",
        app.logs()
    );

    // Each failure keeps the last good copy and says why.
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::status(500), "failed: the origin answered 500"),
        (
            Reply {
                cut_at: Some(20),
                ..Reply::ok(domains("adult", 0..40), "\"v3\"")
            },
            "failed: the body ended early",
        ),
        (Reply::ok("", "\"v4\""), "fewer than min_entries (2)"),
    ];
    for (reply, want) in cases {
        origin.set("/adult.txt", reply);
        until(15, want, || async { result(&app, "adult").contains(want) }).await;
        assert!(result(&app, "adult").contains("the last good copy stays in force"));
        assert_eq!(
            ask(&app, "adult-d.example").await,
            Some(ResponseCode::NXDomain),
            "{want}"
        );
        assert_eq!(
            ask(&app, "adult-a.example").await,
            Some(ResponseCode::NoError),
            "{want}"
        );
    }

    // The illegal tier: a bad signature, then a correctly signed list 90% smaller.
    let iwf_v2 = domains("iwf", 0..11);
    origin.set("/iwf.txt", Reply::ok(iwf_v2.clone(), "\"i2\""));
    origin.set(
        "/iwf.txt.minisig",
        Reply::ok(sign(&other, &iwf_v2), "\"s2\""),
    );
    until(15, "a bad signature refused", || async {
        result(&app, "iwf").contains("signature does not verify")
    })
    .await;
    let iwf_v3 = domains("iwf", 9..10);
    origin.set("/iwf.txt", Reply::ok(iwf_v3.clone(), "\"i3\""));
    origin.set("/iwf.txt.minisig", Reply::ok(sign(&key, &iwf_v3), "\"s3\""));
    until(15, "a shrunk illegal list refused", || async {
        result(&app, "iwf").contains("shrank from 10 to 1 entries")
    })
    .await;
    for i in 0..10 {
        let name = format!("iwf-{i}.example");
        assert_eq!(
            ask(&app, &name).await,
            Some(ResponseCode::NXDomain),
            "{name}"
        );
    }
    assert_eq!(
        ask(&app, "iwf-10.example").await,
        Some(ResponseCode::NoError)
    );
    // Refused downloads of the illegal tier are critical alerts at once; a list not confirmed
    // within max_age is one too (critical for the illegal tier, high otherwise).
    until(20, "alerts for the refused and stale lists", || async {
        let kinds: Vec<(String, String)> = hook
            .json()
            .iter()
            .map(|j| {
                (
                    j["kind"].as_str().unwrap_or("").to_owned(),
                    j["severity"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        kinds.contains(&("list-refused".into(), "critical".into()))
            && kinds.contains(&("list-stale".into(), "critical".into()))
            && kinds.contains(&("list-stale".into(), "high".into()))
    })
    .await;
    let alerts = hook.json();
    let text = serde_json::to_string(&alerts).unwrap();
    assert!(
        text.contains("\\\"never\\\"") || text.contains("never"),
        "{text}"
    );
    assert!(
        !text.contains("iwf-3.example"),
        "no illegal-tier entry in an alert: {text}"
    );

    // `hedgerow lists status`: every list with its source, entries, last attempt and result.
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(BIN)
            .args(["lists", "status", "--json", "--config"])
            .arg(app.config_path())
            .output()
            .unwrap()
    });
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |n: &str| rows.iter().find(|r| r["list"] == n).unwrap().clone();
    assert_eq!(row("adult")["entries"], 3);
    assert_eq!(row("adult")["source"], origin.url("/adult.txt"));
    assert!(
        row("adult")["result"]
            .as_str()
            .unwrap()
            .starts_with("failed")
    );
    assert!(row("adult")["last_attempt"].is_string());
    assert_eq!(row("iwf")["entries"], 10);
    assert_eq!(row("never")["in_force"], false);
    assert!(
        row("never")["result"].as_str().unwrap().contains("404"),
        "{:?}",
        row("never")
    );
    assert_eq!(row("never")["stale"], true);
    let table = tokio::task::block_in_place(|| {
        std::process::Command::new(BIN)
            .args(["lists", "status", "--config"])
            .arg(app.config_path())
            .output()
            .unwrap()
    });
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("LIST") && table.contains("(STALE)"),
        "{table}"
    );

    // DNS was answered throughout.
    stop.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(asked.load(Ordering::SeqCst) > 50);
    assert_eq!(
        lost.load(Ordering::SeqCst),
        0,
        "queries lost during list updates"
    );
}

// === metrics and health ===

/// `GET path` on `addr` over plain HTTP/1.1: the status code and body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// The sum of the samples of `name` whose labels include every one of `labels`; `None` when
/// there is none.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, l) = key.split_once('{').unwrap_or((key, ""));
        if n != name
            || !labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        *found.get_or_insert(0.0) += value.parse::<f64>().unwrap();
    }
    found
}

fn scrape(addr: SocketAddr) -> String {
    let (code, body) = http_get(addr, "/metrics");
    assert_eq!(code, 200);
    body
}

/// A raw proxy request for `url`; the status code of the reply.
async fn proxy_get(proxy: SocketAddr, url: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let host = url.split('/').nth(2).unwrap();
    s.write_all(
        format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text).await;
    String::from_utf8_lossy(&text)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

const POLICY: &str = r#"
[lists.iwf]
path = "{dir}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.adult]
path = "{dir}/adult.txt"
format = "domains"
category = "adult"

[groups.pupils]
networks = ["127.0.0.0/8"]
block_categories = ["adult"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"
"#;

fn policy_files() -> Vec<(&'static str, String)> {
    vec![
        ("iwf.txt", "http://iwf-test.invalid/a.html\n".into()),
        ("adult.txt", "adult-a.example\n".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_count_the_traffic_by_outcome_and_health_says_ready() {
    let up = upstream().await;
    let hook = Webhook::start(0);
    let (hole, _hole_task) = hedgerow_testkit::black_hole().await;
    let cfg = format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{hole}" }}, {{ address = "{up}" }}]
timeout = "2s"
rate_limit_qps = 0

[proxy]
listen = ["127.0.0.1:0"]

[metrics]
listen = ["127.0.0.1:0"]

[[breaches.rules]]
name = "adult content"
categories = ["adult"]
severity = "high"

[alerts]
immediate = "high"
attempts = 1

[alerts.webhook]
url = "{hook}"
{POLICY}"#,
        up = up.addr,
        hook = hook.url,
    );
    let app = start(cfg, policy_files()).await;
    let addr = app.listeners("listening for metrics on ")[0];
    assert_eq!(http_get(addr, "/health/live"), (200, "live\n".into()));
    assert_eq!(http_get(addr, "/health/ready"), (200, "ready\n".into()));
    assert_eq!(http_get(addr, "/nothing").0, 404);
    let before = scrape(addr);
    assert_eq!(
        metric(&before, "hedgerow_list_entries", &[("list", "adult")]),
        Some(1.0)
    );
    assert_eq!(metric(&before, "hedgerow_blocks_total", &[]), None);

    let (stop, asked, lost) = keep_asking(app.dns_udp);
    // The first answer for fine.example waits out the black hole (a failed upstream), then
    // comes from the cache.
    for _ in 0..3 {
        assert_eq!(
            ask(&app, "adult-a.example").await,
            Some(ResponseCode::NXDomain)
        );
    }
    let proxy = app.proxy.unwrap();
    assert_eq!(proxy_get(proxy, "http://adult-a.example/page").await, 403);
    // The first answer for fine.example waits out the black hole (up to the 2 s timeout):
    // scrape once a few more have come back from the cache.
    let deadline = Instant::now() + Duration::from_secs(15);
    while asked.load(Ordering::SeqCst) < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let during = scrape(addr);
    stop.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(lost.load(Ordering::SeqCst), 0);

    let m = |name: &str, labels: &[(&str, &str)]| metric(&during, name, labels).unwrap_or(0.0);
    // Blocks by group and category: the three DNS blocks and the proxy's; the allowed
    // queries (many) are not among them.
    assert_eq!(
        m(
            "hedgerow_blocks_total",
            &[("group", "pupils"), ("category", "adult")]
        ),
        4.0,
        "{during}"
    );
    assert_eq!(m("hedgerow_blocks_total", &[]), 4.0);
    assert_eq!(
        m("hedgerow_dns_answers_total", &[("outcome", "blocked")]),
        3.0
    );
    assert!(
        m("hedgerow_dns_upstream_queries_total", &[]) >= 1.0,
        "{during}"
    );
    assert_eq!(
        m("hedgerow_dns_answers_total", &[("outcome", "servfail")]),
        0.0
    );
    assert!(m("hedgerow_dns_queries_total", &[]) >= 8.0, "{during}");
    assert!(m("hedgerow_dns_cache_hits_total", &[]) >= 4.0, "{during}");
    assert!(
        m("hedgerow_dns_upstream_seconds_count", &[]) >= 1.0,
        "{during}"
    );
    let hole_s = hole.to_string();
    assert!(
        m(
            "hedgerow_dns_upstream_failures_total",
            &[("upstream", hole_s.as_str()), ("reason", "timeout")]
        ) >= 1.0,
        "{during}"
    );
    assert_eq!(
        m("hedgerow_proxy_requests_total", &[("outcome", "blocked")]),
        1.0,
        "{during}"
    );
    assert_eq!(
        m("hedgerow_proxy_requests_total", &[("outcome", "forwarded")]),
        0.0
    );
    assert!(m("hedgerow_store_bytes", &[]) > 0.0);
    assert_eq!(m("hedgerow_events_dropped_total", &[]), 0.0);
    assert!(during.contains("# HELP hedgerow_blocks_total"));

    // Events recorded reach the count of queries and requests answered; a reload is counted.
    until(10, "events recorded", || async {
        let now = scrape(addr);
        metric(&now, "hedgerow_events_recorded_total", &[]).unwrap_or(0.0)
            >= metric(&during, "hedgerow_dns_queries_total", &[]).unwrap() + 1.0
    })
    .await;
    // The breach (one: the same device and site) and its alert, sent.
    until(10, "a breach and its alert counted", || async {
        let now = scrape(addr);
        metric(&now, "hedgerow_breaches_total", &[("severity", "high")]) == Some(1.0)
            && metric(
                &now,
                "hedgerow_alerts_total",
                &[("channel", "webhook"), ("result", "sent")],
            )
            .unwrap_or(0.0)
                >= 1.0
    })
    .await;
    assert_eq!(
        metric(
            &scrape(addr),
            "hedgerow_breaches_total",
            &[("severity", "medium")]
        ),
        None
    );
    assert!(!hook.json().is_empty());
    app.sighup();
    until(10, "a reload counted", || async {
        metric(&scrape(addr), "hedgerow_reloads_total", &[("result", "ok")]) == Some(1.0)
    })
    .await;
}

// === shutdown ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_traffic_keeps_an_event_for_every_answer() {
    let up = upstream().await;
    let cfg = format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{up}" }}]
rate_limit_qps = 0
{POLICY}"#,
        up = up.addr,
    );
    let mut app = start(cfg, policy_files()).await;
    let server = app.dns_udp;
    // Four clients asking names never asked before (each a cache miss, so answered by a task
    // waiting on the upstream), and blocked names (answered inline).
    let answered = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (answered, stop) = (answered.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let name = if n % 3 == 0 {
                    format!("x{c}-{n}.adult-a.example")
                } else {
                    format!("q{c}-{n}.fine.example")
                };
                let r = hedgerow_testkit::query_with(
                    server,
                    Transport::Udp,
                    &name,
                    RecordType::A,
                    Some(1232),
                )
                .await;
                if r.is_some() {
                    answered.lock().unwrap().push(name);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    tokio::task::block_in_place(|| app.stop());
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() > 100, "only {} answered", answered.len());
    assert!(app.logs().contains("stopping"), "{}", app.logs());
    // Stopped: `logs` opens the store itself.
    let events = app.events(answered.len(), Duration::from_secs(5));
    let targets: std::collections::HashSet<String> = events
        .iter()
        .map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).unwrap();
            j["target"].as_str().unwrap().to_owned()
        })
        .collect();
    let missing: Vec<&String> = answered.iter().filter(|n| !targets.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "{} answered queries have no event: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

// === the embedded default answers: upstream "system" ===

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn system_upstream_reads_resolv_conf_and_skips_our_own_address() {
    // A nameserver on port 53, as resolv.conf names them (root, which the tests run as), on a
    // loopback address of its own; Hedgerow listens on another. Nothing leaves loopback.
    let fixture: SocketAddr = "127.0.53.7:53".parse().unwrap();
    let ours = "127.0.54.1:53";
    if let Err(e) = std::net::UdpSocket::bind(fixture) {
        println!(
            "SKIPPED: cannot bind {fixture} ({e}); needs root, as a resolv.conf nameserver is on port 53"
        );
        return;
    }
    let up = UpstreamDns::new()
        .a("fine.example", Ipv4Addr::new(192, 0, 2, 1))
        .start_on(fixture)
        .await;
    let cfg = format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["{ours}"]
resolv_conf = "{{dir}}/resolv.conf"
upstreams = [{{ address = "system" }}]
rate_limit_qps = 0
{POLICY}"#
    );
    let mut files = policy_files();
    files.push((
        "resolv.conf",
        "# test\nnameserver 127.0.54.1\nnameserver 127.0.53.7\noptions edns0\n".into(),
    ));
    let app = start(cfg, files).await;
    let line = app
        .wait_for("DNS upstreams from ", Duration::from_secs(1))
        .unwrap();
    assert!(
        line.contains("resolv.conf: 127.0.53.7:53; skipped as Hedgerow's own: 127.0.54.1:53"),
        "{line}"
    );
    let m = query(app.dns_udp, Transport::Udp, "fine.example", RecordType::A)
        .await
        .unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(up.asked().len(), 1, "asked the resolv.conf nameserver once");
    // Blocks still block: the upstream is only asked what the policy allows.
    assert_eq!(
        ask(&app, "adult-a.example").await,
        Some(ResponseCode::NXDomain)
    );
    assert_eq!(up.asked().len(), 1);
}

#[test]
fn a_resolv_conf_naming_only_hedgerow_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        r#"
[server]
state_dir = "{d}/state"

[dns]
listen = ["127.0.54.2:53"]
resolv_conf = "{d}/resolv.conf"
upstreams = [{{ address = "system" }}]
{policy}"#,
        d = dir.path().display(),
        policy = POLICY.replace("{dir}", &dir.path().display().to_string())
    );
    for (name, text) in policy_files() {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.54.2\n").unwrap();
    std::fs::write(dir.path().join("hedgerow.toml"), cfg).unwrap();
    let out = std::process::Command::new(BIN)
        .arg("check-config")
        .arg(dir.path().join("hedgerow.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            "names no nameserver other than Hedgerow's own listen addresses (skipped 127.0.54.2:53)"
        ),
        "{err}"
    );
}
