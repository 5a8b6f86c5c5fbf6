//! SafeSearch, YouTube restriction and unenforceable search engines, enforced the same on
//! both fronts. The real binary; a local upstream DNS server that gives every engine's own
//! name one loopback address and its enforcement host another; web origins (HTTP and HTTPS)
//! on each of those addresses, all on one port, so the test sees which address the proxy
//! really connected to. Every engine is checked on DNS (dig-like queries), on the proxy's
//! plain HTTP path, through a CONNECT tunnel and inside interception, each for a group with
//! SafeSearch and for its twin without.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use hedgerow_testkit::{Appliance, Origin, TestCa, UpstreamDns};
use hedgerow_testkit::{Transport, query_from};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

/// Every configuration names an illegal-tier list.
const IWF: (&str, &str) = ("iwf.txt", "illegal.example/a.html\n");

/// Client addresses, one per group.
const SAFE: [u8; 4] = [127, 0, 0, 1];
const OPEN: [u8; 4] = [127, 0, 0, 2];
const SAFE_TLS: [u8; 4] = [127, 0, 0, 3];
const OPEN_TLS: [u8; 4] = [127, 0, 0, 4];

/// An engine: the name asked for, its address, its enforcement host and that host's address
/// (for the group with SafeSearch; YouTube: strict), and the parameter set inside.
struct Engine {
    name: &'static str,
    own: Ipv4Addr,
    target: &'static str,
    enforced: Ipv4Addr,
    param: Option<&'static str>,
}

const ENGINES: [Engine; 6] = [
    Engine {
        name: "www.google.com",
        own: Ipv4Addr::new(127, 0, 10, 1),
        target: "forcesafesearch.google.com",
        enforced: Ipv4Addr::new(127, 0, 10, 2),
        param: Some("safe=active"),
    },
    Engine {
        name: "www.bing.com",
        own: Ipv4Addr::new(127, 0, 11, 1),
        target: "strict.bing.com",
        enforced: Ipv4Addr::new(127, 0, 11, 2),
        param: Some("adlt=strict"),
    },
    Engine {
        name: "duckduckgo.com",
        own: Ipv4Addr::new(127, 0, 12, 1),
        target: "safe.duckduckgo.com",
        enforced: Ipv4Addr::new(127, 0, 12, 2),
        param: Some("kp=1"),
    },
    Engine {
        name: "www.ecosia.org",
        own: Ipv4Addr::new(127, 0, 13, 1),
        target: "strict-safe-search.ecosia.org",
        enforced: Ipv4Addr::new(127, 0, 13, 2),
        param: None,
    },
    Engine {
        name: "pixabay.com",
        own: Ipv4Addr::new(127, 0, 14, 1),
        target: "safesearch.pixabay.com",
        enforced: Ipv4Addr::new(127, 0, 14, 2),
        param: Some("safesearch=true"),
    },
    Engine {
        name: "www.youtube.com",
        own: Ipv4Addr::new(127, 0, 15, 1),
        target: "restrict.youtube.com",
        enforced: Ipv4Addr::new(127, 0, 15, 2),
        param: None,
    },
];

const MODERATE: Ipv4Addr = Ipv4Addr::new(127, 0, 15, 3);
const YAHOO: Ipv4Addr = Ipv4Addr::new(127, 0, 16, 1);

struct Rig {
    app: Appliance,
    /// (address, plain HTTP origin, HTTPS origin) for every address in the zone.
    origins: Vec<(Ipv4Addr, Origin, Origin)>,
    http_port: u16,
    tls_port: u16,
    _up: hedgerow_testkit::RunningUpstream,
    dir: tempfile::TempDir,
    proxy: SocketAddr,
}

impl Rig {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The request heads the origins on `ip` received (plain and TLS).
    fn heads_at(&self, ip: Ipv4Addr) -> Vec<String> {
        self.origins
            .iter()
            .filter(|(a, _, _)| *a == ip)
            .flat_map(|(_, h, s)| h.heads().into_iter().chain(s.heads()))
            .collect()
    }

    /// The one address whose origins received a request whose head contains `marker`.
    fn reached(&self, marker: &str) -> Vec<Ipv4Addr> {
        self.origins
            .iter()
            .filter(|(_, h, s)| {
                h.heads()
                    .iter()
                    .chain(&s.heads())
                    .any(|x| x.contains(marker))
            })
            .map(|(a, _, _)| *a)
            .collect()
    }
}

/// Origins on every address, plain HTTP on one port and HTTPS on another (retrying with new
/// ports if one is taken on some address).
async fn origins(ca: &TestCa, ips: &[Ipv4Addr]) -> (Vec<(Ipv4Addr, Origin, Origin)>, u16, u16) {
    let names: Vec<&str> = ENGINES
        .iter()
        .map(|e| e.name)
        .chain(["search.yahoo.com"])
        .collect();
    'again: for _ in 0..20 {
        let first = Origin::http_at((ips[0], 0).into()).await.unwrap();
        let first_tls = Origin::https_at(ca, &names, (ips[0], 0).into())
            .await
            .unwrap();
        let (hp, tp) = (first.addr.port(), first_tls.addr.port());
        let mut out = vec![(ips[0], first, first_tls)];
        for ip in &ips[1..] {
            let (Ok(h), Ok(t)) = (
                Origin::http_at((*ip, hp).into()).await,
                Origin::https_at(ca, &names, (*ip, tp).into()).await,
            ) else {
                continue 'again;
            };
            out.push((*ip, h, t));
        }
        return (out, hp, tp);
    }
    panic!("no free pair of ports on every test address");
}

async fn rig() -> Rig {
    let mut zone = UpstreamDns::new()
        .a("restrictmoderate.youtube.com", MODERATE)
        .a("search.yahoo.com", YAHOO);
    let mut ips = vec![MODERATE, YAHOO];
    for e in &ENGINES {
        zone = zone.a(e.name, e.own).a(e.target, e.enforced);
        ips.extend([e.own, e.enforced]);
    }
    let up = zone.start().await;
    let origin_ca = TestCa::new("Origin test CA");
    let school_ca = TestCa::new("School CA");
    let (origins, http_port, tls_port) = origins(&origin_ca, &ips).await;
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("origin-ca.pem", origin_ca.cert_pem()),
        ("school-ca.pem", school_ca.cert_pem()),
        ("school-ca.key", school_ca.key_pem()),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let d = dir.path().display().to_string();
    let group = |name: &str, net: [u8; 4], safesearch: &str, youtube: &str| {
        format!(
            "[groups.{name}]\nnetworks = [\"{}/32\"]\nblock_categories = []\nsafesearch = \"{safesearch}\"\nyoutube = \"{youtube}\"\ndns_block = \"nxdomain\"\n\n",
            Ipv4Addr::from(net)
        )
    };
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
connect_ports = [{tls_port}]
intercept_groups = ["safe-tls", "open-tls"]
ca_cert = "{d}/school-ca.pem"
ca_key = "{d}/school-ca.key"
upstream_ca_file = "{d}/origin-ca.pem"

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

{safe}{open}{safe_tls}{open_tls}"#,
        upstream = up.addr,
        safe = group("safe", SAFE, "on", "strict"),
        open = group("open", OPEN, "off", "off"),
        safe_tls = group("safe-tls", SAFE_TLS, "on", "moderate"),
        open_tls = group("open-tls", OPEN_TLS, "off", "off"),
    );
    let app =
        tokio::task::spawn_blocking(move || Appliance::start(BIN.as_ref(), &cfg, &[IWF], &[]))
            .await
            .unwrap();
    let proxy = app.proxy.expect("proxy address in the log");
    Rig {
        app,
        origins,
        http_port,
        tls_port,
        _up: up,
        dir,
        proxy,
    }
}

/// curl through the proxy from `from`; (status, body).
async fn curl(proxy: SocketAddr, from: [u8; 4], args: &[&str], url: &str) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
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
    .args(["--interface", &Ipv4Addr::from(from).to_string()])
    .args(args)
    .arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("curl (Debian package curl) must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

async fn ask(app: &Appliance, from: [u8; 4], name: &str) -> Message {
    query_from(
        IpAddr::from(from),
        app.dns_udp,
        Transport::Udp,
        name,
        RecordType::A,
        Some(1232),
    )
    .await
    .unwrap_or_else(|| panic!("no answer for {name} from {from:?}\n{}", app.logs()))
}

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn cname(m: &Message) -> Option<String> {
    m.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(c) => Some(c.0.to_ascii()),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_engine_is_steered_on_dns_for_safesearch_groups_only() {
    let r = rig().await;
    for e in &ENGINES {
        let m = ask(&r.app, SAFE, e.name).await;
        assert_eq!(cname(&m), Some(format!("{}.", e.target)), "{}", e.name);
        assert_eq!(a_records(&m), [e.enforced], "{}", e.name);
        // The twin: a group without SafeSearch (or YouTube restriction) gets the engine.
        let m = ask(&r.app, OPEN, e.name).await;
        assert_eq!(cname(&m), None, "{} for a group without SafeSearch", e.name);
        assert_eq!(a_records(&m), [e.own], "{}", e.name);
    }
    let m = ask(&r.app, SAFE_TLS, "www.youtube.com").await;
    assert_eq!(a_records(&m), [MODERATE], "YouTube moderate");
    // Unenforceable engines: blocked with SafeSearch on, resolved without.
    let m = ask(&r.app, SAFE, "search.yahoo.com").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = ask(&r.app, OPEN, "search.yahoo.com").await;
    assert_eq!(a_records(&m), [YAHOO]);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_connects_to_the_enforcement_hosts_as_dns_steers() {
    let r = rig().await;
    let origin_ca = r.path("origin-ca.pem");
    for (i, e) in ENGINES.iter().enumerate() {
        // Plain HTTP: the proxy resolves the name itself.
        for (from, expect, tag) in [(SAFE, e.enforced, "safe"), (OPEN, e.own, "open")] {
            let marker = format!("/http-{tag}-{i}");
            let url = format!("http://{}:{}{marker}?q=cats", e.name, r.http_port);
            let (code, body) = curl(r.proxy, from, &[], &url).await;
            assert_eq!(code, 200, "{url} from {from:?}: {body}\n{}", r.app.logs());
            assert_eq!(r.reached(&marker), [expect], "{url} from {from:?}");
            // The engine's own parameter is set for the SafeSearch group only.
            let head = r
                .heads_at(expect)
                .into_iter()
                .find(|h| h.contains(&marker))
                .unwrap();
            if let Some(p) = e.param {
                assert_eq!(head.contains(p), tag == "safe", "{p} in {head}");
            }
        }
        // A CONNECT tunnel (not intercepted): the origin's own certificate, at the address
        // DNS would give this group.
        for (from, expect, tag) in [(SAFE, e.enforced, "safe"), (OPEN, e.own, "open")] {
            let marker = format!("/tunnel-{tag}-{i}");
            let url = format!("https://{}:{}{marker}", e.name, r.tls_port);
            let (code, body) = curl(r.proxy, from, &["--cacert", &origin_ca], &url).await;
            assert_eq!(code, 200, "{url} from {from:?}: {body}\n{}", r.app.logs());
            assert_eq!(r.reached(&marker), [expect], "{url} from {from:?}");
        }
    }
    // The steered requests are logged as DNS logs them: action rewrite, the enforcement host.
    let events = tokio::task::block_in_place(|| r.app.events(1, std::time::Duration::from_secs(5)));
    let steered = events
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| {
            e["target"]
                .as_str()
                .is_some_and(|t| t.contains("/http-safe-0"))
        })
        .expect("the event of the steered request");
    assert_eq!(steered["action"], "rewrite", "{steered}");
    assert_eq!(
        steered["rule"], "google -> forcesafesearch.google.com",
        "{steered}"
    );
    let open = events
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| {
            e["target"]
                .as_str()
                .is_some_and(|t| t.contains("/http-open-0"))
        })
        .expect("the event of the open group's request");
    assert_eq!(open["action"], "allow", "{open}");
}

#[tokio::test(flavor = "multi_thread")]
async fn inside_interception_the_parameters_and_youtube_header_are_enforced() {
    let r = rig().await;
    let school = r.path("school-ca.pem");
    for (i, e) in ENGINES.iter().enumerate() {
        for (from, tag) in [(SAFE_TLS, "safe"), (OPEN_TLS, "open")] {
            let marker = format!("/search-{tag}-{i}");
            let url = format!(
                "https://{}:{}{marker}?q=cats&safe=off&adlt=off&kp=-2&safesearch=false",
                e.name, r.tls_port
            );
            let (code, body) = curl(r.proxy, from, &["--cacert", &school], &url).await;
            assert_eq!(code, 200, "{url} from {from:?}: {body}\n{}", r.app.logs());
            let reached = r.reached(&marker);
            let expect = match (tag, e.name) {
                ("open", _) => e.own,
                (_, "www.youtube.com") => MODERATE,
                _ => e.enforced,
            };
            assert_eq!(reached, [expect], "{url} from {from:?}");
            let head = r
                .heads_at(expect)
                .into_iter()
                .find(|h| h.contains(&marker))
                .unwrap();
            if let Some(p) = e.param {
                assert_eq!(head.contains(p), tag == "safe", "{p} in {head}");
                let key = p.split('=').next().unwrap();
                let count = head.matches(&format!("{key}=")).count();
                assert_eq!(count, 1, "{key} set once in {head}");
            }
            if e.name == "www.youtube.com" {
                let restricted = head.contains("youtube-restrict: moderate");
                assert_eq!(restricted, tag == "safe", "{head}");
            } else {
                assert!(!head.contains("youtube-restrict"), "{head}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unenforceable_engines_are_blocked_on_the_proxy_for_safesearch_groups_only() {
    let r = rig().await;
    let origin_ca = r.path("origin-ca.pem");
    let url = format!("http://search.yahoo.com:{}/search?p=cats", r.http_port);
    let (code, body) = curl(r.proxy, SAFE, &[], &url).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("search-unenforceable"), "{body}");
    let (code, _) = curl(r.proxy, OPEN, &[], &url).await;
    assert_eq!(code, 200);
    assert_eq!(r.reached("/search?p=cats"), [YAHOO]);

    let url = format!("https://search.yahoo.com:{}/tls", r.tls_port);
    let (code, _) = curl(r.proxy, SAFE, &["--cacert", &origin_ca], &url).await;
    assert_ne!(code, 200, "a CONNECT to an unenforceable engine is refused");
    assert!(r.reached("/tls").is_empty());
    let (code, _) = curl(r.proxy, OPEN, &["--cacert", &origin_ca], &url).await;
    assert_eq!(code, 200);
    assert_eq!(r.reached("/tls"), [YAHOO]);
}

/// The proxy resolves through the DNS front's own client and cache: with a DNS-over-TLS
/// upstream and nothing else, proxied requests reach their sites (the old resolver skipped
/// TLS upstreams), the name is asked upstream once, and a DNS client asking the same name
/// afterwards is answered from the same cache.
#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_resolves_through_a_dns_over_tls_only_upstream_and_the_shared_cache() {
    let site = Ipv4Addr::new(127, 0, 20, 1);
    let (up, ca_pem) = UpstreamDns::new()
        .a("site.example", site)
        .start_tls("dot.test")
        .await;
    let origin = Origin::http_at((site, 0).into()).await.unwrap();
    let cfg = format!(
        r#"
[server]
state_dir = "{{dir}}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{}", protocol = "tls", tls_name = "dot.test", ca_file = "{{dir}}/ca.pem" }}]
rate_limit_qps = 0

[proxy]
listen = ["127.0.0.1:0"]
allow_destinations = ["127.0.0.0/8"]

[lists.iwf]
path = "{{dir}}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[groups.pupils]
networks = ["127.0.0.1/32"]
block_categories = []
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"
"#,
        up.addr
    );
    let files = [("ca.pem", ca_pem.clone()), (IWF.0, IWF.1.to_owned())];
    let app = tokio::task::spawn_blocking(move || {
        let f: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        Appliance::start(BIN.as_ref(), &cfg, &f, &[])
    })
    .await
    .unwrap();
    let proxy = app.proxy.expect("proxy address in the log");
    let url = format!("http://site.example:{}/over-dot", origin.addr.port());
    let (code, body) = curl(proxy, SAFE, &[], &url).await;
    assert_eq!(code, 200, "{body}\n{}", app.logs());
    assert!(origin.heads().iter().any(|h| h.contains("/over-dot")));
    let asked = up.asked();
    assert!(
        asked.contains(&("site.example.".to_owned(), RecordType::A))
            || asked
                .iter()
                .any(|(n, t)| n.starts_with("site.example") && *t == RecordType::A),
        "asked over TLS: {asked:?}"
    );
    let before = up.queries();
    // The same name from a DNS client: the cache the proxy filled answers it.
    let m = ask(&app, SAFE, "site.example").await;
    assert_eq!(a_records(&m), [site]);
    assert_eq!(up.queries(), before, "answered from the shared cache");
    // A second proxied request asks nothing upstream either.
    let (code, _) = curl(proxy, SAFE, &[], &url).await;
    assert_eq!(code, 200);
    assert_eq!(up.queries(), before);
}

/// The rules come from the policy snapshot in force: a reload that turns SafeSearch on for a
/// group and takes another out of interception changes both fronts at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_reload_changes_the_rules_on_both_fronts() {
    let r = rig().await;
    let bing = &ENGINES[1];
    let school = r.path("school-ca.pem");
    // Before: the open group reaches Bing itself, on both fronts, and Yahoo; open-tls is
    // intercepted (the school CA is presented).
    assert_eq!(a_records(&ask(&r.app, OPEN, bing.name).await), [bing.own]);
    let url = |m: &str| format!("http://{}:{}/{m}", bing.name, r.http_port);
    let (code, _) = curl(r.proxy, OPEN, &[], &url("before")).await;
    assert_eq!(code, 200);
    assert_eq!(r.reached("/before"), [bing.own]);
    let tls_url = format!("https://{}:{}/", bing.name, r.tls_port);
    let (code, _) = curl(r.proxy, OPEN_TLS, &["--cacert", &school], &tls_url).await;
    assert_eq!(code, 200, "intercepted before the reload");

    let text = std::fs::read_to_string(r.app.config_path()).unwrap();
    let open_before =
        "[groups.open]\nnetworks = [\"127.0.0.2/32\"]\nblock_categories = []\nsafesearch = \"off\"";
    assert!(text.contains(open_before), "{text}");
    let after = text
        .replace(open_before, &open_before.replace("\"off\"", "\"on\""))
        .replace(
            "intercept_groups = [\"safe-tls\", \"open-tls\"]",
            "intercept_groups = [\"safe-tls\"]",
        );
    r.app.write_file("hedgerow.toml", &after);
    let out = tokio::task::block_in_place(|| r.app.cli(&["reload"], &[]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let m = ask(&r.app, OPEN, bing.name).await;
    assert_eq!(a_records(&m), [bing.enforced], "DNS after the reload");
    let (code, _) = curl(r.proxy, OPEN, &[], &url("after")).await;
    assert_eq!(code, 200);
    assert_eq!(
        r.reached("/after"),
        [bing.enforced],
        "the proxy after the reload"
    );
    let m = ask(&r.app, OPEN, "search.yahoo.com").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let yahoo = format!("http://search.yahoo.com:{}/", r.http_port);
    assert_eq!(curl(r.proxy, OPEN, &[], &yahoo).await.0, 403);
    let (code, _) = curl(r.proxy, OPEN_TLS, &["--cacert", &school], &tls_url).await;
    assert_eq!(
        code, 0,
        "no longer intercepted: the school CA is not presented"
    );
}
