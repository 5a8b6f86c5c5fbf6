//! The normalised form URL-level lists match on.

use std::fmt;

use crate::Host;

/// A URL reduced to what a URL-level list (such as the IWF list) can name:
/// `host/path?query`, with the scheme, userinfo, port and fragment removed.
///
/// Normalisation (WHATWG parsing through the `url` crate, then two further steps):
/// scheme and host case; IDNA; IPv4 number forms (`http://3232235777/`); default and
/// non-default ports (a listed URL is listed on any port); userinfo; dot segments, also
/// when percent-encoded; backslashes; percent-encoding of unreserved characters
/// (`%41` is `A`) and upper-case hex in the escapes that remain; an empty path is `/`.
/// The path and query keep their case, as servers treat them as case-sensitive.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UrlKey {
    host: Host,
    /// Always starts with `/`; the query, if any, follows with its `?`.
    path_and_query: Box<str>,
}

/// Why a string is not a usable URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    #[error("not a URL: {0}")]
    Syntax(String),
    #[error("URL has no host")]
    NoHost,
    #[error("bad host in URL: {0}")]
    Host(#[from] crate::HostError),
}

impl UrlKey {
    /// Parses `http://…`, `https://…` or a list entry without a scheme (`host/path`).
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let trimmed = input.trim();
        if let Some(scheme) = opaque_scheme(trimmed) {
            return Err(UrlError::Syntax(format!(
                "scheme {scheme:?} is not a web URL"
            )));
        }
        let parsed = if has_scheme(trimmed) {
            url::Url::parse(trimmed)
        } else {
            url::Url::parse(&format!("http://{trimmed}"))
        }
        .map_err(|e| UrlError::Syntax(e.to_string()))?;
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) => Host::parse(d)?,
            Some(url::Host::Ipv4(v4)) => Host::from_ip(v4.into()),
            Some(url::Host::Ipv6(v6)) => Host::from_ip(v6.into()),
            None => return Err(UrlError::NoHost),
        };
        let mut path_and_query = normalise_escapes(parsed.path());
        if path_and_query.is_empty() {
            path_and_query.push('/');
        }
        if let Some(q) = parsed.query() {
            path_and_query.push('?');
            path_and_query.push_str(&normalise_escapes(q));
        }
        Ok(Self {
            host,
            path_and_query: path_and_query.into_boxed_str(),
        })
    }

    /// Builds the key for a host and an origin-form request target (`/path?query`), as a proxy
    /// sees it after CONNECT interception.
    pub fn from_parts(host: &Host, target: &str) -> Result<Self, UrlError> {
        let authority = match host.ip() {
            Some(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => host.to_string(),
        };
        let target = if target.starts_with('/') { target } else { "/" };
        Self::parse(&format!("http://{authority}{target}"))
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `/path?query`, normalised; never empty.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(&self.path_and_query, |(p, _)| p)
    }

    /// The query string without its `?`, if there is one.
    pub fn query(&self) -> Option<&str> {
        self.path_and_query.split_once('?').map(|(_, q)| q)
    }
}

impl fmt::Display for UrlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.host, self.path_and_query)
    }
}

impl fmt::Debug for UrlKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlKey({self})")
    }
}

/// A scheme that is not followed by `//` (`mailto:`, `javascript:`): such a URL has no host.
/// `host:8080/path` is a host and port, not a scheme, so a digit after the colon does not count.
fn opaque_scheme(s: &str) -> Option<&str> {
    let (scheme, rest) = s.split_once(':')?;
    let is_scheme = !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_alphabetic());
    let is_port = rest.bytes().next().is_some_and(|b| b.is_ascii_digit());
    (is_scheme && !is_port && !rest.starts_with("//")).then_some(scheme)
}

fn has_scheme(s: &str) -> bool {
    match s.find("://") {
        Some(i) => {
            i > 0
                && s[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        }
        None => false,
    }
}

/// Decodes `%XX` escapes of unreserved characters (RFC 3986 §2.3) and upper-cases the hex
/// digits of the escapes it keeps (§6.2.2.1), so equivalent spellings compare equal.
fn normalise_escapes(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = if bytes[i] == b'%' && i + 2 < bytes.len() {
            hex(bytes[i + 1]).zip(hex(bytes[i + 2]))
        } else {
            None
        };
        if let Some((hi, lo)) = escape {
            let decoded = hi * 16 + lo;
            if decoded.is_ascii_alphanumeric() || matches!(decoded, b'-' | b'.' | b'_' | b'~') {
                out.push(decoded as char);
            } else {
                out.push('%');
                out.push(bytes[i + 1].to_ascii_uppercase() as char);
                out.push(bytes[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
            continue;
        }
        // Not an escape: copy one whole UTF-8 character.
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(s: &str) -> String {
        UrlKey::parse(s)
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn variations_of_one_url_share_a_key() {
        let want = "example.com/a/b.html";
        for v in [
            "http://example.com/a/b.html",
            "HTTP://EXAMPLE.COM/a/b.html",
            "https://example.com:443/a/b.html",
            "http://example.com:80/a/b.html",
            "http://example.com:8080/a/b.html",
            "http://user:pass@example.com/a/b.html",
            "http://example.com/a/./c/../b.html",
            "http://example.com/a/%2e%2E/a/b.html",
            "http://example.com/%61/b%2Ehtml",
            "http://example.com./a/b.html",
            "http://example.com\\a\\b.html",
            "example.com/a/b.html",
            "http://example.com/a/b.html#frag",
        ] {
            assert_eq!(k(v), want, "{v}");
        }
    }

    #[test]
    fn different_urls_keep_different_keys() {
        // Path case is significant; reserved escapes stay escaped.
        assert_ne!(k("http://example.com/A"), k("http://example.com/a"));
        assert_eq!(k("http://example.com/a%2fb"), "example.com/a%2Fb");
        assert_ne!(k("http://example.com/a%2Fb"), k("http://example.com/a/b"));
        assert_eq!(k("http://example.com/p?q=%7e1"), "example.com/p?q=~1");
    }

    #[test]
    fn hosts_are_normalised_like_host() {
        assert_eq!(k("http://Bücher.example/x"), "xn--bcher-kva.example/x");
        assert_eq!(k("http://3232235777/"), "192.168.1.1/");
        assert_eq!(k("http://[::1]:8080/"), "::1/");
        assert_eq!(k("example.com"), "example.com/");
    }

    #[test]
    fn parts_of_a_key() {
        let u = UrlKey::parse("http://example.com/search?q=cats").unwrap();
        assert_eq!(u.path(), "/search");
        assert_eq!(u.query(), Some("q=cats"));
        let o = UrlKey::from_parts(&Host::parse("example.com").unwrap(), "/x/../y?z").unwrap();
        assert_eq!(o.to_string(), "example.com/y?z");
    }

    #[test]
    fn bad_urls_are_errors() {
        assert!(UrlKey::parse("http://").is_err());
        assert!(UrlKey::parse("mailto:someone@example.com").is_err());
        assert!(UrlKey::parse("http://exa mple.com/").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,120}") {
            let _ = UrlKey::parse(&s);
        }

        #[test]
        fn key_is_a_fixed_point(s in "[a-z]{1,10}\\.[a-z]{2,3}(/[a-zA-Z0-9%._~-]{0,8}){0,4}") {
            if let Ok(once) = UrlKey::parse(&s) {
                let twice = UrlKey::parse(&once.to_string()).unwrap();
                prop_assert_eq!(once.to_string(), twice.to_string());
            }
        }
    }
}
