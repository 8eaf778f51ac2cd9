//! The stall watchdog: a `leakguard-watchdog` thread that notices, while it happens, that
//! the JS thread has stopped beating, and records what the process looks like then.
//!
//! The JS side beats from an unref'd timer every `period_ms`. The thread wakes every
//! `poll_ms` (a quarter of the threshold, 10–250 ms), reads the JS thread's CPU time
//! (`/proc/self/task/<tid>/stat` on Linux) and, when the last beat is older than
//! `period_ms + threshold_ms`, opens a stall: start time, RSS (`/proc/self/statm`), and a
//! `stall-begin` log line written *during* the stall (if the process is then killed, the
//! log still says why). The next beat closes it and returns the completed [`Stall`] to the
//! JS thread, which emits the `stall` event. Reported duration is the beat's lateness
//! (gap − period). CPU over the stall tells a busy JS thread (≈ 1: a long synchronous
//! computation or GC) from a blocked one (≈ 0: synchronous I/O, a lock).
//!
//! Invariants: the thread never blocks the JS thread (beats are one atomic store and, at
//! the end of a stall only, one short mutex and `/proc` read); it holds no Node handle, so
//! it never keeps the process alive; `stop` wakes and joins it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Code, Error, Result};
use crate::log;

/// A completed stall of the JS thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    /// Epoch ms of the last beat before the stall.
    pub started_at: f64,
    /// How late the beat came, ms.
    pub duration_ms: f64,
    /// Whether the watchdog saw it while it happened (false if it only showed up as a late beat).
    pub observed: bool,
    /// Highest RSS read during the stall, bytes.
    pub rss_bytes: Option<f64>,
    /// CPU time of the JS thread during the stall, ms (Linux).
    pub cpu_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct Open {
    started_at: f64,
    rss: Option<f64>,
    cpu_start: Option<f64>,
}

struct Shared {
    /// Nanoseconds since `base` of the last beat.
    last_beat: AtomicU64,
    base: Instant,
    base_epoch_ms: f64,
    period_ms: f64,
    threshold_ms: f64,
    tid: Option<i64>,
    /// The last CPU reading taken while the loop was beating (the beat had advanced since
    /// the poll before), and the beat it saw, ms.
    cpu_healthy: Mutex<(Option<f64>, u64)>,
    open: Mutex<Option<Open>>,
    stop: Mutex<bool>,
    wake: Condvar,
    log: Option<log::Sender>,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
    fn epoch_ms(&self, ns: u64) -> f64 {
        self.base_epoch_ms + ns as f64 / 1e6
    }
}

pub struct Watchdog {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

/// The calling thread's kernel id (Linux), for `/proc/self/task/<tid>`.
pub fn current_tid() -> Option<i64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid takes no arguments and cannot fail.
        Some(unsafe { libc::syscall(libc::SYS_gettid) } as i64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

impl Watchdog {
    /// Start watching the thread `tid` (the caller's, normally: call from the JS thread).
    pub fn start(
        period_ms: f64,
        threshold_ms: f64,
        tid: Option<i64>,
        log: Option<log::Sender>,
    ) -> Result<Self> {
        let base = Instant::now();
        let base_epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0);
        let shared = Arc::new(Shared {
            last_beat: AtomicU64::new(0),
            base,
            base_epoch_ms,
            period_ms,
            threshold_ms,
            tid,
            cpu_healthy: Mutex::new((None, u64::MAX)),
            open: Mutex::new(None),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            log,
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("leakguard-watchdog".into())
            .spawn(move || run(&s))
            .map_err(|e| {
                Error::io(
                    Code::WatchThreadFailed,
                    "starting the leakguard-watchdog thread",
                    &e,
                )
            })?;
        Ok(Self {
            shared,
            handle: Some(handle),
        })
    }

    /// The JS thread is alive. Returns the stall that this beat ends, if any.
    pub fn beat(&self) -> Option<Stall> {
        let sh = &self.shared;
        let now = sh.now_ns();
        let prev = sh.last_beat.swap(now, Ordering::AcqRel);
        let gap_ms = now.saturating_sub(prev) as f64 / 1e6;
        let open = sh.open.lock().unwrap_or_else(|e| e.into_inner()).take();
        let late = gap_ms - sh.period_ms;
        if open.is_none() && late <= sh.threshold_ms {
            return None;
        }
        let rss_now = read_rss();
        let cpu_now = sh.tid.and_then(read_thread_cpu_ms);
        let (started_at, rss, cpu_start, observed) = match open {
            Some(o) => (o.started_at, o.rss, o.cpu_start, true),
            None => (sh.epoch_ms(prev), None, None, false),
        };
        let rss = match (rss, rss_now) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let cpu_ms = match (cpu_start, cpu_now) {
            (Some(a), Some(b)) => Some((b - a).max(0.0)),
            _ => None,
        };
        Some(Stall {
            started_at,
            duration_ms: late.max(0.0),
            observed,
            rss_bytes: rss,
            cpu_ms,
        })
    }

    /// Stop and join the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(sh: &Shared) {
    let poll = Duration::from_secs_f64((sh.threshold_ms / 4.0).clamp(10.0, 250.0) / 1000.0);
    let mut stopped = sh.stop.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let (g, _) = sh
            .wake
            .wait_timeout(stopped, poll)
            .unwrap_or_else(|e| e.into_inner());
        stopped = g;
        if *stopped {
            return;
        }
        drop(stopped);
        check(sh);
        stopped = sh.stop.lock().unwrap_or_else(|e| e.into_inner());
    }
}

fn check(sh: &Shared) {
    let now = sh.now_ns();
    let last = sh.last_beat.load(Ordering::Acquire);
    let age_ms = now.saturating_sub(last) as f64 / 1e6;
    let stalled = age_ms > sh.period_ms + sh.threshold_ms;
    let mut open = sh.open.lock().unwrap_or_else(|e| e.into_inner());
    match (stalled, open.as_mut()) {
        (false, _) => {
            drop(open);
            // Only while beats still arrive: the first part of a stall, before the
            // threshold, must not move the reference point forward.
            let mut h = sh.cpu_healthy.lock().unwrap_or_else(|e| e.into_inner());
            if h.1 != last {
                *h = (sh.tid.and_then(read_thread_cpu_ms), last);
            }
        }
        (true, None) => {
            let o = Open {
                started_at: sh.epoch_ms(last),
                rss: read_rss(),
                cpu_start: sh.cpu_healthy.lock().unwrap_or_else(|e| e.into_inner()).0,
            };
            if let Some(log) = &sh.log {
                let mut line = String::from("{\"type\":\"stall-begin\",\"time\":");
                log::push_num(&mut line, sh.epoch_ms(now));
                line.push_str(",\"startedAt\":");
                log::push_num(&mut line, o.started_at);
                line.push_str(",\"sinceMs\":");
                log::push_num(&mut line, age_ms - sh.period_ms);
                line.push_str(",\"rss\":");
                log::push_num(&mut line, o.rss.unwrap_or(f64::NAN));
                line.push('}');
                log.line(line);
            }
            *open = Some(o);
        }
        (true, Some(o)) => {
            if let Some(r) = read_rss() {
                o.rss = Some(o.rss.map_or(r, |x| x.max(r)));
            }
        }
    }
}

/// Resident set size, bytes (Linux: `/proc/self/statm`).
pub fn read_rss() -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let s = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: f64 = s.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        (page > 0).then_some(pages * page as f64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// CPU time (user + system) of thread `tid` of this process, ms (Linux).
pub fn read_thread_cpu_ms(tid: i64) -> Option<f64> {
    #[cfg(target_os = "linux")]
    {
        let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at state (field 3);
        // utime and stime are fields 14 and 15.
        let rest = &s[s.rfind(')')? + 2..];
        let mut it = rest.split_whitespace().skip(11);
        let utime: f64 = it.next()?.parse().ok()?;
        let stime: f64 = it.next()?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (hz > 0).then_some((utime + stime) * 1000.0 / hz as f64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = tid;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's CPU time, ms, from the clock (independent of `/proc`).
    fn thread_cpu_ms() -> f64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid out-pointer for the duration of the call.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
    }

    /// Spin until this thread has used `ms` of CPU (wall time varies with the machine's load).
    fn busy(ms: f64) {
        let start = thread_cpu_ms();
        let mut x = 0u64;
        while thread_cpu_ms() - start < ms {
            x = x.wrapping_mul(31).wrapping_add(1);
            std::hint::black_box(x);
        }
    }

    #[test]
    fn a_busy_stall_is_seen_while_it_happens_and_reported_at_the_next_beat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.ndjson");
        let lg = log::Log::open(log::Config::new(&path)).unwrap();
        let w = Watchdog::start(20.0, 100.0, current_tid(), Some(lg.sender().clone())).unwrap();
        for _ in 0..10 {
            assert_eq!(w.beat(), None);
            std::thread::sleep(Duration::from_millis(15));
        }
        busy(400.0);
        let s = w.beat().expect("a stall of ≥ 400 ms");
        assert!(s.observed, "the watchdog saw it during the stall");
        assert!(s.duration_ms >= 350.0, "{s:?}");
        #[cfg(target_os = "linux")]
        {
            assert!(s.rss_bytes.unwrap() > 0.0);
            // The stalled thread was spinning: most of the stall was its CPU.
            assert!(s.cpu_ms.unwrap() >= 300.0, "{s:?}");
        }
        lg.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"stall-begin\""),
            "logged during the stall: {text}"
        );
        assert_eq!(w.beat(), None);
        w.stop();
    }

    #[test]
    fn a_blocked_stall_uses_little_cpu() {
        let w = Watchdog::start(20.0, 100.0, current_tid(), None).unwrap();
        w.beat();
        std::thread::sleep(Duration::from_millis(400));
        let s = w.beat().expect("a 400 ms stall");
        assert!(s.observed);
        #[cfg(target_os = "linux")]
        assert!(s.cpu_ms.unwrap() < 100.0, "{s:?}");
    }

    #[test]
    fn reads_this_threads_cpu() {
        let tid = current_tid();
        if cfg!(target_os = "linux") {
            let a = read_thread_cpu_ms(tid.unwrap()).unwrap();
            busy(200.0);
            let b = read_thread_cpu_ms(tid.unwrap()).unwrap();
            // /proc counts in clock ticks (10 ms): allow one tick at each end.
            assert!(b - a >= 180.0 && b - a <= 400.0, "{a} → {b}");
        }
    }
}
