//! The proxy's ClientHello reader (CONNECT tunnels: SNI and ECH), against rustls reading the
//! same bytes as a server would.
//!
//! - Whenever rustls accepts the bytes as a ClientHello, ours reads one too, with the same
//!   server name (rustls gives only valid DNS names; ours lower-cases).
//! - Bytes arrive in pieces: a prefix of the input reads as "more bytes needed" or as the
//!   same hello, never as something else, so the tunnel's wait-for-more loop is sound.
#![no_main]

use hedgerow_proxy::fuzzing::{Hello, parse_hello};
use libfuzzer_sys::fuzz_target;
use rustls::server::Acceptor;

/// What rustls makes of the bytes: `Some(server name)` when it accepts a ClientHello.
fn rustls_hello(data: &[u8]) -> Option<Option<String>> {
    let mut acceptor = Acceptor::default();
    let mut rest = data;
    loop {
        match acceptor.read_tls(&mut rest) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                return Some(accepted.client_hello().server_name().map(str::to_owned));
            }
            Ok(None) => {}
            Err(_) => return None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = parse_hello(data);
    if let Some(name) = rustls_hello(data) {
        let Hello::Read { sni, .. } = &ours else {
            panic!("rustls reads a ClientHello (server name {name:?}) that we read as {ours:?}");
        };
        if let Some(name) = name {
            // rustls drops a trailing dot from the server name; we keep the name as sent, and
            // `Host::parse` drops it where the name is used.
            let ours = sni.as_deref().map(|s| s.strip_suffix('.').unwrap_or(s));
            assert_eq!(ours, Some(name.to_ascii_lowercase().as_str()));
        }
    }
    for cut in [data.len() / 2, data.len().saturating_sub(1)] {
        let part = parse_hello(&data[..cut]);
        assert!(
            part == Hello::Short || part == ours,
            "the first {cut} bytes read as {part:?}, all of them as {ours:?}"
        );
    }
});
