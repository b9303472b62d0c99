//! The sandbox of worker processes: what a process-isolated handler (and a
//! library's constructors in a pre-flight) can reach.
//!
//! A sandboxed worker is three processes, all running fnhost's own code
//! until the last one loads the library:
//!
//! 1. the **keeper**, the host's child: it unshares the user, mount, IPC,
//!    UTS, cgroup and (by default) network namespaces, has the host write
//!    its uid and gid maps (an unprivileged uid on the host, a plain user
//!    inside), then watches the rest and reports to the host how the
//!    worker ended: its exit status, and a forbidden system call the
//!    kernel reported to it through seccomp's user notification;
//! 2. **init**, PID 1 of a new PID namespace: builds the minimal root
//!    (read-only system libraries, `/dev/null`, `/dev/zero`,
//!    `/dev/urandom`, its own `/proc`, a private size-limited `/tmp`),
//!    drops every privilege and reaps orphans. When it ends, the kernel
//!    ends everything in the namespace: a handler's `setsid` double fork
//!    included. Nothing inside can signal it (it installs no handlers);
//! 3. the **worker**, PID 2: rlimits, an empty environment plus what the
//!    function declares, `no_new_privs`, Landlock (read-only root,
//!    writable `/tmp`, no signals or abstract sockets out of the domain,
//!    no TCP in a function without network) and a seccomp filter, then it
//!    loads the library and serves calls as an unsandboxed worker does.
//!
//! The host puts the keeper in a cgroup of its own (memory and pids
//! controllers) before anything forks. Every layer is set up once per
//! worker, never per call. Layers the kernel refuses are probed once
//! ([`availability`]) and, in [`SandboxMode::Auto`], skipped with a
//! warning; [`SandboxMode::Strict`] refuses to run without all of them.

pub(crate) mod cgroup;
pub mod outbound;
mod probe;
pub(crate) mod seccomp;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use outbound::Outbound;
pub use probe::{availability, Availability};

/// The argument after the worker argument (`__worker`) that makes a
/// worker set up its sandbox first (its first frame is then a
/// [`JailSpec`]; the worker's side is `isolation::jail`).
pub(crate) const SANDBOXED_ARG: &str = "sandboxed";

/// The keeper's end of the pipe on which it reports how the worker ended.
pub(crate) const REPORT_FD: i32 = 6;

/// The error type of a call that ended because its handler broke the
/// sandbox's rules (a forbidden system call, the process limit).
pub const SANDBOX_VIOLATION: &str = "SandboxViolation";

/// How much of the sandbox a runtime insists on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Every layer, or refuse to start.
    Strict,
    /// Every layer the kernel allows; the missing ones are named in a
    /// warning at start (and by `fnhost sandbox check`).
    #[default]
    Auto,
    /// No sandbox: workers contain accidents (crashes, hangs, leaks) only.
    Off,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "strict" => Ok(SandboxMode::Strict),
            "auto" => Ok(SandboxMode::Auto),
            "off" => Ok(SandboxMode::Off),
            other => Err(format!("sandbox mode `{other}` is not strict, auto or off")),
        }
    }
}

impl std::fmt::Display for SandboxMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SandboxMode::Strict => "strict",
            SandboxMode::Auto => "auto",
            SandboxMode::Off => "off",
        })
    }
}

/// The sandbox settings a runtime applies to every worker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Strict, auto (the default) or off.
    pub mode: SandboxMode,
    /// The uid a handler sees inside its user namespace (default 1000: a
    /// plain user, never 0).
    pub uid: u32,
    /// The gid a handler sees (default 1000).
    pub gid: u32,
    /// The host uid the sandbox's uid maps to when the host runs as root
    /// (default 65534, `nobody`); an unprivileged host maps its own.
    pub host_uid: u32,
    /// The host gid (default 65534, `nogroup`).
    pub host_gid: u32,
    /// Host paths a function may ask to see read-only
    /// ([`SandboxPolicy::read_only_paths`]); none by default.
    pub allowed_paths: Vec<PathBuf>,
    /// Most processes (threads included) in one worker's sandbox (default
    /// 64), through the pids cgroup (else `RLIMIT_NPROC`).
    pub max_processes: u32,
    /// Layers left out even where the kernel has them (`--sandbox-without`):
    /// `user`, `pid`, `mount`, `net`, `ipc`, `seccomp`, `landlock`,
    /// `cgroup`. For working around a kernel's or a container's quirk, and
    /// for testing the sandbox a more restricted host would give; `strict`
    /// counts them as missing.
    pub without: Vec<String>,
    /// Names of the server's environment variables a function may ask to
    /// see (`env`): none by default (`--sandbox-allow-env`).
    pub allowed_env: Vec<String>,
    /// Whether a function's `allow_outbound` may list the host's own and
    /// link-local addresses (its loopback services, the cloud's metadata
    /// service): not by default (`--sandbox-allow-local-outbound`).
    pub allow_local_outbound: bool,
    /// The largest private `/tmp` a function may ask for, in MB (default
    /// 512, FunctionGraph's; `--sandbox-max-tmp-mb`, at most 10240): its
    /// pages are memory the host gives.
    pub max_tmp_mb: u32,
}

/// The layer names [`SandboxConfig::without`] takes.
pub const LAYER_NAMES: [&str; 8] = [
    "user", "pid", "mount", "net", "ipc", "seccomp", "landlock", "cgroup",
];

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            mode: SandboxMode::Auto,
            uid: 1000,
            gid: 1000,
            host_uid: 65534,
            host_gid: 65534,
            allowed_paths: Vec::new(),
            max_processes: 64,
            without: Vec::new(),
            allowed_env: Vec::new(),
            allow_local_outbound: false,
            max_tmp_mb: 512,
        }
    }
}

/// Whether a function's workers have a network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// A network namespace with nothing in it (the default).
    #[default]
    None,
    /// The host's network, each connection checked against
    /// [`SandboxPolicy::allow_outbound`]; the host's own addresses
    /// (loopback included) and link-local ones (cloud metadata) only when
    /// listed.
    Host,
}

/// What one function's sandbox allows beyond the minimum (its declared
/// capabilities): in the manifest's `[sandbox]`, the API's `sandbox`
/// object and the embedding APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxPolicy {
    /// `none` (the default) or `host`.
    pub network: Network,
    /// With `network = "host"`: the only destinations allowed, as
    /// `ADDRESS:PORT`, `CIDR:PORT` or `[IPv6]:PORT` (`*` for any port);
    /// empty allows every address but the host's own and link-local ones.
    pub allow_outbound: Vec<String>,
    /// Size of the private `/tmp`, in MB (default 512, as FunctionGraph).
    pub tmp_mb: u32,
    /// Names of the host's environment variables passed through (the
    /// worker's environment is otherwise empty).
    pub env: Vec<String>,
    /// Extra host paths mounted read-only at the same place (each must be
    /// under a path the operator allowed).
    pub read_only_paths: Vec<PathBuf>,
}

/// The largest private `/tmp`, in MB.
pub const MAX_TMP_MB: u32 = 10240;

impl Default for SandboxPolicy {
    fn default() -> Self {
        SandboxPolicy {
            network: Network::None,
            allow_outbound: Vec::new(),
            tmp_mb: 512,
            env: Vec::new(),
            read_only_paths: Vec::new(),
        }
    }
}

impl SandboxPolicy {
    /// Checks the policy against what the operator allows: `/tmp` size,
    /// outbound entries (names are resolved here), environment names and
    /// read-only paths.
    pub fn validate(&self, config: &SandboxConfig) -> Result<(), String> {
        let max_tmp = config.max_tmp_mb.min(MAX_TMP_MB);
        if self.tmp_mb == 0 || self.tmp_mb > max_tmp {
            return Err(format!(
                "sandbox tmp_mb must be 1 to {max_tmp} (the operator's --sandbox-max-tmp-mb), got {}",
                self.tmp_mb
            ));
        }
        if !self.allow_outbound.is_empty() && self.network != Network::Host {
            return Err("sandbox allow_outbound needs network = \"host\"".into());
        }
        for entry in &self.allow_outbound {
            let outbound = Outbound::parse(entry)?;
            if !config.allow_local_outbound && outbound.reaches_local() {
                return Err(format!(
                    "allow_outbound entry `{entry}` reaches the host's own or link-local addresses: only where the operator allows it (--sandbox-allow-local-outbound)"
                ));
            }
        }
        for name in &self.env {
            if name.is_empty()
                || name.len() > 128
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with("FNHOST_")
            {
                return Err(format!(
                    "sandbox env name `{name}` is not a plain variable name (FNHOST_* are never passed)"
                ));
            }
            if !config.allowed_env.iter().any(|allowed| allowed == name) {
                return Err(format!(
                    "sandbox env name `{name}` is not one the operator allows functions to see (--sandbox-allow-env)"
                ));
            }
        }
        for path in &self.read_only_paths {
            if !path.is_absolute()
                || path.components().any(|c| {
                    !matches!(
                        c,
                        std::path::Component::RootDir | std::path::Component::Normal(_)
                    )
                })
            {
                return Err(format!(
                    "sandbox read_only_paths entry {} must be an absolute path without `..`",
                    path.display()
                ));
            }
            if !config
                .allowed_paths
                .iter()
                .any(|allowed| path.starts_with(allowed))
            {
                return Err(format!(
                    "sandbox read_only_paths entry {} is not under a path the operator allowed (fnhost serve --sandbox-allow-path)",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// Which layers a worker gets: what the kernel allows, less what the mode
/// leaves out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Layers {
    /// Per-worker cgroups.
    pub(crate) cgroups: bool,
    pub(crate) user_ns: bool,
    pub(crate) pid_ns: bool,
    pub(crate) mount_ns: bool,
    pub(crate) net_ns: bool,
    pub(crate) ipc_uts_cgroup_ns: bool,
    pub(crate) seccomp: bool,
    pub(crate) seccomp_notify: bool,
    pub(crate) landlock_abi: i32,
    /// Running as root: the uid can be dropped without a user namespace.
    pub(crate) root: bool,
}

/// What the host tells a sandboxed worker before it sets anything up
/// (its first frame).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JailSpec {
    pub(crate) layers: Layers,
    /// The host's pid (the keeper checks it is still its parent).
    pub(crate) host_pid: i32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Without a user namespace, as root: the host uid and gid to become.
    pub(crate) host_uid: u32,
    pub(crate) host_gid: u32,
    pub(crate) network: Network,
    /// Resolved allowlist (network = host).
    pub(crate) allow: Vec<Outbound>,
    pub(crate) tmp_mb: u32,
    /// Environment of the worker, names and values.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) read_only_paths: Vec<PathBuf>,
    /// `RLIMIT_NPROC` when no pids cgroup holds the worker.
    pub(crate) nproc: Option<u64>,
    /// `RLIMIT_NOFILE` of each of the worker's processes.
    #[serde(default = "default_nofile")]
    pub(crate) nofile: u64,
    /// The text written as `/etc/hosts` (names of the allowlist).
    pub(crate) hosts: String,
    /// `RLIMIT_DATA` the worker sets itself (a worker started parked, with
    /// none).
    #[serde(default)]
    pub(crate) data_limit: Option<u64>,
}

/// One line of [`check`]'s report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    /// The layer, as `fnhost sandbox check` and `fnhost_sandbox_layer{layer}` name it.
    pub name: &'static str,
    /// Whether workers get it.
    pub available: bool,
    /// What it does, or why it is missing.
    pub detail: String,
}

/// What this kernel allows, less what `config` leaves out.
fn allowed(config: &SandboxConfig) -> Availability {
    let mut a = availability().clone();
    let without = |name: &str| config.without.iter().any(|w| w == name);
    let left_out = |name: &str| Some(format!("left out (--sandbox-without {name})"));
    if without("user") {
        (a.user_ns, a.user_ns_error) = (false, left_out("user"));
    }
    if without("pid") {
        (a.pid_ns, a.pid_ns_error) = (false, left_out("pid"));
    }
    if without("mount") {
        (a.mount_ns, a.mount_ns_error) = (false, left_out("mount"));
    }
    if without("net") {
        (a.net_ns, a.net_ns_error) = (false, left_out("net"));
    }
    if without("ipc") {
        (a.ipc_uts_cgroup_ns, a.ipc_uts_cgroup_ns_error) = (false, left_out("ipc"));
    }
    if without("seccomp") {
        (a.seccomp, a.seccomp_notify, a.seccomp_error) = (false, false, left_out("seccomp"));
    }
    if without("landlock") {
        (a.landlock_abi, a.landlock_error) = (0, left_out("landlock"));
    }
    if !a.user_ns && !a.root {
        // Without a user namespace only root makes the others.
        for (ok, why) in [
            (&mut a.pid_ns, &mut a.pid_ns_error),
            (&mut a.mount_ns, &mut a.mount_ns_error),
            (&mut a.net_ns, &mut a.net_ns_error),
            (&mut a.ipc_uts_cgroup_ns, &mut a.ipc_uts_cgroup_ns_error),
        ] {
            if *ok {
                *ok = false;
                *why = Some("needs a user namespace (or root)".into());
            }
        }
    }
    a
}

/// The sandbox layers this host gives workers under `config`, one line
/// each, in the order of importance.
pub fn check(config: &SandboxConfig) -> Vec<Layer> {
    let a = allowed(config);
    let off = config.mode == SandboxMode::Off;
    let line = |name: &'static str, ok: bool, yes: String, no: &str| Layer {
        name,
        available: ok && !off,
        detail: if off {
            "off (--sandbox off)".to_owned()
        } else if ok {
            yes
        } else if no.starts_with("left out") {
            no.to_owned()
        } else {
            format!("refused ({no})")
        },
    };
    let why = |s: &Option<String>| s.clone().unwrap_or_default();
    let (mut memory, mut pids) = cgroup::controllers();
    let mut cpu = cgroup::cpu_controller();
    if config.without.iter().any(|w| w == "cgroup") {
        (memory, pids, cpu) = (None, None, None);
    }
    vec![
        line(
            "pid namespace",
            a.pid_ns,
            "each worker is PID 2 of its own namespace; ending it ends everything it started"
                .into(),
            &why(&a.pid_ns_error),
        ),
        line(
            "user namespace",
            a.user_ns,
            format!(
                "uid {} inside, {} on the host",
                config.uid,
                if a.root {
                    config.host_uid.to_string()
                } else {
                    "the server's own".to_owned()
                }
            ),
            &why(&a.user_ns_error),
        ),
        line(
            "mount namespace",
            a.mount_ns,
            "a minimal read-only root, its own /proc and a private /tmp".into(),
            &why(&a.mount_ns_error),
        ),
        line(
            "network namespace",
            a.net_ns,
            "no network unless a function declares network = \"host\"".into(),
            &why(&a.net_ns_error),
        ),
        line(
            "ipc, uts and cgroup namespaces",
            a.ipc_uts_cgroup_ns,
            "private".into(),
            &why(&a.ipc_uts_cgroup_ns_error),
        ),
        line(
            "uid drop",
            a.user_ns || a.root,
            "workers never run as root".into(),
            "neither a user namespace nor root to change uid",
        ),
        line(
            "seccomp",
            a.seccomp,
            format!(
                "{} rules; forbidden calls {}",
                seccomp::rule_count(),
                if a.seccomp_notify {
                    "end the worker and are named (user notification)"
                } else {
                    "kill the worker (no user notification: the call is not named)"
                }
            ),
            &why(&a.seccomp_error),
        ),
        line(
            "landlock",
            a.landlock_abi > 0,
            format!("ABI {}", a.landlock_abi),
            &why(&a.landlock_error),
        ),
        line(
            "cgroup memory",
            memory.is_some(),
            memory.clone().unwrap_or_default(),
            if config.without.iter().any(|w| w == "cgroup") {
                "left out (--sandbox-without cgroup)"
            } else {
                "no writable memory controller: RLIMIT_DATA only"
            },
        ),
        line(
            "cgroup pids",
            pids.is_some(),
            pids.clone().unwrap_or_default(),
            if config.without.iter().any(|w| w == "cgroup") {
                "left out (--sandbox-without cgroup)"
            } else {
                "no writable pids controller: RLIMIT_NPROC instead"
            },
        ),
        line(
            "cgroup cpu",
            cpu.is_some(),
            cpu.clone().unwrap_or_default(),
            if config.without.iter().any(|w| w == "cgroup") {
                "left out (--sandbox-without cgroup)"
            } else {
                "no writable cpu controller: a worker's processes may use every core"
            },
        ),
        Layer {
            name: "rlimits and no_new_privs",
            available: !off,
            detail: if off {
                "off (--sandbox off)".into()
            } else {
                "RLIMIT_CORE 0, RLIMIT_NOFILE (a share of fs.file-max, at most 1024), RLIMIT_FSIZE, no_new_privs, capabilities dropped, empty environment".into()
            },
        },
    ]
}

/// The layers `config` requires that this host lacks (empty in auto and
/// off modes, which run without them).
pub fn missing_required(config: &SandboxConfig) -> Vec<Layer> {
    if config.mode != SandboxMode::Strict {
        return Vec::new();
    }
    check(config).into_iter().filter(|l| !l.available).collect()
}

/// The layers a worker gets under `config` (none with the sandbox off).
pub(crate) fn layers(config: &SandboxConfig) -> Option<Layers> {
    if config.mode == SandboxMode::Off {
        return None;
    }
    let a = allowed(config);
    Some(Layers {
        cgroups: !config.without.iter().any(|w| w == "cgroup"),
        user_ns: a.user_ns,
        pid_ns: a.pid_ns,
        mount_ns: a.mount_ns,
        net_ns: a.net_ns,
        ipc_uts_cgroup_ns: a.ipc_uts_cgroup_ns,
        seccomp: a.seccomp,
        seccomp_notify: a.seccomp_notify,
        landlock_abi: a.landlock_abi,
        root: a.root,
    })
}

fn default_nofile() -> u64 {
    1024
}

/// `RLIMIT_NOFILE` for a worker's processes: the kernel's table of open
/// files is one for the whole host (`fs.file-max`; root is exempt, every
/// other user is not), so every worker the budget allows, each with its
/// most processes, together may hold at most half of it (an outside
/// attack filled it from 11 workers at 256 processes of 1024 files), and
/// no process more than 1024.
pub(crate) fn nofile(config: &SandboxConfig, max_workers: usize) -> u64 {
    let file_max = std::fs::read_to_string("/proc/sys/fs/file-max")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let holders =
        (max_workers.max(1) as u64).saturating_mul(u64::from(config.max_processes.max(1)));
    (file_max / 2 / holders).clamp(64, 1024)
}

/// Builds the spec of one worker's sandbox.
pub(crate) fn spec(
    config: &SandboxConfig,
    policy: &SandboxPolicy,
    layers: Layers,
    pids_cgroup: bool,
    max_workers: usize,
) -> JailSpec {
    let mut allow = Vec::new();
    let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for entry in &policy.allow_outbound {
        if let Ok(outbound) = Outbound::parse(entry) {
            for line in outbound.hosts_lines() {
                hosts.push_str(&line);
                hosts.push('\n');
            }
            allow.push(outbound);
        }
    }
    let env = policy
        .env
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.clone(), v)))
        .collect();
    JailSpec {
        layers,
        host_pid: std::process::id() as i32,
        uid: config.uid,
        gid: config.gid,
        host_uid: config.host_uid,
        host_gid: config.host_gid,
        network: policy.network,
        allow,
        tmp_mb: policy.tmp_mb,
        env,
        read_only_paths: policy.read_only_paths.clone(),
        nproc: (!pids_cgroup || !layers.cgroups).then_some(u64::from(config.max_processes)),
        nofile: nofile(config, max_workers),
        hosts,
        data_limit: None,
    }
}

/// How a sandboxed worker ended, as its keeper saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// The number of a forbidden system call the worker made.
    pub(crate) forbidden_call: Option<i64>,
}
