//! The glue `export_plugin!` expands to: trampolines that turn a Rust handler
//! into an `extern "C"` function, catch panics, convert results and errors,
//! and make the invocation's context reachable from the `log` crate and the
//! panic hook. Not part of the public API (reached through `__private`).

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use core::marker::PhantomData;

use crate::abi::{self, level, STATUS_ERROR, STATUS_OK};
use crate::current::{with_current, Entered};
use crate::log::InvocationLogBridge;
use crate::payload::FromPayload;
use crate::{alloc, Context, HandlerError, IntoHandlerError, IntoOutput, Output};

/// Marks handlers that take the raw payload: `fn(&[u8], &Context)`.
pub struct RawPayload;
/// Marks handlers that take a parsed payload: `fn(T, &Context)` with
/// `T: FromPayload` (an event type, or `Json<T>`).
pub struct TypedPayload<T>(PhantomData<T>);

/// A function `export_plugin!` can export as a handler. Implemented for
/// `fn(&[u8], &Context) -> Result<R, E>` and for
/// `fn(T, &Context) -> Result<R, E>` where `T: FromPayload`, with any
/// `R: IntoOutput` and `E: IntoHandlerError` ([`HandlerError`], or your own
/// [`ErrorType`](crate::ErrorType)). The marker `M` only tells the two apart.
pub trait Handler<M> {
    /// The event it takes, as the descriptor records it
    /// ([`HandlerEntry::event`](crate::abi::HandlerEntry::event)): `bytes`
    /// for a handler of `&[u8]`, else its payload type's
    /// [`FromPayload::EVENT`].
    const EVENT: &'static str;
    /// Runs the handler on `payload`.
    fn call(self, payload: &[u8], ctx: &Context) -> Result<Output, HandlerError>;
}

impl<F, R, E> Handler<RawPayload> for F
where
    F: FnOnce(&[u8], &Context) -> Result<R, E>,
    R: IntoOutput,
    E: IntoHandlerError,
{
    const EVENT: &'static str = crate::abi::event::BYTES;
    fn call(self, payload: &[u8], ctx: &Context) -> Result<Output, HandlerError> {
        self(payload, ctx)
            .map_err(IntoHandlerError::into_handler_error)
            .and_then(IntoOutput::into_output)
    }
}

impl<F, T, R, E> Handler<TypedPayload<T>> for F
where
    F: FnOnce(T, &Context) -> Result<R, E>,
    T: FromPayload,
    R: IntoOutput,
    E: IntoHandlerError,
{
    const EVENT: &'static str = T::EVENT;
    fn call(self, payload: &[u8], ctx: &Context) -> Result<Output, HandlerError> {
        let event = T::from_payload(payload)?;
        self(event, ctx)
            .map_err(IntoHandlerError::into_handler_error)
            .and_then(IntoOutput::into_output)
    }
}

static SETUP: Once = Once::new();

/// Installs, once per plugin, the panic hook that writes a handler's panic
/// message into its invocation's log (this plugin's std has its own hook, the
/// host's does not cover it) and the `log` crate bridge.
fn setup() {
    SETUP.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let logged = with_current(|ctx| ctx.write_log(level::ERROR, &format!("panic: {info}")));
            if logged.is_none() {
                previous(info);
            }
        }));
        if log::set_logger(&InvocationLogBridge).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Drops a panic payload without letting a panicking destructor escape.
fn discard(payload: Box<dyn Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        core::mem::forget(again);
    }
}

/// Runs `body` with `raw` as the current context, converting panics into an
/// error of type `panic`. Never unwinds.
///
/// # Safety
/// `raw` must be null or a context valid for this call (the host's contract).
unsafe fn guarded(raw: *const abi::Context, body: impl FnOnce(&Context) -> i32) -> i32 {
    let outer = panic::catch_unwind(AssertUnwindSafe(|| {
        setup();
        if raw.is_null() {
            return STATUS_ERROR;
        }
        // SAFETY: non-null and valid for this call per the function's contract.
        let ctx = unsafe { Context::from_raw(&*raw) };
        let entered = Entered::new(&ctx);
        let status = match panic::catch_unwind(AssertUnwindSafe(|| body(&ctx))) {
            Ok(status) => status,
            Err(payload) => {
                ctx.set_error("panic", &panic_message(&*payload));
                discard(payload);
                STATUS_ERROR
            }
        };
        ctx.report_memory_peak(alloc::current_peak());
        alloc::stop_tracking();
        flush_stdout_in_worker();
        drop(entered);
        status
    }));
    match outer {
        Ok(status) => status,
        Err(payload) => {
            discard(payload);
            STATUS_ERROR
        }
    }
}

/// In a worker process (process isolation), what the handler left in this
/// plugin's own std stdout buffer (a `print!` without a newline) is written
/// out before the call returns, so it lands in this invocation's log. In
/// process the host's stdout is shared, and nothing is flushed (a check of
/// one cached flag).
fn flush_stdout_in_worker() {
    static IN_WORKER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *IN_WORKER.get_or_init(|| std::env::var_os(abi::WORKER_PROCESS_ENV).is_some()) {
        let _ = std::io::Write::flush(&mut std::io::stdout());
    }
}

/// The body of a handler trampoline.
///
/// # Safety
/// `raw` and `payload` must satisfy the host's contract for a handler call.
pub unsafe fn run_handler<M, H: Handler<M>>(
    raw: *const abi::Context,
    payload: abi::HostStr,
    handler: H,
) -> i32 {
    // SAFETY: host-owned payload, valid until this call returns.
    let payload = unsafe { payload.as_slice() };
    // SAFETY: forwarded contract.
    unsafe {
        guarded(raw, |ctx| match handler.call(payload, ctx) {
            Ok(output) => {
                let (kind, body) = output.as_parts();
                ctx.set_output(kind, body);
                STATUS_OK
            }
            Err(e) => {
                ctx.set_error(e.error_type(), e.message());
                STATUS_ERROR
            }
        })
    }
}

/// The event `handler` takes (its [`Handler::EVENT`]), for the descriptor.
pub const fn event_of<M, H: Handler<M>>(_handler: &H) -> &'static str {
    H::EVENT
}

/// The body of an initializer trampoline.
///
/// # Safety
/// `raw` must satisfy the host's contract for an initializer call.
pub unsafe fn run_initializer<F, E>(raw: *const abi::Context, initializer: F) -> i32
where
    F: FnOnce(&Context) -> Result<(), E>,
    E: IntoHandlerError,
{
    // SAFETY: forwarded contract.
    unsafe {
        guarded(raw, |ctx| {
            match initializer(ctx).map_err(IntoHandlerError::into_handler_error) {
                Ok(()) => STATUS_OK,
                Err(e) => {
                    ctx.set_error(e.error_type(), e.message());
                    STATUS_ERROR
                }
            }
        })
    }
}
