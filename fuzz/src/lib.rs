//! Shared set-up for Hedgerow's fuzz targets: a small policy on disk for the DNS resolver, a
//! sink that discards events, and a splitter for inputs made of several parts.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use hedgerow_model::{AccessEvent, EventSink};
use hedgerow_policy::PolicyHandle;

/// Names on the policy's block list (category `adult`, blocked for every group), its allow
/// list and a group's local entries: seeds and the dictionary use them.
pub const BLOCKED: &[&str] = &["blocked", "x.y", "xn--bcher-kva.example"];

/// The source address of a query for `selector`: one of three groups with a different
/// `dns_block` each, an address in no group, or the trusted forwarder (whose EDNS Client
/// Subnet option names the client).
pub fn source(selector: u8) -> SocketAddr {
    let ip = match selector % 5 {
        0 => Ipv4Addr::new(127, 0, 1, 7),
        1 => Ipv4Addr::new(127, 0, 2, 7),
        2 => Ipv4Addr::new(127, 0, 3, 7),
        3 => Ipv4Addr::new(127, 0, 4, 7),
        _ => Ipv4Addr::new(127, 0, 9, 9),
    };
    SocketAddr::new(IpAddr::V4(ip), 40_000 + u16::from(selector))
}

/// Writes the DNS fuzzers' configuration into `dir` and loads it: three groups (one per
/// block answer: NXDOMAIN, null address, block page), a block list, a trusted forwarder,
/// and `upstream` as the only upstream.
pub fn dns_policy(dir: &Path, upstream: SocketAddr) -> Arc<PolicyHandle> {
    let lists = dir.join("lists");
    std::fs::create_dir_all(&lists).unwrap_or_else(|e| panic!("creating {lists:?}: {e}"));
    write(&lists.join("adult.txt"), &BLOCKED.join("\n"));
    write(&lists.join("allow.txt"), "ok.blocked\n");
    write(&lists.join("iwf.txt"), "http://iwf-test.invalid/a.html\n");
    let config = format!(
        r#"
[server]
state_dir = "state"
timezone = "Europe/London"

[dns]
listen = ["127.0.0.1:0"]
timeout = "50ms"
rate_limit_qps = 1000000
trusted_forwarders = ["127.0.9.0/24"]
blockpage_ipv4 = "192.0.2.80"
blockpage_ipv6 = "2001:db8::80"

[[dns.upstreams]]
address = "{upstream}"
protocol = "udp"

[dns.cache]
size = 64
min_ttl = "30s"
max_ttl = "1d"
negative_ttl = "5m"

[lists.adult]
path = "lists/adult.txt"
format = "domains"
category = "adult"

[lists.iwf]
path = "lists/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"
url_match = "exact"

[lists.allow]
path = "lists/allow.txt"
format = "domains"
kind = "allow"

[groups.nx]
networks = ["127.0.1.0/24", "10.1.0.0/16"]
block_categories = ["adult"]
dns_block = "nxdomain"
safesearch = "off"
youtube = "off"
block = ["local.block"]

[groups.null]
networks = ["127.0.2.0/24", "10.2.0.0/16"]
block_categories = ["adult"]
dns_block = "null"
safesearch = "off"
youtube = "off"
allow = ["x.y"]

[groups.page]
networks = ["127.0.3.0/24", "10.3.0.0/16", "127.0.9.0/24"]
block_categories = ["adult"]
dns_block = "blockpage"
safesearch = "on"
youtube = "strict"
"#
    );
    let path = dir.join("hedgerow.toml");
    write(&path, &config);
    match PolicyHandle::load(&path) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("the fuzzers' configuration does not load: {e}"),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
}

/// An event sink that drops every event.
pub struct Discard;

impl EventSink for Discard {
    fn record(&self, _event: AccessEvent) {}
}

/// Splits `data` into parts, each a big-endian u16 length and that many bytes; the last part
/// is whatever remains.
pub fn parts(mut data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    while out.len() + 1 < n {
        let Some((len, rest)) = data.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (part, rest) = rest.split_at(len);
        out.push(part);
        data = rest;
    }
    out.push(data);
    out
}

/// Joins parts as [`parts`] reads them (for writing seeds).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            let len = u16::try_from(p.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&p[..usize::from(len)]);
        } else {
            out.extend_from_slice(p);
        }
    }
    out
}
