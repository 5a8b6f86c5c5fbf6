//! What a reload would change: which sections differ between the configuration in force and
//! a new one, and which of the changed settings a running appliance cannot take on.
//!
//! Everything else takes effect on reload: the policy (lists, groups, devices, leases, DNS
//! settings) is read from the new snapshot per query, the proxy reads its settings per
//! connection and request, the recorder swaps its breach rules and queue settings, the
//! alerter restarts with its new channels, and listeners are opened and closed to match.

use crate::Config;

/// The settings a running appliance keeps until it restarts, with why.
const RESTART: &[(&str, &str)] = &[
    (
        "[server] state_dir",
        "the log store, API socket and pid file stay where they were opened",
    ),
    (
        "[logs] cache_mb",
        "the log store's page cache is sized when the store opens",
    ),
    (
        "[blockpage]",
        "the block page server's listeners are bound at start",
    ),
    (
        "[api]",
        "the API's TCP listener and its certificate are set up at start",
    ),
    (
        "[ship]",
        "the shipping queues and connections are made at start",
    ),
    ("[metrics]", "the metrics listeners are bound at start"),
    (
        "[console] listen",
        "the console's listener and its certificate are set up at start",
    ),
];

/// How a new configuration differs from the one in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadDiff {
    /// The sections whose values differ, in file order: `[server]`, `[dns]`, `[proxy]`,
    /// `[lists]`, `[groups]`, `[[devices]]`, `[[leases]]`, `[logs]`, `[breaches]`, `[alerts]`, `[safesearch]`.
    pub changed: Vec<&'static str>,
    /// Changed settings that need a restart, such as `[server] state_dir`, each with the
    /// reason. A reload that changes any of them is refused as a whole.
    pub needs_restart: Vec<(&'static str, &'static str)>,
}

impl ReloadDiff {
    /// Whether `section` (such as `"[alerts]"`) changed.
    pub fn changed(&self, section: &str) -> bool {
        self.changed.contains(&section)
    }

    /// Why the reload must be refused, naming every setting that needs a restart; `None` when
    /// it can be applied.
    pub fn refusal(&self) -> Option<String> {
        if self.needs_restart.is_empty() {
            return None;
        }
        let each: Vec<String> = self
            .needs_restart
            .iter()
            .map(|(setting, why)| format!("{setting} needs a restart ({why})"))
            .collect();
        Some(each.join("; "))
    }
}

/// Compares the configuration in force with a new one.
pub fn diff(old: &Config, new: &Config) -> ReloadDiff {
    let sections: [(&'static str, bool); 17] = [
        ("[server]", old.server != new.server),
        ("[dns]", old.dns != new.dns),
        ("[proxy]", old.proxy != new.proxy),
        ("[blockpage]", old.blockpage != new.blockpage),
        ("[lists]", old.lists != new.lists),
        ("[groups]", old.groups != new.groups),
        ("[[devices]]", old.devices != new.devices),
        ("[[leases]]", old.leases != new.leases),
        ("[logs]", old.logs != new.logs),
        ("[breaches]", old.breaches != new.breaches),
        ("[alerts]", old.alerts != new.alerts),
        ("[api]", old.api != new.api),
        ("[change_control]", old.change_control != new.change_control),
        ("[ship]", old.ship != new.ship),
        ("[metrics]", old.metrics != new.metrics),
        ("[safesearch]", old.safesearch != new.safesearch),
        ("[console]", old.console != new.console),
    ];
    let changed = sections
        .iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect();
    let restart = |setting: &str| RESTART.iter().copied().find(|(s, _)| *s == setting);
    let mut needs_restart = Vec::new();
    if old.server.state_dir != new.server.state_dir {
        needs_restart.extend(restart("[server] state_dir"));
    }
    if old.logs.cache_mb != new.logs.cache_mb {
        needs_restart.extend(restart("[logs] cache_mb"));
    }
    if old.blockpage != new.blockpage {
        needs_restart.extend(restart("[blockpage]"));
    }
    if old.api != new.api {
        needs_restart.extend(restart("[api]"));
    }
    let console_listener =
        |c: &Option<crate::ConsoleConfig>| c.as_ref().map(|c| (c.listen, c.names.clone()));
    if console_listener(&old.console) != console_listener(&new.console) {
        needs_restart.extend(restart("[console] listen"));
    }
    if old.ship != new.ship {
        needs_restart.extend(restart("[ship]"));
    }
    if old.metrics != new.metrics {
        needs_restart.extend(restart("[metrics]"));
    }
    ReloadDiff {
        changed,
        needs_restart,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> Config {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = format!(
            r#"
[server]
state_dir = "/var/lib/hedgerow"

[dns]
listen = ["127.0.0.1:53"]
upstreams = [{{ address = "192.0.2.53:53" }}]

[lists.iwf]
path = "iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[groups.pupils]
networks = ["10.0.0.0/8"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"
{extra}
"#
        );
        crate::from_str(&text, &dir.join("hedgerow.toml")).unwrap()
    }

    #[test]
    fn the_same_configuration_changes_nothing() {
        let d = diff(&config(""), &config(""));
        assert!(d.changed.is_empty());
        assert_eq!(d.refusal(), None);
    }

    #[test]
    fn live_sections_are_named_and_need_no_restart() {
        let old = config("");
        let new = config(
            "[logs]\naccess_retention = \"30d\"\nqueue = 1000\n\n[breaches]\nwindow = \"2h\"\n",
        );
        let d = diff(&old, &new);
        assert_eq!(d.changed, vec!["[logs]", "[breaches]"]);
        assert!(d.changed("[logs]") && !d.changed("[alerts]"));
        assert_eq!(d.refusal(), None);
    }

    #[test]
    fn state_dir_and_cache_mb_are_refused_by_name() {
        let old = config("");
        let new = config("[logs]\ncache_mb = 128\n").tap_state_dir("/srv/hedgerow");
        let d = diff(&old, &new);
        let why = d.refusal().unwrap();
        assert!(why.contains("[server] state_dir needs a restart"), "{why}");
        assert!(why.contains("[logs] cache_mb needs a restart"), "{why}");
        assert_eq!(d.changed, vec!["[server]", "[logs]"]);
    }

    trait Tap {
        fn tap_state_dir(self, dir: &str) -> Self;
    }

    impl Tap for Config {
        fn tap_state_dir(mut self, dir: &str) -> Self {
            self.server.state_dir = dir.into();
            self
        }
    }
}
