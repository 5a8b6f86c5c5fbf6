//! System status for technicians: listeners, upstream resolvers (each one's state, answers,
//! failures, last answer, last error and latency) and the DNS counters, each
//! list's source, age and last update (stale ones first), the store's size and days held, and
//! events written and dropped since the start.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use hedgerow_admin::status::{SystemStatus, UpstreamState, UpstreamStatus};

use crate::html::{self, Chrome, when};
use crate::session::{Ctx, Signed, St};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new().route("/system", get(page))
}

struct ListRow {
    name: String,
    kind: String,
    category: String,
    source: String,
    entries: String,
    age: String,
    stale: bool,
    result: String,
}

struct UpstreamRow {
    address: String,
    protocol: String,
    system: bool,
    state: &'static str,
    /// The state's badge colour.
    class: &'static str,
    answers: u64,
    failures: u64,
    last_answer: String,
    last_error: String,
    latency: String,
}

#[derive(Template)]
#[template(path = "system.html")]
struct Page {
    chrome: Chrome,
    s: SystemStatus,
    started: String,
    store: String,
    lists: Vec<ListRow>,
    stale: usize,
    upstreams: Vec<UpstreamRow>,
    /// Upstreams failing, and whether another is answering meanwhile.
    failing: usize,
    answering: bool,
}

/// Seconds from `t` to `now`, in words ("never" for no time).
fn ago(t: Option<jiff::Timestamp>, now: jiff::Timestamp) -> String {
    match t {
        None => "never".into(),
        Some(t) => {
            let secs = u64::try_from(now.as_second() - t.as_second()).unwrap_or(0);
            format!("{} ago", age(secs))
        }
    }
}

fn upstream_row(u: &UpstreamStatus, now: jiff::Timestamp) -> UpstreamRow {
    let class = match u.state {
        UpstreamState::Answering => "badge st-applied",
        UpstreamState::Failing => "badge st-failed",
        UpstreamState::NotAskedYet => "badge",
    };
    let last_error = match (&u.last_error, u.failing_since) {
        (Some(e), Some(since)) => format!("{e} (failing since {})", when(since)),
        (Some(e), None) => format!("{e} ({})", ago(u.last_failure, now)),
        (None, _) => String::new(),
    };
    UpstreamRow {
        address: u.address.clone(),
        protocol: u.protocol.to_uppercase(),
        system: u.system,
        state: u.state.words(),
        class,
        answers: u.answers,
        failures: u.errors + u.timeouts,
        last_answer: ago(u.last_answer, now),
        last_error,
        latency: u
            .latency_ms
            .map(|ms| format!("{ms:.1} ms"))
            .unwrap_or_default(),
    }
}

/// A duration in words a technician reads at a glance.
pub(crate) fn age(secs: u64) -> String {
    match secs {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Bytes in words.
pub(crate) fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    let b = bytes as f64;
    if b >= 1024.0 * MIB {
        format!("{:.1} GiB", b / 1024.0 / MIB)
    } else {
        format!("{:.1} MiB", b / MIB)
    }
}

async fn page(State(ctx): St, me: Signed) -> Response {
    let account = me.account.clone();
    let s = match ctx.run(move |a| a.system_status(&account)).await {
        Ok(s) => s,
        Err(e) => return html::error(&me, e),
    };
    let mut lists: Vec<ListRow> = s
        .runtime
        .lists
        .iter()
        .map(|l| ListRow {
            name: l.name.clone(),
            kind: l.kind.clone(),
            category: l.category.clone().unwrap_or_default(),
            source: l.source.clone(),
            entries: l.entries.map(|n| n.to_string()).unwrap_or_default(),
            age: l.age_seconds.map(age).unwrap_or_else(|| "never".into()),
            stale: l.stale,
            result: l.result.clone(),
        })
        .collect();
    lists.sort_by_key(|l| !l.stale);
    let now = jiff::Timestamp::now();
    let upstreams: Vec<UpstreamRow> = s
        .runtime
        .upstreams
        .iter()
        .map(|u| upstream_row(u, now))
        .collect();
    let states = || s.runtime.upstreams.iter().map(|u| u.state);
    let failing = states().filter(|&st| st == UpstreamState::Failing).count();
    let answering = states().any(|st| st == UpstreamState::Answering);
    html::page(&Page {
        chrome: Chrome::new(&me, "System status"),
        started: s.runtime.started.map(when).unwrap_or_default(),
        store: size(s.store_bytes),
        stale: lists.iter().filter(|l| l.stale).count(),
        lists,
        upstreams,
        failing,
        answering,
        s,
    })
}
