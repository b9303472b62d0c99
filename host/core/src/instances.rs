//! Instances of one generation, FunctionGraph's concurrency model in process:
//! an instance is initialized once (the initializer runs for it) and then
//! serves up to `concurrency_per_instance` invocations at a time; at most
//! `max_instances` exist; invocations beyond that wait in a bounded queue for
//! a free slot; instances idle past `idle_timeout` are released (beyond the
//! reserved ones) and the next invocation creates and initializes a new one.
//!
//! All instances of a generation share the library's code and statics: an
//! instance is the unit of initialization and of concurrency, not of memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Milliseconds of a coarse monotonic clock (a few ms resolution, a fraction
/// of the cost of a precise read): enough for idle bookkeeping, and read on
/// every invocation.
fn coarse_now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE
    // exists on every Linux this runs on (2.6.32+).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

use parking_lot::{Condvar, Mutex};

use crate::config::InstanceConfig;

/// Counters of one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstanceStats {
    /// Instances alive (initialized or initializing).
    pub instances: usize,
    /// Invocations holding a slot right now.
    pub active: usize,
    /// Invocations waiting for a slot right now.
    pub queued: usize,
    /// Instances created so far (each ran the initializer, if any).
    pub created: u64,
    /// Instances released for idleness so far.
    pub released_idle: u64,
    /// Invocations refused because the queue was full or the wait too long.
    pub rejected: u64,
}

struct Slot {
    id: u64,
    active: u32,
    ready: bool,
    /// `coarse_now_ms()` when it last finished an invocation.
    last_used_ms: u64,
}

struct State {
    slots: Vec<Slot>,
    queued: u32,
    next_id: u64,
    /// Idle instances are looked for at most this often on the hot path
    /// (`coarse_now_ms()` deadline).
    next_idle_scan_ms: u64,
    stats: InstanceStats,
}

/// The instances of one generation.
pub(crate) struct InstancePool {
    limits: InstanceConfig,
    state: Mutex<State>,
    changed: Condvar,
}

/// Why no slot was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AcquireError {
    /// Every instance busy and `max_queued` invocations already waiting.
    QueueFull(u32),
    /// Waited until the deadline.
    TimedOut(Duration),
}

impl std::fmt::Display for AcquireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AcquireError::QueueFull(n) => {
                write!(
                    f,
                    "all instances are busy and {n} invocations are already queued"
                )
            }
            AcquireError::TimedOut(d) => {
                write!(f, "all instances stayed busy for {:.3} s", d.as_secs_f64())
            }
        }
    }
}

/// A slot on an instance, held for one invocation; released on drop.
pub(crate) struct Lease {
    pool: Arc<InstancePool>,
    instance: u64,
    /// The instance was created for this lease and still needs its initializer.
    fresh: bool,
    discard: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("instance", &self.instance)
            .field("fresh", &self.fresh)
            .finish()
    }
}

impl Lease {
    /// Whether the instance is new and must be initialized by the holder.
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// The new instance initialized: other invocations may use it now.
    pub(crate) fn mark_ready(&mut self) {
        if self.fresh {
            self.fresh = false;
            let mut st = self.pool.state.lock();
            if let Some(s) = st.slots.iter_mut().find(|s| s.id == self.instance) {
                s.ready = true;
            }
            drop(st);
            self.pool.changed.notify_all();
        }
    }

    /// The new instance failed to initialize: drop it when the lease ends.
    pub(crate) fn discard(&mut self) {
        self.discard = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut st = self.pool.state.lock();
        st.stats.active = st.stats.active.saturating_sub(1);
        if self.discard {
            st.slots.retain(|s| s.id != self.instance);
        } else if let Some(s) = st.slots.iter_mut().find(|s| s.id == self.instance) {
            s.active = s.active.saturating_sub(1);
            s.last_used_ms = coarse_now_ms();
        }
        st.stats.instances = st.slots.len();
        drop(st);
        self.pool.changed.notify_all();
    }
}

impl InstancePool {
    pub(crate) fn new(limits: InstanceConfig) -> Arc<InstancePool> {
        Arc::new(InstancePool {
            limits,
            state: Mutex::new(State {
                slots: Vec::new(),
                queued: 0,
                next_id: 0,
                next_idle_scan_ms: 0,
                stats: InstanceStats::default(),
            }),
            changed: Condvar::new(),
        })
    }

    pub(crate) fn stats(&self) -> InstanceStats {
        let st = self.state.lock();
        let mut s = st.stats;
        s.instances = st.slots.len();
        s.queued = st.queued as usize;
        s
    }

    /// Releases idle instances beyond the reserved ones. Called on every
    /// acquire; callers may also call it periodically.
    pub(crate) fn release_idle(&self) -> usize {
        let mut st = self.state.lock();
        self.release_idle_locked(&mut st, coarse_now_ms())
    }

    fn release_idle_locked(&self, st: &mut State, now_ms: u64) -> usize {
        let idle_ms = self.limits.idle_timeout.as_millis() as u64;
        st.next_idle_scan_ms = now_ms + (idle_ms / 4).min(1000);
        let reserved = self.limits.reserved_instances as usize;
        let mut released = 0;
        while st.slots.len() > reserved {
            let Some(pos) = st.slots.iter().position(|s| {
                s.ready && s.active == 0 && now_ms.saturating_sub(s.last_used_ms) >= idle_ms
            }) else {
                break;
            };
            st.slots.remove(pos);
            released += 1;
        }
        st.stats.released_idle += released as u64;
        st.stats.instances = st.slots.len();
        released
    }

    /// Creates a new instance that the caller initializes (for reserved
    /// capacity and the deploy-time check); `None` at `max_instances`.
    pub(crate) fn create(self: &Arc<Self>) -> Option<Lease> {
        let mut st = self.state.lock();
        if st.slots.len() >= self.limits.max_instances as usize {
            return None;
        }
        Some(self.new_instance(&mut st))
    }

    fn new_instance(self: &Arc<Self>, st: &mut State) -> Lease {
        st.next_id += 1;
        let id = st.next_id;
        st.slots.push(Slot {
            id,
            active: 1,
            ready: false,
            last_used_ms: coarse_now_ms(),
        });
        st.stats.created += 1;
        st.stats.active += 1;
        st.stats.instances = st.slots.len();
        Lease {
            pool: Arc::clone(self),
            instance: id,
            fresh: true,
            discard: false,
        }
    }

    /// A slot on a ready instance without waiting and without creating an
    /// instance; `None` when that would need either.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Lease> {
        let mut st = self.state.lock();
        let concurrency = self.limits.concurrency_per_instance;
        let slot = st
            .slots
            .iter_mut()
            .filter(|s| s.ready && s.active < concurrency)
            .min_by_key(|s| s.active)?;
        slot.active += 1;
        let id = slot.id;
        st.stats.active += 1;
        Some(Lease {
            pool: Arc::clone(self),
            instance: id,
            fresh: false,
            discard: false,
        })
    }

    /// A slot on a ready instance, or a new instance to initialize, waiting
    /// up to `max_wait` when every instance is busy.
    pub(crate) fn acquire(self: &Arc<Self>, max_wait: Duration) -> Result<Lease, AcquireError> {
        let mut st = self.state.lock();
        let now_ms = coarse_now_ms();
        if now_ms >= st.next_idle_scan_ms
            && st.slots.len() > self.limits.reserved_instances as usize
        {
            self.release_idle_locked(&mut st, now_ms);
        }
        // The precise clock is read only if this call has to wait.
        let mut waiting_since: Option<Instant> = None;
        let mut queued = false;
        loop {
            let concurrency = self.limits.concurrency_per_instance;
            // The least busy ready instance keeps load spread across instances.
            if let Some(slot) = st
                .slots
                .iter_mut()
                .filter(|s| s.ready && s.active < concurrency)
                .min_by_key(|s| s.active)
            {
                slot.active += 1;
                let id = slot.id;
                st.stats.active += 1;
                if queued {
                    st.queued -= 1;
                }
                return Ok(Lease {
                    pool: Arc::clone(self),
                    instance: id,
                    fresh: false,
                    discard: false,
                });
            }
            if st.slots.len() < self.limits.max_instances as usize {
                if queued {
                    st.queued -= 1;
                }
                return Ok(self.new_instance(&mut st));
            }
            if !queued {
                if st.queued >= self.limits.max_queued {
                    st.stats.rejected += 1;
                    return Err(AcquireError::QueueFull(st.queued));
                }
                st.queued += 1;
                queued = true;
            }
            let started = *waiting_since.get_or_insert_with(Instant::now);
            if self
                .changed
                .wait_until(&mut st, started + max_wait)
                .timed_out()
            {
                st.queued -= 1;
                st.stats.rejected += 1;
                return Err(AcquireError::TimedOut(started.elapsed()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(concurrency: u32, max: u32, queue: u32) -> Arc<InstancePool> {
        InstancePool::new(InstanceConfig {
            concurrency_per_instance: concurrency,
            max_instances: max,
            reserved_instances: 0,
            idle_timeout: Duration::from_millis(50),
            max_queued: queue,
        })
    }

    fn soon() -> Duration {
        Duration::from_millis(100)
    }

    #[test]
    fn fills_instances_up_to_concurrency_then_creates_more() {
        let p = pool(2, 2, 0);
        let mut a = p.acquire(soon()).unwrap();
        assert!(a.is_fresh());
        a.mark_ready();
        let b = p.acquire(soon()).unwrap();
        assert!(!b.is_fresh(), "second invocation shares the ready instance");
        let mut c = p.acquire(soon()).unwrap();
        assert!(c.is_fresh(), "instance full: a new one");
        c.mark_ready();
        let _d = p.acquire(soon()).unwrap();
        assert_eq!(p.acquire(soon()).unwrap_err(), AcquireError::QueueFull(0));
        assert_eq!(p.stats().instances, 2);
        assert_eq!(p.stats().active, 4);
        drop(b);
        assert!(!p.acquire(soon()).unwrap().is_fresh());
    }

    #[test]
    fn a_queued_invocation_gets_the_next_free_slot_or_times_out() {
        let p = pool(1, 1, 1);
        let mut first = p.acquire(soon()).unwrap();
        first.mark_ready();
        let waiter = {
            let p = Arc::clone(&p);
            std::thread::spawn(move || p.acquire(Duration::from_secs(5)).map(|l| l.is_fresh()))
        };
        while p.stats().queued == 0 {
            std::thread::yield_now();
        }
        assert!(matches!(p.acquire(soon()), Err(AcquireError::QueueFull(1))));
        drop(first);
        assert_eq!(waiter.join().unwrap(), Ok(false));
        let _busy = p.acquire(soon()).unwrap();
        let start = Instant::now();
        let e = p.acquire(Duration::from_millis(30)).unwrap_err();
        assert!(matches!(e, AcquireError::TimedOut(_)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(p.stats().rejected, 2);
    }

    #[test]
    fn idle_instances_are_released_and_a_failed_one_is_discarded() {
        let p = pool(1, 4, 0);
        let mut a = p.acquire(soon()).unwrap();
        a.mark_ready();
        drop(a);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(p.release_idle(), 1);
        assert_eq!(p.stats().instances, 0);
        let mut b = p.acquire(soon()).unwrap();
        assert!(b.is_fresh(), "a released instance is re-created");
        b.discard();
        drop(b);
        assert_eq!(p.stats().instances, 0);
        assert_eq!(p.stats().created, 2);
    }
}
