//! The running appliance's report on itself for the console's system status page (the admin
//! crate's `StatusSource`): listeners and upstreams from the configuration in force, each
//! upstream's health as the DNS front's forwarder counts it (matched by address), the DNS
//! front's counters, each list's age and last update (as `hedgerow lists status` reads them),
//! and the recorder's written and dropped events.

use std::sync::Arc;

use hedgerow_admin::status::{
    ListStatus, ListenerStatus, RuntimeStatus, StatusSource, UpstreamState, UpstreamStatus,
};
use hedgerow_policy::PolicyHandle;

pub(crate) fn source(
    handle: Arc<PolicyHandle>,
    resolver: Arc<hedgerow_dns::Resolver>,
    recorder: Arc<hedgerow_store::Recorder>,
) -> StatusSource {
    let started = jiff::Timestamp::now();
    Arc::new(move || {
        let snap = handle.snapshot();
        let c = snap.config();
        let mut listeners = Vec::new();
        let mut add = |what: &str, addr: String| {
            listeners.push(ListenerStatus {
                what: what.to_owned(),
                address: addr,
            })
        };
        for a in &c.dns.listen {
            add("DNS (UDP and TCP)", a.to_string());
        }
        if let Some(p) = &c.proxy {
            for a in &p.listen {
                add("Web proxy", a.to_string());
            }
        }
        if let Some(b) = &c.blockpage {
            for a in &b.listen {
                add("Block page (HTTP)", a.to_string());
            }
        }
        if let Some(m) = &c.metrics {
            for a in &m.listen {
                add("Metrics and health", a.to_string());
            }
        }
        if let Some(a) = &c.api {
            add("API (HTTPS)", a.listen.to_string());
        }
        if let Some(a) = &c.console {
            add("Console (HTTPS)", a.listen.to_string());
        }
        // Counters are kept by address since the start, across reloads: each upstream in force
        // now takes its own, or none yet.
        let health = resolver.upstream_health();
        let upstreams = c
            .dns
            .upstreams
            .iter()
            .map(|u| {
                let h = health.iter().find(|h| h.address == u.address);
                let (answers, errors, timeouts) =
                    h.map_or((0, 0, 0), |h| (h.answers, h.errors, h.timeouts));
                let last_answer = h.and_then(|h| h.last_answer);
                let last_failure = h.and_then(|h| h.last_failure);
                UpstreamStatus {
                    address: u.address.to_string(),
                    protocol: format!("{:?}", u.protocol).to_lowercase(),
                    system: u.system,
                    state: UpstreamState::of(answers, errors + timeouts, last_answer, last_failure),
                    answers,
                    errors,
                    timeouts,
                    last_answer,
                    last_failure,
                    failing_since: h.and_then(|h| h.failing_since),
                    last_error: h.and_then(|h| h.last_error.clone()),
                    latency_ms: h
                        .and_then(|h| h.latency_micros)
                        .map(|us| us as f64 / 1000.0),
                }
            })
            .collect();
        let m = resolver.metrics();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let lists = crate::lists::rows(c)
            .into_iter()
            .map(|r| ListStatus {
                name: r.name,
                kind: r.kind,
                category: r.category,
                source: r.source,
                downloaded: r.downloaded,
                entries: r.entries,
                age_seconds: r.age_seconds,
                max_age_seconds: r.max_age_seconds,
                stale: r.stale,
                result: r.result,
            })
            .collect();
        let stats = recorder.stats();
        RuntimeStatus {
            started: Some(started),
            listeners,
            upstreams,
            dns_queries: get(&m.queries),
            dns_forwarded: get(&m.forwarded),
            dns_servfail: get(&m.servfail),
            lists,
            events_written: stats.written,
            events_dropped: stats.dropped,
            events_failed: stats.failed,
        }
    })
}
