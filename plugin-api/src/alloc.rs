//! Per-invocation memory accounting: [`CountingAllocator`] wraps the system
//! allocator and, on a thread that is running a handler, tracks the live bytes
//! allocated since the handler started and their peak (`memoryUsed`).
//!
//! `export_plugin!` installs it as the plugin's global allocator. It counts
//! allocations on the handler's own thread; memory allocated by threads the
//! handler starts is not attributed to the invocation.

use core::cell::Cell;
use std::alloc::{GlobalAlloc, Layout, System};

#[derive(Clone, Copy)]
struct Tracking {
    active: bool,
    live: isize,
    peak: isize,
}

thread_local! {
    // `const`-initialized and without a destructor: touching it never
    // allocates and never registers a thread-exit hook, so it is safe inside
    // the allocator and does not pin the library in memory.
    static TRACKING: Cell<Tracking> = const {
        Cell::new(Tracking { active: false, live: 0, peak: 0 })
    };
}

#[inline]
fn record(delta: isize) {
    let _ = TRACKING.try_with(|t| {
        let mut v = t.get();
        if v.active {
            v.live += delta;
            if v.live > v.peak {
                v.peak = v.live;
            }
            t.set(v);
        }
    });
}

/// Starts tracking on this thread (resets the counters).
pub(crate) fn start_tracking() {
    let _ = TRACKING.try_with(|t| {
        t.set(Tracking {
            active: true,
            live: 0,
            peak: 0,
        })
    });
}

/// Stops tracking on this thread and returns the peak live bytes since start.
pub(crate) fn stop_tracking() -> u64 {
    TRACKING
        .try_with(|t| {
            let v = t.get();
            t.set(Tracking {
                active: false,
                live: 0,
                peak: 0,
            });
            v.peak.max(0) as u64
        })
        .unwrap_or(0)
}

/// The peak live bytes tracked so far on this thread.
pub(crate) fn current_peak() -> u64 {
    TRACKING
        .try_with(|t| t.get().peak.max(0) as u64)
        .unwrap_or(0)
}

/// The system allocator plus per-invocation accounting.
pub struct CountingAllocator;

impl CountingAllocator {
    /// The allocator (a unit value, usable in a `static`).
    pub const fn new() -> CountingAllocator {
        CountingAllocator
    }
}

impl Default for CountingAllocator {
    fn default() -> Self {
        CountingAllocator::new()
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the bookkeeping only reads and
// writes a thread-local `Cell` and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract (see the impl's comment).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            record(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        p
    }
}
