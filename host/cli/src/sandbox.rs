//! `--sandbox` and `--sandbox-allow-path` (every command that starts
//! worker processes), and `fnhost sandbox check`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// The sandbox of worker processes.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// The sandbox of worker processes (process isolation and the
    /// pre-flight of new libraries): strict (every layer, or refuse to
    /// start), auto (every layer this kernel allows, the missing ones
    /// named in a warning) or off (crashes, hangs and leaks contained; a
    /// hostile handler is not).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub sandbox: fnhost::SandboxMode,
    /// A host directory functions may ask to see read-only in their sandbox
    /// (`read_only_paths`); repeatable. None by default.
    #[arg(long = "sandbox-allow-path", value_name = "DIR")]
    pub allow_paths: Vec<PathBuf>,
    /// A sandbox layer to leave out even where the kernel has it (user,
    /// pid, mount, net, ipc, seccomp, landlock, cgroup): to work around a
    /// kernel's or a container's quirk, or to see what a more restricted
    /// host gives; repeatable.
    #[arg(long = "sandbox-without", value_name = "LAYER", value_parser = clap::builder::PossibleValuesParser::new(fnhost::sandbox::LAYER_NAMES))]
    pub without: Vec<String>,
    /// The uid (and gid) a handler sees in its sandbox (default 1000; never
    /// 0).
    #[arg(long = "sandbox-uid", value_name = "UID", default_value_t = 1000)]
    pub uid: u32,
    /// The host uid (and gid) sandboxes map to when fnhost runs as root
    /// (default 65534, nobody; never 0). Unprivileged, fnhost maps its own.
    #[arg(long = "sandbox-host-uid", value_name = "UID", default_value_t = 65534)]
    pub host_uid: u32,
    /// A variable of this server's environment functions may ask to see
    /// (their sandbox's `env`); repeatable. None by default.
    #[arg(long = "sandbox-allow-env", value_name = "NAME")]
    pub allow_env: Vec<String>,
    /// Let functions list this host's own and link-local addresses (its
    /// loopback services, a cloud's metadata service) in `allow_outbound`.
    #[arg(long = "sandbox-allow-local-outbound")]
    pub allow_local_outbound: bool,
    /// The largest private /tmp a function may ask for, in MB (at most
    /// 10240): its pages are this host's memory.
    #[arg(long = "sandbox-max-tmp-mb", value_name = "MB", default_value_t = 512)]
    pub max_tmp_mb: u32,
}

impl SandboxArgs {
    /// The runtime's sandbox configuration.
    pub fn config(&self) -> fnhost::SandboxConfig {
        fnhost::SandboxConfig {
            mode: self.sandbox,
            allowed_paths: self.allow_paths.clone(),
            without: self.without.clone(),
            uid: self.uid,
            gid: self.uid,
            host_uid: self.host_uid,
            host_gid: self.host_uid,
            allowed_env: self.allow_env.clone(),
            allow_local_outbound: self.allow_local_outbound,
            max_tmp_mb: self.max_tmp_mb,
            ..fnhost::SandboxConfig::default()
        }
    }
}

/// `fnhost sandbox ...`
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Print each sandbox layer this host gives worker processes (or why
    /// not), the seccomp filter and the cgroup controllers; exit 1 when a
    /// layer the mode requires (--sandbox strict) is missing.
    Check(CheckArgs),
}

/// `fnhost sandbox check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a `fnhost sandbox` command.
pub fn run(command: SandboxCommand) -> anyhow::Result<i32> {
    match command {
        SandboxCommand::Check(a) => check(a),
    }
}

fn check(a: CheckArgs) -> anyhow::Result<i32> {
    let config = a.sandbox.config();
    let layers = fnhost::sandbox::check(&config);
    let missing = fnhost::sandbox::missing_required(&config);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "mode": config.mode.to_string(),
                "layers": layers,
                "missing_required": missing.iter().map(|l| l.name).collect::<Vec<_>>(),
            })
        );
    } else {
        println!("sandbox: {}", config.mode);
        for layer in &layers {
            println!("{}: {}", layer.name, layer.detail);
        }
        if !missing.is_empty() {
            println!(
                "missing, and required by --sandbox strict: {}",
                missing
                    .iter()
                    .map(|l| l.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(if missing.is_empty() { 0 } else { 1 })
}
