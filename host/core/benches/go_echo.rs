//! A Go handler through fnhost against the same handler through Go's own
//! `plugin` package (the seed's original mechanism), in one run.
//!
//! Baseline: `target/go-plugins/plugin/host` opens the Go echo built with
//! `-buildmode=plugin` and calls it N times with 1 KiB and a context,
//! copying each result out (ns per call, printed by that Go program). Then:
//! the Go echo built with `-buildmode=c-shared` (the go-runtime bridge),
//! invoked with 1 KiB through `Function::invoke` in process and with the
//! default isolation (a worker process, as fnhost runs a Go library unless
//! told otherwise); and, as the isolated rounds' own baseline, a C echo
//! (`support/echo.c`) through the same transport. Rounds are interleaved;
//! the median ratio and its spread are printed. Run with `scripts/bench.sh
//! go` (builds what it needs).
// A benchmark: a failed assumption is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/handoff.rs"]
mod handoff;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fnhost::{FunctionConfig, Isolation, Runtime, RuntimeConfig};

const ROUNDS: usize = 9;
const IN_PROCESS_CALLS: usize = 100_000;
const ISOLATED_CALLS: usize = 60_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ns_per_call(f: &fnhost::Function, payload: &[u8], n: usize, here: bool) -> f64 {
    let call = |p: &[u8]| {
        if here {
            f.invoke_on_current_thread(p)
        } else {
            f.invoke(p)
        }
    };
    for _ in 0..n / 10 {
        call(payload).unwrap();
    }
    let start = Instant::now();
    for _ in 0..n {
        let r = call(payload).unwrap();
        assert_eq!(r.outcome.body_bytes().len(), payload.len());
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn handoff_ns(handoff: &handoff::Handoff, payload: &[u8], n: usize) -> f64 {
    for _ in 0..n / 10 {
        std::hint::black_box(handoff.call(payload));
    }
    let start = Instant::now();
    for _ in 0..n {
        assert_eq!(
            std::hint::black_box(handoff.call(payload)).len(),
            payload.len()
        );
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn go_plugin_ns(host: &Path, plugin: &Path) -> f64 {
    let out = Command::new(host)
        .arg(plugin)
        .arg(IN_PROCESS_CALLS.to_string())
        .output()
        .expect("run the Go plugin host");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `support/echo.c` built into `dir/c_echo.so`.
fn c_echo(dir: &Path) {
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .args(["-shared", "-fPIC", "-O2", "-I"])
        .arg(workspace().join("plugin-api/include"))
        .arg(workspace().join("host/core/benches/support/echo.c"))
        .arg("-o")
        .arg(dir.join("c_echo.so"))
        .status()
        .expect("gcc");
    assert!(status.success(), "gcc failed to build echo.c");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let go = workspace().join("target/go-plugins");
    let release = std::env::current_exe().unwrap();
    let release = release.parent().and_then(Path::parent).unwrap();
    let rt = Runtime::new(RuntimeConfig {
        worker_executable: Some(release.join("fnhost")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let in_process = rt
        .load(FunctionConfig::new("echo.Handler", &go).isolation(Isolation::InProcess))
        .unwrap();
    let isolated = rt.load(FunctionConfig::new("echo.Handler", &go)).unwrap();
    assert_eq!(isolated.config().isolation, Isolation::Process);
    let c_dir = tempfile::tempdir().unwrap();
    c_echo(c_dir.path());
    let c_isolated = rt
        .load(FunctionConfig::new("c_echo.Handler", c_dir.path()).isolation(Isolation::Process))
        .unwrap();
    let payload = vec![b'x'; 1024];
    let (host, plugin) = (go.join("plugin/host"), go.join("plugin/echo.so"));
    let (mut base, mut inp, mut iso, mut here) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut r_in, mut r_iso, mut r_here) = (Vec::new(), Vec::new(), Vec::new());
    let (mut c_iso, mut r_c) = (Vec::new(), Vec::new());
    let (mut bare, mut r_bare) = (Vec::new(), Vec::new());
    let handoff = handoff::Handoff::new(echo::handler);
    for _ in 0..ROUNDS {
        let b = go_plugin_ns(&host, &plugin);
        let h = ns_per_call(&in_process, &payload, IN_PROCESS_CALLS, true);
        let i = ns_per_call(&in_process, &payload, IN_PROCESS_CALLS, false);
        let c = ns_per_call(&c_isolated, &payload, ISOLATED_CALLS, false);
        let hand = handoff_ns(&handoff, &payload, IN_PROCESS_CALLS);
        bare.push(hand);
        r_bare.push(i / hand);
        let p = ns_per_call(&isolated, &payload, ISOLATED_CALLS, false);
        c_iso.push(c);
        r_c.push(p / c);
        r_here.push(h / b);
        r_in.push(i / b);
        r_iso.push(p / b);
        base.push(b);
        here.push(h);
        inp.push(i);
        iso.push(p);
    }
    let spread = |v: &[f64]| {
        let (lo, hi) = v
            .iter()
            .fold((f64::MAX, 0f64), |(l, h), &x| (l.min(x), h.max(x)));
        (lo, hi)
    };
    let (rh_lo, rh_hi) = spread(&r_here);
    let (ri_lo, ri_hi) = spread(&r_in);
    let (rp_lo, rp_hi) = spread(&r_iso);
    println!(
        "Go echo, 1 KiB, {ROUNDS} interleaved rounds (median; min..max of the per-round ratios)"
    );
    println!("| path | median per call | ratio to Go's plugin package |");
    println!("|---|---|---|");
    println!(
        "| Go `plugin` package, direct call (baseline) | {:.0} ns | 1.00x |",
        median(&mut base)
    );
    println!(
        "| fnhost, Go c-shared in process, calling thread (`invoke_on_current_thread`) | {:.0} ns | {:.1}x ({rh_lo:.1}..{rh_hi:.1}) |",
        median(&mut here),
        median(&mut r_here.clone())
    );
    println!(
        "| fnhost, Go c-shared in process, worker thread (`Function::invoke`) | {:.0} ns | {:.1}x ({ri_lo:.1}..{ri_hi:.1}) |",
        median(&mut inp),
        median(&mut r_in.clone())
    );
    println!(
        "| fnhost, Go c-shared in a worker process (the default) | {:.0} ns | {:.0}x ({rp_lo:.0}..{rp_hi:.0}) |",
        median(&mut iso),
        median(&mut r_iso.clone())
    );
    let (rb_lo, rb_hi) = spread(&r_bare);
    println!();
    println!(
        "In-process Go echo on the worker-thread path / bare thread hand-off of the Rust echo, per round: median {:.2}x ({rb_lo:.2}..{rb_hi:.2}); hand-off median {:.0} ns (goal: at most 1.5x)",
        median(&mut r_bare.clone()),
        median(&mut bare)
    );
    let (rc_lo, rc_hi) = spread(&r_c);
    println!(
        "Process-isolated Go echo / process-isolated C echo (same transport), per round: median {:.2}x ({rc_lo:.2}..{rc_hi:.2}); C echo median {:.0} ns (goal: at most 1.3x)",
        median(&mut r_c.clone()),
        median(&mut c_iso)
    );
}
