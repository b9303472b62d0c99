//! The deploy timeline: every generation a deploy put at a function's head
//! on this node (created, or swapped in for another), when, how long the
//! deploy took, and how long the generation it replaced took to drain (its
//! in-flight calls to finish). The console draws it under its charts, so
//! that a latency step can be read against the swap that caused it.
//!
//! The timeline is this node's memory, bounded to the last [`KEPT`]
//! deploys; it is not persisted (after a restart it starts with the
//! restore's deploys). A drain is watched by one thread, woken by a swap,
//! that polls the replaced generations' in-flight counts every [`POLL`]
//! and gives each up after [`GIVE_UP`] (a runaway handler may never end).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fnhost::{Deployment, Generation};
use serde::Serialize;

/// Deploys kept, across functions.
const KEPT: usize = 1000;
/// How often the drain watcher looks.
const POLL: Duration = Duration::from_millis(10);
/// When a drain is no longer watched (its event keeps `drained_ms: null`
/// and says `drain_abandoned`).
const GIVE_UP: Duration = Duration::from_secs(15 * 60);

/// One deploy, as the API answers it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct DeployEvent {
    /// Increasing per node.
    pub(crate) sequence: u64,
    pub(crate) function: String,
    /// `created` or `swapped`.
    pub(crate) kind: &'static str,
    /// The generation that now serves `latest`.
    pub(crate) generation: u64,
    /// The library's content digest.
    pub(crate) digest: String,
    /// The generation it replaced.
    pub(crate) replaced_generation: Option<u64>,
    /// When it started serving (ms since 1970).
    pub(crate) at_ms: u64,
    /// From the deploy call to serving (loading, pre-flight, initializer).
    pub(crate) deploy_ms: f64,
    /// From the swap until the replaced generation's last call ended;
    /// `null` while it drains, or when it still serves a published version.
    pub(crate) drained_ms: Option<f64>,
    /// The replaced generation is also a published version: it serves on.
    pub(crate) replaced_still_serves: bool,
    /// Calls it ran at the swap (the calls that had to drain).
    pub(crate) in_flight_at_swap: usize,
    /// The drain outlived [`GIVE_UP`] and is no longer watched.
    pub(crate) drain_abandoned: bool,
}

struct Draining {
    sequence: u64,
    generation: Arc<Generation>,
    since: Instant,
}

#[derive(Default)]
struct State {
    events: VecDeque<DeployEvent>,
    next: u64,
    draining: Vec<Draining>,
    watcher: bool,
}

/// The deploy timeline of this node.
#[derive(Default)]
pub(crate) struct Deployments {
    state: Arc<(Mutex<State>, Condvar)>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Deployments {
    /// Records a deploy that changed the head (unchanged ones are no
    /// event), and watches what it replaced drain.
    pub(crate) fn record(&self, deployment: &Deployment) {
        if !deployment.changed {
            return;
        }
        let generation = &deployment.generation;
        let replaced = deployment.replaced.as_ref();
        let still_serves = replaced.is_some_and(|r| r.is_live());
        let in_flight = replaced.map_or(0, |r| r.in_flight());
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        let sequence = state.next;
        state.next += 1;
        let mut event = DeployEvent {
            sequence,
            function: generation.config().function_name().to_owned(),
            kind: if replaced.is_some() {
                "swapped"
            } else {
                "created"
            },
            generation: generation.id(),
            digest: generation.library().digest().to_string(),
            replaced_generation: replaced.map(|r| r.id()),
            at_ms,
            deploy_ms: ms(deployment.duration),
            drained_ms: None,
            replaced_still_serves: still_serves,
            in_flight_at_swap: in_flight,
            drain_abandoned: false,
        };
        if let Some(replaced) = replaced.filter(|_| !still_serves) {
            if in_flight == 0 {
                event.drained_ms = Some(0.0);
            } else {
                state.draining.push(Draining {
                    sequence,
                    generation: Arc::clone(replaced),
                    since: Instant::now(),
                });
                if !std::mem::replace(&mut state.watcher, true) {
                    self.spawn_watcher();
                }
                wake.notify_one();
            }
        }
        if state.events.len() == KEPT {
            state.events.pop_front();
        }
        state.events.push_back(event);
    }

    fn spawn_watcher(&self) {
        let shared = Arc::clone(&self.state);
        let spawned = std::thread::Builder::new()
            .name("fnhost-drain-watch".into())
            .spawn(move || watch(&shared));
        if let Err(e) = spawned {
            log::warn!(target: "fnhost::server", "no thread to watch drains ({e}): the timeline will not say how long they took");
        }
    }

    /// Drops a deleted function's deploys (a function created again under
    /// its name starts a timeline of its own).
    pub(crate) fn forget(&self, function: &str) {
        let mut state = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
        state.events.retain(|e| e.function != function);
    }

    /// `function`'s deploys, oldest first (all functions' with `None`).
    pub(crate) fn events(&self, function: Option<&str>) -> Vec<DeployEvent> {
        let state = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
        state
            .events
            .iter()
            .filter(|e| function.is_none_or(|f| e.function == f))
            .cloned()
            .collect()
    }
}

/// The drain watcher: sleeps while nothing drains.
fn watch(shared: &(Mutex<State>, Condvar)) {
    let (lock, wake) = shared;
    let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        while state.draining.is_empty() {
            state = wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        let now = Instant::now();
        let mut ended = Vec::new();
        state.draining.retain(|d| {
            let took = now.duration_since(d.since);
            if d.generation.in_flight() == 0 {
                ended.push((d.sequence, Some(ms(took))));
                false
            } else if took > GIVE_UP {
                ended.push((d.sequence, None));
                false
            } else {
                true
            }
        });
        for (sequence, drained) in ended {
            if let Some(event) = state.events.iter_mut().find(|e| e.sequence == sequence) {
                event.drained_ms = drained;
                event.drain_abandoned = drained.is_none();
            }
        }
        drop(state);
        std::thread::sleep(POLL);
        state = lock.lock().unwrap_or_else(|p| p.into_inner());
    }
}
