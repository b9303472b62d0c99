//! The host's resident memory growth per hot swap: 1,000 swaps between two
//! builds (already mapped after the first two), then 1,000 swaps to
//! never-seen builds (each maps one more library, kept for good).
//!
//! Then 500 swaps of a process-isolated function to never-seen builds.
//!
//!     cargo build --release -p hotswap -p fnhost-cli
//!     cargo run --release --example swap_rss -p fnhost
// A measuring program: a failed assumption ends the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use fnhost::{FunctionConfig, Runtime, RuntimeConfig};

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    pages * page / 1024
}

#[path = "../benches/support/hotswap.rs"]
mod hotswap;
use hotswap::{build, put};

fn main() {
    let base = std::fs::read("target/release/libhotswap.so")
        .expect("build it: cargo build --release -p hotswap");
    let work = tempfile::tempdir_in("/dev/shm").unwrap();
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(work.path().join("cache")),
        worker_executable: Some("target/release/fnhost".into()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let (a, b, fresh) = (
        work.path().join("a"),
        work.path().join("b"),
        work.path().join("fresh"),
    );
    put(&a, &build(&base, b'A', None));
    put(&b, &build(&base, b'B', None));
    let config =
        |dir: &Path| FunctionConfig::new("hotswap.Handler", dir).initializer("hotswap.Init");
    let reg = rt.registry();
    reg.deploy(config(&a)).unwrap();
    reg.deploy(config(&b)).unwrap();
    reg.invoke("hotswap", b"").unwrap();
    let swaps = 1000;
    let before = rss_kib();
    for i in 0..swaps {
        reg.deploy(config(if i % 2 == 0 { &a } else { &b }))
            .unwrap();
        reg.invoke("hotswap", b"").unwrap();
    }
    let flips = rss_kib();
    for i in 0..swaps {
        put(&fresh, &build(&base, b'N', Some(i)));
        let d = reg.deploy(config(&fresh)).unwrap();
        reg.invoke("hotswap", b"").unwrap();
        let _ = std::fs::remove_file(d.generation.library().mapped_path());
    }
    let fresh_rss = rss_kib();
    // Process isolation: the host never maps the library; retiring a
    // generation ends its workers.
    let isolated_swaps = 500;
    let iso = work.path().join("isolated");
    let fnhost_exe = std::env::current_dir()
        .unwrap()
        .join("target/release/fnhost");
    let iso_rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(work.path().join("iso-cache")),
        worker_executable: Some(fnhost_exe),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let iso_config = |dir: &Path| config(dir).isolation(fnhost::Isolation::Process);
    put(&iso, &build(&base, b'I', Some(u64::MAX)));
    iso_rt.registry().deploy(iso_config(&iso)).unwrap();
    let iso_before = rss_kib();
    for i in 0..isolated_swaps {
        put(&iso, &build(&base, b'I', Some(1_000_000 + i)));
        let d = iso_rt.registry().deploy(iso_config(&iso)).unwrap();
        iso_rt.registry().invoke("hotswap", b"").unwrap();
        let _ = std::fs::remove_file(d.generation.library().mapped_path());
    }
    let iso_after = rss_kib();
    let me = std::process::id();
    let workers = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            rest.split_whitespace().nth(1) == Some(me.to_string().as_str())
        })
        .count();
    let stats = rt.stats();
    println!("library size: {} KiB", base.len() / 1024);
    println!(
        "1000 swaps between two builds:  RSS {before} -> {flips} KiB, {:.1} KiB per swap",
        (flips as f64 - before as f64) / swaps as f64
    );
    println!(
        "1000 swaps to never-seen builds: RSS {flips} -> {fresh_rss} KiB, {:.1} KiB per swap",
        (fresh_rss as f64 - flips as f64) / swaps as f64
    );
    println!(
        "{isolated_swaps} swaps of a process-isolated function to never-seen builds: RSS {iso_before} -> {iso_after} KiB, {:.1} KiB per swap; libraries mapped in the host: {}; worker processes alive: {workers}",
        (iso_after as f64 - iso_before as f64) / isolated_swaps as f64,
        iso_rt.stats().libraries_mapped
    );
    println!(
        "generations: {} live, {} draining, {} retired; libraries mapped: {}",
        stats.generations.live,
        stats.generations.draining,
        stats.generations.retired,
        stats.libraries_mapped
    );
}
