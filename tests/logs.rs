//! The log store end to end: the real binary records DNS queries from a registered device and
//! a DHCP-leased device; `hedgerow logs` and `hedgerow breaches` show them with device name,
//! address, time and category; a high breach reaches a local webhook; export works while the
//! appliance runs and `logs` still works once it is stopped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use hedgerow_testkit::{Appliance, Transport, UpstreamDns, Webhook, query_from};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

fn config(upstream: std::net::SocketAddr, webhook: &str) -> String {
    format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.extremism]
path = "{{dir}}/extremism.txt"
format = "domains"
category = "extremism"

[lists.gambling]
path = "{{dir}}/gambling.txt"
format = "domains"
category = "gambling"

[groups.ks3]
networks = ["127.0.0.0/24"]
block_categories = ["extremism", "gambling"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[[devices]]
name = "Library-PC-3"
ip = "127.0.0.3"
user = "library"

[[leases]]
path = "{{dir}}/dnsmasq.leases"
format = "dnsmasq"

[breaches]
window = "1h"

[[breaches.rules]]
name = "extremism"
categories = ["extremism"]
severity = "high"

[[breaches.rules]]
name = "gambling"
categories = ["gambling"]
severity = "low"

[alerts]
immediate = "high"

[alerts.webhook]
url = "{webhook}"
"#
    )
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Runs a CLI command until its output contains `needle` (the writer flushes every 20 ms).
fn until(app: &Appliance, sub: &[&str], args: &[&str], needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = stdout(&app.cli(sub, args));
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_queries_appear_in_logs_and_breaches_with_the_device() {
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .start()
        .await;
    let webhook = Webhook::start(0);
    let cfg = config(up.addr, &webhook.url);
    let leases = "1999999999 aa:bb:cc:00:00:07 127.0.0.7 chromebook-7 *\n";
    let mut app = tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &cfg,
            &[
                ("extremism.txt", "extreme.example\n"),
                ("gambling.txt", "bet.example\n"),
                ("dnsmasq.leases", leases),
            ],
            &[],
        )
    })
    .await
    .unwrap();

    let ask = |from: [u8; 4], name: &'static str| {
        let server = app.dns_udp;
        async move {
            query_from(
                IpAddr::from(from),
                server,
                Transport::Udp,
                name,
                RecordType::A,
                Some(1232),
            )
            .await
            .unwrap()
        }
    };
    let started = jiff::Timestamp::now();
    assert_eq!(
        ask([127, 0, 0, 3], "extreme.example").await.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        ask([127, 0, 0, 7], "bet.example").await.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        ask([127, 0, 0, 7], "bet.example").await.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(
        ask([127, 0, 0, 7], "allowed.example").await.response_code,
        ResponseCode::NoError
    );

    // The CLI runs are blocking child processes; the upstream keeps serving on the other worker.
    let (logs, pc3, csv, breaches) = tokio::task::block_in_place(|| {
        let all = until(&app, &["logs"], &["--format", "json"], "allowed.example");
        let pc3 = until(
            &app,
            &["logs"],
            &["--device", "Library-PC-3"],
            "extreme.example",
        );
        let csv = stdout(&app.cli(
            &["logs"],
            &[
                "--device",
                "chromebook-7",
                "--verdict",
                "block",
                "--format",
                "csv",
            ],
        ));
        let breaches = until(&app, &["breaches"], &[], "chromebook-7");
        (all, pc3, csv, breaches)
    });

    // Every query is there, with who and what.
    let events: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 4, "{logs}");
    let ext = events
        .iter()
        .find(|e| e["target"] == "extreme.example")
        .unwrap();
    assert_eq!(ext["device"], "Library-PC-3");
    assert_eq!(ext["user"], "library");
    assert_eq!(ext["client"], "127.0.0.3");
    assert_eq!(ext["category"], "extremism");
    assert_eq!(ext["action"], "block");
    let t: jiff::Timestamp = ext["time"].as_str().unwrap().parse().unwrap();
    assert!(t >= started - jiff::SignedDuration::from_secs(1) && t <= jiff::Timestamp::now());
    let allowed = events
        .iter()
        .find(|e| e["target"] == "allowed.example")
        .unwrap();
    assert_eq!(
        allowed["device"], "chromebook-7",
        "named from the DHCP lease"
    );

    // The table for one device, and CSV filtered by verdict.
    assert!(pc3.lines().next().unwrap().starts_with("time"), "{pc3}");
    assert_eq!(pc3.lines().count(), 2, "{pc3}");
    assert!(pc3.contains("127.0.0.3") && pc3.contains("extremism") && pc3.contains("block"));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows.len(),
        3,
        "header and two blocked bet.example queries: {csv}"
    );
    assert!(
        rows[1..]
            .iter()
            .all(|r| r.contains("bet.example") && r.contains(",gambling,"))
    );

    // Breaches: one high for the PC, one low for the Chromebook seen twice.
    assert!(
        breaches.contains("Library-PC-3") && breaches.contains("high"),
        "{breaches}"
    );
    let chromebook = breaches
        .lines()
        .find(|l| l.contains("chromebook-7"))
        .unwrap();
    assert!(
        chromebook.contains("low") && chromebook.contains("bet.example"),
        "{breaches}"
    );
    assert!(chromebook.contains("  2  "), "count 2: {chromebook}");

    // The high one reached the webhook at once; the low one waits for the digest.
    let deadline = Instant::now() + Duration::from_secs(10);
    while webhook.json().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let hooks = webhook.json();
        assert_eq!(hooks.len(), 1, "{hooks:?}");
        assert_eq!(hooks[0]["breach"]["device"], "Library-PC-3");
        assert_eq!(hooks[0]["breach"]["category"], "extremism");
    }
    let id = breaches
        .lines()
        .find(|l| l.contains("Library-PC-3"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();
    let show =
        tokio::task::block_in_place(|| until(&app, &["breaches"], &["show", &id], "webhook sent"));
    assert!(show.contains("webhook sent (1 attempt)"), "{show}");
    assert!(show.contains("site:      extreme.example"), "{show}");

    // Export while running; then stop, and read the store directly.
    let export = app.dir().join("export.jsonl");
    let out =
        tokio::task::block_in_place(|| app.cli(&["export"], &["--out", export.to_str().unwrap()]));
    assert!(stdout(&out).contains("\"events\":4"));
    let lines = std::fs::read_to_string(&export).unwrap();
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains("\"kind\":\"access\""))
            .count(),
        4
    );
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains("\"kind\":\"breach\""))
            .count(),
        2
    );
    app.stop();
    let direct = tokio::task::block_in_place(|| {
        stdout(&app.cli(&["logs"], &["--ip", "127.0.0.7", "--format", "json"]))
    });
    assert_eq!(direct.lines().count(), 3, "{direct}");
}
