//! The asynchronous queue's state in memory ([`AsyncQueue`]): its settings,
//! whether it accepts, how much is unfinished, the workers' doorbell and
//! what it counts. Accepting, claiming and running the invocations is
//! [`crate::asynchronous`]'s.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How the asynchronous queue runs.
#[derive(Debug, Clone)]
pub struct AsyncSettings {
    /// Invocations run at once.
    pub workers: usize,
    /// Most invocations waiting or running at once (beyond: 429).
    pub queue_capacity: usize,
    /// Ended records older than this are pruned.
    pub records_max_age: Duration,
    /// Most ended records kept (the oldest go first).
    pub records_max: u64,
    /// The first retry's delay; each next one doubles, up to
    /// [`MAX_RETRY_DELAY`](crate::asynchronous::MAX_RETRY_DELAY).
    pub retry_base: Duration,
    /// Which hosts HTTP destinations may name.
    pub http_destinations: HttpDestinations,
    /// In a cluster, how long a node's claim of a running invocation lasts
    /// without renewal (renewed every third of it while the attempt runs):
    /// how long an invocation whose node died waits to run elsewhere.
    pub lease: Duration,
}

impl Default for AsyncSettings {
    fn default() -> AsyncSettings {
        AsyncSettings {
            workers: 4,
            queue_capacity: 10_000,
            records_max_age: Duration::from_secs(7 * 24 * 3600),
            records_max: 100_000,
            retry_base: Duration::from_secs(1),
            http_destinations: HttpDestinations::Loopback,
            lease: Duration::from_secs(30),
        }
    }
}

/// Which HTTP destinations a server delivers to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpDestinations {
    /// Loopback hosts only (`127.0.0.1`, `[::1]`, `localhost`): local
    /// development.
    #[default]
    Loopback,
    /// Any host.
    Any,
}

/// What the queue counts, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct AsyncCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) discarded_age: AtomicU64,
    pub(crate) discarded_cancelled: AtomicU64,
    pub(crate) requeued_at_start: AtomicU64,
    pub(crate) failed_at_start: AtomicU64,
    pub(crate) deliveries_function_ok: AtomicU64,
    pub(crate) deliveries_function_failed: AtomicU64,
    pub(crate) deliveries_http_ok: AtomicU64,
    pub(crate) deliveries_http_failed: AtomicU64,
}

/// The queue's state in memory: whether it accepts, how much is unfinished,
/// and the workers' doorbell. The work itself is in the store.
pub(crate) struct AsyncQueue {
    pub(crate) settings: AsyncSettings,
    pub(crate) accepting: AtomicBool,
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
    pub(crate) doorbell: tokio::sync::Notify,
    pub(crate) unfinished: AtomicUsize,
    pub(crate) counters: AsyncCounters,
}

impl AsyncQueue {
    pub(crate) fn new(settings: AsyncSettings) -> AsyncQueue {
        AsyncQueue {
            settings,
            accepting: AtomicBool::new(true),
            stopping: tokio::sync::watch::Sender::new(false),
            doorbell: tokio::sync::Notify::new(),
            unfinished: AtomicUsize::new(0),
            counters: AsyncCounters::default(),
        }
    }

    pub(crate) fn settings(&self) -> &AsyncSettings {
        &self.settings
    }

    /// Stops accepting and claiming: workers finish what they run, what
    /// waits stays in the store.
    pub(crate) fn close(&self) {
        self.accepting.store(false, Ordering::SeqCst);
        self.stopping.send_replace(true);
    }

    /// Invocations waiting or running.
    pub(crate) fn unfinished(&self) -> usize {
        self.unfinished.load(Ordering::Relaxed)
    }

    pub(crate) fn ended(&self) {
        let _ = self
            .unfinished
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}
