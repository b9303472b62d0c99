//! Go handlers written for FunctionGraph's Go runtime, built with the
//! `huaweicloud.com/go-runtime` module of `plugin-api/go-runtime` as
//! `-buildmode=c-shared` libraries (`scripts/go-plugins.sh`): the seed's
//! program with every event template, results and errors by the seed's
//! rules, isolation by default, several Go runtimes in one process (the
//! evidence behind that default), and a hot swap under load.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fnhost::{BodyKind, FunctionConfig, Isolation, Outcome, Runtime};
use fnhost_e2e::{assert_log_prefix, fnhost_bin, go_plugins, runtime, scratch};
use serde_json::Value;

const SEED_HANDLERS: [(&str, &str); 8] = [
    ("apig", "ApigTest"),
    ("cts", "CtsTest"),
    ("dds", "DdsTest"),
    ("dis", "DisTest"),
    ("kafka", "KafkaTest"),
    ("lts", "LtsTest"),
    ("smn", "SmnTest"),
    ("timer", "TimerTest"),
];

fn fnhost(args: &[&str]) -> std::process::Output {
    Command::new(fnhost_bin())
        .args(args)
        .output()
        .expect("run fnhost")
}

fn invoke_json(entry: &str, code_dir: &Path, event: &Path) -> Value {
    let out = fnhost(&[
        "invoke",
        entry,
        "--code-dir",
        code_dir.to_str().unwrap(),
        "--event",
        event.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{entry}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The seed's test.go, built as the seed says (its go.mod, `replace
/// huaweicloud.com/go-runtime => ./go-runtime`) with each of its eight
/// handlers registered in turn, answers the `fnhost event` template of its
/// trigger through the CLI: it decodes every field and its `String()` gives
/// the template back, key for key.
#[test]
fn the_seed_program_answers_every_event_template() {
    let plugins = go_plugins();
    let scratch = scratch("go-seed-events");
    for (kind, handler) in SEED_HANDLERS {
        let template = fnhost(&["event", kind]).stdout;
        let event_file = scratch.join(format!("{kind}.json"));
        std::fs::write(&event_file, &template).unwrap();
        let template: Value = serde_json::from_slice(&template).unwrap();
        let code_dir = plugins.join("seed").join(handler);
        // The registered function answers to its own name and to Handler.
        for entry in [format!("testplugin.{handler}"), "testplugin.Handler".into()] {
            let report = invoke_json(&entry, &code_dir, &event_file);
            assert!(report.get("error").is_none(), "{entry}: {report}");
            let request_id = report["request_id"].as_str().unwrap();
            let result = report["result"].as_str().unwrap();
            let echoed: Value = match kind {
                "apig" => {
                    let response: Value = serde_json::from_str(result).unwrap();
                    assert_eq!(response["statusCode"], 200, "{response}");
                    assert_eq!(response["headers"]["content-type"], "application/json");
                    serde_json::from_str(response["body"].as_str().unwrap()).unwrap()
                }
                "timer" => serde_json::from_str(result).unwrap(),
                _ => {
                    assert_eq!(result, "ok", "{kind}");
                    let line = report["log"].as_str().unwrap().lines().next().unwrap();
                    assert_log_prefix(line, request_id);
                    let logged = line.split_once(" payload:").expect("payload line").1;
                    serde_json::from_str(logged).unwrap()
                }
            };
            assert_eq!(
                echoed, template,
                "{kind}: the Go event type lost or changed fields"
            );
        }
        // A handler the program did not register is named in the error.
        let other = if handler == "CtsTest" {
            "SmnTest"
        } else {
            "CtsTest"
        };
        let out = fnhost(&[
            "invoke",
            &format!("testplugin.{other}"),
            "--code-dir",
            code_dir.to_str().unwrap(),
            "--data",
            "{}",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains(&format!("its handlers are: Handler, {handler}")),
            "{stderr}"
        );
    }
}

/// `fnhost inspect` names a Go library and the isolation it gets.
#[test]
fn inspect_recognises_a_go_library() {
    let lib = go_plugins().join("timer.so");
    let out = fnhost(&["inspect", lib.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["go_runtime"], true);
    assert_eq!(report["default_isolation"], "process");
    assert_eq!(
        report["handlers"],
        serde_json::json!(["Handler", "TimerTest"])
    );
    let text = String::from_utf8(fnhost(&["inspect", lib.to_str().unwrap()]).stdout).unwrap();
    assert!(
        text.contains("Go (c-shared): runs with process isolation"),
        "{text}"
    );
    // And a Rust library is native.
    let rust = fnhost_e2e::plugin_dir().join("libecho.so");
    let out = fnhost(&["inspect", rust.to_str().unwrap(), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["go_runtime"], false);
    assert_eq!(report["default_isolation"], "in-process");
}

fn misbehaving(rt: &Runtime, isolation: Isolation, dir: &Path) -> fnhost::Function {
    rt.load(
        FunctionConfig::new("misbehaving.Cases", dir)
            .timeout(Duration::from_secs(2))
            .user_data("GREETING", "hello")
            .isolation(isolation),
    )
    .expect("load misbehaving.so")
}

fn call(f: &fnhost::Function, case: &str) -> fnhost::InvokeResult {
    f.invoke(case.as_bytes()).expect("invoke")
}

fn failure(f: &fnhost::Function, case: &str) -> (String, String) {
    match call(f, case).outcome {
        Outcome::Failure(e) => (e.error_type, e.message),
        Outcome::Success(b) => panic!("{case} succeeded: {:?}", String::from_utf8_lossy(&b.bytes)),
    }
}

/// Results, errors and panics follow the seed's rules, under the default
/// isolation, which for a Go library is a worker process.
#[test]
fn results_errors_and_panics_follow_the_seed() {
    let rt = runtime();
    let f = misbehaving(&rt, Isolation::default(), &go_plugins());
    assert_eq!(
        f.config().isolation,
        Isolation::Process,
        "a Go library runs isolated by default"
    );
    assert!(!f.library().is_mapped(), "the host never maps it");

    let ok = |case: &str| match call(&f, case).outcome {
        Outcome::Success(b) => b,
        Outcome::Failure(e) => panic!("{case}: {e:?}"),
    };
    let b = ok("bytes");
    assert_eq!((b.kind, b.bytes), (BodyKind::Bytes, vec![0, 1, 2, 255]));
    let b = ok("nil");
    assert_eq!((b.kind, b.bytes.len()), (BodyKind::Empty, 0));
    let b = ok("\"anything else\"");
    assert_eq!(b.kind, BodyKind::Json);
    assert_eq!(
        serde_json::from_slice::<Value>(&b.bytes).unwrap(),
        serde_json::json!({"echo": "\"anything else\""})
    );
    let b = ok("build");
    assert_eq!((b.kind, b.bytes), (BodyKind::Text, b"1".to_vec()));
    // The caller's trace id reaches the Go handler (context.TraceID).
    let trace = fnhost::TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let ids = fnhost::CallIds {
        request_id: None,
        trace_id: Some(trace),
    };
    let traced = f.invoke_with(b"context", ids).unwrap();
    let Outcome::Success(b) = &traced.outcome else {
        panic!("{:?}", traced.outcome)
    };
    let c: Value = serde_json::from_slice(&b.bytes).unwrap();
    assert_eq!(c["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    let r = call(&f, "context");
    let Outcome::Success(b) = &r.outcome else {
        panic!("{:?}", r.outcome)
    };
    let c: Value = serde_json::from_slice(&b.bytes).unwrap();
    assert_eq!(c["request_id"], r.request_id.as_str());
    assert_eq!(c["trace_id"], "", "no trace given");
    assert_eq!(c["function"], "misbehaving");
    assert_eq!(c["version"], "latest");
    assert_eq!(c["package"], "default");
    assert_eq!(c["memory"], 128);
    assert_eq!(c["cpu"], 300, "millicores: 128 MB / 128 * 100 + 200");
    assert_eq!(c["running_s"], 2);
    assert!(
        (1..=2000).contains(&c["remaining_ms"].as_i64().unwrap()),
        "{c}"
    );
    assert_eq!(
        (c["user"].as_str(), c["missing"].as_str()),
        (Some("hello"), Some(""))
    );

    assert_eq!(
        failure(&f, "error"),
        (
            "FunctionReturnError".into(),
            "the order was not found".into()
        )
    );
    assert_eq!(
        failure(&f, "typed-error"),
        ("QuotaError".into(), "quota exhausted".into())
    );
    let (kind, message) = failure(&f, "unencodable");
    assert_eq!(kind, "FunctionReturnError");
    assert!(message.contains("cannot be encoded as JSON"), "{message}");

    // A panic, and a nil dereference (a SIGSEGV the Go runtime turns into a
    // panic), are errors of type panic with their stack in the log, paths cut.
    assert_eq!(
        failure(&f, "panic"),
        ("panic".into(), "handler gave up".into())
    );
    let r = call(&f, "nil-deref");
    let e = r.outcome.error().unwrap();
    assert_eq!(e.error_type, "panic");
    assert!(
        e.message.contains("nil pointer dereference"),
        "{}",
        e.message
    );
    assert!(r.log.contains("main.Cases (main.go:"), "{}", r.log);
    assert!(
        !r.log.contains("/sample-plugins/"),
        "absolute paths in {}",
        r.log
    );

    // fmt.Println and stderr land in the invocation's log, after Logf's line.
    let r = call(&f, "println");
    let lines: Vec<&str> = r.log.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.log);
    for line in &lines {
        assert_log_prefix(line, &r.request_id);
    }
    assert!(lines[0].ends_with(" from Logf 7"), "{}", r.log);
    assert!(r.log.contains(" from fmt.Println\n") && r.log.contains(" from stderr\n"));

    // A panic on a goroutine of the handler's own cannot be recovered: it
    // ends the worker, not the host, and the next call gets a new worker.
    let (kind, _) = failure(&f, "goroutine-panic");
    assert_eq!(kind, "runtime exited unexpectedly");
    assert_eq!(ok("build").bytes, b"1");

    // A runaway is killed at its timeout.
    let (kind, _) = failure(&f, "sleep");
    assert_eq!(kind, "timeout");
    assert_eq!(ok("build").bytes, b"1");
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The evidence behind running Go libraries isolated by default. Four Go
/// c-shared libraries (four Go runtimes) and a rebuilt fifth one, loaded in
/// process side by side, do work: 8 threads call all of them at once,
/// panics from nil dereferences (SIGSEGV, which every Go runtime installs a
/// handler for and forwards when the fault is not its own) are recovered by
/// the right runtime, and a context kept past its call reads nothing. What
/// does not go away is the cost: each Go runtime stays mapped for good with
/// its own threads and heap, so each hot swap of a Go library in process
/// leaves a whole runtime behind. The figures are printed for the book.
/// Held by tests that start Go runtimes in this process, so that one
/// counting the threads a runtime starts does not count another's.
static GO_RUNTIMES_STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn several_go_runtimes_share_one_process_at_a_cost() {
    let _counting = GO_RUNTIMES_STARTING
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let plugins = go_plugins();
    let rt = runtime();
    let base = (threads(), rss_kb());
    let mut functions: Vec<(fnhost::Function, &str, Vec<u8>)> = Vec::new();
    let mut growth = Vec::new();
    let seed_dir = plugins.join("seed/TimerTest");
    let timer_event = fnhost_api::events::samples::sample("timer")
        .unwrap()
        .as_bytes()
        .to_vec();
    for (entry, dir, payload) in [
        ("misbehaving.Cases", plugins.clone(), b"nil-deref".to_vec()),
        ("timer.TimerTest", plugins.clone(), timer_event.clone()),
        ("echo.Echo", plugins.clone(), b"echo me".to_vec()),
        ("testplugin.TimerTest", seed_dir, timer_event.clone()),
    ] {
        let before = (threads(), rss_kb());
        let f = rt
            .load(FunctionConfig::new(entry, &dir).isolation(Isolation::InProcess))
            .unwrap_or_else(|e| panic!("{entry}: {e}"));
        assert!(f.library().is_mapped());
        // The first call completes the runtime's start; the bridge reports
        // the Go heap in use as memoryUsed.
        let first = f.invoke(&payload).unwrap();
        assert!(
            first.summary.memory_used_mb > 0.0,
            "{entry}: {:?}",
            first.summary
        );
        growth.push((
            entry,
            threads() - before.0,
            rss_kb().saturating_sub(before.1),
        ));
        functions.push((f, entry, payload));
    }
    let functions = Arc::new(functions);
    let failures = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (functions, failures) = (Arc::clone(&functions), Arc::clone(&failures));
            std::thread::spawn(move || {
                for i in 0..200 {
                    let (f, entry, payload) = &functions[(t + i) % functions.len()];
                    let r = f.invoke(payload).unwrap();
                    let fine = match (*entry, &r.outcome) {
                        ("misbehaving.Cases", Outcome::Failure(e)) => e.error_type == "panic",
                        ("echo.Echo", Outcome::Success(b)) => b.bytes == b"echo me",
                        (_, Outcome::Success(b)) => b.bytes.starts_with(b"{\"version\""),
                        _ => false,
                    };
                    if !fine {
                        eprintln!("{entry}: {:?}", r.outcome);
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("no thread of the host crashed");
    }
    assert_eq!(failures.load(Ordering::Relaxed), 0);

    // A context kept by a goroutine past its call reads zero values.
    let f = &functions[0].0;
    assert_eq!(call(f, "leak").outcome.body_bytes(), b"kept");
    let late = call(f, "use-leaked");
    assert_eq!(late.outcome.body_bytes(), b"[]");
    assert!(!late.log.contains("late"), "{}", late.log);

    // A hot swap in process: a new build of the same library is a fifth
    // runtime, and the old one stays mapped.
    let before = (threads(), rss_kb());
    let swapped = rt
        .load(
            FunctionConfig::new("misbehaving.Cases", plugins.join("build2"))
                .isolation(Isolation::InProcess),
        )
        .unwrap();
    assert_eq!(call(&swapped, "build").outcome.body_bytes(), b"2");
    assert_eq!(call(f, "build").outcome.body_bytes(), b"1");
    growth.push((
        "misbehaving.Cases, second build",
        threads() - before.0,
        rss_kb().saturating_sub(before.1),
    ));
    eprintln!(
        "host before any Go library: {} threads, {} kB RSS",
        base.0, base.1
    );
    for (what, t, kb) in &growth {
        eprintln!("loading {what}: +{t} threads, +{kb} kB RSS");
        assert!(*t >= 1, "a Go runtime starts threads of its own");
    }
}

/// A Go handler hot-swapped under load, with the default isolation (worker
/// processes): no request fails, every answer comes from one of the two
/// builds, and the new build serves once the deploy returns.
#[test]
fn a_go_handler_swapped_under_load_loses_nothing() {
    let plugins = go_plugins();
    let builds: [PathBuf; 2] = [plugins.clone(), plugins.join("build2")];
    let rt = runtime();
    let config = |dir: &Path| {
        let mut c = FunctionConfig::new("misbehaving.Cases", dir).name("swapped");
        c.instances.concurrency_per_instance = 4;
        c
    };
    rt.registry().deploy(config(&builds[0])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let (rt, stop, served) = (rt.clone(), Arc::clone(&stop), Arc::clone(&served));
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match rt.registry().invoke("swapped", b"build") {
                        Ok(r) => match r.outcome.body_bytes().as_slice() {
                            b"1" | b"2" => {}
                            other => failures.push(String::from_utf8_lossy(other).into_owned()),
                        },
                        Err(e) => failures.push(e.to_string()),
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();
    for i in 0..10 {
        // Fixed wait: the load runs against each build for a while before the next swap.
        std::thread::sleep(Duration::from_millis(50));
        let new = i % 2 == 0;
        rt.registry()
            .deploy(config(&builds[usize::from(new)]))
            .unwrap();
        let answer = rt.registry().invoke("swapped", b"build").unwrap();
        assert_eq!(answer.outcome.body_bytes(), if new { b"2" } else { b"1" });
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(served.load(Ordering::Relaxed) > 100, "the load ran");
}

/// A Go handler that logged with `Logf` and printed, then timed out,
/// crashed or ran out of memory: the call's log keeps every line it wrote
/// before the end, in order, then the platform's line (see
/// tests/isolation.rs for Rust and C).
#[test]
fn a_killed_go_calls_log_keeps_every_line_written_before_the_end() {
    let rt = runtime();
    let f = misbehaving(&rt, Isolation::Process, &go_plugins());
    for case in ["log-then-timeout", "log-then-crash", "log-then-oom"] {
        let r = call(&f, case);
        let error = r
            .outcome
            .error()
            .unwrap_or_else(|| panic!("{case} succeeded"));
        let lines: Vec<&str> = r.log.lines().collect();
        let at = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{case}: `{needle}` is not in the log:\n{}", r.log))
        };
        let (logged, printed, stderr) = (
            at("logged before the end"),
            at("printed before the end"),
            at("on stderr before the end"),
        );
        assert!(logged < printed && printed < stderr, "{case}:\n{}", r.log);
        assert!(
            lines.last().is_some_and(|l| l.contains(&error.message)),
            "{case}: the platform's line comes last:\n{}",
            r.log
        );
    }
}

/// ABI 1.5 from Go: `context.CallHost` reaches the embedder's host
/// functions in process and from a worker process (the Go default), and
/// their typed errors come back as the handler's (`*context.HostCallError`
/// has an `ErrorType`).
#[test]
fn a_go_handler_calls_host_functions_with_typed_errors() {
    use fnhost::{HostCallContext, HostError};
    let rt = Runtime::builder()
        .config(fnhost::RuntimeConfig {
            cache_dir: Some(fnhost_e2e::cache_dir()),
            worker_executable: Some(fnhost_bin()),
            ..fnhost::RuntimeConfig::default()
        })
        .host_function("cache.get", |ctx: &HostCallContext<'_>, key: &[u8]| {
            Ok::<_, HostError>(
                format!("{} for {}", String::from_utf8_lossy(key), ctx.function()).into_bytes(),
            )
        })
        .host_function("refuse", |_: &HostCallContext<'_>, _: &[u8]| {
            Err::<Vec<u8>, _>(HostError::new("not yours").with_type("Forbidden"))
        })
        .build()
        .unwrap();
    // A build of its own (one byte more at the end of the file): its own
    // Go runtime in this process, so the test that counts the threads each
    // Go library's runtime starts still sees misbehaving's start.
    let dir = scratch("go-host-calls");
    let mut own = std::fs::read(go_plugins().join("misbehaving.so")).unwrap();
    own.push(0);
    std::fs::write(dir.join("misbehaving.so"), own).unwrap();
    let _counting = GO_RUNTIMES_STARTING
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let load = |host_function: &str, isolation: Isolation| {
        rt.load(
            FunctionConfig::new("misbehaving.Cases", &dir)
                .name(format!("go-{}", host_function.replace('.', "-")))
                .user_data("HOST_FUNCTION", host_function)
                .isolation(isolation),
        )
        .unwrap()
    };
    let f = load("cache.get", Isolation::InProcess);
    match call(&f, "callhost").outcome {
        Outcome::Success(b) => assert_eq!(b.bytes, b"k1 for go-cache-get"),
        Outcome::Failure(e) => panic!("{e:?}"),
    }
    let f = load("refuse", Isolation::InProcess);
    assert_eq!(
        failure(&f, "callhost"),
        ("Forbidden".to_owned(), "Forbidden: not yours".to_owned())
    );
    let f = load("no.such", Isolation::InProcess);
    assert_eq!(failure(&f, "callhost").0, "HostFunctionNotFound");
    // From a worker process (the Go default), over its channel.
    let f = load("cache.get", Isolation::Process);
    match call(&f, "callhost").outcome {
        Outcome::Success(b) => assert_eq!(b.bytes, b"k1 for go-cache-get"),
        Outcome::Failure(e) => panic!("{e:?}"),
    }
    let f = load("refuse", Isolation::Process);
    assert_eq!(failure(&f, "callhost").0, "Forbidden");
}
