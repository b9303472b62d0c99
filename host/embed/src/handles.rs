//! The opaque objects a C program holds: a runtime and a loaded function.

use fnhost::{Function, Runtime};

/// A runtime (opaque to C).
pub struct fnhost_runtime {
    pub(crate) runtime: Runtime,
    /// Its C host functions, closed (no call running or to come) before
    /// the runtime is freed.
    pub(crate) host_functions:
        parking_lot::Mutex<Vec<std::sync::Arc<crate::host_functions::CHostFunction>>>,
}

/// A loaded function (opaque to C).
pub struct fnhost_function {
    pub(crate) function: Function,
}
