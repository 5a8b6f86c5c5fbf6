//! The category vocabulary: every category a list may carry and a group may block, with its
//! stable id (what configuration, logs, breach rules and stored events use), the name people
//! are shown (block pages, `hedgerow logs`, `lookup --json`), what it covers, and the UK Safer
//! Internet Centre (UKSIC) "appropriate filtering" category it answers for.
//!
//! `docs/categories.md` is the published form of this table (the categorisation policy a school
//! hands its governors); `tests/categories.rs` checks that the two agree. The ids are stable:
//! a renamed id would orphan stored events, breach rules and change-control history, so an id
//! is added, never renamed.

use std::fmt;

use crate::Category;

/// The categories the UK Safer Internet Centre's "appropriate filtering" definitions ask a
/// school's filter to manage, plus the illegal content every filter must block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Uksic {
    /// Illegal online content: child sexual abuse material (the IWF list) and unlawful
    /// terrorist content (the police CTIRU list).
    IllegalContent,
    Discrimination,
    DrugsSubstanceAbuse,
    Extremism,
    Gambling,
    HateSpeech,
    MalwareHacking,
    MisDisinformation,
    Pornography,
    PiracyCopyrightTheft,
    SelfHarmEatingDisorders,
    Violence,
    ViolenceAgainstWomenAndGirls,
}

impl Uksic {
    /// Every UKSIC category, in the order the definitions list them (illegal content first).
    pub const ALL: [Uksic; 13] = [
        Uksic::IllegalContent,
        Uksic::Discrimination,
        Uksic::DrugsSubstanceAbuse,
        Uksic::Extremism,
        Uksic::Gambling,
        Uksic::HateSpeech,
        Uksic::MalwareHacking,
        Uksic::MisDisinformation,
        Uksic::Pornography,
        Uksic::PiracyCopyrightTheft,
        Uksic::SelfHarmEatingDisorders,
        Uksic::Violence,
        Uksic::ViolenceAgainstWomenAndGirls,
    ];

    /// The name as the UKSIC definitions give it.
    pub fn name(self) -> &'static str {
        match self {
            Uksic::IllegalContent => "Illegal content (child sexual abuse, terrorism)",
            Uksic::Discrimination => "Discrimination",
            Uksic::DrugsSubstanceAbuse => "Drugs / substance abuse",
            Uksic::Extremism => "Extremism",
            Uksic::Gambling => "Gambling",
            Uksic::HateSpeech => "Hate speech",
            Uksic::MalwareHacking => "Malware / hacking",
            Uksic::MisDisinformation => "Mis- and disinformation",
            Uksic::Pornography => "Pornography",
            Uksic::PiracyCopyrightTheft => "Piracy and copyright theft",
            Uksic::SelfHarmEatingDisorders => "Self-harm and eating disorders",
            Uksic::Violence => "Violence",
            Uksic::ViolenceAgainstWomenAndGirls => "Violence against women and girls",
        }
    }

    /// The vocabulary's categories that answer for this UKSIC category.
    pub fn categories(self) -> impl Iterator<Item = &'static CategoryInfo> {
        VOCABULARY.iter().filter(move |c| c.uksic == Some(self))
    }
}

impl fmt::Display for Uksic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One category of the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CategoryInfo {
    /// The stable id: what lists, groups, breach rules, logs and stored events use.
    pub id: &'static str,
    /// What people are shown: block pages, `hedgerow logs` tables, `lookup --json`.
    pub name: &'static str,
    /// The UKSIC category this one answers for; `None` for the school's own policy
    /// categories (games, social media, generative AI, dating, chat).
    pub uksic: Option<Uksic>,
    /// What it covers, in a sentence (docs/categories.md says more).
    pub covers: &'static str,
    /// Other spellings people write for it, for "did you mean" in configuration errors.
    /// Never accepted in place of the id.
    pub aliases: &'static [&'static str],
}

/// The vocabulary, in the order `docs/categories.md` lists it.
pub const VOCABULARY: &[CategoryInfo] = &[
    CategoryInfo {
        id: "child-abuse",
        name: "Child sexual abuse content (IWF list)",
        uksic: Some(Uksic::IllegalContent),
        covers: "child sexual abuse images and videos on the Internet Watch Foundation's URL list; illegal tier only",
        aliases: &["csam", "iwf", "child-sexual-abuse"],
    },
    CategoryInfo {
        id: "terrorism",
        name: "Unlawful terrorist content (police list)",
        uksic: Some(Uksic::IllegalContent),
        covers: "content on the police Counter Terrorism Internet Referral Unit's list; illegal tier only",
        aliases: &["ctiru", "terrorist"],
    },
    CategoryInfo {
        id: "adult",
        name: "Pornography",
        uksic: Some(Uksic::Pornography),
        covers: "sexual acts or explicit images, and sites whose main business is them",
        aliases: &["porn", "pornography", "sex", "xxx", "nsfw"],
    },
    CategoryInfo {
        id: "discrimination",
        name: "Discrimination",
        uksic: Some(Uksic::Discrimination),
        covers: "unjust or prejudicial treatment of people with protected characteristics (Equality Act 2010)",
        aliases: &["prejudice"],
    },
    CategoryInfo {
        id: "drugs",
        name: "Drugs and substance abuse",
        uksic: Some(Uksic::DrugsSubstanceAbuse),
        covers: "the illegal use of drugs or substances promoted or sold, including vaping sales to children",
        aliases: &["drug", "substance-abuse", "narcotics"],
    },
    CategoryInfo {
        id: "extremism",
        name: "Extremism",
        uksic: Some(Uksic::Extremism),
        covers: "terrorism and terrorist ideologies, violence or intolerance promoted (lawful material the police list does not cover)",
        aliases: &["radicalisation", "radicalization", "extremist"],
    },
    CategoryInfo {
        id: "gambling",
        name: "Gambling",
        uksic: Some(Uksic::Gambling),
        covers: "betting, casinos, lotteries and other sites that enable gambling",
        aliases: &["betting", "casino"],
    },
    CategoryInfo {
        id: "hate",
        name: "Hate speech",
        uksic: Some(Uksic::HateSpeech),
        covers: "racial hatred and other content that attacks people for who they are; hate groups' sites",
        aliases: &[
            "hate-speech",
            "racism",
            "racial-hatred",
            "hate-groups",
            "hate_groups",
        ],
    },
    CategoryInfo {
        id: "malware",
        name: "Malware and phishing",
        uksic: Some(Uksic::MalwareHacking),
        covers: "sites hosting malicious software, phishing, scams, cryptojacking and stalkerware",
        aliases: &["phishing", "virus", "scam", "cryptojacking"],
    },
    CategoryInfo {
        id: "hacking",
        name: "Hacking",
        uksic: Some(Uksic::MalwareHacking),
        covers: "tools and guides for compromising systems, denial-of-service services, cracking",
        aliases: &["ddos", "cracking"],
    },
    CategoryInfo {
        id: "circumvention",
        name: "Filter circumvention (proxies, VPNs, encrypted DNS)",
        uksic: Some(Uksic::MalwareHacking),
        covers: "web proxies, VPNs, DNS-over-HTTPS resolvers, remote-desktop relays and other ways round the filter",
        aliases: &["proxy", "vpn", "doh", "anonymiser", "anonymizer", "bypass"],
    },
    CategoryInfo {
        id: "misinformation",
        name: "Mis- and disinformation",
        uksic: Some(Uksic::MisDisinformation),
        covers: "sites that exist to spread false or misleading information to deceive, manipulate or harm",
        aliases: &["disinformation", "fake-news", "conspiracy"],
    },
    CategoryInfo {
        id: "piracy",
        name: "Piracy and copyright theft",
        uksic: Some(Uksic::PiracyCopyrightTheft),
        covers: "illegal provision of copyrighted material: warez, torrent indexes, unlicensed streams",
        aliases: &["warez", "torrent", "copyright"],
    },
    CategoryInfo {
        id: "self-harm",
        name: "Self-harm, suicide and eating disorders",
        uksic: Some(Uksic::SelfHarmEatingDisorders),
        covers: "content that encourages or instructs self-harm or suicide, or promotes eating disorders (pro-ana)",
        aliases: &[
            "selfharm",
            "self_harm",
            "suicide",
            "eating-disorders",
            "pro-ana",
        ],
    },
    CategoryInfo {
        id: "violence",
        name: "Violence",
        uksic: Some(Uksic::Violence),
        covers: "the use of physical force to hurt or kill promoted or shown: gore, snuff, weapons for harm",
        aliases: &["gore", "weapons", "violent"],
    },
    CategoryInfo {
        id: "vawg",
        name: "Violence against women and girls",
        uksic: Some(Uksic::ViolenceAgainstWomenAndGirls),
        covers: "misogyny, and violence, abuse or coercion against women and girls promoted or normalised",
        aliases: &["misogyny", "violence-against-women"],
    },
    CategoryInfo {
        id: "games",
        name: "Games",
        uksic: None,
        covers: "online games and game stores (school policy: the DfE standard leaves this to the school)",
        aliases: &["gaming", "game"],
    },
    CategoryInfo {
        id: "social",
        name: "Social media",
        uksic: None,
        covers: "social networks and video-sharing communities",
        aliases: &[
            "social-media",
            "social-networking",
            "social_networking",
            "social-networks",
        ],
    },
    CategoryInfo {
        id: "genai",
        name: "Generative AI tools",
        uksic: None,
        covers: "AI chat assistants and image, video and voice generators",
        aliases: &["ai", "generative-ai", "chatbots", "gen-ai"],
    },
    CategoryInfo {
        id: "dating",
        name: "Dating",
        uksic: None,
        covers: "dating and hook-up sites and apps",
        aliases: &["personals"],
    },
    CategoryInfo {
        id: "chat",
        name: "Chat with strangers",
        uksic: None,
        covers: "open chat rooms and random video chat with people the pupil does not know",
        aliases: &["chatrooms", "chat-rooms", "messaging"],
    },
];

/// Categories the policy itself decides, that no list carries: shown by name like the rest,
/// but not for a list or a group to name.
pub const POLICY_CATEGORIES: &[CategoryInfo] = &[CategoryInfo {
    id: "search-unenforceable",
    name: "Search engine without enforceable SafeSearch",
    uksic: None,
    covers: "search engines whose SafeSearch a filter cannot force ([safesearch] unenforceable), blocked for groups with SafeSearch on",
    aliases: &[],
}];

/// The vocabulary's entry for `id` (or the policy's own category's), if it is one.
pub fn category_info(id: &str) -> Option<&'static CategoryInfo> {
    VOCABULARY
        .iter()
        .chain(POLICY_CATEGORIES)
        .find(|c| c.id == id)
}

/// For an id that is not in the vocabulary: the id it most likely meant (an alias, or an id a
/// typo or two away), for "did you mean" in configuration errors.
pub fn suggest_category(unknown: &str) -> Option<&'static str> {
    let lower = unknown.to_ascii_lowercase();
    if let Some(c) = VOCABULARY
        .iter()
        .find(|c| c.id == lower || c.aliases.contains(&lower.as_str()))
    {
        return Some(c.id);
    }
    VOCABULARY
        .iter()
        .map(|c| (edit_distance(&lower, c.id), c.id))
        .filter(|(d, id)| *d <= 2 && *d < id.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, id)| id)
}

/// Levenshtein distance over bytes (ids are ASCII), for short strings only.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

impl Category {
    /// This category's entry in the vocabulary; `None` for a name outside it (old stored
    /// events, or a category a front names that no configuration could).
    pub fn info(&self) -> Option<&'static CategoryInfo> {
        category_info(self.as_str())
    }

    /// The name people are shown: the vocabulary's, or the id itself outside it.
    pub fn display_name(&self) -> &str {
        self.info().map_or(self.as_str(), |c| c.name)
    }

    /// The UKSIC category this one answers for, if any.
    pub fn uksic(&self) -> Option<Uksic> {
        self.info().and_then(|c| c.uksic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_unique_and_every_uksic_category_is_answered() {
        let mut seen = std::collections::HashSet::new();
        for c in VOCABULARY {
            assert!(Category::new(c.id).is_ok(), "{}", c.id);
            assert!(seen.insert(c.id), "{} twice", c.id);
            for a in c.aliases {
                assert!(category_info(a).is_none(), "alias {a} is also an id");
            }
        }
        for u in Uksic::ALL {
            assert!(u.categories().next().is_some(), "{u:?} has no category");
        }
    }

    #[test]
    fn display_names_and_suggestions() {
        let adult = Category::new("adult").unwrap();
        assert_eq!(adult.display_name(), "Pornography");
        assert_eq!(adult.uksic(), Some(Uksic::Pornography));
        let other = Category::new("synthetic").unwrap();
        assert_eq!(other.display_name(), "synthetic");
        assert_eq!(other.uksic(), None);
        assert_eq!(suggest_category("gmaes"), Some("games"));
        assert_eq!(suggest_category("gaming"), Some("games"));
        assert_eq!(suggest_category("pornography"), Some("adult"));
        assert_eq!(suggest_category("hate_groups"), Some("hate"));
        assert_eq!(suggest_category("zzzzzzzzzz"), None);
    }
}
