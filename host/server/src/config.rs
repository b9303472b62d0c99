//! How to run the server ([`ServeConfig`]) and why it could not start
//! ([`ServeError`]). Re-exported at the crate root.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::async_queue::AsyncSettings;
use crate::auth::{AccessKeys, SignaturePolicy};
use crate::function_logs;
use crate::limits::Limits;

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
    pub asynchronous: AsyncSettings,
    /// Bytes of recent invocation log lines kept per function (the `logs`
    /// endpoint); 0 keeps none.
    pub function_log_bytes: usize,
    /// Which hosts an event-source trigger's broker URL may name: loopback
    /// only by default (a key holder could otherwise make the server
    /// connect anywhere it reaches), or any.
    pub event_source_hosts: crate::async_queue::HttpDestinations,
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
            asynchronous: AsyncSettings::default(),
            function_log_bytes: function_logs::DEFAULT_BYTES_PER_FUNCTION,
            event_source_hosts: crate::async_queue::HttpDestinations::Loopback,
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
