//! Phrase matching over search terms and URLs, with common obfuscation undone.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Normalises text for phrase matching and returns it with a space at each end:
/// - lower case (Unicode);
/// - digits and symbols used for letters read as letters (`0`→o, `1`→i, `3`→e, `4`→a,
///   `5`→s, `7`→t, `8`→b, `@`→a, `$`→s, `!`→i);
/// - every other non-alphanumeric run (spaces, punctuation, `+`, `%20` already decoded by
///   the caller) is one space;
/// - a run of three or more single-character words is joined (`s u i c i d e`, `s.e.x`).
///
/// Phrases are normalised the same way, so matching is on whole words: `rapist` does not
/// match inside `therapist`.
pub fn normalise_text(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let chars: Vec<char> = text.chars().collect();
    // A symbol stands for a letter only inside a word (`h@te`, `a$$hole`), not as punctuation
    // (`myself!!`): the run of symbols must have a letter or digit on each side. Two linear
    // passes find, for each position, whether that holds.
    let is_sym = |c: char| matches!(c, '!' | '@' | '$');
    let mut alnum_before = vec![false; chars.len()];
    let mut last = false;
    for (i, &c) in chars.iter().enumerate() {
        alnum_before[i] = last;
        if !is_sym(c) {
            last = c.is_alphanumeric();
        }
    }
    let mut alnum_after = vec![false; chars.len()];
    last = false;
    for (i, &c) in chars.iter().enumerate().rev() {
        alnum_after[i] = last;
        if !is_sym(c) {
            last = c.is_alphanumeric();
        }
    }
    for (i, &c) in chars.iter().enumerate() {
        let inside = || alnum_before[i] && alnum_after[i];
        let mapped = match c {
            '0' => Some('o'),
            '1' => Some('i'),
            '3' => Some('e'),
            '4' => Some('a'),
            '5' => Some('s'),
            '!' if inside() => Some('i'),
            '@' if inside() => Some('a'),
            '$' if inside() => Some('s'),
            '7' => Some('t'),
            '8' => Some('b'),
            c if c.is_alphanumeric() => None,
            _ => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                continue;
            }
        };
        match mapped {
            Some(m) => current.push(m),
            None => current.extend(c.to_lowercase()),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    let mut i = 0;
    while i < words.len() {
        let run = words[i..]
            .iter()
            .take_while(|w| w.chars().count() == 1)
            .count();
        if run >= 3 {
            for w in &words[i..i + run] {
                out.push_str(w);
            }
            i += run;
        } else {
            out.push_str(&words[i]);
            i += 1;
        }
        out.push(' ');
    }
    out
}

pub(crate) struct PhraseSet {
    automaton: Option<AhoCorasick>,
    /// Pattern index to (list, phrase as written).
    patterns: Vec<(u16, Box<str>)>,
}

pub(crate) struct PhraseSetBuilder {
    patterns: Vec<String>,
    owners: Vec<(u16, Box<str>)>,
}

impl PhraseSetBuilder {
    pub(crate) fn new() -> Self {
        Self {
            patterns: Vec::new(),
            owners: Vec::new(),
        }
    }

    /// Adds a phrase; returns false when nothing is left of it after normalisation.
    pub(crate) fn insert(&mut self, phrase: &str, list: u16) -> bool {
        let norm = normalise_text(phrase);
        if norm.trim().is_empty() {
            return false;
        }
        let squashed = format!(" {} ", norm.split_ascii_whitespace().collect::<String>());
        if squashed != norm {
            // `kill myself` also as the single word `killmyself`.
            self.patterns.push(squashed);
            self.owners.push((list, phrase.into()));
        }
        self.patterns.push(norm);
        self.owners.push((list, phrase.into()));
        true
    }

    pub(crate) fn build(self) -> Result<PhraseSet, aho_corasick::BuildError> {
        let automaton = if self.patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::Standard)
                    .build(&self.patterns)?,
            )
        };
        Ok(PhraseSet {
            automaton,
            patterns: self.owners,
        })
    }
}

impl PhraseSet {
    /// Each distinct (list, phrase) found in `text`.
    pub(crate) fn matches(&self, text: &str) -> Vec<(u16, &str)> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        let norm = normalise_text(text);
        let mut out: Vec<(u16, &str)> = Vec::new();
        for m in ac.find_overlapping_iter(&norm) {
            if let Some((list, phrase)) = self.patterns.get(m.pattern().as_usize()) {
                let hit = (*list, &**phrase);
                if !out.contains(&hit) {
                    out.push(hit);
                }
            }
        }
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(phrases: &[&str]) -> PhraseSet {
        let mut b = PhraseSetBuilder::new();
        for p in phrases {
            b.insert(p, 0);
        }
        b.build().unwrap()
    }

    #[test]
    fn obfuscation_is_undone() {
        assert_eq!(normalise_text("Kill  MYSELF!!"), " kill myself ");
        assert_eq!(normalise_text("a$$hole"), " asshole ");
        assert_eq!(normalise_text("s u i c i d e"), " suicide ");
        assert_eq!(normalise_text("S.U.1.C.1.D.E"), " suicide ");
        assert_eq!(normalise_text("h0w+t0+m4ke"), " how to make ");
    }

    #[test]
    fn phrases_match_through_obfuscation() {
        let s = set(&["kill myself", "suicide"]);
        for text in [
            "how to kill myself",
            "KILL+MYSELF",
            "k1ll my5elf",
            "killmyself",
            "s-u-i-c-i-d-e methods",
        ] {
            assert!(!s.matches(text).is_empty(), "{text}");
        }
    }

    #[test]
    fn phrases_do_not_match_inside_words() {
        let s = set(&["rapist", "suicide"]);
        assert!(s.matches("find a therapist near me").is_empty());
        assert!(s.matches("suicides squad film").is_empty());
        assert!(!s.matches("a rapist in the news").is_empty());
    }
}
