//! Allow entries the illegal tier covers. Nothing overrides the illegal tier, so an allow entry
//! whose own host or URL is on it can never take effect: configuring one is an error, reported
//! with the file and line of the entry (never the entry's text, which would repeat an illegal
//! entry in a log).

use hedgerow_config::{Config, ConfigError, ConfigErrors, ListKind};
use hedgerow_matcher::Matcher;
use hedgerow_model::ListFormat;

use crate::{PolicyError, PolicySnapshot};

/// The reason given for each covered entry.
pub(crate) const COVERED: &str = "has no effect: covered by the illegal tier";

/// The format a group's local entry is read in: with a `/` it is a URL.
fn local_format(text: &str) -> ListFormat {
    if text.contains('/') {
        ListFormat::Urls
    } else {
        ListFormat::Domains
    }
}

/// Every allow entry, in the groups' `allow` arrays and in `allow` list files, that the
/// illegal tier in `matcher` covers (see [`Matcher::illegal_covers`]), as one error per entry.
pub(crate) fn check_allow_entries(config: &Config, matcher: &Matcher) -> Result<(), PolicyError> {
    if matcher.stats().illegal == 0 {
        return Ok(());
    }
    let mut errors = Vec::new();
    for g in &config.groups {
        for e in &g.allow {
            if matcher.illegal_covers(local_format(&e.text), &e.text) {
                errors.push(ConfigError {
                    path: e.location.path.clone(),
                    line: e.location.line,
                    column: e.location.column,
                    reason: format!("group {:?}: allow entry {COVERED}", g.name),
                });
            }
        }
    }
    for list in &config.lists {
        if !matches!(list.kind, ListKind::Allow | ListKind::Approved)
            || ((list.optional || list.fetch.is_some()) && !list.path.is_file())
        {
            continue;
        }
        let lines = matcher
            .illegal_covered_lines(list.format, &list.path)
            .map_err(|source| PolicyError::List {
                list: list.name.clone(),
                source,
            })?;
        errors.extend(lines.into_iter().map(|line| ConfigError {
            path: list.path.clone(),
            line,
            column: 1,
            reason: format!("allow list {:?}: entry {COVERED}", list.name),
        }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(PolicyError::Config(ConfigErrors(errors)))
    }
}

impl PolicySnapshot {
    /// Whether the illegal tier covers a proposed allow entry (a domain, or a URL with a path,
    /// as written in a group's `allow` array): if so, adding it would have no effect.
    pub fn illegal_tier_covers(&self, allow_entry: &str) -> bool {
        self.matcher
            .illegal_covers(local_format(allow_entry), allow_entry)
    }
}
