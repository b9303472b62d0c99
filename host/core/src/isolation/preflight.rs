//! The pre-flight of a library: before the host maps a library it has not
//! run, a throwaway worker process loads it (its ELF constructors run
//! there), checks its descriptor and reports back, under a timeout. A
//! constructor that crashes, exits or blocks costs that worker, not the host.
//!
//! Starting the worker is most of a pre-flight's cost (the `fnhost`
//! executable is large), so after each pre-flight the next checker is
//! started in the background and waits, without a library, until the next
//! pre-flight sends it one over its socket (20 ms after the pre-flight, so
//! that it does not compete with the rest of that deploy). That spare counts as a worker
//! process and is ended like an idle worker when the cap is reached (the
//! longest idle first); it is started only while a slot is free.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::budget;
use super::process::{signal_name, Launch, Worker};
use super::protocol::{read_frame, write_frame, Checked, Deadline, Refusal, Start, Verdict};
use crate::config::FunctionConfig;
use crate::sandbox::JailSpec;

/// Where and how long to pre-flight libraries.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// The `fnhost` executable, started as a worker.
    pub executable: PathBuf,
    /// How long loading may take.
    pub timeout: Duration,
    /// The checkers' sandbox (`None`: off).
    sandbox: Option<Arc<JailSpec>>,
    max_processes: u32,
    spare: Arc<Spare>,
}

/// How long after a pre-flight the next checker starts.
const SPARE_DELAY: Duration = Duration::from_millis(20);

/// The pre-started checker, if one is waiting.
#[derive(Default)]
struct Spare {
    worker: Mutex<Option<(Worker, Instant)>>,
    /// A background start is under way.
    starting: std::sync::atomic::AtomicBool,
    /// Pre-flights run, and how many of them on a pre-started checker.
    runs: std::sync::atomic::AtomicU64,
    on_spare: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spare")
            .field("waiting", &self.worker.lock().is_some())
            .finish()
    }
}

impl budget::IdleWorkers for Spare {
    fn oldest_idle(&self) -> Option<Instant> {
        self.worker.lock().as_ref().map(|(_, since)| *since)
    }
    fn end_oldest_idle(&self) -> bool {
        let spare = self.worker.lock().take();
        spare.map(|(worker, _)| worker.end()).is_some()
    }
}

/// Why a pre-flight failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The worker loaded the library and refused it.
    Refused(Refusal),
    /// The library's constructors (or loading) ended the worker.
    Crashed(String),
    /// They called `exit`.
    Exited(i32),
    /// They did not finish in time.
    Blocked(Duration),
    /// No worker could be started.
    NoWorker(String),
    /// They made a forbidden system call (the sandbox ended the worker).
    Forbidden(String),
}

impl Failure {
    /// What happened, as a deployer reads it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Failure::Refused(r) => format!("{r:?}"),
            Failure::Crashed(signal) => {
                format!("the library's initialization code crashed: {signal}")
            }
            Failure::Exited(code) => {
                format!("the library's initialization code exited the process with status {code}")
            }
            Failure::Blocked(after) => format!(
                "the library's initialization code did not finish within {} s",
                after.as_secs_f64()
            ),
            Failure::Forbidden(call) => {
                format!("the library's initialization code made a forbidden system call: {call}")
            }
            Failure::NoWorker(why) => {
                format!("the library could not be checked in a worker process: {why}")
            }
        }
    }
}

impl Preflight {
    /// Pre-flights with `executable`, each allowed `timeout`, in the
    /// sandbox `sandbox` describes.
    pub(crate) fn new(
        executable: PathBuf,
        timeout: Duration,
        sandbox: Option<JailSpec>,
        max_processes: u32,
    ) -> Preflight {
        let spare: Arc<Spare> = Arc::default();
        let weak: Weak<Spare> = Arc::downgrade(&spare);
        budget::register(weak);
        Preflight {
            executable,
            timeout,
            sandbox: sandbox.map(Arc::new),
            max_processes,
            spare,
        }
    }

    /// Pre-flights run, how many of them on a pre-started checker, and
    /// whether one is waiting now.
    pub(crate) fn counts(&self) -> (u64, u64, bool) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.spare.runs.load(Relaxed),
            self.spare.on_spare.load(Relaxed),
            self.spare.worker.lock().is_some(),
        )
    }

    /// A checker for `library`: the waiting spare, sent the library, or a
    /// new worker started with it.
    fn checker(&self, library: &OwnedFd, deadline: Instant) -> Result<Worker, Failure> {
        let spare = self.spare.worker.lock().take();
        if let Some((worker, _)) = spare {
            match worker.send_library(library) {
                Ok(()) => {
                    self.spare
                        .on_spare
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(worker);
                }
                // It died while it waited: start another.
                Err(_) => drop(worker.end()),
            }
        }
        let slot = budget::acquire(deadline)
            .map_err(|e| Failure::NoWorker(format!("all {} worker processes are busy", e.max)))?;
        Worker::launch(Launch {
            executable: &self.executable,
            library: Some(library),
            data_limit: libc::RLIM_INFINITY,
            slot,
            serves: false,
            sandbox: self.sandbox.as_deref(),
            max_processes: self.max_processes,
            park: false,
        })
        .map_err(|e| Failure::NoWorker(e.to_string()))
    }

    /// Starts the next checker in the background, unless one is waiting or
    /// starting, or the worker cap is reached.
    fn start_spare(&self) {
        use std::sync::atomic::Ordering;
        if self.spare.worker.lock().is_some() || self.spare.starting.swap(true, Ordering::AcqRel) {
            return;
        }
        let spare = Arc::downgrade(&self.spare);
        let executable = self.executable.clone();
        let sandbox = self.sandbox.clone();
        let max_processes = self.max_processes;
        let started = std::thread::Builder::new()
            .name("fnhost-preflight-spare".into())
            .spawn(move || {
                // Not beside the rest of the deploy that asked for this
                // pre-flight (its dlopen and initializer): on few cores the
                // start would slow it down.
                std::thread::sleep(SPARE_DELAY);
                let launched = budget::try_acquire().and_then(|slot| {
                    Worker::launch(Launch {
                        executable: &executable,
                        library: None,
                        data_limit: libc::RLIM_INFINITY,
                        slot,
                        serves: false,
                        sandbox: sandbox.as_deref(),
                        max_processes,
                        park: false,
                    })
                    .ok()
                });
                let Some(spare) = spare.upgrade() else {
                    // The runtime is gone: the new worker ends here.
                    return;
                };
                if let Some(worker) = launched {
                    *spare.worker.lock() = Some((worker, Instant::now()));
                    budget::idle_available();
                }
                spare.starting.store(false, Ordering::Release);
            });
        if started.is_err() {
            self.spare.starting.store(false, Ordering::Release);
        }
    }

    /// Loads `library` in a throwaway worker and returns what it found.
    pub(crate) fn check(&self, library: &OwnedFd) -> Result<Checked, Failure> {
        let deadline = Instant::now() + self.timeout;
        self.spare
            .runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let worker = self.checker(library, deadline)?;
        let checked = self.run(worker, deadline);
        self.start_spare();
        checked
    }

    fn run(&self, worker: Worker, deadline: Instant) -> Result<Checked, Failure> {
        let start = Start {
            protocol: super::protocol::PROTOCOL,
            check_only: true,
            config: FunctionConfig::new("preflight.Check", Path::new("/")),
        };
        let mut socket = &worker.socket;
        let verdict = write_frame(&mut socket, &start, &[])
            .and_then(|()| read_frame::<Verdict>(&mut Deadline::new(&worker.socket, deadline)));
        match verdict {
            Ok((verdict, _)) => {
                worker.end();
                verdict.result.map_err(Failure::Refused)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                worker.end();
                Err(Failure::Blocked(self.timeout))
            }
            Err(_) => {
                let (status, _, ending) = worker.reap();
                if let Some(call) = ending.forbidden_call {
                    return Err(Failure::Forbidden(call));
                }
                Err(match status.map(|s| (s.code(), s.signal())) {
                    Some((Some(code), _)) => Failure::Exited(code),
                    Some((None, Some(sig))) => Failure::Crashed(signal_name(sig).to_owned()),
                    _ => Failure::Crashed("no exit status".to_owned()),
                })
            }
        }
    }
}
