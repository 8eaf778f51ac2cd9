//! How much memory and disk a capture may use, read from the kernel: the cgroup's limit
//! (v2 `memory.max` − `memory.current`, v1 `memory.limit_in_bytes` −
//! `memory.usage_in_bytes`, each less reclaimable `inactive_file`, taking the tightest
//! level from the process's cgroup up to the mount's root) and `MemAvailable` from
//! `/proc/meminfo`. Plain functions over text, so the parsing is unit-tested with
//! fixtures; [`read`] is the only part that touches `/proc` and `/sys`.
//!
//! The estimate of what a capture needs is [`need_inline`] / [`need_fork`]; the factors
//! are measured (see docs/how-it-works.md, "Memory cost of a capture").
//!
//! A fork child does not need the worst-case estimate: it runs under a memory budget
//! ([`fork_budget`], enforced with `RLIMIT_AS` in the child), so a snapshot that needs more
//! kills only the child (`std::bad_alloc`, SIGABRT). [`need_ordinary`] is what an ordinary
//! heap needs; a fork capture is attempted whenever the budget covers it (docs/budget.md).

use std::path::{Path, PathBuf};

/// Extra peak RSS of a snapshot per byte of `heapUsed`, for the worst heap shape
/// measured: tiny objects held by one big array (a cache, a queue). `benchmark/capture`
/// (leakguard inline, Node 20.20.2, VmHWM after − VmRSS before; docs/how-it-works.md "Memory cost of a
/// capture", `benchmark/results/headroom-*.json`): `{ a, b }` objects in one array 29.0×
/// at ~50 MB and 30.2× at ~100 MB; the same objects in arrays of 50,000 7.8–8.0×; many
/// small objects 8.2× (~100 MB) and 7.5× (~500 MB); 512 KiB strings a flat ~25 MiB.
/// A second set of fixtures (40-byte objects 26.5×, 200-byte records 12.4×, arrays of
/// doubles 0.15×) agrees. heapUsed cannot tell these shapes apart, so the check assumes
/// the worst: an estimate of 10× got an inline capture OOM-killed in the cgroup test.
/// The worst grows with the container: one array of 13.1 M `{ a, b }` objects (~500 MB
/// heapUsed) took a fork child to a 19.8 GB peak, 38× (the child's RSS at the fork ~0.7 GB
/// included), hence 40.
pub const SNAPSHOT_FACTOR: f64 = 40.0;
/// Safety margin on the measured factor.
pub const MARGIN: f64 = 1.25;
/// Fixed slack: the serializer's buffers, gzip state, a young-generation reserve.
pub const FIXED_BYTES: u64 = 64 << 20;

/// Memory an inline capture needs beyond what the process uses now.
pub fn need_inline(heap_used: u64) -> u64 {
    (heap_used as f64 * SNAPSHOT_FACTOR * MARGIN) as u64 + FIXED_BYTES
}

/// A fork capture: the child's working set as inline, plus up to the whole heap copied
/// on write while the parent keeps running.
pub fn need_fork(heap_used: u64, heap_total: u64) -> u64 {
    need_inline(heap_used) + heap_total
}

/// What an ordinary heap's snapshot needs in the fork child, per byte of `heapUsed` in the
/// regular spaces: 7.5× (~500 MB of small objects) to 8.2× (~100 MB) measured.
pub const ORDINARY_FACTOR: f64 = 8.0;
/// Per byte of the large-object spaces (big strings, the backing stores of big arrays and
/// maps): a string costs its bytes once in the serializer's buffers, a backing store one
/// edge (~24 bytes) per 8-byte slot plus the JSON of it, hence 2×.
pub const LARGE_OBJECT_FACTOR: f64 = 2.0;
/// Fixed slack of the child: serializer buffers, V8's young generation after its GC.
pub const ORDINARY_FIXED: u64 = 32 << 20;
/// What the parent may allocate while the child runs (its own growth, not copy-on-write).
pub const PARENT_RESERVE: u64 = 64 << 20;
/// The margin kept back from what is available: 5 %, at least this.
pub const MIN_MARGIN: u64 = 32 << 20;
/// The smallest budget a forced capture runs with (the child aborts at once below it).
pub const MIN_BUDGET: u64 = 16 << 20;

/// What an ordinary heap's snapshot needs in a fork child: `large_object_used` is the part
/// of `heap_used` in V8's large-object spaces.
pub fn need_ordinary(heap_used: u64, large_object_used: u64) -> u64 {
    let lo = large_object_used.min(heap_used);
    ((heap_used - lo) as f64 * ORDINARY_FACTOR + lo as f64 * LARGE_OBJECT_FACTOR) as u64
        + ORDINARY_FIXED
}

/// The fork child's memory budget and how it was reached (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// What the child may map beyond its address space at the fork.
    pub bytes: u64,
    /// The tightest available figure it started from.
    pub available: u64,
    /// Copy-on-write: every page resident at the fork may be copied once (by the parent
    /// or the child), so the parent's RSS is held back whole.
    pub cow_reserve: u64,
    pub parent_reserve: u64,
    pub margin: u64,
    /// `capture({ memoryBudget })`, when it lowered the budget.
    pub requested: Option<u64>,
}

/// The budget: available − the parent's RSS (copy-on-write) − [`PARENT_RESERVE`] − a
/// margin (5 %, at least [`MIN_MARGIN`]), lowered to `requested` when that is smaller.
/// Memory the child can use in all = this budget (new mappings, bounded by `RLIMIT_AS`)
/// plus copies of pages shared at the fork (bounded by the RSS held back): the sum stays
/// within what was available, less the parent's reserve and the margin.
pub fn fork_budget(available: u64, rss: u64, requested: Option<u64>) -> Budget {
    let margin = (available / 20).max(MIN_MARGIN);
    let computed = available
        .saturating_sub(rss)
        .saturating_sub(PARENT_RESERVE)
        .saturating_sub(margin);
    let bytes = requested.map_or(computed, |r| r.min(computed));
    Budget {
        bytes,
        available,
        cow_reserve: rss,
        parent_reserve: PARENT_RESERVE,
        margin,
        requested: requested.filter(|r| *r < computed),
    }
}

/// Disk a capture needs: snapshot JSON measured 1.96–2.34 × heapUsed and level-1 gzip
/// 0.27–0.38 × (docs/how-it-works.md "Memory cost of a capture"): 0.5 × heapUsed + 16 MiB; level 0
/// stores the JSON uncompressed, so 2.5 × heapUsed + 16 MiB.
pub fn need_disk(heap_used: u64, level: u32) -> u64 {
    let per = if level == 0 { 2.5 } else { 0.5 };
    (heap_used as f64 * per) as u64 + (16 << 20)
}

/// What the kernel says is available.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Available {
    /// `MemAvailable` from /proc/meminfo.
    pub mem_available: Option<u64>,
    /// The tightest cgroup limit minus usage (less inactive file cache), if limited.
    pub cgroup_free: Option<u64>,
    /// That cgroup's limit.
    pub cgroup_limit: Option<u64>,
    /// `process.availableMemory()` as reported by Node (cgroup-aware since 20.13), when given.
    pub node_available: Option<u64>,
    /// cgroup v2 `memory.oom.group` is 1 at some level from our cgroup up (Kubernetes sets
    /// it for containers since 1.28): the OOM killer then kills the whole group, so a fork
    /// child that runs out of memory takes the server with it, whatever its
    /// `oom_score_adj`. None when not known (cgroup v1, no cgroup).
    pub oom_group: Option<bool>,
}

impl Available {
    /// The tightest of the figures we have.
    pub fn bytes(&self) -> Option<u64> {
        [self.mem_available, self.cgroup_free, self.node_available]
            .into_iter()
            .flatten()
            .min()
    }
    /// Which figure is the tightest (for messages).
    pub fn source(&self) -> &'static str {
        let b = self.bytes();
        if b.is_some() && b == self.cgroup_free {
            "cgroup limit"
        } else if b.is_some() && b == self.mem_available {
            "MemAvailable"
        } else if b.is_some() {
            "process.availableMemory()"
        } else {
            "unknown"
        }
    }
}

/// `MemAvailable` in bytes from /proc/meminfo text.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("MemAvailable:")?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// A limit file's value: `max` (v2) or a v1 value near `i64::MAX` means none.
pub fn parse_limit(text: &str) -> Option<u64> {
    let t = text.trim();
    if t == "max" {
        return None;
    }
    let v: u64 = t.parse().ok()?;
    (v < (1u64 << 62)).then_some(v)
}

/// `inactive_file` (v2) or `total_inactive_file` (v1) from memory.stat.
pub fn parse_inactive_file(stat: &str) -> u64 {
    let mut v2 = None;
    let mut v1 = None;
    for l in stat.lines() {
        let mut it = l.split_whitespace();
        match (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) {
            (Some("inactive_file"), Some(v)) => v2 = Some(v),
            (Some("total_inactive_file"), Some(v)) => v1 = Some(v),
            _ => {}
        }
    }
    v1.or(v2).unwrap_or(0)
}

/// Which memory cgroup we are in: (is_v2, path inside the hierarchy).
pub fn parse_proc_cgroup(text: &str) -> Option<(bool, String)> {
    let mut v2 = None;
    for l in text.lines() {
        let mut it = l.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        if ctrls.split(',').any(|c| c == "memory") {
            return Some((false, path.to_string()));
        }
        if ctrls.is_empty() {
            v2 = Some((true, path.to_string()));
        }
    }
    v2
}

/// The memory cgroup mount: (root inside the hierarchy, mount point), from mountinfo.
pub fn parse_mountinfo(text: &str, v2: bool) -> Option<(String, PathBuf)> {
    for l in text.lines() {
        let (pre, post) = l.split_once(" - ")?;
        let f: Vec<&str> = pre.split(' ').collect();
        let p: Vec<&str> = post.split(' ').collect();
        if f.len() < 5 || p.is_empty() {
            continue;
        }
        let ok = if v2 {
            p[0] == "cgroup2"
        } else {
            p[0] == "cgroup"
                && p.get(2)
                    .is_some_and(|o| o.split(',').any(|x| x == "memory"))
        };
        if ok {
            return Some((f[3].to_string(), PathBuf::from(f[4])));
        }
    }
    None
}

/// Walk from the process's cgroup directory up to the mount point, taking the tightest
/// (limit − (usage − inactive_file)). Returns (free, limit).
pub fn cgroup_free(mount: &Path, leaf: &Path, v2: bool) -> Option<(u64, u64)> {
    let (limit_f, usage_f) = if v2 {
        ("memory.max", "memory.current")
    } else {
        ("memory.limit_in_bytes", "memory.usage_in_bytes")
    };
    let read = |p: PathBuf| std::fs::read_to_string(p).ok();
    let mut best: Option<(u64, u64)> = None;
    for dir in cgroup_levels(mount, leaf) {
        if let Some(limit) = read(dir.join(limit_f)).as_deref().and_then(parse_limit) {
            let usage: u64 = read(dir.join(usage_f))
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let inactive = read(dir.join("memory.stat"))
                .map(|s| parse_inactive_file(&s))
                .unwrap_or(0);
            let free = limit.saturating_sub(usage.saturating_sub(inactive));
            if best.is_none_or(|(f, _)| free < f) {
                best = Some((free, limit));
            }
        }
    }
    best
}

/// Whether `memory.oom.group` is 1 at any level from `leaf` up to `mount` (cgroup v2).
pub fn cgroup_oom_group(mount: &Path, leaf: &Path) -> Option<bool> {
    let mut seen = false;
    for dir in cgroup_levels(mount, leaf) {
        if let Ok(t) = std::fs::read_to_string(dir.join("memory.oom.group")) {
            if t.trim() == "1" {
                return Some(true);
            }
            seen = true;
        }
    }
    seen.then_some(false)
}

/// The cgroup directories from `leaf` up to `mount`, both included (never above it).
fn cgroup_levels(mount: &Path, leaf: &Path) -> Vec<PathBuf> {
    let mut out = vec![leaf.to_path_buf()];
    let mut dir = leaf.to_path_buf();
    while dir != mount && dir.pop() && dir.starts_with(mount) {
        out.push(dir.clone());
    }
    out
}

/// Read what is available now.
pub fn read() -> Available {
    let mut a = Available {
        mem_available: std::fs::read_to_string("/proc/meminfo")
            .ok()
            .as_deref()
            .and_then(parse_meminfo),
        ..Default::default()
    };
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok();
    if let (Some((v2, path)), Some(mi)) = (cg.as_deref().and_then(parse_proc_cgroup), mi) {
        if let Some((root, mount)) = parse_mountinfo(&mi, v2) {
            let rel = path
                .strip_prefix(root.as_str())
                .unwrap_or(&path)
                .trim_start_matches('/');
            // In a cgroup namespace /proc/self/cgroup may show a longer path than the mount
            // holds: the visible hierarchy is a suffix of it, so drop leading components
            // until the directory exists.
            let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
            let leaf = (0..=parts.len())
                .map(|i| parts[i..].iter().fold(mount.clone(), |d, p| d.join(p)))
                .find(|d| d.is_dir())
                .unwrap_or_else(|| mount.clone());
            if let Some((free, limit)) = cgroup_free(&mount, &leaf, v2) {
                a.cgroup_free = Some(free);
                a.cgroup_limit = Some(limit);
            }
            if v2 {
                a.oom_group = cgroup_oom_group(&mount, &leaf);
            }
        }
    }
    a
}

/// Free bytes on the filesystem holding `dir` (for unprivileged users), if known.
pub fn disk_free(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs fills the zeroed struct we own from a NUL-terminated path.
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
            return None;
        }
        Some(s.f_bavail as u64 * s.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_limits_parse() {
        let t = "MemTotal:       24579872 kB\nMemFree:  1 kB\nMemAvailable:   24410376 kB\n";
        assert_eq!(parse_meminfo(t), Some(24_410_376 * 1024));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        assert_eq!(parse_limit("536870912\n"), Some(536_870_912));
        assert_eq!(parse_inactive_file("active_file 5\ninactive_file 7\n"), 7);
        assert_eq!(
            parse_inactive_file("inactive_file 7\ntotal_inactive_file 9\n"),
            9
        );
    }

    #[test]
    fn proc_cgroup_and_mountinfo_find_the_memory_controller() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(v1),
            Some((false, "/process_api/abc".into()))
        );
        let v2 = "0::/user.slice/app.service\n";
        assert_eq!(
            parse_proc_cgroup(v2),
            Some((true, "/user.slice/app.service".into()))
        );
        let mi = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n\
                  31 25 0:27 /process_api /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n";
        assert_eq!(
            parse_mountinfo(mi, true),
            Some(("/".into(), "/sys/fs/cgroup".into()))
        );
        assert_eq!(
            parse_mountinfo(mi, false),
            Some(("/process_api".into(), "/sys/fs/cgroup/memory".into()))
        );
    }

    #[test]
    fn cgroup_walk_takes_the_tightest_level() {
        let d = tempfile::tempdir().unwrap();
        let leaf = d.path().join("a/b");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(d.path().join("a/memory.max"), "1000\n").unwrap();
        std::fs::write(d.path().join("a/memory.current"), "900\n").unwrap();
        std::fs::write(d.path().join("a/memory.stat"), "inactive_file 50\n").unwrap();
        std::fs::write(leaf.join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_free(d.path(), &leaf, true), Some((150, 1000)));
    }

    #[test]
    fn oom_group_is_found_at_any_level_and_unknown_without_the_file() {
        let d = tempfile::tempdir().unwrap();
        let leaf = d.path().join("kubepods/pod1/ctr");
        std::fs::create_dir_all(&leaf).unwrap();
        assert_eq!(
            cgroup_oom_group(d.path(), &leaf),
            None,
            "no file: cgroup v1 or none"
        );
        std::fs::write(leaf.join("memory.oom.group"), "0\n").unwrap();
        std::fs::write(d.path().join("kubepods/memory.oom.group"), "0\n").unwrap();
        assert_eq!(cgroup_oom_group(d.path(), &leaf), Some(false));
        std::fs::write(d.path().join("kubepods/pod1/memory.oom.group"), "1\n").unwrap();
        assert_eq!(cgroup_oom_group(d.path(), &leaf), Some(true));
    }

    #[test]
    fn available_takes_the_minimum_and_names_it() {
        let a = Available {
            mem_available: Some(10),
            cgroup_free: Some(5),
            cgroup_limit: Some(9),
            node_available: None,
            oom_group: None,
        };
        assert_eq!(a.bytes(), Some(5));
        assert_eq!(a.source(), "cgroup limit");
        assert!(need_fork(100 << 20, 120 << 20) > need_inline(100 << 20));
    }

    #[test]
    fn the_budget_holds_back_rss_reserve_and_margin_and_obeys_a_lower_request() {
        const M: u64 = 1 << 20;
        let b = fork_budget(1000 * M, 200 * M, None);
        assert_eq!(b.margin, 50 * M);
        assert_eq!(b.bytes, 1000 * M - 200 * M - 64 * M - 50 * M);
        assert_eq!(b.requested, None);
        let b2 = fork_budget(1000 * M, 200 * M, Some(100 * M));
        assert_eq!((b2.bytes, b2.requested), (100 * M, Some(100 * M)));
        // A request above what is there does not raise it.
        assert_eq!(
            fork_budget(1000 * M, 200 * M, Some(10_000 * M)).bytes,
            b.bytes
        );
        // Nothing left: zero, never an underflow.
        assert_eq!(fork_budget(100 * M, 200 * M, None).bytes, 0);
        assert_eq!(fork_budget(100 * M, 0, None).margin, MIN_MARGIN);
        // 8x the regular spaces, 2x the large-object ones.
        assert_eq!(need_ordinary(100 * M, 0), 800 * M + ORDINARY_FIXED);
        assert_eq!(need_ordinary(100 * M, 100 * M), 200 * M + ORDINARY_FIXED);
        assert_eq!(need_ordinary(100 * M, 500 * M), 200 * M + ORDINARY_FIXED);
    }
}
