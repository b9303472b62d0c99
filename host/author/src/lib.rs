//! The handler author's loop, as a library (the `fnhost` binary's `new`,
//! `build` and `package` commands are thin wrappers):
//! - [`scaffold`]: a ready project (Rust crate or C project) with its
//!   `fnhost.toml`;
//! - [`project`]: builds a project with its own tool (cargo or make) and
//!   finds the library it produced, or says why there is none;
//! - [`package`]: the FunctionGraph code package (a zip with the library at
//!   its root) of a built project;
//! - [`agreement`]: whether the manifest's triggers hand the handler an
//!   event it takes (the warning of `build` and `deploy`);
//! - [`client`]: a signed HTTP client of a FunctionGraph-compatible server;
//! - [`lifecycle`]: deploy, publish, aliases, triggers and listings over
//!   that server's API;
//! - [`source_watch`]: `watch --build`'s rebuild of a project on every
//!   source change.

pub mod agreement;
pub mod client;
pub mod lifecycle;
pub mod package;
pub mod project;
pub mod scaffold;
pub mod source_watch;
