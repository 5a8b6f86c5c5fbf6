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
    tokio::task::spawn_blocking(move || {
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        Appliance::start(BIN.as_ref(), &cfg, &files, &[])
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
    let app = start(
        cfg,
        vec![
            ("ca.pem", ca.cert_pem()),
            ("adult.token", "lists-user:s3cret\n".into()),
        ],
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
    assert!(!origin.requests("/iwf.txt")[0].contains("authorization"));
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
