//! Cold loads and the pre-flight, as ratios against baselines measured in
//! the same interleaved rounds (see `support/rounds.rs`):
//!
//! - `cold_load`: the in-host part of loading a never-seen build (copy into
//!   the code cache and hash in one pass, ELF check, `dlopen`, descriptor
//!   check, initializer: `Runtime::load` minus the pre-flight, which
//!   `Library::load_timings` reports) of `testplugin` and of C plugins of
//!   1 MB, 5 MB and 20 MB (`support/padded.c`), beside a bare `dlopen` +
//!   `dlsym` of a never-seen file of the same build in the same rounds,
//!   and beside the honest floor (`bare_copy_and_dlopen_*`): a bare copy
//!   of the same bytes into the code cache's file system, then `dlopen` +
//!   `dlsym` of the copy (the trust model requires fnhost's private copy,
//!   so that copy is the least a load can cost);
//!   and an already-hashed build (`*_hashed`: inspected first, as the
//!   watcher does, then loaded). Every build is written to a directory on
//!   the target's file system (as a user's build output is) just before it
//!   is loaded, outside the timed part.
//! - `preflight`: trying a never-seen build of `testplugin` in a throwaway
//!   worker process, against starting `/bin/true` and waiting for it (a bare
//!   spawn) in the same rounds; and deploy-to-serving of a never-seen build
//!   (`Runtime::load`, pre-flight included). Each timed load starts once
//!   the pre-started checker the previous one left is ready (`quiesce`).
//!
//! - `worker_start`: spawn to first answer of a process-isolated `echo`
//!   (a new generation's first worker: the process, its library, the first
//!   call), unsandboxed (`fnhost_worker`) and in the sandbox
//!   (`fnhost_sandboxed_worker`: namespaces, the minimal root, cgroup,
//!   Landlock, seccomp; on the worker parked after the previous start,
//!   which each timed start waits for, untimed), beside starting
//!   `/bin/true` and waiting for it (`bare_spawn`) in the same rounds.
//!
//! Run with `scripts/bench.sh`, which builds the sample plugins in release
//! first.
// A benchmark: a failed assumption is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/rounds.rs"]
mod rounds;
#[path = "support/worker.rs"]
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fnhost::{FunctionConfig, Runtime, RuntimeConfig};
use rounds::Case;

/// Every build loaded is new: its bytes end with a unique number (after
/// the ELF image, so the code is the same and the content address is not).
static NONCE: AtomicU64 = AtomicU64::new(0);

struct Build {
    /// The library's file stem (`<stem>.so`), also the entry's library.
    stem: &'static str,
    base: Vec<u8>,
}

impl Build {
    fn never_seen(&self) -> Vec<u8> {
        let mut bytes = self.base.clone();
        bytes.extend_from_slice(&NONCE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        bytes
    }

    /// Writes a never-seen build to `dir/<stem>.so` (complete before it
    /// appears) and returns its path.
    fn put(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let tmp = dir.join(".incoming");
        std::fs::write(&tmp, self.never_seen()).unwrap();
        let path = dir.join(format!("{}.so", self.stem));
        std::fs::rename(tmp, &path).unwrap();
        path
    }

    fn config(&self, dir: &Path) -> FunctionConfig {
        FunctionConfig::new(format!("{}.Handler", self.stem), dir)
            .initializer(format!("{}.Init", self.stem))
    }
}

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    assert!(
        dir.join("libtestplugin.so").is_file(),
        "libtestplugin.so missing: run scripts/bench.sh (it builds the sample plugins in release first)"
    );
    dir
}

/// `support/padded.c` built with gcc to about `bytes` bytes.
fn padded(work: &Path, bytes: usize) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = work.join(format!("padded-{bytes}.so"));
    let pad = bytes.saturating_sub(16 * 1024).max(1);
    let status = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            &format!("-DPAD_BYTES={pad}"),
            "-I",
        ])
        .arg(root.join("plugin-api/include"))
        .arg(root.join("host/core/benches/support/padded.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .expect("gcc");
    assert!(status.success(), "gcc failed to build padded.c");
    std::fs::read(out).unwrap()
}

/// `dlopen` + `dlsym` of the descriptor, the baseline; closed again when
/// `close` (a C library without thread-locals unmaps cleanly).
fn bare_dlopen(path: &Path, close: bool) -> Duration {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let start = Instant::now();
    // SAFETY: a benchmark opening a library it just wrote (one of the
    // sample plugins or padded.c), whose constructors are harmless.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {}", path.display());
    // SAFETY: `handle` is a live handle; the name is NUL-terminated.
    let symbol = unsafe { libc::dlsym(handle, c"fnhost_plugin_descriptor".as_ptr()) };
    let took = start.elapsed();
    assert!(!symbol.is_null());
    if close {
        // SAFETY: the handle from dlopen above, closed once, nothing of the
        // library in use.
        unsafe { libc::dlclose(handle) };
    }
    took
}

/// The floor of a cold load: a bare copy of `src` into `dir` (on the code
/// cache's file system), then [`bare_dlopen`] of the copy.
fn bare_copy_and_dlopen(src: &Path, dir: &Path, close: bool) -> Duration {
    let copy = dir.join(format!(
        "floor-{}.so",
        NONCE.fetch_add(1, Ordering::Relaxed)
    ));
    let start = Instant::now();
    std::fs::copy(src, &copy).unwrap();
    let copied = start.elapsed();
    let took = copied + bare_dlopen(&copy, close);
    let _ = std::fs::remove_file(&copy);
    took
}

fn main() {
    let release = release_dir();
    // Builds go where a user's build output is (the target directory's
    // file system); the code cache is the default kind (tmpfs), private
    // to this run.
    let target = release.parent().unwrap();
    let work = tempfile::tempdir_in(target).unwrap();
    let cache = tempfile::tempdir_in(fnhost_cache_parent()).unwrap();
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        worker_executable: Some(worker::fnhost_binary()),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let testplugin = Build {
        stem: "testplugin",
        base: std::fs::read(release.join("libtestplugin.so")).unwrap(),
    };
    if rounds::selected("cold_load") {
        let sizes = [("1MB", 1_000_000), ("5MB", 5_000_000), ("20MB", 20_000_000)];
        let mut builds = vec![(
            "testplugin".to_owned(),
            false,
            Build {
                stem: "testplugin",
                base: testplugin.base.clone(),
            },
        )];
        for (label, bytes) in sizes {
            builds.push((
                label.to_owned(),
                true,
                Build {
                    stem: "padded",
                    base: padded(work.path(), bytes),
                },
            ));
        }
        cold_load(&rt, work.path(), &builds);
    }
    if rounds::selected("preflight") {
        preflight(&rt, work.path(), &testplugin);
    }
    if rounds::selected("worker_start") {
        worker_start(cache.path(), &release);
    }
}

/// Spawn to first answer of a process-isolated `echo`, unsandboxed and
/// sandboxed, beside a bare spawn.
fn worker_start(cache: &Path, release: &Path) {
    let runtime = |mode| {
        Runtime::new(RuntimeConfig {
            cache_dir: Some(cache.to_owned()),
            worker_executable: Some(worker::fnhost_binary()),
            sandbox: fnhost::SandboxConfig {
                mode,
                ..fnhost::SandboxConfig::default()
            },
            ..RuntimeConfig::default()
        })
        .unwrap()
    };
    let (plain, sandboxed) = (
        runtime(fnhost::SandboxMode::Off),
        runtime(fnhost::SandboxMode::Auto),
    );
    let first_answer = |rt: &Runtime| {
        let rt = rt.clone();
        let release = release.to_owned();
        Box::new(move |n: u64| {
            let mut total = Duration::ZERO;
            for _ in 0..n {
                let config = FunctionConfig::new("echo.Handler", &release)
                    .isolation(fnhost::Isolation::Process);
                let start = Instant::now();
                let f = rt.load(config).unwrap();
                assert_eq!(f.invoke(b"x").unwrap().outcome.body_bytes(), b"x");
                total += start.elapsed();
                // Its worker ends with it, outside the timed part; a
                // sandboxed start's parked successor is ready before the
                // next (as it is for starts spaced further apart than a
                // process start).
                drop(f);
                let waited = Instant::now();
                while rt.config().sandbox.mode != fnhost::SandboxMode::Off
                    && !rt.stats().parked_worker_ready
                    && waited.elapsed() < Duration::from_secs(2)
                {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            total
        }) as Box<dyn FnMut(u64) -> Duration>
    };
    let cases = vec![
        Case::new(
            "bare_spawn",
            Box::new(|n| {
                let start = Instant::now();
                for _ in 0..n {
                    std::process::Command::new("/bin/true").status().unwrap();
                }
                start.elapsed()
            }),
        )
        .max_batch(16),
        Case::new("fnhost_worker", first_answer(&plain)).max_batch(16),
        Case::new("fnhost_sandboxed_worker", first_answer(&sandboxed)).max_batch(16),
    ];
    let m = rounds::run("worker_start", cases);
    let sandboxed_to_plain = rounds::ratio(&m[2], &m[1]);
    let plain_to_spawn = rounds::ratio(&m[1], &m[0]);
    println!(
        "fnhost_sandboxed_worker / fnhost_worker: {:.2}x ({:.2}-{:.2}); \
         fnhost_worker / bare_spawn: {:.2}x ({:.2}-{:.2})",
        sandboxed_to_plain.0,
        sandboxed_to_plain.1,
        sandboxed_to_plain.2,
        plain_to_spawn.0,
        plain_to_spawn.1,
        plain_to_spawn.2
    );
    rounds::save(
        "worker_start",
        m[0].rounds_ns.len() as u64,
        &m,
        &[
            ("sandboxed_to_unsandboxed", sandboxed_to_plain.0),
            ("unsandboxed_to_bare_spawn", plain_to_spawn.0),
        ],
    );
}

/// The default code cache's parent kind: tmpfs where there is one.
fn fnhost_cache_parent() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

/// Waits (untimed) until the checker a pre-flight started in the background
/// is ready, so that its start does not run beside the next timed load on
/// this 2-core machine (deploys spaced further apart than a process start
/// see the same).
fn quiesce(rt: &Runtime) {
    let waited = Instant::now();
    while !rt.stats().preflight_spare_ready && waited.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn cold_load(rt: &Runtime, work: &Path, builds: &[(String, bool, Build)]) {
    let dir_counter = AtomicU64::new(0);
    let fresh_dir = || work.join(format!("d{}", dir_counter.fetch_add(1, Ordering::Relaxed)));
    let floor_dir =
        fnhost_cache_parent().join(format!("fnhost-bench-floor-{}", std::process::id()));
    std::fs::create_dir_all(&floor_dir).unwrap();
    let floor_dir = &floor_dir;
    let mut cases = Vec::new();
    for (label, is_padded, build) in builds {
        let close = *is_padded;
        let (bare, fnhost, hashed) = if *is_padded {
            (
                format!("bare_dlopen_{label}"),
                format!("fnhost_{label}"),
                format!("fnhost_hashed_{label}"),
            )
        } else {
            (
                format!("bare_dlopen_{label}"),
                label.clone(),
                format!("{label}_hashed"),
            )
        };
        let floor = format!("bare_copy_and_dlopen_{label}");
        // Every load maps a library for good (fnhost never unloads one):
        // few per batch.
        cases.push(
            Case::new(
                &floor,
                Box::new(move |n| {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let path = build.put(&fresh_dir());
                        total += bare_copy_and_dlopen(&path, floor_dir, close);
                    }
                    total
                }),
            )
            .max_batch(8),
        );
        cases.push(
            Case::new(
                &bare,
                Box::new(move |n| {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let path = build.put(&fresh_dir());
                        total += bare_dlopen(&path, close);
                    }
                    total
                }),
            )
            .max_batch(8),
        );
        cases.push(
            Case::new(
                &fnhost,
                Box::new(move |n| {
                    let mut total = Duration::ZERO;
                    for _ in 0..n {
                        let dir = fresh_dir();
                        build.put(&dir);
                        let start = Instant::now();
                        let f = rt.load(build.config(&dir)).unwrap();
                        let took = start.elapsed();
                        let timings = f.library().load_timings();
                        let preflight = timings.preflight.expect("a never-seen build");
                        if std::env::var_os("FNHOST_BENCH_VERBOSE").is_some() {
                            eprintln!("{}: {took:?} {timings:?}", build.stem);
                        }
                        total += took - preflight;
                        assert!(f.initializer_report().unwrap().error.is_none());
                        quiesce(rt);
                        // The mapping stays; its cached file can go.
                        let _ = std::fs::remove_file(f.library().mapped_path());
                    }
                    total
                }),
            )
            .max_batch(8),
        );
        cases.push(
            Case::new(
                &hashed,
                Box::new(move |n| {
                    let dirs: Vec<PathBuf> = (0..n)
                        .map(|_| {
                            let dir = fresh_dir();
                            build.put(&dir);
                            dir
                        })
                        .collect();
                    // Settled builds (their stat identity then stands for them).
                    std::thread::sleep(Duration::from_millis(60));
                    let mut total = Duration::ZERO;
                    for dir in dirs {
                        rt.inspect_library(&dir.join(format!("{}.so", build.stem)))
                            .unwrap();
                        quiesce(rt);
                        let start = Instant::now();
                        let f = rt.load(build.config(&dir)).unwrap();
                        let took = start.elapsed();
                        total += took;
                        if std::env::var_os("FNHOST_BENCH_VERBOSE").is_some() {
                            eprintln!(
                                "hashed {}: {took:?} {:?} init {:?}",
                                build.stem,
                                f.library().load_timings(),
                                f.initializer_report().map(|r| r.duration)
                            );
                        }
                        assert!(f.library().load_timings().preflight.is_none());
                        let _ = std::fs::remove_file(f.library().mapped_path());
                    }
                    total
                }),
            )
            .max_batch(8),
        );
    }
    let rounds_n: u64 = std::env::var("FNHOST_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let m = rounds::run_with("cold_load", &mut cases, rounds_n);
    let _ = std::fs::remove_dir_all(floor_dir);
    println!();
    println!(
        "| library | fnhost in-host cold load / bare copy+dlopen (the floor) | / bare dlopen+dlsym | already-hashed build / bare dlopen |"
    );
    println!("|---|---|---|---|");
    let mut extra = Vec::new();
    for (i, (label, _, _)) in builds.iter().enumerate() {
        let (floor, bare, cold, hashed) = (&m[4 * i], &m[4 * i + 1], &m[4 * i + 2], &m[4 * i + 3]);
        let f = rounds::ratio(cold, floor);
        let c = rounds::ratio(cold, bare);
        let h = rounds::ratio(hashed, bare);
        println!(
            "| {label} | {:.2}x ({:.2}-{:.2}) | {:.2}x ({:.2}-{:.2}) | {:.2}x ({:.2}-{:.2}) |",
            f.0, f.1, f.2, c.0, c.1, c.2, h.0, h.1, h.2
        );
        extra.push((format!("{label}_cold_floor_ratio"), f.0));
        extra.push((format!("{label}_cold_ratio"), c.0));
        extra.push((format!("{label}_hashed_ratio"), h.0));
    }
    let extra: Vec<(&str, f64)> = extra.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    rounds::save("cold_load", rounds_n, &m, &extra);
}

fn preflight(rt: &Runtime, work: &Path, build: &Build) {
    let dir_counter = AtomicU64::new(0);
    let fresh_dir = || work.join(format!("p{}", dir_counter.fetch_add(1, Ordering::Relaxed)));
    let cases = vec![
        Case::new(
            "bare_spawn",
            rounds::each(|| {
                let status = std::process::Command::new("/bin/true").status().unwrap();
                assert!(status.success());
            }),
        ),
        Case::new(
            "fnhost_preflight",
            Box::new(|n| {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let dir = fresh_dir();
                    build.put(&dir);
                    quiesce(rt);
                    let f = rt.load(build.config(&dir)).unwrap();
                    total += f.library().load_timings().preflight.expect("never seen");
                    let _ = std::fs::remove_file(f.library().mapped_path());
                }
                total
            }),
        )
        .max_batch(8),
        Case::new(
            "deploy_new_build_to_serving",
            Box::new(|n| {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let dir = fresh_dir();
                    build.put(&dir);
                    quiesce(rt);
                    let start = Instant::now();
                    let f = rt.load(build.config(&dir)).unwrap();
                    let loaded = start.elapsed();
                    let answer = f.invoke(b"{}");
                    total += start.elapsed();
                    if std::env::var_os("FNHOST_BENCH_VERBOSE").is_some() {
                        eprintln!(
                            "deploy: load {loaded:?} then first call {:?}; {:?}",
                            start.elapsed() - loaded,
                            f.library().load_timings()
                        );
                    }
                    assert!(answer.is_ok());
                    let _ = std::fs::remove_file(f.library().mapped_path());
                }
                total
            }),
        )
        .max_batch(8),
    ];
    rounds::run("preflight", cases);
}
