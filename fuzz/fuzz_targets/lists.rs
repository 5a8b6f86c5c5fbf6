//! Every list format's reader (domains in all their styles: plain, `*.`, hosts files, adblock,
//! dnsmasq; URLs; regular expressions; phrases), plain or gzip-compressed, through the real
//! loader (`MatcherBuilder::add_file`) and the build, for block, allow and illegal-tier lists.
//!
//! - Loading and building never panic; a bad line is counted, never fatal (a damaged gzip
//!   stream fails the list with an error).
//! - A line that is itself a host name (domains) or a URL (urls), and was not reported bad,
//!   is found again in the built matcher: as a domain hit, a URL hit, or an illegal-tier hit.
//! - Every line, read as a host, a URL and a text, can be looked up without a panic.
//!
//! With the choice byte's top bit set, the bytes are a DHCP lease file instead (dnsmasq's or ISC
//! dhcpd's, by the low bit), read as the device registry reads it: no panic, every lease at a
//! line.
//!
//! Input: one byte choosing format, kind and URL matching, then the file's bytes.
#![no_main]

use std::io::Write;
use std::sync::Arc;

use hedgerow_config::LeaseFormat;
use hedgerow_matcher::{ListSpec, MatcherBuilder};
use hedgerow_model::{Category, Host, ListFormat, ListKind, Severity, UrlKey, UrlMatch};
use hedgerow_policy::parse_leases;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&choice, file)) = input.split_first() else {
        return;
    };
    if choice & 0x80 != 0 {
        // The DHCP lease files the device registry reads (dnsmasq's and ISC dhcpd's): a
        // lease is a MAC and an address, whatever else the line says.
        let text = String::from_utf8_lossy(file);
        let format = if choice & 1 == 0 {
            LeaseFormat::Dnsmasq
        } else {
            LeaseFormat::Isc
        };
        for lease in parse_leases(&text, format, std::path::Path::new("leases")) {
            assert!(lease.location.line >= 1);
            let _ = lease.mac.map(|m| m.to_string());
        }
        return;
    }
    let format = [
        ListFormat::Domains,
        ListFormat::Urls,
        ListFormat::Regex,
        ListFormat::Phrases,
    ][usize::from(choice % 4)];
    let kind = [ListKind::Block, ListKind::Allow, ListKind::Illegal][usize::from(choice / 4 % 3)];
    let url_match = if choice & 0x40 != 0 {
        UrlMatch::Exact
    } else {
        UrlMatch::Prefix
    };
    let spec = ListSpec {
        name: Arc::from("fuzz"),
        kind,
        format,
        category: Category::new("fuzz").ok(),
        url_match,
        severity: Severity::High,
    };
    let Ok(mut tmp) = tempfile::NamedTempFile::new() else {
        return;
    };
    if tmp.write_all(file).and_then(|()| tmp.flush()).is_err() {
        return;
    }
    let mut builder = MatcherBuilder::new();
    let report = match builder.add_file(spec, tmp.path()) {
        Ok(r) => r,
        // A damaged gzip stream is an I/O error for the whole list, as it should be.
        Err(_) => return,
    };
    let Ok(matcher) = builder.build() else {
        // Regular expressions or phrases that do not compile together: an error, not a panic.
        return;
    };
    // Only plain files are checked line by line (a gzip file's lines are not these bytes).
    if file.starts_with(&[0x1f, 0x8b]) {
        return;
    }
    let bad: std::collections::HashSet<usize> = report.bad_lines.iter().map(|b| b.line).collect();
    if report.bad_line_count > report.bad_lines.len() {
        return;
    }
    for (i, line) in file.split(|&b| b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let text = line.trim();
        let host = Host::parse(text).ok();
        let url = UrlKey::parse(text).ok();
        if let Some(h) = &host {
            matcher.host_hits(h, |_| {});
            let _ = matcher.illegal_host(h);
        }
        if let Some(u) = &url {
            matcher.url_hits(u, |_| {});
            let _ = matcher.illegal_url(u);
        }
        let _ = matcher.phrase_hits(line);
        let listed = !bad.contains(&(i + 1)) && !text.starts_with('[');
        match (format, kind) {
            (ListFormat::Domains, ListKind::Illegal) => {
                if let Some(h) = host.filter(|_| listed) {
                    assert!(
                        matcher.illegal_host(&h).is_some(),
                        "line {} not listed",
                        i + 1
                    );
                }
            }
            (ListFormat::Domains, _) => {
                if let Some(h) = host.filter(|_| listed) {
                    let mut found = false;
                    matcher.host_hits(&h, |hit| found |= hit.rule == h.as_str());
                    assert!(found, "line {} ({h}) not listed", i + 1);
                }
            }
            (ListFormat::Urls, ListKind::Illegal) => {
                if let Some(u) = url.filter(|_| listed) {
                    assert!(
                        matcher.illegal_url(&u).is_some(),
                        "line {} not listed",
                        i + 1
                    );
                }
            }
            (ListFormat::Urls, _) => {
                if let Some(u) = url.filter(|_| listed) {
                    let mut found = false;
                    matcher.url_hits(&u, |hit| {
                        found |= matches!(hit.level, hedgerow_matcher::MatchLevel::Url { .. })
                    });
                    assert!(found, "line {} ({u}) not listed", i + 1);
                }
            }
            _ => {}
        }
    }
});
