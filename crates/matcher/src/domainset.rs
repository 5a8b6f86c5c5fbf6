//! A static set of domain names as keyed hashes.
//!
//! Layout: open addressing with linear probing at a load of at most 0.8, in three parallel
//! arrays: a one-byte tag per slot (0 = empty, else 0x80 | seven hash bits), 32 more bits of
//! the hash, and the value in the narrowest width that holds every value of the set (one byte
//! for up to 255 distinct list sets, the usual case). A miss, the common case for DNS, usually
//! reads only the tag array (about 1.25 bytes a name, so it stays in cache); a hit reads one tag
//! run, one key and one value. About 7.5 bytes a name in all (16 with 64-bit keys and 32-bit
//! values, as before).
//!
//! A name matches when its tag and 32-bit key equal a stored entry's within its probe run: 39
//! bits, drawn from hash bits the slot choice does not use. A probe compares about one entry, so
//! an unlisted name is taken for a listed one about once in 2^39 lookups (one in 550 billion).
//! The build compares whole 64-bit hashes; of two listed names that share those 39 bits in one
//! probe run (as rare), a lookup finds the first. Slots are chosen by multiply-shift,
//! so the table needs no power-of-two size. Hashes use a per-build random seed, so nobody can
//! aim query names at one cluster of the table or construct a collision in advance.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;

/// Slots per entry: load factor 0.8.
const SLOTS_PER_ENTRY: f64 = 1.25;
/// Tags examined per step, as one little-endian `u64`.
const GROUP: usize = 8;
const LSB: u64 = 0x0101_0101_0101_0101;
const MSB: u64 = 0x8080_8080_8080_8080;
/// Names buffered before insertion. Inserted in hash order, a sorted chunk walks the table
/// almost sequentially (slots are chosen by multiply-shift, so they follow hash order): random
/// order cost a cache miss per name, 31% more build time for 1M names. The chunk is 1 MiB, so
/// the build's peak memory stays the table's.
const CHUNK: usize = 1 << 16;
/// Most suffixes probed together; longer names are probed in batches of this size.
const BATCH: usize = 16;

pub(crate) struct DomainSetBuilder {
    hasher: FixedState,
    /// Hashes waiting to be inserted, flushed sorted (see [`CHUNK`]).
    chunk: Vec<(u64, u32)>,
    tags: Vec<u8>,
    keys: Vec<u64>,
    values: Vec<u32>,
    len: usize,
}

impl DomainSetBuilder {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            hasher: FixedState::with_seed(seed),
            chunk: Vec::new(),
            tags: Vec::new(),
            keys: Vec::new(),
            values: Vec::new(),
            len: 0,
        }
    }

    /// Makes room for `more` names beyond those held, so that loading a list of known length
    /// never rehashes: the build then holds the table and nothing else.
    pub(crate) fn reserve(&mut self, more: usize) {
        let needed = ((self.len + more) as f64 * SLOTS_PER_ENTRY) as usize + 1;
        if needed > self.tags.len() {
            self.resize(needed.max(8));
        }
    }

    /// Adds a name; a name added twice gets `merge(old value, value)` (applied at the next
    /// flush, so `merge` must not depend on order: list-set union does not).
    pub(crate) fn insert(&mut self, name: &str, value: u32, merge: impl FnMut(u32, u32) -> u32) {
        self.chunk.push((self.hasher.hash_one(name), value));
        if self.chunk.len() >= CHUNK {
            self.flush(merge);
        }
    }

    /// Inserts the buffered names in hash order.
    pub(crate) fn flush(&mut self, mut merge: impl FnMut(u32, u32) -> u32) {
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.sort_unstable();
        if ((self.len + chunk.len()) as f64 * SLOTS_PER_ENTRY) as usize >= self.tags.len() {
            let needed = ((self.len + chunk.len()) as f64 * SLOTS_PER_ENTRY) as usize + 1;
            self.resize(needed.max(self.tags.len() * 2).max(16));
        }
        let slots = self.tags.len();
        for &(key, value) in &chunk {
            let mut at = slot_of(key, slots);
            let mut merged = false;
            // Fewer entries than slots, so an empty slot ends every probe.
            while self.tags[at] != 0 {
                if self.keys[at] == key {
                    self.values[at] = merge(self.values[at], value);
                    merged = true;
                    break;
                }
                at += 1;
                if at == slots {
                    at = 0;
                }
            }
            if !merged {
                self.tags[at] = tag_of(key);
                self.keys[at] = key;
                self.values[at] = value;
                self.len += 1;
            }
        }
        chunk.clear();
        self.chunk = chunk;
    }

    fn resize(&mut self, slots: usize) {
        let old_tags = std::mem::replace(&mut self.tags, vec![0; slots]);
        let old_keys = std::mem::replace(&mut self.keys, vec![0; slots]);
        let old_values = std::mem::replace(&mut self.values, vec![0; slots]);
        for ((tag, key), value) in old_tags.into_iter().zip(old_keys).zip(old_values) {
            if tag == 0 {
                continue;
            }
            let mut at = slot_of(key, slots);
            while self.tags[at] != 0 {
                at += 1;
                if at == slots {
                    at = 0;
                }
            }
            self.tags[at] = tag;
            self.keys[at] = key;
            self.values[at] = value;
        }
    }

    /// Lays out the lookup table (the tags get their mirrored first group). Call [`Self::flush`]
    /// first.
    pub(crate) fn build(mut self) -> DomainSet {
        debug_assert!(self.chunk.is_empty(), "flush before build");
        if self.tags.len() < GROUP {
            self.resize(GROUP * 2);
        }
        let slots = self.tags.len();
        let mirror: Vec<u8> = self.tags[..GROUP].to_vec();
        self.tags.extend_from_slice(&mirror);
        let keys = self.keys.iter().map(|&k| short_key(k)).collect();
        drop(self.keys);
        DomainSet {
            hasher: self.hasher,
            slots,
            len: self.len,
            tags: self.tags.into_boxed_slice(),
            keys,
            values: Values::narrowest(self.values),
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

/// The 32 hash bits stored per slot: the ones above the tag's seven. The slot comes from the
/// top bits (multiply-shift), which for any table under 2^25 slots lie above these.
#[inline]
fn short_key(hash: u64) -> u32 {
    (hash >> 7) as u32
}

/// Per-slot values in the narrowest width that holds them all.
enum Values {
    U8(Box<[u8]>),
    U16(Box<[u16]>),
    U32(Box<[u32]>),
}

impl Values {
    fn narrowest(values: Vec<u32>) -> Self {
        let max = values.iter().copied().max().unwrap_or(0);
        // The casts below keep every value: each is at most `max`, which fits.
        if u8::try_from(max).is_ok() {
            Self::U8(values.iter().map(|&v| v as u8).collect())
        } else if u16::try_from(max).is_ok() {
            Self::U16(values.iter().map(|&v| v as u16).collect())
        } else {
            Self::U32(values.into_boxed_slice())
        }
    }

    #[inline]
    fn get(&self, at: usize) -> Option<u32> {
        match self {
            Self::U8(v) => v.get(at).map(|&x| u32::from(x)),
            Self::U16(v) => v.get(at).map(|&x| u32::from(x)),
            Self::U32(v) => v.get(at).copied(),
        }
    }

    fn width(&self) -> usize {
        match self {
            Self::U8(_) => 1,
            Self::U16(_) => 2,
            Self::U32(_) => 4,
        }
    }
}

pub(crate) struct DomainSet {
    hasher: FixedState,
    /// Slots in the table; `tags` has `GROUP` more, mirroring the first group.
    slots: usize,
    len: usize,
    tags: Box<[u8]>,
    keys: Box<[u32]>,
    values: Values,
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
        let key = short_key(h);
        loop {
            let mut m = match_tag(group, tag);
            while m != 0 {
                let mut idx = at + (m.trailing_zeros() / 8) as usize;
                if idx >= self.slots {
                    idx -= self.slots;
                }
                if self.keys.get(idx).copied() == Some(key) {
                    return self.values.get(idx);
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
        self.tags.len() + self.slots * (4 + self.values.width())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_found_and_others_are_not() {
        let mut b = DomainSetBuilder::new(7);
        for i in 0..10_000u32 {
            b.insert(&format!("host{i}.example"), i, |_, new| new);
        }
        b.insert("host5.example", 99_999, |old, new| old.max(new));
        b.flush(|old, new| old.max(new));
        let set = b.build();
        assert_eq!(set.len(), 10_000);
        assert_eq!(set.get("host1.example"), Some(1));
        assert_eq!(set.get("host5.example"), Some(99_999));
        for i in 10_000..20_000u32 {
            assert_eq!(set.get(&format!("host{i}.example")), None);
        }
    }

    #[test]
    fn values_keep_their_width() {
        for (top, width) in [(200u32, 1), (60_000, 2), (3_000_000, 4)] {
            let mut b = DomainSetBuilder::new(3);
            for i in 0..1_000u32 {
                b.insert(&format!("n{i}.example"), top - i % 150, |_, new| new);
            }
            b.flush(|_, new| new);
            let set = b.build();
            assert_eq!(set.values.width(), width);
            for i in 0..1_000u32 {
                assert_eq!(set.get(&format!("n{i}.example")), Some(top - i % 150));
            }
            assert_eq!(set.get("n1000.example"), None);
        }
    }

    #[test]
    fn empty_and_tiny_sets_work() {
        let set = DomainSetBuilder::new(1).build();
        assert_eq!(set.get("anything"), None);
        let mut b = DomainSetBuilder::new(1);
        b.insert("one", 1, |_, new| new);
        b.flush(|_, new| new);
        let set = b.build();
        assert_eq!(set.get("one"), Some(1));
        assert_eq!(set.get("two"), None);
    }
}
