//! The host functions `fnhost serve` offers its functions: what a
//! FunctionGraph handler reaches through platform services, without a
//! network. A function reaches only those its configuration lists
//! (`host_functions`, empty by default), in process and from a sandboxed
//! worker alike (there the host checks the list again: the worker is not
//! trusted to).
//!
//! - `kv.get` (input: the key) answers the value, or `KvKeyNotFound`.
//! - `kv.put` (input: the key, a newline, the value) stores it.
//! - `kv.delete` (input: the key) answers `true` or `false` (whether it
//!   was there).
//! - `invoke` (input: a function's name, `name:qualifier` or URN, a
//!   newline, the payload) invokes a function of the caller's own project
//!   synchronously and answers its body; the function's failure is the
//!   caller's `HostCallError`, of the function's error type. The call is
//!   bounded by the caller's deadline and by the nesting of host calls
//!   (8), and it is counted, logged and traced as any invocation.
//!
//! Keys are scoped to the calling function (every version and alias of it
//! shares them), bounded in size and number (see [`crate::store::kv`]),
//! kept in the server's store (so they survive a restart and, with
//! PostgreSQL, are shared by the nodes of a cluster) and deleted with the
//! function. Who calls is the host's record of the invocation, never what
//! a plugin or a worker says.

use std::sync::{Arc, Weak};
use std::time::Instant;

use fnhost::{CallIds, CallOptions, HostCallContext, HostError, InvokeError, Runtime, TraceId};

use crate::invocation_metrics::Outcome as MetricOutcome;
use crate::state::AppState;
use crate::store::kv;
use crate::urn::FunctionRefStr;

/// The names this module registers.
pub const NAMES: [&str; 4] = [KV_GET, KV_PUT, KV_DELETE, INVOKE];

/// One built-in: the server's state, the call, its input.
type Builtin = fn(&AppState, &HostCallContext<'_>, &[u8]) -> Result<Vec<u8>, HostError>;

/// Each name of [`NAMES`] with its function.
const BUILTINS: [(&str, Builtin); 4] = [
    (KV_GET, kv_get),
    (KV_PUT, kv_put),
    (KV_DELETE, kv_delete),
    (INVOKE, invoke),
];

/// `kv.get`.
pub const KV_GET: &str = "kv.get";
/// `kv.put`.
pub const KV_PUT: &str = "kv.put";
/// `kv.delete`.
pub const KV_DELETE: &str = "kv.delete";
/// `invoke`.
pub const INVOKE: &str = "invoke";

/// The error types these host functions answer (beside the core's
/// `HostFunction...` ones and, for `invoke`, the invoked function's own).
pub mod error_type {
    /// `kv.get` of a key that is not there.
    pub const KEY_NOT_FOUND: &str = "KvKeyNotFound";
    /// A key that is empty, too long, not UTF-8 or has control
    /// characters; a value too large; `kv.put` without its newline.
    pub const INVALID_INPUT: &str = "KvInvalidInput";
    /// The function holds as many keys or bytes as it may.
    pub const QUOTA_EXCEEDED: &str = "KvQuotaExceeded";
    /// The store did not answer (the server's log says why).
    pub const STORE_UNAVAILABLE: &str = "KvUnavailable";
    /// The calling function was deleted while its call ran: its space is
    /// closed (a function created later under its name has its own).
    pub const SPACE_CLOSED: &str = "KvSpaceClosed";
    /// `invoke` of a target that does not parse.
    pub const INVALID_TARGET: &str = "InvokeInvalidTarget";
    /// `invoke` of a URN in another project.
    pub const FORBIDDEN: &str = "InvokeForbidden";
    /// `invoke` of a function, version or alias that does not exist (or
    /// not in the caller's project).
    pub const FUNCTION_NOT_FOUND: &str = "FunctionNotFound";
    /// `invoke` of a function with no instance free in time.
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    /// `invoke` that could not start for another reason.
    pub const INVOKE_FAILED: &str = "InvokeFailed";
}

fn error(ty: &str, message: impl Into<String>) -> HostError {
    HostError::new(message).with_type(ty)
}

/// The built-in host functions registered on a runtime, unregistered when
/// this is dropped (the server stops; an embedding program's runtime lives
/// on without them).
pub(crate) struct Registered {
    runtime: Runtime,
    names: Vec<&'static str>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        for name in &self.names {
            self.runtime.unregister_host_function(name);
        }
    }
}

/// Registers the built-in host functions on `runtime` (one the embedder
/// registered already under a name keeps it: the embedder's wins, and the
/// server says so).
pub(crate) fn register(runtime: &Runtime, state: &Arc<AppState>) -> Registered {
    let mut registered = Vec::new();
    for (name, builtin) in BUILTINS {
        let state = Arc::downgrade(state);
        let result =
            runtime.register_host_function(name, move |ctx: &HostCallContext<'_>, input: &[u8]| {
                with_state(&state, |s| builtin(s, ctx, input))
            });
        match result {
            Ok(()) => registered.push(name),
            Err(e) => log::warn!(
                target: "fnhost::server",
                "the built-in host function {name} is not offered: {e}"
            ),
        }
    }
    Registered {
        runtime: runtime.clone(),
        names: registered,
    }
}

/// Runs `f` with the server's state, while it lives (the runtime, which
/// holds these functions, may outlive the server that embeds it).
fn with_state(
    state: &Weak<AppState>,
    f: impl FnOnce(&AppState) -> Result<Vec<u8>, HostError>,
) -> Result<Vec<u8>, HostError> {
    match state.upgrade() {
        Some(state) => f(&state),
        None => Err(error(
            fnhost_api::abi::host_call_error::UNAVAILABLE,
            "the server has stopped",
        )),
    }
}

/// A key as the plugin gave it: 1 to [`kv::MAX_KEY_BYTES`] bytes of UTF-8
/// without control characters.
fn key_of(bytes: &[u8]) -> Result<&str, HostError> {
    if bytes.is_empty() || bytes.len() > kv::MAX_KEY_BYTES {
        return Err(error(
            error_type::INVALID_INPUT,
            format!(
                "a key has 1 to {} bytes, not {}",
                kv::MAX_KEY_BYTES,
                bytes.len()
            ),
        ));
    }
    let key = std::str::from_utf8(bytes)
        .map_err(|_| error(error_type::INVALID_INPUT, "a key is UTF-8 text"))?;
    if key.chars().any(char::is_control) {
        return Err(error(
            error_type::INVALID_INPUT,
            "a key has no control characters",
        ));
    }
    Ok(key)
}

/// The store's failure, logged here and answered without its detail.
fn unavailable(function: &str, e: &crate::store::StoreError) -> HostError {
    log::warn!(target: "fnhost::server", "{function}: a kv host call failed: {e}");
    error(
        error_type::STORE_UNAVAILABLE,
        "the key-value store did not answer; try again",
    )
}

/// The calling function's key-value space: the id the server gave its
/// creation (so a call of a deleted function never reaches the space of
/// one created later under the same name).
fn space_of<'a>(ctx: &'a HostCallContext<'_>) -> Result<&'a str, HostError> {
    match ctx.function_id() {
        "" => Err(closed()),
        space => Ok(space),
    }
}

fn closed() -> HostError {
    error(
        error_type::SPACE_CLOSED,
        "this function was deleted: its key-value space is closed",
    )
}

fn kv_get(state: &AppState, ctx: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError> {
    let key = key_of(input)?;
    match state.management.store().kv_get(space_of(ctx)?, key) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(error(error_type::KEY_NOT_FOUND, format!("no key {key:?}"))),
        Err(e) => Err(unavailable(ctx.function(), &e)),
    }
}

fn kv_put(state: &AppState, ctx: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError> {
    let Some(newline) = input.iter().position(|&b| b == b'\n') else {
        return Err(error(
            error_type::INVALID_INPUT,
            "kv.put's input is the key, a newline, then the value",
        ));
    };
    let key = key_of(&input[..newline])?;
    let value = &input[newline + 1..];
    if value.len() > kv::MAX_VALUE_BYTES {
        return Err(error(
            error_type::INVALID_INPUT,
            format!(
                "a value has at most {} bytes, not {}",
                kv::MAX_VALUE_BYTES,
                value.len()
            ),
        ));
    }
    match state.management.store().kv_put(space_of(ctx)?, key, value) {
        Ok(kv::Put::Stored) => Ok(Vec::new()),
        Ok(kv::Put::Closed) => Err(closed()),
        Ok(kv::Put::TooManyKeys) => Err(error(
            error_type::QUOTA_EXCEEDED,
            format!("a function holds at most {} keys", kv::MAX_KEYS),
        )),
        Ok(kv::Put::TooManyBytes) => Err(error(
            error_type::QUOTA_EXCEEDED,
            format!(
                "a function holds at most {} bytes of keys and values",
                kv::MAX_BYTES
            ),
        )),
        Err(e) => Err(unavailable(ctx.function(), &e)),
    }
}

fn kv_delete(
    state: &AppState,
    ctx: &HostCallContext<'_>,
    input: &[u8],
) -> Result<Vec<u8>, HostError> {
    let key = key_of(input)?;
    match state.management.store().kv_delete(space_of(ctx)?, key) {
        Ok(true) => Ok(b"true".to_vec()),
        Ok(false) => Ok(b"false".to_vec()),
        Err(e) => Err(unavailable(ctx.function(), &e)),
    }
}

/// The project a URN names (`urn:fss:{region}:{project}:...`), if `target`
/// is one.
fn project_of_urn(target: &str) -> Option<&str> {
    let rest = target.strip_prefix("urn:")?;
    rest.split(':').nth(2)
}

fn invoke(state: &AppState, ctx: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError> {
    let (target, payload) = match input.iter().position(|&b| b == b'\n') {
        Some(newline) => (&input[..newline], &input[newline + 1..]),
        None => (input, &[][..]),
    };
    let bad_target = || {
        error(
            error_type::INVALID_TARGET,
            "invoke's input is a function's name, name:qualifier or URN, a newline, then the payload",
        )
    };
    let target = std::str::from_utf8(target).map_err(|_| bad_target())?;
    if target.len() > 512 || target.chars().any(char::is_control) {
        return Err(bad_target());
    }
    let r = FunctionRefStr::parse(target).ok_or_else(bad_target)?;
    if project_of_urn(target).is_some_and(|p| p != ctx.project_id()) {
        return Err(error(
            error_type::FORBIDDEN,
            "a function invokes functions of its own project only",
        ));
    }
    // Another project's function reads as missing: a caller learns nothing
    // of what is not its own.
    let not_found = || {
        error(
            error_type::FUNCTION_NOT_FOUND,
            format!("no function {:?} in this project", r.target),
        )
    };
    match state.management.owner(r.name) {
        Some((project, package))
            if project == ctx.project_id() && r.package.is_none_or(|p| p == package) => {}
        _ => return Err(not_found()),
    }
    let route = state
        .runtime
        .registry()
        .resolve(r.target)
        .map_err(|_| not_found())?;
    let remaining = ctx.remaining();
    if remaining.is_zero() {
        return Err(error(
            fnhost_api::abi::host_call_error::TIMEOUT,
            "the invocation's deadline has passed",
        ));
    }
    let options = CallOptions {
        ids: CallIds {
            request_id: None,
            trace_id: TraceId::parse(ctx.trace_id()),
        },
        timeout: Some(remaining),
        ..CallOptions::default()
    };
    let version = Arc::clone(&route.version);
    let metrics = &state.metrics;
    metrics
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let result = route.invoke_with_options(payload, options);
    metrics
        .in_flight
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let outcome = match &result {
        Ok(r) if r.outcome.is_success() => MetricOutcome::Success,
        Ok(r)
            if r.outcome
                .error()
                .is_some_and(|e| e.error_type == fnhost::error_type::TIMEOUT) =>
        {
            MetricOutcome::Timeout
        }
        Ok(_) => MetricOutcome::Error,
        Err(_) => MetricOutcome::Rejected,
    };
    metrics.record(r.name, &version, outcome, started.elapsed());
    match result {
        Ok(result) => {
            state.logs.record(r.name, &result.request_id, &result.log);
            if let Some(took) = result.cold_start {
                metrics.record_cold_start(r.name, took);
            }
            match result.outcome {
                fnhost::Outcome::Success(body) => Ok(body.bytes),
                fnhost::Outcome::Failure(e) => Err(error(&e.error_type, e.message)),
            }
        }
        Err(InvokeError::NotFound(_)) => Err(not_found()),
        Err(InvokeError::TooManyRequests { reason, .. }) => Err(error(
            error_type::TOO_MANY_REQUESTS,
            format!("{}: {reason}", r.target),
        )),
        Err(e) => Err(error(error_type::INVOKE_FAILED, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_text() {
        assert_eq!(key_of(b"counter").unwrap(), "counter");
        for bad in [
            &b""[..],
            &[b'k'; kv::MAX_KEY_BYTES + 1][..],
            b"a\nb",
            b"\xff\xfe",
        ] {
            let e = key_of(bad).unwrap_err();
            assert_eq!(e.error_type(), error_type::INVALID_INPUT, "{bad:?}");
        }
        assert!(key_of(&[b'k'; kv::MAX_KEY_BYTES]).is_ok());
    }

    #[test]
    fn the_project_of_a_urn() {
        assert_eq!(
            project_of_urn("urn:fss:local:p1:function:default:echo:latest"),
            Some("p1")
        );
        assert_eq!(project_of_urn("echo:latest"), None);
    }
}
