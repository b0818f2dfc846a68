//! A global allocator for the fuzz targets and their regression test: any single allocation over
//! [`LIMIT`] aborts the process with a message, so an input that makes Keyshift allocate from a
//! claimed size (a decode bomb) is a finding even where the memory would never be touched.

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest single allocation a target may make: more than any reader needs for inputs of
/// fuzzing size, far less than a claimed size would ask.
pub const LIMIT: usize = 256 << 20;

/// [`System`], with the [`LIMIT`] checked on every allocation and growth.
pub struct Capped;

fn check(size: usize) {
    if size > LIMIT {
        // Formatting one integer to unbuffered stderr does not allocate.
        eprintln!("capped allocator: one allocation of {size} bytes (limit {LIMIT})");
        std::process::abort();
    }
}

// SAFETY: every call is forwarded unchanged to `System`, after a size check that only aborts.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
