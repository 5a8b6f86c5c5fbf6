//! Property tests: every spelling a browser, curl or a crafted request can give of a URL list
//! entry matches as the entry does (in the illegal tier and in category lists alike), and
//! siblings that only share a prefix with it do not, however they are spelled.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hedgerow_matcher::{ListSpec, Matcher, MatcherBuilder};
use hedgerow_model::{Category, ListFormat, ListKind, Severity, UrlKey, UrlMatch};
use proptest::prelude::*;

/// Internationalised labels, in Unicode and A-label form.
const IDN: [(&str, &str); 3] = [
    ("bücher", "xn--bcher-kva"),
    ("пример", "xn--e1afmkfd"),
    ("münchen", "xn--mnchen-3ya"),
];

#[derive(Debug, Clone)]
enum Label {
    Ascii(String),
    /// An index into [`IDN`].
    Idn(usize),
}

/// A URL list entry, as parts, so that it can be spelled many ways.
#[derive(Debug, Clone)]
struct Entry {
    www: bool,
    labels: Vec<Label>,
    tld: String,
    segments: Vec<String>,
    /// Ends with `/`: everything under a directory.
    dir: bool,
    /// Pairs; a space in a value is written `+` in the entry.
    query: Vec<(String, String)>,
    /// IDN labels in Unicode in the entry (else A-labels), and whether it has `http://`.
    unicode: bool,
    scheme: bool,
}

impl Entry {
    fn host(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.www {
            parts.push("www".into());
        }
        for l in &self.labels {
            parts.push(match l {
                Label::Ascii(a) => a.clone(),
                Label::Idn(i) if self.unicode => IDN[*i].0.into(),
                Label::Idn(i) => IDN[*i].1.into(),
            });
        }
        parts.push(self.tld.clone());
        parts.join(".")
    }

    fn path_and_query(&self) -> String {
        let mut s = String::new();
        for seg in &self.segments {
            s.push('/');
            s.push_str(seg);
        }
        if self.dir || self.segments.is_empty() {
            s.push('/');
        }
        if !self.query.is_empty() {
            s.push('?');
            let pairs: Vec<String> = self
                .query
                .iter()
                .map(|(k, v)| format!("{k}={}", v.replace(' ', "+")))
                .collect();
            s.push_str(&pairs.join("&"));
        }
        s
    }

    /// The line as a list would hold it.
    fn text(&self) -> String {
        format!(
            "{}{}{}",
            if self.scheme { "http://" } else { "" },
            self.host(),
            self.path_and_query()
        )
    }
}

fn label() -> impl Strategy<Value = Label> {
    prop_oneof![
        // Hyphens in the third and fourth places make a label IDNA reserves (`xn--`, `ab--`),
        // which no list entry can be: such labels are left out.
        4 => "[a-z0-9][a-z0-9-]{0,6}[a-z0-9]"
            .prop_filter("IDNA-reserved label", |l| l.get(2..4) != Some("--"))
            .prop_map(Label::Ascii),
        1 => (0..IDN.len()).prop_map(Label::Idn),
    ]
}

prop_compose! {
    fn entry()(
        www in prop::bool::weighted(0.2),
        labels in prop::collection::vec(label(), 1..3),
        tld in prop::sample::select(vec!["invalid", "example", "test", "uk"]),
        // A segment starts with a letter or digit, so it is never a dot segment.
        segments in prop::collection::vec("[A-Za-z0-9][A-Za-z0-9._~!$'()*,=:@&+-]{0,7}", 0..4),
        dir in any::<bool>(),
        query in prop::collection::vec(("[a-z]{1,4}", "[A-Za-z0-9._~!$()*,:@/? -]{0,6}"), 0..3),
        unicode in any::<bool>(),
        scheme in any::<bool>(),
    ) -> Entry {
        Entry { www, labels, tld: tld.into(), segments, dir, query, unicode, scheme }
    }
}

/// Choices for one spelling, drawn from random bytes (so proptest can shrink them).
struct Dice<'a> {
    bytes: &'a [u8],
    next: usize,
}

impl Dice<'_> {
    fn roll(&mut self, n: usize) -> usize {
        let b = self.bytes.get(self.next % self.bytes.len().max(1)).copied();
        self.next += 1;
        usize::from(b.unwrap_or(0)) % n
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.roll(n) == 0
    }

    fn pick<'s>(&mut self, of: &[&'s str]) -> &'s str {
        of[self.roll(of.len())]
    }
}

/// `%XX` for a byte, in random hex case.
fn escape(b: u8, dice: &mut Dice<'_>) -> String {
    let e = format!("%{b:02X}");
    if dice.one_in(2) {
        e.to_ascii_lowercase()
    } else {
        e
    }
}

fn random_case(s: &str, dice: &mut Dice<'_>) -> String {
    s.chars()
        .map(|c| {
            if dice.one_in(3) {
                c.to_uppercase().collect::<String>()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Writes `text` with some characters percent-encoded (they all mean the same encoded).
fn some_escaped(text: &str, dice: &mut Dice<'_>) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii() && dice.one_in(4) {
            out.push_str(&escape(c as u8, dice));
        } else {
            out.push(c);
        }
    }
    out
}

/// Which readings a spelling may rely on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// WHATWG's, plus the merges every server makes: all lists match it.
    Url,
    /// Also `%2F` for `/` and `;` parameters: only the illegal tier tries these.
    Server,
}

/// One spelling of the entry's URL (or of `path_and_query` on its host, for siblings).
fn spell(e: &Entry, path_and_query: &str, dice: &mut Dice<'_>, reading: Reading) -> String {
    let mut s = String::new();
    let scheme = dice.pick(&[
        "",
        "http://",
        "https://",
        "HTTP://",
        "hTtPs://",
        "http:",
        "http:\\\\",
        "http:///",
    ]);
    s.push_str(scheme);
    if !scheme.is_empty() {
        s.push_str(dice.pick(&["", "", "user@", "user:pw@", "u%40x:p@"]));
    }
    // The host: www. added or dropped, case, escapes, IDN form, a trailing dot.
    let www = if e.labels.is_empty() {
        e.www
    } else if dice.one_in(4) {
        !e.www
    } else {
        e.www
    };
    let mut labels: Vec<String> = Vec::new();
    if www {
        labels.push(random_case("www", dice));
    }
    for l in &e.labels {
        labels.push(match l {
            Label::Ascii(a) if dice.one_in(5) => some_escaped(a, dice),
            Label::Ascii(a) => random_case(a, dice),
            Label::Idn(i) if dice.one_in(2) => random_case(IDN[*i].0, dice),
            Label::Idn(i) => random_case(IDN[*i].1, dice),
        });
    }
    labels.push(random_case(&e.tld, dice));
    s.push_str(&labels.join("."));
    if dice.one_in(5) {
        s.push('.');
    }
    s.push_str(dice.pick(&["", "", "", ":80", ":443", ":8080", ":3128"]));
    // The path: separators as slash runs or backslashes, dot segments, escapes, tabs.
    let (path, query) = path_and_query
        .split_once('?')
        .map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let sep = if i > 0 && reading == Reading::Server && dice.one_in(4) {
            dice.pick(&["%2F", "%2f", "%5C", ";jsessionid=A1/", ";v=2/"])
        } else {
            dice.pick(&["/", "/", "/", "//", "\\", "/\\", "///"])
        };
        s.push_str(sep);
        if dice.one_in(4) {
            s.push_str(dice.pick(&[
                "./",
                "%2e/",
                "%2E/",
                "x/../",
                "zz/%2E%2e/",
                "q/.%2e/",
                "\t./",
            ]));
        }
        let mut seg = some_escaped(seg, dice);
        if dice.one_in(8) {
            seg.insert(
                seg.len() / 2,
                dice.pick(&["\t", "\n"]).chars().next().unwrap(),
            );
        }
        s.push_str(&seg);
    }
    // The query: escapes, a space as + or %20; or an empty query; and a fragment.
    match query {
        Some(q) => {
            s.push('?');
            for part in q.split_inclusive(['&', '=']) {
                let (body, delim) = match part.strip_suffix(['&', '=']) {
                    Some(b) => (b, &part[b.len()..]),
                    None => (part, ""),
                };
                // `+` is a space here, and a space is `+` or `%20`; any other character may
                // be escaped.
                for (i, word) in body.split('+').enumerate() {
                    if i > 0 {
                        s.push_str(dice.pick(&["+", "%20"]));
                    }
                    s.push_str(&some_escaped(word, dice));
                }
                s.push_str(delim);
            }
        }
        None if dice.one_in(3) => s.push('?'),
        None => {}
    }
    if dice.one_in(4) {
        s.push_str(dice.pick(&["#", "#frag", "#a/../b?c"]));
    }
    s
}

fn list_spec(kind: ListKind, exact: bool) -> ListSpec {
    ListSpec {
        name: "list".into(),
        kind,
        format: ListFormat::Urls,
        category: Category::new("child-abuse").ok(),
        url_match: if exact {
            UrlMatch::Exact
        } else {
            UrlMatch::Prefix
        },
        severity: Severity::Critical,
    }
}

/// The entry in an illegal list and in a category list, matched exactly or as a prefix.
fn lists(e: &Entry, exact: bool) -> Matcher {
    let mut b = MatcherBuilder::new();
    for kind in [ListKind::Illegal, ListKind::Block] {
        let r = b
            .add_lines(list_spec(kind, exact), "test", [e.text()])
            .unwrap();
        assert_eq!(r.entries, 1, "{}: {:?}", e.text(), r.bad_lines);
    }
    b.build().unwrap()
}

fn illegal(m: &Matcher, spelling: &str) -> bool {
    UrlKey::parse(spelling).is_ok_and(|k| m.illegal_url(&k).is_some())
}

fn category(m: &Matcher, spelling: &str) -> bool {
    let Ok(k) = UrlKey::parse(spelling) else {
        return false;
    };
    let mut hit = false;
    m.url_hits(&k, |_| hit = true);
    hit
}

/// Siblings of the entry: they share a prefix with it (or differ only in one letter's case)
/// but name another resource.
fn siblings(e: &Entry) -> Vec<String> {
    let pq = e.path_and_query();
    let (path, query) = pq
        .split_once('?')
        .map_or((&*pq, None), |(p, q)| (p, Some(q)));
    let with_query = |p: String| match query {
        Some(q) => format!("{p}?{q}"),
        None => p,
    };
    let mut out = Vec::new();
    if let Some(stem) = path.strip_suffix('/') {
        if !stem.is_empty() {
            // /dir/ against /dir-other/x and /dir2/.
            out.push(format!("{stem}-other/x"));
            out.push(format!("{stem}2/"));
        }
    } else {
        // /page against /page2 and /page.bak.
        out.push(with_query(format!("{path}2")));
        out.push(with_query(format!("{path}.bak")));
    }
    if let Some(q) = query.filter(|q| !q.ends_with('/')) {
        // ?v=abc against ?v=abcd (an entry ending in `/` covers all below it).
        out.push(format!("{path}?{q}d"));
    }
    // One letter of the path in the other case.
    if let Some(i) = path.find(|c: char| c.is_ascii_alphabetic()) {
        let mut p = path.to_owned();
        let c = p.remove(i);
        let flipped = if c.is_ascii_lowercase() {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        };
        p.insert(i, flipped);
        out.push(with_query(p));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_spelling_of_an_entry_matches_and_gets_its_key(
        e in entry(),
        exact in any::<bool>(),
        dice in prop::collection::vec(any::<u8>(), 96),
    ) {
        let m = lists(&e, exact);
        let entry_key = UrlKey::parse(&e.text()).unwrap();
        let mut dice = Dice { bytes: &dice, next: 0 };
        let spelling = spell(&e, &e.path_and_query(), &mut dice, Reading::Url);
        let key = UrlKey::parse(&spelling)
            .map_err(|err| TestCaseError::fail(format!("{spelling:?}: {err}")))?;
        // One key, but for www., which is one site to URL lists, not one host.
        let www = |k: &UrlKey| k.host().as_str().strip_prefix("www.").unwrap_or(k.host().as_str()).to_owned();
        prop_assert_eq!(www(&key), www(&entry_key), "{:?} of {}", spelling, e.text());
        prop_assert_eq!(key.path_and_query(), entry_key.path_and_query(), "{:?} of {}", spelling, e.text());
        // The reference: the WHATWG parser's reading of the spelling has the same key.
        let has_scheme = spelling.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("http:"))
            || spelling.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("https:"));
        let reference = if has_scheme { spelling.clone() } else { format!("http://{spelling}") };
        let whatwg = url::Url::parse(&reference)
            .map_err(|err| TestCaseError::fail(format!("{spelling:?}: WHATWG says {err}")))?;
        prop_assert_eq!(UrlKey::parse(whatwg.as_str()).ok(), Some(key), "{:?} read by WHATWG as {}", spelling, whatwg.as_str());
        prop_assert!(illegal(&m, &spelling), "illegal tier missed {:?} of {} (exact: {})", spelling, e.text(), exact);
        prop_assert!(category(&m, &spelling), "category list missed {:?} of {} (exact: {})", spelling, e.text(), exact);
    }

    #[test]
    fn spellings_servers_read_as_the_entry_reach_the_illegal_tier(
        e in entry(),
        exact in any::<bool>(),
        dice in prop::collection::vec(any::<u8>(), 96),
    ) {
        let m = lists(&e, exact);
        let mut dice = Dice { bytes: &dice, next: 0 };
        let spelling = spell(&e, &e.path_and_query(), &mut dice, Reading::Server);
        prop_assert!(illegal(&m, &spelling), "illegal tier missed {:?} of {} (exact: {})", spelling, e.text(), exact);
    }

    #[test]
    fn siblings_that_share_a_prefix_do_not_match_however_spelled(
        e in entry(),
        exact in any::<bool>(),
        dice in prop::collection::vec(any::<u8>(), 96),
    ) {
        let m = lists(&e, exact);
        let mut dice = Dice { bytes: &dice, next: 0 };
        for sibling in siblings(&e) {
            for reading in [Reading::Url, Reading::Server] {
                let spelling = spell(&e, &sibling, &mut dice, reading);
                prop_assert!(!illegal(&m, &spelling), "illegal tier matched {:?}, a sibling of {} (exact: {})", spelling, e.text(), exact);
                prop_assert!(!category(&m, &spelling), "category list matched {:?}, a sibling of {} (exact: {})", spelling, e.text(), exact);
            }
        }
        // Another site: a subdomain other than www., and a longer name.
        let host = e.host();
        let bare = host.strip_prefix("www.").unwrap_or(&host);
        for other in [format!("cdn.{bare}"), format!("x{bare}")] {
            let u = format!("http://{other}{}", e.path_and_query());
            prop_assert!(!illegal(&m, &u), "{} matched {}", u, e.text());
        }
    }

    /// The documented difference between the two modes: a prefix entry covers what is below
    /// it and any query; an exact entry only itself (an empty query or a fragment aside).
    #[test]
    fn prefix_entries_cover_what_is_below_them_exact_ones_do_not(
        e in entry(),
        dice in prop::collection::vec(any::<u8>(), 96),
    ) {
        let prefix = lists(&e, false);
        let exact = lists(&e, true);
        let mut dice = Dice { bytes: &dice, next: 0 };
        let pq = e.path_and_query();
        let below = if pq.contains('?') {
            format!("{pq}&more=1")
        } else if e.dir || e.segments.is_empty() {
            format!("{pq}deeper/page")
        } else {
            format!("{pq}/deeper")
        };
        let spelling = spell(&e, &below, &mut dice, Reading::Url);
        prop_assert!(illegal(&prefix, &spelling), "{:?} under {}", spelling, e.text());
        prop_assert!(!illegal(&exact, &spelling), "{:?} under exact {}", spelling, e.text());
    }
}
