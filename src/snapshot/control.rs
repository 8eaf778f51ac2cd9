//! Cancellation and progress for long snapshot work (reading, and the analysis built on
//! it). A [`Control`] is cheap to clone and shared between the thread that asked for the
//! work (which may set the cancel flag, e.g. from an `AbortSignal`) and the thread doing
//! it (which checks the flag between chunks and reports progress).
//!
//! Invariants: the progress callback runs on the working thread, at most about ten times
//! a second per [`Reporter`] (plus one final call when a phase completes), never while a
//! lock of the caller's is held by leakguard; a cancelled operation returns
//! `ERR_LEAKGUARD_ANALYSIS_ABORTED` at its next check (every chunk of ~1 MiB while reading).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Code, Error, Result};

/// `(phase, done, total)`: for the reader, phase `"read"` and bytes of the file consumed
/// so far out of the file's size (compressed bytes for a `.gz`).
pub type ProgressFn = dyn Fn(&str, u64, u64) + Send + Sync;

/// How often a [`Reporter`] may call the progress callback.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// A cancel flag and an optional progress callback.
#[derive(Clone, Default)]
pub struct Control {
    pub cancel: Arc<AtomicBool>,
    pub progress: Option<Arc<ProgressFn>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("cancelled", &self.is_cancelled())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Control {
    /// No cancellation, no progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a progress callback.
    pub fn with_progress(f: impl Fn(&str, u64, u64) + Send + Sync + 'static) -> Self {
        Self {
            cancel: Arc::default(),
            progress: Some(Arc::new(f)),
        }
    }

    /// Ask the work to stop (any thread).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// `Err(ANALYSIS_ABORTED)` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::new(
                Code::AnalysisAborted,
                "snapshot analysis aborted: it was cancelled before it finished",
            ))
        } else {
            Ok(())
        }
    }

    /// A rate-limited reporter for one phase of `total` units.
    pub fn reporter<'a>(&'a self, phase: &'a str, total: u64) -> Reporter<'a> {
        Reporter {
            ctl: self,
            phase,
            total,
            last: None,
        }
    }
}

/// Reports one phase's progress through a [`Control`], at most every 100 ms.
pub struct Reporter<'a> {
    ctl: &'a Control,
    phase: &'a str,
    total: u64,
    last: Option<Instant>,
}

impl Reporter<'_> {
    /// Report `done` if the last report is 100 ms old (the first call always reports).
    pub fn tick(&mut self, done: u64) {
        let Some(f) = &self.ctl.progress else { return };
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < PROGRESS_INTERVAL)
        {
            return;
        }
        self.last = Some(now);
        f(self.phase, done.min(self.total), self.total);
    }

    /// The phase is complete: always reports `done == total`.
    pub fn done(&mut self) {
        if let Some(f) = &self.ctl.progress {
            f(self.phase, self.total, self.total);
        }
    }

    /// Change the total (a reader that learns the size late).
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn reporter_is_rate_limited_and_finishes_at_total() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c2 = calls.clone();
        let ctl =
            Control::with_progress(move |p, d, t| c2.lock().unwrap().push((p.to_string(), d, t)));
        let mut r = ctl.reporter("read", 1000);
        for i in 0..10_000 {
            r.tick(i);
        }
        r.done();
        let calls = calls.lock().unwrap();
        // 10,000 ticks in far less than a second: the first, maybe one more, and the end.
        assert!(calls.len() <= 4, "{} calls", calls.len());
        assert_eq!(calls[0], ("read".to_string(), 0, 1000));
        assert_eq!(*calls.last().unwrap(), ("read".to_string(), 1000, 1000));
    }

    #[test]
    fn cancel_makes_check_fail_with_the_aborted_code() {
        let ctl = Control::new();
        assert!(ctl.check().is_ok());
        ctl.clone().cancel();
        assert_eq!(ctl.check().unwrap_err().code, Code::AnalysisAborted);
    }
}
