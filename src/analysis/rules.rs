//! Which edges count, by DevTools' rules (`front_end/entrypoints/heap_snapshot_worker/
//! HeapSnapshot.ts`, as shipped in the `heap-snapshot-toolkit` npm package the tests run):
//!
//! - for **dominators** ("essential" edges): not `weak`; not a self edge; a `shortcut` only
//!   from the root; not the WeakMap table→value `internal` edge (`… pair in WeakMap (table
//!   @<id>)` from the node whose id is `<id>`: the value stays retained by its key); and, from
//!   any node but the root, not an edge from a node outside the *page* into the page (the
//!   page is what the root's `shortcut` targets — the user globals — reach over non-weak
//!   edges; outside it live the debugger's and the embedder's references, which must not
//!   change who dominates user objects);
//! - for **distances**: not `weak`; not NativeContext's `sloppy_function_map`; not the
//!   descriptor slots of `(map descriptors)` arrays (crbug.com/413608); of the two edges
//!   that retain a WeakMap value (from the table, and from the key) only the second one met.
//!
//! Built once per snapshot on the analysis thread; read-only afterwards.

use crate::snapshot::{HeapSnapshot, U64Column};

/// A type index that no node or edge has (a type missing from `meta`).
const NONE: u8 = u8::MAX;

/// Node and edge type indices resolved by name from the snapshot's `meta`.
#[derive(Debug, Clone, Copy)]
pub struct Kinds {
    pub hidden: u8,
    pub array: u8,
    pub string: u8,
    pub object: u8,
    pub code: u8,
    pub closure: u8,
    pub native: u8,
    pub synthetic: u8,
    pub e_context: u8,
    pub e_element: u8,
    pub e_property: u8,
    pub e_internal: u8,
    pub e_hidden: u8,
    pub e_shortcut: u8,
    pub e_weak: u8,
}

impl Kinds {
    pub fn of(s: &HeapSnapshot) -> Self {
        let n = |name| s.node_type_index(name).unwrap_or(NONE);
        let e = |name| s.edge_type_index(name).unwrap_or(NONE);
        Self {
            hidden: n("hidden"),
            array: n("array"),
            string: n("string"),
            object: n("object"),
            code: n("code"),
            closure: n("closure"),
            native: n("native"),
            synthetic: n("synthetic"),
            e_context: e("context"),
            e_element: e("element"),
            e_property: e("property"),
            e_internal: e("internal"),
            e_hidden: e("hidden"),
            e_shortcut: e("shortcut"),
            e_weak: e("weak"),
        }
    }
    /// Whether an edge type carries a number (`element`, `hidden`) instead of a string.
    pub fn numbered(&self, edge_type: u8) -> bool {
        edge_type == self.e_element || edge_type == self.e_hidden
    }
}

/// `<n> / part of key (<k> @<id>) -> value (<v> @<id>) pair in WeakMap (table @<table>)`:
/// the byte offset where the part after `<n>` starts, and `<table>`.
pub fn parse_weakmap_edge(name: &str) -> Option<(usize, u64)> {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let rest = name[digits..].strip_prefix(" / part of key (")?;
    let body = rest.strip_suffix(')')?;
    let at = body.rfind(" pair in WeakMap (table @")?;
    let table = &body[at + " pair in WeakMap (table @".len()..];
    if table.is_empty() || !table.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pair = &body[..at];
    let arrow = pair.find(") -> value (")?;
    if !ends_with_at_id(&pair[..arrow]) || !pair.ends_with(')') {
        return None;
    }
    if !ends_with_at_id(&pair[..pair.len() - 1]) {
        return None;
    }
    Some((digits, table.parse().ok()?))
}

/// `… @<digits>`
fn ends_with_at_id(s: &str) -> bool {
    let d = s.bytes().rev().take_while(u8::is_ascii_digit).count();
    d > 0 && s[..s.len() - d].ends_with(" @")
}

/// JavaScript's `parseInt(s, 10)`: leading whitespace, a sign, digits; `None` for NaN.
pub fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let d = t.bytes().take_while(u8::is_ascii_digit).count();
    if d == 0 {
        return None;
    }
    let v: i64 = t[..d].parse().unwrap_or(i64::MAX);
    Some(if neg { -v } else { v })
}

/// A bit per node.
#[derive(Debug, Clone, Default)]
pub struct BitSet(Vec<u64>);

impl BitSet {
    pub fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.0[i >> 6] >> (i & 63) & 1 == 1
    }
    #[inline]
    pub fn set(&mut self, i: usize) {
        self.0[i >> 6] |= 1 << (i & 63);
    }
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * 8
    }
}

/// The edge rules of one snapshot.
pub struct Rules<'s> {
    pub snap: &'s HeapSnapshot,
    pub k: Kinds,
    /// Nodes reachable from the user globals (DevTools' `pageObject` flag).
    page: BitSet,
    /// Per string index: whether it names a WeakMap table→value edge, and the table's id.
    weakmap: super::hash::FxMap<u32, (usize, u64)>,
    /// Per string index: 1 when checked and not a WeakMap edge name.
    not_weakmap: BitSet,
    /// The id of each node whose id is some WeakMap edge's table id, by ordinal: what
    /// [`Rules::essential`] compares, so that the node ids themselves can be freed once the
    /// rules are made.
    tables: super::hash::FxMap<u32, u64>,
}

impl<'s> Rules<'s> {
    /// The rules of `snap`, whose node ids are `ids` (its own `node_id`, or that column
    /// taken out of it: [`super::Graph::build_lean`] frees `after`'s before the BFS).
    pub fn new(snap: &'s HeapSnapshot, ids: &U64Column) -> Self {
        let k = Kinds::of(snap);
        let mut weakmap = super::hash::FxMap::default();
        let mut not_weakmap = BitSet::new(snap.strings.len());
        for e in 0..snap.edge_count() {
            if snap.edge_type[e] != k.e_internal {
                continue;
            }
            let name = snap.edge_name[e];
            if (name as usize) >= snap.strings.len()
                || not_weakmap.get(name as usize)
                || weakmap.contains_key(&name)
            {
                continue;
            }
            match parse_weakmap_edge(snap.strings.get(name)) {
                Some(m) => {
                    weakmap.insert(name, m);
                }
                None => not_weakmap.set(name as usize),
            }
        }
        let page = page_objects(snap, &k);
        let mut tables = super::hash::FxMap::default();
        if !weakmap.is_empty() {
            let wanted: super::hash::FxSet<u64> = weakmap.values().map(|&(_, t)| t).collect();
            for v in 0..ids.len() {
                let id = ids.get(v);
                if wanted.contains(&id) {
                    tables.insert(v as u32, id);
                }
            }
        }
        Self {
            snap,
            k,
            page,
            weakmap,
            not_weakmap,
            tables,
        }
    }

    /// Only the type indices, for a graph whose edges are freed ([`super::Graph::build_lean`]):
    /// no page set and no WeakMap names (nothing asks for the edge rules any more).
    pub fn kinds_only(snap: &'s HeapSnapshot, k: Kinds) -> Self {
        Self {
            snap,
            k,
            page: BitSet::default(),
            weakmap: super::hash::FxMap::default(),
            not_weakmap: BitSet::default(),
            tables: super::hash::FxMap::default(),
        }
    }

    /// The WeakMap match of an internal edge's name: (offset of the shared part, table id).
    #[inline]
    pub fn weakmap_edge(&self, e: usize) -> Option<(usize, u64)> {
        if self.snap.edge_type[e] != self.k.e_internal || self.weakmap.is_empty() {
            return None;
        }
        self.weakmap.get(&self.snap.edge_name[e]).copied()
    }

    /// Whether edge `e` out of node `from` counts for dominators.
    #[inline]
    pub fn essential(&self, from: u32, e: usize) -> bool {
        let s = self.snap;
        let t = s.edge_type[e];
        if t == self.k.e_weak {
            return false;
        }
        if t == self.k.e_internal {
            if let Some((_, table)) = self.weakmap_edge(e) {
                if self.tables.get(&from) == Some(&table) {
                    return false;
                }
            }
        }
        let to = s.edge_to[e];
        if to == from {
            return false;
        }
        if from != 0 {
            if t == self.k.e_shortcut {
                return false;
            }
            if self.page.get(to as usize) && !self.page.get(from as usize) {
                return false;
            }
        }
        true
    }

    pub fn heap_bytes(&self) -> usize {
        self.page.heap_bytes()
            + self.not_weakmap.heap_bytes()
            + self.weakmap.capacity() * 24
            + self.tables.capacity() * 12
    }
}

/// DevTools' `markPageOwnedNodes`: the root's `shortcut` targets (and `(Document DOM
/// trees)` roots) and everything they reach over non-weak edges.
fn page_objects(s: &HeapSnapshot, k: &Kinds) -> BitSet {
    let n = s.node_count();
    let mut page = BitSet::new(n);
    if n == 0 {
        return page;
    }
    let mut stack: Vec<u32> = Vec::new();
    for e in s.edges(0) {
        let t = s.edge_type[e];
        let to = s.edge_to[e];
        if t == k.e_element {
            if !(s.node_type[to as usize] == k.synthetic && s.name(to) == "(Document DOM trees)") {
                continue;
            }
        } else if t != k.e_shortcut {
            continue;
        }
        stack.push(to);
        page.set(to as usize);
    }
    while let Some(v) = stack.pop() {
        for e in s.edges(v) {
            let to = s.edge_to[e];
            if page.get(to as usize) || s.edge_type[e] == k.e_weak {
                continue;
            }
            page.set(to as usize);
            stack.push(to);
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakmap_edge_names_parse_like_devtools_regex() {
        let n = "12 / part of key (Object @123) -> value (Foo @77) pair in WeakMap (table @991)";
        assert_eq!(parse_weakmap_edge(n), Some((2, 991)));
        assert_eq!(parse_weakmap_edge("table"), None);
        assert_eq!(
            parse_weakmap_edge("1 / part of key (a @1) -> value (b @2) pair in WeakMap (table @)"),
            None
        );
        assert_eq!(
            parse_weakmap_edge(" / part of key (a @1) -> value (b @2) pair in WeakMap (table @3)"),
            None
        );
    }

    #[test]
    fn parse_int_follows_javascript() {
        assert_eq!(parse_int("12"), Some(12));
        assert_eq!(parse_int(" 7abc"), Some(7));
        assert_eq!(parse_int("-3"), Some(-3));
        assert_eq!(parse_int("abc"), None);
        assert_eq!(parse_int(""), None);
    }
}
