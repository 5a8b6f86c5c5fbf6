//! Per-client rate limiting: a token bucket per client (its address, or the MAC a trusted
//! forwarder gave), in sharded maps so the hot path rarely contends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::identity::RateKey;

const SHARDS: usize = 16;
/// Buckets idle this long are forgotten when their shard is swept.
const IDLE: Duration = Duration::from_secs(60);
/// At most one log line per client per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

struct Bucket {
    tokens: f64,
    last: Instant,
    last_logged: Option<Instant>,
}

pub(crate) enum Decision {
    Allow,
    /// Over the limit; `log` is true when this trip should be logged.
    Deny {
        log: bool,
    },
}

pub(crate) struct RateLimiter {
    shards: Vec<Mutex<HashMap<RateKey, Bucket>>>,
}

impl RateLimiter {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token for `key` at `qps` per second with a burst of `2 * qps`.
    pub(crate) fn check(&self, key: RateKey, qps: u32, now: Instant) -> Decision {
        if qps == 0 {
            return Decision::Allow;
        }
        let shard = match key {
            RateKey::Ip(IpAddr::V4(v4)) => v4.octets()[3] as usize,
            RateKey::Ip(IpAddr::V6(v6)) => v6.octets()[15] as usize,
            RateKey::Mac(mac) => mac.0[5] as usize,
        } % SHARDS;
        let Some(lock) = self.shards.get(shard) else {
            return Decision::Allow;
        };
        // A poisoned lock only means another thread panicked mid-update of a counter; the map
        // is still usable, so recover it rather than fail every query.
        let mut map = lock.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 4096 {
            map.retain(|_, b| now.saturating_duration_since(b.last) < IDLE);
        }
        let burst = f64::from(qps) * 2.0;
        let b = map.entry(key).or_insert(Bucket {
            tokens: burst,
            last: now,
            last_logged: None,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * f64::from(qps)).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Decision::Allow
        } else {
            let log = b
                .last_logged
                .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY);
            if log {
                b.last_logged = Some(now);
            }
            Decision::Deny { log }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let rl = RateLimiter::new();
        let ip = RateKey::Ip("10.0.0.1".parse().unwrap());
        let t0 = Instant::now();
        let allowed = (0..100)
            .filter(|_| matches!(rl.check(ip, 10, t0), Decision::Allow))
            .count();
        assert_eq!(allowed, 20);
        // Another client is unaffected.
        assert!(matches!(
            rl.check(RateKey::Ip("10.0.0.2".parse().unwrap()), 10, t0),
            Decision::Allow
        ));
        // One second later, ten more.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..100)
            .filter(|_| matches!(rl.check(ip, 10, t1), Decision::Allow))
            .count();
        assert_eq!(allowed, 10);
        assert!(
            matches!(rl.check(ip, 0, t1), Decision::Allow),
            "0 turns the limit off"
        );
        // Clients a forwarder names by MAC behind one address have a bucket each.
        let mac = |b| RateKey::Mac(hedgerow_model::MacAddr([2, 0, 0, 0, 0, b]));
        for _ in 0..20 {
            assert!(matches!(rl.check(mac(1), 10, t1), Decision::Allow));
        }
        assert!(matches!(rl.check(mac(1), 10, t1), Decision::Deny { .. }));
        assert!(matches!(rl.check(mac(2), 10, t1), Decision::Allow));
    }
}
