//! Host functions: what the program running fnhost offers its plugins by
//! name (ABI 1.5, `call_host` in the context). An embedder registers them
//! ([`RuntimeBuilder::host_function`](crate::RuntimeBuilder::host_function),
//! [`Runtime::register_host_function`](crate::Runtime::register_host_function));
//! a handler calls one through its context, and the call runs the host
//! function on the handler's thread, synchronously.
//!
//! What a call may cost the host is bounded per invocation: the input and
//! the name ([`abi::MAX_HOST_CALL_INPUT`], [`abi::MAX_HOST_FUNCTION_NAME`]),
//! the number of calls ([`abi::MAX_HOST_CALLS`]), the bytes of answers held
//! at once ([`abi::MAX_HOST_CALL_ANSWERS`]: an answer stays valid until the
//! handler returns), and the nesting of host functions that invoke
//! functions that call host functions ([`MAX_DEPTH`]). A call after the
//! invocation's deadline answers `timeout`. A host function that panics
//! answers `HostFunctionPanicked` to the plugin; nothing unwinds into it.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use fnhost_api::abi::{self, host_call_error, HostStr, PluginStr};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;

/// How deep host functions that invoke functions that call host functions
/// may nest: a call at this depth answers `HostCallDepthExceeded`.
pub const MAX_DEPTH: u32 = 8;

/// The longest name a host function may be registered under (the ABI's
/// limit on the name a plugin passes).
pub const MAX_NAME: usize = abi::MAX_HOST_FUNCTION_NAME;

/// A host function: called with the calling invocation's context and the
/// plugin's input, it answers the output or a typed [`HostError`]. Any
/// `Fn(&HostCallContext, &[u8]) -> Result<Vec<u8>, HostError>` that is
/// `Send + Sync` is one. It runs on the plugin's thread while the plugin
/// waits: a slow one holds the invocation (and counts against its
/// deadline, which it can read from the context).
pub trait HostFunction: Send + Sync + 'static {
    /// Answers one call.
    fn call(&self, ctx: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError>;
}

impl<F> HostFunction for F
where
    F: Fn(&HostCallContext<'_>, &[u8]) -> Result<Vec<u8>, HostError> + Send + Sync + 'static,
{
    fn call(&self, ctx: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError> {
        self(ctx, input)
    }
}

/// What a host function knows of the invocation that calls it: which
/// function, version, alias and request, so that it can decide per function
/// what to answer.
pub struct HostCallContext<'a> {
    pub(crate) function: &'a str,
    pub(crate) function_id: &'a str,
    pub(crate) version: &'a str,
    pub(crate) alias: &'a str,
    pub(crate) project_id: &'a str,
    pub(crate) package: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) trace_id: &'a str,
    pub(crate) deadline: Instant,
    pub(crate) depth: u32,
    pub(crate) embedder_value: Option<&'a (dyn std::any::Any + Send + Sync)>,
    /// The host functions the calling function may call (`None`: all).
    pub(crate) allowed: Option<&'a [String]>,
}

impl HostCallContext<'_> {
    /// The calling function's name.
    pub fn function(&self) -> &str {
        self.function
    }
    /// The id the program gave the calling function's creation
    /// ([`FunctionConfig::function_id`](crate::FunctionConfig::function_id)),
    /// `""` when none: two functions of the same name, one deleted and one
    /// created after it, have different ids.
    pub fn function_id(&self) -> &str {
        self.function_id
    }
    /// The version it serves (`latest` or a published version).
    pub fn version(&self) -> &str {
        self.version
    }
    /// The alias it was invoked through, `""` when none.
    pub fn alias(&self) -> &str {
        self.alias
    }
    /// Its project id.
    pub fn project_id(&self) -> &str {
        self.project_id
    }
    /// Its package (group).
    pub fn package(&self) -> &str {
        self.package
    }
    /// The calling invocation's request id.
    pub fn request_id(&self) -> &str {
        self.request_id
    }
    /// Its W3C trace id, `""` when none.
    pub fn trace_id(&self) -> &str {
        self.trace_id
    }
    /// The calling invocation's deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
    /// The time left before that deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
    /// How many host functions this call is nested in: 0 for a call from
    /// an invocation that no host function started.
    pub fn depth(&self) -> u32 {
        self.depth
    }
    /// The value the embedder gave the calling invocation
    /// ([`CallOptions::embedder_value`](crate::CallOptions::embedder_value)),
    /// when it is a `T`.
    pub fn embedder_value<T: std::any::Any>(&self) -> Option<&T> {
        self.embedder_value?.downcast_ref()
    }
}

impl fmt::Debug for HostCallContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostCallContext")
            .field("function", &self.function)
            .field("version", &self.version)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// A host function's failure, as the plugin receives it: a type
/// (`HostFunctionError` unless set) and a message. Any `std::error::Error`
/// converts into it, so `?` works in host functions.
#[derive(Clone, PartialEq, Eq)]
pub struct HostError {
    error_type: String,
    message: String,
}

impl HostError {
    /// An error of type `HostFunctionError`.
    pub fn new(message: impl Into<String>) -> HostError {
        HostError {
            error_type: host_call_error::FAILED.to_owned(),
            message: message.into(),
        }
    }
    /// Sets the type the plugin receives (an empty one stays
    /// `HostFunctionError`).
    pub fn with_type(mut self, error_type: impl Into<String>) -> HostError {
        let error_type = error_type.into();
        if !error_type.is_empty() {
            self.error_type = error_type;
        }
        self
    }
    /// The type the plugin receives.
    pub fn error_type(&self) -> &str {
        &self.error_type
    }
    /// The message the plugin receives.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for HostError {
    fn from(error: E) -> HostError {
        HostError::new(error.to_string())
    }
}

impl fmt::Debug for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

/// Why a host function could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterError(String);

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RegisterError {}

/// Checks a host function's name: 1 to [`MAX_NAME`] bytes of ASCII
/// letters, digits and `._-:/`.
pub fn check_name(name: &str) -> Result<(), RegisterError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(RegisterError(format!(
            "a host function's name has 1 to {MAX_NAME} bytes, not {}",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-:/".contains(*c)))
    {
        return Err(RegisterError(format!(
            "host function name {name:?}: {c:?} is not allowed (letters, digits and ._-:/ are)"
        )));
    }
    Ok(())
}

/// The host a worker process asks for host functions (over its channel).
pub(crate) trait Remote: Send + Sync {
    /// The host's answer to one call (checked locally already).
    fn call(&self, name: &str, input: &[u8]) -> Result<Vec<u8>, HostError>;
}

/// The host functions of a runtime, by name.
#[derive(Default)]
pub(crate) struct HostFunctions {
    /// Read on every call without a lock (a registration replaces the
    /// whole map, under `changing`).
    by_name: ArcSwap<FxHashMap<Box<str>, Arc<dyn HostFunction>>>,
    changing: Mutex<()>,
    /// Where none are reachable (a pre-flight's checker).
    unavailable: bool,
    /// In a worker process (process isolation): the host's.
    remote: Option<Box<dyn Remote>>,
}

impl fmt::Debug for HostFunctions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostFunctions")
            .field("names", &self.names())
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

impl HostFunctions {
    /// None reachable: every call answers `HostFunctionUnavailable`.
    pub(crate) fn unavailable() -> HostFunctions {
        HostFunctions {
            unavailable: true,
            ..HostFunctions::default()
        }
    }

    /// Those of a worker process: the host's, asked through `remote`.
    pub(crate) fn remote(remote: Box<dyn Remote>) -> HostFunctions {
        HostFunctions {
            remote: Some(remote),
            ..HostFunctions::default()
        }
    }

    pub(crate) fn register(
        &self,
        name: &str,
        function: Arc<dyn HostFunction>,
    ) -> Result<(), RegisterError> {
        check_name(name)?;
        let _changing = self.changing.lock();
        let mut by_name = FxHashMap::clone(&self.by_name.load());
        if by_name.contains_key(name) {
            return Err(RegisterError(format!(
                "a host function named {name:?} is registered already (unregister it first)"
            )));
        }
        by_name.insert(name.into(), function);
        self.by_name.store(Arc::new(by_name));
        Ok(())
    }

    pub(crate) fn unregister(&self, name: &str) -> bool {
        let _changing = self.changing.lock();
        let mut by_name = FxHashMap::clone(&self.by_name.load());
        let removed = by_name.remove(name).is_some();
        self.by_name.store(Arc::new(by_name));
        removed
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.load().keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }
}

/// What one invocation's host calls hold: their count, when they must end
/// (on a cheap clock), and every answer lent to the plugin (valid until the
/// handler returns, so kept until the invocation's state is dropped).
#[derive(Debug, Default)]
pub(crate) struct HostCalls {
    count: AtomicU32,
    /// The deadline on `CLOCK_MONOTONIC_COARSE`, in ns (0: not set yet):
    /// set at the first call from the invocation's own deadline, so that
    /// later calls check it without a precise clock read (the coarse clock
    /// is a few ms behind at most).
    coarse_deadline_ns: AtomicU64,
    answers: Mutex<Answers>,
    /// `answers.bytes`, readable without the lock (each call checks it
    /// before it runs).
    held: AtomicUsize,
}

#[derive(Debug, Default)]
struct Answers {
    kept: Vec<Vec<u8>>,
    bytes: usize,
}

impl HostCalls {
    /// Counts one call; `false` past the limit.
    fn count_one(&self) -> bool {
        self.count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < abi::MAX_HOST_CALLS).then_some(n + 1)
            })
            .is_ok()
    }

    /// Whether the answers held reach their bound (no further call runs).
    fn answers_full(&self) -> bool {
        self.held.load(Ordering::Relaxed) >= abi::MAX_HOST_CALL_ANSWERS
    }

    /// Whether `deadline` has passed.
    fn past(&self, deadline: Instant) -> bool {
        let coarse = self.coarse_deadline_ns.load(Ordering::Relaxed);
        if coarse != 0 {
            return coarse_now_ns() >= coarse;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        let left = u64::try_from((deadline - now).as_nanos()).unwrap_or(u64::MAX);
        let at = coarse_now_ns().saturating_add(left).max(1);
        self.coarse_deadline_ns.store(at, Ordering::Relaxed);
        false
    }
}

impl Answers {
    /// Keeps `bytes` and lends them (the bound is checked before a call
    /// runs: see `answers_full`); `None` only if the count overflows.
    fn keep(&mut self, bytes: Vec<u8>) -> Option<HostStr> {
        if bytes.is_empty() {
            return Some(HostStr::EMPTY);
        }
        self.bytes = self.bytes.checked_add(bytes.len())?;
        // The heap bytes stay where they are when the vector moves into
        // the list, and the list only ever grows until the state is
        // dropped.
        let lent = HostStr::from_slice(&bytes);
        self.kept.push(bytes);
        Some(lent)
    }
}

/// `CLOCK_MONOTONIC_COARSE` in ns: the tick's clock, a few ns to read.
fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, valid here.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

thread_local! {
    /// Set while a host function runs on this thread: the depth an
    /// invocation it starts here gets.
    static CALLING_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// The host-call depth of an invocation started on this thread now: one
/// more than the host function running here, 0 outside any.
pub(crate) fn depth_of_new_invocation() -> u32 {
    CALLING_DEPTH.with(Cell::get)
}

/// Restores the thread's calling depth when a host function returns (or
/// panics).
struct DepthGuard(u32);

impl Drop for DepthGuard {
    fn drop(&mut self) {
        CALLING_DEPTH.with(|d| d.set(self.0));
    }
}

fn fail(ty: &str, message: String) -> Result<Vec<u8>, HostError> {
    Err(HostError::new(message).with_type(ty))
}

fn too_large(what: &str, max: usize, len: usize) -> Result<Vec<u8>, HostError> {
    fail(
        host_call_error::INPUT_TOO_LARGE,
        format!("{what} has at most {max} bytes, not {len}"),
    )
}

/// Runs one host call of the invocation `ctx` describes, counted in
/// `calls`; answers the function's output, or an error's type and message.
///
/// # Safety
/// The plugin lends `name` and `input` for the call (only as much of each
/// as its limit allows is read).
pub(crate) unsafe fn dispatch(
    functions: &HostFunctions,
    calls: &HostCalls,
    ctx: &HostCallContext<'_>,
    name: PluginStr,
    input: PluginStr,
) -> Result<Vec<u8>, HostError> {
    // Lengths first: a plugin's length is not trusted to describe that much
    // readable memory, so nothing over a limit is read.
    if name.len > MAX_NAME {
        return too_large("a host function's name", MAX_NAME, name.len);
    }
    if input.len > abi::MAX_HOST_CALL_INPUT {
        return too_large("a host call's input", abi::MAX_HOST_CALL_INPUT, input.len);
    }
    // SAFETY: the plugin lends both (within their limits) for this call.
    let (name, input) = unsafe { (name.as_slice(), input.as_slice()) };
    dispatch_bytes(functions, calls, ctx, name, input)
}

/// [`dispatch`] of bytes in hand: a plugin's in process, or those a worker
/// process sent (an untrusted peer's: every limit is checked again).
pub(crate) fn dispatch_bytes(
    functions: &HostFunctions,
    calls: &HostCalls,
    ctx: &HostCallContext<'_>,
    name: &[u8],
    input: &[u8],
) -> Result<Vec<u8>, HostError> {
    if functions.unavailable {
        return fail(
            host_call_error::UNAVAILABLE,
            "host functions are not reachable from here".into(),
        );
    }
    if name.len() > MAX_NAME {
        return too_large("a host function's name", MAX_NAME, name.len());
    }
    if input.len() > abi::MAX_HOST_CALL_INPUT {
        return too_large("a host call's input", abi::MAX_HOST_CALL_INPUT, input.len());
    }
    let Ok(name_text) = std::str::from_utf8(name) else {
        return fail(
            host_call_error::NOT_FOUND,
            format!("no host function named {:?}", String::from_utf8_lossy(name)),
        );
    };
    // Not allowed reads as not there: a function learns nothing of the
    // host functions it may not call.
    if ctx
        .allowed
        .is_some_and(|allowed| !allowed.iter().any(|a| a == name_text))
    {
        return fail(
            host_call_error::NOT_FOUND,
            format!("no host function named {name_text:?}"),
        );
    }
    // Held through the call: a registration meanwhile makes a new map and
    // leaves this one to this call.
    let map = functions.by_name.load();
    let local = match &functions.remote {
        // A worker process: the host answers (and checks it all again).
        Some(_) => None,
        None => match map.get(name_text) {
            Some(function) => Some(function),
            None => {
                return fail(
                    host_call_error::NOT_FOUND,
                    format!("no host function named {name_text:?}"),
                )
            }
        },
    };
    let depth = ctx.depth;
    if depth >= MAX_DEPTH {
        return fail(
            host_call_error::DEPTH_EXCEEDED,
            format!("host calls nested {depth} deep (at most {MAX_DEPTH})"),
        );
    }
    // Before the function runs: a call past the bound on answers held must
    // not have done what it asked (deleted a key, invoked a function) and
    // then be told it was refused. The answer that crosses the bound is
    // delivered: an invocation holds at most the bound and one answer.
    if calls.answers_full() {
        return fail(
            host_call_error::LIMIT_EXCEEDED,
            format!(
                "the invocation holds {} bytes of host calls' answers already (at most {})",
                calls.held.load(Ordering::Relaxed),
                abi::MAX_HOST_CALL_ANSWERS
            ),
        );
    }
    if !calls.count_one() {
        return fail(
            host_call_error::LIMIT_EXCEEDED,
            format!(
                "more than {} host calls in one invocation",
                abi::MAX_HOST_CALLS
            ),
        );
    }
    if calls.past(ctx.deadline) {
        return fail(
            host_call_error::TIMEOUT,
            "the invocation's deadline has passed".into(),
        );
    }
    let Some(function) = local else {
        return match &functions.remote {
            Some(remote) => remote.call(name_text, input),
            None => fail(host_call_error::UNAVAILABLE, "no host".into()),
        };
    };
    let outer = CALLING_DEPTH.with(|d| d.replace(depth + 1));
    let _restore = DepthGuard(outer);
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| function.call(ctx, input))) {
        Ok(answer) => answer,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            log::error!(
                target: "fnhost::host_call",
                "host function {name_text:?} called by function {} panicked: {what}",
                ctx.function
            );
            fail(
                host_call_error::PANICKED,
                format!("host function {name_text:?} panicked"),
            )
        }
    }
}

impl HostCalls {
    /// Keeps a host call's answer (its output, or its error's message and
    /// type) for the rest of the invocation; past the limit on answers
    /// held, answers `HostCallLimitExceeded` (static strings) instead.
    pub(crate) fn keep_answer(
        &self,
        answer: Result<Vec<u8>, HostError>,
    ) -> (i32, HostStr, HostStr) {
        const TOO_MUCH: &str = "the invocation holds too many bytes of host calls' answers";
        let (status, text, ty) = match answer {
            Ok(output) => (abi::STATUS_OK, output, Vec::new()),
            Err(e) => (
                abi::STATUS_ERROR,
                e.message.into_bytes(),
                e.error_type.into_bytes(),
            ),
        };
        let mut answers = self.answers.lock();
        let kept = answers
            .keep(text)
            .and_then(|t| Some((t, answers.keep(ty)?)));
        self.held.store(answers.bytes, Ordering::Relaxed);
        match kept {
            Some((t, y)) => (status, t, y),
            None => (
                abi::STATUS_ERROR,
                HostStr::from_slice(TOO_MUCH.as_bytes()),
                HostStr::from_slice(host_call_error::LIMIT_EXCEEDED.as_bytes()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("cache.get").is_ok());
        assert!(check_name("kv/put:v2_x-y").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("naïve").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME)).is_ok());
        assert!(check_name(&"x".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn answers_are_bounded_and_stay_put() {
        let mut calls = Answers::default();
        let first = calls.keep(b"first".to_vec()).unwrap();
        for _ in 0..1000 {
            calls.keep(b"more".to_vec()).unwrap();
        }
        // SAFETY: `first` points into a box `calls` still holds.
        assert_eq!(unsafe { first.as_slice() }, b"first");
        // The answer that crosses the bound is kept (it exists already);
        // the bound stops the calls after it, before they run.
        let big = vec![0u8; abi::MAX_HOST_CALL_ANSWERS];
        assert!(calls.keep(big).is_some());
        assert!(calls.bytes > abi::MAX_HOST_CALL_ANSWERS);
    }

    /// An outside attack found the bound on answers held checked after the
    /// host function ran: `kv.delete` deleted, and the plugin was told it
    /// had been refused. A call past the bound is refused before it runs.
    #[test]
    fn a_call_past_the_bound_on_answers_is_refused_before_it_runs() {
        let ran = Arc::new(AtomicU32::new(0));
        let functions = HostFunctions::default();
        let counter = Arc::clone(&ran);
        functions
            .register(
                "side_effect",
                Arc::new(move |_: &HostCallContext<'_>, input: &[u8]| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    Ok(input.to_vec())
                }),
            )
            .unwrap();
        let calls = HostCalls::default();
        let ctx = HostCallContext {
            function: "f",
            function_id: "",
            version: "latest",
            alias: "",
            project_id: "",
            package: "default",
            request_id: "r",
            trace_id: "",
            deadline: Instant::now() + Duration::from_secs(60),
            depth: 0,
            embedder_value: None,
            allowed: None,
        };
        // Calls of 6 MiB answers until the bound is crossed: each runs and
        // is answered, the one that crosses it too.
        let input = vec![1u8; abi::MAX_HOST_CALL_INPUT];
        let mut runs = 0;
        while !calls.answers_full() {
            let answer = dispatch_bytes(&functions, &calls, &ctx, b"side_effect", &input);
            assert_eq!(calls.keep_answer(answer).0, abi::STATUS_OK);
            runs += 1;
        }
        assert_eq!(ran.load(Ordering::Relaxed), runs);
        // Past it: refused, and the function does not run.
        let e = dispatch_bytes(&functions, &calls, &ctx, b"side_effect", b"x").unwrap_err();
        assert_eq!(e.error_type(), host_call_error::LIMIT_EXCEEDED);
        assert_eq!(ran.load(Ordering::Relaxed), runs, "refused before it ran");
    }

    #[test]
    fn calls_are_counted_to_the_limit() {
        let calls = HostCalls::default();
        for _ in 0..abi::MAX_HOST_CALLS {
            assert!(calls.count_one());
        }
        assert!(!calls.count_one());
    }

    #[test]
    fn registering_a_name_twice_is_refused_until_unregistered() {
        let functions = HostFunctions::default();
        let f: Arc<dyn HostFunction> =
            Arc::new(|_: &HostCallContext<'_>, input: &[u8]| Ok(input.to_vec()));
        functions.register("echo", Arc::clone(&f)).unwrap();
        assert!(functions.register("echo", Arc::clone(&f)).is_err());
        assert!(functions.unregister("echo"));
        functions.register("echo", f).unwrap();
        assert_eq!(functions.names(), ["echo"]);
    }
}
