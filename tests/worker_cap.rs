//! The host-wide cap on worker processes (its own test binary: the cap is
//! process-wide, so no other test may share the process).
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fnhost::{FunctionConfig, InvokeError, Isolation, Runtime, RuntimeConfig};
use fnhost_e2e::{cache_dir, eventually, fnhost_bin, plugin_dir};

fn isolated(rt: &Runtime, entry: &str, timeout: Duration) -> fnhost::Function {
    rt.load(
        FunctionConfig::new(entry, plugin_dir())
            .isolation(Isolation::Process)
            .timeout(timeout),
    )
    .unwrap()
}

#[test]
fn workers_are_capped_across_functions_idle_ones_end_first_and_the_rest_queue() {
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        max_worker_processes: 2,
        worker_queue_timeout: Duration::from_millis(400),
        ..RuntimeConfig::default()
    })
    .unwrap();
    // Each load starts one worker (its deploy-time check), left idle.
    let echo = isolated(&rt, "echo.Handler", Duration::from_secs(3));
    let test = isolated(&rt, "testplugin.Handler", Duration::from_secs(3));
    assert_eq!(rt.stats().worker_processes, 2);
    // A third function finds the cap reached: the longest-idle worker (echo's) ends.
    let sleep = Arc::new(isolated(&rt, "misbehaving.Sleep", Duration::from_secs(5)));
    assert_eq!(rt.stats().worker_processes, 2);
    assert_eq!(echo.generation().idle_worker_processes(), 0);
    assert_eq!(test.generation().idle_worker_processes(), 1);
    // Two sleepers hold both slots; a third call queues, then is refused.
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let sleep = Arc::clone(&sleep);
            std::thread::spawn(move || sleep.invoke(b"1500").unwrap())
        })
        .collect();
    // Both sleepers hold a worker: the second ended `test`'s idle one to start its own.
    assert!(
        eventually(Duration::from_secs(10), || {
            rt.stats().worker_processes == 2
                && test.generation().idle_worker_processes() == 0
                && sleep.generation().idle_worker_processes() == 0
        }),
        "the sleepers did not take both worker processes: {:?}",
        rt.stats()
    );
    let started = Instant::now();
    let refused = echo.invoke(b"late");
    assert!(
        matches!(refused, Err(InvokeError::TooManyRequests { ref reason, .. }) if reason.contains("all 2 worker processes")),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(350));
    for s in sleepers {
        assert!(s.join().unwrap().outcome.error().is_none());
    }
    // Once they finish, calls are served again within the cap.
    assert_eq!(
        echo.invoke(b"again").unwrap().outcome.body_bytes(),
        b"again"
    );
    assert!(rt.stats().worker_processes <= 2);
}
