//! Process isolation: a function configured with `Isolation::Process` runs
//! in worker processes (the `fnhost` executable started with `__worker`,
//! through `std::process::Command`, never a raw `fork` of the host), which
//! load its library and serve invocations through a memory region shared
//! with the host ([`shared_memory`]), with a Unix socket for set-up, large
//! messages, doorbells and the end of the worker.
//!
//! What it buys over in-process execution:
//! - **hard timeouts**: at the deadline the worker is killed and the caller
//!   answered `timeout`; a fresh worker serves the next invocation;
//! - **memory limits**: the worker's data segment (heap and private
//!   anonymous mappings) is capped with `RLIMIT_DATA` at the configured
//!   memory plus a fixed headroom for the runtime; an allocation past it is
//!   answered `runtime memory limit exceeded`; `memoryUsed` is the worker's
//!   real peak resident memory during the invocation;
//! - **crash containment**: a segfault, abort or `exit` in the handler is
//!   answered `runtime exited unexpectedly` with the signal or exit status,
//!   and only that worker is replaced;
//! - **output capture**: the worker's stdout and stderr (a handler's
//!   `println!` included) land in the invocation's log with the usual
//!   prefix, at most 1 MiB per invocation, with a note when more was
//!   dropped ([`output`](self) explains how each byte is attributed);
//! - **containment**: each worker is the leader of its own process group;
//!   a timeout, a crash, retirement and the host's death end the whole
//!   group, so no process a handler started outlives its worker (one that
//!   leaves the group with `setsid`/`setpgid` is beyond this reach: that
//!   takes a cgroup). A worker inherits only its socket, its library and
//!   stdio; every other descriptor is closed;
//! - **a host-wide cap** on worker processes ([`RuntimeConfig::max_worker_processes`](crate::RuntimeConfig)):
//!   starting one past it ends the longest-idle worker of any function
//!   first, then waits; a call that still finds none is refused with
//!   `TooManyRequests`.
//!
//! Workers are started from one long-lived thread with `PR_SET_PDEATHSIG`,
//! so they die with the host even when it is killed. Each checks, before it
//! runs anything, that its parent is still the host by the pid captured
//! before the spawn (so isolation holds as PID 1 of a container and under a
//! subreaper); a host that adopts orphans (PID 1, or a subreaper) reaps the
//! zombies of the processes handlers started ([`reaper`](self)). Workers
//! receive the library as an open descriptor of the
//! verified cache copy, never a path.
//!
//! The same worker, started in check mode, is the pre-flight every library
//! passes before the host maps it ([`preflight`]).

pub(crate) mod budget;
pub(crate) mod fd_passing;
pub(crate) mod jail;
mod output;
pub(crate) mod preflight;
pub(crate) mod process;
pub(crate) mod protocol;
mod reaper;
pub mod shared_memory;

/// The worker's socket to the host.
pub(crate) const SOCKET_FD: i32 = 3;
/// The worker's library (an open descriptor of the verified cache copy).
pub(crate) const LIBRARY_FD: i32 = 4;
/// The worker's shared-memory region (a sealed memfd), in serving workers.
pub(crate) const REGION_FD: i32 = 5;
/// Descriptors from this one up are closed in a worker.
pub(crate) const FIRST_CLOSED_FD: i32 = 6;

/// The argument that starts the `fnhost` executable as a worker.
pub const WORKER_ARG: &str = "__worker";

/// Set (to `1`) in a worker process's environment, so that the `fnhost`
/// executable can pick its allocator before parsing its arguments, and a
/// plugin's trampolines know to flush its stdout after each call
/// ([`fnhost_api::abi::WORKER_PROCESS_ENV`], the same name).
pub const WORKER_ENV: &std::ffi::CStr = c"FNHOST_WORKER_PROCESS";

/// Memory a worker may use beyond the function's configured size: the
/// runtime's own heap, thread stacks and the library's data.
pub const RUNTIME_HEADROOM_MB: u64 = 64;

#[cfg(test)]
mod tests {
    #[test]
    fn the_worker_environment_variable_is_the_one_plugins_read() {
        assert_eq!(
            super::WORKER_ENV.to_str().unwrap(),
            fnhost_api::abi::WORKER_PROCESS_ENV
        );
    }
}
