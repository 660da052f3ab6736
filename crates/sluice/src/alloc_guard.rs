//! A global allocator that survives absurd allocation requests.
//!
//! Why this exists, and why it needs `unsafe`: kafka-protocol's decoders
//! reserve `Vec::with_capacity(n)` for an array count `n` read from the wire
//! *before* checking that the bytes for `n` elements exist. A 100-byte request
//! claiming 2^31 topics asks for tens of GiB; the system allocator refuses and
//! Rust aborts the whole process. Every frame is bounded (100 MiB by default),
//! so such a request always fails to decode right after the reservation; the
//! memory is never touched. Serving requests of 1 GiB and more from a lazily
//! committed anonymous mapping (`MAP_NORESERVE`) lets the reservation succeed
//! at no real cost, the decoder then reports the truncated input, and the
//! broker closes that one connection instead of dying.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at or above this size are served by `mmap`.
const HUGE: usize = 1 << 30;
/// mmap returns page-aligned memory; larger alignments go to the system allocator.
const PAGE: usize = 4096;

/// The system allocator, with huge requests served lazily by the kernel.
pub struct GuardedAllocator;

fn is_huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= PAGE
}

fn map_huge(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint has no
    // preconditions; failure is reported as MAP_FAILED and turned into null,
    // which GlobalAlloc callers handle.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        ptr.cast()
    }
}

// SAFETY: every method either forwards to `System` with the caller's
// arguments unchanged, or uses mmap/munmap on whole mappings whose size is the
// layout size, which GlobalAlloc guarantees is passed back unchanged to
// dealloc/realloc.
unsafe impl GlobalAlloc for GuardedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            return map_huge(layout.size());
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_huge(&layout) {
            // Anonymous mappings are zero-filled.
            return map_huge(layout.size());
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_huge(&layout) {
            // SAFETY: ptr came from map_huge with exactly this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees new_size, rounded to align, does not
        // overflow isize, so this layout is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !is_huge(&layout) && !is_huge(&new_layout) {
            // SAFETY: forwarded unchanged.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: new_layout is valid (see above) and non-zero sized.
        let new_ptr = unsafe { self.alloc(new_layout) };
        if !new_ptr.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes
            // and do not overlap (new_ptr is a fresh allocation).
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new_ptr, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new_ptr
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn absurd_reservations_do_not_abort() {
        // 2^31 elements of 48 bytes: ~96 GiB, far beyond this machine's memory.
        let v: Vec<[u8; 48]> = Vec::with_capacity(1 << 31);
        assert!(v.capacity() >= 1 << 31);
        let mut small: Vec<u8> = Vec::with_capacity(16);
        small.extend_from_slice(b"still works");
        assert_eq!(&small, b"still works");
    }
}
