//! Spans of invocations, exported over OTLP/HTTP (protobuf) when an
//! endpoint is configured (`--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`): per invocation a server span
//! (`fnhost.invoke`, the request or, for an asynchronous invocation, its
//! run), and inside it the time it waited in the queue (`fnhost.queue`),
//! the instance start it waited for, initializer included
//! (`fnhost.initializer`, on a cold start), and the handler's own time
//! (`fnhost.handler`), with FaaS semantic attributes (`faas.coldstart`).
//! The spans are built when the invocation has ended, with its measured
//! times, and handed to the SDK's batch processor, which exports them from
//! its own thread: nothing waits for the collector. Off by default, and
//! then one atomic load per invocation.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};

use crate::trace::TraceContext;

/// How often batched spans leave (and the longest a span waits for it).
pub const EXPORT_DELAY: Duration = Duration::from_millis(500);

struct Exporting {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
}

static EXPORTING: OnceLock<Exporting> = OnceLock::new();

/// The traces URL of an OTLP/HTTP endpoint (`/v1/traces` under a base URL,
/// as the OpenTelemetry specification has it for `OTEL_EXPORTER_OTLP_ENDPOINT`).
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Starts exporting spans to `endpoint` (for the rest of the process).
pub fn start(endpoint: &str) -> Result<(), String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("the OTLP exporter for {endpoint}: {e}"))?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(EXPORT_DELAY)
                .with_max_queue_size(8192)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("fnhost")
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let tracer = provider.tracer("fnhost");
    EXPORTING
        .set(Exporting { provider, tracer })
        .map_err(|_| "spans are exported already".to_owned())?;
    log::info!(target: "fnhost::server", "exporting spans to {}", traces_url(endpoint));
    Ok(())
}

/// The share of new traces that are sampled (see
/// [`crate::trace::set_sample_ratio`]).
pub fn set_sample_ratio(ratio: f64) {
    crate::trace::set_sample_ratio(ratio);
}

/// Whether spans are exported.
pub(crate) fn enabled() -> bool {
    EXPORTING.get().is_some()
}

/// Exports what is batched (at shutdown).
pub fn flush() {
    if let Some(e) = EXPORTING.get() {
        let _ = e.provider.force_flush();
    }
}

/// One ended invocation, as its spans tell it.
pub(crate) struct Invocation<'a> {
    pub(crate) trace: TraceContext,
    /// The server span's id (the one `traceresponse` named).
    pub(crate) span: [u8; 8],
    /// `http` (sync and APIG), `pubsub` (async), `timer`.
    pub(crate) trigger: &'a str,
    pub(crate) function: &'a str,
    pub(crate) version: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    /// When an asynchronous invocation was accepted.
    pub(crate) queued_since: Option<SystemTime>,
    /// The handler's own duration, when it ran.
    pub(crate) handler: Option<Duration>,
    /// The instance start (initializer included) it waited for, if any.
    pub(crate) cold_start: Option<Duration>,
    /// The error type, or the platform's refusal, when it failed.
    pub(crate) error: Option<&'a str>,
}

/// Exports an ended invocation's spans (nothing when spans are off).
pub(crate) fn export(inv: &Invocation<'_>) {
    let Some(e) = EXPORTING.get() else { return };
    if !inv.trace.sampled {
        return;
    }
    let trace_id = TraceId::from_bytes(inv.trace.trace_id.bytes());
    let server_span = SpanId::from_bytes(inv.span);
    let parent = match inv.trace.parent_span {
        Some(span) => Context::new().with_remote_span_context(SpanContext::new(
            trace_id,
            SpanId::from_bytes(span),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )),
        None => Context::new(),
    };
    let attributes = vec![
        KeyValue::new("faas.name", inv.function.to_owned()),
        KeyValue::new("faas.version", inv.version.to_owned()),
        KeyValue::new("faas.invocation_id", inv.request_id.to_owned()),
        KeyValue::new("faas.trigger", inv.trigger.to_owned()),
        KeyValue::new("faas.coldstart", inv.cold_start.is_some()),
    ];
    let kind = if inv.queued_since.is_some() {
        SpanKind::Consumer
    } else {
        SpanKind::Server
    };
    let mut span = e
        .tracer
        .span_builder("fnhost.invoke")
        .with_kind(kind)
        .with_trace_id(trace_id)
        .with_span_id(server_span)
        .with_start_time(inv.queued_since.unwrap_or(inv.start))
        .with_attributes(attributes)
        .start_with_context(&e.tracer, &parent);
    if let Some(error) = inv.error {
        span.set_status(Status::error(error.to_owned()));
    }
    let inside = Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        server_span,
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    ));
    let child = |name: &'static str, start: SystemTime, end: SystemTime| {
        let mut s = e
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(vec![KeyValue::new(
                "faas.invocation_id",
                inv.request_id.to_owned(),
            )])
            .start_with_context(&e.tracer, &inside);
        s.end_with_timestamp(end);
    };
    if let Some(accepted) = inv.queued_since {
        child("fnhost.queue", accepted, inv.start);
    }
    let handler_start = inv
        .handler
        .and_then(|h| inv.end.checked_sub(h))
        .unwrap_or(inv.end)
        .max(inv.start);
    if let Some(cold) = inv.cold_start {
        let start = handler_start
            .checked_sub(cold)
            .unwrap_or(inv.start)
            .max(inv.start);
        child("fnhost.initializer", start, handler_start);
    }
    if inv.handler.is_some() {
        child("fnhost.handler", handler_start, inv.end);
    }
    span.end_with_timestamp(inv.end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_go_under_v1_traces_of_the_endpoint() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
