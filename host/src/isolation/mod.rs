//! Process isolation: a function configured with `Isolation::Process` runs
//! in worker processes (the `fnhost` executable started with `__worker`,
//! through `std::process::Command`, never a raw `fork` of the host), which
//! load its library and serve invocations over a Unix socket.
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
//!   `println!` included) land in the invocation's log with the usual prefix.
//!
//! Workers are started from one long-lived thread with `PR_SET_PDEATHSIG`,
//! so they die with the host even when it is killed.

pub(crate) mod process;
mod protocol;
mod worker;

pub use worker::worker_main;

/// Starts the line a worker writes to stdout and stderr after each
/// invocation, followed by the invocation's sequence number.
pub(crate) const SYNC_MARKER: &str = "\u{1}fnhost-output-end:";

/// The argument that starts the `fnhost` executable as a worker.
pub const WORKER_ARG: &str = "__worker";

/// Set (to `1`) in a worker process's environment, so that the `fnhost`
/// executable can pick its allocator before parsing its arguments.
pub const WORKER_ENV: &std::ffi::CStr = c"FNHOST_WORKER_PROCESS";

/// Memory a worker may use beyond the function's configured size: the
/// runtime's own heap, thread stacks and the library's data.
pub const RUNTIME_HEADROOM_MB: u64 = 64;
