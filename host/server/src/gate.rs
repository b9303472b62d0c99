//! What every request passes before a handler sees it, in this order:
//!
//! 1. its class, from the method and path alone ([`classify`]);
//! 2. where the class needs it and access keys are configured, the
//!    authentication headers: an `Authorization` naming a known key and a
//!    signed `X-Sdk-Date` inside the replay window; no body byte is read
//!    before they pass;
//! 3. the class's body limit, against `Content-Length` first, then while
//!    reading (code uploads also need one of a few upload slots);
//! 4. the body, read within the body timeout;
//! 5. the signature over the method, path, query, signed headers and the
//!    body as received.
//!
//! Without access keys (a loopback server) nothing is signed, so step 2 is
//! instead [`foreign_origin`]: a browser page of another origin, and a DNS
//! name rebound to a loopback address, are refused before the body is read
//! (a browser sends a cross-site `POST` without asking; only the console,
//! served from this origin, and clients that are not browsers are
//! answered).
//!
//! A refused signature gets one answer whatever the cause; the cause goes
//! to the server's log.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::{self, AccessKeys, Refusal, SignaturePolicy};
use super::error::ApiError;
use super::limits::Limits;

/// What a request is, for its limits and its authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// `/healthz`, `/readyz`, `/openapi.json`, the console's assets:
    /// anonymous, the body is not read.
    Probe,
    /// `/metrics`: authenticated when the configuration says so.
    Metrics,
    /// A synchronous or asynchronous invocation.
    Invoke,
    /// Any other request under `/v2/`.
    Manage,
    /// Create function and update code: the large bodies.
    Code,
    /// Everything else: the anonymous APIG gateway.
    Gateway,
}

impl Class {
    /// Whether the server still answers this class on a connection beyond
    /// its connection cap (health checks and management, not traffic).
    pub(crate) fn has_priority(self) -> bool {
        matches!(
            self,
            Class::Probe | Class::Metrics | Class::Manage | Class::Code
        )
    }
}

/// The class of a request, from its method and path.
pub(crate) fn classify(method: &Method, path: &str) -> Class {
    match path {
        "/healthz" | "/readyz" | "/openapi.json" | "/console" => return Class::Probe,
        "/metrics" => return Class::Metrics,
        // The console's assets: anonymous (its API calls are signed).
        _ if path.starts_with("/console/") => return Class::Probe,
        _ => {}
    }
    let Some(api) = path.strip_prefix("/v2") else {
        return Class::Gateway;
    };
    if !(api.is_empty() || api.starts_with('/')) {
        return Class::Gateway;
    }
    if path.ends_with("/invocations") || path.ends_with("/invocations-async") {
        return Class::Invoke;
    }
    let functions_collection = api
        .trim_end_matches('/')
        .strip_suffix("/fgs/functions")
        .is_some_and(|project| project.len() > 1 && !project[1..].contains('/'));
    if (method == Method::POST && functions_collection)
        || (method == Method::PUT && path.trim_end_matches('/').ends_with("/code"))
    {
        return Class::Code;
    }
    Class::Manage
}

/// The gate's settings (from the server's configuration).
pub(crate) struct Gate {
    pub(crate) keys: AccessKeys,
    pub(crate) policy: SignaturePolicy,
    pub(crate) limits: Limits,
    /// `/metrics` needs a signature (when keys are configured).
    pub(crate) metrics_auth: bool,
    uploads: Arc<Semaphore>,
}

/// A request that passed the gate: its body, and the upload slot it holds
/// until it is answered.
pub(crate) struct Admitted {
    pub(crate) body: Bytes,
    pub(crate) upload: Option<OwnedSemaphorePermit>,
}

impl Gate {
    pub(crate) fn new(
        keys: AccessKeys,
        policy: SignaturePolicy,
        limits: Limits,
        metrics_auth: bool,
    ) -> Gate {
        let uploads = Arc::new(Semaphore::new(limits.concurrent_uploads));
        Gate {
            keys,
            policy,
            limits,
            metrics_auth,
            uploads,
        }
    }

    fn needs_signature(&self, class: Class) -> bool {
        !self.keys.is_empty()
            && match class {
                Class::Probe | Class::Gateway => false,
                Class::Metrics => self.metrics_auth,
                Class::Invoke | Class::Manage | Class::Code => true,
            }
    }

    /// The largest body a request of `class` may send.
    pub(crate) fn body_limit(&self, class: Class) -> usize {
        let l = &self.limits;
        match class {
            Class::Probe | Class::Metrics | Class::Manage => l.manage_body_bytes,
            Class::Invoke => l.invoke_body_bytes,
            Class::Code => l.code_body_bytes,
            Class::Gateway => l.gateway_body_bytes,
        }
    }

    /// Runs the request through the gate (see the module documentation).
    pub(crate) async fn admit(
        &self,
        parts: &Parts,
        body: Body,
        class: Class,
    ) -> Result<Admitted, ApiError> {
        if class == Class::Probe {
            return Ok(Admitted {
                body: Bytes::new(),
                upload: None,
            });
        }
        let signed = if self.needs_signature(class) {
            let pre = auth::precheck(&self.keys, &parts.headers, SystemTime::now())
                .map_err(|why| refused(parts, &why))?;
            Some(pre)
        } else {
            if self.keys.is_empty() && class != Class::Gateway {
                if let Some(why) = foreign_origin(parts) {
                    log::warn!(target: "fnhost::server", "{} {}: refused: {why}", parts.method, parts.uri.path());
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "FSS.0403",
                        "this server has no access keys: it answers its API only to clients on this machine, and to no web page of another origin",
                    ));
                }
            }
            None
        };
        let limit = self.body_limit(class);
        let declared = parts
            .headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > (limit + DRAIN_BYTES) as u64) {
            // Not worth reading to the end: answered, and the connection closes.
            return Err(too_large(limit));
        }
        let upload = match class {
            Class::Code => Some(Arc::clone(&self.uploads).try_acquire_owned().map_err(|_| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "FSS.0429",
                    format!(
                        "{} code uploads are in progress, the most at once; retry later",
                        self.limits.concurrent_uploads
                    ),
                )
            })?),
            _ => None,
        };
        let capacity = declared.map_or(0, |n| n.min(limit as u64) as usize);
        let read = collect(body, limit, capacity);
        let body = match tokio::time::timeout(self.limits.body_timeout, read).await {
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "FSS.0408",
                    format!(
                        "the request body was not received within {} s",
                        self.limits.body_timeout.as_secs()
                    ),
                ))
            }
            Ok(Err(Unread::TooLarge)) => return Err(too_large(limit)),
            Ok(Err(Unread::Broken)) => {
                return Err(ApiError::bad_request("the request body could not be read"))
            }
            Ok(Ok(body)) => body,
        };
        if let Some(pre) = signed {
            let request = auth::SignedRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &parts.headers,
                body: &body,
            };
            pre.verify(&request, self.policy)
                .map_err(|why| refused(parts, &why))?;
        }
        Ok(Admitted { body, upload })
    }
}

/// Why a request to a server without access keys is not its own client's:
/// its `Host` is not a loopback name or address (a DNS name rebound to
/// 127.0.0.1), or a browser says it comes from a page of another origin
/// (`Origin` other than `http://{Host}`, or `Sec-Fetch-Site: cross-site`
/// or `same-site`).
fn foreign_origin(parts: &Parts) -> Option<&'static str> {
    use axum::http::header::{HOST, ORIGIN};
    // Checked on every API request: the headers are looked up by their
    // known names and compared in place (no copies).
    let header =
        |name: &axum::http::HeaderName| parts.headers.get(name).map(|v| v.to_str().unwrap_or(""));
    let host = header(&HOST).or_else(|| parts.uri.authority().map(|a| a.as_str()));
    if let Some(host) = host {
        if !is_loopback_authority(host) {
            return Some("the Host header does not name this machine (DNS rebinding?)");
        }
    }
    if let Some(origin) = header(&ORIGIN) {
        let same = host.is_some_and(|h| {
            origin.len() == "http://".len() + h.len()
                && origin.as_bytes()[.."http://".len()].eq_ignore_ascii_case(b"http://")
                && origin.as_bytes()["http://".len()..].eq_ignore_ascii_case(h.as_bytes())
        });
        if !same {
            return Some("a web page of another origin sent it");
        }
    }
    if matches!(header(&SEC_FETCH_SITE), Some("cross-site" | "same-site")) {
        return Some("a web page of another site sent it");
    }
    None
}

const SEC_FETCH_SITE: axum::http::HeaderName =
    axum::http::HeaderName::from_static("sec-fetch-site");

/// Whether `authority` (`host[:port]`) is `localhost`, a 127/8 address or
/// `[::1]`.
fn is_loopback_authority(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((address, rest)) if rest.is_empty() || rest.starts_with(':') => address,
            _ => return false,
        },
        None => authority.split(':').next().unwrap_or(""),
    };
    // As the Host header may spell it: in any case.
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// How far past its limit a body is still read (and thrown away), so that
/// an ordinary client that sends it whole before reading hears the 413
/// instead of a reset connection.
const DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// Why a body was not read.
enum Unread {
    /// Over the limit.
    TooLarge,
    /// The client broke off, or sent a malformed body.
    Broken,
}

/// Reads a body of at most `limit` bytes into memory; past the limit, up
/// to [`DRAIN_BYTES`] more are read and dropped before giving up.
async fn collect(mut body: Body, limit: usize, capacity: usize) -> Result<Bytes, Unread> {
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    let (mut kept, mut dropped) = (0usize, 0usize);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| Unread::Broken)?.into_data() else {
            continue; // trailers
        };
        if dropped == 0 && kept + data.len() <= limit {
            kept += data.len();
            match &first {
                None => first = Some(data),
                Some(f) => {
                    if more.is_empty() {
                        more.reserve(capacity.max(f.len() + data.len()));
                        more.extend_from_slice(f);
                    }
                    more.extend_from_slice(&data);
                }
            }
        } else {
            dropped += data.len();
            if dropped > DRAIN_BYTES {
                return Err(Unread::TooLarge);
            }
        }
    }
    if dropped > 0 {
        return Err(Unread::TooLarge);
    }
    Ok(if more.is_empty() {
        first.unwrap_or_default()
    } else {
        Bytes::from(more)
    })
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "FSS.0413",
        format!("request body too large (the limit of this request is {limit} bytes)"),
    )
}

/// The one answer to every refused signature; the reason is logged.
fn refused(parts: &Parts, why: &Refusal) -> ApiError {
    log::warn!(
        target: "fnhost::server",
        "{} {}: signature refused: {why}",
        parts.method,
        parts.uri.path()
    );
    ApiError::unauthorized("Incorrect IAM authentication information")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_read_whole_up_to_their_limit_and_no_further() {
        let chunks = |parts: Vec<&'static [u8]>| {
            let stream = futures_util_stream(parts);
            Body::from_stream(stream)
        };
        let whole = collect(chunks(vec![b"ab", b"cd", b"e"]), 5, 5).await;
        assert_eq!(whole.ok().as_deref(), Some(&b"abcde"[..]));
        let one = collect(Body::from("xyz"), 3, 3).await;
        assert_eq!(one.ok().as_deref(), Some(&b"xyz"[..]));
        assert!(matches!(
            collect(chunks(vec![b"ab", b"cd"]), 3, 0).await,
            Err(Unread::TooLarge)
        ));
        let empty = collect(Body::empty(), 3, 0).await;
        assert_eq!(empty.ok().as_deref(), Some(&b""[..]));
    }

    fn futures_util_stream(
        parts: Vec<&'static [u8]>,
    ) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> {
        struct Chunks(std::vec::IntoIter<&'static [u8]>);
        impl futures_core::Stream for Chunks {
            type Item = Result<Bytes, std::io::Error>;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                std::task::Poll::Ready(self.0.next().map(|c| Ok(Bytes::from_static(c))))
            }
        }
        Chunks(parts.into_iter())
    }

    fn parts(method: Method, path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    /// Without access keys the API answers only what the console and local
    /// tools send: a page on another origin (a cross-site `fetch` in
    /// `no-cors` mode needs no permission to send a POST) and a rebound DNS
    /// name (`Host: evil.example` resolving to 127.0.0.1) are refused before
    /// the body is read.
    #[tokio::test]
    async fn an_unkeyed_api_refuses_other_origins_and_foreign_host_names() {
        let gate = Gate::new(
            AccessKeys::default(),
            SignaturePolicy::default(),
            Limits::default(),
            false,
        );
        let create = "/v2/local/fgs/functions";
        let admit = |method: Method, path: &str, headers: &[(&str, &str)]| {
            let parts = parts(method.clone(), path, headers);
            let class = classify(&method, path);
            let gate = &gate;
            async move {
                gate.admit(&parts, Body::from("{}"), class)
                    .await
                    .map(drop)
                    .map_err(|e| (e.status, e.code))
            }
        };
        let refused = Err((StatusCode::FORBIDDEN, "FSS.0403"));
        // A page elsewhere posts a function (or an invocation) to the local server.
        for (origin, host) in [
            ("http://evil.example", "127.0.0.1:8000"),
            ("http://localhost:3000", "localhost:8000"),
            ("null", "127.0.0.1:8000"),
            // The right length, not the right bytes (and not cut at a
            // character boundary where the scheme ends).
            ("https://127.0.0.1:8000", "127.0.0.1:8000"),
            ("http:/é27.0.0.1:8000", "127.0.0.1:8000"),
            ("ftp://a127.0.0.1:8000", "127.0.0.1:8000"),
            ("http://127.0.0.1:8001", "127.0.0.1:8000"),
        ] {
            let headers = [("origin", origin), ("host", host)];
            assert_eq!(admit(Method::POST, create, &headers).await, refused);
            let invoke = "/v2/local/fgs/functions/f/invocations";
            assert_eq!(admit(Method::POST, invoke, &headers).await, refused);
        }
        let cross_site = [("host", "127.0.0.1:8000"), ("sec-fetch-site", "cross-site")];
        assert_eq!(admit(Method::POST, create, &cross_site).await, refused);
        // DNS rebinding: the page's own origin, under a name that is not loopback.
        let rebound = [
            ("origin", "http://evil.example:8000"),
            ("host", "evil.example:8000"),
        ];
        assert_eq!(admit(Method::POST, create, &rebound).await, refused);
        assert_eq!(
            admit(Method::GET, create, &[("host", "evil.example:8000")]).await,
            refused
        );
        // The console (same origin) and tools (no Origin) are served.
        for headers in [
            &[
                ("origin", "http://127.0.0.1:8000"),
                ("host", "127.0.0.1:8000"),
                ("sec-fetch-site", "same-origin"),
            ][..],
            &[
                ("origin", "http://localhost:8000"),
                ("host", "localhost:8000"),
            ][..],
            // Host names and schemes are case-insensitive.
            &[
                ("origin", "HTTP://LocalHost:8000"),
                ("host", "localhost:8000"),
            ][..],
            &[("host", "LOCALHOST:8000")][..],
            &[("host", "[::1]:8000")][..],
            &[("host", "127.0.0.2")][..],
            &[][..],
        ] {
            assert_eq!(
                admit(Method::POST, create, headers).await,
                Ok(()),
                "{headers:?}"
            );
        }
        // The gateway is anonymous and public by design; probes too.
        let foreign = [("origin", "http://evil.example"), ("host", "evil.example")];
        assert_eq!(admit(Method::POST, "/apig/f", &foreign).await, Ok(()));
        assert_eq!(admit(Method::GET, "/healthz", &foreign).await, Ok(()));
    }

    #[test]
    fn requests_are_classified_by_method_and_path() {
        let c = |m: Method, p: &str| classify(&m, p);
        assert_eq!(c(Method::GET, "/healthz"), Class::Probe);
        assert_eq!(c(Method::GET, "/readyz"), Class::Probe);
        assert_eq!(c(Method::GET, "/metrics"), Class::Metrics);
        assert_eq!(c(Method::GET, "/console"), Class::Probe);
        assert_eq!(c(Method::GET, "/console/main.js"), Class::Probe);
        assert_eq!(c(Method::GET, "/consoles"), Class::Gateway);
        let f = "/v2/p1/fgs/functions";
        assert_eq!(c(Method::POST, f), Class::Code);
        assert_eq!(c(Method::POST, "/v2/p1/fgs/functions/"), Class::Code);
        assert_eq!(c(Method::GET, f), Class::Manage);
        assert_eq!(c(Method::PUT, &format!("{f}/urn/code")), Class::Code);
        assert_eq!(c(Method::GET, &format!("{f}/urn/code")), Class::Manage);
        assert_eq!(c(Method::PUT, &format!("{f}/urn/config")), Class::Manage);
        assert_eq!(
            c(Method::POST, &format!("{f}/urn/invocations")),
            Class::Invoke
        );
        assert_eq!(
            c(Method::POST, &format!("{f}/urn/invocations-async")),
            Class::Invoke
        );
        assert_eq!(c(Method::POST, "/v2/a/b/fgs/functions"), Class::Manage);
        assert_eq!(c(Method::GET, "/v2"), Class::Manage);
        assert_eq!(c(Method::GET, "/v2/anything"), Class::Manage);
        assert_eq!(c(Method::GET, "/v2x/shop"), Class::Gateway);
        assert_eq!(c(Method::POST, "/apig/echo/x"), Class::Gateway);
        assert_eq!(c(Method::GET, "/shop/items"), Class::Gateway);
    }
}
