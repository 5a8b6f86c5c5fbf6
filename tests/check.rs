//! The effectiveness check end to end: the real appliance with the bundled policy and lists
//! (config/policy.toml, config/lists.toml, blocklists/), four groups each on its own loopback
//! address, and `hedgerow check` probing it over the wire (DNS and the proxy) as their devices
//! would. With the bundled policy the check passes; after a change control loosens it (a
//! category unblocked for KS2, SafeSearch off for staff, a DoH name allowed for guests) the
//! scheduled check reports exactly those failures and alerts on the regression; each run is in
//! the check log; failures raise change requests; the governors' report renders to HTML and a
//! PDF that is not blank.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hedgerow_testkit::{Appliance, Origin, RunningUpstream, TestCa, UpstreamDns, Webhook};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Each group's devices: one loopback address each (registered devices choose the group;
/// 127.0.0.12 is in KS2's own networks).
const DEVICES: &str = r#"
[[devices]]
name = "check-early-years"
ip = "127.0.0.11"
group = "early-years"

[[devices]]
name = "check-staff"
ip = "127.0.0.13"
group = "staff"

[[devices]]
name = "check-guest"
ip = "127.0.0.14"
group = "guest"
"#;

struct Lab {
    _rt: tokio::runtime::Runtime,
    _upstream: RunningUpstream,
    _tls: Origin,
    _http: Origin,
    hook: Webhook,
    app: Appliance,
    probes: PathBuf,
    _probe_dir: tempfile::TempDir,
}

/// The appliance on the bundled policy and lists, an upstream that knows the few names the
/// proxy must reach (an HTTPS site for the TLS probes, the search engines), and the probe set.
fn lab(policy: &str, files: &[(&str, &str)], extra_include: &str) -> Lab {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = TestCa::new("check test CA");
    let tls = rt.block_on(Origin::https(&ca, &["www.bbc.co.uk", "phonicsplay.co.uk"]));
    let http = rt.block_on(Origin::http());
    // The engines' SafeSearch hosts serve on another address, the same port: a search the
    // proxy steers there (by name, Host or parameter) comes back from this server.
    safe_search_server("127.0.0.2", "forcesafesearch.google.com", http.addr.port());
    safe_search_server("127.0.0.3", "strict.bing.com", http.addr.port());
    let mut up = UpstreamDns::new();
    for name in [
        "www.bbc.co.uk",
        "phonicsplay.co.uk",
        "www.google.com",
        "www.bing.com",
    ] {
        up = up.a(name, [127, 0, 0, 1].into());
    }
    for name in [
        "forcesafesearch.google.com",
        "restrict.youtube.com",
        "restrictmoderate.youtube.com",
    ] {
        up = up.a(name, [127, 0, 0, 2].into());
    }
    up = up.a("strict.bing.com", [127, 0, 0, 3].into());
    let upstream = rt.block_on(up.start());
    let hook = Webhook::start(0);
    let r = repo().display().to_string();
    let config = format!(
        r#"
include = ["{r}/config/lists.toml", "policy.toml", "devices.toml"{extra_include}]

[server]
state_dir = "{{dir}}/state"
timezone = "Europe/London"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "{up}" }}]
timeout = "1s"
rate_limit_qps = 200
blockpage_ipv4 = "127.0.0.250"
blockpage_ipv6 = "::1"

[proxy]
listen = ["127.0.0.1:0"]
connect_ports = [443, {tls}]
allow_destinations = ["127.0.0.0/8"]

[breaches]
window = "1h"

[[breaches.rules]]
name = "adult content"
categories = ["adult"]
severity = "medium"

[alerts]
immediate = "high"

[alerts.webhook]
url = "{hook}"
"#,
        up = upstream.addr,
        tls = tls.addr.port(),
        hook = hook.url,
    );
    let mut all = vec![("policy.toml", policy), ("devices.toml", DEVICES)];
    all.extend_from_slice(files);
    let app = Appliance::start(
        Path::new(BIN),
        &config,
        &all,
        // After school on a weekday the staff may play games: the check runs in the morning.
        &[("HEDGEROW_TEST_NOW", "2026-11-30T10:00:00Z")],
    );
    let probe_dir = tempfile::tempdir().unwrap();
    let b = format!("{r}/blocklists");
    let probes = format!(
        r#"
[appliance]
dns = "{dns}"
proxy = "{proxy}"
blockpage = ["127.0.0.250"]
dns_rate = 150
http_port = {http}
timeout = "2s"

[corpus]
builtin = true
allow_lists = ["{b}/allow-education.txt"]

[corpus.lists]
adult = "{b}/adult.txt"
gambling = "{b}/gambling.txt"
games = "{b}/games.txt"
social = "{b}/social.txt"
circumvention = "{b}/circumvention.txt"
malware = "{b}/malware.txt"

[circumvention]
tls_host = "www.bbc.co.uk"
tls_port = {tls}
ip_literal = "127.0.0.1"

[[canaries]]
name = "IWF test URL"
target = "http://iwf-test.invalid/gallery/item-001.html"
kind = "illegal"

[[canaries]]
name = "police test entry"
target = "terror-test.invalid"
kind = "illegal"

[[canaries]]
name = "adult"
target = "adult-site.example"
kind = "adult"

[[canaries]]
name = "harmful phrase in a search"
target = "http://search.example/search?q=how+to+self+harm"
kind = "profanity"
# the guests' policy does not block self-harm
groups = ["early-years", "ks2", "staff"]

[groups.early-years]
source = "127.0.0.11"
block = ["adult", "gambling", "games", "social", "circumvention", "malware"]
must_allow = ["phonicsplay.co.uk", "topmarks.co.uk", "oxfordowl.co.uk", "scratch.mit.edu", "cbeebies.example"]
tls_host = "phonicsplay.co.uk"

[groups.ks2]
source = "127.0.0.12"
block = ["adult", "gambling", "games", "social", "circumvention", "malware"]

[groups.staff]
source = "127.0.0.13"
block = ["adult", "gambling", "games", "circumvention", "malware"]
allow = ["social"]
youtube = "moderate"

[groups.guest]
source = "127.0.0.14"
block = ["adult", "gambling", "malware", "circumvention"]
allow = ["games", "social"]
youtube = "moderate"
"#,
        dns = app.dns_udp,
        proxy = app.proxy.unwrap(),
        http = http.addr.port(),
        tls = tls.addr.port(),
    );
    let path = probe_dir.path().join("probes.toml");
    std::fs::write(&path, probes).unwrap();
    Lab {
        _rt: rt,
        _upstream: upstream,
        _tls: tls,
        _http: http,
        hook,
        app,
        probes: path,
        _probe_dir: probe_dir,
    }
}

/// A web server on `ip`:`port` standing for the SafeSearch host `name`: its pages say which
/// host served them.
fn safe_search_server(ip: &'static str, name: &'static str, port: u16) {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind((ip, port)).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        _ if line == "\r\n" => break,
                        _ => {}
                    }
                }
                let body = format!("<p>results served by {name}</p>");
                let _ = write!(
                    r.get_mut(),
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
}

fn bundled_policy() -> String {
    std::fs::read_to_string(repo().join("config/policy.toml")).unwrap()
}

/// `hedgerow ARGS --config … --json` with `token`; (success, JSON, all output).
fn run(app: &Appliance, token: Option<&str>, stdin: &str, args: &[&str]) -> (bool, Value, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--config")
        .arg(app.config_path())
        .arg("--json")
        .env_remove("HEDGEROW_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("HEDGEROW_TOKEN", t);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), v, stdout + &stderr)
}

fn ok(app: &Appliance, token: Option<&str>, stdin: &str, args: &[&str]) -> Value {
    let (success, v, out) = run(app, token, stdin, args);
    assert!(success, "hedgerow {args:?} failed: {out}");
    v
}

/// boss (approver), tech (technician), dsl, gov (governor): their API tokens.
fn accounts(app: &Appliance) -> [String; 4] {
    ok(
        app,
        None,
        "boss-password-1\n",
        &["user", "add", "boss", "--roles", "approver"],
    );
    let boss = ok(
        app,
        None,
        "boss-password-1\n",
        &["user", "token", "boss", "--user", "boss"],
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut out = vec![boss.clone()];
    for (name, roles) in [("tech", "technician"), ("dsl", "dsl"), ("gov", "governor")] {
        ok(
            app,
            Some(&boss),
            "",
            &["user", "add", name, "--roles", roles, "--no-password"],
        );
        out.push(
            ok(app, Some(&boss), "", &["user", "token", name])["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    out.try_into().unwrap()
}

fn failures(v: &Value) -> Vec<Value> {
    v["result"]["failures"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn describe(fs: &[Value]) -> String {
    fs.iter()
        .map(|f| {
            format!(
                "{} {} {} {}: expected {} got {}",
                f["group"], f["via"], f["section"], f["probe"], f["expected"], f["actual"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Illegal-tier test entries never appear in clear in what the check prints or records.
fn assert_protected(text: &str) {
    for secret in ["iwf-test.invalid", "terror-test.invalid"] {
        assert!(!text.contains(secret), "{secret} shown in clear:\n{text}");
    }
}

#[test]
fn check_passes_then_finds_exactly_the_weakening_and_reports() {
    let lab = lab(&bundled_policy(), &[], "");
    let app = &lab.app;
    let [boss, tech, _dsl, gov] = accounts(app);

    // 1. The bundled policy: every probe answers as the school expects.
    let (passed, v, out) = run(
        app,
        Some(&tech),
        "",
        &["check", "run", "--probes", lab.probes.to_str().unwrap()],
    );
    assert_protected(&out);
    let fs = failures(&v);
    assert!(
        passed && fs.is_empty(),
        "the check failed:\n{}",
        describe(&fs)
    );
    let result = &v["result"];
    assert_eq!(v["check"], 1);
    assert_eq!(result["groups"].as_array().unwrap().len(), 4);
    let probes = result["probes"].as_u64().unwrap();
    assert!(probes > 300, "only {probes} probes");
    // every group: canaries, categories, must-allow, SafeSearch, circumvention, both paths
    for g in result["groups"].as_array().unwrap() {
        for part in ["canaries", "safesearch", "circumvention"] {
            assert!(g[part][1].as_u64().unwrap() > 0, "{g}: no {part} tested");
        }
        assert!(g["must_allow_dns"]["tested"].as_u64().unwrap() >= 5, "{g}");
        assert!(
            g["must_allow_proxy"]["tested"].as_u64().unwrap() >= 5,
            "{g}"
        );
        assert_eq!(g["must_allow_dns"]["blocked"], 0, "{g}");
        for c in g["categories"].as_array().unwrap() {
            for via in ["dns", "proxy"] {
                let r = &c[via];
                assert!(r["tested"].as_u64().unwrap() > 0, "{g} {c}");
                let want = if c["expected"] == "block" {
                    r["tested"].clone()
                } else {
                    0.into()
                };
                assert_eq!(r["blocked"], want, "{g} {c}");
            }
        }
    }
    // the guest group's games load: a category expected to load was tested as loading
    let guest = &result["groups"].as_array().unwrap()[1];
    assert_eq!(guest["group"], "guest");
    assert!(
        guest["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["category"] == "games" && c["expected"] == "allow")
    );

    // The check log has it, by the account that ran it.
    let h = ok(app, Some(&gov), "", &["check", "history"]);
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["by"], "tech");
    assert_eq!(h[0]["passed"], true);
    assert_eq!(h[0]["probes"].as_u64().unwrap(), probes);
    // A governor reads the log but cannot write to it.
    let (ok_gov, _, out) = run(
        app,
        Some(&gov),
        "",
        &["check", "action", "1", "--text", "noted"],
    );
    assert!(!ok_gov, "a governor recorded an action: {out}");

    // 2. A change loosens the policy three ways, through change control.
    let change = ok(
        app,
        Some(&tech),
        "",
        &[
            "change",
            "propose",
            "--reason",
            "term trial",
            "--risk",
            "medium",
            "--justification",
            "trial",
            "--unblock-category",
            "ks2:gambling",
            "--safesearch",
            "staff:off",
            "--allow",
            "guest:dns.google",
        ],
    );
    let cid = change["id"].as_u64().unwrap().to_string();
    ok(app, Some(&boss), "", &["change", "approve", &cid]);
    ok(app, Some(&tech), "", &["change", "apply", &cid]);

    // 3. The scheduled check (due at once) finds exactly those, and alerts on the regression.
    let (passed, _, out) = run(
        app,
        Some(&tech),
        "",
        &[
            "check",
            "due",
            "--every",
            "0s",
            "--probes",
            lab.probes.to_str().unwrap(),
        ],
    );
    assert!(!passed, "a regression exits 1: {out}");
    assert_protected(&out);
    let rec = ok(app, Some(&gov), "", &["check", "show", "2"]);
    assert_eq!(rec["scheduled"], true);
    let fs: Vec<Value> = rec["result"]["failures"].as_array().unwrap().clone();
    let gambling: BTreeSet<String> = ["bet365.com", "paddypower.com", "casino-online.example"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut seen = BTreeSet::new();
    for f in &fs {
        let (g, via, section, probe) = (
            f["group"].as_str().unwrap(),
            f["via"].as_str().unwrap(),
            f["section"].as_str().unwrap(),
            f["probe"].as_str().unwrap(),
        );
        let expected = match (g, section) {
            ("ks2", "category") => f["category"] == "gambling" && gambling.contains(probe),
            ("staff", "safesearch") => probe.contains("google") || probe.contains("bing"),
            ("guest", "circumvention" | "category") => probe == "dns.google",
            _ => false,
        };
        assert!(
            expected,
            "unexpected failure: {}\nall:\n{}",
            describe(std::slice::from_ref(f)),
            describe(&fs)
        );
        seen.insert((g.to_owned(), via.to_owned(), section.to_owned()));
    }
    // each weakening found on each path where it shows
    for want in [
        ("ks2", "dns", "category"),
        ("ks2", "proxy", "category"),
        ("staff", "dns", "safesearch"),
        ("staff", "proxy", "safesearch"),
        ("guest", "dns", "circumvention"),
        ("guest", "proxy", "circumvention"),
    ] {
        assert!(
            seen.contains(&(want.0.into(), want.1.into(), want.2.into())),
            "{want:?} not reported:\n{}",
            describe(&fs)
        );
    }
    // every gambling sample, both paths: 3 names x 2
    assert_eq!(
        fs.iter().filter(|f| f["group"] == "ks2").count(),
        6,
        "{}",
        describe(&fs)
    );
    // the DNS SafeSearch answers for staff: www.google.com, www.google.co.uk, www.bing.com
    assert_eq!(
        fs.iter()
            .filter(|f| f["group"] == "staff" && f["via"] == "dns")
            .count(),
        3,
        "{}",
        describe(&fs)
    );
    // The DSL and the technician hear of it on the alert channel.
    let deadline = Instant::now() + Duration::from_secs(10);
    let alert = loop {
        if let Some(a) = lab
            .hook
            .json()
            .into_iter()
            .find(|a| a["kind"] == "check-regression")
        {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "no regression alert: {:?}",
            lab.hook.json()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let msg = alert["message"].as_str().unwrap();
    assert!(
        msg.contains("bet365.com") && msg.contains("dns.google"),
        "{msg}"
    );
    assert!(msg.contains("previous check (#1)"), "{msg}");
    // and once a check is recorded, the next is not due for a term
    let (_, _, out) = run(
        app,
        Some(&tech),
        "",
        &["check", "due", "--probes", lab.probes.to_str().unwrap()],
    );
    assert!(out.contains("not due"), "{out}");

    // 4. A manual run raises a change request per fix, linked from the check's actions.
    let (_, v, out) = run(
        app,
        Some(&tech),
        "",
        &[
            "check",
            "run",
            "--raise-changes",
            "--probes",
            lab.probes.to_str().unwrap(),
        ],
    );
    assert_protected(&out);
    let id = v["check"].as_u64().unwrap();
    let rec = ok(app, Some(&gov), "", &["check", "show", &id.to_string()]);
    let actions = rec["actions"].as_array().unwrap();
    let linked: Vec<u64> = actions
        .iter()
        .filter_map(|a| a["change"].as_u64())
        .collect();
    assert!(linked.len() >= 3, "{actions:?}");
    let mut edits = BTreeSet::new();
    for c in &linked {
        let ch = ok(app, Some(&gov), "", &["change", "show", &c.to_string()]);
        assert_eq!(ch["direction"], "tightening", "{ch}");
        for e in ch["edits"].as_array().unwrap() {
            edits.insert(e.to_string());
        }
    }
    let has = |op: &str, group: &str, what: &str| {
        edits
            .iter()
            .any(|e| e.contains(op) && e.contains(group) && e.contains(what))
    };
    assert!(has("block-category", "ks2", "gambling"), "{edits:?}");
    assert!(has("safe-search", "staff", "on"), "{edits:?}");
    assert!(has("add-block", "guest", "dns.google"), "{edits:?}");

    // 5. A review trigger is recorded and answered by the check it prompts.
    let (_, _, out) = run(
        app,
        Some(&tech),
        "",
        &[
            "check",
            "trigger",
            "--kind",
            "new-ai-tool",
            "--note",
            "pupils started using a chatbot",
            "--probes",
            lab.probes.to_str().unwrap(),
        ],
    );
    assert!(out.contains("\"check\":"), "{out}");
    let t = ok(app, Some(&gov), "", &["check", "triggers"]);
    assert_eq!(t[0]["kind"], "new-ai-tool");
    assert_eq!(t[0]["check"].as_u64(), Some(id + 1), "{t}");
    let h = ok(app, Some(&gov), "", &["check", "history"]);
    assert_eq!(h.as_array().unwrap().len() as u64, id + 1);
    assert_eq!(h[id as usize]["trigger"], 1);

    // 6. The governors' report, read by a governor: HTML and a PDF that is not blank.
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let pdf = dir.path().join("report.pdf");
    ok(
        app,
        Some(&gov),
        "",
        &[
            "check",
            "report",
            "--school",
            "Hedgerow Primary",
            "--html",
            html.to_str().unwrap(),
            "--pdf",
            pdf.to_str().unwrap(),
        ],
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert_protected(&page);
    for want in [
        "Hedgerow Primary",
        "early-years",
        "gambling",
        "term trial", // the change, with its risk assessment
        "medium",
        "boss",        // roles named
        "new ai tool", // the trigger
        "What the filter cannot do",
        "Over-blocking",
        // the check's own adult probes raised breaches: counted, nobody named
        "<td>adult</td><td>medium</td>",
    ] {
        assert!(page.contains(want), "the report lacks {want:?}");
    }
    for device in [
        "check-early-years",
        "check-staff",
        "check-guest",
        "127.0.0.1",
    ] {
        assert!(!page.contains(device), "the report names {device}");
    }
    std::fs::copy(&pdf, repo().join("target/check-report.pdf")).ok();
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF"), "not a PDF");
    let png = dir.path().join("page");
    let status = Command::new("pdftoppm")
        .args(["-png", "-r", "40", "-f", "1", "-l", "1"])
        .arg(&pdf)
        .arg(&png)
        .status()
        .expect("pdftoppm (poppler-utils) is installed");
    assert!(status.success());
    let page1 = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "png"))
        .expect("a page image");
    std::fs::copy(&page1, repo().join("target/check-report-page1.png")).ok();
    let ink = ink_fraction(&page1);
    assert!(ink > 0.02, "page 1 is blank ({ink:.4} of it inked)");
}

/// The share of a PNG's pixels that are not near-white (decoded with Python's zlib: the PNG
/// is 8-bit RGB, filter bytes undone).
fn ink_fraction(png: &Path) -> f64 {
    let script = r#"
import sys, zlib, struct
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n'
i, idat, w, h, ct = 8, b'', 0, 0, 0
while i < len(d):
    n = struct.unpack('>I', d[i:i+4])[0]; t = d[i+4:i+8]; c = d[i+8:i+8+n]
    if t == b'IHDR': w, h, bd, ct = struct.unpack('>IIBB', c[:10])
    if t == b'IDAT': idat += c
    i += 12 + n
bpp = {2: 3, 6: 4, 0: 1, 4: 2}[ct]
raw = zlib.decompress(idat); stride = w * bpp
prev = bytearray(stride); ink = 0; p = 0
for y in range(h):
    f = raw[p]; line = bytearray(raw[p+1:p+1+stride]); p += 1 + stride
    for x in range(stride):
        a = line[x-bpp] if x >= bpp else 0; b = prev[x]; c = prev[x-bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            line[x] = (line[x] + pr) & 255
    for x in range(0, stride, bpp):
        if min(line[x:x+min(bpp,3)]) < 200: ink += 1
    prev = line
print(ink / (w * h))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The benchmark (benches/check.sh): four groups, about 2,000 probes each over both paths
/// (1,000 names from the shared category lists, each asked by DNS and through the proxy),
/// against the appliance holding those names in its lists. Prints the time taken.
#[test]
#[ignore = "benchmark: run by benches/check.sh"]
fn bench_four_groups_2000_probes_each() {
    let Some(data) = hedgerow_testkit::shared_data(&repo()) else {
        return;
    };
    let per = 200;
    let mut files: Vec<(String, String)> = Vec::new();
    let mut lists = String::new();
    for (cat, src) in [
        ("adult", "adult"),
        ("gambling", "gambling"),
        ("games", "games"),
        ("social", "social_networking"),
        ("circumvention", "vpn"),
    ] {
        let text =
            std::fs::read_to_string(data.join("categories").join(format!("{src}.txt"))).unwrap();
        let names: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| {
                !l.is_empty()
                    && l.contains('.')
                    && l.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                    })
            })
            .take(per)
            .collect();
        files.push((format!("bench-{cat}.txt"), names.join("\n") + "\n"));
        lists.push_str(&format!(
            "[lists.bench-{cat}]\npath = \"{{dir}}/bench-{cat}.txt\"\nformat = \"domains\"\ncategory = \"{cat}\"\n\n"
        ));
    }
    files.push(("bench-lists.toml".into(), lists));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let lab = lab(&bundled_policy(), &refs, ", \"bench-lists.toml\"");
    let dir = lab.app.dir().display().to_string();
    let mut probes = std::fs::read_to_string(&lab.probes).unwrap();
    for cat in ["adult", "gambling", "games", "social", "circumvention"] {
        let from = format!("\n{cat} = \"");
        let at = probes.find(&from).unwrap() + from.len();
        let end = at + probes[at..].find('"').unwrap();
        let old = probes[at..end].to_owned();
        probes = probes.replace(
            &format!("{cat} = \"{old}\""),
            &format!("{cat} = [\"{old}\", \"{dir}/bench-{cat}.txt\"]"),
        );
    }
    std::fs::write(&lab.probes, probes).unwrap();
    let [_, tech, _, _] = accounts(&lab.app);
    let started = Instant::now();
    let (_, v, out) = run(
        &lab.app,
        Some(&tech),
        "",
        &["check", "run", "--probes", lab.probes.to_str().unwrap()],
    );
    let wall = started.elapsed();
    let r = &v["result"];
    assert!(r["probes"].as_u64().is_some(), "{out}");
    for g in r["groups"].as_array().unwrap() {
        let n: u64 = lab_count(&v, g["group"].as_str().unwrap());
        eprintln!("group {}: {n} probes", g["group"]);
    }
    for f in r["failures"].as_array().unwrap() {
        eprintln!("  failure: {}", describe(std::slice::from_ref(f)));
    }
    eprintln!(
        "BENCH check: {} probes, 4 groups, DNS and proxy: {:.1} s in the check ({:.1} s wall, recording included); {} failures",
        r["probes"],
        r["seconds"].as_f64().unwrap(),
        wall.as_secs_f64(),
        r["failures"].as_array().map_or(0, Vec::len)
    );
}

fn lab_count(v: &Value, group: &str) -> u64 {
    v["result"]["results"].as_array().map_or(0, |a| {
        a.iter().filter(|p| p["group"] == group).count() as u64
    })
}
