//! `before`'s node ids for diff's match by id, in about 3.5 bytes a node instead of 12,
//! and no sort.
//!
//! V8 numbers heap objects with odd ids from one counter (`HeapObjectsMap`), so one
//! process's ids fill a dense range with few gaps; embedder ("native") nodes get hashed
//! even ids anywhere in 32 bits. So: a bitmap over the dense range `0..dense_end` with a
//! rank per 64-bit word (1.5 bits an id slot) finds an id's position by rank, and the few
//! ids past the range — and any id seen a second time, which V8 never writes but a file
//! may — sit in a short sorted side list. `dense_end` is chosen from a histogram of the
//! ids to make the table smallest. Each entry's class index is kept in 1, 2 or 4 bytes
//! (by the number of classes) and its self size in 2 (the rare larger one exactly, on the
//! side).
//!
//! Matching ([`Matcher::take`]) pairs each `after` id with one not yet matched `before`
//! entry of the same id (a repeated id pairs as many times as both files hold it, in
//! ordinal order), which is what a merge of the two id-sorted lists gives, without
//! sorting `after` either.

use super::column::Narrow;
use super::rules::BitSet;

/// Ids are bucketed by this many for choosing the dense range.
const BLOCK_BITS: u32 = 16;

/// `(id, class, self size)` of `before`'s nodes of nonzero size, found by id.
pub struct IdTable {
    /// Bit `id` set for each id below `dense_end` held (its first occurrence).
    bits: Vec<u64>,
    /// `rank[w]`: set bits in `bits[..w]` — the position of word `w`'s first entry.
    rank: Vec<u32>,
    dense_end: u64,
    /// Entries at positions `0..dense`: the bitmap's, in id order.
    dense: usize,
    /// Entries at positions `dense..`: ids past the dense range and repeats, sorted.
    side: Vec<u64>,
    class: Narrow,
    /// Self sizes; `u16::MAX` marks one kept in `big` (by position, sorted).
    size: Vec<u16>,
    big: Vec<(u32, u64)>,
}

impl Default for IdTable {
    /// Empty: what is left of `before`'s table once the id match is done.
    fn default() -> Self {
        Self {
            bits: Vec::new(),
            rank: Vec::new(),
            dense_end: 0,
            dense: 0,
            side: Vec::new(),
            class: Narrow::U8(Vec::new()),
            size: Vec::new(),
            big: Vec::new(),
        }
    }
}

impl IdTable {
    /// From `entries()` — called three times, the same `(ordinal, id, class, size)` in
    /// the same order each time (ordinals increasing) — with class indices below
    /// `classes`.
    pub fn build<I>(entries: impl Fn() -> I, classes: usize) -> Self
    where
        I: Iterator<Item = (u32, u64, u32, u64)>,
    {
        // 1. Where the dense range should end: an id slot costs 3/16 byte in the bitmap
        //    and rank, an id on the side 8 bytes; pick the block boundary that costs least.
        let blocks = 1usize << (32 - BLOCK_BITS);
        let mut hist = vec![0u32; blocks];
        let mut total = 0u64;
        for (_, id, _, _) in entries() {
            total += 1;
            if id <= u32::MAX as u64 {
                hist[(id >> BLOCK_BITS) as usize] += 1;
            }
        }
        let (mut best_cost, mut best_blocks) = (128 * total, 0usize);
        let mut below = 0u64;
        for (b, &c) in hist.iter().enumerate() {
            below += c as u64;
            let end = ((b + 1) as u64) << BLOCK_BITS;
            // Sixteenths of a byte: 3 a slot, 128 an id on the side.
            let cost = 3 * end + 128 * (total - below);
            if cost < best_cost {
                (best_cost, best_blocks) = (cost, b + 1);
            }
        }
        drop(hist);
        let dense_end = (best_blocks as u64) << BLOCK_BITS;

        // 2. The bitmap; everything else to the side list with its ordinal.
        let words = (dense_end as usize).div_ceil(64);
        let mut bits = vec![0u64; words];
        let mut side: Vec<(u64, u32)> = Vec::new();
        for (v, id, _, _) in entries() {
            if id < dense_end {
                let (w, b) = ((id >> 6) as usize, id & 63);
                if bits[w] >> b & 1 == 0 {
                    bits[w] |= 1 << b;
                    continue;
                }
            }
            side.push((id, v));
        }
        let mut rank = Vec::with_capacity(words);
        let mut dense = 0u32;
        for &w in &bits {
            rank.push(dense);
            dense += w.count_ones();
        }
        let dense = dense as usize;
        // Ordinal order within an id: the first repeat in the file is matched first.
        side.sort_unstable();

        // 3. Classes and sizes by position.
        let len = dense + side.len();
        let mut t = Self {
            bits,
            rank,
            dense_end,
            dense,
            side: Vec::new(),
            class: Narrow::zeros(len, classes.saturating_sub(1) as u64),
            size: vec![0; len],
            big: Vec::new(),
        };
        // Side entries in ordinal order, to tell a repeat from a first occurrence.
        let mut by_ordinal: Vec<(u32, u32)> = side
            .iter()
            .enumerate()
            .map(|(k, &(_, v))| (v, k as u32))
            .collect();
        by_ordinal.sort_unstable();
        let mut next = by_ordinal.iter().peekable();
        for (v, id, class, size) in entries() {
            let pos = match next.peek() {
                Some(&&(o, k)) if o == v => {
                    next.next();
                    dense + k as usize
                }
                _ => t.dense_rank(id),
            };
            t.class.set(pos, class);
            if size >= u16::MAX as u64 {
                t.size[pos] = u16::MAX;
                t.big.push((pos as u32, size));
            } else {
                t.size[pos] = size as u16;
            }
        }
        t.big.sort_unstable();
        t.side = side.into_iter().map(|(id, _)| id).collect();
        t
    }

    /// The position of `id`, known to be in the bitmap.
    #[inline]
    fn dense_rank(&self, id: u64) -> usize {
        let (w, b) = ((id >> 6) as usize, id & 63);
        self.rank[w] as usize + (self.bits[w] & ((1u64 << b) - 1)).count_ones() as usize
    }

    pub fn len(&self) -> usize {
        self.size.len()
    }

    pub fn is_empty(&self) -> bool {
        self.size.is_empty()
    }

    #[inline]
    pub fn class(&self, pos: usize) -> u32 {
        self.class.get(pos)
    }

    #[inline]
    pub fn size(&self, pos: usize) -> u64 {
        match self.size[pos] {
            u16::MAX => {
                let k = self.big.partition_point(|&(p, _)| (p as usize) < pos);
                self.big[k].1
            }
            z => z as u64,
        }
    }

    /// Every entry as `(id, class, size)`, by position (dense ids ascending, then the
    /// side list).
    pub fn entries(&self) -> impl Iterator<Item = (u64, u32, u64)> + '_ {
        let dense = self.bits.iter().enumerate().flat_map(|(w, &word)| {
            let mut x = word;
            std::iter::from_fn(move || {
                if x == 0 {
                    return None;
                }
                let b = x.trailing_zeros() as u64;
                x &= x - 1;
                Some(((w as u64) << 6) | b)
            })
        });
        dense
            .chain(self.side.iter().copied())
            .enumerate()
            .map(|(pos, id)| (id, self.class(pos), self.size(pos)))
    }

    /// A match against this table: every entry unmatched.
    pub fn matcher(&self) -> Matcher<'_> {
        Matcher {
            t: self,
            matched: BitSet::new(self.len()),
            count: 0,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.bits.capacity() * 8
            + self.rank.capacity() * 4
            + self.side.capacity() * 8
            + self.class.heap_bytes()
            + self.size.capacity() * 2
            + self.big.capacity() * 16
    }
}

/// Which entries of an [`IdTable`] an `after` file has claimed.
pub struct Matcher<'t> {
    t: &'t IdTable,
    matched: BitSet,
    count: usize,
}

impl Matcher<'_> {
    /// The position of an unmatched entry with `id`, now matched; `None` when every
    /// entry of that id (or none) is taken.
    pub fn take(&mut self, id: u64) -> Option<usize> {
        let t = self.t;
        if id < t.dense_end {
            let (w, b) = ((id >> 6) as usize, id & 63);
            if t.bits[w] >> b & 1 == 1 {
                let p = t.dense_rank(id);
                if !self.matched.get(p) {
                    return Some(self.claim(p));
                }
            }
        }
        // The side list's run of `id`: its matched entries are a prefix (taken in order).
        let start = t.side.partition_point(|&x| x < id);
        let end = start + t.side[start..].partition_point(|&x| x <= id);
        let (mut lo, mut hi) = (start, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.matched.get(t.dense + mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let first_free = lo;
        if first_free < end {
            return Some(self.claim(t.dense + first_free));
        }
        None
    }

    fn claim(&mut self, p: usize) -> usize {
        self.matched.set(p);
        self.count += 1;
        p
    }

    /// Entries matched so far.
    pub fn matched(&self) -> usize {
        self.count
    }

    /// Positions never matched, ascending.
    pub fn unmatched(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.t.len()).filter(|&p| !self.matched.get(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::tests::Rng;
    use std::collections::{HashMap, VecDeque};

    type Entry = (u32, u64, u32, u64);

    /// Ids of several shapes: V8's odd counter with gaps, hashed even ids anywhere in 32
    /// bits, ids past 32 bits, repeats; sizes past 16 and 32 bits.
    fn entries(rng: &mut Rng, n: usize, classes: u32) -> Vec<Entry> {
        let mut next_odd = 1u64;
        (0..n as u32)
            .map(|v| {
                let id = match rng.below_u64(20) {
                    0 => rng.below_u64(1 << 32) & !1,
                    1 => (1u64 << 32) + rng.below_u64(1 << 40),
                    2 => 1 + 2 * rng.below_u64(n as u64 + 1),
                    _ => {
                        next_odd += 2 * (1 + rng.below_u64(3));
                        next_odd
                    }
                };
                let size = match rng.below_u64(30) {
                    0 => 65_535 + rng.below_u64(1 << 20),
                    1 => (1u64 << 33) + rng.below_u64(99),
                    _ => 8 * (1 + rng.below_u64(40)),
                };
                (v, id, rng.below_u64(classes as u64) as u32, size)
            })
            .collect()
    }

    /// The reference: per id a queue of `before`'s entries in ordinal order; each `after`
    /// id takes the front. Returns (matched (before, after) pairs' (class, size) as
    /// before, unmatched before entries, unmatched after ids).
    #[allow(clippy::type_complexity)]
    fn reference(
        before: &[Entry],
        after: &[u64],
    ) -> (Vec<(u32, u64)>, Vec<(u64, u32, u64)>, Vec<usize>) {
        let mut q: HashMap<u64, VecDeque<(u32, u64)>> = HashMap::new();
        for &(_, id, c, s) in before {
            q.entry(id).or_default().push_back((c, s));
        }
        let mut matched = Vec::new();
        let mut new = Vec::new();
        for (j, id) in after.iter().enumerate() {
            match q.get_mut(id).and_then(|d| d.pop_front()) {
                Some(x) => matched.push(x),
                None => new.push(j),
            }
        }
        let mut deleted: Vec<(u64, u32, u64)> = q
            .into_iter()
            .flat_map(|(id, d)| d.into_iter().map(move |(c, s)| (id, c, s)))
            .collect();
        deleted.sort_unstable();
        (matched, deleted, new)
    }

    #[test]
    fn matching_equals_a_per_id_queue_on_ids_of_every_shape() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..300 {
            let n = [0, 1, 2, 7, 64, 65, 1000, 5000][round % 8];
            let classes = [1, 3, 200, 256, 257, 70_000][round % 6];
            let before = entries(&mut rng, n, classes);
            // after: most of before's ids (some twice), some new ones, shuffled.
            let mut after: Vec<u64> = before
                .iter()
                .filter(|_| rng.below_u64(10) != 0)
                .map(|e| e.1)
                .collect();
            for _ in 0..n / 5 + 1 {
                after.push(match rng.below_u64(3) {
                    0 => before
                        .get(rng.below_u64(n as u64 + 1) as usize)
                        .map_or(3, |e| e.1),
                    1 => rng.next(),
                    _ => 1 + 2 * rng.below_u64(4 * n as u64 + 4),
                });
            }
            for i in (1..after.len()).rev() {
                after.swap(i, rng.below_u64(i as u64 + 1) as usize);
            }
            let t = IdTable::build(|| before.iter().copied(), classes as usize);
            assert_eq!(t.len(), before.len());
            // Every entry is kept exactly.
            let mut got: Vec<_> = t.entries().collect();
            let mut want: Vec<_> = before.iter().map(|&(_, i, c, s)| (i, c, s)).collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "round {round}");

            let (want_matched, want_deleted, want_new) = reference(&before, &after);
            let mut m = t.matcher();
            let mut matched = Vec::new();
            let mut new = Vec::new();
            for (j, &id) in after.iter().enumerate() {
                match m.take(id) {
                    Some(p) => matched.push((t.class(p), t.size(p))),
                    None => new.push(j),
                }
            }
            assert_eq!(m.matched(), matched.len());
            assert_eq!(new, want_new, "round {round}");
            let (mut a, mut b) = (matched.clone(), want_matched.clone());
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "round {round}");
            let all: Vec<_> = t.entries().collect();
            let mut deleted: Vec<_> = m.unmatched().map(|p| all[p]).collect();
            deleted.sort_unstable();
            assert_eq!(deleted, want_deleted, "round {round}");
        }
    }

    #[test]
    fn a_dense_v8_numbering_costs_under_4_bytes_an_entry() {
        // 1M objects, odd ids with V8's gaps, 180 classes, small sizes; 100 hashed
        // native ids.
        let mut rng = Rng(7);
        let mut id = 1u64;
        let mut e: Vec<Entry> = (0..1_000_000u32)
            .map(|v| {
                id += 2 * (1 + rng.below_u64(2));
                (v, id, rng.below_u64(180) as u32, 16 + 8 * rng.below_u64(10))
            })
            .collect();
        for k in 0..100u32 {
            e.push((1_000_000 + k, rng.below_u64(1 << 32) & !1, 0, 40));
        }
        let t = IdTable::build(|| e.iter().copied(), 180);
        let per = t.heap_bytes() as f64 / e.len() as f64;
        assert!(per < 4.0, "{per} bytes an entry");
        assert!(t.side.len() <= 100);
    }
}
