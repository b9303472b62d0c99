//! What a caller can give one call ([`CallOptions`]: its ids, user data of
//! its own, a shorter deadline, a value for host functions) and the token
//! that cancels a call started without blocking
//! ([`CallHandle::cancel`](crate::CallHandle::cancel)).

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::trace::{CallIds, TraceId};

/// Most bytes of user data (keys and values) one call may add: FunctionGraph
/// bounds a function's own user data to 4 KB; a call's own is bounded too.
pub const MAX_CALL_USER_DATA_BYTES: usize = 64 * 1024;

/// What the caller gives one invocation, beyond its payload.
///
/// ```
/// use fnhost::CallOptions;
/// use std::time::Duration;
///
/// let options = CallOptions::default()
///     .traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
///     .unwrap()
///     .user_data("TENANT", "acme")
///     .timeout(Duration::from_millis(250));
/// assert_eq!(options.ids.trace_id.unwrap().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// ```
#[derive(Clone, Default)]
pub struct CallOptions {
    /// The request id the invocation reports (and the answer carries), and
    /// its trace id.
    pub ids: CallIds,
    /// User data of this call, read before the function's own
    /// (`ctx.user_data(key)`).
    pub user_data: BTreeMap<String, String>,
    /// A deadline sooner than the function's timeout: the call's timeout is
    /// the shorter of the two.
    pub timeout: Option<Duration>,
    /// A value of the embedder's that host functions called during this
    /// invocation receive ([`HostCallContext::embedder_value`](crate::HostCallContext::embedder_value)).
    pub embedder_value: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("ids", &self.ids)
            .field("user_data", &self.user_data.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("embedder_value", &self.embedder_value.is_some())
            .finish()
    }
}

impl CallOptions {
    /// The request id the invocation reports.
    pub fn request_id(mut self, id: uuid::Uuid) -> CallOptions {
        self.ids.request_id = Some(id);
        self
    }
    /// The trace the invocation belongs to.
    pub fn trace_id(mut self, id: TraceId) -> CallOptions {
        self.ids.trace_id = Some(id);
        self
    }
    /// The trace of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`);
    /// an invalid value is an error.
    pub fn traceparent(mut self, value: &str) -> Result<CallOptions, String> {
        let id = crate::trace::trace_id_of_traceparent(value)
            .ok_or_else(|| format!("not a W3C traceparent: {value:?}"))?;
        self.ids.trace_id = Some(id);
        Ok(self)
    }
    /// One entry of this call's user data.
    pub fn user_data(mut self, key: impl Into<String>, value: impl Into<String>) -> CallOptions {
        self.user_data.insert(key.into(), value.into());
        self
    }
    /// A deadline sooner than the function's timeout.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }
    /// The value host functions of this invocation receive.
    pub fn embedder_value(mut self, value: Arc<dyn Any + Send + Sync>) -> CallOptions {
        self.embedder_value = Some(value);
        self
    }

    /// Checks the bounds: user data within [`MAX_CALL_USER_DATA_BYTES`], a
    /// timeout that is not zero.
    pub fn check(&self) -> Result<(), String> {
        let bytes = self.user_data.iter().fold(0usize, |n, (k, v)| {
            n.saturating_add(k.len()).saturating_add(v.len())
        });
        if bytes > MAX_CALL_USER_DATA_BYTES {
            return Err(format!(
                "a call's user data has at most {MAX_CALL_USER_DATA_BYTES} bytes, not {bytes}"
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err("a call's timeout must be more than 0".into());
        }
        Ok(())
    }

    /// What the invocation carries of them (none for the defaults: the
    /// fast path pays nothing).
    pub(crate) fn extras(self, cancel: Option<Arc<Cancel>>) -> Option<Arc<Extras>> {
        if self.user_data.is_empty()
            && self.timeout.is_none()
            && self.embedder_value.is_none()
            && cancel.is_none()
        {
            return None;
        }
        Some(Arc::new(Extras {
            user_data: self.user_data,
            timeout: self.timeout,
            embedder_value: self.embedder_value,
            cancel,
        }))
    }
}

/// What an invocation carries of its [`CallOptions`] (besides its ids).
#[derive(Default)]
pub(crate) struct Extras {
    pub(crate) user_data: BTreeMap<String, String>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) embedder_value: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) cancel: Option<Arc<Cancel>>,
}

impl fmt::Debug for Extras {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extras")
            .field("user_data", &self.user_data.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("cancelled", &self.cancel.as_ref().map(|c| c.is_cancelled()))
            .finish_non_exhaustive()
    }
}

/// Cancels one call: a flag its context reads, and the one action that
/// stops it where it runs (waking its waiting caller in process; ending
/// its worker process in process isolation).
#[derive(Default)]
pub(crate) struct Cancel {
    cancelled: AtomicBool,
    /// Run (once) by `cancel`; under this lock, so that `clear` returning
    /// means it is not running and will not run.
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl fmt::Debug for Cancel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Sets what stops the call; runs it at once when the call was
    /// cancelled already.
    pub(crate) fn on_cancel(&self, stop: impl FnOnce() + Send + 'static) {
        let mut hook = self.hook.lock();
        if self.is_cancelled() {
            drop(hook);
            stop();
        } else {
            *hook = Some(Box::new(stop));
        }
    }

    /// Forgets the stop action (the call ended): a later cancel must not
    /// reach what it held (a worker process now serving another call).
    pub(crate) fn clear(&self) {
        self.hook.lock().take();
    }

    /// Cancels; `true` the first time.
    pub(crate) fn cancel(&self) -> bool {
        let mut hook = self.hook.lock();
        let first = !self.cancelled.swap(true, Ordering::AcqRel);
        if let Some(stop) = hook.take() {
            stop();
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_cancel_runs_the_stop_action_once_and_never_after_clear() {
        let stops = Arc::new(AtomicUsize::new(0));
        let cancel = Cancel::default();
        let s = Arc::clone(&stops);
        cancel.on_cancel(move || {
            s.fetch_add(1, Ordering::Relaxed);
        });
        assert!(cancel.cancel());
        assert!(!cancel.cancel());
        assert_eq!(stops.load(Ordering::Relaxed), 1);
        // Set after the cancel: runs at once.
        let s = Arc::clone(&stops);
        cancel.on_cancel(move || {
            s.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(stops.load(Ordering::Relaxed), 2);

        let cleared = Cancel::default();
        let s = Arc::clone(&stops);
        cleared.on_cancel(move || {
            s.fetch_add(1, Ordering::Relaxed);
        });
        cleared.clear();
        cleared.cancel();
        assert_eq!(stops.load(Ordering::Relaxed), 2);
        assert!(cleared.is_cancelled());
    }

    #[test]
    fn options_are_bounded() {
        assert!(CallOptions::default().check().is_ok());
        let big = CallOptions::default().user_data("K", "v".repeat(MAX_CALL_USER_DATA_BYTES));
        assert!(big.check().is_err());
        assert!(CallOptions::default()
            .timeout(Duration::ZERO)
            .check()
            .is_err());
        assert!(CallOptions::default().traceparent("00-zz-00-01").is_err());
        assert!(CallOptions::default().extras(None).is_none());
    }
}
