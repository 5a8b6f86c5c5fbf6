//! The illegal-content tier, held only as keyed hashes.
//!
//! Each entry is reduced to a 128-bit SipHash-1-3 value under a random key chosen when the
//! matcher is built; the text is dropped as soon as it is hashed. The set can answer "is this
//! URL listed, and by which list" and nothing else: it cannot be printed, logged or walked
//! back to the entries, and its key never leaves this process.

use std::collections::HashMap;
use std::hash::Hasher;

use hedgerow_model::{Host, UrlKey};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::urlset::{is_boundary, site_host};

const DOMAIN: u8 = b'D';
const EXACT: u8 = b'E';
const PREFIX: u8 = b'P';

/// Longest request URL the prefix walk looks at; longer ones are checked up to this length
/// and then as a whole, so a hostile URL cannot make a lookup expensive.
const MAX_WALK: usize = 4096;

pub(crate) struct IllegalTier {
    k0: u64,
    k1: u64,
    entries: HashMap<u128, u16, foldhash::fast::RandomState>,
}

impl IllegalTier {
    pub(crate) fn new(k0: u64, k1: u64) -> Self {
        Self {
            k0,
            k1,
            entries: HashMap::default(),
        }
    }

    fn start(&self, tag: u8, host: &str) -> SipHasher13 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(&[tag]);
        h.write(host.as_bytes());
        h
    }

    pub(crate) fn insert_domain(&mut self, name: &str, list: u16) {
        let v = self.start(DOMAIN, name).finish128().as_u128();
        self.entries.entry(v).or_insert(list);
    }

    pub(crate) fn insert_url(&mut self, key: &UrlKey, exact: bool, list: u16) {
        let mut h = self.start(
            if exact { EXACT } else { PREFIX },
            site_host(key.host().as_str()),
        );
        h.write(key.path_and_query().as_bytes());
        self.entries.entry(h.finish128().as_u128()).or_insert(list);
    }

    pub(crate) fn match_host(&self, host: &Host) -> Option<u16> {
        if self.entries.is_empty() {
            return None;
        }
        host.suffixes().find_map(|s| {
            let v = self.start(DOMAIN, s).finish128().as_u128();
            self.entries.get(&v).copied()
        })
    }

    /// The list naming this URL: by its host or a parent (a domain entry), or by its path
    /// and query (an exact or prefix URL entry), as written or as servers that decode `%2F` or
    /// drop `;` parameters read it ([`UrlKey::server_variant`]).
    pub(crate) fn match_url(&self, url: &UrlKey) -> Option<u16> {
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

    fn match_request(&self, host: &str, request: &[u8]) -> Option<u16> {
        let mut exact = self.start(EXACT, host);
        exact.write(request);
        if let Some(&l) = self.entries.get(&exact.finish128().as_u128()) {
            return Some(l);
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
            if candidate && let Some(&l) = self.entries.get(&h.clone().finish128().as_u128()) {
                return Some(l);
            }
        }
        if request.len() > MAX_WALK {
            let mut whole = self.start(PREFIX, host);
            whole.write(request);
            return self.entries.get(&whole.finish128().as_u128()).copied();
        }
        None
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
