//! Hot swap and lifecycle through the registry: swaps under load, failed
//! deploys, drain and retirement, versions, weighted aliases, instance limits,
//! idle release and reserved instances.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fnhost::{
    Alias, DeployError, FunctionConfig, InstanceConfig, InvokeError, LoadError, NotFound, Outcome,
    Runtime,
};
use fnhost_e2e::{eventually, hotswap_build, plugin_dir, runtime, scratch, write_complete};
use serde_json::Value;

/// Two directories holding builds `A` and `B` of the `hotswap` plugin.
fn builds(test: &str) -> (PathBuf, PathBuf) {
    let root = scratch(test);
    let (a, b) = (root.join("a"), root.join("b"));
    for (dir, tag) in [(&a, b'A'), (&b, b'B')] {
        std::fs::create_dir_all(dir).unwrap();
        write_complete(dir, "hotswap.so", &hotswap_build(tag, None));
    }
    (a, b)
}

fn config(dir: &PathBuf) -> FunctionConfig {
    FunctionConfig::new("hotswap.Handler", dir).initializer("hotswap.Init")
}

fn answer(rt: &Runtime, target: &str, payload: &[u8]) -> String {
    let r = rt.registry().invoke(target, payload).unwrap();
    match r.outcome {
        Outcome::Success(b) => String::from_utf8(b.bytes).unwrap(),
        Outcome::Failure(e) => panic!("{target}: {e:?}"),
    }
}

#[test]
fn swapping_200_times_under_load_loses_nothing() {
    let (a, b) = builds("swap-under-load");
    let rt = runtime();
    rt.registry().deploy(config(&a)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (rt, stop, served) = (rt.clone(), Arc::clone(&stop), Arc::clone(&served));
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match rt.registry().invoke("hotswap", b"") {
                        Ok(r) => match r.outcome {
                            Outcome::Success(body) => {
                                let text = String::from_utf8(body.bytes).unwrap();
                                if !(text.starts_with("build A") || text.starts_with("build B")) {
                                    failures.push(format!("unexpected answer {text}"));
                                }
                            }
                            Outcome::Failure(e) => failures.push(format!("{e:?}")),
                        },
                        Err(e) => failures.push(e.to_string()),
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();
    let bad_dir = scratch("swap-under-load-bad");
    std::fs::write(
        bad_dir.join("hotswap.so"),
        &hotswap_build(b'C', None)[..4096],
    )
    .unwrap();
    for i in 0..200 {
        let dir = if i % 2 == 0 { &b } else { &a };
        let d = rt.registry().deploy(config(dir)).unwrap();
        assert!(d.changed);
        if i == 100 {
            // A bad deploy in the middle changes nothing.
            let e = rt.registry().deploy(config(&bad_dir)).unwrap_err();
            assert!(
                matches!(e, DeployError::Load(LoadError::NotALibrary { .. })),
                "{e:?}"
            );
            assert_eq!(
                rt.registry().function("hotswap").unwrap().latest.id(),
                d.generation.id()
            );
        }
    }
    // The last deploy (i = 199) installed A: from now on only A answers.
    for _ in 0..200 {
        assert!(answer(&rt, "hotswap", b"").starts_with("build A"));
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        served.load(Ordering::Relaxed) > 200,
        "the load ran during the swaps"
    );
    let stats = rt.registry().generation_stats();
    assert_eq!(stats.live, 1);
    assert_eq!(stats.draining, 0);
    assert_eq!(
        stats.retired, 200,
        "every replaced generation retired once drained"
    );
}

#[test]
fn an_invocation_in_flight_finishes_on_the_old_generation() {
    let (a, b) = builds("drain");
    let rt = runtime();
    let first = rt.registry().deploy(config(&a)).unwrap().generation;
    let slow = {
        let rt = rt.clone();
        std::thread::spawn(move || answer(&rt, "hotswap", b"sleep:400"))
    };
    while first.in_flight() == 0 {
        std::thread::yield_now();
    }
    rt.registry().deploy(config(&b)).unwrap();
    assert!(
        answer(&rt, "hotswap", b"").starts_with("build B"),
        "new invocations use the new code"
    );
    let stats = rt.registry().generation_stats();
    assert_eq!((stats.live, stats.draining), (1, 1), "{stats:?}");
    assert!(!first.is_live());
    assert!(
        slow.join().unwrap().starts_with("build A"),
        "the running call finished on the old code"
    );
    let stats = rt.registry().generation_stats();
    assert_eq!(
        (stats.live, stats.draining, stats.retired),
        (1, 0, 1),
        "{stats:?}"
    );
}

#[test]
fn failed_deploys_leave_the_previous_generation_serving() {
    let (a, _) = builds("failed-deploys");
    let rt = runtime();
    let reg = rt.registry();
    let serving = reg.deploy(config(&a)).unwrap().generation;
    let plugins = plugin_dir();
    let attempts: Vec<(FunctionConfig, &str)> = vec![
        (
            FunctionConfig::new("misbehaving.Error", &plugins)
                .name("hotswap")
                .initializer("misbehaving.InitFail"),
            "database unreachable",
        ),
        (
            FunctionConfig::new("misbehaving.Error", &plugins)
                .name("hotswap")
                .initializer("misbehaving.InitPanic"),
            "initializer panicked on purpose",
        ),
        (
            FunctionConfig::new("hotswap.Missing", &a),
            "no handler `Missing`",
        ),
        (
            FunctionConfig::new("hotswap.Handler", &a).memory_mb(100),
            "memory size 100 MB",
        ),
        (
            FunctionConfig::new("echo.Handler", scratch("empty-dir")).name("hotswap"),
            "no library for `echo`",
        ),
    ];
    for (config, expected) in attempts {
        let e = reg.deploy(config).unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
        assert_eq!(reg.function("hotswap").unwrap().latest.id(), serving.id());
        assert!(answer(&rt, "hotswap", b"").starts_with("build A"));
    }
    // Identical code and configuration: a no-op.
    let again = reg.deploy(config(&a)).unwrap();
    assert!(!again.changed);
    assert_eq!(again.generation.id(), serving.id());
}

#[test]
fn versions_are_immutable_and_aliases_route_by_weight() {
    let (a, b) = builds("versions");
    let rt = runtime();
    let reg = rt.registry();
    reg.deploy(config(&a)).unwrap();
    let v1 = reg
        .publish_version("hotswap", Some("v1"), "first", None)
        .unwrap();
    assert_eq!(
        v1.digest,
        reg.function("hotswap")
            .unwrap()
            .latest
            .library()
            .digest()
            .to_hex()
    );
    reg.deploy(config(&b)).unwrap();
    let e = reg
        .publish_version("hotswap", None, "", Some(&v1.digest))
        .unwrap_err();
    assert!(
        matches!(e, DeployError::Conflict(_)),
        "a stale digest is refused: {e}"
    );
    let v2 = reg
        .publish_version("hotswap", None, "second", None)
        .unwrap();
    assert_eq!(v2.version, "v2");
    assert!(matches!(
        reg.publish_version("hotswap", Some("v1"), "", None),
        Err(DeployError::Conflict(_))
    ));

    assert!(answer(&rt, "hotswap:v1", b"").starts_with("build A"));
    assert!(answer(&rt, "hotswap:v2", b"").starts_with("build B"));
    assert!(answer(&rt, "hotswap", b"").starts_with("build B"));
    assert!(answer(&rt, "hotswap:latest", b"").starts_with("build B"));

    reg.create_alias("hotswap", Alias::new("canary", "v1").with_weight("v2", 10))
        .unwrap();
    let mut b_answers = 0;
    for _ in 0..10_000 {
        if answer(&rt, "hotswap:canary", b"").starts_with("build B") {
            b_answers += 1;
        }
    }
    // 10 % of 10,000: mean 1000, standard deviation 30; allow 4 sigma.
    assert!(
        (880..=1120).contains(&b_answers),
        "{b_answers} of 10000 went to v2"
    );

    let bad = [
        Alias::new("canary2", "v9"),
        Alias::new("canary3", "v1").with_weight("v2", 101),
        Alias::new("v2", "v1"),
        Alias::new("latest", "v1"),
    ];
    for alias in bad {
        assert!(
            reg.create_alias("hotswap", alias.clone()).is_err(),
            "{alias:?} accepted"
        );
    }
    assert!(matches!(
        reg.delete_version("hotswap", "v2"),
        Err(DeployError::Conflict(_))
    ));
    reg.update_alias("hotswap", Alias::new("canary", "v1"))
        .unwrap();
    reg.delete_version("hotswap", "v2").unwrap();
    assert!(matches!(
        rt.registry().invoke("hotswap:v2", b""),
        Err(InvokeError::NotFound(NotFound::Alias { .. }))
    ));
    assert!(matches!(
        rt.registry().invoke("nothing", b""),
        Err(InvokeError::NotFound(NotFound::Function(_)))
    ));
    reg.delete_alias("hotswap", "canary").unwrap();
    reg.delete_function("hotswap").unwrap();
    assert!(reg.function("hotswap").is_err());
}

#[test]
fn the_context_reports_the_version_and_alias_actually_served() {
    let rt = runtime();
    let reg = rt.registry();
    reg.deploy(FunctionConfig::new("testplugin.Handler", plugin_dir()).name("ctx-routes"))
        .unwrap();
    reg.publish_version("ctx-routes", Some("v1"), "", None)
        .unwrap();
    reg.create_alias("ctx-routes", Alias::new("prod", "v1"))
        .unwrap();
    let fields = |target: &str| -> (String, String) {
        let r = reg.invoke(target, b"{}").unwrap();
        let v: Value = serde_json::from_slice(&r.outcome.body_bytes()).unwrap();
        (
            v["version"].as_str().unwrap().into(),
            v["alias"].as_str().unwrap().into(),
        )
    };
    assert_eq!(fields("ctx-routes"), ("latest".into(), "".into()));
    assert_eq!(fields("ctx-routes:v1"), ("v1".into(), "".into()));
    assert_eq!(fields("ctx-routes:prod"), ("v1".into(), "prod".into()));
}

#[test]
fn the_concurrency_limit_queues_then_refuses() {
    let (a, _) = builds("concurrency");
    let rt = runtime();
    let limits = InstanceConfig {
        concurrency_per_instance: 1,
        max_instances: 2,
        max_queued: 1,
        ..InstanceConfig::default()
    };
    let g = rt
        .registry()
        .deploy(config(&a).instances(limits).timeout(Duration::from_secs(5)))
        .unwrap()
        .generation;
    let wait_for = |what: &dyn Fn(fnhost::InstanceStats) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !what(g.instance_stats()) {
            assert!(Instant::now() < deadline, "{:?}", g.instance_stats());
            std::thread::yield_now();
        }
    };
    let call = || {
        let rt = rt.clone();
        std::thread::spawn(move || {
            rt.registry()
                .invoke("hotswap", b"sleep:400")
                .map(|r| r.outcome.is_success())
        })
    };
    // Two run (one per instance), the third queues, the fourth finds the queue full.
    let first = call();
    wait_for(&|s| s.active == 1);
    let second = call();
    wait_for(&|s| s.active == 2);
    let third = call();
    wait_for(&|s| s.queued == 1);
    let e = rt.registry().invoke("hotswap", b"sleep:400").unwrap_err();
    match &e {
        InvokeError::TooManyRequests { reason, .. } => {
            assert!(
                reason.contains("1 invocations are already queued"),
                "{reason}"
            )
        }
        other => panic!("expected TooManyRequests, got {other:?}"),
    }
    for c in [first, second, third] {
        assert_eq!(
            c.join().unwrap(),
            Ok(true),
            "the queued call ran once a slot freed"
        );
    }
    assert_eq!(g.instance_stats().instances, 2);

    // A queued invocation waits at most the function's timeout.
    let g = rt
        .registry()
        .deploy(
            config(&a)
                .instances(InstanceConfig {
                    max_queued: 5,
                    ..limits
                })
                .timeout(Duration::from_millis(300)),
        )
        .unwrap()
        .generation;
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let rt = rt.clone();
            std::thread::spawn(move || {
                rt.registry()
                    .invoke("hotswap", b"sleep:1000")
                    .map(|r| r.outcome.error().cloned())
            })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(10), || g.instance_stats().active == 2),
        "both instances busy: {:?}",
        g.instance_stats()
    );
    let start = Instant::now();
    let e = rt.registry().invoke("hotswap", b"").unwrap_err();
    assert!(matches!(e, InvokeError::TooManyRequests { .. }), "{e:?}");
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );
    for b in busy {
        assert_eq!(b.join().unwrap().unwrap().unwrap().error_type, "timeout");
    }
}

#[test]
fn idle_instances_are_released_and_reinitialized_on_next_use() {
    let (a, _) = builds("idle");
    let rt = runtime();
    let limits = InstanceConfig {
        idle_timeout: Duration::from_millis(100),
        ..InstanceConfig::default()
    };
    let g = rt
        .registry()
        .deploy(config(&a).instances(limits))
        .unwrap()
        .generation;
    let inits = |s: &str| -> u64 { s.rsplit(' ').next().unwrap().parse().unwrap() };
    let before = inits(&answer(&rt, "hotswap", b""));
    assert_eq!(g.instance_stats().created, 1);
    assert!(
        eventually(Duration::from_secs(10), || {
            g.instance_stats().released_idle > 0
        }),
        "the idle instance was not released: {:?}",
        g.instance_stats()
    );
    let after = inits(&answer(&rt, "hotswap", b""));
    let stats = g.instance_stats();
    assert_eq!(stats.released_idle, 1, "{stats:?}");
    assert_eq!(stats.created, 2, "a new instance was created");
    assert!(
        after > before,
        "the initializer ran again ({before} -> {after})"
    );
}

#[test]
fn reserved_instances_are_initialized_at_deploy_and_kept() {
    let (a, _) = builds("reserved");
    let rt = runtime();
    let limits = InstanceConfig {
        reserved_instances: 3,
        idle_timeout: Duration::from_millis(10),
        ..InstanceConfig::default()
    };
    let g = rt
        .registry()
        .deploy(config(&a).instances(limits))
        .unwrap()
        .generation;
    assert_eq!(g.instance_stats().instances, 3);
    assert_eq!(g.instance_stats().created, 3);
    // Fixed wait: past the 10 ms idle timeout, which must not release reserved instances.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rt.registry().release_idle_instances(), 0);
    assert_eq!(g.instance_stats().instances, 3);
}

#[test]
fn the_watcher_deploys_rebuilds_and_never_a_half_written_file() {
    use fnhost::watch::{WatchEvent, WatchOptions};
    let dir = scratch("watch");
    write_complete(&dir, "libhotswap.so", &hotswap_build(b'A', None));
    let rt = runtime();
    let (tx, rx) = std::sync::mpsc::channel();
    let options = WatchOptions {
        debounce: Duration::from_millis(100),
        initializer: Some("Init".into()),
        ..WatchOptions::default()
    };
    let _watcher = rt
        .watch(&dir, options, move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
    let next = |what: &str, matches: &dyn Fn(&WatchEvent) -> bool| -> WatchEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(e) if matches(&e) => return e,
                Ok(_) => continue,
                Err(_) => panic!("no {what} event"),
            }
        }
    };
    let deployed = |e: &WatchEvent| matches!(e, WatchEvent::Deployed { changed: true, .. });
    next("initial deploy", &deployed);
    assert!(answer(&rt, "hotswap", b"").starts_with("build A"));
    let init = rt
        .registry()
        .function("hotswap")
        .unwrap()
        .latest
        .config()
        .initializer
        .clone();
    assert_eq!(
        init.as_deref(),
        Some("hotswap.Init"),
        "the library's Init was picked up"
    );

    // A half-written rebuild (written in place, cut short) is not deployed.
    let b = hotswap_build(b'B', None);
    std::fs::write(dir.join("libhotswap.so"), &b[..b.len() / 2]).unwrap();
    let e = next("incomplete", &|e| {
        matches!(e, WatchEvent::Incomplete { .. })
    });
    assert!(format!("{e:?}").contains("file has"), "{e:?}");
    assert!(answer(&rt, "hotswap", b"").starts_with("build A"));

    // Completed, it is.
    std::fs::write(dir.join("libhotswap.so"), &b).unwrap();
    next("rebuild deploy", &deployed);
    assert!(answer(&rt, "hotswap", b"").starts_with("build B"));

    // A complete library that fails to deploy is reported; B keeps serving.
    std::fs::copy(
        plugin_dir().join("libmisbehaving.so"),
        dir.join("libhotswap.so"),
    )
    .unwrap();
    let e = next("failed deploy", &|e| matches!(e, WatchEvent::Failed { .. }));
    assert!(format!("{e:?}").contains("no handler `Handler`"), "{e:?}");
    assert!(answer(&rt, "hotswap", b"").starts_with("build B"));
}

#[test]
fn fnhost_watch_prints_each_deploy_and_invokes_after_it() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = scratch("watch-cli");
    write_complete(&dir, "hotswap.so", &hotswap_build(b'A', None));
    let mut child = Command::new(fnhost_e2e::fnhost_bin())
        .args([
            "watch",
            dir.to_str().unwrap(),
            "--invoke",
            "hotswap.Handler",
            "--data",
            "\"go\"",
        ])
        .arg("--cache-dir")
        .arg(fnhost_e2e::cache_dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut wait_for = |needle: &str| {
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains(needle) {
                return line;
            }
        }
        panic!("fnhost watch ended before printing {needle}");
    };
    wait_for("deployed hotswap");
    assert!(wait_for("invoked hotswap.Handler").contains("build A"));
    write_complete(&dir, "hotswap.so", &hotswap_build(b'B', None));
    wait_for("deployed hotswap");
    assert!(wait_for("invoked hotswap.Handler").contains("build B"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `deploy` once looked a function up, then took its change lock: a delete
/// in between removed the entry, and the deploy swapped a live generation
/// into the orphan and answered `changed: true` for a function that no
/// longer existed (its generation then stayed "live" for good). Deploys,
/// deletes, publishes, aliases and invocations from many threads: when they
/// end and the function is deleted, no generation is left live, and every
/// successful deploy was, for a moment, what the registry served.
#[test]
fn deploy_and_delete_from_many_threads_leave_no_orphan() {
    let (a, b) = builds("deploy-delete-race");
    let rt = runtime();
    let deadline = Instant::now() + Duration::from_secs(4);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (rt, a, b) = (rt.clone(), a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut counts = [0u32; 4];
                let mut i = 0u32;
                while Instant::now() < deadline {
                    i += 1;
                    let dir = if (i + t).is_multiple_of(2) { &a } else { &b };
                    match t % 3 {
                        // Deploy (alternating builds: a real swap each time).
                        0 => {
                            if let Ok(d) = rt.registry().deploy(config(dir)) {
                                counts[0] += 1;
                                if d.changed {
                                    counts[1] += 1;
                                }
                            }
                        }
                        // Delete, publish, alias.
                        1 => {
                            let _ = match i % 3 {
                                0 => rt.registry().delete_function("hotswap"),
                                1 => rt
                                    .registry()
                                    .publish_version("hotswap", None, "", None)
                                    .map(drop),
                                _ => rt
                                    .registry()
                                    .create_alias("hotswap", Alias::new(format!("a{i}"), "latest"))
                                    .map(drop),
                            };
                            counts[2] += 1;
                        }
                        // Invoke: an answer from either build, or not found.
                        _ => match rt.registry().invoke("hotswap", b"") {
                            Ok(r) => {
                                assert!(r.outcome.is_success(), "{:?}", r.outcome);
                                counts[3] += 1;
                            }
                            Err(InvokeError::NotFound(_)) => {}
                            Err(e) => panic!("{e}"),
                        },
                    }
                }
                counts
            })
        })
        .collect();
    let mut totals = [0u32; 4];
    for t in threads {
        for (total, n) in totals.iter_mut().zip(t.join().unwrap()) {
            *total += n;
        }
    }
    assert!(
        totals[1] > 10 && totals[2] > 10 && totals[3] > 10,
        "{totals:?}"
    );
    let _ = rt.registry().delete_function("hotswap");
    assert!(rt.registry().function("hotswap").is_err());
    let stats = rt.registry().generation_stats();
    assert_eq!(
        (stats.live, stats.draining),
        (0, 0),
        "generations left serving a deleted function ({totals:?})"
    );
}

/// `idle_timeout` was enforced only when the next call to the same function
/// arrived (or something called `release_idle_instances`): with no traffic,
/// idle instances and worker processes lived on. The runtime's housekeeping
/// thread ends them, with no call and no stats read.
#[test]
fn idle_instances_and_workers_end_without_any_traffic() {
    let (a, _) = builds("idle-no-traffic");
    let rt = runtime();
    let limits = InstanceConfig {
        idle_timeout: Duration::from_millis(150),
        ..InstanceConfig::default()
    };
    let in_process = rt
        .registry()
        .deploy(config(&a).instances(limits))
        .unwrap()
        .generation;
    answer(&rt, "hotswap", b"");
    let isolated = rt
        .registry()
        .deploy(
            FunctionConfig::new("echo.Handler", plugin_dir())
                .isolation(fnhost::Isolation::Process)
                .instances(limits),
        )
        .unwrap()
        .generation;
    answer(&rt, "echo", b"x");
    assert_eq!(isolated.idle_worker_processes(), 1);
    assert!(
        eventually(Duration::from_secs(10), || {
            in_process.instance_stats().released_idle == 1 && isolated.idle_worker_processes() == 0
        }),
        "idle for 10 s past a 150 ms idle timeout: {:?}, {} idle workers",
        in_process.instance_stats(),
        isolated.idle_worker_processes()
    );
}

/// A replaced generation with a call in flight retired only at the next
/// registry change or `Runtime::stats()` (a getter with side effects). It
/// now retires when its last call ends; `stats()` changes nothing.
#[test]
fn a_drained_generation_retires_when_its_last_call_ends() {
    let (a, b) = builds("retire-on-drain");
    let rt = runtime();
    let old = rt.registry().deploy(config(&a)).unwrap().generation;
    let old_id = old.id();
    let watch = Arc::downgrade(&old);
    drop(old);
    let call = {
        let rt = rt.clone();
        std::thread::spawn(move || answer(&rt, "hotswap", b"sleep:400"))
    };
    assert!(eventually(Duration::from_secs(10), || rt
        .registry()
        .function("hotswap")
        .unwrap()
        .latest
        .in_flight()
        == 1));
    let d = rt.registry().deploy(config(&b)).unwrap();
    assert_eq!(d.replaced.as_ref().map(|g| g.id()), Some(old_id));
    drop(d);
    let stats = rt.stats().generations;
    assert_eq!((stats.live, stats.draining), (1, 1), "{stats:?}");
    assert!(call.join().unwrap().starts_with("build A"));
    // No deploy, no stats read: the call's end retires the generation.
    assert!(
        eventually(Duration::from_secs(10), || watch.upgrade().is_none()),
        "the drained generation is still held"
    );
    let stats = rt.stats().generations;
    assert_eq!((stats.live, stats.draining), (1, 0), "{stats:?}");
}
