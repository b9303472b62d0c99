//! Process isolation: every misbehaving handler is contained in a worker
//! process with the platform's error type, and the host stays healthy.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fnhost::{error_type, FunctionConfig, Isolation, Outcome, Runtime, RuntimeConfig};
use fnhost_e2e::{cache_dir, eventually, fnhost_bin, plugin_dir};
use serde_json::Value;

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// A runtime whose workers are not sandboxed (`--sandbox off`): what
/// process isolation alone contains (the sandbox's own tests are in
/// tests/sandbox.rs).
fn runtime_unsandboxed() -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        sandbox: fnhost::SandboxConfig {
            mode: fnhost::SandboxMode::Off,
            ..fnhost::SandboxConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap()
}

fn isolated(entry: &str) -> FunctionConfig {
    FunctionConfig::new(entry, plugin_dir()).isolation(Isolation::Process)
}

fn error(r: &fnhost::InvokeResult) -> (String, String) {
    let e = r
        .outcome
        .error()
        .unwrap_or_else(|| panic!("expected a failure: {:?}", r.outcome));
    (e.error_type.clone(), e.message.clone())
}

/// The host is fine: an in-process function still answers.
fn host_healthy(rt: &Runtime) {
    let echo = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()))
        .unwrap();
    assert_eq!(echo.invoke(b"fine").unwrap().outcome.body_bytes(), b"fine");
}

#[test]
fn payloads_context_results_and_logs_cross_the_process_boundary_intact() {
    let rt = runtime();
    let echo = rt.load(isolated("echo.Handler")).unwrap();
    let big: Vec<u8> = (0..=255u8).cycle().take(5 * 1024 * 1024).collect();
    assert_eq!(echo.invoke(&big).unwrap().outcome.body_bytes(), big);
    let f = rt
        .load(
            isolated("testplugin.Handler")
                .initializer("testplugin.Init")
                .user_data("NAME", "iso")
                .memory_mb(256),
        )
        .unwrap();
    let r = f.invoke(br#"{"key": "NAME"}"#).unwrap();
    let v: Value = serde_json::from_slice(&r.outcome.body_bytes()).unwrap();
    assert_eq!(v["user_data"], "iso");
    assert_eq!(v["memory_size_mb"], 256);
    assert_eq!(v["request_id"], r.request_id.as_str());
    assert_eq!(v["init_calls"], 1, "the initializer ran in the worker");
    assert!(
        r.log
            .contains(&format!("{} testplugin handling", r.request_id)),
        "{}",
        r.log
    );
    assert!(
        r.summary.memory_used_mb > 1.0,
        "the worker's real peak: {:?}",
        r.summary
    );
}

#[test]
fn stdout_and_stderr_land_in_the_invocation_log() {
    let rt = runtime();
    let f = rt.load(isolated("misbehaving.Print")).unwrap();
    // Every invocation gets exactly its own lines, however the pipes and the
    // socket race (the worker marks the end of each invocation's output).
    for _ in 0..50 {
        let r = f.invoke(b"").unwrap();
        assert_eq!(r.outcome.body_bytes(), b"printed");
        for line in ["hello on stdout", "hello on stderr"] {
            assert_eq!(r.log.matches(line).count(), 1, "{line}: {}", r.log);
            assert!(
                r.log.contains(&format!("{} {line}", r.request_id)),
                "{line} missing: {}",
                r.log
            );
        }
        assert!(!r.log.contains("fnhost-output-end"), "{}", r.log);
    }
}

#[test]
fn a_spinning_handler_is_killed_at_the_deadline_and_replaced() {
    let rt = runtime();
    let f = rt
        .load(isolated("misbehaving.Spin").timeout(Duration::from_millis(500)))
        .unwrap();
    let start = Instant::now();
    let r = f.invoke(b"").unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let (ty, msg) = error(&r);
    assert_eq!(ty, error_type::TIMEOUT);
    assert!(
        msg.contains("0.500 seconds") && msg.contains("killed"),
        "{msg}"
    );
    assert_eq!(
        rt.stats().runaway_invocations,
        0,
        "nothing keeps running in the host"
    );
    // The next invocation gets a fresh worker.
    assert_eq!(error(&f.invoke(b"").unwrap()).0, error_type::TIMEOUT);
    let sleepy = rt
        .load(isolated("misbehaving.Sleep").timeout(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(
        error(&sleepy.invoke(b"2000").unwrap()).0,
        error_type::TIMEOUT
    );
    assert_eq!(sleepy.invoke(b"10").unwrap().outcome.body_bytes(), b"slept");
    host_healthy(&rt);
}

#[test]
fn crashes_are_contained_and_reported_with_the_signal_or_status() {
    let rt = runtime();
    for (handler, expected) in [
        ("Segfault", "killed by signal 11 (SIGSEGV)"),
        ("Abort", "killed by signal 6 (SIGABRT)"),
        ("Exit", "exit status 3"),
    ] {
        let f = rt
            .load(isolated(&format!("misbehaving.{handler}")))
            .unwrap();
        for _ in 0..2 {
            let (ty, msg) = error(&f.invoke(b"").unwrap());
            assert_eq!(ty, error_type::RUNTIME_EXITED, "{handler}");
            assert!(msg.contains(expected), "{handler}: {msg}");
        }
    }
    let (ty, msg) = error(
        &rt.load(isolated("misbehaving.Panic"))
            .unwrap()
            .invoke(b"")
            .unwrap(),
    );
    assert_eq!(
        (ty.as_str(), msg.as_str()),
        ("panic", "misbehaving handler panicked on purpose")
    );
    host_healthy(&rt);
}

#[test]
fn the_memory_size_is_enforced() {
    let rt = runtime();
    let f = rt
        .load(isolated("misbehaving.AllocMb").memory_mb(128))
        .unwrap();
    let r = f.invoke(b"512").unwrap();
    let (ty, msg) = error(&r);
    assert_eq!(
        ty,
        error_type::MEMORY_LIMIT,
        "{msg}\n{:?}\n{}",
        r.summary,
        r.log
    );
    assert!(msg.contains("128 MB"), "{msg}");
    // The limit reached is what it used (it reported 0).
    assert_eq!(r.summary.memory_used_mb, 128.0, "{:?}", r.summary);
    let r = f.invoke(b"32").unwrap();
    assert!(matches!(r.outcome, Outcome::Success(_)), "{:?}", r.outcome);
    assert!(r.summary.memory_used_mb >= 32.0, "{:?}", r.summary);
    // The peak is the call's own: the next, small call does not inherit it.
    let small = f.invoke(b"1").unwrap();
    assert!(
        small.summary.memory_used_mb < r.summary.memory_used_mb - 16.0,
        "{:?} after {:?}",
        small.summary,
        r.summary
    );
    let bigger = rt
        .load(isolated("misbehaving.AllocMb").memory_mb(1024))
        .unwrap();
    assert!(bigger.invoke(b"512").unwrap().outcome.is_success());
    host_healthy(&rt);
}

#[test]
fn initializer_failures_in_a_worker_are_handled_initialization_errors() {
    let rt = runtime();
    let f = rt
        .load(isolated("misbehaving.Error").initializer("misbehaving.InitFail"))
        .unwrap();
    let (ty, msg) = error(&f.invoke(b"").unwrap());
    assert_eq!(ty, error_type::INITIALIZATION);
    assert!(msg.contains("database unreachable"), "{msg}");
}

#[test]
fn eight_callers_times_two_thousand_invocations() {
    let rt = runtime();
    let echo = Arc::new(rt.load(isolated("echo.Handler")).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let echo = Arc::clone(&echo);
            std::thread::spawn(move || {
                for i in 0..2000 {
                    let payload = format!("{t}:{i}");
                    let r = echo.invoke(payload.as_bytes()).unwrap();
                    assert_eq!(r.outcome.body_bytes(), payload.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(echo.generation().idle_worker_processes() >= 1);
}

#[test]
fn swapping_an_isolated_function_ends_the_old_workers() {
    let rt = runtime();
    let reg = rt.registry();
    let first = reg
        .deploy(isolated("echo.Handler").name("iso-swap"))
        .unwrap()
        .generation;
    assert_eq!(
        first.idle_worker_processes(),
        1,
        "a worker was started (and checked) at deploy"
    );
    let pids = |g: &fnhost::Generation| g.idle_worker_processes();
    reg.deploy(isolated("echo.Logged").name("iso-swap"))
        .unwrap();
    assert!(reg.invoke("iso-swap", b"x").unwrap().outcome.is_success());
    let stats = reg.generation_stats();
    assert_eq!((stats.live, stats.draining), (1, 0), "{stats:?}");
    // The retired generation's pool is dropped with it, ending its workers,
    // once nothing else holds it.
    let weak = Arc::downgrade(&first);
    assert_eq!(pids(&first), 1);
    drop(first);
    assert!(
        weak.upgrade().is_none(),
        "the retired generation was released"
    );
}

/// Pids of processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == parent {
            found.push(pid);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}

#[test]
fn workers_die_with_their_host_even_when_it_is_killed() {
    let mut host = std::process::Command::new(fnhost_bin())
        .args(["invoke", "misbehaving.Sleep", "--code-dir"])
        .arg(plugin_dir())
        .args([
            "--data",
            "20000",
            "--isolation",
            "process",
            "--timeout",
            "30",
            "--cache-dir",
        ])
        .arg(cache_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let workers = loop {
        let w = children_of(host.id());
        if !w.is_empty() {
            break w;
        }
        assert!(Instant::now() < deadline, "no worker process appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    host.kill().unwrap();
    host.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || {
            !workers.iter().any(|&w| alive(w))
        }),
        "worker {workers:?} outlived its killed host"
    );
}

#[test]
fn idle_workers_end_after_the_idle_time_and_reserved_ones_stay() {
    let rt = runtime();
    let limits = fnhost::InstanceConfig {
        idle_timeout: Duration::from_millis(100),
        ..fnhost::InstanceConfig::default()
    };
    let f = rt.load(isolated("echo.Handler").instances(limits)).unwrap();
    assert_eq!(f.invoke(b"x").unwrap().outcome.body_bytes(), b"x");
    assert_eq!(f.generation().idle_worker_processes(), 1);
    // Fixed wait: past the 100 ms idle timeout; nothing ends before release_idle_instances().
    std::thread::sleep(Duration::from_millis(250));
    f.generation().release_idle_instances();
    assert_eq!(
        f.generation().idle_worker_processes(),
        0,
        "the idle worker was ended"
    );
    assert_eq!(
        f.invoke(b"y").unwrap().outcome.body_bytes(),
        b"y",
        "a new worker serves"
    );

    let reserved = rt
        .load(isolated("echo.Handler").instances(fnhost::InstanceConfig {
            reserved_instances: 2,
            ..limits
        }))
        .unwrap();
    assert_eq!(
        reserved.generation().idle_worker_processes(),
        2,
        "reserved workers are started at load"
    );
    // Fixed wait: past the 100 ms idle timeout, which must not end reserved workers.
    std::thread::sleep(Duration::from_millis(250));
    reserved.generation().release_idle_instances();
    assert_eq!(
        reserved.generation().idle_worker_processes(),
        2,
        "reserved workers are kept"
    );
}

#[test]
fn the_host_never_maps_an_isolated_library_and_bad_ones_are_load_errors() {
    let rt = runtime();
    let dir = fnhost_e2e::scratch("isolated-unmapped");
    fnhost_e2e::write_complete(
        &dir,
        "hotswap.so",
        &fnhost_e2e::hotswap_build(b'I', Some(0x150_1a7e)),
    );
    let before = rt.stats().libraries_mapped;
    let f = rt
        .load(FunctionConfig::new("hotswap.Handler", &dir).isolation(Isolation::Process))
        .unwrap();
    assert!(!f.library().is_mapped());
    assert_eq!(
        rt.stats().libraries_mapped,
        before,
        "the host did not map it"
    );
    assert!(f
        .invoke(b"")
        .unwrap()
        .outcome
        .body_bytes()
        .starts_with(b"build I"));

    let e = rt.load(isolated("echo.Missing")).unwrap_err();
    assert!(matches!(e, fnhost::LoadError::InWorker(_)), "{e:?}");
    assert!(e.to_string().contains("no handler `Missing`"), "{e}");
    let text = fnhost_e2e::scratch("isolated-text");
    std::fs::write(text.join("x.so"), "not a library").unwrap();
    let e = rt
        .load(FunctionConfig::new("x.Handler", &text).isolation(Isolation::Process))
        .unwrap_err();
    assert!(matches!(e, fnhost::LoadError::NotALibrary { .. }), "{e:?}");
}

#[test]
fn swapping_an_isolated_function_under_load_loses_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let rt = runtime();
    let root = fnhost_e2e::scratch("isolated-swap-load");
    let (a, b) = (root.join("a"), root.join("b"));
    for (dir, tag) in [(&a, b'A'), (&b, b'B')] {
        std::fs::create_dir_all(dir).unwrap();
        fnhost_e2e::write_complete(dir, "hotswap.so", &fnhost_e2e::hotswap_build(tag, None));
    }
    let config = |dir: &std::path::Path| {
        FunctionConfig::new("hotswap.Handler", dir)
            .name("iso-load")
            .isolation(Isolation::Process)
    };
    rt.registry().deploy(config(&a)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (rt, stop) = (rt.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut answers = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = rt.registry().invoke("iso-load", b"").unwrap();
                    let body = r.outcome.body_bytes();
                    assert!(
                        body.starts_with(b"build A") || body.starts_with(b"build B"),
                        "{:?}",
                        r.outcome
                    );
                    answers += 1;
                }
                answers
            })
        })
        .collect();
    for i in 0..30 {
        rt.registry()
            .deploy(config(if i % 2 == 0 { &b } else { &a }))
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let answered: usize = callers.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(answered > 30, "{answered}");
    // The last of the 30 deploys (i = 29) installed A.
    let last = rt.registry().invoke("iso-load", b"").unwrap();
    assert!(
        last.outcome.body_bytes().starts_with(b"build A"),
        "{:?}",
        last.outcome
    );
}

#[test]
fn a_library_that_crashes_at_start_is_restarted_with_backoff() {
    let rt = runtime();
    let f = rt
        .load(isolated("misbehaving.Error").initializer("misbehaving.InitAbort"))
        .unwrap();
    let g = f.generation();
    // The load's start and two invocations' starts fail: three in a row.
    for _ in 0..2 {
        let (ty, msg) = error(&f.invoke(b"").unwrap());
        assert_eq!(ty, error_type::INITIALIZATION);
        assert!(msg.contains("SIGABRT"), "{msg}");
    }
    assert_eq!(g.worker_process_starts(), 3);
    // Now starts back off: invocations answer the last error at once.
    let start = Instant::now();
    for _ in 0..5 {
        assert_eq!(error(&f.invoke(b"").unwrap()).0, error_type::INITIALIZATION);
    }
    assert_eq!(
        g.worker_process_starts(),
        3,
        "no worker started during the backoff"
    );
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    // After the backoff, it tries again.
    // Fixed wait: the 1 s backoff must pass; nothing shows its end before a call.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(error(&f.invoke(b"").unwrap()).0, error_type::INITIALIZATION);
    assert_eq!(g.worker_process_starts(), 4);
}

#[test]
fn an_idle_worker_killed_from_outside_is_replaced_without_failing_a_call() {
    let rt = runtime();
    let f = rt.load(isolated("echo.Handler")).unwrap();
    assert_eq!(f.invoke(b"1").unwrap().outcome.body_bytes(), b"1");
    // Kill its idle worker behind the runtime's back (as the OOM killer would).
    let workers = f.generation().idle_worker_pids();
    assert_eq!(workers.len(), 1);
    for pid in &workers {
        // SAFETY: kill(2) on the pid of this function's own idle worker.
        unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            !workers.iter().any(|&w| alive(w))
        }),
        "the killed worker {workers:?} did not die"
    );
    let r = f.invoke(b"2").unwrap();
    assert_eq!(r.outcome.body_bytes(), b"2", "{:?}", r.outcome);
}

/// `Isolation::Inline`: the call completes on the calling thread, with the
/// same results, errors and summary as on a worker thread; the timeout is
/// checked when the handler returns.
#[test]
fn an_inline_function_runs_on_the_calling_thread_and_is_checked_when_it_returns() {
    use fnhost::dispatch::Started;
    let rt = runtime();
    let inline = |entry: &str, name: &str| {
        FunctionConfig::new(entry, plugin_dir())
            .name(name)
            .isolation(Isolation::Inline)
    };
    rt.registry()
        .deploy(inline("echo.Handler", "fast"))
        .unwrap();
    rt.registry()
        .deploy(FunctionConfig::new("echo.Handler", plugin_dir()).name("threaded"))
        .unwrap();
    for name in ["fast", "threaded"] {
        // The first call initializes the instance (off the caller's thread).
        assert_eq!(
            rt.registry()
                .invoke(name, b"warm")
                .unwrap()
                .outcome
                .body_bytes(),
            b"warm"
        );
    }
    let route = rt.registry().resolve("fast").unwrap();
    match fnhost::dispatch::start(&route, b"inline".to_vec()).unwrap() {
        Started::Done(r) => {
            assert_eq!(r.outcome.body_bytes(), b"inline");
            assert!(r.summary.duration_ms >= 0.0 && r.summary.billing_duration_ms >= 1);
        }
        other => panic!("an inline call must complete in start: {other:?}"),
    }
    let route = rt.registry().resolve("threaded").unwrap();
    match fnhost::dispatch::start(&route, b"worker".to_vec()).unwrap() {
        Started::Running(p) => {
            let (tx, rx) = std::sync::mpsc::channel();
            p.on_complete(move || tx.send(()).unwrap());
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(p.finish().outcome.body_bytes(), b"worker");
        }
        other => panic!("an in-process call runs on a worker: {other:?}"),
    }

    // Over its timeout: answered when the handler returns, as `timeout`.
    let slow = rt
        .load(inline("misbehaving.Sleep", "slow-inline").timeout(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let r = slow.invoke(b"400").unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert_eq!(error(&r).0, error_type::TIMEOUT);
    assert!(
        r.log
            .contains("past its timeout of 0.100 seconds; answered when it returned"),
        "{}",
        r.log
    );
    assert_eq!(rt.stats().runaway_invocations, 0, "nothing is left running");
    assert_eq!(slow.invoke(b"1").unwrap().outcome.body_bytes(), b"slept");

    // A panic is contained by the plugin's trampoline, as on a worker.
    let panicky = rt
        .load(inline("misbehaving.Panic", "panicky-inline"))
        .unwrap();
    assert_eq!(error(&panicky.invoke(b"{}").unwrap()).0, "panic");
    host_healthy(&rt);
}

/// A runtime whose worker processes run `fixture` from a scratch directory.
fn fixture_function(
    rt: &Runtime,
    fixture: &str,
    handler: &str,
    timeout: Duration,
) -> fnhost::Function {
    // One directory per fixture and handler: two tests of one fixture run
    // at once, and each wipes its scratch directory first (a fresh clone's
    // run lost `forks.so` to the other test's wipe).
    let dir = fnhost_e2e::scratch(&format!("iso-{fixture}-{handler}"));
    fnhost_e2e::compile_fixture(fixture, &dir);
    rt.load(
        FunctionConfig::new(format!("{fixture}.{handler}"), &dir)
            .isolation(Isolation::Process)
            .timeout(timeout),
    )
    .unwrap()
}

fn pids_in(text: &str) -> Vec<u32> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn gone_within(pids: &[u32], limit: Duration) {
    assert!(
        eventually(limit, || !pids.iter().any(|&p| alive(p))),
        "{pids:?} outlived their worker"
    );
}

/// The process group of `pid`.
fn pgid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(2))
        .and_then(|g| g.parse::<u32>().ok())
}

/// Every process of the group a child `pid` belongs to (the worker's).
fn group_of(pid: u32) -> Vec<u32> {
    let Some(pgid) = pgid_of(pid) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().nth(2)?.parse::<u32>().ok())
                })
                == Some(pgid)
        })
        .collect()
}

#[test]
fn processes_a_handler_starts_end_with_its_worker_at_the_deadline() {
    // Unsandboxed: the pids the handler logs are the host's.
    let rt = runtime_unsandboxed();
    let f = fixture_function(&rt, "forks", "ForkAndSpin", Duration::from_millis(700));
    let r = f.invoke(b"{}").unwrap();
    assert_eq!(error(&r).0, error_type::TIMEOUT);
    let children = pids_in(
        r.log
            .lines()
            .find(|l| l.contains("child "))
            .expect("the handler logged its child"),
    );
    let child = *children.last().unwrap();
    gone_within(&[child], Duration::from_secs(5));
    host_healthy(&rt);
}

#[test]
fn processes_a_handler_starts_end_when_its_worker_is_retired() {
    // Unsandboxed: the pids the handler answers are the host's.
    let rt = runtime_unsandboxed();
    let f = fixture_function(&rt, "forks", "Fork", Duration::from_secs(3));
    let r = f.invoke(b"{}").unwrap();
    let child: u32 = String::from_utf8(r.outcome.body_bytes())
        .unwrap()
        .parse()
        .unwrap();
    // The child starts its own child after the handler answered.
    let deadline = Instant::now() + Duration::from_secs(5);
    let family = loop {
        let family = group_of(child);
        if family.len() >= 3 {
            break family;
        }
        assert!(
            Instant::now() < deadline,
            "worker, child and grandchild: {family:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(f);
    rt.registry().release_idle_instances();
    let deadline = Instant::now() + Duration::from_secs(5);
    // Retiring ends idle workers; dropping the only handle retires it.
    while family.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(rt);
    gone_within(&family, Duration::from_secs(5));
}

#[test]
fn processes_a_handler_starts_die_with_a_killed_host() {
    let dir = fnhost_e2e::scratch("iso-forks-kill");
    fnhost_e2e::compile_fixture("forks", &dir);
    let mut host = std::process::Command::new(fnhost_bin())
        .args(["invoke", "forks.ForkAndSpin", "--code-dir"])
        .arg(&dir)
        .args(["--isolation", "process", "--timeout", "60", "--cache-dir"])
        .arg(cache_dir())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let host_group = pgid_of(host.id());
    let family = loop {
        // A child caught between fork and its setsid is still in the host's
        // group (this test's, with every process the test script started):
        // only a worker in a group of its own counts.
        let workers = children_of(host.id());
        let family: Vec<u32> = workers
            .iter()
            .filter(|&&w| pgid_of(w).is_some_and(|g| Some(g) != host_group))
            .flat_map(|&w| group_of(w))
            .collect();
        if family.len() >= 3 {
            break family;
        }
        assert!(
            Instant::now() < deadline,
            "the handler's children did not appear"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    host.kill().unwrap();
    host.wait().unwrap();
    gone_within(&family, Duration::from_secs(5));
}

#[test]
fn output_without_newlines_is_capped_in_bytes_with_a_note() {
    let rt = runtime();
    let f = fixture_function(&rt, "no_newline", "Handler", Duration::from_secs(10));
    for _ in 0..2 {
        let started = Instant::now();
        let r = f.invoke(b"done").unwrap();
        assert_eq!(r.outcome.body_bytes(), b"done");
        assert!(
            r.log.contains("output truncated"),
            "{}",
            &r.log[r.log.len().saturating_sub(300)..]
        );
        // 4 MiB written, at most 1 MiB (plus prefixes) kept.
        assert!(
            r.log.len() < 2 * 1024 * 1024,
            "{} bytes of log",
            r.log.len()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn a_handler_cannot_forge_the_end_of_its_output_and_stdio_buffers_land_in_their_own_call() {
    let rt = runtime();
    let f = fixture_function(&rt, "forged_marker", "Handler", Duration::from_secs(3));
    for call in ["one", "two", "three"] {
        let r = f.invoke(call.as_bytes()).unwrap();
        assert_eq!(r.outcome.body_bytes(), call.as_bytes());
        let own = format!("call {call} ends without a newline");
        assert!(r.log.contains(&own), "{call}: {}", r.log);
        assert!(
            r.log.contains("fnhost-output-end:999"),
            "printed text is kept as printed"
        );
        for other in ["one", "two", "three"].iter().filter(|o| **o != call) {
            assert!(
                !r.log.contains(&format!("call {other} ")),
                "{call} got {other}'s output: {}",
                r.log
            );
        }
    }
}

#[test]
fn a_worker_holds_only_its_socket_its_library_its_shared_memory_and_stdio() {
    // A descriptor the host has open without close-on-exec must not leak.
    let leaked = std::fs::File::open("/dev/null").unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: clears FD_CLOEXEC on a descriptor this test owns.
    unsafe { libc::fcntl(leaked.as_raw_fd(), libc::F_SETFD, 0) };
    let rt = runtime();
    let f = fixture_function(&rt, "list_fds", "Handler", Duration::from_secs(3));
    let r = f.invoke(b"{}").unwrap();
    let fds = pids_in(&String::from_utf8(r.outcome.body_bytes()).unwrap());
    // 0-2 stdio, 3 the socket, 4 the library, 5 the shared-memory region.
    assert!(fds.iter().all(|&fd| fd <= 5), "the worker holds {fds:?}");
    drop(leaked);
}

#[test]
fn isolation_works_as_pid_1_of_a_pid_namespace() {
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!(
            "skipped: unprivileged PID namespaces are not available here (unshare --pid failed)"
        );
        return;
    }
    for (entry, data, expect) in [
        ("testplugin.Handler", "{}", "request_id"),
        ("misbehaving.Spin", "{}", "timed out"),
        ("misbehaving.Abort", "{}", "runtime exited unexpectedly"),
    ] {
        let out = std::process::Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc"])
            .arg(fnhost_bin())
            .args(["invoke", entry, "--code-dir"])
            .arg(plugin_dir())
            .args([
                "--isolation",
                "process",
                "--timeout",
                "1",
                "--data",
                data,
                "--cache-dir",
            ])
            .arg(cache_dir())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(expect), "{entry} as PID 1: {text}");
        assert!(!text.contains("did not start"), "{entry} as PID 1: {text}");
    }
}

#[test]
fn a_rust_print_without_a_newline_lands_in_its_own_call() {
    let rt = runtime();
    let f = rt.load(isolated("misbehaving.PrintPartial")).unwrap();
    for call in ["one", "two", "three"] {
        let r = f.invoke(call.as_bytes()).unwrap();
        assert!(
            r.log.contains(&format!("partial {call}")),
            "{call}: {}",
            r.log
        );
        for other in ["one", "two", "three"].iter().filter(|o| **o != call) {
            assert!(
                !r.log.contains(&format!("partial {other}")),
                "{call}: {}",
                r.log
            );
        }
    }
}

/// A host whose binary was replaced or deleted on disk (an upgrade in
/// place) still starts workers: they run the host's own binary, through
/// `/proc/self/exe` (by path they failed: "fnhost (deleted)").
#[test]
fn workers_start_after_the_hosts_binary_was_deleted() {
    let dir = fnhost_e2e::scratch("iso-deleted-binary");
    let copy = dir.join("fnhost-copy");
    std::fs::copy(fnhost_bin(), &copy).unwrap();
    let watched = dir.join("functions");
    std::fs::create_dir_all(&watched).unwrap();
    // Its output goes to files, read while it runs.
    let (stdout, stderr) = (dir.join("watch.stdout"), dir.join("watch.stderr"));
    let mut watch = std::process::Command::new(&copy)
        .args([
            "watch",
            "--isolation",
            "process",
            "--invoke",
            "echo.Handler",
            "--data",
            "\"after\"",
            "--cache-dir",
        ])
        .arg(cache_dir())
        .arg(&watched)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let output = || {
        format!(
            "{}{}",
            std::fs::read_to_string(&stdout).unwrap_or_default(),
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    };
    // The host is up (its runtime made) before its binary goes.
    assert!(
        eventually(Duration::from_secs(10), || output().contains("watching")),
        "fnhost watch did not start: {}",
        output()
    );
    std::fs::remove_file(&copy).unwrap();
    std::fs::copy(plugin_dir().join("libecho.so"), watched.join("echo.so")).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || output().contains("invoked")),
        "fnhost watch did not call the function: {}",
        output()
    );
    watch.kill().unwrap();
    watch.wait().unwrap();
    let text = output();
    assert!(text.contains("after"), "{text}");
    assert!(!text.contains("cannot start a worker"), "{text}");
}

/// A crash was labelled the memory limit whenever the worker's output held
/// "memory allocation of", which any handler can print. The label now comes
/// from how the worker ended (and the cgroup's OOM count): an exit, a
/// segfault or a kill stays `runtime exited unexpectedly`.
#[test]
fn printed_text_does_not_make_a_crash_the_memory_limit() {
    let rt = runtime();
    let f = fixture_function(&rt, "forged_oom", "Handler", Duration::from_secs(3));
    for how in ["exit", "segv", "kill", "abort"] {
        let r = f.invoke(how.as_bytes()).unwrap();
        let (ty, message) = error(&r);
        assert_eq!(ty, error_type::RUNTIME_EXITED, "{how}: {message}");
        assert!(
            r.log.contains("memory allocation of"),
            "{how}: printed text is kept"
        );
    }
}

/// The billed duration was the worker's own figure (clamped to what the
/// host measured, so a worker could bill 0 ms): it is now the host's.
#[test]
fn an_isolated_call_is_billed_what_the_host_measured() {
    let rt = runtime();
    let f = rt.load(isolated("hotswap.Handler")).unwrap();
    let r = f.invoke(b"sleep:50").unwrap();
    assert!(r.outcome.is_success(), "{:?}", r.outcome);
    assert!(r.summary.duration_ms >= 50.0, "{:?}", r.summary);
    assert!(r.summary.billing_duration_ms >= 50, "{:?}", r.summary);
}

/// Checks that a failed call's log holds every line written before the end,
/// each with the call's prefix, in order, then the platform's line.
fn assert_kept_before_the_end(r: &fnhost::InvokeResult, what: &str) {
    let lines: Vec<&str> = r.log.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{what}: `{needle}` is not in the log:\n{}", r.log))
    };
    let (logged, printed, stderr) = (
        at("logged before the end"),
        at("printed before the end"),
        at("on stderr before the end"),
    );
    let error = r.outcome.error().expect("a failure");
    assert!(
        lines.last().is_some_and(|l| l.contains(&error.message)),
        "{what}: the platform's line comes last:\n{}",
        r.log
    );
    assert!(
        logged < printed && printed < stderr,
        "{what}: in the order written:\n{}",
        r.log
    );
    for line in &lines {
        fnhost_e2e::assert_log_prefix(line, &r.request_id);
    }
}

/// A handler that logged through the context and printed, then timed out,
/// crashed or ran out of memory, showed only the platform's line: every
/// line it wrote before the kill was lost (the worker's log buffer died
/// with it; C stdio held printf's). Rust and C here, Go in go_plugins.rs.
#[test]
fn a_killed_calls_log_keeps_every_line_written_before_the_end() {
    let rt = runtime();
    let rust = rt
        .load(
            isolated("misbehaving.LogThen")
                .timeout(Duration::from_secs(1))
                .memory_mb(128),
        )
        .unwrap();
    let c = {
        let dir = fnhost_e2e::scratch("iso-log_then");
        fnhost_e2e::compile_fixture("log_then", &dir);
        rt.load(
            FunctionConfig::new("log_then.Handler", &dir)
                .isolation(Isolation::Process)
                .timeout(Duration::from_secs(1))
                .memory_mb(128),
        )
        .unwrap()
    };
    for (language, f) in [("rust", &rust), ("c", &c)] {
        for (end, expected) in [
            ("timeout", error_type::TIMEOUT),
            ("segv", error_type::RUNTIME_EXITED),
            ("oom", ""),
        ] {
            let r = f.invoke(end.as_bytes()).unwrap();
            let (ty, message) = error(&r);
            if !expected.is_empty() {
                assert_eq!(ty, expected, "{language} {end}: {message}");
            }
            assert_kept_before_the_end(&r, &format!("{language} {end}"));
        }
    }
    host_healthy(&rt);
}

/// ABI 1.4: a worker process serves a plugin's calls from the thread its
/// `fnhost_start_thread` started, and in process the library's worker
/// threads are its own (Go's way to keep calls off foreign threads),
/// sandboxed or not; a plugin that declines gets the host's threads, a
/// 1.3 plugin's function of that name is never called, and a call on the
/// caller's own thread stays there.
#[test]
fn calls_run_on_the_threads_a_1_4_plugin_starts() {
    let dir = fnhost_e2e::scratch("own-thread");
    for name in ["own_thread", "own_thread_declines", "own_thread_1_3"] {
        fnhost_e2e::compile_fixture(name, &dir);
    }
    let config = |entry: &str, isolation| FunctionConfig::new(entry, &dir).isolation(isolation);
    for rt in [runtime(), runtime_unsandboxed()] {
        for isolation in [Isolation::Process, Isolation::InProcess] {
            let own = rt.load(config("own_thread.Handler", isolation)).unwrap();
            for _ in 0..3 {
                let r = own.invoke(b"x").unwrap();
                assert_eq!(
                    r.outcome.body_bytes(),
                    b"plugin-thread",
                    "{isolation:?}: {:?}",
                    r.outcome
                );
            }
            for entry in ["own_thread_declines.Handler", "own_thread_1_3.Handler"] {
                let f = rt.load(config(entry, isolation)).unwrap();
                let r = f.invoke(b"x").unwrap();
                assert_eq!(
                    r.outcome.body_bytes(),
                    b"host-thread",
                    "{entry} {isolation:?}: {:?}",
                    r.outcome
                );
            }
        }
        let own = rt
            .load(config("own_thread.Handler", Isolation::InProcess))
            .unwrap();
        assert_eq!(
            own.invoke_on_current_thread(b"x")
                .unwrap()
                .outcome
                .body_bytes(),
            b"host-thread"
        );
        // Concurrent calls: the pool grows on the plugin's threads.
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let own = own.clone();
                std::thread::spawn(move || own.invoke(b"x").unwrap().outcome.body_bytes().to_vec())
            })
            .collect();
        for call in calls {
            assert_eq!(call.join().unwrap(), b"plugin-thread");
        }
        host_healthy(&rt);
    }
}

/// An initializer that writes a stray byte to the worker's socket (an
/// outside attack found it): the host misread the worker's `Ready` frame's
/// length and waited for bytes that never came, holding the caller 10 s
/// past the initializer's timeout. The frame is refused as soon as it is
/// read: the call fails at once with an initialization error, and the
/// host serves on.
#[test]
fn a_stray_byte_on_the_workers_socket_fails_its_start_at_once() {
    let rt = runtime();
    let dir = fnhost_e2e::scratch("iso-stray_byte");
    fnhost_e2e::compile_fixture("stray_byte", &dir);
    let f = rt
        .load(
            FunctionConfig::new("stray_byte.Handler", &dir)
                .isolation(Isolation::Process)
                .initializer("stray_byte.Init")
                .timeout(Duration::from_secs(1)),
        )
        .unwrap();
    let started = Instant::now();
    let result = f.invoke(b"").unwrap();
    let took = started.elapsed();
    let (ty, msg) = error(&result);
    assert_eq!(ty, error_type::INITIALIZATION, "{msg}");
    assert!(msg.contains("not a worker frame"), "{msg}");
    // The bug held the call 11 s and more (the initializer's 1 s and 10 s
    // of slack); a start and its refusal take well under a second.
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    host_healthy(&rt);
}
