//! [`Function`]: a loaded function outside any registry, for embedders that
//! manage functions themselves (and for `fnhost invoke`).

use std::sync::Arc;

use crate::call_handle::CallHandle;
use crate::call_options::CallOptions;
use crate::config::FunctionConfig;
use crate::error::InvokeError;
use crate::generation::{Generation, InitReport, Mode};
use crate::instances::InstanceStats;
use crate::invocation::Served;
use crate::loader::Library;
use crate::outcome::InvokeResult;
use crate::trace::CallIds;

/// A function ready to invoke: one [`Generation`] of code. Cheap to clone;
/// safe to invoke from many threads at once.
#[derive(Clone, Debug)]
pub struct Function {
    generation: Arc<Generation>,
}

impl Function {
    pub(crate) fn new(generation: Arc<Generation>) -> Function {
        Function { generation }
    }

    /// The configuration it was loaded with.
    pub fn config(&self) -> &FunctionConfig {
        self.generation.config()
    }

    /// The library it runs.
    pub fn library(&self) -> &Arc<Library> {
        self.generation.library()
    }

    /// The generation behind it.
    pub fn generation(&self) -> &Arc<Generation> {
        &self.generation
    }

    /// The report of the initializer's most recent run, if it has run.
    pub fn initializer_report(&self) -> Option<InitReport> {
        self.generation.initializer_report()
    }

    /// Its instances.
    pub fn instance_stats(&self) -> InstanceStats {
        self.generation.instance_stats()
    }

    /// Invokes the function on a worker thread and waits for it until the
    /// deadline. A handler that overruns is answered with error type
    /// `timeout` at the deadline; its thread keeps running until the handler
    /// returns and is counted in [`RuntimeStats::runaway_invocations`](crate::RuntimeStats).
    /// A function configured [`Isolation::Inline`](crate::Isolation::Inline)
    /// runs on the calling thread instead (as
    /// [`invoke_on_current_thread`](Self::invoke_on_current_thread)).
    /// When every instance is busy the call waits (bounded) for one, or fails
    /// with [`InvokeError::TooManyRequests`].
    pub fn invoke(&self, payload: &[u8]) -> Result<InvokeResult, InvokeError> {
        self.generation
            .invoke(payload, Served::default(), Mode::Worker)
    }

    /// [`invoke`](Self::invoke) under the caller's request and trace ids.
    pub fn invoke_with(&self, payload: &[u8], ids: CallIds) -> Result<InvokeResult, InvokeError> {
        let served = Served {
            ids,
            ..Served::default()
        };
        self.generation.invoke(payload, served, Mode::Worker)
    }

    /// [`invoke`](Self::invoke) with the caller's [`CallOptions`]: request
    /// and trace ids, user data of this call, a sooner deadline, a value
    /// for host functions.
    pub fn invoke_with_options(
        &self,
        payload: &[u8],
        options: CallOptions,
    ) -> Result<InvokeResult, InvokeError> {
        options.check().map_err(InvokeError::InvalidOptions)?;
        let served = Served {
            ids: options.ids,
            extras: options.extras(None),
            ..Served::default()
        };
        self.generation.invoke(payload, served, Mode::Worker)
    }

    /// Starts the invocation without blocking: the [`CallHandle`] waits,
    /// polls, is awaited (on any executor), calls back, or cancels.
    ///
    /// ```no_run
    /// # fn f(function: &fnhost::Function) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let call = function.invoke_async(b"{}".to_vec(), fnhost::CallOptions::default());
    /// if !call.wait(Some(Duration::from_millis(100))) {
    ///     call.cancel(); // answers `Cancelled`
    /// }
    /// let result = call.join()?;
    /// # Ok(()) }
    /// ```
    pub fn invoke_async(&self, payload: impl Into<Vec<u8>>, options: CallOptions) -> CallHandle {
        CallHandle::start(
            std::sync::Arc::clone(&self.generation),
            Served::default(),
            payload.into(),
            options,
        )
    }

    /// Invokes the function on the calling thread: no thread hand-off (the
    /// fastest path), but a handler that overruns its timeout cannot be
    /// abandoned, so the caller waits for it and then gets `timeout`.
    pub fn invoke_on_current_thread(&self, payload: &[u8]) -> Result<InvokeResult, InvokeError> {
        self.generation
            .invoke(payload, Served::default(), Mode::CurrentThread)
    }
}
