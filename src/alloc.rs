//! The process allocator: mimalloc for small blocks, anonymous memory mappings for large ones.
//!
//! mimalloc keeps the DNS path's small, short-lived per-query buffers cheap (glibc malloc's
//! consolidation showed up at 12% of a core under load). Large blocks are the opposite case:
//! the category table (7.8 MB for 1M names), sled's zeroed page-table nodes, histograms and
//! 512 KiB log buffers, the log batches and the list loader's buffers are few and live long
//! or are made rarely. Each of those gets a mapping of its own: a zeroed block costs no memory
//! until it is written, a freed one goes back to the kernel at once, and a growing one moves
//! with `mremap` instead of a copy. Measured with 1M names loaded (then 16 MB of table), the
//! proxy held 39-42 MiB resident with every block in mimalloc and 29 MiB with blocks of
//! 128 KiB and up mapped.
//!
//! mimalloc itself is set to give freed pages back at once rather than after its default of a
//! second ([`configure`]). Under the proxy benchmark that kept resident memory at 25-28 MiB
//! instead of 30-33, at the same request rate.
//!
//! This is the only `unsafe` code in Hedgerow: `GlobalAlloc` is an unsafe trait, and mimalloc's
//! options are set through its C interface.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::ptr::null_mut;

use mimalloc::MiMalloc;
use rustix::mm::{MapFlags, MremapFlags, ProtFlags, mmap_anonymous, mremap, munmap};

/// Blocks of at least this many bytes are mapped on their own. Below 16 KiB the proxy's
/// per-connection buffers would be mapped too, and its request rate fell by half at 8 KiB.
const LARGE: usize = 16 * 1024;
/// Mappings are page-aligned; a block that needs more alignment stays in mimalloc.
const PAGE: usize = 4096;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (include/mimalloc.h); libmimalloc-sys
/// names the options around it but not this one.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets mimalloc to purge freed memory immediately. Call first thing in `main`, before any
/// other thread exists (mimalloc's option setters are not thread-safe).
pub(crate) fn configure() {
    // SAFETY: called while the process has one thread; the option id is mimalloc's own.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

pub(crate) struct Split;

#[inline]
fn mapped(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE
}

fn map(size: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping at an address of the kernel's choosing touches
    // no existing memory.
    let ptr = unsafe {
        mmap_anonymous(
            null_mut(),
            size,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    };
    ptr.map_or(null_mut(), |p| p.cast())
}

// SAFETY: each block is freed and resized by the allocator that made it. The choice depends
// only on the block's layout, which `GlobalAlloc` callers must pass back unchanged; `realloc`
// across the threshold moves the block from one to the other explicitly.
unsafe impl GlobalAlloc for Split {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { MiMalloc.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            // A new anonymous mapping reads as zeros.
            map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { MiMalloc.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout) {
            // SAFETY: `ptr` is a mapping of `layout.size()` bytes made by `map` or `mremap`.
            // An error here cannot be reported and leaves the mapping in place.
            let _ = unsafe { munmap(ptr.cast::<c_void>(), layout.size()) };
        } else {
            // SAFETY: forwarded with the caller's guarantees.
            unsafe { MiMalloc.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees that `new_size`, rounded up to the alignment, does not
        // overflow `isize`, which is all this constructor requires.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (mapped(layout), mapped(new_layout)) {
            // SAFETY: forwarded with the caller's guarantees.
            (false, false) => unsafe { MiMalloc.realloc(ptr, layout, new_size) },
            (true, true) => {
                // SAFETY: `ptr` is a mapping of `layout.size()` bytes; MAYMOVE lets the kernel
                // move its pages to a new address without copying them.
                let moved = unsafe {
                    mremap(
                        ptr.cast::<c_void>(),
                        layout.size(),
                        new_size,
                        MremapFlags::MAYMOVE,
                    )
                };
                moved.map_or(null_mut(), |p| p.cast())
            }
            _ => {
                // SAFETY: `new_layout` has a non-zero size (the caller's guarantee).
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are valid for the smaller of their sizes and are
                    // distinct allocations; the old one is then freed by its own allocator.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_is_the_option_set() {
        // SAFETY: option reads; no other test touches mimalloc's options.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // mimalloc 3's default purge delay is 1000 ms: the id names the option meant.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(), 1000);
        }
        configure();
        assert_eq!(get(), 0);
    }

    #[test]
    fn blocks_cross_the_threshold_intact() {
        let mut v: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        for size in [LARGE - 1, LARGE, 4 * LARGE, 300_000, LARGE / 2, 10] {
            v.resize(size, 7);
            v.shrink_to_fit();
            assert!(
                v.iter()
                    .take(1000.min(size))
                    .enumerate()
                    .all(|(i, &b)| b == i as u8)
            );
        }
        let zeroed = vec![0u64; 1 << 20];
        assert!(zeroed.iter().all(|&x| x == 0));
    }
}
