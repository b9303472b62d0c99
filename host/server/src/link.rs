//! The server's connections, each with a [`Link`] through which its caller
//! can be answered from another thread.
//!
//! The I/O-thread lane runs a proven-short handler inside the task of the
//! connection that asked for it, which then cannot write anything until the
//! handler returns. If the handler is still running at the deadline, the
//! lane's watchdog answers the caller itself: it writes a complete HTTP/1.1
//! response (`Connection: close`) to the socket and shuts the connection
//! down; the connection's own writes and reads fail from then on, so hyper
//! drops the connection once the handler returns.
//!
//! That answer is only safe as the next bytes on the wire: a call runs in
//! its connection's task only when hyper has flushed everything it wrote
//! before ([`Link::is_flushed`]). hyper flushes each response before it
//! polls the next request's service future, so that is the usual case; a
//! pipelining client whose earlier answer is stuck in a full socket buffer
//! gets its call run on another task instead.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How a connection is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Within the cap: every request, kept alive.
    Normal,
    /// Beyond the cap: one request, answered only if it is a health check
    /// or a management call.
    Priority,
}

/// The connection is hyper's.
const OPEN: u8 = 0;
/// Another thread is answering on the socket.
const ANSWERING: u8 = 1;
/// Answered and shut down from another thread.
const ANSWERED: u8 = 2;

/// Phases of a connection, for its timeouts (see [`Link::expiry`]).
/// Waiting for the next request, nothing of it received yet.
const IDLE: u8 = 0;
/// Part of a request's head received.
const HEAD: u8 = 1;
/// A request is being served.
const BUSY: u8 = 2;

/// The clock of [`Link::since`]: milliseconds from the first use.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// When a connection's current phase ends it (see [`Link::expiry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Its time is up: close it.
    Now,
    /// Look again at this instant.
    At(Instant),
}

/// A connection's socket as another thread may use it (see the module
/// documentation).
#[derive(Debug)]
pub(crate) struct Link {
    fd: RawFd,
    state: AtomicU8,
    /// hyper wrote to the socket after its last completed flush: bytes of
    /// an earlier answer may still wait in its buffer.
    unflushed: AtomicBool,
    /// [`IDLE`], [`HEAD`] or [`BUSY`].
    phase: AtomicU8,
    /// When the phase began ([`now_ms`]).
    since: AtomicU64,
    /// Whether a request was served on this connection.
    served: AtomicBool,
    /// Since when ([`now_ms`] + 1) writes have been refused for a full
    /// socket buffer: the client is not reading; 0 while writes go through.
    write_stalled: AtomicU64,
}

impl Link {
    /// The link of a connection's socket, idle from now.
    pub(crate) fn new(fd: RawFd) -> Link {
        Link {
            fd,
            state: AtomicU8::new(OPEN),
            unflushed: AtomicBool::new(false),
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(now_ms()),
            served: AtomicBool::new(false),
            write_stalled: AtomicU64::new(0),
        }
    }

    /// A request's head is complete: it is being served.
    pub(crate) fn begin_request(&self) {
        self.phase.store(BUSY, Ordering::Relaxed);
    }

    /// Its answer is ready: the connection waits for the next request.
    pub(crate) fn end_request(&self) {
        self.served.store(true, Ordering::Relaxed);
        self.since.store(now_ms(), Ordering::Relaxed);
        self.phase.store(IDLE, Ordering::Relaxed);
    }

    /// Whether nothing has arrived on the connection yet.
    pub(crate) fn is_fresh(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == IDLE && !self.served.load(Ordering::Relaxed)
    }

    /// Bytes arrived: while idle, the next request's head has begun.
    fn received(&self) {
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.since.store(now_ms(), Ordering::Relaxed);
            self.phase.store(HEAD, Ordering::Relaxed);
        }
    }

    /// A write went through (`stalled`: false) or found the socket's
    /// buffer full. An answer still being written after its request ended
    /// keeps the connection from counting as idle.
    fn wrote(&self, stalled: bool) {
        let mark = self.write_stalled.load(Ordering::Relaxed);
        if stalled {
            if mark == 0 {
                self.write_stalled.store(now_ms() + 1, Ordering::Relaxed);
            }
            return;
        }
        if mark != 0 {
            self.write_stalled.store(0, Ordering::Relaxed);
        }
        if self.phase.load(Ordering::Relaxed) == IDLE {
            self.since.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Whether the connection has outlived its phase: a head not complete
    /// within `header_timeout` of its first byte (or of the connection's
    /// start, for its first request), no next request within
    /// `idle_timeout` of the last answer's last write, or an answer the
    /// client has not read any of for `write_timeout`. A request being
    /// served has no other expiry here (its body and its invocation have
    /// timeouts of their own).
    pub(crate) fn expiry(
        &self,
        header_timeout: Duration,
        idle_timeout: Duration,
        write_timeout: Duration,
    ) -> Expiry {
        let stalled = self.write_stalled.load(Ordering::Relaxed);
        if stalled != 0 {
            let end = *EPOCH + Duration::from_millis(stalled - 1) + write_timeout;
            return if Instant::now() >= end {
                Expiry::Now
            } else {
                Expiry::At(end)
            };
        }
        let phase = self.phase.load(Ordering::Relaxed);
        let since = *EPOCH + Duration::from_millis(self.since.load(Ordering::Relaxed));
        let limit = match phase {
            BUSY => return Expiry::At(Instant::now() + header_timeout.min(write_timeout)),
            IDLE if self.served.load(Ordering::Relaxed) => idle_timeout,
            _ => header_timeout,
        };
        let end = since + limit;
        if Instant::now() >= end {
            Expiry::Now
        } else {
            Expiry::At(end)
        }
    }
    /// Whether everything hyper wrote has reached the socket: an answer
    /// written by another thread now would be the next bytes on the wire.
    pub(crate) fn is_flushed(&self) -> bool {
        !self.unflushed.load(Ordering::Relaxed)
    }

    /// Takes the socket over from hyper, to answer the request whose call
    /// blocks the connection's task. Call at most once, and only while that
    /// task is blocked in the call (it cannot close the socket meanwhile).
    /// The connection is shut down when the returned guard is dropped,
    /// whether or not an answer was sent.
    pub(crate) fn take_over(&self) -> TakeOver<'_> {
        self.state.store(ANSWERING, Ordering::SeqCst);
        TakeOver { link: self }
    }

    /// Waits until a [`take_over`](Self::take_over) guard has been dropped:
    /// the connection's task calls this before it lets the socket close
    /// (once it knows the caller was answered from elsewhere), so another
    /// thread never writes to a closed, or reused, descriptor.
    pub(crate) fn wait_until_answered(&self) {
        while self.state.load(Ordering::SeqCst) != ANSWERED {
            std::thread::yield_now();
        }
    }

    fn is_open(&self) -> bool {
        self.state.load(Ordering::Relaxed) == OPEN
    }
}

/// The socket, taken over from hyper (see [`Link::take_over`]).
pub(crate) struct TakeOver<'a> {
    link: &'a Link,
}

impl TakeOver<'_> {
    /// Writes `response` as far as the socket takes it without blocking (a
    /// client that reads nothing may get it cut short; it is disconnected
    /// either way).
    pub(crate) fn send(&self, response: &[u8]) {
        let mut rest = response;
        while !rest.is_empty() {
            // SAFETY: the descriptor is the connection's socket, open while
            // its task is blocked in the call (see `Link::take_over`); the
            // buffer is valid for `rest.len()` bytes.
            let sent = unsafe {
                libc::send(
                    self.link.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if sent > 0 {
                rest = &rest[sent as usize..];
            } else if sent == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
    }
}

impl Drop for TakeOver<'_> {
    fn drop(&mut self) {
        // SAFETY: as in `send`. Shutting down (not closing) leaves the
        // descriptor to its owner, whose reads and writes now fail.
        unsafe { libc::shutdown(self.link.fd, libc::SHUT_RDWR) };
        self.link.state.store(ANSWERED, Ordering::SeqCst);
    }
}

/// An HTTP/1.1 response, whole, that closes the connection.
pub(crate) fn http1_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let framing = format!(
        "content-length: {}\r\nconnection: close\r\ndate: {date}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(framing.as_bytes());
    out.extend_from_slice(body);
    out
}

/// A connection's stream; refuses reads and writes once its caller was
/// answered from another thread.
pub(crate) struct LinkedStream {
    stream: TcpStream,
    link: Arc<Link>,
}

impl LinkedStream {
    /// The stream of an accepted connection, with a new [`Link`].
    pub(crate) fn new(stream: TcpStream) -> LinkedStream {
        let link = Arc::new(Link::new(stream.as_raw_fd()));
        LinkedStream { stream, link }
    }

    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }
}

fn answered_elsewhere() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "answered at the deadline from another thread",
    )
}

impl AsyncRead for LinkedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.link.is_open() {
            // The end of the stream.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.link.received();
        }
        read
    }
}

impl AsyncWrite for LinkedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if !self.link.is_open() {
            return Poll::Ready(Err(answered_elsewhere()));
        }
        self.link.unflushed.store(true, Ordering::Relaxed);
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.link.wrote(written.is_pending());
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.link.is_open() {
            return Poll::Ready(Err(answered_elsewhere()));
        }
        self.link.unflushed.store(true, Ordering::Relaxed);
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.link.wrote(written.is_pending());
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.link.is_open() {
            return Poll::Ready(Err(answered_elsewhere()));
        }
        let flushed = Pin::new(&mut self.stream).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.link.unflushed.store(false, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.link.is_open() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (LinkedStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (LinkedStream::new(server), client)
    }

    #[tokio::test]
    async fn a_connection_expires_when_its_head_or_its_next_request_is_late() {
        let (mut server, mut client) = pair().await;
        let link = Arc::clone(server.link());
        let (head, idle) = (Duration::from_millis(300), Duration::from_millis(600));
        // A new connection has the header timeout to send its first request.
        let Expiry::At(first) = link.expiry(head, idle, idle) else {
            panic!("expired at once")
        };
        assert!(first <= Instant::now() + head);
        client.write_all(b"GET / HT").await.unwrap();
        let mut buf = [0u8; 16];
        let _ = server.read(&mut buf).await.unwrap();
        std::thread::sleep(head);
        assert_eq!(
            link.expiry(head, idle, idle),
            Expiry::Now,
            "a head sent too slowly"
        );
        // Served: no expiry while busy; then the idle timeout runs.
        link.begin_request();
        std::thread::sleep(head);
        assert!(matches!(link.expiry(head, idle, idle), Expiry::At(_)));
        link.end_request();
        std::thread::sleep(head);
        assert!(
            matches!(link.expiry(head, idle, idle), Expiry::At(_)),
            "kept alive longer than the header timeout"
        );
        std::thread::sleep(idle - head);
        assert_eq!(link.expiry(head, idle, idle), Expiry::Now);
        // An answer still being written keeps the connection from idling.
        std::thread::sleep(head);
        link.wrote(false);
        assert!(matches!(link.expiry(head, idle, idle), Expiry::At(_)));
        // An answer the client does not read: stalled too long.
        link.begin_request();
        link.wrote(true);
        assert!(matches!(link.expiry(head, idle, head), Expiry::At(_)));
        link.wrote(true);
        std::thread::sleep(head);
        assert_eq!(link.expiry(head, idle, head), Expiry::Now);
        link.wrote(false);
        assert!(matches!(link.expiry(head, idle, head), Expiry::At(_)));
    }

    #[tokio::test]
    async fn an_answer_from_another_thread_reaches_the_client_and_closes_the_connection() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"first ").await.unwrap();
        assert!(!server.link().is_flushed(), "written, not yet flushed");
        server.flush().await.unwrap();
        assert!(server.link().is_flushed());

        let link = Arc::clone(server.link());
        std::thread::spawn(move || {
            let answer = link.take_over();
            answer.send(b"answer");
        })
        .join()
        .unwrap();
        server.link().wait_until_answered();
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        assert_eq!(seen, b"first answer", "then the end of the stream");

        let refused = server.write_all(b"late").await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::BrokenPipe);
        let mut buf = [0u8; 8];
        assert_eq!(server.read(&mut buf).await.unwrap(), 0, "reads end");
    }

    #[test]
    fn a_whole_http1_response_that_closes() {
        let mut headers = HeaderMap::new();
        headers.insert("x-cff-request-id", HeaderValue::from_static("r1"));
        let bytes = http1_response(StatusCode::OK, &headers, b"{}");
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));
        let fields: Vec<&str> = lines.collect();
        assert!(fields.contains(&"x-cff-request-id: r1"));
        assert!(fields.contains(&"content-length: 2"));
        assert!(fields.contains(&"connection: close"));
        assert!(fields.iter().any(|f| f.starts_with("date: ")));
        assert_eq!(body, "{}");
    }
}
