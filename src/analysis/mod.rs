//! Heap snapshot analysis: DevTools' Summary, Comparison and Retainers views in compact
//! arrays — dominators (Lengauer–Tarjan), retained sizes, distances, class tables, merged
//! retainer paths, diffs and growth detectors. Plain Rust, no napi.
//!
//! Threads: everything here runs on the thread that calls it — in leakguard a dedicated
//! `leakguard-analysis` thread started by `binding::analysis` (never the JS thread nor the
//! libuv pool). Long loops check the [`Control`]'s cancel flag every ~64 K steps and report
//! progress by phase (`read`, `dominators`, `distances` — not in `summarize`, which needs no
//! distances —, `classes`, `paths`).
//!
//! Invariants: numbers follow DevTools' worker (the `heap-snapshot-toolkit` build the
//! node tests run) edge for edge — see [`rules`] — with V8's own self sizes (DevTools'
//! newer display step that moves arrays' sizes into their owner is not applied; memlab
//! does not apply it either). Memory per snapshot: see docs/analysis.md.

pub mod diff;
pub mod dominators;
pub mod graph;
pub mod paths;
pub mod rules;
pub mod summary;

use std::path::Path;

pub use diff::{DiffOptions, DiffReport, Method};
pub use graph::Graph;
pub use paths::RetainerPath;
pub use summary::Summary;

use crate::error::{Code, Error, Result};
use crate::snapshot::{reader, Control, HeapSnapshot};

/// Read a file, with `ANALYSIS_NOT_FOUND` for a missing one.
pub fn load(path: &Path, ctl: &Control) -> Result<HeapSnapshot> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(
                Code::AnalysisNotFound,
                format!("no heap snapshot at {}", path.display()),
            ))
        }
        Ok(m) if m.is_dir() => {
            return Err(Error::new(
                Code::AnalysisReadFailed,
                format!("{} is a directory, not a heap snapshot", path.display()),
            ))
        }
        _ => {}
    }
    let snap = reader::read_path(path, ctl)?;
    if snap.node_count() == 0 {
        return Err(Error::new(
            Code::AnalysisInvalidSnapshot,
            format!(
                "{} has no nodes (a heap snapshot always has its root)",
                path.display()
            ),
        ));
    }
    Ok(snap)
}

/// `summarize(path)`.
pub fn summarize_path(path: &Path, ctl: &Control) -> Result<Summary> {
    let snap = load(path, ctl)?;
    // summarize reports no distances and no paths: the BFS is skipped, and the edges are
    // freed as soon as the dominators no longer need them.
    summary::summarize_owned(snap, ctl)
}

/// `retainers(path, { className, limit })`.
pub fn retainers_path(
    path: &Path,
    class_name: &str,
    limit: usize,
    ctl: &Control,
) -> Result<Vec<RetainerPath>> {
    let snap = load(path, ctl)?;
    let g = Graph::build(&snap, ctl)?;
    retainers(&g, class_name, limit, ctl)
}

/// Merged retainer paths of every instance of `class_name`.
pub fn retainers(
    g: &Graph<'_>,
    class_name: &str,
    limit: usize,
    ctl: &Control,
) -> Result<Vec<RetainerPath>> {
    let inst = paths::instances_of(g, class_name);
    if inst.is_empty() {
        return Ok(Vec::new());
    }
    let totals = summary::class_totals(g, ctl)?;
    paths::merged(g, &inst, Some(&totals.top), limit, ctl)
}

/// `diff(before, after)`: `before` is reduced to its facts and dropped before `after` is
/// read. `before_ctl` / `after_ctl` report each file's phases.
pub fn diff_paths(
    before: &Path,
    after: &Path,
    opts: &DiffOptions,
    before_ctl: &Control,
    after_ctl: &Control,
) -> Result<DiffReport> {
    let facts = {
        let snap = load(before, before_ctl)?;
        let g = Graph::build(&snap, before_ctl)?;
        diff::Facts::of(&g, before_ctl)?
    };
    let snap = load(after, after_ctl)?;
    let g = Graph::build(&snap, after_ctl)?;
    diff::diff(&facts, &g, opts, after_ctl)
}

#[cfg(test)]
mod tests;
