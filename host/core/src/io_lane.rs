//! The I/O-thread lane: handlers that have proven short run on the thread of
//! the async executor that received the request, instead of being handed to
//! a worker thread. On busy cores a hand-off costs two thread wake-ups, about
//! 3 µs of CPU per call: more than a short handler itself.
//!
//! Plugin code on an executor thread blocks every other task of that thread
//! while it runs, and a caller waiting on that thread cannot be answered at
//! its deadline from it. The lane therefore runs a handler only within
//! bounds, and keeps the in-process guarantees (the caller is answered at
//! the deadline; a runaway does not stop the server):
//!
//! - **Probation.** A generation's handler qualifies after [`PROBATION`]
//!   consecutive calls that each returned within [`SHORT`]; until then, and
//!   after any longer call (the watchdog notices it while it still runs), its
//!   calls go to worker threads. Wall-clock time includes the time a thread
//!   was preempted, so a short handler on busy cores sometimes looks long:
//!   that costs it one probation, nothing more.
//! - **Strikes.** A lane call that runs longer than [`LONG`] (no preemption
//!   lasts that long) doubles the probation, up to [`MAX_PROBATION`], if it
//!   comes within [`STRIKE_MEMORY`] of the previous strike; a handler that
//!   blocks now and then thus spends ever longer on worker threads.
//! - **Watchdog.** A thread of the lane's own wakes the waiting caller at the
//!   deadline (it gets `timeout`; the handler becomes a counted runaway), as
//!   a timer on the blocked executor thread could not.
//! - **Slots.** At most `slots` handlers run on the lane at once; the caller
//!   sets fewer than the executor's threads, so even handlers that never
//!   return leave a thread to serve requests and deliver deadline answers.
//!   A call that finds no free slot goes to a worker thread.
//! - **Nudge.** When a lane call runs past [`SHORT`], the watchdog hands the
//!   executor an empty job from outside, which wakes one of its idle
//!   threads. The thread that the request's I/O readiness woke, now running
//!   the handler, may be the one that was polling the executor's I/O; the
//!   idle ones sleep until something wakes them, and until then nobody would
//!   accept connections or read requests. The nudged thread takes the I/O
//!   over when it goes idle again.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::invocation::InvocationState;

/// Longest call that counts as short.
pub const SHORT: Duration = Duration::from_micros(100);
/// Shortest lane call that is a strike.
pub const LONG: Duration = Duration::from_millis(20);
/// How long a strike is remembered: a strike within this time of the
/// previous one doubles the probation, a later one starts it over.
pub const STRIKE_MEMORY: Duration = Duration::from_secs(60);
/// Consecutive short calls a new generation needs before it runs on the lane.
pub const PROBATION: u32 = 100;
/// The most consecutive short calls a repeatedly struck generation needs.
pub const MAX_PROBATION: u32 = PROBATION << 10;
/// How often the watchdog checks running lane calls (the lateness bound of a
/// deadline answer, and how soon a long call is struck).
const TICK: Duration = Duration::from_millis(1);
/// Ticks without a lane call before the watchdog sleeps until the next one.
const IDLE_TICKS: u32 = 100;

/// A job for an executor (the lane's, or the worker pool): it calls a
/// handler and returns.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Whether a generation's handler qualifies for the lane: its streak of
/// short calls, and the streak it needs.
#[derive(Debug)]
pub(crate) struct ShortRecord {
    streak: AtomicU32,
    needed: AtomicU32,
    /// When the last strike was, for [`STRIKE_MEMORY`].
    last_strike: Mutex<Option<Instant>>,
}

impl Default for ShortRecord {
    fn default() -> Self {
        ShortRecord {
            streak: AtomicU32::new(0),
            needed: AtomicU32::new(PROBATION),
            last_strike: Mutex::new(None),
        }
    }
}

impl ShortRecord {
    /// Whether the handler qualifies now.
    pub(crate) fn qualifies(&self) -> bool {
        self.streak.load(Ordering::Relaxed) >= self.needed.load(Ordering::Relaxed)
    }

    /// Records a call's duration. Once qualified, a short call writes
    /// nothing (the counter is not bounced between cores on every call).
    pub(crate) fn record(&self, elapsed: Duration) {
        if elapsed > SHORT {
            self.disqualify();
        } else if !self.qualifies() {
            self.streak.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn disqualify(&self) {
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
        }
    }

    /// A lane call ran past [`LONG`]: disqualified, and the next probation
    /// is twice as long if the previous strike is recent.
    fn strike(&self) {
        self.strike_at(Instant::now());
    }

    fn strike_at(&self, now: Instant) {
        self.disqualify();
        let recent = self
            .last_strike
            .lock()
            .replace(now)
            .is_some_and(|last| now.duration_since(last) < STRIKE_MEMORY);
        let needed = if recent {
            self.needed
                .load(Ordering::Relaxed)
                .saturating_mul(2)
                .min(MAX_PROBATION)
        } else {
            PROBATION
        };
        self.needed.store(needed, Ordering::Relaxed);
    }
}

/// Counters of a lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoLaneStats {
    /// Calls run on the lane.
    pub runs: u64,
    /// Lane calls that ran longer than [`LONG`] (see the module
    /// documentation).
    pub strikes: u64,
    /// Callers the watchdog answered at the deadline.
    pub deadline_answers: u64,
    /// Lane calls running now.
    pub running: usize,
    /// Empty jobs the watchdog gave the executor to wake an idle thread.
    pub nudges: u64,
}

/// A lane call in progress, as the watchdog sees it.
struct Occupant {
    state: Arc<InvocationState>,
    record: Arc<ShortRecord>,
    struck: bool,
    answered: bool,
    /// The executor was nudged for this call (see [`watchdog`]).
    nudged: bool,
}

struct Inner {
    slots: Box<[Mutex<Option<Occupant>>]>,
    /// Slots taken (claimed before an occupant is stored, released after it
    /// is removed: never below the number of occupants).
    taken: AtomicUsize,
    spawn: Box<dyn Fn(Job) + Send + Sync>,
    /// The watchdog sleeps until the next claim (no lane call for a while).
    sleeping: AtomicBool,
    wake_lock: Mutex<()>,
    wake: Condvar,
    stop: AtomicBool,
    runs: AtomicU64,
    strikes: AtomicU64,
    deadline_answers: AtomicU64,
    nudges: AtomicU64,
}

/// The lane (see the module documentation). Dropping it stops its watchdog.
pub struct IoLane {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IoLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoLane")
            .field("slots", &self.inner.slots.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl IoLane {
    /// A lane of `slots` concurrent calls, run by `spawn` (which must run the
    /// job soon, on an executor thread; e.g. `tokio::runtime::Handle::spawn`).
    /// Give it fewer slots than the executor has threads. The watchdog also
    /// spawns an empty job from its own thread when a lane call runs long,
    /// to wake an idle executor thread (see the module documentation). `None` for zero
    /// slots, or when the watchdog thread cannot start.
    pub fn new(slots: usize, spawn: impl Fn(Job) + Send + Sync + 'static) -> Option<IoLane> {
        if slots == 0 {
            return None;
        }
        let inner = Arc::new(Inner {
            slots: (0..slots).map(|_| Mutex::new(None)).collect(),
            taken: AtomicUsize::new(0),
            spawn: Box::new(spawn),
            sleeping: AtomicBool::new(false),
            wake_lock: Mutex::new(()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
            runs: AtomicU64::new(0),
            strikes: AtomicU64::new(0),
            deadline_answers: AtomicU64::new(0),
            nudges: AtomicU64::new(0),
        });
        let watched = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("fnhost-lane-watchdog".into())
            .spawn(move || watchdog(&watched))
            .map_err(|e| log::warn!(target: "fnhost::invoke", "no I/O-thread lane: {e}"))
            .ok()?;
        Some(IoLane { inner })
    }

    /// How many calls may run on the lane at once.
    pub fn slots(&self) -> usize {
        self.inner.slots.len()
    }

    /// Its counters.
    pub fn stats(&self) -> IoLaneStats {
        let i = &self.inner;
        IoLaneStats {
            runs: i.runs.load(Ordering::Relaxed),
            strikes: i.strikes.load(Ordering::Relaxed),
            deadline_answers: i.deadline_answers.load(Ordering::Relaxed),
            running: i.taken.load(Ordering::Relaxed),
            nudges: i.nudges.load(Ordering::Relaxed),
        }
    }

    /// Takes a slot for a call of `state`, or `None` when all are taken.
    pub(crate) fn claim(
        &self,
        state: &Arc<InvocationState>,
        record: Arc<ShortRecord>,
    ) -> Option<Slot> {
        let inner = &self.inner;
        inner
            .taken
            .fetch_update(Ordering::SeqCst, Ordering::Relaxed, |n| {
                (n < inner.slots.len()).then_some(n + 1)
            })
            .ok()?;
        let occupant = Occupant {
            state: Arc::clone(state),
            record,
            struck: false,
            answered: false,
            nudged: false,
        };
        // `taken` never counts fewer than the occupants, so one is free.
        let mut occupant = Some(occupant);
        let mut index = 0;
        for (i, slot) in inner.slots.iter().enumerate() {
            let mut slot = slot.lock();
            if slot.is_none() {
                *slot = occupant.take();
                index = i;
                break;
            }
        }
        debug_assert!(occupant.is_none(), "a claimed lane slot was free");
        inner.runs.fetch_add(1, Ordering::Relaxed);
        // Pairs with the watchdog's store of `sleeping` and load of `taken`
        // (both SeqCst): either it sees this claim or this sees it asleep.
        if inner.sleeping.load(Ordering::SeqCst) {
            let _guard = inner.wake_lock.lock();
            inner.sleeping.store(false, Ordering::SeqCst);
            inner.wake.notify_one();
        }
        Some(Slot {
            inner: Arc::clone(inner),
            index,
            released: false,
        })
    }

    /// Runs `job` on the lane's executor.
    pub(crate) fn spawn(&self, job: Job) {
        (self.inner.spawn)(job);
    }
}

impl Drop for IoLane {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let _guard = self.inner.wake_lock.lock();
        self.inner.wake.notify_one();
    }
}

/// A taken lane slot; freed when the call returns (or when dropped, should
/// the job unwind).
pub(crate) struct Slot {
    inner: Arc<Inner>,
    index: usize,
    released: bool,
}

impl Slot {
    /// The call returned after `elapsed`: frees the slot, and strikes the
    /// generation if the call was long (unless the watchdog already did).
    pub(crate) fn release(mut self, elapsed: Duration) {
        self.free(Some(elapsed));
    }

    fn free(&mut self, elapsed: Option<Duration>) {
        if self.released {
            return;
        }
        self.released = true;
        let occupant = self.inner.slots[self.index].lock().take();
        self.inner.taken.fetch_sub(1, Ordering::SeqCst);
        match (occupant, elapsed) {
            (Some(o), Some(elapsed)) => {
                if elapsed > LONG && !o.struck {
                    o.record.strike();
                    self.inner.strikes.fetch_add(1, Ordering::Relaxed);
                }
            }
            // The job was dropped without running the call to its end (the
            // executor shut down, or host code panicked): nobody else would
            // wake the caller, who has no timer of its own.
            (Some(o), None) => o.state.wake_waiter(),
            (None, _) => {}
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.free(None);
    }
}

/// The watchdog's loop: deadlines, strikes and nudges (see the module
/// documentation).
fn watchdog(inner: &Inner) {
    let mut idle_ticks = 0;
    let mut last_runs = 0;
    while !inner.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let mut nudge = false;
        for slot in inner.slots.iter() {
            let mut slot = slot.lock();
            let Some(o) = slot.as_mut() else { continue };
            let running = now.saturating_duration_since(o.state.started());
            if running > SHORT {
                // Later calls go to worker threads while this one runs.
                o.record.disqualify();
                nudge |= !std::mem::replace(&mut o.nudged, true);
            }
            if !o.struck && running > LONG {
                o.struck = true;
                o.record.strike();
                inner.strikes.fetch_add(1, Ordering::Relaxed);
            }
            if !o.answered && now >= o.state.deadline() {
                o.answered = true;
                inner.deadline_answers.fetch_add(1, Ordering::Relaxed);
                o.state.wake_waiter();
            }
        }
        if nudge {
            inner.nudges.fetch_add(1, Ordering::Relaxed);
            (inner.spawn)(Box::new(|| ()));
        }
        let runs = inner.runs.load(Ordering::Relaxed);
        if runs != last_runs || inner.taken.load(Ordering::SeqCst) != 0 {
            idle_ticks = 0;
            last_runs = runs;
        } else {
            idle_ticks += 1;
        }
        let mut guard = inner.wake_lock.lock();
        if idle_ticks < IDLE_TICKS {
            inner.wake.wait_for(&mut guard, TICK);
            continue;
        }
        inner.sleeping.store(true, Ordering::SeqCst);
        while inner.sleeping.load(Ordering::SeqCst)
            && inner.taken.load(Ordering::SeqCst) == 0
            && !inner.stop.load(Ordering::SeqCst)
        {
            inner.wake.wait(&mut guard);
        }
        inner.sleeping.store(false, Ordering::SeqCst);
        idle_ticks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qualify(r: &ShortRecord) -> u32 {
        let mut calls = 0;
        while !r.qualifies() {
            r.record(Duration::from_micros(5));
            calls += 1;
        }
        calls
    }

    #[test]
    fn a_handler_qualifies_after_a_streak_of_short_calls() {
        let r = ShortRecord::default();
        assert!(!r.qualifies());
        for _ in 0..PROBATION - 1 {
            r.record(SHORT);
        }
        assert!(!r.qualifies());
        r.record(SHORT + Duration::from_nanos(1));
        assert_eq!(qualify(&r), PROBATION, "a long call starts the streak over");
        r.record(Duration::from_millis(1));
        assert!(!r.qualifies(), "a long call disqualifies");
        assert_eq!(
            qualify(&r),
            PROBATION,
            "without a strike, no longer probation"
        );
    }

    #[test]
    fn a_lane_call_dropped_before_it_ran_wakes_its_caller() {
        use crate::config::FunctionConfig;
        use crate::invocation::{FunctionContext, Limits, Served};

        // An executor that drops what it is given (as one does when shutting down).
        let lane = IoLane::new(1, drop).unwrap();
        let config = FunctionConfig::new("t.Handler", "/nowhere");
        let limits = Limits {
            max_response_bytes: 16,
            max_log_bytes: 1024,
            log_tail_bytes: 64,
        };
        let state = Arc::new(InvocationState::new(
            Arc::new(FunctionContext::from_config(&config, Arc::default())),
            Duration::from_secs(60),
            limits,
            Served::default(),
        ));
        let (tx, rx) = std::sync::mpsc::channel();
        state.on_complete(move || tx.send(()).unwrap());
        let slot = lane.claim(&state, Arc::default()).unwrap();
        assert_eq!(lane.stats().running, 1);
        lane.spawn(Box::new(move || slot.release(Duration::ZERO)));
        rx.recv_timeout(Duration::from_secs(5))
            .expect("the caller is woken at once, not at its 60 s deadline");
        assert_eq!(lane.stats().running, 0, "and the slot is free");
    }

    #[test]
    fn strikes_close_together_double_the_probation_up_to_a_bound() {
        let r = ShortRecord::default();
        let t0 = Instant::now();
        r.strike_at(t0);
        assert_eq!(qualify(&r), PROBATION, "a first strike");
        r.strike_at(t0 + Duration::from_secs(1));
        assert_eq!(qualify(&r), 2 * PROBATION);
        r.strike_at(t0 + Duration::from_secs(2));
        assert_eq!(qualify(&r), 4 * PROBATION);
        for i in 3..20 {
            r.strike_at(t0 + Duration::from_secs(i));
        }
        assert_eq!(qualify(&r), MAX_PROBATION);
        // A strike long after the previous one starts over.
        r.strike_at(t0 + Duration::from_secs(19) + STRIKE_MEMORY);
        assert_eq!(qualify(&r), PROBATION);
    }
}
