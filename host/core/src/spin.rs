//! Bounded polling before blocking.

use std::time::{Duration, Instant};

/// How long [`spin_until`] polls without giving up the CPU: about a
/// thread hand-off's round trip. Past it, the thread it waits for may need
/// this CPU (two cores, three threads), so it yields between polls.
const BUSY: Duration = Duration::from_micros(4);

/// Polls `done` for at most `budget`: busily for [`BUSY`], then yielding
/// the CPU between polls. Returns whether `done` became true.
pub(crate) fn spin_until(budget: Duration, mut done: impl FnMut() -> bool) -> bool {
    if done() {
        return true;
    }
    let start = Instant::now();
    let busy = BUSY.min(budget);
    loop {
        for _ in 0..32 {
            if done() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= busy {
            break;
        }
    }
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
