//! The answer cache: positive and negative answers, held for their TTL clamped to the
//! configured minimum and maximum, keyed by name, type and the DNSSEC-OK bit.

use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::time::Instant;

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    /// Lower-case presentation form, with the trailing dot.
    pub(crate) name: Box<str>,
    pub(crate) qtype: RecordType,
    pub(crate) dnssec_ok: bool,
}

pub(crate) struct Entry {
    pub(crate) rcode: ResponseCode,
    pub(crate) answers: Vec<Record>,
    pub(crate) authorities: Vec<Record>,
    stored: Instant,
    ttl: Duration,
}

impl Entry {
    /// The records with their TTLs reduced by the time spent in the cache, or `None` once it
    /// has expired.
    pub(crate) fn fresh(&self, now: Instant) -> Option<(Vec<Record>, Vec<Record>)> {
        let age = now.saturating_duration_since(self.stored);
        if age >= self.ttl {
            return None;
        }
        let left = u32::try_from((self.ttl - age).as_secs()).unwrap_or(u32::MAX);
        let age_s = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        let adjust = |records: &[Record]| {
            records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.saturating_sub(age_s).min(left).max(1);
                    r
                })
                .collect()
        };
        Some((adjust(&self.answers), adjust(&self.authorities)))
    }
}

pub(crate) struct Limits {
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) negative_ttl: Duration,
}

pub(crate) struct Cache {
    inner: quick_cache::sync::Cache<Key, Arc<Entry>>,
}

impl Cache {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            inner: quick_cache::sync::Cache::new(size.max(16)),
        }
    }

    pub(crate) fn get(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let e = self.inner.get(key)?;
        if now.saturating_duration_since(e.stored) >= e.ttl {
            self.inner.remove(key);
            return None;
        }
        Some(e)
    }

    /// Stores an upstream answer if it can be cached (NOERROR or NXDOMAIN, not truncated).
    pub(crate) fn insert(
        &self,
        key: Key,
        rcode: ResponseCode,
        answers: &[Record],
        authorities: &[Record],
        limits: &Limits,
        now: Instant,
    ) {
        let Some(ttl) = ttl_for(rcode, answers, authorities, limits) else {
            return;
        };
        if ttl.is_zero() {
            return;
        }
        let entry = Entry {
            rcode,
            answers: answers.to_vec(),
            authorities: authorities.to_vec(),
            stored: now,
            ttl,
        };
        self.inner.insert(key, Arc::new(entry));
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }
}

/// How long an answer may be cached: the smallest answer TTL for a positive answer; for a
/// negative one the SOA's TTL and minimum (RFC 2308), or the configured negative TTL without
/// an SOA. Clamped to the configured bounds.
fn ttl_for(
    rcode: ResponseCode,
    answers: &[Record],
    authorities: &[Record],
    limits: &Limits,
) -> Option<Duration> {
    let secs = match rcode {
        ResponseCode::NoError if !answers.is_empty() => {
            answers.iter().map(|r| r.ttl).min().map(u64::from)
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            let soa = authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(u64::from(r.ttl.min(soa.minimum))),
                _ => None,
            });
            Some(soa.unwrap_or(limits.negative_ttl.as_secs()))
        }
        _ => None,
    }?;
    Some(Duration::from_secs(secs).clamp(limits.min_ttl, limits.max_ttl.max(limits.min_ttl)))
}

/// Clamps every record's TTL to the configured bounds.
pub(crate) fn clamp_ttls(records: &mut [Record], limits: &Limits) {
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let (lo, hi) = (
        secs(limits.min_ttl),
        secs(limits.max_ttl).max(secs(limits.min_ttl)),
    );
    for r in records {
        r.ttl = r.ttl.clamp(lo, hi);
    }
}

pub(crate) fn key(name: &Name, qtype: RecordType, dnssec_ok: bool) -> Key {
    Key {
        name: name.to_lowercase().to_ascii().into_boxed_str(),
        qtype,
        dnssec_ok,
    }
}
