//! Host normalisation (`hedgerow_model::Host`, used for every name a list, a query, a CONNECT
//! or an SNI gives) against the `idna` crate's UTS #46 processing of the same text.
//!
//! - A host is a fixed point: parsing its canonical text gives the same host.
//! - Its text is lower-case ASCII without a trailing dot, and every suffix is a host too.
//! - Where `idna` turns the text into a name that fits DNS's limits (253 characters, labels
//!   of 1 to 63 of `a-z 0-9 - _`), `Host` gives that name, or an IP literal.
//! - Where `Host` reads a non-ASCII name, `idna` accepts it and gives the same name. (Plain
//!   ASCII names are taken as DNS carries them: an `xn--` label `idna` would reject still
//!   names a host a resolver can be asked about, so `Host` keeps it.)
#![no_main]

use hedgerow_model::Host;
use libfuzzer_sys::fuzz_target;

fn fits_dns(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let host = Host::parse(s);
    if let Ok(h) = &host {
        let again = Host::parse(h.as_str());
        assert_eq!(
            again.as_ref(),
            Ok(h),
            "not a fixed point: {s:?} gives {h:?}"
        );
        let text = h.as_str();
        assert!(text.is_ascii() && !text.ends_with('.'), "{text:?}");
        assert!(!text.bytes().any(|b| b.is_ascii_uppercase()), "{text:?}");
        for suffix in h.suffixes() {
            assert!(Host::parse(suffix).is_ok(), "suffix {suffix:?} of {text:?}");
        }
    }

    // The text `Host` reads: white space trimmed, one trailing dot dropped.
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let t = t.strip_suffix('.').unwrap_or(t);
    let reference = idna::domain_to_ascii(t);
    match (&host, &reference) {
        (Ok(h), Ok(a)) if !h.is_ip() => {
            assert_eq!(
                h.as_str(),
                a.trim_end_matches('.'),
                "Host and idna differ on {s:?}"
            );
        }
        (Ok(h), Err(e)) if !h.is_ip() && !t.is_ascii() => {
            panic!("Host reads {s:?} as {h:?}, idna refuses it: {e:?}");
        }
        (Err(e), Ok(a)) if fits_dns(a) => {
            panic!("idna reads {s:?} as {a:?}, Host refuses it: {e}");
        }
        _ => {}
    }
});
