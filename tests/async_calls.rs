//! Calls started without blocking ([`fnhost::CallHandle`]) and per-call
//! options ([`fnhost::CallOptions`]): waiting with a timeout, polling,
//! awaiting on a hand-written executor, callbacks, cancellation in process
//! (the waiting caller is answered at once, a cooperative handler reads
//! its cancellation and stops) and in a worker process (ended with it),
//! and the caller's request id, user data, sooner deadline and embedder
//! value reaching the handler and its host functions, in and out of
//! process. Fixture: `tests/fixtures/cancellable.c`.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use fnhost::{
    CallOptions, FunctionConfig, HostCallContext, HostError, InvokeError, Isolation, Runtime,
    RuntimeConfig,
};
use fnhost_e2e::{cache_dir, compile_fixture, eventually, fnhost_bin, plugin_dir, scratch};

fn config() -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        ..RuntimeConfig::default()
    }
}

fn fixture() -> std::path::PathBuf {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch("cancellable");
        compile_fixture("cancellable", &dir);
        dir
    })
    .clone()
}

fn text(result: &fnhost::InvokeResult) -> String {
    String::from_utf8_lossy(&result.outcome.body_bytes()).into_owned()
}

/// A minimal executor: no async runtime is needed to await a call.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn a_call_started_without_blocking_is_waited_polled_awaited_and_told() {
    let rt = Runtime::new(config()).unwrap();
    let echo = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()))
        .unwrap();
    let call = echo.invoke_async(b"one".to_vec(), CallOptions::default());
    assert!(call.wait(Some(Duration::from_secs(5))));
    assert_eq!(text(&call.take().unwrap().unwrap()), "one");
    assert!(call.take().is_none(), "handed out once");
    assert!(matches!(call.join(), Err(InvokeError::ResultTaken)));

    let awaited = block_on(echo.invoke_async(b"two".to_vec(), CallOptions::default()));
    assert_eq!(text(&awaited.unwrap()), "two");

    let told = Arc::new(AtomicBool::new(false));
    let call = echo.invoke_async(b"three".to_vec(), CallOptions::default());
    let (t, c) = (Arc::clone(&told), call.clone());
    call.on_complete(move || {
        assert_eq!(text(&c.take().unwrap().unwrap()), "three");
        t.store(true, Ordering::SeqCst);
    });
    assert!(eventually(Duration::from_secs(5), || told.load(Ordering::SeqCst)));
    assert!(!call.cancel(), "a finished call cannot be cancelled");

    // Through the registry; an unknown target is a handle that has ended.
    rt.registry()
        .deploy(FunctionConfig::new("echo.Handler", plugin_dir()).name("reg"))
        .unwrap();
    let r = rt
        .registry()
        .invoke_async("reg", b"four".to_vec(), CallOptions::default())
        .join()
        .unwrap();
    assert_eq!(text(&r), "four");
    let missing = rt
        .registry()
        .invoke_async("nope", b"x".to_vec(), CallOptions::default());
    assert!(missing.is_finished());
    assert!(matches!(missing.join(), Err(InvokeError::NotFound(_))));
}

#[test]
fn cancelling_an_in_process_call_answers_at_once_and_the_handler_can_stop() {
    let rt = Runtime::new(config()).unwrap();
    let f = rt
        .load(FunctionConfig::new("cancellable.Wait", fixture()).timeout(Duration::from_secs(20)))
        .unwrap();
    let call = f.invoke_async(Vec::new(), CallOptions::default());
    assert!(
        !call.wait(Some(Duration::from_millis(100))),
        "still running"
    );
    let cancelled_at = Instant::now();
    assert!(call.cancel());
    assert!(!call.cancel(), "once");
    let r = call.join().unwrap();
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        cancelled_at.elapsed()
    );
    let e = r.outcome.error().expect("cancelled");
    assert_eq!(e.error_type, "Cancelled");
    // The handler read its cancellation and returned: no runaway is left.
    assert!(
        eventually(Duration::from_secs(5), || rt.stats().runaway_invocations
            == 0),
        "{:?}",
        rt.stats()
    );
    assert_eq!(rt.stats().timeouts, 0, "a cancel is not a timeout");
    // And the function serves on: the next call runs to its own (short)
    // deadline, where the handler stops, or is answered at it, whichever
    // comes first on a busy machine.
    let next = f
        .invoke_async(
            Vec::new(),
            CallOptions::default().timeout(Duration::from_millis(50)),
        )
        .join()
        .unwrap();
    let answered = match &next.outcome {
        fnhost::Outcome::Success(_) => text(&next),
        fnhost::Outcome::Failure(e) => e.error_type.clone(),
    };
    assert!(
        ["ran out", "timeout"].contains(&answered.as_str()),
        "{answered}"
    );
}

#[test]
fn cancelling_a_call_in_a_worker_process_ends_the_worker() {
    let rt = Runtime::new(config()).unwrap();
    let f = rt
        .load(
            FunctionConfig::new("misbehaving.Spin", plugin_dir())
                .isolation(Isolation::Process)
                .timeout(Duration::from_secs(20)),
        )
        .unwrap();
    let started = f.generation().worker_process_starts();
    let pids = f.generation().idle_worker_pids();
    assert_eq!(pids.len(), 1, "the warm worker");
    let call = f.invoke_async(Vec::new(), CallOptions::default());
    assert!(!call.wait(Some(Duration::from_millis(200))));
    let cancelled_at = Instant::now();
    assert!(call.cancel());
    let r = call.join().unwrap();
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(r.outcome.error().unwrap().error_type, "Cancelled");
    // The worker that spun is gone (killed and reaped), not left spinning.
    let proc = format!("/proc/{}", pids[0]);
    assert!(
        eventually(Duration::from_secs(5), || !std::path::Path::new(&proc)
            .exists()),
        "worker {} still exists",
        pids[0]
    );
    assert_eq!(rt.stats().runaway_invocations, 0);
    // The function serves on, from a new worker.
    let next = f.invoke_async(
        Vec::new(),
        CallOptions::default().timeout(Duration::from_millis(300)),
    );
    let e = next.join().unwrap().outcome.error().cloned().unwrap();
    assert_eq!(e.error_type, "timeout");
    assert_eq!(f.generation().worker_process_starts(), started + 1);
}

#[test]
fn the_callers_options_reach_the_handler_in_and_out_of_process() {
    let rt = Runtime::new(config()).unwrap();
    for isolation in [Isolation::InProcess, Isolation::Process] {
        let load = |entry: &str| {
            rt.load(
                FunctionConfig::new(entry, fixture())
                    .isolation(isolation)
                    .timeout(Duration::from_secs(10))
                    .user_data("NAME", "function's")
                    .user_data("OTHER", "kept"),
            )
            .unwrap()
        };
        let user_data = load("cancellable.UserData");
        let id = uuid::Uuid::new_v4();
        let options = CallOptions::default()
            .request_id(id)
            .user_data("NAME", "caller's");
        let r = user_data
            .invoke_with_options(b"NAME", options.clone())
            .unwrap();
        assert_eq!(
            (text(&r), r.request_id.clone()),
            ("caller's".into(), id.to_string()),
            "{isolation:?}"
        );
        let r = user_data
            .invoke_async(b"OTHER".to_vec(), options)
            .join()
            .unwrap();
        assert_eq!(text(&r), "kept", "{isolation:?}");
        assert_eq!(text(&user_data.invoke(b"NAME").unwrap()), "function's");

        // A sooner deadline: the handler sees it, and the call ends at it.
        let remaining = load("cancellable.Remaining");
        let options = CallOptions::default().timeout(Duration::from_millis(500));
        let left: u64 = text(&remaining.invoke_with_options(b"", options).unwrap())
            .parse()
            .unwrap();
        assert!(left <= 500, "{isolation:?}: {left} ms left");
        let wait = load("cancellable.Wait");
        let started = Instant::now();
        let r = wait
            .invoke_with_options(
                b"",
                CallOptions::default().timeout(Duration::from_millis(300)),
            )
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(3), "{isolation:?}");
        let answered = match &r.outcome {
            fnhost::Outcome::Success(_) => text(&r),
            fnhost::Outcome::Failure(e) => e.error_type.clone(),
        };
        assert!(
            ["ran out", "timeout"].contains(&answered.as_str()),
            "{isolation:?}: {answered}"
        );
    }
    let f = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()))
        .unwrap();
    let big = CallOptions::default().user_data("K", "v".repeat(fnhost::MAX_CALL_USER_DATA_BYTES));
    assert!(matches!(
        f.invoke_with_options(b"", big),
        Err(InvokeError::InvalidOptions(_))
    ));
}

#[test]
fn host_functions_receive_the_callers_embedder_value() {
    let rt = Runtime::builder()
        .config(config())
        .host_function("whoami", |ctx: &HostCallContext<'_>, _: &[u8]| {
            let tenant = ctx
                .embedder_value::<String>()
                .cloned()
                .unwrap_or_else(|| "nobody".into());
            Ok::<_, HostError>(tenant.into_bytes())
        })
        .build()
        .unwrap();
    let f = rt
        .load(
            FunctionConfig::new("echo.CallHost", plugin_dir()).user_data("HOST_FUNCTION", "whoami"),
        )
        .unwrap();
    let options = CallOptions::default().embedder_value(Arc::new("acme".to_owned()));
    assert_eq!(
        text(
            &f.invoke_async(b"".to_vec(), options.clone())
                .join()
                .unwrap()
        ),
        "acme"
    );
    assert_eq!(text(&f.invoke(b"").unwrap()), "nobody");
    // From a worker process too: the value stays in the host, where the
    // host function runs.
    let isolated = rt
        .load(
            FunctionConfig::new("echo.CallHost", plugin_dir())
                .name("isolated")
                .isolation(Isolation::Process)
                .user_data("HOST_FUNCTION", "whoami"),
        )
        .unwrap();
    assert_eq!(
        text(&isolated.invoke_with_options(b"", options).unwrap()),
        "acme"
    );
}
