//! The `hedgerow` binary's check-config and lookup commands, run as a technician would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{hedgerow, repo, text};

fn bundled() -> String {
    repo().join("config/hedgerow.toml").display().to_string()
}

#[test]
fn check_config_accepts_the_bundled_config() {
    let out = hedgerow(&["check-config", &bundled()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(": ok ("),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_config_rejects_a_broken_config_naming_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string(repo().join("config/policy.toml")).unwrap();
    let broken = src
        .replacen("safesearch = \"on\"", "safe_search = \"on\"", 1)
        .replacen("\"games\", \"social\"", "\"gmaes\", \"social\"", 1);
    for name in ["hedgerow.toml", "lists.toml", "devices.toml"] {
        let text = std::fs::read_to_string(repo().join("config").join(name)).unwrap();
        std::fs::write(
            dir.path().join(name),
            text.replace(
                "../blocklists",
                &repo().join("blocklists").display().to_string(),
            ),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("policy.toml"), &broken).unwrap();
    let main = dir.path().join("hedgerow.toml");
    let out = hedgerow(&["check-config", main.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // The first problem stops serde for that file, so each broken file reports one error.
    assert!(err.contains("policy.toml:"), "{err}");
    assert!(err.contains("safe_search"), "{err}");

    // Fix the key: now the unknown category is found, at its line and column.
    std::fs::write(
        dir.path().join("policy.toml"),
        broken.replace("safe_search", "safesearch"),
    )
    .unwrap();
    let out = hedgerow(&["check-config", main.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = broken.lines().position(|l| l.contains("gmaes")).unwrap() + 1;
    let col = broken
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"gmaes\"")
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("policy.toml:{line}:{col}: ")),
        "{err}"
    );
    assert!(err.contains("gmaes"), "{err}");
    assert!(err.contains("did you mean \"games\"?"), "{err}");
}

/// The bundled configuration in a temporary folder, with `policy.toml` edited by `edit`.
fn bundled_copy_with(edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["hedgerow.toml", "lists.toml", "devices.toml", "policy.toml"] {
        let mut text = std::fs::read_to_string(repo().join("config").join(name)).unwrap();
        if name == "policy.toml" {
            text = edit(&text);
        }
        std::fs::write(
            dir.path().join(name),
            text.replace(
                "../blocklists",
                &repo().join("blocklists").display().to_string(),
            ),
        )
        .unwrap();
    }
    dir
}

#[test]
fn check_config_rejects_an_allow_entry_the_illegal_tier_covers() {
    // The IWF sample's test URL, as a browser might show it, in the ks2 allow array.
    let edit = |entry: &'static str| {
        move |policy: &str| {
            policy.replacen(
                "allow = [\"scratch.mit.edu\"]",
                &format!("allow = [\"scratch.mit.edu\", \"{entry}\"]"),
                1,
            )
        }
    };
    let dir = bundled_copy_with(edit("HTTP://iwf-test.invalid:80/gallery/item-001.html?"));
    let main = dir.path().join("hedgerow.toml");
    let out = hedgerow(&["check-config", main.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let policy = std::fs::read_to_string(dir.path().join("policy.toml")).unwrap();
    let line = policy.lines().position(|l| l.contains("item-001")).unwrap() + 1;
    let col = policy
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("\"HTTP:")
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!(
            "policy.toml:{line}:{col}: group \"ks2\": allow entry has no effect: covered by the illegal tier"
        )),
        "{err}"
    );
    assert!(
        !err.contains("item-001"),
        "the error repeats the entry: {err}"
    );

    // Twin: a sibling page on the same host allows something, so it is accepted.
    let dir = bundled_copy_with(edit("iwf-test.invalid/gallery/item-002.html"));
    let main = dir.path().join("hedgerow.toml");
    let out = hedgerow(&["check-config", main.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn check_config_reports_bad_list_lines_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("list.txt"),
        "good.example\nbad..example\nfine.example\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("iwf.txt"),
        "http://iwf-test.invalid/a.html\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hedgerow.toml"),
        "[server]\nstate_dir = \"s\"\n[dns]\nlisten = [\"127.0.0.1:5353\"]\nupstreams = [{ address = \"127.0.0.1:5300\" }]\nblockpage_ipv4 = \"192.0.2.80\"\n\
         [lists.x]\npath = \"list.txt\"\nformat = \"domains\"\ncategory = \"adult\"\n\
         [lists.iwf]\npath = \"iwf.txt\"\nformat = \"urls\"\nkind = \"illegal\"\ncategory = \"child-abuse\"\n\
         [groups.g]\nnetworks = [\"10.0.0.0/8\"]\nblock_categories = [\"adult\"]\nsafesearch = \"on\"\nyoutube = \"off\"\n",
    )
    .unwrap();
    let out = hedgerow(&[
        "check-config",
        dir.path().join("hedgerow.toml").to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("list.txt:2: skipped bad line"), "{stdout}");
    assert!(stdout.contains("2 domains"), "{stdout}");
}

fn lookup(client: &str, target: &str, extra: &[&str]) -> serde_json::Value {
    let config = bundled();
    let mut args = vec!["lookup", "--config", &config, "--client", client, "--json"];
    args.extend_from_slice(extra);
    args.push(target);
    let out = hedgerow(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn lookup_explains_a_block_with_group_tier_category_list_and_rule() {
    let v = lookup("10.20.1.1", "cdn.adult-site.example", &[]);
    assert_eq!(v["group"], "ks2");
    assert_eq!(v["verdict"]["action"], "block");
    assert_eq!(v["verdict"]["tier"], "category");
    assert_eq!(v["verdict"]["category"], "adult");
    assert_eq!(v["verdict"]["list"], "adult");
    assert_eq!(v["verdict"]["rule"], "adult-site.example");
    // Twin: a name that merely ends the same way is allowed.
    let v = lookup("10.20.1.1", "notadult-site.example", &[]);
    assert_eq!(v["verdict"]["action"], "allow");
}

#[test]
fn lookup_hides_illegal_entries_and_names_devices() {
    let v = lookup(
        "10.20.1.7",
        "HTTP://IWF-TEST.invalid/gallery/../gallery/item-001.html",
        &[],
    );
    assert_eq!(v["device"], "KS2-iPad-07");
    assert_eq!(v["verdict"]["tier"], "illegal");
    // The rule is the protected marker with an opaque reference, and the target asked about
    // is withheld the same way.
    let rule = v["verdict"]["rule"].as_str().unwrap();
    assert!(rule.starts_with("[protected entry] #"), "{rule}");
    assert_eq!(v["target"], rule);
    assert!(!v.to_string().to_lowercase().contains("iwf-test"), "{v}");
}

#[test]
fn lookup_honours_schedules_at_a_given_time() {
    let v = lookup("10.30.0.5", "roblox.com", &["--at", "2026-11-24T16:00"]);
    assert_eq!(
        (
            v["verdict"]["action"].as_str(),
            v["verdict"]["tier"].as_str()
        ),
        (Some("allow"), Some("schedule"))
    );
    let v = lookup("10.30.0.5", "roblox.com", &["--at", "2026-11-24T11:00"]);
    assert_eq!(v["verdict"]["action"], "block");
}

#[test]
fn lookup_says_when_a_client_would_be_refused() {
    let v = lookup("192.0.2.1", "example.com", &[]);
    assert_eq!(v["refused"], true);
}

#[test]
fn lookup_explains_an_early_years_pupils_walled_garden() {
    // Not on the approved list: the tier says so, in words in the text form.
    let v = lookup("10.10.1.7", "wikipedia.org", &[]);
    assert_eq!(v["group"], "early-years");
    assert_eq!(v["verdict"]["action"], "block");
    assert_eq!(v["verdict"]["tier"], "not-approved");
    assert_eq!(v["verdict"]["rule"], "not on the approved list");
    let config = bundled();
    let out = hedgerow(&[
        "lookup",
        "--config",
        &config,
        "--client",
        "10.10.1.7",
        "wikipedia.org",
    ]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("tier:     not-approved (the group is approved-only"),
        "{shown}"
    );
    // A CDN host listed with an approved site, and a site on the approved list.
    let v = lookup("10.10.1.7", "media.cbeebies-cdn.example", &[]);
    assert_eq!(v["verdict"]["action"], "allow");
    assert_eq!(
        v["verdict"]["rule"],
        "media.cbeebies-cdn.example (with cbeebies.example)"
    );
    let v = lookup("10.10.1.7", "topmarks.co.uk", &[]);
    assert_eq!(
        (&v["verdict"]["tier"], &v["verdict"]["list"]),
        (&"allow-list".into(), &"early-years-approved".into())
    );
    // Twin: a Key Stage 2 pupil is filtered, not walled in, and the approved list is not
    // theirs.
    for site in ["wikipedia.org", "topmarks.co.uk"] {
        let v = lookup("10.20.1.1", site, &[]);
        assert_eq!(v["verdict"]["action"], "allow", "{site}");
        assert_eq!(v["verdict"]["tier"], "default", "{site}");
    }
}
