//! Matcher behaviour through its public API. Every "blocks" test has a "does not over-block"
//! twin.

use std::io::Write;

use hedgerow_model::{Category, Host, ListFormat, ListKind, Severity, UrlKey, UrlMatch};
use proptest::prelude::*;

use crate::{ListSpec, Matcher, MatcherBuilder};

fn spec(name: &str, kind: ListKind, format: ListFormat) -> ListSpec {
    ListSpec {
        name: name.into(),
        kind,
        format,
        category: Category::new(name).ok(),
        url_match: UrlMatch::Prefix,
        severity: Severity::High,
    }
}

fn matcher(lists: &[(&str, ListKind, ListFormat, &[&str])]) -> Matcher {
    let mut b = MatcherBuilder::new();
    for (name, kind, format, lines) in lists {
        let report = b
            .add_lines(spec(name, *kind, *format), "test", lines.iter())
            .unwrap();
        assert_eq!(report.bad_line_count, 0, "{:?}", report.bad_lines);
    }
    b.build().unwrap()
}

fn host_lists(m: &Matcher, host: &str) -> Vec<String> {
    let host = Host::parse(host).unwrap();
    let mut out = Vec::new();
    m.host_hits(&host, |h| {
        out.push(format!("{}:{}", m.list(h.list).unwrap().name, h.rule))
    });
    out
}

fn url_lists(m: &Matcher, url: &str) -> Vec<String> {
    let url = UrlKey::parse(url).unwrap();
    let mut out = Vec::new();
    m.url_hits(&url, |h| {
        out.push(format!("{}:{}", m.list(h.list).unwrap().name, h.rule))
    });
    out
}

#[test]
fn domain_entry_blocks_name_and_subdomains() {
    let m = matcher(&[(
        "adult",
        ListKind::Block,
        ListFormat::Domains,
        &["example.com"],
    )]);
    assert_eq!(host_lists(&m, "example.com"), ["adult:example.com"]);
    assert_eq!(host_lists(&m, "a.b.EXAMPLE.com."), ["adult:example.com"]);
}

#[test]
fn domain_entry_does_not_over_block() {
    let m = matcher(&[(
        "adult",
        ListKind::Block,
        ListFormat::Domains,
        &["example.com"],
    )]);
    for other in [
        "notexample.com",
        "example.com.au",
        "example.co",
        "com",
        "xexample.com",
    ] {
        assert!(host_lists(&m, other).is_empty(), "{other}");
    }
}

#[test]
fn unicode_and_punycode_entries_match_each_other() {
    let m = matcher(&[
        (
            "a",
            ListKind::Block,
            ListFormat::Domains,
            &["bücher.example"],
        ),
        (
            "b",
            ListKind::Block,
            ListFormat::Domains,
            &["xn--mnchen-3ya.example"],
        ),
    ]);
    assert_eq!(
        host_lists(&m, "xn--bcher-kva.example"),
        ["a:xn--bcher-kva.example"]
    );
    assert_eq!(
        host_lists(&m, "www.münchen.example"),
        ["b:xn--mnchen-3ya.example"]
    );
    assert!(host_lists(&m, "bucher.example").is_empty());
}

#[test]
fn a_name_in_several_lists_reports_each() {
    let m = matcher(&[
        (
            "games",
            ListKind::Block,
            ListFormat::Domains,
            &["play.example", "other.example"],
        ),
        (
            "social",
            ListKind::Block,
            ListFormat::Domains,
            &["play.example"],
        ),
        ("adult", ListKind::Block, ListFormat::Domains, &["example"]),
    ]);
    let hits = host_lists(&m, "x.play.example");
    assert_eq!(
        hits,
        ["games:play.example", "social:play.example", "adult:example"]
    );
}

#[test]
fn ip_literal_entries_match_ip_hosts_only() {
    let m = matcher(&[(
        "malware",
        ListKind::Block,
        ListFormat::Domains,
        &["192.0.2.7", "2001:db8::7"],
    )]);
    assert_eq!(host_lists(&m, "192.0.2.7"), ["malware:192.0.2.7"]);
    assert_eq!(host_lists(&m, "[2001:DB8:0::7]"), ["malware:2001:db8::7"]);
    assert!(host_lists(&m, "192.0.2.70").is_empty());
    assert!(host_lists(&m, "7.2.0.192.in-addr.arpa").is_empty());
}

#[test]
fn url_entry_blocks_the_path_on_an_allowed_host() {
    let m = matcher(&[(
        "adult",
        ListKind::Block,
        ListFormat::Urls,
        &["example.com/bad", "https://example.org/x/"],
    )]);
    assert_eq!(
        url_lists(&m, "http://example.com/bad"),
        ["adult:example.com/bad"]
    );
    assert_eq!(
        url_lists(&m, "http://www.example.com/bad/page?x=1"),
        ["adult:example.com/bad"]
    );
    assert_eq!(
        url_lists(&m, "http://example.org/x/y"),
        ["adult:example.org/x/"]
    );
}

#[test]
fn url_entry_does_not_over_block() {
    let m = matcher(&[(
        "adult",
        ListKind::Block,
        ListFormat::Urls,
        &["example.com/bad"],
    )]);
    for other in [
        "http://example.com/",
        "http://example.com/badge",
        "http://example.com/good/bad",
        "http://sub.example.com/bad",
    ] {
        assert!(url_lists(&m, other).is_empty(), "{other}");
    }
    // A URL-level entry never blocks the whole host at DNS.
    assert!(host_lists(&m, "example.com").is_empty());
}

#[test]
fn exact_url_entries_match_only_themselves() {
    let mut b = MatcherBuilder::new();
    let mut s = spec("adult", ListKind::Block, ListFormat::Urls);
    s.url_match = UrlMatch::Exact;
    b.add_lines(s, "t", ["example.com/a"]).unwrap();
    let m = b.build().unwrap();
    assert_eq!(
        url_lists(&m, "http://EXAMPLE.com:80/a"),
        ["adult:example.com/a"]
    );
    assert!(url_lists(&m, "http://example.com/a/b").is_empty());
}

fn illegal_matcher() -> Matcher {
    let mut b = MatcherBuilder::new();
    b.add_lines(
        spec("iwf", ListKind::Illegal, ListFormat::Urls),
        "t",
        ["abuse.example/gallery/img1.html", "other.example/dir/"],
    )
    .unwrap();
    b.add_lines(
        spec("terror", ListKind::Illegal, ListFormat::Domains),
        "t",
        ["terror.example"],
    )
    .unwrap();
    b.build().unwrap()
}

#[test]
fn illegal_tier_matches_url_variations() {
    let m = illegal_matcher();
    for v in [
        "http://abuse.example/gallery/img1.html",
        "HTTPS://ABUSE.EXAMPLE:443/gallery/img1.html",
        "http://www.abuse.example/gallery/img1.html",
        "http://user:pw@abuse.example:8080/gallery/./x/../img1.html",
        "http://abuse.example/%67allery/img1%2Ehtml",
        "http://abuse.example./gallery/img1.html?session=1",
        "http://other.example/dir/anything/deeper",
        "http://x.terror.example/whatever",
    ] {
        assert!(m.illegal_url(&UrlKey::parse(v).unwrap()).is_some(), "{v}");
    }
    assert!(
        m.illegal_host(&Host::parse("sub.terror.example").unwrap())
            .is_some()
    );
}

#[test]
fn illegal_tier_does_not_over_block() {
    let m = illegal_matcher();
    for v in [
        "http://abuse.example/",
        "http://abuse.example/gallery/img2.html",
        "http://abuse.example/gallery/img1.htmlx",
        "http://other.example/dirt",
        "http://notterror.example/",
    ] {
        assert!(m.illegal_url(&UrlKey::parse(v).unwrap()).is_none(), "{v}");
    }
    // A URL-level illegal entry does not block the host at DNS.
    assert!(
        m.illegal_host(&Host::parse("abuse.example").unwrap())
            .is_none()
    );
}

/// The bundled IWF configuration matches exactly (`url_match = "exact"`). A GET form with no
/// fields, or a typed `?`, sends `/page?`; that, and the other spellings browsers and curl
/// send, are the listed URL.
#[test]
fn exact_illegal_entries_match_every_spelling_of_their_url() {
    let mut b = MatcherBuilder::new();
    let mut iwf = spec("iwf", ListKind::Illegal, ListFormat::Urls);
    iwf.url_match = UrlMatch::Exact;
    b.add_lines(iwf, "t", ["http://abuse.example/gallery/item-001.html"])
        .unwrap();
    let m = b.build().unwrap();
    for v in [
        "http://abuse.example/gallery/item-001.html?",
        "http://abuse.example/gallery/item-001.html?#x",
        "http://abuse.example//gallery//item-001.html",
        "http://abuse.example/gallery/x//../item-001.html",
        "http://abuse.example/gallery%2Fitem-001.html",
        "http://abuse.example/gallery;jsessionid=1/item-001.html;x=2",
        "http://abuse.example/gallery/x%2F..%2Fitem-001.html",
        "http://abuse.example/gallery/item%2D001%2Ehtml",
        "http://ABUSE.EXAMPLE:8080/gallery/item-001.html#top",
    ] {
        assert!(m.illegal_url(&UrlKey::parse(v).unwrap()).is_some(), "{v}");
    }
    for v in [
        "http://abuse.example/gallery/item-001.html?x=1",
        "http://abuse.example/gallery/item-001.html/",
        "http://abuse.example/gallery/item-002.html",
        "http://abuse.example/gallery%2Fitem-002.html",
        "http://abuse.example/gallery/item-001.htmlx",
        "http://abuse.example/gallery/",
    ] {
        assert!(m.illegal_url(&UrlKey::parse(v).unwrap()).is_none(), "{v}");
    }
}

#[test]
fn the_illegal_tier_says_which_allow_entries_it_covers() {
    let m = illegal_matcher();
    let domains = |line: &str| m.illegal_covers(ListFormat::Domains, line);
    let urls = |line: &str| m.illegal_covers(ListFormat::Urls, line);
    // The entry itself, spelled otherwise, under a prefix entry, or inside a listed domain.
    assert!(urls("abuse.example/gallery/img1.html"));
    assert!(urls("https://WWW.abuse.example/gallery/./img1.html?"));
    assert!(urls("other.example/dir/page"));
    assert!(urls("http://x.terror.example/"));
    assert!(domains("terror.example"));
    assert!(domains("*.sub.TERROR.example."));
    assert!(domains("0.0.0.0 fine.example terror.example"));
    // Entries that still allow something: a sibling, the host of a listed URL, a parent.
    assert!(!urls("abuse.example/gallery/img2.html"));
    assert!(!urls("abuse.example/gallery/"));
    assert!(!urls("other.example/dir"));
    assert!(!domains("abuse.example"));
    assert!(!domains("example"));
    assert!(!domains("notterror.example"));
    // Comments, bad lines and other formats are never covered.
    assert!(!urls("# terror.example/"));
    assert!(!domains("terror.example/path"));
    assert!(!m.illegal_covers(ListFormat::Regex, "terror\\.example"));
    // Without an illegal tier nothing is.
    assert!(!Matcher::empty().illegal_covers(ListFormat::Domains, "terror.example"));
}

#[test]
fn covered_lines_of_a_list_file_are_numbered() {
    let m = illegal_matcher();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("allow.txt.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"# must-allow sites\nschool.example\nwww.terror.example\n\nabuse.example\n")
        .unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    assert_eq!(
        m.illegal_covered_lines(ListFormat::Domains, &path).unwrap(),
        [3]
    );
    let path = dir.path().join("allow-urls.txt");
    std::fs::write(
        &path,
        "abuse.example/gallery/img2.html\nabuse.example/gallery/img1.html?\n",
    )
    .unwrap();
    assert_eq!(
        m.illegal_covered_lines(ListFormat::Urls, &path).unwrap(),
        [2]
    );
    assert!(
        m.illegal_covered_lines(ListFormat::Urls, &dir.path().join("absent"))
            .is_err()
    );
}

#[test]
fn illegal_entries_are_not_in_the_ordinary_sets_or_debug_output() {
    let m = illegal_matcher();
    assert!(url_lists(&m, "http://abuse.example/gallery/img1.html").is_empty());
    assert!(host_lists(&m, "terror.example").is_empty());
    let debug = format!("{m:?}");
    assert!(
        !debug.contains("abuse") && !debug.contains("terror"),
        "{debug}"
    );
    assert_eq!(m.stats().illegal, 3);
}

#[test]
fn bad_lines_are_reported_and_good_lines_load() {
    let mut b = MatcherBuilder::new();
    let r = b
        .add_lines(
            spec("adult", ListKind::Block, ListFormat::Domains),
            "t",
            [
                "good.example",
                "bad..example",
                "# comment",
                "also good.example",
                "||x.example^$third-party",
                "fine.example",
            ],
        )
        .unwrap();
    assert_eq!(r.entries, 2);
    let lines: Vec<usize> = r.bad_lines.iter().map(|b| b.line).collect();
    assert_eq!(lines, [2, 4, 5]);
    let m = b.build().unwrap();
    assert_eq!(host_lists(&m, "fine.example"), ["adult:fine.example"]);
}

#[test]
fn illegal_bad_line_reasons_never_repeat_the_line() {
    let mut b = MatcherBuilder::new();
    let r = b
        .add_lines(
            spec("iwf", ListKind::Illegal, ListFormat::Urls),
            "t",
            ["http://secret-entry.example:99999/x"],
        )
        .unwrap();
    assert_eq!(r.bad_line_count, 1);
    assert!(
        !r.bad_lines[0].reason.contains("secret"),
        "{}",
        r.bad_lines[0].reason
    );
}

#[test]
fn gzip_and_plain_files_load_alike() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "one.example\n0.0.0.0 two.example\n").unwrap();
    let gz = dir.path().join("list.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(b"three.example\n||four.example^\n").unwrap();
    enc.finish().unwrap();
    let mut b = MatcherBuilder::new();
    assert_eq!(
        b.add_file(spec("a", ListKind::Block, ListFormat::Domains), &plain)
            .unwrap()
            .entries,
        2
    );
    assert_eq!(
        b.add_file(spec("b", ListKind::Block, ListFormat::Domains), &gz)
            .unwrap()
            .entries,
        2
    );
    assert!(
        b.add_file(
            spec("c", ListKind::Block, ListFormat::Domains),
            &dir.path().join("missing")
        )
        .is_err()
    );
    let m = b.build().unwrap();
    for h in [
        "one.example",
        "two.example",
        "three.example",
        "four.example",
    ] {
        assert_eq!(host_lists(&m, h).len(), 1, "{h}");
    }
}

#[test]
fn regex_rules_match_hosts_and_urls() {
    let m = matcher(&[(
        "games",
        ListKind::Block,
        ListFormat::Regex,
        &[r"(^|\.)casino[0-9]+\.", r"/free-robux"],
    )]);
    assert_eq!(host_lists(&m, "www.CASINO77.example").len(), 1);
    assert_eq!(url_lists(&m, "http://example.com/free-robux/now").len(), 1);
    assert!(host_lists(&m, "casino.example").is_empty());
    assert!(url_lists(&m, "http://example.com/robux").is_empty());
}

#[test]
fn phrase_hits_carry_list_and_severity() {
    let m = matcher(&[(
        "selfharm",
        ListKind::Block,
        ListFormat::Phrases,
        &["kill myself", "self harm"],
    )]);
    let hits = m.phrase_hits("how to k1ll+my5elf");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].phrase, "kill myself");
    assert_eq!(hits[0].severity, Severity::High);
    assert!(m.phrase_hits("how to kill time").is_empty());
}

proptest! {
    #[test]
    fn every_subdomain_of_an_entry_matches(
        labels in proptest::collection::vec("[a-z0-9]{1,10}", 1..5),
        base in "[a-z]{2,12}\\.(com|org|uk)",
    ) {
        let m = matcher(&[("x", ListKind::Block, ListFormat::Domains, &[base.as_str()])]);
        let host = format!("{}.{base}", labels.join("."));
        prop_assert_eq!(host_lists(&m, &host), vec![format!("x:{base}")]);
    }

    #[test]
    fn names_sharing_only_a_string_suffix_never_match(
        prefix in "[a-z0-9]{1,10}",
        base in "[a-z]{2,12}\\.(com|org|uk)",
    ) {
        let m = matcher(&[("x", ListKind::Block, ListFormat::Domains, &[base.as_str()])]);
        let host = format!("{prefix}{base}");
        prop_assert!(host_lists(&m, &host).is_empty());
    }

    #[test]
    fn domain_lines_never_panic(line in "\\PC{0,200}") {
        let mut b = MatcherBuilder::new();
        let _ = b.add_lines(spec("x", ListKind::Block, ListFormat::Domains), "t", [line.as_str()]);
        let _ = b.add_lines(spec("y", ListKind::Illegal, ListFormat::Urls), "t", [line.as_str()]);
    }
}

/// The domain set stores 64-bit keyed hashes, not names. With a random key per build a false
/// positive needs a 64-bit collision: this looks for one among 300,000 listed names and
/// 1,200,000 unlisted names built to share labels with them, and must find none.
#[test]
fn hashed_domain_set_has_no_false_positives_a_test_can_find() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let listed: Vec<String> = (0..300_000)
        .map(|_| format!("{:x}.{:x}.example", next() >> 40, next() >> 40))
        .collect();
    let m = {
        let mut b = MatcherBuilder::new();
        b.add_lines(
            spec("x", ListKind::Block, ListFormat::Domains),
            "t",
            &listed,
        )
        .unwrap();
        b.build().unwrap()
    };
    let set: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
    let mut false_positives = Vec::new();
    for i in 0..1_200_000u64 {
        let candidate = match i % 3 {
            // A listed name with one character changed.
            0 => {
                let base = &listed[(i as usize / 3) % listed.len()];
                format!("z{base}")
            }
            // Labels of listed names recombined.
            1 => {
                let a = &listed[(next() as usize) % listed.len()];
                let b = &listed[(next() as usize) % listed.len()];
                format!(
                    "{}.{}",
                    a.split('.').next().unwrap_or("a"),
                    b.split_once('.').map_or("b", |x| x.1)
                )
            }
            // Unrelated names.
            _ => format!("{:x}.{:x}.example", next(), next()),
        };
        let host = Host::parse(&candidate).unwrap();
        let listed_suffix = host.suffixes().any(|s| set.contains(s));
        let mut hit = false;
        m.host_hits(&host, |_| hit = true);
        if hit != listed_suffix {
            false_positives.push(candidate);
        }
    }
    assert!(
        false_positives.is_empty(),
        "{:?}",
        &false_positives[..false_positives.len().min(10)]
    );
    for name in &listed {
        assert_eq!(host_lists(&m, name).len(), 1, "{name}");
    }
}

#[test]
fn hosts_with_url_level_illegal_entries_are_known_without_being_listed() {
    let m = illegal_matcher();
    assert!(m.illegal_urls_on(&Host::parse("abuse.example").unwrap()));
    assert!(m.illegal_urls_on(&Host::parse("www.abuse.example").unwrap()));
    // Twins: a domain-level entry's host and an unrelated host carry no URL entries.
    assert!(!m.illegal_urls_on(&Host::parse("terror.example").unwrap()));
    assert!(!m.illegal_urls_on(&Host::parse("sub.abuse.example").unwrap()));
    assert!(!m.illegal_urls_on(&Host::parse("allowed.example").unwrap()));
}

#[test]
fn an_illegal_set_round_trips_and_rebuilds_the_same_tier_under_its_key() {
    let key = crate::IllegalKey::random();
    let mut b = MatcherBuilder::with_illegal_key(key);
    b.add_lines(
        spec("iwf", ListKind::Illegal, ListFormat::Urls),
        "t",
        ["abuse.example/gallery/img1.html", "other.example/dir/"],
    )
    .unwrap();
    let set = b.illegal_set("iwf");
    assert_eq!(set.entries(), 2);
    let bytes = set.to_bytes();
    assert!(!String::from_utf8_lossy(&bytes).contains("abuse"));
    let back = crate::IllegalSet::from_bytes(&bytes).unwrap();
    assert_eq!(back, set);
    assert!(crate::IllegalSet::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(crate::IllegalSet::from_bytes(&[1, 2, 3]).is_err());

    let first = b.build().unwrap();
    let mut again = MatcherBuilder::with_illegal_key(key);
    again
        .add_illegal_set(
            spec("iwf", ListKind::Illegal, ListFormat::Urls),
            "kept",
            &back,
        )
        .unwrap();
    let m = again.build().unwrap();
    let u = UrlKey::parse("http://abuse.example/gallery/img1.html").unwrap();
    assert_eq!(m.illegal_url(&u), first.illegal_url(&u));
    assert!(m.illegal_url(&u).is_some());
    assert!(m.illegal_urls_on(&Host::parse("abuse.example").unwrap()));
    let sibling = UrlKey::parse("http://abuse.example/gallery/img2.html").unwrap();
    assert!(m.illegal_url(&sibling).is_none());
    assert_eq!(m.stats().illegal, 2);
    // Under another key the kept hashes match nothing.
    let mut other = MatcherBuilder::new();
    other
        .add_illegal_set(
            spec("iwf", ListKind::Illegal, ListFormat::Urls),
            "kept",
            &back,
        )
        .unwrap();
    assert!(other.build().unwrap().illegal_url(&u).is_none());
}
