//! Loading lists into a builder, and the compiled, immutable [`Matcher`].

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hedgerow_model::{
    Category, Host, ListFormat, ListKind, Severity, UrlKey, UrlMatch, normalise_name_into,
};
use regex::{RegexSet, RegexSetBuilder};

use crate::domainset::{DomainSet, DomainSetBuilder};
use crate::illegal::{IllegalHit, IllegalKey, IllegalSet, IllegalTier};
use crate::phrases::{PhraseSet, PhraseSetBuilder};
use crate::urlset::UrlSet;

/// Index of a list in the matcher, in the order lists were added.
pub type ListId = u16;

/// Bit set in a stored value when it indexes a multi-list set rather than naming one list.
const MULTI: u32 = 1 << 31;
/// Size limits for technician-written regular expressions.
const REGEX_SIZE_LIMIT: usize = 16 << 20;
/// Bad lines kept per list for reporting; the count goes on past it.
const MAX_REPORTED_BAD_LINES: usize = 200;

/// What a list is, as the matcher needs to know it.
#[derive(Debug, Clone)]
pub struct ListSpec {
    pub name: Arc<str>,
    pub kind: ListKind,
    pub format: ListFormat,
    pub category: Option<Category>,
    pub url_match: UrlMatch,
    pub severity: Severity,
}

/// The outcome of loading one list: how many entries it gave, and each bad line.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub list: Arc<str>,
    pub origin: String,
    pub entries: usize,
    /// At most 200 are kept; `bad_line_count` has the total.
    pub bad_lines: Vec<BadLine>,
    pub bad_line_count: usize,
}

/// A line that could not be read, by number and reason. The line's text is not kept, so a
/// report about the illegal-content tier cannot reveal an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

/// A list that could not be loaded at all. (A list with some bad lines loads; see
/// [`LoadReport`].)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("too many lists (at most {})", ListId::MAX / 2)]
    TooManyLists,
    #[error("regular expressions: {0}")]
    Regex(String),
    #[error("phrases: {0}")]
    Phrases(String),
    #[error("list {0:?} is not an illegal-tier list")]
    NotIllegal(String),
}

/// How specific a hit is, for weighing an allow-list hit against a category hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchLevel {
    /// A domain suffix with this many labels.
    Domain { labels: u8 },
    /// A regular expression over the host or URL.
    Regex,
    /// A URL entry; `path_len` is the length of the matched path.
    Url { path_len: u16 },
}

impl MatchLevel {
    /// Larger is more specific: any URL entry beats any regex, which beats any domain entry;
    /// a longer domain suffix or URL path beats a shorter one.
    pub fn specificity(self) -> u32 {
        match self {
            MatchLevel::Domain { labels } => u32::from(labels),
            MatchLevel::Regex => 1_000,
            MatchLevel::Url { path_len } => 2_000 + u32::from(path_len),
        }
    }
}

/// One list that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit<'a> {
    pub list: ListId,
    /// The rule that matched: the domain suffix, the normalised URL entry or the pattern.
    pub rule: &'a str,
    pub level: MatchLevel,
}

/// A phrase found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseHit<'a> {
    pub list: ListId,
    pub phrase: &'a str,
    pub severity: Severity,
}

/// Sizes, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatcherStats {
    pub domains: usize,
    pub urls: usize,
    pub illegal: usize,
    pub regexes: usize,
    pub phrases: usize,
    /// Approximate heap bytes of the domain set.
    pub domain_bytes: usize,
    pub url_bytes: usize,
}

/// Collects lists; [`MatcherBuilder::build`] compiles them.
pub struct MatcherBuilder {
    lists: Vec<ListSpec>,
    /// Sets of lists that share a name, for stored values with the `MULTI` bit.
    sets: Vec<Box<[ListId]>>,
    domains: DomainSetBuilder,
    urls: UrlSet,
    illegal: IllegalTier,
    regexes: Vec<(String, ListId)>,
    phrases: PhraseSetBuilder,
    name_buf: String,
}

impl Default for MatcherBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MatcherBuilder {
    /// A builder with fresh random keys for the domain hashes and the illegal tier.
    pub fn new() -> Self {
        Self::with_illegal_key(IllegalKey::random())
    }

    /// A builder whose illegal tier is hashed under `key` (the appliance's kept key), so
    /// its hashes can be compared with, and replaced by, a set kept from an earlier load.
    pub fn with_illegal_key(key: IllegalKey) -> Self {
        Self {
            lists: Vec::new(),
            sets: Vec::new(),
            domains: DomainSetBuilder::new(rand::random()),
            urls: UrlSet::default(),
            illegal: IllegalTier::new(key),
            regexes: Vec::new(),
            phrases: PhraseSetBuilder::new(),
            name_buf: String::new(),
        }
    }

    /// Loads a list file (plain or gzip, detected from its first bytes).
    pub fn add_file(&mut self, spec: ListSpec, path: &Path) -> Result<LoadReport, ListError> {
        let io = |source| ListError::Io {
            path: path.to_owned(),
            source,
        };
        if spec.format == ListFormat::Domains && spec.kind != ListKind::Illegal {
            // Counting lines first costs a second read but lets the table be sized once:
            // the build then holds the table and nothing else (no array of pending hashes,
            // no rehash), which halves its peak memory.
            let lines = count_lines(open_list(path).map_err(io)?).map_err(io)?;
            self.domains.reserve(lines);
        }
        let reader = open_list(path).map_err(io)?;
        self.add_reader(spec, path.display().to_string(), reader)
            .map_err(io)
    }

    /// Adds an illegal-tier list from a set kept from an earlier load (hashed under this
    /// builder's key): the last good copy, used when the list's file is missing, empty or
    /// much smaller than before.
    pub fn add_illegal_set(
        &mut self,
        spec: ListSpec,
        origin: &str,
        set: &IllegalSet,
    ) -> Result<LoadReport, ListError> {
        if spec.kind != ListKind::Illegal {
            return Err(ListError::NotIllegal(spec.name.to_string()));
        }
        let id = self.register(spec)?;
        self.illegal.insert_set(set, id);
        let mut report = self.report(id, origin);
        report.entries = set.entries();
        Ok(report)
    }

    /// The hashed entries an illegal-tier list added, by its name (empty if none).
    pub fn illegal_set(&self, list: &str) -> IllegalSet {
        self.lists
            .iter()
            .position(|l| &*l.name == list && l.kind == ListKind::Illegal)
            .and_then(|i| ListId::try_from(i).ok())
            .map(|id| self.illegal.set_of(id))
            .unwrap_or_default()
    }

    /// Loads entries given in memory (a group's local entries, tests).
    pub fn add_lines<S: AsRef<str>>(
        &mut self,
        spec: ListSpec,
        origin: &str,
        lines: impl IntoIterator<Item = S>,
    ) -> Result<LoadReport, ListError> {
        let id = self.register(spec)?;
        let mut report = self.report(id, origin);
        for (i, line) in lines.into_iter().enumerate() {
            self.add_line(id, i + 1, line.as_ref(), &mut report);
        }
        Ok(report)
    }

    fn add_reader(
        &mut self,
        spec: ListSpec,
        origin: String,
        mut reader: impl BufRead,
    ) -> Result<LoadReport, std::io::Error> {
        let id = self
            .register(spec)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut report = self.report(id, &origin);
        let mut buf = Vec::with_capacity(256);
        let mut line_no = 0;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf)? == 0 {
                break;
            }
            line_no += 1;
            match std::str::from_utf8(&buf) {
                Ok(line) => self.add_line(id, line_no, line, &mut report),
                Err(_) => bad(&mut report, line_no, "not UTF-8".into()),
            }
        }
        Ok(report)
    }

    fn register(&mut self, spec: ListSpec) -> Result<ListId, ListError> {
        let id = ListId::try_from(self.lists.len()).map_err(|_| ListError::TooManyLists)?;
        if id >= ListId::MAX / 2 {
            return Err(ListError::TooManyLists);
        }
        self.lists.push(spec);
        Ok(id)
    }

    fn report(&self, id: ListId, origin: &str) -> LoadReport {
        LoadReport {
            list: self.lists[usize::from(id)].name.clone(),
            origin: origin.to_owned(),
            entries: 0,
            bad_lines: Vec::new(),
            bad_line_count: 0,
        }
    }

    fn add_line(&mut self, id: ListId, line_no: usize, line: &str, report: &mut LoadReport) {
        let spec = &self.lists[usize::from(id)];
        let (kind, format, exact) = (spec.kind, spec.format, spec.url_match == UrlMatch::Exact);
        let illegal = kind == ListKind::Illegal;
        match format {
            ListFormat::Domains => {
                let mut tokens = Vec::new();
                if let Err(reason) = crate::parse::domain_line(line, |t| tokens.push(t)) {
                    bad(report, line_no, reason.into());
                    return;
                }
                for token in tokens {
                    match self.normalise(token) {
                        Ok(()) => {
                            if illegal {
                                self.illegal.insert_domain(&self.name_buf, id);
                            } else {
                                let sets = &mut self.sets;
                                self.domains
                                    .insert(&self.name_buf, u32::from(id), |old, new| {
                                        merge_lists(sets, old, new)
                                    });
                            }
                            report.entries += 1;
                        }
                        Err(reason) => bad(report, line_no, reason),
                    }
                }
            }
            ListFormat::Urls => {
                let Some(text) = crate::parse::plain_line(line) else {
                    return;
                };
                match UrlKey::parse(text) {
                    Ok(key) => {
                        if illegal {
                            self.illegal.insert_url(&key, exact, id);
                        } else {
                            self.urls.insert(&key, exact, u32::from(id));
                        }
                        report.entries += 1;
                    }
                    Err(e) => bad(report, line_no, format!("not a URL: {e}")),
                }
            }
            ListFormat::Regex => {
                let Some(text) = crate::parse::plain_line(line) else {
                    return;
                };
                match regex::RegexBuilder::new(text)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                {
                    Ok(_) => {
                        self.regexes.push((text.to_owned(), id));
                        report.entries += 1;
                    }
                    Err(e) => bad(report, line_no, format!("bad regular expression: {e}")),
                }
            }
            ListFormat::Phrases => {
                let Some(text) = crate::parse::plain_line(line) else {
                    return;
                };
                if self.phrases.insert(text, id) {
                    report.entries += 1;
                } else {
                    bad(report, line_no, "phrase has no letters or digits".into());
                }
            }
        }
    }

    /// Normalises a domain token into `name_buf`; IP literals are kept in canonical form.
    fn normalise(&mut self, token: &str) -> Result<(), String> {
        normalise_domain_token(token, &mut self.name_buf)
    }

    /// Compiles everything added so far into a [`Matcher`].
    pub fn build(self) -> Result<Matcher, ListError> {
        let mut sets = self.sets;
        let mut domains = self.domains;
        domains.flush(|old, new| merge_lists(&mut sets, old, new));
        let domains = domains.build();
        let regex = if self.regexes.is_empty() {
            None
        } else {
            let set = RegexSetBuilder::new(self.regexes.iter().map(|(p, _)| p))
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| ListError::Regex(e.to_string()))?;
            Some(set)
        };
        let phrases = self
            .phrases
            .build()
            .map_err(|e| ListError::Phrases(e.to_string()))?;
        Ok(Matcher {
            lists: self.lists,
            sets,
            domains,
            urls: self.urls,
            illegal: self.illegal,
            regex,
            regex_rules: self.regexes,
            phrases,
        })
    }
}

/// Normalises a domain token into `out`; IP literals are kept in canonical form.
fn normalise_domain_token(token: &str, out: &mut String) -> Result<(), String> {
    if (token.bytes().any(|b| b == b':') || token.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        && let Ok(host) = Host::parse(token)
        && host.is_ip()
    {
        out.clear();
        out.push_str(host.as_str());
        return Ok(());
    }
    normalise_name_into(token, out).map_err(|e| e.to_string())
}

/// Opens a list file, through a gzip decoder when it starts with the gzip magic bytes.
fn open_list(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    let file = std::fs::File::open(path)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::GzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    })
}

/// Lines in a list (the last may lack its newline): an upper bound on its entries.
fn count_lines(mut reader: Box<dyn BufRead>) -> std::io::Result<usize> {
    let mut lines = 0;
    let mut last = b'\n';
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        lines += buf.iter().filter(|&&b| b == b'\n').count();
        last = buf[buf.len() - 1];
        let n = buf.len();
        reader.consume(n);
    }
    Ok(lines + usize::from(last != b'\n'))
}

/// The stored value for a name already stored as `old` that list `new` also names.
fn merge_lists(sets: &mut Vec<Box<[ListId]>>, old: u32, new: u32) -> u32 {
    if old == new {
        return old;
    }
    let mut ids: Vec<ListId> = if old & MULTI == 0 {
        ListId::try_from(old).into_iter().collect()
    } else {
        sets.get((old & !MULTI) as usize)
            .map_or_else(Vec::new, |s| s.to_vec())
    };
    ids.extend(ListId::try_from(new));
    ids.sort_unstable();
    ids.dedup();
    if let [single] = ids[..] {
        return u32::from(single);
    }
    let idx = sets.iter().position(|s| **s == *ids).unwrap_or_else(|| {
        sets.push(ids.into_boxed_slice());
        sets.len() - 1
    });
    MULTI | idx as u32
}

fn bad(report: &mut LoadReport, line: usize, reason: String) {
    report.bad_line_count += 1;
    if report.bad_lines.len() < MAX_REPORTED_BAD_LINES {
        report.bad_lines.push(BadLine { line, reason });
    }
}

/// The compiled lists. Immutable; share it behind an `Arc` and swap whole snapshots.
pub struct Matcher {
    lists: Vec<ListSpec>,
    sets: Vec<Box<[ListId]>>,
    domains: DomainSet,
    urls: UrlSet,
    illegal: IllegalTier,
    regex: Option<RegexSet>,
    regex_rules: Vec<(String, ListId)>,
    phrases: PhraseSet,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately shows sizes only: never entries, and never the illegal tier's keys.
        f.debug_struct("Matcher")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Matcher {
    /// A matcher with no lists.
    pub fn empty() -> Self {
        // Building an empty builder cannot fail: no regexes and no phrases to compile.
        match MatcherBuilder::new().build() {
            Ok(m) => m,
            Err(_) => unreachable!("an empty matcher always builds"),
        }
    }

    pub fn lists(&self) -> &[ListSpec] {
        &self.lists
    }

    pub fn list(&self, id: ListId) -> Option<&ListSpec> {
        self.lists.get(usize::from(id))
    }

    pub fn stats(&self) -> MatcherStats {
        MatcherStats {
            domains: self.domains.len(),
            urls: self.urls.len(),
            illegal: self.illegal.len(),
            regexes: self.regex_rules.len(),
            phrases: self.phrases.len(),
            domain_bytes: self.domains.heap_bytes(),
            url_bytes: self.urls.heap_bytes(),
        }
    }

    /// The illegal-tier list that lists this host or a parent of it (domain entries only:
    /// a host that carries URL-level entries is not blocked whole).
    pub fn illegal_host(&self, host: &Host) -> Option<IllegalHit> {
        self.illegal.match_host(host)
    }

    /// The illegal-tier list that lists this URL (by domain, exact URL or path prefix).
    pub fn illegal_url(&self, url: &UrlKey) -> Option<IllegalHit> {
        self.illegal.match_url(url)
    }

    /// Whether URL-level illegal-tier entries are listed under this host: the proxy
    /// intercepts such hosts so the entries apply inside TLS.
    pub fn illegal_urls_on(&self, host: &Host) -> bool {
        self.illegal.has_url_entries(host)
    }

    /// Whether the illegal tier covers the entry on one line of a `domains` or `urls` list
    /// (read as the builder reads it): every request the entry would match is one the
    /// illegal tier blocks anyway, because the entry's own host or URL is on it. An allow
    /// entry like that can never take effect. A line of another format, a comment or a line
    /// that does not parse is not covered. A hosts-file line is covered when any of its
    /// names is.
    ///
    /// Illegal entries are keyed hashes, so this is the lookup a request makes: the entry's
    /// host (and its parents) against domain entries, its URL against exact and prefix URL
    /// entries. An allow entry for a host on which some URL is listed is not covered, and
    /// cannot be found out: the tier cannot be walked.
    pub fn illegal_covers(&self, format: ListFormat, line: &str) -> bool {
        if self.illegal.is_empty() {
            return false;
        }
        match format {
            ListFormat::Domains => {
                let mut tokens = Vec::new();
                if crate::parse::domain_line(line, |t| tokens.push(t)).is_err() {
                    return false;
                }
                let mut name = String::new();
                tokens.into_iter().any(|t| {
                    normalise_domain_token(t, &mut name).is_ok()
                        && Host::parse(&name).is_ok_and(|h| self.illegal.match_host(&h).is_some())
                })
            }
            ListFormat::Urls => crate::parse::plain_line(line)
                .and_then(|t| UrlKey::parse(t).ok())
                .is_some_and(|k| self.illegal.match_url(&k).is_some()),
            ListFormat::Regex | ListFormat::Phrases => false,
        }
    }

    /// The 1-based numbers of the lines of the list file at `path` (plain or gzip) whose
    /// entries the illegal tier covers; see [`Matcher::illegal_covers`].
    pub fn illegal_covered_lines(
        &self,
        format: ListFormat,
        path: &Path,
    ) -> Result<Vec<usize>, ListError> {
        let io = |source| ListError::Io {
            path: path.to_owned(),
            source,
        };
        let mut covered = Vec::new();
        if self.illegal.is_empty() || !matches!(format, ListFormat::Domains | ListFormat::Urls) {
            return Ok(covered);
        }
        let mut reader = open_list(path).map_err(io)?;
        let mut buf = Vec::with_capacity(256);
        let mut line_no = 0;
        loop {
            buf.clear();
            if reader.read_until(b'\n', &mut buf).map_err(io)? == 0 {
                break;
            }
            line_no += 1;
            if let Ok(line) = std::str::from_utf8(&buf)
                && self.illegal_covers(format, line)
            {
                covered.push(line_no);
            }
        }
        Ok(covered)
    }

    /// Calls `f` for every domain-level and regex hit on `host`, longest suffix first.
    pub fn host_hits<'a>(&'a self, host: &'a Host, mut f: impl FnMut(Hit<'a>)) {
        self.domain_hits(host, &mut f);
        self.regex_hits(host.as_str(), &mut f);
    }

    fn domain_hits<'a>(&'a self, host: &'a Host, f: &mut impl FnMut(Hit<'a>)) {
        let labels = host.label_count();
        self.domains
            .for_each_listed(host.suffixes(), |i, suffix, value| {
                let level = MatchLevel::Domain {
                    labels: u8::try_from(labels.saturating_sub(i)).unwrap_or(u8::MAX),
                };
                for list in self.expand(value) {
                    f(Hit {
                        list,
                        rule: suffix,
                        level,
                    });
                }
            });
    }

    /// Calls `f` for every hit on `url`: its host's domain hits, URL entries and regexes over
    /// `host/path?query`.
    pub fn url_hits<'a>(&'a self, url: &'a UrlKey, mut f: impl FnMut(Hit<'a>)) {
        self.domain_hits(url.host(), &mut f);
        self.urls.for_each_match(url, |value, rule, len| {
            let level = MatchLevel::Url {
                path_len: u16::try_from(len).unwrap_or(u16::MAX),
            };
            for list in self.expand(value) {
                f(Hit { list, rule, level });
            }
        });
        if self.regex.is_some() {
            self.regex_hits(&url.to_string(), &mut f);
        }
    }

    /// Calls `f` for every URL entry listed under `host` (its pages, whatever their path), as
    /// hits at the URL level: for asking whether a host carries entries of some list.
    pub fn url_entries_on<'a>(&'a self, host: &Host, mut f: impl FnMut(Hit<'a>)) {
        self.urls.for_each_on_host(host.as_str(), |value, rule| {
            for list in self.expand(value) {
                f(Hit {
                    list,
                    rule,
                    level: MatchLevel::Url { path_len: 0 },
                });
            }
        });
    }

    /// Each phrase from a phrase list found in `text` (a search term, a URL, a page title).
    pub fn phrase_hits(&self, text: &str) -> Vec<PhraseHit<'_>> {
        self.phrases
            .matches(text)
            .into_iter()
            .map(|(list, phrase)| PhraseHit {
                list,
                phrase,
                severity: self
                    .lists
                    .get(usize::from(list))
                    .map_or(Severity::Medium, |l| l.severity),
            })
            .collect()
    }

    fn regex_hits<'a>(&'a self, text: &str, f: &mut impl FnMut(Hit<'a>)) {
        let Some(set) = &self.regex else {
            return;
        };
        for i in set.matches(text).iter() {
            if let Some((pattern, list)) = self.regex_rules.get(i) {
                f(Hit {
                    list: *list,
                    rule: pattern,
                    level: MatchLevel::Regex,
                });
            }
        }
    }

    fn expand(&self, value: u32) -> impl Iterator<Item = ListId> + '_ {
        let (single, multi): (Option<ListId>, &[ListId]) = if value & MULTI == 0 {
            (ListId::try_from(value).ok(), &[])
        } else {
            let idx = (value & !MULTI) as usize;
            (None, self.sets.get(idx).map_or(&[][..], |s| &s[..]))
        };
        single.into_iter().chain(multi.iter().copied())
    }
}
