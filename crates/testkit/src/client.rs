//! A DNS client that sends real packets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Asks `server` for `name`/`qtype` over `transport` with EDNS (1232 bytes); `None` on
/// timeout (2 s) or an unreadable answer.
pub async fn query(
    server: SocketAddr,
    transport: Transport,
    name: &str,
    qtype: RecordType,
) -> Option<Message> {
    query_with(server, transport, name, qtype, Some(1232)).await
}

/// As [`query`], with the EDNS buffer size given, or no EDNS at all (`None`: 512 bytes).
pub async fn query_with(
    server: SocketAddr,
    transport: Transport,
    name: &str,
    qtype: RecordType,
    edns: Option<u16>,
) -> Option<Message> {
    let src = if server.is_ipv4() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
    };
    query_from(src, server, transport, name, qtype, edns).await
}

/// As [`query_with`], sent from the loopback address `src` (any of 127.0.0.0/8), so one test
/// can be several clients in several groups.
pub async fn query_from(
    src: IpAddr,
    server: SocketAddr,
    transport: Transport,
    name: &str,
    qtype: RecordType,
    edns: Option<u16>,
) -> Option<Message> {
    let fqdn = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(&fqdn).ok()?, qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    let bytes = m.to_vec().ok()?;
    let reply = tokio::time::timeout(Duration::from_secs(2), async {
        match transport {
            Transport::Udp => {
                let sock = UdpSocket::bind(SocketAddr::new(src, 0)).await.ok()?;
                sock.send_to(&bytes, server).await.ok()?;
                let mut buf = vec![0u8; 65_535];
                let (n, _) = sock.recv_from(&mut buf).await.ok()?;
                Message::from_vec(&buf[..n]).ok()
            }
            Transport::Tcp => {
                let socket = if src.is_ipv4() {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }
                .ok()?;
                socket.bind(SocketAddr::new(src, 0)).ok()?;
                let mut s = socket.connect(server).await.ok()?;
                let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&bytes);
                s.write_all(&out).await.ok()?;
                let mut len = [0u8; 2];
                s.read_exact(&mut len).await.ok()?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                s.read_exact(&mut buf).await.ok()?;
                Message::from_vec(&buf).ok()
            }
        }
    })
    .await
    .ok()??;
    (reply.metadata.id == m.metadata.id).then_some(reply)
}

/// Sends raw bytes over UDP and returns whatever comes back within `wait`.
pub async fn raw_udp(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    sock.send_to(bytes, server).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(wait, sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish() as u16
}
