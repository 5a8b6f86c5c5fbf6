//! Helpers shared by the end-to-end tests of the `hedgerow` binary.

#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/data` beside the project (or `$HEDGEROW_SHARED_DATA`), or `None` after printing
/// why the calling test skips.
pub fn shared_data() -> Option<PathBuf> {
    hedgerow_testkit::shared_data(&repo())
}

/// Runs the real `hedgerow` binary built by cargo for this test run.
pub fn hedgerow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hedgerow"))
        .args(args)
        .output()
        .expect("run hedgerow")
}

pub fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Each category of `shared/data/categories` (named after its sources, UT1's mostly) and the
/// vocabulary category (docs/categories.md) it is loaded as. A shared category missing here
/// fails the corpus test, so new shared data gets a mapping before it is used.
pub const SHARED_CATEGORIES: &[(&str, &str)] = &[
    ("adult", "adult"),
    ("mixed_adult", "adult"),
    ("lingerie", "adult"),
    ("ai", "genai"),
    ("chat", "chat"),
    ("cryptojacking", "malware"),
    // UT1's "sect" list (cults and sects): the closest UKSIC category is extremism.
    ("cults", "extremism"),
    ("dating", "dating"),
    ("doh", "circumvention"),
    ("drugs", "drugs"),
    ("gambling", "gambling"),
    ("games", "games"),
    ("hacking", "hacking"),
    ("hate_groups", "hate"),
    ("malware", "malware"),
    // Search engines without enforceable SafeSearch: a way round SafeSearch.
    ("nosafesearch", "circumvention"),
    ("phishing", "malware"),
    ("piracy", "piracy"),
    ("proxy", "circumvention"),
    ("remote_control", "circumvention"),
    ("scam", "malware"),
    ("shortener", "circumvention"),
    ("social_networking", "social"),
    ("stalkerware", "malware"),
    ("violence_hate", "violence"),
    ("vpn", "circumvention"),
    ("weapons_dangerous", "violence"),
];

/// The vocabulary category a shared category is loaded as.
pub fn vocabulary_category(shared: &str) -> Option<&'static str> {
    SHARED_CATEGORIES
        .iter()
        .find(|(s, _)| *s == shared)
        .map(|(_, v)| *v)
}

/// A TOML config in a temporary folder loading every category list found under
/// `shared/data/categories` as its vocabulary category ([`SHARED_CATEGORIES`]), with the
/// shared allow lists, and blocking every category for one group `pupils` on 10.0.0.0/8.
/// Returns the shared categories found.
pub fn shared_data_config(data: &Path) -> (tempfile::TempDir, PathBuf, Vec<String>) {
    let mut toml = String::from(
        "[server]\nstate_dir = \"state\"\n\n[dns]\nlisten = [\"127.0.0.1:5353\"]\nupstreams = [{ address = \"127.0.0.1:5300\" }]\nblockpage_ipv4 = \"192.0.2.80\"\n\n",
    );
    let mut categories = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("categories"))
        .expect("read categories")
        .map(|e| e.expect("dir entry").path())
        .collect();
    files.sort();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let (stem, format) = if let Some(s) = name.strip_suffix(".urls.txt") {
            (s, "urls")
        } else if let Some(s) = name
            .strip_suffix(".txt.gz")
            .or_else(|| name.strip_suffix(".txt"))
        {
            (s, "domains")
        } else {
            continue;
        };
        if !categories.iter().any(|c| c == stem) {
            categories.push(stem.to_owned());
        }
        let vocabulary = vocabulary_category(stem).unwrap_or_else(|| {
            panic!("shared category {stem:?} has no vocabulary category in SHARED_CATEGORIES")
        });
        toml += &format!(
            "[lists.\"{stem}-{format}\"]\npath = {:?}\nformat = \"{format}\"\ncategory = \"{vocabulary}\"\n\n",
            path.display().to_string()
        );
    }
    let mut allows: Vec<PathBuf> = std::fs::read_dir(data.join("allow"))
        .expect("read allow")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    allows.sort();
    for path in allows {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let format = if name.ends_with(".urls.txt") {
            "urls"
        } else {
            "domains"
        };
        toml += &format!(
            "[lists.\"allow-{name}\"]\npath = {:?}\nformat = \"{format}\"\nkind = \"allow\"\n\n",
            path.display().to_string()
        );
    }
    // The illegal tier is never optional: the bundled IWF test entries stand in for it.
    toml += &format!(
        "[lists.iwf]\npath = {:?}\nformat = \"urls\"\nkind = \"illegal\"\ncategory = \"child-abuse\"\nurl_match = \"exact\"\n\n",
        repo()
            .join("blocklists/iwf-sample.txt")
            .display()
            .to_string()
    );
    let mut blocked: Vec<&str> = categories
        .iter()
        .filter_map(|c| vocabulary_category(c))
        .collect();
    blocked.sort_unstable();
    blocked.dedup();
    let quoted: Vec<String> = blocked.iter().map(|c| format!("\"{c}\"")).collect();
    toml += &format!(
        "[groups.pupils]\nnetworks = [\"10.0.0.0/8\"]\nblock_categories = [{}]\nsafesearch = \"on\"\nyoutube = \"strict\"\n",
        quoted.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hedgerow.toml");
    std::fs::write(&path, toml).expect("write config");
    (dir, path, categories)
}
