//! Breach events: what the rules pick out of the access events, de-duplicated.

use std::net::IpAddr;
use std::sync::Arc;

use hedgerow_model::{AccessEvent, BreachRule, Category, Disposition, Front, Severity, Tier};
use serde::{Deserialize, Serialize};

/// One breach: the same device and site under the same rule within the de-duplication window
/// is one breach with a count and first and last times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    pub id: u64,
    pub severity: Severity,
    /// The breach rule that matched (`illegal` for the illegal tier).
    pub rule: String,
    pub first: jiff::Timestamp,
    pub last: jiff::Timestamp,
    pub count: u64,
    pub front: Front,
    pub client: IpAddr,
    pub device: Option<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    /// The host reached for.
    pub site: String,
    /// What was asked for the first time. For the illegal tier only the host is kept.
    pub target: String,
    pub tier: Tier,
    pub category: Option<Category>,
    pub list: Option<String>,
    pub search: Option<String>,
    pub concern: Option<Severity>,
    /// The block page reference of the first request, if there was one.
    pub reference: Option<u64>,
    /// One entry for each alert channel that was tried.
    pub deliveries: Vec<Delivery>,
}

/// How an alert for a breach went on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `webhook`, `email` or `digest`.
    pub channel: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub at: jiff::Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    /// Tried and failed; another attempt is due.
    Retrying,
    Sent,
    /// Failed every attempt.
    Failed,
}

/// The severity and rule name if `event` is a breach under `rules`. A request that was
/// refused, rate-limited or failed is never one: it was not served, and it was not the filter
/// that stopped it. The illegal tier is always critical whatever the rules say. Otherwise the
/// first matching rule decides.
pub fn breach_for(rules: &[BreachRule], event: &AccessEvent) -> Option<(Severity, Arc<str>)> {
    let blocked = match event.disposition() {
        Disposition::Block => event.tier != Tier::Default,
        Disposition::Allow | Disposition::Rewrite => false,
        Disposition::Refused | Disposition::RateLimited | Disposition::Error => return None,
    };
    if event.tier == Tier::Illegal {
        return Some((Severity::Critical, Arc::from("illegal")));
    }
    if !blocked && event.concern.is_none() {
        return None;
    }
    rules
        .iter()
        .find(|r| {
            let tier_ok = r.tiers.is_empty() || r.tiers.contains(&event.tier);
            let cat_ok = r.categories.is_empty()
                || event
                    .category
                    .as_ref()
                    .is_some_and(|c| r.categories.contains(c));
            let concern_ok = match r.concern {
                Some(min) => event.concern.is_some_and(|c| c >= min),
                None => blocked,
            };
            tier_ok && cat_ok && concern_ok
        })
        .map(|r| (r.severity, r.name.clone()))
}

/// The host part of an event's target: the query name, or the host of a URL.
pub(crate) fn site_of(target: &str) -> &str {
    if target.starts_with(hedgerow_model::PROTECTED_RULE) {
        // A withheld illegal-tier target: its reference is what tells two entries apart.
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

impl Breach {
    pub(crate) fn new(id: u64, ev: &AccessEvent, severity: Severity, rule: &str) -> Self {
        let site = site_of(&ev.target).to_owned();
        let target = if ev.tier == Tier::Illegal {
            site.clone()
        } else {
            ev.target.clone()
        };
        Self {
            id,
            severity,
            rule: rule.to_owned(),
            first: ev.time,
            last: ev.time,
            count: 1,
            front: ev.front,
            client: ev.client,
            device: ev.device.as_deref().map(str::to_owned),
            user: ev.user.as_deref().map(str::to_owned),
            group: ev.group.as_deref().map(str::to_owned),
            site,
            target,
            tier: ev.tier,
            category: ev.category.clone(),
            list: ev.list.as_deref().map(str::to_owned),
            search: ev.search.as_deref().map(str::to_owned),
            concern: ev.concern,
            reference: ev.reference,
            deliveries: Vec::new(),
        }
    }

    /// The de-duplication key: device (or address), site and rule.
    pub(crate) fn dedup_key(&self) -> Vec<u8> {
        let who = self
            .device
            .clone()
            .unwrap_or_else(|| self.client.to_string());
        format!("{who}\u{0}{}\u{0}{}", self.site, self.rule).into_bytes()
    }

    /// The delivery record for `channel`, if one was made.
    pub fn delivery(&self, channel: &str) -> Option<&Delivery> {
        self.deliveries.iter().find(|d| d.channel == channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_is_the_host() {
        assert_eq!(site_of("example.com"), "example.com");
        assert_eq!(site_of("http://u:p@Example.com:8080/a?b"), "Example.com");
        assert_eq!(site_of("https://[::1]:443/x"), "[::1]");
        assert_eq!(site_of("www.x.org:443"), "www.x.org");
    }

    fn rules() -> Vec<BreachRule> {
        let rule = |name: &str, concern| BreachRule {
            name: Arc::from(name),
            tiers: Vec::new(),
            categories: Vec::new(),
            concern,
            severity: Severity::High,
        };
        vec![
            rule("any block", None),
            rule("concern", Some(Severity::High)),
        ]
    }

    /// An event as the fronts stored refusals before outcomes had their own verdicts: the
    /// policy's action said block.
    fn event(outcome: hedgerow_model::Outcome) -> AccessEvent {
        let mut e = AccessEvent::new(
            jiff::Timestamp::UNIX_EPOCH,
            Front::Proxy,
            [10, 0, 0, 1].into(),
            "http://news.example/".into(),
        );
        e.outcome = outcome;
        e.action = hedgerow_model::Action::Block;
        e.tier = Tier::Category;
        e.category = Some(Category::new("news").unwrap());
        e
    }

    #[test]
    fn rules_fire_on_blocks_and_never_on_refusals_limits_or_errors() {
        use hedgerow_model::Outcome;
        let rules = rules();
        assert_eq!(
            breach_for(&rules, &event(Outcome::Blocked)).map(|(_, r)| r),
            Some(Arc::from("any block"))
        );
        for o in [
            Outcome::Refused,
            Outcome::RateLimited,
            Outcome::Failed,
            Outcome::Invalid,
        ] {
            assert_eq!(breach_for(&rules, &event(o)), None, "{o:?}");
            let mut concerning = event(o);
            concerning.concern = Some(Severity::Critical);
            assert_eq!(
                breach_for(&rules, &concerning),
                None,
                "{o:?} with a concern"
            );
            let mut illegal = event(o);
            illegal.tier = Tier::Illegal;
            assert_eq!(
                breach_for(&rules, &illegal),
                None,
                "{o:?} in the illegal tier"
            );
        }
        // An allowed request with a concern still raises one.
        let mut allowed = event(Outcome::Forwarded);
        allowed.action = hedgerow_model::Action::Allow;
        allowed.concern = Some(Severity::High);
        assert_eq!(
            breach_for(&rules, &allowed).map(|(_, r)| r),
            Some(Arc::from("concern"))
        );
    }
}
