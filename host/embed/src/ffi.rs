//! The conventions every function of the C API shares: strings in (read
//! as NUL-terminated UTF-8) and out (freed by the caller), `error_out`,
//! status codes, payloads as pointer + length, JSON configurations, and
//! the guard that keeps panics from unwinding into C.

use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Deserialize;

/// A string for C: interior NULs (which C cannot see past) become U+FFFD.
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\u{fffd}")).unwrap_or_default()
}

/// Writes `message` to `*error_out` (a string the caller frees with
/// `fnhost_string_free`) when `error_out` is not NULL.
///
/// # Safety
/// `error_out` is NULL or valid for one pointer write.
pub(crate) unsafe fn set_error(error_out: *mut *mut c_char, message: &str) {
    if !error_out.is_null() {
        // SAFETY: non-null and writable per the contract.
        unsafe { *error_out = c_string(message).into_raw() };
    }
}

/// 0 for success; -1 with the message in `*error_out` for a failure.
///
/// # Safety
/// As for [`set_error`].
pub(crate) unsafe fn status(done: Result<(), String>, error_out: *mut *mut c_char) -> c_int {
    match done {
        Ok(()) => 0,
        Err(message) => {
            // SAFETY: forwarded contract.
            unsafe { set_error(error_out, &message) };
            -1
        }
    }
}

/// The object, boxed for C; NULL with the message in `*error_out` for a failure.
///
/// # Safety
/// As for [`set_error`].
pub(crate) unsafe fn object<T>(made: Result<T, String>, error_out: *mut *mut c_char) -> *mut T {
    match made {
        Ok(value) => Box::into_raw(Box::new(value)),
        Err(message) => {
            // SAFETY: forwarded contract.
            unsafe { set_error(error_out, &message) };
            std::ptr::null_mut()
        }
    }
}

/// Reads a NUL-terminated UTF-8 string.
///
/// # Safety
/// `s` is NULL or points at a NUL-terminated string.
pub(crate) unsafe fn read_str<'a>(s: *const c_char, what: &str) -> Result<&'a str, String> {
    if s.is_null() {
        return Err(format!("{what} is NULL"));
    }
    // SAFETY: non-null and NUL-terminated per the contract.
    unsafe { CStr::from_ptr(s) }
        .to_str()
        .map_err(|_| format!("{what} is not valid UTF-8"))
}

/// Runs `f`, turning a panic into what `fallback` makes (nothing unwinds
/// into C). The fallback is made only on a panic: made up front, an error
/// result would leak on every call that succeeds.
pub(crate) fn guard<T>(fallback: impl FnOnce() -> T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| fallback())
}

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(
    text: &str,
    what: &str,
) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("{what} is not valid: {e}"))
}

/// # Safety
/// `payload` is NULL with `len` 0, or points at `len` readable bytes.
pub(crate) unsafe fn payload_of<'a>(payload: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        return Some(&[]);
    }
    if payload.is_null() {
        return None;
    }
    // SAFETY: non-null with `len` readable bytes per the contract.
    Some(unsafe { std::slice::from_raw_parts(payload, len) })
}
