//! The DSL's casework (the schools' online safety policies, 7.3.2, 10 and 11): each breach's
//! case (New → Open → Closed, assigned to a DSL or deputy, notes, an outcome from
//! `[console] outcomes` with what it must record, the change request it led to), the breach
//! inbox with its counts, the device's browsing either side of a breach, the evidence pack,
//! staff reports of unsuitable sites, and turning review requests from the block page into
//! change requests.
//!
//! Cases, their notes and staff reports are admin records in the store's main database
//! ([`AdminTree::Cases`], [`AdminTree::CaseNotes`], [`AdminTree::SiteReports`]). A case exists
//! for every breach: one with no record is New. A closed case is not edited again: what comes
//! later is a note, with its author and time.
//!
//! Every step is authorised ([`Permission::PupilData`] for casework, [`Permission::ReportSite`]
//! to report a site) and in the audit log. The audit log is read by governors, so its entries
//! say which breach and what kind of step, never a pupil's name, a site or a note's text.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query as UrlQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use hedgerow_config::FALSE_POSITIVE;
use hedgerow_model::{AccessEvent, Disposition, PROTECTED_RULE, Severity, Tier, UrlKey};
use hedgerow_policy::{PolicySnapshot, Target};
use hedgerow_store::{AdminTree, EventFilter, StoreError};
use serde::{Deserialize, Serialize};

pub use hedgerow_store::{Breach, ReviewRequest, ReviewStatus, Trigger};

use crate::api::authed;
use crate::service::{dec, enc};
use crate::{Account, Admin, AdminError, ChangeRequest, Edit, Permission, Proposal, Risk};

/// How far either side of a breach the device's browsing is shown.
pub const BROWSING_SPAN: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// The most access events [`Admin::case_browsing`] returns (the earliest of them).
pub const BROWSING_LIMIT: usize = 5_000;

/// The longest note, reason or reference text accepted.
const MAX_TEXT: usize = 20_000;

/// Where a breach's case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseStatus {
    /// Nobody has opened or taken it yet.
    New,
    /// Someone is working on it.
    Open,
    /// Closed with an outcome: only notes may be added.
    Closed,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 3] = [CaseStatus::New, CaseStatus::Open, CaseStatus::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::New => "new",
            CaseStatus::Open => "open",
            CaseStatus::Closed => "closed",
        }
    }
}

impl std::str::FromStr for CaseStatus {
    type Err = AdminError;
    fn from_str(s: &str) -> Result<Self, AdminError> {
        CaseStatus::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                AdminError::Invalid(format!("case status {s:?}: expected new, open or closed"))
            })
    }
}

/// Who did something, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub by: String,
    pub time: jiff::Timestamp,
}

/// A breach's case as stored (its notes are records of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub breach: u64,
    pub status: CaseStatus,
    /// The DSL or deputy working on it.
    #[serde(default)]
    pub assigned: Option<String>,
    #[serde(default)]
    pub opened: Option<Stamp>,
    #[serde(default)]
    pub closed: Option<Stamp>,
    #[serde(default)]
    pub outcome: Option<CaseOutcome>,
    /// The change request the breach led to.
    #[serde(default)]
    pub change: Option<u64>,
    /// How many notes it has.
    #[serde(default)]
    pub notes: u32,
    /// The last step's time.
    #[serde(default)]
    pub updated: Option<jiff::Timestamp>,
}

impl Case {
    /// The case of a breach nobody has touched.
    fn new(breach: u64) -> Self {
        Self {
            breach,
            status: CaseStatus::New,
            assigned: None,
            opened: None,
            closed: None,
            outcome: None,
            change: None,
            notes: 0,
            updated: None,
        }
    }
}

/// The outcome a case records, with what that outcome requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseOutcome {
    /// The outcome's id in `[console] outcomes`.
    pub id: String,
    /// Its label when it was recorded.
    pub label: String,
    /// When it happened (parents informed, the referral made).
    #[serde(default)]
    pub date: Option<jiff::civil::Date>,
    /// Who did it.
    #[serde(default)]
    pub by: Option<String>,
    /// The other agency's reference.
    #[serde(default)]
    pub reference: Option<String>,
    /// Why (a false positive's reason).
    #[serde(default)]
    pub reason: Option<String>,
    pub recorded: Stamp,
}

/// An outcome as the DSL gives it (from a form: empty fields are absent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutcomeInput {
    pub id: String,
    /// `YYYY-MM-DD`.
    #[serde(default)]
    pub date: Option<String>,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An outcome a case may be closed with, as offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeChoice {
    pub id: String,
    pub label: String,
    /// What must be recorded with it: `date`, `by`, `reference`, `reason`.
    pub record: Vec<&'static str>,
}

/// A note on a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseNote {
    /// 0, 1, 2… in the order written.
    pub n: u32,
    pub time: jiff::Timestamp,
    pub author: String,
    pub text: String,
    /// Written after the case was closed.
    #[serde(default)]
    pub after_close: bool,
}

/// One step of casework.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum CaseStep {
    /// New → Open.
    Open,
    /// Give the case to an account holding dsl or deputy-dsl (opens a new case).
    Assign { to: String },
    /// A note; the one step a closed case accepts.
    Note { text: String },
    /// Record the outcome (opens a new case).
    Outcome { outcome: OutcomeInput },
    /// Link the change request the breach led to.
    LinkChange { change: u64 },
    /// Close, with the outcome given here or recorded before.
    Close {
        #[serde(default)]
        outcome: Option<OutcomeInput>,
    },
}

impl CaseStep {
    fn name(&self) -> &'static str {
        match self {
            CaseStep::Open => "open",
            CaseStep::Assign { .. } => "assign",
            CaseStep::Note { .. } => "note",
            CaseStep::Outcome { .. } => "outcome",
            CaseStep::LinkChange { .. } => "link-change",
            CaseStep::Close { .. } => "close",
        }
    }
}

/// A case with its breach (every trigger) and its notes.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    pub case: Case,
    pub breach: Breach,
    pub notes: Vec<CaseNote>,
}

/// Which cases the inbox lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxFilter {
    pub status: Option<CaseStatus>,
    /// Only this severity.
    pub severity: Option<Severity>,
    /// Skip this many (newest first).
    pub offset: usize,
    /// At most this many (default 50, at most 500).
    pub limit: Option<usize>,
}

/// One line of the inbox: the breach without its triggers, how many it has, and its case.
#[derive(Debug, Clone, Serialize)]
pub struct InboxItem {
    pub breach: Breach,
    pub triggers: u32,
    pub case: Case,
}

/// The breach inbox: a page of cases, newest breach first, and the counts for its header.
#[derive(Debug, Clone, Serialize)]
pub struct Inbox {
    pub items: Vec<InboxItem>,
    /// Cases matching the filter (all pages).
    pub matching: u64,
    /// Every breach's case by status.
    pub by_status: BTreeMap<CaseStatus, u64>,
    /// The cases in the filter's status (all, without one) by severity.
    pub by_severity: BTreeMap<Severity, u64>,
    pub offset: usize,
    pub limit: usize,
}

/// An access event as shown beside a breach: what happened in one word, and the event.
#[derive(Debug, Clone, Serialize)]
pub struct BrowsingEvent {
    pub verdict: Disposition,
    #[serde(flatten)]
    pub event: AccessEvent,
}

/// The device's browsing from ten minutes before a breach's first trigger to ten minutes
/// after its last.
#[derive(Debug, Clone, Serialize)]
pub struct Browsing {
    pub breach: u64,
    pub from: jiff::Timestamp,
    pub to: jiff::Timestamp,
    /// The device name the events are of; none: the client address.
    pub device: Option<String>,
    pub client: std::net::IpAddr,
    /// Oldest first.
    pub events: Vec<BrowsingEvent>,
    /// More than [`BROWSING_LIMIT`] events: the latest are left out.
    pub truncated: bool,
}

/// What the evidence pack for one breach holds.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    pub generated: jiff::Timestamp,
    pub by: String,
    pub case: CaseView,
    pub browsing: Browsing,
    /// The outcomes, for their labels.
    pub outcomes: Vec<OutcomeChoice>,
}

/// Where a staff report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportStatus {
    /// Waiting for the DSL.
    Pending,
    /// Turned into a change request to block the site (`change`).
    ChangeRequested,
    /// Looked at; no change (the reason in `note`).
    Dismissed,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Pending => "pending",
            ReportStatus::ChangeRequested => "change-requested",
            ReportStatus::Dismissed => "dismissed",
        }
    }
}

/// Site reports one account may file in an hour.
const REPORTS_PER_HOUR: usize = 20;

/// A member of staff's report of an unsuitable site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteReport {
    pub id: u64,
    pub time: jiff::Timestamp,
    pub reporter: String,
    /// The site or URL reported; the protected rule (`[protected entry] #ref`) when the
    /// illegal tier holds it.
    pub url: String,
    /// The illegal tier holds it (and blocks it for everyone): `url` is not the address.
    pub protected: bool,
    /// Why it is unsuitable, in the reporter's words.
    pub reason: String,
    pub status: ReportStatus,
    #[serde(default)]
    pub decided: Option<Stamp>,
    /// The DSL's note: why it was dismissed, or what was done.
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub change: Option<u64>,
}

/// How a report or a review request becomes a change request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ToChange {
    /// The groups the change is for (a report: required; a review request: the requester's
    /// group when empty).
    pub groups: Vec<String>,
    /// The entry to block or allow; default: the reported or requested site's host.
    pub entry: Option<String>,
    /// The change's reason; a default names the report or request.
    pub reason: Option<String>,
    /// The risk assessment's justification; a default says what the change does.
    pub justification: Option<String>,
    /// The note the requester or reporter sees; a default names the change request.
    pub note: Option<String>,
}

fn text(field: &str, s: Option<&str>) -> Result<Option<String>, AdminError> {
    let Some(t) = s.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if t.len() > MAX_TEXT {
        return Err(AdminError::Invalid(format!(
            "{field}: at most {MAX_TEXT} bytes"
        )));
    }
    Ok(Some(t.to_owned()))
}

fn no_breach(id: u64) -> impl FnOnce(StoreError) -> AdminError {
    move |e| match e {
        StoreError::NoBreach(_) => AdminError::NotFound(format!("no breach #{id}")),
        e => AdminError::Store(e),
    }
}

/// The host an entry made from `target` names (for a block or allow entry).
fn host_of(target: &str) -> Result<String, AdminError> {
    UrlKey::parse(target)
        .map(|u| u.host().to_string())
        .map_err(|e| AdminError::Invalid(format!("{target:?} is not a site or web address: {e}")))
}

impl Admin {
    // ---- cases ----

    /// The outcomes a case may be closed with: `[console] outcomes`, or the defaults.
    pub fn case_outcomes(&self, actor: &Account) -> Result<Vec<OutcomeChoice>, AdminError> {
        actor.authorize(Permission::PupilData)?;
        self.outcome_list()
    }

    fn outcome_list(&self) -> Result<Vec<OutcomeChoice>, AdminError> {
        let outcomes = match self.load_config() {
            Ok(c) => c
                .console
                .map(|c| c.outcomes)
                .unwrap_or_else(hedgerow_config::default_outcomes),
            Err(e) => {
                tracing::warn!("reading [console] outcomes: {e}; offering the defaults");
                hedgerow_config::default_outcomes()
            }
        };
        Ok(outcomes
            .into_iter()
            .map(|o| OutcomeChoice {
                id: o.id,
                label: o.label,
                record: o.record.iter().map(|f| f.as_str()).collect(),
            })
            .collect())
    }

    /// The accounts a case may be assigned to: enabled, holding dsl or deputy-dsl.
    pub fn case_assignees(&self, actor: &Account) -> Result<Vec<String>, AdminError> {
        actor.authorize(Permission::PupilData)?;
        Ok(self
            .all_accounts()?
            .iter()
            .map(|a| a.view())
            .filter(|a| a.may(Permission::PupilData))
            .map(|a| a.name)
            .collect())
    }

    fn get_case(&self, breach: u64) -> Result<Case, AdminError> {
        Ok(self
            .store()
            .admin_get(AdminTree::Cases, &breach.to_be_bytes())?
            .map(|v| dec(&v))
            .transpose()?
            .unwrap_or_else(|| Case::new(breach)))
    }

    fn notes(&self, breach: u64) -> Result<Vec<CaseNote>, AdminError> {
        self.store()
            .admin_scan(AdminTree::CaseNotes, &breach.to_be_bytes())?
            .iter()
            .map(|(_, v)| dec(v))
            .collect()
    }

    fn view(&self, breach: Breach) -> Result<CaseView, AdminError> {
        Ok(CaseView {
            case: self.get_case(breach.id)?,
            notes: self.notes(breach.id)?,
            breach,
        })
    }

    /// One breach with every trigger, its case and its notes. Recorded as a view of the
    /// breach.
    pub fn case(&self, actor: &Account, breach: u64) -> Result<CaseView, AdminError> {
        actor.authorize(Permission::PupilData)?;
        let b = self.store().breach(breach).map_err(no_breach(breach))?;
        self.audit(
            &actor.name,
            "view-breach",
            serde_json::json!({ "breach": breach }).to_string(),
        )?;
        self.view(b)
    }

    /// Takes one step of casework on a breach's case. A closed case takes notes only; any
    /// other step is refused (and the refusal recorded).
    pub fn case_step(
        &self,
        actor: &Account,
        breach: u64,
        step: CaseStep,
    ) -> Result<CaseView, AdminError> {
        actor.authorize(Permission::PupilData)?;
        let b = self.store().breach(breach).map_err(no_breach(breach))?;
        // What each step needs, checked before anything is written.
        let outcome = match &step {
            CaseStep::Outcome { outcome }
            | CaseStep::Close {
                outcome: Some(outcome),
            } => Some(self.outcome(outcome, &actor.name)?),
            _ => None,
        };
        match &step {
            CaseStep::Assign { to } => {
                let ok = self
                    .all_accounts()?
                    .iter()
                    .map(|a| a.view())
                    .any(|a| &a.name == to && a.may(Permission::PupilData));
                if !ok {
                    return Err(AdminError::Invalid(format!(
                        "{to:?} is not an account holding dsl or deputy-dsl: a case is assigned to the DSL or a deputy"
                    )));
                }
            }
            CaseStep::LinkChange { change } => {
                self.change(actor, *change)?;
            }
            _ => {}
        }
        let note_text = match &step {
            CaseStep::Note { text: t } => Some(
                text("note", Some(t))?
                    .ok_or_else(|| AdminError::Invalid("a note needs some text".into()))?,
            ),
            _ => None,
        };
        let _w = self.lock();
        let mut case = self.get_case(breach)?;
        let now = self.now();
        let stamp = Stamp {
            by: actor.name.clone(),
            time: now,
        };
        if case.status == CaseStatus::Closed && !matches!(step, CaseStep::Note { .. }) {
            self.audit(
                &actor.name,
                "case-edit-refused",
                serde_json::json!({ "breach": breach, "step": step.name(), "reason": "closed" })
                    .to_string(),
            )?;
            return Err(AdminError::Conflict(format!(
                "the case of breach #{breach} is closed: it cannot be edited; add a note instead (notes keep their author and time)"
            )));
        }
        let open = |case: &mut Case| {
            if case.status == CaseStatus::New {
                case.status = CaseStatus::Open;
                case.opened = Some(stamp.clone());
            }
        };
        let mut detail = serde_json::json!({ "breach": breach });
        let kind = step.name();
        match step {
            CaseStep::Open => {
                if case.status != CaseStatus::New {
                    return Err(AdminError::Conflict(format!(
                        "the case of breach #{breach} is open already"
                    )));
                }
                open(&mut case);
            }
            CaseStep::Assign { to } => {
                detail["to"] = to.clone().into();
                case.assigned = Some(to);
                open(&mut case);
            }
            CaseStep::Note { .. } => {
                let n = case.notes;
                let note = CaseNote {
                    n,
                    time: now,
                    author: actor.name.clone(),
                    text: note_text.unwrap_or_default(),
                    after_close: case.status == CaseStatus::Closed,
                };
                let mut key = breach.to_be_bytes().to_vec();
                key.extend_from_slice(&n.to_be_bytes());
                self.store()
                    .admin_put(AdminTree::CaseNotes, &key, &enc(&note)?)?;
                case.notes = n + 1;
                detail["note"] = n.into();
                detail["after_close"] = note.after_close.into();
            }
            CaseStep::Outcome { .. } => {
                // Which outcome (a referral to the police, say) is casework: the audit log,
                // which governors read, says only that one was recorded.
                case.outcome = outcome;
                open(&mut case);
            }
            CaseStep::LinkChange { change } => {
                detail["change"] = change.into();
                case.change = Some(change);
            }
            CaseStep::Close { .. } => {
                if outcome.is_some() {
                    case.outcome = outcome;
                }
                if case.outcome.is_none() {
                    return Err(AdminError::Invalid(format!(
                        "closing the case of breach #{breach} needs an outcome"
                    )));
                }
                open(&mut case);
                case.status = CaseStatus::Closed;
                case.closed = Some(stamp.clone());
            }
        }
        case.updated = Some(now);
        self.store()
            .admin_put(AdminTree::Cases, &breach.to_be_bytes(), &enc(&case)?)?;
        self.audit(&actor.name, &format!("case-{kind}"), detail.to_string())?;
        Ok(CaseView {
            case,
            notes: self.notes(breach)?,
            breach: b,
        })
    }

    /// Checks an outcome against `[console] outcomes`: a known id, and every detail it must
    /// record (a false positive's reason always).
    fn outcome(&self, input: &OutcomeInput, by: &str) -> Result<CaseOutcome, AdminError> {
        let outcomes = self.outcome_list()?;
        let Some(choice) = outcomes.iter().find(|o| o.id == input.id.trim()) else {
            let ids: Vec<&str> = outcomes.iter().map(|o| o.id.as_str()).collect();
            return Err(AdminError::Invalid(format!(
                "outcome {:?} is not one of [console] outcomes: {}",
                input.id,
                ids.join(", ")
            )));
        };
        let date = match text("date", input.date.as_deref())? {
            None => None,
            Some(d) => {
                let date: jiff::civil::Date = d.parse().map_err(|_| {
                    AdminError::Invalid(format!("date {d:?}: expected a date such as 2026-11-30"))
                })?;
                let today = self.now().to_zoned(jiff::tz::TimeZone::UTC).date();
                if date > today.tomorrow().unwrap_or(today) {
                    return Err(AdminError::Invalid(format!(
                        "date {d:?} is in the future: give the date it happened"
                    )));
                }
                Some(date)
            }
        };
        let o = CaseOutcome {
            id: choice.id.clone(),
            label: choice.label.clone(),
            date,
            by: text("by", input.by.as_deref())?,
            reference: text("reference", input.reference.as_deref())?,
            reason: text("reason", input.reason.as_deref())?,
            recorded: Stamp {
                by: by.to_owned(),
                time: self.now(),
            },
        };
        if o.id == FALSE_POSITIVE && o.reason.is_none() {
            return Err(AdminError::Invalid(
                "a false positive needs a reason: say why the breach was not a concern".into(),
            ));
        }
        let mut missing = Vec::new();
        for f in &choice.record {
            let given = match *f {
                "date" => o.date.is_some(),
                "by" => o.by.is_some(),
                "reference" => o.reference.is_some(),
                _ => o.reason.is_some(),
            };
            if !given {
                missing.push(*f);
            }
        }
        if !missing.is_empty() {
            return Err(AdminError::Invalid(format!(
                "outcome {:?} ({}) must be recorded with: {}",
                o.id,
                o.label,
                missing.join(", ")
            )));
        }
        Ok(o)
    }

    /// The breach inbox: cases with their breaches (without triggers), newest breach first,
    /// filtered by status and severity, with counts by status (all cases) and by severity
    /// (the cases in the filter's status). Reads each breach record once and no triggers.
    pub fn inbox(&self, actor: &Account, filter: &InboxFilter) -> Result<Inbox, AdminError> {
        actor.authorize(Permission::PupilData)?;
        self.audit(
            &actor.name,
            "view-breaches",
            serde_json::json!({ "inbox": true, "status": filter.status.map(CaseStatus::as_str),
                "severity": filter.severity, "offset": filter.offset })
            .to_string(),
        )?;
        let limit = filter.limit.unwrap_or(50).clamp(1, 500);
        let mut cases: HashMap<u64, Case> = HashMap::new();
        for (_, v) in self.store().admin_list(AdminTree::Cases)? {
            let c: Case = dec(&v)?;
            cases.insert(c.breach, c);
        }
        let mut by_status: BTreeMap<CaseStatus, u64> =
            CaseStatus::ALL.iter().map(|s| (*s, 0)).collect();
        let mut by_severity: BTreeMap<Severity, u64> = BTreeMap::new();
        let mut items = Vec::new();
        let mut matching = 0u64;
        for head in self.store().breach_heads() {
            let (breach, triggers) = head?;
            let status = cases.get(&breach.id).map_or(CaseStatus::New, |c| c.status);
            *by_status.entry(status).or_default() += 1;
            if filter.status.is_some_and(|s| s != status) {
                continue;
            }
            *by_severity.entry(breach.severity).or_default() += 1;
            if filter.severity.is_some_and(|s| s != breach.severity) {
                continue;
            }
            matching += 1;
            if matching as usize > filter.offset && items.len() < limit {
                let case = cases
                    .remove(&breach.id)
                    .unwrap_or_else(|| Case::new(breach.id));
                items.push(InboxItem {
                    breach,
                    triggers,
                    case,
                });
            }
        }
        Ok(Inbox {
            items,
            matching,
            by_status,
            by_severity,
            offset: filter.offset,
            limit,
        })
    }

    /// The device's browsing (its name, else the client address) from ten minutes before the
    /// breach's first trigger to ten minutes after its last. Recorded as a view of the logs.
    pub fn case_browsing(&self, actor: &Account, breach: u64) -> Result<Browsing, AdminError> {
        actor.authorize(Permission::PupilData)?;
        let b = self.store().breach(breach).map_err(no_breach(breach))?;
        self.browsing(&actor.name, &b)
    }

    fn browsing(&self, by: &str, b: &Breach) -> Result<Browsing, AdminError> {
        let first = b.triggers.iter().map(|t| t.time).min().unwrap_or(b.first);
        let last = b.triggers.iter().map(|t| t.last).max().unwrap_or(b.last);
        let from = first.checked_sub(BROWSING_SPAN).unwrap_or(first);
        let to = last.checked_add(BROWSING_SPAN).unwrap_or(last);
        let filter = EventFilter {
            from: Some(from),
            to: Some(to),
            device: b.device.clone(),
            ip: b.device.is_none().then_some(b.client),
            ..EventFilter::default()
        };
        self.audit(
            by,
            "view-logs",
            serde_json::json!({ "breach": b.id,
                "filters": ["from", "to", if b.device.is_some() { "device" } else { "ip" }],
                "limit": BROWSING_LIMIT })
            .to_string(),
        )?;
        let mut events = Vec::new();
        let mut truncated = false;
        // The device filter matches a name's start: keep the device's own events only.
        let same = |e: &AccessEvent| match &b.device {
            Some(d) => e
                .device
                .as_deref()
                .is_some_and(|x| x.eq_ignore_ascii_case(d)),
            None => true,
        };
        for e in self.store().events_iter(&filter)? {
            let e = e?;
            if !same(&e) {
                continue;
            }
            if events.len() == BROWSING_LIMIT {
                truncated = true;
                break;
            }
            events.push(BrowsingEvent {
                verdict: e.disposition(),
                event: e,
            });
        }
        Ok(Browsing {
            breach: b.id,
            from,
            to,
            device: b.device.clone(),
            client: b.client,
            events,
            truncated,
        })
    }

    /// Everything the evidence pack for one breach shows: its case, every trigger, notes,
    /// and the device's browsing either side. Recorded as an export. Illegal-tier entries
    /// are as the store keeps them: withheld.
    pub fn evidence(&self, actor: &Account, breach: u64) -> Result<Evidence, AdminError> {
        actor.authorize(Permission::PupilData)?;
        let b = self.store().breach(breach).map_err(no_breach(breach))?;
        self.audit(
            &actor.name,
            "export",
            serde_json::json!({ "evidence": breach }).to_string(),
        )?;
        let browsing = self.browsing(&actor.name, &b)?;
        Ok(Evidence {
            generated: self.now(),
            by: actor.name.clone(),
            case: self.view(b)?,
            browsing,
            outcomes: self.outcome_list()?,
        })
    }

    // ---- staff reports ----

    /// The configuration's policy, to ask what the illegal tier covers.
    fn policy(&self) -> Result<PolicySnapshot, AdminError> {
        let config = self.load_config()?;
        PolicySnapshot::build(config).map_err(|e| AdminError::Validation(e.to_string()))
    }

    /// The protected rule if the illegal tier covers `target`.
    fn illegal_rule(&self, snap: &PolicySnapshot, key: &UrlKey, target: &str) -> Option<String> {
        let now = self.now();
        for g in &snap.config().groups {
            let Some(id) = snap.group_id(&g.name) else {
                continue;
            };
            let v = snap.decide(id, Target::Url(key), now);
            if v.tier == Tier::Illegal {
                return Some(v.rule.as_deref().unwrap_or(PROTECTED_RULE).to_owned());
            }
        }
        snap.illegal_tier_covers(target)
            .then(|| PROTECTED_RULE.to_owned())
    }

    /// Files a report of an unsuitable site for the DSL. A site the illegal tier holds is
    /// kept only as its protected rule.
    pub fn report_site(
        &self,
        actor: &Account,
        url: &str,
        reason: &str,
    ) -> Result<SiteReport, AdminError> {
        actor.authorize(Permission::ReportSite)?;
        let url = url.trim();
        if url.is_empty() || url.len() > 2048 {
            return Err(AdminError::Invalid(
                "give the site's address (at most 2048 characters)".into(),
            ));
        }
        let key = UrlKey::parse(url).map_err(|e| {
            AdminError::Invalid(format!(
                "that is not a site or web address (such as example.com or https://example.com/page): {e}"
            ))
        })?;
        let reason = text("reason", Some(reason))?
            .ok_or_else(|| AdminError::Invalid("say why the site is unsuitable".into()))?;
        // Each report builds the policy to check the illegal tier: a bound per person keeps
        // the lowest role from loading the appliance.
        let hour_ago = self
            .now()
            .checked_sub(jiff::SignedDuration::from_hours(1))
            .unwrap_or(self.now());
        let recent = self
            .store()
            .admin_list(AdminTree::SiteReports)?
            .iter()
            .rev()
            .filter_map(|(_, v)| dec::<SiteReport>(v).ok())
            .take_while(|r| r.time >= hour_ago)
            .filter(|r| r.reporter == actor.name)
            .count();
        if recent >= REPORTS_PER_HOUR {
            return Err(AdminError::Locked(format!(
                "{REPORTS_PER_HOUR} reports in the last hour from this account: please tell the DSL directly, or try again later"
            )));
        }
        let snap = self.policy()?;
        let protected = self.illegal_rule(&snap, &key, url);
        let _w = self.lock();
        let id = self.store().admin_next_seq(AdminTree::SiteReports)?;
        let r = SiteReport {
            id,
            time: self.now(),
            reporter: actor.name.clone(),
            url: protected.clone().unwrap_or_else(|| url.to_owned()),
            protected: protected.is_some(),
            reason,
            status: ReportStatus::Pending,
            decided: None,
            note: None,
            change: None,
        };
        self.put_report(&r)?;
        self.audit(
            &actor.name,
            "site-report",
            serde_json::json!({ "report": id, "protected": r.protected }).to_string(),
        )?;
        Ok(r)
    }

    fn put_report(&self, r: &SiteReport) -> Result<(), AdminError> {
        Ok(self
            .store()
            .admin_put(AdminTree::SiteReports, &r.id.to_be_bytes(), &enc(r)?)?)
    }

    fn get_report(&self, id: u64) -> Result<SiteReport, AdminError> {
        self.store()
            .admin_get(AdminTree::SiteReports, &id.to_be_bytes())?
            .map(|v| dec(&v))
            .transpose()?
            .ok_or_else(|| AdminError::NotFound(format!("no site report #{id}")))
    }

    /// Staff reports, newest first: all of them for the DSL and deputies, one's own for
    /// anyone else.
    pub fn site_reports(
        &self,
        actor: &Account,
        status: Option<ReportStatus>,
    ) -> Result<Vec<SiteReport>, AdminError> {
        actor.authorize(Permission::ReportSite)?;
        let all = actor.may(Permission::PupilData);
        if all {
            self.audit(
                &actor.name,
                "view-site-reports",
                serde_json::json!({ "status": status.map(|s| s.as_str()) }).to_string(),
            )?;
        }
        let mut out = Vec::new();
        for (_, v) in self
            .store()
            .admin_list(AdminTree::SiteReports)?
            .iter()
            .rev()
        {
            let r: SiteReport = dec(v)?;
            if (all || r.reporter == actor.name) && status.is_none_or(|s| s == r.status) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// One report: the DSL's, or the reporter's own.
    pub fn site_report(&self, actor: &Account, id: u64) -> Result<SiteReport, AdminError> {
        actor.authorize(Permission::ReportSite)?;
        let r = self.get_report(id)?;
        if r.reporter != actor.name {
            actor.authorize(Permission::PupilData)?;
            self.audit(
                &actor.name,
                "view-site-report",
                serde_json::json!({ "report": id }).to_string(),
            )?;
        }
        Ok(r)
    }

    fn decidable(&self, actor: &Account, id: u64) -> Result<SiteReport, AdminError> {
        actor.authorize(Permission::PupilData)?;
        let r = self.get_report(id)?;
        if r.status != ReportStatus::Pending {
            return Err(AdminError::Conflict(format!(
                "site report #{id} is {} already",
                r.status.as_str()
            )));
        }
        Ok(r)
    }

    /// Turns a report into a change request that blocks the site for `how.groups`, and links
    /// it to the report. A site the illegal tier holds is blocked for everyone already.
    pub fn report_to_change(
        &self,
        actor: &Account,
        id: u64,
        how: ToChange,
    ) -> Result<(SiteReport, ChangeRequest), AdminError> {
        let mut r = self.decidable(actor, id)?;
        if r.protected {
            return Err(AdminError::Conflict(format!(
                "site report #{id} names a site the illegal tier blocks for everyone already: no change is needed (dismiss it with a note)"
            )));
        }
        if how.groups.is_empty() {
            return Err(AdminError::Invalid(
                "choose the groups to block the site for".into(),
            ));
        }
        let entry = match text("entry", how.entry.as_deref())? {
            Some(e) => e,
            None => host_of(&r.url)?,
        };
        let p = Proposal {
            reason: text("reason", how.reason.as_deref())?
                .unwrap_or_else(|| format!("staff report #{id}: a site reported as unsuitable")),
            risk: crate::RiskAssessment {
                groups: how.groups.clone(),
                risk: Risk::Low,
                justification: text("justification", how.justification.as_deref())?
                    .unwrap_or_else(|| {
                        "blocks a site a member of staff reported as unsuitable; it only tightens the filter".into()
                    }),
                benefit: String::new(),
                mitigations: String::new(),
                expires: None,
            },
            edits: how
                .groups
                .iter()
                .map(|g| Edit::AddBlock {
                    group: g.clone(),
                    entry: entry.clone(),
                })
                .collect(),
            check: Vec::new(),
        };
        let c = self.propose(actor, p)?;
        let _w = self.lock();
        r.status = ReportStatus::ChangeRequested;
        r.change = Some(c.id);
        r.decided = Some(Stamp {
            by: actor.name.clone(),
            time: self.now(),
        });
        r.note = Some(
            text("note", how.note.as_deref())?
                .unwrap_or_else(|| format!("change request #{} was raised to block it", c.id)),
        );
        self.put_report(&r)?;
        self.audit(
            &actor.name,
            "site-report-change",
            serde_json::json!({ "report": id, "change": c.id }).to_string(),
        )?;
        Ok((r, c))
    }

    /// Dismisses a report, with the reason the reporter sees.
    pub fn dismiss_report(
        &self,
        actor: &Account,
        id: u64,
        reason: &str,
    ) -> Result<SiteReport, AdminError> {
        let reason = text("reason", Some(reason))?.ok_or_else(|| {
            AdminError::Invalid("say why the report is dismissed: the reporter sees it".into())
        })?;
        let mut r = self.decidable(actor, id)?;
        let _w = self.lock();
        r.status = ReportStatus::Dismissed;
        r.decided = Some(Stamp {
            by: actor.name.clone(),
            time: self.now(),
        });
        r.note = Some(reason);
        self.put_report(&r)?;
        self.audit(
            &actor.name,
            "site-report-dismissed",
            serde_json::json!({ "report": id }).to_string(),
        )?;
        Ok(r)
    }

    // ---- review requests ----

    /// Review requests from the block page, newest first (the review queue); recorded as a
    /// view of them.
    pub fn review_requests(
        &self,
        actor: &Account,
        status: Option<ReviewStatus>,
        limit: usize,
    ) -> Result<Vec<ReviewRequest>, AdminError> {
        self.authorize_query(actor, &crate::records::Query::Reviews { status, limit })?;
        let redact = !actor.may(Permission::PupilData);
        Ok(self
            .store()
            .reviews(status, limit)?
            .into_iter()
            .map(|r| crate::records::shown_review(r, redact))
            .collect())
    }

    /// One review request by its reference; recorded as a view of it.
    pub fn review_request(
        &self,
        actor: &Account,
        reference: u64,
    ) -> Result<ReviewRequest, AdminError> {
        self.authorize_query(actor, &crate::records::Query::Review(reference))?;
        let redact = !actor.may(Permission::PupilData);
        self.store()
            .review(reference)?
            .map(|r| crate::records::shown_review(r, redact))
            .ok_or_else(|| {
                AdminError::NotFound(format!("no review request with reference {reference:016x}"))
            })
    }

    /// Turns a review request from the block page into a change request that allows the
    /// site for the requester's group (or `how.groups`), and links it onto the request: the
    /// requester's reference page shows it. Never for the illegal tier.
    pub fn review_to_change(
        &self,
        actor: &Account,
        reference: u64,
        how: ToChange,
    ) -> Result<(ReviewRequest, ChangeRequest), AdminError> {
        actor.authorize(Permission::Reviews)?;
        let r = self.store().review(reference)?.ok_or_else(|| {
            AdminError::NotFound(format!("no review request with reference {reference:016x}"))
        })?;
        if r.tier == Tier::Illegal || r.target.starts_with(PROTECTED_RULE) {
            return Err(AdminError::IllegalTier(
                "the request is for a site the illegal tier holds: nothing may allow it".into(),
            ));
        }
        if r.status != ReviewStatus::Pending {
            return Err(AdminError::Conflict(format!(
                "review request {reference:016x} is {} already",
                r.status
            )));
        }
        let groups = if how.groups.is_empty() {
            vec![r.group.clone().ok_or_else(|| {
                AdminError::Invalid(
                    "the request has no group: choose the groups to allow the site for".into(),
                )
            })?]
        } else {
            how.groups.clone()
        };
        let entry = match text("entry", how.entry.as_deref())? {
            Some(e) => e,
            None => host_of(&r.target)?,
        };
        let p = Proposal {
            reason: text("reason", how.reason.as_deref())?.unwrap_or_else(|| {
                format!("review request {reference:016x} from the block page")
            }),
            risk: crate::RiskAssessment {
                groups: groups.clone(),
                risk: Risk::Medium,
                justification: text("justification", how.justification.as_deref())?
                    .unwrap_or_else(|| {
                        format!(
                            "asked for at the block page (review request {reference:016x}); allows one site for {}",
                            groups.join(", ")
                        )
                    }),
                benefit: String::new(),
                mitigations: String::new(),
                expires: None,
            },
            edits: groups
                .iter()
                .map(|g| Edit::AddAllow {
                    group: g.clone(),
                    entry: entry.clone(),
                })
                .collect(),
            check: Vec::new(),
        };
        let c = self.propose(actor, p)?;
        let note = text("note", how.note.as_deref())?.unwrap_or_else(|| {
            format!(
                "Change request #{} to allow this site was raised; it takes effect once approved.",
                c.id
            )
        });
        let r = self
            .store()
            .decide_review_with(
                reference,
                ReviewStatus::ChangeRequested,
                &actor.name,
                Some(&note),
                Some(c.id),
                self.now(),
            )
            .map_err(|e| AdminError::Internal(e.to_string()))?;
        Ok((r, c))
    }
}

type St = crate::api::St;

/// The casework routes, merged into [`crate::api::router`].
pub(crate) fn routes() -> Router<Arc<crate::api::Ctx>> {
    Router::new()
        .route("/api/v1/cases", get(inbox))
        .route("/api/v1/cases/outcomes", get(outcomes))
        .route("/api/v1/cases/assignees", get(assignees))
        .route("/api/v1/cases/{id}", get(case))
        .route("/api/v1/cases/{id}/steps", post(step))
        .route("/api/v1/cases/{id}/browsing", get(browsing))
        .route("/api/v1/cases/{id}/evidence", get(evidence))
        .route("/api/v1/site-reports", get(reports).post(report))
        .route("/api/v1/site-reports/{id}", get(show_report))
        .route("/api/v1/site-reports/{id}/change", post(report_change))
        .route("/api/v1/site-reports/{id}/dismiss", post(dismiss))
        .route("/api/v1/reviews/{reference}/change", post(review_change))
}

async fn inbox(State(a): St, h: HeaderMap, UrlQuery(f): UrlQuery<InboxFilter>) -> Response {
    authed(a, &h, move |a, who| a.inbox(who, &f)).await
}

async fn outcomes(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.case_outcomes(who)).await
}

async fn assignees(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.case_assignees(who)).await
}

async fn case(State(a): St, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    authed(a, &h, move |a, who| a.case(who, id)).await
}

async fn step(
    State(a): St,
    h: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    Json(s): Json<CaseStep>,
) -> Response {
    authed(a, &h, move |a, who| a.case_step(who, id, s)).await
}

async fn browsing(State(a): St, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    authed(a, &h, move |a, who| a.case_browsing(who, id)).await
}

async fn evidence(State(a): St, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    authed(a, &h, move |a, who| a.evidence(who, id)).await
}

#[derive(Deserialize)]
struct ReportsAsk {
    #[serde(default)]
    status: Option<ReportStatus>,
}

async fn reports(State(a): St, h: HeaderMap, UrlQuery(q): UrlQuery<ReportsAsk>) -> Response {
    authed(a, &h, move |a, who| a.site_reports(who, q.status)).await
}

#[derive(Deserialize)]
struct NewReport {
    url: String,
    #[serde(default)]
    reason: String,
}

async fn report(State(a): St, h: HeaderMap, Json(r): Json<NewReport>) -> Response {
    authed(a, &h, move |a, who| a.report_site(who, &r.url, &r.reason)).await
}

async fn show_report(State(a): St, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    authed(a, &h, move |a, who| a.site_report(who, id)).await
}

#[derive(Serialize)]
struct ReportAndChange {
    report: SiteReport,
    change: ChangeRequest,
}

async fn report_change(
    State(a): St,
    h: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    Json(how): Json<ToChange>,
) -> Response {
    authed(a, &h, move |a, who| {
        a.report_to_change(who, id, how)
            .map(|(report, change)| ReportAndChange { report, change })
    })
    .await
}

#[derive(Deserialize)]
struct Dismiss {
    #[serde(default)]
    reason: String,
}

async fn dismiss(
    State(a): St,
    h: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    Json(d): Json<Dismiss>,
) -> Response {
    authed(a, &h, move |a, who| a.dismiss_report(who, id, &d.reason)).await
}

#[derive(Serialize)]
struct ReviewAndChange {
    review: ReviewRequest,
    change: ChangeRequest,
}

async fn review_change(
    State(a): St,
    h: HeaderMap,
    UrlPath(r): UrlPath<String>,
    Json(how): Json<ToChange>,
) -> Response {
    let r = match crate::report::parse_reference(&r) {
        Ok(r) => r,
        Err(e) => return crate::api::error(AdminError::Invalid(e)),
    };
    authed(a, &h, move |a, who| {
        a.review_to_change(who, r, how)
            .map(|(review, change)| ReviewAndChange { review, change })
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;
    use std::time::Duration;

    use hedgerow_model::{Category, Front};

    use super::*;
    use crate::Role;

    const CONFIG: &str = r#"
[server]
state_dir = "state"

[dns]
listen = ["127.0.0.1:0"]
upstreams = [{ address = "127.0.0.1:9" }]
blockpage_ipv4 = "192.0.2.80"

[lists.iwf]
path = "iwf.txt"
format = "urls"
kind = "illegal"
category = "child-abuse"

[lists.adult]
path = "adult.txt"
format = "domains"
category = "adult"

[groups.pupils]
networks = ["10.0.0.0/8"]
block_categories = ["adult"]
safesearch = "on"
youtube = "strict"
"#;

    fn admin(dir: &std::path::Path) -> Admin {
        std::fs::write(dir.join("hedgerow.toml"), CONFIG).unwrap();
        std::fs::write(
            dir.join("iwf.txt"),
            "http://abuse-test.invalid/gallery/1.html\n",
        )
        .unwrap();
        std::fs::write(dir.join("adult.txt"), "adult-test.example\n").unwrap();
        let store = hedgerow_store::Store::open(
            &dir.join("store"),
            &hedgerow_store::StoreOptions::default(),
        )
        .unwrap();
        let at: jiff::Timestamp = "2026-11-30T10:00:00Z".parse().unwrap();
        Admin::new(
            Arc::new(store),
            &dir.join("hedgerow.toml"),
            Arc::new(|| Ok("ok".into())),
            Arc::new(hedgerow_model::FixedClock(at)),
        )
    }

    fn account(a: &Admin, by: Option<&Account>, name: &str, role: Role) -> Account {
        a.add_account(by, name, BTreeSet::from([role]), None)
            .unwrap()
    }

    fn breach(a: &Admin, device: &str, site: &str, at: &str, severity: Severity) -> u64 {
        let mut e = AccessEvent::new(
            at.parse().unwrap(),
            Front::Dns,
            [10, 0, 0, 7].into(),
            site.into(),
        );
        e.device = Some(device.into());
        e.tier = Tier::Category;
        e.category = Some(Category::new("adult").unwrap());
        a.store()
            .record_breach(&e, severity, "adult", Duration::from_secs(3600))
            .unwrap()
            .id
    }

    fn outcome(id: &str) -> OutcomeInput {
        OutcomeInput {
            id: id.into(),
            ..OutcomeInput::default()
        }
    }

    #[test]
    fn a_case_goes_new_open_closed_and_then_takes_notes_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path());
        let boss = account(&a, None, "boss", Role::Approver);
        let dsl = account(&a, Some(&boss), "dsl", Role::Dsl);
        let deputy = account(&a, Some(&boss), "deputy", Role::DeputyDsl);
        let tech = account(&a, Some(&boss), "tech", Role::Technician);
        let gov = account(&a, Some(&boss), "gov", Role::Governor);
        let id = breach(
            &a,
            "Pupil-PC-1",
            "adult-test.example",
            "2026-11-30T09:00:00Z",
            Severity::High,
        );

        // Only the DSL and deputies do casework: refused, then allowed.
        for who in [&tech, &gov, &boss] {
            assert!(matches!(a.case(who, id), Err(AdminError::Forbidden(_))));
            assert!(matches!(
                a.case_step(who, id, CaseStep::Open),
                Err(AdminError::Forbidden(_))
            ));
        }
        let v = a.case(&deputy, id).unwrap();
        assert_eq!(v.case.status, CaseStatus::New);
        assert_eq!(v.breach.triggers.len(), 1);
        assert!(matches!(a.case(&dsl, 99), Err(AdminError::NotFound(_))));

        // Assigned only to a DSL or deputy; assigning opens it.
        assert!(matches!(
            a.case_step(&dsl, id, CaseStep::Assign { to: "tech".into() }),
            Err(AdminError::Invalid(_))
        ));
        let v = a
            .case_step(
                &dsl,
                id,
                CaseStep::Assign {
                    to: "deputy".into(),
                },
            )
            .unwrap();
        assert_eq!(
            (v.case.status, v.case.assigned.as_deref()),
            (CaseStatus::Open, Some("deputy"))
        );
        assert_eq!(v.case.opened.as_ref().unwrap().by, "dsl");
        let v = a
            .case_step(
                &deputy,
                id,
                CaseStep::Note {
                    text: "spoke to the class teacher".into(),
                },
            )
            .unwrap();
        assert_eq!(v.notes.len(), 1);
        assert!(matches!(
            a.case_step(&deputy, id, CaseStep::Note { text: "  ".into() }),
            Err(AdminError::Invalid(_))
        ));

        // Closing needs an outcome, with what it records.
        assert!(matches!(
            a.case_step(&deputy, id, CaseStep::Close { outcome: None }),
            Err(AdminError::Invalid(_))
        ));
        assert!(matches!(
            a.case_step(
                &deputy,
                id,
                CaseStep::Close {
                    outcome: Some(outcome("no-such"))
                }
            ),
            Err(AdminError::Invalid(_))
        ));
        let mut parents = outcome("parents-informed");
        parents.date = Some("2026-11-30".into());
        let e = a
            .case_step(
                &deputy,
                id,
                CaseStep::Close {
                    outcome: Some(parents.clone()),
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("by"), "{e}");
        parents.date = Some("2027-01-01".into());
        parents.by = Some("Mrs Head".into());
        assert!(
            a.case_step(
                &deputy,
                id,
                CaseStep::Close {
                    outcome: Some(parents.clone())
                }
            )
            .unwrap_err()
            .to_string()
            .contains("future")
        );
        parents.date = Some("2026-11-30".into());
        let v = a
            .case_step(
                &deputy,
                id,
                CaseStep::Close {
                    outcome: Some(parents),
                },
            )
            .unwrap();
        assert_eq!(v.case.status, CaseStatus::Closed);
        let o = v.case.outcome.unwrap();
        assert_eq!(
            (o.id.as_str(), o.by.as_deref()),
            ("parents-informed", Some("Mrs Head"))
        );

        // Closed: edits refused, notes taken with author and time.
        for step in [
            CaseStep::Open,
            CaseStep::Assign { to: "dsl".into() },
            CaseStep::Outcome {
                outcome: outcome("no-further-action"),
            },
            CaseStep::Close {
                outcome: Some(outcome("no-further-action")),
            },
        ] {
            assert!(matches!(
                a.case_step(&dsl, id, step),
                Err(AdminError::Conflict(_))
            ));
        }
        let v = a
            .case_step(
                &dsl,
                id,
                CaseStep::Note {
                    text: "parents called back".into(),
                },
            )
            .unwrap();
        assert_eq!(v.notes.len(), 2);
        assert!(v.notes[1].after_close && v.notes[1].author == "dsl");
        assert_eq!(v.case.outcome.unwrap().id, "parents-informed");

        // The audit log says which breach and which step, never a note's text or the site.
        let audit = a.audit_log(&boss).unwrap();
        let steps: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
        for want in [
            "case-assign",
            "case-note",
            "case-close",
            "case-edit-refused",
            "view-breach",
        ] {
            assert!(steps.contains(&want), "{steps:?}");
        }
        for e in &audit {
            assert!(!e.detail.contains("class teacher"), "{}", e.detail);
            assert!(!e.detail.contains("adult-test"), "{}", e.detail);
            assert!(!e.detail.contains("Pupil-PC"), "{}", e.detail);
        }
    }

    #[test]
    fn a_false_positive_needs_a_reason_and_a_change_link_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path());
        let boss = account(&a, None, "boss", Role::Approver);
        let dsl = account(&a, Some(&boss), "dsl", Role::Dsl);
        let id = breach(
            &a,
            "Pupil-PC-1",
            "adult-test.example",
            "2026-11-30T09:00:00Z",
            Severity::High,
        );
        let e = a
            .case_step(
                &dsl,
                id,
                CaseStep::Close {
                    outcome: Some(outcome(FALSE_POSITIVE)),
                },
            )
            .unwrap_err();
        assert!(e.to_string().contains("reason"), "{e}");
        assert!(matches!(
            a.case_step(&dsl, id, CaseStep::LinkChange { change: 4242 }),
            Err(AdminError::NotFound(_))
        ));
        let mut fp = outcome(FALSE_POSITIVE);
        fp.reason = Some("a news article about the site".into());
        let v = a
            .case_step(&dsl, id, CaseStep::Close { outcome: Some(fp) })
            .unwrap();
        assert_eq!(v.case.status, CaseStatus::Closed);
    }

    #[test]
    fn the_inbox_filters_counts_and_pages_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path());
        let boss = account(&a, None, "boss", Role::Approver);
        let dsl = account(&a, Some(&boss), "dsl", Role::Dsl);
        let mut ids = Vec::new();
        for i in 0..30 {
            let sev = if i % 3 == 0 {
                Severity::Critical
            } else {
                Severity::Low
            };
            ids.push(breach(
                &a,
                &format!("PC-{i}"),
                "adult-test.example",
                "2026-11-30T09:00:00Z",
                sev,
            ));
        }
        a.case_step(&dsl, ids[0], CaseStep::Open).unwrap();
        a.case_step(&dsl, ids[1], CaseStep::Open).unwrap();
        let all = a.inbox(&dsl, &InboxFilter::default()).unwrap();
        assert_eq!(all.matching, 30);
        assert_eq!(all.by_status[&CaseStatus::New], 28);
        assert_eq!(all.by_status[&CaseStatus::Open], 2);
        assert_eq!(all.by_severity[&Severity::Critical], 10);
        assert_eq!(all.items[0].breach.id, ids[29], "newest first");
        assert!(all.items[0].breach.triggers.is_empty() && all.items[0].triggers == 1);
        let open = a
            .inbox(
                &dsl,
                &InboxFilter {
                    status: Some(CaseStatus::Open),
                    ..InboxFilter::default()
                },
            )
            .unwrap();
        let got: Vec<u64> = open.items.iter().map(|i| i.breach.id).collect();
        assert_eq!(got, [ids[1], ids[0]]);
        assert_eq!(open.by_severity[&Severity::Critical], 1);
        let page = a
            .inbox(
                &dsl,
                &InboxFilter {
                    severity: Some(Severity::Critical),
                    offset: 2,
                    limit: Some(3),
                    ..InboxFilter::default()
                },
            )
            .unwrap();
        assert_eq!(page.matching, 10);
        let got: Vec<u64> = page.items.iter().map(|i| i.breach.id).collect();
        assert_eq!(got, [ids[21], ids[18], ids[15]]);
        let tech = account(&a, Some(&boss), "tech", Role::Technician);
        assert!(matches!(
            a.inbox(&tech, &InboxFilter::default()),
            Err(AdminError::Forbidden(_))
        ));
    }

    #[test]
    fn staff_report_sites_and_the_dsl_turns_one_into_a_block_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path());
        let boss = account(&a, None, "boss", Role::Approver);
        let dsl = account(&a, Some(&boss), "dsl", Role::Dsl);
        let staff = account(&a, Some(&boss), "teacher", Role::Staff);
        let other = account(&a, Some(&boss), "teacher2", Role::Staff);
        assert!(matches!(
            a.report_site(&staff, "not a url at all", "x"),
            Err(AdminError::Invalid(_))
        ));
        assert!(matches!(
            a.report_site(&staff, "games.example", " "),
            Err(AdminError::Invalid(_))
        ));
        let r = a
            .report_site(
                &staff,
                "https://games.example/play",
                "pupils play it in lessons",
            )
            .unwrap();
        assert_eq!((r.status, r.protected), (ReportStatus::Pending, false));
        // An illegal-tier address is never kept in clear.
        let hidden = a
            .report_site(
                &staff,
                "http://abuse-test.invalid/gallery/1.html",
                "saw this",
            )
            .unwrap();
        assert!(
            hidden.protected && hidden.url.starts_with(PROTECTED_RULE),
            "{}",
            hidden.url
        );
        assert!(!format!("{:?}", a.site_reports(&dsl, None).unwrap()).contains("abuse-test"));

        // The reporter sees their own; another member of staff does not; the DSL sees all.
        assert_eq!(a.site_reports(&staff, None).unwrap().len(), 2);
        assert!(a.site_reports(&other, None).unwrap().is_empty());
        assert!(matches!(
            a.site_report(&other, r.id),
            Err(AdminError::Forbidden(_))
        ));
        assert_eq!(
            a.site_reports(&dsl, Some(ReportStatus::Pending))
                .unwrap()
                .len(),
            2
        );
        // Staff do not decide reports.
        assert!(matches!(
            a.dismiss_report(&staff, r.id, "no"),
            Err(AdminError::Forbidden(_))
        ));
        assert!(matches!(
            a.report_to_change(
                &dsl,
                hidden.id,
                ToChange {
                    groups: vec!["pupils".into()],
                    ..ToChange::default()
                }
            ),
            Err(AdminError::Conflict(_))
        ));
        assert!(matches!(
            a.report_to_change(&dsl, r.id, ToChange::default()),
            Err(AdminError::Invalid(_))
        ));
        let (r2, c) = a
            .report_to_change(
                &dsl,
                r.id,
                ToChange {
                    groups: vec!["pupils".into()],
                    ..ToChange::default()
                },
            )
            .unwrap();
        assert_eq!(
            (r2.status, r2.change),
            (ReportStatus::ChangeRequested, Some(c.id))
        );
        assert_eq!(
            c.edits,
            vec![Edit::AddBlock {
                group: "pupils".into(),
                entry: "games.example".into()
            }]
        );
        assert_eq!(a.site_report(&staff, r.id).unwrap().change, Some(c.id));
        assert!(matches!(
            a.dismiss_report(&dsl, r.id, "late"),
            Err(AdminError::Conflict(_))
        ));
        assert!(matches!(
            a.dismiss_report(&dsl, hidden.id, " "),
            Err(AdminError::Invalid(_))
        ));
        let d = a
            .dismiss_report(&dsl, hidden.id, "the illegal tier blocks it")
            .unwrap();
        assert_eq!(d.status, ReportStatus::Dismissed);
        let audit = a.audit_log(&boss).unwrap();
        assert!(audit.iter().all(|e| !e.detail.contains("abuse-test")));
    }

    fn review(reference: u64, target: &str, tier: Tier) -> ReviewRequest {
        ReviewRequest {
            reference,
            asked: "2026-11-30T09:00:00Z".parse().unwrap(),
            blocked: None,
            client: [10, 0, 0, 7].into(),
            device: None,
            user: None,
            group: Some("pupils".into()),
            target: target.into(),
            tier,
            category: None,
            rule: None,
            reason: "our topic this week".into(),
            name: None,
            status: ReviewStatus::Pending,
            decided: None,
            decided_by: None,
            note: None,
            change: None,
        }
    }

    #[test]
    fn a_review_request_becomes_an_allow_change_linked_on_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path());
        let boss = account(&a, None, "boss", Role::Approver);
        let dsl = account(&a, Some(&boss), "dsl", Role::Dsl);
        let gov = account(&a, Some(&boss), "gov", Role::Governor);
        a.store()
            .add_review(&review(7, "http://adult-test.example/art", Tier::Category))
            .unwrap();
        a.store()
            .add_review(&review(8, "[protected entry] #0000abcd", Tier::Illegal))
            .unwrap();
        assert!(matches!(
            a.review_to_change(&gov, 7, ToChange::default()),
            Err(AdminError::Forbidden(_))
        ));
        assert!(matches!(
            a.review_to_change(&dsl, 8, ToChange::default()),
            Err(AdminError::IllegalTier(_))
        ));
        assert!(matches!(
            a.review_to_change(&dsl, 9, ToChange::default()),
            Err(AdminError::NotFound(_))
        ));
        let (r, c) = a.review_to_change(&dsl, 7, ToChange::default()).unwrap();
        assert_eq!(
            (r.status, r.change),
            (ReviewStatus::ChangeRequested, Some(c.id))
        );
        assert!(r.note.unwrap().contains(&format!("#{}", c.id)));
        assert_eq!(
            c.edits,
            vec![Edit::AddAllow {
                group: "pupils".into(),
                entry: "adult-test.example".into()
            }]
        );
        assert!(matches!(
            a.review_to_change(&dsl, 7, ToChange::default()),
            Err(AdminError::Conflict(_))
        ));
        // Declining needs a reason; ChangeRequested only comes from a change.
        assert!(matches!(
            a.decide_review(&dsl, 8, ReviewStatus::Declined, None),
            Err(AdminError::Invalid(_))
        ));
        assert!(matches!(
            a.decide_review(&dsl, 8, ReviewStatus::ChangeRequested, Some("x")),
            Err(AdminError::Invalid(_))
        ));
        let d = a
            .decide_review(
                &dsl,
                8,
                ReviewStatus::Declined,
                Some("the illegal tier blocks it"),
            )
            .unwrap();
        assert_eq!(d.status, ReviewStatus::Declined);

        // The change links onto a breach's case too.
        let id = breach(
            &a,
            "PC-1",
            "adult-test.example",
            "2026-11-30T09:00:00Z",
            Severity::High,
        );
        let v = a
            .case_step(&dsl, id, CaseStep::LinkChange { change: c.id })
            .unwrap();
        assert_eq!(v.case.change, Some(c.id));
        assert_eq!(
            v.case.status,
            CaseStatus::New,
            "a link alone does not open the case"
        );
    }

    #[test]
    fn the_openapi_document_names_every_casework_route() {
        let doc: serde_json::Value = serde_json::from_str(include_str!("openapi.json")).unwrap();
        for (path, method) in [
            ("/api/v1/cases", "get"),
            ("/api/v1/cases/outcomes", "get"),
            ("/api/v1/cases/assignees", "get"),
            ("/api/v1/cases/{id}", "get"),
            ("/api/v1/cases/{id}/steps", "post"),
            ("/api/v1/cases/{id}/browsing", "get"),
            ("/api/v1/cases/{id}/evidence", "get"),
            ("/api/v1/site-reports", "get"),
            ("/api/v1/site-reports", "post"),
            ("/api/v1/site-reports/{id}", "get"),
            ("/api/v1/site-reports/{id}/change", "post"),
            ("/api/v1/site-reports/{id}/dismiss", "post"),
            ("/api/v1/reviews/{reference}/change", "post"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path}");
        }
    }
}
