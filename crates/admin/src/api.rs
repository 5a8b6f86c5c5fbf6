//! The appliance's HTTP JSON API (axum on hyper): the one way into a running appliance, for
//! the CLI and the web console. Served on `STATE/api.sock` and, with `[api] listen`, on a TCP
//! listener with TLS ([`serve_tls`], certificate from [`crate::tls`]). Versioned paths under
//! `/api/v1/`; errors are `{"error": {"kind": …, "message": …}}` with a status per kind
//! ([`AdminError::kind`]); `GET /api/v1/openapi.json` describes it. Authentication is a bearer
//! token (a session from `POST /api/v1/login`, which takes a TOTP code for an account with one
//! and is rate limited per account name and client address, `crate::signin`; or an account's
//! API token); authorisation is
//! [`crate::Permission::roles`], checked inside each [`Admin`] operation. Pupil-level records
//! (`logs`, `breaches`, `reviews`, `export`) stream as JSON lines ([`crate::records`]), each
//! view recorded in the audit log first.
//!
//! The OpenAPI document is written by hand (`openapi.json` beside this file): the API is
//! small, and a derive macro on every type would tie the admin types to one generator.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Extension, Path as UrlPath, Query as UrlQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hedgerow_model::Severity;
use hedgerow_store::{EventFilter, ReviewStatus};
use serde::{Deserialize, Serialize};

use crate::records::{self, Query};
use crate::{Account, Admin, AdminError, Proposal, Role};

const OPENAPI: &str = include_str!("openapi.json");

/// What the handlers share: change control, and where the request came from.
pub struct Ctx {
    admin: Arc<Admin>,
    /// The appliance's own Unix socket (readable by its owner only): the first account may be
    /// added there without signing in, and the service manager may reload with the reload key.
    local: bool,
    /// SHA-256 of the reload key (`STATE/reload.key`), on the Unix socket only.
    reload_key: Option<String>,
}

pub(crate) type St = State<Arc<Ctx>>;

/// The API's routes, for the Unix socket (`local`) or a TCP listener.
pub fn router(admin: Arc<Admin>, local: bool, reload_key: Option<&str>) -> Router {
    let ctx = Ctx {
        admin,
        local,
        reload_key: reload_key
            .filter(|_| local)
            .map(crate::accounts::token_hash),
    };
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/totp", post(totp_begin))
        .route("/api/v1/totp/confirm", post(totp_confirm))
        .route("/api/v1/users/{name}/totp/reset", post(totp_reset))
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
        .route("/api/v1/system", get(system))
        .route("/api/v1/logs", post(logs))
        .route("/api/v1/breaches", get(breaches))
        .route("/api/v1/breaches/{id}", get(breach))
        .route("/api/v1/reviews", get(reviews))
        .route("/api/v1/reviews/{reference}", get(review))
        .route("/api/v1/reviews/{reference}/decide", post(decide))
        .route("/api/v1/export", get(export))
        .merge(crate::checks::routes())
        .merge(crate::cases::routes())
        .merge(crate::dashboard::routes())
        .fallback(|| async {
            error(AdminError::NotFound(
                "no such API path (see /api/v1/openapi.json)".into(),
            ))
        })
        .with_state(Arc::new(ctx))
}

/// Writes a new random reload key to `STATE/reload.key` (readable by the appliance's user
/// only) and returns it. Whoever can read it may ask for a reload on the Unix socket, and
/// nothing else: the same power as sending the process SIGHUP, with the outcome reported.
pub fn reload_key(state_dir: &Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (key, _) = crate::accounts::new_token();
    let path = state_dir.join(RELOAD_KEY);
    let tmp = state_dir.join(".reload.key.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(key.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(key)
}

/// The reload key's file name in the state directory.
pub const RELOAD_KEY: &str = "reload.key";

/// Serves the API on a Unix socket at `path` (replacing a stale one), readable by its owner
/// only, until the task is aborted.
pub fn serve_unix(
    admin: Arc<Admin>,
    path: &Path,
    reload_key: Option<&str>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    let app = router(admin, true, reload_key);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("API server stopped: {e}");
        }
    }))
}

/// Binds the API's TCP listener (`[api] listen`). Bound before it is served, so a port in
/// use stops the start with a clear error.
pub async fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves the API over TLS on `listener` with `tls`, the same routes and the same sign-in as
/// on the Unix socket, except that nothing is done without signing in (no first account, no
/// reload key). Each connection's handshake runs in its own task, with a deadline.
pub fn serve_tls(
    admin: Arc<Admin>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) -> tokio::task::JoinHandle<()> {
    crate::tls::serve(router(admin, false, None), listener, tls, "API")
}

fn status(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        AdminError::Forbidden(_) | AdminError::IllegalTier(_) => StatusCode::FORBIDDEN,
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
        AdminError::Validation(_) | AdminError::ReloadRefused(_) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub(crate) fn error(e: AdminError) -> Response {
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
pub(crate) async fn authed<T, F>(ctx: Arc<Ctx>, headers: &HeaderMap, f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Admin, &Account) -> Result<T, AdminError> + Send + 'static,
{
    let token = bearer(headers);
    run(move || {
        let token = token.ok_or_else(|| {
            AdminError::Unauthenticated("send Authorization: Bearer <token>".into())
        })?;
        let who = ctx.admin.authenticate(&token)?;
        f(&ctx.admin, &who)
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
    /// The TOTP code, for an account with an authenticator.
    #[serde(default)]
    code: Option<String>,
}

async fn login(
    State(c): St,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Json(l): Json<Login>,
) -> Response {
    // The Unix socket counts as local; a TCP request always carries its peer
    // (`crate::tls::serve` sets it on each connection).
    let source = match (c.local, peer) {
        (_, Some(Extension(ConnectInfo(addr)))) => addr.ip(),
        (true, None) => crate::LOCAL,
        (false, None) => {
            return error(AdminError::Internal(
                "the client's address is unknown".into(),
            ));
        }
    };
    run(move || {
        c.admin
            .api_login(&l.name, &l.password, l.code.as_deref(), source)
    })
    .await
}

async fn logout(State(c): St, h: HeaderMap) -> Response {
    let Some(token) = bearer(&h) else {
        return error(AdminError::Unauthenticated(
            "send Authorization: Bearer <token>".into(),
        ));
    };
    run(move || {
        c.admin
            .sign_out(&token)
            .map(|()| serde_json::json!({ "signed_out": true }))
    })
    .await
}

/// Runs `f` as the account whose session (not API token) the request names, for enrolling
/// TOTP.
async fn enrolling<T, F>(ctx: Arc<Ctx>, headers: &HeaderMap, f: F) -> Response
where
    T: Serialize + Send + 'static,
    F: FnOnce(&Admin, &Account) -> Result<T, AdminError> + Send + 'static,
{
    let token = bearer(headers);
    run(move || {
        let token = token.ok_or_else(|| {
            AdminError::Unauthenticated("send Authorization: Bearer <session token>".into())
        })?;
        let who = ctx.admin.authenticate_enrolment(&token)?;
        f(&ctx.admin, &who)
    })
    .await
}

async fn totp_begin(State(a): St, h: HeaderMap) -> Response {
    enrolling(a, &h, |a, who| a.totp_begin(who)).await
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

async fn totp_confirm(State(a): St, h: HeaderMap, Json(c): Json<Code>) -> Response {
    enrolling(a, &h, move |a, who| a.totp_confirm(who, &c.code)).await
}

async fn totp_reset(State(a): St, h: HeaderMap, UrlPath(name): UrlPath<String>) -> Response {
    authed(a, &h, move |a, who| a.totp_reset(who, &name)).await
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
    // The first account may be added without signing in on the appliance's own socket (its
    // owner's only), never over the network.
    match bearer(&h) {
        None if !a.local => error(AdminError::Unauthenticated(
            "sign in: the first account is added on the appliance itself (STATE/api.sock)".into(),
        )),
        None => {
            run(move || {
                a.admin
                    .add_account(None, &u.name, u.roles, u.password.as_deref())
            })
            .await
        }
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

async fn system(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.system_status(who)).await
}

async fn reload(State(c): St, h: HeaderMap) -> Response {
    let by_key = match (&c.reload_key, bearer(&h)) {
        (Some(key), Some(t)) => crate::accounts::token_hash(t.trim()) == *key,
        _ => false,
    };
    if by_key {
        return run(move || {
            c.admin
                .reload_by_key()
                .map(|r| serde_json::json!({ "report": r }))
        })
        .await;
    }
    authed(c, &h, |a, who| {
        a.reload(who).map(|r| serde_json::json!({ "report": r }))
    })
    .await
}

// ---- pupil-level records ----

/// Bytes of answer gathered before they go to the connection, and how many such chunks may
/// wait: what the appliance holds for one reader, however long the answer.
const CHUNK: usize = 64 << 10;
const CHUNKS_WAITING: usize = 4;

/// A streamed body fed by a blocking task: `fill` writes into the sink it is given, which
/// hands full chunks to the connection as the reader takes them. A reader that goes away
/// (`hedgerow logs | head`) makes the sink fail, which stops `fill` at its next chunk.
fn streamed<F>(content_type: &'static str, fill: F) -> Response
where
    F: FnOnce(&mut dyn FnMut(&[u8]) -> std::io::Result<()>) -> std::io::Result<()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(CHUNKS_WAITING);
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(CHUNK);
        let gone = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let result = fill(&mut |bytes| {
            chunk.extend_from_slice(bytes);
            if chunk.len() >= CHUNK {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                tx.blocking_send(Ok(full)).map_err(|_| gone())?;
            }
            Ok(())
        });
        match result {
            Ok(()) if !chunk.is_empty() => {
                let _ = tx.blocking_send(Ok(chunk));
            }
            Ok(()) => {}
            // Cut the body short: the reader sees an incomplete answer, never a whole one.
            Err(e) => {
                tracing::warn!("API answer stopped: {e}");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Authorises and records `q` for the request's account, then streams its answer.
async fn query(c: Arc<Ctx>, h: &HeaderMap, q: Query) -> Response {
    let token = bearer(h);
    let admin = c.admin.clone();
    let checked = {
        let q = q.clone();
        tokio::task::spawn_blocking(move || {
            let token = token.ok_or_else(|| {
                AdminError::Unauthenticated("send Authorization: Bearer <token>".into())
            })?;
            let who = admin.authenticate(&token)?;
            admin.authorize_query(&who, &q)?;
            Ok(!who.may(crate::Permission::PupilData))
        })
        .await
    };
    let redact = match checked {
        Ok(Ok(redact)) => redact,
        Ok(Err(e)) => return error(e),
        Err(e) => return error(AdminError::Internal(format!("operation failed: {e}"))),
    };
    let store = c.admin.store().clone();
    streamed("application/x-ndjson", move |sink| {
        // A store failure is told in the answer's last line; a reader gone away stops it.
        let _ = records::answer(&store, q, redact, &mut |line| {
            sink(line)?;
            sink(b"\n")
        });
        Ok(())
    })
}

async fn logs(State(c): St, h: HeaderMap, Json(f): Json<EventFilter>) -> Response {
    query(c, &h, Query::Logs(Box::new(f))).await
}

#[derive(Deserialize)]
struct BreachesAsk {
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default = "hundred")]
    limit: usize,
}

fn hundred() -> usize {
    100
}

async fn breaches(State(c): St, h: HeaderMap, UrlQuery(b): UrlQuery<BreachesAsk>) -> Response {
    let q = Query::Breaches {
        min: b.severity,
        limit: b.limit,
    };
    query(c, &h, q).await
}

async fn breach(State(c): St, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    query(c, &h, Query::Breach(id)).await
}

#[derive(Deserialize)]
struct ReviewsAsk {
    #[serde(default)]
    status: Option<ReviewStatus>,
    #[serde(default = "hundred")]
    limit: usize,
}

async fn reviews(State(c): St, h: HeaderMap, UrlQuery(r): UrlQuery<ReviewsAsk>) -> Response {
    let q = Query::Reviews {
        status: r.status,
        limit: r.limit,
    };
    query(c, &h, q).await
}

fn reference(text: &str) -> Result<u64, AdminError> {
    crate::report::parse_reference(text).map_err(AdminError::Invalid)
}

async fn review(State(c): St, h: HeaderMap, UrlPath(r): UrlPath<String>) -> Response {
    match reference(&r) {
        Ok(r) => query(c, &h, Query::Review(r)).await,
        Err(e) => error(e),
    }
}

#[derive(Deserialize)]
struct Decision {
    status: ReviewStatus,
    #[serde(default)]
    note: Option<String>,
}

async fn decide(
    State(c): St,
    h: HeaderMap,
    UrlPath(r): UrlPath<String>,
    Json(d): Json<Decision>,
) -> Response {
    let r = match reference(&r) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    authed(c, &h, move |a, who| {
        a.decide_review(who, r, d.status, d.note.as_deref())
    })
    .await
}

/// The whole store as JSON lines (the export file itself). A failure part-way cuts the body
/// short, so a reader never takes a partial export for a whole one.
async fn export(State(c): St, h: HeaderMap) -> Response {
    let token = bearer(&h);
    let admin = c.admin.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let token = token.ok_or_else(|| {
            AdminError::Unauthenticated("send Authorization: Bearer <token>".into())
        })?;
        let who = admin.authenticate(&token)?;
        admin.authorize_export(&who)
    })
    .await;
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return error(e),
        Err(e) => return error(AdminError::Internal(format!("operation failed: {e}"))),
    }
    let store = c.admin.store().clone();
    streamed("application/x-ndjson", move |sink| {
        struct Sink<'a>(&'a mut dyn FnMut(&[u8]) -> std::io::Result<()>);
        impl std::io::Write for Sink<'_> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (self.0)(buf)?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut out = std::io::BufWriter::with_capacity(CHUNK, Sink(sink));
        store.export(&mut out).map_err(std::io::Error::other)?;
        std::io::Write::flush(&mut out)
    })
}
