//! Where the outcome of an asynchronous invocation goes: another function
//! (invoked asynchronously, its payload the outcome record), or an HTTP
//! endpoint (the same record POSTed as JSON). Only loopback URLs are allowed
//! unless the server is configured to allow any (`--async-http-destinations
//! any`): a destination is set by anyone who may configure a function, and
//! must not turn the server into a proxy to the networks it can reach.
//!
//! The record (`version` 1), documented in the book (docs/src/serving/async.md):
//! `{"version", "timestamp", "request_id", "function_urn", "status",
//! "condition", "attempts", "trace_id", "traceparent", "request": {"source",
//! "payload", "payload_encoding"}, "response": {"body", "body_encoding"} |
//! null, "error": {"error_code", "error_message"} | null}`; `condition` is
//! `Success`, `RetriesExhausted`, `EventAgeExceeded` or `FunctionNotFound`,
//! encodings are `utf8` or `base64`.

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::model::now_rfc3339;
use crate::state::Shared;
use crate::urn::FunctionRefStr;
use serde::Serialize;

pub use crate::async_queue::HttpDestinations;

/// Most destination hops in a chain (a destination function whose own
/// destination is a function...): the record of a deeper one is dropped.
pub const MAX_DEPTH: u32 = 8;
/// How long an HTTP destination may take to answer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One destination as the SDK sends it: a type and its parameters as a JSON
/// string.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// `FunctionGraph` or `HTTP` (FunctionGraph's OBS, SMN and DIS are not
    /// available locally).
    pub destination: String,
    /// `{"func_urn": "..."}` or `{"url": "http://127.0.0.1:PORT/path"}`.
    #[serde(default)]
    pub param: String,
}

/// A checked destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// Invoke this function (`name` or `name:qualifier`) asynchronously.
    Function { urn: String },
    /// POST to `http://HOST[:PORT]` + `path`.
    Http { base: String, path: String },
}

#[derive(Deserialize)]
struct FunctionParam {
    func_urn: String,
}

#[derive(Deserialize)]
struct HttpParam {
    url: String,
}

fn param<'a, T: Deserialize<'a>>(d: &'a DestinationConfig) -> Result<T, ApiError> {
    serde_json::from_str(&d.param).map_err(|e| {
        ApiError::bad_request(format!(
            "destination {}: param is not what it needs ({e})",
            d.destination
        ))
    })
}

impl Destination {
    /// Parses a destination as the SDK sends it.
    pub(crate) fn parse(d: &DestinationConfig) -> Result<Destination, ApiError> {
        match d.destination.as_str() {
            "FunctionGraph" => {
                let p: FunctionParam = param(d)?;
                FunctionRefStr::parse(&p.func_urn).ok_or_else(|| {
                    ApiError::bad_request(format!("`{}` is not a function URN", p.func_urn))
                })?;
                Ok(Destination::Function { urn: p.func_urn })
            }
            "HTTP" => {
                let p: HttpParam = param(d)?;
                let rest = p.url.strip_prefix("http://").ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "HTTP destination `{}`: only http:// URLs are delivered to",
                        p.url
                    ))
                })?;
                let (authority, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                if authority.is_empty() || authority.contains('@') || path.len() > 2048 {
                    return Err(ApiError::bad_request(format!(
                        "HTTP destination `{}` is not a URL fnhost delivers to",
                        p.url
                    )));
                }
                Ok(Destination::Http {
                    base: format!("http://{authority}"),
                    path: path.to_owned(),
                })
            }
            other => Err(ApiError::bad_request(format!(
                "destination `{other}` is not available in fnhost: use FunctionGraph or HTTP"
            ))),
        }
    }

    /// Whether this server may deliver to it: the function exists, the
    /// HTTP host is allowed.
    pub(crate) fn check(&self, state: &Shared) -> Result<(), ApiError> {
        match self {
            Destination::Function { urn } => {
                state.management.lookup(urn)?;
                Ok(())
            }
            Destination::Http { base, .. } => {
                if state.asynchronous.settings().http_destinations == HttpDestinations::Any
                    || is_loopback(base)
                {
                    Ok(())
                } else {
                    Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "FSS.0400",
                        format!("HTTP destination {base}: this server delivers to loopback addresses only (start it with --async-http-destinations any to allow others)"),
                    ))
                }
            }
        }
    }

    /// The kind, for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Destination::Function { .. } => "FunctionGraph",
            Destination::Http { .. } => "HTTP",
        }
    }
}

fn is_loopback(base: &str) -> bool {
    let authority = base.strip_prefix("http://").unwrap_or(base);
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `bytes` as text when it is UTF-8, else base64, with the encoding's name.
fn encoded(bytes: &[u8]) -> (Value, &'static str) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (Value::String(s.to_owned()), "utf8"),
        Err(_) => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            "base64",
        ),
    }
}

/// How an invocation ended, for its record.
pub(crate) struct Ending<'a> {
    pub(crate) request_id: &'a str,
    pub(crate) function_urn: String,
    pub(crate) status: &'a str,
    pub(crate) condition: &'a str,
    pub(crate) attempts: u32,
    pub(crate) traceparent: &'a str,
    pub(crate) source: &'a str,
    pub(crate) payload: &'a [u8],
    /// The handler's result body, on success.
    pub(crate) response: Option<&'a [u8]>,
    /// `(error_code, error_message)` otherwise.
    pub(crate) error: Option<(i64, &'a str)>,
}

/// The outcome record.
pub(crate) fn record(e: &Ending<'_>) -> Value {
    let (payload, payload_encoding) = encoded(e.payload);
    json!({
        "version": 1,
        "timestamp": now_rfc3339(),
        "request_id": e.request_id,
        "function_urn": e.function_urn,
        "status": e.status,
        "condition": e.condition,
        "attempts": e.attempts,
        "trace_id": e.traceparent.split('-').nth(1).unwrap_or(""),
        "traceparent": e.traceparent,
        "request": {"source": e.source, "payload": payload, "payload_encoding": payload_encoding},
        "response": e.response.map(|body| {
            let (body, encoding) = encoded(body);
            json!({"body": body, "body_encoding": encoding})
        }),
        "error": e.error.map(|(code, message)| json!({"error_code": code, "error_message": message})),
    })
}

/// Delivers `record` to `destination`; whether it was taken.
pub(crate) async fn deliver(
    state: &Shared,
    destination: &Destination,
    record: Value,
    traceparent: &str,
    tracestate: &str,
    depth: u32,
) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "a chain of {MAX_DEPTH} destinations ends here (a loop of destinations?)"
        ));
    }
    destination.check(state).map_err(|e| e.message.clone())?;
    let body = record.to_string().into_bytes();
    match destination {
        Destination::Function { urn } => {
            let r = FunctionRefStr::parse(urn).ok_or("not a function URN")?;
            let limit = state.runtime.config().max_payload_bytes;
            if body.len() > limit {
                return Err(format!(
                    "the outcome record is {} bytes, over the {limit}-byte payload limit",
                    body.len()
                ));
            }
            let accepted = super::Accepted {
                function: r.name.to_owned(),
                target: r.target.to_owned(),
                payload: body.into(),
                traceparent: traceparent.to_owned(),
                tracestate: tracestate.to_owned(),
                source: "destination",
                depth: depth + 1,
                request_id: None,
            };
            super::enqueue(state, accepted)
                .await
                .map(drop)
                .map_err(|e| e.message)
        }
        Destination::Http { base, path } => {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            // A span of this delivery, in the invocation's trace.
            if let Some(trace) = crate::trace::TraceContext::from_stored(traceparent) {
                let value = trace.traceparent(crate::trace::span_id());
                if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                    headers.insert("traceparent", v);
                }
                if let Ok(v) = axum::http::HeaderValue::from_str(tracestate) {
                    if !tracestate.is_empty() {
                        headers.insert("tracestate", v);
                    }
                }
            }
            let status = tokio::time::timeout(HTTP_TIMEOUT, post(base, path, headers, body))
                .await
                .map_err(|_| format!("{base}{path} did not answer within {HTTP_TIMEOUT:?}"))??;
            if (200..300).contains(&status) {
                Ok(())
            } else {
                Err(format!("{base}{path} answered {status}"))
            }
        }
    }
}

/// POSTs `body` to `path` on `base` (`http://HOST:PORT`) over one HTTP/1.1
/// connection on the server's executor; answers the status (the answer's
/// body is not read). The caller bounds the time.
async fn post(
    base: &str,
    path: &str,
    mut headers: axum::http::HeaderMap,
    body: Vec<u8>,
) -> Result<u16, String> {
    let authority = base.strip_prefix("http://").unwrap_or(base);
    let host = axum::http::HeaderValue::from_str(authority).map_err(|e| e.to_string())?;
    headers.insert(axum::http::header::HOST, host);
    let address = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|e| format!("{base}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{base}: {e}"))?;
    let driver = tokio::spawn(connection);
    let mut request = axum::http::Request::builder()
        .method(axum::http::Method::POST)
        .uri(path)
        .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    *request.headers_mut() = headers;
    let answer = sender.send_request(request).await;
    driver.abort();
    answer
        .map(|a| a.status().as_u16())
        .map_err(|e| format!("{base}{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(destination: &str, param: &str) -> DestinationConfig {
        DestinationConfig {
            destination: destination.to_owned(),
            param: param.to_owned(),
        }
    }

    #[test]
    fn destinations_parse_as_the_sdk_sends_them() {
        assert_eq!(
            Destination::parse(&d("FunctionGraph", r#"{"func_urn":"sink"}"#)).unwrap(),
            Destination::Function { urn: "sink".into() }
        );
        assert_eq!(
            Destination::parse(&d("HTTP", r#"{"url":"http://127.0.0.1:9/hook?x=1"}"#)).unwrap(),
            Destination::Http {
                base: "http://127.0.0.1:9".into(),
                path: "/hook?x=1".into()
            }
        );
        for (kind, param) in [
            ("OBS", "{}"),
            ("FunctionGraph", "{}"),
            ("FunctionGraph", r#"{"func_urn":"a:b:c"}"#),
            ("HTTP", r#"{"url":"https://example.com/"}"#),
            ("HTTP", r#"{"url":"http://user@127.0.0.1/"}"#),
            ("HTTP", "not json"),
        ] {
            assert!(
                Destination::parse(&d(kind, param)).is_err(),
                "{kind} {param}"
            );
        }
    }

    #[test]
    fn only_loopback_hosts_are_loopback() {
        for yes in [
            "http://127.0.0.1:8080",
            "http://localhost",
            "http://[::1]:9",
            "http://127.1.2.3",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "http://10.0.0.1:80",
            "http://example.com",
            "http://127.0.0.1.nip.io",
            "http://[::2]:9",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
