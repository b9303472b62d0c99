//! Non-blocking starts, for hosts that run their own async executor (the
//! HTTP server is one): an invocation is started without blocking the
//! calling task and awaited through [`Pending`]; a handler that has proven
//! short may run on an [`IoLane`] of the executor's own threads instead of
//! being handed to a worker thread.
//!
//! An embedder that calls from ordinary threads needs none of this:
//! [`Route::invoke`], [`Registry::invoke`](crate::Registry::invoke) and
//! [`Function::invoke`](crate::Function::invoke) block until the result or
//! the deadline.

use crate::error::InvokeError;
use crate::generation::OnLane;
use crate::registry::Route;

pub use crate::generation::{AtDeadline, Pending, Started};
pub use crate::io_lane::{IoLane, Job, LONG, MAX_PROBATION, PROBATION, SHORT, STRIKE_MEMORY};

/// Starts the invocation without blocking, when an initialized instance has
/// a free slot now: on a worker thread ([`Started::Running`]), or, for
/// [`Isolation::Inline`](crate::Isolation::Inline), to completion on this
/// thread ([`Started::Done`]). [`Started::MustBlock`]: it would have to wait
/// or initialize, or it runs in a worker process; call [`Route::invoke`]
/// from a thread that may block. For a running invocation, wait for
/// [`Pending::on_complete`] (or [`Pending::completion`]) or the deadline,
/// then take [`Pending::finish`].
pub fn start<P>(route: &Route, payload: P) -> Result<Started, InvokeError>
where
    P: AsRef<[u8]> + Send + 'static,
{
    start_on(route, payload, None)
}

/// Like [`start`], running the handler on `lane` when it has proven short
/// and a lane slot is free (see [`IoLane`]).
pub fn start_on<P>(route: &Route, payload: P, lane: Option<&IoLane>) -> Result<Started, InvokeError>
where
    P: AsRef<[u8]> + Send + 'static,
{
    route
        .generation
        .start(payload, route.served(), lane.map(OnLane::Spawned))
}

/// Like [`start_on`], but a call that qualifies for `lane` runs on this
/// thread: the caller blocks until the handler returns and gets
/// [`Started::Done`], sparing the hand-over to another task or thread. If
/// the handler is still running at the deadline, the lane's watchdog calls
/// `at_deadline` with the `timeout` result from its own thread (the caller,
/// blocked, could not answer), and this returns
/// [`Started::AnsweredAtDeadline`] once the handler has returned.
///
/// For a server that can answer a request from another thread: the handler
/// occupies this thread meanwhile, up to forever for a runaway.
pub fn start_here<P>(
    route: &Route,
    payload: P,
    lane: &IoLane,
    at_deadline: AtDeadline,
) -> Result<Started, InvokeError>
where
    P: AsRef<[u8]> + Send + 'static,
{
    route.generation.start(
        payload,
        route.served(),
        Some(OnLane::Here(lane, at_deadline)),
    )
}
