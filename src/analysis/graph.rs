//! One snapshot's computed answers: dominators, retained sizes, distances and the BFS tree
//! of shortest retainer paths, and the class of every node. Built on the analysis thread
//! from a [`HeapSnapshot`], read-only afterwards.
//!
//! Invariants: every array is indexed by node ordinal; `distance[v]` is DevTools'
//! (`1` for the user roots — the root's non-synthetic children —, `100_000_000 + k` for
//! what only the system roots reach, [`NO_DISTANCE`] for what nothing reaches over
//! counted edges); `tree.parent[v]` is the node the BFS first reached `v` from, with that
//! edge's type and name (so the chain of parents is a shortest path, DevTools' Retainers
//! view order), [`NO_NODE`] for the root and unreached nodes. The tree holds what the
//! paths need of the edges, so a graph from [`Graph::build_lean`] answers them with its
//! edge arrays freed.

use super::column::Narrow;
use super::dominators::{dominators, retained_sizes, Dominators, Flow};
use super::hash::{FxMap, FxSet};
use super::paths::Locations;
use super::rules::{parse_int, BitSet, Rules};
use crate::error::Result;
use crate::snapshot::{Control, HeapSnapshot, U64Column};

/// DevTools' `noDistance`.
pub const NO_DISTANCE: i32 = -5;
/// DevTools' `baseSystemDistance`: the root's distance when user roots exist.
pub const BASE_SYSTEM_DISTANCE: i32 = 100_000_000;
/// No parent in the [`Tree`]: the root, and what the BFS does not reach.
pub const NO_NODE: u32 = u32::MAX;

/// The BFS tree of shortest retainer paths: per node (ordinal) its parent and the type
/// and name (`HeapSnapshot::edge_type` / `edge_name` values) of the edge from the parent
/// that reached it — all the paths need of the edges — in 8 bytes a node: the type in the
/// top 3 bits of a 32-bit word with the name below; an edge whose type index is 7 or more
/// or whose name needs more than 29 bits (neither in V8's snapshots) is kept exactly on
/// the side, behind the marker type 7.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub parent: Vec<u32>,
    edge: Vec<u32>,
    wide: std::collections::HashMap<u32, (u8, u32)>,
}

impl Tree {
    const NAME_BITS: u32 = 29;
    const WIDE: u32 = 7;

    fn new(n: usize) -> Self {
        Self {
            parent: vec![NO_NODE; n],
            edge: vec![0; n],
            wide: std::collections::HashMap::new(),
        }
    }

    /// Record that `to` was reached by an edge of `edge_type` and `edge_name`.
    #[inline]
    pub fn set_edge(&mut self, to: u32, edge_type: u8, edge_name: u32) {
        if (edge_type as u32) < Self::WIDE && edge_name >> Self::NAME_BITS == 0 {
            self.edge[to as usize] = (edge_type as u32) << Self::NAME_BITS | edge_name;
        } else {
            self.edge[to as usize] = Self::WIDE << Self::NAME_BITS;
            self.wide.insert(to, (edge_type, edge_name));
        }
    }

    /// `(edge type, edge name)` of the edge that reached `to`.
    #[inline]
    pub fn edge(&self, to: u32) -> (u8, u32) {
        let w = self.edge[to as usize];
        let t = w >> Self::NAME_BITS;
        if t == Self::WIDE {
            return self.wide.get(&to).copied().unwrap_or((0, 0));
        }
        (t as u8, w & ((1 << Self::NAME_BITS) - 1))
    }

    pub fn heap_bytes(&self) -> usize {
        self.parent.capacity() * 4 + self.edge.capacity() * 4 + self.wide.capacity() * 12
    }
}

/// The class table: one id per `(type, class name)` (the [`crate::snapshot::class_name`]
/// rule, with DevTools' `Detached ` prefix on embedder nodes found detached — see
/// [`detached_natives`]), and every node's id.
#[derive(Debug, Clone, Default)]
pub struct Classes {
    /// Each node's class id, in 1, 2 or 4 bytes by the number of classes.
    pub of: Narrow,
    /// `(type name, class name)` per class id.
    pub names: Vec<(String, String)>,
}

impl Classes {
    pub fn build(s: &HeapSnapshot, ctl: &Control) -> Result<Self> {
        Self::build_with(s, detached_natives(s), ctl)
    }

    /// With the detached natives already found ([`detached_natives`], which needs the
    /// edges): the class table itself reads only the nodes and the strings.
    pub fn build_with(s: &HeapSnapshot, detached: Option<BitSet>, ctl: &Control) -> Result<Self> {
        let n = s.node_count();
        // Types whose class is their node name: one id per distinct name per type.
        let by_name: Vec<bool> = s
            .node_types
            .iter()
            .map(|t| t == "object" || t == "native")
            .collect();
        let mut per_type: Vec<Option<u32>> = vec![None; s.node_types.len()];
        let mut by_index: FxMap<(u8, u32), u32> = FxMap::default();
        let mut by_text: FxMap<(u8, &str), u32> = FxMap::default();
        let mut names: Vec<(String, String)> = Vec::new();
        let mut of = Vec::with_capacity(n);
        let mut detached_ids: FxMap<u32, u32> = FxMap::default();
        for v in 0..n {
            if v & 0xfffff == 0 {
                ctl.check()?;
            }
            let t = s.node_type[v];
            if detached.as_ref().is_some_and(|d| d.get(v)) {
                let name = s.node_name[v];
                let id = *detached_ids.entry(name).or_insert_with(|| {
                    let text = format!("Detached {}", s.strings.get(name));
                    match names
                        .iter()
                        .position(|(tn, cn)| tn == &s.node_types[t as usize] && cn == &text)
                    {
                        Some(i) => i as u32,
                        None => {
                            names.push((s.node_types[t as usize].clone(), text));
                            (names.len() - 1) as u32
                        }
                    }
                });
                of.push(id);
                continue;
            }
            let id = if by_name.get(t as usize).copied().unwrap_or(false) {
                let name = s.node_name[v];
                match by_index.get(&(t, name)) {
                    Some(&id) => id,
                    None => {
                        let text = s.strings.get(name);
                        let id = *by_text.entry((t, text)).or_insert_with(|| {
                            names.push((s.node_types[t as usize].clone(), text.to_string()));
                            (names.len() - 1) as u32
                        });
                        by_index.insert((t, name), id);
                        id
                    }
                }
            } else {
                match per_type.get(t as usize).copied().flatten() {
                    Some(id) => id,
                    None => {
                        let tn = s.node_types.get(t as usize).cloned().unwrap_or_default();
                        let cn = crate::snapshot::class_name(&tn, "").into_owned();
                        names.push((tn, cn));
                        let id = (names.len() - 1) as u32;
                        if let Some(slot) = per_type.get_mut(t as usize) {
                            *slot = Some(id);
                        }
                        id
                    }
                }
            };
            of.push(id);
        }
        let of = Narrow::from_u32s(of, names.len().saturating_sub(1) as u32);
        Ok(Self { of, names })
    }

    pub fn find(&self, name: &str) -> Vec<u32> {
        (0..self.names.len() as u32)
            .filter(|&c| self.names[c as usize].1 == name)
            .collect()
    }
}

/// DevTools' `propagateDOMState`: embedder (`native`) nodes marked detached in the
/// snapshot, and native nodes reached from them (not through hidden or weak edges, not
/// through JS objects, not already attached) are detached; DevTools shows their class as
/// `Detached <name>`. `None` when the snapshot has no `detachedness` field.
pub fn detached_natives(s: &HeapSnapshot) -> Option<BitSet> {
    let det = s.detachedness.as_ref()?;
    let n = s.node_count();
    let native = s.node_type_index("native")?;
    let hidden = s.edge_type_index("hidden").unwrap_or(u8::MAX);
    let weak = s.edge_type_index("weak").unwrap_or(u8::MAX);
    let mut state = det.clone();
    let mut visited = BitSet::new(n);
    let mut out = BitSet::new(n);
    let (mut attached, mut detached): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
    let mut process =
        |o: u32, st: u8, state: &mut [u8], attached: &mut Vec<u32>, detached: &mut Vec<u32>| {
            if visited.get(o as usize) {
                return;
            }
            visited.set(o as usize);
            if s.node_type[o as usize] != native {
                return;
            }
            state[o as usize] = st;
            if st == 1 {
                attached.push(o);
            } else if st == 2 {
                out.set(o as usize);
                detached.push(o);
            }
        };
    for o in 0..n as u32 {
        let st = det[o as usize];
        if st != 0 {
            process(o, st, &mut state, &mut attached, &mut detached);
        }
    }
    while let Some(o) = attached.pop() {
        for e in s.edges(o) {
            let t = s.edge_type[e];
            if t != hidden && t != weak {
                process(s.edge_to[e], 1, &mut state, &mut attached, &mut detached);
            }
        }
    }
    while let Some(o) = detached.pop() {
        if state[o as usize] == 1 {
            continue;
        }
        for e in s.edges(o) {
            let t = s.edge_type[e];
            if t != hidden && t != weak {
                process(s.edge_to[e], 2, &mut state, &mut attached, &mut detached);
            }
        }
    }
    Some(out)
}

/// One snapshot with its answers.
pub struct Graph<'s> {
    pub snap: &'s HeapSnapshot,
    pub rules: Rules<'s>,
    pub idom: Vec<u32>,
    pub retained: Vec<u64>,
    pub distance: Vec<i32>,
    pub tree: Tree,
    pub classes: Classes,
    /// The closures' source locations, resolved while the edges were there.
    pub locations: Locations,
}

/// The dominator pass's view of a snapshot: DevTools' rules ([`Rules::essential`])
/// decided once per edge into a bitset (one bit per edge), since the pass visits every
/// edge three times (counting predecessors, filling them, the DFS).
struct Essential<'s> {
    snap: &'s HeapSnapshot,
    bits: BitSet,
}

impl<'s> Essential<'s> {
    fn new(rules: &Rules<'s>, ctl: &Control) -> Result<Self> {
        Ok(Self {
            snap: rules.snap,
            bits: essential_bits(rules, ctl)?,
        })
    }
}

/// One bit per edge: whether it counts for dominators ([`Rules::essential`]).
pub fn essential_bits(rules: &Rules<'_>, ctl: &Control) -> Result<BitSet> {
    let s = rules.snap;
    let mut bits = BitSet::new(s.edge_count());
    for v in 0..s.node_count() as u32 {
        if v & 0xffff == 0 {
            ctl.check()?;
        }
        for e in s.edges(v) {
            if rules.essential(v, e) {
                bits.set(e);
            }
        }
    }
    Ok(bits)
}

/// The dominator pass's input taken out of a snapshot: its edge ranges and targets,
/// compacted in place to the essential edges ([`essential_bits`]) — a non-essential edge
/// costs nothing from here on and no bit is tested per edge. Handed to [`dominators`] by
/// value, it is freed when the DFS ends. `summarize`'s way
/// ([`super::summary::summarize_owned`]).
pub struct OwnedFlow {
    pub first_edge: Vec<u32>,
    pub edge_to: Vec<u32>,
}

impl OwnedFlow {
    /// Move the edge ranges and targets out of `snap`, keep only the essential edges
    /// (`bits`), and free what only the edges needed (edge types and names, detachedness,
    /// locations; node ids unless `keep_ids`), then hand the freed pages back: what is left
    /// of `snap` is nodes, names and self sizes. `snap.first_edge` is left empty.
    pub fn take(snap: &mut HeapSnapshot, bits: BitSet, keep_ids: bool) -> Self {
        let mut first_edge = std::mem::take(&mut snap.first_edge);
        let mut edge_to = std::mem::take(&mut snap.edge_to);
        snap.edge_type = Vec::new();
        snap.edge_name = Vec::new();
        if !keep_ids {
            snap.node_id = U64Column::default();
        }
        snap.detachedness = None;
        snap.locations = Vec::new();
        // In place: node v's kept targets move down to the write cursor (never past their
        // old slot), and its range start is rewritten after its old end was read.
        let n = first_edge.len().saturating_sub(1);
        let mut w = 0usize;
        for v in 0..n {
            let (a, b) = (first_edge[v] as usize, first_edge[v + 1] as usize);
            first_edge[v] = w as u32;
            for e in a..b {
                if bits.get(e) {
                    edge_to[w] = edge_to[e];
                    w += 1;
                }
            }
        }
        if n > 0 {
            first_edge[n] = w as u32;
        }
        drop(bits);
        edge_to.truncate(w);
        edge_to.shrink_to_fit();
        super::release_free_memory();
        OwnedFlow {
            first_edge,
            edge_to,
        }
    }
}

impl Flow for OwnedFlow {
    fn node_count(&self) -> usize {
        self.first_edge.len().saturating_sub(1)
    }
    fn slots(&self, v: u32) -> std::ops::Range<usize> {
        self.first_edge[v as usize] as usize..self.first_edge[v as usize + 1] as usize
    }
    #[inline]
    fn target(&self, _v: u32, e: usize) -> Option<u32> {
        Some(self.edge_to[e])
    }
}

impl Flow for Essential<'_> {
    fn node_count(&self) -> usize {
        self.snap.node_count()
    }
    fn slots(&self, v: u32) -> std::ops::Range<usize> {
        self.snap.edges(v)
    }
    #[inline]
    fn target(&self, _v: u32, e: usize) -> Option<u32> {
        self.bits.get(e).then(|| self.snap.edge_to[e])
    }
}

impl<'s> Graph<'s> {
    /// Everything, in DevTools' order of rules. Reports phases `dominators`, `distances`,
    /// `classes` (each `done/total` in nodes) through `ctl`.
    pub fn build(snap: &'s HeapSnapshot, ctl: &Control) -> Result<Self> {
        Self::build_with(snap, true, ctl)
    }

    /// What `summarize` needs: dominators, retained sizes and classes, without the
    /// distance BFS (`distance` and `tree` are left empty, so no retainer paths can be
    /// asked of this graph). Reports phases `dominators`, `classes`.
    pub fn build_without_paths(snap: &'s HeapSnapshot, ctl: &Control) -> Result<Self> {
        Self::build_with(snap, false, ctl)
    }

    fn build_with(snap: &'s HeapSnapshot, paths: bool, ctl: &Control) -> Result<Self> {
        let n = snap.node_count() as u64;
        let rules = Rules::new(snap, &snap.node_id);
        let mut rep = ctl.reporter("dominators", n);
        rep.tick(0);
        let dom = {
            let flow = Essential::new(&rules, ctl)?;
            dominators(&flow, 0, ctl)?
        };
        let retained = retained_sizes(&dom, &snap.self_size);
        rep.done();
        let idom = dom.idom;
        let (distance, tree) = if paths {
            let mut rep = ctl.reporter("distances", n);
            rep.tick(0);
            let d = distances(&rules, ctl)?;
            rep.done();
            d
        } else {
            (Vec::new(), Tree::default())
        };
        let mut rep = ctl.reporter("classes", n);
        rep.tick(0);
        let classes = Classes::build(snap, ctl)?;
        rep.done();
        let locations = if paths {
            Locations::resolve(snap)
        } else {
            Locations::default()
        };
        Ok(Self {
            snap,
            rules,
            idom,
            retained,
            distance,
            tree,
            classes,
            locations,
        })
    }

    /// [`Graph::build`]'s answers (but no `distance`: the paths need only the tree) in
    /// less memory, for `diff`. Everything that reads the edges comes first — the
    /// dominators' edge bits, the detached natives, the class table, `first` (on that
    /// partial graph: no tree, and `idom` / `retained` empty), the BFS tree, the closures'
    /// locations, and `then` (on the graph with its tree) —; then the edge types and names,
    /// the node ids (unless `keep_ids`), the tree (unless `keep_tree`), the detachedness
    /// and the location list are freed, and the edge ranges and targets when the dominator
    /// DFS ends, so the peak is the larger of the graph with its edges and the dominator
    /// pass, not their sum. `first` runs before the BFS so that what it frees (diff's id
    /// match: `before`'s id table) is gone before the tree and the BFS queue are made. The
    /// snapshot keeps its nodes and strings; its edge ranges are left empty. Phases
    /// `classes`, `distances`, `dominators`.
    pub fn build_lean<A, T>(
        snap: &'s mut HeapSnapshot,
        keep_tree: bool,
        keep_ids: bool,
        ctl: &Control,
        first: impl FnOnce(&Graph<'_>, &U64Column) -> Result<A>,
        then: impl FnOnce(&Graph<'_>, A) -> Result<T>,
    ) -> Result<(Self, T)> {
        let n = snap.node_count() as u64;
        // Without `keep_ids`, the node ids serve only the rules and `first` (diff's id
        // match): taken out of the snapshot and freed before the BFS, 4 bytes a node less
        // at the BFS's peak. `then` and everything after see an empty `node_id`.
        let mut ids_out = (!keep_ids).then(|| std::mem::take(&mut snap.node_id));
        let (bits, k, tree, classes, locations, out) = {
            let s: &HeapSnapshot = snap;
            let ids: &U64Column = ids_out.as_ref().unwrap_or(&s.node_id);
            let rules = Rules::new(s, ids);
            // Both read the snapshot only: the edge bits on the second core.
            let (bits, classes) = super::both(
                || essential_bits(&rules, ctl),
                || {
                    let mut rep = ctl.reporter("classes", n);
                    rep.tick(0);
                    let classes = Classes::build(s, ctl);
                    rep.done();
                    classes
                },
            );
            let (bits, classes) = (bits?, classes?);
            let mut g = Graph {
                snap: s,
                rules,
                idom: Vec::new(),
                retained: Vec::new(),
                distance: Vec::new(),
                tree: Tree::default(),
                classes,
                locations: Locations::default(),
            };
            let a = first(&g, ids)?;
            drop(ids_out.take());
            super::release_free_memory();
            super::mem_mark("lean: first");
            let mut rep = ctl.reporter("distances", n);
            rep.tick(0);
            let (_, tree) = distances_with(&g.rules, false, ctl)?;
            rep.done();
            g.tree = tree;
            super::mem_mark("lean: tree");
            if keep_tree {
                g.locations = Locations::files_of(s);
            }
            super::mem_mark("lean: tree and locations");
            let out = then(&g, a)?;
            super::mem_mark("lean: before the edges go");
            let k = g.rules.k;
            let Graph {
                tree,
                classes,
                locations,
                ..
            } = g;
            (bits, k, tree, classes, locations, out)
        };
        let tree = if keep_tree { tree } else { Tree::default() };
        let mut locations = locations;
        if keep_tree {
            // The snapshot's own list, moved: the edges are no longer needed to name files.
            locations.set_list(std::mem::take(&mut snap.locations));
        }
        let flow = OwnedFlow::take(snap, bits, keep_ids);
        super::mem_mark("lean: edges taken");
        // The edge ranges stay valid (every node's range empty) for whatever still asks.
        snap.first_edge = vec![0; snap.node_count() + 1];
        let mut rep = ctl.reporter("dominators", n);
        rep.tick(0);
        let dom = dominators(flow, 0, ctl)?;
        let retained = retained_sizes(&dom, &snap.self_size);
        let Dominators { idom, order } = dom;
        drop(order);
        rep.done();
        super::release_free_memory();
        super::mem_mark("lean: dominators");
        let snap: &'s HeapSnapshot = snap;
        Ok((
            Self {
                snap,
                rules: Rules::kinds_only(snap, k),
                idom,
                retained,
                distance: Vec::new(),
                tree,
                classes,
                locations,
            },
            out,
        ))
    }

    /// Bytes held by the computed arrays (not the snapshot).
    pub fn heap_bytes(&self) -> usize {
        self.idom.capacity() * 4
            + self.retained.capacity() * 8
            + self.distance.capacity() * 4
            + self.tree.heap_bytes()
            + self.classes.of.heap_bytes()
            + self.rules.heap_bytes()
    }
}

/// DevTools' `calculateDistances` with the JS snapshot's filter, recording each node's BFS
/// parent and the edge from it.
fn distances(rules: &Rules<'_>, ctl: &Control) -> Result<(Vec<i32>, Tree)> {
    distances_with(rules, true, ctl)
}

/// [`distances`], or only its tree when `!want_distances` (the lean build): then no
/// distance array is made (4 bytes a node less at the BFS's peak) and a node counts as
/// reached once it has a tree parent — the same nodes in the same order, since the BFS
/// only ever asks whether a node's distance is set.
fn distances_with(
    rules: &Rules<'_>,
    want_distances: bool,
    ctl: &Control,
) -> Result<(Vec<i32>, Tree)> {
    let s = rules.snap;
    let k = rules.k;
    let n = s.node_count();
    let mut dist = if want_distances {
        vec![NO_DISTANCE; n]
    } else {
        Vec::new()
    };
    let mut parent = Tree::new(n);
    if n == 0 {
        return Ok((dist, parent));
    }
    // A ring buffer: it holds the frontier only (a heap's widest BFS level is far below
    // its node count), not every node reached, as a vector used as a queue would.
    let mut queue: std::collections::VecDeque<u32> = std::collections::VecDeque::new();
    let mut pending: FxSet<&str> = FxSet::default();
    fn filter<'a>(rules: &Rules<'a>, v: u32, e: usize, pending: &mut FxSet<&'a str>) -> bool {
        let s: &'a HeapSnapshot = rules.snap;
        let k = rules.k;
        let vt = s.node_type[v as usize];
        let et = s.edge_type[e];
        if vt == k.hidden
            && !k.numbered(et)
            && s.strings.get(s.edge_name[e]) == "sloppy_function_map"
            && s.name(v) == "system / NativeContext"
        {
            return false;
        }
        if vt == k.array && s.name(v) == "(map descriptors)" {
            let idx = if k.numbered(et) {
                Some(s.edge_name[e] as i64)
            } else {
                parse_int(s.strings.get(s.edge_name[e]))
            };
            return match idx {
                Some(i) => i < 2 || i % 3 != 1,
                None => true,
            };
        }
        if et == k.e_internal {
            if let Some((at, _)) = rules.weakmap_edge(e) {
                let part = &s.strings.get(s.edge_name[e])[at..];
                if !pending.remove(part) {
                    pending.insert(part);
                    return false;
                }
            }
        }
        true
    }
    // `root_reached`: whether the root counts as reached (the second search starts from it;
    // in the tree it keeps no parent, so without distances this flag stands for its
    // distance).
    let mut bfs = |queue: &mut std::collections::VecDeque<u32>,
                   dist: &mut [i32],
                   parent: &mut Tree,
                   root_reached: bool|
     -> Result<()> {
        let mut i = 0u32;
        while let Some(v) = queue.pop_front() {
            if i & 0xffff == 0 {
                ctl.check()?;
            }
            i = i.wrapping_add(1);
            let d = if want_distances {
                dist[v as usize] + 1
            } else {
                0
            };
            for e in s.edges(v) {
                if s.edge_type[e] == k.e_weak {
                    continue;
                }
                let to = s.edge_to[e];
                let reached = if want_distances {
                    dist[to as usize] != NO_DISTANCE
                } else {
                    parent.parent[to as usize] != NO_NODE || (to == 0 && root_reached)
                };
                if reached {
                    continue;
                }
                if !filter(rules, v, e, &mut pending) {
                    continue;
                }
                if want_distances {
                    dist[to as usize] = d;
                }
                parent.parent[to as usize] = v;
                parent.set_edge(to, s.edge_type[e], s.edge_name[e]);
                queue.push_back(to);
            }
        }
        Ok(())
    };
    for e in s.edges(0) {
        let to = s.edge_to[e];
        if s.node_type[to as usize] != k.synthetic {
            if want_distances {
                dist[to as usize] = 1;
            }
            parent.parent[to as usize] = 0;
            parent.set_edge(to, s.edge_type[e], s.edge_name[e]);
            queue.push_back(to);
        }
    }
    let users = queue.len();
    bfs(&mut queue, &mut dist, &mut parent, false)?;
    if want_distances {
        dist[0] = if users > 0 { BASE_SYSTEM_DISTANCE } else { 0 };
    }
    queue.clear();
    queue.push_back(0);
    bfs(&mut queue, &mut dist, &mut parent, true)?;
    Ok((dist, parent))
}

#[cfg(test)]
mod tree_tests {
    use super::*;

    #[test]
    fn tree_edges_read_back_exactly_packed_or_on_the_side() {
        let cases: [(u8, u32); 7] = [
            (0, 0),
            (6, (1 << 29) - 1),
            (2, 1 << 29),
            (7, 5),
            (200, u32::MAX),
            (3, 12345),
            (1, u32::MAX - 1),
        ];
        let mut t = Tree::new(cases.len());
        for (i, &(et, en)) in cases.iter().enumerate() {
            t.set_edge(i as u32, et, en);
        }
        for (i, &want) in cases.iter().enumerate() {
            assert_eq!(t.edge(i as u32), want, "node {i}");
        }
        assert_eq!(t.wide.len(), 4);
        // Overwritten: the last edge recorded wins, packed or not.
        t.set_edge(4, 1, 9);
        assert_eq!(t.edge(4), (1, 9));
    }
}
