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

use crate::html;
use crate::session::{COOKIE, Ctx, PRE_COOKIE, SignedForm, St, cookie, read_form, set_cookie};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/signin", get(form).post(sign_in))
        .route("/signout", post(sign_out))
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
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
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
struct SignIn {
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
    let f: SignIn = match read_form(&ctx, &pre, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (name, password) = (f.name.trim().to_owned(), f.password.clone());
    let code = f.code.replace(' ', "");
    let _ = (peer, code);
    match ctx.run(move |a| a.login(&name, &password)).await {
        Ok(session) => {
            ctx.begin(&session.token);
            let r = Redirect::to(&local(Some(&f.next))).into_response();
            let r = with_cookie(r, set_cookie(COOKIE, Some(&session.token)));
            with_cookie(r, set_cookie(PRE_COOKIE, None))
        }
        Err(e) => {
            let message = match e {
                hedgerow_admin::AdminError::Unauthenticated(m) => m,
                other => other.to_string(),
            };
            html::page_status(
                StatusCode::UNAUTHORIZED,
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

#[derive(Deserialize)]
struct Nothing {}

async fn sign_out(axum::extract::State(ctx): St, f: SignedForm<Nothing>) -> Response {
    ctx.end(&f.me.token);
    let r = Redirect::to("/signin").into_response();
    with_cookie(r, set_cookie(COOKIE, None))
}
