//! The C API (`host/embed`): its example program, compiled here with `cc`
//! against `fnhost_embed.h` and `libfnhost_embed.so`, loads and invokes in
//! process, contains a crash in a worker process, hot-swaps under 4 calling
//! threads (hearing each swap through the log callback) and sees a bad
//! library refused; the header compiles as strict
//! C11 and C++17.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use fnhost_e2e::{plugin_dir, scratch, target_dir, workspace_root};

fn hotswap_build(tag: u8, dir: &Path) {
    let mut lib = std::fs::read(plugin_dir().join("libhotswap.so")).unwrap();
    let marker = b"fnhost-build-tag:";
    let at = lib
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the build tag marker")
        + marker.len();
    lib[at] = tag;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("hotswap.so"), lib).unwrap();
}

/// Compiles the C program `source` against `fnhost_embed.h` and
/// `libfnhost_embed.so` (strict C11) into `exe`, runs it with `args`:
/// whether it succeeded, and what it printed.
fn build_and_run(source: &Path, exe: &Path, args: &[std::path::PathBuf]) -> (bool, String) {
    let built = Command::new("cc")
        .args([
            "-Wall",
            "-Wextra",
            "-Werror",
            "-std=c11",
            "-pedantic",
            "-pthread",
            "-I",
        ])
        .arg(workspace_root().join("host/embed/include"))
        .arg("-o")
        .arg(exe)
        .arg(source)
        .arg("-L")
        .arg(target_dir())
        .arg("-lfnhost_embed")
        .status()
        .unwrap();
    assert!(built.success(), "cc failed for {}", source.display());
    let out = Command::new(exe)
        .args(args)
        .env("LD_LIBRARY_PATH", target_dir())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), format!("{:?}: {text}", out.status))
}

#[test]
fn the_c_example_embeds_fnhost() {
    let dir = scratch("embed-c");
    let (a, b, bad) = (dir.join("a"), dir.join("b"), dir.join("bad"));
    hotswap_build(b'A', &a);
    hotswap_build(b'B', &b);
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("bad.so"), "not a library\n").unwrap();
    assert!(
        target_dir().join("libfnhost_embed.so").is_file(),
        "build the workspace first"
    );
    let exe = dir.join("embed");
    let (ok, text) = build_and_run(
        &workspace_root().join("host/embed/examples/embed.c"),
        &exe,
        &[plugin_dir(), a, b, bad],
    );
    assert!(ok, "{text}");
    assert!(text.contains("embed: all checks passed"), "{text}");
    assert!(
        text.contains("hot swap: 800 calls during 20 swaps, 0 failed"),
        "{text}"
    );
    assert!(text.contains("log callback: 20 swaps reported"), "{text}");
}

#[test]
fn the_embedding_header_compiles_as_strict_c11_and_cxx17() {
    let dir = scratch("embed-header");
    for (compiler, std, ext) in [("cc", "-std=c11", "c"), ("c++", "-std=c++17", "cpp")] {
        let source = dir.join(format!("uses.{ext}"));
        std::fs::write(
            &source,
            "#include \"fnhost_embed.h\"\nint main(void) { fnhost_result_free(0); return fnhost_version() == 0; }\n",
        )
        .unwrap();
        let status = Command::new(compiler)
            .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
            .arg(workspace_root().join("host/embed/include"))
            .arg("-o")
            .arg(dir.join(format!("uses-{ext}")))
            .arg(&source)
            .arg("-L")
            .arg(target_dir())
            .arg("-lfnhost_embed")
            .status()
            .unwrap();
        assert!(status.success(), "{compiler} {std}");
    }
}

/// tests/embed/reentrant.c: every function of the C API called from inside
/// the log callback (once a hang at "generation retired" and after
/// "function created"), then deploys, deletes and invokes from six threads.
#[test]
fn the_c_api_may_be_called_from_its_log_callback_and_from_racing_threads() {
    let dir = scratch("embed-reentrant");
    let (a, b) = (dir.join("a"), dir.join("b"));
    hotswap_build(b'A', &a);
    hotswap_build(b'B', &b);
    let exe = dir.join("reentrant");
    let (ok, text) = build_and_run(
        &workspace_root().join("tests/embed/reentrant.c"),
        &exe,
        &[plugin_dir(), a, b],
    );
    assert!(ok, "{text}");
    assert!(text.contains("reentrant: all checks passed"), "{text}");
    assert!(text.contains("called every function 12 times"), "{text}");
}

/// host/embed/examples/host_functions.c: host functions registered through
/// the C API, called by a Rust plugin from 8 threads in process and from
/// sandboxed worker processes, with typed errors both ways, the rules that
/// make `user` safe to free, and a spinning call cancelled.
#[test]
fn c_host_functions_serve_plugins_and_can_be_withdrawn_safely() {
    let dir = scratch("embed-host-functions");
    let exe = dir.join("host_functions");
    let (ok, text) = build_and_run(
        &workspace_root().join("host/embed/examples/host_functions.c"),
        &exe,
        &[plugin_dir()],
    );
    assert!(ok, "{text}");
    assert!(text.contains("host_functions: all checks passed"), "{text}");
    assert!(
        text.contains("cache: 800 calls from 8 threads, 800 hits"),
        "{text}"
    );
    assert!(
        text.contains("cache, isolated: 800 calls from 8 threads"),
        "{text}"
    );
    assert!(text.contains("a spinning call: cancelled"), "{text}");
}

/// tests/embed/async_calls.c: calls that do not block, through the C API:
/// waits, polls, callbacks, cancellation, per-call options, an embedder
/// value for host functions, 8 threads.
#[test]
fn c_calls_start_without_blocking_and_can_be_cancelled() {
    let dir = scratch("embed-async");
    let fixtures = scratch("embed-async-fixtures");
    fnhost_e2e::compile_fixture("cancellable", &fixtures);
    let exe = dir.join("async_calls");
    let (ok, text) = build_and_run(
        &workspace_root().join("tests/embed/async_calls.c"),
        &exe,
        &[plugin_dir(), fixtures],
    );
    assert!(ok, "{text}");
    assert!(text.contains("async_calls: all checks passed"), "{text}");
    assert!(text.contains("async: 400 calls from 8 threads"), "{text}");
}
