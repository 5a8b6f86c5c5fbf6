//! This crate is the safeguarding web console: the pages the school's people use every day,
//! served by the appliance itself on its own HTTPS listener (`[console] listen`). The DSL
//! triages breaches, reads logs and the weekly report; technicians propose changes and watch
//! lists and system status; approvers approve; governors read reports and the check log.
//!
//! It is server-rendered HTML (askama templates in `templates/`, checked at compile time and
//! escaped by default) with one stylesheet and no script: every flow is a link or a form, so
//! it works without JavaScript and with any assistive technology.
//!
//! It holds no safeguarding state and decides nothing: every page and every form is one
//! operation of [`hedgerow_admin::Admin`], which authorises it (`Permission::roles`) and
//! writes it to the audit log. The console only keeps its browser sessions' bookkeeping
//! (`session.rs`: the cookie, the idle timeout, the CSRF token) and turns operations into
//! pages.
//!
//! The public API is small: [`router`] for the routes and [`start`] to serve them over TLS.

mod html;
mod pages;
mod session;
mod signin;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hedgerow_admin::Admin;
use hedgerow_config::ConsoleConfig;

pub use session::Settings;

/// Why the console could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the console's TLS certificate: {0}")]
    Certificate(#[from] hedgerow_admin::AdminError),
    #[error("binding the console listener [console] listen = {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The console's routes, on `admin`'s operations.
pub fn router(admin: Arc<Admin>, settings: Settings) -> axum::Router {
    let ctx = Arc::new(session::Ctx::new(admin, settings));
    pages::routes()
        .merge(signin::routes())
        .fallback(html::not_found)
        .layer(axum::middleware::from_fn(html::headers))
        .with_state(ctx)
}

/// A running console: where it listens and the certificate people should see.
pub struct Started {
    pub task: tokio::task::JoinHandle<()>,
    pub addr: SocketAddr,
    pub fingerprint: String,
}

/// Binds `[console] listen` and serves the console there over TLS: a certificate from the
/// school CA (`ca`: certificate and key files) when given, else a self-signed one kept in
/// `STATE/console-tls/`. Logs the address and the certificate's fingerprint.
pub async fn start(
    admin: Arc<Admin>,
    config: &ConsoleConfig,
    timezone: &str,
    ca: Option<(&Path, &Path)>,
    state_dir: &Path,
) -> Result<Started, ConsoleError> {
    use hedgerow_admin::tls::{CertSource, Listener, identity_for};
    let identity = identity_for(
        Listener::Console,
        config.listen,
        &config.names,
        ca,
        state_dir,
    )?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ConsoleError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ConsoleError::Bind {
        addr: config.listen,
        source,
    })?;
    let source = match &identity.source {
        CertSource::SchoolCa => "minted from the school CA".to_owned(),
        CertSource::SelfSigned { path, new: true } => {
            format!("self-signed, made now and kept in {}", path.display())
        }
        CertSource::SelfSigned { path, new: false } => {
            format!("self-signed, kept in {}", path.display())
        }
    };
    tracing::info!(
        "console listening on https://{addr}/ (TLS certificate for {}, {source}; SHA-256 fingerprint {})",
        identity.names.join(", "),
        identity.fingerprint
    );
    let app = router(admin, Settings::from_config(config, timezone));
    let task = hedgerow_admin::tls::serve(app, listener, identity.config, "console");
    Ok(Started {
        task,
        addr,
        fingerprint: identity.fingerprint,
    })
}
