//! The framing between the host and a worker process, over a Unix socket:
//! each frame is a little-endian `u32` length and a JSON header, then a
//! `u32` length and raw bytes (payloads and bodies cross untouched, binary
//! included).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::FunctionConfig;

/// Largest header accepted: a result's log (1 MiB at most) and error
/// message (capped at the ABI boundary), JSON-escaped, with room.
pub(crate) const MAX_HEADER: usize = 8 * 1024 * 1024;
/// Largest body accepted (above the 6 MB payload and response limits).
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;

/// Host → worker, first frame: what to do with the library the worker
/// inherited on its library descriptor.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Start {
    /// Only load and check the library, answer [`Verdict`] and exit (the
    /// pre-flight of a library before the host maps it).
    pub check_only: bool,
    /// The function, as the host configured it.
    pub config: FunctionConfig,
}

/// What a pre-flight worker found in a library it loaded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Checked {
    pub name: String,
    pub sdk: String,
    pub abi: (u16, u16),
    pub layout_checked: bool,
    pub handlers: Vec<String>,
    pub initializers: Vec<String>,
}

/// Why a pre-flight worker refused a library (the host names the file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// The dynamic loader refused it.
    Open(String),
    /// No descriptor symbol.
    NotAPlugin,
    /// Another ABI version.
    Version { major: u16, minor: u16 },
    /// Different layouts.
    Layout(Vec<String>),
    /// A malformed descriptor.
    Invalid(String),
    /// Anything else.
    Other(String),
}

/// Worker → host, answer to a `check_only` [`Start`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Verdict {
    pub result: Result<Checked, Refusal>,
}

/// Worker → host, answer to `Start`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Ready {
    /// Why the library or its initializer failed, when it did: `(type, message)`.
    pub error: Option<(String, String)>,
    /// The initializer's log.
    pub init_log: String,
}

/// Host → worker: one invocation (the payload is the frame's body).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Invoke {
    /// Version served.
    pub version: Option<String>,
    /// Alias served.
    pub alias: Option<String>,
    /// The request id the host chose (the worker's answer keeps it).
    #[serde(default)]
    pub request_id: Option<String>,
    /// The trace id, in hex.
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// Worker → host: one result (the result body, if any, is the frame's body).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Done {
    pub request_id: String,
    /// `None` on success, else `(errorType, errorMessage)`.
    pub error: Option<(String, String)>,
    /// Body kind on success: 0 empty, 1 bytes, 2 text, 3 JSON.
    pub kind: u32,
    pub duration_ms: f64,
    pub billing_duration_ms: u64,
    pub memory_used_mb: f64,
    pub log: String,
}

fn read_exact_vec(r: &mut impl Read, limit: usize, what: &str) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what} of {len} bytes is over the limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads from a worker's socket until a deadline: every `read` gets the
/// time that is left, so a worker dripping bytes cannot stretch a frame
/// past it.
pub(crate) struct Deadline<'a> {
    socket: &'a UnixStream,
    deadline: Instant,
}

impl<'a> Deadline<'a> {
    pub(crate) fn new(socket: &'a UnixStream, deadline: Instant) -> Deadline<'a> {
        Deadline { socket, deadline }
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
        }
        self.socket.set_read_timeout(Some(left))?;
        let mut socket = self.socket;
        socket.read(buf)
    }
}

/// Writes one frame.
pub(crate) fn write_frame(
    w: &mut impl Write,
    header: &impl Serialize,
    body: &[u8],
) -> io::Result<()> {
    let header = serde_json::to_vec(header).map_err(io::Error::other)?;
    let (Ok(header_len), Ok(body_len)) = (u32::try_from(header.len()), u32::try_from(body.len()))
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame part over 4 GiB",
        ));
    };
    let mut out = Vec::with_capacity(8 + header.len() + body.len());
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// Reads one frame.
pub(crate) fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<(T, Vec<u8>)> {
    let header = read_exact_vec(r, MAX_HEADER, "header")?;
    let body = read_exact_vec(r, MAX_BODY, "body")?;
    let header = serde_json::from_slice(&header)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_binary_bodies_intact() {
        let mut wire = Vec::new();
        let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        write_frame(
            &mut wire,
            &Invoke {
                version: Some("v1".into()),
                alias: None,
                request_id: None,
                trace_id: None,
            },
            &body,
        )
        .unwrap();
        let (h, b): (Invoke, Vec<u8>) = read_frame(&mut wire.as_slice()).unwrap();
        assert_eq!(h.version.as_deref(), Some("v1"));
        assert_eq!(b, body);
    }

    #[test]
    fn a_dripping_peer_cannot_stretch_a_frame_past_the_deadline() {
        let (mut worker, host) = UnixStream::pair().unwrap();
        let dripper = std::thread::spawn(move || {
            let mut frame = Vec::new();
            write_frame(
                &mut frame,
                &Invoke {
                    version: None,
                    alias: None,
                    request_id: None,
                    trace_id: None,
                },
                b"x",
            )
            .unwrap();
            for byte in frame {
                if worker.write_all(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(40));
            }
        });
        let started = Instant::now();
        let deadline = started + std::time::Duration::from_millis(300);
        let e = read_frame::<Invoke>(&mut Deadline::new(&host, deadline)).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(600));
        drop(host);
        dripper.join().unwrap();
    }

    #[test]
    fn a_truncated_frame_is_an_error_not_a_hang() {
        let mut wire = Vec::new();
        write_frame(
            &mut wire,
            &Invoke {
                version: None,
                alias: None,
                request_id: None,
                trace_id: None,
            },
            b"abc",
        )
        .unwrap();
        wire.truncate(wire.len() - 1);
        assert!(read_frame::<Invoke>(&mut wire.as_slice()).is_err());
        let huge = (u32::MAX).to_le_bytes();
        assert!(read_frame::<Invoke>(&mut &huge[..]).is_err());
    }
}
