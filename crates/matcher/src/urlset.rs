//! URL-level entries, by host, and the path-boundary rule they share with the illegal tier.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use hedgerow_model::UrlKey;

/// True when `b` ends a path component for prefix matching: anything but an unreserved
/// character or `%`. So `/a` is a prefix of `/a/b`, `/a?x` and `/a;x`, not of `/ab`.
pub(crate) fn is_boundary(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%'))
}

/// Whether entry path `entry` matches request path `request` as a prefix.
pub(crate) fn prefix_matches(entry: &str, request: &str) -> bool {
    if !request.starts_with(entry) {
        return false;
    }
    entry.len() == request.len()
        || entry.ends_with('/')
        || request
            .as_bytes()
            .get(entry.len())
            .is_some_and(|&b| is_boundary(b))
}

/// `www.example.com` and `example.com` name one site for URL entries, as in squidGuard.
pub(crate) fn site_host(host: &str) -> &str {
    host.strip_prefix("www.")
        .filter(|h| h.contains('.'))
        .unwrap_or(host)
}

struct UrlEntry {
    path_and_query: Box<str>,
    exact: bool,
    value: u32,
    /// The entry as it reads in the list, normalised: the rule shown in verdicts.
    rule: Box<str>,
}

#[derive(Default)]
pub(crate) struct UrlSet {
    by_host: HashMap<Box<str>, Vec<UrlEntry>, RandomState>,
    len: usize,
}

impl UrlSet {
    pub(crate) fn insert(&mut self, key: &UrlKey, exact: bool, value: u32) {
        let host = site_host(key.host().as_str());
        let entries = self.by_host.entry(host.into()).or_default();
        if entries.iter().any(|e| {
            e.value == value && e.exact == exact && *e.path_and_query == *key.path_and_query()
        }) {
            return;
        }
        entries.push(UrlEntry {
            path_and_query: key.path_and_query().into(),
            exact,
            value,
            rule: key.to_string().into(),
        });
        self.len += 1;
    }

    /// Calls `f(value, rule, matched_len)` for each entry that matches `url`.
    pub(crate) fn for_each_match<'a>(
        &'a self,
        url: &UrlKey,
        mut f: impl FnMut(u32, &'a str, usize),
    ) {
        let Some(entries) = self.by_host.get(site_host(url.host().as_str())) else {
            return;
        };
        let request = url.path_and_query();
        for e in entries {
            let hit = if e.exact {
                *e.path_and_query == *request
            } else {
                prefix_matches(&e.path_and_query, request)
            };
            if hit {
                f(e.value, &e.rule, e.path_and_query.len());
            }
        }
    }

    /// Calls `f(value, rule)` for each entry listed under `host` (`www.` ignored), whatever
    /// its path.
    pub(crate) fn for_each_on_host<'a>(&'a self, host: &str, mut f: impl FnMut(u32, &'a str)) {
        if let Some(entries) = self.by_host.get(site_host(host)) {
            for e in entries {
                f(e.value, &e.rule);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.by_host
            .iter()
            .map(|(k, v)| {
                k.len()
                    + 48
                    + v.iter()
                        .map(|e| e.path_and_query.len() + e.rule.len() + 48)
                        .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_needs_a_boundary() {
        assert!(prefix_matches("/a", "/a"));
        assert!(prefix_matches("/a", "/a/b"));
        assert!(prefix_matches("/a", "/a?x=1"));
        assert!(prefix_matches("/a/", "/a/b"));
        assert!(prefix_matches("/watch?v=abc", "/watch?v=abc&t=1"));
        assert!(!prefix_matches("/a", "/ab"));
        assert!(!prefix_matches("/watch?v=abc", "/watch?v=abcd"));
        assert!(!prefix_matches("/a/b", "/a"));
    }

    #[test]
    fn www_is_one_site() {
        assert_eq!(site_host("www.example.com"), "example.com");
        assert_eq!(site_host("example.com"), "example.com");
        assert_eq!(site_host("www.com"), "www.com");
    }
}
