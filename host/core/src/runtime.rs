//! [`Runtime`]: what every function of a process shares: the loader and its
//! content-addressed code cache, the worker pool, limits and counters.

use std::path::Path;
use std::sync::Arc;

use crate::code_cache::CodeCache;
use crate::config::{FunctionConfig, RuntimeConfig};
use crate::error::LoadError;
use crate::function::Function;
use crate::generation::build::build_generation;
use crate::host_call::{HostFunction, HostFunctions, RegisterError};
use crate::isolation::preflight::Preflight;
use crate::loader::{Library, LibraryReport, Loader};
use crate::pool::WorkerPool;
use crate::registry::{GenerationStats, Registry};
use crate::shared::{Counters, Shared};

/// Counters of a runtime, readable at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Invocations answered (success or failure).
    pub invocations: u64,
    /// Invocations and initializers answered with `timeout`.
    pub timeouts: u64,
    /// Handlers still running past their deadline right now.
    pub runaway_invocations: usize,
    /// Worker threads alive.
    pub worker_threads: usize,
    /// Worker threads waiting for work.
    pub idle_workers: usize,
    /// Distinct libraries mapped (kept for the life of the process).
    pub libraries_mapped: usize,
    /// Worker processes alive in this process, across every runtime
    /// (pre-flights included).
    pub worker_processes: usize,
    /// Pre-flights of new libraries run by this runtime.
    pub preflights: u64,
    /// Of those, how many ran on a pre-started checker (the rest started
    /// their worker process on the spot).
    pub preflights_on_spare: u64,
    /// Whether a pre-started checker is waiting for the next pre-flight.
    pub preflight_spare_ready: bool,
    /// Whether a sandboxed worker process is parked, waiting to become the
    /// next sandboxed start's (see the book: docs/src/isolation/sandbox.md).
    pub parked_worker_ready: bool,
    /// Sandboxed worker starts that took a parked worker, in this process.
    pub parked_worker_starts: u64,
    /// The registry's generations: live, draining, retired.
    pub generations: GenerationStats,
}

/// The fnhost runtime: loads functions and runs them. Cheap to clone; all
/// clones share one loader, worker pool and set of counters.
///
/// ```no_run
/// use fnhost::{FunctionConfig, Outcome, Runtime, RuntimeConfig};
///
/// let runtime = Runtime::new(RuntimeConfig::default())?;
/// let function = runtime.load(
///     FunctionConfig::new("testplugin.Handler", "target/release").user_data("NAME", "fnhost"),
/// )?;
/// let result = function.invoke(br#"{"key": "NAME"}"#)?;
/// if let Outcome::Success(body) = &result.outcome {
///     println!("{}", String::from_utf8_lossy(&body.bytes));
/// }
/// println!("{} {}", result.request_id, result.summary.to_json());
/// print!("{}", result.log_tail());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
    registry: Arc<Registry>,
}

/// Builds a [`Runtime`] with host functions registered before any plugin
/// loads ([`Runtime::builder`]).
///
/// ```no_run
/// use fnhost::{HostCallContext, HostError, Runtime, RuntimeConfig};
///
/// let runtime = Runtime::builder()
///     .config(RuntimeConfig::default())
///     .host_function("cache.get", |ctx: &HostCallContext, key: &[u8]| -> Result<Vec<u8>, HostError> {
///         if ctx.function() != "orders" {
///             return Err(HostError::new("not for you").with_type("Forbidden"));
///         }
///         Ok(format!("cached {}", String::from_utf8_lossy(key)).into_bytes())
///     })
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    host_functions: Vec<(String, Arc<dyn HostFunction>)>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("config", &self.config)
            .field(
                "host_functions",
                &self
                    .host_functions
                    .iter()
                    .map(|(n, _)| n)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RuntimeBuilder {
    /// The runtime's configuration (default: [`RuntimeConfig::default`]).
    pub fn config(mut self, config: RuntimeConfig) -> RuntimeBuilder {
        self.config = config;
        self
    }

    /// Offers a host function to every plugin of the runtime under `name`
    /// (1 to 128 bytes of ASCII letters, digits and `._-:/`; a bad or
    /// repeated name fails [`build`](Self::build)). See
    /// [`crate::host_call`].
    pub fn host_function(mut self, name: &str, function: impl HostFunction) -> RuntimeBuilder {
        self.host_functions
            .push((name.to_owned(), Arc::new(function)));
        self
    }

    /// The runtime, with its host functions.
    pub fn build(self) -> Result<Runtime, LoadError> {
        let functions = HostFunctions::default();
        for (name, function) in self.host_functions {
            functions.register(&name, function)?;
        }
        Runtime::with_host_functions(self.config, Arc::new(functions))
    }
}

impl Runtime {
    /// A builder: a configuration and host functions, then
    /// [`build`](RuntimeBuilder::build).
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder {
            config: RuntimeConfig::default(),
            host_functions: Vec::new(),
        }
    }

    /// Offers a host function to every plugin of the runtime under `name`,
    /// from now on (functions loaded already included). A name that is
    /// registered already is refused: unregister it first
    /// ([`unregister_host_function`](Self::unregister_host_function)).
    pub fn register_host_function(
        &self,
        name: &str,
        function: impl HostFunction,
    ) -> Result<(), RegisterError> {
        self.shared
            .host_functions
            .register(name, Arc::new(function))
    }

    /// Withdraws a host function: calls from now on answer
    /// `HostFunctionNotFound` (those running finish). `false` when there
    /// was none of that name.
    pub fn unregister_host_function(&self, name: &str) -> bool {
        self.shared.host_functions.unregister(name)
    }

    /// The names of the host functions registered, sorted.
    pub fn host_function_names(&self) -> Vec<String> {
        self.shared.host_functions.names()
    }

    /// A runtime with `config`; creates the code cache directory.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, LoadError> {
        Runtime::with_host_functions(config, Arc::default())
    }

    fn with_host_functions(
        config: RuntimeConfig,
        host_functions: Arc<HostFunctions>,
    ) -> Result<Runtime, LoadError> {
        let dir = config
            .cache_dir
            .clone()
            .unwrap_or_else(CodeCache::default_dir);
        let cache = CodeCache::new(&dir).map_err(|error| LoadError::Io {
            path: dir.clone(),
            error,
        })?;
        let pool = WorkerPool::new(config.worker_idle_timeout, config.worker_stack_size);
        crate::isolation::budget::set_max(config.max_worker_processes);
        let sandbox = &config.sandbox;
        if sandbox.mode != crate::sandbox::SandboxMode::Off
            && (sandbox.uid == 0
                || sandbox.gid == 0
                || sandbox.host_uid == 0
                || sandbox.host_gid == 0)
        {
            return Err(LoadError::Sandbox(
                "the sandbox's uid and gid, inside and on the host, must not be 0".into(),
            ));
        }
        let missing = crate::sandbox::missing_required(&config.sandbox);
        if !missing.is_empty() {
            return Err(LoadError::Sandbox(format!(
                "the sandbox is strict and this host lacks: {}",
                missing
                    .iter()
                    .map(|l| format!("{} ({})", l.name, l.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        match config.sandbox.mode {
            crate::sandbox::SandboxMode::Off => log::warn!(
                target: "fnhost::sandbox",
                "the sandbox is off: worker processes contain crashes, hangs and leaks, not a hostile handler"
            ),
            crate::sandbox::SandboxMode::Auto => {
                let missing: Vec<_> = crate::sandbox::check(&config.sandbox)
                    .into_iter()
                    .filter(|l| !l.available)
                    .map(|l| format!("{} ({})", l.name, l.detail))
                    .collect();
                if !missing.is_empty() {
                    log::warn!(
                        target: "fnhost::sandbox",
                        "worker processes run without: {} (fnhost sandbox check)",
                        missing.join("; ")
                    );
                }
            }
            crate::sandbox::SandboxMode::Strict => {}
        }
        let checker_sandbox = crate::sandbox::layers(&config.sandbox).map(|layers| {
            let policy = crate::sandbox::SandboxPolicy {
                tmp_mb: 64,
                ..crate::sandbox::SandboxPolicy::default()
            };
            crate::sandbox::spec(
                &config.sandbox,
                &policy,
                layers,
                crate::sandbox::cgroup::has_pids(),
                config.max_worker_processes,
            )
        });
        let preflight = Preflight::new(
            config.worker_executable(),
            config.preflight_timeout,
            checker_sandbox,
            config.sandbox.max_processes,
        );
        let shared = Arc::new(Shared {
            config,
            loader: Loader::new(cache, preflight),
            pool,
            plugin_pools: parking_lot::Mutex::default(),
            counters: Counters::default(),
            housekeeping: Arc::default(),
            host_functions,
        });
        let registry = Arc::new(Registry::new(Arc::clone(&shared)));
        let kept: Arc<dyn crate::housekeeping::Housekept> = registry.clone();
        crate::housekeeping::start(Arc::downgrade(&kept), Arc::clone(&shared.housekeeping));
        Ok(Runtime { registry, shared })
    }

    /// Named functions with versions, aliases and hot swap.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    /// Loads a function: validates the configuration, finds and checks its
    /// library, resolves the handler (and initializer), then creates its
    /// first instance (running the initializer). An initializer failure does
    /// not fail the load: the function's invocations report
    /// `HandledInitializationError` (and retry it, up to 3 runs in all).
    pub fn load(&self, config: FunctionConfig) -> Result<Function, LoadError> {
        let generation = build_generation(&self.shared, config)?;
        if let Err(report) = generation.warm_up() {
            if let Some(e) = report
                .error
                .filter(|e| e.error_type == crate::isolation::process::LOAD_ERROR)
            {
                return Err(LoadError::InWorker(e.message));
            }
        }
        Ok(Function::new(generation))
    }

    /// Opens and checks a library, mapping it in this process (after its
    /// pre-flight in a worker process passed).
    pub fn open_library(&self, path: &Path) -> Result<Arc<Library>, LoadError> {
        self.shared.loader.load(path)
    }

    /// Starts a copy of a library into the code cache for a caller that
    /// writes the library's bytes anyway: a server extracting a package
    /// writes them here as it writes them into the package, and the load
    /// that follows maps this copy instead of copying and hashing the file
    /// again ([`LibraryCopy::finish`]). At most `limit` bytes (and at
    /// most the 512 MiB any library may have).
    pub fn library_copy(&self, limit: u64) -> std::io::Result<LibraryCopy<'_>> {
        let limit = limit.min(crate::loader::MAX_LIBRARY_BYTES);
        Ok(LibraryCopy {
            loader: &self.shared.loader,
            incoming: self.shared.loader.cache().incoming(limit)?,
        })
    }

    /// What a library declares, read in a pre-flight worker process;
    /// nothing of it is mapped or run in this process.
    pub fn inspect_library(&self, path: &Path) -> Result<LibraryReport, LoadError> {
        self.shared.loader.inspect(path)
    }

    /// Deletes the code cache's copies of libraries that no function's
    /// head or published version uses; returns how many were deleted. Only
    /// for a cache directory this runtime has to itself: another process's
    /// copies in a shared one would be deleted too.
    pub fn prune_code_cache(&self) -> std::io::Result<usize> {
        let mut keep = std::collections::HashSet::new();
        for function in self.registry.list() {
            keep.insert(function.latest.library().digest());
            for version in &function.versions {
                keep.insert(version.generation.library().digest());
            }
        }
        self.shared.loader.cache().retain(&keep)
    }

    /// Current counters (a pure read: retiring and idle release are the
    /// housekeeping thread's).
    pub fn stats(&self) -> RuntimeStats {
        let (preflights, preflights_on_spare, preflight_spare_ready) =
            self.shared.loader.preflight_counts();
        let (worker_threads, idle_workers) = self.shared.worker_threads();
        RuntimeStats {
            preflights,
            preflights_on_spare,
            preflight_spare_ready,
            parked_worker_ready: crate::isolation::process::parked::counts().0,
            parked_worker_starts: crate::isolation::process::parked::counts().1,
            invocations: self.shared.counters.invocations(),
            timeouts: self.shared.counters.timeouts(),
            runaway_invocations: self.shared.counters.runaway(),
            worker_threads,
            idle_workers,
            worker_processes: crate::isolation::budget::live(),
            libraries_mapped: self.shared.loader.mapped_count(),
            generations: self.registry.generation_stats(),
        }
    }
}

/// A library being copied into the code cache by a caller that writes it
/// ([`Runtime::library_copy`]): write every byte of the library, the same
/// bytes as to the file it is a copy of, then [`finish`](Self::finish).
/// Dropped unfinished, the copy is deleted.
#[derive(Debug)]
pub struct LibraryCopy<'a> {
    loader: &'a Loader,
    incoming: crate::code_cache::Incoming<'a>,
}

impl std::io::Write for LibraryCopy<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.incoming.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LibraryCopy<'_> {
    /// The digest (BLAKE3) of what was written so far.
    pub fn digest(&self) -> crate::Digest {
        self.incoming.digest()
    }

    /// Keeps the copy as the copy of `source`, the file its caller wrote
    /// the same bytes to (open; its `stat` identity names it): the next
    /// load of that file maps this copy while the file is unchanged.
    /// Answers the copy's digest (BLAKE3 of the bytes). A copy that is no
    /// shared object for this machine is refused and deleted.
    pub fn finish(self, source: &std::fs::File) -> Result<crate::Digest, LoadError> {
        let stored = self.incoming.finish().map_err(|error| LoadError::Io {
            path: std::path::PathBuf::from("(a library copy)"),
            error,
        })?;
        self.loader.stage(source, stored)
    }
}
