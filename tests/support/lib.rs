//! Shared helpers for the end-to-end tests: where the workspace build put the
//! `fnhost` binary and the sample plugins, how to compile the C fixtures, and
//! a runtime with a private code cache.
//!
//! The tests do not build the sample plugins themselves: `scripts/test.sh`
//! runs `cargo build --workspace` once before `cargo test`, and every test
//! uses those libraries.
// Test support: a failed assumption here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fnhost::{Runtime, RuntimeConfig};

/// The cargo target profile directory these tests were built into.
pub fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_owned()
}

/// The directory holding `libecho.so`, `libtestplugin.so`, `libmisbehaving.so`.
pub fn plugin_dir() -> PathBuf {
    let dir = target_dir();
    for lib in [
        "libecho.so",
        "libtestplugin.so",
        "libmisbehaving.so",
        "libhotswap.so",
    ] {
        assert!(
            dir.join(lib).is_file(),
            "{} is missing: build the workspace first (`cargo build --workspace`, as scripts/test.sh does)",
            dir.join(lib).display()
        );
    }
    dir
}

/// `target/go-plugins`, with the Go plugins `scripts/go-plugins.sh` builds
/// (run once per test binary; Go's build cache makes a rerun quick).
pub fn go_plugins() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = workspace_root().join("scripts/go-plugins.sh");
        let out = Command::new(&script)
            .output()
            .expect("run scripts/go-plugins.sh");
        assert!(
            out.status.success(),
            "scripts/go-plugins.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        workspace_root().join("target/go-plugins")
    })
    .clone()
}

/// The `fnhost` binary built with the workspace.
pub fn fnhost_bin() -> PathBuf {
    let bin = target_dir().join("fnhost");
    assert!(
        bin.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`)",
        bin.display()
    );
    bin
}

/// A scratch directory under the target directory (kept for inspection).
pub fn scratch(name: &str) -> PathBuf {
    let dir = target_dir().join("e2e-scratch").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Compiles a C source against `plugin-api/include/fnhost.h` into
/// `out_dir/<name>.so` with the system `cc`.
pub fn compile_c(source: &Path, out_dir: &Path, name: &str) -> PathBuf {
    let out = out_dir.join(format!("{name}.so"));
    let status = Command::new("cc")
        .args([
            "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-I",
        ])
        .arg(workspace_root().join("plugin-api/include"))
        .arg("-o")
        .arg(&out)
        .arg(source)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed for {}", source.display());
    out
}

/// Compiles `tests/fixtures/<name>.c` into `out_dir/<name>.so`.
pub fn compile_fixture(name: &str, out_dir: &Path) -> PathBuf {
    compile_c(
        &workspace_root()
            .join("tests/fixtures")
            .join(format!("{name}.c")),
        out_dir,
        name,
    )
}

/// A private code cache for this test binary.
pub fn cache_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        target_dir().join("e2e-cache").join(name)
    })
    .clone()
}

/// A runtime whose code cache is private to this test binary, and whose
/// worker processes (pre-flights included) run the workspace's `fnhost`.
pub fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// Checks that a log line starts with `<RFC3339 UTC time with ms> <request id> `.
pub fn assert_log_prefix(line: &str, request_id: &str) {
    let (time, rest) = line
        .split_once(' ')
        .unwrap_or_else(|| panic!("no prefix: {line:?}"));
    let b = time.as_bytes();
    let shape_ok = b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && time
            .chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit());
    assert!(
        shape_ok,
        "time prefix {time:?} is not RFC3339 UTC with ms in {line:?}"
    );
    assert!(
        rest.starts_with(&format!("{request_id} ")),
        "request id {request_id} missing in {line:?}"
    );
}

/// The `hotswap` sample plugin with its build tag set to `tag` (one ASCII
/// byte), plus `suffix` appended after the ELF image when given: distinct
/// builds from one compiled library, with no recompilation.
pub fn hotswap_build(tag: u8, suffix: Option<u64>) -> Vec<u8> {
    let mut bytes = std::fs::read(plugin_dir().join("libhotswap.so")).expect("libhotswap.so");
    let marker = b"fnhost-build-tag:";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("build marker in libhotswap.so");
    bytes[at + marker.len()] = tag;
    if let Some(s) = suffix {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    bytes
}

/// Writes `bytes` to `dir/name` completely before it appears (temp + rename).
pub fn write_complete(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let tmp = dir.join(format!(".{name}.partial"));
    std::fs::write(&tmp, bytes).expect("write");
    let path = dir.join(name);
    std::fs::rename(&tmp, &path).expect("rename");
    path
}

/// Waits until `condition` holds, checking every 10 ms, for at most
/// `deadline`; whether it came to hold. Tests wait for states with this,
/// not for fixed times: a slow machine waits longer, a fast one not at all.
pub fn eventually(deadline: std::time::Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
