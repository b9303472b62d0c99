//! `fnhost serve`: the FunctionGraph-compatible HTTP API on tokio + axum.
//!
//! Management (functions, code, configuration, versions, aliases, instance
//! limits) and invocation under `/v2/{project_id}/fgs/...` with the paths,
//! fields and headers the official SDK uses; the APIG gateway under
//! paths of active APIG triggers (and, without access keys or with
//! `apig_any_function`, `/apig/{function}/...`); `/healthz`, `/readyz` and
//! `/metrics`. Every request first passes [`gate`]; connections are
//! accepted and timed out by [`connections`].
//!
//! State lives in the data directory: `state.db` (SQLite, see
//! [`crate::store`]) and `code/` (content-addressed packages). On start every
//! function, version and alias is restored and deployed.
//!
//! The modules form layers, each using only those below it: components
//! that know nothing of the server's state (the store, management, the
//! gate, auth, limits, ..., and the in-memory parts of the state in
//! `async_queue`, `function_logs`, `invocation_metrics`, `active_triggers`
//! and `connection_counts`, with `config`); then `state` (`AppState`,
//! handed to every handler as `Shared`); then the handlers and services
//! that take it (`functions`, `invoke`, `apig`, `asynchronous`, `logs`,
//! `metrics`, `monitoring`, `triggers`, `console`, `cluster`, `directory`,
//! `front`, `connections`); and this root, which routes and serves.
//! `scripts/module-cycles.py` keeps them free of cycles.

mod access_log;
mod active_triggers;
mod activity;
pub(crate) mod apig;
mod async_queue;
pub mod asynchronous;
pub mod auth;
mod cluster;
mod config;
mod connection_counts;
mod connections;
pub(crate) mod console;
mod deployments;
mod directory;
pub(crate) mod error;
mod event_sources;
mod front;
mod function_logs;
mod functions;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod gate;
pub mod host_functions;
mod invocation_metrics;
mod invoke;
pub mod limits;
mod link;
pub(crate) mod logs;
mod management;
mod metrics;
pub(crate) mod model;
mod monitoring;
pub(crate) mod package;
mod propagation;
mod query;
mod state;
pub(crate) mod store;
pub mod telemetry;
pub(crate) mod trace;
pub mod triggers;
pub(crate) mod urn;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use self::state::{AppState, Shared};
use fnhost::Runtime;

pub use self::config::{ServeConfig, ServeError};

fn router(state: Shared) -> Router {
    let api = Router::new()
        .route(
            "/v2/{project_id}/fgs/functions",
            post(functions::create).get(functions::list),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}",
            axum::routing::delete(functions::delete),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/config",
            get(functions::show_config).put(functions::update_config),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/code",
            get(functions::show_code).put(functions::update_code),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/versions",
            post(functions::publish_version).get(functions::list_versions),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/aliases",
            post(functions::create_alias).get(functions::list_aliases),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/aliases/{alias}",
            get(functions::show_alias)
                .put(functions::update_alias)
                .delete(functions::delete_alias),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/config-max-instance",
            put(functions::update_max_instances),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/reservedinstances",
            put(functions::update_reserved_instances),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/invocations",
            post(invoke::sync),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/invocations-async",
            post(asynchronous::invoke),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/async-invocations",
            get(asynchronous::list),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/cancel",
            post(asynchronous::cancel),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/async-invoke-config",
            get(asynchronous::config::show)
                .put(asynchronous::config::update)
                .delete(asynchronous::config::delete),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/async-invoke-configs",
            get(asynchronous::config::list),
        )
        .route("/v2/{project_id}/fgs/functions/{urn}/logs", get(logs::read))
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/activity",
            get(monitoring::function),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{urn}/deployments",
            get(monitoring::deployments),
        )
        .route("/v2/{project_id}/fgs/activity", get(monitoring::overview))
        .route(
            "/v2/{project_id}/fgs/triggers/{urn}",
            post(triggers::create).get(triggers::list),
        )
        .route(
            "/v2/{project_id}/fgs/triggers/{urn}/{trigger_type}/{trigger_id}",
            get(triggers::show)
                .put(triggers::update)
                .delete(triggers::delete),
        );
    let mut app = Router::new()
        .merge(api)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi))
        .route("/console", get(console::redirect))
        .route("/console/", get(console::index))
        .route("/console/{file}", get(console::file))
        .route("/apig/{function}", axum::routing::any(apig::route))
        .route("/apig/{function}/", axum::routing::any(apig::route))
        .route("/apig/{function}/{*path}", axum::routing::any(apig::route))
        .fallback(apig::by_trigger_path);
    if log::log_enabled!(target: "fnhost::http", log::Level::Info) {
        app = app.layer(middleware::from_fn(access_log::log_request));
    }
    // Bodies are read whole by the gate, so that a refusal answers in
    // FunctionGraph's error shape (axum's own rejection is plain text).
    app.layer(middleware::from_fn_with_state(Arc::clone(&state), admit))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// The API's OpenAPI 3 description (`host/server/api/openapi.json`).
pub const OPENAPI: &str = include_str!("../api/openapi.json");

/// `GET /openapi.json`.
async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

/// Runs a routed request through the [`gate`], and hands it on with its
/// body in memory (holding its upload slot until it is answered).
async fn admit(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let class = gate::classify(request.method(), request.uri().path());
    let (parts, body) = request.into_parts();
    match state.gate.admit(&parts, body, class).await {
        Ok(admitted) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(admitted.body)))
                .await;
            drop(admitted.upload);
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Readiness: 503 while the node drains for shutdown and, in a cluster,
/// until it has applied what the shared store holds.
async fn readyz(axum::extract::State(state): axum::extract::State<Shared>) -> Response {
    use std::sync::atomic::Ordering;
    let not_ready =
        |why: &'static str| (axum::http::StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    if state.draining.load(Ordering::Acquire) {
        return not_ready("draining");
    }
    if state.management.store().is_shared() && !state.propagation.caught_up() {
        return not_ready("catching up with the shared store");
    }
    "ready".into_response()
}

/// Runs the server until SIGTERM or Ctrl-C, then drains: stops accepting,
/// lets in-flight requests and running asynchronous invocations finish (up
/// to the grace period), and returns; asynchronous invocations still
/// waiting stay in the store for the next start.
pub async fn serve(config: ServeConfig, runtime: Runtime) -> Result<(), ServeError> {
    for layer in fnhost::sandbox::check(&runtime.config().sandbox) {
        if layer.available {
            log::info!(target: "fnhost::sandbox", "{}: {}", layer.name, layer.detail);
        } else {
            log::warn!(target: "fnhost::sandbox", "{}: {}", layer.name, layer.detail);
        }
    }
    if config.min_isolation != fnhost::Isolation::Inline {
        log::info!(target: "fnhost::sandbox", "isolation floor: {:?}", config.min_isolation);
    }
    if config.access_keys.is_empty() && !config.listen.ip().is_loopback() {
        return Err(ServeError::Config(format!(
            "refusing to listen on {} without access keys: configure keys, or listen on a loopback address",
            config.listen
        )));
    }
    if config.database_url.is_some() && config.functions_dir.is_some() {
        return Err(ServeError::Config(
            "--functions-dir is a single-node feature: it cannot be used with --database-url \
             (deploy through the API, which every node of the cluster shares)"
                .into(),
        ));
    }
    config
        .limits
        .validate()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let state = Arc::new(AppState::open(&config, runtime)?);
    // Before any function loads: an initializer may call them.
    let _host_functions = host_functions::register(&state.runtime, &state);
    // Before anything serves: one change restores every function.
    let changing = state.management.begin("(restore)").await;
    tokio::task::spawn_blocking(move || {
        changing.restore()?;
        Ok::<_, ServeError>(())
    })
    .await
    .map_err(|e| ServeError::Config(e.to_string()))??;
    if let Some(url) = &config.database_url {
        cluster::start(&state, url.clone());
    }
    triggers::restore(&state);
    let _watcher = match &config.functions_dir {
        Some(dir) => Some(directory::watch(
            &state,
            dir,
            config.functions_isolation.at_least(config.min_isolation),
        )?),
        None => None,
    };
    let workers = asynchronous::start(&state)
        .map_err(|e| ServeError::Config(format!("the asynchronous queue: {}", e.message)))?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let bound = listener.local_addr()?;
    if config.access_keys.is_empty() {
        log::warn!(target: "fnhost::server", "no access keys configured: requests are not authenticated (loopback only)");
    }
    // Never the database URL itself: it may carry a password.
    println!(
        "fnhost serving on http://{bound} (data in {}{})",
        config.data_dir.display(),
        if config.database_url.is_some() {
            ", state in PostgreSQL"
        } else {
            ""
        }
    );
    let descriptors = limits::raise_descriptor_limit();
    let cap = config.limits.connection_cap(descriptors);
    log::info!(
        target: "fnhost::server",
        "serving up to {cap} connections at once, {} more for health checks and management ({descriptors} descriptors)",
        config.limits.priority_connections
    );
    let app = front::Front::new(Arc::clone(&state), router(Arc::clone(&state)));
    // The grace period runs from the signal; connections still open at its
    // end (a handler that never returns blocks its connection's task) are
    // left behind.
    let deadline = Arc::new(std::sync::OnceLock::new());
    let signalled = Arc::new(tokio::sync::Notify::new());
    let server = connections::serve(
        listener,
        app,
        Arc::new(config.limits.clone()),
        cap,
        Arc::clone(&state.connections),
        {
            let (deadline, signalled) = (Arc::clone(&deadline), Arc::clone(&signalled));
            let grace = config.shutdown_grace;
            let state = Arc::clone(&state);
            async move {
                shutdown_signal().await;
                state
                    .draining
                    .store(true, std::sync::atomic::Ordering::Release);
                let _ = deadline.set(tokio::time::Instant::now() + grace);
                signalled.notify_one();
            }
        },
    );
    let grace_over = async {
        signalled.notified().await;
        if let Some(deadline) = deadline.get() {
            tokio::time::sleep_until(*deadline).await;
        }
    };
    tokio::select! {
        () = server => {},
        () = grace_over => {
            log::warn!(target: "fnhost::server", "shutdown grace period over with connections still open; leaving them");
        }
    }
    log::info!(target: "fnhost::server", "stopped accepting; asynchronous invocations still waiting stay queued for the next start");
    state.asynchronous.close();
    let deadline = deadline
        .get()
        .copied()
        .unwrap_or_else(|| tokio::time::Instant::now() + config.shutdown_grace);
    let drained = tokio::time::timeout_at(deadline, async {
        for w in workers {
            let _ = w.await;
        }
    })
    .await;
    if drained.is_err() {
        log::warn!(target: "fnhost::server", "shutdown grace period over with asynchronous invocations running; they run again at the next start");
    }
    telemetry::flush();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod openapi_tests {
    use std::collections::BTreeSet;

    /// `(METHOD, path)` of every `.route(...)` in this file's router, with
    /// axum's `{*rest}` written as OpenAPI's `{rest}` and `any` as the
    /// methods the document lists for the gateway.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("lib.rs");
        let router = &source[source.find("fn router(").unwrap()..];
        let router = &router[..router.find("\n}\n").unwrap()];
        let mut out = BTreeSet::new();
        for call in router.split(".route(").skip(1) {
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(call.len(), |(i, _)| i);
            let call = &call[..end];
            let path = call.split('"').nth(1).unwrap().replace("{*", "{");
            let handlers = &call[call.find(',').unwrap()..];
            for word in handlers.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
                let methods: &[&str] = match word {
                    "get" => &["GET"],
                    "post" => &["POST"],
                    "put" => &["PUT"],
                    "delete" => &["DELETE"],
                    "any" => &["GET", "POST", "PUT", "DELETE", "PATCH"],
                    _ => &[],
                };
                for m in methods {
                    out.insert((m.to_string(), path.clone()));
                }
            }
        }
        out
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_routed() {
        let (routed, documented) = (routed(), documented());
        assert!(routed.len() > 30, "{routed:?}");
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "not in openapi.json: {undocumented:?}; documented but not routed: {unrouted:?}"
        );
    }
}
