//! Recent DNS blocks that sent a browser to the block page.
//!
//! With `dns_block = "blockpage"` a blocked name resolves to the block page's address, so the
//! browser then asks the block page server for `http://blocked.example/…`. That server must
//! show what the DNS front decided (the category and the reference of the query's log entry),
//! but it only sees the client's address and the `Host` header. The DNS front therefore notes
//! each such block here, and the block page server looks it up by client and host.
//!
//! Why here: the DNS front and the block page server (in the proxy crate) must not depend on
//! each other, and the log store only sees events after the illegal tier has withheld their
//! target, so it could not find an illegal-tier block by host. Both fronts already depend on
//! this crate; the binary makes one [`BlockNotes`] and hands it to both.
//!
//! What is held: in memory only, the last [`BlockNotes::new`]`(capacity)` blocks, each keyed by
//! a keyed hash (std's SipHash with a random key per process) of client and host: the host
//! itself is kept only for blocks outside the illegal tier, so an illegal-tier entry is never
//! held in clear here either.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::{Tier, Verdict};

/// Within this long, a second block of the same host for the same client (the AAAA after
/// the A of one page load) gets the first one's reference.
const SAME_LOAD_SECONDS: i64 = 10;

/// One noted block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockNote {
    /// The reference on the query's access event.
    pub reference: u64,
    pub time: jiff::Timestamp,
    pub client: IpAddr,
    /// The verdict, as the event carries it (an illegal-tier rule is `[protected entry] #ref`).
    pub verdict: Verdict,
    /// The host asked for; `None` for the illegal tier, whose targets are withheld.
    pub host: Option<String>,
}

/// The recent blocks, shared by the DNS front (which notes) and the block page server (which
/// reads). Bounded: the oldest note goes when a new one would pass the capacity.
pub struct BlockNotes {
    hasher: RandomState,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<u64, BlockNote>,
    by_reference: HashMap<u64, u64>,
    /// (key, reference), oldest first.
    order: VecDeque<(u64, u64)>,
}

impl std::fmt::Debug for BlockNotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockNotes")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl BlockNotes {
    pub fn new(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn key(&self, client: IpAddr, host: &str) -> u64 {
        self.hasher.hash_one((client, host))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Notes that `host` was blocked for `client` at `time`; returns the reference for the
    /// query's access event: `fresh`, or the reference of the same client's block of the same
    /// host less than ten seconds ago (one page load asks for A and AAAA).
    pub fn note(
        &self,
        client: IpAddr,
        host: &str,
        time: jiff::Timestamp,
        verdict: &Verdict,
        fresh: u64,
    ) -> u64 {
        let key = self.key(client, host);
        let mut inner = self.lock();
        if let Some(n) = inner.by_key.get(&key)
            && n.verdict == *verdict
            && (time.as_second() - n.time.as_second()).abs() < SAME_LOAD_SECONDS
        {
            return n.reference;
        }
        while inner.order.len() >= self.capacity {
            let Some((old_key, old_ref)) = inner.order.pop_front() else {
                break;
            };
            inner.by_reference.remove(&old_ref);
            if inner
                .by_key
                .get(&old_key)
                .is_some_and(|n| n.reference == old_ref)
            {
                inner.by_key.remove(&old_key);
            }
        }
        let shown = (verdict.tier != Tier::Illegal).then(|| host.to_owned());
        inner.by_key.insert(
            key,
            BlockNote {
                reference: fresh,
                time,
                client,
                verdict: verdict.clone(),
                host: shown,
            },
        );
        inner.by_reference.insert(fresh, key);
        inner.order.push_back((key, fresh));
        fresh
    }

    /// The latest block of `host` for `client`, if it is still held.
    pub fn find(&self, client: IpAddr, host: &str) -> Option<BlockNote> {
        let key = self.key(client, host);
        self.lock().by_key.get(&key).cloned()
    }

    /// The block with this reference, if it is still held.
    pub fn by_reference(&self, reference: u64) -> Option<BlockNote> {
        let inner = self.lock();
        let key = inner.by_reference.get(&reference)?;
        inner
            .by_key
            .get(key)
            .filter(|n| n.reference == reference)
            .cloned()
    }

    /// Notes held now.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Category};

    fn blocked(tier: Tier) -> Verdict {
        Verdict {
            action: Action::Block,
            tier,
            category: Category::new("games").ok(),
            list: None,
            rule: None,
        }
    }

    fn at(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + s).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn found_by_client_and_host_and_by_reference_only() {
        let notes = BlockNotes::new(8);
        let pupil: IpAddr = [10, 0, 0, 7].into();
        let other: IpAddr = [10, 0, 0, 8].into();
        let r = notes.note(pupil, "games.example", at(0), &blocked(Tier::Category), 42);
        assert_eq!(r, 42);
        let n = notes.find(pupil, "games.example").unwrap();
        assert_eq!(
            (n.reference, n.host.as_deref()),
            (42, Some("games.example"))
        );
        assert!(notes.find(other, "games.example").is_none());
        assert!(notes.find(pupil, "www.games.example").is_none());
        assert_eq!(notes.by_reference(42).unwrap().client, pupil);
        assert!(notes.by_reference(43).is_none());
    }

    #[test]
    fn one_page_load_shares_a_reference_and_a_later_one_does_not() {
        let notes = BlockNotes::new(8);
        let pupil: IpAddr = [10, 0, 0, 7].into();
        let v = blocked(Tier::Category);
        assert_eq!(notes.note(pupil, "games.example", at(0), &v, 1), 1);
        assert_eq!(notes.note(pupil, "games.example", at(2), &v, 2), 1);
        assert_eq!(notes.note(pupil, "games.example", at(60), &v, 3), 3);
        assert_eq!(notes.find(pupil, "games.example").unwrap().reference, 3);
        // The earlier load's note was replaced by the later one.
        assert!(notes.by_reference(1).is_none());
    }

    #[test]
    fn bounded_oldest_first_and_illegal_hosts_are_not_kept() {
        let notes = BlockNotes::new(2);
        let pupil: IpAddr = [10, 0, 0, 7].into();
        let v = blocked(Tier::Category);
        notes.note(pupil, "a.example", at(0), &v, 1);
        notes.note(pupil, "b.example", at(0), &v, 2);
        notes.note(pupil, "c.example", at(0), &blocked(Tier::Illegal), 3);
        assert_eq!(notes.len(), 2);
        assert!(notes.find(pupil, "a.example").is_none());
        assert!(notes.by_reference(1).is_none());
        let n = notes.find(pupil, "c.example").unwrap();
        assert_eq!(n.host, None, "an illegal-tier host is never held in clear");
        assert_eq!(n.verdict.tier, Tier::Illegal);
    }
}
