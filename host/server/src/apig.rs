//! The APIG gateway: the path of an active APIG trigger, or (without access
//! keys, or with `apig_any_function`) `ANY /apig/{function}/{*path}` and
//! `/apig/{function}`, turns a plain HTTP request into FunctionGraph's APIG event (headers,
//! query, path parameters, base64 body for non-UTF-8 content, request context
//! with a request id and the source IP), invokes the function (`name` or
//! `name:qualifier`), and turns its APIG response (status, headers, body,
//! base64) back into HTTP. A handler that does not answer an APIG response has
//! its result returned as the body with status 200. A function may not set
//! the connection's own headers (hop-by-hop, framing), and no trigger may
//! claim a path of the server's.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use fnhost_api::events::{ApigEvent, ApigRequestContext, ApigResponse};

use super::error::ApiError;
use super::state::Shared;
use fnhost::Outcome;

/// Builds the APIG event of a request.
pub fn event_of(
    method: &Method,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    source: Option<SocketAddr>,
) -> ApigEvent {
    let mut header_map = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        header_map
            .entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut query = BTreeMap::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            String::from_utf8_lossy(&super::auth::decode(&s.replace('+', " "))).into_owned()
        };
        query.insert(decode(k), decode(v));
    }
    let text = std::str::from_utf8(body).ok();
    let mut event = ApigEvent::new(
        method.as_str(),
        format!("/{}", path.trim_start_matches('/')),
    );
    event = match text {
        Some(t) => event.with_body(t),
        None => event.with_raw_body(body),
    };
    event.headers = header_map;
    event.query_string_parameters = query;
    event.path_parameters = BTreeMap::from([("path".to_owned(), path.to_owned())]);
    event.request_context = ApigRequestContext {
        api_id: "fnhost".into(),
        request_id: uuid::Uuid::new_v4().simple().to_string(),
        stage: "RELEASE".into(),
        source_ip: source.map(|a| a.ip().to_string()),
    };
    event
}

/// The parts of an HTTP request the gateway turns into an event.
struct Incoming {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    source: SocketAddr,
    body: Bytes,
}

async fn gateway(
    state: Shared,
    function: String,
    base: String,
    path: String,
    req: Incoming,
) -> Result<Response, ApiError> {
    let Incoming {
        method,
        uri,
        headers,
        source,
        body,
    } = req;
    let target = function.clone();
    let name = target.split(':').next().unwrap_or_default().to_owned();
    if !state.management.has_function(&name) {
        return Err(ApiError::function_not_found());
    }
    let options = super::invoke::InvokeOptions::from_headers(&headers);
    let started = std::time::SystemTime::now();
    let route = state
        .runtime
        .registry()
        .resolve(&target)?
        .with_ids(fnhost::CallIds {
            request_id: None,
            trace_id: Some(options.trace.trace_id),
        });
    let event = event_of(&method, &path, &uri, &headers, &body, Some(source));
    let payload = Bytes::from(event.to_string());
    let version = std::sync::Arc::clone(&route.version);
    let result = super::invoke::run_route(&state, &name, route, payload).await?;
    super::invoke::export_spans(&options, "http", &name, &version, started, &result);
    let mut response = answer(result, &base)?;
    confine(response.headers_mut());
    super::invoke::set_trace_headers(response.headers_mut(), &options);
    Ok(response)
}

/// The policy every answer a function serves carries: its page runs in an
/// opaque origin (`sandbox` without `allow-same-origin`), so that a page a
/// function wrote cannot read the console's session storage, its cookies
/// or its DOM, nor call the API as the console's origin, though it is
/// served from the same host and port. Scripts, forms and pop-ups still
/// work for the page itself. A function's own policy is kept beside it:
/// browsers enforce both.
pub(crate) const FUNCTION_PAGE_POLICY: &str =
    "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/// Adds [`FUNCTION_PAGE_POLICY`] and `nosniff` to a function's answer.
fn confine(headers: &mut HeaderMap) {
    headers.append(
        axum::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FUNCTION_PAGE_POLICY),
    );
    headers.insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The HTTP answer of a function's result (an APIG response, or its body
/// as is).
fn answer(result: fnhost::InvokeResult, base: &str) -> Result<Response, ApiError> {
    let (kind, bytes) = match &result.outcome {
        Outcome::Success(b) => (b.kind, b.bytes.clone()),
        Outcome::Failure(e) => {
            return Ok((
                StatusCode::INTERNAL_SERVER_ERROR,
                [("content-type", "application/json")],
                e.to_json(),
            )
                .into_response());
        }
    };
    let Ok(response) = serde_json::from_slice::<ApigResponse>(&bytes) else {
        // Not an APIG response: the body as the handler labelled it (a
        // `Json` result is JSON, a `String` text).
        let content_type = kind.content_type().unwrap_or("application/octet-stream");
        return Ok((
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, content_type)],
            bytes,
        )
            .into_response());
    };
    let status = match StatusCode::from_u16(response.status_code) {
        // 1xx would tell the client the answer is still to come (101: a
        // protocol switch) while a body follows: not an answer a function
        // may give.
        Ok(status) if !status.is_informational() => status,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "FSS.0502",
                format!(
                    "the function's APIG response has status {}, not one of 200 to 599",
                    response.status_code
                ),
            ))
        }
    };
    let body = response.raw_body().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "FSS.0502",
            format!("the function's APIG response: {e}"),
        )
    })?;
    let out = response_headers(&response.headers, base);
    let mut out = out;
    out.insert(
        "x-apig-request-id",
        HeaderValue::from_str(&result.request_id).unwrap_or(HeaderValue::from_static("")),
    );
    Ok((status, out, body).into_response())
}

/// Headers of the connection, not of the answer (RFC 9110 section 7.6.1),
/// and the framing the server sets itself: a function may not set them.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The HTTP headers of a function's APIG response: valid ones only, without
/// hop-by-hop and framing headers (nor those its `Connection` names), and
/// without a cookie for paths other than the function's own (`base` and
/// below): a function may not set cookies the console's or the API's
/// paths would receive.
fn response_headers(headers: &BTreeMap<String, String>, base: &str) -> HeaderMap {
    let named_by_connection: Vec<String> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::new();
    for (k, v) in headers {
        let (Ok(name), Ok(value)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v))
        else {
            continue;
        };
        if HOP_BY_HOP.contains(&name.as_str())
            || named_by_connection.iter().any(|n| n == name.as_str())
        {
            continue;
        }
        if FUNCTION_MAY_NOT_SET.contains(&name.as_str()) {
            log::debug!(target: "fnhost::server", "dropped a function's {name} header");
            continue;
        }
        if name == axum::http::header::SET_COOKIE && !cookie_stays_under(v, base) {
            log::debug!(target: "fnhost::server", "dropped a function's cookie for paths outside {base}");
            continue;
        }
        out.insert(name, value);
    }
    out
}

/// Headers a function's answer may not carry: each acts on the whole
/// origin (the console's too), not on the function's page.
/// `Clear-Site-Data` would wipe the console's session storage (its signing
/// secret), its cookies and cache; the others install or pin things for
/// the whole host (a service worker's scope, another protocol, cookies of
/// the obsolete kind, HTTPS for every port of the host).
const FUNCTION_MAY_NOT_SET: [&str; 6] = [
    "clear-site-data",
    "service-worker-allowed",
    "set-cookie2",
    "alt-svc",
    "strict-transport-security",
    "origin-agent-cluster",
];

/// Whether a `Set-Cookie` value names a `Path` at or under `base` (a cookie
/// without one would default to the request's directory, which may be `/`).
fn cookie_stays_under(cookie: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    cookie
        .split(';')
        .skip(1)
        .filter_map(|attribute| attribute.split_once('='))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("path"))
        .map(|(_, v)| v.trim())
        .last()
        .is_some_and(|path| {
            // No dot segments: a browser keeps `/f/../console` literally, but
            // nothing should make a function's cookie path look like it.
            !base.is_empty()
                && !path
                    .split('/')
                    .any(|segment| segment == ".." || segment == ".")
                && (path == base
                    || path
                        .strip_prefix(base)
                        .is_some_and(|rest| rest.starts_with('/')))
        })
}

/// Paths of the server itself, which an APIG trigger may not claim.
const RESERVED_PREFIXES: [&str; 6] = [
    "/v2", "/healthz", "/readyz", "/metrics", "/apig", "/console",
];

/// Whether `path` is, or is under, one of the server's own paths.
pub(crate) fn is_reserved_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    RESERVED_PREFIXES.iter().any(|prefix| {
        lower == *prefix
            || lower
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Any path no route claims: served when an active APIG trigger's `path`
/// (and `req_method`, `ANY` by default) matches, else FunctionGraph's 404.
pub(crate) async fn by_trigger_path(
    State(state): State<Shared>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path().to_owned();
    if is_reserved_path(&path) {
        // An API path no route matched: never a trigger's.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "FSS.0404",
            "no such API",
        ));
    }
    let routes = state.apig_routes.get();
    let matched = routes
        .iter()
        .filter(|r| r.method == "ANY" || r.method == method.as_str())
        .filter(|r| {
            path == r.base
                || path
                    .strip_prefix(r.base.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        // The longest matching path wins.
        .max_by_key(|r| r.base.len())
        .map(|r| (r.function.clone(), r.base.clone()));
    let Some((function, base)) = matched else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "FSS.0404",
            "no such API",
        ));
    };
    let req = Incoming {
        method,
        uri,
        headers,
        source,
        body,
    };
    let event_path = path.trim_start_matches('/').to_owned();
    gateway(state, function, base, event_path, req).await
}

/// `ANY /apig/{function}` and `ANY /apig/{function}/{*path}`
pub(crate) async fn route(
    State(state): State<Shared>,
    Path(params): Path<BTreeMap<String, String>>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let function = params.get("function").cloned().unwrap_or_default();
    if !state.apig_any_function {
        // With access keys, only APIG triggers expose functions anonymously.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "FSS.0404",
            "no such API",
        ));
    }
    let path = params.get("path").cloned().unwrap_or_default();
    let req = Incoming {
        method,
        uri,
        headers,
        source,
        body,
    };
    let base = format!("/apig/{function}");
    gateway(state, function, base, path, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_framing_headers_of_a_function_are_dropped() {
        let headers: BTreeMap<String, String> = [
            ("Content-Type", "text/plain"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "999"),
            ("Connection", "close, X-Secret-Hop"),
            ("X-Secret-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Upgrade", "websocket"),
            ("X-Kept", "yes"),
            ("Bad\nName", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let out = response_headers(&headers, "/shop");
        let mut names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-kept"]);
    }

    /// A function's page once wiped the console's session storage with
    /// `Clear-Site-Data`.
    #[test]
    fn headers_that_act_on_the_whole_origin_are_dropped() {
        let headers: BTreeMap<String, String> = [
            ("Clear-Site-Data", "\"cookies\", \"storage\""),
            ("clear-site-data", "\"*\""),
            ("Service-Worker-Allowed", "/"),
            ("Alt-Svc", "h2=\":443\""),
            ("X-Kept", "yes"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let out = response_headers(&headers, "/shop");
        assert_eq!(
            out.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-kept"]
        );
    }

    /// A function once set a cookie the console's paths received.
    #[test]
    fn a_functions_cookies_stay_on_its_own_paths() {
        let kept = |cookie: &str| {
            let headers = BTreeMap::from([("Set-Cookie".to_owned(), cookie.to_owned())]);
            response_headers(&headers, "/shop").contains_key("set-cookie")
        };
        assert!(kept("a=1; Path=/shop"));
        assert!(kept("a=1; HttpOnly; path=/shop/cart; Secure"));
        for refused in [
            "a=1",
            "a=1; Path=/",
            "a=1; Path=/console",
            "a=1; Path=/shopping",
            "a=1; Path=/shop; Path=/",
            "__Host-a=1; Path=/",
            "a=1; Path=/shop/../console",
            "a=1; Path=/shop/./x",
        ] {
            assert!(!kept(refused), "{refused}");
        }
        assert!(!cookie_stays_under("a=1; Path=/", "/"));
    }

    #[test]
    fn the_servers_own_paths_are_reserved() {
        for p in [
            "/v2",
            "/v2/",
            "/V2/p/fgs",
            "/healthz",
            "/metrics",
            "/apig/x",
            "/console",
        ] {
            assert!(is_reserved_path(p), "{p}");
        }
        for p in ["/v2x", "/shop", "/", "/api/v2", "/metricsx"] {
            assert!(!is_reserved_path(p), "{p}");
        }
    }

    #[test]
    fn requests_become_apig_events() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let uri: Uri = "/apig/f/items/7?q=a+b&flag".parse().unwrap();
        let e = event_of(
            &Method::POST,
            "items/7",
            &uri,
            &headers,
            b"hello",
            Some(([127, 0, 0, 1], 9).into()),
        );
        assert_eq!(e.http_method, "POST");
        assert_eq!(e.path, "/items/7");
        assert_eq!(e.body, "hello");
        assert!(!e.is_base64_encoded);
        assert_eq!(e.headers["x-multi"], "a,b");
        assert_eq!(e.query_string_parameters["q"], "a b");
        assert_eq!(e.query_string_parameters["flag"], "");
        assert_eq!(e.request_context.source_ip.as_deref(), Some("127.0.0.1"));
        let binary = event_of(&Method::PUT, "", &uri, &headers, b"\xff\x00", None);
        assert!(binary.is_base64_encoded);
        assert_eq!(binary.raw_body().unwrap().as_ref(), b"\xff\x00");
    }
}
