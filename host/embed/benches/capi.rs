//! The C API's cost, as ratios against baselines in the same run: invoking
//! `echo` with 1 KiB through `fnhost_function_invoke*` (then reading the
//! body and freeing the result, as a C caller does) against the same call
//! through the Rust API (`Function::invoke*`) and against the handler
//! called directly in Rust with a `TestContext`.
//!
//! Rounds are interleaved (each round times every variant over the same
//! number of calls, in rotating order), and the report gives medians and
//! the spread of the per-round differences, because this machine's speed
//! drifts within a minute. Goal: the C API adds at most 50 ns over the Rust
//! API. Run with `scripts/bench-embed.sh`.
// A benchmark: a failed assumption is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fnhost::{FunctionConfig, Runtime, RuntimeConfig};
use fnhost_api::testing::TestContext;
use fnhost_embed::*;

const CALLS: usize = 20_000;
const ROUNDS: usize = 15;

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    for f in ["libecho.so", "fnhost"] {
        assert!(
            dir.join(f).is_file(),
            "{f} missing: run scripts/bench-embed.sh"
        );
    }
    dir
}

fn per_call(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..CALLS {
        f();
    }
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = release_dir();
    let payload = vec![b'x'; 1024];
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().join("rust")),
        worker_executable: Some(dir.join("fnhost")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let rust = rt.load(FunctionConfig::new("echo.Handler", &dir)).unwrap();
    let config = std::ffi::CString::new(
        serde_json::json!({
            "cache_dir": cache.path().join("c"),
            "worker_executable": dir.join("fnhost"),
        })
        .to_string(),
    )
    .unwrap();
    let function = std::ffi::CString::new(
        serde_json::json!({"entry": "echo.Handler", "code_dir": dir}).to_string(),
    )
    .unwrap();
    // SAFETY: valid C strings; the objects are freed at the end.
    let (crt, cf) = unsafe {
        let crt = fnhost_runtime_new(config.as_ptr(), std::ptr::null_mut());
        assert!(!crt.is_null());
        let cf = fnhost_function_load(crt, function.as_ptr(), std::ptr::null_mut());
        assert!(!cf.is_null());
        (crt, cf)
    };
    let test = TestContext::new();
    let c_call = |invoke: unsafe extern "C" fn(
        *const fnhost_function,
        *const u8,
        usize,
    ) -> *mut fnhost_result| {
        // SAFETY: a live function and a 1 KiB payload; the result is freed.
        unsafe {
            let r = invoke(cf, payload.as_ptr(), payload.len());
            let mut len = 0;
            black_box(fnhost_result_body(r, &mut len));
            assert_eq!(len, 1024);
            fnhost_result_free(r);
        }
    };
    let names = [
        "direct call",
        "Rust API, calling thread",
        "C API, calling thread",
        "Rust API, worker thread",
        "C API, worker thread",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..ROUNDS {
        for k in 0..names.len() {
            let i = (k + round) % names.len();
            let ns = match i {
                0 => per_call(|| {
                    black_box(echo::handler(black_box(&payload), test.context()).unwrap());
                }),
                1 => per_call(|| {
                    black_box(rust.invoke_on_current_thread(black_box(&payload)).unwrap());
                }),
                2 => per_call(|| c_call(fnhost_function_invoke_on_current_thread)),
                3 => per_call(|| {
                    black_box(rust.invoke(black_box(&payload)).unwrap());
                }),
                _ => per_call(|| c_call(fnhost_function_invoke)),
            };
            samples[i].push(ns);
        }
    }
    println!("| echo 1 KiB ({ROUNDS} interleaved rounds of {CALLS} calls) | median per call | vs direct call |");
    println!("|---|---|---|");
    let medians: Vec<f64> = samples.iter().map(|s| median(&mut s.clone())).collect();
    for (name, m) in names.iter().zip(&medians) {
        println!("| {name} | {m:.0} ns | {:.2}x |", m / medians[0]);
    }
    for (rust_i, c_i, what) in [(1, 2, "calling thread"), (3, 4, "worker thread")] {
        let mut diffs: Vec<f64> = samples[c_i]
            .iter()
            .zip(&samples[rust_i])
            .map(|(c, r)| c - r)
            .collect();
        let m = median(&mut diffs);
        let (lo, hi) = (diffs[0], diffs[diffs.len() - 1]);
        let held = diffs.iter().filter(|d| **d <= 50.0).count();
        println!(
            "C API over Rust API, {what}: median {m:+.0} ns (rounds from {lo:+.0} to {hi:+.0} ns); goal <= 50 ns held in {held} of {ROUNDS} rounds"
        );
    }
    // SAFETY: created above, freed once.
    unsafe {
        fnhost_function_free(cf);
        fnhost_runtime_free(crt);
    }
}
