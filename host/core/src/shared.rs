//! What every function of a [`Runtime`](crate::Runtime) shares: its
//! configuration, the loader, the worker-thread pool and the counters.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::RuntimeConfig;
use crate::invocation::Limits;
use crate::loader::Loader;
use crate::pool::WorkerPool;

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
    /// A cancelled call whose handler still runs (a runaway, not a timeout).
    pub(crate) fn cancelled_running(&self) {
        self.runaway.fetch_add(1, Ordering::Relaxed);
    }
    /// A timeout whose handler is no longer running: its worker process was
    /// killed, or it ran on the caller's thread and returned late.
    pub(crate) fn timed_out_and_ended(&self) {
        self.timeouts.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }
    pub(crate) fn timeouts(&self) -> u64 {
        self.timeouts.load(Ordering::Relaxed)
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
    /// The worker threads of libraries that start their own (ABI 1.4's
    /// `fnhost_start_thread`), one pool per library (libraries are never
    /// unmapped; idle threads leave after the idle timeout).
    pub(crate) plugin_pools: parking_lot::Mutex<Vec<(crate::code_cache::Digest, WorkerPool)>>,
    pub(crate) counters: Counters,
    /// Wakes the housekeeping thread (see [`crate::housekeeping`]).
    pub(crate) housekeeping: Arc<crate::housekeeping::Housekeeping>,
    /// What plugins may call by name (ABI 1.5).
    pub(crate) host_functions: Arc<crate::host_call::HostFunctions>,
}

impl Shared {
    /// The worker threads that run `library`'s calls in process: its own
    /// pool when it starts its threads itself (ABI 1.4), else `None` (the
    /// shared pool).
    pub(crate) fn pool_of(&self, library: &crate::Library) -> Option<WorkerPool> {
        let start = library.start_thread()?;
        let mut pools = self.plugin_pools.lock();
        if let Some((_, pool)) = pools.iter().find(|(d, _)| *d == library.digest()) {
            return Some(pool.clone());
        }
        let pool = WorkerPool::with_threads_of(
            self.config.worker_idle_timeout,
            self.config.worker_stack_size,
            Some(start),
        );
        pools.push((library.digest(), pool.clone()));
        Some(pool)
    }

    /// Worker threads alive and idle, in every pool.
    pub(crate) fn worker_threads(&self) -> (usize, usize) {
        let pools = self.plugin_pools.lock();
        pools.iter().fold(
            (self.pool.threads(), self.pool.idle()),
            |(threads, idle), (_, p)| (threads + p.threads(), idle + p.idle()),
        )
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_response_bytes: self.config.max_response_bytes,
            max_log_bytes: self.config.max_log_bytes,
            log_tail_bytes: self.config.log_tail_bytes,
        }
    }
}

impl Shared {
    /// What a worker process's functions share: no code cache and no
    /// pre-flight (the worker is the throwaway process libraries are tried
    /// in).
    pub(crate) fn for_worker(
        config: RuntimeConfig,
        host_functions: crate::host_call::HostFunctions,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            pool: WorkerPool::new(config.worker_idle_timeout, config.worker_stack_size),
            plugin_pools: parking_lot::Mutex::default(),
            config,
            loader: Loader::in_worker(),
            counters: Counters::default(),
            housekeeping: Arc::default(),
            host_functions: Arc::new(host_functions),
        })
    }
}
