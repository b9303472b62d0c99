//! [`CallHandle`]: an invocation started without blocking the caller
//! ([`Function::invoke_async`](crate::Function::invoke_async),
//! [`Registry::invoke_async`](crate::Registry::invoke_async)), to wait for
//! with a timeout, poll, await as a future on any executor, be told of
//! through a callback, or cancel.
//!
//! A call runs on a thread of the runtime's worker pool, which waits for it
//! as a blocking call would (the handler itself runs where its isolation
//! says: a worker thread, or a worker process). Cancelling answers the call
//! `Cancelled` at once: a call in a worker process is ended with its
//! process; an in-process handler cannot be stopped safely, so it keeps
//! running with its result discarded, reads its cancellation through its
//! context (`ctx.is_cancelled()`, `FNHOST_FIELD_CANCELLED`) and counts as a
//! runaway until it returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::call_options::{CallOptions, Cancel};
use crate::error::InvokeError;
use crate::generation::{Generation, Mode};
use crate::invocation::Served;
use crate::outcome::{error_type, FunctionError, InvokeResult, Outcome, Summary};

/// An invocation started without blocking. Dropping the handle detaches
/// the call: it runs to its end and its result is discarded.
#[derive(Clone)]
pub struct CallHandle {
    inner: Arc<Inner>,
}

struct Inner {
    slot: Mutex<Slot>,
    done: Condvar,
    cancel: Arc<Cancel>,
    /// What a cancel answers at once (the invocation's own request id).
    answer: Mutex<Option<CancelAnswer>>,
}

/// The `Cancelled` result a cancel answers with.
struct CancelAnswer {
    request_id: String,
    memory_mb: u32,
    tail_bytes: usize,
    started: Instant,
}

#[derive(Default)]
struct Slot {
    finished: bool,
    result: Option<Result<InvokeResult, InvokeError>>,
    waker: Option<Waker>,
    hooks: Vec<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallHandle")
            .field("finished", &self.is_finished())
            .field("cancelled", &self.inner.cancel.is_cancelled())
            .finish()
    }
}

impl CallHandle {
    fn new() -> CallHandle {
        CallHandle {
            inner: Arc::new(Inner {
                slot: Mutex::new(Slot::default()),
                done: Condvar::new(),
                cancel: Arc::new(Cancel::default()),
                answer: Mutex::new(None),
            }),
        }
    }

    /// A handle of a call that ended before it started, with `result`.
    pub fn ended(result: Result<InvokeResult, InvokeError>) -> CallHandle {
        let handle = CallHandle::new();
        handle.inner.complete(result);
        handle
    }

    /// Starts `payload` on `generation` with `served` (its version, alias
    /// and ids) and `options` on a thread of the runtime's worker pool.
    pub(crate) fn start(
        generation: Arc<Generation>,
        mut served: Served,
        payload: Vec<u8>,
        options: CallOptions,
    ) -> CallHandle {
        if let Err(reason) = options.check() {
            return CallHandle::ended(Err(InvokeError::InvalidOptions(reason)));
        }
        let handle = CallHandle::new();
        served.prefer_ids(options.ids);
        // Chosen here, so that a cancel answered at once says the id the
        // invocation runs (and logs) under.
        let request_id = *served.ids.request_id.get_or_insert_with(uuid::Uuid::new_v4);
        *handle.inner.answer.lock() = Some(CancelAnswer {
            request_id: request_id.to_string(),
            memory_mb: generation.config().memory_mb,
            tail_bytes: generation.log_tail_bytes(),
            started: Instant::now(),
        });
        served.extras = options.extras(Some(Arc::clone(&handle.inner.cancel)));
        let inner = Arc::clone(&handle.inner);
        let pool = generation.caller_pool().clone();
        let started = pool.execute(move || {
            let result = generation.invoke(&payload, served, Mode::Worker);
            inner.complete(result);
        });
        if let Err(e) = started {
            handle
                .inner
                .complete(Err(InvokeError::NoWorker(e.to_string())));
        }
        handle
    }

    /// Whether the call has ended (its result may have been taken).
    pub fn is_finished(&self) -> bool {
        self.inner.slot.lock().finished
    }

    /// Waits until the call ends or `timeout` passes (`None`: no limit);
    /// whether it has ended.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let until = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut slot = self.inner.slot.lock();
        while !slot.finished {
            match until {
                Some(until) => {
                    if self.inner.done.wait_until(&mut slot, until).timed_out() {
                        return slot.finished;
                    }
                }
                None => self.inner.done.wait(&mut slot),
            }
        }
        true
    }

    /// The result, once the call has ended; it is handed out once (later
    /// calls, and calls before the end, answer `None`).
    pub fn take(&self) -> Option<Result<InvokeResult, InvokeError>> {
        self.inner.slot.lock().result.take()
    }

    /// Waits for the end and takes the result
    /// ([`InvokeError::ResultTaken`] if it was taken already).
    pub fn join(&self) -> Result<InvokeResult, InvokeError> {
        self.wait(None);
        self.take().unwrap_or(Err(InvokeError::ResultTaken))
    }

    /// Cancels the call: it answers `Cancelled` at once; a worker process
    /// running it is ended, an in-process handler is told (and runs on,
    /// its result discarded). `false` when it had ended already (its
    /// result stands) or was cancelled before.
    pub fn cancel(&self) -> bool {
        if self.is_finished() || !self.inner.cancel.cancel() {
            return false;
        }
        if let Some(answer) = self.inner.answer.lock().take() {
            let result = InvokeResult {
                request_id: answer.request_id,
                outcome: Outcome::Failure(FunctionError::new(
                    error_type::CANCELLED,
                    "the invocation was cancelled by its caller",
                )),
                summary: Summary::new(answer.started.elapsed(), answer.memory_mb, 0),
                log: String::new(),
                tail_bytes: answer.tail_bytes,
                cold_start: None,
            };
            // The call's own answer, when it comes, is discarded.
            self.inner.complete(Ok(result));
        }
        true
    }

    /// Calls `hook` once the call has ended, on the thread that ended it
    /// (at once, on this thread, if it has). The hook may take the result.
    pub fn on_complete(&self, hook: impl FnOnce() + Send + 'static) {
        let mut slot = self.inner.slot.lock();
        if slot.finished {
            drop(slot);
            hook();
        } else {
            slot.hooks.push(Box::new(hook));
        }
    }
}

impl Inner {
    /// Ends the call with `result`; a call that has ended already (it was
    /// cancelled) keeps its result.
    fn complete(&self, result: Result<InvokeResult, InvokeError>) {
        let (waker, hooks) = {
            let mut slot = self.slot.lock();
            if slot.finished {
                return;
            }
            slot.result = Some(result);
            slot.finished = true;
            (slot.waker.take(), std::mem::take(&mut slot.hooks))
        };
        self.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
        for hook in hooks {
            hook();
        }
    }
}

impl Future for CallHandle {
    type Output = Result<InvokeResult, InvokeError>;

    /// Ready with the result when the call has ended; a handle whose result
    /// was taken is ready with [`InvokeError::ResultTaken`].
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.inner.slot.lock();
        if slot.finished {
            return Poll::Ready(slot.result.take().unwrap_or(Err(InvokeError::ResultTaken)));
        }
        match &mut slot.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}
