//! A fast hasher for the analysis's per-node and per-edge maps, keyed by small integers
//! (string indices, type indices): FxHash's multiply-rotate (rustc's own), several times
//! cheaper than std's SipHash, which is built to resist chosen keys — no concern for maps
//! keyed by a snapshot's own indices, whose size the reader bounds.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Fx {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(K);
    }
}

impl Hasher for Fx {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        for &b in chunks.remainder() {
            self.add(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
pub type FxSet<K> = HashSet<K, BuildHasherDefault<Fx>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keyed_by_indices_and_strings_behave_like_std_maps() {
        let mut a: FxMap<(u8, u32), u32> = FxMap::default();
        let mut b: HashMap<(u8, u32), u32> = HashMap::new();
        for i in 0..100_000u32 {
            let k = ((i % 7) as u8, i.wrapping_mul(2_654_435_761) % 50_000);
            *a.entry(k).or_default() += 1;
            *b.entry(k).or_default() += 1;
        }
        assert_eq!(a.len(), b.len());
        assert!(b.iter().all(|(k, v)| a.get(k) == Some(v)));
        let mut s: FxSet<&str> = FxSet::default();
        for w in ["a", "bb", "a", "a longer string than eight bytes", ""] {
            s.insert(w);
        }
        assert_eq!(s.len(), 4);
    }
}
