//! A [`Generation`]: one deployment of a function's code and configuration.
//!
//! What every generation has, whichever way it runs, lives here: its id,
//! configuration and library, the instance slots that bound its
//! concurrency, its in-flight count (so a replaced generation can drain
//! before it is retired) and its initializer's record ([`init`]). How its
//! calls run is its [`Execution`], fixed when it is built ([`build`]):
//! - [`InProcess`](in_process): the library is mapped here and its resolved
//!   handler runs on a worker thread, on the calling thread, or on an I/O
//!   lane ([`Started`] and [`Pending`] are the non-blocking start);
//! - [`Workers`](workers): the library is only stored; worker processes
//!   load and run it.

pub(crate) mod build;
mod in_process;
mod init;
mod workers;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::FunctionConfig;
use crate::error::InvokeError;
use crate::instances::{InstancePool, InstanceStats};
use crate::invocation::{FunctionContext, Served};
use crate::loader::Library;
use crate::outcome::InvokeResult;
use crate::shared::Shared;

pub use in_process::{AtDeadline, Pending, Started};
pub(crate) use in_process::{InProcess, OnLane};
pub use init::InitReport;
use init::Initialization;
use workers::Workers;

/// Where the handler of an in-process generation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// On a worker thread; the caller is answered at the deadline.
    Worker,
    /// On the calling thread.
    CurrentThread,
}

/// How a generation's calls run: decided by its isolation when it is built.
enum Execution {
    /// The library is mapped in this process; its handler is called directly.
    InProcess(InProcess),
    /// The library is stored, never mapped here; worker processes run it.
    Workers(Box<Workers>),
}

/// One deployment of a function: code (a [`Library`] and a handler in it) and
/// the configuration it runs with. Immutable; replaced, never changed.
pub struct Generation {
    id: u64,
    shared: Arc<Shared>,
    config: FunctionConfig,
    context: Arc<FunctionContext>,
    library: Arc<Library>,
    /// Instance slots: how many calls run at once (and, in process, which
    /// instances have run the initializer).
    instances: Arc<InstancePool>,
    init: Initialization,
    in_flight: AtomicUsize,
    /// Its handlers (and initializers) still running past their deadline:
    /// each holds its instance slot until it returns.
    runaways: AtomicUsize,
    live: AtomicBool,
    created: SystemTime,
    execution: Execution,
}

/// Counts an invocation as in flight on its generation until dropped (which,
/// for a runaway handler, is when the handler finally returns).
struct InFlight(Arc<Generation>);

impl InFlight {
    fn new(generation: &Arc<Generation>) -> InFlight {
        generation.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(generation))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The last call of a replaced generation: it may retire now.
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 && !self.0.is_live() {
            self.0.shared.housekeeping.wake();
        }
    }
}

impl Generation {
    fn new(
        shared: Arc<Shared>,
        config: FunctionConfig,
        library: Arc<Library>,
        execution: Execution,
    ) -> Arc<Generation> {
        let context = Arc::new(FunctionContext::from_config(
            &config,
            Arc::clone(&shared.host_functions),
        ));
        Arc::new(Generation {
            id: shared.counters.next_generation_id(),
            shared,
            context,
            instances: InstancePool::new(config.instances),
            init: Initialization::default(),
            config,
            library,
            in_flight: AtomicUsize::new(0),
            runaways: AtomicUsize::new(0),
            live: AtomicBool::new(true),
            created: SystemTime::now(),
            execution,
        })
    }

    /// A process-wide unique, increasing id.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The configuration it runs with.
    pub fn config(&self) -> &FunctionConfig {
        &self.config
    }
    /// Its code: mapped in this process, or (process isolation) only stored
    /// for worker processes ([`Library::is_mapped`]).
    pub fn library(&self) -> &Arc<Library> {
        &self.library
    }
    /// How many log bytes a caller is shown.
    pub(crate) fn log_tail_bytes(&self) -> usize {
        self.shared.config.log_tail_bytes
    }
    /// The threads that wait for calls started without blocking
    /// ([`crate::CallHandle`]).
    pub(crate) fn caller_pool(&self) -> &crate::pool::WorkerPool {
        &self.shared.pool
    }
    /// Whether its calls run in worker processes (process isolation).
    pub fn runs_in_worker_processes(&self) -> bool {
        matches!(self.execution, Execution::Workers(_))
    }
    /// When it was created.
    pub fn created(&self) -> SystemTime {
        self.created
    }
    /// Invocations running on it now (runaway handlers included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
    /// Whether it still serves new invocations (as the head or a published version).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
    pub(crate) fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }
    /// Its instances.
    pub fn instance_stats(&self) -> InstanceStats {
        self.instances.stats()
    }
    /// Its calls still running past their deadline (in process: each holds
    /// an instance slot and a worker thread until its handler returns).
    pub fn runaway_invocations(&self) -> usize {
        self.runaways.load(Ordering::Relaxed)
    }
    /// A call of it timed out with its handler still running.
    pub(crate) fn runaway_started(&self) {
        self.shared.counters.timed_out();
        self.runaways.fetch_add(1, Ordering::Relaxed);
    }
    /// A call of it was cancelled with its handler still running.
    pub(crate) fn runaway_cancelled(&self) {
        self.shared.counters.cancelled_running();
        self.runaways.fetch_add(1, Ordering::Relaxed);
    }
    /// A runaway call of it returned at last.
    pub(crate) fn runaway_ended(&self, request_id: &str) {
        let _ = self
            .runaways
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.shared.counters.runaway_finished(request_id);
    }
    /// Worker processes started for this generation so far (process isolation).
    pub fn worker_process_starts(&self) -> u64 {
        self.workers().map_or(0, Workers::starts)
    }
    /// Process ids of the idle worker processes (process isolation).
    pub fn idle_worker_pids(&self) -> Vec<u32> {
        self.workers().map_or_else(Vec::new, Workers::idle_pids)
    }
    /// Worker processes idle in this generation's pool (process isolation).
    pub fn idle_worker_processes(&self) -> usize {
        self.workers().map_or(0, Workers::idle_workers)
    }
    /// Releases instances idle past the idle timeout (beyond the reserved
    /// ones): idle instance slots, and idle worker processes.
    pub fn release_idle_instances(&self) -> usize {
        let processes = self.workers().map_or(0, Workers::release_idle);
        self.instances.release_idle() + processes
    }
    /// The report of the initializer's most recent run, if it has run.
    pub fn initializer_report(&self) -> Option<InitReport> {
        self.init.last()
    }

    fn workers(&self) -> Option<&Workers> {
        match &self.execution {
            Execution::Workers(workers) => Some(workers),
            Execution::InProcess(_) => None,
        }
    }

    /// Creates the reserved instances (at least one), running the
    /// initializer for each. Returns the first failure.
    pub(crate) fn warm_up(self: &Arc<Self>) -> Result<(), InitReport> {
        let instances = &self.config.instances;
        let wanted = instances
            .reserved_instances
            .max(1)
            .min(instances.max_instances);
        match &self.execution {
            Execution::InProcess(in_process) => in_process.warm_up(self, wanted),
            Execution::Workers(workers) => workers.warm_up(self, wanted),
        }
    }

    /// Invokes the handler (see [`crate::Function::invoke`]). `served` is
    /// what the context reports as the version and alias; `mode` where an
    /// in-process handler runs.
    pub(crate) fn invoke(
        self: &Arc<Self>,
        payload: &[u8],
        served: Served,
        mode: Mode,
    ) -> Result<InvokeResult, InvokeError> {
        self.check_payload(payload.len())?;
        if let Some(report) = self.init.broken_report() {
            return Ok(self.initialization_failure(report));
        }
        let flight = InFlight::new(self);
        let lease = self
            .instances
            .acquire(self.config.timeout)
            .map_err(|e| self.too_many(e.to_string()))?;
        match &self.execution {
            Execution::InProcess(in_process) => {
                in_process.invoke(self, lease, flight, payload, served, mode)
            }
            Execution::Workers(workers) => workers.invoke(self, lease, flight, payload, served),
        }
    }

    fn check_payload(&self, size: usize) -> Result<(), InvokeError> {
        let limit = self.shared.config.max_payload_bytes;
        if size > limit {
            return Err(InvokeError::PayloadTooLarge { size, limit });
        }
        Ok(())
    }

    fn too_many(&self, reason: String) -> InvokeError {
        InvokeError::TooManyRequests {
            function: self.context.function_name.clone(),
            reason,
        }
    }

    /// The answer of a call to a generation whose initializer failed.
    fn initialization_failure(&self, report: InitReport) -> InvokeResult {
        self.shared.counters.invoked();
        init::failure_result(
            report,
            self.config.memory_mb,
            self.shared.config.log_tail_bytes,
        )
    }

    /// How long the initializer may run.
    fn initializer_timeout(&self) -> Duration {
        self.config.effective_initializer_timeout()
    }
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("id", &self.id)
            .field("function", &self.context.function_name)
            .field("entry", &self.config.entry)
            .field("library", &self.library.digest())
            .field("worker_processes", &self.runs_in_worker_processes())
            .field("in_flight", &self.in_flight())
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}
