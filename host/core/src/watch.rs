//! Watching a directory of libraries: every `NAME.so` (or cargo's
//! `libNAME.so`) is deployed as function `NAME`, and redeployed when it
//! changes: the edit-build-check loop for handler authors, and plugin-style
//! deployment for operators.
//!
//! Changes are debounced (a file is deployed once it has been quiet for the
//! debounce period) and a file is only deployed when it is a complete ELF
//! shared object, so a half-written build is never loaded. A rebuild that
//! fails to load or initialize is reported and the previous generation keeps
//! serving. A deleted file leaves its function serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use notify::{RecursiveMode, Watcher as _};

use crate::config::FunctionConfig;
use crate::elf;
use crate::error::DeployError;
use crate::registry::{Deployment, Registry};
use crate::runtime::Runtime;

/// Where the watcher sends the configuration of each complete library: the
/// runtime's [`Registry`] by default ([`Runtime::watch`]); a program that
/// keeps its own records, or serializes its changes, passes its own
/// ([`Runtime::watch_with`]). Called on the watcher's thread.
pub trait Deploy: Send + 'static {
    /// Creates or hot-swaps the function `config` names.
    fn deploy(&mut self, config: FunctionConfig) -> Result<Deployment, DeployError>;
}

/// Deploys straight into a runtime's registry.
struct IntoRegistry(Runtime);

impl Deploy for IntoRegistry {
    fn deploy(&mut self, config: FunctionConfig) -> Result<Deployment, DeployError> {
        Registry::deploy(self.0.registry(), config)
    }
}

/// Configures a function from a file of its own beside its library (a
/// sidecar, e.g. the manifest `NAME.toml` beside `NAME.so`).
#[derive(Clone)]
pub struct Sidecar {
    /// The sidecar's extension (`toml` for `NAME.toml`). A change to the
    /// file redeploys the function.
    pub extension: String,
    /// Given the function's name, the sidecar's path and the configuration
    /// the watcher made, returns the configuration to deploy; an error fails
    /// that deploy (the previous generation keeps serving).
    #[allow(clippy::type_complexity)]
    pub apply: std::sync::Arc<
        dyn Fn(&str, &Path, FunctionConfig) -> Result<FunctionConfig, String> + Send + Sync,
    >,
}

impl std::fmt::Debug for Sidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sidecar")
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

/// What to deploy for each library.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Handler used for every function (default `Handler`).
    pub handler: String,
    /// Per-function handler overrides, by function name.
    pub handlers: BTreeMap<String, String>,
    /// Initializer name applied to every function that has it (e.g. `Init`);
    /// a library without it is deployed without one, with a
    /// [`WatchEvent::Warning`].
    pub initializer: Option<String>,
    /// Per-function initializer overrides, by function name (e.g. `orders`
    /// → `Init` for `--init orders.Init`).
    pub initializers: BTreeMap<String, String>,
    /// The configuration every function gets (entry and code directory are
    /// set by the watcher).
    pub template: FunctionConfig,
    /// Quiet period before a changed file is deployed (default 200 ms).
    pub debounce: Duration,
    /// A per-function configuration file beside each library, applied
    /// when it exists (default none).
    pub sidecar: Option<Sidecar>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            handler: "Handler".into(),
            handlers: BTreeMap::new(),
            initializer: None,
            initializers: BTreeMap::new(),
            template: FunctionConfig::new("watch.Handler", "."),
            debounce: Duration::from_millis(200),
            sidecar: None,
        }
    }
}

impl WatchOptions {
    /// The function a changed file belongs to: its library, or its sidecar.
    fn function_of(&self, path: &Path) -> Option<String> {
        if let Some(sidecar) = &self.sidecar {
            let file = path.file_name()?.to_str()?;
            if let Some(stem) = file
                .strip_suffix(sidecar.extension.as_str())
                .and_then(|s| s.strip_suffix('.'))
            {
                if !stem.is_empty() && !stem.starts_with('.') {
                    return Some(stem.to_owned());
                }
            }
        }
        function_name_of(path)
    }
}

/// What the watcher did.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The library was deployed (or was identical to what serves).
    Deployed {
        /// Function name.
        function: String,
        /// The generation now serving.
        generation: u64,
        /// Digest of its code.
        digest: String,
        /// False when the code and configuration were unchanged.
        changed: bool,
        /// Deploy time.
        duration: Duration,
    },
    /// The library failed to load or initialize; the previous generation
    /// (if any) keeps serving.
    Failed {
        /// Function name.
        function: String,
        /// Why.
        error: String,
    },
    /// The file is not a complete shared object (yet): not deployed.
    Incomplete {
        /// Function name.
        function: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file disappeared; the function keeps serving its last generation.
    Removed {
        /// Function name.
        function: String,
    },
    /// Something about the deploy that follows is probably not what was
    /// meant (an initializer the library does not have).
    Warning {
        /// Function name.
        function: String,
        /// What.
        warning: String,
    },
}

/// A running watcher; stops when dropped.
pub struct Watcher {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The function name a library file is deployed as, if it is one.
pub fn function_name_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let stem = file.strip_suffix(".so")?;
    let name = stem
        .strip_prefix("lib")
        .filter(|n| !n.is_empty())
        .unwrap_or(stem);
    Some(name.to_owned())
}

fn library_files(dir: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        if let Some(name) = function_name_of(&path) {
            found.insert(name, path);
        }
    }
    Ok(found)
}

impl Runtime {
    /// Deploys every library in `dir` now, then watches it (see the module
    /// docs); `on_event` hears about every deploy, failure and skip.
    pub fn watch(
        &self,
        dir: impl Into<PathBuf>,
        options: WatchOptions,
        on_event: impl FnMut(WatchEvent) + Send + 'static,
    ) -> Result<Watcher, notify::Error> {
        self.watch_with(dir, options, IntoRegistry(self.clone()), on_event)
    }

    /// Like [`watch`](Self::watch), deploying through `deploy` instead of
    /// straight into the registry.
    pub fn watch_with(
        &self,
        dir: impl Into<PathBuf>,
        options: WatchOptions,
        deploy: impl Deploy,
        on_event: impl FnMut(WatchEvent) + Send + 'static,
    ) -> Result<Watcher, notify::Error> {
        let dir = dir.into();
        let (changes_tx, changes) = crossbeam_channel::unbounded::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if changes_content(&event.kind) {
                        for path in event.paths {
                            let _ = changes_tx.send(path);
                        }
                    }
                }
            })?;
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        let (stop_tx, stop) = crossbeam_channel::bounded::<()>(0);
        let runtime = self.clone();
        let thread = std::thread::Builder::new()
            .name("fnhost-watch".into())
            .spawn(move || {
                let _watcher = watcher;
                run(runtime, deploy, dir, options, changes, stop, on_event)
            })
            .map_err(|e| notify::Error::generic(&e.to_string()))?;
        Ok(Watcher {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

/// Whether an event can change what a file holds. Reads (including the
/// watcher's own) and metadata changes do not count.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    use notify::EventKind;
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        _ => false,
    }
}

fn run(
    runtime: Runtime,
    mut deploy: impl Deploy,
    dir: PathBuf,
    options: WatchOptions,
    changes: Receiver<PathBuf>,
    stop: Receiver<()>,
    mut on_event: impl FnMut(WatchEvent),
) {
    // Function name -> when its file last changed.
    let mut pending: BTreeMap<String, Instant> = BTreeMap::new();
    let start = Instant::now() - options.debounce;
    match library_files(&dir) {
        Ok(files) => pending.extend(files.into_keys().map(|n| (n, start))),
        Err(e) => on_event(WatchEvent::Failed {
            function: String::new(),
            error: format!("cannot read {}: {e}", dir.display()),
        }),
    }
    loop {
        let now = Instant::now();
        let ready: Vec<String> = pending
            .iter()
            .filter(|(_, changed)| now.duration_since(**changed) >= options.debounce)
            .map(|(n, _)| n.clone())
            .collect();
        for name in ready {
            pending.remove(&name);
            for event in deploy_one(&runtime, &mut deploy, &dir, &options, &name) {
                on_event(event);
            }
        }
        let wait = pending
            .values()
            .map(|changed| (*changed + options.debounce).saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_secs(3600));
        select! {
            recv(changes) -> path => match path {
                // The watch is not recursive: every path is a direct child.
                Ok(path) => {
                    if let Some(name) = options.function_of(&path) {
                        pending.insert(name, Instant::now());
                    }
                }
                Err(_) => return,
            },
            recv(stop) -> _ => return,
            default(wait) => {}
        }
    }
}

fn deploy_one(
    runtime: &Runtime,
    deploy: &mut impl Deploy,
    dir: &Path,
    options: &WatchOptions,
    name: &str,
) -> Vec<WatchEvent> {
    let function = name.to_owned();
    let path = [
        dir.join(format!("{name}.so")),
        dir.join(format!("lib{name}.so")),
    ]
    .into_iter()
    .find(|p| p.is_file());
    let Some(path) = path else {
        return vec![WatchEvent::Removed { function }];
    };
    match crate::loader::read_library(&path) {
        Ok(bytes) => {
            if let Err(e) = elf::check_shared_object(&bytes) {
                return vec![WatchEvent::Incomplete {
                    function,
                    reason: e.to_string(),
                }];
            }
        }
        Err(e) => {
            return vec![WatchEvent::Incomplete {
                function,
                reason: e.to_string(),
            }]
        }
    }
    let handler = options.handlers.get(name).unwrap_or(&options.handler);
    let mut config = options.template.clone();
    config.entry = format!("{name}.{handler}");
    config.code_dir = dir.to_owned();
    config.name = Some(name.to_owned());
    config.initializer = None;
    if let Some(sidecar) = &options.sidecar {
        let file = dir.join(format!("{name}.{}", sidecar.extension));
        if file.is_file() {
            return vec![match (sidecar.apply)(name, &file, config) {
                Ok(config) => deployed(deploy, function, config),
                Err(error) => WatchEvent::Failed { function, error },
            }];
        }
    }
    let mut events = Vec::new();
    if let Some(init) = options
        .initializers
        .get(name)
        .or(options.initializer.as_ref())
    {
        // Read by a pre-flight worker: nothing of the library is mapped
        // here just to look (and in process isolation, never).
        match runtime.inspect_library(&path) {
            Ok(report) if report.initializers.iter().any(|i| i == init) => {
                config.initializer = Some(format!("{name}.{init}"));
            }
            Ok(report) => events.push(WatchEvent::Warning {
                function: function.clone(),
                warning: format!(
                    "initializer `{init}` is not in the library (it has: {}); deployed without one",
                    if report.initializers.is_empty() {
                        "none".to_owned()
                    } else {
                        report.initializers.join(", ")
                    }
                ),
            }),
            // The deploy itself reports why the library does not load.
            Err(_) => {}
        }
    }
    events.push(deployed(deploy, function, config));
    events
}

/// Deploys `config` and tells what happened.
fn deployed(deploy: &mut impl Deploy, function: String, config: FunctionConfig) -> WatchEvent {
    match deploy.deploy(config) {
        Ok(d) => WatchEvent::Deployed {
            function,
            generation: d.generation.id(),
            digest: d.generation.library().digest().to_hex(),
            changed: d.changed,
            duration: d.duration,
        },
        Err(e) => WatchEvent::Failed {
            function,
            error: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_file_names_map_to_function_names() {
        assert_eq!(
            function_name_of(Path::new("/x/echo.so")).as_deref(),
            Some("echo")
        );
        assert_eq!(
            function_name_of(Path::new("/x/libecho.so")).as_deref(),
            Some("echo")
        );
        assert_eq!(
            function_name_of(Path::new("/x/lib.so")).as_deref(),
            Some("lib")
        );
        assert_eq!(function_name_of(Path::new("/x/.echo.so.tmp")), None);
        assert_eq!(function_name_of(Path::new("/x/.libecho.so")), None);
        assert_eq!(function_name_of(Path::new("/x/libecho.d")), None);
    }
}
