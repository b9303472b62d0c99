//! [`Runtime`]: what every function of a process shares: the loader and its
//! content-addressed code cache, the worker pool, limits and counters.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fnhost_api::abi;

use crate::code_cache::CodeCache;
use crate::config::FunctionConfig;
use crate::entry::Entry;
use crate::error::LoadError;
use crate::function::Function;
use crate::generation::Generation;
use crate::invocation::Limits;
use crate::isolation::preflight::Preflight;
use crate::loader::{Library, Loader};
use crate::pool::WorkerPool;
use crate::registry::{GenerationStats, Registry};

/// Limits and locations shared by all functions of a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where content-addressed library copies go (default `$TMPDIR/fnhost-<uid>/libs`).
    pub cache_dir: Option<PathBuf>,
    /// Largest accepted payload (default 6 MB, FunctionGraph's sync limit).
    pub max_payload_bytes: usize,
    /// Largest accepted result (default 6 MB); over it: `FunctionResponseTooLarge`.
    pub max_response_bytes: usize,
    /// Most log bytes kept per invocation (default 1 MiB; older lines dropped first).
    pub max_log_bytes: usize,
    /// Log bytes shown to the caller (default 4 KB, as the console).
    pub log_tail_bytes: usize,
    /// Idle worker threads exit after this long (default 60 s).
    pub worker_idle_timeout: Duration,
    /// Stack size of worker threads (default 8 MiB, like a main thread).
    pub worker_stack_size: usize,
    /// The `fnhost` executable that runs worker processes for functions
    /// with process isolation (default: the running executable, right for
    /// the `fnhost` binary; an embedding program either names an `fnhost`
    /// binary here or calls [`crate::isolation::worker_main`] when started
    /// with the `__worker` argument).
    pub worker_executable: Option<PathBuf>,
    /// How long loading a new library in its pre-flight worker may take
    /// (its constructors; default 10 s). The same executable runs it.
    pub preflight_timeout: Duration,
    /// Most worker processes alive at once, across every function (default
    /// 64). The cap is process-wide: the last runtime created sets it.
    pub max_worker_processes: usize,
    /// How long a call waits for a worker process when the cap is reached
    /// and no worker is idle, before `TooManyRequests` (default 10 s, never
    /// past the call's deadline).
    pub worker_queue_timeout: Duration,
}

impl RuntimeConfig {
    /// The executable worker processes run: `worker_executable`, else the
    /// running one.
    pub fn worker_executable(&self) -> PathBuf {
        self.worker_executable
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| "fnhost".into())
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            max_payload_bytes: 6 * 1024 * 1024,
            max_response_bytes: 6 * 1024 * 1024,
            max_log_bytes: 1024 * 1024,
            log_tail_bytes: 4096,
            worker_idle_timeout: Duration::from_secs(60),
            worker_stack_size: 8 * 1024 * 1024,
            worker_executable: None,
            preflight_timeout: crate::isolation::preflight::DEFAULT_PREFLIGHT_TIMEOUT,
            max_worker_processes: crate::isolation::DEFAULT_MAX_WORKER_PROCESSES,
            worker_queue_timeout: Duration::from_secs(10),
        }
    }
}

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
    /// The registry's generations: live, draining, retired.
    pub generations: GenerationStats,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    invocations: AtomicU64,
    timeouts: AtomicU64,
    runaway: AtomicUsize,
    generations: AtomicU64,
}

impl Counters {
    pub(crate) fn next_generation_id(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub(crate) fn invoked(&self) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn timed_out(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        self.runaway.fetch_add(1, Ordering::Relaxed);
    }
    /// A timeout whose handler is no longer running: its worker process was
    /// killed, or it ran on the caller's thread and returned late.
    pub(crate) fn timed_out_and_ended(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn runaway(&self) -> usize {
        self.runaway.load(Ordering::Relaxed)
    }
    pub(crate) fn runaway_finished(&self, request_id: &str) {
        self.runaway.fetch_sub(1, Ordering::Relaxed);
        log::info!(target: "fnhost::invoke", "runaway invocation {request_id} finished");
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: RuntimeConfig,
    pub(crate) loader: Loader,
    pub(crate) pool: WorkerPool,
    pub(crate) counters: Counters,
}

impl Shared {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_response_bytes: self.config.max_response_bytes,
            max_log_bytes: self.config.max_log_bytes,
            log_tail_bytes: self.config.log_tail_bytes,
        }
    }
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

impl Runtime {
    /// A runtime with `config`; creates the code cache directory.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, LoadError> {
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
        let preflight = Preflight {
            executable: config.worker_executable(),
            timeout: config.preflight_timeout,
        };
        let shared = Arc::new(Shared {
            config,
            loader: Loader::new(cache, preflight),
            pool,
            counters: Counters::default(),
        });
        Ok(Runtime {
            registry: Arc::new(Registry::new(Arc::clone(&shared))),
            shared,
        })
    }

    /// The runtime of a worker process: no code cache and no pre-flight
    /// (the worker is the throwaway process libraries are tried in).
    pub(crate) fn for_worker(config: RuntimeConfig) -> Runtime {
        let pool = WorkerPool::new(config.worker_idle_timeout, config.worker_stack_size);
        let shared = Arc::new(Shared {
            config,
            loader: Loader::in_worker(),
            pool,
            counters: Counters::default(),
        });
        Runtime {
            registry: Arc::new(Registry::new(Arc::clone(&shared))),
            shared,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
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

    /// What a library declares, read in a pre-flight worker process;
    /// nothing of it is mapped or run in this process.
    pub fn inspect_library(&self, path: &Path) -> Result<crate::loader::LibraryReport, LoadError> {
        self.shared.loader.inspect(path)
    }

    /// Deletes the code cache's copies of libraries that no function's
    /// head or published version uses; returns how many were deleted. Only
    /// for a cache directory this runtime has to itself (see
    /// [`CodeCache::retain`]).
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

    /// Current counters.
    pub fn stats(&self) -> RuntimeStats {
        RuntimeStats {
            invocations: self.shared.counters.invocations.load(Ordering::Relaxed),
            timeouts: self.shared.counters.timeouts.load(Ordering::Relaxed),
            runaway_invocations: self.shared.counters.runaway(),
            worker_threads: self.shared.pool.threads(),
            idle_workers: self.shared.pool.idle(),
            worker_processes: crate::isolation::budget::live(),
            libraries_mapped: self.shared.loader.mapped_count(),
            generations: self.registry.generation_stats(),
        }
    }
}

/// Validates, loads and resolves a generation without running anything.
pub(crate) fn build_generation(
    shared: &Arc<Shared>,
    config: FunctionConfig,
) -> Result<Arc<Generation>, LoadError> {
    config.validate()?;
    let entry = Entry::parse(&config.entry)?;
    let init_entry = config
        .initializer
        .as_deref()
        .map(Entry::parse)
        .transpose()?;
    if let Some(init) = &init_entry {
        if init.library != entry.library {
            return Err(LoadError::InitializerInOtherLibrary {
                handler: config.entry.clone(),
                initializer: init.to_string(),
            });
        }
    }
    let path = entry.locate(&config.code_dir)?;
    build_generation_at(shared, config, &path, entry, init_entry)
}

/// Builds a generation from the library at `path` (already located).
pub(crate) fn build_generation_at(
    shared: &Arc<Shared>,
    config: FunctionConfig,
    path: &Path,
    entry: Entry,
    init_entry: Option<Entry>,
) -> Result<Arc<Generation>, LoadError> {
    if config.isolation == crate::config::Isolation::Process {
        // Workers load and check it; the host never maps it (so retiring the
        // generation reclaims everything).
        let library = shared.loader.store_unmapped(path)?;
        let initializer =
            init_entry.map(|init| (init.to_string(), isolated_initializer as abi::InitializerFn));
        return Ok(Generation::new(
            Arc::clone(shared),
            config,
            library,
            isolated_handler,
            initializer,
        ));
    }
    let library = shared.loader.load(path)?;
    generation_of(shared, config, library, &entry, init_entry.as_ref())
}

/// Builds an in-process generation of `library`: resolves the handler and
/// initializer.
pub(crate) fn generation_of(
    shared: &Arc<Shared>,
    config: FunctionConfig,
    library: Arc<Library>,
    entry: &Entry,
    init_entry: Option<&Entry>,
) -> Result<Arc<Generation>, LoadError> {
    let handler = library
        .handler(&entry.symbol)
        .ok_or_else(|| LoadError::UnknownHandler {
            library: entry.library.clone(),
            handler: entry.symbol.clone(),
            available: library.handler_names(),
        })?;
    let initializer = match init_entry {
        None => None,
        Some(init) => Some((
            init.to_string(),
            library
                .initializer(&init.symbol)
                .ok_or_else(|| LoadError::UnknownInitializer {
                    library: init.library.clone(),
                    initializer: init.symbol.clone(),
                    available: library.initializer_names(),
                })?,
        )),
    };
    Ok(Generation::new(
        Arc::clone(shared),
        config,
        library,
        handler,
        initializer,
    ))
}

/// Stands in for the handler of a process-isolated function, whose code the
/// host never maps: never called (invocations go to worker processes).
unsafe extern "C-unwind" fn isolated_handler(
    _ctx: *const abi::Context,
    _payload: abi::HostStr,
) -> i32 {
    abi::STATUS_ERROR
}

/// Stands in for the initializer of a process-isolated function: never called.
unsafe extern "C-unwind" fn isolated_initializer(_ctx: *const abi::Context) -> i32 {
    abi::STATUS_ERROR
}
