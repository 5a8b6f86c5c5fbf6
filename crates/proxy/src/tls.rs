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
                let mut d = Reader(data);
                let _list = d.u16()?;
                while !d.0.is_empty() {
                    let name_type = d.u8()?;
                    let n = d.u16()?;
                    let name = d.take(n)?;
                    if name_type == 0 {
                        let s = std::str::from_utf8(name).map_err(|_| HelloError::NotTls)?;
                        hello.sni = Some(s.to_ascii_lowercase());
                    }
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

    #[test]
    fn an_ip_literal_hello_has_no_sni() {
        let bytes = hello_for("192.0.2.1");
        assert_eq!(parse_hello(&bytes).unwrap().sni, None);
    }
}
