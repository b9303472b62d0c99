//! The invocation running on this thread: set by the export macro's
//! trampolines for the length of a call, read by the `log` bridge and the
//! panic hook, which have no context argument.

use core::cell::Cell;

use crate::alloc;
use crate::Context;

thread_local! {
    // The `Context` of the handler running on this thread, or null. Const,
    // no destructor (see `alloc`).
    static CURRENT: Cell<*const Context> = const { Cell::new(core::ptr::null()) };
}

/// Runs `f` with the context of the invocation running on this thread, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    let ptr = CURRENT.try_with(Cell::get).ok()?;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `CURRENT` is non-null only between `Entered::new` and its drop,
    // during which the pointed-to `Context` lives on the trampoline's stack.
    Some(f(unsafe { &*ptr }))
}

/// Marks this thread as running an invocation for the guard's lifetime.
pub(crate) struct Entered {
    previous: *const Context,
}

impl Entered {
    pub(crate) fn new(ctx: &Context) -> Entered {
        let previous = CURRENT
            .try_with(|c| c.replace(ctx as *const Context))
            .unwrap_or(core::ptr::null());
        alloc::start_tracking();
        Entered { previous }
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.previous));
    }
}
