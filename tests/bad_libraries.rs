//! Bad libraries get typed errors and the process keeps serving. Each failure
//! mode has its own tiny fixture (tests/fixtures/*.c), compiled here with `cc`.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use fnhost::{FunctionConfig, LoadError, Outcome, Runtime};
use fnhost_e2e::{compile_fixture, plugin_dir, runtime, scratch};

/// After every bad load, the same runtime still invokes a good function.
fn still_serving(rt: &Runtime) {
    let echo = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()))
        .unwrap();
    let r = echo.invoke(b"alive").unwrap();
    assert!(matches!(r.outcome, Outcome::Success(ref b) if b.bytes == b"alive"));
}

fn load_from(rt: &Runtime, dir: &Path, entry: &str) -> LoadError {
    rt.load(FunctionConfig::new(entry, dir))
        .expect_err("must be refused")
}

#[test]
fn a_text_file_named_so_is_not_a_library() {
    let dir = scratch("text-file");
    std::fs::write(dir.join("x.so"), "this is text, not ELF\n").unwrap();
    let rt = runtime();
    let e = load_from(&rt, &dir, "x.Handler");
    assert!(matches!(e, LoadError::NotALibrary { .. }), "{e:?}");
    assert!(e.to_string().contains("not an ELF file"), "{e}");
    still_serving(&rt);
}

#[test]
fn a_shared_library_without_a_descriptor_is_not_a_plugin() {
    let dir = scratch("not-plugin");
    compile_fixture("not_plugin", &dir);
    let rt = runtime();
    let e = load_from(&rt, &dir, "not_plugin.Handler");
    assert!(matches!(e, LoadError::NotAPlugin { .. }), "{e:?}");
    assert!(e.to_string().contains("fnhost_plugin_descriptor"), "{e}");
    still_serving(&rt);
}

#[test]
fn a_truncated_plugin_is_refused_before_the_loader_sees_it() {
    let dir = scratch("truncated");
    let whole = std::fs::read(plugin_dir().join("libecho.so")).unwrap();
    let rt = runtime();
    for cut in [whole.len() / 3, whole.len() - 100] {
        std::fs::write(dir.join("echo.so"), &whole[..cut]).unwrap();
        let e = load_from(&rt, &dir, "echo.Handler");
        match &e {
            LoadError::NotALibrary { reason, .. } => {
                assert!(
                    matches!(reason, fnhost::ElfError::Truncated(_)),
                    "{reason:?}"
                )
            }
            other => panic!("expected NotALibrary, got {other:?}"),
        }
    }
    still_serving(&rt);
}

#[test]
fn another_abi_major_is_refused_naming_both_versions() {
    let dir = scratch("wrong-major");
    compile_fixture("wrong_major", &dir);
    let rt = runtime();
    let e = load_from(&rt, &dir, "wrong_major.Handler");
    assert!(
        matches!(
            e,
            LoadError::AbiVersion {
                plugin_major: 2,
                plugin_minor: 0,
                host_major: 1,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    let host = format!("runs ABI 1.{}", fnhost_api::abi::ABI_MINOR);
    assert!(msg.contains("ABI 2.0") && msg.contains(&host), "{msg}");
    still_serving(&rt);
}

#[test]
fn a_newer_minor_is_refused() {
    let dir = scratch("newer-minor");
    compile_fixture("newer_minor", &dir);
    let rt = runtime();
    let e = load_from(&rt, &dir, "newer_minor.Handler");
    assert!(
        matches!(
            e,
            LoadError::AbiVersion {
                plugin_major: 1,
                plugin_minor,
                ..
            } if plugin_minor == fnhost_api::abi::ABI_MINOR + 1
        ),
        "{e:?}"
    );
    let message = e.to_string();
    let minor = fnhost_api::abi::ABI_MINOR;
    assert!(
        message.contains(&format!("ABI 1.{}", minor + 1))
            && message.contains(&format!("runs ABI 1.{minor}")),
        "both versions named: {message}"
    );
    still_serving(&rt);
}

#[test]
fn a_plugin_built_against_a_changed_layout_is_refused_with_the_difference() {
    let dir = scratch("changed-layout");
    compile_fixture("changed_layout", &dir);
    let rt = runtime();
    let e = load_from(&rt, &dir, "changed_layout.Handler");
    let LoadError::AbiLayout { differences, .. } = &e else {
        panic!("expected AbiLayout, got {e:?}")
    };
    assert!(
        differences.contains(
            &"field fnhost_context_vtable.log: offset 72 in the plugin, 64 in the host".to_string()
        ),
        "{differences:#?}"
    );
    assert!(differences
        .iter()
        .any(|d| d
            == "field fnhost_context_vtable.flush_log exists in the plugin but not in the host"));
    still_serving(&rt);
}

#[test]
fn a_null_handler_pointer_is_an_invalid_descriptor() {
    let dir = scratch("null-handler");
    compile_fixture("null_handler", &dir);
    let rt = runtime();
    let e = load_from(&rt, &dir, "null_handler.Handler");
    assert!(matches!(e, LoadError::InvalidDescriptor { .. }), "{e:?}");
    still_serving(&rt);
}

#[test]
fn a_missing_handler_lists_the_handlers_the_library_has() {
    let rt = runtime();
    let e = load_from(&rt, &plugin_dir(), "echo.Missing");
    match &e {
        LoadError::UnknownHandler {
            handler, available, ..
        } => {
            assert_eq!(handler, "Missing");
            assert_eq!(
                available,
                &["Handler", "Logged", "Ids", "CallHost"].map(String::from)
            );
        }
        other => panic!("expected UnknownHandler, got {other:?}"),
    }
    assert!(
        e.to_string()
            .contains("its handlers are: Handler, Logged, Ids, CallHost"),
        "{e}"
    );
    let e = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()).initializer("echo.Init"))
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("no initializer `Init`; its initializers are: (none)"),
        "{e}"
    );
    still_serving(&rt);
}

#[test]
fn a_missing_library_and_a_malformed_entry_are_explained() {
    let rt = runtime();
    let dir = scratch("empty");
    let e = load_from(&rt, &dir, "ghost.Handler");
    assert!(e.to_string().contains("ghost.so and libghost.so"), "{e}");
    let e = load_from(&rt, &dir, "NoDot");
    assert!(matches!(e, LoadError::InvalidEntry(_)), "{e:?}");
    let e = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()).memory_mb(100))
        .unwrap_err();
    assert!(matches!(e, LoadError::Config(_)), "{e:?}");
    still_serving(&rt);
}

/// Loads a fixture whose constructor misbehaves: the pre-flight worker meets
/// it, the host never maps it, and says what happened.
fn constructor_refused(rt: &Runtime, fixture: &str, what: &str) {
    let dir = scratch(fixture);
    compile_fixture(fixture, &dir);
    let e = load_from(rt, &dir, &format!("{fixture}.Handler"));
    assert!(matches!(e, LoadError::Initialization { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains(&format!("the library's initialization code {what}")),
        "{e}"
    );
    // Nothing about the refused library reached this process.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        !maps.contains(&format!("{fixture}.so")),
        "{fixture} is mapped"
    );
    still_serving(rt);
}

#[test]
fn a_constructor_that_aborts_fails_the_load_not_the_host() {
    constructor_refused(&runtime(), "ctor_abort", "crashed: SIGABRT");
}

#[test]
fn a_constructor_that_segfaults_fails_the_load_not_the_host() {
    constructor_refused(&runtime(), "ctor_segv", "crashed: SIGSEGV");
}

#[test]
fn a_constructor_that_exits_fails_the_load_not_the_host() {
    constructor_refused(&runtime(), "ctor_exit", "exited the process with status 7");
}

#[test]
fn a_constructor_that_blocks_fails_the_load_within_the_timeout() {
    let rt = Runtime::new(fnhost::RuntimeConfig {
        cache_dir: Some(fnhost_e2e::cache_dir()),
        worker_executable: Some(fnhost_e2e::fnhost_bin()),
        preflight_timeout: std::time::Duration::from_millis(500),
        ..fnhost::RuntimeConfig::default()
    })
    .unwrap();
    let started = std::time::Instant::now();
    constructor_refused(&rt, "ctor_block", "did not finish within 0.5 s");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_file_planted_in_the_code_cache_is_never_run() {
    // A fresh cache, and a build of `echo` it has not seen: someone who can
    // write there plants other code of the same size under echo's digest.
    let dir = scratch("planted");
    let cache = dir.join("cache");
    let code = dir.join("code");
    std::fs::create_dir_all(&code).unwrap();
    let echo = std::fs::read(plugin_dir().join("libecho.so")).unwrap();
    std::fs::write(code.join("echo.so"), &echo).unwrap();
    let mut planted = std::fs::read(plugin_dir().join("libmisbehaving.so")).unwrap();
    planted.resize(echo.len(), 0);
    std::fs::create_dir_all(&cache).unwrap();
    let digest = fnhost::Digest::of(&echo);
    std::fs::write(cache.join(format!("{digest}.so")), &planted).unwrap();
    for isolation in [fnhost::Isolation::InProcess, fnhost::Isolation::Process] {
        let rt = Runtime::new(fnhost::RuntimeConfig {
            cache_dir: Some(cache.clone()),
            worker_executable: Some(fnhost_e2e::fnhost_bin()),
            ..fnhost::RuntimeConfig::default()
        })
        .unwrap();
        let f = rt
            .load(FunctionConfig::new("echo.Handler", &code).isolation(isolation))
            .unwrap();
        let r = f.invoke(b"genuine").unwrap();
        assert_eq!(r.outcome.body_bytes(), b"genuine", "{isolation:?}");
        // The copy now holds echo's bytes.
        assert_eq!(
            std::fs::read(cache.join(format!("{digest}.so"))).unwrap(),
            echo
        );
        // Plant again for the next round, as a new file: writing into the
        // genuine copy in place would rewrite the pages this process mapped.
        std::fs::remove_file(cache.join(format!("{digest}.so"))).unwrap();
        std::fs::write(cache.join(format!("{digest}.so")), &planted).unwrap();
    }
}

#[test]
fn a_pre_started_checker_contains_constructors_as_a_fresh_one_does() {
    let rt = runtime();
    // The first pre-flight starts its worker on the spot, then a spare.
    still_serving(&rt);
    assert_eq!(rt.stats().preflights, 1);
    for fixture in ["ctor_segv", "ctor_exit", "ctor_abort"] {
        let waited = std::time::Instant::now();
        while !rt.stats().preflight_spare_ready && waited.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let before = rt.stats().preflights_on_spare;
        let what = match fixture {
            "ctor_segv" => "crashed: SIGSEGV",
            "ctor_exit" => "exited the process with status 7",
            _ => "crashed: SIGABRT",
        };
        constructor_refused(&rt, fixture, what);
        assert!(
            rt.stats().preflights_on_spare > before,
            "{fixture}: no spare used"
        );
    }
}
