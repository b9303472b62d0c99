//! Host functions bridged to tokio (docs/src/embedding/host-functions.md):
//! an async program keeps a cache behind a `tokio::sync::RwLock`, offers it
//! to plugins as the host function `cache.get`, and awaits 8 invocations at
//! once (`CallHandle` is a future, on any executor), in process and in a
//! sandboxed worker process.
//!
//!     cargo build -p echo -p fnhost-cli && cargo run -p fnhost --example host_functions_tokio -- target/debug
//!
//! A host function is synchronous: it runs on the plugin's thread (a thread
//! of fnhost's, never one of tokio's), so it may block on the async world
//! through a runtime handle.
// An example: a failed assumption ends the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use fnhost::{
    CallOptions, FunctionConfig, HostCallContext, HostError, Isolation, Outcome, Runtime,
    RuntimeConfig,
};
use tokio::sync::RwLock;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The program is its own worker executable (process isolation).
    fnhost::worker::main_if_worker();
    let code_dir = std::env::args()
        .nth(1)
        .ok_or("usage: host_functions_tokio CODE_DIR (a directory with libecho.so)")?;
    let tokio = tokio::runtime::Runtime::new()?;
    let cache: Arc<RwLock<HashMap<String, String>>> = Arc::default();
    tokio.block_on(async {
        let mut c = cache.write().await;
        for i in 0..8 {
            c.insert(format!("k{i}"), format!("value {i}, from tokio"));
        }
    });
    let handle = tokio.handle().clone();
    let reader = Arc::clone(&cache);
    let runtime = Runtime::builder()
        .config(RuntimeConfig::default())
        .host_function(
            "cache.get",
            move |ctx: &HostCallContext<'_>, key: &[u8]| -> Result<Vec<u8>, HostError> {
                let key = std::str::from_utf8(key)?.to_owned();
                let cache = Arc::clone(&reader);
                // On the plugin's thread: wait for the async lookup here.
                let value = handle.block_on(async move { cache.read().await.get(&key).cloned() });
                match value {
                    Some(v) => Ok(format!("{v} (asked by {})", ctx.function()).into_bytes()),
                    None => Err(HostError::new("no such key").with_type("NotFound")),
                }
            },
        )
        .build()?;
    for isolation in [Isolation::InProcess, Isolation::Process] {
        let function = runtime.load(
            FunctionConfig::new("echo.CallHost", &code_dir)
                .name("reader")
                .isolation(isolation)
                .user_data("HOST_FUNCTION", "cache.get"),
        )?;
        let answers = tokio.block_on(async {
            let calls: Vec<_> = (0..8)
                .map(|i| {
                    let call = function.invoke_async(format!("k{i}"), CallOptions::default());
                    tokio::spawn(call)
                })
                .collect();
            let mut answers = Vec::new();
            for call in calls {
                answers.push(call.await.unwrap());
            }
            answers
        });
        for (i, answer) in answers.into_iter().enumerate() {
            match answer?.outcome {
                Outcome::Success(body) => {
                    let text = String::from_utf8_lossy(&body.bytes).into_owned();
                    assert!(
                        text.starts_with(&format!("value {i}, from tokio")),
                        "{text}"
                    );
                    if i == 0 {
                        println!("{isolation:?}: {text}");
                    }
                }
                Outcome::Failure(e) => return Err(format!("{isolation:?}: {e:?}").into()),
            }
        }
        let missing = function.invoke(b"nope")?;
        let error = missing.outcome.error().expect("a missing key fails");
        assert_eq!(error.error_type, "NotFound");
        println!(
            "{isolation:?}: 8 calls awaited on tokio; a missing key is {}",
            error.error_type
        );
    }
    println!("host_functions_tokio: all checks passed");
    Ok(())
}
