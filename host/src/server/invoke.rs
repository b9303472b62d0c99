//! Invocation endpoints: synchronous (with FunctionGraph's response headers
//! and `v0`/`v1` bodies), asynchronous (a bounded queue drained by workers,
//! with a listing of recent invocations), and `/metrics`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::model::now_rfc3339;
use super::urn::FunctionRef;
use super::Shared;
use crate::generation::Started;
use crate::outcome::{InvokeResult, Outcome};
use crate::registry::Route;

/// Most asynchronous invocations waiting at once.
pub const ASYNC_QUEUE_CAPACITY: usize = 1000;
/// Asynchronous invocation records kept for listing.
const ASYNC_RECORDS_KEPT: usize = 10_000;
/// Bytes of log returned in `X-Cff-Function-Log` (base64 of the tail).
const HEADER_LOG_BYTES: usize = 2000;

fn route_for(state: &Shared, urn: &str) -> Result<(String, Route), ApiError> {
    let r = FunctionRef::parse(urn).ok_or_else(ApiError::function_not_found)?;
    {
        let functions = state.functions.lock();
        let record = functions
            .get(&r.name)
            .ok_or_else(ApiError::function_not_found)?;
        if r.package.as_deref().is_some_and(|p| p != record.package) {
            return Err(ApiError::function_not_found());
        }
    }
    let route = state.runtime.registry().resolve(&r.target())?;
    Ok((r.name, route))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

/// Invokes `route` off the async executor and records metrics.
pub(crate) async fn run_route(
    state: &Shared,
    function: &str,
    route: Route,
    payload: Bytes,
) -> Result<InvokeResult, ApiError> {
    run(state, function, route, payload).await
}

async fn run(
    state: &Shared,
    function: &str,
    route: Route,
    payload: Bytes,
) -> Result<InvokeResult, ApiError> {
    state.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let version = route.version.to_string();
    let started = Instant::now();
    // Fast path: straight onto a worker, awaited without blocking a thread
    // (or, for an inline function, run right here). Slow path (the call
    // must queue for an instance or initialize one): a blocking task.
    let result = match route.start(payload.clone()) {
        Ok(Started::Done(result)) => Ok(Ok(result)),
        Ok(Started::Running(pending)) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            pending.on_complete(move || {
                let _ = tx.send(());
            });
            let deadline = tokio::time::Instant::from_std(pending.deadline());
            let _ = tokio::time::timeout_at(deadline, rx).await;
            Ok(Ok(pending.finish()))
        }
        Ok(Started::MustBlock) => tokio::task::spawn_blocking(move || route.invoke(&payload)).await,
        Err(e) => Ok(Err(e)),
    };
    state.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    let result = result.map_err(|e| ApiError::internal(format!("invocation task failed: {e}")))?;
    let outcome = match &result {
        Ok(r) if r.outcome.is_success() => "success",
        Ok(r)
            if r.outcome
                .error()
                .is_some_and(|e| e.error_type == crate::error_type::TIMEOUT) =>
        {
            "timeout"
        }
        Ok(_) => "error",
        Err(_) => "rejected",
    };
    state
        .metrics
        .record(function, &version, outcome, started.elapsed().as_secs_f64());
    Ok(result?)
}

/// `POST .../functions/{urn}/invocations`
pub(crate) async fn sync(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (function, route) = route_for(&state, &urn)?;
    let tail = header(&headers, "x-cff-log-type").as_deref() == Some("tail");
    let v1 = header(&headers, "x-cff-request-version").as_deref() == Some("v1");
    let result = run(&state, &function, route, body).await?;
    let mut out = HeaderMap::new();
    set(&mut out, "x-cff-request-id", &result.request_id);
    set(&mut out, "x-cff-invoke-summary", &result.summary.to_json());
    set(
        &mut out,
        "x-cff-billing-duration",
        &result.summary.billing_duration_ms.to_string(),
    );
    set(
        &mut out,
        "x-cff-response-version",
        if v1 { "v1" } else { "v0" },
    );
    let failed = !result.outcome.is_success();
    set(&mut out, "x-func-err-code", if failed { "1" } else { "0" });
    set(
        &mut out,
        "x-is-func-err",
        if failed { "true" } else { "false" },
    );
    if tail {
        let log = crate::tail(&result.log, HEADER_LOG_BYTES);
        set(
            &mut out,
            "x-cff-function-log",
            &base64::engine::general_purpose::STANDARD.encode(log),
        );
    }
    if v1 {
        let body = json!({
            "request_id": result.request_id,
            "result": String::from_utf8_lossy(&result.outcome.body_bytes()),
            "log": if tail { result.log_tail().to_owned() } else { String::new() },
            "status": 200,
        });
        return Ok((StatusCode::OK, out, Json(body)).into_response());
    }
    let content_type = match &result.outcome {
        Outcome::Success(b) => b.kind.content_type(),
        Outcome::Failure(_) => Some("application/json"),
    };
    if let Some(ct) = content_type {
        set(&mut out, "content-type", ct);
    }
    Ok((StatusCode::OK, out, result.outcome.body_bytes()).into_response())
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
                    let result = run(&state, &job.function, job.route, job.payload).await;
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
        return Err(crate::error::InvokeError::PayloadTooLarge {
            size: body.len(),
            limit,
        }
        .into());
    }
    let request_id = enqueue(&state, &function, route, body)?;
    let mut headers = HeaderMap::new();
    set(&mut headers, "x-cff-request-id", &request_id);
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

/// Duration histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Invocation metrics for `/metrics`.
#[derive(Default)]
pub(crate) struct Metrics {
    invocations: Mutex<BTreeMap<(String, String, &'static str), u64>>,
    durations: Mutex<BTreeMap<String, Histogram>>,
    pub(crate) in_flight: AtomicI64,
}

impl Metrics {
    fn record(&self, function: &str, version: &str, outcome: &'static str, seconds: f64) {
        *self
            .invocations
            .lock()
            .entry((function.to_owned(), version.to_owned(), outcome))
            .or_default() += 1;
        let mut durations = self.durations.lock();
        let h = durations.entry(function.to_owned()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(state): State<Shared>) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    let m = &state.metrics;
    let _ = writeln!(
        out,
        "# HELP fnhost_invocations_total Invocations by function, version and outcome."
    );
    let _ = writeln!(out, "# TYPE fnhost_invocations_total counter");
    for ((f, v, o), n) in m.invocations.lock().iter() {
        let _ = writeln!(
            out,
            "fnhost_invocations_total{{function=\"{f}\",version=\"{v}\",outcome=\"{o}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_invocation_duration_seconds Invocation duration, queueing included."
    );
    let _ = writeln!(out, "# TYPE fnhost_invocation_duration_seconds histogram");
    for (f, h) in m.durations.lock().iter() {
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "fnhost_invocation_duration_seconds_bucket{{function=\"{f}\",le=\"{bound}\"}} {}",
                h.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "fnhost_invocation_duration_seconds_bucket{{function=\"{f}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "fnhost_invocation_duration_seconds_sum{{function=\"{f}\"}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "fnhost_invocation_duration_seconds_count{{function=\"{f}\"}} {}",
            h.count
        );
    }
    let stats = state.runtime.stats();
    let gauges = [
        (
            "fnhost_invocations_in_flight",
            "Invocations running now.",
            m.in_flight.load(Ordering::Relaxed).to_string(),
        ),
        (
            "fnhost_async_queue_depth",
            "Asynchronous invocations waiting.",
            state.asynchronous.depth().to_string(),
        ),
        (
            "fnhost_runaway_invocations",
            "Handlers still running past their deadline.",
            stats.runaway_invocations.to_string(),
        ),
        (
            "fnhost_libraries_mapped",
            "Distinct libraries mapped (never unmapped).",
            stats.libraries_mapped.to_string(),
        ),
        (
            "fnhost_worker_threads",
            "Worker threads alive.",
            stats.worker_threads.to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let g = stats.generations;
    let _ = writeln!(
        out,
        "# HELP fnhost_generations Code generations by state.\n# TYPE fnhost_generations gauge"
    );
    let _ = writeln!(out, "fnhost_generations{{state=\"live\"}} {}", g.live);
    let _ = writeln!(
        out,
        "fnhost_generations{{state=\"draining\"}} {}",
        g.draining
    );
    let _ = writeln!(out, "fnhost_generations{{state=\"retired\"}} {}", g.retired);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response()
}
