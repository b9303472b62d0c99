//! The `fnhost` binary the benchmarks' worker processes run: built into the
//! same target directory by `scripts/bench.sh` (it is the `fnhost-cli`
//! crate's, not this one's, so cargo does not name it to the benchmarks).

use std::path::{Path, PathBuf};

/// `target/<profile>/fnhost`, next to the `deps/` directory this benchmark runs from.
pub fn fnhost_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the benchmark's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target directory");
    let bin = dir.join("fnhost");
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/bench.sh (it builds the fnhost binary first)",
        bin.display()
    );
    bin
}
