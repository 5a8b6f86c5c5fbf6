//! Breach events: what the rules pick out of the access events, de-duplicated without losing
//! what each request was.

use std::net::IpAddr;
use std::sync::Arc;

use hedgerow_model::{AccessEvent, BreachRule, Category, Disposition, Front, Severity, Tier};
use serde::{Deserialize, Serialize};

/// One breach: requests from the same device to the same site within the de-duplication
/// window are one breach, with a count, first and last times, and every distinct request
/// (search, URL or name) that raised it as a [`Trigger`], in the order they came.
///
/// The breach's severity is the highest of its triggers'; `rule` is the rule that gave it.
/// The fields from `front` to `reference` describe the first trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// Dense and sequential (1, 2, 3…) in a new store; the id alerts name.
    pub id: u64,
    pub severity: Severity,
    /// The breach rule that gave the breach its severity (`illegal` for the illegal tier).
    pub rule: String,
    pub first: jiff::Timestamp,
    pub last: jiff::Timestamp,
    /// Requests folded into the breach, repeats included.
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
    /// Every distinct request that raised the breach, oldest first. Never empty when read
    /// from the store: a breach written before triggers were kept has the one it was made
    /// from.
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// One entry for each alert channel that was tried, at each severity the breach had.
    pub deliveries: Vec<Delivery>,
}

/// One distinct request inside a breach: what was asked for, by whom, when, and under which
/// rule. The same request again counts on its trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// When it was first seen.
    pub time: jiff::Timestamp,
    /// When it was last seen.
    pub last: jiff::Timestamp,
    pub count: u64,
    pub front: Front,
    pub client: IpAddr,
    pub device: Option<String>,
    pub user: Option<String>,
    /// The name or URL asked for; for the illegal tier only the host.
    pub target: String,
    /// The search terms, for a search.
    pub search: Option<String>,
    pub rule: String,
    pub severity: Severity,
    pub tier: Tier,
    pub category: Option<Category>,
    pub list: Option<String>,
    pub concern: Option<Severity>,
    /// The block page reference, if there was one.
    pub reference: Option<u64>,
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
    /// The breach's severity this alert was for: a breach raised by a more severe trigger is
    /// alerted again. None in records written before breaches could be raised, which were
    /// for the breach's only severity.
    #[serde(default)]
    pub severity: Option<Severity>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    /// Tried and failed; another attempt is due.
    Retrying,
    Sent,
    /// Failed every attempt.
    Failed,
    /// Still retrying when a more severe trigger raised the breach; the alert at the new
    /// severity replaces it. (Last, so records written before it read as they were.)
    Superseded,
}

/// What recording a breach candidate did (see [`crate::Store::record_breach`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub id: u64,
    /// The breach's severity after this request.
    pub severity: Severity,
    pub change: Change,
}

/// How a request changed the breaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Added to an open breach at no higher severity: no new alert.
    Add,
    /// Opened a new breach.
    Open,
    /// Added to an open breach with a higher severity than it had: the breach is raised to it
    /// and alerted again.
    Raise,
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

pub(crate) use hedgerow_model::site_of;

impl Trigger {
    pub(crate) fn new(ev: &AccessEvent, severity: Severity, rule: &str) -> Self {
        let target = if ev.tier == Tier::Illegal {
            site_of(&ev.target).to_owned()
        } else {
            ev.target.clone()
        };
        Self {
            time: ev.time,
            last: ev.time,
            count: 1,
            front: ev.front,
            client: ev.client,
            device: ev.device.as_deref().map(str::to_owned),
            user: ev.user.as_deref().map(str::to_owned),
            target,
            search: ev.search.as_deref().map(str::to_owned),
            rule: rule.to_owned(),
            severity,
            tier: ev.tier,
            category: ev.category.clone(),
            list: ev.list.as_deref().map(str::to_owned),
            concern: ev.concern,
            reference: ev.reference,
        }
    }

    /// What makes two triggers of one breach the same: who, under which rule, what. A
    /// request equal in all of these counts on the trigger already kept.
    pub(crate) fn identity(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.target.len() + 32);
        for part in [
            self.user.as_deref().unwrap_or(""),
            &self.rule,
            &self.target,
            self.search.as_deref().unwrap_or(""),
        ] {
            k.extend_from_slice(part.as_bytes());
            k.push(0);
        }
        k
    }

    /// Counts one more sighting of the same request.
    pub(crate) fn seen(&mut self, at: jiff::Timestamp) {
        self.count += 1;
        if at > self.last {
            self.last = at;
        }
        if at < self.time {
            self.time = at;
        }
    }
}

impl Breach {
    /// A new breach opened by `first`, with no triggers attached (the store keeps them apart).
    pub(crate) fn open(id: u64, first: &Trigger, ev: &AccessEvent) -> Self {
        Self {
            id,
            severity: first.severity,
            rule: first.rule.clone(),
            first: first.time,
            last: first.time,
            count: 1,
            front: first.front,
            client: first.client,
            device: first.device.clone(),
            user: first.user.clone(),
            group: ev.group.as_deref().map(str::to_owned),
            site: site_of(&ev.target).to_owned(),
            target: first.target.clone(),
            tier: first.tier,
            category: first.category.clone(),
            list: first.list.clone(),
            search: first.search.clone(),
            concern: first.concern,
            reference: first.reference,
            triggers: Vec::new(),
            deliveries: Vec::new(),
        }
    }

    /// The one trigger of a breach recorded before triggers were kept: its first request,
    /// counted as often as the breach.
    pub(crate) fn only_trigger(&self) -> Trigger {
        Trigger {
            time: self.first,
            last: self.last,
            count: self.count,
            front: self.front,
            client: self.client,
            device: self.device.clone(),
            user: self.user.clone(),
            target: self.target.clone(),
            search: self.search.clone(),
            rule: self.rule.clone(),
            severity: self.severity,
            tier: self.tier,
            category: self.category.clone(),
            list: self.list.clone(),
            concern: self.concern,
            reference: self.reference,
        }
    }

    /// The de-duplication key: device (or address) and site. Requests under different rules
    /// join one breach, so a more severe one raises it instead of hiding in a breach of its
    /// own that may only reach a digest.
    pub(crate) fn dedup_key(&self) -> Vec<u8> {
        format!("{}\u{0}{}", self.who(), self.site).into_bytes()
    }

    /// The key breaches were de-duplicated by before triggers were kept: device, site and
    /// rule. Such keys are still recognised (and removed with their breach), never made.
    pub(crate) fn legacy_dedup_key(&self) -> Vec<u8> {
        format!("{}\u{0}{}\u{0}{}", self.who(), self.site, self.rule).into_bytes()
    }

    fn who(&self) -> String {
        self.device
            .clone()
            .unwrap_or_else(|| self.client.to_string())
    }

    /// The delivery record for `channel` at the breach's current severity, if one was made.
    pub fn delivery(&self, channel: &str) -> Option<&Delivery> {
        self.deliveries
            .iter()
            .rev()
            .find(|d| d.channel == channel && d.severity.is_none_or(|s| s == self.severity))
    }

    /// Whether a more severe trigger raised the breach after it was opened.
    pub fn raised(&self) -> bool {
        self.triggers
            .first()
            .is_some_and(|t| t.severity < self.severity)
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

    #[test]
    fn identity_separates_fields() {
        let ev = AccessEvent::new(
            jiff::Timestamp::UNIX_EPOCH,
            Front::Proxy,
            IpAddr::from([10, 0, 0, 1]),
            "http://a.example/x".into(),
        );
        let a = Trigger::new(&ev, Severity::High, "r");
        let mut b = a.clone();
        b.search = Some("x".into());
        assert_ne!(a.identity(), b.identity());
        let mut c = a.clone();
        c.count = 9;
        c.last = jiff::Timestamp::MAX;
        assert_eq!(
            a.identity(),
            c.identity(),
            "counts and times are not identity"
        );
    }
}
