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
                ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
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

/// DNS and the proxy with a catch-all breach rule (any block, at any tier but the default).
fn outcomes_config(upstream: std::net::SocketAddr, extra_proxy: &str) -> String {
    format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 5

[proxy]
listen = ["127.0.0.1:0"]
allow_destinations = ["127.0.0.0/8"]
{extra_proxy}

[lists.adult]
path = "{{dir}}/adult.txt"
format = "domains"
category = "adult"

[lists.news]
path = "{{dir}}/news.txt"
format = "domains"
kind = "allow"

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[groups.pupils]
networks = ["127.0.0.0/24"]
block_categories = ["adult"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[[breaches.rules]]
name = "any block"
severity = "low"
"#
    )
}

/// Runs `hedgerow logs ARGS --format json` and reads each line.
fn json_logs(app: &Appliance, args: &[&str]) -> Vec<serde_json::Value> {
    let out = app.cli(&["logs"], &[args, &["--format", "json"]].concat());
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_say_what_happened_and_only_real_blocks_are_counted_or_raise_breaches() {
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::LOCALHOST)
        .a("adult.example", Ipv4Addr::LOCALHOST)
        .a("www.google.com", Ipv4Addr::new(192, 0, 2, 10))
        .a(
            "forcesafesearch.google.com",
            Ipv4Addr::new(216, 239, 38, 120),
        )
        // The BBC, on the allow list, whose name servers fail.
        .servfail("www.bbc.co.uk")
        .start()
        .await;
    let origin = hedgerow_testkit::Origin::http().await;
    let cfg = outcomes_config(up.addr, "");
    let app = tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &cfg,
            &[
                ("adult.txt", "adult.example\n"),
                ("news.txt", "bbc.co.uk\n"),
                ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
            ],
            &[],
        )
    })
    .await
    .unwrap();
    let proxy = app.proxy.unwrap();
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
            .metadata
            .response_code
        }
    };
    let curl = |from: &str, url: String| {
        let from = from.to_owned();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "--max-time",
                    "10",
                ])
                .args(["-x", &format!("http://{proxy}"), "--noproxy", ""])
                .args(["--interface", &from])
                .arg(url)
                .output()
                .expect("curl (Debian package curl) must be installed");
            String::from_utf8_lossy(&out.stdout)
                .parse::<u16>()
                .unwrap_or(0)
        })
    };
    let port = origin.addr.port();

    // DNS: one of each, and a client flooding past its rate limit.
    assert_eq!(
        ask([127, 0, 0, 1], "allowed.example").await,
        ResponseCode::NoError
    );
    assert_eq!(
        ask([127, 0, 0, 1], "adult.example").await,
        ResponseCode::NXDomain
    );
    assert_eq!(
        ask([127, 0, 0, 1], "www.google.com").await,
        ResponseCode::NoError
    );
    assert_eq!(
        ask([127, 0, 0, 1], "www.bbc.co.uk").await,
        ResponseCode::ServFail
    );
    assert_eq!(
        ask([127, 0, 1, 5], "www.bbc.co.uk").await,
        ResponseCode::Refused
    );
    let mut limited = 0;
    for _ in 0..30 {
        if ask([127, 0, 0, 9], "allowed.example").await == ResponseCode::Refused {
            limited += 1;
        }
    }
    // A burst of 10, then 5 a second: how many are refused depends on the machine's speed;
    // what matters is that the log says the same as the answers did.
    assert!(limited > 0, "the flood went over its limit");
    // The proxy: allowed, blocked, the BBC (allowed, but its name does not resolve: 502),
    // a destination the proxy does not reach, and a client in no network.
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    assert_eq!(
        curl("127.0.0.1", url("allowed.example", "/"))
            .await
            .unwrap(),
        200
    );
    assert_eq!(
        curl("127.0.0.1", url("adult.example", "/")).await.unwrap(),
        403
    );
    assert_eq!(
        curl("127.0.0.1", url("www.bbc.co.uk", "/news"))
            .await
            .unwrap(),
        502
    );
    assert_eq!(
        curl("127.0.0.1", "http://10.1.2.3/".into()).await.unwrap(),
        403
    );
    assert_eq!(
        curl("127.0.1.5", url("allowed.example", "/"))
            .await
            .unwrap(),
        403
    );

    let total = 5 + 30 + 5;
    let all = tokio::task::block_in_place(|| app.events(total, Duration::from_secs(10)));
    assert_eq!(all.len(), total, "{all:#?}");
    let (wanted, breaches, table) = tokio::task::block_in_place(|| {
        let wanted: Vec<(&str, Vec<serde_json::Value>)> = [
            "allow",
            "block",
            "rewrite",
            "refused",
            "rate-limited",
            "error",
        ]
        .into_iter()
        .map(|v| (v, json_logs(&app, &["--verdict", v])))
        .collect();
        let breaches = until(&app, &["breaches"], &[], "adult.example");
        let table = stdout(&app.cli(&["logs"], &["--ip", "127.0.0.1"]));
        (wanted, breaches, table)
    });
    let count = |v: &str| {
        wanted
            .iter()
            .find(|(w, _)| *w == v)
            .map_or(0, |(_, e)| e.len())
    };
    for (verdict, events) in &wanted {
        assert!(
            events.iter().all(|e| e["verdict"] == *verdict),
            "--verdict {verdict}: {events:#?}"
        );
    }
    let find = |verdict: &str, target: &str| {
        wanted
            .iter()
            .find(|(w, _)| *w == verdict)
            .is_some_and(|(_, es)| es.iter().any(|e| e["target"] == target))
    };
    // Blocked: the adult site, once by DNS and once by the proxy, and nothing else.
    assert_eq!(count("block"), 2, "{wanted:#?}");
    assert!(find("block", "adult.example") && find("block", &url("adult.example", "/")));
    assert_eq!(count("rewrite"), 1);
    assert!(find("rewrite", "www.google.com"));
    // The BBC's failures are errors, never blocks.
    assert_eq!(count("error"), 2, "{wanted:#?}");
    assert!(find("error", "www.bbc.co.uk") && find("error", &url("www.bbc.co.uk", "/news")));
    // Refused: the stranger on both fronts and the unreachable destination.
    assert_eq!(count("refused"), 3, "{wanted:#?}");
    assert!(find("refused", "http://10.1.2.3/"));
    assert_eq!(count("rate-limited"), limited);
    assert_eq!(count("allow"), 2 + 30 - limited);
    assert_eq!(
        [
            "allow",
            "block",
            "rewrite",
            "refused",
            "rate-limited",
            "error"
        ]
        .iter()
        .map(|v| count(v))
        .sum::<usize>(),
        total,
        "every event has one of the six verdicts"
    );
    // The table says the same.
    let bbc = table
        .lines()
        .find(|l| l.contains("www.bbc.co.uk "))
        .unwrap();
    assert!(bbc.contains(" error ") && !bbc.contains("block"), "{table}");
    // Only the real blocks raised a breach: not the BBC's failures, the refusals or the
    // rate limit, though the rule takes any block.
    assert!(breaches.contains("adult.example"), "{breaches}");
    for absent in [
        "bbc",
        "10.1.2.3",
        "127.0.1.5",
        "127.0.0.9",
        "allowed.example",
    ] {
        assert!(!breaches.contains(absent), "{absent}: {breaches}");
    }
    // A word that is not a verdict is a clear error.
    let out = app.cli(&["logs"], &["--verdict", "blocked"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rate-limited"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Listeners on an IPv6 socket bound to `::ffff:127.0.0.1` see IPv4 clients as IPv4-mapped
/// IPv6 addresses, as a dual-stack `[::]` listener does. Both fronts store them as IPv4, so one
/// `logs --ip` finds a client's DNS queries and web requests alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_mapped_clients_are_stored_as_ipv4_on_both_fronts() {
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::LOCALHOST)
        .start()
        .await;
    let origin = hedgerow_testkit::Origin::http().await;
    let cfg = outcomes_config(up.addr, "")
        .replace("rate_limit_qps = 5", "rate_limit_qps = 0")
        .replace(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [\"[::ffff:127.0.0.1]:0\"]",
        );
    let app = tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &cfg,
            &[
                ("adult.txt", "adult.example\n"),
                ("news.txt", "bbc.co.uk\n"),
                ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
            ],
            &[],
        )
    })
    .await
    .unwrap();
    // Reached over IPv4 at 127.0.0.1, on the listeners' ports.
    let v4 = |a: std::net::SocketAddr| {
        assert_eq!(a.ip().to_string(), "::ffff:127.0.0.1", "{}", app.logs());
        std::net::SocketAddr::from(([127, 0, 0, 1], a.port()))
    };
    let (udp, tcp, proxy) = (v4(app.dns_udp), v4(app.dns_tcp), v4(app.proxy.unwrap()));
    let pupil = IpAddr::from([127, 0, 0, 3]);
    for (server, t) in [(udp, Transport::Udp), (tcp, Transport::Tcp)] {
        let m = query_from(
            pupil,
            server,
            t,
            "allowed.example",
            RecordType::A,
            Some(1232),
        )
        .await
        .expect("an answer");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{t:?}");
    }
    let port = origin.addr.port();
    let code = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(["-x", &format!("http://{proxy}"), "--noproxy", ""])
            .args(["--interface", "127.0.0.3"])
            .arg(format!("http://allowed.example:{port}/"))
            .output()
            .expect("curl (Debian package curl) must be installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap();
    assert_eq!(code, "200");
    // Its own listener, reached by its IPv4 address, is still not a destination.
    let own = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
            ])
            .args(["-x", &format!("http://{proxy}"), "--noproxy", ""])
            .arg(format!("http://{proxy}/proxy.pac"))
            .output()
            .expect("curl (Debian package curl) must be installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap();
    assert_eq!(own, "403", "the proxy must not fetch from itself");

    let (by_ip, by_mapped) = tokio::task::block_in_place(|| {
        app.events(3, Duration::from_secs(10));
        (
            json_logs(&app, &["--ip", "127.0.0.3"]),
            json_logs(&app, &["--ip", "::ffff:127.0.0.3"]),
        )
    });
    let mut fronts: Vec<&str> = by_ip.iter().map(|e| e["front"].as_str().unwrap()).collect();
    fronts.sort_unstable();
    assert_eq!(fronts, ["dns", "dns", "proxy"], "{by_ip:#?}");
    assert!(
        by_ip.iter().all(|e| e["client"] == "127.0.0.3"),
        "{by_ip:#?}"
    );
    assert!(by_ip.iter().all(|e| e["group"] == "pupils"), "{by_ip:#?}");
    assert_eq!(by_mapped, by_ip, "the mapped form finds the same events");
    // Another client's address finds none of them.
    let other = tokio::task::block_in_place(|| json_logs(&app, &["--ip", "127.0.0.4"]));
    assert!(other.is_empty(), "{other:#?}");
}
