//! A check's result: every probe with what was expected and what happened, the block rate of
//! each category per group and path, over-blocking, and every difference listed; and the
//! comparison of two runs (regressions).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::probes::{Expect, PROTECTED, Probe, ProbeSet, Section, Via};
use crate::run::{Outcome, meets};

/// One probe and what came back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    pub group: String,
    pub via: Via,
    pub section: Section,
    #[serde(default)]
    pub category: Option<String>,
    /// As shown everywhere (illegal-tier targets withheld).
    pub probe: String,
    pub expected: Expect,
    pub actual: Outcome,
    pub passed: bool,
}

impl ProbeResult {
    pub fn new(p: Probe, actual: Outcome) -> Self {
        let passed = meets(&p.expect, &actual);
        // What came back for an illegal-tier probe may name its target (a proxy's "x does
        // not exist", a resolver's error): only the outcome's word is kept.
        let actual = if p.shown.starts_with(PROTECTED) {
            actual.without_detail()
        } else {
            actual
        };
        Self {
            group: p.group,
            via: p.via,
            section: p.section,
            category: p.category,
            probe: p.shown,
            expected: p.expect,
            actual,
            passed,
        }
    }
}

/// Blocked out of tested, for one category (or must-allow sample) on one path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub tested: u64,
    pub blocked: u64,
    /// Answered as expected.
    pub passed: u64,
}

impl Rate {
    pub fn percent_blocked(&self) -> f64 {
        if self.tested == 0 {
            0.0
        } else {
            100.0 * self.blocked as f64 / self.tested as f64
        }
    }
}

/// One category's rows for a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CategoryRow {
    pub category: String,
    /// "block" or "allow": what the school expects.
    pub expected: String,
    pub dns: Rate,
    pub proxy: Rate,
}

/// One group's summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSummary {
    pub group: String,
    pub source: String,
    pub categories: Vec<CategoryRow>,
    /// The must-allow sample: blocked here is over-blocking.
    pub must_allow_dns: Rate,
    pub must_allow_proxy: Rate,
    /// (passed, tested) for each section.
    pub canaries: (u64, u64),
    pub safesearch: (u64, u64),
    pub circumvention: (u64, u64),
    pub failures: u64,
}

/// A difference between what was expected and what happened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Failure {
    pub group: String,
    pub via: Via,
    pub section: Section,
    #[serde(default)]
    pub category: Option<String>,
    pub probe: String,
    pub expected: String,
    pub actual: String,
}

impl Failure {
    /// What identifies the failure from one run to the next.
    pub fn key(&self) -> (String, Via, String, String) {
        (
            self.group.clone(),
            self.via,
            self.probe.clone(),
            self.expected.clone(),
        )
    }
}

/// The result of one check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    pub started: jiff::Timestamp,
    pub seconds: f64,
    pub dns: String,
    #[serde(default)]
    pub proxy: Option<String>,
    pub probes: u64,
    pub passed: bool,
    pub groups: Vec<GroupSummary>,
    pub failures: Vec<Failure>,
    /// Every probe, for `check show --all`.
    #[serde(default)]
    pub results: Vec<ProbeResult>,
}

impl CheckResult {
    pub fn from_probes(
        started: jiff::Timestamp,
        seconds: f64,
        set: &ProbeSet,
        results: Vec<ProbeResult>,
    ) -> Self {
        let mut failures: Vec<Failure> = results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| Failure {
                group: r.group.clone(),
                via: r.via,
                section: r.section,
                category: r.category.clone(),
                probe: r.probe.clone(),
                expected: r.expected.to_string(),
                actual: r.actual.to_string(),
            })
            .collect();
        failures.sort();
        let groups = set
            .groups
            .iter()
            .map(|(name, g)| {
                let mine = || results.iter().filter(move |r| &r.group == name);
                let rate = |section: Section, via: Via, cat: Option<&str>| {
                    let mut r = Rate::default();
                    for p in mine().filter(|p| {
                        p.section == section
                            && p.via == via
                            && (cat.is_none() || p.category.as_deref() == cat)
                    }) {
                        r.tested += 1;
                        r.blocked += u64::from(matches!(p.actual, Outcome::Blocked(_)));
                        r.passed += u64::from(p.passed);
                    }
                    r
                };
                let count = |section: Section| {
                    let all: Vec<_> = mine().filter(|p| p.section == section).collect();
                    (
                        all.iter().filter(|p| p.passed).count() as u64,
                        all.len() as u64,
                    )
                };
                let mut categories = Vec::new();
                for (cats, expected) in [(&g.block, "block"), (&g.allow, "allow")] {
                    for c in cats {
                        categories.push(CategoryRow {
                            category: c.clone(),
                            expected: expected.into(),
                            dns: rate(Section::Category, Via::Dns, Some(c)),
                            proxy: rate(Section::Category, Via::Proxy, Some(c)),
                        });
                    }
                }
                GroupSummary {
                    group: name.clone(),
                    source: g.source.to_string(),
                    categories,
                    must_allow_dns: rate(Section::MustAllow, Via::Dns, None),
                    must_allow_proxy: rate(Section::MustAllow, Via::Proxy, None),
                    canaries: count(Section::Canary),
                    safesearch: count(Section::SafeSearch),
                    circumvention: count(Section::Circumvention),
                    failures: failures.iter().filter(|f| &f.group == name).count() as u64,
                }
            })
            .collect();
        Self {
            started,
            seconds,
            dns: set.appliance.dns.to_string(),
            proxy: set.appliance.proxy.map(|p| p.to_string()),
            probes: results.len() as u64,
            passed: failures.is_empty(),
            groups,
            failures,
            results,
        }
    }

    /// What failed now that did not fail in `previous` (the same probe, path and group,
    /// expected the same), and what failed then that passes now.
    pub fn compare(&self, previous: &CheckResult) -> Comparison {
        let before: BTreeSet<_> = previous.failures.iter().map(Failure::key).collect();
        let now: BTreeSet<_> = self.failures.iter().map(Failure::key).collect();
        Comparison {
            regressions: self
                .failures
                .iter()
                .filter(|f| !before.contains(&f.key()))
                .cloned()
                .collect(),
            fixed: previous
                .failures
                .iter()
                .filter(|f| !now.contains(&f.key()))
                .cloned()
                .collect(),
        }
    }

    /// The failures grouped as the change requests that would fix them: (group, what to
    /// change, the failures). A whole category unblocked is one request, not one per site.
    pub fn remedies(&self) -> Vec<Remedy> {
        let mut out: BTreeMap<(String, String), Remedy> = BTreeMap::new();
        for f in &self.failures {
            let protected = f.probe.starts_with("[protected");
            let (what, edit) = match (f.section, f.category.as_deref()) {
                _ if protected => (
                    format!(
                        "investigate: {} (illegal tier: report to the list provider)",
                        f.probe
                    ),
                    None,
                ),
                (Section::Category, Some(c)) if f.expected == "blocked" => {
                    let row = self
                        .groups
                        .iter()
                        .find(|g| g.group == f.group)
                        .and_then(|g| g.categories.iter().find(|r| r.category == c));
                    let all_open = row.is_some_and(|r| {
                        let rate = if f.via == Via::Dns { &r.dns } else { &r.proxy };
                        rate.blocked == 0
                    });
                    if all_open {
                        (
                            format!("block category {c}"),
                            Some(
                                serde_json::json!({"op": "block-category", "group": f.group, "category": c}),
                            ),
                        )
                    } else {
                        (
                            format!("block {}", f.probe),
                            Some(
                                serde_json::json!({"op": "add-block", "group": f.group, "entry": f.probe}),
                            ),
                        )
                    }
                }
                (Section::SafeSearch, _) if f.probe.contains("youtube") => (
                    "restrict YouTube".to_owned(),
                    Some(serde_json::json!({"op": "youtube", "group": f.group, "mode": "strict"})),
                ),
                (Section::SafeSearch, _) if f.via == Via::Dns => (
                    "turn SafeSearch on".to_owned(),
                    Some(serde_json::json!({"op": "safe-search", "group": f.group, "mode": "on"})),
                ),
                (Section::Circumvention, Some("doh")) => (
                    format!("block {}", f.probe),
                    Some(
                        serde_json::json!({"op": "add-block", "group": f.group, "entry": f.probe}),
                    ),
                ),
                _ => (
                    format!("investigate: {} ({})", f.probe, f.section.as_str()),
                    None,
                ),
            };
            out.entry((f.group.clone(), what.clone()))
                .or_insert_with(|| Remedy {
                    group: f.group.clone(),
                    what,
                    edit,
                    failures: Vec::new(),
                })
                .failures
                .push(f.clone());
        }
        out.into_values().collect()
    }

    /// A plain-text summary, as `hedgerow check` prints it.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let verdict = if self.passed {
            "PASSED: every probe answered as the school expects".to_owned()
        } else {
            format!(
                "FAILED: {} of {} probes did not answer as expected",
                self.failures.len(),
                self.probes
            )
        };
        s.push_str(&format!(
            "{verdict}\n{} probes in {:.1} s (DNS {}, proxy {})\n\n",
            self.probes,
            self.seconds,
            self.dns,
            self.proxy.as_deref().unwrap_or("not tested")
        ));
        for g in &self.groups {
            s.push_str(&format!(
                "group {} (from {}): canaries {}/{}, SafeSearch {}/{}, circumvention {}/{}, over-blocking DNS {}/{} proxy {}/{}\n",
                g.group,
                g.source,
                g.canaries.0,
                g.canaries.1,
                g.safesearch.0,
                g.safesearch.1,
                g.circumvention.0,
                g.circumvention.1,
                g.must_allow_dns.blocked,
                g.must_allow_dns.tested,
                g.must_allow_proxy.blocked,
                g.must_allow_proxy.tested,
            ));
            for c in &g.categories {
                s.push_str(&format!(
                    "  {:<16} expected {:<5}  blocked: DNS {:>5.1}% of {:<4} proxy {:>5.1}% of {}\n",
                    c.category,
                    c.expected,
                    c.dns.percent_blocked(),
                    c.dns.tested,
                    c.proxy.percent_blocked(),
                    c.proxy.tested
                ));
            }
        }
        if !self.failures.is_empty() {
            s.push_str("\nfailures (group, path, part, probe: expected → actual):\n");
            for f in &self.failures {
                s.push_str(&format!(
                    "  {} {} {}{}: {}: expected {} → {}\n",
                    f.group,
                    f.via.as_str(),
                    f.section.as_str(),
                    f.category
                        .as_deref()
                        .map(|c| format!("/{c}"))
                        .unwrap_or_default(),
                    f.probe,
                    f.expected,
                    f.actual
                ));
            }
        }
        s
    }
}

/// New failures and failures since fixed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Comparison {
    pub regressions: Vec<Failure>,
    pub fixed: Vec<Failure>,
}

/// A change that would fix some failures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Remedy {
    pub group: String,
    pub what: String,
    /// The change request edit (the admin API's JSON), when one is clear.
    pub edit: Option<serde_json::Value>,
    pub failures: Vec<Failure>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::{Action, protect};

    fn probe(target: &str, shown: String) -> Probe {
        Probe {
            group: "ks2".into(),
            source: "127.0.0.1".parse().unwrap(),
            dns: "127.0.0.1:53".parse().unwrap(),
            via: Via::Proxy,
            section: Section::Canary,
            category: Some("child-abuse".into()),
            action: Action::Get(format!("http://{target}/")),
            shown,
            expect: Expect::Block,
        }
    }

    #[test]
    fn a_protected_probe_keeps_no_detail_that_could_name_its_target() {
        let target = "iwf-test.example";
        let answer = || Outcome::Allowed(format!("502: no upstream answered for {target}"));
        let r = ProbeResult::new(probe(target, protect("IWF test URL", target)), answer());
        assert!(!r.passed);
        assert_eq!(r.actual, Outcome::Allowed(String::new()));
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains(target), "{json}");
        // Twin: an ordinary probe keeps what came back, which the technician needs.
        let r = ProbeResult::new(probe(target, target.into()), answer());
        assert_eq!(r.actual, answer());
    }
}
