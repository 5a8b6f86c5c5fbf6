//! The TLS identity of the appliance's HTTPS listeners for people (the API's `[api] listen`,
//! the web console's `[console] listen`): a certificate minted from the school CA when one is
//! configured (`[proxy] ca_cert`, `ca_key`: school devices trust it already), else a
//! self-signed one made on first start and kept in the state directory (`STATE/api-tls/`,
//! `STATE/console-tls/`, so its fingerprint stays the same across restarts). Either way the
//! certificate names the listen address, `localhost` for a loopback one, and the section's
//! `names`; its SHA-256 fingerprint is logged for people to check. And [`serve`], which serves
//! a router over TLS on such a listener.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use sha2::{Digest, Sha256};

use crate::AdminError;

/// Where the certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Minted from the school CA at this start.
    SchoolCa,
    /// Self-signed, kept in this file (made now, or on an earlier start).
    SelfSigned { path: PathBuf, new: bool },
}

/// The server's TLS configuration and what to tell people about its certificate.
pub struct Identity {
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the certificate (DER), as `AB:CD:…`, as browsers and `openssl x509
    /// -fingerprint -sha256` show it.
    pub fingerprint: String,
    pub source: CertSource,
    /// The names and addresses the certificate is for.
    pub names: Vec<String>,
}

fn internal(what: &str) -> impl Fn(String) -> AdminError + '_ {
    move |e| AdminError::Internal(format!("{what}: {e}"))
}

/// The names a certificate for `listen` must carry.
fn names(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let ip = listen.ip();
    if !ip.is_unspecified() {
        out.push(ip.to_string());
    }
    if ip.is_loopback() || ip.is_unspecified() {
        out.push("localhost".to_owned());
        out.push("127.0.0.1".to_owned());
    }
    out.extend(extra.iter().cloned());
    out.dedup();
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|n| seen.insert(n.clone()));
    out
}

fn params(names: &[String], common: &str) -> Result<rcgen::CertificateParams, AdminError> {
    let mut p = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| internal("certificate names")(e.to_string()))?;
    p.distinguished_name.push(rcgen::DnType::CommonName, common);
    let now = jiff::Timestamp::now().as_second();
    p.not_before = rcgen::date_time_ymd(1970, 1, 1)
        + std::time::Duration::from_secs(u64::try_from(now - 86_400).unwrap_or(0));
    Ok(p)
}

fn server_config(
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, AdminError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| internal("TLS")(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| internal("TLS certificate")(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// SHA-256 of `der` as colon-separated capitals.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Builds the identity for the API's listener on `listen`: from the school CA (`ca`,
/// certificate and key files) if given, else the self-signed certificate in
/// `state_dir/api-tls/`, made if missing or if it no longer names what it must.
pub fn identity(
    listen: SocketAddr,
    extra_names: &[String],
    ca: Option<(&Path, &Path)>,
    state_dir: &Path,
) -> Result<Identity, AdminError> {
    identity_for(Listener::Api, listen, extra_names, ca, state_dir)
}

/// Which HTTPS listener an identity is for: its certificate's common name and the folder
/// of the state directory its self-signed certificate is kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// `[api] listen`, `STATE/api-tls/`.
    Api,
    /// `[console] listen`, `STATE/console-tls/`.
    Console,
}

impl Listener {
    fn folder(self) -> &'static str {
        match self {
            Listener::Api => "api-tls",
            Listener::Console => "console-tls",
        }
    }

    fn common_name(self) -> &'static str {
        match self {
            Listener::Api => "Hedgerow appliance API",
            Listener::Console => "Hedgerow console",
        }
    }
}

/// [`identity`] for any of the appliance's HTTPS listeners.
pub fn identity_for(
    listener: Listener,
    listen: SocketAddr,
    extra_names: &[String],
    ca: Option<(&Path, &Path)>,
    state_dir: &Path,
) -> Result<Identity, AdminError> {
    let names = names(listen, extra_names);
    if let Some((cert, key)) = ca {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| {
                AdminError::Internal(format!("reading the school CA {}: {e}", p.display()))
            })
        };
        let ca_key = rcgen::KeyPair::from_pem(&read(key)?)
            .map_err(|e| internal("the school CA's key")(e.to_string()))?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&read(cert)?, ca_key)
            .map_err(|e| internal("the school CA")(e.to_string()))?;
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| internal("a key")(e.to_string()))?;
        let mut p = params(&names, listener.common_name())?;
        p.not_after = p.not_before + std::time::Duration::from_secs(397 * 86_400);
        let leaf = p
            .signed_by(&leaf_key, &issuer)
            .map_err(|e| internal("minting the API certificate")(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes())
            .map_err(|e| internal("the API key")(e.to_string()))?;
        let der = leaf.der().clone();
        return Ok(Identity {
            fingerprint: fingerprint(&der),
            config: server_config(der, key)?,
            source: CertSource::SchoolCa,
            names,
        });
    }
    let dir = state_dir.join(listener.folder());
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let names_path = dir.join("names");
    let wanted = names.join("\n");
    let kept = std::fs::read_to_string(&names_path).ok();
    let existing = match (
        kept.as_deref() == Some(wanted.as_str()),
        std::fs::read(&cert_path),
        std::fs::read(&key_path),
    ) {
        (true, Ok(c), Ok(k)) => {
            let cert = CertificateDer::from_pem_slice(&c).ok();
            let key = PrivateKeyDer::from_pem_slice(&k).ok();
            cert.zip(key)
        }
        _ => None,
    };
    let (cert, key, new) = match existing {
        Some((c, k)) => (c, k, false),
        None => {
            let key = rcgen::KeyPair::generate().map_err(|e| internal("a key")(e.to_string()))?;
            let mut p = params(&names, listener.common_name())?;
            p.not_after = p.not_before + std::time::Duration::from_secs(10 * 365 * 86_400);
            let cert = p
                .self_signed(&key)
                .map_err(|e| internal("the self-signed API certificate")(e.to_string()))?;
            let write = |path: &Path, text: &str, mode: u32| -> std::io::Result<()> {
                use std::os::unix::fs::OpenOptionsExt;
                let tmp = path.with_extension("tmp");
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(mode)
                    .open(&tmp)?;
                f.write_all(text.as_bytes())?;
                f.sync_all()?;
                std::fs::rename(&tmp, path)
            };
            let io = |e: std::io::Error| {
                AdminError::Internal(format!(
                    "keeping the API certificate in {}: {e}",
                    dir.display()
                ))
            };
            std::fs::create_dir_all(&dir).map_err(io)?;
            write(&key_path, &key.serialize_pem(), 0o600).map_err(io)?;
            write(&cert_path, &cert.pem(), 0o644).map_err(io)?;
            write(&names_path, &wanted, 0o644).map_err(io)?;
            let k = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
                .map_err(|e| internal("the API key")(e.to_string()))?;
            (cert.der().clone(), k, true)
        }
    };
    Ok(Identity {
        fingerprint: fingerprint(&cert),
        config: server_config(cert, key)?,
        source: CertSource::SelfSigned {
            path: cert_path,
            new,
        },
        names,
    })
}

/// Serves `app` over TLS on `listener` until the task is aborted. Each connection's handshake
/// runs in its own task, with a deadline; each request carries the client's address as
/// `axum::extract::ConnectInfo<SocketAddr>` (for sign-in rate limits). `what` names the
/// listener in the service log.
pub fn serve(
    app: axum::Router,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    what: &'static str,
) -> tokio::task::JoinHandle<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("{what} listener: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            // A response goes out in a few TLS records; with Nagle's algorithm the last
            // waited for the client's delayed ACK (40 ms): one page in twenty took 45 ms.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(%peer, "{what}: TCP_NODELAY: {e}");
            }
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    acceptor.accept(stream),
                )
                .await;
                let tls = match handshake {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, "{what} TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => return,
                };
                let service = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        let mut app = app.clone();
                        async move { tower_service::Service::call(&mut app, req).await }
                    },
                );
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(30))
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "{what} connection: {e}");
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_self_signed_certificate_is_kept_and_remade_when_its_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let at: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let first = identity(at, &[], None, dir.path()).unwrap();
        assert!(matches!(
            first.source,
            CertSource::SelfSigned { new: true, .. }
        ));
        assert_eq!(first.names, ["127.0.0.1", "localhost"]);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        // A restart keeps it: the fingerprint people noted stays true.
        let again = identity(at, &[], None, dir.path()).unwrap();
        assert!(matches!(
            again.source,
            CertSource::SelfSigned { new: false, .. }
        ));
        assert_eq!(again.fingerprint, first.fingerprint);
        // A new name needs a new certificate.
        let named = identity(at, &["hedgerow.school.example".into()], None, dir.path()).unwrap();
        assert!(matches!(
            named.source,
            CertSource::SelfSigned { new: true, .. }
        ));
        assert_ne!(named.fingerprint, first.fingerprint);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("api-tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others");
        // A LAN address is named as itself, without localhost.
        let lan = identity("10.0.0.5:8443".parse().unwrap(), &[], None, dir.path()).unwrap();
        assert_eq!(lan.names, ["10.0.0.5"]);
    }
}
