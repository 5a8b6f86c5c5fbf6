//! TLS pieces: reading the ClientHello of a CONNECT tunnel (SNI, ECH), minting leaf
//! certificates from the school's CA for interception, and the client config for origins.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// What the ClientHello says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Hello {
    pub(crate) sni: Option<String>,
    /// An Encrypted Client Hello extension is present: the real name is hidden.
    pub(crate) ech: bool,
}

/// Why bytes are not a ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HelloError {
    /// More bytes are needed.
    Short,
    /// Not TLS, or not a ClientHello.
    NotTls,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::NotTls);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<usize, HelloError> {
        Ok(usize::from(self.take(1)?[0]))
    }
    fn u16(&mut self) -> Result<usize, HelloError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

/// Parses the ClientHello at the start of `buf` (one or more TLS records).
pub(crate) fn parse_hello(buf: &[u8]) -> Result<Hello, HelloError> {
    // Join the handshake bytes of consecutive handshake records.
    let mut hs = Vec::new();
    let mut rest = buf;
    loop {
        if rest.len() < 5 {
            return Err(HelloError::Short);
        }
        if rest[0] != 0x16 || rest[1] != 0x03 {
            return Err(HelloError::NotTls);
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if rest.len() < 5 + len {
            return Err(HelloError::Short);
        }
        hs.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
        if hs.len() >= 4 {
            let need =
                4 + ((usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]));
            if hs[0] != 1 {
                return Err(HelloError::NotTls);
            }
            if hs.len() >= need {
                hs.truncate(need);
                break;
            }
        }
    }
    let mut r = Reader(&hs[4..]);
    r.take(2 + 32)?; // version, random
    let n = r.u8()?;
    r.take(n)?; // session id
    let n = r.u16()?;
    r.take(n)?; // cipher suites
    let n = r.u8()?;
    r.take(n)?; // compression
    let mut hello = Hello::default();
    if r.0.is_empty() {
        return Ok(hello);
    }
    let n = r.u16()?;
    let mut ext = Reader(r.take(n)?);
    while !ext.0.is_empty() {
        let kind = ext.u16()?;
        let len = ext.u16()?;
        let data = ext.take(len)?;
        match kind {
            0 => {
                let mut ext = Reader(data);
                let list = ext.u16()?;
                let mut d = Reader(ext.take(list)?);
                while !d.0.is_empty() {
                    // Another name type's length is not known: the rest of the list is
                    // skipped, as TLS servers skip it (rustls; found by fuzzing,
                    // fuzz/fuzz_targets/tls_hello.rs).
                    if d.u8()? != 0 {
                        break;
                    }
                    let n = d.u16()?;
                    let name = d.take(n)?;
                    // One host name at most (RFC 6066): with two, we could check one and the
                    // server serve the other. Servers refuse such a hello; so do we.
                    if hello.sni.is_some() {
                        return Err(HelloError::NotTls);
                    }
                    let s = std::str::from_utf8(name).map_err(|_| HelloError::NotTls)?;
                    hello.sni = Some(s.to_ascii_lowercase());
                }
            }
            0xfe0d => hello.ech = true,
            _ => {}
        }
    }
    Ok(hello)
}

/// Why TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("the school CA: {0}")]
    Ca(String),
    #[error("minting a certificate for {host}: {reason}")]
    Mint { host: String, reason: String },
}

/// The school's CA, minting a leaf for each host on first use and keeping it.
pub(crate) struct Minter {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    leaf_key: rcgen::KeyPair,
    provider: Arc<rustls::crypto::CryptoProvider>,
    cache: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

const MAX_LEAVES: usize = 4096;

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl Minter {
    pub(crate) fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let key = rcgen::KeyPair::from_pem(&read(key)?).map_err(|e| TlsError::Ca(e.to_string()))?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&read(cert)?, key)
            .map_err(|e| TlsError::Ca(e.to_string()))?;
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| TlsError::Ca(e.to_string()))?;
        Ok(Self {
            issuer,
            leaf_key,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// A server config presenting a certificate for `host`, signed by the school CA.
    pub(crate) fn server_config(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = cache.get(host) {
            return Ok(c.clone());
        }
        let err = |reason: String| TlsError::Mint {
            host: host.to_owned(),
            reason,
        };
        let mut params =
            rcgen::CertificateParams::new(vec![host.to_owned()]).map_err(|e| err(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, host);
        let now = jiff::Timestamp::now().as_second();
        params.not_before = rcgen::date_time_ymd(1970, 1, 1)
            + std::time::Duration::from_secs(u64::try_from(now - 86_400).unwrap_or(0));
        params.not_after = params.not_before + std::time::Duration::from_secs(90 * 86_400);
        let cert = params
            .signed_by(&self.leaf_key, &self.issuer)
            .map_err(|e| err(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(self.leaf_key.serialize_pem().as_bytes())
            .map_err(|e| err(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .map_err(|e| err(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        if cache.len() >= MAX_LEAVES {
            cache.clear();
        }
        cache.insert(host.to_owned(), config.clone());
        Ok(config)
    }
}

/// The client config for origins while intercepting: Mozilla roots plus `extra` (PEM).
pub(crate) fn client_config(extra: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra {
        let text = read(path)?;
        for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
            let cert = cert.map_err(|e| TlsError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| TlsError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Ca(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello from rustls for `name`, as bytes on the wire.
    fn hello_for(name: &str) -> Vec<u8> {
        let config = client_config(None).unwrap();
        let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(config, server).unwrap();
        let mut out = Vec::new();
        conn.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_sni_from_a_real_client_hello() {
        let bytes = hello_for("www.Example.org");
        let h = parse_hello(&bytes).unwrap();
        assert_eq!(h.sni.as_deref(), Some("www.example.org"));
        assert!(!h.ech);
        assert_eq!(
            parse_hello(&bytes[..bytes.len() - 1]),
            Err(HelloError::Short)
        );
        assert_eq!(parse_hello(b"GET / HTTP/1.1\r\n"), Err(HelloError::NotTls));
    }

    /// The server-name extension of `hello` (a rustls ClientHello in one record) replaced by
    /// one whose list is `list`, with every length around it fixed.
    fn with_server_names(hello: &[u8], list: &[u8]) -> Vec<u8> {
        let u16_at = |b: &[u8], i: usize| usize::from(u16::from_be_bytes([b[i], b[i + 1]]));
        // Record header (5), handshake header (4), version and random (34), session id.
        let mut i = 5 + 4 + 34;
        i += 1 + usize::from(hello[i]);
        i += 2 + u16_at(hello, i);
        i += 1 + usize::from(hello[i]);
        let extensions_at = i;
        let mut out_ext = Vec::new();
        let mut j = i + 2;
        while j < hello.len() {
            let (kind, len) = (u16_at(hello, j), u16_at(hello, j + 2));
            if kind == 0 {
                out_ext.extend_from_slice(&[0, 0]);
                out_ext.extend_from_slice(&((list.len() + 2) as u16).to_be_bytes());
                out_ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
                out_ext.extend_from_slice(list);
            } else {
                out_ext.extend_from_slice(&hello[j..j + 4 + len]);
            }
            j += 4 + len;
        }
        let mut body = hello[9..extensions_at].to_vec();
        body.extend_from_slice(&(out_ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&out_ext);
        let mut hs = vec![1];
        hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&body);
        let mut out = hello[..3].to_vec();
        out.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        out.extend_from_slice(&hs);
        out
    }

    fn host_name(name: &str) -> Vec<u8> {
        let mut entry = vec![0];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name.as_bytes());
        entry
    }

    /// Found by fuzzing (fuzz/fuzz_targets/tls_hello.rs): a server-name list whose host name
    /// is followed by an entry of another type was refused as not TLS, though TLS servers read
    /// its host name.
    #[test]
    fn a_host_name_followed_by_another_name_type_is_read() {
        let hello = hello_for("a.example");
        let mut list = host_name("WWW.Example.org");
        list.extend_from_slice(&[0x6d, 0x70, 0x6c, 0x65]); // an unknown type, then anything
        let bytes = with_server_names(&hello, &list);
        assert_eq!(
            parse_hello(&bytes).unwrap().sni.as_deref(),
            Some("www.example.org")
        );
        // The rebuilt hello is still a hello: with one plain name it reads as that name.
        let bytes = with_server_names(&hello, &host_name("b.example"));
        assert_eq!(
            parse_hello(&bytes).unwrap().sni.as_deref(),
            Some("b.example")
        );
    }

    /// Two host names could show the filter one name and the server another: refused.
    #[test]
    fn two_host_names_are_refused() {
        let hello = hello_for("a.example");
        let mut list = host_name("allowed.example");
        list.extend_from_slice(&host_name("blocked.example"));
        let bytes = with_server_names(&hello, &list);
        assert_eq!(parse_hello(&bytes), Err(HelloError::NotTls));
    }

    #[test]
    fn an_ip_literal_hello_has_no_sni() {
        let bytes = hello_for("192.0.2.1");
        assert_eq!(parse_hello(&bytes).unwrap().sni, None);
    }
}
