//! Turning templates and errors into responses: the page chrome (who is signed in, the
//! navigation their roles allow, the CSRF token for the sign-out form), error pages for
//! every [`AdminError`], and the security headers on every response.

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use hedgerow_admin::{AdminError, Permission, Role};

use crate::session::Signed;

/// Renders a template as a 200 page.
pub(crate) fn page<T: Template>(t: &T) -> Response {
    page_status(StatusCode::OK, t)
}

pub(crate) fn page_status<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => (status, Html(body)).into_response(),
        Err(e) => {
            tracing::error!("console template: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn; the error is in the service log",
            )
                .into_response()
        }
    }
}

/// One link in the navigation.
pub(crate) struct NavItem {
    pub(crate) href: &'static str,
    pub(crate) label: &'static str,
    pub(crate) current: bool,
}

/// What every signed-in page shows around its content.
pub(crate) struct Chrome {
    pub(crate) title: String,
    pub(crate) account: String,
    pub(crate) roles: String,
    pub(crate) csrf: String,
    pub(crate) nav: Vec<NavItem>,
}

/// The navigation for an account: each area shown only to the roles that may use it.
fn nav(me: &Signed) -> Vec<NavItem> {
    let a = &me.account;
    let may = |p: Permission| a.may(p);
    let mut items: Vec<(&'static str, &'static str, bool)> = vec![("/", "Home", true)];
    items.push(("/breaches", "Breaches", may(Permission::PupilData)));
    items.push(("/site-reports", "Staff reports", may(Permission::PupilData)));
    items.push(("/logs", "Logs", may(Permission::PupilData)));
    items.push(("/reviews", "Review requests", may(Permission::Reviews)));
    items.push(("/reports", "Reports", may(Permission::Reports)));
    items.push(("/changes", "Changes", may(Permission::Read)));
    items.push(("/checks", "Check log", may(Permission::Read)));
    items.push(("/system", "System", may(Permission::SystemStatus)));
    items.push(("/accounts", "Accounts", may(Permission::ManageAccounts)));
    items.push(("/audit", "Audit log", may(Permission::Read)));
    items.push(("/report-site", "Report a site", true));
    items
        .into_iter()
        .filter(|(_, _, shown)| *shown)
        .map(|(href, label, _)| NavItem {
            href,
            label,
            current: if href == "/" {
                me.path == "/"
            } else {
                me.path == href || me.path.starts_with(&format!("{href}/"))
            },
        })
        .collect()
}

impl Chrome {
    pub(crate) fn new(me: &Signed, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            account: me.account.name.clone(),
            roles: role_names(me.account.roles.iter().copied()),
            csrf: me.csrf.clone(),
            nav: nav(me),
        }
    }
}

/// Roles as people read them.
pub(crate) fn role_name(r: Role) -> &'static str {
    match r {
        Role::Technician => "Technician",
        Role::Dsl => "DSL",
        Role::DeputyDsl => "Deputy DSL",
        Role::Approver => "Approver",
        Role::Governor => "Governor",
        Role::Staff => "Staff",
    }
}

pub(crate) fn role_names(roles: impl Iterator<Item = Role>) -> String {
    roles.map(role_name).collect::<Vec<_>>().join(", ")
}

/// The school's time zone (`[server] timezone`), set when the console starts.
static ZONE: std::sync::OnceLock<jiff::tz::TimeZone> = std::sync::OnceLock::new();

/// Sets the time zone times are shown in (the first call wins).
pub(crate) fn set_zone(name: &str) {
    let tz = jiff::tz::TimeZone::get(name).unwrap_or_else(|_| jiff::tz::TimeZone::system());
    let _ = ZONE.set(tz);
}

pub(crate) fn zone() -> jiff::tz::TimeZone {
    ZONE.get()
        .cloned()
        .unwrap_or_else(jiff::tz::TimeZone::system)
}

/// A time as the school reads it: local date and time to the minute.
pub(crate) fn when(t: jiff::Timestamp) -> String {
    t.to_zoned(zone())
        .strftime("%a %-d %b %Y, %H:%M")
        .to_string()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: Option<Chrome>,
    heading: &'a str,
    message: &'a str,
}

/// The page for a refused or failed operation, with the status its kind maps to.
pub(crate) fn error(me: &Signed, e: AdminError) -> Response {
    let (status, heading) = match &e {
        AdminError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "Please sign in again"),
        AdminError::Forbidden(_) => (StatusCode::FORBIDDEN, "Your role does not allow this"),
        AdminError::IllegalTier(_) => (
            StatusCode::FORBIDDEN,
            "The illegal-content lists cannot be changed",
        ),
        AdminError::Invalid(_) => (StatusCode::BAD_REQUEST, "Please check what you entered"),
        AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        AdminError::Conflict(_) => (StatusCode::CONFLICT, "This cannot be done now"),
        AdminError::Locked(_) => (StatusCode::TOO_MANY_REQUESTS, "Too many attempts"),
        AdminError::Validation(_) | AdminError::ReloadRefused(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The change was not made; the filter in force is unchanged",
        ),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!("console: {e}");
    }
    let message = match &e {
        AdminError::Internal(_) | AdminError::Store(_) => {
            "The appliance could not do this; the details are in its service log.".to_owned()
        }
        other => other.to_string(),
    };
    page_status(
        status,
        &ErrorPage {
            chrome: Some(Chrome::new(me, heading)),
            heading,
            message: &message,
        },
    )
}

/// 403 for a form without a valid CSRF token or from another site.
pub(crate) fn forbidden_form() -> Response {
    page_status(
        StatusCode::FORBIDDEN,
        &ErrorPage {
            chrome: None,
            heading: "This form was not accepted",
            message: "It has expired or did not come from this console. Go back, reload the page and try again. Nothing was changed.",
        },
    )
}

/// 400 for a form that does not parse.
pub(crate) fn bad_form(why: &str) -> Response {
    page_status(
        StatusCode::BAD_REQUEST,
        &ErrorPage {
            chrome: None,
            heading: "Please check what you entered",
            message: why,
        },
    )
}

pub(crate) async fn not_found() -> Response {
    page_status(
        StatusCode::NOT_FOUND,
        &ErrorPage {
            chrome: None,
            heading: "Not found",
            message: "There is no such page in the console.",
        },
    )
}

/// Percent-encodes `s` for a query string.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The stylesheet, served at `/static/console.css`.
pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../static/console.css"),
    )
        .into_response()
}

/// Security headers on every response: no script but our own (there is none), no framing,
/// no sniffing, no referrer leaving the console, HTTPS only, and pages never cached (they
/// carry pupil-level data).
pub(crate) async fn headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends `Origin: null` with
    // the console's own form posts, which `same_origin` (rightly) refuses: no form, sign-in
    // included, could be sent (found by tests/console.rs). Nothing leaves the console either
    // way: other sites get no Referer.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    r
}
