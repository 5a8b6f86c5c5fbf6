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
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod identity;
mod pool;
mod ratelimit;
mod safesearch;
mod udp;
mod upstream;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};

pub use handler::{Handler, Metrics, Resolver};

/// Requested UDP socket buffer size.
const UDP_BUFFER: usize = 4 << 20;

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
        // Room for bursts: a school's morning log-in storm, or a benchmark's 800 outstanding
        // queries, overflow the default buffers and lose queries. The kernel may cap these
        // (net.core.rmem_max); a smaller buffer is not an error.
        let sock = socket2::SockRef::from(&udp);
        let _ = sock.set_recv_buffer_size(UDP_BUFFER);
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
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
    tcp: Vec<hickory_server::Server<Handler>>,
    udp: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts serving `resolver` on the bound sockets: TCP through hickory-server's listener, UDP
/// through an inline transport of its own (see `udp.rs` for why). Each listener knows the
/// address it is bound to, which can choose the group (`[groups.X] listen_addresses`); TCP
/// gets a hickory server per listener for that.
pub fn start(resolver: Arc<Resolver>, sockets: Vec<Bound>) -> DnsServer {
    let mut tcp = Vec::new();
    let mut udp = Vec::new();
    for b in sockets {
        let udp_local = local_ip(b.udp.local_addr());
        let socket = Arc::new(b.udp);
        udp.push(tokio::spawn(udp::serve(
            socket,
            resolver.clone(),
            udp_local,
        )));
        let local = local_ip(b.tcp.local_addr());
        let mut server = hickory_server::Server::new(Handler {
            resolver: resolver.clone(),
            local,
        });
        server.register_listener(b.tcp, TCP_IDLE, 64 * 1024);
        tcp.push(server);
    }
    DnsServer { tcp, udp }
}

/// The address a listener is bound to, unless it is a wildcard (a query to a wildcard
/// listener does not say which of the host's addresses it was sent to).
fn local_ip(addr: std::io::Result<SocketAddr>) -> Option<std::net::IpAddr> {
    addr.ok().map(|a| a.ip()).filter(|ip| !ip.is_unspecified())
}

impl DnsServer {
    /// Stops accepting queries and waits for TCP queries in flight.
    pub async fn shutdown(self) {
        for t in &self.udp {
            t.abort();
        }
        for mut server in self.tcp {
            if let Err(e) = server.shutdown_gracefully().await {
                tracing::debug!("DNS server shutdown: {e}");
            }
        }
    }
}
