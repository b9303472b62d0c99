//! End-to-end invocations through the `fnhost` library: context, results,
//! errors, panics, timeouts, initializers, memory, logs, limits, concurrency.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fnhost::{error_type, BodyKind, Credentials, Function, FunctionConfig, InvokeError, Outcome};
use fnhost_e2e::{assert_log_prefix, plugin_dir, runtime};
use serde_json::Value;

fn load(entry: &str) -> Function {
    runtime()
        .load(FunctionConfig::new(entry, plugin_dir()))
        .unwrap_or_else(|e| panic!("load {entry}: {e}"))
}

fn body(outcome: &Outcome) -> &[u8] {
    match outcome {
        Outcome::Success(b) => &b.bytes,
        Outcome::Failure(e) => panic!("expected success, got {e:?}"),
    }
}

fn failure(outcome: &Outcome) -> (&str, &str) {
    match outcome {
        Outcome::Failure(e) => (&e.error_type, &e.message),
        Outcome::Success(b) => panic!(
            "expected failure, got {:?}",
            String::from_utf8_lossy(&b.bytes)
        ),
    }
}

#[test]
#[allow(deprecated)]
fn every_context_method_reports_the_configured_value() {
    let config = FunctionConfig::new("testplugin.Handler", plugin_dir())
        .name("orders")
        .version("v3")
        .alias("prod")
        .package("shop")
        .project_id("proj-42")
        .memory_mb(512)
        .timeout(Duration::from_secs(7))
        .user_data("NAME", "fnhost")
        .user_data("REGION", "local")
        .credentials(Credentials {
            access_key: "ak".into(),
            secret_key: "sk".into(),
            security_access_key: "sak".into(),
            security_secret_key: "ssk".into(),
            security_token: "stoken".into(),
            token: "iam-token".into(),
        });
    let f = runtime().load(config).unwrap();
    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = f.invoke(br#"{"key": "REGION"}"#).unwrap();
    let v: Value = serde_json::from_slice(body(&r.outcome)).unwrap();
    assert_eq!(v["request_id"], r.request_id.as_str());
    assert!(uuid_like(&r.request_id), "{}", r.request_id);
    assert_eq!(v["function_name"], "orders");
    assert_eq!(v["version"], "v3");
    assert_eq!(v["alias"], "prod");
    assert_eq!(v["package"], "shop");
    assert_eq!(v["project_id"], "proj-42");
    assert_eq!(v["memory_size_mb"], 512);
    assert_eq!(v["cpu_millicores"], 512 / 128 * 100 + 200);
    assert_eq!(v["running_time_seconds"], 7);
    let remaining = v["remaining_time_ms"].as_u64().unwrap();
    assert!(
        remaining <= 7000 && remaining > 6000,
        "remaining {remaining}"
    );
    let deadline = v["deadline_unix_ms"].as_i64().unwrap();
    assert!(
        (deadline - (before_ms + 7000)).abs() < 1000,
        "deadline {deadline}"
    );
    assert_eq!(v["user_data"], "local");
    assert_eq!(v["access_key"], "ak");
    assert_eq!(v["secret_key"], "sk");
    assert_eq!(v["security_access_key"], "sak");
    assert_eq!(v["security_secret_key"], "ssk");
    assert_eq!(v["security_token"], "stoken");
    assert_eq!(v["token"], "iam-token");
    // A missing user-data key is null, not an empty string.
    let r = f.invoke(br#"{"key": "MISSING"}"#).unwrap();
    let v: Value = serde_json::from_slice(body(&r.outcome)).unwrap();
    assert_eq!(v["user_data"], Value::Null);
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|&c| c == '-').count() == 4
}

#[test]
fn results_are_labelled_by_encoding() {
    let echo = load("echo.Handler");
    let r = echo.invoke(b"\x00\xffraw").unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Success(fnhost::Body {
            kind: BodyKind::Bytes,
            bytes: b"\x00\xffraw".to_vec()
        })
    );
    assert_eq!(
        BodyKind::Bytes.content_type(),
        Some("application/octet-stream")
    );

    let json = load("testplugin.Handler").invoke(b"{}").unwrap();
    let Outcome::Success(b) = &json.outcome else {
        panic!()
    };
    assert_eq!(b.kind, BodyKind::Json);
    assert_eq!(b.kind.content_type(), Some("application/json"));

    let text = load("misbehaving.Sleep").invoke(b"1").unwrap();
    assert_eq!(
        text.outcome,
        Outcome::Success(fnhost::Body {
            kind: BodyKind::Text,
            bytes: b"slept".to_vec()
        })
    );

    let empty = load("misbehaving.Chatty").invoke(b"").unwrap();
    assert_eq!(
        empty.outcome,
        Outcome::Success(fnhost::Body {
            kind: BodyKind::Empty,
            bytes: vec![]
        })
    );
    assert_eq!(BodyKind::Empty.content_type(), None);
}

#[test]
fn handler_errors_keep_their_type_and_message() {
    let r = load("misbehaving.Error").invoke(b"{}").unwrap();
    assert_eq!(
        failure(&r.outcome),
        (
            error_type::FUNCTION_RETURN_ERROR,
            "the handler returned an error"
        )
    );
    let r = load("misbehaving.CustomError").invoke(b"{}").unwrap();
    assert_eq!(failure(&r.outcome), ("OrderNotFound", "no such order"));
    assert_eq!(
        r.outcome.error().unwrap().to_json(),
        r#"{"errorMessage":"no such order","errorType":"OrderNotFound"}"#
    );
    let r = load("testplugin.Handler").invoke(b"{not json").unwrap();
    assert_eq!(failure(&r.outcome).0, "InvalidPayload");
    // A handler returning its own error type (fnhost_api::ErrorType).
    let own = load("misbehaving.OwnError");
    let r = own.invoke(b"42").unwrap();
    assert_eq!(failure(&r.outcome), ("OrderNotFound", "no order 42"));
    let r = own.invoke(b"x").unwrap();
    assert_eq!(
        failure(&r.outcome),
        (
            "InvalidOrderId",
            "bad order id: invalid digit found in string"
        )
    );
}

#[test]
fn a_panic_becomes_an_error_of_type_panic_with_the_message_in_the_log() {
    let f = load("misbehaving.Panic");
    for _ in 0..3 {
        let r = f.invoke(b"{}").unwrap();
        assert_eq!(
            failure(&r.outcome),
            ("panic", "misbehaving handler panicked on purpose")
        );
        assert!(r.log.contains("panicked at"), "{}", r.log);
        assert!(r.log.contains("misbehaving handler panicked on purpose"));
        assert_log_prefix(r.log.lines().next().unwrap(), &r.request_id);
    }
    // The host is fine.
    assert_eq!(
        body(&load("echo.Handler").invoke(b"ok").unwrap().outcome),
        b"ok"
    );
}

#[test]
fn an_overrunning_handler_is_answered_with_timeout_at_the_deadline() {
    let rt = runtime();
    let spin = rt
        .load(
            FunctionConfig::new("misbehaving.Spin", plugin_dir())
                .timeout(Duration::from_millis(300)),
        )
        .unwrap();
    let start = Instant::now();
    let r = spin.invoke(b"{}").unwrap();
    let waited = start.elapsed();
    let (ty, msg) = failure(&r.outcome);
    assert_eq!(ty, error_type::TIMEOUT);
    assert!(msg.contains("0.300 seconds"), "{msg}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(
        waited < Duration::from_millis(1500),
        "answered late: {waited:?}"
    );
    assert_eq!(r.summary.duration_ms, 300.0);
    let stats = rt.stats();
    assert!(stats.runaway_invocations >= 1, "{stats:?}");
    assert!(stats.timeouts >= 1);

    // A sleeping handler that outlives its deadline finishes later and is no
    // longer counted as a runaway.
    let sleepy = rt
        .load(
            FunctionConfig::new("misbehaving.Sleep", plugin_dir())
                .timeout(Duration::from_millis(100)),
        )
        .unwrap();
    let before = rt.stats().runaway_invocations;
    let r = sleepy.invoke(b"400").unwrap();
    assert_eq!(failure(&r.outcome).0, error_type::TIMEOUT);
    assert_eq!(rt.stats().runaway_invocations, before + 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while rt.stats().runaway_invocations > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(rt.stats().runaway_invocations, before);

    // Everything else keeps working.
    let echo = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()))
        .unwrap();
    assert_eq!(
        body(&echo.invoke(b"still here").unwrap().outcome),
        b"still here"
    );
}

#[test]
fn a_call_that_starts_an_instance_reports_its_cold_start_in_and_out_of_process() {
    let rt = runtime();
    for isolation in [fnhost::Isolation::InProcess, fnhost::Isolation::Process] {
        let f = rt
            .load(
                FunctionConfig::new("misbehaving.Sleep", plugin_dir())
                    .isolation(isolation)
                    .instances(fnhost::InstanceConfig {
                        concurrency_per_instance: 1,
                        max_instances: 3,
                        ..fnhost::InstanceConfig::default()
                    }),
            )
            .unwrap();
        let f = Arc::new(f);
        // Three at once: at least two of them start an instance.
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || f.invoke(b"300").unwrap())
            })
            .collect();
        let results: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
        let cold = results.iter().filter(|r| r.cold_start.is_some()).count();
        assert!(cold >= 2, "{isolation:?}: {cold} cold starts");
        assert!(results.iter().all(|r| r.outcome.is_success()));
        // An idle instance serves the next call: warm.
        let warm = f.invoke(b"1").unwrap();
        assert_eq!(warm.cold_start, None, "{isolation:?}");
    }
}

#[test]
fn the_initializer_runs_once_per_generation_before_the_first_invocation() {
    let rt = runtime();
    let f = rt
        .load(
            FunctionConfig::new("testplugin.Handler", plugin_dir()).initializer("testplugin.Init"),
        )
        .unwrap();
    let report = f.initializer_report().expect("ran at load");
    assert!(report.error.is_none());
    assert!(
        report.log.contains("testplugin initialized"),
        "{}",
        report.log
    );
    let runs_before: u64 = {
        let r = f.invoke(b"{}").unwrap();
        serde_json::from_slice::<Value>(body(&r.outcome)).unwrap()["init_calls"]
            .as_u64()
            .unwrap()
    };
    for _ in 0..5 {
        let r = f.invoke(b"{}").unwrap();
        let v: Value = serde_json::from_slice(body(&r.outcome)).unwrap();
        assert_eq!(
            v["init_calls"].as_u64().unwrap(),
            runs_before,
            "initializer ran again"
        );
    }
    assert!(runs_before >= 1);
}

#[test]
fn a_failing_initializer_fails_invocations_with_handled_initialization_error() {
    let f = runtime()
        .load(
            FunctionConfig::new("misbehaving.Error", plugin_dir())
                .initializer("misbehaving.InitFail"),
        )
        .unwrap();
    for _ in 0..4 {
        let r = f.invoke(b"{}").unwrap();
        let (ty, msg) = failure(&r.outcome);
        assert_eq!(ty, error_type::INITIALIZATION);
        assert!(msg.contains("database unreachable"), "{msg}");
    }
}

#[test]
fn a_panicking_initializer_reports_its_message() {
    let f = runtime()
        .load(
            FunctionConfig::new("misbehaving.Error", plugin_dir())
                .initializer("misbehaving.InitPanic"),
        )
        .unwrap();
    let r = f.invoke(b"{}").unwrap();
    let (ty, msg) = failure(&r.outcome);
    assert_eq!(ty, error_type::INITIALIZATION);
    assert!(msg.contains("initializer panicked on purpose"), "{msg}");
    assert!(msg.contains("panic"), "{msg}");
    assert!(
        r.log.contains("initializer panicked on purpose"),
        "{}",
        r.log
    );
}

#[test]
fn an_initializer_runs_under_its_own_timeout() {
    let start = Instant::now();
    let f = runtime()
        .load(
            FunctionConfig::new("misbehaving.Error", plugin_dir())
                .initializer("misbehaving.InitSlow")
                .initializer_timeout(Duration::from_millis(200))
                .timeout(Duration::from_secs(10)),
        )
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let r = f.invoke(b"{}").unwrap();
    let (ty, msg) = failure(&r.outcome);
    assert_eq!(ty, error_type::INITIALIZATION);
    assert!(msg.contains("timed out after 0.200 seconds"), "{msg}");
    // Not retried after a timeout: the second invocation answers at once.
    let start = Instant::now();
    let r = f.invoke(b"{}").unwrap();
    assert_eq!(failure(&r.outcome).0, error_type::INITIALIZATION);
    assert!(start.elapsed() < Duration::from_millis(150));
}

#[test]
fn memory_used_reflects_the_handlers_peak_allocation() {
    let r = load("misbehaving.Alloc64").invoke(b"{}").unwrap();
    assert!(r.outcome.is_success());
    assert!(r.summary.memory_used_mb >= 64.0, "{:?}", r.summary);
    assert!(r.summary.memory_used_mb < 80.0, "{:?}", r.summary);
    let r = load("echo.Handler").invoke(&[7u8; 1024]).unwrap();
    assert!(r.summary.memory_used_mb < 0.01, "{:?}", r.summary);
    assert_eq!(r.summary.memory_size_mb, 128);
}

#[test]
fn log_lines_are_prefixed_and_the_caller_gets_the_last_4kb() {
    let r = load("testplugin.Handler").invoke(b"{}").unwrap();
    let lines: Vec<&str> = r.log.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.log);
    for line in &lines {
        assert_log_prefix(line, &r.request_id);
    }
    assert!(lines[0].ends_with("testplugin handling 2 bytes"));
    assert!(lines[1].ends_with("via the log crate: key NAME"));

    let r = load("misbehaving.Chatty").invoke(b"").unwrap();
    assert!(r.log.contains("line 00000\n"));
    assert!(r.log.ends_with("line 09999\n"));
    let tail = r.log_tail();
    assert!(tail.len() <= 4096 && tail.len() > 4000, "{}", tail.len());
    assert!(tail.ends_with("line 09999\n"));
    assert!(!tail.contains("line 00000"));
}

#[test]
fn oversized_payloads_and_results_are_refused() {
    let echo = load("echo.Handler");
    let big = vec![0u8; 6 * 1024 * 1024 + 1];
    assert_eq!(
        echo.invoke(&big).unwrap_err(),
        InvokeError::PayloadTooLarge {
            size: big.len(),
            limit: 6 * 1024 * 1024
        }
    );
    assert!(echo
        .invoke(&big[..6 * 1024 * 1024])
        .unwrap()
        .outcome
        .is_success());
    let r = load("misbehaving.Big").invoke(b"").unwrap();
    let (ty, msg) = failure(&r.outcome);
    assert_eq!(ty, error_type::RESPONSE_TOO_LARGE);
    assert!(msg.contains("10485760"), "{msg}");
}

#[test]
fn eight_threads_times_ten_thousand_echo_invocations_all_succeed() {
    let rt = runtime();
    let echo = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()))
        .unwrap();
    let echo = Arc::new(echo);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let echo = Arc::clone(&echo);
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    let payload = format!("{t}:{i}");
                    let r = if i % 2 == 0 {
                        echo.invoke(payload.as_bytes())
                    } else {
                        echo.invoke_on_current_thread(payload.as_bytes())
                    }
                    .unwrap();
                    assert_eq!(body(&r.outcome), payload.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread failed");
    }
    assert!(rt.stats().invocations >= 80_000);
    assert_eq!(rt.stats().runaway_invocations, 0);
}

#[test]
fn libraries_are_opened_from_content_addressed_copies() {
    let rt = runtime();
    let f = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()))
        .unwrap();
    let lib = f.library();
    assert_eq!(lib.source(), plugin_dir().join("libecho.so"));
    assert_ne!(lib.mapped_path(), lib.source());
    assert_eq!(
        lib.mapped_path().file_name().unwrap().to_string_lossy(),
        format!("{}.so", lib.digest())
    );
    assert_eq!(
        std::fs::read(lib.mapped_path()).unwrap(),
        std::fs::read(lib.source()).unwrap()
    );
    // Loading identical bytes again shares the mapped library.
    let again = rt
        .load(FunctionConfig::new("echo.Logged", plugin_dir()))
        .unwrap();
    assert!(Arc::ptr_eq(f.library(), again.library()));
    assert_eq!(rt.stats().libraries_mapped, 1);
}

#[test]
fn the_context_and_log_crate_work_from_the_logged_benchmark_handler() {
    let f = runtime()
        .load(FunctionConfig::new("echo.Logged", plugin_dir()).user_data("NAME", "bench"))
        .unwrap();
    let r = f.invoke(b"abc").unwrap();
    assert_eq!(body(&r.outcome), b"abc");
    let line = r.log.lines().next().unwrap();
    assert_log_prefix(line, &r.request_id);
    assert!(
        line.ends_with("bytes") && line.contains(" bench "),
        "{line}"
    );
}

#[test]
fn sequential_invocations_reuse_one_instance_and_its_initialization() {
    // The worker frees the instance slot before the caller hears back, so a
    // caller that invokes again at once finds the instance free instead of
    // creating (and initializing) another.
    let f = runtime()
        .load(
            FunctionConfig::new("testplugin.Handler", plugin_dir()).initializer("testplugin.Init"),
        )
        .unwrap();
    for _ in 0..2000 {
        assert!(f.invoke(b"{}").unwrap().outcome.is_success());
    }
    let stats = f.instance_stats();
    assert_eq!(stats.created, 1, "{stats:?}");
    assert_eq!(stats.active, 0);
}
