//! The HTTP benchmark's baseline: the smallest server on the same stack
//! (tokio, hyper through axum) that answers a POST with the request's bytes,
//! which is what `echo` does through fnhost.
//!
//! - `POST /fg/...` answers with the response headers a FunctionGraph sync
//!   invocation carries (request id, summary, billing duration, error flags,
//!   content type), as constants of the same length: the same bytes on the
//!   wire as fnhost's answer, with none of the work. The difference between
//!   the two baselines is what the protocol's headers cost (server and client).
//! - `POST` anything else: the bytes alone.
//!
//!     cargo run --release --example http_baseline -p fnhost-server -- 127.0.0.1:18001
// A measuring program: a failed assumption ends the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

/// What fnhost sends with an `echo` answer (values of a typical call).
const FUNCTIONGRAPH_HEADERS: [(&str, &str); 7] = [
    ("content-type", "application/octet-stream"),
    ("x-cff-response-version", "v0"),
    ("x-func-err-code", "0"),
    ("x-is-func-err", "false"),
    (
        "x-cff-invoke-summary",
        r#"{"duration":0.012,"billingDuration":1,"memorySize":128,"memoryUsed":0.0}"#,
    ),
    ("x-cff-billing-duration", "1"),
    ("x-cff-request-id", "51d7c919-5afb-4fc9-a21f-781e73cc1bfa"),
];

async fn with_functiongraph_headers(body: Bytes) -> impl IntoResponse {
    let headers = FUNCTIONGRAPH_HEADERS.map(|(name, value)| {
        (
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    });
    (headers, body)
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18001".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = Router::new()
            .route("/fg/{*path}", post(with_functiongraph_headers))
            .route("/{*path}", post(|body: Bytes| async move { body }));
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        println!("baseline on http://{addr}");
        axum::serve(listener, app).await.unwrap();
    });
}
