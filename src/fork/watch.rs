//! The fork child's watchdog, on the `leakguard-fork-watch` thread: it reaps the child
//! (never a zombie, whatever happens), kills it when it hangs or stops making progress,
//! and restores `MADV_DONTFORK` in the parent once the child is gone.
//!
//! Hang: the child sleeps (no CPU-time increase) for `hang_ms` while not blocked writing
//! into the pipe — a deadlock inherited from the parent (FORK.md §2–3). No progress: no
//! byte through the pipe for `timeout_ms`, CPU or not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::maps::{self, Range};
use super::threads::{parse_stat_cpu, parse_stat_state, parse_syscall, ThreadState};
use crate::capture::writer::Progress;

const POLL: Duration = Duration::from_millis(25);

/// How the child ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Exited(i32),
    Signaled(i32),
    /// We killed it; why.
    Killed(String),
    /// Gone, but reaped by someone else (`waitpid` said ECHILD): its status is unknown, so
    /// only the stream it wrote can say whether the snapshot is whole.
    ReapedElsewhere,
}

#[derive(Debug, Clone)]
pub struct ChildReport {
    pub pid: i32,
    pub fate: Fate,
    /// The child's peak RSS (VmHWM), bytes, as last read.
    pub peak_rss: u64,
    pub duration_ms: f64,
}

impl ChildReport {
    pub fn ok(&self) -> bool {
        self.fate == Fate::Exited(0)
    }
    pub fn status_unknown(&self) -> bool {
        self.fate == Fate::ReapedElsewhere
    }
    pub fn describe(&self) -> String {
        match &self.fate {
            Fate::Exited(0) => "the fork child finished".into(),
            Fate::Exited(c) => format!("the fork child exited with code {c}"),
            Fate::Signaled(9) => {
                "the fork child was killed by SIGKILL, most likely by the kernel's OOM killer \
                                   (the snapshot's working set did not fit)"
                    .into()
            }
            Fate::Signaled(s) => format!("the fork child died of signal {s}"),
            Fate::Killed(why) => format!("the fork child was killed: {why}"),
            Fate::ReapedElsewhere => "the fork child was reaped elsewhere in this process \
                                      (another waitpid, or SIGCHLD ignored): its exit status \
                                      is unknown"
                .into(),
        }
    }
}

pub struct WatchConfig {
    pub pid: i32,
    pub timeout_ms: u64,
    pub hang_ms: u64,
    pub restore: Vec<Range>,
}

fn read_proc(pid: i32, what: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{what}")).ok()
}

fn vm_hwm(pid: i32) -> Option<u64> {
    let s = read_proc(pid, "status")?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(l.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// A child blocked writing into the pipe waits for us, not for a lock.
fn blocked_on_pipe(syscall: &str) -> bool {
    match parse_syscall(syscall) {
        ThreadState::OtherSyscall(nr) => {
            nr == crate::fork::sys::SYS_WRITE || nr == crate::fork::sys::SYS_WRITEV
        }
        _ => false,
    }
}

/// Non-blocking reap: Some(fate) once the child is gone.
#[cfg(unix)]
fn try_reap(pid: i32, blocking: bool) -> Option<Fate> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid on our own child; status is ours.
        let rc =
            unsafe { libc::waitpid(pid, &mut status, if blocking { 0 } else { libc::WNOHANG }) };
        if rc == pid {
            return Some(if libc::WIFEXITED(status) {
                Fate::Exited(libc::WEXITSTATUS(status))
            } else {
                Fate::Signaled(libc::WTERMSIG(status))
            });
        }
        if rc == 0 {
            return None;
        }
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // ECHILD: someone else reaped it (a waitpid(-1) elsewhere, SIGCHLD ignored).
        return Some(Fate::ReapedElsewhere);
    }
}

#[cfg(not(unix))]
fn try_reap(_pid: i32, _blocking: bool) -> Option<Fate> {
    Some(Fate::Exited(-1))
}

#[cfg(not(unix))]
fn kill_and_reap(_pid: i32, why: String) -> Fate {
    Fate::Killed(why)
}

#[cfg(unix)]
fn kill_and_reap(pid: i32, why: String) -> Fate {
    // SAFETY: SIGKILL to our own unreaped child (its pid cannot be reused before we reap).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    try_reap(pid, true);
    Fate::Killed(why)
}

/// One look at the child: does it look hung? Only a child that is asleep (not runnable:
/// a runnable child that got no CPU is starved by load, not deadlocked), used no CPU since
/// the last look and is not blocked writing into the pipe (waiting for us).
fn looks_hung(state: Option<char>, cpu_changed: bool, on_pipe: bool) -> bool {
    !(cpu_changed || on_pipe || state == Some('R'))
}

/// Watch the child until it is gone; blocking (run it on its own thread).
pub fn watch(cfg: WatchConfig, progress: Arc<Progress>) -> ChildReport {
    let started = Instant::now();
    let pid = cfg.pid;
    let mut peak = 0u64;
    let mut last_cpu: Option<u64> = None;
    let mut still_since = Instant::now();
    let fate = loop {
        if let Some(f) = try_reap(pid, false) {
            break f;
        }
        if let Some(h) = vm_hwm(pid) {
            peak = peak.max(h);
        }
        if progress.is_aborted() {
            break kill_and_reap(pid, "the capture was aborted".into());
        }
        let stat = read_proc(pid, "stat");
        let cpu = stat.as_deref().and_then(parse_stat_cpu);
        let state = stat.as_deref().and_then(parse_stat_state);
        let on_pipe = read_proc(pid, "syscall")
            .as_deref()
            .map(blocked_on_pipe)
            .unwrap_or(false);
        if !looks_hung(state, cpu != last_cpu, on_pipe) {
            last_cpu = cpu;
            still_since = Instant::now();
        } else if still_since.elapsed().as_millis() as u64 >= cfg.hang_ms {
            let sys = read_proc(pid, "syscall").unwrap_or_default();
            let nr = sys.split_whitespace().next().unwrap_or("?").to_string();
            break kill_and_reap(
                pid,
                format!(
                    "hung: asleep (state {}, syscall {nr}) without CPU for {} ms",
                    state.unwrap_or('?'),
                    cfg.hang_ms
                ),
            );
        }
        let idle = progress.idle_ms();
        if idle >= cfg.timeout_ms {
            break kill_and_reap(
                pid,
                format!(
                    "no progress through the pipe for {idle} ms (forkTimeoutMs {})",
                    cfg.timeout_ms
                ),
            );
        }
        std::thread::sleep(POLL);
    };
    maps::advise(&cfg.restore, crate::fork::sys::MADV_DONTFORK);
    ChildReport {
        pid,
        fate,
        peak_rss: peak,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn spawn_child(f: impl FnOnce()) -> i32 {
        // SAFETY: the test harness is multi-threaded, so the child only calls
        // async-signal-safe functions (pause, _exit, a spin) before it ends.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            f();
            unsafe { libc::_exit(0) };
        }
        pid
    }

    fn cfg(pid: i32, timeout_ms: u64) -> WatchConfig {
        WatchConfig {
            pid,
            timeout_ms,
            hang_ms: 300,
            restore: vec![],
        }
    }

    #[test]
    fn a_child_that_exits_is_reaped_with_its_code() {
        let pid = spawn_child(|| unsafe { libc::_exit(7) });
        let r = watch(cfg(pid, 10_000), Arc::new(Progress::new()));
        assert_eq!(r.fate, Fate::Exited(7));
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "no zombie"
        );
    }

    #[test]
    fn a_child_reaped_by_someone_else_is_gone_with_an_unknown_status() {
        let pid = spawn_child(|| unsafe { libc::_exit(0) });
        // Another waiter in the process (a library's waitpid) takes it first.
        // SAFETY: our own child.
        assert_eq!(unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) }, pid);
        let r = watch(cfg(pid, 10_000), Arc::new(Progress::new()));
        assert_eq!(r.fate, Fate::ReapedElsewhere);
        assert!(!r.ok() && r.status_unknown());
        assert!(r.describe().contains("reaped elsewhere"));
    }

    #[test]
    fn a_sleeping_child_is_detected_as_hung_and_killed() {
        let pid = spawn_child(|| loop {
            unsafe { libc::pause() };
        });
        let r = watch(cfg(pid, 60_000), Arc::new(Progress::new()));
        assert!(
            matches!(&r.fate, Fate::Killed(w) if w.starts_with("hung")),
            "{:?}",
            r.fate
        );
        assert!(r.duration_ms < 30_000.0);
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "no zombie"
        );
    }

    #[test]
    fn only_an_asleep_child_without_cpu_looks_hung() {
        assert!(looks_hung(Some('S'), false, false));
        assert!(looks_hung(Some('D'), false, false));
        assert!(!looks_hung(Some('S'), true, false), "it used CPU");
        assert!(
            !looks_hung(Some('S'), false, true),
            "blocked on the pipe: waiting for us"
        );
        assert!(
            !looks_hung(Some('R'), false, false),
            "runnable: starved, not hung"
        );
    }

    /// Guards the hang rule against CPU starvation: a child that is runnable but gets no
    /// CPU (a SCHED_IDLE spinner sharing one CPU with a normal-priority hog, as a fork
    /// child on a saturated machine or in a throttled container) is not "hung"; only the
    /// progress timeout may end it.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_starved_runnable_child_is_not_taken_for_hung() {
        // SAFETY: a zeroed cpu_set_t we own, CPU 0 set.
        let one_cpu = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            set
        };
        let spin = || {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        };
        let hog = spawn_child(move || {
            // SAFETY: pinning ourselves to CPU 0.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&one_cpu), &one_cpu) };
            spin()
        });
        let pid = spawn_child(move || {
            // SAFETY: pinning ourselves to CPU 0 and lowering our own policy to SCHED_IDLE
            // (no privilege needed); the param struct is ours.
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of_val(&one_cpu), &one_cpu);
                let p = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_IDLE, &p);
            }
            spin()
        });
        let r = watch(cfg(pid, 1500), Arc::new(Progress::new()));
        // SAFETY: our own child.
        unsafe {
            libc::kill(hog, libc::SIGKILL);
            libc::waitpid(hog, std::ptr::null_mut(), 0);
        }
        assert!(
            matches!(&r.fate, Fate::Killed(w) if w.starts_with("no progress")),
            "{:?}",
            r.fate
        );
    }

    #[test]
    fn a_spinning_child_without_progress_times_out() {
        let pid = spawn_child(|| {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
        let r = watch(cfg(pid, 400), Arc::new(Progress::new()));
        assert!(
            matches!(&r.fate, Fate::Killed(w) if w.starts_with("no progress")),
            "{:?}",
            r.fate
        );
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "no zombie"
        );
    }
}
