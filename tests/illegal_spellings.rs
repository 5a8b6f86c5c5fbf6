//! The illegal tier through the real binary's proxy, with the bundled IWF sample list matched
//! exactly as `config/lists.toml` configures it: every spelling of a listed URL that curl, a
//! raw request or Chromium sends gets the block page and never reaches the origin, and sibling
//! pages on the same host are served.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use hedgerow_testkit::{Appliance, Origin, UpstreamDns};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");
const BLOCKED: &str = "potentially illegal content";

struct Rig {
    _app: Appliance,
    origin: Origin,
    _up: hedgerow_testkit::RunningUpstream,
    proxy: SocketAddr,
}

async fn rig() -> Rig {
    let up = UpstreamDns::new()
        .a("iwf-test.invalid", Ipv4Addr::LOCALHOST)
        .a("www.iwf-test.invalid", Ipv4Addr::LOCALHOST)
        .start()
        .await;
    let origin = Origin::http().await;
    let iwf = support::repo().join("blocklists/iwf-sample.txt");
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

# As config/lists.toml has it.
[lists.iwf]
path = "{iwf}"
format = "urls"
kind = "illegal"
category = "child-abuse"
url_match = "exact"

[groups.pupils]
networks = ["127.0.0.1/32"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"
"#,
        upstream = up.addr,
        iwf = iwf.display(),
    );
    let app = tokio::task::spawn_blocking(move || Appliance::start(BIN.as_ref(), &cfg, &[], &[]))
        .await
        .unwrap();
    let proxy = app.proxy.expect("proxy address in the log");
    Rig {
        _app: app,
        origin,
        _up: up,
        proxy,
    }
}

/// curl through the proxy, sending the path as written; (status, body).
async fn curl(proxy: SocketAddr, url: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-s", "-g", "--path-as-is", "--max-time", "10"])
            .args(["-o", "-", "-w", "\n%{http_code}"])
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

/// One request line, sent raw (absolute form), for what curl would normalise itself;
/// (status, whole reply).
async fn raw(proxy: SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let head =
        format!("GET {target} HTTP/1.1\r\nHost: iwf-test.invalid\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let reply = String::from_utf8_lossy(&out).into_owned();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, reply)
}

/// Nothing of the listed pages ever reached the origin.
fn origin_saw_no_listed_page(origin: &Origin) {
    for head in origin.heads() {
        let line = head.lines().next().unwrap_or_default().to_ascii_lowercase();
        assert!(
            !["item-001.", "item%2d001", "0002.jpg", "0002%2ejpg"]
                .iter()
                .any(|listed| line.contains(listed)),
            "a listed page reached the origin: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_listed_url_is_blocked_and_siblings_are_served() {
    let r = rig().await;
    let port = r.origin.addr.port();
    let host = format!("iwf-test.invalid:{port}");

    // Spellings curl sends as written (with --path-as-is).
    for url in [
        format!("http://{host}/gallery/item-001.html"),
        format!("HTTP://IWF-TEST.INVALID:{port}/gallery/item-001.html"),
        format!("http://user:pw@{host}/gallery/item-001.html"),
        format!("http://www.{host}/gallery/item-001.html"),
        format!("http://iwf-test.invalid.:{port}/gallery/item-001.html"),
        format!("http://{host}/%67allery/item%2D001%2ehtml"),
        format!("http://{host}/gallery/./x/../item-001.html"),
        format!("http://{host}/gallery/%2e/item-001.html"),
        format!("http://{host}//gallery//item-001.html"),
        format!("http://{host}/gallery/x//../item-001.html"),
        format!("http://{host}/gallery%2Fitem-001.html"),
        format!("http://{host}/gallery;jsessionid=A1/item-001.html"),
        format!("http://{host}/gallery/item-001.html#frag"),
        format!("http://{host}/images/0002.jpg"),
        format!("http://{host}/images/0002%2Ejpg?"),
    ] {
        let (code, body) = curl(r.proxy, url.clone()).await;
        assert_eq!(code, 403, "{url}: {body}");
        assert!(body.contains(BLOCKED), "{url}: {body}");
    }

    // Spellings curl would normalise itself, sent raw: the empty query a form with no fields
    // sends, case, a fragment, backslashes, dot and slash tricks, a trailing dot, escapes.
    for target in [
        format!("http://{host}/gallery/item-001.html?"),
        format!("http://{host}/gallery/item-001.html?#frag"),
        format!("HTTP://IWF-TEST.INVALID:{port}/gallery/item-001.html"),
        format!("http://{host}/gallery/item-001.html#frag"),
        format!("http://{host}/gallery\\item-001.html"),
        format!("http://{host}/gallery/x//../item-001.html"),
        format!("http://{host}/gallery/x%2F..%2Fitem-001.html"),
        format!("http://{host}/gallery/%2E%2e/gallery/item-001.html"),
        format!("http://{host}/../gallery/item-001.html"),
        format!("http://iwf-test.invalid.:{port}/gallery/item-001.html"),
        format!("http://{host}/gallery/item%2d001.html"),
    ] {
        let (code, reply) = raw(r.proxy, &target).await;
        assert_eq!(code, 403, "{target}: {reply}");
        assert!(reply.contains(BLOCKED), "{target}: {reply}");
    }
    // A percent-encoded host is refused before any lookup (the proxy's URI parser rejects
    // it): not the block page, but it reaches nothing either.
    let (code, reply) = raw(
        r.proxy,
        &format!("http://%69wf-test.invalid:{port}/gallery/item-001.html"),
    )
    .await;
    assert_eq!(code, 400, "{reply}");

    // Twins: sibling pages that only share a prefix are served, by curl and raw.
    for url in [
        format!("http://{host}/gallery/item-002.html"),
        format!("http://{host}/gallery/item-0011.html"),
        format!("http://{host}/gallery/"),
        format!("http://www.{host}/images/0002.jpeg"),
        format!("http://{host}/images/00020.jpg?"),
    ] {
        let (code, body) = curl(r.proxy, url.clone()).await;
        assert_eq!(code, 200, "{url}: {body}");
        assert!(body.contains("origin page"), "{url}: {body}");
    }
    for target in [
        format!("http://{host}/gallery/item-002.html?"),
        format!("http://{host}/gallery%2Fitem-002.html"),
        format!("http://{host}/gallery/x//../item-002.html"),
    ] {
        let (code, reply) = raw(r.proxy, &target).await;
        assert_eq!(code, 200, "{target}: {reply}");
    }
    origin_saw_no_listed_page(&r.origin);
    let served = r.origin.heads().len();
    assert_eq!(served, 8, "every sibling reached the origin once");
}

/// What a browser really sends: headless Chromium (Debian's `chromium`) through the proxy,
/// for URLs typed the ways people type them. The address bar keeps an empty query and slash
/// runs, and canonicalises the rest itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_gets_the_block_page_for_every_spelling_and_the_sibling_page() {
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
    let port = r.origin.addr.port();
    let host = format!("iwf-test.invalid:{port}");
    let profile = tempfile::tempdir().unwrap();
    let dom = |url: String| {
        let (proxy, profile, chromium) = (r.proxy, profile.path().to_owned(), chromium.to_owned());
        async move {
            tokio::task::spawn_blocking(move || {
                let out = Command::new(&chromium)
                    .args([
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--no-first-run",
                        "--disable-dev-shm-usage",
                        &format!("--user-data-dir={}", profile.display()),
                        &format!("--proxy-server=http://{proxy}"),
                        "--proxy-bypass-list=<-loopback>",
                        "--virtual-time-budget=3000",
                        "--dump-dom",
                        &url,
                    ])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .await
            .unwrap()
        }
    };
    for url in [
        format!("http://{host}/gallery/item-001.html?"),
        format!("HTTP://IWF-TEST.Invalid:{port}/gallery/./item-001.html#top"),
        format!("http://{host}//gallery//item-001.html"),
        format!("http://{host}/gallery\\item%2D001.html"),
    ] {
        let page = dom(url.clone()).await;
        assert!(page.contains(BLOCKED), "{url}: {page}");
    }
    let page = dom(format!("http://{host}/gallery/item-002.html?")).await;
    assert!(
        page.contains("<h1 id=\"origin\">origin page</h1>"),
        "{page}"
    );
    origin_saw_no_listed_page(&r.origin);
}
