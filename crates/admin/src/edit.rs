//! What can be changed ([`Edit`]), whether it loosens or tightens, and applying it to the
//! TOML files with `toml_edit`, which keeps the technician's comments and layout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hedgerow_config::{Config, ListKind, SafeSearch, YouTubeMode};
use hedgerow_policy::PolicySnapshot;
use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

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
    /// Add a `[lists.NAME]` list source (a block list tightens; an allow or approved list
    /// loosens; an illegal-tier list never: refused).
    AddList { name: String, list: ListSpec },
    /// Replace a list source's definition (path, format, kind, category, …). Loosens, as far
    /// as approval goes: a new file or kind may hold less. Never an illegal-tier list's.
    ChangeList { name: String, list: ListSpec },
    /// Put whole files back as they were (a rollback of the whole configuration). Loosens, as
    /// far as approval goes: it is checked as strictly as any loosening.
    RestoreFiles { files: BTreeMap<PathBuf, String> },
    /// Add a `[[devices]]` entry. With a `group` it moves the device's verdicts (loosens, as
    /// far as approval goes); without one it only names its events (tightens).
    AddDevice { device: DeviceSpec },
    /// Remove a `[[devices]]` entry by name (loosens: its group and its name on events go).
    RemoveDevice { name: String },
    /// Add a `[[breaches.rules]]` rule, at the end (tightens: it can only catch events no
    /// earlier rule caught) or at position `at` (loosens: it may take events from the rules
    /// after it, at another severity).
    AddBreachRule {
        rule: BreachRuleSpec,
        #[serde(default)]
        at: Option<usize>,
    },
    /// Remove a breach rule by name (loosens).
    RemoveBreachRule { name: String },
    /// Add a host to `[proxy] never_intercept` (loosens: its HTTPS is no longer looked into).
    AddNeverIntercept { host: String },
    /// Remove a host from `[proxy] never_intercept` (tightens).
    RemoveNeverIntercept { host: String },
    /// Add a group to `[proxy] intercept_groups` (tightens).
    AddInterceptGroup { group: String },
    /// Remove a group from `[proxy] intercept_groups` (loosens).
    RemoveInterceptGroup { group: String },
    /// Add a `[[groups.GROUP.schedule]]` window (loosens when it opens a category).
    AddSchedule {
        group: String,
        schedule: ScheduleSpec,
    },
    /// Remove a group's schedule window by name (tightens).
    RemoveSchedule { group: String, name: String },
}

/// A `[lists.NAME]` list source, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSpec {
    /// The list file (relative paths are read from the configuration file's folder).
    pub path: String,
    pub format: hedgerow_config::ListFormat,
    #[serde(default = "block")]
    pub kind: ListKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_match: Option<hedgerow_config::UrlMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<hedgerow_config::Severity>,
}

fn block() -> ListKind {
    ListKind::Block
}

impl ListSpec {
    fn from_config(l: &hedgerow_config::ListSource) -> Self {
        Self {
            path: l.path.display().to_string(),
            format: l.format,
            kind: l.kind,
            category: l.category.as_ref().map(|c| c.as_str().to_owned()),
            optional: l.optional,
            url_match: Some(l.url_match),
            severity: Some(l.severity),
        }
    }

    /// Writes the spec's keys into `t`, keeping the comments and layout of keys that stay.
    fn write(&self, t: &mut dyn TableLike) {
        set(t, "path", &self.path);
        set(t, "format", &word(&self.format));
        set(t, "kind", &word(&self.kind));
        match &self.category {
            Some(c) => set(t, "category", c),
            None => {
                t.remove("category");
            }
        }
        if self.optional {
            t.insert("optional", toml_edit::value(true));
        } else {
            t.remove("optional");
        }
        match &self.url_match {
            Some(m) => set(t, "url_match", &word(m)),
            None => {
                t.remove("url_match");
            }
        }
        match &self.severity {
            Some(s) => set(t, "severity", &word(s)),
            None => {
                t.remove("severity");
            }
        }
    }
}

/// A `[[devices]]` entry, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A `[[breaches.rules]]` rule, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreachRuleSpec {
    pub name: String,
    #[serde(default)]
    pub tiers: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concern: Option<String>,
    pub severity: String,
}

/// A `[[groups.NAME.schedule]]` window, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub name: String,
    pub allow_categories: Vec<String>,
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
}

impl DeviceSpec {
    fn from_config(d: &hedgerow_config::Device) -> Self {
        Self {
            name: d.name.clone(),
            ip: d.ip.map(|i| i.to_string()),
            mac: d.mac.map(|m| m.to_string()),
            user: d.user.clone(),
            group: d.group.clone(),
        }
    }

    fn table(&self) -> Table {
        let mut t = Table::new();
        t.insert("name", toml_edit::value(self.name.as_str()));
        for (k, v) in [
            ("ip", &self.ip),
            ("mac", &self.mac),
            ("user", &self.user),
            ("group", &self.group),
        ] {
            if let Some(v) = v {
                t.insert(k, toml_edit::value(v.as_str()));
            }
        }
        t
    }
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn strings(items: &[String]) -> Item {
    let mut a = Array::new();
    for i in items {
        a.push(i.as_str());
    }
    toml_edit::value(a)
}

impl BreachRuleSpec {
    fn from_config(r: &hedgerow_model::BreachRule) -> Self {
        Self {
            name: r.name.to_string(),
            tiers: r.tiers.iter().map(|t| t.as_str().to_owned()).collect(),
            categories: r.categories.iter().map(|c| c.as_str().to_owned()).collect(),
            concern: r.concern.map(|s| word(&s)),
            severity: word(&r.severity),
        }
    }

    fn table(&self) -> Table {
        let mut t = Table::new();
        t.insert("name", toml_edit::value(self.name.as_str()));
        if !self.tiers.is_empty() {
            t.insert("tiers", strings(&self.tiers));
        }
        if !self.categories.is_empty() {
            t.insert("categories", strings(&self.categories));
        }
        if let Some(c) = &self.concern {
            t.insert("concern", toml_edit::value(c.as_str()));
        }
        t.insert("severity", toml_edit::value(self.severity.as_str()));
        t
    }
}

impl ScheduleSpec {
    fn from_config(s: &hedgerow_config::Schedule) -> Self {
        use jiff::civil::Weekday::*;
        let time = |t: jiff::civil::Time| {
            if t == jiff::civil::Time::MAX {
                "24:00".to_owned()
            } else {
                format!("{:02}:{:02}", t.hour(), t.minute())
            }
        };
        Self {
            name: s.name.clone(),
            allow_categories: s
                .allow_categories
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            days: s
                .days
                .iter()
                .map(|d| {
                    match d {
                        Monday => "mon",
                        Tuesday => "tue",
                        Wednesday => "wed",
                        Thursday => "thu",
                        Friday => "fri",
                        Saturday => "sat",
                        Sunday => "sun",
                    }
                    .to_owned()
                })
                .collect(),
            from: time(s.from),
            to: time(s.to),
        }
    }

    fn table(&self) -> Table {
        let mut t = Table::new();
        t.insert("name", toml_edit::value(self.name.as_str()));
        t.insert("allow_categories", strings(&self.allow_categories));
        t.insert("days", strings(&self.days));
        t.insert("from", toml_edit::value(self.from.as_str()));
        t.insert("to", toml_edit::value(self.to.as_str()));
        t
    }
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
            | Edit::Youtube { group, .. }
            | Edit::AddInterceptGroup { group }
            | Edit::RemoveInterceptGroup { group }
            | Edit::AddSchedule { group, .. }
            | Edit::RemoveSchedule { group, .. } => Some(group),
            Edit::AddDevice { device } => device.group.as_deref(),
            Edit::AddList { .. } | Edit::ChangeList { .. } => None,
            Edit::RemoveList { .. }
            | Edit::RestoreFiles { .. }
            | Edit::RemoveDevice { .. }
            | Edit::AddBreachRule { .. }
            | Edit::RemoveBreachRule { .. }
            | Edit::AddNeverIntercept { .. }
            | Edit::RemoveNeverIntercept { .. } => None,
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
            Edit::AddList { list, .. } if list.kind == ListKind::Block => Tightening,
            Edit::AddList { .. } | Edit::ChangeList { .. } => Loosening,
            Edit::RestoreFiles { .. } => Loosening,
            Edit::AddDevice { device } if device.group.is_some() => Loosening,
            Edit::AddDevice { .. } => Tightening,
            Edit::RemoveDevice { .. } => Loosening,
            Edit::AddBreachRule { at: Some(i), .. } if *i < config.breaches.rules.len() => {
                Loosening
            }
            Edit::AddBreachRule { .. } => Tightening,
            Edit::RemoveBreachRule { .. } => Loosening,
            Edit::AddNeverIntercept { .. } | Edit::RemoveInterceptGroup { .. } => Loosening,
            Edit::RemoveNeverIntercept { .. } | Edit::AddInterceptGroup { .. } => Tightening,
            Edit::AddSchedule { schedule, .. } if schedule.allow_categories.is_empty() => {
                Tightening
            }
            Edit::AddSchedule { .. } => Loosening,
            Edit::RemoveSchedule { .. } => Tightening,
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
        let illegal_file = |path: &str| {
            let p = Path::new(path);
            let p = match (
                p.is_relative(),
                snap.config().files.first().and_then(|f| f.parent()),
            ) {
                (true, Some(dir)) => dir.join(p),
                _ => p.to_owned(),
            };
            let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
            let p = canon(&p);
            snap.config()
                .lists
                .iter()
                .any(|l| l.kind == ListKind::Illegal && canon(&l.path) == p)
        };
        let illegal_category = |category: &str| {
            snap.config().lists.iter().any(|l| {
                l.kind == ListKind::Illegal
                    && l.category.as_ref().map(|c| c.as_str()) == Some(category)
            })
        };
        match self {
            Edit::AddBlock { entry, .. } | Edit::RemoveBlock { entry, .. }
                if snap.illegal_tier_covers(entry) =>
            {
                Err(AdminError::IllegalTier(
                    "the entry is covered by the illegal tier (IWF / police lists): it is blocked for everyone already, and it is not written anywhere in clear (nor repeated here)".into(),
                ))
            }
            Edit::AddAllow { entry, .. } if snap.illegal_tier_covers(entry) => {
                Err(AdminError::IllegalTier(
                    "the allow entry is covered by the illegal tier (IWF / police lists): nothing may allow it, and the entry is not repeated here".into(),
                ))
            }
            Edit::RemoveList { list } if illegal(list) => Err(AdminError::IllegalTier(format!(
                "list {list:?} is an illegal-tier list: it cannot be removed, disabled or narrowed through change control"
            ))),
            Edit::ChangeList { name, .. } if illegal(name) => Err(AdminError::IllegalTier(format!(
                "list {name:?} is an illegal-tier list: it cannot be changed, disabled or narrowed through change control"
            ))),
            Edit::AddList { list, .. } | Edit::ChangeList { list, .. }
                if list.kind == ListKind::Illegal =>
            {
                Err(AdminError::IllegalTier(
                    "a list of kind \"illegal\" is the illegal tier (IWF / police lists): its lists are installed with the appliance and cannot be added, changed or removed through change control".into(),
                ))
            }
            Edit::AddList { list, .. } | Edit::ChangeList { list, .. }
                if illegal_file(&list.path) =>
            {
                Err(AdminError::IllegalTier(
                    "the file is an illegal-tier list's: read as any other kind its entries would be held and shown in clear".into(),
                ))
            }
            Edit::UnblockCategory { category, .. } if illegal_category(category) => {
                Err(AdminError::IllegalTier(format!(
                    "category {category:?} is the illegal tier's: it is always blocked"
                )))
            }
            Edit::AddSchedule { schedule, .. }
                if schedule.allow_categories.iter().any(|c| illegal_category(c)) =>
            {
                Err(AdminError::IllegalTier(
                    "a schedule cannot open the illegal tier's category: it is always blocked"
                        .into(),
                ))
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
            Edit::RestoreFiles { .. } => return None,
            Edit::RemoveList { list } => Edit::AddList {
                list: ListSpec::from_config(before.lists.iter().find(|l| l.name == list)?),
                name: list,
            },
            Edit::AddList { name, .. } => Edit::RemoveList { list: name },
            Edit::ChangeList { name, .. } => Edit::ChangeList {
                list: ListSpec::from_config(before.lists.iter().find(|l| l.name == name)?),
                name,
            },
            Edit::AddDevice { device } => Edit::RemoveDevice { name: device.name },
            Edit::RemoveDevice { name } => Edit::AddDevice {
                device: DeviceSpec::from_config(before.devices.iter().find(|d| d.name == name)?),
            },
            Edit::AddBreachRule { rule, .. } => Edit::RemoveBreachRule { name: rule.name },
            Edit::RemoveBreachRule { name } => {
                let rules = &before.breaches.rules;
                let at = rules.iter().position(|r| *r.name == *name)?;
                Edit::AddBreachRule {
                    rule: BreachRuleSpec::from_config(&rules[at]),
                    at: (at + 1 < rules.len()).then_some(at),
                }
            }
            Edit::AddNeverIntercept { host } => Edit::RemoveNeverIntercept { host },
            Edit::RemoveNeverIntercept { host } => Edit::AddNeverIntercept { host },
            Edit::AddInterceptGroup { group } => Edit::RemoveInterceptGroup { group },
            Edit::RemoveInterceptGroup { group } => Edit::AddInterceptGroup { group },
            Edit::AddSchedule { group, schedule } => Edit::RemoveSchedule {
                group,
                name: schedule.name,
            },
            Edit::RemoveSchedule { group: g, name } => Edit::AddSchedule {
                schedule: ScheduleSpec::from_config(
                    group(&g)?.schedules.iter().find(|s| s.name == name)?,
                ),
                group: g,
            },
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
            Edit::AddList { name, list } => format!(
                "add {} list {name} ({}) from {}",
                word(&list.kind),
                list.category.as_deref().unwrap_or("no category"),
                list.path
            ),
            Edit::ChangeList { name, list } => format!(
                "change list {name} to {} ({}) from {}",
                word(&list.kind),
                list.category.as_deref().unwrap_or("no category"),
                list.path
            ),
            Edit::RestoreFiles { files } => format!("restore {} file(s)", files.len()),
            Edit::AddDevice { device } => match &device.group {
                Some(g) => format!("add device {} in group {g}", device.name),
                None => format!("add device {}", device.name),
            },
            Edit::RemoveDevice { name } => format!("remove device {name}"),
            Edit::AddBreachRule { rule, at } => match at {
                Some(i) => format!(
                    "add breach rule {} ({}) at position {i}",
                    rule.name, rule.severity
                ),
                None => format!("add breach rule {} ({})", rule.name, rule.severity),
            },
            Edit::RemoveBreachRule { name } => format!("remove breach rule {name}"),
            Edit::AddNeverIntercept { host } => format!("never intercept {host}"),
            Edit::RemoveNeverIntercept { host } => format!("remove never-intercept {host}"),
            Edit::AddInterceptGroup { group } => format!("intercept HTTPS for {group}"),
            Edit::RemoveInterceptGroup { group } => format!("stop intercepting HTTPS for {group}"),
            Edit::AddSchedule { group, schedule } => format!(
                "{group}: schedule {} opens {} {} {}-{}",
                schedule.name,
                schedule.allow_categories.join(","),
                schedule.days.join(","),
                schedule.from,
                schedule.to
            ),
            Edit::RemoveSchedule { group, name } => format!("{group}: remove schedule {name}"),
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

    /// The file of the configuration whose top level has `key`, if any.
    fn file_with(&mut self, config: &Config, key: &str) -> Result<Option<PathBuf>, AdminError> {
        for p in &config.files {
            if self.parsed(p)?.contains_key(key) {
                return Ok(Some(p.clone()));
            }
        }
        Ok(None)
    }

    fn main_file(config: &Config) -> Result<PathBuf, AdminError> {
        config
            .files
            .first()
            .cloned()
            .ok_or_else(|| AdminError::Internal("the configuration has no files".into()))
    }

    fn doc(&mut self, path: &Path) -> Result<&mut DocumentMut, AdminError> {
        self.parsed(path)?;
        self.touched.insert(path.to_owned());
        self.docs
            .get_mut(path)
            .ok_or_else(|| AdminError::Internal("document vanished".into()))
    }

    fn parsed(&mut self, path: &Path) -> Result<&mut DocumentMut, AdminError> {
        if !self.docs.contains_key(path) {
            let text = self.texts.get(path).ok_or_else(|| {
                AdminError::Internal(format!("{} is not a configuration file", path.display()))
            })?;
            let doc: DocumentMut = text
                .parse()
                .map_err(|e| AdminError::Invalid(format!("{}: {e}", path.display())))?;
            self.docs.insert(path.to_owned(), doc);
        }
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
        match edit {
            Edit::AddList { name, list } => {
                if config.lists.iter().any(|l| &l.name == name) {
                    return Err(AdminError::Invalid(format!("a list named {name:?} exists")));
                }
                let path = match config.lists.last() {
                    Some(l) => l.location.path.clone(),
                    None => Self::main_file(config)?,
                };
                let doc = self.doc(&path)?;
                let lists = doc
                    .entry("lists")
                    .or_insert_with(|| {
                        let mut t = Table::new();
                        t.set_implicit(true);
                        Item::Table(t)
                    })
                    .as_table_like_mut()
                    .ok_or_else(|| AdminError::Invalid("[lists] is not a table".into()))?;
                let mut t = Table::new();
                list.write(&mut t);
                lists.insert(name, Item::Table(t));
                return Ok(());
            }
            Edit::ChangeList { name, list } => {
                let l = config
                    .lists
                    .iter()
                    .find(|l| &l.name == name)
                    .ok_or_else(|| AdminError::Invalid(format!("no list named {name:?}")))?;
                let doc = self.doc(&l.location.path)?;
                let t = doc
                    .get_mut("lists")
                    .and_then(Item::as_table_like_mut)
                    .and_then(|t| t.get_mut(name))
                    .and_then(Item::as_table_like_mut)
                    .ok_or_else(|| {
                        AdminError::Invalid(format!(
                            "list {name:?} is not a [lists.{name}] table this can edit"
                        ))
                    })?;
                list.write(t);
                return Ok(());
            }
            Edit::AddDevice { device } => {
                let path = match config.devices.last() {
                    Some(d) => d.location.path.clone(),
                    None => match self.file_with(config, "devices")? {
                        Some(p) => p,
                        None => Self::main_file(config)?,
                    },
                };
                if config.devices.iter().any(|d| d.name == device.name) {
                    return Err(AdminError::Invalid(format!(
                        "a device named {:?} exists",
                        device.name
                    )));
                }
                let doc = self.doc(&path)?;
                return push_table(doc.as_table_mut(), "devices", device.table(), None);
            }
            Edit::RemoveDevice { name } => {
                let d = config
                    .devices
                    .iter()
                    .find(|d| &d.name == name)
                    .ok_or_else(|| AdminError::Invalid(format!("no device named {name:?}")))?;
                let doc = self.doc(&d.location.path)?;
                return remove_table(doc.as_table_mut(), "devices", name);
            }
            Edit::AddBreachRule { rule, at } => {
                if config.breaches.rules.iter().any(|r| *r.name == *rule.name) {
                    return Err(AdminError::Invalid(format!(
                        "a breach rule named {:?} exists",
                        rule.name
                    )));
                }
                let path = match self.file_with(config, "breaches")? {
                    Some(p) => p,
                    None => Self::main_file(config)?,
                };
                let doc = self.doc(&path)?;
                let breaches = doc
                    .entry("breaches")
                    .or_insert_with(toml_edit::table)
                    .as_table_like_mut()
                    .ok_or_else(|| AdminError::Invalid("[breaches] is not a table".into()))?;
                return push_table(breaches, "rules", rule.table(), *at);
            }
            Edit::RemoveBreachRule { name } => {
                let path = self
                    .file_with(config, "breaches")?
                    .ok_or_else(|| AdminError::Invalid(format!("no breach rule named {name:?}")))?;
                let doc = self.doc(&path)?;
                let breaches = doc
                    .get_mut("breaches")
                    .and_then(Item::as_table_like_mut)
                    .ok_or_else(|| AdminError::Invalid("[breaches] is not a table".into()))?;
                return remove_table(breaches, "rules", name);
            }
            Edit::AddNeverIntercept { host }
            | Edit::RemoveNeverIntercept { host }
            | Edit::AddInterceptGroup { group: host }
            | Edit::RemoveInterceptGroup { group: host } => {
                let path = self.file_with(config, "proxy")?.ok_or_else(|| {
                    AdminError::Invalid(
                        "there is no [proxy] section: interception lists need the proxy".into(),
                    )
                })?;
                let doc = self.doc(&path)?;
                let proxy = doc
                    .get_mut("proxy")
                    .and_then(Item::as_table_like_mut)
                    .ok_or_else(|| AdminError::Invalid("[proxy] is not a table".into()))?;
                return match edit {
                    Edit::AddNeverIntercept { .. } => add(proxy, "never_intercept", host),
                    Edit::RemoveNeverIntercept { .. } => remove(proxy, "never_intercept", host),
                    Edit::AddInterceptGroup { .. } => add(proxy, "intercept_groups", host),
                    _ => remove(proxy, "intercept_groups", host),
                };
            }
            _ => {}
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
            Edit::AddSchedule { schedule, .. } => {
                if g.schedules.iter().any(|s| s.name == schedule.name) {
                    return Err(AdminError::Invalid(format!(
                        "group {name:?} has a schedule named {:?}",
                        schedule.name
                    )));
                }
                push_table(table, "schedule", schedule.table(), None)
            }
            Edit::RemoveSchedule { name: s, .. } => remove_table(table, "schedule", s),
            _ => Ok(()),
        }
    }
}

/// Adds `t` to the array of tables `key` of `parent` (`[[key]]`, or an inline array of
/// tables), at the end or at `at`.
fn push_table(
    parent: &mut dyn TableLike,
    key: &str,
    t: Table,
    at: Option<usize>,
) -> Result<(), AdminError> {
    match parent.get_mut(key) {
        None => {
            let mut a = ArrayOfTables::new();
            a.push(t);
            parent.insert(key, Item::ArrayOfTables(a));
            Ok(())
        }
        Some(Item::ArrayOfTables(a)) => {
            match at {
                Some(i) if i < a.len() => a.insert(i, t),
                _ => a.push(t),
            }
            Ok(())
        }
        Some(Item::Value(Value::Array(a))) => {
            let v = Value::InlineTable(t.into_inline_table());
            match at {
                Some(i) if i < a.len() => a.insert_formatted(i, v),
                _ => a.push_formatted(v),
            }
            Ok(())
        }
        Some(_) => Err(AdminError::Invalid(format!(
            "{key} is not an array of tables"
        ))),
    }
}

/// Removes the table named `name` from the array of tables `key` of `parent`.
fn remove_table(parent: &mut dyn TableLike, key: &str, name: &str) -> Result<(), AdminError> {
    let missing = || AdminError::Invalid(format!("{key} holds no entry named {name:?}"));
    let named = |t: &dyn TableLike| t.get("name").and_then(Item::as_str) == Some(name);
    match parent.get_mut(key) {
        Some(Item::ArrayOfTables(a)) => {
            let i = a.iter().position(|t| named(t)).ok_or_else(missing)?;
            a.remove(i);
            if a.is_empty() {
                parent.remove(key);
            }
            Ok(())
        }
        Some(Item::Value(Value::Array(a))) => {
            let i = a
                .iter()
                .position(|v| v.as_inline_table().is_some_and(|t| named(t)))
                .ok_or_else(missing)?;
            a.remove(i);
            Ok(())
        }
        _ => Err(missing()),
    }
}

fn set(table: &mut dyn TableLike, key: &str, text: &str) {
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

fn add(table: &mut dyn TableLike, key: &str, text: &str) -> Result<(), AdminError> {
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

fn remove(table: &mut dyn TableLike, key: &str, text: &str) -> Result<(), AdminError> {
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
    // The new first entry of a one-line array loses the space that followed the comma.
    if i == 0
        && let Some(first) = a.iter_mut().next()
        && !first
            .decor()
            .prefix()
            .and_then(|p| p.as_str())
            .is_some_and(|p| p.contains('\n'))
    {
        first.decor_mut().set_prefix("");
    }
    Ok(())
}
