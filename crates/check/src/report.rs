//! The governors' report: plain language, HTML, and a PDF printed from it by headless
//! Chromium. Its data come from the appliance's API (`GET /api/v1/checks/report`): the check
//! log, the change history with risk assessments, breach counts (no pupil data), the people in
//! each role and the review triggers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::CheckError;
use crate::result::{CheckResult, Rate};

/// A check as the check log holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRecord {
    pub id: u64,
    /// The account that ran it (the appliance's own name for a scheduled check).
    pub by: String,
    pub recorded: jiff::Timestamp,
    #[serde(default)]
    pub scheduled: bool,
    /// The review trigger it answered.
    #[serde(default)]
    pub trigger: Option<u64>,
    pub result: CheckResult,
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
}

/// An action recorded against a check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionRecord {
    pub time: jiff::Timestamp,
    pub by: String,
    pub text: String,
    #[serde(default)]
    pub change: Option<u64>,
}

/// An out-of-cycle review trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriggerRecord {
    pub id: u64,
    pub time: jiff::Timestamp,
    pub by: String,
    pub kind: String,
    pub note: String,
    /// The check that answered it.
    #[serde(default)]
    pub check: Option<u64>,
}

/// A change to filtering, as the report shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangeSummary {
    pub id: u64,
    pub created: jiff::Timestamp,
    pub proposer: String,
    pub reason: String,
    pub status: String,
    pub direction: String,
    pub risk: String,
    pub justification: String,
    #[serde(default)]
    pub mitigations: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub applied_at: Option<jiff::Timestamp>,
}

/// Breaches of one category at one severity: counts only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreachCount {
    pub category: String,
    pub severity: String,
    pub count: u64,
}

/// Everything the report shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportData {
    pub generated: jiff::Timestamp,
    /// The start of the period: the check before the latest, if any.
    #[serde(default)]
    pub since: Option<jiff::Timestamp>,
    /// Oldest first.
    pub checks: Vec<CheckRecord>,
    pub changes: Vec<ChangeSummary>,
    pub breaches: Vec<BreachCount>,
    /// Role → account names.
    pub roles: BTreeMap<String, Vec<String>>,
    pub triggers: Vec<TriggerRecord>,
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn day(t: jiff::Timestamp) -> String {
    t.strftime("%-d %B %Y, %H:%M UTC").to_string()
}

fn rate(r: &Rate) -> String {
    if r.tested == 0 {
        "not tested".into()
    } else {
        format!(
            "{:.0}% ({} of {})",
            r.percent_blocked(),
            r.blocked,
            r.tested
        )
    }
}

fn pass_fail(ok: (u64, u64)) -> String {
    match ok {
        (_, 0) => "not tested".into(),
        (p, t) if p == t => format!("<span class=ok>all {t} passed</span>"),
        (p, t) => format!("<span class=bad>{} of {t} failed</span>", t - p),
    }
}

const STYLE: &str = r#"
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10.5pt; color: #1a1a1a; margin: 1.5cm; }
h1 { font-size: 20pt; color: #1f4e3d; margin-bottom: 0; }
h2 { font-size: 13pt; color: #1f4e3d; border-bottom: 2px solid #1f4e3d; padding-bottom: 2px; margin-top: 1.4em; }
p.sub { color: #555; margin-top: 2px; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #e6efe9; }
.ok { color: #176b2c; font-weight: bold; }
.bad { color: #b00020; font-weight: bold; }
.verdict { font-size: 13pt; padding: 8px 12px; border-radius: 4px; }
.verdict.ok { background: #e3f4e6; } .verdict.bad { background: #fbe4e7; }
.small { font-size: 9pt; color: #444; }
"#;

/// The report as one HTML page (styles inline: it is printed and filed as it is).
pub fn html(data: &ReportData, school: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>Filtering and monitoring: annual check for governors</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        h,
        "<h1>Filtering and monitoring: report to governors</h1><p class=sub>{} &middot; prepared {} &middot; period {}</p>",
        esc(school),
        day(data.generated),
        match data.since {
            Some(s) => format!("since {}", day(s)),
            None => "since the appliance was installed".into(),
        }
    );
    let Some(latest) = data.checks.last() else {
        h.push_str("<p class=\"verdict bad\">No effectiveness check has been recorded yet. Run <code>hedgerow check run</code> before this report is presented.</p>");
        transparency(&mut h);
        h.push_str("</body></html>");
        return h;
    };
    let r = &latest.result;
    // --- summary
    h.push_str("<h2>1. Summary</h2>");
    if r.passed {
        let _ = write!(
            h,
            "<p class=\"verdict ok\">The latest check, on {}, passed: all {} tests gave the answer the school's policy expects, for every group of users, through both the school's DNS and its web proxy.</p>",
            day(latest.recorded),
            r.probes
        );
    } else {
        let _ = write!(
            h,
            "<p class=\"verdict bad\">The latest check, on {}, found {} problem(s) in {} tests. Each is listed in section 5 with the action taken.</p>",
            day(latest.recorded),
            r.failures.len(),
            r.probes
        );
    }
    let _ = write!(
        h,
        "<p>The check was run by <b>{}</b>{}{}. It took {:.1} seconds. It tests the filter from outside, as a pupil's or teacher's device would: it asks for sites in each blocked category, for sites that must stay open, for the test entries the Internet Watch Foundation and the police provide, for search engines (SafeSearch) and for ways round the filter.</p>",
        esc(&latest.by),
        if latest.scheduled {
            " (the scheduled termly check)"
        } else {
            ""
        },
        latest
            .trigger
            .map(|t| format!(", prompted by review trigger #{t}"))
            .unwrap_or_default(),
        r.seconds
    );
    // --- by group and category
    h.push_str("<h2>2. What is blocked, by group</h2><p>The share of test sites in each category that were blocked. A category the school blocks should be at 100%; a category it allows should be at 0%.</p><table><tr><th>Group</th><th>Category</th><th>School's policy</th><th>Blocked (DNS)</th><th>Blocked (web proxy)</th></tr>");
    for g in &r.groups {
        for c in &g.categories {
            let want_all = c.expected == "block";
            let good = |x: &Rate| {
                x.tested == 0
                    || (want_all && x.blocked == x.tested)
                    || (!want_all && x.blocked == 0)
            };
            let cell = |x: &Rate| {
                let class = if good(x) { "ok" } else { "bad" };
                format!("<td class={class}>{}</td>", rate(x))
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td>{}{}</tr>",
                esc(&g.group),
                esc(&c.category),
                if want_all { "blocked" } else { "allowed" },
                cell(&c.dns),
                cell(&c.proxy)
            );
        }
    }
    h.push_str("</table>");
    // --- canaries, safesearch, circumvention
    h.push_str("<h2>3. Test entries, SafeSearch and ways round the filter</h2><p>Test entries are harmless addresses that the IWF and the police put on their lists so that schools can check they are blocked (illegal-content test entries are never printed). SafeSearch makes search engines and YouTube hide explicit results. The circumvention tests try encrypted DNS, Apple's Private Relay, VPN and proxy services, hidden site names (ECH), mismatched site names and bare IP addresses.</p><table><tr><th>Group</th><th>Test entries</th><th>SafeSearch and YouTube</th><th>Ways round the filter</th></tr>");
    for g in &r.groups {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&g.group),
            pass_fail(g.canaries),
            pass_fail(g.safesearch),
            pass_fail(g.circumvention)
        );
    }
    h.push_str("</table>");
    // --- over-blocking
    h.push_str("<h2>4. Over-blocking</h2><p>Education, safeguarding and everyday sites that must stay open. Blocking them gets in the way of teaching and of pupils seeking help.</p><table><tr><th>Group</th><th>Blocked (DNS)</th><th>Blocked (web proxy)</th></tr>");
    for g in &r.groups {
        let cls = |x: &Rate| if x.blocked == 0 { "ok" } else { "bad" };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class={}>{}</td><td class={}>{}</td></tr>",
            esc(&g.group),
            cls(&g.must_allow_dns),
            rate(&g.must_allow_dns),
            cls(&g.must_allow_proxy),
            rate(&g.must_allow_proxy)
        );
    }
    h.push_str("</table>");
    // --- failures and actions
    h.push_str("<h2>5. Problems found and actions</h2>");
    if r.failures.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table><tr><th>Group</th><th>Path</th><th>Part</th><th>Test</th><th>Expected</th><th>Found</th></tr>");
        for f in r.failures.iter().take(200) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&f.group),
                f.via.as_str(),
                f.section.as_str(),
                f.category
                    .as_deref()
                    .map(|c| format!(" ({})", esc(c)))
                    .unwrap_or_default(),
                esc(&f.probe),
                esc(&f.expected),
                esc(&f.actual)
            );
        }
        h.push_str("</table>");
        if r.failures.len() > 200 {
            let _ = write!(
                h,
                "<p class=small>{} more in the check log (<code>hedgerow check show {}</code>).</p>",
                r.failures.len() - 200,
                latest.id
            );
        }
    }
    if latest.actions.is_empty() {
        h.push_str("<p>No actions recorded against this check.</p>");
    } else {
        h.push_str("<ul>");
        for a in &latest.actions {
            let _ = write!(
                h,
                "<li>{} &mdash; {}: {}{}</li>",
                day(a.time),
                esc(&a.by),
                esc(&a.text),
                a.change
                    .map(|c| format!(" (change request #{c})"))
                    .unwrap_or_default()
            );
        }
        h.push_str("</ul>");
    }
    // --- trend
    h.push_str("<h2>6. Trend</h2><table><tr><th>Check</th><th>Date</th><th>Run by</th><th>Tests</th><th>Problems</th><th>Result</th></tr>");
    for c in data.checks.iter().rev().take(12) {
        let _ = write!(
            h,
            "<tr><td>#{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class={}>{}</td></tr>",
            c.id,
            day(c.recorded),
            esc(&c.by),
            c.result.probes,
            c.result.failures.len(),
            if c.result.passed { "ok" } else { "bad" },
            if c.result.passed { "passed" } else { "failed" }
        );
    }
    h.push_str("</table>");
    if let Some(prev) = data.checks.iter().rev().nth(1) {
        let cmp = r.compare(&prev.result);
        let _ = write!(
            h,
            "<p>Against the previous check (#{}): {} new problem(s), {} fixed.</p>",
            prev.id,
            cmp.regressions.len(),
            cmp.fixed.len()
        );
    }
    // --- changes
    h.push_str("<h2>7. Changes to filtering since the last review</h2>");
    if data.changes.is_empty() {
        h.push_str("<p>No changes were made.</p>");
    } else {
        h.push_str("<table><tr><th>#</th><th>Date</th><th>Proposed by</th><th>Change and reason</th><th>Status</th><th>Risk assessment</th></tr>");
        for c in &data.changes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({}{})</td><td>{}</td><td><b>{}</b>: {}{}</td></tr>",
                c.id,
                day(c.created),
                esc(&c.proposer),
                esc(&c.reason),
                esc(&c.direction),
                if c.groups.is_empty() {
                    String::new()
                } else {
                    format!("; {}", esc(&c.groups.join(", ")))
                },
                esc(&c.status),
                esc(&c.risk),
                esc(&c.justification),
                if c.mitigations.is_empty() {
                    String::new()
                } else {
                    format!(" Mitigations: {}", esc(&c.mitigations))
                }
            );
        }
        h.push_str("</table>");
    }
    // --- breaches
    h.push_str("<h2>8. Safeguarding alerts (counts only)</h2><p>How many times the monitoring raised a concern, by category and severity. No pupil is named here; the Designated Safeguarding Lead holds the details.</p>");
    if data.breaches.is_empty() {
        h.push_str("<p>None in the period.</p>");
    } else {
        h.push_str("<table><tr><th>Category</th><th>Severity</th><th>Count</th></tr>");
        for b in &data.breaches {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&b.category),
                esc(&b.severity),
                b.count
            );
        }
        h.push_str("</table>");
    }
    // --- roles
    h.push_str("<h2>9. Who is responsible</h2><table><tr><th>Role</th><th>Held by</th></tr>");
    for (role, title) in [
        ("dsl", "Designated Safeguarding Lead"),
        ("deputy-dsl", "Deputy DSL"),
        ("approver", "Senior leader (approves changes)"),
        ("technician", "Technician (runs the filter and the checks)"),
        ("governor", "Governor (oversight)"),
    ] {
        let who = data
            .roles
            .get(role)
            .filter(|v| !v.is_empty())
            .map(|v| esc(&v.join(", ")))
            .unwrap_or_else(|| "<span class=bad>nobody named</span>".into());
        let _ = write!(h, "<tr><td>{title}</td><td>{who}</td></tr>");
    }
    h.push_str("</table>");
    // --- triggers
    h.push_str("<h2>10. Reviews out of cycle</h2><p>Besides the yearly review, the filter is checked again after a new type of device, a network change, a new generative-AI tool or a safeguarding incident.</p>");
    if data.triggers.is_empty() {
        h.push_str("<p>None recorded in the period.</p>");
    } else {
        h.push_str(
            "<table><tr><th>Date</th><th>What happened</th><th>Recorded by</th><th>Check</th></tr>",
        );
        for t in &data.triggers {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}: {}</td><td>{}</td><td>{}</td></tr>",
                day(t.time),
                esc(&t.kind.replace('-', " ")),
                esc(&t.note),
                esc(&t.by),
                t.check
                    .map(|c| format!("#{c}"))
                    .unwrap_or_else(|| "<span class=bad>not yet checked</span>".into())
            );
        }
        h.push_str("</table>");
    }
    transparency(&mut h);
    h.push_str("</body></html>");
    h
}

fn transparency(h: &mut String) {
    h.push_str(r#"<h2>11. What the filter cannot do</h2>
<ul>
<li><b>DNS filtering sees names, not pages.</b> It can block a whole site but not one page of it, and it sees nothing a device looks up some other way (its own encrypted DNS, a VPN).</li>
<li><b>Encrypted web pages (HTTPS) are seen by name only</b> unless the web proxy decrypts them for that group. Without that, the filter cannot see which page, search or image is asked for, and cannot apply page-level lists such as the IWF's URL list.</li>
<li><b>Apps that pin their certificates</b> (many phone apps) cannot be decrypted; they are allowed or blocked as whole sites.</li>
<li><b>Devices off the school network</b> (mobile data, home broadband) are not filtered or monitored by this appliance.</li>
<li><b>Lists are never complete.</b> New sites appear every day; the check samples each category and cannot prove that every site is blocked.</li>
</ul>"#);
}

/// Where headless Chromium is: `HEDGEROW_CHROMIUM`, else the first of the usual names on the
/// PATH.
pub fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HEDGEROW_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Prints `html_file` to `pdf` with headless Chromium (no sandbox, no network of its own, a
/// fresh profile each time), waiting at most two minutes.
pub fn pdf(html_file: &Path, pdf: &Path) -> Result<(), CheckError> {
    let browser = chromium().ok_or_else(|| {
        CheckError::Pdf("no Chromium found (install chromium, or set HEDGEROW_CHROMIUM)".into())
    })?;
    let profile_dir = tempfile::Builder::new()
        .prefix("hedgerow-report-")
        .tempdir()
        .map_err(|e| CheckError::Pdf(format!("a profile folder for Chromium: {e}")))?;
    let profile = profile_dir.path();
    let html_abs = std::fs::canonicalize(html_file).map_err(|e| CheckError::Io {
        path: html_file.to_owned(),
        source: e,
    })?;
    let _ = std::fs::remove_file(pdf);
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html_abs.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CheckError::Pdf(format!("starting {}: {e}", browser.display())))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CheckError::Pdf(
                    "Chromium did not finish in 2 minutes".into(),
                ));
            }
            Err(e) => return Err(CheckError::Pdf(e.to_string())),
        }
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let size = std::fs::metadata(pdf).map(|m| m.len()).unwrap_or(0);
    if !status.success() || size == 0 {
        let tail: String = err.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        return Err(CheckError::Pdf(format!(
            "Chromium exited with {status} and wrote {size} bytes: {tail}"
        )));
    }
    Ok(())
}
