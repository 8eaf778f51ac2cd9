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
use files::{MANIFEST_EXT, SNAPSHOT_EXT, TMP_EXT};
use writer::{Fault, Progress, PumpStats};

static IN_FLIGHT: AtomicBool = AtomicBool::new(false);
static SEQ: AtomicU64 = AtomicU64::new(0);

/// Default gzip level: 1. Measured here on real snapshots, level 1 keeps pace with V8's
/// serializer (the `.gz` is complete when the stall ends) and compresses ~4.6–7.4×;
/// level 6 is only 10–20 % smaller, runs at ~1/3 of the speed and lags seconds behind at
/// large heaps (TOOLCHAIN.md; README "Choosing the gzip level").
pub const DEFAULT_LEVEL: u32 = 1;

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
                Error::new(Code::CaptureInProgress, "a heap capture is already running in this process; wait for it to finish")
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
    _flight: Flight,
}

impl Job {
    /// Create the directory, the private temporary file and the pipe, and start the pump.
    pub fn start(cfg: Config) -> Result<Job> {
        let flight = Flight::acquire()?;
        let started = Instant::now();
        files::ensure_dir(&cfg.dir)?;
        files::remove_stale_tmp(&cfg.dir);
        let base = files::base_name(SystemTime::now(), std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst) + 1);
        let tmp = cfg.dir.join(format!("{base}{TMP_EXT}"));
        let file = files::create_private(&tmp)?;
        let mut transport = match pipe::Transport::new(pipe::Kind::native()) {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let reader = transport.take_reader().expect("a new transport has its reader");
        let progress = Arc::new(Progress::new());
        let fault = Fault::from_env();
        let (p, level, tmp2) = (progress.clone(), cfg.level, tmp.clone());
        let spawned = std::thread::Builder::new().name("leakguard-capture".into()).spawn(move || {
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
                return Err(Error::io(Code::CaptureInternal, "starting the capture thread", &e));
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

    /// Wait for the pump, then manifest, rename, fsync the directory, retention. Blocking:
    /// call it off the JS thread. `meta` (an object from JS: heap figures, stall, reason…)
    /// is merged into the manifest, which is also the returned value.
    pub fn finish(mut self, meta: Map<String, Value>) -> Result<Value> {
        self.close_write_end();
        let joined = self.thread.take().expect("finish runs once").join();
        self.done = true;
        let res = (|| {
            let (stats, pumped_ms) = match joined {
                Ok(r) => r?,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    return Err(Error::new(Code::CaptureInternal, format!("the capture thread panicked: {what}")));
                }
            };
            if self.progress.is_aborted() {
                return Err(Error::new(Code::CaptureAborted, "the capture was aborted"));
            }
            if !stats.complete {
                return Err(Error::new(
                    Code::CaptureIncomplete,
                    format!("the snapshot stream ended early after {} bytes; nothing was kept", stats.raw_bytes),
                ));
            }
            self.commit(meta, &stats, pumped_ms)
        })();
        let _ = std::fs::remove_file(&self.tmp);
        res
    }

    fn commit(&self, mut meta: Map<String, Value>, stats: &PumpStats, pumped_ms: f64) -> Result<Value> {
        let path = self.final_path();
        let manifest_path = self.manifest_path();
        let lag = self.write_closed_ms.map(|c| (pumped_ms - stats.fsync_ms - c).max(0.0)).unwrap_or(0.0);
        let mut phases = match meta.remove("phases") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        phases.insert("compressLagMs".into(), round(lag).into());
        phases.insert("fsyncMs".into(), round(stats.fsync_ms).into());
        let mut m = Map::new();
        m.insert("path".into(), path_value(&path));
        m.insert("manifestPath".into(), path_value(&manifest_path));
        m.insert("name".into(), Value::String(format!("{}{SNAPSHOT_EXT}", self.base)));
        m.insert("bytes".into(), stats.bytes.into());
        m.insert("rawBytes".into(), stats.raw_bytes.into());
        m.insert("level".into(), self.cfg.level.into());
        m.extend(meta);
        let finished_ms = self.started.elapsed().as_secs_f64() * 1e3;
        phases.insert("commitMs".into(), round(finished_ms - pumped_ms).into());
        // JS's preparation (headroom check) ran before the job started.
        let prepare_ms = phases.get("prepareMs").and_then(Value::as_f64).unwrap_or(0.0);
        m.insert("durationMs".into(), round(prepare_ms + finished_ms).into());
        m.insert("phases".into(), Value::Object(phases));
        let value = Value::Object(m);
        let text = serde_json::to_vec_pretty(&value).expect("a JSON value serializes");
        files::write_atomic(&manifest_path, &text)?;
        let renamed = if self.fault == Some(Fault::RenameFail) {
            Err(Error::new(Code::CaptureWriteFailed, format!("renaming {}: injected fault", self.tmp.display())))
        } else {
            files::rename(&self.tmp, &path)
        };
        if let Err(e) = renamed {
            let _ = std::fs::remove_file(&manifest_path);
            return Err(e);
        }
        files::sync_dir(&self.cfg.dir);
        let mut value = value;
        match files::prune(&self.cfg.dir, self.cfg.max_snapshots, self.cfg.max_bytes, &self.base) {
            Ok(removed) => value["pruned"] = removed.into(),
            Err(e) => value["retentionError"] = e.to_string().into(),
        }
        Ok(value)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.done {
            // Unfinished: stop the pump and let it remove the temporary file. Not joined:
            // a drop may run on the JS thread, which must not wait for I/O.
            self.progress.abort();
            self.transport.close_write_end();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
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
        Config { dir: dir.join("snaps"), level: 1, max_snapshots: Some(2), max_bytes: None }
    }

    fn write_through(job: &Job, data: &[u8]) {
        let mut w = std::fs::OpenOptions::new().write(true).open(job.write_path()).unwrap();
        w.write_all(data).unwrap();
    }

    // One test drives the single-flight flag, so the cases run in sequence.
    #[test]
    fn jobs_commit_refuse_overlap_fail_cleanly_and_prune() {
        let d = tempfile::tempdir().unwrap();
        let snapshot = br#"{"snapshot":{"meta":{}},"nodes":[1,2,3],"strings":["a"]}"#;

        // A whole snapshot commits: file and manifest, 0600, gunzips back.
        let mut job = Job::start(cfg(d.path())).unwrap();
        assert_eq!(Job::start(cfg(d.path())).err().unwrap().code, Code::CaptureInProgress);
        write_through(&job, snapshot);
        job.close_write_end();
        let mut meta = Map::new();
        meta.insert("reason".into(), "unit".into());
        let v = job.finish(meta).unwrap();
        let path = PathBuf::from(v["path"].as_str().unwrap());
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_end(&mut raw).unwrap();
        assert_eq!(raw, snapshot);
        assert_eq!(v["rawBytes"], snapshot.len() as u64);
        assert_eq!(v["reason"], "unit");
        let manifest: Value = serde_json::from_slice(&std::fs::read(v["manifestPath"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(manifest["path"], v["path"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        // A truncated stream: CAPTURE_INCOMPLETE and no file left behind.
        let job = Job::start(cfg(d.path())).unwrap();
        write_through(&job, &snapshot[..20]);
        assert_eq!(job.finish(Map::new()).unwrap_err().code, Code::CaptureIncomplete);

        // Abort: CAPTURE_ABORTED.
        let job = Job::start(cfg(d.path())).unwrap();
        job.abort();
        assert_eq!(job.finish(Map::new()).unwrap_err().code, Code::CaptureAborted);

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
