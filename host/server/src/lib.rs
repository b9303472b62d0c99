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

mod activity;
pub mod apig;
pub mod asynchronous;
pub mod auth;
mod cluster;
mod connections;
pub mod console;
mod deployments;
mod directory;
pub mod error;
mod front;
mod functions;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod gate;
mod invoke;
pub mod limits;
mod link;
pub mod logs;
mod management;
mod metrics;
pub mod model;
mod monitoring;
pub mod package;
mod propagation;
mod query;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod triggers;
pub mod urn;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use self::auth::{AccessKeys, SignaturePolicy};
use self::gate::Gate;
use self::limits::Limits;
use self::management::Management;
use self::package::PackageStore;
use crate::store::Store;
use fnhost::dispatch::IoLane;
use fnhost::Runtime;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (default `127.0.0.1:8000`).
    pub listen: SocketAddr,
    /// Where state and code packages live (with `database_url`: the
    /// node's local caches only).
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://...`) shared by every node of a
    /// cluster, instead of the SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Object storage every node of a cluster keeps the code packages in
    /// (`s3://BUCKET/PREFIX` or `file:///DIR`); `data_dir` then holds
    /// this node's cache of them.
    pub package_store: Option<String>,
    /// Access keys that may sign requests; empty: no authentication, and
    /// only loopback addresses are allowed.
    pub access_keys: AccessKeys,
    /// How long shutdown waits for in-flight work.
    pub shutdown_grace: Duration,
    /// A directory whose `NAME.so` files are deployed (and redeployed on
    /// change) as functions `NAME` in package `default`.
    pub functions_dir: Option<PathBuf>,
    /// Where the handlers of the `functions_dir` functions run.
    pub functions_isolation: fnhost::Isolation,
    /// The isolation floor for every function (`--min-isolation`): a
    /// create or update asking for less is refused, functions that default
    /// lower run at it. `Inline` (the default): no floor. No pre-flight
    /// proves in-process code harmless; `Process` is the answer for code
    /// the operator did not write.
    pub min_isolation: fnhost::Isolation,
    /// Run in-process handlers that have proven short on the HTTP I/O
    /// threads (see [`fnhost::dispatch`]); `false` (the default): always on
    /// worker threads. Opt-in: in interleaved A/B rounds it won neither
    /// requests per second nor p99 beyond the rounds' spread (the book:
    /// docs/src/performance/http.md).
    pub io_lane: bool,
    /// Limits on request bodies, time and connections.
    pub limits: Limits,
    /// What signatures may leave out (by default: nothing).
    pub signature_policy: SignaturePolicy,
    /// Serve every function anonymously under `/apig/{function}/...` even
    /// with access keys configured (without keys it always is).
    pub apig_any_function: bool,
    /// `/metrics` needs a signature (when access keys are configured).
    pub metrics_auth: bool,
    /// The shortest `Rate` a timer trigger may have (FunctionGraph's: 1
    /// minute).
    pub min_timer_rate: Duration,
    /// Delete the runtime's cached library copies that no generation of
    /// this server uses, after changes and at start: only for a cache
    /// directory that is this server's alone (`fnhost serve` gives each
    /// data directory its own by default).
    pub prune_code_cache: bool,
    /// The asynchronous queue: workers, capacity, record pruning, retry
    /// backoff, HTTP destinations.
    pub asynchronous: asynchronous::AsyncSettings,
    /// Bytes of recent invocation log lines kept per function (the `logs`
    /// endpoint); 0 keeps none.
    pub function_log_bytes: usize,
}

impl ServeConfig {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: data_dir.into(),
            database_url: None,
            package_store: None,
            access_keys: AccessKeys::default(),
            shutdown_grace: Duration::from_secs(30),
            functions_dir: None,
            functions_isolation: fnhost::Isolation::default(),
            min_isolation: fnhost::Isolation::Inline,
            io_lane: false,
            limits: Limits::default(),
            signature_policy: SignaturePolicy::default(),
            apig_any_function: false,
            metrics_auth: false,
            min_timer_rate: Duration::from_secs(60),
            prune_code_cache: false,
            asynchronous: asynchronous::AsyncSettings::default(),
            function_log_bytes: logs::DEFAULT_BYTES_PER_FUNCTION,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Refusing an unsafe configuration.
    #[error("{0}")]
    Config(String),
    /// I/O (binding, data directory).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The state store.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The server's shared state, passed to every handler.
pub(crate) struct AppState {
    pub(crate) runtime: Runtime,
    /// Functions' records and every change to them.
    pub(crate) management: Arc<Management>,
    /// What every request passes before a handler sees it.
    pub(crate) gate: Gate,
    /// `/apig/{function}/...` serves every function.
    pub(crate) apig_any_function: bool,
    /// The shortest timer `Rate`.
    pub(crate) min_timer_rate: Duration,
    pub(crate) asynchronous: asynchronous::AsyncQueue,
    /// Recent invocation logs per function.
    pub(crate) logs: logs::FunctionLogs,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) timers: triggers::Timers,
    pub(crate) apig_routes: triggers::ApigRoutes,
    /// Where proven-short handlers run (on this server's executor).
    pub(crate) lane: Option<IoLane>,
    /// Open connections (for `/metrics`).
    pub(crate) connections: Arc<connections::Counts>,
    /// Changes from other nodes (a shared store only).
    pub(crate) propagation: propagation::Propagation,
    /// Shutting down: `/readyz` says so, so load balancers stop sending.
    pub(crate) draining: std::sync::atomic::AtomicBool,
}

pub(crate) type Shared = Arc<AppState>;

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
        app = app.layer(middleware::from_fn(log_request));
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

/// One structured line per request (target `fnhost::http`, info level):
/// method, path, status, duration and the invocation's request id.
async fn log_request(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    log_response(&method, &path, &response, started);
    response
}

fn log_response(
    method: &axum::http::Method,
    path: &str,
    response: &Response,
    started: std::time::Instant,
) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    };
    let (request_id, trace_id) = (header("x-cff-request-id"), header("x-cff-trace-id"));
    log::info!(
        target: "fnhost::http",
        request_id = request_id,
        trace_id = trace_id;
        "method={method} path={path} status={} duration_ms={:.3} request_id={request_id}",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
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

impl AppState {
    /// The state in `config.data_dir` (created if missing), not yet restored.
    fn open(config: &ServeConfig, runtime: Runtime) -> Result<AppState, ServeError> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = match &config.database_url {
            Some(url) => Store::connect(url)?,
            None => Store::open(&config.data_dir.join("state.db"))?,
        };
        let mut packages = PackageStore::new(config.data_dir.join("code"))?;
        if let Some(url) = &config.package_store {
            packages = packages.with_remote(package::remote::RemotePackages::open(url)?);
        }
        Ok(AppState {
            management: Arc::new(
                Management::new(runtime.clone(), store, packages, config.prune_code_cache)
                    .with_min_isolation(config.min_isolation),
            ),
            runtime,
            gate: Gate::new(
                config.access_keys.clone(),
                config.signature_policy,
                config.limits.clone(),
                config.metrics_auth,
            ),
            apig_any_function: config.apig_any_function || config.access_keys.is_empty(),
            min_timer_rate: config.min_timer_rate,
            asynchronous: asynchronous::AsyncQueue::new(config.asynchronous.clone()),
            logs: logs::FunctionLogs::new(config.function_log_bytes),
            metrics: metrics::Metrics::default(),
            timers: triggers::Timers::default(),
            apig_routes: triggers::ApigRoutes::default(),
            lane: config.io_lane.then(io_lane).flatten(),
            connections: Arc::default(),
            propagation: propagation::Propagation::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// A lane on the current executor, one slot fewer than it has threads: a
/// thread stays free to answer callers even if every lane call hangs.
fn io_lane() -> Option<IoLane> {
    let executor = tokio::runtime::Handle::current();
    let slots = executor.metrics().num_workers().saturating_sub(1);
    let lane = IoLane::new(slots, move |job| drop(executor.spawn(async move { job() })));
    match &lane {
        Some(lane) => {
            log::info!(target: "fnhost::server", "short handlers run on the I/O threads ({} at once)", lane.slots())
        }
        None => {
            log::info!(target: "fnhost::server", "handlers run on worker threads only (no I/O-thread lane)")
        }
    }
    lane
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
