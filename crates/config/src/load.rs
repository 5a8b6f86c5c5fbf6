//! Reading files, following includes, merging and validating.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use hedgerow_model::{Category, Host, ListFormat, ListKind, MacAddr, UrlKey};
use ipnet::IpNet;
use toml::Spanned;

use crate::schema::*;
use crate::{ConfigError, ConfigErrors};

/// Reads the configuration at `path`, with every file it includes, and validates it.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => from_str(&text, path),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            reason: format!("cannot read file: {e}"),
        }])),
    }
}

/// Parses `text` as if it were the file `origin`: includes and relative paths are resolved
/// against `origin`'s folder. Pure apart from reading included files and checking that list
/// files exist.
pub fn from_str(text: &str, origin: &Path) -> Result<Config, ConfigErrors> {
    parse_with(text, origin, &|p| std::fs::read_to_string(p))
}

/// Reads the configuration at `path` as [`load`] does, except that a file named in `overlay`
/// is read as the text given there instead of from disk: to validate edited files before
/// they are written.
pub fn load_with(path: &Path, overlay: &HashMap<PathBuf, String>) -> Result<Config, ConfigErrors> {
    let read = |p: &Path| match overlay.get(p) {
        Some(text) => Ok(text.clone()),
        None => std::fs::read_to_string(p),
    };
    match read(path) {
        Ok(text) => parse_with(&text, path, &read),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            reason: format!("cannot read file: {e}"),
        }])),
    }
}

fn parse_with(
    text: &str,
    origin: &Path,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Config, ConfigErrors> {
    let mut cx = Context::default();
    let main = Source::new(origin.to_owned(), text.to_owned());
    let Some(raw) = cx.parse(&main) else {
        return Err(ConfigErrors(cx.errors));
    };
    let mut files = vec![(main, raw)];
    let includes = files[0].1.include.take().unwrap_or_default();
    for inc in includes {
        let path = resolve(&files[0].0.path, inc.get_ref());
        match read(&path) {
            Ok(text) => {
                let src = Source::new(path, text);
                if let Some(mut raw) = cx.parse(&src) {
                    if let Some(nested) = raw.include.take() {
                        let span = nested.first().map_or(0..0, Spanned::span);
                        cx.err(
                            &src,
                            span,
                            "only the main file may include other files".into(),
                        );
                    }
                    files.push((src, raw));
                }
            }
            Err(e) => {
                let reason = format!("cannot read included file {}: {e}", path.display());
                cx.err(&files[0].0, inc.span(), reason);
            }
        }
    }
    let config = cx.merge(files);
    match config {
        Some(c) if cx.errors.is_empty() => Ok(c),
        _ => Err(ConfigErrors(cx.errors)),
    }
}

/// One file's text, with its line starts for turning byte spans into line and column.
struct Source {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl Source {
    fn new(path: PathBuf, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            path,
            text,
            line_starts,
        }
    }

    fn location(&self, span: Range<usize>) -> Location {
        let offset = span.start.min(self.text.len());
        let line_idx = self
            .line_starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.line_starts.get(line_idx).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |prefix| prefix.chars().count() + 1);
        Location {
            path: self.path.clone(),
            line: line_idx + 1,
            column,
        }
    }
}

/// A group, where each of its blocked categories was written, and the allow lists it
/// approves with where each was named, for later cross-checks.
type GroupWithSpans = (
    Group,
    Vec<(Spanned<Category>, Location)>,
    Vec<(String, Location)>,
);

#[derive(Default)]
struct Context {
    errors: Vec<ConfigError>,
    /// A file that did not parse contributes nothing, so "missing table" errors would only
    /// repeat its error in another form.
    unparsed: bool,
}

impl Context {
    fn err(&mut self, src: &Source, span: Range<usize>, reason: String) {
        self.err_at(src.location(span), reason);
    }

    fn err_at(&mut self, loc: Location, reason: String) {
        self.errors.push(ConfigError {
            path: loc.path,
            line: loc.line,
            column: loc.column,
            reason,
        });
    }

    /// Checks that a category written in the configuration is in the vocabulary
    /// (`hedgerow_model::VOCABULARY`, published as docs/categories.md); if not, an error at
    /// its file, line and column, `what` saying where it was used. Returns whether it is.
    fn vocabulary(&mut self, src: &Source, c: &Spanned<Category>, what: &str) -> bool {
        if c.get_ref().info().is_some() {
            return true;
        }
        let id = c.get_ref().as_str();
        let hint = hedgerow_model::suggest_category(id)
            .map(|s| format!(" (did you mean \"{s}\"?)"))
            .unwrap_or_default();
        let reason = format!(
            "{what} category \"{id}\", which is not in the category vocabulary{hint}; the categories are listed in docs/categories.md"
        );
        self.err(src, c.span(), reason);
        false
    }

    fn parse(&mut self, src: &Source) -> Option<RawFile> {
        match toml::from_str::<RawFile>(&src.text) {
            Ok(raw) => Some(raw),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.err(src, span, e.message().trim().to_owned());
                self.unparsed = true;
                None
            }
        }
    }

    fn merge(&mut self, files: Vec<(Source, RawFile)>) -> Option<Config> {
        let mut server: Option<(ServerConfig, Location)> = None;
        let mut dns: Option<(DnsConfig, Location)> = None;
        let mut proxy: Option<(ProxyConfig, Location)> = None;
        let mut blockpage: Option<(BlockPageConfig, Location)> = None;
        let mut lists: BTreeMap<String, ListSource> = BTreeMap::new();
        let mut groups: BTreeMap<String, GroupWithSpans> = BTreeMap::new();
        let mut devices = Vec::new();
        let mut device_groups = Vec::new();
        let mut leases = Vec::new();
        let mut logs: Option<(LogsConfig, Location)> = None;
        let mut breaches: Option<(BreachesConfig, Location)> = None;
        let mut alerts: Option<(AlertsConfig, Location)> = None;
        let mut api: Option<(ApiConfig, Location)> = None;
        let mut change_control: Option<(ChangeControlConfig, Location)> = None;
        let mut ship: Option<(crate::ShipConfig, Location)> = None;
        let mut metrics: Option<(MetricsConfig, Location)> = None;
        let mut safesearch: Option<(SafeSearchConfig, Location)> = None;
        let mut console: Option<(crate::ConsoleConfig, Location)> = None;
        let mut rule_categories = Vec::new();
        let mut proxy_groups: Vec<(String, Location)> = Vec::new();
        let mut group_listens: Vec<(String, IpAddr, Location)> = Vec::new();
        let paths: Vec<PathBuf> = files.iter().map(|(s, _)| s.path.clone()).collect();

        for (src, raw) in files {
            if let Some(s) = raw.server {
                let loc = src.location(s.span());
                let s = s.into_inner();
                let tz = s.timezone.get_ref().clone();
                if jiff::tz::TimeZone::get(&tz).is_err() {
                    self.err(&src, s.timezone.span(), format!("unknown time zone {tz:?}"));
                }
                let value = ServerConfig {
                    state_dir: resolve(&src.path, &s.state_dir),
                    timezone: tz,
                    access_log: s.access_log,
                    illegal_shrink_limit: s.illegal_shrink_limit,
                };
                if !(s.illegal_shrink_limit > 0.0 && s.illegal_shrink_limit < 1.0) {
                    self.err_at(
                        loc.clone(),
                        format!(
                            "[server] illegal_shrink_limit must be between 0 and 1 (a fraction), not {}",
                            s.illegal_shrink_limit
                        ),
                    );
                }
                self.once(&mut server, value, loc, "[server]");
            }
            if let Some(d) = raw.dns {
                let loc = src.location(d.span());
                let value = self.dns(&src, d.into_inner(), &loc);
                self.once(&mut dns, value, loc, "[dns]");
            }
            if let Some(p) = raw.proxy {
                let loc = src.location(p.span());
                let p = p.into_inner();
                if p.listen.is_empty() {
                    self.err_at(
                        loc.clone(),
                        "[proxy] listen must name at least one address".into(),
                    );
                }
                let value = self.proxy(&src, p, &loc, &mut proxy_groups);
                self.once(&mut proxy, value, loc, "[proxy]");
            }
            if let Some(b) = raw.blockpage {
                let loc = src.location(b.span());
                let b = b.into_inner();
                if b.listen.is_empty() && b.tls_listen.is_empty() {
                    self.err_at(
                        loc.clone(),
                        "[blockpage] needs listen (plain HTTP) or tls_listen (HTTPS) addresses"
                            .into(),
                    );
                }
                let value = BlockPageConfig {
                    listen: b.listen,
                    tls_listen: b.tls_listen,
                };
                self.once(&mut blockpage, value, loc, "[blockpage]");
            }
            for (name, list) in raw.lists {
                let loc = src.location(name.span());
                let name = name.into_inner();
                if let Some(prev) = lists.get(&name) {
                    let reason = format!("list {name:?} is already defined at {}", prev.location);
                    self.err_at(loc, reason);
                    continue;
                }
                let l = self.list(&src, name.clone(), list, loc);
                lists.insert(name, l);
            }
            for (name, group) in raw.groups {
                let loc = src.location(name.span());
                let name = name.into_inner();
                if let Some((prev, _, _)) = groups.get(&name) {
                    let reason = format!("group {name:?} is already defined at {}", prev.location);
                    self.err_at(loc, reason);
                    continue;
                }
                for a in &group.listen_addresses {
                    group_listens.push((name.clone(), *a.get_ref(), src.location(a.span())));
                }
                let parsed = self.group(&src, name.clone(), group, loc);
                groups.insert(name, parsed);
            }
            for l in raw.leases {
                let location = src.location(l.span());
                let l = l.into_inner();
                leases.push(LeaseFile {
                    path: resolve(&src.path, &l.path),
                    format: l.format,
                    location,
                });
            }
            if let Some(l) = raw.logs {
                let loc = src.location(l.span());
                let value = self.logs(l.into_inner(), &loc);
                self.once(&mut logs, value, loc, "[logs]");
            }
            if let Some(b) = raw.breaches {
                let loc = src.location(b.span());
                let value = self.breaches(&src, b.into_inner(), &mut rule_categories);
                self.once(&mut breaches, value, loc, "[breaches]");
            }
            if let Some(a) = raw.api {
                let loc = src.location(a.span());
                let a = a.into_inner();
                let mut names = Vec::new();
                for n in a.names {
                    let span = n.span();
                    let n = n.into_inner();
                    if Host::parse(&n).is_err() || n.contains('*') {
                        self.err(&src, span, format!("[api] names: {n:?} is not a host name"));
                    } else {
                        names.push(n.to_ascii_lowercase());
                    }
                }
                let value = ApiConfig {
                    listen: a.listen,
                    names,
                };
                self.once(&mut api, value, loc, "[api]");
            }
            if let Some(c) = raw.change_control {
                let loc = src.location(c.span());
                let value = self.change_control(&src, c.into_inner());
                self.once(&mut change_control, value, loc, "[change_control]");
            }
            if let Some(a) = raw.alerts {
                let loc = src.location(a.span());
                let value = self.alerts(&src, a.into_inner(), &loc);
                self.once(&mut alerts, value, loc, "[alerts]");
            }
            if let Some(c) = raw.console {
                let loc = src.location(c.span());
                let table = loc.clone();
                let mut errors = Vec::new();
                let value = crate::console::validate(c.into_inner(), &mut |span, reason| {
                    errors.push((span, reason))
                });
                for (span, reason) in errors {
                    match span {
                        Some(span) => self.err(&src, span, reason),
                        None => self.err_at(table.clone(), reason),
                    }
                }
                self.once(&mut console, value, loc, "[console]");
            }
            if let Some(s) = raw.ship {
                let loc = src.location(s.span());
                let table = loc.clone();
                let mut errors = Vec::new();
                let value = crate::ship::validate(
                    s.into_inner(),
                    &|p| resolve(&src.path, p),
                    &mut |span, reason| errors.push((span, reason)),
                );
                for (span, reason) in errors {
                    match span {
                        Some(span) => self.err(&src, span, reason),
                        None => self.err_at(table.clone(), reason),
                    }
                }
                self.once(&mut ship, value, loc, "[ship]");
            }
            if let Some(m) = raw.metrics {
                let loc = src.location(m.span());
                let m = m.into_inner();
                if m.listen.is_empty() {
                    self.err_at(
                        loc.clone(),
                        "[metrics] listen must name at least one address".into(),
                    );
                }
                self.once(
                    &mut metrics,
                    MetricsConfig { listen: m.listen },
                    loc,
                    "[metrics]",
                );
            }
            if let Some(s) = raw.safesearch {
                let loc = src.location(s.span());
                let value = self.safesearch(&src, s.into_inner());
                self.once(&mut safesearch, value, loc, "[safesearch]");
            }
            for d in raw.devices {
                let loc = src.location(d.span());
                let d = d.into_inner();
                if d.name.trim().is_empty() {
                    self.err_at(loc.clone(), "a device needs a name".into());
                }
                if d.ip.is_none() && d.mac.is_none() {
                    self.err_at(
                        loc.clone(),
                        format!("device {:?} needs an ip or a mac", d.name),
                    );
                }
                if let Some(g) = &d.group {
                    device_groups.push((g.get_ref().clone(), src.location(g.span())));
                }
                devices.push(Device {
                    name: d.name,
                    ip: d.ip,
                    mac: d.mac,
                    user: d.user,
                    group: d.group.map(Spanned::into_inner),
                    location: loc,
                });
            }
        }

        let main = paths.first().cloned().unwrap_or_default();
        let top = |what: &str| ConfigError {
            path: main.clone(),
            line: 1,
            column: 1,
            reason: format!("missing {what} table"),
        };
        if server.is_none() && !self.unparsed {
            self.errors.push(top("[server]"));
        }
        if dns.is_none() && !self.unparsed {
            self.errors.push(top("[dns]"));
        }
        if !self.unparsed && !lists.values().any(|l| l.kind == ListKind::Illegal) {
            let mut e = top("[lists.NAME]");
            e.reason = "no illegal-tier list (kind = \"illegal\"): the IWF and police lists cannot be left out".into();
            self.errors.push(e);
        }
        if groups.is_empty() && !self.unparsed {
            let mut e = top("[groups.NAME]");
            e.reason = "no groups are defined: every client would be refused".into();
            self.errors.push(e);
        }
        if !self.unparsed {
            for (g, loc) in proxy_groups {
                if !groups.contains_key(&g) {
                    self.err_at(
                        loc,
                        format!("intercept_groups names group {g:?}, which is not defined"),
                    );
                }
            }
            for (cat, loc) in rule_categories {
                if !lists.values().any(|l| l.category.as_ref() == Some(&cat)) {
                    let reason = format!("breach rule names category \"{cat}\", which no list has");
                    self.err_at(loc, reason);
                }
            }
            self.cross_checks(&lists, &groups, &devices, &device_groups);
            if let Some((d, _)) = &dns {
                self.listen_checks(&d.listen, &group_listens);
            }
            if let Some((b, loc)) = &blockpage
                && !b.tls_listen.is_empty()
                && !proxy
                    .as_ref()
                    .is_some_and(|(p, _)| p.ca_cert.is_some() && p.ca_key.is_some())
            {
                self.err_at(
                    loc.clone(),
                    "[blockpage] tls_listen needs the school CA ([proxy] ca_cert and ca_key) to mint a certificate for each blocked name; without one leave tls_listen out (see config/README.md for what browsers show then)".into(),
                );
            }
            self.approved_checks(&lists, &groups);
            let blockpage_addr = dns.as_ref().and_then(|(d, _)| d.blockpage_ipv4);
            for (g, _, _) in groups.values() {
                if g.dns_block == DnsBlockMode::Blockpage
                    && blockpage_addr.is_none()
                    && dns.is_some()
                {
                    let reason = format!(
                        "group {:?} answers blocked queries with the block page, but [dns] sets no blockpage_ipv4",
                        g.name
                    );
                    self.err_at(g.location.clone(), reason);
                }
            }
        }

        let server = server?.0;
        let mut lists: Vec<ListSource> = lists.into_values().collect();
        for l in &mut lists {
            if l.fetch.is_some() && l.path.as_os_str().is_empty() {
                l.path = server
                    .state_dir
                    .join("lists")
                    .join(format!("{}.list", l.name));
            }
        }
        Some(Config {
            files: paths,
            server,
            dns: dns?.0,
            proxy: proxy.map(|p| p.0),
            blockpage: blockpage.map(|b| b.0),
            lists,
            groups: groups.into_values().map(|(g, _, _)| g).collect(),
            devices,
            leases,
            logs: logs.map(|l| l.0).unwrap_or_default(),
            breaches: breaches.map(|b| b.0).unwrap_or_default(),
            alerts: alerts.map(|a| a.0),
            api: api.map(|a| a.0),
            change_control: change_control.map(|c| c.0).unwrap_or_default(),
            ship: ship.map(|s| s.0),
            metrics: metrics.map(|m| m.0),
            safesearch: safesearch.map(|s| s.0).unwrap_or_default(),
            console: console.map(|c| c.0),
        })
    }

    fn safesearch(&mut self, src: &Source, s: RawSafeSearchConfig) -> SafeSearchConfig {
        let Some(names) = s.unenforceable else {
            return SafeSearchConfig::default();
        };
        let mut unenforceable = Vec::new();
        for n in names {
            match Host::parse(n.get_ref()) {
                Ok(host) if !host.is_ip() => unenforceable.push(host.to_string()),
                Ok(_) => self.err(
                    src,
                    n.span(),
                    "[safesearch] unenforceable: a search engine's host name, not an address"
                        .into(),
                ),
                Err(e) => self.err(src, n.span(), format!("[safesearch] unenforceable: {e}")),
            }
        }
        SafeSearchConfig { unenforceable }
    }

    fn proxy(
        &mut self,
        src: &Source,
        p: RawProxy,
        loc: &Location,
        groups: &mut Vec<(String, Location)>,
    ) -> ProxyConfig {
        if p.listen.is_empty() {
            self.err_at(
                loc.clone(),
                "[proxy] listen must name at least one address".into(),
            );
        }
        if !p.intercept_groups.is_empty() && (p.ca_cert.is_none() || p.ca_key.is_none()) {
            self.err_at(
                loc.clone(),
                "[proxy] intercept_groups needs ca_cert and ca_key (the school's CA)".into(),
            );
        }
        let mut never = Vec::new();
        for h in p.never_intercept {
            match Host::parse(h.get_ref()) {
                Ok(host) => never.push(host.to_string()),
                Err(e) => self.err(src, h.span(), format!("never_intercept: {e}")),
            }
        }
        let mut pac_direct = Vec::new();
        for entry in &p.pac_direct {
            match parse_pac_direct(entry.get_ref()) {
                Ok(d) => pac_direct.push(d),
                Err(reason) => self.err(src, entry.span(), format!("pac_direct: {reason}")),
            }
        }
        if p.max_header_bytes < 1024 || p.max_connections_per_client == 0 {
            self.err_at(
                loc.clone(),
                "[proxy] max_header_bytes must be at least 1024 and max_connections_per_client at least 1".into(),
            );
        }
        ProxyConfig {
            listen: p.listen,
            connect_ports: p.connect_ports,
            intercept_groups: p
                .intercept_groups
                .into_iter()
                .map(|g| {
                    groups.push((g.get_ref().clone(), src.location(g.span())));
                    g.into_inner()
                })
                .collect(),
            ca_cert: p.ca_cert.map(|c| resolve(&src.path, &c)),
            ca_key: p.ca_key.map(|c| resolve(&src.path, &c)),
            never_intercept: never,
            upstream_ca_file: p.upstream_ca_file.map(|c| resolve(&src.path, &c)),
            allow_destinations: p.allow_destinations,
            users_file: p.users_file.map(|c| resolve(&src.path, &c)),
            pac_proxy: p.pac_proxy,
            pac_direct,
            review_contact: p.review_contact,
            connect_timeout: p.connect_timeout,
            idle_timeout: p.idle_timeout,
            max_header_bytes: p.max_header_bytes,
            max_connections_per_client: p.max_connections_per_client,
            max_chunked_body: p.max_chunked_body,
        }
    }

    fn logs(&mut self, l: RawLogs, loc: &Location) -> LogsConfig {
        let d = LogsConfig::default();
        let value = LogsConfig {
            access_retention: l.access_retention.unwrap_or(d.access_retention),
            breach_retention: l.breach_retention.unwrap_or(d.breach_retention),
            cache_mb: l.cache_mb.unwrap_or(d.cache_mb),
            queue: l.queue.unwrap_or(d.queue),
            flush_interval: l.flush_interval.unwrap_or(d.flush_interval),
        };
        let day = std::time::Duration::from_secs(86_400);
        if value.access_retention < day || value.breach_retention < day {
            self.err_at(loc.clone(), "[logs] retention must be at least 1d".into());
        }
        if value.queue == 0 || value.cache_mb == 0 {
            self.err_at(
                loc.clone(),
                "[logs] queue and cache_mb must be above 0".into(),
            );
        }
        if value.flush_interval.is_zero()
            || value.flush_interval > std::time::Duration::from_secs(5)
        {
            self.err_at(
                loc.clone(),
                "[logs] flush_interval must be between 1ms and 5s".into(),
            );
        }
        value
    }

    fn breaches(
        &mut self,
        src: &Source,
        b: RawBreaches,
        categories: &mut Vec<(Category, Location)>,
    ) -> BreachesConfig {
        let mut rules = Vec::new();
        for r in b.rules {
            let loc = src.location(r.span());
            let r = r.into_inner();
            if r.tiers.contains(&hedgerow_model::Tier::Illegal) {
                self.err_at(
                    loc.clone(),
                    "the illegal tier is always a critical breach; leave it out of rules".into(),
                );
            }
            let cats = r
                .categories
                .into_iter()
                .map(|c| {
                    if self.vocabulary(src, &c, "breach rule names") {
                        categories.push((c.get_ref().clone(), src.location(c.span())));
                    }
                    c.into_inner()
                })
                .collect();
            rules.push(hedgerow_model::BreachRule {
                name: r.name.into(),
                tiers: r.tiers,
                categories: cats,
                concern: r.concern,
                severity: r.severity,
            });
        }
        BreachesConfig {
            window: b.window.unwrap_or(BreachesConfig::default().window),
            rules,
        }
    }

    /// `[change_control]`: each setting may only make approval stricter than its default; a
    /// looser one is an error naming the default it would undercut.
    fn change_control(&mut self, src: &Source, c: RawChangeControl) -> ChangeControlConfig {
        const STRICTER: &str = "change control can only be made stricter than its defaults";
        let mut out = ChangeControlConfig::default();
        if let Some(t) = c.approve_tightening {
            out.approve_tightening = *t.get_ref();
        }
        if let Some(d) = c.dsl_cosign_from {
            let span = d.span();
            match d.get_ref().as_str() {
                "low" => out.dsl_cosign_from = RiskLevel::Low,
                "medium" => out.dsl_cosign_from = RiskLevel::Medium,
                "high" => out.dsl_cosign_from = RiskLevel::High,
                other => {
                    let reason = if matches!(other, "never" | "none" | "off" | "critical") {
                        format!(
                            "dsl_cosign_from = {other:?} would be looser than the default (\"high\": a high-risk change always needs the DSL's co-sign); {STRICTER}"
                        )
                    } else {
                        format!(
                            "dsl_cosign_from = {other:?}: expected \"low\", \"medium\" or \"high\""
                        )
                    };
                    self.err(src, span, reason);
                }
            }
        }
        if let Some(n) = c.approvers {
            let span = n.span();
            match *n.get_ref() {
                n @ 1..=5 => out.approvers = n as u8,
                n if n < 1 => self.err(
                    src,
                    span,
                    format!(
                        "approvers = {n} would be looser than the default (1: a loosening change needs an approver other than its proposer); {STRICTER}"
                    ),
                ),
                n => self.err(
                    src,
                    span,
                    format!("approvers = {n}: at most 5 different approvers can be required"),
                ),
            }
        }
        out
    }

    fn alerts(&mut self, src: &Source, a: RawAlerts, loc: &Location) -> AlertsConfig {
        if a.webhook.is_none() && a.email.is_none() {
            self.err_at(
                loc.clone(),
                "[alerts] needs a webhook or an email channel".into(),
            );
        }
        if a.attempts == 0 {
            self.err_at(loc.clone(), "[alerts] attempts must be at least 1".into());
        }
        let webhook = a.webhook.map(|w| {
            let w = w.into_inner();
            let url = w.url.get_ref();
            let ok = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                let reason = format!("webhook url {url:?} must be an http:// or https:// URL");
                self.err(src, w.url.span(), reason);
            }
            WebhookConfig {
                url: w.url.into_inner(),
            }
        });
        let email = a.email.map(|e| {
            let span = e.span();
            let e = e.into_inner();
            for addr in std::iter::once(&e.from).chain(e.to.iter()) {
                let a = addr.get_ref();
                if a.split_once('@')
                    .is_none_or(|(l, d)| l.is_empty() || d.is_empty())
                {
                    self.err(src, addr.span(), format!("{a:?} is not an e-mail address"));
                }
            }
            if e.to.is_empty() {
                self.err(
                    src,
                    span,
                    "[alerts.email] to needs at least one address".into(),
                );
            }
            EmailConfig {
                port: e.port.unwrap_or(match e.tls {
                    SmtpTls::None => 25,
                    SmtpTls::Starttls => 587,
                    SmtpTls::Tls => 465,
                }),
                server: e.server,
                tls: e.tls,
                from: e.from.into_inner(),
                to: e.to.into_iter().map(Spanned::into_inner).collect(),
                username: e.username,
                password_file: e.password_file.map(|p| resolve(&src.path, &p)),
            }
        });
        AlertsConfig {
            immediate: a.immediate,
            digest_every: a.digest_every,
            attempts: a.attempts,
            webhook,
            email,
        }
    }

    fn once<T>(&mut self, slot: &mut Option<(T, Location)>, value: T, loc: Location, what: &str) {
        if let Some((_, prev)) = slot {
            let reason = format!("{what} is already defined at {prev}");
            self.err_at(loc, reason);
        } else {
            *slot = Some((value, loc));
        }
    }

    fn dns(&mut self, src: &Source, d: RawDns, loc: &Location) -> DnsConfig {
        if d.listen.is_empty() {
            self.err_at(
                loc.clone(),
                "[dns] listen must name at least one address".into(),
            );
        }
        if d.upstreams.is_empty() {
            self.err_at(loc.clone(), "[dns] needs at least one upstream".into());
        }
        let resolv_conf = d.resolv_conf.as_ref().map_or_else(
            || PathBuf::from(DEFAULT_RESOLV_CONF),
            |p| resolve(&src.path, p),
        );
        let mut upstreams = Vec::new();
        let mut system_skipped = Vec::new();
        for u in d.upstreams {
            let span = u.span();
            let u = u.into_inner();
            let system = u.address.get_ref() == "system";
            let address = if system {
                None
            } else {
                match u.address.get_ref().parse::<SocketAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        let reason = format!(
                            "address {:?}: expected an address and port such as \"192.0.2.53:53\" or \"[2001:db8::53]:53\", or \"system\" (the nameservers of {})",
                            u.address.get_ref(),
                            resolv_conf.display()
                        );
                        self.err(src, u.address.span(), reason);
                        continue;
                    }
                }
            };
            match (u.protocol, &u.tls_name) {
                (UpstreamProtocol::Tls, None) => self.err(
                    src,
                    span.clone(),
                    "a tls upstream needs tls_name, the name its certificate must carry".into(),
                ),
                (UpstreamProtocol::Udp | UpstreamProtocol::Tcp, Some(_)) => self.err(
                    src,
                    span.clone(),
                    "tls_name is only for protocol = \"tls\"".into(),
                ),
                _ => {}
            }
            if system && u.protocol == UpstreamProtocol::Tls {
                self.err(
                    src,
                    span.clone(),
                    "address = \"system\" reads plain nameservers from resolv.conf: use protocol = \"udp\" or \"tcp\"".into(),
                );
            }
            let ca_file = u.ca_file.map(|p| resolve(&src.path, &p));
            if let Some(p) = &ca_file {
                if u.protocol != UpstreamProtocol::Tls {
                    self.err(
                        src,
                        span.clone(),
                        "ca_file is only for protocol = \"tls\"".into(),
                    );
                } else if !p.is_file() {
                    self.err(
                        src,
                        span.clone(),
                        format!("ca_file {} not found", p.display()),
                    );
                }
            }
            match address {
                Some(address) => upstreams.push(Upstream {
                    address,
                    protocol: u.protocol,
                    tls_name: u.tls_name,
                    ca_file,
                    system: false,
                }),
                None => {
                    let text = match std::fs::read_to_string(&resolv_conf) {
                        Ok(t) => t,
                        Err(e) => {
                            let reason = format!(
                                "address = \"system\": cannot read {}: {e}",
                                resolv_conf.display()
                            );
                            self.err(src, span.clone(), reason);
                            continue;
                        }
                    };
                    let (found, skipped) = system_nameservers(&text, &d.listen);
                    if found.is_empty() {
                        let reason = format!(
                            "address = \"system\": {} names no nameserver other than Hedgerow's own listen addresses{}; name an upstream's address instead",
                            resolv_conf.display(),
                            if skipped.is_empty() {
                                String::new()
                            } else {
                                let s: Vec<String> =
                                    skipped.iter().map(ToString::to_string).collect();
                                format!(" (skipped {})", s.join(", "))
                            }
                        );
                        self.err(src, span.clone(), reason);
                    }
                    system_skipped.extend(skipped);
                    for address in found {
                        upstreams.push(Upstream {
                            address,
                            protocol: u.protocol,
                            tls_name: None,
                            ca_file: None,
                            system: true,
                        });
                    }
                }
            }
        }
        if d.cache.min_ttl > d.cache.max_ttl {
            self.err_at(
                loc.clone(),
                "[dns.cache] min_ttl is longer than max_ttl".into(),
            );
        }
        if d.timeout.is_zero() {
            self.err_at(loc.clone(), "[dns] timeout must be longer than zero".into());
        }
        let mut trusted_forwarders = Vec::new();
        for f in &d.trusted_forwarders {
            match parse_net_or_addr(f.get_ref()) {
                Some(net) => trusted_forwarders.push(net),
                None => {
                    let reason = format!(
                        "trusted_forwarders: {:?} is not an address or a network (such as \"10.20.0.1\" or \"10.20.0.0/24\")",
                        f.get_ref()
                    );
                    self.err(src, f.span(), reason);
                }
            }
        }
        DnsConfig {
            listen: d.listen,
            upstreams,
            timeout: d.timeout,
            cache: CacheConfig {
                size: d.cache.size,
                min_ttl: d.cache.min_ttl,
                max_ttl: d.cache.max_ttl,
                negative_ttl: d.cache.negative_ttl,
            },
            rate_limit_qps: d.rate_limit_qps,
            blockpage_ipv4: d.blockpage_ipv4,
            blockpage_ipv6: d.blockpage_ipv6,
            trusted_forwarders,
            resolv_conf,
            system_skipped,
        }
    }

    /// Each group's `listen_addresses` must be the address of a `[dns] listen` entry (a query
    /// arriving on a wildcard listener does not say which address it was sent to), and belong
    /// to one group only.
    fn listen_checks(&mut self, listen: &[SocketAddr], wanted: &[(String, IpAddr, Location)]) {
        let mut taken: HashMap<IpAddr, &str> = HashMap::new();
        for (group, addr, loc) in wanted {
            if !listen.iter().any(|l| l.ip() == *addr) {
                let reason = format!(
                    "group {group:?}: listen address {addr} is not the address of any [dns] listen entry (list each of the appliance's addresses there on its own)"
                );
                self.err_at(loc.clone(), reason);
            }
            if let Some(other) = taken.insert(*addr, group)
                && other != group
            {
                let reason =
                    format!("listen address {addr} is in both group {other:?} and group {group:?}");
                self.err_at(loc.clone(), reason);
            }
        }
    }

    fn list(&mut self, src: &Source, name: String, l: RawList, loc: Location) -> ListSource {
        let fetch = self.fetch(src, &name, &l, &loc);
        // A downloaded list's copy in force is under the state directory unless a path is
        // given; the merge fills it in once `[server] state_dir` is known.
        let path = match (&l.path, &fetch) {
            (Some(p), _) => resolve(&src.path, p.get_ref()),
            (None, Some(_)) => PathBuf::new(),
            (None, None) => {
                self.err_at(loc.clone(), format!("list {name:?} needs a path or a url"));
                PathBuf::new()
            }
        };
        if l.kind == ListKind::Illegal && l.optional {
            let reason = format!(
                "illegal-tier list {name:?} cannot be optional: the illegal tier cannot be switched off"
            );
            self.err_at(loc.clone(), reason);
        }
        // A missing illegal-tier file is the policy's to judge: it keeps enforcing the last
        // good copy, or refuses when there is none. A downloaded list's file appears with its
        // first download.
        if let Some(p) = &l.path
            && !l.optional
            && fetch.is_none()
            && l.kind != ListKind::Illegal
            && !path.is_file()
        {
            let reason = format!("list {name:?}: file {} not found", path.display());
            self.err(src, p.span(), reason);
        }
        if let Some(c) = &l.category {
            self.vocabulary(src, c, &format!("list {name:?} has"));
        }
        let needs_category = matches!(l.kind, ListKind::Block | ListKind::Illegal);
        if needs_category && l.category.is_none() {
            self.err_at(loc.clone(), format!("list {name:?} needs a category"));
        }
        match (l.kind, l.format) {
            (ListKind::Illegal, ListFormat::Regex | ListFormat::Phrases) => {
                let reason = format!("illegal-tier list {name:?} must be domains or urls");
                self.err_at(loc.clone(), reason);
            }
            (ListKind::Allow | ListKind::Approved, ListFormat::Phrases) => {
                self.err_at(
                    loc.clone(),
                    format!("allow list {name:?} cannot be phrases"),
                );
            }
            _ => {}
        }
        ListSource {
            name,
            path,
            format: l.format,
            kind: l.kind,
            category: l.category.map(Spanned::into_inner),
            url_match: l.url_match,
            severity: l.severity,
            optional: l.optional,
            fetch,
            location: loc,
        }
    }

    /// A list's download settings (`url` and what goes with it), checked.
    fn fetch(
        &mut self,
        src: &Source,
        name: &str,
        l: &RawList,
        loc: &Location,
    ) -> Option<ListFetch> {
        let Some(url) = &l.url else {
            let stray = [
                ("every", l.every.is_some()),
                ("max_age", l.max_age.is_some()),
                ("credential", l.credential.is_some()),
                ("credentials_file", l.credentials_file.is_some()),
                ("ca_file", l.ca_file.is_some()),
                ("sha256_url", l.sha256_url.is_some()),
                ("minisign_key", l.minisign_key.is_some()),
                ("signature_url", l.signature_url.is_some()),
                ("min_entries", l.min_entries.is_some()),
                ("max_bytes", l.max_bytes.is_some()),
            ];
            for (key, set) in stray {
                if set {
                    self.err_at(
                        loc.clone(),
                        format!("list {name:?}: {key} is only for a list with a url"),
                    );
                }
            }
            return None;
        };
        if !url.get_ref().starts_with("https://") {
            let reason = format!(
                "list {name:?}: url must start with https:// (lists are only downloaded over TLS)"
            );
            self.err(src, url.span(), reason);
        } else if let Some(why) = secret_in_url(url.get_ref()) {
            let reason = format!(
                "list {name:?}: url {why}; secrets never go in the configuration: put it in a file named by credentials_file or a systemd credential (credential)"
            );
            self.err(src, url.span(), reason);
        }
        for (key, u) in [
            ("sha256_url", &l.sha256_url),
            ("signature_url", &l.signature_url),
        ] {
            if let Some(u) = u
                && !u.starts_with("https://")
            {
                self.err_at(
                    loc.clone(),
                    format!("list {name:?}: {key} must start with https://"),
                );
            }
        }
        let illegal = l.kind == ListKind::Illegal;
        let every = l.every.unwrap_or(DEFAULT_EVERY);
        if every.is_zero() {
            self.err_at(
                loc.clone(),
                format!("list {name:?}: every must be longer than zero"),
            );
        }
        if illegal && every > DEFAULT_EVERY {
            let reason = format!(
                "illegal-tier list {name:?}: every must be 12h or less (the IWF list is fetched at least twice a day)"
            );
            self.err_at(loc.clone(), reason);
        }
        let max_age = l.max_age.unwrap_or(every.saturating_mul(4));
        if max_age < every {
            self.err_at(
                loc.clone(),
                format!("list {name:?}: max_age is shorter than every"),
            );
        }
        let credentials = match (&l.credential, &l.credentials_file) {
            (Some(_), Some(_)) => {
                self.err_at(
                    loc.clone(),
                    format!("list {name:?}: credential and credentials_file both given; use one"),
                );
                None
            }
            (Some(c), None) => {
                if c.is_empty() || c.contains('/') || c.starts_with('.') {
                    self.err_at(
                        loc.clone(),
                        format!("list {name:?}: credential {c:?} is not a systemd credential name"),
                    );
                }
                Some(Credentials::Systemd(c.clone()))
            }
            (None, Some(p)) => Some(Credentials::File(resolve(&src.path, p))),
            (None, None) => None,
        };
        let ca_file = l.ca_file.as_ref().map(|p| resolve(&src.path, p));
        if let Some(p) = &ca_file
            && !p.is_file()
        {
            self.err_at(
                loc.clone(),
                format!("list {name:?}: ca_file {} not found", p.display()),
            );
        }
        if l.signature_url.is_some() && l.minisign_key.is_none() {
            self.err_at(
                loc.clone(),
                format!("list {name:?}: signature_url needs minisign_key"),
            );
        }
        Some(ListFetch {
            url: url.get_ref().clone(),
            every,
            max_age,
            credentials,
            ca_file,
            sha256_url: l.sha256_url.clone(),
            minisign_key: l.minisign_key.clone(),
            signature_url: l.signature_url.clone(),
            min_entries: l.min_entries.unwrap_or(1),
            max_bytes: l.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
        })
    }

    fn group(&mut self, src: &Source, name: String, g: RawGroup, loc: Location) -> GroupWithSpans {
        if g.networks.is_empty() && g.listen_addresses.is_empty() {
            self.err_at(
                loc.clone(),
                format!("group {name:?} needs at least one network or listen address"),
            );
        }
        let mut cats = Vec::new();
        for c in &g.block_categories {
            // An id outside the vocabulary is reported here, once, and not again as "no list
            // provides it".
            if self.vocabulary(src, c, &format!("group {name:?} blocks")) {
                cats.push((c.clone(), src.location(c.span())));
            }
        }
        let entry = |cx: &mut Self, text: String, eloc: Location, dependency_of: Option<String>| {
            if let Err(reason) = check_entry(&text) {
                cx.err_at(eloc.clone(), format!("{text:?}: {reason}"));
            }
            LocalEntry {
                text,
                location: eloc,
                dependency_of,
            }
        };
        let mut allow = Vec::new();
        for e in g.allow {
            let eloc = src.location(e.span());
            match e.into_inner() {
                RawAllow::Entry(text) => allow.push(entry(self, text, eloc, None)),
                RawAllow::Site { site, with } => {
                    allow.push(entry(self, site.clone(), eloc.clone(), None));
                    for host in with {
                        if host.contains('/') {
                            // A dependency is a host, not a page.
                            self.err_at(
                                eloc.clone(),
                                format!(
                                    "{host:?} in `with` of {site:?}: list the host a page loads from (such as \"cdn.example.net\"), not a URL"
                                ),
                            );
                            continue;
                        }
                        let dep = entry(self, host, eloc.clone(), Some(site.clone()));
                        allow.push(dep);
                    }
                }
            }
        }
        let mut block = Vec::new();
        for e in g.block {
            let eloc = src.location(e.span());
            block.push(entry(self, e.into_inner(), eloc, None));
        }
        if g.mode == GroupMode::Filtered
            && let Some(first) = g.approved_lists.first()
        {
            self.err(
                src,
                first.span(),
                format!(
                    "group {name:?}: approved_lists is for mode = \"approved-only\" groups (in a filtered group every allow list applies already)"
                ),
            );
        }
        let approved_lists: Vec<(String, Location)> = g
            .approved_lists
            .iter()
            .map(|l| (l.get_ref().clone(), src.location(l.span())))
            .collect();
        let blocked: Vec<Category> = g
            .block_categories
            .iter()
            .map(|c| c.get_ref().clone())
            .collect();
        let mut schedules = Vec::new();
        for s in g.schedules {
            let sloc = src.location(s.span());
            let s = s.into_inner();
            let from = parse_time(&s.from);
            let to = parse_time(&s.to);
            match (&from, &to) {
                (Ok(f), Ok(t)) if f >= t => {
                    let reason = format!(
                        "schedule {:?}: from {} is not before to {}",
                        s.name, s.from, s.to
                    );
                    self.err_at(sloc.clone(), reason);
                }
                (Err(e), _) | (_, Err(e)) => {
                    self.err_at(sloc.clone(), format!("schedule {:?}: {e}", s.name));
                }
                _ => {}
            }
            if s.days.is_empty() {
                self.err_at(sloc.clone(), format!("schedule {:?} names no days", s.name));
            }
            for c in &s.allow_categories {
                let what = format!("schedule {:?} allows", s.name);
                if !self.vocabulary(src, c, &what) {
                    continue;
                }
                if !blocked.contains(c.get_ref()) {
                    let reason = format!(
                        "schedule {:?} allows {}, which group {name:?} does not block",
                        s.name,
                        c.get_ref()
                    );
                    self.err(src, c.span(), reason);
                }
            }
            let mut days: Vec<_> = s
                .days
                .iter()
                .flat_map(|d| d.weekdays().iter().copied())
                .collect();
            days.sort_by_key(|d| d.to_monday_zero_offset());
            days.dedup();
            schedules.push(Schedule {
                name: s.name,
                allow_categories: s
                    .allow_categories
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                days,
                from: from.unwrap_or(jiff::civil::Time::MIN),
                to: to.unwrap_or(jiff::civil::Time::MIN),
            });
        }
        let group = Group {
            name,
            description: g.description,
            networks: g.networks.iter().map(|n| n.get_ref().trunc()).collect(),
            listen_addresses: g.listen_addresses.iter().map(|a| *a.get_ref()).collect(),
            block_categories: blocked,
            safesearch: g.safesearch,
            youtube: g.youtube,
            dns_block: g.dns_block,
            mode: g.mode,
            approved_lists: approved_lists.iter().map(|(n, _)| n.clone()).collect(),
            allow,
            block,
            schedules,
            location: loc,
        };
        (group, cats, approved_lists)
    }

    fn cross_checks(
        &mut self,
        lists: &BTreeMap<String, ListSource>,
        groups: &BTreeMap<String, GroupWithSpans>,
        devices: &[Device],
        device_groups: &[(String, Location)],
    ) {
        let known: Vec<&Category> = lists
            .values()
            .filter(|l| l.kind == ListKind::Block)
            .filter_map(|l| l.category.as_ref())
            .collect();
        let mut networks: HashMap<IpNet, &str> = HashMap::new();
        for (name, (group, cats, _)) in groups {
            for (c, loc) in cats {
                if !known.contains(&c.get_ref()) {
                    let reason = format!(
                        "group {name:?} blocks category {:?}, but no block list provides it",
                        c.get_ref().as_str()
                    );
                    self.err_at(loc.clone(), reason);
                }
            }
            for net in &group.networks {
                if let Some(other) = networks.insert(*net, name) {
                    let reason =
                        format!("network {net} is in both group {other:?} and group {name:?}");
                    self.err_at(group.location.clone(), reason);
                }
            }
        }
        for (g, loc) in device_groups {
            if !groups.contains_key(g) {
                self.err_at(loc.clone(), format!("device names unknown group {g:?}"));
            }
        }
        let mut ips: HashMap<IpAddr, &str> = HashMap::new();
        let mut macs: HashMap<MacAddr, &str> = HashMap::new();
        for d in devices {
            if let Some(ip) = d.ip
                && let Some(other) = ips.insert(ip, &d.name)
            {
                self.err_at(
                    d.location.clone(),
                    format!("ip {ip} is given to both {other:?} and {:?}", d.name),
                );
            }
            if let Some(mac) = d.mac
                && let Some(other) = macs.insert(mac, &d.name)
            {
                self.err_at(
                    d.location.clone(),
                    format!("mac {mac} is given to both {other:?} and {:?}", d.name),
                );
            }
        }
    }
}

impl Context {
    /// Each approved list must be an allow list; an approved-only group that approves
    /// nothing is allowed (it blocks everything) but is most likely a mistake, so the
    /// policy build warns about it.
    fn approved_checks(
        &mut self,
        lists: &BTreeMap<String, ListSource>,
        groups: &BTreeMap<String, GroupWithSpans>,
    ) {
        for (name, (_, _, approved)) in groups {
            for (list, loc) in approved {
                match lists.get(list) {
                    Some(l) if matches!(l.kind, ListKind::Allow | ListKind::Approved) => {}
                    Some(_) => self.err_at(
                        loc.clone(),
                        format!(
                            "group {name:?} approves list {list:?}, which is not an approved or allow list (kind = \"approved\" or \"allow\")"
                        ),
                    ),
                    None => self.err_at(
                        loc.clone(),
                        format!("group {name:?} approves list {list:?}, which is not defined"),
                    ),
                }
            }
        }
    }
}

/// A `[proxy] pac_direct` entry: a network or address, or a domain (`*.` or `.` in front
/// means the same: it covers subdomains).
/// How often a downloaded list is fetched unless `every` says otherwise; also the longest
/// `every` an illegal-tier list may have.
const DEFAULT_EVERY: std::time::Duration = std::time::Duration::from_secs(12 * 3600);
/// The largest list body accepted unless `max_bytes` says otherwise.
const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Where `address = "system"` reads its nameservers unless `[dns] resolv_conf` says otherwise.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

/// The nameservers of a resolv.conf text (port 53), in order, without duplicates; and those
/// left out because they are Hedgerow's own: a `listen` address itself, or, for a wildcard
/// listener on port 53, any address of this machine (one a socket can be bound to).
pub fn system_nameservers(text: &str, listen: &[SocketAddr]) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        // An IPv6 link-local address may carry a zone (`fe80::1%eth0`): not usable here.
        let Some(Ok(ip)) = words.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        let addr = SocketAddr::new(ip, 53);
        if found.contains(&addr) || skipped.contains(&addr) {
            continue;
        }
        let own = ip.is_unspecified()
            || listen
                .iter()
                .any(|l| *l == addr || (l.ip().is_unspecified() && l.port() == 53 && is_local(ip)));
        if own {
            skipped.push(addr);
        } else {
            found.push(addr);
        }
    }
    (found, skipped)
}

/// Whether `ip` is one of this machine's addresses: a socket can be bound to it.
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

fn parse_pac_direct(text: &str) -> Result<PacDirect, String> {
    if let Some(net) = parse_net_or_addr(text) {
        return Ok(PacDirect::Network(net));
    }
    let bare = text
        .strip_prefix("*.")
        .or_else(|| text.strip_prefix('.'))
        .unwrap_or(text);
    match Host::parse(bare) {
        Ok(h) if !h.is_ip() => Ok(PacDirect::Domain(h.as_str().to_owned())),
        Ok(_) => Err(format!("{text:?} is not an address, a network or a domain")),
        Err(e) => Err(format!(
            "{text:?} is not an address, a network (such as \"10.0.0.0/8\") or a domain: {e}"
        )),
    }
}

/// A local allow or block entry must be a host, or a URL with a path.
fn check_entry(text: &str) -> Result<(), String> {
    if text.contains('/') {
        UrlKey::parse(text).map(|_| ()).map_err(|e| e.to_string())
    } else {
        let bare = text.strip_prefix("*.").unwrap_or(text);
        Host::parse(bare).map(|_| ()).map_err(|e| e.to_string())
    }
}

/// `"10.20.0.1"` (one address) or `"10.20.0.0/24"` (a network; host bits cleared).
fn parse_net_or_addr(s: &str) -> Option<IpNet> {
    if s.contains('/') {
        s.parse::<IpNet>().ok().map(|n| n.trunc())
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    }
}

fn parse_time(s: &str) -> Result<jiff::civil::Time, String> {
    let bad = || format!("time {s:?} must be HH:MM, 24-hour");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let h: i8 = h.parse().map_err(|_| bad())?;
    let m: i8 = m.parse().map_err(|_| bad())?;
    if h == 24 && m == 0 {
        return Ok(jiff::civil::Time::MAX);
    }
    jiff::civil::Time::new(h, m, 0, 0).map_err(|_| bad())
}

fn resolve(file: &Path, relative: &Path) -> PathBuf {
    if relative.is_absolute() {
        relative.to_owned()
    } else {
        file.parent().unwrap_or(Path::new(".")).join(relative)
    }
}

/// Why a list's URL carries a secret, if it does: a user or password in it, or a query
/// parameter named like one (`key`, `token`, `password`, `secret`, `auth`, `sig`,
/// `credential`). Ordinary queries (`?hostformat=hosts`) are fine. The URL is shown in
/// `lists status` and in error messages, so a secret in it would be shown too.
fn secret_in_url(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    if !u.username().is_empty() || u.password().is_some() {
        return Some("has a user or password in it".into());
    }
    const SECRET: [&str; 7] = ["key", "token", "pass", "secret", "auth", "sig", "cred"];
    u.query_pairs()
        .map(|(k, _)| k.to_ascii_lowercase())
        .find(|k| SECRET.iter().any(|s| k.contains(s)))
        .map(|k| format!("has a query parameter {k:?} that looks like a secret"))
}
