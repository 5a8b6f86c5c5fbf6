//! `[console]`: the safeguarding web console, served by the appliance on its own HTTPS
//! listener: where it listens, the names its certificate carries, how long an idle session
//! lasts, the outcomes a DSL may record when closing a breach, and when the weekly monitoring
//! report is e-mailed.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::duration::parse_duration;

/// `[console]`: the web console. Absent, no console is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    pub listen: SocketAddr,
    /// Host names the certificate names besides the listen address.
    pub names: Vec<String>,
    /// A session unused this long is signed out (at most 30 minutes; default 30 minutes).
    pub idle_timeout: Duration,
    /// What a breach may be closed with, in the order offered. `false-positive` is always
    /// among them.
    pub outcomes: Vec<Outcome>,
    /// When the weekly monitoring report is e-mailed to the DSL on Mondays, local time
    /// (hour, minute); `None` (`weekly_report = "off"`) sends none. It is always viewable.
    pub weekly_report: Option<(u8, u8)>,
}

/// One outcome a breach can be closed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// A stable id (lowercase letters, digits and `-`).
    pub id: String,
    /// What the DSL reads.
    pub label: String,
    /// What must be recorded with it.
    pub record: Vec<OutcomeField>,
}

/// A detail an outcome must be recorded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeField {
    /// The date it happened (parents informed, referral made).
    Date,
    /// Who did it (who informed the parents).
    By,
    /// The other agency's reference (police, CEOP, MASH…).
    Reference,
    /// Why (required for a false positive).
    Reason,
}

impl OutcomeField {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeField::Date => "date",
            OutcomeField::By => "by",
            OutcomeField::Reference => "reference",
            OutcomeField::Reason => "reason",
        }
    }
}

/// The outcome id that marks a breach as a false positive; always offered, with a reason.
pub const FALSE_POSITIVE: &str = "false-positive";

/// The longest idle timeout allowed.
pub const MAX_IDLE: Duration = Duration::from_secs(30 * 60);

/// The outcomes offered when `[console] outcomes` is not set: those the DfE guidance and the
/// schools' own policies name.
pub fn default_outcomes() -> Vec<Outcome> {
    use OutcomeField::*;
    let o = |id: &str, label: &str, record: &[OutcomeField]| Outcome {
        id: id.into(),
        label: label.into(),
        record: record.to_vec(),
    };
    vec![
        o("no-further-action", "No further action", &[]),
        o("spoke-with-pupil", "Spoke with the pupil", &[Date, By]),
        o("parents-informed", "Parents/carers informed", &[Date, By]),
        o(
            "referred-police",
            "Referred to the police",
            &[Date, Reference],
        ),
        o("referred-ceop", "Referred to CEOP", &[Date, Reference]),
        o("referred-iwf", "Reported to the IWF", &[Date, Reference]),
        o(
            "referred-social-care",
            "Referred to children's social care / MASH",
            &[Date, Reference],
        ),
        o("referred-lado", "Referred to the LADO", &[Date, Reference]),
        o(
            "referred-prevent",
            "Referred to Prevent",
            &[Date, Reference],
        ),
        o(FALSE_POSITIVE, "False positive", &[Reason]),
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsole {
    listen: SocketAddr,
    #[serde(default)]
    names: Vec<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    outcomes: Option<Vec<Spanned<RawOutcome>>>,
    weekly_report: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutcome {
    id: Spanned<String>,
    label: String,
    #[serde(default)]
    record: Vec<Spanned<String>>,
}

/// Validates `[console]`, reporting each problem with its span (`None`: the table itself).
pub(crate) fn validate(
    raw: RawConsole,
    err: &mut dyn FnMut(Option<std::ops::Range<usize>>, String),
) -> ConsoleConfig {
    let mut names = Vec::new();
    for n in raw.names {
        let span = n.span();
        let n = n.into_inner();
        if hedgerow_model::Host::parse(&n).is_err() || n.contains('*') {
            err(
                Some(span),
                format!("[console] names: {n:?} is not a host name"),
            );
        } else {
            names.push(n.to_ascii_lowercase());
        }
    }
    let mut idle_timeout = MAX_IDLE;
    if let Some(t) = raw.idle_timeout {
        let span = t.span();
        match parse_duration(t.get_ref()) {
            Ok(d) if d > MAX_IDLE => err(
                Some(span),
                format!(
                    "idle_timeout = {:?} is longer than 30 minutes, the most a signed-in console session may sit unused",
                    t.get_ref()
                ),
            ),
            Ok(d) if d < Duration::from_secs(60) => err(
                Some(span),
                format!("idle_timeout = {:?}: at least 1 minute", t.get_ref()),
            ),
            Ok(d) => idle_timeout = d,
            Err(e) => err(Some(span), e),
        }
    }
    let outcomes = match raw.outcomes {
        None => default_outcomes(),
        Some(list) => {
            let mut out: Vec<Outcome> = Vec::new();
            for o in list {
                let span = o.span();
                let o = o.into_inner();
                let id_span = o.id.span();
                let id = o.id.into_inner();
                if id.is_empty()
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    err(
                        Some(id_span),
                        format!(
                            "outcome id {id:?}: use lowercase letters, digits and '-' (it is kept in every closed breach)"
                        ),
                    );
                    continue;
                }
                if out.iter().any(|p| p.id == id) {
                    err(Some(id_span), format!("outcome {id:?} is listed twice"));
                    continue;
                }
                if o.label.trim().is_empty() {
                    err(Some(span), format!("outcome {id:?} needs a label"));
                    continue;
                }
                let mut record = Vec::new();
                for r in o.record {
                    let field = match r.get_ref().as_str() {
                        "date" => OutcomeField::Date,
                        "by" => OutcomeField::By,
                        "reference" => OutcomeField::Reference,
                        "reason" => OutcomeField::Reason,
                        other => {
                            err(
                                Some(r.span()),
                                format!(
                                    "record {other:?}: expected \"date\", \"by\", \"reference\" or \"reason\""
                                ),
                            );
                            continue;
                        }
                    };
                    if !record.contains(&field) {
                        record.push(field);
                    }
                }
                if id == FALSE_POSITIVE && !record.contains(&OutcomeField::Reason) {
                    record.push(OutcomeField::Reason);
                }
                out.push(Outcome {
                    id,
                    label: o.label.trim().to_owned(),
                    record,
                });
            }
            if !out.iter().any(|o| o.id == FALSE_POSITIVE) {
                out.push(Outcome {
                    id: FALSE_POSITIVE.into(),
                    label: "False positive".into(),
                    record: vec![OutcomeField::Reason],
                });
            }
            out
        }
    };
    let weekly_report = match raw.weekly_report {
        None => Some((7, 0)),
        Some(w) if w.get_ref() == "off" => None,
        Some(w) => {
            let parsed = w.get_ref().split_once(':').and_then(|(h, m)| {
                let h: u8 = h.parse().ok()?;
                let m: u8 = m.parse().ok()?;
                (h < 24 && m < 60 && m.to_string().len() <= 2).then_some((h, m))
            });
            if parsed.is_none() {
                err(
                    Some(w.span()),
                    format!(
                        "weekly_report = {:?}: expected a time of day on Mondays such as \"07:00\", or \"off\"",
                        w.get_ref()
                    ),
                );
            }
            parsed
        }
    };
    ConsoleConfig {
        listen: raw.listen,
        names,
        idle_timeout,
        outcomes,
        weekly_report,
    }
}
