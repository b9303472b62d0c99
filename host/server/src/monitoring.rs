//! What the console's function list and monitoring page read that
//! `/metrics` does not give: the recent window of invocations, errors and
//! latency per function and version ([`crate::activity`]), and the deploy
//! timeline ([`crate::deployments`]). fnhost's own endpoints beside
//! FunctionGraph's, signed like the rest of the API.

use std::time::{Duration, SystemTime};

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::activity::{BUCKET, WINDOW};
use super::error::ApiError;
use super::state::Shared;
use crate::query::Params;

/// The span a request asks for: `minutes` from 1 to 15 (default 15).
fn span(q: &Params, default_minutes: u64) -> Result<Duration, ApiError> {
    let most = WINDOW.as_secs() / 60;
    let minutes: u64 = q.number("minutes")?.unwrap_or(default_minutes);
    if !(1..=most).contains(&minutes) {
        return Err(ApiError::bad_request(format!(
            "`minutes` must be from 1 to {most}, not {minutes}"
        )));
    }
    Ok(Duration::from_secs(minutes * 60))
}

/// `GET /v2/{project_id}/fgs/activity?minutes=N`: every function's
/// invocations, errors and latency over the last N minutes (default 5).
pub(crate) async fn overview(
    State(state): State<Shared>,
    q: Params,
) -> Result<Json<Value>, ApiError> {
    let span = span(&q, 5)?;
    let now = SystemTime::now();
    let functions: Vec<Value> = state
        .management
        .records()
        .iter()
        .map(|r| {
            let mut stats =
                serde_json::to_value(state.metrics.activity.totals(&r.func_name, span, now))
                    .unwrap_or_default();
            stats["func_name"] = json!(r.func_name);
            stats
        })
        .collect();
    Ok(Json(
        json!({"minutes": span.as_secs() / 60, "functions": functions}),
    ))
}

/// `GET .../functions/{urn}/activity?minutes=N`: one function's versions,
/// bucket by bucket, over the last N minutes (default 15).
pub(crate) async fn function(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    q: Params,
) -> Result<Json<Value>, ApiError> {
    let span = span(&q, 15)?;
    let (record, _) = state.management.lookup(&urn)?;
    let versions = state
        .metrics
        .activity
        .series(&record.func_name, span, SystemTime::now());
    Ok(Json(json!({
        "func_name": record.func_name,
        "minutes": span.as_secs() / 60,
        "bucket_seconds": BUCKET.as_secs(),
        "versions": versions,
    })))
}

/// `GET .../functions/{urn}/deployments`: the function's deploy timeline
/// on this node, oldest first.
pub(crate) async fn deployments(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (record, _) = state.management.lookup(&urn)?;
    let events = state
        .management
        .deployments()
        .events(Some(&record.func_name));
    Ok(Json(
        json!({"func_name": record.func_name, "deployments": events}),
    ))
}
