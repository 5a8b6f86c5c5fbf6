//! Decisions through the public API on real list files: precedence between tiers, schedules
//! at chosen times, client identification, and reloads that fail safe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::Path;

use hedgerow_model::{Action, Host, Tier, UrlKey};
use hedgerow_policy::{
    IllegalSource, PROTECTED_RULE, PolicyError, PolicyHandle, PolicySnapshot, Target, Verdict,
};

const CONFIG: &str = r#"
[server]
state_dir = "state"
timezone = "Europe/London"

[dns]
listen = ["127.0.0.1:5353"]
upstreams = [{ address = "127.0.0.1:5300" }]
blockpage_ipv4 = "192.0.2.80"

[lists.iwf]
path = "iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.adult]
path = "adult.txt"
format = "domains"
category = "adult"

[lists.games]
path = "games.txt"
format = "domains"
category = "games"

[lists.selfharm]
path = "selfharm.txt"
format = "phrases"
category = "self-harm"
severity = "high"

[lists.allow]
path = "allow.txt"
format = "domains"
kind = "allow"

[groups.pupils]
networks = ["10.20.0.0/16"]
block_categories = ["adult", "games", "self-harm"]
safesearch = "on"
youtube = "strict"
allow = ["iwf-test.invalid", "games-for-school.example", "both.example"]
block = ["allowed-but-local-block.example", "both.example", "docs.allowed.example"]

[groups.staff]
networks = ["10.30.0.0/16", "10.30.5.0/24"]
block_categories = ["adult", "games"]
safesearch = "on"
youtube = "moderate"

[[groups.staff.schedule]]
name = "games after school"
allow_categories = ["games"]
days = ["weekdays"]
from = "15:30"
to = "17:00"

[[devices]]
name = "Head-Laptop"
ip = "10.20.9.9"
group = "staff"
user = "head"
"#;

fn setup(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    w("hedgerow.toml", config);
    w("iwf.txt", "http://iwf-test.invalid/gallery/a.html\n");
    w("adult.txt", "adult.example\nsites.allowed.example\n");
    w(
        "games.txt",
        "games.example\ngames-for-school.example\nallowed-but-local-block.example\n",
    );
    w("selfharm.txt", "kill myself\n");
    w(
        "allow.txt",
        "allowed.example\nallowed-but-local-block.example\ngames.example.org\n",
    );
    dir
}

fn snapshot(dir: &Path) -> PolicySnapshot {
    PolicySnapshot::load(&dir.join("hedgerow.toml")).unwrap()
}

/// A Tuesday, at the given London wall-clock time.
fn tuesday(time: &str) -> jiff::Timestamp {
    let civil: jiff::civil::DateTime = format!("2026-11-24T{time}").parse().unwrap();
    civil
        .to_zoned(jiff::tz::TimeZone::get("Europe/London").unwrap())
        .unwrap()
        .timestamp()
}

fn host(snap: &PolicySnapshot, client: &str, name: &str) -> Verdict {
    host_at(snap, client, name, tuesday("10:00"))
}

fn host_at(snap: &PolicySnapshot, client: &str, name: &str, at: jiff::Timestamp) -> Verdict {
    let c = snap
        .client(client.parse().unwrap(), None)
        .expect("client in a group");
    snap.decide(c.group, Target::Host(&Host::parse(name).unwrap()), at)
}

fn url(snap: &PolicySnapshot, client: &str, u: &str) -> Verdict {
    let c = snap
        .client(client.parse().unwrap(), None)
        .expect("client in a group");
    snap.decide(
        c.group,
        Target::Url(&UrlKey::parse(u).unwrap()),
        tuesday("10:00"),
    )
}

#[test]
fn illegal_tier_beats_a_local_allow_entry() {
    let dir = setup(CONFIG);
    let snap = snapshot(dir.path());
    let v = url(
        &snap,
        "10.20.1.1",
        "http://IWF-TEST.invalid:80/gallery/./a.html",
    );
    assert_eq!((v.action, v.tier), (Action::Block, Tier::Illegal));
    assert!(
        v.rule
            .as_deref()
            .is_some_and(|r| r.starts_with(PROTECTED_RULE)),
        "{v:?}"
    );
    assert_eq!(v.category.as_ref().map(|c| c.as_str()), Some("child-abuse"));
    // Twin: the same host's other pages follow the local allow entry.
    let v = url(&snap, "10.20.1.1", "http://iwf-test.invalid/gallery/b.html");
    assert_eq!((v.action, v.tier), (Action::Allow, Tier::LocalAllow));
}

#[test]
fn local_allow_beats_local_block_beats_allow_lists_and_categories() {
    let dir = setup(CONFIG);
    let snap = snapshot(dir.path());
    let v = host(&snap, "10.20.1.1", "both.example");
    assert_eq!((v.action, v.tier), (Action::Allow, Tier::LocalAllow));
    let v = host(&snap, "10.20.1.1", "games-for-school.example");
    assert_eq!((v.action, v.tier), (Action::Allow, Tier::LocalAllow));
    let v = host(&snap, "10.20.1.1", "allowed-but-local-block.example");
    assert_eq!((v.action, v.tier), (Action::Block, Tier::LocalBlock));
    // Local block of a subdomain of an allow-listed site.
    let v = host(&snap, "10.20.1.1", "docs.allowed.example");
    assert_eq!((v.action, v.tier), (Action::Block, Tier::LocalBlock));
}

#[test]
fn allow_list_wins_ties_and_more_specific_category_entries_still_block() {
    let dir = setup(CONFIG);
    let snap = snapshot(dir.path());
    let v = host(&snap, "10.20.1.1", "www.allowed.example");
    assert_eq!((v.action, v.tier), (Action::Allow, Tier::AllowList));
    // adult lists sites.allowed.example, more specific than the allow entry allowed.example.
    let v = host(&snap, "10.20.1.1", "x.sites.allowed.example");
    assert_eq!((v.action, v.tier), (Action::Block, Tier::Category));
    assert_eq!(v.rule.as_deref(), Some("sites.allowed.example"));
    // An allow entry under a blocked domain is more specific: allowed.
    let v = host(&snap, "10.20.1.1", "games.example.org");
    assert_eq!(v.action, Action::Allow);
}

#[test]
fn categories_block_for_groups_that_block_them_only() {
    let dir = setup(CONFIG);
    let snap = snapshot(dir.path());
    let v = host(&snap, "10.20.1.1", "cdn.adult.example");
    assert_eq!(
        (v.action, v.tier, v.list.as_deref()),
        (Action::Block, Tier::Category, Some("adult"))
    );
    let v = host(&snap, "10.20.1.1", "notadult.example");
    assert_eq!((v.action, v.tier), (Action::Allow, Tier::Default));
}

#[test]
fn schedules_open_a_category_only_inside_their_window() {
    let dir = setup(CONFIG);
    let snap = snapshot(dir.path());
    let inside = host_at(&snap, "10.30.1.1", "games.example", tuesday("16:00"));
    assert_eq!(
        (inside.action, inside.tier),
        (Action::Allow, Tier::Schedule)
    );
    assert!(
        inside
            .rule
            .as_deref()
            .unwrap_or("")
            .contains("games after school")
    );
    for at in [tuesday("15:29"), tuesday("17:00"), tuesday("10:00")] {
        let v = host_at(&snap, "10.30.1.1", "games.example", at);
        assert_eq!(v.action, Action::Block, "{at}");
    }
    // Saturday afternoon is not a weekday.
    let saturday: jiff::civil::DateTime = "2026-11-28T16:00".parse().unwrap();
    let saturday = saturday
        .to_zoned(jiff::tz::TimeZone::get("Europe/London").unwrap())
        .unwrap()
        .timestamp();
    assert_eq!(
        host_at(&snap, "10.30.1.1", "games.example", saturday).action,
        Action::Block
    );
    // The schedule does not open adult, nor games for pupils.
    assert_eq!(
        host_at(&snap, "10.30.1.1", "adult.example", tuesday("16:00")).action,
        Action::Block
    );
    assert_eq!(
        host_at(&snap, "10.20.1.1", "games.example", tuesday("16:00")).action,
        Action::Block
    );
}

#[test]
fn phrases_in_urls_block_and_are_reported() {
    let dir = setup(CONFIG);
    let snap = snapshot(dir.path());
    let v = url(
        &snap,
        "10.20.1.1",
        "https://www.google.com/search?q=how+to+k1ll+my5elf",
    );
    assert_eq!(
        (v.action, v.tier, v.rule.as_deref()),
        (Action::Block, Tier::Category, Some("kill myself"))
    );
    let v = url(
        &snap,
        "10.20.1.1",
        "https://www.google.com/search?q=how+to+kill+time",
    );
    assert_eq!(v.action, Action::Allow);
    let c = snap.client("10.30.1.1".parse().unwrap(), None).unwrap();
    let p = snap.phrases(c.group, "i want to kill myself");
    assert_eq!(p.len(), 1);
    assert!(
        !p[0].blocked,
        "staff do not block self-harm, but the phrase is still reported"
    );
}

#[test]
fn clients_are_identified_by_device_then_most_specific_network() {
    let dir = setup(CONFIG);
    let snap = snapshot(dir.path());
    let c = snap.client("10.20.9.9".parse().unwrap(), None).unwrap();
    assert_eq!(
        (c.group_name, c.device.map(|d| d.name.as_str())),
        ("staff", Some("Head-Laptop"))
    );
    let c = snap.client("10.20.9.8".parse().unwrap(), None).unwrap();
    assert_eq!(c.group_name, "pupils");
    let mapped: IpAddr = "::ffff:10.30.5.1".parse().unwrap();
    assert_eq!(snap.client(mapped, None).unwrap().group_name, "staff");
    assert!(snap.client("192.0.2.1".parse().unwrap(), None).is_none());
}

#[test]
fn a_failed_reload_leaves_the_old_policy_serving() {
    let dir = setup(CONFIG);
    let handle = PolicyHandle::load(&dir.path().join("hedgerow.toml")).unwrap();
    let before = handle.snapshot();
    assert_eq!(
        host(&before, "10.20.1.1", "adult.example").action,
        Action::Block
    );

    std::fs::write(
        dir.path().join("hedgerow.toml"),
        CONFIG.replace("format = \"domains\"", "format = \"domian\""),
    )
    .unwrap();
    let err = handle.reload().unwrap_err().to_string();
    assert!(
        err.contains("hedgerow.toml:") && err.contains("domian"),
        "{err}"
    );
    let still = handle.snapshot();
    assert!(std::sync::Arc::ptr_eq(&before, &still));
    assert_eq!(
        host(&still, "10.20.1.1", "adult.example").action,
        Action::Block
    );

    std::fs::write(dir.path().join("adult.txt"), "other.example\n").unwrap();
    std::fs::write(dir.path().join("hedgerow.toml"), CONFIG).unwrap();
    let fresh = handle.reload().unwrap();
    assert_eq!(
        host(&fresh, "10.20.1.1", "adult.example").action,
        Action::Allow
    );
    assert_eq!(
        host(&fresh, "10.20.1.1", "other.example").action,
        Action::Block
    );
    // A reader that took the old snapshot keeps a consistent view until it is done.
    assert_eq!(
        host(&before, "10.20.1.1", "adult.example").action,
        Action::Block
    );
}

const IWF_URL: &str = "http://iwf-test.invalid/gallery/a.html";

#[test]
fn a_staged_reload_is_in_force_only_once_committed_and_a_dropped_one_keeps_nothing() {
    let dir = setup(CONFIG);
    let handle = PolicyHandle::load(&dir.path().join("hedgerow.toml")).unwrap();
    let before = handle.snapshot();
    std::fs::write(dir.path().join("adult.txt"), "other.example\n").unwrap();
    std::fs::write(
        dir.path().join("iwf.txt"),
        format!("{IWF_URL}\nhttp://iwf-test.invalid/b.html\n"),
    )
    .unwrap();
    let staged = handle.stage(handle.read_config().unwrap()).unwrap();
    assert_eq!(
        host(staged.snapshot(), "10.20.1.1", "other.example").action,
        Action::Block
    );
    // Built, not in force.
    assert!(std::sync::Arc::ptr_eq(&before, &handle.snapshot()));
    assert_eq!(
        host(&handle.snapshot(), "10.20.1.1", "other.example").action,
        Action::Allow
    );
    // Dropped: its two-entry illegal list was never kept as the last good copy, so an empty
    // list now falls back to the one-entry copy kept at load.
    drop(staged);
    std::fs::write(dir.path().join("iwf.txt"), "").unwrap();
    let staged = handle.stage(handle.read_config().unwrap()).unwrap();
    let entries: Vec<usize> = staged
        .snapshot()
        .report()
        .illegal
        .iter()
        .map(|s| s.entries)
        .collect();
    assert_eq!(entries, vec![1]);
    let fresh = handle.commit(staged).unwrap();
    assert!(std::sync::Arc::ptr_eq(&fresh, &handle.snapshot()));
    assert_eq!(
        host(&fresh, "10.20.1.1", "other.example").action,
        Action::Block
    );
    assert!(iwf_blocked(&handle));
}

fn iwf_blocked(handle: &PolicyHandle) -> bool {
    url(&handle.snapshot(), "10.20.1.1", IWF_URL).tier == Tier::Illegal
}

fn kept(handle: &PolicyHandle) -> Vec<String> {
    handle
        .snapshot()
        .report()
        .illegal_kept()
        .map(|(l, r)| format!("{l}: {r}"))
        .collect()
}

#[test]
fn a_missing_or_empty_illegal_list_is_refused_when_no_last_good_copy_is_kept() {
    for content in [None, Some(""), Some("# comments only\n")] {
        let dir = setup(CONFIG);
        let path = dir.path().join("iwf.txt");
        match content {
            None => std::fs::remove_file(&path).unwrap(),
            Some(t) => std::fs::write(&path, t).unwrap(),
        }
        let Err(err) = PolicyHandle::load(&dir.path().join("hedgerow.toml")) else {
            panic!("a missing or empty illegal list must refuse the build");
        };
        let text = err.to_string();
        assert!(matches!(err, PolicyError::IllegalTier { .. }), "{text}");
        // file:line of the list's definition, and the reason.
        let line = CONFIG.lines().position(|l| l == "[lists.iwf]").unwrap() + 1;
        assert!(text.contains(&format!("hedgerow.toml:{line}:")), "{text}");
        assert!(text.contains("no last good copy"), "{text}");
    }
}

#[test]
fn a_broken_illegal_list_keeps_enforcing_the_last_good_copy() {
    let dir = setup(CONFIG);
    let config = dir.path().join("hedgerow.toml");
    let handle = PolicyHandle::load(&config).unwrap();
    assert!(iwf_blocked(&handle));
    assert!(kept(&handle).is_empty());

    // The kept copy is keyed hashes only, readable by the service alone.
    let state = dir.path().join("state/illegal");
    let key_mode = std::fs::metadata(state.join("key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key_mode.permissions().mode() & 0o777, 0o600);
    let set = std::fs::read(state.join("iwf.set")).unwrap();
    assert!(!String::from_utf8_lossy(&set).contains("iwf-test"));
    assert!(!String::from_utf8_lossy(&set).contains("gallery"));

    // Missing, empty: the reload is taken, the last good copy is enforced, and it says so.
    let path = dir.path().join("iwf.txt");
    for (what, change) in [("missing", None), ("empty", Some(""))] {
        match change {
            None => std::fs::remove_file(&path).unwrap(),
            Some(t) => std::fs::write(&path, t).unwrap(),
        }
        handle.reload().unwrap();
        assert!(iwf_blocked(&handle), "{what}");
        let k = kept(&handle);
        assert_eq!(k.len(), 1, "{what}: {k:?}");
        assert!(
            k[0].contains("last good copy of 1 entries"),
            "{what}: {k:?}"
        );
        // A fresh start finds the same: it starts, enforcing the kept copy.
        let fresh = PolicyHandle::load(&config).unwrap();
        assert!(iwf_blocked(&fresh), "{what}");
        assert_eq!(kept(&fresh).len(), 1);
    }

    // The file comes back: loaded from it again.
    std::fs::write(&path, "http://iwf-test.invalid/gallery/a.html\n").unwrap();
    handle.reload().unwrap();
    assert!(iwf_blocked(&handle));
    assert!(kept(&handle).is_empty());
    assert_eq!(
        handle.snapshot().report().illegal[0].source,
        IllegalSource::Loaded
    );
}

#[test]
fn an_illegal_list_that_shrinks_past_the_limit_keeps_its_last_good_copy() {
    let dir = setup(CONFIG);
    let path = dir.path().join("iwf.txt");
    let entries = |n: usize| -> String {
        (0..n)
            .map(|i| format!("http://iwf-test.invalid/gallery/{i}.html\n"))
            .collect()
    };
    std::fs::write(&path, entries(10)).unwrap();
    let handle = PolicyHandle::load(&dir.path().join("hedgerow.toml")).unwrap();
    let blocked = |h: &PolicyHandle, i: usize| {
        url(
            &h.snapshot(),
            "10.20.1.1",
            &format!("http://iwf-test.invalid/gallery/{i}.html"),
        )
        .tier
            == Tier::Illegal
    };
    assert!(blocked(&handle, 9));
    // 10 -> 6: within the default 50%, taken as the new last good copy.
    std::fs::write(&path, entries(6)).unwrap();
    handle.reload().unwrap();
    assert!(kept(&handle).is_empty());
    assert!(
        !blocked(&handle, 9),
        "a removed entry is no longer enforced"
    );
    // 6 -> 2: more than half gone; the 6 stay enforced.
    std::fs::write(&path, entries(2)).unwrap();
    handle.reload().unwrap();
    let k = kept(&handle);
    assert_eq!(k.len(), 1, "{k:?}");
    assert!(k[0].contains("shrank from 6 to 2"), "{k:?}");
    assert!(blocked(&handle, 5));
    assert_eq!(handle.snapshot().matcher().stats().illegal, 6);
}

#[test]
fn checking_a_config_creates_nothing_in_the_state_directory() {
    let dir = setup(CONFIG);
    let snap = snapshot(dir.path());
    assert_eq!(snap.report().illegal.len(), 1);
    assert!(!dir.path().join("state").exists());
}

#[test]
fn the_protected_reference_is_stable_across_restarts() {
    let dir = setup(CONFIG);
    let config = dir.path().join("hedgerow.toml");
    let a = url(
        &PolicyHandle::load(&config).unwrap().snapshot(),
        "10.20.1.1",
        IWF_URL,
    );
    let b = url(
        &PolicyHandle::load(&config).unwrap().snapshot(),
        "10.20.1.1",
        IWF_URL,
    );
    assert_eq!(a.rule, b.rule);
    let rule = a.rule.unwrap();
    assert!(rule.starts_with("[protected entry] #"), "{rule}");
    assert!(!rule.contains("iwf-test"));
}

#[test]
fn a_forwarders_mac_and_the_local_address_identify_clients() {
    let config = CONFIG.replace(
        "listen = [\"127.0.0.1:5353\"]",
        "listen = [\"127.0.0.1:5353\", \"127.0.0.2:5353\"]",
    ) + r#"
[groups.vlan-guest]
listen_addresses = ["127.0.0.2"]
block_categories = ["adult", "games"]
safesearch = "on"
youtube = "strict"

[[devices]]
name = "Library-PC-3"
mac = "02:00:5e:00:00:07"
group = "staff"

[[devices]]
name = "Trolley-iPad-1"
mac = "02:00:5e:00:00:08"

[[leases]]
path = "dnsmasq.leases"
format = "dnsmasq"
"#;
    let dir = setup(&config);
    std::fs::write(
        dir.path().join("dnsmasq.leases"),
        "1900000000 02:00:5e:00:00:09 10.20.4.4 pupil-chromebook *\n",
    )
    .unwrap();
    let snap = snapshot(dir.path());
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    let mac = |s: &str| Some(hedgerow_model::MacAddr::parse(s).unwrap());
    let who = |c: Option<hedgerow_policy::Client<'_>>| {
        c.map(|c| (c.group_name.to_owned(), c.device.map(|d| d.name.clone())))
    };
    let named = |g: &str, d: Option<&str>| Some((g.to_owned(), d.map(str::to_owned)));
    // Behind a router (10.20.0.1, a pupil address): its MAC names the device and its group.
    assert_eq!(
        who(snap.client(ip("10.20.0.1"), mac("02:00:5e:00:00:07"))),
        named("staff", Some("Library-PC-3"))
    );
    // A registered device without a group stays in its network's group.
    assert_eq!(
        who(snap.client(ip("10.20.0.1"), mac("02:00:5e:00:00:08"))),
        named("pupils", Some("Trolley-iPad-1"))
    );
    // The MAC beats the address: 10.20.9.9 is the Head-Laptop's address.
    assert_eq!(
        who(snap.client(ip("10.20.9.9"), mac("02:00:5e:00:00:07"))),
        named("staff", Some("Library-PC-3"))
    );
    // An unknown MAC changes nothing; a leased one gives the lease's name.
    assert_eq!(
        who(snap.client(ip("10.20.9.9"), mac("02:00:5e:00:00:99"))),
        named("staff", Some("Head-Laptop"))
    );
    assert_eq!(
        who(snap.client(ip("10.20.0.1"), mac("02:00:5e:00:00:09"))),
        named("pupils", Some("pupil-chromebook"))
    );
    // The listen address beats the network, and a device's own group beats both.
    assert_eq!(
        who(snap.client_on(ip("10.30.1.1"), None, Some(ip("127.0.0.2")))),
        named("vlan-guest", None)
    );
    assert_eq!(
        who(snap.client_on(ip("192.0.2.1"), None, Some(ip("::ffff:127.0.0.2")))),
        named("vlan-guest", None)
    );
    assert_eq!(
        who(snap.client_on(ip("10.30.1.1"), None, Some(ip("127.0.0.1")))),
        named("staff", None)
    );
    assert_eq!(
        who(snap.client_on(ip("10.20.9.9"), None, Some(ip("127.0.0.2")))),
        named("staff", Some("Head-Laptop"))
    );
    assert_eq!(
        who(snap.client_on(ip("192.0.2.1"), None, Some(ip("127.0.0.1")))),
        None
    );
}

/// The 1-based line and column of `needle` in `text`.
fn place(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).expect("needle in text");
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[test]
fn an_allow_entry_the_illegal_tier_covers_is_an_error_at_its_place() {
    // The listed URL, spelled otherwise, in a group's allow array; a name under a listed
    // domain in an allow list file.
    let config = format!(
        "{}\n[lists.terror]\npath = \"terror.txt\"\nformat = \"domains\"\nkind = \"illegal\"\ncategory = \"terrorism\"\n",
        CONFIG.replace(
            "allow = [\"iwf-test.invalid\", ",
            "allow = [\"iwf-test.invalid\", \"HTTP://iwf-test.invalid/gallery/./a.html?\", "
        )
    );
    let dir = setup(&config);
    std::fs::write(dir.path().join("terror.txt"), "terror.example\n").unwrap();
    std::fs::write(
        dir.path().join("allow.txt"),
        "allowed.example\nwww.terror.example\ngames.example.org\n",
    )
    .unwrap();
    let err = PolicySnapshot::load(&dir.path().join("hedgerow.toml"))
        .unwrap_err()
        .to_string();
    let (line, column) = place(&config, "\"HTTP://iwf-test.invalid/gallery");
    let toml = dir.path().join("hedgerow.toml");
    assert!(
        err.contains(&format!(
            "{}:{line}:{column}: group \"pupils\": allow entry has no effect: covered by the illegal tier",
            toml.display()
        )),
        "{err}"
    );
    let list = dir.path().join("allow.txt");
    assert!(
        err.contains(&format!(
            "{}:2:1: allow list \"allow\": entry has no effect: covered by the illegal tier",
            list.display()
        )),
        "{err}"
    );
    // Exactly those two, and the report repeats neither entry.
    assert_eq!(
        err.matches("covered by the illegal tier").count(),
        2,
        "{err}"
    );
    assert!(
        !err.contains("gallery") && !err.contains("terror.example"),
        "{err}"
    );
}

#[test]
fn allow_entries_that_still_allow_something_are_accepted() {
    // The host of a listed URL, a sibling page, the directory above it and a parent of a
    // listed domain all allow pages the illegal tier does not list.
    let config = format!(
        "{}\n[lists.terror]\npath = \"terror.txt\"\nformat = \"domains\"\nkind = \"illegal\"\ncategory = \"terrorism\"\n",
        CONFIG.replace(
            "allow = [\"iwf-test.invalid\", ",
            "allow = [\"iwf-test.invalid\", \"iwf-test.invalid/gallery/b.html\", \"iwf-test.invalid/gallery/\", \"example\", "
        )
    );
    let dir = setup(&config);
    std::fs::write(dir.path().join("terror.txt"), "terror.example\n").unwrap();
    std::fs::write(
        dir.path().join("allow.txt"),
        "allowed.example\nnotterror.example\nexample\n",
    )
    .unwrap();
    let snap = snapshot(dir.path());
    let v = url(&snap, "10.20.1.1", "http://iwf-test.invalid/gallery/b.html");
    assert_eq!((v.action, v.tier), (Action::Allow, Tier::LocalAllow));
    // What a proposal would ask before adding an allow entry.
    assert!(snap.illegal_tier_covers("iwf-test.invalid/gallery/a.html"));
    assert!(snap.illegal_tier_covers("news.terror.example"));
    assert!(!snap.illegal_tier_covers("iwf-test.invalid/gallery/c.html"));
    assert!(!snap.illegal_tier_covers("iwf-test.invalid"));
}

/// An approved-only group (a walled garden) beside the filtered groups of [`CONFIG`].
fn garden() -> tempfile::TempDir {
    let config = format!(
        r#"{CONFIG}
[lists.early-sites]
path = "early.txt"
format = "domains"
kind = "approved"

[groups.early]
networks = ["10.10.0.0/16"]
mode = "approved-only"
approved_lists = ["early-sites"]
block_categories = ["adult"]
safesearch = "on"
youtube = "strict"
allow = [
  "phonics.example",
  {{ site = "stories.example", with = ["cdn.stories-media.example", "*.img.example"] }},
  "http://mixed.example/kids/",
  "iwf-test.invalid",
]
"#
    );
    let dir = setup(&config);
    std::fs::write(
        dir.path().join("early.txt"),
        "approved-list.example\ngames-for-school.example\n",
    )
    .unwrap();
    dir
}

#[test]
fn an_approved_only_group_loads_its_allow_entries_their_dependencies_and_approved_lists() {
    let dir = garden();
    let snap = snapshot(dir.path());
    let early = "10.10.0.7";
    for (name, tier) in [
        ("phonics.example", Tier::LocalAllow),
        ("www.phonics.example", Tier::LocalAllow),
        ("stories.example", Tier::LocalAllow),
        ("cdn.stories-media.example", Tier::LocalAllow),
        ("a.img.example", Tier::LocalAllow),
        ("approved-list.example", Tier::AllowList),
        ("games-for-school.example", Tier::AllowList),
    ] {
        let v = host(&snap, early, name);
        assert_eq!((v.action, v.tier), (Action::Allow, tier), "{name}: {v:?}");
    }
    let v = host(&snap, early, "cdn.stories-media.example");
    assert_eq!(
        v.rule.as_deref(),
        Some("cdn.stories-media.example (with stories.example)"),
        "a dependency says which site it is listed with"
    );
    // An approved list does nothing for filtered groups: staff still meet the games block.
    let v = host(&snap, "10.30.1.1", "games-for-school.example");
    assert_eq!((v.action, v.tier), (Action::Block, Tier::Category));
    let v = url(&snap, early, "http://mixed.example/kids/songs?x=1");
    assert_eq!((v.action, v.tier), (Action::Allow, Tier::LocalAllow));
    // The host of approved pages resolves, so the pages can load.
    let v = host(&snap, early, "mixed.example");
    assert_eq!(
        (v.action, v.tier),
        (Action::Allow, Tier::LocalAllow),
        "{v:?}"
    );
}

#[test]
fn an_approved_only_group_blocks_everything_else_as_not_approved() {
    let dir = garden();
    let snap = snapshot(dir.path());
    let early = "10.10.0.7";
    // Unlisted; on an allow list the group does not approve; a category it does not block.
    for name in ["unlisted.example", "allowed.example", "games.example"] {
        let v = host(&snap, early, name);
        assert_eq!(
            (v.action, v.tier),
            (Action::Block, Tier::NotApproved),
            "{name}: {v:?}"
        );
        assert_eq!(v.rule.as_deref(), Some("not on the approved list"));
    }
    let v = host(&snap, early, "games.example");
    assert_eq!(
        v.category.as_ref().map(|c| c.as_str()),
        Some("games"),
        "the log still says what the site is"
    );
    // A dependency's own parent is not approved by it; other pages of a host with approved
    // pages are not approved.
    let v = host(&snap, early, "stories-media.example");
    assert_eq!(v.tier, Tier::NotApproved);
    let v = url(&snap, early, "http://mixed.example/grown-ups/");
    assert_eq!((v.action, v.tier), (Action::Block, Tier::NotApproved));
    // A blocked category still says so; the illegal tier beats everything.
    let v = host(&snap, early, "adult.example");
    assert_eq!((v.action, v.tier), (Action::Block, Tier::Category));
    let v = url(&snap, early, "http://iwf-test.invalid/gallery/a.html");
    assert_eq!((v.action, v.tier), (Action::Block, Tier::Illegal));
    // Twin: filtered groups are unchanged.
    for client in ["10.20.1.1", "10.30.1.1"] {
        let v = host(&snap, client, "unlisted.example");
        assert_eq!(
            (v.action, v.tier),
            (Action::Allow, Tier::Default),
            "{client}"
        );
    }
}

#[test]
fn a_cname_target_of_an_approved_name_is_not_blocked_as_not_approved_but_still_by_a_block() {
    let dir = garden();
    let snap = snapshot(dir.path());
    let early = snap
        .client("10.10.0.7".parse().unwrap(), None)
        .unwrap()
        .group;
    let at = tuesday("10:00");
    let cdn = Host::parse("phonics.edgecdn.example").unwrap();
    assert!(snap.decide(early, Target::Host(&cdn), at).is_blocked());
    assert!(!snap.decide_in_chain(early, &cdn, at).is_blocked());
    let adult = Host::parse("adult.example").unwrap();
    let v = snap.decide_in_chain(early, &adult, at);
    assert_eq!((v.action, v.tier), (Action::Block, Tier::Category));
}

#[test]
fn an_approved_only_group_that_approves_nothing_is_warned_about() {
    let config = format!(
        r#"{CONFIG}
[groups.exam]
networks = ["10.50.0.0/16"]
mode = "approved-only"
safesearch = "on"
youtube = "strict"
"#
    );
    let dir = setup(&config);
    let snap = snapshot(dir.path());
    assert!(
        snap.report()
            .warnings
            .iter()
            .any(|w| w.contains("\"exam\" is approved-only but approves nothing")),
        "{:?}",
        snap.report().warnings
    );
    let v = host(&snap, "10.50.0.1", "anything.example");
    assert_eq!(v.tier, Tier::NotApproved);
    // Twin: the example groups draw no such warning.
    let dir = garden();
    let snap = snapshot(dir.path());
    assert!(
        !snap
            .report()
            .warnings
            .iter()
            .any(|w| w.contains("approves nothing"))
    );
}
