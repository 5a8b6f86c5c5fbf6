//! A TLS 1.3 ClientHello written byte by byte, for the circumvention probes: it must carry a
//! chosen SNI (or none) and, for the ECH probe, an `encrypted_client_hello` extension, which
//! no TLS library sends without a real ECH configuration. The probe never completes a
//! handshake; it only watches whether the proxy lets the hello reach the site.

/// A ClientHello record with `sni` as server name (none: no extension) and, when `ech`, an
/// outer `encrypted_client_hello` extension (type 0xfe0d) with a placeholder payload.
pub(crate) fn client_hello(sni: Option<&str>, ech: bool) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let name = name.as_bytes();
        let mut list = Vec::new();
        list.push(0u8); // host_name
        put_u16(&mut list, name.len());
        list.extend_from_slice(name);
        let mut body = Vec::new();
        put_u16(&mut body, list.len());
        body.extend_from_slice(&list);
        extension(&mut ext, 0x0000, &body);
    }
    // supported_versions: TLS 1.3, 1.2
    extension(&mut ext, 0x002b, &[4, 0x03, 0x04, 0x03, 0x03]);
    // supported_groups: x25519
    extension(&mut ext, 0x000a, &[0, 2, 0x00, 0x1d]);
    // signature_algorithms: ed25519, ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256
    extension(
        &mut ext,
        0x000d,
        &[0, 6, 0x08, 0x07, 0x04, 0x03, 0x08, 0x04],
    );
    // key_share: x25519 with a fixed public value
    let mut ks = vec![0, 36, 0x00, 0x1d, 0, 32];
    ks.extend_from_slice(&[9u8; 32]);
    extension(&mut ext, 0x0033, &ks);
    if ech {
        // outer ECH: type 0 (outer), cipher suite (HKDF-SHA256, AES-128-GCM), config id,
        // enc (32 bytes), payload (placeholder).
        let mut e = vec![0u8, 0x00, 0x01, 0x00, 0x01, 0x42];
        put_u16(&mut e, 32);
        e.extend_from_slice(&[7u8; 32]);
        put_u16(&mut e, 64);
        e.extend_from_slice(&[5u8; 64]);
        extension(&mut ext, 0xfe0d, &e);
    }
    let mut hello = Vec::new();
    hello.extend_from_slice(&[0x03, 0x03]); // legacy_version
    hello.extend_from_slice(&[0x2a; 32]); // random
    hello.push(32); // legacy_session_id
    hello.extend_from_slice(&[0x11; 32]);
    // cipher suites: TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305
    hello.extend_from_slice(&[0, 6, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03]);
    hello.extend_from_slice(&[1, 0]); // compression: null
    put_u16(&mut hello, ext.len());
    hello.extend_from_slice(&ext);
    let mut hs = vec![0x01]; // client_hello
    let len = hello.len();
    hs.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8]);
    hs.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    put_u16(&mut record, hs.len());
    record.extend_from_slice(&hs);
    record
}

fn put_u16(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u16).to_be_bytes());
}

fn extension(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    put_u16(out, body.len());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_add_up() {
        for (sni, ech) in [(Some("example.com"), false), (None, true)] {
            let r = client_hello(sni, ech);
            assert_eq!(r[0], 0x16);
            let rec = usize::from(u16::from_be_bytes([r[3], r[4]]));
            assert_eq!(rec, r.len() - 5);
            let hs = (usize::from(r[6]) << 16) | (usize::from(r[7]) << 8) | usize::from(r[8]);
            assert_eq!(hs, rec - 4);
            let has = |needle: &[u8]| r.windows(needle.len()).any(|w| w == needle);
            assert_eq!(has(b"example.com"), sni.is_some());
            assert_eq!(has(&[0xfe, 0x0d]), ech);
        }
    }
}
