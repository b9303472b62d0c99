//! Calls started without blocking (`fnhost_invoke_start`): a handle to
//! wait on with a timeout, poll, be called back through, cancel and free,
//! and the per-call options every start takes (`options_json`).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void};
use std::sync::Arc;
use std::time::Duration;

use fnhost::{CallHandle, CallOptions, InvokeError, TraceId};
use serde::Deserialize;

use crate::ffi::{guard, parse_json, payload_of, read_str};
use crate::handles::fnhost_runtime;
use crate::host_functions::EmbedderValue;
use crate::results::{error_result, fnhost_result, invoke_error_type, result_of};

/// A call started without blocking (opaque to C).
pub struct fnhost_call {
    handle: CallHandle,
    /// Closed by fnhost_call_free: a completion callback that has not run
    /// yet never will, and one that runs holds it (free waits for it; the
    /// callback itself may free the call, the lock is re-entrant).
    gate: Arc<Gate>,
}

type Gate = parking_lot::ReentrantMutex<Cell<bool>>;

fn new_call(handle: CallHandle) -> *mut fnhost_call {
    Box::into_raw(Box::new(fnhost_call {
        handle,
        gate: Arc::new(Gate::new(Cell::new(false))),
    }))
}

/// `void (*fnhost_call_done_fn)(void *user, fnhost_call *call)`.
pub type fnhost_call_done_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, call: *mut fnhost_call)>;

/// `options_json`: what one call carries beyond its payload.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OptionsJson {
    request_id: Option<String>,
    trace_id: Option<String>,
    traceparent: Option<String>,
    #[serde(default)]
    user_data: BTreeMap<String, String>,
    deadline_ms: Option<u64>,
}

/// The call options of `options_json` (NULL: none) and `embedder_value`.
///
/// # Safety
/// `options_json` is NULL or NUL-terminated.
pub(crate) unsafe fn options_of(
    options_json: *const c_char,
    embedder_value: *mut c_void,
) -> Result<CallOptions, String> {
    let json: OptionsJson = if options_json.is_null() {
        OptionsJson::default()
    } else {
        // SAFETY: forwarded contract.
        let text = unsafe { read_str(options_json, "options_json")? };
        parse_json(text, "options_json")?
    };
    let mut options = CallOptions {
        user_data: json.user_data,
        ..CallOptions::default()
    };
    if let Some(id) = json.request_id {
        options.ids.request_id = Some(
            uuid::Uuid::parse_str(&id).map_err(|_| format!("request_id {id:?} is not a UUID"))?,
        );
    }
    if let Some(traceparent) = json.traceparent {
        options = options.traceparent(&traceparent)?;
    }
    if let Some(id) = json.trace_id {
        let id = TraceId::parse(&id).ok_or_else(|| {
            format!("trace_id {id:?} is not 32 lowercase hex digits, not all zero")
        })?;
        if options.ids.trace_id.is_some_and(|t| t != id) {
            return Err("trace_id and traceparent name different traces".into());
        }
        options.ids.trace_id = Some(id);
    }
    if let Some(ms) = json.deadline_ms {
        if ms == 0 {
            return Err("deadline_ms must be more than 0".into());
        }
        options.timeout = Some(Duration::from_millis(ms));
    }
    if !embedder_value.is_null() {
        options.embedder_value = Some(Arc::new(EmbedderValue(embedder_value)));
    }
    options.check()?;
    Ok(options)
}

/// A call that ended before it started, as a failed result of `error_type`.
fn failed(error: InvokeError) -> *mut fnhost_call {
    new_call(CallHandle::ended(Err(error)))
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `rt` is NULL or live; `target` and `options_json` NULL or
/// NUL-terminated; `payload` NULL with `len` 0, or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn fnhost_invoke_start(
    rt: *mut fnhost_runtime,
    target: *const c_char,
    payload: *const u8,
    len: usize,
    options_json: *const c_char,
) -> *mut fnhost_call {
    // SAFETY: forwarded contract.
    unsafe {
        fnhost_invoke_start_with_value(rt, target, payload, len, options_json, std::ptr::null_mut())
    }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As for [`fnhost_invoke_start`]; `embedder_value` is the caller's.
#[no_mangle]
pub unsafe extern "C" fn fnhost_invoke_start_with_value(
    rt: *mut fnhost_runtime,
    target: *const c_char,
    payload: *const u8,
    len: usize,
    options_json: *const c_char,
    embedder_value: *mut c_void,
) -> *mut fnhost_call {
    guard(
        || failed(InvokeError::NoWorker("panic inside fnhost".into())),
        || {
            // SAFETY: forwarded contract.
            let Some(rt) = (unsafe { rt.as_ref() }) else {
                return failed(InvokeError::InvalidOptions("rt is NULL".into()));
            };
            // SAFETY: forwarded contract.
            let target = match unsafe { read_str(target, "target") } {
                Ok(t) => t,
                Err(e) => return failed(InvokeError::InvalidOptions(e)),
            };
            // SAFETY: forwarded contract.
            let Some(payload) = (unsafe { payload_of(payload, len) }) else {
                return failed(InvokeError::InvalidOptions(
                    "payload is NULL with a non-zero length".into(),
                ));
            };
            // SAFETY: forwarded contract.
            let options = match unsafe { options_of(options_json, embedder_value) } {
                Ok(o) => o,
                Err(e) => return failed(InvokeError::InvalidOptions(e)),
            };
            let handle = rt
                .runtime
                .registry()
                .invoke_async(target, payload.to_vec(), options);
            new_call(handle)
        },
    )
}

/// The result of an ended call, for C: NULL once it was handed out.
fn hand_out(handle: &CallHandle) -> *mut fnhost_result {
    match handle.take() {
        Some(Ok(r)) => Box::into_raw(result_of(r)),
        Some(Err(e)) => error_result(invoke_error_type(&e), &e.to_string()),
        None => std::ptr::null_mut(),
    }
}

/// # Safety
/// `result_out` is NULL or writable.
unsafe fn give(result_out: *mut *mut fnhost_result, handle: &CallHandle) {
    if !result_out.is_null() {
        // SAFETY: forwarded contract.
        unsafe { *result_out = hand_out(handle) };
    }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `call` is NULL or a live call; `result_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fnhost_call_wait(
    call: *mut fnhost_call,
    timeout_ms: i64,
    result_out: *mut *mut fnhost_result,
) -> c_int {
    guard(
        || -1,
        || {
            // SAFETY: forwarded contract.
            let Some(call) = (unsafe { call.as_ref() }) else {
                return -1;
            };
            let timeout = u64::try_from(timeout_ms).ok().map(Duration::from_millis);
            if !call.handle.wait(timeout) {
                return 1;
            }
            // SAFETY: forwarded contract.
            unsafe { give(result_out, &call.handle) };
            0
        },
    )
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As for [`fnhost_call_wait`].
#[no_mangle]
pub unsafe extern "C" fn fnhost_call_poll(
    call: *mut fnhost_call,
    result_out: *mut *mut fnhost_result,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { fnhost_call_wait(call, 0, result_out) }
}

/// What a completion callback is given.
struct Done {
    callback: unsafe extern "C" fn(*mut c_void, *mut fnhost_call),
    user: *mut c_void,
    call: *mut fnhost_call,
    gate: Arc<Gate>,
}

// SAFETY: the header says the callback runs on any thread with `user` as
// given, and that the call stays valid until fnhost_call_free; the
// embedder made both fit for that.
unsafe impl Send for Done {}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `call` is NULL or a live call, not freed before the callback ran or the
/// call was freed; `user` is the caller's.
#[no_mangle]
pub unsafe extern "C" fn fnhost_call_on_complete(
    call: *mut fnhost_call,
    callback: fnhost_call_done_fn,
    user: *mut c_void,
) -> c_int {
    guard(
        || -1,
        || {
            // SAFETY: forwarded contract.
            let (Some(handle), Some(callback)) = (unsafe { call.as_ref() }, callback) else {
                return -1;
            };
            let done = Done {
                callback,
                user,
                call,
                gate: Arc::clone(&handle.gate),
            };
            handle.handle.on_complete(move || {
                let done = done;
                let freed = done.gate.lock();
                if !freed.get() {
                    // SAFETY: the embedder's callback with its own `user`;
                    // the call is live: fnhost_call_free closes the gate
                    // first, and waits while this holds it.
                    unsafe { (done.callback)(done.user, done.call) };
                }
            });
            0
        },
    )
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `call` is NULL or a live call.
#[no_mangle]
pub unsafe extern "C" fn fnhost_call_cancel(call: *mut fnhost_call) -> c_int {
    guard(
        || -1,
        || {
            // SAFETY: forwarded contract.
            match unsafe { call.as_ref() } {
                None => -1,
                Some(call) if call.handle.cancel() => 0,
                Some(_) => 1,
            }
        },
    )
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `call` is NULL or a call from `fnhost_invoke_start`, not used after.
#[no_mangle]
pub unsafe extern "C" fn fnhost_call_free(call: *mut fnhost_call) {
    if !call.is_null() {
        // SAFETY: from Box::into_raw in fnhost_invoke_start, freed once.
        let call = unsafe { Box::from_raw(call) };
        // Waits for a completion callback running on another thread.
        call.gate.lock().set(true);
        drop(call);
    }
}
