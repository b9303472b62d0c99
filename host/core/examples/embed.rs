//! Embedding fnhost in a Rust program: the book's example (docs/src/embedding/rust.md), compiled.
//!
//!     cargo build -p echo && cargo run -p fnhost --example embed -- target/debug
//!
//! The program is its own worker executable (for the pre-flight of every new
//! library, and for functions with process isolation): it hands over to
//! `fnhost::worker` first thing when started as one.
// A measuring program: a failed assumption ends the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fnhost::{FunctionConfig, Isolation, Outcome, Runtime, RuntimeConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    fnhost::worker::main_if_worker();
    let code_dir = std::env::args()
        .nth(1)
        .ok_or("usage: embed CODE_DIR (a directory with libecho.so)")?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    for isolation in [Isolation::InProcess, Isolation::Process] {
        let function = runtime.load(
            FunctionConfig::new("echo.Handler", &code_dir)
                .isolation(isolation)
                .timeout(std::time::Duration::from_secs(5)),
        )?;
        // Safe from any number of threads at once.
        let result = function.invoke(b"hello from an embedding program")?;
        match &result.outcome {
            Outcome::Success(body) => println!(
                "{isolation:?}: {} {}",
                body.kind.content_type().unwrap_or("(no body)"),
                String::from_utf8_lossy(&body.bytes)
            ),
            Outcome::Failure(e) => println!("{isolation:?}: {}", e.to_json()),
        }
        println!("{} {}", result.request_id, result.summary.to_json());
        print!("{}", result.log_tail());
    }
    Ok(())
}
