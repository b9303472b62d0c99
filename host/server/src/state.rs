//! The server's shared state ([`AppState`], passed to every handler as
//! [`Shared`]): the components every handler and background task reaches,
//! and how they are opened from a [`ServeConfig`].

use std::sync::Arc;
use std::time::Duration;

use fnhost::dispatch::IoLane;
use fnhost::Runtime;

use crate::active_triggers::{ApigRoutes, Timers};
use crate::async_queue::AsyncQueue;
use crate::config::{ServeConfig, ServeError};
use crate::connection_counts::Counts;
use crate::function_logs::FunctionLogs;
use crate::gate::Gate;
use crate::invocation_metrics::Metrics;
use crate::management::Management;
use crate::package::{self, PackageStore};
use crate::propagation::Propagation;
use crate::store::Store;

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
    pub(crate) asynchronous: AsyncQueue,
    /// Recent invocation logs per function.
    pub(crate) logs: FunctionLogs,
    pub(crate) metrics: Metrics,
    pub(crate) timers: Timers,
    pub(crate) apig_routes: ApigRoutes,
    /// Where proven-short handlers run (on this server's executor).
    pub(crate) lane: Option<IoLane>,
    /// Open connections (for `/metrics`).
    pub(crate) connections: Arc<Counts>,
    /// Changes from other nodes (a shared store only).
    pub(crate) propagation: Propagation,
    /// Shutting down: `/readyz` says so, so load balancers stop sending.
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// This node's name towards brokers (a consumer's name in a Redis
    /// consumer group): the host's name and a digest of the data
    /// directory, the same after a restart, so that a restarted node
    /// finds the entries it had read and not acknowledged.
    pub(crate) node_name: String,
    /// Which hosts an event source's broker URL may name.
    pub(crate) event_source_hosts: crate::async_queue::HttpDestinations,
}

pub(crate) type Shared = Arc<AppState>;

/// `HOST-DIGEST`: the host's name and the first 8 hex digits of the data
/// directory's SHA-256.
fn node_name(data_dir: &std::path::Path) -> String {
    use sha2::Digest;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && h.len() <= 64)
        .unwrap_or_else(|| "fnhost".to_owned());
    let digest = sha2::Sha256::digest(data_dir.to_string_lossy().as_bytes());
    format!("{host}-{}", hex::encode(&digest[..4]))
}

impl AppState {
    /// The state in `config.data_dir` (created if missing), not yet restored.
    pub(crate) fn open(config: &ServeConfig, runtime: Runtime) -> Result<AppState, ServeError> {
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
            asynchronous: AsyncQueue::new(config.asynchronous.clone()),
            logs: FunctionLogs::new(config.function_log_bytes),
            metrics: Metrics::default(),
            timers: Timers::default(),
            apig_routes: ApigRoutes::default(),
            lane: config.io_lane.then(io_lane).flatten(),
            connections: Arc::default(),
            propagation: Propagation::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
            node_name: node_name(&config.data_dir),
            event_source_hosts: config.event_source_hosts,
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
