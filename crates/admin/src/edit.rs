//! What can be changed ([`Edit`]), whether it loosens or tightens, and applying it to the
//! TOML files with `toml_edit`, which keeps the technician's comments and layout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hedgerow_config::{Config, ListKind, SafeSearch, YouTubeMode};
use hedgerow_policy::PolicySnapshot;
use serde::{Deserialize, Serialize};
use toml_edit::{Array, DocumentMut, Item, Value};

use crate::AdminError;

/// One edit to the filtering configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Edit {
    /// Add an entry to a group's local `allow` (loosens).
    AddAllow { group: String, entry: String },
    /// Remove an entry from a group's local `allow` (tightens).
    RemoveAllow { group: String, entry: String },
    /// Add an entry to a group's local `block` (tightens).
    AddBlock { group: String, entry: String },
    /// Remove an entry from a group's local `block` (loosens).
    RemoveBlock { group: String, entry: String },
    /// Block a category for a group (tightens).
    BlockCategory { group: String, category: String },
    /// Stop blocking a category for a group (loosens).
    UnblockCategory { group: String, category: String },
    /// Set a group's SafeSearch (`on` tightens, `off` loosens).
    SafeSearch { group: String, mode: String },
    /// Set a group's YouTube mode (`strict` > `moderate` > `off`).
    Youtube { group: String, mode: String },
    /// Remove a list (a block list loosens, an allow list tightens; an illegal list never).
    RemoveList { list: String },
    /// Put whole files back as they were (a rollback of the whole configuration). Loosens, as
    /// far as approval goes: it is checked as strictly as any loosening.
    RestoreFiles { files: BTreeMap<PathBuf, String> },
}

/// Whether a change can only make filtering stricter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Tightening,
    Loosening,
}

impl Edit {
    pub fn group(&self) -> Option<&str> {
        match self {
            Edit::AddAllow { group, .. }
            | Edit::RemoveAllow { group, .. }
            | Edit::AddBlock { group, .. }
            | Edit::RemoveBlock { group, .. }
            | Edit::BlockCategory { group, .. }
            | Edit::UnblockCategory { group, .. }
            | Edit::SafeSearch { group, .. }
            | Edit::Youtube { group, .. } => Some(group),
            Edit::RemoveList { .. } | Edit::RestoreFiles { .. } => None,
        }
    }

    /// Hosts or URLs the edit names, to show their verdicts before and after.
    pub fn named_target(&self) -> Option<&str> {
        match self {
            Edit::AddAllow { entry, .. }
            | Edit::RemoveAllow { entry, .. }
            | Edit::AddBlock { entry, .. }
            | Edit::RemoveBlock { entry, .. } => Some(entry.trim_start_matches("*.")),
            _ => None,
        }
    }

    /// The category whose verdicts the edit changes, to sample.
    pub fn category(&self) -> Option<&str> {
        match self {
            Edit::BlockCategory { category, .. } | Edit::UnblockCategory { category, .. } => {
                Some(category)
            }
            _ => None,
        }
    }

    pub fn direction(&self, config: &Config) -> Direction {
        use Direction::*;
        match self {
            Edit::RemoveAllow { .. } | Edit::AddBlock { .. } | Edit::BlockCategory { .. } => {
                Tightening
            }
            Edit::AddAllow { .. } | Edit::RemoveBlock { .. } | Edit::UnblockCategory { .. } => {
                Loosening
            }
            Edit::SafeSearch { mode, .. } if mode == "on" => Tightening,
            Edit::SafeSearch { .. } => Loosening,
            Edit::Youtube { group, mode } => {
                let rank = |m: &str| match m {
                    "strict" => 2,
                    "moderate" => 1,
                    _ => 0,
                };
                let now = config
                    .groups
                    .iter()
                    .find(|g| &g.name == group)
                    .map_or(0, |g| match g.youtube {
                        YouTubeMode::Strict => 2,
                        YouTubeMode::Moderate => 1,
                        YouTubeMode::Off => 0,
                    });
                if rank(mode) >= now {
                    Tightening
                } else {
                    Loosening
                }
            }
            Edit::RemoveList { list } => match config.lists.iter().find(|l| &l.name == list) {
                Some(l) if l.kind == ListKind::Allow => Tightening,
                _ => Loosening,
            },
            Edit::RestoreFiles { .. } => Loosening,
        }
    }

    /// Refuses an edit that would touch the illegal tier, with the reason (never the entry).
    pub fn check_illegal_tier(&self, snap: &PolicySnapshot) -> Result<(), AdminError> {
        let illegal = |name: &str| {
            snap.config()
                .lists
                .iter()
                .any(|l| l.name == name && l.kind == ListKind::Illegal)
        };
        match self {
            Edit::AddAllow { entry, .. } if snap.illegal_tier_covers(entry) => {
                Err(AdminError::IllegalTier(
                    "the allow entry is covered by the illegal tier (IWF / police lists): nothing may allow it, and the entry is not repeated here".into(),
                ))
            }
            Edit::RemoveList { list } if illegal(list) => Err(AdminError::IllegalTier(format!(
                "list {list:?} is an illegal-tier list: it cannot be removed, disabled or narrowed through change control"
            ))),
            Edit::UnblockCategory { category, .. }
                if snap.config().lists.iter().any(|l| {
                    l.kind == ListKind::Illegal && l.category.as_ref().map(|c| c.as_str()) == Some(category)
                }) =>
            {
                Err(AdminError::IllegalTier(format!(
                    "category {category:?} is the illegal tier's: it is always blocked"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The edit that undoes this one, given the configuration before it was applied.
    pub fn inverse(&self, before: &Config) -> Option<Edit> {
        let group = |name: &str| before.groups.iter().find(|g| g.name == name);
        Some(match self.clone() {
            Edit::AddAllow { group, entry } => Edit::RemoveAllow { group, entry },
            Edit::RemoveAllow { group, entry } => Edit::AddAllow { group, entry },
            Edit::AddBlock { group, entry } => Edit::RemoveBlock { group, entry },
            Edit::RemoveBlock { group, entry } => Edit::AddBlock { group, entry },
            Edit::BlockCategory { group, category } => Edit::UnblockCategory { group, category },
            Edit::UnblockCategory { group, category } => Edit::BlockCategory { group, category },
            Edit::SafeSearch { group: g, .. } => Edit::SafeSearch {
                mode: match group(&g)?.safesearch {
                    SafeSearch::On => "on".into(),
                    SafeSearch::Off => "off".into(),
                },
                group: g,
            },
            Edit::Youtube { group: g, .. } => Edit::Youtube {
                mode: match group(&g)?.youtube {
                    YouTubeMode::Strict => "strict".into(),
                    YouTubeMode::Moderate => "moderate".into(),
                    YouTubeMode::Off => "off".into(),
                },
                group: g,
            },
            Edit::RemoveList { .. } | Edit::RestoreFiles { .. } => return None,
        })
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Edit::AddAllow { group, entry } => format!("{group}: allow {entry}"),
            Edit::RemoveAllow { group, entry } => format!("{group}: remove allow {entry}"),
            Edit::AddBlock { group, entry } => format!("{group}: block {entry}"),
            Edit::RemoveBlock { group, entry } => format!("{group}: remove block {entry}"),
            Edit::BlockCategory { group, category } => {
                format!("{group}: block category {category}")
            }
            Edit::UnblockCategory { group, category } => {
                format!("{group}: unblock category {category}")
            }
            Edit::SafeSearch { group, mode } => format!("{group}: SafeSearch {mode}"),
            Edit::Youtube { group, mode } => format!("{group}: YouTube {mode}"),
            Edit::RemoveList { list } => format!("remove list {list}"),
            Edit::RestoreFiles { files } => format!("restore {} file(s)", files.len()),
        }
    }
}

/// The configuration's files as text, edited in memory.
pub(crate) struct Files {
    /// Every file of the configuration, main file first.
    pub(crate) texts: BTreeMap<PathBuf, String>,
    docs: BTreeMap<PathBuf, DocumentMut>,
    pub(crate) touched: BTreeSet<PathBuf>,
}

impl Files {
    pub(crate) fn read(config: &Config) -> Result<Self, AdminError> {
        let mut texts = BTreeMap::new();
        for p in &config.files {
            let text = std::fs::read_to_string(p)
                .map_err(|e| AdminError::Internal(format!("reading {}: {e}", p.display())))?;
            texts.insert(p.clone(), text);
        }
        Ok(Self {
            texts,
            docs: BTreeMap::new(),
            touched: BTreeSet::new(),
        })
    }

    fn doc(&mut self, path: &Path) -> Result<&mut DocumentMut, AdminError> {
        if !self.docs.contains_key(path) {
            let text = self.texts.get(path).ok_or_else(|| {
                AdminError::Internal(format!("{} is not a configuration file", path.display()))
            })?;
            let doc: DocumentMut = text
                .parse()
                .map_err(|e| AdminError::Invalid(format!("{}: {e}", path.display())))?;
            self.docs.insert(path.to_owned(), doc);
        }
        self.touched.insert(path.to_owned());
        self.docs
            .get_mut(path)
            .ok_or_else(|| AdminError::Internal("document vanished".into()))
    }

    /// The edited texts of every file touched.
    pub(crate) fn edited(&self) -> BTreeMap<PathBuf, String> {
        self.touched
            .iter()
            .map(|p| {
                let text = match self.docs.get(p) {
                    Some(d) => d.to_string(),
                    None => self.texts.get(p).cloned().unwrap_or_default(),
                };
                (p.clone(), text)
            })
            .collect()
    }

    pub(crate) fn apply(&mut self, config: &Config, edit: &Edit) -> Result<(), AdminError> {
        if let Edit::RestoreFiles { files } = edit {
            for (path, text) in files {
                self.docs.remove(path);
                self.texts.insert(path.clone(), text.clone());
                self.touched.insert(path.clone());
            }
            return Ok(());
        }
        if let Edit::RemoveList { list } = edit {
            let l = config
                .lists
                .iter()
                .find(|l| &l.name == list)
                .ok_or_else(|| AdminError::Invalid(format!("no list named {list:?}")))?;
            let doc = self.doc(&l.location.path)?;
            let removed = doc
                .get_mut("lists")
                .and_then(Item::as_table_like_mut)
                .and_then(|t| t.remove(list));
            if removed.is_none() {
                return Err(AdminError::Invalid(format!(
                    "list {list:?} is not a [lists.{list}] table this can edit"
                )));
            }
            return Ok(());
        }
        let name = edit.group().unwrap_or_default().to_owned();
        let g = config
            .groups
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| AdminError::Invalid(format!("no group named {name:?}")))?;
        let doc = self.doc(&g.location.path)?;
        let table = doc
            .get_mut("groups")
            .and_then(Item::as_table_like_mut)
            .and_then(|t| t.get_mut(&name))
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| {
                AdminError::Invalid(format!(
                    "group {name:?} is not a [groups.{name}] table this can edit"
                ))
            })?;
        match edit {
            Edit::AddAllow { entry, .. } => add(table, "allow", entry),
            Edit::AddBlock { entry, .. } => add(table, "block", entry),
            Edit::BlockCategory { category, .. } => add(table, "block_categories", category),
            Edit::RemoveAllow { entry, .. } => remove(table, "allow", entry),
            Edit::RemoveBlock { entry, .. } => remove(table, "block", entry),
            Edit::UnblockCategory { category, .. } => remove(table, "block_categories", category),
            Edit::SafeSearch { mode, .. } => {
                if !matches!(mode.as_str(), "on" | "off") {
                    return Err(AdminError::Invalid(format!(
                        "SafeSearch {mode:?}: expected on or off"
                    )));
                }
                set(table, "safesearch", mode);
                Ok(())
            }
            Edit::Youtube { mode, .. } => {
                if !matches!(mode.as_str(), "strict" | "moderate" | "off") {
                    return Err(AdminError::Invalid(format!(
                        "YouTube {mode:?}: expected strict, moderate or off"
                    )));
                }
                set(table, "youtube", mode);
                Ok(())
            }
            Edit::RemoveList { .. } | Edit::RestoreFiles { .. } => Ok(()),
        }
    }
}

fn set(table: &mut dyn toml_edit::TableLike, key: &str, text: &str) {
    match table.get_mut(key).and_then(Item::as_value_mut) {
        Some(v) => {
            let decor = v.decor().clone();
            *v = Value::from(text);
            *v.decor_mut() = decor;
        }
        None => {
            table.insert(key, Item::Value(Value::from(text)));
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    a.trim_start_matches("*.")
        .eq_ignore_ascii_case(b.trim_start_matches("*."))
}

fn add(table: &mut dyn toml_edit::TableLike, key: &str, text: &str) -> Result<(), AdminError> {
    match table.get_mut(key) {
        None => {
            let mut a = Array::new();
            a.push(text);
            table.insert(key, Item::Value(Value::Array(a)));
            Ok(())
        }
        Some(item) => {
            let a = item
                .as_array_mut()
                .ok_or_else(|| AdminError::Invalid(format!("{key} is not an array")))?;
            if a.iter().any(|v| v.as_str().is_some_and(|s| same(s, text))) {
                return Err(AdminError::Invalid(format!("{key} already holds {text:?}")));
            }
            // Follow the array's layout: one entry a line if it is laid out so. A comment after
            // the last entry's comma belongs to the array's trailing text: it stays with that
            // entry, ahead of the new one.
            let last_prefix = a.iter().last().and_then(|v| {
                v.decor()
                    .prefix()
                    .and_then(|p| p.as_str())
                    .filter(|p| p.contains('\n'))
                    .map(str::to_owned)
            });
            let trailing = a.trailing().as_str().unwrap_or("").to_owned();
            a.push(text);
            if let Some(prefix) = last_prefix {
                let (comment, rest) = match trailing.rfind('\n') {
                    Some(nl) if a.trailing_comma() => trailing.split_at(nl),
                    _ => ("", trailing.as_str()),
                };
                if let Some(last) = a.iter_mut().last() {
                    last.decor_mut().set_prefix(format!("{comment}{prefix}"));
                }
                a.set_trailing(rest.to_owned());
                a.set_trailing_comma(true);
            }
            Ok(())
        }
    }
}

fn remove(table: &mut dyn toml_edit::TableLike, key: &str, text: &str) -> Result<(), AdminError> {
    let a = table
        .get_mut(key)
        .and_then(Item::as_array_mut)
        .ok_or_else(|| AdminError::Invalid(format!("{key} does not hold {text:?}")))?;
    let Some(i) = a
        .iter()
        .position(|v| v.as_str().is_some_and(|s| same(s, text)))
    else {
        return Err(AdminError::Invalid(format!("{key} does not hold {text:?}")));
    };
    a.remove(i);
    Ok(())
}
