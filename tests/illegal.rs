//! The illegal tier end to end, through the real binary: it cannot be switched off, it keeps
//! enforcing its last good copy when a list goes missing or empty (and says so, with a
//! critical alert), it records breaches even with the access log off, it intercepts exactly
//! the hosts that carry URL-level entries, and no output channel ever shows an entry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hedgerow_testkit::{Appliance, Origin, TestCa, Transport, UpstreamDns, Webhook, query};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rustls::pki_types::pem::PemObject;
use support::{hedgerow, text};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");
const IWF: &str = "http://iwf-test.invalid/gallery/item-001.html\n";
const TERROR: &str = "terror-test.invalid\n";

/// The lists part of a configuration: the two illegal-tier lists and one category.
const LISTS: &str = r#"
[lists.iwf]
path = "{dir}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"
url_match = "exact"

[lists.terrorism]
path = "{dir}/terrorism.txt"
format = "domains"
kind = "illegal"
category = "terrorism"

[lists.adult]
path = "{dir}/adult.txt"
format = "domains"
category = "adult"
"#;

fn config(upstream: SocketAddr, state: &str, extra: &str) -> String {
    format!(
        r#"
[server]
state_dir = "{state}"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{upstream}" }}]
rate_limit_qps = 0
{LISTS}
[groups.pupils]
networks = ["127.0.0.0/8"]
block_categories = ["adult"]
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"
{extra}
"#
    )
}

fn files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("iwf.txt", IWF),
        ("terrorism.txt", TERROR),
        ("adult.txt", "adult.example\n"),
    ]
}

async fn start(cfg: String, files: Vec<(&'static str, &'static str)>) -> Appliance {
    tokio::task::spawn_blocking(move || Appliance::start(BIN.as_ref(), &cfg, &files, &[]))
        .await
        .unwrap()
}

async fn rcode(app: &Appliance, name: &str) -> ResponseCode {
    query(app.dns_udp, Transport::Udp, name, RecordType::A)
        .await
        .expect("an answer")
        .metadata
        .response_code
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// Writes a config and its lists into `dir` (`{dir}` filled in) and runs check-config.
fn check(dir: &std::path::Path, cfg: &str, lists: &[(&str, &str)]) -> (bool, String) {
    let fill = |s: &str| s.replace("{dir}", &dir.display().to_string());
    for (name, t) in lists {
        write(dir, name, t);
    }
    let path = dir.join("hedgerow.toml");
    std::fs::write(&path, fill(cfg)).unwrap();
    let out = hedgerow(&["check-config", path.to_str().unwrap()]);
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

#[test]
fn check_config_refuses_an_illegal_tier_that_is_optional_absent_or_empty() {
    let dir = tempfile::tempdir().unwrap();
    let up: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let state = dir.path().join("state").display().to_string();
    let good = config(up, &state, "");

    let (ok, out) = check(dir.path(), &good, &files());
    assert!(ok, "{out}");
    assert!(out.contains("2 illegal-tier entries"), "{out}");
    // No CA: the HTTPS gap for URL-level entries is stated.
    assert!(
        out.contains("cannot see the paths of HTTPS requests"),
        "{out}"
    );

    let optional = good.replace(
        "kind = \"illegal\"\ncategory = \"terrorism\"",
        "kind = \"illegal\"\ncategory = \"terrorism\"\noptional = true",
    );
    let (ok, out) = check(dir.path(), &optional, &files());
    assert!(!ok, "{out}");
    let line = optional
        .lines()
        .position(|l| l == "[lists.terrorism]")
        .unwrap()
        + 1;
    assert!(out.contains(&format!("hedgerow.toml:{line}:")), "{out}");
    assert!(out.contains("cannot be optional"), "{out}");

    let start = good.find("[lists.iwf]").unwrap();
    let end = good.find("[lists.adult]").unwrap();
    let absent = format!("{}{}", &good[..start], &good[end..]);
    let (ok, out) = check(dir.path(), &absent, &files());
    assert!(!ok, "{out}");
    assert!(out.contains("no illegal-tier list"), "{out}");

    // An empty list with no last good copy kept: refused at the list, by file and line.
    let mut lists = files();
    lists[1] = ("terrorism.txt", "# nothing here\n");
    let (ok, out) = check(dir.path(), &good, &lists);
    assert!(!ok, "{out}");
    let line = good.lines().position(|l| l == "[lists.terrorism]").unwrap() + 1;
    assert!(out.contains(&format!("hedgerow.toml:{line}:")), "{out}");
    assert!(out.contains("loaded no entry"), "{out}");
    assert!(out.contains("no last good copy"), "{out}");
    // check-config changed nothing in the state directory.
    assert!(!dir.path().join("state").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_emptied_illegal_list_keeps_its_last_good_copy_and_raises_a_critical_alert() {
    let up = UpstreamDns::new()
        .a("terror-test.invalid", Ipv4Addr::new(192, 0, 2, 9))
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .start()
        .await;
    let webhook = Webhook::start(0);
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().display().to_string();
    let alerts = format!(
        "[alerts]\nimmediate = \"high\"\n\n[alerts.webhook]\nurl = \"{}\"\n",
        webhook.url
    );
    let cfg = config(up.addr, &state, &alerts);
    let mut app = start(cfg.clone(), files()).await;
    assert_eq!(
        rcode(&app, "terror-test.invalid").await,
        ResponseCode::NXDomain
    );
    assert_eq!(rcode(&app, "allowed.example").await, ResponseCode::NoError);

    // The police list is emptied: the reload is taken, says so, and the list still blocks.
    app.write_file("terrorism.txt", "");
    let out = app.cli(&["reload"], &[]);
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("CRITICAL"), "{said}");
    assert!(said.contains("last good copy of 1 entries"), "{said}");
    assert!(!said.contains("terror-test"), "{said}");
    assert_eq!(
        rcode(&app, "terror-test.invalid").await,
        ResponseCode::NXDomain
    );
    assert_eq!(rcode(&app, "allowed.example").await, ResponseCode::NoError);

    // The DSL and the technician hear of it at once, as an operational alert.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        if let Some(a) = webhook
            .json()
            .into_iter()
            .find(|j| j["type"] == "operational")
        {
            break a;
        }
        assert!(Instant::now() < deadline, "no operational alert");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["kind"], "illegal-tier-last-good");
    assert!(alert["message"].as_str().unwrap().contains("terrorism"));

    // check-config says so too.
    let out = hedgerow(&["check-config", app.config_path().to_str().unwrap()]);
    let said = text(&out.stdout);
    assert!(
        said.contains("CRITICAL: illegal-tier list \"terrorism\""),
        "{said}"
    );

    // A restart with the file gone starts, and still enforces the kept copy.
    app.stop();
    std::fs::remove_file(app.dir().join("terrorism.txt")).unwrap();
    let mut again = files();
    again.retain(|(n, _)| *n != "terrorism.txt");
    // The same state directory, new folder for the rest: the kept copy is what counts.
    let cfg2 = cfg.clone();
    let app2 = start(cfg2, again).await;
    assert!(
        app2.logs()
            .contains("CRITICAL: illegal-tier list \"terrorism\""),
        "{}",
        app2.logs()
    );
    assert_eq!(
        rcode(&app2, "terror-test.invalid").await,
        ResponseCode::NXDomain
    );
    assert_eq!(rcode(&app2, "allowed.example").await, ResponseCode::NoError);

    // The kept copy holds no entry in clear, and its key is the service's alone.
    use std::os::unix::fs::PermissionsExt;
    let kept = state_dir.path().join("illegal");
    let mode = std::fs::metadata(kept.join("key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    for e in std::fs::read_dir(&kept).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let s = String::from_utf8_lossy(&bytes);
        assert!(!s.contains("terror-test") && !s.contains("item-001"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaches_are_recorded_with_the_access_log_off() {
    let up = UpstreamDns::new()
        .a("allowed.example", Ipv4Addr::new(192, 0, 2, 1))
        .start()
        .await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(up.addr, &state.path().display().to_string(), "")
        .replace("[server]\n", "[server]\naccess_log = false\n");
    let app = start(cfg, files()).await;
    assert_eq!(
        rcode(&app, "terror-test.invalid").await,
        ResponseCode::NXDomain
    );
    assert_eq!(rcode(&app, "adult.example").await, ResponseCode::NXDomain);
    assert_eq!(rcode(&app, "allowed.example").await, ResponseCode::NoError);
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let out = app.cli(&["breaches"], &["list"]);
        let t = text(&out.stdout);
        if t.contains("terrorism") || Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(listed.contains("terrorism"), "{listed}");
    assert!(listed.to_lowercase().contains("critical"), "{listed}");
    assert!(!listed.contains("terror-test"), "{listed}");
    // No access event was stored.
    let out = app.cli(&["logs"], &["--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).trim().is_empty(), "{}", text(&out.stdout));
}

/// Opens a CONNECT tunnel from 127.0.0.1; returns the stream and the status code.
async fn connect(proxy: SocketAddr, target: &str) -> (TcpStream, u16) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut r = BufReader::new(&mut s);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let code = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).await.unwrap() == 0 || l == "\r\n" {
            break;
        }
    }
    (s, code)
}

/// TLS through a tunnel trusting only `ca_pem`, then one GET; `Err` if the handshake fails.
async fn tls_get(stream: TcpStream, sni: &str, ca_pem: &str, path: &str) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
    let mut tls = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream),
    )
    .await
    .map_err(|_| "timeout".to_owned())?
    .map_err(|e| e.to_string())?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_string(&mut out))
        .await
        .map_err(|_| "timeout".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Through curl and the proxy: (status, body).
fn curl(proxy: SocketAddr, url: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-g",
            "--max-time",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .args(["-x", &format!("http://{proxy}"), "--noproxy", ""])
        .arg(url)
        .output()
        .expect("curl (Debian package curl) must be installed");
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = t.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_hits_on_every_front_never_show_the_entry_anywhere() {
    let up = UpstreamDns::new()
        .a("iwf-test.invalid", Ipv4Addr::LOCALHOST)
        .a("terror-test.invalid", Ipv4Addr::LOCALHOST)
        .a("secure.example", Ipv4Addr::LOCALHOST)
        .start()
        .await;
    let origin_ca = TestCa::new("Origin test CA");
    let school_ca = TestCa::new("School CA");
    let http = Origin::http().await;
    let https = Origin::https(&origin_ca, &["iwf-test.invalid", "secure.example"]).await;
    let webhook = Webhook::start(0);
    let keys = tempfile::tempdir().unwrap();
    for (name, t) in [
        ("origin-ca.pem", origin_ca.cert_pem()),
        ("school-ca.pem", school_ca.cert_pem()),
        ("school-ca.key", school_ca.key_pem()),
    ] {
        write(keys.path(), name, &t);
    }
    let k = keys.path().display().to_string();
    let state = tempfile::tempdir().unwrap();
    let extra = format!(
        r#"
[proxy]
listen = ["127.0.0.1:0"]
allow_destinations = ["127.0.0.0/8"]
connect_ports = [443, {tls}]
ca_cert = "{k}/school-ca.pem"
ca_key = "{k}/school-ca.key"
never_intercept = ["iwf-test.invalid"]
upstream_ca_file = "{k}/origin-ca.pem"

[[breaches.rules]]
name = "adult"
categories = ["adult"]
severity = "low"

[alerts]
immediate = "low"

[alerts.webhook]
url = "{hook}"
"#,
        tls = https.addr.port(),
        hook = webhook.url,
    );
    let cfg = config(up.addr, &state.path().display().to_string(), &extra);
    let app = tokio::task::spawn_blocking(move || {
        Appliance::start(BIN.as_ref(), &cfg, &files(), &[("HEDGEROW_LOG", "debug")])
    })
    .await
    .unwrap();
    let proxy = app.proxy.expect("proxy address");
    let hp = http.addr.port();
    let tp = https.addr.port();
    let mut pages = Vec::new();

    // DNS: the police list's domain is blocked; the host of a URL-level entry is not (the IWF
    // asks for no domain-level blocking of URL entries).
    assert_eq!(
        rcode(&app, "terror-test.invalid").await,
        ResponseCode::NXDomain
    );
    assert_eq!(rcode(&app, "iwf-test.invalid").await, ResponseCode::NoError);

    // Proxy, plain HTTP: the IWF entry gets the IWF page; a sibling page is served.
    let (code, body) = tokio::task::spawn_blocking(move || {
        curl(
            proxy,
            &format!("http://iwf-test.invalid:{hp}/gallery/item-001.html"),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("Internet Watch Foundation"), "{body}");
    assert!(body.contains("Stop It Now"), "{body}");
    pages.push(body);
    let (code, body) = tokio::task::spawn_blocking(move || {
        curl(
            proxy,
            &format!("http://iwf-test.invalid:{hp}/gallery/item-002.html"),
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    // The police list's domain over HTTP: the police page.
    let (code, body) = tokio::task::spawn_blocking(move || {
        curl(proxy, &format!("http://terror-test.invalid:{hp}/"))
    })
    .await
    .unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("Counter Terrorism Internet Referral Unit"),
        "{body}"
    );
    assert!(!body.contains("Internet Watch Foundation"), "{body}");
    pages.push(body);

    // CONNECT to the police list's domain: refused.
    let (_s, code) = connect(proxy, &format!("terror-test.invalid:{tp}")).await;
    assert_eq!(code, 403);

    // HTTPS to the host of a URL-level entry: intercepted for this group, which intercepts
    // nothing else, and although never_intercept names it; the entry is blocked inside TLS,
    // a sibling page is served.
    let school = school_ca.cert_pem();
    let (s, code) = connect(proxy, &format!("iwf-test.invalid:{tp}")).await;
    assert_eq!(code, 200);
    let page = tls_get(s, "iwf-test.invalid", &school, "/gallery/item-001.html")
        .await
        .expect("intercepted with the school CA");
    assert!(page.starts_with("HTTP/1.1 403"), "{page}");
    assert!(page.contains("Internet Watch Foundation"), "{page}");
    pages.push(page);
    let (s, _) = connect(proxy, &format!("iwf-test.invalid:{tp}")).await;
    let page = tls_get(s, "iwf-test.invalid", &school, "/gallery/item-002.html")
        .await
        .expect("intercepted with the school CA");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    // The twin: a host without URL-level entries passes through untouched (only the origin's
    // own CA verifies it).
    let (s, _) = connect(proxy, &format!("secure.example:{tp}")).await;
    assert!(tls_get(s, "secure.example", &school, "/").await.is_err());
    let (s, _) = connect(proxy, &format!("secure.example:{tp}")).await;
    let page = tls_get(s, "secure.example", &origin_ca.cert_pem(), "/")
        .await
        .expect("passed through");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");

    // Every record of those hits shows the protected marker and its reference instead.
    let deadline = Instant::now() + Duration::from_secs(15);
    let events = loop {
        let events: Vec<serde_json::Value> = app
            .events(1, Duration::ZERO)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let illegal = events.iter().filter(|e| e["tier"] == "illegal").count();
        if illegal >= 4 || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let illegal: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["tier"] == "illegal").collect();
    assert!(illegal.len() >= 4, "{events:?}");
    for e in &illegal {
        let t = e["target"].as_str().unwrap();
        assert!(t.starts_with("[protected entry] #"), "{e}");
        assert_eq!(e["rule"], e["target"], "{e}");
    }
    // The same entry has the same reference on every front.
    let iwf_refs: std::collections::BTreeSet<&str> = illegal
        .iter()
        .filter(|e| e["category"] == "child-abuse")
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(iwf_refs.len(), 1, "{iwf_refs:?}");

    // Wait for the alerts of the breaches, then gather every output channel.
    let deadline = Instant::now() + Duration::from_secs(15);
    while webhook.json().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut outputs: Vec<(String, String)> = Vec::new();
    for (what, sub, args) in [
        ("logs", vec!["logs"], vec![]),
        ("logs csv", vec!["logs"], vec!["--format", "csv"]),
        ("logs json", vec!["logs"], vec!["--format", "json"]),
        ("breaches", vec!["breaches"], vec!["list"]),
    ] {
        let out = app.cli(&sub, &args);
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        outputs.push((what.into(), text(&out.stdout) + &text(&out.stderr)));
    }
    let listed = outputs[3].1.clone();
    assert!(listed.contains("terrorism"), "{listed}");
    for id in 1..=8 {
        let out = app.cli(&["breaches"], &["show", &id.to_string()]);
        outputs.push((
            format!("breach {id}"),
            text(&out.stdout) + &text(&out.stderr),
        ));
    }
    let export = app.dir().join("export.jsonl");
    let out = app.cli(&["export"], &["--out", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    outputs.push(("export".into(), std::fs::read_to_string(&export).unwrap()));
    for target in [
        "http://iwf-test.invalid/gallery/item-001.html",
        "terror-test.invalid",
    ] {
        let out = app.cli(&["lookup"], &["--client", "127.0.0.1", target]);
        let said = text(&out.stdout);
        assert!(said.contains("illegal"), "{said}");
        outputs.push((format!("lookup {target}"), said + &text(&out.stderr)));
    }
    let hooks = webhook.json();
    assert!(!hooks.is_empty(), "no alert sent");
    outputs.push((
        "webhook".into(),
        hooks
            .iter()
            .map(|j| j.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    ));
    for (i, p) in pages.iter().enumerate() {
        outputs.push((format!("block page {i}"), p.clone()));
    }
    outputs.push(("service log".into(), app.logs()));

    for (what, out) in &outputs {
        for secret in ["item-001", "terror-test"] {
            assert!(
                !out.contains(secret),
                "{what} shows the illegal-tier entry {secret:?}:\n{out}"
            );
        }
    }
    // The twin: what is not an illegal-tier hit is shown as it was asked.
    assert!(outputs[0].1.contains("item-002.html"), "{}", outputs[0].1);
}
