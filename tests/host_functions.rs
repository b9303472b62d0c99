//! Host functions (ABI 1.5): an embedder registers functions by name, and a
//! plugin calls them through its context; errors travel typed both ways,
//! and a plugin that misuses them (unknown names, oversized input, a flood
//! of calls, nesting without end, a callback that blocks) gets a typed
//! error while the host keeps serving. Fixtures: `echo.CallHost` (Rust,
//! fnhost-api's `Context::call_host`) and `tests/fixtures/host_calls.c`.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fnhost::{
    FunctionConfig, HostCallContext, HostError, Isolation, Outcome, Runtime, RuntimeConfig,
};
use fnhost_api::abi::host_call_error;
use fnhost_e2e::{cache_dir, compile_fixture, fnhost_bin, plugin_dir, scratch};

fn config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        ..RuntimeConfig::default()
    }
}

fn echo(_: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError> {
    Ok(input.to_vec())
}

fn text(outcome: &Outcome) -> String {
    String::from_utf8_lossy(&outcome.body_bytes()).into_owned()
}

fn fixture() -> std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("host-calls");
        compile_fixture("host_calls", &dir);
        dir
    })
    .clone()
}

#[test]
fn a_rust_plugin_calls_a_host_function_that_knows_who_calls() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in = Arc::clone(&seen);
    let rt = Runtime::builder()
        .config(config())
        .host_function(
            "cache.get",
            move |ctx: &HostCallContext<'_>, key: &[u8]| -> Result<Vec<u8>, HostError> {
                seen_in.lock().unwrap().push((
                    ctx.function().to_owned(),
                    ctx.version().to_owned(),
                    ctx.request_id().to_owned(),
                    ctx.depth(),
                ));
                if ctx.function() != "orders" {
                    return Err(
                        HostError::new("only orders may read the cache").with_type("Forbidden")
                    );
                }
                Ok([b"cached:".as_slice(), key].concat())
            },
        )
        .build()
        .unwrap();
    assert_eq!(rt.host_function_names(), ["cache.get"]);
    let load = |name: &str| {
        rt.load(
            FunctionConfig::new("echo.CallHost", plugin_dir())
                .name(name)
                .user_data("HOST_FUNCTION", "cache.get"),
        )
        .unwrap()
    };
    let orders = load("orders");
    let r = orders.invoke(b"k1").unwrap();
    assert_eq!(r.outcome.body_bytes(), b"cached:k1", "{:?}", r.outcome);
    let (function, version, request_id, depth) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        (function.as_str(), version.as_str(), depth),
        ("orders", "latest", 0)
    );
    assert_eq!(
        request_id, r.request_id,
        "the host function sees the calling request"
    );

    // The host function's own error type reaches the handler, which
    // returns it: the caller sees the same type.
    let r = load("billing").invoke(b"k1").unwrap();
    let e = r.outcome.error().expect("refused");
    assert_eq!(e.error_type, "Forbidden");
    assert!(e.message.contains("only orders"), "{}", e.message);

    // On the calling thread too.
    let r = orders.invoke_on_current_thread(b"k2").unwrap();
    assert_eq!(r.outcome.body_bytes(), b"cached:k2");
}

#[test]
fn host_functions_can_come_and_go_after_plugins_load() {
    let rt = Runtime::new(config()).unwrap();
    let f = rt
        .load(FunctionConfig::new("echo.CallHost", plugin_dir()).user_data("HOST_FUNCTION", "late"))
        .unwrap();
    let e = f.invoke(b"x").unwrap().outcome.error().cloned().unwrap();
    assert_eq!(e.error_type, host_call_error::NOT_FOUND);
    assert!(e.message.contains("\"late\""), "{}", e.message);

    rt.register_host_function("late", echo).unwrap();
    assert_eq!(f.invoke(b"now").unwrap().outcome.body_bytes(), b"now");
    // A name is registered once; bad names are refused.
    assert!(rt.register_host_function("late", echo).is_err());
    assert!(rt.register_host_function("", echo).is_err());
    assert!(rt.register_host_function("has space", echo).is_err());
    assert!(rt.register_host_function(&"n".repeat(129), echo).is_err());
    assert!(Runtime::builder()
        .config(config())
        .host_function("twice", echo)
        .host_function("twice", echo)
        .build()
        .is_err());

    assert!(rt.unregister_host_function("late"));
    assert!(!rt.unregister_host_function("late"));
    let e = f.invoke(b"x").unwrap().outcome.error().cloned().unwrap();
    assert_eq!(e.error_type, host_call_error::NOT_FOUND);
}

#[test]
fn a_panicking_host_function_is_a_typed_error_and_the_host_keeps_serving() {
    let rt = Runtime::builder()
        .config(config())
        .host_function(
            "boom",
            |_: &HostCallContext<'_>, _: &[u8]| -> Result<Vec<u8>, HostError> {
                panic!("the cache is on fire")
            },
        )
        .host_function("echo", echo)
        .build()
        .unwrap();
    let f = rt
        .load(FunctionConfig::new("host_calls.Call", fixture()))
        .unwrap();
    let out = text(&f.invoke(b"boom\nx").unwrap().outcome);
    assert!(out.starts_with("error HostFunctionPanicked "), "{out}");
    assert!(
        !out.contains("on fire"),
        "the panic's text stays in the host's log: {out}"
    );
    assert_eq!(
        text(&f.invoke(b"echo\nstill here").unwrap().outcome),
        "ok still here"
    );
}

#[test]
fn a_c_plugin_gets_typed_errors_for_unknown_names_and_oversized_input() {
    let read = Arc::new(AtomicUsize::new(0));
    let read_in = Arc::clone(&read);
    let rt = Runtime::builder()
        .config(config())
        .host_function("echo", move |_: &HostCallContext<'_>, input: &[u8]| {
            read_in.fetch_add(input.len(), Ordering::Relaxed);
            Ok::<_, HostError>(input.to_vec())
        })
        .build()
        .unwrap();
    let dir = fixture();
    let call = rt
        .load(FunctionConfig::new("host_calls.Call", &dir))
        .unwrap();
    assert_eq!(
        text(&call.invoke(b"echo\nhello").unwrap().outcome),
        "ok hello"
    );
    let out = text(&call.invoke(b"no.such\nx").unwrap().outcome);
    assert!(out.starts_with("error HostFunctionNotFound "), "{out}");
    let long_name = format!("{}\nx", "n".repeat(4096));
    let out = text(&call.invoke(long_name.as_bytes()).unwrap().outcome);
    assert!(out.starts_with("error HostCallInputTooLarge "), "{out}");

    // 100 MB claimed over a 16-byte buffer: refused by its length, never
    // read (the host function never ran; reading would run off the buffer).
    let before = read.load(Ordering::Relaxed);
    let huge = rt
        .load(FunctionConfig::new("host_calls.Huge", &dir))
        .unwrap();
    let out = text(&huge.invoke(b"").unwrap().outcome);
    assert!(out.starts_with("error HostCallInputTooLarge "), "{out}");
    assert_eq!(read.load(Ordering::Relaxed), before);

    let old = rt
        .load(FunctionConfig::new("host_calls.Old", &dir))
        .unwrap();
    assert_eq!(text(&old.invoke(b"").unwrap().outcome), "available");
}

#[test]
fn ten_thousand_calls_in_one_invocation_work_and_the_count_is_bounded() {
    let calls = Arc::new(AtomicUsize::new(0));
    let calls_in = Arc::clone(&calls);
    let rt = Runtime::builder()
        .config(config())
        .host_function("echo", move |_: &HostCallContext<'_>, input: &[u8]| {
            calls_in.fetch_add(1, Ordering::Relaxed);
            Ok::<_, HostError>(input.to_vec())
        })
        .build()
        .unwrap();
    let many = rt
        .load(FunctionConfig::new("host_calls.Many", fixture()).timeout(Duration::from_secs(60)))
        .unwrap();
    assert_eq!(
        text(&many.invoke(b"10000 echo").unwrap().outcome),
        "10000 0 -"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 10_000);
    let limit = fnhost_api::abi::MAX_HOST_CALLS;
    let out = text(
        &many
            .invoke(format!("{} echo", limit + 5).as_bytes())
            .unwrap()
            .outcome,
    );
    assert_eq!(out, format!("{limit} 5 HostCallLimitExceeded"));
    // The next invocation counts from zero.
    assert_eq!(text(&many.invoke(b"3 echo").unwrap().outcome), "3 0 -");
}

#[test]
fn host_functions_that_invoke_plugins_that_call_them_nest_to_a_bound() {
    static CALL: OnceLock<fnhost::Function> = OnceLock::new();
    let depths = Arc::new(Mutex::new(Vec::new()));
    let depths_in = Arc::clone(&depths);
    let rt = Runtime::builder()
        .config(config())
        .host_function("recurse", move |ctx: &HostCallContext<'_>, _: &[u8]| {
            depths_in.lock().unwrap().push(ctx.depth());
            // Invokes the calling function again, from inside its host call.
            let inner = CALL.get().unwrap().invoke(b"recurse\n")?;
            Ok::<_, HostError>(inner.outcome.body_bytes())
        })
        .build()
        .unwrap();
    let f = rt
        .load(FunctionConfig::new("host_calls.Call", fixture()).timeout(Duration::from_secs(30)))
        .unwrap();
    let _ = CALL.set(f.clone());
    let started = Instant::now();
    let out = text(&f.invoke(b"recurse\n").unwrap().outcome);
    assert!(started.elapsed() < Duration::from_secs(10), "no deadlock");
    let depth = fnhost::host_call::MAX_DEPTH as usize;
    assert_eq!(out.matches("ok ").count(), depth, "{out}");
    assert!(
        out.ends_with("error HostCallDepthExceeded host calls nested 8 deep (at most 8)"),
        "{out}"
    );
    assert_eq!(
        *depths.lock().unwrap(),
        (0..depth as u32).collect::<Vec<_>>()
    );
}

#[test]
fn a_host_function_that_blocks_past_the_deadline_is_answered_timeout() {
    let rt = Runtime::builder()
        .config(config())
        .host_function("slow", |ctx: &HostCallContext<'_>, _: &[u8]| {
            std::thread::sleep(ctx.remaining() + Duration::from_millis(500));
            Ok::<_, HostError>(b"late".to_vec())
        })
        .host_function("echo", echo)
        .build()
        .unwrap();
    let f = rt
        .load(FunctionConfig::new("host_calls.Call", fixture()).timeout(Duration::from_secs(1)))
        .unwrap();
    let started = Instant::now();
    let r = f.invoke(b"slow\n").unwrap();
    assert_eq!(r.outcome.error().unwrap().error_type, "timeout");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    // The function keeps serving while the runaway finishes.
    assert_eq!(text(&f.invoke(b"echo\nnext").unwrap().outcome), "ok next");
}

/// Across process isolation: a sandboxed worker's handler calls the host's
/// functions over its channel (the host checks every request again, as an
/// untrusted peer's); the answers, the limits and the typed errors are the
/// same as in process, and a host function that blocks past the deadline
/// ends the worker at it.
#[test]
fn a_process_isolated_plugin_calls_host_functions_through_its_channel() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen_in = Arc::clone(&seen);
    let rt = Runtime::builder()
        .config(config())
        .host_function("echo", move |ctx: &HostCallContext<'_>, input: &[u8]| {
            seen_in
                .lock()
                .unwrap()
                .push((ctx.function().to_owned(), ctx.request_id().to_owned()));
            Ok::<_, HostError>(input.to_vec())
        })
        .host_function(
            "boom",
            |_: &HostCallContext<'_>, _: &[u8]| -> Result<Vec<u8>, HostError> { panic!("on fire") },
        )
        .host_function("big", |_: &HostCallContext<'_>, _: &[u8]| {
            Ok::<_, HostError>(vec![b'x'; fnhost_api::abi::MAX_HOST_CALL_INPUT + 1])
        })
        .host_function("slow", |ctx: &HostCallContext<'_>, _: &[u8]| {
            std::thread::sleep(ctx.remaining() + Duration::from_millis(200));
            Ok::<_, HostError>(b"late".to_vec())
        })
        .build()
        .unwrap();
    let load = |entry: &str, timeout: Duration| {
        rt.load(
            FunctionConfig::new(entry, fixture())
                .name("isolated")
                .isolation(Isolation::Process)
                .timeout(timeout),
        )
        .unwrap()
    };
    let call = load("host_calls.Call", Duration::from_secs(5));
    let r = call.invoke(b"echo\nfrom the sandbox").unwrap();
    assert_eq!(text(&r.outcome), "ok from the sandbox");
    assert_eq!(
        seen.lock().unwrap().last().cloned().unwrap(),
        ("isolated".to_owned(), r.request_id.clone()),
        "the host function knows the calling function and request"
    );
    for (payload, expected) in [
        (&b"no.such\nx"[..], "error HostFunctionNotFound "),
        (b"boom\nx", "error HostFunctionPanicked "),
        (b"big\nx", "error HostCallLimitExceeded "),
    ] {
        let out = text(&call.invoke(payload).unwrap().outcome);
        assert!(out.starts_with(expected), "{out}");
    }
    let huge = load("host_calls.Huge", Duration::from_secs(5));
    let out = text(&huge.invoke(b"").unwrap().outcome);
    assert!(out.starts_with("error HostCallInputTooLarge "), "{out}");
    let many = load("host_calls.Many", Duration::from_secs(60));
    assert_eq!(
        text(&many.invoke(b"10000 echo").unwrap().outcome),
        "10000 0 -"
    );
    // The same worker serves on after all that.
    assert_eq!(
        text(&call.invoke(b"echo\nagain").unwrap().outcome),
        "ok again"
    );

    let slow = load("host_calls.Call", Duration::from_secs(1));
    let started = Instant::now();
    let r = slow.invoke(b"slow\n").unwrap();
    assert_eq!(r.outcome.error().unwrap().error_type, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        text(&slow.invoke(b"echo\nnext").unwrap().outcome),
        "ok next"
    );
}

/// An initializer calls host functions in process; in a worker process it
/// runs at the worker's start, before any call, and is told they are
/// unavailable there (it does not hang the start).
#[test]
fn initializers_reach_host_functions_in_process_and_are_told_no_in_a_worker() {
    let rt = Runtime::builder()
        .config(config())
        .host_function("echo", echo)
        .build()
        .unwrap();
    for (isolation, expected) in [
        (Isolation::InProcess, "init: ok warm"),
        (Isolation::Process, "init: error HostFunctionUnavailable"),
    ] {
        let started = Instant::now();
        let f = rt
            .load(
                FunctionConfig::new("host_calls.Call", fixture())
                    .initializer("host_calls.Init")
                    .isolation(isolation),
            )
            .unwrap();
        let r = f.invoke(b"echo\nafter").unwrap();
        assert_eq!(text(&r.outcome), "ok after", "{isolation:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{isolation:?}");
        let log = f.initializer_report().map(|r| r.log).unwrap_or_default();
        assert!(log.contains(expected), "{isolation:?}: {log:?}");
    }
}

#[test]
fn a_1_4_plugin_loads_and_runs_on_the_1_5_host() {
    let dir = scratch("abi-1-4");
    compile_fixture("abi_1_4", &dir);
    let rt = Runtime::new(config()).unwrap();
    let lib = rt.open_library(&dir.join("abi_1_4.so")).unwrap();
    assert_eq!(lib.info().abi, (1, 4));
    assert!(lib.info().layout_checked);
    let f = rt
        .load(FunctionConfig::new("abi_1_4.Handler", &dir))
        .unwrap();
    assert_eq!(f.invoke(b"1.4").unwrap().outcome.body_bytes(), b"1.4");
}

/// The attack on the isolated host call: a plugin that writes host-call
/// messages into its worker's channel itself (tests/fixtures/
/// forged_host_call.c). A malformed one ends that worker as a protocol
/// breach; a well-formed one over the limits is refused without running
/// any host function, and the call ends by its deadline. The host and its
/// other functions serve on.
#[test]
fn host_calls_forged_in_a_workers_channel_are_refused() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let secrets = Arc::new(AtomicUsize::new(0));
    let told = Arc::clone(&secrets);
    let rt = Runtime::builder()
        .config(config())
        .host_function("echo", move |_: &HostCallContext<'_>, input: &[u8]| {
            counted.fetch_add(1, Ordering::Relaxed);
            Ok::<_, HostError>(input.to_vec())
        })
        .host_function("secret", move |_: &HostCallContext<'_>, _: &[u8]| {
            told.fetch_add(1, Ordering::Relaxed);
            Ok::<_, HostError>(b"the secret".to_vec())
        })
        .build()
        .unwrap();
    let dir = scratch("forged-host-call");
    compile_fixture("forged_host_call", &dir);
    let load = |entry: &str| {
        rt.load(
            FunctionConfig::new(entry, &dir)
                .isolation(Isolation::Process)
                .timeout(Duration::from_secs(2)),
        )
        .unwrap()
    };
    let started = Instant::now();
    let r = load("forged_host_call.Garbage").invoke(b"").unwrap();
    let e = r.outcome.error().expect("refused");
    assert_eq!(e.error_type, "runtime exited unexpectedly", "{e:?}");
    assert!(e.message.contains("broke the protocol"), "{}", e.message);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "ended at once, not at the deadline"
    );

    let started = Instant::now();
    let r = load("forged_host_call.LongName").invoke(b"").unwrap();
    assert_eq!(r.outcome.error().unwrap().error_type, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0, "no host function ran");

    // The allowlist holds against a worker that skips its own check.
    let limited = rt
        .load(
            FunctionConfig::new("forged_host_call.Secret", &dir)
                .isolation(Isolation::Process)
                .timeout(Duration::from_secs(2))
                .allow_host_functions(["echo"]),
        )
        .unwrap();
    let r = limited.invoke(b"").unwrap();
    assert!(r.outcome.error().is_some());
    assert_eq!(
        secrets.load(Ordering::Relaxed),
        0,
        "the host refused it too"
    );

    let f = rt
        .load(FunctionConfig::new("host_calls.Call", fixture()).isolation(Isolation::Process))
        .unwrap();
    assert_eq!(
        text(&f.invoke(b"echo\nstill serving").unwrap().outcome),
        "ok still serving"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

/// A function's allowlist: it reaches only the host functions it names,
/// and one outside the list reads exactly as one that does not exist, in
/// process and from a worker process (where the host checks it again).
#[test]
fn a_function_reaches_only_the_host_functions_it_is_allowed() {
    let rt = Runtime::builder()
        .config(config())
        .host_function("echo", echo)
        .host_function("secret", |_: &HostCallContext<'_>, _: &[u8]| {
            Ok::<_, HostError>(b"the secret".to_vec())
        })
        .build()
        .unwrap();
    for isolation in [Isolation::InProcess, Isolation::Process] {
        let limited = rt
            .load(
                FunctionConfig::new("host_calls.Call", fixture())
                    .name("limited")
                    .isolation(isolation)
                    .allow_host_functions(["echo"]),
            )
            .unwrap();
        assert_eq!(text(&limited.invoke(b"echo\nx").unwrap().outcome), "ok x");
        let refused = text(&limited.invoke(b"secret\nx").unwrap().outcome);
        let missing = text(&limited.invoke(b"nothing\nx").unwrap().outcome);
        assert_eq!(
            refused.replace("secret", "NAME"),
            missing.replace("nothing", "NAME"),
            "{isolation:?}: not allowed reads as not there"
        );
        assert!(
            refused.starts_with("error HostFunctionNotFound "),
            "{refused}"
        );
        let open = rt
            .load(
                FunctionConfig::new("host_calls.Call", fixture())
                    .name("open")
                    .isolation(isolation),
            )
            .unwrap();
        assert_eq!(
            text(&open.invoke(b"secret\nx").unwrap().outcome),
            "ok the secret"
        );
    }
}
