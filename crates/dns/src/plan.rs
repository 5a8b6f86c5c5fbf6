//! What to answer a query with, decided once for both paths: the fast path (`udp.rs`,
//! [`crate::Resolver::try_fast`]) and the full hickory path call [`plan`] with the query's
//! name and type, the client's group and the snapshot, and only encode what it says (wire
//! bytes on the fast path, hickory records on the full path). It is a pure function: no
//! sockets, no cache, no clock of its own.
//!
//! Order: circumvention canaries; the policy's verdict (a block is answered under the group's
//! `dns_block`); SafeSearch and YouTube steering ([`PolicySnapshot::steer`]); otherwise
//! forward. Client identification and the rate limit come before it (they need state); the
//! CNAME-chain check and ECH stripping after it (they need the upstream's answer).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hedgerow_config::{DnsBlockMode, DnsConfig};
use hedgerow_model::{Action, Host, Tier, Verdict};
use hedgerow_policy::{GroupId, PolicySnapshot, Steer, Target};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// The answer's plan.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plan {
    /// A circumvention canary: answered locally with this code and our SOA, for every client.
    Canary(ResponseCode),
    /// Blocked by the policy: answered with `answer`.
    Block {
        verdict: Verdict,
        answer: BlockAnswer,
    },
    /// A SafeSearch or YouTube name: a CNAME to the enforcement host and its records.
    Steer(Steer),
    /// Forwarded (from the cache or the upstreams). The verdict is the policy's, which may
    /// name a category the group does not block, for the log.
    Forward(Verdict),
}

/// A block answer's shape, for any query type: the code, and an address record (the null
/// address or the block page's) or, when there is none, our SOA as the authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockAnswer {
    pub(crate) rcode: ResponseCode,
    pub(crate) address: Option<IpAddr>,
    /// The address is the block page's: the block is noted for the block page server.
    pub(crate) page: bool,
}

/// The plan for `name` (lower case, no trailing dot) of type `qtype` from a client in
/// `group`, at `now`. `None` when the snapshot has no such group (SERVFAIL).
pub(crate) fn plan(
    snap: &PolicySnapshot,
    group: GroupId,
    name: &str,
    qtype: RecordType,
    now: jiff::Timestamp,
) -> Option<Plan> {
    let g = snap.group(group)?;
    if let Some(rcode) = canary_rcode(name) {
        return Some(Plan::Canary(rcode));
    }
    let verdict = match Host::parse(name) {
        Ok(host) => snap.decide(group, Target::Host(&host), now),
        // Not a host name policy can read (the full path forwards it as it is).
        Err(_) => Verdict::default_allow(),
    };
    if verdict.is_blocked() {
        let answer = block_answer(g.dns_block, qtype, &snap.config().dns);
        return Some(Plan::Block { verdict, answer });
    }
    if let Some(steer) = snap.steer(group, name) {
        return Some(Plan::Steer(steer));
    }
    Some(Plan::Forward(verdict))
}

/// The verdict a canary's answer is logged with.
pub(crate) fn canary_verdict(name: &str) -> Verdict {
    Verdict {
        action: Action::Block,
        tier: Tier::Circumvention,
        category: None,
        list: Some("built-in".into()),
        rule: Some(name.into()),
    }
}

/// The answer code for a circumvention canary, or `None` for any other name.
fn canary_rcode(name: &str) -> Option<ResponseCode> {
    match name {
        // Firefox keeps DNS over HTTPS off while this name does not resolve.
        "use-application-dns.net"
        // iCloud Private Relay stays off while these do not resolve.
        | "mask.icloud.com"
        | "mask-h2.icloud.com" => Some(ResponseCode::NXDomain),
        // Discovery of Designated Resolvers (RFC 9462): say there are none (NODATA).
        "_dns.resolver.arpa" => Some(ResponseCode::NoError),
        _ => None,
    }
}

/// The block answer under `mode` for a query of `qtype`: NXDOMAIN; or the null address or
/// the block page's for A and AAAA (when configured), and NODATA for other types.
pub(crate) fn block_answer(mode: DnsBlockMode, qtype: RecordType, dns: &DnsConfig) -> BlockAnswer {
    let address = match (mode, qtype) {
        (DnsBlockMode::Null, RecordType::A) => Some(Ipv4Addr::UNSPECIFIED.into()),
        (DnsBlockMode::Null, RecordType::AAAA) => Some(Ipv6Addr::UNSPECIFIED.into()),
        (DnsBlockMode::Blockpage, RecordType::A) => dns.blockpage_ipv4.map(IpAddr::V4),
        (DnsBlockMode::Blockpage, RecordType::AAAA) => dns.blockpage_ipv6.map(IpAddr::V6),
        _ => None,
    };
    match mode {
        DnsBlockMode::Nxdomain => BlockAnswer {
            rcode: ResponseCode::NXDomain,
            address: None,
            page: false,
        },
        _ => BlockAnswer {
            rcode: ResponseCode::NoError,
            address,
            page: mode == DnsBlockMode::Blockpage && address.is_some(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn snapshot(dir: &std::path::Path) -> PolicySnapshot {
        std::fs::write(dir.join("adult.txt"), "adult.example\n").unwrap();
        std::fs::write(dir.join("iwf.txt"), "illegal.example/a.html\n").unwrap();
        let text = format!(
            r#"
[server]
state_dir = "{d}/state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{{ address = "127.0.0.1:53" }}]
blockpage_ipv4 = "192.0.2.80"

[lists.iwf]
path = "{d}/iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.adult]
path = "{d}/adult.txt"
format = "domains"
category = "adult"

[groups.pupils]
networks = ["10.1.0.0/16"]
block_categories = ["adult"]
safesearch = "on"
youtube = "strict"
dns_block = "nxdomain"

[groups.paged]
networks = ["10.2.0.0/16"]
block_categories = ["adult"]
safesearch = "off"
youtube = "off"
dns_block = "blockpage"

[groups.nulled]
networks = ["10.3.0.0/16"]
block_categories = ["adult"]
safesearch = "off"
youtube = "moderate"
dns_block = "null"
"#,
            d = dir.display()
        );
        let path = dir.join("hedgerow.toml");
        std::fs::write(&path, text).unwrap();
        PolicySnapshot::build(hedgerow_config::load(&path).unwrap()).unwrap()
    }

    #[test]
    fn each_rule_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = snapshot(dir.path());
        let now = jiff::Timestamp::now();
        let [pupils, paged, nulled] = ["pupils", "paged", "nulled"].map(|g| s.group_id(g).unwrap());
        let a = RecordType::A;

        // Canaries, for every group.
        for g in [pupils, paged, nulled] {
            assert_eq!(
                plan(&s, g, "use-application-dns.net", a, now),
                Some(Plan::Canary(ResponseCode::NXDomain))
            );
            assert_eq!(
                plan(&s, g, "_dns.resolver.arpa", RecordType::SVCB, now),
                Some(Plan::Canary(ResponseCode::NoError))
            );
        }

        // Blocks, under each group's mode and for each type.
        let block = |g, t| match plan(&s, g, "www.adult.example", t, now) {
            Some(Plan::Block { answer, verdict }) => {
                assert_eq!(verdict.category.as_ref().map(|c| c.as_str()), Some("adult"));
                answer
            }
            other => panic!("not a block: {other:?}"),
        };
        let nx = BlockAnswer {
            rcode: ResponseCode::NXDomain,
            address: None,
            page: false,
        };
        assert_eq!(block(pupils, a), nx);
        assert_eq!(block(pupils, RecordType::MX), nx);
        let page = block(paged, a);
        assert_eq!(page.address, Some("192.0.2.80".parse().unwrap()));
        assert!(page.page);
        // No IPv6 block page address: NODATA with the SOA, and nothing to note.
        let nodata = block(paged, RecordType::AAAA);
        assert_eq!(
            (nodata.rcode, nodata.address, nodata.page),
            (ResponseCode::NoError, None, false)
        );
        assert_eq!(
            block(nulled, RecordType::AAAA).address,
            Some(Ipv6Addr::UNSPECIFIED.into())
        );
        assert_eq!(block(nulled, RecordType::TXT).address, None);

        // Steering: SafeSearch for pupils, YouTube moderate for nulled, nothing for paged.
        match plan(&s, pupils, "www.google.com", a, now) {
            Some(Plan::Steer(st)) => assert_eq!(st.target, "forcesafesearch.google.com"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(&s, paged, "www.google.com", a, now),
            Some(Plan::Forward(_))
        ));
        match plan(&s, nulled, "www.youtube.com", a, now) {
            Some(Plan::Steer(st)) => assert_eq!(st.target, "restrictmoderate.youtube.com"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(&s, paged, "www.youtube.com", a, now),
            Some(Plan::Forward(_))
        ));

        // An unenforceable engine is blocked with SafeSearch on, forwarded without.
        match plan(&s, pupils, "search.yahoo.com", a, now) {
            Some(Plan::Block { verdict, .. }) => assert_eq!(
                verdict.category.as_ref().map(|c| c.as_str()),
                Some(hedgerow_policy::UNENFORCEABLE_CATEGORY)
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(&s, paged, "search.yahoo.com", a, now),
            Some(Plan::Forward(_))
        ));

        // Anything else is forwarded.
        assert!(
            matches!(plan(&s, pupils, "example.org", a, now), Some(Plan::Forward(v)) if !v.is_blocked())
        );
    }
}
