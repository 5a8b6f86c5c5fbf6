//! The console's pages, one module per area. Each module's `routes()` is merged here.
//!
//! How a page is written (every module follows this):
//! - a GET handler takes [`Signed`] (the signed-in account, read afresh; a browser that is not
//!   signed in is sent to the sign-in page and back) and `State(ctx)`; it calls one admin
//!   operation with `ctx.run(move |admin| admin.op(&account, …)).await` (off the async
//!   workers), and renders an askama template whose struct has `chrome: Chrome` (built with
//!   `Chrome::new(&me, "Title")`) and extends `base.html` (`{% block content %}`);
//!   an `Err(AdminError)` is shown with `html::error(&me, e)` (403 for a role that may not,
//!   404, 409, …), never by deciding permissions in the console;
//! - a POST handler takes [`crate::session::SignedForm<T>`] (`T`: the form's fields, serde),
//!   which has already refused a missing or wrong CSRF token; every `<form method="post">`
//!   carries `<input type="hidden" name="csrf" value="{{ chrome.csrf }}">`; after the
//!   operation it redirects (303) to the page that shows the result;
//! - every input has a `<label for>`; hints are tied with `aria-describedby`; tables have
//!   `<th scope>`; no JavaScript; no inline `style` attributes (the CSP forbids them; SVG uses
//!   presentation attributes such as `fill`), classes from `static/console.css`.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::response::Response;
use axum::routing::get;

use crate::html::{self, Chrome};
use crate::session::{Ctx, Signed};

mod accounts;
mod audit;
mod breaches;
mod changes;
mod checks;
pub(crate) mod logs;
mod reports;
mod reviews;
mod site_reports;
mod system;

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/", get(home))
        .merge(changes::routes())
        .merge(breaches::routes())
        .merge(site_reports::routes())
        .merge(reviews::routes())
        .merge(accounts::routes())
        .merge(audit::routes())
        .merge(checks::routes())
        .merge(system::routes())
        .merge(logs::routes())
        .merge(reports::routes())
}

#[derive(Template)]
#[template(path = "home.html")]
struct Home {
    chrome: Chrome,
}

async fn home(me: Signed) -> Response {
    html::page(&Home {
        chrome: Chrome::new(&me, "Home"),
    })
}
