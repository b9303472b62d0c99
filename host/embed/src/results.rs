//! `fnhost_result`: one invocation's result as C reads it (its body,
//! content type, error type, request id, summary and log tail), made from
//! an [`InvokeResult`] or a platform failure.

use std::ffi::{c_char, c_int, CStr, CString};

use fnhost::{InvokeResult, Outcome};

use crate::ffi::{c_string, guard};

/// One invocation's result (opaque to C); owns every string it hands out.
/// The strings are made when first asked for, so a caller that reads only
/// the body pays for no formatting.
pub struct fnhost_result {
    is_error: bool,
    body: Vec<u8>,
    content_type: Option<&'static CStr>,
    error_type: Option<String>,
    request_id: String,
    summary: Option<fnhost::Summary>,
    log: String,
    made: Made,
}

/// The C strings of a result, made on first use.
#[derive(Default)]
struct Made {
    error_type: std::sync::OnceLock<CString>,
    request_id: std::sync::OnceLock<CString>,
    summary_json: std::sync::OnceLock<CString>,
    log: std::sync::OnceLock<CString>,
}

fn content_type_of(kind: fnhost::BodyKind) -> Option<&'static CStr> {
    match kind {
        fnhost::BodyKind::Empty => None,
        fnhost::BodyKind::Bytes => Some(c"application/octet-stream"),
        fnhost::BodyKind::Text => Some(c"text/plain; charset=utf-8"),
        fnhost::BodyKind::Json => Some(c"application/json"),
    }
}

pub(crate) fn result_of(r: InvokeResult) -> Box<fnhost_result> {
    let (is_error, content_type, error_type) = match &r.outcome {
        Outcome::Success(b) => (false, content_type_of(b.kind), None),
        Outcome::Failure(e) => (true, Some(c"application/json"), Some(e.error_type.clone())),
    };
    // The tail is the whole log unless the log is longer (then it is cut).
    let tail = r.log_tail();
    let log = if tail.len() == r.log.len() {
        None
    } else {
        Some(tail.to_owned())
    };
    let log = log.unwrap_or(r.log);
    Box::new(fnhost_result {
        is_error,
        content_type,
        error_type,
        request_id: r.request_id,
        summary: Some(r.summary),
        log,
        body: r.outcome.into_body_bytes(),
        made: Made::default(),
    })
}

/// A platform failure (no such function, too many requests...) as an error result.
pub(crate) fn error_result(error_type: &str, message: &str) -> *mut fnhost_result {
    let body = serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string();
    Box::into_raw(Box::new(fnhost_result {
        is_error: true,
        body: body.into_bytes(),
        content_type: Some(c"application/json"),
        error_type: Some(error_type.to_owned()),
        request_id: String::new(),
        summary: None,
        log: String::new(),
        made: Made::default(),
    }))
}

pub(crate) fn invoke_error_type(e: &fnhost::InvokeError) -> &'static str {
    match e {
        fnhost::InvokeError::PayloadTooLarge { .. } => "PayloadTooLarge",
        fnhost::InvokeError::TooManyRequests { .. } => "TooManyRequests",
        fnhost::InvokeError::NotFound(_) => "FunctionNotFound",
        fnhost::InvokeError::InvalidOptions(_) => "InvalidOptions",
        _ => "FunctionInvokeError",
    }
}

/// # Safety
/// `r` is NULL or a live result.
unsafe fn result<'a>(r: *const fnhost_result) -> Option<&'a fnhost_result> {
    // SAFETY: forwarded contract.
    unsafe { r.as_ref() }
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `r` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn fnhost_result_is_error(r: *const fnhost_result) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { result(r) }.map_or(1, |r| c_int::from(r.is_error))
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `r` is NULL or a live result; `len_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fnhost_result_body(
    r: *const fnhost_result,
    len_out: *mut usize,
) -> *const u8 {
    // SAFETY: forwarded contract.
    let (ptr, len) = match unsafe { result(r) } {
        Some(r) => (r.body.as_ptr(), r.body.len()),
        None => (std::ptr::null(), 0),
    };
    if !len_out.is_null() {
        // SAFETY: non-null and writable per the contract.
        unsafe { *len_out = len };
    }
    ptr
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `r` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn fnhost_result_content_type(r: *const fnhost_result) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { result(r) }
        .and_then(|r| r.content_type)
        .map_or(std::ptr::null(), CStr::as_ptr)
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `r` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn fnhost_result_error_type(r: *const fnhost_result) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { result(r) }
        .and_then(|r| {
            let ty = r.error_type.as_deref()?;
            Some(r.made.error_type.get_or_init(|| c_string(ty)).as_ptr())
        })
        .unwrap_or(std::ptr::null())
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `r` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn fnhost_result_request_id(r: *const fnhost_result) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { result(r) }.map_or(std::ptr::null(), |r| {
        r.made
            .request_id
            .get_or_init(|| c_string(&r.request_id))
            .as_ptr()
    })
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `r` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn fnhost_result_summary_json(r: *const fnhost_result) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { result(r) }.map_or(std::ptr::null(), |r| {
        r.made
            .summary_json
            .get_or_init(|| c_string(&r.summary.as_ref().map_or("{}".to_owned(), |s| s.to_json())))
            .as_ptr()
    })
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `r` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn fnhost_result_log(r: *const fnhost_result) -> *const c_char {
    // SAFETY: forwarded contract.
    unsafe { result(r) }.map_or(std::ptr::null(), |r| {
        r.made.log.get_or_init(|| c_string(&r.log)).as_ptr()
    })
}

/// See `fnhost_embed.h`.
///
/// # Safety
/// `r` is NULL or a result from this library, not used after.
#[no_mangle]
pub unsafe extern "C" fn fnhost_result_free(r: *mut fnhost_result) {
    if !r.is_null() {
        // SAFETY: from Box::into_raw in this library, freed once.
        guard(|| (), || drop(unsafe { Box::from_raw(r) }));
    }
}
