//! The worker side: load the function from the host's `Start` frame, then
//! serve `Invoke` frames one at a time on this thread until the socket closes.

use std::io::BufReader;
use std::os::unix::io::FromRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use super::protocol::{read_frame, write_frame, Done, Invoke, Ready, Start};
use crate::config::Isolation;
use crate::entry::Entry;
use crate::generation::Mode;
use crate::invocation::Served;
use crate::outcome::{BodyKind, Outcome};
use crate::runtime::{build_generation_at, Runtime, RuntimeConfig};

/// The socket the host passes to a worker.
const SOCKET_FD: i32 = 3;

/// Runs this process as a worker (the host starts the `fnhost` executable
/// with [`super::WORKER_ARG`]). Returns the exit status.
pub fn worker_main() -> i32 {
    // SAFETY: the host starts workers with its end of a socketpair dup2'ed
    // onto fd 3 and nothing else using that descriptor; we take ownership
    // once, here.
    let socket = unsafe { UnixStream::from_raw_fd(SOCKET_FD) };
    match serve(socket) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fnhost worker: {e}");
            1
        }
    }
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    (kib / 1024.0 * 1000.0).round() / 1000.0
}

fn reset_peak_rss() {
    // Writing 5 resets VmHWM to the current RSS (Linux 4.0+).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn serve(socket: UnixStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(socket.try_clone()?);
    let mut writer = socket;
    let (start, _): (Start, Vec<u8>) = read_frame(&mut reader)?;
    let mut config = start.config;
    config.isolation = Isolation::InProcess;
    let loaded = (|| {
        let cache = start
            .library
            .parent()
            .map(|p| p.to_owned())
            .ok_or_else(|| {
                (
                    "LoadError".to_owned(),
                    "library path has no directory".to_owned(),
                )
            })?;
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(cache),
            worker_stack_size: 2 * 1024 * 1024,
            ..RuntimeConfig::default()
        })
        .map_err(|e| ("LoadError".to_owned(), e.to_string()))?;
        let entry =
            Entry::parse(&config.entry).map_err(|e| ("LoadError".to_owned(), e.to_string()))?;
        let init = config
            .initializer
            .as_deref()
            .map(Entry::parse)
            .transpose()
            .map_err(|e| ("LoadError".to_owned(), e.to_string()))?;
        let generation = build_generation_at(runtime.shared(), config, &start.library, entry, init)
            .map_err(|e| ("LoadError".to_owned(), e.to_string()))?;
        let init_log = match generation.warm_up() {
            Ok(()) => generation
                .initializer_report()
                .map(|r| r.log)
                .unwrap_or_default(),
            Err(report) => {
                let e = report.error.unwrap_or_else(|| {
                    crate::FunctionError::new(
                        crate::error_type::INITIALIZATION,
                        "initializer failed",
                    )
                });
                return Err((e.error_type, format!("{}\n{}", e.message, report.log)));
            }
        };
        Ok((runtime, generation, init_log))
    })();
    let (_runtime, generation, init_log) = match loaded {
        Ok(v) => v,
        Err(error) => {
            write_frame(
                &mut writer,
                &Ready {
                    error: Some(error),
                    init_log: String::new(),
                },
                &[],
            )?;
            return Ok(());
        }
    };
    write_frame(
        &mut writer,
        &Ready {
            error: None,
            init_log,
        },
        &[],
    )?;
    let mut sequence: u64 = 0;
    loop {
        let (invoke, payload): (Invoke, Vec<u8>) = match read_frame(&mut reader) {
            Ok(frame) => frame,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        reset_peak_rss();
        let served = Served {
            version: invoke.version.map(Arc::from),
            alias: invoke.alias.map(Arc::from),
        };
        let result = match generation.invoke(&payload, served, Mode::CurrentThread) {
            Ok(r) => r,
            Err(e) => {
                let done = Done {
                    request_id: String::new(),
                    error: Some(("FunctionInvokeError".into(), e.to_string())),
                    kind: 0,
                    duration_ms: 0.0,
                    billing_duration_ms: 0,
                    memory_used_mb: 0.0,
                    log: String::new(),
                };
                write_frame(&mut writer, &done, &[])?;
                continue;
            }
        };
        let (error, kind, body) = match &result.outcome {
            Outcome::Success(b) => (
                None,
                match b.kind {
                    BodyKind::Empty => 0,
                    BodyKind::Bytes => 1,
                    BodyKind::Text => 2,
                    BodyKind::Json => 3,
                },
                b.bytes.as_slice(),
            ),
            Outcome::Failure(e) => (Some((e.error_type.clone(), e.message.clone())), 0, &[][..]),
        };
        let done = Done {
            request_id: result.request_id.clone(),
            error,
            kind,
            duration_ms: result.summary.duration_ms,
            billing_duration_ms: result.summary.billing_duration_ms,
            memory_used_mb: peak_rss_mb(),
            log: result.log.clone(),
        };
        // Mark the end of this invocation's output on both streams: the host
        // waits for the markers before taking the output, so every line the
        // handler wrote is attributed to this invocation.
        sequence += 1;
        println!("{}{sequence}", super::SYNC_MARKER);
        eprintln!("{}{sequence}", super::SYNC_MARKER);
        write_frame(&mut writer, &done, body)?;
    }
}
