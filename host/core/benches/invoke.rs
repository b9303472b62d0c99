//! Invocation overhead, as ratios against baselines measured in the same
//! interleaved rounds (see `support/rounds.rs`):
//!
//! - `echo_1KiB`: the `echo` handler called directly in Rust (with a
//!   `TestContext`, the baseline) versus through fnhost on the calling
//!   thread (`invoke_on_current_thread`), through a worker thread with
//!   deadline enforcement (`invoke`), and on the calling thread through an
//!   I/O-thread lane with deadline enforcement (`Route::start_here`, as
//!   `fnhost serve` runs a proven-short handler); and a bare hand-off of
//!   the same call to another thread and back over two channels
//!   (`bare_thread_handoff`), the floor of any worker-thread path.
//! - `logged_1KiB`: the same for `echo.Logged` (3 context reads, 1 log line).
//! - `handoff_latency`: per-call median and p99 of the worker-thread path
//!   and the bare hand-off (`scripts/bench.sh` runs it in 10 processes in
//!   a row to show whether the path is steady).
//!
//! Cold loads are in `cold_load.rs`. Run with `scripts/bench.sh`, which
//! builds the sample plugins in release first.
// A benchmark: a failed assumption is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/handoff.rs"]
mod handoff;
#[path = "support/rounds.rs"]
mod rounds;
#[path = "support/worker.rs"]
mod worker;

use std::path::{Path, PathBuf};

use criterion::black_box;
use fnhost::dispatch::Started;
use fnhost::dispatch::{IoLane, PROBATION};
use fnhost::{FunctionConfig, Runtime, RuntimeConfig};
use fnhost_api::testing::TestContext;
use rounds::{each, Case};

use handoff::{Handler, Handoff};

/// A named case of the callgrind mode.
type Measured<'a> = (&'static str, Box<dyn FnMut() + 'a>);

fn release_dir() -> PathBuf {
    // target/release/deps/invoke-<hash>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    for lib in ["libecho.so", "libtestplugin.so"] {
        assert!(
            dir.join(lib).is_file(),
            "{} missing: run scripts/bench.sh (it builds the sample plugins in release first)",
            dir.join(lib).display()
        );
    }
    dir
}

fn runtime(cache: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.to_owned()),
        worker_executable: Some(worker::fnhost_binary()),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// The calls whose instructions `scripts/bench-instructions.sh` counts:
/// callgrind collects only inside this function (`--toggle-collect`).
#[inline(never)]
fn callgrind_measured(n: u64, f: &mut dyn FnMut()) {
    for _ in 0..n {
        f();
    }
}

/// Under `FNHOST_BENCH_CALLGRIND=<group>/<case>`: warms the case up, then
/// runs it 10,000 times (or `FNHOST_BENCH_CALLS`) inside [`callgrind_measured`].
fn callgrind(id: &str, cases: &mut [Measured<'_>]) {
    // `FNHOST_BENCH_CALLS` runs more (to profile one case with `perf`).
    let calls: u64 = std::env::var("FNHOST_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let Some((_, f)) = cases.iter_mut().find(|(name, _)| *name == id) else {
        panic!("no case {id}");
    };
    for _ in 0..1000 {
        f();
    }
    callgrind_measured(calls, f);
    println!("{id}: {calls} calls");
}

fn main() {
    let dir = release_dir();
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let payload = vec![b'x'; 1024];
    if let Ok(id) = std::env::var("FNHOST_BENCH_CALLGRIND") {
        let test = TestContext::new().user_data("NAME", "bench");
        let echo = rt
            .load(FunctionConfig::new("echo.Handler", &dir).user_data("NAME", "bench"))
            .unwrap();
        let logged = rt
            .load(FunctionConfig::new("echo.Logged", &dir).user_data("NAME", "bench"))
            .unwrap();
        let handoff = Handoff::new(echo::handler);
        let mut cases: Vec<Measured<'_>> = vec![
            (
                "echo_1KiB/direct_call",
                Box::new(|| drop(black_box(echo::handler(&payload, test.context())))),
            ),
            (
                "echo_1KiB/fnhost_current_thread",
                Box::new(|| drop(black_box(echo.invoke_on_current_thread(&payload)))),
            ),
            (
                "logged_1KiB/direct_call",
                Box::new(|| drop(black_box(echo::logged(&payload, test.context())))),
            ),
            (
                "logged_1KiB/fnhost_current_thread",
                Box::new(|| drop(black_box(logged.invoke_on_current_thread(&payload)))),
            ),
            (
                "echo_1KiB/fnhost_worker_thread",
                Box::new(|| drop(black_box(echo.invoke(&payload)))),
            ),
            (
                "echo_1KiB/bare_thread_handoff",
                Box::new(|| drop(black_box(handoff.call(&payload)))),
            ),
        ];
        return callgrind(&id, &mut cases);
    }
    let cases: [(&str, &str, Handler); 2] = [
        ("echo_1KiB", "echo.Handler", echo::handler),
        ("logged_1KiB", "echo.Logged", echo::logged),
    ];
    for (group, entry, direct) in cases {
        if !rounds::selected(group) {
            continue;
        }
        let f = rt
            .load(FunctionConfig::new(entry, &dir).user_data("NAME", "bench"))
            .unwrap();
        let test = TestContext::new().user_data("NAME", "bench");
        let here = lane_route(&rt, entry, &dir, group);
        let handoff = Handoff::new(direct);
        let mut cases = vec![
            Case::new(
                "direct_call",
                each(|| {
                    black_box(direct(black_box(&payload), test.context()).unwrap());
                }),
            ),
            Case::new(
                "fnhost_current_thread",
                each(|| {
                    black_box(f.invoke_on_current_thread(black_box(&payload)).unwrap());
                }),
            ),
            Case::new(
                "fnhost_worker_thread",
                each(|| {
                    black_box(f.invoke(black_box(&payload)).unwrap());
                }),
            ),
            Case::new(
                "fnhost_io_lane_here",
                each(|| {
                    black_box(here.call(black_box(payload.clone())));
                }),
            ),
        ];
        if group == "echo_1KiB" {
            cases.insert(
                1,
                Case::new(
                    "bare_thread_handoff",
                    each(|| {
                        black_box(handoff.call(black_box(&payload)));
                    }),
                ),
            );
        }
        let m = rounds::run(group, cases);
        if group == "echo_1KiB" {
            let to_handoff = rounds::ratio(&m[3], &m[1]);
            println!(
                "fnhost_worker_thread / bare_thread_handoff: {:.2}x ({:.2}-{:.2})",
                to_handoff.0, to_handoff.1, to_handoff.2
            );
        }
    }
    if rounds::selected("handoff_latency") {
        let f = rt
            .load(FunctionConfig::new("echo.Handler", &dir).user_data("NAME", "bench"))
            .unwrap();
        let handoff = Handoff::new(echo::handler);
        let samples = 20_000;
        // Alternate the two in blocks so both see the same machine.
        let (mut w50, mut w99, mut b50, mut b99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..5 {
            let (m, p) = rounds::latency(|| drop(black_box(f.invoke(&payload).unwrap())), samples);
            w50.push(m);
            w99.push(p);
            let (m, p) = rounds::latency(|| drop(black_box(handoff.call(&payload))), samples);
            b50.push(m);
            b99.push(p);
        }
        let (w50, w99, b50, b99) = (
            rounds::median(&mut w50),
            rounds::median(&mut w99),
            rounds::median(&mut b50),
            rounds::median(&mut b99),
        );
        println!(
            "handoff_latency: fnhost_worker_thread median {} p99 {}; bare_thread_handoff median {} p99 {}",
            rounds::human(w50),
            rounds::human(w99),
            rounds::human(b50),
            rounds::human(b99)
        );
        rounds::save(
            "handoff_latency",
            5,
            &[],
            &[
                ("worker_thread_median_ns", w50),
                ("worker_thread_p99_ns", w99),
                ("bare_handoff_median_ns", b50),
                ("bare_handoff_p99_ns", b99),
            ],
        );
    }
}

/// A deployed function whose calls run on the calling thread through an
/// I/O-thread lane (`Route::start_here`, what `fnhost serve` does): the
/// lane's bookkeeping (slot, deadline watch, shared invocation state) on
/// top of a call on the current thread.
struct LaneRoute {
    route: fnhost::Route,
    lane: IoLane,
}

impl LaneRoute {
    fn call(&self, payload: Vec<u8>) -> fnhost::InvokeResult {
        self.start(payload).1
    }

    /// The result, and whether the call ran on this thread: a call
    /// preempted for over 100 µs sends the handler back to probation, on
    /// worker threads meanwhile (rare here, but possible on a busy machine).
    fn start(&self, payload: Vec<u8>) -> (bool, fnhost::InvokeResult) {
        match fnhost::dispatch::start_here(&self.route, payload, &self.lane, Box::new(drop)) {
            Ok(Started::Done(result)) => (true, result),
            Ok(Started::Running(pending)) => {
                while !pending.has_completed() {
                    std::hint::spin_loop();
                }
                (false, pending.finish())
            }
            other => panic!("{other:?}"),
        }
    }
}

fn lane_route(rt: &Runtime, entry: &str, dir: &Path, name: &str) -> LaneRoute {
    let name = format!("lane-{name}");
    let config = FunctionConfig::new(entry, dir)
        .name(name.as_str())
        .user_data("NAME", "bench");
    rt.registry().deploy(config).unwrap();
    rt.registry().invoke(&name, b"").unwrap();
    let route = LaneRoute {
        route: rt.registry().resolve(&name).unwrap(),
        // Never given a job: calls run on the calling thread.
        lane: IoLane::new(1, drop).unwrap(),
    };
    // Probation: short calls on worker threads until it qualifies.
    for _ in 0..10 * PROBATION {
        if route.start(b"x".to_vec()).0 {
            return route;
        }
    }
    panic!("never qualified for the lane");
}
