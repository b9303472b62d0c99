//! What the propagation of changes between the nodes of a cluster has done
//! on this node (`server::cluster` counts, `/metrics` and `/readyz` read).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// What the propagation of changes has done on this node.
#[derive(Debug, Default)]
pub(crate) struct Propagation {
    caught_up: AtomicBool,
    /// Resyncs that changed something here.
    pub applied: AtomicU64,
    /// Resyncs that failed (retried at the next comparison).
    pub failed: AtomicU64,
    /// Stored changes that could not apply here (the database answered):
    /// reported, the function `Failed`, retried with backoff.
    pub apply_failures: AtomicU64,
    /// Microseconds the last resync took.
    pub last_resync_us: AtomicU64,
    /// Notifications heard.
    pub notifications: AtomicU64,
    /// Milliseconds from the last applied change's commit (the database's
    /// clock) to this node serving it (this node's clock).
    pub last_lag_ms: std::sync::atomic::AtomicI64,
    /// Milliseconds since the server started at the last successful
    /// comparison.
    compared_at_ms: AtomicU64,
    started: std::sync::OnceLock<Instant>,
}

impl Propagation {
    /// Whether this node has applied what the store held at its last
    /// successful comparison.
    pub(crate) fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Seconds since the last successful comparison (`None`: none yet).
    pub(crate) fn since_compared(&self) -> Option<f64> {
        let started = self.started.get()?;
        let at = self.compared_at_ms.load(Ordering::Acquire);
        (at > 0).then(|| started.elapsed().as_secs_f64() - at as f64 / 1000.0)
    }

    /// A change committed at `at_ms` (the database's clock) serves here now.
    pub(crate) fn record_lag(&self, at_ms: i64) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.last_lag_ms
            .store(now_ms.saturating_sub(at_ms), Ordering::Relaxed);
    }

    /// Counts from now (the node starts propagating).
    pub(crate) fn start(&self) {
        let _ = self.started.set(Instant::now());
    }

    /// A comparison succeeded: this node has caught up.
    pub(crate) fn mark_compared(&self) {
        let started = self.started.get_or_init(Instant::now);
        let ms = started.elapsed().as_millis().max(1);
        self.compared_at_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::Release);
        self.caught_up.store(true, Ordering::Release);
    }
}
