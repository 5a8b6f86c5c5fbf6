//! The block page server: the web server on the block page's address, for browsers that a
//! DNS block (`dns_block = "blockpage"`) sent there.
//!
//! A blocked name resolves to `blockpage_ipv4`/`blockpage_ipv6`, so the browser asks this
//! server for `http://blocked.example/…` (or `https://…`). The server finds the DNS block
//! that sent it, by the client's address and the `Host` header, in the [`BlockNotes`] the DNS
//! front keeps, and shows the category, the time and the reference of that query's access
//! event, with a form to ask for a review. When no block is noted (the note was pushed out,
//! the appliance restarted, the client asked through another resolver), it asks the policy
//! itself, and if the name is blocked for the client's group it records the request as an
//! access event of its own (front `proxy`, the URL asked for) whose reference the page shows.
//!
//! - `GET /review/REF`: the status of review request `REF`; `GET /review?ref=REF` goes there.
//! - `POST /review` (the form): stores a review request in the log store, keyed by the
//!   reference, with what was blocked taken from the noted block (or the policy), never from
//!   the form; answers with a redirect to its status page.
//! - Anything else: the block page for the `Host` asked for.
//!
//! HTTPS (`tls_listen`) needs the school CA: the ClientHello's name is minted a certificate
//! only when the name is blocked for that client (noted, or blocked by the policy now), so
//! the server is no certificate oracle for other names; other handshakes are dropped.
//! Clients outside every group's networks are refused, as by the proxy.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hedgerow_config::BlockPageConfig;
use hedgerow_model::{
    AccessEvent, BlockNote, BlockNotes, Clock, EventSink, Front, Host, Outcome, Tier, Verdict,
};
use hedgerow_policy::{PolicyHandle, PolicySnapshot, Target, canonical_ip};
use hedgerow_store::{ReviewRequest, ReviewStatus, Store};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::access::Logged;
use crate::conns::ClientConns;
use crate::{ProxyError, page, tls};

type Body = Full<Bytes>;

/// Connections one client may hold open at once. A browser opens six per host; a page with
/// its favicon and a review form needs two or three. More is a script or a loop.
const MAX_CONNECTIONS_PER_CLIENT: usize = 32;

/// Largest review form accepted.
const FORM_LIMIT: usize = 16 * 1024;
/// Longest reason and name kept, in characters.
const REASON_CHARS: usize = 2000;
const NAME_CHARS: usize = 100;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The block page server's listeners, bound.
pub struct BlockPageListeners {
    /// Plain HTTP.
    pub plain: Vec<TcpListener>,
    /// HTTPS, with certificates minted from the school CA.
    pub tls: Vec<TcpListener>,
}

/// The block page server's shared state.
pub struct BlockPages {
    policy: Arc<PolicyHandle>,
    sink: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    notes: Arc<BlockNotes>,
    store: Arc<Store>,
    minter: Option<tls::Minter>,
    config: BlockPageConfig,
    conns: Arc<ClientConns>,
}

impl std::fmt::Debug for BlockPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockPages")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BlockPages {
    /// Builds the server from the policy's `[blockpage]` section; reads the school CA when
    /// HTTPS listeners are configured.
    pub fn new(
        policy: Arc<PolicyHandle>,
        sink: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
        notes: Arc<BlockNotes>,
        store: Arc<Store>,
    ) -> Result<Arc<Self>, ProxyError> {
        let snap = policy.snapshot();
        let config = snap
            .config()
            .blockpage
            .clone()
            .ok_or(ProxyError::NoBlockPage)?;
        let minter = match snap.config().proxy.as_ref() {
            Some(p) if !config.tls_listen.is_empty() => match (&p.ca_cert, &p.ca_key) {
                (Some(c), Some(k)) => Some(tls::Minter::load(c, k)?),
                _ => None,
            },
            _ => None,
        };
        Ok(Arc::new(Self {
            policy,
            sink,
            clock,
            notes,
            store,
            minter,
            config,
            conns: Arc::default(),
        }))
    }

    /// Binds every configured listener.
    pub async fn bind(&self) -> Result<BlockPageListeners, ProxyError> {
        async fn all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, ProxyError> {
            let mut out = Vec::new();
            for addr in addrs {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|source| ProxyError::Bind {
                        addr: *addr,
                        source,
                    })?;
                out.push(l);
            }
            Ok(out)
        }
        Ok(BlockPageListeners {
            plain: all(&self.config.listen).await?,
            tls: all(if self.minter.is_some() {
                &self.config.tls_listen
            } else {
                &[]
            })
            .await?,
        })
    }

    /// Serves on the listeners until the returned tasks are aborted.
    pub fn start(
        self: &Arc<Self>,
        listeners: BlockPageListeners,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let plain = listeners
            .plain
            .into_iter()
            .map(|l| tokio::spawn(self.clone().accept_loop(l, false)));
        let tls = listeners
            .tls
            .into_iter()
            .map(|l| tokio::spawn(self.clone().accept_loop(l, true)));
        plain.chain(tls).collect()
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, tls: bool) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("block page accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = self.conns.admit(peer.ip(), MAX_CONNECTIONS_PER_CLIENT) else {
                tracing::warn!(client = %peer.ip(), "block page: too many connections from one client; refused");
                continue;
            };
            let local = stream.local_addr().ok();
            let me = self.clone();
            tokio::spawn(async move {
                if tls {
                    me.serve_tls(stream, peer, local).await;
                } else {
                    me.serve(TokioIo::new(stream), peer, false).await;
                }
                drop(slot);
            });
        }
    }

    async fn serve<S>(self: Arc<Self>, io: TokioIo<S>, peer: SocketAddr, https: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let me = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let me = me.clone();
            async move { Ok::<_, Infallible>(me.handle(req, peer, https).await) }
        });
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(TokioTimer::new())
            .header_read_timeout(HEAD_TIMEOUT)
            .keep_alive(true);
        if let Err(e) = b.serve_connection(io, service).await {
            tracing::debug!(client = %peer, "block page connection: {e}");
        }
    }

    /// A TLS connection: reads the ClientHello, mints a certificate for its name only if the
    /// name is blocked for this client, then serves HTTP inside.
    async fn serve_tls(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        local: Option<SocketAddr>,
    ) {
        let Some(minter) = self.minter.as_ref() else {
            return;
        };
        let acceptor =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let start = match tokio::time::timeout(HELLO_TIMEOUT, acceptor).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(client = %peer, "block page TLS: {e}");
                return;
            }
            Err(_) => return,
        };
        let name = match start.client_hello().server_name() {
            Some(n) => n.to_ascii_lowercase(),
            None => match local {
                Some(l) => canonical_ip(l.ip()).to_string(),
                None => return,
            },
        };
        let client = canonical_ip(peer.ip());
        if !self.mint_for(client, &name) {
            tracing::debug!(client = %peer, "block page TLS: not blocked for this client; no certificate");
            return;
        }
        let config = match minter.server_config(&name) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("block page TLS: {e}");
                return;
            }
        };
        match start.into_stream(config).await {
            Ok(tls) => self.clone().serve(TokioIo::new(tls), peer, true).await,
            Err(e) => tracing::debug!(client = %peer, "block page TLS handshake: {e}"),
        }
    }

    /// Whether to present a certificate for `name` to `client`: the name is blocked for it
    /// (a noted DNS block, or the policy blocks it now), or it is the server's own address.
    fn mint_for(&self, client: IpAddr, name: &str) -> bool {
        let Ok(host) = Host::parse(name) else {
            return false;
        };
        if host.is_ip() {
            return true;
        }
        if self.notes.find(client, host.as_str()).is_some() {
            return true;
        }
        let snap = self.policy.snapshot();
        snap.client(client, None).is_some_and(|who| {
            snap.decide(who.group, Target::Host(&host), self.clock.now())
                .is_blocked()
        })
    }

    fn time_text(&self, t: jiff::Timestamp, snap: &PolicySnapshot) -> String {
        t.to_zoned(snap.timezone().clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string()
    }

    fn review_contact(snap: &PolicySnapshot) -> String {
        snap.config().proxy.as_ref().map_or_else(
            || "ask your teacher or the school's IT office".to_owned(),
            |p| p.review_contact.clone(),
        )
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        https: bool,
    ) -> Response<Body> {
        let client = canonical_ip(peer.ip());
        let snap = self.policy.snapshot();
        if snap.client(client, None).is_none() {
            return text(
                StatusCode::FORBIDDEN,
                "this page serves the school's network only",
            );
        }
        let path = req.uri().path().to_owned();
        match (req.method().clone(), path.as_str()) {
            (Method::POST, "/review") => self.submit(req, client, &snap).await,
            (Method::GET | Method::HEAD, "/review") => {
                let reference = req
                    .uri()
                    .query()
                    .and_then(|q| {
                        url::form_urlencoded::parse(q.as_bytes())
                            .find(|(k, _)| k == "ref")
                            .map(|(_, v)| v.trim().to_owned())
                    })
                    .and_then(|r| parse_reference(&r));
                match reference {
                    Some(r) => see_other(&format!("/review/{}", page::reference_text(r))),
                    None => html(
                        StatusCode::BAD_REQUEST,
                        page::message(
                            "No such reference",
                            "A reference is the 16 letters and digits shown on the block page.",
                        ),
                    ),
                }
            }
            (Method::GET | Method::HEAD, p) if p.starts_with("/review/") => {
                self.status(p.trim_start_matches("/review/"), &snap).await
            }
            (Method::GET | Method::HEAD, "/favicon.ico") => text(StatusCode::NOT_FOUND, "no icon"),
            (Method::GET | Method::HEAD, _) => self.page(&req, client, https, &snap),
            _ => text(
                StatusCode::METHOD_NOT_ALLOWED,
                "this is the school's block page",
            ),
        }
    }

    /// The host the request was for: the `Host` header (or an absolute URI's host).
    fn host_of(req: &Request<Incoming>) -> Option<Host> {
        let raw = req.uri().host().map(str::to_owned).or_else(|| {
            let h = req.headers().get(header::HOST)?.to_str().ok()?;
            let h = h.trim();
            let host = match h.strip_prefix('[') {
                Some(rest) => rest.split(']').next().unwrap_or_default(),
                None => h.rsplit_once(':').map_or(h, |(host, port)| {
                    if port.bytes().all(|b| b.is_ascii_digit()) {
                        host
                    } else {
                        h
                    }
                }),
            };
            Some(host.to_owned())
        })?;
        Host::parse(raw.trim_matches(['[', ']'])).ok()
    }

    /// The block page for the host asked for.
    fn page(
        &self,
        req: &Request<Incoming>,
        client: IpAddr,
        https: bool,
        snap: &PolicySnapshot,
    ) -> Response<Body> {
        let Some(host) = Self::host_of(req).filter(|h| !h.is_ip()) else {
            return html(
                StatusCode::OK,
                page::message(
                    "The school's web filter",
                    "This is where the school's web filter explains what it blocked.",
                ),
            );
        };
        let scheme = if https { "https" } else { "http" };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{scheme}://{}{path}", host.as_str());
        let note = match self.notes.find(client, host.as_str()) {
            Some(n) => n,
            None => match self.block_now(req, client, &host, &url, snap) {
                Some(n) => n,
                None => {
                    return html(
                        StatusCode::OK,
                        page::message(
                            "This address is not blocked now",
                            &format!(
                                "{} is not blocked for you now. Your browser was sent here because it was blocked a little while ago: try again in a minute.",
                                host.as_str()
                            ),
                        ),
                    );
                }
            },
        };
        let body = page::page_with(
            &url,
            &note.verdict,
            &self.time_text(note.time, snap),
            note.reference,
            &Self::review_contact(snap),
            &page::review_form(note.reference),
        );
        html(StatusCode::FORBIDDEN, body)
    }

    /// No DNS block is noted: asks the policy, and if the host is blocked for the client's
    /// group, records the request as an access event of its own and notes it.
    fn block_now(
        &self,
        req: &Request<Incoming>,
        client: IpAddr,
        host: &Host,
        url: &str,
        snap: &PolicySnapshot,
    ) -> Option<BlockNote> {
        let who = snap.client(client, None)?;
        let now = self.clock.now();
        let verdict = snap.decide(who.group, Target::Host(host), now);
        if !verdict.is_blocked() {
            return None;
        }
        let reference = self
            .notes
            .note(client, host.as_str(), now, &verdict, rand::random());
        let mut event = AccessEvent::new(now, Front::Proxy, client, url.to_owned());
        event.method = Some(req.method().as_str().to_owned().into());
        event.group = Some(who.group_arc.clone());
        if let Some(d) = who.device {
            event.device = Some(Arc::from(d.name.as_str()));
            event.user = d.user.as_deref().map(Arc::from);
        }
        let mut log = Logged::new(self.sink.clone(), event);
        log.apply(&verdict);
        log.reference = Some(reference);
        log.end(Outcome::Blocked);
        self.notes.by_reference(reference)
    }

    /// `POST /review`: stores a review request, then sends the browser to its status.
    async fn submit(
        &self,
        req: Request<Incoming>,
        client: IpAddr,
        snap: &PolicySnapshot,
    ) -> Response<Body> {
        let host = Self::host_of(&req);
        let body = match Limited::new(req.into_body(), FORM_LIMIT).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "the request is too long"),
        };
        let mut reference = None;
        let mut reason = String::new();
        let mut name = String::new();
        for (k, v) in url::form_urlencoded::parse(&body) {
            match &*k {
                "reference" => reference = parse_reference(v.trim()),
                "reason" => reason = v.trim().chars().take(REASON_CHARS).collect(),
                "name" => name = v.trim().chars().take(NAME_CHARS).collect(),
                _ => {}
            }
        }
        let Some(reference) = reference else {
            return html(
                StatusCode::BAD_REQUEST,
                page::message("No reference", "The request names no block page reference."),
            );
        };
        if reason.is_empty() {
            return html(
                StatusCode::BAD_REQUEST,
                page::message(
                    "Say why you need the page",
                    "Go back and write why you need this page, so the school can review it.",
                ),
            );
        }
        let who = snap.client(client, None);
        // What was blocked comes from the noted block, or failing that from the policy:
        // never from the form.
        let (blocked, verdict, target) = match self.notes.by_reference(reference) {
            Some(n) => {
                let target = n.host.clone().unwrap_or_else(|| protected(&n.verdict));
                (Some(n.time), n.verdict, target)
            }
            None => {
                let v = match (&who, &host) {
                    (Some(w), Some(h)) => snap.decide(w.group, Target::Host(h), self.clock.now()),
                    _ => Verdict::default_allow(),
                };
                let target = if v.tier == Tier::Illegal {
                    protected(&v)
                } else {
                    host.as_ref()
                        .map_or_else(String::new, |h| h.as_str().to_owned())
                };
                (None, v, target)
            }
        };
        let request = ReviewRequest {
            reference,
            asked: self.clock.now(),
            blocked,
            client,
            device: who.and_then(|w| w.device).map(|d| d.name.clone()),
            user: who.and_then(|w| w.device).and_then(|d| d.user.clone()),
            group: who.map(|w| w.group_name.to_owned()),
            target,
            tier: verdict.tier,
            category: verdict.category.clone(),
            rule: verdict.rule.as_deref().map(str::to_owned),
            reason,
            name: (!name.is_empty()).then_some(name),
            status: ReviewStatus::Pending,
            decided: None,
            decided_by: None,
            note: None,
            change: None,
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.add_review(&request)).await {
            Ok(Ok((r, added))) => {
                if added {
                    tracing::info!(reference = %page::reference_text(r.reference), "review requested");
                }
                see_other(&format!("/review/{}", page::reference_text(r.reference)))
            }
            Ok(Err(e)) => {
                tracing::error!("storing a review request: {e}");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request could not be stored; ask your teacher",
                )
            }
            Err(e) => {
                tracing::error!("storing a review request: {e}");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request could not be stored; ask your teacher",
                )
            }
        }
    }

    /// `GET /review/REF`: how a review request is going.
    async fn status(&self, reference: &str, snap: &PolicySnapshot) -> Response<Body> {
        let not_found = || {
            html(
                StatusCode::NOT_FOUND,
                page::message(
                    "No such review request",
                    "There is no review request with that reference. Check it against the block page.",
                ),
            )
        };
        let Some(reference) = parse_reference(reference) else {
            return not_found();
        };
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.review(reference)).await {
            Ok(Ok(Some(r))) => html(
                StatusCode::OK,
                page::review_status(
                    r.reference,
                    &r.target,
                    r.status.as_str(),
                    &self.time_text(r.asked, snap),
                    r.note.as_deref(),
                ),
            ),
            Ok(Ok(None)) => not_found(),
            Ok(Err(e)) => {
                tracing::error!("reading a review request: {e}");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request could not be read",
                )
            }
            Err(e) => {
                tracing::error!("reading a review request: {e}");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request could not be read",
                )
            }
        }
    }
}

/// What an illegal-tier request shows instead of the address: its protected rule.
fn protected(v: &Verdict) -> String {
    v.rule
        .as_deref()
        .unwrap_or(hedgerow_model::PROTECTED_RULE)
        .to_owned()
}

/// A reference as shown on a block page: 16 hex digits (fewer are accepted).
fn parse_reference(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    respond(status, "text/html; charset=utf-8", body)
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", format!("{body}\n"))
}

fn see_other(location: &str) -> Response<Body> {
    let mut r = text(StatusCode::SEE_OTHER, "see the status of your request");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_as_shown() {
        assert_eq!(parse_reference("00000000000000ff"), Some(255));
        assert_eq!(parse_reference("ff"), Some(255));
        assert_eq!(parse_reference(""), None);
        assert_eq!(parse_reference("0000000000000000f"), None);
        assert_eq!(parse_reference("nothex"), None);
    }
}
