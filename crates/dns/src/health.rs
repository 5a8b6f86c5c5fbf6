//! Each upstream's health, as the forwarder sees it: how many queries it answered, failed
//! (an error) or let time out, when it last answered and last failed, since when it has been
//! failing, the last error in words, and how long its answers take. Read with
//! [`Resolver::upstream_health`](crate::Resolver::upstream_health) for the technician's system
//! status.
//!
//! Only cache misses reach an upstream (the UDP fast path answers hits without coming here),
//! and each answer costs a few relaxed atomic operations and a clock read beside a network
//! round trip. Nothing here blocks: the last error's text is kept under a lock the failing
//! query only tries (a failure that finds it taken keeps its counts, not its words).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// The weight of the newest answer in [`UpstreamHealth::latency_micros`]: 1/8, as TCP's
/// smoothed round-trip time (RFC 6298).
const EWMA_SHIFT: u32 = 3;

/// What the forwarder has seen of one upstream address since the appliance started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHealth {
    pub address: SocketAddr,
    /// Queries it answered (any answer, SERVFAIL and REFUSED included: it is reachable).
    pub answers: u64,
    /// Queries that failed with an error before the attempt's time ran out: refused
    /// connections, ICMP port unreachable, a failed TLS handshake, a malformed answer.
    pub errors: u64,
    /// Queries it did not answer within the attempt's time, after which the next upstream
    /// was asked (or, for the last, the client answered SERVFAIL).
    pub timeouts: u64,
    /// When it last answered.
    pub last_answer: Option<jiff::Timestamp>,
    /// When it last failed (an error or a timeout).
    pub last_failure: Option<jiff::Timestamp>,
    /// The first failure since its last answer: set while its latest attempts are failing.
    pub failing_since: Option<jiff::Timestamp>,
    /// The last failure in words: "timed out", or the error (e.g. "Connection refused").
    pub last_error: Option<String>,
    /// How long its answers take: a moving average (each answer weighs 1/8), in
    /// microseconds; `None` before its first answer.
    pub latency_micros: Option<u64>,
}

impl UpstreamHealth {
    /// Errors and timeouts together.
    pub fn failures(&self) -> u64 {
        self.errors + self.timeouts
    }
}

/// The counters of one upstream address. Times are Unix microseconds, 0 for never.
#[derive(Debug, Default)]
struct Counters {
    answers: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    last_answer: AtomicI64,
    last_failure: AtomicI64,
    failing_since: AtomicI64,
    latency: AtomicU64,
    last_error: Mutex<String>,
}

impl Counters {
    fn record(&self, now: i64, attempt: Attempt) {
        match attempt {
            Attempt::Answered(took) => {
                self.answers.fetch_add(1, Ordering::Relaxed);
                self.last_answer.store(now, Ordering::Relaxed);
                if self.failing_since.load(Ordering::Relaxed) != 0 {
                    self.failing_since.store(0, Ordering::Relaxed);
                }
                // At least 1 µs, so that 0 keeps meaning "no answer yet". Two answers at once
                // may each miss the other's update: an average loses nothing by it.
                let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
                let old = self.latency.load(Ordering::Relaxed);
                let new = if old == 0 {
                    sample
                } else {
                    let (old, sample) = (i128::from(old), i128::from(sample));
                    u64::try_from(old + ((sample - old) >> EWMA_SHIFT))
                        .unwrap_or(1)
                        .max(1)
                };
                self.latency.store(new, Ordering::Relaxed);
            }
            Attempt::Error(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                self.failed(now, e.to_string());
            }
            Attempt::TimedOut => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                self.failed(now, "timed out".to_owned());
            }
        }
    }

    fn failed(&self, now: i64, words: String) {
        self.last_failure.store(now, Ordering::Relaxed);
        let _ = self
            .failing_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.try_lock() {
            *last = words;
        }
    }
}

/// How one attempt at an upstream ended.
pub(crate) enum Attempt<'a> {
    Answered(Duration),
    Error(&'a std::io::Error),
    TimedOut,
}

/// Every upstream's counters, by address, each made on its first query.
#[derive(Debug, Default)]
pub(crate) struct Health {
    by_address: RwLock<std::collections::HashMap<SocketAddr, Counters>>,
}

fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

impl Health {
    /// Counts one attempt at the upstream `addr`: under the map's read lock, but for an
    /// address's first attempt.
    pub(crate) fn record(&self, addr: SocketAddr, attempt: Attempt) {
        let now = now_micros();
        if let Some(c) = self
            .by_address
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
        {
            return c.record(now, attempt);
        }
        self.by_address
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(addr)
            .or_default()
            .record(now, attempt);
    }

    /// Every upstream asked so far, by address.
    pub(crate) fn snapshot(&self) -> Vec<UpstreamHealth> {
        let map = self.by_address.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<UpstreamHealth> = map
            .iter()
            .map(|(addr, c)| {
                let time = |a: &AtomicI64| match a.load(Ordering::Relaxed) {
                    0 => None,
                    t => jiff::Timestamp::from_microsecond(t).ok(),
                };
                let last_error = c
                    .last_error
                    .lock()
                    .map(|s| s.clone())
                    .unwrap_or_else(|p| p.into_inner().clone());
                UpstreamHealth {
                    address: *addr,
                    answers: c.answers.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    timeouts: c.timeouts.load(Ordering::Relaxed),
                    last_answer: time(&c.last_answer),
                    last_failure: time(&c.last_failure),
                    failing_since: time(&c.failing_since),
                    last_error: Some(last_error).filter(|s| !s.is_empty()),
                    latency_micros: Some(c.latency.load(Ordering::Relaxed)).filter(|&l| l > 0),
                }
            })
            .collect();
        out.sort_by_key(|h| h.address);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        ([127, 0, 0, 1], port).into()
    }

    #[test]
    fn counts_answers_failures_and_since_when_it_fails() {
        let h = Health::default();
        assert!(h.snapshot().is_empty(), "nothing asked yet");
        h.record(addr(53), Attempt::Answered(Duration::from_millis(8)));
        h.record(addr(53), Attempt::Answered(Duration::from_millis(16)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        h.record(addr(54), Attempt::Error(&refused));
        let first = h.snapshot()[1].failing_since;
        h.record(addr(54), Attempt::TimedOut);
        let s = h.snapshot();
        assert_eq!(s.len(), 2);
        let (good, bad) = (&s[0], &s[1]);
        assert_eq!((good.answers, good.failures()), (2, 0));
        // 8 ms, then 1/8 of the way to 16 ms.
        assert_eq!(good.latency_micros, Some(9000));
        assert!(good.last_answer.is_some() && good.failing_since.is_none());
        assert_eq!((bad.answers, bad.errors, bad.timeouts), (0, 1, 1));
        assert_eq!(bad.last_error.as_deref(), Some("timed out"));
        assert!(first.is_some());
        assert_eq!(bad.failing_since, first, "failing since the first failure");
        assert_eq!(bad.latency_micros, None);

        // An answer ends the failing run; the counts stay.
        h.record(addr(54), Attempt::Answered(Duration::from_millis(1)));
        let bad = &h.snapshot()[1];
        assert_eq!(bad.failing_since, None);
        assert_eq!((bad.answers, bad.failures()), (1, 2));
        assert!(bad.last_answer >= bad.last_failure);
    }
}
