//! The crate map in ARCHITECTURE.md, enforced: each workspace crate may depend only on the
//! internal crates its layer allows, the matcher stays free of async runtimes and storage, and
//! every crate opens with a module doc that says what it does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::Command;

/// Internal crates each crate may depend on (normal and build dependencies).
const ALLOWED: &[(&str, &[&str])] = &[
    ("hedgerow-model", &[]),
    ("hedgerow-config", &["hedgerow-model"]),
    ("hedgerow-matcher", &["hedgerow-model"]),
    ("hedgerow-store", &["hedgerow-model"]),
    (
        "hedgerow-policy",
        &["hedgerow-model", "hedgerow-config", "hedgerow-matcher"],
    ),
    (
        "hedgerow-dns",
        &[
            "hedgerow-model",
            "hedgerow-config",
            "hedgerow-policy",
            "hedgerow-store",
        ],
    ),
    (
        "hedgerow-proxy",
        &[
            "hedgerow-model",
            "hedgerow-config",
            "hedgerow-policy",
            "hedgerow-store",
        ],
    ),
    (
        "hedgerow-admin",
        &[
            "hedgerow-model",
            "hedgerow-config",
            "hedgerow-policy",
            "hedgerow-store",
        ],
    ),
    (
        "hedgerow-alert",
        &["hedgerow-model", "hedgerow-config", "hedgerow-store"],
    ),
    // A black box: it sees the appliance over the wire only, never its configuration, policy
    // or store (what it expects is the school's probe set).
    ("hedgerow-check", &[]),
    (
        "hedgerow-ship",
        &["hedgerow-model", "hedgerow-config", "hedgerow-store"],
    ),
    (
        "hedgerow-lists",
        &["hedgerow-model", "hedgerow-config", "hedgerow-matcher"],
    ),
    // On top of change control: every page is an admin operation; it never opens the store
    // or the policy itself.
    (
        "hedgerow-console",
        &["hedgerow-model", "hedgerow-config", "hedgerow-admin"],
    ),
    ("hedgerow-testkit", &[]),
];

/// External crates a crate must never use.
const FORBIDDEN_EXTERNAL: &[(&str, &[&str])] = &[
    ("hedgerow-model", &["tokio", "sled"]),
    ("hedgerow-config", &["tokio", "sled"]),
    ("hedgerow-matcher", &["tokio", "sled"]),
    ("hedgerow-policy", &["tokio", "sled"]),
    // sled stays behind the store's API.
    ("hedgerow-dns", &["sled"]),
    ("hedgerow-proxy", &["sled"]),
    ("hedgerow-alert", &["sled"]),
    ("hedgerow-admin", &["sled"]),
    ("hedgerow-check", &["sled", "toml_edit"]),
    ("hedgerow-ship", &["sled"]),
    ("hedgerow-lists", &["sled"]),
    ("hedgerow-console", &["sled", "toml_edit"]),
];

fn metadata() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata JSON")
}

#[test]
fn dependencies_point_down_the_layers() {
    let meta = metadata();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().unwrap_or_default();
        if name == "hedgerow" {
            continue; // the binary may use everything; nothing may use it (checked below)
        }
        let Some(may) = allowed.get(name) else {
            problems.push(format!(
                "{name} is not in the crate map (tests/architecture.rs, ARCHITECTURE.md)"
            ));
            continue;
        };
        for dep in pkg["dependencies"].as_array().expect("dependencies") {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let dev = dep["kind"].as_str() == Some("dev");
            if dep_name == "hedgerow" {
                problems.push(format!("{name} must not depend on the hedgerow binary"));
            }
            if dep_name.starts_with("hedgerow-") && !dev && !may.contains(&dep_name) {
                problems.push(format!("{name} must not depend on {dep_name}"));
            }
            if dev
                && dep_name.starts_with("hedgerow-")
                && dep_name != "hedgerow-testkit"
                && !may.contains(&dep_name)
            {
                problems.push(format!(
                    "{name} must not depend on {dep_name}, even for tests"
                ));
            }
            for (krate, banned) in FORBIDDEN_EXTERNAL {
                if *krate == name && !dev && banned.contains(&dep_name) {
                    problems.push(format!("{name} must not depend on {dep_name}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_crate_is_documented_in_architecture_md_and_in_its_lib_rs() {
    let meta = metadata();
    let arch = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md");
    for pkg in meta["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().unwrap_or_default();
        assert!(
            arch.contains(&format!("`{name}`")),
            "ARCHITECTURE.md does not mention `{name}`"
        );
        for target in pkg["targets"].as_array().expect("targets") {
            let kinds: Vec<&str> = target["kind"]
                .as_array()
                .expect("kind")
                .iter()
                .filter_map(|k| k.as_str())
                .collect();
            if kinds.contains(&"lib") || kinds.contains(&"bin") {
                let src = std::fs::read_to_string(target["src_path"].as_str().unwrap_or_default())
                    .expect("read src");
                assert!(
                    src.starts_with("//!"),
                    "{name}: {} must open with a //! module doc",
                    target["src_path"]
                );
            }
        }
    }
}
