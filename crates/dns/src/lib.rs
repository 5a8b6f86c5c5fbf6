//! This crate is Hedgerow's DNS front: a filtering, forwarding resolver on hickory-server.
//!
//! The school router (or each device) sends every query here. For each query:
//!
//! ```text
//! recv (UDP/TCP) → header checks (FORMERR / NOTIMP) → client → group (REFUSED if none)
//!   → rate limit (REFUSED when over) → circumvention canaries → policy verdict
//!   → blocked: NXDOMAIN / null address / block-page address, for every query type (a
//!     block-page answer is noted in `BlockNotes`, its event carrying the page's reference)
//!   → SafeSearch engine: CNAME to the enforcement host + its records
//!   → otherwise: cache, else upstreams (UDP, TCP on truncation, TLS; failover; deadline)
//!   → a CNAME chain into a blocked name is blocked (not into a merely unapproved one: the
//!     CDN behind an approved name) → ECH stripped for filtered groups
//!   → answer → access event to the sink (never waits)
//! ```
//!
//! It decides nothing itself: verdicts, SafeSearch steering and whether a group filters come
//! from `hedgerow-policy`, read from the snapshot in force when the query arrived, so a reload
//! never fails a query. Both paths (the UDP fast path and the full hickory path) take their
//! answer's plan from one pure function (`plan.rs`) and only encode it.
//!
//! The [`Resolver`] is also the appliance's one DNS client: it implements
//! [`NameResolver`](hedgerow_model::NameResolver), through which the proxy resolves the names
//! it connects to with the same upstreams (UDP, TCP, TLS) and the same cache. It does not store events: it
//! hands them to an [`EventSink`](hedgerow_model::EventSink).

mod cache;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod health;
mod identity;
mod plan;
mod pool;
mod ratelimit;
mod udp;
mod upstream;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

pub use handler::{Handler, Metrics, Resolver};
pub use health::UpstreamHealth;

/// Requested UDP socket buffer size.
const UDP_BUFFER: usize = 4 << 20;

/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Sockets bound for one configured address: UDP and TCP on the same port.
pub struct Bound {
    /// The address as configured (`[dns] listen`), port 0 included: what a reload compares.
    pub requested: SocketAddr,
    pub udp: UdpSocket,
    pub tcp: TcpListener,
}

impl Bound {
    pub fn udp_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    pub fn tcp_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A listen address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("binding DNS listener {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Binds UDP and TCP on `addr`. With port 0 the system picks a UDP port and TCP takes the
/// same one (retrying a few ports if that one is taken for TCP).
pub async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
    let mut last_err = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr).await?;
        // Room for bursts: a school's morning log-in storm, or a benchmark's 800 outstanding
        // queries, overflow the default buffers and lose queries. The kernel may cap these
        // (net.core.rmem_max); a smaller buffer is not an error.
        let sock = socket2::SockRef::from(&udp);
        let _ = sock.set_recv_buffer_size(UDP_BUFFER);
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => {
                return Ok(Bound {
                    requested: addr,
                    udp,
                    tcp,
                });
            }
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("could not bind TCP beside UDP")))
}

/// A running DNS server: a listener (UDP and TCP) per configured address.
pub struct DnsServer {
    resolver: Arc<Resolver>,
    listeners: Vec<Listener>,
}

/// One configured address being served.
struct Listener {
    requested: SocketAddr,
    udp_addr: Option<SocketAddr>,
    /// Tells the UDP loop to answer what is queued and stop.
    stop_udp: watch::Sender<bool>,
    udp: tokio::task::JoinHandle<()>,
    tcp: hickory_server::Server<Handler>,
}

/// What [`DnsServer::reconcile`] did: the addresses now served and those closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Each new listener's bound UDP and TCP addresses.
    pub opened: Vec<(SocketAddr, SocketAddr)>,
    /// Each closed listener's bound UDP address.
    pub closed: Vec<SocketAddr>,
}

/// Starts serving `resolver` on the bound sockets: TCP through hickory-server's listener, UDP
/// through an inline transport of its own (see `udp.rs` for why). Each listener knows the
/// address it is bound to, which can choose the group (`[groups.X] listen_addresses`); TCP
/// gets a hickory server per listener for that.
pub fn start(resolver: Arc<Resolver>, sockets: Vec<Bound>) -> DnsServer {
    let mut server = DnsServer {
        resolver,
        listeners: Vec::new(),
    };
    for b in sockets {
        server.serve(b);
    }
    server
}

/// The address a listener is bound to, unless it is a wildcard (a query to a wildcard
/// listener does not say which of the host's addresses it was sent to).
fn local_ip(addr: std::io::Result<SocketAddr>) -> Option<std::net::IpAddr> {
    addr.ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified())
}

impl DnsServer {
    fn serve(&mut self, b: Bound) {
        let udp_addr = b.udp.local_addr().ok();
        let udp_local = local_ip(b.udp.local_addr());
        let (stop_udp, stop) = watch::channel(false);
        let udp = tokio::spawn(udp::serve(
            Arc::new(b.udp),
            self.resolver.clone(),
            udp_local,
            stop,
        ));
        let local = local_ip(b.tcp.local_addr());
        let mut tcp = hickory_server::Server::new(Handler {
            resolver: self.resolver.clone(),
            local,
        });
        tcp.register_listener(b.tcp, TCP_IDLE, 64 * 1024);
        self.listeners.push(Listener {
            requested: b.requested,
            udp_addr,
            stop_udp,
            udp,
            tcp,
        });
    }

    /// The configured addresses served now.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|l| l.requested).collect()
    }

    /// Binds the addresses in `wanted` that are not served yet (a reload's new `[dns]
    /// listen` entries), serving none of them: hand them to [`Self::reconcile`]. On an error
    /// the ones bound so far are closed again.
    pub async fn bind_missing(&self, wanted: &[SocketAddr]) -> Result<Vec<Bound>, BindError> {
        let mut out = Vec::new();
        for addr in wanted {
            if self.listeners.iter().any(|l| l.requested == *addr)
                || out.iter().any(|b: &Bound| b.requested == *addr)
            {
                continue;
            }
            let bound = bind(*addr).await.map_err(|source| BindError {
                addr: *addr,
                source,
            })?;
            out.push(bound);
        }
        Ok(out)
    }

    /// Serves the listeners in `fresh` (from [`Self::bind_missing`]) and closes those whose
    /// configured address is not in `wanted`. Listeners on addresses in both are not touched:
    /// their sockets, and the queries in them, carry on. A closed UDP listener answers the
    /// datagrams already queued on it first; a closed TCP listener stops accepting at once.
    pub fn reconcile(&mut self, wanted: &[SocketAddr], fresh: Vec<Bound>) -> Reconciled {
        let mut done = Reconciled::default();
        let (keep, gone): (Vec<Listener>, Vec<Listener>) = std::mem::take(&mut self.listeners)
            .into_iter()
            .partition(|l| wanted.contains(&l.requested));
        self.listeners = keep;
        for l in gone {
            done.closed.extend(l.udp_addr);
            l.close();
        }
        for b in fresh {
            if let (Ok(u), Ok(t)) = (b.udp_addr(), b.tcp_addr()) {
                done.opened.push((u, t));
            }
            self.serve(b);
        }
        done
    }

    /// Stops taking queries and drains those in flight: each UDP listener answers the
    /// datagrams already queued on its socket, TCP connections finish the queries they have
    /// read, and queries waiting for an upstream get their answer (or their deadline). Waits
    /// at most `grace` for the last of them.
    pub async fn shutdown(self, grace: Duration) {
        let drain = async {
            for l in &self.listeners {
                let _ = l.stop_udp.send(true);
            }
            for mut l in self.listeners {
                if let Err(e) = l.udp.await {
                    tracing::debug!("DNS/UDP listener stopped: {e}");
                }
                if let Err(e) = l.tcp.shutdown_gracefully().await {
                    tracing::debug!("DNS server shutdown: {e}");
                }
            }
            self.resolver.tasks.close();
            self.resolver.tasks.wait().await;
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                "DNS queries still unanswered after {} ms; stopping without them",
                grace.as_millis()
            );
        }
    }
}

impl Listener {
    /// Stops this listener without waiting for it.
    fn close(mut self) {
        let _ = self.stop_udp.send(true);
        tokio::spawn(async move {
            if let Err(e) = self.tcp.shutdown_gracefully().await {
                tracing::debug!("DNS listener shutdown: {e}");
            }
        });
    }
}
