//! The host's typed errors. A *function* failing (an error result, a panic,
//! a timeout) is not an error here: it is an [`Outcome::Failure`](crate::Outcome)
//! of a successful invocation. These are the caller's and the deployer's
//! mistakes: bad libraries, bad configuration, bad requests.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::config::ConfigError;
use crate::elf::ElfError;

/// Why a library or function could not be loaded. The host is unaffected:
/// nothing of the library was called (or, for an initializer, its failure is
/// reported per invocation instead).
#[derive(Debug, Error)]
pub enum LoadError {
    /// The entry is not of the form `NAME.HANDLER`.
    #[error("invalid entry `{0}`: expected NAME.HANDLER, e.g. testplugin.Handler")]
    InvalidEntry(String),
    /// Neither `NAME.so` nor `libNAME.so` exists in the code directory.
    #[error("no library for `{name}` in {}: looked for {}{}", dir.display(), tried.join(" and "), hint_suffix(hint))]
    LibraryNotFound {
        /// The library part of the entry.
        name: String,
        /// The code directory.
        dir: PathBuf,
        /// File names tried.
        tried: Vec<String>,
        /// What was found instead, when something was (see
        /// [`Entry::miss_hint`](crate::Entry::miss_hint)); empty otherwise.
        hint: String,
    },
    /// The initializer entry names another library than the handler.
    #[error("initializer `{initializer}` must be in the same library as handler `{handler}`")]
    InitializerInOtherLibrary {
        /// The handler entry.
        handler: String,
        /// The initializer entry.
        initializer: String,
    },
    /// Reading the library (or writing its cached copy) failed.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// The file is not a complete ELF shared object for this machine.
    #[error("{} is not a loadable library: {reason}", path.display())]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: ElfError,
    },
    /// The dynamic loader refused the library (missing dependency, bad relocation...).
    #[error("cannot load {}: {message}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },
    /// A shared library, but it does not export `fnhost_plugin_descriptor`.
    #[error("{} is not an fnhost plugin: it does not export the `fnhost_plugin_descriptor` symbol (build it with fnhost_api::export_plugin! or FNHOST_EXPORT_DESCRIPTOR)", path.display())]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// The plugin was built against an ABI this host cannot run.
    #[error("{} was built for fnhost ABI {plugin_major}.{plugin_minor}, but this host runs ABI {host_major}.{host_minor} (it accepts {host_major}.0 to {host_major}.{host_minor}); rebuild the plugin against a matching fnhost-api", path.display())]
    AbiVersion {
        /// The file.
        path: PathBuf,
        /// The plugin's major.
        plugin_major: u16,
        /// The plugin's minor.
        plugin_minor: u16,
        /// The host's major.
        host_major: u16,
        /// The host's minor.
        host_minor: u16,
    },
    /// The plugin's ABI types are laid out differently from the host's.
    #[error("{} was built against a different fnhost ABI layout; rebuild it against this host's fnhost-api:\n  {}", path.display(), differences.join("\n  "))]
    AbiLayout {
        /// The file.
        path: PathBuf,
        /// One readable line per difference.
        differences: Vec<String>,
    },
    /// The descriptor is malformed (bad magic, null tables, bad names...).
    #[error("{} has an invalid fnhost descriptor: {reason}", path.display())]
    InvalidDescriptor {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Loading the library in a throwaway worker process (the pre-flight)
    /// showed its initialization code (ELF constructors) crashing, exiting
    /// or blocking; it was never mapped in the host.
    #[error("{}: {what}", path.display())]
    Initialization {
        /// The file.
        path: PathBuf,
        /// What happened, e.g. "the library's initialization code crashed: SIGABRT".
        what: String,
    },
    /// The library has no handler of that name.
    #[error(
        "library `{library}` has no handler `{handler}`; its handlers are: {}",
        list_or_none(available)
    )]
    UnknownHandler {
        /// The library name.
        library: String,
        /// The handler asked for.
        handler: String,
        /// The handlers it has.
        available: Vec<String>,
    },
    /// The library has no initializer of that name.
    #[error(
        "library `{library}` has no initializer `{initializer}`; its initializers are: {}",
        list_or_none(available)
    )]
    UnknownInitializer {
        /// The library name.
        library: String,
        /// The initializer asked for.
        initializer: String,
        /// The initializers it has.
        available: Vec<String>,
    },
    /// The function's configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A worker process could not load the library (process isolation: the
    /// ABI and handler checks happen in the worker).
    #[error("{0}")]
    InWorker(String),
    /// The sandbox cannot run as configured: a strict sandbox on a host
    /// that lacks a layer, or a function's sandbox policy the operator
    /// does not allow.
    #[error("{0}")]
    Sandbox(String),
    /// A host function could not be registered (a bad or repeated name).
    #[error(transparent)]
    HostFunction(#[from] crate::host_call::RegisterError),
}

impl LoadError {
    /// The message without the host's filesystem paths: files by their
    /// name, the code directory as "the code package". For answers to
    /// clients, which must not learn how the server's disk is laid out.
    pub fn public_message(&self) -> String {
        match self {
            LoadError::LibraryNotFound {
                name, tried, hint, ..
            } => format!(
                "no library for `{name}` in the code package: looked for {}{}",
                tried.join(" and "),
                hint_suffix(hint)
            ),
            LoadError::Io { path, .. }
            | LoadError::NotALibrary { path, .. }
            | LoadError::Open { path, .. }
            | LoadError::NotAPlugin { path }
            | LoadError::AbiVersion { path, .. }
            | LoadError::AbiLayout { path, .. }
            | LoadError::InvalidDescriptor { path, .. }
            | LoadError::Initialization { path, .. } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "the library".to_owned());
                file_names_only(&self.to_string().replace(&*path.to_string_lossy(), &name))
            }
            other => file_names_only(&other.to_string()),
        }
    }
}

/// `text` with every absolute path (a `/` that starts a word) cut to its
/// last component.
pub fn file_names_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut at_boundary = true;
    while let Some(c) = rest.chars().next() {
        if c == '/' && at_boundary {
            let end = rest
                .find(|c: char| c.is_whitespace() || "`'\"(),;:".contains(c))
                .unwrap_or(rest.len());
            let path = &rest[..end];
            if path.len() > 1 && path[1..].contains('/') {
                out.push_str(path.trim_end_matches('/').rsplit('/').next().unwrap_or(""));
                rest = &rest[end..];
                at_boundary = false;
                continue;
            }
        }
        at_boundary = c.is_whitespace() || "`'\"(=:".contains(c);
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

impl DeployError {
    /// The message without the host's filesystem paths (see
    /// [`LoadError::public_message`]).
    pub fn public_message(&self) -> String {
        match self {
            DeployError::Load(e) => e.public_message(),
            other => file_names_only(&other.to_string()),
        }
    }
}

/// `; HINT`, or nothing.
fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".into()
    } else {
        names.join(", ")
    }
}

/// Why an invocation was refused before the function ran.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvokeError {
    /// The payload is over the runtime's limit (6 MB by default, as FunctionGraph's sync limit).
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The host could not start a worker thread.
    #[error("cannot start a worker thread: {0}")]
    NoWorker(String),
    /// Every instance is busy and the queue is full, or the wait for a free
    /// instance outlasted the function's timeout.
    #[error("too many requests for function `{function}`: {reason}")]
    TooManyRequests {
        /// The function.
        function: String,
        /// Queue full, or waited too long.
        reason: String,
    },
    /// No such function, version or alias.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// The caller's [`CallOptions`](crate::CallOptions) are out of bounds.
    #[error("invalid call options: {0}")]
    InvalidOptions(String),
    /// A [`CallHandle`](crate::CallHandle)'s result was taken already.
    #[error("the call's result was taken already")]
    ResultTaken,
}

/// A function, version or alias that does not exist.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum NotFound {
    /// No function of that name.
    #[error("function `{0}` not found")]
    Function(String),
    /// No published version of that name.
    #[error("version `{version}` of function `{function}` not found")]
    Version {
        /// The function.
        function: String,
        /// The version.
        version: String,
    },
    /// No alias of that name.
    #[error("alias `{alias}` of function `{function}` not found")]
    Alias {
        /// The function.
        function: String,
        /// The alias.
        alias: String,
    },
}

/// Why a deploy (or another change to a function) was refused. The function
/// keeps serving exactly as before.
#[derive(Debug, Error)]
pub enum DeployError {
    /// The new code could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The new code's initializer failed, panicked or timed out.
    #[error("the initializer of the new code failed ({}): {}", .0.error_type, .0.message)]
    Initializer(crate::FunctionError),
    /// No such function, version or alias.
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_messages_name_files_not_paths() {
        let e = LoadError::LibraryNotFound {
            name: "orders".into(),
            dir: "/var/lib/fnhost/code/abc/root".into(),
            tried: vec!["orders.so".into(), "liborders.so".into()],
            hint: String::new(),
        };
        assert!(e.to_string().contains("/var/lib"));
        assert_eq!(
            e.public_message(),
            "no library for `orders` in the code package: looked for orders.so and liborders.so"
        );
        let e = LoadError::Open {
            path: "/run/user/0/fnhost/libs/0123.so".into(),
            message:
                "/run/user/0/fnhost/libs/0123.so: undefined symbol: x, needed by /usr/lib/libz.so.1"
                    .into(),
        };
        let m = e.public_message();
        assert!(!m.contains("/run") && !m.contains("/usr"), "{m}");
        assert!(m.contains("0123.so") && m.contains("libz.so.1"), "{m}");
        assert_eq!(
            file_names_only("worker: `/tmp/x/y.so` is bad (in /a/b/c), not /v or a/b"),
            "worker: `y.so` is bad (in c), not /v or a/b"
        );
    }
}
