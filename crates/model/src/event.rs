//! Access events: one per DNS query or proxied request, for the log store.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use crate::Verdict;

/// Which front saw the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Front {
    Dns,
    Proxy,
}

/// What happened to the request, beyond the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered from the upstream or the cache.
    Forwarded,
    /// Answered with a block response.
    Blocked,
    /// Answered with a SafeSearch rewrite (CNAME to the engine's enforcement host).
    SafeSearch,
    /// A circumvention canary (DoH opt-out, iCloud Private Relay, DDR) answered locally.
    Circumvention,
    /// The client is in no configured network.
    Refused,
    /// The client went over its rate limit.
    RateLimited,
    /// The upstreams failed or timed out.
    ServFail,
}

/// One access: who, when, what, and what Hedgerow did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AccessEvent {
    pub time: jiff::Timestamp,
    pub front: Front,
    pub client: IpAddr,
    pub device: Option<Arc<str>>,
    pub user: Option<Arc<str>>,
    pub group: Option<Arc<str>>,
    /// The query name (DNS) or URL or host (proxy).
    pub target: String,
    /// The query type (DNS), such as `A` or `HTTPS`.
    pub qtype: Option<Cow<'static, str>>,
    pub outcome: Outcome,
    pub action: crate::Action,
    pub tier: crate::Tier,
    pub category: Option<crate::Category>,
    pub list: Option<Arc<str>>,
    /// The rule that decided; `[protected entry]` for the illegal tier.
    pub rule: Option<Arc<str>>,
    /// The HTTP method (proxy), such as `GET` or `CONNECT`.
    pub method: Option<Cow<'static, str>>,
    /// Search terms read from a search engine's URL (proxy).
    pub search: Option<Box<str>>,
    /// The highest severity of a concerning phrase in the search terms or URL (proxy), for
    /// monitoring even when the request was allowed.
    pub concern: Option<crate::Severity>,
    /// Response body bytes sent to the client (proxy).
    pub bytes: u64,
    /// The reference shown on a block page, so a review request can find this entry.
    pub reference: Option<u64>,
}

impl AccessEvent {
    /// An event with no verdict yet: allowed by default, nothing matched.
    pub fn new(time: jiff::Timestamp, front: Front, client: IpAddr, target: String) -> Self {
        Self {
            time,
            front,
            client,
            device: None,
            user: None,
            group: None,
            target,
            qtype: None,
            outcome: Outcome::Forwarded,
            action: crate::Action::Allow,
            tier: crate::Tier::Default,
            category: None,
            list: None,
            rule: None,
            method: None,
            search: None,
            concern: None,
            bytes: 0,
            reference: None,
        }
    }

    /// Copies the verdict's fields into the event.
    ///
    /// An illegal-tier verdict also withholds what the request asked for: the target becomes
    /// the verdict's protected rule (`[protected entry] #ref`) and search terms are dropped,
    /// so no record, export, alert or log line made from the event can show the entry. This
    /// is the one place that happens, for every front.
    pub fn with_verdict(mut self, v: &Verdict) -> Self {
        self.action = v.action;
        self.tier = v.tier;
        self.category = v.category.clone();
        self.list = v.list.clone();
        self.rule = v.rule.clone();
        if v.tier == crate::Tier::Illegal {
            self.protect();
        }
        self
    }

    /// Withholds the target and search terms (see [`Self::with_verdict`]).
    pub fn protect(&mut self) {
        let shown = self
            .rule
            .clone()
            .filter(|r| r.starts_with(crate::PROTECTED_RULE))
            .unwrap_or_else(|| crate::PROTECTED_RULE.into());
        self.target = shown.to_string();
        self.rule = Some(shown);
        self.search = None;
    }
}

/// Where fronts hand access events. Implementations must never block or wait: a front calls
/// this on the path of an answer.
pub trait EventSink: Send + Sync {
    fn record(&self, event: AccessEvent);
}

/// The time, through a seam so tests can pin it (schedules, retention, de-duplication).
pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock that always says the same time.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub jiff::Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
    }
}
