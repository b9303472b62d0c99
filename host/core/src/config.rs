//! Configuration: a function's (what to load and the context it runs
//! with) and a runtime's (limits and locations all its functions share).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use thiserror::Error;

/// FunctionGraph's memory sizes, in MB.
pub const MEMORY_SIZES_MB: [u32; 15] = [
    128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 8192, 10240,
];

/// The longest synchronous timeout FunctionGraph allows.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(900);
/// The most instances of one function (FunctionGraph's per-function limit).
pub const MAX_INSTANCES: u32 = 1000;

/// How long loading a new library in its pre-flight worker may take by
/// default (its constructors).
pub const DEFAULT_PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on worker processes alive at once, across every function.
pub const DEFAULT_MAX_WORKER_PROCESSES: usize = 64;

/// An invalid function configuration.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Memory size not among FunctionGraph's sizes.
    #[error("memory size {0} MB is not supported; choose one of {sizes}", sizes = MEMORY_SIZES_MB.map(|m| m.to_string()).join(", "))]
    MemorySize(u32),
    /// Timeout out of range.
    #[error("timeout {0:?} is out of range (1 ms to 900 s for synchronous invocation)")]
    Timeout(std::time::Duration),
    /// Instance limits out of range.
    #[error("invalid instance settings: {0}")]
    Instances(String),
    /// A function name FunctionGraph would not accept.
    #[error("invalid function name `{0}`: use 1 to 60 letters, digits, `-` and `_`")]
    Name(String),
    /// A package (function group) name FunctionGraph would not accept.
    #[error("invalid package name `{0}`: use 1 to 64 letters, digits, `-` and `_`, starting with a letter")]
    Package(String),
}

/// Whether `package` is a name FunctionGraph accepts for a package
/// (function group): 1 to 64 ASCII letters, digits, `-` and `_`, starting
/// with a letter. Package names appear in URNs, paths and metrics labels,
/// so `../x`, `a/b` or a NUL never get that far.
pub fn is_valid_package_name(package: &str) -> bool {
    (1..=64).contains(&package.len())
        && package.starts_with(|c: char| c.is_ascii_alphabetic())
        && package
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Limits and locations shared by all functions of a [`Runtime`](crate::Runtime).
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
    /// binary here or calls [`crate::worker::main_if_worker`] first thing
    /// in `main`).
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
    /// The sandbox of worker processes (process isolation and the
    /// pre-flight): strict, auto (the default: every layer the kernel
    /// allows) or off. See [`crate::sandbox`].
    pub sandbox: crate::sandbox::SandboxConfig,
}

impl RuntimeConfig {
    /// The code cache directory used when `cache_dir` is `None`:
    /// `$TMPDIR/fnhost-<uid>/libs`.
    pub fn default_cache_dir() -> PathBuf {
        crate::code_cache::CodeCache::default_dir()
    }

    /// The executable worker processes run: `worker_executable`, else the
    /// running one, as `/proc/self/exe` (a child started from this process
    /// runs this very binary through it, even after the file was replaced
    /// or deleted by an upgrade: by its path the worker would be another
    /// build, or none).
    pub fn worker_executable(&self) -> PathBuf {
        self.worker_executable.clone().unwrap_or_else(|| {
            let own = PathBuf::from("/proc/self/exe");
            if own.exists() {
                own
            } else {
                std::env::current_exe().unwrap_or_else(|_| "fnhost".into())
            }
        })
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
            preflight_timeout: DEFAULT_PREFLIGHT_TIMEOUT,
            max_worker_processes: DEFAULT_MAX_WORKER_PROCESSES,
            worker_queue_timeout: Duration::from_secs(10),
            sandbox: crate::sandbox::SandboxConfig::default(),
        }
    }
}

/// Delegated credentials handed to the function through its context. Never
/// printed by `Debug`, never written to fnhost's logs or summaries.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Deprecated temporary access key.
    pub access_key: String,
    /// Deprecated temporary secret key.
    pub secret_key: String,
    /// Security access key.
    pub security_access_key: String,
    /// Security secret key.
    pub security_secret_key: String,
    /// Security token.
    pub security_token: String,
    /// IAM token.
    pub token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &String| if s.is_empty() { "unset" } else { "<redacted>" };
        f.debug_struct("Credentials")
            .field("access_key", &set(&self.access_key))
            .field("secret_key", &set(&self.secret_key))
            .field("security_access_key", &set(&self.security_access_key))
            .field("security_secret_key", &set(&self.security_secret_key))
            .field("security_token", &set(&self.security_token))
            .field("token", &set(&self.token))
            .finish()
    }
}

/// How to load and run one function.
///
/// ```
/// use std::time::Duration;
/// let config = fnhost::FunctionConfig::new("testplugin.Handler", "/srv/functions/testplugin")
///     .initializer("testplugin.Init")
///     .timeout(Duration::from_secs(10))
///     .memory_mb(256)
///     .user_data("NAME", "fnhost");
/// assert_eq!(config.function_name(), "testplugin");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// `NAME.HANDLER`: library `NAME.so` (or `libNAME.so`), handler `HANDLER`.
    pub entry: String,
    /// Directory holding the library.
    pub code_dir: PathBuf,
    /// Optional initializer entry `NAME.INIT` in the same library.
    pub initializer: Option<String>,
    /// The initializer's own timeout (default: the function's timeout).
    pub initializer_timeout: Option<Duration>,
    /// Invocation timeout (default 3 s).
    pub timeout: Duration,
    /// Configured memory in MB (default 128).
    pub memory_mb: u32,
    /// User data (the function's environment), read with `Context::user_data`.
    pub user_data: BTreeMap<String, String>,
    /// Function name (default: the library part of the entry).
    pub name: Option<String>,
    /// Version served (default `latest`).
    pub version: String,
    /// Alias invoked through (default none).
    pub alias: String,
    /// Package / function group (default `default`).
    pub package: String,
    /// Project id (default empty).
    pub project_id: String,
    /// Delegated credentials.
    pub credentials: Credentials,
    /// Instances and concurrency.
    pub instances: InstanceConfig,
    /// Where the handler runs (default [`Isolation::Auto`]).
    pub isolation: Isolation,
    /// What its sandbox allows beyond the minimum, in process isolation
    /// (default: no network, a 512 MB `/tmp`, an empty environment).
    #[serde(default)]
    pub sandbox: crate::sandbox::SandboxPolicy,
    /// The [host functions](crate::host_call) it may call, by name; `None`
    /// (the default) for every one the runtime has. A name outside the list
    /// answers `HostFunctionNotFound`, as a name that does not exist does.
    #[serde(default)]
    pub host_functions: Option<Vec<String>>,
    /// An id of this function's creation, the program's to choose (`""`
    /// by default): host functions read it
    /// ([`HostCallContext::function_id`](crate::HostCallContext::function_id))
    /// to tell a function from an earlier one of the same name whose calls
    /// may still be running. `fnhost serve` makes a new one each time a
    /// function is created.
    #[serde(default)]
    pub function_id: String,
}

/// Where a function's handler runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// On the calling thread (for `fnhost serve`, the HTTP I/O thread that
    /// read the request): no hand-off to a worker thread, which on a busy
    /// server is most of an invocation's cost. The timeout is checked only
    /// when the handler returns (a late result is answered `timeout`), a
    /// handler that blocks holds up the other requests of that thread, and
    /// a crash takes the host down: for short handlers that are trusted not
    /// to block. Calls that must wait for an instance or an initializer
    /// still run off the I/O threads.
    Inline,
    /// In the host process, on a worker thread: the caller is answered at
    /// the deadline even if the handler never returns (it is counted as a
    /// runaway); a crash takes the host down.
    InProcess,
    /// In worker processes: a timeout kills the worker (and every process
    /// it started), the memory size is enforced (`RLIMIT_DATA`), a crash is
    /// answered `runtime exited unexpectedly` and the worker replaced, and
    /// the host never maps the library. Workers run the worker executable
    /// ([`RuntimeConfig::worker_executable`], [`crate::worker`]).
    Process,
    /// The default: [`Isolation::Process`] for a library that carries its
    /// own language runtime which cannot share the host process safely (a
    /// Go `c-shared` library: its runtime can never be unloaded, so every
    /// hot swap would leave a whole Go runtime behind, and several of them
    /// share one set of signal handlers; see docs/src/handlers/go.md), and
    /// [`Isolation::InProcess`] for every other library. Decided from the
    /// library's ELF when a generation is built; the generation's
    /// configuration then names the mode chosen.
    #[default]
    Auto,
}

impl Isolation {
    /// How much a mode contains: inline < in-process < process; `Auto`
    /// is never below in-process.
    fn rank(self) -> u8 {
        match self {
            Isolation::Inline => 0,
            Isolation::InProcess | Isolation::Auto => 1,
            Isolation::Process => 2,
        }
    }

    /// Whether this mode, asked for explicitly, is below an operator's
    /// `floor` (`Auto` never is: it runs at the floor).
    pub fn is_below(self, floor: Isolation) -> bool {
        self != Isolation::Auto && self.rank() < floor.rank()
    }

    /// The mode a function runs in under an operator's `floor`: this one,
    /// or the floor when this is lower (`Auto` under a `Process` floor is
    /// `Process`).
    pub fn at_least(self, floor: Isolation) -> Isolation {
        match floor {
            Isolation::Process => Isolation::Process,
            Isolation::InProcess | Isolation::Auto if self == Isolation::Inline => {
                Isolation::InProcess
            }
            _ => self,
        }
    }

    /// The mode for a library: `Auto` resolved by what the library is.
    pub fn resolve(self, go_library: bool) -> Isolation {
        match self {
            Isolation::Auto if go_library => Isolation::Process,
            Isolation::Auto => Isolation::InProcess,
            other => other,
        }
    }
}

impl std::str::FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inline" => Ok(Isolation::Inline),
            "in-process" => Ok(Isolation::InProcess),
            "process" => Ok(Isolation::Process),
            "auto" => Ok(Isolation::Auto),
            other => Err(format!(
                "isolation `{other}` is not auto, inline, in-process or process"
            )),
        }
    }
}

/// How many invocations of a function may run at once, FunctionGraph's way:
/// an *instance* runs the initializer once and then serves up to
/// `concurrency_per_instance` invocations at a time; at most `max_instances`
/// exist. Invocations beyond that wait in a queue of at most `max_queued`,
/// for at most the function's timeout, and then fail with
/// [`InvokeError::TooManyRequests`](crate::InvokeError).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceConfig {
    /// Invocations one instance serves at once (default 1, FunctionGraph's default).
    pub concurrency_per_instance: u32,
    /// Most instances (default 400).
    pub max_instances: u32,
    /// Instances created and initialized at deploy time and never released
    /// for idleness (default 0).
    pub reserved_instances: u32,
    /// Instances unused this long are released; the next invocation creates
    /// (and initializes) a new one (default 10 minutes).
    pub idle_timeout: Duration,
    /// Most invocations waiting for a free instance (default 1000).
    pub max_queued: u32,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        InstanceConfig {
            concurrency_per_instance: 1,
            max_instances: 400,
            reserved_instances: 0,
            idle_timeout: Duration::from_secs(600),
            max_queued: 1000,
        }
    }
}

impl FunctionConfig {
    /// A function of `entry` in `code_dir` with FunctionGraph's defaults.
    pub fn new(entry: impl Into<String>, code_dir: impl Into<PathBuf>) -> FunctionConfig {
        FunctionConfig {
            entry: entry.into(),
            code_dir: code_dir.into(),
            initializer: None,
            initializer_timeout: None,
            timeout: Duration::from_secs(3),
            memory_mb: 128,
            user_data: BTreeMap::new(),
            name: None,
            version: "latest".into(),
            alias: String::new(),
            package: "default".into(),
            project_id: String::new(),
            credentials: Credentials::default(),
            instances: InstanceConfig::default(),
            isolation: Isolation::Auto,
            sandbox: crate::sandbox::SandboxPolicy::default(),
            host_functions: None,
            function_id: String::new(),
        }
    }

    /// Sets the initializer entry.
    pub fn initializer(mut self, entry: impl Into<String>) -> Self {
        self.initializer = Some(entry.into());
        self
    }
    /// Sets the initializer's timeout.
    pub fn initializer_timeout(mut self, timeout: Duration) -> Self {
        self.initializer_timeout = Some(timeout);
        self
    }
    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sets the memory size in MB.
    pub fn memory_mb(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }
    /// Adds a user data entry.
    pub fn user_data(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.user_data.insert(key.into(), value.into());
        self
    }
    /// Sets the function name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets the version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }
    /// Sets the alias.
    pub fn alias(mut self, alias: impl Into<String>) -> Self {
        self.alias = alias.into();
        self
    }
    /// Sets the package.
    pub fn package(mut self, package: impl Into<String>) -> Self {
        self.package = package.into();
        self
    }
    /// Sets the project id.
    pub fn project_id(mut self, project: impl Into<String>) -> Self {
        self.project_id = project.into();
        self
    }
    /// Sets the delegated credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets where the handler runs.
    pub fn isolation(mut self, isolation: Isolation) -> Self {
        self.isolation = isolation;
        self
    }

    /// Allows it the host functions `names` only (see
    /// [`host_functions`](Self::host_functions)).
    pub fn allow_host_functions<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.host_functions = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Sets what its sandbox allows (process isolation).
    pub fn sandbox(mut self, sandbox: crate::sandbox::SandboxPolicy) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Sets instances and concurrency.
    pub fn instances(mut self, instances: InstanceConfig) -> Self {
        self.instances = instances;
        self
    }

    /// The function's name: the configured one, else the entry's library part.
    pub fn function_name(&self) -> &str {
        match &self.name {
            Some(n) => n,
            None => self
                .entry
                .rsplit_once('.')
                .map(|(lib, _)| lib)
                .unwrap_or(&self.entry),
        }
    }

    /// The initializer's timeout.
    pub fn effective_initializer_timeout(&self) -> Duration {
        self.initializer_timeout.unwrap_or(self.timeout)
    }

    /// Checks memory size, timeouts and instance limits.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let i = &self.instances;
        if i.concurrency_per_instance == 0 || i.concurrency_per_instance > 1000 {
            return Err(ConfigError::Instances(format!(
                "concurrency per instance must be 1 to 1000, got {}",
                i.concurrency_per_instance
            )));
        }
        if i.max_instances == 0
            || i.max_instances > MAX_INSTANCES
            || i.reserved_instances > i.max_instances
        {
            return Err(ConfigError::Instances(format!(
                "need 1 <= max instances ({}) <= {MAX_INSTANCES} and reserved instances ({}) <= max instances",
                i.max_instances, i.reserved_instances
            )));
        }
        let name = self.function_name();
        if name.is_empty()
            || name.len() > 60
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError::Name(name.escape_debug().take(80).collect()));
        }
        if !is_valid_package_name(&self.package) {
            // Quoted with its control characters escaped and cut: the name
            // may be anything a client sent.
            let shown: String = self.package.escape_debug().take(80).collect();
            return Err(ConfigError::Package(shown));
        }
        if !MEMORY_SIZES_MB.contains(&self.memory_mb) {
            return Err(ConfigError::MemorySize(self.memory_mb));
        }
        for t in [self.timeout, self.effective_initializer_timeout()] {
            if t < Duration::from_millis(1) || t > MAX_TIMEOUT {
                return Err(ConfigError::Timeout(t));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_isolation_floor_raises_what_is_lower_and_refuses_what_is_asked_lower() {
        use Isolation::*;
        assert_eq!(Auto.at_least(Process), Process);
        assert_eq!(Inline.at_least(InProcess), InProcess);
        assert_eq!(Auto.at_least(InProcess), Auto);
        assert_eq!(Inline.at_least(Inline), Inline);
        assert!(InProcess.is_below(Process));
        assert!(Inline.is_below(InProcess));
        assert!(!Auto.is_below(Process), "auto runs at the floor");
        assert!(!Process.is_below(Process));
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials {
            security_token: "very-secret".into(),
            ..Credentials::default()
        };
        let printed = format!("{:?}", FunctionConfig::new("a.B", "/x").credentials(c));
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn rejects_memory_sizes_functiongraph_does_not_offer() {
        let c = FunctionConfig::new("a.B", "/x").memory_mb(100);
        assert_eq!(c.validate(), Err(ConfigError::MemorySize(100)));
        assert!(c.validate().unwrap_err().to_string().contains("128, 256"));
        assert_eq!(
            FunctionConfig::new("a.B", "/x").memory_mb(10240).validate(),
            Ok(())
        );
    }

    #[test]
    fn rejects_timeouts_beyond_the_sync_limit() {
        let c = FunctionConfig::new("a.B", "/x").timeout(Duration::from_secs(901));
        assert!(matches!(c.validate(), Err(ConfigError::Timeout(_))));
    }
}
