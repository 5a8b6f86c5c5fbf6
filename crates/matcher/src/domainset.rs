//! A static set of domain names as 64-bit keyed hashes.
//!
//! Layout: open addressing with linear probing at a load of at most 0.8, in three parallel
//! arrays: a one-byte tag per slot (0 = empty, else 0x80 | seven hash bits), the 64-bit hash,
//! and a 32-bit value. A miss, the common case for DNS, usually reads only the tag array (about
//! 1.25 bytes a name, so it stays in cache); a hit reads one tag run, one key and one value.
//! About 16 bytes a name in all. Slots are chosen by multiply-shift, so the table needs no
//! power-of-two size. Hashes use a per-build random seed, so nobody can aim query names at
//! one cluster of the table.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;

/// Slots per entry: load factor 0.8.
const SLOTS_PER_ENTRY: f64 = 1.25;
/// Tags examined per step, as one little-endian `u64`.
const GROUP: usize = 8;
const LSB: u64 = 0x0101_0101_0101_0101;
const MSB: u64 = 0x8080_8080_8080_8080;
/// Most suffixes probed together; longer names are probed in batches of this size.
const BATCH: usize = 16;

pub(crate) struct DomainSetBuilder {
    hasher: FixedState,
    pending: Vec<(u64, u32)>,
}

impl DomainSetBuilder {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            hasher: FixedState::with_seed(seed),
            pending: Vec::new(),
        }
    }

    pub(crate) fn insert(&mut self, name: &str, value: u32) {
        self.pending.push((self.hasher.hash_one(name), value));
    }

    /// Merges duplicate names through `merge` (which returns the value for the set of values a
    /// name had) and lays out the table.
    pub(crate) fn build(mut self, mut merge: impl FnMut(&[u32]) -> u32) -> DomainSet {
        // Sorting groups duplicates; it also makes the insertion order, and so the layout,
        // independent of list order.
        self.pending.sort_unstable();
        self.pending.dedup();
        // Merge duplicate names in place (the write index trails the read index), so the
        // build never holds two copies of the list: the peak is the pending list plus the
        // table, not three arrays.
        let mut unique = std::mem::take(&mut self.pending);
        let mut scratch = Vec::new();
        let (mut read, mut write) = (0, 0);
        while read < unique.len() {
            let key = unique[read].0;
            let mut end = read + 1;
            while end < unique.len() && unique[end].0 == key {
                end += 1;
            }
            let value = if end - read == 1 {
                unique[read].1
            } else {
                scratch.clear();
                scratch.extend(unique[read..end].iter().map(|p| p.1));
                merge(&scratch)
            };
            unique[write] = (key, value);
            write += 1;
            read = end;
        }
        unique.truncate(write);
        let slots = ((unique.len() as f64 * SLOTS_PER_ENTRY) as usize)
            .max(unique.len() + 1)
            .max(8);
        let mut tags = vec![0u8; slots];
        let mut keys = vec![0u64; slots];
        let mut values = vec![0u32; slots];
        for &(key, value) in &unique {
            let mut at = slot_of(key, slots);
            // The table always has an empty slot (slots > entries), so this ends.
            while tags[at] != 0 {
                at += 1;
                if at == slots {
                    at = 0;
                }
            }
            tags[at] = tag_of(key);
            keys[at] = key;
            values[at] = value;
        }
        drop(unique);
        let len = tags.iter().filter(|t| **t != 0).count();
        // Mirror the first group after the end so a group read at any slot is one plain load.
        let mirror: Vec<u8> = tags[..GROUP].to_vec();
        tags.extend_from_slice(&mirror);
        DomainSet {
            hasher: self.hasher,
            slots,
            len,
            tags: tags.into_boxed_slice(),
            keys: keys.into_boxed_slice(),
            values: values.into_boxed_slice(),
        }
    }
}

#[inline]
fn slot_of(hash: u64, slots: usize) -> usize {
    ((u128::from(hash) * slots as u128) >> 64) as usize
}

#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | (hash as u8 & 0x7f)
}

pub(crate) struct DomainSet {
    hasher: FixedState,
    /// Slots in the table; `tags` has `GROUP` more, mirroring the first group.
    slots: usize,
    len: usize,
    tags: Box<[u8]>,
    keys: Box<[u64]>,
    values: Box<[u32]>,
}

/// High bit set in each byte of `group` that equals `tag` (plus, rarely, a false positive
/// above a true match, which the key comparison rejects).
#[inline]
fn match_tag(group: u64, tag: u8) -> u64 {
    let x = group ^ (LSB * u64::from(tag));
    x.wrapping_sub(LSB) & !x & MSB
}

/// True when some byte of `group` is zero (an empty slot ends every probe sequence).
#[inline]
fn has_empty(group: u64) -> bool {
    group.wrapping_sub(LSB) & !group & MSB != 0
}

impl DomainSet {
    #[inline]
    fn group_at(&self, at: usize) -> u64 {
        self.tags
            .get(at..at + GROUP)
            .and_then(|b| <[u8; GROUP]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
    }

    /// Finishes a probe whose first group, at `at`, was already loaded.
    #[inline]
    fn finish_probe(&self, h: u64, mut at: usize, mut group: u64) -> Option<u32> {
        let tag = tag_of(h);
        loop {
            let mut m = match_tag(group, tag);
            while m != 0 {
                let mut idx = at + (m.trailing_zeros() / 8) as usize;
                if idx >= self.slots {
                    idx -= self.slots;
                }
                if self.keys.get(idx).copied() == Some(h) {
                    return self.values.get(idx).copied();
                }
                m &= m - 1;
            }
            if has_empty(group) {
                return None;
            }
            at += GROUP;
            if at >= self.slots {
                at -= self.slots;
            }
            group = self.group_at(at);
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        let h = self.hasher.hash_one(name);
        let at = slot_of(h, self.slots);
        self.finish_probe(h, at, self.group_at(at))
    }

    /// Looks up every name in `names` (a host's suffixes), calling `f(index, value)` for each
    /// listed one in order. The hashes and first tag groups of up to 16 names are computed
    /// before any is examined, so their cache misses overlap instead of queueing.
    #[inline]
    pub(crate) fn for_each_listed<'n>(
        &self,
        names: impl Iterator<Item = &'n str>,
        mut f: impl FnMut(usize, &'n str, u32),
    ) {
        let mut batch: [(u64, usize, u64, &str); BATCH] = [(0, 0, 0, ""); BATCH];
        let mut names = names.enumerate().peekable();
        while names.peek().is_some() {
            let mut n = 0;
            let mut first = 0;
            for (i, name) in names.by_ref().take(BATCH) {
                if n == 0 {
                    first = i;
                }
                let h = self.hasher.hash_one(name);
                let at = slot_of(h, self.slots);
                batch[n] = (h, at, self.group_at(at), name);
                n += 1;
            }
            for (k, &(h, at, group, name)) in batch[..n].iter().enumerate() {
                if let Some(v) = self.finish_probe(h, at, group) {
                    f(first + k, name, v);
                }
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.tags.len() + self.slots * (8 + 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_and_others_are_not() {
        let mut b = DomainSetBuilder::new(7);
        for i in 0..10_000u32 {
            b.insert(&format!("host{i}.example"), i);
        }
        b.insert("host5.example", 99_999);
        let set = b.build(|vals| vals.iter().copied().max().unwrap_or(0));
        assert_eq!(set.len(), 10_000);
        assert_eq!(set.get("host1.example"), Some(1));
        assert_eq!(set.get("host5.example"), Some(99_999));
        for i in 10_000..20_000u32 {
            assert_eq!(set.get(&format!("host{i}.example")), None);
        }
    }

    #[test]
    fn empty_and_tiny_sets_work() {
        let set = DomainSetBuilder::new(1).build(|_| 0);
        assert_eq!(set.get("anything"), None);
        let mut b = DomainSetBuilder::new(1);
        b.insert("one", 1);
        let set = b.build(|_| 0);
        assert_eq!(set.get("one"), Some(1));
        assert_eq!(set.get("two"), None);
    }
}
