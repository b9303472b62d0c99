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
use crate::trace::TraceId;

/// Largest header accepted: a result's log (1 MiB at most) and error
/// message (capped at the ABI boundary), JSON-escaped, with room.
pub(crate) const MAX_HEADER: usize = 8 * 1024 * 1024;
/// Largest body accepted (above the 6 MB payload and response limits).
pub(crate) const MAX_BODY: usize = 16 * 1024 * 1024;

/// Host → worker, first frame: what to do with the library the worker
/// inherited on its library descriptor.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Start {
    /// [`PROTOCOL`].
    #[serde(default)]
    pub protocol: u32,
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
    /// Each handler's event (ABI 1.3), in table order.
    #[serde(default)]
    pub handler_events: Vec<(String, String)>,
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
    /// The worker's [`PROTOCOL`] (0 from a build before versions).
    #[serde(default)]
    pub protocol: u32,
    /// Why the library or its initializer failed, when it did: `(type, message)`.
    pub error: Option<(String, String)>,
    /// The initializer's log.
    pub init_log: String,
}

/// The version of this protocol. A worker executable of another fnhost
/// build answers the host's [`Start`] with its own (0 before versions
/// existed), and the host refuses it by name instead of misreading it.
/// 3: `Done` no longer carries the worker's duration and billed duration
/// (the host bills what it measured).
/// 4: every message of a call starts with its kind ([`TAG_CALL`],
/// [`TAG_HOST`]): a worker asks the host for a host function mid-call
/// ([`HostCall`]) and is answered ([`HostAnswer`]); `Invoke` carries the
/// caller's deadline and user data.
/// 5: every frame on the socket starts with [`FRAME_MAGIC`].
pub(crate) const PROTOCOL: u32 = 5;

/// The first bytes of every frame on a worker's socket: a byte the worker
/// (its plugin's code, say) wrote out of turn makes the next frame fail
/// this check as soon as it is read, instead of shifting the length that
/// follows into a count of bytes that never come.
pub(crate) const FRAME_MAGIC: [u8; 4] = *b"FNHw";

/// The kind of a call's message: `Invoke` (host → worker) or `Done`
/// (worker → host).
pub(crate) const TAG_CALL: u8 = 1;
/// The kind of a call's message: [`HostCall`] (worker → host) or
/// [`HostAnswer`] (host → worker).
pub(crate) const TAG_HOST: u8 = 2;

/// The kind of a message of a call (its first header byte), `None` for an
/// empty header.
pub(crate) fn tag_of(header: &[u8]) -> Option<u8> {
    header.first().copied()
}

/// Worker → host, in the middle of a call: the handler calls a host
/// function (its input is the message's body).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct HostCall {
    pub name: String,
}

/// Host → worker: a [`HostCall`]'s answer: the output on success (the
/// message's body), else the error's type (and its message as the body).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct HostAnswer {
    pub error_type: Option<String>,
}

impl HostCall {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.name.len());
        out.push(TAG_HOST);
        put_string(&mut out, &self.name);
        out
    }

    /// Decodes a worker's request (an untrusted peer's bytes; the name is
    /// bounded by the header's limit, and checked again by the host).
    pub(crate) fn decode(header: &[u8]) -> io::Result<HostCall> {
        let mut f = Fields(header);
        if f.u8()? != TAG_HOST {
            return Err(invalid("not a host call"));
        }
        let call = HostCall { name: f.string()? };
        f.end()?;
        Ok(call)
    }
}

impl HostAnswer {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![TAG_HOST];
        put_optional_string(&mut out, self.error_type.as_deref());
        out
    }

    pub(crate) fn decode(header: &[u8]) -> io::Result<HostAnswer> {
        let mut f = Fields(header);
        if f.u8()? != TAG_HOST {
            return Err(invalid("not a host call's answer"));
        }
        let answer = HostAnswer {
            error_type: f.optional_string()?,
        };
        f.end()?;
        Ok(answer)
    }
}

/// Host → worker: one invocation (the payload is the message's body).
/// Encoded by hand, as fixed little-endian fields and length-prefixed
/// strings: it crosses on every call.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Invoke {
    /// Version served.
    pub version: Option<String>,
    /// Alias served.
    pub alias: Option<String>,
    /// The request id the host chose (the worker's answer cannot change it).
    pub request_id: Option<uuid::Uuid>,
    /// The trace id.
    pub trace_id: Option<TraceId>,
    /// The caller's timeout for this call, in milliseconds (sooner than
    /// the function's; the host kills the worker at it either way).
    pub timeout_ms: Option<u64>,
    /// The caller's user data for this call, read before the function's.
    pub user_data: Vec<(String, String)>,
}

/// Worker → host: one result (the result body, if any, is the message's
/// body).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Done {
    /// `None` on success, else `(errorType, errorMessage)`.
    pub error: Option<(String, String)>,
    /// Body kind on success: 0 empty, 1 bytes, 2 text, 3 JSON.
    pub kind: u32,
    /// The worker's peak memory during the call (checked by the host).
    pub memory_used_mb: f64,
    pub log: String,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Reads fields off a message header; every length is checked against
/// what is left.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if n > self.0.len() {
            return Err(invalid("message header cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn f64(&mut self) -> io::Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }
    /// A `u32`-length-prefixed string (invalid UTF-8 replaced).
    fn string(&mut self) -> io::Result<String> {
        let n = self.u32()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn optional_string(&mut self) -> io::Result<Option<String>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(invalid("bad option tag")),
        }
    }
    fn end(&self) -> io::Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(invalid("trailing bytes after a message header"))
        }
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Strings here are far below 4 GiB: names, error texts and logs that
    // are capped before they get here.
    let n = u32::try_from(s.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..n as usize]);
}

fn put_optional_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_string(out, s);
        }
    }
}

impl Invoke {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        out.push(TAG_CALL);
        let extras = self.timeout_ms.is_some() || !self.user_data.is_empty();
        let flags = u8::from(self.request_id.is_some())
            | u8::from(self.trace_id.is_some()) << 1
            | u8::from(extras) << 2;
        out.push(flags);
        out.extend_from_slice(self.request_id.unwrap_or_default().as_bytes());
        out.extend_from_slice(&self.trace_id.map(|t| t.bytes()).unwrap_or_default());
        put_optional_string(&mut out, self.version.as_deref());
        put_optional_string(&mut out, self.alias.as_deref());
        if extras {
            out.extend_from_slice(&self.timeout_ms.unwrap_or(0).to_le_bytes());
            let n = u32::try_from(self.user_data.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&n.to_le_bytes());
            for (key, value) in self.user_data.iter().take(n as usize) {
                put_string(&mut out, key);
                put_string(&mut out, value);
            }
        }
        out
    }

    pub(crate) fn decode(header: &[u8]) -> io::Result<Invoke> {
        let mut f = Fields(header);
        if f.u8()? != TAG_CALL {
            return Err(invalid("not an invocation"));
        }
        let flags = f.u8()?;
        let request_id = uuid::Uuid::from_bytes(f.array()?);
        let trace_id = TraceId::new(f.array()?);
        let mut invoke = Invoke {
            request_id: (flags & 1 != 0).then_some(request_id),
            trace_id: trace_id.filter(|_| flags & 2 != 0),
            version: f.optional_string()?,
            alias: f.optional_string()?,
            ..Invoke::default()
        };
        if flags & 4 != 0 {
            let ms = u64::from_le_bytes(f.array()?);
            invoke.timeout_ms = (ms != 0).then_some(ms);
            // Each entry takes at least its two lengths: a count the bytes
            // cannot hold is refused before anything is read.
            let n = f.u32()? as usize;
            if n > f.0.len() / 8 {
                return Err(invalid("more user data entries than bytes"));
            }
            for _ in 0..n {
                let key = f.string()?;
                let value = f.string()?;
                invoke.user_data.push((key, value));
            }
        }
        f.end()?;
        Ok(invoke)
    }
}

impl Done {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.log.len());
        out.push(TAG_CALL);
        out.extend_from_slice(&self.kind.to_le_bytes());
        out.extend_from_slice(&self.memory_used_mb.to_le_bytes());
        match &self.error {
            None => out.push(0),
            Some((ty, message)) => {
                out.push(1);
                put_string(&mut out, ty);
                put_string(&mut out, message);
            }
        }
        put_string(&mut out, &self.log);
        out
    }

    /// Decodes a worker's answer (an untrusted peer's bytes).
    pub(crate) fn decode(header: &[u8]) -> io::Result<Done> {
        let mut f = Fields(header);
        if f.u8()? != TAG_CALL {
            return Err(invalid("not a result"));
        }
        let kind = f.u32()?;
        let memory_used_mb = f.f64()?;
        let error = match f.u8()? {
            0 => None,
            1 => Some((f.string()?, f.string()?)),
            _ => return Err(invalid("bad option tag")),
        };
        let log = f.string()?;
        f.end()?;
        Ok(Done {
            error,
            kind,
            memory_used_mb,
            log,
        })
    }
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
    let mut out = Vec::with_capacity(12 + header.len() + body.len());
    out.extend_from_slice(&FRAME_MAGIC);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// Reads one frame.
pub(crate) fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> io::Result<(T, Vec<u8>)> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)?;
    if magic != FRAME_MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "not a worker frame (it starts with {:02x?}: bytes written out of turn, or a \
                 worker of another fnhost build)",
                magic
            ),
        ));
    }
    let header = read_exact_vec(r, MAX_HEADER, "header")?;
    let body = read_exact_vec(r, MAX_BODY, "body")?;
    let header = serde_json::from_slice(&header)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Ready {
        Ready {
            protocol: PROTOCOL,
            error: None,
            init_log: "x".repeat(10),
        }
    }

    #[test]
    fn frames_carry_binary_bodies_intact() {
        let mut wire = Vec::new();
        let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        write_frame(&mut wire, &ready(), &body).unwrap();
        let (h, b): (Ready, Vec<u8>) = read_frame(&mut wire.as_slice()).unwrap();
        assert_eq!(h.protocol, PROTOCOL);
        assert_eq!(b, body);
    }

    #[test]
    fn a_frame_of_a_build_before_the_magic_is_refused_by_name() {
        // A worker before protocol 5 wrote no magic.
        let mut wire = Vec::new();
        let header = br#"{"protocol":4,"error":null,"init_log":""}"#;
        wire.extend_from_slice(&(header.len() as u32).to_le_bytes());
        wire.extend_from_slice(header);
        wire.extend_from_slice(&0u32.to_le_bytes());
        let e = read_frame::<Ready>(&mut wire.as_slice()).unwrap_err();
        assert!(e.to_string().contains("another fnhost build"), "{e}");
    }

    #[test]
    fn a_byte_out_of_turn_fails_the_next_frame_at_once() {
        let mut wire = vec![0xDB];
        write_frame(&mut wire, &ready(), b"").unwrap();
        // Read from a socket with the rest of the frame never coming: the
        // refusal needs only the first four bytes.
        let (mut worker, host) = UnixStream::pair().unwrap();
        worker.write_all(&wire[..4]).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        let e = read_frame::<Ready>(&mut Deadline::new(&host, deadline)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("not a worker frame"), "{e}");
    }

    #[test]
    fn invocations_and_results_round_trip() {
        let invoke = Invoke {
            version: Some("v1".into()),
            alias: None,
            request_id: Some(uuid::Uuid::new_v4()),
            trace_id: TraceId::new([7; 16]),
            ..Invoke::default()
        };
        assert_eq!(Invoke::decode(&invoke.encode()).unwrap(), invoke);
        let with_extras = Invoke {
            timeout_ms: Some(250),
            user_data: vec![("K".into(), "v ✓".into()), ("E".into(), String::new())],
            ..Invoke::default()
        };
        let encoded = with_extras.encode();
        assert_eq!(Invoke::decode(&encoded).unwrap(), with_extras);
        for cut in 0..encoded.len() {
            assert!(Invoke::decode(&encoded[..cut]).is_err(), "cut at {cut}");
        }
        let bare = Invoke::default();
        assert_eq!(Invoke::decode(&bare.encode()).unwrap(), bare);
        let done = Done {
            error: Some(("panic".into(), "boom ✓".into())),
            kind: 3,
            memory_used_mb: 12.5,
            log: "line\n".into(),
        };
        assert_eq!(Done::decode(&done.encode()).unwrap(), done);
        let call = HostCall {
            name: "cache.get".into(),
        };
        assert_eq!(HostCall::decode(&call.encode()).unwrap(), call);
        assert!(
            Done::decode(&call.encode()).is_err(),
            "kinds are told apart"
        );
        assert!(HostCall::decode(&done.encode()).is_err());
        for answer in [
            HostAnswer::default(),
            HostAnswer {
                error_type: Some("Forbidden".into()),
            },
        ] {
            assert_eq!(HostAnswer::decode(&answer.encode()).unwrap(), answer);
            assert!(Invoke::decode(&answer.encode()).is_err());
        }
    }

    #[test]
    fn a_worker_cannot_make_the_decoder_read_past_its_bytes() {
        let done = Done {
            error: Some(("t".into(), "m".into())),
            log: "log".into(),
            ..Done::default()
        }
        .encode();
        for cut in 0..done.len() {
            assert!(Done::decode(&done[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = done.clone();
        trailing.push(0);
        assert!(Done::decode(&trailing).is_err());
        // A string length far past the end.
        // (The option tag is at byte 13, after the message's kind, the
        // body's kind and the memory.)
        let mut huge = done[..14].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Done::decode(&huge).is_err());
        let mut bad = done.clone();
        bad[13] = 9;
        assert!(Done::decode(&bad).is_err());
        let mut other_kind = done;
        other_kind[0] = TAG_HOST;
        assert!(Done::decode(&other_kind).is_err());
    }

    #[test]
    fn a_dripping_peer_cannot_stretch_a_frame_past_the_deadline() {
        let (mut worker, host) = UnixStream::pair().unwrap();
        let dripper = std::thread::spawn(move || {
            let mut frame = Vec::new();
            write_frame(&mut frame, &ready(), b"x").unwrap();
            for byte in frame {
                if worker.write_all(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(40));
            }
        });
        let started = Instant::now();
        let deadline = started + std::time::Duration::from_millis(300);
        let e = read_frame::<Ready>(&mut Deadline::new(&host, deadline)).unwrap_err();
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
        write_frame(&mut wire, &ready(), b"abc").unwrap();
        wire.truncate(wire.len() - 1);
        assert!(read_frame::<Ready>(&mut wire.as_slice()).is_err());
        let huge = (u32::MAX).to_le_bytes();
        assert!(read_frame::<Ready>(&mut &huge[..]).is_err());
    }
}
