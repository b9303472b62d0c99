//! Process isolation's cost, against two baselines in the same interleaved
//! rounds: a raw 1 KiB round trip over a Unix socket to a child process
//! that echoes it, and a raw 1 KiB round trip over the same shared-memory
//! channel fnhost's workers use (memfd slots, spin then futex or socket
//! doorbell), to a child that echoes it; versus invoking `echo` with 1 KiB
//! in a worker process through fnhost (encoding, context, result, summary,
//! memory accounting, output capture and log included), unsandboxed
//! (`fnhost_process_isolation`, `--sandbox off`) and in the sandbox
//! (`fnhost_sandboxed`: namespaces, Landlock, a seccomp filter on every
//! system call). Both children are this benchmark binary, re-executed.
//! In-process invocation is shown for reference.
//!
//! Run with `scripts/bench.sh` (builds the `fnhost` binary and the sample
//! plugins in release first).
// A benchmark: a failed assumption is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/rounds.rs"]
mod rounds;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use criterion::black_box;
use fnhost::raw_channel::{HostChannel, Region, WorkerChannel};
use fnhost::{FunctionConfig, Isolation, Runtime, RuntimeConfig};
use rounds::{each, ratio, Case};

const CHILD_ENV: &str = "FNHOST_BENCH_RAW_ECHO";

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    for f in ["libecho.so", "fnhost"] {
        assert!(
            dir.join(f).is_file(),
            "{} missing: run scripts/bench.sh (it builds fnhost and the sample plugins in release first)",
            dir.join(f).display()
        );
    }
    dir
}

/// The socket baseline's child: echo length-prefixed messages on fd 3.
fn raw_socket_child() {
    // SAFETY: the parent dup2'ed its socketpair end onto fd 3 for us.
    let mut s = unsafe { UnixStream::from_raw_fd(3) };
    let mut len = [0u8; 4];
    let mut buf = Vec::new();
    while s.read_exact(&mut len).is_ok() {
        buf.resize(u32::from_le_bytes(len) as usize, 0);
        if s.read_exact(&mut buf).is_err() {
            return;
        }
        let _ = s.write_all(&len);
        let _ = s.write_all(&buf);
    }
}

/// The shared-memory baseline's child: the socket on fd 3, the region on
/// fd 4; echoes every message until the host goes.
fn raw_shared_memory_child() {
    // SAFETY: the parent dup2'ed its socketpair end onto fd 3 and the
    // region's memfd onto fd 4 for us.
    let (socket, region) = unsafe { (UnixStream::from_raw_fd(3), OwnedFd::from_raw_fd(4)) };
    let mut channel = WorkerChannel::new(Region::open(region).unwrap());
    let mut reader = &socket;
    while let Ok(m) = channel.next(&mut reader) {
        if channel.answer(&socket, &m.header, &m.body).is_err() {
            return;
        }
    }
}

fn child(mode: &str, socket: &UnixStream, region: Option<&OwnedFd>) -> Child {
    let fd = socket.as_raw_fd();
    let region = region.map(|r| r.as_raw_fd());
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ENV, mode);
    // SAFETY: fcntl and dup2 are async-signal-safe; the descriptors are
    // valid in the child.
    unsafe {
        cmd.pre_exec(move || {
            let s = libc::fcntl(fd, libc::F_DUPFD, 10);
            if s < 0 || libc::dup2(s, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(r) = region {
                let r = libc::fcntl(r, libc::F_DUPFD, 10);
                if r < 0 || libc::dup2(r, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

fn main() {
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("socket") => return raw_socket_child(),
        Ok("shm") => return raw_shared_memory_child(),
        _ => {}
    }
    if !rounds::selected("isolation_1KiB") {
        return;
    }
    let dir = release_dir();
    let payload = vec![b'x'; 1024];

    let (mut parent, socket_child_end) = UnixStream::pair().unwrap();
    let mut socket_child = child("socket", &socket_child_end, None);
    drop(socket_child_end);

    let (shm_parent, shm_child_end) = UnixStream::pair().unwrap();
    let mut channel = HostChannel::new().unwrap();
    let mut shm_child = child("shm", &shm_child_end, Some(channel.fd()));
    drop(shm_child_end);

    let runtime = |mode| {
        Runtime::new(RuntimeConfig {
            worker_executable: Some(dir.join("fnhost")),
            sandbox: fnhost::SandboxConfig {
                mode,
                ..fnhost::SandboxConfig::default()
            },
            ..RuntimeConfig::default()
        })
        .unwrap()
    };
    let rt = runtime(fnhost::SandboxMode::Off);
    let isolated = rt
        .load(FunctionConfig::new("echo.Handler", &dir).isolation(Isolation::Process))
        .unwrap();
    let sandboxed_rt = runtime(fnhost::SandboxMode::Auto);
    let sandboxed = sandboxed_rt
        .load(FunctionConfig::new("echo.Handler", &dir).isolation(Isolation::Process))
        .unwrap();
    let in_process = rt.load(FunctionConfig::new("echo.Handler", &dir)).unwrap();

    let mut back = vec![0u8; payload.len()];
    let cases = vec![
        Case::new(
            "raw_unix_socket_round_trip",
            each(|| {
                let mut len = [0u8; 4];
                parent
                    .write_all(&(payload.len() as u32).to_le_bytes())
                    .unwrap();
                parent.write_all(&payload).unwrap();
                parent.read_exact(&mut len).unwrap();
                parent.read_exact(&mut back).unwrap();
                black_box(&back);
            }),
        ),
        Case::new(
            "raw_shared_memory_round_trip",
            each(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                let m = channel.call(&shm_parent, b"", &payload, deadline).unwrap();
                assert_eq!(m.body.len(), payload.len());
                black_box(m);
            }),
        ),
        Case::new(
            "fnhost_process_isolation",
            each(|| {
                black_box(isolated.invoke(black_box(&payload)).unwrap());
            }),
        ),
        Case::new(
            "fnhost_sandboxed",
            each(|| {
                black_box(sandboxed.invoke(black_box(&payload)).unwrap());
            }),
        ),
        Case::new(
            "fnhost_in_process",
            each(|| {
                black_box(in_process.invoke(black_box(&payload)).unwrap());
            }),
        ),
    ];
    let m = rounds::run("isolation_1KiB", cases);
    let (iso, shm, sock) = (&m[2], &m[1], &m[0]);
    let to_shm = ratio(iso, shm);
    let to_socket = ratio(iso, sock);
    let sandboxed_to_plain = ratio(&m[3], iso);
    let sandboxed_to_shm = ratio(&m[3], shm);
    println!(
        "fnhost_process_isolation / raw_unix_socket_round_trip: {:.2}x ({:.2}-{:.2}); \
         / raw_shared_memory_round_trip: {:.2}x ({:.2}-{:.2})",
        to_socket.0, to_socket.1, to_socket.2, to_shm.0, to_shm.1, to_shm.2
    );
    println!(
        "fnhost_sandboxed / fnhost_process_isolation: {:.2}x ({:.2}-{:.2}); \
         / raw_shared_memory_round_trip: {:.2}x ({:.2}-{:.2})",
        sandboxed_to_plain.0,
        sandboxed_to_plain.1,
        sandboxed_to_plain.2,
        sandboxed_to_shm.0,
        sandboxed_to_shm.1,
        sandboxed_to_shm.2
    );
    rounds::save(
        "isolation_1KiB",
        m[0].rounds_ns.len() as u64,
        &m,
        &[
            ("isolation_to_socket", to_socket.0),
            ("isolation_to_shared_memory", to_shm.0),
            ("sandboxed_to_unsandboxed", sandboxed_to_plain.0),
            ("sandboxed_to_shared_memory", sandboxed_to_shm.0),
        ],
    );
    drop(parent);
    drop(shm_parent);
    let _ = socket_child.wait();
    let _ = shm_child.kill();
    let _ = shm_child.wait();
}
