//! Forwarding to upstream resolvers: UDP with TCP fallback on truncation, TCP, and DNS over
//! TLS; failover in configured order; one overall deadline, after which the caller answers
//! SERVFAIL rather than hang.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hedgerow_config::{Upstream, UpstreamProtocol};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::health::{Attempt, Health};
use crate::pool::UdpPool;
use tokio::time::{Instant, timeout_at};

/// The EDNS buffer size we advertise upstream (the DNS Flag Day 2020 value).
const UDP_PAYLOAD: u16 = 1232;
/// Each upstream gets at least this long before the next is tried.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error("no upstream answered before the deadline")]
    Timeout,
    #[error("every upstream failed; last error: {0}")]
    Failed(String),
}

pub(crate) struct Forwarder {
    tls: Arc<rustls::ClientConfig>,
    /// UDP socket pools by upstream address, made on first use. Upstreams removed by a reload
    /// keep an idle pool; that is a few sockets, not worth a sweep.
    pools: std::sync::RwLock<std::collections::HashMap<SocketAddr, Arc<UdpPool>>>,
    /// Each upstream's answers, failures and latency, by address (kept across reloads, as the
    /// pools are).
    pub(crate) health: Health,
}

impl Forwarder {
    pub(crate) fn new() -> Self {
        Self {
            tls: Arc::new(tls_config(&[])),
            pools: std::sync::RwLock::new(std::collections::HashMap::new()),
            health: Health::default(),
        }
    }

    /// Asks the upstreams, in order, for `name`/`qtype`, and returns the first valid answer.
    pub(crate) async fn resolve(
        &self,
        upstreams: &[Upstream],
        name: &Name,
        qtype: RecordType,
        dnssec_ok: bool,
        total: Duration,
    ) -> Result<Message, ForwardError> {
        let deadline = Instant::now() + total;
        let per_attempt = (total / upstreams.len().max(1) as u32).max(MIN_ATTEMPT);
        let mut last = String::from("no upstreams configured");
        for up in upstreams {
            let now = Instant::now();
            if now >= deadline {
                return Err(ForwardError::Timeout);
            }
            let attempt_deadline = (now + per_attempt).min(deadline);
            let query = build_query(name, qtype, dnssec_ok);
            match timeout_at(attempt_deadline, self.ask(up, &query)).await {
                Ok(Ok(m)) => {
                    // A cache miss only: the fast path never comes here.
                    let took = now.elapsed();
                    metrics::histogram!("hedgerow_dns_upstream_seconds").record(took.as_secs_f64());
                    self.health.record(up.address, Attempt::Answered(took));
                    return Ok(m);
                }
                Ok(Err(e)) => {
                    upstream_failed(up, "error");
                    self.health.record(up.address, Attempt::Error(&e));
                    tracing::debug!(upstream = %up.address, error = %e, "upstream failed");
                    last = format!("{}: {e}", up.address);
                }
                Err(_) => {
                    upstream_failed(up, "timeout");
                    self.health.record(up.address, Attempt::TimedOut);
                    tracing::debug!(upstream = %up.address, "upstream timed out");
                    last = format!("{}: timed out", up.address);
                }
            }
        }
        if Instant::now() >= deadline {
            Err(ForwardError::Timeout)
        } else {
            Err(ForwardError::Failed(last))
        }
    }

    async fn ask(&self, up: &Upstream, query: &Message) -> std::io::Result<Message> {
        // Encoded for the stream transports; the UDP pool encodes with its own ID.
        let bytes = || query.to_vec().map_err(std::io::Error::other);
        match up.protocol {
            UpstreamProtocol::Udp => {
                let pool = self.pool(up.address).await?;
                let answer = pool.exchange(query.clone()).await?;
                if answer.metadata.truncation {
                    // Too big for UDP: ask again over TCP (RFC 7766).
                    let stream = TcpStream::connect(up.address).await?;
                    stream.set_nodelay(true)?;
                    stream_exchange(stream, &bytes()?, query).await
                } else {
                    Ok(answer)
                }
            }
            UpstreamProtocol::Tcp => {
                let stream = TcpStream::connect(up.address).await?;
                stream.set_nodelay(true)?;
                stream_exchange(stream, &bytes()?, query).await
            }
            UpstreamProtocol::Tls => {
                let config = match &up.ca_file {
                    None => self.tls.clone(),
                    Some(path) => {
                        let pem = tokio::fs::read(path).await?;
                        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
                            .filter_map(Result::ok)
                            .collect();
                        Arc::new(tls_config(&certs))
                    }
                };
                let name = up.tls_name.clone().unwrap_or_default();
                let server_name = rustls::pki_types::ServerName::try_from(name)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let stream = TcpStream::connect(up.address).await?;
                stream.set_nodelay(true)?;
                let connector = tokio_rustls::TlsConnector::from(config);
                let tls = connector.connect(server_name, stream).await?;
                stream_exchange(tls, &bytes()?, query).await
            }
        }
    }
}

/// A TLS client configuration trusting the Mozilla roots plus `extra`.
fn tls_config(extra: &[rustls::pki_types::CertificateDer<'static>]) -> rustls::ClientConfig {
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        // A certificate that does not parse is skipped; the handshake then fails and says so.
        let _ = roots.add(cert.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
        // ring supports the default protocol versions, so this arm is not reached; if it were,
        // every TLS upstream would fail its handshake (and SERVFAIL), never panic.
        Err(_) => rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    }
}

impl Forwarder {
    async fn pool(&self, addr: SocketAddr) -> std::io::Result<Arc<UdpPool>> {
        // Every cache miss comes here: a read lock, held for one map lookup.
        if let Some(p) = self
            .pools
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
        {
            return Ok(p.clone());
        }
        let fresh = Arc::new(UdpPool::connect(addr).await?);
        let mut pools = self.pools.write().unwrap_or_else(|p| p.into_inner());
        // Two first queries may race to make a pool; keep whichever got in first.
        Ok(pools.entry(addr).or_insert(fresh).clone())
    }
}

fn upstream_failed(up: &Upstream, reason: &'static str) {
    metrics::counter!(
        "hedgerow_dns_upstream_failures_total",
        "upstream" => up.address.to_string(),
        "reason" => reason
    )
    .increment(1);
}

pub(crate) fn build_query(name: &Name, qtype: RecordType, dnssec_ok: bool) -> Message {
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD);
    edns.flags_mut().dnssec_ok = dnssec_ok;
    m.set_edns(edns);
    m
}

/// True when `answer` answers `query`: same ID, a response with the same opcode, the same
/// question. Anything else is ignored, which is what makes a spoofed or stray datagram
/// harmless. (hickory reads an UPDATE message under its own rules, empty records included,
/// which it then writes into answers no client can read: found by fuzzing,
/// fuzz/fuzz_targets/dns_fast.rs.)
pub(crate) fn answers(query: &Message, answer: &Message) -> bool {
    answer.metadata.id == query.metadata.id
        && answer.metadata.message_type == MessageType::Response
        && answer.metadata.op_code == query.metadata.op_code
        && match (query.queries.first(), answer.queries.first()) {
            (Some(q), Some(a)) => {
                q.query_type() == a.query_type()
                    && q.name().to_lowercase() == a.name().to_lowercase()
            }
            // Some servers omit the question in error answers; the ID must then do.
            (Some(_), None) => true,
            _ => false,
        }
}

async fn stream_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    bytes: &[u8],
    query: &Message,
) -> std::io::Result<Message> {
    let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    stream.flush().await?;
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await?;
        let m = Message::from_vec(&buf).map_err(std::io::Error::other)?;
        if answers(query, &m) {
            return Ok(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (fuzz/fuzz_targets/dns_fast.rs): an upstream's UPDATE message with an
    /// empty SOA record was taken as the answer, cached, and served as bytes no client reads.
    #[test]
    fn an_answer_with_another_opcode_is_not_an_answer() {
        let name = Name::from_ascii("nothing.example.").unwrap();
        let query = build_query(&name, RecordType::SRV, false);
        let mut answer = query.clone();
        answer.metadata.message_type = MessageType::Response;
        assert!(answers(&query, &answer));
        answer.metadata.op_code = OpCode::Update;
        assert!(!answers(&query, &answer));
    }
}
