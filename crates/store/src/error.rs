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

impl StoreError {
    /// Whether the store could not be opened or read for lack of permission (the caller is
    /// not the user the appliance runs as).
    pub fn is_permission_denied(&self) -> bool {
        let denied = |e: &std::io::Error| e.kind() == std::io::ErrorKind::PermissionDenied;
        match self {
            Self::Open {
                source: sled::Error::Io(e),
                ..
            }
            | Self::Sled(sled::Error::Io(e))
            | Self::Io(e) => denied(e),
            _ => false,
        }
    }
}
