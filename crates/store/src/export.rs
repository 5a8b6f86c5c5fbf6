//! Export and import of the whole store as JSON lines, one record a line, so the data can
//! move to another engine (or another appliance).
//!
//! ```text
//! {"kind":"format","version":1}
//! {"kind":"access","event":{...}}
//! {"kind":"breach","pending":false,"breach":{...}}
//! {"kind":"audit","entry":{...}}
//! {"kind":"review","review":{...}}
//! ```

use std::io::{BufRead, Write};

use hedgerow_model::AccessEvent;
use serde::{Deserialize, Serialize};

use crate::{AuditEntry, Breach, ReviewRequest, Store, StoreError};

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Line {
    Format { version: u8 },
    Access { event: AccessEvent },
    Breach { pending: bool, breach: Breach },
    Audit { entry: AuditEntry },
    Review { review: ReviewRequest },
}

/// Counts of what an export wrote or an import read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub breaches: u64,
    pub audit: u64,
    pub reviews: u64,
}

fn write_line(out: &mut impl Write, line: &Line) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    Ok(())
}

impl Store {
    /// Writes the whole store to `out` as JSON lines.
    pub fn export(&self, out: &mut impl Write) -> Result<Counts, StoreError> {
        let mut n = Counts::default();
        write_line(
            out,
            &Line::Format {
                version: crate::wire::FORMAT,
            },
        )?;
        self.for_each_event(|event| {
            n.events += 1;
            write_line(out, &Line::Access { event })
        })?;
        self.for_each_breach(|breach| {
            n.breaches += 1;
            let pending = self.is_pending(breach.id)?;
            write_line(out, &Line::Breach { pending, breach })
        })?;
        for entry in self.audit()? {
            n.audit += 1;
            write_line(out, &Line::Audit { entry })?;
        }
        for review in self.all_reviews()? {
            n.reviews += 1;
            write_line(out, &Line::Review { review })?;
        }
        out.flush()?;
        Ok(n)
    }

    /// Reads an export into this store. Access events are written in batches as the recorder
    /// writes them; breaches and audit entries keep their ids.
    pub fn import(&self, input: impl BufRead) -> Result<Counts, StoreError> {
        let mut n = Counts::default();
        let mut batch = Vec::with_capacity(4096);
        for (i, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_str(&line).map_err(|e| StoreError::Import {
                line: i + 1,
                reason: e.to_string(),
            })?;
            match parsed {
                Line::Format { version } if version != crate::wire::FORMAT => {
                    return Err(StoreError::Import {
                        line: i + 1,
                        reason: format!("export format {version} is not one this build reads"),
                    });
                }
                Line::Format { .. } => {}
                Line::Access { event } => {
                    n.events += 1;
                    batch.push(event);
                    if batch.len() >= 4096 {
                        self.append_events(&batch)?;
                        batch.clear();
                    }
                }
                Line::Breach { pending, breach } => {
                    n.breaches += 1;
                    self.put_breach(&breach, pending)?;
                }
                Line::Audit { entry } => {
                    n.audit += 1;
                    self.put_audit(&entry)?;
                }
                Line::Review { review } => {
                    n.reviews += 1;
                    self.put_review(&review)?;
                }
            }
        }
        self.append_events(&batch)?;
        self.flush()?;
        Ok(n)
    }
}
