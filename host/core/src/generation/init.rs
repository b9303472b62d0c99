//! A generation's initializer record: FunctionGraph's retry rule (a failing
//! initializer runs again on the next call, up to 3 runs in all; a timeout
//! ends the retries at once), and the answer calls get once it gave up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::outcome::{error_type, FunctionError, InvokeResult, Outcome, Summary};

/// FunctionGraph retries a failing initializer up to 3 times; after that (or
/// after an initializer timeout) the generation answers with the last
/// initialization error without running it again.
const MAX_INIT_FAILURES: u32 = 3;

/// The outcome of an initializer run.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// `None` when it succeeded.
    pub error: Option<FunctionError>,
    /// What it logged.
    pub log: String,
    /// How long it ran.
    pub duration: Duration,
}

#[derive(Default)]
struct Tracker {
    consecutive_failures: u32,
    broken: bool,
    last: Option<InitReport>,
}

/// The initializer runs of one generation.
#[derive(Default)]
pub(super) struct Initialization {
    tracker: Mutex<Tracker>,
    /// Mirrors `tracker.broken` for a lock-free check on every invocation.
    broken: AtomicBool,
}

impl Initialization {
    /// The most recent run's report.
    pub(super) fn last(&self) -> Option<InitReport> {
        self.tracker.lock().last.clone()
    }

    /// Whether calls are answered without running it again: the report
    /// they are answered with.
    pub(super) fn broken_report(&self) -> Option<InitReport> {
        if !self.is_broken() {
            return None;
        }
        let tracker = self.tracker.lock();
        if tracker.broken {
            tracker.last.clone()
        } else {
            None
        }
    }

    /// [`broken_report`](Self::broken_report) without the lock.
    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Records a run that has no retries (a worker process's, which runs
    /// it as it starts).
    pub(super) fn record_once(&self, report: &InitReport) {
        self.tracker.lock().last = Some(report.clone());
    }

    /// Records a run and applies the retry rule; true if it succeeded.
    pub(super) fn record(&self, report: &InitReport, timed_out: bool) -> bool {
        let mut tracker = self.tracker.lock();
        tracker.last = Some(report.clone());
        if report.error.is_none() {
            tracker.consecutive_failures = 0;
            return true;
        }
        tracker.consecutive_failures += 1;
        if timed_out || tracker.consecutive_failures >= MAX_INIT_FAILURES {
            tracker.broken = true;
            self.broken.store(true, Ordering::Release);
        }
        false
    }
}

/// The answer of a call whose initializer failed.
pub(super) fn failure_result(
    report: InitReport,
    memory_mb: u32,
    tail_bytes: usize,
) -> InvokeResult {
    let error = report
        .error
        .unwrap_or_else(|| FunctionError::new(error_type::INITIALIZATION, "initializer failed"));
    InvokeResult {
        request_id: uuid::Uuid::new_v4().to_string(),
        outcome: Outcome::Failure(error),
        summary: Summary::new(report.duration, memory_mb, 0),
        log: report.log,
        tail_bytes,
        cold_start: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> InitReport {
        InitReport {
            error: Some(FunctionError::new(error_type::INITIALIZATION, "no")),
            log: String::new(),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn three_failures_end_the_retries_and_a_success_resets_the_count() {
        let init = Initialization::default();
        assert!(!init.record(&failed(), false));
        assert!(!init.record(&failed(), false));
        let ok = InitReport {
            error: None,
            ..failed()
        };
        assert!(init.record(&ok, false));
        assert!(init.broken_report().is_none());
        for _ in 0..MAX_INIT_FAILURES {
            assert!(!init.record(&failed(), false));
        }
        assert!(init.broken_report().is_some());
    }

    #[test]
    fn a_timeout_ends_the_retries_at_once() {
        let init = Initialization::default();
        init.record(&failed(), true);
        assert!(init.is_broken());
        assert!(init.broken_report().is_some());
    }
}
