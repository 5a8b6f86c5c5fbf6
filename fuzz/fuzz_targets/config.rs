//! The configuration loader (`hedgerow_config::from_str`): TOML parsing, the strict schema,
//! includes, merging and every validation, on the main file's text, with the bundled example's
//! other files (config/lists.toml, policy.toml, devices.toml) and lists beside it.
//!
//! - It never panics, and reads no file but those the text names.
//! - A configuration is either accepted or refused with at least one error, and every error
//!   points into a file: a 1-based line within the file and a 1-based column.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Device files would block or never end; the loader reads what it is told to include.
    if ["/dev", "/proc", "/sys"].iter().any(|d| text.contains(d)) {
        return;
    }
    let origin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/hedgerow.toml");
    match hedgerow_config::from_str(text, &origin) {
        Ok(config) => {
            assert!(!config.files.is_empty());
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused without an error");
            for e in &errors.0 {
                assert!(e.line >= 1 && e.column >= 1, "{e}");
                let lines = if e.path == origin {
                    text.lines().count()
                } else {
                    std::fs::read_to_string(&e.path).map_or(usize::MAX, |t| t.lines().count())
                };
                assert!(
                    e.line <= lines.max(1) + 1,
                    "{e}: the file has {lines} lines"
                );
                let _ = e.to_string();
            }
        }
    }
});
