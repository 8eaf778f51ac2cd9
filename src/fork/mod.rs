//! Fork capture on Linux: the heap snapshot is taken in a forked child, so the parent's
//! event loop pauses only for the fork (FORK.md). Everything here that runs on the JS
//! thread is bounded and small: the `/proc/self/maps` read, the `MADV_DOFORK` pass, the
//! quiet check (a few ms at most per attempt; if the other threads stay busy the attempt
//! returns and JS tries again after an event-loop turn), and `fork()` itself.
//!
//! What the child does, and must never do: it resets the inherited condition variables,
//! closes the pipe's read end and the capture file, points its stdout and stderr at a
//! pipe the watchdog reads (an abort message becomes part of the error, never a line in
//! the server's log), sets `RLIMIT_CORE` to 0 and `RLIMIT_AS` to its address space at the
//! fork plus its memory budget (a snapshot that needs more makes the child's allocations
//! fail: `std::bad_alloc`, abort, the child alone dies), asks to die with its parent, and
//! returns to JS, which calls `v8.writeHeapSnapshot` into the pipe and `_exit`s
//! (`child_exit`). It never turns the event loop, runs no JS exit handlers or Rust
//! destructors, writes to no socket or stdio it inherited, spawns nothing, and takes no
//! lock that a parent thread may have held (the quiet check refuses to fork then).

pub mod condvar;
pub mod maps;
pub mod threads;
pub mod watch;

/// Linux constants, stubbed elsewhere so the module builds on every Unix; fork capture
/// never runs there ([`support`] says why), so the stubs are never used.
pub mod sys {
    #[cfg(target_os = "linux")]
    mod imp {
        pub const MADV_DOFORK: i32 = libc::MADV_DOFORK;
        pub const MADV_DONTFORK: i32 = libc::MADV_DONTFORK;
        #[allow(clippy::unnecessary_cast)] // c_long is i32 on 32-bit targets
        pub const SYS_FUTEX: i64 = libc::SYS_futex as i64;
        #[allow(clippy::unnecessary_cast)]
        pub const SYS_WRITE: i64 = libc::SYS_write as i64;
        #[allow(clippy::unnecessary_cast)]
        pub const SYS_WRITEV: i64 = libc::SYS_writev as i64;
    }
    #[cfg(not(target_os = "linux"))]
    mod imp {
        pub const MADV_DOFORK: i32 = -1;
        pub const MADV_DONTFORK: i32 = -1;
        pub const SYS_FUTEX: i64 = -1;
        pub const SYS_WRITE: i64 = -1;
        pub const SYS_WRITEV: i64 = -1;
    }
    pub use imp::*;
}

use std::time::{Duration, Instant};

use crate::capture::writer::Fault;

/// Whether fork capture can run in this process, or why not.
pub fn support() -> Result<(), String> {
    if !cfg!(target_os = "linux") {
        return Err(format!(
            "fork capture is Linux-only (this is {})",
            std::env::consts::OS
        ));
    }
    condvar::glibc_layout_known(condvar::glibc_version())?;
    if !on_main_thread() {
        return Err(
            "fork capture runs only on the process's main thread, never from a worker".into(),
        );
    }
    Ok(())
}

fn on_main_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and getpid have no preconditions.
        unsafe { libc::gettid() == libc::getpid() }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Read on a worker thread before the first attempt.
#[derive(Debug, Default, Clone)]
pub struct Prepared {
    /// The don't-fork ranges before the first attempt: restored afterwards.
    pub dontfork: Vec<maps::Range>,
    /// The spans one `madvise` each opens on the JS thread ([`maps::open_spans`]).
    pub spans: Vec<maps::Range>,
    pub smaps_ms: f64,
}

pub fn prepare() -> std::io::Result<Prepared> {
    condvar::layout_probe().map_err(std::io::Error::other)?;
    let t = Instant::now();
    let dontfork = maps::dontfork_ranges()?;
    let spans = maps::open_spans(&maps::parse_maps(&std::fs::read_to_string(
        "/proc/self/maps",
    )?));
    Ok(Prepared {
        dontfork,
        spans,
        smaps_ms: t.elapsed().as_secs_f64() * 1e3,
    })
}

/// Timings of one attempt (milliseconds, on the JS thread).
#[derive(Debug, Default, Clone)]
pub struct AttemptTimes {
    pub madvise_ms: f64,
    pub quiet_ms: f64,
    pub fork_ms: f64,
    pub condvars: usize,
    /// `madvise` calls of the opening pass (spans, or mappings in the exact pass).
    pub opened: usize,
    /// Why the exact pass ran instead of the spans (none when the spans did it).
    pub exact_pass: Option<String>,
}

/// The child's memory bound, as set at the fork.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// The memory budget (bytes the child may map beyond its address space at the fork).
    pub budget: u64,
    /// The address space at the fork (`VmSize`), bytes.
    pub vm_at_fork: u64,
    /// `RLIMIT_AS` = `vm_at_fork + budget`.
    pub as_limit: u64,
}

/// `VmSize` (bytes) from /proc/self/status text.
pub fn parse_vm(status: &str, key: &str) -> Option<u64> {
    let l = status.lines().find(|l| l.starts_with(key))?;
    Some(
        l[key.len()..]
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()?
            * 1024,
    )
}

/// The condition variables the child got at the fork: those it resets, and the futex
/// words seen in condvar waits whose condvar it does not (for the watchdog's report).
#[derive(Debug, Clone, Default)]
pub struct CondvarsAtFork {
    pub reset: Vec<usize>,
    pub skipped: Vec<condvar::Skipped>,
}

pub enum Attempt {
    /// Other threads stayed busy for the whole budget.
    Busy { reason: String, times: AttemptTimes },
    /// We are the parent; the child runs. `output` reads the child's stdout and stderr.
    Parent {
        pid: i32,
        times: AttemptTimes,
        output: Option<std::fs::File>,
        limits: Option<Limits>,
        condvars: CondvarsAtFork,
    },
    /// We are the child: take the snapshot and `_exit`.
    Child,
}

/// One attempt: open the heap to the child, wait (up to `budget`) for the other threads
/// to be quiet, fork. `child_close` are descriptors the child must not hold (the pipe's
/// read end, the capture file). `memory_budget`: the child's [`Limits::budget`] (None:
/// no address-space limit).
#[cfg(target_os = "linux")]
pub fn attempt(
    prep: &Prepared,
    budget: Duration,
    child_close: &[i32],
    fault: Option<Fault>,
    memory_budget: Option<u64>,
) -> std::io::Result<Attempt> {
    let mut times = AttemptTimes::default();
    let t = Instant::now();
    let fast = if prep.spans.is_empty() {
        Err("no spans were prepared".to_string())
    } else if fault == Some(Fault::SpansFail) {
        Err("madvise over a span failed: injected (LEAKGUARD_TEST_FAULT)".to_string())
    } else {
        maps::open_spans_advise(&prep.spans).map_err(|errno| {
            format!(
                "madvise over a span failed: {}",
                std::io::Error::from_raw_os_error(errno)
            )
        })
    };
    match fast {
        Ok(n) => times.opened = n,
        Err(why) => {
            let now = maps::parse_maps(&std::fs::read_to_string("/proc/self/maps")?);
            let to_open = maps::ranges_to_open(&now);
            maps::advise(&to_open, crate::fork::sys::MADV_DOFORK);
            times.opened = to_open.len();
            times.exact_pass = Some(why);
        }
    }
    times.madvise_ms = t.elapsed().as_secs_f64() * 1e3;

    let t = Instant::now();
    let (bases, skipped) = loop {
        let scan = threads::scan();
        if scan.busy.is_none() {
            // Only for a candidate that crosses a page boundary (rare): its first page
            // must be readable and writable before it is read here or zeroed in the child.
            let maps = std::cell::OnceCell::new();
            let rw = |b: usize, n: usize| {
                maps::rw_covers(
                    maps.get_or_init(|| {
                        std::fs::read_to_string("/proc/self/maps").unwrap_or_default()
                    }),
                    b,
                    n,
                )
            };
            // SAFETY: every address comes from a futex wait of a live thread of this
            // process: the word's own page is mapped, and `validated` reads a candidate
            // that crosses into the page before only when `rw` says that page is readable.
            break condvar::validated(&scan.cond_waits, |a| unsafe { condvar::read_u32(a) }, rw);
        }
        if t.elapsed() >= budget {
            times.quiet_ms = t.elapsed().as_secs_f64() * 1e3;
            return Ok(Attempt::Busy {
                reason: scan.busy.unwrap_or_default(),
                times,
            });
        }
        std::thread::sleep(Duration::from_micros(300));
    };
    times.quiet_ms = t.elapsed().as_secs_f64() * 1e3;
    times.condvars = bases.len();

    // The child's output pipe and its address-space limit, read an instant before the fork
    // (the child's VmSize at the fork is the parent's now).
    let mut fds = [-1i32; 2];
    // SAFETY: pipe2 fills the two-element array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours; each is owned once from here.
    let (out_r, out_w) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    let limits = match memory_budget {
        Some(b) => {
            let vm = parse_vm(&std::fs::read_to_string("/proc/self/status")?, "VmSize:")
                .ok_or_else(|| std::io::Error::other("no VmSize in /proc/self/status"))?;
            Some(Limits {
                budget: b,
                vm_at_fork: vm,
                as_limit: vm.saturating_add(b),
            })
        }
        None => None,
    };

    let parent = unsafe { libc::getpid() };
    let t = Instant::now();
    // SAFETY: fork in a multi-threaded process: the child only resets condvars, closes
    // descriptors and returns to the single JS thread; the quiet check above ensured no
    // other thread was running or waiting for a lock at the moment of the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        use std::os::fd::AsRawFd;
        let (r, w) = (out_r.as_raw_fd(), out_w.as_raw_fd());
        // The descriptors are closed in child_setup; the Files must not close them again.
        std::mem::forget(out_r);
        std::mem::forget(out_w);
        // SAFETY: we are the freshly forked child, alone; see `child_setup`.
        unsafe { child_setup(parent, &bases, child_close, fault, (r, w), limits) };
        return Ok(Attempt::Child);
    }
    times.fork_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(out_w); // the child holds the only write end: EOF when it is gone
                 // Non-blocking: the watchdog drains it between its looks at the child.
    {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on our own descriptor.
        unsafe {
            let fl = libc::fcntl(out_r.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(out_r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
    Ok(Attempt::Parent {
        pid,
        times,
        output: Some(out_r),
        limits,
        condvars: CondvarsAtFork {
            reset: bases,
            skipped,
        },
    })
}

#[cfg(not(target_os = "linux"))]
pub fn attempt(
    _: &Prepared,
    _: Duration,
    _: &[i32],
    _: Option<Fault>,
    _: Option<u64>,
) -> std::io::Result<Attempt> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "fork capture is Linux-only",
    ))
}

/// # Safety
/// Call only in the child right after `fork()`, before any other code runs.
#[cfg(target_os = "linux")]
unsafe fn child_setup(
    parent: i32,
    condvars: &[usize],
    close: &[i32],
    fault: Option<Fault>,
    (out_r, out_w): (i32, i32),
    limits: Option<Limits>,
) {
    // SAFETY: the bases were validated in the parent an instant before the fork and no
    // other thread exists in the child.
    unsafe { condvar::reset(condvars) };
    IS_FORK_CHILD.store(true, std::sync::atomic::Ordering::SeqCst);
    for &fd in close {
        // SAFETY: closing inherited descriptors the child must not hold.
        unsafe { libc::close(fd) };
    }
    // The server's sockets: a copy held here would keep a closed listener accepting and a
    // destroyed connection without its FIN until the child exits.
    // SAFETY: see `close_sockets`.
    unsafe { close_sockets() };
    // The server's signal handlers: libuv's signal pipe is shared with the parent, so a
    // signal sent to the child (a process-group kill) would run the parent's JS handler.
    // Back to the defaults; SIGPIPE stays ignored so a closed pipe is EPIPE for V8.
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == libc::SIGPIPE {
            continue;
        }
        // SAFETY: resetting a disposition to SIG_DFL; invalid numbers fail harmlessly.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // Be the OOM killer's first choice: if the snapshot's working set does not fit, the
    // child dies, not the server (raising one's own oom_score_adj needs no privilege).
    // SAFETY: a static NUL-terminated path; the descriptor is closed at once.
    unsafe {
        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            libc::write(fd, b"1000".as_ptr().cast(), 4);
            libc::close(fd);
        }
    }
    // stdout and stderr into the watchdog's pipe: whatever the child prints (V8's or the
    // C++ runtime's abort message) is read by the parent, never written to the server's
    // log. dup2 leaves the copies without O_CLOEXEC; the originals are closed.
    // SAFETY: dup2/close on descriptors this process owns.
    unsafe {
        libc::dup2(out_w, 1);
        libc::dup2(out_w, 2);
        libc::close(out_w);
        libc::close(out_r);
    }
    // No core file (an aborting child would write one the size of the server), and the
    // budget: every mapping from here on (malloc, V8's pages) counts against RLIMIT_AS.
    // Last, after the allocations above.
    // SAFETY: setrlimit reads the structs we own.
    unsafe {
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        if let Some(l) = limits {
            let r = libc::rlimit {
                rlim_cur: l.as_limit as libc::rlim_t,
                rlim_max: l.as_limit as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &r) != 0 {
                libc::_exit(72); // unbounded is not an option: the parent reports it
            }
        }
    }
    // SAFETY: prctl/getppid have no memory preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::getppid() != parent {
            libc::_exit(70);
        }
    }
    match fault {
        Some(Fault::ChildHang) => loop {
            // SAFETY: sleeps until a signal (the watchdog's SIGKILL).
            unsafe { libc::pause() };
        },
        Some(Fault::ChildSpin) => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        // SAFETY: abort is always safe to call; it is the point of this fault.
        Some(Fault::ChildCrash) => unsafe { libc::abort() },
        _ => {}
    }
}

/// Set in a fork child: every binding entry point `_exit`s if JS ever reaches one there
/// (the child must never get back to the parent's code paths).
pub static IS_FORK_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// In the child: end at once if anything other than the snapshot path runs.
pub fn exit_if_fork_child() {
    if IS_FORK_CHILD.load(std::sync::atomic::Ordering::SeqCst) {
        child_exit(71);
    }
}

/// Close every socket descriptor. Uses `read_dir` on /proc/self/fd: allocation is safe in
/// a glibc fork child (fork takes the malloc locks), and fork capture runs only on glibc.
///
/// # Safety
/// Only in the fork child, which must not use any of the parent's sockets.
#[cfg(target_os = "linux")]
unsafe fn close_sockets() {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    for fd in fds {
        // SAFETY: fstat into a zeroed struct we own; closing a socket we inherited.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFSOCK {
                libc::close(fd);
            }
        }
    }
}

/// End the child now: no exit handlers, no destructors, no flushing of the parent's
/// stdio buffers.
pub fn child_exit(code: i32) -> ! {
    // SAFETY: _exit never returns and touches nothing of the parent's.
    unsafe { libc::_exit(code) }
}
