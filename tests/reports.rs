//! Reports end to end: the real binary records real DNS queries from two groups; the
//! dashboard and the weekly report on the API (read from the store's counters) give the same
//! counts as `hedgerow logs` and `hedgerow breaches` do from the events; a governor gets no
//! site names and a technician no report; and the weekly report is e-mailed on Monday at its
//! time to a real SMTP sink, once, across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hedgerow_testkit::{Appliance, Transport, UpstreamDns, query_from};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

fn config(upstream: std::net::SocketAddr, smtp: u16, weekly: &str, state: &str) -> String {
    format!(
        r#"
[server]
state_dir = "{state}"
timezone = "Europe/London"

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
networks = ["127.0.0.0/25"]
block_categories = ["extremism", "gambling"]
dns_block = "nxdomain"
safesearch = "on"
youtube = "strict"

[groups.staff]
networks = ["127.0.0.128/25"]
block_categories = ["gambling"]
dns_block = "nxdomain"
safesearch = "on"
youtube = "strict"

[[devices]]
name = "Library-PC-3"
ip = "127.0.0.3"

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
immediate = "critical"

[alerts.email]
server = "127.0.0.1"
port = {smtp}
tls = "none"
from = "hedgerow@school.example"
to = ["dsl@school.example"]

[console]
listen = "127.0.0.1:0"
weekly_report = "{weekly}"
"#
    )
}

const FILES: &[(&str, &str)] = &[
    ("extremism.txt", "extreme.example\n"),
    ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
    ("gambling.txt", "bet.example\npoker.example\n"),
];

/// A minimal SMTP server that accepts every message and keeps its DATA.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let kept = mails.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut r = BufReader::new(read);
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("DATA") {
                        write.write_all(b"354 go on\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.unwrap();
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        kept.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        write.write_all(b"221 bye\r\n").await.unwrap();
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, mails)
}

/// GET on the appliance's API socket as `token`: the status and the body as JSON.
fn api(state: &std::path::Path, token: &str, path: &str) -> (u16, serde_json::Value) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(state.join("api.sock"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("http://localhost{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

fn lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_count_what_the_logs_hold_and_governors_see_no_sites() {
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .start()
        .await;
    let (smtp, _) = smtp_sink().await;
    let state = tempfile::tempdir().unwrap();
    let st = state.path().to_owned();
    let cfg = config(up.addr, smtp, "off", st.to_str().unwrap());
    let app = tokio::task::spawn_blocking(move || Appliance::start(BIN.as_ref(), &cfg, FILES, &[]))
        .await
        .unwrap();
    // Real queries: (from, name, how many).
    let asks: &[([u8; 4], &str, usize)] = &[
        ([127, 0, 0, 3], "extreme.example", 2),
        ([127, 0, 0, 3], "bet.example", 3),
        ([127, 0, 0, 3], "allowed.example", 4),
        ([127, 0, 0, 9], "poker.example", 1),
        ([127, 0, 0, 200], "bet.example", 2),
        ([127, 0, 0, 200], "allowed.example", 1),
    ];
    let mut total = 0;
    for &(from, name, n) in asks {
        for _ in 0..n {
            query_from(
                IpAddr::from(from),
                app.dns_udp,
                Transport::Udp,
                name,
                RecordType::A,
                Some(1232),
            )
            .await
            .unwrap();
            total += 1;
        }
    }
    let (events, breaches, dsl, gov, tech) = tokio::task::block_in_place(|| {
        let events: Vec<serde_json::Value> = app
            .events(total, Duration::from_secs(10))
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // Breaches are written on their own queue: wait for all four (a device and a site
        // each: extremism and gambling from Library-PC-3, poker from .9, gambling from .200).
        let deadline = Instant::now() + Duration::from_secs(10);
        let breaches = loop {
            let b = lines(&app.cli(&["breaches"], &["list", "--format", "json"]));
            if b.len() >= 4 || Instant::now() > deadline {
                break b;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        (
            events,
            breaches,
            app.token("dsl", "dsl"),
            app.token("gov", "governor"),
            app.token("tech", "technician"),
        )
    });
    assert_eq!(events.len(), total);

    // What the logs say, counted here.
    let mut by_verdict: BTreeMap<String, u64> = BTreeMap::new();
    let mut blocked_group: BTreeMap<String, u64> = BTreeMap::new();
    let mut blocked_group_cat: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut blocked_cat: BTreeMap<String, u64> = BTreeMap::new();
    let mut sites: BTreeMap<String, u64> = BTreeMap::new();
    for e in &events {
        let verdict = e["verdict"].as_str().unwrap().to_owned();
        *by_verdict.entry(verdict.clone()).or_default() += 1;
        if verdict == "block" {
            let g = e["group"].as_str().unwrap().to_owned();
            let c = e["category"].as_str().unwrap_or("").to_owned();
            *blocked_group.entry(g.clone()).or_default() += 1;
            *blocked_group_cat.entry((g, c.clone())).or_default() += 1;
            *blocked_cat.entry(c).or_default() += 1;
            let site = e["target"]
                .as_str()
                .unwrap()
                .trim_end_matches('.')
                .to_owned();
            *sites.entry(site).or_default() += 1;
        }
    }
    let mut breach_sev: BTreeMap<String, u64> = BTreeMap::new();
    for b in &breaches {
        *breach_sev
            .entry(b["severity"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        blocked_group.len() == 2 && blocked_cat.len() == 2,
        "{blocked_group:?}"
    );

    let (code, week) =
        tokio::task::block_in_place(|| api(&st, &dsl, "/api/v1/reports/weekly/this"));
    assert_eq!(code, 200, "{week}");
    let got_verdicts: BTreeMap<String, u64> = week["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["disposition"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_verdicts, by_verdict);
    assert_eq!(week["total"], total as u64);
    let got_groups: BTreeMap<String, u64> = week["blocked_by_group"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_owned(),
                g["blocked"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_groups, blocked_group);
    let mut got_group_cat = BTreeMap::new();
    for g in week["blocked_by_group"].as_array().unwrap() {
        for c in g["categories"].as_array().unwrap() {
            got_group_cat.insert(
                (
                    g["group"].as_str().unwrap().to_owned(),
                    c["category"].as_str().unwrap().to_owned(),
                ),
                c["count"].as_u64().unwrap(),
            );
        }
    }
    assert_eq!(got_group_cat, blocked_group_cat);
    let got_cats: BTreeMap<String, u64> = week["blocked_by_category"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["category"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_cats, blocked_cat);
    let got_sites: BTreeMap<String, u64> = week["top_sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["site"].as_str().unwrap().to_owned(),
                s["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_sites, sites);
    assert_eq!(week["sites_blocked"], sites.len() as u64);
    let got_breaches: BTreeMap<String, u64> = week["breaches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["total"].as_u64().unwrap() > 0)
        .map(|b| {
            (
                b["severity"].as_str().unwrap().to_owned(),
                b["total"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_breaches, breach_sev);
    assert_eq!(week["dropped"], 0);

    // The dashboard: the same week's numbers.
    let (code, dash) = tokio::task::block_in_place(|| api(&st, &dsl, "/api/v1/reports/dashboard"));
    assert_eq!(code, 200, "{dash}");
    assert_eq!(dash["week_start"], week["week_start"]);
    assert_eq!(dash["events"], total as u64);
    assert_eq!(dash["blocked"], by_verdict["block"]);
    let dash_groups: BTreeMap<String, u64> = dash["blocked_by_group"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_owned(),
                g["blocked"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(dash_groups, blocked_group);
    let dash_breaches: u64 = dash["breaches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(dash_breaches, breaches.len() as u64);
    let weeks = dash["trends"]["weeks"].as_array().unwrap();
    assert_eq!(weeks.len(), 12);
    assert_eq!(weeks[11], dash["week_start"]);

    // A governor: the counts, no site names. A technician: no reports.
    let (code, g) = tokio::task::block_in_place(|| api(&st, &gov, "/api/v1/reports/weekly/this"));
    assert_eq!(code, 200, "{g}");
    assert!(g["top_sites"].is_null());
    assert_eq!(g["blocked_by_category"], week["blocked_by_category"]);
    assert!(!g.to_string().contains("bet.example"));
    let (code, _) = tokio::task::block_in_place(|| api(&st, &tech, "/api/v1/reports/dashboard"));
    assert_eq!(code, 403);
    let (code, _) = tokio::task::block_in_place(|| api(&st, &tech, "/api/v1/reports/weekly/this"));
    assert_eq!(code, 403);
    // A week that does not start on a Monday is refused.
    let (code, e) =
        tokio::task::block_in_place(|| api(&st, &dsl, "/api/v1/reports/weekly/2026-12-01"));
    assert_eq!(code, 400, "{e}");

    // Each view is in the audit log, by who looked.
    let audit = tokio::task::block_in_place(|| {
        let out = app.cli_as(
            &app.token("testkit-admin", "approver"),
            &["audit", "list"],
            &["--json"],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    assert!(audit.contains("report-view"), "{audit}");
    assert!(audit.contains("\"gov\""), "{audit}");

    // The console's pages, as a governor signed in with a password: the same numbers, as
    // charts with their tables; no site names.
    let addr = console_addr(&app);
    let out = std::process::Command::new(BIN)
        .args([
            "user",
            "add",
            "governor-pw",
            "--roles",
            "governor",
            "--config",
        ])
        .arg(app.config_path())
        .env("HEDGEROW_TOKEN", app.token("testkit-admin", "approver"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"a long enough password 42\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jar_dir = tempfile::tempdir().unwrap();
    let jar = jar_dir.path().join("cookies");
    tokio::task::block_in_place(|| {
        console_sign_in(&addr, &jar, "governor-pw", "a long enough password 42");
        let (code, page) = console(&addr, &jar, &[], "/reports");
        assert_eq!(code, 200, "{page}");
        assert!(page.contains("<svg class=\"chart\" role=\"img\""), "{page}");
        assert!(!page.contains("style="), "no inline styles (the CSP)");
        let text = text_of(&page);
        assert!(
            text.contains(&format!("{} blocked", by_verdict["block"])),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} breaches", breaches.len())),
            "{text}"
        );
        for (g, n) in &blocked_group {
            assert!(
                text.contains(&format!("{g}: {n} blocked")),
                "{g} {n}: {text}"
            );
        }
        // The weekly report page: the week's categories with their counts, no sites.
        let (code, page) = console(
            &addr,
            &jar,
            &[],
            &format!(
                "/reports/weekly?week={}",
                week["week_start"].as_str().unwrap()
            ),
        );
        assert_eq!(code, 200, "{page}");
        let text = text_of(&page);
        for c in week["blocked_by_category"].as_array().unwrap() {
            let row = format!("{} {}", c["name"].as_str().unwrap(), c["count"]);
            assert!(text.contains(&row), "{row}: {text}");
        }
        assert!(text.contains("names are not shown to governors"), "{text}");
        assert!(!page.contains("bet.example"));
        // Trends for one group; a bad number of weeks is refused with a page that says so.
        let (code, page) = console(&addr, &jar, &[], "/reports/trends?weeks=4&group=staff");
        assert_eq!(code, 200, "{page}");
        assert!(text_of(&page).contains("group staff"));
        let (code, _) = console(&addr, &jar, &[], "/reports/trends?weeks=99");
        assert_eq!(code, 400);
    });
}

/// The console's address, from the appliance's log.
fn console_addr(app: &Appliance) -> String {
    let line = app
        .wait_for("console listening on https://", Duration::from_secs(10))
        .expect("the console started");
    let rest = line.split("console listening on https://").nth(1).unwrap();
    rest.split('/').next().unwrap().to_owned()
}

/// curl against the console with a cookie jar: the status and the body.
fn console(addr: &str, jar: &std::path::Path, args: &[&str], path: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-sk", "-c"])
        .arg(jar)
        .arg("-b")
        .arg(jar)
        .args(args)
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://{addr}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_owned())
}

/// Signs in to the console as `name` (password, no authenticator code: a governor).
fn console_sign_in(addr: &str, jar: &std::path::Path, name: &str, password: &str) {
    let (code, page) = console(addr, jar, &[], "/signin");
    assert_eq!(code, 200);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let (code, body) = console(
        addr,
        jar,
        &[
            "--data-urlencode",
            &format!("csrf={csrf}"),
            "--data-urlencode",
            &format!("name={name}"),
            "--data-urlencode",
            &format!("password={password}"),
            "--data-urlencode",
            "next=/reports",
        ],
        "/signin",
    );
    assert_eq!(code, 303, "{body}");
}

/// The text of a page with its markup taken out and its spaces squeezed, to find numbers
/// beside their labels.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut tag = false;
    for c in html.chars() {
        match c {
            '<' => tag = true,
            '>' => {
                tag = false;
                out.push(' ');
            }
            c if !tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Monday 30 November 2026, 07:05 in London (GMT).
const MONDAY_0705: &str = "2026-11-30T07:05:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weekly_report_is_emailed_on_monday_once_across_a_restart() {
    let up = UpstreamDns::new().start().await;
    let (smtp, mails) = smtp_sink().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(up.addr, smtp, "07:00", state.path().to_str().unwrap());
    let c = cfg.clone();
    let mut app = tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &c,
            FILES,
            &[("HEDGEROW_TEST_NOW", MONDAY_0705)],
        )
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mails.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = mails
        .lock()
        .unwrap()
        .first()
        .cloned()
        .expect("the report was sent");
    assert!(
        mail.contains("Subject: [Hedgerow] Weekly monitoring report: week of 2026-11-23"),
        "{mail}"
    );
    assert!(mail.contains("To: dsl@school.example"), "{mail}");
    assert!(mail.contains("multipart/alternative"), "{mail}");
    assert!(
        mail.contains("text/plain") && mail.contains("text/html"),
        "{mail}"
    );
    assert!(mail.contains("Breaches by severity"), "{mail}");
    // Once it is recorded as sent (a stop between the two would send it again).
    assert!(
        app.wait_for("weekly monitoring report e-mailed", Duration::from_secs(10))
            .is_some()
    );
    tokio::task::block_in_place(|| app.stop());

    // Started again at the same time: the store remembers the week was sent.
    let mut again = tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &cfg,
            FILES,
            &[("HEDGEROW_TEST_NOW", MONDAY_0705)],
        )
    })
    .await
    .unwrap();
    // The schedule is looked at on start, then every 30 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let subjects: Vec<String> = mails
        .lock()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.starts_with("Subject:"))
                .map(str::to_owned)
        })
        // (The configuration in a new folder is a hand edit, which alerts on its own.)
        .filter(|s| s.contains("Weekly monitoring report"))
        .collect();
    assert_eq!(subjects.len(), 1, "{subjects:?}\n{}", again.logs());
    tokio::task::block_in_place(|| again.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_weekly_report_is_emailed_when_it_is_off() {
    let up = UpstreamDns::new().start().await;
    let (smtp, mails) = smtp_sink().await;
    // Off: none, even on a Monday after 07:00 with nothing ever sent.
    let state = tempfile::tempdir().unwrap();
    let cfg = config(up.addr, smtp, "off", state.path().to_str().unwrap());
    let mut app = tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &cfg,
            FILES,
            &[("HEDGEROW_TEST_NOW", MONDAY_0705)],
        )
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| app.stop());
    let mails = mails.lock().unwrap();
    assert!(
        !mails.iter().any(|m| m.contains("Weekly monitoring report")),
        "{mails:?}"
    );
}
