//! A process's own memory ceiling: `RLIMIT_AS` set to its current address space plus a
//! budget, so that an analysis child (the CLI run by `watch()`'s analysis, see
//! `lib/analysis-child.js`) fails alone — an allocation fails and the process aborts —
//! instead of growing into the server's memory.
//!
//! Why "current address space plus a budget" and not a fixed number: a Node process has
//! reserved hundreds of MiB of address space before it runs a line of user code (V8's
//! code range, thread stacks, the libc arenas), most of it never touched. A limit taken
//! from the process's own `VmSize` when the analysis starts bounds what the analysis adds,
//! which is what the budget is about. The same rule bounds a fork capture's child.
//!
//! Invariants: the limit only ever goes down (soft and hard alike; a lowered hard limit
//! cannot be raised again by an unprivileged process); on platforms without
//! `/proc/self/status` the call reports `Unsupported` and changes nothing.
//!
//! Runs on the JS thread of the process that limits itself, once, at start-up.

use crate::error::{Code, Error, Result};

/// The process's address space now, in bytes (`VmSize` of `/proc/self/status`).
pub fn address_space_now() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_size(&status)
}

fn parse_vm_size(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// What [`limit_address_space`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The process's address space when the limit was set, bytes.
    pub base: u64,
    /// The limit now in force (`RLIMIT_AS`, soft and hard), bytes.
    pub limit: u64,
}

/// Lower `RLIMIT_AS` to the current address space plus `budget` bytes, never raising a
/// lower limit already in force. Errors: `OptionsInvalid` when this platform has no way
/// to read the address space or set the limit.
pub fn limit_address_space(budget: u64) -> Result<Limit> {
    let base = address_space_now().ok_or_else(|| {
        Error::new(
            Code::OptionsInvalid,
            "leakguard: a memory limit needs Linux (/proc/self/status and RLIMIT_AS)",
        )
    })?;
    let wanted = base.saturating_add(budget);
    let limit = set_limit(wanted)?;
    one_malloc_arena();
    Ok(Limit { base, limit })
}

/// glibc gives each new thread its own malloc arena, each reserving 64 MiB of address
/// space it may never touch: under `RLIMIT_AS` the analysis's three threads then needed
/// ~384 MiB of limit for ~80 MiB of RSS (a 465k-node snapshot, measured), one arena 96 MiB.
/// With one arena the limit bounds what is used, not what is reserved.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    // SAFETY: mallopt only changes the allocator's tuning; M_ARENA_MAX is a glibc option.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

#[cfg(target_os = "linux")]
fn set_limit(wanted: u64) -> Result<u64> {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `cur` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut cur) } != 0 {
        return Err(os_error("getrlimit"));
    }
    let limit = wanted.min(cur.rlim_cur).min(cur.rlim_max);
    let new = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: limit as libc::rlim_t,
    };
    // SAFETY: `new` is a valid rlimit; lowering one's own limits needs no privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &new) } != 0 {
        return Err(os_error("setrlimit"));
    }
    Ok(limit)
}

#[cfg(not(target_os = "linux"))]
fn set_limit(_wanted: u64) -> Result<u64> {
    Err(Error::new(
        Code::OptionsInvalid,
        "leakguard: a memory limit needs Linux (RLIMIT_AS)",
    ))
}

#[cfg(target_os = "linux")]
fn os_error(call: &str) -> Error {
    Error::new(
        Code::OptionsInvalid,
        format!(
            "leakguard: could not set the memory limit ({call}: {})",
            std::io::Error::last_os_error()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_size_in_bytes() {
        let s = "Name:\tnode\nVmPeak:\t 1000 kB\nVmSize:\t  2048 kB\nVmRSS:\t 10 kB\n";
        assert_eq!(parse_vm_size(s), Some(2048 * 1024));
        assert_eq!(parse_vm_size("Name:\tx\n"), None);
        assert_eq!(parse_vm_size("VmSize:\tlots kB\n"), None);
    }

    /// The child half of the test below: runs only when re-executed with the variable set.
    #[cfg(target_os = "linux")]
    #[test]
    fn limited_child_body() {
        if std::env::var_os("LEAKGUARD_RLIMIT_CHILD").is_none() {
            return;
        }
        let l = limit_address_space(64 << 20).expect("limit");
        assert!(l.limit <= l.base + (64 << 20));
        // 256 MiB cannot fit in a 64 MiB budget: try_reserve fails (not an abort).
        let mut big: Vec<u8> = Vec::new();
        assert!(
            big.try_reserve_exact(256 << 20).is_err(),
            "256 MiB fit under a 64 MiB budget"
        );
        let mut small: Vec<u8> = Vec::new();
        assert!(
            small.try_reserve_exact(8 << 20).is_ok(),
            "8 MiB did not fit"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_limited_process_cannot_allocate_past_its_budget() {
        // In a fresh process (this test binary, re-executed), so the harness keeps its limits.
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "rlimit::tests::limited_child_body",
                "--test-threads=1",
            ])
            .env("LEAKGUARD_RLIMIT_CHILD", "1")
            .output()
            .expect("re-exec the test binary");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {text}");
        assert!(text.contains("1 passed"), "child ran no test: {text}");
    }
}
