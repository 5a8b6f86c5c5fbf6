//! Filter changes: the list (waiting, time-limited exceptions in force, history), proposing
//! one with its risk assessment after seeing its preview, one change with its diff, changed
//! verdicts and signatures, and approving, rejecting, applying and rolling back. Approving and
//! rejecting ask for the password again (re-authentication).

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hedgerow_admin::{
    AdminError, ChangeRequest, Direction, Edit, Permission, Proposal, ProposalPreview, Risk,
    RiskAssessment, Role, Status,
};
use serde::Deserialize;

use crate::html::{self, Chrome, role_name, when};
use crate::session::{Ctx, Signed, SignedForm, St, reauthenticate};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/changes", get(list).post(propose))
        .route("/changes/new", get(new))
        .route("/changes/preview", post(preview))
        .route("/changes/{id}", get(show))
        .route("/changes/{id}/approve", post(approve))
        .route("/changes/{id}/reject", post(reject))
        .route("/changes/{id}/apply", post(apply))
        .route("/changes/{id}/revert", post(revert))
}

/// A change as a row of the list.
struct Row {
    id: u64,
    created: String,
    proposer: String,
    summary: String,
    loosens: bool,
    risk: &'static str,
    status: &'static str,
    status_class: &'static str,
    waiting_for: String,
    expires: Option<String>,
}

pub(crate) fn status_word(s: Status) -> (&'static str, &'static str) {
    match s {
        Status::Proposed => ("Waiting for approval", "st-proposed"),
        Status::Approved => ("Approved, not yet applied", "st-proposed"),
        Status::Rejected => ("Rejected", "st-rejected"),
        Status::Applied => ("Applied", "st-applied"),
        Status::Failed => ("Failed (nothing changed)", "st-failed"),
        Status::Reverted => ("Rolled back", "st-rejected"),
        Status::Unreviewed => ("Edited by hand: not reviewed", "st-failed"),
        Status::Acknowledged => ("Edited by hand: reviewed", "st-applied"),
    }
}

fn risk_word(r: Risk) -> &'static str {
    match r {
        Risk::Low => "Low",
        Risk::Medium => "Medium",
        Risk::High => "High",
    }
}

fn summary(c: &ChangeRequest) -> String {
    c.edits
        .iter()
        .map(Edit::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

fn row(c: &ChangeRequest) -> Row {
    let (status, status_class) = status_word(c.status);
    Row {
        id: c.id,
        created: when(c.created),
        proposer: c.proposer.clone(),
        summary: summary(c),
        loosens: c.direction == Direction::Loosening,
        risk: risk_word(c.risk.risk),
        status,
        status_class,
        waiting_for: c
            .missing()
            .into_iter()
            .map(role_name)
            .collect::<Vec<_>>()
            .join(", "),
        expires: c.risk.expires.map(when),
    }
}

#[derive(Template)]
#[template(path = "changes/list.html")]
struct ListPage {
    chrome: Chrome,
    show: String,
    rows: Vec<Row>,
    may_propose: bool,
}

#[derive(Deserialize, Default)]
struct Show {
    show: Option<String>,
}

async fn list(State(ctx): St, me: Signed, Query(q): Query<Show>) -> Response {
    let account = me.account.clone();
    let all = match ctx.run(move |a| a.changes(&account)).await {
        Ok(all) => all,
        Err(e) => return html::error(&me, e),
    };
    let show = q.show.unwrap_or_else(|| "waiting".into());
    let now = jiff::Timestamp::now();
    let mut rows: Vec<Row> = all
        .iter()
        .rev()
        .filter(|c| match show.as_str() {
            "waiting" => matches!(
                c.status,
                Status::Proposed | Status::Approved | Status::Unreviewed
            ),
            "exceptions" => c.status == Status::Applied && c.risk.expires.is_some_and(|t| t > now),
            _ => true,
        })
        .map(row)
        .collect();
    rows.truncate(500);
    html::page(&ListPage {
        chrome: Chrome::new(&me, "Changes"),
        may_propose: me.account.may(Permission::Propose),
        show,
        rows,
    })
}

/// What the proposal form holds, posted to the preview and then to propose.
#[derive(Deserialize, Default, Clone)]
struct ProposeForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    entry: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    risk: String,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    benefit: String,
    #[serde(default)]
    mitigations: String,
    /// `YYYY-MM-DDTHH:MM`, local time: a curriculum exception's end.
    #[serde(default)]
    expires: String,
    /// More sites to show in the preview, one a line.
    #[serde(default)]
    check: String,
}

/// The kinds of change the form offers, as (value, label).
const ACTIONS: &[(&str, &str)] = &[
    ("allow", "Allow a site (or URL)"),
    ("block", "Block a site (or URL)"),
    ("remove-allow", "Remove a site from the allow list"),
    ("remove-block", "Remove a site from the block list"),
    ("block-category", "Block a category"),
    ("unblock-category", "Stop blocking a category"),
    ("safesearch", "Set SafeSearch"),
    ("youtube", "Set YouTube restriction"),
];

impl ProposeForm {
    fn edits(&self) -> Result<Vec<Edit>, AdminError> {
        if self.groups.is_empty() {
            return Err(AdminError::Invalid(
                "choose at least one group the change is for".into(),
            ));
        }
        let entry = self.entry.trim();
        let need_entry = || {
            if entry.is_empty() {
                Err(AdminError::Invalid(
                    "enter the site or URL the change is about".into(),
                ))
            } else {
                Ok(entry.to_owned())
            }
        };
        let category = || {
            if self.category.is_empty() {
                Err(AdminError::Invalid("choose a category".into()))
            } else {
                Ok(self.category.clone())
            }
        };
        let mut out = Vec::new();
        for g in &self.groups {
            let group = g.clone();
            out.push(match self.action.as_str() {
                "allow" => Edit::AddAllow {
                    group,
                    entry: need_entry()?,
                },
                "block" => Edit::AddBlock {
                    group,
                    entry: need_entry()?,
                },
                "remove-allow" => Edit::RemoveAllow {
                    group,
                    entry: need_entry()?,
                },
                "remove-block" => Edit::RemoveBlock {
                    group,
                    entry: need_entry()?,
                },
                "block-category" => Edit::BlockCategory {
                    group,
                    category: category()?,
                },
                "unblock-category" => Edit::UnblockCategory {
                    group,
                    category: category()?,
                },
                "safesearch" => Edit::SafeSearch {
                    group,
                    mode: self.mode.clone(),
                },
                "youtube" => Edit::Youtube {
                    group,
                    mode: self.mode.clone(),
                },
                _ => return Err(AdminError::Invalid("choose what to change".into())),
            });
        }
        Ok(out)
    }

    fn proposal(&self) -> Result<Proposal, AdminError> {
        let risk = match self.risk.as_str() {
            "low" => Risk::Low,
            "medium" => Risk::Medium,
            "high" => Risk::High,
            _ => {
                return Err(AdminError::Invalid(
                    "rate the safeguarding risk: low, medium or high".into(),
                ));
            }
        };
        let expires = match self.expires.trim() {
            "" => None,
            t => Some(local_time(t)?),
        };
        Ok(Proposal {
            reason: self.reason.trim().to_owned(),
            risk: RiskAssessment {
                groups: self.groups.clone(),
                risk,
                justification: self.justification.trim().to_owned(),
                benefit: self.benefit.trim().to_owned(),
                mitigations: self.mitigations.trim().to_owned(),
                expires,
            },
            edits: self.edits()?,
            check: self
                .check
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .take(50)
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// A `datetime-local` value (`2026-12-24T15:30`) in the appliance's time zone.
fn local_time(t: &str) -> Result<jiff::Timestamp, AdminError> {
    let civil: jiff::civil::DateTime = t.parse().map_err(|_| {
        AdminError::Invalid(format!(
            "the expiry {t:?} is not a date and time such as 2026-12-24T15:30"
        ))
    })?;
    civil
        .to_zoned(jiff::tz::TimeZone::system())
        .map(|z| z.timestamp())
        .map_err(|e| AdminError::Invalid(format!("the expiry {t:?}: {e}")))
}

#[derive(Template)]
#[template(path = "changes/new.html")]
struct NewPage {
    chrome: Chrome,
    form: ProposeForm,
    groups: Vec<String>,
    actions: &'static [(&'static str, &'static str)],
    categories: Vec<(&'static str, &'static str)>,
    error: Option<String>,
}

fn categories() -> Vec<(&'static str, &'static str)> {
    hedgerow_model::VOCABULARY
        .iter()
        .map(|c| (c.id, c.name))
        .collect()
}

async fn form_page(
    ctx: &Arc<Ctx>,
    me: &Signed,
    form: ProposeForm,
    error: Option<String>,
) -> Response {
    let account = me.account.clone();
    let groups = match ctx.run(move |a| a.groups(&account)).await {
        Ok(g) => g,
        Err(e) => return html::error(me, e),
    };
    let page = NewPage {
        chrome: Chrome::new(me, "Propose a change"),
        form,
        groups,
        actions: ACTIONS,
        categories: categories(),
        error,
    };
    if page.error.is_some() {
        html::page_status(axum::http::StatusCode::BAD_REQUEST, &page)
    } else {
        html::page(&page)
    }
}

#[derive(Deserialize, Default)]
struct Prefill {
    action: Option<String>,
    entry: Option<String>,
    group: Option<String>,
    reason: Option<String>,
}

async fn new(State(ctx): St, me: Signed, Query(p): Query<Prefill>) -> Response {
    if let Err(e) = me.account.authorize(Permission::Propose) {
        return html::error(&me, e);
    }
    let form = ProposeForm {
        action: p.action.unwrap_or_default(),
        entry: p.entry.unwrap_or_default(),
        groups: p.group.into_iter().collect(),
        reason: p.reason.unwrap_or_default(),
        ..ProposeForm::default()
    };
    form_page(&ctx, &me, form, None).await
}

/// A diff line with how to show it.
struct DiffLine {
    class: &'static str,
    text: String,
}

fn diff_lines(diff: &str) -> Vec<DiffLine> {
    diff.lines()
        .map(|l| DiffLine {
            class: if l.starts_with('+') && !l.starts_with("+++") {
                "add"
            } else if l.starts_with('-') && !l.starts_with("---") {
                "del"
            } else {
                ""
            },
            text: l.to_owned(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "changes/preview.html")]
struct PreviewPage {
    chrome: Chrome,
    form: ProposeForm,
    loosens: bool,
    needs: String,
    diff: Vec<DiffLine>,
    verdicts: Vec<hedgerow_admin::VerdictChange>,
    summary: String,
}

async fn preview(State(ctx): St, f: SignedForm<ProposeForm>) -> Response {
    let SignedForm { me, form } = f;
    let proposal = match form.proposal() {
        Ok(p) => p,
        Err(e) => return form_page(&ctx, &me, form, Some(e.to_string())).await,
    };
    let account = me.account.clone();
    let p = proposal.clone();
    let shown: Result<ProposalPreview, AdminError> =
        ctx.run(move |a| a.preview_proposal(&account, &p)).await;
    match shown {
        Ok(pv) => html::page(&PreviewPage {
            chrome: Chrome::new(&me, "Check the change before proposing it"),
            loosens: pv.direction == Direction::Loosening,
            needs: if pv.needs.is_empty() {
                "none: it only tightens the filter, so it can be applied at once (it is still recorded)"
                    .into()
            } else {
                pv.needs
                    .iter()
                    .map(|r| role_name(*r))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            diff: diff_lines(&pv.preview.diff),
            verdicts: pv.preview.verdicts,
            summary: proposal
                .edits
                .iter()
                .map(Edit::describe)
                .collect::<Vec<_>>()
                .join("; "),
            form,
        }),
        Err(e @ (AdminError::Invalid(_) | AdminError::Validation(_))) => {
            form_page(&ctx, &me, form, Some(e.to_string())).await
        }
        Err(e) => html::error(&me, e),
    }
}

async fn propose(State(ctx): St, f: SignedForm<ProposeForm>) -> Response {
    let SignedForm { me, form } = f;
    let proposal = match form.proposal() {
        Ok(p) => p,
        Err(e) => return form_page(&ctx, &me, form, Some(e.to_string())).await,
    };
    let account = me.account.clone();
    match ctx.run(move |a| a.propose(&account, proposal)).await {
        Ok(c) => {
            // A tightening change needs no signature: a technician applies it at once.
            if c.missing().is_empty() && me.account.may(Permission::Apply) {
                let account = me.account.clone();
                let id = c.id;
                if let Err(e) = ctx.run(move |a| a.apply(&account, id)).await {
                    return html::error(&me, e);
                }
            }
            Redirect::to(&format!("/changes/{}", c.id)).into_response()
        }
        Err(e @ AdminError::Invalid(_)) => form_page(&ctx, &me, form, Some(e.to_string())).await,
        Err(e) => html::error(&me, e),
    }
}

struct SignatureRow {
    by: String,
    roles: String,
    time: String,
    note: String,
}

#[derive(Template)]
#[template(path = "changes/show.html")]
struct ShowPage {
    chrome: Chrome,
    c: ChangeRequest,
    r: Row,
    origin: &'static str,
    groups: String,
    benefit: String,
    mitigations: String,
    edits: Vec<String>,
    diff: Vec<DiffLine>,
    signatures: Vec<SignatureRow>,
    rejected: Option<SignatureRow>,
    applied: Option<String>,
    may_sign: bool,
    may_apply: bool,
    may_revert: bool,
    may_reject: bool,
    unreviewed: bool,
}

fn signature(s: &hedgerow_admin::Signature) -> SignatureRow {
    SignatureRow {
        by: s.by.clone(),
        roles: s
            .as_roles
            .iter()
            .map(|r| role_name(*r))
            .collect::<Vec<_>>()
            .join(", "),
        time: when(s.time),
        note: s.note.clone(),
    }
}

async fn show(State(ctx): St, me: Signed, Path(id): Path<u64>) -> Response {
    let account = me.account.clone();
    let c = match ctx.run(move |a| a.change(&account, id)).await {
        Ok(c) => c,
        Err(e) => return html::error(&me, e),
    };
    let a = &me.account;
    let open = matches!(c.status, Status::Proposed | Status::Approved);
    let signer = a.may(Permission::Approve) || a.may(Permission::CoSign);
    let mine = c.proposer == a.name;
    let missing = c.missing();
    let may_sign = (open
        && signer
        && !mine
        && !missing.is_empty()
        && missing.iter().any(|r| match r {
            Role::Approver => a.roles.contains(&Role::Approver),
            Role::Dsl => a.roles.contains(&Role::Dsl) || a.roles.contains(&Role::DeputyDsl),
            _ => false,
        }))
        || (c.status == Status::Unreviewed && signer);
    let page = ShowPage {
        chrome: Chrome::new(&me, format!("Change #{}", c.id)),
        r: row(&c),
        origin: match c.origin {
            hedgerow_admin::Origin::Proposal => "Proposed in the console or with the CLI",
            hedgerow_admin::Origin::Revert => "A rollback of an earlier change",
            hedgerow_admin::Origin::Expiry => "The end of a time-limited exception",
            hedgerow_admin::Origin::HandEdit => "Files edited by hand, outside change control",
        },
        groups: c.risk.groups.join(", "),
        benefit: c.risk.benefit.clone(),
        mitigations: c.risk.mitigations.clone(),
        edits: c.edits.iter().map(Edit::describe).collect(),
        diff: diff_lines(&c.preview.diff),
        signatures: c.signatures.iter().map(signature).collect(),
        rejected: c.rejected.as_ref().map(signature),
        applied: c.applied_at.map(|t| {
            format!(
                "{} by {}",
                when(t),
                c.applied_by.clone().unwrap_or_default()
            )
        }),
        may_sign,
        may_reject: open && signer,
        may_apply: open && missing.is_empty() && a.may(Permission::Apply),
        may_revert: c.status == Status::Applied
            && c.reverted_by.is_none()
            && a.may(Permission::Propose),
        unreviewed: c.status == Status::Unreviewed,
        c,
    };
    html::page(&page)
}

#[derive(Deserialize)]
struct SignForm {
    #[serde(default)]
    note: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

async fn approve(State(ctx): St, Path(id): Path<u64>, f: SignedForm<SignForm>) -> Response {
    let SignedForm { me, form } = f;
    if let Err(e) = reauthenticate(&ctx, &me, &form.password, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    match ctx.run(move |a| a.approve(&account, id, &form.note)).await {
        Ok(_) => Redirect::to(&format!("/changes/{id}")).into_response(),
        Err(e) => html::error(&me, e),
    }
}

async fn reject(State(ctx): St, Path(id): Path<u64>, f: SignedForm<SignForm>) -> Response {
    let SignedForm { me, form } = f;
    if form.note.trim().is_empty() {
        return html::error(
            &me,
            AdminError::Invalid("say why the change is rejected".into()),
        );
    }
    if let Err(e) = reauthenticate(&ctx, &me, &form.password, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    match ctx.run(move |a| a.reject(&account, id, &form.note)).await {
        Ok(_) => Redirect::to(&format!("/changes/{id}")).into_response(),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize)]
struct Nothing {}

async fn apply(State(ctx): St, Path(id): Path<u64>, f: SignedForm<Nothing>) -> Response {
    let me = f.me;
    let account = me.account.clone();
    match ctx.run(move |a| a.apply(&account, id)).await {
        Ok(_) => Redirect::to(&format!("/changes/{id}")).into_response(),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize)]
struct RevertForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    whole: Option<String>,
}

async fn revert(State(ctx): St, Path(id): Path<u64>, f: SignedForm<RevertForm>) -> Response {
    let SignedForm { me, form } = f;
    if form.reason.trim().is_empty() {
        return html::error(
            &me,
            AdminError::Invalid("say why the change is rolled back".into()),
        );
    }
    let account = me.account.clone();
    let whole = form.whole.is_some();
    match ctx
        .run(move |a| a.revert(&account, id, whole, &form.reason))
        .await
    {
        Ok(c) => Redirect::to(&format!("/changes/{}", c.id)).into_response(),
        Err(e) => html::error(&me, e),
    }
}
