//! FunctionGraph's asynchronous invocation configuration of a function (or
//! of one of its versions or aliases): how old an event may get, how often
//! a failed one is retried, and where its outcome is delivered.
//! `PUT`/`GET`/`DELETE .../functions/{urn}/async-invoke-config` and
//! `GET .../async-invoke-configs`, with the SDK's field names.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::destinations::{Destination, DestinationConfig};
use crate::error::ApiError;
use crate::functions::{blocking, parse_body};
use crate::model::now_rfc3339;
use crate::query::Params;
use crate::state::Shared;

/// FunctionGraph's bounds and defaults.
pub const MIN_EVENT_AGE_S: u64 = 60;
/// The longest an event may wait (FunctionGraph: 86400 s).
pub const MAX_EVENT_AGE_S: u64 = 86_400;
/// Most retries of a failed event.
pub const MAX_RETRY_ATTEMPTS: u32 = 8;
/// Without a configuration: events wait up to a day and run once (a run
/// the server stopped in the middle of runs again regardless).
pub const DEFAULT_EVENT_AGE_S: u64 = MAX_EVENT_AGE_S;

/// Where outcomes go.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DestinationsConfig {
    /// After a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<DestinationConfig>,
    /// After the last failed attempt, or a discard for age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<DestinationConfig>,
}

/// The request body of `PUT .../async-invoke-config`.
#[derive(Debug, Clone, Deserialize)]
struct UpdateBody {
    max_async_event_age_in_seconds: Option<u64>,
    max_async_retry_attempts: Option<u32>,
    #[serde(default)]
    destination_config: Option<DestinationsConfig>,
    #[serde(default)]
    enable_async_status_log: Option<bool>,
    // LTS log group and stream: accepted and ignored (logs are kept by
    // fnhost itself; see the `logs` endpoint).
    #[serde(default)]
    log_group_id: Option<String>,
    #[serde(default)]
    log_stream_id: Option<String>,
    #[serde(default)]
    log_group_name: Option<String>,
    #[serde(default)]
    log_stream_name: Option<String>,
}

/// A stored configuration, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AsyncInvokeConfig {
    /// The URN it was set on (with its qualifier, if any).
    pub func_urn: String,
    /// Events older than this are discarded.
    pub max_async_event_age_in_seconds: u64,
    /// Retries after a failed attempt.
    pub max_async_retry_attempts: u32,
    /// Where outcomes go.
    #[serde(default)]
    pub destination_config: DestinationsConfig,
    /// Accepted for the SDK's sake: fnhost keeps every status anyway.
    #[serde(default)]
    pub enable_async_status_log: bool,
    /// When it was first set.
    pub created_time: String,
    /// When it last changed.
    pub last_modified: String,
}

/// What an invocation's run follows.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) max_age: Duration,
    pub(crate) retries: u32,
    pub(crate) on_success: Option<Destination>,
    pub(crate) on_failure: Option<Destination>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            max_age: Duration::from_secs(DEFAULT_EVENT_AGE_S),
            retries: 0,
            on_success: None,
            on_failure: None,
        }
    }
}

impl Policy {
    /// The policy of a stored configuration (its destinations were checked
    /// when it was set; one that no longer parses is left out, and logged).
    pub(crate) fn of(config: &AsyncInvokeConfig) -> Policy {
        let parse = |d: &Option<DestinationConfig>| {
            d.as_ref().and_then(|d| match Destination::parse(d) {
                Ok(d) => Some(d),
                Err(e) => {
                    log::warn!(target: "fnhost::async", "{}: destination ignored: {}", config.func_urn, e.message);
                    None
                }
            })
        };
        Policy {
            max_age: Duration::from_secs(config.max_async_event_age_in_seconds),
            retries: config.max_async_retry_attempts,
            on_success: parse(&config.destination_config.on_success),
            on_failure: parse(&config.destination_config.on_failure),
        }
    }
}

/// The store key of a URN's configuration (`name` or `name:qualifier`;
/// `latest` is the function itself), for an existing function.
fn key_of(state: &Shared, urn: &str) -> Result<String, ApiError> {
    let (_, r) = state.management.lookup(urn)?;
    Ok(match r.qualifier.as_deref() {
        None | Some("latest") => r.name,
        Some(_) => r.target(),
    })
}

/// The policy an invocation of `target` (of `function`) follows: its own
/// configuration, else the function's, else the defaults.
pub(crate) fn policy_for(state: &Shared, function: &str, target: &str) -> Policy {
    let store = state.management.store();
    let target = target.strip_suffix(":latest").unwrap_or(target);
    let config = store
        .async_config::<AsyncInvokeConfig>(target)
        .ok()
        .flatten()
        .or_else(|| store.async_config(function).ok().flatten());
    config.as_ref().map(Policy::of).unwrap_or_default()
}

/// `PUT .../functions/{urn}/async-invoke-config`
pub(crate) async fn update(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<AsyncInvokeConfig>, ApiError> {
    let body: UpdateBody = parse_body(&body)?;
    let key = key_of(&state, &urn)?;
    let age = body
        .max_async_event_age_in_seconds
        .unwrap_or(DEFAULT_EVENT_AGE_S);
    if !(MIN_EVENT_AGE_S..=MAX_EVENT_AGE_S).contains(&age) {
        return Err(ApiError::bad_request(format!(
            "max_async_event_age_in_seconds must be {MIN_EVENT_AGE_S} to {MAX_EVENT_AGE_S}, not {age}"
        )));
    }
    let retries = body.max_async_retry_attempts.unwrap_or(0);
    if retries > MAX_RETRY_ATTEMPTS {
        return Err(ApiError::bad_request(format!(
            "max_async_retry_attempts must be 0 to {MAX_RETRY_ATTEMPTS}, not {retries}"
        )));
    }
    let destinations = body.destination_config.unwrap_or_default();
    for d in [&destinations.on_success, &destinations.on_failure]
        .into_iter()
        .flatten()
    {
        let parsed = Destination::parse(d)?;
        parsed.check(&state)?;
    }
    let _ = (
        body.log_group_id,
        body.log_stream_id,
        body.log_group_name,
        body.log_stream_name,
    );
    let s = Shared::clone(&state);
    blocking(move || {
        let store = s.management.store();
        let now = now_rfc3339();
        let created = store
            .async_config::<AsyncInvokeConfig>(&key)
            .map_err(ApiError::store)?
            .map_or_else(|| now.clone(), |c| c.created_time);
        let config = AsyncInvokeConfig {
            func_urn: urn,
            max_async_event_age_in_seconds: age,
            max_async_retry_attempts: retries,
            destination_config: destinations,
            enable_async_status_log: body.enable_async_status_log.unwrap_or(false),
            created_time: created,
            last_modified: now,
        };
        store
            .put_async_config(&key, &config)
            .map_err(ApiError::store)?;
        Ok(Json(config))
    })
    .await
}

/// `GET .../functions/{urn}/async-invoke-config`
pub(crate) async fn show(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<Json<AsyncInvokeConfig>, ApiError> {
    let key = key_of(&state, &urn)?;
    let s = Shared::clone(&state);
    blocking(move || {
        s.management
            .store()
            .async_config(&key)
            .map_err(ApiError::store)?
            .map(Json)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "FSS.1051",
                    format!("`{key}` has no asynchronous invocation configuration"),
                )
            })
    })
    .await
}

/// `GET .../functions/{urn}/async-invoke-configs`: the configurations of
/// the function and of its versions and aliases.
pub(crate) async fn list(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    page: Params,
) -> Result<Json<Value>, ApiError> {
    let (record, _) = state.management.lookup(&urn)?;
    let start: usize = page.lenient("marker").unwrap_or(0);
    let limit: usize = page.lenient("limit").unwrap_or(100).clamp(1, 500);
    let s = Shared::clone(&state);
    blocking(move || {
        let store = s.management.store();
        let mut keys = vec![record.func_name.clone()];
        for v in s.management.versions(&record.func_name)? {
            keys.push(format!("{}:{}", record.func_name, v.version));
        }
        for a in s.management.aliases(&record.func_name)? {
            keys.push(format!("{}:{}", record.func_name, a.name));
        }
        let mut configs = Vec::new();
        for key in keys {
            if let Some(c) = store
                .async_config::<AsyncInvokeConfig>(&key)
                .map_err(ApiError::store)?
            {
                configs.push(c);
            }
        }
        let count = configs.len();
        let page: Vec<_> = configs.into_iter().skip(start).take(limit).collect();
        let next = (start + page.len()).min(count);
        Ok(Json(json!({
            "async_invoke_configs": page,
            "count": count,
            "page_info": {"next_marker": next, "previous_marker": start, "current_count": page.len()},
        })))
    })
    .await
}

/// `DELETE .../functions/{urn}/async-invoke-config`
pub(crate) async fn delete(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let key = key_of(&state, &urn)?;
    let s = Shared::clone(&state);
    blocking(move || {
        s.management
            .store()
            .delete_async_config(&key)
            .map_err(ApiError::store)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
