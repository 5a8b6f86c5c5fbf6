//! The audit log: every sign-in, view of pupil records, export and change, newest first, with
//! the hash chain's check. Readable by every role that may read change records (governors
//! included): its entries never carry pupil-level details.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use crate::html::{self, Chrome, when};
use crate::session::{Ctx, Signed, St};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new().route("/audit", get(page))
}

struct Row {
    id: u64,
    time: String,
    actor: String,
    action: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct Page {
    chrome: Chrome,
    rows: Vec<Row>,
    total: usize,
    page: usize,
    pages: usize,
    chain: String,
    chain_ok: bool,
}

#[derive(Deserialize, Default)]
struct At {
    page: Option<usize>,
}

const PER_PAGE: usize = 100;

async fn page(State(ctx): St, me: Signed, Query(at): Query<At>) -> Response {
    let account = me.account.clone();
    let got = ctx
        .run(move |a| Ok((a.audit_log(&account)?, a.audit_verify(&account)?)))
        .await;
    let (entries, check) = match got {
        Ok(x) => x,
        Err(e) => return html::error(&me, e),
    };
    let total = entries.len();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = at.page.unwrap_or(1).clamp(1, pages);
    let rows = entries
        .into_iter()
        .rev()
        .skip((page - 1) * PER_PAGE)
        .take(PER_PAGE)
        .map(|e| Row {
            id: e.id,
            time: when(e.time),
            actor: e.actor,
            action: e.action,
            detail: e.detail,
        })
        .collect();
    let chain_ok = check.problems.is_empty();
    html::page(&Page {
        chrome: Chrome::new(&me, "Audit log"),
        rows,
        total,
        page,
        pages,
        chain: if chain_ok {
            format!(
                "The log's hash chain holds: {} entries checked, none altered or removed.",
                check.chained
            )
        } else {
            format!("The hash chain is broken: {}", check.problems.join("; "))
        },
        chain_ok,
    })
}
