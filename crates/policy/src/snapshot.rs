//! Building snapshots and swapping them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hedgerow_config::{Config, ConfigErrors, Device, Group, GroupMode, ListKind, Schedule};
use hedgerow_matcher::{IllegalSet, ListError, ListSpec, LoadReport, Matcher, MatcherBuilder};

use crate::illegal_guard::{BuildMode, Guard, IllegalSource, IllegalStatus};
use hedgerow_model::{ListFormat, MacAddr, Severity, UrlMatch};
use ipnet::IpNet;

/// Index of a group in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupId(pub(crate) usize);

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("configuration rejected:\n{0}")]
    Config(ConfigErrors),
    #[error("list {list:?}: {source}")]
    List {
        list: String,
        #[source]
        source: ListError,
    },
    #[error("time zone {0:?} is not available on this machine")]
    TimeZone(String),
    /// An illegal-tier list that cannot be enforced (missing, empty, shrunk) with no last
    /// good copy to enforce instead.
    #[error("{location}: illegal-tier list {list:?}: {reason}")]
    IllegalTier {
        location: String,
        list: String,
        reason: String,
    },
    /// The kept key or last good copies in the state directory cannot be used.
    #[error("illegal tier: {0}")]
    IllegalState(String),
}

/// What happened while building: every list's load report and how long it took.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    pub lists: Vec<LoadReport>,
    /// Optional lists whose file was absent.
    pub skipped: Vec<String>,
    /// Problems that did not stop the build, such as an unreadable lease file.
    pub warnings: Vec<String>,
    /// Each illegal-tier list: entries enforced, and whether from its file or its last good
    /// copy (see `illegal_guard`).
    pub illegal: Vec<IllegalStatus>,
    pub elapsed: Duration,
}

impl BuildReport {
    pub fn bad_line_count(&self) -> usize {
        self.lists.iter().map(|r| r.bad_line_count).sum()
    }

    /// The illegal-tier lists enforced from their last good copy, with the reason: each is a
    /// critical operational problem.
    pub fn illegal_kept(&self) -> impl Iterator<Item = (&str, &str)> {
        self.illegal.iter().filter_map(|s| match &s.source {
            IllegalSource::KeptLastGood { reason } => Some((s.list.as_str(), reason.as_str())),
            IllegalSource::Loaded => None,
        })
    }
}

/// Who a client is: its group and, if registered, its device.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub group: GroupId,
    pub group_name: &'a str,
    /// The same name, shared: events can hold it without copying it.
    pub group_arc: &'a Arc<str>,
    pub device: Option<&'a Device>,
}

pub(crate) struct CompiledSchedule {
    pub(crate) name: Arc<str>,
    /// Indexed by list id: true for lists this schedule allows.
    pub(crate) allows: Vec<bool>,
    pub(crate) window: Schedule,
}

pub(crate) struct GroupPolicy {
    pub(crate) name: Arc<str>,
    /// Indexed by list id: true for block lists whose category this group blocks.
    pub(crate) blocked: Vec<bool>,
    /// An approved-only group (a walled garden): what nothing approves is blocked.
    pub(crate) approved_only: bool,
    /// Indexed by list id: true for the allow lists an approved-only group approves.
    pub(crate) approved: Vec<bool>,
    /// Local allow rules (as the matcher reports them) that are hosts listed `with` a site:
    /// the site, for the verdict's rule.
    pub(crate) dependency_of: HashMap<Arc<str>, Arc<str>>,
    pub(crate) schedules: Vec<CompiledSchedule>,
    pub(crate) local_allow: Option<Matcher>,
    pub(crate) local_block: Option<Matcher>,
}

/// Everything a request needs, built once and never changed.
pub struct PolicySnapshot {
    pub(crate) config: Arc<Config>,
    pub(crate) matcher: Matcher,
    pub(crate) groups: Vec<GroupPolicy>,
    /// Group networks, most specific first.
    networks: Vec<(IpNet, GroupId)>,
    /// Groups chosen by the local address a query arrived on.
    listen_groups: Vec<(IpAddr, GroupId)>,
    devices_by_ip: HashMap<IpAddr, usize>,
    devices_by_mac: HashMap<MacAddr, usize>,
    /// Devices known only from DHCP leases, named by their host name (or MAC).
    lease_devices: Vec<Device>,
    /// Lease addresses: a configured device (by MAC) or one of `lease_devices`.
    leases_by_ip: HashMap<IpAddr, LeaseDevice>,
    /// The same leases by MAC, for clients a forwarder names by MAC.
    leases_by_mac: HashMap<MacAddr, LeaseDevice>,
    pub(crate) tz: jiff::tz::TimeZone,
    report: BuildReport,
    /// Illegal-tier lists loaded from their files, kept as last good copies when this
    /// snapshot is put in force (serving builds).
    illegal_keep: Vec<(String, IllegalSet)>,
    mode: BuildMode,
}

impl std::fmt::Debug for PolicySnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySnapshot")
            .field("groups", &self.groups.len())
            .field("matcher", &self.matcher)
            .finish_non_exhaustive()
    }
}

impl PolicySnapshot {
    /// Reads and validates the configuration at `path`, then builds a snapshot from it.
    /// Blocking: loads every list. Run it off async tasks (`spawn_blocking`).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let config = hedgerow_config::load(path).map_err(PolicyError::Config)?;
        Self::build(config)
    }

    /// Builds a snapshot from a validated configuration, to check or explain it: the illegal
    /// tier is weighed against its kept last good copy, but nothing in the state directory is
    /// created or changed. Blocking, as [`Self::load`].
    pub fn build(config: Config) -> Result<Self, PolicyError> {
        Self::build_with(config, BuildMode::Check)
    }

    /// Builds a snapshot; with [`BuildMode::Serve`] the illegal tier's key is created if
    /// needed (see [`PolicyHandle`], which keeps the last good copies when it swaps in).
    pub fn build_with(config: Config, mode: BuildMode) -> Result<Self, PolicyError> {
        let started = Instant::now();
        let tz = jiff::tz::TimeZone::get(&config.server.timezone)
            .map_err(|_| PolicyError::TimeZone(config.server.timezone.clone()))?;
        let mut report = BuildReport::default();
        let guard = Guard::open(&config.server.state_dir, mode)?;
        report.warnings.extend(guard.notes.iter().cloned());
        let mut builder = MatcherBuilder::with_illegal_key(guard.key());
        let (illegal, illegal_keep) = guard.add_lists(&config, &mut builder, &mut report.lists)?;
        report.illegal = illegal;
        for list in config.lists.iter().filter(|l| l.kind != ListKind::Illegal) {
            // A downloaded list before its first download is skipped as an optional one is.
            if (list.optional || list.fetch.is_some()) && !list.path.is_file() {
                report.skipped.push(list.name.clone());
                continue;
            }
            let spec = ListSpec {
                name: list.name.as_str().into(),
                kind: list.kind,
                format: list.format,
                category: list.category.clone(),
                url_match: list.url_match,
                severity: list.severity,
            };
            let r = builder
                .add_file(spec, &list.path)
                .map_err(|source| PolicyError::List {
                    list: list.name.clone(),
                    source,
                })?;
            report.lists.push(r);
        }
        let matcher = builder.build().map_err(|source| PolicyError::List {
            list: "(all lists)".into(),
            source,
        })?;
        crate::covered::check_allow_entries(&config, &matcher)?;

        let mut groups = Vec::new();
        let mut networks = Vec::new();
        let mut listen_groups = Vec::new();
        for (i, g) in config.groups.iter().enumerate() {
            groups.push(compile_group(g, &matcher, &mut report)?);
            for n in &g.networks {
                networks.push((*n, GroupId(i)));
            }
            for a in &g.listen_addresses {
                listen_groups.push((canonical_ip(*a), GroupId(i)));
            }
        }
        networks.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
        let page_groups: Vec<&str> = config
            .groups
            .iter()
            .filter(|g| g.dns_block == hedgerow_config::DnsBlockMode::Blockpage)
            .map(|g| g.name.as_str())
            .collect();
        if !page_groups.is_empty() && config.blockpage.is_none() {
            report.warnings.push(format!(
                "groups {} answer blocked names with the block page address, but no [blockpage] listener serves a page there: browsers show a connection error instead",
                page_groups.join(", ")
            ));
        }
        let mut devices_by_ip = HashMap::new();
        let mut devices_by_mac = HashMap::new();
        for (i, d) in config.devices.iter().enumerate() {
            if let Some(ip) = d.ip {
                devices_by_ip.insert(canonical_ip(ip), i);
            }
            if let Some(mac) = d.mac {
                devices_by_mac.insert(mac, i);
            }
        }
        let mut lease_devices = Vec::new();
        let mut leases_by_ip = HashMap::new();
        let mut leases_by_mac = HashMap::new();
        for file in &config.leases {
            let text = match std::fs::read_to_string(&file.path) {
                Ok(t) => t,
                Err(e) => {
                    // The DHCP server's file may not exist yet; names come back on reload.
                    report
                        .warnings
                        .push(format!("{}: lease file not read: {e}", file.location));
                    continue;
                }
            };
            for lease in crate::leases::parse_leases(&text, file.format, &file.path) {
                let ip = canonical_ip(lease.ip);
                if let Some(&i) = lease.mac.as_ref().and_then(|m| devices_by_mac.get(m)) {
                    leases_by_ip.insert(ip, LeaseDevice::Configured(i));
                    continue;
                }
                let name = lease
                    .hostname
                    .or_else(|| lease.mac.map(|m| m.to_string()))
                    .unwrap_or_else(|| ip.to_string());
                let leased = LeaseDevice::Leased(lease_devices.len());
                leases_by_ip.insert(ip, leased);
                if let Some(mac) = lease.mac {
                    leases_by_mac.insert(mac, leased);
                }
                lease_devices.push(Device {
                    name,
                    ip: Some(ip),
                    mac: lease.mac,
                    user: None,
                    group: None,
                    location: lease.location,
                });
            }
        }
        report.elapsed = started.elapsed();
        Ok(Self {
            config: Arc::new(config),
            matcher,
            groups,
            networks,
            listen_groups,
            devices_by_ip,
            devices_by_mac,
            lease_devices,
            leases_by_ip,
            leases_by_mac,
            tz,
            report,
            illegal_keep,
            mode,
        })
    }

    /// Keeps this snapshot's illegal-tier lists as their last good copies (serving builds).
    fn keep_illegal(&self) -> Result<(), PolicyError> {
        if self.mode != BuildMode::Serve {
            return Ok(());
        }
        Guard::open(&self.config.server.state_dir, self.mode)?.keep(&self.illegal_keep)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The configured time zone (`[server] timezone`), for schedules and for times shown.
    pub fn timezone(&self) -> &jiff::tz::TimeZone {
        &self.tz
    }

    pub fn report(&self) -> &BuildReport {
        &self.report
    }

    pub fn group_name(&self, id: GroupId) -> &str {
        self.groups.get(id.0).map_or("", |g| &g.name)
    }

    /// The group's configuration.
    pub fn group(&self, id: GroupId) -> Option<&Group> {
        self.config.groups.get(id.0)
    }

    pub fn group_id(&self, name: &str) -> Option<GroupId> {
        self.groups
            .iter()
            .position(|g| &*g.name == name)
            .map(GroupId)
    }

    /// Identifies a client by address (and MAC, when the front knows it). A registered device
    /// with a group is in that group; otherwise the most specific network decides. `None`
    /// means the client is in no configured network and must be refused.
    pub fn client(&self, ip: IpAddr, mac: Option<MacAddr>) -> Option<Client<'_>> {
        self.client_on(ip, mac, None)
    }

    /// Identifies a client as [`Self::client`] does, for a query that arrived on the local
    /// address `local`. The device is found by MAC first (a forwarder's MAC names one
    /// machine; an address may be shared or reassigned), then by address, then in the DHCP
    /// leases. The group: the device's own group if it has one; else the group whose
    /// `listen_addresses` hold `local`; else the most specific network holding `ip`.
    pub fn client_on(
        &self,
        ip: IpAddr,
        mac: Option<MacAddr>,
        local: Option<IpAddr>,
    ) -> Option<Client<'_>> {
        let ip = canonical_ip(ip);
        let device_idx = mac
            .and_then(|m| self.devices_by_mac.get(&m))
            .or_else(|| self.devices_by_ip.get(&ip))
            .copied();
        let device = match device_idx {
            Some(i) => self.config.devices.get(i),
            None => match mac
                .and_then(|m| self.leases_by_mac.get(&m))
                .or_else(|| self.leases_by_ip.get(&ip))
            {
                Some(LeaseDevice::Configured(i)) => self.config.devices.get(*i),
                Some(LeaseDevice::Leased(i)) => self.lease_devices.get(*i),
                None => None,
            },
        };
        let by_device = device
            .and_then(|d| d.group.as_deref())
            .and_then(|name| self.group_id(name));
        let by_listener = || {
            let local = canonical_ip(local?);
            self.listen_groups
                .iter()
                .find(|(a, _)| *a == local)
                .map(|(_, g)| *g)
        };
        let group = by_device.or_else(by_listener).or_else(|| {
            self.networks
                .iter()
                .find(|(net, _)| net.contains(&ip))
                .map(|(_, g)| *g)
        })?;
        let group_arc = &self.groups.get(group.0)?.name;
        Some(Client {
            group,
            group_name: group_arc,
            group_arc,
            device,
        })
    }
}

/// Where a leased address points.
#[derive(Debug, Clone, Copy)]
enum LeaseDevice {
    /// A device in the configuration, found by the lease's MAC.
    Configured(usize),
    Leased(usize),
}

/// IPv4-mapped IPv6 addresses (how a dual-stack socket reports IPv4 clients) are IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn compile_group(
    g: &Group,
    matcher: &Matcher,
    report: &mut BuildReport,
) -> Result<GroupPolicy, PolicyError> {
    let lists = matcher.lists();
    let blocked = lists
        .iter()
        .map(|l| {
            l.kind == ListKind::Block
                && l.category
                    .as_ref()
                    .is_some_and(|c| g.block_categories.contains(c))
        })
        .collect();
    let schedules = g
        .schedules
        .iter()
        .map(|s| CompiledSchedule {
            name: s.name.as_str().into(),
            allows: lists
                .iter()
                .map(|l| {
                    l.category
                        .as_ref()
                        .is_some_and(|c| s.allow_categories.contains(c))
                })
                .collect(),
            window: s.clone(),
        })
        .collect();
    let local = |entries: &[hedgerow_config::LocalEntry],
                 what: &str,
                 kind: ListKind,
                 report: &mut BuildReport| {
        if entries.is_empty() {
            return Ok(None);
        }
        let name: Arc<str> = format!("{}/{what}", g.name).into();
        let mut b = MatcherBuilder::new();
        let (urls, hosts): (Vec<&str>, Vec<&str>) = entries
            .iter()
            .map(|e| e.text.as_str())
            .partition(|t| t.contains('/'));
        for (format, items) in [(ListFormat::Domains, hosts), (ListFormat::Urls, urls)] {
            let spec = ListSpec {
                name: name.clone(),
                kind,
                format,
                category: None,
                url_match: UrlMatch::Prefix,
                severity: Severity::Low,
            };
            let r = b
                .add_lines(spec, &format!("group {} {what}", g.name), items)
                .map_err(|source| PolicyError::List {
                    list: name.to_string(),
                    source,
                })?;
            report.lists.push(r);
        }
        b.build().map(Some).map_err(|source| PolicyError::List {
            list: name.to_string(),
            source,
        })
    };
    let approved_only = g.mode == GroupMode::ApprovedOnly;
    let approved: Vec<bool> = lists
        .iter()
        .map(|l| {
            approved_only
                && matches!(l.kind, ListKind::Allow | ListKind::Approved)
                && g.approved_lists.iter().any(|a| **a == *l.name)
        })
        .collect();
    if approved_only && g.allow.is_empty() && !approved.contains(&true) {
        report.warnings.push(format!(
            "{}: group {:?} is approved-only but approves nothing (no allow entries, no approved_lists): every site is blocked for it",
            g.location, g.name
        ));
    }
    let rule_of = |text: &str| {
        let bare = text.strip_prefix("*.").unwrap_or(text);
        hedgerow_model::Host::parse(bare)
            .ok()
            .map(|h| h.as_str().to_owned())
    };
    let plain: Vec<String> = g
        .allow
        .iter()
        .filter(|e| e.dependency_of.is_none())
        .filter_map(|e| rule_of(&e.text))
        .collect();
    let dependency_of = g
        .allow
        .iter()
        .filter_map(|e| {
            let site = e.dependency_of.as_deref()?;
            let rule = rule_of(&e.text)?;
            // A host that is also approved on its own is shown as itself.
            (!plain.contains(&rule)).then(|| (Arc::from(rule.as_str()), Arc::from(site)))
        })
        .collect();
    Ok(GroupPolicy {
        name: g.name.as_str().into(),
        blocked,
        approved_only,
        approved,
        dependency_of,
        schedules,
        local_allow: local(&g.allow, "allow", ListKind::Allow, report)?,
        local_block: local(&g.block, "block", ListKind::Block, report)?,
    })
}

/// The live policy. Readers call [`PolicyHandle::snapshot`] once per request and use that one
/// snapshot throughout; [`PolicyHandle::reload`] replaces it whole.
///
/// A reload that must also be checked against other parts of the appliance (which settings
/// need a restart, whether new listeners bind) goes in three steps: [`Self::read_config`],
/// [`Self::stage`] (builds, puts nothing in force), [`Self::commit`] (puts it in force).
pub struct PolicyHandle {
    path: PathBuf,
    current: ArcSwap<PolicySnapshot>,
}

/// A snapshot built for a reload and not yet in force: [`PolicyHandle::commit`] puts it in
/// force; dropping it leaves the running policy as it was, and the illegal tier's last good
/// copies untouched.
#[derive(Debug)]
pub struct Staged(PolicySnapshot);

impl Staged {
    pub fn snapshot(&self) -> &PolicySnapshot {
        &self.0
    }
}

impl PolicyHandle {
    /// Loads the configuration at `path`. Blocking.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let config = hedgerow_config::load(path).map_err(PolicyError::Config)?;
        Self::from_config(path, config)
    }

    /// Builds the first snapshot from `config`, already read from `path` (which later reloads
    /// read again). Blocking.
    pub fn from_config(path: &Path, config: Config) -> Result<Self, PolicyError> {
        let snapshot = PolicySnapshot::build_with(config, BuildMode::Serve)?;
        snapshot.keep_illegal()?;
        Ok(Self {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(snapshot),
        })
    }

    /// The snapshot in force now.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.current.load_full()
    }

    /// Re-reads the configuration and every list, and swaps the new snapshot in. On any error
    /// the old snapshot stays live and the error says why. Blocking: call it from
    /// `spawn_blocking` or a thread, never on an async task.
    pub fn reload(&self) -> Result<Arc<PolicySnapshot>, PolicyError> {
        let staged = self.stage(self.read_config()?)?;
        self.commit(staged)
    }

    /// Reads and validates the configuration file again, without building anything.
    /// Blocking (it reads the files and checks that lists exist).
    pub fn read_config(&self) -> Result<Config, PolicyError> {
        hedgerow_config::load(&self.path).map_err(PolicyError::Config)
    }

    /// Builds a snapshot from `config` (read by [`Self::read_config`]) without putting it in
    /// force. Blocking: loads every list.
    pub fn stage(&self, config: Config) -> Result<Staged, PolicyError> {
        PolicySnapshot::build_with(config, BuildMode::Serve).map(Staged)
    }

    /// Puts a staged snapshot in force: keeps its illegal-tier lists as their last good
    /// copies, then swaps it in with one atomic store. On error the old snapshot stays.
    /// Blocking (writes the last good copies).
    pub fn commit(&self, staged: Staged) -> Result<Arc<PolicySnapshot>, PolicyError> {
        let fresh = Arc::new(staged.0);
        fresh.keep_illegal()?;
        self.current.store(fresh.clone());
        Ok(fresh)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
