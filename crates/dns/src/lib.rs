//! This crate is Hedgerow's DNS front: a filtering, forwarding resolver on hickory-server.
//!
//! The school router (or each device) sends every query here. For each query:
//!
//! ```text
//! recv (UDP/TCP) → header checks (FORMERR / NOTIMP) → client → group (REFUSED if none)
//!   → rate limit (REFUSED when over) → circumvention canaries → policy verdict
//!   → blocked: NXDOMAIN / null address / block-page address, for every query type
//!   → SafeSearch engine: CNAME to the enforcement host + its records
//!   → otherwise: cache, else upstreams (UDP, TCP on truncation, TLS; failover; deadline)
//!   → a CNAME chain into a blocked name is blocked → ECH stripped for filtered groups
//!   → answer → access event to the sink (never waits)
//! ```
//!
//! It decides nothing itself: verdicts come from `hedgerow-policy`, read from the snapshot in
//! force when the query arrived, so a reload never fails a query. It does not store events: it
//! hands them to an [`EventSink`](hedgerow_model::EventSink).

mod cache;
mod handler;
mod ratelimit;
mod safesearch;
mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};

pub use handler::{Handler, Metrics, Resolver};

/// How long a TCP client may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Sockets bound for one configured address: UDP and TCP on the same port.
pub struct Bound {
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

/// Binds UDP and TCP on `addr`. With port 0 the system picks a UDP port and TCP takes the
/// same one (retrying a few ports if that one is taken for TCP).
pub async fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
    let mut last_err = None;
    for _ in 0..16 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok(Bound { udp, tcp }),
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("could not bind TCP beside UDP")))
}

/// A running DNS server.
pub struct DnsServer {
    server: hickory_server::Server<Handler>,
}

/// Starts serving `resolver` on the bound sockets.
pub fn start(resolver: Arc<Resolver>, sockets: Vec<Bound>) -> DnsServer {
    let mut server = hickory_server::Server::new(Handler(resolver));
    for b in sockets {
        server.register_socket(b.udp);
        server.register_listener(b.tcp, TCP_IDLE, 64 * 1024);
    }
    DnsServer { server }
}

impl DnsServer {
    /// Stops accepting queries and waits for those in flight.
    pub async fn shutdown(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::debug!("DNS server shutdown: {e}");
        }
    }
}
