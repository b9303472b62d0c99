//! Bounded polling before blocking.

use std::time::{Duration, Instant};

/// Polls `done` for at most `budget`, yielding the CPU between polls after a
/// short burst of busy-waiting. Returns whether `done` became true.
pub(crate) fn spin_until(budget: Duration, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..64 {
        if done() {
            return true;
        }
        std::hint::spin_loop();
    }
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= budget {
            return false;
        }
        std::thread::yield_now();
    }
}
