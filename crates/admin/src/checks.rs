//! The check log (DfE: when, who, what was tested, the actions): each effectiveness check the
//! `hedgerow check` client ran and sent here, attributed to the account that sent it, with the
//! actions recorded against it (free text, and links to change requests); out-of-cycle review
//! triggers (a new device type, a network change, a new generative-AI tool, a safeguarding
//! incident), each answered by a later check; and the governors' report data. Each step goes
//! to the audit log.
//!
//! A check's result is the check crate's JSON, kept as it came: this crate reads only its
//! summary fields (`passed`, `probes`, `failures`), so the check crate and the admin crate
//! depend on neither each other nor a shared type.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use hedgerow_store::AdminTree;
use serde::{Deserialize, Serialize};

use crate::api::authed;
use crate::service::{dec, enc};
use crate::{Account, Admin, AdminError, Permission};

/// One check as the log holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRecord {
    pub id: u64,
    /// The account that ran it and sent it.
    pub by: String,
    pub recorded: jiff::Timestamp,
    /// Run by the schedule (termly), not by a person at the console.
    #[serde(default)]
    pub scheduled: bool,
    /// The review trigger it answered.
    #[serde(default)]
    pub trigger: Option<u64>,
    /// The check's result, as `hedgerow check` made it.
    pub result: serde_json::Value,
    #[serde(default)]
    pub actions: Vec<CheckAction>,
}

/// An action taken after a check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckAction {
    pub time: jiff::Timestamp,
    pub by: String,
    pub text: String,
    /// The change request it raised or refers to.
    #[serde(default)]
    pub change: Option<u64>,
}

/// A check in the history list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSummary {
    pub id: u64,
    pub by: String,
    pub recorded: jiff::Timestamp,
    pub scheduled: bool,
    pub trigger: Option<u64>,
    pub passed: bool,
    pub probes: u64,
    pub failures: u64,
    pub seconds: f64,
    pub actions: usize,
}

/// A check as `hedgerow check` sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct NewCheck {
    pub result: serde_json::Value,
    #[serde(default)]
    pub scheduled: bool,
    #[serde(default)]
    pub trigger: Option<u64>,
}

/// What prompts a review out of cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TriggerKind {
    NewDeviceType,
    NetworkChange,
    NewAiTool,
    SafeguardingIncident,
    MajorUpdate,
    Other,
}

/// An out-of-cycle review trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReviewTrigger {
    pub id: u64,
    pub time: jiff::Timestamp,
    pub by: String,
    pub kind: TriggerKind,
    pub note: String,
    /// The check that answered it; none yet: a check is due.
    #[serde(default)]
    pub check: Option<u64>,
}

/// A change to filtering as the governors' report shows it (no diff, no file contents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeLine {
    pub id: u64,
    pub created: jiff::Timestamp,
    pub proposer: String,
    pub reason: String,
    pub status: String,
    pub direction: String,
    pub risk: String,
    pub justification: String,
    pub mitigations: String,
    pub groups: Vec<String>,
    pub applied_at: Option<jiff::Timestamp>,
}

/// Breaches in one category at one severity: a count, nobody named.
#[derive(Debug, Clone, Serialize)]
pub struct BreachCount {
    pub category: String,
    pub severity: String,
    pub count: u64,
}

/// What the governors' report shows.
#[derive(Debug, Clone, Serialize)]
pub struct ReportData {
    pub generated: jiff::Timestamp,
    /// The previous check's time: the period the report covers starts there.
    pub since: Option<jiff::Timestamp>,
    /// Oldest first, each without its per-probe list.
    pub checks: Vec<CheckRecord>,
    pub changes: Vec<ChangeLine>,
    pub breaches: Vec<BreachCount>,
    pub roles: BTreeMap<String, Vec<String>>,
    pub triggers: Vec<ReviewTrigger>,
}

impl ChangeLine {
    /// A change request as the reports show it.
    pub(crate) fn of(c: &crate::ChangeRequest) -> Self {
        ChangeLine {
            id: c.id,
            created: c.created,
            proposer: c.proposer.clone(),
            reason: c.reason.clone(),
            status: word(&c.status),
            direction: word(&c.direction),
            risk: word(&c.risk.risk),
            justification: c.risk.justification.clone(),
            mitigations: c.risk.mitigations.clone(),
            groups: c.risk.groups.clone(),
            applied_at: c.applied_at,
        }
    }
}

fn word<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

impl CheckRecord {
    pub(crate) fn summary(&self) -> CheckSummary {
        let r = &self.result;
        CheckSummary {
            id: self.id,
            by: self.by.clone(),
            recorded: self.recorded,
            scheduled: self.scheduled,
            trigger: self.trigger,
            passed: r["passed"].as_bool().unwrap_or(false),
            probes: r["probes"].as_u64().unwrap_or(0),
            failures: r["failures"].as_array().map_or(0, |a| a.len() as u64),
            seconds: r["seconds"].as_f64().unwrap_or(0.0),
            actions: self.actions.len(),
        }
    }
}

impl Admin {
    pub(crate) fn all_checks(&self) -> Result<Vec<CheckRecord>, AdminError> {
        self.store()
            .admin_list(AdminTree::Checks)?
            .iter()
            .map(|(_, v)| dec(v))
            .collect()
    }

    fn get_check(&self, id: u64) -> Result<CheckRecord, AdminError> {
        self.store()
            .admin_get(AdminTree::Checks, &id.to_be_bytes())?
            .map(|v| dec(&v))
            .transpose()?
            .ok_or_else(|| AdminError::NotFound(format!("no check #{id}")))
    }

    fn all_triggers(&self) -> Result<Vec<ReviewTrigger>, AdminError> {
        self.store()
            .admin_list(AdminTree::Triggers)?
            .iter()
            .map(|(_, v)| dec(v))
            .collect()
    }

    /// Records a check run by `actor`. Answers the trigger it names.
    pub fn record_check(&self, actor: &Account, new: NewCheck) -> Result<CheckRecord, AdminError> {
        actor.authorize(Permission::Propose)?;
        let r = &new.result;
        if r["passed"].as_bool().is_none()
            || r["probes"].as_u64().is_none()
            || !r["failures"].is_array()
            || !r["groups"].is_array()
        {
            return Err(AdminError::Invalid(
                "a check result needs passed, probes, groups and failures (send what `hedgerow check run` makes)".into(),
            ));
        }
        let _w = self.lock();
        let mut trigger = match new.trigger {
            Some(t) => Some(
                self.store()
                    .admin_get(AdminTree::Triggers, &t.to_be_bytes())?
                    .map(|v| dec::<ReviewTrigger>(&v))
                    .transpose()?
                    .ok_or_else(|| AdminError::NotFound(format!("no review trigger #{t}")))?,
            ),
            None => None,
        };
        let id = self.store().admin_next_seq(AdminTree::Checks)?;
        let rec = CheckRecord {
            id,
            by: actor.name.clone(),
            recorded: self.now(),
            scheduled: new.scheduled,
            trigger: new.trigger,
            result: new.result,
            actions: Vec::new(),
        };
        self.store()
            .admin_put(AdminTree::Checks, &id.to_be_bytes(), &enc(&rec)?)?;
        if let Some(t) = trigger.as_mut() {
            t.check = Some(id);
            self.store()
                .admin_put(AdminTree::Triggers, &t.id.to_be_bytes(), &enc(t)?)?;
        }
        let s = rec.summary();
        self.audit(
            &actor.name,
            "check-recorded",
            serde_json::json!({ "check": id, "passed": s.passed, "probes": s.probes,
                "failures": s.failures, "scheduled": s.scheduled, "trigger": s.trigger })
            .to_string(),
        )?;
        Ok(rec)
    }

    /// The check log, oldest first.
    pub fn checks(&self, actor: &Account) -> Result<Vec<CheckSummary>, AdminError> {
        actor.authorize(Permission::Read)?;
        Ok(self
            .all_checks()?
            .iter()
            .map(CheckRecord::summary)
            .collect())
    }

    pub fn check(&self, actor: &Account, id: u64) -> Result<CheckRecord, AdminError> {
        actor.authorize(Permission::Read)?;
        self.get_check(id)
    }

    /// Records an action against a check: what was done, and the change request if any.
    pub fn add_check_action(
        &self,
        actor: &Account,
        id: u64,
        text: &str,
        change: Option<u64>,
    ) -> Result<CheckRecord, AdminError> {
        actor.authorize(Permission::Propose)?;
        if text.trim().is_empty() {
            return Err(AdminError::Invalid("say what the action is".into()));
        }
        if let Some(c) = change {
            self.change(actor, c)?;
        }
        let _w = self.lock();
        let mut rec = self.get_check(id)?;
        rec.actions.push(CheckAction {
            time: self.now(),
            by: actor.name.clone(),
            text: text.trim().to_owned(),
            change,
        });
        self.store()
            .admin_put(AdminTree::Checks, &id.to_be_bytes(), &enc(&rec)?)?;
        self.audit(
            &actor.name,
            "check-action",
            serde_json::json!({ "check": id, "text": text.trim(), "change": change }).to_string(),
        )?;
        Ok(rec)
    }

    /// Records an out-of-cycle review trigger; a check is due until one names it.
    pub fn record_trigger(
        &self,
        actor: &Account,
        kind: TriggerKind,
        note: &str,
    ) -> Result<ReviewTrigger, AdminError> {
        actor.authorize(Permission::Propose)?;
        let _w = self.lock();
        let id = self.store().admin_next_seq(AdminTree::Triggers)?;
        let t = ReviewTrigger {
            id,
            time: self.now(),
            by: actor.name.clone(),
            kind,
            note: note.trim().to_owned(),
            check: None,
        };
        self.store()
            .admin_put(AdminTree::Triggers, &id.to_be_bytes(), &enc(&t)?)?;
        self.audit(
            &actor.name,
            "review-trigger",
            serde_json::json!({ "trigger": id, "kind": kind, "note": t.note }).to_string(),
        )?;
        Ok(t)
    }

    pub fn triggers(&self, actor: &Account) -> Result<Vec<ReviewTrigger>, AdminError> {
        actor.authorize(Permission::Read)?;
        self.all_triggers()
    }

    /// The governors' report data: no pupil data (breaches are counts by category and
    /// severity), no configuration text.
    pub fn check_report(&self, actor: &Account) -> Result<ReportData, AdminError> {
        actor.authorize(Permission::Read)?;
        let now = self.now();
        let mut checks = self.all_checks()?;
        for c in &mut checks {
            if let Some(o) = c.result.as_object_mut() {
                o.remove("results");
            }
        }
        let since = checks.iter().rev().nth(1).map(|c| c.recorded);
        let after = |t: jiff::Timestamp| since.is_none_or(|s| t >= s);
        let changes = self
            .changes(actor)?
            .into_iter()
            .filter(|c| after(c.created) || c.applied_at.is_some_and(after))
            .map(|c| ChangeLine::of(&c))
            .collect();
        let from = since.unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
        // Up to and including now.
        let to = now
            .checked_add(jiff::SignedDuration::from_secs(1))
            .unwrap_or(now);
        for b in self.store().breaches_between(from, to)? {
            let category = b
                .category
                .as_ref()
                .map(|c| c.as_str().to_owned())
                .unwrap_or_else(|| word(&b.tier));
            *counts.entry((category, word(&b.severity))).or_default() += 1;
        }
        let breaches = counts
            .into_iter()
            .map(|((category, severity), count)| BreachCount {
                category,
                severity,
                count,
            })
            .collect();
        let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in self.all_accounts()?.iter().filter(|a| !a.disabled) {
            for r in &a.roles {
                roles
                    .entry(r.as_str().to_owned())
                    .or_default()
                    .push(a.name.clone());
            }
        }
        let triggers = self
            .all_triggers()?
            .into_iter()
            .filter(|t| after(t.time))
            .collect();
        Ok(ReportData {
            generated: now,
            since,
            checks,
            changes,
            breaches,
            roles,
            triggers,
        })
    }
}

type St = crate::api::St;

/// The check log's routes, merged into [`crate::api::router`].
pub(crate) fn routes() -> Router<Arc<crate::api::Ctx>> {
    Router::new()
        .route("/api/v1/checks", get(list).post(record))
        .route("/api/v1/checks/report", get(report))
        .route("/api/v1/checks/{id}", get(show))
        .route("/api/v1/checks/{id}/actions", post(action))
        .route("/api/v1/triggers", get(triggers).post(trigger))
}

async fn list(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.checks(who)).await
}

async fn record(State(a): St, h: HeaderMap, Json(c): Json<NewCheck>) -> Response {
    authed(a, &h, move |a, who| a.record_check(who, c)).await
}

async fn show(State(a): St, h: HeaderMap, UrlPath(id): UrlPath<u64>) -> Response {
    authed(a, &h, move |a, who| a.check(who, id)).await
}

#[derive(Deserialize)]
struct NewAction {
    text: String,
    #[serde(default)]
    change: Option<u64>,
}

async fn action(
    State(a): St,
    h: HeaderMap,
    UrlPath(id): UrlPath<u64>,
    Json(n): Json<NewAction>,
) -> Response {
    authed(a, &h, move |a, who| {
        a.add_check_action(who, id, &n.text, n.change)
    })
    .await
}

async fn report(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.check_report(who)).await
}

async fn triggers(State(a): St, h: HeaderMap) -> Response {
    authed(a, &h, |a, who| a.triggers(who)).await
}

#[derive(Deserialize)]
struct NewTrigger {
    kind: TriggerKind,
    #[serde(default)]
    note: String,
}

async fn trigger(State(a): St, h: HeaderMap, Json(t): Json<NewTrigger>) -> Response {
    authed(a, &h, move |a, who| a.record_trigger(who, t.kind, &t.note)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use super::*;
    use crate::Role;

    fn admin(dir: &std::path::Path) -> Admin {
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

    fn result(passed: bool) -> serde_json::Value {
        serde_json::json!({ "passed": passed, "probes": 10, "seconds": 1.5, "groups": [],
            "failures": if passed { vec![] } else { vec![serde_json::json!({"probe": "x"})] },
            "results": [{ "probe": "x" }] })
    }

    #[test]
    fn the_check_log_records_who_what_and_actions() {
        let dir = tempfile::tempdir().unwrap();
        let a = admin(dir.path());
        let boss = account(&a, None, "boss", Role::Approver);
        let tech = account(&a, Some(&boss), "tech", Role::Technician);
        let gov = account(&a, Some(&boss), "gov", Role::Governor);

        // a result that is not a check's is refused; a governor may not record one
        let bad = NewCheck {
            result: serde_json::json!({ "hello": 1 }),
            scheduled: false,
            trigger: None,
        };
        assert!(matches!(
            a.record_check(&tech, bad),
            Err(AdminError::Invalid(_))
        ));
        let good = |trigger| NewCheck {
            result: result(false),
            scheduled: false,
            trigger,
        };
        assert!(matches!(
            a.record_check(&gov, good(None)),
            Err(AdminError::Forbidden(_))
        ));
        // a trigger that does not exist is refused
        assert!(matches!(
            a.record_check(&tech, good(Some(9))),
            Err(AdminError::NotFound(_))
        ));

        let t = a
            .record_trigger(&tech, TriggerKind::SafeguardingIncident, "incident 12")
            .unwrap();
        assert_eq!(a.triggers(&gov).unwrap()[0].check, None);
        let rec = a.record_check(&tech, good(Some(t.id))).unwrap();
        assert_eq!((rec.id, rec.by.as_str()), (1, "tech"));
        assert_eq!(a.triggers(&gov).unwrap()[0].check, Some(1));
        let rec2 = a
            .record_check(
                &tech,
                NewCheck {
                    result: result(true),
                    scheduled: true,
                    trigger: None,
                },
            )
            .unwrap();
        assert_eq!(rec2.id, 2);

        let list = a.checks(&gov).unwrap();
        assert_eq!(list.len(), 2);
        assert!(!list[0].passed && list[0].failures == 1 && list[0].probes == 10);
        assert!(list[1].passed && list[1].scheduled);

        // actions: free text, an existing change request only, not by a governor
        assert!(a.add_check_action(&gov, 1, "noted", None).is_err());
        assert!(matches!(
            a.add_check_action(&tech, 1, "raised", Some(77)),
            Err(AdminError::NotFound(_))
        ));
        assert!(matches!(
            a.add_check_action(&tech, 1, "  ", None),
            Err(AdminError::Invalid(_))
        ));
        a.add_check_action(&tech, 1, "list re-enabled", None)
            .unwrap();
        assert_eq!(a.check(&gov, 1).unwrap().actions[0].text, "list re-enabled");
        assert!(matches!(a.check(&gov, 3), Err(AdminError::NotFound(_))));

        // the report data: checks without their per-probe lists, the roles named
        let r = a.check_report(&gov).unwrap();
        assert_eq!(r.checks.len(), 2);
        assert!(r.checks.iter().all(|c| c.result.get("results").is_none()));
        assert_eq!(r.since, Some(rec.recorded));
        assert_eq!(r.roles["technician"], vec!["tech".to_owned()]);
        assert_eq!(r.roles["governor"], vec!["gov".to_owned()]);
        assert_eq!(r.triggers.len(), 1);

        // every step is in the audit log
        let audit = a.audit_log(&boss).unwrap();
        let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
        for want in ["review-trigger", "check-recorded", "check-action"] {
            assert!(actions.contains(&want), "{actions:?}");
        }
    }
}
