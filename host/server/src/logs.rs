//! `GET .../functions/{urn}/logs`: a function's recent invocation logs (kept by
//! `function_logs.rs`) by request id, by time range, or after a
//! sequence number (what `fnhost logs --follow` polls with). The logs do
//! not survive a restart: for that, ship the server's own log
//! (`--log-format json`).

use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::function_logs::LogQuery;
use crate::query::Params;
use crate::state::Shared;

/// `GET .../functions/{urn}/logs`
pub(crate) async fn read(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    raw: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (record, _) = state.management.lookup(&urn)?;
    let q = LogQuery {
        request_id: raw.text("request_id"),
        since_ms: raw.number("since_ms")?,
        until_ms: raw.number("until_ms")?,
        after: raw.number("after")?,
        limit: raw.number("limit")?,
    };
    let (lines, next) = state.logs.read(&record.func_name, &q);
    Ok(Json(
        json!({"lines": lines, "count": lines.len(), "next_after": next}),
    ))
}
