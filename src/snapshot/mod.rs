//! The heap snapshot model shared by the reader (`reader`), the streaming class histogram
//! (`histogram`) and the analysis (`crate::analysis`). Plain Rust, no napi; built on
//! whichever thread reads the file (never the JS thread).
//!
//! Invariants of a [`HeapSnapshot`]:
//! - nodes are addressed by *ordinal* (`0..node_count`), not by their position in the
//!   file's flat `nodes` array (the file's `to_node` is `ordinal * node_field_count`; the
//!   reader divides it);
//! - node 0 is V8's synthetic root;
//! - the edges of node `n` are `first_edge[n] as usize .. first_edge[n + 1] as usize`
//!   (`first_edge.len() == node_count + 1`), in file order;
//! - `node_type[n]` indexes `node_types`, `edge_type[e]` indexes `edge_types` (both as
//!   listed in `meta`, so a newer V8 with more types works); resolve the indices you need
//!   by name once ([`HeapSnapshot::node_type_index`]), never by a fixed number;
//! - `node_name[n]` and, for edges whose type is not `element` or `hidden`,
//!   `edge_name[e]` index `strings`; for `element`/`hidden` edges `edge_name[e]` is the
//!   element index itself;
//! - 32-bit node and edge indices (4 G nodes), 64-bit sizes and ids (stored in 32 bits
//!   each, the rare wider value on the side: [`U64Column`]).

pub mod control;
pub mod gzip;
pub mod histogram;
pub(crate) mod parse;
pub mod reader;

pub use control::{Control, Reporter};

use std::borrow::Cow;

/// One interned table of every string in the snapshot: one byte buffer, one end offset
/// per string in 32 bits (`ends.len() == len()`, the start of string `i` is the end of
/// `i - 1`), with the few string indices at which the offsets cross a 4 GiB boundary kept
/// aside (`wraps`, ascending: an offset's high part is the number of wraps at or before its
/// index) — 4 bytes a string instead of 8, any size of table.
#[derive(Debug, Default, Clone)]
pub struct StringTable {
    bytes: String,
    ends: Vec<u32>,
    wraps: Vec<u32>,
}

/// Bits of an offset kept per string; tests use 8 so that every test's table crosses
/// boundaries and reads through `wraps`.
#[cfg(not(test))]
const LOW_BITS: u32 = 32;
#[cfg(test)]
const LOW_BITS: u32 = 8;

impl StringTable {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, s: &str) -> u32 {
        let before = self.bytes.len() as u64;
        self.bytes.push_str(s);
        let end = self.bytes.len() as u64;
        // One wrap per 4 GiB boundary crossed (a string longer than 4 GiB crosses several;
        // V8's strings are far shorter, but the table stays exact).
        for _ in (before >> LOW_BITS)..(end >> LOW_BITS) {
            self.wraps.push(self.ends.len() as u32);
        }
        self.ends.push((end & ((1u64 << LOW_BITS) - 1)) as u32);
        (self.ends.len() - 1) as u32
    }
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The byte offset where string `i` ends.
    #[inline]
    fn end(&self, i: usize) -> usize {
        let low = self.ends[i] as u64;
        if self.wraps.is_empty() {
            return low as usize;
        }
        let high = self.wraps.partition_point(|&w| w as usize <= i) as u64;
        ((high << LOW_BITS) | low) as usize
    }
    /// The string at `i`, or `""` when out of range (a corrupt index is the reader's
    /// business to reject; the analysis never panics on it).
    pub fn get(&self, i: u32) -> &str {
        let i = i as usize;
        if i >= self.ends.len() {
            return "";
        }
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        &self.bytes[start..self.end(i)]
    }
    /// Give back spare capacity (the reader, once the last string is in).
    pub fn shrink_to_fit(&mut self) {
        self.bytes.shrink_to_fit();
        self.ends.shrink_to_fit();
        self.wraps.shrink_to_fit();
    }
    /// Bytes held (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 4 + self.wraps.capacity() * 4
    }
}

/// A closure's place in source (`locations` section): 0-based in the file, as V8 writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub node: u32,
    pub script_id: u32,
    pub line: u32,
    pub column: u32,
}

/// A per-node column of 64-bit values (node ids, self sizes) in 4 bytes a node: V8's ids
/// are 32-bit and self sizes nearly always fit, so each value is kept as a `u32`, and the
/// rare one that does not (`u32::MAX` and above) as the marker `u32::MAX` with its value
/// in a short side list, by ordinal (values are pushed in ordinal order, so the list is
/// sorted and looked up by binary search). Any `u64` round-trips.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct U64Column {
    narrow: Vec<u32>,
    wide: Vec<(u32, u64)>,
}

impl U64Column {
    const WIDE: u32 = u32::MAX;
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, v: u64) {
        if v >= Self::WIDE as u64 {
            self.wide.push((self.narrow.len() as u32, v));
            self.narrow.push(Self::WIDE);
        } else {
            self.narrow.push(v as u32);
        }
    }
    /// The value at ordinal `i` (panics past the end, like a slice).
    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        let v = self.narrow[i];
        if v != Self::WIDE {
            return v as u64;
        }
        self.wide_at(i)
    }
    #[cold]
    fn wide_at(&self, i: usize) -> u64 {
        match self.wide.binary_search_by_key(&(i as u32), |&(at, _)| at) {
            Ok(k) => self.wide[k].1,
            Err(_) => Self::WIDE as u64,
        }
    }
    pub fn len(&self) -> usize {
        self.narrow.len()
    }
    pub fn is_empty(&self) -> bool {
        self.narrow.is_empty()
    }
    /// Values in ordinal order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let mut wide = self.wide.iter();
        self.narrow.iter().map(move |&v| {
            if v != Self::WIDE {
                v as u64
            } else {
                wide.next().map_or(Self::WIDE as u64, |&(_, w)| w)
            }
        })
    }
    /// Every value, widened (the analysis' retained sizes start from the self sizes).
    pub fn to_vec(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.iter());
        out
    }
    /// Whether any value needs more than 32 bits.
    pub fn any_wide(&self) -> bool {
        !self.wide.is_empty()
    }
    pub fn reserve_exact(&mut self, n: usize) {
        self.narrow.reserve_exact(n);
    }
    pub fn shrink_to_fit(&mut self) {
        self.narrow.shrink_to_fit();
        self.wide.shrink_to_fit();
    }
    /// Bytes held (for the memory figures).
    pub fn heap_bytes(&self) -> usize {
        self.narrow.capacity() * 4 + self.wide.capacity() * 16
    }
}

impl FromIterator<u64> for U64Column {
    fn from_iter<I: IntoIterator<Item = u64>>(it: I) -> Self {
        let it = it.into_iter();
        let mut c = Self::new();
        c.narrow.reserve_exact(it.size_hint().0);
        for v in it {
            c.push(v);
        }
        c
    }
}

/// A whole snapshot in compact arrays (struct of arrays; ~18 bytes per node plus ~9 per
/// edge plus the strings).
#[derive(Debug, Default, Clone)]
pub struct HeapSnapshot {
    pub node_types: Vec<String>,
    pub edge_types: Vec<String>,
    pub node_type: Vec<u8>,
    pub node_name: Vec<u32>,
    pub node_id: U64Column,
    pub self_size: U64Column,
    /// `None` when `meta.node_fields` has no `detachedness`.
    pub detachedness: Option<Vec<u8>>,
    pub first_edge: Vec<u32>,
    pub edge_type: Vec<u8>,
    pub edge_name: Vec<u32>,
    pub edge_to: Vec<u32>,
    pub strings: StringTable,
    pub locations: Vec<Location>,
}

impl HeapSnapshot {
    pub fn node_count(&self) -> usize {
        self.node_type.len()
    }
    pub fn edge_count(&self) -> usize {
        self.edge_to.len()
    }
    pub fn edges(&self, n: u32) -> std::ops::Range<usize> {
        self.first_edge[n as usize] as usize..self.first_edge[n as usize + 1] as usize
    }
    pub fn node_type_index(&self, name: &str) -> Option<u8> {
        self.node_types
            .iter()
            .position(|t| t == name)
            .map(|i| i as u8)
    }
    pub fn edge_type_index(&self, name: &str) -> Option<u8> {
        self.edge_types
            .iter()
            .position(|t| t == name)
            .map(|i| i as u8)
    }
    pub fn type_name(&self, n: u32) -> &str {
        self.node_types
            .get(self.node_type[n as usize] as usize)
            .map(String::as_str)
            .unwrap_or("")
    }
    pub fn name(&self, n: u32) -> &str {
        self.strings.get(self.node_name[n as usize])
    }
    /// The class a node is counted under ([`class_name`]).
    pub fn class_name(&self, n: u32) -> Cow<'_, str> {
        class_name(self.type_name(n), self.name(n))
    }
}

/// The class key every part of leakguard uses (histogram, summarize, diff, leak tests):
/// DevTools' `className()` rule — `object` and `native` nodes by their name, `hidden` as
/// `(system)`, `code` as `(compiled code)`, every other type as `(<type>)` (`(string)`,
/// `(closure)`, `(array)`, …). The pair reported to users is `{ type, name: class_name }`.
pub fn class_name<'a>(type_name: &str, name: &'a str) -> Cow<'a, str> {
    match type_name {
        "object" | "native" => Cow::Borrowed(name),
        "hidden" => Cow::Borrowed("(system)"),
        "code" => Cow::Borrowed("(compiled code)"),
        other => Cow::Owned(format!("({other})")),
    }
}

/// Builds a [`HeapSnapshot`] node by node: the reader's output stage and the tests' way to
/// make synthetic graphs. Add a node, then its edges, then the next node.
#[derive(Debug)]
pub struct Builder {
    snap: HeapSnapshot,
}

impl Builder {
    /// V8's type lists (Node 20): `node_types[0]` and `edge_types[0]` of `meta`.
    pub fn v8() -> Self {
        let n = [
            "hidden",
            "array",
            "string",
            "object",
            "code",
            "closure",
            "regexp",
            "number",
            "native",
            "synthetic",
            "concatenated string",
            "sliced string",
            "symbol",
            "bigint",
            "object shape",
        ];
        let e = [
            "context", "element", "property", "internal", "hidden", "shortcut", "weak",
        ];
        Self::with_types(
            n.iter().map(|s| s.to_string()).collect(),
            e.iter().map(|s| s.to_string()).collect(),
        )
    }
    pub fn with_types(node_types: Vec<String>, edge_types: Vec<String>) -> Self {
        let mut strings = StringTable::new();
        strings.push("<dummy>");
        Self {
            snap: HeapSnapshot {
                node_types,
                edge_types,
                first_edge: vec![0],
                strings,
                ..Default::default()
            },
        }
    }
    /// Intern a string (no de-duplication beyond what the caller does).
    pub fn string(&mut self, s: &str) -> u32 {
        self.snap.strings.push(s)
    }
    /// Add a node by type name; returns its ordinal. Panics on an unknown type (tests).
    pub fn node(&mut self, type_name: &str, name: &str, id: u64, self_size: u64) -> u32 {
        let t = self
            .snap
            .node_type_index(type_name)
            .unwrap_or_else(|| panic!("unknown node type {type_name}"));
        let name = self.string(name);
        self.node_raw(t, name, id, self_size)
    }
    pub fn node_raw(&mut self, type_index: u8, name: u32, id: u64, self_size: u64) -> u32 {
        let s = &mut self.snap;
        s.node_type.push(type_index);
        s.node_name.push(name);
        s.node_id.push(id);
        s.self_size.push(self_size);
        s.first_edge.push(*s.first_edge.last().unwrap());
        (s.node_type.len() - 1) as u32
    }
    /// Add an edge from the most recently added node. `name_or_index` is a string for
    /// named edge types and a number for `element`/`hidden` edges.
    pub fn edge(&mut self, type_name: &str, name: EdgeName<'_>, to: u32) {
        let t = self
            .snap
            .edge_type_index(type_name)
            .unwrap_or_else(|| panic!("unknown edge type {type_name}"));
        let n = match name {
            EdgeName::Str(s) => self.string(s),
            EdgeName::Index(i) => i,
        };
        self.edge_raw(t, n, to)
    }
    pub fn edge_raw(&mut self, type_index: u8, name_or_index: u32, to: u32) {
        let s = &mut self.snap;
        s.edge_type.push(type_index);
        s.edge_name.push(name_or_index);
        s.edge_to.push(to);
        *s.first_edge.last_mut().unwrap() += 1;
    }
    pub fn location(&mut self, loc: Location) {
        self.snap.locations.push(loc);
    }
    pub fn set_detachedness(&mut self, d: Vec<u8>) {
        self.snap.detachedness = Some(d);
    }
    /// The snapshot; edges may point at nodes added after their source (as in V8's files).
    pub fn finish(self) -> HeapSnapshot {
        self.snap
    }
}

/// An edge's `name_or_index` for [`Builder::edge`].
#[derive(Debug, Clone, Copy)]
pub enum EdgeName<'a> {
    Str(&'a str),
    Index(u32),
}

#[cfg(test)]
pub(crate) mod tests;
