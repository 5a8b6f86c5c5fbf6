//! URL normalisation (`hedgerow_model::UrlKey`, what URL lists and the illegal tier match on)
//! against the `url` crate, the WHATWG URL parser browsers implement.
//!
//! - A key is a fixed point: the URL it names gives the same key (for web URLs and entries
//!   without a scheme; another scheme's path is read as WHATWG reads it, unmerged).
//! - For a web URL (`http`, `https`, `ws`, `wss`, `ftp`): when our key reads it, the WHATWG
//!   parser reads it too, and its serialisation of the URL gives the same key; so any two
//!   spellings WHATWG calls one URL get one key. (The documented exception: a path with an
//!   empty segment and a `..` segment, where slash runs merge first, as servers read them.)
//! - When the WHATWG parser reads a web URL whose host is a valid `Host`, so do we.
#![no_main]

use hedgerow_model::{Host, UrlKey};
use libfuzzer_sys::fuzz_target;

/// The path has an empty segment somewhere and a `..` segment somewhere: the one shape where
/// merging slashes first (as servers do) and WHATWG alone differ.
fn empty_then_dot_dot(s: &str) -> bool {
    // WHATWG strips leading and trailing C0 controls and spaces first: `..\0` ends in `..`.
    let s = s.trim_matches(|c: char| c <= ' ');
    let after_host = s.split_once(':').map_or(s, |(_, r)| r);
    let after_host = after_host.trim_start_matches(['/', '\\']);
    let path = after_host
        .find(['/', '\\'])
        .map_or("", |i| &after_host[i..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<String> = path
        .replace(['\t', '\n', '\r'], "")
        .split(['/', '\\'])
        .map(|s| s.to_ascii_lowercase())
        .collect();
    segments.iter().skip(1).any(String::is_empty)
        && segments
            .iter()
            .any(|s| matches!(s.as_str(), ".." | ".%2e" | "%2e." | "%2e%2e"))
}

fn is_web(s: &str) -> bool {
    // WHATWG strips leading C0 controls and spaces only (not DEL, nor Unicode spaces): a
    // `\x7fhttp:` is no web URL to it (nor to us: a list entry without a scheme).
    let t = s.trim_start_matches(|c: char| c <= ' ');
    let Some((scheme, _)) = t.split_once(':') else {
        return false;
    };
    let scheme = scheme.replace(['\t', '\n', '\r'], "");
    ["http", "https", "ws", "wss", "ftp"]
        .iter()
        .any(|w| scheme.eq_ignore_ascii_case(w))
}

/// A scheme other than a web one, with an authority (`foo://host/x`): read as WHATWG reads
/// it, without the servers' slash merging, so its key need not be a fixed point.
fn other_scheme(s: &str) -> bool {
    let t = s
        .trim_start_matches(|c: char| c <= ' ')
        .replace(['\t', '\n', '\r'], "");
    match t.find("://") {
        Some(i) => {
            i > 0
                && t[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
                && !is_web(&t)
        }
        None => false,
    }
}

/// The URL a key names, spelled so that it parses back.
fn url_of(k: &UrlKey) -> String {
    match k.host().ip() {
        Some(std::net::IpAddr::V6(v6)) => format!("http://[{v6}]{}", k.path_and_query()),
        _ => format!("http://{}{}", k.host(), k.path_and_query()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let key = UrlKey::parse(s);
    if let Some(k) = key.as_ref().ok().filter(|_| !other_scheme(s)) {
        assert!(k.path_and_query().starts_with('/'), "{k:?}");
        let again = UrlKey::parse(&url_of(k))
            .unwrap_or_else(|e| panic!("the key {k} of {s:?} does not parse back: {e}"));
        assert_eq!(&again, k, "not a fixed point: {s:?}");
    }
    if !is_web(s) {
        return;
    }
    let whatwg = url::Url::parse(s);
    match (&key, &whatwg) {
        (Ok(k), Ok(u)) => {
            if empty_then_dot_dot(s) {
                return;
            }
            let again = UrlKey::parse(u.as_str())
                .unwrap_or_else(|e| panic!("{s:?} has key {k}, its WHATWG form {u} none: {e}"));
            assert_eq!(&again, k, "{s:?} and its WHATWG form {u}");
        }
        (Ok(k), Err(e)) => panic!("{s:?} has key {k}, but WHATWG says {e}"),
        (Err(e), Ok(u)) => {
            let host_ok = match u.host() {
                Some(url::Host::Domain(d)) => Host::parse(d).is_ok(),
                Some(_) => true,
                None => false,
            };
            assert!(!host_ok, "WHATWG reads {s:?} as {u}, we refuse it: {e}");
        }
        (Err(_), Err(_)) => {}
    }
});
