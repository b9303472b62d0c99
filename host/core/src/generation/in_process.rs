//! A generation whose library is mapped in this process: its resolved
//! handler is called on a worker thread (the caller is answered at the
//! deadline), on the calling thread ([`Isolation::Inline`], or
//! [`Function::invoke_on_current_thread`](crate::Function::invoke_on_current_thread)),
//! or, for handlers that have proven short, on an [`IoLane`] of the caller's
//! executor; [`Started`] and [`Pending`] are the non-blocking start
//! ([`crate::dispatch`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fnhost_api::abi::{self, HostStr};

use super::{Generation, InFlight, InitReport, Mode};
use crate::config::Isolation;
use crate::error::InvokeError;
use crate::instances::Lease;
use crate::invocation::{CallKind, Completion, InvocationState, Served};
use crate::io_lane::{IoLane, Job, ShortRecord, Slot};
use crate::outcome::{error_type, FunctionError, InvokeResult};
use crate::pool::WorkerPool;

/// The resolved code of an in-process generation.
pub(crate) struct InProcess {
    handler: abi::HandlerFn,
    /// The initializer's entry (for messages) and function.
    initializer: Option<(String, abi::InitializerFn)>,
    /// Whether its handler has proven short enough for an [`IoLane`].
    short: Arc<ShortRecord>,
    /// Its library's own worker threads (ABI 1.4's `fnhost_start_thread`),
    /// when it starts them; else the runtime's shared pool runs its calls.
    pool: Option<WorkerPool>,
}

impl InProcess {
    /// `handler` and `initializer` come from the checked descriptor of the
    /// library the generation holds mapped.
    pub(crate) fn new(
        handler: abi::HandlerFn,
        initializer: Option<(String, abi::InitializerFn)>,
        pool: Option<WorkerPool>,
    ) -> InProcess {
        InProcess {
            handler,
            initializer,
            short: Arc::default(),
            pool,
        }
    }

    /// Creates `wanted` instances, running the initializer for each.
    pub(super) fn warm_up(
        &self,
        generation: &Arc<Generation>,
        wanted: u32,
    ) -> Result<(), InitReport> {
        for _ in 0..wanted {
            let Some(mut lease) = generation.instances.create() else {
                break;
            };
            self.initialize(generation, &mut lease)?;
        }
        Ok(())
    }

    /// Initializes the instance behind a fresh lease.
    fn initialize(
        &self,
        generation: &Arc<Generation>,
        lease: &mut Lease,
    ) -> Result<(), InitReport> {
        let Some((entry, function)) = &self.initializer else {
            lease.mark_ready();
            return Ok(());
        };
        let (report, timed_out) = generation.run_initializer(entry, *function);
        if generation.init.record(&report, timed_out) {
            lease.mark_ready();
            return Ok(());
        }
        lease.discard();
        Err(report)
    }

    /// A blocking call (see [`Generation::invoke`]).
    pub(super) fn invoke(
        &self,
        generation: &Arc<Generation>,
        mut lease: Lease,
        flight: InFlight,
        payload: &[u8],
        served: Served,
        mode: Mode,
    ) -> Result<InvokeResult, InvokeError> {
        let cold_start = if lease.is_fresh() {
            let started = std::time::Instant::now();
            if let Err(report) = self.initialize(generation, &mut lease) {
                let mut failure = generation.initialization_failure(report);
                failure.cold_start = Some(started.elapsed());
                if let Some(id) = served.ids.request_id {
                    failure.request_id = id.to_string();
                }
                return Ok(failure);
            }
            Some(started.elapsed())
        } else {
            None
        };
        let mode = match generation.config.isolation {
            Isolation::Inline => Mode::CurrentThread,
            _ => mode,
        };
        let mut result = match mode {
            Mode::CurrentThread => generation.run_here(self, lease, flight, served, payload),
            Mode::Worker => {
                let state = Arc::new(generation.new_state(generation.config.timeout, served));
                generation.dispatch(self, &state, lease, flight, payload.to_vec())?;
                // A cancel wakes this caller, which answers `Cancelled`.
                let cancel = state.cancel().cloned();
                if let Some(cancel) = &cancel {
                    let weak = Arc::downgrade(&state);
                    cancel.on_cancel(move || {
                        if let Some(state) = weak.upgrade() {
                            state.wake_for_cancel();
                        }
                    });
                }
                let completion = state.wait();
                if let Some(cancel) = &cancel {
                    cancel.clear();
                }
                generation.record(&state, &completion);
                state.finish(completion, CallKind::Handler)
            }
        };
        result.cold_start = cold_start;
        Ok(result)
    }
}

impl Generation {
    fn in_process(&self) -> Option<&InProcess> {
        match &self.execution {
            super::Execution::InProcess(in_process) => Some(in_process),
            super::Execution::Workers(_) => None,
        }
    }

    /// The worker threads its calls and initializers run on: its library's
    /// own (ABI 1.4), else the runtime's shared pool.
    fn thread_pool(&self) -> &WorkerPool {
        self.in_process()
            .and_then(|code| code.pool.as_ref())
            .unwrap_or(&self.shared.pool)
    }

    /// Whether its calls qualify for an [`IoLane`] now: an in-process
    /// handler that has proven short (see the lane's probation).
    pub fn qualifies_for_lane(&self) -> bool {
        self.config.isolation == Isolation::InProcess
            && self.in_process().is_some_and(|p| p.short.qualifies())
    }

    fn new_state(&self, timeout: Duration, served: Served) -> InvocationState {
        let timeout = served.timeout_within(timeout);
        InvocationState::new(
            Arc::clone(&self.context),
            timeout,
            self.shared.limits(),
            served,
        )
    }

    /// Runs the initializer on a worker thread, answered at its timeout.
    /// Returns its report and whether it timed out.
    fn run_initializer(
        self: &Arc<Self>,
        entry: &str,
        function: abi::InitializerFn,
    ) -> (InitReport, bool) {
        let state = Arc::new(self.new_state(self.initializer_timeout(), Served::default()));
        let job_state = Arc::clone(&state);
        let keep = Arc::clone(self);
        let started = Instant::now();
        let spawned = self.thread_pool().execute(move || {
            // SAFETY: `function` comes from the checked descriptor of the
            // generation's library, which `keep` holds mapped; `ctx` is valid
            // for the call.
            let runaway = job_state.run(|ctx| unsafe { function(ctx) });
            if runaway {
                keep.runaway_ended(job_state.request_id());
            }
            drop(keep);
        });
        if let Err(e) = spawned {
            let error = FunctionError::new(
                error_type::INITIALIZATION,
                format!("cannot start a worker thread for the initializer: {e}"),
            );
            let report = InitReport {
                error: Some(error),
                log: String::new(),
                duration: Duration::ZERO,
            };
            return (report, false);
        }
        let completion = state.wait();
        let timed_out = matches!(completion, Completion::TimedOut);
        if timed_out {
            self.runaway_started();
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

    /// Runs the handler on the calling thread. The deadline is checked when
    /// the handler returns: a late result is answered `timeout`.
    fn run_here(
        &self,
        code: &InProcess,
        lease: Lease,
        flight: InFlight,
        served: Served,
        payload: &[u8],
    ) -> InvokeResult {
        let handler = code.handler;
        let state = self.new_state(self.config.timeout, served);
        let timeout = state.timeout();
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
        let Some(code) = self.in_process() else {
            return Ok(Started::MustBlock);
        };
        if self.init.is_broken() {
            return Ok(Started::MustBlock);
        }
        let Some(lease) = self.instances.try_acquire() else {
            return Ok(Started::MustBlock);
        };
        let flight = InFlight::new(self);
        if self.config.isolation == Isolation::Inline {
            let result = self.run_here(code, lease, flight, served, payload.as_ref());
            return Ok(Started::Done(result));
        }
        let state = Arc::new(self.new_state(self.config.timeout, served));
        let on_lane = lane.filter(|_| code.short.qualifies()).and_then(|lane| {
            let slot = lane.lane().claim(&state, Arc::clone(&code.short))?;
            Some((lane, slot))
        });
        let deadline_watched = on_lane.is_some();
        match on_lane {
            Some((OnLane::Spawned(lane), slot)) => {
                lane.spawn(Self::job(code, &state, lease, flight, payload, Some(slot)))
            }
            Some((OnLane::Here(_, at_deadline), slot)) => {
                return Ok(self.run_on_caller(
                    code,
                    state,
                    lease,
                    flight,
                    payload,
                    slot,
                    at_deadline,
                ));
            }
            None => self.dispatch(code, &state, lease, flight, payload)?,
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
    #[allow(clippy::too_many_arguments)]
    fn run_on_caller<P>(
        self: &Arc<Self>,
        code: &InProcess,
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
        if Self::call(
            code.handler,
            &code.short,
            &state,
            lease,
            flight,
            payload,
            Some(slot),
        ) {
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

    /// Runs the handler on a worker thread.
    fn dispatch<P>(
        &self,
        code: &InProcess,
        state: &Arc<InvocationState>,
        lease: Lease,
        flight: InFlight,
        payload: P,
    ) -> Result<(), InvokeError>
    where
        P: AsRef<[u8]> + Send + 'static,
    {
        let job = Self::job(code, state, lease, flight, payload, None);
        self.thread_pool()
            .execute_boxed(job)
            .map_err(|e| InvokeError::NoWorker(e.to_string()))
    }

    /// The job that calls the handler for `state`. The in-flight count and
    /// the lane slot (if any) are released when the handler returns, before
    /// the caller hears back, and the lease is handed to the caller, which
    /// releases it as it takes the result (so its next call finds them all
    /// free); the call's duration counts towards the lane's probation.
    fn job<P>(
        code: &InProcess,
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
        let handler = code.handler;
        let short = Arc::clone(&code.short);
        Box::new(move || {
            Self::call(handler, &short, &state, lease, flight, payload, slot);
        })
    }

    /// Calls `handler` for `state` on this thread (see [`job`](Self::job)).
    /// Returns `true` when the caller had given up on the call by the time
    /// it returned (a runaway).
    fn call<P>(
        handler: abi::HandlerFn,
        short: &ShortRecord,
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
        let runaway = state.run_then(
            |ctx| {
                // SAFETY: `handler` comes from the checked descriptor of the
                // generation's library, which `generation` (held by the
                // in-flight count) keeps mapped; context and payload are
                // valid for the call.
                unsafe { handler(ctx, HostStr::from_slice(payload.as_ref())) }
            },
            |elapsed| {
                short.record(elapsed);
                if let Some(slot) = slot {
                    slot.release(elapsed);
                }
                drop(flight);
                crate::pool::returning_soon();
                // Released by the caller, who is waiting for the result
                // (or here, if it has given up): see `InvocationState`.
                Some(lease)
            },
        );
        if runaway {
            generation.runaway_ended(state.request_id());
        }
        runaway
    }

    /// Counts a finished call; a timed-out or cancelled one whose handler
    /// still runs is a runaway from now on.
    fn record(&self, state: &InvocationState, completion: &Completion) {
        let counters = &self.shared.counters;
        counters.invoked();
        if let Completion::Cancelled = completion {
            self.runaway_cancelled();
            state.log_line("invocation cancelled by its caller; its thread keeps running until the handler returns");
        }
        if let Completion::TimedOut = completion {
            self.runaway_started();
            state.log_line(&format!(
                "invocation timed out after {}; its thread keeps running until the handler returns",
                crate::invocation::format_timeout(state.timeout())
            ));
            log::warn!(
                target: "fnhost::invoke",
                "function {} request {} timed out after {:?}; runaway handler threads: {}",
                self.context.function_name,
                state.request_id(),
                state.timeout(),
                counters.runaway()
            );
        }
    }
}

/// How a non-blocking start ([`crate::dispatch::start`]) began an invocation.
#[derive(Debug)]
pub enum Started {
    /// Ran to completion on the calling thread ([`Isolation::Inline`]).
    Done(InvokeResult),
    /// Running on a worker thread or a lane.
    Running(Pending),
    /// Not started: it must wait for an instance slot or an initializer, or
    /// runs in a worker process. Call the blocking [`crate::Route::invoke`]
    /// from a thread that may block.
    MustBlock,
    /// Ran on the calling thread ([`crate::dispatch::start_here`]) and was
    /// still running at its deadline: the lane's watchdog has passed the
    /// `timeout` result to the caller's [`AtDeadline`] meanwhile (the
    /// handler was counted as a runaway, and has since returned).
    AnsweredAtDeadline,
}

/// What answers the caller of a call run on its own thread
/// ([`crate::dispatch::start_here`]) if the handler has not returned by the
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

/// An invocation running on a worker thread or a lane, for callers that
/// wait asynchronously (see [`crate::dispatch::start`]).
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
