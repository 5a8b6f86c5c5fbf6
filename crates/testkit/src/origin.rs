//! A web origin on loopback for proxy tests: plain HTTP or HTTPS with a certificate from a
//! test CA. Answers every request with a text page naming what it received (request line, Host,
//! body length), keeps the request heads so tests can check what the proxy forwarded, and
//! counts every byte that arrives, so a test can show that nothing did. It can serve named
//! virtual hosts only, as a shared web server does ([`Origin::http_vhosts`]).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf,
};
use tokio::net::TcpListener;

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let key_pem = key.serialize_pem();
        let issuer = CertifiedIssuer::self_signed(params, key).unwrap();
        Self { issuer, key_pem }
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn key_pem(&self) -> String {
        self.key_pem.clone()
    }

    /// A rustls server config with a leaf for `names`, signed by this CA.
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(key.serialized_der().to_vec()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        Arc::new(config)
    }
}

/// A running origin.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

/// What an origin has received, and whom it serves.
#[derive(Default)]
struct Seen {
    heads: Mutex<Vec<String>>,
    /// Bytes read from every connection (TLS: after decryption), counted as they arrive.
    bytes: AtomicU64,
    /// The virtual hosts served; empty: any Host.
    vhosts: Vec<String>,
}

impl Origin {
    /// Plain HTTP on 127.0.0.1, for any Host.
    pub async fn http() -> Self {
        Self::start(None, &[]).await
    }

    /// Plain HTTP on 127.0.0.1 serving the virtual hosts `names` only, as a shared web server
    /// does: each gets its own page (`site NAME`); any other Host gets 421 Misdirected Request.
    pub async fn http_vhosts(names: &[&str]) -> Self {
        Self::start(None, names).await
    }

    /// HTTPS on 127.0.0.1 with a certificate for `names` from `ca`.
    pub async fn https(ca: &TestCa, names: &[&str]) -> Self {
        Self::start(
            Some(tokio_rustls::TlsAcceptor::from(ca.server_config(names))),
            &[],
        )
        .await
    }

    /// Plain HTTP on `addr` (any loopback address; port 0 picks one), for any Host: several
    /// origins on several loopback addresses and one port stand for several sites, so a test
    /// sees which address a client really connected to. An error when the port is taken.
    pub async fn http_at(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self::start_on(TcpListener::bind(addr).await?, None, &[]))
    }

    /// HTTPS on `addr` with a certificate for `names` from `ca`, as [`Self::http_at`].
    pub async fn https_at(ca: &TestCa, names: &[&str], addr: SocketAddr) -> std::io::Result<Self> {
        let tls = tokio_rustls::TlsAcceptor::from(ca.server_config(names));
        Ok(Self::start_on(
            TcpListener::bind(addr).await?,
            Some(tls),
            &[],
        ))
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>, vhosts: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, tls, vhosts)
    }

    fn start_on(
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        vhosts: &[&str],
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen {
            vhosts: vhosts.iter().map(|v| v.to_ascii_lowercase()).collect(),
            ..Seen::default()
        });
        let s = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (s, tls) = (s.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(t) = acceptor.accept(stream).await {
                                serve(t, s).await;
                            }
                        }
                        None => serve(stream, s).await,
                    }
                });
            }
        });
        Self { addr, seen, task }
    }

    /// The request heads received so far (the request line as sent, header lines lower-cased).
    pub fn heads(&self) -> Vec<String> {
        self.seen.heads.lock().unwrap().clone()
    }

    /// Every byte received so far, on every connection, whole requests or not.
    pub fn bytes_received(&self) -> u64 {
        self.seen.bytes.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A stream that counts the bytes read from it.
struct Counted<S> {
    inner: S,
    seen: Arc<Seen>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.seen.bytes.fetch_add(n, Ordering::SeqCst);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
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

/// HTTP/1.1 with keep-alive: reads a head and a Content-Length body, answers with a page.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, seen: Arc<Seen>) {
    let mut r = BufReader::new(Counted {
        inner: stream,
        seen: seen.clone(),
    });
    loop {
        let mut head = String::new();
        let mut len = 0usize;
        let mut host = String::new();
        loop {
            let mut line = String::new();
            match r.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            // The request line as sent; header lines lower-cased, for easy checks.
            let lower = if head.is_empty() {
                line.clone()
            } else {
                line.to_ascii_lowercase()
            };
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if let Some(v) = lower.strip_prefix("host:") {
                host = v.trim().to_owned();
            }
            head.push_str(&lower);
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).await.is_err() {
            return;
        }
        seen.heads.lock().unwrap().push(head.clone());
        let first = head.lines().next().unwrap_or_default().to_owned();
        // A virtual host is named without the port.
        let name = host.rsplit_once(':').map_or(host.as_str(), |(n, _)| n);
        let (status, page) = if seen.vhosts.is_empty() || seen.vhosts.iter().any(|v| v == name) {
            let site = if seen.vhosts.is_empty() {
                String::new()
            } else {
                format!("<h2 id=\"site\">site {name}</h2>")
            };
            (
                "200 OK",
                format!(
                    "<html><body><h1 id=\"origin\">origin page</h1>{site}<p>{first}</p><p id=\"host\">host {host}</p><p>body {} bytes</p></body></html>\n",
                    body.len()
                ),
            )
        } else {
            ("421 Misdirected Request", format!("no site {name} here\n"))
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nkeep-alive: timeout=5\r\nx-origin: yes\r\n\r\n{page}",
            page.len()
        );
        if r.get_mut().write_all(reply.as_bytes()).await.is_err()
            || head.contains("connection: close")
        {
            let _ = r.get_mut().shutdown().await;
            return;
        }
    }
}
