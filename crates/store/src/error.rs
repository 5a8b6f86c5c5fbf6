//! The store's errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("opening the log store at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("log store: {0}")]
    Sled(#[from] sled::Error),
    #[error("log store value in {tree} has format {found}; this build reads format {expected}")]
    Format {
        tree: String,
        found: u8,
        expected: u8,
    },
    #[error("log store value in {tree} is damaged: {reason}")]
    Decode { tree: String, reason: String },
    #[error("no breach with id {0}")]
    NoBreach(u64),
    #[error("export/import: {0}")]
    Io(#[from] std::io::Error),
    #[error("import line {line}: {reason}")]
    Import { line: usize, reason: String },
}
