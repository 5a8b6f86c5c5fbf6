//! Connections, requests and tunnels.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hedgerow_model::{AccessEvent, Front, Host, Outcome, Severity, Tier, UrlKey, Verdict};
use hedgerow_policy::{
    Client as PolicyClient, GroupId, Interception, PolicySnapshot, Target, canonical_ip,
};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Frame, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::access::Logged;
use crate::framing::{self, Fault, Framing, Inspect};
use crate::tls::{HelloError, parse_hello};
use crate::{Proxy, ProxyError, page, search};

type Out = BoxBody<Bytes, hyper::Error>;

const HELLO_LIMIT: usize = 16 * 1024;
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Out> {
    let mut r = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("text/plain")),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, body: &str) -> Response<Out> {
    full(status, "text/plain; charset=utf-8", format!("{body}\n"))
}

/// 400 and close: for malformed requests and smuggling shapes.
fn bad_request(reason: &str) -> Response<Out> {
    let mut r = text(StatusCode::BAD_REQUEST, reason);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// A framing refusal: its status and reason, and the connection closes.
fn refuse(f: Fault) -> Response<Out> {
    let mut r = text(f.status, f.reason);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

// --- users -------------------------------------------------------------------------------

/// Basic proxy authentication against `name:$argon2id$…` lines. A verified header is
/// remembered (by keyed hash) so the slow hash runs once per user and password.
pub(crate) struct Users {
    hashes: HashMap<String, String>,
    verified: Mutex<HashMap<u128, Arc<str>>>,
    key: (u64, u64),
}

impl Users {
    pub(crate) fn load(path: &std::path::Path) -> Result<Self, ProxyError> {
        let err = |reason: String| ProxyError::Users {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut hashes = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, hash)) = line.split_once(':') else {
                return Err(err(format!("line {}: expected name:$argon2id$…", i + 1)));
            };
            if argon2::PasswordHash::new(hash).is_err() {
                return Err(err(format!("line {}: not a PHC password hash", i + 1)));
            }
            hashes.insert(name.to_owned(), hash.to_owned());
        }
        Ok(Self {
            hashes,
            verified: Mutex::new(HashMap::new()),
            key: (rand::random(), rand::random()),
        })
    }

    /// The user a `Proxy-Authorization` header proves, if it does. Blocking (argon2) on the
    /// first sight of a header: call it off the async workers.
    fn check(&self, header: &str) -> Option<Arc<str>> {
        use std::hash::Hasher;
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(header.as_bytes());
        let tag = siphasher::sip128::Hasher128::finish128(&h).as_u128();
        let mut verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(u) = verified.get(&tag) {
            return Some(u.clone());
        }
        drop(verified);
        let encoded = header.strip_prefix("Basic ")?.trim();
        let decoded = decode_base64(encoded)?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (name, password) = decoded.split_once(':')?;
        let hash = argon2::PasswordHash::new(self.hashes.get(name)?).ok()?;
        use argon2::PasswordVerifier;
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .ok()?;
        let user: Arc<str> = Arc::from(name);
        verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() > 10_000 {
            verified.clear();
        }
        verified.insert(tag, user.clone());
        Some(user)
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let take = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

// --- origin client -----------------------------------------------------------------------

/// Pooled HTTP/1 connections to origins, by address.
pub(crate) struct Client {
    idle: Mutex<HashMap<SocketAddr, Vec<hyper::client::conn::http1::SendRequest<Out>>>>,
}

impl Client {
    pub(crate) fn new() -> Self {
        Self {
            idle: Mutex::new(HashMap::new()),
        }
    }

    fn take(&self, addr: SocketAddr) -> Option<hyper::client::conn::http1::SendRequest<Out>> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.get_mut(&addr)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, s: hyper::client::conn::http1::SendRequest<Out>) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = idle.entry(addr).or_default();
        if list.len() < 64 {
            list.push(s);
        }
    }
}

// --- accepting ---------------------------------------------------------------------------

pub(crate) async fn accept_loop(proxy: Arc<Proxy>, listener: tokio::net::TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("proxy accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let max = proxy.live().config.max_connections_per_client;
        let Some(slot) = proxy.conns.admit(peer.ip(), max) else {
            tracing::warn!(client = %peer.ip(), "proxy: too many connections from one client; refused");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let p = proxy.clone();
        proxy.spawn(async move {
            serve_connection(p, stream, peer).await;
            drop(slot);
        });
    }
}

fn http1_server(proxy: &Proxy) -> hyper::server::conn::http1::Builder {
    let live = proxy.live();
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(live.config.idle_timeout)
        .max_buf_size(live.config.max_header_bytes.max(8192))
        .keep_alive(true);
    b
}

async fn serve_connection(proxy: Arc<Proxy>, stream: TcpStream, peer: SocketAddr) {
    serve_http1(proxy, stream, peer, None).await;
}

/// Serves HTTP/1.1 on a client connection (or on the decrypted stream of an intercepted
/// one, `tls`): every byte passes [`Inspect`] first, and a request whose framing it refused
/// gets the refusal (and the connection closes) without reaching the handler.
async fn serve_http1<S>(proxy: Arc<Proxy>, stream: S, peer: SocketAddr, tls: Option<Intercepted>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let p = proxy.clone();
    let (stream, heads, watch) = Inspect::new(stream, proxy.live().config.max_header_bytes);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        let (p, tls) = (p.clone(), tls.clone());
        let framing = heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front();
        req.extensions_mut().insert(watch.clone());
        async move {
            let (chunked, fault) = match framing {
                Some(Framing::Ok { chunked }) => (chunked, None),
                Some(Framing::Refuse(f)) => (false, Some(f)),
                // Every head hyper reads has been inspected first; fail closed all the same.
                None => (
                    false,
                    Some(Fault {
                        status: StatusCode::BAD_REQUEST,
                        reason: "the request head was not inspected",
                    }),
                ),
            };
            let mut resp = p.handle(peer, req, tls, fault).await;
            if chunked {
                // The inspector stops after a chunked request: no further requests on this
                // connection.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = http1_server(&proxy)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        proxy.unreadable(peer, &e, None);
    }
}

/// The TLS host an intercepted connection serves.
#[derive(Clone)]
struct Intercepted {
    host: String,
    port: u16,
}

impl Proxy {
    fn now_text(&self, now: jiff::Timestamp, snap: &PolicySnapshot) -> String {
        now.to_zoned(snap.timezone().clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    /// The guard that records this request's access event, whatever ends it: created first
    /// thing for every request, so no exit goes unrecorded.
    fn log(&self, peer: SocketAddr, req: &Request<Incoming>, tls: Option<&Intercepted>) -> Logged {
        let target = match tls {
            Some(t) => format!("https://{}{}", t.host, req.uri()),
            None => req.uri().to_string(),
        };
        let mut e = AccessEvent::new(
            self.clock.now(),
            Front::Proxy,
            canonical_ip(peer.ip()),
            target,
        );
        e.method = Some(method_name(req.method()));
        Logged::new(self.sink.clone(), e)
    }

    /// Records a request hyper could not read (it answers 400 or 431 itself, and the service
    /// never sees the request). Other connection errors (a client gone, a timeout waiting for
    /// a head) end no request.
    fn unreadable(&self, peer: SocketAddr, e: &hyper::Error, tls: Option<&Intercepted>) {
        tracing::debug!(client = %peer, "proxy connection: {e}");
        if !e.is_parse() {
            return;
        }
        let target = tls.map_or_else(String::new, |t| format!("https://{}", t.host));
        let event = AccessEvent::new(
            self.clock.now(),
            Front::Proxy,
            canonical_ip(peer.ip()),
            target,
        );
        Logged::new(self.sink.clone(), event).end(Outcome::Invalid);
    }

    /// Boxed with an explicit `Send`: the CONNECT path spawns tunnels that serve intercepted
    /// requests through this same function, a cycle the compiler cannot prove `Send` itself.
    fn handle(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
        tls: Option<Intercepted>,
        fault: Option<Fault>,
    ) -> Pin<Box<dyn Future<Output = Response<Out>> + Send>> {
        Box::pin(self.handle_inner(peer, req, tls, fault))
    }

    /// One request. `fault`: the inspector (`framing.rs`) refused its framing: a smuggling
    /// shape or anything two parsers could read two ways. It is refused here, recorded as
    /// invalid, and the connection closes before any byte reaches an origin.
    async fn handle_inner(
        self: Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
        tls: Option<Intercepted>,
        fault: Option<Fault>,
    ) -> Response<Out> {
        let mut log = self.log(peer, &req, tls.as_ref());
        if let Some(f) = fault {
            log.end(Outcome::Invalid);
            return refuse(f);
        }
        let origin_form = req.uri().authority().is_none();
        if tls.is_none() && req.method() != Method::CONNECT && origin_form {
            return self.local(&req, log);
        }
        let snap = self.policy.snapshot();
        let Some(who) = snap.client(canonical_ip(peer.ip()), None) else {
            log.end(Outcome::Refused);
            return text(
                StatusCode::FORBIDDEN,
                "this proxy serves the school's network only",
            );
        };
        log.group = Some(who.group_arc.clone());
        if let Some(d) = who.device {
            log.device = Some(Arc::from(d.name.as_str()));
            log.user = d.user.as_deref().map(Arc::from);
        }
        match self.authenticate(&req) {
            Ok(Some(user)) => log.user = Some(user),
            Ok(None) => {}
            Err(resp) => {
                log.end(Outcome::Refused);
                return *resp;
            }
        }
        if req.method() == Method::CONNECT {
            if tls.is_some() {
                log.end(Outcome::Invalid);
                return bad_request("CONNECT inside an intercepted connection");
            }
            return self.connect(peer, req, &snap, &who, log).await;
        }
        self.http(req, &snap, &who, tls, log).await
    }

    /// Origin-form requests to the proxy itself: the PAC and WPAD files, which are not
    /// accesses and are not recorded; anything else is a malformed proxy request.
    fn local(&self, req: &Request<Incoming>, log: Logged) -> Response<Out> {
        match req.uri().path() {
            "/proxy.pac" | "/wpad.dat" => {
                log.dismiss();
                let live = self.live();
                let host = live.config.pac_proxy.clone().unwrap_or_else(|| {
                    req.headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_owned)
                        .or_else(|| live.config.listen.first().map(ToString::to_string))
                        .unwrap_or_default()
                });
                let pac = page::pac_for(self.policy.snapshot().config(), &host);
                full(StatusCode::OK, "application/x-ns-proxy-autoconfig", pac)
            }
            _ => {
                log.end(Outcome::Invalid);
                text(
                    StatusCode::BAD_REQUEST,
                    "this is a web proxy: configure it in the browser, or fetch /proxy.pac",
                )
            }
        }
    }

    /// The user Basic authentication proves, `None` when authentication is off, or the 407.
    fn authenticate(
        &self,
        req: &Request<Incoming>,
    ) -> Result<Option<Arc<str>>, Box<Response<Out>>> {
        let live = self.live();
        let Some(users) = &live.users else {
            return Ok(None);
        };
        let user = req
            .headers()
            .get(header::PROXY_AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            // argon2 is deliberately slow: tell the runtime this worker is busy.
            .and_then(|h| tokio::task::block_in_place(|| users.check(h)));
        user.map(Some).ok_or_else(|| {
            let mut r = text(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "sign in to use the school's web proxy",
            );
            r.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Hedgerow\""),
            );
            Box::new(r)
        })
    }

    /// Whether `ip` may be a destination: not our own listener, and not loopback,
    /// link-local, unspecified or private unless `allow_destinations` says so.
    fn destination_ok(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical_ip(ip);
        if self
            .live()
            .config
            .allow_destinations
            .iter()
            .any(|n| n.contains(&ip))
        {
            let own = self
                .own
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            return !own.iter().any(|a| {
                let own_ip = canonical_ip(a.ip());
                a.port() == port && (own_ip == ip || own_ip.is_unspecified())
            });
        }
        match ip {
            IpAddr::V4(v4) => {
                !(v4.is_loopback()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_private()
                    || v4.is_broadcast())
            }
            IpAddr::V6(v6) => {
                !(v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_unicast_link_local()
                    || v6.is_unique_local())
            }
        }
    }

    /// Resolves and checks a destination; the addresses to try, or why not: the name did not
    /// resolve ([`Outcome::Failed`]) or names an address the proxy does not reach
    /// ([`Outcome::Refused`]). A name the group's SafeSearch or YouTube mode steers
    /// ([`PolicySnapshot::steer`]) is reached at its enforcement host's addresses, as the DNS
    /// front answers it.
    async fn destination(
        &self,
        snap: &PolicySnapshot,
        group: GroupId,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, (Outcome, String)> {
        let name = match host.parse::<IpAddr>() {
            Ok(ip) => return self.checked(host, vec![ip], port),
            Err(_) => snap.steer(group, host).map_or(host, |s| s.target),
        };
        let ips = self
            .resolver
            .addresses(name)
            .await
            .map_err(|e| (Outcome::Failed, e.to_string()))?;
        self.checked(host, ips, port)
    }

    /// The SSRF check of a destination's addresses.
    fn checked(
        &self,
        host: &str,
        ips: Vec<IpAddr>,
        port: u16,
    ) -> Result<Vec<SocketAddr>, (Outcome, String)> {
        if let Some(bad) = ips.iter().find(|ip| !self.destination_ok(**ip, port)) {
            return Err((
                Outcome::Refused,
                format!("refused: {host} is {bad}, an address this proxy does not reach"),
            ));
        }
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// Search terms and their concern, for a URL.
    fn monitor(
        &self,
        snap: &PolicySnapshot,
        who: &PolicyClient<'_>,
        url: &UrlKey,
    ) -> (Option<String>, Option<Severity>) {
        let terms = search::search_terms(url.host().as_str(), url.path(), url.query());
        let concern = terms.as_deref().and_then(|t| {
            snap.phrases(who.group, t)
                .into_iter()
                .map(|p| p.severity)
                .max()
        });
        (terms, concern)
    }

    async fn http(
        self: &Arc<Self>,
        req: Request<Incoming>,
        snap: &Arc<PolicySnapshot>,
        who: &PolicyClient<'_>,
        tls: Option<Intercepted>,
        mut log: Logged,
    ) -> Response<Out> {
        let (scheme, host, port) = match &tls {
            Some(t) => ("https", t.host.clone(), t.port),
            None => {
                let uri = req.uri();
                if uri.scheme_str() != Some("http") {
                    log.end(Outcome::Invalid);
                    return bad_request(
                        "only http:// URLs are proxied this way; HTTPS uses CONNECT",
                    );
                }
                let Some(a) = uri.authority() else {
                    log.end(Outcome::Invalid);
                    return bad_request("no host in the request");
                };
                (
                    "http",
                    a.host().trim_matches(['[', ']']).to_owned(),
                    a.port_u16().unwrap_or(80),
                )
            }
        };
        let path_q = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let url_text = if port == default_port {
            format!("{scheme}://{shown_host}{path_q}")
        } else {
            format!("{scheme}://{shown_host}:{port}{path_q}")
        };
        log.target.clone_from(&url_text);
        let Ok(key) = UrlKey::parse(&url_text) else {
            log.end(Outcome::Invalid);
            return bad_request("the URL could not be read");
        };
        let now = self.clock.now();
        let verdict = snap.decide(who.group, Target::Url(&key), now);
        let (search, concern) = self.monitor(snap, who, &key);
        log.search = search.map(String::into_boxed_str);
        log.concern = concern;
        log.apply(&verdict);
        if verdict.is_blocked() {
            return self.block(log, &verdict, &url_text, snap, now);
        }
        // Steered to a SafeSearch or YouTube enforcement host: logged as DNS logs it.
        if let Some(steer) = snap.steer(who.group, &host) {
            log.apply(&steer.verdict());
        }
        let addrs = match self.destination(snap, who.group, &host, port).await {
            Ok(a) => a,
            Err((outcome, why)) => {
                log.end(outcome);
                return text(refusal_status(outcome), &why);
            }
        };
        // Wherever the proxy reads the URL (plain HTTP, or inside interception), the engine's
        // own SafeSearch parameters are set too.
        let path_q = with_parameters(&path_q, snap.search_parameters(who.group, &host));
        // The request to the origin: origin-form, hop-by-hop headers gone.
        let (mut parts, body) = req.into_parts();
        // A chunked body is read whole and checked before anything goes to the origin, then
        // sent with its length (see framing.rs); any other body is streamed. Its slot is held
        // until the origin has answered, so the bodies held at once stay few.
        let mut _slot = None;
        let body = if parts.headers.contains_key(header::TRANSFER_ENCODING) {
            match self.read_chunked(body, parts.extensions.get()).await {
                Ok((bytes, slot)) => {
                    _slot = Some(slot);
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    Full::new(bytes).map_err(|e| match e {}).boxed()
                }
                Err(f) => {
                    // A body that breaks the grammar is invalid; one too big, too slow or
                    // without a free slot is refused.
                    log.end(if f.status == StatusCode::BAD_REQUEST {
                        Outcome::Invalid
                    } else {
                        Outcome::Refused
                    });
                    return refuse(f);
                }
            }
        } else {
            body.boxed()
        };
        strip_hop_by_hop(&mut parts.headers);
        // HTTP/1.1 to the origin whatever the client spoke (ab and old clients send 1.0),
        // so the origin keeps the pooled connection open.
        parts.version = http::Version::HTTP_11;
        parts
            .headers
            .insert(header::VIA, HeaderValue::from_static("1.1 hedgerow"));
        if tls.is_some()
            && let Some(v) = snap.youtube_restrict(who.group, key.host().as_str())
        {
            parts.headers.insert(
                HeaderName::from_static("youtube-restrict"),
                HeaderValue::from_static(v),
            );
        }
        // The origin is sent the host that was decided on, whatever Host the client sent
        // (RFC 9112 §3.2.2): on a shared origin a client cannot have one site decided and
        // another served. Inside interception that host is the TLS server name.
        let Ok(host_header) = HeaderValue::from_str(&if port == default_port {
            shown_host.clone()
        } else {
            format!("{shown_host}:{port}")
        }) else {
            return bad_request("the host could not be written as a Host header");
        };
        parts.headers.insert(header::HOST, host_header);
        parts.uri = match Uri::try_from(path_q.as_str()) {
            Ok(u) => u,
            Err(_) => {
                log.end(Outcome::Invalid);
                return bad_request("the request target could not be read");
            }
        };
        let out = Request::from_parts(parts, body);
        let result = match &tls {
            None => self.forward_plain(&addrs, out).await,
            Some(t) => self.forward_tls(&addrs, &t.host, out).await,
        };
        match result {
            Ok((mut resp, pooled)) => {
                strip_hop_by_hop(resp.headers_mut());
                let (parts, body) = resp.into_parts();
                let expected = parts
                    .headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                // Recorded when the body ends, with its bytes.
                log.outcome = Outcome::Forwarded;
                let counted = Counted {
                    inner: body,
                    bytes: 0,
                    expected,
                    log: Some(log),
                    pooled: pooled.map(|p| (self.clone(), p)),
                };
                Response::from_parts(parts, counted.boxed())
            }
            Err(why) => {
                log.end(Outcome::Failed);
                text(
                    StatusCode::BAD_GATEWAY,
                    &format!("the site did not answer: {why}"),
                )
            }
        }
    }

    /// A chunked request body, whole ([`framing::read_chunked`]), and the slot it holds: at
    /// most [`crate::CHUNKED_AT_ONCE`] are held at once, so that their memory stays bounded.
    async fn read_chunked(
        &self,
        body: Incoming,
        watch: Option<&framing::Watch>,
    ) -> Result<(Bytes, tokio::sync::SemaphorePermit<'_>), Fault> {
        let live = self.live();
        let wait = live.config.idle_timeout;
        let busy = Fault {
            status: StatusCode::SERVICE_UNAVAILABLE,
            reason: "too many chunked uploads at once; try again",
        };
        let Ok(Ok(slot)) = tokio::time::timeout(wait, self.chunked_slots.acquire()).await else {
            return Err(busy);
        };
        let bytes = framing::read_chunked(body, watch, live.config.max_chunked_body, wait).await?;
        Ok((bytes, slot))
    }

    fn block(
        &self,
        mut log: Logged,
        verdict: &Verdict,
        url: &str,
        snap: &PolicySnapshot,
        now: jiff::Timestamp,
    ) -> Response<Out> {
        let reference: u64 = rand::random();
        log.reference = Some(reference);
        log.end(Outcome::Blocked);
        let html = page::block_page(
            url,
            verdict,
            &self.now_text(now, snap),
            reference,
            &self.live().config.review_contact,
        );
        full(StatusCode::FORBIDDEN, "text/html; charset=utf-8", html)
    }

    async fn forward_plain(
        &self,
        addrs: &[SocketAddr],
        req: Request<Out>,
    ) -> Result<(Response<Incoming>, Option<Pooled>), String> {
        let addr = *addrs.first().ok_or("no address")?;
        let mut sender = match self.client.take(addr) {
            Some(s) => s,
            None => {
                let stream = self.dial(addrs).await?;
                let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                s
            }
        };
        sender.ready().await.map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        Ok((resp, Some((addr, sender))))
    }

    async fn forward_tls(
        &self,
        addrs: &[SocketAddr],
        host: &str,
        req: Request<Out>,
    ) -> Result<(Response<Incoming>, Option<Pooled>), String> {
        let stream = self.dial(addrs).await?;
        let name =
            rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(self.live().origin_tls.clone())
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS to the origin: {e}"))?;
        let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let resp = s.send_request(req).await.map_err(|e| e.to_string())?;
        Ok((resp, None))
    }

    async fn dial(&self, addrs: &[SocketAddr]) -> Result<TcpStream, String> {
        let mut last = String::from("no address");
        let connect_timeout = self.live().config.connect_timeout;
        for a in addrs {
            match tokio::time::timeout(connect_timeout, TcpStream::connect(a)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Ok(Err(e)) => last = format!("{a}: {e}"),
                Err(_) => last = format!("{a}: timed out"),
            }
        }
        Err(last)
    }

    async fn connect(
        self: &Arc<Self>,
        peer: SocketAddr,
        req: Request<Incoming>,
        snap: &Arc<PolicySnapshot>,
        who: &PolicyClient<'_>,
        mut log: Logged,
    ) -> Response<Out> {
        let Some(auth) = req.uri().authority().cloned() else {
            log.end(Outcome::Invalid);
            return bad_request("CONNECT needs host:port");
        };
        let host_text = auth.host().trim_matches(['[', ']']).to_owned();
        let port = auth.port_u16().unwrap_or(443);
        log.target = format!("{host_text}:{port}");
        let refuse = |log: Logged, outcome: Outcome, why: &str| {
            log.end(outcome);
            text(refusal_status(outcome), why)
        };
        let live = self.live();
        if !live.config.connect_ports.contains(&port) {
            let why = format!("CONNECT to port {port} is not allowed");
            return refuse(log, Outcome::Refused, &why);
        }
        let Ok(host) = Host::parse(&host_text) else {
            return refuse(log, Outcome::Invalid, "CONNECT to an unreadable host");
        };
        let now = self.clock.now();
        let verdict = snap.decide(who.group, Target::Host(&host), now);
        log.apply(&verdict);
        if verdict.is_blocked() {
            return refuse(log, Outcome::Blocked, "blocked by the school's web filter");
        }
        if let Some(steer) = snap.steer(who.group, host.as_str()) {
            log.apply(&steer.verdict());
        }
        let addrs = match self.destination(snap, who.group, host.as_str(), port).await {
            Ok(a) => a,
            Err((outcome, why)) => return refuse(log, outcome, &why),
        };
        let proxy = self.clone();
        let snap = snap.clone();
        let group = who.group;
        self.spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(up) => {
                    let t = Tunnel {
                        proxy,
                        snap,
                        group,
                        peer,
                        host,
                        port,
                        addrs,
                    };
                    t.run(TokioIo::new(up), log).await;
                }
                // The client went away after the 200: `log` records the CONNECT as failed.
                Err(e) => tracing::debug!("CONNECT upgrade: {e}"),
            }
        });
        let mut r = Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed());
        *r.status_mut() = StatusCode::OK;
        r
    }
}

struct Tunnel {
    proxy: Arc<Proxy>,
    snap: Arc<PolicySnapshot>,
    group: GroupId,
    peer: SocketAddr,
    host: Host,
    port: u16,
    addrs: Vec<SocketAddr>,
}

impl Tunnel {
    /// The tunnel, recorded (through `log`) when it ends: closed for a circumvention shape
    /// or a blocked SNI, or after it carried the connection (bytes from the origin counted).
    async fn run<S>(self, mut client: S, mut log: Logged)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let p = &self.proxy;
        // Read the ClientHello.
        let mut buf = Vec::with_capacity(2048);
        let hello = loop {
            match parse_hello(&buf) {
                Ok(h) => break Ok(h),
                Err(HelloError::NotTls) => break Err("not TLS"),
                Err(HelloError::Short) if buf.len() >= HELLO_LIMIT => {
                    break Err("ClientHello too long");
                }
                Err(HelloError::Short) => {}
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(HELLO_TIMEOUT, client.read(&mut chunk)).await {
                // The client went away before its ClientHello: recorded as failed.
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
                Err(_) => break Err("no ClientHello in time"),
            }
        };
        let refuse = |mut log: Logged, why: &str| {
            // The event's target, not the host: an illegal-tier match has withheld it.
            tracing::info!(client = %self.peer, target = %log.target, "CONNECT refused: {why}");
            // A circumvention shape is blocked whatever the host's verdict; a blocked SNI
            // keeps the policy's verdict.
            if log.rule.is_none() {
                log.action = hedgerow_model::Action::Block;
                log.tier = Tier::Circumvention;
                log.rule = Some(Arc::from(why));
            }
            log.end(Outcome::Blocked);
        };
        let hello = match hello {
            Ok(h) => h,
            Err(why) => return refuse(log, why),
        };
        let now = p.clock.now();
        match &hello.sni {
            None if self.host.is_ip() => {
                return refuse(log, "no SNI on a CONNECT to an IP address");
            }
            None => {}
            Some(sni) => {
                let Ok(sni_host) = Host::parse(sni) else {
                    return refuse(log, "unreadable SNI");
                };
                if !self.host.is_ip() && sni_host != self.host {
                    return refuse(log, "SNI differs from the CONNECT host");
                }
                let v = self.snap.decide(self.group, Target::Host(&sni_host), now);
                if v.is_blocked() {
                    // The target first: the verdict may hide it (the illegal tier).
                    log.target = format!("{sni}:{}", self.port);
                    log.apply(&v);
                    return refuse(log, "blocked SNI");
                }
            }
        }
        if hello.ech && self.snap.filters(self.group) {
            return refuse(log, "Encrypted Client Hello hides the site from the filter");
        }
        let name = hello
            .sni
            .clone()
            .unwrap_or_else(|| self.host.as_str().to_owned());
        // Whether to intercept is the policy's (the group, never_intercept, and hosts with
        // URL-level illegal-tier entries, intercepted for every group so those apply inside
        // TLS); the proxy can only if it has the school CA.
        let intercept = p.live().minter.is_some()
            && hello.sni.is_some()
            && Host::parse(&name)
                .is_ok_and(|h| self.snap.interception(self.group, &h) != Interception::No);
        if intercept {
            return self.intercepted(client, buf, name, log).await;
        }
        // Pass through.
        let mut upstream = match p.dial(&self.addrs).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("CONNECT dial: {e}");
                return log.end(Outcome::Failed);
            }
        };
        if upstream.write_all(&buf).await.is_err() {
            return log.end(Outcome::Failed);
        }
        log.outcome = Outcome::Forwarded;
        let copied = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        if let Ok((_, down)) = copied {
            log.bytes = down;
        }
    }

    /// Serves the tunnel's requests decrypted, each recorded as a request of its own. The
    /// CONNECT itself is recorded when the connection ends: forwarded once the handshake
    /// with the client succeeded (bytes are counted on the requests), failed otherwise.
    async fn intercepted<S>(self, client: S, hello: Vec<u8>, name: String, mut log: Logged)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let p = self.proxy.clone();
        let live = p.live();
        let Some(minter) = live.minter.as_ref() else {
            return;
        };
        let config = match minter.server_config(&name) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("interception: {e}");
                return;
            }
        };
        let stream = Prefixed {
            prefix: hello,
            pos: 0,
            inner: client,
        };
        let tls = match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(host = %name, "interception handshake: {e}");
                return;
            }
        };
        log.outcome = Outcome::Forwarded;
        let target = Intercepted {
            host: name,
            port: self.port,
        };
        serve_http1(p, tls, self.peer, Some(target)).await;
    }
}

/// Writes go straight to `inner`: the wrappers below only look at what is read.
macro_rules! delegate_write {
    ($t:ident) => {
        impl<S: AsyncWrite + Unpin> AsyncWrite for $t<S> {
            fn poll_write(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<std::io::Result<usize>> {
                Pin::new(&mut self.inner).poll_write(cx, buf)
            }
            fn poll_flush(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.inner).poll_flush(cx)
            }
            fn poll_shutdown(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<std::io::Result<()>> {
                Pin::new(&mut self.inner).poll_shutdown(cx)
            }
        }
    };
}

/// A stream that yields `prefix` before reading `inner` (the ClientHello already read).
struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let rest = self.prefix.get(self.pos..).unwrap_or_default();
            let n = rest.len().min(buf.remaining());
            buf.put_slice(rest.get(..n).unwrap_or_default());
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

delegate_write!(Prefixed);

/// An origin connection lent to one response.
type Pooled = (SocketAddr, hyper::client::conn::http1::SendRequest<Out>);

/// A response body that counts what it passes, records the access event when it ends, and
/// gives the origin connection back to the pool when the body was read to its end.
struct Counted {
    inner: Incoming,
    bytes: u64,
    /// The response's Content-Length: the server stops reading once it has that many bytes,
    /// so reaching it counts as the end even before the body says so.
    expected: Option<u64>,
    log: Option<Logged>,
    pooled: Option<(Arc<Proxy>, Pooled)>,
}

impl Counted {
    fn finish(&mut self, complete: bool) {
        if let Some(mut log) = self.log.take() {
            log.bytes = self.bytes;
        }
        if let Some((proxy, (addr, sender))) = self.pooled.take()
            && complete
        {
            proxy.client.put(addr, sender);
        }
    }
}

impl Body for Counted {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    self.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Ready(Some(Err(_))) => self.finish(false),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream() || self.expected.is_some_and(|n| self.bytes >= n);
        self.finish(complete);
    }
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        h.remove(n);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

/// `path_q` (a path and query) with each of `params` set: an existing value replaced, a
/// missing one added. Other parameters keep their order and spelling.
fn with_parameters(path_q: &str, params: &[(&str, &str)]) -> String {
    if params.is_empty() {
        return path_q.to_owned();
    }
    let (path, query) = path_q.split_once('?').unwrap_or((path_q, ""));
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            // The key as the engine reads it (`saf%65` is `safe`).
            let key = url::form_urlencoded::parse(p.as_bytes()).next();
            !key.is_some_and(|(key, _)| params.iter().any(|(k, _)| *k == key))
        })
        .map(str::to_owned)
        .collect();
    parts.extend(params.iter().map(|(k, v)| format!("{k}={v}")));
    format!("{path}?{}", parts.join("&"))
}

/// The status of a response that ends a request with `outcome` before it reached the origin:
/// 502 when the destination's name did not resolve, else 403.
fn refusal_status(outcome: Outcome) -> StatusCode {
    match outcome {
        Outcome::Failed => StatusCode::BAD_GATEWAY,
        _ => StatusCode::FORBIDDEN,
    }
}

fn method_name(m: &Method) -> std::borrow::Cow<'static, str> {
    match *m {
        Method::GET => "GET".into(),
        Method::POST => "POST".into(),
        Method::HEAD => "HEAD".into(),
        Method::PUT => "PUT".into(),
        Method::CONNECT => "CONNECT".into(),
        ref other => other.as_str().to_owned().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(decode_base64("cHVwaWw6c2VjcmV0").unwrap(), b"pupil:secret");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert!(decode_base64("!!!").is_none());
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::ACCEPT));
    }

    #[test]
    fn parameters_are_set_replaced_and_kept() {
        let safe = [("safe", "active")];
        assert_eq!(
            with_parameters("/search?q=cats", &safe),
            "/search?q=cats&safe=active"
        );
        assert_eq!(
            with_parameters("/search?safe=off&q=cats", &safe),
            "/search?q=cats&safe=active"
        );
        assert_eq!(
            with_parameters("/search?saf%65=off&q=a+b", &safe),
            "/search?q=a+b&safe=active"
        );
        assert_eq!(with_parameters("/", &[("kp", "1")]), "/?kp=1");
        assert_eq!(with_parameters("/search?q=x", &[]), "/search?q=x");
    }
}
