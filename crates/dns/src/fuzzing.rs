//! Entry points for the fuzz targets in `fuzz/` (hidden from the docs; not a supported API).
//!
//! The fast path's wire reader and writer are crate-private; this module lends them to the
//! fuzzers under names that say what they are, and wraps a [`Resolver`] so a fuzzer can send
//! it raw datagrams the way the UDP transport does (`udp.rs`), with the answer captured
//! instead of sent. Nothing here is used by the appliance itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hedgerow_model::{Clock, EventSink};
use hedgerow_policy::PolicyHandle;
use hickory_proto::op::{Header, Message, MessageType};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::time::Instant;

use crate::Resolver;
use crate::cache::{self, Limits};
use crate::handler::Fast;
use crate::wire;

/// What the fast path's reader made of a plain query (see `wire::Query`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainQuery {
    pub id: u16,
    pub rd: bool,
    /// Lower-case, without the trailing dot.
    pub name: String,
    pub qtype: u16,
    /// The question section as sent.
    pub question: Vec<u8>,
    /// `(payload, dnssec_ok)` when the query had an OPT record.
    pub edns: Option<(u16, bool)>,
    /// The OPT record's options as sent.
    pub options: Vec<u8>,
}

/// The fast path's query reader: `None` sends the query down the full path.
pub fn parse_query(bytes: &[u8]) -> Option<PlainQuery> {
    wire::parse_query(bytes).map(|q| PlainQuery {
        id: q.id,
        rd: q.rd,
        name: q.name,
        qtype: q.qtype,
        question: q.question.to_vec(),
        edns: q.edns,
        options: q.options.to_vec(),
    })
}

/// The data of the first OPT record in a whole message, as the full path finds it.
pub fn opt_rdata(bytes: &[u8]) -> &[u8] {
    wire::opt_rdata(bytes)
}

/// Where an encoded answer's sections and TTL fields are (see `wire::Layout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub sections_at: usize,
    pub ttl_offsets: Vec<u16>,
    pub answers: u16,
    pub authorities: u16,
}

/// The cache's walk over an encoded answer.
pub fn layout(bytes: &[u8]) -> Option<Layout> {
    wire::layout(bytes).map(|l| Layout {
        sections_at: l.sections_at,
        ttl_offsets: l.ttl_offsets,
        answers: l.answers,
        authorities: l.authorities,
    })
}

/// What the UDP transport did with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answered by the fast path, synchronously.
    Fast(Vec<u8>),
    /// A fast-path cache miss, answered after asking the upstreams.
    Filled(Vec<u8>),
    /// Answered by the full hickory path (including its FORMERR for undecodable queries).
    Full(Vec<u8>),
    /// Not answered: shorter than a header, a response, or the answer could not be encoded.
    None,
}

/// A [`Resolver`] driven the way the UDP transport drives it.
pub struct Harness {
    resolver: Arc<Resolver>,
}

impl Harness {
    pub fn new(policy: Arc<PolicyHandle>, sink: Arc<dyn EventSink>, clock: Arc<dyn Clock>) -> Self {
        Self {
            resolver: Arc::new(Resolver::new(policy, sink, clock)),
        }
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Puts an upstream's answer for `name`/`qtype` in the cache, as forwarding does (TTLs
    /// clamped to the configuration's bounds). False when the message does not decode or is
    /// not cacheable.
    pub fn prime(&self, name: &str, qtype: u16, dnssec_ok: bool, upstream: &[u8]) -> bool {
        let Ok(message) = Message::from_vec(upstream) else {
            return false;
        };
        let Ok(qname) = Name::from_ascii(format!("{}.", name.trim_end_matches('.'))) else {
            return false;
        };
        let qtype = RecordType::from(qtype);
        // Only what the forwarder takes as an answer (the question aside: its bytes are the
        // fuzzer's).
        let mut query = crate::upstream::build_query(&qname, qtype, dnssec_ok);
        query.metadata.id = message.metadata.id;
        if !message.queries.is_empty() {
            query.queries.clone_from(&message.queries);
        }
        if !crate::upstream::answers(&query, &message) {
            return false;
        }
        let snap = self.resolver.policy.snapshot();
        let c = &snap.config().dns.cache;
        let limits = Limits {
            min_ttl: c.min_ttl,
            max_ttl: c.max_ttl,
            negative_ttl: c.negative_ttl,
        };
        let (mut answers, mut authorities) = (message.answers, message.authorities);
        cache::clamp_ttls(&mut answers, &limits);
        cache::clamp_ttls(&mut authorities, &limits);
        let key = cache::key(&qname.to_ascii(), qtype, dnssec_ok);
        self.resolver
            .cache
            .insert(
                key,
                &qname,
                message.metadata.response_code,
                &answers,
                &authorities,
                &limits,
                Instant::now(),
            )
            .is_some()
    }

    /// The fast path alone: `Some(answer)` when it answered, `None` when it would hand the
    /// query on (to `fill` or the full path).
    pub fn try_fast(
        &self,
        bytes: &[u8],
        src: SocketAddr,
        local: Option<IpAddr>,
    ) -> Option<Vec<u8>> {
        match self.resolver.try_fast(bytes, src, local) {
            Fast::Answer(a) => Some(a),
            Fast::Miss(_) | Fast::Full => None,
        }
    }

    /// One datagram from `src` as `udp.rs` handles it: the fast path, then `fill` for a cache
    /// miss, then the full hickory path, whose answer is encoded as the UDP responder encodes
    /// it (truncated to the client's EDNS size).
    pub async fn datagram(&self, bytes: &[u8], src: SocketAddr, local: Option<IpAddr>) -> Reply {
        if src.port() == 0 {
            return Reply::None;
        }
        match self.resolver.try_fast(bytes, src, local) {
            Fast::Answer(a) => return Reply::Fast(a),
            Fast::Miss(miss) => {
                if let Some(a) = self.resolver.fill(miss).await {
                    return Reply::Filled(a);
                }
            }
            Fast::Full => {}
        }
        match self.full(bytes.to_vec(), src, local).await {
            Some(a) => Reply::Full(a),
            None => Reply::None,
        }
    }

    /// The full hickory path alone, as `udp.rs` takes it when the fast path passes a query on.
    pub async fn full_path(&self, bytes: &[u8], src: SocketAddr, local: Option<IpAddr>) -> Reply {
        match self.full(bytes.to_vec(), src, local).await {
            Some(a) => Reply::Full(a),
            None => Reply::None,
        }
    }

    /// `udp.rs`'s `full`, with the answer captured.
    async fn full(&self, raw: Vec<u8>, src: SocketAddr, local: Option<IpAddr>) -> Option<Vec<u8>> {
        let header = Header::read(&mut BinDecoder::new(&raw)).ok()?;
        if header.metadata.message_type == MessageType::Response {
            return None;
        }
        let Ok(request) = Request::from_bytes(raw, src, Protocol::Udp) else {
            self.resolver.unreadable(src);
            let reply = Message::error_msg(
                header.metadata.id,
                header.metadata.op_code,
                hickory_proto::op::ResponseCode::FormErr,
            );
            return reply.to_vec().ok();
        };
        let out = Arc::new(std::sync::Mutex::new(None));
        let responder = Capture { out: out.clone() };
        self.resolver.handle(&request, responder, local).await;
        out.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// A response handler that keeps the encoded answer, as `udp.rs`'s responder encodes it.
#[derive(Clone)]
struct Capture {
    out: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let max = response.edns().map_or(512, |e| e.max_payload().max(512));
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response
            .destructive_emit(&mut encoder)
            .map_err(|e| NetError::from(e.to_string()))?;
        *self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bytes);
        Ok(info)
    }
}
