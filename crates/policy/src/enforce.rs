//! The enforcement rules both fronts apply besides the verdict, read from the snapshot (so a
//! reload changes them on both fronts at once): whether a group filters, SafeSearch and
//! YouTube steering (the enforcement host an engine's names are sent to), the engines' own
//! SafeSearch parameters inside interception, and which CONNECTs are intercepted. The search
//! engines that cannot be enforced are blocked by [`PolicySnapshot::decide`] itself.
//!
//! The DNS front answers a steered name with a CNAME to its enforcement host; the proxy
//! connects to the enforcement host's addresses instead of the engine's. Both ask
//! [`PolicySnapshot::steer`], so there is one table.

use hedgerow_config::{SafeSearch, YouTubeMode};
use hedgerow_model::{Action, Category, Host, Tier, Verdict};

use crate::{GroupId, PolicySnapshot};

/// The category of search engines whose SafeSearch cannot be enforced (`[safesearch]
/// unenforceable`), blocked for groups with SafeSearch on.
pub const UNENFORCEABLE_CATEGORY: &str = "search-unenforceable";

/// The list name shown for SafeSearch steering and for unenforceable engines.
pub const SAFESEARCH_LIST: &str = "safesearch";

/// The YouTube names Google documents for restricted mode by DNS or by header.
const YOUTUBE_HOSTS: &[&str] = &[
    "www.youtube.com",
    "m.youtube.com",
    "youtube.com",
    "youtubei.googleapis.com",
    "youtube.googleapis.com",
    "www.youtube-nocookie.com",
];

/// A search engine (or YouTube) whose results a group's SafeSearch restricts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Google,
    Bing,
    DuckDuckGo,
    Ecosia,
    Pixabay,
    YouTube,
}

impl Engine {
    /// The engine's name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Google => "google",
            Engine::Bing => "bing",
            Engine::DuckDuckGo => "duckduckgo",
            Engine::Ecosia => "ecosia",
            Engine::Pixabay => "pixabay",
            Engine::YouTube => "youtube",
        }
    }

    /// The engine's own SafeSearch parameters, set on every request to it that the proxy
    /// reads (plain HTTP, or inside interception): the enforcement host already restricts;
    /// these say the same to the engine itself. Ecosia has none that a
    /// URL can carry, and YouTube takes a header instead ([`PolicySnapshot::youtube_restrict`]).
    pub fn parameters(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Engine::Google => &[("safe", "active")],
            Engine::Bing => &[("adlt", "strict")],
            Engine::DuckDuckGo => &[("kp", "1")],
            Engine::Pixabay => &[("safesearch", "true")],
            Engine::Ecosia | Engine::YouTube => &[],
        }
    }
}

/// Where a group's SafeSearch or YouTube mode sends a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steer {
    /// The enforcement host, such as `forcesafesearch.google.com`.
    pub target: &'static str,
    pub engine: Engine,
}

impl Steer {
    /// The verdict an answer or request steered here is logged with (action `rewrite`).
    pub fn verdict(&self) -> Verdict {
        Verdict {
            action: Action::Rewrite,
            tier: Tier::Category,
            category: None,
            list: Some(SAFESEARCH_LIST.into()),
            rule: Some(format!("{} -> {}", self.engine.as_str(), self.target).into()),
        }
    }
}

/// Whether a CONNECT is intercepted, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interception {
    /// Passed through (spliced).
    No,
    /// The group is in `[proxy] intercept_groups` and the host is not in `never_intercept`.
    Group,
    /// The host carries URL-level illegal-tier entries: intercepted for every group, even if
    /// `never_intercept` names it, so those entries apply inside TLS.
    IllegalUrls,
}

impl PolicySnapshot {
    /// Whether `group` filters anything: its clients must not hide names from the filter (the
    /// DNS front strips ECH from answers, the proxy refuses ECH).
    pub fn filters(&self, group: GroupId) -> bool {
        self.group(group)
            .is_some_and(|g| !g.block_categories.is_empty())
    }

    /// Where `group`'s SafeSearch or YouTube mode sends `name` (lower case, no trailing dot),
    /// or `None` when it is not steered.
    pub fn steer(&self, group: GroupId, name: &str) -> Option<Steer> {
        let g = self.group(group)?;
        let steer = |target, engine| Some(Steer { target, engine });
        if g.youtube != YouTubeMode::Off && YOUTUBE_HOSTS.contains(&name) {
            let target = match g.youtube {
                YouTubeMode::Strict => "restrict.youtube.com",
                _ => "restrictmoderate.youtube.com",
            };
            return steer(target, Engine::YouTube);
        }
        if g.safesearch != SafeSearch::On {
            return None;
        }
        if is_google_search(name) {
            return steer("forcesafesearch.google.com", Engine::Google);
        }
        match name {
            "bing.com" | "www.bing.com" => steer("strict.bing.com", Engine::Bing),
            "duckduckgo.com" | "www.duckduckgo.com" | "start.duckduckgo.com" => {
                steer("safe.duckduckgo.com", Engine::DuckDuckGo)
            }
            "ecosia.org" | "www.ecosia.org" => {
                steer("strict-safe-search.ecosia.org", Engine::Ecosia)
            }
            "pixabay.com" | "www.pixabay.com" => steer("safesearch.pixabay.com", Engine::Pixabay),
            _ => None,
        }
    }

    /// The SafeSearch parameters to set on a request to `host` for `group` that the proxy
    /// reads (empty when the host is not an engine the group's SafeSearch steers).
    pub fn search_parameters(
        &self,
        group: GroupId,
        host: &str,
    ) -> &'static [(&'static str, &'static str)] {
        match self.steer(group, host) {
            Some(s) if s.engine != Engine::YouTube => s.engine.parameters(),
            _ => &[],
        }
    }

    /// The `YouTube-Restrict` header value for a request to `host` for `group` inside
    /// interception: `Strict` or `Moderate`, for the YouTube names that DNS steers too.
    pub fn youtube_restrict(&self, group: GroupId, host: &str) -> Option<&'static str> {
        let g = self.group(group)?;
        if !YOUTUBE_HOSTS.contains(&host) {
            return None;
        }
        match g.youtube {
            YouTubeMode::Strict => Some("Strict"),
            YouTubeMode::Moderate => Some("Moderate"),
            YouTubeMode::Off => None,
        }
    }

    /// Whether a CONNECT to `host` (the ClientHello's server name) from `group` is
    /// intercepted, given that the proxy has the school CA to intercept with.
    pub fn interception(&self, group: GroupId, host: &Host) -> Interception {
        if self.matcher.illegal_urls_on(host) {
            return Interception::IllegalUrls;
        }
        let Some(proxy) = &self.config.proxy else {
            return Interception::No;
        };
        let name = self.group_name(group);
        if !proxy.intercept_groups.iter().any(|g| g == name) {
            return Interception::No;
        }
        if proxy
            .never_intercept
            .iter()
            .any(|n| within(host.as_str(), n))
        {
            return Interception::No;
        }
        Interception::Group
    }

    /// The verdict blocking `host` for `group` as a search engine whose SafeSearch cannot be
    /// enforced: only for groups with SafeSearch on, for the engines in `[safesearch]
    /// unenforceable` and their subdomains.
    pub(crate) fn unenforceable(&self, group: GroupId, host: &Host) -> Option<Verdict> {
        let g = self.group(group)?;
        if g.safesearch != SafeSearch::On || host.is_ip() {
            return None;
        }
        let name = host.as_str();
        let engine = self
            .config
            .safesearch
            .unenforceable
            .iter()
            .find(|e| within(name, e))?;
        Some(Verdict {
            action: Action::Block,
            tier: Tier::Category,
            category: Category::new(UNENFORCEABLE_CATEGORY).ok(),
            list: Some(SAFESEARCH_LIST.into()),
            rule: Some(format!("{engine} (SafeSearch cannot be enforced)").into()),
        })
    }
}

/// Whether `host` is `domain` or below it (at a label boundary).
pub(crate) fn within(host: &str, domain: &str) -> bool {
    host.strip_suffix(domain)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
}

/// `google.<tld>` and `www.google.<tld>` for every country domain Google serves search on:
/// `com`, `cat`, a two-letter ccTLD, or `co.`/`com.` and a two-letter ccTLD.
fn is_google_search(name: &str) -> bool {
    let rest = name.strip_prefix("www.").unwrap_or(name);
    let Some(tld) = rest.strip_prefix("google.") else {
        return false;
    };
    let cc = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_lowercase());
    match tld {
        "com" | "cat" => true,
        t if cc(t) => true,
        t => t
            .strip_prefix("co.")
            .or_else(|| t.strip_prefix("com."))
            .is_some_and(cc),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn snapshot(extra: &str) -> PolicySnapshot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("iwf.txt"), "illegal.example/a.html\n").unwrap();
        let text = format!(
            r#"
[server]
state_dir = "{0}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "127.0.0.1:53" }}]

[lists.iwf]
path = "{0}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[groups.safe]
networks = ["10.1.0.0/16"]
block_categories = []
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[groups.moderate]
networks = ["10.2.0.0/16"]
block_categories = []
safesearch = "off"
youtube = "moderate"
dns_block = "nxdomain"

[groups.open]
networks = ["10.3.0.0/16"]
block_categories = []
safesearch = "off"
youtube = "off"
dns_block = "nxdomain"
{extra}
"#,
            dir.path().display(),
        );
        let path = dir.path().join("hedgerow.toml");
        std::fs::write(&path, text).unwrap();
        let config = hedgerow_config::load(&path).unwrap();
        PolicySnapshot::build(config).unwrap()
    }

    #[test]
    fn google_country_domains_are_recognised() {
        for yes in [
            "www.google.com",
            "google.com",
            "www.google.co.uk",
            "google.de",
            "www.google.com.au",
            "www.google.cat",
        ] {
            assert!(is_google_search(yes), "{yes}");
        }
        for no in [
            "mail.google.com",
            "google.example.com",
            "www.google.company",
            "googlee.com",
            "forcesafesearch.google.com",
            "www.google.co.uk.evil",
        ] {
            assert!(!is_google_search(no), "{no}");
        }
    }

    #[test]
    fn every_engine_is_steered_for_safesearch_groups_only() {
        let s = snapshot("");
        let (safe, moderate, open) = (
            s.group_id("safe").unwrap(),
            s.group_id("moderate").unwrap(),
            s.group_id("open").unwrap(),
        );
        for (name, target, engine) in [
            (
                "www.google.co.uk",
                "forcesafesearch.google.com",
                Engine::Google,
            ),
            ("www.bing.com", "strict.bing.com", Engine::Bing),
            ("duckduckgo.com", "safe.duckduckgo.com", Engine::DuckDuckGo),
            (
                "www.ecosia.org",
                "strict-safe-search.ecosia.org",
                Engine::Ecosia,
            ),
            ("pixabay.com", "safesearch.pixabay.com", Engine::Pixabay),
            ("www.youtube.com", "restrict.youtube.com", Engine::YouTube),
            ("youtube.com", "restrict.youtube.com", Engine::YouTube),
        ] {
            assert_eq!(
                s.steer(safe, name),
                Some(Steer { target, engine }),
                "{name}"
            );
            assert_eq!(
                s.steer(open, name),
                None,
                "{name} for a group without SafeSearch"
            );
        }
        assert_eq!(
            s.steer(moderate, "m.youtube.com").map(|s| s.target),
            Some("restrictmoderate.youtube.com")
        );
        assert_eq!(s.steer(moderate, "www.google.com"), None);
        assert_eq!(s.steer(safe, "mail.google.com"), None);
        assert_eq!(s.steer(safe, "music.youtube.com"), None);
    }

    #[test]
    fn parameters_and_header_follow_the_group() {
        let s = snapshot("");
        let (safe, moderate, open) = (
            s.group_id("safe").unwrap(),
            s.group_id("moderate").unwrap(),
            s.group_id("open").unwrap(),
        );
        assert_eq!(
            s.search_parameters(safe, "www.google.com"),
            &[("safe", "active")]
        );
        assert_eq!(
            s.search_parameters(safe, "www.bing.com"),
            &[("adlt", "strict")]
        );
        assert_eq!(s.search_parameters(safe, "duckduckgo.com"), &[("kp", "1")]);
        assert!(s.search_parameters(open, "www.google.com").is_empty());
        assert!(s.search_parameters(safe, "www.youtube.com").is_empty());
        assert_eq!(s.youtube_restrict(safe, "www.youtube.com"), Some("Strict"));
        assert_eq!(
            s.youtube_restrict(moderate, "youtube.com"),
            Some("Moderate")
        );
        assert_eq!(s.youtube_restrict(open, "www.youtube.com"), None);
        assert_eq!(s.youtube_restrict(safe, "www.google.com"), None);
    }

    #[test]
    fn unenforceable_engines_are_blocked_with_safesearch_on_only() {
        let s = snapshot("");
        let now = jiff::Timestamp::now();
        let (safe, open) = (s.group_id("safe").unwrap(), s.group_id("open").unwrap());
        for name in [
            "search.yahoo.com",
            "uk.search.yahoo.com",
            "search.brave.com",
            "www.startpage.com",
        ] {
            let host = Host::parse(name).unwrap();
            let v = s.decide(safe, crate::Target::Host(&host), now);
            assert!(v.is_blocked(), "{name}: {v:?}");
            assert_eq!(
                v.category.as_ref().map(|c| c.as_str()),
                Some(UNENFORCEABLE_CATEGORY)
            );
            let v = s.decide(open, crate::Target::Host(&host), now);
            assert!(
                !v.is_blocked(),
                "{name} for a group without SafeSearch: {v:?}"
            );
        }
        for name in ["yahoo.com", "news.yahoo.com", "www.google.com", "brave.com"] {
            let host = Host::parse(name).unwrap();
            assert!(
                !s.decide(safe, crate::Target::Host(&host), now).is_blocked(),
                "{name}"
            );
        }
    }

    #[test]
    fn the_unenforceable_list_is_configurable() {
        let s = snapshot("\n[safesearch]\nunenforceable = [\"Search.Example\"]\n");
        let now = jiff::Timestamp::now();
        let safe = s.group_id("safe").unwrap();
        let listed = Host::parse("www.search.example").unwrap();
        assert!(
            s.decide(safe, crate::Target::Host(&listed), now)
                .is_blocked()
        );
        let default = Host::parse("search.yahoo.com").unwrap();
        assert!(
            !s.decide(safe, crate::Target::Host(&default), now)
                .is_blocked()
        );
    }
}
