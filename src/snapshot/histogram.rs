//! The class histogram of a heap snapshot, counted as the snapshot's JSON streams by
//! (the capture pipeline feeds it every chunk on its way to gzip), or from a snapshot
//! already read ([`ClassHistogram::from_snapshot`]); both give identical results.
//!
//! Streaming ([`HistogramBuilder`]): chunks may split anywhere (inside a number, a string
//! or an escape). While `nodes` streams it keeps only a hash map keyed by (node type
//! index, name string index) with each key's instance count and self size; `edges` is
//! skipped to its closing `]` without parsing; when `strings` (V8 writes it last)
//! streams, only the names the map needs are kept — those of `object` and `native`
//! nodes, the only types whose class is their name ([`super::class_name`]). Memory: the
//! map (tens of bytes per distinct class key, a few MiB on real heaps) and those names.
//! A stream that is truncated or malformed gives an error from `push` or `finish`,
//! never a histogram. It runs on the thread that calls `push` (the capture thread).
//!
//! Classes are merged by (type, [`super::class_name`]) — all strings are one
//! `(string)` class — and sorted by self size, largest first (then count, then name).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::parse::{Header, NodeRec, Parser, Sink};
use super::{class_name, HeapSnapshot, Location};
use crate::error::{Error, Result};

/// One class: V8 node type and DevTools' class name, instances and their self size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassCount {
    pub name: String,
    pub type_name: String,
    pub count: u64,
    pub self_size: u64,
}

/// Every class of a snapshot, largest self size first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassHistogram {
    pub node_count: u64,
    pub total_self_size: u64,
    pub classes: Vec<ClassCount>,
}

impl ClassHistogram {
    /// The histogram of a snapshot already read.
    pub fn from_snapshot(s: &HeapSnapshot) -> Self {
        let mut map: KeyMap = HashMap::default();
        for n in 0..s.node_count() {
            let ty = s.node_type[n];
            let named = matches!(
                s.node_types.get(ty as usize).map(String::as_str),
                Some("object" | "native")
            );
            let key = (ty, if named { s.node_name[n] } else { 0 });
            let e = map.entry(key).or_default();
            e.0 += 1;
            e.1 += s.self_size.get(n);
        }
        Self::merge(&s.node_types, &map, |i| s.strings.get(i))
    }

    /// The classes among the `n` largest by self size or the `n` largest by count (what
    /// a capture result carries), still sorted by self size; the totals stay those of
    /// the whole snapshot.
    pub fn top(&self, n: usize) -> Self {
        let mut by_count: Vec<usize> = (0..self.classes.len()).collect();
        by_count.sort_by(|&a, &b| {
            let (a, b) = (&self.classes[a], &self.classes[b]);
            b.count.cmp(&a.count).then(b.self_size.cmp(&a.self_size))
        });
        let mut keep = vec![false; self.classes.len()];
        keep.iter_mut().take(n).for_each(|k| *k = true);
        by_count.iter().take(n).for_each(|&i| keep[i] = true);
        Self {
            node_count: self.node_count,
            total_self_size: self.total_self_size,
            classes: self
                .classes
                .iter()
                .zip(keep)
                .filter(|(_, k)| *k)
                .map(|(c, _)| c.clone())
                .collect(),
        }
    }

    /// Merge (type, name index) keys by (type, class name) and sort.
    fn merge<'a>(types: &[String], map: &KeyMap, name: impl Fn(u32) -> &'a str) -> Self {
        let mut by_class: HashMap<(u8, String), (u64, u64)> = HashMap::new();
        let (mut node_count, mut total) = (0u64, 0u64);
        for (&(ty, idx), &(count, size)) in map {
            node_count += count;
            total += size;
            let type_name = types.get(ty as usize).map_or("", String::as_str);
            let class = class_name(type_name, name(idx)).into_owned();
            let e = by_class.entry((ty, class)).or_default();
            e.0 += count;
            e.1 += size;
        }
        let mut classes: Vec<ClassCount> = by_class
            .into_iter()
            .map(|((ty, name), (count, self_size))| ClassCount {
                name,
                type_name: types.get(ty as usize).cloned().unwrap_or_default(),
                count,
                self_size,
            })
            .collect();
        classes.sort_by(|a, b| {
            b.self_size
                .cmp(&a.self_size)
                .then(b.count.cmp(&a.count))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.type_name.cmp(&b.type_name))
        });
        Self {
            node_count,
            total_self_size: total,
            classes,
        }
    }
}

/// A multiply-rotate hash for the (type, name index) keys: SipHash's DoS resistance buys
/// nothing on keys V8 chose, and costs a third of the scan.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type KeyMap = HashMap<(u8, u32), (u64, u64), BuildHasherDefault<KeyHasher>>;

/// The streaming sink: counts nodes, then keeps the names it needs.
struct Count {
    types: Vec<String>,
    map: KeyMap,
    /// Instances and self size of the types whose class is not their name, by type.
    unnamed: Vec<(u64, u64)>,
    /// Per node type: whether its class is its name (`object`, `native`).
    named_type: Vec<bool>,
    /// Sorted, distinct name indices whose strings are needed; `next` walks it as the
    /// strings stream in order.
    needed: Vec<u32>,
    next: usize,
    names: HashMap<u32, String, BuildHasherDefault<KeyHasher>>,
}

impl Sink for Count {
    const EDGES: bool = false;
    const LOCATIONS: bool = false;

    fn header(&mut self, h: &Header) -> Result<()> {
        self.types = h.node_types.clone();
        self.named_type = h
            .node_types
            .iter()
            .map(|t| t == "object" || t == "native")
            .collect();
        Ok(())
    }

    #[inline]
    fn node(&mut self, n: &NodeRec) {
        // Only `object` and `native` classes depend on the name: every other type is one
        // class, counted in a flat slot (string nodes alone have a name per string).
        if self.named_type.get(n.ty as usize).copied().unwrap_or(false) {
            let e = self.map.entry((n.ty, n.name)).or_default();
            e.0 += 1;
            e.1 += n.self_size;
        } else {
            let e = &mut self.unnamed[n.ty as usize];
            e.0 += 1;
            e.1 += n.self_size;
        }
    }

    fn edge(&mut self, _ty: u8, _name: u32, _to: u32) {}

    fn location(&mut self, _loc: Location) {}

    fn nodes_done(&mut self) {
        for (ty, &(count, size)) in self.unnamed.iter().enumerate() {
            if count > 0 {
                // Name index 0 is never looked up for these types (their class is `(type)`).
                self.map.insert((ty as u8, 0), (count, size));
            }
        }
        let mut needed: Vec<u32> = self
            .map
            .keys()
            .filter(|(ty, _)| self.named_type.get(*ty as usize).copied().unwrap_or(false))
            .map(|&(_, name)| name)
            .collect();
        needed.sort_unstable();
        needed.dedup();
        self.needed = needed;
    }

    #[inline]
    fn wants_string(&mut self, i: u32) -> bool {
        if self.needed.get(self.next) == Some(&i) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn string(&mut self, i: u32, s: &str) {
        self.names.insert(i, s.to_string());
    }
}

/// Counts classes over snapshot JSON pushed in chunks of any size.
pub struct HistogramBuilder {
    parser: Parser<Count>,
    /// The first error, repeated by every later call.
    failed: Option<Error>,
}

impl Default for HistogramBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HistogramBuilder {
    pub fn new() -> Self {
        Self {
            parser: Parser::new(Count {
                types: Vec::new(),
                map: HashMap::default(),
                unnamed: vec![(0, 0); 256],
                named_type: Vec::new(),
                needed: Vec::new(),
                next: 0,
                names: HashMap::default(),
            }),
            failed: None,
        }
    }

    /// The next chunk of the snapshot JSON. An error means the stream is not a valid
    /// snapshot; later pushes keep failing the same way.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(Error::new(e.code, e.message.clone()));
        }
        self.parser.feed(chunk).inspect_err(|e| {
            self.failed = Some(Error::new(e.code, e.message.clone()));
        })
    }

    /// Bytes pushed so far.
    pub fn bytes(&self) -> u64 {
        self.parser.offset()
    }

    /// The histogram, once the whole snapshot has been pushed; an error for a truncated
    /// or malformed stream.
    pub fn finish(self) -> Result<ClassHistogram> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let c = self.parser.finish()?;
        Ok(ClassHistogram::merge(&c.types, &c.map, |i| {
            c.names.get(&i).map_or("", String::as_str)
        }))
    }
}
