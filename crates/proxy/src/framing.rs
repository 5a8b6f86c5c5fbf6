//! HTTP/1.1 message framing, checked on the client's raw bytes before hyper reads them.
//!
//! hyper is lenient where a filtering proxy must not be: it takes a bare LF as a line end,
//! resolves "both Content-Length and Transfer-Encoding" itself, and reads chunk extensions
//! it cannot parse. Two parsers that disagree about where a request ends are how requests are
//! smuggled past a filter, so every byte a client sends passes through [`Inspect`] first, which
//! reads each request head and body strictly (RFC 9112) and notes, per head, whether it may be
//! served ([`Framing`]) and, per connection, whether a chunked body broke the grammar
//! ([`Watch`]).
//!
//! Refused (400 and close, before any byte reaches an origin):
//! - a bare CR or a bare LF anywhere in a head (RFC 9112 §2.2: lines end with CRLF);
//! - obsolete line folding, a field line starting with SP or HTAB (§5.2);
//! - Content-Length that is not digits, more than one Content-Length, or Content-Length
//!   beside Transfer-Encoding (§6.3);
//! - Transfer-Encoding whose final coding is not `chunked`, `chunked` twice, or any
//!   Transfer-Encoding on an HTTP/1.0 request (§6.1); other codings before `chunked` get 501,
//!   since the proxy re-frames bodies and would pass them on undecoded;
//! - more than one Host (§3.2);
//! - a chunked body that breaks the grammar of §7.1: a chunk size that is not hex digits, a
//!   chunk extension that is not `; name[=token or quoted-string]` (with optional whitespace
//!   around `;` and `=`), longer than [`MAX_EXTENSIONS`], a CR or LF inside one, chunk data
//!   not followed by CRLF, or a malformed trailer field.
//!
//! Well-formed chunk extensions are allowed and ignored, as §7.1.1 requires of a recipient; they
//! never reach the origin, because the proxy forwards a chunked body only once it has read it
//! whole ([`read_chunked`]) and sends it on with a Content-Length.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

/// Most bytes of chunk extensions on one chunk line.
pub(crate) const MAX_EXTENSIONS: usize = 4096;

/// Why a request is refused, and with what status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
}

const fn bad(reason: &'static str) -> Fault {
    Fault {
        status: StatusCode::BAD_REQUEST,
        reason,
    }
}

/// What the inspector saw in one request head, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// Well framed; `chunked` when its body is chunked.
    Ok {
        chunked: bool,
    },
    Refuse(Fault),
}

/// The verdicts of one connection's heads, in order, for the service to take one per request.
pub(crate) type Heads = Arc<Mutex<VecDeque<Framing>>>;

/// A chunked body's fault, once the inspector has seen one, for [`read_chunked`].
#[derive(Clone)]
pub(crate) struct Watch(watch::Receiver<Option<Fault>>);

// === impl Inspect ===

/// Reads the client's bytes on their way to hyper and checks their framing; see the module
/// documentation. It follows Content-Length and chunked bodies to find the next head, and
/// stops looking after a CONNECT (the tunnel follows), a refused head, a fault in a body, a
/// chunked body (the handler closes such connections after the response) or a head hyper
/// will refuse itself.
pub(crate) struct Inspect<S> {
    inner: S,
    scan: Scanner,
    heads: Heads,
    fault: watch::Sender<Option<Fault>>,
}

impl<S> Inspect<S> {
    /// Wraps `inner`; `head_limit` is the longest head (hyper refuses longer ones itself).
    pub(crate) fn new(inner: S, head_limit: usize) -> (Self, Heads, Watch) {
        let heads = Heads::default();
        let (fault, rx) = watch::channel(None);
        let inspect = Inspect {
            inner,
            scan: Scanner::new(head_limit),
            heads: heads.clone(),
            fault,
        };
        (inspect, heads, Watch(rx))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inspect<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &r
            && !self.scan.is_done()
        {
            let this = &mut *self;
            let mut seen = Vec::new();
            let fault = this
                .scan
                .feed(buf.filled().get(before..).unwrap_or_default(), &mut seen);
            if !seen.is_empty() {
                this.heads
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend(seen);
            }
            if let Some(f) = fault {
                this.fault.send_replace(Some(f));
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inspect<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// === reading a chunked body ===

/// Reads a chunked request body whole, so nothing of it goes to the origin before all of it has
/// been checked: at most `limit` bytes (413 beyond), within `wait` (408 after). A fault the
/// inspector finds in the body's framing, or one hyper's decoder finds, is a 400.
pub(crate) async fn read_chunked(
    body: Incoming,
    watch: Option<&Watch>,
    limit: usize,
    wait: Duration,
) -> Result<Bytes, Fault> {
    let fault = || watch.and_then(|w| *w.0.borrow());
    let mut rx = watch.map(|w| w.0.clone());
    let faulted = async {
        match rx.as_mut() {
            Some(rx) => match rx.wait_for(Option::is_some).await.map(|f| *f) {
                Ok(f) => f,
                // The connection is gone: the body will end with an error.
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    };
    let collect = http_body_util::Limited::new(body, limit).collect();
    let result = tokio::time::timeout(wait, async {
        tokio::select! {
            f = faulted => Err(f),
            c = collect => Ok(c),
        }
    })
    .await;
    match result {
        Err(_) => Err(Fault {
            status: StatusCode::REQUEST_TIMEOUT,
            reason: "the chunked request body did not arrive in time",
        }),
        Ok(Err(f)) => Err(f.unwrap_or(bad("malformed chunked body"))),
        Ok(Ok(Ok(collected))) => match fault() {
            Some(f) => Err(f),
            None => Ok(collected.to_bytes()),
        },
        Ok(Ok(Err(e))) => {
            if e.is::<http_body_util::LengthLimitError>() {
                return Err(Fault {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    reason: "the chunked request body is larger than this proxy reads (max_chunked_body)",
                });
            }
            Err(fault().unwrap_or(bad("malformed chunked body")))
        }
    }
}

// === impl Scanner ===

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a head, up to its empty line.
    Head,
    /// Passing this many Content-Length body bytes.
    Skip(u64),
    /// In a chunked body.
    Chunk(Chunk),
    /// Not looking any more.
    Done,
}

/// Where a chunked body's reader is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    SizeFirst,
    Size {
        digits: u8,
        size: u64,
    },
    /// Whitespace after the size: only `;` may follow.
    SizeWs {
        size: u64,
    },
    ExtNameStart {
        size: u64,
    },
    ExtName {
        size: u64,
    },
    ExtNameWs {
        size: u64,
    },
    ExtValueStart {
        size: u64,
    },
    ExtToken {
        size: u64,
    },
    Quoted {
        size: u64,
    },
    QuotedPair {
        size: u64,
    },
    /// After a value: whitespace, `;` or the line end.
    ExtValueEnd {
        size: u64,
        ws: bool,
    },
    LineLf {
        size: u64,
    },
    /// Data still to pass; at 0, the CR that ends it.
    Data {
        left: u64,
    },
    DataLf,
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
}

/// For the fuzz targets (`crate::fuzzing`): the verdict for each head of a connection's bytes
/// read in `chunks` (true: refused), up to the first fault in a body.
pub(crate) fn verdicts<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, limit: usize) -> Vec<bool> {
    let mut scanner = Scanner::new(limit);
    let mut heads = Vec::new();
    for chunk in chunks {
        if scanner.feed(chunk, &mut heads).is_some() {
            break;
        }
    }
    heads
        .iter()
        .map(|h| matches!(h, Framing::Refuse(_)))
        .collect()
}

/// The sans-I/O reader behind [`Inspect`]: fed the bytes in order, it reports a verdict per
/// head and a fault in a body.
struct Scanner {
    state: State,
    head: Vec<u8>,
    head_limit: usize,
    /// Bytes of chunk extensions on the current chunk line, or of the trailer section.
    counted: usize,
}

impl Scanner {
    fn new(head_limit: usize) -> Self {
        Self {
            state: State::Head,
            head: Vec::new(),
            head_limit,
            counted: 0,
        }
    }

    fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads `data`; pushes a verdict to `heads` for each head it completes, and returns the
    /// fault of a body that breaks the grammar.
    fn feed(&mut self, mut data: &[u8], heads: &mut Vec<Framing>) -> Option<Fault> {
        while !data.is_empty() {
            match self.state {
                State::Done => return None,
                State::Skip(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = data.get(n..).unwrap_or_default();
                    self.state = match left - n as u64 {
                        0 => State::Head,
                        rest => State::Skip(rest),
                    };
                }
                State::Head => {
                    let before = self.head.len();
                    self.head.extend_from_slice(data);
                    // Empty lines before a request line are skipped (RFC 9112 §2.2), as hyper
                    // skips them.
                    let mut skipped = 0;
                    while self.head.get(skipped..skipped + 2) == Some(&b"\r\n"[..]) {
                        skipped += 2;
                    }
                    self.head.drain(..skipped);
                    let Some(end) = head_end(&self.head, before.saturating_sub(skipped)) else {
                        if self.head.len() > self.head_limit {
                            // hyper refuses an oversized head itself.
                            self.state = State::Done;
                        }
                        return None;
                    };
                    data = data
                        .get((end + skipped).saturating_sub(before)..)
                        .unwrap_or_default();
                    let head = std::mem::take(&mut self.head);
                    let Some((framing, next)) = check_head(head.get(..end).unwrap_or_default())
                    else {
                        // hyper refuses a head httparse cannot read.
                        self.state = State::Done;
                        return None;
                    };
                    heads.push(framing);
                    self.state = next;
                    self.counted = 0;
                }
                State::Chunk(Chunk::Data { left }) if left > 0 => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    data = data.get(n..).unwrap_or_default();
                    self.state = State::Chunk(Chunk::Data {
                        left: left - n as u64,
                    });
                }
                State::Chunk(c) => {
                    let (&b, rest) = data.split_first()?;
                    data = rest;
                    match self.chunk_byte(c, b) {
                        Ok(next) => self.state = next,
                        Err(f) => {
                            self.state = State::Done;
                            return Some(f);
                        }
                    }
                }
            }
        }
        None
    }

    /// One byte of a chunked body.
    fn chunk_byte(&mut self, c: Chunk, b: u8) -> Result<State, Fault> {
        use Chunk::*;
        const SIZE: Fault = bad("malformed chunk size");
        const EXT: Fault = bad("malformed chunk extension");
        const TRAILER: Fault = bad("malformed trailer field");
        let ws = b == b' ' || b == b'\t';
        if matches!(
            c,
            ExtNameStart { .. }
                | ExtName { .. }
                | ExtNameWs { .. }
                | ExtValueStart { .. }
                | ExtToken { .. }
                | Quoted { .. }
                | QuotedPair { .. }
                | ExtValueEnd { .. }
        ) {
            self.counted += 1;
            if self.counted > MAX_EXTENSIONS {
                return Err(bad("chunk extensions too long"));
            }
        }
        if matches!(c, TrailerStart | TrailerName | TrailerValue | TrailerLf) {
            self.counted += 1;
            if self.counted > self.head_limit {
                return Err(bad("trailer section too long"));
            }
        }
        let next = match c {
            SizeFirst => match hex(b) {
                Some(d) => Size { digits: 1, size: d },
                None => return Err(SIZE),
            },
            Size { digits, size } => match (hex(b), b) {
                (Some(_), _) if digits >= 15 => return Err(bad("chunk size too large")),
                (Some(d), _) => Size {
                    digits: digits + 1,
                    size: size << 4 | d,
                },
                (None, b';') => ExtNameStart { size },
                (None, b'\r') => LineLf { size },
                (None, _) if ws => SizeWs { size },
                _ => return Err(SIZE),
            },
            SizeWs { size } => match b {
                b';' => ExtNameStart { size },
                _ if ws => SizeWs { size },
                _ => return Err(SIZE),
            },
            ExtNameStart { size } => match b {
                _ if ws => ExtNameStart { size },
                _ if is_tchar(b) => ExtName { size },
                _ => return Err(EXT),
            },
            ExtName { size } => match b {
                _ if is_tchar(b) => ExtName { size },
                b'=' => ExtValueStart { size },
                b';' => ExtNameStart { size },
                b'\r' => LineLf { size },
                _ if ws => ExtNameWs { size },
                _ => return Err(EXT),
            },
            ExtNameWs { size } => match b {
                _ if ws => ExtNameWs { size },
                b'=' => ExtValueStart { size },
                b';' => ExtNameStart { size },
                _ => return Err(EXT),
            },
            ExtValueStart { size } => match b {
                _ if ws => ExtValueStart { size },
                b'"' => Quoted { size },
                _ if is_tchar(b) => ExtToken { size },
                _ => return Err(EXT),
            },
            ExtToken { size } => match b {
                _ if is_tchar(b) => ExtToken { size },
                b';' => ExtNameStart { size },
                b'\r' => LineLf { size },
                _ if ws => ExtValueEnd { size, ws: true },
                _ => return Err(EXT),
            },
            Quoted { size } => match b {
                b'"' => ExtValueEnd { size, ws: false },
                b'\\' => QuotedPair { size },
                b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => Quoted { size },
                _ => return Err(EXT),
            },
            QuotedPair { size } => match b {
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => Quoted { size },
                _ => return Err(EXT),
            },
            ExtValueEnd { size, ws: had_ws } => match b {
                _ if ws => ExtValueEnd { size, ws: true },
                b';' => ExtNameStart { size },
                // Whitespace before the line end is not in the grammar.
                b'\r' if !had_ws => LineLf { size },
                _ => return Err(EXT),
            },
            LineLf { size } => match (b, size) {
                (b'\n', 0) => {
                    self.counted = 0;
                    TrailerStart
                }
                (b'\n', left) => {
                    self.counted = 0;
                    Data { left }
                }
                _ => return Err(bad("a bare CR in a chunk line")),
            },
            Data { .. } => match b {
                b'\r' => DataLf,
                _ => return Err(bad("chunk data longer than its size")),
            },
            DataLf => match b {
                b'\n' => SizeFirst,
                _ => return Err(bad("chunk data not followed by CRLF")),
            },
            TrailerStart => match b {
                b'\r' => EndLf,
                b' ' | b'\t' => return Err(bad("obsolete line folding in the trailer section")),
                _ if is_tchar(b) => TrailerName,
                _ => return Err(TRAILER),
            },
            TrailerName => match b {
                _ if is_tchar(b) => TrailerName,
                b':' => TrailerValue,
                _ => return Err(TRAILER),
            },
            TrailerValue => match b {
                b'\r' => TrailerLf,
                b'\t' | 0x20..=0x7e | 0x80..=0xff => TrailerValue,
                _ => return Err(TRAILER),
            },
            TrailerLf | EndLf => match b {
                b'\n' if c == EndLf => return Ok(State::Done),
                b'\n' => TrailerStart,
                _ => return Err(bad("a bare CR in the trailer section")),
            },
        };
        Ok(State::Chunk(next))
    }
}

fn hex(b: u8) -> Option<u64> {
    char::from(b).to_digit(16).map(u64::from)
}

/// `tchar` (RFC 9110 §5.6.2): the characters of a token.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Where the head in `buf` ends (just after its empty line), looking from the line that holds
/// `from` onwards; a line ends at LF, with or without CR, so a bare-LF head is found (and then
/// refused) rather than read past.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    // Start at the beginning of the line `from` is on (or the line before it, when `from` is
    // just after a LF): the empty line may straddle two reads.
    let start = buf
        .get(..from.saturating_sub(1))
        .and_then(|b| b.iter().rposition(|&c| c == b'\n'))
        .map_or(0, |p| p + 1);
    let mut line_start = start;
    for (i, &c) in buf.iter().enumerate().skip(start) {
        if c == b'\n' {
            let line = buf.get(line_start..i).unwrap_or_default();
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// Checks a whole head (through its empty line); the verdict and what follows it, or `None`
/// when httparse cannot read it (hyper then answers 400 itself).
fn check_head(head: &[u8]) -> Option<(Framing, State)> {
    let refuse = |f: Fault| Some((Framing::Refuse(f), State::Done));
    // Line ends first: a parser that takes a bare CR or LF as a line end, or folds a line
    // into the one before, would see other header fields than the next one in line.
    let mut lines = head.split(|&c| c == b'\n');
    let mut first = true;
    for line in lines.by_ref() {
        let Some(body) = line.strip_suffix(b"\r") else {
            if line.is_empty() {
                break; // after the final LF
            }
            return refuse(bad("a bare LF in the request head (lines end with CRLF)"));
        };
        if body.contains(&b'\r') {
            return refuse(bad("a bare CR in the request head"));
        }
        if !first && matches!(body.first(), Some(b' ' | b'\t')) {
            return refuse(bad("obsolete line folding in the request head"));
        }
        first = false;
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let mut lengths = Vec::new();
    let mut codings: Vec<String> = Vec::new();
    let mut te = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths.push(h.value);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            codings.extend(
                String::from_utf8_lossy(h.value)
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .filter(|c| !c.is_empty()),
            );
        } else if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if hosts > 1 {
        return refuse(bad("more than one Host header"));
    }
    let digits = |v: &[u8]| {
        let v = v.trim_ascii();
        !v.is_empty() && v.iter().all(u8::is_ascii_digit)
    };
    if lengths.iter().any(|v| !digits(v)) {
        return refuse(bad("malformed Content-Length"));
    }
    if te && !lengths.is_empty() {
        return refuse(bad("conflicting Content-Length and Transfer-Encoding"));
    }
    if lengths.len() > 1 {
        return refuse(bad("more than one Content-Length"));
    }
    if te {
        if req.version == Some(0) {
            return refuse(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        if codings.last().map(String::as_str) != Some("chunked") {
            return refuse(bad("Transfer-Encoding does not end with chunked"));
        }
        if codings.iter().filter(|c| *c == "chunked").count() > 1 {
            return refuse(bad("chunked applied more than once"));
        }
        if codings.len() > 1 {
            return refuse(Fault {
                status: StatusCode::NOT_IMPLEMENTED,
                reason: "transfer codings other than chunked are not supported",
            });
        }
    }
    let next = if req.method == Some("CONNECT") {
        State::Done
    } else if te {
        State::Chunk(Chunk::SizeFirst)
    } else {
        let n = lengths
            .first()
            .and_then(|v| std::str::from_utf8(v.trim_ascii()).ok())
            .and_then(|v| v.parse::<u64>().ok());
        match (lengths.first(), n) {
            (None, _) | (_, Some(0)) => State::Head,
            (Some(_), Some(n)) => State::Skip(n),
            // Digits, but more than a u64 holds: hyper refuses that itself.
            (Some(_), None) => State::Done,
        }
    };
    Some((Framing::Ok { chunked: te }, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` whole and then one byte at a time; both must give the same verdicts.
    fn scan(bytes: &[u8]) -> (Vec<Framing>, Option<Fault>, bool) {
        let run = |pieces: &mut dyn Iterator<Item = &[u8]>| {
            let mut s = Scanner::new(16 * 1024);
            let mut heads = Vec::new();
            let mut fault = None;
            for p in pieces {
                fault = fault.or(s.feed(p, &mut heads));
            }
            (heads, fault, s.is_done())
        };
        let whole = run(&mut std::iter::once(bytes));
        let drip = run(&mut bytes.chunks(1));
        assert_eq!(whole, drip, "{}", String::from_utf8_lossy(bytes));
        whole
    }

    fn head_verdict(head: &str) -> Framing {
        let (heads, _, _) = scan(head.as_bytes());
        assert_eq!(heads.len(), 1, "{head:?}");
        heads[0]
    }

    fn refused(f: Framing) -> &'static str {
        match f {
            Framing::Refuse(f) => f.reason,
            Framing::Ok { .. } => "",
        }
    }

    const GET: &str = "GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n";

    #[test]
    fn well_framed_heads_pass_and_bodies_are_followed() {
        let two = format!("{GET}\r\n{GET}Content-Length: 3\r\n\r\nabc\r\n{GET}\r\n");
        let (heads, fault, done) = scan(two.as_bytes());
        assert_eq!(heads, vec![Framing::Ok { chunked: false }; 3]);
        assert_eq!((fault, done), (None, false));
        let chunked = "POST http://a.example/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n\
             3\r\nabc\r\nA;name;n2=tok;q=\"a \\\" b\" ; x = y\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        let (heads, fault, done) = scan(chunked.as_bytes());
        assert_eq!(heads, [Framing::Ok { chunked: true }]);
        assert_eq!((fault, done), (None, true), "the body read to its end");
        // A CONNECT: the tunnel follows, nothing more to read.
        let (heads, _, done) = scan(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a\r\n\r\n\x16\x03");
        assert_eq!((heads.len(), done), (1, true));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for (head, why) in [
            (
                format!("{GET}X-A: 1\r\n x\r\n\r\n"),
                "obsolete line folding in the request head",
            ),
            (
                format!("{GET}X-A: 1\r\n\tx\r\n\r\n"),
                "obsolete line folding in the request head",
            ),
            (
                format!("{GET}X-A: 1\rX-B: 2\r\n\r\n"),
                "a bare CR in the request head",
            ),
            (
                "GET http://a.example/ HTTP/1.1\nHost: a\n\n".into(),
                "a bare LF in the request head (lines end with CRLF)",
            ),
            (
                format!("{GET}X-A: 1\n\r\n"),
                "a bare LF in the request head (lines end with CRLF)",
            ),
            (
                format!("{GET}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
                "conflicting Content-Length and Transfer-Encoding",
            ),
            (
                format!("{GET}Content-Length: 3\r\nContent-Length: 3\r\n\r\n"),
                "more than one Content-Length",
            ),
            (
                format!("{GET}Content-Length: +3\r\n\r\n"),
                "malformed Content-Length",
            ),
            (
                format!("{GET}Content-Length: 3, 3\r\n\r\n"),
                "malformed Content-Length",
            ),
            (
                format!("{GET}Transfer-Encoding: chunked, identity\r\n\r\n"),
                "Transfer-Encoding does not end with chunked",
            ),
            (
                format!("{GET}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
                "chunked applied more than once",
            ),
            (
                format!("{GET}Transfer-Encoding: gzip, chunked\r\n\r\n"),
                "transfer codings other than chunked are not supported",
            ),
            (
                "POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
                "Transfer-Encoding in an HTTP/1.0 request",
            ),
            (
                format!("{GET}Host: b.example\r\n\r\n"),
                "more than one Host header",
            ),
        ] {
            assert_eq!(refused(head_verdict(&head)), why, "{head:?}");
        }
        // A refused head stops the inspection: nothing after it is read.
        let (heads, _, done) = scan(format!("{GET}X: 1\r\n y\r\n\r\n{GET}\r\n").as_bytes());
        assert_eq!((heads.len(), done), (1, true));
        // Leading empty lines are allowed, as hyper allows them, before any head.
        let (heads, _, done) = scan(format!("\r\n\r\n{GET}\r\n\r\n{GET}\r\n").as_bytes());
        assert_eq!(heads, [Framing::Ok { chunked: false }; 2]);
        assert!(!done);
    }

    #[test]
    fn malformed_chunked_bodies_are_refused_and_well_formed_extensions_are_not() {
        let post =
            "POST http://a.example/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let long = format!("1;{}\r\nx\r\n0\r\n\r\n", "a".repeat(MAX_EXTENSIONS));
        for (body, why) in [
            ("2;a\nhi\r\n0\r\n\r\n", "malformed chunk extension"),
            ("2\nhi\r\n0\r\n\r\n", "malformed chunk size"),
            ("2;a=\"x\r\nhi\r\n0\r\n\r\n", "malformed chunk extension"),
            ("2;a=\"x\nhi\r\n0\r\n\r\n", "malformed chunk extension"),
            ("2;@@\r\nhi\r\n0\r\n\r\n", "malformed chunk extension"),
            ("2;a=b c\r\nhi\r\n0\r\n\r\n", "malformed chunk extension"),
            ("2;a=\r\nhi\r\n0\r\n\r\n", "malformed chunk extension"),
            ("2;\r\nhi\r\n0\r\n\r\n", "malformed chunk extension"),
            ("2;a \r\nhi\r\n0\r\n\r\n", "malformed chunk extension"),
            ("2 \r\nhi\r\n0\r\n\r\n", "malformed chunk size"),
            ("2\rhi\r\n0\r\n\r\n", "a bare CR in a chunk line"),
            ("0x2\r\nhi\r\n0\r\n\r\n", "malformed chunk size"),
            ("-2\r\nhi\r\n0\r\n\r\n", "malformed chunk size"),
            ("\r\nhi\r\n0\r\n\r\n", "malformed chunk size"),
            ("2\r\nhiX\r\n0\r\n\r\n", "chunk data longer than its size"),
            ("2\r\nhi\rX0\r\n\r\n", "chunk data not followed by CRLF"),
            ("1000000000000000\r\n", "chunk size too large"),
            ("0\r\nX-T 1\r\n\r\n", "malformed trailer field"),
            (
                "0\r\nX-T: 1\r\n y\r\n\r\n",
                "obsolete line folding in the trailer section",
            ),
            ("0\r\nX-T: 1\rX\r\n\r\n", "a bare CR in the trailer section"),
            ("0\r\nX-T: 1\nX\r\n\r\n", "malformed trailer field"),
            ("0\r\nX-T: 1\r\n\rX", "a bare CR in the trailer section"),
            (long.as_str(), "chunk extensions too long"),
        ] {
            let (heads, fault, done) = scan(format!("{post}{body}").as_bytes());
            assert_eq!(heads, [Framing::Ok { chunked: true }], "{body:?}");
            assert_eq!(fault.map(|f| f.reason), Some(why), "{body:?}");
            assert!(done, "{body:?}");
        }
        for body in [
            "2;a\r\nhi\r\n0\r\n\r\n",
            "2;a=b\r\nhi\r\n0\r\n\r\n",
            "2 ; a = b ;c=\"\"\r\nhi\r\n0;last\r\n\r\n",
            "2;a=\"\\\\\\\"\"\r\nhi\r\n0\r\n\r\n",
            "ff\r\n",
        ] {
            let (_, fault, _) = scan(format!("{post}{body}").as_bytes());
            assert_eq!(fault, None, "{body:?}");
        }
    }
}
