//! `fnhost_set_log_callback`: fnhost's own log records (deploys, swaps,
//! timeouts, worker crashes, refused libraries) handed to a C callback. The
//! functions' own logs are not among them: those are in each result.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::{OnceLock, RwLock};

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
        // Copied out, so that the lock is not held while the callback runs
        // (it may call into this library, which may log again).
        let sink = match SINK.read() {
            Ok(sink) => *sink,
            Err(poisoned) => *poisoned.into_inner(),
        };
        let Some(sink) = sink else { return };
        let level = match record.level() {
            log::Level::Error => 1,
            log::Level::Warn => 2,
            log::Level::Info => 3,
            log::Level::Debug => 4,
            log::Level::Trace => 5,
        };
        let target = c_text(record.target());
        let message = c_text(&record.args().to_string());
        // SAFETY: the caller registered `callback` to be called from any
        // thread with NUL-terminated strings that live for the call, and
        // `user` as it gave it (fnhost_embed.h).
        unsafe {
            (sink.callback)(
                level,
                target.as_ptr(),
                message.as_ptr(),
                sink.user as *mut c_void,
            )
        };
    }

    fn flush(&self) {}
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
        assert_eq!(set(None, std::ptr::null_mut(), 5), 0);
        log::error!(target: "fnhost::test", "after removal");
        let heard = HEARD.lock().unwrap().clone();
        assert_eq!(
            heard,
            vec![(2, "fnhost::test".into(), "a warning with a   inside".into())]
        );
    }
}
