//! `fnhost_set_log_callback`: fnhost's own log records (deploys, swaps,
//! timeouts, worker crashes, refused libraries) handed to a C callback. The
//! functions' own logs are not among them: those are in each result.
//!
//! Records are written where fnhost logs them, which is often under one of
//! its locks (a registry's while a function is created, its generation list
//! while one retires). A callback run there and calling back into the
//! library (which the header allows) would wait for that lock forever. So
//! the logger only queues a record, and one delivery thread of this library
//! runs the callback, in order, holding none of fnhost's locks: from inside
//! the callback every function of the C API may be called.
//! `fnhost_log_flush` waits until what was logged before it has been
//! delivered. The queue is bounded: past [`MAX_QUEUED`] records, new ones
//! are counted and dropped, and the next delivered record says how many.

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::{Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;

/// Records queued for the callback at most; more are dropped and counted.
pub const MAX_QUEUED: usize = 10_000;

/// A record waiting for the callback.
struct Queued {
    level: c_int,
    target: CString,
    message: CString,
}

/// The queue between the logger and the delivery thread.
#[derive(Default)]
struct Queue {
    records: VecDeque<Queued>,
    /// Records ever queued, and ever delivered (or skipped): a flush waits
    /// for `delivered` to reach what `queued` was when it began.
    queued: u64,
    delivered: u64,
    /// Dropped since the last delivered record (the queue was full).
    dropped: u64,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    records: VecDeque::new(),
    queued: 0,
    delivered: 0,
    dropped: 0,
});
/// Signalled when a record is queued (the delivery thread waits on it) and
/// when records are delivered (flushes wait on it).
static CHANGED: Condvar = Condvar::new();
/// The delivery thread's id, once started.
static DELIVERY: OnceLock<Option<std::thread::ThreadId>> = OnceLock::new();

fn queue() -> std::sync::MutexGuard<'static, Queue> {
    QUEUE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The callback's C type (see `fnhost_embed.h`).
pub type fnhost_log_fn =
    Option<unsafe extern "C" fn(c_int, *const c_char, *const c_char, *mut c_void)>;

/// Where records go: the callback and the caller's pointer for it.
#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(c_int, *const c_char, *const c_char, *mut c_void),
    /// The caller's `user` pointer, passed back untouched (as an integer:
    /// this library never dereferences it).
    user: usize,
}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);
/// Whether this library's logger is the process's `log` logger (decided by
/// the first call: `log` accepts one logger per process, for good).
static INSTALLED: OnceLock<bool> = OnceLock::new();
static LOGGER: CallbackLogger = CallbackLogger;

struct CallbackLogger;

impl log::Log for CallbackLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        // The level filter is `log`'s global one, set with the callback.
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if current_sink().is_none() {
            return;
        }
        let level = match record.level() {
            log::Level::Error => 1,
            log::Level::Warn => 2,
            log::Level::Info => 3,
            log::Level::Debug => 4,
            log::Level::Trace => 5,
        };
        let queued = Queued {
            level,
            target: c_text(record.target()),
            message: c_text(&record.args().to_string()),
        };
        let mut q = queue();
        if q.records.len() >= MAX_QUEUED {
            q.dropped += 1;
            return;
        }
        q.records.push_back(queued);
        q.queued += 1;
        drop(q);
        CHANGED.notify_all();
    }

    fn flush(&self) {}
}

/// The callback now, copied out of its lock.
fn current_sink() -> Option<Sink> {
    match SINK.read() {
        Ok(sink) => *sink,
        Err(poisoned) => *poisoned.into_inner(),
    }
}

/// The delivery thread: runs the callback for each queued record, in
/// order, with no lock of this library or of fnhost held.
fn deliver() {
    loop {
        let (record, dropped) = {
            let mut q = queue();
            loop {
                if let Some(record) = q.records.pop_front() {
                    break (record, std::mem::take(&mut q.dropped));
                }
                q = CHANGED.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        if let Some(sink) = current_sink() {
            let note = (dropped > 0).then(|| {
                c_text(&format!(
                    "{dropped} log records were dropped: more than {MAX_QUEUED} waited for the callback"
                ))
            });
            let target = c_text("fnhost::embed");
            for (level, target, message) in note
                .as_ref()
                .map(|n| (2, &target, n))
                .into_iter()
                .chain(std::iter::once((
                    record.level,
                    &record.target,
                    &record.message,
                )))
            {
                // SAFETY: the caller registered `callback` to be called from
                // any thread with NUL-terminated strings that live for the
                // call, and `user` as it gave it (fnhost_embed.h); no lock is
                // held, so it may call into this library.
                unsafe {
                    (sink.callback)(
                        level,
                        target.as_ptr(),
                        message.as_ptr(),
                        sink.user as *mut c_void,
                    )
                };
            }
        }
        queue().delivered += 1;
        CHANGED.notify_all();
    }
}

/// Starts the delivery thread once; whether it runs.
fn start_delivery() -> bool {
    DELIVERY
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("fnhost-log-callback".into())
                .spawn(deliver)
                .ok()
                .map(|t| t.thread().id())
        })
        .is_some()
}

/// Waits until every record logged before the call has been delivered, at
/// most `timeout`; whether it was. From the callback itself (the delivery
/// thread), returns at once: waiting there would wait for itself.
pub(crate) fn flush(timeout: Duration) -> bool {
    let Some(Some(delivery)) = DELIVERY.get() else {
        return true;
    };
    if std::thread::current().id() == *delivery {
        return false;
    }
    let mut q = queue();
    let target = q.queued;
    let deadline = std::time::Instant::now() + timeout;
    while q.delivered < target {
        let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
            return false;
        };
        q = CHANGED
            .wait_timeout(q, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    true
}

/// `text` as a C string (an interior NUL, which a C caller could not see
/// past, becomes a space).
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

fn level_filter(max_level: c_int) -> log::LevelFilter {
    match max_level {
        i32::MIN..=0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// Sets (or, with NULL, removes) the callback; see `fnhost_embed.h`.
pub(crate) fn set(callback: fnhost_log_fn, user: *mut c_void, max_level: c_int) -> c_int {
    if !*INSTALLED.get_or_init(|| log::set_logger(&LOGGER).is_ok()) {
        return -1;
    }
    if callback.is_some() && !start_delivery() {
        return -1;
    }
    let sink = callback.map(|callback| Sink {
        callback,
        user: user as usize,
    });
    match SINK.write() {
        Ok(mut slot) => *slot = sink,
        Err(poisoned) => *poisoned.into_inner() = sink,
    }
    let filter = if sink.is_some() {
        level_filter(max_level)
    } else {
        log::LevelFilter::Off
    };
    log::set_max_level(filter);
    0
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;
    use std::sync::Mutex;

    use super::*;

    static HEARD: Mutex<Vec<(c_int, String, String)>> = Mutex::new(Vec::new());

    unsafe extern "C" fn hear(
        level: c_int,
        target: *const c_char,
        message: *const c_char,
        user: *mut c_void,
    ) {
        assert_eq!(user as usize, 42);
        // SAFETY: NUL-terminated strings that live for the call.
        let (target, message) = unsafe { (CStr::from_ptr(target), CStr::from_ptr(message)) };
        HEARD.lock().unwrap().push((
            level,
            target.to_string_lossy().into_owned(),
            message.to_string_lossy().into_owned(),
        ));
    }

    #[test]
    fn records_reach_the_callback_at_its_level_and_stop_when_it_is_removed() {
        assert_eq!(set(Some(hear), 42 as *mut c_void, 2), 0);
        log::warn!(target: "fnhost::test", "a warning with a \0 inside");
        log::info!(target: "fnhost::test", "below the level");
        assert!(flush(Duration::from_secs(10)));
        assert_eq!(set(None, std::ptr::null_mut(), 5), 0);
        log::error!(target: "fnhost::test", "after removal");
        let heard = HEARD.lock().unwrap().clone();
        assert_eq!(
            heard,
            vec![(2, "fnhost::test".into(), "a warning with a   inside".into())]
        );
    }
}
