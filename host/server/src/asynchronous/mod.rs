//! Asynchronous invocations that survive the server: accepted into the store
//! (committed before the 202), claimed by workers, retried with backoff,
//! discarded past their maximum age, and delivered to destinations when they
//! end. A server killed with work queued or running finds it at its next
//! start: waiting work waits on, running work runs again (at least once);
//! a graceful stop stops claiming and leaves what waits for the next start.
//! The records are pruned by age and count.

pub mod config;
pub mod destinations;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use self::config::Policy;
use self::destinations::{Destination, Ending};
use crate::error::ApiError;
use crate::functions::{blocking, parse_body};
use crate::invoke::{route_for, run_route};
use crate::model::now_rfc3339;
use crate::query::Params;
use crate::state::Shared;
use crate::store::asynchronous::{status, Claim, Claimed, InvocationWrite, NewInvocation};
use crate::trace::{self, TraceContext};
use crate::urn::function_urn;

pub use crate::async_queue::AsyncSettings;

/// The longest delay between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);
/// A run the server stopped in the middle of is run again, this many times
/// at most: a handler that takes the server down each time fails instead of
/// taking it down forever.
pub const MAX_INTERRUPTED: u32 = 3;
/// Most invocations claimed in one transaction.
const CLAIM_BATCH: usize = 64;
/// How often ended records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An invocation to accept.
pub(crate) struct Accepted {
    pub(crate) function: String,
    pub(crate) target: String,
    pub(crate) payload: Bytes,
    pub(crate) traceparent: String,
    pub(crate) tracestate: String,
    pub(crate) source: &'static str,
    pub(crate) depth: u32,
    /// The request id to give it; `None`: a new random one. A timer tick
    /// in a cluster names its own, so that a tick two nodes fire is
    /// accepted once (the second insert is a conflict).
    pub(crate) request_id: Option<String>,
}

/// Accepts an invocation: it is in the store when this returns its request
/// id. 429 when the queue is full, 503 when the server is stopping (except
/// for a destination's delivery).
pub(crate) async fn enqueue(state: &Shared, job: Accepted) -> Result<String, ApiError> {
    let queue = &state.asynchronous;
    // While the server stops, the outcomes of what still runs are still
    // delivered; only new work is refused.
    if !queue.accepting.load(Ordering::SeqCst) && job.source != "destination" {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "FSS.0503",
            "shutting down",
        ));
    }
    let reserved = queue
        .unfinished
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < queue.settings.queue_capacity).then_some(n + 1)
        });
    if reserved.is_err() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "FSS.0429",
            "the asynchronous invocation queue is full",
        ));
    }
    let request_id = job
        .request_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // Committed with the other requests' inserts of the moment (group
    // commit): the 202 goes once the row is durable.
    let stored = state
        .management
        .store()
        .write_invocation(InvocationWrite::Insert(NewInvocation {
            request_id: request_id.clone(),
            function: job.function,
            target: job.target,
            payload: Vec::from(job.payload),
            accepted_ms: now_ms(),
            traceparent: job.traceparent,
            tracestate: job.tracestate,
            source: job.source,
            depth: job.depth,
        }))
        .await
        .map_err(ApiError::store);
    if let Err(e) = stored {
        queue.ended();
        return Err(e);
    }
    queue.counters.accepted.fetch_add(1, Ordering::Relaxed);
    queue.doorbell.notify_one();
    Ok(request_id)
}

/// At start: counts what is unfinished, queues again what a stopped server
/// left running, and starts the workers and the pruner.
pub(crate) fn start(state: &Shared) -> Result<Vec<tokio::task::JoinHandle<()>>, ApiError> {
    let store = state.management.store();
    let recovered = store
        .recover_invocations(now_ms(), MAX_INTERRUPTED, &now_rfc3339())
        .map_err(ApiError::store)?;
    if recovered.requeued + recovered.failed > 0 {
        log::warn!(
            target: "fnhost::async",
            "{} asynchronous invocations were running when the server stopped: {} run again, {} failed (interrupted {MAX_INTERRUPTED} times)",
            recovered.requeued + recovered.failed,
            recovered.requeued,
            recovered.failed
        );
    }
    let c = &state.asynchronous.counters;
    c.requeued_at_start
        .store(recovered.requeued as u64, Ordering::Relaxed);
    c.failed_at_start
        .store(recovered.failed as u64, Ordering::Relaxed);
    let unfinished = store.unfinished_invocations().map_err(ApiError::store)?;
    state
        .asynchronous
        .unfinished
        .store(unfinished as usize, Ordering::Relaxed);
    Ok(vec![
        tokio::spawn(dispatch(Shared::clone(state))),
        tokio::spawn(prune(Shared::clone(state))),
    ])
}

/// Deletes old ended records, now and every minute.
async fn prune(state: Shared) {
    let mut stopping = state.asynchronous.stopping.subscribe();
    loop {
        let s = Shared::clone(&state);
        let settings = s.asynchronous.settings.clone();
        let pruned = blocking(move || {
            let before = now_ms() - settings.records_max_age.as_millis() as i64;
            s.management
                .store()
                .prune_invocations(before, settings.records_max)
                .map_err(ApiError::store)
        })
        .await;
        match pruned {
            Ok(0) => {}
            Ok(n) => {
                log::info!(target: "fnhost::async", "pruned {n} ended asynchronous invocation records")
            }
            Err(e) => log::warn!(target: "fnhost::async", "pruning records: {}", e.message),
        }
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
    }
}

/// Claims what is due, as many as there are free workers (up to
/// [`CLAIM_BATCH`]) in one transaction, and runs each on a worker of its
/// own (`workers` at once), until the queue closes; then waits for what
/// runs.
async fn dispatch(state: Shared) {
    let mut stopping = state.asynchronous.stopping.subscribe();
    let workers = Arc::new(tokio::sync::Semaphore::new(
        state.asynchronous.settings.workers.max(1),
    ));
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        // A free worker first: what is claimed starts at once.
        let first = tokio::select! {
            permit = Arc::clone(&workers).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopping.wait_for(|s| *s) => break,
        };
        let free = (1 + workers.available_permits()).min(CLAIM_BATCH);
        // In the transaction the accepted invocations of the moment share.
        let claimed = state
            .management
            .store()
            .claim_invocations(Claim {
                now_ms: now_ms(),
                start_time: now_rfc3339(),
                max_interrupted: MAX_INTERRUPTED,
                lease: state.asynchronous.settings.lease,
                limit: free,
            })
            .await
            .map_err(ApiError::store);
        let wait = match claimed {
            Ok(jobs) => {
                let all_free_taken = jobs.len() == free;
                let mut permit = Some(first);
                for job in jobs {
                    // Only this task takes workers, so the ones counted
                    // free are still free.
                    let worker = match permit.take() {
                        Some(p) => p,
                        None => match Arc::clone(&workers).acquire_owned().await {
                            Ok(p) => p,
                            Err(_) => break,
                        },
                    };
                    let s = Shared::clone(&state);
                    running.spawn(async move {
                        let heartbeat = renew_while_running(&s, &job);
                        run(&s, job, worker).await;
                        heartbeat.abort();
                    });
                }
                drop(permit);
                if all_free_taken {
                    // More may be due.
                    continue;
                }
                let s = Shared::clone(&state);
                let due = blocking(move || {
                    s.management
                        .store()
                        .next_invocation_due()
                        .map_err(ApiError::store)
                })
                .await
                .ok()
                .flatten();
                due.map_or(Duration::from_secs(1), |at| {
                    Duration::from_millis((at - now_ms()).clamp(0, 1000) as u64)
                })
            }
            Err(e) => {
                drop(first);
                log::warn!(target: "fnhost::async", "claiming invocations: {}", e.message);
                Duration::from_secs(1)
            }
        };
        // Nothing more is due now: until a new one is accepted (the
        // doorbell keeps a ring that came while claiming), the next is due
        // (a retry), or a second passed.
        tokio::select! {
            () = state.asynchronous.doorbell.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = stopping.wait_for(|s| *s) => break,
        }
    }
    while running.join_next().await.is_some() {}
}

/// Renews this node's claim of `job` every third of the lease until
/// aborted: the claim then lasts as long as the attempt does (waiting for
/// an instance, a cold start and its initializer, the handler, delivering
/// to a destination), and no longer than a lease after this node dies. A
/// renewal the store refuses means another node took the invocation over
/// (this one was cut off from the database past its lease): said once; the
/// attempt's end will not count.
fn renew_while_running(state: &Shared, job: &Claimed) -> tokio::task::JoinHandle<()> {
    let state = Shared::clone(state);
    let (id, attempt) = (job.request_id.clone(), job.attempts);
    let lease = state.asynchronous.settings.lease;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            let (s, id2) = (Shared::clone(&state), id.clone());
            let renewed = blocking(move || {
                s.management
                    .store()
                    .renew_invocation(&id2, attempt, lease)
                    .map_err(ApiError::store)
            })
            .await;
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    log::warn!(target: "fnhost::async", request_id = id.as_str(); "request {id}: attempt {attempt} lost its claim to another node; its end will not count");
                    return;
                }
                Err(e) => {
                    log::warn!(target: "fnhost::async", request_id = id.as_str(); "request {id}: renewing its claim: {}", e.message)
                }
            }
        }
    })
}

/// The delay before retry number `n` (1-based): `base`, doubling.
fn retry_delay(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(MAX_RETRY_DELAY)
}

/// How a run ended, before the retry decision.
enum Ran {
    Success(Vec<u8>),
    Failed { code: i64, message: String },
}

/// A worker's place: held while an invocation runs (and its outcome is
/// delivered), given back before its end is recorded.
type Worker = tokio::sync::OwnedSemaphorePermit;

/// Runs one claimed invocation and records what became of it.
async fn run(state: &Shared, job: Claimed, worker: Worker) {
    let policy = {
        let s = Shared::clone(state);
        let (function, target) = (job.function.clone(), job.target.clone());
        blocking(move || Ok(config::policy_for(&s, &function, &target)))
            .await
            .unwrap_or_default()
    };
    let age = Duration::from_millis((now_ms() - job.accepted_ms).max(0) as u64);
    if age > policy.max_age {
        let message = format!(
            "discarded: the event was {} s old, over its maximum age of {} s",
            age.as_secs(),
            policy.max_age.as_secs()
        );
        state
            .asynchronous
            .counters
            .discarded_age
            .fetch_add(1, Ordering::Relaxed);
        end(
            state,
            &job,
            &policy,
            worker,
            status::DISCARD,
            "EventAgeExceeded",
            None,
            Some((0, &message)),
        )
        .await;
        return;
    }
    // Accepted for an earlier function of its name (deleted while this
    // waited, ran or retried, and created again since): not this one's.
    let created_since = state
        .management
        .created_ms(&job.function)
        .is_some_and(|created| created > job.accepted_ms);
    let route = if created_since {
        Err(
            "the function was deleted after this invocation was accepted \
             (a function created since has its name)"
                .to_owned(),
        )
    } else {
        state
            .runtime
            .registry()
            .resolve(&job.target)
            .map_err(|e| format!("the function is gone: {e}"))
    };
    let route = match route {
        Ok(route) => route,
        Err(message) => {
            end(
                state,
                &job,
                &policy,
                worker,
                status::FAIL,
                "FunctionNotFound",
                None,
                Some((404, &message)),
            )
            .await;
            return;
        }
    };
    let trace = TraceContext::from_stored(&job.traceparent);
    let ids = fnhost::CallIds {
        request_id: uuid::Uuid::parse_str(&job.request_id).ok(),
        trace_id: trace.map(|t| t.trace_id),
    };
    let payload = Bytes::from(job.payload.clone());
    let started = SystemTime::now();
    let version = Arc::clone(&route.version);
    let result = run_route(state, &job.function, route.with_ids(ids), payload).await;
    if let (true, Some(trace)) = (crate::telemetry::enabled(), trace.filter(|t| t.sampled)) {
        let accepted = UNIX_EPOCH + Duration::from_millis(job.accepted_ms.max(0) as u64);
        crate::telemetry::export(&crate::telemetry::Invocation {
            trace,
            span: trace::span_id(),
            trigger: if job.source == "timer" {
                "timer"
            } else {
                "pubsub"
            },
            function: &job.function,
            version: &version,
            request_id: &job.request_id,
            start: started,
            end: SystemTime::now(),
            queued_since: Some(accepted.min(started)),
            handler: result
                .as_ref()
                .ok()
                .and_then(|r| Duration::try_from_secs_f64(r.summary.duration_ms / 1000.0).ok()),
            cold_start: result.as_ref().ok().and_then(|r| r.cold_start),
            error: match &result {
                Ok(r) => r.outcome.error().map(|e| e.error_type.as_str()),
                Err(e) => Some(e.code),
            },
        });
    }
    let ran = match result {
        Ok(result) => match result.outcome.error() {
            None => Ran::Success(result.outcome.into_body_bytes()),
            Some(e) => Ran::Failed {
                code: 1,
                message: e.to_json(),
            },
        },
        Err(e) => Ran::Failed {
            code: i64::from(e.status.as_u16()),
            message: e.message,
        },
    };
    match ran {
        Ran::Success(body) => {
            end(
                state,
                &job,
                &policy,
                worker,
                status::SUCCESS,
                "Success",
                Some(&body),
                None,
            )
            .await;
        }
        Ran::Failed { code, message } => {
            let failures = job.attempts.saturating_sub(job.interrupted);
            if failures <= policy.retries {
                let next = now_ms()
                    + retry_delay(state.asynchronous.settings.retry_base, failures).as_millis()
                        as i64;
                state
                    .asynchronous
                    .counters
                    .retries
                    .fetch_add(1, Ordering::Relaxed);
                drop(worker);
                let retried = state
                    .management
                    .store()
                    .write_invocation(InvocationWrite::Retry {
                        request_id: job.request_id.clone(),
                        attempt: job.attempts,
                        next_ms: next,
                        error_code: code,
                        error_message: message,
                    })
                    .await
                    .map_err(ApiError::store);
                match retried {
                    Ok(true) => {}
                    Ok(false) => {
                        log::warn!(target: "fnhost::async", "request {}: attempt {} no longer held its claim; its retry was not recorded", job.request_id, job.attempts)
                    }
                    Err(e) => {
                        log::warn!(target: "fnhost::async", "request {}: recording a retry: {}", job.request_id, e.message)
                    }
                }
                return;
            }
            end(
                state,
                &job,
                &policy,
                worker,
                status::FAIL,
                "RetriesExhausted",
                None,
                Some((code, &message)),
            )
            .await;
        }
    }
}

/// Delivers the outcome to its destination, then records the final status:
/// a server that dies in between runs the invocation again and delivers
/// again (at least once, like the invocation itself).
#[allow(clippy::too_many_arguments)]
async fn end(
    state: &Shared,
    job: &Claimed,
    policy: &Policy,
    worker: Worker,
    final_status: &'static str,
    condition: &'static str,
    response: Option<&[u8]>,
    error: Option<(i64, &str)>,
) {
    let destination = if final_status == status::SUCCESS {
        &policy.on_success
    } else {
        &policy.on_failure
    };
    if let Some(destination) = destination {
        let mut urn = state
            .management
            .record(&job.function)
            .map_or_else(|| function_urn("-", "default", &job.function), |r| r.urn());
        if let Some((_, qualifier)) = job.target.split_once(':') {
            urn = format!("{urn}:{qualifier}");
        }
        let record = destinations::record(&Ending {
            request_id: &job.request_id,
            function_urn: urn,
            status: final_status,
            condition,
            attempts: job.attempts,
            traceparent: &job.traceparent,
            source: &job.source,
            payload: &job.payload,
            response,
            error,
        });
        let delivered = destinations::deliver(
            state,
            destination,
            record,
            &job.traceparent,
            &job.tracestate,
            job.depth,
        )
        .await;
        count_delivery(state, destination, delivered.is_ok());
        if let Err(e) = delivered {
            log::warn!(
                target: "fnhost::async",
                request_id = job.request_id.as_str();
                "request {}: its {} destination did not take the outcome: {e}",
                job.request_id,
                destination.kind()
            );
        }
    }
    // The worker is free once the outcome is delivered; recording the end
    // waits for its shared transaction without holding the worker.
    drop(worker);
    let (code, message) = error.map_or((0, String::new()), |(c, m)| (c, m.to_owned()));
    let finished = state
        .management
        .store()
        .write_invocation(InvocationWrite::Finish {
            request_id: job.request_id.clone(),
            attempt: job.attempts,
            status: final_status,
            error_code: code,
            error_message: message,
            end_time: now_rfc3339(),
        })
        .await
        .map_err(ApiError::store);
    state.asynchronous.ended();
    match finished {
        Ok(true) => {}
        Ok(false) => {
            log::warn!(target: "fnhost::async", request_id = job.request_id.as_str(); "request {}: attempt {} no longer held its claim; its end was not recorded", job.request_id, job.attempts)
        }
        Err(e) => {
            log::warn!(target: "fnhost::async", request_id = job.request_id.as_str(); "request {}: recording its end: {}", job.request_id, e.message)
        }
    }
}

fn count_delivery(state: &Shared, destination: &Destination, ok: bool) {
    let c = &state.asynchronous.counters;
    let counter = match (destination, ok) {
        (Destination::Function { .. }, true) => &c.deliveries_function_ok,
        (Destination::Function { .. }, false) => &c.deliveries_function_failed,
        (Destination::Http { .. }, true) => &c.deliveries_http_ok,
        (Destination::Http { .. }, false) => &c.deliveries_http_failed,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// `POST .../functions/{urn}/invocations-async`
pub(crate) async fn invoke(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    headers: HeaderMap,
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
    let target = crate::urn::FunctionRefStr::parse(&urn)
        .map_or(function, |r| r.target)
        .to_owned();
    drop(route);
    let trace = TraceContext::from_headers(&headers);
    let accepted = Accepted {
        function: function.to_owned(),
        target,
        payload: body,
        traceparent: trace.incoming(),
        tracestate: trace::tracestate(&headers),
        source: "api",
        depth: 0,
        request_id: None,
    };
    let request_id = enqueue(&state, accepted).await?;
    let mut out = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        out.insert("x-cff-request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&trace.trace_id.to_string()) {
        out.insert(crate::invoke::X_CFF_TRACE_ID, v);
    }
    Ok((
        StatusCode::ACCEPTED,
        out,
        Json(json!({"request_id": request_id})),
    )
        .into_response())
}

#[derive(Deserialize)]
struct CancelBody {
    request_id: String,
}

/// `POST .../functions/{urn}/cancel`: a waiting asynchronous invocation is
/// discarded; a running one cannot be stopped (409).
pub(crate) async fn cancel(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body: CancelBody = parse_body(&body)?;
    let (function, _) = route_for(&state, &urn)?;
    let function = function.to_owned();
    let s = Shared::clone(&state);
    let id = body.request_id.clone();
    let f = function.clone();
    let before = blocking(move || {
        s.management
            .store()
            .cancel_invocation(&f, &id, &now_rfc3339())
            .map_err(ApiError::store)
    })
    .await?;
    match before.as_deref() {
        Some(status::WAIT) => {
            state.asynchronous.ended();
            state
                .asynchronous
                .counters
                .discarded_cancelled
                .fetch_add(1, Ordering::Relaxed);
            Ok(StatusCode::NO_CONTENT)
        }
        Some(status::RUNNING) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "FSS.1062",
            "a running invocation cannot be stopped; it finishes or times out",
        )),
        Some(done) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "FSS.1062",
            format!("the invocation already ended ({done})"),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "FSS.1055",
            format!(
                "no asynchronous invocation `{}` of `{function}`",
                body.request_id
            ),
        )),
    }
}

/// `GET .../functions/{urn}/async-invocations`: newest first.
pub(crate) async fn list(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    q: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (function, _) = route_for(&state, &urn)?;
    let function = function.to_owned();
    let start: u64 = q.lenient("marker").unwrap_or(0);
    let limit: u64 = q.lenient("limit").unwrap_or(100).clamp(1, 500);
    let (request_id, status) = (q.text("request_id"), q.text("status"));
    let s = Arc::clone(&state);
    blocking(move || {
        let (count, page) = s
            .management
            .store()
            .list_invocations(
                &function,
                request_id.as_deref(),
                status.as_deref(),
                start,
                limit,
            )
            .map_err(ApiError::store)?;
        let next = (start + page.len() as u64).min(count);
        Ok(Json(
            json!({"invocations": page, "next_marker": next, "count": count}),
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_the_cap() {
        let base = Duration::from_secs(1);
        assert_eq!(retry_delay(base, 1), Duration::from_secs(1));
        assert_eq!(retry_delay(base, 2), Duration::from_secs(2));
        assert_eq!(retry_delay(base, 4), Duration::from_secs(8));
        assert_eq!(retry_delay(base, 30), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(base, u32::MAX), MAX_RETRY_DELAY);
    }
}
