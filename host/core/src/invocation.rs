//! One invocation: the host state behind the plugin's context (request id,
//! deadline, function data, log, result), the `extern "C"` functions of the
//! context vtable that operate on it, and the conversion of what the plugin
//! reported into an [`InvokeResult`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fnhost_api::abi::{self, field, HostData, HostStr, PluginStr};
use parking_lot::{Condvar, Mutex};

use crate::call_options::{Cancel, Extras};
use crate::config::{Credentials, FunctionConfig};
use crate::host_call::{HostCallContext, HostCalls, HostFunctions};
use crate::instances::Lease;
use crate::log_buffer::LogBuffer;
use crate::outcome::{error_type, Body, BodyKind, FunctionError, InvokeResult, Outcome, Summary};
use crate::trace::CallIds;

/// Per-function values offered through the context, resolved once when the
/// function is loaded and shared by all its invocations.
#[derive(Debug)]
pub(crate) struct FunctionContext {
    pub(crate) function_name: String,
    pub(crate) version: String,
    pub(crate) alias: String,
    pub(crate) package: String,
    pub(crate) project_id: String,
    pub(crate) credentials: Credentials,
    pub(crate) user_data: BTreeMap<String, String>,
    pub(crate) memory_mb: u32,
    /// The runtime's host functions (ABI 1.5's `call_host`).
    pub(crate) host_functions: Arc<HostFunctions>,
    /// Those it may call (`None`: all).
    pub(crate) allowed_host_functions: Option<Arc<[String]>>,
    /// The program's id of the function's creation.
    pub(crate) function_id: String,
}

impl FunctionContext {
    pub(crate) fn from_config(
        config: &FunctionConfig,
        host_functions: Arc<HostFunctions>,
    ) -> FunctionContext {
        FunctionContext {
            function_name: config.function_name().to_owned(),
            version: config.version.clone(),
            alias: config.alias.clone(),
            package: config.package.clone(),
            project_id: config.project_id.clone(),
            credentials: config.credentials.clone(),
            user_data: config.user_data.clone(),
            memory_mb: config.memory_mb,
            host_functions,
            allowed_host_functions: config.host_functions.as_deref().map(Arc::from),
            function_id: config.function_id.clone(),
        }
    }
}

/// The version and alias an invocation was routed to (overriding the
/// function's configured ones when set).
#[derive(Debug, Clone, Default)]
pub(crate) struct Served {
    pub(crate) version: Option<Arc<str>>,
    pub(crate) alias: Option<Arc<str>>,
    /// The request and trace ids the caller gave.
    pub(crate) ids: CallIds,
    /// The rest of the caller's [`CallOptions`](crate::CallOptions), and
    /// its cancellation; `None` for a plain call.
    pub(crate) extras: Option<Arc<Extras>>,
}

impl Served {
    /// Takes the caller's request and trace ids where it gave them (the
    /// route's stand for the others).
    pub(crate) fn prefer_ids(&mut self, ids: CallIds) {
        if ids.request_id.is_some() {
            self.ids.request_id = ids.request_id;
        }
        if ids.trace_id.is_some() {
            self.ids.trace_id = ids.trace_id;
        }
    }

    /// The call's timeout: the function's, or the caller's when sooner.
    pub(crate) fn timeout_within(&self, function_timeout: Duration) -> Duration {
        match self.extras.as_ref().and_then(|e| e.timeout) {
            Some(t) => t.min(function_timeout),
            None => function_timeout,
        }
    }

    /// The call's cancellation, if it can be cancelled.
    pub(crate) fn cancel(&self) -> Option<&Arc<Cancel>> {
        self.extras.as_ref()?.cancel.as_ref()
    }

    fn is_cancelled(&self) -> bool {
        self.cancel().is_some_and(|c| c.is_cancelled())
    }
}

/// Limits that apply to every invocation of a runtime.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_response_bytes: usize,
    pub(crate) max_log_bytes: usize,
    pub(crate) log_tail_bytes: usize,
}

/// What the plugin reported during the call, plus completion bookkeeping.
#[derive(Debug)]
struct Sink {
    log: LogBuffer,
    output: Option<(u32, Vec<u8>)>,
    error: Option<FunctionError>,
    oversized_output: Option<usize>,
    /// Set by the thread that ran the plugin when the call returned.
    finished: Option<(i32, Duration)>,
    /// Set by the caller that stopped waiting at the deadline.
    abandoned: bool,
    /// The instance slot of a call that finished while its caller waited:
    /// the caller releases it (the slot's lock stays on the caller's core;
    /// released on the worker, it crossed cores twice a call). A call that
    /// finished after its caller gave up releases it on its own thread.
    lease: Option<Lease>,
}

/// The host state of one invocation; the plugin sees it as `fnhost_host_data`.
#[derive(Debug)]
pub(crate) struct InvocationState {
    /// Hyphenated lowercase UUID v4, kept inline (no allocation).
    request_id: [u8; 36],
    /// The trace id in lowercase hex, inline; empty when none was given.
    trace_id: [u8; 32],
    has_trace_id: bool,
    function: Arc<FunctionContext>,
    timeout: Duration,
    deadline: Instant,
    limits: Limits,
    /// The version and alias this invocation was routed to.
    served: Served,
    memory_peak: AtomicU64,
    sink: Mutex<Sink>,
    done: Condvar,
    /// Mirrors `sink.finished.is_some()` for lock-free polling by the caller.
    finished: AtomicBool,
    /// The caller that waits asynchronously, woken when the call completes.
    waiter: Mutex<Waiter>,
    /// What its host calls hold (their answers stay valid until it ends).
    host_calls: HostCalls,
    /// How many host functions the invocation was started in (0: none).
    host_call_depth: u32,
}

/// The asynchronous waiter of a call.
#[derive(Debug, Default)]
struct Waiter {
    hook: Option<Hook>,
    /// Woken already (by the completion, or early at the deadline): a hook
    /// set from now on is called at once.
    woken: bool,
}

/// What to do when the call completes.
enum Hook {
    Call(Box<dyn FnOnce() + Send>),
    Wake(Waker),
}

impl Hook {
    fn fire(self) {
        match self {
            Hook::Call(hook) => hook(),
            Hook::Wake(waker) => waker.wake(),
        }
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// How long a caller polls for a completion before it sleeps on the condvar:
/// long enough for a short handler on another core, short enough not to
/// matter for a long one.
const POLL_FOR_COMPLETION: Duration = Duration::from_micros(50);

/// How waiting for a call ended.
pub(crate) enum Completion {
    /// The call returned with this status after this long.
    Finished(i32, Duration),
    /// The deadline passed first; the call is still running (a runaway).
    TimedOut,
    /// The caller cancelled it first; the call is still running (a
    /// runaway, which reads its cancellation through its context).
    Cancelled,
}

impl InvocationState {
    pub(crate) fn new(
        function: Arc<FunctionContext>,
        timeout: Duration,
        limits: Limits,
        served: Served,
    ) -> InvocationState {
        let mut request_id = [0u8; 36];
        served
            .ids
            .request_id
            .unwrap_or_else(uuid::Uuid::new_v4)
            .hyphenated()
            .encode_lower(&mut request_id);
        let (trace_id, has_trace_id) = match served.ids.trace_id {
            Some(t) => (t.to_hex(), true),
            None => ([0; 32], false),
        };
        InvocationState {
            request_id,
            trace_id,
            has_trace_id,
            function,
            timeout,
            deadline: Instant::now() + timeout,
            limits,
            served,
            memory_peak: AtomicU64::new(0),
            sink: Mutex::new(Sink {
                log: LogBuffer::new(limits.max_log_bytes),
                output: None,
                error: None,
                oversized_output: None,
                finished: None,
                abandoned: false,
                lease: None,
            }),
            done: Condvar::new(),
            finished: AtomicBool::new(false),
            waiter: Mutex::new(Waiter::default()),
            host_calls: HostCalls::default(),
            host_call_depth: crate::host_call::depth_of_new_invocation(),
        }
    }

    /// The version served.
    pub(crate) fn version(&self) -> &str {
        self.served
            .version
            .as_deref()
            .unwrap_or(&self.function.version)
    }

    /// The alias served through, `""` when none.
    pub(crate) fn alias(&self) -> &str {
        self.served.alias.as_deref().unwrap_or(&self.function.alias)
    }

    pub(crate) fn request_id(&self) -> &str {
        debug_assert!(self.request_id.is_ascii());
        // SAFETY: `request_id` is written once, in `new`, by the UUID's
        // `encode_lower` (hex digits and hyphens: ASCII, so UTF-8), and never
        // changed. Read on every context call and log line: not re-checked.
        unsafe { std::str::from_utf8_unchecked(&self.request_id) }
    }

    /// The trace id in hex, or `""`.
    pub(crate) fn trace_id(&self) -> &str {
        if !self.has_trace_id {
            return "";
        }
        debug_assert!(self.trace_id.is_ascii());
        // SAFETY: `trace_id` is written once, in `new`, by `TraceId::to_hex`
        // (lowercase hex digits: ASCII, so UTF-8), and never changed.
        unsafe { std::str::from_utf8_unchecked(&self.trace_id) }
    }

    /// The raw context to pass to the plugin. Valid while `self` is.
    pub(crate) fn raw_context(&self) -> abi::Context {
        abi::Context {
            vtable: &HOST_VTABLE,
            host: self as *const InvocationState as *mut HostData,
        }
    }

    /// Calls the plugin on this thread and records the completion. Returns
    /// `true` when a caller had already given up on it (it was a runaway).
    pub(crate) fn run(&self, call: impl FnOnce(&abi::Context) -> i32) -> bool {
        self.run_then(call, |_| None)
    }

    /// Calls the plugin on this thread for a caller on this same thread: no
    /// completion is published (nobody else waits for it).
    ///
    /// The duration counts from the state's creation (its deadline's clock
    /// reading, a few dozen nanoseconds before the call: one clock read
    /// fewer on the fastest path).
    pub(crate) fn run_here(&self, call: impl FnOnce(&abi::Context) -> i32) -> Completion {
        let ctx = self.raw_context();
        let status = call(&ctx);
        Completion::Finished(status, self.started().elapsed())
    }

    /// Like [`run`](Self::run), running `after_call` with the call's
    /// duration once the plugin returned and before the caller is told, so
    /// that what the call held is free by the time the caller can invoke
    /// again. The instance slot it returns goes to the waiting caller,
    /// which releases it in [`finish`](Self::finish) (or is released here
    /// when the caller has given up).
    pub(crate) fn run_then(
        &self,
        call: impl FnOnce(&abi::Context) -> i32,
        after_call: impl FnOnce(Duration) -> Option<Lease>,
    ) -> bool {
        let ctx = self.raw_context();
        let start = Instant::now();
        let status = call(&ctx);
        let elapsed = start.elapsed();
        let lease = after_call(elapsed);
        let mut sink = self.sink.lock();
        sink.finished = Some((status, elapsed));
        let abandoned = sink.abandoned;
        // The caller (still waiting) releases the slot; nobody waits for
        // an abandoned call's, so it goes now.
        let lease = if abandoned {
            lease
        } else {
            sink.lease = lease;
            None
        };
        drop(sink);
        drop(lease);
        // Published after the lock is released: a caller polling this flag
        // takes the lock next and must not find it still held.
        self.finished.store(true, Ordering::Release);
        self.done.notify_one();
        self.wake_waiter();
        abandoned
    }

    /// Calls `hook` once the call completes (at once if it already has), or
    /// when [`wake_waiter`](Self::wake_waiter) is called first.
    pub(crate) fn on_complete(&self, hook: impl FnOnce() + Send + 'static) {
        let mut waiter = self.waiter.lock();
        if waiter.woken || self.finished.load(Ordering::Acquire) {
            drop(waiter);
            hook();
        } else {
            waiter.hook = Some(Hook::Call(Box::new(hook)));
        }
    }

    /// Ready once the call completed or [`wake_waiter`](Self::wake_waiter)
    /// was called; otherwise wakes `cx`'s task then (it replaces any
    /// [`on_complete`](Self::on_complete) hook).
    pub(crate) fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut waiter = self.waiter.lock();
        if waiter.woken || self.finished.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        match &mut waiter.hook {
            Some(Hook::Wake(waker)) => waker.clone_from(cx.waker()),
            hook => *hook = Some(Hook::Wake(cx.waker().clone())),
        }
        Poll::Pending
    }

    /// Whether the call has returned.
    pub(crate) fn has_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Calls the [`on_complete`](Self::on_complete) hook now (or as soon as
    /// it is set), whether or not the call has completed: the lane's
    /// watchdog wakes the caller at the deadline this way.
    pub(crate) fn wake_waiter(&self) {
        let hook = {
            let mut waiter = self.waiter.lock();
            waiter.woken = true;
            waiter.hook.take()
        };
        if let Some(hook) = hook {
            hook.fire();
        }
    }

    /// For a caller that stopped waiting at the deadline: the completion if
    /// the call did finish, else marks it abandoned (a runaway).
    pub(crate) fn give_up(&self) -> Completion {
        let mut sink = self.sink.lock();
        match sink.finished {
            Some((status, elapsed)) => Completion::Finished(status, elapsed),
            None => {
                sink.abandoned = true;
                Completion::TimedOut
            }
        }
    }

    /// The deadline of the call.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// When the invocation began (its deadline less its timeout).
    pub(crate) fn started(&self) -> Instant {
        self.deadline - self.timeout
    }

    /// Waits for [`run`](Self::run) on another thread until the deadline.
    /// On timeout the invocation is marked abandoned, so a late completion is
    /// reported as a finished runaway.
    pub(crate) fn wait(&self) -> Completion {
        crate::spin::spin_until(POLL_FOR_COMPLETION, || {
            self.finished.load(Ordering::Acquire)
        });
        let mut sink = self.sink.lock();
        loop {
            if let Some((status, elapsed)) = sink.finished {
                return Completion::Finished(status, elapsed);
            }
            if self.served.is_cancelled() {
                sink.abandoned = true;
                return Completion::Cancelled;
            }
            if self.done.wait_until(&mut sink, self.deadline).timed_out() {
                if let Some((status, elapsed)) = sink.finished {
                    return Completion::Finished(status, elapsed);
                }
                sink.abandoned = true;
                return Completion::TimedOut;
            }
        }
    }

    /// Wakes a caller waiting in [`wait`](Self::wait): the call was
    /// cancelled (the flag is set before this is called).
    pub(crate) fn wake_for_cancel(&self) {
        let _sink = self.sink.lock();
        self.done.notify_all();
    }

    /// The call's cancellation, if it can be cancelled.
    pub(crate) fn cancel(&self) -> Option<&Arc<Cancel>> {
        self.served.cancel()
    }

    /// The call's timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Appends a host-written line (e.g. a timeout notice) to the log.
    pub(crate) fn log_line(&self, message: &str) {
        self.sink
            .lock()
            .log
            .push(SystemTime::now(), self.request_id(), message.as_bytes());
    }

    /// Turns what the plugin reported into the caller's result.
    pub(crate) fn finish(&self, completion: Completion, handler_kind: CallKind) -> InvokeResult {
        // Declared first, so released last: after the sink's lock.
        let _lease: Option<Lease>;
        let mut sink = self.sink.lock();
        _lease = sink.lease.take();
        let (outcome, elapsed) = match completion {
            Completion::TimedOut => (
                Outcome::Failure(FunctionError::new(
                    error_type::TIMEOUT,
                    format!(
                        "{} timed out after {}",
                        handler_kind.noun(),
                        format_timeout(self.timeout)
                    ),
                )),
                self.timeout,
            ),
            Completion::Cancelled => (
                Outcome::Failure(FunctionError::new(
                    error_type::CANCELLED,
                    format!("the {} was cancelled by its caller", handler_kind.noun()),
                )),
                self.started().elapsed(),
            ),
            Completion::Finished(status, elapsed) => {
                let outcome = if status == abi::STATUS_OK {
                    if let Some(size) = sink.oversized_output {
                        Outcome::Failure(FunctionError::new(
                            error_type::RESPONSE_TOO_LARGE,
                            format!(
                                "response of {size} bytes exceeds the limit of {} bytes",
                                self.limits.max_response_bytes
                            ),
                        ))
                    } else {
                        let (kind, bytes) = sink
                            .output
                            .take()
                            .unwrap_or((abi::output_kind::EMPTY, Vec::new()));
                        Outcome::Success(Body {
                            kind: BodyKind::from_abi(kind),
                            bytes,
                        })
                    }
                } else {
                    Outcome::Failure(sink.error.take().unwrap_or_else(|| {
                        FunctionError::new(
                            error_type::FUNCTION_RETURN_ERROR,
                            if status == abi::STATUS_ERROR {
                                format!(
                                    "the {} failed without an error message",
                                    handler_kind.noun()
                                )
                            } else {
                                format!(
                                    "the {} returned unknown status {status}",
                                    handler_kind.noun()
                                )
                            },
                        )
                    }))
                };
                (outcome, elapsed)
            }
        };
        let summary = Summary::new(
            elapsed,
            self.function.memory_mb,
            self.memory_peak.load(Ordering::Relaxed),
        );
        InvokeResult {
            request_id: self.request_id().to_owned(),
            outcome,
            summary,
            log: if sink.log.dropped_bytes() > 0 {
                format!(
                    "[{} bytes of earlier log lines dropped]\n{}",
                    sink.log.dropped_bytes(),
                    sink.log.take_string()
                )
            } else {
                sink.log.take_string()
            },
            tail_bytes: self.limits.log_tail_bytes,
            cold_start: None,
        }
    }
}

/// What was called, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallKind {
    Handler,
    Initializer,
}

impl CallKind {
    fn noun(self) -> &'static str {
        match self {
            CallKind::Handler => "invocation",
            CallKind::Initializer => "initializer",
        }
    }
}

pub(crate) fn format_timeout(t: Duration) -> String {
    if t.subsec_millis() == 0 {
        match t.as_secs() {
            1 => "1 second".to_owned(),
            s => format!("{s} seconds"),
        }
    } else {
        format!("{:.3} seconds", t.as_secs_f64())
    }
}

// ---- the context vtable ---------------------------------------------------
//
// These functions are called by plugin code with the `host` pointer from
// `raw_context`. None of them can panic (no indexing, no unwrap; parking_lot
// locks do not poison), so nothing unwinds into the plugin.

/// # Safety
/// `host` must come from `InvocationState::raw_context` of a state that is
/// still alive: the thread running the plugin holds an `Arc` (or a borrow) of
/// it for the whole call, and the plugin may only use the context during it.
unsafe fn state<'a>(host: *const HostData) -> &'a InvocationState {
    // SAFETY: the caller's contract.
    unsafe { &*(host as *const InvocationState) }
}

fn lend(s: &str) -> HostStr {
    HostStr::from_slice(s.as_bytes())
}

unsafe extern "C" fn get_field(host: *const HostData, f: u32) -> HostStr {
    // SAFETY: the vtable contract (see `state`).
    let s = unsafe { state(host) };
    let c = &s.function.credentials;
    match f {
        field::REQUEST_ID => lend(s.request_id()),
        field::FUNCTION_NAME => lend(&s.function.function_name),
        field::VERSION => lend(s.version()),
        field::ALIAS => lend(s.alias()),
        field::PACKAGE => lend(&s.function.package),
        field::PROJECT_ID => lend(&s.function.project_id),
        field::ACCESS_KEY => lend(&c.access_key),
        field::SECRET_KEY => lend(&c.secret_key),
        field::SECURITY_ACCESS_KEY => lend(&c.security_access_key),
        field::SECURITY_SECRET_KEY => lend(&c.security_secret_key),
        field::SECURITY_TOKEN => lend(&c.security_token),
        field::TOKEN => lend(&c.token),
        field::TRACE_ID => lend(s.trace_id()),
        field::CANCELLED if s.served.is_cancelled() => lend("1"),
        _ => HostStr::EMPTY,
    }
}

unsafe extern "C" fn remaining_time_ms(host: *const HostData) -> i64 {
    // SAFETY: the vtable contract.
    let s = unsafe { state(host) };
    s.deadline
        .saturating_duration_since(Instant::now())
        .as_millis() as i64
}

unsafe extern "C" fn deadline_unix_ms(host: *const HostData) -> i64 {
    // SAFETY: the vtable contract.
    let s = unsafe { state(host) };
    // Derived on demand: one wall-clock read fewer per invocation.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let now = Instant::now();
    let remaining = s.deadline.saturating_duration_since(now).as_millis() as i64;
    let overdue = now.saturating_duration_since(s.deadline).as_millis() as i64;
    now_ms + remaining - overdue
}

unsafe extern "C" fn running_time_s(host: *const HostData) -> u32 {
    // SAFETY: the vtable contract.
    let t = unsafe { state(host) }.timeout;
    t.as_millis().div_ceil(1000) as u32
}

unsafe extern "C" fn memory_size_mb(host: *const HostData) -> u32 {
    // SAFETY: the vtable contract.
    unsafe { state(host) }.function.memory_mb
}

unsafe extern "C" fn cpu_millicores(host: *const HostData) -> u32 {
    // SAFETY: the vtable contract.
    let mb = unsafe { state(host) }.function.memory_mb;
    mb / 128 * 100 + 200
}

unsafe extern "C" fn get_user_data(
    host: *const HostData,
    key: PluginStr,
    value: *mut HostStr,
) -> i32 {
    // SAFETY: the vtable contract; the plugin lends `key` for this call.
    let (s, key) = unsafe { (state(host), key.as_slice()) };
    let Ok(key) = std::str::from_utf8(key) else {
        return 0;
    };
    let own = s.served.extras.as_ref().and_then(|e| e.user_data.get(key));
    match own.or_else(|| s.function.user_data.get(key)) {
        Some(v) if !value.is_null() => {
            // SAFETY: non-null out-pointer supplied by the plugin for this call.
            unsafe { value.write(lend(v)) };
            1
        }
        _ => 0,
    }
}

/// The first `max` bytes of a plugin string, followed by a truncation mark
/// when it was longer. Only those bytes are read: a plugin's length is not
/// trusted to describe that much readable memory beyond the cap.
///
/// # Safety
/// The first `min(len, max)` bytes at `s.ptr` must be readable for the call.
pub(crate) unsafe fn capped(s: PluginStr, max: usize) -> Vec<u8> {
    let kept = PluginStr {
        ptr: s.ptr,
        len: s.len.min(max),
    };
    // SAFETY: forwarded contract, for the kept prefix only.
    let bytes = unsafe { kept.as_slice() };
    let mut out = bytes.to_vec();
    if s.len > max {
        out.extend_from_slice(format!("...[truncated {} bytes]", s.len - max).as_bytes());
    }
    out
}

/// `text` cut to at most `max` bytes (at a character boundary) and marked,
/// for strings that crossed from a worker process. A string the worker's own
/// boundary already cut and marked (`max` plus its mark) is left as it is.
pub(crate) fn cut(mut text: String, max: usize) -> String {
    const MARK_ROOM: usize = 64;
    if text.len() > max + MARK_ROOM {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let dropped = text.len() - end;
        text.truncate(end);
        text.push_str(&format!("...[truncated {dropped} bytes]"));
    }
    text
}

unsafe extern "C" fn write_log(host: *mut HostData, level: u32, message: PluginStr) {
    // SAFETY: the vtable contract; the plugin lends `message` for this call
    // (read in place when it is within the line limit, else copied cut).
    let (s, message) = unsafe {
        (
            state(host),
            if message.len <= abi::MAX_LOG_LINE {
                std::borrow::Cow::Borrowed(message.as_slice())
            } else {
                std::borrow::Cow::Owned(capped(message, abi::MAX_LOG_LINE))
            },
        )
    };
    let message = &message[..];
    let now = SystemTime::now();
    s.sink.lock().log.push(now, s.request_id(), message);
    let level = match level {
        abi::level::ERROR => log::Level::Error,
        abi::level::WARN => log::Level::Warn,
        abi::level::DEBUG => log::Level::Debug,
        abi::level::TRACE => log::Level::Trace,
        _ => log::Level::Info,
    };
    if log::log_enabled!(target: "fnhost::function", level) {
        log::log!(
            target: "fnhost::function",
            level,
            request_id = s.request_id(),
            trace_id = s.trace_id();
            "[{}] {} {} {}",
            s.function.function_name,
            humantime::format_rfc3339_millis(now),
            s.request_id(),
            String::from_utf8_lossy(&crate::log_buffer::one_line(message))
        );
    }
}

unsafe extern "C" fn set_output(host: *mut HostData, kind: u32, body: PluginStr) {
    // SAFETY: the vtable contract; the plugin lends `body` for this call.
    let (s, body) = unsafe { (state(host), body.as_slice()) };
    let mut sink = s.sink.lock();
    if body.len() > s.limits.max_response_bytes {
        sink.output = None;
        sink.oversized_output = Some(body.len());
    } else {
        sink.oversized_output = None;
        // The one copy: plugin memory never outlives this call on the host side.
        sink.output = Some((kind, body.to_vec()));
    }
}

unsafe extern "C" fn set_error(host: *mut HostData, error_type: PluginStr, message: PluginStr) {
    // SAFETY: the vtable contract; the plugin lends both strings for this call.
    let (s, ty, msg) = unsafe {
        (
            state(host),
            capped(error_type, abi::MAX_ERROR_TYPE),
            capped(message, abi::MAX_ERROR_MESSAGE),
        )
    };
    let ty = if ty.is_empty() {
        error_type::FUNCTION_RETURN_ERROR.to_owned()
    } else {
        String::from_utf8_lossy(&ty).into_owned()
    };
    s.sink.lock().error = Some(FunctionError::new(ty, String::from_utf8_lossy(&msg)));
}

unsafe extern "C" fn report_memory_peak(host: *mut HostData, peak_bytes: u64) {
    // SAFETY: the vtable contract.
    unsafe { state(host) }
        .memory_peak
        .store(peak_bytes, Ordering::Relaxed);
}

/// `call_host` (ABI 1.5): a host function of the runtime (see
/// [`crate::host_call`]).
unsafe extern "C" fn call_host(
    host: *mut HostData,
    name: PluginStr,
    input: PluginStr,
    output: *mut HostStr,
    error_type: *mut HostStr,
) -> i32 {
    // SAFETY: the vtable contract.
    let s = unsafe { state(host) };
    let ctx = HostCallContext {
        function: &s.function.function_name,
        function_id: &s.function.function_id,
        version: s.version(),
        alias: s.alias(),
        project_id: &s.function.project_id,
        package: &s.function.package,
        request_id: s.request_id(),
        trace_id: s.trace_id(),
        deadline: s.deadline,
        depth: s.host_call_depth,
        embedder_value: s
            .served
            .extras
            .as_ref()
            .and_then(|e| e.embedder_value.as_deref()),
        allowed: s.function.allowed_host_functions.as_deref(),
    };
    // SAFETY: the plugin lends `name` and `input` for this call.
    let answer = unsafe {
        crate::host_call::dispatch(&s.function.host_functions, &s.host_calls, &ctx, name, input)
    };
    let (status, text, ty) = s.host_calls.keep_answer(answer);
    if !output.is_null() {
        // SAFETY: a non-null out-pointer the plugin supplied for this call.
        unsafe { output.write(text) };
    }
    if !error_type.is_null() {
        // SAFETY: as above.
        unsafe { error_type.write(ty) };
    }
    status
}

/// The host's context function table (ABI 1.5: `call_host` appended).
pub(crate) static HOST_VTABLE: abi::ContextVTable = abi::ContextVTable {
    struct_size: std::mem::size_of::<abi::ContextVTable>() as u32,
    reserved: 0,
    get_field,
    remaining_time_ms,
    deadline_unix_ms,
    running_time_s,
    memory_size_mb,
    cpu_millicores,
    get_user_data,
    log: write_log,
    set_output,
    set_error,
    report_memory_peak,
    call_host,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn state(timeout: Duration) -> InvocationState {
        let config = FunctionConfig::new("t.Handler", "/nowhere").memory_mb(1024);
        let limits = Limits {
            max_response_bytes: 16,
            max_log_bytes: 1024,
            log_tail_bytes: 64,
        };
        InvocationState::new(
            Arc::new(FunctionContext::from_config(&config, Arc::default())),
            timeout,
            limits,
            Served::default(),
        )
    }

    #[test]
    fn remaining_time_is_floored_at_zero_after_the_deadline() {
        let s = state(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        let ctx = s.raw_context();
        // SAFETY: `ctx` comes from `s`, alive for the whole test.
        let remaining = unsafe { (HOST_VTABLE.remaining_time_ms)(ctx.host) };
        assert_eq!(remaining, 0);
    }

    #[test]
    fn cpu_follows_functiongraphs_formula_and_timeout_rounds_up_to_seconds() {
        let s = state(Duration::from_millis(1500));
        let ctx = s.raw_context();
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                (HOST_VTABLE.cpu_millicores)(ctx.host),
                1024 / 128 * 100 + 200
            );
            assert_eq!((HOST_VTABLE.running_time_s)(ctx.host), 2);
            assert_eq!((HOST_VTABLE.get_field)(ctx.host, 999).len, 0);
        }
    }

    #[test]
    fn an_oversized_output_is_not_copied_and_fails_the_call() {
        let s = state(Duration::from_secs(1));
        s.run(|ctx| {
            // SAFETY: `ctx` is valid during `run`.
            unsafe {
                ((*ctx.vtable).set_output)(
                    ctx.host,
                    abi::output_kind::BYTES,
                    PluginStr::from_slice(&[0u8; 17]),
                )
            };
            abi::STATUS_OK
        });
        let r = s.finish(s.wait(), CallKind::Handler);
        assert_eq!(
            r.outcome.error().unwrap().error_type,
            error_type::RESPONSE_TOO_LARGE
        );
    }

    #[test]
    fn the_caller_hears_back_only_after_the_after_call_work() {
        let s = Arc::new(state(Duration::from_secs(5)));
        let released = Arc::new(AtomicBool::new(false));
        let worker = {
            let (s, released) = (Arc::clone(&s), Arc::clone(&released));
            std::thread::spawn(move || {
                s.run_then(
                    |_| abi::STATUS_OK,
                    |_| {
                        std::thread::sleep(Duration::from_millis(50));
                        released.store(true, Ordering::SeqCst);
                        None
                    },
                )
            })
        };
        assert!(matches!(s.wait(), Completion::Finished(abi::STATUS_OK, _)));
        assert!(
            released.load(Ordering::SeqCst),
            "completion was published before the slot was freed"
        );
        assert!(!worker.join().unwrap());
    }

    #[test]
    fn a_waiting_caller_releases_the_slot_and_an_abandoned_call_releases_its_own() {
        use crate::instances::InstancePool;
        let pool = InstancePool::new(crate::config::InstanceConfig::default());
        let active = || pool.stats().active;
        // The caller waits: the slot comes back with the result and is
        // released when the caller finishes, before it can call again.
        let waited = Arc::new(state(Duration::from_secs(5)));
        let lease = pool.acquire(Duration::ZERO).unwrap();
        assert_eq!(active(), 1);
        let worker = {
            let waited = Arc::clone(&waited);
            std::thread::spawn(move || waited.run_then(|_| abi::STATUS_OK, |_| Some(lease)))
        };
        assert!(matches!(
            waited.wait(),
            Completion::Finished(abi::STATUS_OK, _)
        ));
        assert!(!worker.join().unwrap());
        assert_eq!(active(), 1, "released before the caller took the result");
        let _ = waited.finish(
            Completion::Finished(abi::STATUS_OK, Duration::ZERO),
            CallKind::Handler,
        );
        assert_eq!(active(), 0, "the caller did not release the slot");
        // The caller gave up at the deadline: the runaway keeps its slot
        // until it returns, and then releases it itself.
        let abandoned = state(Duration::from_secs(5));
        let lease = pool.acquire(Duration::ZERO).unwrap();
        assert!(matches!(abandoned.give_up(), Completion::TimedOut));
        assert_eq!(active(), 1);
        assert!(abandoned.run_then(|_| abi::STATUS_OK, |_| Some(lease)));
        assert_eq!(active(), 0, "an abandoned call kept its slot");
    }

    #[test]
    fn completion_hooks_fire_once_whether_set_before_or_after_completion() {
        use std::sync::atomic::AtomicUsize;
        let fired = Arc::new(AtomicUsize::new(0));
        let early = state(Duration::from_secs(1));
        let f = Arc::clone(&fired);
        early.on_complete(move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        early.run(|_| abi::STATUS_OK);
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        let late = state(Duration::from_secs(1));
        late.run(|_| abi::STATUS_OK);
        let f = Arc::clone(&fired);
        late.on_complete(move || {
            f.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(fired.load(Ordering::SeqCst), 2);
        assert!(matches!(
            late.give_up(),
            Completion::Finished(abi::STATUS_OK, _)
        ));
        let never = state(Duration::from_secs(1));
        assert!(matches!(never.give_up(), Completion::TimedOut));
        assert!(
            never.run(|_| abi::STATUS_OK),
            "a call given up on is reported as a runaway"
        );
    }

    #[test]
    fn an_error_status_without_an_error_gets_a_generic_function_error() {
        let s = state(Duration::from_secs(1));
        s.run(|_| abi::STATUS_ERROR);
        let r = s.finish(s.wait(), CallKind::Handler);
        let e = r.outcome.error().unwrap();
        assert_eq!(e.error_type, error_type::FUNCTION_RETURN_ERROR);
        assert!(e.message.contains("without an error message"));
    }
}
