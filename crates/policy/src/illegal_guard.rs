//! The illegal tier fails closed.
//!
//! The DfE standard: the IWF and police lists "cannot be disabled, overridden, or altered by
//! any user". So an illegal-tier list is never optional (the config crate refuses it), and
//! every build compares each illegal-tier list with its last good load, kept in the state
//! directory (`STATE/illegal/`): a file missing, unreadable, empty or shrunk by more than
//! `[server] illegal_shrink_limit` is replaced by the last good copy, and the build says so
//! (the binary prints it and raises a critical operational alert). With no last good copy,
//! such a list refuses the build: the appliance never runs with no illegal tier.
//!
//! The last good copy holds keyed hashes only, never entries. The key is in `STATE/illegal/key`
//! (mode 0600, created at the first start), so the hashes and each entry's reference stay the
//! same across restarts. A build that may not write (`check-config`, `lookup`) reads the key
//! and copies if it can, and never creates or changes them.

use std::io::Write;
use std::path::{Path, PathBuf};

use hedgerow_config::{Config, ListKind, ListSource};
use hedgerow_matcher::{IllegalKey, IllegalSet, ListSpec, LoadReport, MatcherBuilder};

use crate::snapshot::PolicyError;

const KEY_FILE: &str = "key";

/// Illegal-tier lists by name, to keep as their last good copies.
pub(crate) type Kept = Vec<(String, IllegalSet)>;
const SET_MAGIC: &[u8; 8] = b"HRILSET1";

/// Whether a build may create the key and keep a new last good copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// `check-config`, `lookup`: read what is kept, change nothing.
    Check,
    /// Start and reload: create the key if needed; a build that is swapped in keeps its
    /// illegal-tier lists as the new last good copies.
    Serve,
}

/// Where an illegal-tier list's entries came from in this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IllegalSource {
    /// Loaded from its file (and, when serving, kept as the new last good copy).
    Loaded,
    /// The file could not be used; the last good copy is enforced instead.
    KeptLastGood {
        /// Why, in one sentence: missing, unreadable, empty, or shrunk by how much.
        reason: String,
    },
}

/// One illegal-tier list in a build: its name, the entries enforced, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalStatus {
    pub list: String,
    pub entries: usize,
    pub source: IllegalSource,
}

/// The kept key and last good copies in `STATE/illegal/`.
pub(crate) struct Guard {
    dir: PathBuf,
    mode: BuildMode,
    key: IllegalKey,
    /// False when the key was made up for this build (none kept, or unreadable in check
    /// mode): no kept copy can be compared then.
    kept_key: bool,
    pub(crate) notes: Vec<String>,
}

impl Guard {
    pub(crate) fn open(state_dir: &Path, mode: BuildMode) -> Result<Self, PolicyError> {
        let dir = state_dir.join("illegal");
        let mut notes = Vec::new();
        let key_path = dir.join(KEY_FILE);
        let (key, kept_key) = match std::fs::read(&key_path) {
            Ok(bytes) => match <[u8; 16]>::try_from(bytes.as_slice()) {
                Ok(b) => (IllegalKey::from_bytes(b), true),
                Err(_) => {
                    return Err(PolicyError::IllegalState(format!(
                        "{}: not a Hedgerow illegal-tier key (16 bytes); move it away to start afresh",
                        key_path.display()
                    )));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match mode {
                BuildMode::Serve => {
                    let key = IllegalKey::random();
                    write_private(&dir, KEY_FILE, &key.to_bytes()).map_err(|e| {
                        PolicyError::IllegalState(format!("{}: {e}", key_path.display()))
                    })?;
                    // Copies hashed under another key are of no use now.
                    remove_sets(&dir);
                    (key, true)
                }
                BuildMode::Check => (IllegalKey::random(), false),
            },
            Err(e) => match mode {
                BuildMode::Serve => {
                    return Err(PolicyError::IllegalState(format!(
                        "{}: {e}",
                        key_path.display()
                    )));
                }
                BuildMode::Check => {
                    notes.push(format!(
                        "{}: {e}: the illegal tier was checked without comparing it with its last good copy (run as the service's user to compare)",
                        key_path.display()
                    ));
                    (IllegalKey::random(), false)
                }
            },
        };
        Ok(Self {
            dir,
            mode,
            key,
            kept_key,
            notes,
        })
    }

    pub(crate) fn key(&self) -> IllegalKey {
        self.key
    }

    fn set_path(&self, list: &str) -> PathBuf {
        self.dir.join(set_name(list))
    }

    /// The last good copy of `list`, if one is kept and readable.
    fn last_good(&self, list: &str) -> Option<IllegalSet> {
        if !self.kept_key {
            return None;
        }
        let bytes = std::fs::read(self.set_path(list)).ok()?;
        let body = bytes.strip_prefix(SET_MAGIC.as_slice())?;
        IllegalSet::from_bytes(body).ok()
    }

    /// Adds every illegal-tier list of `config` to `builder`, each from its file or from its
    /// last good copy. Returns each list's status and the sets to keep once the build is
    /// swapped in.
    pub(crate) fn add_lists(
        &self,
        config: &Config,
        builder: &mut MatcherBuilder,
        reports: &mut Vec<LoadReport>,
    ) -> Result<(Vec<IllegalStatus>, Kept), PolicyError> {
        let limit = config.server.illegal_shrink_limit;
        let mut status = Vec::new();
        let mut keep = Vec::new();
        for list in config.lists.iter().filter(|l| l.kind == ListKind::Illegal) {
            let spec = spec_of(list);
            // Read the file on its own first, so it can be weighed against the last good copy.
            let mut scratch = MatcherBuilder::with_illegal_key(self.key);
            let loaded = scratch
                .add_file(spec.clone(), &list.path)
                .map(|r| (scratch.illegal_set(&list.name), r));
            let last = self.last_good(&list.name);
            let problem = match &loaded {
                Err(e) => Some(format!("cannot be read ({e})")),
                Ok((set, _)) if set.is_empty() => Some("loaded no entry".to_owned()),
                Ok((set, _)) => last.as_ref().and_then(|l| {
                    let floor = (l.entries() as f64) * (1.0 - limit);
                    ((set.entries() as f64) < floor).then(|| {
                        format!(
                            "shrank from {} to {} entries, more than the {:.0}% allowed by illegal_shrink_limit",
                            l.entries(),
                            set.entries(),
                            limit * 100.0
                        )
                    })
                }),
            };
            match (problem, last) {
                (None, _) => {
                    let Ok((set, report)) = loaded else {
                        continue;
                    };
                    let origin = report.origin.clone();
                    let r = builder
                        .add_illegal_set(spec, &origin, &set)
                        .map_err(|source| PolicyError::List {
                            list: list.name.clone(),
                            source,
                        })?;
                    // Keep the file's report (its bad lines), with the entries enforced.
                    reports.push(LoadReport {
                        entries: r.entries,
                        ..report
                    });
                    status.push(IllegalStatus {
                        list: list.name.clone(),
                        entries: set.entries(),
                        source: IllegalSource::Loaded,
                    });
                    keep.push((list.name.clone(), set));
                }
                (Some(reason), Some(last)) => {
                    let origin = format!("{} (last good copy)", list.path.display());
                    let r = builder
                        .add_illegal_set(spec, &origin, &last)
                        .map_err(|source| PolicyError::List {
                            list: list.name.clone(),
                            source,
                        })?;
                    reports.push(r);
                    status.push(IllegalStatus {
                        list: list.name.clone(),
                        entries: last.entries(),
                        source: IllegalSource::KeptLastGood {
                            reason: format!(
                                "{}: {reason}; enforcing its last good copy of {} entries",
                                list.path.display(),
                                last.entries()
                            ),
                        },
                    });
                }
                (Some(reason), None) => {
                    return Err(PolicyError::IllegalTier {
                        location: list.location.to_string(),
                        list: list.name.clone(),
                        reason: format!(
                            "{}: {reason}, and no last good copy is kept: the illegal tier cannot run empty",
                            list.path.display()
                        ),
                    });
                }
            }
        }
        Ok((status, keep))
    }

    /// Keeps `sets` as the last good copies (serving builds only; atomic per file).
    pub(crate) fn keep(&self, sets: &[(String, IllegalSet)]) -> Result<(), PolicyError> {
        if self.mode != BuildMode::Serve || !self.kept_key {
            return Ok(());
        }
        for (list, set) in sets {
            let mut bytes = SET_MAGIC.to_vec();
            bytes.extend_from_slice(&set.to_bytes());
            // Most reloads keep the same lists: no write (and no fsync) when nothing changed.
            if std::fs::read(self.set_path(list)).is_ok_and(|kept| kept == bytes) {
                continue;
            }
            write_private(&self.dir, &set_name(list), &bytes).map_err(|e| {
                PolicyError::IllegalState(format!("{}: {e}", self.set_path(list).display()))
            })?;
        }
        Ok(())
    }
}

/// The file a list's copy is kept in: its name when that is a plain word, else hex.
fn set_name(list: &str) -> String {
    if !list.is_empty()
        && list
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        format!("{list}.set")
    } else {
        let hex: String = list.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x-{hex}.set")
    }
}

fn spec_of(list: &ListSource) -> ListSpec {
    ListSpec {
        name: list.name.as_str().into(),
        kind: list.kind,
        format: list.format,
        category: list.category.clone(),
        url_match: list.url_match,
        severity: list.severity,
    }
}

/// Writes `dir/name` readable by its owner only: a temporary file, fsync, rename. The
/// temporary file's name is this write's own, so two reloads at once (a SIGHUP while
/// `hedgerow reload` runs) never rename each other's file away.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // A name of its own: two reloads at once must not rename each other's file away.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn remove_sets(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.path().extension().is_some_and(|x| x == "set") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
