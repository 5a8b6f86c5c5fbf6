//! Name resolution through Hedgerow's own DNS upstreams (`[[dns.upstreams]]`), with a small
//! TTL cache: the proxy reaches the same addresses the filtering resolver would answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hedgerow_config::{Upstream, UpstreamProtocol};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_CACHED: usize = 10_000;
const MIN_TTL: Duration = Duration::from_secs(5);
const MAX_TTL: Duration = Duration::from_secs(300);

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("{0} does not exist")]
    NxDomain(String),
    #[error("{0} has no addresses")]
    NoAddresses(String),
    #[error("no upstream answered for {0}")]
    Unanswered(String),
}

pub(crate) struct Resolver {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>,
}

impl Resolver {
    /// Uses the UDP and TCP upstreams (UDP retried over TCP when truncated). DNS-over-TLS
    /// upstreams are skipped; with none left, the system resolver is used.
    pub(crate) fn new(upstreams: &[Upstream], timeout: Duration) -> Self {
        Self {
            upstreams: upstreams
                .iter()
                .filter(|u| u.protocol != UpstreamProtocol::Tls)
                .map(|u| u.address)
                .collect(),
            timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The addresses of `host` (IPv4 first).
    pub(crate) async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let now = Instant::now();
        if let Some((until, ips)) = self.lock().get(host)
            && *until > now
        {
            return Ok(ips.clone());
        }
        if self.upstreams.is_empty() {
            let found: Vec<IpAddr> = tokio::net::lookup_host((host, 0))
                .await
                .map_err(|_| ResolveError::Unanswered(host.to_owned()))?
                .map(|a| a.ip())
                .collect();
            return if found.is_empty() {
                Err(ResolveError::NoAddresses(host.to_owned()))
            } else {
                Ok(found)
            };
        }
        let (a, aaaa) = tokio::join!(
            self.ask(host, RecordType::A),
            self.ask(host, RecordType::AAAA)
        );
        let (mut ips, ttl_a) = a?;
        let (v6, ttl_6) = aaaa.unwrap_or_default();
        ips.extend(v6);
        if ips.is_empty() {
            return Err(ResolveError::NoAddresses(host.to_owned()));
        }
        let ttl = ttl_a.min(ttl_6).clamp(MIN_TTL, MAX_TTL);
        let mut cache = self.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(host.to_owned(), (now + ttl, ips.clone()));
        Ok(ips)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Vec<IpAddr>)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn ask(
        &self,
        host: &str,
        qtype: RecordType,
    ) -> Result<(Vec<IpAddr>, Duration), ResolveError> {
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let name = Name::from_ascii(&fqdn).map_err(|_| ResolveError::NxDomain(host.to_owned()))?;
        let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(name, qtype));
        let bytes = m
            .to_vec()
            .map_err(|_| ResolveError::NxDomain(host.to_owned()))?;
        for up in &self.upstreams {
            let Ok(Some(reply)) = tokio::time::timeout(self.timeout, exchange(*up, &bytes)).await
            else {
                continue;
            };
            if reply.metadata.id != m.metadata.id {
                continue;
            }
            if reply.metadata.response_code == ResponseCode::NXDomain {
                return Err(ResolveError::NxDomain(host.to_owned()));
            }
            let mut ips = Vec::new();
            let mut ttl = MAX_TTL;
            for r in &reply.answers {
                match &r.data {
                    RData::A(a) => ips.push(IpAddr::V4(a.0)),
                    RData::AAAA(a) => ips.push(IpAddr::V6(a.0)),
                    _ => continue,
                }
                ttl = ttl.min(Duration::from_secs(u64::from(r.ttl)));
            }
            return Ok((ips, ttl));
        }
        Err(ResolveError::Unanswered(host.to_owned()))
    }
}

/// One query over UDP, retried over TCP when the answer is truncated.
async fn exchange(server: SocketAddr, query: &[u8]) -> Option<Message> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = sock.recv(&mut buf).await.ok()?;
    let reply = Message::from_vec(buf.get(..n)?).ok()?;
    if !reply.metadata.truncation {
        return Some(reply);
    }
    let mut tcp = tokio::net::TcpStream::connect(server).await.ok()?;
    let mut out = u16::try_from(query.len()).ok()?.to_be_bytes().to_vec();
    out.extend_from_slice(query);
    tcp.write_all(&out).await.ok()?;
    let mut len = [0u8; 2];
    tcp.read_exact(&mut len).await.ok()?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tcp.read_exact(&mut body).await.ok()?;
    Message::from_vec(&body).ok()
}
