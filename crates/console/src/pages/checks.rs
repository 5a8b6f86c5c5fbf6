//! The check log: each yearly (or termly, or out-of-cycle) effectiveness check as
//! `hedgerow check` recorded it, its failures and the actions taken; the review triggers
//! that call for a check out of cycle. Governors read it; people who may propose changes
//! record actions and triggers.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hedgerow_admin::Permission;
use hedgerow_admin::checks::TriggerKind;
use serde::Deserialize;

use crate::html::{self, Chrome, when};
use crate::session::{Ctx, Signed, SignedForm, St};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/checks", get(list))
        .route("/checks/triggers", post(trigger))
        .route("/checks/{id}", get(show))
        .route("/checks/{id}/actions", post(action))
}

struct Row {
    id: u64,
    when: String,
    by: String,
    scheduled: bool,
    passed: bool,
    probes: u64,
    failures: u64,
    seconds: String,
    actions: usize,
}

struct Trigger {
    id: u64,
    when: String,
    by: String,
    kind: &'static str,
    note: String,
    check: Option<u64>,
}

const KINDS: &[(&str, &str)] = &[
    ("new-device-type", "New type of device"),
    ("network-change", "Change to the network"),
    ("new-ai-tool", "New AI tool"),
    ("safeguarding-incident", "Safeguarding incident"),
    ("major-update", "Major update"),
    ("other", "Other"),
];

fn kind_label(k: TriggerKind) -> &'static str {
    let id = serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    KINDS
        .iter()
        .find(|(v, _)| *v == id)
        .map_or("Other", |(_, l)| *l)
}

#[derive(Template)]
#[template(path = "checks/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    triggers: Vec<Trigger>,
    kinds: &'static [(&'static str, &'static str)],
    may_act: bool,
}

async fn list(State(ctx): St, me: Signed) -> Response {
    let account = me.account.clone();
    let got = ctx
        .run(move |a| Ok((a.checks(&account)?, a.triggers(&account)?)))
        .await;
    let (checks, triggers) = match got {
        Ok(x) => x,
        Err(e) => return html::error(&me, e),
    };
    html::page(&ListPage {
        chrome: Chrome::new(&me, "Check log"),
        rows: checks
            .into_iter()
            .rev()
            .map(|c| Row {
                id: c.id,
                when: when(c.recorded),
                by: c.by,
                scheduled: c.scheduled,
                passed: c.passed,
                probes: c.probes,
                failures: c.failures,
                seconds: format!("{:.1}", c.seconds),
                actions: c.actions,
            })
            .collect(),
        triggers: triggers
            .into_iter()
            .rev()
            .map(|t| Trigger {
                id: t.id,
                when: when(t.time),
                by: t.by,
                kind: kind_label(t.kind),
                note: t.note,
                check: t.check,
            })
            .collect(),
        kinds: KINDS,
        may_act: me.account.may(Permission::Propose),
    })
}

struct Failure {
    group: String,
    via: String,
    section: String,
    category: String,
    probe: String,
    expected: String,
    actual: String,
}

struct Action {
    when: String,
    by: String,
    text: String,
    change: Option<u64>,
}

#[derive(Template)]
#[template(path = "checks/show.html")]
struct ShowPage {
    chrome: Chrome,
    id: u64,
    when: String,
    by: String,
    passed: bool,
    probes: u64,
    failures: Vec<Failure>,
    actions: Vec<Action>,
    may_act: bool,
}

fn text(v: &serde_json::Value, key: &str) -> String {
    match v.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

async fn show(State(ctx): St, me: Signed, Path(id): Path<u64>) -> Response {
    let account = me.account.clone();
    let rec = match ctx.run(move |a| a.check(&account, id)).await {
        Ok(r) => r,
        Err(e) => return html::error(&me, e),
    };
    let failures = rec
        .result
        .get("failures")
        .and_then(|f| f.as_array())
        .map(|all| {
            all.iter()
                .map(|f| Failure {
                    group: text(f, "group"),
                    via: text(f, "via"),
                    section: text(f, "section"),
                    category: text(f, "category"),
                    probe: text(f, "probe"),
                    expected: text(f, "expected"),
                    actual: text(f, "actual"),
                })
                .collect()
        })
        .unwrap_or_default();
    html::page(&ShowPage {
        chrome: Chrome::new(&me, format!("Check #{id}")),
        id,
        when: when(rec.recorded),
        by: rec.by.clone(),
        passed: rec
            .result
            .get("passed")
            .and_then(|p| p.as_bool())
            .unwrap_or(false),
        probes: rec
            .result
            .get("probes")
            .and_then(|p| p.as_u64())
            .unwrap_or(0),
        failures,
        actions: rec
            .actions
            .iter()
            .map(|a| Action {
                when: when(a.time),
                by: a.by.clone(),
                text: a.text.clone(),
                change: a.change,
            })
            .collect(),
        may_act: me.account.may(Permission::Propose),
    })
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    change: String,
}

async fn action(State(ctx): St, Path(id): Path<u64>, f: SignedForm<ActionForm>) -> Response {
    let SignedForm { me, form } = f;
    let change = match form.change.trim().trim_start_matches('#') {
        "" => None,
        c => match c.parse() {
            Ok(n) => Some(n),
            Err(_) => {
                return html::error(
                    &me,
                    hedgerow_admin::AdminError::Invalid(format!("{c:?} is not a change number")),
                );
            }
        },
    };
    let account = me.account.clone();
    match ctx
        .run(move |a| a.add_check_action(&account, id, &form.text, change))
        .await
    {
        Ok(_) => Redirect::to(&format!("/checks/{id}")).into_response(),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize)]
struct TriggerForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    note: String,
}

async fn trigger(State(ctx): St, f: SignedForm<TriggerForm>) -> Response {
    let SignedForm { me, form } = f;
    let kind: TriggerKind = match serde_json::from_value(serde_json::Value::String(form.kind)) {
        Ok(k) => k,
        Err(_) => {
            return html::error(
                &me,
                hedgerow_admin::AdminError::Invalid("choose what prompts the review".into()),
            );
        }
    };
    let account = me.account.clone();
    match ctx
        .run(move |a| a.record_trigger(&account, kind, &form.note))
        .await
    {
        Ok(_) => Redirect::to("/checks").into_response(),
        Err(e) => html::error(&me, e),
    }
}
