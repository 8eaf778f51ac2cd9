//! The addon's global allocator: the system allocator, except that blocks of
//! [`LARGE`] bytes and more are mapped from the kernel directly (`mmap`, grown and shrunk
//! with `mremap`, given back with `munmap`) on Linux.
//!
//! Why: the analysis allocates and frees a series of per-node arrays of a few MiB to a few
//! hundred MiB (`before`'s graph, then `after`'s). glibc raises its mmap threshold to the
//! size of each mapped block it frees (up to 32 MiB), so after the first big array is
//! freed, the next ones of up to 32 MiB come from the heap, and the heap's free holes
//! count in the resident set until the allocator happens to reuse them: 20–35 MiB of a
//! 100 MB heap's diff, measured (`LEAKGUARD_MEM_TRACE=1`). A mapped block's pages leave
//! the resident set the moment it is freed. Setting glibc's threshold instead
//! (`mallopt`) would change the whole process's allocator, Node's and V8's included; this
//! only changes the addon's own Rust allocations.
//!
//! Cost: a fresh mapping faults its pages in as they are first written — what glibc does
//! for its own mapped blocks too; nothing of leakguard allocates blocks this large in a
//! loop (capture and upload buffers are 64 KiB to a few MiB, once per file or part).
//! It is also safe in the fork-capture child: `mmap` is a system call, no lock is taken.

use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks from this size on are mapped directly.
pub const LARGE: usize = 1 << 20;

/// See the module documentation.
pub struct Allocator;

#[cfg(target_os = "linux")]
const PAGE: usize = 4096;

#[cfg(target_os = "linux")]
#[inline]
fn mapped(size: usize, align: usize) -> bool {
    size >= LARGE && align <= PAGE
}

#[cfg(target_os = "linux")]
unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping; no pointer of ours is passed.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

// SAFETY: every block is freed by the path that made it: the decision (`mapped`) depends
// only on the layout's size and alignment, which Rust passes unchanged to `dealloc` and
// (for the old block) `realloc`; mapped blocks are page-aligned, which satisfies any
// alignment up to a page; mappings are zero-filled, as `alloc_zeroed` requires.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        if mapped(layout.size(), layout.align()) {
            return unsafe { map(layout.size()) };
        }
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        #[cfg(target_os = "linux")]
        if mapped(layout.size(), layout.align()) {
            return unsafe { map(layout.size()) };
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        #[cfg(target_os = "linux")]
        if mapped(layout.size(), layout.align()) {
            // SAFETY: `ptr` is the start of a mapping of `layout.size()` bytes (`alloc`).
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        #[cfg(target_os = "linux")]
        {
            let align = layout.align();
            let (was, will) = (mapped(layout.size(), align), mapped(new_size, align));
            if was && will {
                // SAFETY: `ptr` maps `layout.size()` bytes; the kernel moves the pages
                // (no copy) when the mapping cannot grow in place.
                let p = unsafe {
                    libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE)
                };
                return if p == libc::MAP_FAILED {
                    std::ptr::null_mut()
                } else {
                    p.cast()
                };
            }
            if was || will {
                // Across the threshold: a new block from the other path, the bytes copied.
                // SAFETY: `new_size` is nonzero and, rounded to `align`, fits `isize`
                // (the caller's contract for `realloc`).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                let p = unsafe { self.alloc(new_layout) };
                if !p.is_null() {
                    let n = layout.size().min(new_size);
                    // SAFETY: both blocks hold at least `n` bytes and do not overlap.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, p, n);
                        self.dealloc(ptr, layout);
                    }
                }
                return p;
            }
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident bytes of this process (Linux), for the "given back" check.
    #[cfg(target_os = "linux")]
    fn rss() -> usize {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * PAGE
    }

    #[test]
    fn vectors_grow_and_shrink_across_the_threshold_with_their_contents() {
        // Pushed one by one from empty: every realloc path (small→small, small→large,
        // large→large) is taken; then shrunk below the threshold (large→small).
        let mut v: Vec<u32> = Vec::new();
        for i in 0..(3 * LARGE as u32) {
            v.push(i.wrapping_mul(2_654_435_761));
        }
        assert!(v.capacity() * 4 >= LARGE);
        for (i, &x) in v.iter().enumerate() {
            assert_eq!(x, (i as u32).wrapping_mul(2_654_435_761));
        }
        v.truncate(1000);
        v.shrink_to_fit();
        assert!(v.capacity() * 4 < LARGE);
        for (i, &x) in v.iter().enumerate() {
            assert_eq!(x, (i as u32).wrapping_mul(2_654_435_761));
        }
        // And back up again from a small block.
        v.resize(LARGE, 7);
        assert_eq!(v[999], 999u32.wrapping_mul(2_654_435_761));
        assert_eq!(v[LARGE - 1], 7);
    }

    #[test]
    fn large_zeroed_blocks_are_zero_and_aligned() {
        let z = vec![0u64; 2 * LARGE];
        assert!(z.iter().all(|&x| x == 0));
        assert_eq!(z.as_ptr() as usize % 8, 0);
        // Over-aligned layouts (beyond a page) take the system path and still work.
        let l = Layout::from_size_align(2 * LARGE, 1 << 16).unwrap();
        unsafe {
            let p = Allocator.alloc_zeroed(l);
            assert!(!p.is_null());
            assert_eq!(p as usize % (1 << 16), 0);
            assert_eq!(*p.add(2 * LARGE - 1), 0);
            Allocator.dealloc(p, l);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_freed_large_block_leaves_the_resident_set() {
        // Through `Allocator` directly (the test binary's global allocator is the same,
        // but other tests run in parallel threads and move the process's RSS; a 256 MiB
        // block dwarfs that noise).
        let size = 256 << 20;
        let l = Layout::from_size_align(size, 8).unwrap();
        unsafe {
            let p = Allocator.alloc(l);
            assert!(!p.is_null());
            for i in (0..size).step_by(PAGE) {
                *p.add(i) = 1;
            }
            let touched = rss();
            Allocator.dealloc(p, l);
            let after = rss();
            assert!(
                touched - after.min(touched) > size / 2,
                "rss {touched} → {after} after freeing {size} bytes"
            );
        }
    }
}
