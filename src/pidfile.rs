//! `STATE/hedgerow.pid`: which process serves a state directory, so `kill -HUP "$(cat
//! STATE/hedgerow.pid)"` reaches the right one when several run on one machine, and a second
//! appliance on the same state directory refuses to start instead of taking over its control
//! socket and store.
//!
//! The file is held under an exclusive lock (`flock`) for as long as the process runs: the
//! kernel drops the lock when the process ends however it ends, so a file left by a crash
//! never blocks a start.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

pub(crate) const PID_FILE: &str = "hedgerow.pid";

/// The locked pid file; removed when dropped.
pub(crate) struct PidFile {
    path: PathBuf,
    /// Holds the lock until dropped.
    _file: File,
}

impl PidFile {
    /// Locks `state_dir/hedgerow.pid` and writes this process's id into it, or fails naming
    /// the process that holds it.
    pub(crate) fn acquire(state_dir: &Path) -> Result<Self> {
        let path = state_dir.join(PID_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim();
                let who = if pid.is_empty() {
                    "another hedgerow process".to_owned()
                } else {
                    format!("another hedgerow process (pid {pid})")
                };
                bail!(
                    "{who} is running with the state directory {}; stop it, or give this appliance a [server] state_dir of its own",
                    state_dir.display()
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { path, _file: file })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Removed while still locked, so a new appliance never finds a stale number in it.
        let _ = std::fs::remove_file(&self.path);
    }
}
