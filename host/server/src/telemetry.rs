//! Spans of invocations, exported over OTLP/HTTP (protobuf) when an
//! endpoint is configured (`--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`): per invocation a server span
//! (`fnhost.invoke`, the request or, for an asynchronous invocation, its
//! run), and inside it the time it waited in the queue (`fnhost.queue`),
//! the instance start it waited for, initializer included
//! (`fnhost.initializer`, on a cold start), and the handler's own time
//! (`fnhost.handler`), with FaaS semantic attributes (`faas.coldstart`).
//! An ended invocation is handed, as one small record, to fnhost's export
//! thread (a bounded queue; dropped and counted when full): that thread
//! builds the spans' data from the measured times and gives batches of
//! them to the OTLP exporter. The SDK's tracer and batch processor are not
//! used: they built each span on the request path and queued spans one by
//! one. Nothing waits for the collector. Off by default, and then one
//! atomic load per invocation; a trace that is not sampled costs nothing
//! more.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

use crate::trace::TraceContext;

/// How often batched spans leave (and the longest a span waits for it).
pub const EXPORT_DELAY: Duration = Duration::from_millis(500);
/// Ended invocations waiting for the export thread; beyond, dropped.
const QUEUE: usize = 8192;
/// The most invocations whose spans go in one export.
const MAX_EXPORT: usize = 1024;

struct Exporting {
    queue: SyncSender<Message>,
    /// Invocations whose spans were dropped: the queue was full.
    dropped: AtomicU64,
}

enum Message {
    Ended(Box<Ended>),
    /// Export what is queued, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

/// An ended invocation, owned, as the export thread needs it.
struct Ended {
    trace_id: [u8; 16],
    span: [u8; 8],
    parent_span: Option<[u8; 8]>,
    trigger: String,
    function: String,
    version: String,
    request_id: String,
    start: SystemTime,
    end: SystemTime,
    queued_since: Option<SystemTime>,
    handler: Option<Duration>,
    cold_start: Option<Duration>,
    error: Option<String>,
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
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces_url(endpoint))
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("the OTLP exporter for {endpoint}: {e}"))?;
    exporter.set_resource(
        &opentelemetry_sdk::Resource::builder()
            .with_service_name("fnhost")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let (queue, received) = std::sync::mpsc::sync_channel(QUEUE);
    EXPORTING
        .set(Exporting {
            queue,
            dropped: AtomicU64::new(0),
        })
        .map_err(|_| "spans are exported already".to_owned())?;
    std::thread::Builder::new()
        .name("fnhost-otlp".to_owned())
        .spawn(move || export_loop(&exporter, &received))
        .map_err(|e| format!("the span export thread: {e}"))?;
    log::info!(target: "fnhost::server", "exporting spans to {}", traces_url(endpoint));
    Ok(())
}

/// The export thread: gathers ended invocations for up to [`EXPORT_DELAY`]
/// (or [`MAX_EXPORT`] of them), builds their spans and exports them.
fn export_loop(exporter: &opentelemetry_otlp::SpanExporter, received: &Receiver<Message>) {
    let scope = InstrumentationScope::builder("fnhost").build();
    while let Ok(first) = received.recv() {
        let mut spans = Vec::new();
        let mut flushed = Vec::new();
        let mut take = |m: Message, spans: &mut Vec<SpanData>| match m {
            Message::Ended(e) => {
                spans_of(&e, &scope, spans);
                true
            }
            Message::Flush(answer) => {
                flushed.push(answer);
                false
            }
        };
        let mut more = take(first, &mut spans);
        let deadline = Instant::now() + EXPORT_DELAY;
        let mut ended = 1;
        while more && ended < MAX_EXPORT {
            match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(m) => {
                    more = take(m, &mut spans);
                    ended += 1;
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        if !spans.is_empty() {
            if let Err(e) = futures_executor::block_on(exporter.export(spans)) {
                log::debug!(target: "fnhost::server", "span export: {e}");
            }
        }
        for answer in flushed {
            let _ = answer.send(());
        }
    }
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

/// Exports what is queued (at shutdown), waiting at most 10 s.
pub fn flush() {
    if let Some(e) = EXPORTING.get() {
        let (answer, done) = std::sync::mpsc::channel();
        if e.queue.send(Message::Flush(answer)).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(10));
        }
    }
}

/// Invocations whose spans were dropped because the export queue was full.
pub(crate) fn dropped() -> u64 {
    EXPORTING
        .get()
        .map_or(0, |e| e.dropped.load(Ordering::Relaxed))
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

/// Queues an ended invocation's spans for export (nothing when spans are
/// off or the trace is not sampled; dropped and counted when the queue is
/// full).
pub(crate) fn export(inv: &Invocation<'_>) {
    let Some(e) = EXPORTING.get() else { return };
    if !inv.trace.sampled {
        return;
    }
    let ended = Box::new(Ended {
        trace_id: inv.trace.trace_id.bytes(),
        span: inv.span,
        parent_span: inv.trace.parent_span,
        trigger: inv.trigger.to_owned(),
        function: inv.function.to_owned(),
        version: inv.version.to_owned(),
        request_id: inv.request_id.to_owned(),
        start: inv.start,
        end: inv.end,
        queued_since: inv.queued_since,
        handler: inv.handler,
        cold_start: inv.cold_start,
        error: inv.error.map(str::to_owned),
    });
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
        e.queue.try_send(Message::Ended(ended))
    {
        e.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// The spans of an ended invocation: `fnhost.invoke` (its parent the
/// caller's span), and inside it `fnhost.queue`, `fnhost.initializer` and
/// `fnhost.handler` where they apply.
fn spans_of(e: &Ended, scope: &InstrumentationScope, out: &mut Vec<SpanData>) {
    let trace_id = TraceId::from_bytes(e.trace_id);
    let server_span = SpanId::from_bytes(e.span);
    let context = |span: SpanId| {
        SpanContext::new(
            trace_id,
            span,
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    };
    let span = |name: &'static str,
                id: SpanId,
                parent: SpanId,
                remote: bool,
                kind: SpanKind,
                start: SystemTime,
                end: SystemTime,
                attributes: Vec<KeyValue>,
                status: Status| SpanData {
        span_context: context(id),
        parent_span_id: parent,
        parent_span_is_remote: remote,
        span_kind: kind,
        name: Cow::Borrowed(name),
        start_time: start,
        end_time: end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    };
    let kind = if e.queued_since.is_some() {
        SpanKind::Consumer
    } else {
        SpanKind::Server
    };
    let status = match &e.error {
        Some(error) => Status::error(error.clone()),
        None => Status::Unset,
    };
    out.push(span(
        "fnhost.invoke",
        server_span,
        e.parent_span.map_or(SpanId::INVALID, SpanId::from_bytes),
        e.parent_span.is_some(),
        kind,
        e.queued_since.unwrap_or(e.start),
        e.end,
        vec![
            KeyValue::new("faas.name", e.function.clone()),
            KeyValue::new("faas.version", e.version.clone()),
            KeyValue::new("faas.invocation_id", e.request_id.clone()),
            KeyValue::new("faas.trigger", e.trigger.clone()),
            KeyValue::new("faas.coldstart", e.cold_start.is_some()),
        ],
        status,
    ));
    let mut child = |name: &'static str, start: SystemTime, end: SystemTime| {
        out.push(span(
            name,
            SpanId::from_bytes(crate::trace::span_id()),
            server_span,
            false,
            SpanKind::Internal,
            start,
            end,
            vec![KeyValue::new("faas.invocation_id", e.request_id.clone())],
            Status::Unset,
        ));
    };
    if let Some(accepted) = e.queued_since {
        child("fnhost.queue", accepted, e.start);
    }
    let handler_start = e
        .handler
        .and_then(|h| e.end.checked_sub(h))
        .unwrap_or(e.end)
        .max(e.start);
    if let Some(cold) = e.cold_start {
        let start = handler_start
            .checked_sub(cold)
            .unwrap_or(e.start)
            .max(e.start);
        child("fnhost.initializer", start, handler_start);
    }
    if e.handler.is_some() {
        child("fnhost.handler", handler_start, e.end);
    }
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
