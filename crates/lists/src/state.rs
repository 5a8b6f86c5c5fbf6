//! What is kept under `STATE/lists/`: the copy in force (`NAME.list`, unless the list names
//! its own `path`), a verified download waiting for the next reload (`NAME.new`), and the
//! list's status (`NAME.json`).

use std::path::{Path, PathBuf};

use hedgerow_config::{Config, ListSource};
use serde::{Deserialize, Serialize};

/// A downloaded list's state, kept in `STATE/lists/NAME.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListStatus {
    /// The URL it was last fetched from.
    pub source: String,
    /// Entries in the copy in force (or staged, until the reload takes it).
    pub entries: Option<usize>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// SHA-256 of the copy last accepted (hex).
    pub sha256: Option<String>,
    /// When the copy last accepted was downloaded.
    pub updated: Option<jiff::Timestamp>,
    /// When the origin last confirmed the copy current (a new copy or 304 Not Modified). A
    /// list's age counts from here.
    pub confirmed: Option<jiff::Timestamp>,
    /// When the last attempt was made, and what came of it (`ok: …`, `failed: …`).
    pub attempted: Option<jiff::Timestamp>,
    pub result: String,
    /// Whether the last attempt succeeded.
    pub ok: bool,
    /// An operational alert for its age has been sent since it was last confirmed current.
    pub stale_alerted: bool,
    /// A refused download has been raised since the last attempt that succeeded (one alert
    /// per run of refusals, not one every retry).
    #[serde(default)]
    pub refused_alerted: bool,
}

impl ListStatus {
    /// How long since the origin last confirmed the list current; `None` if never.
    pub fn age(&self, now: jiff::Timestamp) -> Option<std::time::Duration> {
        let c = self.confirmed?;
        now.duration_since(c).try_into().ok()
    }
}

/// `STATE/lists/NAME.json`.
pub fn status_path(state_dir: &Path, list: &str) -> PathBuf {
    state_dir.join("lists").join(format!("{list}.json"))
}

/// Where a verified download waits for the next reload: beside the copy in force.
pub fn staged_path(list: &ListSource) -> PathBuf {
    let mut p = list.path.clone().into_os_string();
    p.push(".new");
    PathBuf::from(p)
}

/// The copy in force: the list's `path`.
pub fn in_force_path(list: &ListSource) -> &Path {
    &list.path
}

/// The status kept for `list` (default when none is kept or it is unreadable).
pub fn status(state_dir: &Path, list: &str) -> ListStatus {
    std::fs::read(status_path(state_dir, list))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes `status` atomically (temporary file, rename).
pub(crate) fn save(state_dir: &Path, list: &str, status: &ListStatus) -> std::io::Result<()> {
    let path = status_path(state_dir, list);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Updates the kept status of `list` with `f`, logging (not failing on) a write error.
pub(crate) fn update(state_dir: &Path, list: &str, f: impl FnOnce(&mut ListStatus)) {
    let mut s = status(state_dir, list);
    f(&mut s);
    if let Err(e) = save(state_dir, list, &s) {
        tracing::error!(list, "cannot write the list's status: {e}");
    }
}

/// The staged lists a reload has put in place of their copies in force. Made by [`promote`]
/// in the reload's prepare phase; [`Promotion::commit`] once the new policy is in force, or
/// [`Promotion::rollback`] when the reload is refused.
#[derive(Debug, Default)]
#[must_use = "a promotion is committed or rolled back"]
pub struct Promotion {
    state_dir: PathBuf,
    /// Each promoted list: its name, the copy in force and where the old copy was moved.
    moved: Vec<(String, PathBuf, Option<PathBuf>)>,
}

/// Forgets what was downloaded last, so the next attempt fetches in full (not answered 304)
/// and stages the bytes again even if they are the same (not taken as "unchanged": the copy
/// in force is not those bytes).
fn forget_download(s: &mut ListStatus) {
    s.etag = None;
    s.last_modified = None;
    s.sha256 = None;
    s.entries = None;
}

/// A staged download no reload put in force (the reload failed before the lists were
/// promoted, e.g. on a broken hand edit): it is dropped, so the list is fetched again at its
/// next retry rather than waiting on it for ever, and its status says why.
pub(crate) fn drop_staged(state_dir: &Path, list: &ListSource, why: &str) {
    let staged = staged_path(list);
    if !staged.is_file() {
        return;
    }
    let _ = std::fs::remove_file(&staged);
    update(state_dir, &list.name, |s| {
        s.ok = false;
        s.result = format!(
            "failed: the reload for the new copy failed ({why}); the last good copy stays in force"
        );
        forget_download(s);
    });
}

/// Puts every staged download of `config`'s lists in place of its copy in force, keeping the
/// old copy beside it (`NAME.list.prev`) until the reload commits or is refused.
pub fn promote(config: &Config) -> std::io::Result<Promotion> {
    let mut p = Promotion {
        state_dir: config.server.state_dir.clone(),
        moved: Vec::new(),
    };
    for list in config.lists.iter().filter(|l| l.fetch.is_some()) {
        let staged = staged_path(list);
        if !staged.is_file() {
            continue;
        }
        let prev = if list.path.is_file() {
            let mut prev = list.path.clone().into_os_string();
            prev.push(".prev");
            let prev = PathBuf::from(prev);
            // A second name for the copy in force, then the new copy renamed over it: the
            // list's path names a whole file at every moment, even across a crash.
            let _ = std::fs::remove_file(&prev);
            if let Err(e) = std::fs::hard_link(&list.path, &prev) {
                p.undo();
                return Err(e);
            }
            Some(prev)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&staged, &list.path) {
            if let Some(prev) = &prev {
                let _ = std::fs::remove_file(prev);
            }
            p.undo();
            return Err(e);
        }
        p.moved.push((list.name.clone(), list.path.clone(), prev));
    }
    Ok(p)
}

impl Promotion {
    /// The lists promoted, by name.
    pub fn lists(&self) -> impl Iterator<Item = &str> {
        self.moved.iter().map(|(n, _, _)| n.as_str())
    }

    /// The new copies are in force: the old ones are removed.
    pub fn commit(mut self) {
        let now = jiff::Timestamp::now();
        for (name, _, prev) in std::mem::take(&mut self.moved) {
            if let Some(prev) = prev {
                let _ = std::fs::remove_file(prev);
            }
            update(&self.state_dir, &name, |s| {
                s.result = format!("ok: in force since {now}");
                s.confirmed = Some(now);
                s.stale_alerted = false;
            });
            tracing::info!(list = %name, "downloaded list in force");
        }
    }

    /// The reload was refused: the copies in force are put back, the staged downloads are
    /// dropped, and each list's status says why.
    pub fn rollback(mut self, why: &str) {
        let moved = std::mem::take(&mut self.moved);
        self.undo_list(&moved);
        for (name, _, _) in &moved {
            update(&self.state_dir, name, |s| {
                s.ok = false;
                s.result = format!(
                    "failed: the reload refused the new copy ({why}); the last good copy stays in force"
                );
                forget_download(s);
            });
        }
    }

    fn undo(&mut self) {
        let moved = std::mem::take(&mut self.moved);
        self.undo_list(&moved);
    }

    fn undo_list(&self, moved: &[(String, PathBuf, Option<PathBuf>)]) {
        for (name, path, prev) in moved {
            let result = match prev {
                Some(prev) => std::fs::rename(prev, path),
                None => std::fs::remove_file(path),
            };
            if let Err(e) = result {
                tracing::error!(list = %name, "cannot put the list's last good copy back: {e}");
            }
        }
    }
}

impl Drop for Promotion {
    /// Neither committed nor rolled back (a reload task that died): put the old copies back.
    fn drop(&mut self) {
        self.undo();
    }
}
