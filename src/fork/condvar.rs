//! Condition variables inherited mid-wait (FORK.md §3): the child gets a copy of every
//! `pthread_cond_t` with the parent's waiters recorded in it; its first signal on one
//! waits for ever for waiters that do not exist in the child. The child resets those
//! condition variables to their initial state (all zero) before running any JS.
//!
//! This depends on glibc's private layout, so it is guarded three ways: the C library
//! and version are checked at run time ([`glibc_layout_known`]); a candidate is reset only
//! if its `__wrefs` count matches the number of threads seen waiting on it; and the
//! watchdog kills and falls back on anything not foreseen.
//!
//! glibc 2.25–2.40 `struct __pthread_cond_s` (48 bytes, 8-byte aligned):
//! `__wseq`@0, `__g1_start`@8, `__g_refs[2]`@16, `__g_size[2]`@24, `__g1_orig_size`@32,
//! `__wrefs`@36, `__g_signals[2]`@40 and @44. A waiter sleeps on `&__g_signals[g]`; the
//! number of waiters is `__wrefs >> 3`.

use std::collections::BTreeMap;

pub const COND_SIZE: usize = 48;
const G_REFS_OFFSET: usize = 16;
const WREFS_OFFSET: usize = 36;
const SIGNALS_OFFSET: usize = 40;
const PAGE: usize = 4096;

/// glibc versions whose condvar layout is the one above. 2.25 introduced it; 2.41
/// reworked the condvar internals, so newer versions are not assumed (inline instead).
pub const GLIBC_MIN: (u32, u32) = (2, 25);
pub const GLIBC_MAX: (u32, u32) = (2, 40);

/// The running C library's version if it is glibc, as (major, minor).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn glibc_version() -> Option<(u32, u32)> {
    extern "C" {
        fn gnu_get_libc_version() -> *const libc::c_char;
    }
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let s = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) }
        .to_str()
        .ok()?;
    parse_version(s)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn glibc_version() -> Option<(u32, u32)> {
    None
}

pub fn parse_version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split('.');
    let lead = |p: &str| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .ok()
    };
    Some((lead(it.next()?)?, lead(it.next()?)?))
}

pub fn glibc_layout_known(v: Option<(u32, u32)>) -> Result<(u32, u32), String> {
    match v {
        None => Err(
            "the C library is not glibc (fork capture needs glibc's known condvar layout)".into(),
        ),
        Some(v) if v < GLIBC_MIN || v > GLIBC_MAX => Err(format!(
            "glibc {}.{} is outside the versions whose condvar layout is known ({}.{}–{}.{})",
            v.0, v.1, GLIBC_MIN.0, GLIBC_MIN.1, GLIBC_MAX.0, GLIBC_MAX.1
        )),
        Some(v) => Ok(v),
    }
}

/// The condvar that a futex word at `addr` belongs to, by alignment: `__g_signals[0]` is
/// 8-aligned (40 bytes in), `__g_signals[1]` is 4 mod 8 (44 bytes in).
pub fn cond_base(addr: usize) -> Option<usize> {
    match addr % 8 {
        0 => addr.checked_sub(SIGNALS_OFFSET),
        4 => addr.checked_sub(SIGNALS_OFFSET + 4),
        _ => None,
    }
}

/// A futex word seen in a condition-variable wait whose condvar is not reset in the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The futex word threads wait on.
    pub addr: usize,
    /// Where its condvar would start (None: misaligned, not a condvar word).
    pub base: Option<usize>,
    pub why: String,
}

/// From the futex words threads wait on (address → waiter count), the condvars that
/// pass two checks of glibc's bookkeeping: `__wrefs >> 3` equals all the waiters seen on
/// the condvar, and `__g_refs[g] >> 1` equals the waiters seen on group g's word (each
/// waiter holds a reference to its group while it sleeps). `read_u32` reads the u32 at an
/// address. A candidate whose 48 bytes cross a page boundary is read only if
/// `spans_writable(base, 48)` says all of them are in readable and writable mappings: the
/// futex word's own page is mapped (a thread sleeps on it), the page before may not be.
/// Such a candidate is not skipped for crossing alone: malloc places a condvar wherever it
/// falls, and one skipped for that reason is a condvar the child inherits with its waiters
/// (the 4 GiB strings hang, issue #11: Node's platform task queue at page offset 4072).
/// Returns (validated bases, the others and why).
pub fn validated<F: Fn(usize) -> u32, G: Fn(usize, usize) -> bool>(
    cond_waits: &BTreeMap<usize, usize>,
    read_u32: F,
    spans_writable: G,
) -> (Vec<usize>, Vec<Skipped>) {
    let mut per_base: BTreeMap<usize, [usize; 2]> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (&addr, &n) in cond_waits {
        match cond_base(addr) {
            Some(b) if b / PAGE == (b + COND_SIZE - 1) / PAGE || spans_writable(b, COND_SIZE) => {
                let g = (addr - b - SIGNALS_OFFSET) / 4;
                per_base.entry(b).or_default()[g] += n;
            }
            Some(b) => skipped.push(Skipped {
                addr,
                base: Some(b),
                why: "its 48 bytes would cross into a page that is not readable and writable"
                    .into(),
            }),
            None => skipped.push(Skipped {
                addr,
                base: None,
                why: "misaligned".into(),
            }),
        }
    }
    let mut ok = Vec::new();
    for (base, per_g) in per_base {
        let total = per_g[0] + per_g[1];
        let wrefs = read_u32(base + WREFS_OFFSET);
        let refs_ok =
            (0..2).all(|g| (read_u32(base + G_REFS_OFFSET + 4 * g) >> 1) as usize == per_g[g]);
        if (wrefs >> 3) as usize == total && refs_ok {
            ok.push(base);
        } else {
            let addr = base + SIGNALS_OFFSET + if per_g[0] > 0 { 0 } else { 4 };
            skipped.push(Skipped {
                addr,
                base: Some(base),
                why: format!(
                    "__wrefs>>3 = {}, {total} waiters seen; group refs agree: {refs_ok}",
                    wrefs >> 3
                ),
            });
        }
    }
    (ok, skipped)
}

/// Run-time check of the layout on this machine (distributions backport condvar changes
/// without changing the version): a real `pthread_cond_wait` on a known condvar must be
/// found and validated. Runs once (a thread, ~ms); cached.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn layout_probe() -> Result<(), String> {
    static RESULT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    RESULT.get_or_init(probe_once).clone()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn probe_once() -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, Ordering};
    struct Shared {
        m: std::cell::UnsafeCell<libc::pthread_mutex_t>,
        c: std::cell::UnsafeCell<libc::pthread_cond_t>,
        go: AtomicBool,
    }
    // SAFETY: the pthread objects are only used through the pthread API, which is
    // thread-safe; `go` is atomic.
    unsafe impl Sync for Shared {}
    let s: &'static Shared = Box::leak(Box::new(Shared {
        m: std::cell::UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
        c: std::cell::UnsafeCell::new(libc::PTHREAD_COND_INITIALIZER),
        go: AtomicBool::new(false),
    }));
    let h = std::thread::Builder::new()
        .name("leakguard-probe".into())
        // SAFETY: a standard mutex/condvar wait loop on objects that live for ever.
        .spawn(move || unsafe {
            libc::pthread_mutex_lock(s.m.get());
            while !s.go.load(Ordering::SeqCst) {
                libc::pthread_cond_wait(s.c.get(), s.m.get());
            }
            libc::pthread_mutex_unlock(s.m.get());
        })
        .map_err(|e| format!("cannot start the layout probe: {e}"))?;
    let base = s.c.get() as usize;
    let mut found = false;
    for _ in 0..200 {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let scan = super::threads::scan();
        if scan.cond_waits.keys().any(|&a| cond_base(a) == Some(base)) {
            // SAFETY: addresses inside live condvars of this process.
            let (ok, _) = validated(&scan.cond_waits, |a| unsafe { read_u32(a) }, |_, _| false);
            found = ok.contains(&base);
            break;
        }
    }
    // SAFETY: wake the waiter and let it finish.
    unsafe {
        libc::pthread_mutex_lock(s.m.get());
        s.go.store(true, Ordering::SeqCst);
        libc::pthread_cond_broadcast(s.c.get());
        libc::pthread_mutex_unlock(s.m.get());
    }
    let _ = h.join();
    if found {
        Ok(())
    } else {
        Err(
            "this C library's condition variables do not have the layout fork capture resets"
                .into(),
        )
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn layout_probe() -> Result<(), String> {
    Err("fork capture needs glibc on Linux".into())
}

/// In the child, right after fork: zero each condvar.
///
/// # Safety
/// Each base must be the address of a live `pthread_cond_t` in this process (validated
/// by [`validated`] in the parent just before the fork), and no thread may be using it:
/// true in a freshly forked child, which has only the forking thread.
pub unsafe fn reset(bases: &[usize]) {
    for &b in bases {
        // SAFETY: per the function contract, b..b+48 is a pthread_cond_t we may write.
        unsafe { std::ptr::write_bytes(b as *mut u8, 0, COND_SIZE) };
    }
}

/// Read a u32 from our own address space (a condvar's `__wrefs` in the parent).
///
/// # Safety
/// `addr` must be a readable, 4-aligned address in this process.
pub unsafe fn read_u32(addr: usize) -> u32 {
    // SAFETY: per the contract; volatile, since other threads may change it.
    unsafe { std::ptr::read_volatile(addr as *const u32) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_layout_guard() {
        assert_eq!(parse_version("2.36"), Some((2, 36)));
        assert_eq!(parse_version("2.31-0ubuntu9"), Some((2, 31)));
        assert!(glibc_layout_known(Some((2, 36))).is_ok());
        assert!(glibc_layout_known(Some((2, 24))).is_err());
        assert!(glibc_layout_known(Some((2, 41))).is_err());
        assert!(glibc_layout_known(None).is_err());
    }

    #[test]
    fn bases_follow_alignment_and_wrefs_must_agree() {
        assert_eq!(cond_base(0x1000 + 40), Some(0x1000));
        assert_eq!(cond_base(0x1000 + 44), Some(0x1000));
        assert_eq!(cond_base(0x1002), None);
        let mut waits = BTreeMap::new();
        waits.insert(0x1000 + 40, 3); // three on g_signals[0]
        waits.insert(0x1000 + 44, 1); // one on g_signals[1] of the same condvar
        waits.insert(0x2000 + 40, 1); // a semaphore-like word: __wrefs says 0
        waits.insert(0x3000 + 40, 2); // wrefs agrees by chance, group refs do not
        waits.insert(0x7000 - 8 + 40, 1); // would start on a page that is not ours
        waits.insert(0x5000 - 24 + 40, 2); // a condvar at page offset 4072, both pages ours
        let mem = |a: usize| match a {
            a if a == 0x1000 + 36 => 4 << 3 | 1, // __wrefs: 4 waiters, a flag bit
            a if a == 0x1000 + 16 => 3 << 1,     // __g_refs[0]
            a if a == 0x1000 + 20 => 1 << 1,     // __g_refs[1]
            a if a == 0x3000 + 36 => 2 << 3,
            a if a == 0x5000 - 24 + 36 => 2 << 3, // __wrefs on the second page
            a if a == 0x5000 - 24 + 16 => 2 << 1, // __g_refs[0] on the first
            _ => 0,
        };
        // Readable and writable: 0x4000..0x6000 (the straddling condvar's two pages).
        let rw = |b: usize, n: usize| b >= 0x4000 && b + n <= 0x6000;
        let (ok, skipped) = validated(&waits, mem, rw);
        assert_eq!(ok, vec![0x1000, 0x5000 - 24]);
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(skipped
            .iter()
            .any(|s| s.base == Some(0x7000 - 8) && s.why.contains("cross")));
    }

    /// Issue #11's hang: a real pthread condvar that malloc put at page offset 4072 (its
    /// 48 bytes on two pages), with threads asleep in it, is found by the scan and
    /// validated with /proc/self/maps — not skipped, which left the fork child to inherit
    /// its waiters. One whose first page is not writable is skipped.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_condvar_across_a_page_boundary_is_validated() {
        use std::sync::atomic::{AtomicBool, Ordering};
        // SAFETY: a fresh private anonymous mapping of two pages, ours alone.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(mem, libc::MAP_FAILED);
        let base = mem as usize + PAGE - 24; // offset 4072, as seen in the hung child
        let mutex = mem as usize; // the mutex at the mapping's start
                                  // SAFETY: initialising the pthread objects in our mapping.
        unsafe {
            std::ptr::write(
                mutex as *mut libc::pthread_mutex_t,
                libc::PTHREAD_MUTEX_INITIALIZER,
            );
            std::ptr::write(
                base as *mut libc::pthread_cond_t,
                libc::PTHREAD_COND_INITIALIZER,
            );
        }
        static GO: AtomicBool = AtomicBool::new(false);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                std::thread::spawn(move || unsafe {
                    // SAFETY: a standard wait loop on the objects above, which outlive it.
                    let (m, c) = (
                        mutex as *mut libc::pthread_mutex_t,
                        base as *mut libc::pthread_cond_t,
                    );
                    libc::pthread_mutex_lock(m);
                    while !GO.load(Ordering::SeqCst) {
                        libc::pthread_cond_wait(c, m);
                    }
                    libc::pthread_mutex_unlock(m);
                })
            })
            .collect();
        let mut seen = None;
        for _ in 0..500 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let scan = crate::fork::threads::scan();
            let on_it: usize = scan
                .cond_waits
                .iter()
                .filter(|(&a, _)| cond_base(a) == Some(base))
                .map(|(_, n)| n)
                .sum();
            if on_it == 2 {
                let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                let rw = |b: usize, n: usize| crate::fork::maps::rw_covers(&maps, b, n);
                // SAFETY: addresses inside live condvars of this process (the rw check
                // guards the first page).
                let with_maps = validated(&scan.cond_waits, |a| unsafe { read_u32(a) }, rw);
                let without = validated(&scan.cond_waits, |a| unsafe { read_u32(a) }, |_, _| false);
                seen = Some((with_maps, without));
                break;
            }
        }
        // SAFETY: wake the waiters; then unmap once they are gone.
        unsafe {
            libc::pthread_mutex_lock(mutex as *mut _);
            GO.store(true, Ordering::SeqCst);
            libc::pthread_cond_broadcast(base as *mut _);
            libc::pthread_mutex_unlock(mutex as *mut _);
        }
        for w in waiters {
            w.join().unwrap();
        }
        unsafe { libc::munmap(mem, 2 * PAGE) };
        let ((ok, _), (ok_without, skipped_without)) = seen.expect("both waiters were seen");
        assert!(ok.contains(&base), "validated across the page boundary");
        assert!(!ok_without.contains(&base));
        assert!(skipped_without
            .iter()
            .any(|k| k.base == Some(base) && k.why.contains("cross")));
    }

    /// The probe waits on a real pthread condvar and validates it by its bookkeeping.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_layout_probe_passes_on_this_glibc() {
        assert_eq!(layout_probe(), Ok(()));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn reset_gives_the_initializers_bytes() {
        let mut c: libc::pthread_cond_t = libc::PTHREAD_COND_INITIALIZER;
        // SAFETY: a condvar we own, used by no thread.
        unsafe {
            std::ptr::write_bytes(
                (&mut c as *mut libc::pthread_cond_t).cast::<u8>(),
                0xAB,
                COND_SIZE,
            );
            reset(&[&mut c as *mut _ as usize]);
        }
        let bytes = unsafe {
            std::slice::from_raw_parts((&c as *const libc::pthread_cond_t).cast::<u8>(), COND_SIZE)
        };
        assert!(bytes.iter().all(|b| *b == 0));
        assert_eq!(std::mem::size_of::<libc::pthread_cond_t>(), COND_SIZE);
    }
}
