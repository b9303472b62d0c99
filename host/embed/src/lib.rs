//! The C API of fnhost (`include/fnhost_embed.h` is the normative
//! description: ownership, lifetimes, threads). Every function here is
//! `extern "C"`, catches panics (nothing unwinds into the caller), checks
//! its pointers for NULL, and reads strings as NUL-terminated UTF-8,
//! refusing anything else with an error message rather than crashing.

// The opaque types keep the C header's names.
#![allow(non_camel_case_types)]

mod calls;
mod ffi;
mod handles;
mod host_functions;
mod logging;
mod results;

pub use calls::{fnhost_call, fnhost_call_done_fn};
pub use handles::{fnhost_function, fnhost_runtime};
pub use host_functions::{fnhost_host_call, fnhost_host_fn};
pub use logging::fnhost_log_fn;
pub use results::{
    fnhost_result, fnhost_result_body, fnhost_result_content_type, fnhost_result_error_type,
    fnhost_result_free, fnhost_result_is_error, fnhost_result_log, fnhost_result_request_id,
    fnhost_result_summary_json,
};

use ffi::{c_string, guard, object, parse_json, payload_of, read_str, status};
use results::{error_result, invoke_error_type, result_of};

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::PathBuf;
use std::time::Duration;

use fnhost::{Alias, Function, FunctionConfig, InvokeResult, Isolation, Runtime, RuntimeConfig};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuntimeJson {
    cache_dir: Option<PathBuf>,
    worker_executable: Option<PathBuf>,
    max_worker_processes: Option<usize>,
    /// "strict", "auto" (the default) or "off".
    sandbox: Option<String>,
    /// Host directories functions may see read-only.
    #[serde(default)]
    sandbox_allow_paths: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionJson {
    entry: String,
    code_dir: PathBuf,
    name: Option<String>,
    initializer: Option<String>,
    timeout_s: Option<f64>,
    memory_mb: Option<u32>,
    #[serde(default)]
    user_data: BTreeMap<String, String>,
    isolation: Option<String>,
    /// The function's sandbox policy (process isolation).
    sandbox: Option<fnhost::SandboxPolicy>,
    /// The host functions it may call (absent: all).
    host_functions: Option<Vec<String>>,
}

impl FunctionJson {
    fn into_config(self) -> Result<FunctionConfig, String> {
        let mut config = FunctionConfig::new(self.entry, self.code_dir);
        if let Some(name) = self.name {
            config = config.name(name);
        }
        if let Some(init) = self.initializer {
            config = config.initializer(init);
        }
        if let Some(t) = self.timeout_s {
            if !t.is_finite() || t <= 0.0 || t > 86_400.0 {
                return Err(format!(
                    "timeout_s must be a number of seconds in (0, 86400], got {t}"
                ));
            }
            config = config.timeout(Duration::from_secs_f64(t));
        }
        if let Some(mb) = self.memory_mb {
            config = config.memory_mb(mb);
        }
        for (k, v) in self.user_data {
            config = config.user_data(k, v);
        }
        if let Some(i) = self.isolation {
            let isolation: Isolation = i.parse().map_err(|e| format!("isolation: {e}"))?;
            config = config.isolation(isolation);
        }
        if let Some(sandbox) = self.sandbox {
            config = config.sandbox(sandbox);
        }
        if let Some(names) = self.host_functions {
            config = config.allow_host_functions(names);
        }
        Ok(config)
    }
}

/// The `fnhost` executable worker processes (and pre-flights) run: the
/// configured one, else `$FNHOST_WORKER_EXECUTABLE`, else `fnhost` next to
/// this library, else `fnhost` on the `PATH`.
fn default_worker_executable() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FNHOST_WORKER_EXECUTABLE") {
        return Some(PathBuf::from(p));
    }
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    // SAFETY: dladdr fills `info` for an address inside a loaded object; the
    // address is one of this library's functions.
    let found = unsafe { libc::dladdr(fnhost_version as *const libc::c_void, info.as_mut_ptr()) };
    if found != 0 {
        // SAFETY: dladdr succeeded, so `info` is initialized.
        let info = unsafe { info.assume_init() };
        if !info.dli_fname.is_null() {
            // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
            let lib = PathBuf::from(
                unsafe { CStr::from_ptr(info.dli_fname) }
                    .to_string_lossy()
                    .into_owned(),
            );
            if let Some(sibling) = lib
                .parent()
                .map(|d| d.join("fnhost"))
                .filter(|p| p.is_file())
            {
                return Some(sibling);
            }
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("fnhost"))
            .find(|p| p.is_file())
    })
}

/// The library's version, e.g. `"0.1.0 (ABI 1.2)"`; static, never freed.
#[no_mangle]
pub extern "C" fn fnhost_version() -> *const c_char {
    static VERSION: std::sync::OnceLock<CString> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            c_string(&format!(
                "{} (ABI {}.{})",
                env!("CARGO_PKG_VERSION"),
                fnhost_api_abi().0,
                fnhost_api_abi().1
            ))
        })
        .as_ptr()
}

fn fnhost_api_abi() -> (u16, u16) {
    (fnhost_api::abi::ABI_MAJOR, fnhost_api::abi::ABI_MINOR)
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `config_json` is NULL or a NUL-terminated string; `error_out` is NULL or
/// valid for one pointer write.
#[no_mangle]
pub unsafe extern "C" fn fnhost_runtime_new(
    config_json: *const c_char,
    error_out: *mut *mut c_char,
) -> *mut fnhost_runtime {
    let made = guard(
        || Err("panic while creating the runtime".to_owned()),
        || {
            let json: RuntimeJson = if config_json.is_null() {
                RuntimeJson::default()
            } else {
                // SAFETY: forwarded contract.
                let text = unsafe { read_str(config_json, "config_json")? };
                parse_json(text, "config_json")?
            };
            let mut config = RuntimeConfig {
                cache_dir: json.cache_dir,
                worker_executable: json.worker_executable.or_else(default_worker_executable),
                ..RuntimeConfig::default()
            };
            if let Some(max) = json.max_worker_processes {
                config.max_worker_processes = max;
            }
            if let Some(mode) = json.sandbox {
                config.sandbox.mode = mode.parse().map_err(|e| format!("sandbox: {e}"))?;
            }
            config.sandbox.allowed_paths = json.sandbox_allow_paths;
            Runtime::new(config).map_err(|e| e.to_string())
        },
    );
    // SAFETY: forwarded contract.
    unsafe {
        object(
            made.map(|runtime| fnhost_runtime {
                runtime,
                host_functions: parking_lot::Mutex::default(),
            }),
            error_out,
        )
    }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `rt` is NULL or a runtime from `fnhost_runtime_new`, not used after.
#[no_mangle]
pub unsafe extern "C" fn fnhost_runtime_free(rt: *mut fnhost_runtime) {
    if !rt.is_null() {
        // SAFETY: from Box::into_raw in fnhost_runtime_new, freed once.
        let rt = unsafe { Box::from_raw(rt) };
        guard(
            || (),
            || {
                // A handler still running (a runaway) must not reach a
                // callback whose `user` the program frees next.
                for function in rt.host_functions.lock().drain(..) {
                    rt.runtime.unregister_host_function(function.name());
                    function.close();
                }
                drop(rt);
            },
        );
    }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `rt` is NULL or a live runtime; `name` NULL or NUL-terminated;
/// `error_out` NULL or writable. `user` is the caller's, passed back as is.
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_function_register(
    rt: *mut fnhost_runtime,
    name: *const c_char,
    function: fnhost_host_fn,
    user: *mut c_void,
    error_out: *mut *mut c_char,
) -> c_int {
    let done = guard(
        || Err("panic while registering the host function".to_owned()),
        || {
            // SAFETY: forwarded contract.
            let rt = unsafe { rt.as_ref() }.ok_or("rt is NULL")?;
            // SAFETY: forwarded contract.
            let name = unsafe { read_str(name, "name")? };
            let callback = function.ok_or("fn is NULL")?;
            let function =
                std::sync::Arc::new(host_functions::CHostFunction::new(name, callback, user));
            let mut registered = rt.host_functions.lock();
            rt.runtime
                .register_host_function(
                    name,
                    host_functions::Registered(std::sync::Arc::clone(&function)),
                )
                .map_err(|e| e.to_string())?;
            registered.push(function);
            Ok(())
        },
    );
    // SAFETY: forwarded contract.
    unsafe { status(done, error_out) }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `rt` is NULL or a live runtime; `name` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn fnhost_host_function_unregister(
    rt: *mut fnhost_runtime,
    name: *const c_char,
) -> c_int {
    guard(
        || -1,
        || {
            // SAFETY: forwarded contract.
            let (Some(rt), Ok(name)) = (unsafe { rt.as_ref() }, unsafe { read_str(name, "name") })
            else {
                return -1;
            };
            let function = {
                let mut registered = rt.host_functions.lock();
                let Some(at) = registered.iter().position(|f| f.name() == name) else {
                    return 0;
                };
                if !registered[at].close_would_wait_for_itself() {
                    rt.runtime.unregister_host_function(name);
                    registered.swap_remove(at)
                } else {
                    return -1;
                }
            };
            // Outside the registry's lock: running calls may register or
            // unregister others while they finish.
            function.close();
            1
        },
    )
}

/// # Safety
/// `rt` is NULL or a live runtime; `config_json` NULL or NUL-terminated.
unsafe fn config_from<'a>(
    rt: *const fnhost_runtime,
    config_json: *const c_char,
) -> Result<(&'a fnhost_runtime, FunctionConfig), String> {
    if rt.is_null() {
        return Err("rt is NULL".into());
    }
    // SAFETY: forwarded contract.
    let text = unsafe { read_str(config_json, "config_json")? };
    let json: FunctionJson = parse_json(text, "config_json")?;
    // SAFETY: non-null, live per the contract.
    Ok((unsafe { &*rt }, json.into_config()?))
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As the header says: a live runtime, a NUL-terminated config, an
/// `error_out` that is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fnhost_function_load(
    rt: *mut fnhost_runtime,
    config_json: *const c_char,
    error_out: *mut *mut c_char,
) -> *mut fnhost_function {
    let loaded = guard(
        || Err("panic while loading the function".to_owned()),
        || {
            // SAFETY: forwarded contract.
            let (rt, config) = unsafe { config_from(rt, config_json)? };
            rt.runtime.load(config).map_err(|e| e.to_string())
        },
    );
    // SAFETY: forwarded contract.
    unsafe {
        object(
            loaded.map(|function| fnhost_function { function }),
            error_out,
        )
    }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `f` is NULL or a function from `fnhost_function_load`, not used after.
#[no_mangle]
pub unsafe extern "C" fn fnhost_function_free(f: *mut fnhost_function) {
    if !f.is_null() {
        // SAFETY: from Box::into_raw in fnhost_function_load, freed once.
        guard(|| (), || drop(unsafe { Box::from_raw(f) }));
    }
}

/// # Safety
/// `f` is NULL or a live function; `payload` points at `payload_len` bytes
/// (or is NULL with 0).
unsafe fn invoke_with(
    f: *const fnhost_function,
    payload: *const u8,
    payload_len: usize,
    call: impl FnOnce(&Function, &[u8]) -> Result<InvokeResult, fnhost::InvokeError>,
) -> *mut fnhost_result {
    guard(
        || error_result("panic", "panic inside fnhost"),
        || {
            if f.is_null() {
                return error_result("InvalidArgument", "f is NULL");
            }
            // SAFETY: forwarded contract.
            let Some(payload) = (unsafe { payload_of(payload, payload_len) }) else {
                return error_result("InvalidArgument", "payload is NULL with a non-zero length");
            };
            // SAFETY: non-null, live per the contract.
            match call(&unsafe { &*f }.function, payload) {
                Ok(r) => Box::into_raw(result_of(r)),
                Err(e) => error_result(invoke_error_type(&e), &e.to_string()),
            }
        },
    )
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `f` is a live function; `payload` points at `payload_len` bytes (or is
/// NULL with 0).
#[no_mangle]
pub unsafe extern "C" fn fnhost_function_invoke(
    f: *const fnhost_function,
    payload: *const u8,
    payload_len: usize,
) -> *mut fnhost_result {
    // SAFETY: forwarded contract.
    unsafe { invoke_with(f, payload, payload_len, Function::invoke) }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As for `fnhost_function_invoke`.
#[no_mangle]
pub unsafe extern "C" fn fnhost_function_invoke_on_current_thread(
    f: *const fnhost_function,
    payload: *const u8,
    payload_len: usize,
) -> *mut fnhost_result {
    // SAFETY: forwarded contract.
    unsafe { invoke_with(f, payload, payload_len, Function::invoke_on_current_thread) }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// As for `fnhost_function_load`.
#[no_mangle]
pub unsafe extern "C" fn fnhost_deploy(
    rt: *mut fnhost_runtime,
    config_json: *const c_char,
    error_out: *mut *mut c_char,
) -> c_int {
    let done = guard(
        || Err("panic while deploying".to_owned()),
        || {
            // SAFETY: forwarded contract.
            let (rt, config) = unsafe { config_from(rt, config_json)? };
            if config.name.is_none() {
                return Err("config_json needs a \"name\" to deploy under".into());
            }
            rt.runtime
                .registry()
                .deploy(config)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    // SAFETY: forwarded contract.
    unsafe { status(done, error_out) }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// A live runtime; `name` and `version` NUL-terminated (`version` may be NULL).
#[no_mangle]
pub unsafe extern "C" fn fnhost_publish_version(
    rt: *mut fnhost_runtime,
    name: *const c_char,
    version: *const c_char,
    error_out: *mut *mut c_char,
) -> c_int {
    let done = guard(
        || Err("panic while publishing".to_owned()),
        || {
            if rt.is_null() {
                return Err("rt is NULL".to_owned());
            }
            // SAFETY: forwarded contract.
            let name = unsafe { read_str(name, "name")? };
            let version = if version.is_null() {
                None
            } else {
                // SAFETY: forwarded contract.
                Some(unsafe { read_str(version, "version")? })
            };
            // SAFETY: non-null, live per the contract.
            unsafe { &*rt }
                .runtime
                .registry()
                .publish_version(name, version, "", None)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    );
    // SAFETY: forwarded contract.
    unsafe { status(done, error_out) }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasJson {
    name: String,
    version: String,
    #[serde(default)]
    weights: BTreeMap<String, u32>,
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// A live runtime; `name` and `alias_json` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn fnhost_set_alias(
    rt: *mut fnhost_runtime,
    name: *const c_char,
    alias_json: *const c_char,
    error_out: *mut *mut c_char,
) -> c_int {
    let done = guard(
        || Err("panic while setting the alias".to_owned()),
        || {
            if rt.is_null() {
                return Err("rt is NULL".to_owned());
            }
            // SAFETY: forwarded contract.
            let function = unsafe { read_str(name, "name")? };
            // SAFETY: forwarded contract.
            let json: AliasJson =
                parse_json(unsafe { read_str(alias_json, "alias_json")? }, "alias_json")?;
            let mut alias = Alias::new(json.name, json.version);
            for (version, percent) in json.weights {
                alias = alias.with_weight(version, percent);
            }
            // SAFETY: non-null, live per the contract.
            let registry = unsafe { &*rt }.runtime.registry();
            let exists = registry
                .function(function)
                .map_err(|e| e.to_string())?
                .aliases
                .iter()
                .any(|a| a.name == alias.name);
            let set = if exists {
                registry.update_alias(function, alias)
            } else {
                registry.create_alias(function, alias)
            };
            set.map(|_| ()).map_err(|e| e.to_string())
        },
    );
    // SAFETY: forwarded contract.
    unsafe { status(done, error_out) }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// A live runtime; `target` NUL-terminated; `payload` as for
/// `fnhost_function_invoke`.
#[no_mangle]
pub unsafe extern "C" fn fnhost_invoke(
    rt: *mut fnhost_runtime,
    target: *const c_char,
    payload: *const u8,
    payload_len: usize,
) -> *mut fnhost_result {
    guard(
        || error_result("panic", "panic inside fnhost"),
        || {
            if rt.is_null() {
                return error_result("InvalidArgument", "rt is NULL");
            }
            // SAFETY: forwarded contract.
            let target = match unsafe { read_str(target, "target") } {
                Ok(t) => t,
                Err(e) => return error_result("InvalidArgument", &e),
            };
            // SAFETY: forwarded contract.
            let Some(payload) = (unsafe { payload_of(payload, payload_len) }) else {
                return error_result("InvalidArgument", "payload is NULL with a non-zero length");
            };
            // SAFETY: non-null, live per the contract.
            match unsafe { &*rt }.runtime.registry().invoke(target, payload) {
                Ok(r) => Box::into_raw(result_of(r)),
                Err(e) => error_result(invoke_error_type(&e), &e.to_string()),
            }
        },
    )
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `s` is NULL or a string this library returned through `error_out`.
#[no_mangle]
pub unsafe extern "C" fn fnhost_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: from CString::into_raw in `set_error`, freed once.
        guard(|| (), || drop(unsafe { CString::from_raw(s) }));
    }
}

/// See `fnhost_embed.h`: the runtime's counters as JSON.
///
/// # Safety
/// `rt` is NULL or a live runtime. The string is the caller's, freed with
/// `fnhost_string_free`.
#[no_mangle]
pub unsafe extern "C" fn fnhost_runtime_stats_json(rt: *const fnhost_runtime) -> *mut c_char {
    guard(std::ptr::null_mut, || {
        // SAFETY: forwarded contract.
        let Some(rt) = (unsafe { rt.as_ref() }) else {
            return std::ptr::null_mut();
        };
        let s = rt.runtime.stats();
        c_string(
            &serde_json::json!({
                "invocations": s.invocations,
                "timeouts": s.timeouts,
                "runaway_invocations": s.runaway_invocations,
                "worker_threads": s.worker_threads,
                "libraries_mapped": s.libraries_mapped,
                "worker_processes": s.worker_processes,
            })
            .to_string(),
        )
        .into_raw()
    })
}

/// See `fnhost_embed.h`: fnhost's own log records to `callback`.
///
/// # Safety
/// `callback` is NULL or a function that may be called from any thread,
/// concurrently, until it is replaced; `user` is whatever it needs.
#[no_mangle]
pub unsafe extern "C" fn fnhost_set_log_callback(
    callback: fnhost_log_fn,
    user: *mut c_void,
    max_level: c_int,
) -> c_int {
    guard(|| -1, || logging::set(callback, user, max_level))
}

/// See `fnhost_embed.h`.
#[no_mangle]
pub extern "C" fn fnhost_log_flush(timeout_ms: c_int) -> c_int {
    let timeout = std::time::Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0));
    guard(|| -1, || if logging::flush(timeout) { 0 } else { -1 })
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// A live runtime; `name` NUL-terminated; `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fnhost_delete(
    rt: *mut fnhost_runtime,
    name: *const c_char,
    error_out: *mut *mut c_char,
) -> c_int {
    let done = guard(
        || Err("panic while deleting".to_owned()),
        || {
            if rt.is_null() {
                return Err("rt is NULL".to_owned());
            }
            // SAFETY: forwarded contract.
            let name = unsafe { read_str(name, "name")? };
            // SAFETY: non-null, live per the contract.
            unsafe { &*rt }
                .runtime
                .registry()
                .delete_function(name)
                .map_err(|e| e.to_string())
        },
    );
    // SAFETY: forwarded contract.
    unsafe { status(done, error_out) }
}

/// Worker processes of an embedding program: call from `main` first; when
/// the program was started as a worker (`__worker`), this runs the worker
/// and never returns. Lets the program itself be `worker_executable`.
///
/// # Safety
/// `argc` and `argv` are `main`'s.
#[no_mangle]
pub unsafe extern "C" fn fnhost_worker_main_if_worker(argc: c_int, argv: *const *const c_char) {
    if argc >= 2 && !argv.is_null() {
        // SAFETY: argv has argc entries per C's main contract.
        let arg = unsafe { *argv.add(1) };
        if !arg.is_null() {
            // SAFETY: a NUL-terminated argument.
            let arg = unsafe { CStr::from_ptr(arg) };
            if arg.to_bytes() == fnhost::worker::ARG.as_bytes() {
                let code = guard(|| 1, fnhost::worker::main);
                std::process::exit(code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_error(e: *mut c_char) -> String {
        assert!(!e.is_null());
        // SAFETY: a message this library returned, freed right after.
        let s = unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned();
        // SAFETY: as above.
        unsafe { fnhost_string_free(e) };
        s
    }

    #[test]
    fn null_and_malformed_arguments_are_errors_not_crashes() {
        let mut error = std::ptr::null_mut();
        // SAFETY: every pointer below is NULL or a valid C string.
        unsafe {
            let rt = fnhost_runtime_new(c"{\"cache_dirr\": 1}".as_ptr(), &mut error);
            assert!(rt.is_null());
            assert!(take_error(error).contains("unknown field"));
            let rt = fnhost_runtime_new(c"{".as_ptr(), &mut error);
            assert!(rt.is_null());
            assert!(take_error(error).contains("not valid"));
            assert!(
                fnhost_function_load(std::ptr::null_mut(), c"{}".as_ptr(), &mut error).is_null()
            );
            assert!(take_error(error).contains("rt is NULL"));
            let r = fnhost_function_invoke(std::ptr::null(), std::ptr::null(), 0);
            assert_eq!(fnhost_result_is_error(r), 1);
            let ty = CStr::from_ptr(fnhost_result_error_type(r));
            assert_eq!(ty.to_str().unwrap(), "InvalidArgument");
            fnhost_result_free(r);
            assert_eq!(fnhost_result_is_error(std::ptr::null()), 1);
            assert!(fnhost_result_body(std::ptr::null(), std::ptr::null_mut()).is_null());
            fnhost_result_free(std::ptr::null_mut());
            fnhost_function_free(std::ptr::null_mut());
            fnhost_runtime_free(std::ptr::null_mut());
            fnhost_string_free(std::ptr::null_mut());
        }
    }

    #[test]
    fn a_configuration_is_checked_before_anything_loads() {
        let dir = std::env::temp_dir().join(format!("fnhost-embed-test-{}", std::process::id()));
        let config = CString::new(format!("{{\"cache_dir\": {:?}}}", dir.join("cache"))).unwrap();
        let mut error = std::ptr::null_mut();
        // SAFETY: valid C strings; the runtime is freed at the end.
        unsafe {
            let rt = fnhost_runtime_new(config.as_ptr(), &mut error);
            assert!(!rt.is_null());
            let cases: [(&CStr, &str); 4] = [
                (c"{\"entry\": \"x.Handler\"}", "missing field `code_dir`"),
                (c"{\"entry\": \"x.Handler\", \"code_dir\": \"/nowhere\", \"timeout_s\": -1}", "timeout_s"),
                (c"{\"entry\": \"x.Handler\", \"code_dir\": \"/nowhere\", \"isolation\": \"jail\"}", "isolation"),
                (c"{\"entry\": \"x\", \"code_dir\": \"/nowhere\"}", "NAME.HANDLER"),
            ];
            for (json, expect) in cases {
                assert!(fnhost_function_load(rt, json.as_ptr(), &mut error).is_null());
                let message = take_error(error);
                assert!(message.contains(expect), "{message}");
            }
            assert_eq!(
                fnhost_deploy(
                    rt,
                    c"{\"entry\": \"x.Handler\", \"code_dir\": \"/\"}".as_ptr(),
                    &mut error
                ),
                -1
            );
            assert!(take_error(error).contains("\"name\""));
            let r = fnhost_invoke(rt, c"nobody".as_ptr(), std::ptr::null(), 0);
            assert_eq!(
                CStr::from_ptr(fnhost_result_error_type(r))
                    .to_str()
                    .unwrap(),
                "FunctionNotFound"
            );
            fnhost_result_free(r);
            fnhost_runtime_free(rt);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
