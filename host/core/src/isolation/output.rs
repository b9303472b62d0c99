//! What worker processes write to stdout and stderr, collected by one
//! thread for all workers (an epoll set through `mio`), in bounded buffers.
//!
//! - **Bounded**: each worker's buffer keeps at most [`MAX_CAPTURED`] bytes
//!   between two takes, whether or not lines end; the rest is read (so a
//!   handler never blocks on a full pipe) and counted as dropped.
//! - **Attributed without markers**: every read from a worker's pipes
//!   happens under that worker's lock, and the host drains both pipes under
//!   the same lock once the worker's answer arrived on its socket. A write
//!   that finished before the worker sent its answer is in the pipe by then,
//!   so it is in that invocation's output; nothing a handler prints can
//!   forge or delay the end of its output.
//! - **No thread per worker**: one poller thread serves every pipe.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use parking_lot::Mutex;

/// Captured output kept per worker between two takes.
pub(crate) const MAX_CAPTURED: usize = 1024 * 1024;

/// What one worker wrote since the last take.
#[derive(Default)]
pub(crate) struct Taken {
    /// The bytes kept (at most [`MAX_CAPTURED`]).
    pub bytes: Vec<u8>,
    /// Bytes read and dropped past the cap.
    pub dropped: u64,
    /// When each line began to be read: its offset in `bytes`, and the
    /// time. The poller reads a pipe as soon as epoll says so, so this is
    /// when the handler wrote it (not when the call ended).
    pub stamps: Vec<(usize, std::time::SystemTime)>,
}

impl Taken {
    /// The lines kept, each with when it was written.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (std::time::SystemTime, &[u8])> {
        let mut stamps = self.stamps.iter().peekable();
        let mut at = 0;
        let mut when = std::time::SystemTime::now();
        self.bytes
            .split_inclusive(|&b| b == b'\n')
            .map(move |line| {
                while let Some((offset, t)) = stamps.peek() {
                    if *offset > at {
                        break;
                    }
                    when = *t;
                    stamps.next();
                }
                at += line.len();
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                (when, line)
            })
            .filter(|(_, line)| !line.is_empty())
    }
}

#[derive(Default)]
struct Buffer {
    taken: Taken,
    open: [bool; 2],
}

/// The stdout and stderr pipes of one worker.
pub(crate) struct WorkerOutput {
    pipes: [OwnedFd; 2],
    tokens: [Token; 2],
    buffer: Mutex<Buffer>,
}

impl WorkerOutput {
    /// Registers a worker's stdout and stderr with the poller.
    pub(crate) fn register(stdout: OwnedFd, stderr: OwnedFd) -> io::Result<Arc<WorkerOutput>> {
        let hub = hub()?;
        for fd in [&stdout, &stderr] {
            set_nonblocking(fd)?;
        }
        let first = hub.next.fetch_add(2, Ordering::Relaxed);
        let output = Arc::new(WorkerOutput {
            pipes: [stdout, stderr],
            tokens: [Token(first), Token(first + 1)],
            buffer: Mutex::new(Buffer {
                taken: Taken::default(),
                open: [true, true],
            }),
        });
        let mut streams = hub.streams.lock();
        for (i, fd) in output.pipes.iter().enumerate() {
            streams.insert(output.tokens[i], (Arc::clone(&output), i));
            if let Err(e) = hub.registry.register(
                &mut SourceFd(&fd.as_raw_fd()),
                output.tokens[i],
                Interest::READABLE,
            ) {
                for t in output.tokens {
                    streams.remove(&t);
                }
                return Err(e);
            }
        }
        Ok(output)
    }

    /// Everything written so far: drains both pipes under the lock, so
    /// every write that finished before this call is included.
    pub(crate) fn take(&self) -> Taken {
        let mut buffer = self.buffer.lock();
        // One poll for both pipes (most calls print nothing), then reads of
        // the ones with something in them.
        let mut fds = [0, 1].map(|i| libc::pollfd {
            fd: if buffer.open[i] {
                self.pipes[i].as_raw_fd()
            } else {
                -1
            },
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two valid pollfds on the stack (a negative fd is ignored);
        // timeout 0, so it never blocks.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 0) };
        for (i, fd) in fds.iter().enumerate() {
            if n != 0 && (n < 0 || fd.revents != 0) {
                self.drain(&mut buffer, i);
            }
        }
        std::mem::take(&mut buffer.taken)
    }

    /// Forgets what was collected so far, without looking at the pipes
    /// (no system call: this runs before every invocation). What a
    /// background thread wrote between two invocations is forgotten once
    /// the poller thread has read it, which it does as soon as epoll says
    /// so; bytes still in a pipe when the next invocation starts (written
    /// in the last microseconds) count as that invocation's, as do those a
    /// background thread writes while it runs.
    pub(crate) fn discard(&self) {
        let mut buffer = self.buffer.lock();
        buffer.taken.bytes.clear();
        buffer.taken.dropped = 0;
        buffer.taken.stamps.clear();
    }

    fn drain(&self, buffer: &mut Buffer, index: usize) {
        if !buffer.open[index] {
            return;
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            // SAFETY: `chunk` is a writable buffer of the length passed, and
            // the descriptor is owned by `self` for the call.
            let n = unsafe {
                libc::read(
                    self.pipes[index].as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    chunk.len(),
                )
            };
            match n {
                0 => {
                    buffer.open[index] = false;
                    return;
                }
                n if n > 0 => {
                    let n = n as usize;
                    let room = MAX_CAPTURED.saturating_sub(buffer.taken.bytes.len());
                    let keep = n.min(room);
                    let now = std::time::SystemTime::now();
                    let taken = &mut buffer.taken;
                    let start = taken.bytes.len();
                    let mut line_start = taken.bytes.last().is_none_or(|&b| b == b'\n');
                    for (i, &b) in chunk[..keep].iter().enumerate() {
                        if line_start {
                            taken.stamps.push((start + i, now));
                        }
                        line_start = b == b'\n';
                    }
                    taken.bytes.extend_from_slice(&chunk[..keep]);
                    buffer.taken.dropped += (n - keep) as u64;
                }
                _ => {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    if e.kind() != io::ErrorKind::WouldBlock {
                        buffer.open[index] = false;
                    }
                    return;
                }
            }
        }
    }
}

/// Stops watching a worker's pipes (its descriptors close with the last
/// reference).
pub(crate) fn release(output: &Arc<WorkerOutput>) {
    let Ok(hub) = hub() else { return };
    let mut streams = hub.streams.lock();
    for (i, fd) in output.pipes.iter().enumerate() {
        streams.remove(&output.tokens[i]);
        let _ = hub.registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
    }
}

struct Hub {
    registry: Registry,
    streams: Mutex<HashMap<Token, (Arc<WorkerOutput>, usize)>>,
    next: AtomicUsize,
}

static HUB: LazyLock<Result<Arc<Hub>, String>> = LazyLock::new(|| {
    let poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let registry = poll
        .registry()
        .try_clone()
        .map_err(|e| format!("epoll: {e}"))?;
    let hub = Arc::new(Hub {
        registry,
        streams: Mutex::new(HashMap::new()),
        next: AtomicUsize::new(0),
    });
    let polled = Arc::clone(&hub);
    std::thread::Builder::new()
        .name("fnhost-worker-output".into())
        .spawn(move || run(poll, &polled))
        .map_err(|e| format!("output thread: {e}"))?;
    Ok(hub)
});

fn hub() -> io::Result<&'static Arc<Hub>> {
    HUB.as_ref().map_err(|e| io::Error::other(e.clone()))
}

fn run(mut poll: Poll, hub: &Hub) {
    let mut events = Events::with_capacity(256);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!(target: "fnhost::isolation", "worker output poller stopped: {e}");
            return;
        }
        for event in events.iter() {
            let found = hub.streams.lock().get(&event.token()).cloned();
            let Some((output, index)) = found else {
                continue;
            };
            let closed = {
                let mut buffer = output.buffer.lock();
                output.drain(&mut buffer, index);
                !buffer.open[index]
            };
            if closed {
                hub.streams.lock().remove(&event.token());
                let fd = output.pipes[index].as_raw_fd();
                let _ = hub.registry.deregister(&mut SourceFd(&fd));
            }
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with flag arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe() -> (OwnedFd, std::fs::File) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        use std::os::fd::FromRawFd;
        // SAFETY: pipe2 just returned these descriptors; each is owned once.
        unsafe {
            (
                OwnedFd::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        }
    }

    #[test]
    fn output_without_newlines_is_capped_and_counted() {
        let (out_r, mut out_w) = pipe();
        let (err_r, _err_w) = pipe();
        let output = WorkerOutput::register(out_r, err_r).unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..48 {
                out_w.write_all(&chunk).unwrap();
            }
        });
        writer.join().unwrap();
        let taken = output.take();
        assert_eq!(taken.bytes.len(), MAX_CAPTURED);
        assert_eq!(taken.dropped, (48 * 64 * 1024 - MAX_CAPTURED) as u64);
        assert!(output.take().bytes.is_empty());
        release(&output);
    }

    #[test]
    fn a_take_holds_every_write_that_finished_before_it() {
        let (out_r, mut out_w) = pipe();
        let (err_r, mut err_w) = pipe();
        let output = WorkerOutput::register(out_r, err_r).unwrap();
        for round in 0..200 {
            // One write each (`write!` on a pipe makes one per piece, and
            // pieces of the two pipes may then interleave in the capture).
            out_w.write_all(format!("out {round}").as_bytes()).unwrap();
            err_w.write_all(format!("err {round}").as_bytes()).unwrap();
            let taken = output.take();
            let text = String::from_utf8(taken.bytes).unwrap();
            assert!(text.contains(&format!("out {round}")), "{text}");
            assert!(text.contains(&format!("err {round}")), "{text}");
        }
        release(&output);
    }

    /// Each line is stamped when it began to be read, not when the call
    /// ended; lines split across reads keep their first stamp.
    #[test]
    fn lines_carry_the_time_they_were_read() {
        let early = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1);
        let later = early + std::time::Duration::from_secs(1);
        let taken = Taken {
            bytes: b"one\ntw".iter().chain(b"o\nthree\n").copied().collect(),
            dropped: 0,
            stamps: vec![(0, early), (4, early), (8, later)],
        };
        let lines: Vec<_> = taken.lines().collect();
        assert_eq!(
            lines,
            [
                (early, &b"one"[..]),
                (early, &b"two"[..]),
                (later, &b"three"[..])
            ]
        );
    }
}
