//! Worker threads that run plugin calls, so that a caller can be answered at
//! the deadline even when a handler never returns.
//!
//! The pool grows on demand (a call never waits for a busy worker) and shrinks
//! when workers stay idle. A worker stuck in a runaway handler simply stays
//! busy; it rejoins the pool if the handler ever returns.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};

use crate::io_lane::Job;
use crate::spin::{spin_until_uncontended, Polled};

/// How long an idle worker polls for the next job before it parks. Polling
/// keeps back-to-back invocations off the futex path (a park and wake costs
/// ~10 us on this machine class); the cost is at most this much CPU per job.
const POLL_FOR_NEXT_JOB: Duration = Duration::from_micros(50);

/// How long an idle worker polls for the next job while the CPUs are
/// contended: busily, without yielding, then it parks. A worker's poll
/// that found the CPUs contended (a yield gave the CPU to another thread)
/// makes the pool's polls this short for [`CONTENDED_FOR`]: on a saturated
/// server the yields' context switches cost more than the wake-ups they
/// save (measured over HTTP: 12 % more requests a second, 13 % less CPU
/// per request), while a quiet server keeps the long poll.
const POLL_WHILE_CONTENDED: Duration = Duration::from_micros(4);
/// How long a contended poll keeps the pool's polls short.
const CONTENDED_FOR: Duration = Duration::from_millis(100);

/// A growable pool of worker threads.
#[derive(Debug, Clone)]
pub(crate) struct WorkerPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    sender: Sender<Job>,
    receiver: Receiver<Job>,
    /// Workers waiting for a job and not yet reserved by a submitter.
    idle: AtomicUsize,
    threads: AtomicUsize,
    /// Idle workers polling for the next job (at most one: the others park
    /// at once, so idle workers never crowd the CPUs that the caller and the
    /// busy workers need; with several pollers yielding to each other on 2
    /// cores, hand-offs became bimodal, 1 µs or 6 µs).
    spinning: AtomicUsize,
    idle_timeout: Duration,
    stack_size: usize,
    /// Until when (nanoseconds since `epoch`) idle workers poll only
    /// [`POLL_WHILE_CONTENDED`].
    contended_until: AtomicU64,
    epoch: Instant,
    /// ABI 1.4's `fnhost_start_thread` of the library whose calls this
    /// pool runs: its threads are then the plugin runtime's own (Go's), so
    /// no call enters that runtime from a thread it did not create.
    start_thread: Option<fnhost_api::abi::StartThreadFn>,
}

/// A worker thread's whole life, handed to a plugin's thread.
struct Spawn(Box<dyn FnOnce() + Send>);

impl WorkerPool {
    pub(crate) fn new(idle_timeout: Duration, stack_size: usize) -> WorkerPool {
        Self::with_threads_of(idle_timeout, stack_size, None)
    }

    /// A pool whose threads `start_thread` (a 1.4 plugin's
    /// `fnhost_start_thread`) starts, or this process when it is `None` or
    /// declines.
    pub(crate) fn with_threads_of(
        idle_timeout: Duration,
        stack_size: usize,
        start_thread: Option<fnhost_api::abi::StartThreadFn>,
    ) -> WorkerPool {
        let (sender, receiver) = crossbeam_channel::unbounded();
        WorkerPool {
            inner: Arc::new(Inner {
                sender,
                receiver,
                idle: AtomicUsize::new(0),
                threads: AtomicUsize::new(0),
                spinning: AtomicUsize::new(0),
                contended_until: AtomicU64::new(0),
                epoch: Instant::now(),
                idle_timeout,
                stack_size,
                start_thread,
            }),
        }
    }

    /// Worker threads alive (busy or idle).
    pub(crate) fn threads(&self) -> usize {
        self.inner.threads.load(Ordering::Relaxed)
    }

    /// Workers waiting for work.
    pub(crate) fn idle(&self) -> usize {
        self.inner.idle.load(Ordering::Relaxed)
    }

    /// Runs `job` on an idle worker, or on a new one if none is idle.
    pub(crate) fn execute(&self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        self.execute_boxed(Box::new(job))
    }

    /// [`execute`](Self::execute) for a job that is boxed already.
    pub(crate) fn execute_boxed(&self, job: Job) -> std::io::Result<()> {
        // Reserve an idle worker; each reservation matches one queued job.
        let reserved = self
            .inner
            .idle
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if reserved {
            // Cannot fail: `inner` holds a receiver for as long as we hold a sender.
            let _ = self.inner.sender.send(job);
            return Ok(());
        }
        let inner = Arc::clone(&self.inner);
        inner.threads.fetch_add(1, Ordering::Relaxed);
        let life = Spawn(Box::new(move || worker(inner, job)));
        let life = match self.inner.start_thread {
            Some(start) => match on_plugin_thread(start, life) {
                Ok(()) => return Ok(()),
                Err(declined) => declined,
            },
            None => life,
        };
        let spawned = std::thread::Builder::new()
            .name("fnhost-worker".into())
            .stack_size(self.inner.stack_size)
            .spawn(move || (life.0)());
        if spawned.is_err() {
            self.inner.threads.fetch_sub(1, Ordering::Relaxed);
        }
        spawned.map(|_| ())
    }
}

/// Runs `life` on a thread the plugin starts; gives it back when the
/// plugin declines.
fn on_plugin_thread(start: fnhost_api::abi::StartThreadFn, life: Spawn) -> Result<(), Spawn> {
    /// The plugin's new thread: runs the worker's life, which catches its
    /// jobs' panics; nothing unwinds into the plugin's runtime.
    unsafe extern "C" fn entry(arg: *mut std::ffi::c_void) {
        // SAFETY: `arg` is the `Box<Spawn>` leaked below, which the ABI
        // lets the plugin hand to `entry` once; in process the plugin is
        // trusted to keep that promise (docs/src/isolation/trust.md).
        let life = unsafe { Box::from_raw(arg.cast::<Spawn>()) };
        let _ = panic::catch_unwind(AssertUnwindSafe(move || (life.0)()));
    }
    let arg = Box::into_raw(Box::new(life)).cast::<std::ffi::c_void>();
    // SAFETY: `start` is a 1.4 plugin's `fnhost_start_thread`, called as
    // the ABI declares it, with `entry` and its argument above.
    if unsafe { start(entry, arg) } == 0 {
        return Ok(());
    }
    // SAFETY: declined, so `entry` is never called: the box is still ours.
    Err(*unsafe { Box::from_raw(arg.cast::<Spawn>()) })
}

thread_local! {
    /// On a pool worker thread: its pool, so that a job about to return
    /// can put the worker on the idle count early ([`returning_soon`]).
    static POOL: std::cell::Cell<*const Inner> = const { std::cell::Cell::new(std::ptr::null()) };
    /// Whether the running job already counted this worker idle.
    static COUNTED_IDLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Called by a job just before it tells its caller that it finished: when
/// it runs on a pool worker, that worker counts as idle from now on. A
/// caller that hears back and at once submits its next job then hands it
/// to this worker (warm, polling for it a moment later) instead of finding
/// no idle worker and starting another thread; with sequential calls a
/// pool kept starting threads this way, and each of them parked, was
/// woken by every later submission and took jobs in turn. A no-op on any
/// other thread, and after the first call in a job.
pub(crate) fn returning_soon() {
    let pool = POOL.with(std::cell::Cell::get);
    if pool.is_null() || COUNTED_IDLE.with(|c| c.replace(true)) {
        return;
    }
    // SAFETY: `POOL` is set by `worker` to the `Inner` its own `Arc`
    // keeps alive, and cleared before that `Arc` is dropped; this thread
    // is that worker, inside one of its jobs.
    unsafe { &*pool }.idle.fetch_add(1, Ordering::AcqRel);
}

fn run(job: Job) {
    // Jobs are host code that calls plugins through panic-catching trampolines;
    // should host code itself panic, the worker survives it.
    let _ = panic::catch_unwind(AssertUnwindSafe(job));
}

fn worker(inner: Arc<Inner>, first: Job) {
    POOL.with(|p| p.set(Arc::as_ptr(&inner)));
    /// Clears `POOL` when the worker ends, however it ends.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            POOL.with(|p| p.set(std::ptr::null()));
        }
    }
    let _clear = Clear;
    run(first);
    loop {
        // Unless the job did already (`returning_soon`).
        if !COUNTED_IDLE.with(|c| c.replace(false)) {
            inner.idle.fetch_add(1, Ordering::AcqRel);
        }
        let mut polled = None;
        if inner
            .spinning
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            let now = inner.epoch.elapsed().as_nanos() as u64;
            let budget = if now < inner.contended_until.load(Ordering::Relaxed) {
                POLL_WHILE_CONTENDED
            } else {
                POLL_FOR_NEXT_JOB
            };
            let ended = spin_until_uncontended(budget, || match inner.receiver.try_recv() {
                Ok(job) => {
                    polled = Some(job);
                    true
                }
                Err(TryRecvError::Empty) => false,
                Err(TryRecvError::Disconnected) => true,
            });
            if ended == Polled::Contended {
                let until = inner.epoch.elapsed() + CONTENDED_FOR;
                inner
                    .contended_until
                    .store(until.as_nanos() as u64, Ordering::Relaxed);
            }
            inner.spinning.store(0, Ordering::Release);
        }
        let job = loop {
            if let Some(job) = polled.take() {
                break Some(job);
            }
            match inner.receiver.recv_timeout(inner.idle_timeout) {
                Ok(job) => break Some(job),
                Err(RecvTimeoutError::Timeout) => {
                    // Leave only if nobody reserved this idle slot meanwhile;
                    // otherwise a job is on its way.
                    if inner
                        .idle
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        break None;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break None,
            }
        };
        match job {
            Some(job) => run(job),
            None => {
                inner.threads.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn reuses_idle_workers_and_grows_when_all_are_busy() {
        let pool = WorkerPool::new(Duration::from_secs(60), 256 * 1024);
        let (tx, rx) = mpsc::channel();
        for i in 0..50 {
            let tx = tx.clone();
            pool.execute(move || tx.send(i).unwrap()).unwrap();
            rx.recv().unwrap();
        }
        // Sequential jobs reuse workers. (A worker can be a moment late in
        // marking itself idle, so the next job occasionally starts another.)
        assert!(pool.threads() < 10, "{}", pool.threads());
        let (block_tx, block_rx) = crossbeam_channel::bounded::<()>(0);
        for _ in 0..4 {
            let r = block_rx.clone();
            pool.execute(move || {
                let _ = r.recv();
            })
            .unwrap();
        }
        assert!(pool.threads() >= 4);
        drop(block_tx);
    }

    #[test]
    fn sequential_jobs_that_say_they_return_soon_keep_one_worker() {
        let pool = WorkerPool::new(Duration::from_secs(60), 256 * 1024);
        let (tx, rx) = mpsc::channel();
        for i in 0..2_000 {
            let tx = tx.clone();
            pool.execute(move || {
                // As an invocation's job does before its caller hears back.
                returning_soon();
                returning_soon(); // a second call in one job counts nothing
                tx.send(i).unwrap();
                // The job's own bookkeeping after that (drops, counters).
                std::hint::black_box((0..200).sum::<u64>());
            })
            .unwrap();
            rx.recv().unwrap();
        }
        assert_eq!(pool.threads(), 1, "sequential calls started more threads");
        assert!(pool.idle() <= 1, "idle count {}", pool.idle());
        // Off a pool thread it changes nothing.
        returning_soon();
        assert!(pool.idle() <= 1);
    }

    #[test]
    fn idle_workers_leave_after_the_idle_timeout() {
        let pool = WorkerPool::new(Duration::from_millis(20), 256 * 1024);
        let (tx, rx) = mpsc::channel();
        pool.execute(move || tx.send(()).unwrap()).unwrap();
        rx.recv().unwrap();
        let start = std::time::Instant::now();
        while pool.threads() > 0 && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(pool.threads(), 0);
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_worker() {
        let pool = WorkerPool::new(Duration::from_secs(60), 256 * 1024);
        pool.execute(|| panic!("host bug")).unwrap();
        let (tx, rx) = mpsc::channel();
        pool.execute(move || tx.send(()).unwrap()).unwrap();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
    }
}
