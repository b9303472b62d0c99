//! Host functions written in C (`fnhost_host_function_register`): a C
//! callback behind fnhost's [`HostFunction`], the `fnhost_host_call` it is
//! handed, and the rule that makes its `user` pointer safe to free: once
//! `fnhost_host_function_unregister` (or `fnhost_runtime_free`) returns, no
//! call of the callback is running or will start.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Arc;

use fnhost::{HostCallContext, HostError, HostFunction};
use fnhost_api::abi::host_call_error;

use crate::ffi::c_string;
use parking_lot::{Condvar, Mutex};

/// `int (*fnhost_host_fn)(void *user, fnhost_host_call *call, const uint8_t
/// *input, size_t input_len)`: 0 for success.
pub type fnhost_host_fn = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        call: *mut fnhost_host_call,
        input: *const u8,
        input_len: usize,
    ) -> c_int,
>;

/// The `embedder_value` of `fnhost_invoke_start_with_value`, as host
/// functions of the call receive it.
pub(crate) struct EmbedderValue(pub(crate) *mut c_void);

// SAFETY: the embedder's pointer, handed back to its own host functions on
// whatever thread they run: the header says so, and the embedder made it
// fit for that.
unsafe impl Send for EmbedderValue {}
// SAFETY: as above; fnhost never reads through it.
unsafe impl Sync for EmbedderValue {}

/// One call of a C host function (opaque to C), valid during the callback.
pub struct fnhost_host_call {
    function: CString,
    version: CString,
    request_id: CString,
    remaining_ms: i64,
    embedder_value: *mut c_void,
    output: Vec<u8>,
    error: Option<HostError>,
}

/// A registered C callback.
pub(crate) struct CHostFunction {
    name: String,
    callback: unsafe extern "C" fn(*mut c_void, *mut fnhost_host_call, *const u8, usize) -> c_int,
    user: *mut c_void,
    /// Calls running now, and whether new ones are refused.
    state: Mutex<Running>,
    idle: Condvar,
}

#[derive(Default)]
struct Running {
    calls: usize,
    closed: bool,
}

// SAFETY: `user` is the embedder's pointer, passed back to its callback on
// whatever thread calls it: the header says the callback may run on any
// thread, concurrently, so the embedder made `user` safe for that.
unsafe impl Send for CHostFunction {}
// SAFETY: as above; the rest is synchronized.
unsafe impl Sync for CHostFunction {}

thread_local! {
    /// The C host function whose callback runs on this thread (innermost).
    static RUNNING: Cell<*const CHostFunction> = const { Cell::new(std::ptr::null()) };
}

impl CHostFunction {
    pub(crate) fn new(
        name: &str,
        callback: unsafe extern "C" fn(
            *mut c_void,
            *mut fnhost_host_call,
            *const u8,
            usize,
        ) -> c_int,
        user: *mut c_void,
    ) -> CHostFunction {
        CHostFunction {
            name: name.to_owned(),
            callback,
            user,
            state: Mutex::new(Running::default()),
            idle: Condvar::new(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether this thread runs this function's callback now, where
    /// [`close`](Self::close) would wait for itself.
    pub(crate) fn close_would_wait_for_itself(&self) -> bool {
        std::ptr::eq(RUNNING.with(Cell::get), self)
    }

    /// Refuses new calls and waits for the running ones. `false`, without
    /// waiting, when called from inside this function's own callback
    /// (which would wait for itself).
    pub(crate) fn close(&self) -> bool {
        if self.close_would_wait_for_itself() {
            return false;
        }
        let mut state = self.state.lock();
        state.closed = true;
        while state.calls > 0 {
            self.idle.wait(&mut state);
        }
        true
    }
}

/// Ends a call: counts it out and restores the thread's running function.
struct CallGuard<'a> {
    function: &'a CHostFunction,
    outer: *const CHostFunction,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        RUNNING.with(|r| r.set(self.outer));
        let mut state = self.function.state.lock();
        state.calls -= 1;
        if state.calls == 0 {
            self.function.idle.notify_all();
        }
    }
}

/// What the runtime holds of a C host function.
pub(crate) struct Registered(pub(crate) Arc<CHostFunction>);

impl HostFunction for Registered {
    fn call(&self, ctx: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError> {
        let this = &*self.0;
        this.call(ctx, input)
    }
}

impl CHostFunction {
    fn call(&self, ctx: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError> {
        {
            let mut state = self.state.lock();
            if state.closed {
                return Err(
                    HostError::new(format!("no host function named {:?}", self.name))
                        .with_type(host_call_error::NOT_FOUND),
                );
            }
            state.calls += 1;
        }
        let outer = RUNNING.with(|r| r.replace(self as *const CHostFunction));
        let _guard = CallGuard {
            function: self,
            outer,
        };
        let mut call = fnhost_host_call {
            function: c_string(ctx.function()),
            version: c_string(ctx.version()),
            request_id: c_string(ctx.request_id()),
            remaining_ms: i64::try_from(ctx.remaining().as_millis()).unwrap_or(i64::MAX),
            embedder_value: ctx
                .embedder_value::<EmbedderValue>()
                .map_or(std::ptr::null_mut(), |v| v.0),
            output: Vec::new(),
            error: None,
        };
        // SAFETY: the embedder's callback, registered with its `user`;
        // `call` lives through the call (the header says it is valid during
        // the callback only) and `input` is lent for it.
        let status = unsafe { (self.callback)(self.user, &mut call, input.as_ptr(), input.len()) };
        match (status, call.error) {
            (0, None) => Ok(call.output),
            (_, Some(error)) => Err(error),
            (status, None) => Err(HostError::new(format!(
                "host function {:?} failed (it returned {status})",
                self.name
            ))),
        }
    }
}

/// # Safety
/// `call` is NULL or the live call handed to the running callback.
unsafe fn call_ref<'a>(call: *const fnhost_host_call) -> Option<&'a fnhost_host_call> {
    // SAFETY: the caller's contract.
    unsafe { call.as_ref() }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `call` is NULL or the call handed to the running callback.
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_call_function(call: *const fnhost_host_call) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { call_ref(call) }.map_or(c"".as_ptr(), |c| c.function.as_ptr())
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As for [`fnhost_host_call_function`].
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_call_version(call: *const fnhost_host_call) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { call_ref(call) }.map_or(c"".as_ptr(), |c| c.version.as_ptr())
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As for [`fnhost_host_call_function`].
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_call_request_id(
    call: *const fnhost_host_call,
) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { call_ref(call) }.map_or(c"".as_ptr(), |c| c.request_id.as_ptr())
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As for [`fnhost_host_call_function`].
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_call_remaining_ms(call: *const fnhost_host_call) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call_ref(call) }.map_or(0, |c| c.remaining_ms)
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As for [`fnhost_host_call_function`].
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_call_embedder_value(
    call: *const fnhost_host_call,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { call_ref(call) }.map_or(std::ptr::null_mut(), |c| c.embedder_value)
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `call` is NULL or the running callback's call; `data` is readable for
/// `len` bytes (or `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_call_set_output(
    call: *mut fnhost_host_call,
    data: *const u8,
    len: usize,
) {
    // SAFETY: forwarded contract.
    let Some(call) = (unsafe { call.as_mut() }) else {
        return;
    };
    call.output.clear();
    if len > 0 && !data.is_null() {
        // SAFETY: readable for `len` bytes per the contract; copied now.
        call.output
            .extend_from_slice(unsafe { std::slice::from_raw_parts(data, len) });
    }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `call` is NULL or the running callback's call; both strings are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_call_set_error(
    call: *mut fnhost_host_call,
    error_type: *const c_char,
    message: *const c_char,
) {
    // SAFETY: forwarded contract.
    let Some(call) = (unsafe { call.as_mut() }) else {
        return;
    };
    let text = |s: *const c_char| {
        if s.is_null() {
            String::new()
        } else {
            // SAFETY: NUL-terminated per the contract.
            unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
        }
    };
    call.error = Some(HostError::new(text(message)).with_type(text(error_type)));
}
