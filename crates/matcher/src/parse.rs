//! Reading list lines: one function per format, each tolerant of the usual comment styles.
//! A bad line is a `Err(reason)`; the reason never repeats the line, so reports about the
//! illegal-content tier cannot leak an entry.

use std::net::IpAddr;

/// Calls `f` for each domain token on a `domains`-format line. Accepts a plain name,
/// `*.name`/`.name`, a hosts-file line (`0.0.0.0 a b`), an adblock rule (`||name^`) and a
/// dnsmasq rule (`address=/a/b/0.0.0.0`, `server=/a/`, `local=/a/`).
pub(crate) fn domain_line<'a>(
    line: &'a str,
    mut f: impl FnMut(&'a str),
) -> Result<(), &'static str> {
    let line = strip_comment(line);
    if line.is_empty() || (line.starts_with('[') && line.ends_with(']')) {
        return Ok(());
    }
    if line.starts_with("@@") {
        return Err("adblock exceptions (@@) are not supported; use an allow list");
    }
    if let Some(rest) = line.strip_prefix("||") {
        if rest.contains('$') {
            return Err("adblock options ($...) are not supported");
        }
        let name = rest.strip_suffix('^').unwrap_or(rest);
        f(domain_token(name)?);
        return Ok(());
    }
    for prefix in ["address=/", "server=/", "local=/"] {
        if let Some(rest) = line.strip_prefix(prefix) {
            let mut parts: Vec<&str> = rest.split('/').collect();
            // The last part is the answer (possibly empty); the others are names.
            parts.pop();
            if parts.is_empty() {
                return Err("dnsmasq rule names no domain");
            }
            for p in parts {
                f(domain_token(p)?);
            }
            return Ok(());
        }
    }
    let mut tokens = line.split_ascii_whitespace();
    let first = tokens.next().unwrap_or_default();
    let rest: Vec<&str> = tokens.collect();
    if rest.is_empty() {
        f(domain_token(first)?);
        return Ok(());
    }
    if first.parse::<IpAddr>().is_err() {
        return Err("expected one name per line, or a hosts-file line starting with an address");
    }
    for name in rest {
        if !is_local_alias(name) {
            f(domain_token(name)?);
        }
    }
    Ok(())
}

fn domain_token(token: &str) -> Result<&str, &'static str> {
    let t = token
        .strip_prefix("*.")
        .or_else(|| token.strip_prefix('.'))
        .unwrap_or(token);
    if t.contains("://") || t.contains('/') {
        return Err("a URL in a domains list (use format = \"urls\")");
    }
    if t.contains('*') {
        return Err("wildcards other than a leading *. are not supported");
    }
    Ok(t)
}

/// Hosts files name the machine itself; those lines are not block entries.
fn is_local_alias(name: &str) -> bool {
    matches!(
        name,
        "localhost"
            | "localhost.localdomain"
            | "local"
            | "broadcasthost"
            | "ip6-localhost"
            | "ip6-loopback"
            | "ip6-localnet"
            | "ip6-mcastprefix"
            | "ip6-allnodes"
            | "ip6-allrouters"
            | "ip6-allhosts"
            | "0.0.0.0"
    )
}

/// The text of a `urls`, `regex` or `phrases` line, or `None` for blank and comment lines.
pub(crate) fn plain_line(line: &str) -> Option<&str> {
    let t = line.trim();
    (!t.is_empty() && !t.starts_with('#')).then_some(t)
}

/// Trims, and drops `#` and `!` comments (whole-line, or after white space).
fn strip_comment(line: &str) -> &str {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with('!') {
        return "";
    }
    let cut = t
        .char_indices()
        .find(|&(i, c)| c == '#' && i > 0 && t[..i].ends_with(|p: char| p.is_ascii_whitespace()))
        .map_or(t.len(), |(i, _)| i);
    t[..cut].trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(line: &str) -> Result<Vec<String>, &'static str> {
        let mut out = Vec::new();
        domain_line(line, |t| out.push(t.to_owned()))?;
        Ok(out)
    }

    #[test]
    fn every_domain_line_style() {
        assert_eq!(tokens("example.com").unwrap(), ["example.com"]);
        assert_eq!(tokens("  *.example.com  # note").unwrap(), ["example.com"]);
        assert_eq!(tokens(".example.com").unwrap(), ["example.com"]);
        assert_eq!(
            tokens("0.0.0.0 a.example b.example").unwrap(),
            ["a.example", "b.example"]
        );
        assert_eq!(tokens("127.0.0.1 localhost").unwrap(), Vec::<String>::new());
        assert_eq!(tokens("||ads.example^").unwrap(), ["ads.example"]);
        assert_eq!(
            tokens("address=/a.example/b.example/0.0.0.0").unwrap(),
            ["a.example", "b.example"]
        );
        assert_eq!(tokens("server=/c.example/").unwrap(), ["c.example"]);
        assert_eq!(tokens("192.0.2.1").unwrap(), ["192.0.2.1"]);
        for skip in ["", "# comment", "! adblock comment", "[Adblock Plus 2.0]"] {
            assert_eq!(tokens(skip).unwrap(), Vec::<String>::new(), "{skip:?}");
        }
    }

    #[test]
    fn bad_domain_lines_say_why() {
        assert!(tokens("||ads.example^$third-party").is_err());
        assert!(tokens("@@||ok.example^").is_err());
        assert!(tokens("example.com/path").is_err());
        assert!(tokens("two names.example here").is_err());
        assert!(tokens("a*b.example").is_err());
    }
}
