//! Sends the probes over the wire, as a device in each group would, and reads what came back.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::probes::{Action, Expect, Probe, ProbeSet, Via};
use crate::result::{CheckResult, ProbeResult};
use crate::{CheckError, tls};

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "outcome", content = "detail")]
pub enum Outcome {
    Blocked(String),
    Allowed(String),
    Steered(String),
    /// A TLS tunnel closed before the site answered.
    Closed(String),
    /// A TLS tunnel the site answered through.
    Open(String),
    /// No answer, or one that says nothing about filtering (refused, sign-in needed).
    Error(String),
}

impl Outcome {
    /// The same outcome with its detail dropped (for a target that is never shown).
    pub fn without_detail(self) -> Self {
        match self {
            Outcome::Blocked(_) => Outcome::Blocked(String::new()),
            Outcome::Allowed(_) => Outcome::Allowed(String::new()),
            Outcome::Steered(_) => Outcome::Steered(String::new()),
            Outcome::Closed(_) => Outcome::Closed(String::new()),
            Outcome::Open(_) => Outcome::Open(String::new()),
            Outcome::Error(_) => Outcome::Error(String::new()),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (word, d) = match self {
            Outcome::Blocked(d) => ("blocked", d),
            Outcome::Allowed(d) => ("allowed", d),
            Outcome::Steered(d) => ("steered", d),
            Outcome::Closed(d) => ("tunnel closed", d),
            Outcome::Open(d) => ("tunnel open", d),
            Outcome::Error(d) => ("error", d),
        };
        if d.is_empty() {
            f.write_str(word)
        } else {
            write!(f, "{word} ({d})")
        }
    }
}

/// Whether `outcome` is what `expect` asked for.
pub fn meets(expect: &Expect, outcome: &Outcome) -> bool {
    match (expect, outcome) {
        (Expect::Block, Outcome::Blocked(_)) => true,
        (Expect::Allow, Outcome::Allowed(_)) => true,
        (Expect::Steer(to), Outcome::Steered(s)) => to.iter().any(|t| s.contains(t.as_str())),
        // An engine not reachable at all (a walled garden) shows no unfiltered results either.
        (Expect::Steer(_), Outcome::Blocked(_)) => true,
        // A tunnel the proxy refused outright (403) is closed too.
        (Expect::Refuse, Outcome::Closed(_) | Outcome::Blocked(_)) => true,
        (Expect::Open, Outcome::Open(_)) => true,
        _ => false,
    }
}

/// Runs every probe of `set` against the appliance.
pub async fn run(set: &ProbeSet) -> Result<CheckResult, CheckError> {
    // Each group's address must be this machine's: say so once, not in every probe.
    for (name, g) in &set.groups {
        if let Err(e) = std::net::UdpSocket::bind(SocketAddr::new(g.source, 0)) {
            return Err(CheckError::ProbeSet {
                path: set.base.clone(),
                message: format!(
                    "group {name:?}: cannot send from {}: {e} (give this machine that address, or run the check on a device in the group's network)",
                    g.source
                ),
            });
        }
    }
    let probes = set.expand()?;
    let timeout = set.timeout().map_err(|m| CheckError::ProbeSet {
        path: set.base.clone(),
        message: m,
    })?;
    let started = jiff::Timestamp::now();
    let clock = Instant::now();
    let ctx = Arc::new(Ctx {
        proxy: set.appliance.proxy,
        blockpage: set.appliance.blockpage.clone(),
        timeout,
    });
    // Each group and path runs on its own, the group's DNS paced to the appliance's limit.
    let mut lanes: std::collections::BTreeMap<(String, Via), Vec<(usize, Probe)>> =
        Default::default();
    for (i, p) in probes.into_iter().enumerate() {
        lanes
            .entry((p.group.clone(), p.via))
            .or_default()
            .push((i, p));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for ((_, via), lane) in lanes {
        let ctx = ctx.clone();
        let parallel = set.appliance.parallel.max(1);
        let rate = if via == Via::Dns {
            set.appliance.dns_rate
        } else {
            0
        };
        tasks.spawn(async move { run_lane(ctx, lane, parallel, rate).await });
    }
    let mut results: Vec<(usize, ProbeResult)> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(v) => results.extend(v),
            Err(e) => return Err(CheckError::Internal(format!("a probe task failed: {e}"))),
        }
    }
    results.sort_by_key(|(i, _)| *i);
    let results = results.into_iter().map(|(_, r)| r).collect();
    Ok(CheckResult::from_probes(
        started,
        clock.elapsed().as_secs_f64(),
        set,
        results,
    ))
}

struct Ctx {
    proxy: Option<SocketAddr>,
    blockpage: Vec<IpAddr>,
    timeout: Duration,
}

async fn run_lane(
    ctx: Arc<Ctx>,
    lane: Vec<(usize, Probe)>,
    parallel: usize,
    rate: u32,
) -> Vec<(usize, ProbeResult)> {
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut pace = (rate > 0).then(|| {
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut tasks = tokio::task::JoinSet::new();
    for (i, probe) in lane {
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        let Ok(permit) = gate.clone().acquire_owned().await else {
            break;
        };
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let outcome = probe_once(&ctx, &probe).await;
            drop(permit);
            (i, ProbeResult::new(probe, outcome))
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(v) = r {
            out.push(v);
        }
    }
    out
}

async fn probe_once(ctx: &Ctx, p: &Probe) -> Outcome {
    // The appliance's rate limit or a lost datagram: asked again, a little later.
    let mut last = Outcome::Error("not sent".into());
    for attempt in 0..3u64 {
        last = match &p.action {
            Action::Dns(name) => dns(ctx, p.source, p.dns, name).await,
            Action::Connect(host) => match ctx.proxy {
                Some(proxy) => connect(ctx, p.source, proxy, host).await,
                None => Outcome::Error("no proxy configured".into()),
            },
            Action::Get(url) => match ctx.proxy {
                Some(proxy) => get(ctx, p.source, proxy, url).await,
                None => Outcome::Error("no proxy configured".into()),
            },
            Action::Tls {
                host,
                port,
                sni,
                ech,
            } => match ctx.proxy {
                Some(proxy) => {
                    tls_probe(ctx, p.source, proxy, host, *port, sni.as_deref(), *ech).await
                }
                None => Outcome::Error("no proxy configured".into()),
            },
        };
        match &last {
            Outcome::Error(_) => {
                tokio::time::sleep(Duration::from_millis(250 * (attempt + 1))).await;
            }
            _ => return last,
        }
    }
    last
}

fn qname(name: &str) -> Option<Name> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    Name::from_ascii(&fqdn).ok()
}

async fn dns(ctx: &Ctx, source: IpAddr, server: SocketAddr, name: &str) -> Outcome {
    let Some(qn) = qname(name) else {
        return Outcome::Error(format!("{name:?} is not a DNS name"));
    };
    let id: u16 = rand_id();
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(qn, RecordType::A));
    let Ok(bytes) = m.to_vec() else {
        return Outcome::Error("could not encode the query".into());
    };
    let exchange = async {
        let sock = UdpSocket::bind(SocketAddr::new(source, 0))
            .await
            .map_err(|e| format!("cannot send from {source}: {e}"))?;
        sock.send_to(&bytes, server)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = sock
                .recv_from(&mut buf)
                .await
                .map_err(|e| format!("receive: {e}"))?;
            if from != server {
                continue;
            }
            let reply = Message::from_vec(buf.get(..n).unwrap_or_default())
                .map_err(|e| format!("unreadable answer: {e}"))?;
            if reply.metadata.id == id {
                return Ok::<Message, String>(reply);
            }
        }
    };
    let reply = match tokio::time::timeout(ctx.timeout, exchange).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Outcome::Error(e),
        Err(_) => return Outcome::Error("no DNS answer in time".into()),
    };
    classify_dns(&reply, &ctx.blockpage)
}

/// A DNS answer, read as a device would feel it.
pub fn classify_dns(reply: &Message, blockpage: &[IpAddr]) -> Outcome {
    let ours = reply.authorities.iter().any(|r| match &r.data {
        RData::SOA(soa) => soa.mname.to_ascii().starts_with("hedgerow.invalid"),
        _ => false,
    });
    let rcode = reply.metadata.response_code;
    match rcode {
        ResponseCode::Refused => {
            return Outcome::Error("REFUSED (rate-limited, or no group)".into());
        }
        ResponseCode::ServFail => {
            // Forwarded and failed upstream: the appliance did not block it.
            return Outcome::Allowed("SERVFAIL from upstream".into());
        }
        _ => {}
    }
    if let Some(target) = reply.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(c) => Some(c.0.to_ascii().trim_end_matches('.').to_owned()),
        _ => None,
    }) && is_enforcement_host(&target)
    {
        return Outcome::Steered(target);
    }
    for r in &reply.answers {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        if ip.is_unspecified() {
            return Outcome::Blocked("0.0.0.0".into());
        }
        if blockpage.contains(&ip) {
            return Outcome::Blocked(format!("block page {ip}"));
        }
    }
    if ours && reply.answers.is_empty() {
        return Outcome::Blocked(format!("{rcode} from the appliance"));
    }
    if rcode == ResponseCode::NXDomain {
        return Outcome::Allowed("no such name upstream".into());
    }
    Outcome::Allowed(match reply.answers.len() {
        0 => "no records".into(),
        n => format!("{n} records"),
    })
}

/// The hosts search engines and YouTube serve restricted results from.
pub fn is_enforcement_host(h: &str) -> bool {
    matches!(
        h,
        "forcesafesearch.google.com"
            | "strict.bing.com"
            | "restrict.youtube.com"
            | "restrictmoderate.youtube.com"
            | "safe.duckduckgo.com"
            | "strict-safe-search.ecosia.org"
            | "safesearch.pixabay.com"
    )
}

async fn dial(ctx: &Ctx, source: IpAddr, proxy: SocketAddr) -> Result<TcpStream, String> {
    let socket = if source.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("cannot send from {source}: {e}"))?;
    tokio::time::timeout(ctx.timeout, socket.connect(proxy))
        .await
        .map_err(|_| "proxy did not accept in time".to_owned())?
        .map_err(|e| format!("proxy: {e}"))
}

/// Reads a response head (and up to 64 KiB of body when `body`): status, head, body.
async fn read_response(
    ctx: &Ctx,
    s: &mut TcpStream,
    body: bool,
) -> Result<(u16, String, String), String> {
    let mut buf = Vec::with_capacity(4096);
    let read = async {
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the proxy closed the connection".to_owned());
            }
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if buf.len() > 64 * 1024 {
                return Err("response head too long".into());
            }
        };
        let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("unreadable status line {:?}", head.lines().next()))?;
        let mut rest = buf.get(head_end..).unwrap_or_default().to_vec();
        let len = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
        let want = if body || status != 200 {
            len.unwrap_or(64 * 1024).min(64 * 1024)
        } else {
            0
        };
        while rest.len() < want {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        Ok((status, head, String::from_utf8_lossy(&rest).into_owned()))
    };
    tokio::time::timeout(ctx.timeout, read)
        .await
        .map_err(|_| "no answer from the proxy in time".to_owned())?
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// A refusal the proxy answers with a status: a block, or something that is not one.
fn refusal(status: u16, body: &str) -> Outcome {
    let lower = body.to_ascii_lowercase();
    match status {
        403 if lower.contains("block") => Outcome::Blocked("403 block".into()),
        403 => Outcome::Error(format!("403: {}", first_line(body))),
        407 => Outcome::Error("the proxy asks for a sign-in".into()),
        400 => Outcome::Error(format!("400: {}", first_line(body))),
        // The proxy let it through and could not reach the site (on a test network, the
        // name does not resolve): not a block.
        s => Outcome::Allowed(format!("{s}: {}", first_line(body))),
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(80)
        .collect()
}

async fn connect(ctx: &Ctx, source: IpAddr, proxy: SocketAddr, host: &str) -> Outcome {
    let mut s = match dial(ctx, source, proxy).await {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e),
    };
    let req = format!("CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()).await {
        return Outcome::Error(e.to_string());
    }
    match read_response(ctx, &mut s, false).await {
        Ok((200, _, _)) => Outcome::Allowed("tunnel".into()),
        Ok((status, _, body)) => refusal(status, &body),
        Err(e) => Outcome::Error(e),
    }
}

async fn get(ctx: &Ctx, source: IpAddr, proxy: SocketAddr, url: &str) -> Outcome {
    let mut s = match dial(ctx, source, proxy).await {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e),
    };
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    let req = format!(
        "GET {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hedgerow-check\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = s.write_all(req.as_bytes()).await {
        return Outcome::Error(e.to_string());
    }
    let (status, head, body) = match read_response(ctx, &mut s, true).await {
        Ok(v) => v,
        Err(e) => return Outcome::Error(e),
    };
    // A steered search: redirected to the safe form, or served it (the page or its
    // headers name the enforcement host or the safe parameter).
    let markers = [
        "safe=active",
        "forcesafesearch.google.com",
        "adlt=strict",
        "strict.bing.com",
    ];
    let location = header(&head, "location").unwrap_or_default();
    let lower = format!("{location}\n{body}").to_ascii_lowercase();
    let found: Vec<&str> = markers
        .iter()
        .copied()
        .filter(|m| lower.contains(*m))
        .collect();
    if (200..400).contains(&status) && !found.is_empty() {
        return Outcome::Steered(found.join(", "));
    }
    match status {
        200..=399 => Outcome::Allowed(status.to_string()),
        _ => refusal(status, &body),
    }
}

async fn tls_probe(
    ctx: &Ctx,
    source: IpAddr,
    proxy: SocketAddr,
    host: &str,
    port: u16,
    sni: Option<&str>,
    ech: bool,
) -> Outcome {
    let mut s = match dial(ctx, source, proxy).await {
        Ok(s) => s,
        Err(e) => return Outcome::Error(e),
    };
    let req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
    if let Err(e) = s.write_all(req.as_bytes()).await {
        return Outcome::Error(e.to_string());
    }
    match read_response(ctx, &mut s, false).await {
        Ok((200, _, _)) => {}
        Ok((status, _, body)) => return refusal(status, &body),
        Err(e) => return Outcome::Error(e),
    }
    if let Err(e) = s.write_all(&tls::client_hello(sni, ech)).await {
        return Outcome::Closed(format!("write: {e}"));
    }
    let mut b = [0u8; 512];
    match tokio::time::timeout(ctx.timeout, s.read(&mut b)).await {
        Ok(Ok(0)) => Outcome::Closed("closed before the site answered".into()),
        // 0x16: a handshake record, 0x15: an alert: either way the site answered.
        Ok(Ok(_)) if matches!(b[0], 0x15 | 0x16) => Outcome::Open("the site answered".into()),
        Ok(Ok(_)) => Outcome::Closed("the tunnel answered with something other than TLS".into()),
        Ok(Err(e)) => Outcome::Closed(e.to_string()),
        Err(_) => Outcome::Error("neither an answer nor a close in time".into()),
    }
}

fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (h.finish() & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn expectations() {
        assert!(meets(&Expect::Block, &Outcome::Blocked(String::new())));
        assert!(!meets(&Expect::Block, &Outcome::Allowed(String::new())));
        assert!(!meets(&Expect::Block, &Outcome::Error(String::new())));
        let s = Expect::Steer(vec!["strict.bing.com".into()]);
        assert!(meets(&s, &Outcome::Steered("strict.bing.com".into())));
        assert!(!meets(&s, &Outcome::Steered("restrict.youtube.com".into())));
        assert!(!meets(&s, &Outcome::Allowed(String::new())));
        assert!(meets(&s, &Outcome::Blocked(String::new())));
        assert!(meets(&Expect::Refuse, &Outcome::Blocked(String::new())));
        assert!(!meets(&Expect::Refuse, &Outcome::Open(String::new())));
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            refusal(403, "blocked by the school's web filter"),
            Outcome::Blocked(_)
        ));
        assert!(matches!(
            refusal(403, "this proxy serves the school's network only"),
            Outcome::Error(_)
        ));
        assert!(matches!(refusal(502, "no such name"), Outcome::Allowed(_)));
    }
}
