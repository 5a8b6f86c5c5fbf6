//! Records of the admin crate (accounts, change requests, the reviewed configuration) in the
//! main database. The values are opaque here: the admin crate writes and versions them.

use crate::{Store, StoreError};

/// A tree of admin records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminTree {
    /// Accounts, by name (password and token hashes included; exported as hashes, never in
    /// clear).
    Accounts,
    /// Change requests, by id (big-endian).
    Changes,
    /// What the configuration files held when last reviewed, by path.
    Reviewed,
    /// The check log: effectiveness checks, by id (big-endian).
    Checks,
    /// Out-of-cycle review triggers, by id (big-endian).
    Triggers,
    /// The DSL's case on each breach (status, assignment, outcome, linked change), by breach
    /// id (big-endian).
    Cases,
    /// Notes on cases, by breach id and note number (both big-endian).
    CaseNotes,
    /// Staff reports of unsuitable sites, by id (big-endian).
    SiteReports,
}

impl AdminTree {
    pub const ALL: [AdminTree; 8] = [
        Self::Accounts,
        Self::Changes,
        Self::Reviewed,
        Self::Checks,
        Self::Triggers,
        Self::Cases,
        Self::CaseNotes,
        Self::SiteReports,
    ];

    /// The tree's name in an export.
    pub(crate) fn export_name(self) -> &'static str {
        match self {
            Self::Accounts => "accounts",
            Self::Changes => "changes",
            Self::Reviewed => "reviewed",
            Self::Checks => "checks",
            Self::Triggers => "triggers",
            Self::Cases => "cases",
            Self::CaseNotes => "case-notes",
            Self::SiteReports => "site-reports",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Accounts => "admin-accounts",
            Self::Changes => "admin-changes",
            Self::Reviewed => "admin-reviewed",
            Self::Checks => "admin-checks",
            Self::Triggers => "admin-triggers",
            Self::Cases => "admin-cases",
            Self::CaseNotes => "admin-case-notes",
            Self::SiteReports => "admin-site-reports",
        }
    }
}

/// A record's key and value.
pub type AdminRecord = (Vec<u8>, Vec<u8>);

impl Store {
    pub fn admin_get(&self, tree: AdminTree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .open_tree(tree.name())?
            .get(key)?
            .map(|v| v.to_vec()))
    }

    /// Writes a record; on disk when this returns.
    pub fn admin_put(&self, tree: AdminTree, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db.open_tree(tree.name())?.insert(key, value)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn admin_remove(&self, tree: AdminTree, key: &[u8]) -> Result<(), StoreError> {
        self.db.open_tree(tree.name())?.remove(key)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every record of a tree, in key order.
    pub fn admin_list(&self, tree: AdminTree) -> Result<Vec<AdminRecord>, StoreError> {
        self.db
            .open_tree(tree.name())?
            .iter()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into))
            .collect()
    }

    /// The records of a tree whose keys start with `prefix`, in key order.
    pub fn admin_scan(
        &self,
        tree: AdminTree,
        prefix: &[u8],
    ) -> Result<Vec<AdminRecord>, StoreError> {
        self.db
            .open_tree(tree.name())?
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into))
            .collect()
    }

    /// Removes the case the admin crate keeps on breach `id` (its key: `id` big-endian) and
    /// its notes (keys starting with it), when the breach itself goes at retention: they
    /// hold what was done about a pupil and go with the breach.
    pub(crate) fn purge_case(&self, id: &[u8]) -> Result<(), StoreError> {
        self.db.open_tree(AdminTree::Cases.name())?.remove(id)?;
        let notes = self.db.open_tree(AdminTree::CaseNotes.name())?;
        let keys: Vec<sled::IVec> = notes.scan_prefix(id).keys().collect::<Result<_, _>>()?;
        for k in keys {
            notes.remove(k)?;
        }
        Ok(())
    }

    /// The key after the last record of `tree` (keys are big-endian ids): 1 in an empty tree.
    pub fn admin_next_seq(&self, tree: AdminTree) -> Result<u64, StoreError> {
        let last = self
            .db
            .open_tree(tree.name())?
            .last()?
            .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok())
            .map(u64::from_be_bytes);
        Ok(last.map_or(1, |l| l + 1))
    }

    /// A new id, unique in this store.
    pub fn admin_next_id(&self) -> Result<u64, StoreError> {
        let id = self.db.generate_id()?;
        // After an import, the imported change requests' ids are taken.
        let last = self
            .db
            .open_tree(AdminTree::Changes.name())?
            .last()?
            .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok())
            .map(u64::from_be_bytes);
        Ok(match last {
            Some(l) if l >= id => l + 1,
            _ => id,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use hedgerow_model::{AccessEvent, Front, Severity, Tier};

    use crate::{Retention, Store, StoreOptions};

    use super::AdminTree;

    #[test]
    fn a_breach_purged_at_retention_takes_its_case_and_notes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let day = 86_400;
        let breach = |device: &str, at: i64| {
            let mut e = AccessEvent::new(
                jiff::Timestamp::from_second(at).unwrap(),
                Front::Dns,
                [10, 0, 0, 7].into(),
                "bad.example".into(),
            );
            e.device = Some(device.into());
            e.tier = Tier::Category;
            store
                .record_breach(&e, Severity::High, "r", Duration::from_secs(3600))
                .unwrap()
                .id
        };
        let old = breach("PC-1", 1_800_000_000);
        let new = breach("PC-2", 1_800_000_000 + 10 * day);
        for id in [old, new] {
            let k = id.to_be_bytes();
            store.admin_put(AdminTree::Cases, &k, b"case").unwrap();
            for n in 0u32..2 {
                let mut nk = k.to_vec();
                nk.extend_from_slice(&n.to_be_bytes());
                store.admin_put(AdminTree::CaseNotes, &nk, b"note").unwrap();
            }
        }
        let keep = Retention {
            access: Duration::from_secs(90 * day as u64),
            breaches: Duration::from_secs(7 * day as u64),
        };
        let now = jiff::Timestamp::from_second(1_800_000_000 + 15 * day).unwrap();
        assert_eq!(store.purge(now, keep).unwrap().breaches_removed, 1);
        assert!(
            store
                .admin_get(AdminTree::Cases, &old.to_be_bytes())
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .admin_scan(AdminTree::CaseNotes, &old.to_be_bytes())
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .admin_get(AdminTree::Cases, &new.to_be_bytes())
                .unwrap()
                .is_some()
        );
        assert_eq!(
            store
                .admin_scan(AdminTree::CaseNotes, &new.to_be_bytes())
                .unwrap()
                .len(),
            2
        );
    }
}
