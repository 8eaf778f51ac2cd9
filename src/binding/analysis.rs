//! `summarize` / `diff` / `retainers` for JS: each call starts one dedicated
//! `leakguard-analysis` thread (never the libuv pool, which a minutes-long analysis would
//! starve) and returns a promise settled through napi's deferred (a strong threadsafe
//! function: the awaited result keeps the process alive until it arrives). Progress goes
//! through a weak threadsafe function (never keeps the process alive), rate-limited by
//! the core's `Reporter`. An `AnalysisControl` carries the cancel flag an `AbortSignal`
//! sets. Results cross as JSON text shaped here; `lib/analysis.js` parses it.

use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use serde_json::{json, Value};

use super::{invalid, to_napi};
use crate::analysis::{self, diff, DiffOptions, Method, RetainerPath};
use crate::snapshot::Control;

/// `(phase, done, total, snapshot)`: `snapshot` is `'before'`/`'after'` in a diff, `''`
/// otherwise. Weak, not callee-handled.
type Progress = ThreadsafeFunction<
    (String, f64, f64, String),
    (),
    (String, f64, f64, String),
    Status,
    false,
    true,
>;

/// The cancel flag of one analysis.
#[napi]
pub struct AnalysisControl {
    ctl: Control,
}

#[napi]
impl AnalysisControl {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            ctl: Control::new(),
        }
    }

    /// Ask the running analysis to stop; it rejects with `ANALYSIS_ABORTED`.
    #[napi]
    pub fn cancel(&self) {
        self.ctl.cancel();
    }
}

fn with_progress(base: &Control, progress: &Option<Arc<Progress>>, which: &'static str) -> Control {
    let mut ctl = base.clone();
    if let Some(p) = progress {
        let p = p.clone();
        ctl.progress = Some(Arc::new(move |phase: &str, done: u64, total: u64| {
            p.call(
                (
                    phase.to_string(),
                    done as f64,
                    total as f64,
                    which.to_string(),
                ),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        }));
    }
    ctl
}

type Resolver = Box<dyn FnOnce(Env) -> Result<String> + Send>;

fn spawn<'e>(
    env: &'e Env,
    work: impl FnOnce() -> crate::error::Result<String> + Send + 'static,
) -> Result<Object<'e>> {
    let (deferred, promise) = env.create_deferred::<String, Resolver>()?;
    std::thread::Builder::new()
        .name("leakguard-analysis".into())
        .spawn(move || {
            // A panic must still settle the promise (else the caller waits for ever).
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(crate::error::Error::new(
                        crate::error::Code::AnalysisInternal,
                        format!("leakguard's analysis failed (a bug; please report it): {what}"),
                    ))
                });
            match result {
                Ok(text) => deferred.resolve(Box::new(move |_| Ok(text))),
                Err(e) => deferred.reject(to_napi(e)),
            }
        })
        .map_err(|e| invalid(format!("could not start the analysis thread: {e}")))?;
    Ok(promise)
}

#[napi]
pub fn analysis_summarize<'e>(
    env: &'e Env,
    path: String,
    control: &AnalysisControl,
    on_progress: Option<Progress>,
) -> Result<Object<'e>> {
    let ctl = with_progress(&control.ctl, &on_progress.map(Arc::new), "");
    spawn(env, move || {
        let s = analysis::summarize_path(&PathBuf::from(path), &ctl)?;
        Ok(summary_json(&s).to_string())
    })
}

#[napi]
pub fn analysis_retainers<'e>(
    env: &'e Env,
    path: String,
    class_name: String,
    limit: u32,
    control: &AnalysisControl,
    on_progress: Option<Progress>,
) -> Result<Object<'e>> {
    let ctl = with_progress(&control.ctl, &on_progress.map(Arc::new), "");
    spawn(env, move || {
        let p = analysis::retainers_path(&PathBuf::from(path), &class_name, limit as usize, &ctl)?;
        Ok(Value::Array(p.iter().map(path_json).collect()).to_string())
    })
}

#[napi(object)]
pub struct DiffArgs {
    /// `'auto'`, `'id'` or `'aggregate'`.
    pub method: String,
    pub reason: Option<String>,
    pub top: u32,
    pub path_limit: u32,
    pub min_growth: f64,
}

#[napi]
pub fn analysis_diff<'e>(
    env: &'e Env,
    before: String,
    after: String,
    args: DiffArgs,
    control: &AnalysisControl,
    on_progress: Option<Progress>,
) -> Result<Object<'e>> {
    let method = match args.method.as_str() {
        "auto" => Method::Auto,
        "id" => Method::Id,
        "aggregate" => Method::Aggregate,
        other => return Err(invalid(format!("unknown diff method {other:?}"))),
    };
    let opts = DiffOptions {
        method,
        reason: args.reason,
        top: args.top as usize,
        path_limit: args.path_limit as usize,
        min_growth: args.min_growth as u64,
    };
    let progress = on_progress.map(Arc::new);
    let bctl = with_progress(&control.ctl, &progress, "before");
    let actl = with_progress(&control.ctl, &progress, "after");
    spawn(env, move || {
        let r = analysis::diff_paths(
            &PathBuf::from(before),
            &PathBuf::from(after),
            &opts,
            &bctl,
            &actl,
        )?;
        Ok(diff_json(&r).to_string())
    })
}

fn summary_json(s: &analysis::Summary) -> Value {
    json!({
        "nodes": s.nodes,
        "edges": s.edges,
        "totalBytes": s.total_bytes,
        "classes": s.classes.iter().map(|c| json!({
            "name": c.name, "type": c.type_name, "count": c.count,
            "shallowBytes": c.shallow, "retainedBytes": c.retained,
        })).collect::<Vec<_>>(),
    })
}

fn path_json(p: &RetainerPath) -> Value {
    json!({
        "className": p.class_name,
        "count": p.count,
        "retainedBytes": p.retained_bytes,
        "steps": p.steps.iter().map(|s| {
            let mut o = json!({
                "node": s.node, "type": s.type_name, "edge": s.edge, "edgeType": s.edge_type,
            });
            if !s.name.is_empty() {
                o["name"] = json!(s.name);
            }
            if let Some(l) = &s.location {
                o["location"] = json!(l);
            }
            o
        }).collect::<Vec<_>>(),
        "text": p.text,
    })
}

fn diff_json(r: &diff::DiffReport) -> Value {
    let by_id = r.method == Method::Id;
    let mut out = json!({
        "method": if by_id { "id" } else { "aggregate" },
        "methodReason": r.method_reason,
        "before": { "nodes": r.before_nodes, "totalBytes": r.before_bytes },
        "after": { "nodes": r.after_nodes, "totalBytes": r.after_bytes },
        "classes": r.classes.iter().map(|c| {
            let mut o = json!({
                "name": c.name, "type": c.type_name, "countDelta": c.count_delta,
                "shallowDelta": c.shallow_delta, "retainedDelta": c.retained_delta,
                "beforeCount": c.before_count, "afterCount": c.after_count,
            });
            if by_id {
                o["newCount"] = json!(c.new_count.unwrap_or(0));
                o["deletedCount"] = json!(c.deleted_count.unwrap_or(0));
                o["allocatedBytes"] = json!(c.allocated_bytes.unwrap_or(0));
                o["freedBytes"] = json!(c.freed_bytes.unwrap_or(0));
            }
            if let Some(p) = &c.retainers {
                o["retainers"] = Value::Array(p.iter().map(path_json).collect());
            }
            o
        }).collect::<Vec<_>>(),
        "detectors": r.detectors.iter().map(|d| {
            let mut o = json!({
                "kind": d.kind.as_str(), "className": d.class_name,
                "path": d.path.as_ref().map(path_json),
                "before": d.before, "after": d.after, "advice": d.advice,
            });
            if let Some(e) = &d.event {
                o["event"] = json!(e);
            }
            o
        }).collect::<Vec<_>>(),
    });
    if by_id {
        let sum =
            |f: fn(&diff::ClassDelta) -> Option<u64>| r.classes.iter().filter_map(f).sum::<u64>();
        out["newCount"] = json!(sum(|c| c.new_count));
        out["deletedCount"] = json!(sum(|c| c.deleted_count));
        out["allocatedBytes"] = json!(sum(|c| c.allocated_bytes));
        out["freedBytes"] = json!(sum(|c| c.freed_bytes));
    }
    out
}

/// Per-node answers for the tests that compare them with DevTools' worker and memlab
/// node by node (not public API; runs on the calling thread): dominator ordinals,
/// retained sizes, distances, node ids.
#[napi(object)]
pub struct NodeArrays {
    pub dominators: Uint32Array,
    pub retained: Float64Array,
    pub distances: Int32Array,
    pub ids: Float64Array,
}

#[napi]
pub fn analysis_node_arrays(path: String) -> Result<NodeArrays> {
    let ctl = Control::new();
    let snap = analysis::load(&PathBuf::from(path), &ctl).map_err(to_napi)?;
    let g = analysis::Graph::build(&snap, &ctl).map_err(to_napi)?;
    Ok(NodeArrays {
        dominators: Uint32Array::new(g.idom.clone()),
        retained: Float64Array::new(g.retained.iter().map(|&r| r as f64).collect()),
        distances: Int32Array::new(g.distance.clone()),
        ids: Float64Array::new(snap.node_id.iter().map(|i| i as f64).collect()),
    })
}
