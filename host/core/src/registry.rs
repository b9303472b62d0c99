//! [`Registry`]: named functions, their head (`latest`), published versions
//! and aliases, and hot swap.
//!
//! Deploying new code (or configuration) builds and checks a new
//! [`Generation`], creates its first instances (running the initializer), and
//! only then makes it the head in one atomic store. Invocations already
//! running keep the generation they started on (they hold it); a replaced
//! generation that no version references is *draining* until its last
//! invocation (runaway handlers included) returns, then *retired*. A deploy
//! that fails at any step returns the error and changes nothing.
//!
//! Retired generations' libraries stay mapped (see [`crate::loader`]); what is
//! released is the generation itself: its instances and configuration.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};

use crate::call_handle::CallHandle;
use crate::call_options::CallOptions;
use crate::config::FunctionConfig;
use crate::error::{DeployError, InvokeError, NotFound};
use crate::generation::build::build_generation;
use crate::generation::{Generation, InitReport, Mode};
use crate::invocation::Served;
use crate::outcome::InvokeResult;
use crate::shared::Shared;
use crate::trace::CallIds;

/// The head version's name.
pub const LATEST: &str = "latest";

/// An alias: a name for a version, optionally sending a share of invocations
/// to other versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The alias name.
    pub name: String,
    /// The version it points at (`latest` or a published version).
    pub version: String,
    /// Other versions and the percentage of invocations each gets
    /// (`{"v2": 10}` sends 10 % to v2, the rest to `version`).
    pub additional_version_weights: BTreeMap<String, u32>,
    /// Free text.
    pub description: String,
}

impl Alias {
    /// An alias of `name` for `version`, without weights.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Alias {
        Alias {
            name: name.into(),
            version: version.into(),
            additional_version_weights: BTreeMap::new(),
            description: String::new(),
        }
    }

    /// Adds a weighted version.
    pub fn with_weight(mut self, version: impl Into<String>, percent: u32) -> Alias {
        self.additional_version_weights
            .insert(version.into(), percent);
        self
    }

    /// Picks a version for one invocation.
    fn pick(&self) -> &str {
        if self.additional_version_weights.is_empty() {
            return &self.version;
        }
        let draw = fastrand::u32(0..100);
        let mut cumulative: u32 = 0;
        for (version, weight) in &self.additional_version_weights {
            cumulative = cumulative.saturating_add(*weight);
            if draw < cumulative {
                return version;
            }
        }
        &self.version
    }
}

/// A published, immutable version.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VersionInfo {
    /// Its name (e.g. `v1`).
    pub version: String,
    /// Free text.
    pub description: String,
    /// Digest of its code.
    pub digest: String,
    /// When it was published.
    pub published: SystemTime,
    /// Its generation.
    pub generation: Arc<Generation>,
    /// `version`, shared with every invocation's context (no allocation per call).
    route_name: Arc<str>,
}

/// A function as the registry sees it.
#[derive(Debug, Clone)]
pub struct FunctionInfo {
    /// Its name.
    pub name: String,
    /// The head generation (`latest`).
    pub latest: Arc<Generation>,
    /// Published versions, by name.
    pub versions: Vec<VersionInfo>,
    /// Aliases, by name.
    pub aliases: Vec<Alias>,
    /// When the head last changed.
    pub last_modified: SystemTime,
}

/// What a deploy did.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The generation now serving `latest`.
    pub generation: Arc<Generation>,
    /// The generation it replaced, if any.
    pub replaced: Option<Arc<Generation>>,
    /// False when the code and configuration were identical to the head's
    /// (nothing was swapped).
    pub changed: bool,
    /// From the deploy call to the new generation serving.
    pub duration: Duration,
}

/// Where one invocation goes: a generation, and the version and alias the
/// context reports.
#[derive(Debug, Clone)]
pub struct Route {
    /// The generation that runs it.
    pub generation: Arc<Generation>,
    /// The version served (`latest` or a published version).
    pub version: Arc<str>,
    /// The alias it came through.
    pub alias: Option<Arc<str>>,
    /// The request and trace ids the invocation reports (generated where
    /// `None`).
    pub ids: CallIds,
}

impl Route {
    /// The version, alias and ids an invocation through this route reports.
    pub(crate) fn served(&self) -> Served {
        Served {
            version: Some(Arc::clone(&self.version)),
            alias: self.alias.clone(),
            ids: self.ids,
            extras: None,
        }
    }

    fn new(generation: Arc<Generation>, version: Arc<str>, alias: Option<Arc<str>>) -> Route {
        Route {
            generation,
            version,
            alias,
            ids: CallIds::default(),
        }
    }

    /// The route with the caller's request and trace ids.
    pub fn with_ids(mut self, ids: CallIds) -> Route {
        self.ids = ids;
        self
    }

    /// Invokes the route's generation on a worker thread.
    pub fn invoke(&self, payload: &[u8]) -> Result<InvokeResult, InvokeError> {
        self.generation.invoke(payload, self.served(), Mode::Worker)
    }

    /// [`invoke`](Self::invoke) with the caller's [`CallOptions`] (its ids
    /// replace the route's where given).
    pub fn invoke_with_options(
        &self,
        payload: &[u8],
        options: CallOptions,
    ) -> Result<InvokeResult, InvokeError> {
        options.check().map_err(InvokeError::InvalidOptions)?;
        let mut served = self.served();
        served.prefer_ids(options.ids);
        served.extras = options.extras(None);
        self.generation.invoke(payload, served, Mode::Worker)
    }

    /// Starts the invocation without blocking (see [`CallHandle`]).
    pub fn invoke_async(&self, payload: impl Into<Vec<u8>>, options: CallOptions) -> CallHandle {
        CallHandle::start(
            Arc::clone(&self.generation),
            self.served(),
            payload.into(),
            options,
        )
    }
}

/// Generations by state, across the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenerationStats {
    /// Serving as a head or a published version.
    pub live: usize,
    /// Replaced, still finishing invocations.
    pub draining: usize,
    /// Replaced and drained (their libraries stay mapped).
    pub retired: u64,
}

struct Entry {
    name: String,
    latest: ArcSwap<Generation>,
    versions: RwLock<BTreeMap<String, VersionInfo>>,
    /// Aliases, each with its name shared by the invocations routed through it.
    aliases: RwLock<BTreeMap<String, (Alias, Arc<str>)>>,
    last_modified: Mutex<SystemTime>,
    /// Serializes changes to this function (deploys, publishes, aliases).
    change: Mutex<()>,
    /// Set, under `change`, when the function is deleted: a change that
    /// looked the entry up before the delete and took `change` after it
    /// must not apply to an entry the map no longer holds.
    deleted: std::sync::atomic::AtomicBool,
}

/// Functions by name, with versions, aliases and hot swap. Reached through
/// [`Runtime::registry`](crate::Runtime::registry).
pub struct Registry {
    shared: Arc<Shared>,
    functions: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// Generations not yet retired.
    tracked: Mutex<Vec<Arc<Generation>>>,
    retired: AtomicU64,
}

impl crate::housekeeping::Housekept for Registry {
    fn housekeep(&self) -> Option<std::time::Duration> {
        self.retire_drained();
        self.release_idle_instances();
        self.shortest_idle_timeout()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // The housekeeping thread ends at its next round.
        self.shared.housekeeping.wake();
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field(
                "functions",
                &self.functions.read().keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Splits `name[:qualifier]`.
fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once(':') {
        Some((name, q)) if !q.is_empty() => (name, Some(q)),
        Some((name, _)) => (name, None),
        None => (target, None),
    }
}

impl Registry {
    pub(crate) fn new(shared: Arc<Shared>) -> Registry {
        Registry {
            shared,
            functions: RwLock::new(BTreeMap::new()),
            tracked: Mutex::new(Vec::new()),
            retired: AtomicU64::new(0),
        }
    }

    fn entry(&self, name: &str) -> Result<Arc<Entry>, NotFound> {
        self.functions
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| NotFound::Function(name.to_owned()))
    }

    /// Runs `f` with function `name`'s change lock held, on the entry the
    /// map holds once the lock is taken: every mutator goes through here,
    /// so none applies to an entry a concurrent delete removed (it then
    /// sees the function as not found, or the one created since).
    fn with_entry<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Arc<Entry>) -> Result<T, DeployError>,
    ) -> Result<T, DeployError> {
        loop {
            let entry = self.entry(name)?;
            let _change = entry.change.lock();
            if entry.deleted.load(Ordering::Acquire) {
                continue; // Deleted meanwhile: look again.
            }
            return f(&entry);
        }
    }

    /// Creates the function `config.function_name()` or replaces its head
    /// with new code and configuration (see the module docs). Identical code
    /// and configuration is a no-op.
    pub fn deploy(&self, config: FunctionConfig) -> Result<Deployment, DeployError> {
        let started = Instant::now();
        let name = config.function_name().to_owned();
        let generation = build_generation(&self.shared, config)?;
        match self.with_entry(&name, |entry| {
            self.replace_head(entry, &name, Arc::clone(&generation), started)
        }) {
            Err(DeployError::NotFound(NotFound::Function(_))) => {
                self.create(name, generation, started)
            }
            done => done,
        }
    }

    /// Replaces `entry`'s head with `generation` (its change lock held).
    fn replace_head(
        &self,
        entry: &Arc<Entry>,
        name: &str,
        generation: Arc<Generation>,
        started: Instant,
    ) -> Result<Deployment, DeployError> {
        let current = entry.latest.load_full();
        if current.library().digest() == generation.library().digest()
            && current.config() == generation.config()
        {
            return Ok(Deployment {
                generation: current,
                replaced: None,
                changed: false,
                duration: started.elapsed(),
            });
        }
        generation.warm_up().map_err(warm_up_error)?;
        self.track(&generation);
        let replaced = entry.latest.swap(Arc::clone(&generation));
        *entry.last_modified.lock() = SystemTime::now();
        self.refresh_liveness(entry);
        log::info!(
            target: "fnhost::registry",
            "function {name}: generation {} ({}) replaced generation {} in {:?}",
            generation.id(),
            generation.library().digest(),
            replaced.id(),
            started.elapsed()
        );
        Ok(Deployment {
            generation,
            replaced: Some(replaced),
            changed: true,
            duration: started.elapsed(),
        })
    }

    fn create(
        &self,
        name: String,
        generation: Arc<Generation>,
        started: Instant,
    ) -> Result<Deployment, DeployError> {
        generation.warm_up().map_err(warm_up_error)?;
        let mut functions = self.functions.write();
        if functions.contains_key(&name) {
            drop(functions);
            // Lost a race with another create: deploy over it.
            return self.deploy(generation.config().clone());
        }
        self.track(&generation);
        functions.insert(
            name.clone(),
            Arc::new(Entry {
                name: name.clone(),
                latest: ArcSwap::new(Arc::clone(&generation)),
                versions: RwLock::new(BTreeMap::new()),
                aliases: RwLock::new(BTreeMap::new()),
                last_modified: Mutex::new(SystemTime::now()),
                change: Mutex::new(()),
                deleted: std::sync::atomic::AtomicBool::new(false),
            }),
        );
        log::info!(target: "fnhost::registry", "function {name}: created with generation {}", generation.id());
        Ok(Deployment {
            generation,
            replaced: None,
            changed: true,
            duration: started.elapsed(),
        })
    }

    fn track(&self, generation: &Arc<Generation>) {
        self.tracked.lock().push(Arc::clone(generation));
    }

    /// Marks which of a function's generations still serve (the head and
    /// published versions), then retires drained ones.
    fn refresh_liveness(&self, entry: &Entry) {
        let mut live = vec![entry.latest.load().id()];
        live.extend(entry.versions.read().values().map(|v| v.generation.id()));
        for g in self.tracked.lock().iter() {
            if g.config().function_name() == entry.name {
                g.set_live(live.contains(&g.id()));
            }
        }
        self.sweep();
    }

    /// Retires generations that are neither live nor running anything. The
    /// retired ones are dropped, and logged, after the list's lock is let go.
    fn sweep(&self) {
        let mut retired = Vec::new();
        self.tracked.lock().retain(|g| {
            let keep = g.is_live() || g.in_flight() > 0;
            if !keep {
                retired.push(Arc::clone(g));
            }
            keep
        });
        self.retired
            .fetch_add(retired.len() as u64, Ordering::Relaxed);
        for g in retired {
            log::info!(target: "fnhost::registry", "generation {} retired", g.id());
        }
    }

    /// Retires the generations whose last call has ended (the housekeeping
    /// thread's round).
    pub(crate) fn retire_drained(&self) {
        self.sweep();
    }

    /// The shortest idle timeout among the functions' generations.
    pub(crate) fn shortest_idle_timeout(&self) -> Option<std::time::Duration> {
        self.tracked
            .lock()
            .iter()
            .map(|g| g.config().instances.idle_timeout)
            .min()
    }

    /// Live, draining and retired generations. A pure read: a drained
    /// generation the housekeeping thread has not yet retired counts as
    /// retired.
    pub fn generation_stats(&self) -> GenerationStats {
        let mut stats = GenerationStats::default();
        let mut drained = 0;
        for g in self.tracked.lock().iter() {
            if g.is_live() {
                stats.live += 1;
            } else if g.in_flight() > 0 {
                stats.draining += 1;
            } else {
                drained += 1;
            }
        }
        stats.retired = self.retired.load(Ordering::Relaxed) + drained;
        stats
    }

    /// The generation serving `target` (`name`, `name:latest`, `name:VERSION`
    /// or `name:ALIAS`; an alias draws among its weighted versions), the
    /// version it serves and the alias it came through.
    pub fn resolve(&self, target: &str) -> Result<Route, NotFound> {
        let (name, qualifier) = split_target(target);
        let entry = self.entry(name)?;
        let qualifier = match qualifier {
            None | Some(LATEST) => {
                return Ok(Route::new(entry.latest.load_full(), latest_name(), None))
            }
            Some(q) => q,
        };
        if let Some(v) = entry.versions.read().get(qualifier) {
            return Ok(Route::new(
                Arc::clone(&v.generation),
                Arc::clone(&v.route_name),
                None,
            ));
        }
        let aliases = entry.aliases.read();
        let (alias, alias_name) = aliases.get(qualifier).ok_or_else(|| NotFound::Alias {
            function: name.to_owned(),
            alias: qualifier.to_owned(),
        })?;
        let version = alias.pick();
        let (generation, version) = if version == LATEST {
            (entry.latest.load_full(), latest_name())
        } else {
            let versions = entry.versions.read();
            let v = versions.get(version).ok_or_else(|| NotFound::Version {
                function: name.to_owned(),
                version: version.to_owned(),
            })?;
            (Arc::clone(&v.generation), Arc::clone(&v.route_name))
        };
        Ok(Route::new(
            generation,
            version,
            Some(Arc::clone(alias_name)),
        ))
    }

    /// Invokes `target` (see [`resolve`](Self::resolve)) on a worker thread.
    pub fn invoke(&self, target: &str, payload: &[u8]) -> Result<InvokeResult, InvokeError> {
        self.resolve(target)?.invoke(payload)
    }

    /// [`invoke`](Self::invoke) with the caller's [`CallOptions`].
    pub fn invoke_with_options(
        &self,
        target: &str,
        payload: &[u8],
        options: CallOptions,
    ) -> Result<InvokeResult, InvokeError> {
        self.resolve(target)?.invoke_with_options(payload, options)
    }

    /// Starts `target` without blocking (see [`CallHandle`]); an unknown
    /// target is a handle that has ended with [`InvokeError::NotFound`].
    pub fn invoke_async(
        &self,
        target: &str,
        payload: impl Into<Vec<u8>>,
        options: CallOptions,
    ) -> CallHandle {
        match self.resolve(target) {
            Ok(route) => route.invoke_async(payload, options),
            Err(e) => CallHandle::ended(Err(e.into())),
        }
    }

    /// Publishes the current head as an immutable version. `version` defaults
    /// to `v<N>`; `expected_digest`, when given, must match the head's code
    /// (so a publish cannot race an update unnoticed).
    pub fn publish_version(
        &self,
        function: &str,
        version: Option<&str>,
        description: &str,
        expected_digest: Option<&str>,
    ) -> Result<VersionInfo, DeployError> {
        self.with_entry(function, |entry| {
            let head = entry.latest.load_full();
            let digest = head.library().digest().to_hex();
            if let Some(expected) = expected_digest.filter(|d| !d.is_empty()) {
                if expected != digest {
                    return Err(DeployError::Conflict(format!(
                        "the code changed: digest is {digest}, not {expected}"
                    )));
                }
            }
            let mut versions = entry.versions.write();
            let name = match version.filter(|v| !v.is_empty()) {
                Some(v) => v.to_owned(),
                None => (1..)
                    .map(|n| format!("v{n}"))
                    .find(|v| !versions.contains_key(v))
                    .unwrap_or_default(),
            };
            valid_qualifier(&name, "version")?;
            if versions.contains_key(&name) {
                return Err(DeployError::Conflict(format!(
                    "version `{name}` of `{function}` already exists"
                )));
            }
            if entry.aliases.read().contains_key(&name) {
                return Err(DeployError::Conflict(format!(
                    "`{name}` is already an alias of `{function}`"
                )));
            }
            let info = VersionInfo {
                route_name: Arc::from(name.as_str()),
                version: name.clone(),
                description: description.to_owned(),
                digest,
                published: SystemTime::now(),
                generation: head,
            };
            versions.insert(name, info.clone());
            drop(versions);
            self.refresh_liveness(entry);
            Ok(info)
        })
    }

    /// Installs a version published elsewhere (by another node sharing the
    /// state, or before a restart) from its own code and configuration,
    /// without touching the head: the head's generation is reused when the
    /// code and configuration are the same. A version already installed
    /// with the same code and configuration is a no-op; with other code, a
    /// conflict (versions are immutable).
    pub fn install_version(
        &self,
        version: &str,
        description: &str,
        config: FunctionConfig,
    ) -> Result<VersionInfo, DeployError> {
        let function = config.function_name().to_owned();
        valid_qualifier(version, "version")?;
        self.entry(&function)?; // Before the build, which may be slow.
        let built = build_generation(&self.shared, config)?;
        let probe = Arc::clone(&built);
        let same = move |g: &Generation| {
            g.library().digest() == probe.library().digest() && g.config() == probe.config()
        };
        self.with_entry(&function, |entry| {
            if let Some(existing) = entry.versions.read().get(version) {
                return if same(&existing.generation) {
                    Ok(existing.clone())
                } else {
                    Err(DeployError::Conflict(format!(
                        "version `{version}` of `{function}` already exists with other code"
                    )))
                };
            }
            if entry.aliases.read().contains_key(version) {
                return Err(DeployError::Conflict(format!(
                    "`{version}` is already an alias of `{function}`"
                )));
            }
            let head = entry.latest.load_full();
            let generation = if same(&head) {
                head
            } else {
                built.warm_up().map_err(warm_up_error)?;
                self.track(&built);
                built
            };
            let info = VersionInfo {
                route_name: Arc::from(version),
                version: version.to_owned(),
                description: description.to_owned(),
                digest: generation.library().digest().to_hex(),
                published: SystemTime::now(),
                generation,
            };
            entry
                .versions
                .write()
                .insert(version.to_owned(), info.clone());
            self.refresh_liveness(entry);
            Ok(info)
        })
    }

    /// Deletes a published version no alias points at.
    pub fn delete_version(&self, function: &str, version: &str) -> Result<(), DeployError> {
        self.with_entry(function, |entry| {
            if let Some((alias, _)) = entry.aliases.read().values().find(|(a, _)| {
                a.version == version || a.additional_version_weights.contains_key(version)
            }) {
                return Err(DeployError::Conflict(format!(
                    "alias `{}` still routes to version `{version}`",
                    alias.name
                )));
            }
            if entry.versions.write().remove(version).is_none() {
                return Err(NotFound::Version {
                    function: function.to_owned(),
                    version: version.to_owned(),
                }
                .into());
            }
            self.refresh_liveness(entry);
            Ok(())
        })
    }

    fn check_alias(entry: &Entry, alias: &Alias) -> Result<(), DeployError> {
        valid_qualifier(&alias.name, "alias")?;
        let versions = entry.versions.read();
        let exists = |v: &str| v == LATEST || versions.contains_key(v);
        if versions.contains_key(&alias.name) {
            return Err(DeployError::Conflict(format!(
                "`{}` is already a version",
                alias.name
            )));
        }
        if !exists(&alias.version) {
            return Err(NotFound::Version {
                function: entry.name.clone(),
                version: alias.version.clone(),
            }
            .into());
        }
        let mut total: u32 = 0;
        for (v, w) in &alias.additional_version_weights {
            if !exists(v) {
                return Err(NotFound::Version {
                    function: entry.name.clone(),
                    version: v.clone(),
                }
                .into());
            }
            if *v == alias.version {
                return Err(DeployError::Invalid(format!(
                    "version `{v}` is both the alias's version and a weighted version"
                )));
            }
            if *w > 100 {
                return Err(DeployError::Invalid(format!(
                    "the weight of version `{v}` is {w} %: a weight is a percentage, 0 to 100"
                )));
            }
            total = total.saturating_add(*w);
        }
        if total > 100 {
            return Err(DeployError::Invalid(format!(
                "additional version weights add up to {total} %, more than 100 %"
            )));
        }
        Ok(())
    }

    /// Creates an alias.
    pub fn create_alias(&self, function: &str, alias: Alias) -> Result<Alias, DeployError> {
        self.with_entry(function, |entry| {
            Self::check_alias(entry, &alias)?;
            let mut aliases = entry.aliases.write();
            if aliases.contains_key(&alias.name) {
                return Err(DeployError::Conflict(format!(
                    "alias `{}` of `{function}` already exists",
                    alias.name
                )));
            }
            let shared_name = Arc::from(alias.name.as_str());
            aliases.insert(alias.name.clone(), (alias.clone(), shared_name));
            Ok(alias)
        })
    }

    /// Replaces an alias's target, weights and description.
    pub fn update_alias(&self, function: &str, alias: Alias) -> Result<Alias, DeployError> {
        self.with_entry(function, |entry| {
            Self::check_alias(entry, &alias)?;
            let mut aliases = entry.aliases.write();
            let slot = aliases
                .get_mut(&alias.name)
                .ok_or_else(|| NotFound::Alias {
                    function: function.to_owned(),
                    alias: alias.name.clone(),
                })?;
            slot.0 = alias.clone();
            Ok(alias)
        })
    }

    /// Deletes an alias.
    pub fn delete_alias(&self, function: &str, alias: &str) -> Result<(), DeployError> {
        self.with_entry(function, |entry| {
            let removed = entry.aliases.write().remove(alias);
            match removed {
                Some(_) => Ok(()),
                None => Err(NotFound::Alias {
                    function: function.to_owned(),
                    alias: alias.to_owned(),
                }
                .into()),
            }
        })
    }

    /// Deletes a function with its versions and aliases. Running invocations
    /// finish; its generations then retire.
    pub fn delete_function(&self, function: &str) -> Result<(), DeployError> {
        self.with_entry(function, |entry| {
            entry.deleted.store(true, Ordering::Release);
            {
                let mut functions = self.functions.write();
                if functions
                    .get(function)
                    .is_some_and(|e| Arc::ptr_eq(e, entry))
                {
                    functions.remove(function);
                }
            }
            // This entry's generations only: a function of the same name
            // created after the removal keeps its own.
            let mut ours = vec![entry.latest.load().id()];
            ours.extend(entry.versions.read().values().map(|v| v.generation.id()));
            for g in self.tracked.lock().iter() {
                if ours.contains(&g.id()) {
                    g.set_live(false);
                }
            }
            Ok(())
        })?;
        self.sweep();
        Ok(())
    }

    /// A function's state.
    pub fn function(&self, name: &str) -> Result<FunctionInfo, NotFound> {
        let entry = self.entry(name)?;
        Ok(Self::info(&entry))
    }

    fn info(entry: &Entry) -> FunctionInfo {
        FunctionInfo {
            name: entry.name.clone(),
            latest: entry.latest.load_full(),
            versions: entry.versions.read().values().cloned().collect(),
            aliases: entry
                .aliases
                .read()
                .values()
                .map(|(a, _)| a.clone())
                .collect(),
            last_modified: *entry.last_modified.lock(),
        }
    }

    /// Every function, by name.
    pub fn list(&self) -> Vec<FunctionInfo> {
        self.functions
            .read()
            .values()
            .map(|e| Self::info(e))
            .collect()
    }

    /// Releases instances idle past their idle timeout, in every live
    /// generation; returns how many.
    pub fn release_idle_instances(&self) -> usize {
        // Copied out: ending a worker process waits for it, not under the lock.
        let tracked: Vec<Arc<Generation>> = self.tracked.lock().clone();
        tracked.iter().map(|g| g.release_idle_instances()).sum()
    }
}

/// The shared name of the head version.
fn latest_name() -> Arc<str> {
    static NAME: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(LATEST));
    Arc::clone(&NAME)
}

/// A failed warm-up as a deploy error: a library a worker could not load is
/// a load error, anything else the initializer's.
fn warm_up_error(report: InitReport) -> DeployError {
    let error = report.error.unwrap_or_else(init_failed);
    if error.error_type == crate::isolation::process::LOAD_ERROR {
        DeployError::Load(crate::error::LoadError::InWorker(error.message))
    } else {
        DeployError::Initializer(error)
    }
}

fn init_failed() -> crate::FunctionError {
    crate::FunctionError::new(crate::error_type::INITIALIZATION, "initializer failed")
}

fn valid_qualifier(name: &str, what: &str) -> Result<(), DeployError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name != LATEST
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(DeployError::Invalid(format!(
            "invalid {what} name `{name}`: use 1 to 63 letters, digits, `-`, `_` and `.`, not `latest`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_name_and_qualifier() {
        assert_eq!(split_target("orders"), ("orders", None));
        assert_eq!(split_target("orders:prod"), ("orders", Some("prod")));
        assert_eq!(split_target("orders:"), ("orders", None));
    }

    #[test]
    fn an_alias_without_weights_always_picks_its_version() {
        let a = Alias::new("prod", "v1");
        assert!((0..100).all(|_| a.pick() == "v1"));
        let all = Alias::new("prod", "v1").with_weight("v2", 100);
        assert!((0..100).all(|_| all.pick() == "v2"));
    }
}
