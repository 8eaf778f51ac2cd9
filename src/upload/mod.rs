//! Uploads of finished captures to object storage: one queue, one `leakguard-upload` thread.
//!
//! [`enqueue`] puts a [`Request`] (the files of one capture, each with its object key or a
//! pre-signed PUT URL) on a process-wide queue and returns an [`Upload`] handle that the JS
//! side polls (`done`, `progress`) and may [`Upload::cancel`]. The thread is started by the
//! first request and exits as soon as it finds the queue empty — the check and the exit are
//! one step under the queue's lock, so a request is never left without a worker and an idle
//! process holds no upload thread. The thread owns a current-thread tokio runtime (needed by
//! `object_store` and `reqwest`); no runtime or tokio thread exists anywhere else, and the
//! runtime is dropped with the thread.
//!
//! Invariants: one upload at a time (requests run in queue order); a local file is removed
//! only after the store confirmed every object of its capture, and only when `delete_local`;
//! a failed or cancelled upload keeps every local file and says so in its outcome; memory
//! per upload is bounded by two part buffers (one filling, one in flight) and a read buffer,
//! never the file. `std::sync::Mutex` serves the queue: it is taken for a push or a pop,
//! never across I/O.

pub mod plan;
mod run;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

/// Where the objects go.
#[derive(Debug, Clone)]
pub enum Target {
    /// An S3 bucket, on AWS or any S3-compatible store (`endpoint`). Credentials left `None`
    /// come the standard way: environment, web identity (IRSA), ECS task role, EC2 metadata.
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
    },
    /// Every file carries its own pre-signed PUT URL: no credentials in the process.
    Presigned,
}

/// One local file and where it goes.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub role: String,
    pub path: PathBuf,
    /// The object key (S3) or the name shown for it (pre-signed).
    pub key: String,
    /// The pre-signed PUT URL (Target::Presigned only).
    pub url: Option<String>,
    pub content_type: String,
}

/// An upload to run: the files of one capture, manifest last.
#[derive(Debug, Clone)]
pub struct Request {
    pub target: Target,
    pub files: Vec<FileSpec>,
    /// Merged into the manifest's `upload` field (where it went), with the keys, sizes and
    /// time added here. The manifest is uploaded with it and, when kept, rewritten locally.
    pub record: Map<String, Value>,
    pub delete_local: bool,
    /// Attempts after the first, for transient failures (network, 5xx, throttling).
    pub retries: u32,
    /// Pause before the first retry; doubles up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// The whole upload, every attempt and pause included.
    pub deadline: Duration,
    /// Multipart part size, bytes (S3 wants ≥ 5 MiB except the last part).
    pub part_size: usize,
}

/// The smallest part S3 accepts (all but the last part of a multipart upload).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The default part: large enough for few requests, small enough for two in memory.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, Default)]
struct Shared {
    cancel: AtomicBool,
    running: AtomicBool,
    sent: AtomicU64,
    total: AtomicU64,
    attempts: AtomicU32,
    outcome: Mutex<Option<Value>>,
}

struct Job {
    req: Request,
    shared: Arc<Shared>,
}

/// A queued or running upload.
#[derive(Clone)]
pub struct Upload {
    shared: Arc<Shared>,
}

impl Upload {
    /// Ask the upload to stop: a queued one never starts, a running one stops at once
    /// (within ~50 ms). Local files are kept. Lock-free.
    pub fn cancel(&self) {
        self.shared.cancel.store(true, Ordering::SeqCst);
    }

    /// The outcome once the upload ended (`{ ok: true, … }` or `{ ok: false, code, … }`).
    pub fn outcome(&self) -> Option<Value> {
        self.shared.outcome.lock().ok().and_then(|g| g.clone())
    }

    /// `(bytes read for the store so far, bytes in all, attempts so far, running)`.
    pub fn progress(&self) -> (u64, u64, u32, bool) {
        let s = &self.shared;
        (
            s.sent.load(Ordering::Relaxed),
            s.total.load(Ordering::Relaxed),
            s.attempts.load(Ordering::Relaxed),
            s.running.load(Ordering::Relaxed),
        )
    }
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    worker: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    jobs: VecDeque::new(),
    worker: false,
});

fn queue() -> std::sync::MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Requests waiting (not counting the one running), and whether the thread is alive.
pub fn queue_state() -> (usize, bool) {
    let q = queue();
    (q.jobs.len(), q.worker)
}

/// Queue an upload; starts the upload thread if none runs.
pub fn enqueue(req: Request) -> Upload {
    let shared = Arc::new(Shared::default());
    let total = req
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(&f.path).ok())
        .map(|m| m.len())
        .sum();
    shared.total.store(total, Ordering::Relaxed);
    let handle = Upload {
        shared: shared.clone(),
    };
    let mut q = queue();
    q.jobs.push_back(Job { req, shared });
    if !q.worker {
        match std::thread::Builder::new()
            .name("leakguard-upload".into())
            .spawn(worker)
        {
            Ok(_) => q.worker = true,
            Err(e) => {
                // No thread: fail every queued job now rather than leave it waiting.
                let msg = format!("could not start the leakguard-upload thread: {e}");
                for j in q.jobs.drain(..) {
                    j.finish(run::failure(&j, "local", &msg));
                }
            }
        }
    }
    handle
}

impl Job {
    fn finish(&self, outcome: Value) {
        self.shared.running.store(false, Ordering::SeqCst);
        if let Ok(mut g) = self.shared.outcome.lock() {
            *g = Some(outcome);
        }
    }
}

/// The upload thread: run queued jobs one at a time; exit when the queue is empty.
fn worker() {
    // rustls needs a process default crypto provider for reqwest's client; installing it
    // twice is harmless (the second call returns Err).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    loop {
        let job = {
            let mut q = queue();
            match q.jobs.pop_front() {
                Some(j) => j,
                None => {
                    q.worker = false;
                    return;
                }
            }
        };
        let outcome = match &rt {
            Ok(rt) => {
                job.shared.running.store(true, Ordering::SeqCst);
                run::run(rt, &job)
            }
            Err(e) => run::failure(&job, "local", &format!("no async runtime: {e}")),
        };
        job.finish(outcome);
    }
}
