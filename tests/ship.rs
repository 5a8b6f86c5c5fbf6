//! Issue 18, log shipping, end to end through the real binary: access events and breaches
//! reach a real ClickHouse server (Debian's `clickhouse-server`, tables made from
//! `docs/clickhouse-schema.sql`) and a real rsyslog (`imtcp`, octet-counted RFC 5424), both
//! started here on loopback; an illegal-tier hit arrives protected, never in clear, while an
//! ordinary name arrives as asked; and with both destinations down the appliance keeps
//! answering and counts what it dropped.
//!
//! Needs `clickhouse-server` and `rsyslog` (Debian packages; `.ci/run` installs them); each
//! test prints `SKIPPED` without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hedgerow_testkit::{
    Appliance, ClickHouse, Rsyslog, Transport, UpstreamDns, free_port, query_from,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// The name on the police list in this test. It must never reach a destination.
const ILLEGAL: &str = "terror-test.invalid";

fn config(upstream: SocketAddr, ship: &str) -> String {
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

[lists.police]
path = "{{dir}}/police.txt"
format = "domains"
kind = "illegal"
category = "terrorism"

[lists.extremism]
path = "{{dir}}/extremism.txt"
format = "domains"
category = "extremism"

[groups.ks3]
networks = ["127.0.0.0/24"]
block_categories = ["extremism"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[[devices]]
name = "Library-PC-3"
ip = "127.0.0.1"

[[breaches.rules]]
name = "extremism"
categories = ["extremism"]
severity = "high"

{ship}
"#
    )
}

const FILES: [(&str, &str); 3] = [
    ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
    ("police.txt", "terror-test.invalid\n"),
    ("extremism.txt", "extreme.example\n"),
];

fn skip() -> bool {
    if !ClickHouse::available() || !Rsyslog::available() {
        eprintln!(
            "SKIPPED: needs Debian's clickhouse-server and rsyslog (apt-get install clickhouse-server rsyslog)"
        );
        return true;
    }
    false
}

async fn dns(app: &Appliance, name: &str) -> ResponseCode {
    query_from(
        IpAddr::from([127, 0, 0, 1]),
        app.dns_udp,
        Transport::Udp,
        name,
        RecordType::A,
        Some(1232),
    )
    .await
    .expect("an answer")
    .response_code
}

/// Runs `sql` until its answer contains every one of `needles` (or 20 s pass); the answer.
fn until(ch: &ClickHouse, sql: &str, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = ch.query(sql);
        if needles.iter().all(|n| text.contains(n)) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rows(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn events_and_breaches_reach_clickhouse_and_syslog_with_the_illegal_tier_protected() {
    if skip() {
        return;
    }
    let ch = tokio::task::spawn_blocking(ClickHouse::start)
        .await
        .unwrap();
    let schema = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/clickhouse-schema.sql"),
    )
    .unwrap();
    ch.run_script(&schema);
    let syslog = tokio::task::spawn_blocking(Rsyslog::start).await.unwrap();
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::LOCALHOST)
        .start()
        .await;
    let ship = format!(
        r#"
[ship]
appliance = "st-marys"

[ship.clickhouse]
url = "{}"
flush_interval = "200ms"

[ship.syslog]
address = "{}"
"#,
        ch.url(),
        syslog.addr
    );
    let cfg = config(up.addr, &ship);
    let app =
        tokio::task::spawn_blocking(move || Appliance::start(BIN.as_ref(), &cfg, &FILES, &[]))
            .await
            .unwrap();

    assert_eq!(dns(&app, "allowed.example").await, ResponseCode::NoError);
    assert_eq!(dns(&app, "extreme.example").await, ResponseCode::NXDomain);
    assert_eq!(dns(&app, ILLEGAL).await, ResponseCode::NXDomain);

    // ClickHouse: every access event, in the documented table.
    let events = until(
        &ch,
        "SELECT target, verdict, tier, appliance, device, front, qtype, rule, search \
         FROM hedgerow.access_events ORDER BY time, time_ms FORMAT JSONEachRow",
        &["allowed.example", "extreme.example", "[protected entry] #"],
    );
    let events = rows(&events);
    assert_eq!(events.len(), 3, "{events:?}");
    let allowed = events.iter().find(|r| r["target"] == "allowed.example");
    let allowed = allowed.expect("the allowed name, in clear");
    assert_eq!(allowed["verdict"], "allow");
    assert_eq!(allowed["appliance"], "st-marys");
    assert_eq!(allowed["device"], "Library-PC-3");
    assert_eq!(allowed["front"], "dns");
    assert_eq!(allowed["qtype"], "A");
    let blocked = events
        .iter()
        .find(|r| r["target"] == "extreme.example")
        .unwrap();
    assert_eq!(blocked["verdict"], "block");
    assert_eq!(blocked["tier"], "category");
    let illegal = events.iter().find(|r| r["tier"] == "illegal").unwrap();
    assert_eq!(illegal["verdict"], "block");
    let shown = illegal["target"].as_str().unwrap();
    assert!(shown.starts_with("[protected entry] #"), "{shown}");
    assert_eq!(illegal["rule"], illegal["target"]);

    // Breaches: the extremism rule (high) and the illegal tier (always critical).
    let breaches = until(
        &ch,
        "SELECT breach_id, severity, breach_rule, change, target, tier, appliance \
         FROM hedgerow.breaches ORDER BY breach_id FORMAT JSONEachRow",
        &["extreme.example", "critical"],
    );
    let breaches = rows(&breaches);
    assert_eq!(breaches.len(), 2, "{breaches:?}");
    assert_eq!(breaches[0]["target"], "extreme.example");
    assert_eq!(breaches[0]["severity"], "high");
    assert_eq!(breaches[0]["breach_rule"], "extremism");
    assert_eq!(breaches[0]["change"], "open");
    assert_eq!(breaches[1]["severity"], "critical");
    assert_eq!(breaches[1]["tier"], "illegal");
    assert!(
        breaches[1]["target"]
            .as_str()
            .unwrap()
            .starts_with("[protected entry] #")
    );
    assert_ne!(breaches[0]["breach_id"], breaches[1]["breach_id"]);

    // Nothing anywhere in ClickHouse names the listed entry.
    for table in ["access_events", "breaches"] {
        let all = ch.query(&format!("SELECT * FROM hedgerow.{table} FORMAT TSV"));
        assert!(!all.contains("terror-test"), "{table}: {all}");
    }

    // Syslog: RFC 5424 messages rsyslog parsed (its HOSTNAME, APP-NAME and MSGID fields are
    // ours), access events and breaches, the illegal tier protected.
    syslog
        .wait_for("[protected entry]", Duration::from_secs(20))
        .expect("syslog messages");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut parsed = syslog.parsed();
    while parsed.len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        parsed = syslog.parsed();
    }
    let raw_all = syslog.raw();
    assert_eq!(
        parsed.len(),
        5,
        "3 access events and 2 breaches: {parsed:#?}"
    );
    let access: Vec<&String> = parsed.iter().filter(|l| l.contains("|access|")).collect();
    let breach: Vec<&String> = parsed.iter().filter(|l| l.contains("|breach|")).collect();
    assert_eq!((access.len(), breach.len()), (3, 2), "{parsed:#?}");
    for line in &parsed {
        let fields: Vec<&str> = line.splitn(9, '|').collect();
        assert_eq!(fields[0], "1", "RFC 5424 version: {line}");
        assert_eq!(fields[3], "st-marys", "HOSTNAME: {line}");
        assert_eq!(fields[4], "hedgerow", "APP-NAME: {line}");
        assert!(fields[7].starts_with("[hedgerow@32473 "), "SD: {line}");
    }
    let allowed = access
        .iter()
        .find(|l| l.contains(r#"target="allowed.example""#))
        .expect("the allowed name, in clear");
    assert!(allowed.contains(r#"verdict="allow""#), "{allowed}");
    assert!(allowed.contains(r#"device="Library-PC-3""#), "{allowed}");
    // local0.info for an allowed query, local0.notice for a block, local0.crit for the
    // illegal tier's breach.
    assert!(allowed.starts_with("1|134|"), "{allowed}");
    assert!(
        breach.iter().any(|l| l.starts_with("1|130|")
            && l.contains(r#"severity="critical""#)
            // `]` is escaped inside a parameter value (RFC 5424 §6.3.3).
            && l.contains(r#"target="[protected entry\] #"#)),
        "{breach:#?}"
    );
    for line in raw_all.iter().chain(parsed.iter()) {
        assert!(!line.contains("terror-test"), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn destinations_down_drop_and_count_while_queries_are_answered() {
    if skip() {
        return;
    }
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::LOCALHOST)
        .start()
        .await;
    // Nothing listens on either port; queues of 8.
    let ship = format!(
        r#"
[ship]
appliance = "st-marys"
queue = 8

[ship.clickhouse]
url = "http://127.0.0.1:{}"
flush_interval = "100ms"
attempts = 2

[ship.syslog]
address = "127.0.0.1:{}"
attempts = 2
"#,
        free_port(),
        free_port()
    );
    let cfg = config(up.addr, &ship);
    let app =
        tokio::task::spawn_blocking(move || Appliance::start(BIN.as_ref(), &cfg, &FILES, &[]))
            .await
            .unwrap();
    let start = Instant::now();
    for i in 0..400 {
        let name = if i % 2 == 0 {
            "allowed.example"
        } else {
            "extreme.example"
        };
        let want = if i % 2 == 0 {
            ResponseCode::NoError
        } else {
            ResponseCode::NXDomain
        };
        assert_eq!(dns(&app, name).await, want, "query {i}");
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "400 queries took {took:?}");
    // The local store has every event.
    let stored = app.events(400, Duration::from_secs(10));
    assert_eq!(stored.len(), 400);
    // Drops are counted and reported, for each destination.
    for destination in ["clickhouse", "syslog"] {
        let line = app
            .wait_for(
                &format!("destination=\"{destination}\""),
                Duration::from_secs(15),
            )
            .unwrap_or_else(|| panic!("no drop report for {destination}: {}", app.logs()));
        let dropped: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("total_dropped="))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        assert!(dropped >= 300, "{line}");
    }
    // The attempts that failed are logged, naming the cause.
    assert!(app.logs().contains("shipping"), "{}", app.logs());
}
