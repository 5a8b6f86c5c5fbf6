//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs; not a supported API).
//!
//! The batch codec is crate-private; this module lends it to the fuzzers. Nothing here is
//! used by the appliance itself.

use hedgerow_model::AccessEvent;

use crate::StoreError;
use crate::wire::{BatchBuilder, ValueScratch, decode_batch};

/// Decodes a stored value of the events tree (a batch in format 2, or a list of events in
/// format 1), as reads, export and the integrity check do.
pub fn decode(value: &[u8]) -> Result<Vec<AccessEvent>, StoreError> {
    decode_batch("events", value)
}

/// The bytes a batch in format 2 compresses: a value whose body is `raw` compressed, so a
/// fuzzer can reach the decoder behind LZ4.
pub fn compressed_value(raw: &[u8]) -> Vec<u8> {
    let size = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    let mut value = vec![crate::wire::BATCH_FORMAT];
    value.extend_from_slice(&size.to_le_bytes());
    value.extend_from_slice(&lz4_flex::block::compress(raw));
    value
}

/// Encodes `events` as the recorder does: the stored values of the batches they fill, in
/// order (a batch is sealed when full or at a new day).
pub fn encode(events: &[AccessEvent]) -> Vec<Vec<u8>> {
    let mut builder = BatchBuilder::default();
    let mut scratch = ValueScratch::default();
    let mut out = Vec::new();
    for e in events {
        if let Some(sealed) = builder.push(e) {
            out.push(sealed.value_with(&mut scratch));
        }
    }
    if let Some(sealed) = builder.seal() {
        out.push(sealed.value_with(&mut scratch));
    }
    out
}
