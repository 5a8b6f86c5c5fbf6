//! An HTTPS origin for list downloads, scripted per path: each reply's status, ETag and body
//! can be changed between requests, a body can be cut short (a Content-Length it does not
//! fulfil), and a request whose If-None-Match names the current ETag gets 304. Every request
//! head is kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::TestCa;

/// What the origin answers for one path.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Vec<u8>,
    /// Send only this many bytes of the body (the Content-Length still says all of it), then
    /// close.
    pub cut_at: Option<usize>,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>, etag: &str) -> Self {
        Self {
            status: 200,
            etag: Some(etag.to_owned()),
            body: body.into(),
            cut_at: None,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            etag: None,
            body: b"error\n".to_vec(),
            cut_at: None,
        }
    }
}

type Script = Arc<Mutex<HashMap<String, Reply>>>;

/// A running origin on 127.0.0.1 with a certificate for `127.0.0.1` and `lists.test` from
/// its CA.
pub struct ListOrigin {
    pub addr: SocketAddr,
    script: Script,
    /// Each request: path, then its head, lower-cased.
    seen: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ListOrigin {
    pub async fn start(ca: &TestCa) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(ca.server_config(&["127.0.0.1", "lists.test"]));
        let script: Script = Arc::default();
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (sc, se) = (script.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, sc, se) = (acceptor.clone(), sc.clone(), se.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut r = BufReader::new(tls);
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line.to_ascii_lowercase());
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    se.lock().unwrap().push((path.clone(), head.clone()));
                    let reply = sc
                        .lock()
                        .unwrap()
                        .get(&path)
                        .cloned()
                        .unwrap_or(Reply::status(404));
                    let not_modified = reply.status == 200
                        && reply.etag.as_ref().is_some_and(|e| {
                            head.lines().any(|l| {
                                l.strip_prefix("if-none-match:")
                                    .is_some_and(|v| v.trim() == e.to_ascii_lowercase())
                            })
                        });
                    let mut out = Vec::new();
                    if not_modified {
                        out.extend_from_slice(
                            b"HTTP/1.1 304 Not Modified\r\nconnection: close\r\n",
                        );
                        if let Some(e) = &reply.etag {
                            out.extend_from_slice(format!("etag: {e}\r\n").as_bytes());
                        }
                        out.extend_from_slice(b"\r\n");
                    } else {
                        out.extend_from_slice(
                            format!(
                                "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                                reply.status,
                                reply.body.len()
                            )
                            .as_bytes(),
                        );
                        if let Some(e) = &reply.etag {
                            out.extend_from_slice(format!("etag: {e}\r\n").as_bytes());
                        }
                        out.extend_from_slice(b"\r\n");
                        let n = reply
                            .cut_at
                            .unwrap_or(reply.body.len())
                            .min(reply.body.len());
                        out.extend_from_slice(&reply.body[..n]);
                    }
                    let mut tls = r.into_inner();
                    let _ = tls.write_all(&out).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            addr,
            script,
            seen,
            task,
        }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Answers `path` with `reply` from now on.
    pub fn set(&self, path: &str, reply: Reply) {
        self.script.lock().unwrap().insert(path.to_owned(), reply);
    }

    /// Requests for `path` so far, each its head (lower-cased).
    pub fn requests(&self, path: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

impl Drop for ListOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
