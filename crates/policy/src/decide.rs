//! Deciding verdicts. Pure functions of a snapshot, a group, a target and a time.

use std::sync::Arc;

use hedgerow_config::ListKind;
use hedgerow_matcher::{Hit, ListId, MatchLevel, Matcher};
use hedgerow_model::{Action, Category, Host, Severity, Tier, UrlKey, Verdict};

use crate::snapshot::{GroupPolicy, PolicySnapshot};
use crate::{GroupId, protected_rule};

/// What is being asked about: a host (DNS, CONNECT) or a full URL (proxied HTTP).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Host(&'a Host),
    Url(&'a UrlKey),
}

/// A phrase found in a search term or URL, for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseMatch {
    pub category: Option<Category>,
    pub list: Arc<str>,
    pub phrase: Arc<str>,
    pub severity: Severity,
    /// Whether the group blocks this phrase list's category.
    pub blocked: bool,
}

/// The best hit so far on one side (allow or block).
#[derive(Clone, Copy)]
struct Best<'a> {
    hit: Hit<'a>,
    specificity: u32,
}

fn keep_best<'a>(slot: &mut Option<Best<'a>>, hit: Hit<'a>, specificity: u32) {
    if slot.is_none_or(|b| specificity > b.specificity) {
        *slot = Some(Best { hit, specificity });
    }
}

impl PolicySnapshot {
    /// The verdict for `target` for a client in `group` at time `now`.
    pub fn decide<'a>(
        &'a self,
        group: GroupId,
        target: Target<'a>,
        now: jiff::Timestamp,
    ) -> Verdict {
        let Some(g) = self.groups.get(group.0) else {
            return Verdict::default_allow();
        };

        // 1. The illegal-content tier. Nothing below can override it.
        let illegal = match target {
            Target::Host(h) => self.matcher.illegal_host(h),
            Target::Url(u) => self.matcher.illegal_url(u),
        };
        if let Some(hit) = illegal {
            let spec = self.matcher.list(hit.list);
            return Verdict {
                action: Action::Block,
                tier: Tier::Illegal,
                category: spec.and_then(|s| s.category.clone()),
                list: spec.map(|s| s.name.clone()),
                rule: Some(protected_rule(hit.reference).into()),
            };
        }

        // 2 and 3. The group's own allow, then block, entries.
        for (local, action, tier) in [
            (&g.local_allow, Action::Allow, Tier::LocalAllow),
            (&g.local_block, Action::Block, Tier::LocalBlock),
        ] {
            if let Some(m) = local
                && let Some(best) = best_hit(m, target, |_| true)
            {
                let rule = match g.dependency_of.get(best.hit.rule) {
                    Some(site) if tier == Tier::LocalAllow => {
                        format!("{} (with {site})", best.hit.rule).into()
                    }
                    _ => best.hit.rule.into(),
                };
                return Verdict {
                    action,
                    tier,
                    category: None,
                    list: m.list(best.hit.list).map(|s| s.name.clone()),
                    rule: Some(rule),
                };
            }
        }

        // A search engine whose SafeSearch cannot be enforced, for a group with SafeSearch
        // on: blocked as its own category (the group's own allow entries above still win).
        let host = match target {
            Target::Host(h) => h,
            Target::Url(u) => u.host(),
        };
        if let Some(v) = self.unenforceable(group, host) {
            return v;
        }

        // 4. Shared allow lists against category lists, by specificity.
        let mut allow: Option<Best<'a>> = None;
        let mut block: Option<Best<'a>> = None;
        let mut scheduled: Option<(Best<'a>, Arc<str>)> = None;
        let mut unblocked: Option<Best<'a>> = None;
        let mut local_time = None;
        let mut consider = |hit: Hit<'a>, specificity: u32| {
            let Some(spec) = self.matcher.list(hit.list) else {
                return;
            };
            match spec.kind {
                // An approved-only group counts only the lists it approves; approved lists
                // count for nobody else.
                ListKind::Allow | ListKind::Approved if approved(g, hit.list) => {
                    keep_best(&mut allow, hit, specificity);
                }
                ListKind::Allow if !g.approved_only => keep_best(&mut allow, hit, specificity),
                ListKind::Allow | ListKind::Approved => {}
                ListKind::Block if blocked(g, hit.list) => {
                    let now_local = local_time.get_or_insert_with(|| now.to_zoned(self.tz.clone()));
                    match open_schedule(g, hit.list, now_local) {
                        Some(name) => {
                            if scheduled
                                .as_ref()
                                .is_none_or(|(b, _)| specificity > b.specificity)
                            {
                                scheduled = Some((Best { hit, specificity }, name));
                            }
                        }
                        None => keep_best(&mut block, hit, specificity),
                    }
                }
                _ => keep_best(&mut unblocked, hit, specificity),
            }
        };
        match target {
            Target::Host(h) => self
                .matcher
                .host_hits(h, |hit| consider(hit, hit.level.specificity())),
            Target::Url(u) => {
                self.matcher
                    .url_hits(u, |hit| consider(hit, hit.level.specificity()));
                for p in self.matcher.phrase_hits(&url_text(u)) {
                    let hit = Hit {
                        list: p.list,
                        rule: p.phrase,
                        level: MatchLevel::Regex,
                    };
                    consider(hit, hit.level.specificity());
                }
            }
        }

        let verdict = |action, tier, best: Best<'_>| Verdict {
            action,
            tier,
            category: self
                .matcher
                .list(best.hit.list)
                .and_then(|s| s.category.clone()),
            list: self.matcher.list(best.hit.list).map(|s| s.name.clone()),
            rule: Some(best.hit.rule.into()),
        };
        match (allow, block) {
            (Some(a), Some(b)) if a.specificity >= b.specificity => {
                let mut v = verdict(Action::Allow, Tier::AllowList, a);
                // Say which category the allow list overrode, for the log.
                v.category = self
                    .matcher
                    .list(b.hit.list)
                    .and_then(|s| s.category.clone());
                v
            }
            (_, Some(b)) => verdict(Action::Block, Tier::Category, b),
            (None, None) if g.approved_only => {
                // A walled garden: nothing approved this site.
                if let Target::Host(h) = target
                    && let Some(v) = self.approved_pages_on(g, h)
                {
                    return v;
                }
                let shown = scheduled.map(|(b, _)| b).or(unblocked);
                Verdict {
                    action: Action::Block,
                    tier: Tier::NotApproved,
                    category: shown.and_then(|b| {
                        self.matcher
                            .list(b.hit.list)
                            .and_then(|s| s.category.clone())
                    }),
                    list: None,
                    rule: Some(NOT_APPROVED.into()),
                }
            }
            (allow, None) => {
                if let Some((best, name)) = scheduled {
                    let mut v = verdict(Action::Allow, Tier::Schedule, best);
                    v.rule = Some(format!("schedule {name:?}").into());
                    v
                } else if let Some(a) = allow {
                    verdict(Action::Allow, Tier::AllowList, a)
                } else if let Some(u) = unblocked {
                    // Allowed, but the log still says which category the site is in.
                    verdict(Action::Allow, Tier::Default, u)
                } else {
                    Verdict::default_allow()
                }
            }
        }
    }

    /// The verdict for a name that the DNS answer for an allowed name passes through (a CNAME
    /// target, or the owner of a record in the chain). As [`Self::decide`], except that an
    /// approved-only group's "not on the approved list" does not block it: the name asked
    /// for was approved, and where its owner points it (a CDN) is part of that site. A
    /// local block, a blocked category or the illegal tier still blocks it; and the name
    /// itself still resolves only if approved when asked for directly.
    pub fn decide_in_chain(&self, group: GroupId, host: &Host, now: jiff::Timestamp) -> Verdict {
        let v = self.decide(group, Target::Host(host), now);
        if v.tier != Tier::NotApproved {
            return v;
        }
        Verdict {
            action: Action::Allow,
            tier: Tier::Default,
            category: v.category,
            list: None,
            rule: Some("in the answer of an approved name".into()),
        }
    }

    /// For an approved-only group, a host on which some pages (URL entries) are approved is
    /// not itself "not approved": it resolves and a CONNECT reaches it, so those pages can
    /// load; the proxy decides each page by its URL.
    fn approved_pages_on(&self, g: &GroupPolicy, host: &Host) -> Option<Verdict> {
        let mut found: Option<(Tier, Option<Arc<str>>, Arc<str>)> = None;
        if let Some(m) = &g.local_allow {
            m.url_entries_on(host, |hit| {
                if found.is_none() {
                    let list = m.list(hit.list).map(|s| s.name.clone());
                    found = Some((Tier::LocalAllow, list, hit.rule.into()));
                }
            });
        }
        if found.is_none() {
            self.matcher.url_entries_on(host, |hit| {
                if found.is_none() && approved(g, hit.list) {
                    let list = self.matcher.list(hit.list).map(|s| s.name.clone());
                    found = Some((Tier::AllowList, list, hit.rule.into()));
                }
            });
        }
        let (tier, list, rule) = found?;
        Some(Verdict {
            action: Action::Allow,
            tier,
            category: None,
            list,
            rule: Some(format!("approved pages on this host: {rule}").into()),
        })
    }

    /// Phrases from phrase lists found in `text` (a search term), with whether `group` blocks
    /// each one's category.
    pub fn phrases(&self, group: GroupId, text: &str) -> Vec<PhraseMatch> {
        let g = self.groups.get(group.0);
        self.matcher
            .phrase_hits(text)
            .into_iter()
            .filter_map(|p| {
                let spec = self.matcher.list(p.list)?;
                Some(PhraseMatch {
                    category: spec.category.clone(),
                    list: spec.name.clone(),
                    phrase: p.phrase.into(),
                    severity: p.severity,
                    blocked: g.is_some_and(|g| blocked(g, p.list)),
                })
            })
            .collect()
    }
}

fn blocked(g: &GroupPolicy, list: ListId) -> bool {
    g.blocked.get(usize::from(list)).copied().unwrap_or(false)
}

fn approved(g: &GroupPolicy, list: ListId) -> bool {
    g.approved.get(usize::from(list)).copied().unwrap_or(false)
}

/// The rule of a "not approved" verdict.
pub(crate) const NOT_APPROVED: &str = "not on the approved list";

/// The name of a schedule that allows `list` at `now`, if any.
fn open_schedule(g: &GroupPolicy, list: ListId, now: &jiff::Zoned) -> Option<Arc<str>> {
    let day = now.weekday();
    let time = now.time();
    g.schedules
        .iter()
        .find(|s| {
            s.allows.get(usize::from(list)).copied().unwrap_or(false)
                && s.window.days.contains(&day)
                && s.window.from <= time
                && time < s.window.to
        })
        .map(|s| s.name.clone())
}

/// The most specific hit in a (local) matcher.
fn best_hit<'a>(
    m: &'a Matcher,
    target: Target<'a>,
    keep: impl Fn(&Hit<'_>) -> bool,
) -> Option<Best<'a>> {
    let mut best = None;
    let mut f = |hit: Hit<'a>| {
        if keep(&hit) {
            keep_best(&mut best, hit, hit.level.specificity());
        }
    };
    match target {
        Target::Host(h) => m.host_hits(h, &mut f),
        Target::Url(u) => m.url_hits(u, &mut f),
    }
    best
}

/// The text of a URL that phrase lists are matched against: path and query, decoded.
fn url_text(u: &UrlKey) -> String {
    let raw = u.path_and_query();
    let mut out = Vec::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
