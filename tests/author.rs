//! The author's loop through the built `fnhost` binary: `fnhost new` makes
//! a project that builds with its own tool and runs with `fnhost invoke`
//! without edits (Rust plain, Rust APIG, C, Go plain and APIG); `fnhost build` checks what was
//! built; `fnhost package` writes a zip with the library at its root; bad
//! builds and bad manifests are one clear message each.
//!
//! The Rust projects share one cargo target directory (their dependencies
//! compile once) and build `--offline` from the registry cache the
//! workspace's own build filled.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use fnhost_e2e::{fnhost_bin, scratch, target_dir};

/// Runs `fnhost ARGS` in `dir` (with `stdin` as standard input).
fn fnhost_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(fnhost_bin())
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .env("CARGO_NET_OFFLINE", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn shared_target() -> PathBuf {
    target_dir().join("e2e-author-target")
}

fn cargo_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()))
        .args(args)
        .arg("--offline")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .output()
        .unwrap()
}

/// The `result` of an `invoke --json` report, parsed as JSON.
fn result_of(out: &Output) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
    let body = report["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {report}"))
}

/// `fnhost new NAME ARGS` into a fresh directory `scratch`; returns it and
/// what `new` printed.
fn new_project(scratch: &str, name: &str, args: &[&str]) -> (PathBuf, String) {
    let dir = project_dir(scratch);
    let mut all = vec!["new", name, "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = fnhost_in(dir.parent().unwrap(), &all, b"");
    assert!(out.status.success(), "{}", text(&out));
    (dir, text(&out))
}

/// A fresh directory for project `name`.
fn project_dir(name: &str) -> PathBuf {
    let dir = scratch(&format!("author-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn zip_entries(path: &Path) -> Vec<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
        ])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_new_rust_project_builds_tests_invokes_and_packages_without_edits() {
    let (dir, said) = new_project("rust-plain", "greeter-fn", &[]);
    assert!(said.contains("next: cd"), "{said}");
    let built = cargo_in(&dir, &["build", "--release"]);
    assert!(built.status.success(), "{}", text(&built));
    let invoked = fnhost_in(&dir, &["invoke", "--data", r#"{"name": "ada"}"#], b"");
    let report = text(&invoked);
    assert!(invoked.status.success(), "{report}");
    assert!(report.contains(r#""message":"hello, ada""#), "{report}");
    // The initializer, the context's logger and the log crate, in the log.
    for line in [
        "greeter-fn initialized",
        "greeting ada",
        "greeting from user data: hello",
    ] {
        assert!(report.contains(line), "{line}: {report}");
    }
    // The manifest's user data, overridden by a flag.
    let invoked = fnhost_in(
        &dir,
        &[
            "invoke",
            "--data",
            "{}",
            "--user-data",
            "GREETING=hi",
            "--json",
        ],
        b"",
    );
    let json = result_of(&invoked);
    assert_eq!(json["message"], "hi, world", "{json}");
    // The initializer's lines are in the JSON report's log too.
    let report: serde_json::Value = serde_json::from_slice(&invoked.stdout).unwrap();
    assert!(
        report["log"]
            .as_str()
            .unwrap()
            .contains("greeter-fn initialized"),
        "{report}"
    );
    let tested = cargo_in(&dir, &["test"]);
    assert!(tested.status.success(), "{}", text(&tested));
    let checked = fnhost_in(&dir, &["build"], b"");
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains(&format!(
            "ABI 1.{}, layout checked, handlers: Handler (json); initializers: Init",
            fnhost_api::abi::ABI_MINOR
        )),
        "{}",
        text(&checked)
    );
    assert!(!text(&checked).contains("warning"), "{}", text(&checked));
    // An APIG trigger on this JSON handler would hand it an HTTP event:
    // the build says so (and still succeeds).
    let manifest = std::fs::read_to_string(dir.join("fnhost.toml")).unwrap();
    std::fs::write(
        dir.join("fnhost.toml"),
        format!(
            "{manifest}\n[[triggers]]\ntype = \"APIG\"\npath = \"/greet\"\nmethod = \"POST\"\n"
        ),
    )
    .unwrap();
    let checked = fnhost_in(&dir, &["build"], b"");
    assert!(checked.status.success(), "{}", text(&checked));
    assert!(
        text(&checked).contains(
            "warning: the APIG trigger POST /greet calls greeter_fn.Handler, which takes a JSON document"
        ),
        "{}",
        text(&checked)
    );
    std::fs::write(dir.join("fnhost.toml"), manifest).unwrap();
    let packaged = fnhost_in(&dir, &["package"], b"");
    assert!(packaged.status.success(), "{}", text(&packaged));
    let stdout = String::from_utf8_lossy(&packaged.stdout);
    let zip = PathBuf::from(stdout.lines().last().unwrap());
    let zip = if zip.is_absolute() {
        zip
    } else {
        dir.join(zip)
    };
    assert_eq!(zip_entries(&zip), ["greeter_fn.so"]);
}

#[test]
fn a_new_apig_project_answers_a_sample_request() {
    let (dir, _) = new_project("rust-apig", "gateway", &["--template", "apig"]);
    let manifest = std::fs::read_to_string(dir.join("fnhost.toml")).unwrap();
    assert!(manifest.contains("type = \"APIG\""), "{manifest}");
    let built = fnhost_in(&dir, &["build"], b"");
    assert!(built.status.success(), "{}", text(&built));
    // Its handler takes the APIG event its trigger hands it: no warning.
    assert!(
        text(&built).contains("handlers: Handler (apig)"),
        "{}",
        text(&built)
    );
    assert!(!text(&built).contains("warning"), "{}", text(&built));
    let event = fnhost_in(&dir, &["event", "apig"], b"");
    let invoked = fnhost_in(&dir, &["invoke", "--json"], &event.stdout);
    assert!(invoked.status.success(), "{}", text(&invoked));
    let json = result_of(&invoked);
    assert_eq!(json["statusCode"], 200, "{json}");
    let tested = cargo_in(&dir, &["test"]);
    assert!(tested.status.success(), "{}", text(&tested));
}

#[test]
fn a_new_c_project_builds_with_make_and_invokes() {
    let (dir, _) = new_project("c", "cgreeter", &["--lang", "c"]);
    let made = Command::new("make").current_dir(&dir).output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let invoked = fnhost_in(&dir, &["invoke", "--data", "{}", "--json"], b"");
    assert!(invoked.status.success(), "{}", text(&invoked));
    let json = result_of(&invoked);
    assert_eq!(json["message"], "hello from C", "{json}");
    assert_eq!(json["init_runs"], 1, "{json}");
    let packaged = fnhost_in(&dir, &["package"], b"");
    assert!(packaged.status.success(), "{}", text(&packaged));
    assert!(dir.join("target/fnhost/cgreeter.zip").is_file());
}

/// A Go project (FunctionGraph's Go SDK) from both templates: `fnhost
/// build` runs `go build -buildmode=c-shared`, the library is recognised as
/// Go, and `fnhost invoke` answers without edits.
#[test]
fn a_new_go_project_builds_with_go_and_invokes() {
    fnhost_e2e::go_plugins(); // installs Go where it is missing
    let (dir, printed) = new_project("go", "go-greeter", &["--lang", "go"]);
    assert!(
        printed.contains("go build -buildmode=c-shared -o go_greeter.so"),
        "{printed}"
    );
    let built = fnhost_in(&dir, &["build"], b"");
    assert!(built.status.success(), "{}", text(&built));
    assert!(dir.join("go_greeter.so").is_file());
    let invoked = fnhost_in(
        &dir,
        &["invoke", "--data", "{\"name\": \"ada\"}", "--json"],
        b"",
    );
    assert!(invoked.status.success(), "{}", text(&invoked));
    let json = result_of(&invoked);
    assert_eq!(json["message"], "hello, ada", "{json}");
    let inspected = fnhost_in(&dir, &["inspect", "go_greeter.so", "--json"], b"");
    let report: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(report["default_isolation"], "process", "{report}");

    let (dir, _) = new_project("go-apig", "web", &["--lang", "go", "--template", "apig"]);
    let built = fnhost_in(&dir, &["build"], b"");
    assert!(built.status.success(), "{}", text(&built));
    let event = fnhost_in(&dir, &["event", "apig"], b"");
    let invoked = fnhost_in(&dir, &["invoke", "--json"], &event.stdout);
    let json = result_of(&invoked);
    assert_eq!(json["statusCode"], 200, "{json}");
    let body: serde_json::Value = serde_json::from_str(json["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (body["method"].as_str(), body["greeting"].as_str()),
        (Some("POST"), Some("hello"))
    );
}

#[test]
fn a_crate_built_without_cdylib_gets_the_crate_type_hint() {
    let (dir, _) = new_project("rlib-only", "rlibonly", &[]);
    let cargo_toml = dir.join("Cargo.toml");
    let edited = std::fs::read_to_string(&cargo_toml)
        .unwrap()
        .replace(r#"crate-type = ["cdylib"]"#, r#"crate-type = ["rlib"]"#);
    std::fs::write(&cargo_toml, edited).unwrap();
    let built = fnhost_in(&dir, &["build"], b"");
    assert_eq!(built.status.code(), Some(2), "{}", text(&built));
    assert!(
        text(&built).contains(r#"add `crate-type = ["cdylib"]` under [lib]"#),
        "{}",
        text(&built)
    );
}

#[test]
fn manifest_mistakes_name_the_file_line_and_key() {
    let dir = project_dir("bad-manifest");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Makefile"), "all:\n").unwrap();
    std::fs::write(
        dir.join("fnhost.toml"),
        "name = \"x\"\nhandler = \"x.Handler\"\nmemory = 256\n",
    )
    .unwrap();
    let out = fnhost_in(&dir, &["invoke", "--data", "{}"], b"");
    assert_eq!(out.status.code(), Some(2));
    let message = text(&out);
    assert!(
        message.contains("fnhost.toml:3:1: `memory`: unknown field `memory`"),
        "{message}"
    );
    std::fs::write(
        dir.join("fnhost.toml"),
        "name = \"x\"\nhandler = \"x.Handler\"\nmemory_mb = 100\n",
    )
    .unwrap();
    let message = text(&fnhost_in(&dir, &["build"], b""));
    assert!(
        message.contains("fnhost.toml:3:1: `memory_mb`: 100 MB is not supported"),
        "{message}"
    );
    let empty = project_dir("no-manifest");
    std::fs::create_dir_all(&empty).unwrap();
    let message = text(&fnhost_in(&empty, &["build"], b""));
    assert!(message.contains("has no fnhost.toml"), "{message}");
}

/// Reads lines until one contains `want` (within 30 s), appending them to
/// `seen`; whether it came.
fn read_until(lines: &std::sync::mpsc::Receiver<String>, want: &str, seen: &mut String) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(want) {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// `fnhost watch ARGS` in `dir`, with its stdout lines on a channel.
fn watch_in(dir: &Path, args: &[&str]) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = Command::new(fnhost_bin())
        .arg("watch")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

#[test]
fn watch_build_rebuilds_on_a_source_change_and_swaps_it_in() {
    let (dir, _) = new_project("watch-build", "watched", &["--lang", "c"]);
    let (mut child, lines) = watch_in(&dir, &["--build", "--invoke", "watched.Handler"]);
    let mut seen = String::new();
    let first = read_until(&lines, "deployed watched: generation", &mut seen)
        && read_until(&lines, "hello from C", &mut seen);
    if first {
        let source = dir.join("watched.c");
        let edited = std::fs::read_to_string(&source)
            .unwrap()
            .replace("from C", "from a rebuild");
        std::fs::write(&source, edited).unwrap();
    }
    let rebuilt = first
        && read_until(&lines, "building watched", &mut seen)
        && read_until(&lines, "hello from a rebuild", &mut seen);
    let _ = child.kill();
    let _ = child.wait();
    assert!(rebuilt, "{seen}");
    // One readable line per deploy, with the generation and its time.
    assert!(
        seen.lines()
            .any(|l| l.starts_with("deployed watched: generation 2 in ") && l.ends_with(" ms")),
        "{seen}"
    );
}

#[test]
fn watch_warns_when_the_initializer_names_nothing_in_the_library() {
    let dir = scratch("watch-init");
    std::fs::copy(
        fnhost_e2e::plugin_dir().join("libecho.so"),
        dir.join("echo.so"),
    )
    .unwrap();
    let (mut child, lines) = watch_in(&dir, &[dir.to_str().unwrap(), "--init", "echo.Init"]);
    let mut seen = String::new();
    let warned = read_until(
        &lines,
        "warning echo: initializer `Init` is not in the library",
        &mut seen,
    ) && read_until(&lines, "deployed echo: generation", &mut seen);
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "{seen}");
}
