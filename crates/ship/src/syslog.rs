//! Syslog to a SIEM: RFC 5424 messages on one long-lived TCP connection, octet-counted
//! (RFC 6587 §3.4.1), optionally in TLS (RFC 5425). Reconnects with backoff.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::record::{Record, syslog_frame};
use crate::{BACKOFF_FIRST, BACKOFF_MAX, Context, ShipError};

/// Messages written in one go, at most.
const BATCH: usize = 512;

/// Connecting and each write's time limit.
const TIMEOUT: Duration = Duration::from_secs(10);

type Stream = Box<dyn AsyncWrite + Unpin + Send>;

pub(crate) struct Client {
    address: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    facility: u8,
    attempts: u32,
}

impl Client {
    pub(crate) fn new(c: &hedgerow_config::SyslogConfig) -> Result<Self, ShipError> {
        let tls = if c.tls {
            let config = crate::tls::client_config(c.ca_file.as_deref())?;
            let host = match &c.server_name {
                Some(n) => n.clone(),
                None => c
                    .address
                    .rsplit_once(':')
                    .map_or(c.address.as_str(), |(h, _)| h)
                    .trim_matches(['[', ']'])
                    .to_owned(),
            };
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|e| ShipError::Url(format!("{}: {e}", c.address)))?;
            Some((tokio_rustls::TlsConnector::from(config), name))
        } else {
            None
        };
        Ok(Self {
            address: c.address.clone(),
            tls,
            facility: c.facility,
            attempts: c.attempts,
        })
    }

    async fn connect(&self) -> Result<Stream, String> {
        let tcp = tokio::net::TcpStream::connect(self.address.as_str())
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let _ = tcp.set_nodelay(true);
        Ok(match &self.tls {
            Some((connector, name)) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?,
            ),
            None => Box::new(tcp),
        })
    }

    /// Writes `frames` (`n` messages), connecting first if need be; retries on a new
    /// connection with backoff; counts them sent or failed.
    async fn write(&self, conn: &mut Option<Stream>, frames: &[u8], n: usize, ctx: &Context) {
        let mut wait = BACKOFF_FIRST;
        for attempt in 1..=self.attempts {
            let result = tokio::time::timeout(TIMEOUT, async {
                if conn.is_none() {
                    *conn = Some(self.connect().await?);
                }
                let Some(stream) = conn.as_mut() else {
                    return Err("no connection".to_owned());
                };
                stream.write_all(frames).await.map_err(|e| e.to_string())?;
                stream.flush().await.map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|_| Err(format!("no progress within {TIMEOUT:?}")));
            match result {
                Ok(()) => {
                    ctx.counters.sent(n);
                    return;
                }
                Err(e) => {
                    *conn = None;
                    ctx.counters.error();
                    if attempt == self.attempts || ctx.stopping() {
                        ctx.counters.failed(n);
                        tracing::error!(
                            "shipping {n} messages to syslog at {} failed after {attempt} attempts, given up: {e}",
                            self.address
                        );
                        return;
                    }
                    tracing::warn!(
                        "shipping {n} messages to syslog at {} (attempt {attempt} of {}): {e}; retrying in {wait:?}",
                        self.address,
                        self.attempts
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// Every [`crate::clickhouse::TICK`], writes what is queued (at most [`BATCH`] messages a
/// write); on stop, writes what is queued, once. Drained on a timer, never by waiting on the
/// queue, for the reason given at `clickhouse::run`.
pub(crate) async fn run(client: Client, mut rx: mpsc::Receiver<Arc<Record>>, ctx: Context) {
    let pid = std::process::id();
    let mut conn: Option<Stream> = None;
    let mut buf: Vec<Arc<Record>> = Vec::with_capacity(BATCH);
    let mut frames = Vec::with_capacity(BATCH * 300);
    let mut tick = tokio::time::interval(crate::clickhouse::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let stopping = ctx.stopping();
        let mut closed = false;
        loop {
            buf.clear();
            while buf.len() < BATCH {
                match rx.try_recv() {
                    Ok(r) => buf.push(r),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if buf.is_empty() {
                break;
            }
            frames.clear();
            for r in &buf {
                syslog_frame(r, &ctx.appliance, client.facility, pid, &mut frames);
            }
            client.write(&mut conn, &frames, buf.len(), &ctx).await;
        }
        if closed || (stopping && rx.is_empty()) {
            if let Some(mut c) = conn.take() {
                let _ = c.shutdown().await;
            }
            return;
        }
    }
}
