//! Verifying requests signed the way the FunctionGraph SDK signs them
//! (`SDK-HMAC-SHA256`): canonical request, string to sign, HMAC with the
//! secret key of the access key named in `Authorization`, and a replay window
//! on `X-Sdk-Date`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use fnhost_signing::{
    canonical_request, parse_sdk_date, sha256_hex, signature_matches, string_to_sign, ALGORITHM,
};
pub use fnhost_signing::{decode, encode, sdk_date, sign, SignedRequest};
/// How far `X-Sdk-Date` may be from the server's clock.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The header through which a signer states the body's SHA-256.
const CONTENT_SHA256: &str = "x-sdk-content-sha256";
/// The value of [`CONTENT_SHA256`] that leaves the body out of the signature.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

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

/// Why a set of access keys is refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An entry with an empty access key.
    #[error("access key #{0} is empty: every access key needs a name and a secret key")]
    EmptyAccessKey(usize),
    /// An access key without a secret: anyone could sign as it.
    #[error("access key `{0}` has an empty secret key: anyone could sign requests as it")]
    EmptySecret(String),
    /// The same access key twice (which secret would hold?).
    #[error("access key `{0}` is configured twice")]
    Duplicate(String),
}

impl AccessKeys {
    /// Keys from `(access key, secret key)` pairs; an empty access key or
    /// secret, or an access key given twice, is refused.
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Result<AccessKeys, KeyError> {
        let mut keys = HashMap::new();
        for (i, (access, secret)) in pairs.into_iter().enumerate() {
            if access.trim().is_empty() {
                return Err(KeyError::EmptyAccessKey(i + 1));
            }
            if secret.is_empty() {
                return Err(KeyError::EmptySecret(access));
            }
            if keys.insert(access.clone(), secret).is_some() {
                return Err(KeyError::Duplicate(access));
            }
        }
        Ok(AccessKeys { keys })
    }
    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a request's signature was refused. The client is told only that it
/// was (one answer whatever the cause); this goes to the server's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization` header.
    #[error("missing Authorization header")]
    MissingAuthorization,
    /// `Authorization` is not `SDK-HMAC-SHA256 Access=.., SignedHeaders=.., Signature=..`.
    #[error("Authorization is not an SDK-HMAC-SHA256 signature")]
    Malformed,
    /// No such access key.
    #[error("unknown access key")]
    UnknownKey,
    /// `X-Sdk-Date` is missing, unsigned or not `YYYYMMDDTHHMMSSZ`.
    #[error("X-Sdk-Date must be present, signed and in YYYYMMDDTHHMMSSZ form")]
    BadDate,
    /// `X-Sdk-Date` is outside the replay window.
    #[error("X-Sdk-Date is outside the 15-minute window")]
    Stale,
    /// A header named in `SignedHeaders` is not in the request.
    #[error("signed header {0} is missing")]
    MissingSignedHeader(String),
    /// `X-Sdk-Content-Sha256` is present but not among the signed headers.
    #[error("X-Sdk-Content-Sha256 is not a signed header")]
    UnsignedContentHash,
    /// `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD`, which this server refuses.
    #[error("UNSIGNED-PAYLOAD is not accepted by this server")]
    UnsignedPayload,
    /// `X-Sdk-Content-Sha256` is not the SHA-256 of the body received.
    #[error("X-Sdk-Content-Sha256 does not match the body")]
    BodyHashMismatch,
    /// The signature is not hex.
    #[error("signature is not hex")]
    NotHex,
    /// The HMAC does not match.
    #[error("signature does not match")]
    Mismatch,
}

/// A request whose authentication headers passed [`precheck`]: the key is
/// known and the date inside the window. Its body is still to be checked
/// with [`Prechecked::verify`].
#[derive(Debug)]
pub struct Prechecked<'k> {
    secret: &'k str,
    signed_headers: Vec<String>,
    signature: Vec<u8>,
    date: String,
}

/// Checks what can be checked before any body byte is read: an
/// `Authorization` header naming a known access key, and a signed
/// `X-Sdk-Date` inside the replay window.
pub fn precheck<'k>(
    keys: &'k AccessKeys,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Prechecked<'k>, Refusal> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let authorization = header("authorization").ok_or(Refusal::MissingAuthorization)?;
    let (access, signed_headers, signature) =
        parse_authorization(authorization).ok_or(Refusal::Malformed)?;
    let secret = keys.keys.get(access).ok_or(Refusal::UnknownKey)?;
    if !signed_headers.contains(&"x-sdk-date") {
        return Err(Refusal::BadDate);
    }
    let date = header("x-sdk-date").ok_or(Refusal::BadDate)?;
    let when = parse_sdk_date(date).ok_or(Refusal::BadDate)?;
    let skew = now
        .duration_since(when)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap_or_default();
    if skew > REPLAY_WINDOW {
        return Err(Refusal::Stale);
    }
    let signature = hex::decode(signature).map_err(|_| Refusal::NotHex)?;
    Ok(Prechecked {
        secret,
        signed_headers: signed_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        signature,
        date: date.to_owned(),
    })
}

/// What a server accepts beyond a signature over the whole request.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignaturePolicy {
    /// Accept `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` (the body is then
    /// not covered by the signature).
    pub allow_unsigned_payload: bool,
}

impl Prechecked<'_> {
    /// Checks the signature over the method, path, query, signed headers
    /// and the body as received. `X-Sdk-Content-Sha256` is honoured only
    /// when it is signed and equals the body's SHA-256 (or is
    /// `UNSIGNED-PAYLOAD` and `policy` allows that).
    pub fn verify(self, req: &SignedRequest<'_>, policy: SignaturePolicy) -> Result<(), Refusal> {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let mut canonical_headers = String::new();
        for name in &self.signed_headers {
            let value = header(name).ok_or_else(|| Refusal::MissingSignedHeader(name.clone()))?;
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(value.trim());
            canonical_headers.push('\n');
        }
        let computed = sha256_hex(req.body);
        let payload_hash = match header(CONTENT_SHA256) {
            None => computed,
            Some(_) if !self.signed_headers.iter().any(|h| h == CONTENT_SHA256) => {
                return Err(Refusal::UnsignedContentHash)
            }
            // The Python SDK marks non-JSON requests UNSIGNED-PAYLOAD but
            // signs an empty body's hash: nothing is left unsigned.
            Some(UNSIGNED_PAYLOAD) if req.body.is_empty() => computed,
            Some(UNSIGNED_PAYLOAD) if policy.allow_unsigned_payload => UNSIGNED_PAYLOAD.to_owned(),
            Some(UNSIGNED_PAYLOAD) => return Err(Refusal::UnsignedPayload),
            Some(claimed) if claimed.eq_ignore_ascii_case(&computed) => computed,
            Some(_) => return Err(Refusal::BodyHashMismatch),
        };
        self.check(req, &canonical_headers, &payload_hash)
            .or_else(|refusal| {
                // The Node.js SDK signs the literal for an empty body.
                let literal = header(CONTENT_SHA256) == Some(UNSIGNED_PAYLOAD)
                    && req.body.is_empty()
                    && policy.allow_unsigned_payload;
                if literal {
                    self.check(req, &canonical_headers, UNSIGNED_PAYLOAD)
                } else {
                    Err(refusal)
                }
            })
    }

    fn check(
        &self,
        req: &SignedRequest<'_>,
        canonical_headers: &str,
        payload_hash: &str,
    ) -> Result<(), Refusal> {
        let canonical = canonical_request(
            req,
            canonical_headers,
            &self.signed_headers.join(";"),
            payload_hash,
        );
        let to_sign = string_to_sign(&self.date, &canonical);
        if signature_matches(self.secret, &to_sign, &self.signature) {
            Ok(())
        } else {
            Err(Refusal::Mismatch)
        }
    }
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

/// Checks a whole request: [`precheck`], then [`Prechecked::verify`].
pub fn verify(
    keys: &AccessKeys,
    req: &SignedRequest<'_>,
    now: SystemTime,
    policy: SignaturePolicy,
) -> Result<(), Refusal> {
    precheck(keys, req.headers, now)?.verify(req, policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// A request as a signer sent it.
    struct Vector {
        method: &'static str,
        path: &'static str,
        query: &'static str,
        headers: HeaderMap,
        body: &'static [u8],
        date: &'static str,
    }

    impl Vector {
        fn request(&self) -> SignedRequest<'_> {
            SignedRequest {
                method: self.method,
                path: self.path,
                query: self.query,
                headers: &self.headers,
                body: self.body,
            }
        }
        fn check(&self, keys: &AccessKeys, policy: SignaturePolicy) -> Result<(), Refusal> {
            verify(keys, &self.request(), at(self.date), policy)
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    /// A request signed by the official Python SDK's `Signer` (huaweicloudsdkcore
    /// 3.1.219) with AK `TESTAK`, SK `TESTSECRET`.
    fn python_sdk() -> Vector {
        Vector {
            method: "POST",
            path: "/v2/proj1/fgs/functions/urn:fss:local:proj1:function:default:echo:latest/invocations",
            query: "a=x%20y&b=2",
            headers: headers(&[
                ("content-type", "application/json"),
                ("x-sdk-date", "20261127T120000Z"),
                ("x-cff-log-type", "tail"),
                ("host", "127.0.0.1:8000"),
                (
                    "authorization",
                    "SDK-HMAC-SHA256 Access=TESTAK, SignedHeaders=content-type;host;x-cff-log-type;x-sdk-date, \
                     Signature=0dce0a2df0af64364a02caff8d09826d79ebc98be9be52884bce6b72591b5732",
                ),
            ]),
            body: br#"{"k": "v"}"#,
            date: "20261127T120500Z",
        }
    }

    const NODE_PATH: &str =
        "/v2/proj1/fgs/functions/urn:fss:local:proj1:function:default:echo:latest/code";
    const NODE_BODY: &[u8] =
        br#"{"code_type":"zip","func_code":{"file":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}}"#;

    /// Requests signed by the official Node.js SDK's `AKSKSigner`
    /// (@huaweicloud/huaweicloud-sdk-core 3.1.211) with AK `NODEAK`, SK
    /// `NODESECRET`: plain, with the body's hash in `X-Sdk-Content-Sha256`,
    /// and with `UNSIGNED-PAYLOAD`.
    fn node_sdk(content_sha256: Option<&'static str>) -> Vector {
        let mut pairs = vec![
            ("content-type", "application/json;charset=UTF-8"),
            ("x-sdk-date", "20261201T120000Z"),
            ("host", "127.0.0.1:8000"),
        ];
        let authorization = match content_sha256 {
            None => "SDK-HMAC-SHA256 Access=NODEAK, SignedHeaders=content-type;host;x-sdk-date, \
                     Signature=3b872e8ce3e2f0ce71f8ab0c4ea7fb3e3e4e7d374421e38f935bde5c52825d7a",
            Some(UNSIGNED_PAYLOAD) => {
                "SDK-HMAC-SHA256 Access=NODEAK, SignedHeaders=content-type;host;x-sdk-content-sha256;x-sdk-date, \
                 Signature=f731635b1bc8348ccb1cfe04ac3617f808d002a67114e6bcb5580076f776d4e2"
            }
            Some(_) => {
                "SDK-HMAC-SHA256 Access=NODEAK, SignedHeaders=content-type;host;x-sdk-content-sha256;x-sdk-date, \
                 Signature=98d9130ca0c2660d959ad0b03a3f7e40cce3f262a172e8a513ca8ba4f3ec8739"
            }
        };
        pairs.push(("authorization", authorization));
        if let Some(sha) = content_sha256 {
            pairs.push(("x-sdk-content-sha256", sha));
        }
        Vector {
            method: "PUT",
            path: NODE_PATH,
            query: "",
            headers: headers(&pairs),
            body: NODE_BODY,
            date: "20261201T120000Z",
        }
    }
    const NODE_BODY_SHA256: &str =
        "0d4b5403d07021306cf20f39f6a9700df6d73658f7657725831fd4d7f7cd9831";

    #[test]
    fn our_signature_is_the_python_sdks() {
        let v = python_sdk();
        let mut headers = v.headers.clone();
        let expected = headers.remove("authorization").unwrap();
        let request = SignedRequest {
            method: v.method,
            path: v.path,
            query: v.query,
            headers: &headers,
            body: v.body,
        };
        assert_eq!(
            sign("TESTAK", "TESTSECRET", &request),
            expected
                .to_str()
                .unwrap()
                .replace("    ", " ")
                .replace("  ", " ")
        );
        assert_eq!(sdk_date(at("20261127T120000Z")), "20261127T120000Z");
    }

    fn keys() -> AccessKeys {
        AccessKeys::new([
            ("TESTAK".to_owned(), "TESTSECRET".to_owned()),
            ("NODEAK".to_owned(), "NODESECRET".to_owned()),
        ])
        .unwrap()
    }

    fn at(date: &str) -> SystemTime {
        parse_sdk_date(date).unwrap()
    }

    const STRICT: SignaturePolicy = SignaturePolicy {
        allow_unsigned_payload: false,
    };

    #[test]
    fn accepts_what_the_python_and_node_sdks_sign() {
        assert_eq!(python_sdk().check(&keys(), STRICT), Ok(()));
        assert_eq!(node_sdk(None).check(&keys(), STRICT), Ok(()));
        assert_eq!(
            node_sdk(Some(NODE_BODY_SHA256)).check(&keys(), STRICT),
            Ok(())
        );
    }

    #[test]
    fn refuses_any_change_to_what_was_signed() {
        let v = python_sdk();
        let ok = |method, path, query, body| {
            verify(
                &keys(),
                &SignedRequest {
                    method,
                    path,
                    query,
                    headers: &v.headers,
                    body,
                },
                at(v.date),
                STRICT,
            )
        };
        assert!(ok("PUT", v.path, v.query, v.body).is_err());
        assert!(ok(
            "POST",
            "/v2/proj1/fgs/functions/other/invocations",
            v.query,
            v.body
        )
        .is_err());
        assert!(ok("POST", v.path, "a=x%20y&b=3", v.body).is_err());
        assert_eq!(ok("POST", v.path, v.query, b"{}"), Err(Refusal::Mismatch));
        assert_eq!(ok("POST", v.path, v.query, b""), Err(Refusal::Mismatch));
        let mut tampered = python_sdk();
        tampered
            .headers
            .insert("x-cff-log-type", HeaderValue::from_static("none"));
        assert_eq!(tampered.check(&keys(), STRICT), Err(Refusal::Mismatch));
    }

    /// The replay that once worked: a captured request whose signed
    /// `X-Sdk-Content-Sha256` names the original body, sent with another.
    #[test]
    fn a_signed_body_hash_must_be_the_hash_of_the_body_received() {
        let mut replayed = node_sdk(Some(NODE_BODY_SHA256));
        replayed.body = br#"{"code_type":"zip","func_code":{"file":"ZXZpbA=="}}"#;
        assert_eq!(
            replayed.check(&keys(), STRICT),
            Err(Refusal::BodyHashMismatch)
        );
    }

    /// A content hash the signer did not sign cannot stand in for the body.
    #[test]
    fn an_unsigned_content_hash_header_is_refused() {
        let mut forged = python_sdk();
        forged.body = b"{\"evil\": true}";
        let hash = sha256_hex(python_sdk().body);
        forged.headers.insert(
            "x-sdk-content-sha256",
            HeaderValue::from_str(&hash).unwrap(),
        );
        assert_eq!(
            forged.check(&keys(), STRICT),
            Err(Refusal::UnsignedContentHash)
        );
        // Even stating the true hash of the body sent does not help: it is
        // not signed, so it is not believed.
        let mut added = python_sdk();
        added.headers.insert(
            "x-sdk-content-sha256",
            HeaderValue::from_str(&hash).unwrap(),
        );
        assert_eq!(
            added.check(&keys(), STRICT),
            Err(Refusal::UnsignedContentHash)
        );
    }

    #[test]
    fn unsigned_payload_only_when_the_configuration_allows_it() {
        let v = node_sdk(Some(UNSIGNED_PAYLOAD));
        assert_eq!(v.check(&keys(), STRICT), Err(Refusal::UnsignedPayload));
        let lax = SignaturePolicy {
            allow_unsigned_payload: true,
        };
        assert_eq!(v.check(&keys(), lax), Ok(()));
    }

    #[test]
    fn refuses_unknown_keys_stale_dates_and_missing_signatures_before_the_body() {
        let v = python_sdk();
        let other = AccessKeys::new([("OTHER".to_owned(), "x".to_owned())]).unwrap();
        assert_eq!(
            precheck(&other, &v.headers, at(v.date)).unwrap_err(),
            Refusal::UnknownKey
        );
        assert_eq!(
            precheck(&keys(), &v.headers, at("20261127T121600Z")).unwrap_err(),
            Refusal::Stale
        );
        assert_eq!(
            precheck(&keys(), &HeaderMap::new(), at(v.date)).unwrap_err(),
            Refusal::MissingAuthorization
        );
        let mut no_date = python_sdk();
        no_date.headers.remove("x-sdk-date");
        assert_eq!(
            precheck(&keys(), &no_date.headers, at(v.date)).unwrap_err(),
            Refusal::BadDate
        );
        assert!(precheck(&keys(), &v.headers, at(v.date)).is_ok());
    }

    #[test]
    fn empty_and_duplicate_keys_are_refused() {
        let pair = |a: &str, s: &str| (a.to_owned(), s.to_owned());
        assert_eq!(
            AccessKeys::new([pair("ak", "")]).unwrap_err(),
            KeyError::EmptySecret("ak".into())
        );
        assert_eq!(
            AccessKeys::new([pair("ak", "sk"), pair(" ", "sk")]).unwrap_err(),
            KeyError::EmptyAccessKey(2)
        );
        assert_eq!(
            AccessKeys::new([pair("ak", "sk"), pair("ak", "other")]).unwrap_err(),
            KeyError::Duplicate("ak".into())
        );
        assert!(AccessKeys::new([pair("ak", "sk")]).is_ok());
    }
}
