//! Signing in and out. The sign-in form is tied to the browser by a pre-session cookie (its
//! CSRF token); a successful sign-in always issues a new session (whatever cookie came with
//! the request) and forgets the pre-session.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use rand::RngCore;
use serde::Deserialize;

use hedgerow_admin::{Account, AdminError, SignIn};

use crate::html;
use crate::session::{COOKIE, Ctx, PRE_COOKIE, SignedForm, St, cookie, read_form, set_cookie};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/signin", get(form).post(sign_in))
        .route("/signout", post(sign_out))
        .route("/signin/authenticator", get(enrol).post(confirm))
        .route("/static/console.css", get(html::stylesheet))
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage {
    csrf: String,
    next: String,
    name: String,
    error: Option<String>,
    expired: bool,
}

#[derive(Deserialize, Default)]
struct Back {
    next: Option<String>,
    expired: Option<String>,
}

/// Only a path on this console: never another site (an open redirect).
fn local(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() < 2048
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn fresh_token() -> String {
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn with_cookie(mut r: Response, value: String) -> Response {
    if let Ok(v) = value.parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The sign-in form, with a new pre-session when the browser has none.
async fn form(
    axum::extract::State(ctx): St,
    headers: HeaderMap,
    Query(back): Query<Back>,
) -> Response {
    let (pre, new) = match cookie(&headers, PRE_COOKIE) {
        Some(p) => (p, false),
        None => (fresh_token(), true),
    };
    let page = html::page(&SignInPage {
        csrf: ctx.csrf(&pre),
        next: local(back.next.as_deref()),
        name: String::new(),
        error: None,
        expired: back.expired.is_some(),
    });
    if new {
        with_cookie(page, set_cookie(PRE_COOKIE, Some(&pre)))
    } else {
        page
    }
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
}

async fn sign_in(axum::extract::State(ctx): St, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(pre) = cookie(req.headers(), PRE_COOKIE) else {
        return html::forbidden_form();
    };
    let f: SignInForm = match read_form(&ctx, &pre, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (name, password) = (f.name.trim().to_owned(), f.password.clone());
    let code = f.code.replace(' ', "");
    let source = peer.unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let signed = ctx
        .run(move |a| {
            let code = (!code.is_empty()).then_some(code.as_str());
            a.sign_in(&name, &password, code, source)
        })
        .await;
    match signed {
        Ok(SignIn::SignedIn(session)) => {
            ctx.begin(&session.token);
            let r = Redirect::to(&local(Some(&f.next))).into_response();
            let r = with_cookie(r, set_cookie(COOKIE, Some(&session.token)));
            with_cookie(r, set_cookie(PRE_COOKIE, None))
        }
        Ok(SignIn::EnrolTotp(session)) => {
            // Right password; the account's roles need an authenticator it has not set up.
            // This session may only enrol one.
            ctx.begin(&session.token);
            let r = Redirect::to("/signin/authenticator").into_response();
            let r = with_cookie(r, set_cookie(COOKIE, Some(&session.token)));
            with_cookie(r, set_cookie(PRE_COOKIE, None))
        }
        Err(e) => {
            let (status, message) = match e {
                AdminError::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
                AdminError::Locked(m) => (StatusCode::TOO_MANY_REQUESTS, m),
                other => (StatusCode::UNAUTHORIZED, other.to_string()),
            };
            html::page_status(
                status,
                &SignInPage {
                    csrf: ctx.csrf(&pre),
                    next: local(Some(&f.next)),
                    name: f.name,
                    error: Some(message),
                    expired: false,
                },
            )
        }
    }
}

#[derive(Template)]
#[template(path = "authenticator.html")]
struct EnrolPage {
    csrf: String,
    account: String,
    qr_svg: String,
    secret: String,
    error: Option<String>,
}

/// The enrolment session's token and account, or the sign-in page.
async fn enrolling(ctx: &Arc<Ctx>, headers: &HeaderMap) -> Result<(String, Account), Response> {
    let Some(token) = cookie(headers, COOKIE) else {
        return Err(Redirect::to("/signin").into_response());
    };
    let t = token.clone();
    match ctx.run(move |a| a.authenticate_enrolment(&t)).await {
        Ok(a) => Ok((token, a)),
        Err(_) => Err(Redirect::to("/signin").into_response()),
    }
}

async fn enrol_page(
    ctx: &Arc<Ctx>,
    token: &str,
    account: Account,
    error: Option<String>,
) -> Response {
    let name = account.name.clone();
    match ctx.run(move |a| a.totp_begin(&account)).await {
        Ok(e) => {
            let page = EnrolPage {
                csrf: ctx.csrf(token),
                account: name,
                qr_svg: e.qr_svg,
                secret: e.secret_base32,
                error,
            };
            if page.error.is_some() {
                html::page_status(StatusCode::BAD_REQUEST, &page)
            } else {
                html::page(&page)
            }
        }
        // Enrolled already (another tab finished it): carry on signed in.
        Err(AdminError::Conflict(_)) => Redirect::to("/").into_response(),
        Err(e) => html::bad_form(&e.to_string()),
    }
}

/// Setting up an authenticator: the QR code and the secret, and a code to confirm it.
async fn enrol(axum::extract::State(ctx): St, headers: HeaderMap) -> Response {
    let (token, account) = match enrolling(&ctx, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    enrol_page(&ctx, &token, account, None).await
}

#[derive(Deserialize)]
struct Confirm {
    #[serde(default)]
    code: String,
}

async fn confirm(axum::extract::State(ctx): St, req: Request) -> Response {
    let (token, account) = match enrolling(&ctx, req.headers()).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let f: Confirm = match read_form(&ctx, &token, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let code = f.code.replace(' ', "");
    let who = account.clone();
    let t = token.clone();
    let done = ctx
        .run(move |a| {
            a.totp_confirm(&who, &code)?;
            a.finish_enrolment(&t)
        })
        .await;
    match done {
        Ok(session) => {
            ctx.end(&token);
            ctx.begin(&session.token);
            let r = Redirect::to("/").into_response();
            with_cookie(r, set_cookie(COOKIE, Some(&session.token)))
        }
        Err(e) => {
            let message = match e {
                AdminError::Unauthenticated(m) | AdminError::Invalid(m) => m,
                other => other.to_string(),
            };
            // A wrong code keeps the enrolment going with a new secret.
            enrol_page(&ctx, &token, account, Some(message)).await
        }
    }
}

#[derive(Deserialize)]
struct Nothing {}

async fn sign_out(axum::extract::State(ctx): St, f: SignedForm<Nothing>) -> Response {
    ctx.end(&f.me.token);
    let token = f.me.token.clone();
    if let Err(e) = ctx.run(move |a| a.sign_out(&token)).await {
        tracing::warn!("console sign-out: {e}");
    }
    let r = Redirect::to("/signin").into_response();
    with_cookie(r, set_cookie(COOKIE, None))
}
