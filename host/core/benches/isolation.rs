//! Process isolation's cost, against a baseline in the same run: a raw 1 KiB
//! round trip over a Unix socket to a child process that echoes it (this
//! benchmark binary, re-executed as that child), versus invoking `echo` with
//! 1 KiB in a worker process through fnhost (framing, context, result,
//! summary and log included). In-process invocation is shown for reference.
//!
//! Run with `scripts/bench.sh` (builds the `fnhost` binary and the sample
//! plugins in release first).

use std::io::{Read, Write};
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{black_box, Criterion};
use fnhost::{FunctionConfig, Isolation, Runtime, RuntimeConfig};

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

/// The baseline child: echo length-prefixed messages on fd 3 until EOF.
fn raw_echo_child() {
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

fn bench(c: &mut Criterion) {
    let dir = release_dir();
    let payload = vec![b'x'; 1024];

    let (mut parent, child) = UnixStream::pair().unwrap();
    let fd = child.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ENV, "1");
    // SAFETY: dup2 is async-signal-safe; `fd` is valid in the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut raw_child = cmd.spawn().unwrap();
    drop(child);

    let rt = Runtime::new(RuntimeConfig {
        worker_executable: Some(dir.join("fnhost")),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let isolated = rt
        .load(FunctionConfig::new("echo.Handler", &dir).isolation(Isolation::Process))
        .unwrap();
    let in_process = rt.load(FunctionConfig::new("echo.Handler", &dir)).unwrap();

    let mut g = c.benchmark_group("isolation_1KiB");
    g.bench_function("raw_unix_socket_round_trip", |b| {
        let mut back = vec![0u8; payload.len()];
        let mut len = [0u8; 4];
        b.iter(|| {
            parent
                .write_all(&(payload.len() as u32).to_le_bytes())
                .unwrap();
            parent.write_all(&payload).unwrap();
            parent.read_exact(&mut len).unwrap();
            parent.read_exact(&mut back).unwrap();
            black_box(&back);
        })
    });
    g.bench_function("fnhost_process_isolation", |b| {
        b.iter(|| black_box(isolated.invoke(black_box(&payload)).unwrap()))
    });
    g.bench_function("fnhost_in_process", |b| {
        b.iter(|| black_box(in_process.invoke(black_box(&payload)).unwrap()))
    });
    g.finish();
    drop(parent);
    let _ = raw_child.wait();
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        raw_echo_child();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
