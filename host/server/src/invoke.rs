//! Synchronous invocations, with FunctionGraph's response headers and
//! `v0`/`v1` bodies; [`run_route`] runs any invocation (asynchronous ones
//! too, see [`crate::asynchronous`]) with its metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::json;

use super::error::ApiError;
use super::invocation_metrics;
use super::link::{self, Link};
use super::state::Shared;
use super::trace::TraceContext;
use super::urn::FunctionRefStr;
use fnhost::dispatch::{AtDeadline, Started};
use fnhost::Route;
use fnhost::{InvokeResult, Outcome};

/// Bytes of log returned in `X-Cff-Function-Log` (base64 of the tail).
const HEADER_LOG_BYTES: usize = 2000;

pub(crate) fn route_for<'a>(state: &Shared, urn: &'a str) -> Result<(&'a str, Route), ApiError> {
    let r = FunctionRefStr::parse(urn).ok_or_else(ApiError::function_not_found)?;
    if !state.management.exists(r.name, r.package) {
        return Err(ApiError::function_not_found());
    }
    let route = state.runtime.registry().resolve(r.target)?;
    Ok((r.name, route))
}

/// Whether header `name` is `value`, ignoring ASCII case. (Names are
/// constants: a name given as text is parsed again on every lookup.)
fn header_is(headers: &HeaderMap, name: &HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

const X_CFF_REQUEST_ID: HeaderName = HeaderName::from_static("x-cff-request-id");
const X_CFF_LOG_TYPE: HeaderName = HeaderName::from_static("x-cff-log-type");
const X_CFF_REQUEST_VERSION: HeaderName = HeaderName::from_static("x-cff-request-version");
const X_CFF_INVOKE_SUMMARY: HeaderName = HeaderName::from_static("x-cff-invoke-summary");
const X_CFF_BILLING_DURATION: HeaderName = HeaderName::from_static("x-cff-billing-duration");
const X_CFF_RESPONSE_VERSION: HeaderName = HeaderName::from_static("x-cff-response-version");
const X_CFF_FUNCTION_LOG: HeaderName = HeaderName::from_static("x-cff-function-log");
const X_FUNC_ERR_CODE: HeaderName = HeaderName::from_static("x-func-err-code");
const X_IS_FUNC_ERR: HeaderName = HeaderName::from_static("x-is-func-err");
/// The invocation's W3C trace id (the caller's `traceparent`, or a new one).
/// The version that answered a call (an alias sends calls to one version or
/// another): fnhost's own header, beside FunctionGraph's.
const X_FNHOST_VERSION: HeaderName = HeaderName::from_static("x-fnhost-version");
pub(crate) const X_CFF_TRACE_ID: HeaderName = HeaderName::from_static("x-cff-trace-id");
/// W3C Trace Context level 2's answer header: the server's span of the
/// trace.
const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// Sets a header from an owned string without copying it (a value that is
/// not a valid header value is left out).
fn set(headers: &mut HeaderMap, name: HeaderName, value: String) {
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
        headers.insert(name, v);
    }
}

/// Invokes `route` off the async executor and records metrics.
pub(crate) async fn run_route(
    state: &Shared,
    function: &str,
    route: Route,
    payload: Bytes,
) -> Result<InvokeResult, ApiError> {
    match run(state, function, route, payload, None).await? {
        Ran::Result(result) => Ok(result),
        Ran::AnsweredAtDeadline => Err(ApiError::internal(
            "an invocation without a connection was answered on one".to_owned(),
        )),
    }
}

/// A synchronous invocation's connection, through which the lane's
/// watchdog answers the caller if a handler run in the connection's own
/// task is still running at the deadline (see [`super::link`]).
#[derive(Clone, Copy)]
pub(crate) struct Caller<'a> {
    pub(crate) link: &'a Arc<Link>,
    pub(crate) options: InvokeOptions,
}

/// How an invocation ended for its caller.
enum Ran {
    /// With this result, to answer.
    Result(InvokeResult),
    /// The caller was answered at the deadline from another thread.
    AnsweredAtDeadline,
}

/// One invocation's place in the metrics: the in-flight gauge is raised
/// while it lives, and the invocation is counted once, as it ended, or as
/// `cancelled` when its caller went away first (its future was dropped).
/// It borrows what it names (no allocation on the invocation path).
struct Counted<'a> {
    state: &'a Shared,
    function: &'a str,
    version: &'a str,
    started: Instant,
    /// Counted already (or handed to the lane's watchdog, which counts it).
    done: bool,
}

impl<'a> Counted<'a> {
    fn new(state: &'a Shared, function: &'a str, version: &'a str) -> Counted<'a> {
        state.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        Counted {
            state,
            function,
            version,
            started: Instant::now(),
            done: false,
        }
    }

    /// Counts the invocation as it ended.
    fn finish(mut self, outcome: invocation_metrics::Outcome) {
        self.record(outcome);
    }

    /// The lane's watchdog answered (and counted) the invocation.
    fn counted_elsewhere(mut self) {
        self.done = true;
    }

    fn record(&mut self, outcome: invocation_metrics::Outcome) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let metrics = &self.state.metrics;
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics.record(self.function, self.version, outcome, self.started.elapsed());
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.record(invocation_metrics::Outcome::Cancelled);
    }
}

async fn run(
    state: &Shared,
    function: &str,
    route: Route,
    payload: Bytes,
    caller: Option<Caller<'_>>,
) -> Result<Ran, ApiError> {
    let version = Arc::clone(&route.version);
    let counted = Counted::new(state, function, &version);
    let started = counted.started;
    // Fastest path: a proven-short handler runs right here, in the
    // connection's task, if the connection can be answered from another
    // thread (for an inline function, any handler runs here). Fast path:
    // onto the I/O-thread lane as a task of its own, or onto a worker,
    // awaited without blocking a thread. Slow path (the call must queue
    // for an instance or initialize one): a blocking task.
    let here = caller.filter(|c| c.link.is_flushed() && route.generation.qualifies_for_lane());
    let start = match (here, &state.lane) {
        (Some(caller), Some(lane)) => {
            let at_deadline = answer_at_deadline(state, function, &version, caller, started);
            fnhost::dispatch::start_here(&route, payload.clone(), lane, at_deadline)
        }
        _ => fnhost::dispatch::start_on(&route, payload.clone(), state.lane.as_ref()),
    };
    let result = match start {
        Ok(Started::AnsweredAtDeadline) => {
            counted.counted_elsewhere();
            // The watchdog is writing the answer to the socket: the
            // connection must not close it meanwhile.
            if let Some(caller) = caller {
                caller.link.wait_until_answered();
            }
            return Ok(Ran::AnsweredAtDeadline);
        }
        Ok(Started::Done(result)) => Ok(Ok(result)),
        Ok(Started::Running(pending)) => {
            if pending.deadline_watched() {
                // On the I/O-thread lane: its watchdog wakes us at the
                // deadline if the handler has not returned by then.
                pending.completion().await;
            } else {
                // A short handler has usually finished by the time this task
                // is polled again: yielding once lets the executor serve
                // other connections meanwhile, and spares arming and
                // cancelling a deadline timer (measured: 4 % less server CPU
                // per request).
                tokio::task::yield_now().await;
                if !pending.has_completed() {
                    let deadline = tokio::time::Instant::from_std(pending.deadline());
                    let _ = tokio::time::timeout_at(deadline, pending.completion()).await;
                }
            }
            Ok(Ok(pending.finish()))
        }
        Ok(Started::MustBlock) => tokio::task::spawn_blocking(move || route.invoke(&payload)).await,
        Err(e) => Ok(Err(e)),
    };
    let result = result.map_err(|e| ApiError::internal(format!("invocation task failed: {e}")))?;
    if let Ok(r) = &result {
        state.logs.record(function, &r.request_id, &r.log);
        if let Some(took) = r.cold_start {
            state.metrics.record_cold_start(function, took);
        }
    }
    counted.finish(match &result {
        Ok(r) if r.outcome.is_success() => invocation_metrics::Outcome::Success,
        Ok(r)
            if r.outcome
                .error()
                .is_some_and(|e| e.error_type == fnhost::error_type::TIMEOUT) =>
        {
            invocation_metrics::Outcome::Timeout
        }
        Ok(_) => invocation_metrics::Outcome::Error,
        Err(_) => invocation_metrics::Outcome::Rejected,
    });
    Ok(Ran::Result(result?))
}

/// The lane watchdog's answer to `caller` at the deadline, for a handler
/// run in the connection's task: the `timeout` result, with the headers of
/// any synchronous answer, written to the socket from the watchdog's
/// thread; the connection closes.
fn answer_at_deadline(
    state: &Shared,
    function: &str,
    version: &Arc<str>,
    caller: Caller<'_>,
    started: Instant,
) -> AtDeadline {
    let state = Arc::clone(state);
    let link = Arc::clone(caller.link);
    let function = function.to_owned();
    let version = Arc::clone(version);
    let options = caller.options;
    Box::new(move |result: InvokeResult| {
        let socket = link.take_over();
        let metrics = &state.metrics;
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics.record(
            &function,
            &version,
            invocation_metrics::Outcome::Timeout,
            started.elapsed(),
        );
        log::warn!(
            target: "fnhost::http",
            "request {}: answered at its deadline from the I/O-thread lane's watchdog; the connection closes",
            result.request_id
        );
        let (headers, body) = sync_answer(result, options);
        socket.send(&link::http1_response(StatusCode::OK, &headers, &body));
    })
}

/// What a synchronous invocation's request headers ask for (read in place:
/// the `HeaderMap` extractor would copy every header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InvokeOptions {
    /// `X-Cff-Log-Type: tail`: return the log tail.
    tail: bool,
    /// `X-CFF-Request-Version: v1`: the JSON envelope body.
    v1: bool,
    /// The caller's trace (`traceparent`), or a new one.
    pub(crate) trace: TraceContext,
    /// The server's span of it.
    pub(crate) span: [u8; 8],
}

impl InvokeOptions {
    pub(crate) fn from_headers(headers: &HeaderMap) -> InvokeOptions {
        InvokeOptions {
            tail: header_is(headers, &X_CFF_LOG_TYPE, "tail"),
            v1: header_is(headers, &X_CFF_REQUEST_VERSION, "v1"),
            trace: TraceContext::from_headers(headers),
            // A span id matters only to exported spans (and the
            // `traceresponse` that names one).
            span: if crate::telemetry::enabled() {
                crate::trace::span_id()
            } else {
                [0; 8]
            },
        }
    }

    /// The ids an invocation under these options carries.
    pub(crate) fn ids(&self) -> fnhost::CallIds {
        fnhost::CallIds {
            request_id: None,
            trace_id: Some(self.trace.trace_id),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for InvokeOptions {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(InvokeOptions::from_headers(&parts.headers))
    }
}

/// `POST .../functions/{urn}/invocations` through the router. The same
/// requests normally take [`super::front`]'s shortcut to [`sync_invoke`].
pub(crate) async fn sync(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    options: InvokeOptions,
    body: Bytes,
) -> Result<Response, ApiError> {
    sync_invoke(&state, &urn, options, body, None).await
}

/// A synchronous invocation: the result with FunctionGraph's headers.
/// `link`: the request's connection, if a call may block its task.
pub(crate) async fn sync_invoke(
    state: &Shared,
    urn: &str,
    options: InvokeOptions,
    body: Bytes,
    link: Option<&Arc<Link>>,
) -> Result<Response, ApiError> {
    let (function, route) = route_for(state, urn)?;
    let route = route.with_ids(options.ids());
    let answered_by = Arc::clone(&route.version);
    // Only a sampled trace's spans are built (and its times read).
    let traced = (options.trace.sampled && crate::telemetry::enabled())
        .then(|| (SystemTime::now(), Arc::clone(&route.version)));
    let caller = link.map(|link| Caller { link, options });
    let result = match run(state, function, route, body, caller).await? {
        Ran::Result(result) => result,
        // What hyper will fail to send: the connection is shut down.
        Ran::AnsweredAtDeadline => return Ok(StatusCode::REQUEST_TIMEOUT.into_response()),
    };
    if let Some((start, version)) = traced {
        export_spans(&options, "http", function, &version, start, &result);
    }
    let (mut headers, body) = sync_answer(result, options);
    if let Ok(version) = HeaderValue::from_str(&answered_by) {
        headers.insert(X_FNHOST_VERSION, version);
    }
    let mut response = Response::new(axum::body::Body::from(body));
    *response.headers_mut() = headers;
    Ok(response)
}

/// Exports the spans of a synchronous (or APIG) invocation.
pub(crate) fn export_spans(
    options: &InvokeOptions,
    trigger: &str,
    function: &str,
    version: &str,
    start: SystemTime,
    result: &InvokeResult,
) {
    if !options.trace.sampled || !crate::telemetry::enabled() {
        return;
    }
    crate::telemetry::export(&crate::telemetry::Invocation {
        trace: options.trace,
        span: options.span,
        trigger,
        function,
        version,
        request_id: &result.request_id,
        start,
        end: SystemTime::now(),
        queued_since: None,
        handler: Duration::try_from_secs_f64(result.summary.duration_ms / 1000.0).ok(),
        cold_start: result.cold_start,
        error: result.outcome.error().map(|e| e.error_type.as_str()),
    });
}

/// `X-Cff-Trace-Id` and `traceresponse` of an answer
/// (`traceresponse` only while spans are exported: it names the span.)
pub(crate) fn set_trace_headers(out: &mut HeaderMap, options: &InvokeOptions) {
    if let Ok(v) = HeaderValue::from_bytes(&options.trace.trace_id.to_hex()) {
        out.insert(X_CFF_TRACE_ID, v);
    }
    if crate::telemetry::enabled() {
        set(out, TRACERESPONSE, options.trace.traceparent(options.span));
    }
}

/// A synchronous invocation's answer (status 200): FunctionGraph's headers
/// and the `v0` (the result as is) or `v1` (a JSON envelope) body.
fn sync_answer(result: InvokeResult, options: InvokeOptions) -> (HeaderMap, Bytes) {
    let InvokeOptions { tail, v1, .. } = options;
    let failed = !result.outcome.is_success();
    let mut out = HeaderMap::with_capacity(10);
    set_trace_headers(&mut out, &options);
    let s = HeaderValue::from_static;
    out.insert(X_CFF_RESPONSE_VERSION, s(if v1 { "v1" } else { "v0" }));
    out.insert(X_FUNC_ERR_CODE, s(if failed { "1" } else { "0" }));
    out.insert(X_IS_FUNC_ERR, s(if failed { "true" } else { "false" }));
    set(&mut out, X_CFF_INVOKE_SUMMARY, result.summary.to_json());
    set(
        &mut out,
        X_CFF_BILLING_DURATION,
        result.summary.billing_duration_ms.to_string(),
    );
    if tail {
        let log = fnhost::tail(&result.log, HEADER_LOG_BYTES);
        set(
            &mut out,
            X_CFF_FUNCTION_LOG,
            base64::engine::general_purpose::STANDARD.encode(log),
        );
    }
    if v1 {
        let body = json!({
            "request_id": result.request_id,
            "result": String::from_utf8_lossy(&result.outcome.body_bytes()),
            "log": if tail { result.log_tail().to_owned() } else { String::new() },
            "status": 200,
        });
        set(&mut out, X_CFF_REQUEST_ID, result.request_id);
        out.insert(CONTENT_TYPE, s("application/json"));
        return (out, Bytes::from(body.to_string()));
    }
    set(&mut out, X_CFF_REQUEST_ID, result.request_id);
    let content_type = match &result.outcome {
        Outcome::Success(b) => b.kind.content_type(),
        Outcome::Failure(_) => Some("application/json"),
    };
    out.insert(
        CONTENT_TYPE,
        s(content_type.unwrap_or("application/octet-stream")),
    );
    (out, Bytes::from(result.outcome.into_body_bytes()))
}
