//! `echo`: the smallest useful plugin, and the benchmark's subject.
//!
//! - `echo.Handler` returns the payload as is.
//! - `echo.Logged` does what a typical handler does around its work: three
//!   context reads and one log line, then returns the payload.
//! - `echo.Ids` answers its request id and trace id as JSON, and logs the
//!   payload's size (tests follow ids through the server with it).
//! - `echo.CallHost` calls the host function its user data `HOST_FUNCTION`
//!   names (`echo` when unset) with the payload, and answers what it
//!   answered; a failed host call is the handler's error, of the same type.
//!
//! It is also an `rlib` so benchmarks can call the very same functions
//! directly, without the host, as a baseline.

use fnhost_api::{Context, HandlerError, HostCallError};

/// Returns the payload unchanged.
pub fn handler(payload: &[u8], _ctx: &Context) -> Result<Vec<u8>, HandlerError> {
    Ok(payload.to_vec())
}

/// Reads the request id, the remaining time and a user-data value, logs one
/// line, and returns the payload.
pub fn logged(payload: &[u8], ctx: &Context) -> Result<Vec<u8>, HandlerError> {
    let request_id = ctx.request_id();
    let remaining = ctx.remaining_time_ms();
    let name = ctx.user_data("NAME").unwrap_or("-");
    ctx.logger().info(format_args!(
        "{request_id} {name} {remaining}ms left, {} bytes",
        payload.len()
    ));
    Ok(payload.to_vec())
}

/// Answers `{"request_id", "trace_id"}` of its context; logs one line.
pub fn ids(payload: &[u8], ctx: &Context) -> Result<String, HandlerError> {
    ctx.logger()
        .info(format_args!("ids of a {}-byte payload", payload.len()));
    // Both are ASCII (a UUID, hex digits): nothing to escape.
    Ok(format!(
        r#"{{"request_id":"{}","trace_id":"{}"}}"#,
        ctx.request_id(),
        ctx.trace_id()
    ))
}

/// Calls a host function with the payload; answers its output.
pub fn call_host(payload: &[u8], ctx: &Context) -> Result<Vec<u8>, HostCallError> {
    let name = ctx.user_data("HOST_FUNCTION").unwrap_or("echo");
    ctx.call_host(name, payload)
}

fnhost_api::export_plugin! {
    handlers: {
        "Handler" => handler,
        "Logged" => logged,
        "Ids" => ids,
        "CallHost" => call_host,
    },
}
