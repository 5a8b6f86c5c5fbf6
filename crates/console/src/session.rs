//! Browser sessions: the cookie, the idle timeout and the CSRF token, and the extractors every
//! page uses ([`Signed`] for a signed-in request, [`SignedForm`] for a form posted by one).
//!
//! The session is the admin crate's (a random token from [`Admin`]'s sign-in, stored hashed
//! there); the cookie carries it, `__Host-` prefixed, `Secure`, `HttpOnly` and
//! `SameSite=Strict`. A new one is issued at every sign-in, whatever the browser sent
//! (so a session id planted before sign-in is never the one after). The console remembers
//! only when each of its sessions was last used, to sign out one idle for
//! `[console] idle_timeout`; API tokens are not accepted as cookies.
//!
//! Every form carries a CSRF token: an HMAC of the session token under a key made when the
//! appliance starts, so nothing is stored for it and a token from one session is worthless in
//! another. Forms before sign-in use a short-lived pre-session cookie the same way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use hedgerow_admin::{Account, Admin, AdminError};
use hedgerow_config::{ConsoleConfig, Outcome};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::html;

/// The session cookie's name. `__Host-`: only set over HTTPS, for the whole site, by this
/// host alone.
pub(crate) const COOKIE: &str = "__Host-hedgerow";
/// The pre-session cookie that ties the sign-in form's CSRF token to the browser.
pub(crate) const PRE_COOKIE: &str = "__Host-hedgerow-pre";

/// What the console is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub idle_timeout: Duration,
    pub outcomes: Vec<Outcome>,
    /// `[server] timezone`: times are shown in it.
    pub timezone: String,
}

impl Settings {
    pub fn from_config(c: &ConsoleConfig, timezone: &str) -> Self {
        Self {
            idle_timeout: c.idle_timeout,
            outcomes: c.outcomes.clone(),
            timezone: timezone.to_owned(),
        }
    }
}

/// What every handler shares.
pub(crate) struct Ctx {
    pub(crate) admin: Arc<Admin>,
    pub(crate) settings: Settings,
    /// The CSRF key, made at start.
    key: [u8; 32],
    /// Hash of each console session's token → when it was last used.
    seen: Mutex<HashMap<[u8; 32], Instant>>,
}

pub(crate) type St = axum::extract::State<Arc<Ctx>>;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Ctx {
    pub(crate) fn new(admin: Arc<Admin>, settings: Settings) -> Self {
        html::set_zone(&settings.timezone);
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self {
            admin,
            settings,
            key,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts tracking a new session (just signed in).
    pub(crate) fn begin(&self, token: &str) {
        let now = Instant::now();
        let idle = self.settings.idle_timeout;
        let mut seen = self.seen();
        seen.retain(|_, t| now.duration_since(*t) < idle);
        seen.insert(digest(token), now);
    }

    /// Whether `token` is a live console session; touches it. An idle one is forgotten.
    fn touch(&self, token: &str) -> Touch {
        let now = Instant::now();
        let mut seen = self.seen();
        match seen.get_mut(&digest(token)) {
            None => Touch::Unknown,
            Some(t) if now.duration_since(*t) >= self.settings.idle_timeout => {
                seen.remove(&digest(token));
                Touch::Idle
            }
            Some(t) => {
                *t = now;
                Touch::Live
            }
        }
    }

    /// Forgets a session (signed out).
    pub(crate) fn end(&self, token: &str) {
        self.seen().remove(&digest(token));
    }

    /// The CSRF token for a session (or pre-session) token.
    pub(crate) fn csrf(&self, token: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"csrf\0");
        mac.update(token.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `given` is the CSRF token for `token`, compared in constant time.
    pub(crate) fn csrf_ok(&self, token: &str, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        let want = self.csrf(token);
        !want.is_empty() && want.as_bytes().ct_eq(given.as_bytes()).into()
    }

    /// Runs a blocking admin operation off the async workers.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, AdminError>
    where
        T: Send + 'static,
        F: FnOnce(&Admin) -> Result<T, AdminError> + Send + 'static,
    {
        let admin = self.admin.clone();
        match tokio::task::spawn_blocking(move || f(&admin)).await {
            Ok(r) => r,
            Err(e) => Err(AdminError::Internal(format!("operation failed: {e}"))),
        }
    }
}

enum Touch {
    Live,
    Idle,
    Unknown,
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
}

/// The `Set-Cookie` value for `name`; `None` clears it.
pub(crate) fn set_cookie(name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{name}={v}; Path=/; Secure; HttpOnly; SameSite=Strict"),
        None => format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// Where to send a signed-out browser: the sign-in page, coming back here afterwards (a path
/// on this console only).
fn to_sign_in(parts: &Parts, idle: bool) -> Response {
    let back = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or("/");
    let mut target = format!("/signin?next={}", html::url_encode(back));
    if idle {
        target.push_str("&expired=1");
    }
    let mut r = Redirect::to(&target).into_response();
    if idle && let Ok(v) = set_cookie(COOKIE, None).parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A signed-in request: the account (read afresh, so a disabled account or a changed role
/// takes effect at once), its session token and the CSRF token for its forms.
#[derive(Clone)]
pub(crate) struct Signed {
    pub(crate) account: Account,
    pub(crate) token: String,
    pub(crate) csrf: String,
    /// The request's path, for the navigation's current page.
    pub(crate) path: String,
}

impl FromRequestParts<Arc<Ctx>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &Arc<Ctx>) -> Result<Self, Response> {
        let Some(token) = cookie(&parts.headers, COOKIE) else {
            return Err(to_sign_in(parts, false));
        };
        match ctx.touch(&token) {
            Touch::Live => {}
            Touch::Idle => {
                let t = token.clone();
                if let Err(e) = ctx.run(move |a| a.sign_out(&t)).await {
                    tracing::warn!("console: ending an idle session: {e}");
                }
                return Err(to_sign_in(parts, true));
            }
            Touch::Unknown => return Err(to_sign_in(parts, false)),
        }
        let t = token.clone();
        match ctx.run(move |a| a.authenticate(&t)).await {
            // Given a role that needs an authenticator since signing in: sign in again, which
            // asks for one to be set up.
            Ok(account) if hedgerow_admin::needs_totp(&account) && !account.totp_enrolled => {
                ctx.end(&token);
                let t = token.clone();
                if let Err(e) = ctx.run(move |a| a.sign_out(&t)).await {
                    tracing::warn!("console: ending a session: {e}");
                }
                Err(to_sign_in(parts, false))
            }
            Ok(account) => Ok(Signed {
                account,
                csrf: ctx.csrf(&token),
                token,
                path: parts.uri.path().to_owned(),
            }),
            Err(_) => {
                ctx.end(&token);
                Err(to_sign_in(parts, false))
            }
        }
    }
}

/// A form posted by a signed-in browser, with its CSRF token checked: `T` is the form's
/// fields (urlencoded). A missing or wrong token, or a post from another site, is refused
/// with 403 and nothing is done.
pub(crate) struct SignedForm<T> {
    pub(crate) me: Signed,
    pub(crate) form: T,
}

/// The largest form the console reads.
const FORM_LIMIT: usize = 256 * 1024;

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// Whether the request's `Origin` (when the browser sent one) is this console.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin.strip_prefix("https://") == Some(host)
}

/// Reads an urlencoded body (a field given several times, such as checkboxes, reads as a
/// list) and checks its CSRF token against `token`.
pub(crate) async fn read_form<T: DeserializeOwned>(
    ctx: &Ctx,
    token: &str,
    req: Request,
) -> Result<T, Response> {
    if req.method() != Method::POST || !same_origin(req.headers()) {
        return Err(html::forbidden_form());
    }
    let bytes = axum::body::to_bytes(req.into_body(), FORM_LIMIT)
        .await
        .map_err(|_| html::bad_form("the form is too large"))?;
    let csrf: CsrfField =
        serde_html_form::from_bytes(&bytes).map_err(|_| html::forbidden_form())?;
    if !ctx.csrf_ok(token, &csrf.csrf) {
        return Err(html::forbidden_form());
    }
    serde_html_form::from_bytes(&bytes).map_err(|e| html::bad_form(&e.to_string()))
}

impl<T: DeserializeOwned + Send> FromRequest<Arc<Ctx>> for SignedForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, ctx: &Arc<Ctx>) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let me = Signed::from_request_parts(&mut parts, ctx).await?;
        let form = read_form(ctx, &me.token, Request::from_parts(parts, body)).await?;
        Ok(SignedForm { me, form })
    }
}

/// Asks for the signed-in person's password (and authenticator code) again before an
/// export, an approval or a role change: a session left open on a shared machine is not
/// enough for those.
pub(crate) async fn reauthenticate(
    ctx: &Arc<Ctx>,
    me: &Signed,
    password: &str,
    code: &str,
) -> Result<(), AdminError> {
    if password.is_empty() {
        return Err(AdminError::Invalid(
            "enter your password to confirm this".into(),
        ));
    }
    let (actor, password, code) = (
        me.account.clone(),
        password.to_owned(),
        code.replace(' ', ""),
    );
    ctx.run(move |a| {
        let code = (!code.is_empty()).then_some(code.as_str());
        a.reauthenticate(&actor, &password, code)
    })
    .await
}
