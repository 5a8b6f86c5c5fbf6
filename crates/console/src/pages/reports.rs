//! Reports: the dashboard (this week's breaches by severity and blocked categories per group,
//! 12-week trends), the weekly monitoring report (what is e-mailed to the DSL on Mondays),
//! and trends by category, group and time. Counts only, from `hedgerow_admin::dashboard`;
//! governors see no site names (the admin operation leaves them out).
//!
//! Charts are SVG drawn here on the server (no JavaScript): bars and lines from the numbers,
//! with presentation attributes only (the CSP forbids `style`). Each chart is an image with
//! a title and a one-sentence description, its lines differ in dash as well as colour, and
//! the same numbers follow it as a table.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use hedgerow_admin::dashboard::{Dashboard, Series, TrendQuery, Trends, WeeklyReport, monday_of};
use hedgerow_model::Severity;
use jiff::civil::Date;
use serde::Deserialize;

use crate::html::{self, Chrome, when};
use crate::session::{Ctx, Signed, St};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/reports", get(dashboard))
        .route("/reports/weekly", get(weekly))
        .route("/reports/trends", get(trends))
}

/// Line and bar colours: each at least 3:1 against white (WCAG 2.2 non-text contrast).
const PALETTE: [&str; 9] = [
    "#1d4f91", "#a4000f", "#00612e", "#7a4100", "#6f2c91", "#005a70", "#b3006b", "#4a4a4a",
    "#1b1b1b",
];
/// Dash patterns, so that lines differ by more than colour.
const DASHES: [&str; 9] = [
    "",
    "8 4",
    "2 3",
    "10 3 2 3",
    "4 4",
    "12 4",
    "2 6",
    "6 2 2 2 2 2",
    "1 2",
];

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

fn severity_fill(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "#a4000f",
        Severity::High => "#d4351c",
        Severity::Medium => "#7a4100",
        Severity::Low => "#4a4a4a",
    }
}

/// A count as people read it: `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn day(d: Date) -> String {
    d.strftime("%a %-d %b %Y").to_string()
}

fn short_day(d: Date) -> String {
    d.strftime("%-d %b").to_string()
}

/// A round number at or above `n`, for an axis: 1, 2 or 5 times a power of ten.
fn nice_max(n: u64) -> u64 {
    if n <= 4 {
        return 4;
    }
    let mut p = 1u64;
    while p.saturating_mul(10) <= n {
        p = p.saturating_mul(10);
    }
    for m in [1, 2, 4, 5, 10] {
        if p.saturating_mul(m) >= n {
            return p.saturating_mul(m);
        }
    }
    p.saturating_mul(10)
}

/// One bar of a horizontal bar chart.
pub(crate) struct Bar {
    label: String,
    value: String,
    y: u32,
    text_y: u32,
    len: u32,
    value_x: u32,
    fill: &'static str,
}

/// A horizontal bar chart.
pub(crate) struct BarChart {
    id: String,
    title: String,
    desc: String,
    width: u32,
    height: u32,
    label_x: u32,
    bar_x: u32,
    bars: Vec<Bar>,
}

/// A bar's label as the chart shows it: long names cut short (the table beside the chart
/// has them whole, and so does the chart's description).
fn short_label(label: &str) -> String {
    const MAX: usize = 30;
    if label.chars().count() <= MAX {
        return label.to_owned();
    }
    let cut: String = label.chars().take(MAX - 1).collect();
    format!("{}…", cut.trim_end())
}

const BAR_W: u32 = 720;
const BAR_LABEL: u32 = 220;
const BAR_ROOM: u32 = 90;

fn bar_chart(id: &str, title: &str, rows: &[(String, u64, &'static str)]) -> BarChart {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let span = BAR_W - BAR_LABEL - BAR_ROOM;
    let bars: Vec<Bar> = rows
        .iter()
        .enumerate()
        .map(|(i, (label, value, fill))| {
            let y = 8 + 28 * i as u32;
            let len = ((*value as f64 / max as f64) * f64::from(span)).round() as u32;
            Bar {
                label: short_label(label),
                value: count(*value),
                y,
                text_y: y + 14,
                len: if *value > 0 { len.max(2) } else { 0 },
                value_x: BAR_LABEL + len + 6,
                fill,
            }
        })
        .collect();
    let described: Vec<String> = rows
        .iter()
        .map(|(l, v, _)| format!("{l} {}", count(*v)))
        .collect();
    BarChart {
        id: id.to_owned(),
        title: title.to_owned(),
        desc: if rows.is_empty() {
            "No data.".to_owned()
        } else {
            format!("{}.", described.join("; "))
        },
        width: BAR_W,
        height: 16 + 28 * rows.len().max(1) as u32,
        label_x: BAR_LABEL - 8,
        bar_x: BAR_LABEL,
        bars,
    }
}

/// One line of a line chart.
pub(crate) struct Line {
    label: String,
    points: String,
    dots: Vec<(u32, u32)>,
    stroke: &'static str,
    dash: &'static str,
}

pub(crate) struct Tick {
    at: u32,
    label: String,
}

/// A line chart over weeks (or days, or hours).
pub(crate) struct LineChart {
    id: String,
    title: String,
    desc: String,
    width: u32,
    height: u32,
    left: u32,
    right: u32,
    bottom: u32,
    /// Horizontal grid lines with their value (y positions).
    grid: Vec<Tick>,
    /// Labels along the bottom (x positions).
    xs: Vec<Tick>,
    lines: Vec<Line>,
}

const LINE_W: u32 = 720;
const LINE_H: u32 = 280;
const LINE_LEFT: u32 = 64;
const LINE_RIGHT: u32 = 16;
const LINE_TOP: u32 = 12;
const LINE_BOTTOM: u32 = 40;

fn line_chart(id: &str, title: &str, xs: &[String], series: &[Series]) -> LineChart {
    let max = nice_max(
        series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .max()
            .unwrap_or(0),
    );
    let plot_w = LINE_W - LINE_LEFT - LINE_RIGHT;
    let plot_h = LINE_H - LINE_TOP - LINE_BOTTOM;
    let n = xs.len().max(1);
    let x_of = |i: usize| -> u32 {
        if n == 1 {
            LINE_LEFT + plot_w / 2
        } else {
            LINE_LEFT + (plot_w as usize * i / (n - 1)) as u32
        }
    };
    let y_of = |v: u64| -> u32 {
        let frac = v as f64 / max as f64;
        LINE_TOP + plot_h - (frac * f64::from(plot_h)).round() as u32
    };
    let grid = (0..=4)
        .map(|k| {
            let v = max * k / 4;
            Tick {
                at: y_of(v),
                label: count(v),
            }
        })
        .collect();
    // At most about 12 labels along the bottom.
    let every = n.div_ceil(12);
    let xs_ticks = xs
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0 || *i == n - 1)
        .map(|(i, l)| Tick {
            at: x_of(i),
            label: l.clone(),
        })
        .collect();
    let lines = series
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let dots: Vec<(u32, u32)> = s
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| (x_of(i), y_of(*v)))
                .collect();
            Line {
                label: s.label.clone(),
                points: dots
                    .iter()
                    .map(|(x, y)| format!("{x},{y}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                dots: if n <= 31 { dots } else { Vec::new() },
                stroke: PALETTE[k % PALETTE.len()],
                dash: DASHES[k % DASHES.len()],
            }
        })
        .collect();
    let totals: Vec<String> = series
        .iter()
        .map(|s| format!("{} {}", s.label, count(s.values.iter().sum())))
        .collect();
    LineChart {
        id: id.to_owned(),
        title: title.to_owned(),
        desc: if series.is_empty() {
            "No data.".to_owned()
        } else {
            format!(
                "{} lines over {} points from {} to {}; totals: {}.",
                series.len(),
                xs.len(),
                xs.first().map_or("", |s| s.as_str()),
                xs.last().map_or("", |s| s.as_str()),
                totals.join("; ")
            )
        },
        width: LINE_W,
        height: LINE_H,
        left: LINE_LEFT,
        right: LINE_W - LINE_RIGHT,
        bottom: LINE_TOP + plot_h,
        grid,
        xs: xs_ticks,
        lines,
    }
}

/// A chart's numbers as a table: a header row, then rows with a header cell each.
pub(crate) struct DataTable {
    caption: String,
    head: Vec<String>,
    rows: Vec<(String, Vec<String>)>,
}

/// Series over points as a table: one row per point, one column per series.
fn series_table(caption: &str, first: &str, xs: &[String], series: &[Series]) -> DataTable {
    DataTable {
        caption: caption.to_owned(),
        head: std::iter::once(first.to_owned())
            .chain(series.iter().map(|s| s.label.clone()))
            .collect(),
        rows: xs
            .iter()
            .enumerate()
            .map(|(i, x)| {
                (
                    x.clone(),
                    series
                        .iter()
                        .map(|s| count(s.values.get(i).copied().unwrap_or(0)))
                        .collect(),
                )
            })
            .collect(),
    }
}

fn bar_table(caption: &str, head: [&str; 2], rows: &[(String, u64, &'static str)]) -> DataTable {
    DataTable {
        caption: caption.to_owned(),
        head: head.iter().map(|h| (*h).to_owned()).collect(),
        rows: rows
            .iter()
            .map(|(l, v, _)| (l.clone(), vec![count(*v)]))
            .collect(),
    }
}

/// A chart and its table.
pub(crate) struct Figure {
    bars: Option<BarChart>,
    lines: Option<LineChart>,
    table: DataTable,
}

fn bars_figure(
    id: &str,
    title: &str,
    head: [&str; 2],
    rows: Vec<(String, u64, &'static str)>,
) -> Figure {
    Figure {
        bars: Some(bar_chart(id, title, &rows)),
        lines: None,
        table: bar_table(title, head, &rows),
    }
}

fn lines_figure(id: &str, title: &str, first: &str, xs: &[String], series: &[Series]) -> Figure {
    Figure {
        bars: None,
        lines: Some(line_chart(id, title, xs, series)),
        table: series_table(title, first, xs, series),
    }
}

fn week_labels(t: &Trends) -> Vec<String> {
    t.weeks.iter().map(|w| short_day(*w)).collect()
}

/// The trend figures of `t` (those the dashboard and the trends page share).
fn trend_figures(t: &Trends, prefix: &str) -> Vec<Figure> {
    let xs = week_labels(t);
    let mut out = vec![
        lines_figure(
            &format!("{prefix}-cat"),
            "Blocked by category, week by week",
            "Week of",
            &xs,
            &t.blocked_by_category,
        ),
        lines_figure(
            &format!("{prefix}-group"),
            "Blocked by group, week by week",
            "Week of",
            &xs,
            &t.blocked_by_group,
        ),
    ];
    if t.group.is_none() && t.category.is_none() {
        out.push(lines_figure(
            &format!("{prefix}-breach"),
            "Breaches by severity, week by week",
            "Week of",
            &xs,
            &t.breaches,
        ));
    }
    out
}

#[derive(Template)]
#[template(path = "reports/dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    d: Dashboard,
    period: String,
    generated: String,
    breaches: String,
    blocked: String,
    events: String,
    severity: Figure,
    groups: Vec<(String, String, Figure)>,
    trends: Vec<Figure>,
}

async fn dashboard(State(ctx): St, me: Signed) -> Response {
    let account = me.account.clone();
    let d = match ctx.run(move |a| a.dashboard(&account, a.clock_now())).await {
        Ok(d) => d,
        Err(e) => return html::error(&me, e),
    };
    let severity = bars_figure(
        "sev",
        "Breaches this week by severity",
        ["Severity", "Breaches"],
        d.breaches
            .iter()
            .map(|b| {
                (
                    severity_word(b.severity).to_owned(),
                    b.count,
                    severity_fill(b.severity),
                )
            })
            .collect(),
    );
    let groups = d
        .blocked_by_group
        .iter()
        .enumerate()
        .map(|(i, g)| {
            (
                g.group.clone(),
                count(g.blocked),
                bars_figure(
                    &format!("grp{i}"),
                    &format!("Most blocked categories this week: {}", g.group),
                    ["Category", "Blocked"],
                    g.categories
                        .iter()
                        .map(|c| (c.name.clone(), c.count, PALETTE[0]))
                        .collect(),
                ),
            )
        })
        .collect();
    let trends = trend_figures(&d.trends, "dash");
    html::page(&DashboardPage {
        chrome: Chrome::new(&me, "Reports"),
        period: format!(
            "{} to {}",
            day(d.week_start),
            day(d.week_end.yesterday().unwrap_or(d.week_end))
        ),
        generated: when(d.generated),
        breaches: count(d.breaches.iter().map(|b| b.count).sum()),
        blocked: count(d.blocked),
        events: count(d.events),
        severity,
        groups,
        trends,
        d,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WeekQuery {
    /// Any day of the week (its Monday is used); the week just ended if not given.
    week: Option<String>,
}

#[derive(Template)]
#[template(path = "reports/weekly.html")]
struct WeeklyPage {
    chrome: Chrome,
    r: WeeklyReport,
    period: String,
    generated: String,
    week_value: String,
    previous: String,
    next: Option<String>,
    severity: Figure,
    rows: Vec<WeeklyRows>,
}

/// A section of the weekly report as rows (the e-mail has the same sections).
struct WeeklyRows {
    title: String,
    head: Vec<String>,
    rows: Vec<Vec<String>>,
    empty: String,
}

async fn weekly(State(ctx): St, me: Signed, Query(q): Query<WeekQuery>) -> Response {
    let chosen = match q.week.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        None => None,
        Some(w) => match w.parse::<Date>() {
            Ok(d) => Some(monday_of(d)),
            Err(_) => {
                return html::error(
                    &me,
                    hedgerow_admin::AdminError::Invalid(format!(
                        "{w:?} is not a date: choose the week by one of its days (YYYY-MM-DD)"
                    )),
                );
            }
        },
    };
    let account = me.account.clone();
    let got = ctx
        .run(move |a| {
            let this_week = monday_of(a.clock_now().to_zoned(html::zone()).date());
            // The week just ended, unless one was chosen.
            let start = chosen.unwrap_or_else(|| {
                this_week
                    .checked_sub(jiff::Span::new().days(7))
                    .unwrap_or(this_week)
            });
            Ok((a.weekly_report(&account, start)?, this_week))
        })
        .await;
    let (r, this_week) = match got {
        Ok(x) => x,
        Err(e) => return html::error(&me, e),
    };
    let severity = bars_figure(
        "wsev",
        "Breaches first seen this week by severity",
        ["Severity", "Breaches"],
        r.breaches
            .iter()
            .map(|b| {
                (
                    severity_word(b.severity).to_owned(),
                    b.total,
                    severity_fill(b.severity),
                )
            })
            .collect(),
    );
    let rows = weekly_rows(&r);
    let next = r.week_end;
    html::page(&WeeklyPage {
        chrome: Chrome::new(&me, "Weekly monitoring report"),
        period: format!(
            "{} to {}",
            day(r.week_start),
            day(r.week_end.yesterday().unwrap_or(r.week_end))
        ),
        generated: when(r.generated),
        week_value: r.week_start.to_string(),
        previous: r
            .week_start
            .checked_sub(jiff::Span::new().days(7))
            .unwrap_or(r.week_start)
            .to_string(),
        next: (next <= this_week).then(|| next.to_string()),
        severity,
        rows,
        r,
    })
}

fn weekly_rows(r: &WeeklyReport) -> Vec<WeeklyRows> {
    let sec = |title: &str, head: &[&str], rows: Vec<Vec<String>>, empty: &str| WeeklyRows {
        title: title.to_owned(),
        head: head.iter().map(|h| (*h).to_owned()).collect(),
        rows,
        empty: empty.to_owned(),
    };
    let mut out = vec![
        sec(
            "Breaches by severity and where their cases stand",
            &["Severity", "Total", "New", "Open", "Closed"],
            r.breaches
                .iter()
                .map(|b| {
                    vec![
                        severity_word(b.severity).to_owned(),
                        count(b.total),
                        count(b.new),
                        count(b.open),
                        count(b.closed),
                    ]
                })
                .collect(),
            "No breaches.",
        ),
        sec(
            "Activity",
            &["What happened", "Events"],
            r.events
                .iter()
                .map(|e| vec![e.disposition.as_str().to_owned(), count(e.count)])
                .chain([
                    vec!["total".to_owned(), count(r.total)],
                    vec!["lost (not recorded)".to_owned(), count(r.dropped)],
                ])
                .collect(),
            "",
        ),
        sec(
            "Blocked by category",
            &["Category", "Blocked"],
            r.blocked_by_category
                .iter()
                .map(|c| vec![c.name.clone(), count(c.count)])
                .collect(),
            "Nothing was blocked.",
        ),
        sec(
            "Blocked by group",
            &["Group", "Blocked", "Most blocked categories"],
            r.blocked_by_group
                .iter()
                .map(|g| {
                    let cats: Vec<String> = g
                        .categories
                        .iter()
                        .take(5)
                        .map(|c| format!("{} {}", c.name, count(c.count)))
                        .collect();
                    vec![g.group.clone(), count(g.blocked), cats.join(", ")]
                })
                .collect(),
            "Nothing was blocked.",
        ),
    ];
    if let Some(sites) = &r.top_sites {
        out.push(sec(
            &format!(
                "Most-blocked sites ({} different sites blocked)",
                count(r.sites_blocked)
            ),
            &["Site", "Blocked"],
            sites
                .iter()
                .map(|s| vec![s.site.clone(), count(s.count)])
                .collect(),
            "No site was blocked.",
        ));
    } else {
        out.push(sec(
            &format!(
                "Blocked sites: {} different sites (names are not shown to governors)",
                count(r.sites_blocked)
            ),
            &[],
            Vec::new(),
            "",
        ));
    }
    let v = &r.reviews;
    out.push(sec(
        "Review requests from the block page",
        &["", "Requests"],
        vec![
            vec!["asked this week".into(), count(v.asked)],
            vec!["of those, still pending".into(), count(v.pending)],
            vec!["of those, unblocked".into(), count(v.approved)],
            vec!["of those, declined".into(), count(v.declined)],
            vec![
                "of those, turned into a change request".into(),
                count(v.change_requested),
            ],
            vec!["decided this week".into(), count(v.decided)],
            vec!["waiting now".into(), count(v.waiting_now)],
        ],
        "",
    ));
    out.push(sec(
        "Changes to filtering",
        &["#", "Status", "Direction", "Risk", "Proposed by", "Reason"],
        r.changes
            .iter()
            .map(|c| {
                vec![
                    format!("#{}", c.id),
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
    let check = |c: &hedgerow_admin::checks::CheckSummary| {
        vec![
            when(c.recorded),
            if c.passed { "passed" } else { "FAILED" }.to_owned(),
            count(c.probes),
            count(c.failures),
            c.by.clone(),
        ]
    };
    let mut checks: Vec<Vec<String>> = r.checks.iter().map(check).collect();
    if checks.is_empty()
        && let Some(c) = &r.last_check
    {
        let mut row = check(c);
        row[0] = format!("{} (the latest)", row[0]);
        checks.push(row);
    }
    out.push(sec(
        "Effectiveness checks",
        &["When", "Result", "Probes", "Failures", "By"],
        checks,
        "No effectiveness check has been recorded.",
    ));
    out
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TrendForm {
    weeks: Option<String>,
    group: Option<String>,
    category: Option<String>,
}

#[derive(Template)]
#[template(path = "reports/trends.html")]
struct TrendsPage {
    chrome: Chrome,
    weeks: u32,
    group: String,
    category: String,
    choices: &'static [u32],
    period: String,
    figures: Vec<Figure>,
}

async fn trends(State(ctx): St, me: Signed, Query(f): Query<TrendForm>) -> Response {
    let weeks = match f.weeks.as_deref().map(str::trim).filter(|w| !w.is_empty()) {
        None => None,
        Some(w) => match w.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                return html::error(
                    &me,
                    hedgerow_admin::AdminError::Invalid(format!("weeks {w:?}: a whole number")),
                );
            }
        },
    };
    let q = TrendQuery {
        weeks,
        group: f.group.clone().filter(|g| !g.trim().is_empty()),
        category: f.category.clone().filter(|c| !c.trim().is_empty()),
    };
    let account = me.account.clone();
    let t = match ctx
        .run(move |a| a.trends(&account, a.clock_now(), &q))
        .await
    {
        Ok(t) => t,
        Err(e) => return html::error(&me, e),
    };
    let mut figures = trend_figures(&t, "tr");
    let xs = week_labels(&t);
    figures.push(lines_figure(
        "tr-events",
        "Every event by what happened, week by week",
        "Week of",
        &xs,
        &t.events,
    ));
    let days: Vec<String> = t.days.iter().map(|d| short_day(d.day)).collect();
    figures.push(lines_figure(
        "tr-days",
        "Blocked events day by day",
        "Day",
        &days,
        &[Series {
            key: "blocked".into(),
            label: "blocked".into(),
            values: t.days.iter().map(|d| d.blocked).collect(),
        }],
    ));
    if !t.blocked_by_hour.is_empty() {
        figures.push(bars_figure(
            "tr-hours",
            "Blocked events by hour of the day (school time)",
            ["Hour", "Blocked"],
            t.blocked_by_hour
                .iter()
                .enumerate()
                .map(|(h, n)| (format!("{h:02}:00"), *n, PALETTE[0]))
                .collect(),
        ));
    }
    let period = match (t.weeks.first(), t.weeks.last()) {
        (Some(a), Some(b)) => format!(
            "the {} weeks from Monday {} to Sunday {}",
            t.weeks.len(),
            day(*a),
            day(b.checked_add(jiff::Span::new().days(6)).unwrap_or(*b))
        ),
        _ => String::new(),
    };
    html::page(&TrendsPage {
        chrome: Chrome::new(&me, "Trends"),
        weeks: t.weeks.len() as u32,
        group: t.group.clone().unwrap_or_default(),
        category: t.category.unwrap_or_default(),
        choices: &[4, 8, 12, 26, 52],
        period,
        figures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_axes_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(60_000_000), "60,000,000");
        assert_eq!(nice_max(0), 4);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(3_900), 4_000);
        assert_eq!(nice_max(4_100), 5_000);
    }

    #[test]
    fn a_line_chart_puts_each_value_inside_its_plot() {
        let s = Series {
            key: "a".into(),
            label: "a".into(),
            values: vec![0, 5, 10],
        };
        let xs = vec!["1".into(), "2".into(), "3".into()];
        let c = line_chart("t", "T", &xs, std::slice::from_ref(&s));
        let (first, last) = (c.lines[0].dots[0], c.lines[0].dots[2]);
        assert_eq!(first, (LINE_LEFT, c.bottom));
        assert_eq!(last.0, c.right);
        assert!(last.1 >= LINE_TOP && last.1 < c.bottom);
        assert!(c.desc.contains("a 15"));
    }
}
