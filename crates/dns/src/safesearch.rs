//! SafeSearch enforcement by DNS: each engine's hosts are answered as a CNAME to the engine's
//! enforcement host, which serves only filtered results.

use hedgerow_config::{Group, SafeSearch, YouTubeMode};

/// The enforcement host for `name` under `group`'s policy, with the engine's name for logs.
pub(crate) fn rewrite(name: &str, group: &Group) -> Option<(&'static str, &'static str)> {
    if group.youtube != YouTubeMode::Off && is_youtube(name) {
        let target = match group.youtube {
            YouTubeMode::Strict => "restrict.youtube.com",
            _ => "restrictmoderate.youtube.com",
        };
        return Some((target, "youtube"));
    }
    if group.safesearch != SafeSearch::On {
        return None;
    }
    if is_google_search(name) {
        return Some(("forcesafesearch.google.com", "google"));
    }
    match name {
        "bing.com" | "www.bing.com" => Some(("strict.bing.com", "bing")),
        "duckduckgo.com" | "www.duckduckgo.com" | "start.duckduckgo.com" => {
            Some(("safe.duckduckgo.com", "duckduckgo"))
        }
        "ecosia.org" | "www.ecosia.org" => Some(("strict-safe-search.ecosia.org", "ecosia")),
        "pixabay.com" | "www.pixabay.com" => Some(("safesearch.pixabay.com", "pixabay")),
        _ => None,
    }
}

fn is_youtube(name: &str) -> bool {
    matches!(
        name,
        "www.youtube.com"
            | "m.youtube.com"
            | "youtubei.googleapis.com"
            | "youtube.googleapis.com"
            | "www.youtube-nocookie.com"
    )
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
    use super::*;

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
}
