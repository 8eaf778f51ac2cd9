//! Making V8's heap visible to a fork child (FORK.md §1). V8 maps its heap pages
//! `MADV_DONTFORK`; a child forked as is faults on its first heap access. Before the fork,
//! `MADV_DOFORK` goes over exactly the ranges that need it; afterwards `MADV_DONTFORK` is
//! restored on them (off the JS thread) so later `child_process` spawns stay cheap.
//!
//! On the JS thread only `/proc/self/maps` is read (0.6 ms at 1,000 mappings) and every
//! anonymous private mapping is opened ([`ranges_to_open`]). Which ranges were don't-fork
//! is in `/proc/self/smaps` (`VmFlags: … dc`), slow to read (25 ms at a 200 MB heap here:
//! the kernel walks page tables), so it is read on a worker thread beforehand
//! ([`dontfork_ranges`]) and only those ranges get `MADV_DONTFORK` back. A range that
//! became don't-fork after that read stays fork-copied (a later spawn copies its page
//! table entries: slower, never wrong); marking a range don't-fork that was not would be
//! wrong — a `child_process` spawn's child could fault between fork and exec.

/// A mapping from /proc/self/maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: usize,
    pub end: usize,
}

/// (range, anonymous-private?) for each line of /proc/self/maps.
pub fn parse_maps(text: &str) -> Vec<(Range, bool)> {
    text.lines()
        .filter_map(|l| {
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
            let anon = inode == "0"
                && perms.ends_with('p')
                && (path.is_empty() || path.starts_with("[anon"));
            Some((r, anon))
        })
        .collect()
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

    #[cfg(target_os = "linux")]
    #[test]
    fn advise_round_trips_on_a_real_mapping() {
        // SAFETY: a fresh anonymous mapping we own and unmap at the end.
        unsafe {
            let len = 1 << 16;
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let r = Range {
                start: p as usize,
                end: p as usize + len,
            };
            assert_eq!(advise(&[r], libc::MADV_DONTFORK), 1);
            assert!(dontfork_ranges()
                .unwrap()
                .iter()
                .any(|x| x.start <= r.start && r.end <= x.end));
            assert_eq!(advise(&[r], libc::MADV_DOFORK), 1);
            assert!(!dontfork_ranges()
                .unwrap()
                .iter()
                .any(|x| x.start <= r.start && r.end <= x.end));
            libc::munmap(p, len);
        }
    }
}
