//! The triggers in effect, in memory: the running timer tasks
//! ([`Timers`]) and the active APIG triggers' routes ([`ApigRoutes`]).
//! Starting timers and reloading the routes from the store is
//! [`crate::triggers`]'s.

use std::collections::HashMap;
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
    /// Timers start only while this node leads (a cluster).
    pub(crate) gated: std::sync::atomic::AtomicBool,
    pub(crate) leading: std::sync::atomic::AtomicBool,
}

impl Timers {
    /// Stops the timer of trigger `id`, if it runs.
    pub(crate) fn stop(&self, id: &str) {
        if let Some((_, task)) = self.tasks.lock().remove(id) {
            task.abort();
        }
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

    /// Stops every running timer of `function` (also of one deleted).
    pub(crate) fn stop_running_of(&self, function: &str) {
        self.tasks.lock().retain(|_, (f, task)| {
            if f == function {
                task.abort();
            }
            f != function
        });
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
