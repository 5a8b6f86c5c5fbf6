//! This crate is Hedgerow's category matcher: it compiles block, allow and illegal-content
//! lists into one immutable [`Matcher`] that the DNS resolver and the web proxy both consult.
//!
//! It holds five structures, each built once and never mutated:
//! - a set of domain suffixes, stored as keyed hashes in an open-addressing table (about 7.5
//!   bytes a name; a lookup hashes each suffix of the name at label boundaries and usually
//!   reads one group of one-byte tags);
//! - URL-level entries, by host, matched as an exact URL or a path prefix at a path boundary;
//! - the illegal-content tier, held only as 128-bit keyed SipHash values of the normalised
//!   entries: once loaded nothing can display, log or enumerate it;
//! - phrases, matched with aho-corasick after undoing common obfuscation;
//! - regular expressions, compiled once into a size-limited `RegexSet`.
//!
//! It reports what matched (list, rule, how specific); it does not decide. Precedence between
//! tiers, groups and schedules belongs to `hedgerow-policy`. It has no async runtime, no
//! storage and no configuration types, so it can be benchmarked and fuzzed on its own.

mod builder;
mod domainset;
mod illegal;
mod parse;
mod phrases;
mod urlset;

pub use builder::{
    BadLine, Hit, ListError, ListId, ListSpec, LoadReport, MatchLevel, Matcher, MatcherBuilder,
    MatcherStats, PhraseHit,
};
pub use illegal::{IllegalHit, IllegalKey, IllegalSet, IllegalSetError};
pub use phrases::normalise_text;

#[cfg(test)]
mod tests;
