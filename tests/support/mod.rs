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

/// A TOML config in a temporary folder blocking every category found under
/// `shared/data/categories`, with the shared allow lists, for one group `pupils` on
/// 10.0.0.0/8.
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
        toml += &format!(
            "[lists.\"{stem}-{format}\"]\npath = {:?}\nformat = \"{format}\"\ncategory = \"{stem}\"\n\n",
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
    let quoted: Vec<String> = categories.iter().map(|c| format!("\"{c}\"")).collect();
    toml += &format!(
        "[groups.pupils]\nnetworks = [\"10.0.0.0/8\"]\nblock_categories = [{}]\nsafesearch = \"on\"\nyoutube = \"strict\"\n",
        quoted.join(", ")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hedgerow.toml");
    std::fs::write(&path, toml).expect("write config");
    (dir, path, categories)
}
