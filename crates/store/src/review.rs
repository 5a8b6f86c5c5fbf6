//! Review requests: a pupil or teacher who thinks a block is wrong asks for a review from the
//! block page, and the school's IT staff decide it. Until the console exists, `hedgerow
//! reviews` and the console list and decide them (declined with a note, or turned into a
//! change request that is linked here); the requester looks the status up on the block page
//! server by the block's reference.
//!
//! Stored in the `reviews` tree of the main database, keyed by the block page reference (one
//! request per block: a second request for the same reference gets the first back), each
//! value a format byte then postcard, like every other value (format 2 links the change request
//! a request was turned into; format 1 records, from before, still read). An illegal-tier request holds
//! the protected rule (`[protected entry] #ref`) as its target, never the address. Exported
//! and imported with the rest of the store.

use std::net::IpAddr;

use hedgerow_model::{Category, Tier};
use serde::{Deserialize, Serialize};

use crate::wire::{decode, encode_as, postcard_value};
use crate::{Store, StoreError};

const REVIEWS: &str = "reviews";

/// Where a review request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReviewStatus {
    /// Waiting for the school's IT staff.
    Pending,
    /// The site will be (or has been) unblocked.
    Approved,
    /// The block stays.
    Declined,
    /// A change request to allow the site was raised (`change`); it waits for approval.
    /// (Last: stored records keep their variant numbers.)
    ChangeRequested,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Declined => "declined",
            ReviewStatus::ChangeRequested => "change-requested",
        }
    }
}

impl std::fmt::Display for ReviewStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One review request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewRequest {
    /// The block page reference (the access event's `reference`).
    pub reference: u64,
    /// When the request was made.
    pub asked: jiff::Timestamp,
    /// When the block happened, when known.
    pub blocked: Option<jiff::Timestamp>,
    pub client: IpAddr,
    pub device: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// The host or URL blocked; `[protected entry] #ref` for the illegal tier.
    pub target: String,
    pub tier: Tier,
    pub category: Option<Category>,
    pub rule: Option<String>,
    /// Why the requester needs the page, in their words.
    pub reason: String,
    /// The requester's name, if they gave one.
    pub name: Option<String>,
    pub status: ReviewStatus,
    pub decided: Option<jiff::Timestamp>,
    pub decided_by: Option<String>,
    /// What the school says back; the requester sees it with the status.
    pub note: Option<String>,
    /// The change request the request was turned into.
    #[serde(default)]
    pub change: Option<u64>,
}

/// A review request as format 1 stored it, before requests could link a change request:
/// read, never written.
#[derive(Deserialize)]
struct ReviewV1 {
    reference: u64,
    asked: jiff::Timestamp,
    blocked: Option<jiff::Timestamp>,
    client: IpAddr,
    device: Option<String>,
    user: Option<String>,
    group: Option<String>,
    target: String,
    tier: Tier,
    category: Option<Category>,
    rule: Option<String>,
    reason: String,
    name: Option<String>,
    status: ReviewStatus,
    decided: Option<jiff::Timestamp>,
    decided_by: Option<String>,
    note: Option<String>,
}

/// The format review requests are written in: format 1 with the linked change request.
const REVIEW_FORMAT: u8 = 2;

fn encode_review(r: &ReviewRequest) -> Vec<u8> {
    encode_as(REVIEW_FORMAT, r)
}

fn decode_review(bytes: &[u8]) -> Result<ReviewRequest, StoreError> {
    match bytes.split_first() {
        Some((&REVIEW_FORMAT, rest)) => postcard_value(REVIEWS, rest),
        _ => {
            let o: ReviewV1 = decode(REVIEWS, bytes)?;
            Ok(ReviewRequest {
                reference: o.reference,
                asked: o.asked,
                blocked: o.blocked,
                client: o.client,
                device: o.device,
                user: o.user,
                group: o.group,
                target: o.target,
                tier: o.tier,
                category: o.category,
                rule: o.rule,
                reason: o.reason,
                name: o.name,
                status: o.status,
                decided: o.decided,
                decided_by: o.decided_by,
                note: o.note,
                change: None,
            })
        }
    }
}

/// Why a review could not be decided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    #[error("no review request with reference {0:016x}")]
    NotFound(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    fn reviews_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.main_db().open_tree(REVIEWS)?)
    }

    /// Stores a new review request, unless one for the same reference exists: then that one
    /// is returned unchanged, with `false`. On disk when this returns.
    pub fn add_review(&self, r: &ReviewRequest) -> Result<(ReviewRequest, bool), StoreError> {
        let tree = self.reviews_tree()?;
        let key = r.reference.to_be_bytes();
        let added = tree
            .compare_and_swap(key, None as Option<&[u8]>, Some(encode_review(r)))?
            .is_ok();
        self.main_db().flush()?;
        if added {
            return Ok((r.clone(), true));
        }
        let existing = self.review(r.reference)?;
        Ok((existing.unwrap_or_else(|| r.clone()), false))
    }

    /// The review request with this reference.
    pub fn review(&self, reference: u64) -> Result<Option<ReviewRequest>, StoreError> {
        self.reviews_tree()?
            .get(reference.to_be_bytes())?
            .map(|v| decode_review(&v))
            .transpose()
    }

    /// Review requests, newest first, at most `limit`, optionally only those in `status`.
    pub fn reviews(
        &self,
        status: Option<ReviewStatus>,
        limit: usize,
    ) -> Result<Vec<ReviewRequest>, StoreError> {
        let mut out: Vec<ReviewRequest> = Vec::new();
        for item in self.reviews_tree()?.iter().values() {
            let r = decode_review(&item?)?;
            if status.is_none_or(|s| r.status == s) {
                out.push(r);
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.asked));
        out.truncate(limit);
        Ok(out)
    }

    /// Decides a review request and records the decision in the audit log. On disk when
    /// this returns.
    pub fn decide_review(
        &self,
        reference: u64,
        status: ReviewStatus,
        by: &str,
        note: Option<&str>,
        now: jiff::Timestamp,
    ) -> Result<ReviewRequest, ReviewError> {
        self.decide_review_with(reference, status, by, note, None, now)
    }

    /// As [`Self::decide_review`], linking the change request it was turned into (kept when
    /// `change` is none).
    pub fn decide_review_with(
        &self,
        reference: u64,
        status: ReviewStatus,
        by: &str,
        note: Option<&str>,
        change: Option<u64>,
        now: jiff::Timestamp,
    ) -> Result<ReviewRequest, ReviewError> {
        let tree = self.reviews_tree()?;
        let key = reference.to_be_bytes();
        let Some(old) = tree.get(key).map_err(StoreError::from)? else {
            return Err(ReviewError::NotFound(reference));
        };
        let mut r = decode_review(&old)?;
        r.status = status;
        r.decided = Some(now);
        r.decided_by = Some(by.to_owned());
        r.note = note.map(str::to_owned);
        if change.is_some() {
            r.change = change;
        }
        tree.insert(key, encode_review(&r))
            .map_err(StoreError::from)?;
        // Not the address asked for: it may carry a pupil's search, and governors read the
        // audit log. The reference finds the request.
        let detail = format!(
            "{{\"reference\":\"{reference:016x}\",\"status\":\"{status}\",\"change\":{}}}",
            r.change
                .map_or_else(|| "null".to_owned(), |c| c.to_string())
        );
        self.append_audit(now, by, "review", &detail)?;
        Ok(r)
    }

    /// Removes review requests asked before `cutoff` (the breach retention: a request holds
    /// a device, a name and a reason). Returns how many went.
    pub(crate) fn purge_reviews(&self, cutoff: jiff::Timestamp) -> Result<usize, StoreError> {
        let tree = self.reviews_tree()?;
        let mut old = Vec::new();
        for item in tree.iter() {
            let (k, v) = item?;
            let r = decode_review(&v)?;
            if r.asked < cutoff {
                old.push(k);
            }
        }
        for k in &old {
            tree.remove(k)?;
        }
        Ok(old.len())
    }

    /// Every review request, oldest first (for export).
    pub(crate) fn all_reviews(&self) -> Result<Vec<ReviewRequest>, StoreError> {
        let mut all = self.reviews(None, usize::MAX)?;
        all.reverse();
        Ok(all)
    }

    /// Puts an exported review request back as it was (for import).
    pub(crate) fn put_review(&self, r: &ReviewRequest) -> Result<(), StoreError> {
        self.reviews_tree()?
            .insert(r.reference.to_be_bytes(), encode_review(r))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::StoreOptions;

    fn request(reference: u64, asked: i64) -> ReviewRequest {
        ReviewRequest {
            reference,
            asked: jiff::Timestamp::from_second(asked).unwrap(),
            blocked: None,
            client: [10, 10, 0, 7].into(),
            device: None,
            user: None,
            group: Some("early".into()),
            target: "games.example".into(),
            tier: Tier::NotApproved,
            category: None,
            rule: Some("not on the approved list".into()),
            reason: "our topic this week".into(),
            name: Some("Class 1".into()),
            status: ReviewStatus::Pending,
            decided: None,
            decided_by: None,
            note: None,
            change: None,
        }
    }

    #[test]
    fn requests_are_stored_once_listed_decided_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        {
            let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            let (r, added) = store.add_review(&request(7, 100)).unwrap();
            assert!(added);
            assert_eq!(r.reference, 7);
            // A second request for the same block gets the first back.
            let mut again = request(7, 200);
            again.reason = "other words".into();
            let (r, added) = store.add_review(&again).unwrap();
            assert!(!added);
            assert_eq!(r.reason, "our topic this week");
            store.add_review(&request(8, 300)).unwrap();
            let listed: Vec<u64> = store
                .reviews(None, 10)
                .unwrap()
                .iter()
                .map(|r| r.reference)
                .collect();
            assert_eq!(listed, [8, 7], "newest first");
            let d = store
                .decide_review(7, ReviewStatus::Approved, "it.tech", Some("added"), now)
                .unwrap();
            assert_eq!(d.status, ReviewStatus::Approved);
            assert!(matches!(
                store.decide_review(9, ReviewStatus::Declined, "it.tech", None, now),
                Err(ReviewError::NotFound(9))
            ));
            let pending: Vec<u64> = store
                .reviews(Some(ReviewStatus::Pending), 10)
                .unwrap()
                .iter()
                .map(|r| r.reference)
                .collect();
            assert_eq!(pending, [8]);
            let audit = store.audit().unwrap();
            assert!(audit.iter().any(|a| a.action == "review"
                && a.actor == "it.tech"
                && a.detail.contains("0000000000000007")));
        }
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let r = store.review(7).unwrap().unwrap();
        assert_eq!(
            (r.status, r.note.as_deref()),
            (ReviewStatus::Approved, Some("added"))
        );
        assert!(store.review(9).unwrap().is_none());
    }

    #[test]
    fn format_1_requests_still_read_and_a_linked_change_is_kept() {
        #[derive(Serialize)]
        struct V1<'a> {
            reference: u64,
            asked: jiff::Timestamp,
            blocked: Option<jiff::Timestamp>,
            client: IpAddr,
            device: Option<String>,
            user: Option<String>,
            group: Option<String>,
            target: &'a str,
            tier: Tier,
            category: Option<Category>,
            rule: Option<String>,
            reason: &'a str,
            name: Option<String>,
            status: ReviewStatus,
            decided: Option<jiff::Timestamp>,
            decided_by: Option<String>,
            note: Option<String>,
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let r = request(5, 100);
        let old = V1 {
            reference: 5,
            asked: r.asked,
            blocked: None,
            client: r.client,
            device: None,
            user: None,
            group: r.group.clone(),
            target: &r.target,
            tier: r.tier,
            category: None,
            rule: r.rule.clone(),
            reason: &r.reason,
            name: r.name.clone(),
            status: ReviewStatus::Pending,
            decided: None,
            decided_by: None,
            note: None,
        };
        store
            .reviews_tree()
            .unwrap()
            .insert(5u64.to_be_bytes(), crate::wire::encode(&old))
            .unwrap();
        assert_eq!(store.review(5).unwrap(), Some(r));
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let d = store
            .decide_review_with(
                5,
                ReviewStatus::ChangeRequested,
                "dsl",
                Some("#12"),
                Some(12),
                now,
            )
            .unwrap();
        assert_eq!(
            (d.status, d.change),
            (ReviewStatus::ChangeRequested, Some(12))
        );
        // a later decision keeps the link
        store
            .decide_review(5, ReviewStatus::Approved, "dsl", Some("applied"), now)
            .unwrap();
        let r = store.review(5).unwrap().unwrap();
        assert_eq!((r.status, r.change), (ReviewStatus::Approved, Some(12)));
        assert_eq!(r.status.as_str(), "approved");
    }

    #[test]
    fn requests_older_than_the_breach_retention_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let day = 86_400;
        store.add_review(&request(1, 1_800_000_000)).unwrap();
        store
            .add_review(&request(2, 1_800_000_000 + 10 * day))
            .unwrap();
        let now = jiff::Timestamp::from_second(1_800_000_000 + 15 * day).unwrap();
        let keep = crate::Retention {
            access: std::time::Duration::from_secs(90 * day as u64),
            breaches: std::time::Duration::from_secs(7 * day as u64),
        };
        let report = store.purge(now, keep).unwrap();
        assert_eq!(report.reviews_removed, 1);
        assert!(store.review(1).unwrap().is_none());
        assert!(store.review(2).unwrap().is_some(), "a newer request stays");
    }

    #[test]
    fn requests_go_out_with_an_export_and_come_back_with_an_import() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a"), &StoreOptions::default()).unwrap();
        store.add_review(&request(7, 100)).unwrap();
        let mut out = Vec::new();
        let n = store.export(&mut out).unwrap();
        assert_eq!(n.reviews, 1);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("\"kind\":\"review\""), "{text}");
        let other = Store::open(&dir.path().join("b"), &StoreOptions::default()).unwrap();
        assert!(other.review(7).unwrap().is_none());
        let n = other.import(out.as_slice()).unwrap();
        assert_eq!(n.reviews, 1);
        assert_eq!(other.review(7).unwrap(), Some(request(7, 100)));
    }
}
