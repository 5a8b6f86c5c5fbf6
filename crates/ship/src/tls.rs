//! TLS client settings for both destinations: the public roots, plus a trust's own CA.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::ShipError;

/// A client configuration trusting the public roots and the certificates in `ca_file`.
pub(crate) fn client_config(
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, ShipError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let text = std::fs::read(path).map_err(|source| ShipError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&text) {
            let cert = cert.map_err(|e| {
                ShipError::Tls(format!("{}: not a PEM certificate: {e}", path.display()))
            })?;
            roots
                .add(cert)
                .map_err(|e| ShipError::Tls(format!("{}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(ShipError::Tls(format!(
                "{}: no certificate in the file",
                path.display()
            )));
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ShipError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
