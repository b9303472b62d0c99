//! The HTTP benchmark's baseline: the smallest server on the same stack
//! (tokio, hyper through axum) that answers a POST with the request's bytes,
//! which is what `echo` does through fnhost.
//!
//!     cargo run --release --example http_baseline -p fnhost -- 127.0.0.1:18001

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18001".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = Router::new().route("/{*path}", post(|body: Bytes| async move { body }));
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        println!("baseline on http://{addr}");
        axum::serve(listener, app).await.unwrap();
    });
}
