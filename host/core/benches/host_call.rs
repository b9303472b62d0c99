//! A host call's cost (issue 36): a 64-byte round trip from a handler to a
//! host function that answers its input, against two baselines in the same
//! interleaved rounds: the same work as a direct Rust call through a
//! function pointer (`direct_rust_call`, the in-process goal's baseline),
//! and a raw 64-byte round trip over the shared-memory channel fnhost's
//! workers use, to a child that echoes it (`raw_shared_memory_round_trip`,
//! the isolated goal's baseline). The handler (`support/host_loop.c`, built
//! here) makes as many calls as its payload says, and the time of each
//! invocation is divided by that count: what is measured is the call, not
//! the invocation around it (spread over 1,000 calls, a few ns each).
//!
//! Run with `scripts/bench.sh host_call` (builds the `fnhost` binary and
//! the sample plugins in release first).
// A benchmark: a failed assumption is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/rounds.rs"]
mod rounds;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use criterion::black_box;
use fnhost::raw_channel::{HostChannel, Region, WorkerChannel};
use fnhost::{FunctionConfig, HostCallContext, HostError, Isolation, Runtime, RuntimeConfig};
use rounds::{each, ratio, Batch, Case};

const CHILD_ENV: &str = "FNHOST_BENCH_HOST_CALL_ECHO";
/// Host calls per invocation.
const CALLS: u64 = 1000;

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    assert!(
        dir.join("fnhost").is_file(),
        "{} missing: run scripts/bench.sh (it builds fnhost in release first)",
        dir.join("fnhost").display()
    );
    dir
}

/// The shared-memory baseline's child: echoes every message.
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

fn child(socket: &UnixStream, region: &OwnedFd) -> Child {
    let (fd, region) = (socket.as_raw_fd(), region.as_raw_fd());
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ENV, "1");
    // SAFETY: fcntl and dup2 are async-signal-safe; the descriptors are
    // valid in the child.
    unsafe {
        cmd.pre_exec(move || {
            let s = libc::fcntl(fd, libc::F_DUPFD, 10);
            let r = libc::fcntl(region, libc::F_DUPFD, 10);
            if s < 0 || r < 0 || libc::dup2(s, 3) < 0 || libc::dup2(r, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

/// Builds `support/host_loop.c` into `dir`.
fn host_loop(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-I"])
        .arg(root.join("plugin-api/include"))
        .arg(root.join("host/core/benches/support/host_loop.c"))
        .arg("-o")
        .arg(dir.join("host_loop.so"))
        .status()
        .expect("gcc");
    assert!(status.success(), "gcc failed to build host_loop.c");
}

/// The host function: answers its input.
fn echo(_: &HostCallContext<'_>, input: &[u8]) -> Result<Vec<u8>, HostError> {
    Ok(input.to_vec())
}

/// `n` host calls, made by invocations of `CALLS` calls each.
fn host_calls(function: &fnhost::Function) -> Batch<'_> {
    Box::new(move |n| {
        let start = Instant::now();
        let mut left = n;
        while left > 0 {
            let k = left.min(CALLS);
            let r = function.invoke(k.to_string().as_bytes()).unwrap();
            assert!(r.outcome.error().is_none(), "{:?}", r.outcome);
            left -= k;
        }
        start.elapsed()
    })
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return raw_shared_memory_child();
    }
    if !rounds::selected("host_call") {
        return;
    }
    let dir = release_dir();
    let work = tempfile::tempdir().unwrap();
    host_loop(work.path());

    let (shm_parent, shm_child_end) = UnixStream::pair().unwrap();
    let mut channel = HostChannel::new().unwrap();
    let mut shm_child = child(&shm_child_end, channel.fd());
    drop(shm_child_end);

    let rt = Runtime::builder()
        .config(RuntimeConfig {
            worker_executable: Some(dir.join("fnhost")),
            ..RuntimeConfig::default()
        })
        .host_function("echo", echo)
        .build()
        .unwrap();
    let load = |isolation| {
        rt.load(
            FunctionConfig::new("host_loop.Handler", work.path())
                .isolation(isolation)
                .timeout(Duration::from_secs(60)),
        )
        .unwrap()
    };
    let in_process = load(Isolation::InProcess);
    let isolated = load(Isolation::Process);

    let input = [b'x'; 64];
    // The direct call has no context to pass: the host function's own
    // work (a 64-byte copy into a new vector) through a function pointer.
    let direct_work: fn(&[u8]) -> Vec<u8> = |input| input.to_vec();
    let cases = vec![
        Case::new(
            "direct_rust_call",
            each(|| {
                let f = black_box(direct_work);
                black_box(f(black_box(&input)));
            }),
        ),
        Case::new("fnhost_in_process", host_calls(&in_process)),
        Case::new(
            "raw_shared_memory_round_trip",
            each(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                let m = channel.call(&shm_parent, b"", &input, deadline).unwrap();
                assert_eq!(m.body.len(), input.len());
                black_box(m);
            }),
        ),
        Case::new("fnhost_isolated", host_calls(&isolated)),
    ];
    let m = rounds::run("host_call", cases);
    let in_process_ratio = ratio(&m[1], &m[0]);
    let isolated_ratio = ratio(&m[3], &m[2]);
    println!(
        "host_call/fnhost_in_process / direct_rust_call: {:.2}x ({:.2}-{:.2}) (goal: at most 3x)",
        in_process_ratio.0, in_process_ratio.1, in_process_ratio.2
    );
    println!(
        "host_call/fnhost_isolated / raw_shared_memory_round_trip: {:.2}x ({:.2}-{:.2}) (goal: at most 2x)",
        isolated_ratio.0, isolated_ratio.1, isolated_ratio.2
    );
    rounds::save(
        "host_call",
        m[0].rounds_ns.len() as u64,
        &m,
        &[
            ("in_process_ratio", in_process_ratio.0),
            ("isolated_ratio", isolated_ratio.0),
        ],
    );
    // The child sleeps on its futex, not on the socket: ended, not waited for.
    let _ = shm_child.kill();
    let _ = shm_child.wait();
}
