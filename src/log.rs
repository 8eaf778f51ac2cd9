//! The NDJSON log: one JSON object per line (`{"type":"sample",…}`, `verdict`, `pressure`,
//! `stall-begin`, `stall`, `capture`, …), appended to a file that is rotated by size
//! (`path` → `path.1` → … → `path.<files>`, the oldest dropped).
//!
//! Runs on the `leakguard-log` thread: callers (the JS thread, the watchdog) only push a
//! message into a bounded channel, never touch the file. When the channel is full
//! (the disk stalls), messages are dropped and counted rather than blocking the caller;
//! the next line written says how many were lost. The file is opened on the calling thread
//! at start so a bad path fails at `watch()`; it is created 0600 (samples reveal little,
//! but stall and capture lines name paths).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{Code, Error, Result};
use crate::monitor::{Sample, FIELDS};

/// Messages queued before new ones are dropped.
const QUEUE: usize = 4096;

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    /// Rotate when the file would grow past this, bytes (default 10 MiB).
    pub max_bytes: u64,
    /// Rotated files kept besides the live one (default 3).
    pub files: u32,
}

impl Config {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_bytes: 10 * 1024 * 1024,
            files: 3,
        }
    }
}

enum Msg {
    Sample(Box<Sample>),
    Line(String),
    Flush(SyncSender<()>),
    Stop,
}

/// A handle that can queue lines (cheap to clone; the watchdog holds one).
#[derive(Clone)]
pub struct Sender {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Sender {
    fn send(&self, m: Msg) {
        match self.tx.try_send(m) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Queue a sample; it is formatted on the log thread.
    pub fn sample(&self, s: &Sample) {
        self.send(Msg::Sample(Box::new(*s)));
    }

    /// Queue one line: a JSON object without the trailing newline.
    pub fn line(&self, json: String) {
        self.send(Msg::Line(json));
    }
}

pub struct Log {
    sender: Sender,
    handle: Option<JoinHandle<()>>,
}

impl Log {
    /// Open (create, append) the file and start the `leakguard-log` thread.
    pub fn open(cfg: Config) -> Result<Self> {
        let file = open_file(&cfg.path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        let handle = std::thread::Builder::new()
            .name("leakguard-log".into())
            .spawn(move || run(cfg, BufWriter::new(file), size, rx, d))
            .map_err(|e| {
                Error::io(
                    Code::WatchLogFailed,
                    "starting the leakguard-log thread",
                    &e,
                )
            })?;
        Ok(Self {
            sender: Sender { tx, dropped },
            handle: Some(handle),
        })
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.sender.dropped.load(Ordering::Relaxed)
    }

    /// Wait until everything queued so far is written and flushed.
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if self.sender.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

impl Drop for Log {
    /// Writes what is queued, stops the thread and joins it. If the queue is full (a stalled
    /// disk) the thread is left to finish on its own rather than blocking the caller.
    fn drop(&mut self) {
        if self.sender.tx.try_send(Msg::Stop).is_ok() {
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn open_file(path: &Path) -> Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|e| {
        Error::io(
            Code::WatchLogFailed,
            format!("opening the log file {}", path.display()),
            &e,
        )
    })
}

/// Format a sample as one NDJSON object (no newline).
pub fn sample_json(s: &Sample) -> String {
    let mut out = String::with_capacity(40 * FIELDS.len());
    out.push_str("{\"type\":\"sample\"");
    for (name, v) in FIELDS.iter().zip(s.0.iter()) {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        push_num(&mut out, *v);
    }
    out.push('}');
    out
}

/// A JSON number (non-finite values become null).
pub fn push_num(out: &mut String, v: f64) {
    use std::fmt::Write as _;
    if !v.is_finite() {
        out.push_str("null");
    } else if v.fract() == 0.0 && v.abs() < 9.0e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{}", (v * 1000.0).round() / 1000.0);
    }
}

fn run(
    cfg: Config,
    mut w: BufWriter<File>,
    mut size: u64,
    rx: Receiver<Msg>,
    dropped: Arc<AtomicU64>,
) {
    let mut reported_drops = 0;
    'outer: while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(m) = next.take() {
            let line = match m {
                Msg::Sample(s) => sample_json(&s),
                Msg::Line(l) => l,
                Msg::Stop => break 'outer,
                Msg::Flush(done) => {
                    let _ = w.flush();
                    let _ = done.send(());
                    next = rx.try_recv().ok();
                    continue;
                }
            };
            let lost = dropped.load(Ordering::Relaxed);
            if lost != reported_drops {
                let note = format!(
                    "{{\"type\":\"dropped\",\"lines\":{}}}",
                    lost - reported_drops
                );
                reported_drops = lost;
                write_line(&cfg, &mut w, &mut size, &note);
            }
            write_line(&cfg, &mut w, &mut size, &line);
            next = rx.try_recv().ok();
        }
        let _ = w.flush();
    }
    let _ = w.flush();
}

fn write_line(cfg: &Config, w: &mut BufWriter<File>, size: &mut u64, line: &str) {
    let len = line.len() as u64 + 1;
    if *size > 0 && *size + len > cfg.max_bytes {
        let _ = w.flush();
        if rotate(cfg).is_ok() {
            if let Ok(f) = open_file(&cfg.path) {
                *w = BufWriter::new(f);
                *size = 0;
            }
        }
    }
    if w.write_all(line.as_bytes())
        .and_then(|_| w.write_all(b"\n"))
        .is_ok()
    {
        *size += len;
    }
}

fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// `path.(n-1)` → `path.n` … `path` → `path.1`; with `files == 0` the live file is removed.
fn rotate(cfg: &Config) -> std::io::Result<()> {
    if cfg.files == 0 {
        return std::fs::remove_file(&cfg.path);
    }
    for i in (1..cfg.files).rev() {
        let from = rotated(&cfg.path, i);
        if from.exists() {
            std::fs::rename(&from, rotated(&cfg.path, i + 1))?;
        }
    }
    std::fs::rename(&cfg.path, rotated(&cfg.path, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::{F, N};

    #[test]
    fn writes_ndjson_lines_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lg.ndjson");
        let log = Log::open(Config {
            path: path.clone(),
            max_bytes: 2000,
            files: 2,
        })
        .unwrap();
        let mut s = Sample([0.0; N]);
        for i in 0..40 {
            s.0[F::Time as usize] = 1_700_000_000_000.0 + i as f64;
            s.0[F::Elu as usize] = 0.25;
            log.sender().sample(&s);
            log.sender()
                .line(format!("{{\"type\":\"note\",\"i\":{i}}}"));
        }
        log.flush();
        let live = std::fs::read_to_string(&path).unwrap();
        assert!(live.len() <= 2000);
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(
            !rotated(&path, 3).exists(),
            "only two rotated files are kept"
        );
        for f in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            for line in std::fs::read_to_string(&f).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
                assert!(v["type"].is_string());
            }
        }
        let last: serde_json::Value = serde_json::from_str(live.lines().last().unwrap()).unwrap();
        assert_eq!(last["i"], 39, "the newest line is in the live file");
        let sample_line = live.lines().find(|l| l.contains("\"sample\"")).unwrap();
        let v: serde_json::Value = serde_json::from_str(sample_line).unwrap();
        assert_eq!(v["elu"], 0.25);
        assert_eq!(v.as_object().unwrap().len(), N + 1);
    }

    #[test]
    fn a_bad_path_fails_at_open_with_the_log_code() {
        let err = Log::open(Config::new("/nonexistent-dir/x/lg.ndjson"))
            .err()
            .unwrap();
        assert_eq!(err.code, Code::WatchLogFailed);
    }

    #[test]
    fn numbers_are_json() {
        let mut s = String::new();
        push_num(&mut s, f64::NAN);
        s.push(' ');
        push_num(&mut s, 12.0);
        s.push(' ');
        push_num(&mut s, 0.12345);
        assert_eq!(s, "null 12 0.123");
    }
}
