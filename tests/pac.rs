//! The PAC file end to end: the real binary serves it, curl fetches it, and Node (a real
//! JavaScript engine, with the PAC helper functions in `tests/js/pac-harness.js`) evaluates
//! `FindProxyForURL` for a table of hosts. Internal addresses must go direct (the proxy
//! refuses them, so through it they break) and everything else through the proxy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use hedgerow_testkit::Appliance;

const BIN: &str = env!("CARGO_BIN_EXE_hedgerow");

const CONFIG: &str = r#"
[server]
state_dir = "{dir}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{ address = "127.0.0.1:9" }]

[proxy]
listen = ["127.0.0.1:0"]
pac_direct = ["school.internal", "*.mis.example", "192.0.2.0/24", "2001:db8:5::/48"]

[lists.iwf]
path = "{dir}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[groups.pupils]
networks = ["198.51.100.0/24", "2001:db8:10::/48", "127.0.0.0/8"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

# A catch-all guest group: not "the school's own network".
[groups.guest]
networks = ["0.0.0.0/0"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"
"#;

fn node() -> &'static str {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "node (Debian package nodejs) must be installed; .ci/run installs it"
    );
    "node"
}

/// What the PAC file served by `app` says for each URL, evaluated by Node.
fn evaluate(app: &Appliance, urls: &[&str]) -> BTreeMap<String, String> {
    let proxy = app.proxy.unwrap();
    let out = Command::new("curl")
        .args(["-s", "--fail", &format!("http://{proxy}/proxy.pac")])
        .output()
        .expect("curl must be installed");
    assert!(out.status.success(), "fetching the PAC file failed");
    let pac = app.dir().join("fetched.pac");
    std::fs::write(&pac, &out.stdout).unwrap();
    let harness = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js/pac-harness.js");
    let mut child = Command::new(node())
        .arg(harness)
        .arg(&pac)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(urls).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "node could not evaluate the PAC file: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&std::fs::read(&pac).unwrap())
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_pac_sends_internal_hosts_direct_and_everything_else_through_the_proxy() {
    let app = Appliance::start(
        BIN.as_ref(),
        CONFIG,
        &[("iwf.txt", "iwf-test.invalid/a.html\n")],
        &[],
    );
    let proxy = format!("PROXY {}", app.proxy.unwrap());
    let direct = "DIRECT";
    let table: &[(&str, &str)] = &[
        // Plain host names, localhost, .local.
        ("http://intranet/", direct),
        ("http://localhost:8080/", direct),
        ("http://printer.local/", direct),
        ("http://PRINTER.Local./status", direct),
        // Private, loopback and link-local IPv4 literals: the proxy refuses them.
        ("http://10.1.2.3/", direct),
        ("http://172.16.0.1/", direct),
        ("http://172.31.255.254/", direct),
        ("http://192.168.1.1:8443/admin", direct),
        ("http://127.0.0.1/", direct),
        ("http://169.254.10.10/", direct),
        // The groups' own networks, and pac_direct's.
        ("http://198.51.100.20/", direct),
        ("http://192.0.2.7/", direct),
        // IPv6: loopback, link-local, unique local, a group's network, pac_direct's.
        ("http://[::1]/", direct),
        ("http://[fe80::1]/", direct),
        ("http://[fd12:3456::1]/", direct),
        ("http://[2001:db8:10::5]/", direct),
        ("http://[2001:db8:5:1::1]/", direct),
        // pac_direct domains and their subdomains.
        ("http://school.internal/", direct),
        ("https://mis.school.internal/login", direct),
        ("https://mis.example/", direct),
        ("https://reports.mis.example/", direct),
        // Everything else goes through the proxy (the does-not-leak twins of the above).
        ("http://172.32.0.1/", proxy.as_str()),
        ("http://11.1.2.3/", proxy.as_str()),
        ("http://198.51.101.1/", proxy.as_str()),
        ("http://8.8.8.8/", proxy.as_str()),
        ("http://[2001:4860::8888]/", proxy.as_str()),
        ("http://[2001:db8:11::1]/", proxy.as_str()),
        ("http://notschool.internal/", proxy.as_str()),
        ("http://school.internal.example.com/", proxy.as_str()),
        ("http://10.example.com/", proxy.as_str()),
        ("http://local.example.com/", proxy.as_str()),
        ("https://www.bbc.co.uk/", proxy.as_str()),
        ("http://adult.example/", proxy.as_str()),
    ];
    let urls: Vec<&str> = table.iter().map(|(u, _)| *u).collect();
    let got = evaluate(&app, &urls);
    let wrong: Vec<String> = table
        .iter()
        .filter(|(u, want)| got.get(*u).map(String::as_str) != Some(*want))
        .map(|(u, want)| format!("{u}: want {want:?}, got {:?}", got.get(*u)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
