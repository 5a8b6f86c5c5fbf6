//! Staff reports of unsuitable sites (both schools' policies: staff report the address to the
//! DSL). Any signed-in account files one and follows its own reports' status
//! (`/report-site`); the DSL and deputies list them (`/site-reports`) and turn each into a
//! change request that blocks the site for the groups chosen, or dismiss it with the reason
//! the reporter sees.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hedgerow_admin::cases::{ReportStatus, SiteReport, ToChange};
use hedgerow_admin::{AdminError, Permission};
use serde::Deserialize;

use crate::html::{self, Chrome, when};
use crate::session::{Ctx, Signed, SignedForm, St};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/report-site", get(form).post(file))
        .route("/site-reports", get(list))
        .route("/site-reports/{id}", get(show))
        .route("/site-reports/{id}/change", post(to_change))
        .route("/site-reports/{id}/dismiss", post(dismiss))
}

fn status_word(s: ReportStatus) -> (&'static str, &'static str) {
    match s {
        ReportStatus::Pending => ("Waiting for the DSL", "st-new"),
        ReportStatus::ChangeRequested => ("A change to block it was raised", "st-applied"),
        ReportStatus::Dismissed => ("Looked at: no change", "st-rejected"),
    }
}

/// A report as a row.
struct Row {
    id: u64,
    time: String,
    reporter: String,
    url: String,
    protected: bool,
    reason: String,
    status: &'static str,
    status_class: &'static str,
    note: String,
    change: Option<u64>,
    decided: String,
}

fn row(r: &SiteReport) -> Row {
    let (status, status_class) = status_word(r.status);
    Row {
        id: r.id,
        time: when(r.time),
        reporter: r.reporter.clone(),
        url: r.url.clone(),
        protected: r.protected,
        reason: r.reason.clone(),
        status,
        status_class,
        note: r.note.clone().unwrap_or_default(),
        change: r.change,
        decided: r
            .decided
            .as_ref()
            .map(|d| format!("{} by {}", when(d.time), d.by))
            .unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "site_reports/form.html")]
struct FormPage {
    chrome: Chrome,
    url: String,
    reason: String,
    error: Option<String>,
    sent: Option<u64>,
    mine: Vec<Row>,
}

#[derive(Deserialize, Default)]
struct Sent {
    sent: Option<u64>,
}

async fn form_page(
    ctx: &Arc<Ctx>,
    me: &Signed,
    url: String,
    reason: String,
    error: Option<String>,
    sent: Option<u64>,
) -> Response {
    let account = me.account.clone();
    // The DSL sees everyone's on /site-reports; here, only one's own.
    let mine = match ctx.run(move |a| a.site_reports(&account, None)).await {
        Ok(all) => all
            .iter()
            .filter(|r| r.reporter == me.account.name)
            .map(row)
            .collect(),
        Err(e) => return html::error(me, e),
    };
    let page = FormPage {
        chrome: Chrome::new(me, "Report a site"),
        url,
        reason,
        sent,
        mine,
        error,
    };
    if page.error.is_some() {
        html::page_status(axum::http::StatusCode::BAD_REQUEST, &page)
    } else {
        html::page(&page)
    }
}

async fn form(State(ctx): St, me: Signed, Query(s): Query<Sent>) -> Response {
    form_page(&ctx, &me, String::new(), String::new(), None, s.sent).await
}

#[derive(Deserialize, Default)]
struct ReportForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    reason: String,
}

async fn file(State(ctx): St, f: SignedForm<ReportForm>) -> Response {
    let SignedForm { me, form } = f;
    let account = me.account.clone();
    let (url, reason) = (form.url.clone(), form.reason.clone());
    match ctx
        .run(move |a| a.report_site(&account, &url, &reason))
        .await
    {
        Ok(r) => Redirect::to(&format!("/report-site?sent={}", r.id)).into_response(),
        Err(e @ AdminError::Invalid(_)) => {
            form_page(&ctx, &me, form.url, form.reason, Some(e.to_string()), None).await
        }
        Err(e) => html::error(&me, e),
    }
}

#[derive(Template)]
#[template(path = "site_reports/list.html")]
struct ListPage {
    chrome: Chrome,
    show: String,
    rows: Vec<Row>,
}

#[derive(Deserialize, Default)]
struct Show {
    show: Option<String>,
}

async fn list(State(ctx): St, me: Signed, Query(q): Query<Show>) -> Response {
    // The list of everyone's reports is the DSL's: others are refused here, as the
    // operation would show them only their own.
    if let Err(e) = me.account.authorize(Permission::PupilData) {
        return html::error(&me, e);
    }
    let show = q.show.unwrap_or_else(|| "pending".into());
    let status = (show == "pending").then_some(ReportStatus::Pending);
    let account = me.account.clone();
    match ctx.run(move |a| a.site_reports(&account, status)).await {
        Ok(all) => html::page(&ListPage {
            chrome: Chrome::new(&me, "Sites reported by staff"),
            rows: all.iter().map(row).collect(),
            show,
        }),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Template)]
#[template(path = "site_reports/show.html")]
struct ShowPage {
    chrome: Chrome,
    r: Row,
    pending: bool,
    may_decide: bool,
    groups: Vec<String>,
    entry: String,
    error: Option<String>,
}

async fn show_page(ctx: &Arc<Ctx>, me: &Signed, id: u64, error: Option<String>) -> Response {
    let account = me.account.clone();
    let may_decide = me.account.may(Permission::PupilData);
    let got = ctx
        .run(move |a| {
            let r = a.site_report(&account, id)?;
            let groups = if may_decide {
                a.groups(&account)?
            } else {
                Vec::new()
            };
            Ok((r, groups))
        })
        .await;
    let (r, groups) = match got {
        Ok(x) => x,
        Err(e) => return html::error(me, e),
    };
    let entry = if r.protected {
        String::new()
    } else {
        hedgerow_model::UrlKey::parse(&r.url)
            .map(|u| u.host().to_string())
            .unwrap_or_default()
    };
    let page = ShowPage {
        chrome: Chrome::new(me, format!("Site report #{id}")),
        pending: r.status == ReportStatus::Pending,
        may_decide,
        r: row(&r),
        groups,
        entry,
        error,
    };
    if page.error.is_some() {
        html::page_status(axum::http::StatusCode::BAD_REQUEST, &page)
    } else {
        html::page(&page)
    }
}

async fn show(State(ctx): St, me: Signed, Path(id): Path<u64>) -> Response {
    show_page(&ctx, &me, id, None).await
}

#[derive(Deserialize, Default)]
struct ChangeForm {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    entry: String,
    #[serde(default)]
    note: String,
}

async fn to_change(State(ctx): St, Path(id): Path<u64>, f: SignedForm<ChangeForm>) -> Response {
    let SignedForm { me, form } = f;
    let account = me.account.clone();
    let how = ToChange {
        groups: form.groups,
        entry: Some(form.entry).filter(|e| !e.trim().is_empty()),
        note: Some(form.note).filter(|n| !n.trim().is_empty()),
        ..ToChange::default()
    };
    match ctx
        .run(move |a| a.report_to_change(&account, id, how))
        .await
    {
        Ok(_) => Redirect::to(&format!("/site-reports/{id}")).into_response(),
        Err(e @ (AdminError::Invalid(_) | AdminError::Conflict(_) | AdminError::Validation(_))) => {
            show_page(&ctx, &me, id, Some(e.to_string())).await
        }
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize, Default)]
struct DismissForm {
    #[serde(default)]
    reason: String,
}

async fn dismiss(State(ctx): St, Path(id): Path<u64>, f: SignedForm<DismissForm>) -> Response {
    let SignedForm { me, form } = f;
    let account = me.account.clone();
    match ctx
        .run(move |a| a.dismiss_report(&account, id, &form.reason))
        .await
    {
        Ok(_) => Redirect::to(&format!("/site-reports/{id}")).into_response(),
        Err(e @ (AdminError::Invalid(_) | AdminError::Conflict(_))) => {
            show_page(&ctx, &me, id, Some(e.to_string())).await
        }
        Err(e) => html::error(&me, e),
    }
}
