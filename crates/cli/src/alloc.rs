//! The largest single allocation of the process since the last [`reset`]: on the CPU backend
//! every tensor is one allocation, so this is `keyshift bench unet --backend cpu`'s
//! `max_buffer_bytes`, recorded as each allocation is made.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, noting the largest size asked for.
pub struct Tracking;

#[allow(
    unsafe_code,
    reason = "a global allocator is an unsafe trait; each method only forwards to the system \
              allocator with the caller's own arguments"
)]
// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Starts a new measurement.
pub fn reset() {
    LARGEST.store(0, Ordering::Relaxed);
}

/// The largest allocation since [`reset`], in bytes.
pub fn largest() -> u64 {
    LARGEST.load(Ordering::Relaxed) as u64
}
