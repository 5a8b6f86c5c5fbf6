//! The review queue: requests made from the block page by pupils and staff who think a block
//! is wrong. Each is declined with a reason, approved, or turned into a change request that
//! allows the site for the requester's group (linked onto the request); the requester sees
//! the outcome on the block page server by the request's reference.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hedgerow_admin::cases::ToChange;
use hedgerow_admin::cases::{ReviewRequest, ReviewStatus};
use hedgerow_admin::{AdminError, Permission};
use hedgerow_model::Tier;
use serde::Deserialize;

use crate::html::{self, Chrome, when};
use crate::session::{Ctx, Signed, SignedForm, St};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/reviews", get(list))
        .route("/reviews/{reference}", get(show))
        .route("/reviews/{reference}/decide", post(decide))
        .route("/reviews/{reference}/change", post(to_change))
}

fn status_word(s: ReviewStatus) -> (&'static str, &'static str) {
    match s {
        ReviewStatus::Pending => ("Waiting", "st-new"),
        ReviewStatus::Approved => ("Approved", "st-applied"),
        ReviewStatus::Declined => ("Declined", "st-rejected"),
        ReviewStatus::ChangeRequested => ("Change request raised", "st-proposed"),
    }
}

struct Row {
    reference: String,
    asked: String,
    who: String,
    group: String,
    target: String,
    category: String,
    reason: String,
    name: String,
    status: &'static str,
    status_class: &'static str,
    note: String,
    decided: String,
    change: Option<u64>,
    illegal: bool,
}

fn row(r: &ReviewRequest) -> Row {
    let (status, status_class) = status_word(r.status);
    Row {
        reference: format!("{:016x}", r.reference),
        asked: when(r.asked),
        who: r.device.clone().unwrap_or_else(|| r.client.to_string()),
        group: r.group.clone().unwrap_or_default(),
        target: r.target.clone(),
        category: r
            .category
            .as_ref()
            .map(|c| c.display_name().to_owned())
            .unwrap_or_default(),
        reason: r.reason.clone(),
        name: r.name.clone().unwrap_or_default(),
        status,
        status_class,
        note: r.note.clone().unwrap_or_default(),
        decided: match (&r.decided, &r.decided_by) {
            (Some(t), Some(by)) => format!("{} by {by}", when(*t)),
            _ => String::new(),
        },
        change: r.change,
        illegal: r.tier == Tier::Illegal,
    }
}

fn parse(reference: &str) -> Result<u64, AdminError> {
    hedgerow_admin::report::parse_reference(reference).map_err(AdminError::Invalid)
}

#[derive(Template)]
#[template(path = "reviews/list.html")]
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
    let show = q.show.unwrap_or_else(|| "pending".into());
    let status = (show == "pending").then_some(ReviewStatus::Pending);
    let account = me.account.clone();
    match ctx
        .run(move |a| a.review_requests(&account, status, 500))
        .await
    {
        Ok(all) => html::page(&ListPage {
            chrome: Chrome::new(&me, "Review requests"),
            rows: all.iter().map(row).collect(),
            show,
        }),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Template)]
#[template(path = "reviews/show.html")]
struct ShowPage {
    chrome: Chrome,
    r: Row,
    pending: bool,
    may_propose: bool,
    groups: Vec<String>,
    entry: String,
    error: Option<String>,
}

async fn show_page(ctx: &Arc<Ctx>, me: &Signed, reference: u64, error: Option<String>) -> Response {
    let account = me.account.clone();
    let got = ctx
        .run(move |a| {
            let r = a.review_request(&account, reference)?;
            let groups = a.groups(&account).unwrap_or_default();
            Ok((r, groups))
        })
        .await;
    let (r, groups) = match got {
        Ok(x) => x,
        Err(e) => return html::error(me, e),
    };
    let entry = if r.tier == Tier::Illegal {
        String::new()
    } else {
        hedgerow_model::UrlKey::parse(&r.target)
            .map(|u| u.host().to_string())
            .unwrap_or_default()
    };
    let page = ShowPage {
        chrome: Chrome::new(me, format!("Review request {:016x}", r.reference)),
        pending: r.status == ReviewStatus::Pending,
        may_propose: me.account.may(Permission::Propose),
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

async fn show(State(ctx): St, me: Signed, Path(reference): Path<String>) -> Response {
    match parse(&reference) {
        Ok(r) => show_page(&ctx, &me, r, None).await,
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize, Default)]
struct DecideForm {
    #[serde(default)]
    status: String,
    #[serde(default)]
    note: String,
}

async fn decide(
    State(ctx): St,
    Path(reference): Path<String>,
    f: SignedForm<DecideForm>,
) -> Response {
    let SignedForm { me, form } = f;
    let reference = match parse(&reference) {
        Ok(r) => r,
        Err(e) => return html::error(&me, e),
    };
    let status = match form.status.as_str() {
        "approved" => ReviewStatus::Approved,
        "declined" => ReviewStatus::Declined,
        _ => {
            return show_page(
                &ctx,
                &me,
                reference,
                Some("choose approve or decline".into()),
            )
            .await;
        }
    };
    let account = me.account.clone();
    let note = Some(form.note.trim().to_owned()).filter(|n| !n.is_empty());
    match ctx
        .run(move |a| a.decide_review(&account, reference, status, note.as_deref()))
        .await
    {
        Ok(_) => Redirect::to(&format!("/reviews/{reference:016x}")).into_response(),
        Err(e @ AdminError::Invalid(_)) => {
            show_page(&ctx, &me, reference, Some(e.to_string())).await
        }
        Err(e) => html::error(&me, e),
    }
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

async fn to_change(
    State(ctx): St,
    Path(reference): Path<String>,
    f: SignedForm<ChangeForm>,
) -> Response {
    let SignedForm { me, form } = f;
    let reference = match parse(&reference) {
        Ok(r) => r,
        Err(e) => return html::error(&me, e),
    };
    let how = ToChange {
        groups: form.groups,
        entry: Some(form.entry).filter(|e| !e.trim().is_empty()),
        note: Some(form.note).filter(|n| !n.trim().is_empty()),
        ..ToChange::default()
    };
    let account = me.account.clone();
    match ctx
        .run(move |a| a.review_to_change(&account, reference, how))
        .await
    {
        Ok((_, c)) => Redirect::to(&format!("/changes/{}", c.id)).into_response(),
        Err(e @ (AdminError::Invalid(_) | AdminError::Conflict(_) | AdminError::Validation(_))) => {
            show_page(&ctx, &me, reference, Some(e.to_string())).await
        }
        Err(e) => html::error(&me, e),
    }
}
