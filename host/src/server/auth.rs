//! Verifying requests signed the way the FunctionGraph SDK signs them
//! (`SDK-HMAC-SHA256`): canonical request, string to sign, HMAC with the
//! secret key of the access key named in `Authorization`, and a replay window
//! on `X-Sdk-Date`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// How far `X-Sdk-Date` may be from the server's clock.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(15 * 60);
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Access keys and their secret keys.
#[derive(Clone, Default)]
pub struct AccessKeys {
    keys: HashMap<String, String>,
}

impl std::fmt::Debug for AccessKeys {
    /// Lists access keys only; secret keys are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeys")
            .field("access_keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl AccessKeys {
    /// Keys from `(access key, secret key)` pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> AccessKeys {
        AccessKeys {
            keys: pairs.into_iter().collect(),
        }
    }
    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The parts of a request that are signed.
pub struct SignedRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as received (percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes everything but RFC 3986's unreserved characters
/// (Python's `quote(s, safe='~')`).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (other bytes, `+` included, are kept).
pub fn decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn canonical_uri(path: &str) -> String {
    let decoded = String::from_utf8_lossy(&decode(path)).into_owned();
    let mut uri = decoded
        .split('/')
        .map(|segment| encode(segment.as_bytes()))
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), Vec::new()),
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Parses `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`.
fn parse_authorization(value: &str) -> Option<(&str, Vec<&str>, &str)> {
    let rest = value.strip_prefix(ALGORITHM)?.trim();
    let (mut access, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Access" => access = Some(v),
            "SignedHeaders" => signed = Some(v.split(';').collect()),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    Some((access?, signed?, signature?))
}

fn parse_sdk_date(s: &str) -> Option<SystemTime> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok()?;
    let secs = t.and_utc().timestamp();
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// Checks the request's signature; the error says what is wrong (never the
/// expected signature).
pub fn verify(keys: &AccessKeys, req: &SignedRequest<'_>, now: SystemTime) -> Result<(), String> {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = header("authorization").ok_or("missing Authorization header")?;
    let (access, signed_headers, signature) = parse_authorization(authorization)
        .ok_or("Authorization is not an SDK-HMAC-SHA256 signature")?;
    let secret = keys.keys.get(access).ok_or("unknown access key")?;
    if !signed_headers.contains(&"x-sdk-date") {
        return Err("X-Sdk-Date must be a signed header".into());
    }
    let date = header("x-sdk-date").ok_or("missing X-Sdk-Date header")?;
    let when = parse_sdk_date(date).ok_or("X-Sdk-Date is not YYYYMMDDTHHMMSSZ")?;
    let skew = now
        .duration_since(when)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > REPLAY_WINDOW {
        return Err("X-Sdk-Date is outside the 15-minute window".into());
    }
    let mut canonical_headers = String::new();
    for name in &signed_headers {
        let value = header(name).ok_or_else(|| format!("signed header {name} is missing"))?;
        canonical_headers.push_str(&format!("{}:{}\n", name.to_ascii_lowercase(), value.trim()));
    }
    let payload_hash = if req.body.is_empty() {
        EMPTY_SHA256.to_owned()
    } else if let Some(v) = header("x-sdk-content-sha256") {
        v.to_owned()
    } else {
        sha256_hex(req.body)
    };
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
        canonical_headers,
        signed_headers.join(";"),
        payload_hash
    );
    let string_to_sign = format!("{ALGORITHM}\n{date}\n{}", sha256_hex(canonical.as_bytes()));
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "bad secret key")?;
    mac.update(string_to_sign.as_bytes());
    let expected = hex::decode(signature).map_err(|_| "signature is not hex")?;
    mac.verify_slice(&expected)
        .map_err(|_| "signature does not match".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// A request signed by the official Python SDK's `Signer` (huaweicloudsdkcore
    /// 3.1.219) with AK `TESTAK`, SK `TESTSECRET`.
    fn sdk_signed() -> (HeaderMap, &'static str, &'static str, &'static [u8]) {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("x-sdk-date", "20261127T120000Z"),
            ("x-cff-log-type", "tail"),
            ("host", "127.0.0.1:8000"),
            (
                "authorization",
                "SDK-HMAC-SHA256 Access=TESTAK, SignedHeaders=content-type;host;x-cff-log-type;x-sdk-date, \
                 Signature=0dce0a2df0af64364a02caff8d09826d79ebc98be9be52884bce6b72591b5732",
            ),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        (
            h,
            "/v2/proj1/fgs/functions/urn:fss:local:proj1:function:default:echo:latest/invocations",
            "a=x%20y&b=2",
            br#"{"k": "v"}"#,
        )
    }

    fn keys() -> AccessKeys {
        AccessKeys::new([("TESTAK".to_owned(), "TESTSECRET".to_owned())])
    }

    fn at(date: &str) -> SystemTime {
        parse_sdk_date(date).unwrap()
    }

    #[test]
    fn accepts_what_the_sdk_signs() {
        let (headers, path, query, body) = sdk_signed();
        let req = SignedRequest {
            method: "POST",
            path,
            query,
            headers: &headers,
            body,
        };
        assert_eq!(verify(&keys(), &req, at("20261127T120500Z")), Ok(()));
    }

    #[test]
    fn refuses_any_change_to_what_was_signed() {
        let (headers, path, query, body) = sdk_signed();
        let ok = |method, path, query, body| {
            verify(
                &keys(),
                &SignedRequest {
                    method,
                    path,
                    query,
                    headers: &headers,
                    body,
                },
                at("20261127T120000Z"),
            )
        };
        assert!(ok("PUT", path, query, body).is_err());
        assert!(ok(
            "POST",
            "/v2/proj1/fgs/functions/other/invocations",
            query,
            body
        )
        .is_err());
        assert!(ok("POST", path, "a=x%20y&b=3", body).is_err());
        assert!(ok("POST", path, query, b"{}").is_err());
        let mut tampered = headers.clone();
        tampered.insert("x-cff-log-type", HeaderValue::from_static("none"));
        let req = SignedRequest {
            method: "POST",
            path,
            query,
            headers: &tampered,
            body,
        };
        assert_eq!(
            verify(&keys(), &req, at("20261127T120000Z")),
            Err("signature does not match".into())
        );
    }

    #[test]
    fn refuses_unknown_keys_stale_dates_and_missing_signatures() {
        let (headers, path, query, body) = sdk_signed();
        let req = SignedRequest {
            method: "POST",
            path,
            query,
            headers: &headers,
            body,
        };
        let other = AccessKeys::new([("OTHER".to_owned(), "x".to_owned())]);
        assert_eq!(
            verify(&other, &req, at("20261127T120000Z")),
            Err("unknown access key".into())
        );
        assert!(verify(&keys(), &req, at("20261127T121600Z"))
            .unwrap_err()
            .contains("15-minute"));
        let empty = HeaderMap::new();
        let req = SignedRequest {
            method: "POST",
            path,
            query,
            headers: &empty,
            body,
        };
        assert_eq!(
            verify(&keys(), &req, at("20261127T120000Z")),
            Err("missing Authorization header".into())
        );
    }

    #[test]
    fn canonical_forms_match_the_sdk() {
        assert_eq!(
            canonical_uri("/v2/p/fgs/functions/urn:fss:x"),
            "/v2/p/fgs/functions/urn%3Afss%3Ax/"
        );
        assert_eq!(canonical_uri("/a%20b/"), "/a%20b/");
        assert_eq!(canonical_query("b=2&a=x%20y&a=1"), "a=1&a=x%20y&b=2");
        assert_eq!(encode("~a-b_c.d é".as_bytes()), "~a-b_c.d%20%C3%A9");
        assert_eq!(decode("%zz%4"), b"%zz%4");
    }
}
