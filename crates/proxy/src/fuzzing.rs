//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs; not a supported API).
//!
//! The ClientHello reader and the request-head inspector are crate-private; this module lends
//! them to the fuzzers. Nothing here is used by the appliance itself.

/// What the ClientHello reader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A whole ClientHello: its server name (lower-case) and whether it offers ECH.
    Read { sni: Option<String>, ech: bool },
    /// More bytes are needed.
    Short,
    /// Not TLS, or not a ClientHello.
    NotTls,
}

/// Reads the ClientHello at the start of `buf`, as a CONNECT tunnel does.
pub fn parse_hello(buf: &[u8]) -> Hello {
    match crate::tls::parse_hello(buf) {
        Ok(h) => Hello::Read {
            sni: h.sni,
            ech: h.ech,
        },
        Err(crate::tls::HelloError::Short) => Hello::Short,
        Err(crate::tls::HelloError::NotTls) => Hello::NotTls,
    }
}

/// The request-head inspector's verdict for each head it read from a connection's bytes,
/// arriving in `chunks` (true: refused, answered with an error and closed: a smuggling shape or
/// any framing two parsers could read two ways, see `framing.rs`). `limit` is the configured
/// `max_header_bytes`.
pub fn inspect_framing<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, limit: usize) -> Vec<bool> {
    crate::framing::verdicts(chunks, limit)
}
