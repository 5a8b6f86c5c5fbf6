//! This crate is Hedgerow's explicit web proxy, on hyper and rustls. Browsers reach it
//! through PAC/WPAD or device policy.
//!
//! - **HTTP** (absolute-form): the whole URL is decided by the shared policy (domains, URL
//!   entries, the illegal tier, phrases, regex) before any connection to the origin. Allowed
//!   requests are forwarded with hop-by-hop headers removed, bodies streamed both ways, pooled
//!   keep-alive connections to origins, and names resolved through the DNS front's own client
//!   and cache ([`NameResolver`]; the same upstreams, UDP, TCP or TLS).
//! - **One policy**: whether to intercept, SafeSearch and YouTube enforcement come from the
//!   policy snapshot in force, as the DNS front reads them: for a group with SafeSearch the
//!   proxy connects to the engine's enforcement host (`forcesafesearch.google.com`,
//!   `strict.bing.com`, …) exactly as DNS steers, and wherever it reads the URL (plain HTTP,
//!   or inside interception) also sets the engine's own SafeSearch parameters (`safe=active`,
//!   `adlt=strict`, `kp=1`, …) and, for YouTube, the `YouTube-Restrict` header.
//! - **HTTPS** (CONNECT): allowed ports only; decided on the CONNECT host, then on the TLS
//!   ClientHello's SNI, which must be present for IP literals, must match the CONNECT host and
//!   must not be blocked; ECH is refused for groups that filter. Chosen groups can have their
//!   TLS intercepted with the school's CA, so URL rules, search terms, the block page and the
//!   YouTube-Restrict header work inside HTTPS.
//! - **Refusals**: clients outside the configured networks; destinations that are the proxy
//!   itself, loopback, link-local or private unless allowed (no SSRF); malformed requests and
//!   smuggling shapes and framing that parsers could read two ways (400 and close, before any
//!   byte reaches an origin: see `framing.rs`); too many connections from one client.
//! - **Host**: the origin is sent the host that was decided on (the URL's, or inside
//!   interception the TLS server name), never the client's own Host header.
//! - **Events**: every request and tunnel yields exactly one access event (method, URL or
//!   host, search terms, concern, verdict, outcome, bytes, block-page reference), recorded by
//!   a guard made first thing for the request, so no exit goes unrecorded; handed to the event
//!   sink without waiting. The PAC and WPAD files are not accesses and are not recorded.
//! - **Block pages for DNS blocks** ([`BlockPages`]): a web server on the block page's
//!   address (`[blockpage]`, HTTP and, with the school CA, HTTPS) that shows what the DNS
//!   front blocked, with the reference of its log entry, and takes review requests.

mod access;
mod blockpage;
mod conns;
mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod page;
mod search;
mod tls;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use hedgerow_config::{Config, ProxyConfig};
use hedgerow_model::{Clock, EventSink, NameResolver};
use hedgerow_policy::PolicyHandle;

pub use blockpage::{BlockPageListeners, BlockPages};
pub use hedgerow_model::ResolveError;
pub use tls::TlsError;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("the configuration has no [proxy] section")]
    NotConfigured,
    #[error("the configuration has no [blockpage] section")]
    NoBlockPage,
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
    /// The appliance's one DNS client (the DNS front's upstreams and cache).
    pub(crate) resolver: Arc<dyn NameResolver>,
    /// The settings in force, read per connection and per request; a reload swaps them whole.
    live: ArcSwap<Live>,
    pub(crate) client: handler::Client,
    /// Our own listening addresses, never a destination.
    pub(crate) own: Mutex<Vec<SocketAddr>>,
    pub(crate) conns: Arc<conns::ClientConns>,
    /// Chunked request bodies being read whole at once, at most [`CHUNKED_AT_ONCE`].
    pub(crate) chunked_slots: tokio::sync::Semaphore,
    /// Connections and tunnels being served: a shutdown waits for them, then cancels the rest.
    pub(crate) tasks: tokio_util::task::TaskTracker,
    pub(crate) stopping: tokio_util::sync::CancellationToken,
}

/// `[proxy]` with what its files hold (the school CA, the users, extra origin roots):
/// everything a request reads besides the policy (whose snapshot holds the enforcement rules:
/// interception, SafeSearch, YouTube).
pub(crate) struct Live {
    pub(crate) config: ProxyConfig,
    pub(crate) minter: Option<tls::Minter>,
    pub(crate) origin_tls: Arc<rustls::ClientConfig>,
    pub(crate) users: Option<handler::Users>,
}

/// Proxy settings read from a configuration, with the files they name loaded, not yet in
/// force: [`Proxy::with_settings`] starts a proxy with them, [`Proxy::apply`] swaps them in.
pub struct Settings(Live);

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.0.config.listen)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// Reads `[proxy]` from `config` and loads the CA, users and upstream CA files it names.
    /// Blocking (reads files): call it off the async workers.
    pub fn load(config: &Config) -> Result<Self, ProxyError> {
        let proxy = config.proxy.clone().ok_or(ProxyError::NotConfigured)?;
        let minter = match (&proxy.ca_cert, &proxy.ca_key) {
            (Some(c), Some(k)) => Some(tls::Minter::load(c, k)?),
            _ => None,
        };
        let origin_tls = tls::client_config(proxy.upstream_ca_file.as_deref())?;
        let users = proxy
            .users_file
            .as_deref()
            .map(handler::Users::load)
            .transpose()?;
        Ok(Self(Live {
            config: proxy,
            minter,
            origin_tls,
            users,
        }))
    }

    /// The configured listen addresses.
    pub fn listen(&self) -> &[SocketAddr] {
        &self.0.config.listen
    }
}

/// Chunked request bodies read at once (each up to `[proxy] max_chunked_body`); more wait.
const CHUNKED_AT_ONCE: usize = 8;

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// Runs `task` as one of the proxy's connections or tunnels: tracked for the shutdown, and
    /// dropped (its guards recording their events) if it is still running when the grace ends.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let stopping = self.stopping.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                () = task => {}
                () = stopping.cancelled() => {}
            }
        });
    }

    /// Builds the proxy from the policy's configuration. Reads the CA and users files. Names
    /// are resolved through `resolver` (the DNS front's client and cache).
    pub fn new(
        policy: Arc<PolicyHandle>,
        sink: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
        resolver: Arc<dyn NameResolver>,
    ) -> Result<Arc<Self>, ProxyError> {
        let settings = Settings::load(policy.snapshot().config())?;
        Ok(Self::with_settings(policy, sink, clock, resolver, settings))
    }

    /// Builds the proxy with settings already loaded.
    pub fn with_settings(
        policy: Arc<PolicyHandle>,
        sink: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
        resolver: Arc<dyn NameResolver>,
        settings: Settings,
    ) -> Arc<Self> {
        Arc::new(Self {
            policy,
            sink,
            clock,
            resolver,
            live: ArcSwap::from_pointee(settings.0),
            client: handler::Client::new(),
            own: Mutex::new(Vec::new()),
            conns: Arc::default(),
            chunked_slots: tokio::sync::Semaphore::new(CHUNKED_AT_ONCE),
            tasks: tokio_util::task::TaskTracker::new(),
            stopping: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Puts new settings in force (a reload): connections accepted and requests read from
    /// now on use them; a request already being served finishes with the ones it began with.
    /// Listeners are [`Listeners::reconcile`]'s.
    pub fn apply(&self, settings: Settings) {
        self.live.store(Arc::new(settings.0));
    }

    /// The settings in force.
    pub(crate) fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }
}

/// The proxy's listeners, one per configured address, each with its accept loop.
pub struct Listeners {
    proxy: Arc<Proxy>,
    open: Vec<Open>,
}

struct Open {
    requested: SocketAddr,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// A listener bound for a configured address and not yet accepting.
pub struct Bound {
    /// The address as configured (`[proxy] listen`, port 0 included).
    pub requested: SocketAddr,
    pub listener: tokio::net::TcpListener,
}

/// What [`Listeners::reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// The bound addresses of the listeners opened.
    pub opened: Vec<SocketAddr>,
    /// The bound addresses of the listeners closed.
    pub closed: Vec<SocketAddr>,
}

impl Listeners {
    /// A set with no listener yet: [`Self::bind_missing`] then [`Self::reconcile`] open them.
    pub fn new(proxy: Arc<Proxy>) -> Self {
        Self {
            proxy,
            open: Vec::new(),
        }
    }

    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Binds the addresses in `wanted` that have no listener yet, accepting on none of them.
    /// On an error the ones bound so far are closed again.
    pub async fn bind_missing(&self, wanted: &[SocketAddr]) -> Result<Vec<Bound>, ProxyError> {
        let mut out: Vec<Bound> = Vec::new();
        for addr in wanted {
            if self.open.iter().any(|o| o.requested == *addr)
                || out.iter().any(|b| b.requested == *addr)
            {
                continue;
            }
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr: *addr,
                    source,
                })?;
            out.push(Bound {
                requested: *addr,
                listener,
            });
        }
        Ok(out)
    }

    /// Accepts on the listeners in `fresh` and closes those whose configured address is not
    /// in `wanted`. Listeners on addresses in both are not touched; connections already
    /// accepted on a closed listener carry on until they end.
    pub fn reconcile(&mut self, wanted: &[SocketAddr], fresh: Vec<Bound>) -> Reconciled {
        let mut done = Reconciled::default();
        let (keep, gone): (Vec<Open>, Vec<Open>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|o| wanted.contains(&o.requested));
        self.open = keep;
        for o in gone {
            o.task.abort();
            done.closed.push(o.local);
        }
        for b in fresh {
            let Ok(local) = b.listener.local_addr() else {
                continue;
            };
            let task = tokio::spawn(handler::accept_loop(self.proxy.clone(), b.listener));
            done.opened.push(local);
            self.open.push(Open {
                requested: b.requested,
                local,
                task,
            });
        }
        *self
            .proxy
            .own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            self.open.iter().map(|o| o.local).collect();
        done
    }

    /// The bound addresses accepting now.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.open.iter().map(|o| o.local).collect()
    }

    /// Closes every listener at once (the appliance is stopping).
    pub fn abort(self) {
        for o in self.open {
            o.task.abort();
        }
    }

    /// Stops accepting, lets the requests and tunnels in flight finish for up to `grace`, then
    /// ends the rest (idle keep-alive connections, long tunnels). Each ends through its access
    /// event's guard, so every request is recorded once, as at any other end.
    pub async fn drain(self, grace: std::time::Duration) {
        let proxy = self.proxy.clone();
        self.abort();
        proxy.tasks.close();
        if tokio::time::timeout(grace, proxy.tasks.wait())
            .await
            .is_err()
        {
            tracing::info!(
                "proxy connections still open after {} ms; closing them",
                grace.as_millis()
            );
            proxy.stopping.cancel();
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(2), proxy.tasks.wait()).await;
        }
    }
}
