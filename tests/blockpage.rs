//! The block page for DNS blocks, end to end: real DNS packets ask the real binary for a
//! blocked name and get the block page's address; curl (from the same client address, sent
//! where the DNS answer says) and headless Chromium get the page from the block page server,
//! whose reference matches the query's log entry; the review form is posted with curl, listed
//! and decided with `hedgerow reviews`, and its status looked up by reference. HTTPS gets a
//! certificate minted from the school CA, for blocked names only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use hedgerow_testkit::{Appliance, RunningUpstream, TestCa, Transport, UpstreamDns, query_from};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// Clients: .1 and .3 in the block-page group (.3 a registered device), .4 in an
/// approved-only group, .5 in a group answered NXDOMAIN, .6 in the block-page group but never
/// asks the DNS front.
const CHROMIUM: &str = "127.0.0.1";
const PUPIL: &str = "127.0.0.3";
const EARLY: &str = "127.0.0.4";
const NX: &str = "127.0.0.5";
const ELSEWHERE: &str = "127.0.0.6";

struct Rig {
    app: Appliance,
    _up: RunningUpstream,
    _ca_dir: tempfile::TempDir,
    ca: String,
    page: SocketAddr,
    tls_page: SocketAddr,
}

async fn rig() -> Rig {
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .a("games.example", Ipv4Addr::new(192, 0, 2, 67))
        .a("garden.example", Ipv4Addr::new(192, 0, 2, 2))
        .a("tracker.example", Ipv4Addr::new(192, 0, 2, 3))
        .a("terror.example", Ipv4Addr::new(192, 0, 2, 4))
        .start()
        .await;
    let ca = TestCa::new("School CA");
    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::write(ca_dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(ca_dir.path().join("ca.key"), ca.key_pem()).unwrap();
    let d = ca_dir.path().display();
    let cfg = format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0
blockpage_ipv4 = "127.0.0.1"
blockpage_ipv6 = "::1"

[proxy]
listen = ["127.0.0.1:0"]
ca_cert = "{d}/ca.pem"
ca_key = "{d}/ca.key"
review_contact = "ask Mr Lee in the IT office"

[blockpage]
listen = ["127.0.0.1:0"]
tls_listen = ["127.0.0.1:0"]

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.terrorism]
path = "{{dir}}/terrorism.txt"
format = "domains"
kind = "illegal"
category = "terrorism"

[lists.games]
path = "{{dir}}/games.txt"
format = "domains"
category = "games"

[groups.page]
networks = ["127.0.0.1/32", "127.0.0.3/32", "127.0.0.6/32"]
block_categories = ["games"]
safesearch = "off"
youtube = "off"
dns_block = "blockpage"

[groups.early]
networks = ["127.0.0.4/32"]
mode = "approved-only"
allow = ["garden.example"]
safesearch = "on"
youtube = "strict"
dns_block = "blockpage"

[groups.nx]
networks = ["127.0.0.5/32"]
block_categories = ["games"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"

[[devices]]
name = "Library-PC-3"
ip = "127.0.0.3"
"#,
        upstream = up.addr,
    );
    let app = tokio::task::spawn_blocking(move || {
        Appliance::start(
            BIN.as_ref(),
            &cfg,
            &[
                ("iwf.txt", "iwf-test.invalid/a.html\n"),
                ("terrorism.txt", "terror.example\n"),
                ("games.txt", "games.example\n"),
            ],
            &[],
        )
    })
    .await
    .unwrap();
    let page = app.listeners("listening for block pages (HTTP) on ")[0];
    let tls_page = app.listeners("listening for block pages (HTTPS) on ")[0];
    Rig {
        app,
        _up: up,
        ca: format!("{d}/ca.pem"),
        _ca_dir: ca_dir,
        page,
        tls_page,
    }
}

async fn ask(r: &Rig, from: &str, name: &str, qtype: RecordType) -> Message {
    query_from(
        from.parse().unwrap(),
        r.app.dns_udp,
        Transport::Udp,
        name,
        qtype,
        Some(1232),
    )
    .await
    .expect("an answer")
}

/// The address in an A or AAAA answer.
fn address(m: &Message) -> Option<IpAddr> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    })
}

/// curl from the loopback address `from`, connecting `name` to `at` as a DNS answer would
/// (`--resolve`). Returns (status or curl's exit code when no response, headers and body).
async fn curl(from: &str, args: &[&str], url: &str, name: &str, at: SocketAddr) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10", "--noproxy", "*"])
        .args(["--interface", from])
        .args(["--resolve", &format!("{name}:{}:{}", at.port(), at.ip())])
        .args(args)
        .arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("curl must be installed"))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if code == 0 {
        // No HTTP response: curl's own exit code, negated into the 1000s to tell apart.
        return (1000 + out.status.code().unwrap_or(0) as u16, text);
    }
    (code, text)
}

/// The reference shown on a block page.
fn reference_on(page: &str) -> String {
    let start = page.find("<code id=\"reference\">").expect("a reference") + 21;
    page[start..start + 16].to_owned()
}

/// Access events as JSON, waiting until one matches `pred`.
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

fn hex(v: &serde_json::Value) -> String {
    format!("{:016x}", v.as_u64().expect("a reference on the event"))
}

fn cli(app: &Appliance, args: &[&str]) -> String {
    let out = tokio::task::block_in_place(|| app.cli(&["reviews"], args));
    assert!(
        out.status.success(),
        "hedgerow reviews {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_block_leads_to_its_block_page_and_a_review_that_is_stored_listed_decided_and_looked_up()
 {
    let mut r = rig().await;
    // The DNS front sends the blocked name to the block page's address.
    let a = ask(&r, PUPIL, "games.example", RecordType::A).await;
    assert_eq!(address(&a), Some(r.page.ip()));
    let aaaa = ask(&r, PUPIL, "games.example", RecordType::AAAA).await;
    assert_eq!(address(&aaaa), Some("::1".parse().unwrap()));
    // The browser goes where the answer says, with the name it asked for.
    let url = format!("http://games.example:{}/levels/1", r.page.port());
    let (code, page) = curl(PUPIL, &[], &url, "games.example", r.page).await;
    assert_eq!(code, 403, "{page}");
    assert!(page.contains("This page is blocked"), "{page}");
    assert!(
        page.contains("<span id=\"category\">Games</span> (<code id=\"category-id\">games</code>)"),
        "{page}"
    );
    assert!(page.contains("ask Mr Lee in the IT office"), "{page}");
    assert!(page.contains("<form id=\"review\""), "{page}");
    let reference = reference_on(&page);
    // The page's reference is the one on the query's log entry (A and AAAA of one load share
    // it), with the device and the category.
    for qtype in ["A", "AAAA"] {
        let ev = event_where(&r.app, |e| {
            e["front"] == "dns" && e["target"] == "games.example" && e["qtype"] == qtype
        })
        .await;
        assert_eq!(hex(&ev["reference"]), reference, "{ev}");
        assert_eq!(ev["verdict"], "block");
        assert_eq!(ev["category"], "games");
        assert_eq!(ev["device"], "Library-PC-3");
    }

    // The review form, posted as a browser posts it.
    let (code, head) = curl(
        PUPIL,
        &[
            "--data-urlencode",
            &format!("reference={reference}"),
            "--data-urlencode",
            "reason=We need it for our coding project",
            "--data-urlencode",
            "name=Sam",
        ],
        &format!("http://games.example:{}/review", r.page.port()),
        "games.example",
        r.page,
    )
    .await;
    assert_eq!(code, 303, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: /review/{reference}")),
        "{head}"
    );
    // Listed for the technician, with who asked and what for.
    let listed = cli(&r.app, &["list"]);
    let line = listed
        .lines()
        .find(|l| l.starts_with(&reference))
        .unwrap_or_else(|| panic!("{listed}"));
    for want in [
        "pending",
        "page",
        "Library-PC-3",
        "games.example",
        "coding project",
    ] {
        assert!(line.contains(want), "{want}: {line}");
    }
    let shown = cli(&r.app, &["show", &reference]);
    for want in ["category:  games", "name:      Sam", "tier:      category"] {
        assert!(shown.contains(want), "{want}: {shown}");
    }
    // The requester looks the status up by reference.
    let status_url = format!("http://games.example:{}/review/{reference}", r.page.port());
    let (code, status) = curl(PUPIL, &[], &status_url, "games.example", r.page).await;
    assert_eq!(code, 200, "{status}");
    assert!(
        status.contains("<strong id=\"review-status\">pending</strong>"),
        "{status}"
    );
    // Decided by the technician, signed in as their own account (the decision is
    // attributed to it): the requester sees it, with the note.
    let out = tokio::task::block_in_place(|| {
        let tech = r.app.token("it.tech", "technician");
        r.app.cli_as(
            &tech,
            &["reviews"],
            &[
                "decide",
                &reference,
                "approved",
                "--note",
                "Unblocked for Year 5",
            ],
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains("is now approved"), "{out}");
    let (_, status) = curl(PUPIL, &[], &status_url, "games.example", r.page).await;
    assert!(
        status.contains("<strong id=\"review-status\">approved</strong>"),
        "{status}"
    );
    assert!(status.contains("Unblocked for Year 5"), "{status}");
    assert_eq!(
        cli(&r.app, &["list", "--status", "pending"])
            .lines()
            .count(),
        2,
        "header and count only"
    );
    // A second request for the same block keeps the first.
    let (code, _) = curl(
        PUPIL,
        &["--data", &format!("reference={reference}&reason=again")],
        &format!("http://games.example:{}/review", r.page.port()),
        "games.example",
        r.page,
    )
    .await;
    assert_eq!(code, 303);
    assert!(cli(&r.app, &["show", &reference]).contains("coding project"));
    // An unknown reference is not found; an empty reason is refused.
    let (code, _) = curl(
        PUPIL,
        &[],
        &format!(
            "http://games.example:{}/review/00000000000000ff",
            r.page.port()
        ),
        "games.example",
        r.page,
    )
    .await;
    assert_eq!(code, 404);
    let (code, _) = curl(
        PUPIL,
        &["--data", &format!("reference={reference}&reason=")],
        &format!("http://games.example:{}/review", r.page.port()),
        "games.example",
        r.page,
    )
    .await;
    assert_eq!(code, 400);

    // Does not over-block: an allowed name resolves to its own address and carries no
    // reference; sent to the block page anyway, it is "not blocked now", not a block page.
    let a = ask(&r, PUPIL, "allowed.example", RecordType::A).await;
    assert_eq!(address(&a), Some(IpAddr::from([192, 0, 2, 1])));
    let ev = event_where(&r.app, |e| e["target"] == "allowed.example").await;
    assert!(ev["reference"].is_null(), "{ev}");
    let (code, page) = curl(
        PUPIL,
        &[],
        &format!("http://allowed.example:{}/", r.page.port()),
        "allowed.example",
        r.page,
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        page.contains("not blocked now") && !page.contains("id=\"reference\""),
        "{page}"
    );
    // A group answered NXDOMAIN gets no address and no reference.
    let nx = ask(&r, NX, "games.example", RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let ev = event_where(&r.app, |e| {
        e["target"] == "games.example" && e["client"] == NX
    })
    .await;
    assert!(ev["reference"].is_null(), "{ev}");

    // With the appliance stopped, `reviews` opens the store itself.
    r.app.stop();
    let listed = cli(&r.app, &["list", "--json"]);
    let stored: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(stored["status"], "approved");
    assert_eq!(stored["note"], "Unblocked for Year 5");
    assert_eq!(stored["decided_by"], "it.tech");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_noted_dns_block_the_page_server_asks_the_policy_and_logs_its_own_entry() {
    let r = rig().await;
    // This client never asked the DNS front (another resolver, a restart, an old cache).
    let url = format!("http://games.example:{}/play", r.page.port());
    let (code, page) = curl(ELSEWHERE, &[], &url, "games.example", r.page).await;
    assert_eq!(code, 403, "{page}");
    let reference = reference_on(&page);
    let ev = event_where(&r.app, |e| e["client"] == ELSEWHERE).await;
    assert_eq!(ev["front"], "proxy");
    assert_eq!(ev["target"], "http://games.example/play");
    assert_eq!(ev["verdict"], "block");
    assert_eq!(hex(&ev["reference"]), reference);
    // A client in no group gets nothing.
    let (code, _) = curl("127.0.0.9", &[], &url, "games.example", r.page).await;
    assert_eq!(code, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_every_block_page_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = rig().await;
    async fn open_from(from: &str, to: SocketAddr) -> tokio::net::TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(from.parse().unwrap(), 0))
            .unwrap();
        socket.connect(to).await.unwrap()
    }
    // The answer to one request on a fresh connection: a status line, or "" when the server
    // closed it unanswered.
    async fn answer(mut s: tokio::net::TcpStream) -> String {
        let req = "GET /play HTTP/1.1\r\nHost: games.example\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).await.is_err() {
            return String::new();
        }
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the server neither answered nor closed");
        String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }
    // A script holds 32 idle connections open.
    let mut held = Vec::new();
    for _ in 0..32 {
        held.push(open_from(PUPIL, r.page).await);
    }
    // Give the server time to admit all of them before the next one arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Its 33rd is closed unanswered...
    let refused = answer(open_from(PUPIL, r.page).await).await;
    assert_eq!(refused, "", "the 33rd connection was served");
    // ...while another pupil still gets the page.
    let other = answer(open_from(ELSEWHERE, r.page).await).await;
    assert!(other.starts_with("HTTP/1.1 403"), "{other}");
    // Once the script lets go, its slots come back.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = answer(open_from(PUPIL, r.page).await).await;
    assert!(again.starts_with("HTTP/1.1 403"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_only_and_illegal_tier_dns_blocks_get_their_own_pages() {
    let r = rig().await;
    // Walled garden: an unapproved name gets the "not on the approved list" page.
    let a = ask(&r, EARLY, "tracker.example", RecordType::A).await;
    assert_eq!(address(&a), Some(r.page.ip()));
    let (code, page) = curl(
        EARLY,
        &[],
        &format!("http://tracker.example:{}/", r.page.port()),
        "tracker.example",
        r.page,
    )
    .await;
    assert_eq!(code, 403);
    assert!(
        page.contains("This page is not on the approved list"),
        "{page}"
    );
    let reference = reference_on(&page);
    let ev = event_where(&r.app, |e| e["target"] == "tracker.example").await;
    assert_eq!(
        (ev["tier"].as_str(), hex(&ev["reference"])),
        (Some("not-approved"), reference)
    );
    // Its approved site resolves as usual.
    let a = ask(&r, EARLY, "garden.example", RecordType::A).await;
    assert_eq!(address(&a), Some(IpAddr::from([192, 0, 2, 2])));

    // The illegal tier: the police page, nothing of the address on it, in the log or in a
    // review request.
    let a = ask(&r, PUPIL, "terror.example", RecordType::A).await;
    assert_eq!(address(&a), Some(r.page.ip()));
    let (code, page) = curl(
        PUPIL,
        &[],
        &format!("http://terror.example:{}/", r.page.port()),
        "terror.example",
        r.page,
    )
    .await;
    assert_eq!(code, 403);
    assert!(
        page.contains("Counter Terrorism Internet Referral Unit"),
        "{page}"
    );
    let body = page.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(!body.contains("terror.example"), "{page}");
    let reference = reference_on(&page);
    let (code, _) = curl(
        PUPIL,
        &[
            "--data",
            &format!("reference={reference}&reason=blocked+in+error"),
        ],
        &format!("http://terror.example:{}/review", r.page.port()),
        "terror.example",
        r.page,
    )
    .await;
    assert_eq!(code, 303);
    let shown = cli(&r.app, &["show", &reference]);
    assert!(shown.contains("target:    [protected entry] #"), "{shown}");
    assert!(!shown.contains("terror.example"), "{shown}");
    let export = r.app.dir().join("export.jsonl");
    let out = tokio::task::block_in_place(|| {
        r.app.cli(&["export"], &["--out", export.to_str().unwrap()])
    });
    assert!(out.status.success());
    let text = std::fs::read_to_string(&export).unwrap();
    assert!(text.contains("\"kind\":\"review\""), "reviews are exported");
    assert!(!text.contains("terror.example"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_gets_a_certificate_minted_for_blocked_names_only() {
    let r = rig().await;
    let a = ask(&r, PUPIL, "games.example", RecordType::A).await;
    assert_eq!(address(&a), Some(r.tls_page.ip()));
    let url = format!("https://games.example:{}/secret/level", r.tls_page.port());
    let (code, page) = curl(
        PUPIL,
        &["--cacert", &r.ca],
        &url,
        "games.example",
        r.tls_page,
    )
    .await;
    assert_eq!(code, 403, "{page}");
    assert!(
        page.contains("<code id=\"url\">https://games.example/secret/level</code>"),
        "{page}"
    );
    let reference = reference_on(&page);
    let ev = event_where(&r.app, |e| {
        e["target"] == "games.example" && e["client"] == PUPIL
    })
    .await;
    assert_eq!(hex(&ev["reference"]), reference);
    // A device that does not trust the school CA sees a certificate error, as a browser does.
    let (code, _) = curl(PUPIL, &[], &url, "games.example", r.tls_page).await;
    assert_eq!(code, 1060, "curl: peer certificate cannot be authenticated");
    // No certificate for a name that is not blocked for this client: the handshake fails.
    let (code, _) = curl(
        PUPIL,
        &["--cacert", &r.ca],
        &format!("https://allowed.example:{}/", r.tls_page.port()),
        "allowed.example",
        r.tls_page,
    )
    .await;
    assert!(code >= 1000, "no TLS for an allowed name: {code}");
    let (code, _) = curl(
        NX,
        &["--cacert", &r.ca],
        &format!("https://games.example:{}/", r.tls_page.port()),
        "games.example",
        r.tls_page,
    )
    .await;
    assert_eq!(
        code, 403,
        "blocked for the nx group too, by the policy, though it never asked"
    );
}

/// Headless Chromium (Debian's `chromium`) sent to the block page by a DNS block shows the
/// page with the reference of the query's log entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_dns_block_page() {
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
    let a = ask(&r, CHROMIUM, "games.example", RecordType::A).await;
    let at = address(&a).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://games.example:{}/", r.page.port());
    let rule = format!("MAP games.example {at}");
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
                    // Resolve as the DNS front answered.
                    &format!("--host-resolver-rules={rule}"),
                    "--virtual-time-budget=3000",
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
    assert!(dom.contains("This page is blocked"), "{dom}");
    assert!(
        dom.contains("<span id=\"category\">Games</span> (<code id=\"category-id\">games</code>)"),
        "{dom}"
    );
    let ev = event_where(&r.app, |e| {
        e["target"] == "games.example" && e["client"] == CHROMIUM
    })
    .await;
    assert_eq!(reference_on(&dom), hex(&ev["reference"]));
}

/// `POST path` with a JSON body on the appliance's API socket as `token`: status and body.
fn api_post(app: &Appliance, token: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(app.dir().join("state/api.sock"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ])
        .arg(format!("http://appliance{path}"))
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Issue 16: a review request from the block page is turned into a change request that
/// allows the site for the requester's group; the requester's reference page shows it. A
/// governor may not; a decline needs its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_review_request_becomes_a_change_request_the_requester_sees() {
    let r = rig().await;
    let a = ask(&r, PUPIL, "games.example", RecordType::A).await;
    assert_eq!(address(&a), Some(r.page.ip()));
    let url = format!("http://games.example:{}/levels/1", r.page.port());
    let (_, page) = curl(PUPIL, &[], &url, "games.example", r.page).await;
    let reference = reference_on(&page);
    let (code, head) = curl(
        PUPIL,
        &[
            "--data-urlencode",
            &format!("reference={reference}"),
            "--data-urlencode",
            "reason=Our coding club uses it",
        ],
        &format!("http://games.example:{}/review", r.page.port()),
        "games.example",
        r.page,
    )
    .await;
    assert_eq!(code, 303, "{head}");
    let path = format!("/api/v1/reviews/{reference}/change");
    let (review, change) = tokio::task::block_in_place(|| {
        let gov = r.app.token("gov", "governor");
        let dsl = r.app.token("dsl", "dsl");
        let (code, v) = api_post(&r.app, &gov, &path, "{}");
        assert_eq!(code, 403, "{v}");
        // Declining needs the reason the requester reads.
        let (code, v) = api_post(
            &r.app,
            &dsl,
            &format!("/api/v1/reviews/{reference}/decide"),
            r#"{"status":"declined"}"#,
        );
        assert_eq!(code, 400, "{v}");
        let (code, v) = api_post(&r.app, &dsl, &path, "{}");
        assert_eq!(code, 200, "{v}");
        (v["review"].clone(), v["change"].clone())
    });
    assert_eq!(review["status"], "change-requested");
    let id = change["id"].as_u64().unwrap();
    assert_eq!(review["change"], id);
    assert_eq!(
        change["edits"][0],
        serde_json::json!({ "op": "add-allow", "group": "page", "entry": "games.example" })
    );
    assert_eq!(
        change["status"], "proposed",
        "loosening: it waits for an approver"
    );
    // The requester's reference page shows it.
    let status_url = format!("http://games.example:{}/review/{reference}", r.page.port());
    let (code, status) = curl(PUPIL, &[], &status_url, "games.example", r.page).await;
    assert_eq!(code, 200, "{status}");
    assert!(
        status.contains("<strong id=\"review-status\">change-requested</strong>"),
        "{status}"
    );
    assert!(
        status.contains(&format!("Change request #{id}")),
        "{status}"
    );
    // A second time is refused: it is decided.
    let again = tokio::task::block_in_place(|| {
        let dsl = r.app.token("dsl", "dsl");
        api_post(&r.app, &dsl, &path, "{}").0
    });
    assert_eq!(again, 409);
}
