//! The audit log's hash chain.
//!
//! Each entry written since the chain began carries the SHA-256 of the one before it (`prev`)
//! and its own (`hash`, over `prev`, its id, time, actor, action and detail), and the meta
//! tree keeps the head (the last entry's id and hash). [`Store::verify_audit`] recomputes the
//! chain: an entry edited, deleted or inserted on disk, or the newest entries cut off, breaks
//! it, and the report says at which entry. Entries written before the chain began (format 1,
//! without `prev`/`hash`) are still read; the chain starts at the first chained entry, whose
//! `prev` is all zeros.
//!
//! Appends are serialised by one lock: the chain has one head. (One process opens a store.)

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::wire::{FORMAT, nanos};
use crate::{AuditEntry, Store, StoreError};

const TREE: &str = "audit";
/// The value format of a chained entry: postcard of [`AuditEntry`] with both hashes.
const CHAINED: u8 = 2;
/// Meta key of the chain's head: the last chained entry's id (8 bytes) and hash (32).
const HEAD: &str = "audit-head";

static APPEND: Mutex<()> = Mutex::new(());

/// An entry as written before the chain (format 1).
#[derive(Deserialize)]
struct Legacy {
    id: u64,
    time: jiff::Timestamp,
    actor: String,
    action: String,
    detail: String,
}

/// What [`Store::verify_audit`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditCheck {
    /// Entries read.
    pub entries: usize,
    /// Entries from before the chain began (not covered by it).
    pub unchained: usize,
    /// Entries on the chain.
    pub chained: usize,
    /// Every break found, in words, naming the entry. Empty means the chain holds.
    pub problems: Vec<String>,
}

impl AuditCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of an entry given the previous hash.
fn entry_hash(prev: &[u8; 32], e: &AuditEntry) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"hedgerow-audit-v1");
    h.update(prev);
    h.update(e.id.to_be_bytes());
    h.update(nanos(e.time).to_be_bytes());
    for field in [&e.actor, &e.action, &e.detail] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

pub(crate) fn decode_entry(bytes: &[u8]) -> Result<AuditEntry, StoreError> {
    let bad = |e: postcard::Error| StoreError::Decode {
        tree: TREE.into(),
        reason: e.to_string(),
    };
    match bytes.split_first() {
        Some((&FORMAT, rest)) => {
            let l: Legacy = postcard::from_bytes(rest).map_err(bad)?;
            Ok(AuditEntry {
                id: l.id,
                time: l.time,
                actor: l.actor,
                action: l.action,
                detail: l.detail,
                prev: None,
                hash: None,
            })
        }
        Some((&CHAINED, rest)) => postcard::from_bytes(rest).map_err(bad),
        Some((&found, _)) => Err(StoreError::Format {
            tree: TREE.into(),
            found,
            expected: CHAINED,
        }),
        None => Err(StoreError::Decode {
            tree: TREE.into(),
            reason: "empty value".into(),
        }),
    }
}

fn encode_entry(e: &AuditEntry) -> Vec<u8> {
    let mut out = vec![if e.hash.is_some() { CHAINED } else { FORMAT }];
    if e.hash.is_some() {
        out.extend(postcard::to_allocvec(e).unwrap_or_default());
    } else {
        let legacy = (e.id, e.time, &e.actor, &e.action, &e.detail);
        out.extend(postcard::to_allocvec(&legacy).unwrap_or_default());
    }
    out
}

fn head(store: &Store) -> Result<Option<(u64, [u8; 32])>, StoreError> {
    let Some(v) = store.db.open_tree("meta")?.get(HEAD)? else {
        return Ok(None);
    };
    let (Some(id), Some(hash)) = (v.get(..8), v.get(8..40)) else {
        return Err(StoreError::Decode {
            tree: "meta".into(),
            reason: "audit head is damaged".into(),
        });
    };
    let mut i = [0u8; 8];
    i.copy_from_slice(id);
    let mut h = [0u8; 32];
    h.copy_from_slice(hash);
    Ok(Some((u64::from_be_bytes(i), h)))
}

fn set_head(store: &Store, id: u64, hash: &[u8; 32]) -> Result<(), StoreError> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(hash);
    store.db.open_tree("meta")?.insert(HEAD, v)?;
    Ok(())
}

pub(crate) fn append(
    store: &Store,
    time: jiff::Timestamp,
    actor: &str,
    action: &str,
    detail: &str,
) -> Result<AuditEntry, StoreError> {
    let _one = APPEND.lock().unwrap_or_else(|p| p.into_inner());
    let prev = head(store)?.map_or([0u8; 32], |(_, h)| h);
    let mut entry = AuditEntry {
        id: store.db.generate_id()?,
        time,
        actor: actor.to_owned(),
        action: action.to_owned(),
        detail: detail.to_owned(),
        prev: Some(hex(&prev)),
        hash: None,
    };
    let hash = entry_hash(&prev, &entry);
    entry.hash = Some(hex(&hash));
    store
        .audit
        .insert(entry.id.to_be_bytes(), encode_entry(&entry))?;
    set_head(store, entry.id, &hash)?;
    store.flush()?;
    Ok(entry)
}

/// Puts an exported entry back as it was (for import); a chained entry moves the head.
pub(crate) fn put(store: &Store, e: &AuditEntry) -> Result<(), StoreError> {
    let _one = APPEND.lock().unwrap_or_else(|p| p.into_inner());
    store.audit.insert(e.id.to_be_bytes(), encode_entry(e))?;
    if let Some(hash) = e.hash.as_deref().and_then(unhex)
        && head(store)?.is_none_or(|(id, _)| id <= e.id)
    {
        set_head(store, e.id, &hash)?;
    }
    Ok(())
}

impl Store {
    /// Walks the audit log and checks its hash chain (see the module doc).
    pub fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        let mut check = AuditCheck::default();
        // The hash the next chained entry must name as `prev`: None before the chain begins.
        let mut expect: Option<[u8; 32]> = None;
        let mut last_id = None;
        for item in self.audit.iter() {
            let (key, value) = item?;
            check.entries += 1;
            let e = match decode_entry(&value) {
                Ok(e) => e,
                Err(err) => {
                    check
                        .problems
                        .push(format!("entry at key {}: unreadable: {err}", hex(&key)));
                    continue;
                }
            };
            if key.as_ref() != e.id.to_be_bytes() {
                check
                    .problems
                    .push(format!("entry {}: stored under another id's key", e.id));
            }
            let (Some(prev), Some(hash)) = (&e.prev, &e.hash) else {
                if expect.is_some() {
                    check.problems.push(format!(
                        "entry {}: has no hash, but the chain began before it (inserted or rewritten)",
                        e.id
                    ));
                } else {
                    check.unchained += 1;
                }
                continue;
            };
            check.chained += 1;
            let (Some(prev), Some(hash)) = (unhex(prev), unhex(hash)) else {
                check
                    .problems
                    .push(format!("entry {}: its hashes are damaged", e.id));
                expect = Some([0xff; 32]);
                continue;
            };
            let want_prev = expect.unwrap_or([0u8; 32]);
            if prev != want_prev {
                check.problems.push(format!(
                    "entry {}: does not follow the entry before it (an entry before it was deleted, inserted or changed)",
                    e.id
                ));
            }
            if entry_hash(&prev, &e) != hash {
                check.problems.push(format!(
                    "entry {}: its content does not match its hash (edited)",
                    e.id
                ));
            }
            expect = Some(hash);
            last_id = Some(e.id);
        }
        match (head(self)?, last_id, expect) {
            (None, None, _) => {}
            (Some((id, _)), None, _) => check.problems.push(format!(
                "the chain's head is entry {id}, but no chained entry is left (deleted)"
            )),
            (None, Some(id), _) => check.problems.push(format!(
                "entry {id} is chained but the chain has no head (the head was deleted)"
            )),
            (Some((head_id, head_hash)), Some(id), last) => {
                if head_id != id || last != Some(head_hash) {
                    check.problems.push(format!(
                        "the chain ends at entry {id} but its head is entry {head_id} (the newest entries were deleted or changed)"
                    ));
                }
            }
        }
        Ok(check)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::StoreOptions;

    fn t(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_790_000_000 + s).unwrap()
    }

    fn store_with(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        for i in 0..n {
            store
                .append_audit(t(i as i64), "alice", "proposal", &format!("{{\"n\":{i}}}"))
                .unwrap();
        }
        (dir, store)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (_d, store) = store_with(5);
        let check = store.verify_audit().unwrap();
        assert!(check.ok(), "{check:?}");
        assert_eq!((check.entries, check.chained, check.unchained), (5, 5, 0));
        let log = store.audit().unwrap();
        assert_eq!(log[1].prev, log[0].hash);
        assert_eq!(log[0].prev.as_deref(), Some(&"0".repeat(64)[..]));
    }

    #[test]
    fn the_chain_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            store.append_audit(t(0), "a", "x", "1").unwrap();
        }
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        store.append_audit(t(1), "a", "x", "2").unwrap();
        let check = store.verify_audit().unwrap();
        assert!(check.ok(), "{check:?}");
        assert_eq!(check.chained, 2);
    }

    #[test]
    fn an_edited_entry_is_found() {
        let (_d, store) = store_with(5);
        let mut e = store.audit().unwrap()[2].clone();
        e.detail = "{\"n\":99}".into();
        store
            .audit
            .insert(e.id.to_be_bytes(), encode_entry(&e))
            .unwrap();
        let check = store.verify_audit().unwrap();
        assert_eq!(check.problems.len(), 1, "{check:?}");
        assert!(check.problems[0].contains(&format!("entry {}", e.id)));
        assert!(check.problems[0].contains("edited"));
    }

    #[test]
    fn an_entry_rehashed_after_editing_breaks_the_next_link() {
        let (_d, store) = store_with(5);
        let log = store.audit().unwrap();
        let mut e = log[2].clone();
        e.detail = "{\"n\":99}".into();
        let prev = unhex(e.prev.as_deref().unwrap()).unwrap();
        e.hash = Some(hex(&entry_hash(&prev, &e)));
        store
            .audit
            .insert(e.id.to_be_bytes(), encode_entry(&e))
            .unwrap();
        let check = store.verify_audit().unwrap();
        assert!(!check.ok());
        assert!(check.problems[0].contains(&format!("entry {}", log[3].id)));
    }

    #[test]
    fn a_deleted_entry_is_found_in_the_middle_and_at_either_end() {
        for victim in [0, 2, 4] {
            let (_d, store) = store_with(5);
            let log = store.audit().unwrap();
            store.audit.remove(log[victim].id.to_be_bytes()).unwrap();
            let check = store.verify_audit().unwrap();
            assert!(!check.ok(), "deleting entry {victim} went unnoticed");
        }
    }

    #[test]
    fn old_entries_read_and_the_chain_starts_after_them() {
        let (_d, store) = store_with(0);
        let old = AuditEntry {
            id: 1,
            time: t(0),
            actor: "hedgerow".into(),
            action: "import".into(),
            detail: "old".into(),
            prev: None,
            hash: None,
        };
        store
            .audit
            .insert(1u64.to_be_bytes(), encode_entry(&old))
            .unwrap();
        assert_eq!(store.audit().unwrap(), vec![old]);
        while store.db.generate_id().unwrap() <= 1 {}
        store.append_audit(t(1), "a", "x", "new").unwrap();
        let check = store.verify_audit().unwrap();
        assert!(check.ok(), "{check:?}");
        assert_eq!((check.unchained, check.chained), (1, 1));
        // An unchained entry slipped in after the chain began is a break.
        let late = AuditEntry {
            id: 999,
            detail: "forged".into(),
            ..store.audit().unwrap()[0].clone()
        };
        store
            .audit
            .insert(999u64.to_be_bytes(), encode_entry(&late))
            .unwrap();
        assert!(!store.verify_audit().unwrap().ok());
    }

    #[test]
    fn export_and_import_keep_the_chain() {
        let (_d, store) = store_with(3);
        let mut out = Vec::new();
        store.export(&mut out).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let copy = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        copy.import(&out[..]).unwrap();
        assert_eq!(copy.audit().unwrap(), store.audit().unwrap());
        assert!(copy.verify_audit().unwrap().ok());
        copy.append_audit(t(9), "b", "y", "after import").unwrap();
        assert!(copy.verify_audit().unwrap().ok());
    }
}
