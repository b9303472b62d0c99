//! The fast path between the host and a worker process: one memory region
//! per worker, shared through a sealed memfd, with a request slot and a
//! response slot, and doorbells for a side that sleeps.
//!
//! ```text
//! offset 0      control: request sequence, worker sleeping   (host writes the first)
//!        64              response sequence, host sleeping,   (worker writes the first
//!                        request taken                        and the third)
//!        128             log length                           (host zeroes it per call,
//!                                                             the worker adds to it)
//!        4096   request slot  (SLOT bytes): [u32 header len][u32 body len][header][body]
//!        4096+SLOT response slot (SLOT bytes), the same layout
//!        4096+2*SLOT log area (LOG_AREA bytes): the call's log lines as written
//! ```
//!
//! The log area is how a call's log survives the worker's end: the worker
//! writes each log line there as the handler writes it (stamped then), and
//! the host reads it whether the call answered or the worker was killed at
//! its deadline, crashed or ran out of memory.
//!
//! A call: the host writes the request into its slot, publishes the next
//! sequence number (release) and, if the worker said it sleeps, wakes it
//! with `FUTEX_WAKE` on that word. The worker answers into the response
//! slot and publishes the same number. Each side spins a bounded time
//! first ([`HOST_SPIN`], [`WORKER_SPIN`], only while recent calls came that
//! fast), then sleeps: the worker in `FUTEX_WAIT` on the request sequence,
//! the host in `ppoll` on its end of the worker's socket, where the worker
//! rings with one [`DOORBELL`] byte. The host thus sleeps on the same
//! descriptor that tells it the worker died (end of file), under the call's
//! deadline, as before. A message that does not fit its slot is marked
//! there and crosses the socket instead, after [`FRAME_MAGIC`].
//!
//! The worker is an untrusted peer and can write any byte of the region at
//! any time. So the host:
//! - touches the region only through atomic loads and stores (a racing
//!   worker can tear its own answer, not the host's memory model);
//! - reads each length once, checks it against the slot with checked
//!   arithmetic, and copies the message out before decoding it;
//! - keeps its own sequence counter and waits for *equality*, so a forged
//!   sequence number is a call that never answers (a timeout);
//! - seals the memfd against shrinking and growing before the worker gets
//!   it: a truncated region would turn the host's next access into
//!   `SIGBUS`;
//! - never blocks on anything the worker controls: the futex it waits on
//!   does not exist (the host sleeps on its own socket end, whose flags the
//!   worker cannot change), every read of a fallback frame is under the
//!   deadline, and bytes out of turn on the socket end the worker.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use super::protocol::{Deadline, MAX_BODY, MAX_HEADER};

/// Bytes of one slot: requests and responses up to this size (their
/// headers included) cross in shared memory; larger ones cross the socket.
/// The kernel backs only the pages a message touched.
pub const SLOT: usize = 256 * 1024;
const CONTROL: usize = 4096;
/// Bytes of the log area: what one call's log keeps at most (as the
/// worker's own log buffer does).
pub const LOG_AREA: usize = 1024 * 1024;
/// Bytes of one worker's region.
pub(crate) const REGION_SIZE: usize = CONTROL + 2 * SLOT + LOG_AREA;
const LOG_AREA_OFFSET: usize = CONTROL + 2 * SLOT;
/// The bytes of the log area the current call has written.
const LOG_LEN: usize = 128;
const REQUEST_SLOT: usize = CONTROL;
const RESPONSE_SLOT: usize = CONTROL + SLOT;
const REQUEST_SEQ: usize = 0;
const WORKER_SLEEPING: usize = 4;
const RESPONSE_SEQ: usize = 64;
const HOST_SLEEPING: usize = 68;
/// The sequence number of the last request the worker took.
const TAKEN_SEQ: usize = 72;
/// A slot's header length saying "this message crosses the socket".
const ON_SOCKET: u32 = u32::MAX;
/// Lengths before a slot's message.
const SLOT_HEADER: usize = 8;

/// The byte a worker sends on its socket to wake a sleeping host.
pub(crate) const DOORBELL: u8 = 0xDB;
/// The byte before a message that crosses the socket.
pub(crate) const FRAME_MAGIC: u8 = 0xF5;

/// How long the host spins for an answer before it sleeps (while the
/// previous call answered within it).
pub const HOST_SPIN: Duration = Duration::from_micros(50);
/// How long a worker spins for the next request before it sleeps (while
/// the previous request followed its answer within it).
pub const WORKER_SPIN: Duration = Duration::from_micros(50);

/// One message: a header the protocol encodes, and a body that crosses
/// untouched.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// What the protocol encodes (an invocation's ids, a result's summary).
    pub header: Vec<u8>,
    /// The payload or the result's body.
    pub body: Vec<u8>,
}

/// A shared mapping of a memfd.
pub struct Region {
    base: NonNull<u8>,
    fd: OwnedFd,
}

// SAFETY: the region is plain memory that both processes access only
// through atomics (see `word` and the copy functions); the pointer stays
// valid until `Drop` unmaps it, and no method hands out a reference to its
// bytes that outlives a call.
unsafe impl Send for Region {}
// SAFETY: as for `Send`: every access is atomic.
unsafe impl Sync for Region {}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Region {
    /// A new region (host side): a memfd of [`REGION_SIZE`] bytes, sealed
    /// against shrinking, growing and further sealing, mapped shared.
    pub(crate) fn create() -> io::Result<Region> {
        // SAFETY: the name is a NUL-terminated literal; the flags are valid.
        let fd = check(unsafe {
            libc::memfd_create(
                c"fnhost-worker".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        })?;
        // SAFETY: memfd_create returned a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: plain system calls on the descriptor just created.
        unsafe {
            check(libc::ftruncate(fd.as_raw_fd(), REGION_SIZE as libc::off_t))?;
            check(libc::fcntl(
                fd.as_raw_fd(),
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            ))?;
        }
        Region::map(fd)
    }

    /// The region the host passed (worker side).
    pub fn open(fd: OwnedFd) -> io::Result<Region> {
        // SAFETY: `stat` is written in full by a successful fstat.
        let size = unsafe {
            let mut stat: libc::stat = std::mem::zeroed();
            check(libc::fstat(fd.as_raw_fd(), &mut stat))?;
            stat.st_size
        };
        if size != REGION_SIZE as libc::off_t {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the shared region has {size} bytes, not {REGION_SIZE}"),
            ));
        }
        Region::map(fd)
    }

    fn map(fd: OwnedFd) -> io::Result<Region> {
        // SAFETY: a fresh shared mapping of the whole file, which is
        // REGION_SIZE bytes long (and, host side, sealed so it stays so).
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                REGION_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Region { base, fd })
    }

    /// The memfd (passed to the worker).
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= CONTROL);
        // SAFETY: `offset` is one of the 4-aligned control words, inside the
        // mapping (page-aligned, so the pointer is 4-aligned); the mapping
        // lives as long as `self`, and every access to it is atomic.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    /// Copies `src` to `offset` with atomic stores (bytes up to an 8-byte
    /// boundary, then words, then bytes). The caller keeps the range inside
    /// the mapping.
    fn store(&self, offset: usize, src: &[u8]) {
        assert!(offset
            .checked_add(src.len())
            .is_some_and(|end| end <= REGION_SIZE));
        let base = self.base.as_ptr();
        let mut i = 0;
        // SAFETY: (all three loops) every address written is `base + offset
        // + i` with `offset + i < REGION_SIZE` (asserted above), inside the
        // mapping; word stores are at 8-aligned addresses (the mapping is
        // page-aligned and the head loop aligns `offset + i`).
        unsafe {
            while i < src.len() && !(offset + i).is_multiple_of(8) {
                AtomicU8::from_ptr(base.add(offset + i)).store(src[i], Ordering::Relaxed);
                i += 1;
            }
            while i + 8 <= src.len() {
                let word = u64::from_ne_bytes(src[i..i + 8].try_into().unwrap_or_default());
                AtomicU64::from_ptr(base.add(offset + i).cast()).store(word, Ordering::Relaxed);
                i += 8;
            }
            while i < src.len() {
                AtomicU8::from_ptr(base.add(offset + i)).store(src[i], Ordering::Relaxed);
                i += 1;
            }
        }
    }

    /// Copies `len` bytes at `offset` out with atomic loads.
    fn load(&self, offset: usize, len: usize) -> Vec<u8> {
        assert!(offset
            .checked_add(len)
            .is_some_and(|end| end <= REGION_SIZE));
        let mut out = Vec::with_capacity(len);
        let base = self.base.as_ptr();
        let mut i = 0;
        // SAFETY: as in `store`: every address read is inside the mapping,
        // word loads are 8-aligned.
        unsafe {
            while i < len && !(offset + i).is_multiple_of(8) {
                out.push(AtomicU8::from_ptr(base.add(offset + i)).load(Ordering::Relaxed));
                i += 1;
            }
            while i + 8 <= len {
                let word = AtomicU64::from_ptr(base.add(offset + i).cast()).load(Ordering::Relaxed);
                out.extend_from_slice(&word.to_ne_bytes());
                i += 8;
            }
            while i < len {
                out.push(AtomicU8::from_ptr(base.add(offset + i)).load(Ordering::Relaxed));
                i += 1;
            }
        }
        out
    }

    /// Writes a message into a slot; `false` (and the slot marked
    /// [`ON_SOCKET`]) when it does not fit.
    fn put(&self, slot: usize, header: &[u8], body: &[u8]) -> bool {
        let fits = SLOT_HEADER
            .checked_add(header.len())
            .and_then(|n| n.checked_add(body.len()))
            .is_some_and(|n| n <= SLOT);
        if !fits {
            self.store(slot, &ON_SOCKET.to_le_bytes());
            return false;
        }
        let mut lengths = [0u8; SLOT_HEADER];
        lengths[..4].copy_from_slice(&(header.len() as u32).to_le_bytes());
        lengths[4..].copy_from_slice(&(body.len() as u32).to_le_bytes());
        self.store(slot, &lengths);
        self.store(slot + SLOT_HEADER, header);
        self.store(slot + SLOT_HEADER + header.len(), body);
        true
    }

    /// Reads the message in a slot; `None` when it crosses the socket.
    /// Each length is read once and checked against the slot.
    fn take(&self, slot: usize) -> io::Result<Option<Message>> {
        let lengths = self.load(slot, SLOT_HEADER);
        let header_len = u32::from_le_bytes([lengths[0], lengths[1], lengths[2], lengths[3]]);
        if header_len == ON_SOCKET {
            return Ok(None);
        }
        let body_len = u32::from_le_bytes([lengths[4], lengths[5], lengths[6], lengths[7]]);
        let (header_len, body_len) = (header_len as usize, body_len as usize);
        if SLOT_HEADER
            .checked_add(header_len)
            .and_then(|n| n.checked_add(body_len))
            .is_none_or(|n| n > SLOT)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a message of {header_len} + {body_len} bytes does not fit its slot"),
            ));
        }
        Ok(Some(Message {
            header: self.load(slot + SLOT_HEADER, header_len),
            body: self.load(slot + SLOT_HEADER + header_len, body_len),
        }))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `map` made; no reference into
        // it outlives `self` (every accessor borrows `self`).
        unsafe { libc::munmap(self.base.as_ptr().cast(), REGION_SIZE) };
    }
}

fn futex_wait(word: &AtomicU32, expected: u32) {
    // SAFETY: the futex word is a live, aligned u32 in a shared mapping;
    // FUTEX_WAIT (not private: the other process shares it) reads it and
    // sleeps only while it still equals `expected`; no timeout pointer.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; FUTEX_WAKE only reads the address.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// Polls `done` for at most `budget`: busily for a few microseconds, then
/// yielding between polls. On two cores the other side (and the host's
/// other threads) may need this very CPU; a pure busy spin then holds it
/// off until the scheduler preempts the spinner, which made the round trip
/// bimodal by thread placement.
fn spin(budget: Duration, done: impl FnMut() -> bool) -> bool {
    crate::spin::spin_until(budget, done)
}

/// Writes one message to the socket: [`FRAME_MAGIC`], the two lengths,
/// the header, the body.
fn send_frame(mut socket: &UnixStream, header: &[u8], body: &[u8]) -> io::Result<()> {
    let (Ok(header_len), Ok(body_len)) = (u32::try_from(header.len()), u32::try_from(body.len()))
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message part over 4 GiB",
        ));
    };
    let mut out = Vec::with_capacity(9 + header.len() + body.len());
    out.push(FRAME_MAGIC);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    socket.write_all(&out)
}

/// Reads one message from the socket, skipping doorbells before it.
fn receive_frame(reader: &mut impl Read) -> io::Result<Message> {
    let mut byte = [0u8; 1];
    loop {
        reader.read_exact(&mut byte)?;
        match byte[0] {
            DOORBELL => continue,
            FRAME_MAGIC => break,
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("byte {other:#04x} where a message should start"),
                ))
            }
        }
    }
    let mut lengths = [0u8; 8];
    reader.read_exact(&mut lengths)?;
    let header_len = u32::from_le_bytes([lengths[0], lengths[1], lengths[2], lengths[3]]) as usize;
    let body_len = u32::from_le_bytes([lengths[4], lengths[5], lengths[6], lengths[7]]) as usize;
    if header_len > MAX_HEADER || body_len > MAX_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {header_len} + {body_len} bytes is over the limit"),
        ));
    }
    let mut message = Message {
        header: vec![0; header_len],
        body: vec![0; body_len],
    };
    reader.read_exact(&mut message.header)?;
    reader.read_exact(&mut message.body)?;
    Ok(message)
}

/// The host's end of one worker's channel.
pub struct HostChannel {
    region: Region,
    /// The last request's sequence number (the host's own count).
    seq: u32,
    /// Whether the last call answered within [`HOST_SPIN`].
    fast: bool,
}

impl HostChannel {
    /// A channel with a new region.
    pub fn new() -> io::Result<HostChannel> {
        Ok(HostChannel {
            region: Region::create()?,
            seq: 0,
            fast: true,
        })
    }

    /// The memfd to pass to the worker.
    pub fn fd(&self) -> &OwnedFd {
        self.region.fd()
    }

    /// The log lines the worker wrote for the last call, as it wrote them
    /// (a worker's bytes: bounded by the log area, decoded leniently by the
    /// caller). Readable after the worker died: the mapping is the host's.
    pub(crate) fn call_log(&self) -> Vec<u8> {
        let len = (self.region.word(LOG_LEN).load(Ordering::Acquire) as usize).min(LOG_AREA);
        self.region.load(LOG_AREA_OFFSET, len)
    }

    /// Sends a request and waits for its answer until `deadline`. Errors:
    /// `TimedOut` at the deadline, `UnexpectedEof` when the worker's socket
    /// closed (it died), `InvalidData` when it broke the protocol.
    pub fn call(
        &mut self,
        socket: &UnixStream,
        header: &[u8],
        body: &[u8],
        deadline: Instant,
    ) -> io::Result<Message> {
        // This call's log starts empty (published with the request).
        self.region.word(LOG_LEN).store(0, Ordering::Relaxed);
        self.exchange(socket, header, body, deadline)
    }

    /// Sends a message within the call in progress (a host call's answer)
    /// and waits for the worker's next, as [`call`](Self::call) does: the
    /// call's log goes on.
    pub(crate) fn call_again(
        &mut self,
        socket: &UnixStream,
        header: &[u8],
        body: &[u8],
        deadline: Instant,
    ) -> io::Result<Message> {
        self.exchange(socket, header, body, deadline)
    }

    fn exchange(
        &mut self,
        socket: &UnixStream,
        header: &[u8],
        body: &[u8],
        deadline: Instant,
    ) -> io::Result<Message> {
        let started = Instant::now();
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let fits = self.region.put(REQUEST_SLOT, header, body);
        self.region.word(REQUEST_SEQ).store(seq, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.region.word(WORKER_SLEEPING).load(Ordering::Relaxed) != 0 {
            futex_wake(self.region.word(REQUEST_SEQ));
        }
        if !fits {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
            }
            socket.set_write_timeout(Some(left))?;
            send_frame(socket, header, body)?;
        }
        self.wait(socket, seq, deadline)?;
        self.fast = started.elapsed() < HOST_SPIN;
        match self.region.take(RESPONSE_SLOT)? {
            Some(message) => Ok(message),
            None => receive_frame(&mut Deadline::new(socket, deadline)),
        }
    }

    /// Whether the worker took the last request (says the worker: a worker
    /// that died before taking it never ran it, and the host may give it
    /// to another).
    pub(crate) fn taken(&self) -> bool {
        self.region.word(TAKEN_SEQ).load(Ordering::Acquire) == self.seq
    }

    fn answered(&self, seq: u32) -> bool {
        self.region.word(RESPONSE_SEQ).load(Ordering::Acquire) == seq
    }

    fn wait(&self, socket: &UnixStream, seq: u32, deadline: Instant) -> io::Result<()> {
        let budget = if self.fast {
            HOST_SPIN.min(deadline.saturating_duration_since(Instant::now()))
        } else {
            Duration::ZERO
        };
        if spin(budget, || self.answered(seq)) {
            return Ok(());
        }
        let sleeping = self.region.word(HOST_SLEEPING);
        sleeping.store(1, Ordering::Relaxed);
        // Pairs with the worker's fence between publishing its answer and
        // reading this flag: one of the two sees the other's store.
        fence(Ordering::SeqCst);
        let result = self.sleep(socket, seq, deadline);
        sleeping.store(0, Ordering::Relaxed);
        result
    }

    fn sleep(&self, socket: &UnixStream, seq: u32, deadline: Instant) -> io::Result<()> {
        loop {
            if self.answered(seq) {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
            }
            if !poll_readable(socket, left)? {
                continue;
            }
            let mut peek = [0u8; 64];
            // SAFETY: `peek` is writable for its length; the descriptor is
            // the host's own socket end, borrowed for the call.
            let n = unsafe {
                libc::recv(
                    socket.as_raw_fd(),
                    peek.as_mut_ptr().cast(),
                    peek.len(),
                    libc::MSG_PEEK | libc::MSG_DONTWAIT,
                )
            };
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the worker closed its socket",
                ));
            }
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            let bells = peek[..n as usize]
                .iter()
                .take_while(|&&b| b == DOORBELL)
                .count();
            if bells > 0 {
                // SAFETY: as above; consumes the doorbells just peeked.
                unsafe {
                    libc::recv(
                        socket.as_raw_fd(),
                        peek.as_mut_ptr().cast(),
                        bells,
                        libc::MSG_DONTWAIT,
                    )
                };
            }
            if bells < n as usize && !self.answered(seq) {
                // A worker starts a socket message only after publishing
                // its answer's sequence number.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the worker wrote to its socket out of turn",
                ));
            }
        }
    }
}

/// Waits until the socket is readable (or closed); `false` on a timeout or
/// an interruption.
fn poll_readable(socket: &UnixStream, timeout: Duration) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: one valid pollfd and a valid timespec, both on the stack; no
    // signal mask.
    let n = unsafe { libc::ppoll(&mut fd, 1, &timeout, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// A worker's end of its channel.
pub struct WorkerChannel {
    region: std::sync::Arc<Region>,
    /// The sequence number of the request being served.
    seq: u32,
    /// When the last answer was published.
    answered_at: Option<Instant>,
    /// Whether the last request followed its predecessor's answer within
    /// [`WORKER_SPIN`].
    fast: bool,
}

impl WorkerChannel {
    /// The worker's end, over the region the host passed.
    pub fn new(region: Region) -> WorkerChannel {
        WorkerChannel {
            region: std::sync::Arc::new(region),
            seq: 0,
            answered_at: None,
            fast: false,
        }
    }

    /// Waits for the next request (spinning briefly while requests come
    /// back to back, then sleeping on the futex).
    pub fn next(&mut self, socket: &mut impl Read) -> io::Result<Message> {
        let budget = if self.fast {
            WORKER_SPIN
        } else {
            Duration::ZERO
        };
        self.next_within(socket, budget)
    }

    /// Waits for the host's answer to a message sent within a call (a host
    /// call): spinning first whatever came before, since the host is at
    /// work on it now.
    pub(crate) fn next_answer(&mut self, socket: &mut impl Read) -> io::Result<Message> {
        self.next_within(socket, WORKER_SPIN)
    }

    fn next_within(&mut self, socket: &mut impl Read, budget: Duration) -> io::Result<Message> {
        let word = self.region.word(REQUEST_SEQ);
        let last = self.seq;
        if !spin(budget, || word.load(Ordering::Acquire) != last) {
            let sleeping = self.region.word(WORKER_SLEEPING);
            sleeping.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            while word.load(Ordering::Acquire) == last {
                futex_wait(word, last);
            }
            sleeping.store(0, Ordering::Relaxed);
        }
        self.seq = word.load(Ordering::Acquire);
        self.region
            .word(TAKEN_SEQ)
            .store(self.seq, Ordering::Release);
        self.fast = self
            .answered_at
            .is_some_and(|at| at.elapsed() < WORKER_SPIN);
        match self.region.take(REQUEST_SLOT)? {
            Some(message) => Ok(message),
            None => receive_frame(socket),
        }
    }

    /// Where the worker writes the log lines of the call it serves.
    pub fn log_ring(&self) -> LogRing {
        LogRing(std::sync::Arc::clone(&self.region))
    }

    /// Answers the request [`next`](Self::next) returned.
    pub fn answer(&mut self, socket: &UnixStream, header: &[u8], body: &[u8]) -> io::Result<()> {
        let fits = self.region.put(RESPONSE_SLOT, header, body);
        self.region
            .word(RESPONSE_SEQ)
            .store(self.seq, Ordering::Release);
        // Pairs with the host's fence between raising its sleeping flag and
        // checking for the answer.
        fence(Ordering::SeqCst);
        if self.region.word(HOST_SLEEPING).load(Ordering::Relaxed) != 0 {
            // SAFETY: a one-byte buffer on the stack, the worker's own
            // socket. A full socket (the host has not read earlier
            // doorbells) already wakes the host, so EAGAIN is fine.
            unsafe {
                libc::send(
                    socket.as_raw_fd(),
                    [DOORBELL].as_ptr().cast(),
                    1,
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
        }
        if !fits {
            send_frame(socket, header, body)?;
        }
        self.answered_at = Some(Instant::now());
        Ok(())
    }
}

/// The worker's side of the log area (any thread of the worker may write).
#[derive(Clone)]
pub struct LogRing(std::sync::Arc<Region>);

impl LogRing {
    /// Appends `line` to the current call's log, when it fits in what is
    /// left of the area (else it is left out: the worker's log buffer,
    /// answered with the call, keeps the newest lines).
    pub fn append(&self, line: &[u8]) {
        let Ok(n) = u32::try_from(line.len()) else {
            return;
        };
        let len = self.0.word(LOG_LEN);
        let mut at = len.load(Ordering::Relaxed);
        loop {
            let end = at as usize + n as usize;
            if end > LOG_AREA {
                return;
            }
            match len.compare_exchange_weak(at, at + n, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => at = now,
            }
        }
        self.0.store(LOG_AREA_OFFSET + at as usize, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (HostChannel, WorkerChannel) {
        let host = HostChannel::new().unwrap();
        let fd = host.fd().try_clone().unwrap();
        (host, WorkerChannel::new(Region::open(fd).unwrap()))
    }

    fn echo_thread(
        mut worker: WorkerChannel,
        socket: UnixStream,
        calls: usize,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut reader = &socket;
            for _ in 0..calls {
                let m = worker.next(&mut reader).unwrap();
                worker.answer(&socket, &m.header, &m.body).unwrap();
            }
        })
    }

    #[test]
    fn messages_cross_in_shared_memory_and_large_ones_over_the_socket() {
        let (mut host, worker) = pair();
        let (host_socket, worker_socket) = UnixStream::pair().unwrap();
        let sizes = [
            0usize,
            1,
            7,
            1024,
            SLOT - SLOT_HEADER - 3,
            SLOT,
            3 * SLOT + 5,
        ];
        let echo = echo_thread(worker, worker_socket, sizes.len() * 2);
        for round in 0..2 {
            for &size in &sizes {
                let body: Vec<u8> = (0..size).map(|i| (i * 7 + round) as u8).collect();
                let deadline = Instant::now() + Duration::from_secs(10);
                let answer = host.call(&host_socket, b"hdr", &body, deadline).unwrap();
                assert_eq!(answer.header, b"hdr");
                assert_eq!(answer.body, body, "size {size}");
            }
        }
        echo.join().unwrap();
    }

    #[test]
    fn a_sleeping_host_is_woken_by_the_doorbell() {
        let (mut host, mut worker) = pair();
        let (host_socket, worker_socket) = UnixStream::pair().unwrap();
        let slow = std::thread::spawn(move || {
            let mut reader = &worker_socket;
            for _ in 0..3 {
                let m = worker.next(&mut reader).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                worker.answer(&worker_socket, &m.header, &m.body).unwrap();
            }
        });
        for _ in 0..3 {
            let started = Instant::now();
            let answer = host
                .call(
                    &host_socket,
                    b"",
                    b"late",
                    Instant::now() + Duration::from_secs(10),
                )
                .unwrap();
            assert_eq!(answer.body, b"late");
            assert!(started.elapsed() < Duration::from_secs(5));
        }
        slow.join().unwrap();
    }

    #[test]
    fn a_silent_worker_is_a_timeout_and_a_dead_one_is_end_of_file() {
        let (mut host, _worker) = pair();
        let (host_socket, worker_socket) = UnixStream::pair().unwrap();
        let started = Instant::now();
        let e = host
            .call(
                &host_socket,
                b"",
                b"x",
                started + Duration::from_millis(100),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(worker_socket);
        let e = host
            .call(
                &host_socket,
                b"",
                b"x",
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn forged_lengths_and_sequence_numbers_are_errors_not_reads_past_the_slot() {
        let (mut host, worker) = pair();
        let (host_socket, _worker_socket) = UnixStream::pair().unwrap();
        // The "worker" answers the next call with lengths past its slot.
        let region = worker.region;
        region.store(RESPONSE_SLOT, &[0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0]);
        region.word(RESPONSE_SEQ).store(1, Ordering::Release);
        let e = host
            .call(
                &host_socket,
                b"",
                b"",
                Instant::now() + Duration::from_secs(5),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        // A sequence number ahead of the host's is an answer that never
        // comes.
        region.word(RESPONSE_SEQ).store(77, Ordering::Release);
        let e = host
            .call(
                &host_socket,
                b"",
                b"",
                Instant::now() + Duration::from_millis(100),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn bytes_out_of_turn_on_the_socket_end_the_call() {
        let (mut host, _worker) = pair();
        let (host_socket, mut worker_socket) = UnixStream::pair().unwrap();
        worker_socket.write_all(b"\xdb\xdbjunk").unwrap();
        let e = host
            .call(
                &host_socket,
                b"",
                b"",
                Instant::now() + Duration::from_secs(5),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }

    /// What a worker logs reaches the host as written, even if the worker
    /// never answers; a line past the area is left out; a forged length
    /// reads no further than the area; each call starts empty.
    #[test]
    fn the_log_area_keeps_what_the_worker_wrote_and_no_more() {
        let (host, worker) = pair();
        let ring = worker.log_ring();
        ring.append(b"first line\n");
        ring.append(b"second line\n");
        assert_eq!(host.call_log(), b"first line\nsecond line\n");
        ring.append(&vec![b'x'; LOG_AREA]);
        assert_eq!(
            host.call_log(),
            b"first line\nsecond line\n",
            "too long: left out"
        );
        // A worker that forges the length makes the host read the area, no more.
        worker
            .region
            .word(LOG_LEN)
            .store(u32::MAX, Ordering::Relaxed);
        assert_eq!(host.call_log().len(), LOG_AREA);
        // Threads append side by side without losing a line.
        worker.region.word(LOG_LEN).store(0, Ordering::Relaxed);
        std::thread::scope(|s| {
            for t in 0..4 {
                let ring = ring.clone();
                s.spawn(move || {
                    for i in 0..100 {
                        ring.append(format!("t{t} {i:03}\n").as_bytes());
                    }
                });
            }
        });
        let log = String::from_utf8(host.call_log()).unwrap();
        assert_eq!(log.lines().count(), 400);
    }

    #[test]
    fn the_worker_cannot_shrink_or_grow_the_region() {
        let host = HostChannel::new().unwrap();
        let fd = host.fd().as_raw_fd();
        for size in [0, REGION_SIZE as libc::off_t * 2] {
            // SAFETY: a system call on a descriptor owned by `host`.
            let ret = unsafe { libc::ftruncate(fd, size) };
            assert_eq!(ret, -1);
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
        }
        // Nor can it remove the seals.
        // SAFETY: as above.
        let ret = unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_WRITE) };
        assert_eq!(ret, -1);
    }
}
