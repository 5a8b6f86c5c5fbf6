//! Search terms from the major engines' URLs.

/// The search terms in a request to a known search engine, decoded (`+` and `%xx`).
pub(crate) fn search_terms(host: &str, path: &str, query: Option<&str>) -> Option<String> {
    let host = host.trim_start_matches("www.").trim_start_matches("m.");
    let engine = |name: &str| {
        host == name
            || host
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    let search_path = path == "/search" || path.starts_with("/search/");
    let key = if (engine("google") && search_path)
        || (engine("bing.com") && path.starts_with("/search"))
        || (engine("duckduckgo.com") && matches!(path, "/" | "/html/" | "/lite/"))
        || (engine("ecosia.org") && path == "/search")
        || (engine("search.brave.com") && path == "/search")
    {
        "q"
    } else if (engine("youtube.com") || host == "music.youtube.com") && path == "/results" {
        "search_query"
    } else if (host == "search.yahoo.com" || engine("yahoo.com")) && path.starts_with("/search") {
        "p"
    } else {
        return None;
    };
    let query = query?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines() {
        assert_eq!(
            search_terms(
                "www.google.co.uk",
                "/search",
                Some("q=how+to+hurt%20myself&hl=en")
            ),
            Some("how to hurt myself".into())
        );
        assert_eq!(
            search_terms("www.bing.com", "/search", Some("q=a+b")),
            Some("a b".into())
        );
        assert_eq!(
            search_terms("www.youtube.com", "/results", Some("search_query=cats")),
            Some("cats".into())
        );
        assert_eq!(
            search_terms("duckduckgo.com", "/", Some("q=x&t=h_")),
            Some("x".into())
        );
        assert_eq!(
            search_terms("www.ecosia.org", "/search", Some("q=trees")),
            Some("trees".into())
        );
        assert_eq!(
            search_terms("search.yahoo.com", "/search", Some("p=y")),
            Some("y".into())
        );
        assert_eq!(search_terms("www.google.com", "/maps", Some("q=x")), None);
        assert_eq!(search_terms("notgoogle.com", "/search", Some("q=x")), None);
        assert_eq!(search_terms("www.google.com", "/search", Some("q=")), None);
    }
}
