//! What is shipped, and its two wire forms: a ClickHouse row (one JSON object per line) and an
//! RFC 5424 syslog message.
//!
//! A record is made from the event the recorder stores, after the illegal tier's entry was
//! withheld (`AccessEvent::protect`): its target is `[protected entry] #ref` and its search
//! terms are gone. Nothing here can put an entry back.

use std::fmt::Write as _;

use hedgerow_model::{AccessEvent, Front, Outcome, Severity};
use hedgerow_store::{Change, Recorded};
use serde::Serialize;

/// One thing to ship.
#[derive(Debug)]
pub enum Record {
    Access(AccessEvent),
    Breach {
        event: AccessEvent,
        id: u64,
        severity: Severity,
        rule: String,
        change: Change,
    },
}

impl Record {
    pub(crate) fn breach(event: &AccessEvent, recorded: &Recorded, rule: &str) -> Self {
        Record::Breach {
            event: event.clone(),
            id: recorded.id,
            severity: recorded.severity,
            rule: rule.to_owned(),
            change: recorded.change,
        }
    }

    fn event(&self) -> &AccessEvent {
        match self {
            Record::Access(e) | Record::Breach { event: e, .. } => e,
        }
    }
}

pub(crate) fn front(f: Front) -> &'static str {
    match f {
        Front::Dns => "dns",
        Front::Proxy => "proxy",
    }
}

pub(crate) fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Forwarded => "forwarded",
        Outcome::Blocked => "blocked",
        Outcome::SafeSearch => "safe-search",
        Outcome::Circumvention => "circumvention",
        Outcome::Refused => "refused",
        Outcome::RateLimited => "rate-limited",
        Outcome::Failed => "failed",
        Outcome::Invalid => "invalid",
    }
}

pub(crate) fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

fn change(c: Change) -> &'static str {
    match c {
        Change::Open => "open",
        Change::Raise => "raise",
        Change::Add => "add",
    }
}

/// A row of the access events table (docs/trust.md has its schema).
#[derive(Serialize)]
struct EventRow<'a> {
    /// Seconds since the epoch (ClickHouse 18.16 has no sub-second `DateTime`).
    time: i64,
    time_ms: u16,
    appliance: &'a str,
    front: &'static str,
    client: String,
    device: &'a str,
    user: &'a str,
    group: &'a str,
    target: &'a str,
    qtype: &'a str,
    verdict: &'static str,
    outcome: &'static str,
    action: String,
    tier: &'static str,
    category: &'a str,
    list: &'a str,
    rule: &'a str,
    method: &'a str,
    search: &'a str,
    concern: &'static str,
    bytes: u64,
    reference: String,
}

/// A row of the breaches table: one per request that opened, joined or raised a breach.
#[derive(Serialize)]
struct BreachRow<'a> {
    #[serde(flatten)]
    event: EventRow<'a>,
    breach_id: u64,
    severity: &'static str,
    breach_rule: &'a str,
    change: &'static str,
}

fn event_row<'a>(e: &'a AccessEvent, appliance: &'a str) -> EventRow<'a> {
    let ms = e.time.subsec_millisecond();
    EventRow {
        time: e.time.as_second(),
        time_ms: u16::try_from(ms).unwrap_or(0),
        appliance,
        front: front(e.front),
        client: e.client.to_string(),
        device: e.device.as_deref().unwrap_or(""),
        user: e.user.as_deref().unwrap_or(""),
        group: e.group.as_deref().unwrap_or(""),
        target: &e.target,
        qtype: e.qtype.as_deref().unwrap_or(""),
        verdict: e.disposition().as_str(),
        outcome: outcome(e.outcome),
        action: e.action.to_string(),
        tier: e.tier.as_str(),
        category: e.category.as_ref().map_or("", |c| c.as_str()),
        list: e.list.as_deref().unwrap_or(""),
        rule: e.rule.as_deref().unwrap_or(""),
        method: e.method.as_deref().unwrap_or(""),
        search: e.search.as_deref().unwrap_or(""),
        concern: e.concern.map_or("", severity),
        bytes: e.bytes,
        reference: e.reference.map(|r| format!("{r:016x}")).unwrap_or_default(),
    }
}

/// Appends the record as one JSONEachRow line to `out`.
pub(crate) fn clickhouse_row(r: &Record, appliance: &str, out: &mut Vec<u8>) {
    let written = match r {
        Record::Access(e) => serde_json::to_writer(&mut *out, &event_row(e, appliance)),
        Record::Breach {
            event,
            id,
            severity: s,
            rule,
            change: c,
        } => serde_json::to_writer(
            &mut *out,
            &BreachRow {
                event: event_row(event, appliance),
                breach_id: *id,
                severity: severity(*s),
                breach_rule: rule,
                change: change(*c),
            },
        ),
    };
    // Serialising plain strings and numbers into a Vec cannot fail; if it ever did, the
    // partial line is ended so the next row still parses.
    if let Err(e) = written {
        tracing::error!("encoding a row for ClickHouse: {e}");
    }
    out.push(b'\n');
}

/// Our structured-data ID: `hedgerow@32473`, under the example enterprise number RFC 5612
/// sets aside for documentation, until the project has one of its own.
pub const SD_ID: &str = "hedgerow@32473";

/// Appends the record as one RFC 5424 message, octet-counted (RFC 6587 §3.4.1:
/// `LENGTH SP MESSAGE`), to `out`.
pub(crate) fn syslog_frame(r: &Record, appliance: &str, facility: u8, pid: u32, out: &mut Vec<u8>) {
    let msg = syslog_message(r, appliance, facility, pid);
    let _ = write!(Length(out), "{} ", msg.len());
    out.extend_from_slice(msg.as_bytes());
}

struct Length<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Length<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// RFC 5424 severities.
fn syslog_severity(r: &Record) -> u8 {
    match r {
        Record::Breach { severity: s, .. } => match s {
            Severity::Critical => 2,
            Severity::High => 3,
            Severity::Medium => 4,
            Severity::Low => 5,
        },
        Record::Access(e) => match e.disposition() {
            hedgerow_model::Disposition::Allow | hedgerow_model::Disposition::Rewrite => 6,
            _ => 5,
        },
    }
}

/// One RFC 5424 message:
/// `<PRI>1 TIMESTAMP HOSTNAME hedgerow PROCID MSGID [hedgerow@32473 …] MSG`.
pub fn syslog_message(r: &Record, appliance: &str, facility: u8, pid: u32) -> String {
    let e = r.event();
    let pri = u16::from(facility) * 8 + u16::from(syslog_severity(r));
    let msgid = match r {
        Record::Access(_) => "access",
        Record::Breach { .. } => "breach",
    };
    let time = e.time.strftime("%Y-%m-%dT%H:%M:%S%.3fZ");
    let mut m = String::with_capacity(256);
    let _ = write!(
        m,
        "<{pri}>1 {time} {} hedgerow {pid} {msgid} [{SD_ID}",
        header_field(appliance)
    );
    let mut param = |name: &str, value: &str| {
        if !value.is_empty() {
            m.push(' ');
            m.push_str(name);
            m.push_str("=\"");
            escape_param(value, &mut m);
            m.push('"');
        }
    };
    param("front", front(e.front));
    param("client", &e.client.to_string());
    param("device", e.device.as_deref().unwrap_or(""));
    param("user", e.user.as_deref().unwrap_or(""));
    param("group", e.group.as_deref().unwrap_or(""));
    param("target", &e.target);
    param("qtype", e.qtype.as_deref().unwrap_or(""));
    param("verdict", e.disposition().as_str());
    param("outcome", outcome(e.outcome));
    param("tier", e.tier.as_str());
    param("category", e.category.as_ref().map_or("", |c| c.as_str()));
    param("list", e.list.as_deref().unwrap_or(""));
    param("rule", e.rule.as_deref().unwrap_or(""));
    param("method", e.method.as_deref().unwrap_or(""));
    param("search", e.search.as_deref().unwrap_or(""));
    param("concern", e.concern.map_or("", severity));
    if let Some(reference) = e.reference {
        param("reference", &format!("{reference:016x}"));
    }
    if let Record::Breach {
        id,
        severity: s,
        rule,
        change: c,
        ..
    } = r
    {
        param("breach", &id.to_string());
        param("severity", severity(*s));
        param("breach_rule", rule);
        param("change", change(*c));
    }
    m.push_str("] ");
    // The free-text part, for people reading the SIEM: verdict, who, what.
    let who = e
        .device
        .as_deref()
        .map_or_else(|| e.client.to_string(), str::to_owned);
    let text = match r {
        Record::Access(_) => format!("{} {} {}", e.disposition(), who, e.target),
        Record::Breach {
            id, severity: s, ..
        } => {
            format!("breach {id} {} {} {}", severity(*s), who, e.target)
        }
    };
    // Control characters would split the message in a SIEM that reads lines.
    m.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
    m
}

/// A HOSTNAME field: printable US-ASCII, no spaces, at most 255 (config allows 64 already).
fn header_field(s: &str) -> String {
    let f: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if f.is_empty() { "-".into() } else { f }
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped (RFC 5424 §6.3.3); control characters become
/// spaces so that a line-reading SIEM keeps one message a line.
fn escape_param(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn event() -> AccessEvent {
        let mut e = AccessEvent::new(
            "2026-12-01T09:00:00.250Z".parse().unwrap(),
            Front::Proxy,
            "10.0.0.7".parse().unwrap(),
            "http://x.example/a\"b]c\\d".into(),
        );
        e.search = Some("line one\nline two".into());
        e
    }

    #[test]
    fn syslog_message_escapes_and_frames() {
        let r = Record::Access(event());
        let m = syslog_message(&r, "st-marys", 16, 42);
        assert!(
            m.starts_with("<134>1 2026-12-01T09:00:00.250Z st-marys hedgerow 42 access [hedgerow@32473 front=\"proxy\" client=\"10.0.0.7\""),
            "{m}"
        );
        assert!(m.contains(r#"target="http://x.example/a\"b\]c\\d""#), "{m}");
        assert!(m.contains(r#"search="line one line two""#), "{m}");
        assert!(!m.contains('\n'));
        let mut framed = Vec::new();
        syslog_frame(&r, "st-marys", 16, 42, &mut framed);
        let text = String::from_utf8(framed).unwrap();
        let (len, rest) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), rest.len());
    }

    #[test]
    fn clickhouse_rows_are_json_lines() {
        let mut out = Vec::new();
        clickhouse_row(&Record::Access(event()), "st-marys", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["time_ms"], 250);
        assert_eq!(v["verdict"], "allow");
        assert_eq!(v["search"], "line one\nline two");
    }
}
