//! ClickHouse over its HTTP interface: `POST /?query=INSERT INTO db.table FORMAT JSONEachRow`
//! with a batch of rows as the body. Works with ClickHouse 18.16 (Debian bookworm's) and later.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::record::{Record, clickhouse_row};
use crate::{BACKOFF_FIRST, BACKOFF_MAX, Context, ShipError};

/// One insert's time limit, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How often the queue is drained (see [`run`]): at the default queue of 65,536 this keeps
/// up with over a million records a second.
pub(crate) const TICK: Duration = Duration::from_millis(50);

pub(crate) struct Client {
    host: String,
    port: u16,
    authority: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    /// `/?query=…` for the events table and for the breaches table.
    events_path: String,
    breaches_path: String,
    user: Option<String>,
    password: Option<String>,
    batch: usize,
    flush_interval: Duration,
    attempts: u32,
}

fn insert_path(database: &str, table: &str) -> String {
    // Identifiers are checked by the configuration (letters, digits, '_'); unknown fields are
    // skipped so that a table made from an older schema keeps taking rows.
    format!(
        "/?input_format_skip_unknown_fields=1&query=INSERT%20INTO%20{database}.{table}%20FORMAT%20JSONEachRow"
    )
}

impl Client {
    pub(crate) fn new(c: &hedgerow_config::ClickHouseConfig) -> Result<Self, ShipError> {
        let u = url::Url::parse(&c.url).map_err(|e| ShipError::Url(format!("{}: {e}", c.url)))?;
        let host = u
            .host_str()
            .ok_or_else(|| ShipError::Url(format!("{}: no host", c.url)))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = u.port_or_known_default().unwrap_or(8123);
        let tls = if u.scheme() == "https" {
            let config = crate::tls::client_config(c.ca_file.as_deref())?;
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| ShipError::Url(format!("{}: {e}", c.url)))?;
            Some((tokio_rustls::TlsConnector::from(config), name))
        } else {
            None
        };
        let password = match &c.password_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|source| ShipError::Read {
                        path: p.display().to_string(),
                        source,
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Self {
            authority: u.authority().to_owned(),
            host,
            port,
            tls,
            events_path: insert_path(&c.database, &c.events_table),
            breaches_path: insert_path(&c.database, &c.breaches_table),
            user: c.user.clone(),
            password,
            batch: c.batch,
            flush_interval: c.flush_interval,
            attempts: c.attempts,
        })
    }

    /// One INSERT; `Ok` on a 200 answer, else what went wrong (with ClickHouse's message).
    async fn insert(&self, path: &str, body: Bytes) -> Result<(), String> {
        let mut req = hyper::Request::post(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/x-ndjson")
            .header(hyper::header::USER_AGENT, "hedgerow-ship");
        if let Some(user) = &self.user {
            req = req.header("X-ClickHouse-User", user);
        }
        if let Some(key) = &self.password {
            req = req.header("X-ClickHouse-Key", key);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (status, text) = match &self.tls {
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                exchange(TokioIo::new(tls), req).await?
            }
            None => exchange(TokioIo::new(tcp), req).await?,
        };
        if status == 200 {
            Ok(())
        } else {
            let text: String = text.chars().take(300).collect();
            Err(format!("HTTP {status}: {}", text.trim()))
        }
    }

    /// Inserts `body` (`rows` rows) with retries; counts them sent or failed.
    async fn insert_retrying(
        &self,
        what: &str,
        path: &str,
        body: Bytes,
        rows: usize,
        ctx: &Context,
    ) {
        let mut wait = BACKOFF_FIRST;
        for attempt in 1..=self.attempts {
            let result = match tokio::time::timeout(TIMEOUT, self.insert(path, body.clone())).await
            {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {TIMEOUT:?}")),
            };
            match result {
                Ok(()) => {
                    ctx.counters.sent(rows);
                    return;
                }
                Err(e) => {
                    ctx.counters.error();
                    let last = attempt == self.attempts || ctx.stopping();
                    if last {
                        ctx.counters.failed(rows);
                        tracing::error!(
                            "shipping {rows} {what} to ClickHouse failed after {attempt} attempts, given up: {e}"
                        );
                        return;
                    }
                    tracing::warn!(
                        "shipping {rows} {what} to ClickHouse (attempt {attempt} of {}): {e}; retrying in {wait:?}",
                        self.attempts
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn send(&self, records: &[Arc<Record>], ctx: &Context) {
        let mut events = Vec::new();
        let mut breaches = Vec::new();
        let (mut n_events, mut n_breaches) = (0, 0);
        for r in records {
            match **r {
                Record::Access(_) => {
                    n_events += 1;
                    clickhouse_row(r, &ctx.appliance, &mut events);
                }
                Record::Breach { .. } => {
                    n_breaches += 1;
                    clickhouse_row(r, &ctx.appliance, &mut breaches);
                }
            }
        }
        // Breaches first: they matter most if the destination is about to fail.
        if n_breaches > 0 {
            self.insert_retrying(
                "breach rows",
                &self.breaches_path,
                breaches.into(),
                n_breaches,
                ctx,
            )
            .await;
        }
        if n_events > 0 {
            self.insert_retrying(
                "access events",
                &self.events_path,
                events.into(),
                n_events,
                ctx,
            )
            .await;
        }
    }
}

async fn exchange<T>(io: T, req: hyper::Request<Full<Bytes>>) -> Result<(u16, String), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Takes records off the queue in batches (up to `batch` rows, or what came within
/// `flush_interval` of the first) and inserts them. On stop: sends what is queued, once.
///
/// The queue is drained on a timer ([`TICK`]), never by waiting on it: a task waiting on the
/// queue is woken by every record handed over, which cost the answering threads about 2 µs
/// of CPU a DNS query (measured with benches/ship.sh).
pub(crate) async fn run(client: Client, mut rx: mpsc::Receiver<Arc<Record>>, ctx: Context) {
    let mut buf: Vec<Arc<Record>> = Vec::with_capacity(client.batch.min(65_536));
    let mut first: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK.min(client.flush_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let stopping = ctx.stopping();
        let mut closed = false;
        loop {
            if buf.len() >= client.batch {
                client.send(&buf, &ctx).await;
                buf.clear();
                first = None;
            }
            match rx.try_recv() {
                Ok(r) => {
                    first.get_or_insert_with(Instant::now);
                    buf.push(r);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let due = first.is_some_and(|t| t.elapsed() >= client.flush_interval);
        if !buf.is_empty() && (due || stopping || closed) {
            client.send(&buf, &ctx).await;
            buf.clear();
            first = None;
        }
        if closed || (stopping && rx.is_empty()) {
            return;
        }
    }
}
