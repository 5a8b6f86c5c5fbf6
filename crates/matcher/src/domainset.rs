//! A static set of domain names as 64-bit keyed hashes.
//!
//! Layout: keys sorted ascending, a parallel array of values, and a directory indexed by the
//! top `bits` of the hash giving each bucket's first position. With `2^bits <= n` the
//! directory costs at most 4 bytes a name, buckets hold one or two keys on average, and a
//! probe touches the directory and one run of keys. Hashes use a per-process random seed, so
//! nobody can aim query names at collisions.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;

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

    /// Sorts, merges duplicate names through `merge` (which returns the value for the set of
    /// values a name had), and lays out the directory.
    pub(crate) fn build(mut self, mut merge: impl FnMut(&[u32]) -> u32) -> DomainSet {
        self.pending.sort_unstable();
        self.pending.dedup();
        let mut keys = Vec::with_capacity(self.pending.len());
        let mut values = Vec::with_capacity(self.pending.len());
        let mut scratch = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            let key = self.pending[i].0;
            let mut j = i + 1;
            while j < self.pending.len() && self.pending[j].0 == key {
                j += 1;
            }
            let value = if j - i == 1 {
                self.pending[i].1
            } else {
                scratch.clear();
                scratch.extend(self.pending[i..j].iter().map(|p| p.1));
                merge(&scratch)
            };
            keys.push(key);
            values.push(value);
            i = j;
        }
        drop(self.pending);
        let bits = usize::BITS - keys.len().max(2).leading_zeros() - 1;
        let bits = bits.clamp(1, 30);
        let buckets = 1usize << bits;
        let shift = 64 - bits;
        let mut dir = Vec::with_capacity(buckets + 1);
        let mut pos = 0usize;
        for b in 0..buckets as u64 {
            while pos < keys.len() && (keys[pos] >> shift) < b {
                pos += 1;
            }
            dir.push(pos as u32);
        }
        dir.push(keys.len() as u32);
        DomainSet {
            hasher: self.hasher,
            shift,
            dir: dir.into_boxed_slice(),
            keys: keys.into_boxed_slice(),
            values: values.into_boxed_slice(),
        }
    }
}

pub(crate) struct DomainSet {
    hasher: FixedState,
    shift: u32,
    dir: Box<[u32]>,
    keys: Box<[u64]>,
    values: Box<[u32]>,
}

impl DomainSet {
    #[inline]
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        let h = self.hasher.hash_one(name);
        let b = (h >> self.shift) as usize;
        // The directory has 2^bits + 1 entries and b < 2^bits, so both reads are in range;
        // `get` keeps the hot path free of panics all the same.
        let start = *self.dir.get(b)? as usize;
        let end = *self.dir.get(b + 1)? as usize;
        let run = self.keys.get(start..end)?;
        let i = run.iter().position(|&k| k == h)?;
        self.values.get(start + i).copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.dir.len() * 4 + self.keys.len() * 8 + self.values.len() * 4
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
