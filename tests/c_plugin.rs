//! A plugin written in C against `plugin-api/include/fnhost.h`, compiled here
//! with `cc`, loads and runs. Its layout table is computed by the C compiler
//! (offsetof/sizeof), so the host's structural check passing proves that the
//! header and the Rust definitions describe the same ABI.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fnhost::{BodyKind, FunctionConfig, Outcome};
use fnhost_e2e::{assert_log_prefix, compile_c, runtime, scratch, workspace_root};
use serde_json::Value;

#[test]
fn the_c_sample_plugin_loads_passes_the_layout_check_and_runs() {
    let dir = scratch("c-plugin");
    compile_c(
        &workspace_root().join("sample-plugins/c/hello.c"),
        &dir,
        "hello",
    );
    let rt = runtime();
    let lib = rt.open_library(&dir.join("hello.so")).unwrap();
    assert!(
        lib.info().layout_checked,
        "the C plugin ships its layout table"
    );
    assert_eq!(
        lib.info().abi,
        (fnhost_api::abi::ABI_MAJOR, fnhost_api::abi::ABI_MINOR)
    );
    assert_eq!(lib.handler_names(), ["Handler", "Echo", "Fail"]);

    let f = rt
        .load(
            FunctionConfig::new("hello.Handler", &dir)
                .initializer("hello.Init")
                .memory_mb(256)
                .user_data("NAME", "from-rust"),
        )
        .unwrap();
    let r = f.invoke(b"{}").unwrap();
    let Outcome::Success(body) = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    assert_eq!(body.kind, BodyKind::Json);
    let v: Value = serde_json::from_slice(&body.bytes).unwrap();
    assert_eq!(v["language"], "C");
    assert_eq!(v["request_id"], r.request_id.as_str());
    assert_eq!(v["function_name"], "hello");
    assert_eq!(v["user_data"], "from-rust");
    assert_eq!(v["memory_size_mb"], 256);
    assert_eq!(v["cpu_millicores"], 400);
    assert_eq!(v["init_runs"], 1);
    let line = r.log.lines().next().unwrap();
    assert_log_prefix(line, &r.request_id);
    assert!(line.ends_with("hello from C, 2 payload bytes"));

    let echo = rt.load(FunctionConfig::new("hello.Echo", &dir)).unwrap();
    let r = echo.invoke(b"\x01\x02binary").unwrap();
    assert_eq!(r.outcome.body_bytes(), b"\x01\x02binary");

    let fail = rt.load(FunctionConfig::new("hello.Fail", &dir)).unwrap();
    let r = fail.invoke(b"").unwrap();
    let e = r.outcome.error().unwrap();
    assert_eq!(
        (e.error_type.as_str(), e.message.as_str()),
        ("CError", "failed in C")
    );
}

/// Compiles `source` with `compiler` and `flags` into `out`; returns the
/// compiler's output when it failed.
fn compile_with(
    compiler: &str,
    flags: &[&str],
    source: &std::path::Path,
    out: &std::path::Path,
) -> Result<(), String> {
    let o = std::process::Command::new(compiler)
        .args(flags)
        .args(["-shared", "-fPIC", "-I"])
        .arg(workspace_root().join("plugin-api/include"))
        .arg("-o")
        .arg(out)
        .arg(source)
        .output()
        .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

const STRICT_C: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];
const STRICT_CXX: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"];

const MINIMAL: &str = r#"#include "fnhost.h"
static int32_t h(const fnhost_context *ctx, fnhost_host_str p) { (void)ctx; (void)p; return FNHOST_STATUS_OK; }
static const fnhost_handler_entry handlers[] = {FNHOST_HANDLER("Handler", h)};
FNHOST_DEFINE_LAYOUT(layout);
FNHOST_EXPORT_DESCRIPTOR("minimal", handlers, NULL, 0, layout);
"#;

#[test]
fn the_header_compiles_as_strict_c11_and_cxx17_and_both_plugins_load() {
    let dir = scratch("header-strict");
    let rt = runtime();
    for (compiler, flags, ext) in [("cc", STRICT_C, "c"), ("c++", STRICT_CXX, "cpp")] {
        let source = dir.join(format!("minimal.{ext}"));
        std::fs::write(&source, MINIMAL).unwrap();
        let lib_dir = dir.join(ext);
        std::fs::create_dir_all(&lib_dir).unwrap();
        compile_with(compiler, flags, &source, &lib_dir.join("minimal.so"))
            .unwrap_or_else(|e| panic!("{compiler} {flags:?}: {e}"));
        // As C++ too the descriptor has external linkage and is found.
        let f = rt
            .load(FunctionConfig::new("minimal.Handler", &lib_dir))
            .unwrap_or_else(|e| panic!("{ext}: {e}"));
        assert!(f.invoke(b"{}").unwrap().outcome.error().is_none());
    }
}

#[test]
fn fnhost_str_accepts_only_string_literals() {
    let dir = scratch("header-literal");
    let source = dir.join("pointer.c");
    std::fs::write(
        &source,
        "#include \"fnhost.h\"\nstatic const char *name = \"Handler\";\nconst fnhost_plugin_str s = FNHOST_STR(name);\n",
    )
    .unwrap();
    assert!(
        compile_with("cc", &["-std=c11"], &source, &dir.join("pointer.so")).is_err(),
        "FNHOST_STR of a pointer must not compile (its sizeof is the pointer's)"
    );
}

#[test]
fn the_cpp_sample_throws_and_catches_its_own_exceptions() {
    let dir = scratch("cpp-plugin");
    let mut flags = STRICT_CXX.to_vec();
    flags.push("-O2");
    compile_with(
        "c++",
        &flags,
        &workspace_root().join("sample-plugins/cpp/greeter.cpp"),
        &dir.join("greeter.so"),
    )
    .unwrap();
    let rt = runtime();
    let greet = rt
        .load(FunctionConfig::new("greeter.Handler", &dir))
        .unwrap();
    let r = greet.invoke(br#""Ada""#).unwrap();
    assert_eq!(r.outcome.body_bytes(), br#""Hello, Ada""#);
    // A thrown std::invalid_argument becomes the handler's own error type.
    let r = greet.invoke(b"42").unwrap();
    let e = r.outcome.error().unwrap();
    assert_eq!(e.error_type, "InvalidInput");
    assert!(
        e.message.contains("expected a JSON string"),
        "{}",
        e.message
    );
    let rethrow = rt
        .load(FunctionConfig::new("greeter.Rethrow", &dir))
        .unwrap();
    let r = rethrow.invoke(b"{}").unwrap();
    assert_eq!(r.outcome.body_bytes(), b"2000");
}

#[test]
fn a_plugin_built_with_the_1_0_header_loads_and_runs_on_the_1_3_host() {
    let dir = scratch("abi-1-0");
    fnhost_e2e::compile_fixture("abi_1_0", &dir);
    let rt = runtime();
    let lib = rt.open_library(&dir.join("abi_1_0.so")).unwrap();
    assert_eq!(lib.info().abi, (1, 0));
    assert!(lib.info().layout_checked);
    let f = rt
        .load(FunctionConfig::new("abi_1_0.Handler", &dir))
        .unwrap();
    assert_eq!(f.invoke(b"old").unwrap().outcome.body_bytes(), b"old");
}

#[test]
fn a_1_2_plugin_without_handler_events_loads_and_runs_on_the_1_3_host() {
    let dir = scratch("abi-1-2");
    fnhost_e2e::compile_fixture("abi_1_2", &dir);
    let rt = runtime();
    let lib = rt.open_library(&dir.join("abi_1_2.so")).unwrap();
    assert_eq!(lib.info().abi, (1, 2));
    assert!(lib.info().layout_checked);
    // Its 24-byte handler entries have no event: undeclared.
    assert_eq!(
        lib.info().handler_events,
        [("Handler".to_owned(), String::new())]
    );
    let f = rt
        .load(FunctionConfig::new("abi_1_2.Handler", &dir))
        .unwrap();
    assert_eq!(f.invoke(b"1.2").unwrap().outcome.body_bytes(), b"1.2");
    // A plugin of today's header declares its handlers' events.
    let dir = scratch("abi-1-3");
    fnhost_e2e::compile_fixture("trace_id", &dir);
    let lib = rt.open_library(&dir.join("trace_id.so")).unwrap();
    assert_eq!(lib.info().abi, (1, 5));
    assert_eq!(lib.info().handler_events[0].1, "bytes");
}

#[test]
fn a_1_1_plugin_loads_and_runs_on_the_1_3_host() {
    let dir = scratch("abi-1-1");
    fnhost_e2e::compile_fixture("abi_1_1", &dir);
    let rt = runtime();
    let lib = rt.open_library(&dir.join("abi_1_1.so")).unwrap();
    assert_eq!(lib.info().abi, (1, 1));
    assert!(lib.info().layout_checked);
    let f = rt
        .load(FunctionConfig::new("abi_1_1.Handler", &dir))
        .unwrap();
    assert_eq!(f.invoke(b"older").unwrap().outcome.body_bytes(), b"older");
}

#[test]
fn the_callers_request_and_trace_ids_reach_the_handler_in_and_out_of_process() {
    let dir = scratch("trace-id");
    fnhost_e2e::compile_fixture("trace_id", &dir);
    let rt = runtime();
    let request_id = uuid::Uuid::new_v4();
    let trace_id = fnhost::TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    for isolation in [fnhost::Isolation::InProcess, fnhost::Isolation::Process] {
        let f = rt
            .load(FunctionConfig::new("trace_id.Handler", &dir).isolation(isolation))
            .unwrap();
        let ids = fnhost::CallIds {
            request_id: Some(request_id),
            trace_id: Some(trace_id),
        };
        let r = f.invoke_with(b"{}", ids).unwrap();
        assert_eq!(r.request_id, request_id.to_string(), "{isolation:?}");
        assert_eq!(
            String::from_utf8_lossy(&r.outcome.body_bytes()),
            format!("{request_id} 4bf92f3577b34da6a3ce929d0e0e4736"),
            "{isolation:?}"
        );
        // Without ids: a fresh request id, an empty trace id.
        let r = f.invoke(b"{}").unwrap();
        let body = String::from_utf8_lossy(&r.outcome.body_bytes()).into_owned();
        assert_eq!(body, format!("{} ", r.request_id), "{isolation:?}");
        assert_ne!(r.request_id, request_id.to_string());
    }
}

#[test]
fn error_messages_and_log_lines_are_capped_at_the_boundary() {
    let dir = scratch("big-error");
    fnhost_e2e::compile_fixture("big_error", &dir);
    let rt = runtime();
    for isolation in [fnhost::Isolation::InProcess, fnhost::Isolation::Process] {
        let f = rt
            .load(
                FunctionConfig::new("big_error.Handler", &dir)
                    .isolation(isolation)
                    .memory_mb(256),
            )
            .unwrap();
        let r = f.invoke(b"{}").unwrap();
        let e = r.outcome.error().expect("the handler fails");
        let max_message = fnhost_api::abi::MAX_ERROR_MESSAGE;
        assert!(
            e.message.len() < max_message + 64,
            "{isolation:?}: a {} byte message",
            e.message.len()
        );
        assert!(e.message.ends_with(&format!(
            "...[truncated {} bytes]",
            64 * 1024 * 1024 - max_message
        )));
        assert!(e.error_type.len() < fnhost_api::abi::MAX_ERROR_TYPE + 64);
        assert!(e.error_type.contains("...[truncated"), "{isolation:?}");
        let line = r
            .log
            .lines()
            .find(|l| l.contains("eeee"))
            .expect("the long line");
        assert!(
            line.len() < fnhost_api::abi::MAX_LOG_LINE + 128,
            "{} bytes",
            line.len()
        );
        assert!(line.contains("...[truncated"));
    }
}
