//! The pre-flight of a library: before the host maps a library it has not
//! run, a throwaway worker process loads it (its ELF constructors run
//! there), checks its descriptor and reports back, under a timeout. A
//! constructor that crashes, exits or blocks costs that worker, not the host.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::budget;
use super::process::{signal_name, Launch, Worker};
use super::protocol::{read_frame, write_frame, Checked, Deadline, Refusal, Start, Verdict};
use crate::config::FunctionConfig;

/// Where and how long to pre-flight libraries.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// The `fnhost` executable, started as a worker.
    pub executable: PathBuf,
    /// How long loading may take.
    pub timeout: Duration,
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
            Failure::NoWorker(why) => {
                format!("the library could not be checked in a worker process: {why}")
            }
        }
    }
}

impl Preflight {
    /// Loads `library` in a throwaway worker and returns what it found.
    pub(crate) fn check(&self, library: &OwnedFd) -> Result<Checked, Failure> {
        let deadline = Instant::now() + self.timeout;
        let slot = budget::acquire(deadline)
            .map_err(|e| Failure::NoWorker(format!("all {} worker processes are busy", e.max)))?;
        let worker = Worker::launch(Launch {
            executable: &self.executable,
            library,
            data_limit: libc::RLIM_INFINITY,
            slot,
            serves: false,
        })
        .map_err(|e| Failure::NoWorker(e.to_string()))?;
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
                let (status, _) = worker.reap();
                Err(match status.map(|s| (s.code(), s.signal())) {
                    Some((Some(code), _)) => Failure::Exited(code),
                    Some((None, Some(sig))) => Failure::Crashed(signal_name(sig).to_owned()),
                    _ => Failure::Crashed("no exit status".to_owned()),
                })
            }
        }
    }
}
