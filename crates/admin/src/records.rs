//! Pupil-level records read through the appliance: access events, breaches and review
//! requests ([`Query`]), and the export of the whole store. [`Query::permission`] says who may
//! read each; [`record_view`] writes every view to the audit log (which filters were used,
//! never their values: the audit log is readable by governors, who never see pupil-level
//! data).
//!
//! An answer is JSON lines, one value a line and `{"end":N}` last (or `{"error":…}` where the
//! store failed), made as it is read: a query over millions of events holds a batch of them
//! at a time, in the appliance and in the command that prints it. The API streams it
//! ([`crate::api`]); with the appliance stopped the CLI calls [`answer`] on the store itself.

use std::path::Path;

use hedgerow_model::{AccessEvent, Disposition, Severity};
use hedgerow_store::{EventFilter, ReviewStatus, Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::{AdminError, Permission};

/// A read of pupil-level records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Query {
    /// Access events, the most recent `limit`, oldest first.
    Logs(Box<EventFilter>),
    /// Breaches, newest first, at `min` severity and above.
    Breaches { min: Option<Severity>, limit: usize },
    /// One breach with its triggers.
    Breach(u64),
    /// Review requests from the block page, newest first.
    Reviews {
        status: Option<ReviewStatus>,
        limit: usize,
    },
    /// One review request, by its reference.
    Review(u64),
}

/// How a [`Query`] is asked of the API: method, path and JSON body.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: &'static str,
    pub path: String,
    pub body: Option<serde_json::Value>,
}

fn word<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Query {
    /// Who may ask it: access events and breaches are the DSL's (and deputy's); review
    /// requests are also handled by technicians and approvers. Never governors.
    pub fn permission(&self) -> Permission {
        match self {
            Query::Logs(_) | Query::Breaches { .. } | Query::Breach(_) => Permission::PupilData,
            Query::Reviews { .. } | Query::Review(_) => Permission::Reviews,
        }
    }

    /// The API request that asks it.
    pub fn request(&self) -> Request {
        let get = |path: String| Request {
            method: "GET",
            path,
            body: None,
        };
        match self {
            Query::Logs(f) => Request {
                method: "POST",
                path: "/api/v1/logs".into(),
                body: serde_json::to_value(f).ok(),
            },
            Query::Breaches { min, limit } => get(match min {
                Some(s) => format!("/api/v1/breaches?limit={limit}&severity={}", word(s)),
                None => format!("/api/v1/breaches?limit={limit}"),
            }),
            Query::Breach(id) => get(format!("/api/v1/breaches/{id}")),
            Query::Reviews { status, limit } => get(match status {
                Some(s) => format!("/api/v1/reviews?limit={limit}&status={}", s.as_str()),
                None => format!("/api/v1/reviews?limit={limit}"),
            }),
            Query::Review(r) => get(format!("/api/v1/reviews/{r:016x}")),
        }
    }

    /// The audit log's action and detail for this view: which filters were used, not what
    /// they named (a pupil's name or search would otherwise reach every reader of the log).
    fn audit(&self) -> (&'static str, serde_json::Value) {
        match self {
            Query::Logs(f) => {
                let mut used = Vec::new();
                for (name, set) in [
                    ("from", f.from.is_some()),
                    ("to", f.to.is_some()),
                    ("device", f.device.is_some()),
                    ("ip", f.ip.is_some()),
                    ("user", f.user.is_some()),
                    ("group", f.group.is_some()),
                    ("category", f.category.is_some()),
                    ("verdict", f.verdict.is_some()),
                    ("site", f.site.is_some()),
                    ("search", f.search.is_some()),
                ] {
                    if set {
                        used.push(name);
                    }
                }
                (
                    "view-logs",
                    serde_json::json!({ "filters": used, "limit": f.limit }),
                )
            }
            Query::Breaches { min, limit } => (
                "view-breaches",
                serde_json::json!({ "severity": min.map(|s| word(&s)), "limit": limit }),
            ),
            Query::Breach(id) => ("view-breach", serde_json::json!({ "breach": id })),
            Query::Reviews { status, limit } => (
                "view-reviews",
                serde_json::json!({ "status": status.map(ReviewStatus::as_str), "limit": limit }),
            ),
            Query::Review(r) => (
                "view-review",
                serde_json::json!({ "reference": format!("{r:016x}") }),
            ),
        }
    }
}

/// Records in the audit log that `actor` viewed `q`. On disk when this returns, before any
/// record is read.
pub fn record_view(
    store: &Store,
    now: jiff::Timestamp,
    actor: &str,
    q: &Query,
) -> Result<(), AdminError> {
    let (action, detail) = q.audit();
    store.append_audit(now, actor, action, &detail.to_string())?;
    Ok(())
}

/// Records in the audit log that `actor` exported the whole store.
pub fn record_export(
    store: &Store,
    now: jiff::Timestamp,
    actor: &str,
    to: Option<&Path>,
) -> Result<(), AdminError> {
    let detail = match to {
        Some(p) => serde_json::json!({ "file": p.display().to_string() }),
        None => serde_json::json!({ "file": null }),
    };
    store.append_audit(now, actor, "export", &detail.to_string())?;
    Ok(())
}

/// An access event as `logs` sends it: its fields, and what happened in the one word that
/// the table shows and `--verdict` filters by.
#[derive(Serialize)]
struct Shown<'a> {
    verdict: Disposition,
    #[serde(flatten)]
    event: &'a AccessEvent,
}

/// The last line of an answer that went through: how many values came before it. An
/// answer without it was cut short.
#[derive(Serialize, Deserialize)]
struct End {
    end: u64,
}

/// Why an answer stopped early.
enum Stop {
    /// The store failed: the reader gets an error line.
    Store(String),
    /// The reader went away (or its pipe closed): nobody to tell.
    Gone(std::io::Error),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e.to_string())
    }
}

/// Hands JSON lines (without their newline) to a sink, counting them.
struct Lines<'a> {
    sink: &'a mut dyn FnMut(&[u8]) -> std::io::Result<()>,
    buf: Vec<u8>,
    count: u64,
}

impl Lines<'_> {
    fn value<T: Serialize>(&mut self, v: &T) -> Result<(), Stop> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, v).map_err(|e| Stop::Gone(e.into()))?;
        self.count += 1;
        (self.sink)(&self.buf).map_err(Stop::Gone)
    }
}

/// A review request as a reader without pupil-level access sees it (`redact`): what was
/// blocked and why it is wanted, not who asked (no device, address, user or name).
pub(crate) fn shown_review(
    mut r: hedgerow_store::ReviewRequest,
    redact: bool,
) -> hedgerow_store::ReviewRequest {
    if redact {
        r.client = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        r.device = None;
        r.user = None;
        r.name = None;
    }
    r
}

/// Answers `q` from the store (`redact`: review requests without who asked, for readers
/// without pupil-level access), handing each JSON line to `sink` as it is made: the values,
/// then `{"end":N}`; or `{"error":…}` where the store fails. Stops reading the store when
/// `sink` fails (the reader went away) and returns that error.
pub fn answer(
    store: &Store,
    q: Query,
    redact: bool,
    sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = Lines {
        sink,
        buf: Vec::with_capacity(1024),
        count: 0,
    };
    let result = (|| -> Result<(), Stop> {
        match q {
            Query::Logs(f) => {
                for e in store.events_iter(&f)? {
                    let e = e?;
                    out.value(&Shown {
                        verdict: e.disposition(),
                        event: &e,
                    })?;
                }
            }
            Query::Breaches { min, limit } => {
                for b in store.breaches(min, limit)? {
                    out.value(&b)?;
                }
            }
            Query::Breach(id) => out.value(&store.breach(id)?)?,
            Query::Reviews { status, limit } => {
                for r in store.reviews(status, limit)? {
                    out.value(&shown_review(r, redact))?;
                }
            }
            Query::Review(reference) => match store.review(reference)? {
                Some(r) => out.value(&shown_review(r, redact))?,
                None => {
                    return Err(Stop::Store(format!(
                        "no review request with reference {reference:016x}"
                    )));
                }
            },
        }
        Ok(())
    })();
    let end = match result {
        Ok(()) => {
            let end = End { end: out.count };
            out.value(&end)
        }
        Err(Stop::Store(e)) => out.value(&serde_json::json!({ "error": e })),
        Err(stop) => Err(stop),
    };
    match end {
        Ok(()) => Ok(()),
        Err(Stop::Gone(e)) => Err(e),
        Err(Stop::Store(e)) => Err(std::io::Error::other(e)),
    }
}

/// One line of an answer, as its reader sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A value.
    Value(&'a str),
    /// The answer is complete.
    End,
    /// The appliance could not answer; why.
    Error(String),
}

/// Reads one line of an answer.
pub fn read_line(line: &str) -> Result<Line<'_>, AdminError> {
    if line.starts_with("{\"error\":") {
        #[derive(Deserialize)]
        struct Failed {
            error: String,
        }
        let f: Failed = serde_json::from_str(line)
            .map_err(|e| AdminError::Invalid(format!("reading the answer: {e}")))?;
        return Ok(Line::Error(f.error));
    }
    if line.starts_with("{\"end\":") {
        return Ok(Line::End);
    }
    Ok(Line::Value(line))
}

/// Decides a review request as `by` (recorded in the audit log by the store).
pub fn decide_review(
    store: &Store,
    now: jiff::Timestamp,
    by: &str,
    reference: u64,
    status: ReviewStatus,
    note: Option<&str>,
) -> Result<hedgerow_store::ReviewRequest, AdminError> {
    store
        .decide_review(reference, status, by, note, now)
        .map_err(|e| match e {
            hedgerow_store::ReviewError::NotFound(r) => {
                AdminError::NotFound(format!("no review request with reference {r:016x}"))
            }
            other => AdminError::Internal(other.to_string()),
        })
}

impl crate::Admin {
    /// Access events matching `filter` (the most recent `limit`, oldest first), for a person
    /// at the console: authorised and recorded in the audit log as `hedgerow logs` is.
    pub fn events(
        &self,
        actor: &crate::Account,
        filter: EventFilter,
    ) -> Result<Vec<AccessEvent>, AdminError> {
        let q = Query::Logs(Box::new(filter.clone()));
        self.authorize_query(actor, &q)?;
        Ok(self.store().events(&filter)?)
    }

    /// Access events matching `filter` as CSV (the columns `hedgerow logs --format csv`
    /// prints, times in `tz`, formula-like cells neutralised): an export, authorised and
    /// recorded in the audit log (which filters, never their values) before anything is read.
    pub fn events_csv(
        &self,
        actor: &crate::Account,
        filter: EventFilter,
        tz: &jiff::tz::TimeZone,
    ) -> Result<Vec<u8>, AdminError> {
        let q = Query::Logs(Box::new(filter));
        actor.authorize(q.permission())?;
        let (_, detail) = q.audit();
        self.store().append_audit(
            self.now(),
            &actor.name,
            "export-logs-csv",
            &detail.to_string(),
        )?;
        let mut printer = crate::report::Printer::new(
            crate::report::Format::Csv,
            Vec::new(),
            &crate::report::EVENT_HEADER,
        )
        .map_err(|e| AdminError::Internal(e.to_string()))?;
        let mut failed = None;
        answer(self.store(), q, false, &mut |line| {
            let text = std::str::from_utf8(line).map_err(std::io::Error::other)?;
            match read_line(text) {
                Ok(Line::Value(v)) => printer.event(v, tz),
                Ok(Line::End) => Ok(()),
                Ok(Line::Error(e)) => {
                    failed = Some(e);
                    Ok(())
                }
                Err(e) => Err(std::io::Error::other(e.to_string())),
            }
        })
        .map_err(|e| AdminError::Internal(e.to_string()))?;
        if let Some(e) = failed {
            return Err(AdminError::Internal(e));
        }
        match printer {
            crate::report::Printer::Csv(w) => w
                .into_inner()
                .map_err(|e| AdminError::Internal(e.to_string())),
            _ => Err(AdminError::Internal("not CSV".into())),
        }
    }
}
