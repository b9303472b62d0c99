//! A generation whose calls run in worker processes (process isolation):
//! its library is stored, never mapped here; each worker process loads it
//! and runs the initializer as it starts ([`crate::isolation`]).

use std::sync::Arc;
use std::time::Instant;

use super::{Generation, InFlight, InitReport};
use crate::error::InvokeError;
use crate::instances::Lease;
use crate::invocation::Served;
use crate::isolation::process::ProcessPool;
use crate::outcome::{error_type, InvokeResult};

/// The worker processes of one generation.
pub(super) struct Workers {
    pool: ProcessPool,
}

impl Workers {
    pub(super) fn new(pool: ProcessPool) -> Workers {
        Workers { pool }
    }

    /// Starts `wanted` worker processes, each running the initializer.
    pub(super) fn warm_up(&self, generation: &Generation, wanted: u32) -> Result<(), InitReport> {
        for _ in 0..wanted {
            let started = Instant::now();
            let report = match self.pool.prestart() {
                Ok(log) => InitReport {
                    error: None,
                    log,
                    duration: started.elapsed(),
                },
                Err(e) => InitReport {
                    error: Some(e.error),
                    log: e.log,
                    duration: started.elapsed(),
                },
            };
            generation.init.record_once(&report);
            if report.error.is_some() {
                return Err(report);
            }
        }
        Ok(())
    }

    /// Runs one call in a worker process. The instance slot only bounds
    /// concurrency: a worker is initialized as it starts.
    pub(super) fn invoke(
        &self,
        generation: &Arc<Generation>,
        mut lease: Lease,
        flight: InFlight,
        payload: &[u8],
        served: Served,
    ) -> Result<InvokeResult, InvokeError> {
        lease.mark_ready();
        let result = self.pool.invoke(payload, &served, &generation.context);
        drop((lease, flight));
        let result = result.map_err(|busy| generation.too_many(busy.to_string()))?;
        let counters = &generation.shared.counters;
        counters.invoked();
        if result
            .outcome
            .error()
            .is_some_and(|e| e.error_type == error_type::TIMEOUT)
        {
            // The worker was killed: nothing is left running.
            counters.timed_out_and_ended();
        }
        Ok(result)
    }

    pub(super) fn starts(&self) -> u64 {
        self.pool.starts()
    }
    pub(super) fn idle_pids(&self) -> Vec<u32> {
        self.pool.idle_pids()
    }
    pub(super) fn idle_workers(&self) -> usize {
        self.pool.idle_workers()
    }
    pub(super) fn release_idle(&self) -> usize {
        self.pool.release_idle()
    }
}
