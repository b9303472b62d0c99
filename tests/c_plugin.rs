//! A plugin written in C against `plugin-api/include/fnhost.h`, compiled here
//! with `cc`, loads and runs. Its layout table is computed by the C compiler
//! (offsetof/sizeof), so the host's structural check passing proves that the
//! header and the Rust definitions describe the same ABI.

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
