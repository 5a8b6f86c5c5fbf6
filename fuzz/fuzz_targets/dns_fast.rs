//! Every answer the DNS fast path builds, against hickory-proto's parse of it and against the
//! full path's answer to the same query.
//!
//! Input: a selector byte (which client sends it: three groups with different block answers,
//! an unknown address, a trusted forwarder), an upstream answer (u16 length, bytes) that is put
//! in the cache for the query's name and type, and the query datagram. When the fast path
//! answers (a block, or the cache hit), hickory must read the answer as a response to that
//! query (same ID, RD, question) that fits the client's buffer, and the full path must give
//! the same answer: code, flags, records (TTLs aside) and EDNS. That is the fast path's
//! promise: it answers only what the full path would answer identically.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use hedgerow_dns::fuzzing::{self, Harness, Reply};
use hedgerow_fuzz::{Discard, dns_policy, parts, source};
use hedgerow_model::SystemClock;
use hedgerow_policy::PolicyHandle;
use hickory_proto::op::{Message, MessageType};
use hickory_proto::rr::Record;
use libfuzzer_sys::fuzz_target;

struct Setup {
    _dir: tempfile::TempDir,
    policy: Arc<PolicyHandle>,
    runtime: tokio::runtime::Runtime,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        // Nothing listens on port 9 here: a query that does reach the upstream fails at once.
        let upstream: SocketAddr = ([127, 0, 0, 1], 9).into();
        let policy = dns_policy(dir.path(), upstream);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        Setup {
            _dir: dir,
            policy,
            runtime,
        }
    })
}

/// A record without its TTL, which ages between the two answers, in lower case: the fast
/// path's compression pointers into the question resolve against the client's own question,
/// in the client's case (0x20 randomisation), where the full path writes the cached, lower-case
/// names. Only names can differ so; DNS compares them without case.
fn no_ttl(r: &Record) -> String {
    let owner = r.name.to_ascii();
    format!("{owner} {} {} {:?}", r.dns_class, r.record_type(), r.data).to_ascii_lowercase()
}

fuzz_target!(|data: &[u8]| {
    let [selector, upstream, query] = parts(data, 3)[..] else {
        return;
    };
    let Some(&selector) = selector.first() else {
        return;
    };
    let Some(q) = fuzzing::parse_query(query) else {
        return;
    };
    let s = setup();
    // A fresh resolver (and cache) for each input, so every run is repeatable.
    let harness = Harness::new(s.policy.clone(), Arc::new(Discard), Arc::new(SystemClock));
    let dnssec_ok = q.edns.is_some_and(|(_, d)| d);
    harness.prime(&q.name, q.qtype, dnssec_ok, upstream);
    let src = source(selector);

    let Some(fast) = harness.try_fast(query, src, None) else {
        return;
    };
    let answer = Message::from_vec(&fast)
        .unwrap_or_else(|e| panic!("hickory cannot read the fast path's answer: {e}"));
    let payload = q.edns.map_or(512, |(p, _)| p).min(4096);
    assert!(
        fast.len() <= usize::from(payload),
        "answer bigger than the client's buffer"
    );
    assert_eq!(answer.metadata.id, q.id);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    assert_eq!(answer.metadata.recursion_desired, q.rd);
    assert!(!answer.metadata.truncation);
    assert_eq!(answer.queries.len(), 1);
    assert_eq!(&fast[12..12 + q.question.len()], q.question.as_slice());
    assert_eq!(answer.edns.is_some(), q.edns.is_some());

    let full = s.runtime.block_on(harness.full_path(query, src, None));
    let Reply::Full(full) = full else {
        panic!("the fast path answered a query the full path does not answer: {full:?}");
    };
    let full = Message::from_vec(&full)
        .unwrap_or_else(|e| panic!("hickory cannot read the full path's answer: {e}"));
    let (a, f) = (&answer.metadata, &full.metadata);
    assert_eq!(
        (a.id, a.response_code, a.authoritative, a.truncation),
        (f.id, f.response_code, f.authoritative, f.truncation),
        "header: fast {a:?}, full {f:?}"
    );
    assert_eq!(
        (
            a.recursion_desired,
            a.recursion_available,
            a.checking_disabled,
            a.authentic_data
        ),
        (
            f.recursion_desired,
            f.recursion_available,
            f.checking_disabled,
            f.authentic_data
        ),
        "flags: fast {a:?}, full {f:?}"
    );
    assert_eq!(answer.queries, full.queries);
    let records = |m: &Message| {
        (
            m.answers.iter().map(no_ttl).collect::<Vec<_>>(),
            m.authorities.iter().map(no_ttl).collect::<Vec<_>>(),
        )
    };
    assert_eq!(records(&answer), records(&full), "records");
    let edns = |m: &Message| {
        m.edns.as_ref().map(|e| {
            (
                e.max_payload(),
                e.flags().dnssec_ok,
                format!("{:?}", e.options()),
            )
        })
    };
    assert_eq!(edns(&answer), edns(&full), "EDNS");
});
