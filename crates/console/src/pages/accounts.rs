//! People and their roles (approvers only): add an account with a first password, change
//! roles, disable one, and set someone's password. Changing roles and disabling ask for the
//! approver's own password again.

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hedgerow_admin::{AdminError, Role};
use serde::Deserialize;

use crate::html::{self, Chrome, role_name, role_names, when};
use crate::session::{Ctx, Signed, SignedForm, St, reauthenticate};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/accounts", get(list).post(add))
        .route("/accounts/{name}/roles", post(roles))
        .route("/accounts/{name}/disable", post(disable))
        .route("/accounts/{name}/password", post(password))
        .route("/accounts/{name}/authenticator", post(reset_totp))
}

struct Row {
    name: String,
    roles: String,
    held: Vec<&'static str>,
    disabled: bool,
    created: String,
    has_password: bool,
    totp: bool,
    needs_totp: bool,
}

struct RoleChoice {
    id: &'static str,
    label: &'static str,
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct Page {
    chrome: Chrome,
    rows: Vec<Row>,
    roles: Vec<RoleChoice>,
}

fn choices() -> Vec<RoleChoice> {
    Role::ALL
        .iter()
        .map(|r| RoleChoice {
            id: r.as_str(),
            label: role_name(*r),
        })
        .collect()
}

async fn list(State(ctx): St, me: Signed) -> Response {
    let account = me.account.clone();
    if let Err(e) = account.authorize(hedgerow_admin::Permission::ManageAccounts) {
        return html::error(&me, e);
    }
    match ctx.run(move |a| a.accounts(&account)).await {
        Ok(all) => html::page(&Page {
            chrome: Chrome::new(&me, "Accounts"),
            rows: all
                .into_iter()
                .map(|a| Row {
                    roles: role_names(a.roles.iter().copied()),
                    held: a.roles.iter().map(|r| r.as_str()).collect(),
                    disabled: a.disabled,
                    created: when(a.created),
                    has_password: a.has_password,
                    totp: a.totp_enrolled,
                    needs_totp: hedgerow_admin::needs_totp(&a),
                    name: a.name,
                })
                .collect(),
            roles: choices(),
        }),
        Err(e) => html::error(&me, e),
    }
}

fn parse_roles(ids: &[String]) -> Result<BTreeSet<Role>, AdminError> {
    ids.iter().map(|r| r.parse()).collect()
}

#[derive(Deserialize)]
struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    code: String,
}

async fn add(State(ctx): St, f: SignedForm<AddForm>) -> Response {
    let SignedForm { me, form } = f;
    let roles = match parse_roles(&form.roles) {
        Ok(r) => r,
        Err(e) => return html::error(&me, e),
    };
    if form.password.chars().count() < 12 {
        return html::error(
            &me,
            AdminError::Invalid("a first password needs at least 12 characters".into()),
        );
    }
    if let Err(e) = reauthenticate(&ctx, &me, &form.confirm, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    let name = form.name.trim().to_owned();
    match ctx
        .run(move |a| a.add_account(Some(&account), &name, roles, Some(&form.password)))
        .await
    {
        Ok(_) => Redirect::to("/accounts").into_response(),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize)]
struct RolesForm {
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    code: String,
}

async fn roles(State(ctx): St, Path(name): Path<String>, f: SignedForm<RolesForm>) -> Response {
    let SignedForm { me, form } = f;
    let roles = match parse_roles(&form.roles) {
        Ok(r) => r,
        Err(e) => return html::error(&me, e),
    };
    if let Err(e) = reauthenticate(&ctx, &me, &form.confirm, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    match ctx.run(move |a| a.set_roles(&account, &name, roles)).await {
        Ok(_) => Redirect::to("/accounts").into_response(),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize)]
struct Confirm {
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    code: String,
}

async fn disable(State(ctx): St, Path(name): Path<String>, f: SignedForm<Confirm>) -> Response {
    let SignedForm { me, form } = f;
    if let Err(e) = reauthenticate(&ctx, &me, &form.confirm, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    match ctx.run(move |a| a.disable(&account, &name)).await {
        Ok(_) => Redirect::to("/accounts").into_response(),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    code: String,
}

async fn password(
    State(ctx): St,
    Path(name): Path<String>,
    f: SignedForm<PasswordForm>,
) -> Response {
    let SignedForm { me, form } = f;
    if form.password.chars().count() < 12 {
        return html::error(
            &me,
            AdminError::Invalid("a password needs at least 12 characters".into()),
        );
    }
    if let Err(e) = reauthenticate(&ctx, &me, &form.confirm, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    match ctx
        .run(move |a| a.set_password(&account, &name, &form.password))
        .await
    {
        Ok(_) => Redirect::to("/accounts").into_response(),
        Err(e) => html::error(&me, e),
    }
}

async fn reset_totp(State(ctx): St, Path(name): Path<String>, f: SignedForm<Confirm>) -> Response {
    let SignedForm { me, form } = f;
    if let Err(e) = reauthenticate(&ctx, &me, &form.confirm, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    match ctx.run(move |a| a.totp_reset(&account, &name)).await {
        Ok(_) => Redirect::to("/accounts").into_response(),
        Err(e) => html::error(&me, e),
    }
}
