//! The host side of process isolation: a pool of worker processes for one
//! generation, each serving one invocation at a time.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use super::protocol::{read_frame, write_frame, Done, Invoke, Ready, Start};
use super::{RUNTIME_HEADROOM_MB, WORKER_ARG};
use crate::config::FunctionConfig;
use crate::invocation::{format_timeout, Served};
use crate::log_buffer::push_rfc3339_millis;
use crate::outcome::{error_type, Body, BodyKind, FunctionError, InvokeResult, Outcome, Summary};

/// The error type a worker reports when it cannot load the library.
pub(crate) const LOAD_ERROR: &str = "LoadError";

/// Captured output kept per worker between invocations.
const MAX_CAPTURED: usize = 1024 * 1024;
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

/// What the output readers collected, and the last end-of-output marker
/// each stream (stdout, stderr) has passed.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    marks: [u64; 2],
}

/// One worker process.
struct Worker {
    child: Child,
    socket: UnixStream,
    /// Everything the worker wrote to stdout and stderr since last taken.
    output: Arc<(Mutex<Captured>, Condvar)>,
    /// Invocations this worker has answered.
    answered: u64,
}

impl Worker {
    fn take_output(&self) -> Vec<u8> {
        std::mem::take(&mut self.output.0.lock().bytes)
    }

    /// The output of the invocation just answered: waits (briefly) until
    /// both streams passed its end marker, so no line is left behind.
    fn take_output_of_answered(&mut self) -> Vec<u8> {
        self.answered += 1;
        let (lock, passed) = &*self.output;
        let mut captured = lock.lock();
        let deadline = Instant::now() + Duration::from_millis(200);
        while captured.marks.iter().any(|&m| m < self.answered) {
            if passed.wait_until(&mut captured, deadline).timed_out() {
                break;
            }
        }
        std::mem::take(&mut captured.bytes)
    }

    /// Kills the worker and reaps it; returns how it ended.
    fn end(mut self) -> Option<std::process::ExitStatus> {
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// Reaps a worker that closed its socket, waiting briefly for it to exit.
    fn reap(mut self) -> (Option<std::process::ExitStatus>, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().ok();
                }
            }
        };
        // Let the output readers drain what the worker wrote before dying.
        std::thread::sleep(Duration::from_millis(20));
        let output = self.take_output();
        (status, output)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(
    stream: impl Read + Send + 'static,
    into: Arc<(Mutex<Captured>, Condvar)>,
    index: usize,
) {
    let _ = std::thread::Builder::new()
        .name("fnhost-worker-output".into())
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            let marker = super::SYNC_MARKER.as_bytes();
            while let Ok(n) = reader.read_until(b'\n', &mut line) {
                if n == 0 {
                    break;
                }
                let (lock, passed) = &*into;
                let mut captured = lock.lock();
                if let Some(rest) = line.strip_prefix(marker) {
                    let seq = std::str::from_utf8(rest)
                        .ok()
                        .and_then(|s| s.trim().parse().ok());
                    if let Some(seq) = seq {
                        captured.marks[index] = seq;
                        passed.notify_all();
                    }
                } else if captured.bytes.len() + line.len() <= MAX_CAPTURED {
                    captured.bytes.extend_from_slice(&line);
                }
                line.clear();
            }
        });
}

#[derive(Default)]
struct StartFailures {
    consecutive: u32,
    retry_after: Option<Instant>,
    last: Option<FunctionError>,
}

/// The worker processes of one generation.
pub(crate) struct ProcessPool {
    executable: PathBuf,
    library: PathBuf,
    config: FunctionConfig,
    tail_bytes: usize,
    /// Idle workers and since when.
    idle: Mutex<Vec<(Worker, Instant)>>,
    failures: Mutex<StartFailures>,
    /// Worker processes started so far (successfully or not).
    starts: std::sync::atomic::AtomicU64,
}

/// Why the pool could not produce a worker.
pub(crate) struct StartError {
    pub(crate) error: FunctionError,
    pub(crate) log: String,
}

impl ProcessPool {
    pub(crate) fn new(
        executable: PathBuf,
        library: PathBuf,
        config: FunctionConfig,
        tail_bytes: usize,
    ) -> ProcessPool {
        ProcessPool {
            executable,
            library,
            config,
            tail_bytes,
            idle: Mutex::new(Vec::new()),
            failures: Mutex::new(StartFailures::default()),
            starts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Starts a worker and returns it to the idle set (reserved capacity and
    /// the deploy-time check).
    pub(crate) fn prestart(&self) -> Result<String, StartError> {
        let (worker, init_log) = self.start()?;
        self.idle.lock().push((worker, Instant::now()));
        Ok(init_log)
    }

    fn start(&self) -> Result<(Worker, String), StartError> {
        {
            let f = self.failures.lock();
            if let (Some(until), Some(last)) = (f.retry_after, &f.last) {
                if Instant::now() < until {
                    return Err(StartError {
                        error: last.clone(),
                        log: String::new(),
                    });
                }
            }
        }
        self.starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = self.start_once();
        let mut f = self.failures.lock();
        match &result {
            Ok(_) => *f = StartFailures::default(),
            Err(e) => {
                f.consecutive += 1;
                f.last = Some(e.error.clone());
                if f.consecutive >= START_FAILURES_BEFORE_BACKOFF {
                    // 1 s, 2 s, 4 s ... up to a minute.
                    let exp = (f.consecutive - START_FAILURES_BEFORE_BACKOFF).min(6);
                    f.retry_after = Some(Instant::now() + Duration::from_secs(1 << exp));
                }
            }
        }
        result
    }

    fn start_once(&self) -> Result<(Worker, String), StartError> {
        let fail = |message: String| StartError {
            error: FunctionError::new(error_type::INITIALIZATION, message),
            log: String::new(),
        };
        let (host_end, worker_end) =
            UnixStream::pair().map_err(|e| fail(format!("socketpair: {e}")))?;
        let worker_fd = worker_end.as_raw_fd();
        let data_limit = (u64::from(self.config.memory_mb) + RUNTIME_HEADROOM_MB) * 1024 * 1024;
        let mut command = Command::new(&self.executable);
        command
            .arg(WORKER_ARG)
            .env(OsStr::from_bytes(super::WORKER_ENV.to_bytes()), "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and only
        // makes async-signal-safe system calls (dup2, prctl, getppid,
        // setrlimit) on values computed before the fork.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(worker_fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() == 1 {
                    // The host died before we could ask to follow it.
                    libc::_exit(1);
                }
                let limit = libc::rlimit {
                    rlim_cur: data_limit,
                    rlim_max: data_limit,
                };
                if libc::setrlimit(libc::RLIMIT_DATA, &limit) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = spawn(command).map_err(|e| {
            fail(format!(
                "cannot start a worker process ({}): {e}",
                self.executable.display()
            ))
        })?;
        drop(worker_end);
        let output = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        if let Some(out) = child.stdout.take() {
            capture(out, Arc::clone(&output), 0);
        }
        if let Some(err) = child.stderr.take() {
            capture(err, Arc::clone(&output), 1);
        }
        let worker = Worker {
            child,
            socket: host_end,
            output,
            answered: 0,
        };
        let start = Start {
            library: self.library.clone(),
            config: self.config.clone(),
        };
        let mut socket = &worker.socket;
        write_frame(&mut socket, &start, &[])
            .map_err(|e| fail(format!("worker did not start: {e}")))?;
        let wait = self.config.effective_initializer_timeout() + Duration::from_secs(10);
        let _ = worker.socket.set_read_timeout(Some(wait));
        let ready: Result<(Ready, Vec<u8>), _> = read_frame(&mut socket);
        match ready {
            Ok((
                Ready {
                    error: None,
                    init_log,
                },
                _,
            )) => Ok((worker, init_log)),
            Ok((
                Ready {
                    error: Some((ty, message)),
                    init_log,
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
            Err(e) => {
                let (status, output) = worker.reap();
                Err(StartError {
                    error: FunctionError::new(
                        error_type::INITIALIZATION,
                        format!("the worker failed to start ({}): {e}", describe(status)),
                    ),
                    log: String::from_utf8_lossy(&output).into_owned(),
                })
            }
        }
    }

    /// Runs one invocation in a worker, answering at the deadline at the latest.
    pub(crate) fn invoke(&self, payload: &[u8], served: &Served) -> InvokeResult {
        let started = Instant::now();
        let timeout = self.config.timeout;
        let deadline = started + timeout;
        self.release_idle();
        let request = Invoke {
            version: served.version.as_deref().map(str::to_owned),
            alias: served.alias.as_deref().map(str::to_owned),
        };
        // An idle worker may have died while waiting (the kernel's OOM killer,
        // an operator): if the request cannot even be sent, the handler never
        // ran, so a fresh worker takes it.
        let mut reused = self.idle.lock().pop().map(|(w, _)| w);
        let (mut worker, sent) = loop {
            let (worker, was_idle) = match reused.take() {
                Some(w) => (w, true),
                None => match self.start() {
                    Ok((w, _)) => (w, false),
                    Err(e) => {
                        return self.failure(None, e.error, e.log.as_bytes(), started.elapsed())
                    }
                },
            };
            worker.take_output();
            let mut socket = &worker.socket;
            let sent = write_frame(&mut socket, &request, payload);
            if sent.is_err() && was_idle {
                worker.end();
                reused = self.idle.lock().pop().map(|(w, _)| w);
                continue;
            }
            break (worker, sent);
        };
        let mut socket = &worker.socket;
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let _ = worker.socket.set_read_timeout(Some(remaining));
        let answer: std::io::Result<(Done, Vec<u8>)> = sent.and_then(|()| read_frame(&mut socket));
        match answer {
            Ok((done, body)) => {
                let output = worker.take_output_of_answered();
                let result = self.success(done, body, &output);
                self.idle.lock().push((worker, Instant::now()));
                result
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let output = worker.take_output();
                worker.end();
                let error = FunctionError::new(
                    error_type::TIMEOUT,
                    format!(
                        "invocation timed out after {}; the worker process was killed",
                        format_timeout(timeout)
                    ),
                );
                self.failure(None, error, &output, timeout)
            }
            Err(_) => {
                let (status, output) = worker.reap();
                let text = String::from_utf8_lossy(&output);
                let error = if text.contains("memory allocation of") {
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
                self.failure(None, error, &output, started.elapsed())
            }
        }
    }

    fn prefix_lines(&self, request_id: &str, output: &[u8]) -> String {
        let mut log = Vec::new();
        let now = SystemTime::now();
        for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            push_rfc3339_millis(&mut log, now);
            log.push(b' ');
            log.extend_from_slice(request_id.as_bytes());
            log.push(b' ');
            log.extend_from_slice(line);
            log.push(b'\n');
        }
        String::from_utf8_lossy(&log).into_owned()
    }

    fn success(&self, done: Done, body: Vec<u8>, output: &[u8]) -> InvokeResult {
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
            Some((ty, message)) => Outcome::Failure(FunctionError::new(ty, message)),
        };
        let captured = self.prefix_lines(&done.request_id, output);
        InvokeResult {
            outcome,
            summary: Summary {
                duration_ms: done.duration_ms,
                billing_duration_ms: done.billing_duration_ms,
                memory_size_mb: self.config.memory_mb,
                memory_used_mb: done.memory_used_mb,
            },
            log: format!("{}{captured}", done.log),
            request_id: done.request_id,
            tail_bytes: self.tail_bytes,
        }
    }

    fn failure(
        &self,
        request_id: Option<String>,
        error: FunctionError,
        output: &[u8],
        elapsed: Duration,
    ) -> InvokeResult {
        let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut log = self.prefix_lines(&request_id, output);
        log.push_str(&self.prefix_lines(&request_id, error.message.as_bytes()));
        InvokeResult {
            summary: Summary::new(elapsed, self.config.memory_mb, 0),
            outcome: Outcome::Failure(error),
            log,
            request_id,
            tail_bytes: self.tail_bytes,
        }
    }

    /// Process ids of the idle workers.
    pub(crate) fn idle_pids(&self) -> Vec<u32> {
        self.idle.lock().iter().map(|(w, _)| w.child.id()).collect()
    }

    /// Worker processes started so far.
    pub(crate) fn starts(&self) -> u64 {
        self.starts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Worker processes alive and idle.
    pub(crate) fn idle_workers(&self) -> usize {
        self.idle.lock().len()
    }

    /// Ends workers idle longer than the idle timeout, keeping the reserved
    /// number; returns how many ended.
    pub(crate) fn release_idle(&self) -> usize {
        let keep = self.config.instances.reserved_instances as usize;
        let timeout = self.config.instances.idle_timeout;
        let mut ended = Vec::new();
        {
            let mut idle = self.idle.lock();
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
        for (worker, _) in self.idle.get_mut().drain(..) {
            worker.end();
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
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
