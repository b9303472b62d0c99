//! How the cost of loading a never-seen library grows with the number of
//! libraries the process already keeps mapped (fnhost never unmaps a library
//! that ran). Loads N distinct builds of `testplugin` (default 3000) and
//! prints the median load time per 500 loads.
//!
//!     cargo build --release -p testplugin -p fnhost-cli
//!     N=3000 cargo run --release --example load_growth -p fnhost
// A measuring program: a failed assumption ends the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Instant;
fn main() {
    let src = std::path::Path::new("target/release/libtestplugin.so");
    let base = std::fs::read(src).unwrap();
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let rt = fnhost::Runtime::new(fnhost::RuntimeConfig {
        cache_dir: Some(dir.path().join("r")),
        worker_executable: Some("target/release/fnhost".into()),
        ..Default::default()
    })
    .unwrap();
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut times = Vec::new();
    for i in 0..n {
        let mut b = base.clone();
        b.extend_from_slice(&i.to_le_bytes());
        std::fs::write(dir.path().join("testplugin.so"), &b).unwrap();
        let t = Instant::now();
        let f = rt
            .load(
                fnhost::FunctionConfig::new("testplugin.Handler", dir.path())
                    .initializer("testplugin.Init"),
            )
            .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
        let _ = std::fs::remove_file(f.library().mapped_path());
    }
    for chunk in times.chunks(500) {
        let mut c = chunk.to_vec();
        c.sort_by(|a, b| a.partial_cmp(b).unwrap());
        print!("median {:.0}us  ", c[c.len() / 2]);
    }
    println!();
}
