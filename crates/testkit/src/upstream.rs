//! A scriptable upstream DNS server on loopback.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::svcb::{Alpn, EchConfigList, SVCB, SvcParamKey, SvcParamValue};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, HTTPS, MX, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// A name from text; one with characters outside ASCII has raw UTF-8 labels.
fn name(s: &str) -> Name {
    if !s.is_ascii() {
        return Name::from_labels(s.trim_end_matches('.').split('.').map(str::as_bytes)).unwrap();
    }
    Name::from_ascii(if s.ends_with('.') {
        s.to_owned()
    } else {
        format!("{s}.")
    })
    .unwrap()
}

/// A name as the zone keys it: lower case, no trailing dot, raw UTF-8 labels as text.
fn key(n: &Name) -> String {
    match n
        .iter()
        .map(std::str::from_utf8)
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(labels) if !n.iter().all(<[u8]>::is_ascii) => labels.join(".").to_lowercase(),
        _ => n.to_ascii().trim_end_matches('.').to_ascii_lowercase(),
    }
}

/// Records to serve, by lower-case name (no trailing dot). Owners given with characters outside
/// ASCII are served under raw UTF-8 labels (as some clients ask), not their IDNA form.
#[derive(Default, Clone)]
pub struct UpstreamDns {
    records: HashMap<String, Vec<(RecordType, RData, u32)>>,
    /// Names answered SERVFAIL, as a recursive resolver does when it cannot reach their
    /// servers.
    failing: Vec<String>,
}

impl UpstreamDns {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, owner: &str, data: RData, ttl: u32) -> Self {
        let rtype = data.record_type();
        self.records
            .entry(key(&name(owner)))
            .or_default()
            .push((rtype, data, ttl));
        self
    }

    pub fn a(self, owner: &str, ip: Ipv4Addr) -> Self {
        self.add(owner, RData::A(A(ip)), 300)
    }

    pub fn a_ttl(self, owner: &str, ip: Ipv4Addr, ttl: u32) -> Self {
        self.add(owner, RData::A(A(ip)), ttl)
    }

    pub fn aaaa(self, owner: &str, ip: Ipv6Addr) -> Self {
        self.add(owner, RData::AAAA(AAAA(ip)), 300)
    }

    pub fn cname(self, owner: &str, target: &str) -> Self {
        self.add(owner, RData::CNAME(CNAME(name(target))), 300)
    }

    pub fn mx(self, owner: &str, exchange: &str) -> Self {
        self.add(owner, RData::MX(MX::new(10, name(exchange))), 300)
    }

    pub fn txt(self, owner: &str, text: &str) -> Self {
        self.add(owner, RData::TXT(TXT::new(vec![text.to_owned()])), 300)
    }

    /// An HTTPS record carrying ALPN and an ECH configuration.
    pub fn https_with_ech(self, owner: &str) -> Self {
        let svcb = SVCB::new(
            1,
            Name::root(),
            vec![
                (
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h2".into()])),
                ),
                (
                    SvcParamKey::EchConfigList,
                    // A well-formed list (RFC 9849 §4): its length, then one ECHConfig of
                    // version 0xfe0d with empty contents.
                    SvcParamValue::EchConfigList(EchConfigList(vec![0, 4, 0xfe, 0x0d, 0, 0])),
                ),
            ],
        );
        self.add(owner, RData::HTTPS(HTTPS(svcb)), 300)
    }

    /// Answers SERVFAIL (no records) for `owner`.
    pub fn servfail(mut self, owner: &str) -> Self {
        self.failing
            .push(owner.trim_end_matches('.').to_ascii_lowercase());
        self
    }

    /// `count` TXT records of 200 bytes: too big for a 512-byte UDP answer.
    pub fn big_txt(mut self, owner: &str, count: usize) -> Self {
        for i in 0..count {
            self = self.txt(owner, &format!("{i:03}{}", "x".repeat(197)));
        }
        self
    }

    /// Binds UDP and TCP on one loopback port and serves until dropped.
    pub async fn start(self) -> RunningUpstream {
        let (udp, tcp) = bind_pair().await;
        self.serve(udp, tcp)
    }

    /// As [`Self::start`], on loopback inside the network namespace `netns` (for an appliance
    /// that runs there).
    pub async fn start_in(self, netns: &crate::Netns) -> RunningUpstream {
        let (udp, tcp) = netns.run(|| {
            for _ in 0..64 {
                let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                if let Ok(tcp) = std::net::TcpListener::bind(udp.local_addr().unwrap()) {
                    return (udp, tcp);
                }
            }
            panic!("no loopback port free for both UDP and TCP in the namespace");
        });
        udp.set_nonblocking(true).unwrap();
        tcp.set_nonblocking(true).unwrap();
        self.serve(
            UdpSocket::from_std(udp).unwrap(),
            TcpListener::from_std(tcp).unwrap(),
        )
    }

    fn serve(self, udp: UdpSocket, tcp: TcpListener) -> RunningUpstream {
        let addr = udp.local_addr().unwrap();
        let state = Arc::new(State {
            zone: self,
            queries: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            options: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                    break;
                };
                let Some((reply, limit)) = s.answer(&buf[..n]) else {
                    continue;
                };
                let bytes = encode(reply, limit);
                let _ = udp.send_to(&bytes, from).await;
            }
        });
        let s = state.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    break;
                };
                tokio::spawn(serve_stream(stream, s.clone()));
            }
        });
        RunningUpstream {
            addr,
            state,
            tasks: vec![udp_task, tcp_task],
        }
    }
}

/// Answers length-prefixed queries on one TCP or TLS connection until it closes.
async fn serve_stream<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    s: Arc<State>,
) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let Some((reply, _)) = s.answer(&buf) else {
            return;
        };
        let bytes = reply.to_vec().unwrap();
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&bytes);
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

impl UpstreamDns {
    /// Serves DNS over TLS (RFC 7858) on a loopback port with a certificate for `name` from a
    /// fresh test CA. Returns the upstream and the CA certificate (PEM) to trust.
    pub async fn start_tls(self, name: &str) -> (RunningUpstream, String) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Hedgerow test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialized_der().to_vec()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let state = Arc::new(State {
            zone: self,
            queries: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            options: Mutex::new(Vec::new()),
        });
        let s = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    break;
                };
                let (acceptor, s) = (acceptor.clone(), s.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve_stream(tls, s).await;
                    }
                });
            }
        });
        (
            RunningUpstream {
                addr,
                state,
                tasks: vec![task],
            },
            ca.pem(),
        )
    }
}

struct State {
    zone: UpstreamDns,
    queries: AtomicUsize,
    log: Mutex<Vec<(String, RecordType)>>,
    /// The EDNS option codes of every query, in order.
    options: Mutex<Vec<Vec<u16>>>,
}

impl State {
    /// The reply and the UDP size limit the asker advertised.
    fn answer(&self, bytes: &[u8]) -> Option<(Message, usize)> {
        let q = Message::from_vec(bytes).ok()?;
        let question = q.queries.first()?.clone();
        self.queries.fetch_add(1, Ordering::SeqCst);
        let qname = key(question.name());
        self.log
            .lock()
            .unwrap()
            .push((qname.clone(), question.query_type()));
        let codes = q.edns.as_ref().map_or_else(Vec::new, |e| {
            e.options()
                .options
                .iter()
                .map(|(code, _)| u16::from(*code))
                .collect()
        });
        self.options.lock().unwrap().push(codes);
        let limit = q
            .edns
            .as_ref()
            .map_or(512, |e| usize::from(e.max_payload().max(512)));
        let mut reply = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
        reply.metadata.recursion_desired = q.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.add_query(question.clone());
        if let Some(edns) = q.edns {
            reply.set_edns(edns);
        }
        if self.zone.failing.contains(&qname) {
            reply.metadata.response_code = ResponseCode::ServFail;
            return Some((reply, limit));
        }
        // Follow CNAMEs within the zone, as a recursive resolver would.
        let mut owner = qname;
        let mut found = false;
        for _ in 0..8 {
            let Some(records) = self.zone.records.get(&owner) else {
                break;
            };
            found = true;
            let mut next = None;
            for (rtype, data, ttl) in records {
                if *rtype == question.query_type() || *rtype == RecordType::CNAME {
                    reply.add_answer(Record::from_rdata(name(&owner), *ttl, data.clone()));
                }
                if let RData::CNAME(CNAME(t)) = data {
                    next = Some(key(t));
                }
            }
            match next {
                Some(n) if question.query_type() != RecordType::CNAME => owner = n,
                _ => break,
            }
        }
        if !found {
            reply.metadata.response_code = ResponseCode::NXDomain;
            let soa = SOA::new(
                name("ns.test"),
                name("hostmaster.test"),
                1,
                3600,
                600,
                86_400,
                30,
            );
            reply.add_authority(Record::from_rdata(name("test"), 30, RData::SOA(soa)));
        }
        Some((reply, limit))
    }
}

/// Encodes for UDP: an answer over `limit` bytes goes out truncated (TC, no records).
fn encode(reply: Message, limit: usize) -> Vec<u8> {
    let bytes = reply.to_vec().unwrap();
    if bytes.len() <= limit {
        return bytes;
    }
    let mut small = Message::new(
        reply.metadata.id,
        MessageType::Response,
        reply.metadata.op_code,
    );
    small.metadata.truncation = true;
    small.metadata.recursion_desired = reply.metadata.recursion_desired;
    small.metadata.recursion_available = true;
    for q in reply.queries {
        small.add_query(q);
    }
    small.to_vec().unwrap()
}

/// A running upstream; stops when dropped.
pub struct RunningUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningUpstream {
    /// Queries received so far.
    pub fn queries(&self) -> usize {
        self.state.queries.load(Ordering::SeqCst)
    }

    /// Every (name, type) asked, in order.
    pub fn asked(&self) -> Vec<(String, RecordType)> {
        self.state.log.lock().unwrap().clone()
    }

    /// The EDNS option codes each query carried, in the order of [`Self::asked`].
    pub fn options_seen(&self) -> Vec<Vec<u16>> {
        self.state.options.lock().unwrap().clone()
    }
}

impl Drop for RunningUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A UDP socket on loopback that reads queries and never answers, and a TCP listener on the
/// same port that accepts and never answers: an upstream that is down without saying so.
pub async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let (udp, tcp) = bind_pair().await;
    let addr = udp.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        let mut held = Vec::new();
        loop {
            tokio::select! {
                r = udp.recv_from(&mut buf) => if r.is_err() { break },
                a = tcp.accept() => if let Ok((s, _)) = a { held.push(s) },
            }
        }
    });
    (addr, task)
}

/// A UDP socket and a TCP listener on the same free loopback port. The port the system gives
/// UDP may be taken for TCP by another test, so try again until both bind.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..64 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

impl UpstreamDns {
    /// Binds UDP and TCP on `addr` (such as `127.0.53.7:53`, as a resolv.conf names a
    /// nameserver: port 53 needs root) and serves until dropped.
    pub async fn start_on(self, addr: SocketAddr) -> RunningUpstream {
        let udp = UdpSocket::bind(addr).await.unwrap();
        let tcp = TcpListener::bind(addr).await.unwrap();
        self.serve(udp, tcp)
    }
}
