//! The keeper's watch over a sandboxed worker: the seccomp listener the
//! worker hands it (forbidden calls end the worker and are named to the
//! host; `connect` of a function with the host's network is made here, on
//! a duplicate of the worker's socket, only to an allowed address) and
//! init's word of how the worker ended.
//!
//! A connection is checked and made with the keeper's own copy of the
//! address, read once from the worker's memory, so a thread of the
//! worker that rewrites the address after the check changes nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::super::fd_passing::receive_fd;
use crate::sandbox::{outbound, JailSpec, Network, Report};

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Notification {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct Response {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// `_IOWR('!', 0, struct seccomp_notif)`.
const NOTIF_RECV: libc::c_ulong = 0xc000_0000 | (80 << 16) | (0x21 << 8);
/// `_IOWR('!', 1, struct seccomp_notif_resp)`.
const NOTIF_SEND: libc::c_ulong = 0xc000_0000 | (24 << 16) | (0x21 << 8) | 1;
/// `_IOW('!', 2, __u64)`.
const NOTIF_ID_VALID: libc::c_ulong = 0x4000_0000 | (8 << 16) | (0x21 << 8) | 2;
/// `PIDFD_THREAD` (Linux 6.9): a pidfd of a thread, not only a leader.
const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;

fn poll2(fds: &mut [libc::pollfd]) -> bool {
    // SAFETY: a valid array of pollfds for the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
    n >= 0 || std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
}

/// What the keeper saw: the worker's wait status (`None` if init died
/// without saying, or the sandbox ended it), the report, and the seccomp
/// listener, which the keeper must hold until init is reaped (closing it
/// would answer a forbidden call still pending `ENOSYS` and let it go on).
pub(super) type Watched = (Option<i32>, Report, Option<OwnedFd>);

/// Supervises until init reports the worker's end; on a forbidden call,
/// kills init (`end_all`) at once.
pub(super) fn run(
    spec: &JailSpec,
    status: OwnedFd,
    handoff: OwnedFd,
    end_all: impl Fn(),
) -> Watched {
    let mut report = Report::default();
    let mut handoff = Some(handoff);
    let mut listener: Option<OwnedFd> = None;
    let local = if spec.network == Network::Host {
        outbound::local_addresses()
    } else {
        Vec::new()
    };
    loop {
        let mut fds = vec![libc::pollfd {
            fd: status.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let second = handoff
            .as_ref()
            .or(listener.as_ref())
            .map(AsRawFd::as_raw_fd);
        if let Some(fd) = second {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if !poll2(&mut fds) {
            return (None, report, listener);
        }
        if fds[0].revents != 0 {
            let mut bytes = [0u8; 4];
            // SAFETY: reads into a local buffer of 4 bytes.
            let n = unsafe { libc::read(status.as_raw_fd(), bytes.as_mut_ptr().cast(), 4) };
            return (
                (n == 4).then(|| i32::from_le_bytes(bytes)),
                report,
                listener,
            );
        }
        let Some(second) = fds.get(1).filter(|f| f.revents != 0) else {
            continue;
        };
        if let Some(h) = handoff.take() {
            debug_assert_eq!(h.as_raw_fd(), second.fd);
            // The worker sends its listener once; the end of the stream
            // means it has none (or died first).
            listener = receive_fd(h.as_raw_fd());
            continue;
        }
        if second.revents & (libc::POLLHUP | libc::POLLERR) != 0
            && second.revents & libc::POLLIN == 0
        {
            // Every filtered process is gone.
            listener = None;
            continue;
        }
        let Some(l) = listener.as_ref() else {
            continue;
        };
        let mut n = Notification::default();
        // SAFETY: the kernel fills `n`, whose layout is struct seccomp_notif.
        if unsafe { libc::ioctl(l.as_raw_fd(), NOTIF_RECV, &mut n) } != 0 {
            // The notifying thread died meanwhile (ENOENT), or a signal.
            continue;
        }
        if i64::from(n.data.nr) == libc::SYS_connect && spec.network == Network::Host {
            let error = connect_for(l, &n, spec, &local);
            let mut response = Response {
                id: n.id,
                val: 0,
                error: -error,
                flags: 0,
            };
            // SAFETY: `response` has the layout of struct seccomp_notif_resp.
            unsafe { libc::ioctl(l.as_raw_fd(), NOTIF_SEND, &mut response) };
            continue;
        }
        // A forbidden call: the worker ends (init's end ends the
        // namespace), the call never answered.
        report.forbidden_call = Some(i64::from(n.data.nr));
        end_all();
        return (None, report, listener);
    }
}

/// Reads the worker's `len` bytes at `address`.
fn read_memory(pid: u32, address: u64, len: usize) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: writes at most `len` bytes into `buffer`; the remote iovec
    // is only an address in the other process.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    (n == len as isize).then_some(buffer)
}

/// Parses a socket address: `Ok(Some(ip))` for IPv4/IPv6, `Ok(None)` for
/// a Unix socket path, `Err(errno)` otherwise.
fn parse_address(bytes: &[u8]) -> Result<Option<SocketAddr>, i32> {
    if bytes.len() < 2 {
        return Err(libc::EINVAL);
    }
    let family = i32::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
    match family {
        libc::AF_INET if bytes.len() >= 8 => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        libc::AF_INET6 if bytes.len() >= 24 => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[8..24]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        // A path (not an abstract name: those start with a NUL byte) is
        // reachable only if the sandbox's filesystem holds the socket.
        libc::AF_UNIX if bytes.len() > 2 && bytes[2] != 0 => Ok(None),
        libc::AF_UNIX => Err(libc::EACCES),
        libc::AF_UNSPEC => Ok(None),
        _ => Err(libc::EAFNOSUPPORT),
    }
}

/// Makes the worker's `connect` on its behalf, if allowed; the errno to
/// answer (0 for success).
fn connect_for(listener: &OwnedFd, n: &Notification, spec: &JailSpec, local: &[IpAddr]) -> i32 {
    let (fd, address, len) = (n.data.args[0], n.data.args[1], n.data.args[2]);
    let Ok(len) = usize::try_from(len) else {
        return libc::EINVAL;
    };
    if len > std::mem::size_of::<libc::sockaddr_storage>() {
        return libc::EINVAL;
    }
    let Some(bytes) = read_memory(n.pid, address, len) else {
        return libc::EFAULT;
    };
    let target = match parse_address(&bytes) {
        Ok(t) => t,
        Err(e) => return e,
    };
    if let Some(addr) = target {
        if !outbound::allowed(&addr, &spec.allow, local) {
            let line = format!(
                "fnhost sandbox: connection to {addr} refused: not in the function's allow_outbound\n"
            );
            // SAFETY: writes a local buffer to our stderr (the worker's log).
            unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
            return libc::EACCES;
        }
    }
    // The thread's descriptor, through a pidfd; then check the
    // notification is still pending (the pid was not reused meanwhile).
    // SAFETY: pidfd_open takes plain values.
    let mut pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, n.pid, PIDFD_THREAD) };
    if pidfd < 0 {
        // SAFETY: as above (a kernel without PIDFD_THREAD: leaders only).
        pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, n.pid, 0) };
    }
    if pidfd < 0 {
        return libc::EPERM;
    }
    // SAFETY: a descriptor the kernel just returned.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let mut id = n.id;
    // SAFETY: the kernel reads the u64 id.
    if unsafe { libc::ioctl(listener.as_raw_fd(), NOTIF_ID_VALID, &mut id) } != 0 {
        return libc::EINTR;
    }
    // SAFETY: pidfd_getfd takes plain values.
    let socket = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if socket < 0 {
        return libc::EBADF;
    }
    // SAFETY: a descriptor the kernel just returned.
    let socket = unsafe { OwnedFd::from_raw_fd(socket as i32) };
    // SAFETY: connects the shared socket to our own copy of the address.
    let r = unsafe {
        libc::connect(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            len as libc::socklen_t,
        )
    };
    if r == 0 {
        0
    } else {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }
}
