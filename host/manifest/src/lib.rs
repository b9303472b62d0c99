//! `fnhost.toml`: the one description of a function outside the HTTP API,
//! read by `fnhost new`, `build`, `package`, `deploy` and `invoke`, and by a
//! server's `--functions-dir` (a sidecar `NAME.toml` beside `NAME.so`).
//!
//! ```toml
//! name = "orders"
//! handler = "orders.Handler"        # LIBRARY.HANDLER
//! initializer = "orders.Init"       # or just "Init" (same library)
//! memory_mb = 256                   # one of FunctionGraph's sizes
//! timeout_s = 5                     # 1..=900
//! initializer_timeout_s = 10        # 1..=300
//! isolation = "in-process"          # "inline" | "in-process" | "process"
//! host_functions = ["kv.get", "kv.put"] # what it may call: none unless listed
//!
//! [concurrency]
//! per_instance = 1
//! max_instances = 400
//! reserved = 0
//!
//! [user_data]
//! GREETING = "hello"
//!
//! [sandbox]                         # process isolation: what it may reach
//! network = "host"                  # "none" (default) | "host"
//! allow_outbound = ["203.0.113.7:443", "10.0.0.0/8:5432"]
//! tmp_mb = 512
//! env = ["TZ"]                      # the host's variables passed through
//! read_only_paths = ["/srv/models"] # if the operator allowed them
//!
//! [[triggers]]
//! type = "APIG"
//! path = "/orders"
//! method = "POST"
//!
//! [[triggers]]
//! type = "TIMER"
//! schedule = "Rate 5m"              # s, m, h, d; or "Cron 0 */5 * * * *"
//! user_event = "tick"
//! ```
//!
//! Unknown keys and values out of range are refused with the file, line,
//! column and key named ([`ManifestError`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fnhost::{Entry, FunctionConfig, InstanceConfig, Isolation, MEMORY_SIZES_MB};
use serde::{Deserialize, Serialize};

/// The file name of a project's manifest.
pub const FILE_NAME: &str = "fnhost.toml";
/// The longest manifest read (a manifest is a few hundred bytes).
pub const MAX_BYTES: u64 = 1024 * 1024;

/// A function's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The function's name (1 to 60 letters, digits, `-` and `_`). A
    /// sidecar (`NAME.toml` beside `NAME.so`) may leave it out: it is then
    /// the file's stem ([`Manifest::read_sidecar`]).
    #[serde(default)]
    pub name: String,
    /// The handler's entry, `LIBRARY.HANDLER`: library `LIBRARY.so` (or
    /// `libLIBRARY.so`), handler `HANDLER` in it.
    pub handler: String,
    /// The initializer: `LIBRARY.INIT` in the handler's library, or a bare
    /// `INIT` for the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer: Option<String>,
    /// Memory size in MB (default 128).
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Timeout in seconds (default 3).
    #[serde(default = "default_timeout")]
    pub timeout_s: u32,
    /// The initializer's timeout in seconds (default: the timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer_timeout_s: Option<u32>,
    /// Where the handler runs (default `auto`: process isolation for a Go
    /// library, in process for the others; for a server's
    /// directory function, the server's `--isolation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// The host functions it may call (`fnhost serve` offers `kv.get`,
    /// `kv.put`, `kv.delete` and `invoke`): none unless listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_functions: Vec<String>,
    /// Instances and their concurrency.
    #[serde(default)]
    pub concurrency: Concurrency,
    /// Key-value pairs the handler reads with `ctx.user_data(KEY)`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_data: BTreeMap<String, String>,
    /// What its sandbox allows beyond the minimum (process isolation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<fnhost::SandboxPolicy>,
    /// Triggers created with the function on deploy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Trigger>,
}

/// Instances and their concurrency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Invocations one instance serves at once (default 1).
    #[serde(default = "one")]
    pub per_instance: u32,
    /// Most instances (default 400).
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Instances created (and initialized) at deploy time (default 0).
    #[serde(default)]
    pub reserved: u32,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            per_instance: 1,
            max_instances: default_max_instances(),
            reserved: 0,
        }
    }
}

/// A trigger of the function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Trigger {
    /// An HTTP route through the APIG gateway.
    #[serde(rename = "APIG")]
    Apig {
        /// The request path, starting with `/`.
        path: String,
        /// The HTTP method (default `ANY`).
        #[serde(default = "any_method")]
        method: String,
    },
    /// A timer.
    #[serde(rename = "TIMER")]
    Timer {
        /// `Rate N` with a unit of s, m, h or d (`Rate 5m`), or `Cron <6 fields>`.
        schedule: String,
        /// The `user_event` of each timer event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_event: Option<String>,
    },
    /// A Redis Streams consumer group: `settings` are the API's
    /// `event_data` (`url`, `stream`, `group`, `batch_size`, ...), checked by
    /// the server.
    #[serde(rename = "REDIS")]
    Redis {
        /// The trigger's `event_data`.
        settings: toml::Table,
    },
    /// A NATS JetStream durable consumer (`url`, `stream`, ...).
    #[serde(rename = "NATS")]
    Nats {
        /// The trigger's `event_data`.
        settings: toml::Table,
    },
    /// An MQTT QoS 1 subscription (`url`, `topic`, ...).
    #[serde(rename = "MQTT")]
    Mqtt {
        /// The trigger's `event_data`.
        settings: toml::Table,
    },
    /// A RabbitMQ queue consumer (`url`, `queue` or `exchange`, ...).
    #[serde(rename = "RABBITMQ")]
    Rabbitmq {
        /// The trigger's `event_data`.
        settings: toml::Table,
    },
    /// A Kafka consumer group (`connect_address`, `topic_ids`, ...);
    /// `KAFKA` is the same.
    #[serde(rename = "OPENSOURCEKAFKA", alias = "KAFKA")]
    Kafka {
        /// The trigger's `event_data`.
        settings: toml::Table,
    },
}

impl Trigger {
    /// An event source's type code (`REDIS`, `NATS`, `MQTT`, `RABBITMQ`,
    /// `OPENSOURCEKAFKA`) and settings;
    /// `None` for APIG and TIMER triggers.
    pub fn event_source(&self) -> Option<(&'static str, &toml::Table)> {
        match self {
            Trigger::Redis { settings } => Some(("REDIS", settings)),
            Trigger::Nats { settings } => Some(("NATS", settings)),
            Trigger::Mqtt { settings } => Some(("MQTT", settings)),
            Trigger::Rabbitmq { settings } => Some(("RABBITMQ", settings)),
            Trigger::Kafka { settings } => Some(("OPENSOURCEKAFKA", settings)),
            Trigger::Apig { .. } | Trigger::Timer { .. } => None,
        }
    }
}

fn default_memory() -> u32 {
    128
}
fn default_timeout() -> u32 {
    3
}
fn one() -> u32 {
    1
}
fn default_max_instances() -> u32 {
    400
}
fn any_method() -> String {
    "ANY".into()
}

/// The HTTP methods an APIG trigger may name.
pub const METHODS: [&str; 8] = [
    "ANY", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS",
];

/// Why a manifest was refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// The file (as given).
    pub file: PathBuf,
    /// 1-based line and column of the offending key or value, when known.
    pub at: Option<(usize, usize)>,
    /// The key, dotted (`concurrency.max_instances`, `triggers[1].path`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where `key` (a dotted path) is in `text`, as well as a line-based scan can
/// tell: the line of `last segment =`, in the right table when there is one.
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let last = key.rsplit('.').next()?;
    let last = last.split('[').next().unwrap_or(last);
    let table = key
        .rsplit_once('.')
        .map(|(t, _)| t.split('[').next().unwrap_or(t));
    let mut in_table = table.is_none();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            in_table = table == Some(name);
            continue;
        }
        if in_table {
            if let Some(rest) = t.strip_prefix(last) {
                if rest.trim_start().starts_with('=') {
                    return Some((i + 1, line.len() - t.len() + 1));
                }
            }
        }
    }
    None
}

/// The text of the manifest at `path`, bounded by [`MAX_BYTES`].
fn read_text(path: &Path) -> Result<String, ManifestError> {
    let refuse = |message: String| ManifestError {
        file: path.to_owned(),
        at: None,
        key: None,
        message,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| refuse(format!("cannot read it: {e}")))?
        .len();
    if size > MAX_BYTES {
        return Err(refuse(format!(
            "it is {size} bytes; a manifest is at most {MAX_BYTES}"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| refuse(format!("cannot read it: {e}")))
}

impl Manifest {
    /// Reads and checks the manifest at `path`.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        Manifest::parse_named(&read_text(path)?, path, None)
    }

    /// Reads and checks the sidecar manifest at `path` (`NAME.toml` beside
    /// `NAME.so` in a functions directory): without a `name`, its name is
    /// `name`, the file's stem.
    pub fn read_sidecar(path: &Path, name: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse_named(&read_text(path)?, path, Some(name))
    }

    /// Parses and checks `text`, naming `file` in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
        Manifest::parse_named(text, file, None)
    }

    /// [`parse`](Self::parse), with the name `default_name` when `text`
    /// gives none.
    fn parse_named(
        text: &str,
        file: &Path,
        default_name: Option<&str>,
    ) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = toml::from_str(text).map_err(|e| {
            let message = e.message().to_owned();
            let key = message
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
                .map(str::to_owned);
            ManifestError {
                file: file.to_owned(),
                at: e.span().map(|s| position(text, s.start)),
                key,
                message,
            }
        })?;
        if manifest.name.is_empty() {
            if let Some(name) = default_name {
                manifest.name = name.to_owned();
            }
        }
        manifest.check().map_err(|(key, message)| ManifestError {
            file: file.to_owned(),
            at: locate_key(text, &key),
            key: Some(key),
            message,
        })?;
        Ok(manifest)
    }

    /// The checks TOML's types do not make: `(key, message)` of the first
    /// value out of range.
    fn check(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((key.to_owned(), message));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 60
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if self.name.is_empty() {
            return bad(
                "name",
                "is missing: the function's name (1 to 60 letters, digits, `-` and `_`)".into(),
            );
        }
        if !name_ok {
            return bad(
                "name",
                format!(
                    "`{}` is not a function name: use 1 to 60 letters, digits, `-` and `_`",
                    self.name
                ),
            );
        }
        let entry =
            Entry::parse(&self.handler).map_err(|e| ("handler".to_owned(), e.to_string()))?;
        if let Some(init) = &self.initializer {
            let init = self.initializer_entry_of(init);
            match Entry::parse(&init) {
                Err(e) => return bad("initializer", e.to_string()),
                Ok(i) if i.library != entry.library => {
                    return bad(
                        "initializer",
                        format!(
                            "`{init}` is in library `{}`, the handler in `{}`: the initializer must be in the handler's library",
                            i.library, entry.library
                        ),
                    )
                }
                Ok(_) => {}
            }
        }
        if self.host_functions.len() > 32 {
            return bad(
                "host_functions",
                format!(
                    "lists {} names, more than the 32 allowed",
                    self.host_functions.len()
                ),
            );
        }
        for name in &self.host_functions {
            if let Err(e) = fnhost::host_call::check_name(name) {
                return bad("host_functions", e.to_string());
            }
        }
        if !MEMORY_SIZES_MB.contains(&self.memory_mb) {
            return bad(
                "memory_mb",
                format!(
                    "{} MB is not supported; choose one of {}",
                    self.memory_mb,
                    MEMORY_SIZES_MB.map(|m| m.to_string()).join(", ")
                ),
            );
        }
        if !(1..=900).contains(&self.timeout_s) {
            return bad(
                "timeout_s",
                format!("{} s is out of range (1 to 900)", self.timeout_s),
            );
        }
        if let Some(t) = self.initializer_timeout_s {
            if !(1..=MAX_INITIALIZER_TIMEOUT_S).contains(&t) {
                return bad(
                    "initializer_timeout_s",
                    format!("{t} s is out of range (1 to {MAX_INITIALIZER_TIMEOUT_S})"),
                );
            }
        }
        let c = &self.concurrency;
        if !(1..=1000).contains(&c.per_instance) {
            return bad(
                "concurrency.per_instance",
                format!("{} is out of range (1 to 1000)", c.per_instance),
            );
        }
        if !(1..=fnhost::MAX_INSTANCES).contains(&c.max_instances) {
            return bad(
                "concurrency.max_instances",
                format!(
                    "{} is out of range (1 to {})",
                    c.max_instances,
                    fnhost::MAX_INSTANCES
                ),
            );
        }
        if c.reserved > c.max_instances {
            return bad(
                "concurrency.reserved",
                format!(
                    "{} is more than max_instances ({})",
                    c.reserved, c.max_instances
                ),
            );
        }
        for key in self.user_data.keys() {
            if key.is_empty() || key.len() > 256 {
                return bad(
                    "user_data",
                    format!("key `{key}` must have 1 to 256 characters"),
                );
            }
        }
        for (i, trigger) in self.triggers.iter().enumerate() {
            match trigger {
                Trigger::Apig { path, method } => {
                    if !path.starts_with('/')
                        || path.len() > 512
                        || path.contains(char::is_whitespace)
                    {
                        return bad(
                            &format!("triggers[{i}].path"),
                            format!("`{path}` is not a request path: start with `/`, no spaces, at most 512 bytes"),
                        );
                    }
                    if !METHODS.contains(&method.as_str()) {
                        return bad(
                            &format!("triggers[{i}].method"),
                            format!("`{method}` is not one of {}", METHODS.join(", ")),
                        );
                    }
                }
                Trigger::Redis { settings }
                | Trigger::Nats { settings }
                | Trigger::Mqtt { settings }
                | Trigger::Rabbitmq { settings } => {
                    if !matches!(settings.get("url"), Some(toml::Value::String(_))) {
                        return bad(
                            &format!("triggers[{i}].settings"),
                            "an event source needs its broker's `url`".to_owned(),
                        );
                    }
                }
                Trigger::Kafka { settings } => {
                    if !matches!(
                        settings.get("connect_address"),
                        Some(toml::Value::String(_))
                    ) {
                        return bad(
                            &format!("triggers[{i}].settings"),
                            "a Kafka trigger needs `connect_address` (host:port,...)".to_owned(),
                        );
                    }
                }
                Trigger::Timer { schedule, .. } => {
                    let well_formed = match split_schedule(schedule) {
                        Some(("Rate", rate)) => is_rate(rate),
                        Some(_) => true,
                        None => false,
                    };
                    if !well_formed {
                        return bad(
                            &format!("triggers[{i}].schedule"),
                            format!("`{schedule}` is not `Rate N` with a unit of s, m, h or d (`Rate 5m`), or `Cron <fields>`"),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// `init` as a full entry: a bare `INIT` is in the handler's library.
    fn initializer_entry_of(&self, init: &str) -> String {
        if init.contains('.') {
            init.to_owned()
        } else {
            let library = self.handler.split('.').next().unwrap_or_default();
            format!("{library}.{init}")
        }
    }

    /// The initializer's full entry (`LIBRARY.INIT`), if there is one.
    pub fn initializer_entry(&self) -> Option<String> {
        self.initializer
            .as_deref()
            .map(|i| self.initializer_entry_of(i))
    }

    /// The library the handler is in (`orders` for `orders.Handler`).
    pub fn library(&self) -> &str {
        self.handler.split('.').next().unwrap_or_default()
    }

    /// The runtime configuration of this function with its library in
    /// `code_dir`.
    pub fn function_config(&self, code_dir: impl Into<PathBuf>) -> FunctionConfig {
        let mut config = FunctionConfig::new(self.handler.clone(), code_dir)
            .name(self.name.clone())
            .memory_mb(self.memory_mb)
            .timeout(Duration::from_secs(u64::from(self.timeout_s)))
            .isolation(self.isolation.unwrap_or_default())
            .instances(InstanceConfig {
                concurrency_per_instance: self.concurrency.per_instance,
                max_instances: self.concurrency.max_instances,
                reserved_instances: self.concurrency.reserved,
                ..InstanceConfig::default()
            });
        if let Some(init) = self.initializer_entry() {
            config = config.initializer(init);
        }
        if let Some(t) = self.initializer_timeout_s {
            config = config.initializer_timeout(Duration::from_secs(u64::from(t)));
        }
        for (k, v) in &self.user_data {
            config = config.user_data(k.clone(), v.clone());
        }
        if let Some(sandbox) = &self.sandbox {
            config = config.sandbox(sandbox.clone());
        }
        config.allow_host_functions(self.host_functions.iter().cloned())
    }

    /// The manifest as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// The longest initializer timeout, in seconds (FunctionGraph's, and the
/// server's).
pub const MAX_INITIALIZER_TIMEOUT_S: u32 = 300;

/// Whether `rate` is `N` and a unit of s, m, h or d (`5m`, `90 s`).
fn is_rate(rate: &str) -> bool {
    let digits = rate.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && matches!(rate[digits..].trim(), "s" | "m" | "h" | "d")
}

/// `("Rate", "5m")` or `("Cron", "0 */5 * * * *")` of a schedule.
pub fn split_schedule(schedule: &str) -> Option<(&'static str, &str)> {
    let (kind, rest) = schedule.trim().split_once(char::is_whitespace)?;
    let rest = rest.trim();
    if rest.is_empty() {
        return None;
    }
    match kind {
        "Rate" => Some(("Rate", rest)),
        "Cron" => Some(("Cron", rest)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
name = "orders"
handler = "orders.Handler"
initializer = "Init"
memory_mb = 256
timeout_s = 5
initializer_timeout_s = 10
isolation = "process"

[concurrency]
per_instance = 2
max_instances = 10
reserved = 1

[user_data]
GREETING = "hello"

[sandbox]
network = "host"
allow_outbound = ["203.0.113.7:443"]
tmp_mb = 64
env = ["TZ"]

[[triggers]]
type = "APIG"
path = "/orders"
method = "POST"

[[triggers]]
type = "TIMER"
schedule = "Rate 5m"
user_event = "tick"
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("fnhost.toml"))
    }

    #[test]
    fn a_full_manifest_becomes_a_function_config() {
        let m = parse(FULL).unwrap();
        assert_eq!(m.initializer_entry().as_deref(), Some("orders.Init"));
        assert_eq!(m.triggers.len(), 2);
        let c = m.function_config("/code");
        assert_eq!(c.function_name(), "orders");
        assert_eq!(c.entry, "orders.Handler");
        assert_eq!(c.initializer.as_deref(), Some("orders.Init"));
        assert_eq!(c.memory_mb, 256);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.initializer_timeout, Some(Duration::from_secs(10)));
        assert_eq!(c.isolation, Isolation::Process);
        assert_eq!(c.instances.concurrency_per_instance, 2);
        assert_eq!(c.instances.reserved_instances, 1);
        assert_eq!(c.user_data["GREETING"], "hello");
        assert_eq!(c.sandbox.network, fnhost::Network::Host);
        assert_eq!(c.sandbox.allow_outbound, ["203.0.113.7:443"]);
        assert_eq!(
            (c.sandbox.tmp_mb, &c.sandbox.env[..]),
            (64, &["TZ".to_owned()][..])
        );
        c.validate().unwrap();
        // It round-trips.
        assert_eq!(parse(&m.to_toml()).unwrap(), m);
    }

    #[test]
    fn defaults_fill_a_minimal_manifest() {
        let m = parse("name = \"echo\"\nhandler = \"echo.Handler\"\n").unwrap();
        assert_eq!((m.memory_mb, m.timeout_s), (128, 3));
        assert_eq!(m.isolation, None);
        assert_eq!(m.sandbox, None);
        assert_eq!(m.function_config(".").isolation, Isolation::Auto);
        assert_eq!(m.concurrency, Concurrency::default());
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line_and_name() {
        let e = parse("name = \"a\"\nhandler = \"a.Handler\"\ntimeout = 3\n").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("timeout"));
        assert_eq!(e.at.map(|a| a.0), Some(3));
        let text = e.to_string();
        assert!(
            text.starts_with("fnhost.toml:3:1: `timeout`: unknown field `timeout`"),
            "{text}"
        );
        let e =
            parse("name = \"a\"\nhandler = \"a.Handler\"\n[concurrency]\nmax = 3\n").unwrap_err();
        assert_eq!(
            (e.key.as_deref(), e.at.map(|a| a.0)),
            (Some("max"), Some(4))
        );
    }

    #[test]
    fn values_out_of_range_are_refused_with_their_key_and_line() {
        for (text, key, line) in [
            ("name = \"a\"\nhandler = \"a.Handler\"\nmemory_mb = 100\n", "memory_mb", 3),
            ("name = \"a\"\nhandler = \"a.Handler\"\ntimeout_s = 0\n", "timeout_s", 3),
            ("name = \"a b\"\nhandler = \"a.Handler\"\n", "name", 1),
            ("name = \"a\"\nhandler = \"Handler\"\n", "handler", 2),
            ("name = \"a\"\nhandler = \"a.Handler\"\ninitializer = \"b.Init\"\n", "initializer", 3),
            ("name = \"a\"\nhandler = \"a.Handler\"\n[concurrency]\nmax_instances = 2\nreserved = 3\n", "concurrency.reserved", 5),
            ("name = \"a\"\nhandler = \"a.Handler\"\n[[triggers]]\ntype = \"APIG\"\npath = \"x\"\n", "triggers[0].path", 5),
            ("name = \"a\"\nhandler = \"a.Handler\"\n[[triggers]]\ntype = \"APIG\"\npath = \"/x\"\nmethod = \"FETCH\"\n", "triggers[0].method", 6),
            ("name = \"a\"\nhandler = \"a.Handler\"\n[[triggers]]\ntype = \"TIMER\"\nschedule = \"every minute\"\n", "triggers[0].schedule", 5),
            // The server's rate units are s, m, h and d: `minutes` was
            // accepted here and refused at deploy.
            ("name = \"a\"\nhandler = \"a.Handler\"\n[[triggers]]\ntype = \"TIMER\"\nschedule = \"Rate 5 minutes\"\n", "triggers[0].schedule", 5),
            ("name = \"a\"\nhandler = \"a.Handler\"\ninitializer_timeout_s = 301\n", "initializer_timeout_s", 3),
            ("name = \"a\"\nhandler = \"a.Handler\"\n[[triggers]]\ntype = \"REDIS\"\nsettings = { stream = \"s\" }\n", "triggers[0].settings", 5),
            ("name = \"a\"\nhandler = \"a.Handler\"\n[[triggers]]\ntype = \"KAFKA\"\nsettings = { topic_ids = [\"t\"] }\n", "triggers[0].settings", 5),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
            assert_eq!(e.at.map(|a| a.0), Some(line), "{text}: {e}");
        }
    }

    #[test]
    fn wrong_types_and_unknown_trigger_types_are_refused_with_their_line() {
        let e = parse("name = \"a\"\nhandler = \"a.Handler\"\nmemory_mb = \"big\"\n").unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(3), "{e}");
        let e = parse("name = \"a\"\nhandler = \"a.Handler\"\n[[triggers]]\ntype = \"SQS\"\n")
            .unwrap_err();
        assert!(e.message.contains("SQS"), "{e}");
        assert_eq!(e.at.map(|a| a.0), Some(4), "{e}");
    }

    #[test]
    fn an_oversized_file_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        std::fs::write(&path, vec![b'#'; MAX_BYTES as usize + 1]).unwrap();
        let e = Manifest::read(&path).unwrap_err();
        assert!(e.message.contains("at most"), "{e}");
    }

    #[test]
    fn event_source_triggers_carry_their_settings() {
        let m = parse(
            "name = \"a\"\nhandler = \"a.Handler\"\n[[triggers]]\ntype = \"REDIS\"\nsettings = { url = \"redis://h:1\", stream = \"s\", batch_size = 5 }\n",
        )
        .unwrap();
        let (kind, settings) = m.triggers[0].event_source().unwrap();
        assert_eq!(kind, "REDIS");
        assert_eq!(settings["batch_size"].as_integer(), Some(5));
    }
}
