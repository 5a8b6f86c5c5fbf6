//! Reloads end to end: the real binary, real DNS packets, real proxy connections (curl and raw
//! TCP), a real store. Every section of the configuration either takes effect on reload or
//! the reload is refused as a whole, naming why, with `hedgerow reload` exiting 1 and the old
//! behaviour kept. Listeners: new addresses bound, removed ones closed, the others untouched
//! (no query on them lost). Several appliances on one machine reload apart, by their own
//! API socket or the pid file in their own state directory.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hedgerow_testkit::{
    Appliance, Origin, RunningUpstream, Transport, UpstreamDns, Webhook, query_from,
};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// A registered device in the pupils group; every 127.0.0.0/8 address is a pupil.
const PUPIL: [u8; 4] = [127, 0, 0, 1];

/// The configuration every test starts from: a pupils group blocking adult and gambling, an
/// illegal-tier list, `listen` for `[dns] listen` and `extra` appended (further tables).
fn config(listen: &str, upstream: SocketAddr, extra: &str) -> String {
    format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = [{listen}]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.adult]
path = "{{dir}}/adult.txt"
format = "domains"
category = "adult"

[lists.gambling]
path = "{{dir}}/gambling.txt"
format = "domains"
category = "gambling"

[groups.pupils]
networks = ["127.0.0.0/8"]
block_categories = ["adult", "gambling"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[[devices]]
name = "Lab-PC-1"
ip = "127.0.0.1"
{extra}
"#
    )
}

const FILES: &[(&str, &str)] = &[
    ("iwf.txt", "http://iwf-test.invalid/a.html\n"),
    ("adult.txt", "adult.example\n"),
    ("gambling.txt", "bet.example\n"),
];

async fn upstream() -> RunningUpstream {
    UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .a("also.example", Ipv4Addr::new(192, 0, 2, 2))
        .a("web.example", Ipv4Addr::LOCALHOST)
        .a("adult.example", Ipv4Addr::LOCALHOST)
        .a("www.adult.example", Ipv4Addr::LOCALHOST)
        .a("bet.example", Ipv4Addr::LOCALHOST)
        .start()
        .await
}

async fn start(cfg: &str) -> Appliance {
    start_with(cfg, &[]).await
}

async fn start_with(cfg: &str, env: &[(&'static str, &'static str)]) -> Appliance {
    let (cfg, env) = (cfg.to_owned(), env.to_vec());
    tokio::task::spawn_blocking(move || Appliance::start(BIN.as_ref(), &cfg, FILES, &env))
        .await
        .unwrap()
}

/// `hedgerow reload --config <the appliance's configuration>`: whether it exited 0, and what
/// it printed.
fn reload(app: &Appliance) -> (bool, String) {
    let out = tokio::task::block_in_place(|| app.cli(&["reload"], &[]));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The address after `prefix` in a reload reply, such as `opened DNS 127.0.0.2:5353`.
fn addr_after(reply: &str, prefix: &str) -> SocketAddr {
    reply
        .split(prefix)
        .nth(1)
        .and_then(|rest| rest.split([';', '\n']).next())
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in {reply}"))
}

/// The answer's code for `name`/A asked of `server` from `from`; `None` when nothing answers
/// (2 s).
async fn ask(server: SocketAddr, t: Transport, from: [u8; 4], name: &str) -> Option<ResponseCode> {
    query_from(
        IpAddr::from(from),
        server,
        t,
        name,
        RecordType::A,
        Some(1232),
    )
    .await
    .map(|m| m.metadata.response_code)
}

/// Sends SIGHUP to the process named in the appliance's pid file, as an operator would:
/// `kill -HUP "$(cat STATE/hedgerow.pid)"`.
fn hup_by_pid_file(app: &Appliance) {
    let pid_file = app.dir().join("state/hedgerow.pid");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -HUP \"$(cat '{}')\"", pid_file.display()))
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs a CLI command until its output contains `needle`, for up to 10 s.
fn until(app: &Appliance, sub: &[&str], args: &[&str], needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = app.cli(sub, args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Breaches as JSON lines, once one with `rule` and `site` is there (up to 10 s).
fn breaches_once(app: &Appliance, rule: &str, site: &str) -> Vec<serde_json::Value> {
    breaches_when(app, |b| b["rule"] == rule && b["site"] == site)
}

/// Breaches as JSON lines, once one meets `pred` (up to 10 s).
fn breaches_when(
    app: &Appliance,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = app.cli(&["breaches"], &["list", "--format", "json"]);
        let list: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if list.iter().any(&pred) || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// === [dns] ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_listeners_open_and_close_on_reload_and_the_ones_kept_lose_no_query() {
    let up = upstream().await;
    let with_third = config(r#""127.0.0.1:0", "127.0.0.3:0""#, up.addr, "");
    let with_second = config(r#""127.0.0.1:0", "127.0.0.2:0""#, up.addr, "");
    let app = Arc::new(start(&with_third).await);
    let (udp, tcp) = (app.dns_udp, app.dns_tcp);
    assert_eq!(udp.ip(), IpAddr::from(PUPIL));
    let mut third = app
        .listeners("listening for DNS/UDP on ")
        .into_iter()
        .find(|a| a.ip() == IpAddr::from([127, 0, 0, 3]))
        .unwrap();
    assert_eq!(
        ask(third, Transport::Udp, PUPIL, "adult.example").await,
        Some(ResponseCode::NXDomain)
    );

    // Load on the listener every configuration keeps, over UDP and TCP, through every reload.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..3u32 {
        let (stop, answered) = (stop.clone(), answered.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let (name, want) = if i.is_multiple_of(2) {
                    ("allowed.example", ResponseCode::NoError)
                } else {
                    ("adult.example", ResponseCode::NXDomain)
                };
                let (t, server) = if (i + w).is_multiple_of(4) {
                    (Transport::Tcp, tcp)
                } else {
                    (Transport::Udp, udp)
                };
                match ask(server, t, PUPIL, name).await {
                    Some(code) if code == want => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    other => failures.push(format!("{name} {t:?}: {other:?}")),
                }
            }
            failures
        }));
    }

    // Three rounds: 127.0.0.3 goes and 127.0.0.2 comes, then back, then again.
    let mut second = None;
    for round in 0..3 {
        let to_second = round % 2 == 0;
        app.write_file(
            "hedgerow.toml",
            if to_second { &with_second } else { &with_third },
        );
        let (ok, reply) = reload(&app);
        assert!(ok, "round {round}: {reply}");
        assert!(reply.contains("changed: [dns]"), "{reply}");
        let (gone, opened_ip) = if to_second {
            (third, [127, 0, 0, 2])
        } else {
            (second.unwrap(), [127, 0, 0, 3])
        };
        assert!(reply.contains(&format!("closed DNS {gone}")), "{reply}");
        assert!(
            !reply.contains(&format!("closed DNS {udp}")),
            "the kept listener is not touched: {reply}"
        );
        let new = addr_after(&reply, "opened DNS ");
        assert_eq!(new.ip(), IpAddr::from(opened_ip), "{reply}");
        // The new listener answers over UDP and TCP (same port), with the policy in force.
        assert_eq!(
            ask(new, Transport::Udp, PUPIL, "adult.example").await,
            Some(ResponseCode::NXDomain)
        );
        assert_eq!(
            ask(new, Transport::Tcp, PUPIL, "allowed.example").await,
            Some(ResponseCode::NoError)
        );
        // The removed one answers nothing.
        assert_eq!(
            ask(gone, Transport::Tcp, PUPIL, "allowed.example").await,
            None
        );
        assert_eq!(
            ask(gone, Transport::Udp, PUPIL, "allowed.example").await,
            None
        );
        if to_second {
            second = Some(new);
        } else {
            third = new;
        }
    }

    // A reload with the same listeners opens and closes nothing.
    let (ok, reply) = reload(&app);
    assert!(ok, "{reply}");
    assert!(
        !reply.contains("opened") && !reply.contains("closed") && reply.contains("no settings"),
        "{reply}"
    );

    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} queries lost on the kept listener, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(answered.load(Ordering::SeqCst) > 100, "the load ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_listener_that_cannot_bind_refuses_the_whole_reload_and_other_dns_settings_apply() {
    let up = upstream().await;
    let cfg = config(r#""127.0.0.1:0""#, up.addr, "");
    let app = start(&cfg).await;
    let taken = std::net::UdpSocket::bind("127.0.0.4:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let wider = cfg.replace(
        r#"listen = ["127.0.0.1:0"]"#,
        &format!(r#"listen = ["127.0.0.1:0", "127.0.0.2:0", "127.0.0.4:{port}"]"#),
    );

    // With a new blocked name and a new listener, but one listener that cannot bind: none of
    // it is in force.
    app.write_file("gambling.txt", "bet.example\nalso.example\n");
    app.write_file("hedgerow.toml", &wider);
    let (ok, reply) = reload(&app);
    assert!(!ok, "{reply}");
    assert!(
        reply.contains("[dns] listen")
            && reply.contains(&format!("127.0.0.4:{port}"))
            && reply.contains("previous policy still in force"),
        "{reply}"
    );
    assert_eq!(
        ask(app.dns_udp, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NoError),
        "the list change is not in force"
    );
    assert!(
        !app.logs().contains("listening for DNS/UDP on 127.0.0.2"),
        "no listener was opened:\n{}",
        app.logs()
    );

    // Once the address is free, the same reload is taken whole.
    drop(taken);
    let (ok, reply) = reload(&app);
    assert!(ok, "{reply}");
    let fourth: SocketAddr = format!("127.0.0.4:{port}").parse().unwrap();
    assert!(reply.contains(&format!("opened DNS {fourth}")), "{reply}");
    for server in [app.dns_udp, fourth, addr_after(&reply, "opened DNS ")] {
        assert_eq!(
            ask(server, Transport::Udp, PUPIL, "also.example").await,
            Some(ResponseCode::NXDomain),
            "{server}"
        );
    }

    // Other [dns] settings take effect too: a rate limit where there was none.
    let burst = |app: &Appliance| {
        let server = app.dns_udp;
        async move {
            let mut refused = 0;
            for _ in 0..12 {
                if ask(server, Transport::Udp, [127, 0, 0, 8], "allowed.example").await
                    == Some(ResponseCode::Refused)
                {
                    refused += 1;
                }
            }
            refused
        }
    };
    assert_eq!(burst(&app).await, 0);
    app.write_file(
        "hedgerow.toml",
        &wider.replace("rate_limit_qps = 0", "rate_limit_qps = 1"),
    );
    let (ok, reply) = reload(&app);
    assert!(ok && reply.contains("changed: [dns]"), "{reply}");
    assert!(burst(&app).await >= 6, "burst 2, then refused");
}

// === [proxy] ===

fn proxy_section(listen: &str, contact: &str, extra: &str) -> String {
    format!(
        r#"
[proxy]
listen = [{listen}]
allow_destinations = ["127.0.0.0/8"]
review_contact = "{contact}"
{extra}
"#
    )
}

/// curl through the proxy: (HTTP status, body); status 0 when the proxy cannot be reached.
async fn curl(proxy: SocketAddr, url: &str) -> (u16, String) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
            .args(["-x", &format!("http://{proxy}"), "--noproxy", ""])
            .arg(&url)
            .output()
            .expect("curl (Debian package curl) must be installed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    })
    .await
    .unwrap()
}

/// The status of a CONNECT to `target` through the proxy.
async fn connect_status(proxy: SocketAddr, target: &str) -> u16 {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(s).read_line(&mut line),
    )
    .await;
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Sends a GET for `url` on an open proxy connection and reads the whole answer (its
/// Content-Length body); the status, 0 if the connection ended.
async fn get_on(conn: &mut BufReader<TcpStream>, url: &str) -> u16 {
    let host = url.split('/').nth(2).unwrap_or_default();
    let request = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    if conn.get_mut().write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let read = async {
        let (mut status, mut len) = (0, 0);
        loop {
            let mut line = String::new();
            if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                return 0;
            }
            if status == 0 {
                status = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        match conn.read_exact(&mut body).await {
            Ok(_) => status,
            Err(_) => 0,
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_settings_and_listeners_change_on_reload_and_a_missing_ca_is_refused() {
    let up = upstream().await;
    let origin = Origin::http().await;
    let port = origin.addr.port();
    let before = config(
        r#""127.0.0.1:0""#,
        up.addr,
        &proxy_section(r#""127.0.0.1:0""#, "email it@school.example", ""),
    );
    let app = start(&before).await;
    let first = app.proxy.unwrap();
    let (code, body) = curl(first, &format!("http://adult.example:{port}/")).await;
    assert_eq!(code, 403);
    assert!(body.contains("email it@school.example"), "{body}");
    assert_eq!(
        connect_status(first, &format!("web.example:{port}")).await,
        403
    );
    // A keep-alive connection accepted on the listener that is about to go.
    let mut kept = BufReader::new(TcpStream::connect(first).await.unwrap());
    assert_eq!(
        get_on(&mut kept, &format!("http://web.example:{port}/before")).await,
        200
    );

    // A new contact on the block page, a new CONNECT port, and the listener moved.
    let after_section = proxy_section(
        r#""127.0.0.2:0""#,
        "see Mr Jones in room 12",
        &format!("connect_ports = [443, {port}]"),
    );
    let after = config(r#""127.0.0.1:0""#, up.addr, &after_section);
    app.write_file("hedgerow.toml", &after);
    let (ok, reply) = reload(&app);
    assert!(ok, "{reply}");
    assert!(reply.contains("changed: [proxy]"), "{reply}");
    assert!(reply.contains(&format!("closed proxy {first}")), "{reply}");
    let second = addr_after(&reply, "opened proxy ");
    assert_eq!(second.ip(), IpAddr::from([127, 0, 0, 2]));
    let (code, body) = curl(second, &format!("http://adult.example:{port}/")).await;
    assert_eq!(code, 403);
    assert!(
        body.contains("see Mr Jones in room 12") && !body.contains("email it@school.example"),
        "{body}"
    );
    let (code, body) = curl(second, &format!("http://web.example:{port}/page")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        connect_status(second, &format!("web.example:{port}")).await,
        200
    );
    assert_eq!(
        connect_status(second, &format!("web.example:{}", port ^ 1)).await,
        403,
        "ports not listed are still refused"
    );
    assert_eq!(
        curl(first, &format!("http://web.example:{port}/")).await.0,
        0,
        "the removed listener is closed"
    );
    // The connection it had accepted carries on.
    assert_eq!(
        get_on(&mut kept, &format!("http://web.example:{port}/after")).await,
        200
    );
    assert!(
        origin.heads().iter().any(|h| h.starts_with("GET /after ")),
        "{:?}",
        origin.heads()
    );

    // Interception with a CA whose files are missing: refused, and nothing changes (the
    // contact edited in the same file stays as it was).
    let broken = config(
        r#""127.0.0.1:0""#,
        up.addr,
        &proxy_section(
            r#""127.0.0.2:0""#,
            "nobody",
            &format!(
                "connect_ports = [443, {port}]\nintercept_groups = [\"pupils\"]\nca_cert = \"{{dir}}/missing-ca.pem\"\nca_key = \"{{dir}}/missing-ca.key\""
            ),
        ),
    );
    app.write_file("hedgerow.toml", &broken);
    let (ok, reply) = reload(&app);
    assert!(!ok, "{reply}");
    assert!(
        reply.contains("[proxy]") && reply.contains("missing-ca."),
        "{reply}"
    );
    let (code, body) = curl(second, &format!("http://adult.example:{port}/")).await;
    assert_eq!(code, 403);
    assert!(body.contains("see Mr Jones in room 12"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_starts_and_stops_when_its_section_is_added_and_removed() {
    let up = upstream().await;
    let origin = Origin::http().await;
    let port = origin.addr.port();
    let without = config(r#""127.0.0.1:0""#, up.addr, "");
    let app = start(&without).await;
    assert!(app.proxy.is_none());

    let with = config(
        r#""127.0.0.1:0""#,
        up.addr,
        &proxy_section(r#""127.0.0.1:0""#, "email it@school.example", ""),
    );
    app.write_file("hedgerow.toml", &with);
    let (ok, reply) = reload(&app);
    assert!(ok && reply.contains("changed: [proxy]"), "{reply}");
    let proxy = addr_after(&reply, "opened proxy ");
    assert_eq!(
        curl(proxy, &format!("http://web.example:{port}/")).await.0,
        200
    );
    assert_eq!(
        curl(proxy, &format!("http://adult.example:{port}/"))
            .await
            .0,
        403
    );

    app.write_file("hedgerow.toml", &without);
    let (ok, reply) = reload(&app);
    assert!(ok, "{reply}");
    assert!(reply.contains(&format!("closed proxy {proxy}")), "{reply}");
    assert_eq!(
        curl(proxy, &format!("http://web.example:{port}/")).await.0,
        0
    );
    // DNS carried on throughout.
    assert_eq!(
        ask(app.dns_udp, Transport::Udp, PUPIL, "allowed.example").await,
        Some(ResponseCode::NoError)
    );
}

// === [breaches] ===

const ADULT_RULE: &str = r#"
[[breaches.rules]]
name = "adult"
categories = ["adult"]
severity = "medium"
"#;

const GAMBLING_RULE: &str = r#"
[[breaches.rules]]
name = "gambling"
categories = ["gambling"]
severity = "low"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_breach_rule_fires_after_reload_and_a_broken_one_is_refused() {
    let up = upstream().await;
    let cfg = config(r#""127.0.0.1:0""#, up.addr, ADULT_RULE);
    let app = start(&cfg).await;
    let dns = app.dns_udp;
    let blocked = |from: [u8; 4], name: &'static str| async move {
        assert_eq!(
            ask(dns, Transport::Udp, from, name).await,
            Some(ResponseCode::NXDomain)
        );
    };
    // Gambling first, then adult: once the adult breach is there, a gambling one would be too.
    blocked(PUPIL, "bet.example").await;
    blocked(PUPIL, "adult.example").await;
    let list = tokio::task::block_in_place(|| breaches_once(&app, "adult", "adult.example"));
    assert!(list.iter().any(|b| b["rule"] == "adult"), "{list:?}");
    assert!(list.iter().all(|b| b["rule"] != "gambling"), "{list:?}");

    app.write_file(
        "hedgerow.toml",
        &config(
            r#""127.0.0.1:0""#,
            up.addr,
            &format!("{ADULT_RULE}{GAMBLING_RULE}"),
        ),
    );
    let (ok, reply) = reload(&app);
    assert!(ok && reply.contains("changed: [breaches]"), "{reply}");
    blocked(PUPIL, "bet.example").await;
    let list = tokio::task::block_in_place(|| breaches_once(&app, "gambling", "bet.example"));
    let gambling = list.iter().find(|b| b["rule"] == "gambling").unwrap();
    assert_eq!(gambling["device"], "Lab-PC-1");
    assert_eq!(gambling["severity"], "low");

    // A rule naming a category no list has (and no adult rule): refused by `hedgerow reload`
    // before it is sent, and by the appliance on SIGHUP. The rules in force stay.
    let broken = config(
        r#""127.0.0.1:0""#,
        up.addr,
        &GAMBLING_RULE.replace("[\"gambling\"]", "[\"gamblng\"]"),
    );
    app.write_file("hedgerow.toml", &broken);
    let (ok, reply) = reload(&app);
    assert!(
        !ok && reply.contains("gamblng") && reply.contains("stays in force"),
        "{reply}"
    );
    hup_by_pid_file(&app);
    // The error is logged on the lines after "reload refused".
    assert!(
        app.wait_for("reload refused", Duration::from_secs(10))
            .is_some()
            && app.wait_for("gamblng", Duration::from_secs(10)).is_some(),
        "{}",
        app.logs()
    );
    blocked([127, 0, 0, 5], "adult.example").await;
    // The CLI reads the configuration too: give it back a good one (without reloading).
    app.write_file("hedgerow.toml", &cfg);
    let from_five = |b: &serde_json::Value| b["rule"] == "adult" && b["client"] == "127.0.0.5";
    let list = tokio::task::block_in_place(|| breaches_when(&app, from_five));
    assert!(
        list.iter().any(from_five),
        "the adult rule is still in force: {list:?}"
    );
}

// === [alerts] ===

fn alerts(url: &str) -> String {
    format!(
        r#"
[[breaches.rules]]
name = "adult"
categories = ["adult"]
severity = "high"

[alerts]
immediate = "high"

[alerts.webhook]
url = "{url}"
"#
    )
}

/// Whether `hook` received an alert for a breach from `client`, waiting up to 10 s for it.
fn alerted(hook: &Webhook, client: &str, wait: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(if wait { 10 } else { 0 });
    loop {
        let found = hook
            .json()
            .iter()
            .any(|a| a["kind"] == "breach" && a["breach"]["client"] == client);
        if found || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_to_the_new_webhook_after_reload_and_a_broken_url_is_refused() {
    let up = upstream().await;
    let (first, second) = (Webhook::start(0), Webhook::start(0));
    let app = start(&config(r#""127.0.0.1:0""#, up.addr, &alerts(&first.url))).await;
    let breach = |from: [u8; 4]| {
        let dns = app.dns_udp;
        async move {
            assert_eq!(
                ask(dns, Transport::Udp, from, "adult.example").await,
                Some(ResponseCode::NXDomain)
            );
        }
    };
    breach([127, 0, 0, 11]).await;
    assert!(tokio::task::block_in_place(|| alerted(
        &first,
        "127.0.0.11",
        true
    )));

    app.write_file(
        "hedgerow.toml",
        &config(r#""127.0.0.1:0""#, up.addr, &alerts(&second.url)),
    );
    let (ok, reply) = reload(&app);
    assert!(ok && reply.contains("changed: [alerts]"), "{reply}");
    breach([127, 0, 0, 12]).await;
    assert!(tokio::task::block_in_place(|| alerted(
        &second,
        "127.0.0.12",
        true
    )));
    assert!(!alerted(&first, "127.0.0.12", false));

    // Not a web address: refused, and alerts keep going to the second webhook.
    app.write_file(
        "hedgerow.toml",
        &config(
            r#""127.0.0.1:0""#,
            up.addr,
            &alerts("ftp://dsl.example/hook"),
        ),
    );
    let (ok, reply) = reload(&app);
    assert!(!ok && reply.contains("ftp://"), "{reply}");
    breach([127, 0, 0, 13]).await;
    assert!(tokio::task::block_in_place(|| alerted(
        &second,
        "127.0.0.13",
        true
    )));
    assert!(!alerted(&first, "127.0.0.13", false));
}

// === [server] and [logs] ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_changes_on_reload_and_state_dir_and_cache_mb_are_refused_by_name() {
    let up = upstream().await;
    let cfg = config(r#""127.0.0.1:0""#, up.addr, ADULT_RULE);
    let app = start(&cfg).await;
    let dns = app.dns_udp;
    assert_eq!(
        ask(dns, Transport::Udp, PUPIL, "allowed.example").await,
        Some(ResponseCode::NoError)
    );
    let logs = tokio::task::block_in_place(|| {
        until(&app, &["logs"], &["--format", "json"], "allowed.example")
    });
    assert!(logs.contains("allowed.example"), "{logs}");

    // access_log = false: allowed queries are no longer stored; breaches still are.
    let quiet = cfg.replace(
        "state_dir = \"{dir}/state\"",
        "state_dir = \"{dir}/state\"\naccess_log = false",
    );
    app.write_file("hedgerow.toml", &quiet);
    let (ok, reply) = reload(&app);
    assert!(ok && reply.contains("changed: [server]"), "{reply}");
    assert_eq!(
        ask(dns, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NoError)
    );
    assert_eq!(
        ask(dns, Transport::Udp, PUPIL, "adult.example").await,
        Some(ResponseCode::NXDomain)
    );
    // The breach is written in the same round as (after) any access event recorded before it.
    tokio::task::block_in_place(|| breaches_once(&app, "adult", "adult.example"));
    let logs = tokio::task::block_in_place(|| app.events(0, Duration::ZERO)).join("\n");
    assert!(
        logs.contains("allowed.example") && !logs.contains("also.example"),
        "{logs}"
    );

    // [logs] cache_mb needs a restart: the whole reload is refused, the list change with it.
    app.write_file("gambling.txt", "bet.example\nalso.example\n");
    app.write_file(
        "hedgerow.toml",
        &format!("{quiet}\n[logs]\ncache_mb = 128\n"),
    );
    let (ok, reply) = reload(&app);
    assert!(!ok, "{reply}");
    assert!(
        reply.contains("[logs] cache_mb needs a restart")
            && reply.contains("previous policy still in force"),
        "{reply}"
    );
    assert_eq!(
        ask(dns, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NoError)
    );

    // [server] state_dir needs a restart. `hedgerow reload` looks for the appliance in the
    // new state directory and finds none; SIGHUP by the pid file is refused by name.
    app.write_file(
        "hedgerow.toml",
        &quiet.replace("{dir}/state", "{dir}/elsewhere"),
    );
    let (ok, reply) = reload(&app);
    assert!(
        !ok && reply.contains("state_dir needs a restart"),
        "{reply}"
    );
    hup_by_pid_file(&app);
    let line = app.wait_for(
        "[server] state_dir needs a restart",
        Duration::from_secs(10),
    );
    assert!(
        line.is_some_and(|l| l.contains("reload refused")),
        "{}",
        app.logs()
    );
    assert!(!app.dir().join("elsewhere").exists());
    assert_eq!(
        ask(dns, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NoError)
    );

    // Back to a configuration it can take: the list change is in force now.
    app.write_file("hedgerow.toml", &quiet);
    let (ok, reply) = reload(&app);
    assert!(ok, "{reply}");
    assert_eq!(
        ask(dns, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NXDomain)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_access_retention_purges_old_days_on_reload() {
    let up = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(r#""127.0.0.1:0""#, up.addr, "").replace(
        "{dir}/state",
        &state.path().join("state").display().to_string(),
    );
    // Three days ago.
    let mut old = start_with(&cfg, &[("HEDGEROW_TEST_NOW", "2026-11-20T10:00:00Z")]).await;
    assert_eq!(
        ask(old.dns_udp, Transport::Udp, PUPIL, "allowed.example").await,
        Some(ResponseCode::NoError)
    );
    assert_eq!(
        tokio::task::block_in_place(|| old.events(1, Duration::from_secs(10))).len(),
        1
    );
    old.stop();
    assert!(
        !state.path().join("state/hedgerow.pid").exists(),
        "the pid file goes with the appliance"
    );

    // Today, on the same state directory.
    let app = start_with(&cfg, &[("HEDGEROW_TEST_NOW", "2026-11-23T10:00:00Z")]).await;
    assert_eq!(
        ask(app.dns_udp, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NoError)
    );
    let events = tokio::task::block_in_place(|| app.events(2, Duration::from_secs(10)));
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].contains("allowed.example") && events[0].contains("2026-11-20"));

    app.write_file(
        "hedgerow.toml",
        &format!("{cfg}\n[logs]\naccess_retention = \"1d\"\n"),
    );
    let (ok, reply) = reload(&app);
    assert!(ok && reply.contains("changed: [logs]"), "{reply}");
    // The purge runs at once, not at the next hourly one. (Read only once it is done: a read
    // of a day while the purge deletes it can fail.)
    let purged = app.wait_for("retention purge", Duration::from_secs(10));
    assert!(
        purged.as_deref().is_some_and(|l| l.contains("2026-11-20")),
        "{}",
        app.logs()
    );
    let events = tokio::task::block_in_place(|| app.events(0, Duration::ZERO));
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].contains("also.example"), "{events:?}");
}

// === several appliances on one machine ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_appliances_reload_apart_and_a_second_one_on_a_state_dir_is_refused() {
    let up = upstream().await;
    let cfg = config(r#""127.0.0.1:0""#, up.addr, "");
    let a = start(&cfg).await;
    let b = start(&cfg).await;
    for app in [&a, &b] {
        let pid = std::fs::read_to_string(app.dir().join("state/hedgerow.pid")).unwrap();
        assert_eq!(pid.trim(), app.pid().to_string());
    }

    // Both lists change on disk; only A is told.
    for app in [&a, &b] {
        app.write_file("gambling.txt", "bet.example\nalso.example\n");
    }
    let (ok, reply) = reload(&a);
    assert!(ok, "{reply}");
    assert_eq!(
        ask(a.dns_udp, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NXDomain)
    );
    assert_eq!(
        ask(b.dns_udp, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NoError),
        "B was not reloaded"
    );
    assert!(!b.logs().contains("policy reloaded"));

    // B by signal, through its own pid file.
    hup_by_pid_file(&b);
    assert!(
        b.wait_for("ok: policy reloaded", Duration::from_secs(10))
            .is_some(),
        "{}",
        b.logs()
    );
    assert_eq!(
        ask(b.dns_udp, Transport::Udp, PUPIL, "also.example").await,
        Some(ResponseCode::NXDomain)
    );
    assert_eq!(
        a.logs().matches("ok: policy reloaded").count(),
        1,
        "A heard one reload, its own"
    );

    // A third process on A's state directory refuses to start, naming A.
    let out = tokio::task::block_in_place(|| {
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(a.config_path())
            .output()
            .unwrap()
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("another hedgerow process (pid {})", a.pid())),
        "{err}"
    );
    let pid = std::fs::read_to_string(a.dir().join("state/hedgerow.pid")).unwrap();
    assert_eq!(
        pid.trim(),
        a.pid().to_string(),
        "A's pid file is left alone"
    );
    let (ok, reply) = reload(&a);
    assert!(ok, "A's API socket is still A's: {reply}");
}

// === systemd ===

#[test]
fn the_systemd_unit_reloads_with_hedgerow_reload_on_the_configuration_it_runs() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/hedgerow.service"
    ))
    .unwrap();
    let line = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in the unit"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let start = line("ExecStart=");
    let reload = line("ExecReload=");
    // `hedgerow reload` exits 1 when the appliance refuses, so systemctl reload fails; a
    // signal would always succeed.
    assert_eq!(start[1], "run");
    assert_eq!(reload[0], start[0], "the same binary");
    assert_eq!(reload[1], "reload");
    assert_eq!(reload[2..], start[2..], "the same --config");
}
