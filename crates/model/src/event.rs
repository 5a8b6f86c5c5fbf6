//! Access events: one per DNS query or proxied request, for the log store.

use std::borrow::Cow;
use std::fmt;
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

/// What happened to the request, in detail. [`Outcome::disposition`] sums it up in the one
/// word that logs show as the verdict.
///
/// The order of the variants is the stored encoding (the log store writes the variant's
/// index): new variants go at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered from the upstream or the cache (DNS), or by the origin (proxy).
    Forwarded,
    /// Answered with a block response: the policy blocked it, or (proxy) the tunnel was
    /// closed for a circumvention shape (no SNI, a different SNI, ECH, not TLS).
    Blocked,
    /// Answered with a SafeSearch rewrite (CNAME to the engine's enforcement host).
    SafeSearch,
    /// A circumvention canary (DoH opt-out, iCloud Private Relay, DDR) answered locally.
    Circumvention,
    /// Not served because of who asked or where to, before any filtering decision: the client
    /// is in no configured network, or did not sign in to the proxy, or (proxy) the
    /// destination is an address or port the proxy does not reach.
    Refused,
    /// The client went over its rate limit.
    RateLimited,
    /// No answer came: the upstreams or the origin failed, refused or timed out, or the
    /// request ended before it was answered (the client went away).
    #[serde(alias = "serv-fail")]
    Failed,
    /// The request could not be read or is of a kind not served: DNS FORMERR or NOTIMP, an
    /// HTTP 400.
    Invalid,
}

impl Outcome {
    /// The one word for what happened. This is the only place outcomes are summed up: the
    /// logs' verdict column, `logs --verdict`, counts of blocked requests and breach rules all
    /// go through it.
    pub fn disposition(self) -> Disposition {
        match self {
            Outcome::Forwarded => Disposition::Allow,
            Outcome::Blocked | Outcome::Circumvention => Disposition::Block,
            Outcome::SafeSearch => Disposition::Rewrite,
            Outcome::Refused => Disposition::Refused,
            Outcome::RateLimited => Disposition::RateLimited,
            Outcome::Failed | Outcome::Invalid => Disposition::Error,
        }
    }
}

/// What happened to a request, in one word: the verdict a log shows. Only `Block` means
/// the filter stopped it; a refusal, the rate limit or an error is never counted as blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Disposition {
    /// Served as asked.
    Allow,
    /// Stopped by the filter (a block answer or page, a closed tunnel).
    Block,
    /// Not answered: an upstream or origin failure, or a request that could not be read.
    Error,
    /// Refused because the client went over its rate limit.
    RateLimited,
    /// Refused because of who asked or where to (not the school's network, not signed in,
    /// a destination the proxy does not reach).
    Refused,
    /// Served with a SafeSearch rewrite.
    Rewrite,
}

impl Disposition {
    /// Every disposition, in the order the error message lists them.
    const ALL: [Disposition; 6] = [
        Disposition::Allow,
        Disposition::Block,
        Disposition::Rewrite,
        Disposition::Refused,
        Disposition::RateLimited,
        Disposition::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Allow => "allow",
            Disposition::Block => "block",
            Disposition::Error => "error",
            Disposition::RateLimited => "rate-limited",
            Disposition::Refused => "refused",
            Disposition::Rewrite => "rewrite",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Disposition {
    type Err = UnknownDisposition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Disposition::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDisposition(s.to_owned()))
    }
}

/// A word that is not a [`Disposition`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected allow, block, rewrite, refused, rate-limited or error")]
pub struct UnknownDisposition(String);

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
    /// What happened; [`AccessEvent::disposition`] is the verdict logs show.
    pub outcome: Outcome,
    /// The policy's action. `Allow` when the policy was not asked (a refused, rate-limited,
    /// unreadable or failed request): read [`AccessEvent::disposition`] for what happened.
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

/// The host part of an access event's target: the query name, or the host of a URL (without
/// user, port or path). A withheld illegal-tier target is returned whole: its reference is
/// what tells two entries apart.
pub fn site_of(target: &str) -> &str {
    if target.starts_with(crate::PROTECTED_RULE) {
        return target;
    }
    let rest = target.split_once("://").map_or(target, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let hostport = &rest[..end];
    let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
    if hostport.starts_with('[') {
        return hostport.find(']').map_or(hostport, |i| &hostport[..=i]);
    }
    hostport.split(':').next().unwrap_or(hostport)
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

    /// What happened, in one word (see [`Outcome::disposition`]).
    pub fn disposition(&self) -> Disposition {
        self.outcome.disposition()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_blocks_and_canaries_are_blocks() {
        let all = [
            (Outcome::Forwarded, Disposition::Allow),
            (Outcome::Blocked, Disposition::Block),
            (Outcome::SafeSearch, Disposition::Rewrite),
            (Outcome::Circumvention, Disposition::Block),
            (Outcome::Refused, Disposition::Refused),
            (Outcome::RateLimited, Disposition::RateLimited),
            (Outcome::Failed, Disposition::Error),
            (Outcome::Invalid, Disposition::Error),
        ];
        for (outcome, disposition) in all {
            assert_eq!(outcome.disposition(), disposition, "{outcome:?}");
        }
    }

    #[test]
    fn dispositions_read_back_from_their_names() {
        for d in Disposition::ALL {
            assert_eq!(d.as_str().parse::<Disposition>(), Ok(d));
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(
                json,
                format!("\"{d}\""),
                "the serde name is the displayed one"
            );
        }
        let err = "blocked".parse::<Disposition>().unwrap_err();
        assert!(err.to_string().contains("rate-limited"), "{err}");
    }

    #[test]
    fn the_old_name_of_failed_still_reads() {
        let old: Outcome = serde_json::from_str("\"serv-fail\"").unwrap();
        assert_eq!(old, Outcome::Failed);
        assert_eq!(serde_json::to_string(&old).unwrap(), "\"failed\"");
    }
}
