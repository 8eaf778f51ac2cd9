//! The class table of one snapshot (DevTools' Summary view): per class the instance count,
//! their self sizes and the retained size of the instances that no other instance of the
//! same class dominates. Runs on the analysis thread.
//!
//! As DevTools does, nodes whose self size is 0 are not counted in a class (V8 gives size
//! 0 to the synthetic roots and to a few placeholders); `nodes`, `edges` and `total_bytes`
//! count everything.

use super::dominators::{dominators, retained_sizes, Dominators};
use super::graph::{detached_natives, essential_bits, Classes, Graph, OwnedFlow};
use super::rules::{BitSet, Rules};
use crate::error::Result;
use crate::snapshot::{Control, HeapSnapshot, U64Column};

/// One class's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassStat {
    pub name: String,
    pub type_name: String,
    pub count: u64,
    pub shallow: u64,
    pub retained: u64,
}

/// `summarize`'s answer.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub nodes: u64,
    pub edges: u64,
    pub total_bytes: u64,
    /// Largest retained first (then shallow, then name).
    pub classes: Vec<ClassStat>,
}

/// Per class id (`Graph::classes`) figures, plus which nodes count towards their class's
/// retained size (the "top" instances).
pub struct ClassTotals {
    pub stats: Vec<ClassStat>,
    pub top: BitSet,
}

/// Counts, shallow and retained sizes per class.
pub fn class_totals(g: &Graph<'_>, ctl: &Control) -> Result<ClassTotals> {
    totals_of(&g.snap.self_size, &g.classes, &g.idom, &g.retained, ctl)
}

/// [`class_totals`] from the arrays it reads (self sizes, classes, dominators, retained
/// sizes, all by ordinal).
fn totals_of(
    self_size: &U64Column,
    classes: &Classes,
    idom: &[u32],
    retained: &[u64],
    ctl: &Control,
) -> Result<ClassTotals> {
    let n = self_size.len();
    let mut stats: Vec<ClassStat> = classes
        .names
        .iter()
        .map(|(t, c)| ClassStat {
            name: c.clone(),
            type_name: t.clone(),
            ..Default::default()
        })
        .collect();
    for v in 0..n {
        let size = self_size.get(v);
        if size == 0 {
            continue;
        }
        let c = &mut stats[classes.of.get(v) as usize];
        c.count += 1;
        c.shallow += size;
    }
    // The dominator tree's children (CSR), then a DFS that counts a node's retained size
    // only when no ancestor in the tree has its class (DevTools'
    // `calculateClassesRetainedSize`: an ancestor marks its class only if it counted and
    // dominates something).
    let mut first = vec![0u32; n + 1];
    for v in 1..n {
        first[idom[v] as usize + 1] += 1;
    }
    for i in 0..n {
        first[i + 1] += first[i];
    }
    let mut children = vec![0u32; n.saturating_sub(1)];
    let mut fill = first.clone();
    for (v, &p) in idom.iter().enumerate().take(n).skip(1) {
        let p = p as usize;
        children[fill[p] as usize] = v as u32;
        fill[p] += 1;
    }
    drop(fill);
    ctl.check()?;
    let mut top = BitSet::new(n);
    let mut seen = vec![false; stats.len()];
    // (node, entered): on entry count and mark, push the exit, push the children.
    let mut stack: Vec<(u32, bool)> = Vec::new();
    if n > 0 {
        stack.push((0, true));
    }
    let mut visited = 0usize;
    while let Some((v, enter)) = stack.pop() {
        let c = classes.of.get(v as usize) as usize;
        if !enter {
            seen[c] = false;
            continue;
        }
        visited += 1;
        if visited & 0xfffff == 0 {
            ctl.check()?;
        }
        let (a, b) = (first[v as usize] as usize, first[v as usize + 1] as usize);
        if !seen[c] && self_size.get(v as usize) != 0 {
            stats[c].retained += retained[v as usize];
            top.set(v as usize);
            if a != b {
                seen[c] = true;
                stack.push((v, false));
            }
        }
        for &w in &children[a..b] {
            stack.push((w, true));
        }
    }
    Ok(ClassTotals { stats, top })
}

/// `summarize`'s answer from a built graph.
pub fn summarize(g: &Graph<'_>, ctl: &Control) -> Result<Summary> {
    let s = g.snap;
    let totals = class_totals(g, ctl)?;
    let mut classes: Vec<ClassStat> = totals.stats.into_iter().filter(|c| c.count > 0).collect();
    sort_classes(&mut classes);
    Ok(Summary {
        nodes: s.node_count() as u64,
        edges: s.edge_count() as u64,
        total_bytes: s.self_size.iter().sum(),
        classes,
    })
}

/// `summarize`'s answer from an owned snapshot, in the least memory; the same answer as
/// [`summarize`] of [`Graph::build_without_paths`]. While the edges are there, DevTools'
/// edge rules are decided into one bit per edge and the detached natives found; then what
/// summarize no longer needs (edge types and names, node ids, detachedness, locations) is
/// freed before the dominator pass, and the edge ranges and targets as soon as its DFS
/// ends, so the pass's peak (its semidominator loop) holds no edge array but its
/// predecessor lists. Phases `dominators`, `classes`.
pub fn summarize_owned(mut snap: HeapSnapshot, ctl: &Control) -> Result<Summary> {
    let n = snap.node_count();
    let edges = snap.edge_count() as u64;
    let total_bytes = snap.self_size.iter().sum();
    let mut rep = ctl.reporter("dominators", n as u64);
    rep.tick(0);
    let (bits, detached) = {
        let rules = Rules::new(&snap, &snap.node_id);
        (essential_bits(&rules, ctl)?, detached_natives(&snap))
    };
    let flow = OwnedFlow::take(&mut snap, bits, false);
    // The class table (nodes and names only) on the second core during the dominator pass.
    let (class_table, dom) = super::both(
        || {
            let mut rep = ctl.reporter("classes", n as u64);
            rep.tick(0);
            let classes = Classes::build_with(&snap, detached, ctl);
            rep.done();
            classes
        },
        || dominators(flow, 0, ctl),
    );
    let dom = dom?;
    let retained = retained_sizes(&dom, &snap.self_size);
    let Dominators { idom, order } = dom;
    drop(order);
    rep.done();
    let class_table = class_table?;
    let totals = totals_of(&snap.self_size, &class_table, &idom, &retained, ctl)?;
    let mut classes: Vec<ClassStat> = totals.stats.into_iter().filter(|c| c.count > 0).collect();
    sort_classes(&mut classes);
    Ok(Summary {
        nodes: n as u64,
        edges,
        total_bytes,
        classes,
    })
}

pub fn sort_classes(classes: &mut [ClassStat]) {
    classes.sort_by(|a, b| {
        b.retained
            .cmp(&a.retained)
            .then(b.shallow.cmp(&a.shallow))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.type_name.cmp(&b.type_name))
    });
}
