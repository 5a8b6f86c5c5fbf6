//! What a list is and how its lines are read: shared by the configuration and the matcher.

/// How each line of a list file is read. Any file may be gzip-compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListFormat {
    /// One domain per line, as a plain name, a hosts-file line (`0.0.0.0 name`), an adblock
    /// line (`||name^`), `*.name`, or a dnsmasq `address=/name/…` line. Blocks the name and
    /// every name under it.
    Domains,
    /// One URL per line, with or without a scheme (`host/path`).
    Urls,
    /// One regular expression per line, matched against `host/path?query`.
    Regex,
    /// One phrase per line, matched with obfuscation undone.
    Phrases,
}

/// What a list does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ListKind {
    /// A category list; groups choose which categories they block.
    Block,
    /// Must-allow sites; beat category entries that are no more specific.
    Allow,
    /// Sites approved for approved-only groups (walled gardens) that name the list in their
    /// `approved_lists`. No effect on any other group: unlike an allow list, it never lets a
    /// filtered group past a category it blocks.
    Approved,
    /// The illegal-content tier: held only as keyed hashes, always blocked, never overridden.
    Illegal,
}

/// How a URL entry matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UrlMatch {
    /// The entry and anything below it at a path boundary (`/a` matches `/a/b` and `/a?x`,
    /// not `/ab`).
    Prefix,
    /// Only the exact URL (after normalisation).
    Exact,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}
