//! Management API handlers: functions, code, configuration, versions,
//! aliases and instance limits, over FunctionGraph's request and answer
//! shapes. Every change goes through [`Management`](crate::management):
//! deployed first (a failed deploy changes nothing), then persisted, under
//! its lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::management::Change;
use super::model::{AliasRecord, FunctionRecord, VersionRecord, RUNTIMES, SUCCESSFUL};
use super::package::Upload;
use super::state::Shared;
use crate::query::Params;
use fnhost::Alias;

/// Parses a JSON body into `T`, answering FunctionGraph's 400 shape.
pub(crate) fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed request body: {e}")))
}

/// Runs blocking work (loading libraries, initializers, SQLite) off the
/// async executor.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?
}

fn default_package() -> String {
    "default".into()
}

/// A package in a request body: its base64 borrowed from the body (a
/// package of 13.5 MB is 18 MB of base64, and JSON escapes none of it).
#[derive(Deserialize)]
struct FuncCode<'a> {
    #[serde(default, borrow)]
    file: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CreateBody<'a> {
    func_name: String,
    #[serde(default = "default_package")]
    package: String,
    runtime: String,
    handler: String,
    memory_size: u32,
    timeout: u32,
    #[serde(default)]
    code_type: Option<String>,
    #[serde(default, borrow)]
    func_code: Option<FuncCode<'a>>,
    #[serde(default)]
    user_data: Option<String>,
    #[serde(default)]
    initializer_handler: Option<String>,
    #[serde(default)]
    initializer_timeout: Option<u32>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    isolation: Option<fnhost::Isolation>,
    /// The sandbox's declared capabilities (process isolation).
    #[serde(default)]
    sandbox: Option<fnhost::SandboxPolicy>,
    /// The host functions it may call (none unless listed).
    #[serde(default)]
    host_functions: Option<Vec<String>>,
    /// Invocations one instance serves at once (default 1).
    #[serde(default)]
    concurrent_num: Option<u32>,
}

/// The package of a create or code update, decoded and hashed.
fn decode_package(code_type: Option<&str>, code: Option<&FuncCode>) -> Result<Upload, ApiError> {
    if let Some(t) = code_type {
        if t != "zip" {
            return Err(ApiError::bad_request(format!(
                "code_type `{t}` is not supported; use zip"
            )));
        }
    }
    let file = code
        .and_then(|c| c.file.as_deref())
        .ok_or_else(|| ApiError::bad_request("func_code.file (a base64 zip) is required"))?;
    Upload::decode_base64(file)
        .map_err(|e| ApiError::bad_request(format!("func_code.file is not base64: {e}")))
}

/// `names` without repetitions, in their first order.
fn distinct(mut names: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

fn check_runtime(runtime: &str) -> Result<(), ApiError> {
    if RUNTIMES.contains(&runtime) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "runtime `{runtime}` is not supported; use {}",
            RUNTIMES.join(" or ")
        )))
    }
}

/// Changes a function's record with `edit`, deploys the result and persists
/// it, serialized with every other change; a failure changes nothing.
async fn change(
    state: &Shared,
    urn: &str,
    edit: impl FnOnce(&mut FunctionRecord) -> Result<(), ApiError> + Send + 'static,
) -> Result<FunctionRecord, ApiError> {
    let changing = state.management.begin_urn(urn).await?;
    let (mut record, _) = changing.management().lookup(urn)?;
    edit(&mut record)?;
    changing.management().check_policy(&record)?;
    blocking(move || changing.apply(record, None, Change::Update)).await
}

/// `POST /v2/{project_id}/fgs/functions`
pub(crate) async fn create(
    State(state): State<Shared>,
    Path(project_id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    // Parsed and decoded on a blocking thread: a large package takes tens
    // of milliseconds.
    let (record, zip) = blocking(move || {
        let body: CreateBody = parse_body(&body)?;
        check_runtime(&body.runtime)?;
        let zip = decode_package(body.code_type.as_deref(), body.func_code.as_ref())?;
        let record = FunctionRecord {
            project_id,
            func_name: body.func_name,
            package: body.package,
            runtime: body.runtime,
            handler: body.handler,
            memory_size: body.memory_size,
            timeout: body.timeout,
            user_data: body.user_data.unwrap_or_default(),
            initializer_handler: body.initializer_handler.unwrap_or_default(),
            initializer_timeout: body.initializer_timeout.unwrap_or(0),
            description: body.description.unwrap_or_default(),
            digest: String::new(),
            code_size: 0,
            max_instance_num: 0,
            reserved_instance_count: 0,
            concurrent_num: body.concurrent_num.unwrap_or(0),
            isolation: body.isolation.unwrap_or_default(),
            sandbox: body.sandbox.unwrap_or_default(),
            host_functions: distinct(body.host_functions.unwrap_or_default()),
            kv_space: String::new(),
            created_ms: 0,
            last_modified: String::new(),
            last_update_status: SUCCESSFUL.to_owned(),
            last_update_status_reason: String::new(),
            serving: None,
        };
        Ok((record, zip))
    })
    .await?;
    state.management.check_policy(&record)?;
    let changing = state.management.begin(&record.func_name).await;
    let record = blocking(move || changing.apply(record, Some(zip), Change::Create)).await?;
    Ok(Json(record.to_json("latest")))
}

/// `GET /v2/{project_id}/fgs/functions`
pub(crate) async fn list(State(state): State<Shared>, q: Params) -> Json<Value> {
    let start: usize = q.lenient("marker").unwrap_or(0);
    let max: usize = q.lenient("maxitems").unwrap_or(400).clamp(1, 400);
    let (count, records) = state.management.records_page(start, max);
    let page: Vec<Value> = records.iter().map(|r| r.to_json("latest")).collect();
    let next = if start + page.len() < count {
        start + page.len()
    } else {
        count
    };
    Json(json!({"functions": page, "next_marker": next, "count": count}))
}

/// `GET .../functions/{urn}/config`
pub(crate) async fn show_config(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (record, r) = state.management.lookup(&urn)?;
    match r.qualifier.as_deref() {
        None | Some("latest") => Ok(Json(record.to_json("latest"))),
        Some(v) => Ok(Json(
            state.management.version_record(&record, v)?.to_json(v),
        )),
    }
}

#[derive(Deserialize)]
struct UpdateConfigBody {
    #[serde(default)]
    runtime: Option<String>,
    #[serde(default)]
    handler: Option<String>,
    #[serde(default)]
    memory_size: Option<u32>,
    #[serde(default)]
    timeout: Option<u32>,
    #[serde(default)]
    user_data: Option<String>,
    #[serde(default)]
    initializer_handler: Option<String>,
    #[serde(default)]
    initializer_timeout: Option<u32>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    isolation: Option<fnhost::Isolation>,
    #[serde(default)]
    sandbox: Option<fnhost::SandboxPolicy>,
    #[serde(default)]
    host_functions: Option<Vec<String>>,
    #[serde(default)]
    concurrent_num: Option<u32>,
}

/// `PUT .../functions/{urn}/config`
pub(crate) async fn update_config(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: UpdateConfigBody = parse_body(&body)?;
    let record = change(&state, &urn, move |record| {
        if let Some(runtime) = body.runtime {
            check_runtime(&runtime)?;
            record.runtime = runtime;
        }
        if let Some(v) = body.handler {
            record.handler = v;
        }
        if let Some(v) = body.memory_size {
            record.memory_size = v;
        }
        if let Some(v) = body.timeout {
            record.timeout = v;
        }
        if let Some(v) = body.user_data {
            record.user_data = v;
        }
        if let Some(v) = body.initializer_handler {
            record.initializer_handler = v;
        }
        if let Some(v) = body.initializer_timeout {
            record.initializer_timeout = v;
        }
        if let Some(v) = body.description {
            record.description = v;
        }
        if let Some(v) = body.isolation {
            record.isolation = v;
        }
        if let Some(v) = body.sandbox {
            record.sandbox = v;
        }
        if let Some(v) = body.host_functions {
            record.host_functions = distinct(v);
        }
        if let Some(v) = body.concurrent_num {
            record.concurrent_num = v;
        }
        Ok(())
    })
    .await?;
    Ok(Json(record.to_json("latest")))
}

/// `GET .../functions/{urn}/code`
pub(crate) async fn show_code(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (record, _) = state.management.lookup(&urn)?;
    let zip = state
        .management
        .packages()
        .zip_bytes(&record.digest)
        .map_err(|e| ApiError::internal(format!("code package unreadable: {e}")))?;
    let mut v = record.to_json("latest");
    v["func_code"] =
        json!({"file": base64::engine::general_purpose::STANDARD.encode(zip), "link": ""});
    Ok(Json(v))
}

#[derive(Deserialize)]
struct UpdateCodeBody<'a> {
    #[serde(default)]
    code_type: Option<String>,
    #[serde(default, borrow)]
    func_code: Option<FuncCode<'a>>,
}

/// `PUT .../functions/{urn}/code`: hot swap.
pub(crate) async fn update_code(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let zip = blocking(move || {
        let body: UpdateCodeBody = parse_body(&body)?;
        decode_package(body.code_type.as_deref(), body.func_code.as_ref())
    })
    .await?;
    let changing = state.management.begin_urn(&urn).await?;
    let (record, _) = changing.management().lookup(&urn)?;
    crate::management::Management::refuse_watched(&record)?;
    let record = blocking(move || changing.apply(record, Some(zip), Change::Update)).await?;
    Ok(Json(record.to_json("latest")))
}

/// `DELETE .../functions/{urn}`
pub(crate) async fn delete(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    let changing = state.management.begin_urn(&urn).await?;
    let (record, _) = changing.management().lookup(&urn)?;
    crate::management::Management::refuse_watched(&record)?;
    state.timers.stop_function(&state, &record.func_name);
    let s = Arc::clone(&state);
    blocking(move || {
        let deleted = changing.delete_function(&record.func_name);
        s.logs.forget(&record.func_name);
        s.metrics.activity.forget(&record.func_name);
        s.apig_routes.reload(&s);
        deleted
    })
    .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct PublishBody {
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `POST .../functions/{urn}/versions`
pub(crate) async fn publish_version(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: PublishBody = if body.is_empty() {
        PublishBody {
            digest: None,
            version: None,
            description: None,
        }
    } else {
        parse_body(&body)?
    };
    check_description(body.description.as_deref())?;
    let changing = state.management.begin_urn(&urn).await?;
    let (record, _) = changing.management().lookup(&urn)?;
    let (record, version) = blocking(move || {
        let version = changing.publish_version(
            &record,
            body.version.as_deref(),
            &body.description.unwrap_or_default(),
            body.digest.as_deref(),
        )?;
        Ok((record, version))
    })
    .await?;
    Ok(Json(record.to_json(&version)))
}

/// `GET .../functions/{urn}/versions`
pub(crate) async fn list_versions(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (record, _) = state.management.lookup(&urn)?;
    let versions: Vec<VersionRecord> = state.management.versions(&record.func_name)?;
    let mut list = vec![record.to_json("latest")];
    list.extend(versions.iter().map(|v| {
        let mut j = v.function.to_json(&v.version);
        j["version_description"] = json!(v.description);
        j
    }));
    let count = list.len();
    Ok(Json(
        json!({"versions": list, "next_marker": count, "count": count}),
    ))
}

#[derive(Deserialize)]
struct AliasBody {
    #[serde(default)]
    name: Option<String>,
    version: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    additional_version_weights: Option<BTreeMap<String, u32>>,
}

/// Refuses a version's or alias's description longer than a function's may be.
fn check_description(description: Option<&str>) -> Result<(), ApiError> {
    match description {
        Some(d) if d.len() > crate::model::MAX_DESCRIPTION_BYTES => {
            Err(ApiError::bad_request(format!(
                "description is {} bytes, more than the {} allowed",
                d.len(),
                crate::model::MAX_DESCRIPTION_BYTES
            )))
        }
        _ => Ok(()),
    }
}

fn alias_of(name: String, body: AliasBody) -> Result<Alias, ApiError> {
    check_description(body.description.as_deref())?;
    Ok(Alias {
        name,
        version: body.version,
        additional_version_weights: body.additional_version_weights.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
    })
}

/// `POST .../functions/{urn}/aliases`
pub(crate) async fn create_alias(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let mut body: AliasBody = parse_body(&body)?;
    let name = body
        .name
        .take()
        .ok_or_else(|| ApiError::bad_request("name is required"))?;
    let changing = state.management.begin_urn(&urn).await?;
    let (record, _) = changing.management().lookup(&urn)?;
    let stored = changing.put_alias(&record, alias_of(name, body)?, false)?;
    Ok(Json(stored.to_json(&record)))
}

/// `GET .../functions/{urn}/aliases`
pub(crate) async fn list_aliases(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (record, _) = state.management.lookup(&urn)?;
    let aliases: Vec<AliasRecord> = state.management.aliases(&record.func_name)?;
    Ok(Json(Value::Array(
        aliases.iter().map(|a| a.to_json(&record)).collect(),
    )))
}

fn find_alias(
    state: &Shared,
    record: &FunctionRecord,
    alias: &str,
) -> Result<AliasRecord, ApiError> {
    let aliases: Vec<AliasRecord> = state.management.aliases(&record.func_name)?;
    aliases
        .into_iter()
        .find(|a| a.name == alias)
        .ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "FSS.1053",
                format!("alias `{alias}` not found"),
            )
        })
}

/// `GET .../functions/{urn}/aliases/{alias}`
pub(crate) async fn show_alias(
    State(state): State<Shared>,
    Path((_, urn, alias)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (record, _) = state.management.lookup(&urn)?;
    Ok(Json(find_alias(&state, &record, &alias)?.to_json(&record)))
}

/// `PUT .../functions/{urn}/aliases/{alias}`
pub(crate) async fn update_alias(
    State(state): State<Shared>,
    Path((_, urn, alias)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: AliasBody = parse_body(&body)?;
    let changing = state.management.begin_urn(&urn).await?;
    let (record, _) = changing.management().lookup(&urn)?;
    let stored = changing.put_alias(&record, alias_of(alias, body)?, true)?;
    Ok(Json(stored.to_json(&record)))
}

/// `DELETE .../functions/{urn}/aliases/{alias}`
pub(crate) async fn delete_alias(
    State(state): State<Shared>,
    Path((_, urn, alias)): Path<(String, String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    let changing = state.management.begin_urn(&urn).await?;
    let (record, _) = changing.management().lookup(&urn)?;
    changing.delete_alias(&record, &alias)?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct MaxInstanceBody {
    max_instance_num: u32,
}

/// `PUT .../functions/{urn}/config-max-instance`
pub(crate) async fn update_max_instances(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: MaxInstanceBody = parse_body(&body)?;
    let record = change(&state, &urn, move |record| {
        record.max_instance_num = body.max_instance_num;
        Ok(())
    })
    .await?;
    Ok(Json(record.to_json("latest")))
}

#[derive(Deserialize)]
struct ReservedBody {
    count: u32,
}

/// `PUT .../functions/{urn}/reservedinstances`
pub(crate) async fn update_reserved_instances(
    State(state): State<Shared>,
    Path((_, urn)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: ReservedBody = parse_body(&body)?;
    let count = body.count;
    change(&state, &urn, move |record| {
        record.reserved_instance_count = count;
        Ok(())
    })
    .await?;
    Ok(Json(json!({"count": count})))
}
