//! A [`Generation`]: one deployment of a function's code and configuration.
//! It owns the resolved handler, the library it lives in (kept mapped), the
//! instance pool (initializer runs, concurrency), and counts its in-flight
//! invocations so a replaced generation can drain before it is retired.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use fnhost_api::abi::{self, HostStr};
use parking_lot::Mutex;

use crate::config::{FunctionConfig, Isolation};
use crate::error::InvokeError;
use crate::instances::{InstancePool, InstanceStats, Lease};
use crate::invocation::{CallKind, Completion, FunctionContext, InvocationState, Served};
use crate::io_lane::{IoLane, Job, ShortRecord, Slot};
use crate::isolation::process::ProcessPool;
use crate::loader::Library;
use crate::outcome::{error_type, FunctionError, InvokeResult, Outcome, Summary};
use crate::runtime::Shared;

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
struct InitTracker {
    consecutive_failures: u32,
    broken: bool,
    last: Option<InitReport>,
}

/// Where the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// On a worker thread; the caller is answered at the deadline.
    Worker,
    /// On the calling thread.
    CurrentThread,
}

/// One deployment of a function: code (a [`Library`] and a handler in it) and
/// the configuration it runs with. Immutable; replaced, never changed.
pub struct Generation {
    id: u64,
    shared: Arc<Shared>,
    config: FunctionConfig,
    context: Arc<FunctionContext>,
    library: Arc<Library>,
    handler: abi::HandlerFn,
    initializer: Option<(String, abi::InitializerFn)>,
    pool: Arc<InstancePool>,
    init: Mutex<InitTracker>,
    /// Mirrors `init.broken` for a lock-free check on every invocation.
    init_broken: AtomicBool,
    in_flight: AtomicUsize,
    live: AtomicBool,
    created: SystemTime,
    /// Worker processes, when the function runs with process isolation.
    process: Option<ProcessPool>,
    /// Whether its handler has proven short enough for an [`IoLane`].
    short: Arc<ShortRecord>,
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
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Generation {
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: FunctionConfig,
        library: Arc<Library>,
        handler: abi::HandlerFn,
        initializer: Option<(String, abi::InitializerFn)>,
    ) -> Arc<Generation> {
        let id = shared.counters.next_generation_id();
        let process = library
            .file()
            .filter(|_| config.isolation == Isolation::Process)
            .map(|file| {
                ProcessPool::new(
                    shared.config.worker_executable(),
                    Arc::clone(file),
                    config.clone(),
                    shared.config.log_tail_bytes,
                    shared.config.worker_queue_timeout,
                )
            });
        Arc::new(Generation {
            process,
            id,
            shared,
            context: Arc::new(FunctionContext::from_config(&config)),
            pool: InstancePool::new(config.instances),
            config,
            library,
            handler,
            initializer,
            init: Mutex::new(InitTracker::default()),
            init_broken: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            live: AtomicBool::new(true),
            created: SystemTime::now(),
            short: Arc::default(),
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
    /// Its code.
    pub fn library(&self) -> &Arc<Library> {
        &self.library
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
    /// Whether its calls qualify for an [`IoLane`] now: an in-process
    /// handler that has proven short (see the lane's probation).
    pub fn qualifies_for_lane(&self) -> bool {
        self.config.isolation == Isolation::InProcess && self.short.qualifies()
    }
    pub(crate) fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }
    /// Its instances.
    pub fn instance_stats(&self) -> InstanceStats {
        self.pool.stats()
    }
    /// Worker processes started for this generation so far (process isolation).
    pub fn worker_process_starts(&self) -> u64 {
        self.process.as_ref().map_or(0, ProcessPool::starts)
    }

    /// Process ids of the idle worker processes (process isolation).
    pub fn idle_worker_pids(&self) -> Vec<u32> {
        self.process
            .as_ref()
            .map_or_else(Vec::new, ProcessPool::idle_pids)
    }

    /// Worker processes idle in this generation's pool (process isolation).
    pub fn idle_worker_processes(&self) -> usize {
        self.process.as_ref().map_or(0, ProcessPool::idle_workers)
    }

    /// Releases instances idle past the idle timeout (beyond the reserved ones).
    pub fn release_idle_instances(&self) -> usize {
        let processes = self.process.as_ref().map_or(0, ProcessPool::release_idle);
        self.pool.release_idle() + processes
    }
    /// The report of the initializer's most recent run, if it has run.
    pub fn initializer_report(&self) -> Option<InitReport> {
        self.init.lock().last.clone()
    }

    /// Creates the reserved instances (at least one), running the
    /// initializer for each. Returns the first failure.
    pub(crate) fn warm_up(self: &Arc<Self>) -> Result<(), InitReport> {
        let instances = &self.config.instances;
        let wanted = instances
            .reserved_instances
            .max(1)
            .min(instances.max_instances);
        if let Some(pool) = &self.process {
            // The initializer runs in each worker as it starts.
            for _ in 0..wanted {
                let started = Instant::now();
                let report = match pool.prestart() {
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
                self.init.lock().last = Some(report.clone());
                if report.error.is_some() {
                    return Err(report);
                }
            }
            return Ok(());
        }
        for _ in 0..wanted {
            let Some(mut lease) = self.pool.create() else {
                break;
            };
            self.initialize(&mut lease)?;
        }
        Ok(())
    }

    /// Initializes the instance behind a fresh lease.
    fn initialize(self: &Arc<Self>, lease: &mut Lease) -> Result<(), InitReport> {
        let Some((entry, function)) = &self.initializer else {
            lease.mark_ready();
            return Ok(());
        };
        let (report, timed_out) = self.run_initializer(entry, *function);
        let mut init = self.init.lock();
        init.last = Some(report.clone());
        if report.error.is_none() {
            init.consecutive_failures = 0;
            drop(init);
            lease.mark_ready();
            return Ok(());
        }
        init.consecutive_failures += 1;
        if timed_out || init.consecutive_failures >= MAX_INIT_FAILURES {
            init.broken = true;
            self.init_broken.store(true, Ordering::Release);
        }
        lease.discard();
        Err(report)
    }

    fn new_state(&self, timeout: Duration, served: Served) -> InvocationState {
        InvocationState::new(
            Arc::clone(&self.context),
            timeout,
            self.shared.limits(),
            served,
        )
    }

    fn run_initializer(
        self: &Arc<Self>,
        entry: &str,
        function: abi::InitializerFn,
    ) -> (InitReport, bool) {
        let timeout = self.config.effective_initializer_timeout();
        let state = Arc::new(self.new_state(timeout, Served::default()));
        let job_state = Arc::clone(&state);
        let keep = Arc::clone(self);
        let started = Instant::now();
        let spawned = self.shared.pool.execute(move || {
            // SAFETY: `function` comes from the checked descriptor of the
            // generation's library, which `keep` holds mapped; `ctx` is valid
            // for the call.
            let runaway = job_state.run(|ctx| unsafe { function(ctx) });
            if runaway {
                keep.shared
                    .counters
                    .runaway_finished(job_state.request_id());
            }
            drop(keep);
        });
        if let Err(e) = spawned {
            let error = FunctionError::new(
                error_type::INITIALIZATION,
                format!("cannot start a worker thread for the initializer: {e}"),
            );
            return (
                InitReport {
                    error: Some(error),
                    log: String::new(),
                    duration: Duration::ZERO,
                },
                false,
            );
        }
        let completion = state.wait();
        let timed_out = matches!(completion, Completion::TimedOut);
        if timed_out {
            self.shared.counters.timed_out();
        }
        let result = state.finish(completion, CallKind::Initializer);
        let error = result.outcome.error().map(|e| {
            FunctionError::new(
                error_type::INITIALIZATION,
                format!(
                    "initializer {entry} failed ({}): {}",
                    e.error_type, e.message
                ),
            )
        });
        if let Some(e) = &error {
            log::error!(target: "fnhost::invoke", "function {}: {}", self.context.function_name, e.message);
        }
        let report = InitReport {
            error,
            log: result.log,
            duration: started.elapsed(),
        };
        (report, timed_out)
    }

    /// Invokes the handler (see [`crate::Function::invoke`]). `served` is
    /// what the context reports as the version and alias.
    pub(crate) fn invoke(
        self: &Arc<Self>,
        payload: &[u8],
        served: Served,
        mode: Mode,
    ) -> Result<InvokeResult, InvokeError> {
        self.check_payload(payload.len())?;
        if let Some(report) = self.broken_initializer() {
            return Ok(self.initialization_failure(report));
        }
        let flight = InFlight::new(self);
        let timeout = self.config.timeout;
        let mut lease = self
            .pool
            .acquire(timeout)
            .map_err(|e| InvokeError::TooManyRequests {
                function: self.context.function_name.clone(),
                reason: e.to_string(),
            })?;
        if let Some(pool) = &self.process {
            // Instances are worker processes, initialized as they start.
            lease.mark_ready();
            let result = pool.invoke(payload, &served);
            drop((lease, flight));
            let result = result.map_err(|busy| InvokeError::TooManyRequests {
                function: self.context.function_name.clone(),
                reason: busy.to_string(),
            })?;
            let counters = &self.shared.counters;
            counters.invoked();
            if result
                .outcome
                .error()
                .is_some_and(|e| e.error_type == error_type::TIMEOUT)
            {
                counters.timed_out_and_ended();
            }
            return Ok(result);
        }
        if lease.is_fresh() {
            if let Err(report) = self.initialize(&mut lease) {
                return Ok(self.initialization_failure(report));
            }
        }
        let mode = match self.config.isolation {
            Isolation::Inline => Mode::CurrentThread,
            _ => mode,
        };
        match mode {
            Mode::CurrentThread => Ok(self.run_here(lease, flight, served, payload)),
            Mode::Worker => {
                let state = Arc::new(self.new_state(timeout, served));
                self.dispatch(&state, lease, flight, payload.to_vec())?;
                let completion = state.wait();
                self.record(&state, &completion);
                Ok(state.finish(completion, CallKind::Handler))
            }
        }
    }

    /// Runs the handler on the calling thread. The deadline is checked when
    /// the handler returns: a late result is answered `timeout`.
    fn run_here(
        &self,
        lease: Lease,
        flight: InFlight,
        served: Served,
        payload: &[u8],
    ) -> InvokeResult {
        let timeout = self.config.timeout;
        let handler = self.handler;
        let state = self.new_state(timeout, served);
        let completion = state.run_here(|ctx| {
            // SAFETY: `handler` comes from the checked descriptor of this
            // generation's library, mapped while `self` lives; the context
            // and payload are valid for the call.
            unsafe { handler(ctx, HostStr::from_slice(payload)) }
        });
        drop((lease, flight));
        match completion {
            Completion::Finished(_, elapsed) if elapsed > timeout => {
                // Nothing is left running: a timeout, not a runaway.
                let counters = &self.shared.counters;
                counters.invoked();
                counters.timed_out_and_ended();
                state.log_line(&format!(
                    "invocation ran {:.3} ms, past its timeout of {}; answered when it returned",
                    elapsed.as_secs_f64() * 1000.0,
                    crate::invocation::format_timeout(timeout)
                ));
                log::warn!(
                    target: "fnhost::invoke",
                    "function {} request {} ran {elapsed:?} on the caller's thread, past its timeout of {timeout:?}",
                    self.context.function_name,
                    state.request_id(),
                );
                state.finish(Completion::TimedOut, CallKind::Handler)
            }
            completion => {
                self.record(&state, &completion);
                state.finish(completion, CallKind::Handler)
            }
        }
    }

    /// Starts an invocation without blocking the caller, when a ready
    /// instance has a free slot now: on `lane` if the handler qualifies and
    /// a lane slot is free, else on a worker thread; or, for
    /// [`Isolation::Inline`], to completion on the calling thread.
    pub(crate) fn start<P>(
        self: &Arc<Self>,
        payload: P,
        served: Served,
        lane: Option<OnLane<'_>>,
    ) -> Result<Started, InvokeError>
    where
        P: AsRef<[u8]> + Send + 'static,
    {
        self.check_payload(payload.as_ref().len())?;
        if self.init_broken.load(Ordering::Acquire) || self.process.is_some() {
            return Ok(Started::MustBlock);
        }
        let Some(lease) = self.pool.try_acquire() else {
            return Ok(Started::MustBlock);
        };
        let flight = InFlight::new(self);
        if self.config.isolation == Isolation::Inline {
            let result = self.run_here(lease, flight, served, payload.as_ref());
            return Ok(Started::Done(result));
        }
        let state = Arc::new(self.new_state(self.config.timeout, served));
        let on_lane = lane.filter(|_| self.short.qualifies()).and_then(|lane| {
            let slot = lane.lane().claim(&state, Arc::clone(&self.short))?;
            Some((lane, slot))
        });
        let deadline_watched = on_lane.is_some();
        match on_lane {
            Some((OnLane::Spawned(lane), slot)) => {
                lane.spawn(self.job(&state, lease, flight, payload, Some(slot)))
            }
            Some((OnLane::Here(_, at_deadline), slot)) => {
                return Ok(self.run_on_caller(state, lease, flight, payload, slot, at_deadline));
            }
            None => self.dispatch(&state, lease, flight, payload)?,
        }
        Ok(Started::Running(Pending {
            generation: Arc::clone(self),
            state,
            deadline_watched,
        }))
    }

    /// Runs a lane call on this thread. At the deadline, if the handler has
    /// not returned, the lane's watchdog gives up on it and hands the
    /// `timeout` result to `at_deadline`, on the watchdog's thread.
    fn run_on_caller<P>(
        self: &Arc<Self>,
        state: Arc<InvocationState>,
        lease: Lease,
        flight: InFlight,
        payload: P,
        slot: Slot,
        at_deadline: AtDeadline,
    ) -> Started
    where
        P: AsRef<[u8]>,
    {
        let watched = Pending {
            generation: Arc::clone(self),
            state: Arc::clone(&state),
            deadline_watched: true,
        };
        // The watchdog wakes the waiter at the deadline; the handler's
        // return wakes it too, and then the call is finished and there is
        // nothing to answer from there.
        state.on_complete(move || {
            if let Some(result) = watched.finish_if_timed_out() {
                at_deadline(result);
            }
        });
        if Self::call(&state, lease, flight, payload, Some(slot)) {
            return Started::AnsweredAtDeadline;
        }
        Started::Done(
            Pending {
                generation: Arc::clone(self),
                state,
                deadline_watched: true,
            }
            .finish(),
        )
    }

    fn check_payload(&self, size: usize) -> Result<(), InvokeError> {
        let limit = self.shared.config.max_payload_bytes;
        if size > limit {
            return Err(InvokeError::PayloadTooLarge { size, limit });
        }
        Ok(())
    }

    /// Runs the handler on a worker thread.
    fn dispatch<P>(
        self: &Arc<Self>,
        state: &Arc<InvocationState>,
        lease: Lease,
        flight: InFlight,
        payload: P,
    ) -> Result<(), InvokeError>
    where
        P: AsRef<[u8]> + Send + 'static,
    {
        let job = self.job(state, lease, flight, payload, None);
        self.shared
            .pool
            .execute_boxed(job)
            .map_err(|e| InvokeError::NoWorker(e.to_string()))
    }

    /// The job that calls the handler for `state`. The lease, the in-flight
    /// count and the lane slot (if any) are released when the handler
    /// returns, before the caller hears back (so its next call finds them
    /// free); the call's duration counts towards the lane's probation.
    fn job<P>(
        &self,
        state: &Arc<InvocationState>,
        lease: Lease,
        flight: InFlight,
        payload: P,
        slot: Option<Slot>,
    ) -> Job
    where
        P: AsRef<[u8]> + Send + 'static,
    {
        let state = Arc::clone(state);
        Box::new(move || {
            Self::call(&state, lease, flight, payload, slot);
        })
    }

    /// Calls the handler for `state` on this thread (see [`job`](Self::job)).
    /// Returns `true` when the caller had given up on the call by the time
    /// it returned (a runaway).
    fn call<P>(
        state: &InvocationState,
        lease: Lease,
        flight: InFlight,
        payload: P,
        slot: Option<Slot>,
    ) -> bool
    where
        P: AsRef<[u8]>,
    {
        let generation = Arc::clone(&flight.0);
        let handler = generation.handler;
        let runaway = state.run_then(
            |ctx| {
                // SAFETY: `handler` comes from the checked descriptor of the
                // generation's library, which `generation` keeps mapped;
                // context and payload are valid for the call.
                unsafe { handler(ctx, HostStr::from_slice(payload.as_ref())) }
            },
            |elapsed| {
                generation.short.record(elapsed);
                if let Some(slot) = slot {
                    slot.release(elapsed);
                }
                drop((lease, flight));
            },
        );
        if runaway {
            generation
                .shared
                .counters
                .runaway_finished(state.request_id());
        }
        runaway
    }

    fn broken_initializer(&self) -> Option<InitReport> {
        if !self.init_broken.load(Ordering::Acquire) {
            return None;
        }
        let init = self.init.lock();
        if init.broken {
            init.last.clone()
        } else {
            None
        }
    }

    fn record(&self, state: &InvocationState, completion: &Completion) {
        let counters = &self.shared.counters;
        counters.invoked();
        if let Completion::TimedOut = completion {
            counters.timed_out();
            state.log_line(&format!(
                "invocation timed out after {}; its thread keeps running until the handler returns",
                crate::invocation::format_timeout(self.config.timeout)
            ));
            log::warn!(
                target: "fnhost::invoke",
                "function {} request {} timed out after {:?}; runaway handler threads: {}",
                self.context.function_name,
                state.request_id(),
                self.config.timeout,
                counters.runaway()
            );
        }
    }

    fn initialization_failure(&self, report: InitReport) -> InvokeResult {
        self.shared.counters.invoked();
        let error = report.error.unwrap_or_else(|| {
            FunctionError::new(error_type::INITIALIZATION, "initializer failed")
        });
        InvokeResult {
            request_id: uuid::Uuid::new_v4().to_string(),
            outcome: Outcome::Failure(error),
            summary: Summary::new(report.duration, self.config.memory_mb, 0),
            log: report.log,
            tail_bytes: self.shared.config.log_tail_bytes,
        }
    }
}

/// How [`crate::Route::start`] began an invocation.
#[derive(Debug)]
pub enum Started {
    /// Ran to completion on the calling thread ([`Isolation::Inline`]).
    Done(InvokeResult),
    /// Running on a worker thread.
    Running(Pending),
    /// Not started: it must wait for an instance slot or an initializer, or
    /// runs in a worker process. Call the blocking [`crate::Route::invoke`]
    /// from a thread that may block.
    MustBlock,
    /// Ran on the calling thread ([`crate::Route::start_here`]) and was
    /// still running at its deadline: the lane's watchdog has passed the
    /// `timeout` result to the caller's `at_deadline` meanwhile (the
    /// handler was counted as a runaway, and has since returned).
    AnsweredAtDeadline,
}

/// What answers the caller of a call run on its own thread
/// ([`crate::Route::start_here`]) if the handler has not returned by the
/// deadline; called on the lane's watchdog thread.
pub type AtDeadline = Box<dyn FnOnce(InvokeResult) + Send>;

/// Where a call that qualifies for an [`IoLane`] runs.
pub(crate) enum OnLane<'a> {
    /// A job given to the lane's executor.
    Spawned(&'a IoLane),
    /// The calling thread, answered through the [`AtDeadline`] if late.
    Here(&'a IoLane, AtDeadline),
}

impl OnLane<'_> {
    fn lane(&self) -> &IoLane {
        match self {
            OnLane::Spawned(lane) | OnLane::Here(lane, _) => lane,
        }
    }
}

/// An invocation running on a worker, for callers that wait asynchronously
/// (see [`crate::Route::start`]).
pub struct Pending {
    generation: Arc<Generation>,
    state: Arc<InvocationState>,
    deadline_watched: bool,
}

impl Pending {
    /// Whether the call runs on an [`IoLane`], whose watchdog calls the
    /// [`on_complete`](Self::on_complete) hook at the deadline if the call
    /// has not completed by then (the caller needs no timer of its own).
    pub fn deadline_watched(&self) -> bool {
        self.deadline_watched
    }

    /// Calls `hook` (once, from the worker) when the invocation completes,
    /// or at once if it already has; for a call on an [`IoLane`], at the
    /// deadline at the latest (from the lane's watchdog).
    pub fn on_complete(&self, hook: impl FnOnce() + Send + 'static) {
        self.state.on_complete(hook);
    }

    /// Resolves when the invocation completes (at once if it already has);
    /// for a call on an [`IoLane`], at the deadline at the latest. Replaces
    /// an [`on_complete`](Self::on_complete) hook.
    pub fn completion(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.state.poll_woken(cx))
    }

    /// Whether the handler has returned.
    pub fn has_completed(&self) -> bool {
        self.state.has_finished()
    }

    /// When the caller must be answered at the latest.
    pub fn deadline(&self) -> Instant {
        self.state.deadline()
    }

    /// The result: the completion if there is one, else `timeout` (the
    /// handler becomes a counted runaway).
    pub fn finish(self) -> InvokeResult {
        let completion = self.state.give_up();
        self.generation.record(&self.state, &completion);
        self.state.finish(completion, CallKind::Handler)
    }

    /// The `timeout` result if the handler has not returned (it becomes a
    /// counted runaway); `None` if it has, leaving the result to whoever
    /// ran it.
    fn finish_if_timed_out(self) -> Option<InvokeResult> {
        if self.state.has_finished() {
            // The usual case, told without the lock.
            return None;
        }
        let completion = self.state.give_up();
        if !matches!(completion, Completion::TimedOut) {
            return None;
        }
        self.generation.record(&self.state, &completion);
        Some(self.state.finish(completion, CallKind::Handler))
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("request_id", &self.state.request_id())
            .field("deadline_watched", &self.deadline_watched)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("id", &self.id)
            .field("function", &self.context.function_name)
            .field("entry", &self.config.entry)
            .field("library", &self.library.digest())
            .field("in_flight", &self.in_flight())
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}
