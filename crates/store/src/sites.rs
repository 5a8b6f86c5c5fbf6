//! Site filters: for each batch of a closed part, a Bloom filter of the sites its events
//! reached (each host and every name it is under), so a search of the logs by site decodes
//! only the batches that may hold one, not every batch back to the newest matches.
//!
//! A school's logs searched for one site (`site=example.com`) matched about one event in
//! 20,000: the newest 100 matches were a day back, and reading every batch of that day took
//! 3.2 s (`docs/performance.md`). The filter is written by the same background pass as the
//! device runs (`runs.rs`), a row per batch keyed as the batch, about 10 bits a name.
//!
//! Written by hand: the filters are kept on disk for the retention, so their hash must never
//! change with a library's version or a process's seed (which rules out std's and
//! `foldhash`'s hashers), and a Bloom filter over FNV-1a with double hashing is a few lines.

/// The tree of a part holding its batches' site filters.
pub(crate) const SITE_FILTERS: &str = "site-filters";

/// Bits a name in a filter, and probes: 10 and 4 give about 1.2% false positives.
const BITS_PER_NAME: usize = 10;
const PROBES: u64 = 4;
/// The smallest and largest filter, in bytes.
const MIN_BYTES: usize = 64;
const MAX_BYTES: usize = 8 << 10;

/// FNV-1a, 64 bits: fixed for ever (the filters are stored).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bit positions of a name (by its [`fnv1a`] hash) in a filter of `bits` bits
/// (Kirsch–Mitzenmacher double hashing: probe i is h1 + i·h2).
fn probes(h: u64, bits: u64) -> impl Iterator<Item = u64> {
    let (h1, h2) = (h & 0xffff_ffff, (h >> 32) | 1);
    (0..PROBES).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % bits)
}

/// A host as a site filter compares it: lowercase, without a final dot.
pub(crate) fn host_key(target: &str) -> String {
    crate::breach::site_of(target)
        .trim_end_matches('.')
        .to_lowercase()
}

/// The names a batch's filter holds for one host: the host and every name it is under
/// (`www.bbc.co.uk`, `bbc.co.uk`, `co.uk`, `uk`), as a site search matches.
fn names(host: &str) -> impl Iterator<Item = &str> {
    std::iter::once(host).chain(host.match_indices('.').map(|(i, _)| &host[i + 1..]))
}

/// Builds one batch's (or run's) filter from its events' hosts: the names' hashes, kept
/// until the filter is sized (a string a name cost an allocation each, a third of the
/// background pass's time when every query asked a new name).
#[derive(Default)]
pub(crate) struct FilterBuilder {
    hashes: Vec<u64>,
}

impl FilterBuilder {
    pub(crate) fn add(&mut self, target: &str) {
        let host = host_key(target);
        self.hashes
            .extend(names(&host).map(|n| fnv1a(n.as_bytes())));
    }

    /// The filter's bytes (its length gives its size), and the builder emptied.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        let bytes = (self.hashes.len() * BITS_PER_NAME)
            .div_ceil(8)
            .next_power_of_two()
            .clamp(MIN_BYTES, MAX_BYTES);
        let bits = (bytes * 8) as u64;
        let mut out = vec![0u8; bytes];
        for h in self.hashes.drain(..) {
            for p in probes(h, bits) {
                if let Some(b) = out.get_mut((p / 8) as usize) {
                    *b |= 1 << (p % 8);
                }
            }
        }
        out
    }
}

/// Whether a filter may hold `site` (already a [`host_key`]): false means the batch has no
/// event at that site or under it. An empty filter (damaged) may hold anything.
pub(crate) fn may_hold(filter: &[u8], site: &str) -> bool {
    if filter.is_empty() {
        return true;
    }
    let bits = (filter.len() * 8) as u64;
    probes(fnv1a(site.as_bytes()), bits).all(|p| {
        filter
            .get((p / 8) as usize)
            .is_some_and(|b| b & (1 << (p % 8)) != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_holds_each_host_and_the_names_it_is_under_and_few_others() {
        let mut b = FilterBuilder::default();
        for i in 0..400 {
            b.add(&format!("https://www.site{i}.example.co.uk/page?q=1"));
        }
        b.add("WWW.BBC.CO.UK.");
        let f = b.take();
        for site in [
            "www.bbc.co.uk",
            "bbc.co.uk",
            "co.uk",
            "uk",
            "site7.example.co.uk",
        ] {
            assert!(may_hold(&f, site), "{site}");
        }
        let false_positives = (0..10_000)
            .filter(|i| may_hold(&f, &format!("other{i}.example.org")))
            .count();
        assert!(false_positives < 300, "{false_positives} in 10,000");
    }

    #[test]
    fn the_hash_is_fnv_1a_so_stored_filters_read_in_any_later_build() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
