//! Breaches in the `main` database: the breach records, their triggers, the de-duplication
//! keys, the pending-alert marks, and the id counter, each change in one transaction.
//!
//! ```text
//! breaches             id (u64, big-endian)        → [2, breach without triggers, trigger count]
//! breach-triggers      id ‖ n (u32, big-endian)    → [1, trigger]       n = 0, 1, 2… in order seen
//! breach-trigger-keys  id ‖ identity               → n                  (the same request again)
//! breach-keys          device or address ‖ site    → id                 (the open breach)
//! breach-pending       id                          → ()                 (an alert is due)
//! meta                 "breach-next"               → the next id (u64, big-endian)
//! ```
//!
//! Triggers are records of their own so that a breach that gathers many (a pupil trying
//! URL after URL of a blocked site for an hour) costs one small write a request, not a
//! rewrite of everything gathered so far.

use std::time::Duration;

use hedgerow_model::{AccessEvent, Category, Front, Severity, Tier};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::breach::{Breach, Change, Delivery, DeliveryState, Recorded, Trigger};
use crate::store::{IntegrityReport, tx_err};
use crate::wire::{BREACH_FORMAT, FORMAT, decode, encode, encode_as, postcard_value};
use crate::{Store, StoreError};

pub(crate) const BREACHES: &str = "breaches";
pub(crate) const BREACH_KEYS: &str = "breach-keys";
pub(crate) const PENDING: &str = "breach-pending";
pub(crate) const TRIGGERS: &str = "breach-triggers";
pub(crate) const TRIGGER_KEYS: &str = "breach-trigger-keys";
/// The key in `meta` of the next breach id.
const NEXT_ID: &str = "breach-next";

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// A breach record as stored in [`BREACH_FORMAT`]: the breach with an empty trigger list,
/// and how many triggers it has.
#[derive(Serialize, Deserialize)]
struct Record {
    breach: Breach,
    triggers: u32,
}

/// A breach record as read: in [`BREACH_FORMAT`] with its trigger count, or a record from
/// before triggers were kept (`triggers` is None).
struct Head {
    breach: Breach,
    triggers: Option<u32>,
}

/// A breach as [`FORMAT`] stored it, before triggers were kept: read, never written.
#[derive(Serialize, Deserialize)]
pub(crate) struct LegacyBreach {
    id: u64,
    severity: Severity,
    rule: String,
    first: jiff::Timestamp,
    last: jiff::Timestamp,
    count: u64,
    front: Front,
    client: std::net::IpAddr,
    device: Option<String>,
    user: Option<String>,
    group: Option<String>,
    site: String,
    target: String,
    tier: Tier,
    category: Option<Category>,
    list: Option<String>,
    search: Option<String>,
    concern: Option<Severity>,
    reference: Option<u64>,
    deliveries: Vec<LegacyDelivery>,
}

#[derive(Serialize, Deserialize)]
struct LegacyDelivery {
    channel: String,
    state: DeliveryState,
    attempts: u32,
    last_error: Option<String>,
    at: jiff::Timestamp,
}

impl LegacyBreach {
    fn into_breach(self) -> Breach {
        let severity = self.severity;
        Breach {
            id: self.id,
            severity,
            rule: self.rule,
            first: self.first,
            last: self.last,
            count: self.count,
            front: self.front,
            client: self.client,
            device: self.device,
            user: self.user,
            group: self.group,
            site: self.site,
            target: self.target,
            tier: self.tier,
            category: self.category,
            list: self.list,
            search: self.search,
            concern: self.concern,
            reference: self.reference,
            triggers: Vec::new(),
            deliveries: self
                .deliveries
                .into_iter()
                .map(|d| Delivery {
                    channel: d.channel,
                    state: d.state,
                    attempts: d.attempts,
                    last_error: d.last_error,
                    at: d.at,
                    severity: Some(severity),
                })
                .collect(),
        }
    }

    /// `b` as an older build wrote it: for a breach read from such a record, whose alert
    /// state changes, and for tests. Such a breach is never raised, so its deliveries are
    /// all at its one severity.
    pub(crate) fn encode(b: &Breach) -> Vec<u8> {
        let old = LegacyBreach {
            id: b.id,
            severity: b.severity,
            rule: b.rule.clone(),
            first: b.first,
            last: b.last,
            count: b.count,
            front: b.front,
            client: b.client,
            device: b.device.clone(),
            user: b.user.clone(),
            group: b.group.clone(),
            site: b.site.clone(),
            target: b.target.clone(),
            tier: b.tier,
            category: b.category.clone(),
            list: b.list.clone(),
            search: b.search.clone(),
            concern: b.concern,
            reference: b.reference,
            deliveries: b
                .deliveries
                .iter()
                .map(|d| LegacyDelivery {
                    channel: d.channel.clone(),
                    state: d.state,
                    attempts: d.attempts,
                    last_error: d.last_error.clone(),
                    at: d.at,
                })
                .collect(),
        };
        encode(&old)
    }
}

fn decode_head(bytes: &[u8]) -> Result<Head, StoreError> {
    match bytes.split_first() {
        Some((&BREACH_FORMAT, rest)) => {
            let r: Record = postcard_value(BREACHES, rest)?;
            Ok(Head {
                breach: r.breach,
                triggers: Some(r.triggers),
            })
        }
        Some((&FORMAT, _)) => Ok(Head {
            breach: decode::<LegacyBreach>(BREACHES, bytes)?.into_breach(),
            triggers: None,
        }),
        Some((&found, _)) => Err(StoreError::Format {
            tree: BREACHES.into(),
            found,
            expected: BREACH_FORMAT,
        }),
        None => Err(StoreError::Decode {
            tree: BREACHES.into(),
            reason: "empty value".into(),
        }),
    }
}

fn encode_head(b: &Breach, triggers: u32) -> Vec<u8> {
    #[derive(Serialize)]
    struct RecordRef<'a> {
        breach: &'a Breach,
        triggers: u32,
    }
    debug_assert!(b.triggers.is_empty(), "triggers are stored apart");
    encode_as(
        BREACH_FORMAT,
        &RecordRef {
            breach: b,
            triggers,
        },
    )
}

fn trigger_key(id: u64, n: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&n.to_be_bytes());
    k
}

fn trigger_identity_key(id: u64, t: &Trigger) -> Vec<u8> {
    let mut k = id.to_be_bytes().to_vec();
    k.extend_from_slice(&t.identity());
    k
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn u64_of(v: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    if let Some(src) = v.get(..8) {
        b.copy_from_slice(src);
    }
    u64::from_be_bytes(b)
}

fn u32_of(v: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    if let Some(src) = v.get(..4) {
        b.copy_from_slice(src);
    }
    u32::from_be_bytes(b)
}

/// Reads the breach head at `key` inside a transaction.
fn head_in(breaches: &TransactionalTree, key: &[u8]) -> TxResult<Option<Head>> {
    match breaches.get(key)? {
        Some(v) => decode_head(&v).map(Some).map_err(abort),
        None => Ok(None),
    }
}

impl Store {
    /// Sets the breach id counter on a store that has none: after the highest id there is
    /// (breaches of older builds keep theirs), or 1.
    pub(crate) fn init_breach_ids(&self) -> Result<(), StoreError> {
        if self.meta.get(NEXT_ID)?.is_some() {
            return Ok(());
        }
        let next = match self.breaches.last()? {
            Some((k, _)) => u64_of(&k).saturating_add(1),
            None => 1,
        };
        self.meta
            .compare_and_swap(NEXT_ID, None as Option<&[u8]>, Some(&next.to_be_bytes()))?
            .ok();
        Ok(())
    }

    /// Records a breach candidate: a new breach, or a trigger added to the open one for the
    /// same device and site when that was first seen within `window` of this event. The same
    /// request again counts on its trigger. A trigger more severe than the breach raises it
    /// and marks it for alerting again. One transaction; on disk once the store is flushed.
    pub fn record_breach(
        &self,
        event: &AccessEvent,
        severity: Severity,
        rule: &str,
        window: Duration,
    ) -> Result<Recorded, StoreError> {
        let trigger = Trigger::new(event, severity, rule);
        let dedup = Breach::open(0, &trigger, event).dedup_key();
        let window = jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
        let counts = self.main_db().open_tree(crate::counts::BREACH_COUNTS)?;
        let trees = (
            &self.breaches,
            &self.breach_keys,
            &self.pending,
            &self.triggers,
            &self.trigger_keys,
            &self.meta,
            &counts,
        );
        let result = trees
            .transaction(|(breaches, keys, pending, triggers, tkeys, meta, counts)| {
                let open = match keys.get(&dedup)? {
                    Some(id) => head_in(breaches, &id)?,
                    None => None,
                };
                if let Some(Head {
                    breach: mut b,
                    triggers: Some(n),
                }) = open
                    && event.time.duration_since(b.first) <= window
                {
                    b.count += 1;
                    if event.time > b.last {
                        b.last = event.time;
                    }
                    let mut n = n;
                    let ident = trigger_identity_key(b.id, &trigger);
                    match tkeys.get(&ident)? {
                        Some(at) => {
                            let key = trigger_key(b.id, u32_of(&at));
                            let mut t: Trigger = match triggers.get(key)? {
                                Some(v) => decode(TRIGGERS, &v).map_err(abort)?,
                                None => trigger.clone(),
                            };
                            t.seen(event.time);
                            triggers.insert(&key, encode(&t))?;
                        }
                        None => {
                            triggers.insert(&trigger_key(b.id, n), encode(&trigger))?;
                            tkeys.insert(ident, &n.to_be_bytes())?;
                            n += 1;
                        }
                    }
                    let change = if severity > b.severity {
                        crate::counts::add_breach(counts, b.first, b.severity, -1)?;
                        crate::counts::add_breach(counts, b.first, severity, 1)?;
                        b.severity = severity;
                        b.rule = rule.to_owned();
                        for d in &mut b.deliveries {
                            if d.state == DeliveryState::Retrying {
                                d.state = DeliveryState::Superseded;
                            }
                        }
                        pending.insert(&b.id.to_be_bytes(), &[])?;
                        Change::Raise
                    } else {
                        Change::Add
                    };
                    breaches.insert(&b.id.to_be_bytes(), encode_head(&b, n))?;
                    return Ok(Recorded {
                        id: b.id,
                        severity: b.severity,
                        change,
                    });
                }
                let id = meta.get(NEXT_ID)?.map_or(1, |v| u64_of(&v));
                meta.insert(NEXT_ID, &id.saturating_add(1).to_be_bytes())?;
                let b = Breach::open(id, &trigger, event);
                let key = id.to_be_bytes();
                breaches.insert(&key, encode_head(&b, 1))?;
                triggers.insert(&trigger_key(id, 0), encode(&trigger))?;
                tkeys.insert(trigger_identity_key(id, &trigger), &0u32.to_be_bytes())?;
                keys.insert(dedup.as_slice(), &key)?;
                pending.insert(&key, &[])?;
                crate::counts::add_breach(counts, b.first, b.severity, 1)?;
                Ok(Recorded {
                    id,
                    severity,
                    change: Change::Open,
                })
            })
            .map_err(tx_err)?;
        Ok(result)
    }

    /// A breach with its triggers.
    fn full(&self, head: Head) -> Result<Breach, StoreError> {
        let Head {
            mut breach,
            triggers,
        } = head;
        breach.triggers = match triggers {
            None => vec![breach.only_trigger()],
            Some(_) => self
                .triggers
                .scan_prefix(breach.id.to_be_bytes())
                .values()
                .map(|v| decode(TRIGGERS, &v?))
                .collect::<Result<_, _>>()?,
        };
        Ok(breach)
    }

    /// Breaches, newest first, at most `limit`, optionally only those at or above `min`.
    pub fn breaches(&self, min: Option<Severity>, limit: usize) -> Result<Vec<Breach>, StoreError> {
        let mut out = Vec::new();
        for item in self.breaches.iter().rev() {
            if out.len() >= limit {
                break;
            }
            let (_, v) = item?;
            let head = decode_head(&v)?;
            if min.is_none_or(|m| head.breach.severity >= m) {
                out.push(self.full(head)?);
            }
        }
        Ok(out)
    }

    /// Every breach without its triggers, newest first, each with how many distinct
    /// triggers it holds: what a list of breaches shows, read without the triggers (a
    /// breach may hold thousands), so an inbox over thousands of breaches reads each record
    /// once.
    pub fn breach_heads(&self) -> impl Iterator<Item = Result<(Breach, u32), StoreError>> + '_ {
        self.breaches.iter().rev().map(|item| {
            let (_, v) = item?;
            let head = decode_head(&v)?;
            Ok((head.breach, head.triggers.unwrap_or(1)))
        })
    }

    /// Breaches seen in `[from, to)` (first seen before `to`, last seen at or after
    /// `from`), oldest first: what a digest covering that time reports, including breaches
    /// that gathered triggers since an earlier digest.
    pub fn breaches_between(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<Breach>, StoreError> {
        let mut out = Vec::new();
        for item in self.breaches.iter() {
            let (_, v) = item?;
            let head = decode_head(&v)?;
            if head.breach.last >= from && head.breach.first < to {
                out.push(self.full(head)?);
            }
        }
        Ok(out)
    }

    /// The breach with `id`, with its triggers.
    pub fn breach(&self, id: u64) -> Result<Breach, StoreError> {
        let v = self
            .breaches
            .get(id.to_be_bytes())?
            .ok_or(StoreError::NoBreach(id))?;
        self.full(decode_head(&v)?)
    }

    /// Breaches whose alerts are not finished, oldest first.
    pub fn pending_alerts(&self) -> Result<Vec<Breach>, StoreError> {
        let mut out = Vec::new();
        for item in self.pending.iter().keys() {
            let k = item?;
            if let Some(v) = self.breaches.get(&k)? {
                out.push(self.full(decode_head(&v)?)?);
            }
        }
        Ok(out)
    }

    /// Records how delivery went on one channel, replacing the record for that channel at
    /// the same severity; `done` takes the breach off the pending list unless a more severe
    /// trigger has raised it since. On disk when this returns.
    pub fn set_delivery(&self, id: u64, delivery: Delivery, done: bool) -> Result<(), StoreError> {
        let key = id.to_be_bytes();
        (&self.breaches, &self.pending)
            .transaction(|(breaches, pending)| {
                let Some(Head {
                    breach: mut b,
                    triggers,
                }) = head_in(breaches, &key)?
                else {
                    return Err(abort(StoreError::NoBreach(id)));
                };
                let current = b.severity;
                let at = delivery.severity.unwrap_or(current);
                b.deliveries.retain(|d| {
                    d.channel != delivery.channel || d.severity.unwrap_or(current) != at
                });
                b.deliveries.push(delivery.clone());
                let value = match triggers {
                    Some(n) => encode_head(&b, n),
                    None => LegacyBreach::encode(&b),
                };
                breaches.insert(&key, value)?;
                if done && at >= current {
                    pending.remove(&key)?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush()
    }

    /// Takes a breach off the pending list without recording a delivery (the digest will
    /// cover it), unless a trigger has raised it above `at` since it was read.
    pub fn clear_pending(&self, id: u64, at: Severity) -> Result<(), StoreError> {
        let key = id.to_be_bytes();
        (&self.breaches, &self.pending)
            .transaction(|(breaches, pending)| {
                let raised = head_in(breaches, &key)?.is_some_and(|h| h.breach.severity > at);
                if !raised {
                    pending.remove(&key)?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        Ok(())
    }

    /// Removes breaches last seen before `cutoff`, with their triggers and keys. Returns how
    /// many went.
    pub(crate) fn purge_breaches(&self, cutoff: jiff::Timestamp) -> Result<usize, StoreError> {
        let mut old = Vec::new();
        for item in self.breaches.iter() {
            let (k, v) = item?;
            let b = decode_head(&v)?.breach;
            if b.last < cutoff {
                old.push((k, b.dedup_key(), b.legacy_dedup_key(), b.first, b.severity));
            }
        }
        let counts = self.main_db().open_tree(crate::counts::BREACH_COUNTS)?;
        for (k, dedup, legacy, first, severity) in &old {
            let triggers: Vec<sled::IVec> = self
                .triggers
                .scan_prefix(k)
                .keys()
                .collect::<Result<_, _>>()?;
            let tkeys: Vec<sled::IVec> = self
                .trigger_keys
                .scan_prefix(k)
                .keys()
                .collect::<Result<_, _>>()?;
            (
                &self.breaches,
                &self.breach_keys,
                &self.pending,
                &self.triggers,
                &self.trigger_keys,
                &counts,
            )
                .transaction(|(breaches, keys, pending, trig, tk, counts)| {
                    if breaches.remove(k)?.is_some() {
                        crate::counts::add_breach(counts, *first, *severity, -1)?;
                    }
                    pending.remove(k)?;
                    for d in [dedup, legacy] {
                        if keys.get(d)?.as_deref() == Some(k.as_ref()) {
                            keys.remove(d.as_slice())?;
                        }
                    }
                    for t in &triggers {
                        trig.remove(t)?;
                    }
                    for t in &tkeys {
                        tk.remove(t)?;
                    }
                    Ok::<_, ConflictableTransactionError<StoreError>>(())
                })
                .map_err(tx_err)?;
            self.purge_case(k)?;
        }
        Ok(old.len())
    }

    /// The breach half of [`Store::check_integrity`]: every record reads, every breach has
    /// the triggers it counts, every key points at what it names.
    pub(crate) fn check_breaches(&self, r: &mut IntegrityReport) -> Result<(), StoreError> {
        for item in self.breaches.iter() {
            let (k, v) = item?;
            let head = decode_head(&v)?;
            r.breaches += 1;
            let id = head.breach.id;
            if k.as_ref() != id.to_be_bytes() {
                r.problems
                    .push(format!("breach {id} is stored under another id"));
            }
            let stored = self.triggers.scan_prefix(k.as_ref()).count();
            let expected = head.triggers.unwrap_or(0) as usize;
            if stored != expected {
                r.problems.push(format!(
                    "breach {id} counts {expected} triggers but {stored} are stored"
                ));
            }
        }
        for item in self.triggers.iter() {
            let (k, v) = item?;
            let id = u64_of(&k);
            let t: Trigger = decode(TRIGGERS, &v)?;
            if !self.breaches.contains_key(id.to_be_bytes())? {
                r.problems
                    .push(format!("a trigger points at breach {id}, which is missing"));
            }
            let n = self.trigger_keys.get(trigger_identity_key(id, &t))?;
            if n.as_deref().map(u32_of) != k.get(8..12).map(u32_of) {
                r.problems.push(format!(
                    "a trigger of breach {id} is not found by its identity"
                ));
            }
        }
        for item in self.breach_keys.iter() {
            let (k, id) = item?;
            match self.breaches.get(&id)? {
                Some(v) => {
                    let b = decode_head(&v)?.breach;
                    if b.dedup_key() != k.as_ref() && b.legacy_dedup_key() != k.as_ref() {
                        r.problems.push(format!(
                            "de-duplication key for breach {} does not match it",
                            b.id
                        ));
                    }
                }
                None => r
                    .problems
                    .push("a de-duplication key points at a missing breach".into()),
            }
        }
        for item in self.pending.iter().keys() {
            if self.breaches.get(item?)?.is_none() {
                r.problems
                    .push("a pending alert points at a missing breach".into());
            }
        }
        Ok(())
    }

    /// Every breach with its triggers, oldest first (for export).
    pub(crate) fn for_each_breach(
        &self,
        mut f: impl FnMut(Breach) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self.breaches.iter().values() {
            let b = self.full(decode_head(&item?)?)?;
            f(b)?;
        }
        Ok(())
    }

    /// Every breach without its triggers, oldest first (for counts).
    pub(crate) fn for_each_breach_head(
        &self,
        mut f: impl FnMut(Breach) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for item in self.breaches.iter().values() {
            f(decode_head(&item?)?.breach)?;
        }
        Ok(())
    }

    /// Puts an exported breach back as it was, id, triggers and all (for import). A breach
    /// exported by an older build, with no trigger list, gets its first request as its one.
    pub(crate) fn put_breach(&self, b: &Breach, pending: bool) -> Result<(), StoreError> {
        let key = b.id.to_be_bytes();
        let mut head = b.clone();
        let triggers = match std::mem::take(&mut head.triggers) {
            t if t.is_empty() => vec![head.only_trigger()],
            t => t,
        };
        let n = u32::try_from(triggers.len()).unwrap_or(u32::MAX);
        let value = encode_head(&head, n);
        let dedup = head.dedup_key();
        let counts = self.main_db().open_tree(crate::counts::BREACH_COUNTS)?;
        let trees = (
            &self.breaches,
            &self.breach_keys,
            &self.pending,
            &self.triggers,
            &self.trigger_keys,
            &self.meta,
            &counts,
        );
        trees
            .transaction(|(breaches, keys, p, trig, tk, meta, counts)| {
                if let Some(old) = breaches.insert(&key, value.as_slice())? {
                    let old = decode_head(&old).map_err(abort)?.breach;
                    crate::counts::add_breach(counts, old.first, old.severity, -1)?;
                }
                crate::counts::add_breach(counts, head.first, head.severity, 1)?;
                keys.insert(dedup.as_slice(), &key)?;
                if pending {
                    p.insert(&key, &[])?;
                }
                for (i, t) in triggers.iter().enumerate() {
                    let i = u32::try_from(i).unwrap_or(u32::MAX);
                    trig.insert(&trigger_key(b.id, i), encode(t))?;
                    tk.insert(trigger_identity_key(b.id, t), &i.to_be_bytes())?;
                }
                // Ids handed out later follow the imported ones.
                let next = meta.get(NEXT_ID)?.map_or(1, |v| u64_of(&v));
                if next <= b.id {
                    meta.insert(NEXT_ID, &b.id.saturating_add(1).to_be_bytes())?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_err)?;
        Ok(())
    }

    pub(crate) fn is_pending(&self, id: u64) -> Result<bool, StoreError> {
        Ok(self.pending.contains_key(id.to_be_bytes())?)
    }

    /// Writes `b` as a build from before triggers were kept wrote it (for tests).
    #[cfg(test)]
    pub(crate) fn put_legacy_breach(&self, b: &Breach) -> Result<(), StoreError> {
        let key = b.id.to_be_bytes();
        self.breaches.insert(key, LegacyBreach::encode(b))?;
        self.breach_keys.insert(b.legacy_dedup_key(), &key)?;
        self.pending.insert(key, &[])?;
        // Its counters as opening the store builds them for breaches of older builds.
        self.rebuild_breach_counts()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use hedgerow_model::{Action, Outcome};

    use super::*;
    use crate::StoreOptions;

    fn blocked(t: &str, device: &str, target: &str) -> AccessEvent {
        let mut e = AccessEvent::new(
            t.parse().unwrap(),
            Front::Dns,
            "10.0.0.7".parse().unwrap(),
            target.into(),
        );
        e.device = Some(Arc::from(device));
        e.action = Action::Block;
        e.outcome = Outcome::Blocked;
        e.tier = Tier::Category;
        e.category = Some(Category::new("gambling").unwrap());
        e
    }

    #[test]
    fn a_breach_written_by_an_older_build_reads_with_its_one_trigger() {
        let dir = tempfile::tempdir().unwrap();
        let ev = blocked("2026-11-02T10:00:00Z", "pc-1", "bet.example");
        let mut old = Breach::open(
            1_000_001,
            &Trigger::new(&ev, Severity::High, "gambling"),
            &ev,
        );
        old.count = 3;
        old.last = "2026-11-02T10:20:00Z".parse().unwrap();
        {
            let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
            // A store as an older build left it: a breach id from sled's id generator, and
            // no id counter yet.
            store.put_legacy_breach(&old).unwrap();
            store.meta.remove(NEXT_ID).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let b = store.breach(1_000_001).unwrap();
        assert_eq!(b.triggers.len(), 1);
        let t = &b.triggers[0];
        assert_eq!((t.target.as_str(), t.count), ("bet.example", 3));
        assert_eq!((t.time, t.last), (old.first, old.last));
        assert_eq!(store.pending_alerts().unwrap().len(), 1);
        assert!(store.check_integrity().unwrap().problems.is_empty());

        // New breaches follow the old ids without colliding, and the old one's alert state
        // can still be recorded.
        let next = store
            .record_breach(
                &blocked("2026-11-02T10:30:00Z", "pc-2", "bet.example"),
                Severity::High,
                "gambling",
                Duration::from_secs(3600),
            )
            .unwrap();
        assert_eq!(next.id, 1_000_002);
        let d = Delivery {
            channel: "webhook".into(),
            state: DeliveryState::Sent,
            attempts: 1,
            last_error: None,
            at: old.last,
            severity: Some(Severity::High),
        };
        store.set_delivery(1_000_001, d, true).unwrap();
        let b = store.breach(1_000_001).unwrap();
        assert_eq!(b.triggers.len(), 1);
        assert_eq!(b.delivery("webhook").unwrap().state, DeliveryState::Sent);
        let report = store.check_integrity().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);

        // The purge takes it with its old-style key.
        let removed = store
            .purge_breaches("2026-11-03T00:00:00Z".parse().unwrap())
            .unwrap();
        assert_eq!(removed, 2);
        let report = store.check_integrity().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(store.breach_keys.len(), 0);
    }
}
