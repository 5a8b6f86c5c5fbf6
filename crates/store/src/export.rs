//! Export and import of the whole store as JSON lines, one record a line, so the data can
//! move to another engine (or another appliance).
//!
//! ```text
//! {"kind":"format","version":1}
//! {"kind":"access","event":{...}}
//! {"kind":"breach","pending":false,"breach":{...}}
//! {"kind":"audit","entry":{...}}
//! {"kind":"review","review":{...}}
//! {"kind":"admin","tree":"accounts","key":"6865…","value":"01…"}
//! ```
//!
//! Admin records (accounts, change requests, the reviewed configuration) are opaque to the
//! store: key and value in hex, as the admin crate wrote them. Accounts carry their argon2
//! password hashes and SHA-256 API-token hashes (never a password or token in clear), so an
//! export must be kept as carefully as the appliance's state directory.

use std::io::{BufRead, Write};

use hedgerow_model::AccessEvent;
use serde::{Deserialize, Serialize};

use crate::{AdminTree, AuditEntry, Breach, ReviewRequest, Store, StoreError};

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Line {
    Format {
        version: u8,
    },
    Access {
        event: AccessEvent,
    },
    Breach {
        pending: bool,
        breach: Breach,
    },
    Audit {
        entry: AuditEntry,
    },
    Review {
        review: ReviewRequest,
    },
    Admin {
        tree: String,
        key: String,
        value: String,
    },
}

/// Counts of what an export wrote or an import read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub events: u64,
    pub breaches: u64,
    pub audit: u64,
    pub reviews: u64,
    /// Admin records: accounts, change requests, reviewed files.
    pub admin: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
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
        for tree in AdminTree::ALL {
            for (key, value) in self.admin_list(tree)? {
                n.admin += 1;
                write_line(
                    out,
                    &Line::Admin {
                        tree: tree.export_name().to_owned(),
                        key: hex(&key),
                        value: hex(&value),
                    },
                )?;
            }
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
                Line::Admin { tree, key, value } => {
                    let bad = |reason: String| StoreError::Import {
                        line: i + 1,
                        reason,
                    };
                    let tree = AdminTree::ALL
                        .into_iter()
                        .find(|t| t.export_name() == tree)
                        .ok_or_else(|| bad(format!("no admin tree {tree:?}")))?;
                    let key = unhex(&key).ok_or_else(|| bad("the key is not hex".into()))?;
                    let value = unhex(&value).ok_or_else(|| bad("the value is not hex".into()))?;
                    n.admin += 1;
                    self.admin_put(tree, &key, &value)?;
                }
            }
        }
        self.append_events(&batch)?;
        self.flush()?;
        Ok(n)
    }
}
