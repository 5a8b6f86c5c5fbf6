//! The appliance's HTTP JSON API (axum on hyper), served on `STATE/api.sock`. Versioned paths
//! under `/api/v1/`; errors are `{"error": {"kind": …, "message": …}}` with a status per kind
//! ([`AdminError::kind`]); `GET /api/v1/openapi.json` describes it. Authentication is a bearer
//! token (a session from `POST /api/v1/login`, or an account's API token); authorisation is
//! [`crate::Permission::roles`], checked inside each [`Admin`] operation.
//!
//! The OpenAPI document is written by hand (`openapi.json` beside this file): the API is
//! small, and a derive macro on every type would tie the admin types to one generator.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};

use crate::{Account, Admin, AdminError, Proposal, Role};

const OPENAPI: &str = include_str!("openapi.json");

type St = State<Arc<Admin>>;

/// The API's routes.
pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/login", post(login))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/users", get(users).post(add_user))
        .route("/api/v1/users/{name}/password", put(set_password))
        .route("/api/v1/users/{name}/roles", put(set_roles))
        .route("/api/v1/users/{name}/disable", post(disable))
        .route("/api/v1/users/{name}/tokens", post(new_token))
        .route("/api/v1/changes", get(changes).post(propose))
        .route("/api/v1/changes/{id}", get(change))
        .route("/api/v1/changes/{id}/approve", post(approve))
        .route("/api/v1/changes/{id}/reject", post(reject))
        .route("/api/v1/changes/{id}/apply", post(apply))
        .route("/api/v1/changes/{id}/revert", post(revert))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/audit/verify", get(audit_verify))
        .route("/api/v1/reload", post(reload))
        .merge(crate::checks::routes())
        .fallback(|| async {
            error(AdminError::NotFound(
                "no such API path (see /api/v1/openapi.json)".into(),
            ))
        })
        .with_state(admin)
}

/// Serves the API on a Unix socket at `path` (replacing a stale one), readable by its owner
/// only, until the task is aborted.
pub fn serve_unix(admin: Arc<Admin>, path: &Path) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let app = router(admin);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("API server stopped: {e}");
        }
    }))
}

fn status(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AdminError::Forbidden(_) | AdminError::IllegalTier(_) => StatusCode::FORBIDDEN,
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error(e: AdminError) -> Response {
    let body = serde_json::json!({ "error": { "kind": e.kind(), "message": e.to_string() } });
    (status(&e), Json(body)).into_response()
}

/// Runs a blocking operation off the async workers.
async fn run<T, F>(f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce() -> Result<T, AdminError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => error(e),
        Err(e) => error(AdminError::Internal(format!("operation failed: {e}"))),
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

/// Runs `f` as the account the request's bearer token names.
pub(crate) async fn authed<T, F>(admin: Arc<Admin>, headers: &HeaderMap, f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Admin, &Account) -> Result<T, AdminError> + Send + 'static,
{
    let token = bearer(headers);
    run(move || {
        let token = token.ok_or_else(|| {
            AdminError::Unauthenticated("send Authorization: Bearer <token>".into())
        })?;
        let who = admin.authenticate(&token)?;
        f(&admin, &who)
    })
    .await
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[derive(Deserialize)]
struct Login {
    name: String,
    password: String,
}

async fn login(State(a): St, Json(l): Json<Login>) -> Response {
    run(move || a.login(&l.name, &l.password)).await
}

async fn whoami(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |_, who| Ok(who.clone())).await
}

async fn users(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.accounts(who)).await
}

#[derive(Deserialize)]
struct NewUser {
    name: String,
    roles: BTreeSet<Role>,
    #[serde(default)]
    password: Option<String>,
}

async fn add_user(State(a): St, h: HeaderMap, Json(u): Json<NewUser>) -> Response {
    // The first account may be added without signing in: the socket is the owner's only.
    match bearer(&h) {
        None => run(move || a.add_account(None, &u.name, u.roles, u.password.as_deref())).await,
        Some(_) => {
            authed(a, &h, move |a, who| {
                a.add_account(Some(who), &u.name, u.roles, u.password.as_deref())
            })
            .await
        }
    }
}

#[derive(Deserialize)]
struct Password {
    password: String,
}

async fn set_password(
    State(a): St,
    h: HeaderMap,
    UrlPath(name): UrlPath<String>,
    Json(p): Json<Password>,
) -> Response {
    authed(a, &h, move |a, who| a.set_password(who, &name, &p.password)).await
}

#[derive(Deserialize)]
struct Roles {
    roles: BTreeSet<Role>,
}

async fn set_roles(
    State(a): St,
    h: HeaderMap,
    UrlPath(name): UrlPath<String>,
    Json(r): Json<Roles>,
) -> Response {
    authed(a, &h, move |a, who| a.set_roles(who, &name, r.roles)).await
}

async fn disable(State(a): St, h: HeaderMap, UrlPath(name): UrlPath<String>) -> Response {
    authed(a, &h, move |a, who| a.disable(who, &name)).await
}

async fn new_token(State(a): St, h: HeaderMap, UrlPath(name): UrlPath<String>) -> Response {
    authed(a, &h, move |a, who| {
        a.new_api_token(who, &name)
            .map(|t| serde_json::json!({ "token": t }))
    })
    .await
}

async fn changes(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.changes(who)).await
}

async fn propose(State(a): St, h: HeaderMap, Json(p): Json<Proposal>) -> Response {
    authed(a, &h, move |a, who| a.propose(who, p)).await
}

async fn change(State(a): St, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    authed(a, &h, move |a, who| a.change(who, id)).await
}

#[derive(Deserialize, Default)]
struct Note {
    #[serde(default)]
    note: String,
}

async fn approve(
    State(a): St,
    h: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    Json(n): Json<Note>,
) -> Response {
    authed(a, &h, move |a, who| a.approve(who, id, &n.note)).await
}

async fn reject(
    State(a): St,
    h: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    Json(n): Json<Note>,
) -> Response {
    authed(a, &h, move |a, who| a.reject(who, id, &n.note)).await
}

async fn apply(State(a): St, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    authed(a, &h, move |a, who| a.apply(who, id)).await
}

#[derive(Deserialize, Default)]
struct Revert {
    #[serde(default)]
    whole: bool,
    #[serde(default)]
    reason: String,
}

async fn revert(
    State(a): St,
    h: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    Json(r): Json<Revert>,
) -> Response {
    authed(a, &h, move |a, who| a.revert(who, id, r.whole, &r.reason)).await
}

async fn audit(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.audit_log(who)).await
}

async fn audit_verify(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| {
        a.audit_verify(who).map(|c| {
            serde_json::json!({ "ok": c.ok(), "entries": c.entries, "chained": c.chained,
                "unchained": c.unchained, "problems": c.problems })
        })
    })
    .await
}

async fn reload(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| {
        a.reload(who).map(|r| serde_json::json!({ "report": r }))
    })
    .await
}
