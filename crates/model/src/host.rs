//! Host names and IP literals, normalised once.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest host name in presentation form, without the trailing dot (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// A host as matching code sees it: either a DNS name in canonical form (lower-case ASCII,
/// IDNA A-labels, no trailing dot) or an IP literal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Host {
    text: Box<str>,
    ip: Option<IpAddr>,
}

/// Why a string is not a usable host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error("empty host name")]
    Empty,
    #[error("host name longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong,
    #[error("character {0:?} is not allowed in a host name")]
    BadChar(char),
    #[error("not a valid internationalised name")]
    Idna,
}

impl Host {
    /// Parses and normalises a host: trims ASCII white space, drops one trailing dot and
    /// surrounding brackets of an IPv6 literal, lower-cases, converts Unicode labels to
    /// A-labels and recognises IPv4/IPv6 literals.
    pub fn parse(input: &str) -> Result<Self, HostError> {
        let trimmed = input.trim_matches(|c: char| c.is_ascii_whitespace());
        let s = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if s.is_empty() {
            return Err(HostError::Empty);
        }
        let unbracketed = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(s);
        if let Ok(v6) = unbracketed.parse::<Ipv6Addr>() {
            return Ok(Self::from_ip(IpAddr::V6(v6)));
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Self::from_ip(IpAddr::V4(v4)));
        }
        let mut ascii = String::with_capacity(s.len());
        // From the trimmed text, so that one trailing dot is dropped, not two (`a..` has an
        // empty label).
        normalise_name_into(trimmed, &mut ascii)?;
        // A name that normalises to an address (full-width digits, say) is that address: one
        // host has one form, so parsing a host's text gives the same host back.
        if let Ok(v4) = ascii.parse::<Ipv4Addr>() {
            return Ok(Self::from_ip(IpAddr::V4(v4)));
        }
        Ok(Self {
            text: ascii.into_boxed_str(),
            ip: None,
        })
    }

    /// A host for an IP address; IPv6 is shown without brackets.
    pub fn from_ip(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        Self {
            text: ip.to_string().into_boxed_str(),
            ip: Some(ip),
        }
    }

    /// The canonical text: `example.com`, `xn--bcher-kva.example`, `192.0.2.1` or `2001:db8::1`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The address, if this host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// True for IP literals.
    pub fn is_ip(&self) -> bool {
        self.ip.is_some()
    }

    /// The name and each parent at a label boundary, longest first:
    /// `a.b.example.com`, `b.example.com`, `example.com`, `com`. An IP literal yields only itself.
    pub fn suffixes(&self) -> Suffixes<'_> {
        Suffixes {
            rest: Some(&self.text),
            is_ip: self.is_ip(),
        }
    }

    /// Number of labels (an IP literal counts as one).
    pub fn label_count(&self) -> usize {
        if self.is_ip() {
            1
        } else {
            1 + self.text.bytes().filter(|&b| b == b'.').count()
        }
    }
}

/// Iterator over a host's suffixes at label boundaries; see [`Host::suffixes`].
#[derive(Debug, Clone)]
pub struct Suffixes<'a> {
    rest: Option<&'a str>,
    is_ip: bool,
}

impl<'a> Iterator for Suffixes<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let current = self.rest?;
        // A plain byte loop: names are short, and memchr's set-up costs more than it saves.
        self.rest = if self.is_ip {
            None
        } else {
            current
                .as_bytes()
                .iter()
                .position(|&b| b == b'.')
                .and_then(|i| current.get(i + 1..))
        };
        Some(current)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Host({})", self.text)
    }
}

impl std::str::FromStr for Host {
    type Err = HostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for Host {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Host {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Host::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Normalises a DNS name (not an IP literal) into `out`, which is cleared first: lower-case,
/// one trailing dot dropped, Unicode labels to A-labels, then checked for length and alphabet.
///
/// This is the one normalisation used everywhere; [`Host::parse`] calls it. It is exposed so
/// that list loaders can normalise millions of names into one reused buffer.
pub fn normalise_name_into(input: &str, out: &mut String) -> Result<(), HostError> {
    out.clear();
    let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.bytes().all(is_plain_host_byte) {
        out.extend(s.bytes().map(|b| b.to_ascii_lowercase() as char));
    } else if s.is_ascii() {
        // ASCII with a character outside the host alphabet: say which one.
        let bad = s
            .chars()
            .find(|c| !is_plain_host_byte(*c as u8))
            .unwrap_or('?');
        return Err(HostError::BadChar(bad));
    } else {
        out.push_str(&idna::domain_to_ascii(s).map_err(|_| HostError::Idna)?);
    }
    validate_name(out)
}

fn is_plain_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
}

fn validate_name(name: &str) -> Result<(), HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(HostError::TooLong);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::LabelTooLong);
        }
        if let Some(bad) = label.chars().find(|c| !is_plain_host_byte(*c as u8)) {
            return Err(HostError::BadChar(bad));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> String {
        Host::parse(s)
            .map(|h| h.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn case_and_trailing_dot_are_folded() {
        assert_eq!(h("WWW.Example.COM."), "www.example.com");
        assert_eq!(h("  example.com \n"), "example.com");
    }

    #[test]
    fn unicode_and_a_label_forms_agree() {
        assert_eq!(h("Bücher.example"), "xn--bcher-kva.example");
        assert_eq!(h("xn--bcher-kva.example"), "xn--bcher-kva.example");
        assert_eq!(h("ПРИМЕР.рф"), h("пример.рф"));
    }

    #[test]
    fn ip_literals_are_recognised() {
        let v4 = Host::parse("192.0.2.1").unwrap();
        assert!(v4.is_ip());
        let v6 = Host::parse("[2001:DB8::1]").unwrap();
        assert_eq!(v6.as_str(), "2001:db8::1");
        assert!(v6.is_ip());
        // An IPv4-mapped IPv6 address is the IPv4 address.
        assert_eq!(h("::ffff:192.0.2.1"), "192.0.2.1");
        // A name made of digits with too many parts is a name, not an address.
        assert!(!Host::parse("1.2.3.4.5").unwrap().is_ip());
    }

    #[test]
    fn bad_hosts_are_rejected_with_a_reason() {
        assert_eq!(Host::parse(""), Err(HostError::Empty));
        assert_eq!(Host::parse("."), Err(HostError::Empty));
        assert_eq!(Host::parse("a..b"), Err(HostError::EmptyLabel));
        assert_eq!(Host::parse("exa mple.com"), Err(HostError::BadChar(' ')));
        assert_eq!(Host::parse("evil.com/path"), Err(HostError::BadChar('/')));
        assert_eq!(
            Host::parse(&format!("{}.com", "a".repeat(64))),
            Err(HostError::LabelTooLong)
        );
        assert_eq!(Host::parse(&"a.".repeat(130)), Err(HostError::TooLong));
    }

    /// Found by fuzzing (fuzz/fuzz_targets/host.rs): `1.21.92.2..` lost both trailing dots and
    /// became a name spelled like an address, and parsing that text gave the address, another
    /// host; `0X..` became the name `0x`, which WHATWG reads as the address 0.0.0.0.
    #[test]
    fn a_host_is_a_fixed_point_with_one_trailing_dot_dropped() {
        assert_eq!(Host::parse("1.21.92.2.."), Err(HostError::EmptyLabel));
        assert_eq!(Host::parse("0X.."), Err(HostError::EmptyLabel));
        assert_eq!(h("example.com."), "example.com");
        let full_width = Host::parse("１.２.３.４").unwrap();
        assert!(full_width.is_ip());
        assert_eq!(full_width, Host::parse("1.2.3.4").unwrap());
        assert_eq!(Host::parse(full_width.as_str()).unwrap(), full_width);
    }

    #[test]
    fn suffixes_walk_label_boundaries() {
        let host = Host::parse("a.b.example.com").unwrap();
        let all: Vec<_> = host.suffixes().collect();
        assert_eq!(
            all,
            ["a.b.example.com", "b.example.com", "example.com", "com"]
        );
        let ip = Host::parse("10.1.2.3").unwrap();
        assert_eq!(ip.suffixes().collect::<Vec<_>>(), ["10.1.2.3"]);
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(s in "[a-zA-Z0-9.\\-_]{1,80}") {
            if let Ok(once) = Host::parse(&s) {
                let twice = Host::parse(once.as_str()).unwrap();
                prop_assert_eq!(once, twice);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,100}") {
            let _ = Host::parse(&s);
        }

        #[test]
        fn case_never_matters(s in "[a-z0-9]{1,20}(\\.[a-z0-9]{1,20}){0,4}") {
            let upper = s.to_ascii_uppercase();
            prop_assert_eq!(Host::parse(&s).ok(), Host::parse(&upper).ok());
        }
    }
}
