//! Retainer paths: for a set of instances, the shortest path from a GC root to each (the
//! BFS tree of [`Graph::tree`], which holds the parent edges' types and names, so no edge
//! array is read here: DevTools' Retainers view order — weak edges hidden,
//! the root's own bookkeeping edges not shown), merged the way Eclipse MAT's "merge
//! shortest paths" does: instances whose paths pass through the same classes over the
//! same edges form one path, with how many instances it holds and their retained bytes.
//! Runs on the analysis thread.
//!
//! Invariants: a path's first step is a child of the synthetic root (its `edge` is
//! `None`), its last step an instance of the class asked for; element indices and numeric
//! slot names (a Map's table entries) do not split paths (shown as `[]`).

use std::collections::HashMap;

use super::graph::{Graph, NO_NODE};
use super::rules::BitSet;
use crate::error::Result;
use crate::snapshot::{Control, Reporter};
use crate::snapshot::{HeapSnapshot, Location};

/// One step of a path: the node reached and the edge that reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The node's class ([`crate::snapshot::class_name`]).
    pub node: String,
    /// The node's type (`object`, `closure`, …).
    pub type_name: String,
    /// The node's own name when it says more than its class (a function's name, a system
    /// object's kind, a synthetic root's name); empty otherwise.
    pub name: String,
    pub edge: Option<String>,
    pub edge_type: Option<String>,
    /// `file:line:column` (1-based) of a closure's source, when the snapshot has it.
    pub location: Option<String>,
}

/// Merged shortest paths to the instances of one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainerPath {
    pub class_name: String,
    pub count: u64,
    pub retained_bytes: u64,
    pub steps: Vec<Step>,
    pub text: String,
}

/// Where closures are in source: the snapshot's location list (node ordinal, script id,
/// line, column; 0-based) by ordinal, and per script id the string index of the script's
/// name (`u32::MAX` when it has none), resolved from the edges when the graph is built
/// ([`Locations::resolve`]). One name per script, not per closure: a heap of 5 M closures
/// has a few hundred scripts, so the list is the snapshot's own (moved, not copied, in
/// the lean build) and the edges are walked once per script.
#[derive(Debug, Clone, Default)]
pub struct Locations {
    list: Vec<Location>,
    files: HashMap<u32, u32>,
}

impl Locations {
    /// Every closure's location with its file, read while the snapshot has its edges.
    pub fn resolve(s: &HeapSnapshot) -> Self {
        let mut l = Self::files_of(s);
        l.set_list(s.locations.clone());
        l
    }

    /// The scripts' names only (the list comes later: [`Locations::set_list`]).
    pub fn files_of(s: &HeapSnapshot) -> Self {
        // A script's closures are tried until one leads to its name (many may not: their
        // shared function info has no script edge yet), then skipped.
        let mut files: HashMap<u32, u32> = HashMap::new();
        let k = super::rules::Kinds::of(s);
        for l in &s.locations {
            let e = files.entry(l.script_id).or_insert(u32::MAX);
            if *e != u32::MAX {
                continue;
            }
            if let Some(file) = script_name(s, &k, l.node) {
                *e = file;
            }
        }
        Self {
            list: Vec::new(),
            files,
        }
    }

    /// The location list (the snapshot's, in any order).
    pub fn set_list(&mut self, mut list: Vec<Location>) {
        if !list.is_sorted_by_key(|l| l.node) {
            list.sort_by_key(|l| l.node);
        }
        list.shrink_to_fit();
        self.list = list;
    }

    /// `file:line:col` for a closure: the file from its SharedFunctionInfo's script.
    pub fn of(&self, g: &Graph<'_>, v: u32) -> Option<String> {
        let i = self.list.binary_search_by_key(&v, |l| l.node).ok()?;
        let l = &self.list[i];
        let file = match self.files.get(&l.script_id) {
            Some(&f) if f != u32::MAX => g.snap.strings.get(f).to_string(),
            _ => format!("script #{}", l.script_id),
        };
        Some(format!("{file}:{}:{}", l.line + 1, l.column + 1))
    }
}

/// The node an edge named `name` leads to from `v`.
fn edge_named(s: &HeapSnapshot, k: &super::rules::Kinds, v: u32, names: &[&str]) -> Option<u32> {
    s.edges(v)
        .find(|&e| !k.numbered(s.edge_type[e]) && names.contains(&s.strings.get(s.edge_name[e])))
        .map(|e| s.edge_to[e])
}

/// closure → `shared` → SharedFunctionInfo → `script` / `script_or_debug_info` → Script,
/// whose `name` edge (or own name) is the file: its string index.
fn script_name(s: &HeapSnapshot, k: &super::rules::Kinds, closure: u32) -> Option<u32> {
    let sfi = edge_named(s, k, closure, &["shared"])?;
    let script = edge_named(s, k, sfi, &["script", "script_or_debug_info"])?;
    let name = edge_named(s, k, script, &["name", "source_url"])
        .map(|n| s.node_name[n as usize])
        .filter(|&n| !s.strings.get(n).is_empty())
        .unwrap_or(s.node_name[script as usize]);
    let text = s.strings.get(name);
    (!text.is_empty() && !text.starts_with("system /")).then_some(name)
}

/// The nodes from the root's child down to `v` (each reached from the one before by its
/// [`Graph::tree`] edge), or `None` when nothing reaches `v`.
pub fn chain(g: &Graph<'_>, v: u32) -> Option<Vec<u32>> {
    // A graph built without paths (`Graph::build_without_paths`) has no tree.
    let parent = &g.tree.parent;
    if parent.get(v as usize).is_none_or(|&p| p == NO_NODE) || v == 0 {
        return None;
    }
    let mut nodes = vec![v];
    let mut cur = v;
    loop {
        let p = parent[cur as usize];
        if p == NO_NODE || nodes.len() > g.snap.node_count() {
            return None;
        }
        if p == 0 {
            break;
        }
        nodes.push(p);
        cur = p;
    }
    nodes.reverse();
    Some(nodes)
}

/// A key that merges paths: the node's class (or, for closures and system nodes, its
/// name too) and the edge's type and name (indices dropped). Hashed from the text, so
/// the same path in two snapshots has the same key (string indices differ between files).
fn step_key(g: &Graph<'_>, to: u32, with_edge: bool) -> (u64, u64) {
    let s = g.snap;
    let k = &g.rules.k;
    let t = s.node_type[to as usize];
    let class = &g.classes.names[g.classes.of.get(to as usize) as usize].1;
    let node = if t == k.object || t == k.native || t == k.string || t == k.array {
        text_hash(t as u64, class)
    } else {
        text_hash(0x100 | t as u64, s.name(to))
    };
    if !with_edge {
        return (node, 0);
    }
    let (et, en) = g.tree.edge(to);
    let name = s.strings.get(en);
    let edge = if k.numbered(et) || numeric(name) {
        text_hash(et as u64, "[]")
    } else {
        text_hash(et as u64, name)
    };
    (node, edge)
}

/// FNV-1a of `tag` and `text`.
fn text_hash(tag: u64, text: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ tag;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn mix(h: u64, x: u64) -> u64 {
    // splitmix64 over the running hash: a 64-bit key per merged path (two of them make
    // a 128-bit key, so distinct paths do not merge by accident).
    let mut z = h ^ x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 128-bit merge key of `v`'s path (None when unreachable).
pub fn path_key(g: &Graph<'_>, v: u32) -> Option<u128> {
    suffix_key(g, v, usize::MAX)
}

/// The merge key of the last `steps` steps of `v`'s path: what matches a collection across
/// two snapshots whose ids are unrelated (the top of a shortest path, through the
/// runtime's internals, changes between snapshots; its end near the collection does not).
pub fn suffix_key(g: &Graph<'_>, v: u32, steps: usize) -> Option<u128> {
    let mut edges = chain(g, v)?;
    if edges.len() > steps {
        edges.drain(..edges.len() - steps);
    }
    // `edges` are the nodes of the path, each standing for the edge that reached it.
    let (mut a, mut b) = (0x1234_5678u64, 0x8765_4321u64);
    let whole = steps == usize::MAX;
    for (i, &e) in edges.iter().enumerate() {
        let (n, x) = step_key(g, e, i > 0 || !whole);
        a = mix(mix(a, n), x);
        b = mix(mix(b, x), n ^ 0xabcdef);
    }
    Some(((a as u128) << 64) | b as u128)
}

/// The steps and text of `v`'s path (`exact`: show element indices).
pub fn describe(
    g: &Graph<'_>,
    locs: &Locations,
    v: u32,
    exact: bool,
) -> Option<(Vec<Step>, String)> {
    let edges = chain(g, v)?;
    let s = g.snap;
    let k = &g.rules.k;
    let mut steps = Vec::with_capacity(edges.len());
    let mut text = String::new();
    for (i, &to) in edges.iter().enumerate() {
        let t = s.node_type[to as usize];
        let class = g.classes.names[g.classes.of.get(to as usize) as usize]
            .1
            .clone();
        let raw = s.name(to);
        let name =
            if t == k.object || t == k.native || t == k.string || t == k.array && raw.is_empty() {
                String::new()
            } else {
                raw.chars().take(120).collect()
            };
        let location = (t == k.closure).then(|| locs.of(g, to)).flatten();
        let (edge, edge_type) = if i == 0 {
            (None, None)
        } else {
            let (et, en) = g.tree.edge(to);
            let shown = if k.numbered(et) {
                if exact {
                    format!("[{en}]")
                } else {
                    "[]".to_string()
                }
            } else {
                let n = s.strings.get(en);
                if numeric(n) && !exact {
                    "[]".to_string()
                } else {
                    n.chars().take(120).collect()
                }
            };
            (Some(shown), s.edge_types.get(et as usize).cloned())
        };
        if let (Some(en), Some(et)) = (&edge, &edge_type) {
            text.push_str(&format!(" → {en} ({et}) → "));
        }
        text.push_str(&label(&class, &name, t == k.closure, location.as_deref()));
        steps.push(Step {
            node: class,
            type_name: s.type_name(to).to_string(),
            name,
            edge,
            edge_type,
            location,
        });
    }
    Some((steps, text))
}

fn label(class: &str, name: &str, closure: bool, location: Option<&str>) -> String {
    let mut out = if closure {
        format!("{}()", if name.is_empty() { "(anonymous)" } else { name })
    } else if !name.is_empty() && class.starts_with('(') {
        name.to_string()
    } else {
        class.to_string()
    };
    if let Some(l) = location {
        out.push_str(" @ ");
        out.push_str(l);
    }
    out
}

/// Merged paths to `instances` (all of one class), most instances first, at most `limit`.
/// `top`: the instances whose retained size counts for their class (others add 0).
/// Reports phase `paths` (`done/total` in instances).
pub fn merged(
    g: &Graph<'_>,
    instances: &[u32],
    top: Option<&BitSet>,
    limit: usize,
    ctl: &Control,
) -> Result<Vec<RetainerPath>> {
    let mut rep = ctl.reporter("paths", instances.len() as u64);
    let out = merged_part(g, instances, top, limit, ctl, &mut rep, 0)?;
    rep.done();
    Ok(out)
}

/// [`merged`] as one part of a `paths` phase over several classes (diff's): `rep` counts
/// the instances of all of them, these being `offset..offset + instances.len()`, and
/// the caller completes it, so the phase's fraction never falls back.
pub fn merged_part(
    g: &Graph<'_>,
    instances: &[u32],
    top: Option<&BitSet>,
    limit: usize,
    ctl: &Control,
    rep: &mut Reporter<'_>,
    offset: u64,
) -> Result<Vec<RetainerPath>> {
    struct Group {
        count: u64,
        retained: u64,
        exemplar: u32,
        first: usize,
    }
    let mut groups: HashMap<u128, Group> = HashMap::new();
    for (i, &v) in instances.iter().enumerate() {
        if i & 0x3fff == 0 {
            ctl.check()?;
            rep.tick(offset + i as u64);
        }
        let Some(key) = path_key(g, v) else { continue };
        let r = match top {
            Some(t) if !t.get(v as usize) => 0,
            _ => g.retained[v as usize],
        };
        let gr = groups.entry(key).or_insert(Group {
            count: 0,
            retained: 0,
            exemplar: v,
            first: i,
        });
        gr.count += 1;
        gr.retained += r;
    }
    let mut list: Vec<Group> = groups.into_values().collect();
    list.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(b.retained.cmp(&a.retained))
            .then(a.first.cmp(&b.first))
    });
    let locs = &g.locations;
    Ok(list
        .into_iter()
        .take(limit)
        .filter_map(|gr| {
            let (steps, text) = describe(g, locs, gr.exemplar, gr.count == 1)?;
            Some(RetainerPath {
                class_name: g.classes.names[g.classes.of.get(gr.exemplar as usize) as usize]
                    .1
                    .clone(),
                count: gr.count,
                retained_bytes: gr.retained,
                steps,
                text,
            })
        })
        .collect())
}

/// Instances of the class named `class_name` (every type with that class name).
pub fn instances_of(g: &Graph<'_>, class_name: &str) -> Vec<u32> {
    let ids = g.classes.find(class_name);
    if ids.is_empty() {
        return Vec::new();
    }
    (0..g.snap.node_count() as u32)
        .filter(|&v| {
            ids.contains(&g.classes.of.get(v as usize)) && g.snap.self_size.get(v as usize) != 0
        })
        .collect()
}
