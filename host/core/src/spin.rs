//! Bounded polling before blocking.

use std::time::{Duration, Instant};

/// How long [`spin_until`] polls without giving up the CPU: about a
/// thread hand-off's round trip. Past it, the thread it waits for may need
/// this CPU (two cores, three threads), so it yields between polls.
const BUSY: Duration = Duration::from_micros(4);

/// A yield that kept this thread off the CPU this long gave the CPU to
/// another thread that had work (a yield with nobody else to run comes
/// back in well under a microsecond here, one that switches takes two
/// context switches): see [`spin_until_uncontended`].
const CONTENDED: Duration = Duration::from_micros(2);

/// Polls `done` for at most `budget`: busily for [`BUSY`], then yielding
/// the CPU between polls. Returns whether `done` became true.
pub(crate) fn spin_until(budget: Duration, done: impl FnMut() -> bool) -> bool {
    poll(budget, false, done).0
}

/// How a [`spin_until_uncontended`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Polled {
    /// `done` became true.
    Done,
    /// The budget ran out with the CPUs free.
    TimedOut,
    /// A yield gave the CPU to another thread that had work: polling
    /// stopped there.
    Contended,
}

/// [`spin_until`], but it stops at the first yield that gave the CPU to
/// another thread: for a thread that polls for work that may be a while
/// coming (a pool worker for its next job), whose polling must not take
/// the CPUs from the threads that have work. On a saturated server,
/// workers yielding while they polled for their next job spent a third of
/// the server's CPU in the context switches of `sched_yield`.
pub(crate) fn spin_until_uncontended(budget: Duration, done: impl FnMut() -> bool) -> Polled {
    match poll(budget, true, done) {
        (true, _) => Polled::Done,
        (false, true) => Polled::Contended,
        (false, false) => Polled::TimedOut,
    }
}

/// Polls `done` as [`spin_until`] describes. With `stop_when_contended`,
/// stops at a yield that switched; the second value says whether it did.
fn poll(
    budget: Duration,
    stop_when_contended: bool,
    mut done: impl FnMut() -> bool,
) -> (bool, bool) {
    if done() {
        return (true, false);
    }
    let start = Instant::now();
    let busy = BUSY.min(budget);
    loop {
        for _ in 0..32 {
            if done() {
                return (true, false);
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= busy {
            break;
        }
    }
    loop {
        if done() {
            return (true, false);
        }
        let yielded = Instant::now();
        if yielded.duration_since(start) >= budget {
            return (false, false);
        }
        std::thread::yield_now();
        if stop_when_contended && yielded.elapsed() >= CONTENDED {
            let found = done();
            return (found, !found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_poll_that_would_take_a_cpu_from_threads_with_work_stops() {
        // More busy threads than CPUs: a yield gives the CPU to one of
        // them, for far longer than `CONTENDED`.
        let stop = Arc::new(AtomicBool::new(false));
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let busy: Vec<_> = (0..cpus * 2)
            .map(|_| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let started = Instant::now();
        let ended = spin_until_uncontended(Duration::from_secs(10), || false);
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for t in busy {
            t.join().unwrap();
        }
        assert_eq!(ended, Polled::Contended);
        assert!(took < Duration::from_secs(5), "polled for {took:?}");
        // And `done` still wins over the budget and the contention.
        assert_eq!(
            spin_until_uncontended(Duration::ZERO, || true),
            Polled::Done
        );
        assert!(spin_until(Duration::from_secs(1), || true));
    }
}
