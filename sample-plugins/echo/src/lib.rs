//! `echo`: the smallest useful plugin, and the benchmark's subject.
//!
//! - `echo.Handler` returns the payload as is.
//! - `echo.Logged` does what a typical handler does around its work: three
//!   context reads and one log line, then returns the payload.
//!
//! It is also an `rlib` so benchmarks can call the very same functions
//! directly, without the host, as a baseline.

use fnhost_api::{Context, HandlerError};

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

fnhost_api::export_plugin! {
    handlers: { "Handler" => handler, "Logged" => logged },
}
