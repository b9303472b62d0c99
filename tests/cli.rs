//! The `fnhost` command line, run as a user would: three-part output, `--json`,
//! payload sources, exit statuses, and clean errors (no panics, no backtraces).
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use fnhost_e2e::{cache_dir, compile_fixture, fnhost_bin, plugin_dir, scratch};
use serde_json::Value;

fn fnhost(args: &[&str]) -> Output {
    fnhost_stdin(args, None)
}

fn fnhost_stdin(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(fnhost_bin())
        .args(args)
        .arg("--cache-dir")
        .arg(cache_dir())
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn fnhost");
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {} stderr: {}",
        stdout(o),
        stderr(o)
    );
    let err = stderr(o);
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "{err}"
    );
}

#[test]
fn invoke_prints_the_function_return_the_summary_and_the_log() {
    let dir = plugin_dir();
    let o = fnhost(&[
        "invoke",
        "testplugin.Handler",
        "--code-dir",
        dir.to_str().unwrap(),
        "--init",
        "testplugin.Init",
        "--data",
        r#"{"key":"NAME"}"#,
        "--user-data",
        "NAME=cli",
        "--memory",
        "256",
        "--timeout",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let return_part = out.split("\n\nExecution Summary:").next().unwrap();
    let json: Value =
        serde_json::from_str(return_part.strip_prefix("Function Return:\n").unwrap()).unwrap();
    assert_eq!(json["user_data"], "cli");
    assert_eq!(json["memory_size_mb"], 256);
    assert_eq!(json["running_time_seconds"], 5);
    for label in [
        "Request ID:",
        "Memory Configured:  256 MB",
        "Execution Duration:",
        "Memory Used:",
        "Billed Duration:",
        "\nLog Output:\n",
    ] {
        assert!(out.contains(label), "{label} missing in {out}");
    }
    assert!(
        out.contains("testplugin initialized"),
        "the initializer's log is shown: {out}"
    );
    assert!(out.contains("testplugin handling 14 bytes"), "{out}");
}

#[test]
fn invoke_json_reports_success_and_failure_with_exit_statuses() {
    let dir = plugin_dir();
    let dir = dir.to_str().unwrap();
    let o = fnhost(&[
        "invoke",
        "echo.Handler",
        "--code-dir",
        dir,
        "--data",
        "[1,2]",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["result"], "[1,2]");
    assert!(v["request_id"].as_str().unwrap().len() == 36);
    for key in ["duration", "billingDuration", "memorySize", "memoryUsed"] {
        assert!(v["summary"][key].is_number(), "{key}: {v}");
    }
    assert!(v.get("error").is_none());

    let o = fnhost(&[
        "invoke",
        "misbehaving.Panic",
        "--code-dir",
        dir,
        "--data",
        "{}",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["errorType"], "panic");
    assert_eq!(
        v["error"]["errorMessage"],
        "misbehaving handler panicked on purpose"
    );
    assert!(v.get("result").is_none());
    assert!(v["log"].as_str().unwrap().contains("panicked at"));
    // The panic message went to the invocation's log, not to stderr.
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    let o = fnhost(&[
        "invoke",
        "misbehaving.Spin",
        "--code-dir",
        dir,
        "--data",
        "{}",
        "--json",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["errorType"], "timeout");
}

#[test]
fn the_payload_comes_from_data_event_file_or_stdin() {
    let dir = plugin_dir();
    let dir = dir.to_str().unwrap();
    let scratch = scratch("cli-event");
    let event = scratch.join("event.bin");
    std::fs::write(&event, b"from a file").unwrap();
    let o = fnhost(&[
        "invoke",
        "echo.Handler",
        "--code-dir",
        dir,
        "--event",
        event.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["result"],
        "from a file"
    );
    let o = fnhost_stdin(
        &["invoke", "echo.Handler", "--code-dir", dir, "--json"],
        Some(b"from stdin"),
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap()["result"],
        "from stdin"
    );
    let o = fnhost(&[
        "invoke",
        "echo.Handler",
        "--code-dir",
        dir,
        "--data",
        "{not json",
    ]);
    assert_clean_failure(&o);
    assert!(stderr(&o).contains("--data is not valid JSON"));
}

#[test]
fn usage_and_load_errors_exit_2_with_a_message() {
    let dir = plugin_dir();
    let dir = dir.to_str().unwrap();
    assert_clean_failure(&fnhost(&[
        "invoke",
        "echo.Nope",
        "--code-dir",
        dir,
        "--data",
        "1",
    ]));
    assert_clean_failure(&fnhost(&[
        "invoke",
        "echo.Handler",
        "--code-dir",
        dir,
        "--data",
        "1",
        "--memory",
        "100",
    ]));
    assert_clean_failure(&fnhost(&[
        "invoke",
        "echo.Handler",
        "--code-dir",
        dir,
        "--data",
        "1",
        "--timeout",
        "-1",
    ]));
    assert_clean_failure(&fnhost(&[
        "invoke",
        "ghost.Handler",
        "--code-dir",
        dir,
        "--data",
        "1",
    ]));
    let o = fnhost(&["invoke", "echo.Handler"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "missing --code-dir is a usage error"
    );
    let o = fnhost(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn inspect_shows_the_descriptor_and_refuses_non_plugins() {
    let lib = plugin_dir().join("libmisbehaving.so");
    let o = fnhost(&["inspect", lib.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["abi_version"], "1.5");
    assert_eq!(v["plugin_name"], "misbehaving");
    assert_eq!(v["layout_checked"], true);
    assert_eq!(v["handlers"][0], "Error");
    assert_eq!(v["handler_events"]["Error"], "bytes");
    assert_eq!(
        v["initializers"],
        serde_json::json!(["InitFail", "InitPanic", "InitSlow", "InitAbort"])
    );
    let o = fnhost(&["inspect", lib.to_str().unwrap()]);
    assert!(
        stdout(&o).contains("Handlers:     Error (takes bytes), CustomError (takes bytes), Panic"),
        "{}",
        stdout(&o)
    );

    let dir = scratch("cli-inspect");
    let not_plugin = compile_fixture("not_plugin", &dir);
    let o = fnhost(&["inspect", not_plugin.to_str().unwrap()]);
    assert_clean_failure(&o);
    assert!(stderr(&o).contains("is not an fnhost plugin"));
    let wrong = compile_fixture("wrong_major", &dir);
    let o = fnhost(&["inspect", wrong.to_str().unwrap()]);
    assert_clean_failure(&o);
    assert!(stderr(&o).contains("ABI 2.0"));
    std::fs::write(dir.join("text.so"), "text").unwrap();
    assert_clean_failure(&fnhost(&["inspect", dir.join("text.so").to_str().unwrap()]));
}

#[test]
fn inspect_runs_nothing_of_the_library_and_refuses_what_is_not_a_file() {
    let dir = scratch("cli-inspect-hostile");
    // Its constructor exits 7: inspect reports it, in its own words.
    let ctor = compile_fixture("ctor_exit", &dir);
    let o = fnhost(&["inspect", ctor.to_str().unwrap()]);
    assert_clean_failure(&o);
    assert!(
        stderr(&o).contains("the library's initialization code exited the process with status 7"),
        "{}",
        stderr(&o)
    );
    // A device would be read without end, a FIFO would block the open.
    let fifo = dir.join("fifo.so");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    for path in [std::path::Path::new("/dev/zero"), fifo.as_path()] {
        let started = std::time::Instant::now();
        let o = fnhost(&["inspect", path.to_str().unwrap()]);
        assert_clean_failure(&o);
        assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

#[test]
fn a_handlers_own_error_type_reaches_the_report_and_a_miss_says_what_it_found() {
    let dir = plugin_dir();
    let o = fnhost_stdin(
        &[
            "invoke",
            "misbehaving.OwnError",
            "--code-dir",
            dir.to_str().unwrap(),
            "--json",
        ],
        Some(b"42"),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"]["errorType"], "OrderNotFound", "{v}");
    assert_eq!(v["error"]["errorMessage"], "no order 42", "{v}");
    let missing = scratch("cli-miss").join("not-there");
    let o = fnhost(&[
        "invoke",
        "echo.Handler",
        "--code-dir",
        missing.to_str().unwrap(),
        "--data",
        "{}",
    ]);
    assert_clean_failure(&o);
    assert!(
        stderr(&o).contains("the directory does not exist"),
        "{}",
        stderr(&o)
    );
}

/// `fnhost invoke --timeout 18446744073709551616` (and `1e30`) once
/// panicked with a backtrace. Every flag that takes a number, fed the
/// values that break number parsers and the arithmetic after them, ends in
/// a usage error or a run: never a panic, never a hang.
#[test]
fn no_number_on_the_command_line_panics() {
    let dir = plugin_dir();
    let dir = dir.to_str().unwrap();
    let cache = cache_dir();
    let cache = cache.to_str().unwrap();
    let huge = "9".repeat(400);
    let values = [
        "18446744073709551616",
        "1e30",
        "-1",
        "-0",
        "0",
        "nan",
        "inf",
        "1e-300",
        "4294967296",
        "0x10",
        huge.as_str(),
    ];
    let invoke = |flag: &str, v: &str| -> Vec<String> {
        [
            "invoke",
            "echo.Handler",
            "--code-dir",
            dir,
            "--cache-dir",
            cache,
            "--data",
            "1",
            flag,
            v,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    // A server that stops at its data directory, after reading its flags.
    let serve = |flag: &str, v: &str| -> Vec<String> {
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "/dev/null/fnhost",
            flag,
            v,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let logs = |flag: &str, v: &str| -> Vec<String> {
        ["logs", "f", "--url", "http://127.0.0.1:9", flag, v]
            .map(str::to_owned)
            .to_vec()
    };
    let mut cases = Vec::new();
    for v in values {
        for flag in ["--timeout", "--init-timeout", "--memory"] {
            cases.push(invoke(flag, v));
        }
        cases.push(logs("--since", v));
        for flag in [
            "--shutdown-grace",
            "--max-worker-processes",
            "--function-log-bytes",
            "--async-workers",
            "--async-records-max-age",
            "--async-records-max",
            "--sandbox-uid",
            "--sandbox-host-uid",
            "--sandbox-max-tmp-mb",
        ] {
            cases.push(serve(flag, v));
        }
    }
    for args in &cases {
        let mut child = Command::new(fnhost_bin())
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fnhost");
        // Bounded: a command that took a number it should have refused
        // and then waited forever fails the test instead of hanging it.
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > std::time::Duration::from_secs(30) {
                let _ = child.kill();
                panic!("`fnhost {}` did not end in 30 s", args.join(" "));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(
            status.code() != Some(101) && !err.contains("panicked"),
            "`fnhost {}` panicked: {err}",
            args.join(" ")
        );
    }
}
