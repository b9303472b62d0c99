//! The records the API serves and the store keeps, with FunctionGraph's field
//! names, and their conversion into the runtime's configuration.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::ApiError;
use super::urn::function_urn;
use fnhost::{FunctionConfig, InstanceConfig};

/// The longest initializer timeout (FunctionGraph's: 300 s).
pub const MAX_INITIALIZER_TIMEOUT_SECS: u32 = 300;

/// The longest `user_data` (FunctionGraph's environment variables: 4 KB as
/// the JSON string).
pub const MAX_USER_DATA_BYTES: usize = 4096;
/// The longest `description` (FunctionGraph's: 512 characters).
pub const MAX_DESCRIPTION_BYTES: usize = 512;
/// The longest handler or initializer entry (FunctionGraph's: 128).
pub const MAX_HANDLER_BYTES: usize = 128;
/// The most host functions a function's `host_functions` may list.
pub const MAX_HOST_FUNCTIONS: usize = 32;

/// Runtimes a function may declare.
pub const RUNTIMES: [&str; 3] = ["Rust1.x", "Go1.x", "Custom"];

/// A function as created and updated through the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionRecord {
    /// Project id of the URN.
    pub project_id: String,
    /// Name.
    pub func_name: String,
    /// Package (function group).
    pub package: String,
    /// `Rust1.x`, `Go1.x` or `Custom` (informational: the library decides).
    pub runtime: String,
    /// Entry `NAME.HANDLER`.
    pub handler: String,
    /// MB.
    pub memory_size: u32,
    /// Seconds.
    pub timeout: u32,
    /// User data as a JSON object string.
    #[serde(default)]
    pub user_data: String,
    /// Initializer entry, empty for none.
    #[serde(default)]
    pub initializer_handler: String,
    /// Initializer timeout in seconds, 0 for the function's timeout.
    #[serde(default)]
    pub initializer_timeout: u32,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// SHA-256 of the code package.
    pub digest: String,
    /// Size of the code package.
    pub code_size: u64,
    /// Maximum instances (0: the default).
    #[serde(default)]
    pub max_instance_num: u32,
    /// Reserved instances.
    #[serde(default)]
    pub reserved_instance_count: u32,
    /// Per-instance concurrency (0: 1).
    #[serde(default)]
    pub concurrent_num: u32,
    /// `auto` (default: `process` for a Go library, `in-process` otherwise),
    /// `in-process`, `inline` or `process` (fnhost's extension).
    #[serde(default)]
    pub isolation: fnhost::Isolation,
    /// What the function's sandbox allows in process isolation (network,
    /// outbound allowlist, `/tmp` size, environment, read-only paths).
    #[serde(default)]
    pub sandbox: fnhost::SandboxPolicy,
    /// The host functions the function may call (`kv.get`, `invoke`...):
    /// none unless listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_functions: Vec<String>,
    /// The id of its key-value space (the `kv.*` host functions), made when
    /// the function is created (a new one if a function of its name is
    /// created again); its versions share it. Internal: not in the API.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kv_space: String,
    /// When it was created, in ms since the Unix epoch (0: not known, or a
    /// library of the functions directory): an asynchronous invocation
    /// accepted before it was for an earlier function of its name.
    /// Internal: not in the API.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub created_ms: i64,
    /// RFC 3339.
    pub last_modified: String,
    /// How the last change of code or configuration went: `Successful`, or
    /// `Failed` (it did not load; what it replaced keeps serving).
    #[serde(default = "successful")]
    pub last_update_status: String,
    /// Why the last change failed (empty when it did not).
    #[serde(default)]
    pub last_update_status_reason: String,
    /// While the last change has failed: the record that still serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<Box<FunctionRecord>>,
}

/// [`FunctionRecord::last_update_status`] of a change that loaded.
pub const SUCCESSFUL: &str = "Successful";
/// [`FunctionRecord::last_update_status`] of a change that did not load.
pub const FAILED: &str = "Failed";

fn successful() -> String {
    SUCCESSFUL.to_owned()
}

/// A published version: a snapshot of the function record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionRecord {
    /// Version name.
    pub version: String,
    /// Free text.
    pub description: String,
    /// The function as it was when published.
    pub function: FunctionRecord,
    /// RFC 3339.
    pub created: String,
}

/// An alias.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AliasRecord {
    /// Alias name.
    pub name: String,
    /// Version it points at.
    pub version: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Weighted additional versions.
    #[serde(default)]
    pub additional_version_weights: BTreeMap<String, u32>,
    /// RFC 3339.
    pub last_modified: String,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Now, as FunctionGraph writes times: UTC with `Z` (the official Python
/// SDK parses that form, and warned on every listing of `+00:00`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Parses a user data JSON object string into a map of strings.
pub fn parse_user_data(s: &str) -> Result<BTreeMap<String, String>, ApiError> {
    if s.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    let v: Value = serde_json::from_str(s)
        .map_err(|e| ApiError::bad_request(format!("user_data is not a JSON object: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("user_data is not a JSON object"))?;
    Ok(obj
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect())
}

impl FunctionRecord {
    /// The record that serves invocations: this one, or while its last
    /// change has failed, the one before it.
    pub fn served(&self) -> &FunctionRecord {
        self.serving.as_deref().unwrap_or(self)
    }

    /// The code packages this record needs kept: its own, and the serving
    /// record's while its last change has failed.
    pub fn digests(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.digest.as_str())
            .chain(self.serving.as_deref().map(|s| s.digest.as_str()))
    }

    /// Checks every value of the record (user data, ranges), without its
    /// code: what [`to_config`](Self::to_config) would refuse.
    pub fn validate(&self) -> Result<(), ApiError> {
        // The code directory plays no part in the checks.
        self.to_config(Path::new("")).map(drop)
    }

    /// The sizes and ranges of the fields a client sets, the same on create
    /// and update and when a row is read back from the store: what a record
    /// may make this server hold and answer is bounded here, not by the body
    /// limit of whichever request carried it.
    fn check_fields(&self) -> Result<(), ApiError> {
        for (field, value, max) in [
            ("user_data", &self.user_data, MAX_USER_DATA_BYTES),
            ("description", &self.description, MAX_DESCRIPTION_BYTES),
            ("handler", &self.handler, MAX_HANDLER_BYTES),
            (
                "initializer_handler",
                &self.initializer_handler,
                MAX_HANDLER_BYTES,
            ),
            ("runtime", &self.runtime, 32),
            ("project_id", &self.project_id, 64),
        ] {
            if value.len() > max {
                return Err(ApiError::bad_request(format!(
                    "{field} is {} bytes, more than the {max} allowed",
                    value.len()
                )));
            }
        }
        // The entries' form, on update as on create (whether the library
        // has them is the deploy's question: a two-step update may name a
        // handler its next package brings).
        for (field, entry) in [
            ("handler", &self.handler),
            ("initializer_handler", &self.initializer_handler),
        ] {
            if field == "initializer_handler" && entry.is_empty() {
                continue;
            }
            if entry.chars().any(char::is_control) || fnhost::Entry::parse(entry).is_err() {
                return Err(ApiError::bad_request(format!(
                    "{field} `{}` is not LIBRARY.NAME (letters, digits and the like; no `/`, no control characters)",
                    entry.escape_debug().take(80).collect::<String>()
                )));
            }
        }
        if self.timeout == 0 || u64::from(self.timeout) > fnhost::MAX_TIMEOUT.as_secs() {
            return Err(ApiError::bad_request(format!(
                "timeout must be 1 to {} seconds, got {}",
                fnhost::MAX_TIMEOUT.as_secs(),
                self.timeout
            )));
        }
        if self.initializer_timeout > MAX_INITIALIZER_TIMEOUT_SECS {
            return Err(ApiError::bad_request(format!(
                "initializer_timeout must be 0 to {MAX_INITIALIZER_TIMEOUT_SECS} seconds, got {}",
                self.initializer_timeout
            )));
        }
        if !fnhost::is_valid_package_name(&self.package) {
            return Err(ApiError::bad_request(format!(
                "package `{}` is not valid: use 1 to 64 letters, digits, `-` and `_`, starting with a letter",
                self.package.escape_debug().take(80).collect::<String>()
            )));
        }
        if self.host_functions.len() > MAX_HOST_FUNCTIONS {
            return Err(ApiError::bad_request(format!(
                "host_functions lists {} names, more than the {MAX_HOST_FUNCTIONS} allowed",
                self.host_functions.len()
            )));
        }
        for name in &self.host_functions {
            fnhost::host_call::check_name(name)
                .map_err(|e| ApiError::bad_request(format!("host_functions: {e}")))?;
        }
        Ok(())
    }

    /// The runtime configuration of this record, with its code in `code_dir`.
    pub fn to_config(&self, code_dir: &Path) -> Result<FunctionConfig, ApiError> {
        self.check_fields()?;
        let mut config = FunctionConfig::new(self.handler.clone(), code_dir)
            .name(self.func_name.clone())
            .package(self.package.clone())
            .project_id(self.project_id.clone())
            .memory_mb(self.memory_size)
            .timeout(Duration::from_secs(u64::from(self.timeout)));
        config.user_data = parse_user_data(&self.user_data)?;
        if !self.initializer_handler.is_empty() {
            config = config.initializer(self.initializer_handler.clone());
            if self.initializer_timeout > 0 {
                config = config
                    .initializer_timeout(Duration::from_secs(u64::from(self.initializer_timeout)));
            }
        }
        let defaults = InstanceConfig::default();
        config.instances = InstanceConfig {
            concurrency_per_instance: if self.concurrent_num == 0 {
                1
            } else {
                self.concurrent_num
            },
            max_instances: if self.max_instance_num == 0 {
                defaults.max_instances
            } else {
                self.max_instance_num
            },
            reserved_instances: self.reserved_instance_count,
            ..defaults
        };
        config.isolation = self.isolation;
        config.sandbox = self.sandbox.clone();
        // Always a list: a function reaches only what it declares.
        config.host_functions = Some(self.host_functions.clone());
        config.function_id = self.kv_space.clone();
        config
            .validate()
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(config)
    }

    /// The function's URN (without version).
    pub fn urn(&self) -> String {
        function_urn(&self.project_id, &self.package, &self.func_name)
    }

    /// The API representation (the SDK's function models), for `version`.
    pub fn to_json(&self, version: &str) -> Value {
        let urn = if version == "latest" {
            format!("{}:latest", self.urn())
        } else {
            format!("{}:{version}", self.urn())
        };
        json!({
            "func_id": self.digest.get(..32).unwrap_or(&self.digest),
            "func_urn": urn,
            "func_name": self.func_name,
            "domain_id": self.project_id,
            "namespace": self.project_id,
            "project_name": super::urn::REGION,
            "package": self.package,
            "runtime": self.runtime,
            "timeout": self.timeout,
            "handler": self.handler,
            "memory_size": self.memory_size,
            "cpu": self.memory_size / 128 * 100 + 200,
            "code_type": "zip",
            "code_url": "",
            "code_filename": format!("{}.zip", self.func_name),
            "code_size": self.code_size,
            "user_data": self.user_data,
            "encrypted_user_data": "",
            "digest": self.digest,
            "version": version,
            "image_name": format!("{}-{}", self.func_name, self.digest.get(..12).unwrap_or(&self.digest)),
            "description": self.description,
            "last_modified": self.last_modified,
            "initializer_handler": self.initializer_handler,
            // Its effective value: the function's timeout when none is set
            // (0 only without an initializer).
            "initializer_timeout": if self.initializer_timeout == 0 && !self.initializer_handler.is_empty() {
                self.timeout
            } else {
                self.initializer_timeout
            },
            "reserved_instance_count": self.reserved_instance_count,
            "strategy_config": {"concurrency": self.max_instance_num, "concurrent_num": self.concurrent_num.max(1)},
            "type": "v2",
            "isolation": self.isolation,
            "sandbox": self.sandbox,
            "host_functions": self.host_functions,
            "last_update_status": self.last_update_status,
            "last_update_status_reason": self.last_update_status_reason,
            "serving": self.serving.as_deref().map(|s| json!({
                "handler": s.handler,
                "digest": s.digest,
                "code_size": s.code_size,
                "last_modified": s.last_modified,
            })),
        })
    }
}

impl AliasRecord {
    /// The API representation.
    pub fn to_json(&self, function: &FunctionRecord) -> Value {
        json!({
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "last_modified": self.last_modified,
            "alias_urn": format!("{}:{}", function.urn(), self.name),
            "additional_version_weights": self.additional_version_weights,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(initializer: &str, initializer_timeout: u32) -> FunctionRecord {
        serde_json::from_value(json!({
            "project_id": "p", "func_name": "f", "package": "default", "runtime": "Rust1.x",
            "handler": "f.Handler", "memory_size": 128, "timeout": 7,
            "initializer_handler": initializer, "initializer_timeout": initializer_timeout,
            "digest": "", "code_size": 0, "last_modified": "",
        }))
        .unwrap()
    }

    /// A version published without an initializer timeout showed
    /// `"initializer_timeout": 0`: the answer says the effective value.
    #[test]
    fn the_initializer_timeout_answered_is_the_effective_one() {
        assert_eq!(
            record("f.Init", 0).to_json("latest")["initializer_timeout"],
            7
        );
        assert_eq!(
            record("f.Init", 3).to_json("latest")["initializer_timeout"],
            3
        );
        assert_eq!(record("", 0).to_json("latest")["initializer_timeout"], 0);
    }
}
