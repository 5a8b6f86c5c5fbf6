//! The validated configuration types, and the raw serde shapes they are read from.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use hedgerow_model::{
    BreachRule, Category, ListFormat, ListKind, MacAddr, Severity, Tier, UrlMatch,
};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::duration::{serde_duration, serde_duration_opt};

/// Where something was written: file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Every file read, the main file first.
    pub files: Vec<PathBuf>,
    pub server: ServerConfig,
    pub dns: DnsConfig,
    pub proxy: Option<ProxyConfig>,
    /// The block page server for DNS blocks (`[blockpage]`).
    pub blockpage: Option<BlockPageConfig>,
    /// Sorted by name.
    pub lists: Vec<ListSource>,
    /// Sorted by name.
    pub groups: Vec<Group>,
    pub devices: Vec<Device>,
    /// DHCP lease files that name devices by address.
    pub leases: Vec<LeaseFile>,
    pub logs: LogsConfig,
    pub breaches: BreachesConfig,
    pub alerts: Option<AlertsConfig>,
    /// `[safesearch]`: what SafeSearch cannot enforce.
    pub safesearch: SafeSearchConfig,
    /// The Prometheus metrics and health listener; none when absent.
    pub metrics: Option<MetricsConfig>,
    /// `[ship]`: events to ClickHouse and syslog; `None` (the default) ships nothing.
    pub ship: Option<crate::ShipConfig>,
    /// The appliance API's TCP listener with TLS (`[api]`); the Unix socket is always served.
    pub api: Option<ApiConfig>,
    /// The approval rules of change control (`[change_control]`), only ever stricter than
    /// the defaults.
    pub change_control: ChangeControlConfig,
    /// The safeguarding web console (`[console]`); none when absent.
    pub console: Option<crate::ConsoleConfig>,
}

/// `[api]`: the appliance API on a loopback or LAN address, over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Host names the certificate names besides the listen address.
    pub names: Vec<String>,
}

/// A safeguarding risk rating, as change requests carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RiskLevel {
    Low,
    Medium,
    High,
}

/// `[change_control]`: who must sign a change. The defaults are the loosest allowed: a
/// setting looser than its default is a configuration error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeControlConfig {
    /// Tightening changes need approvers' signatures too (default: applied at once by a
    /// technician, still recorded).
    pub approve_tightening: bool,
    /// The risk from which a change needs the DSL's co-sign (default: high).
    pub dsl_cosign_from: RiskLevel,
    /// How many different approvers must sign a change that needs approval (default: 1).
    pub approvers: u8,
}

impl Default for ChangeControlConfig {
    fn default() -> Self {
        Self {
            approve_tightening: false,
            dsl_cosign_from: RiskLevel::High,
            approvers: 1,
        }
    }
}

/// `[metrics]`: Prometheus metrics (`/metrics`) and health checks (`/health/live`,
/// `/health/ready`) over plain HTTP on their own listeners (loopback, or a management network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    pub listen: Vec<SocketAddr>,
}

/// `[safesearch]`: settings shared by every group with `safesearch = "on"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeSearchConfig {
    /// Search engines whose SafeSearch cannot be enforced (no enforcement host, no setting a
    /// filter can force): blocked, with their subdomains, for groups with SafeSearch on, under
    /// the category `search-unenforceable`. Host names, normalised.
    pub unenforceable: Vec<String>,
}

/// The search engines known to have no SafeSearch a filter can enforce.
pub const UNENFORCEABLE_ENGINES: &[&str] = &[
    "search.yahoo.com",
    "search.aol.com",
    "search.brave.com",
    "startpage.com",
    "www.baidu.com",
    "ask.com",
    "mojeek.com",
    "qwant.com",
    "search.lilo.org",
    "metager.org",
];

impl Default for SafeSearchConfig {
    fn default() -> Self {
        Self {
            unenforceable: UNENFORCEABLE_ENGINES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// `[logs]`: the log store in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsConfig {
    /// How long access events are kept (whole days are dropped).
    pub access_retention: Duration,
    /// How long breaches are kept after they were last seen.
    pub breach_retention: Duration,
    /// The store's page cache, in MiB.
    pub cache_mb: u64,
    /// Most access events waiting for the writer; more are counted and dropped.
    pub queue: usize,
    /// How often the writer stores what is waiting.
    pub flush_interval: Duration,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            access_retention: Duration::from_secs(90 * 86_400),
            breach_retention: Duration::from_secs(730 * 86_400),
            cache_mb: 64,
            queue: 262_144,
            flush_interval: Duration::from_millis(50),
        }
    }
}

/// `[breaches]`: which access events are breaches for the safeguarding lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachesConfig {
    /// The same device, site and rule within this long of the first sighting is one breach.
    pub window: Duration,
    /// In order; the first that matches decides. The illegal tier needs none.
    pub rules: Vec<BreachRule>,
}

impl Default for BreachesConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(3600),
            rules: Vec::new(),
        }
    }
}

/// `[alerts]`: how the safeguarding lead hears of breaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertsConfig {
    /// Breaches at or above this severity go out at once; the rest wait for the digest.
    pub immediate: Severity,
    /// How often the digest of the other breaches goes out.
    pub digest_every: Duration,
    /// Attempts per alert before it is marked failed.
    pub attempts: u32,
    pub webhook: Option<WebhookConfig>,
    pub email: Option<EmailConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// An `http://` or `https://` URL that receives a JSON POST per alert.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// The SMTP server's host name.
    pub server: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    pub username: Option<String>,
    /// A file holding the SMTP password (kept out of the configuration).
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on the appliance itself or the local network.
    None,
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// A DHCP server's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFile {
    pub path: PathBuf,
    pub format: LeaseFormat,
    pub location: Location,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseFormat {
    /// dnsmasq's `dnsmasq.leases`: `expiry mac ip hostname client-id` per line.
    Dnsmasq,
    /// ISC dhcpd's `dhcpd.leases`: `lease IP { hardware ethernet MAC; client-hostname "x"; }`.
    Isc,
}

impl Config {
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Where the log store and other state live; resolved against the file that names it.
    pub state_dir: PathBuf,
    /// IANA time zone for schedules and reports, such as `Europe/London`.
    pub timezone: String,
    /// Record an access event for every query and request. Turning it off is for benchmarks
    /// only: the school's monitoring duty needs it on.
    pub access_log: bool,
    /// How much smaller than its last good load an illegal-tier list may become before the
    /// appliance keeps enforcing the last good copy instead (a fraction; 0.5 = half).
    pub illegal_shrink_limit: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    pub listen: Vec<SocketAddr>,
    pub upstreams: Vec<Upstream>,
    pub timeout: Duration,
    pub cache: CacheConfig,
    /// Queries per second allowed from one client address; 0 turns the limit off.
    pub rate_limit_qps: u32,
    /// Where `dns_block = "blockpage"` points A queries: the block page's address.
    pub blockpage_ipv4: Option<std::net::Ipv4Addr>,
    /// Where `dns_block = "blockpage"` points AAAA queries; without it AAAA gets no data.
    pub blockpage_ipv6: Option<std::net::Ipv6Addr>,
    /// Forwarders (the school router) whose EDNS Client Subnet and MAC options are believed:
    /// from them, those options say which client asked. From anyone else they are ignored.
    pub trusted_forwarders: Vec<IpNet>,
    /// The file `address = "system"` upstreams are read from (default `/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// Nameservers of `resolv_conf` left out because they are Hedgerow's own listeners.
    pub system_skipped: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most answers held.
    pub size: usize,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// TTL for NXDOMAIN/NODATA answers that carry no SOA.
    pub negative_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub address: SocketAddr,
    pub protocol: UpstreamProtocol,
    /// The name the upstream's certificate must carry (DNS-over-TLS only).
    pub tls_name: Option<String>,
    /// Extra CA certificates (PEM) to trust for this DNS-over-TLS upstream, besides the
    /// Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Read from `[dns] resolv_conf` (`address = "system"`), not named in the configuration.
    pub system: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamProtocol {
    /// UDP, retried over TCP when the answer is truncated.
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub listen: Vec<SocketAddr>,
    /// Ports CONNECT may reach.
    pub connect_ports: Vec<u16>,
    /// Groups whose HTTPS is intercepted with the school's CA.
    pub intercept_groups: Vec<String>,
    /// The school's CA certificate and key (PEM), for interception.
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
    /// Hosts (and their subdomains) never intercepted: banking, health.
    pub never_intercept: Vec<String>,
    /// Extra roots (PEM) trusted for upstream HTTPS while intercepting, besides the Mozilla roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// Destination networks the proxy may reach although they are loopback, link-local or
    /// private (for example a local web server).
    pub allow_destinations: Vec<IpNet>,
    /// `name:$argon2id$…` lines: turns on Basic proxy authentication.
    pub users_file: Option<PathBuf>,
    /// `host:port` the PAC file points browsers at; default the first listen address.
    pub pac_proxy: Option<String>,
    /// Domains and networks the PAC file sends direct, besides plain host names, `.local`,
    /// the groups' networks and the private, loopback and link-local ranges.
    pub pac_direct: Vec<PacDirect>,
    /// How a pupil or teacher asks for a review, shown on the block page.
    pub review_contact: String,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections_per_client: usize,
    /// Largest chunked request body; such bodies are read whole before they are forwarded.
    pub max_chunked_body: usize,
}

/// `[blockpage]`: the web server on the block page's address, for browsers that a DNS block
/// (`dns_block = "blockpage"`) sent there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPageConfig {
    /// Plain HTTP listeners (port 80 of `blockpage_ipv4`/`blockpage_ipv6` in production).
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners (port 443 of the same addresses), serving the page with a certificate
    /// minted from the school CA (`[proxy] ca_cert`, `ca_key`) for the name asked for.
    pub tls_listen: Vec<SocketAddr>,
}

/// An entry of `[proxy] pac_direct`: what the PAC file sends straight to the site, not through
/// the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacDirect {
    /// A domain and its subdomains (normalised: lower case, no trailing dot).
    Domain(String),
    /// Addresses written as IP literals in the URL.
    Network(IpNet),
}

/// How a list that keeps itself current is downloaded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFetch {
    /// `https://…` only.
    pub url: String,
    /// How often it is fetched (the illegal tier: at most 12 hours).
    pub every: Duration,
    /// Older than this (since it was last confirmed current) raises an operational alert,
    /// critical for the illegal tier.
    pub max_age: Duration,
    /// `user:password` (HTTP Basic) or a bearer token, read at each fetch from this file: a
    /// systemd credential (`credential = "NAME"`, in `$CREDENTIALS_DIRECTORY`) or a path.
    pub credentials: Option<Credentials>,
    /// Extra CA certificates (PEM) to trust for this origin, besides the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// A published SHA-256 of the list (`<hex>` or `sha256sum` output) to check it against.
    pub sha256_url: Option<String>,
    /// A minisign public key (base64, `RW…`): the list must carry a valid signature, read from
    /// `signature_url` (default: the list's URL with `.minisig` added).
    pub minisign_key: Option<String>,
    pub signature_url: Option<String>,
    /// Fewer entries than this refuses the download.
    pub min_entries: usize,
    /// A larger body refuses the download.
    pub max_bytes: u64,
}

/// Where a list download's credentials are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/NAME` (`LoadCredential=NAME:…`).
    Systemd(String),
    /// A file (mode 0600, outside the configuration).
    File(PathBuf),
}

/// One block, allow or illegal-content list file.
#[derive(Debug, Clone, PartialEq)]
pub struct ListSource {
    pub name: String,
    pub path: PathBuf,
    pub format: ListFormat,
    pub kind: ListKind,
    /// Required for block and illegal lists.
    pub category: Option<Category>,
    pub url_match: UrlMatch,
    /// For phrase lists: how serious a hit is.
    pub severity: Severity,
    /// When true a missing file is a warning at load time, not an error.
    pub optional: bool,
    /// Where the list is downloaded from, when it keeps itself current (`url = …`). Its
    /// `path` is then the copy in force, under the state directory.
    pub fetch: Option<ListFetch>,
    pub location: Location,
}

/// A group of clients (by network) and its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub description: String,
    pub networks: Vec<IpNet>,
    /// DNS queries that arrive on these local addresses (one of `[dns] listen`) are this
    /// group's, whoever sent them: routers that forward each VLAN to its own address.
    pub listen_addresses: Vec<IpAddr>,
    pub block_categories: Vec<Category>,
    pub safesearch: SafeSearch,
    pub youtube: YouTubeMode,
    pub dns_block: DnsBlockMode,
    /// Filtered (everything not blocked loads) or approved-only (only what is approved loads).
    pub mode: GroupMode,
    /// For approved-only groups: the allow lists (`kind = "allow"`) whose entries are
    /// approved for this group.
    pub approved_lists: Vec<String>,
    /// The group's own allow entries (domains or URLs); beat everything but the illegal tier.
    /// A site written with its dependencies (`{ site = …, with = […] }`) gives one entry for
    /// the site and one for each host listed `with` it.
    pub allow: Vec<LocalEntry>,
    /// The group's own block entries; beat allow lists and categories.
    pub block: Vec<LocalEntry>,
    pub schedules: Vec<Schedule>,
    pub location: Location,
}

/// A domain or URL written in a group's `allow` or `block` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEntry {
    pub text: String,
    pub location: Location,
    /// For a host listed `with` a site in an allow entry (its CDN or asset host): that site,
    /// as written.
    pub dependency_of: Option<String>,
}

/// How a group's policy starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupMode {
    /// Everything loads unless something blocks it (the default).
    Filtered,
    /// A walled garden: only what the group's allow entries and approved lists name loads;
    /// everything else is blocked as "not on the approved list". For the youngest pupils
    /// (Early Years, Key Stage 1).
    ApprovedOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SafeSearch {
    Off,
    /// Enforced on every engine Hedgerow knows (Google, Bing, DuckDuckGo, Ecosia, Pixabay).
    On,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum YouTubeMode {
    Off,
    Moderate,
    Strict,
}

/// What a blocked DNS query is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DnsBlockMode {
    Nxdomain,
    /// 0.0.0.0 and ::
    Null,
    /// The address of Hedgerow's block page, so plain HTTP lands on it.
    Blockpage,
}

/// A time window in which some blocked categories are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub name: String,
    pub allow_categories: Vec<Category>,
    pub days: Vec<jiff::civil::Weekday>,
    /// Inclusive.
    pub from: jiff::civil::Time,
    /// Exclusive.
    pub to: jiff::civil::Time,
}

/// Days in a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DaySpec {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
    Weekdays,
    Weekends,
    Everyday,
}

impl DaySpec {
    pub fn weekdays(self) -> &'static [jiff::civil::Weekday] {
        use jiff::civil::Weekday::*;
        match self {
            DaySpec::Mon => &[Monday],
            DaySpec::Tue => &[Tuesday],
            DaySpec::Wed => &[Wednesday],
            DaySpec::Thu => &[Thursday],
            DaySpec::Fri => &[Friday],
            DaySpec::Sat => &[Saturday],
            DaySpec::Sun => &[Sunday],
            DaySpec::Weekdays => &[Monday, Tuesday, Wednesday, Thursday, Friday],
            DaySpec::Weekends => &[Saturday, Sunday],
            DaySpec::Everyday => &[
                Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
            ],
        }
    }
}

/// A known device: events from it carry its name, and its user when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub name: String,
    pub ip: Option<IpAddr>,
    pub mac: Option<MacAddr>,
    pub user: Option<String>,
    /// Puts the device in this group whatever its network.
    pub group: Option<String>,
    pub location: Location,
}

// === raw shapes, as written in TOML ===

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) include: Option<Vec<Spanned<PathBuf>>>,
    pub(crate) server: Option<Spanned<RawServer>>,
    pub(crate) dns: Option<Spanned<RawDns>>,
    pub(crate) proxy: Option<Spanned<RawProxy>>,
    pub(crate) blockpage: Option<Spanned<RawBlockPage>>,
    #[serde(default)]
    pub(crate) lists: BTreeMap<Spanned<String>, RawList>,
    #[serde(default)]
    pub(crate) groups: BTreeMap<Spanned<String>, RawGroup>,
    #[serde(default)]
    pub(crate) devices: Vec<Spanned<RawDevice>>,
    #[serde(default)]
    pub(crate) leases: Vec<Spanned<RawLease>>,
    pub(crate) logs: Option<Spanned<RawLogs>>,
    pub(crate) breaches: Option<Spanned<RawBreaches>>,
    pub(crate) alerts: Option<Spanned<RawAlerts>>,
    pub(crate) ship: Option<Spanned<crate::ship::RawShip>>,
    pub(crate) api: Option<Spanned<RawApi>>,
    pub(crate) change_control: Option<Spanned<RawChangeControl>>,
    pub(crate) metrics: Option<Spanned<RawMetrics>>,
    pub(crate) safesearch: Option<Spanned<RawSafeSearchConfig>>,
    pub(crate) console: Option<Spanned<crate::console::RawConsole>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(crate) listen: SocketAddr,
    #[serde(default)]
    pub(crate) names: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChangeControl {
    pub(crate) approve_tightening: Option<Spanned<bool>>,
    pub(crate) dsl_cosign_from: Option<Spanned<String>>,
    pub(crate) approvers: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub(crate) listen: Vec<SocketAddr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSafeSearchConfig {
    /// `None`: the built-in list ([`UNENFORCEABLE_ENGINES`]).
    pub(crate) unenforceable: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLease {
    pub(crate) path: PathBuf,
    pub(crate) format: LeaseFormat,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogs {
    #[serde(default, with = "serde_duration_opt")]
    pub(crate) access_retention: Option<Duration>,
    #[serde(default, with = "serde_duration_opt")]
    pub(crate) breach_retention: Option<Duration>,
    pub(crate) cache_mb: Option<u64>,
    pub(crate) queue: Option<usize>,
    #[serde(default, with = "serde_duration_opt")]
    pub(crate) flush_interval: Option<Duration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaches {
    #[serde(default, with = "serde_duration_opt")]
    pub(crate) window: Option<Duration>,
    #[serde(default)]
    pub(crate) rules: Vec<Spanned<RawBreachRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreachRule {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) tiers: Vec<Tier>,
    #[serde(default)]
    pub(crate) categories: Vec<Spanned<Category>>,
    pub(crate) concern: Option<Severity>,
    pub(crate) severity: Severity,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    #[serde(default = "default_immediate")]
    pub(crate) immediate: Severity,
    #[serde(default = "default_digest", with = "serde_duration")]
    pub(crate) digest_every: Duration,
    #[serde(default = "default_attempts")]
    pub(crate) attempts: u32,
    pub(crate) webhook: Option<Spanned<RawWebhook>>,
    pub(crate) email: Option<Spanned<RawEmail>>,
}

fn default_immediate() -> Severity {
    Severity::High
}
fn default_digest() -> Duration {
    Duration::from_secs(7 * 86_400)
}
fn default_attempts() -> u32 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub(crate) url: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEmail {
    pub(crate) server: String,
    pub(crate) port: Option<u16>,
    pub(crate) tls: SmtpTls,
    pub(crate) from: Spanned<String>,
    pub(crate) to: Vec<Spanned<String>>,
    pub(crate) username: Option<String>,
    pub(crate) password_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) state_dir: PathBuf,
    #[serde(default = "default_timezone")]
    pub(crate) timezone: Spanned<String>,
    #[serde(default = "default_true")]
    pub(crate) access_log: bool,
    #[serde(default = "default_shrink_limit")]
    pub(crate) illegal_shrink_limit: f64,
}

fn default_shrink_limit() -> f64 {
    0.5
}

fn default_true() -> bool {
    true
}

fn default_timezone() -> Spanned<String> {
    Spanned::new(0..0, "Europe/London".to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDns {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) upstreams: Vec<Spanned<RawUpstream>>,
    #[serde(default = "default_timeout", with = "serde_duration")]
    pub(crate) timeout: Duration,
    #[serde(default)]
    pub(crate) cache: RawCache,
    #[serde(default = "default_rate_limit")]
    pub(crate) rate_limit_qps: u32,
    pub(crate) blockpage_ipv4: Option<std::net::Ipv4Addr>,
    pub(crate) blockpage_ipv6: Option<std::net::Ipv6Addr>,
    #[serde(default)]
    pub(crate) trusted_forwarders: Vec<Spanned<String>>,
    pub(crate) resolv_conf: Option<PathBuf>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(2)
}

fn default_rate_limit() -> u32 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    #[serde(default = "default_cache_size")]
    pub(crate) size: usize,
    #[serde(default, with = "serde_duration")]
    pub(crate) min_ttl: Duration,
    #[serde(default = "default_max_ttl", with = "serde_duration")]
    pub(crate) max_ttl: Duration,
    #[serde(default = "default_negative_ttl", with = "serde_duration")]
    pub(crate) negative_ttl: Duration,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            size: default_cache_size(),
            min_ttl: Duration::ZERO,
            max_ttl: default_max_ttl(),
            negative_ttl: default_negative_ttl(),
        }
    }
}

fn default_cache_size() -> usize {
    50_000
}
fn default_max_ttl() -> Duration {
    Duration::from_secs(86_400)
}
fn default_negative_ttl() -> Duration {
    Duration::from_secs(300)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUpstream {
    /// An address and port, or `"system"`: the nameservers of `[dns] resolv_conf`.
    pub(crate) address: Spanned<String>,
    #[serde(default = "default_protocol")]
    pub(crate) protocol: UpstreamProtocol,
    pub(crate) tls_name: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
}

fn default_protocol() -> UpstreamProtocol {
    UpstreamProtocol::Udp
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxy {
    pub(crate) listen: Vec<SocketAddr>,
    #[serde(default = "default_connect_ports")]
    pub(crate) connect_ports: Vec<u16>,
    #[serde(default)]
    pub(crate) intercept_groups: Vec<Spanned<String>>,
    pub(crate) ca_cert: Option<PathBuf>,
    pub(crate) ca_key: Option<PathBuf>,
    #[serde(default)]
    pub(crate) never_intercept: Vec<Spanned<String>>,
    pub(crate) upstream_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub(crate) allow_destinations: Vec<IpNet>,
    pub(crate) users_file: Option<PathBuf>,
    pub(crate) pac_proxy: Option<String>,
    #[serde(default)]
    pub(crate) pac_direct: Vec<Spanned<String>>,
    #[serde(default = "default_review_contact")]
    pub(crate) review_contact: String,
    #[serde(default = "default_connect_timeout", with = "serde_duration")]
    pub(crate) connect_timeout: Duration,
    #[serde(default = "default_idle_timeout", with = "serde_duration")]
    pub(crate) idle_timeout: Duration,
    #[serde(default = "default_max_header_bytes")]
    pub(crate) max_header_bytes: usize,
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections_per_client: usize,
    #[serde(default = "default_max_chunked_body")]
    pub(crate) max_chunked_body: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBlockPage {
    #[serde(default)]
    pub(crate) listen: Vec<SocketAddr>,
    #[serde(default)]
    pub(crate) tls_listen: Vec<SocketAddr>,
}

fn default_connect_ports() -> Vec<u16> {
    vec![443]
}
fn default_review_contact() -> String {
    "ask your teacher or the school's IT office".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_max_connections() -> usize {
    256
}
fn default_max_chunked_body() -> usize {
    4 << 20
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawList {
    pub(crate) path: Option<Spanned<PathBuf>>,
    pub(crate) url: Option<Spanned<String>>,
    #[serde(default, with = "serde_duration_opt")]
    pub(crate) every: Option<Duration>,
    #[serde(default, with = "serde_duration_opt")]
    pub(crate) max_age: Option<Duration>,
    pub(crate) credential: Option<String>,
    pub(crate) credentials_file: Option<PathBuf>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) sha256_url: Option<String>,
    pub(crate) minisign_key: Option<String>,
    pub(crate) signature_url: Option<String>,
    pub(crate) min_entries: Option<usize>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) format: ListFormat,
    #[serde(default = "default_kind")]
    pub(crate) kind: ListKind,
    pub(crate) category: Option<Spanned<Category>>,
    #[serde(default = "default_url_match")]
    pub(crate) url_match: UrlMatch,
    #[serde(default = "default_severity")]
    pub(crate) severity: Severity,
    #[serde(default)]
    pub(crate) optional: bool,
}

fn default_kind() -> ListKind {
    ListKind::Block
}
fn default_url_match() -> UrlMatch {
    UrlMatch::Prefix
}
fn default_severity() -> Severity {
    Severity::Medium
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) networks: Vec<Spanned<IpNet>>,
    #[serde(default)]
    pub(crate) listen_addresses: Vec<Spanned<IpAddr>>,
    #[serde(default)]
    pub(crate) block_categories: Vec<Spanned<Category>>,
    pub(crate) safesearch: SafeSearch,
    pub(crate) youtube: YouTubeMode,
    #[serde(default = "default_dns_block")]
    pub(crate) dns_block: DnsBlockMode,
    #[serde(default = "default_mode")]
    pub(crate) mode: GroupMode,
    #[serde(default)]
    pub(crate) approved_lists: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    pub(crate) block: Vec<Spanned<String>>,
    #[serde(default, rename = "schedule")]
    pub(crate) schedules: Vec<Spanned<RawSchedule>>,
}

fn default_dns_block() -> DnsBlockMode {
    DnsBlockMode::Blockpage
}

fn default_mode() -> GroupMode {
    GroupMode::Filtered
}

/// An allow entry as written: `"site.example"` (or a URL), or a site with the hosts its pages
/// load from: `{ site = "site.example", with = ["cdn.example", "media.example"] }`.
#[derive(Debug)]
pub(crate) enum RawAllow {
    Entry(String),
    Site { site: String, with: Vec<String> },
}

impl<'de> Deserialize<'de> for RawAllow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawAllow;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a domain or URL, or a table { site = \"…\", with = [\"…\"] } naming a site and the hosts its pages load from",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawAllow, E> {
                Ok(RawAllow::Entry(v.to_owned()))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawAllow, A::Error> {
                let mut site = None;
                let mut with = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "site" if site.is_none() => site = Some(map.next_value::<String>()?),
                        "with" if with.is_none() => with = Some(map.next_value::<Vec<String>>()?),
                        "site" | "with" => {
                            return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
                        }
                        other => {
                            return Err(serde::de::Error::unknown_field(other, &["site", "with"]));
                        }
                    }
                }
                let site = site.ok_or_else(|| serde::de::Error::missing_field("site"))?;
                Ok(RawAllow::Site {
                    site,
                    with: with.unwrap_or_default(),
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub(crate) name: String,
    pub(crate) allow_categories: Vec<Spanned<Category>>,
    pub(crate) days: Vec<DaySpec>,
    pub(crate) from: String,
    pub(crate) to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDevice {
    pub(crate) name: String,
    pub(crate) ip: Option<IpAddr>,
    pub(crate) mac: Option<MacAddr>,
    pub(crate) user: Option<String>,
    pub(crate) group: Option<Spanned<String>>,
}
