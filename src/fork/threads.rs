//! The quiet check before `fork()`: what every other thread of the process is doing,
//! read from `/proc/self/task/<tid>/{stat,syscall}` (FORK.md §2–3).
//!
//! Runs on the JS thread, right before the fork, within a small budget. A thread that is
//! running, blocked outside a syscall, or waiting for a lock (`FUTEX_WAIT`, or a PI lock)
//! makes the process "busy": a child forked then could inherit a held lock or a
//! half-finished job. Threads asleep in a condition-variable wait (`FUTEX_WAIT_BITSET`)
//! are fine, but the child inherits their waits recorded in the condition variable; their
//! futex addresses are collected here so the child can reset those condition variables
//! (see `condvar`).

use std::collections::BTreeMap;

/// Futex operations (linux/futex.h).
pub(crate) const FUTEX_WAIT: u64 = 0;
pub(crate) const FUTEX_WAIT_BITSET: u64 = 9;
pub(crate) const FUTEX_CMD_MASK: u64 = 0x7f;

/// What one thread is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadState {
    /// Asleep in a condition-variable wait on this futex word.
    CondWait(usize),
    /// Asleep in some other syscall (read, epoll_wait, nanosleep…).
    OtherSyscall(i64),
    /// Waiting for a lock: forking now could leave the child a lock nobody releases.
    LockWait,
    /// Running, or blocked outside a syscall.
    Busy(String),
}

/// Parse `/proc/<pid>/task/<tid>/syscall`: "running", "-1 sp pc", or "nr a0 a1 … sp pc".
pub fn parse_syscall(text: &str) -> ThreadState {
    let t = text.trim();
    if t == "running" {
        return ThreadState::Busy("running".into());
    }
    let mut it = t.split_whitespace();
    let nr: i64 = match it.next().and_then(|s| s.parse().ok()) {
        Some(n) => n,
        None => return ThreadState::Busy(format!("unreadable syscall line {t:?}")),
    };
    if nr < 0 {
        return ThreadState::Busy("blocked outside a syscall".into());
    }
    let args: Vec<u64> = it
        .take(6)
        .filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok())
        .collect();
    if nr == crate::fork::sys::SYS_FUTEX && args.len() >= 2 {
        return match args[1] & FUTEX_CMD_MASK {
            FUTEX_WAIT_BITSET => ThreadState::CondWait(args[0] as usize),
            FUTEX_WAIT => ThreadState::LockWait,
            _ => ThreadState::LockWait, // PI locks, requeue: treat as lock waits
        };
    }
    ThreadState::OtherSyscall(nr)
}

/// The state letter from `/proc/<pid>/task/<tid>/stat` (after the last ')').
pub fn parse_stat_state(text: &str) -> Option<char> {
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// utime + stime (clock ticks) from a stat line.
pub fn parse_stat_cpu(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state(0) ppid(1) … utime(11) stime(12).
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// mmap, munmap, mprotect, madvise, brk, mremap: allocators call these holding their
/// locks, so a thread inside one is not quiet.
#[cfg(target_os = "linux")]
#[allow(clippy::unnecessary_cast)] // c_long is i32 on 32-bit targets
fn is_mm_syscall(nr: i64) -> bool {
    [
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_mremap,
    ]
    .iter()
    .any(|&n| n as i64 == nr)
}

/// The result of one scan.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Scan {
    /// Futex word address → number of threads waiting on it in a condvar wait.
    pub cond_waits: BTreeMap<usize, usize>,
    /// Why the process is not quiet, if it is not.
    pub busy: Option<String>,
    pub threads: usize,
}

/// Scan every thread but the calling one.
#[cfg(target_os = "linux")]
pub fn scan() -> Scan {
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let mut s = Scan::default();
    let rd = match std::fs::read_dir("/proc/self/task") {
        Ok(rd) => rd,
        Err(e) => {
            s.busy = Some(format!("cannot read /proc/self/task: {e}"));
            return s;
        }
    };
    for de in rd.flatten() {
        let Some(tid) = de.file_name().to_str().and_then(|t| t.parse::<i32>().ok()) else {
            continue;
        };
        if tid == me {
            continue;
        }
        s.threads += 1;
        let dir = de.path();
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        let comm = stat
            .split_once('(')
            .and_then(|(_, r)| r.rsplit_once(')'))
            .map(|(c, _)| c.to_string())
            .unwrap_or_default();
        match parse_stat_state(&stat) {
            // D (uninterruptible, often inside the kernel on behalf of an allocator) counts
            // as busy: it may hold locks the child would need.
            Some('S') | Some('I') => {}
            None if stat.is_empty() => continue, // exited meanwhile
            other => {
                s.busy.get_or_insert(format!(
                    "thread {tid} ({comm}) is running (state {other:?})"
                ));
                continue;
            }
        }
        let sys = match std::fs::read_to_string(dir.join("syscall")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                s.busy
                    .get_or_insert(format!("cannot read thread {tid}'s syscall: {e}"));
                continue;
            }
        };
        match parse_syscall(&sys) {
            ThreadState::CondWait(addr) => *s.cond_waits.entry(addr).or_default() += 1,
            ThreadState::OtherSyscall(nr) if is_mm_syscall(nr) => {
                s.busy.get_or_insert(format!(
                    "thread {tid} ({comm}) is changing memory mappings (syscall {nr})"
                ));
            }
            ThreadState::OtherSyscall(_) => {}
            ThreadState::LockWait => {
                s.busy
                    .get_or_insert(format!("thread {tid} ({comm}) waits for a lock"));
            }
            ThreadState::Busy(why) => {
                s.busy
                    .get_or_insert(format!("thread {tid} ({comm}): {why}"));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn syscall_lines_classify() {
        assert_eq!(
            parse_syscall("running\n"),
            ThreadState::Busy("running".into())
        );
        assert!(matches!(
            parse_syscall("-1 0x7ffd 0x7f00\n"),
            ThreadState::Busy(_)
        ));
        // pthread_cond_wait: futex(addr, FUTEX_WAIT_BITSET|FUTEX_PRIVATE_FLAG, …)
        assert_eq!(
            parse_syscall("202 0x55d0c8a3c6a8 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd 0x7f00\n"),
            ThreadState::CondWait(0x55d0c8a3c6a8)
        );
        // a mutex: futex(addr, FUTEX_WAIT|FUTEX_PRIVATE_FLAG, 2, NULL)
        assert_eq!(
            parse_syscall("202 0x55d0c8a3c6a8 0x80 0x2 0x0 0x0 0x0 0x7ffd 0x7f00\n"),
            ThreadState::LockWait
        );
        assert_eq!(
            parse_syscall("0 0x14 0x7f 0x10000 0x0 0x0 0x0 0x7ffd 0x7f00\n"),
            ThreadState::OtherSyscall(0)
        );
    }

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let st = "1234 (node (worker) x) S 1 2 3 4 5 6 7 8 9 10 17 5 0 0 20 0 11 0";
        assert_eq!(parse_stat_state(st), Some('S'));
        assert_eq!(parse_stat_cpu(st), Some(22));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_thread_in_a_condvar_wait_is_seen_with_its_address() {
        use std::sync::{Arc, Condvar, Mutex};
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let h = std::thread::spawn(move || {
            let (m, c) = &*p2;
            let mut g = m.lock().unwrap();
            while !*g {
                g = c.wait(g).unwrap();
            }
        });
        // Give it time to block; bounded.
        let mut seen = false;
        for _ in 0..200 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            let s = scan();
            // Rust's Condvar is futex-based (FUTEX_WAIT_BITSET on Linux): seen as a cond wait.
            if !s.cond_waits.is_empty() {
                seen = true;
                break;
            }
        }
        *pair.0.lock().unwrap() = true;
        pair.1.notify_all();
        h.join().unwrap();
        assert!(
            seen,
            "the waiting thread was classified as a condition-variable wait"
        );
    }
}
