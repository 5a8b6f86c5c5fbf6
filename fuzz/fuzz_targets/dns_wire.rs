//! The DNS fast path's wire reader against hickory-proto's parse of the same bytes.
//!
//! - `parse_query`: a query the fast path reads must be one hickory reads as the same query
//!   (ID, flags, one IN question with the same name and type, no answers or authorities,
//!   the same EDNS payload size, DO bit and options); otherwise the fast path would answer
//!   what the full path answers differently (FORMERR, say). Only the EDNS options may be
//!   what hickory refuses: the fast path vets them when it identifies the client.
//! - `opt_rdata`: the full path's OPT finder sees the options hickory sees.
//! - `layout`: the cache's walk finds every answer and authority record, and each TTL offset
//!   holds the TTL hickory read for that record.
#![no_main]

use hedgerow_dns::fuzzing;
use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::{DNSClass, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let hickory = Message::from_vec(data).ok();

    if let Some(q) = fuzzing::parse_query(data) {
        let Some(m) = &hickory else {
            // The fast path reads EDNS options only when identifying the client, and hands
            // any it cannot read to the full path (dns_fast checks that end to end). So the
            // options may be what hickory refuses, but nothing else may be.
            assert!(
                !q.options.is_empty(),
                "the fast path reads a query hickory cannot: {q:?}"
            );
            let mut stripped = data[..data.len() - q.options.len()].to_vec();
            let at = stripped.len() - 2;
            stripped[at..].copy_from_slice(&[0, 0]);
            assert!(
                Message::from_vec(&stripped).is_ok(),
                "the fast path reads a query hickory cannot, options aside: {q:?}"
            );
            return;
        };
        assert_eq!(m.metadata.id, q.id);
        assert_eq!(m.metadata.message_type, MessageType::Query);
        assert_eq!(m.metadata.op_code, OpCode::Query);
        assert_eq!(m.metadata.recursion_desired, q.rd);
        assert_eq!(m.queries.len(), 1);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
        let hq = &m.queries[0];
        // The labels, as the full path reads them (handler.rs `plain_name`): hickory's own
        // presentation form escapes a leading `-`, which once let such names past the policy.
        let labels: Vec<String> = hq
            .name()
            .iter()
            .map(|l| l.iter().map(|c| c.to_ascii_lowercase() as char).collect())
            .collect();
        assert_eq!(labels.join("."), q.name, "question name");
        assert_eq!(u16::from(hq.query_type()), q.qtype);
        assert_eq!(hq.query_class(), DNSClass::IN);
        assert_eq!(q.question.as_slice(), &data[12..12 + q.question.len()]);
        match (&m.edns, q.edns) {
            (None, None) => assert!(q.options.is_empty()),
            (Some(e), Some((payload, dnssec_ok))) => {
                assert_eq!(e.max_payload().max(512), payload, "EDNS payload");
                assert_eq!(e.flags().dnssec_ok, dnssec_ok, "DO bit");
                // hickory drops options it does not keep (code 0, say); the identity step
                // ignores those too. Any option hickory keeps, the fast path has.
                if !e.options().options.is_empty() {
                    assert!(!q.options.is_empty(), "EDNS options");
                }
            }
            (h, f) => panic!("EDNS: hickory {h:?}, fast path {f:?}"),
        }
        // Both paths hand identity the same option bytes.
        assert_eq!(fuzzing::opt_rdata(data), q.options.as_slice());
    }

    let Some(m) = hickory else {
        // Whatever the bytes, the walks end without a panic.
        let _ = fuzzing::opt_rdata(data);
        let _ = fuzzing::layout(data);
        return;
    };

    // hickory keeps the OPT record as `edns`: when it has options, the finder has them too.
    if m.edns
        .as_ref()
        .is_some_and(|e| !e.options().options.is_empty())
    {
        assert!(
            !fuzzing::opt_rdata(data).is_empty(),
            "hickory sees EDNS options the full path's finder misses"
        );
    }
    if m.edns.is_none() {
        assert!(fuzzing::opt_rdata(data).is_empty());
    }

    if m.queries.len() == 1 {
        let l = fuzzing::layout(data).unwrap_or_else(|| {
            panic!("hickory reads a one-question message the cache cannot walk")
        });
        assert_eq!(usize::from(l.answers), m.answers.len());
        assert_eq!(usize::from(l.authorities), m.authorities.len());
        let records = m.answers.iter().chain(m.authorities.iter());
        assert_eq!(l.ttl_offsets.len(), m.answers.len() + m.authorities.len());
        for (r, &off) in records.zip(&l.ttl_offsets) {
            let at = l.sections_at + usize::from(off);
            let ttl = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            // hickory reads an OPT record's TTL as flags; there is none in these sections
            // unless the message is odd, and then the raw TTL field is what the cache ages.
            if r.record_type() != RecordType::OPT {
                assert_eq!(ttl, r.ttl, "TTL of {} at offset {off}", r.name);
            }
        }
    }
});
