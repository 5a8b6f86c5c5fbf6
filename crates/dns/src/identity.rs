//! Who a query is for. Behind a school router every query arrives from the router's address;
//! a router that is a trusted forwarder (`[dns] trusted_forwarders`) names the client it asks
//! for in the query's EDNS options, and only then are those options believed:
//!
//! - EDNS Client Subnet (RFC 7871, option 8): the client's address, or the prefix it is in
//!   (dnsmasq `--add-subnet=32,128` sends the whole address);
//! - dnsmasq's `--add-mac`: the client's MAC, raw in option 65001, or as text
//!   (`--add-mac=text`, `aa:bb:cc:dd:ee:ff`) or base64 (`--add-mac=base64`) in option 65073.
//!
//! From any other sender the options are ignored: the sender is the client, and the attempt
//! is counted and logged. Hedgerow asks its upstreams with queries of its own, so none of
//! these options ever goes further.
//!
//! Both the UDP fast path and the full hickory path call [`identify`] with the OPT record's
//! data as received, so a query is identified the same way whichever path answers it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use hedgerow_model::MacAddr;
use ipnet::IpNet;
use tokio::time::Instant;

/// EDNS Client Subnet (RFC 7871).
const OPT_SUBNET: u16 = 8;
/// dnsmasq `--add-mac`: six raw bytes.
const OPT_MAC: u16 = 65001;
/// dnsmasq `--add-mac=text` or `--add-mac=base64` (the Nominum device-id option).
const OPT_DEVICE_ID: u16 = 65073;

/// The client a query is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Who {
    /// The sender's address, or the address a trusted forwarder gave (with the bits outside
    /// a shorter prefix cleared).
    pub(crate) ip: IpAddr,
    /// The MAC a trusted forwarder gave.
    pub(crate) mac: Option<MacAddr>,
    /// The local address the query arrived on, when the listener is bound to one.
    pub(crate) local: Option<IpAddr>,
    /// The client-subnet option to send back with the answer, when a trusted forwarder gave
    /// one.
    pub(crate) echo: Option<Echo>,
}

/// The EDNS Client Subnet option an answer carries back (RFC 7871 §7.2.1): family, source
/// prefix and address as received, and a scope prefix equal to the source prefix. The answer
/// was chosen for that client's group, so a forwarder that caches by subnet must not give it
/// to anyone else. (dnsmasq checks that it matches what it sent, and does not cache it.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Echo {
    len: u8,
    data: [u8; 20],
}

impl Echo {
    /// The option's data (without code and length).
    pub(crate) fn data(&self) -> &[u8] {
        self.data.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// What [`identify`] made of a query's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    /// Nothing to report: no identity options, or a trusted forwarder's that read well.
    Plain,
    /// Identity options from a sender that is not a trusted forwarder: ignored.
    Untrusted,
    /// Options that do not read (a truncated option list, a subnet or MAC in a form this
    /// does not know): ignored, the sender is the client.
    Malformed,
}

/// The key the rate limiter counts a client under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RateKey {
    Ip(IpAddr),
    Mac(MacAddr),
}

impl Who {
    /// A forwarder that gives a MAC but no address names many clients by one address; the MAC
    /// tells them apart.
    pub(crate) fn rate_key(&self) -> RateKey {
        match self.mac {
            Some(m) => RateKey::Mac(m),
            None => RateKey::Ip(self.ip),
        }
    }
}

/// Identifies the client of a query from `sender` that arrived on `local`, whose OPT record
/// carried `options` (its RDATA; empty without EDNS). `trusted` is
/// `[dns] trusted_forwarders`. A query without options costs one length check.
pub(crate) fn identify(
    trusted: &[IpNet],
    sender: IpAddr,
    local: Option<IpAddr>,
    options: &[u8],
) -> (Who, Note) {
    let plain = Who {
        ip: sender,
        mac: None,
        local,
        echo: None,
    };
    if options.is_empty() {
        return (plain, Note::Plain);
    }
    let Some(found) = Found::scan(options) else {
        return (plain, Note::Malformed);
    };
    if found.subnet.is_none() && found.mac.is_none() && found.device_id.is_none() {
        return (plain, Note::Plain);
    }
    let canonical = hedgerow_policy::canonical_ip(sender);
    if !trusted.iter().any(|n| n.contains(&canonical)) {
        return (plain, Note::Untrusted);
    }
    let ip = match found.subnet.map(subnet) {
        None => Some((sender, None)),
        Some(Ok(Some((ip, echo)))) => Some((ip, Some(echo))),
        // Source prefix 0: the client asked not to be identified by address.
        Some(Ok(None)) => Some((sender, None)),
        Some(Err(())) => None,
    };
    let mac = match (found.mac.map(raw_mac), found.device_id.map(device_id)) {
        (Some(Err(())), _) | (_, Some(Err(()))) => Err(()),
        (Some(Ok(m)), _) | (None, Some(Ok(m))) => Ok(Some(m)),
        (None, None) => Ok(None),
    };
    match (ip, mac) {
        (Some((ip, echo)), Ok(mac)) => (
            Who {
                ip,
                mac,
                local,
                echo,
            },
            Note::Plain,
        ),
        _ => (plain, Note::Malformed),
    }
}

/// The identity options found in an OPT record's data (the first of each).
#[derive(Default)]
struct Found<'a> {
    subnet: Option<&'a [u8]>,
    mac: Option<&'a [u8]>,
    device_id: Option<&'a [u8]>,
}

impl<'a> Found<'a> {
    /// `None` when the option list does not read to its end.
    fn scan(mut rest: &'a [u8]) -> Option<Self> {
        let mut found = Found::default();
        while !rest.is_empty() {
            let [c0, c1, l0, l1, tail @ ..] = rest else {
                return None;
            };
            let (data, after) =
                tail.split_at_checked(usize::from(u16::from_be_bytes([*l0, *l1])))?;
            let slot = match u16::from_be_bytes([*c0, *c1]) {
                OPT_SUBNET => &mut found.subnet,
                OPT_MAC => &mut found.mac,
                OPT_DEVICE_ID => &mut found.device_id,
                _ => {
                    rest = after;
                    continue;
                }
            };
            slot.get_or_insert(data);
            rest = after;
        }
        Some(found)
    }
}

/// An ECS option's address with the bits outside its source prefix cleared, and the option
/// to send back; `None` for source prefix 0. RFC 7871 §6: exactly as many address bytes as
/// the prefix needs, and no bits set beyond it.
fn subnet(data: &[u8]) -> Result<Option<(IpAddr, Echo)>, ()> {
    let [f0, f1, source, _scope, addr @ ..] = data else {
        return Err(());
    };
    let (family, source) = (u16::from_be_bytes([*f0, *f1]), *source);
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(()),
    };
    let len = usize::from(source).div_ceil(8);
    if source > max || addr.len() != len {
        return Err(());
    }
    if let (Some(last), bits @ 1..) = (addr.last(), source % 8)
        && last & (0xff >> bits) != 0
    {
        return Err(());
    }
    if source == 0 {
        return Ok(None);
    }
    let mut octets = [0u8; 16];
    octets.get_mut(..len).ok_or(())?.copy_from_slice(addr);
    let ip = if family == 1 {
        let [a, b, c, d, ..] = octets;
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::from(octets))
    };
    let mut data_out = [0u8; 20];
    data_out.get_mut(..4 + len).ok_or(())?.copy_from_slice(data);
    // The scope prefix: this answer is for this prefix alone.
    data_out[3] = source;
    let echo = Echo {
        len: u8::try_from(4 + len).map_err(|_| ())?,
        data: data_out,
    };
    Ok(Some((ip, echo)))
}

/// dnsmasq `--add-mac`: the six bytes of an Ethernet MAC.
fn raw_mac(data: &[u8]) -> Result<MacAddr, ()> {
    <[u8; 6]>::try_from(data).map(MacAddr).map_err(|_| ())
}

/// dnsmasq `--add-mac=text` (`aa:bb:cc:dd:ee:ff`, 17 bytes) or `--add-mac=base64` (the six
/// bytes in standard base64, 8 bytes).
fn device_id(data: &[u8]) -> Result<MacAddr, ()> {
    match data.len() {
        17 => std::str::from_utf8(data)
            .ok()
            .filter(|s| {
                s.bytes()
                    .enumerate()
                    .all(|(i, b)| (i % 3 == 2) == (b == b':'))
            })
            .and_then(|s| MacAddr::parse(s).ok())
            .ok_or(()),
        8 => {
            let mut out = [0u8; 6];
            match base64::engine::general_purpose::STANDARD.decode_slice(data, &mut out) {
                Ok(6) => Ok(MacAddr(out)),
                _ => Err(()),
            }
        }
        _ => Err(()),
    }
}

/// At most one log line per sender per this long about options it should not send.
const LOG_EVERY: Duration = Duration::from_secs(60);
/// Senders remembered at most; beyond it (a flood of spoofed sources) lines are skipped, the
/// counter still counts.
const MAX_REMEMBERED: usize = 16_384;

/// Remembers when each sender was last logged, so a misbehaving host or router costs one log
/// line a minute.
pub(crate) struct LogLimiter {
    last: Mutex<HashMap<IpAddr, Instant>>,
}

impl LogLimiter {
    pub(crate) fn new() -> Self {
        Self {
            last: Mutex::new(HashMap::new()),
        }
    }

    /// True when `sender` may be logged now (and notes that it was).
    pub(crate) fn allow(&self, sender: IpAddr, now: Instant) -> bool {
        // A poisoned lock only means another thread panicked while noting a time; the map is
        // still usable.
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = last.get(&sender) {
            if now.saturating_duration_since(*t) < LOG_EVERY {
                return false;
            }
        } else if last.len() >= MAX_REMEMBERED {
            last.retain(|_, t| now.saturating_duration_since(*t) < LOG_EVERY);
            if last.len() >= MAX_REMEMBERED {
                return false;
            }
        }
        last.insert(sender, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(code: u16, data: &[u8]) -> Vec<u8> {
        let mut out = code.to_be_bytes().to_vec();
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const ROUTER: &str = "10.0.0.1";
    const MAC: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0xa0, 0xff]);

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.1/32".parse().unwrap(), "fd00::/64".parse().unwrap()]
    }

    fn who(options: &[u8]) -> (Who, Note) {
        identify(&trusted(), ip(ROUTER), None, options)
    }

    #[test]
    fn a_trusted_forwarder_names_the_client_by_subnet_and_mac() {
        let ecs = opt(8, &[0, 1, 32, 0, 10, 20, 1, 7]);
        let (w, n) = who(&ecs);
        assert_eq!((w.ip, w.mac, n), (ip("10.20.1.7"), None, Note::Plain));
        assert_eq!(w.echo.unwrap().data(), [0, 1, 32, 32, 10, 20, 1, 7]);
        let ecs6 = opt(8, &[0, 2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 0, 0x12]);
        assert_eq!(who(&ecs6).0.ip, ip("2001:db8:0:1200::"));
        // A shorter prefix: its network address.
        let (w, _) = who(&opt(8, &[0, 1, 20, 0, 10, 20, 16]));
        assert_eq!(w.ip, ip("10.20.16.0"));
        assert_eq!(w.echo.unwrap().data(), [0, 1, 20, 20, 10, 20, 16]);
        // Every MAC form dnsmasq sends.
        for mac in [
            opt(65001, &MAC.0),
            opt(65073, b"02:00:5e:10:a0:ff"),
            opt(65073, b"AgBeEKD/"),
        ] {
            let mut both = ecs.clone();
            both.extend_from_slice(&opt(10, &[1, 2, 3, 4, 5, 6, 7, 8])); // a cookie
            both.extend_from_slice(&mac);
            let (w, n) = who(&both);
            assert_eq!((w.ip, w.mac, n), (ip("10.20.1.7"), Some(MAC), Note::Plain));
            // The MAC alone: the router's address stays.
            let (w, n) = who(&mac);
            assert_eq!((w.ip, w.mac, n), (ip(ROUTER), Some(MAC), Note::Plain));
            assert_eq!(w.echo, None);
            assert_eq!(w.rate_key(), RateKey::Mac(MAC));
        }
        // IPv4-mapped senders are matched as IPv4.
        let (w, n) = identify(&trusted(), ip("::ffff:10.0.0.1"), None, &ecs);
        assert_eq!((w.ip, n), (ip("10.20.1.7"), Note::Plain));
    }

    #[test]
    fn options_from_anyone_else_are_ignored() {
        let ecs = opt(8, &[0, 1, 32, 0, 10, 20, 1, 7]);
        let (w, n) = identify(&trusted(), ip("10.0.0.2"), None, &ecs);
        assert_eq!((w.ip, w.mac, n), (ip("10.0.0.2"), None, Note::Untrusted));
        let (w, n) = identify(&[], ip(ROUTER), None, &opt(65001, &MAC.0));
        assert_eq!((w.ip, w.mac, n), (ip(ROUTER), None, Note::Untrusted));
        assert_eq!(w.rate_key(), RateKey::Ip(ip(ROUTER)));
        // Other options are nobody's business.
        let cookie = opt(10, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(identify(&[], ip("10.0.0.2"), None, &cookie).1, Note::Plain);
        assert_eq!(identify(&[], ip("10.0.0.2"), None, &[]).1, Note::Plain);
    }

    #[test]
    fn malformed_options_identify_the_sender() {
        let bad = [
            opt(8, &[0, 1, 32, 0, 10, 20, 1]),       // too few address bytes
            opt(8, &[0, 1, 24, 0, 10, 20, 1, 7]),    // too many
            opt(8, &[0, 1, 33, 0, 10, 20, 1, 7, 0]), // prefix too long
            opt(8, &[0, 1, 23, 0, 10, 20, 1]),       // a bit set beyond the prefix
            opt(8, &[0, 3, 8, 0, 10]),               // unknown family
            opt(8, &[0, 1]),                         // truncated
            opt(65001, &MAC.0[..5]),                 // short MAC
            opt(65073, b"02:00:5e:10:a0:fg"),        // not hex
            opt(65073, b"02-00-5e-10-a0-ff"),        // not dnsmasq's text form
            opt(65073, b"AgBeEK=/"),                 // not base64
            opt(65073, b"0200"),                     // neither
            vec![0, 8, 0, 9, 0, 1],                  // option longer than the record
            vec![0, 8, 0],                           // a code with no length
        ];
        for b in bad {
            let (w, n) = who(&b);
            assert_eq!(
                (w.ip, w.mac, n),
                (ip(ROUTER), None, Note::Malformed),
                "{b:?}"
            );
        }
        // Source prefix 0: no address given, not an error.
        let (w, n) = who(&opt(8, &[0, 1, 0, 0]));
        assert_eq!((w.ip, n), (ip(ROUTER), Note::Plain));
    }

    #[test]
    fn a_sender_is_logged_once_a_minute() {
        let l = LogLimiter::new();
        let t0 = Instant::now();
        assert!(l.allow(ip("10.0.0.2"), t0));
        assert!(!l.allow(ip("10.0.0.2"), t0 + Duration::from_secs(59)));
        assert!(l.allow(ip("10.0.0.3"), t0 + Duration::from_secs(59)));
        assert!(l.allow(ip("10.0.0.2"), t0 + Duration::from_secs(60)));
    }
}
