//! [`Management`]: the one owner of the sequence every change to a function
//! goes through — check, store the code package, deploy, persist, remember —
//! and of the locks that serialize those changes.
//!
//! A change starts with [`Management::begin`] (from async code) or
//! [`Management::begin_blocking`] (from a thread, as the directory
//! watcher's), which takes *that function's* lock and returns a
//! [`Changing`]; only a `Changing` can change anything, so no path (HTTP
//! handlers, the watcher, cluster propagation, the restore at start)
//! deploys or persists a function without holding its lock, and the store
//! and the registry stay in step for it. Changes to different functions
//! run side by side: a slow package fetch, pre-flight or initializer of one
//! function delays neither another function's create, update or delete nor
//! this node's application of other nodes' changes. What functions share
//! is guarded on its own: code packages and cached library copies a change
//! in progress uses are never collected (see [`Pending`]), and trigger
//! changes, whose APIG paths are unique across functions, also take the
//! triggers' lock ([`Management::begin_triggers`]). Reads (records,
//! lookups, the store's listings) take no lock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use fnhost::{Alias, DeployError, Deployment, FunctionConfig, Runtime};
use parking_lot::Mutex;
use tokio::sync::OwnedMutexGuard;

use crate::deployments::Deployments;
use crate::error::ApiError;
use crate::model::{
    now_ms, now_rfc3339, AliasRecord, FunctionRecord, VersionRecord, FAILED, SUCCESSFUL,
};
use crate::package::{PackageError, PackageStore};
use crate::store::{Store, StoreError};
use crate::urn::FunctionRef;

/// The `digest` prefix of functions deployed from `--functions-dir`: their
/// code is the directory, not a stored package.
pub(crate) const WATCHED: &str = "dir:";

/// What a change to a function is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// A new function: it must load, or nothing is kept.
    Create,
    /// A new package or configuration for an existing function: kept even
    /// when it does not load (then what it replaces keeps serving).
    Update,
}

/// Functions' records, their packages and their persistence, over the
/// runtime's registry.
pub(crate) struct Management {
    runtime: Runtime,
    store: Store,
    packages: PackageStore,
    /// Current records by function name (mirrors the store, plus the
    /// functions of the watched directory).
    functions: Mutex<BTreeMap<String, FunctionRecord>>,
    /// One lock per function name with a change in progress or waiting:
    /// serializes the changes of one function (keeping its store record,
    /// packages and registry entry in step).
    changes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Serializes trigger changes across functions (APIG paths are unique).
    triggers: Arc<tokio::sync::Mutex<()>>,
    /// Changes in progress, for garbage collection.
    pending: Pending,
    /// Delete cached library copies no generation uses (the cache is this
    /// server's alone).
    prune_code_cache: bool,
    /// Every deploy that changed a head, and its drain.
    deployments: Deployments,
    /// The operator's isolation floor.
    min_isolation: fnhost::Isolation,
}

/// A change in progress to one function: holds that function's lock until
/// dropped. `Send` and `'static`, so that the blocking work (loading
/// libraries, running initializers, SQLite) moves to a blocking thread with
/// the lock held.
pub(crate) struct Changing {
    management: Arc<Management>,
    name: String,
    _lock: OwnedMutexGuard<()>,
}

impl Drop for Changing {
    fn drop(&mut self) {
        self.management
            .pending
            .changes
            .fetch_sub(1, Ordering::AcqRel);
        // The function's lock goes from the map when no other change waits
        // for it (the map holds one reference, this change's guard another).
        let mut changes = self.management.changes.lock();
        if changes
            .get(&self.name)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            changes.remove(&self.name);
        }
    }
}

/// What changes in progress use, so that collecting garbage for one change
/// never deletes what another, not yet recorded, is about to use.
#[derive(Default)]
struct Pending {
    /// Changes holding a function's lock.
    changes: AtomicUsize,
    /// Code packages stored by a change not yet recorded, with counts.
    digests: Mutex<HashMap<String, usize>>,
    /// Held shared while a change stores a package (from holding its
    /// digest until it is stored), exclusively while garbage is collected:
    /// a package stored after the collection listed what to keep, and
    /// before it deleted the rest, would be deleted.
    storing: parking_lot::RwLock<()>,
}

/// A package digest held in [`Pending`] while it lives.
struct PendingDigest<'a> {
    pending: &'a Pending,
    digest: String,
}

impl Drop for PendingDigest<'_> {
    fn drop(&mut self) {
        let mut digests = self.pending.digests.lock();
        if let Some(n) = digests.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                digests.remove(&self.digest);
            }
        }
    }
}

impl Pending {
    fn hold(&self, digest: &str) -> PendingDigest<'_> {
        *self.digests.lock().entry(digest.to_owned()).or_default() += 1;
        PendingDigest {
            pending: self,
            digest: digest.to_owned(),
        }
    }
}

impl Management {
    pub(crate) fn new(
        runtime: Runtime,
        store: Store,
        packages: PackageStore,
        prune_code_cache: bool,
    ) -> Management {
        Management {
            runtime,
            store,
            packages,
            functions: Mutex::new(BTreeMap::new()),
            changes: Mutex::new(HashMap::new()),
            triggers: Arc::new(tokio::sync::Mutex::new(())),
            pending: Pending::default(),
            prune_code_cache,
            deployments: Deployments::default(),
            min_isolation: fnhost::Isolation::Inline,
        }
    }

    /// Sets the isolation floor (see [`crate::ServeConfig::min_isolation`]).
    pub(crate) fn with_min_isolation(mut self, floor: fnhost::Isolation) -> Management {
        self.min_isolation = floor;
        self
    }

    /// Refuses a record that asks for less isolation than the floor, or a
    /// sandbox policy the operator does not allow.
    pub(crate) fn check_policy(&self, record: &FunctionRecord) -> Result<(), ApiError> {
        if record.isolation.is_below(self.min_isolation) {
            return Err(ApiError::bad_request(format!(
                "isolation `{}` is below this server's floor `{}` (--min-isolation)",
                isolation_name(record.isolation),
                isolation_name(self.min_isolation)
            )));
        }
        record
            .sandbox
            .validate(&self.runtime.config().sandbox)
            .map_err(ApiError::bad_request)?;
        // A name nothing offers is a mistake to report now, not a call that
        // fails later.
        let offered = self.runtime.host_function_names();
        if let Some(unknown) = record
            .host_functions
            .iter()
            .find(|name| !offered.contains(name))
        {
            return Err(ApiError::bad_request(format!(
                "host_functions: this server offers no host function named \"{}\" (it offers {})",
                unknown.escape_debug().take(130).collect::<String>(),
                offered.join(", ")
            )));
        }
        Ok(())
    }

    /// The lock of function `name` (made when none exists).
    fn lock_of(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.pending.changes.fetch_add(1, Ordering::AcqRel);
        Arc::clone(self.changes.lock().entry(name.to_owned()).or_default())
    }

    /// Waits for function `name`'s lock; the change runs while the result
    /// lives.
    pub(crate) async fn begin(self: &Arc<Self>, name: &str) -> Changing {
        let lock = self.lock_of(name);
        Changing {
            _lock: lock.lock_owned().await,
            name: name.to_owned(),
            management: Arc::clone(self),
        }
    }

    /// [`begin`](Self::begin) for the function a URN names (404 for a URN
    /// that names none).
    pub(crate) async fn begin_urn(self: &Arc<Self>, urn: &str) -> Result<Changing, ApiError> {
        let r = FunctionRef::parse(urn).ok_or_else(ApiError::function_not_found)?;
        Ok(self.begin(&r.name).await)
    }

    /// A trigger change of the function a URN names: its lock, then the
    /// triggers' lock (in that order, always).
    pub(crate) async fn begin_triggers(
        self: &Arc<Self>,
        urn: &str,
    ) -> Result<(Changing, OwnedMutexGuard<()>), ApiError> {
        let changing = self.begin_urn(urn).await?;
        let triggers = Arc::clone(&self.triggers).lock_owned().await;
        Ok((changing, triggers))
    }

    /// [`begin`](Self::begin) from a thread outside the async executor.
    pub(crate) fn begin_blocking(self: &Arc<Self>, name: &str) -> Changing {
        let lock = self.lock_of(name);
        Changing {
            _lock: lock.blocking_lock_owned(),
            name: name.to_owned(),
            management: Arc::clone(self),
        }
    }

    /// The triggers' lock from a thread outside the async executor (the
    /// watcher's trigger sync, with the function's lock held).
    pub(crate) fn triggers_blocking(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.triggers).blocking_lock_owned()
    }

    /// Shows function `name`'s record here as `Failed` with `reason`: a
    /// change another node stored cannot apply on this node (what served
    /// before keeps serving). A function this node never had stays absent.
    pub(crate) fn mark_apply_failed(&self, name: &str, reason: &str) {
        if let Some(record) = self.functions.lock().get_mut(name) {
            record.last_update_status = FAILED.to_owned();
            record.last_update_status_reason = format!(
                "this node cannot apply the change stored by another node: {}",
                reason.chars().take(512).collect::<String>()
            );
        }
    }

    /// Shows directory function `name` as `Failed` with `reason` (its
    /// library or sidecar in the functions directory does not load): a
    /// function that serves keeps serving its previous code; one that never
    /// loaded is listed, `Failed`, serving nothing, so that a listing says
    /// why it is absent instead of the log alone.
    pub(crate) fn mark_watched_failed(&self, name: &str, reason: &str) {
        let reason: String = reason.chars().take(1024).collect();
        let mut functions = self.functions.lock();
        match functions.get_mut(name) {
            Some(record) => {
                record.last_update_status = FAILED.to_owned();
                record.last_update_status_reason = format!(
                    "the functions directory's new code does not load, and the previous code keeps serving: {reason}"
                );
            }
            None => {
                let defaults = FunctionConfig::new(format!("{name}.Handler"), "");
                let record = FunctionRecord {
                    project_id: "local".into(),
                    func_name: name.to_owned(),
                    package: "default".into(),
                    runtime: "Rust1.x".into(),
                    handler: format!("{name}.Handler"),
                    memory_size: defaults.memory_mb,
                    timeout: u32::try_from(defaults.timeout.as_secs()).unwrap_or(u32::MAX),
                    user_data: String::new(),
                    initializer_handler: String::new(),
                    initializer_timeout: 0,
                    description: "deployed from the functions directory".to_owned(),
                    digest: WATCHED.to_owned(),
                    code_size: 0,
                    max_instance_num: 0,
                    reserved_instance_count: 0,
                    concurrent_num: 1,
                    isolation: fnhost::Isolation::default(),
                    sandbox: Default::default(),
                    host_functions: Vec::new(),
                    kv_space: String::new(),
                    created_ms: 0,
                    last_modified: now_rfc3339(),
                    last_update_status: FAILED.to_owned(),
                    last_update_status_reason: format!("{reason}; nothing serves {name}"),
                    serving: None,
                };
                functions.insert(name.to_owned(), record);
            }
        }
    }

    /// Whether function `name` has code that serves (not only a record of
    /// a directory library that never loaded).
    pub(crate) fn serves(&self, name: &str) -> bool {
        self.functions
            .lock()
            .get(name)
            .is_some_and(|r| r.digest != WATCHED)
    }

    /// Forgets directory function `name` when it never loaded (its library
    /// left the directory); one that served keeps serving.
    pub(crate) fn forget_failed_watched(&self, name: &str) {
        let mut functions = self.functions.lock();
        if functions
            .get(name)
            .is_some_and(|r| r.digest == WATCHED && r.last_update_status == FAILED)
        {
            functions.remove(name);
        }
    }

    /// Whether the store answers now (a failed change is then the row's
    /// fault, not the connection's).
    pub(crate) fn store_reachable(&self) -> bool {
        self.store.revisions().is_ok()
    }

    /// The deploy timeline.
    pub(crate) fn deployments(&self) -> &Deployments {
        &self.deployments
    }

    /// The state store (triggers read and write their records there).
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The code packages.
    pub(crate) fn packages(&self) -> &PackageStore {
        &self.packages
    }

    /// Whether a function of this name exists.
    pub(crate) fn has_function(&self, name: &str) -> bool {
        self.functions.lock().contains_key(name)
    }

    /// The current record of function `name`.
    pub(crate) fn record(&self, name: &str) -> Option<FunctionRecord> {
        self.functions.lock().get(name).cloned()
    }

    /// When function `name` was created (ms since the Unix epoch on the
    /// creating node's clock), if it exists and that is known (0 for a
    /// library of the functions directory, or a record older than the
    /// field).
    pub(crate) fn created_ms(&self, name: &str) -> Option<i64> {
        self.functions.lock().get(name).map(|r| r.created_ms)
    }

    /// The project and package of function `name`, if it exists.
    pub(crate) fn owner(&self, name: &str) -> Option<(String, String)> {
        self.functions
            .lock()
            .get(name)
            .map(|record| (record.project_id.clone(), record.package.clone()))
    }

    /// Whether function `name` exists (with package `package`, when
    /// given): an invocation's check, without copying its record.
    pub(crate) fn exists(&self, name: &str, package: Option<&str>) -> bool {
        self.functions
            .lock()
            .get(name)
            .is_some_and(|record| package.is_none_or(|p| p == record.package))
    }

    /// Every current record, by name.
    pub(crate) fn records(&self) -> Vec<FunctionRecord> {
        self.functions.lock().values().cloned().collect()
    }

    /// How many functions there are, and the records of at most `max` of
    /// them from the `start`th, by name: a page costs its own records, not
    /// every function's.
    pub(crate) fn records_page(&self, start: usize, max: usize) -> (usize, Vec<FunctionRecord>) {
        let functions = self.functions.lock();
        let page = functions.values().skip(start).take(max).cloned().collect();
        (functions.len(), page)
    }

    /// The current record of the function a URN names (and the parsed URN).
    pub(crate) fn lookup(&self, urn: &str) -> Result<(FunctionRecord, FunctionRef), ApiError> {
        let r = FunctionRef::parse(urn).ok_or_else(ApiError::function_not_found)?;
        let record = self
            .record(&r.name)
            .ok_or_else(ApiError::function_not_found)?;
        if let Some(package) = &r.package {
            if *package != record.package {
                return Err(ApiError::function_not_found());
            }
        }
        Ok((record, r))
    }

    /// The record of `record`'s published `version`.
    pub(crate) fn version_record(
        &self,
        record: &FunctionRecord,
        version: &str,
    ) -> Result<FunctionRecord, ApiError> {
        let versions: Vec<VersionRecord> = self
            .store
            .versions(&record.func_name)
            .map_err(ApiError::store)?;
        versions
            .into_iter()
            .find(|v| v.version == version)
            .map(|v| v.function)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "FSS.1052",
                    format!("version `{version}` not found"),
                )
            })
    }

    /// The published versions of function `name`.
    pub(crate) fn versions(&self, name: &str) -> Result<Vec<VersionRecord>, ApiError> {
        self.store.versions(name).map_err(ApiError::store)
    }

    /// The aliases of function `name`.
    pub(crate) fn aliases(&self, name: &str) -> Result<Vec<AliasRecord>, ApiError> {
        self.store.aliases(name).map_err(ApiError::store)
    }

    /// Refuses a change through the API to a function of the functions
    /// directory (its library and sidecar are its source).
    pub(crate) fn refuse_watched(record: &FunctionRecord) -> Result<(), ApiError> {
        if record.digest.starts_with(WATCHED) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "FSS.1061",
                format!(
                    "function `{0}` is deployed from the functions directory: its code is {0}.so there and its configuration {0}.toml beside it; change or remove them there",
                    record.func_name
                ),
            ));
        }
        Ok(())
    }

    /// The runtime configuration of a record, with its stored package.
    fn config_of(&self, record: &FunctionRecord) -> Result<FunctionConfig, ApiError> {
        Self::refuse_watched(record)?;
        let package = self
            .packages
            .fetch(&record.digest)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "FSS.0503",
                    format!("code package {}: {e}", record.digest),
                )
            })?
            .ok_or_else(|| {
                ApiError::internal(format!("code package {} is missing", record.digest))
            })?;
        self.config_in(record, &package)
    }

    /// The runtime configuration of a record whose package is `package`.
    fn config_in(
        &self,
        record: &FunctionRecord,
        package: &crate::package::Package,
    ) -> Result<FunctionConfig, ApiError> {
        let mut config = record.to_config(&package.dir)?;
        config.isolation = config.isolation.at_least(self.min_isolation);
        Ok(config)
    }

    /// Deploys a record's code and configuration as the function's head.
    fn deploy(&self, record: &FunctionRecord) -> Result<(), ApiError> {
        self.swap(self.config_of(record)?)?;
        Ok(())
    }

    /// Deploys `config` as its function's head (the one way this service
    /// does), and puts the swap on the timeline.
    fn swap(&self, config: FunctionConfig) -> Result<Deployment, DeployError> {
        let deployment = self.runtime.registry().deploy(config)?;
        self.deployments.record(&deployment);
        Ok(deployment)
    }

    /// Deletes the packages that no function, version or (through its
    /// version) alias references any more, and the cached library copies
    /// that no live generation uses.
    fn collect_garbage(&self) {
        let _no_store_meanwhile = self.pending.storing.write();
        let mut keep = HashSet::new();
        let records: Result<Vec<FunctionRecord>, _> = self.store.functions();
        let Ok(records) = records else {
            return; // Unsure what is referenced: delete nothing.
        };
        for record in &records {
            keep.extend(record.digests().map(str::to_owned));
            let Ok(versions) = self.store.versions::<VersionRecord>(&record.func_name) else {
                return;
            };
            for v in &versions {
                keep.extend(v.function.digests().map(str::to_owned));
            }
        }
        // And what is in memory, should a record have been deployed but not
        // (yet) persisted, and what changes in progress stored: deleting too
        // little is safe, too much is not.
        keep.extend(
            self.functions
                .lock()
                .values()
                .flat_map(|r| r.digests().map(str::to_owned).collect::<Vec<_>>()),
        );
        keep.extend(self.pending.digests.lock().keys().cloned());
        let deleted = self.packages.retain(&keep);
        if deleted > 0 {
            log::info!(target: "fnhost::server", "deleted {deleted} code packages no function references");
        }
        // A change in progress may have copied a library it has not yet
        // deployed: the cache is pruned only when this change is alone.
        if self.prune_code_cache && self.pending.changes.load(Ordering::Acquire) <= 1 {
            match self.runtime.prune_code_cache() {
                Ok(0) => {}
                Ok(n) => {
                    log::info!(target: "fnhost::server", "deleted {n} cached library copies no generation uses")
                }
                Err(e) => log::warn!(target: "fnhost::server", "cannot prune the code cache: {e}"),
            }
        }
    }
}

/// The answer to a package that was not stored.
fn package_refused(e: PackageError) -> ApiError {
    match e {
        PackageError::Invalid(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "FSS.1040", e.to_string())
        }
        PackageError::DiskFull(_) => ApiError::disk_full(e.to_string()),
        PackageError::Io(_) => ApiError::internal(e.to_string()),
        PackageError::Unavailable(_) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "FSS.0503", e.to_string())
        }
    }
}

/// The alias `name` of `function` as this node routes it now.
fn previous_alias(m: &Management, function: &str, name: &str) -> Option<Alias> {
    m.runtime
        .registry()
        .function(function)
        .ok()?
        .aliases
        .into_iter()
        .find(|a| a.name == name)
}

fn alias_of(a: &AliasRecord) -> Alias {
    Alias {
        name: a.name.clone(),
        version: a.version.clone(),
        additional_version_weights: a.additional_version_weights.clone(),
        description: a.description.clone(),
    }
}

fn alias_record(alias: &Alias) -> AliasRecord {
    AliasRecord {
        name: alias.name.clone(),
        version: alias.version.clone(),
        description: alias.description.clone(),
        additional_version_weights: alias.additional_version_weights.clone(),
        last_modified: now_rfc3339(),
    }
}

impl Changing {
    /// The service this change is made to.
    pub(crate) fn management(&self) -> &Management {
        &self.management
    }

    /// Checks `record`'s configuration, stores the package, deploys,
    /// persists and remembers the result. A configuration out of range or a
    /// package refused changes nothing. A created function must load; an
    /// update that does not load (its handler not in its package, not a
    /// plugin, another ABI, a failing initializer) is kept with
    /// `last_update_status` `Failed` and its reason, while the record it
    /// replaced keeps serving; the moment a later change makes the pair
    /// load, it serves.
    pub(crate) fn apply(
        &self,
        mut record: FunctionRecord,
        upload: Option<crate::package::Upload>,
        change: Change,
    ) -> Result<FunctionRecord, ApiError> {
        let m = &*self.management;
        if change == Change::Create && m.has_function(&record.func_name) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "FSS.1060",
                format!("function `{}` already exists", record.func_name),
            ));
        }
        record.last_modified = now_rfc3339();
        // Values out of range are refused before anything is stored.
        record.validate()?;
        // A created function gets a key-value space of its own (so does one
        // recorded before spaces existed, at its next change), opened below
        // before any of its code runs, and the time it was created (an
        // asynchronous invocation accepted before it is not its own).
        let made_space = change == Change::Create || record.kv_space.is_empty();
        if made_space {
            record.kv_space = uuid::Uuid::new_v4().to_string();
        }
        if change == Change::Create {
            record.created_ms = now_ms();
        }
        let replaced = m
            .functions
            .lock()
            .get(&record.func_name)
            .map(|current| current.served().clone());
        // The package is kept from other changes' garbage collection until
        // recorded: held before it is stored, since another change's
        // collection may run the moment it exists.
        let (_stored, extracted_now) = match upload {
            Some(upload) => {
                let library = match change {
                    Change::Create => Some(
                        fnhost::Entry::parse(&record.handler)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?
                            .library,
                    ),
                    Change::Update => None,
                };
                let storing = m.pending.storing.read();
                let held = m.pending.hold(upload.digest());
                // The handler's library goes into the code cache as it is
                // extracted: the load below maps that copy.
                let handler_library = fnhost::Entry::parse(&record.handler).ok();
                let stage = handler_library.as_ref().map(|entry| crate::package::Stage {
                    runtime: &m.runtime,
                    library: &entry.library,
                });
                let package = m
                    .packages
                    .store_digested(upload.zip(), upload.digest(), library.as_deref(), stage)
                    .map_err(package_refused)?;
                drop(storing);
                record.digest = package.digest.clone();
                record.code_size = package.size;
                let extracted_now = package.extracted_now.then_some(package);
                (Some(held), extracted_now)
            }
            None => (None, None),
        };
        let _pending = m.pending.hold(&record.digest);
        // A package this call extracted is checked cheaply (what it wrote is
        // still there, unchanged); any other, or one changed meanwhile, is
        // verified fully.
        let fresh = extracted_now.filter(|package| match m.packages.verify_fresh(package) {
            Ok(()) => true,
            Err(why) => {
                log::warn!(target: "fnhost::server", "code package {} changed on disk as it was deployed ({why}): verified again", package.digest);
                false
            }
        });
        let config = match &fresh {
            Some(package) => m.config_in(&record, package)?,
            None => m.config_of(&record)?,
        };
        let previous = replaced.clone();
        m.store
            .kv_open(&record.func_name, &record.kv_space)
            .map_err(ApiError::store)?;
        // A change that fails closes the space it made, and deletes what
        // its initializer wrote there: nothing owns it.
        let close_made_space = || {
            if made_space {
                if let Err(e) = m.store.kv_close(&record.kv_space) {
                    log::warn!(target: "fnhost::server", "{}: the key-value space of a change that failed was not closed: {e}", record.func_name);
                }
            }
        };
        match (m.swap(config), replaced) {
            (Ok(d), _) => {
                let what = if change == Change::Create {
                    "created"
                } else {
                    "updated"
                };
                if d.changed {
                    log::info!(
                        target: "fnhost::server",
                        "{what} function {}: generation {} in {:.1} ms",
                        record.func_name,
                        d.generation.id(),
                        d.duration.as_secs_f64() * 1000.0
                    );
                }
                record.serving = None;
                record.last_update_status = SUCCESSFUL.to_owned();
                record.last_update_status_reason.clear();
            }
            (Err(e @ (DeployError::Load(_) | DeployError::Initializer(_))), Some(mut replaced))
                if change == Change::Update =>
            {
                let reason = e.public_message();
                log::warn!(
                    target: "fnhost::server",
                    "{}: the change is kept but does not load; the previous code and configuration keep serving: {e}",
                    record.func_name
                );
                replaced.serving = None;
                record.serving = Some(Box::new(replaced));
                record.last_update_status = FAILED.to_owned();
                record.last_update_status_reason = reason;
            }
            (Err(e), _) => {
                log::warn!(target: "fnhost::server", "{}: the deploy failed and changed nothing: {e}", record.func_name);
                close_made_space();
                m.collect_garbage();
                return Err(e.into());
            }
        }
        if let Err(e) = m.store.put_function(&record.func_name, &record) {
            // Not recorded (the disk is full, the shared database is away):
            // what served before serves again, so that this node agrees
            // with the store and the other nodes.
            let restored = match &previous {
                Some(previous) => m.config_of(previous).and_then(|c| Ok(m.swap(c).map(drop)?)),
                None => Ok(m.runtime.registry().delete_function(&record.func_name)?),
            };
            if let Err(r) = restored {
                log::error!(target: "fnhost::server", "{}: the change was not recorded and the previous code could not be restored: {}", record.func_name, r.message);
            }
            close_made_space();
            m.collect_garbage();
            return Err(ApiError::store(e));
        }
        m.functions
            .lock()
            .insert(record.func_name.clone(), record.clone());
        // A created function makes nothing garbage (and collecting reads
        // every function's records: on every create, that made creating N
        // functions cost N squared).
        if change == Change::Update {
            m.collect_garbage();
        }
        Ok(record)
    }

    /// Deletes function `name`: its records, its generations, and the
    /// packages nothing else references.
    pub(crate) fn delete_function(&self, name: &str) -> Result<(), ApiError> {
        let m = &*self.management;
        m.store
            .delete_function(name, &now_rfc3339())
            .map_err(ApiError::store)?;
        m.functions.lock().remove(name);
        m.deployments.forget(name);
        let deleted = m.runtime.registry().delete_function(name);
        m.collect_garbage();
        deleted?;
        Ok(())
    }

    /// Publishes what serves `latest` of `record`'s function as a version,
    /// and persists it. Returns the version's name.
    pub(crate) fn publish_version(
        &self,
        record: &FunctionRecord,
        version: Option<&str>,
        description: &str,
        digest: Option<&str>,
    ) -> Result<String, ApiError> {
        let m = &*self.management;
        let info = m.runtime.registry().publish_version(
            &record.func_name,
            version,
            description,
            digest,
        )?;
        // The version is what serves `latest` (not a change that failed).
        let mut function = record.served().clone();
        function.serving = None;
        let v = VersionRecord {
            version: info.version.clone(),
            description: description.to_owned(),
            function,
            created: now_rfc3339(),
        };
        m.store
            .put_version(&record.func_name, &info.version, &v)
            .map_err(|e| {
                // Not recorded: not published here either.
                let _ = m
                    .runtime
                    .registry()
                    .delete_version(&record.func_name, &info.version);
                ApiError::store(e)
            })?;
        Ok(info.version)
    }

    /// Creates an alias, or with `update` replaces one, and persists it.
    pub(crate) fn put_alias(
        &self,
        record: &FunctionRecord,
        alias: Alias,
        update: bool,
    ) -> Result<AliasRecord, ApiError> {
        let m = &*self.management;
        let registry = m.runtime.registry();
        let before = previous_alias(m, &record.func_name, &alias.name);
        let alias = if update {
            registry.update_alias(&record.func_name, alias)?
        } else {
            registry.create_alias(&record.func_name, alias)?
        };
        let stored = alias_record(&alias);
        if let Err(e) = m.store.put_alias(&record.func_name, &alias.name, &stored) {
            // Not recorded: the alias routes as before here too.
            let _ = match before {
                Some(before) => registry.update_alias(&record.func_name, before).map(drop),
                None => registry.delete_alias(&record.func_name, &alias.name),
            };
            return Err(ApiError::store(e));
        }
        Ok(stored)
    }

    /// Deletes an alias.
    pub(crate) fn delete_alias(
        &self,
        record: &FunctionRecord,
        alias: &str,
    ) -> Result<(), ApiError> {
        let m = &*self.management;
        let before = previous_alias(m, &record.func_name, alias);
        m.runtime
            .registry()
            .delete_alias(&record.func_name, alias)?;
        m.store.delete_alias(&record.func_name, alias).map_err(|e| {
            // Not recorded: the alias stays here too.
            if let Some(before) = before {
                let _ = m.runtime.registry().create_alias(&record.func_name, before);
            }
            ApiError::store(e)
        })
    }

    /// Deploys a library of the watched functions directory (`config` from
    /// the watcher) and remembers its record; such functions are not
    /// persisted (the directory is their source, redeployed at start).
    pub(crate) fn deploy_watched(
        &self,
        mut config: FunctionConfig,
    ) -> Result<Deployment, DeployError> {
        let m = &*self.management;
        // As through the API: a function reaches only the host functions
        // its sidecar lists.
        config.host_functions.get_or_insert_with(Vec::new);
        // Its key-value space is named by its file: it keeps its keys across
        // restarts as the directory keeps the library; a function created
        // through the API under its name gets a space of its own.
        let function = config.function_name().to_owned();
        config.function_id = format!("dir:{function}");
        if let Err(e) = m.store.kv_open(&function, &config.function_id) {
            log::warn!(target: "fnhost::server", "{function}: its key-value space could not be opened (its kv calls answer KvSpaceClosed): {e}");
        }
        let deployment = m.swap(config)?;
        let generation = &deployment.generation;
        let config = generation.config();
        let function = config.function_name().to_owned();
        if m.functions
            .lock()
            .get(&function)
            .is_some_and(|r| !r.digest.starts_with(WATCHED))
        {
            log::warn!(target: "fnhost::server", "{function}: a library in the functions directory replaced the function deployed through the API");
        }
        let record = FunctionRecord {
            project_id: "local".into(),
            func_name: function.clone(),
            package: "default".into(),
            runtime: "Rust1.x".into(),
            handler: config.entry.clone(),
            memory_size: config.memory_mb,
            timeout: u32::try_from(config.timeout.as_secs()).unwrap_or(u32::MAX),
            user_data: if config.user_data.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&config.user_data).unwrap_or_default()
            },
            initializer_handler: config.initializer.clone().unwrap_or_default(),
            initializer_timeout: config
                .initializer_timeout
                .map_or(0, |t| u32::try_from(t.as_secs()).unwrap_or(u32::MAX)),
            description: "deployed from the functions directory".to_owned(),
            digest: format!("{WATCHED}{}", generation.library().digest()),
            code_size: generation.library().size(),
            max_instance_num: config.instances.max_instances,
            reserved_instance_count: config.instances.reserved_instances,
            concurrent_num: config.instances.concurrency_per_instance,
            isolation: config.isolation,
            sandbox: config.sandbox.clone(),
            host_functions: config.host_functions.clone().unwrap_or_default(),
            kv_space: config.function_id.clone(),
            created_ms: 0,
            last_modified: now_rfc3339(),
            last_update_status: SUCCESSFUL.to_owned(),
            last_update_status_reason: String::new(),
            serving: None,
        };
        m.functions.lock().insert(function, record);
        Ok(deployment)
    }

    /// Brings this node's function `name` in line with the shared store,
    /// after another node changed it: the head through the same deploy as a
    /// local update (identical code and configuration is a no-op; in-flight
    /// calls finish on the generation they started on), versions installed
    /// beside it from their own records, aliases created, updated or
    /// deleted, and the function deleted here when the store has it no
    /// more. Whether anything changed.
    pub(crate) fn resync(&self, name: &str) -> Result<bool, ApiError> {
        let m = &*self.management;
        let registry = m.runtime.registry();
        let Some(record) = m
            .store
            .function::<FunctionRecord>(name)
            .map_err(ApiError::store)?
        else {
            if m.functions.lock().remove(name).is_none() {
                return Ok(false);
            }
            let deleted = registry.delete_function(name);
            m.collect_garbage();
            deleted?;
            return Ok(true);
        };
        let versions: Vec<VersionRecord> = m.store.versions(name).map_err(ApiError::store)?;
        let aliases: Vec<Alias> = m
            .store
            .aliases::<AliasRecord>(name)
            .map_err(ApiError::store)?
            .iter()
            .map(alias_of)
            .collect();
        let mut changed = m.swap(m.config_of(record.served())?)?.changed;
        let here = registry.function(name)?;
        for v in &versions {
            if !here.versions.iter().any(|h| h.version == v.version) {
                registry.install_version(&v.version, &v.description, m.config_of(&v.function)?)?;
                changed = true;
            }
        }
        for a in &aliases {
            match here.aliases.iter().find(|h| h.name == a.name) {
                Some(h) if h == a => {}
                Some(_) => {
                    registry.update_alias(name, a.clone())?;
                    changed = true;
                }
                None => {
                    registry.create_alias(name, a.clone())?;
                    changed = true;
                }
            }
        }
        for h in &here.aliases {
            if !aliases.iter().any(|a| a.name == h.name) {
                registry.delete_alias(name, &h.name)?;
                changed = true;
            }
        }
        for h in &here.versions {
            if !versions.iter().any(|v| v.version == h.version) {
                registry.delete_version(name, &h.version)?;
                changed = true;
            }
        }
        let previous = m.functions.lock().insert(name.to_owned(), record.clone());
        if changed || previous.as_ref() != Some(&record) {
            m.collect_garbage();
            return Ok(true);
        }
        Ok(false)
    }

    /// Restores every function, version and alias from the store, then
    /// deletes what nothing references.
    pub(crate) fn restore(&self) -> Result<(), StoreError> {
        let m = &*self.management;
        let records: Vec<FunctionRecord> = m.store.functions()?;
        for record in records {
            let name = record.func_name.clone();
            let versions: Vec<VersionRecord> = m.store.versions(&name)?;
            let aliases: Vec<AliasRecord> = m.store.aliases(&name)?;
            let restored = (|| -> Result<(), ApiError> {
                for v in &versions {
                    m.deploy(&v.function)?;
                    m.runtime.registry().publish_version(
                        &name,
                        Some(&v.version),
                        &v.description,
                        None,
                    )?;
                }
                // What served before the restart serves after it (while a
                // change has failed, the record it replaced).
                m.deploy(record.served())?;
                for a in &aliases {
                    m.runtime.registry().create_alias(&name, alias_of(a))?;
                }
                Ok(())
            })();
            match restored {
                Ok(()) => log::info!(
                    target: "fnhost::server",
                    "restored function {name} ({} versions, {} aliases)",
                    versions.len(),
                    aliases.len()
                ),
                Err(e) => {
                    log::error!(target: "fnhost::server", "cannot restore function {name}: {}", e.message)
                }
            }
            m.functions.lock().insert(name, record);
        }
        m.collect_garbage();
        Ok(())
    }
}

fn isolation_name(isolation: fnhost::Isolation) -> String {
    serde_json::to_value(isolation)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// The watcher's deploys (`directory::WatchedDeploys` takes `begin_blocking`)
    /// wait for a change an HTTP handler has begun, and then proceed.
    #[test]
    fn a_blocking_change_waits_for_the_async_change_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(fnhost::RuntimeConfig {
            cache_dir: Some(dir.path().join("cache")),
            ..fnhost::RuntimeConfig::default()
        })
        .unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        let packages = PackageStore::new(dir.path().join("code")).unwrap();
        let management = Arc::new(Management::new(runtime, store, packages, false));
        let executor = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let held = executor.block_on(management.begin("f"));
        let (began, heard) = std::sync::mpsc::channel();
        let other = Arc::clone(&management);
        let watcher = std::thread::spawn(move || {
            let _changing = other.begin_blocking("f");
            began.send(()).unwrap();
        });
        assert!(
            heard.recv_timeout(Duration::from_millis(300)).is_err(),
            "a second change began while the first was in progress"
        );
        drop(held);
        heard
            .recv_timeout(Duration::from_secs(10))
            .expect("the second change began once the first ended");
        watcher.join().unwrap();
    }
}
