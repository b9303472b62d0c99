//! The escape suite: one tiny C fixture per attempt (tests/sandbox/*.c),
//! each run in a sandboxed worker (process isolation under the default
//! `--sandbox auto`), from its handler and again from its constructor at
//! deploy time. Each test asserts that the attempt failed, how, and that
//! the host (this test process) kept serving every other function. The
//! same attempts through the `fnhost` binary (CLI, `watch`), a C program
//! embedding `libfnhost_embed` and `fnhost serve` are in the tests after
//! the table, in tests/embed_c.rs and tests/sdk/test_sandbox.py.
// Tests: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fnhost::{
    error_type, FunctionConfig, InvokeResult, Isolation, Network, Runtime, RuntimeConfig,
    SandboxPolicy,
};
use fnhost_e2e::{cache_dir, eventually, fnhost_bin, plugin_dir, scratch, workspace_root};

/// Every handler attempt of the suite with its argument (`{host}`: a pid
/// of the host's) and what its answer must contain: run through the CLI
/// and a C program embedding fnhost below (the library's tests above look
/// closer at each).
const ATTEMPTS: &[(&str, &str, &str)] = &[
    ("kill_parent", "", "kill(1, SIGKILL)"),
    ("kill_all", "", "kill(-1, SIGKILL)"),
    ("kill_pid", "{host} 9", "No such process"),
    ("kill_pid", "{host} 19", "No such process"),
    ("kill_from_proc", "", "visible:"),
    ("proc_mem", "{host}", "No such file or directory"),
    ("read_file", "/etc/shadow", "No such file or directory"),
    ("read_file", "/root", "No such file or directory"),
    (
        "write_file",
        "/etc/fnhost-escape 1",
        "open /etc/fnhost-escape",
    ),
    ("environment", "", "FNHOST_WORKER_PROCESS=1"),
    ("connect", "127.0.0.1 5432", "connect 127.0.0.1:5432: "),
    ("udp_send", "127.0.0.1 5432", "sendto 127.0.0.1:5432: "),
    ("ptrace_parent", "", "forbidden system call: ptrace"),
    (
        "process_vm_writev",
        "",
        "forbidden system call: process_vm_writev",
    ),
    ("mount", "", "forbidden system call: mount"),
    ("unshare", "", "forbidden system call: unshare"),
    ("setns", "", "forbidden system call: setns"),
    ("bpf", "", "forbidden system call: bpf"),
    ("keyctl", "", "forbidden system call: keyctl"),
    (
        "io_uring_setup",
        "",
        "forbidden system call: io_uring_setup",
    ),
    ("raw_socket", "", "forbidden system call: socket"),
    ("netlink_socket", "", "forbidden system call: socket"),
    ("vsock_socket", "", "forbidden system call: socket"),
    ("mmap_balloon", "shared", "memory limit exceeded"),
    (
        "aio_exhaust",
        "",
        "io_setup: 0 contexts, then Function not implemented",
    ),
    (
        "library_write",
        "",
        "pwrite: Bad file descriptor; ftruncate: refused",
    ),
    ("setsid_escape", "escapee", "started"),
];

/// Compiles every fixture of [`ATTEMPTS`] once into its own directory.
fn compile_attempts(tag: &str) -> Vec<(PathBuf, &'static str, String, &'static str)> {
    let host = std::process::id().to_string();
    ATTEMPTS
        .iter()
        .enumerate()
        .map(|(i, (name, arg, expect))| {
            let dir = scratch(&format!("sandbox-{tag}-{i}"));
            compile(name, &dir, None);
            (dir, *name, arg.replace("{host}", &host), *expect)
        })
        .collect()
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        ..RuntimeConfig::default()
    })
    .unwrap()
}

/// Whether this kernel gives workers every layer (else the suite says
/// which it skips: `fnhost sandbox check` names them).
fn full_sandbox() -> bool {
    let missing: Vec<_> = fnhost::sandbox::check(&fnhost::SandboxConfig::default())
        .into_iter()
        .filter(|l| !l.available)
        .collect();
    if !missing.is_empty() {
        eprintln!("sandbox layers missing here, skipping: {missing:?}");
    }
    missing.is_empty()
}

/// Compiles `tests/sandbox/<name>.c` into `<dir>/<name>.so`; with
/// `constructor`, the attempt runs when the library loads, with that
/// argument.
fn compile(name: &str, dir: &Path, constructor: Option<&str>) -> PathBuf {
    let out = dir.join(format!("{name}.so"));
    let mut cc = Command::new("cc");
    cc.args([
        "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", "-I",
    ])
    .arg(workspace_root().join("plugin-api/include"))
    .arg("-I")
    .arg(workspace_root().join("tests/sandbox"));
    if let Some(arg) = constructor {
        cc.arg("-DIN_CONSTRUCTOR")
            .arg(format!("-DATTEMPT_ARG=\"{}\"", arg.replace('"', "\\\"")));
    }
    let status = cc
        .arg("-o")
        .arg(&out)
        .arg(workspace_root().join(format!("tests/sandbox/{name}.c")))
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed for {name}");
    out
}

/// A process-isolated function of fixture `name` (in a scratch directory
/// of its own: `tag` tells variants apart).
fn fixture(
    rt: &Runtime,
    name: &str,
    tag: &str,
    constructor: Option<&str>,
    policy: SandboxPolicy,
) -> fnhost::Function {
    // A directory of its own per load: tests run in parallel, and
    // `scratch` empties the directory it is given.
    static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = scratch(&format!("sandbox-{name}-{tag}-{n}"));
    compile(name, &dir, constructor);
    rt.load(
        FunctionConfig::new(format!("{name}.Handler"), &dir)
            .isolation(Isolation::Process)
            .timeout(Duration::from_secs(5))
            .sandbox(policy),
    )
    .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

fn run(rt: &Runtime, name: &str, arg: &str) -> InvokeResult {
    let f = fixture(rt, name, "handler", None, SandboxPolicy::default());
    f.invoke(arg.as_bytes()).unwrap()
}

fn text(r: &InvokeResult) -> String {
    match r.outcome.error() {
        Some(e) => panic!("{}: {}\n{}", e.error_type, e.message, r.log),
        None => String::from_utf8_lossy(&r.outcome.body_bytes()).into_owned(),
    }
}

fn failure(r: &InvokeResult) -> (String, String) {
    let e = r
        .outcome
        .error()
        .unwrap_or_else(|| panic!("expected a failure, got {:?}", r.outcome));
    (e.error_type.clone(), e.message.clone())
}

/// The host still serves: an in-process function and a sandboxed one.
fn host_serves(rt: &Runtime) {
    let echo = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()))
        .unwrap();
    assert_eq!(echo.invoke(b"fine").unwrap().outcome.body_bytes(), b"fine");
    let isolated = rt
        .load(FunctionConfig::new("echo.Handler", plugin_dir()).isolation(Isolation::Process))
        .unwrap();
    assert_eq!(
        isolated.invoke(b"still").unwrap().outcome.body_bytes(),
        b"still"
    );
    // Not stopped (SIGSTOP) either: this very process answers.
    let state = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(!state.contains("State:\tT"), "{state}");
}

/// What a container that forbids namespaces gives (Docker's defaults, as
/// root): no namespaces, but a dropped uid, the empty environment,
/// Landlock, seccomp and rlimits still contain a hostile handler.
#[test]
fn without_namespaces_the_other_layers_still_hold() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !full_sandbox() || euid != 0 {
        return;
    }
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        sandbox: fnhost::SandboxConfig {
            without: ["user", "pid", "mount", "net", "ipc", "cgroup"]
                .map(str::to_owned)
                .to_vec(),
            ..fnhost::SandboxConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let me = std::process::id();
    assert_eq!(
        text(&run(&rt, "environment", "")),
        "FNHOST_WORKER_PROCESS=1\n"
    );
    for signal in [libc::SIGKILL, libc::SIGSTOP] {
        let r = text(&run(&rt, "kill_pid", &format!("{me} {signal}")));
        assert!(r.ends_with("Operation not permitted"), "{r}");
    }
    let r = text(&run(&rt, "kill_parent", ""));
    assert!(r.ends_with("Operation not permitted"), "{r}");
    for path in ["/etc/shadow", cache_dir().to_str().unwrap(), "/root"] {
        let r = text(&run(&rt, "read_file", path));
        assert!(r.contains("Permission denied"), "{r}");
    }
    let r = text(&run(&rt, "write_file", "/etc/fnhost-escape 1"));
    assert!(r.starts_with("open "), "{r}");
    let (ty, message) = failure(&run(&rt, "ptrace_parent", ""));
    assert_eq!(ty, fnhost::sandbox::SANDBOX_VIOLATION, "{message}");
    host_serves(&rt);
}

#[test]
fn signals_never_reach_the_host() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let me = std::process::id();
    let r = text(&run(&rt, "kill_parent", ""));
    // The worker's parent is its namespace's init, which ignores it.
    assert!(r.starts_with("kill(1, SIGKILL)"), "{r}");
    host_serves(&rt);
    text(&run(&rt, "kill_all", ""));
    host_serves(&rt);
    let visible = text(&run(&rt, "kill_from_proc", ""));
    let pids: Vec<u32> = visible
        .trim_start_matches("visible:")
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    assert!(
        pids.iter().all(|&p| p < 10 && p != me),
        "the worker saw processes beyond its own namespace: {visible}"
    );
    host_serves(&rt);
    for signal in [libc::SIGKILL, libc::SIGSTOP] {
        let r = text(&run(&rt, "kill_pid", &format!("{me} {signal}")));
        assert!(r.ends_with("No such process"), "{r}");
    }
    let r = text(&run(&rt, "proc_mem", &me.to_string()));
    assert!(r.ends_with("No such file or directory"), "{r}");
    host_serves(&rt);
}

#[test]
fn the_hosts_files_are_out_of_reach() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let marker = std::env::temp_dir().join(format!("fnhost-escape-marker-{}", std::process::id()));
    std::fs::write(&marker, "host secret").unwrap();
    let data = scratch("sandbox-data-dir").join("state.db");
    std::fs::write(&data, "the server's state").unwrap();
    // The cache copy of another function's library.
    let echo = rt.open_library(&plugin_dir().join("libecho.so")).unwrap();
    let victim = echo.mapped_path().to_owned();
    for path in [
        Path::new("/etc/shadow"),
        marker.as_path(),
        data.as_path(),
        victim.as_path(),
        cache_dir().as_path(),
        Path::new("/root"),
    ] {
        let r = text(&run(&rt, "read_file", path.to_str().unwrap()));
        assert!(
            r.contains("No such file or directory") || r.contains("Permission denied"),
            "{r}"
        );
    }
    // What a library needs is there (the sandbox is not simply broken).
    let r = text(&run(&rt, "read_file", "/usr/lib/os-release"));
    assert!(r.ends_with("bytes") && !r.ends_with(" 0 bytes"), "{r}");
    for target in [
        "/etc/fnhost-escape 1".to_owned(),
        "/fnhost-escape 1".to_owned(),
        format!("{} 1", victim.display()),
        format!("{} 1", data.display()),
    ] {
        let r = text(&run(&rt, "write_file", &target));
        assert!(r.starts_with("open "), "{target}: {r}");
    }
    assert_eq!(
        std::fs::read_to_string(&data).unwrap(),
        "the server's state"
    );
    let r = text(&run(&rt, "write_file", "/tmp/scratch 1000"));
    assert_eq!(r, "wrote 1000 bytes to /tmp/scratch");
    std::fs::remove_file(&marker).unwrap();
    host_serves(&rt);
}

/// A path the operator allowed and the function asked for is there,
/// read-only; one it did not allow is refused at load.
#[test]
fn read_only_paths_the_operator_allowed() {
    if !full_sandbox() {
        return;
    }
    // Under /tmp, not the checkout: the sandbox's uid must be able to
    // enter every directory above the path (a checkout may sit under a
    // private directory).
    let shared = std::env::temp_dir().join(format!("fnhost-ro-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&shared);
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(shared.join("model.bin"), vec![7u8; 100]).unwrap();
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        sandbox: fnhost::SandboxConfig {
            allowed_paths: vec![shared.clone()],
            ..fnhost::SandboxConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let policy = SandboxPolicy {
        read_only_paths: vec![shared.clone()],
        ..SandboxPolicy::default()
    };
    let file = shared.join("model.bin");
    let f = fixture(&rt, "read_file", "shared", None, policy.clone());
    let r = text(&f.invoke(file.to_str().unwrap().as_bytes()).unwrap());
    assert!(r.ends_with(": 64 bytes"), "{r}");
    let f = fixture(&rt, "write_file", "shared", None, policy);
    let r = text(
        &f.invoke(format!("{} 1", file.display()).as_bytes())
            .unwrap(),
    );
    assert!(
        r.contains("Read-only file system") || r.contains("Permission denied"),
        "{r}"
    );
    assert_eq!(std::fs::read(&file).unwrap().len(), 100);
    // Not allowed by the operator: the load is refused, typed.
    let dir = scratch("sandbox-ro-refused");
    compile("read_file", &dir, None);
    let e = rt
        .load(
            FunctionConfig::new("read_file.Handler", &dir)
                .isolation(Isolation::Process)
                .sandbox(SandboxPolicy {
                    read_only_paths: vec!["/etc".into()],
                    ..SandboxPolicy::default()
                }),
        )
        .unwrap_err();
    assert!(matches!(e, fnhost::LoadError::Sandbox(_)), "{e}");
    assert!(e.to_string().contains("--sandbox-allow-path"), "{e}");
    // Allowed but out of the sandbox's reach: the worker's start says so.
    let closed = shared.join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::create_dir(closed.join("inner")).unwrap();
    std::fs::set_permissions(&closed, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let f = fixture(
        &rt,
        "read_file",
        "closed",
        None,
        SandboxPolicy {
            read_only_paths: vec![closed.join("inner")],
            ..SandboxPolicy::default()
        },
    );
    let (_, message) = failure(&f.invoke(b"/").unwrap());
    assert!(message.contains("the worker failed to start"), "{message}");
    std::fs::remove_dir_all(&shared).unwrap();
}

/// A handler is a plain user: uid 1000 (or the operator's choice), PID 2,
/// no capability; uid 0 is refused as a choice.
#[test]
fn a_handler_is_a_plain_user() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    assert_eq!(
        text(&run(&rt, "whoami", "")),
        "uid 1000 gid 1000 pid 2 caps 0000000000000000"
    );
    let custom = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        sandbox: fnhost::SandboxConfig {
            uid: 4242,
            gid: 4243,
            ..fnhost::SandboxConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert!(text(&run(&custom, "whoami", "")).starts_with("uid 4242 gid 4243 pid 2 "));
    let root = Runtime::new(RuntimeConfig {
        sandbox: fnhost::SandboxConfig {
            uid: 0,
            ..fnhost::SandboxConfig::default()
        },
        ..RuntimeConfig::default()
    });
    assert!(matches!(root, Err(fnhost::LoadError::Sandbox(_))));
}

#[test]
fn tmp_is_private_and_limited() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let small = SandboxPolicy {
        tmp_mb: 1,
        ..SandboxPolicy::default()
    };
    let f = fixture(&rt, "write_file", "tmp-limit", None, small);
    let r = text(&f.invoke(b"/tmp/big 3000000").unwrap());
    assert!(
        r.contains("No space left on device") || r.contains("File too large"),
        "{r}"
    );
    host_serves(&rt);
}

#[test]
fn the_environment_is_empty_but_for_what_the_function_declares() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let r = text(&run(&rt, "environment", ""));
    assert_eq!(r, "FNHOST_WORKER_PROCESS=1\n");
    let declared = SandboxPolicy {
        env: vec!["PATH".into()],
        ..SandboxPolicy::default()
    };
    // Only names the operator allows.
    let dir = scratch("sandbox-env-refused");
    compile("environment", &dir, None);
    let e = rt
        .load(
            FunctionConfig::new("environment.Handler", &dir)
                .isolation(Isolation::Process)
                .sandbox(declared.clone()),
        )
        .unwrap_err();
    assert!(e.to_string().contains("--sandbox-allow-env"), "{e}");
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        sandbox: fnhost::SandboxConfig {
            allowed_env: vec!["PATH".into()],
            ..fnhost::SandboxConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let f = fixture(&rt, "environment", "declared", None, declared);
    let r = text(&f.invoke(b"").unwrap());
    let path = std::env::var("PATH").unwrap();
    assert!(r.contains(&format!("PATH={path}\n")), "{r}");
    assert_eq!(r.lines().count(), 2, "{r}");
}

/// A listener that counts the connections it accepted.
fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn accepted(l: &TcpListener) -> usize {
    std::iter::from_fn(|| l.accept().ok()).count()
}

#[test]
fn no_network_by_default_and_only_the_allowlist_with_the_hosts() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let (open, port) = listener();
    let (other, other_port) = listener();
    let r = text(&run(&rt, "connect", &format!("127.0.0.1 {port}")));
    assert!(!r.ends_with("connected"), "{r}");
    // The host's network: loopback (the host's own services) only when
    // listed, and only what is listed.
    let host = SandboxPolicy {
        network: Network::Host,
        ..SandboxPolicy::default()
    };
    let f = fixture(&rt, "connect", "host", None, host);
    let r = text(&f.invoke(format!("127.0.0.1 {port}").as_bytes()).unwrap());
    assert!(r.ends_with("Permission denied"), "{r}");
    let listed = SandboxPolicy {
        network: Network::Host,
        allow_outbound: vec![format!("127.0.0.1:{port}")],
        ..SandboxPolicy::default()
    };
    // The host's own addresses only where the operator allows them.
    let dir = scratch("sandbox-local-refused");
    compile("connect", &dir, None);
    let e = rt
        .load(
            FunctionConfig::new("connect.Handler", &dir)
                .isolation(Isolation::Process)
                .sandbox(listed.clone()),
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("--sandbox-allow-local-outbound"),
        "{e}"
    );
    let local = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        worker_executable: Some(fnhost_bin()),
        sandbox: fnhost::SandboxConfig {
            allow_local_outbound: true,
            ..fnhost::SandboxConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .unwrap();
    let f = fixture(&local, "connect", "listed", None, listed);
    let r = text(&f.invoke(format!("127.0.0.1 {port}").as_bytes()).unwrap());
    assert!(r.ends_with("connected"), "{r}");
    let r = f
        .invoke(format!("127.0.0.1 {other_port}").as_bytes())
        .unwrap();
    assert!(text(&r).ends_with("Permission denied"), "{}", text(&r));
    assert!(
        r.log.contains("not in the function's allow_outbound"),
        "{}",
        r.log
    );
    // Holding a host port (or its ephemeral range) with bind alone.
    let squat = SandboxPolicy {
        network: Network::Host,
        ..SandboxPolicy::default()
    };
    let f = fixture(&rt, "bind_port", "host", None, squat);
    let r = text(&f.invoke(b"0").unwrap());
    assert!(r.ends_with("Permission denied"), "{r}");
    // Around connect: a datagram, TCP Fast Open, a listener.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let host = SandboxPolicy {
        network: Network::Host,
        ..SandboxPolicy::default()
    };
    let f = fixture(&rt, "udp_send", "host", None, host.clone());
    let r = text(
        &f.invoke(format!("127.0.0.1 {udp_port}").as_bytes())
            .unwrap(),
    );
    assert!(r.ends_with("Permission denied"), "{r}");
    let f = fixture(&rt, "tcp_fast_open", "host", None, host);
    let r = text(
        &f.invoke(format!("127.0.0.1 {other_port}").as_bytes())
            .unwrap(),
    );
    assert!(r.ends_with("Permission denied"), "{r}");
    // Fixed wait: time for a forbidden connection or datagram to arrive, were one sent.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(accepted(&open), 1, "only the listed connection arrived");
    assert_eq!(accepted(&other), 0);
    let mut buf = [0u8; 8];
    assert!(udp.recv(&mut buf).is_err(), "a datagram arrived");
    host_serves(&rt);
}

#[test]
fn forbidden_system_calls_end_the_worker_and_are_named() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    for (name, call) in [
        ("ptrace_parent", "ptrace"),
        ("process_vm_writev", "process_vm_writev"),
        ("mount", "mount"),
        ("unshare", "unshare"),
        ("setns", "setns"),
        ("bpf", "bpf"),
        ("keyctl", "keyctl"),
        ("io_uring_setup", "io_uring_setup"),
        ("raw_socket", "socket"),
        ("netlink_socket", "socket"),
        ("vsock_socket", "socket"),
    ] {
        let r = run(&rt, name, "");
        let (ty, message) = failure(&r);
        assert_eq!(ty, fnhost::sandbox::SANDBOX_VIOLATION, "{name}: {message}");
        assert_eq!(
            message,
            format!("the handler made a forbidden system call: {call}"),
            "{name}"
        );
    }
    host_serves(&rt);
}

#[test]
fn another_abis_system_calls_end_the_worker() {
    if !full_sandbox() || !cfg!(target_arch = "x86_64") {
        return;
    }
    let rt = runtime();
    let (ty, message) = failure(&run(&rt, "int80", ""));
    assert_eq!(ty, fnhost::sandbox::SANDBOX_VIOLATION, "{message}");
    assert!(message.contains("another ABI"), "{message}");
    host_serves(&rt);
}

/// Per-user kernel counters are charged to the sandbox's user namespace's
/// owner: the unprivileged host uid, never root, so a worker that takes
/// them all leaves the host's (found by the outside attack of 2026-12-06:
/// 128 inotify instances held by a worker refused root's next one).
#[test]
fn a_worker_cannot_exhaust_the_hosts_per_user_counters() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if !full_sandbox() || euid != 0 {
        return;
    }
    let rt = runtime();
    let f = fixture(
        &rt,
        "inotify_exhaust",
        "handler",
        None,
        SandboxPolicy::default(),
    );
    // Held by the idle worker after the call.
    let r = text(&f.invoke(b"").unwrap());
    assert!(r.starts_with("inotify instances: "), "{r}");
    // SAFETY: inotify_init1 takes a flag; the descriptor is closed below.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(
        fd >= 0,
        "the host could not create an inotify instance while a worker held {r}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: closes the descriptor just made.
    unsafe { libc::close(fd) };
    drop(f);
}

/// Each worker process holds at most its share of the host's one table of
/// open files: every worker the budget allows, with all its processes,
/// together at most half of `fs.file-max` (an outside attack filled it
/// from 11 workers).
#[test]
fn a_worker_holds_only_its_share_of_the_hosts_open_files() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let r = text(&run(&rt, "open_files", ""));
    let opened: u64 = r
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("{r}"));
    let file_max: u64 = std::fs::read_to_string("/proc/sys/fs/file-max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let config = fnhost::SandboxConfig::default();
    let holders = fnhost::DEFAULT_MAX_WORKER_PROCESSES as u64 * u64::from(config.max_processes);
    assert!(
        opened * holders <= file_max / 2,
        "{r}: {holders} processes could hold more than half of {file_max}"
    );
    assert!(opened < 1024, "{r}");
}

/// A handler's busy threads get one core at most: the server keeps the
/// others (found by an outside attack: background processes took both
/// cores).
#[test]
fn a_worker_gets_one_core_at_most() {
    if !full_sandbox() || std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return;
    }
    let rt = runtime();
    let r = text(&run(&rt, "cpu_hog", ""));
    let cpu: f64 = r
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{r}"));
    // Three spinning threads for a second: 1 s of CPU under the cap
    // (plus the worker's own start), 2 s or more without it.
    assert!(cpu < 1.5, "{r}");
}

#[test]
fn a_fork_bomb_fails_that_call_only() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let dir = scratch("sandbox-fork-bomb");
    compile("fork_bomb", &dir, None);
    let f = rt
        .load(
            FunctionConfig::new("fork_bomb.Handler", &dir)
                .isolation(Isolation::Process)
                .timeout(Duration::from_secs(2)),
        )
        .unwrap();
    let r = f.invoke(b"").unwrap();
    let (ty, message) = failure(&r);
    assert_eq!(ty, fnhost::sandbox::SANDBOX_VIOLATION, "{message}");
    assert!(message.contains("limit of 64 processes"), "{message}");
    host_serves(&rt);
}

#[test]
fn a_memory_balloon_is_refused_or_ends_as_the_memory_limit() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let r = text(&run(&rt, "mmap_balloon", "private"));
    assert_eq!(r, "mmap: Cannot allocate memory");
    let r = run(&rt, "mmap_balloon", "shared");
    let (ty, message) = failure(&r);
    assert_eq!(ty, error_type::MEMORY_LIMIT, "{message}\n{}", r.log);
    host_serves(&rt);
}

fn processes_named(name: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .count()
}

#[test]
fn a_setsid_double_fork_ends_with_its_worker() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let name = format!("esc{}", std::process::id() % 100_000);
    let f = fixture(
        &rt,
        "setsid_escape",
        "handler",
        None,
        SandboxPolicy::default(),
    );
    text(&f.invoke(name.as_bytes()).unwrap());
    assert!(
        eventually(Duration::from_secs(5), || processes_named(&name) > 0),
        "the daemon never started"
    );
    drop(f);
    drop(rt);
    assert!(
        eventually(Duration::from_secs(5), || processes_named(&name) == 0),
        "a daemon outlived its worker's sandbox"
    );
}

#[test]
fn constructors_are_contained_at_deploy_time_too() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let me = std::process::id().to_string();
    for (name, arg, expect) in [
        ("kill_parent", "", "kill(1, SIGKILL)"),
        ("kill_pid", &*format!("{me} 19"), "No such process"),
        ("read_file", "/etc/shadow", "No such file or directory"),
        ("write_file", "/etc/escape 1", "open /etc/escape"),
        ("connect", "127.0.0.1 5432", "open"),
    ] {
        let f = fixture(
            &rt,
            name,
            "constructor",
            Some(arg),
            SandboxPolicy::default(),
        );
        let r = text(&f.invoke(b"").unwrap());
        if name == "connect" {
            assert!(!r.ends_with("connected"), "{r}");
        } else {
            assert!(r.contains(expect), "{name}: {r}");
        }
        host_serves(&rt);
    }
    // A forbidden call in a constructor fails the worker's start, named.
    for (name, call) in [("ptrace_parent", "ptrace"), ("mount", "mount")] {
        let f = fixture(&rt, name, "constructor", Some(""), SandboxPolicy::default());
        let (ty, message) = failure(&f.invoke(b"").unwrap());
        assert_eq!(ty, error_type::INITIALIZATION, "{message}");
        assert!(
            message.contains(&format!("forbidden system call: {call}")),
            "{message}"
        );
    }
    // In the pre-flight of a library to be mapped in process, too.
    let dir = scratch("sandbox-preflight-mount");
    compile("mount", &dir, Some(""));
    let e = rt
        .load(FunctionConfig::new("mount.Handler", &dir))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the library's initialization code made a forbidden system call: mount"),
        "{e}"
    );
    host_serves(&rt);
}

/// `fnhost invoke --isolation process` of every attempt (and `fnhost
/// inspect` of a constructor variant): the CLI survives to print each
/// answer.
#[test]
fn the_cli_survives_every_attempt() {
    if !full_sandbox() {
        return;
    }
    for (dir, name, arg, expect) in compile_attempts("cli") {
        let out = Command::new(fnhost_bin())
            .args([
                "invoke",
                &format!("{name}.Handler"),
                "--isolation",
                "process",
                "--code-dir",
            ])
            .arg(&dir)
            .arg("--cache-dir")
            .arg(cache_dir())
            .arg("--data")
            .arg(serde_json::Value::from(arg.clone()).to_string())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // 0: the function answered; 1: it failed (a typed error); never a
        // signal.
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{name} {arg}: {:?}\n{text}",
            out.status
        );
        assert!(text.contains(expect), "{name} {arg}: {text}");
        assert!(
            !text.contains("connect 127.0.0.1:5432: connected"),
            "{text}"
        );
    }
    for ctor in [Some(""), Some("/etc/shadow")] {
        let dir = scratch("sandbox-cli-inspect");
        let library = compile(
            if ctor == Some("") {
                "kill_parent"
            } else {
                "read_file"
            },
            &dir,
            ctor,
        );
        let out = Command::new(fnhost_bin())
            .arg("inspect")
            .arg(&library)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

/// `fnhost watch` with a library dropped into its directory whose
/// constructor signals its parent: the watcher keeps serving.
#[test]
fn fnhost_watch_survives_a_dropped_library() {
    if !full_sandbox() {
        return;
    }
    let dir = scratch("sandbox-watch");
    // Its output goes to files, read while it runs.
    let output = scratch("sandbox-watch-output");
    let (stdout, stderr) = (output.join("stdout"), output.join("stderr"));
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let mut watch = Command::new(fnhost_bin())
        .args([
            "watch",
            "--isolation",
            "process",
            "--invoke",
            "kill_parent.Handler",
            "--cache-dir",
        ])
        .arg(cache_dir())
        .arg(&dir)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            read(&stdout).contains("watching")
        }),
        "fnhost watch did not start: {}{}",
        read(&stdout),
        read(&stderr)
    );
    let build = scratch("sandbox-watch-build");
    let library = compile("kill_parent", &build, Some(""));
    std::fs::copy(&library, dir.join("kill_parent.so")).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            read(&stdout).contains("invoked")
        }),
        "fnhost watch did not call the library ({:?}): {}{}",
        watch.try_wait(),
        read(&stdout),
        read(&stderr)
    );
    let alive = watch.try_wait().unwrap().is_none();
    watch.kill().unwrap();
    let status = watch.wait().unwrap();
    let (out, err) = (read(&stdout), read(&stderr));
    assert!(alive, "fnhost watch ended: {status:?}\n{out}{err}");
    // It deployed the library and called it: the constructor's attempt
    // reached only the sandbox's init.
    assert!(out.contains("kill(1, SIGKILL)"), "{out}{err}");
}

/// A C program embedding `libfnhost_embed` loads the attacks (a handler
/// and a constructor signalling its parent, a forbidden call) with process
/// isolation and keeps serving.
#[test]
fn a_c_program_embedding_fnhost_survives_the_attacks() {
    if !full_sandbox() {
        return;
    }
    let dir = scratch("sandbox-embed");
    let ctor = dir.join("ctor");
    std::fs::create_dir_all(&ctor).unwrap();
    compile("kill_parent", &ctor, Some(""));
    let exe = dir.join("embed_host");
    let built = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-I"])
        .arg(workspace_root().join("host/embed/include"))
        .arg("-o")
        .arg(&exe)
        .arg(workspace_root().join("tests/sandbox/embed_host.c"))
        .arg("-L")
        .arg(fnhost_e2e::target_dir())
        .arg("-lfnhost_embed")
        .status()
        .unwrap();
    assert!(built.success(), "cc failed");
    let attempts = compile_attempts("embed");
    let mut cmd = Command::new(&exe);
    cmd.arg(plugin_dir());
    for (dir, name, arg, _) in &attempts {
        cmd.arg(dir).arg(format!("{name}.Handler")).arg(arg);
    }
    cmd.arg(&ctor).arg("kill_parent.Handler").arg("");
    let out = cmd
        .env("LD_LIBRARY_PATH", fnhost_e2e::target_dir())
        .env("FNHOST_WORKER_EXECUTABLE", fnhost_bin())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for (_, name, arg, expect) in &attempts {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}.Handler: ")) && l.contains(expect))
            .unwrap_or_else(|| panic!("{name} {arg}: no answer with {expect:?} in\n{text}"));
        assert!(!line.contains(": connected"), "{line}");
    }
    assert_eq!(
        text.matches("kill_parent.Handler: ok kill(1, SIGKILL)")
            .count(),
        2,
        "the handler's and the constructor's: {text}"
    );
    assert!(text.contains("echo: still here"), "{text}");
}

/// Go handlers run in the sandbox too (their default is process isolation):
/// the Go runtime's threads, signals and `/proc` reads work, and the escape
/// suite's Go equivalents fail.
#[test]
fn go_handlers_run_in_the_sandbox_and_cannot_escape_it() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let f = rt
        .load(FunctionConfig::new(
            "misbehaving.Cases",
            fnhost_e2e::go_plugins(),
        ))
        .unwrap();
    assert_eq!(f.config().isolation, Isolation::Process);
    let answer = |payload: &str| text(&f.invoke(payload.as_bytes()).unwrap());
    // Its parent is the sandbox's init, out of its Landlock domain.
    assert_eq!(
        answer("\"kill-parent\""),
        "kill(1, SIGKILL): operation not permitted"
    );
    for path in ["/etc/shadow", cache_dir().to_str().unwrap()] {
        let r = answer(&format!("\"read:{path}\""));
        assert!(r.contains("no such file or directory"), "{r}");
    }
    let env = answer("\"environment\"");
    assert_eq!(env, "[\"FNHOST_WORKER_PROCESS=1\"]");
    // The seed's ordinary cases still answer, from a sandboxed Go runtime.
    assert!(answer("\"context\"").contains("request_id"));
    host_serves(&rt);
}

/// A sandboxed start that finds a worker parked by an earlier one takes
/// it, with the function's own limits.
#[test]
fn parked_workers_serve_with_their_functions_limits() {
    if !full_sandbox() {
        return;
    }
    let rt = runtime();
    let before = rt.stats().parked_worker_starts;
    for _ in 0..4 {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !rt.stats().parked_worker_ready && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let f = rt
            .load(
                FunctionConfig::new("misbehaving.AllocMb", plugin_dir())
                    .isolation(Isolation::Process)
                    .memory_mb(128),
            )
            .unwrap();
        let (ty, message) = failure(&f.invoke(b"512").unwrap());
        assert_eq!(ty, error_type::MEMORY_LIMIT, "{message}");
        assert!(f.invoke(b"32").unwrap().outcome.is_success());
    }
    assert!(
        rt.stats().parked_worker_starts > before,
        "no start took a parked worker"
    );
}

/// A strict sandbox refuses to start without a layer, naming it; auto
/// starts and runs without it.
#[test]
fn strict_refuses_to_start_without_a_layer() {
    let without_user = |mode| fnhost::SandboxConfig {
        mode,
        without: vec!["user".into()],
        ..fnhost::SandboxConfig::default()
    };
    let strict = Runtime::new(RuntimeConfig {
        sandbox: without_user(fnhost::SandboxMode::Strict),
        ..RuntimeConfig::default()
    });
    match strict {
        Err(fnhost::LoadError::Sandbox(why)) => assert!(why.contains("user namespace"), "{why}"),
        other => panic!(
            "strict started without a user namespace: {:?}",
            other.map(|_| ())
        ),
    }
    assert!(Runtime::new(RuntimeConfig {
        sandbox: without_user(fnhost::SandboxMode::Auto),
        ..RuntimeConfig::default()
    })
    .is_ok());
}

/// `fnhost sandbox check`: one line per layer, JSON too, and the exit
/// status says whether a strict sandbox could start.
#[test]
fn sandbox_check_names_every_layer() {
    let out = Command::new(fnhost_bin())
        .args(["sandbox", "check"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for layer in [
        "pid namespace",
        "user namespace",
        "mount namespace",
        "network namespace",
        "seccomp",
        "landlock",
        "cgroup memory",
        "cgroup pids",
    ] {
        assert!(text.contains(&format!("{layer}: ")), "{layer}:\n{text}");
    }
    assert!(text.contains("rules; forbidden calls"), "{text}");
    let json = Command::new(fnhost_bin())
        .args(["sandbox", "check", "--json", "--sandbox", "strict"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let missing = report["missing_required"].as_array().unwrap().len();
    assert_eq!(json.status.code(), Some(if missing == 0 { 0 } else { 1 }));
    assert_eq!(missing == 0, full_sandbox());
    let off = Command::new(fnhost_bin())
        .args(["sandbox", "check", "--sandbox", "off"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&off.stdout).contains("seccomp: off (--sandbox off)"));
}
