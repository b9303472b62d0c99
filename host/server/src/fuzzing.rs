//! Entry points for the coverage-guided fuzz targets in `fuzz/` (feature
//! `fuzzing`; not part of the API). Each takes arbitrary bytes, runs one
//! parser of hostile input over them, and must return without panicking,
//! hanging or growing memory without bound.

use std::time::{Duration, SystemTime};

/// Zip intake: a code package extracted into a scratch directory.
pub fn zip(bytes: &[u8]) {
    let Ok(dir) = tempfile_dir() else { return };
    let _ = crate::package::extract(bytes, &dir, None);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "fnhost-fuzz-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The signature header parser and check: the input's first line is the
/// `Authorization` header, its second the `X-Sdk-Date`, the rest the body.
pub fn signature(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut parts = text.splitn(3, '\n');
    let (authorization, date, body) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let mut headers = hyper::HeaderMap::new();
    for (name, value) in [("authorization", authorization), ("x-sdk-date", date)] {
        if let Ok(value) = hyper::header::HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    let Ok(keys) = crate::auth::AccessKeys::new([("ak".to_owned(), "sk".to_owned())]) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    if let Ok(pre) = crate::auth::precheck(&keys, &headers, now) {
        let request = crate::auth::SignedRequest {
            method: "POST",
            path: "/v2/p/fgs/functions",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let _ = pre.verify(&request, crate::auth::SignaturePolicy::default());
    }
}

/// Function URNs and `name[:qualifier]` references.
pub fn urn(bytes: &[u8]) {
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = crate::urn::FunctionRef::parse(s);
    }
}

/// Timer schedules: the first byte picks `Cron` or `Rate`.
pub fn schedule(bytes: &[u8]) {
    let Some((&kind, rest)) = bytes.split_first() else {
        return;
    };
    let kind = if kind % 2 == 0 { "Cron" } else { "Rate" };
    if let Ok(s) = std::str::from_utf8(rest) {
        if let Ok(schedule) = crate::triggers::parse_schedule(kind, s, Duration::from_secs(1)) {
            let _ = schedule.next_delay();
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every entry point runs on a few inputs (the fuzz targets' smoke test).
    #[test]
    fn entry_points_take_arbitrary_bytes() {
        for input in [
            &b""[..],
            b"PK\x03\x04",
            b"\x01Rate 1 minutes",
            b"SDK-HMAC-SHA256 Access=ak\n20260101T000000Z\n{}",
        ] {
            super::zip(input);
            super::signature(input);
            super::urn(input);
            super::schedule(input);
        }
    }
}
