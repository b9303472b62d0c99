//! FunctionGraph's request signature, `SDK-HMAC-SHA256`, as its SDKs compute
//! it: a canonical request (method, path, query, signed headers, the body's
//! SHA-256), a string to sign over its hash and `X-Sdk-Date`, and an
//! HMAC-SHA256 of that with the secret key.
//!
//! One crate for both sides: `fnhost deploy` and the other commands of the
//! author's client [`sign`] requests, and the server checks them with
//! [`signature_matches`] over the same [`canonical_request`], so the two
//! cannot drift apart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
pub use http::HeaderMap;
use sha2::{Digest, Sha256};

/// The algorithm's name, the first word of `Authorization`.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// The parts of a request that are signed.
pub struct SignedRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// The canonical request: `signed` names the signed headers (lowercase,
/// sorted, `;`-joined), `canonical_headers` is their `name:value\n` lines
/// in that order, `payload_hash` the body's SHA-256 in hex (or the literal
/// a signer stated instead).
pub fn canonical_request(
    req: &SignedRequest<'_>,
    canonical_headers: &str,
    signed: &str,
    payload_hash: &str,
) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method.to_ascii_uppercase(),
        canonical_uri(req.path),
        canonical_query(req.query),
        canonical_headers,
        signed,
        payload_hash
    )
}

/// The string the HMAC covers: the algorithm, `X-Sdk-Date` and the
/// canonical request's SHA-256.
pub fn string_to_sign(date: &str, canonical: &str) -> String {
    format!("{ALGORITHM}\n{date}\n{}", sha256_hex(canonical.as_bytes()))
}

/// Whether `signature` is the HMAC-SHA256 of `string_to_sign` under
/// `secret_key`, compared in constant time.
pub fn signature_matches(secret_key: &str, string_to_sign: &str, signature: &[u8]) -> bool {
    // HMAC takes a key of any length: new_from_slice cannot fail.
    Hmac::<Sha256>::new_from_slice(secret_key.as_bytes())
        .map(|mut mac| {
            mac.update(string_to_sign.as_bytes());
            mac.verify_slice(signature).is_ok()
        })
        .unwrap_or(false)
}

/// Signs a request as the FunctionGraph SDKs do: every header in
/// `req.headers` is signed, which must include `host` and `x-sdk-date`
/// (`YYYYMMDDTHHMMSSZ`, see [`sdk_date`]). Returns the `Authorization`
/// header's value.
pub fn sign(access_key: &str, secret_key: &str, req: &SignedRequest<'_>) -> String {
    let mut names: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut canonical_headers = String::new();
    for name in &names {
        let value = req
            .headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(value.trim());
        canonical_headers.push('\n');
    }
    let signed = names.join(";");
    let canonical = canonical_request(req, &canonical_headers, &signed, &sha256_hex(req.body));
    let date = req
        .headers
        .get("x-sdk-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let to_sign = string_to_sign(date, &canonical);
    // HMAC takes a key of any length: this cannot fail.
    let signature = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes())
        .map(|mut mac| {
            mac.update(to_sign.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        })
        .unwrap_or_default();
    format!("{ALGORITHM} Access={access_key}, SignedHeaders={signed}, Signature={signature}")
}

/// A time as `X-Sdk-Date` wants it.
pub fn sdk_date(now: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(now)
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// An `X-Sdk-Date` value as a time (`None` when malformed or before 1970).
pub fn parse_sdk_date(s: &str) -> Option<SystemTime> {
    let t = chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ").ok()?;
    let secs = t.and_utc().timestamp();
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

/// SHA-256 in lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
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

/// The path in canonical form: each segment decoded, then encoded, with a
/// trailing `/`.
pub fn canonical_uri(path: &str) -> String {
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

/// The query in canonical form: pairs decoded, sorted, encoded.
pub fn canonical_query(query: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn dates_round_trip_and_malformed_ones_are_none() {
        let t = parse_sdk_date("20261127T120000Z").unwrap();
        assert_eq!(sdk_date(t), "20261127T120000Z");
        assert!(parse_sdk_date("2026-11-27").is_none());
        assert!(parse_sdk_date("19601127T120000Z").is_none());
    }

    #[test]
    fn a_signature_matches_only_its_string_and_key() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "h:1".parse().unwrap());
        headers.insert("x-sdk-date", "20261127T120000Z".parse().unwrap());
        let req = SignedRequest {
            method: "GET",
            path: "/a",
            query: "",
            headers: &headers,
            body: b"",
        };
        let authorization = sign("ak", "sk", &req);
        let hex_sig = authorization.rsplit("Signature=").next().unwrap();
        let sig = hex::decode(hex_sig).unwrap();
        let canonical = canonical_request(
            &req,
            "host:h:1\nx-sdk-date:20261127T120000Z\n",
            "host;x-sdk-date",
            &sha256_hex(b""),
        );
        let s = string_to_sign("20261127T120000Z", &canonical);
        assert!(signature_matches("sk", &s, &sig));
        assert!(!signature_matches("sk2", &s, &sig));
        assert!(!signature_matches("sk", &format!("{s}x"), &sig));
    }
}
