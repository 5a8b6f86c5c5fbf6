//! A web origin on loopback for proxy tests: plain HTTP or HTTPS with a certificate from a
//! test CA. Answers every request with a text page naming what it received, and keeps the
//! request heads so tests can check what the proxy forwarded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
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
    heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// Plain HTTP on 127.0.0.1.
    pub async fn http() -> Self {
        Self::start(None).await
    }

    /// HTTPS on 127.0.0.1 with a certificate for `names` from `ca`.
    pub async fn https(ca: &TestCa, names: &[&str]) -> Self {
        Self::start(Some(tokio_rustls::TlsAcceptor::from(
            ca.server_config(names),
        )))
        .await
    }

    async fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let h = heads.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (h, tls) = (h.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(stream).await {
                                serve(s, h).await;
                            }
                        }
                        None => serve(stream, h).await,
                    }
                });
            }
        });
        Self { addr, heads, task }
    }

    /// The request heads received so far (the request line as sent, header lines lower-cased).
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// HTTP/1.1 with keep-alive: reads a head and a Content-Length body, answers with a page.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, heads: Arc<Mutex<Vec<String>>>) {
    let mut r = BufReader::new(stream);
    loop {
        let mut head = String::new();
        let mut len = 0usize;
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
            head.push_str(&lower);
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).await.is_err() {
            return;
        }
        heads.lock().unwrap().push(head.clone());
        let first = head.lines().next().unwrap_or_default().to_owned();
        let page = format!(
            "<html><body><h1 id=\"origin\">origin page</h1><p>{first}</p><p>body {} bytes</p></body></html>\n",
            body.len()
        );
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nkeep-alive: timeout=5\r\nx-origin: yes\r\n\r\n{page}",
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
