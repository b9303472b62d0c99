//! Building a [`Generation`] from a configuration: validate it, find the
//! library, check and store (or map) it, resolve the handler and
//! initializer. Nothing of the function runs here ([`Generation::warm_up`]
//! does that).

use std::sync::Arc;

use super::{Execution, Generation, InProcess, Workers};
use crate::config::{FunctionConfig, Isolation};
use crate::entry::Entry;
use crate::error::LoadError;
use crate::isolation::process::ProcessPool;
use crate::loader::Library;
use crate::shared::Shared;

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
    config
        .sandbox
        .validate(&shared.config.sandbox)
        .map_err(LoadError::Sandbox)?;
    let mut config = config;
    let path = entry.locate(&config.code_dir)?;
    let ingested = shared.loader.ingest(&path)?;
    config.isolation = config.isolation.resolve(ingested.go_runtime);
    if config.isolation == Isolation::Process {
        let library = shared.loader.store_ingested(&path, ingested);
        return build_in_workers(shared, config, library);
    }
    let library = shared.loader.load_ingested(&path, ingested)?;
    generation_of(shared, config, library, &entry, init_entry.as_ref())
}

/// A process-isolated generation: workers load and check the stored
/// `library`; the host never maps it (so retiring the generation reclaims
/// everything). Its handler and initializer are resolved in each worker.
fn build_in_workers(
    shared: &Arc<Shared>,
    config: FunctionConfig,
    library: Arc<Library>,
) -> Result<Arc<Generation>, LoadError> {
    let file = library
        .file()
        .cloned()
        .ok_or_else(|| LoadError::InWorker("the stored library has no open descriptor".into()))?;
    let sandbox = &shared.config.sandbox;
    let jail = crate::sandbox::layers(sandbox).map(|layers| {
        crate::sandbox::spec(
            sandbox,
            &config.sandbox,
            layers,
            crate::sandbox::cgroup::has_pids(),
            shared.config.max_worker_processes,
        )
    });
    let pool = ProcessPool::new(
        shared.config.worker_executable(),
        file,
        config.clone(),
        shared.config.log_tail_bytes,
        shared.config.worker_queue_timeout,
        jail,
        sandbox.max_processes,
    );
    Ok(Generation::new(
        Arc::clone(shared),
        config,
        library,
        Execution::Workers(Box::new(Workers::new(pool))),
    ))
}

/// An in-process generation of the mapped `library`: resolves the handler
/// and initializer in its checked descriptor.
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
    let pool = shared.pool_of(&library);
    Ok(Generation::new(
        Arc::clone(shared),
        config,
        library,
        Execution::InProcess(InProcess::new(handler, initializer, pool)),
    ))
}
