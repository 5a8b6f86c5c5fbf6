//! Logs for the DSL: search access events by device, user, address, group, category,
//! verdict, site and search term over a time range, a page at a time (newest first), with a
//! CSV export (the password asked again); and one device's timeline over the last days. Each
//! view and export is authorised and audited by the admin crate.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hedgerow_admin::{AdminError, EventFilter};
use hedgerow_model::{AccessEvent, Disposition};
use serde::Deserialize;

use crate::html::{self, Chrome, url_encode, zone};
use crate::session::{Ctx, Signed, SignedForm, St, reauthenticate};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/logs", get(search))
        .route("/logs/export", post(export))
        .route("/logs/device", get(device))
}

/// Events a page shows.
const PAGE: usize = 100;

/// The search form's fields, as the query string carries them.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct Search {
    #[serde(default)]
    pub(crate) from: String,
    #[serde(default)]
    pub(crate) to: String,
    #[serde(default)]
    pub(crate) device: String,
    #[serde(default)]
    pub(crate) user: String,
    #[serde(default)]
    pub(crate) ip: String,
    #[serde(default)]
    pub(crate) group: String,
    #[serde(default)]
    pub(crate) category: String,
    #[serde(default)]
    pub(crate) verdict: String,
    #[serde(default)]
    pub(crate) site: String,
    #[serde(default)]
    pub(crate) search: String,
    /// Older than this instant (RFC 3339): the next page.
    #[serde(default)]
    pub(crate) before: String,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A `datetime-local` value in the school's time zone.
fn local(t: &str, what: &str) -> Result<Option<jiff::Timestamp>, AdminError> {
    let t = t.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let civil: jiff::civil::DateTime = t.parse().map_err(|_| {
        AdminError::Invalid(format!(
            "{what} {t:?} is not a date and time such as 2026-12-01T09:00"
        ))
    })?;
    civil
        .to_zoned(zone())
        .map(|z| Some(z.timestamp()))
        .map_err(|e| AdminError::Invalid(format!("{what} {t:?}: {e}")))
}

impl Search {
    pub(crate) fn filter(&self, limit: usize) -> Result<EventFilter, AdminError> {
        let mut to = local(&self.to, "to")?;
        if let Some(b) = opt(&self.before) {
            let b: jiff::Timestamp = b
                .parse()
                .map_err(|_| AdminError::Invalid("the page marker is not a time".into()))?;
            to = Some(to.map_or(b, |t| t.min(b)));
        }
        Ok(EventFilter {
            from: local(&self.from, "from")?,
            to,
            device: opt(&self.device),
            ip: match opt(&self.ip) {
                None => None,
                Some(ip) => Some(
                    ip.parse()
                        .map_err(|_| AdminError::Invalid(format!("{ip:?} is not an IP address")))?,
                ),
            },
            user: opt(&self.user),
            group: opt(&self.group),
            category: match opt(&self.category) {
                None => None,
                Some(c) => {
                    Some(hedgerow_admin::report::parse_category(&c).map_err(AdminError::Invalid)?)
                }
            },
            verdict: match opt(&self.verdict) {
                None => None,
                Some(v) => {
                    Some(hedgerow_admin::report::parse_verdict(&v).map_err(AdminError::Invalid)?)
                }
            },
            site: opt(&self.site),
            search: opt(&self.search),
            limit: Some(limit),
        })
    }

    /// The search's fields by name, without the page marker.
    pub(crate) fn fields(&self) -> [(&'static str, &str); 10] {
        [
            ("from", &self.from),
            ("to", &self.to),
            ("device", &self.device),
            ("user", &self.user),
            ("ip", &self.ip),
            ("group", &self.group),
            ("category", &self.category),
            ("verdict", &self.verdict),
            ("site", &self.site),
            ("search", &self.search),
        ]
    }

    /// The query string for this search, without the page marker.
    fn query(&self) -> String {
        let mut q = Vec::new();
        for (k, v) in self.fields() {
            if !v.trim().is_empty() {
                q.push(format!("{k}={}", url_encode(v.trim())));
            }
        }
        q.join("&")
    }

    fn any(&self) -> bool {
        !self.query().is_empty() || !self.before.is_empty()
    }
}

/// An event as a row.
pub(crate) struct EventRow {
    pub(crate) time: String,
    pub(crate) front: String,
    pub(crate) client: String,
    pub(crate) device: String,
    pub(crate) user: String,
    pub(crate) group: String,
    pub(crate) target: String,
    pub(crate) verdict: String,
    pub(crate) blocked: bool,
    pub(crate) category: String,
    pub(crate) search: String,
}

pub(crate) fn event_row(e: &AccessEvent) -> EventRow {
    let cells = hedgerow_admin::report::event_row(e, &zone(), "");
    let cell = |i: usize| cells.get(i).cloned().unwrap_or_default();
    EventRow {
        time: cell(0),
        front: if cell(1) == "dns" { "DNS" } else { "Web" }.to_owned(),
        client: cell(2),
        device: cell(3),
        user: cell(4),
        group: cell(5),
        target: cell(6),
        verdict: cell(8),
        blocked: e.disposition() == Disposition::Block,
        category: cell(10),
        search: cell(12),
    }
}

#[derive(Template)]
#[template(path = "logs/search.html")]
struct SearchPage {
    chrome: Chrome,
    q: Search,
    rows: Vec<EventRow>,
    searched: bool,
    older: Option<String>,
    categories: Vec<(&'static str, &'static str)>,
    verdicts: &'static [(&'static str, &'static str)],
    error: Option<String>,
}

const VERDICTS: &[(&str, &str)] = &[
    ("allow", "Allowed"),
    ("block", "Blocked"),
    ("rewrite", "SafeSearch rewrite"),
    ("refused", "Refused"),
    ("rate-limited", "Rate limited"),
    ("error", "Error"),
];

async fn search(State(ctx): St, me: Signed, Query(q): Query<Search>) -> Response {
    if let Err(e) = me.account.authorize(hedgerow_admin::Permission::PupilData) {
        return html::error(&me, e);
    }
    let categories = hedgerow_model::VOCABULARY
        .iter()
        .map(|c| (c.id, c.name))
        .collect();
    let mut page = SearchPage {
        chrome: Chrome::new(&me, "Logs"),
        rows: Vec::new(),
        searched: q.any(),
        older: None,
        categories,
        verdicts: VERDICTS,
        error: None,
        q: q.clone(),
    };
    if !page.searched {
        return html::page(&page);
    }
    let filter = match q.filter(PAGE) {
        Ok(f) => f,
        Err(e) => {
            page.error = Some(e.to_string());
            return html::page_status(axum::http::StatusCode::BAD_REQUEST, &page);
        }
    };
    let account = me.account.clone();
    match ctx.run(move |a| a.events(&account, filter)).await {
        Ok(events) => {
            if events.len() == PAGE
                && let Some(oldest) = events.first()
            {
                page.older = Some(format!(
                    "{}{}before={}",
                    q.query(),
                    if q.query().is_empty() { "" } else { "&" },
                    url_encode(&oldest.time.to_string())
                ));
            }
            page.rows = events.iter().rev().map(event_row).collect();
            html::page(&page)
        }
        Err(e @ AdminError::Invalid(_)) => {
            page.error = Some(e.to_string());
            html::page_status(axum::http::StatusCode::BAD_REQUEST, &page)
        }
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize)]
struct ExportForm {
    #[serde(flatten)]
    q: Search,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

/// The most events one CSV export holds.
/// (The CSV is made whole before it is sent: at about 200 bytes a row, 250,000 rows is
/// 50 MB; a larger export is `hedgerow export` or `hedgerow logs --format csv`.)
const EXPORT_LIMIT: usize = 250_000;

async fn export(State(ctx): St, f: SignedForm<ExportForm>) -> Response {
    let SignedForm { me, form } = f;
    if let Err(e) = me.account.authorize(hedgerow_admin::Permission::PupilData) {
        return html::error(&me, e);
    }
    let filter = match form.q.filter(EXPORT_LIMIT) {
        Ok(f) => f,
        Err(e) => return html::error(&me, e),
    };
    if let Err(e) = reauthenticate(&ctx, &me, &form.password, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    match ctx
        .run(move |a| a.events_csv(&account, filter, &zone()))
        .await
    {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"hedgerow-logs.csv\"",
                ),
            ],
            csv,
        )
            .into_response(),
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize, Default)]
struct DeviceQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    ip: String,
    days: Option<u32>,
}

struct Day {
    date: String,
    allowed: usize,
    blocked: usize,
    rows: Vec<EventRow>,
}

#[derive(Template)]
#[template(path = "logs/device.html")]
struct DevicePage {
    chrome: Chrome,
    name: String,
    ip: String,
    days_shown: u32,
    days: Vec<Day>,
    total: usize,
    capped: bool,
}

/// The most events a timeline holds.
const TIMELINE_LIMIT: usize = 5000;

async fn device(State(ctx): St, me: Signed, Query(q): Query<DeviceQuery>) -> Response {
    let days_shown = q.days.unwrap_or(7).clamp(1, 31);
    let name = q.name.trim().to_owned();
    let ip = q.ip.trim().to_owned();
    if name.is_empty() && ip.is_empty() {
        return html::error(
            &me,
            AdminError::Invalid("name a device (or an address) to see its timeline".into()),
        );
    }
    let now = jiff::Timestamp::now();
    let from = now
        .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days_shown)))
        .ok();
    let filter = EventFilter {
        from,
        device: opt(&name),
        ip: match opt(&ip) {
            None => None,
            Some(i) => match i.parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    return html::error(
                        &me,
                        AdminError::Invalid(format!("{i:?} is not an IP address")),
                    );
                }
            },
        },
        limit: Some(TIMELINE_LIMIT),
        ..EventFilter::default()
    };
    let account = me.account.clone();
    let events = match ctx.run(move |a| a.events(&account, filter)).await {
        Ok(e) => e,
        Err(e) => return html::error(&me, e),
    };
    // The store matches a device name's start (`ipad-1` finds `ipad-10`): this device only.
    let events: Vec<AccessEvent> = events
        .into_iter()
        .filter(|e| {
            name.is_empty()
                || e.device
                    .as_deref()
                    .is_some_and(|d| d.eq_ignore_ascii_case(&name))
        })
        .collect();
    let tz = zone();
    let mut days: Vec<Day> = Vec::new();
    for e in events.iter().rev() {
        let date = e
            .time
            .to_zoned(tz.clone())
            .strftime("%A %-d %B %Y")
            .to_string();
        if days.last().is_none_or(|d| d.date != date) {
            days.push(Day {
                date,
                allowed: 0,
                blocked: 0,
                rows: Vec::new(),
            });
        }
        if let Some(d) = days.last_mut() {
            if e.disposition() == Disposition::Block {
                d.blocked += 1;
            } else {
                d.allowed += 1;
            }
            d.rows.push(event_row(e));
        }
    }
    html::page(&DevicePage {
        chrome: Chrome::new(
            &me,
            format!("Timeline: {}", if name.is_empty() { &ip } else { &name }),
        ),
        capped: events.len() == TIMELINE_LIMIT,
        total: events.len(),
        name,
        ip,
        days_shown,
        days,
    })
}
