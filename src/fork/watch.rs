//! The fork child's watchdog, on the `leakguard-fork-watch` thread: it reaps the child
//! (never a zombie, whatever happens), kills it when it hangs or stops making progress,
//! and restores `MADV_DONTFORK` in the parent once the child is gone.
//!
//! Hang: the child sleeps (no CPU-time increase) for `hang_ms` while not blocked writing
//! into the pipe — a deadlock inherited from the parent (FORK.md §2–3). No progress: no
//! byte through the pipe for `timeout_ms`, CPU or not.
//!
//! It also drains the child's stdout/stderr pipe between looks (at most [`OUTPUT_CAP`]
//! bytes are kept; the rest is read and dropped, so the child never blocks on it), samples
//! the child's `VmHWM`/`VmPeak`, and takes its `ru_maxrss` from `wait4` at the reap. A
//! child that dies near its `RLIMIT_AS`, or says it ran out of memory, ran out of budget
//! ([`ChildReport::out_of_budget`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::io::Read;

use super::maps::{self, Range};
use super::threads::{
    parse_stat_cpu, parse_stat_state, parse_syscall, ThreadState, FUTEX_CMD_MASK, FUTEX_WAIT,
    FUTEX_WAIT_BITSET,
};
use super::{CondvarsAtFork, Limits};
use crate::capture::writer::Progress;

const POLL: Duration = Duration::from_millis(25);
/// The most of the child's output kept for the error message.
pub const OUTPUT_CAP: usize = 8 * 1024;

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
    /// The child's peak RSS, bytes: the larger of `VmHWM` as last sampled and `ru_maxrss`.
    pub peak_rss: u64,
    /// The child's peak address space (`VmPeak`), bytes, as last sampled.
    pub peak_vm: u64,
    pub duration_ms: f64,
    /// What the child printed (stdout and stderr), the first [`OUTPUT_CAP`] bytes.
    pub output: String,
    /// The address-space limit it ran under.
    pub limits: Option<Limits>,
}

/// Words with which V8, Node or the C++ runtime say an allocation failed.
fn says_out_of_memory(text: &str) -> bool {
    [
        "bad_alloc",
        "out of memory",
        "Out of memory",
        "Allocation failed",
        "Cannot allocate memory",
        "allocation failure",
    ]
    .iter()
    .any(|w| text.contains(w))
}

impl ChildReport {
    pub fn ok(&self) -> bool {
        self.fate == Fate::Exited(0)
    }
    pub fn status_unknown(&self) -> bool {
        self.fate == Fate::ReapedElsewhere
    }
    /// It died on its own (not killed by us, not by SIGKILL) under a budget, and either
    /// said an allocation failed or had mapped to within a quarter of its budget (at
    /// least 64 MiB) of the limit: the snapshot needed more than the budget.
    pub fn out_of_budget(&self) -> bool {
        let Some(l) = self.limits else { return false };
        let died = match self.fate {
            Fate::Exited(c) => c != 0 && c != 70 && c != 72,
            Fate::Signaled(s) => s != libc::SIGKILL,
            _ => false,
        };
        let slack = (l.budget / 4).max(64 << 20);
        died && (says_out_of_memory(&self.output)
            || self.peak_vm.saturating_add(slack) >= l.as_limit)
    }
    /// The child's output as one line for a message ("" when it printed nothing).
    pub fn output_line(&self) -> String {
        let t: Vec<&str> = self
            .output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '#'))
            .take(6)
            .collect();
        let mut s = t.join(" | ");
        if s.len() > 600 {
            let mut end = 600;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
            s.push('…');
        }
        s
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
    /// The read end of the child's stdout/stderr pipe (non-blocking).
    pub output: Option<std::fs::File>,
    pub limits: Option<Limits>,
    /// The condvars the child reset, and those it did not (to name the one it hangs on).
    pub condvars: CondvarsAtFork,
}

const MIB: u64 = 1 << 20;

/// `futex(addr, op, val)` from a syscall line, e.g. "futex(0x25b57ff8, FUTEX_WAIT_PRIVATE,
/// 5)"; None for another syscall.
fn futex_call(syscall: &str) -> Option<(usize, String)> {
    let f: Vec<&str> = syscall.split_whitespace().collect();
    if f.first()?.parse::<i64>().ok()? != crate::fork::sys::SYS_FUTEX {
        return None;
    }
    let hex = |i: usize| u64::from_str_radix(f.get(i)?.trim_start_matches("0x"), 16).ok();
    let (addr, op, val) = (hex(1)? as usize, hex(2)?, hex(3)?);
    let name = match op & FUTEX_CMD_MASK {
        FUTEX_WAIT => "FUTEX_WAIT".to_string(),
        FUTEX_WAIT_BITSET => "FUTEX_WAIT_BITSET".to_string(),
        n => format!("futex op {n}"),
    };
    let private = if op & 0x80 != 0 { "_PRIVATE" } else { "" };
    Some((addr, format!("futex({addr:#x}, {name}{private}, {val})")))
}

/// What the watchdog saw of a child it is about to kill as hung: its state and kernel wait
/// channel, the syscall it sleeps in (a futex is decoded and placed against the condvars
/// of the fork), its thread count, and its address space against its limit.
fn hang_report(pid: i32, hang_ms: u64, cfg: &WatchConfig) -> String {
    let stat = read_proc(pid, "stat").unwrap_or_default();
    let state = parse_stat_state(&stat).unwrap_or('?');
    let wchan = read_proc(pid, "wchan")
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty() && w != "0")
        .unwrap_or_else(|| "?".into());
    let sys = read_proc(pid, "syscall").unwrap_or_default();
    let status = read_proc(pid, "status").unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(|t| t.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let mut s = format!("hung: asleep without CPU for {hang_ms} ms (state {state}, in {wchan}");
    match futex_call(&sys) {
        Some((addr, call)) => {
            s += &format!(", {call}, with {threads} thread(s)");
            let inside = |b: usize| addr >= b && addr < b + super::condvar::COND_SIZE;
            if let Some(b) = cfg.condvars.reset.iter().find(|&&b| inside(b)) {
                s += &format!(
                    "; that word is {} bytes into the condition variable at {b:#x}, which the \
                     child reset at the fork",
                    addr - b
                );
            } else if let Some(k) = cfg
                .condvars
                .skipped
                .iter()
                .find(|k| k.base.is_some_and(inside) || k.addr == addr)
            {
                let b = k.base.unwrap_or(k.addr);
                s += &format!(
                    "; that word is {} bytes into {b:#x}, a condition variable the quiet check \
                     saw threads wait on but did not reset ({})",
                    addr.wrapping_sub(b),
                    k.why
                );
            }
        }
        None => {
            let nr = sys.split_whitespace().next().unwrap_or("?");
            s += &format!(", syscall {nr}, with {threads} thread(s)");
        }
    }
    s.push(')');
    let vm = |k: &str| super::parse_vm(&status, k);
    if let (Some(peak), Some(hwm)) = (vm("VmPeak:"), vm("VmHWM:")) {
        match cfg.limits {
            Some(l) => {
                s += &format!(
                    "; address space: VmPeak {} MiB of its {} MiB limit (RLIMIT_AS: {} MiB at \
                     the fork + a {} MiB budget, {} MiB of it used), VmHWM {} MiB",
                    peak / MIB,
                    l.as_limit / MIB,
                    l.vm_at_fork / MIB,
                    l.budget / MIB,
                    peak.saturating_sub(l.vm_at_fork) / MIB,
                    hwm / MIB
                )
            }
            None => s += &format!("; VmPeak {} MiB, VmHWM {} MiB", peak / MIB, hwm / MIB),
        }
    }
    s
}

/// Read what is there now; keep up to [`OUTPUT_CAP`] bytes, drop the rest.
fn drain(src: &mut Option<std::fs::File>, kept: &mut Vec<u8>) {
    let Some(f) = src.as_mut() else { return };
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => {
                *src = None; // EOF: the child and every copy of the write end are gone
                return;
            }
            Ok(n) => {
                let room = OUTPUT_CAP.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return, // WouldBlock: nothing more for now
        }
    }
}

fn read_proc(pid: i32, what: &str) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/{what}")).ok()
}

/// (VmHWM, VmPeak) in bytes.
fn vm_peaks(pid: i32) -> Option<(u64, u64)> {
    let s = read_proc(pid, "status")?;
    Some((
        super::parse_vm(&s, "VmHWM:").unwrap_or(0),
        super::parse_vm(&s, "VmPeak:").unwrap_or(0),
    ))
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

/// Non-blocking reap: Some(fate) once the child is gone; `maxrss` gets its `ru_maxrss`.
#[cfg(unix)]
fn try_reap(pid: i32, blocking: bool, maxrss: &mut u64) -> Option<Fate> {
    let mut status = 0;
    loop {
        // SAFETY: a zeroed rusage we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child; status and rusage are ours.
        let rc = unsafe {
            libc::wait4(
                pid,
                &mut status,
                if blocking { 0 } else { libc::WNOHANG },
                &mut ru,
            )
        };
        if rc == pid {
            *maxrss = ru.ru_maxrss.max(0) as u64 * 1024; // KiB on Linux
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
fn try_reap(_pid: i32, _blocking: bool, _maxrss: &mut u64) -> Option<Fate> {
    Some(Fate::Exited(-1))
}

#[cfg(not(unix))]
fn kill_and_reap(_pid: i32, why: String, _maxrss: &mut u64) -> Fate {
    Fate::Killed(why)
}

#[cfg(unix)]
fn kill_and_reap(pid: i32, why: String, maxrss: &mut u64) -> Fate {
    // SAFETY: SIGKILL to our own unreaped child (its pid cannot be reused before we reap).
    unsafe { libc::kill(pid, libc::SIGKILL) };
    try_reap(pid, true, maxrss);
    Fate::Killed(why)
}

/// One look at the child: does it look hung? Only a child that is asleep (not runnable:
/// a runnable child that got no CPU is starved by load, not deadlocked), used no CPU since
/// the last look and is not blocked writing into the pipe (waiting for us).
fn looks_hung(state: Option<char>, cpu_changed: bool, on_pipe: bool) -> bool {
    !(cpu_changed || on_pipe || state == Some('R'))
}

/// Watch the child until it is gone; blocking (run it on its own thread).
pub fn watch(mut cfg: WatchConfig, progress: Arc<Progress>) -> ChildReport {
    let started = Instant::now();
    let pid = cfg.pid;
    let mut peak = 0u64;
    let mut peak_vm = 0u64;
    let mut maxrss = 0u64;
    let mut output = Vec::new();
    let mut last_cpu: Option<u64> = None;
    let mut still_since = Instant::now();
    let fate = loop {
        drain(&mut cfg.output, &mut output);
        if let Some(f) = try_reap(pid, false, &mut maxrss) {
            break f;
        }
        if let Some((h, v)) = vm_peaks(pid) {
            peak = peak.max(h);
            peak_vm = peak_vm.max(v);
        }
        if progress.is_aborted() {
            break kill_and_reap(pid, "the capture was aborted".into(), &mut maxrss);
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
            let why = hang_report(pid, cfg.hang_ms, &cfg);
            break kill_and_reap(pid, why, &mut maxrss);
        }
        let idle = progress.idle_ms();
        if idle >= cfg.timeout_ms {
            break kill_and_reap(
                pid,
                format!(
                    "no progress through the pipe for {idle} ms (forkTimeoutMs {})",
                    cfg.timeout_ms
                ),
                &mut maxrss,
            );
        }
        std::thread::sleep(POLL);
    };
    maps::advise(&cfg.restore, crate::fork::sys::MADV_DONTFORK);
    // The child is gone: what it wrote last is in the pipe (bounded: stop at EOF, or after
    // a few rounds if a grandchild kept a copy of the write end).
    for _ in 0..64 {
        if cfg.output.is_none() {
            break;
        }
        drain(&mut cfg.output, &mut output);
        if cfg.output.is_some() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    ChildReport {
        pid,
        fate,
        peak_rss: peak.max(maxrss),
        peak_vm,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        output: String::from_utf8_lossy(&output).into_owned(),
        limits: cfg.limits,
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
            output: None,
            limits: None,
            condvars: CondvarsAtFork::default(),
        }
    }

    /// A real child under RLIMIT_AS that maps until the kernel refuses, says so on its
    /// stderr pipe and aborts: out of budget, with its words and peak. One that aborts
    /// without growing or saying anything is a crash, not out of budget.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_that_hits_its_address_space_limit_is_out_of_budget() {
        for grow in [true, false] {
            let mut fds = [0i32; 2];
            // SAFETY: a two-element array we own.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            let vm = crate::fork::parse_vm(
                &std::fs::read_to_string("/proc/self/status").unwrap(),
                "VmSize:",
            )
            .unwrap();
            let budget = 256u64 << 20;
            let limits = Limits {
                budget,
                vm_at_fork: vm,
                as_limit: vm + budget,
            };
            let pid = spawn_child(move || unsafe {
                // Only async-signal-safe calls: dup2, setrlimit, mmap, write, abort.
                libc::dup2(fds[1], 2);
                let r = libc::rlimit {
                    rlim_cur: limits.as_limit,
                    rlim_max: limits.as_limit,
                };
                libc::setrlimit(libc::RLIMIT_AS, &r);
                if grow {
                    loop {
                        let p = libc::mmap(
                            std::ptr::null_mut(),
                            8 << 20,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                            -1,
                            0,
                        );
                        if p == libc::MAP_FAILED {
                            break;
                        }
                        libc::usleep(2000);
                    }
                    let m = b"terminate called after throwing an instance of 'std::bad_alloc'\n";
                    libc::write(2, m.as_ptr().cast(), m.len());
                }
                libc::abort();
            });
            // SAFETY: the parent's copy of the write end; the read end is ours.
            unsafe { libc::close(fds[1]) };
            let out = unsafe {
                use std::os::fd::FromRawFd;
                std::fs::File::from_raw_fd(fds[0])
            };
            let mut c = cfg(pid, 30_000);
            c.output = Some(out);
            c.limits = Some(limits);
            let r = watch(c, Arc::new(Progress::new()));
            assert_eq!(r.fate, Fate::Signaled(libc::SIGABRT));
            assert_eq!(r.out_of_budget(), grow, "{r:?}");
            if grow {
                assert!(r.output.contains("std::bad_alloc"), "{:?}", r.output);
                assert!(r.output_line().starts_with("terminate called"));
            } else {
                assert_eq!(r.output, "");
            }
        }
    }

    /// A child asleep in a futex wait inside a condvar the quiet check did not reset (the
    /// issue #11 hang, in miniature): the kill says what the watchdog saw — the state, the
    /// wait channel, the decoded futex call and its condvar, the address space against the
    /// limit — not only "hung".
    #[cfg(target_os = "linux")]
    #[test]
    fn a_hung_child_is_killed_with_what_the_watchdog_saw() {
        let word = Box::leak(Box::new([0u32; 12])); // 48 bytes: a stand-in condvar
        let base = word.as_ptr() as usize;
        let at = base + 16; // __g_refs[0], where __condvar_quiesce_and_switch_g1 sleeps
        word[4] = 5;
        let pid = spawn_child(move || unsafe {
            // SAFETY: futex wait on our own word; only a signal ends it.
            loop {
                libc::syscall(
                    libc::SYS_futex,
                    at as *const u32,
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    5u32,
                    std::ptr::null::<libc::timespec>(),
                );
            }
        });
        let vm = crate::fork::parse_vm(
            &std::fs::read_to_string("/proc/self/status").unwrap(),
            "VmSize:",
        )
        .unwrap();
        let mut c = cfg(pid, 60_000);
        c.limits = Some(Limits {
            budget: 512 << 20,
            vm_at_fork: vm,
            as_limit: vm + (512 << 20),
        });
        c.condvars.skipped.push(crate::fork::condvar::Skipped {
            addr: base + 40,
            base: Some(base),
            why: "a reason given at the fork".into(),
        });
        let r = watch(c, Arc::new(Progress::new()));
        let Fate::Killed(why) = &r.fate else {
            panic!("{:?}", r.fate)
        };
        assert!(
            why.starts_with("hung: asleep without CPU for 300 ms (state S, in futex"),
            "{why}"
        );
        assert!(
            why.contains(&format!("futex({at:#x}, FUTEX_WAIT_PRIVATE, 5)")),
            "{why}"
        );
        assert!(why.contains("with 1 thread(s)"), "{why}");
        assert!(
            why.contains(&format!("16 bytes into {base:#x}, a condition variable the quiet check saw threads wait on but did not reset (a reason given at the fork)")),
            "{why}"
        );
        assert!(
            why.contains(&format!(
                "MiB limit (RLIMIT_AS: {} MiB at the fork + a 512 MiB budget",
                vm >> 20
            )),
            "{why}"
        );
        assert!(why.contains("VmHWM "), "{why}");
    }

    #[test]
    fn futex_calls_are_decoded() {
        let nr = crate::fork::sys::SYS_FUTEX;
        assert_eq!(
            futex_call(&format!(
                "{nr} 0x25b57ff8 0x80 0x5 0x0 0x25b57fe8 0x1 0x7fff 0x7fbe"
            )),
            Some((
                0x25b57ff8,
                "futex(0x25b57ff8, FUTEX_WAIT_PRIVATE, 5)".into()
            ))
        );
        assert_eq!(
            futex_call(&format!(
                "{nr} 0x1000 0x189 0x0 0x0 0x0 0xffffffff 0x7fff 0x7fbe"
            ))
            .map(|c| c.1),
            Some("futex(0x1000, FUTEX_WAIT_BITSET_PRIVATE, 0)".into())
        );
        assert_eq!(
            futex_call("0 0x14 0x7f 0x10000 0x0 0x0 0x0 0x7ffd 0x7f00"),
            None
        );
        assert_eq!(futex_call("running"), None);
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
