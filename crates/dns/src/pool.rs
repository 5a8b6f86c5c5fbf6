//! Long-lived UDP sockets to an upstream, shared by all queries.
//!
//! A socket per query costs a socket, bind, connect, epoll registration and close for every
//! cache miss: measured at half the throughput of dnsdist on the cold mix. Here each upstream
//! gets a few connected sockets; a reader task per socket routes each answer to the query
//! waiting for it by ID and question, and drops anything else. IDs are random and unique per
//! socket among queries in flight. An ICMP "port unreachable" (reported by the kernel on a
//! connected socket) fails every query waiting on that socket at once, so failover to the next
//! upstream does not wait for a timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::Message;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use crate::upstream::answers;

/// Sockets per upstream: spreads queries over several source ports.
const SOCKETS: usize = 4;

type Waiter = oneshot::Sender<std::io::Result<Message>>;

struct Pending {
    /// The query as sent, to check the answer against ([`answers`]).
    query: Message,
    tx: Waiter,
}

struct PoolSocket {
    socket: Arc<UdpSocket>,
    pending: Mutex<HashMap<u16, Pending>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for PoolSocket {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub(crate) struct UdpPool {
    sockets: Vec<Arc<PoolSocket>>,
    next: AtomicUsize,
}

impl UdpPool {
    pub(crate) async fn connect(upstream: SocketAddr) -> std::io::Result<Self> {
        let mut sockets = Vec::with_capacity(SOCKETS);
        for _ in 0..SOCKETS {
            let bind: SocketAddr = if upstream.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = Arc::new(UdpSocket::bind(bind).await?);
            socket.connect(upstream).await?;
            let _ = socket2::SockRef::from(&*socket).set_recv_buffer_size(4 << 20);
            let shared = Arc::new_cyclic(|weak: &std::sync::Weak<PoolSocket>| {
                let weak = weak.clone();
                let reader_socket = socket.clone();
                PoolSocket {
                    socket,
                    pending: Mutex::new(HashMap::new()),
                    reader: tokio::spawn(read_loop(reader_socket, weak)),
                }
            });
            sockets.push(shared);
        }
        Ok(Self {
            sockets,
            next: AtomicUsize::new(0),
        })
    }

    /// Sends `query` (its ID is replaced) and waits for the matching answer. The caller bounds
    /// the wait; dropping the future forgets the query.
    pub(crate) async fn exchange(&self, mut query: Message) -> std::io::Result<Message> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.sockets.len().max(1);
        let Some(sock) = self.sockets.get(i).cloned() else {
            return Err(std::io::Error::other("no upstream sockets"));
        };
        let (tx, rx) = oneshot::channel();
        let (id, bytes) = {
            let mut pending = sock.pending.lock().unwrap_or_else(|p| p.into_inner());
            // 65,536 IDs and far fewer in flight: a free one is found in a try or two.
            let mut id = rand::random::<u16>();
            while pending.contains_key(&id) {
                id = rand::random();
            }
            query.metadata.id = id;
            let bytes = query.to_vec().map_err(std::io::Error::other)?;
            pending.insert(id, Pending { query, tx });
            (id, bytes)
        };
        let _forget = Forget { sock: &sock, id };
        sock.socket.send(&bytes).await?;
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::other("upstream socket closed")),
        }
    }
}

/// Removes a query's entry when its exchange ends, answered or not.
struct Forget<'a> {
    sock: &'a PoolSocket,
    id: u16,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut pending = self.sock.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(&self.id);
    }
}

async fn read_loop(socket: Arc<UdpSocket>, owner: std::sync::Weak<PoolSocket>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let result = socket.recv(&mut buf).await;
        let Some(owner) = owner.upgrade() else { return };
        match result {
            Ok(n) => {
                let Some(bytes) = buf.get(..n) else { continue };
                let Ok(m) = Message::from_vec(bytes) else {
                    continue;
                };
                let mut pending = owner.pending.lock().unwrap_or_else(|p| p.into_inner());
                let matches = pending
                    .get(&m.metadata.id)
                    .is_some_and(|p| answers(&p.query, &m));
                if matches && let Some(p) = pending.remove(&m.metadata.id) {
                    let _ = p.tx.send(Ok(m));
                }
            }
            Err(e) => {
                // On a connected UDP socket this is an ICMP error for an earlier datagram:
                // the upstream is not there. Fail everything waiting so callers fail over now.
                let kind = e.kind();
                let mut pending = owner.pending.lock().unwrap_or_else(|p| p.into_inner());
                for (_, p) in pending.drain() {
                    let _ = p.tx.send(Err(std::io::Error::new(kind, e.to_string())));
                }
            }
        }
    }
}
