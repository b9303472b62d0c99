//! Hot-swap costs, against baselines in the same run:
//!
//! - `deploy`: from the deploy call to the new generation serving, for a
//!   never-seen build (copy, open, check, initializer, swap) and for a build
//!   already mapped (A/B flips: check, initializer, swap).
//!   (The pre-flight alone, against a bare spawn, is in `cold_load.rs`.)
//! - `invoke_hotswap`: invoking through the registry in steady state versus
//!   while another thread swaps the function's code every millisecond.
//!
//! Run with `scripts/bench.sh` (builds the sample plugins in release first).
// A benchmark: a failed assumption is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/worker.rs"]
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, SamplingMode};
use fnhost::{FunctionConfig, Runtime, RuntimeConfig};

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    assert!(
        dir.join("libhotswap.so").is_file(),
        "libhotswap.so missing: run scripts/bench.sh (it builds the sample plugins in release first)"
    );
    dir
}

#[path = "support/hotswap.rs"]
mod hotswap;
use hotswap::put;

/// The release `hotswap` plugin with build tag `tag` (and a unique suffix).
fn build(tag: u8, suffix: Option<u64>) -> Vec<u8> {
    hotswap::build(
        &std::fs::read(release_dir().join("libhotswap.so")).unwrap(),
        tag,
        suffix,
    )
}

fn config(dir: &Path) -> FunctionConfig {
    FunctionConfig::new("hotswap.Handler", dir).initializer("hotswap.Init")
}

fn deploy(c: &mut Criterion) {
    let rt = Runtime::new(RuntimeConfig {
        worker_executable: Some(worker::fnhost_binary()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let work = tempfile::tempdir_in("/dev/shm").unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    for (dir, tag) in [(&a, b'A'), (&b, b'B')] {
        std::fs::create_dir_all(dir).unwrap();
        put(dir, &build(tag, None));
    }
    rt.registry().deploy(config(&a)).unwrap();
    let fresh = work.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let mut g = c.benchmark_group("deploy");
    // Each never-seen build stays mapped for good: keep the count modest
    // (see examples/load_growth.rs).
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(500));
    let mut n = 0u64;
    g.bench_function("new_build_to_serving", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                put(&fresh, &build(b'N', Some(n)));
                let start = Instant::now();
                let d = rt.registry().deploy(config(&fresh)).unwrap();
                total += start.elapsed();
                assert!(d.changed);
                let _ = std::fs::remove_file(d.generation.library().mapped_path());
            }
            total
        })
    });
    let mut flip = false;
    g.bench_function("mapped_build_to_serving", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                flip = !flip;
                let d = rt
                    .registry()
                    .deploy(config(if flip { &b } else { &a }))
                    .unwrap();
                assert!(d.changed);
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn invoke_during_swap(c: &mut Criterion) {
    let rt = Runtime::new(RuntimeConfig {
        worker_executable: Some(worker::fnhost_binary()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let work = tempfile::tempdir_in("/dev/shm").unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    for (dir, tag) in [(&a, b'A'), (&b, b'B')] {
        std::fs::create_dir_all(dir).unwrap();
        put(dir, &build(tag, None));
    }
    rt.registry().deploy(config(&a)).unwrap();
    let payload = vec![b'x'; 1024];
    let mut g = c.benchmark_group("invoke_hotswap");
    g.bench_function("steady_state", |bench| {
        bench.iter(|| {
            black_box(
                rt.registry()
                    .invoke("hotswap", black_box(&payload))
                    .unwrap(),
            )
        })
    });
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (rt, stop, swaps) = (rt.clone(), Arc::clone(&stop), Arc::clone(&swaps));
        let (a, b) = (a.clone(), b.clone());
        std::thread::spawn(move || {
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                flip = !flip;
                rt.registry()
                    .deploy(config(if flip { &b } else { &a }))
                    .unwrap();
                swaps.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    g.bench_function("while_swapping", |bench| {
        bench.iter(|| {
            black_box(
                rt.registry()
                    .invoke("hotswap", black_box(&payload))
                    .unwrap(),
            )
        })
    });
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!(
        "swaps during while_swapping: {}",
        swaps.load(Ordering::Relaxed)
    );
    g.finish();
}

criterion_group!(benches, deploy, invoke_during_swap);
criterion_main!(benches);
