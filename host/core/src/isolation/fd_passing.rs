//! One descriptor over a Unix socket (`SCM_RIGHTS`): the host hands a
//! pre-started checker its library this way, and a sandboxed worker its
//! seccomp listener to its keeper.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Sends one descriptor over a socket (`SCM_RIGHTS`).
pub(crate) fn send_fd(socket: RawFd, fd: RawFd) -> io::Result<()> {
    send_fds(socket, &[fd])
}

/// Sends one to four descriptors in one message (`SCM_RIGHTS`).
pub(crate) fn send_fds(socket: RawFd, fds: &[RawFd]) -> io::Result<()> {
    if fds.is_empty() || fds.len() > 4 {
        return Err(io::Error::other("one to four descriptors"));
    }
    let byte = [0u8];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    let data_len = std::mem::size_of_val(fds) as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `control` (64 bytes) has room for a control message of four
    // descriptors (space <= 40 bytes); all buffers live for the call.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as usize;
        let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
        for (i, &fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(data.add(i), fd);
        }
        libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL)
    };
    if sent == 1 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receives one descriptor sent with [`send_fd`]; `None` at the end of
/// the stream, or when not exactly one came (all closed then).
pub(crate) fn receive_fd(socket: RawFd) -> Option<OwnedFd> {
    let mut fds = receive_fds(socket)?;
    (fds.len() == 1).then(|| fds.pop()).flatten()
}

/// Receives the descriptors of one message sent with [`send_fds`];
/// `None` at the end of the stream, when none came or the control data
/// was cut.
pub(crate) fn receive_fds(socket: RawFd) -> Option<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: buffers live for the call; recvmsg writes at most their sizes.
    let n = unsafe { libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n != 1 {
        return None;
    }
    let mut received = Vec::new();
    // SAFETY: walks the control buffer recvmsg filled, within
    // msg_controllen; SCM_RIGHTS data holds (len - CMSG_LEN(0)) / 4 ints.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                let count = ((*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<libc::c_int>();
                for i in 0..count {
                    received.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 || received.is_empty() {
        return None;
    }
    Some(received)
}
