//! The runtime's one housekeeping thread: time-driven work that no call or
//! scrape has to trigger.
//!
//! - Instances and worker processes idle past their function's
//!   `idle_timeout` end (beyond the reserved ones), whether or not another
//!   call to that function ever arrives.
//! - A replaced or deleted generation retires as soon as its last call
//!   ends: the call's in-flight guard wakes this thread when it drops.
//!
//! The thread holds the registry weakly and ends with it. It wakes at
//! least every [`MAX_TICK`], sooner when a function's idle timeout is
//! short (a quarter of the shortest), and at once when woken.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

/// What the thread keeps (the registry): one round of housekeeping, which
/// returns the shortest idle timeout it has to watch, if any.
pub(crate) trait Housekept: Send + Sync {
    fn housekeep(&self) -> Option<Duration>;
}

/// The longest the thread sleeps between rounds.
pub(crate) const MAX_TICK: Duration = Duration::from_secs(1);
/// The shortest (for idle timeouts of a few milliseconds).
const MIN_TICK: Duration = Duration::from_millis(20);

/// How the thread is woken.
#[derive(Debug, Default)]
pub(crate) struct Housekeeping {
    woken: Mutex<bool>,
    wake: Condvar,
}

impl Housekeeping {
    /// Asks for a round now (a generation may have drained, the registry
    /// may be gone).
    pub(crate) fn wake(&self) {
        *self.woken.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_one();
    }

    /// Sleeps until woken or `tick` passed.
    fn sleep(&self, tick: Duration) {
        let woken = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        let (mut woken, _) = self
            .wake
            .wait_timeout_while(woken, tick, |w| !*w)
            .unwrap_or_else(|p| p.into_inner());
        *woken = false;
    }
}

/// Starts the thread for `kept` (the registry); it ends once that is
/// dropped.
pub(crate) fn start(kept: Weak<dyn Housekept>, housekeeping: Arc<Housekeeping>) {
    let started = std::thread::Builder::new()
        .name("fnhost-housekeeping".into())
        .spawn(move || loop {
            let Some(kept) = kept.upgrade() else {
                return;
            };
            let tick = kept
                .housekeep()
                .map_or(MAX_TICK, |t| (t / 4).clamp(MIN_TICK, MAX_TICK));
            drop(kept);
            housekeeping.sleep(tick);
        });
    if let Err(e) = started {
        log::error!(target: "fnhost::registry", "cannot start the housekeeping thread: idle instances end only at the next call: {e}");
    }
}
