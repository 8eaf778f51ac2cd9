//! Capture jobs for JS: `startCapture(options)` → `CaptureJob` (write path, close, abort,
//! `finish` as an `AsyncTask` on a libuv worker), and the headroom readings.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use std::sync::{Arc, Mutex};

use super::{invalid, to_napi};
use crate::capture::{headroom, Config, ForkStep, Job};
use crate::error::{Code, Error};
use crate::fork;

#[napi(object)]
pub struct StartOptions {
    pub dir: String,
    pub level: u32,
    pub max_snapshots: Option<f64>,
    pub max_bytes: Option<f64>,
}

/// Methods take `&self` (state behind a mutex): a method taking `&mut self` keeps the
/// object mutably borrowed while an `AsyncTask` it returned is pending, and an `abort()`
/// from an AbortSignal listener then fails with "cannot be borrowed mutably".
#[napi]
pub struct CaptureJob {
    job: Mutex<Option<Job>>,
    progress: Arc<crate::capture::writer::Progress>,
    write_path: String,
    name: String,
    prepared: Arc<Mutex<Option<fork::Prepared>>>,
}

impl CaptureJob {
    fn with<T>(&self, f: impl FnOnce(&mut Job) -> Result<T>) -> Result<T> {
        let mut g = self
            .job
            .lock()
            .map_err(|_| invalid("capture state poisoned"))?;
        let job = g
            .as_mut()
            .ok_or_else(|| invalid("the capture already finished"))?;
        f(job)
    }
}

/// Whether a capture is running in this process (any thread).
#[napi]
pub fn capture_in_flight() -> bool {
    crate::capture::in_flight()
}

#[napi]
pub fn start_capture(opts: StartOptions) -> Result<CaptureJob> {
    fork::exit_if_fork_child();
    if opts.level > 9 {
        return Err(invalid("level must be an integer from 0 to 9"));
    }
    let cfg = Config {
        dir: opts.dir.into(),
        level: opts.level,
        max_snapshots: opts.max_snapshots.map(|v| v as u64),
        max_bytes: opts.max_bytes.map(|v| v as u64),
    };
    let job = Job::start(cfg).map_err(to_napi)?;
    Ok(CaptureJob {
        progress: job.progress(),
        write_path: job.write_path().to_string(),
        name: job.base_name().to_string(),
        job: Mutex::new(Some(job)),
        prepared: Default::default(),
    })
}

#[napi]
impl CaptureJob {
    /// The path to give `v8.writeHeapSnapshot`.
    #[napi(getter)]
    pub fn write_path(&self) -> String {
        self.write_path.clone()
    }

    #[napi(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// True once `finish` would not wait: the pump is done and any fork child is gone.
    #[napi(getter)]
    pub fn settled(&self) -> bool {
        self.job
            .lock()
            .map(|g| g.as_ref().is_none_or(|j| j.settled()))
            .unwrap_or(true)
    }

    /// Raw bytes the pump has read so far.
    #[napi(getter)]
    pub fn raw_bytes(&self) -> f64 {
        self.progress.raw_bytes() as f64
    }

    #[napi]
    pub fn close_write_end(&self) -> Result<()> {
        self.with(|j| {
            j.close_write_end();
            Ok(())
        })
    }

    /// Lock-free: safe from any listener at any time.
    #[napi]
    pub fn abort(&self) {
        self.progress.abort();
    }

    /// Fork mode, step 1: read /proc/self/smaps on a libuv worker (slow at big heaps).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn prepare_fork(&self) -> AsyncTask<PrepareFork> {
        AsyncTask::new(PrepareFork {
            slot: self.prepared.clone(),
        })
    }

    /// Fork mode, step 2: one bounded attempt on the JS thread. `memory_budget`: the
    /// child's budget in bytes (`RLIMIT_AS` = its address space at the fork + this).
    #[napi]
    pub fn fork_attempt(
        &self,
        budget_ms: f64,
        timeout_ms: f64,
        memory_budget: Option<f64>,
    ) -> Result<ForkAttempt> {
        fork::exit_if_fork_child();
        let prepared = self.prepared.lock().ok().and_then(|mut g| g.take());
        let budget = std::time::Duration::from_micros((budget_ms.max(0.0) * 1000.0) as u64);
        let step = self.with(|job| {
            if let Some(p) = prepared {
                job.set_prepared(p);
            }
            job.fork_attempt(
                budget,
                timeout_ms.max(1.0) as u64,
                memory_budget.filter(|b| *b > 0.0).map(|b| b as u64),
            )
            .map_err(to_napi)
        })?;
        Ok(match step {
            ForkStep::Busy(reason) => ForkAttempt {
                role: "busy".into(),
                reason: Some(reason),
                pid: None,
            },
            ForkStep::Parent(pid) => ForkAttempt {
                role: "parent".into(),
                reason: None,
                pid: Some(pid),
            },
            ForkStep::Child => ForkAttempt {
                role: "child".into(),
                reason: None,
                pid: None,
            },
        })
    }

    /// Wait for the pump and commit, off the JS thread. Resolves to the manifest as JSON.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn finish(&self, meta_json: String) -> Result<AsyncTask<Finish>> {
        fork::exit_if_fork_child();
        let meta = match serde_json::from_str(&meta_json) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => return Err(invalid("finish() takes a JSON object")),
        };
        let job = self
            .job
            .lock()
            .map_err(|_| invalid("capture state poisoned"))?
            .take()
            .ok_or_else(|| invalid("finish() was already called"))?;
        Ok(AsyncTask::new(Finish {
            job: Some(job),
            meta: Some(meta),
        }))
    }
}

#[napi(object)]
pub struct ForkAttempt {
    /// `'busy'` (try again later), `'parent'` (the child runs), or `'child'`.
    pub role: String,
    pub reason: Option<String>,
    pub pid: Option<i32>,
}

pub struct PrepareFork {
    slot: Arc<Mutex<Option<fork::Prepared>>>,
}

impl Task for PrepareFork {
    type Output = f64;
    type JsValue = f64;

    fn compute(&mut self) -> Result<f64> {
        let p = fork::prepare().map_err(|e| {
            to_napi(Error::io(
                Code::CaptureForkFailed,
                "reading /proc/self/smaps",
                &e,
            ))
        })?;
        let ms = p.smaps_ms;
        *self.slot.lock().map_err(|_| invalid("poisoned"))? = Some(p);
        Ok(ms)
    }

    fn resolve(&mut self, _env: Env, ms: f64) -> Result<f64> {
        Ok(ms)
    }
}

/// Why fork capture cannot run here, or null when it can.
#[napi]
pub fn fork_unsupported_reason() -> Option<String> {
    fork::support().err()
}

/// In a fork child: end now (no exit handlers, no destructors).
#[napi]
pub fn child_exit(code: i32) {
    fork::child_exit(code)
}

pub struct Finish {
    job: Option<Job>,
    meta: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Task for Finish {
    type Output = String;
    type JsValue = String;

    fn compute(&mut self) -> Result<String> {
        let job = self.job.take().expect("compute runs once");
        let value = job
            .finish(self.meta.take().unwrap_or_default())
            .map_err(to_napi)?;
        Ok(value.to_string())
    }

    fn resolve(&mut self, _env: Env, output: String) -> Result<String> {
        Ok(output)
    }
}

#[napi(object)]
pub struct Available {
    /// The tightest figure, bytes (None when nothing could be read).
    pub bytes: Option<f64>,
    pub source: String,
    pub mem_available: Option<f64>,
    pub cgroup_free: Option<f64>,
    pub cgroup_limit: Option<f64>,
    /// cgroup v2 `memory.oom.group` is set: an OOM kill takes the whole group.
    pub oom_group: Option<bool>,
}

/// Memory available now, combining the kernel's figures with `process.availableMemory()`.
#[napi]
pub fn memory_available(node_available: Option<f64>) -> Available {
    let mut a = headroom::read();
    a.node_available = node_available.filter(|v| *v > 0.0).map(|v| v as u64);
    let f = |v: Option<u64>| v.map(|x| x as f64);
    Available {
        bytes: f(a.bytes()),
        source: a.source().to_string(),
        mem_available: f(a.mem_available),
        cgroup_free: f(a.cgroup_free),
        cgroup_limit: f(a.cgroup_limit),
        oom_group: a.oom_group,
    }
}

/// What a capture needs, bytes: `{ inline, fork, disk }` for the given heap figures.
#[napi(object)]
pub struct Needs {
    pub inline: f64,
    pub fork: f64,
    pub disk: f64,
}

#[napi]
pub fn capture_needs(heap_used: f64, heap_total: f64, level: Option<u32>) -> Needs {
    let (u, t) = (heap_used.max(0.0) as u64, heap_total.max(0.0) as u64);
    Needs {
        inline: headroom::need_inline(u) as f64,
        fork: headroom::need_fork(u, t) as f64,
        disk: headroom::need_disk(u, level.unwrap_or(crate::capture::DEFAULT_LEVEL)) as f64,
    }
}

/// Free bytes for unprivileged users on the filesystem holding `dir` (None if unknown).
#[napi]
pub fn disk_free(dir: String) -> Option<f64> {
    headroom::disk_free(std::path::Path::new(&dir)).map(|v| v as f64)
}

/// The fork child's memory budget (bytes) and its parts.
#[napi(object)]
pub struct ForkBudget {
    pub bytes: f64,
    pub available: f64,
    pub cow_reserve: f64,
    pub parent_reserve: f64,
    pub margin: f64,
    /// `memoryBudget`, when it lowered the budget.
    pub requested: Option<f64>,
    /// What an ordinary heap's snapshot needs (8× the regular spaces' use, 2× the
    /// large-object spaces', + 32 MiB): a capture is attempted when `bytes` covers it.
    pub ordinary_need: f64,
}

/// The budget from the available figure, the process's RSS and an optional request.
#[napi]
pub fn fork_budget(
    available: f64,
    rss: f64,
    heap_used: f64,
    large_object_used: f64,
    requested: Option<f64>,
) -> ForkBudget {
    let u = |v: f64| v.max(0.0) as u64;
    let b = headroom::fork_budget(u(available), u(rss), requested.filter(|r| *r > 0.0).map(u));
    ForkBudget {
        bytes: b.bytes as f64,
        available: b.available as f64,
        cow_reserve: b.cow_reserve as f64,
        parent_reserve: b.parent_reserve as f64,
        margin: b.margin as f64,
        requested: b.requested.map(|r| r as f64),
        ordinary_need: headroom::need_ordinary(u(heap_used), u(large_object_used)) as f64,
    }
}
