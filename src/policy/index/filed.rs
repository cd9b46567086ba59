//! Positions filed under keys, stored flat: one list of positions and, for
//! each key, the range of it that the key owns. Most keys of a big policy
//! set name one policy (a per-user grant), and a vector per key would cost
//! an allocation for each.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;

/// Positions under keys of type `K`, built by [`Filing`].
#[derive(Debug)]
pub struct Filed<K> {
    ranges: HashMap<K, Range<usize>>,
    positions: Vec<usize>,
}

impl<K> Default for Filed<K> {
    fn default() -> Self {
        Self {
            ranges: HashMap::new(),
            positions: Vec::new(),
        }
    }
}

impl<K: Hash + Eq> Filed<K> {
    /// The positions filed under `key`, in filing order.
    pub fn get<Q>(&self, key: &Q) -> &[usize]
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let range = self.ranges.get(key).cloned().unwrap_or_default();
        self.positions.get(range).unwrap_or_default()
    }
}

/// Positions under keys while an index is being built.
#[derive(Debug)]
pub struct Filing<K>(HashMap<K, Vec<usize>>);

impl<K> Default for Filing<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Hash + Eq> Filing<K> {
    pub fn add(&mut self, key: K, at: usize) {
        self.0.entry(key).or_default().push(at);
    }

    /// The flat form, each key's positions kept in filing order.
    pub fn finish(self) -> Filed<K> {
        let total = self.0.values().map(Vec::len).sum();
        let mut filed = Filed {
            ranges: HashMap::with_capacity(self.0.len()),
            positions: Vec::with_capacity(total),
        };
        for (key, positions) in self.0 {
            let start = filed.positions.len();
            filed.positions.extend(positions);
            filed.ranges.insert(key, start..filed.positions.len());
        }
        filed
    }
}
