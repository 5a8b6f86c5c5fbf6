//! The probe set: the school's own test entries (the appliance's addresses, each group's
//! source address and what the school expects for it, the canaries, its own lists), read from
//! a TOML file, and expanded with the built-in corpus into the probes to send.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::CheckError;

/// The probe-set file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSet {
    pub appliance: ApplianceAddrs,
    #[serde(default)]
    pub corpus: CorpusConfig,
    #[serde(default)]
    pub canaries: Vec<Canary>,
    #[serde(default)]
    pub circumvention: CircumventionConfig,
    pub groups: BTreeMap<String, GroupProbe>,
    /// The folder relative paths are read from (the file's own).
    #[serde(skip)]
    pub base: PathBuf,
}

/// Where the appliance answers, as a client sees it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplianceAddrs {
    /// The DNS resolver (UDP).
    pub dns: SocketAddr,
    /// The web proxy; without it the proxy path is not tested.
    #[serde(default)]
    pub proxy: Option<SocketAddr>,
    /// The block page's addresses: a DNS answer with one of them is a block.
    #[serde(default)]
    pub blockpage: Vec<IpAddr>,
    /// DNS queries a second from each source address (the appliance rate-limits each
    /// client; stay under its `rate_limit_qps`). 0: no pacing.
    #[serde(default = "default_rate")]
    pub dns_rate: u32,
    /// Probes in flight at once for each group and path.
    #[serde(default = "default_parallel")]
    pub parallel: usize,
    /// How long to wait for one answer, e.g. "3s".
    #[serde(default = "default_timeout")]
    pub timeout: String,
    /// The port search URLs are asked on through the proxy (80 on a real network).
    #[serde(default = "default_http_port")]
    pub http_port: u16,
}

fn default_rate() -> u32 {
    150
}
fn default_parallel() -> usize {
    16
}
fn default_timeout() -> String {
    "3s".into()
}
fn default_http_port() -> u16 {
    80
}

/// The corpus of category samples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusConfig {
    /// Use the built-in samples ([`builtin_category`], [`BUILTIN_ALLOW`]).
    #[serde(default = "yes")]
    pub builtin: bool,
    /// The school's own samples: category → a file or several (one name or URL a line,
    /// `#` comments).
    #[serde(default)]
    pub lists: BTreeMap<String, Files>,
    /// The school's must-allow samples (education and top sites), files as above.
    #[serde(default)]
    pub allow_lists: Vec<PathBuf>,
    /// At most this many samples per category and file (0: all).
    #[serde(default)]
    pub sample: usize,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        Self {
            builtin: true,
            lists: BTreeMap::new(),
            allow_lists: Vec::new(),
            sample: 0,
        }
    }
}

/// One file or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Files {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl Files {
    pub fn paths(&self) -> &[PathBuf] {
        match self {
            Files::One(p) => std::slice::from_ref(p),
            Files::Many(v) => v,
        }
    }
}

fn yes() -> bool {
    true
}

/// A canary: a test entry every filtering group must block (Test Filtering's checks).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// What the canary is, as the report shows it ("IWF test URL").
    pub name: String,
    /// A host name (tested on both paths) or an `http://` URL (the proxy path only: DNS does
    /// not see paths, and the IWF asks that hosts carrying listed URLs are not blocked whole).
    pub target: String,
    pub kind: CanaryKind,
    /// Only these groups (default: every group with `canaries = true`), for a canary of a
    /// category some groups do not block.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

/// What a canary stands for. Illegal-tier canaries are never shown in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CanaryKind {
    /// The IWF's test URLs and the police (CTIRU) test entries.
    Illegal,
    Adult,
    Profanity,
    Other,
}

impl CanaryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryKind::Illegal => "illegal",
            CanaryKind::Adult => "adult",
            CanaryKind::Profanity => "profanity",
            CanaryKind::Other => "other",
        }
    }
}

/// The circumvention probes' settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircumventionConfig {
    /// An allowed HTTPS site the TLS probes open tunnels to (ECH, SNI differing, and the
    /// control that an ordinary handshake gets through).
    #[serde(default = "default_tls_host")]
    pub tls_host: String,
    #[serde(default = "default_tls_port")]
    pub tls_port: u16,
    /// An address for the IP-literal probes (a CONNECT to an address, not a name).
    #[serde(default = "default_ip_literal")]
    pub ip_literal: IpAddr,
}

impl Default for CircumventionConfig {
    fn default() -> Self {
        Self {
            tls_host: default_tls_host(),
            tls_port: default_tls_port(),
            ip_literal: default_ip_literal(),
        }
    }
}

fn default_tls_host() -> String {
    "www.bbc.co.uk".into()
}
fn default_tls_port() -> u16 {
    443
}
fn default_ip_literal() -> IpAddr {
    IpAddr::from([1, 1, 1, 1])
}

/// One group as the school expects it to be filtered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupProbe {
    /// The address its devices send from (the check binds it: a loopback alias, or run
    /// the check on a device in that network).
    pub source: IpAddr,
    /// A DNS address for this group only (groups chosen by listen address).
    #[serde(default)]
    pub dns: Option<SocketAddr>,
    /// Categories that must be blocked.
    #[serde(default)]
    pub block: Vec<String>,
    /// Categories that must load.
    #[serde(default)]
    pub allow: Vec<String>,
    /// The must-allow sample: absent, the built-in education and top sites and the school's
    /// allow lists; or exactly these names (an approved-only group's approved sites).
    #[serde(default)]
    pub must_allow: Option<Vec<String>>,
    /// SafeSearch enforced on Google and Bing.
    #[serde(default = "yes")]
    pub safesearch: bool,
    /// YouTube restriction: "strict", "moderate" or "off".
    #[serde(default = "default_youtube")]
    pub youtube: String,
    /// The canaries and the circumvention defences apply.
    #[serde(default = "yes")]
    pub canaries: bool,
    #[serde(default = "yes")]
    pub circumvention: bool,
    /// The TLS probes' site for this group (an approved site for a walled garden).
    #[serde(default)]
    pub tls_host: Option<String>,
}

fn default_youtube() -> String {
    "strict".into()
}

/// The two ways a device's traffic reaches the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    Dns,
    Proxy,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Dns => "dns",
            Via::Proxy => "proxy",
        }
    }
}

/// What part of the check a probe belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    Canary,
    Category,
    MustAllow,
    #[serde(rename = "safesearch")]
    SafeSearch,
    Circumvention,
}

impl Section {
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Canary => "canary",
            Section::Category => "category",
            Section::MustAllow => "must-allow",
            Section::SafeSearch => "safesearch",
            Section::Circumvention => "circumvention",
        }
    }
}

/// What should happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "expect", content = "to")]
pub enum Expect {
    Block,
    Allow,
    /// Steered to one of these (SafeSearch hosts, or markers of a steered search).
    Steer(Vec<String>),
    /// A TLS tunnel closed before the site answers.
    Refuse,
    /// A TLS tunnel the site answers through.
    Open,
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Block => f.write_str("blocked"),
            Expect::Allow => f.write_str("allowed"),
            Expect::Steer(to) => write!(f, "steered to {}", to.join(" or ")),
            Expect::Refuse => f.write_str("tunnel closed"),
            Expect::Open => f.write_str("tunnel open"),
        }
    }
}

/// What a probe sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A DNS query for an A record.
    Dns(String),
    /// `CONNECT host:443` through the proxy, nothing more.
    Connect(String),
    /// `GET url` through the proxy.
    Get(String),
    /// `CONNECT host:port`, then a ClientHello with `sni` (none: no SNI) and an ECH
    /// extension when `ech`.
    Tls {
        host: String,
        port: u16,
        sni: Option<String>,
        ech: bool,
    },
}

/// One probe.
#[derive(Debug, Clone)]
pub struct Probe {
    pub group: String,
    pub source: IpAddr,
    pub dns: SocketAddr,
    pub via: Via,
    pub section: Section,
    /// The category (category samples), or the canary's kind.
    pub category: Option<String>,
    pub action: Action,
    /// The target as every output shows it: an illegal-tier canary's is withheld.
    pub shown: String,
    pub expect: Expect,
}

/// Well-known sites in each category. A school adds its own with `[corpus] lists`.
pub fn builtin_category(category: &str) -> &'static [&'static str] {
    match category {
        "adult" | "pornography" => &["pornhub.com", "xvideos.com", "xhamster.com"],
        "gambling" => &["bet365.com", "paddypower.com"],
        "games" => &["roblox.com", "fortnite.com", "miniclip.com"],
        "social" | "social-networking" => &[
            "tiktok.com",
            "instagram.com",
            "snapchat.com",
            "facebook.com",
        ],
        "circumvention" => &[
            "dns.google",
            "cloudflare-dns.com",
            "mozilla.cloudflare-dns.com",
            "nordvpn.com",
            "hidemyass.com",
            "proxysite.com",
        ],
        _ => &[],
    }
}

/// Education and safeguarding sites every filtered group must reach.
pub const BUILTIN_ALLOW: &[&str] = &[
    "bbc.co.uk",
    "www.bbc.co.uk",
    "gov.uk",
    "www.nspcc.org.uk",
    "www.childline.org.uk",
    "www.thenational.academy",
    "scratch.mit.edu",
];

/// DNS-over-HTTPS provider names (the proxy and DNS paths), beyond the circumvention list's.
pub const DOH_NAMES: &[&str] = &[
    "dns.google",
    "cloudflare-dns.com",
    "mozilla.cloudflare-dns.com",
];

/// Names browsers and Apple devices ask before using their own encrypted DNS or relay:
/// the appliance answers them itself for every group (DNS path only).
pub const DNS_CANARIES: &[&str] = &[
    "use-application-dns.net",
    "mask.icloud.com",
    "mask-h2.icloud.com",
];

/// How an illegal-tier target is shown: its canary's name and a short hash to tell entries
/// apart, never the entry.
pub fn protect(name: &str, target: &str) -> String {
    let h = Sha256::digest(target.as_bytes());
    let tag: String = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{PROTECTED} {name}] #{tag}")
}

/// How every withheld target's shown form begins.
pub const PROTECTED: &str = "[protected:";

/// Categories whose entries are illegal-tier, wherever they come from.
fn illegal_category(c: &str) -> bool {
    matches!(c, "child-abuse" | "terrorism")
}

impl ProbeSet {
    /// Reads a probe-set file; relative paths in it are read from its folder.
    pub fn load(path: &Path) -> Result<Self, CheckError> {
        let text = std::fs::read_to_string(path).map_err(|e| CheckError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        let mut set: ProbeSet = toml::from_str(&text).map_err(|e| CheckError::ProbeSet {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        set.base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        set.validate(path)?;
        Ok(set)
    }

    fn validate(&self, path: &Path) -> Result<(), CheckError> {
        let bad = |message: String| CheckError::ProbeSet {
            path: path.to_owned(),
            message,
        };
        if self.groups.is_empty() {
            return Err(bad("no [groups.NAME] to test".into()));
        }
        self.timeout().map_err(bad)?;
        for (name, g) in &self.groups {
            if !matches!(g.youtube.as_str(), "strict" | "moderate" | "off") {
                return Err(bad(format!(
                    "group {name:?}: youtube = {:?}: expected strict, moderate or off",
                    g.youtube
                )));
            }
            if let Some(c) = g.block.iter().find(|c| g.allow.contains(c)) {
                return Err(bad(format!(
                    "group {name:?}: category {c:?} is in both block and allow"
                )));
            }
        }
        for c in &self.canaries {
            if c.target.trim().is_empty() {
                return Err(bad(format!("canary {:?} has no target", c.name)));
            }
        }
        Ok(())
    }

    /// The per-answer timeout.
    pub fn timeout(&self) -> Result<Duration, String> {
        let t = self.appliance.timeout.trim();
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = num
            .parse()
            .map_err(|_| format!("timeout {t:?}: expected e.g. \"3s\" or \"500ms\""))?;
        match unit {
            "ms" => Ok(Duration::from_millis(n)),
            "s" | "" => Ok(Duration::from_secs(n)),
            _ => Err(format!("timeout {t:?}: expected e.g. \"3s\" or \"500ms\"")),
        }
    }

    fn read_list(&self, file: &Path) -> Result<Vec<String>, CheckError> {
        let path = self.base.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| CheckError::Io {
            path: path.clone(),
            source: e,
        })?;
        let mut out: Vec<String> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            // hosts-file lines ("0.0.0.0 name") and adblock ("||name^") as the lists allow
            .map(|l| {
                let l = l.rsplit(' ').next().unwrap_or(l);
                l.trim_start_matches("||")
                    .trim_end_matches('^')
                    .trim_start_matches("*.")
                    .to_ascii_lowercase()
            })
            .collect();
        if self.corpus.sample > 0 {
            out.truncate(self.corpus.sample);
        }
        Ok(out)
    }

    /// Every probe, group by group.
    pub fn expand(&self) -> Result<Vec<Probe>, CheckError> {
        let mut school: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (cat, files) in &self.corpus.lists {
            for file in files.paths() {
                school
                    .entry(cat.as_str())
                    .or_default()
                    .extend(self.read_list(file)?);
            }
        }
        let mut school_allow = Vec::new();
        for f in &self.corpus.allow_lists {
            school_allow.extend(self.read_list(f)?);
        }
        let mut out = Vec::new();
        for (name, g) in &self.groups {
            let dns = g.dns.unwrap_or(self.appliance.dns);
            let mut o = Out {
                out: &mut out,
                group: name,
                source: g.source,
                dns,
                proxy: self.appliance.proxy.is_some(),
            };
            let proxy = o.proxy;
            if g.canaries {
                for c in &self.canaries {
                    if c.groups.as_ref().is_some_and(|gs| !gs.contains(name)) {
                        continue;
                    }
                    let shown = if c.kind == CanaryKind::Illegal {
                        protect(&c.name, &c.target)
                    } else {
                        format!("{}: {}", c.name, c.target)
                    };
                    o.both(
                        Section::Canary,
                        Some(c.kind.as_str()),
                        &c.target,
                        shown,
                        Expect::Block,
                    );
                }
            }
            for (cats, expect) in [(&g.block, Expect::Block), (&g.allow, Expect::Allow)] {
                for cat in cats {
                    let mut samples: Vec<String> = Vec::new();
                    if self.corpus.builtin {
                        samples.extend(builtin_category(cat).iter().map(|s| (*s).to_owned()));
                    }
                    if let Some(s) = school.get(cat.as_str()) {
                        samples.extend(s.iter().cloned());
                    }
                    samples.sort();
                    samples.dedup();
                    for s in samples {
                        let shown = if illegal_category(cat) {
                            protect(cat, &s)
                        } else {
                            s.clone()
                        };
                        o.both(Section::Category, Some(cat), &s, shown, expect.clone());
                    }
                }
            }
            let allow: Vec<String> = match &g.must_allow {
                Some(list) => list.clone(),
                None => {
                    let mut v: Vec<String> = if self.corpus.builtin {
                        BUILTIN_ALLOW.iter().map(|s| (*s).to_owned()).collect()
                    } else {
                        Vec::new()
                    };
                    v.extend(school_allow.iter().cloned());
                    v.sort();
                    v.dedup();
                    v
                }
            };
            for a in allow {
                o.both(Section::MustAllow, None, &a, a.clone(), Expect::Allow);
            }
            // SafeSearch and YouTube: the DNS answers, and through the proxy the search.
            let steer = |on: bool, to: &[&str]| {
                if on {
                    Expect::Steer(to.iter().map(|s| (*s).to_owned()).collect())
                } else {
                    Expect::Allow
                }
            };
            for (host, on, to) in [
                (
                    "www.google.com",
                    g.safesearch,
                    &["forcesafesearch.google.com"][..],
                ),
                (
                    "www.google.co.uk",
                    g.safesearch,
                    &["forcesafesearch.google.com"],
                ),
                ("www.bing.com", g.safesearch, &["strict.bing.com"]),
            ] {
                o.add(
                    Via::Dns,
                    Section::SafeSearch,
                    None,
                    Action::Dns(host.into()),
                    host.into(),
                    steer(on, to),
                );
            }
            let yt: &[&str] = match g.youtube.as_str() {
                "strict" => &["restrict.youtube.com"],
                "moderate" => &["restrictmoderate.youtube.com"],
                _ => &[],
            };
            for host in ["www.youtube.com", "m.youtube.com"] {
                o.add(
                    Via::Dns,
                    Section::SafeSearch,
                    None,
                    Action::Dns(host.into()),
                    host.into(),
                    steer(!yt.is_empty(), yt),
                );
            }
            if proxy {
                let port = match self.appliance.http_port {
                    80 => String::new(),
                    p => format!(":{p}"),
                };
                for (host, path, on, markers) in [
                    (
                        "www.google.com",
                        "/search?q=hedgerow+check",
                        g.safesearch,
                        &["safe=active", "forcesafesearch.google.com"][..],
                    ),
                    (
                        "www.bing.com",
                        "/search?q=hedgerow+check",
                        g.safesearch,
                        &["adlt=strict", "strict.bing.com"],
                    ),
                ] {
                    let url = format!("http://{host}{port}{path}");
                    o.add(
                        Via::Proxy,
                        Section::SafeSearch,
                        None,
                        Action::Get(url.clone()),
                        url,
                        steer(on, markers),
                    );
                }
            }
            if g.circumvention {
                for c in DNS_CANARIES {
                    o.add(
                        Via::Dns,
                        Section::Circumvention,
                        Some("dns-canary"),
                        Action::Dns((*c).into()),
                        (*c).into(),
                        Expect::Block,
                    );
                }
                for d in DOH_NAMES {
                    o.both(
                        Section::Circumvention,
                        Some("doh"),
                        d,
                        (*d).into(),
                        Expect::Block,
                    );
                }
                if proxy {
                    let c = &self.circumvention;
                    let host = g.tls_host.clone().unwrap_or_else(|| c.tls_host.clone());
                    let port = c.tls_port;
                    let ip = match c.ip_literal {
                        IpAddr::V6(v6) => format!("[{v6}]"),
                        v4 => v4.to_string(),
                    };
                    let blocked = g
                        .block
                        .iter()
                        .find_map(|cat| builtin_category(cat).first())
                        .copied()
                        .unwrap_or("dns.google");
                    let tls = [
                        (
                            "ordinary TLS (control)",
                            host.clone(),
                            Some(host.clone()),
                            false,
                            Expect::Open,
                        ),
                        (
                            "ECH",
                            host.clone(),
                            Some(host.clone()),
                            true,
                            Expect::Refuse,
                        ),
                        (
                            "SNI differs from CONNECT host",
                            host.clone(),
                            Some(format!("other.{host}")),
                            false,
                            Expect::Refuse,
                        ),
                        (
                            "IP literal without SNI",
                            ip.clone(),
                            None,
                            false,
                            Expect::Refuse,
                        ),
                        (
                            "IP literal with a blocked SNI",
                            ip.clone(),
                            Some(blocked.to_owned()),
                            false,
                            Expect::Refuse,
                        ),
                    ];
                    for (what, connect, sni, ech, expect) in tls {
                        let shown = format!(
                            "{what}: CONNECT {connect}:{port}, SNI {}",
                            sni.as_deref().unwrap_or("none")
                        );
                        o.add(
                            Via::Proxy,
                            Section::Circumvention,
                            Some("tls"),
                            Action::Tls {
                                host: connect,
                                port,
                                sni,
                                ech,
                            },
                            shown,
                            expect,
                        );
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Collects one group's probes.
struct Out<'a> {
    out: &'a mut Vec<Probe>,
    group: &'a str,
    source: IpAddr,
    dns: SocketAddr,
    proxy: bool,
}

impl Out<'_> {
    fn add(
        &mut self,
        via: Via,
        section: Section,
        category: Option<&str>,
        action: Action,
        shown: String,
        expect: Expect,
    ) {
        self.out.push(Probe {
            group: self.group.to_owned(),
            source: self.source,
            dns: self.dns,
            via,
            section,
            category: category.map(str::to_owned),
            action,
            shown,
            expect,
        });
    }

    /// A name: DNS and CONNECT; a URL: GET through the proxy only.
    fn both(
        &mut self,
        section: Section,
        category: Option<&str>,
        target: &str,
        shown: String,
        expect: Expect,
    ) {
        if let Some(host) = host_only(target) {
            self.add(
                Via::Dns,
                section,
                category,
                Action::Dns(host.clone()),
                shown.clone(),
                expect.clone(),
            );
            if self.proxy {
                self.add(
                    Via::Proxy,
                    section,
                    category,
                    Action::Connect(host),
                    shown,
                    expect,
                );
            }
        } else if self.proxy {
            self.add(
                Via::Proxy,
                section,
                category,
                Action::Get(url_of(target)),
                shown,
                expect,
            );
        }
    }
}

/// The host of a bare name (`example.com`); `None` for a URL or a name with a path.
fn host_only(target: &str) -> Option<String> {
    let t = target.trim();
    (!t.contains('/') && !t.contains(':')).then(|| t.trim_end_matches('.').to_ascii_lowercase())
}

/// A list URL entry (`host/path` or `http://host/path`) as a URL to fetch.
fn url_of(target: &str) -> String {
    let t = target.trim();
    if t.starts_with("http://") || t.starts_with("https://") {
        t.to_owned()
    } else {
        format!("http://{t}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(text: &str) -> ProbeSet {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("probes.toml");
        std::fs::write(&p, text).unwrap();
        ProbeSet::load(&p).unwrap()
    }

    #[test]
    fn illegal_canaries_never_show_their_target() {
        let s = set(r#"
[appliance]
dns = "127.0.0.1:53"
proxy = "127.0.0.1:3128"
[[canaries]]
name = "IWF test URL"
target = "http://secret-entry.invalid/a.html"
kind = "illegal"
[[canaries]]
name = "adult"
target = "adult.example"
kind = "adult"
[groups.ks2]
source = "127.0.0.1"
block = ["adult"]
"#);
        let probes = s.expand().unwrap();
        assert!(probes.iter().all(|p| !p.shown.contains("secret-entry")));
        let iwf: Vec<_> = probes
            .iter()
            .filter(|p| p.shown.starts_with("[protected: IWF test URL]"))
            .collect();
        // a URL canary: the proxy path only
        assert_eq!(iwf.len(), 1);
        assert_eq!(iwf[0].via, Via::Proxy);
        // a host canary: both paths, shown in clear
        assert_eq!(
            probes
                .iter()
                .filter(|p| p.shown == "adult: adult.example")
                .count(),
            2
        );
        // the built-in adult sample is blocked on both paths
        assert!(probes.iter().any(|p| p.action == Action::Dns("pornhub.com".into())
            && p.expect == Expect::Block));
    }

    #[test]
    fn a_source_address_not_on_this_machine_is_a_clear_error() {
        let s = set(r#"
[appliance]
dns = "127.0.0.1:9"
[groups.far]
source = "192.0.2.7"
"#);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let e = rt.block_on(crate::run(&s)).unwrap_err().to_string();
        assert!(
            e.contains("group \"far\": cannot send from 192.0.2.7"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_probe_set_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("probes.toml");
        std::fs::write(
            &p,
            "[appliance]\ndns = \"127.0.0.1:53\"\n[groups.a]\nsource = \"127.0.0.1\"\nyoutube = \"loud\"\n",
        )
        .unwrap();
        let e = ProbeSet::load(&p).unwrap_err().to_string();
        assert!(e.contains("youtube"), "{e}");
        std::fs::write(&p, "[appliance]\ndns = \"nowhere\"\n").unwrap();
        assert!(ProbeSet::load(&p).is_err());
    }
}

#[cfg(test)]
mod bundled {
    #![allow(clippy::unwrap_used)]

    /// The example probe set in config/ reads, and tests the bundled KS2 policy's categories.
    #[test]
    fn the_example_probe_set_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/check-probes.toml");
        let set = super::ProbeSet::load(&path).unwrap();
        let probes = set.expand().unwrap();
        assert!(probes.iter().any(|p| p.shown == "casino-online.example"));
        assert!(probes.iter().all(|p| !p.shown.contains("iwf-test.invalid")));
    }
}
