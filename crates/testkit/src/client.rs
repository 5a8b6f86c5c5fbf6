//! A DNS client that sends real packets.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

use crate::strict::strict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Asks `server` for `name`/`qtype` over `transport` with EDNS (1232 bytes); `None` on
/// timeout (2 s). Every answer is read by [`strict`], which panics (failing the test) when a
/// strict parser refuses it. A `name` with characters outside ASCII is sent as raw UTF-8
/// bytes, as some clients do; pass its `xn--` form to send the IDNA form.
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
    let m = message(name, qtype, edns, &[])?;
    exchange(src, server, transport, m).await
}

/// As [`query_from`] with EDNS (1232 bytes) carrying `options` as (code, data), such as an
/// EDNS Client Subnet (8) or dnsmasq's MAC (65001), in that order.
pub async fn query_with_options(
    src: IpAddr,
    server: SocketAddr,
    transport: Transport,
    name: &str,
    qtype: RecordType,
    options: &[(u16, Vec<u8>)],
) -> Option<Message> {
    let m = message(name, qtype, Some(1232), options)?;
    exchange(src, server, transport, m).await
}

/// The data of an EDNS Client Subnet option (RFC 7871) for `ip`/`prefix`, scope 0.
pub fn client_subnet(ip: IpAddr, prefix: u8) -> Vec<u8> {
    let (family, octets): (u16, Vec<u8>) = match ip {
        IpAddr::V4(v4) => (1, v4.octets().to_vec()),
        IpAddr::V6(v6) => (2, v6.octets().to_vec()),
    };
    let mut out = family.to_be_bytes().to_vec();
    out.extend_from_slice(&[prefix, 0]);
    out.extend(octets.iter().take(usize::from(prefix).div_ceil(8)));
    out
}

/// The EDNS option codes (and data) an answer carries.
pub fn answer_options(m: &Message) -> Vec<(u16, Vec<u8>)> {
    m.edns.as_ref().map_or_else(Vec::new, |e| {
        e.options()
            .options
            .iter()
            .map(|(code, option)| {
                let data = match option {
                    EdnsOption::Unknown(_, d) => d.clone(),
                    EdnsOption::Subnet(s) => Vec::<u8>::try_from(s).unwrap_or_default(),
                    _ => Vec::new(),
                };
                (u16::from(*code), data)
            })
            .collect()
    })
}

fn message(
    name: &str,
    qtype: RecordType,
    edns: Option<u16>,
    options: &[(u16, Vec<u8>)],
) -> Option<Message> {
    let fqdn = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    // Unicode names go as raw UTF-8 labels; hickory's text form also refuses some ASCII names
    // DNS carries (a label starting with `-`): those are built from their labels too.
    let labels = || Name::from_labels(fqdn.trim_end_matches('.').split('.').map(str::as_bytes));
    let qname = if fqdn.is_ascii() {
        Name::from_ascii(&fqdn).or_else(|_| labels()).ok()?
    } else {
        labels().ok()?
    };
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(qname, qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        for (code, data) in options {
            e.options_mut()
                .insert(EdnsOption::Unknown(*code, data.clone()));
        }
        m.set_edns(e);
    }
    Some(m)
}

async fn exchange(
    src: IpAddr,
    server: SocketAddr,
    transport: Transport,
    m: Message,
) -> Option<Message> {
    let bytes = m.to_vec().ok()?;
    let reply = tokio::time::timeout(Duration::from_secs(2), async {
        match transport {
            Transport::Udp => {
                let sock = UdpSocket::bind(SocketAddr::new(src, 0)).await.ok()?;
                sock.send_to(&bytes, server).await.ok()?;
                let mut buf = vec![0u8; 65_535];
                let (n, _) = sock.recv_from(&mut buf).await.ok()?;
                Some(strict(&buf[..n]))
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
                Some(strict(&buf))
            }
        }
    })
    .await
    .ok()??;
    (reply.metadata.id == m.metadata.id).then_some(reply)
}

/// Sends raw bytes over UDP and returns whatever comes back within `wait` (after
/// [`strict`] has read it: whatever the query, the answer must be a valid message).
pub async fn raw_udp(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    sock.send_to(bytes, server).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    let (n, _) = tokio::time::timeout(wait, sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    strict(&buf);
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

/// A UDP query from `src`, blocking, with EDNS and `options`: for a thread inside a network
/// namespace ([`crate::Netns::run`]), where the socket must be made. `None` after 3 s.
pub fn query_blocking(
    src: IpAddr,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    options: &[(u16, Vec<u8>)],
) -> Option<Message> {
    let m = message(name, qtype, Some(1232), options)?;
    let bytes = m.to_vec().ok()?;
    let sock = std::net::UdpSocket::bind(SocketAddr::new(src, 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    sock.send_to(&bytes, server).ok()?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, from) = sock.recv_from(&mut buf).ok()?;
        let reply = strict(&buf[..n]);
        if from == server && reply.metadata.id == m.metadata.id {
            return Some(reply);
        }
    }
}
