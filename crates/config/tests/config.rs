//! The configuration through its public API: every shipped example parses, and every kind of
//! mistake is an error naming file, line, column and reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use hedgerow_config::{ConfigError, DnsBlockMode, ListKind, SafeSearch, YouTubeMode};

fn repo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// A temporary folder with `lists/a.txt` and the given files.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("lists/a.txt"), "adult.example\n").unwrap();
    std::fs::write(
        dir.path().join("lists/iwf.txt"),
        "http://iwf-test.invalid/a.html\n",
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const GOOD: &str = r#"
[server]
state_dir = "state"

[dns]
listen = ["127.0.0.1:5353"]
upstreams = [{ address = "127.0.0.1:5300" }]
blockpage_ipv4 = "192.0.2.80"

[lists.adult]
path = "lists/a.txt"
format = "domains"
category = "adult"

[groups.ks2]
networks = ["10.20.0.0/16"]
block_categories = ["adult"]
safesearch = "on"
youtube = "strict"

[lists.iwf]
path = "lists/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"
"#;

fn errors(main: &str, extra: &[(&str, &str)]) -> (tempfile::TempDir, Vec<ConfigError>) {
    let mut files = vec![("hedgerow.toml", main)];
    files.extend_from_slice(extra);
    let dir = tree(&files);
    let errs = hedgerow_config::load(&dir.path().join("hedgerow.toml"))
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    (dir, errs)
}

#[test]
fn every_shipped_config_file_parses() {
    let main = repo_config().join("hedgerow.toml");
    let config = hedgerow_config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    // The main file includes every other .toml file in config/.
    let mut shipped: Vec<_> = std::fs::read_dir(repo_config())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    shipped.sort();
    let mut read: Vec<_> = config
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    read.sort();
    assert_eq!(read, shipped);
    // No blanket profile: age-appropriate groups.
    for g in ["early-years", "ks2", "staff", "guest"] {
        assert!(config.group(g).is_some(), "group {g}");
    }
    let ey = config.group("early-years").unwrap();
    let staff = config.group("staff").unwrap();
    assert!(ey.block_categories.len() > staff.block_categories.len());
    assert_eq!(ey.youtube, YouTubeMode::Strict);
    assert_eq!(staff.schedules.len(), 1);
    // The youngest are walled in; the block page has a server.
    assert_eq!(ey.mode, hedgerow_config::GroupMode::ApprovedOnly);
    assert!(ey.allow.iter().any(|e| e.dependency_of.is_some()));
    assert!(config.blockpage.is_some());
    assert!(config.lists.iter().any(|l| l.kind == ListKind::Illegal));
    assert!(config.devices.iter().any(|d| d.user.is_some()));
}

#[test]
fn good_config_loads_with_typed_values_and_defaults() {
    let dir = tree(&[("hedgerow.toml", GOOD)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    assert_eq!(c.server.state_dir, dir.path().join("state"));
    assert_eq!(c.server.timezone, "Europe/London");
    assert_eq!(c.dns.timeout, std::time::Duration::from_secs(2));
    let g = c.group("ks2").unwrap();
    assert_eq!(g.safesearch, SafeSearch::On);
    assert_eq!(g.dns_block, DnsBlockMode::Blockpage);
    assert_eq!(c.lists[0].path, dir.path().join("lists/a.txt"));
}

#[test]
fn a_typo_in_a_key_is_an_error_with_file_line_and_column() {
    let bad = GOOD.replace("block_categories", "block_catgories");
    let (dir, errs) = errors(&bad, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = &errs[0];
    assert_eq!(e.path, dir.path().join("hedgerow.toml"));
    assert_eq!(e.line, 17);
    assert_eq!(e.column, 1);
    assert!(e.reason.contains("block_catgories"), "{}", e.reason);
    let shown = e.to_string();
    assert!(shown.contains("hedgerow.toml:17:1: "), "{shown}");
}

#[test]
fn wrongly_typed_values_are_errors() {
    for (from, to, needle) in [
        ("10.20.0.0/16", "10.20.0.0/33", "networks"),
        ("127.0.0.1:5353", "127.0.0.1", "socket address"),
        ("safesearch = \"on\"", "safesearch = \"yes\"", "yes"),
        ("format = \"domains\"", "format = \"domain\"", "domain"),
    ] {
        let (_dir, errs) = errors(&GOOD.replace(from, to), &[]);
        assert_eq!(errs.len(), 1, "{to}: {errs:?}");
        assert!(errs[0].line > 1, "{to}: {errs:?}");
        let _ = needle;
    }
}

#[test]
fn an_unknown_category_is_an_error_at_its_position() {
    let bad = GOOD.replace(
        "block_categories = [\"adult\"]",
        "block_categories = [\"adult\", \"gambling\"]",
    );
    let (_dir, errs) = errors(&bad, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!((errs[0].line, errs[0].column), (17, 30));
    assert!(errs[0].reason.contains("gambling"));
}

#[test]
fn all_errors_are_reported_not_just_the_first() {
    let bad = GOOD
        .replace("lists/a.txt", "lists/missing.txt")
        .replace("[groups.ks2]", "[groups.ks2]\nallow = [\"not a host\"]")
        + "\n[[devices]]\nname = \"pc\"\ngroup = \"nobody\"\nip = \"10.20.0.9\"\n";
    let (_dir, errs) = errors(&bad, &[]);
    let reasons: Vec<_> = errs.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(errs.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("not found")));
    assert!(reasons.iter().any(|r| r.contains("not a host")));
    assert!(reasons.iter().any(|r| r.contains("nobody")));
}

#[test]
fn split_files_merge_and_errors_name_the_included_file() {
    let main =
        "include = [\"policy.toml\"]\n".to_owned() + &GOOD[..GOOD.find("[groups.ks2]").unwrap()];
    let policy = &GOOD[GOOD.find("[groups.ks2]").unwrap()..];
    let dir = tree(&[("hedgerow.toml", &main), ("policy.toml", policy)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    assert_eq!(c.files.len(), 2);
    assert!(c.group("ks2").is_some());

    let broken = policy.replace("youtube", "youtub");
    let (dir, errs) = errors(&main, &[("policy.toml", &broken)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, dir.path().join("policy.toml"));
    assert_eq!(errs[0].line, 5);
}

#[test]
fn the_same_group_in_two_files_is_an_error() {
    let main = "include = [\"more.toml\"]\n".to_owned() + GOOD;
    let more =
        "[groups.ks2]\nnetworks = [\"10.99.0.0/16\"]\nsafesearch = \"on\"\nyoutube = \"off\"\n";
    let (_dir, errs) = errors(&main, &[("more.toml", more)]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].reason.contains("already defined at"),
        "{}",
        errs[0].reason
    );
}

#[test]
fn schedules_are_checked() {
    let with = |s: &str| GOOD.to_owned() + s;
    let ok = "\n[[groups.ks2.schedule]]\nname = \"lunch\"\nallow_categories = [\"adult\"]\ndays = [\"weekdays\"]\nfrom = \"12:00\"\nto = \"13:00\"\n";
    let (_d, errs) = errors(&with(ok), &[]);
    assert!(errs.is_empty(), "{errs:?}");
    let (_d, errs) = errors(&with(&ok.replace("13:00", "11:00")), &[]);
    assert!(errs[0].reason.contains("not before"), "{errs:?}");
    let (_d, errs) = errors(&with(&ok.replace("13:00", "25:00")), &[]);
    assert!(errs[0].reason.contains("HH:MM"), "{errs:?}");
    let (_d, errs) = errors(&with(&ok.replace("weekdays", "funday")), &[]);
    assert!(errs[0].reason.contains("funday"), "{errs:?}");
}

#[test]
fn tls_upstreams_need_a_name_and_networks_are_not_shared() {
    let bad = GOOD.replace(
        "{ address = \"127.0.0.1:5300\" }",
        "{ address = \"127.0.0.1:853\", protocol = \"tls\" }",
    );
    let (_d, errs) = errors(&bad, &[]);
    assert!(errs[0].reason.contains("tls_name"), "{errs:?}");
    let twice = GOOD.to_owned()
        + "\n[groups.other]\nnetworks = [\"10.20.0.0/16\"]\nsafesearch = \"off\"\nyoutube = \"off\"\n";
    let (_d, errs) = errors(&twice, &[]);
    assert!(errs[0].reason.contains("in both group"), "{errs:?}");
}

#[test]
fn an_unreadable_main_file_is_an_error() {
    let errs = hedgerow_config::load(Path::new("/nonexistent/hedgerow.toml")).unwrap_err();
    assert!(errs.0[0].reason.contains("cannot read"));
}

#[test]
fn blockpage_mode_needs_a_blockpage_address() {
    let bad = GOOD.replace("blockpage_ipv4 = \"192.0.2.80\"\n", "");
    let (_d, errs) = errors(&bad, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].reason.contains("blockpage_ipv4"), "{errs:?}");
    let ok = bad.replace(
        "youtube = \"strict\"",
        "youtube = \"strict\"\ndns_block = \"nxdomain\"",
    );
    let (_d, errs) = errors(&ok, &[]);
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn logs_breaches_alerts_and_leases_are_typed_and_checked() {
    let extra = r#"
[logs]
access_retention = "30d"

[breaches]
window = "2h"

[[breaches.rules]]
name = "adult"
categories = ["adult"]
severity = "high"

[alerts]
immediate = "critical"

[alerts.webhook]
url = "http://127.0.0.1:9000/hook"

[alerts.email]
server = "smtp.school.example"
tls = "starttls"
from = "hedgerow@school.example"
to = ["dsl@school.example"]

[[leases]]
path = "dnsmasq.leases"
format = "dnsmasq"
"#;
    let good = format!("{GOOD}{extra}");
    let dir = tree(&[("hedgerow.toml", &good)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    assert_eq!(c.logs.access_retention.as_secs(), 30 * 86_400);
    assert_eq!(c.logs.breach_retention.as_secs(), 730 * 86_400, "default");
    assert_eq!(c.breaches.window.as_secs(), 7200);
    assert_eq!(
        c.breaches.rules[0].severity,
        hedgerow_config::Severity::High
    );
    let alerts = c.alerts.unwrap();
    assert_eq!(alerts.email.unwrap().port, 587);
    assert_eq!(c.leases[0].path, dir.path().join("dnsmasq.leases"));

    // Mistakes are reported where they are.
    let bad = good
        .replace("\ncategories = [\"adult\"]", "\ncategories = [\"gaming\"]")
        .replace("http://127.0.0.1:9000/hook", "ftp://x")
        .replace("\"dsl@school.example\"", "\"dsl\"");
    let (_dir, errs) = errors(&bad, &[]);
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 3, "{text:?}");
    assert!(
        text.iter()
            .any(|e| e.contains("breach rule names category \"gaming\""))
    );
    assert!(text.iter().any(|e| e.contains("webhook url \"ftp://x\"")));
    assert!(
        text.iter()
            .any(|e| e.contains("\"dsl\" is not an e-mail address"))
    );
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let gaming = errs.iter().find(|e| e.reason.contains("gaming")).unwrap();
    assert_eq!(gaming.line, line_of("\"gaming\""));
}

#[test]
fn the_illegal_tier_cannot_be_optional_or_left_out() {
    // Optional: refused at the list, with the reason.
    let bad = GOOD.replace(
        "kind = \"illegal\"\n",
        "kind = \"illegal\"\noptional = true\n",
    );
    let (dir, errs) = errors(&bad, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    let line = bad.lines().position(|l| l == "[lists.iwf]").unwrap() + 1;
    assert_eq!(errs[0].path, dir.path().join("hedgerow.toml"));
    assert_eq!(errs[0].line, line, "{errs:?}");
    assert!(errs[0].reason.contains("cannot be optional"), "{errs:?}");
    // Left out: refused, naming what is missing.
    let start = GOOD.find("\n[lists.iwf]").unwrap();
    let without = &GOOD[..start];
    let (_dir, errs) = errors(without, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].reason.contains("no illegal-tier list"), "{errs:?}");
    // The twin: an ordinary list may be optional, and an illegal list's missing file is the
    // policy's to judge (it may enforce the last good copy), not a configuration error.
    let ok = GOOD
        .replace(
            "category = \"adult\"\n",
            "category = \"adult\"\noptional = true\n",
        )
        .replace("lists/iwf.txt", "lists/absent.txt");
    let (_dir, errs) = errors(&ok, &[]);
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn the_illegal_shrink_limit_is_a_fraction() {
    for bad in ["0.0", "1.0", "1.5", "-0.2"] {
        let cfg = GOOD.replace(
            "state_dir = \"state\"\n",
            &format!("state_dir = \"state\"\nillegal_shrink_limit = {bad}\n"),
        );
        let (_dir, errs) = errors(&cfg, &[]);
        assert_eq!(errs.len(), 1, "{bad}: {errs:?}");
        assert!(errs[0].reason.contains("illegal_shrink_limit"), "{errs:?}");
    }
    let cfg = GOOD.replace(
        "state_dir = \"state\"\n",
        "state_dir = \"state\"\nillegal_shrink_limit = 0.2\n",
    );
    let dir = tree(&[("hedgerow.toml", &cfg)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    assert_eq!(c.server.illegal_shrink_limit, 0.2);
}

#[test]
fn trusted_forwarders_and_listen_addresses_are_typed_and_checked() {
    let with = |dns: &str, group: &str| {
        GOOD.replace(
            "blockpage_ipv4 = \"192.0.2.80\"",
            &format!("blockpage_ipv4 = \"192.0.2.80\"\n{dns}"),
        ) + group
    };
    let vlan = "\n[groups.staff]\nlisten_addresses = [\"127.0.0.2\"]\nsafesearch = \"off\"\nyoutube = \"off\"\n";
    let good = with(
        "listen = [\"127.0.0.1:5353\", \"127.0.0.2:5353\"]\ntrusted_forwarders = [\"10.20.0.1\", \"10.30.0.7/24\", \"fd00::1\"]",
        vlan,
    )
    .replacen("listen = [\"127.0.0.1:5353\"]\n", "", 1);
    let dir = tree(&[("hedgerow.toml", &good)]);
    let c =
        hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap_or_else(|e| panic!("{e}"));
    let shown: Vec<String> = c
        .dns
        .trusted_forwarders
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(shown, ["10.20.0.1/32", "10.30.0.0/24", "fd00::1/128"]);
    let staff = c.group("staff").unwrap();
    assert!(staff.networks.is_empty());
    assert_eq!(
        staff.listen_addresses,
        ["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
    );
    assert!(c.group("ks2").unwrap().listen_addresses.is_empty());

    // A bad forwarder: its own line and column.
    let bad = with("trusted_forwarders = [\"10.20.0.1\", \"router\"]", "");
    let (_d, errs) = errors(&bad, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .reason
            .contains("\"router\" is not an address or a network"),
        "{errs:?}"
    );
    assert_eq!((errs[0].line, errs[0].column), (9, 36), "{errs:?}");
    let (_d, errs) = errors(&with("trusted_forwarders = [\"10.20.0.0/40\"]", ""), &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].reason.contains("10.20.0.0/40"), "{errs:?}");

    // A listen address no listener binds, a wrongly typed one, and one in two groups.
    let (_d, errs) = errors(&with("", vlan), &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .reason
            .contains("listen address 127.0.0.2 is not the address of any [dns] listen entry"),
        "{errs:?}"
    );
    let text = with("", vlan);
    let line = text
        .lines()
        .position(|l| l.starts_with("listen_addresses"))
        .unwrap()
        + 1;
    assert_eq!(errs[0].line, line, "{errs:?}");
    let (_d, errs) = errors(&with("", &vlan.replace("127.0.0.2", "vlan2")), &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].line > 1, "{errs:?}");
    let both = good + &vlan.replace("staff", "office");
    let (_d, errs) = errors(&both, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .reason
            .contains("127.0.0.2 is in both group \"office\" and group \"staff\""),
        "{errs:?}"
    );

    // A group needs networks or listen addresses.
    let (_d, errs) = errors(
        &with(
            "",
            &vlan.replace("listen_addresses = [\"127.0.0.2\"]\n", ""),
        ),
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            .reason
            .contains("at least one network or listen address"),
        "{errs:?}"
    );
}

/// An approved-only group with sites, their dependencies and an approved list.
const GARDEN: &str = r#"
[lists.early-sites]
path = "lists/early.txt"
format = "domains"
kind = "approved"

[groups.early]
networks = ["10.10.0.0/16"]
mode = "approved-only"
approved_lists = ["early-sites"]
safesearch = "on"
youtube = "strict"
allow = [
  "phonics.example",
  { site = "stories.example", with = ["cdn.stories-media.example", "*.img.example"] },
]
"#;

#[test]
fn approved_only_groups_list_sites_with_their_dependencies() {
    let main = format!("{GOOD}{GARDEN}");
    let dir = tree(&[("hedgerow.toml", &main), ("lists/early.txt", "a.example\n")]);
    let config = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    let early = config.group("early").unwrap();
    assert_eq!(early.mode, hedgerow_config::GroupMode::ApprovedOnly);
    assert_eq!(early.approved_lists, ["early-sites"]);
    let entries: Vec<(&str, Option<&str>)> = early
        .allow
        .iter()
        .map(|e| (e.text.as_str(), e.dependency_of.as_deref()))
        .collect();
    assert_eq!(
        entries,
        [
            ("phonics.example", None),
            ("stories.example", None),
            ("cdn.stories-media.example", Some("stories.example")),
            ("*.img.example", Some("stories.example")),
        ]
    );
    // Twin: a group that says nothing is filtered, as before.
    assert_eq!(
        config.group("ks2").unwrap().mode,
        hedgerow_config::GroupMode::Filtered
    );
}

#[test]
fn approved_lists_and_dependencies_are_checked() {
    let cases = [
        // An approved list that is a block list, or not defined.
        (
            GARDEN.replace(
                r#"approved_lists = ["early-sites"]"#,
                r#"approved_lists = ["adult"]"#,
            ),
            "approves list \"adult\", which is not an approved or allow list",
        ),
        (
            GARDEN.replace(
                r#"approved_lists = ["early-sites"]"#,
                r#"approved_lists = ["nope"]"#,
            ),
            "approves list \"nope\", which is not defined",
        ),
        // approved_lists in a filtered group.
        (
            GARDEN.replace(r#"mode = "approved-only""#, ""),
            "approved_lists is for mode = \"approved-only\" groups",
        ),
        // A URL as a dependency; an unknown key in the table; no site.
        (
            GARDEN.replace("\"*.img.example\"", "\"img.example/pics/\""),
            "list the host a page loads from",
        ),
        (
            GARDEN.replace("with = [", "whith = ["),
            "unknown field `whith`, expected `site` or `with`",
        ),
        (
            GARDEN.replace("site = \"stories.example\", ", ""),
            "missing field `site`",
        ),
        (
            GARDEN.replace("approved-only", "approve-only"),
            "approve-only",
        ),
    ];
    for (garden, want) in cases {
        let main = format!("{GOOD}{garden}");
        let (_dir, errs) = errors(&main, &[("lists/early.txt", "a.example\n")]);
        assert!(
            errs.iter().any(|e| e.reason.contains(want) && e.line > 1),
            "want {want:?} with a line, got {errs:?}"
        );
    }
}

#[test]
fn blockpage_listeners_and_pac_direct_are_typed_and_checked() {
    let main = format!(
        "{GOOD}\n[blockpage]\nlisten = [\"127.0.0.1:8080\"]\n\n[proxy]\nlisten = [\"127.0.0.1:3128\"]\npac_direct = [\"school.internal\", \"*.mis.example\", \"192.0.2.0/24\", \"198.51.100.7\"]\n"
    );
    let dir = tree(&[("hedgerow.toml", &main)]);
    let config = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    let page = config.blockpage.unwrap();
    assert_eq!(page.listen, ["127.0.0.1:8080".parse().unwrap()]);
    assert!(page.tls_listen.is_empty());
    use hedgerow_config::PacDirect;
    assert_eq!(
        config.proxy.unwrap().pac_direct,
        [
            PacDirect::Domain("school.internal".into()),
            PacDirect::Domain("mis.example".into()),
            PacDirect::Network("192.0.2.0/24".parse().unwrap()),
            PacDirect::Network("198.51.100.7/32".parse().unwrap()),
        ]
    );
    for (extra, want) in [
        (
            "[blockpage]\ntls_listen = [\"127.0.0.1:8443\"]\n",
            "tls_listen needs the school CA",
        ),
        ("[blockpage]\n", "[blockpage] needs listen"),
        (
            "[proxy]\nlisten = [\"127.0.0.1:3128\"]\npac_direct = [\"not a host!\"]\n",
            "pac_direct: \"not a host!\" is not an address",
        ),
    ] {
        let (_dir, errs) = errors(&format!("{GOOD}\n{extra}"), &[]);
        assert!(
            errs.iter().any(|e| e.reason.contains(want) && e.line > 1),
            "want {want:?}, got {errs:?}"
        );
    }
}

/// A category outside the vocabulary (docs/categories.md) is refused wherever it is written,
/// at its file, line and column, with the id it most likely meant; each is reported once.
#[test]
fn categories_outside_the_vocabulary_are_refused_where_they_are_written() {
    let bad = GOOD
        .replace("category = \"adult\"", "category = \"pornography\"")
        .replace(
            "block_categories = [\"adult\"]",
            "block_categories = [\"adult\", \"racial-hatred\", \"exam-season\"]",
        );
    let (_dir, errs) = errors(&bad, &[]);
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    let at = |needle: &str| {
        let line = bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
        let column = bad.lines().nth(line - 1).unwrap().find(needle).unwrap() + 1;
        (line, column)
    };
    let find = |id: &str| {
        errs.iter()
            .find(|e| {
                e.reason.contains(&format!(
                    "category \"{id}\", which is not in the category vocabulary"
                ))
            })
            .unwrap_or_else(|| panic!("no error for {id}: {text:?}"))
    };
    let porn = find("pornography");
    assert_eq!((porn.line, porn.column), at("\"pornography\""));
    assert!(
        porn.reason.contains("did you mean \"adult\"?"),
        "{}",
        porn.reason
    );
    assert!(
        porn.reason.contains("list \"adult\" has"),
        "{}",
        porn.reason
    );
    let hate = find("racial-hatred");
    assert_eq!((hate.line, hate.column), at("\"racial-hatred\""));
    assert!(
        hate.reason.contains("did you mean \"hate\"?"),
        "{}",
        hate.reason
    );
    let exam = find("exam-season");
    assert_eq!((exam.line, exam.column), at("\"exam-season\""));
    assert!(!exam.reason.contains("did you mean"), "{}", exam.reason);
    assert!(errs.iter().all(|e| e.path.ends_with("hedgerow.toml")));
    // Twin: "adult" is in the vocabulary, but now no list provides it; that is the only
    // other error, and the unknown ids are not reported a second time.
    assert_eq!(errs.len(), 4, "{text:?}");
    assert!(
        text.iter()
            .any(|e| e.contains("blocks category \"adult\", but no block list provides it")),
        "{text:?}"
    );
    // And the good configuration, every id in the vocabulary, loads.
    assert!(errors(GOOD, &[]).1.is_empty());
}

#[test]
fn change_control_may_only_be_stricter_and_a_looser_setting_names_its_line() {
    use hedgerow_config::{ChangeControlConfig, RiskLevel};
    // The defaults, when the section is absent.
    let dir = tree(&[("hedgerow.toml", GOOD)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    assert_eq!(c.change_control, ChangeControlConfig::default());
    assert_eq!(c.api, None);
    // Stricter settings are taken.
    let strict = format!(
        "{GOOD}\n[change_control]\napprove_tightening = true\ndsl_cosign_from = \"medium\"\napprovers = 2\n\n[api]\nlisten = \"127.0.0.1:8443\"\nnames = [\"Hedgerow.School.Example\"]\n"
    );
    let dir = tree(&[("hedgerow.toml", &strict)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    assert!(c.change_control.approve_tightening);
    assert_eq!(c.change_control.dsl_cosign_from, RiskLevel::Medium);
    assert_eq!(c.change_control.approvers, 2);
    let api = c.api.unwrap();
    assert_eq!(api.listen, "127.0.0.1:8443".parse().unwrap());
    assert_eq!(api.names, ["hedgerow.school.example"]);
    // Looser ones are refused, each at its own line, with the reason.
    let loose = format!("{GOOD}\n[change_control]\napprovers = 0\ndsl_cosign_from = \"never\"\n");
    let (_dir, errs) = errors(&loose, &[]);
    let line = |key: &str| loose.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    assert_eq!(errs.len(), 2, "{errs:?}");
    let approvers = errs
        .iter()
        .find(|e| e.reason.contains("approvers"))
        .unwrap();
    assert_eq!(approvers.line, line("approvers"));
    assert!(
        approvers.reason.contains("looser than the default"),
        "{approvers}"
    );
    let dsl = errs
        .iter()
        .find(|e| e.reason.contains("dsl_cosign_from"))
        .unwrap();
    assert_eq!(dsl.line, line("dsl_cosign_from"));
    assert!(dsl.reason.contains("only be made stricter"), "{dsl}");
    assert!(dsl.to_string().contains("hedgerow.toml:"), "{dsl}");
    // An unknown rule is a typo, not a silent default.
    let (_dir, errs) = errors(
        &format!("{GOOD}\n[change_control]\nself_approval = true\n"),
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
}

#[test]
fn ship_is_off_by_default_and_typed_and_checked_when_set() {
    let dir = tree(&[("hedgerow.toml", GOOD)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    assert!(c.ship.is_none(), "shipping is off unless configured");

    let extra = r#"
[ship]
appliance = "st-marys"

[ship.clickhouse]
url = "https://clickhouse.trust.example:8443"
user = "hedgerow"
password_file = "ch-password"

[ship.syslog]
address = "siem.trust.example:6514"
tls = true
facility = "local3"
"#;
    let good = format!("{GOOD}{extra}");
    let dir = tree(&[("hedgerow.toml", &good)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    let ship = c.ship.unwrap();
    assert_eq!(ship.appliance.as_deref(), Some("st-marys"));
    assert_eq!(ship.queue, 65_536);
    let ch = ship.clickhouse.unwrap();
    assert_eq!(ch.database, "hedgerow");
    assert_eq!(ch.events_table, "access_events");
    assert_eq!(ch.breaches_table, "breaches");
    assert_eq!(ch.batch, 10_000);
    assert_eq!(ch.flush_interval, std::time::Duration::from_secs(1));
    assert_eq!(ch.password_file, Some(dir.path().join("ch-password")));
    let syslog = ship.syslog.unwrap();
    assert!(syslog.tls);
    assert_eq!(syslog.facility, 19);

    // Mistakes are reported where they are.
    let bad = good
        .replace("\"st-marys\"", "\"st marys\"")
        .replace("https://clickhouse.trust.example:8443", "ftp://x")
        .replace("siem.trust.example:6514", "siem.trust.example")
        .replace("\"local3\"", "\"local9\"")
        .replace("user = \"hedgerow\"\n", "database = \"x; DROP\"\n");
    let (_dir, errs) = errors(&bad, &[]);
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert_eq!(errs.len(), 6, "{text:#?}");
    for needle in [
        "appliance \"st marys\"",
        "url \"ftp://x\"",
        "address \"siem.trust.example\" must be host:port",
        "facility \"local9\"",
        "\"x; DROP\" is not a plain identifier",
        "password_file needs a user",
    ] {
        assert!(
            text.iter().any(|e| e.contains(needle)),
            "{needle}: {text:#?}"
        );
    }
    let line_of = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let facility = errs.iter().find(|e| e.reason.contains("local9")).unwrap();
    assert_eq!(facility.line, line_of("\"local9\""));

    // A table with no destination, or TLS settings without TLS.
    let (_dir, errs) = errors(&format!("{GOOD}\n[ship]\nqueue = 0\n"), &[]);
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|e| e.contains("[ship] needs a destination")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|e| e.contains("queue must be at least 1")),
        "{text:?}"
    );
    let (_dir, errs) = errors(
        &format!("{GOOD}\n[ship.syslog]\naddress = \"127.0.0.1:514\"\nca_file = \"ca.pem\"\n"),
        &[],
    );
    assert!(
        errs.iter().any(|e| e.reason.contains("need tls = true")),
        "{errs:?}"
    );
}

#[test]
fn changing_ship_needs_a_restart() {
    // One folder (the state directory is the same), the file rewritten.
    let dir = tree(&[]);
    let with = |url: &str| {
        let text = format!("{GOOD}\n[ship.clickhouse]\nurl = \"{url}\"\n");
        std::fs::write(dir.path().join("hedgerow.toml"), text).unwrap();
        hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap()
    };
    let a = with("http://127.0.0.1:8123");
    let b = with("http://127.0.0.1:8124");
    let diff = hedgerow_config::diff(&a, &b);
    assert!(diff.changed("[ship]"));
    assert!(diff.refusal().unwrap().contains("[ship] needs a restart"));
    // The same settings again: nothing to refuse.
    assert!(
        hedgerow_config::diff(&a, &with("http://127.0.0.1:8123"))
            .refusal()
            .is_none()
    );
}
// === upstream "system" and downloaded lists (issue 18) ===

/// `GOOD` with its upstream replaced by `address = "system"` read from `resolv.conf` in the
/// test's folder, and `listen` as given.
fn system_config(listen: &str) -> String {
    GOOD.replace(
        r#"listen = ["127.0.0.1:5353"]
upstreams = [{ address = "127.0.0.1:5300" }]"#,
        &format!(
            "listen = [{listen}]\nresolv_conf = \"resolv.conf\"\nupstreams = [{{ address = \"system\" }}]"
        ),
    )
}

#[test]
fn system_upstreams_are_the_nameservers_of_resolv_conf_without_our_own() {
    let resolv = "# written by a test\nsearch school.internal\nnameserver 127.0.53.7\nnameserver 127.0.54.1\noptions edns0\nnameserver ::1\nnameserver 127.0.53.7\n";
    let dir = tree(&[
        ("hedgerow.toml", &system_config(r#""127.0.54.1:53""#)),
        ("resolv.conf", resolv),
    ]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    let got: Vec<String> = c
        .dns
        .upstreams
        .iter()
        .map(|u| u.address.to_string())
        .collect();
    assert_eq!(got, ["127.0.53.7:53", "[::1]:53"]);
    assert!(c.dns.upstreams.iter().all(|u| u.system));
    let skipped: Vec<String> = c
        .dns
        .system_skipped
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(skipped, ["127.0.54.1:53"]);
    assert_eq!(c.dns.resolv_conf, dir.path().join("resolv.conf"));
}

#[test]
fn a_resolv_conf_naming_only_hedgerow_itself_is_an_error() {
    // A wildcard listener on port 53 is every address of this machine, loopback included.
    let (_dir, errs) = errors(
        &system_config(r#""0.0.0.0:53""#),
        &[("resolv.conf", "nameserver 127.0.0.1\n")],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    let e = errs[0].to_string();
    assert!(
        e.contains("names no nameserver other than Hedgerow's own listen addresses"),
        "{e}"
    );
    assert!(e.contains("skipped 127.0.0.1:53"), "{e}");
    assert!(e.contains("hedgerow.toml:"), "{e}");
}

#[test]
fn a_missing_resolv_conf_and_a_bad_address_are_errors() {
    let (_dir, errs) = errors(&system_config(r#""127.0.0.1:5353""#), &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].reason.contains("cannot read"), "{errs:?}");
    let bad = GOOD.replace("127.0.0.1:5300", "dns.example");
    let (_dir, errs) = errors(&bad, &[]);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].reason.contains("or \"system\""), "{errs:?}");
}

#[test]
fn a_downloaded_list_lives_under_the_state_dir_with_defaults() {
    let main = format!(
        "{GOOD}\n[lists.remote]\nurl = \"https://lists.example/adult.txt\"\nformat = \"domains\"\ncategory = \"adult\"\ncredential = \"lists-token\"\nsha256_url = \"https://lists.example/adult.txt.sha256\"\n"
    );
    let dir = tree(&[("hedgerow.toml", &main)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    let l = c.lists.iter().find(|l| l.name == "remote").unwrap();
    assert_eq!(l.path, dir.path().join("state/lists/remote.list"));
    let f = l.fetch.as_ref().unwrap();
    assert_eq!(f.every, std::time::Duration::from_secs(12 * 3600));
    assert_eq!(f.max_age, std::time::Duration::from_secs(48 * 3600));
    assert_eq!(f.min_entries, 1);
    assert_eq!(
        f.credentials,
        Some(hedgerow_config::Credentials::Systemd("lists-token".into()))
    );
    // A file list has no download settings.
    assert!(
        c.lists
            .iter()
            .find(|l| l.name == "adult")
            .unwrap()
            .fetch
            .is_none()
    );
}

#[test]
fn download_settings_are_checked() {
    let main = GOOD.replace(
        "path = \"lists/iwf.txt\"",
        "url = \"http://iwf.example/list\"\nevery = \"1d\"\ncredential = \"../x\"\nsignature_url = \"https://iwf.example/list.minisig\"",
    ) + "\n[lists.b]\npath = \"lists/a.txt\"\nformat = \"domains\"\ncategory = \"adult\"\nevery = \"1h\"\n";
    let (_dir, errs) = errors(&main, &[]);
    let all: Vec<String> = errs.iter().map(|e| e.reason.clone()).collect();
    for want in [
        "url must start with https://",
        "every must be 12h or less",
        "is not a systemd credential name",
        "signature_url needs minisign_key",
        "every is only for a list with a url",
    ] {
        assert!(all.iter().any(|r| r.contains(want)), "{want}: {all:?}");
    }
    assert_eq!(all.len(), 5, "{all:?}");
}

#[test]
fn a_list_url_with_a_secret_in_it_is_refused_and_an_ordinary_query_is_not() {
    let with = |url: &str| {
        format!(
            "{GOOD}\n[lists.remote]\nurl = \"{url}\"\nformat = \"domains\"\ncategory = \"adult\"\n"
        )
    };
    for (url, why) in [
        (
            "https://school:hunter2@lists.example/adult.txt",
            "has a user or password in it",
        ),
        (
            "https://lists.example/adult.txt?format=txt&apiKey=abc123",
            "query parameter \"apikey\"",
        ),
        (
            "https://lists.example/a.txt?access_token=abc",
            "\"access_token\"",
        ),
    ] {
        let main = with(url);
        let (_dir, errs) = errors(&main, &[]);
        assert_eq!(errs.len(), 1, "{url}: {errs:?}");
        assert!(errs[0].reason.contains(why), "{url}: {errs:?}");
        assert!(errs[0].reason.contains("credentials_file"), "{errs:?}");
        let line = main.lines().position(|l| l.contains("url = ")).unwrap() + 1;
        assert_eq!(errs[0].line, line, "{errs:?}");
    }
    // Twin: a list source whose query only chooses a format loads.
    let main = with("https://lists.example/serverlist.php?hostformat=hosts&showintro=0");
    assert!(errors(&main, &[]).1.is_empty());
}

#[test]
fn the_console_is_off_by_default_and_its_settings_are_checked_at_their_line() {
    use hedgerow_config::{FALSE_POSITIVE, OutcomeField};
    let dir = tree(&[("hedgerow.toml", GOOD)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    assert!(c.console.is_none(), "no console unless configured");

    // The defaults: 30 minutes idle, the DfE outcomes, the report on Mondays at 07:00.
    let on = format!("{GOOD}\n[console]\nlisten = \"127.0.0.1:8443\"\n");
    let dir = tree(&[("hedgerow.toml", &on)]);
    let c = hedgerow_config::load(&dir.path().join("hedgerow.toml")).unwrap();
    let console = c.console.unwrap();
    assert_eq!(console.idle_timeout, std::time::Duration::from_secs(1800));
    assert_eq!(console.weekly_report, Some((7, 0)));
    let ids: Vec<&str> = console.outcomes.iter().map(|o| o.id.as_str()).collect();
    assert!(
        ids.contains(&"parents-informed") && ids.contains(&"referred-ceop"),
        "{ids:?}"
    );
    let fp = console
        .outcomes
        .iter()
        .find(|o| o.id == FALSE_POSITIVE)
        .unwrap();
    assert_eq!(fp.record, [OutcomeField::Reason]);

    // A school's own list replaces the defaults, and false positive is always offered.
    let own = format!(
        "{GOOD}\n[console]\nlisten = \"127.0.0.1:8443\"\nidle_timeout = \"10m\"\nweekly_report = \"off\"\n\n[[console.outcomes]]\nid = \"referred-early-help\"\nlabel = \"Referred to Early Help\"\nrecord = [\"date\", \"reference\"]\n"
    );
    let dir = tree(&[("hedgerow.toml", &own)]);
    let console = hedgerow_config::load(&dir.path().join("hedgerow.toml"))
        .unwrap()
        .console
        .unwrap();
    assert_eq!(console.idle_timeout, std::time::Duration::from_secs(600));
    assert_eq!(console.weekly_report, None);
    let ids: Vec<&str> = console.outcomes.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["referred-early-help", FALSE_POSITIVE]);

    // Too long an idle time, an unknown field to record, a bad time: each at its line.
    let bad = format!(
        "{GOOD}\n[console]\nlisten = \"127.0.0.1:8443\"\nidle_timeout = \"8h\"\nweekly_report = \"25:00\"\n\n[[console.outcomes]]\nid = \"Told Head\"\nlabel = \"x\"\n\n[[console.outcomes]]\nid = \"told-head\"\nlabel = \"Told the head\"\nrecord = [\"colour\"]\n"
    );
    let (_dir, errs) = errors(&bad, &[]);
    let line = |key: &str| bad.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    assert_eq!(errs.len(), 4, "{errs:?}");
    let at = |needle: &str| {
        errs.iter()
            .find(|e| e.reason.contains(needle))
            .unwrap()
            .line
    };
    assert_eq!(at("30 minutes"), line("idle_timeout"));
    assert_eq!(at("weekly_report"), line("weekly_report"));
    assert_eq!(at("lowercase"), line("id = \"Told Head\""));
    assert_eq!(at("colour"), line("record = [\"colour\"]"));
}
