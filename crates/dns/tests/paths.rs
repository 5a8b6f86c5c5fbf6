//! The fast path and the full path give the same answer to the same query: a property test
//! over generated queries (names that are blocked, allowed, listed locally, SafeSearch and
//! YouTube names, unenforceable engines, canaries; every block mode; A, AAAA and other types;
//! with and without EDNS and DO; with and without a cached upstream answer). Whenever the fast
//! path answers, the full path must answer the same: code, flags, records (TTLs aside) and
//! EDNS. A block must be answered by the fast path (it needs nothing the full path has). The
//! fuzz target `fuzz/fuzz_targets/dns_fast.rs` checks the same promise over arbitrary bytes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};

use hedgerow_dns::fuzzing::{Harness, Reply};
use hedgerow_model::{AccessEvent, EventSink, SystemClock};
use hedgerow_policy::PolicyHandle;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use proptest::prelude::*;

struct Discard;

impl EventSink for Discard {
    fn record(&self, _: AccessEvent) {}
}

struct Setup {
    _dir: tempfile::TempDir,
    policy: Arc<PolicyHandle>,
    runtime: tokio::runtime::Runtime,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("adult.txt"), "adult.example\nwww.google.de\n").unwrap();
        std::fs::write(d.join("allow.txt"), "ok.adult.example\n").unwrap();
        std::fs::write(d.join("iwf.txt"), "illegal.example/a.html\n").unwrap();
        // Nothing listens on port 9: a query that reaches the upstream fails at once.
        let config = r#"
[server]
state_dir = "state"

[dns]
listen = ["127.0.0.1:0"]
timeout = "50ms"
rate_limit_qps = 0
blockpage_ipv4 = "192.0.2.80"
blockpage_ipv6 = "2001:db8::80"

[[dns.upstreams]]
address = "127.0.0.1:9"

[lists.adult]
path = "adult.txt"
format = "domains"
category = "adult"

[lists.iwf]
path = "iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.allow]
path = "allow.txt"
format = "domains"
kind = "allow"

[groups.nx]
networks = ["127.0.1.0/24"]
block_categories = ["adult"]
dns_block = "nxdomain"
safesearch = "on"
youtube = "strict"
block = ["local.example"]

[groups.null]
networks = ["127.0.2.0/24"]
block_categories = ["adult"]
dns_block = "null"
safesearch = "off"
youtube = "moderate"
allow = ["www.adult.example"]

[groups.page]
networks = ["127.0.3.0/24"]
block_categories = ["adult"]
dns_block = "blockpage"
safesearch = "on"
youtube = "off"

[groups.open]
networks = ["127.0.4.0/24"]
block_categories = []
safesearch = "off"
youtube = "off"
"#;
        std::fs::write(d.join("hedgerow.toml"), config).unwrap();
        let policy = Arc::new(PolicyHandle::load(&d.join("hedgerow.toml")).unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Setup {
            _dir: dir,
            policy,
            runtime,
        }
    })
}

const NAMES: &[&str] = &[
    "adult.example",
    "www.adult.example",
    "ok.adult.example",
    "local.example",
    "a.local.example",
    "allowed.example",
    "www.google.com",
    "www.google.de",
    "www.bing.com",
    "duckduckgo.com",
    "www.ecosia.org",
    "pixabay.com",
    "www.youtube.com",
    "m.youtube.com",
    "search.yahoo.com",
    "search.brave.com",
    "use-application-dns.net",
    "mask.icloud.com",
    "_dns.resolver.arpa",
    "forcesafesearch.google.com",
];

const TYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::TXT,
    RecordType::MX,
    RecordType::HTTPS,
];

/// What the upstream answered, put in the cache before the query.
#[derive(Debug, Clone, Copy)]
enum Cached {
    Nothing,
    Records,
    Cname,
}

/// A record without its TTL (which ages between the two answers), in lower case (the fast
/// path keeps the client's own question spelling).
fn no_ttl(r: &Record) -> String {
    let owner = r.name.to_ascii();
    format!("{owner} {} {} {:?}", r.dns_class, r.record_type(), r.data).to_ascii_lowercase()
}

fn query(name: &str, qtype: RecordType, edns: Option<(u16, bool)>, upper: bool) -> Vec<u8> {
    let spelled = if upper {
        name.to_ascii_uppercase()
    } else {
        name.to_owned()
    };
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(format!("{spelled}.")).unwrap(),
        qtype,
    ));
    if let Some((payload, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        e.flags_mut().dnssec_ok = dnssec_ok;
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn upstream_answer(name: &str, qtype: RecordType, cached: Cached) -> Option<Vec<u8>> {
    let owner = Name::from_ascii(format!("{name}.")).unwrap();
    let mut m = Message::new(1, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.add_query(Query::query(owner.clone(), qtype));
    let data = match (cached, qtype) {
        (Cached::Nothing, _) => return None,
        (Cached::Cname, _) => RData::CNAME(CNAME(Name::from_ascii("cdn.example.").unwrap())),
        (_, RecordType::A) => RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        (_, RecordType::AAAA) => RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
        (_, RecordType::TXT) => RData::TXT(TXT::new(vec!["hello".into()])),
        // NODATA.
        _ => return Some(m.to_vec().unwrap()),
    };
    m.add_answer(Record::from_rdata(owner, 300, data));
    Some(m.to_vec().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn both_paths_give_the_same_answer(
        name in prop::sample::select(NAMES),
        qtype in prop::sample::select(TYPES),
        group in 1u8..=5,
        edns in prop::option::of((prop::sample::select(&[512u16, 1232, 4096][..]), any::<bool>())),
        upper in any::<bool>(),
        cached in prop::sample::select(&[Cached::Nothing, Cached::Records, Cached::Cname][..]),
    ) {
        let s = setup();
        let harness = Harness::new(s.policy.clone(), Arc::new(Discard), Arc::new(SystemClock));
        let dnssec_ok = edns.is_some_and(|(_, d)| d);
        if let Some(up) = upstream_answer(name, qtype, cached) {
            prop_assert!(harness.prime(name, u16::from(qtype), dnssec_ok, &up));
        }
        let bytes = query(name, qtype, edns, upper);
        let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, group, 7)), 40_000);
        let fast = harness.try_fast(&bytes, src, None);
        let full = s.runtime.block_on(harness.full_path(&bytes, src, None));
        let Reply::Full(full) = full else {
            panic!("the full path did not answer: {full:?}");
        };
        let full = Message::from_vec(&full).unwrap();
        // 127.0.5.x is in no group: REFUSED on the full path, never answered fast.
        let snap = s.policy.snapshot();
        let Some(client) = snap.client(src.ip(), None) else {
            prop_assert!(fast.is_none());
            prop_assert_eq!(full.metadata.response_code, hickory_proto::op::ResponseCode::Refused);
            return Ok(());
        };
        let blocked = hedgerow_model::Host::parse(name).is_ok_and(|host| {
            snap.decide(client.group, hedgerow_policy::Target::Host(&host), jiff::Timestamp::now())
                .is_blocked()
        });
        let canary = matches!(name, "use-application-dns.net" | "mask.icloud.com" | "_dns.resolver.arpa");
        let Some(fast) = fast else {
            prop_assert!(
                !blocked || canary,
                "a block the fast path did not answer: {} {} from {}", name, qtype, src
            );
            return Ok(());
        };
        let answer = Message::from_vec(&fast).unwrap();
        let (a, f) = (&answer.metadata, &full.metadata);
        prop_assert_eq!(
            (a.id, a.message_type, a.response_code, a.authoritative, a.truncation),
            (f.id, f.message_type, f.response_code, f.authoritative, f.truncation)
        );
        prop_assert_eq!(
            (a.recursion_desired, a.recursion_available, a.checking_disabled, a.authentic_data),
            (f.recursion_desired, f.recursion_available, f.checking_disabled, f.authentic_data)
        );
        let records = |m: &Message| {
            (
                m.answers.iter().map(no_ttl).collect::<Vec<_>>(),
                m.authorities.iter().map(no_ttl).collect::<Vec<_>>(),
            )
        };
        prop_assert_eq!(records(&answer), records(&full));
        let edns_of = |m: &Message| {
            m.edns.as_ref().map(|e| (e.max_payload(), e.flags().dnssec_ok))
        };
        prop_assert_eq!(edns_of(&answer), edns_of(&full));
    }
}
