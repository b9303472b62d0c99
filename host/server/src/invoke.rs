//! Invocation endpoints: synchronous (with FunctionGraph's response headers
//! and `v0`/`v1` bodies), asynchronous (a bounded queue drained by workers,
//! with a listing of recent invocations), and `/metrics`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::link::{self, Link};
use super::metrics;
use super::model::now_rfc3339;
use super::urn::FunctionRefStr;
use super::Shared;
use fnhost::dispatch::{AtDeadline, Started};
use fnhost::Route;
use fnhost::{InvokeResult, Outcome};

/// Most asynchronous invocations waiting at once.
pub const ASYNC_QUEUE_CAPACITY: usize = 1000;
/// Asynchronous invocation records kept for listing.
const ASYNC_RECORDS_KEPT: usize = 10_000;
/// Bytes of log returned in `X-Cff-Function-Log` (base64 of the tail).
const HEADER_LOG_BYTES: usize = 2000;

fn route_for<'a>(state: &Shared, urn: &'a str) -> Result<(&'a str, Route), ApiError> {
    let r = FunctionRefStr::parse(urn).ok_or_else(ApiError::function_not_found)?;
    let record = state
        .management
        .record(r.name)
        .ok_or_else(ApiError::function_not_found)?;
    if r.package.is_some_and(|p| p != record.package) {
        return Err(ApiError::function_not_found());
    }
    let route = state.runtime.registry().resolve(r.target)?;
    Ok((r.name, route))
}

/// Whether header `name` is `value`, ignoring ASCII case.
fn header_is(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

const X_CFF_REQUEST_ID: HeaderName = HeaderName::from_static("x-cff-request-id");
const X_CFF_INVOKE_SUMMARY: HeaderName = HeaderName::from_static("x-cff-invoke-summary");
const X_CFF_BILLING_DURATION: HeaderName = HeaderName::from_static("x-cff-billing-duration");
const X_CFF_RESPONSE_VERSION: HeaderName = HeaderName::from_static("x-cff-response-version");
const X_CFF_FUNCTION_LOG: HeaderName = HeaderName::from_static("x-cff-function-log");
const X_FUNC_ERR_CODE: HeaderName = HeaderName::from_static("x-func-err-code");
const X_IS_FUNC_ERR: HeaderName = HeaderName::from_static("x-is-func-err");

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
    fn finish(mut self, outcome: metrics::Outcome) {
        self.record(outcome);
    }

    /// The lane's watchdog answered (and counted) the invocation.
    fn counted_elsewhere(mut self) {
        self.done = true;
    }

    fn record(&mut self, outcome: metrics::Outcome) {
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
        self.record(metrics::Outcome::Cancelled);
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
    counted.finish(match &result {
        Ok(r) if r.outcome.is_success() => metrics::Outcome::Success,
        Ok(r)
            if r.outcome
                .error()
                .is_some_and(|e| e.error_type == fnhost::error_type::TIMEOUT) =>
        {
            metrics::Outcome::Timeout
        }
        Ok(_) => metrics::Outcome::Error,
        Err(_) => metrics::Outcome::Rejected,
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
            metrics::Outcome::Timeout,
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
}

impl InvokeOptions {
    pub(crate) fn from_headers(headers: &HeaderMap) -> InvokeOptions {
        InvokeOptions {
            tail: header_is(headers, "x-cff-log-type", "tail"),
            v1: header_is(headers, "x-cff-request-version", "v1"),
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
    let caller = link.map(|link| Caller { link, options });
    let result = match run(state, function, route, body, caller).await? {
        Ran::Result(result) => result,
        // What hyper will fail to send: the connection is shut down.
        Ran::AnsweredAtDeadline => return Ok(StatusCode::REQUEST_TIMEOUT.into_response()),
    };
    let (headers, body) = sync_answer(result, options);
    let mut response = Response::new(axum::body::Body::from(body));
    *response.headers_mut() = headers;
    Ok(response)
}

/// A synchronous invocation's answer (status 200): FunctionGraph's headers
/// and the `v0` (the result as is) or `v1` (a JSON envelope) body.
fn sync_answer(
    result: InvokeResult,
    InvokeOptions { tail, v1 }: InvokeOptions,
) -> (HeaderMap, Bytes) {
    let failed = !result.outcome.is_success();
    let mut out = HeaderMap::with_capacity(8);
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

/// One asynchronous invocation, as listed by `async-invocations`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AsyncRecord {
    request_id: String,
    #[serde(skip)]
    function: String,
    status: &'static str,
    error_message: String,
    error_code: i32,
    start_time: String,
    end_time: String,
}

struct AsyncJob {
    request_id: String,
    function: String,
    route: Route,
    payload: Bytes,
}

/// The asynchronous invocation queue and its records.
pub(crate) struct AsyncQueue {
    sender: Mutex<Option<mpsc::Sender<AsyncJob>>>,
    receiver: tokio::sync::Mutex<mpsc::Receiver<AsyncJob>>,
    records: Mutex<VecDeque<AsyncRecord>>,
    depth: AtomicUsize,
}

impl AsyncQueue {
    pub(crate) fn new(capacity: usize) -> AsyncQueue {
        let (tx, rx) = mpsc::channel(capacity);
        AsyncQueue {
            sender: Mutex::new(Some(tx)),
            receiver: tokio::sync::Mutex::new(rx),
            records: Mutex::new(VecDeque::new()),
            depth: AtomicUsize::new(0),
        }
    }

    /// Stops accepting; workers finish what is queued, then exit.
    pub(crate) fn close(&self) {
        self.sender.lock().take();
    }

    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    fn status(&self, request_id: &str) -> Option<&'static str> {
        self.records
            .lock()
            .iter()
            .rev()
            .find(|r| r.request_id == request_id)
            .map(|r| r.status)
    }

    fn update(&self, request_id: &str, f: impl FnOnce(&mut AsyncRecord)) {
        if let Some(r) = self
            .records
            .lock()
            .iter_mut()
            .rev()
            .find(|r| r.request_id == request_id)
        {
            f(r);
        }
    }
}

/// Starts `n` workers draining the asynchronous queue.
pub(crate) fn start_async_workers(state: Shared, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                loop {
                    let job = { state.asynchronous.receiver.lock().await.recv().await };
                    let Some(job) = job else { return };
                    state.asynchronous.depth.fetch_sub(1, Ordering::Relaxed);
                    if state.asynchronous.status(&job.request_id) == Some("DISCARD") {
                        continue; // cancelled while waiting
                    }
                    state.asynchronous.update(&job.request_id, |r| {
                        r.status = "RUNNING";
                        r.start_time = now_rfc3339();
                    });
                    let result = run_route(&state, &job.function, job.route, job.payload).await;
                    state.asynchronous.update(&job.request_id, |r| {
                        r.end_time = now_rfc3339();
                        match &result {
                            Ok(res) => match res.outcome.error() {
                                None => r.status = "SUCCESS",
                                Some(e) => {
                                    r.status = "FAIL";
                                    r.error_code = 1;
                                    r.error_message = e.to_json();
                                }
                            },
                            Err(e) => {
                                r.status = "FAIL";
                                r.error_code = i32::from(e.status.as_u16());
                                r.error_message = e.message.clone();
                            }
                        }
                    });
                }
            })
        })
        .collect()
}

/// `POST .../functions/{urn}/invocations-async`
pub(crate) async fn asynchronous(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (function, route) = route_for(&state, &urn)?;
    let limit = state.runtime.config().max_payload_bytes;
    if body.len() > limit {
        return Err(fnhost::InvokeError::PayloadTooLarge {
            size: body.len(),
            limit,
        }
        .into());
    }
    let request_id = enqueue(&state, function, route, body)?;
    let mut headers = HeaderMap::new();
    set(&mut headers, X_CFF_REQUEST_ID, request_id.clone());
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(json!({"request_id": request_id})),
    )
        .into_response())
}

/// Queues an asynchronous invocation and returns its request id; 429 when
/// the queue is full, 503 when shutting down.
pub(crate) fn enqueue(
    state: &Shared,
    function: &str,
    route: Route,
    body: Bytes,
) -> Result<String, ApiError> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let sender = state.asynchronous.sender.lock().clone().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "FSS.0503", "shutting down")
    })?;
    {
        let mut records = state.asynchronous.records.lock();
        records.push_back(AsyncRecord {
            request_id: request_id.clone(),
            function: function.to_owned(),
            status: "WAIT",
            error_message: String::new(),
            error_code: 0,
            start_time: String::new(),
            end_time: String::new(),
        });
        while records.len() > ASYNC_RECORDS_KEPT {
            records.pop_front();
        }
    }
    let job = AsyncJob {
        request_id: request_id.clone(),
        function: function.to_owned(),
        route,
        payload: body,
    };
    state.asynchronous.depth.fetch_add(1, Ordering::Relaxed);
    if sender.try_send(job).is_err() {
        state.asynchronous.depth.fetch_sub(1, Ordering::Relaxed);
        state
            .asynchronous
            .update(&request_id, |r| r.status = "DISCARD");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "FSS.0429",
            "the asynchronous invocation queue is full",
        ));
    }
    Ok(request_id)
}

#[derive(Deserialize)]
struct CancelBody {
    request_id: String,
}

/// `POST .../functions/{urn}/cancel`: a waiting asynchronous invocation is
/// discarded; a running one cannot be stopped in process (409).
pub(crate) async fn cancel(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body: CancelBody = super::functions::parse_body(&body)?;
    let (function, _) = route_for(&state, &urn)?;
    let mut outcome = Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "FSS.1055",
        format!(
            "no asynchronous invocation `{}` of `{function}`",
            body.request_id
        ),
    ));
    state.asynchronous.update(&body.request_id, |r| {
        if r.function != function {
            return;
        }
        outcome = match r.status {
            "WAIT" => {
                r.status = "DISCARD";
                r.end_time = now_rfc3339();
                r.error_message = "cancelled".into();
                Ok(StatusCode::NO_CONTENT)
            }
            "RUNNING" => Err(ApiError::new(
                StatusCode::CONFLICT,
                "FSS.1062",
                "a running in-process invocation cannot be stopped; it finishes or times out",
            )),
            done => Err(ApiError::new(
                StatusCode::CONFLICT,
                "FSS.1062",
                format!("the invocation already ended ({done})"),
            )),
        };
    });
    outcome
}

#[derive(Deserialize)]
pub(crate) struct AsyncQuery {
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    marker: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// `GET .../functions/{urn}/async-invocations`
pub(crate) async fn list_async(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    Query(q): Query<AsyncQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (function, _) = route_for(&state, &urn)?;
    let start: usize = q.marker.and_then(|m| m.parse().ok()).unwrap_or(0);
    let limit: usize = q
        .limit
        .and_then(|m| m.parse().ok())
        .unwrap_or(100)
        .clamp(1, 500);
    let records = state.asynchronous.records.lock();
    let matching: Vec<&AsyncRecord> = records
        .iter()
        .rev()
        .filter(|r| r.function == function)
        .filter(|r| q.request_id.as_deref().is_none_or(|id| r.request_id == id))
        .filter(|r| q.status.as_deref().is_none_or(|s| r.status == s))
        .collect();
    let count = matching.len();
    let page: Vec<&AsyncRecord> = matching.into_iter().skip(start).take(limit).collect();
    let next = (start + page.len()).min(count);
    Ok(Json(
        json!({"invocations": page, "next_marker": next, "count": count}),
    ))
}
