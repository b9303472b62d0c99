//! Live connection counts ([`Counts`]): connections served, priority
//! connections and refusals, kept by the accept loop
//! ([`crate::connections`]) and read by `/metrics`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::link::Mode;

/// Live connection counts.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) normal: AtomicUsize,
    pub(crate) priority: AtomicUsize,
    pub(crate) refusing: AtomicUsize,
    /// Connections answered 503 without being read, since start.
    pub(crate) refused: AtomicU64,
    /// Told when a connection ends.
    pub(crate) ended: Notify,
}

impl Counts {
    /// Connections being served (normal and priority).
    pub(crate) fn open(&self) -> usize {
        self.normal.load(Ordering::Relaxed) + self.priority.load(Ordering::Relaxed)
    }

    /// Connections served beyond the cap (priority connections).
    pub(crate) fn priority(&self) -> usize {
        self.priority.load(Ordering::Relaxed)
    }

    /// Connections refused without being read, since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The count of connections served as `mode`.
    pub(crate) fn of(&self, mode: Mode) -> &AtomicUsize {
        match mode {
            Mode::Normal => &self.normal,
            Mode::Priority => &self.priority,
        }
    }
}
