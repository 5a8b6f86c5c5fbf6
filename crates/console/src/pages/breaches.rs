//! The DSL's breaches: the inbox by severity and time with its counts; one breach with every
//! trigger, the device's browsing ten minutes either side, its notes and the workflow forms
//! (open, assign, note, outcome with what it records, link a change request, close; a closed
//! breach takes notes only); and the evidence pack for one breach, as printable HTML or as a
//! PDF printed by headless Chromium, asked for with the password again (it is an export).
//!
//! Every page is one of the admin crate's casework operations (`hedgerow_admin::cases`),
//! which authorise it (the DSL and deputies only) and write it to the audit log.

use std::path::PathBuf;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hedgerow_admin::AdminError;
use hedgerow_admin::cases::{
    Browsing, CaseStatus, CaseStep, CaseView, Evidence, InboxFilter, OutcomeChoice, OutcomeInput,
};
use hedgerow_model::Severity;
use serde::Deserialize;

use crate::html::{self, Chrome, when};
use crate::session::{Ctx, Signed, SignedForm, St, reauthenticate};

pub(crate) fn routes() -> Router<Arc<Ctx>> {
    Router::new()
        .route("/breaches", get(inbox))
        .route("/breaches/{id}", get(show))
        .route("/breaches/{id}/steps", post(step))
        .route("/breaches/{id}/evidence", post(evidence))
}

pub(crate) fn severity_word(s: Severity) -> (&'static str, &'static str) {
    match s {
        Severity::Critical => ("Critical", "sev-critical"),
        Severity::High => ("High", "sev-high"),
        Severity::Medium => ("Medium", "sev-medium"),
        Severity::Low => ("Low", "sev-low"),
    }
}

fn status_word(s: CaseStatus) -> (&'static str, &'static str) {
    match s {
        CaseStatus::New => ("New", "st-new"),
        CaseStatus::Open => ("Open", "st-proposed"),
        CaseStatus::Closed => ("Closed", "st-closed"),
    }
}

const SEVERITIES: [Severity; 4] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
];

fn severity_id(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

fn category_name(c: &Option<hedgerow_model::Category>) -> String {
    c.as_ref()
        .map(|c| c.display_name().to_owned())
        .unwrap_or_default()
}

/// A breach as a row of the inbox.
struct Row {
    id: u64,
    severity: &'static str,
    sev_class: &'static str,
    first: String,
    last: String,
    who: String,
    user: String,
    site: String,
    category: String,
    triggers: u32,
    count: u64,
    status: &'static str,
    status_class: &'static str,
    assigned: String,
}

/// A count in the inbox header, linking to the cases it counts.
struct Count {
    label: &'static str,
    class: &'static str,
    n: u64,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "breaches/inbox.html")]
struct InboxPage {
    chrome: Chrome,
    rows: Vec<Row>,
    statuses: Vec<Count>,
    severities: Vec<Count>,
    status: String,
    severity: String,
    matching: u64,
    first: usize,
    last: usize,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
struct InboxAsk {
    #[serde(default)]
    status: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    offset: usize,
}

fn href(status: &str, severity: &str, offset: usize) -> String {
    let mut q = Vec::new();
    if !status.is_empty() {
        q.push(format!("status={status}"));
    }
    if !severity.is_empty() {
        q.push(format!("severity={severity}"));
    }
    if offset > 0 {
        q.push(format!("offset={offset}"));
    }
    if q.is_empty() {
        "/breaches".into()
    } else {
        format!("/breaches?{}", q.join("&"))
    }
}

const PAGE: usize = 50;

async fn inbox(State(ctx): St, me: Signed, Query(q): Query<InboxAsk>) -> Response {
    // Unknown words read as "all", so a hand-edited address shows everything, not an error.
    let status: Option<CaseStatus> = q.status.parse().ok();
    let severity = SEVERITIES
        .into_iter()
        .find(|s| severity_id(*s) == q.severity);
    let filter = InboxFilter {
        status,
        severity,
        offset: q.offset,
        limit: Some(PAGE),
    };
    let account = me.account.clone();
    let inbox = match ctx.run(move |a| a.inbox(&account, &filter)).await {
        Ok(i) => i,
        Err(e) => return html::error(&me, e),
    };
    let status_id = status.map_or("", CaseStatus::as_str).to_owned();
    let severity_id_now = severity.map_or("", severity_id).to_owned();
    let mut statuses = vec![Count {
        label: "All",
        class: "",
        n: inbox.by_status.values().sum(),
        href: href("", &severity_id_now, 0),
        current: status.is_none(),
    }];
    for s in CaseStatus::ALL {
        let (label, class) = status_word(s);
        statuses.push(Count {
            label,
            class,
            n: inbox.by_status.get(&s).copied().unwrap_or(0),
            href: href(s.as_str(), &severity_id_now, 0),
            current: status == Some(s),
        });
    }
    let severities = SEVERITIES
        .into_iter()
        .map(|s| {
            let (label, class) = severity_word(s);
            Count {
                label,
                class,
                n: inbox.by_severity.get(&s).copied().unwrap_or(0),
                href: href(&status_id, severity_id(s), 0),
                current: severity == Some(s),
            }
        })
        .collect();
    let rows: Vec<Row> = inbox
        .items
        .iter()
        .map(|i| {
            let b = &i.breach;
            let (severity, sev_class) = severity_word(b.severity);
            let (status, status_class) = status_word(i.case.status);
            Row {
                id: b.id,
                severity,
                sev_class,
                first: when(b.first),
                last: when(b.last),
                who: b.device.clone().unwrap_or_else(|| b.client.to_string()),
                user: b.user.clone().unwrap_or_default(),
                site: b.site.clone(),
                category: category_name(&b.category),
                triggers: i.triggers,
                count: b.count,
                status,
                status_class,
                assigned: i.case.assigned.clone().unwrap_or_default(),
            }
        })
        .collect();
    let shown = rows.len();
    let page = InboxPage {
        chrome: Chrome::new(&me, "Breaches"),
        statuses,
        severities,
        matching: inbox.matching,
        first: if shown == 0 { 0 } else { q.offset + 1 },
        last: q.offset + shown,
        prev: (q.offset > 0)
            .then(|| href(&status_id, &severity_id_now, q.offset.saturating_sub(PAGE))),
        next: ((q.offset + shown) < inbox.matching as usize)
            .then(|| href(&status_id, &severity_id_now, q.offset + PAGE)),
        status: status_id,
        severity: severity_id_now,
        rows,
    };
    html::page(&page)
}

/// A trigger as the breach page lists it.
struct TriggerRow {
    time: String,
    last: String,
    count: u64,
    who: String,
    user: String,
    target: String,
    search: String,
    rule: String,
    severity: &'static str,
    sev_class: &'static str,
    category: String,
    reference: String,
}

/// An access event of the device's browsing.
struct EventRow {
    time: String,
    verdict: String,
    target: String,
    search: String,
    category: String,
    trigger: bool,
}

struct NoteRow {
    time: String,
    author: String,
    text: String,
    after_close: bool,
}

/// What the breach page and the evidence pack show.
struct Shown {
    id: u64,
    severity: &'static str,
    sev_class: &'static str,
    rule: String,
    first: String,
    last: String,
    count: u64,
    device: String,
    client: String,
    user: String,
    group: String,
    site: String,
    category: String,
    status: &'static str,
    status_class: &'static str,
    closed: bool,
    new: bool,
    assigned: String,
    opened: String,
    closed_at: String,
    outcome: Option<OutcomeShown>,
    change: Option<u64>,
    triggers: Vec<TriggerRow>,
    notes: Vec<NoteRow>,
    browsing_from: String,
    browsing_to: String,
    browsing_device: String,
    /// The device's timeline in the logs.
    timeline: String,
    events: Vec<EventRow>,
    truncated: bool,
}

struct OutcomeShown {
    label: String,
    details: Vec<(&'static str, String)>,
    recorded: String,
}

fn stamp(s: &Option<hedgerow_admin::cases::Stamp>) -> String {
    s.as_ref()
        .map(|s| format!("{} by {}", when(s.time), s.by))
        .unwrap_or_default()
}

fn shown(v: &CaseView, browsing: &Browsing) -> Shown {
    let b = &v.breach;
    let c = &v.case;
    let (severity, sev_class) = severity_word(b.severity);
    let (status, status_class) = status_word(c.status);
    let targets: std::collections::HashSet<&str> =
        b.triggers.iter().map(|t| t.target.as_str()).collect();
    Shown {
        id: b.id,
        severity,
        sev_class,
        rule: b.rule.clone(),
        first: when(b.first),
        last: when(b.last),
        count: b.count,
        device: b.device.clone().unwrap_or_default(),
        client: b.client.to_string(),
        user: b.user.clone().unwrap_or_default(),
        group: b.group.clone().unwrap_or_default(),
        site: b.site.clone(),
        category: category_name(&b.category),
        status,
        status_class,
        closed: c.status == CaseStatus::Closed,
        new: c.status == CaseStatus::New,
        assigned: c.assigned.clone().unwrap_or_default(),
        opened: stamp(&c.opened),
        closed_at: stamp(&c.closed),
        outcome: c.outcome.as_ref().map(|o| {
            let mut details = Vec::new();
            if let Some(d) = o.date {
                details.push(("Date", d.to_string()));
            }
            if let Some(x) = &o.by {
                details.push(("By", x.clone()));
            }
            if let Some(x) = &o.reference {
                details.push(("Reference", x.clone()));
            }
            if let Some(x) = &o.reason {
                details.push(("Reason", x.clone()));
            }
            OutcomeShown {
                label: o.label.clone(),
                details,
                recorded: format!("{} by {}", when(o.recorded.time), o.recorded.by),
            }
        }),
        change: c.change,
        triggers: b
            .triggers
            .iter()
            .map(|t| {
                let (severity, sev_class) = severity_word(t.severity);
                TriggerRow {
                    time: when(t.time),
                    last: when(t.last),
                    count: t.count,
                    who: t.device.clone().unwrap_or_else(|| t.client.to_string()),
                    user: t.user.clone().unwrap_or_default(),
                    target: t.target.clone(),
                    search: t.search.clone().unwrap_or_default(),
                    rule: t.rule.clone(),
                    severity,
                    sev_class,
                    category: category_name(&t.category),
                    reference: t.reference.map(|r| format!("{r:016x}")).unwrap_or_default(),
                }
            })
            .collect(),
        notes: v
            .notes
            .iter()
            .map(|n| NoteRow {
                time: when(n.time),
                author: n.author.clone(),
                text: n.text.clone(),
                after_close: n.after_close,
            })
            .collect(),
        browsing_from: when(browsing.from),
        browsing_to: when(browsing.to),
        browsing_device: browsing
            .device
            .clone()
            .unwrap_or_else(|| browsing.client.to_string()),
        timeline: match &browsing.device {
            Some(d) => format!("/logs/device?name={}", html::url_encode(d)),
            None => format!("/logs/device?ip={}", browsing.client),
        },
        events: browsing
            .events
            .iter()
            .map(|e| EventRow {
                time: e
                    .event
                    .time
                    .to_zoned(html::zone())
                    .strftime("%H:%M:%S")
                    .to_string(),
                verdict: serde_json::to_value(e.verdict)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                target: e.event.target.clone(),
                search: e.event.search.as_deref().unwrap_or("").to_owned(),
                category: category_name(&e.event.category),
                trigger: targets.contains(e.event.target.as_str()),
            })
            .collect(),
        truncated: browsing.truncated,
    }
}

#[derive(Template)]
#[template(path = "breaches/show.html")]
struct ShowPage {
    chrome: Chrome,
    b: Shown,
    assignees: Vec<String>,
    outcomes: Vec<OutcomeChoice>,
    outcome_hint: String,
    error: Option<String>,
}

/// What the outcome fields must hold, as a hint: "Parents/carers informed: date, by; …".
fn outcome_hint(outcomes: &[OutcomeChoice]) -> String {
    outcomes
        .iter()
        .filter(|o| !o.record.is_empty())
        .map(|o| format!("{}: {}", o.label, o.record.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

async fn page(ctx: &Arc<Ctx>, me: &Signed, id: u64, error: Option<String>) -> Response {
    let account = me.account.clone();
    let got = ctx
        .run(move |a| {
            let v = a.case(&account, id)?;
            let browsing = a.case_browsing(&account, id)?;
            let assignees = a.case_assignees(&account)?;
            let outcomes = a.case_outcomes(&account)?;
            Ok((v, browsing, assignees, outcomes))
        })
        .await;
    let (v, browsing, assignees, outcomes) = match got {
        Ok(x) => x,
        Err(e) => return html::error(me, e),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    html::page_status(
        status,
        &ShowPage {
            chrome: Chrome::new(me, format!("Breach #{id}")),
            b: shown(&v, &browsing),
            assignees,
            outcome_hint: outcome_hint(&outcomes),
            outcomes,
            error,
        },
    )
}

async fn show(State(ctx): St, me: Signed, Path(id): Path<u64>) -> Response {
    page(&ctx, &me, id, None).await
}

/// The workflow forms' fields: `step` names which form (or which button) it was.
#[derive(Deserialize, Default)]
struct StepForm {
    #[serde(default)]
    step: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    by: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    change: String,
}

impl StepForm {
    fn outcome(&self) -> Option<OutcomeInput> {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        some(&self.outcome).map(|id| OutcomeInput {
            id,
            date: some(&self.date),
            by: some(&self.by),
            reference: some(&self.reference),
            reason: some(&self.reason),
        })
    }

    fn step(&self) -> Result<CaseStep, AdminError> {
        Ok(match self.step.as_str() {
            "open" => CaseStep::Open,
            "assign" => CaseStep::Assign {
                to: self.to.trim().to_owned(),
            },
            "note" => CaseStep::Note {
                text: self.text.clone(),
            },
            "outcome" => CaseStep::Outcome {
                outcome: self
                    .outcome()
                    .ok_or_else(|| AdminError::Invalid("choose the outcome to record".into()))?,
            },
            "link-change" => CaseStep::LinkChange {
                change: self
                    .change
                    .trim()
                    .trim_start_matches('#')
                    .parse()
                    .map_err(|_| {
                        AdminError::Invalid(
                            "give the change request's number, such as 12 (from the Changes page)"
                                .into(),
                        )
                    })?,
            },
            "close" => CaseStep::Close {
                outcome: self.outcome(),
            },
            _ => return Err(AdminError::Invalid("choose what to do".into())),
        })
    }
}

async fn step(State(ctx): St, Path(id): Path<u64>, f: SignedForm<StepForm>) -> Response {
    let SignedForm { me, form } = f;
    let step = match form.step() {
        Ok(s) => s,
        Err(e) => return page(&ctx, &me, id, Some(e.to_string())).await,
    };
    let account = me.account.clone();
    match ctx.run(move |a| a.case_step(&account, id, step)).await {
        Ok(_) => Redirect::to(&format!("/breaches/{id}")).into_response(),
        // What the DSL can put right is shown on the breach page itself, above its forms.
        Err(e @ (AdminError::Invalid(_) | AdminError::Conflict(_))) => {
            page(&ctx, &me, id, Some(e.to_string())).await
        }
        Err(e) => html::error(&me, e),
    }
}

#[derive(Deserialize, Default)]
struct EvidenceForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    format: String,
}

#[derive(Template)]
#[template(path = "breaches/evidence.html")]
struct EvidencePage<'a> {
    b: Shown,
    generated: String,
    by: &'a str,
    stylesheet: &'a str,
}

fn evidence_html(ev: &Evidence, stylesheet: &str) -> Result<String, askama::Error> {
    EvidencePage {
        b: shown(&ev.case, &ev.browsing),
        generated: when(ev.generated),
        by: &ev.by,
        stylesheet,
    }
    .render()
}

async fn evidence(State(ctx): St, Path(id): Path<u64>, f: SignedForm<EvidenceForm>) -> Response {
    let SignedForm { me, form } = f;
    // An export: a session left open is not enough.
    if let Err(e) = reauthenticate(&ctx, &me, &form.password, &form.code).await {
        return html::error(&me, e);
    }
    let account = me.account.clone();
    let ev = match ctx.run(move |a| a.evidence(&account, id)).await {
        Ok(ev) => ev,
        Err(e) => return html::error(&me, e),
    };
    if form.format != "pdf" {
        return match evidence_html(&ev, "/static/console.css") {
            Ok(body) => axum::response::Html(body).into_response(),
            Err(e) => html::error(&me, AdminError::Internal(format!("evidence pack: {e}"))),
        };
    }
    let printed = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let body = evidence_html(&ev, "console.css").map_err(|e| e.to_string())?;
        print_pdf(&body)
    })
    .await;
    match printed {
        Ok(Ok(pdf)) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"breach-{id}-evidence.pdf\""),
                ),
            ],
            pdf,
        )
            .into_response(),
        Ok(Err(e)) => html::error(
            &me,
            AdminError::Invalid(format!(
                "the PDF could not be made ({e}); make the HTML evidence pack and print it from the browser instead"
            )),
        ),
        Err(e) => html::error(&me, AdminError::Internal(e.to_string())),
    }
}

/// Where headless Chromium is: `HEDGEROW_CHROMIUM`, else `chromium` (or a usual other name)
/// on the PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HEDGEROW_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| {
        ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
    })
}

/// Prints an evidence pack to PDF with headless Chromium: the page and its stylesheet in a
/// private temporary folder (the pack holds pupil-level data; the folder goes when done), a
/// fresh profile, no network, at most a minute.
fn print_pdf(body: &str) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let browser = chromium().ok_or("no Chromium found (install chromium)")?;
    let dir = tempfile::Builder::new()
        .prefix("hedgerow-evidence-")
        .tempdir()
        .map_err(|e| format!("a temporary folder: {e}"))?;
    let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700));
    let page = dir.path().join("evidence.html");
    let pdf = dir.path().join("evidence.pdf");
    std::fs::write(&page, body).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.path().join("console.css"),
        include_str!("../../static/console.css"),
    )
    .map_err(|e| e.to_string())?;
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
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", browser.display()))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("Chromium did not finish in a minute".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let bytes = std::fs::read(&pdf).unwrap_or_default();
    if !status.success() || !bytes.starts_with(b"%PDF") {
        return Err(format!("Chromium exited with {status} without a PDF"));
    }
    Ok(bytes)
}
