//! A sandboxed worker started ahead of need. Most of a sandboxed worker's
//! start that does not depend on its function is the process itself and
//! its move into a cgroup of its own (which waits for an RCU grace period
//! on cgroup v1: milliseconds); a parked worker has both done and waits for
//! its sandbox's spec, library and shared-memory region
//! ([`Worker::activate`]). After each sandboxed start the next one parks in
//! the background (20 ms later, so that it does not compete with the start
//! that asked for it), once per worker executable. It holds a slot of the
//! host-wide worker budget, only while another stays free, and is the
//! first idle worker ended when the cap is reached; it is used only by
//! functions that declare no environment (a process starts with its
//! environment).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::super::budget;
use super::{Launch, Worker};
use crate::sandbox::JailSpec;

/// Starts served by a parked worker, in this process.
static USED: AtomicU64 = AtomicU64::new(0);

/// How long after a sandboxed start the next worker parks.
const PARK_DELAY: Duration = Duration::from_millis(20);

#[derive(Default)]
struct Spot {
    waiting: Mutex<Option<(PathBuf, Worker, Instant)>>,
    parking: AtomicBool,
}

impl budget::IdleWorkers for Spot {
    /// A parked worker goes first when the cap is reached: it reports
    /// itself idle for a day longer than it is.
    fn oldest_idle(&self) -> Option<Instant> {
        self.waiting.lock().as_ref().map(|(_, _, since)| {
            since
                .checked_sub(Duration::from_secs(86_400))
                .unwrap_or(*since)
        })
    }
    fn end_oldest_idle(&self) -> bool {
        let parked = self.waiting.lock().take();
        parked.map(|(_, worker, _)| worker.end()).is_some()
    }
}

static SPOT: LazyLock<Arc<Spot>> = LazyLock::new(|| {
    let spot = Arc::new(Spot::default());
    let weak: Weak<Spot> = Arc::downgrade(&spot);
    budget::register(weak);
    spot
});

/// The parked worker of `executable`, if one waits; either way, another
/// parks in the background for the next start.
pub(crate) fn take(executable: &Path, spec: &JailSpec, max_processes: u32) -> Option<Worker> {
    let spot = &*SPOT;
    let taken = {
        let mut waiting = spot.waiting.lock();
        match waiting.take() {
            Some((exe, worker, _)) if exe == executable => Some(worker),
            other => {
                *waiting = other;
                None
            }
        }
    };
    park_later(executable, spec, max_processes);
    if taken.is_some() {
        USED.fetch_add(1, Ordering::Relaxed);
    }
    taken
}

fn park_later(executable: &Path, spec: &JailSpec, max_processes: u32) {
    let spot: Weak<Spot> = Arc::downgrade(&SPOT);
    if SPOT.parking.swap(true, Ordering::AcqRel) {
        return;
    }
    let executable = executable.to_owned();
    // The parked process starts with the generic part of the spec only:
    // its environment is empty (the rest comes when it is activated).
    let spec = JailSpec {
        env: Vec::new(),
        ..spec.clone()
    };
    let started = std::thread::Builder::new()
        .name("fnhost-park".into())
        .spawn(move || {
            std::thread::sleep(PARK_DELAY);
            let parked = budget::try_acquire_spare().and_then(|slot| {
                Worker::launch(Launch {
                    executable: &executable,
                    library: None,
                    data_limit: libc::RLIM_INFINITY,
                    slot,
                    serves: false,
                    sandbox: Some(&spec),
                    max_processes,
                    park: true,
                })
                .ok()
            });
            let Some(spot) = spot.upgrade() else {
                return;
            };
            if let Some(worker) = parked {
                let old = spot
                    .waiting
                    .lock()
                    .replace((executable, worker, Instant::now()));
                drop(old);
                budget::idle_available();
            }
            spot.parking.store(false, Ordering::Release);
        });
    if started.is_err() {
        SPOT.parking.store(false, Ordering::Release);
    }
}

/// Whether a worker is parked now, and how many starts took one.
pub(crate) fn counts() -> (bool, u64) {
    (SPOT.waiting.lock().is_some(), USED.load(Ordering::Relaxed))
}
