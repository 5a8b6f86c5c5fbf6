//! Walled gardens for the youngest (issue 14): an approved-only group reaches only the sites
//! its allow entries and approved lists name, with the hosts each site loads from listed
//! `with` it, on both fronts. Real DNS packets to the real binary (CNAME chains from an
//! approved name into a CDN included), curl through the proxy, and headless Chromium loading
//! an approved page whose script and picture come from a second host, while a third host's
//! script is blocked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hedgerow_testkit::{Appliance, RunningUpstream, Transport, UpstreamDns, query_from};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// 127.0.0.1 is the approved-only group (Chromium reaches the proxy from there); 127.0.0.2
/// a filtered group, for the does-not-over-block twins.
const EARLY: &str = "127.0.0.1";
const KS2: &str = "127.0.0.2";

/// A web server for several sites on one loopback port: the garden's page, its script and
/// picture on the CDN host, and a third party's script. Keeps each (host, path) asked for.
struct Sites {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sites {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn site_response(host: &str, path: &str, port: u16) -> (&'static str, &'static str, String) {
    let ok = "200 OK";
    match (host, path) {
        ("garden.example", "/") => (
            ok,
            "text/html",
            format!(
                r#"<!doctype html><html><head><title>Garden</title></head><body>
<h1 id="garden">the garden page</h1>
<p id="dep">dependency script not run</p>
<p id="img">picture not loaded</p>
<p id="third">third-party script not run</p>
<script src="http://assets.gardencdn.example:{port}/app.js"></script>
<img src="http://assets.gardencdn.example:{port}/pic.svg" onload="document.getElementById('img').textContent='picture loaded'" onerror="document.getElementById('img').textContent='picture failed'">
<script src="http://tracker.example:{port}/track.js"></script>
</body></html>
"#
            ),
        ),
        ("assets.gardencdn.example", "/app.js") => (
            ok,
            "application/javascript",
            "document.getElementById('dep').textContent = 'dependency script ran';\n".into(),
        ),
        ("assets.gardencdn.example", "/pic.svg") => (
            ok,
            "image/svg+xml",
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4" fill="green"/></svg>"#.into(),
        ),
        ("tracker.example", "/track.js") => (
            ok,
            "application/javascript",
            "document.getElementById('third').textContent = 'third-party script ran';\n".into(),
        ),
        _ => (ok, "text/plain", format!("{host}{path}\n")),
    }
}

impl Sites {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut r = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                        let mut host = String::new();
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("host:") {
                                host = v.trim().split(':').next().unwrap_or("").to_owned();
                            }
                        }
                        seen.lock().unwrap().push(format!("{host}{path}"));
                        let (status, ctype, body) = site_response(&host, &path, addr.port());
                        let reply = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if r.get_mut().write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { addr, asked, task }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

struct Rig {
    app: Appliance,
    _up: RunningUpstream,
    sites: Sites,
    proxy: SocketAddr,
}

async fn rig() -> Rig {
    let lo = Ipv4Addr::LOCALHOST;
    let up = UpstreamDns::new()
        .a("garden.example", lo)
        .a("assets.gardencdn.example", lo)
        .a("tracker.example", lo)
        .a("songs.example", lo)
        .a("adult.example", lo)
        // The approved name's operator points it at a CDN name nobody approved.
        .cname("www.garden.example", "garden.edge-cdn.example")
        .a("garden.edge-cdn.example", Ipv4Addr::new(192, 0, 2, 80))
        // An approved name whose chain leads into a blocked category.
        .cname("sneaky.garden.example", "adult.example")
        .start()
        .await;
    let sites = Sites::start().await;
    let cfg = format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0

[proxy]
listen = ["127.0.0.1:0"]
allow_destinations = ["127.0.0.0/8"]

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.adult]
path = "{{dir}}/adult.txt"
format = "domains"
category = "adult"

[lists.early-approved]
path = "{{dir}}/early-approved.txt"
format = "domains"
kind = "approved"

[groups.early]
description = "Early Years and Key Stage 1: approved sites only"
networks = ["127.0.0.1/32"]
mode = "approved-only"
approved_lists = ["early-approved"]
block_categories = ["adult"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"
allow = [
  {{ site = "garden.example", with = ["assets.gardencdn.example"] }},
]

[groups.ks2]
networks = ["127.0.0.2/32"]
block_categories = ["adult"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"
"#,
        upstream = up.addr,
    );
    let app = tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &cfg,
            &[
                ("iwf.txt", "iwf-test.invalid/a.html\n"),
                ("adult.txt", "adult.example\n"),
                ("early-approved.txt", "songs.example\n"),
            ],
            &[],
        )
    })
    .await
    .unwrap();
    let proxy = app.proxy.expect("proxy address in the log");
    Rig {
        app,
        _up: up,
        sites,
        proxy,
    }
}

async fn ask(r: &Rig, from: &str, name: &str) -> Message {
    query_from(
        from.parse().unwrap(),
        r.app.dns_udp,
        Transport::Udp,
        name,
        RecordType::A,
        Some(1232),
    )
    .await
    .expect("an answer")
}

fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

/// curl through the proxy from loopback address `from`: (status, body).
async fn curl(proxy: SocketAddr, from: &str, url: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(["--interface", from])
        .args(["-x", &format!("http://{proxy}"), "--noproxy", ""])
        .arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("curl must be installed"))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

async fn event_where(
    app: &Appliance,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = tokio::task::block_in_place(|| app.events(1, Duration::ZERO));
        if let Some(e) = events
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| pred(e))
        {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no matching event in:\n{}",
            events.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_answers_an_approved_only_group_for_approved_sites_and_their_dependencies_only() {
    let r = rig().await;
    let lo = IpAddr::from([127, 0, 0, 1]);
    for name in [
        "garden.example",
        "assets.gardencdn.example",
        "songs.example",
    ] {
        let m = ask(&r, EARLY, name).await;
        assert_eq!(addresses(&m), [lo], "{name}: {m:?}");
    }
    let m = ask(&r, EARLY, "tracker.example").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let ev = event_where(&r.app, |e| e["target"] == "tracker.example").await;
    assert_eq!(ev["verdict"], "block");
    assert_eq!(ev["tier"], "not-approved");
    assert_eq!(ev["rule"], "not on the approved list");
    // An approved name whose operator points it at a CDN name resolves whole...
    let m = ask(&r, EARLY, "www.garden.example").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert_eq!(addresses(&m), [IpAddr::from([192, 0, 2, 80])], "{m:?}");
    // ...though the CDN name asked for directly is not approved...
    let m = ask(&r, EARLY, "garden.edge-cdn.example").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // ...and a chain into a blocked category is still blocked.
    let m = ask(&r, EARLY, "sneaky.garden.example").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let ev = event_where(&r.app, |e| e["target"] == "sneaky.garden.example").await;
    assert_eq!(
        (ev["tier"].as_str(), ev["category"].as_str()),
        (Some("category"), Some("adult"))
    );
    // Does not over-block: a filtered group resolves the names the garden does not approve.
    for name in ["tracker.example", "garden.edge-cdn.example"] {
        let m = ask(&r, KS2, name).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(!addresses(&m).is_empty(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_serves_an_approved_only_group_approved_pages_and_the_not_approved_page() {
    let r = rig().await;
    let port = r.sites.addr.port();
    let (code, body) = curl(r.proxy, EARLY, &format!("http://garden.example:{port}/")).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("the garden page"));
    let (code, _) = curl(
        r.proxy,
        EARLY,
        &format!("http://assets.gardencdn.example:{port}/app.js"),
    )
    .await;
    assert_eq!(code, 200);
    let (code, page) = curl(
        r.proxy,
        EARLY,
        &format!("http://tracker.example:{port}/track.js"),
    )
    .await;
    assert_eq!(code, 403);
    assert!(
        page.contains("This page is not on the approved list"),
        "{page}"
    );
    assert!(page.contains("not on the approved list</strong>"), "{page}");
    let ev = event_where(&r.app, |e| {
        e["front"] == "proxy"
            && e["target"]
                .as_str()
                .is_some_and(|t| t.contains("tracker.example"))
    })
    .await;
    assert_eq!(ev["tier"], "not-approved");
    assert!(
        !r.sites
            .asked()
            .iter()
            .any(|a| a.starts_with("tracker.example"))
    );
    // The adult category keeps its own page.
    let (code, page) = curl(r.proxy, EARLY, &format!("http://adult.example:{port}/")).await;
    assert_eq!(code, 403);
    assert!(
        page.contains("This page is blocked") && page.contains("adult"),
        "{page}"
    );
    // Twin: a filtered group reaches the third party.
    let (code, _) = curl(
        r.proxy,
        KS2,
        &format!("http://tracker.example:{port}/track.js"),
    )
    .await;
    assert_eq!(code, 200);
}

/// Headless Chromium (Debian's `chromium`) through the proxy as the approved-only group: the
/// approved page loads whole, its script and picture from the host listed `with` it, while
/// the third party's script is blocked and never reaches its server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_loads_an_approved_page_whole_from_its_listed_dependency_and_not_the_third_party()
{
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium (Debian package chromium) must be installed; .ci/run installs it");
    let r = rig().await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://garden.example:{}/", r.sites.addr.port());
    let proxy = r.proxy;
    let dom = tokio::task::spawn_blocking({
        let profile = profile.path().to_owned();
        move || {
            let out = Command::new(chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-dev-shm-usage",
                    &format!("--user-data-dir={}", profile.display()),
                    &format!("--proxy-server=http://{proxy}"),
                    "--proxy-bypass-list=<-loopback>",
                    "--virtual-time-budget=5000",
                    "--dump-dom",
                    &url,
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    })
    .await
    .unwrap();
    assert!(dom.contains("the garden page"), "{dom}");
    assert!(dom.contains("dependency script ran"), "{dom}");
    assert!(dom.contains("picture loaded"), "{dom}");
    assert!(dom.contains("third-party script not run"), "{dom}");
    let asked = r.sites.asked();
    assert!(
        asked.contains(&"assets.gardencdn.example/app.js".to_owned()),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"assets.gardencdn.example/pic.svg".to_owned()),
        "{asked:?}"
    );
    assert!(
        !asked.iter().any(|a| a.starts_with("tracker.example")),
        "{asked:?}"
    );
    event_where(&r.app, |e| {
        e["tier"] == "not-approved"
            && e["target"]
                .as_str()
                .is_some_and(|t| t.contains("/track.js"))
    })
    .await;
}
