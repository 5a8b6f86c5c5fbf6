//! Reports: the dashboard (this week's breaches by severity, blocked categories per group,
//! 12-week trends), trends by category, group and time, and the weekly monitoring report the
//! DfE standard expects (viewable, and e-mailed to the DSL each Monday). Every number comes
//! from the store's counters (`hedgerow_store` `day_counts`, `breach_counts`, …), never from
//! a scan of the events, so a page over millions of events reads a few thousand rows.
//!
//! Who may see them is [`Permission::Reports`] (the DSL, deputies, approvers and governors):
//! counts only, nobody named. Site names (the most-blocked sites) need
//! [`Permission::ReportSites`], which governors do not hold. Each view is in the audit log.
//!
//! Days are the store's days, UTC days: a week is the seven UTC days from its Monday. In
//! British Summer Time that is an hour off the school's local midnight; the report says so.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use hedgerow_model::{Category, Disposition, Severity};
use hedgerow_store::{AdminTree, ReviewStatus};
use jiff::civil::{Date, Weekday};
use serde::{Deserialize, Serialize};

use crate::api::authed;
use crate::cases::CaseStatus;
use crate::checks::{ChangeLine, CheckSummary};
use crate::service::{APPLIANCE, dec};
use crate::{Account, Admin, AdminError, Permission};

/// Weeks the dashboard's trends cover.
pub const TREND_WEEKS: u32 = 12;
/// The most weeks a trend may cover.
pub const MAX_TREND_WEEKS: u32 = 52;
/// Categories (and groups) a trend draws one line each for; the rest are summed as `other`.
const SERIES: usize = 8;
/// Categories shown per group on the dashboard.
const TOP_CATEGORIES: usize = 8;
/// Sites the weekly report lists.
const TOP_SITES: usize = 20;
/// The key in the store's meta of the last week whose report was e-mailed (its Monday).
const SENT_KEY: &str = "weekly-report-sent";

/// The key and label of events with no group, and of blocks with no category.
const NO_GROUP: &str = "(no group)";
const NO_CATEGORY: &str = "(uncategorised)";

/// A count at one severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCount {
    pub severity: Severity,
    pub count: u64,
}

/// Blocked events in one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCount {
    /// The category id (`""` for a block with none, such as a group's own block entry).
    pub category: String,
    /// Its display name.
    pub name: String,
    pub count: u64,
}

/// One group's blocked events: the total and its categories, most blocked first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupBlocks {
    pub group: String,
    pub blocked: u64,
    pub categories: Vec<CategoryCount>,
}

/// One line of a chart: a value per week (or per day, or per hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    pub key: String,
    pub label: String,
    pub values: Vec<u64>,
}

/// Events of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayTotal {
    pub day: Date,
    pub events: u64,
    pub blocked: u64,
}

/// Trends over whole weeks, by category, group and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trends {
    /// The Monday of each week, oldest first; every series has one value per week.
    pub weeks: Vec<Date>,
    /// Only the events of this group, if set.
    pub group: Option<String>,
    /// Only the blocks of this category, if set.
    pub category: Option<String>,
    /// Blocked events by category (the most blocked, then `other`).
    pub blocked_by_category: Vec<Series>,
    /// Blocked events by group (the most blocked, then `other`).
    pub blocked_by_group: Vec<Series>,
    /// Every event by what happened to it (allow, block, …).
    pub events: Vec<Series>,
    /// Breaches by severity (by the day each was first seen; not filtered by group).
    pub breaches: Vec<Series>,
    /// Each day of the weeks.
    pub days: Vec<DayTotal>,
    /// Blocked events by hour of the day, in the school's time zone (0–23), over the weeks
    /// (all groups).
    pub blocked_by_hour: Vec<u64>,
}

/// The dashboard: this week, and the trends of the last 12.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    pub generated: jiff::Timestamp,
    pub timezone: String,
    /// This week's Monday, and the Monday after (the week is the days in between).
    pub week_start: Date,
    pub week_end: Date,
    /// This week's breaches by severity, most severe first (every severity, zero or not).
    pub breaches: Vec<SeverityCount>,
    pub events: u64,
    pub blocked: u64,
    /// This week's blocked events per group, most blocked first, each with its top categories.
    pub blocked_by_group: Vec<GroupBlocks>,
    pub trends: Trends,
}

/// Breaches of one severity first seen in the week, and where their cases stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreachStatus {
    pub severity: Severity,
    pub total: u64,
    pub new: u64,
    pub open: u64,
    pub closed: u64,
}

/// A site and how often it was blocked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteCount {
    pub site: String,
    pub count: u64,
}

/// Review requests from the block page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewCounts {
    /// Asked during the week.
    pub asked: u64,
    /// Of those, where each stands now.
    pub pending: u64,
    pub approved: u64,
    pub declined: u64,
    /// Turned into a change request (waiting for its approval).
    #[serde(default)]
    pub change_requested: u64,
    /// Decided during the week (whenever asked).
    pub decided: u64,
    /// Waiting now, however old.
    pub waiting_now: u64,
}

/// One disposition's count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispositionCount {
    pub disposition: Disposition,
    pub count: u64,
}

/// The weekly monitoring report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeeklyReport {
    pub generated: jiff::Timestamp,
    pub timezone: String,
    /// The week: its Monday and the Monday after; `from`/`to` are those days' starts (UTC).
    pub week_start: Date,
    pub week_end: Date,
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
    /// Every event of the week by what happened to it.
    pub events: Vec<DispositionCount>,
    pub total: u64,
    /// Breaches first seen in the week by severity (most severe first), with their status.
    pub breaches: Vec<BreachStatus>,
    pub blocked: u64,
    pub blocked_by_category: Vec<CategoryCount>,
    pub blocked_by_group: Vec<GroupBlocks>,
    /// How many different sites were blocked.
    pub sites_blocked: u64,
    /// The most-blocked sites with their counts; absent for a reader who may not see site
    /// names (governors). Illegal-tier sites are never named.
    pub top_sites: Option<Vec<SiteCount>>,
    pub reviews: ReviewCounts,
    /// Change requests made or applied in the week.
    pub changes: Vec<ChangeLine>,
    /// Effectiveness checks recorded in the week, and the latest one at the week's end.
    pub checks: Vec<CheckSummary>,
    pub last_check: Option<CheckSummary>,
    /// Access events lost (the recorder's queue full, or not written) during the week.
    pub dropped: u64,
}

/// The weekly report as an e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEmail {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// What `trends` may be narrowed to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrendQuery {
    /// How many weeks, ending with this one (1–52; 12 if not given).
    pub weeks: Option<u32>,
    pub group: Option<String>,
    /// A category id.
    pub category: Option<String>,
}

fn severities() -> [Severity; 4] {
    [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ]
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

/// The Monday of the week `d` falls in.
pub fn monday_of(d: Date) -> Date {
    let back = i64::from(d.weekday().to_monday_zero_offset());
    d.checked_sub(jiff::Span::new().days(back)).unwrap_or(d)
}

fn add_days(d: Date, n: i64) -> Date {
    d.checked_add(jiff::Span::new().days(n)).unwrap_or(d)
}

fn utc_start(d: Date) -> jiff::Timestamp {
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn category_key(c: &Option<Category>) -> (String, String) {
    match c {
        Some(c) => (c.as_str().to_owned(), c.display_name().to_owned()),
        None => (String::new(), NO_CATEGORY.to_owned()),
    }
}

fn group_key(g: &Option<String>) -> String {
    g.clone().unwrap_or_else(|| NO_GROUP.to_owned())
}

/// Puts the `n` largest series first (by total), sums the rest as `other`.
fn top_series(mut all: Vec<Series>, n: usize, weeks: usize) -> Vec<Series> {
    all.sort_by(|a, b| {
        let (ta, tb) = (a.values.iter().sum::<u64>(), b.values.iter().sum::<u64>());
        tb.cmp(&ta).then_with(|| a.key.cmp(&b.key))
    });
    if all.len() <= n + 1 {
        return all;
    }
    let rest = all.split_off(n);
    let mut other = Series {
        key: "other".into(),
        label: format!("Other ({})", rest.len()),
        values: vec![0; weeks],
    };
    for s in rest {
        for (o, v) in other.values.iter_mut().zip(s.values) {
            *o += v;
        }
    }
    all.push(other);
    all
}

/// Blocked counts by group, each with its categories, most blocked first.
fn by_group(rows: &[hedgerow_store::DayCount], top: usize) -> Vec<GroupBlocks> {
    let mut groups: BTreeMap<String, BTreeMap<(String, String), u64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.disposition == Disposition::Block) {
        *groups
            .entry(group_key(&r.group))
            .or_default()
            .entry(category_key(&r.category))
            .or_default() += r.count;
    }
    let mut out: Vec<GroupBlocks> = groups
        .into_iter()
        .map(|(group, cats)| {
            let mut categories: Vec<CategoryCount> = cats
                .into_iter()
                .map(|((category, name), count)| CategoryCount {
                    category,
                    name,
                    count,
                })
                .collect();
            categories.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
            let blocked = categories.iter().map(|c| c.count).sum();
            categories.truncate(top);
            GroupBlocks {
                group,
                blocked,
                categories,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.blocked
            .cmp(&a.blocked)
            .then_with(|| a.group.cmp(&b.group))
    });
    out
}

fn by_category(rows: &[hedgerow_store::DayCount]) -> Vec<CategoryCount> {
    let mut cats: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.disposition == Disposition::Block) {
        *cats.entry(category_key(&r.category)).or_default() += r.count;
    }
    let mut out: Vec<CategoryCount> = cats
        .into_iter()
        .map(|((category, name), count)| CategoryCount {
            category,
            name,
            count,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    out
}

impl Admin {
    /// The school's time zone (`[server] timezone` of the configuration file, as the
    /// configuration reads it: Europe/London when not set), and its name. Only that key is
    /// read, not the whole configuration and its lists: this is on every report's path.
    fn report_zone(&self) -> (jiff::tz::TimeZone, String) {
        let name = std::fs::read_to_string(self.config_path())
            .ok()
            .and_then(|t| t.parse::<toml_edit::DocumentMut>().ok())
            .and_then(|d| {
                d.get("server")?
                    .get("timezone")?
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "Europe/London".to_owned());
        match jiff::tz::TimeZone::get(&name) {
            Ok(tz) => (tz, name),
            Err(_) => (jiff::tz::TimeZone::UTC, "UTC".to_owned()),
        }
    }

    fn audit_report(&self, actor: &str, detail: serde_json::Value) -> Result<(), AdminError> {
        self.audit(actor, "report-view", detail.to_string())?;
        Ok(())
    }

    /// The dashboard at `now`: this week (Monday to Sunday in the school's time zone) and
    /// the trends of the 12 weeks ending with it.
    pub fn dashboard(
        &self,
        actor: &Account,
        now: jiff::Timestamp,
    ) -> Result<Dashboard, AdminError> {
        actor.authorize(Permission::Reports)?;
        self.audit_report(&actor.name, serde_json::json!({ "report": "dashboard" }))?;
        let (tz, zone) = self.report_zone();
        let week_start = monday_of(now.to_zoned(tz.clone()).date());
        let week_end = add_days(week_start, 7);
        let store = self.store();
        let mut breaches: BTreeMap<Severity, u64> = BTreeMap::new();
        for c in store.breach_counts(week_start, week_end)? {
            *breaches.entry(c.severity).or_default() += c.count;
        }
        let rows = store.day_counts(week_start, week_end)?;
        let today = now.to_zoned(tz.clone()).date();
        let trends = self.trend_data(&tz, today, TREND_WEEKS, None, None)?;
        Ok(Dashboard {
            generated: now,
            timezone: zone,
            week_start,
            week_end,
            breaches: severities()
                .into_iter()
                .map(|severity| SeverityCount {
                    severity,
                    count: breaches.get(&severity).copied().unwrap_or(0),
                })
                .collect(),
            events: rows.iter().map(|r| r.count).sum(),
            blocked: rows
                .iter()
                .filter(|r| r.disposition == Disposition::Block)
                .map(|r| r.count)
                .sum(),
            blocked_by_group: by_group(&rows, TOP_CATEGORIES),
            trends,
        })
    }

    /// Trends by category, group and time over the weeks ending with `now`'s, optionally
    /// for one group or one category.
    pub fn trends(
        &self,
        actor: &Account,
        now: jiff::Timestamp,
        q: &TrendQuery,
    ) -> Result<Trends, AdminError> {
        actor.authorize(Permission::Reports)?;
        let weeks = q.weeks.unwrap_or(TREND_WEEKS);
        if !(1..=MAX_TREND_WEEKS).contains(&weeks) {
            return Err(AdminError::Invalid(format!(
                "weeks {weeks}: expected 1 to {MAX_TREND_WEEKS}"
            )));
        }
        let group = q.group.as_deref().map(str::trim).filter(|g| !g.is_empty());
        let category = match q
            .category
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(c) => Some(
                Category::new(c)
                    .map_err(|e| AdminError::Invalid(format!("category {c:?}: {e}")))?,
            ),
            None => None,
        };
        self.audit_report(
            &actor.name,
            serde_json::json!({ "report": "trends", "weeks": weeks, "group": group, "category": category.as_ref().map(Category::as_str) }),
        )?;
        let (tz, _) = self.report_zone();
        let today = now.to_zoned(tz.clone()).date();
        self.trend_data(&tz, today, weeks, group, category.as_ref())
    }

    /// The trends of the `weeks` weeks ending with the one `today` is in (days after
    /// `today` are left out of the day-by-day list).
    fn trend_data(
        &self,
        tz: &jiff::tz::TimeZone,
        today: Date,
        weeks: u32,
        group: Option<&str>,
        category: Option<&Category>,
    ) -> Result<Trends, AdminError> {
        let n = weeks as usize;
        let this_week = monday_of(today);
        let first = add_days(this_week, -7 * (i64::from(weeks) - 1));
        let end = add_days(this_week, 7);
        let week_of = |d: Date| -> Option<usize> {
            let days = first.until(d).ok()?.get_days();
            usize::try_from(days / 7).ok().filter(|&w| w < n)
        };
        let store = self.store();
        let rows: Vec<_> = store
            .day_counts(first, end)?
            .into_iter()
            .filter(|r| group.is_none_or(|g| r.group.as_deref() == Some(g)))
            .filter(|r| {
                category.is_none_or(|c| {
                    r.disposition != Disposition::Block || r.category.as_ref() == Some(c)
                })
            })
            .collect();
        let mut cats: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut dispositions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut days: BTreeMap<Date, DayTotal> = BTreeMap::new();
        let mut d = first;
        while d < end && d <= today {
            days.insert(
                d,
                DayTotal {
                    day: d,
                    events: 0,
                    blocked: 0,
                },
            );
            d = add_days(d, 1);
        }
        for r in &rows {
            let Some(w) = week_of(r.day) else { continue };
            let blocked = r.disposition == Disposition::Block;
            if category.is_none() || blocked {
                dispositions
                    .entry(r.disposition.as_str().to_owned())
                    .or_insert_with(|| vec![0; n])[w] += r.count;
                if let Some(day) = days.get_mut(&r.day) {
                    day.events += r.count;
                    if blocked {
                        day.blocked += r.count;
                    }
                }
            }
            if blocked {
                cats.entry(category_key(&r.category))
                    .or_insert_with(|| vec![0; n])[w] += r.count;
                groups
                    .entry(group_key(&r.group))
                    .or_insert_with(|| vec![0; n])[w] += r.count;
            }
        }
        let mut breaches: BTreeMap<Severity, Vec<u64>> = BTreeMap::new();
        for c in store.breach_counts(first, end)? {
            if let Some(w) = week_of(c.day) {
                breaches.entry(c.severity).or_insert_with(|| vec![0; n])[w] += c.count;
            }
        }
        // Blocked events by local hour of the day: each UTC hour's count lands on the hour
        // it was in the school's zone.
        let mut blocked_by_hour = vec![0u64; 24];
        if group.is_none() && category.is_none() {
            for h in store.hour_counts(first, end)? {
                if h.disposition != Disposition::Block {
                    continue;
                }
                let at = h
                    .day
                    .at(i8::try_from(h.hour).unwrap_or(0), 30, 0, 0)
                    .to_zoned(jiff::tz::TimeZone::UTC)
                    .map(|z| z.with_time_zone(tz.clone()).hour());
                if let Ok(hour) = at
                    && let Some(slot) = usize::try_from(hour)
                        .ok()
                        .and_then(|i| blocked_by_hour.get_mut(i))
                {
                    *slot += h.count;
                }
            }
        }
        let weeks_list: Vec<Date> = (0..i64::from(weeks))
            .map(|w| add_days(first, 7 * w))
            .collect();
        let order = [
            "allow",
            "block",
            "rewrite",
            "refused",
            "rate-limited",
            "error",
        ];
        Ok(Trends {
            weeks: weeks_list,
            group: group.map(str::to_owned),
            category: category.map(|c| c.as_str().to_owned()),
            blocked_by_category: top_series(
                cats.into_iter()
                    .map(|((key, label), values)| Series { key, label, values })
                    .collect(),
                SERIES,
                n,
            ),
            blocked_by_group: top_series(
                groups
                    .into_iter()
                    .map(|(key, values)| Series {
                        label: key.clone(),
                        key,
                        values,
                    })
                    .collect(),
                SERIES,
                n,
            ),
            events: order
                .iter()
                .filter_map(|d| {
                    dispositions.remove(*d).map(|values| Series {
                        key: (*d).to_owned(),
                        label: (*d).to_owned(),
                        values,
                    })
                })
                .collect(),
            breaches: severities()
                .into_iter()
                .map(|s| Series {
                    key: severity_word(s).to_owned(),
                    label: severity_word(s).to_owned(),
                    values: breaches.remove(&s).unwrap_or_else(|| vec![0; n]),
                })
                .collect(),
            days: days.into_values().collect(),
            blocked_by_hour: if group.is_none() && category.is_none() {
                blocked_by_hour
            } else {
                Vec::new()
            },
        })
    }

    /// The weekly monitoring report of the week starting `week_start` (a Monday).
    pub fn weekly_report(
        &self,
        actor: &Account,
        week_start: Date,
    ) -> Result<WeeklyReport, AdminError> {
        actor.authorize(Permission::Reports)?;
        if week_start.weekday() != Weekday::Monday {
            return Err(AdminError::Invalid(format!(
                "{week_start} is a {:?}: a week starts on a Monday",
                week_start.weekday()
            )));
        }
        self.audit_report(
            &actor.name,
            serde_json::json!({ "report": "weekly", "week": week_start.to_string() }),
        )?;
        self.build_weekly(week_start, actor.may(Permission::ReportSites))
    }

    fn build_weekly(&self, week_start: Date, sites: bool) -> Result<WeeklyReport, AdminError> {
        let (_, zone) = self.report_zone();
        let week_end = add_days(week_start, 7);
        let (from, to) = (utc_start(week_start), utc_start(week_end));
        let store = self.store();
        let rows = store.day_counts(week_start, week_end)?;
        let mut events: BTreeMap<&'static str, (Disposition, u64)> = BTreeMap::new();
        for r in &rows {
            events
                .entry(r.disposition.as_str())
                .or_insert((r.disposition, 0))
                .1 += r.count;
        }
        let order = [
            "allow",
            "block",
            "rewrite",
            "refused",
            "rate-limited",
            "error",
        ];
        let events: Vec<DispositionCount> = order
            .iter()
            .filter_map(|d| events.get(d))
            .map(|&(disposition, count)| DispositionCount { disposition, count })
            .collect();
        // Breaches: totals from the counters, where each stands from its case.
        let mut totals: BTreeMap<Severity, u64> = BTreeMap::new();
        for c in store.breach_counts(week_start, week_end)? {
            *totals.entry(c.severity).or_default() += c.count;
        }
        // Where each breach's case stands (a breach nobody has touched has no case: new).
        let mut cases: BTreeMap<u64, CaseStatus> = BTreeMap::new();
        for (_, v) in store.admin_list(AdminTree::Cases)? {
            let c: crate::cases::Case = dec(&v)?;
            cases.insert(c.breach, c.status);
        }
        let mut status: BTreeMap<Severity, [u64; 3]> = BTreeMap::new();
        for head in store.breach_heads() {
            let (b, _) = head?;
            if b.first < from || b.first >= to {
                continue;
            }
            let i = match cases.get(&b.id).copied().unwrap_or(CaseStatus::New) {
                CaseStatus::New => 0,
                CaseStatus::Open => 1,
                CaseStatus::Closed => 2,
            };
            status.entry(b.severity).or_default()[i] += 1;
        }
        let breaches = severities()
            .into_iter()
            .map(|severity| {
                let [new, open, closed] = status.get(&severity).copied().unwrap_or_default();
                BreachStatus {
                    severity,
                    total: totals.get(&severity).copied().unwrap_or(0),
                    new,
                    open,
                    closed,
                }
            })
            .collect();
        let top = store.top_sites(week_start, week_end, TOP_SITES)?;
        let sites_blocked = top.distinct;
        let top_sites = sites.then(|| {
            top.sites
                .into_iter()
                .map(|(site, count)| SiteCount { site, count })
                .collect()
        });
        let mut reviews = ReviewCounts::default();
        let within = |t: jiff::Timestamp| t >= from && t < to;
        for r in store.reviews(None, usize::MAX)? {
            if r.status == ReviewStatus::Pending {
                reviews.waiting_now += 1;
            }
            if r.decided.is_some_and(within) {
                reviews.decided += 1;
            }
            if !within(r.asked) {
                continue;
            }
            reviews.asked += 1;
            match r.status {
                ReviewStatus::Pending => reviews.pending += 1,
                ReviewStatus::Approved => reviews.approved += 1,
                ReviewStatus::Declined => reviews.declined += 1,
                ReviewStatus::ChangeRequested => reviews.change_requested += 1,
            }
        }
        let changes = self
            .all_changes_for_report()?
            .iter()
            .filter(|c| within(c.created) || c.applied_at.is_some_and(within))
            .map(ChangeLine::of)
            .collect();
        let all_checks = self.all_checks()?;
        let checks = all_checks
            .iter()
            .filter(|c| within(c.recorded))
            .map(|c| c.summary())
            .collect();
        let last_check = all_checks
            .iter()
            .filter(|c| c.recorded < to)
            .max_by_key(|c| c.recorded)
            .map(|c| c.summary());
        let dropped = store
            .dropped_counts(week_start, week_end)?
            .iter()
            .map(|(_, n)| n)
            .sum();
        Ok(WeeklyReport {
            generated: self.now(),
            timezone: zone,
            week_start,
            week_end,
            from,
            to,
            total: events.iter().map(|e| e.count).sum(),
            events,
            breaches,
            blocked: rows
                .iter()
                .filter(|r| r.disposition == Disposition::Block)
                .map(|r| r.count)
                .sum(),
            blocked_by_category: by_category(&rows),
            blocked_by_group: by_group(&rows, usize::MAX),
            sites_blocked,
            top_sites,
            reviews,
            changes,
            checks,
            last_check,
            dropped,
        })
    }

    // ---- the e-mailed weekly report ----

    /// The week whose report is due at `now`, if any: once the school's Monday has reached
    /// `at` (local hour, minute), the week that ended that Monday, unless its report was
    /// sent (the store remembers the last week sent, so a restart sends none twice). A week
    /// missed while the appliance was off is sent when it starts, until the next is due.
    pub fn weekly_report_due(
        &self,
        now: jiff::Timestamp,
        at: (u8, u8),
    ) -> Result<Option<Date>, AdminError> {
        let (tz, _) = self.report_zone();
        let local = now.to_zoned(tz.clone());
        let monday = monday_of(local.date());
        let send_at = monday
            .at(
                i8::try_from(at.0).unwrap_or(0),
                i8::try_from(at.1).unwrap_or(0),
                0,
                0,
            )
            .to_zoned(tz)
            .map_err(|e| AdminError::Internal(format!("the weekly report's time: {e}")))?;
        // Before this Monday's time: last Monday's report is the one due.
        let monday = if local < send_at {
            add_days(monday, -7)
        } else {
            monday
        };
        let week = add_days(monday, -7);
        let sent = self.store().meta_time(SENT_KEY)?;
        if sent.is_some_and(|s| s >= utc_start(week)) {
            return Ok(None);
        }
        Ok(Some(week))
    }

    /// Remembers that the report of the week starting `week_start` was sent.
    pub fn mark_weekly_report_sent(&self, week_start: Date) -> Result<(), AdminError> {
        self.store()
            .set_meta_time(SENT_KEY, utc_start(week_start))?;
        self.audit(
            APPLIANCE,
            "weekly-report-sent",
            serde_json::json!({ "week": week_start.to_string() }).to_string(),
        )?;
        Ok(())
    }

    /// The weekly report of the week starting `week_start` as the e-mail to the DSL (HTML
    /// with a plain-text part), made by the appliance itself.
    pub fn weekly_report_email(&self, week_start: Date) -> Result<ReportEmail, AdminError> {
        let report = self.build_weekly(week_start, true)?;
        Ok(render_email(&report))
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The weekly report's sections as rows of cells, shared by both parts of the e-mail.
struct Section {
    title: String,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
    empty: &'static str,
}

fn sections(r: &WeeklyReport) -> Vec<Section> {
    let s = |title: &str, head: &[&str], rows: Vec<Vec<String>>, empty: &'static str| Section {
        title: title.to_owned(),
        head: head.iter().map(|h| (*h).to_owned()).collect(),
        rows,
        empty,
    };
    let mut out = vec![
        s(
            "Breaches by severity",
            &["Severity", "Total", "New", "Open", "Closed"],
            r.breaches
                .iter()
                .map(|b| {
                    vec![
                        severity_word(b.severity).to_owned(),
                        b.total.to_string(),
                        b.new.to_string(),
                        b.open.to_string(),
                        b.closed.to_string(),
                    ]
                })
                .collect(),
            "No breaches.",
        ),
        s(
            "Activity",
            &["What happened", "Events"],
            r.events
                .iter()
                .map(|e| vec![e.disposition.as_str().to_owned(), e.count.to_string()])
                .chain([
                    vec!["total".to_owned(), r.total.to_string()],
                    vec!["lost (not recorded)".to_owned(), r.dropped.to_string()],
                ])
                .collect(),
            "",
        ),
        s(
            "Blocked by category",
            &["Category", "Blocked"],
            r.blocked_by_category
                .iter()
                .map(|c| vec![c.name.clone(), c.count.to_string()])
                .collect(),
            "Nothing was blocked.",
        ),
        s(
            "Blocked by group",
            &["Group", "Blocked", "Most blocked categories"],
            r.blocked_by_group
                .iter()
                .map(|g| {
                    let cats: Vec<String> = g
                        .categories
                        .iter()
                        .take(5)
                        .map(|c| format!("{} {}", c.name, c.count))
                        .collect();
                    vec![g.group.clone(), g.blocked.to_string(), cats.join(", ")]
                })
                .collect(),
            "Nothing was blocked.",
        ),
    ];
    if let Some(sites) = &r.top_sites {
        out.push(s(
            &format!(
                "Most-blocked sites ({} different sites blocked)",
                r.sites_blocked
            ),
            &["Site", "Blocked"],
            sites
                .iter()
                .map(|x| vec![x.site.clone(), x.count.to_string()])
                .collect(),
            "No site was blocked.",
        ));
    }
    let v = &r.reviews;
    out.push(s(
        "Review requests",
        &["", "Requests"],
        vec![
            vec!["asked this week".into(), v.asked.to_string()],
            vec!["of those, still pending".into(), v.pending.to_string()],
            vec!["of those, unblocked".into(), v.approved.to_string()],
            vec!["of those, declined".into(), v.declined.to_string()],
            vec![
                "of those, turned into a change request".into(),
                v.change_requested.to_string(),
            ],
            vec!["decided this week".into(), v.decided.to_string()],
            vec!["waiting now".into(), v.waiting_now.to_string()],
        ],
        "",
    ));
    out.push(s(
        "Changes to filtering",
        &["#", "Status", "Direction", "Risk", "Proposed by", "Reason"],
        r.changes
            .iter()
            .map(|c| {
                vec![
                    c.id.to_string(),
                    c.status.clone(),
                    c.direction.clone(),
                    c.risk.clone(),
                    c.proposer.clone(),
                    c.reason.clone(),
                ]
            })
            .collect(),
        "No changes this week.",
    ));
    let check = |c: &CheckSummary| {
        vec![
            c.recorded.strftime("%Y-%m-%d %H:%M UTC").to_string(),
            if c.passed { "passed" } else { "FAILED" }.to_owned(),
            c.probes.to_string(),
            c.failures.to_string(),
            c.by.clone(),
        ]
    };
    let mut checks: Vec<Vec<String>> = r.checks.iter().map(check).collect();
    if checks.is_empty()
        && let Some(c) = &r.last_check
    {
        let mut row = check(c);
        row[0] = format!("{} (latest)", row[0]);
        checks.push(row);
    }
    out.push(s(
        "Effectiveness checks",
        &["When", "Result", "Probes", "Failures", "By"],
        checks,
        "No effectiveness check has been recorded.",
    ));
    out
}

fn period(r: &WeeklyReport) -> String {
    format!(
        "the week of Monday {} to Sunday {}",
        r.week_start,
        add_days(r.week_end, -1)
    )
}

/// The weekly report as an HTML e-mail with a plain-text part.
pub fn render_email(r: &WeeklyReport) -> ReportEmail {
    let subject = format!(
        "[Hedgerow] Weekly monitoring report: week of {}",
        r.week_start
    );
    let intro = format!(
        "Filtering and monitoring report for {}. Days are counted from midnight UTC (the school's time zone is {}).",
        period(r),
        r.timezone
    );
    let mut text = format!("Hedgerow weekly monitoring report\n\n{intro}\n");
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en-GB\"><head><meta charset=\"utf-8\"><title>{}</title></head>\n<body style=\"font-family:sans-serif;color:#1a1a1a\">\n<h1>Weekly monitoring report</h1>\n<p>{}</p>\n",
        esc(&subject),
        esc(&intro)
    );
    for sec in sections(r) {
        let _ = write!(
            text,
            "\n{}\n{}\n",
            sec.title,
            "-".repeat(sec.title.chars().count())
        );
        let _ = writeln!(html, "<h2>{}</h2>", esc(&sec.title));
        if sec.rows.is_empty() {
            let _ = writeln!(text, "{}", sec.empty);
            let _ = writeln!(html, "<p>{}</p>", esc(sec.empty));
            continue;
        }
        // Plain text: columns padded to their widest cell.
        let mut widths: Vec<usize> = sec.head.iter().map(|h| h.chars().count()).collect();
        for row in &sec.rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let _ = writeln!(text, "{}", line(&sec.head));
        for row in &sec.rows {
            let _ = writeln!(text, "{}", line(row));
        }
        html.push_str("<table style=\"border-collapse:collapse\">\n<thead><tr>");
        for h in &sec.head {
            let _ = write!(
                html,
                "<th scope=\"col\" style=\"text-align:left;border-bottom:1px solid #555;padding:2px 8px\">{}</th>",
                esc(h)
            );
        }
        html.push_str("</tr></thead>\n<tbody>\n");
        for row in &sec.rows {
            html.push_str("<tr>");
            for c in row {
                let _ = write!(html, "<td style=\"padding:2px 8px\">{}</td>", esc(c));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</tbody></table>\n");
    }
    let footer = "Sent by the school's Hedgerow filtering appliance. The same report is in the console under Reports.";
    let _ = write!(text, "\n{footer}\n");
    let _ = write!(html, "<p>{}</p>\n</body></html>\n", esc(footer));
    ReportEmail {
        subject,
        html,
        text,
    }
}

type St = crate::api::St;

/// The reports' routes, merged into [`crate::api::router`].
pub(crate) fn routes() -> Router<Arc<crate::api::Ctx>> {
    Router::new()
        .route("/api/v1/reports/dashboard", get(dashboard))
        .route("/api/v1/reports/trends", get(trends))
        .route("/api/v1/reports/weekly/{week}", get(weekly))
}

async fn dashboard(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.dashboard(who, a.now())).await
}

async fn trends(State(a): St, h: HeaderMap, UrlQuery(q): UrlQuery<TrendQuery>) -> Response {
    authed(a, &h, move |a, who| a.trends(who, a.now(), &q)).await
}

async fn weekly(State(a): St, h: HeaderMap, UrlPath(week): UrlPath<String>) -> Response {
    authed(a, &h, move |a, who| {
        let start = match week.as_str() {
            // The week just ended.
            "last" => {
                let (tz, _) = a.report_zone();
                add_days(monday_of(a.now().to_zoned(tz).date()), -7)
            }
            "this" => {
                let (tz, _) = a.report_zone();
                monday_of(a.now().to_zoned(tz).date())
            }
            w => w.parse::<Date>().map_err(|e| {
                AdminError::Invalid(format!(
                    "week {w:?}: expected its Monday as YYYY-MM-DD, `this` or `last` ({e})"
                ))
            })?,
        };
        a.weekly_report(who, start)
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use hedgerow_model::{AccessEvent, Action, Front, Outcome, Tier};

    use super::*;
    use crate::Role;

    /// Tuesday 1 December 2026, 10:00 UTC: this week began on Monday 30 November.
    const NOW: &str = "2026-12-01T10:00:00Z";

    fn admin(dir: &std::path::Path, now: &str) -> Admin {
        let store = hedgerow_store::Store::open(
            &dir.join("store"),
            &hedgerow_store::StoreOptions::default(),
        )
        .unwrap();
        std::fs::write(
            dir.join("hedgerow.toml"),
            "[server]\nstate_dir = \"state\"\ntimezone = \"Europe/London\"\n\n[dns]\nlisten = [\"127.0.0.1:0\"]\nupstreams = [{ address = \"127.0.0.1:53\" }]\n",
        )
        .unwrap();
        Admin::new(
            Arc::new(store),
            &dir.join("hedgerow.toml"),
            Arc::new(|| Ok("ok".into())),
            Arc::new(hedgerow_model::FixedClock(now.parse().unwrap())),
        )
    }

    fn account(a: &Admin, by: Option<&Account>, name: &str, role: Role) -> Account {
        a.add_account(by, name, BTreeSet::from([role]), None)
            .unwrap()
    }

    fn event(
        t: &str,
        group: &str,
        target: &str,
        category: Option<&str>,
        blocked: bool,
    ) -> AccessEvent {
        let mut e = AccessEvent::new(
            t.parse().unwrap(),
            Front::Dns,
            "10.0.0.9".parse().unwrap(),
            target.into(),
        );
        e.group = Some(group.into());
        e.device = Some("pc-9".into());
        e.category = category.map(|c| Category::new(c).unwrap());
        if blocked {
            e.outcome = Outcome::Blocked;
            e.action = Action::Block;
            e.tier = Tier::Category;
        }
        e
    }

    /// This week (from 30 November) and the week before.
    fn fill(a: &Admin) -> Vec<AccessEvent> {
        let mut evs = Vec::new();
        for i in 0..30 {
            evs.push(event(
                "2026-11-30T09:00:00Z",
                "ks3",
                "bet.example",
                Some("gambling"),
                true,
            ));
            if i % 3 == 0 {
                evs.push(event(
                    "2026-12-01T08:00:00Z",
                    "ks3",
                    "x.adult.example",
                    Some("adult"),
                    true,
                ));
                evs.push(event(
                    "2026-12-01T08:00:00Z",
                    "staff",
                    "bet.example",
                    Some("gambling"),
                    true,
                ));
            }
            evs.push(event(
                "2026-12-01T08:30:00Z",
                "ks3",
                "bbc.co.uk",
                Some("news"),
                false,
            ));
            // Last week, and one on the Sunday night before this week began.
            evs.push(event(
                "2026-11-25T12:00:00Z",
                "ks3",
                "bet.example",
                Some("gambling"),
                true,
            ));
        }
        evs.push(event(
            "2026-11-29T23:59:59Z",
            "ks3",
            "late.example",
            None,
            true,
        ));
        a.store().append_events(&evs).unwrap();
        let window = std::time::Duration::from_secs(3600);
        a.store()
            .record_breach(&evs[0], Severity::High, "gambling", window)
            .unwrap();
        a.store()
            .record_breach(
                &event(
                    "2026-11-24T10:00:00Z",
                    "ks3",
                    "x.example",
                    Some("extremism"),
                    true,
                ),
                Severity::Critical,
                "extremism",
                window,
            )
            .unwrap();
        evs
    }

    #[test]
    fn the_dashboard_counts_this_week_from_the_counters_as_a_scan_does() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path(), NOW);
        let boss = account(&a, None, "boss", Role::Approver);
        let dsl = account(&a, Some(&boss), "dsl", Role::Dsl);
        let evs = fill(&a);
        let d = a.dashboard(&dsl, NOW.parse().unwrap()).unwrap();
        assert_eq!(d.week_start.to_string(), "2026-11-30");
        assert_eq!(d.week_end.to_string(), "2026-12-07");
        assert_eq!(d.timezone, "Europe/London");
        // The same numbers from a scan of the events of the week.
        let from: jiff::Timestamp = "2026-11-30T00:00:00Z".parse().unwrap();
        let week: Vec<&AccessEvent> = evs.iter().filter(|e| e.time >= from).collect();
        assert_eq!(d.events, week.len() as u64);
        let blocked = |g: &str| {
            week.iter()
                .filter(|e| e.group.as_deref() == Some(g) && e.outcome == Outcome::Blocked)
                .count() as u64
        };
        assert_eq!(d.blocked, blocked("ks3") + blocked("staff"));
        let ks3 = d
            .blocked_by_group
            .iter()
            .find(|g| g.group == "ks3")
            .unwrap();
        assert_eq!(ks3.blocked, blocked("ks3"));
        assert_eq!(d.blocked_by_group[0].group, "ks3", "most blocked first");
        assert_eq!(ks3.categories[0].category, "gambling");
        assert_eq!(ks3.categories[0].count, 30);
        assert_eq!(
            ks3.categories[0].name,
            Category::new("gambling").unwrap().display_name()
        );
        // This week's one breach is high; last week's critical one is not this week's.
        let sev = |s| d.breaches.iter().find(|b| b.severity == s).unwrap().count;
        assert_eq!((sev(Severity::High), sev(Severity::Critical)), (1, 0));
        // Trends: 12 weeks, the last this one; last week's gambling blocks in its own week.
        assert_eq!(d.trends.weeks.len(), 12);
        // Day by day up to today (Tuesday), not the rest of the week.
        assert_eq!(d.trends.days.last().unwrap().day.to_string(), "2026-12-01");
        assert_eq!(d.trends.days.len(), 11 * 7 + 2);
        assert_eq!(d.trends.weeks[11], d.week_start);
        let gambling = d
            .trends
            .blocked_by_category
            .iter()
            .find(|s| s.key == "gambling")
            .unwrap();
        assert_eq!(gambling.values[11], 40);
        assert_eq!(gambling.values[10], 30);
        assert_eq!(gambling.values[..10].iter().sum::<u64>(), 0);
        let crit = d
            .trends
            .breaches
            .iter()
            .find(|s| s.key == "critical")
            .unwrap();
        assert_eq!((crit.values[10], crit.values[11]), (1, 0));
        // Blocked by local hour (London is UTC in winter): 30 at 09:00 on Monday...
        assert_eq!(d.trends.blocked_by_hour.len(), 24);
        assert_eq!(d.trends.blocked_by_hour[9], 30);
        assert_eq!(
            d.trends.blocked_by_hour.iter().sum::<u64>(),
            evs.iter().filter(|e| e.outcome == Outcome::Blocked).count() as u64
        );
        // The view is audited.
        let audit = a.store().audit().unwrap();
        assert!(audit.iter().any(|e| e.actor == "dsl"
            && e.action == "report-view"
            && e.detail.contains("dashboard")));
    }

    #[test]
    fn who_may_see_reports_and_site_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path(), NOW);
        let boss = account(&a, None, "boss", Role::Approver);
        let gov = account(&a, Some(&boss), "gov", Role::Governor);
        let tech = account(&a, Some(&boss), "tech", Role::Technician);
        let deputy = account(&a, Some(&boss), "deputy", Role::DeputyDsl);
        fill(&a);
        let monday: Date = "2026-11-30".parse().unwrap();
        // Technicians see changes and status, not reports.
        assert!(matches!(
            a.dashboard(&tech, NOW.parse().unwrap()),
            Err(AdminError::Forbidden(_))
        ));
        assert!(matches!(
            a.weekly_report(&tech, monday),
            Err(AdminError::Forbidden(_))
        ));
        // A governor gets the counts but no site names; a deputy DSL and an approver get both.
        let g = a.weekly_report(&gov, monday).unwrap();
        assert_eq!(g.top_sites, None);
        assert_eq!(g.sites_blocked, 2);
        let json = serde_json::to_string(&g).unwrap();
        assert!(
            !json.contains("bet.example") && !json.contains("pc-9"),
            "{json}"
        );
        assert!(a.dashboard(&gov, NOW.parse().unwrap()).is_ok());
        for who in [&deputy, &boss] {
            let r = a.weekly_report(who, monday).unwrap();
            let sites = r.top_sites.unwrap();
            assert_eq!(sites[0].site, "bet.example");
            assert_eq!(sites[0].count, 40);
            assert_eq!(r.sites_blocked, g.sites_blocked);
            assert_eq!(r.blocked, g.blocked);
        }
        // A week must start on a Monday.
        assert!(matches!(
            a.weekly_report(&boss, "2026-12-01".parse().unwrap()),
            Err(AdminError::Invalid(_))
        ));
    }

    #[test]
    fn the_weekly_report_covers_its_week_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path(), NOW);
        let boss = account(&a, None, "boss", Role::Approver);
        fill(&a);
        let last = a
            .weekly_report(&boss, "2026-11-23".parse().unwrap())
            .unwrap();
        assert_eq!(last.total, 31, "30 on Wednesday, one late on Sunday");
        assert_eq!(last.blocked, 31);
        let crit = last
            .breaches
            .iter()
            .find(|b| b.severity == Severity::Critical)
            .unwrap();
        assert_eq!((crit.total, crit.new), (1, 1));
        let uncategorised = last
            .blocked_by_category
            .iter()
            .find(|c| c.category.is_empty())
            .unwrap();
        assert_eq!(
            (uncategorised.count, uncategorised.name.as_str()),
            (1, NO_CATEGORY)
        );
        // Where the cases stand: a DSL opens this week's breach.
        let dsl = account(&a, Some(&boss), "dsl", Role::Dsl);
        a.case_step(&dsl, 1, crate::cases::CaseStep::Open).unwrap();
        let this = a
            .weekly_report(&boss, "2026-11-30".parse().unwrap())
            .unwrap();
        assert_eq!(this.total, 30 + 10 + 10 + 30);
        assert_eq!(this.dropped, 0);
        let high = this
            .breaches
            .iter()
            .find(|b| b.severity == Severity::High)
            .unwrap();
        assert_eq!((high.total, high.new, high.open, high.closed), (1, 0, 1, 0));
        let crit = last
            .breaches
            .iter()
            .find(|b| b.severity == Severity::Critical)
            .unwrap();
        assert_eq!((crit.new, crit.open), (1, 0), "last week's is still new");
        let empty = a
            .weekly_report(&boss, "2026-10-05".parse().unwrap())
            .unwrap();
        assert_eq!((empty.total, empty.blocked, empty.sites_blocked), (0, 0, 0));
    }

    #[test]
    fn the_email_is_due_once_a_week_after_its_time_and_escapes_what_it_shows() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path(), NOW);
        let at = (7, 0);
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        // Monday 30 November 06:59 London (UTC in winter): the week of the 16th's is due,
        // since nothing was ever sent; at 07:00 the week just ended is.
        assert_eq!(
            a.weekly_report_due(t("2026-11-30T06:59:00Z"), at).unwrap(),
            Some("2026-11-16".parse().unwrap())
        );
        let week: Date = "2026-11-23".parse().unwrap();
        assert_eq!(
            a.weekly_report_due(t("2026-11-30T07:00:00Z"), at).unwrap(),
            Some(week)
        );
        a.mark_weekly_report_sent(week).unwrap();
        // Sent: not due again that week, nor after a restart (the store remembers).
        assert_eq!(
            a.weekly_report_due(t("2026-11-30T07:01:00Z"), at).unwrap(),
            None
        );
        assert_eq!(
            a.weekly_report_due(t("2026-12-06T23:59:00Z"), at).unwrap(),
            None
        );
        drop(a);
        let a = admin(dir.path(), NOW);
        assert_eq!(
            a.weekly_report_due(t("2026-12-02T07:01:00Z"), at).unwrap(),
            None
        );
        // The next Monday at 07:00, the next week.
        assert_eq!(
            a.weekly_report_due(t("2026-12-07T07:00:00Z"), at).unwrap(),
            Some("2026-11-30".parse().unwrap())
        );
        // In summer, 07:00 London is 06:00 UTC.
        assert_eq!(
            a.weekly_report_due(t("2027-06-07T06:00:00Z"), at).unwrap(),
            Some("2027-05-31".parse().unwrap())
        );
        assert_eq!(
            a.weekly_report_due(t("2027-06-07T05:59:00Z"), at).unwrap(),
            Some("2027-05-24".parse().unwrap())
        );

        // The e-mail: both parts, the sites named (it goes to the DSL), markup escaped.
        let mut e = event(
            "2026-11-24T10:00:00Z",
            "<b>ks3</b>",
            "bet.example",
            Some("gambling"),
            true,
        );
        e.group = Some("<b>ks3</b>".into());
        a.store().append_events(&[e]).unwrap();
        let mail = a.weekly_report_email(week).unwrap();
        assert_eq!(
            mail.subject,
            "[Hedgerow] Weekly monitoring report: week of 2026-11-23"
        );
        assert!(
            mail.html.contains("&lt;b&gt;ks3&lt;/b&gt;"),
            "{}",
            mail.html
        );
        assert!(!mail.html.contains("<b>ks3"));
        assert!(mail.text.contains("<b>ks3</b>"));
        assert!(mail.html.contains("bet.example") && mail.text.contains("bet.example"));
        assert!(mail.text.contains("Breaches by severity"));
    }
}
