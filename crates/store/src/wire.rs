//! How values are stored: a format byte, then postcard.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use hedgerow_model::{AccessEvent, Action, Category, Front, Outcome, Severity, Tier};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The format of every value this build writes. A reader refuses other formats by name
/// rather than guess.
pub(crate) const FORMAT: u8 = 1;

/// One access event as stored: the time as nanoseconds, strings borrowed when encoding.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireEvent<'a> {
    pub(crate) t: i64,
    front: Front,
    client: IpAddr,
    #[serde(borrow)]
    device: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow)]
    group: Option<Cow<'a, str>>,
    #[serde(borrow)]
    target: Cow<'a, str>,
    #[serde(borrow)]
    qtype: Option<Cow<'a, str>>,
    outcome: Outcome,
    action: Action,
    tier: Tier,
    #[serde(borrow)]
    category: Option<Cow<'a, str>>,
    #[serde(borrow)]
    list: Option<Cow<'a, str>>,
    #[serde(borrow)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow)]
    search: Option<Cow<'a, str>>,
    concern: Option<Severity>,
    bytes: u64,
    reference: Option<u64>,
}

fn b(s: &Option<impl AsRef<str>>) -> Option<Cow<'_, str>> {
    s.as_ref().map(|v| Cow::Borrowed(v.as_ref()))
}

fn arc(s: Option<Cow<'_, str>>) -> Option<Arc<str>> {
    s.map(|v| Arc::from(v.as_ref()))
}

impl<'a> WireEvent<'a> {
    pub(crate) fn from_event(e: &'a AccessEvent) -> Self {
        Self {
            t: nanos(e.time),
            front: e.front,
            client: e.client,
            device: b(&e.device),
            user: b(&e.user),
            group: b(&e.group),
            target: Cow::Borrowed(&e.target),
            qtype: b(&e.qtype),
            outcome: e.outcome,
            action: e.action,
            tier: e.tier,
            category: e.category.as_ref().map(|c| Cow::Borrowed(c.as_str())),
            list: b(&e.list),
            rule: b(&e.rule),
            method: b(&e.method),
            search: b(&e.search),
            concern: e.concern,
            bytes: e.bytes,
            reference: e.reference,
        }
    }

    pub(crate) fn into_event(self) -> AccessEvent {
        AccessEvent {
            time: from_nanos(self.t),
            front: self.front,
            client: self.client,
            device: arc(self.device),
            user: arc(self.user),
            group: arc(self.group),
            target: self.target.into_owned(),
            qtype: self.qtype.map(|q| Cow::Owned(q.into_owned())),
            outcome: self.outcome,
            action: self.action,
            tier: self.tier,
            category: self.category.and_then(|c| Category::new(&c).ok()),
            list: arc(self.list),
            rule: arc(self.rule),
            method: self.method.map(|m| Cow::Owned(m.into_owned())),
            search: self.search.map(|s| s.into()),
            concern: self.concern,
            bytes: self.bytes,
            reference: self.reference,
        }
    }
}

/// Nanoseconds since the Unix epoch, clamped to what an i64 holds.
pub(crate) fn nanos(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(if t.as_nanosecond() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub(crate) fn from_nanos(n: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(i128::from(n)).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Keys sort by time: nanoseconds with the sign bit flipped, big-endian.
pub(crate) fn time_key(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

/// Encodes a value behind the format byte.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT];
    // Serializing plain data into a Vec cannot fail; an error would leave just the byte.
    if let Ok(v) = postcard::to_stdvec(value) {
        out.extend_from_slice(&v);
    }
    out
}

/// Decodes a value written by [`encode`], checking the format byte.
pub(crate) fn decode<'a, T: Deserialize<'a>>(tree: &str, bytes: &'a [u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(|e| StoreError::Decode {
            tree: tree.to_owned(),
            reason: e.to_string(),
        }),
        Some((&found, _)) => Err(StoreError::Format {
            tree: tree.to_owned(),
            found,
            expected: FORMAT,
        }),
        None => Err(StoreError::Decode {
            tree: tree.to_owned(),
            reason: "empty value".into(),
        }),
    }
}
