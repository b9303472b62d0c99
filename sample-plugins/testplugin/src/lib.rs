//! `testplugin`: the seed document's `testplugin.Handler`, returning every
//! context field, the `Init` initializer, and the seed's trigger examples one
//! for one (`ApigTest`, `CtsTest`, `DdsTest`, `DisTest`, `KafkaTest`,
//! `LtsTest`, `SmnTest`, `TimerTest`), written as typed-event handlers.

use std::sync::atomic::{AtomicU64, Ordering};

use fnhost_api::events::{
    ApigEvent, ApigResponse, CtsEvent, DdsEvent, DisEvent, KafkaEvent, LtsEvent, SmnEvent,
    TimerEvent,
};
use fnhost_api::{Context, HandlerError, Json};
use serde_json::{json, Value};

static INIT_CALLS: AtomicU64 = AtomicU64::new(0);

/// Returns a JSON object with every context field, the user-data value of the
/// key named by the payload's `"key"` (default `NAME`), and how many times
/// `Init` ran in this library generation. Logs one line through the context
/// logger and one through the `log` crate.
#[allow(deprecated)]
pub fn handler(payload: &[u8], ctx: &Context) -> Result<Json<Value>, HandlerError> {
    let request: Value = if payload.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(payload).map_err(|e| {
            HandlerError::new(format!("payload is not JSON: {e}")).with_type("InvalidPayload")
        })?
    };
    let key = request.get("key").and_then(Value::as_str).unwrap_or("NAME");
    ctx.logger()
        .info(format_args!("testplugin handling {} bytes", payload.len()));
    log::warn!("via the log crate: key {key}");
    Ok(Json(json!({
        "request_id": ctx.request_id(),
        "remaining_time_ms": ctx.remaining_time_ms(),
        "running_time_seconds": ctx.running_time_seconds(),
        "access_key": ctx.access_key(),
        "secret_key": ctx.secret_key(),
        "security_access_key": ctx.security_access_key(),
        "security_secret_key": ctx.security_secret_key(),
        "security_token": ctx.security_token(),
        "token": ctx.token(),
        "user_data": ctx.user_data(key),
        "function_name": ctx.function_name(),
        "version": ctx.version(),
        "alias": ctx.alias(),
        "package": ctx.package(),
        "project_id": ctx.project_id(),
        "memory_size_mb": ctx.memory_size_mb(),
        "cpu_millicores": ctx.cpu_millicores(),
        "deadline_unix_ms": ctx.deadline_unix_ms(),
        "init_calls": INIT_CALLS.load(Ordering::SeqCst),
    })))
}

/// Counts its runs and logs a line.
pub fn init(ctx: &Context) -> Result<(), HandlerError> {
    let n = INIT_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    ctx.logger()
        .info(format_args!("testplugin initialized (run {n})"));
    Ok(())
}

/// Logs the event and answers 200 with the event as a JSON body.
pub fn apig_test(event: ApigEvent, ctx: &Context) -> Result<ApigResponse, HandlerError> {
    ctx.logger().logf(format_args!("payload:{event}"));
    Ok(ApigResponse::new(200)
        .with_header("content-type", "application/json")
        .with_body(event.to_string()))
}

/// Logs the event and answers `ok`.
pub fn cts_test(event: CtsEvent, ctx: &Context) -> Result<&'static str, HandlerError> {
    ctx.logger().logf(format_args!("payload:{event}"));
    Ok("ok")
}

/// Logs the event and answers `ok`.
pub fn dds_test(event: DdsEvent, ctx: &Context) -> Result<&'static str, HandlerError> {
    ctx.logger().logf(format_args!("payload:{event}"));
    Ok("ok")
}

/// Logs the event and answers `ok`.
pub fn dis_test(event: DisEvent, ctx: &Context) -> Result<&'static str, HandlerError> {
    ctx.logger().logf(format_args!("payload:{event}"));
    Ok("ok")
}

/// Logs the event and answers `ok`.
pub fn kafka_test(event: KafkaEvent, ctx: &Context) -> Result<&'static str, HandlerError> {
    ctx.logger().logf(format_args!("payload:{event}"));
    Ok("ok")
}

/// Logs the event and answers `ok`.
pub fn lts_test(event: LtsEvent, ctx: &Context) -> Result<&'static str, HandlerError> {
    ctx.logger().logf(format_args!("payload:{event}"));
    Ok("ok")
}

/// Logs the event and answers `ok`.
pub fn smn_test(event: SmnEvent, ctx: &Context) -> Result<&'static str, HandlerError> {
    ctx.logger().logf(format_args!("payload:{event}"));
    Ok("ok")
}

/// Answers the event's string form.
pub fn timer_test(event: TimerEvent, _ctx: &Context) -> Result<String, HandlerError> {
    Ok(event.to_string())
}

fnhost_api::export_plugin! {
    handlers: {
        "Handler" => handler,
        "ApigTest" => apig_test,
        "CtsTest" => cts_test,
        "DdsTest" => dds_test,
        "DisTest" => dis_test,
        "KafkaTest" => kafka_test,
        "LtsTest" => lts_test,
        "SmnTest" => smn_test,
        "TimerTest" => timer_test,
    },
    initializers: { "Init" => init },
}
