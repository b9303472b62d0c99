//! The `fnhost` command line: flags wired to the library. `main.rs` only
//! calls [`run`].
//!
//! Exit status, for every command: 0 done; 1 the request was refused or
//! failed at the server, or the function's call failed (error, panic,
//! timeout...); 2 usage and load errors (message on stderr).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Parser, Subcommand};

use fnhost::{FunctionConfig, InvokeResult, Outcome, Runtime, RuntimeConfig};

/// Exit status when the function failed.
pub const EXIT_FUNCTION_FAILED: i32 = 1;
/// Exit status for usage and load errors.
pub const EXIT_USAGE: i32 = 2;

/// Runs native FaaS handlers (cdylib plugins) the way FunctionGraph runs functions.
#[derive(Debug, Parser)]
#[command(
    name = "fnhost",
    version,
    about,
    after_help = "Exit status (every command): 0 done; 1 the server refused or failed the request, \
                  or the function's call failed; 2 usage (bad flags or input, a library that does not load).\n\
                  Server commands take --url (default $FNHOST_URL, else http://127.0.0.1:8000), --project \
                  ($FNHOST_PROJECT_ID, else local) and sign with --keys FILE or $FNHOST_ACCESS_KEY and $FNHOST_SECRET_KEY."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a handler project (a Rust crate or a C project) with its fnhost.toml.
    New(crate::author::NewArgs),
    /// Build the project in the current directory (cargo or make), then check
    /// the library it built: its ABI, its handler and initializer.
    Build(crate::author::BuildArgs),
    /// Build and check the project, then write its FunctionGraph code package
    /// (a zip with the library at its root); prints the zip's path last.
    Package(crate::author::PackageArgs),
    /// Build, check and package the project, then create the function on a
    /// server or update its code, configuration and triggers; prints the URN.
    Deploy(crate::author::DeployArgs),
    /// Publish the function's current code and configuration as a new
    /// version; prints the version.
    Publish(crate::lifecycle::PublishArgs),
    /// A function's aliases: set (with weighted canary versions), list, delete.
    #[command(subcommand)]
    Alias(crate::lifecycle::AliasCommand),
    /// A function's triggers: add (apig, timer), list, enable, disable, delete.
    #[command(subcommand)]
    Trigger(crate::lifecycle::TriggerCommand),
    /// The project's functions on a server.
    #[command(subcommand)]
    Functions(crate::lifecycle::FunctionsCommand),
    /// Show a deployed function's configuration.
    Config(crate::lifecycle::ConfigArgs),
    /// Sign a request for a server with access keys: prints the headers (or
    /// with --curl a ready curl line), valid for 15 minutes.
    Sign(crate::lifecycle::SignArgs),
    /// Invoke a handler once and print its return, execution summary and log.
    /// Without an ENTRY, the function of ./fnhost.toml with its built library;
    /// with --url, the deployed function NAME[:QUALIFIER] on that server
    /// (signed with --keys, or FNHOST_ACCESS_KEY and FNHOST_SECRET_KEY). The
    /// event comes from --data, --event FILE, or standard input.
    Invoke(InvokeArgs),
    /// Show a plugin's ABI version, name, handlers and initializers.
    Inspect(InspectArgs),
    /// Print a ready-to-edit sample event of a trigger type (pipe it into `invoke`).
    Event(EventArgs),
    /// Deploy every NAME.so (or libNAME.so) in DIR as function NAME, redeploy
    /// on every rebuild, and optionally invoke after each deploy.
    Watch(WatchArgs),
    /// Serve the FunctionGraph-compatible HTTP API.
    Serve(ServeArgs),
    /// Print a deployed function's recent invocation log lines (with
    /// --follow, keep printing new ones).
    Logs(LogsArgs),
    /// The sandbox of worker processes: `fnhost sandbox check` tells which
    /// layers this host gives them.
    #[command(subcommand)]
    Sandbox(crate::sandbox::SandboxCommand),
}

#[derive(Debug, Args)]
struct LogsArgs {
    /// The function.
    name: String,
    /// Keep printing new lines as they are written (polls every second).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only the lines of this invocation.
    #[arg(long, value_name = "ID")]
    request_id: Option<String>,
    /// Only lines of the last SECONDS.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS_FLAG))]
    since: Option<u64>,
    #[command(flatten)]
    server: crate::remote::ServerArgs,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// JSON config: {"listen": "...", "data_dir": "...", "database_url": "postgres://...", "package_store": "s3://...", "access_keys": [{"access_key": "...", "secret_key": "..."}],
    /// "limits": {...}, "metrics_auth": false, "apig_any_function": false, "allow_unsigned_payload": false,
    /// "min_timer_rate_seconds": 60, "asynchronous": {"workers": 4, "queue_capacity": 10000,
    /// "records_max_age_seconds": 604800, "records_max": 100000, "retry_base_ms": 1000,
    /// "http_destinations": "loopback"}} (see the book: docs/src/serving/index.md).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8000).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// State and code packages (default: the user's data directory, fnhost/).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Keep the state in this PostgreSQL database, shared by every node of
    /// a cluster (postgres://USER:PASSWORD@HOST:PORT/DATABASE; default:
    /// $FNHOST_DATABASE_URL, else SQLite in the data directory).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Keep the code packages in object storage shared by every node:
    /// s3://BUCKET/PREFIX (credentials, region and AWS_ENDPOINT_URL from
    /// the standard AWS_* variables) or file:///DIR (default:
    /// $FNHOST_PACKAGE_STORE, else only the data directory).
    #[arg(long, value_name = "URL")]
    package_store: Option<String>,
    /// Deploy every NAME.so in DIR as function NAME (package default) and
    /// redeploy it when it changes (single node: not with --database-url).
    #[arg(long, value_name = "DIR")]
    functions_dir: Option<PathBuf>,
    /// Where the handlers of the --functions-dir functions run: auto
    /// (process for Go libraries, in-process for the others), in-process
    /// (a worker thread), inline (the HTTP I/O thread: fastest, for short
    /// trusted handlers; the timeout is checked when the handler returns)
    /// or process (worker processes).
    #[arg(long, value_name = "MODE", default_value = "auto")]
    isolation: fnhost::Isolation,
    /// Run in-process handlers that have proven short (100 calls in a row
    /// under 100 µs) on the HTTP I/O threads, with the deadline enforced by
    /// a watchdog (the I/O-thread lane). Off by default: measured against
    /// worker threads it did not win beyond the rounds' spread (docs/src/performance).
    #[arg(long, conflicts_with = "no_io_lane")]
    io_lane: bool,
    /// Run every in-process handler on a worker thread (the default).
    #[arg(long)]
    no_io_lane: bool,
    /// Most worker processes alive at once, across every function (process
    /// isolation and the pre-flight of new libraries). Past it, the
    /// longest-idle worker ends first; then calls wait up to 10 s and are
    /// answered 429.
    #[arg(long, value_name = "N", default_value_t = fnhost::DEFAULT_MAX_WORKER_PROCESSES)]
    max_worker_processes: usize,
    /// On SIGTERM or Ctrl-C, how long to wait for in-flight requests and
    /// the asynchronous queue before exiting anyway (handlers that never
    /// return are abandoned then).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    shutdown_grace: u64,
    /// Directory for content-addressed library copies.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Export spans of invocations over OTLP/HTTP to this endpoint (spans go
    /// to /v1/traces under it); default: $OTEL_EXPORTER_OTLP_ENDPOINT, else
    /// none (no spans are built).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// The share of new traces whose spans are exported, 0 to 1 (head
    /// sampling by trace id; a caller's traceparent decides for its own
    /// trace); default: $OTEL_TRACES_SAMPLER_ARG with
    /// OTEL_TRACES_SAMPLER=parentbased_traceidratio, else 1.
    #[arg(long, value_name = "RATIO", value_parser = sample_ratio)]
    otlp_sample_ratio: Option<f64>,
    /// The server's own log: text (default) or json (one JSON object per
    /// line, with the request id and trace id of the invocation it is about).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Bytes of recent invocation log lines kept per function for the logs
    /// endpoint and `fnhost logs` (default 1048576; 0 keeps none).
    #[arg(long, value_name = "BYTES")]
    function_log_bytes: Option<usize>,
    /// Asynchronous invocations run at once (default 4).
    #[arg(long, value_name = "N")]
    async_workers: Option<usize>,
    /// Ended asynchronous invocation records older than this are pruned
    /// (default 604800: a week).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS_FLAG))]
    async_records_max_age: Option<u64>,
    /// Most ended asynchronous invocation records kept (default 100000).
    #[arg(long, value_name = "N")]
    async_records_max: Option<u64>,
    /// Which hosts an HTTP destination of an asynchronous invocation may
    /// name: loopback (default: local development) or any.
    #[arg(long, value_name = "HOSTS")]
    async_http_destinations: Option<HttpDestinationsArg>,
    /// Which hosts an event-source trigger's broker URL (REDIS, NATS, MQTT)
    /// may name: loopback (default) or any.
    #[arg(long, value_name = "HOSTS")]
    event_source_hosts: Option<HttpDestinationsArg>,
    #[command(flatten)]
    sandbox: crate::sandbox::SandboxArgs,
    /// The isolation floor for every function: inline (no floor), in-process
    /// or process. A create or update asking for less is answered 400;
    /// functions that default lower run at the floor. No pre-flight proves
    /// in-process code harmless: use process for code you did not write.
    /// Default: the config's "min_isolation", else inline.
    #[arg(long, value_name = "MODE")]
    min_isolation: Option<fnhost::Isolation>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum HttpDestinationsArg {
    Loopback,
    Any,
}

/// The `asynchronous` section of the config file (each key as its flag).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AsyncFile {
    #[serde(default)]
    workers: Option<usize>,
    #[serde(default)]
    queue_capacity: Option<usize>,
    #[serde(default)]
    records_max_age_seconds: Option<u64>,
    #[serde(default)]
    records_max: Option<u64>,
    /// The first retry's delay (it doubles with each retry).
    #[serde(default)]
    retry_base_ms: Option<u64>,
    #[serde(default)]
    http_destinations: Option<HttpDestinationsArg>,
    /// In a cluster, how long a node's claim of a running invocation lasts
    /// unrenewed (default 30; renewed every third of it while it runs).
    #[serde(default)]
    lease_seconds: Option<u64>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeFile {
    #[serde(default)]
    listen: Option<std::net::SocketAddr>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
    /// The cluster's PostgreSQL database (as `--database-url`).
    #[serde(default)]
    database_url: Option<String>,
    /// The cluster's package storage (as `--package-store`).
    #[serde(default)]
    package_store: Option<String>,
    #[serde(default)]
    access_keys: Vec<KeyPair>,
    /// Request, time and connection limits (see `server::limits::Limits`).
    #[serde(default)]
    limits: fnhost_server::limits::Limits,
    /// Accept `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` (the body unsigned).
    #[serde(default)]
    allow_unsigned_payload: bool,
    /// Serve every function under `/apig/{function}/...` with keys configured.
    #[serde(default)]
    apig_any_function: bool,
    /// `/metrics` needs a signature.
    #[serde(default)]
    metrics_auth: bool,
    /// The shortest timer `Rate`, in seconds (default 60).
    #[serde(default)]
    min_timer_rate_seconds: Option<u64>,
    /// The asynchronous queue.
    #[serde(default)]
    asynchronous: AsyncFile,
    /// The isolation floor (as `--min-isolation`).
    #[serde(default)]
    min_isolation: Option<fnhost::Isolation>,
    /// Which hosts an event source's broker URL may name (as
    /// `--event-source-hosts`).
    #[serde(default)]
    event_source_hosts: Option<HttpDestinationsArg>,
    /// The sandbox mode (as `--sandbox`; the flag wins when not `auto`).
    #[serde(default)]
    sandbox: Option<fnhost::SandboxMode>,
    /// Host directories functions may see read-only (as
    /// `--sandbox-allow-path`).
    #[serde(default)]
    sandbox_allow_paths: Vec<PathBuf>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyPair {
    access_key: String,
    secret_key: String,
}

fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("fnhost");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/share/fnhost");
    }
    PathBuf::from("fnhost-data")
}

#[derive(Debug, Args)]
struct WatchArgs {
    /// The directory to watch (e.g. target/debug). Without it: the project
    /// of fnhost.toml (--dir), watching its build output.
    code_dir: Option<PathBuf>,
    /// The project (without a directory to watch; default: the current one).
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        conflicts_with = "code_dir"
    )]
    dir: PathBuf,
    /// Build the project (cargo or make) whenever its sources change; each
    /// successful build is then swapped in.
    #[arg(long, conflicts_with = "code_dir")]
    build: bool,
    /// With --build: build without --release (cargo).
    #[arg(long, requires = "build")]
    debug: bool,
    /// After each successful deploy of NAME, invoke this entry NAME.HANDLER
    /// (which also sets NAME's handler).
    #[arg(long, value_name = "ENTRY")]
    invoke: Option<String>,
    /// The payload for --invoke, as JSON (default `{}`).
    #[arg(long, value_name = "JSON", requires = "invoke")]
    data: Option<String>,
    /// The handler every function gets unless --invoke names another.
    #[arg(long, value_name = "NAME", default_value = "Handler")]
    handler: String,
    /// The initializer: NAME.INIT for library NAME's, or a bare INIT for
    /// every library that has it (a warning for one that does not).
    #[arg(long, value_name = "ENTRY")]
    init: Option<String>,
    #[command(flatten)]
    overrides: Overrides,
    /// Directory for content-addressed library copies.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    #[command(flatten)]
    sandbox: crate::sandbox::SandboxArgs,
    /// Where the handlers run: auto (process for Go libraries, in-process
    /// for the others), in-process, inline or process. With process, a
    /// dropped library's code (its constructors included) runs only in
    /// sandboxed worker processes; in process it is trusted.
    #[arg(long, value_name = "MODE")]
    isolation: Option<fnhost::Isolation>,
}

/// Settings that override the manifest's (or the defaults) for a local run.
#[derive(Debug, Args)]
struct Overrides {
    /// User data (environment) entry, repeatable.
    #[arg(long = "user-data", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    user_data: Vec<(String, String)>,
    /// Timeout in seconds (default 3, or the manifest's).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Memory size in MB, one of FunctionGraph's sizes (default 128, or the
    /// manifest's).
    #[arg(long, value_name = "MB")]
    memory: Option<u32>,
}

impl Overrides {
    /// `config` with the settings given.
    fn apply(&self, mut config: FunctionConfig) -> anyhow::Result<FunctionConfig> {
        if let Some(t) = self.timeout {
            config = config.timeout(seconds(t, "--timeout")?);
        }
        if let Some(m) = self.memory {
            config = config.memory_mb(m);
        }
        config.user_data.extend(self.user_data.iter().cloned());
        Ok(config)
    }
}

#[derive(Debug, Args)]
struct EventArgs {
    /// The trigger type: apig, timer, kafka, smn, dis, cts, dds or lts.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(fnhost_api::events::samples::KINDS))]
    kind: String,
}

#[derive(Debug, Args)]
struct InvokeArgs {
    /// The entry, NAME.HANDLER: library NAME.so (or libNAME.so), handler
    /// HANDLER. Without it: the function fnhost.toml describes (in --dir).
    entry: Option<String>,
    /// Directory holding the library (default: the project's build output
    /// without an ENTRY, else the current directory).
    #[arg(long, value_name = "DIR")]
    code_dir: Option<PathBuf>,
    /// The project whose fnhost.toml describes the function (without an ENTRY).
    #[arg(
        long,
        value_name = "DIR",
        default_value = ".",
        conflicts_with = "entry"
    )]
    dir: PathBuf,
    /// Read the event (payload) from FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    event: Option<PathBuf>,
    /// The event as a JSON string. With neither --event nor --data, stdin is read.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
    #[command(flatten)]
    overrides: Overrides,
    /// The initializer, NAME.INIT, or a bare INIT in the handler's library;
    /// run once before the handler.
    #[arg(long, value_name = "ENTRY")]
    init: Option<String>,
    /// Initializer timeout in seconds (default: --timeout).
    #[arg(long, value_name = "SECONDS")]
    init_timeout: Option<f64>,
    /// Print one JSON object instead of the three-part report.
    #[arg(long)]
    json: bool,
    /// Where the handler runs: in-process (a worker thread), inline (the
    /// calling thread; the timeout is checked when the handler returns), or
    /// process (a worker process with a hard timeout, the memory limit
    /// enforced, crashes contained), or auto (process for a Go library,
    /// in-process for the others). Default auto, or the manifest's.
    #[arg(long, value_name = "MODE")]
    isolation: Option<fnhost::Isolation>,
    /// Directory for content-addressed library copies.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Invoke the deployed function ENTRY (NAME[:QUALIFIER], or its URN) on
    /// this server instead (keys as for `fnhost deploy`).
    #[arg(long, value_name = "URL", requires = "entry")]
    url: Option<String>,
    /// With --url: the project id (default $FNHOST_PROJECT_ID, else local).
    #[arg(long, value_name = "ID", requires = "url")]
    project: Option<String>,
    /// With --url: a JSON file with "access_key" and "secret_key" (default:
    /// the FNHOST_ACCESS_KEY and FNHOST_SECRET_KEY variables; neither: unsigned).
    #[arg(long, value_name = "FILE", requires = "url")]
    keys: Option<PathBuf>,
    #[command(flatten)]
    sandbox: crate::sandbox::SandboxArgs,
}

#[derive(Debug, Args)]
struct InspectArgs {
    /// Path to the library.
    library: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Directory for content-addressed library copies.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    #[command(flatten)]
    sandbox: crate::sandbox::SandboxArgs,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got `{s}`")),
    }
}

/// The longest span a flag or setting in seconds takes (ten years): long
/// enough for any retention, short enough for any clock arithmetic.
const MAX_SECONDS_FLAG: u64 = 10 * 366 * 86_400;

fn seconds(s: f64, flag: &str) -> anyhow::Result<Duration> {
    // `1e30` or `18446744073709551616` once panicked in `from_secs_f64`.
    match Duration::try_from_secs_f64(s) {
        Ok(d) if s > 0.0 && d <= fnhost::MAX_TIMEOUT => Ok(d),
        _ => bail!(
            "{flag} must be a number of seconds above 0 and at most {}, got {s}",
            fnhost::MAX_TIMEOUT.as_secs()
        ),
    }
}

/// Parses `args` and runs the command; returns the process exit status.
pub fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    let result = match cli.command {
        Command::New(a) => crate::author::new(a),
        Command::Build(a) => crate::author::build(a),
        Command::Package(a) => crate::author::package(a),
        Command::Deploy(a) => crate::author::deploy(a),
        Command::Invoke(a) => invoke(a),
        Command::Inspect(a) => inspect(a),
        Command::Event(a) => event(a),
        Command::Watch(a) => watch(a),
        Command::Serve(a) => serve(a),
        Command::Logs(a) => logs(a),
        Command::Sandbox(c) => crate::sandbox::run(c),
        Command::Publish(a) => crate::lifecycle::publish(a),
        Command::Alias(c) => crate::lifecycle::alias(c),
        Command::Trigger(c) => crate::lifecycle::trigger(c),
        Command::Functions(c) => crate::lifecycle::functions(c),
        Command::Config(a) => crate::lifecycle::config(a),
        Command::Sign(a) => crate::lifecycle::sign(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Errors may quote what a function or a server said.
            eprintln!("error: {}", crate::terminal::for_stderr(&format!("{e:#}")));
            EXIT_USAGE
        }
    }
}

fn runtime(
    cache_dir: Option<PathBuf>,
    sandbox: &crate::sandbox::SandboxArgs,
) -> anyhow::Result<Runtime> {
    Ok(Runtime::new(RuntimeConfig {
        cache_dir,
        sandbox: sandbox.config(),
        ..RuntimeConfig::default()
    })?)
}

fn read_payload(a: &InvokeArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(data) = &a.data {
        serde_json::from_str::<serde_json::Value>(data).with_context(|| {
            "--data is not valid JSON (use --event FILE to send arbitrary bytes)".to_string()
        })?;
        return Ok(data.clone().into_bytes());
    }
    if let Some(path) = &a.event {
        return std::fs::read(path)
            .with_context(|| format!("cannot read event file {}", path.display()));
    }
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("cannot read the event from stdin")?;
    Ok(buf)
}

/// The configuration `invoke` runs: the entry's, or the manifest's, with the
/// flags given over either.
fn invoke_config(a: &InvokeArgs) -> anyhow::Result<FunctionConfig> {
    let mut config = match &a.entry {
        Some(entry) => FunctionConfig::new(
            entry.clone(),
            a.code_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
        ),
        None => {
            let project = fnhost_author::project::Project::open(&a.dir)?;
            let code_dir = a.code_dir.clone().unwrap_or_else(|| project.code_dir());
            project.manifest.function_config(code_dir)
        }
    };
    if let Some(i) = a.isolation {
        config = config.isolation(i);
    }
    a.overrides.apply(config)
}

/// `invoke --url`: the deployed function, through the server's API, with
/// the same three-part output (or `--json` object) as a local call.
fn invoke_remote(a: &InvokeArgs, url: &str, payload: Vec<u8>) -> anyhow::Result<i32> {
    use base64::Engine as _;
    let remote = crate::remote::remote(Some(url.to_owned()), a.project.clone(), a.keys.as_deref())?;
    let target = a.entry.clone().unwrap_or_default();
    let path = format!(
        "/v2/{}/fgs/functions/{}/invocations",
        fnhost_signing::encode(remote.project.as_bytes()),
        fnhost_signing::encode(target.as_bytes())
    );
    let mut headers = fnhost_author::client::HeaderMap::new();
    headers.insert("x-cff-log-type", "tail".parse()?);
    headers.insert("content-type", "application/json".parse()?);
    let answer = match remote
        .client
        .send(hyper_method_post(), &path, "", headers, payload)
    {
        Ok(answer) => answer,
        // No answer is a failed request (1), as for `deploy`, not usage.
        Err(e) => return Ok(crate::lifecycle::no_answer(&e)),
    };
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if answer.status != 200 {
        // Refused or failed at the server: exit 1, as `deploy` does (2 is
        // for usage errors).
        let message = format!(
            "error: the server answered {} for {target}: {}",
            answer.status,
            answer.error_message()
        );
        eprintln!("{}", crate::terminal::for_stderr(&message));
        return Ok(1);
    }
    let failed = header("x-is-func-err") == "true";
    let summary: serde_json::Value =
        serde_json::from_str(&header("x-cff-invoke-summary")).unwrap_or_default();
    let log = base64::engine::general_purpose::STANDARD
        .decode(header("x-cff-function-log"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let request_id = header("x-cff-request-id");
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut report = serde_json::json!({
            "request_id": request_id, "summary": summary, "log": log,
        });
        if failed {
            report["error"] = answer.json();
        } else {
            report["result"] = String::from_utf8_lossy(&answer.body).into_owned().into();
        }
        let report = report.to_string();
        writeln!(out, "{}", crate::terminal::json_for_stdout(&report))?;
    } else {
        let report = three_part(&printable_body(&answer.body), &request_id, &summary, &log);
        write!(out, "{}", crate::terminal::for_stdout(&report))?;
    }
    out.flush()?;
    Ok(if failed { EXIT_FUNCTION_FAILED } else { 0 })
}

fn hyper_method_post() -> fnhost_author::client::Method {
    fnhost_author::client::Method::POST
}

/// The three-part report of a call answered by a server.
fn three_part(body: &str, request_id: &str, summary: &serde_json::Value, log: &str) -> String {
    format!(
        "Function Return:\n{body}\n\nExecution Summary:\nRequest ID:         {request_id}\nMemory Configured:  {} MB\nExecution Duration: {:.3} ms\nMemory Used:        {:.3} MB\nBilled Duration:    {} ms\n\nLog Output:\n{log}",
        summary["memorySize"],
        summary["duration"].as_f64().unwrap_or(0.0),
        summary["memoryUsed"].as_f64().unwrap_or(0.0),
        summary["billingDuration"]
    )
}

fn invoke(a: InvokeArgs) -> anyhow::Result<i32> {
    let payload = read_payload(&a)?;
    if let Some(url) = &a.url {
        return invoke_remote(&a, url, payload);
    }
    let mut config = invoke_config(&a)?;
    if let Some(init) = &a.init {
        // A bare INIT is the handler library's, as in fnhost.toml and watch.
        let init = if init.contains('.') {
            init.clone()
        } else {
            let library = config.entry.rsplit_once('.').map_or("", |(l, _)| l);
            format!("{library}.{init}")
        };
        config = config.initializer(init);
    }
    if let Some(t) = a.init_timeout {
        config = config.initializer_timeout(seconds(t, "--init-timeout")?);
    }
    let runtime = runtime(a.cache_dir.clone(), &a.sandbox)?;
    let function = runtime.load(config)?;
    let init_log = function
        .initializer_report()
        .filter(|r| r.error.is_none())
        .map(|r| r.log)
        .unwrap_or_default();
    let result = function.invoke(&payload)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let report = json_report(&result, &init_log).to_string();
        writeln!(out, "{}", crate::terminal::json_for_stdout(&report))?;
    } else {
        let report = human_report(&result, &init_log);
        write!(out, "{}", crate::terminal::for_stdout(&report))?;
    }
    out.flush()?;
    Ok(if result.outcome.is_success() {
        0
    } else {
        EXIT_FUNCTION_FAILED
    })
}

/// The `--json` report: `{"request_id","result"|"error","summary","log"}`.
/// `init_log` (the initializer's lines, when it ran for this call) comes
/// first in `log`, as in the three-part report.
pub fn json_report(result: &InvokeResult, init_log: &str) -> serde_json::Value {
    let full = format!("{init_log}{}", result.log);
    let mut report = serde_json::json!({
        "request_id": result.request_id,
        "summary": result.summary,
        "log": fnhost::tail(&full, result.tail_bytes()),
    });
    match &result.outcome {
        Outcome::Success(body) => {
            report["result"] = String::from_utf8_lossy(&body.bytes).into_owned().into();
        }
        Outcome::Failure(e) => {
            report["error"] = serde_json::to_value(e).unwrap_or_default();
        }
    }
    report
}

fn printable_body(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let hex: String = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
            format!(
                "({} bytes of binary data; first bytes in hex: {hex})",
                bytes.len()
            )
        }
    }
}

/// The console's three parts: function return, execution summary, log.
pub fn human_report(result: &InvokeResult, init_log: &str) -> String {
    let body = match &result.outcome {
        Outcome::Success(b) => printable_body(&b.bytes),
        Outcome::Failure(e) => serde_json::to_string_pretty(e).unwrap_or_default(),
    };
    let s = &result.summary;
    let full = format!("{init_log}{}", result.log);
    let log = fnhost::tail(&full, result.tail_bytes());
    format!(
        "Function Return:\n{body}\n\nExecution Summary:\nRequest ID:         {}\nMemory Configured:  {} MB\nExecution Duration: {:.3} ms\nMemory Used:        {:.3} MB\nBilled Duration:    {} ms\n\nLog Output:\n{log}",
        result.request_id, s.memory_size_mb, s.duration_ms, s.memory_used_mb, s.billing_duration_ms
    )
}

fn logs(a: LogsArgs) -> anyhow::Result<i32> {
    let remote = a.server.remote()?;
    // Function names, qualifiers and request ids need no escaping in a URL.
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'))
    };
    if !plain(&a.name) || a.request_id.as_deref().is_some_and(|id| !plain(id)) {
        anyhow::bail!("`{}` is not a function name", a.name);
    }
    let path = format!("/v2/{}/fgs/functions/{}/logs", remote.project, a.name);
    let mut query = Vec::new();
    if let Some(id) = &a.request_id {
        query.push(format!("request_id={id}"));
    }
    if let Some(secs) = a.since {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            .saturating_sub(secs.saturating_mul(1000));
        query.push(format!("since_ms={since}"));
    }
    let mut after: Option<u64> = None;
    loop {
        let mut q = query.clone();
        if let Some(after) = after {
            q.push(format!("after={after}"));
        }
        let answer = match remote.client.send(
            fnhost_author::client::Method::GET,
            &path,
            &q.join("&"),
            fnhost_author::client::HeaderMap::new(),
            Vec::new(),
        ) {
            Ok(answer) => answer,
            Err(e) => return Ok(crate::lifecycle::no_answer(&e)),
        };
        if answer.status != 200 {
            let message = format!(
                "error: the server answered {}: {}",
                answer.status,
                answer.error_message()
            );
            eprintln!("{}", crate::terminal::for_stderr(&message));
            return Ok(crate::lifecycle::EXIT_REFUSED);
        }
        let body = answer.json();
        let mut out = std::io::stdout().lock();
        for line in body["lines"].as_array().into_iter().flatten() {
            if let Some(text) = line["line"].as_str() {
                writeln!(out, "{}", crate::terminal::for_stdout(text))?;
            }
        }
        out.flush()?;
        drop(out);
        if !a.follow {
            return Ok(0);
        }
        after = body["next_after"].as_u64().or(after);
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

fn serve(a: ServeArgs) -> anyhow::Result<i32> {
    let file: ServeFile = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid fnhost config", path.display()))?
        }
        None => ServeFile::default(),
    };
    let data_dir = a
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(default_data_dir);
    let mut config = fnhost_server::ServeConfig::new(data_dir);
    config.database_url = a
        .database_url
        .or(file.database_url)
        .or_else(|| std::env::var("FNHOST_DATABASE_URL").ok())
        .filter(|u| !u.is_empty());
    config.package_store = a
        .package_store
        .or(file.package_store)
        .or_else(|| std::env::var("FNHOST_PACKAGE_STORE").ok())
        .filter(|u| !u.is_empty());
    if let Some(listen) = a.listen.or(file.listen) {
        config.listen = listen;
    }
    config.access_keys = fnhost_server::auth::AccessKeys::new(
        file.access_keys
            .into_iter()
            .map(|k| (k.access_key, k.secret_key)),
    )
    .context("the access keys of the configuration are refused")?;
    config.limits = file.limits;
    config.signature_policy.allow_unsigned_payload = file.allow_unsigned_payload;
    config.apig_any_function = file.apig_any_function;
    config.metrics_auth = file.metrics_auth;
    if let Some(secs) = file.min_timer_rate_seconds {
        if secs > fnhost_server::triggers::MAX_TIMER_RATE.as_secs() {
            bail!(
                "min_timer_rate_seconds must be at most a year ({} s), got {secs}",
                fnhost_server::triggers::MAX_TIMER_RATE.as_secs()
            );
        }
        config.min_timer_rate = std::time::Duration::from_secs(secs.max(1));
    }
    let q = &mut config.asynchronous;
    let f = &file.asynchronous;
    if let Some(n) = a.async_workers.or(f.workers) {
        q.workers = n.clamp(1, 256);
    }
    if let Some(n) = f.queue_capacity {
        q.queue_capacity = n.max(1);
    }
    if let Some(secs) = a.async_records_max_age.or(f.records_max_age_seconds) {
        if secs > MAX_SECONDS_FLAG {
            bail!("records_max_age_seconds must be at most {MAX_SECONDS_FLAG}, got {secs}");
        }
        q.records_max_age = std::time::Duration::from_secs(secs);
    }
    if let Some(n) = a.async_records_max.or(f.records_max) {
        q.records_max = n;
    }
    if let Some(ms) = f.retry_base_ms {
        if ms > 3_600_000 {
            bail!("retry_base_ms must be at most an hour (3600000), got {ms}");
        }
        q.retry_base = std::time::Duration::from_millis(ms.max(1));
    }
    if let Some(secs) = f.lease_seconds {
        if !(1..=3600).contains(&secs) {
            bail!("asynchronous.lease_seconds must be 1 to 3600, got {secs}");
        }
        q.lease = std::time::Duration::from_secs(secs);
    }
    if let Some(hosts) = a.async_http_destinations.or(f.http_destinations) {
        q.http_destinations = match hosts {
            HttpDestinationsArg::Loopback => {
                fnhost_server::asynchronous::destinations::HttpDestinations::Loopback
            }
            HttpDestinationsArg::Any => {
                fnhost_server::asynchronous::destinations::HttpDestinations::Any
            }
        };
    }
    let _ = &a.log_format; // read by main, before parsing
    let otlp = a
        .otlp_endpoint
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|e| !e.is_empty());
    let sample_ratio = match a.otlp_sample_ratio {
        Some(ratio) => ratio,
        None => match std::env::var("OTEL_TRACES_SAMPLER").as_deref() {
            Ok("parentbased_traceidratio" | "traceidratio") => {
                let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").unwrap_or_default();
                sample_ratio(&arg).map_err(|e| anyhow::anyhow!("OTEL_TRACES_SAMPLER_ARG: {e}"))?
            }
            Ok("parentbased_always_off" | "always_off") => 0.0,
            _ => 1.0,
        },
    };
    fnhost_server::telemetry::set_sample_ratio(sample_ratio);
    if let Some(bytes) = a.function_log_bytes {
        config.function_log_bytes = bytes;
    }
    if let Some(hosts) = a.event_source_hosts.or(file.event_source_hosts) {
        config.event_source_hosts = match hosts {
            HttpDestinationsArg::Loopback => {
                fnhost_server::asynchronous::destinations::HttpDestinations::Loopback
            }
            HttpDestinationsArg::Any => {
                fnhost_server::asynchronous::destinations::HttpDestinations::Any
            }
        };
    }
    config.functions_dir = a.functions_dir;
    config.functions_isolation = a.isolation;
    config.min_isolation = a
        .min_isolation
        .or(file.min_isolation)
        .unwrap_or(fnhost::Isolation::Inline);
    if config.min_isolation == fnhost::Isolation::Auto {
        bail!("--min-isolation is inline, in-process or process");
    }
    let mut sandbox = a.sandbox.config();
    if a.sandbox.sandbox == fnhost::SandboxMode::Auto {
        if let Some(mode) = file.sandbox {
            sandbox.mode = mode;
        }
    }
    sandbox.allowed_paths.extend(file.sandbox_allow_paths);
    config.io_lane = a.io_lane;
    let max_workers = a.max_worker_processes;
    config.shutdown_grace = std::time::Duration::from_secs(a.shutdown_grace);
    // A server's code cache is its own (one per data directory), so that
    // copies no function uses any more can be deleted.
    let cache_dir = a.cache_dir.or_else(|| {
        let data = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());
        let tag = fnhost::Digest::of(data.as_os_str().as_encoded_bytes()).to_hex();
        let shared = fnhost::RuntimeConfig::default_cache_dir();
        shared
            .parent()
            .map(|fnhost| fnhost.join(format!("serve-{}", &tag[..16])).join("libs"))
    });
    config.prune_code_cache = true;
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir,
        max_worker_processes: max_workers,
        sandbox,
        ..RuntimeConfig::default()
    })?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if config.io_lane && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        // The lane takes at most one thread fewer than the executor has:
        // with one thread beyond the cores, short handlers may run on as
        // many threads at once as there are cores.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        builder.worker_threads(cores + 1);
    }
    let tokio = builder
        .enable_all()
        .thread_name("fnhost-http")
        .build()
        .context("cannot start the async runtime")?;
    if let Some(endpoint) = otlp {
        // The exporter's HTTP client starts its own threads: outside the
        // server's executor.
        fnhost_server::telemetry::start(&endpoint).map_err(anyhow::Error::msg)?;
    }
    let served = tokio.block_on(fnhost_server::serve(config, runtime));
    // Not dropped: that would wait for every executor thread, including
    // one that still runs a handler that never returned.
    tokio.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(0)
}

/// A sampling ratio: a number from 0 to 1.
fn sample_ratio(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("`{s}` is not a ratio from 0 to 1"))
}

fn watch(a: WatchArgs) -> anyhow::Result<i32> {
    use fnhost::watch::{WatchEvent, WatchOptions};

    let payload = match &a.data {
        Some(data) => {
            serde_json::from_str::<serde_json::Value>(data).context("--data is not valid JSON")?;
            data.clone().into_bytes()
        }
        None => b"{}".to_vec(),
    };
    let mut options = WatchOptions {
        handler: a.handler.clone(),
        ..WatchOptions::default()
    };
    // The project, when watching one: its manifest configures the function.
    let project = match &a.code_dir {
        Some(_) => None,
        None => Some(fnhost_author::project::Project::open(&a.dir)?),
    };
    if let Some(project) = project.as_ref().filter(|_| a.build) {
        eprintln!("building {}", project.dir.display());
        if let Err(e) = project.build(a.debug) {
            println!("build failed: {e}");
        }
    }
    let dir = match (&a.code_dir, &project) {
        (Some(dir), _) => dir.clone(),
        (None, Some(project)) => project.code_dir(),
        (None, None) => bail!("give a directory to watch, or run this in a project"),
    };
    if project.is_some() {
        // The build output may not exist before the first build.
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let template = match &project {
        Some(project) => {
            let m = &project.manifest;
            let symbol = m.handler.rsplit('.').next().unwrap_or("Handler").to_owned();
            options.handlers.insert(m.library().to_owned(), symbol);
            if let Some(init) = m.initializer_entry() {
                let init = fnhost::Entry::parse(&init)?;
                options.initializers.insert(init.library, init.symbol);
            }
            m.function_config(&dir)
        }
        None => FunctionConfig::new("watch.Handler", &dir),
    };
    if let Some(init) = &a.init {
        if init.contains('.') {
            let init = fnhost::Entry::parse(init)?;
            options.initializers.insert(init.library, init.symbol);
        } else {
            options.initializer = Some(init.clone());
        }
    }
    let mut template = a.overrides.apply(template)?;
    if let Some(isolation) = a.isolation {
        template = template.isolation(isolation);
    }
    template.validate()?;
    options.template = template;
    let target = match &a.invoke {
        Some(entry) => {
            let parsed = fnhost::Entry::parse(entry)?;
            options
                .handlers
                .insert(parsed.library.clone(), parsed.symbol.clone());
            Some(parsed)
        }
        None => None,
    };
    let runtime = runtime(a.cache_dir.clone(), &a.sandbox)?;
    let invoker = runtime.clone();
    println!("watching {} (Ctrl-C to stop)", dir.display());
    let _watcher = runtime.watch(&dir, options, move |event| {
        match &event {
            WatchEvent::Deployed {
                function,
                generation,
                changed,
                duration,
                ..
            } => {
                if *changed {
                    println!(
                        "deployed {function}: generation {generation} in {:.1} ms",
                        duration.as_secs_f64() * 1000.0
                    );
                } else {
                    println!("unchanged {function}: generation {generation} keeps serving");
                }
            }
            WatchEvent::Failed { function, error } => {
                println!("failed {function}: {error}; the previous code (if any) keeps serving")
            }
            WatchEvent::Incomplete { function, reason } => {
                println!("waiting for {function}: not a complete library yet ({reason})")
            }
            WatchEvent::Removed { function } => {
                println!("removed {function}: its last generation keeps serving")
            }
            WatchEvent::Warning { function, warning } => println!("warning {function}: {warning}"),
        }
        if let (WatchEvent::Deployed { function, .. }, Some(target)) = (&event, &target) {
            if *function == target.library {
                match invoker.registry().invoke(function, &payload) {
                    Ok(result) => println!("invoked {target}: {}", one_line(&result)),
                    Err(e) => println!("invoked {target}: refused: {e}"),
                }
            }
        }
        let _ = std::io::stdout().flush();
    })?;
    match project.filter(|_| a.build) {
        Some(project) => {
            use fnhost_author::source_watch::{rebuild_on_change, Rebuild};
            rebuild_on_change(&project, &dir, a.debug, |step| {
                match step {
                    Rebuild::Building(name) => println!("building {name}"),
                    Rebuild::Built(library) => println!("built {}", library.display()),
                    Rebuild::Failed(e) => println!("build failed: {e}"),
                }
                let _ = std::io::stdout().flush();
            })?;
            Ok(0)
        }
        None => loop {
            std::thread::park();
        },
    }
}

/// A call's result on one readable line: the body (or the error) and the time.
fn one_line(result: &InvokeResult) -> String {
    let ms = result.summary.duration_ms;
    match &result.outcome {
        Outcome::Success(body) => {
            format!(
                "ok in {ms:.3} ms: {}",
                printable_body(&body.bytes).trim_end()
            )
        }
        Outcome::Failure(e) => format!("{} in {ms:.3} ms: {}", e.error_type, e.message),
    }
}

fn event(a: EventArgs) -> anyhow::Result<i32> {
    let Some(sample) = fnhost_api::events::samples::sample(&a.kind) else {
        bail!("no sample event for `{}`", a.kind);
    };
    print!("{sample}");
    Ok(0)
}

fn inspect(a: InspectArgs) -> anyhow::Result<i32> {
    let runtime = runtime(a.cache_dir.clone(), &a.sandbox)?;
    let lib = runtime.inspect_library(&a.library)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let report = serde_json::json!({
            "path": a.library,
            "digest": lib.digest.to_hex(),
            "size": lib.size,
            "abi_version": format!("{}.{}", lib.abi.0, lib.abi.1),
            "plugin_name": lib.name,
            "sdk": lib.sdk,
            "layout_checked": lib.layout_checked,
            "handlers": lib.handlers,
            "handler_events": lib.handler_events.iter().map(|(n, e)| (n.clone(), serde_json::Value::from(e.as_str()))).collect::<serde_json::Map<_, _>>(),
            "initializers": lib.initializers,
            "go_runtime": lib.go_runtime,
            "default_isolation": fnhost::Isolation::Auto.resolve(lib.go_runtime),
        });
        writeln!(out, "{report}")?;
    } else {
        writeln!(out, "Library:      {}", a.library.display())?;
        writeln!(out, "Digest:       {}", lib.digest)?;
        writeln!(out, "Size:         {} bytes", lib.size)?;
        writeln!(out, "Plugin:       {}", lib.name)?;
        writeln!(out, "Built with:   {}", lib.sdk)?;
        writeln!(
            out,
            "ABI:          {}.{} (layout {})",
            lib.abi.0,
            lib.abi.1,
            if lib.layout_checked {
                "checked"
            } else {
                "not provided"
            }
        )?;
        let handlers: Vec<String> = lib
            .handler_events
            .iter()
            .map(|(name, event)| match event.as_str() {
                "" => format!("{name} (event undeclared)"),
                event => format!("{name} (takes {event})"),
            })
            .collect();
        writeln!(out, "Handlers:     {}", handlers.join(", "))?;
        if lib.go_runtime {
            writeln!(
                out,
                "Runtime:      Go (c-shared): runs with process isolation unless a \
                 function sets isolation explicitly"
            )?;
        } else {
            writeln!(out, "Runtime:      native: runs in process by default")?;
        }
        let inits = lib.initializers;
        writeln!(
            out,
            "Initializers: {}",
            if inits.is_empty() {
                "(none)".to_owned()
            } else {
                inits.join(", ")
            }
        )?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The argument parsers, fuzzed: thousands of number-like strings
    /// (digits, signs, exponents, `inf`, `nan`, hex, huge lengths, from a
    /// fixed seed) into every numeric flag of `invoke`, `serve` and `logs`
    /// and the weights and headers of `alias set` and `sign`,
    /// parsed and, for `invoke`, turned into its configuration. A parse or
    /// conversion may refuse; none may panic (`--timeout 1e30` once did).
    #[test]
    fn no_string_makes_a_numeric_flag_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "0",
            "1",
            "9",
            "-",
            "+",
            ".",
            "e",
            "E",
            "308",
            "inf",
            "nan",
            "0x",
            "_",
            " ",
            "18446744073709551616",
            "4294967296",
            "1e30",
            "99999999999999999999",
            "=",
            ":",
            "v",
        ];
        let invoke_flags = ["--timeout", "--init-timeout", "--memory"];
        let serve_flags = [
            "--shutdown-grace",
            "--max-worker-processes",
            "--function-log-bytes",
            "--async-workers",
            "--async-records-max-age",
            "--async-records-max",
            "--sandbox-uid",
            "--sandbox-host-uid",
            "--sandbox-max-tmp-mb",
        ];
        for _ in 0..3000 {
            let mut value = String::new();
            for _ in 0..(next() % 5 + 1) {
                value.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            if next() % 50 == 0 {
                value = "9".repeat(400);
            }
            let flag = invoke_flags[(next() % invoke_flags.len() as u64) as usize];
            let parsed = std::panic::catch_unwind(|| {
                if let Ok(Cli {
                    command: Command::Invoke(a),
                }) = Cli::try_parse_from(["fnhost", "invoke", "echo.Handler", flag, &value])
                {
                    let _ = invoke_config(&a);
                }
                let flag = serve_flags[value.len() % serve_flags.len()];
                let _ = Cli::try_parse_from(["fnhost", "serve", flag, &value]);
                let _ = Cli::try_parse_from(["fnhost", "logs", "f", "--since", &value]);
                // The lifecycle commands' own parsers: weights and headers.
                let weight = format!("v2={value}");
                for w in [value.as_str(), weight.as_str()] {
                    let _ = Cli::try_parse_from([
                        "fnhost", "alias", "set", "f", "a", "v1", "--weight", w,
                    ]);
                }
                let _ =
                    Cli::try_parse_from(["fnhost", "sign", "GET", "http://h/", "--header", &value]);
            });
            assert!(parsed.is_ok(), "{flag} {value:?} panicked");
        }
    }
}
