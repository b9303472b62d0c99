//! `hotswap`: answers which build it is. The build tag lives in read-only
//! data behind a fixed marker, so tests and benchmarks make distinct builds
//! of one compiled library by patching the byte after `fnhost-build-tag:`
//! (see `tests/support`), without recompiling.
//!
//! - `Handler`: answers `build <tag>`; a payload `sleep:<ms>` sleeps first.
//! - `Init`: counts initializer runs; `Handler` reports the count after the
//!   tag. With user data `INIT_SLEEP_MS`, it first sleeps that long (a slow
//!   initializer, for tests of what a slow deploy holds up).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fnhost_api::{Context, HandlerError};

/// The marker and, as its last byte, the tag.
#[used]
static BUILD: [u8; 18] = *b"fnhost-build-tag:A";

static INITS: AtomicU64 = AtomicU64::new(0);

/// Answers `build <tag> inits <n>`.
pub fn handler(payload: &[u8], _ctx: &Context) -> Result<String, HandlerError> {
    if let Some(ms) = std::str::from_utf8(payload)
        .ok()
        .and_then(|p| p.strip_prefix("sleep:"))
        .and_then(|ms| ms.trim().parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
    // Read the tag at run time: it is patched in the file, not in the source.
    let tag = std::hint::black_box(&BUILD)[17] as char;
    Ok(format!(
        "build {tag} inits {}",
        INITS.load(Ordering::SeqCst)
    ))
}

/// Counts its runs (after sleeping `INIT_SLEEP_MS`, when set).
pub fn init(ctx: &Context) -> Result<(), HandlerError> {
    if let Some(ms) = ctx
        .user_data("INIT_SLEEP_MS")
        .and_then(|ms| ms.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
    INITS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

fnhost_api::export_plugin! {
    handlers: { "Handler" => handler },
    initializers: { "Init" => init },
}
