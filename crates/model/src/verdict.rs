//! Categories, actions, tiers and the verdict that carries them.

use std::fmt;
use std::sync::Arc;

/// A category id such as `adult`, `gambling` or `child-abuse`: lower-case ASCII letters,
/// digits, `_` and `-`, 1 to 64 characters. Configuration accepts only the ids of the
/// vocabulary ([`crate::VOCABULARY`]); a `Category` read back from stored events may carry
/// any well-formed id, and [`Category::display_name`] falls back to the id for those.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(Arc<str>);

/// Why a string is not a category name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("category {0:?} must be 1-64 characters of a-z, 0-9, '_' or '-'")]
#[non_exhaustive]
pub struct CategoryError(pub String);

impl Category {
    pub fn new(name: &str) -> Result<Self, CategoryError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(Arc::from(name)))
        } else {
            Err(CategoryError(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Category({})", self.0)
    }
}

impl std::str::FromStr for Category {
    type Err = CategoryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl serde::Serialize for Category {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Category {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Category::new(&s).map_err(serde::de::Error::custom)
    }
}

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Allow,
    Block,
    /// Answered with something else than asked for: a SafeSearch rewrite.
    Rewrite,
}

/// Which layer of the policy decided. Precedence, highest first, is the order of
/// [`Tier::rank`] (and of `Ord`): a tier earlier in that order always beats a later one.
///
/// The order of the variants is the stored encoding (the log store writes the variant's
/// index): new variants go at the end, whatever their place in the precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// The illegal-content tier (IWF, police terrorism list, any list marked illegal).
    /// Nothing overrides it.
    Illegal,
    /// A built-in circumvention defence (the DoH canary, iCloud Private Relay, DDR).
    Circumvention,
    /// The group's own allow entries (with the hosts listed `with` them).
    LocalAllow,
    /// The group's own block entries.
    LocalBlock,
    /// A shared allow list (must-allow sites) that is at least as specific as any
    /// category entry that matched; in an approved-only group, one of its approved lists.
    AllowList,
    /// A blocked category is allowed at this time by one of the group's schedules.
    Schedule,
    /// A category list (domain, URL, regex or phrase entry).
    Category,
    /// Nothing matched, or only categories the group does not block.
    Default,
    /// The group is approved-only (a walled garden) and nothing approves this site: not its
    /// allow entries, nor its approved lists. Below every allow tier and every category
    /// block, above [`Tier::Default`], which it replaces for such groups.
    NotApproved,
}

impl Tier {
    /// The place in the precedence order, 0 the highest.
    pub fn rank(self) -> u8 {
        match self {
            Tier::Illegal => 0,
            Tier::Circumvention => 1,
            Tier::LocalAllow => 2,
            Tier::LocalBlock => 3,
            Tier::AllowList => 4,
            Tier::Schedule => 5,
            Tier::Category => 6,
            Tier::NotApproved => 7,
            Tier::Default => 8,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Illegal => "illegal",
            Tier::Circumvention => "circumvention",
            Tier::LocalAllow => "local-allow",
            Tier::LocalBlock => "local-block",
            Tier::AllowList => "allow-list",
            Tier::Schedule => "schedule",
            Tier::Category => "category",
            Tier::NotApproved => "not-approved",
            Tier::Default => "default",
        }
    }

    /// What the tier means, in a sentence, for `lookup` and people reading a verdict.
    pub fn explain(self) -> &'static str {
        match self {
            Tier::Illegal => "on an illegal-content list (IWF, police): always blocked",
            Tier::Circumvention => "a built-in defence against getting round the filter",
            Tier::LocalAllow => "the group's own allow entries",
            Tier::LocalBlock => "the group's own block entries",
            Tier::AllowList => "an allow list",
            Tier::Schedule => "a blocked category that a schedule opens now",
            Tier::Category => "a category the group blocks",
            Tier::NotApproved => {
                "the group is approved-only: anything not on its allow entries or approved lists is blocked"
            }
            Tier::Default => "nothing the group blocks matched",
        }
    }
}

impl PartialOrd for Tier {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Tier {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Block => "block",
            Action::Rewrite => "rewrite",
        })
    }
}

/// What is shown instead of an illegal-tier entry, and instead of the host, URL and search
/// terms of a request that matched one: the entry is never available in clear anywhere.
pub const PROTECTED_RULE: &str = "[protected entry]";

/// A decision with everything a log line or block page needs to explain it.
///
/// For the illegal tier, `rule` is never the entry itself: the entry is held only as a keyed
/// hash, so `rule` says `[protected entry]`.
///
/// Serialised (`lookup --json`, change previews) with `category_name` beside `category`: the
/// vocabulary's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub tier: Tier,
    pub category: Option<Category>,
    /// The list's configured name, or `local` for a group's own entries.
    pub list: Option<Arc<str>>,
    /// The rule that decided: the matched domain suffix, URL entry, phrase or pattern.
    pub rule: Option<Arc<str>>,
}

impl serde::Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Verdict", 6)?;
        st.serialize_field("action", &self.action)?;
        st.serialize_field("tier", &self.tier)?;
        st.serialize_field("category", &self.category)?;
        st.serialize_field(
            "category_name",
            &self.category.as_ref().map(Category::display_name),
        )?;
        st.serialize_field("list", &self.list)?;
        st.serialize_field("rule", &self.rule)?;
        st.end()
    }
}

impl Verdict {
    /// The verdict when nothing matched.
    pub fn default_allow() -> Self {
        Self {
            action: Action::Allow,
            tier: Tier::Default,
            category: None,
            list: None,
            rule: None,
        }
    }

    pub fn is_blocked(&self) -> bool {
        self.action == Action::Block
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (tier {}", self.action, self.tier)?;
        if let Some(c) = &self.category {
            write!(f, ", category {c}")?;
        }
        if let Some(l) = &self.list {
            write!(f, ", list {l}")?;
        }
        if let Some(r) = &self.rule {
            write!(f, ", rule {r}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names_are_checked() {
        assert!(Category::new("adult").is_ok());
        assert!(Category::new("self-harm_2").is_ok());
        assert!(Category::new("Adult").is_err());
        assert!(Category::new("").is_err());
        assert!(Category::new("a b").is_err());
    }

    #[test]
    fn tiers_are_ordered_by_precedence() {
        assert!(Tier::Illegal < Tier::LocalAllow);
        assert!(Tier::LocalAllow < Tier::LocalBlock);
        assert!(Tier::LocalBlock < Tier::AllowList);
        assert!(Tier::AllowList < Tier::Category);
        assert!(Tier::Category < Tier::NotApproved);
        assert!(Tier::NotApproved < Tier::Default);
        assert_eq!(Tier::NotApproved.as_str(), "not-approved");
    }
}
