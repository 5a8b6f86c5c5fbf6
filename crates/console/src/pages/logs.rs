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
use hedgerow_model::{AccessEvent, Disposition, site_of};
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
    /// The day whose events are listed (`YYYY-MM-DD`): the newest day with events if not set.
    #[serde(default)]
    day: String,
}

/// One day of a device's timeline, summarised.
struct Day {
    /// `YYYY-MM-DD`, for the link that lists it.
    key: String,
    date: String,
    allowed: usize,
    blocked: usize,
    /// The sites blocked most that day, with their counts.
    top_blocked: Vec<(String, usize)>,
}

#[derive(Template)]
#[template(path = "logs/device.html")]
struct DevicePage {
    chrome: Chrome,
    name: String,
    ip: String,
    days_shown: u32,
    days: Vec<Day>,
    /// The day listed, its events newest first.
    shown: Option<(String, Vec<EventRow>)>,
    shown_key: String,
    shown_capped: bool,
    total: usize,
    capped: bool,
}

/// The most events a timeline reads (a device's month at a busy school is about 50,000).
const TIMELINE_LIMIT: usize = 200_000;
/// The most events of one day it lists.
const DAY_ROWS: usize = 3000;

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
    let capped = events.len() == TIMELINE_LIMIT;
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
    // Newest day first; each day's events stay in the store's order (oldest first).
    let mut by_day: Vec<(jiff::civil::Date, Vec<&AccessEvent>)> = Vec::new();
    for e in events.iter().rev() {
        let date = e.time.to_zoned(tz.clone()).date();
        match by_day.last_mut() {
            Some((d, list)) if *d == date => list.push(e),
            _ => by_day.push((date, vec![e])),
        }
    }
    let label = |d: jiff::civil::Date| d.strftime("%A %-d %B %Y").to_string();
    let days: Vec<Day> = by_day
        .iter()
        .map(|(date, list)| {
            let mut sites: std::collections::HashMap<String, usize> = Default::default();
            let mut blocked = 0;
            for e in list {
                if e.disposition() == Disposition::Block {
                    blocked += 1;
                    // The illegal tier's entries never appear in clear (the row redacts them).
                    if e.tier != hedgerow_model::Tier::Illegal {
                        *sites
                            .entry(site_of(&e.target).trim_end_matches('.').to_lowercase())
                            .or_default() += 1;
                    }
                }
            }
            let mut top_blocked: Vec<(String, usize)> = sites.into_iter().collect();
            top_blocked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            top_blocked.truncate(3);
            Day {
                key: date.to_string(),
                date: label(*date),
                allowed: list.len() - blocked,
                blocked,
                top_blocked,
            }
        })
        .collect();
    let wanted = q.day.trim();
    let chosen = by_day
        .iter()
        .find(|(d, _)| d.to_string() == wanted)
        .or_else(|| by_day.first());
    let shown_capped = chosen.is_some_and(|(_, list)| list.len() > DAY_ROWS);
    let shown = chosen.map(|(d, list)| {
        (
            label(*d),
            list.iter().take(DAY_ROWS).map(|e| event_row(e)).collect(),
        )
    });
    html::page(&DevicePage {
        chrome: Chrome::new(
            &me,
            format!("Timeline: {}", if name.is_empty() { &ip } else { &name }),
        ),
        shown_key: chosen.map(|(d, _)| d.to_string()).unwrap_or_default(),
        shown,
        shown_capped,
        capped,
        total: events.len(),
        name,
        ip,
        days_shown,
        days,
    })
}
