//! The functions directory (`--functions-dir`): every `NAME.so` in it is
//! deployed as function `NAME` and redeployed on change, configured by its
//! sidecar manifest `NAME.toml` when there is one (with its triggers),
//! through the [management service](crate::management) like every other
//! change.

use std::sync::Arc;

use fnhost::{DeployError, Deployment, FunctionConfig};

use crate::config::ServeError;
use crate::state::Shared;

/// Deploys every library of `dir` as a function of package `default`, and
/// keeps the server's records in step with the watcher.
pub(crate) fn watch(
    state: &Shared,
    dir: &std::path::Path,
    isolation: fnhost::Isolation,
) -> Result<fnhost::watch::Watcher, ServeError> {
    use fnhost::watch::{WatchEvent, WatchOptions};
    let dir = std::fs::canonicalize(dir)?;
    let mut options = WatchOptions {
        initializer: Some("Init".into()),
        ..WatchOptions::default()
    };
    options.template.isolation = isolation;
    options.sidecar = Some(fnhost::watch::Sidecar {
        extension: "toml".into(),
        apply: Arc::new(apply_sidecar),
    });
    let code_dir = dir.clone();
    let deploys = WatchedDeploys {
        state: Arc::clone(state),
        executor: tokio::runtime::Handle::current(),
    };
    let management = Arc::clone(&state.management);
    let watcher = state
        .runtime
        .watch_with(&dir, options, deploys, move |event| match event {
            WatchEvent::Deployed {
                function,
                generation,
                changed,
                duration,
                ..
            } => {
                if changed {
                    log::info!(target: "fnhost::server", "deployed {function} from {}: generation {generation} in {:.1} ms", code_dir.display(), duration.as_secs_f64() * 1000.0);
                } else {
                    log::info!(target: "fnhost::server", "{function}: unchanged, generation {generation} keeps serving");
                }
            }
            WatchEvent::Failed { function, error } => {
                // The listing shows why; it names files, not the server's paths.
                let reason = error.replace(&format!("{}/", code_dir.display()), "");
                let served = management.serves(&function);
                management.mark_watched_failed(&function, &reason);
                if served {
                    log::error!(target: "fnhost::server", "{function}: {error}; the previous code keeps serving")
                } else {
                    log::error!(target: "fnhost::server", "{function}: {error}; nothing serves {function}")
                }
            }
            WatchEvent::Incomplete { function, reason } => {
                log::info!(target: "fnhost::server", "{function}: waiting for a complete library ({reason})")
            }
            WatchEvent::Removed { function } => {
                management.forget_failed_watched(&function);
                log::info!(target: "fnhost::server", "{function}: library removed; it keeps serving")
            }
            // `Init` is tried on every library: most have none.
            WatchEvent::Warning { function, warning } => {
                log::debug!(target: "fnhost::server", "{function}: {warning}")
            }
        })
        .map_err(|e| ServeError::Config(format!("cannot watch {}: {e}", dir.display())))?;
    Ok(watcher)
}

/// The configuration of directory function `name` from its sidecar
/// manifest `file` (`NAME.toml` beside `NAME.so`), over what the watcher
/// made (`watched`: the directory, and the server's `--isolation` unless the
/// manifest names one).
pub(crate) fn apply_sidecar(
    name: &str,
    file: &std::path::Path,
    watched: FunctionConfig,
) -> Result<FunctionConfig, String> {
    let manifest =
        fnhost_manifest::Manifest::read_sidecar(file, name).map_err(|e| e.to_string())?;
    if manifest.name != name {
        return Err(format!(
            "{}: name is `{}`, but the sidecar of {name}.so describes function `{name}`",
            file.display(),
            manifest.name
        ));
    }
    if manifest.library() != name {
        return Err(format!(
            "{}: handler `{}` is not in library `{name}` ({name}.so beside it)",
            file.display(),
            manifest.handler
        ));
    }
    let mut config = manifest.function_config(watched.code_dir.clone());
    if manifest.isolation.is_none() {
        config.isolation = watched.isolation;
    }
    Ok(config)
}

/// The watcher's deploys go through the management service: each takes the
/// lock for its deploy, its record and its sidecar's triggers.
pub(crate) struct WatchedDeploys {
    pub(crate) state: crate::state::Shared,
    /// The server's executor: trigger timers are its tasks.
    pub(crate) executor: tokio::runtime::Handle,
}

impl fnhost::watch::Deploy for WatchedDeploys {
    fn deploy(&mut self, config: FunctionConfig) -> Result<Deployment, DeployError> {
        let name = config.function_name().to_owned();
        let changing = self.state.management.begin_blocking(&name);
        let sidecar = config.code_dir.join(format!("{name}.toml"));
        let deployment = changing.deploy_watched(config)?;
        let wanted = if sidecar.is_file() {
            fnhost_manifest::Manifest::read_sidecar(&sidecar, &name).map(|m| m.triggers)
        } else {
            Ok(Vec::new())
        };
        match wanted {
            Ok(wanted) => {
                // APIG paths are unique across functions: the triggers' lock.
                let _triggers = self.state.management.triggers_blocking();
                let _inside = self.executor.enter();
                if let Err(e) = crate::triggers::sync_directory(&self.state, &name, &wanted) {
                    log::error!(target: "fnhost::server", "{name}: the triggers of {} were not applied: {e}", sidecar.display());
                }
            }
            Err(e) => log::error!(target: "fnhost::server", "{name}: triggers not applied: {e}"),
        }
        drop(changing);
        Ok(deployment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `testplugin.toml` beside `testplugin.so` without `name = "testplugin"`
    /// was refused at start (`missing field name`), and the function was
    /// silently absent. Its name is now the file's stem; another name is
    /// refused with a message that says why.
    #[test]
    fn a_sidecar_is_named_by_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("testplugin.toml");
        let watched = || FunctionConfig::new("testplugin.Handler", dir.path()).name("testplugin");
        std::fs::write(&file, "handler = \"testplugin.Handler\"\nmemory_mb = 256\n").unwrap();
        let config = apply_sidecar("testplugin", &file, watched()).unwrap();
        assert_eq!(config.function_name(), "testplugin");
        assert_eq!(config.memory_mb, 256);
        std::fs::write(
            &file,
            "name = \"other\"\nhandler = \"testplugin.Handler\"\n",
        )
        .unwrap();
        let e = apply_sidecar("testplugin", &file, watched()).unwrap_err();
        assert!(e.contains("name is `other`"), "{e}");
    }
}
