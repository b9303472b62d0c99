//! # fnhost
//!
//! Runs native FaaS handlers the way Huawei FunctionGraph's Go runtime runs
//! functions: a handler is a function in a shared library (`testplugin.so`,
//! entry `testplugin.Handler`) built against [`fnhost_api`]. fnhost checks the
//! library's ABI before calling anything, calls the handler with the payload
//! and a runtime context, and returns its result or error with an execution
//! summary and the invocation's log.
//!
//! This crate is the runtime, for programs that embed it. It has no async
//! runtime, HTTP server or database among its dependencies; the HTTP API
//! (`fnhost serve`) is the `fnhost-server` crate, the C API the
//! `fnhost-embed` crate.
//!
//! The nouns, from longest-lived to shortest:
//! - [`Runtime`]: one per process; the loader, code cache, worker pool,
//!   counters and the [`Registry`].
//! - [`Library`]: a checked plugin build, identified by its content
//!   [`Digest`]; a mapped one lives as long as the process.
//! - [`Generation`]: one immutable deployment of a function: library,
//!   configuration, instances, in-flight count, and how its calls run (in
//!   this process, or in worker processes). The [`Registry`] names
//!   functions, swaps their generations atomically, and keeps published
//!   versions and aliases; a [`Function`] is a standalone handle to one.
//! - an invocation: one call, with its request id, deadline, log and result
//!   ([`InvokeResult`]).
//!
//! One invocation: [`Registry::invoke`] (or [`Function::invoke`]) → the
//! generation → payload check → an instance slot (initializer on a new
//! instance) → a worker thread calls the handler through the plugin's
//! panic-catching trampoline, with a context whose vtable reads this
//! invocation's state → the plugin's result is copied into host memory
//! through that vtable → the caller, waiting until the deadline, turns it
//! into an [`Outcome`], a [`Summary`] and the log. With
//! [`Isolation::Process`] the call runs in a worker process instead (see
//! [`worker`]); with [`Isolation::Inline`] on the calling thread, with no
//! hand-off (the timeout is then checked when the handler returns).
//! [`dispatch`] starts calls without blocking, for hosts with an async
//! executor; [`watch`] redeploys functions when their libraries are rebuilt.
//!
//! ## Trust
//! A library is foreign native code. Before any of it is mapped in this
//! process, it is loaded once in a throwaway worker process (its
//! constructors may crash, exit or block: that fails the load, not the
//! host). In process ([`Isolation::InProcess`], [`Isolation::Inline`]) a
//! handler then shares the host's address space: a panic is caught inside
//! the plugin, but a segfault or `abort` ends the host. With
//! [`Isolation::Process`] nothing a handler does reaches the host.

#![warn(missing_docs)]

mod abi_check;
mod call_handle;
mod call_options;
mod code_cache;
mod config;
pub mod dispatch;
mod elf;
mod entry;
mod error;
mod function;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod generation;
pub mod host_call;
mod housekeeping;
mod instances;
mod invocation;
mod io_lane;
mod isolation;
mod loader;
mod log_buffer;
mod outcome;
mod pool;
mod registry;
mod runtime;
pub mod sandbox;
mod shared;
mod spin;
mod trace;
#[cfg(feature = "watch")]
pub mod watch;
pub mod worker;

/// The bare shared-memory channel between the host and a worker process,
/// for the benchmark that measures it as the isolated path's baseline. Not
/// an API: no stability promise.
#[doc(hidden)]
pub mod raw_channel {
    pub use crate::isolation::shared_memory::{HostChannel, Message, Region, WorkerChannel, SLOT};
}

pub use abi_check::PluginInfo;
pub use call_handle::CallHandle;
pub use call_options::{CallOptions, MAX_CALL_USER_DATA_BYTES};
pub use code_cache::Digest;
pub use config::{is_valid_package_name, MAX_INSTANCES, MAX_TIMEOUT, MEMORY_SIZES_MB};
pub use config::{ConfigError, Credentials, FunctionConfig, InstanceConfig, Isolation};
pub use config::{RuntimeConfig, DEFAULT_MAX_WORKER_PROCESSES, DEFAULT_PREFLIGHT_TIMEOUT};
pub use elf::{check_shared_object, check_shared_object_read, is_go_library, ElfError};
pub use entry::Entry;
pub use error::{DeployError, InvokeError, LoadError, NotFound};
pub use function::Function;
pub use generation::{Generation, InitReport};
pub use host_call::{HostCallContext, HostError, HostFunction};
pub use instances::InstanceStats;
pub use loader::{Library, LibraryReport, LoadTimings};
pub use log_buffer::tail;
pub use outcome::{error_type, Body, BodyKind, FunctionError, InvokeResult, Outcome, Summary};
pub use registry::{
    Alias, Deployment, FunctionInfo, GenerationStats, Registry, Route, VersionInfo, LATEST,
};
pub use runtime::{LibraryCopy, Runtime, RuntimeBuilder, RuntimeStats};
pub use sandbox::{Network, SandboxConfig, SandboxMode, SandboxPolicy};
pub use trace::{parse_hex, trace_id_of_traceparent, CallIds, TraceId};
