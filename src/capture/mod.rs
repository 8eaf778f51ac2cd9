//! Heap capture: everything after V8 hands over the serialized snapshot.
//!
//! A [`Job`] owns a transport (a pipe V8 writes into), a private temporary file and the
//! `leakguard-capture` thread that gzips the one into the other. The JS thread only calls
//! `v8.writeHeapSnapshot(job.write_path())` (inline), or a fork child does (fork mode).
//! [`Job::finish`] — on a libuv worker, never the JS thread — waits for the pump, writes
//! the manifest, renames both into place, fsyncs the directory and applies retention.
//!
//! Invariants:
//! - one job per process at a time (`CAPTURE_IN_PROGRESS`), released when the job ends;
//! - the final names appear only by `rename` of complete, fsynced files: the manifest
//!   first, then the snapshot (a failed snapshot rename removes the manifest again), so a
//!   reader never sees a partial `.heapsnapshot.gz`;
//! - every failure path removes the temporary file; a dropped, unfinished job aborts;
//! - nothing here blocks on the JS thread except creating the job (mkdir, open, pipe).

pub mod files;
pub mod headroom;
pub mod pipe;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};
use crate::fork::{self, maps::Range, watch::ChildReport};
use files::{MANIFEST_EXT, SNAPSHOT_EXT, TMP_EXT};
use writer::{Fault, Progress, PumpStats};

static IN_FLIGHT: AtomicBool = AtomicBool::new(false);
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Default gzip level: 1. Measured here on real snapshots, level 1 keeps pace with V8's
/// serializer (the `.gz` is complete when the stall ends) and compresses ~4.6–7.4×;
/// level 6 is only 10–20 % smaller, runs at ~1/3 of the speed and lags seconds behind at
/// large heaps (TOOLCHAIN.md; docs/how-it-works.md "Choosing the gzip level").
pub const DEFAULT_LEVEL: u32 = 1;

/// A fork child asleep without CPU for this long, not blocked on the pipe, is hung
/// (the issue asks for detection "within about a second").
pub const HANG_MS: u64 = 1000;

/// [`HANG_MS`], or `LEAKGUARD_TEST_HANG_MS` (diagnosis only: lets a hung child live long
/// enough to be looked at with gdb and /proc; never set in production).
pub fn hang_ms() -> u64 {
    std::env::var("LEAKGUARD_TEST_HANG_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(HANG_MS)
}

/// What a capture writes, and where.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub level: u32,
    pub max_snapshots: Option<u64>,
    pub max_bytes: Option<u64>,
}

/// Held while a job exists; releases the process-wide single-flight flag on drop.
struct Flight;

impl Flight {
    fn acquire() -> Result<Self> {
        IN_FLIGHT
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| Flight)
            .map_err(|_| {
                Error::new(
                    Code::CaptureInProgress,
                    "a heap capture is already running in this process; wait for it to finish",
                )
            })
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        IN_FLIGHT.store(false, Ordering::SeqCst);
    }
}

/// Whether a capture is running now.
pub fn in_flight() -> bool {
    IN_FLIGHT.load(Ordering::SeqCst)
}

type PumpResult = Result<(PumpStats, f64)>;

pub struct Job {
    cfg: Config,
    base: String,
    tmp: PathBuf,
    transport: pipe::Transport,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<PumpResult>>,
    started: Instant,
    write_closed_ms: Option<f64>,
    done: bool,
    fault: Option<Fault>,
    /// Descriptors a fork child must close (the pipe's read end, the capture file).
    child_close: Vec<i32>,
    /// Fork mode: what the worker-thread preparation read.
    prepared: Option<fork::Prepared>,
    /// Ranges opened with MADV_DOFORK by attempts that did not fork (restored at the end).
    opened: Vec<Range>,
    attempts: u32,
    times: fork::AttemptTimes,
    child: Option<(i32, JoinHandle<ChildReport>)>,
    _flight: Flight,
}

/// What one fork attempt gave.
pub enum ForkStep {
    Busy(String),
    Parent(i32),
    Child,
}

impl Job {
    /// Create the directory, the private temporary file and the pipe, and start the pump.
    pub fn start(cfg: Config) -> Result<Job> {
        let flight = Flight::acquire()?;
        let started = Instant::now();
        files::ensure_dir(&cfg.dir)?;
        // A name nobody uses: the same pid and second can recur (pid 1 in a container
        // restarted at once, two containers sharing a volume), so skip taken names.
        let (base, tmp, file) = {
            let mut tries = 0;
            loop {
                let seq = SEQ.fetch_add(1, Ordering::SeqCst) + 1;
                let base = files::base_name(SystemTime::now(), std::process::id(), seq);
                let tmp = cfg.dir.join(format!("{base}{TMP_EXT}"));
                let taken = cfg.dir.join(format!("{base}{SNAPSHOT_EXT}")).exists()
                    || cfg.dir.join(format!("{base}{MANIFEST_EXT}")).exists();
                match files::create_private(&tmp) {
                    Ok(f) if !taken => break (base, tmp, f),
                    Ok(_) => {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    Err(e) if tries >= 100 || tmp.symlink_metadata().is_err() => return Err(e),
                    Err(_) => {}
                }
                tries += 1;
            }
        };
        // Held for the job's life: cleanup in any process sharing the directory leaves a
        // locked temporary file alone (see files::remove_stale).
        #[cfg(unix)]
        files::lock_exclusive(&file);
        let mut transport = match pipe::Transport::new(pipe::Kind::native()) {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let reader = transport
            .take_reader()
            .expect("a new transport has its reader");
        #[cfg(unix)]
        let child_close = {
            use std::os::fd::AsRawFd;
            vec![reader.as_raw_fd(), file.as_raw_fd()]
        };
        #[cfg(not(unix))]
        let child_close = Vec::new();
        let progress = Arc::new(Progress::new());
        let fault = Fault::from_env();
        let (p, level, tmp2) = (progress.clone(), cfg.level, tmp.clone());
        let spawned = std::thread::Builder::new()
            .name("leakguard-capture".into())
            .spawn(move || {
                // Set pump_done however the thread ends (a panic included).
                struct Done(Arc<Progress>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.set_pump_done();
                    }
                }
                let _done = Done(p.clone());
                let res = writer::pump_to_file(reader, file, level, &p, fault);
                if res.is_err() {
                    let _ = std::fs::remove_file(&tmp2);
                }
                res.map(|s| (s, started.elapsed().as_secs_f64() * 1e3))
            });
        let thread = match spawned {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(
                    Code::CaptureInternal,
                    "starting the capture thread",
                    &e,
                ));
            }
        };
        Ok(Job {
            cfg,
            base,
            tmp,
            transport,
            progress,
            thread: Some(thread),
            started,
            write_closed_ms: None,
            done: false,
            fault,
            child_close,
            prepared: None,
            opened: Vec::new(),
            attempts: 0,
            times: fork::AttemptTimes::default(),
            child: None,
            _flight: flight,
        })
    }

    /// The path for `v8.writeHeapSnapshot`.
    pub fn write_path(&self) -> &str {
        self.transport.path()
    }

    #[cfg(unix)]
    pub fn write_fd(&self) -> Option<i32> {
        self.transport.write_fd()
    }

    pub fn base_name(&self) -> &str {
        &self.base
    }

    pub fn final_path(&self) -> PathBuf {
        self.cfg.dir.join(format!("{}{SNAPSHOT_EXT}", self.base))
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.cfg.dir.join(format!("{}{MANIFEST_EXT}", self.base))
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Drop our write end: the pump sees EOF once V8 (or the fork child) closed its own.
    pub fn close_write_end(&mut self) {
        if self.write_closed_ms.is_none() {
            self.write_closed_ms = Some(self.started.elapsed().as_secs_f64() * 1e3);
        }
        self.transport.close_write_end();
    }

    /// Ask the pump to stop; `finish` then fails with `CAPTURE_ABORTED`.
    pub fn abort(&self) {
        self.progress.abort();
    }

    /// Fork mode, step 1 (blocking, off the JS thread): read which mappings V8 keeps from
    /// fork children. Returns how long the read took (ms).
    pub fn set_prepared(&mut self, p: fork::Prepared) {
        self.prepared = Some(p);
    }

    /// Fork mode, step 2 (on the JS thread): one bounded attempt. In the parent the child
    /// is handed to a `leakguard-fork-watch` thread and our write end is closed; in the
    /// child, the caller must write the snapshot into [`Job::write_path`] and `_exit`.
    /// `memory_budget`: the child's budget in bytes (`RLIMIT_AS` = its address space at the
    /// fork + this), None for no limit.
    pub fn fork_attempt(
        &mut self,
        budget: std::time::Duration,
        timeout_ms: u64,
        memory_budget: Option<u64>,
    ) -> Result<ForkStep> {
        if self.child.is_some() {
            return Err(Error::new(
                Code::CaptureForkFailed,
                "this capture already forked",
            ));
        }
        let none = fork::Prepared::default(); // prepare never ran: the exact pass opens
        let prep = self.prepared.as_ref().unwrap_or(&none);
        self.attempts += 1;
        // Remember what to give back before anything can fail (fork() itself may). The
        // prepared ranges are the same for every attempt of a job, and `opened` is only
        // emptied by the fork that hands them to the watchdog: copy them once.
        if self.opened.is_empty() {
            self.opened.extend_from_slice(&prep.dontfork);
        }
        let step = fork::attempt(prep, budget, &self.child_close, self.fault, memory_budget)
            .map_err(|e| Error::io(Code::CaptureForkFailed, "fork capture attempt", &e))?;
        match step {
            fork::Attempt::Child => Ok(ForkStep::Child),
            fork::Attempt::Busy { reason, times, .. } => {
                self.absorb(times);
                Ok(ForkStep::Busy(reason))
            }
            fork::Attempt::Parent {
                pid,
                times,
                output,
                limits,
                condvars,
            } => {
                self.absorb(times);
                // The watchdog first: without it nobody would reap the child. Our write
                // end stays open until it runs, so a failure here leaves the pipe intact.
                let cfg = fork::watch::WatchConfig {
                    pid,
                    timeout_ms,
                    hang_ms: hang_ms(),
                    restore: self.opened.clone(),
                    output,
                    limits,
                    condvars,
                };
                let progress = self.progress.clone();
                let spawned = std::thread::Builder::new()
                    .name("leakguard-fork-watch".into())
                    .spawn(move || fork::watch::watch(cfg, progress));
                match spawned {
                    Ok(h) => {
                        self.opened.clear(); // the watchdog restores them
                        self.child = Some((pid, h));
                        // forkTimeoutMs counts from the fork, not from the job's start.
                        self.progress.touch();
                        self.close_write_end();
                        Ok(ForkStep::Parent(pid))
                    }
                    Err(e) => {
                        #[cfg(unix)]
                        // SAFETY: our own child; SIGKILL then a blocking reap.
                        unsafe {
                            libc::kill(pid, libc::SIGKILL);
                            libc::waitpid(pid, std::ptr::null_mut(), 0);
                        }
                        Err(Error::io(
                            Code::CaptureForkFailed,
                            "starting the fork watchdog",
                            &e,
                        ))
                    }
                }
            }
        }
    }

    fn absorb(&mut self, t: fork::AttemptTimes) {
        self.times.madvise_ms += t.madvise_ms;
        self.times.quiet_ms += t.quiet_ms;
        self.times.fork_ms += t.fork_ms;
        self.times.condvars = t.condvars;
        self.times.opened = t.opened;
        if t.exact_pass.is_some() {
            self.times.exact_pass = t.exact_pass;
        }
    }

    /// Whether `finish` would return at once: the pump is done and any fork child is gone
    /// (JS polls this so that `finish` never parks a libuv worker while a child runs).
    pub fn settled(&self) -> bool {
        self.progress.pump_done() && self.child.as_ref().is_none_or(|(_, h)| h.is_finished())
    }

    /// Wait for the pump, then manifest, rename, fsync the directory, retention. Blocking:
    /// call it off the JS thread. `meta` (an object from JS: heap figures, stall, reason…)
    /// is merged into the manifest, which is also the returned value.
    pub fn finish(mut self, mut meta: Map<String, Value>) -> Result<Value> {
        self.close_write_end();
        // Fork mode: the watchdog ends when the child is gone (reaped, whatever happened).
        let child = self.child.take().map(|(pid, h)| {
            h.join().unwrap_or_else(|_| fork::watch::ChildReport {
                pid,
                fate: fork::watch::Fate::Killed("the watchdog panicked".into()),
                peak_rss: 0,
                peak_vm: 0,
                duration_ms: 0.0,
                output: String::new(),
                limits: None,
            })
        });
        if !self.opened.is_empty() {
            fork::maps::advise(
                &std::mem::take(&mut self.opened),
                crate::fork::sys::MADV_DONTFORK,
            );
        }
        let joined = self.thread.take().expect("finish runs once").join();
        self.done = true;
        if let Some(c) = &child {
            meta.insert("fork".into(), self.fork_info(c));
            // The take happened in the child: its lifetime is the take-and-serialize time.
            if let Some(Value::Object(p)) = meta.get_mut("phases") {
                p.insert("takeMs".into(), round(c.duration_ms).into());
            }
            // The headroom record gains what the child really used.
            if let Some(Value::Object(h)) = meta.get_mut("headroom") {
                h.insert("childPeakRss".into(), c.peak_rss.into());
                h.insert(
                    "childPeakBudgetUsed".into(),
                    c.limits
                        .map(|l| Value::from(c.peak_vm.saturating_sub(l.vm_at_fork)))
                        .unwrap_or(Value::Null),
                );
            }
        }
        let res = (|| {
            // The pump's own failure (disk full, file too large, a panic) is the cause even
            // when the child then died of EPIPE: report it, so JS does not retry inline.
            let pump_failed = match &joined {
                Ok(Err(e)) => e.code != Code::CaptureAborted && e.code != Code::CapturePipeFailed,
                Ok(Ok(_)) => false,
                Err(_) => true,
            };
            // A child reaped elsewhere left no status: a whole stream ('{' … '}') is the
            // evidence that it finished.
            let whole = matches!(&joined, Ok(Ok((s, _))) if s.complete);
            if let Some(c) = child
                .as_ref()
                .filter(|c| !(c.ok() || pump_failed || (c.status_unknown() && whole)))
            {
                if self.progress.is_aborted() {
                    return Err(Error::new(Code::CaptureAborted, "the capture was aborted"));
                }
                if c.out_of_budget() {
                    return Err(out_of_budget_error(c));
                }
                let said = c.output_line();
                return Err(Error::new(
                    Code::CaptureForkFailed,
                    if said.is_empty() {
                        format!("{}; nothing was kept", c.describe())
                    } else {
                        format!("{} (it said: {said}); nothing was kept", c.describe())
                    },
                ));
            }
            let (stats, pumped_ms) = match joined {
                Ok(r) => r?,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    return Err(Error::new(
                        Code::CaptureInternal,
                        format!("the capture thread panicked: {what}"),
                    ));
                }
            };
            if self.progress.is_aborted() {
                return Err(Error::new(Code::CaptureAborted, "the capture was aborted"));
            }
            if !stats.complete {
                return Err(Error::new(
                    Code::CaptureIncomplete,
                    format!(
                        "the snapshot stream ended early after {} bytes; nothing was kept",
                        stats.raw_bytes
                    ),
                ));
            }
            self.commit(meta, &stats, pumped_ms, child.is_some())
        })();
        let _ = std::fs::remove_file(&self.tmp);
        res
    }

    fn fork_info(&self, c: &ChildReport) -> Value {
        serde_json::json!({
            "pid": c.pid,
            "outcome": c.describe(),
            "childPeakRss": c.peak_rss,
            "childPeakVm": c.peak_vm,
            "budgetBytes": c.limits.map(|l| l.budget),
            "addressSpaceAtFork": c.limits.map(|l| l.vm_at_fork),
            "addressSpaceLimit": c.limits.map(|l| l.as_limit),
            "output": if c.output.is_empty() { Value::Null } else { c.output_line().into() },
            "childMs": round(c.duration_ms),
            "attempts": self.attempts,
            "madviseMs": round(self.times.madvise_ms),
            "quietWaitMs": round(self.times.quiet_ms),
            "forkMs": round(self.times.fork_ms),
            "rangesOpened": self.times.opened,
            "openPass": if self.times.exact_pass.is_some() { "exact" } else { "spans" },
            "exactPassReason": self.times.exact_pass,
            "condvarsReset": self.times.condvars,
            "smapsMs": self.prepared.as_ref().map(|p| round(p.smaps_ms)),
        })
    }

    fn commit(
        &self,
        mut meta: Map<String, Value>,
        stats: &PumpStats,
        pumped_ms: f64,
        forked: bool,
    ) -> Result<Value> {
        let path = self.final_path();
        let manifest_path = self.manifest_path();
        let lag = self
            .write_closed_ms
            .map(|c| (pumped_ms - stats.fsync_ms - c).max(0.0))
            .unwrap_or(0.0);
        let mut phases = match meta.remove("phases") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        if !forked {
            // Inline: how long gzip ran on after V8 finished writing.
            phases.insert("compressLagMs".into(), round(lag).into());
        }
        phases.insert("fsyncMs".into(), round(stats.fsync_ms).into());
        phases.insert("histogramMs".into(), round(stats.histogram_ms).into());
        let mut m = Map::new();
        m.insert("path".into(), path_value(&path));
        m.insert("manifestPath".into(), path_value(&manifest_path));
        m.insert(
            "name".into(),
            Value::String(format!("{}{SNAPSHOT_EXT}", self.base)),
        );
        m.insert("bytes".into(), stats.bytes.into());
        m.insert("rawBytes".into(), stats.raw_bytes.into());
        m.insert("level".into(), self.cfg.level.into());
        let (classes, totals) = match &stats.histogram {
            Some(h) => {
                // The tests compare every class with an independent parse.
                let top = std::env::var("LEAKGUARD_TEST_CLASSES_TOP")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(TOP_CLASSES);
                let (c, t) = class_summary(h, top);
                (c, t)
            }
            None => (Value::Null, Value::Null),
        };
        m.insert("classes".into(), classes);
        m.insert("classTotals".into(), totals);
        if let Some(e) = &stats.histogram_error {
            m.insert("classesError".into(), e.clone().into());
        }
        m.extend(meta);
        let finished_ms = self.started.elapsed().as_secs_f64() * 1e3;
        phases.insert("commitMs".into(), round(finished_ms - pumped_ms).into());
        // JS's preparation (headroom check) ran before the job started.
        let prepare_ms = phases
            .get("prepareMs")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        m.insert("durationMs".into(), round(prepare_ms + finished_ms).into());
        m.insert("phases".into(), Value::Object(phases));
        let value = Value::Object(m);
        let text = serde_json::to_vec_pretty(&value).expect("a JSON value serializes");
        files::write_atomic(&manifest_path, &text)?;
        let renamed = if self.fault == Some(Fault::RenameFail) {
            Err(Error::new(
                Code::CaptureWriteFailed,
                format!("renaming {}: injected fault", self.tmp.display()),
            ))
        } else {
            files::rename(&self.tmp, &path)
        };
        if let Err(e) = renamed {
            let _ = std::fs::remove_file(&manifest_path);
            return Err(e);
        }
        files::sync_dir(&self.cfg.dir);
        let mut value = value;
        // Leftovers of captures killed mid-way (by any process sharing the directory).
        let stale = files::remove_stale(&self.cfg.dir);
        if !stale.is_empty() {
            let names: Vec<String> = stale
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            value["removedStale"] = names.into();
        }
        match files::prune(
            &self.cfg.dir,
            self.cfg.max_snapshots,
            self.cfg.max_bytes,
            &self.base,
        ) {
            Ok(removed) => value["pruned"] = removed.into(),
            Err(e) => value["retentionError"] = e.to_string().into(),
        }
        Ok(value)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some((pid, h)) = self.child.take() {
            // Dropped with a child running: the watchdog kills it on abort and reaps it.
            self.progress.abort();
            let _ = pid;
            drop(h);
        }
        if !self.done {
            // Unfinished: stop the pump and let it remove the temporary file. Not joined:
            // a drop may run on the JS thread, which must not wait for I/O.
            self.progress.abort();
            self.transport.close_write_end();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// How many classes of each ranking (self size, count) the result and manifest carry.
pub const TOP_CLASSES: usize = 50;

/// The classes a capture reports: the `top` largest by self size and the `top` most
/// numerous, deduplicated, largest self size first, as `{ name, type, count, selfSize }`;
/// and the totals `{ count, selfSize, classes }` (nodes, their self size, distinct classes).
pub fn class_summary(h: &crate::snapshot::histogram::ClassHistogram, top: usize) -> (Value, Value) {
    let mut idx: Vec<usize> = (0..h.classes.len()).collect();
    let mut picked = vec![false; h.classes.len()];
    idx.sort_by(|&a, &b| {
        let (x, y) = (&h.classes[a], &h.classes[b]);
        y.self_size
            .cmp(&x.self_size)
            .then(y.count.cmp(&x.count))
            .then(x.name.cmp(&y.name))
    });
    for &i in idx.iter().take(top) {
        picked[i] = true;
    }
    let mut by_count = idx.clone();
    by_count.sort_by(|&a, &b| {
        let (x, y) = (&h.classes[a], &h.classes[b]);
        y.count
            .cmp(&x.count)
            .then(y.self_size.cmp(&x.self_size))
            .then(x.name.cmp(&y.name))
    });
    for &i in by_count.iter().take(top) {
        picked[i] = true;
    }
    let classes: Vec<Value> = idx
        .iter()
        .filter(|&&i| picked[i])
        .map(|&i| {
            let c = &h.classes[i];
            serde_json::json!({
                "name": c.name,
                "type": c.type_name,
                "count": c.count,
                "selfSize": c.self_size,
            })
        })
        .collect();
    let totals = serde_json::json!({
        "count": h.node_count,
        "selfSize": h.total_self_size,
        "classes": h.classes.len(),
    });
    (Value::Array(classes), totals)
}

fn mib(b: u64) -> u64 {
    (b + (1 << 19)) >> 20
}

/// The child ran out of its memory budget: how much it had, and what to change.
fn out_of_budget_error(c: &ChildReport) -> Error {
    let l = c.limits.unwrap_or_default();
    let said = c.output_line();
    Error::new(
        Code::CaptureOutOfBudget,
        format!(
            "the fork child ran out of its memory budget: it had {} MiB beyond its {} MiB \
             address space at the fork (peak {} MiB mapped, {} MiB resident) and {}{}. This \
             heap's snapshot needs more memory than the container can spare now: capture \
             when the heap is smaller, or raise the container's memory limit (a lower \
             memoryBudget only lowers it further). It was not retried inline (that would \
             need the same memory inside the server); nothing was kept",
            mib(l.budget),
            mib(l.vm_at_fork),
            mib(c.peak_vm.saturating_sub(l.vm_at_fork)),
            mib(c.peak_rss),
            c.describe().replace("the fork child ", ""),
            if said.is_empty() {
                String::new()
            } else {
                format!(" (it said: {said})")
            }
        ),
    )
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

fn path_value(p: &Path) -> Value {
    Value::String(p.to_string_lossy().into_owned())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn cfg(dir: &Path) -> Config {
        Config {
            dir: dir.join("snaps"),
            level: 1,
            max_snapshots: Some(2),
            max_bytes: None,
        }
    }

    fn write_through(job: &Job, data: &[u8]) {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(job.write_path())
            .unwrap();
        w.write_all(data).unwrap();
    }

    // One test drives the single-flight flag, so the cases run in sequence.
    #[test]
    fn jobs_commit_refuse_overlap_fail_cleanly_and_prune() {
        let d = tempfile::tempdir().unwrap();
        let snapshot = br#"{"snapshot":{"meta":{}},"nodes":[1,2,3],"strings":["a"]}"#;

        // A whole snapshot commits: file and manifest, 0600, gunzips back.
        let mut job = Job::start(cfg(d.path())).unwrap();
        assert_eq!(
            Job::start(cfg(d.path())).err().unwrap().code,
            Code::CaptureInProgress
        );
        write_through(&job, snapshot);
        job.close_write_end();
        let mut meta = Map::new();
        meta.insert("reason".into(), "unit".into());
        let v = job.finish(meta).unwrap();
        let path = PathBuf::from(v["path"].as_str().unwrap());
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw, snapshot);
        assert_eq!(v["rawBytes"], snapshot.len() as u64);
        assert_eq!(v["reason"], "unit");
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(v["manifestPath"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(manifest["path"], v["path"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // A truncated stream: CAPTURE_INCOMPLETE and no file left behind.
        let job = Job::start(cfg(d.path())).unwrap();
        write_through(&job, &snapshot[..20]);
        assert_eq!(
            job.finish(Map::new()).unwrap_err().code,
            Code::CaptureIncomplete
        );

        // Abort: CAPTURE_ABORTED.
        let job = Job::start(cfg(d.path())).unwrap();
        job.abort();
        assert_eq!(
            job.finish(Map::new()).unwrap_err().code,
            Code::CaptureAborted
        );

        // A dropped job releases the flight and leaves nothing.
        let job = Job::start(cfg(d.path())).unwrap();
        drop(job);

        // Retention keeps the newest two.
        for _ in 0..3 {
            let job = Job::start(cfg(d.path())).unwrap();
            write_through(&job, snapshot);
            job.finish(Map::new()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut names: Vec<String> = std::fs::read_dir(d.path().join("snaps"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 4, "{names:?}");
        assert!(names.iter().all(|n| !n.ends_with(TMP_EXT)), "{names:?}");
    }
}
