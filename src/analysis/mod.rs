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

pub mod column;
pub mod diff;
pub mod dominators;
pub mod graph;
pub mod hash;
pub mod ids;
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

/// `LEAKGUARD_MEM_TRACE=1`: one stderr line per analysis phase boundary with the seconds
/// since the first mark and the process's `VmRSS` and `VmHWM` (peak so far) from
/// /proc/self/status, to see which phase sets the peak and which takes the time. Linux
/// only; a no-op when the variable is unset or the file is unreadable.
pub fn mem_mark(label: &str) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    if !*ON.get_or_init(|| std::env::var_os("LEAKGUARD_MEM_TRACE").is_some_and(|v| v != "0")) {
        return;
    }
    let t = T0
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64();
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let field = |name: &str| -> String {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| format!("{:.1}", kb as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    };
    eprintln!(
        "leakguard mem: {t:>7.2} s  {label:<32} rss {:>7} MiB  hwm {:>7} MiB",
        field("VmRSS:"),
        field("VmHWM:")
    );
}

/// `a` on a helper thread and `b` on this one, at the same time (the machine's second core
/// during a single-threaded phase); both answers, `a`'s first. When no thread can be started
/// (a thread limit, an address-space limit too tight for its stack), `a` runs here after
/// `b`: the same answers, only slower. A panic in `a` is re-raised here.
pub(crate) fn both<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    let slot = std::sync::Mutex::new(Some(a));
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("leakguard-analysis-helper".into())
            .stack_size(256 * 1024)
            .spawn_scoped(scope, || {
                let a = slot.lock().ok().and_then(|mut g| g.take());
                a.map(|a| a())
            });
        let rb = b();
        let ra = match helper {
            Ok(h) => match h.join() {
                Ok(Some(ra)) => Some(ra),
                Ok(None) => None,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => None,
        };
        let ra = match ra {
            Some(ra) => ra,
            // Not started (or it found the slot empty, which cannot happen): run it here.
            None => {
                let a = slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .expect("the helper ran nothing, so the work is still here");
                a()
            }
        };
        (ra, rb)
    })
}

/// Give the allocator's free pages back to the system (glibc's `malloc_trim`; a no-op
/// elsewhere). The analysis frees large arrays between its phases; glibc keeps much of
/// that memory resident (arena heaps are only trimmed from the top, and the dynamic mmap
/// threshold moves arrays of tens of MiB into them), so the next phase's peak would count
/// it again: measured on a 2.9 M-node diff, ~80 MiB still resident after `before`'s graph
/// was dropped. Answers are unaffected; it costs a walk over the free lists.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

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
    mem_mark("summarize: start");
    let snap = load(path, ctl)?;
    mem_mark("summarize: read");
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
///
/// Both files go through [`Graph::build_lean`]: what needs the edges (the BFS tree, the
/// detectors' observations, for `after` the id match too) is computed first, then the
/// edges — and for `after` its node ids and `before`'s id table — are freed before the
/// dominator pass, so the peak is the larger of one snapshot with its edges and one
/// dominator pass, not their sum. Same answers as [`diff::diff`] on [`Graph::build`]s.
pub fn diff_paths(
    before: &Path,
    after: &Path,
    opts: &DiffOptions,
    before_ctl: &Control,
    after_ctl: &Control,
) -> Result<DiffReport> {
    mem_mark("diff: start");
    let snap = load(before, before_ctl)?;
    diff_owned(snap, || load(after, after_ctl), opts, before_ctl, after_ctl)
}

/// [`diff_paths`] on `before` read already (consumed: dropped once reduced to its facts)
/// and `after` read by `load_after`, after that.
pub fn diff_owned(
    mut before: HeapSnapshot,
    load_after: impl FnOnce() -> Result<HeapSnapshot>,
    opts: &DiffOptions,
    before_ctl: &Control,
    after_ctl: &Control,
) -> Result<DiffReport> {
    mem_mark("before: read");
    let mut facts = {
        let (g, observations) = Graph::build_lean(
            &mut before,
            false,
            true,
            before_ctl,
            |_, _| Ok(()),
            |g, ()| diff::observe(g, &|v| Some(g.snap.node_id.get(v as usize)), before_ctl),
        )?;
        diff::Facts::with(&g, observations, before_ctl)?
    };
    drop(before);
    release_free_memory();
    mem_mark("before: facts, graph dropped");
    let mut snap = load_after()?;
    mem_mark("after: read");
    let (g, early) = Graph::build_lean(
        &mut snap,
        true,
        false,
        after_ctl,
        |g, ids| {
            let matched = diff::match_ids(&facts, g, ids, opts);
            // The id match is done: before's ids are not needed any more.
            facts.ids = diff::IdTable::default();
            matched
        },
        |g, matched| diff::early(matched, g, after_ctl),
    )?;
    mem_mark("after: graph");
    let r = diff::finish(&facts, early, &g, opts, after_ctl);
    mem_mark("after: diff");
    r
}

#[cfg(test)]
mod tests;
