//! The host-wide cap on worker processes, across every function and
//! runtime of the process. A worker holds a [`Slot`] for as long as its
//! process lives; starting one past the cap first ends the longest-idle
//! worker of any function, then waits for a slot until the caller's
//! deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::config::DEFAULT_MAX_WORKER_PROCESSES;

/// Something holding idle workers that can give one up.
pub(crate) trait IdleWorkers: Send + Sync {
    /// Since when its longest-idle worker has been idle.
    fn oldest_idle(&self) -> Option<Instant>;
    /// Ends its longest-idle worker; false if it had none.
    fn end_oldest_idle(&self) -> bool;
}

struct Budget {
    live: Mutex<usize>,
    freed: Condvar,
    max: AtomicUsize,
    holders: Mutex<Vec<Weak<dyn IdleWorkers>>>,
}

static BUDGET: LazyLock<Budget> = LazyLock::new(|| Budget {
    live: Mutex::new(0),
    freed: Condvar::new(),
    max: AtomicUsize::new(DEFAULT_MAX_WORKER_PROCESSES),
    holders: Mutex::new(Vec::new()),
});

/// Sets the cap (at least 1).
pub(crate) fn set_max(max: usize) {
    BUDGET.max.store(max.max(1), Ordering::Relaxed);
    BUDGET.freed.notify_all();
}

/// The cap.
pub(crate) fn max() -> usize {
    BUDGET.max.load(Ordering::Relaxed)
}

/// Worker processes alive now.
pub(crate) fn live() -> usize {
    *BUDGET.live.lock()
}

/// Makes `holder`'s idle workers available to end when the cap is reached.
pub(crate) fn register(holder: Weak<dyn IdleWorkers>) {
    let mut holders = BUDGET.holders.lock();
    holders.retain(|h| h.strong_count() > 0);
    holders.push(holder);
}

/// The right to one live worker process; released when dropped.
#[derive(Debug)]
pub(crate) struct Slot(());

impl Drop for Slot {
    fn drop(&mut self) {
        let mut live = BUDGET.live.lock();
        *live = live.saturating_sub(1);
        drop(live);
        BUDGET.freed.notify_all();
    }
}

/// Every slot was taken until `deadline`.
#[derive(Debug)]
pub(crate) struct Exhausted {
    /// The cap.
    pub max: usize,
}

/// Takes a slot if one is free now.
pub(crate) fn try_acquire() -> Option<Slot> {
    let mut live = BUDGET.live.lock();
    if *live < max() {
        *live += 1;
        Some(Slot(()))
    } else {
        None
    }
}

/// Takes a slot for a process started ahead of need (a parked worker)
/// only while another stays free: it never takes the last one.
pub(crate) fn try_acquire_spare() -> Option<Slot> {
    let mut live = BUDGET.live.lock();
    if *live + 1 < max() {
        *live += 1;
        Some(Slot(()))
    } else {
        None
    }
}

/// Tells waiters that a worker became idle (they may reuse or end it).
pub(crate) fn idle_available() {
    BUDGET.freed.notify_all();
}

/// Waits until a slot frees up or a worker becomes idle, or briefly (so a
/// wake-up missed between a check and this wait costs little); false once
/// `deadline` has passed.
pub(crate) fn wait_for_change(deadline: Instant) -> bool {
    let now = Instant::now();
    if now >= deadline {
        return false;
    }
    let until = deadline.min(now + std::time::Duration::from_millis(50));
    let mut live = BUDGET.live.lock();
    let _ = BUDGET.freed.wait_until(&mut live, until);
    true
}

/// Takes a slot: at once if one is free, else after ending the
/// longest-idle worker of any function, else when one frees up before
/// `deadline`.
pub(crate) fn acquire(deadline: Instant) -> Result<Slot, Exhausted> {
    loop {
        if let Some(slot) = try_acquire() {
            return Ok(slot);
        }
        if end_longest_idle() {
            continue;
        }
        if !wait_for_change(deadline) {
            return Err(Exhausted { max: max() });
        }
    }
}

/// Ends the longest-idle worker of any function; false if none is idle.
pub(crate) fn end_longest_idle() -> bool {
    let holders: Vec<Arc<dyn IdleWorkers>> = BUDGET
        .holders
        .lock()
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let oldest = holders
        .iter()
        .filter_map(|h| h.oldest_idle().map(|since| (since, h)))
        .min_by_key(|(since, _)| *since);
    oldest.is_some_and(|(_, holder)| holder.end_oldest_idle())
}
