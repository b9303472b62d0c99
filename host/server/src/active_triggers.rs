//! The triggers in effect, in memory: the running timer tasks and event
//! source consumers ([`Timers`], [`Consumer`]) and the active APIG
//! triggers' routes ([`ApigRoutes`]).
//! Starting timers and reloading the routes from the store is
//! [`crate::triggers`]'s.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::Mutex;

/// Running timer tasks by trigger id, with their functions.
///
/// In a cluster only one node fires timers: the one holding the timer
/// lock (see `server::cluster`); the others validate and store triggers
/// but start no tasks until they become that node.
#[derive(Default)]
pub(crate) struct Timers {
    pub(crate) tasks: Mutex<HashMap<String, (String, tokio::task::JoinHandle<()>)>>,
    /// Running event-source consumers by trigger id. Unlike timers they run
    /// on every node of a cluster: the broker balances them.
    pub(crate) consumers: Mutex<HashMap<String, Consumer>>,
    /// Timers start only while this node leads (a cluster).
    pub(crate) gated: std::sync::atomic::AtomicBool,
    pub(crate) leading: std::sync::atomic::AtomicBool,
}

impl Timers {
    /// Stops the timer or consumer of trigger `id`, if it runs.
    pub(crate) fn stop(&self, id: &str) {
        if let Some((_, task)) = self.tasks.lock().remove(id) {
            task.abort();
        }
        if let Some(consumer) = self.consumers.lock().remove(id) {
            consumer.task.abort();
        }
    }

    /// Whether trigger `id`'s consumer runs, started with `started_with`.
    pub(crate) fn runs_consumer(&self, id: &str, started_with: &str) -> bool {
        self.consumers
            .lock()
            .get(id)
            .is_some_and(|c| c.started_with == started_with && !c.task.is_finished())
    }

    /// Stops the consumers (of `function`, or all) whose triggers are not
    /// in `stored` any more.
    pub(crate) fn stop_consumers_not_in(&self, function: Option<&str>, stored: &[&str]) {
        self.consumers.lock().retain(|id, c| {
            let keep = stored.contains(&id.as_str()) || function.is_some_and(|f| c.function != f);
            if !keep {
                c.task.abort();
            }
            keep
        });
    }

    /// Stops every running timer of `function` (not its consumers).
    pub(crate) fn stop_timers_of(&self, function: &str) {
        self.tasks.lock().retain(|_, (f, task)| {
            if f == function {
                task.abort();
            }
            f != function
        });
    }

    /// The status of trigger `id`'s consumer, if one runs.
    pub(crate) fn consumer_status(&self, id: &str) -> Option<Arc<SourceStatus>> {
        self.consumers.lock().get(id).map(|c| Arc::clone(&c.status))
    }

    /// From now on, timers fire only while [`lead`](Self::lead) says so.
    pub(crate) fn gate(&self) {
        self.gated.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether this node fires timers now.
    pub(crate) fn fires(&self) -> bool {
        use std::sync::atomic::Ordering;
        !self.gated.load(Ordering::Acquire) || self.leading.load(Ordering::Acquire)
    }
}

/// A running event-source consumer (a broker trigger's): its task and what
/// it reports.
pub(crate) struct Consumer {
    pub(crate) function: String,
    /// What it was started with (function, type and settings): a trigger
    /// stored again unchanged keeps its consumer, its batch in flight and
    /// its counters.
    pub(crate) started_with: String,
    pub(crate) task: tokio::task::JoinHandle<()>,
    pub(crate) status: Arc<SourceStatus>,
}

/// What a consumer reports: its error while it cannot consume (the
/// trigger then shows `ERROR` and the reason), and its counters for
/// `/metrics`.
#[derive(Default)]
pub(crate) struct SourceStatus {
    pub(crate) trigger_type: String,
    pub(crate) function: String,
    pub(crate) error: Mutex<Option<String>>,
    /// Messages whose batch succeeded.
    pub(crate) succeeded: AtomicU64,
    /// Attempts of a batch that failed and were retried.
    pub(crate) retried: AtomicU64,
    /// Messages given up on: dead-lettered (or delivered to `on_failure`).
    pub(crate) dead_lettered: AtomicU64,
    /// Entries waiting: read but not acknowledged, and not read yet.
    pub(crate) lag: AtomicU64,
    /// Batches handled, and their total time (ns), from read to ack.
    pub(crate) batches: AtomicU64,
    pub(crate) batch_nanos: AtomicU64,
    /// Batches that took at most each of [`BATCH_BUCKETS`] seconds.
    pub(crate) batch_buckets: [AtomicU64; 5],
    /// When the last batch was acknowledged (ns since the Unix epoch, 0
    /// before the first): `fnhost_trigger_last_batch_timestamp_seconds`,
    /// for an alert on a trigger that stopped handling.
    pub(crate) last_batch_unix_nanos: AtomicU64,
}

/// The upper bounds (s) of `fnhost_trigger_batch_seconds`'s buckets.
pub(crate) const BATCH_BUCKETS: [f64; 5] = [0.005, 0.05, 0.5, 5.0, 60.0];

impl SourceStatus {
    /// Counts a batch handled in `took`.
    pub(crate) fn batch_done(&self, took: std::time::Duration) {
        use std::sync::atomic::Ordering;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.last_batch_unix_nanos.store(now, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bound, count) in BATCH_BUCKETS.iter().zip(&self.batch_buckets) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sets (or clears) the error the trigger shows.
    pub(crate) fn set_error(&self, error: Option<String>) {
        *self.error.lock() = error;
    }

    /// The error the trigger shows, if any.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().clone()
    }
}

/// One active APIG trigger's route: requests under `base` (with method
/// `method`, or any for `ANY`) go to `function`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApigRoute {
    pub(crate) base: String,
    pub(crate) method: String,
    pub(crate) function: String,
}

/// The active APIG triggers' routes, in memory: the gateway serves public
/// traffic, so matching a path must not read the store (a management write
/// holds it for a disk sync). Reloaded after every change to triggers.
#[derive(Default)]
pub(crate) struct ApigRoutes(pub(crate) parking_lot::RwLock<Arc<Vec<ApigRoute>>>);

impl ApigRoutes {
    /// The current table.
    pub(crate) fn get(&self) -> Arc<Vec<ApigRoute>> {
        Arc::clone(&self.0.read())
    }
}
