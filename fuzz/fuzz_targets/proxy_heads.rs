//! The proxy's request-head inspector (framing and smuggling shapes), which reads a client's
//! bytes on their way to hyper and queues one verdict per request head for the handler.
//!
//! - The verdicts do not depend on how the bytes were split into reads.
//! - Every smuggling shape among the requests an HTTP/1 server reads from the same bytes (a
//!   reference built on httparse, the parser hyper uses: a request per head, bodies skipped by
//!   Content-Length, reading stopped at a chunked body, CONNECT, a smuggling shape or a bad
//!   length) is refused, at its own head or an earlier one.
//!
//! Input: one byte that sets the read size (1 to 64 bytes), then the connection's bytes.
#![no_main]

use hedgerow_proxy::fuzzing::inspect_framing;
use libfuzzer_sys::fuzz_target;

/// The configured head limit; the inputs stay far below it.
const LIMIT: usize = 64 * 1024;

/// The verdict for each request an HTTP/1 server reads from `data`, in order.
fn reference(mut data: &[u8]) -> Vec<bool> {
    let mut out = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(n)) = req.parse(data) else {
            return out;
        };
        let mut lengths = Vec::new();
        let mut te = false;
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                lengths.push(
                    std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok()),
                );
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te = true;
            }
        }
        let conflict = (te && !lengths.is_empty()) || lengths.len() > 1;
        out.push(conflict);
        if conflict || te || req.method == Some("CONNECT") {
            return out;
        }
        let body = match lengths.first() {
            None => 0,
            Some(Some(n)) => *n,
            // A Content-Length that is not a number: 400 and close.
            Some(None) => return out,
        };
        let Some(rest) = usize::try_from(body)
            .ok()
            .and_then(|b| data.get(n.checked_add(b)?..))
        else {
            return out;
        };
        data = rest;
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&size, data)) = input.split_first() else {
        return;
    };
    let whole = inspect_framing([data], LIMIT);
    let split = inspect_framing(data.chunks(1 + usize::from(size % 64)), LIMIT);
    assert_eq!(whole, split, "verdicts depend on how the bytes were read");
    // The inspector refuses more than smuggling shapes (obs-fold, bare CR/LF, bad lengths…),
    // and stops at the first refusal; a head that gets no verdict at all is refused by the
    // handler (it fails closed on a missing verdict). So every smuggling shape the server reads
    // must be refused at its own head or before it, or have no verdict.
    let server = reference(data);
    for (i, &conflict) in server.iter().enumerate() {
        if conflict {
            assert!(
                whole.len() <= i || whole[..=i].iter().any(|&refused| refused),
                "inspector {whole:?}, server reads {server:?}"
            );
        }
    }
});
