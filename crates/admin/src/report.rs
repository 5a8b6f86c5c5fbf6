//! How records are shown to people: the table, CSV and JSON lines `hedgerow logs`, `breaches`
//! and `reviews` print (and a console can reuse), and the words and times people type to ask
//! for them. A table is printed as rows come, sized on its first [`TABLE_SAMPLE`] rows; CSV
//! cells a spreadsheet would take for a formula are neutralised.

use std::borrow::Cow;
use std::io::Write;

use hedgerow_model::{AccessEvent, Category, Disposition, Severity};
use hedgerow_store::{Breach, ReviewRequest, ReviewStatus};
use serde::de::DeserializeOwned;

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_lowercase().as_str() {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(format!("{s:?}: expected table, csv or json")),
        }
    }
}

/// Rows held to size a table's columns; later rows use those widths.
pub const TABLE_SAMPLE: usize = 1000;
/// The widest a table cell gets; longer text is cut.
const TABLE_CELL: usize = 60;

fn bad_data(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("reading the appliance's answer: {e}"),
    )
}

/// Where rows go, in the chosen format. JSON lines pass through as the appliance sent them.
pub enum Printer<W: Write> {
    Json(W),
    Csv(Box<csv::Writer<W>>),
    Table(Table<W>),
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, out: W, header: &[&str]) -> std::io::Result<Self> {
        Ok(match format {
            Format::Json => Self::Json(out),
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(header)?;
                Self::Csv(Box::new(w))
            }
            Format::Table => Self::Table(Table {
                out,
                header: header.iter().map(|h| (*h).to_owned()).collect(),
                held: Vec::new(),
                widths: None,
            }),
        })
    }

    /// An access event's JSON line: passed through, or shown as a row.
    pub fn event(&mut self, json: &str, tz: &jiff::tz::TimeZone) -> std::io::Result<()> {
        self.line(json)?;
        if self.wants_rows() {
            let e: AccessEvent = serde_json::from_str(json).map_err(bad_data)?;
            let row = event_row(&e, tz, self.none());
            self.row(row)?;
        }
        Ok(())
    }

    /// A breach's JSON line: passed through, or shown as a row.
    pub fn breach(&mut self, json: &str, tz: &jiff::tz::TimeZone) -> std::io::Result<()> {
        self.line(json)?;
        if self.wants_rows() {
            let b: Breach = serde_json::from_str(json).map_err(bad_data)?;
            let row = breach_row(&b, tz, self.none());
            self.row(row)?;
        }
        Ok(())
    }

    /// Whether rows are wanted (else only the JSON line).
    fn wants_rows(&self) -> bool {
        !matches!(self, Self::Json(_))
    }

    /// The empty cell: nothing in CSV, a dash in a table.
    fn none(&self) -> &'static str {
        match self {
            Self::Table(_) => "-",
            _ => "",
        }
    }

    fn line(&mut self, json: &str) -> std::io::Result<()> {
        if let Self::Json(out) = self {
            out.write_all(json.as_bytes())?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn row(&mut self, row: Vec<String>) -> std::io::Result<()> {
        match self {
            Self::Json(_) => {}
            Self::Csv(w) => {
                for cell in &row {
                    w.write_field(neutralise(cell).as_bytes())?;
                }
                w.write_record(None::<&[u8]>)?;
            }
            Self::Table(t) => t.row(row)?,
        }
        Ok(())
    }

    pub fn finish(self) -> std::io::Result<()> {
        match self {
            Self::Json(mut out) => out.flush()?,
            Self::Csv(mut w) => w.flush()?,
            Self::Table(t) => t.finish()?,
        }
        Ok(())
    }
}

/// A CSV cell that a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab or a
/// carriage return first) gets a `'` in front, so it shows as text. A search term is typed
/// by a pupil: `=HYPERLINK(…)` must not become a link in the DSL's spreadsheet.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A table printed as rows come: the first [`TABLE_SAMPLE`] size the columns.
pub struct Table<W: Write> {
    out: W,
    header: Vec<String>,
    held: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
}

impl<W: Write> Table<W> {
    fn row(&mut self, row: Vec<String>) -> std::io::Result<()> {
        if self.widths.is_none() {
            self.held.push(row);
            if self.held.len() >= TABLE_SAMPLE {
                self.start()?;
            }
            return Ok(());
        }
        self.print(&row)
    }

    fn start(&mut self) -> std::io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for r in &self.held {
            for (w, f) in widths.iter_mut().zip(r) {
                *w = (*w).max(f.chars().count()).min(TABLE_CELL);
            }
        }
        self.widths = Some(widths);
        let header = self.header.clone();
        self.print(&header)?;
        for r in std::mem::take(&mut self.held) {
            self.print(&r)?;
        }
        Ok(())
    }

    fn print(&mut self, fields: &[String]) -> std::io::Result<()> {
        let widths = self.widths.as_deref().unwrap_or_default();
        let cells: Vec<String> = fields
            .iter()
            .zip(widths)
            .map(|(f, w)| {
                let f: String = f.chars().take(TABLE_CELL).collect();
                format!("{f:<w$}")
            })
            .collect();
        writeln!(self.out, "{}", cells.join("  ").trim_end())
    }

    fn finish(mut self) -> std::io::Result<()> {
        let empty = self.widths.is_none() && self.held.is_empty();
        if self.widths.is_none() {
            self.start()?;
        }
        if empty {
            writeln!(self.out, "(no matching entries)")?;
        }
        self.out.flush()
    }
}

/// A time as people read it: in the school's time zone, to the second, with the zone (as the
/// alert messages show it).
pub fn local(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// A severity in capitals, as alerts and breach listings show it.
pub fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "CRITICAL",
        Severity::High => "HIGH",
        Severity::Medium => "MEDIUM",
        Severity::Low => "LOW",
    }
}

// === Access events ===

pub const EVENT_HEADER: [&str; 14] = [
    "time",
    "front",
    "client",
    "device",
    "user",
    "group",
    "target",
    "type",
    "verdict",
    "category",
    "category_name",
    "tier",
    "search",
    "reference",
];

pub fn event_row(e: &AccessEvent, tz: &jiff::tz::TimeZone, none: &str) -> Vec<String> {
    let opt = |o: Option<&str>| o.unwrap_or(none).to_owned();
    vec![
        local(e.time, tz),
        format!("{:?}", e.front).to_lowercase(),
        e.client.to_string(),
        opt(e.device.as_deref()),
        opt(e.user.as_deref()),
        opt(e.group.as_deref()),
        e.target.clone(),
        opt(e.qtype.as_deref().or(e.method.as_deref())),
        e.disposition().to_string(),
        opt(e.category.as_ref().map(Category::as_str)),
        opt(e.category.as_ref().map(Category::display_name)),
        e.tier.to_string(),
        opt(e.search.as_deref()),
        e.reference.map_or(none.into(), |r| format!("{r:016x}")),
    ]
}

// === Breaches ===

pub const BREACH_HEADER: [&str; 13] = [
    "id", "severity", "rule", "first", "last", "count", "triggers", "device", "client", "user",
    "site", "category", "alerts",
];

pub fn breach_row(b: &Breach, tz: &jiff::tz::TimeZone, none: &str) -> Vec<String> {
    vec![
        b.id.to_string(),
        severity_word(b.severity).to_lowercase(),
        b.rule.clone(),
        local(b.first, tz),
        local(b.last, tz),
        b.count.to_string(),
        b.triggers.len().to_string(),
        b.device.clone().unwrap_or_else(|| none.into()),
        b.client.to_string(),
        b.user.clone().unwrap_or_else(|| none.into()),
        b.site.clone(),
        b.category.as_ref().map_or(none.into(), ToString::to_string),
        deliveries(b, none),
    ]
}

/// One breach in full: every request that raised it, and how its alerts went.
pub fn write_breach(
    out: &mut impl Write,
    b: &Breach,
    tz: &jiff::tz::TimeZone,
) -> std::io::Result<()> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let raised = match b.triggers.first() {
        Some(t) if b.raised() => format!(" (raised from {})", severity_word(t.severity)),
        _ => String::new(),
    };
    writeln!(out, "breach:    {}", b.id)?;
    writeln!(out, "severity:  {}{raised}", severity_word(b.severity))?;
    writeln!(out, "rule:      {}", b.rule)?;
    writeln!(out, "device:    {} ({})", opt(&b.device), b.client)?;
    writeln!(out, "user:      {}", opt(&b.user))?;
    writeln!(out, "group:     {}", opt(&b.group))?;
    writeln!(out, "site:      {}", b.site)?;
    writeln!(out, "requested: {}", b.target)?;
    writeln!(out, "tier:      {}", b.tier)?;
    writeln!(
        out,
        "category:  {}",
        b.category
            .as_ref()
            .map_or("-".into(), |c| format!("{c} ({})", c.display_name()))
    )?;
    writeln!(out, "list:      {}", opt(&b.list))?;
    writeln!(out, "search:    {}", opt(&b.search))?;
    writeln!(out, "first:     {}", local(b.first, tz))?;
    writeln!(out, "last:      {}", local(b.last, tz))?;
    writeln!(out, "count:     {}", b.count)?;
    writeln!(
        out,
        "reference: {}",
        b.reference.map_or("-".into(), |r| format!("{r:016x}"))
    )?;
    writeln!(out, "alerts:    {}", deliveries(b, "-"))?;
    writeln!(out, "triggers:  {}, in order", b.triggers.len())?;
    for (i, t) in b.triggers.iter().enumerate() {
        let what = match &t.search {
            Some(s) => format!("searched \"{s}\""),
            None => t.target.clone(),
        };
        writeln!(
            out,
            "  {:>3}. {}  {:<8}  {what}",
            i + 1,
            local(t.time, tz),
            severity_word(t.severity),
        )?;
        let repeat = if t.count > 1 {
            format!(", {} times, last {}", t.count, local(t.last, tz))
        } else {
            String::new()
        };
        writeln!(
            out,
            "       device {} ({}), user {}, rule {}{repeat}",
            opt(&t.device),
            t.client,
            opt(&t.user),
            t.rule
        )?;
        if t.search.is_some() {
            writeln!(out, "       {}", t.target)?;
        }
    }
    out.flush()
}

fn deliveries(b: &Breach, none: &str) -> String {
    if b.deliveries.is_empty() {
        return none.into();
    }
    b.deliveries
        .iter()
        .map(|d| {
            let state = format!("{:?}", d.state).to_lowercase();
            let at = d
                .severity
                .filter(|s| *s != b.severity)
                .map(|s| format!(" at {}", severity_word(s)))
                .unwrap_or_default();
            format!(
                "{} {}{at} ({} attempt{})",
                d.channel,
                state,
                d.attempts,
                if d.attempts == 1 { "" } else { "s" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

// === Review requests ===

fn review_time(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Review requests as a table, with their count.
pub fn write_reviews(
    out: &mut impl Write,
    all: &[ReviewRequest],
    tz: &jiff::tz::TimeZone,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16}  {:<19}  {:<8}  {:<12}  {:<16}  {:<30}  reason",
        "reference", "asked", "status", "group", "device", "target"
    )?;
    for r in all {
        writeln!(
            out,
            "{:016x}  {:<19}  {:<8}  {:<12}  {:<16}  {:<30}  {}",
            r.reference,
            review_time(r.asked, tz),
            r.status,
            r.group.as_deref().unwrap_or("-"),
            r.device.as_deref().unwrap_or("-"),
            r.target,
            r.reason.replace('\n', " ")
        )?;
    }
    writeln!(out, "{} review request(s)", all.len())?;
    out.flush()
}

/// One review request in full.
pub fn write_review(
    out: &mut impl Write,
    r: &ReviewRequest,
    tz: &jiff::tz::TimeZone,
) -> std::io::Result<()> {
    let when = |t| review_time(t, tz);
    writeln!(out, "reference: {:016x}", r.reference)?;
    writeln!(out, "status:    {}", r.status)?;
    writeln!(out, "asked:     {}", when(r.asked))?;
    if let Some(b) = r.blocked {
        writeln!(out, "blocked:   {}", when(b))?;
    }
    writeln!(out, "client:    {}", r.client)?;
    writeln!(out, "device:    {}", r.device.as_deref().unwrap_or("-"))?;
    writeln!(out, "user:      {}", r.user.as_deref().unwrap_or("-"))?;
    writeln!(out, "group:     {}", r.group.as_deref().unwrap_or("-"))?;
    writeln!(out, "target:    {}", r.target)?;
    writeln!(out, "tier:      {}", r.tier)?;
    writeln!(
        out,
        "category:  {}",
        r.category
            .as_ref()
            .map_or("-".into(), |c| format!("{c} ({})", c.display_name()))
    )?;
    writeln!(out, "rule:      {}", r.rule.as_deref().unwrap_or("-"))?;
    writeln!(out, "name:      {}", r.name.as_deref().unwrap_or("-"))?;
    writeln!(out, "reason:    {}", r.reason)?;
    if let Some(d) = r.decided {
        writeln!(
            out,
            "decided:   {} by {}",
            when(d),
            r.decided_by.as_deref().unwrap_or("-")
        )?;
    }
    if let Some(n) = &r.note {
        writeln!(out, "note:      {n}")?;
    }
    out.flush()
}

// === Change control ===

/// A kebab-case word for a value serialised as one (a status, a direction, a role).
fn word<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One change request in full: who, why, the risk, the signatures it needs and has, and its
/// preview (the verdicts that change, the diff).
pub fn write_change(out: &mut impl Write, c: &crate::ChangeRequest) -> std::io::Result<()> {
    writeln!(
        out,
        "change #{} ({}) {}",
        c.id,
        word(&c.direction),
        word(&c.status)
    )?;
    writeln!(out, "proposer:  {}", c.proposer)?;
    writeln!(out, "reason:    {}", c.reason)?;
    writeln!(
        out,
        "risk:      {} — {}",
        word(&c.risk.risk),
        c.risk.justification
    )?;
    if let Some(e) = c.risk.expires {
        writeln!(out, "expires:   {e}")?;
    }
    let needs: Vec<String> = c.needs.iter().map(|r| r.as_str().to_owned()).collect();
    writeln!(
        out,
        "needs:     {}",
        if needs.is_empty() {
            "-".into()
        } else {
            needs.join(", ")
        }
    )?;
    for sig in &c.signatures {
        let roles: Vec<&str> = sig.as_roles.iter().map(|r| r.as_str()).collect();
        writeln!(out, "signed:    {} as {}", sig.by, roles.join(", "))?;
    }
    if let Some(f) = &c.failure {
        writeln!(out, "failure:   {f}")?;
    }
    for v in &c.preview.verdicts {
        writeln!(out, "verdict:   {v}")?;
    }
    if !c.preview.diff.is_empty() {
        writeln!(out, "{}", c.preview.diff)?;
    }
    out.flush()
}

/// One change request on one line, as `change list` shows it.
pub fn change_line(c: &crate::ChangeRequest) -> String {
    let edits: Vec<String> = c
        .edits
        .iter()
        .map(|e| {
            serde_json::to_value(e)
                .ok()
                .and_then(|v| v["op"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "?".into())
        })
        .collect();
    format!(
        "#{} {} {} by {}: {} [{}]{}",
        c.id,
        word(&c.status),
        word(&c.direction),
        c.proposer,
        c.reason,
        edits.join(","),
        c.applied_at
            .map(|t| format!(" applied {t}"))
            .unwrap_or_default()
    )
}

/// An account on one line: name, roles, and whether it is disabled.
pub fn account_line(a: &crate::Account) -> String {
    let roles: Vec<&str> = a.roles.iter().map(|r| r.as_str()).collect();
    let mut line = format!("{} roles={}", a.name, roles.join(","));
    if a.totp_enrolled {
        line.push_str(" totp");
    }
    if a.disabled {
        line.push_str(" disabled");
    }
    line
}

/// An audit log entry on one line.
pub fn audit_line(e: &hedgerow_store::AuditEntry) -> String {
    format!("{} #{} {} {} {}", e.time, e.id, e.actor, e.action, e.detail)
}

// === What people type ===

/// Reads a word naming a value of `T` (a verdict, a severity), in any case: the values are
/// `T`'s own names, so a new one is accepted as soon as `T` has it.
fn parse_word<T: DeserializeOwned>(s: &str, expected: &str) -> Result<T, String> {
    let word = s.trim().to_lowercase();
    serde_json::from_value(serde_json::Value::String(word))
        .map_err(|_| format!("{s:?}: expected {expected}"))
}

pub fn parse_verdict(s: &str) -> Result<Disposition, String> {
    parse_word(s, "allow, block, rewrite, refused, rate-limited or error")
}

pub fn parse_severity(s: &str) -> Result<Severity, String> {
    parse_word(s, "low, medium, high or critical")
}

/// A category as people type it: its id or its display name ("Hate speech"), in any case.
/// Anything else that is a valid id is taken as written (old events may carry ids outside the
/// vocabulary).
pub fn parse_category(s: &str) -> Result<Category, String> {
    let s = s.trim();
    if let Some(c) = hedgerow_model::VOCABULARY
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(s))
    {
        return Category::new(c.id).map_err(|e| e.to_string());
    }
    Category::new(&s.to_lowercase()).map_err(|e| e.to_string())
}

pub fn parse_review_status(s: &str) -> Result<ReviewStatus, String> {
    parse_word(s, "pending, approved, declined or change-requested")
}

/// A review request's reference: the 16 hex digits shown on the block page.
pub fn parse_reference(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("{text:?}: a reference is the 16 hex digits shown on the block page");
    if t.is_empty() || t.len() > 16 {
        return Err(bad());
    }
    u64::from_str_radix(t, 16).map_err(|_| bad())
}

/// Reads when, as people type it: a span back from now (`1h`, `90m`, `2d`), `today`,
/// `yesterday` (their start), a local date (`2026-11-23`), a local date and time
/// (`2026-11-23 09:00`, `2026-11-23T09:00`), a local time today (`09:30`), or an RFC 3339
/// time with its offset.
pub fn parse_when(
    text: &str,
    tz: &jiff::tz::TimeZone,
    now: jiff::Timestamp,
) -> Result<jiff::Timestamp, String> {
    let t = text.trim();
    let today = now.to_zoned(tz.clone()).date();
    let err = |e: jiff::Error| format!("{text:?}: {e}");
    let start_of = |d: jiff::civil::Date| -> Result<jiff::Timestamp, String> {
        Ok(d.to_zoned(tz.clone()).map_err(err)?.timestamp())
    };
    match t.to_lowercase().as_str() {
        "now" => return Ok(now),
        "today" => return start_of(today),
        "yesterday" => return start_of(today.yesterday().map_err(err)?),
        _ => {}
    }
    if let Ok(d) = hedgerow_config::parse_duration(t) {
        let back = jiff::SignedDuration::try_from(d).map_err(err)?;
        return now.checked_sub(back).map_err(err);
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    if let Ok(dt) = t.parse::<jiff::civil::DateTime>() {
        return Ok(dt.to_zoned(tz.clone()).map_err(err)?.timestamp());
    }
    if let Ok(d) = t.parse::<jiff::civil::Date>() {
        return start_of(d);
    }
    if let Ok(time) = t.parse::<jiff::civil::Time>() {
        return Ok(today
            .to_datetime(time)
            .to_zoned(tz.clone())
            .map_err(err)?
            .timestamp());
    }
    Err(format!(
        "{text:?}: expected a span back from now (1h, 90m, 2d), today, yesterday, a date (2026-11-23), a date and time (2026-11-23 09:00) or a time today (09:00)"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_left_alone() {
        for hostile in ["=1+1", "+1", "-2", "@SUM(A1)", "\t=1", "\r=1"] {
            assert_eq!(neutralise(hostile), format!("'{hostile}"));
        }
        for plain in ["homework help", "1+1", "a=b", "", "'quoted"] {
            assert_eq!(neutralise(plain), plain);
        }
    }

    #[test]
    fn words_in_any_case() {
        assert_eq!(parse_verdict("Block"), Ok(Disposition::Block));
        assert_eq!(parse_verdict(" ALLOW "), Ok(Disposition::Allow));
        assert_eq!(parse_verdict("Rate-Limited"), Ok(Disposition::RateLimited));
        assert!(
            parse_verdict("blocked")
                .unwrap_err()
                .contains("allow, block")
        );
        assert_eq!(parse_severity("HIGH"), Ok(Severity::High));
        assert_eq!(
            parse_category("Gambling").unwrap(),
            Category::new("gambling").unwrap()
        );
        assert_eq!(
            parse_category("hate SPEECH").unwrap(),
            Category::new("hate").unwrap()
        );
        assert_eq!(
            parse_category("Pornography").unwrap(),
            Category::new("adult").unwrap()
        );
        assert_eq!(parse_review_status("Declined"), Ok(ReviewStatus::Declined));
        assert_eq!(parse_reference("00000000000000ff"), Ok(255));
        assert!(parse_reference("xyz").is_err());
        assert_eq!("CSV".parse::<Format>(), Ok(Format::Csv));
    }

    #[test]
    fn when_as_people_type_it() {
        let tz = jiff::tz::TimeZone::get("Europe/London").unwrap();
        // 10:30 BST on a summer day.
        let now: jiff::Timestamp = "2026-06-10T09:30:00Z".parse().unwrap();
        let at = |s: &str| parse_when(s, &tz, now).unwrap().to_string();
        assert_eq!(at("1h"), "2026-06-10T08:30:00Z");
        assert_eq!(at("90m"), "2026-06-10T08:00:00Z");
        assert_eq!(at("2d"), "2026-06-08T09:30:00Z");
        assert_eq!(at("Yesterday"), "2026-06-08T23:00:00Z");
        assert_eq!(at("today"), "2026-06-09T23:00:00Z");
        assert_eq!(at("2026-06-01"), "2026-05-31T23:00:00Z");
        assert_eq!(at("2026-06-01 09:00"), "2026-06-01T08:00:00Z");
        assert_eq!(at("2026-06-01T09:00:30"), "2026-06-01T08:00:30Z");
        assert_eq!(at("09:00"), "2026-06-10T08:00:00Z");
        assert_eq!(at("2026-06-01T09:00:00+00:00"), "2026-06-01T09:00:00Z");
        assert!(parse_when("last tuesday", &tz, now).is_err());
    }
}
