//! The worker process: what runs when the host starts its executable with
//! [`ARG`] for a process-isolated function or a pre-flight.
//!
//! A program that embeds fnhost and runs functions with
//! [`Isolation::Process`] is its own worker
//! executable by default ([`RuntimeConfig::worker_executable`](crate::RuntimeConfig)):
//! it calls [`main_if_worker`] first thing in `main`. (Or it names the
//! `fnhost` binary as the worker executable.)
//!
//! A worker contains itself, loads the library the host passed as a
//! descriptor, then either reports what it found and exits (a pre-flight)
//! or serves `Invoke` frames one at a time until the socket closes: on its
//! main thread, or on a thread the plugin's own runtime started when the
//! plugin exports ABI 1.4's `fnhost_start_thread` (a Go library: entering
//! Go from a thread Go did not create costs microseconds per call).

use std::io::BufReader;
use std::os::fd::OwnedFd;
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use crate::config::{Isolation, RuntimeConfig};
use crate::entry::Entry;
use crate::generation::build::generation_of;
use crate::generation::Mode;
use crate::host_call::{HostError, HostFunctions, Remote};
use crate::invocation::Served;
use crate::isolation::protocol::{
    read_frame, write_frame, Checked, Done, HostAnswer, HostCall, Invoke, Ready, Start, Verdict,
    PROTOCOL,
};
use crate::isolation::shared_memory::{Region, WorkerChannel};
use crate::isolation::{FIRST_CLOSED_FD, LIBRARY_FD, REGION_FD, SOCKET_FD};
use crate::outcome::{BodyKind, Outcome};
use crate::shared::Shared;
use crate::trace::CallIds;

/// The argument (the first after the program name) that starts an
/// executable as a worker.
pub const ARG: &str = crate::isolation::WORKER_ARG;

/// Set (to `1`) in a worker process's environment, so that an executable
/// can pick its allocator before it parses its arguments (the `fnhost`
/// binary keeps glibc's malloc in workers), and a plugin's trampolines know
/// to flush its stdout after each call
/// ([`fnhost_api::abi::WORKER_PROCESS_ENV`], the same name).
pub const ENV: &std::ffi::CStr = crate::isolation::WORKER_ENV;

/// If this process was started as a worker (its first argument is
/// [`ARG`]), runs it as one and exits with its status; otherwise returns at
/// once. Call it first thing in `main` of a program that runs functions
/// with process isolation and is its own worker executable.
pub fn main_if_worker() {
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(ARG)) {
        std::process::exit(main());
    }
}

/// Runs this process as a worker; returns the exit status. For programs
/// that recognise [`ARG`] themselves (see [`main_if_worker`]).
pub fn main() -> i32 {
    let mode = std::env::args_os().nth(2);
    // A sandboxed worker sets its sandbox up before anything else (the
    // keeper and init never come back from `enter`).
    let confinement =
        if mode.as_deref() == Some(std::ffi::OsStr::new(crate::sandbox::SANDBOXED_ARG)) {
            match crate::isolation::jail::enter() {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("fnhost worker: setting up the sandbox: {e}");
                    return 1;
                }
            }
        } else {
            None
        };
    if let Err(e) = receive_library_if_missing() {
        eprintln!("fnhost worker: receiving the library: {e}");
        return 1;
    }
    if let Some(confinement) = confinement {
        if let Err(e) = confinement.apply() {
            eprintln!("fnhost worker: confining the worker: {e}");
            return 1;
        }
    }
    contain();
    // SAFETY: the host starts workers with its end of a socketpair dup2'ed
    // onto fd 3 and nothing else using that descriptor; we take ownership
    // once, here.
    let socket = unsafe { UnixStream::from_raw_fd(SOCKET_FD) };
    match serve(socket) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fnhost worker: {e}");
            1
        }
    }
}

/// A pre-started checker is launched without a library, a parked worker
/// without a library or region: the host sends them over the socket (one
/// byte with `SCM_RIGHTS`) before anything else, and they go on
/// [`LIBRARY_FD`] and [`REGION_FD`].
fn receive_library_if_missing() -> std::io::Result<()> {
    // SAFETY: F_GETFD only queries the descriptor's flags.
    if unsafe { libc::fcntl(LIBRARY_FD, libc::F_GETFD) } >= 0 {
        return Ok(());
    }
    // The library, and a worker started parked also its shared-memory
    // region.
    let fds = crate::isolation::fd_passing::receive_fds(SOCKET_FD)
        .filter(|fds| fds.len() <= 2)
        .ok_or_else(|| std::io::Error::other("expected the library's descriptor"))?;
    for (fd, place) in fds.into_iter().zip([LIBRARY_FD, REGION_FD]) {
        let fd = fd.into_raw_fd();
        if fd != place {
            // SAFETY: dup2 onto a number this process does not use (the
            // library's was checked free above; a parked worker has no
            // region), then the received descriptor, ours, is closed.
            let placed = unsafe { libc::dup2(fd, place) };
            // SAFETY: as above.
            unsafe { libc::close(fd) };
            if placed < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Ends this worker's whole process group (the worker and whatever its
/// handler started).
extern "C" fn end_group(_signal: libc::c_int) {
    // SAFETY: kill is async-signal-safe and has no memory preconditions.
    unsafe { libc::kill(0, libc::SIGKILL) };
}

/// Makes sure nothing of this worker outlives the host: the host's death
/// (the `SIGTERM` of `PR_SET_PDEATHSIG`) or its closing the socket ends the
/// whole process group. Also closes every descriptor inherited by mistake.
fn contain() {
    // SAFETY: close_range takes no pointers; descriptors from
    // FIRST_CLOSED_FD up are not used by anything in this process yet (the
    // host passed only stdio, the socket and the library).
    let closed = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            FIRST_CLOSED_FD as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    if closed != 0 {
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = dir
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd >= FIRST_CLOSED_FD)
                .collect();
            for fd in fds {
                // SAFETY: as above; a descriptor that was the directory's own
                // is already closed and this fails harmlessly.
                unsafe { libc::close(fd) };
            }
        }
    }
    // SAFETY: installs an async-signal-safe handler for SIGTERM; the
    // sigaction struct is zeroed and then filled in full.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = end_group as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
    let _ = std::thread::Builder::new()
        .name("fnhost-host-watch".into())
        .stack_size(64 * 1024)
        .spawn(|| loop {
            let mut fd = libc::pollfd {
                fd: SOCKET_FD,
                events: libc::POLLRDHUP,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the socket this process owns.
            let n = unsafe { libc::poll(&mut fd, 1, -1) };
            if n > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
                end_group(0);
            }
        });
}

/// A worker's peak resident memory per invocation, cheaply.
///
/// The kernel's high-water mark (`VmHWM`) can only rise when pages are
/// mapped in, and every page mapped in is a fault the process is charged
/// with (`getrusage`, all threads, faults through `get_user_pages`
/// included). So after each call one `getrusage` tells whether the mark
/// can have moved since it was last reset; only then are
/// `/proc/self/status` read and the mark reset through
/// `/proc/self/clear_refs` (opened for the purpose: the handler's process
/// holds no descriptor of the runtime's between calls). What a call reports
/// is the peak since the end of the last call that faulted pages in: the
/// peak of the call itself, or what was resident when it started if that
/// was more.
struct MemoryMeter {
    faults_at_mark: u64,
    resident_at_mark_mb: f64,
}

impl MemoryMeter {
    fn new() -> MemoryMeter {
        let mut meter = MemoryMeter {
            faults_at_mark: 0,
            resident_at_mark_mb: 0.0,
        };
        let (_, resident) = Self::read_status();
        meter.mark(resident);
        meter
    }

    fn faults() -> u64 {
        // SAFETY: `usage` is written in full by a successful getrusage.
        unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
                return u64::MAX;
            }
            (usage.ru_minflt as u64).wrapping_add(usage.ru_majflt as u64)
        }
    }

    /// `(VmHWM, VmRSS)` in MB.
    fn read_status() -> (f64, f64) {
        let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> f64 {
            let kib: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0.0);
            (kib / 1024.0 * 1000.0).round() / 1000.0
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// Resets the high-water mark to what is resident now.
    fn mark(&mut self, resident_mb: f64) {
        // Writing 5 resets VmHWM to the current RSS (Linux 4.0+).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        self.resident_at_mark_mb = resident_mb;
        self.faults_at_mark = Self::faults();
    }

    /// The peak since the last mark, in MB; marks again when it moved.
    fn peak_mb(&mut self) -> f64 {
        if Self::faults() == self.faults_at_mark {
            return self.resident_at_mark_mb;
        }
        let (peak, resident) = Self::read_status();
        self.mark(resident);
        peak
    }
}

/// The library the host passed, as the dynamic loader opens it.
fn library_path() -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/proc/self/fd/{LIBRARY_FD}"))
}

/// Loads the library and reports what it found (the pre-flight).
fn check(mut writer: &UnixStream) -> std::io::Result<()> {
    let shared = Shared::for_worker(RuntimeConfig::default(), HostFunctions::unavailable());
    let loaded = shared
        .loader
        .open_in_place(Path::new("the library"), &library_path());
    let result = match loaded {
        Ok(library) => {
            let info = library.info();
            Ok(Checked {
                name: info.name.clone(),
                sdk: info.sdk.clone(),
                abi: info.abi,
                layout_checked: info.layout_checked,
                handlers: library.handler_names(),
                initializers: library.initializer_names(),
                handler_events: info.handler_events.clone(),
            })
        }
        Err(e) => Err(crate::loader::error_to_refusal(&e)),
    };
    write_frame(&mut writer, &Verdict { result }, &[])
}

/// Makes C's `stdout` line-buffered (`stderr` is unbuffered already).
fn line_buffer_stdio() {
    extern "C" {
        static mut stdout: *mut libc::FILE;
    }
    // SAFETY: glibc's `stdout` is a valid FILE* for the life of the
    // process; setvbuf before any output on it is allowed, with a NULL
    // buffer (libc allocates one) and a size of 0.
    unsafe {
        let stream = std::ptr::addr_of!(stdout).read();
        if !stream.is_null() {
            libc::setvbuf(stream, std::ptr::null_mut(), libc::_IOLBF, 0);
        }
    }
}

fn serve(socket: UnixStream) -> std::io::Result<()> {
    // One descriptor for both directions (a clone would be one more
    // descriptor the handler's process holds), for the life of the process:
    // the serving loop and the handler's host calls share it.
    let socket: &'static UnixStream = Box::leak(Box::new(socket));
    let mut reader = BufReader::new(socket);
    let mut writer = socket;
    let (start, _): (Start, Vec<u8>) = read_frame(&mut reader)?;
    if start.protocol != PROTOCOL {
        let error = format!(
            "the host speaks worker protocol {}, this worker executable {PROTOCOL}: \
             point the runtime at the fnhost build it came with",
            start.protocol
        );
        return write_frame(
            &mut writer,
            &Ready {
                protocol: PROTOCOL,
                error: Some((crate::isolation::process::LOAD_ERROR.to_owned(), error)),
                init_log: String::new(),
            },
            &[],
        );
    }
    if start.check_only {
        return check(writer);
    }
    // SAFETY: a serving worker is started with its shared-memory region
    // dup2'ed onto REGION_FD and nothing else using that descriptor; we
    // take ownership once, here.
    let region = Region::open(unsafe { OwnedFd::from_raw_fd(REGION_FD) })?;
    let channel = WorkerChannel::new(region);
    let ring = channel.log_ring();
    let link = Arc::new(WorkerLink {
        io: parking_lot::Mutex::new(WorkerIo {
            channel,
            reader,
            socket,
        }),
        in_call: std::sync::atomic::AtomicBool::new(false),
    });
    // Each log line the handler writes goes to the host as it is written
    // (the region's log area), so that a call killed at its deadline,
    // crashed or out of memory keeps it.
    crate::log_buffer::set_mirror(Box::new(move |line| ring.append(line)));
    // C stdio on a pipe buffers whole blocks: what printf wrote before a
    // crash would die in the buffer. Line-buffered, each line reaches the
    // host's pipe as it ends (Rust's stdout is line-buffered already, Go's
    // unbuffered). Before the library is loaded: set once, for its stdio.
    line_buffer_stdio();
    let mut config = start.config;
    config.isolation = Isolation::InProcess;
    let loaded = (|| {
        let shared = Shared::for_worker(
            RuntimeConfig {
                worker_stack_size: 2 * 1024 * 1024,
                ..RuntimeConfig::default()
            },
            HostFunctions::remote(Box::new(RemoteHost(Arc::clone(&link)))),
        );
        let entry =
            Entry::parse(&config.entry).map_err(|e| ("LoadError".to_owned(), e.to_string()))?;
        let init = config
            .initializer
            .as_deref()
            .map(Entry::parse)
            .transpose()
            .map_err(|e| ("LoadError".to_owned(), e.to_string()))?;
        let name = format!("{}.so", entry.library);
        let library = shared
            .loader
            .open_in_place(Path::new(&name), &library_path())
            .map_err(|e| ("LoadError".to_owned(), e.to_string()))?;
        let start_thread = library.start_thread();
        let generation = generation_of(&shared, config, library, &entry, init.as_ref())
            .map_err(|e| ("LoadError".to_owned(), e.to_string()))?;
        let init_log = match generation.warm_up() {
            Ok(()) => generation
                .initializer_report()
                .map(|r| r.log)
                .unwrap_or_default(),
            Err(report) => {
                let e = report.error.unwrap_or_else(|| {
                    crate::FunctionError::new(
                        crate::error_type::INITIALIZATION,
                        "initializer failed",
                    )
                });
                return Err((e.error_type, format!("{}\n{}", e.message, report.log)));
            }
        };
        Ok((shared, generation, init_log, start_thread))
    })();
    let (_shared, generation, init_log, start_thread) = match loaded {
        Ok(v) => v,
        Err(error) => {
            write_frame(
                &mut writer,
                &Ready {
                    protocol: PROTOCOL,
                    error: Some(error),
                    init_log: String::new(),
                },
                &[],
            )?;
            return Ok(());
        }
    };
    write_frame(
        &mut writer,
        &Ready {
            protocol: PROTOCOL,
            error: None,
            init_log,
        },
        &[],
    )?;
    let serve = || serve_calls(&link, &generation);
    match start_thread {
        Some(start) => on_plugin_thread(start, serve),
        None => serve(),
    }
}

/// The worker's end of its channel: taken by the serving loop between
/// calls, and by a handler's host call during one.
struct WorkerIo {
    channel: WorkerChannel,
    reader: BufReader<&'static UnixStream>,
    socket: &'static UnixStream,
}

/// The host, as a worker's handlers reach it for host functions: a
/// [`HostCall`] answered in the middle of the call, and the host's
/// [`HostAnswer`] read back before the handler goes on.
struct RemoteHost(Arc<WorkerLink>);

/// The channel, and whether a call is in progress on it (host calls are
/// answered only then: an initializer runs at the worker's start, before
/// any call, and a thread a handler left running after it returned has no
/// call to belong to).
struct WorkerLink {
    io: parking_lot::Mutex<WorkerIo>,
    in_call: std::sync::atomic::AtomicBool,
}

impl Remote for RemoteHost {
    fn call(&self, name: &str, input: &[u8]) -> Result<Vec<u8>, HostError> {
        let unavailable = |why: String| {
            HostError::new(why).with_type(fnhost_api::abi::host_call_error::UNAVAILABLE)
        };
        if !self.0.in_call.load(std::sync::atomic::Ordering::Acquire) {
            return Err(unavailable(
                "a worker process reaches host functions from its handlers' calls, not from initializers"
                    .into(),
            ));
        }
        let lost = |e: std::io::Error| unavailable(format!("the host did not answer: {e}"));
        let mut io = self.0.io.lock();
        let WorkerIo {
            channel,
            reader,
            socket,
        } = &mut *io;
        let request = HostCall {
            name: name.to_owned(),
        };
        channel
            .answer(socket, &request.encode(), input)
            .map_err(lost)?;
        let message = channel.next_answer(reader).map_err(lost)?;
        let answer = HostAnswer::decode(&message.header).map_err(lost)?;
        match answer.error_type {
            None => Ok(message.body),
            Some(error_type) => {
                Err(HostError::new(String::from_utf8_lossy(&message.body)).with_type(error_type))
            }
        }
    }
}

/// Serves `Invoke` frames until the socket closes.
fn serve_calls(
    link: &WorkerLink,
    generation: &Arc<crate::generation::Generation>,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    let io = &link.io;
    let mut memory = MemoryMeter::new();
    loop {
        link.in_call.store(false, Ordering::Release);
        let next = {
            let mut io = io.lock();
            let WorkerIo {
                channel, reader, ..
            } = &mut *io;
            channel.next(reader)
        };
        let message = match next {
            Ok(message) => message,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let invoke = Invoke::decode(&message.header)?;
        link.in_call.store(true, Ordering::Release);
        let extras = crate::CallOptions {
            user_data: invoke.user_data.into_iter().collect(),
            timeout: invoke.timeout_ms.map(std::time::Duration::from_millis),
            ..crate::CallOptions::default()
        }
        .extras(None);
        let served = Served {
            version: invoke.version.map(Arc::from),
            alias: invoke.alias.map(Arc::from),
            ids: CallIds {
                request_id: invoke.request_id,
                trace_id: invoke.trace_id,
            },
            extras,
        };
        let mut result = match generation.invoke(&message.body, served, Mode::CurrentThread) {
            Ok(r) => r,
            Err(e) => {
                let done = Done {
                    error: Some(("FunctionInvokeError".into(), e.to_string())),
                    ..Done::default()
                };
                link.in_call.store(false, Ordering::Release);
                let mut io = io.lock();
                let WorkerIo {
                    channel, socket, ..
                } = &mut *io;
                channel.answer(socket, &done.encode(), &[])?;
                continue;
            }
        };
        let log = std::mem::take(&mut result.log);
        let (error, kind, body) = match &result.outcome {
            Outcome::Success(b) => (
                None,
                match b.kind {
                    BodyKind::Empty => 0,
                    BodyKind::Bytes => 1,
                    BodyKind::Text => 2,
                    BodyKind::Json => 3,
                },
                b.bytes.as_slice(),
            ),
            Outcome::Failure(e) => (Some((e.error_type.clone(), e.message.clone())), 0, &[][..]),
        };
        let done = Done {
            error,
            kind,
            memory_used_mb: memory.peak_mb(),
            log,
        };
        // What C stdio (and C++ iostreams synced with it) still buffers was
        // written by this invocation: out before the answer, so the host
        // finds it in the pipes when the answer arrives.
        // SAFETY: fflush(NULL) flushes every open C stream; no pointer is
        // passed.
        unsafe { libc::fflush(std::ptr::null_mut()) };
        link.in_call.store(false, Ordering::Release);
        let mut io = io.lock();
        let WorkerIo {
            channel, socket, ..
        } = &mut *io;
        channel.answer(socket, &done.encode(), body)?;
    }
}

/// Runs `work` on a thread the plugin's runtime starts (ABI 1.4's
/// `fnhost_start_thread`) and waits for it; on this thread when the plugin
/// declines to start one.
///
/// A plugin that breaks the contract (calls `entry` after declining, or
/// twice) gets the work once at most; what else it does harms only its own
/// worker process, which it owns anyway.
fn on_plugin_thread(
    start: fnhost_api::abi::StartThreadFn,
    work: impl FnOnce() -> std::io::Result<()> + Send,
) -> std::io::Result<()> {
    type Work<'a> = Box<dyn FnOnce() + Send + 'a>;
    let (sender, answer) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(1);
    let slot: parking_lot::Mutex<Option<Work<'_>>> =
        parking_lot::Mutex::new(Some(Box::new(move || {
            let _ = sender.send(work());
        })));

    /// The plugin's thread: takes the work (once, whoever calls) and runs
    /// it. Nothing unwinds into the plugin's runtime.
    unsafe extern "C" fn entry(arg: *mut std::ffi::c_void) {
        // SAFETY: `arg` is `slot` below, which `on_plugin_thread` keeps
        // alive until the work has run (it waits for its answer) or the
        // plugin declined (then `entry` is not called); the lifetime erased
        // from the work is the borrow that this wait keeps valid.
        let slot = unsafe { &*(arg as *const parking_lot::Mutex<Option<Work<'static>>>) };
        let work = slot.lock().take();
        if let Some(work) = work {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        }
    }

    let arg = &slot as *const parking_lot::Mutex<Option<Work<'_>>> as *mut std::ffi::c_void;
    // SAFETY: `start` is the plugin's 1.4 `fnhost_start_thread`, called as
    // the ABI declares it; `arg` stays valid as `entry` requires (above).
    if unsafe { start(entry, arg) } == 0 {
        // The work's answer, or its sender dropped: it panicked there.
        return answer.recv().unwrap_or_else(|_| {
            Err(std::io::Error::other(
                "the worker's serving thread (the plugin's own) panicked",
            ))
        });
    }
    // Declined: served here.
    let work = slot.lock().take();
    if let Some(work) = work {
        work();
    }
    answer.recv().unwrap_or_else(|_| {
        Err(std::io::Error::other(
            "the plugin declined to start a thread and then took the work",
        ))
    })
}
