//! `fnhost watch --build`'s source loop: the project is rebuilt whenever one
//! of its source files changes (anything in the project but its build
//! output, `target/`, hidden files and built objects), one build per burst
//! of saves. The runtime's directory watcher then swaps in what each
//! successful build wrote.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::Watcher as _;

use crate::project::Project;

/// How long the sources must be quiet before a build starts.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// What the loop did.
#[derive(Debug)]
pub enum Rebuild<'a> {
    /// A source changed: a build starts.
    Building(&'a str),
    /// The build wrote this library.
    Built(PathBuf),
    /// The build failed; the previous library keeps serving.
    Failed(String),
}

/// Whether a change at `path` (under `root`) is not a source change.
fn ignored(root: &Path, output: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return true;
    };
    (output != root && path.starts_with(output))
        || rel.starts_with("target")
        || rel
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        || path.extension().is_some_and(|e| e == "so" || e == "o")
}

/// Rebuilds `project` (into `output`, the directory the runtime watches)
/// whenever a source file changes, telling `report` each step; runs until
/// the file watcher stops.
pub fn rebuild_on_change(
    project: &Project,
    output: &Path,
    debug: bool,
    mut report: impl FnMut(Rebuild<'_>),
) -> notify::Result<()> {
    let root = std::fs::canonicalize(&project.dir)?;
    let output = std::fs::canonicalize(output).unwrap_or_else(|_| output.to_owned());
    let (changed, changes) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                for path in event.paths {
                    let _ = changed.send(path);
                }
            }
        }
    })?;
    watcher.watch(&root, notify::RecursiveMode::Recursive)?;
    loop {
        let Ok(first) = changes.recv() else {
            return Ok(());
        };
        let mut relevant = !ignored(&root, &output, &first);
        // Quiet for the debounce period: one build for a burst of saves.
        while let Ok(path) = changes.recv_timeout(DEBOUNCE) {
            relevant |= !ignored(&root, &output, &path);
        }
        if !relevant {
            continue;
        }
        report(Rebuild::Building(&project.manifest.name));
        match project.build(debug) {
            Ok(library) => report(Rebuild::Built(library)),
            Err(e) => report(Rebuild::Failed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_source_changes_start_a_build() {
        let root = Path::new("/p");
        let out = Path::new("/p/target/release");
        assert!(!ignored(root, out, Path::new("/p/src/lib.rs")));
        assert!(!ignored(root, out, Path::new("/p/fnhost.toml")));
        for no in [
            "/p/target/release/x.so",
            "/p/target/debug/build.log",
            "/p/.git/index",
            "/p/src/.lib.rs.swp",
            "/p/handler.o",
            "/p/libx.so",
            "/elsewhere/a.rs",
        ] {
            assert!(ignored(root, out, Path::new(no)), "{no}");
        }
        // A C project builds into its own directory: its sources still count.
        assert!(!ignored(root, root, Path::new("/p/handler.c")));
    }
}
