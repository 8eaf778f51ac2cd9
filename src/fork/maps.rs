//! Making V8's heap visible to a fork child (FORK.md §1). V8 maps its heap pages
//! `MADV_DONTFORK`; a child forked as is faults on its first heap access. Before the fork,
//! `MADV_DOFORK` goes over every anonymous private mapping; afterwards `MADV_DONTFORK` is
//! restored where it was (off the JS thread) so later `child_process` spawns stay cheap.
//!
//! Everything slow happens on a worker thread beforehand ([`crate::fork::prepare`]):
//! `/proc/self/smaps` (which ranges were don't-fork: 6–25 ms at a 500 MB heap, the kernel
//! walks page tables) and `/proc/self/maps`, from which [`open_spans`] computes the address
//! spans *between* the mappings that must keep their flags (file-backed, shared, `[stack]`,
//! `[heap]`, the kernel's `[vvar]`/`[vdso]`). On the JS thread one `madvise` per span then
//! opens every anonymous mapping in it, holes included (the kernel skips holes and answers
//! `ENOMEM`, having applied the advice to every mapping in the span): a few dozen calls
//! instead of reading `/proc/self/maps` and one call per mapping (2,000+ at a 500 MB heap,
//! where V8 places each 256 KiB page at a random address). A page V8 maps after the read
//! lands in a span's hole and is opened too. If a span's call fails otherwise (a mapping
//! the kernel refuses, `EINVAL`, appeared inside it), the attempt falls back to the exact
//! pass: read `/proc/self/maps` and advise each anonymous mapping ([`ranges_to_open`]).
//!
//! Only the ranges smaps said were don't-fork get `MADV_DONTFORK` back. A range that
//! became don't-fork after that read stays fork-copied (a later spawn copies its page
//! table entries: slower, never wrong); marking a range don't-fork that was not would be
//! wrong — a `child_process` spawn's child could fault between fork and exec.

/// A mapping from /proc/self/maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: usize,
    pub end: usize,
}

/// One line of /proc/self/maps: (range, perms, inode, path).
fn map_line(l: &str) -> Option<(Range, &str, &str, &str)> {
    let mut f = l.split_whitespace();
    let (a, b) = f.next()?.split_once('-')?;
    let perms = f.next()?;
    let _offset = f.next()?;
    let _dev = f.next()?;
    let inode = f.next()?;
    let path = f.next().unwrap_or("");
    let r = Range {
        start: usize::from_str_radix(a, 16).ok()?,
        end: usize::from_str_radix(b, 16).ok()?,
    };
    Some((r, perms, inode, path))
}

/// (range, anonymous-private?) for each line of /proc/self/maps.
pub fn parse_maps(text: &str) -> Vec<(Range, bool)> {
    text.lines()
        .filter_map(|l| {
            let (r, perms, inode, path) = map_line(l)?;
            let anon = inode == "0"
                && perms.ends_with('p')
                && (path.is_empty() || path.starts_with("[anon"));
            Some((r, anon))
        })
        .collect()
}

/// Whether `start..start + len` lies wholly in readable and writable mappings of
/// /proc/self/maps text (adjacent mappings may share it): where a condvar that crosses a
/// page boundary may be read in the parent and zeroed in the child.
pub fn rw_covers(text: &str, start: usize, len: usize) -> bool {
    let end = start.saturating_add(len);
    let mut at = start;
    for (Range { start: a, end: b }, perms, _, _) in text.lines().filter_map(map_line) {
        // Lines are sorted by address: walk forward while they cover `at` contiguously.
        if a <= at && at < b {
            if !perms.starts_with("rw") {
                return false;
            }
            at = b;
            if at >= end {
                return true;
            }
        } else if a > at {
            return false;
        }
    }
    false
}

/// Ranges whose smaps `VmFlags` include `dc` (don't copy on fork).
pub fn parse_smaps_dontfork(text: &str) -> Vec<Range> {
    let mut out = Vec::new();
    let mut cur: Option<Range> = None;
    for l in text.lines() {
        let first = l.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(s), Ok(e)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                cur = Some(Range { start: s, end: e });
                continue;
            }
        }
        if let Some(flags) = l.strip_prefix("VmFlags:") {
            if flags.split_whitespace().any(|f| f == "dc") {
                if let Some(r) = cur {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Read the don't-fork ranges now (slow: call off the JS thread).
pub fn dontfork_ranges() -> std::io::Result<Vec<Range>> {
    Ok(parse_smaps_dontfork(&std::fs::read_to_string(
        "/proc/self/smaps",
    )?))
}

/// The ranges to open up: every anonymous private mapping now. Choosing only the known
/// don't-fork ranges (from a recent smaps read) plus new mappings was tried and failed:
/// 5 of 8 children died of SIGSEGV, because V8 marks parts of mappings it reserved
/// earlier as don't-fork when it commits them. `MADV_DOFORK` on a mapping that is already
/// fork-copied changes nothing, and the whole pass costs ~0.15 ms at 60 mappings.
pub fn ranges_to_open(maps_now: &[(Range, bool)]) -> Vec<Range> {
    maps_now
        .iter()
        .filter(|(_, anon)| *anon)
        .map(|(r, _)| *r)
        .collect()
}

/// The spans to open with one `madvise` each: the gaps between the mappings that are not
/// anonymous-private (those keep their flags, as [`ranges_to_open`] leaves them), from
/// address 0 to the top of the address space. Every anonymous private mapping of
/// `maps_now` lies inside exactly one span; so does any mapping created later in a gap.
pub fn open_spans(maps_now: &[(Range, bool)]) -> Vec<Range> {
    let mut keep: Vec<Range> = maps_now
        .iter()
        .filter(|(_, anon)| !*anon)
        .map(|(r, _)| *r)
        .collect();
    keep.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    let mut cursor = 0usize;
    for k in keep {
        if k.start > cursor {
            out.push(Range {
                start: cursor,
                end: k.start,
            });
        }
        cursor = cursor.max(k.end);
    }
    // The last span ends at the top of the address space (page-aligned, so `madvise`
    // accepts its length); the walk stops after the last mapping anyway.
    let top = usize::MAX & !0xfff;
    if cursor < top {
        out.push(Range {
            start: cursor,
            end: top,
        });
    }
    out
}

/// `MADV_DOFORK` over each span. `Ok(calls)` when every call succeeded or only met holes
/// (`ENOMEM`: the advice still applied to every mapping in the span); `Err(errno)` when a
/// call failed otherwise — some mappings may then be left don't-fork: use the exact pass.
#[cfg(unix)]
pub fn open_spans_advise(spans: &[Range]) -> Result<usize, i32> {
    for r in spans {
        // SAFETY: MADV_DOFORK only clears a VMA flag; holes in the span are skipped by the
        // kernel (ENOMEM), and no memory is read or written.
        let rc = unsafe {
            libc::madvise(
                r.start as *mut libc::c_void,
                r.end - r.start,
                crate::fork::sys::MADV_DOFORK,
            )
        };
        if rc != 0 {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            if errno != libc::ENOMEM {
                return Err(errno);
            }
        }
    }
    Ok(spans.len())
}

#[cfg(not(unix))]
pub fn open_spans_advise(_spans: &[Range]) -> Result<usize, i32> {
    Err(-1)
}

/// madvise each range; returns how many calls succeeded. Failures (a range unmapped
/// meanwhile) are ignored: the child would fault there, which the watchdog catches.
#[cfg(not(unix))]
pub fn advise(_ranges: &[Range], _advice: i32) -> usize {
    0
}

/// madvise each range (see above).
#[cfg(unix)]
pub fn advise(ranges: &[Range], advice: i32) -> usize {
    let mut ok = 0;
    for r in ranges {
        // SAFETY: madvise with DOFORK/DONTFORK only changes a VMA flag; a range that is not
        // mapped (any more) fails with ENOMEM and changes nothing.
        let rc = unsafe { libc::madvise(r.start as *mut libc::c_void, r.end - r.start, advice) };
        if rc == 0 {
            ok += 1;
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c8a00000-55d0c8b00000 r-xp 00000000 fd:01 1234 /usr/bin/node
bee0e840000-bee0e84d000 r--p 00000000 00:00 0 
e08c1d80000-e08c1dc0000 rw-p 00000000 00:00 0 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7f0000000000-7f0000040000 rw-p 00000000 00:00 0 [anon:v8]
";

    #[test]
    fn rw_cover_needs_readable_writable_mappings_without_gaps() {
        let m = "\
1000-2000 r--p 00000000 00:00 0 
2000-3000 rw-p 00000000 00:00 0 [heap]
3000-4000 rw-p 00000000 00:00 0 
5000-6000 rw-p 00000000 00:00 0 
";
        assert!(rw_covers(m, 0x2fe8, 48), "two adjacent writable mappings");
        assert!(rw_covers(m, 0x2100, 48));
        assert!(!rw_covers(m, 0x1fe8, 48), "starts in a read-only page");
        assert!(!rw_covers(m, 0x3fe8, 48), "runs into a hole");
        assert!(!rw_covers(m, 0x4fe8, 48), "starts in a hole");
        assert!(!rw_covers(m, 0x5fe8, 48), "runs past the last mapping");
    }

    #[test]
    fn maps_parse_and_mark_anonymous_private() {
        let m = parse_maps(MAPS);
        assert_eq!(m.len(), 5);
        assert_eq!(m.iter().filter(|(_, a)| *a).count(), 3);
        assert!(!m[0].1, "file-backed");
        assert!(!m[3].1, "[stack] is not a heap mapping");
    }

    #[test]
    fn smaps_dc_flags_are_found() {
        let smaps = "\
e08c1d80000-e08c1dc0000 rw-p 00000000 00:00 0 
Size:                256 kB
VmFlags: rd wr mr mw me dc ac sd 
7f0000000000-7f0000040000 rw-p 00000000 00:00 0 
VmFlags: rd wr mr mw me ac sd 
";
        assert_eq!(
            parse_smaps_dontfork(smaps),
            vec![Range {
                start: 0xe08c1d80000,
                end: 0xe08c1dc0000
            }]
        );
    }

    #[test]
    fn every_anonymous_private_mapping_is_opened() {
        let r = ranges_to_open(&parse_maps(MAPS));
        assert_eq!(r.len(), 3);
        assert!(r
            .iter()
            .all(|x| x.start != 0x55d0c8a00000 && x.start != 0x7ffd00000000));
    }

    #[test]
    fn spans_cover_every_anonymous_mapping_and_no_other() {
        let m = parse_maps(MAPS);
        let spans = open_spans(&m);
        for (r, anon) in &m {
            let inside = spans.iter().any(|s| s.start <= r.start && r.end <= s.end);
            let overlaps = spans.iter().any(|s| s.start < r.end && r.start < s.end);
            if *anon {
                assert!(inside, "{r:?} must lie inside one span");
            } else {
                assert!(!overlaps, "{r:?} keeps its flags");
            }
        }
        assert!(
            spans.windows(2).all(|w| w[0].end <= w[1].start),
            "sorted, disjoint"
        );
        assert!(spans
            .iter()
            .all(|s| s.start % 4096 == 0 && s.end % 4096 == 0));
    }

    #[test]
    fn overlapping_or_adjacent_kept_mappings_leave_no_empty_span() {
        let m = parse_maps(
            "1000-3000 r--p 00000000 fd:01 1 /lib/a.so\n\
             3000-5000 r-xp 00002000 fd:01 1 /lib/a.so\n\
             8000-9000 rw-p 00000000 00:00 0 \n",
        );
        let spans = open_spans(&m);
        assert_eq!(
            spans[0],
            Range {
                start: 0,
                end: 0x1000
            }
        );
        assert_eq!(spans[1].start, 0x5000);
        assert_eq!(spans.len(), 2);
    }

    /// A private anonymous read-write mapping of `len` bytes (at `at` exactly, if given).
    #[cfg(target_os = "linux")]
    fn map_anon(at: Option<usize>, len: usize) -> Range {
        let (addr, fixed) = match at {
            Some(a) => (a as *mut libc::c_void, libc::MAP_FIXED_NOREPLACE),
            None => (std::ptr::null_mut(), 0),
        };
        // SAFETY: a fresh anonymous mapping; MAP_FIXED_NOREPLACE never replaces another.
        let p = unsafe {
            libc::mmap(
                addr,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | fixed,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        Range {
            start: p as usize,
            end: p as usize + len,
        }
    }

    #[cfg(target_os = "linux")]
    fn unmap(r: Range) {
        // SAFETY: a mapping this test made.
        unsafe { libc::munmap(r.start as *mut libc::c_void, r.end - r.start) };
    }

    /// Whether smaps says `r` is don't-fork.
    #[cfg(target_os = "linux")]
    fn is_dontfork(r: &Range) -> bool {
        dontfork_ranges()
            .unwrap()
            .iter()
            .any(|x| x.start <= r.start && r.end <= x.end)
    }

    /// Guards the fast pass: one call over a span with holes opens every mapping in it,
    /// those mapped after the spans were computed included.
    #[cfg(target_os = "linux")]
    #[test]
    fn one_span_call_opens_mappings_across_holes() {
        // A reservation made and released, so that nothing else is there; the spans are
        // computed first: the mappings below appear later, in a hole, as V8's new pages
        // do between the worker's read and the fork.
        let area = map_anon(None, 1 << 22);
        unmap(area);
        let spans = open_spans(&parse_maps(
            &std::fs::read_to_string("/proc/self/maps").unwrap(),
        ));
        let ours: Vec<Range> = [0usize, 1 << 20, 3 << 20]
            .iter()
            .map(|off| map_anon(Some(area.start + off), 1 << 16))
            .collect();
        assert_eq!(advise(&ours, libc::MADV_DONTFORK), 3);
        assert!(ours.iter().all(is_dontfork));
        assert!(open_spans_advise(&spans).is_ok());
        assert!(
            !ours.iter().any(is_dontfork),
            "every mapping in the spans is fork-copied now"
        );
        ours.into_iter().for_each(unmap);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn advise_round_trips_on_a_real_mapping() {
        let r = map_anon(None, 1 << 16);
        assert_eq!(advise(&[r], libc::MADV_DONTFORK), 1);
        assert!(is_dontfork(&r));
        assert_eq!(advise(&[r], libc::MADV_DOFORK), 1);
        assert!(!is_dontfork(&r));
        unmap(r);
    }
}
