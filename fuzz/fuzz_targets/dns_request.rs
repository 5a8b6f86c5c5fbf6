//! The whole DNS request path, from raw datagrams: the fast path, a cache miss filled from an
//! upstream, and the full hickory path (identity from EDNS options, groups, rate limit,
//! canaries, policy, SafeSearch, forwarding, the CNAME-chain check, ECH stripping, the
//! answer's encoding and truncation), with the resolver's real policy, cache and forwarder.
//!
//! The upstream is a stub on loopback that answers every query with the input's upstream
//! sections: the query's own ID and question, then the input's flags, counts and records,
//! byte for byte, so hickory's decoder and the cache see hostile upstream answers too.
//!
//! Input: the upstream part (u16 length, then 2 flag bytes, 6 count bytes and the sections),
//! then up to four datagrams, each a client selector byte, a u16 length and the bytes.
//! Every datagram must be answered (unless it is shorter than a header or a response) with a
//! message hickory reads, carrying the query's ID and, for a query hickory reads, its
//! question.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use hedgerow_dns::fuzzing::{Harness, Reply};
use hedgerow_fuzz::{Discard, dns_policy, parts, source};
use hedgerow_model::SystemClock;
use hedgerow_policy::PolicyHandle;
use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use tokio::net::UdpSocket;

struct Setup {
    _dir: tempfile::TempDir,
    policy: Arc<PolicyHandle>,
    runtime: tokio::runtime::Runtime,
    /// What the upstream stub answers with, for the current input.
    upstream: Arc<Mutex<Vec<u8>>>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let upstream = Arc::new(Mutex::new(Vec::new()));
        let socket = runtime
            .block_on(UdpSocket::bind("127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("binding the stub upstream: {e}"));
        let addr = socket
            .local_addr()
            .unwrap_or_else(|e| panic!("stub address: {e}"));
        runtime.spawn(stub(socket, upstream.clone()));
        let policy = dns_policy(dir.path(), addr);
        Setup {
            _dir: dir,
            policy,
            runtime,
            upstream,
        }
    })
}

/// Answers each query with its own ID and question and the current upstream sections.
async fn stub(socket: UdpSocket, sections: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = &buf[..n];
        let Some(reply) = reply(query, &sections.lock().unwrap_or_else(|e| e.into_inner())) else {
            continue;
        };
        let _ = socket.send_to(&reply, from).await;
    }
}

fn reply(query: &[u8], sections: &[u8]) -> Option<Vec<u8>> {
    // The question: from offset 12 to the end of the first name, plus type and class.
    let mut i = 12;
    loop {
        let len = usize::from(*query.get(i)?);
        i += 1 + len;
        if len == 0 {
            break;
        }
    }
    let question = query.get(12..i + 4)?;
    let mut out = Vec::with_capacity(12 + question.len() + sections.len());
    out.extend_from_slice(query.get(..2)?);
    let flags = [
        sections.first().copied().unwrap_or(0) | 0x80,
        sections.get(1).copied().unwrap_or(0),
    ];
    out.extend_from_slice(&flags);
    out.extend_from_slice(&1u16.to_be_bytes());
    let counts = sections.get(2..8).unwrap_or(&[0; 6]);
    out.extend_from_slice(counts);
    out.extend_from_slice(question);
    out.extend_from_slice(sections.get(8..).unwrap_or_default());
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let [upstream, rest] = parts(data, 2)[..] else {
        return;
    };
    let s = setup();
    *s.upstream.lock().unwrap_or_else(|e| e.into_inner()) = upstream.to_vec();
    let harness = Harness::new(s.policy.clone(), Arc::new(Discard), Arc::new(SystemClock));

    let mut rest = rest;
    for _ in 0..4 {
        let Some((&selector, tail)) = rest.split_first() else {
            break;
        };
        let [datagram, tail] = parts(tail, 2)[..] else {
            break;
        };
        rest = tail;
        let src: SocketAddr = source(selector);
        let reply = s.runtime.block_on(harness.datagram(datagram, src, None));
        check(datagram, &reply);
    }
});

fn check(query: &[u8], reply: &Reply) {
    let bytes = match reply {
        Reply::Fast(b) | Reply::Filled(b) | Reply::Full(b) => b,
        Reply::None => {
            // Only a datagram shorter than a header, or a response, goes unanswered; an answer
            // that could not be encoded would be a bug.
            let is_response = query.get(2).is_some_and(|b| b & 0x80 != 0);
            assert!(query.len() < 12 || is_response, "a query went unanswered");
            return;
        }
    };
    let answer =
        Message::from_vec(bytes).unwrap_or_else(|e| panic!("unreadable answer ({reply:?}): {e}"));
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    assert_eq!(&bytes[..2], &query[..2], "answer ID");
    let payload = Message::from_vec(query)
        .ok()
        .and_then(|q| q.edns.map(|e| e.max_payload().max(512)))
        .unwrap_or(512);
    assert!(
        bytes.len() <= usize::from(payload.min(4096)),
        "a {}-byte UDP answer for a {payload}-byte buffer",
        bytes.len()
    );
    if let Ok(q) = Message::from_vec(query)
        && q.queries.len() == 1
    {
        assert_eq!(answer.queries, q.queries, "answer question");
    }
}
