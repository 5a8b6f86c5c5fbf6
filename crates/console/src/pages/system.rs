//! System status for technicians: listeners, upstream resolvers and the DNS counters, each
//! list's source, age and last update (stale ones first), the store's size and days held, and
//! events written and dropped since the start.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use hedgerow_admin::status::SystemStatus;

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

#[derive(Template)]
#[template(path = "system.html")]
struct Page {
    chrome: Chrome,
    s: SystemStatus,
    started: String,
    store: String,
    lists: Vec<ListRow>,
    stale: usize,
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
    html::page(&Page {
        chrome: Chrome::new(&me, "System status"),
        started: s.runtime.started.map(when).unwrap_or_default(),
        store: size(s.store_bytes),
        stale: lists.iter().filter(|l| l.stale).count(),
        lists,
        s,
    })
}
