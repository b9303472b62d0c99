//! The request log: one structured line per request (target
//! `fnhost::http`, info level), written by the router's middleware and by
//! the front's invocation shortcut.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// One structured line per request (target `fnhost::http`, info level):
/// method, path, status, duration and the invocation's request id.
pub(crate) async fn log_request(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    log_response(&method, &path, &response, started);
    response
}

/// Writes the line of a request answered with `response`.
pub(crate) fn log_response(
    method: &axum::http::Method,
    path: &str,
    response: &Response,
    started: std::time::Instant,
) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    };
    let (request_id, trace_id) = (header("x-cff-request-id"), header("x-cff-trace-id"));
    log::info!(
        target: "fnhost::http",
        request_id = request_id,
        trace_id = trace_id;
        "method={method} path={path} status={} duration_ms={:.3} request_id={request_id}",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
}
