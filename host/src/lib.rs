//! # fnhost
//!
//! Runs native FaaS handlers the way Huawei FunctionGraph's Go runtime runs
//! functions: a handler is a function in a shared library (`testplugin.so`,
//! entry `testplugin.Handler`) built against [`fnhost_api`]. fnhost checks the
//! library's ABI before calling anything, calls the handler with the payload
//! and a runtime context, and returns its result or error with an execution
//! summary and the invocation's log.
//!
//! The nouns, from longest-lived to shortest:
//! - [`Runtime`]: one per process; the loader, code cache, worker pool,
//!   counters and the [`Registry`].
//! - [`Library`]: a checked, mapped plugin build, identified by its content
//!   digest; lives as long as the process.
//! - [`Generation`]: one immutable deployment of a function: library, resolved
//!   handler, configuration, instances, in-flight count. The [`Registry`] names
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
//! [`Isolation::Process`] the call runs in a worker process instead
//! ([`isolation`]); with [`Isolation::Inline`] on the calling thread, with no
//! hand-off (the timeout is then checked when the handler returns);
//! [`server`] serves all of it over FunctionGraph's HTTP API.

pub mod abi_check;
pub mod cli;
pub mod code_cache;
pub mod config;
pub mod elf;
pub mod entry;
pub mod error;
mod function;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod generation;
mod instances;
mod invocation;
pub mod io_lane;
pub mod isolation;
pub mod loader;
mod log_buffer;
mod outcome;
mod pool;
pub mod registry;
mod runtime;
pub mod server;
mod spin;
pub mod store;
pub mod watch;

pub use config::{Credentials, FunctionConfig, MEMORY_SIZES_MB};
pub use config::{InstanceConfig, Isolation};
pub use error::{ConfigError, InvokeError, LoadError};
pub use error::{DeployError, NotFound};
pub use function::Function;
pub use generation::{AtDeadline, Generation, InitReport, Pending, Started};
pub use instances::InstanceStats;
pub use loader::Library;
pub use log_buffer::tail;
pub use outcome::{error_type, Body, BodyKind, FunctionError, InvokeResult, Outcome, Summary};
pub use registry::{
    Alias, Deployment, FunctionInfo, GenerationStats, Registry, Route, VersionInfo,
};
pub use runtime::{Runtime, RuntimeConfig, RuntimeStats};
