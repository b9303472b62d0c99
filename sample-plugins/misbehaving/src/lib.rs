//! `misbehaving`: handlers that fail in every way a runtime must contain.
//! `Segfault`, `Abort` and `Exit` end the process they run in: use them only
//! with process isolation.

use std::time::Duration;

use fnhost_api::{Context, HandlerError};

/// Returns an error of type `FunctionReturnError`.
pub fn error(_: &[u8], _: &Context) -> Result<(), HandlerError> {
    Err(HandlerError::new("the handler returned an error"))
}

/// Returns an error of a custom type.
pub fn custom_error(_: &[u8], _: &Context) -> Result<(), HandlerError> {
    Err(HandlerError::new("no such order").with_type("OrderNotFound"))
}

/// The handler's own error type, which names its `errorType` ([`ErrorType`]).
#[derive(Debug)]
pub enum OrderError {
    /// No order with this id.
    NotFound(u64),
    /// The payload is not an order id.
    BadId(std::num::ParseIntError),
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderError::NotFound(id) => write!(f, "no order {id}"),
            OrderError::BadId(e) => write!(f, "bad order id: {e}"),
        }
    }
}

impl From<std::num::ParseIntError> for OrderError {
    fn from(e: std::num::ParseIntError) -> Self {
        OrderError::BadId(e)
    }
}

impl fnhost_api::ErrorType for OrderError {
    fn error_type(&self) -> &str {
        match self {
            OrderError::NotFound(_) => "OrderNotFound",
            OrderError::BadId(_) => "InvalidOrderId",
        }
    }
}

/// Returns its own error type: `?` converts without `map_err`.
pub fn own_error(payload: &[u8], _: &Context) -> Result<String, OrderError> {
    let id: u64 = String::from_utf8_lossy(payload).trim().parse()?;
    Err(OrderError::NotFound(id))
}

/// Panics with a message.
pub fn panic(_: &[u8], _: &Context) -> Result<(), HandlerError> {
    panic!("misbehaving handler panicked on purpose")
}

/// Spins forever (until the process ends).
pub fn spin(_: &[u8], _: &Context) -> Result<(), HandlerError> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

/// Sleeps for the number of milliseconds in the payload (default 1000),
/// then answers `"slept"`.
pub fn sleep(payload: &[u8], _: &Context) -> Result<&'static str, HandlerError> {
    let ms = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1000);
    std::thread::sleep(Duration::from_millis(ms));
    Ok("slept")
}

/// An APIG response that tries to set the connection's own headers: its
/// framing (`Transfer-Encoding`, `Content-Length`) and hop-by-hop ones.
pub fn hop_headers(
    _: &[u8],
    _: &Context,
) -> Result<fnhost_api::events::ApigResponse, HandlerError> {
    Ok(fnhost_api::events::ApigResponse::new(200)
        .with_header("Transfer-Encoding", "chunked")
        .with_header("Content-Length", "100000")
        .with_header("Connection", "keep-alive, X-Hop")
        .with_header("X-Hop", "1")
        .with_header("Upgrade", "h2c")
        .with_header("X-Kept", "yes")
        .with_body("short"))
}

/// A page that tries to reach what the console keeps on the server's
/// origin: its session storage (the signing secret), local storage, cookies,
/// and the API as the console's origin; it writes what it found into its
/// title. It also sets a cookie for the whole host.
pub fn hostile_page(
    _: &[u8],
    _: &Context,
) -> Result<fnhost_api::events::ApigResponse, HandlerError> {
    const PAGE: &str = r#"<!doctype html><title>pending</title><script>
const found = {};
const read = (what, f) => { try { found[what] = f(); } catch (e) { found[what] = "blocked"; } };
read("session", () => JSON.stringify(sessionStorage));
read("local", () => JSON.stringify(localStorage));
read("cookie", () => document.cookie);
read("opener", () => JSON.stringify(window.opener && window.opener.sessionStorage));
fetch("/v2/local/fgs/functions", { credentials: "include" })
  .then((r) => r.status, () => "blocked")
  .then((status) => { found.api = status; document.title = JSON.stringify(found); });
</script>"#;
    Ok(fnhost_api::events::ApigResponse::new(200)
        .with_header("Content-Type", "text/html; charset=utf-8")
        .with_header("Set-Cookie", "planted=1; Path=/")
        .with_body(PAGE))
}

/// Allocates and touches 64 MB, then answers how many bytes it held.
pub fn alloc64(_: &[u8], _: &Context) -> Result<String, HandlerError> {
    let block = vec![1u8; 64 * 1024 * 1024];
    let sum: usize = block.iter().step_by(4096).map(|&b| b as usize).sum();
    Ok(format!("held {} bytes ({} pages)", block.len(), sum))
}

/// Returns 10 MB of bytes, over the 6 MB response limit.
pub fn big(_: &[u8], _: &Context) -> Result<Vec<u8>, HandlerError> {
    Ok(vec![b'x'; 10 * 1024 * 1024])
}

/// Writes 10,000 numbered log lines (far more than the 4 KB tail).
pub fn chatty(_: &[u8], ctx: &Context) -> Result<(), HandlerError> {
    for i in 0..10_000 {
        ctx.logger().info(format_args!("line {i:05}"));
    }
    Ok(())
}

/// Logs its payload, as it is, as one message through the context logger.
pub fn log_payload(payload: &[u8], ctx: &Context) -> Result<&'static str, HandlerError> {
    ctx.logger()
        .info(format_args!("{}", String::from_utf8_lossy(payload)));
    Ok("logged")
}

/// Allocates and touches the number of megabytes in the payload (default 256).
pub fn alloc_mb(payload: &[u8], _: &Context) -> Result<String, HandlerError> {
    let mb: usize = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(256);
    let block = vec![1u8; mb * 1024 * 1024];
    Ok(format!(
        "held {} MB",
        std::hint::black_box(&block).len() / (1024 * 1024)
    ))
}

/// Writes through a null pointer: SIGSEGV. Only an isolated worker survives it.
pub fn segfault(_: &[u8], _: &Context) -> Result<(), HandlerError> {
    let p: *mut u8 = std::hint::black_box(std::ptr::null_mut());
    // SAFETY: none: this is the point. It must only run in a worker process.
    unsafe { std::ptr::write_volatile(p, 1) };
    Ok(())
}

/// Logs through the context, prints on stdout and stderr, then ends the way
/// the payload says: `timeout` (sleeps past any deadline), `segv` (a
/// segfault) or `oom` (allocates and touches memory until the limit).
pub fn log_then(payload: &[u8], ctx: &Context) -> Result<(), HandlerError> {
    ctx.logger().info(format_args!("logged before the end"));
    println!("printed before the end");
    eprintln!("on stderr before the end");
    match payload {
        b"timeout" => loop {
            std::thread::sleep(Duration::from_secs(1));
        },
        b"segv" => {
            let p: *mut u8 = std::hint::black_box(std::ptr::null_mut());
            // SAFETY: none: this is the point. It must only run in a worker.
            unsafe { std::ptr::write_volatile(p, 1) };
        }
        b"oom" => {
            let mut held = Vec::new();
            loop {
                held.push(vec![1u8; 16 * 1024 * 1024]);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Aborts the process (SIGABRT).
pub fn abort(_: &[u8], _: &Context) -> Result<(), HandlerError> {
    std::process::abort()
}

/// Exits the process with status 3.
pub fn exit(_: &[u8], _: &Context) -> Result<(), HandlerError> {
    std::process::exit(3)
}

/// Prints to stdout and stderr, then answers `printed`.
pub fn print(_: &[u8], _: &Context) -> Result<&'static str, HandlerError> {
    println!("hello on stdout");
    eprintln!("hello on stderr");
    Ok("printed")
}

/// Prints its payload to stdout without a newline (std's line buffer holds it).
pub fn print_partial(payload: &[u8], _: &Context) -> Result<&'static str, HandlerError> {
    print!("partial {}", String::from_utf8_lossy(payload));
    Ok("printed")
}

/// An initializer that fails.
pub fn init_fail(_: &Context) -> Result<(), HandlerError> {
    Err(HandlerError::new("database unreachable"))
}

/// An initializer that panics.
pub fn init_panic(_: &Context) -> Result<(), HandlerError> {
    panic!("initializer panicked on purpose")
}

/// An initializer that aborts its process: a library that crashes at start.
pub fn init_abort(_: &Context) -> Result<(), HandlerError> {
    std::process::abort()
}

/// An initializer that never finishes in time.
pub fn init_slow(_: &Context) -> Result<(), HandlerError> {
    std::thread::sleep(Duration::from_secs(30));
    Ok(())
}

fnhost_api::export_plugin! {
    handlers: {
        "Error" => error,
        "CustomError" => custom_error,
        "Panic" => panic,
        "Spin" => spin,
        "Sleep" => sleep,
        "HopHeaders" => hop_headers,
        "HostilePage" => hostile_page,
        "Alloc64" => alloc64,
        "Big" => big,
        "Chatty" => chatty,
        "LogPayload" => log_payload,
        "LogThen" => log_then,
        "AllocMb" => alloc_mb,
        "Segfault" => segfault,
        "Abort" => abort,
        "Exit" => exit,
        "Print" => print,
        "PrintPartial" => print_partial,
        "OwnError" => own_error,
    },
    initializers: {
        "InitFail" => init_fail,
        "InitPanic" => init_panic,
        "InitSlow" => init_slow,
        "InitAbort" => init_abort,
    },
}
