//! The log store's batch decoder (`decode_batch`: format 2, LZ4 and postcard with a string
//! dictionary; and format 1), on values as read back from sled, which may be damaged.
//!
//! - Decoding never panics and never allocates more than the value can justify.
//! - Whatever decodes, re-encoded as the recorder encodes it, decodes to the same events: the
//!   dictionary indexes, time offsets and optional fields survive the round trip.
//!
//! Input: one mode byte (even: the bytes are the stored value; odd: they are the raw batch,
//! compressed here, so the fuzzer reaches the postcard decoder behind LZ4), then the bytes.
#![no_main]

use hedgerow_store::fuzzing::{compressed_value, decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, bytes)) = input.split_first() else {
        return;
    };
    let value = if mode & 1 == 0 {
        bytes.to_vec()
    } else {
        compressed_value(bytes)
    };
    let Ok(events) = decode(&value) else {
        return;
    };
    let mut again = Vec::with_capacity(events.len());
    for v in encode(&events) {
        match decode(&v) {
            Ok(mut e) => again.append(&mut e),
            Err(e) => panic!("a batch the recorder wrote does not read back: {e}"),
        }
    }
    assert_eq!(
        format!("{again:?}"),
        format!("{events:?}"),
        "events changed in a round trip"
    );
});
