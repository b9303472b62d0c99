//! Invocation overhead and cold load, as ratios against baselines measured in
//! the same run:
//!
//! - `echo_1KiB`: the `echo` handler called directly in Rust (with a
//!   `TestContext`) versus through fnhost on the calling thread
//!   (`invoke_on_current_thread`), through a worker thread with deadline
//!   enforcement (`invoke`), and on the calling thread through an I/O-thread
//!   lane with deadline enforcement (`Route::start_here`, as `fnhost serve`
//!   runs a proven-short handler).
//! - `logged_1KiB`: the same for `echo.Logged` (3 context reads, 1 log line).
//! - `cold_load`: copy, open, check and initializer of a never-seen build of
//!   `testplugin` (each iteration loads a distinct library).
//!
//! Run with `scripts/bench.sh`, which builds the sample plugins in release first.

#[path = "support/worker.rs"]
mod worker;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use fnhost::dispatch::Started;
use fnhost::dispatch::{IoLane, PROBATION};
use fnhost::{FunctionConfig, Runtime, RuntimeConfig};
use fnhost_api::testing::TestContext;

type Handler = fn(&[u8], &fnhost_api::Context) -> Result<Vec<u8>, fnhost_api::HandlerError>;

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

fn invocation(c: &mut Criterion) {
    let dir = release_dir();
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let payload = vec![b'x'; 1024];
    let cases: [(&str, &str, Handler); 2] = [
        ("echo_1KiB", "echo.Handler", echo::handler),
        ("logged_1KiB", "echo.Logged", echo::logged),
    ];
    for (group, entry, direct) in cases {
        let f = rt
            .load(FunctionConfig::new(entry, &dir).user_data("NAME", "bench"))
            .unwrap();
        let test = TestContext::new().user_data("NAME", "bench");
        let mut g = c.benchmark_group(group);
        g.bench_function("direct_call", |b| {
            b.iter(|| black_box(direct(black_box(&payload), test.context()).unwrap()))
        });
        g.bench_function("fnhost_current_thread", |b| {
            b.iter(|| black_box(f.invoke_on_current_thread(black_box(&payload)).unwrap()))
        });
        g.bench_function("fnhost_worker_thread", |b| {
            b.iter(|| black_box(f.invoke(black_box(&payload)).unwrap()))
        });
        let here = lane_route(&rt, entry, &dir, group);
        g.bench_function("fnhost_io_lane_here", |b| {
            b.iter(|| black_box(here.call(black_box(payload.clone()))))
        });
        g.finish();
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

fn cold_load(c: &mut Criterion) {
    let dir = release_dir();
    let original = std::fs::read(dir.join("libtestplugin.so")).unwrap();
    let work = tempfile::tempdir_in("/dev/shm").unwrap();
    // The default cache location, as users get it.
    let rt = Runtime::new(RuntimeConfig {
        worker_executable: Some(worker::fnhost_binary()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut generation: u64 = 0;
    let mut g = c.benchmark_group("cold_load");
    // Every iteration maps one more library for good; past ~2,000 mapped
    // libraries glibc's dlopen slows down several-fold (see
    // examples/load_growth.rs), so keep this run to about a thousand loads.
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(400));
    g.bench_function(
        BenchmarkId::new("testplugin", "copy+open+check+init"),
        |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // A distinct build each time: bytes appended after the ELF
                    // image change the content address but not the code.
                    generation += 1;
                    let mut bytes = original.clone();
                    bytes.extend_from_slice(&generation.to_le_bytes());
                    std::fs::write(work.path().join("testplugin.so"), &bytes).unwrap();
                    let config = FunctionConfig::new("testplugin.Handler", work.path())
                        .initializer("testplugin.Init");
                    let start = Instant::now();
                    let f = rt.load(config).unwrap();
                    total += start.elapsed();
                    assert!(f.initializer_report().unwrap().error.is_none());
                    // The mapping stays (never unloaded); its cached file can go.
                    let _ = std::fs::remove_file(f.library().mapped_path());
                }
                total
            })
        },
    );
    g.finish();
}

criterion_group!(benches, invocation, cold_load);
criterion_main!(benches);
