//! The request path: client → group → rate limit → canaries → policy → SafeSearch rewrite
//! or forward (cache, upstream) → CNAME check → ECH strip → answer → access event.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hedgerow_model::{
    AccessEvent, Addresses, BlockNotes, Clock, EventSink, Front, Host, NameResolver, Outcome,
    ResolveError, Verdict,
};
use hedgerow_policy::{Client, PolicyHandle, PolicySnapshot, canonical_ip};
use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::svcb::SvcParamKey;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::time::Instant;

use crate::cache::{self, Cache, Limits};
use crate::identity::{self, LogLimiter, Note, Who};
use crate::plan::{self, BlockAnswer, Plan};
use crate::ratelimit::{self, RateLimiter};
use crate::upstream::Forwarder;
use crate::wire;

/// The shortest time the proxy's lookups are cached: an upstream that answers with TTL 0
/// (dnsmasq's `--address` does) would otherwise cost two upstream queries a proxied request.
/// DNS clients asking the same name meanwhile see the answer with this TTL.
const PROXY_MIN_TTL: Duration = Duration::from_secs(5);

/// TTL of answers Hedgerow makes up (blocks, canaries, rewrites).
const LOCAL_TTL: u32 = 60;
/// The SOA of the answers Hedgerow makes up: primary server, mailbox, and serial, refresh,
/// retry, expire (the minimum is [`LOCAL_TTL`]).
const SOA_MNAME: &str = "hedgerow.invalid.";
const SOA_RNAME: &str = "hostmaster.hedgerow.invalid.";
const SOA_TIMERS: (u32, i32, i32, i32) = (1, 3600, 600, 86_400);
/// Largest UDP answer we send, whatever the client advertises.
const MAX_UDP_PAYLOAD: u16 = 4096;

/// Counters for monitoring; read with [`Resolver::metrics`].
#[derive(Debug, Default)]
pub struct Metrics {
    pub queries: AtomicU64,
    pub forwarded: AtomicU64,
    pub cache_hits: AtomicU64,
    pub blocked: AtomicU64,
    pub rewritten: AtomicU64,
    pub circumvention: AtomicU64,
    pub refused: AtomicU64,
    pub rate_limited: AtomicU64,
    pub servfail: AtomicU64,
    pub formerr: AtomicU64,
    /// Queries carrying client-subnet or MAC options from a sender that is not a trusted
    /// forwarder (the options were ignored).
    pub untrusted_identity: AtomicU64,
}

impl Metrics {
    /// Name and value of every counter.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("queries", v(&self.queries)),
            ("forwarded", v(&self.forwarded)),
            ("cache_hits", v(&self.cache_hits)),
            ("blocked", v(&self.blocked)),
            ("rewritten", v(&self.rewritten)),
            ("circumvention", v(&self.circumvention)),
            ("refused", v(&self.refused)),
            ("rate_limited", v(&self.rate_limited)),
            ("servfail", v(&self.servfail)),
            ("formerr", v(&self.formerr)),
            ("untrusted_identity", v(&self.untrusted_identity)),
        ]
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The filtering resolver. Cheap to share: wrap it in an `Arc` and hand it to [`crate::start`].
pub struct Resolver {
    pub(crate) policy: Arc<PolicyHandle>,
    sink: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    pub(crate) cache: Cache,
    forwarder: Forwarder,
    limiter: RateLimiter,
    metrics: Metrics,
    /// Queries answered in tasks of their own (cache misses, the full path): a shutdown waits
    /// for them.
    pub(crate) tasks: tokio_util::task::TaskTracker,
    /// Log lines about identity options, at most one a minute per sender.
    identity_log: LogLimiter,
    soa_mname: Name,
    soa_rname: Name,
    /// The SOA's RDATA in wire form, for the fast path's negative answers.
    soa_rdata: Vec<u8>,
    /// Where blocks answered with the block page's address are noted for the block page
    /// server (see [`Resolver::with_block_notes`]).
    notes: Option<Arc<BlockNotes>>,
}

/// What the UDP transport should do with a datagram; see [`Resolver::try_fast`].
pub(crate) enum Fast {
    Answer(Vec<u8>),
    Miss(Miss),
    Full,
}

/// A plain query that missed the cache, carried to a task by [`Resolver::fill`]. Its
/// snapshot, time and verdict are those of its arrival.
pub(crate) struct Miss {
    query: wire::OwnedQuery,
    who: Who,
    now: jiff::Timestamp,
    verdict: Verdict,
    snap: Arc<PolicySnapshot>,
}

/// An upstream lookup's outcome: SERVFAIL, or an answer (and its cache entry when cached).
enum Forwarded {
    Failed,
    Answer(Answer, Option<Arc<cache::Entry>>),
}

/// What to answer, before it is encoded.
struct Answer {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
}

impl Resolver {
    /// A resolver over the live policy. The cache size is read from the policy's configuration
    /// now (and again by [`Self::reconfigure`]); every other DNS setting (upstreams, timeout,
    /// rate limit, block answers) is read from the snapshot in force at each query, so a
    /// reload changes them too.
    pub fn new(policy: Arc<PolicyHandle>, sink: Arc<dyn EventSink>, clock: Arc<dyn Clock>) -> Self {
        let size = policy.snapshot().config().dns.cache.size;
        Self {
            policy,
            sink,
            clock,
            cache: Cache::new(size),
            forwarder: Forwarder::new(),
            limiter: RateLimiter::new(),
            metrics: Metrics::default(),
            tasks: tokio_util::task::TaskTracker::new(),
            identity_log: LogLimiter::new(),
            soa_mname: Name::from_ascii(SOA_MNAME).unwrap_or_else(|_| Name::root()),
            soa_rname: Name::from_ascii(SOA_RNAME).unwrap_or_else(|_| Name::root()),
            soa_rdata: soa_rdata(),
            notes: None,
        }
    }

    /// Notes every block answered with the block page's address in `notes`, and gives its
    /// access event the reference the block page will show (see [`BlockNotes`]).
    pub fn with_block_notes(mut self, notes: Arc<BlockNotes>) -> Self {
        self.notes = Some(notes);
        self
    }

    /// For a block that sends the browser to the block page (block-page mode, an A or AAAA
    /// query with an address to give): notes it and returns the event's reference.
    fn note_block(
        &self,
        page: bool,
        client: IpAddr,
        name: &str,
        now: jiff::Timestamp,
        verdict: &Verdict,
    ) -> Option<u64> {
        let notes = self.notes.as_ref().filter(|_| page)?;
        Some(notes.note(canonical_ip(client), name, now, verdict, rand::random()))
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Each upstream asked since the start, by address: its answers, errors, timeouts, last
    /// answer and failure, the last error and its latency (see [`UpstreamHealth`]). An
    /// upstream no cache miss has needed yet (a second one behind a healthy first) is not in
    /// it.
    ///
    /// [`UpstreamHealth`]: crate::UpstreamHealth
    pub fn upstream_health(&self) -> Vec<crate::UpstreamHealth> {
        self.forwarder.health.snapshot()
    }

    /// Applies what the resolver holds outside the snapshot, after a reload: the cache size
    /// (`[dns.cache] size`; a smaller cache evicts at once).
    pub fn reconfigure(&self, snap: &PolicySnapshot) {
        self.cache.set_capacity(snap.config().dns.cache.size);
    }

    /// Answers held in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Cached answers held and their bytes.
    pub fn cache_usage(&self) -> (usize, usize) {
        (self.cache.len(), self.cache.heap_bytes())
    }

    /// The synchronous path for plain UDP queries: answers cache hits and blocks straight from
    /// wire bytes, with the same client, rate-limit and policy steps as [`Self::handle`]. A
    /// cache miss comes back as a [`Fast::Miss`] for [`Self::fill`]; [`Fast::Full`] means
    /// "take the full path" (anything unusual, SafeSearch, a canary, an answer that needs
    /// per-group treatment or truncation), and nothing has been recorded then.
    pub(crate) fn try_fast(
        &self,
        bytes: &[u8],
        src: std::net::SocketAddr,
        local: Option<IpAddr>,
    ) -> Fast {
        self.fast_or_miss(bytes, src, local).unwrap_or(Fast::Full)
    }

    fn fast_or_miss(
        &self,
        bytes: &[u8],
        src: std::net::SocketAddr,
        local: Option<IpAddr>,
    ) -> Option<Fast> {
        let mut q = wire::parse_query(bytes)?;
        let snap = self.policy.snapshot();
        let dns = &snap.config().dns;
        // Options to report (ignored or unreadable) are left to the full path, which reports
        // them once.
        let (who, Note::Plain) =
            identity::identify(&dns.trusted_forwarders, src.ip(), local, q.options)
        else {
            return None;
        };
        q.echo = who.echo;
        let client = snap.client_on(who.ip, who.mac, who.local)?;
        let now = self.clock.now();
        let qtype = RecordType::from(q.qtype);
        // Canaries and steered names are answered by the full path (they need its records).
        let (verdict, block) = match plan::plan(&snap, client.group, &q.name, qtype, now)? {
            Plan::Block { verdict, answer } => (verdict, Some(answer)),
            Plan::Forward(verdict) => (verdict, None),
            Plan::Canary(_) | Plan::Steer(_) => return None,
        };
        // `None` is a cache miss, to be forwarded off this loop.
        let answer = match block {
            Some(shape) => {
                let mut out = Vec::with_capacity(512);
                self.fast_block(&mut out, &q, shape);
                Some((out, Outcome::Blocked))
            }
            None => {
                let key = cache::key(&q.name, qtype, q.dnssec_ok());
                match self.cache.get(&key, Instant::now()) {
                    Some(entry) => Some((self.cached_answer(&q, &entry)?, Outcome::Forwarded)),
                    None => None,
                }
            }
        };
        if answer
            .as_ref()
            .is_some_and(|(out, _)| out.len() > usize::from(payload(&q)))
        {
            return None;
        }
        // Checked only once the query is sure to be answered here or by `fill`, so a query
        // handed to the full path takes one token, not two. A denial takes none: the full path
        // checks again, refuses and logs.
        if let ratelimit::Decision::Deny { log } =
            self.limiter
                .check(who.rate_key(), dns.rate_limit_qps, Instant::now())
        {
            warn_rate_limited(&who, dns.rate_limit_qps, log);
            return None;
        }
        let Some((out, outcome)) = answer else {
            return Some(Fast::Miss(Miss {
                query: q.to_owned(),
                who,
                now,
                verdict,
                snap: snap.clone(),
            }));
        };
        bump(&self.metrics.queries);
        match outcome {
            Outcome::Blocked => bump(&self.metrics.blocked),
            _ => bump(&self.metrics.cache_hits),
        }
        let mut event = Event::new(self, now, who.ip, &q.name, Some(RecordType::from(q.qtype)));
        event.client = Some(client);
        if let Some(shape) = block {
            event.reference = self.note_block(shape.page, who.ip, &q.name, now, &verdict);
        }
        let shown = (verdict.is_blocked() || verdict.category.is_some()).then_some(&verdict);
        event.record(outcome, shown);
        Some(Fast::Answer(out))
    }

    /// Serves a fast-path cache miss: forwards, caches the answer as wire bytes and answers
    /// from them, as the full path would. `None`: the answer needs the full path (a CNAME
    /// chain or HTTPS/SVCB record to treat per group, or an answer too big for the client);
    /// the cache holds it by then, so the full path does not ask the upstream again.
    pub(crate) async fn fill(&self, miss: Miss) -> Option<Vec<u8>> {
        let q = miss.query.as_query();
        let snap = &miss.snap;
        let who = miss.who;
        let client = snap.client_on(who.ip, who.mac, who.local)?;
        let qtype = RecordType::from(q.qtype);
        let dnssec_ok = q.dnssec_ok();
        let name = Name::from_ascii(format!("{}.", q.name)).ok()?;
        let key = cache::key(&q.name, qtype, dnssec_ok);
        let mut event = Event::new(self, miss.now, who.ip, &q.name, Some(qtype));
        event.client = Some(client);
        // Another query may have filled the entry while this one waited for a turn.
        let entry = match self.cache.get(&key, Instant::now()) {
            Some(e) => Some(e),
            None => match self
                .forward(key, &name, qtype, dnssec_ok, snap, Duration::ZERO)
                .await
            {
                Forwarded::Failed => {
                    bump(&self.metrics.queries);
                    bump(&self.metrics.servfail);
                    event.record(Outcome::Failed, None);
                    return Some(empty_answer(&q, ResponseCode::ServFail));
                }
                Forwarded::Answer(answer, entry) => {
                    if entry.is_none() && answer.answers.is_empty() && answer.authorities.is_empty()
                    {
                        // REFUSED, SERVFAIL or the like from the upstream: passed on, empty.
                        bump(&self.metrics.queries);
                        event.record(upstream_outcome(answer.rcode), None);
                        return Some(empty_answer(&q, answer.rcode));
                    }
                    entry
                }
            },
        };
        let out = entry
            .and_then(|e| self.cached_answer(&q, &e))
            .filter(|out| out.len() <= usize::from(payload(&q)));
        let Some(out) = out else {
            event.pass();
            return None;
        };
        bump(&self.metrics.queries);
        let shown = miss.verdict.category.is_some().then_some(&miss.verdict);
        event.record(Outcome::Forwarded, shown);
        Some(out)
    }

    /// Records a datagram that could not be decoded, though its header could: it is answered
    /// FORMERR, and recorded with no name.
    pub(crate) fn unreadable(&self, src: std::net::SocketAddr) {
        bump(&self.metrics.queries);
        bump(&self.metrics.formerr);
        Event::new(self, self.clock.now(), src.ip(), "", None).record(Outcome::Invalid, None);
    }

    /// A cached answer in wire form for query `q`, unless it needs per-group treatment.
    fn cached_answer(&self, q: &wire::Query<'_>, entry: &cache::Entry) -> Option<Vec<u8>> {
        if entry.special {
            return None;
        }
        let mut out = Vec::with_capacity(512);
        wire::header(
            &mut out,
            q,
            rcode_bits(entry.rcode),
            entry.answers,
            entry.authorities,
        );
        entry.write_sections(&mut out, Instant::now())?;
        wire::opt(&mut out, q, payload(q));
        Some(out)
    }

    /// A block answer ([`plan::block_answer`]'s shape) in wire form; [`Self::block_answer`]
    /// encodes the same shape as records for the full path.
    fn fast_block(&self, out: &mut Vec<u8>, q: &wire::Query<'_>, shape: BlockAnswer) {
        let rcode = rcode_bits(shape.rcode);
        match shape.address {
            Some(ip) => {
                let addr = match ip {
                    IpAddr::V4(v4) => v4.octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                };
                wire::header(out, q, rcode, 1, 0);
                wire::record(out, q.qtype, LOCAL_TTL, &addr);
            }
            None => {
                wire::header(out, q, rcode, 0, 1);
                wire::record(out, u16::from(RecordType::SOA), LOCAL_TTL, &self.soa_rdata);
            }
        }
        wire::opt(out, q, payload(q));
    }

    /// The full path, for a query that arrived on the local address `local` (when the
    /// listener is bound to one).
    pub(crate) async fn handle<R: ResponseHandler>(
        &self,
        request: &Request,
        handle: R,
        local: Option<IpAddr>,
    ) -> ResponseInfo {
        bump(&self.metrics.queries);
        let mut edns = response_edns(request);
        // The first question names the event even when the query is refused as unreadable.
        let first = request.queries.queries().first();
        // Raw UTF-8 labels are read as their IDNA form, as policy matches them.
        let name = first.map_or_else(String::new, |q| wire::policy_name(&Name::from(q.name())));
        let now = self.clock.now();
        let src = request.src().ip();
        // Before the event, which may borrow from it until it is dropped.
        let snap = self.policy.snapshot();
        let mut event = Event::new(self, now, src, &name, first.map(|q| q.query_type()));
        if request.metadata.op_code != OpCode::Query {
            event.record(Outcome::Invalid, None);
            return send_error(request, handle, ResponseCode::NotImp, edns.as_ref()).await;
        }
        let Ok(info) = request.request_info() else {
            // Zero or several questions.
            bump(&self.metrics.formerr);
            event.record(Outcome::Invalid, None);
            return send_error(request, handle, ResponseCode::FormErr, edns.as_ref()).await;
        };
        let qname: Name = info.query.name().into();
        let qtype = info.query.query_type();
        // The options as received; hickory has already said whether there are any.
        let options = match &request.edns {
            Some(e) if !e.options().options.is_empty() => wire::opt_rdata(request.as_slice()),
            _ => &[],
        };
        let who = self.identify(&snap, info.src.ip(), local, options);
        if let (Some(edns), Some(echo)) = (edns.as_mut(), who.echo) {
            edns.options_mut()
                .insert(EdnsOption::Unknown(8, echo.data().to_vec()));
        }
        // The event names the identified client, not the forwarder that asked.
        event.src = canonical_ip(who.ip);

        let Some(client) = snap.client_on(who.ip, who.mac, who.local) else {
            bump(&self.metrics.refused);
            event.record(Outcome::Refused, None);
            return send_error(request, handle, ResponseCode::Refused, edns.as_ref()).await;
        };
        event.client = Some(client);
        let Some(group) = snap.group(client.group) else {
            event.record(Outcome::Failed, None);
            return send_error(request, handle, ResponseCode::ServFail, edns.as_ref()).await;
        };
        let dns = &snap.config().dns;

        if let ratelimit::Decision::Deny { log } =
            self.limiter
                .check(who.rate_key(), dns.rate_limit_qps, Instant::now())
        {
            bump(&self.metrics.rate_limited);
            warn_rate_limited(&who, dns.rate_limit_qps, log);
            event.record(Outcome::RateLimited, None);
            return send_error(request, handle, ResponseCode::Refused, edns.as_ref()).await;
        }

        let dnssec_ok = request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        match plan::plan(&snap, client.group, &name, qtype, now) {
            None => {
                event.record(Outcome::Failed, None);
                return send_error(request, handle, ResponseCode::ServFail, edns.as_ref()).await;
            }
            Some(Plan::Forward(_)) => {}
            Some(Plan::Canary(rcode)) => {
                bump(&self.metrics.circumvention);
                event.record(Outcome::Circumvention, Some(&plan::canary_verdict(&name)));
                let answer = Answer {
                    rcode,
                    answers: Vec::new(),
                    authorities: vec![self.soa(&qname)],
                };
                return send(request, handle, answer, edns.as_ref()).await;
            }
            Some(Plan::Block { verdict, answer }) => {
                bump(&self.metrics.blocked);
                event.reference = self.note_block(answer.page, who.ip, &name, now, &verdict);
                event.record(Outcome::Blocked, Some(&verdict));
                let answer = self.block_answer(answer, &qname, qtype);
                return send(request, handle, answer, edns.as_ref()).await;
            }
            Some(Plan::Steer(steer)) => {
                bump(&self.metrics.rewritten);
                let verdict = steer.verdict();
                let answer = match self
                    .safesearch_answer(&qname, steer.target, qtype, dnssec_ok, &snap)
                    .await
                {
                    Some(a) => {
                        event.record(Outcome::SafeSearch, Some(&verdict));
                        a
                    }
                    None => {
                        bump(&self.metrics.servfail);
                        event.record(Outcome::Failed, Some(&verdict));
                        return send_error(request, handle, ResponseCode::ServFail, edns.as_ref())
                            .await;
                    }
                };
                return send(request, handle, answer, edns.as_ref()).await;
            }
        }

        let Some(mut answer) = self
            .lookup(&qname, qtype, dnssec_ok, &snap, Duration::ZERO)
            .await
        else {
            bump(&self.metrics.servfail);
            event.record(Outcome::Failed, None);
            return send_error(request, handle, ResponseCode::ServFail, edns.as_ref()).await;
        };

        // An allowed name whose answer leads into a blocked name is blocked too.
        if let Some(verdict) = self.blocked_in_chain(&answer.answers, &name, client, &snap) {
            bump(&self.metrics.blocked);
            let shape = plan::block_answer(group.dns_block, qtype, dns);
            event.reference = self.note_block(shape.page, who.ip, &name, now, &verdict);
            event.record(Outcome::Blocked, Some(&verdict));
            let answer = self.block_answer(shape, &qname, qtype);
            return send(request, handle, answer, edns.as_ref()).await;
        }

        if snap.filters(client.group) {
            strip_ech(&mut answer.answers);
        }
        event.record(upstream_outcome(answer.rcode), None);
        send(request, handle, answer, edns.as_ref()).await
    }

    /// Who the full path's query is for ([`identity::identify`] over the OPT record's data as
    /// received); counts and logs identity options it does not believe.
    fn identify(
        &self,
        snap: &PolicySnapshot,
        sender: IpAddr,
        local: Option<IpAddr>,
        options: &[u8],
    ) -> Who {
        let trusted = &snap.config().dns.trusted_forwarders;
        let (who, note) = identity::identify(trusted, sender, local, options);
        match note {
            Note::Plain => {}
            Note::Untrusted => {
                bump(&self.metrics.untrusted_identity);
                if self.identity_log.allow(sender, Instant::now()) {
                    tracing::warn!(
                        %sender,
                        "query carries client-subnet or MAC options but its sender is not in [dns] trusted_forwarders; options ignored (logged at most once a minute per sender)"
                    );
                }
            }
            Note::Malformed => {
                if self.identity_log.allow(sender, Instant::now()) {
                    tracing::warn!(
                        %sender,
                        "query carries EDNS options that do not read (client subnet, MAC or the option list); the sender is taken as the client (logged at most once a minute per sender)"
                    );
                }
            }
        }
        who
    }

    fn soa(&self, owner: &Name) -> Record {
        let (serial, refresh, retry, expire) = SOA_TIMERS;
        let soa = SOA::new(
            self.soa_mname.clone(),
            self.soa_rname.clone(),
            serial,
            refresh,
            retry,
            expire,
            LOCAL_TTL,
        );
        Record::from_rdata(owner.clone(), LOCAL_TTL, RData::SOA(soa))
    }

    /// A block answer ([`plan::block_answer`]'s shape) as records; [`Self::fast_block`]
    /// encodes the same shape in wire form.
    fn block_answer(&self, shape: BlockAnswer, qname: &Name, qtype: RecordType) -> Answer {
        let data = shape.address.map(|ip| match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        });
        debug_assert!(data.is_none() || matches!(qtype, RecordType::A | RecordType::AAAA));
        match data {
            Some(data) => Answer {
                rcode: shape.rcode,
                answers: vec![Record::from_rdata(qname.clone(), LOCAL_TTL, data)],
                authorities: Vec::new(),
            },
            None => Answer {
                rcode: shape.rcode,
                answers: Vec::new(),
                authorities: vec![self.soa(qname)],
            },
        }
    }

    /// A CNAME from the engine's name to its enforcement host, followed by the enforcement
    /// host's own records of the asked type.
    async fn safesearch_answer(
        &self,
        qname: &Name,
        target: &str,
        qtype: RecordType,
        dnssec_ok: bool,
        snap: &PolicySnapshot,
    ) -> Option<Answer> {
        let target = Name::from_ascii(format!("{target}.")).ok()?;
        let upstream = self
            .lookup(&target, qtype, dnssec_ok, snap, Duration::ZERO)
            .await?;
        let mut answers = vec![Record::from_rdata(
            qname.clone(),
            LOCAL_TTL,
            RData::CNAME(CNAME(target)),
        )];
        answers.extend(upstream.answers);
        Some(Answer {
            rcode: upstream.rcode,
            answers,
            authorities: upstream.authorities,
        })
    }

    /// From the cache, or from the upstreams (then cached, for at least `floor` besides
    /// `[dns.cache] min_ttl`). `None` means SERVFAIL.
    /// A fresh cached answer, if there is one (no upstream asked).
    fn cached_only(&self, key: &cache::Key) -> Option<Answer> {
        let entry = self.cache.get(key, Instant::now())?;
        let (answers, authorities) = entry.fresh(Instant::now())?;
        bump(&self.metrics.cache_hits);
        Some(Answer {
            rcode: entry.rcode,
            answers,
            authorities,
        })
    }

    async fn lookup(
        &self,
        name: &Name,
        qtype: RecordType,
        dnssec_ok: bool,
        snap: &PolicySnapshot,
        floor: Duration,
    ) -> Option<Answer> {
        let key = cache::key(&name.to_ascii(), qtype, dnssec_ok);
        if let Some(answer) = self.cached_only(&key) {
            return Some(answer);
        }
        match self.forward(key, name, qtype, dnssec_ok, snap, floor).await {
            Forwarded::Failed => None,
            Forwarded::Answer(answer, _) => Some(answer),
        }
    }

    /// Asks the upstreams, clamps the TTLs (to at least `floor` as well as `[dns.cache]
    /// min_ttl`) and caches the answer when it can be cached.
    async fn forward(
        &self,
        key: cache::Key,
        name: &Name,
        qtype: RecordType,
        dnssec_ok: bool,
        snap: &PolicySnapshot,
        floor: Duration,
    ) -> Forwarded {
        let dns = &snap.config().dns;
        bump(&self.metrics.forwarded);
        let message = match self
            .forwarder
            .resolve(&dns.upstreams, name, qtype, dnssec_ok, dns.timeout)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(name = %name, qtype = %qtype, "upstream lookup failed: {e}");
                return Forwarded::Failed;
            }
        };
        let rcode = message.metadata.response_code;
        if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
            let empty = Answer {
                rcode,
                answers: Vec::new(),
                authorities: Vec::new(),
            };
            return Forwarded::Answer(empty, None);
        }
        let limits = Limits {
            min_ttl: dns.cache.min_ttl.max(floor),
            max_ttl: dns.cache.max_ttl,
            negative_ttl: dns.cache.negative_ttl,
        };
        // Clients see the same clamped TTLs the cache keeps.
        let (mut answers, mut authorities) = (message.answers, message.authorities);
        cache::clamp_ttls(&mut answers, &limits);
        cache::clamp_ttls(&mut authorities, &limits);
        let entry = self.cache.insert(
            key,
            name,
            rcode,
            &answers,
            &authorities,
            &limits,
            Instant::now(),
        );
        let answer = Answer {
            rcode,
            answers,
            authorities,
        };
        Forwarded::Answer(answer, entry)
    }

    /// The verdict for the first blocked name that the answer chain passes through (a CNAME
    /// target, or the owner of a record other than the question), as the policy decides
    /// names in a chain ([`PolicySnapshot::decide_in_chain`]: an approved-only group's CDN
    /// behind an approved name is not "not approved").
    fn blocked_in_chain(
        &self,
        answers: &[Record],
        qname: &str,
        client: Client<'_>,
        snap: &PolicySnapshot,
    ) -> Option<Verdict> {
        let now = self.clock.now();
        let mut seen: Vec<String> = Vec::new();
        for r in answers {
            let mut names = vec![wire::policy_name(&r.name)];
            if let RData::CNAME(CNAME(target)) = &r.data {
                names.push(wire::policy_name(target));
            }
            for n in names {
                if n == qname || seen.contains(&n) {
                    continue;
                }
                if let Ok(host) = Host::parse(&n) {
                    let v = snap.decide_in_chain(client.group, &host, now);
                    if v.is_blocked() {
                        return Some(v);
                    }
                }
                seen.push(n);
            }
        }
        None
    }
}

/// An answer with no records, only a code.
fn empty_answer(q: &wire::Query<'_>, rcode: ResponseCode) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    wire::header(&mut out, q, rcode_bits(rcode), 0, 0);
    wire::opt(&mut out, q, payload(q));
    out
}

/// The low four bits of an answer code, as the DNS header carries them.
fn rcode_bits(rcode: ResponseCode) -> u8 {
    (u16::from(rcode) & 0xf) as u8
}

/// The largest answer the client takes over UDP: its EDNS size (512 without EDNS), at most
/// [`MAX_UDP_PAYLOAD`].
fn payload(q: &wire::Query<'_>) -> u16 {
    q.edns.map_or(512, |(p, _)| p).min(MAX_UDP_PAYLOAD)
}

/// The log line for a client over its rate limit, at most once per client per 10 s.
fn warn_rate_limited(who: &Who, limit_qps: u32, log: bool) {
    if log {
        match who.mac {
            Some(mac) => {
                tracing::warn!(client = %who.ip, %mac, limit_qps, "client over its DNS rate limit; answering REFUSED")
            }
            None => {
                tracing::warn!(client = %who.ip, limit_qps, "client over its DNS rate limit; answering REFUSED")
            }
        }
    }
}

/// The SOA's RDATA in wire form (uncompressed names), from the same constants as `soa`.
fn soa_rdata() -> Vec<u8> {
    let mut out = Vec::new();
    for name in [SOA_MNAME, SOA_RNAME] {
        for label in name.trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    let (serial, refresh, retry, expire) = SOA_TIMERS;
    out.extend_from_slice(&serial.to_be_bytes());
    for v in [refresh, retry, expire] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&LOCAL_TTL.to_be_bytes());
    out
}

/// Removes Encrypted Client Hello parameters from HTTPS and SVCB records, so browsers send
/// the real server name in the clear where the proxy and the logs can see it.
fn strip_ech(records: &mut [Record]) {
    for r in records {
        match &mut r.data {
            RData::HTTPS(https) => https
                .0
                .svc_params
                .retain(|(k, _)| *k != SvcParamKey::EchConfigList),
            RData::SVCB(svcb) => svcb
                .svc_params
                .retain(|(k, _)| *k != SvcParamKey::EchConfigList),
            _ => {}
        }
    }
}

/// The access event of one query, recorded exactly once: by [`Event::record`] with the
/// outcome that ended the query, or, should a path end without saying (a future dropped while
/// waiting for an upstream), when it is dropped, as [`Outcome::Failed`]. [`Event::pass`] is
/// for the fast path handing a query on to the full path, which records it there.
struct Event<'a> {
    resolver: &'a Resolver,
    now: jiff::Timestamp,
    /// The client's address, IPv4-mapped IPv6 as IPv4 (as the proxy stores it).
    src: IpAddr,
    client: Option<Client<'a>>,
    name: &'a str,
    qtype: Option<RecordType>,
    /// The block page reference, for a block answered with the block page's address.
    reference: Option<u64>,
    done: bool,
}

impl<'a> Event<'a> {
    fn new(
        resolver: &'a Resolver,
        now: jiff::Timestamp,
        src: IpAddr,
        name: &'a str,
        qtype: Option<RecordType>,
    ) -> Self {
        Self {
            resolver,
            now,
            src: canonical_ip(src),
            client: None,
            name,
            qtype,
            reference: None,
            done: false,
        }
    }

    /// Records the event with `outcome`; `verdict` is the policy's, when it was asked.
    fn record(mut self, outcome: Outcome, verdict: Option<&Verdict>) {
        self.emit(outcome, verdict);
    }

    /// The query goes on to the full path, which records it: nothing is recorded here.
    fn pass(mut self) {
        self.done = true;
    }

    fn emit(&mut self, outcome: Outcome, verdict: Option<&Verdict>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let device = self.client.and_then(|c| c.device);
        let mut ev = AccessEvent {
            device: device.map(|d| d.name.as_str().into()),
            user: device.and_then(|d| d.user.as_deref()).map(Arc::from),
            group: self.client.map(|c| c.group_arc.clone()),
            qtype: self
                .qtype
                .map(|t| std::borrow::Cow::Borrowed(<&'static str>::from(t))),
            outcome,
            reference: self.reference,
            ..AccessEvent::new(self.now, Front::Dns, self.src, self.name.to_owned())
        };
        if let Some(v) = verdict {
            ev = ev.with_verdict(v);
        }
        self.resolver.sink.record(ev);
    }
}

impl Drop for Event<'_> {
    fn drop(&mut self) {
        self.emit(Outcome::Failed, None);
    }
}

/// The outcome of a query answered with the upstream's code: an answer or NXDOMAIN is
/// forwarded; SERVFAIL, REFUSED and the like passed on from the upstream are failures.
fn upstream_outcome(rcode: ResponseCode) -> Outcome {
    match rcode {
        ResponseCode::NoError | ResponseCode::NXDomain => Outcome::Forwarded,
        _ => Outcome::Failed,
    }
}

/// The EDNS section of our answer: present when the client used EDNS, with the client's
/// buffer size (at least 512, at most 4096) as the size we fill, and its DO bit mirrored.
fn response_edns(request: &Request) -> Option<Edns> {
    let theirs = request.edns.as_ref()?;
    let mut edns = Edns::new();
    edns.set_max_payload(request.max_payload().min(MAX_UDP_PAYLOAD));
    edns.flags_mut().dnssec_ok = theirs.flags().dnssec_ok;
    Some(edns)
}

async fn send<R: ResponseHandler>(
    request: &Request,
    mut handle: R,
    answer: Answer,
    edns: Option<&Edns>,
) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.recursion_available = true;
    metadata.authoritative = false;
    metadata.response_code = answer.rcode;
    let builder = MessageResponseBuilder::new(&request.queries, edns);
    let response = builder.build(
        metadata,
        answer.answers.iter(),
        answer.authorities.iter(),
        std::iter::empty(),
        std::iter::empty(),
    );
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!("sending DNS answer failed: {e}");
            failed(request)
        }
    }
}

async fn send_error<R: ResponseHandler>(
    request: &Request,
    mut handle: R,
    rcode: ResponseCode,
    edns: Option<&Edns>,
) -> ResponseInfo {
    let builder = MessageResponseBuilder::new(&request.queries, edns);
    let mut response = builder.error_msg(&request.metadata, rcode);
    response.metadata_mut().recursion_available = true;
    match handle.send_response(response).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!("sending DNS error answer failed: {e}");
            failed(request)
        }
    }
}

fn failed(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

impl NameResolver for Resolver {
    fn addresses<'a>(&'a self, host: &'a str) -> Addresses<'a> {
        Box::pin(self.addresses_of(host))
    }
}

impl Resolver {
    /// The A and AAAA records of `host`, through the cache and the upstreams as any query
    /// (the same client, UDP, TCP or TLS): for the proxy. No policy is applied here: the
    /// proxy decides before it resolves.
    async fn addresses_of(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let snap = self.policy.snapshot();
        let name = Name::from_ascii(format!("{}.", host.trim_end_matches('.')))
            .map_err(|_| ResolveError::NxDomain(host.to_owned()))?;
        // IPv4 first. AAAA is asked of the upstreams only when A gives no address (an
        // IPv6-only site); otherwise only a cached AAAA answer is used. An upstream that
        // refuses AAAA (a router answering REFUSED) is not cached, so asking it on every
        // request cost a round trip per proxied request (measured: allowed requests/s fell
        // by a quarter in benches/http-peers.sh).
        let a = self
            .lookup(&name, RecordType::A, false, &snap, PROXY_MIN_TTL)
            .await;
        let has_v4 = a
            .as_ref()
            .is_some_and(|a| a.answers.iter().any(|r| matches!(r.data, RData::A(_))));
        let aaaa = if has_v4 {
            self.cached_only(&cache::key(&name.to_ascii(), RecordType::AAAA, false))
        } else {
            self.lookup(&name, RecordType::AAAA, false, &snap, PROXY_MIN_TTL)
                .await
        };
        let Some(a) = a else {
            return Err(ResolveError::Unanswered(host.to_owned()));
        };
        match a.rcode {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => return Err(ResolveError::NxDomain(host.to_owned())),
            _ => return Err(ResolveError::Unanswered(host.to_owned())),
        }
        let mut ips: Vec<IpAddr> = Vec::new();
        for r in a
            .answers
            .iter()
            .chain(aaaa.iter().flat_map(|x| x.answers.iter()))
        {
            match &r.data {
                RData::A(v4) => ips.push(IpAddr::V4(v4.0)),
                RData::AAAA(v6) => ips.push(IpAddr::V6(v6.0)),
                _ => {}
            }
        }
        if ips.is_empty() {
            return Err(ResolveError::NoAddresses(host.to_owned()));
        }
        Ok(ips)
    }
}

/// The hickory-server handler: a thin shell over [`Resolver`] for one listener, which knows
/// the local address it is bound to (`None` for a wildcard address).
#[derive(Clone)]
pub struct Handler {
    pub resolver: Arc<Resolver>,
    pub local: Option<IpAddr>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: hickory_server::net::runtime::Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.resolver
            .handle(request, response_handle, self.local)
            .await
    }
}
