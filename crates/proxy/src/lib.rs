//! This crate is Hedgerow's explicit web proxy, on hyper and rustls. Browsers reach it
//! through PAC/WPAD or device policy.
//!
//! - **HTTP** (absolute-form): the whole URL is decided by the shared policy (domains, URL
//!   entries, the illegal tier, phrases, regex) before any connection to the origin. Allowed
//!   requests are forwarded with hop-by-hop headers removed, bodies streamed both ways, pooled
//!   keep-alive connections to origins, and names resolved through Hedgerow's own DNS
//!   upstreams.
//! - **HTTPS** (CONNECT): allowed ports only; decided on the CONNECT host, then on the TLS
//!   ClientHello's SNI, which must be present for IP literals, must match the CONNECT host and
//!   must not be blocked; ECH is refused for groups that filter. Chosen groups can have their
//!   TLS intercepted with the school's CA, so URL rules, search terms, the block page and the
//!   YouTube-Restrict header work inside HTTPS.
//! - **Refusals**: clients outside the configured networks; destinations that are the proxy
//!   itself, loopback, link-local or private unless allowed (no SSRF); malformed requests and
//!   smuggling shapes (400 and close); too many connections from one client.
//! - **Events**: every request and tunnel yields exactly one access event (method, URL or
//!   host, search terms, concern, verdict, outcome, bytes, block-page reference), recorded by
//!   a guard made first thing for the request, so no exit goes unrecorded; handed to the event
//!   sink without waiting. The PAC and WPAD files are not accesses and are not recorded.

mod access;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod page;
mod resolve;
mod search;
mod tls;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use hedgerow_config::ProxyConfig;
use hedgerow_model::{Clock, EventSink};
use hedgerow_policy::PolicyHandle;

pub use resolve::ResolveError;
pub use tls::TlsError;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("the configuration has no [proxy] section")]
    NotConfigured,
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("reading users file {path}: {reason}")]
    Users { path: String, reason: String },
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The proxy's shared state.
pub struct Proxy {
    pub(crate) policy: Arc<PolicyHandle>,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: ProxyConfig,
    pub(crate) resolver: resolve::Resolver,
    pub(crate) minter: Option<tls::Minter>,
    pub(crate) origin_tls: Arc<rustls::ClientConfig>,
    pub(crate) users: Option<handler::Users>,
    pub(crate) client: handler::Client,
    /// Our own listening addresses, never a destination.
    pub(crate) own: Mutex<Vec<SocketAddr>>,
    pub(crate) conns: Mutex<HashMap<IpAddr, usize>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// Builds the proxy from the policy's configuration. Reads the CA and users files.
    pub fn new(
        policy: Arc<PolicyHandle>,
        sink: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ProxyError> {
        let snap = policy.snapshot();
        let config = snap
            .config()
            .proxy
            .clone()
            .ok_or(ProxyError::NotConfigured)?;
        let minter = match (&config.ca_cert, &config.ca_key) {
            (Some(c), Some(k)) => Some(tls::Minter::load(c, k)?),
            _ => None,
        };
        let origin_tls = tls::client_config(config.upstream_ca_file.as_deref())?;
        let users = config
            .users_file
            .as_deref()
            .map(handler::Users::load)
            .transpose()?;
        let dns = &snap.config().dns;
        let resolver = resolve::Resolver::new(&dns.upstreams, dns.timeout);
        let client = handler::Client::new();
        Ok(Arc::new(Self {
            policy,
            sink,
            clock,
            resolver,
            minter,
            origin_tls,
            users,
            client,
            own: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            config,
        }))
    }

    /// Binds every configured listener; returns them with their bound addresses.
    pub async fn bind(&self) -> Result<Vec<tokio::net::TcpListener>, ProxyError> {
        let mut out = Vec::new();
        for addr in &self.config.listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: *addr,
                    source,
                })?;
            if let Ok(a) = l.local_addr() {
                self.own
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(a);
            }
            out.push(l);
        }
        Ok(out)
    }

    /// Serves on `listeners` until the returned tasks are aborted.
    pub fn start(
        self: &Arc<Self>,
        listeners: Vec<tokio::net::TcpListener>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        listeners
            .into_iter()
            .map(|l| tokio::spawn(handler::accept_loop(self.clone(), l)))
            .collect()
    }
}
