//! The host side of process isolation: a pool of worker processes for one
//! generation, each serving one invocation at a time.

pub(crate) mod parked;

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::budget::{self, IdleWorkers, Slot};
use super::output::{self, Taken, WorkerOutput, MAX_CAPTURED};
use super::protocol::{
    read_frame, tag_of, write_frame, Deadline, Done, HostAnswer, HostCall, Invoke, Ready, Start,
    PROTOCOL, TAG_HOST,
};
use super::reaper;
use super::shared_memory::{HostChannel, Message};
use super::{RUNTIME_HEADROOM_MB, WORKER_ARG};
use crate::config::FunctionConfig;
use crate::host_call::HostError;
use crate::invocation::FunctionContext;
use crate::invocation::{cut, format_timeout, Served};
use crate::log_buffer::push_rfc3339_millis;
use crate::outcome::{error_type, Body, BodyKind, FunctionError, InvokeResult, Outcome, Summary};
use crate::sandbox::cgroup::Cgroup;
use crate::sandbox::JailSpec;
use std::os::fd::FromRawFd;

/// The error type a worker reports when it cannot load the library.
pub(crate) const LOAD_ERROR: &str = "LoadError";

/// Most log bytes taken from a worker's answer (its own log buffer keeps
/// 1 MiB; a hostile worker could send up to the frame limit).
const MAX_WORKER_LOG: usize = 1024 * 1024;

/// After this many consecutive failed starts, starts back off.
const START_FAILURES_BEFORE_BACKOFF: u32 = 3;

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Starts every worker from one thread that lives as long as the process:
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked exits, so a
/// short-lived caller thread would take its workers with it.
static SPAWNER: LazyLock<Mutex<mpsc::Sender<SpawnRequest>>> = LazyLock::new(|| {
    let (tx, rx) = mpsc::channel::<SpawnRequest>();
    let _ = std::thread::Builder::new()
        .name("fnhost-spawner".into())
        .spawn(move || {
            for (mut command, reply) in rx {
                let _ = reply.send(command.spawn());
            }
        });
    Mutex::new(tx)
});

fn spawn(command: Command) -> std::io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    SPAWNER
        .lock()
        .send((command, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

/// How to start a worker process.
pub(crate) struct Launch<'a> {
    pub(crate) executable: &'a Path,
    /// The library, opened by the host from its verified cache copy; `None`
    /// for a pre-started checker, which is sent one later
    /// ([`Worker::send_library`]).
    pub(crate) library: Option<&'a OwnedFd>,
    /// `RLIMIT_DATA` of the worker, in bytes.
    pub(crate) data_limit: u64,
    /// A slot in the host-wide worker budget.
    pub(crate) slot: Slot,
    /// Whether the worker serves invocations (and gets a shared-memory
    /// region), or only checks the library.
    pub(crate) serves: bool,
    /// Its sandbox (`None`: the sandbox is off).
    pub(crate) sandbox: Option<&'a JailSpec>,
    /// Most processes in its sandbox (the pids cgroup).
    pub(crate) max_processes: u32,
    /// Start it parked: in its cgroup, waiting for its sandbox's spec (see
    /// [`Worker::activate`]).
    pub(crate) park: bool,
}

/// A sandboxed worker's keeper: its report pipe and its cgroup.
struct Jail {
    report: OwnedFd,
    cgroup: Option<Cgroup>,
    max_processes: u32,
}

/// How a worker that ended was ended, as the host measured it (and its
/// keeper, a process the handler cannot reach, reported).
#[derive(Debug, Default)]
pub(crate) struct Ending {
    /// The forbidden system call that ended it.
    pub(crate) forbidden_call: Option<String>,
    /// The kernel's OOM killer ended a process of its cgroup.
    pub(crate) out_of_memory: bool,
    /// The most memory its cgroup ever charged (`None`: no memory cgroup).
    pub(crate) peak_bytes: Option<u64>,
}

/// One worker process, in its own process group: ending it ends every
/// process its handler started (unless one left the group itself).
pub(crate) struct Worker {
    /// `None` once reaped.
    child: Option<Child>,
    pid: i32,
    pub(crate) socket: UnixStream,
    /// The shared-memory channel (serving workers).
    channel: Option<HostChannel>,
    output: Arc<WorkerOutput>,
    jail: Option<Jail>,
    _slot: Slot,
}

/// How long the host waits for a new worker's sandbox handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors this process owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Writes the uid and gid maps of a keeper's new user namespace: the
/// sandbox's ids inside, an unprivileged host id (the host's own when it
/// is not root) outside.
fn write_id_maps(pid: i32, spec: &JailSpec) -> std::io::Result<()> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let (host_uid, host_gid) = if spec.layers.root {
        (spec.host_uid, spec.host_gid)
    } else {
        // SAFETY: getters without preconditions.
        let ids = unsafe { (libc::geteuid(), libc::getegid()) };
        // Unprivileged: a gid map needs setgroups denied first.
        std::fs::write(proc.join("setgroups"), "deny")?;
        ids
    };
    std::fs::write(proc.join("uid_map"), format!("{} {host_uid} 1\n", spec.uid))?;
    std::fs::write(proc.join("gid_map"), format!("{} {host_gid} 1\n", spec.gid))
}

impl Worker {
    /// Starts the `fnhost` executable as a worker: its socket on fd 3, the
    /// library on fd 4, a serving worker's shared-memory region on fd 5,
    /// every other inherited descriptor closed at `exec`.
    pub(crate) fn launch(launch: Launch<'_>) -> std::io::Result<Worker> {
        let (host_end, worker_end) = UnixStream::pair()?;
        let channel = if launch.serves {
            Some(HostChannel::new()?)
        } else {
            None
        };
        let worker_fd = worker_end.as_raw_fd();
        let library_fd = launch.library.map(|l| l.as_raw_fd());
        let region_fd = channel.as_ref().map(|c| c.fd().as_raw_fd());
        let first_closed = if region_fd.is_some() {
            super::FIRST_CLOSED_FD
        } else if library_fd.is_some() {
            super::REGION_FD
        } else {
            super::LIBRARY_FD
        };
        let data_limit = launch.data_limit;
        let host_pid = std::process::id() as libc::pid_t;
        let mut command = Command::new(launch.executable);
        command.arg(WORKER_ARG);
        let report = match launch.sandbox {
            Some(_) => {
                // An empty environment: only what the dynamic loader needs to
                // start this executable (the worker clears it before any
                // library runs) and the worker marker.
                command.arg(crate::sandbox::SANDBOXED_ARG).env_clear();
                if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
                    command.env("LD_LIBRARY_PATH", path);
                }
                // What the function declared, in the environment the
                // process starts with (a Go library reads that one).
                if let Some(spec) = launch.sandbox {
                    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
                }
                Some(pipe()?)
            }
            None => None,
        };
        let report_fd = report.as_ref().map(|(_, w)| w.as_raw_fd());
        let first_closed = if report_fd.is_some() {
            crate::sandbox::REPORT_FD + 1
        } else {
            first_closed
        };
        command
            .env(OsStr::from_bytes(super::WORKER_ENV.to_bytes()), "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: the closure runs in the child between fork and exec and only
        // makes async-signal-safe system calls (fcntl, dup2, prctl, getppid,
        // setrlimit, close_range) on values computed before the fork.
        unsafe {
            command.pre_exec(move || {
                // Move both descriptors out of the way first, so that placing
                // one on 3 or 4 cannot overwrite the other.
                let socket = libc::fcntl(worker_fd, libc::F_DUPFD, 10);
                let library = match library_fd {
                    Some(fd) => libc::fcntl(fd, libc::F_DUPFD, 10),
                    None => 0,
                };
                let region = match region_fd {
                    Some(fd) => libc::fcntl(fd, libc::F_DUPFD, 10),
                    None => 0,
                };
                let report = match report_fd {
                    Some(fd) => libc::fcntl(fd, libc::F_DUPFD, 10),
                    None => 0,
                };
                if socket < 0
                    || library < 0
                    || region < 0
                    || report < 0
                    || (report_fd.is_some() && libc::dup2(report, crate::sandbox::REPORT_FD) < 0)
                    || libc::dup2(socket, super::SOCKET_FD) < 0
                    || (library_fd.is_some() && libc::dup2(library, super::LIBRARY_FD) < 0)
                    || (region_fd.is_some() && libc::dup2(region, super::REGION_FD) < 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The worker turns this signal into the end of its whole
                // process group (see `worker::contain`).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Compared with the host's own pid, not with 1: as PID 1 of a
                // container the host is 1, and under a subreaper an orphan's
                // parent is not.
                if libc::getppid() != host_pid {
                    libc::_exit(1);
                }
                let limit = libc::rlimit {
                    rlim_cur: data_limit,
                    rlim_max: data_limit,
                };
                if libc::setrlimit(libc::RLIMIT_DATA, &limit) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Every other descriptor the host has open (a plugin's, a
                // connection's) closes at exec. std's own exec-error pipe is
                // close-on-exec already, so it keeps working.
                libc::syscall(
                    libc::SYS_close_range,
                    first_closed as libc::c_uint,
                    libc::c_uint::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                );
                Ok(())
            });
        }
        let mut child = spawn(command)?;
        drop(worker_end);
        let pid = child.id() as i32;
        reaper::worker_started(pid);
        let jail = match (launch.sandbox, report) {
            (Some(spec), Some((report, _))) if launch.park => {
                // The slow part of a sandbox's start (the move into a
                // cgroup), done ahead; the rest when it is activated.
                let cgroup = spec
                    .layers
                    .cgroups
                    .then(|| Cgroup::create(u64::MAX / 2, launch.max_processes))
                    .flatten();
                if let Some(c) = &cgroup {
                    if let Err(e) = c.add(pid as u32) {
                        // SAFETY: the unreaped child holds the group id.
                        unsafe { libc::kill(-pid, libc::SIGKILL) };
                        let _ = child.kill();
                        let _ = child.wait();
                        reaper::worker_reaped(pid);
                        return Err(e);
                    }
                }
                Some(Jail {
                    report,
                    cgroup,
                    max_processes: launch.max_processes,
                })
            }
            (Some(spec), Some((report, _))) => {
                match Self::jail(
                    &host_end,
                    pid,
                    spec,
                    launch.data_limit,
                    launch.max_processes,
                ) {
                    Ok(cgroup) => Some(Jail {
                        report,
                        cgroup,
                        max_processes: launch.max_processes,
                    }),
                    Err(e) => {
                        // SAFETY: the unreaped child holds the group id.
                        unsafe { libc::kill(-pid, libc::SIGKILL) };
                        let _ = child.kill();
                        let _ = child.wait();
                        reaper::worker_reaped(pid);
                        return Err(std::io::Error::new(
                            e.kind(),
                            format!("setting up the worker's sandbox: {e}"),
                        ));
                    }
                }
            }
            _ => None,
        };
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(std::io::Error::other("worker stdio missing"));
        };
        let output = match WorkerOutput::register(stdout.into(), stderr.into()) {
            Ok(o) => o,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                reaper::worker_reaped(pid);
                return Err(e);
            }
        };
        Ok(Worker {
            child: Some(child),
            pid,
            socket: host_end,
            channel,
            output,
            jail,
            _slot: launch.slot,
        })
    }

    /// Makes a parked worker a serving one: its memory limit, its
    /// sandbox's spec and id maps, then its library and a new shared-memory
    /// region, sent over its socket (`SCM_RIGHTS`).
    pub(crate) fn activate(
        mut self,
        spec: &JailSpec,
        data_limit: u64,
        library: &OwnedFd,
    ) -> std::io::Result<Worker> {
        let memory = data_limit.saturating_add(u64::from(spec.tmp_mb) * 1024 * 1024);
        if let Some(cgroup) = self.jail.as_ref().and_then(|j| j.cgroup.as_ref()) {
            cgroup.set_memory_limit(memory);
        }
        let spec = JailSpec {
            data_limit: Some(data_limit),
            ..spec.clone()
        };
        Self::handshake(&self.socket, self.pid, &spec, || Ok(()))?;
        let channel = HostChannel::new()?;
        super::fd_passing::send_fds(
            self.socket.as_raw_fd(),
            &[library.as_raw_fd(), channel.fd().as_raw_fd()],
        )?;
        self.channel = Some(channel);
        Ok(self)
    }

    /// The host's half of a new worker's sandbox: its cgroup (before it
    /// forks anything), its spec, and its uid and gid maps once its keeper
    /// has made the user namespace.
    fn jail(
        socket: &UnixStream,
        pid: i32,
        spec: &JailSpec,
        data_limit: u64,
        max_processes: u32,
    ) -> std::io::Result<Option<Cgroup>> {
        let memory = if data_limit == libc::RLIM_INFINITY {
            u64::MAX / 2
        } else {
            data_limit.saturating_add(u64::from(spec.tmp_mb) * 1024 * 1024)
        };
        let mut cgroup = None;
        Self::handshake(socket, pid, spec, || {
            cgroup = spec
                .layers
                .cgroups
                .then(|| Cgroup::create(memory, max_processes))
                .flatten();
            match &cgroup {
                Some(c) => c.add(pid as u32),
                None => Ok(()),
            }
        })?;
        Ok(cgroup)
    }

    /// Sends a keeper its spec and, with a user namespace, answers its
    /// request for id maps; `place` puts it in its cgroup meanwhile (with
    /// a user namespace the keeper waits for its maps before it forks
    /// anything, so the move, which waits for an RCU grace period on
    /// cgroup v1, overlaps its start; without one it forks at once, so the
    /// cgroup comes first).
    fn handshake(
        socket: &UnixStream,
        pid: i32,
        spec: &JailSpec,
        mut place: impl FnMut() -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut writer = socket;
        if !spec.layers.user_ns {
            place()?;
        }
        write_frame(&mut writer, spec, &[])?;
        if spec.layers.user_ns {
            place()?;
            let mut byte = [0u8; 1];
            let mut reader = Deadline::new(socket, Instant::now() + HANDSHAKE);
            std::io::Read::read_exact(&mut reader, &mut byte)?;
            if byte != *b"U" {
                return Err(std::io::Error::other("unexpected sandbox handshake"));
            }
            write_id_maps(pid, spec)?;
            std::io::Write::write_all(&mut writer, b"G")?;
        }
        Ok(())
    }

    /// Reads what the keeper of an ended sandboxed worker reported.
    fn ending(&self) -> Ending {
        let Some(jail) = &self.jail else {
            return Ending::default();
        };
        let mut record = [0u8; 16];
        // SAFETY: a non-blocking-enough read of at most 16 bytes into a
        // local: the keeper writes its record before it exits, and the
        // worker has exited (or been killed) when this is called, so the
        // pipe holds the record or its writer is gone.
        let n = unsafe {
            let flags = libc::fcntl(jail.report.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(
                jail.report.as_raw_fd(),
                libc::F_SETFL,
                flags | libc::O_NONBLOCK,
            );
            libc::read(
                jail.report.as_raw_fd(),
                record.as_mut_ptr().cast(),
                record.len(),
            )
        };
        let forbidden_call = (n == 16 && record[..4] == *b"FNSB")
            .then(|| i64::from_le_bytes(record[8..].try_into().unwrap_or_default()))
            .filter(|&nr| nr >= 0)
            .map(crate::sandbox::seccomp::name_of);
        Ending {
            forbidden_call,
            out_of_memory: jail.cgroup.as_ref().is_some_and(Cgroup::oom_killed),
            peak_bytes: jail.cgroup.as_ref().and_then(Cgroup::peak_bytes),
        }
    }

    /// Whether a fork in the worker's sandbox failed at its process limit
    /// (the limit), if so.
    pub(crate) fn hit_process_limit(&self) -> Option<u32> {
        let jail = self.jail.as_ref()?;
        jail.cgroup
            .as_ref()
            .is_some_and(Cgroup::hit_process_limit)
            .then_some(jail.max_processes)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Hands a pre-started checker (launched without a library) the
    /// library to check: one byte carrying the descriptor (`SCM_RIGHTS`),
    /// which the worker receives before it reads anything else.
    pub(crate) fn send_library(&self, library: &OwnedFd) -> std::io::Result<()> {
        super::fd_passing::send_fd(self.socket.as_raw_fd(), library.as_raw_fd())
    }

    /// One request and its answer over the shared-memory channel, until
    /// `deadline`.
    fn call(&mut self, header: &[u8], body: &[u8], deadline: Instant) -> std::io::Result<Message> {
        let Some(channel) = self.channel.as_mut() else {
            return Err(std::io::Error::other("this worker only checks libraries"));
        };
        channel.call(&self.socket, header, body, deadline)
    }

    /// A message within the call in progress (see [`HostChannel::call_again`]).
    fn call_again(
        &mut self,
        header: &[u8],
        body: &[u8],
        deadline: Instant,
    ) -> std::io::Result<Message> {
        let Some(channel) = self.channel.as_mut() else {
            return Err(std::io::Error::other("this worker only checks libraries"));
        };
        channel.call_again(&self.socket, header, body, deadline)
    }

    /// Whether the worker took the last request (see [`HostChannel::taken`]).
    fn took_request(&self) -> bool {
        self.channel.as_ref().is_some_and(HostChannel::taken)
    }

    /// Everything the worker wrote since the last take.
    pub(crate) fn take_output(&self) -> Taken {
        self.output.take()
    }

    /// The log lines the handler wrote during the last call, as the worker
    /// wrote them to the shared region (readable after it died).
    pub(crate) fn call_log(&self) -> Vec<u8> {
        self.channel
            .as_ref()
            .map(HostChannel::call_log)
            .unwrap_or_default()
    }

    /// Forgets what the worker wrote so far (see [`WorkerOutput::discard`]).
    fn discard_output(&self) {
        self.output.discard();
    }

    /// Kills the worker's process group and reaps the worker. The group is
    /// signalled only while the worker is unreaped, so its id cannot have
    /// been reused by then.
    fn finish(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: kill has no memory preconditions; the group id is the
        // worker's pid, still held by the unreaped worker.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        let _ = child.kill();
        child.wait().ok()
    }

    /// Kills the worker (and its process group) and reaps it; returns how it ended.
    pub(crate) fn end(mut self) -> Option<std::process::ExitStatus> {
        self.finish()
    }

    /// Reaps a worker that closed its socket, waiting briefly for it to
    /// exit; ends its process group, and returns its exit, its output and
    /// what its sandbox saw.
    pub(crate) fn reap(mut self) -> (Option<std::process::ExitStatus>, Taken, Ending) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let exited = loop {
            match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(_))) => break true,
                Some(Ok(None)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => break false,
            }
        };
        // The worker is a zombie (or still alive): ending its group now is
        // safe, and `finish` collects its status.
        let status = if exited {
            let mut child = self.child.take();
            // SAFETY: as in `finish`: the unreaped worker holds the group id.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
            child.as_mut().and_then(|c| c.wait().ok())
        } else {
            self.finish()
        };
        // What it wrote before dying is in its pipes (closed now): drain it.
        let ending = self.ending();
        (status, self.take_output(), ending)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.finish();
        reaper::worker_reaped(self.pid);
        output::release(&self.output);
    }
}

#[derive(Default)]
struct StartFailures {
    consecutive: u32,
    retry_after: Option<Instant>,
    last: Option<FunctionError>,
}

/// Idle workers of one pool, oldest first, and since when each is idle.
#[derive(Default)]
struct Idle(Mutex<Vec<(Worker, Instant)>>);

impl IdleWorkers for Idle {
    fn oldest_idle(&self) -> Option<Instant> {
        self.0.lock().first().map(|(_, since)| *since)
    }
    fn end_oldest_idle(&self) -> bool {
        let worker = {
            let mut idle = self.0.lock();
            if idle.is_empty() {
                return false;
            }
            idle.remove(0).0
        };
        worker.end();
        true
    }
}

impl Idle {
    fn push(&self, worker: Worker) {
        self.0.lock().push((worker, Instant::now()));
        budget::idle_available();
    }
    /// The most recently used idle worker.
    fn pop(&self) -> Option<Worker> {
        self.0.lock().pop().map(|(w, _)| w)
    }
}

/// The worker processes of one generation.
pub(crate) struct ProcessPool {
    executable: PathBuf,
    /// The library, opened from its verified cache copy; each worker
    /// inherits it (see [`Worker::launch`]).
    library: Arc<OwnedFd>,
    config: FunctionConfig,
    tail_bytes: usize,
    /// How long a call waits for a slot in the host-wide worker budget.
    queue_timeout: Duration,
    idle: Arc<Idle>,
    failures: Mutex<StartFailures>,
    /// Worker processes started so far (successfully or not).
    starts: std::sync::atomic::AtomicU64,
    /// Each worker's sandbox (`None`: off).
    sandbox: Option<JailSpec>,
    /// Most processes in one worker's sandbox.
    max_processes: u32,
}

/// Why the pool could not produce a worker.
pub(crate) struct StartError {
    pub(crate) error: FunctionError,
    pub(crate) log: String,
}

/// The host-wide cap on worker processes held for the whole wait.
#[derive(Debug)]
pub(crate) struct Saturated {
    /// The cap.
    pub(crate) max: usize,
    /// How long the call waited.
    pub(crate) waited: Duration,
}

impl std::fmt::Display for Saturated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "all {} worker processes this host allows are busy (waited {} ms)",
            self.max,
            self.waited.as_millis()
        )
    }
}

enum Obtained {
    /// One of this pool's idle workers.
    Idle(Worker),
    /// A slot to start a new worker in.
    Slot(Slot),
    /// Starts back off after failing: the last failure.
    BackingOff(StartError),
    Saturated(Saturated),
}

enum Acquired {
    Worker(Worker, String),
    Failed(StartError),
    Saturated(Saturated),
}

impl ProcessPool {
    pub(crate) fn new(
        executable: PathBuf,
        library: Arc<OwnedFd>,
        config: FunctionConfig,
        tail_bytes: usize,
        queue_timeout: Duration,
        sandbox: Option<JailSpec>,
        max_processes: u32,
    ) -> ProcessPool {
        let idle = Arc::new(Idle::default());
        let holder: Arc<dyn IdleWorkers> = idle.clone();
        budget::register(Arc::downgrade(&holder));
        ProcessPool {
            executable,
            library,
            config,
            tail_bytes,
            queue_timeout,
            idle,
            failures: Mutex::new(StartFailures::default()),
            starts: std::sync::atomic::AtomicU64::new(0),
            sandbox,
            max_processes,
        }
    }

    /// Starts a worker and returns it to the idle set (reserved capacity and
    /// the deploy-time check).
    pub(crate) fn prestart(&self) -> Result<String, StartError> {
        let deadline = Instant::now() + self.queue_timeout;
        match self.start(deadline) {
            Acquired::Worker(worker, init_log) => {
                self.idle.push(worker);
                Ok(init_log)
            }
            Acquired::Failed(e) => Err(e),
            Acquired::Saturated(s) => Err(StartError {
                error: FunctionError::new(error_type::INITIALIZATION, s.to_string()),
                log: String::new(),
            }),
        }
    }

    /// The last start failure, while starts back off.
    fn backing_off(&self) -> Option<StartError> {
        let f = self.failures.lock();
        match (f.retry_after, &f.last) {
            (Some(until), Some(last)) if Instant::now() < until => Some(StartError {
                error: last.clone(),
                log: String::new(),
            }),
            _ => None,
        }
    }

    fn start(&self, deadline: Instant) -> Acquired {
        if let Some(e) = self.backing_off() {
            return Acquired::Failed(e);
        }
        let waiting = Instant::now();
        let slot = match budget::acquire(deadline) {
            Ok(slot) => slot,
            Err(e) => {
                return Acquired::Saturated(Saturated {
                    max: e.max,
                    waited: waiting.elapsed(),
                })
            }
        };
        self.start_with(slot)
    }

    /// Starts a worker in `slot`, counting failed starts for the back-off
    /// (during which it answers the last failure without starting one).
    /// [`start_with`](Self::start_with), keeping how long a start that
    /// produced a worker took.
    fn start_with_timed(&self, slot: Slot, took: &mut Option<Duration>) -> Acquired {
        let started = Instant::now();
        let acquired = self.start_with(slot);
        if matches!(acquired, Acquired::Worker(..)) {
            *took = Some(started.elapsed());
        }
        acquired
    }

    fn start_with(&self, slot: Slot) -> Acquired {
        if let Some(e) = self.backing_off() {
            return Acquired::Failed(e);
        }
        self.starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = self.start_once(slot);
        let mut f = self.failures.lock();
        match result {
            Ok((worker, log)) => {
                *f = StartFailures::default();
                Acquired::Worker(worker, log)
            }
            Err(e) => {
                f.consecutive += 1;
                f.last = Some(e.error.clone());
                if f.consecutive >= START_FAILURES_BEFORE_BACKOFF {
                    // 1 s, 2 s, 4 s ... up to a minute.
                    let exp = (f.consecutive - START_FAILURES_BEFORE_BACKOFF).min(6);
                    f.retry_after = Some(Instant::now() + Duration::from_secs(1 << exp));
                }
                Acquired::Failed(e)
            }
        }
    }

    fn start_once(&self, slot: Slot) -> Result<(Worker, String), StartError> {
        let fail = |message: String| StartError {
            error: FunctionError::new(error_type::INITIALIZATION, message),
            log: String::new(),
        };
        let data_limit = (u64::from(self.config.memory_mb) + RUNTIME_HEADROOM_MB) * 1024 * 1024;
        // A parked sandboxed worker, when one waits and this function's
        // environment is the empty one it started with.
        let parked = self
            .sandbox
            .as_ref()
            .filter(|spec| spec.env.is_empty())
            .and_then(|spec| {
                let worker = parked::take(&self.executable, spec, self.max_processes)?;
                worker.activate(spec, data_limit, &self.library).ok()
            });
        let worker = match parked {
            Some(worker) => {
                drop(slot);
                Ok(worker)
            }
            None => Worker::launch(Launch {
                executable: &self.executable,
                library: Some(&self.library),
                data_limit,
                slot,
                serves: true,
                sandbox: self.sandbox.as_ref(),
                max_processes: self.max_processes,
                park: false,
            }),
        }
        .map_err(|e| {
            fail(format!(
                "cannot start a worker process ({}): {e}",
                self.executable
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ))
        })?;
        let start = Start {
            protocol: PROTOCOL,
            check_only: false,
            config: self.config.clone(),
        };
        let mut socket = &worker.socket;
        if let Err(e) = write_frame(&mut socket, &start, &[]) {
            // The worker ended before it read its start (a sandbox it could
            // not set up, say): the same failure as one that ends after.
            return Err(failed_to_start(worker, &e));
        }
        let wait = self.config.effective_initializer_timeout() + Duration::from_secs(10);
        let ready: Result<(Ready, Vec<u8>), _> =
            read_frame(&mut Deadline::new(&worker.socket, Instant::now() + wait));
        match ready {
            Ok((Ready { protocol, .. }, _)) if protocol != PROTOCOL => {
                worker.end();
                Err(fail(format!(
                    "the worker executable speaks worker protocol {protocol}, this host {PROTOCOL}: \
                     point the runtime at the fnhost build it came with"
                )))
            }
            Ok((
                Ready {
                    error: None,
                    init_log,
                    ..
                },
                _,
            )) => Ok((worker, init_log)),
            Ok((
                Ready {
                    error: Some((ty, message)),
                    init_log,
                    ..
                },
                _,
            )) => {
                // A library the worker could not load keeps its own type, so
                // callers report it as a load error rather than an initializer's.
                let error_type = if ty == LOAD_ERROR {
                    ty
                } else {
                    error_type::INITIALIZATION.to_owned()
                };
                Err(StartError {
                    error: FunctionError::new(error_type, message),
                    log: init_log,
                })
            }
            Err(e) => Err(failed_to_start(worker, &e)),
        }
    }

    /// A worker for the next call: this pool's most recently used idle one,
    /// else a free slot, else (at the host-wide cap) one freed by ending the
    /// longest-idle worker of any function, else whichever of those comes
    /// first before `deadline`.
    fn obtain(&self, deadline: Instant) -> Obtained {
        let waiting = Instant::now();
        loop {
            if let Some(worker) = self.idle.pop() {
                return Obtained::Idle(worker);
            }
            if let Some(e) = self.backing_off() {
                return Obtained::BackingOff(e);
            }
            if let Some(slot) = budget::try_acquire() {
                return Obtained::Slot(slot);
            }
            if budget::end_longest_idle() {
                continue;
            }
            if !budget::wait_for_change(deadline) {
                return Obtained::Saturated(Saturated {
                    max: budget::max(),
                    waited: waiting.elapsed(),
                });
            }
        }
    }
}

/// What the host knows of an isolated call for the host functions its
/// handler calls (a worker's requests are an untrusted peer's:
/// `dispatch_bytes` checks every limit again, and counts the calls here).
struct HostSide<'a> {
    function: &'a FunctionContext,
    served: &'a Served,
    request_id: String,
    deadline: Instant,
    depth: u32,
    calls: crate::host_call::HostCalls,
}

impl HostSide<'_> {
    /// The [`HostAnswer`] (header and body) to a worker's host call.
    fn answer(&self, name: &str, input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let trace = self.served.ids.trace_id.map(|t| t.to_hex());
        let trace_id = trace
            .as_ref()
            .and_then(|t| std::str::from_utf8(t).ok())
            .unwrap_or("");
        let f = self.function;
        let ctx = crate::host_call::HostCallContext {
            function: &f.function_name,
            function_id: &f.function_id,
            version: self.served.version.as_deref().unwrap_or(&f.version),
            alias: self.served.alias.as_deref().unwrap_or(&f.alias),
            project_id: &f.project_id,
            package: &f.package,
            request_id: &self.request_id,
            trace_id,
            deadline: self.deadline,
            depth: self.depth,
            embedder_value: self
                .served
                .extras
                .as_ref()
                .and_then(|e| e.embedder_value.as_deref()),
            allowed: f.allowed_host_functions.as_deref(),
        };
        let answer = crate::host_call::dispatch_bytes(
            &f.host_functions,
            &self.calls,
            &ctx,
            name.as_bytes(),
            input,
        )
        .and_then(|output| {
            // What crosses to a worker is bounded like what it sends.
            if output.len() > fnhost_api::abi::MAX_HOST_CALL_INPUT {
                return Err(HostError::new(format!(
                    "an answer of {} bytes is over the {} a worker process takes",
                    output.len(),
                    fnhost_api::abi::MAX_HOST_CALL_INPUT
                ))
                .with_type(fnhost_api::abi::host_call_error::LIMIT_EXCEEDED));
            }
            Ok(output)
        });
        match answer {
            Ok(output) => (HostAnswer { error_type: None }.encode(), output),
            Err(e) => (
                HostAnswer {
                    error_type: Some(e.error_type().to_owned()),
                }
                .encode(),
                e.message().as_bytes().to_vec(),
            ),
        }
    }
}

impl ProcessPool {
    /// Runs one invocation in a worker, answering at the deadline at the
    /// latest; `Err` when the host-wide worker budget stayed exhausted.
    pub(crate) fn invoke(
        &self,
        payload: &[u8],
        served: &Served,
        function: &FunctionContext,
    ) -> Result<InvokeResult, Saturated> {
        let started = Instant::now();
        // Host functions this call's handler calls run at the depth of the
        // host function (if any) that started it.
        let depth = crate::host_call::depth_of_new_invocation();
        let timeout = served.timeout_within(self.config.timeout);
        let deadline = started + timeout;
        self.release_idle();
        // The host chooses the request id: what a worker answers cannot
        // change it.
        let request_id = served.ids.request_id.unwrap_or_else(uuid::Uuid::new_v4);
        let extras = served.extras.as_deref();
        let request = Invoke {
            version: served.version.as_deref().map(str::to_owned),
            alias: served.alias.as_deref().map(str::to_owned),
            request_id: Some(request_id),
            trace_id: served.ids.trace_id,
            timeout_ms: extras.and_then(|e| e.timeout).map(|_| {
                u64::try_from(timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1)
            }),
            user_data: extras.map_or_else(Vec::new, |e| {
                e.user_data
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
        }
        .encode();
        let cancel = served.cancel();
        let cancelled = |logged: &[u8], output: &Taken, elapsed| {
            self.failure(
                Some(request_id.to_string()),
                FunctionError::new(
                    error_type::CANCELLED,
                    "the invocation was cancelled by its caller; the worker process was killed",
                ),
                logged,
                output,
                elapsed,
            )
        };
        if cancel.is_some_and(|c| c.is_cancelled()) {
            return Ok(cancelled(&[], &Taken::default(), started.elapsed()));
        }
        // An idle worker may have died while waiting (the kernel's OOM killer,
        // an operator): if it ended without taking the request, the handler
        // never ran, so a fresh worker takes it.
        let queue_deadline = deadline.min(started + self.queue_timeout);
        let mut cold_start = None;
        let (worker, answer) = loop {
            let (mut worker, was_idle) = match self.obtain(queue_deadline) {
                Obtained::Idle(w) => (w, true),
                Obtained::Saturated(s) => return Err(s),
                Obtained::BackingOff(e) => {
                    return Ok(self.failure(
                        Some(request_id.to_string()),
                        e.error,
                        &[],
                        &Taken::default(),
                        started.elapsed(),
                    ))
                }
                Obtained::Slot(slot) => match self.start_with_timed(slot, &mut cold_start) {
                    Acquired::Worker(w, _) => (w, false),
                    Acquired::Failed(e) => {
                        return Ok(self.failure(
                            Some(request_id.to_string()),
                            e.error,
                            e.log.as_bytes(),
                            &Taken::default(),
                            started.elapsed(),
                        ))
                    }
                    Acquired::Saturated(s) => return Err(s),
                },
            };
            // Output of background threads between invocations is not this
            // invocation's (see `WorkerOutput::discard` for the fine print).
            worker.discard_output();
            // A cancel ends the worker, as the deadline does. The hook is
            // cleared before the worker is reaped or reused, so the group
            // it signals is this worker's.
            if let Some(cancel) = cancel {
                let pid = worker.pid;
                cancel.on_cancel(move || {
                    // SAFETY: kill has no memory preconditions; the group id
                    // is the worker's pid, held by the unreaped worker until
                    // the hook is cleared below.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                });
            }
            // The deadline bounds the whole answer, however the worker drips
            // it, host calls included.
            let mut answer = worker.call(&request, payload, deadline);
            if answer
                .as_ref()
                .is_ok_and(|m| tag_of(&m.header) == Some(TAG_HOST))
            {
                let host = HostSide {
                    function,
                    served,
                    request_id: request_id.to_string(),
                    deadline,
                    depth,
                    calls: crate::host_call::HostCalls::default(),
                };
                while let Ok(message) = &answer {
                    if tag_of(&message.header) != Some(TAG_HOST) {
                        break;
                    }
                    let (header, body) = match HostCall::decode(&message.header) {
                        Ok(call) => host.answer(&call.name, &message.body),
                        Err(e) => {
                            answer = Err(e);
                            break;
                        }
                    };
                    answer = worker.call_again(&header, &body, deadline);
                }
            }
            if let Some(cancel) = cancel {
                cancel.clear();
            }
            if cancel.is_some_and(|c| c.is_cancelled()) && answer.is_err() {
                let call_log = worker.call_log();
                let output = worker.take_output();
                worker.end();
                return Ok(cancelled(&call_log, &output, started.elapsed()));
            }
            if was_idle
                && answer
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::UnexpectedEof)
                && !worker.took_request()
            {
                worker.end();
                continue;
            }
            break (worker, answer);
        };
        let answer = answer
            .and_then(|message| Done::decode(&message.header).map(|done| (done, message.body)));
        Ok(match answer {
            Ok((done, body)) => {
                let output = worker.take_output();
                let mut result = self.success(
                    request_id.to_string(),
                    done,
                    body,
                    &output,
                    started.elapsed(),
                );
                result.cold_start = cold_start;
                self.idle.push(worker);
                result
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let output = worker.take_output();
                let call_log = worker.call_log();
                let process_limit = worker.hit_process_limit();
                worker.end();
                let error = match process_limit {
                    Some(limit) => FunctionError::new(
                        crate::sandbox::SANDBOX_VIOLATION,
                        format!(
                            "the handler hit the sandbox's limit of {limit} processes and did not finish within {}; the worker process was killed",
                            format_timeout(timeout)
                        ),
                    ),
                    None => FunctionError::new(
                        error_type::TIMEOUT,
                        format!(
                            "invocation timed out after {}; the worker process was killed",
                            format_timeout(timeout)
                        ),
                    ),
                };
                self.failure(
                    Some(request_id.to_string()),
                    error,
                    &call_log,
                    &output,
                    timeout,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                // Alive but broke the protocol: it is not trusted with
                // another call.
                let output = worker.take_output();
                let call_log = worker.call_log();
                worker.end();
                let error = FunctionError::new(
                    error_type::RUNTIME_EXITED,
                    format!("the worker process broke the protocol and was ended: {e}"),
                );
                self.failure(
                    Some(request_id.to_string()),
                    error,
                    &call_log,
                    &output,
                    started.elapsed(),
                )
            }
            Err(_) => {
                let call_log = worker.call_log();
                let (status, output, ending) = worker.reap();
                let text = String::from_utf8_lossy(&output.bytes);
                let killed_by = status.and_then(|s| s.signal());
                let error = if let Some(call) = ending.forbidden_call {
                    FunctionError::new(
                        crate::sandbox::SANDBOX_VIOLATION,
                        format!("the handler made a forbidden system call: {call}"),
                    )
                } else if self.sandbox.is_some() && killed_by == Some(libc::SIGSYS) {
                    // The filter kills what it cannot name: a system call of
                    // another ABI (32-bit `int 0x80`, x32), or any forbidden
                    // one on a kernel without user notification.
                    FunctionError::new(
                        crate::sandbox::SANDBOX_VIOLATION,
                        "the handler made a forbidden system call the sandbox cannot name (one of another ABI, 32-bit or x32, or any on a kernel without seccomp user notification)",
                    )
                } else if ending.out_of_memory
                    || (killed_by == Some(libc::SIGABRT)
                        && refused_allocation(&text).is_some_and(|bytes| {
                            // Without a memory cgroup (no sandbox: contained
                            // against accidents, not intent) there is no peak
                            // to weigh it against.
                            ending.peak_bytes.is_none_or(|peak| {
                                bytes.saturating_add(peak)
                                    >= (u64::from(self.config.memory_mb) + RUNTIME_HEADROOM_MB)
                                        * 1024
                                        * 1024
                            })
                        }))
                {
                    // The cgroup's OOM kill count is the host's own reading.
                    // A heap allocation RLIMIT_DATA refused raises no signal
                    // of its own: Rust's handler prints its message and
                    // aborts. So the abort (from the wait status) must come
                    // with the message, and the allocation it names, on top
                    // of the peak the cgroup measured, must not have fit the
                    // limit the host set: a handler that prints the message
                    // and aborts, or lowers its own limit and fails a small
                    // allocation, is `runtime exited unexpectedly`.
                    FunctionError::new(
                        error_type::MEMORY_LIMIT,
                        format!(
                            "runtime memory limit exceeded: the function is limited to {} MB",
                            self.config.memory_mb
                        ),
                    )
                } else {
                    FunctionError::new(
                        error_type::RUNTIME_EXITED,
                        format!("runtime exited unexpectedly: {}", describe(status)),
                    )
                };
                self.failure(
                    Some(request_id.to_string()),
                    error,
                    &call_log,
                    &output,
                    started.elapsed(),
                )
            }
        })
    }

    fn prefix_lines(&self, request_id: &str, output: &[u8]) -> String {
        let mut log = Vec::new();
        let now = SystemTime::now();
        for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            push_rfc3339_millis(&mut log, now);
            log.push(b' ');
            log.extend_from_slice(request_id.as_bytes());
            log.push(b' ');
            log.extend_from_slice(&crate::log_buffer::one_line(line));
            log.push(b'\n');
        }
        String::from_utf8_lossy(&log).into_owned()
    }

    /// The call's log: the lines the handler logged (`logged`, as the
    /// worker wrote them, each stamped when written) and what it printed
    /// (`output`, each line stamped when the host read it, which it does as
    /// it is written), in the order they were written; then a note when
    /// output was dropped.
    fn call_lines(&self, request_id: &str, logged: &[u8], output: &Taken) -> String {
        // Each line with its sort key: its time (the first 24 bytes of a
        // formatted line); a logged line without one keeps its
        // predecessor's (a worker's bytes: its own log's order at worst).
        let mut lines: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut key = Vec::new();
        for line in logged.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if line.len() > 24 && line[4] == b'-' && line[23] == b'Z' {
                key = line[..24].to_vec();
            }
            lines.push((key.clone(), line.to_vec()));
        }
        for (when, text) in output.lines() {
            let mut line = Vec::with_capacity(text.len() + 64);
            push_rfc3339_millis(&mut line, when);
            let key = line.clone();
            line.push(b' ');
            line.extend_from_slice(request_id.as_bytes());
            line.push(b' ');
            line.extend_from_slice(&crate::log_buffer::one_line(text));
            lines.push((key, line));
        }
        // Stable: lines of the same millisecond keep logged-then-printed
        // order, and each source its own.
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        let mut log = Vec::with_capacity(lines.iter().map(|(_, l)| l.len() + 1).sum());
        for (_, line) in lines {
            log.extend_from_slice(&line);
            log.push(b'\n');
        }
        let mut log = String::from_utf8_lossy(&log).into_owned();
        if output.dropped > 0 {
            log.push_str(&self.prefix_lines(
                request_id,
                format!(
                    "[fnhost: output truncated: {} more bytes past the {} KiB limit per invocation were dropped]",
                    output.dropped,
                    MAX_CAPTURED / 1024
                )
                .as_bytes(),
            ));
        }
        log
    }

    fn success(
        &self,
        request_id: String,
        mut done: Done,
        body: Vec<u8>,
        output: &Taken,
        elapsed: Duration,
    ) -> InvokeResult {
        let outcome = match done.error {
            None => Outcome::Success(Body {
                kind: match done.kind {
                    1 => BodyKind::Bytes,
                    2 => BodyKind::Text,
                    3 => BodyKind::Json,
                    _ => BodyKind::Empty,
                },
                bytes: body,
            }),
            // A worker is an untrusted peer: its strings get the caps a
            // plugin's get at the ABI boundary.
            Some((ty, message)) => Outcome::Failure(FunctionError::new(
                cut(ty, fnhost_api::abi::MAX_ERROR_TYPE),
                cut(message, fnhost_api::abi::MAX_ERROR_MESSAGE),
            )),
        };
        if done.log.len() > MAX_WORKER_LOG {
            // Keep the end, as the log buffer does.
            let mut start = done.log.len() - MAX_WORKER_LOG;
            while !done.log.is_char_boundary(start) {
                start += 1;
            }
            done.log.drain(..start);
        }
        let log = if output.bytes.is_empty() && output.dropped == 0 {
            done.log
        } else {
            self.call_lines(&request_id, done.log.as_bytes(), output)
        };
        InvokeResult {
            outcome,
            summary: Summary::from_worker(done.memory_used_mb, self.config.memory_mb, elapsed),
            log,
            request_id,
            tail_bytes: self.tail_bytes,
            cold_start: None,
        }
    }

    /// A call that failed in the host's eyes: its log is every line the
    /// handler logged (`logged`) or printed (`output`) before the end, in
    /// order, then the platform's line.
    fn failure(
        &self,
        request_id: Option<String>,
        error: FunctionError,
        logged: &[u8],
        output: &Taken,
        elapsed: Duration,
    ) -> InvokeResult {
        let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut log = self.call_lines(&request_id, logged, output);
        log.push_str(&self.prefix_lines(&request_id, error.message.as_bytes()));
        InvokeResult {
            summary: Summary {
                // A call ended at the memory limit used all of it (the
                // worker that would have measured its peak is gone).
                memory_used_mb: if error.error_type == error_type::MEMORY_LIMIT {
                    f64::from(self.config.memory_mb)
                } else {
                    0.0
                },
                ..Summary::new(elapsed, self.config.memory_mb, 0)
            },
            outcome: Outcome::Failure(error),
            log,
            request_id,
            tail_bytes: self.tail_bytes,
            cold_start: None,
        }
    }

    /// Process ids of the idle workers.
    pub(crate) fn idle_pids(&self) -> Vec<u32> {
        self.idle.0.lock().iter().map(|(w, _)| w.pid()).collect()
    }

    /// Worker processes started so far.
    pub(crate) fn starts(&self) -> u64 {
        self.starts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Worker processes alive and idle.
    pub(crate) fn idle_workers(&self) -> usize {
        self.idle.0.lock().len()
    }

    /// Ends workers idle longer than the idle timeout, keeping the reserved
    /// number; returns how many ended.
    pub(crate) fn release_idle(&self) -> usize {
        let keep = self.config.instances.reserved_instances as usize;
        let timeout = self.config.instances.idle_timeout;
        let mut ended = Vec::new();
        {
            let mut idle = self.idle.0.lock();
            // Oldest first: the most recently used workers stay warm.
            idle.sort_by_key(|(_, since)| *since);
            while idle.len() > keep
                && idle
                    .first()
                    .is_some_and(|(_, since)| since.elapsed() >= timeout)
            {
                ended.push(idle.remove(0).0);
            }
        }
        let n = ended.len();
        for worker in ended {
            worker.end();
        }
        n
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        let workers: Vec<_> = self.idle.0.lock().drain(..).collect();
        for (worker, _) in workers {
            worker.end();
        }
    }
}

/// The size Rust's allocation-failure message (`memory allocation of N
/// bytes failed`) names, the last one in `text`.
fn refused_allocation(text: &str) -> Option<u64> {
    let at = text.rfind("memory allocation of ")?;
    let rest = &text[at + "memory allocation of ".len()..];
    let digits = rest.split(' ').next()?;
    rest[digits.len()..]
        .starts_with(" bytes failed")
        .then(|| digits.parse().ok())
        .flatten()
}

pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

fn describe(status: Option<std::process::ExitStatus>) -> String {
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig} ({})", signal_name(sig)),
            _ => "ended".to_owned(),
        },
        None => "no exit status".to_owned(),
    }
}

/// A worker that ended during its start, reaped: why it ended, and what it
/// wrote.
fn failed_to_start(worker: Worker, e: &dyn std::fmt::Display) -> StartError {
    let (status, output, ending) = worker.reap();
    let why = match ending.forbidden_call {
        Some(call) => format!("the sandbox ended it: it made a forbidden system call: {call}"),
        None => describe(status),
    };
    StartError {
        error: FunctionError::new(
            error_type::INITIALIZATION,
            format!("the worker failed to start ({why}): {e}"),
        ),
        log: String::from_utf8_lossy(&output.bytes).into_owned(),
    }
}
