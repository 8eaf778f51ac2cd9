//! `diff(before, after)`: per class deltas (by aggregate always; new / deleted by node id
//! when the two files' ids are comparable — DevTools' Comparison view), merged retainer
//! paths for the classes that grew most, and growth detectors (collections whose entry
//! count grew, emitters whose listener arrays grew). Runs on the analysis thread.
//!
//! Memory: `before` is read, reduced to [`Facts`] (its class table, its `(id, class,
//! size)` triples — about 3.5 bytes per node for V8's dense ids, [`IdTable`] —, and its
//! collections' entry counts) and dropped before `after` is read; `after`'s side of the
//! id match is one bit per node (which are new). Both snapshots go through
//! [`Graph::build_lean`] (`super::diff_owned`): the id match ([`match_ids`], after which
//! `before`'s id table is freed) and the observations ([`early`]) run while the edges are
//! there, [`finish`] after the dominators, on a graph whose edge arrays and node ids are
//! freed — so the peak is one snapshot with its edges and BFS tree, or one dominator pass
//! over it, not both (see docs/cli.md for measured figures).

use std::collections::HashMap;

use super::graph::Graph;
use super::hash::{FxMap, FxSet};
use super::paths::{self, RetainerPath};
use super::rules::BitSet;
use super::summary::{class_totals, ClassStat};
use crate::error::Result;
use crate::snapshot::Control;
use crate::snapshot::U64Column;

/// How node ids are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Decide from the data: ids shared by both files must mostly keep their class.
    Auto,
    Id,
    Aggregate,
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub method: Method,
    /// Why the caller chose `method` (from the capture manifests); used as the reason.
    pub reason: Option<String>,
    /// How many growing classes get retainer paths.
    pub top: usize,
    /// Paths per class.
    pub path_limit: usize,
    /// Least growth (entries or listeners) a detector reports.
    pub min_growth: u64,
}

impl Default for DiffOptions {
    fn default() -> Self {
        Self {
            method: Method::Auto,
            reason: None,
            top: 5,
            path_limit: 3,
            min_growth: 10,
        }
    }
}

/// What a detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Map,
    Set,
    Array,
    Object,
    Listeners,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Map => "map",
            Kind::Set => "set",
            Kind::Array => "array",
            Kind::Object => "object",
            Kind::Listeners => "listeners",
        }
    }
    fn advice(self) -> &'static str {
        match self {
            Kind::Map | Kind::Set => "bound or expire the cache: delete entries when their owner is done, cap its size (an LRU), or key per-object metadata by the object in a WeakMap",
            Kind::Array => "an array that only grows: remove items once they are handled, or cap its length",
            Kind::Object => "an object used as a map that only grows: delete keys when done, use a bounded Map (an LRU), or a WeakMap for per-object metadata",
            Kind::Listeners => "remove the listener when its owner is done (emitter.off / removeListener, once(), or an AbortSignal passed to events.on/addEventListener)",
        }
    }
}

/// One observed collection or listener list.
#[derive(Debug, Clone)]
pub struct Observation {
    pub node: u32,
    /// Its node id where the id match may use it: always for `before`; for `after` only
    /// when the id is one of `before`'s observations' (the only ones a match by id can
    /// pair), `None` otherwise.
    pub id: Option<u64>,
    pub path: u128,
    pub kind: Kind,
    pub event: Option<String>,
    pub count: u64,
}

/// What `diff` keeps of `before`.
pub struct Facts {
    pub nodes: u64,
    pub total_bytes: u64,
    pub classes: Vec<ClassStat>,
    /// `(id, class index into classes, self size)` by id; nodes of size 0 left out.
    pub ids: IdTable,
    pub observations: Vec<Observation>,
}

impl Facts {
    pub fn of(g: &Graph<'_>, ctl: &Control) -> Result<Self> {
        let observations = observe(g, &|v| Some(g.snap.node_id.get(v as usize)), ctl)?;
        Self::with(g, observations, ctl)
    }

    /// With `before`'s observations already made ([`observe`], which needs the edges: a
    /// [`Graph::build_lean`] makes them before it frees them). Needs the node ids.
    pub fn with(g: &Graph<'_>, observations: Vec<Observation>, ctl: &Control) -> Result<Self> {
        let s = g.snap;
        // The id table beside the class totals (both read the graph only).
        let (ids, totals) = super::both(
            || {
                IdTable::build(
                    || {
                        (0..s.node_count() as u32).filter_map(|v| {
                            let size = s.self_size.get(v as usize);
                            (size != 0).then(|| {
                                (
                                    v,
                                    s.node_id.get(v as usize),
                                    g.classes.of.get(v as usize),
                                    size,
                                )
                            })
                        })
                    },
                    g.classes.names.len(),
                )
            },
            || class_totals(g, ctl),
        );
        let totals = totals?;
        ctl.check()?;
        Ok(Self {
            nodes: s.node_count() as u64,
            total_bytes: s.self_size.iter().sum(),
            classes: totals.stats,
            ids,
            observations,
        })
    }
}

pub use super::ids::IdTable;

/// A class's change.
#[derive(Debug, Clone, Default)]
pub struct ClassDelta {
    pub name: String,
    pub type_name: String,
    pub count_delta: i64,
    pub shallow_delta: i64,
    pub retained_delta: i64,
    pub before_count: u64,
    pub after_count: u64,
    /// By id only.
    pub new_count: Option<u64>,
    pub deleted_count: Option<u64>,
    pub allocated_bytes: Option<u64>,
    pub freed_bytes: Option<u64>,
    pub retainers: Option<Vec<RetainerPath>>,
}

#[derive(Debug, Clone)]
pub struct Detector {
    pub kind: Kind,
    pub class_name: String,
    pub event: Option<String>,
    pub path: Option<RetainerPath>,
    pub before: u64,
    pub after: u64,
    pub advice: &'static str,
}

#[derive(Debug, Clone)]
pub struct DiffReport {
    pub method: Method,
    pub method_reason: String,
    pub before_nodes: u64,
    pub after_nodes: u64,
    pub before_bytes: u64,
    pub after_bytes: u64,
    pub classes: Vec<ClassDelta>,
    pub detectors: Vec<Detector>,
}

/// What `diff` learns of `after` from its ids and edges, before its dominators: the id
/// method, the new / deleted tallies, which nodes are new, and `after`'s observations.
/// [`early`] makes it (on a graph whose `idom` / `retained` may still be empty), [`finish`]
/// uses it.
pub struct Early {
    method: Method,
    reason: String,
    /// By id only: per `after` class id, (new count, allocated bytes).
    new_by_class: Vec<(u64, u64)>,
    /// By id only: per `before` class index, (deleted count, freed bytes).
    deleted_by_class: Vec<(u64, u64)>,
    /// By id only: whether each `after` node (ordinal) is new.
    is_new: Option<BitSet>,
    /// `after`'s nodes (ordinal → id) whose id is one of `before`'s observations': the
    /// ids [`early`]'s observations record (`after`'s id column is freed by then).
    obs_ids: FxMap<u32, u64>,
    observations: Vec<Observation>,
}

/// The diff of `before`'s facts against the `after` graph.
pub fn diff(
    before: &Facts,
    g: &Graph<'_>,
    opts: &DiffOptions,
    ctl: &Control,
) -> Result<DiffReport> {
    let e = early(match_ids(before, g, &g.snap.node_id, opts)?, g, ctl)?;
    finish(before, e, g, opts, ctl)
}

/// The part of [`diff`] that reads `before`'s id table and `after`'s node ids and classes
/// (no tree, no dominators): `diff_paths` runs it before `after`'s BFS, then frees
/// `before`'s id table. [`early`] adds the observations.
pub fn match_ids(
    before: &Facts,
    g: &Graph<'_>,
    ids: &U64Column,
    opts: &DiffOptions,
) -> Result<Early> {
    let s = g.snap;
    // One pass over `after`'s nodes of nonzero size in ordinal order, each claiming a
    // `before` entry of its id ([`IdTable`]: no sort, no per-node table of `after`'s).
    // Whether ids are comparable is decided from the data: most ids of `before` are in
    // `after` and nearly all of those keep their class (one process's `HeapObjectsMap`);
    // fork children and separate processes number their heaps afresh, so shared ids then
    // mostly change class.
    let mut m = before.ids.matcher();
    let mut new_by_class = vec![(0u64, 0u64); g.classes.names.len()];
    let mut is_new = BitSet::new(s.node_count());
    let mut same = 0u64;
    // Whether a before class and an after class are the same (type, name), decided once per
    // class rather than by comparing names per matched node: each name pair's first after
    // class id stands for all after ids with that pair.
    let mut first_of: HashMap<(&str, &str), u32> = HashMap::new();
    let canon: Vec<u32> = g
        .classes
        .names
        .iter()
        .enumerate()
        .map(|(c, (t, n))| *first_of.entry((t.as_str(), n.as_str())).or_insert(c as u32))
        .collect();
    let before_canon: Vec<u32> = before
        .classes
        .iter()
        .map(|b| {
            first_of
                .get(&(b.type_name.as_str(), b.name.as_str()))
                .copied()
                .unwrap_or(u32::MAX)
        })
        .collect();
    let wanted: FxSet<u64> = before.observations.iter().filter_map(|o| o.id).collect();
    let mut obs_ids = FxMap::default();
    for v in 0..s.node_count() {
        let id = ids.get(v);
        if !wanted.is_empty() && wanted.contains(&id) {
            obs_ids.insert(v as u32, id);
        }
        let size = s.self_size.get(v);
        if size == 0 {
            continue;
        }
        let c = g.classes.of.get(v);
        match m.take(id) {
            Some(p) => {
                if before_canon[before.ids.class(p) as usize] == canon[c as usize] {
                    same += 1;
                }
            }
            None => {
                is_new.set(v);
                let n = &mut new_by_class[c as usize];
                n.0 += 1;
                n.1 += size;
            }
        }
    }
    let common = m.matched() as u64;
    let (method, reason) = match opts.method {
        Method::Id => (
            Method::Id,
            opts.reason.clone().unwrap_or_else(|| "requested".into()),
        ),
        Method::Aggregate => (
            Method::Aggregate,
            opts.reason.clone().unwrap_or_else(|| "requested".into()),
        ),
        Method::Auto => {
            let total = before.ids.len().max(1) as f64;
            let ok = common as f64 >= 0.5 * total && same as f64 >= 0.99 * common as f64;
            (
                if ok { Method::Id } else { Method::Aggregate },
                format!(
                    "from the data: {common} of before's {} node ids are in after and {same} of those keep their class",
                    before.ids.len()
                ),
            )
        }
    };
    if method != Method::Id {
        return Ok(Early {
            method,
            reason,
            new_by_class: Vec::new(),
            deleted_by_class: Vec::new(),
            is_new: None,
            obs_ids,
            observations: Vec::new(),
        });
    }
    // New (only in after) nodes are counted above; deleted (only in before) ones are the
    // entries nobody claimed.
    let mut deleted_by_class = vec![(0u64, 0u64); before.classes.len()];
    for p in m.unmatched() {
        let d = &mut deleted_by_class[before.ids.class(p) as usize];
        d.0 += 1;
        d.1 += before.ids.size(p);
    }
    Ok(Early {
        method,
        reason,
        new_by_class,
        deleted_by_class,
        is_new: Some(is_new),
        obs_ids,
        observations: Vec::new(),
    })
}

/// [`match_ids`]' answer with `after`'s observations ([`observe`]: the edges and the BFS
/// tree), the last of [`diff`] that needs the edges.
pub fn early(mut matched: Early, g: &Graph<'_>, ctl: &Control) -> Result<Early> {
    let obs_ids = std::mem::take(&mut matched.obs_ids);
    matched.observations = observe(g, &|v| obs_ids.get(&v).copied(), ctl)?;
    Ok(matched)
}

/// The rest of [`diff`]: class deltas, retainer paths and detectors, from `after`'s
/// dominators and BFS tree (no edge array, no node id, no `before` id table).
pub fn finish(
    before: &Facts,
    early: Early,
    g: &Graph<'_>,
    opts: &DiffOptions,
    ctl: &Control,
) -> Result<DiffReport> {
    let s = g.snap;
    let totals = class_totals(g, ctl)?;
    super::mem_mark("diff: class totals");
    let Early {
        method,
        reason,
        new_by_class,
        deleted_by_class,
        is_new: new_nodes,
        observations,
        ..
    } = early;
    // Per class: after's figures minus before's, joined by (type, name).
    let mut rows: HashMap<(String, String), ClassDelta> = HashMap::new();
    for c in &before.classes {
        if c.count == 0 {
            continue;
        }
        let r = rows
            .entry((c.type_name.clone(), c.name.clone()))
            .or_default();
        r.before_count += c.count;
        r.count_delta -= c.count as i64;
        r.shallow_delta -= c.shallow as i64;
        r.retained_delta -= c.retained as i64;
    }
    for c in &totals.stats {
        if c.count == 0 {
            continue;
        }
        let r = rows
            .entry((c.type_name.clone(), c.name.clone()))
            .or_default();
        r.after_count += c.count;
        r.count_delta += c.count as i64;
        r.shallow_delta += c.shallow as i64;
        r.retained_delta += c.retained as i64;
    }
    if method == Method::Id {
        for (c, &(count, bytes)) in new_by_class.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let (t, n) = &g.classes.names[c];
            let r = rows.entry((t.clone(), n.clone())).or_default();
            *r.new_count.get_or_insert(0) += count;
            *r.allocated_bytes.get_or_insert(0) += bytes;
        }
        for (c, &(count, bytes)) in deleted_by_class.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let b = &before.classes[c];
            let r = rows
                .entry((b.type_name.clone(), b.name.clone()))
                .or_default();
            *r.deleted_count.get_or_insert(0) += count;
            *r.freed_bytes.get_or_insert(0) += bytes;
        }
        for r in rows.values_mut() {
            r.new_count.get_or_insert(0);
            r.deleted_count.get_or_insert(0);
            r.allocated_bytes.get_or_insert(0);
            r.freed_bytes.get_or_insert(0);
        }
    }
    let mut classes: Vec<ClassDelta> = rows
        .into_iter()
        .map(|((t, n), mut r)| {
            r.type_name = t;
            r.name = n;
            r
        })
        .filter(|r| {
            r.count_delta != 0
                || r.shallow_delta != 0
                || r.retained_delta != 0
                || r.new_count.unwrap_or(0) != 0
                || r.deleted_count.unwrap_or(0) != 0
        })
        .collect();
    classes.sort_by(|a, b| {
        b.retained_delta
            .cmp(&a.retained_delta)
            .then(b.shallow_delta.cmp(&a.shallow_delta))
            .then(b.count_delta.cmp(&a.count_delta))
            .then_with(|| a.name.cmp(&b.name))
            // As summarize's order: never left to the HashMap's iteration order.
            .then_with(|| a.type_name.cmp(&b.type_name))
    });
    // Retainer paths for the classes that grew most: user-named classes first (a
    // `(string)` or `(array)` grows with any leak), then the rest.
    let mut chosen: Vec<usize> = classes
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            c.count_delta > 0 && !c.name.starts_with('(') && !c.name.starts_with("system /")
        })
        .map(|(i, _)| i)
        .take(opts.top)
        .collect();
    if chosen.len() < opts.top {
        let more: Vec<usize> = classes
            .iter()
            .enumerate()
            .filter(|(i, c)| c.count_delta > 0 && !chosen.contains(i))
            .map(|(i, _)| i)
            .take(opts.top - chosen.len())
            .collect();
        chosen.extend(more);
    }
    if !chosen.is_empty() {
        // Instances per chosen class in one pass.
        let mut want: HashMap<u32, usize> = HashMap::new();
        for &i in &chosen {
            let c = &classes[i];
            if let Some(id) = g
                .classes
                .names
                .iter()
                .position(|(t, n)| t == &c.type_name && n == &c.name)
            {
                want.insert(id as u32, i);
            }
        }
        let mut inst: HashMap<usize, Vec<u32>> = HashMap::new();
        for v in 0..s.node_count() as u32 {
            if s.self_size.get(v as usize) == 0 {
                continue;
            }
            if let Some(&i) = want.get(&g.classes.of.get(v as usize)) {
                if new_nodes.as_ref().is_none_or(|n| n.get(v as usize)) {
                    inst.entry(i).or_default().push(v);
                }
            }
        }
        // One `paths` phase over every chosen class's instances (not one per class, which
        // would send the phase's progress back to 0 for each).
        let mut inst: Vec<(usize, Vec<u32>)> = inst.into_iter().collect();
        inst.sort_unstable_by_key(|(i, _)| *i);
        let whole = inst.iter().map(|(_, l)| l.len() as u64).sum();
        let mut rep = ctl.reporter("paths", whole);
        let mut offset = 0;
        for (i, list) in inst {
            classes[i].retainers = Some(paths::merged_part(
                g,
                &list,
                Some(&totals.top),
                opts.path_limit,
                ctl,
                &mut rep,
                offset,
            )?);
            offset += list.len() as u64;
        }
        rep.done();
    }
    super::mem_mark("diff: classes and paths");
    let detectors = detect(before, g, observations, method, opts, ctl)?;
    super::mem_mark("diff: detectors");
    Ok(DiffReport {
        method,
        method_reason: reason,
        before_nodes: before.nodes,
        after_nodes: s.node_count() as u64,
        before_bytes: before.total_bytes,
        after_bytes: s.self_size.iter().sum(),
        classes,
        detectors,
    })
}

/// Steps at the end of a collection's path that match it across snapshots by aggregate
/// (`… exports (property) → Object → sessions (property) → Map`).
const MATCH_STEPS: usize = 4;

/// Entry counts of the collections and listener lists of a snapshot.
/// `id_of(v)`: the id to record for node `v` (see [`Observation::id`]).
pub fn observe(
    g: &Graph<'_>,
    id_of: &dyn Fn(u32) -> Option<u64>,
    ctl: &Control,
) -> Result<Vec<Observation>> {
    let s = g.snap;
    let k = g.rules.k;
    let str_of = |e: usize| -> &str {
        if k.numbered(s.edge_type[e]) {
            ""
        } else {
            s.strings.get(s.edge_name[e])
        }
    };
    let mut out = Vec::new();
    let mut listener_arrays: Vec<u32> = Vec::new();
    let push =
        |out: &mut Vec<Observation>, v: u32, kind: Kind, event: Option<String>, count: u64| {
            if let Some(path) = paths::suffix_key(g, v, MATCH_STEPS) {
                out.push(Observation {
                    node: v,
                    id: id_of(v),
                    path,
                    kind,
                    event,
                    count,
                });
            }
        };
    for v in 0..s.node_count() as u32 {
        if v & 0xffff == 0 {
            ctl.check()?;
        }
        if s.node_type[v as usize] != k.object {
            continue;
        }
        let name = s.name(v);
        match name {
            "Map" | "Set" => {
                let Some(table) = s
                    .edges(v)
                    .find(|&e| s.edge_type[e] == k.e_internal && str_of(e) == "table")
                    .map(|e| s.edge_to[e])
                else {
                    continue;
                };
                let width = if name == "Map" { 3 } else { 2 };
                let count = table_entries(g, table, width);
                let kind = if name == "Map" { Kind::Map } else { Kind::Set };
                push(&mut out, v, kind, None, count);
            }
            "Array" => {
                let count = s
                    .edges(v)
                    .filter(|&e| s.edge_type[e] == k.e_element)
                    .count() as u64;
                push(&mut out, v, Kind::Array, None, count);
            }
            _ => {}
        }
        if name == "Object" {
            // Its keys: named properties, and elements (integer keys such as ids, which V8
            // keeps apart from the properties).
            let count = s
                .edges(v)
                .filter(|&e| {
                    let t = s.edge_type[e];
                    t == k.e_element || (t == k.e_property && str_of(e) != "__proto__")
                })
                .count() as u64;
            if count >= 8 {
                push(&mut out, v, Kind::Object, None, count);
            }
        }
        // An emitter: `_events` → an object whose properties are a listener or an array
        // of listeners.
        if let Some(events) = s
            .edges(v)
            .find(|&e| s.edge_type[e] == k.e_property && str_of(e) == "_events")
            .map(|e| s.edge_to[e])
        {
            if s.node_type[events as usize] != k.object {
                continue;
            }
            for e in s.edges(events) {
                if s.edge_type[e] != k.e_property || str_of(e) == "__proto__" {
                    continue;
                }
                let to = s.edge_to[e];
                let t = s.node_type[to as usize];
                let count = if t == k.closure {
                    1
                } else if t == k.object && s.name(to) == "Array" {
                    listener_arrays.push(to);
                    s.edges(to)
                        .filter(|&x| s.edge_type[x] == k.e_element)
                        .count() as u64
                } else {
                    continue;
                };
                push(
                    &mut out,
                    v,
                    Kind::Listeners,
                    Some(str_of(e).to_string()),
                    count,
                );
            }
        }
    }
    // A listener array is reported as the emitter's listeners, not as an array too.
    listener_arrays.sort_unstable();
    out.retain(|o| o.kind != Kind::Array || listener_arrays.binary_search(&o.node).is_err());
    Ok(out)
}

/// Entries of an OrderedHashMap/Set: its numbered slots grouped by entry (`width` slots
/// per entry: key, value, chain for a Map; key, chain for a Set). Slots holding small
/// integers are not in the graph; the holes of deleted entries (Oddballs) do not count.
/// Where the entries start is read from the table's size ([`entries_start`]); only when
/// the size does not fit V8's layout is the first slot in the graph taken as an entry's
/// first, which splits or merges entries whose key is a small integer in some entries
/// and an object in others (a Map of `id → name` and `name → id`).
fn table_entries(g: &Graph<'_>, table: u32, width: i64) -> u64 {
    let s = g.snap;
    let k = g.rules.k;
    let mut slots: Vec<i64> = s
        .edges(table)
        .filter_map(|e| {
            let to = s.edge_to[e];
            if s.node_type[to as usize] == k.hidden && s.name(to) == "system / Oddball" {
                return None;
            }
            if k.numbered(s.edge_type[e]) {
                Some(s.edge_name[e] as i64)
            } else {
                let n = s.strings.get(s.edge_name[e]);
                (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| n.parse().unwrap_or(0))
            }
        })
        .collect();
    if slots.is_empty() {
        return 0;
    }
    slots.sort_unstable();
    let base = entries_start(s.self_size.get(table as usize), width)
        .filter(|&start| start <= slots[0])
        .unwrap_or(slots[0]);
    let mut entries = 0u64;
    let mut last = i64::MIN;
    for x in slots {
        let entry = (x - base) / width;
        if entry != last {
            entries += 1;
            last = entry;
        }
    }
    entries
}

/// The index of an OrderedHashMap/Set's first entry slot, from the table's self size: a
/// FixedArray (a map and a length word, then `len` slots of 8 bytes, or 4 under pointer
/// compression) whose slots are 3 header words (elements, deleted, buckets), `buckets`
/// bucket heads, then `2 × buckets` entries of `width` slots — V8's
/// src/objects/ordered-hash-table.h (kHashTableStartIndex = 3, kLoadFactor = 2,
/// kEntrySize 3 for a Map and 2 for a Set; the bucket count a power of two). `None` when
/// the size fits neither slot width.
pub(crate) fn entries_start(size: u64, width: i64) -> Option<i64> {
    let per_bucket = 1 + 2 * width as u64;
    [8u64, 4].into_iter().find_map(|slot| {
        let body = size.checked_sub(2 * slot)?;
        if body % slot != 0 {
            return None;
        }
        let buckets = (body / slot).checked_sub(3)?;
        (buckets % per_bucket == 0 && (buckets / per_bucket).is_power_of_two())
            .then(|| 3 + (buckets / per_bucket) as i64)
    })
}

fn detect(
    before: &Facts,
    g: &Graph<'_>,
    after: Vec<Observation>,
    method: Method,
    opts: &DiffOptions,
    ctl: &Control,
) -> Result<Vec<Detector>> {
    ctl.check()?;
    // Matching key: the node id when ids are comparable, else the merged path; several
    // collections on one path compare by the largest.
    type Key = (u128, Kind, Option<String>);
    // (No key: an `after` collection whose id no `before` observation has.)
    let key = |o: &Observation| -> Option<Key> {
        let k = if method == Method::Id {
            o.id? as u128
        } else {
            o.path
        };
        Some((k, o.kind, o.event.clone()))
    };
    let mut prev: HashMap<Key, u64> = HashMap::new();
    for o in &before.observations {
        let Some(k) = key(o) else { continue };
        let e = prev.entry(k).or_insert(0);
        *e = (*e).max(o.count);
    }
    let mut best: HashMap<Key, &Observation> = HashMap::new();
    for o in &after {
        let Some(k) = key(o) else { continue };
        if !prev.contains_key(&k) {
            continue;
        }
        let e = best.entry(k).or_insert(o);
        if o.count > e.count {
            *e = o;
        }
    }
    let mut found: Vec<(u64, &Observation, u64)> = best
        .into_iter()
        .filter_map(|(k, o)| {
            let b = prev[&k];
            (o.count >= b.saturating_add(opts.min_growth)).then(|| (o.count - b, o, b))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.node.cmp(&b.1.node)));
    found.truncate(20);
    let locs = &g.locations;
    Ok(found
        .into_iter()
        .map(|(_, o, b)| Detector {
            kind: o.kind,
            class_name: g.classes.names[g.classes.of.get(o.node as usize) as usize]
                .1
                .clone(),
            event: o.event.clone(),
            path: paths::describe(g, locs, o.node, true).map(|(steps, text)| RetainerPath {
                class_name: g.classes.names[g.classes.of.get(o.node as usize) as usize]
                    .1
                    .clone(),
                count: 1,
                retained_bytes: g.retained[o.node as usize],
                steps,
                text,
            }),
            before: b,
            after: o.count,
            advice: o.kind.advice(),
        })
        .collect())
}
