//! The global allocator: mimalloc, called the way `std` calls the system allocator.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, whose
//! alignment handling cost ~50 instructions per allocation in the `/db` profile (callgrind:
//! `alloc-aligned.c`, 535 instructions of a 15 600-instruction request). Nearly every Rust
//! allocation asks for an alignment that plain `mi_malloc` already guarantees, so, as `std`
//! does for `malloc`, only larger alignments take the aligned entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// Alignment every `mi_malloc` block of at least this size has (`MI_MAX_ALIGN_SIZE` on 64-bit
/// targets).
const MIN_ALIGN: usize = 16;

/// Whether `mi_malloc` of `size` bytes is aligned enough for `layout` (the rule `std` applies
/// to `malloc`: the guaranteed alignment, and no more than the size, since small blocks may
/// be aligned only to their size class).
#[inline]
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

/// mimalloc as the process allocator.
pub(crate) struct MiMalloc;

// SAFETY: every method forwards to mimalloc, which returns blocks of at least the requested
// size and, through `plain` or the `_aligned` entry points, at least the requested alignment;
// blocks are freed and reallocated only through mimalloc, whatever entry point made them.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            // SAFETY: a plain allocation; `GlobalAlloc` callers never ask for size 0.
            unsafe { mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: as above, with the alignment passed through.
            unsafe { mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align(), layout.size()) {
            // SAFETY: as `alloc`.
            unsafe { mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: as `alloc`.
            unsafe { mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the `GlobalAlloc` contract); `mi_free`
        // frees blocks of every mimalloc entry point.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align(), new_size) {
            // SAFETY: `ptr` came from this allocator with `layout`; the new block keeps the
            // alignment `plain` checked for the new size.
            unsafe { mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: as above, with the alignment passed through.
            unsafe { mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        let a = MiMalloc;
        for (size, align) in [
            (1, 1),
            (8, 8),
            (24, 8),
            (16, 16),
            (64, 32),
            (100, 64),
            (4096, 4096),
        ] {
            let layout = Layout::from_size_align(size, align).expect("layout");
            // SAFETY: a valid non-zero layout; the block is written within its size, then
            // reallocated and freed with the same allocator.
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "{size}/{align}");
                p.write_bytes(0xab, size);
                let q = a.realloc(p, layout, size * 3);
                assert_eq!(q as usize % align, 0, "realloc {size}/{align}");
                assert_eq!(*q, 0xab);
                a.dealloc(q, Layout::from_size_align(size * 3, align).expect("layout"));
                let z = a.alloc_zeroed(layout);
                assert_eq!(z as usize % align, 0);
                assert!((0..size).all(|i| *z.add(i) == 0));
                a.dealloc(z, layout);
            }
        }
    }
}
