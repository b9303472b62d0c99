//! A loaded [`Function`]: configuration, the library generation it runs, its
//! resolved handler and the state of its initializer.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnhost_api::abi::{self, HostStr};
use parking_lot::Mutex;

use crate::config::FunctionConfig;
use crate::error::InvokeError;
use crate::invocation::{CallKind, Completion, FunctionContext, InvocationState};
use crate::loader::Library;
use crate::outcome::{error_type, FunctionError, InvokeResult, Outcome, Summary};
use crate::runtime::Shared;

/// FunctionGraph retries a failing initializer up to 3 times per instance.
const MAX_INIT_ATTEMPTS: u32 = 3;

/// A function ready to invoke. Cheap to clone; safe to invoke from many
/// threads at once. The library it runs stays mapped while any clone lives
/// (and, see [`crate::loader`], for the life of the process).
#[derive(Clone)]
pub struct Function {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    config: FunctionConfig,
    context: Arc<FunctionContext>,
    library: Arc<Library>,
    handler: abi::HandlerFn,
    initializer: Option<Initializer>,
}

struct Initializer {
    entry: String,
    function: abi::InitializerFn,
    timeout: Duration,
    ready: AtomicBool,
    state: Mutex<InitState>,
    last_report: Mutex<Option<InitReport>>,
}

enum InitState {
    Pending { attempts: u32 },
    Ready,
    Failed,
}

/// The outcome of the initializer's last run.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// `None` when it succeeded.
    pub error: Option<FunctionError>,
    /// What it logged.
    pub log: String,
    /// How long it ran.
    pub duration: Duration,
}

impl Function {
    pub(crate) fn new(
        shared: Arc<Shared>,
        config: FunctionConfig,
        library: Arc<Library>,
        handler: abi::HandlerFn,
        initializer: Option<(String, abi::InitializerFn)>,
    ) -> Function {
        let timeout = config.effective_initializer_timeout();
        Function {
            inner: Arc::new(Inner {
                shared,
                context: Arc::new(FunctionContext::from_config(&config)),
                config,
                library,
                handler,
                initializer: initializer.map(|(entry, function)| Initializer {
                    entry,
                    function,
                    timeout,
                    ready: AtomicBool::new(false),
                    state: Mutex::new(InitState::Pending { attempts: 0 }),
                    last_report: Mutex::new(None),
                }),
            }),
        }
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &FunctionConfig {
        &self.inner.config
    }

    /// The library generation it runs.
    pub fn library(&self) -> &Arc<Library> {
        &self.inner.library
    }

    /// The report of the initializer's most recent run, if it has run.
    pub fn initializer_report(&self) -> Option<InitReport> {
        self.inner
            .initializer
            .as_ref()
            .and_then(|init| init.last_report.lock().clone())
    }

    /// Runs the initializer now if it has not succeeded yet (it otherwise runs
    /// before the first invocation). Returns the report of the run, or `None`
    /// when there is no initializer or it already succeeded.
    pub fn initialize(&self) -> Option<InitReport> {
        match self.ensure_initialized() {
            Ok(report) => report,
            Err(report) => Some(report),
        }
    }

    /// Invokes the function on a worker thread and waits for it until the
    /// deadline. A handler that overruns is answered with error type
    /// `timeout` at the deadline; its thread keeps running until the handler
    /// returns and is counted in [`RuntimeStats::runaway_invocations`](crate::RuntimeStats).
    pub fn invoke(&self, payload: &[u8]) -> Result<InvokeResult, InvokeError> {
        self.check_payload(payload)?;
        if let Err(report) = self.ensure_initialized() {
            return Ok(self.initialization_failure(report));
        }
        let inner = &self.inner;
        let state = Arc::new(self.new_state(inner.config.timeout));
        let job_state = Arc::clone(&state);
        let library = Arc::clone(&inner.library);
        let handler = inner.handler;
        let payload = payload.to_vec();
        let shared = Arc::clone(&inner.shared);
        inner
            .shared
            .pool
            .execute(move || {
                let runaway = job_state.run(|ctx| {
                    // SAFETY: `handler` comes from the checked descriptor of
                    // `library`, which this closure keeps mapped; `ctx` and the
                    // payload are valid for the duration of the call.
                    unsafe { handler(ctx, HostStr::from_slice(&payload)) }
                });
                drop(library);
                if runaway {
                    shared.counters.runaway_finished(job_state.request_id());
                }
            })
            .map_err(|e| InvokeError::NoWorker(e.to_string()))?;
        let completion = state.wait();
        self.record(&state, &completion);
        Ok(state.finish(completion, CallKind::Handler))
    }

    /// Invokes the function on the calling thread: no thread hand-off (the
    /// fastest path), but a handler that overruns its timeout cannot be
    /// abandoned, so the caller waits for it and then gets `timeout`.
    pub fn invoke_on_current_thread(&self, payload: &[u8]) -> Result<InvokeResult, InvokeError> {
        self.check_payload(payload)?;
        if let Err(report) = self.ensure_initialized() {
            return Ok(self.initialization_failure(report));
        }
        let state = self.new_state(self.inner.config.timeout);
        let handler = self.inner.handler;
        state.run(|ctx| {
            // SAFETY: as in `invoke`; `self` keeps the library mapped and the
            // payload is borrowed for the duration of the call.
            unsafe { handler(ctx, HostStr::from_slice(payload)) }
        });
        let completion = match state.wait() {
            Completion::Finished(_, elapsed) if elapsed > self.inner.config.timeout => {
                Completion::TimedOut
            }
            c => c,
        };
        self.record(&state, &completion);
        Ok(state.finish(completion, CallKind::Handler))
    }

    fn check_payload(&self, payload: &[u8]) -> Result<(), InvokeError> {
        let limit = self.inner.shared.config.max_payload_bytes;
        if payload.len() > limit {
            return Err(InvokeError::PayloadTooLarge {
                size: payload.len(),
                limit,
            });
        }
        Ok(())
    }

    fn new_state(&self, timeout: Duration) -> InvocationState {
        InvocationState::new(
            Arc::clone(&self.inner.context),
            timeout,
            self.inner.shared.limits(),
        )
    }

    fn record(&self, state: &InvocationState, completion: &Completion) {
        let counters = &self.inner.shared.counters;
        counters.invoked();
        if let Completion::TimedOut = completion {
            counters.timed_out();
            state.log_line(&format!(
                "invocation timed out after {}; its thread keeps running until the handler returns",
                crate::invocation::format_timeout(self.inner.config.timeout)
            ));
            log::warn!(
                target: "fnhost::invoke",
                "function {} request {} timed out after {:?}; runaway handler threads: {}",
                self.inner.context.function_name,
                state.request_id(),
                self.inner.config.timeout,
                counters.runaway()
            );
        }
    }

    /// `Ok(None)`: nothing to do; `Ok(Some)`: ran now and succeeded;
    /// `Err`: failed now or earlier.
    fn ensure_initialized(&self) -> Result<Option<InitReport>, InitReport> {
        let Some(init) = &self.inner.initializer else {
            return Ok(None);
        };
        if init.ready.load(Ordering::Acquire) {
            return Ok(None);
        }
        // Holding the lock makes concurrent first invocations wait for one run.
        let mut state = init.state.lock();
        let attempts = match *state {
            InitState::Ready => return Ok(None),
            InitState::Failed => {
                return Err(init.last_report.lock().clone().unwrap_or(InitReport {
                    error: Some(FunctionError::new(
                        error_type::INITIALIZATION,
                        "initializer failed",
                    )),
                    log: String::new(),
                    duration: Duration::ZERO,
                }))
            }
            InitState::Pending { attempts } => attempts + 1,
        };
        let (report, timed_out) = self.run_initializer(init);
        *init.last_report.lock() = Some(report.clone());
        if report.error.is_none() {
            *state = InitState::Ready;
            init.ready.store(true, Ordering::Release);
            return Ok(Some(report));
        }
        *state = if timed_out || attempts >= MAX_INIT_ATTEMPTS {
            InitState::Failed
        } else {
            InitState::Pending { attempts }
        };
        Err(report)
    }

    fn run_initializer(&self, init: &Initializer) -> (InitReport, bool) {
        let state = Arc::new(self.new_state(init.timeout));
        let job_state = Arc::clone(&state);
        let library = Arc::clone(&self.inner.library);
        let function = init.function;
        let shared = Arc::clone(&self.inner.shared);
        let started = Instant::now();
        let spawned = self.inner.shared.pool.execute(move || {
            // SAFETY: `function` comes from the checked descriptor of
            // `library`, kept mapped by this closure; `ctx` is valid for the call.
            let runaway = job_state.run(|ctx| unsafe { function(ctx) });
            drop(library);
            if runaway {
                shared.counters.runaway_finished(job_state.request_id());
            }
        });
        let completion = match spawned {
            Ok(()) => state.wait(),
            Err(e) => {
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
        };
        let timed_out = matches!(completion, Completion::TimedOut);
        if timed_out {
            self.inner.shared.counters.timed_out();
        }
        let result = state.finish(completion, CallKind::Initializer);
        let error = result.outcome.error().map(|e| {
            FunctionError::new(
                error_type::INITIALIZATION,
                format!(
                    "initializer {} failed ({}): {}",
                    init.entry, e.error_type, e.message
                ),
            )
        });
        if let Some(e) = &error {
            log::error!(target: "fnhost::invoke", "function {}: {}", self.inner.context.function_name, e.message);
        }
        let report = InitReport {
            error,
            log: result.log,
            duration: started.elapsed(),
        };
        (report, timed_out)
    }

    fn initialization_failure(&self, report: InitReport) -> InvokeResult {
        self.inner.shared.counters.invoked();
        let error = report.error.unwrap_or_else(|| {
            FunctionError::new(error_type::INITIALIZATION, "initializer failed")
        });
        InvokeResult {
            request_id: uuid::Uuid::new_v4().to_string(),
            outcome: Outcome::Failure(error),
            summary: Summary::new(report.duration, self.inner.config.memory_mb, 0),
            log: report.log,
            tail_bytes: self.inner.shared.config.log_tail_bytes,
        }
    }
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.inner.context.function_name)
            .field("entry", &self.inner.config.entry)
            .field("library", &self.inner.library.digest())
            .finish_non_exhaustive()
    }
}
