//! Prometheus metrics and health checks on `[metrics] listen` (plain HTTP, loopback in the
//! bundled configuration).
//!
//! The crates record through the `metrics` facade where the work happens (upstream latency
//! and failures in `hedgerow-dns`, proxy requests by outcome, breaches by severity in the
//! recorder, alert deliveries, list downloads); only the binary installs the exporter. The DNS
//! fast path keeps its own atomic counters (a facade call per query would cost more than the
//! rest of a cache hit), and so do the recorder and its block counts: those are read here, at
//! scrape time.
//!
//! - `GET /metrics`: the Prometheus text format.
//! - `GET /health/live`: 200 while the process serves HTTP at all.
//! - `GET /health/ready`: 200 once every service has started and until the shutdown begins,
//!   503 otherwise.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// What a scrape reads besides the facade's own registry.
pub(crate) struct Sources {
    pub(crate) resolver: Arc<hedgerow_dns::Resolver>,
    pub(crate) recorder: Arc<hedgerow_store::Recorder>,
    pub(crate) store: Arc<hedgerow_store::Store>,
    pub(crate) policy: Arc<hedgerow_policy::PolicyHandle>,
    /// Set once every service has started; cleared when the shutdown begins.
    pub(crate) ready: Arc<AtomicBool>,
}

/// The metrics listener, serving until stopped.
pub(crate) struct MetricsServer {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl MetricsServer {
    pub(crate) fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The process's Prometheus recorder, installed on first use (the facade has one global
/// recorder per process).
fn handle() -> Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        )
        .context("metrics buckets")?
        .build_recorder();
    let h = recorder.handle();
    metrics::set_global_recorder(recorder).context("installing the metrics recorder")?;
    let _ = HANDLE.set(h.clone());
    describe();
    Ok(h)
}

/// Binds `listen` and serves metrics and health checks on each address.
pub(crate) async fn start(listen: &[SocketAddr], sources: Sources) -> Result<MetricsServer> {
    let handle = handle()?;
    let sources = Arc::new(sources);
    let mut tasks = Vec::new();
    for addr in listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics listener {addr}"))?;
        tracing::info!("listening for metrics on {}", listener.local_addr()?);
        let (handle, sources) = (handle.clone(), sources.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, say: wait rather than spin on the error.
                        tracing::warn!("metrics accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (handle, sources) = (handle.clone(), sources.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (handle, sources) = (handle.clone(), sources.clone());
                        async move { Ok::<_, Infallible>(answer(&req, &handle, &sources).await) }
                    });
                    // A scraper that opens a connection and says nothing is dropped.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(std::time::Duration::from_secs(10))
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
    }
    Ok(MetricsServer { tasks })
}

async fn answer(
    req: &Request<hyper::body::Incoming>,
    handle: &PrometheusHandle,
    sources: &Arc<Sources>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, kind: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.method() != hyper::Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET only\n".into(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/metrics" => {
            let s = sources.clone();
            // The store's size walks its folder: off the async workers.
            let _ = tokio::task::spawn_blocking(move || collect(&s)).await;
            reply(StatusCode::OK, handle.render(), "text/plain; version=0.0.4")
        }
        "/health/live" => reply(StatusCode::OK, "live\n".into(), "text/plain"),
        "/health/ready" => {
            if sources.ready.load(Ordering::SeqCst) {
                reply(StatusCode::OK, "ready\n".into(), "text/plain")
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready\n".into(),
                    "text/plain",
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "/metrics, /health/live, /health/ready\n".into(),
            "text/plain",
        ),
    }
}

/// Copies the counters kept outside the facade into it.
fn collect(s: &Sources) {
    for (name, value) in s.resolver.metrics().snapshot() {
        match name {
            "queries" => metrics::counter!("hedgerow_dns_queries_total").absolute(value),
            "cache_hits" => metrics::counter!("hedgerow_dns_cache_hits_total").absolute(value),
            // Counted as each query goes to the upstreams, before it is answered.
            "forwarded" => metrics::counter!("hedgerow_dns_upstream_queries_total").absolute(value),
            "untrusted_identity" => {
                metrics::counter!("hedgerow_dns_untrusted_identity_total").absolute(value)
            }
            outcome => metrics::counter!("hedgerow_dns_answers_total", "outcome" => outcome)
                .absolute(value),
        }
    }
    metrics::gauge!("hedgerow_dns_cache_entries").set(s.resolver.cached() as f64);
    let r = s.recorder.stats();
    metrics::counter!("hedgerow_events_recorded_total").absolute(r.written);
    metrics::counter!("hedgerow_events_dropped_total").absolute(r.dropped);
    metrics::counter!("hedgerow_events_failed_total").absolute(r.failed);
    metrics::gauge!("hedgerow_breaches_queued").set(r.breaches_queued as f64);
    for b in s.recorder.block_counts() {
        metrics::counter!(
            "hedgerow_blocks_total",
            "group" => b.group.to_string(),
            "category" => b.category.to_string()
        )
        .absolute(b.count);
    }
    match s.store.disk_bytes() {
        Ok(n) => metrics::gauge!("hedgerow_store_bytes").set(n as f64),
        Err(e) => tracing::debug!("store size: {e}"),
    }
    lists(&s.policy.snapshot());
}

/// Entries of every list in force, and the age of each file list (downloaded lists set
/// their own age, from when their source last confirmed them current).
pub(crate) fn lists(snap: &hedgerow_policy::PolicySnapshot) {
    for r in &snap.report().lists {
        metrics::gauge!("hedgerow_list_entries", "list" => r.list.to_string())
            .set(r.entries as f64);
    }
    let now = std::time::SystemTime::now();
    for l in snap.config().lists.iter().filter(|l| l.fetch.is_none()) {
        let age = std::fs::metadata(&l.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok());
        if let Some(age) = age {
            metrics::gauge!("hedgerow_list_age_seconds", "list" => l.name.clone())
                .set(age.as_secs_f64());
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("hedgerow_dns_queries_total", "DNS queries read");
    describe_counter!(
        "hedgerow_dns_answers_total",
        "DNS answers by outcome other than forwarded (blocked, rewritten, circumvention, refused, rate_limited, servfail, formerr)"
    );
    describe_counter!(
        "hedgerow_dns_upstream_queries_total",
        "DNS queries sent on to the upstreams (cache misses)"
    );
    describe_counter!(
        "hedgerow_dns_cache_hits_total",
        "DNS answers from the cache"
    );
    describe_gauge!(
        "hedgerow_dns_cache_entries",
        "Answers held in the DNS cache"
    );
    describe_histogram!(
        "hedgerow_dns_upstream_seconds",
        "Time an upstream took to answer a forwarded query"
    );
    describe_counter!(
        "hedgerow_dns_upstream_failures_total",
        "Upstream attempts that failed or timed out, by upstream and reason"
    );
    describe_counter!(
        "hedgerow_proxy_requests_total",
        "Proxy requests and tunnels by outcome"
    );
    describe_counter!(
        "hedgerow_blocks_total",
        "Blocked queries and requests by group and category"
    );
    describe_counter!(
        "hedgerow_events_recorded_total",
        "Access events written to the log store"
    );
    describe_counter!(
        "hedgerow_events_dropped_total",
        "Access events dropped because the recorder's queue was full"
    );
    describe_counter!(
        "hedgerow_events_failed_total",
        "Access events lost to a failed write"
    );
    describe_counter!(
        "hedgerow_breaches_total",
        "Breaches opened or raised, by severity"
    );
    describe_counter!(
        "hedgerow_alerts_total",
        "Alert deliveries by channel and result (each attempt)"
    );
    describe_gauge!("hedgerow_list_entries", "Entries of each list in force");
    describe_gauge!(
        "hedgerow_list_age_seconds",
        "Age of each list: a downloaded one since its source last confirmed it, a file since it changed"
    );
    describe_counter!(
        "hedgerow_list_fetches_total",
        "List downloads by list and result"
    );
    describe_counter!("hedgerow_reloads_total", "Reloads by result");
    describe_gauge!("hedgerow_store_bytes", "Bytes the log store takes on disk");
}
