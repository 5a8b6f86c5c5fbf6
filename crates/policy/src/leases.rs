//! DHCP lease files: which address a device has now, so events carry its name.

use std::collections::HashMap;
use std::net::IpAddr;

use hedgerow_config::{LeaseFormat, Location};
use hedgerow_model::MacAddr;

/// One current lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: IpAddr,
    pub mac: Option<MacAddr>,
    /// The name the client gave, if any.
    pub hostname: Option<String>,
    /// Where it was read.
    pub location: Location,
}

/// Reads the leases in `text` (from `path`). Unreadable lines are skipped: a lease file is
/// the DHCP server's, and one odd line must not hide the rest.
pub fn parse_leases(text: &str, format: LeaseFormat, path: &std::path::Path) -> Vec<Lease> {
    let at = |line: usize| Location {
        path: path.to_path_buf(),
        line,
        column: 1,
    };
    match format {
        LeaseFormat::Dnsmasq => text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| {
                // expiry mac-or-iaid ip hostname client-id
                let mut f = line.split_whitespace();
                let _expiry = f.next()?;
                let mac = f.next()?.parse::<MacAddr>().ok();
                let ip: IpAddr = f.next()?.parse().ok()?;
                let hostname = f.next().filter(|h| *h != "*").map(str::to_owned);
                Some(Lease {
                    ip,
                    mac,
                    hostname,
                    location: at(i + 1),
                })
            })
            .collect(),
        LeaseFormat::Isc => {
            // The file is a log: a later block for an address replaces an earlier one.
            let mut current: HashMap<IpAddr, Option<Lease>> = HashMap::new();
            let mut order = Vec::new();
            let mut open: Option<(Lease, bool)> = None;
            for (i, raw) in text.lines().enumerate() {
                let line = raw.trim().trim_end_matches(';').trim();
                if let Some(rest) = line.strip_prefix("lease ") {
                    let ip = rest.trim_end_matches('{').trim().parse::<IpAddr>().ok();
                    open = ip.map(|ip| {
                        let lease = Lease {
                            ip,
                            mac: None,
                            hostname: None,
                            location: at(i + 1),
                        };
                        (lease, true)
                    });
                } else if line == "}" {
                    if let Some((lease, active)) = open.take() {
                        if !current.contains_key(&lease.ip) {
                            order.push(lease.ip);
                        }
                        current.insert(lease.ip, active.then_some(lease));
                    }
                } else if let Some((lease, active)) = open.as_mut() {
                    if let Some(mac) = line.strip_prefix("hardware ethernet ") {
                        lease.mac = mac.trim().parse().ok();
                    } else if let Some(name) = line.strip_prefix("client-hostname ") {
                        let name = name.trim().trim_matches('"');
                        lease.hostname = (!name.is_empty()).then(|| name.to_owned());
                    } else if let Some(state) = line.strip_prefix("binding state ") {
                        *active = state.trim() == "active";
                    }
                }
            }
            order
                .into_iter()
                .filter_map(|ip| current.remove(&ip).flatten())
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsmasq_leases() {
        let text = "1790000000 aa:bb:cc:00:11:22 10.0.0.5 lab-pc-05 01:aa:bb:cc:00:11:22\n\
                    1790000000 aa:bb:cc:00:11:23 10.0.0.6 * *\n\
                    garbage\n\
                    1790000000 123456 2001:db8::5 ipad-3 00:01:00\n";
        let l = parse_leases(text, LeaseFormat::Dnsmasq, "x".as_ref());
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].hostname.as_deref(), Some("lab-pc-05"));
        assert_eq!(l[0].mac, "aa:bb:cc:00:11:22".parse().ok());
        assert_eq!(l[1].hostname, None);
        assert_eq!(l[2].ip, "2001:db8::5".parse::<IpAddr>().unwrap());
        assert_eq!(l[2].mac, None);
    }

    #[test]
    fn isc_leases_keep_the_latest_active_block() {
        let text = r#"
lease 10.0.0.7 {
  starts 1 2026/11/23 08:00:00;
  binding state active;
  hardware ethernet aa:bb:cc:00:11:77;
  client-hostname "old-name";
}
lease 10.0.0.8 {
  binding state active;
  hardware ethernet aa:bb:cc:00:11:88;
}
lease 10.0.0.7 {
  binding state active;
  hardware ethernet aa:bb:cc:00:11:77;
  client-hostname "chromebook-12";
}
lease 10.0.0.8 {
  binding state free;
  hardware ethernet aa:bb:cc:00:11:88;
}
"#;
        let l = parse_leases(text, LeaseFormat::Isc, "x".as_ref());
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].hostname.as_deref(), Some("chromebook-12"));
        assert_eq!(l[0].location.line, 12);
    }
}
