//! The illegal-content tier, held only as keyed hashes.
//!
//! Each entry is reduced to a 128-bit SipHash-1-3 value under a key, and the text is dropped
//! as soon as it is hashed. The set can answer "is this URL listed, by which list, and under
//! which opaque reference" and nothing else: it cannot be printed, logged or walked back to
//! the entries.
//!
//! The key is random per build unless the caller gives one ([`IllegalKey`]): the appliance
//! keeps its key in a file only the service can read, so the hashes of the last good load
//! can be kept on disk ([`IllegalSet`]) and an entry's reference stays the same across
//! restarts. A host that carries URL-level entries is marked by one more hash (tag `H`), so
//! the proxy can intercept exactly those hosts without the host being listed in clear.

use std::collections::HashMap;
use std::hash::Hasher;

use hedgerow_model::{Host, UrlKey};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::urlset::{is_boundary, site_host};

const DOMAIN: u8 = b'D';
const EXACT: u8 = b'E';
const PREFIX: u8 = b'P';
/// Marks a host that has URL-level entries (not itself an entry: it blocks nothing).
const URL_HOST: u8 = b'H';

/// Longest request URL the prefix walk looks at; longer ones are checked up to this length
/// and then as a whole, so a hostile URL cannot make a lookup expensive.
const MAX_WALK: usize = 4096;

/// The key the illegal tier is hashed under. Its `Debug` shows nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IllegalKey {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for IllegalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IllegalKey(..)")
    }
}

impl IllegalKey {
    /// A fresh random key.
    pub fn random() -> Self {
        Self {
            k0: rand::random(),
            k1: rand::random(),
        }
    }

    pub fn from_bytes(b: [u8; 16]) -> Self {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&b[..8]);
        k1.copy_from_slice(&b[8..]);
        Self {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        }
    }

    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.k0.to_le_bytes());
        b[8..].copy_from_slice(&self.k1.to_le_bytes());
        b
    }
}

/// The hashed entries of one illegal-tier list: what is kept as its last good copy. Holds
/// no entry in clear; `Debug` shows counts only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IllegalSet {
    entries: usize,
    hashes: Vec<u128>,
}

impl std::fmt::Debug for IllegalSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IllegalSet")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

/// Why stored bytes are not an [`IllegalSet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stored illegal-tier set: {0}")]
pub struct IllegalSetError(&'static str);

impl IllegalSet {
    /// The list entries it was loaded from (a URL entry and its host mark count once).
    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Stored form: the entry count and each hash, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.hashes.len() * 16);
        out.extend_from_slice(&(self.entries as u64).to_le_bytes());
        out.extend_from_slice(&(self.hashes.len() as u64).to_le_bytes());
        for h in &self.hashes {
            out.extend_from_slice(&h.to_le_bytes());
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, IllegalSetError> {
        let word = |at: usize| -> Result<u64, IllegalSetError> {
            let s = b.get(at..at + 8).ok_or(IllegalSetError("truncated"))?;
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(u64::from_le_bytes(a))
        };
        let entries = usize::try_from(word(0)?).map_err(|_| IllegalSetError("too large"))?;
        let count = usize::try_from(word(8)?).map_err(|_| IllegalSetError("too large"))?;
        let body = &b[16..];
        if body.len() != count.checked_mul(16).ok_or(IllegalSetError("too large"))? {
            return Err(IllegalSetError("length does not match its count"));
        }
        let hashes = body
            .chunks_exact(16)
            .map(|c| {
                let mut a = [0u8; 16];
                a.copy_from_slice(c);
                u128::from_le_bytes(a)
            })
            .collect();
        Ok(Self { entries, hashes })
    }
}

/// An illegal-tier match: the list, and the entry's opaque reference (32 bits of its keyed
/// hash: the same entry always gives the same reference under the same key, and nothing can
/// turn it back into the entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllegalHit {
    pub list: u16,
    pub reference: u32,
}

pub(crate) struct IllegalTier {
    key: IllegalKey,
    entries: HashMap<u128, u16, foldhash::fast::RandomState>,
    /// Per list id: the hashes it added and its entry count (kept for `set_of`).
    by_list: HashMap<u16, IllegalSet>,
}

fn hit(list: u16, hash: u128) -> IllegalHit {
    IllegalHit {
        list,
        reference: (hash >> 96) as u32,
    }
}

impl IllegalTier {
    pub(crate) fn new(key: IllegalKey) -> Self {
        Self {
            key,
            entries: HashMap::default(),
            by_list: HashMap::new(),
        }
    }

    fn start(&self, tag: u8, host: &str) -> SipHasher13 {
        let mut h = SipHasher13::new_with_keys(self.key.k0, self.key.k1);
        h.write(&[tag]);
        h.write(host.as_bytes());
        h
    }

    fn add(&mut self, v: u128, list: u16) {
        self.entries.entry(v).or_insert(list);
        self.by_list.entry(list).or_default().hashes.push(v);
    }

    fn count(&mut self, list: u16) {
        self.by_list.entry(list).or_default().entries += 1;
    }

    pub(crate) fn insert_domain(&mut self, name: &str, list: u16) {
        let v = self.start(DOMAIN, name).finish128().as_u128();
        self.add(v, list);
        self.count(list);
    }

    pub(crate) fn insert_url(&mut self, key: &UrlKey, exact: bool, list: u16) {
        let host = site_host(key.host().as_str());
        let mut h = self.start(if exact { EXACT } else { PREFIX }, host);
        h.write(key.path_and_query().as_bytes());
        let v = h.finish128().as_u128();
        self.add(v, list);
        let mark = self.start(URL_HOST, host).finish128().as_u128();
        self.add(mark, list);
        self.count(list);
    }

    /// Adds a set kept from an earlier load (hashed under the same key).
    pub(crate) fn insert_set(&mut self, set: &IllegalSet, list: u16) {
        for &v in &set.hashes {
            self.entries.entry(v).or_insert(list);
        }
        self.by_list.insert(list, set.clone());
    }

    pub(crate) fn set_of(&self, list: u16) -> IllegalSet {
        self.by_list.get(&list).cloned().unwrap_or_default()
    }

    pub(crate) fn match_host(&self, host: &Host) -> Option<IllegalHit> {
        if self.entries.is_empty() {
            return None;
        }
        host.suffixes().find_map(|s| {
            let v = self.start(DOMAIN, s).finish128().as_u128();
            self.entries.get(&v).map(|&l| hit(l, v))
        })
    }

    /// Whether URL-level entries are listed under this host (its `www.` form included).
    pub(crate) fn has_url_entries(&self, host: &Host) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let v = self
            .start(URL_HOST, site_host(host.as_str()))
            .finish128()
            .as_u128();
        self.entries.contains_key(&v)
    }

    /// The list naming this URL: by its host or a parent (a domain entry), or by its path
    /// and query (an exact or prefix URL entry), as written or as servers that decode `%2F` or
    /// drop `;` parameters read it ([`UrlKey::server_variant`]).
    pub(crate) fn match_url(&self, url: &UrlKey) -> Option<IllegalHit> {
        if self.entries.is_empty() {
            return None;
        }
        if let Some(l) = self.match_host(url.host()) {
            return Some(l);
        }
        let host = site_host(url.host().as_str());
        self.match_request(host, url.path_and_query().as_bytes())
            .or_else(|| self.match_request(host, url.server_variant()?.as_bytes()))
    }

    fn match_request(&self, host: &str, request: &[u8]) -> Option<IllegalHit> {
        let mut exact = self.start(EXACT, host);
        exact.write(request);
        let v = exact.finish128().as_u128();
        if let Some(&l) = self.entries.get(&v) {
            return Some(hit(l, v));
        }
        // Walk the request once, feeding the hasher; at every place a listed prefix could end
        // (see `prefix_matches`) finish a copy of the state and look it up.
        let mut h = self.start(PREFIX, host);
        let walk = &request[..request.len().min(MAX_WALK)];
        for (i, &b) in walk.iter().enumerate() {
            h.write(&[b]);
            let end = i + 1;
            let candidate = end == request.len()
                || b == b'/'
                || request.get(end).is_some_and(|&n| is_boundary(n));
            if candidate {
                let v = h.clone().finish128().as_u128();
                if let Some(&l) = self.entries.get(&v) {
                    return Some(hit(l, v));
                }
            }
        }
        if request.len() > MAX_WALK {
            let mut whole = self.start(PREFIX, host);
            whole.write(request);
            let v = whole.finish128().as_u128();
            return self.entries.get(&v).map(|&l| hit(l, v));
        }
        None
    }

    /// Entries loaded (a URL entry and its host mark count once).
    pub(crate) fn len(&self) -> usize {
        self.by_list.values().map(|s| s.entries).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
