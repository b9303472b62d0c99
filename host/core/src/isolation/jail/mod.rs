//! The worker's side of the sandbox: the keeper, init and the worker's own
//! confinement (see [`crate::sandbox`] for the design).
//!
//! Everything here runs in a freshly executed worker executable before
//! any thread exists, so forking and then running ordinary Rust code in
//! the children is sound.

use std::io::{self, Read, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

mod filesystem;
mod supervisor;

use super::fd_passing::send_fd;

use super::protocol::read_frame;
use super::{LIBRARY_FD, REGION_FD, SOCKET_FD};
use crate::sandbox::{seccomp, JailSpec, Network, Report, REPORT_FD};

fn last_error(what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn ok(r: libc::c_int, what: &str) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(last_error(what))
    }
}

/// `fd` moved to a number of 10 or more: the low numbers belong to the
/// host's descriptors (3 to 6), which the keeper and init close by number
/// whether or not this worker got them all (a checker has no region).
fn high(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if moved < 0 {
        return Err(last_error("fcntl"));
    }
    // SAFETY: a fresh descriptor this process owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    ok(r, "pipe")?;
    // SAFETY: two fresh descriptors this process owns.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((high(r)?, high(w)?))
}

/// The socket to the host, borrowed (the worker takes ownership later).
fn host_socket() -> ManuallyDrop<UnixStream> {
    // SAFETY: the host passes its socket on SOCKET_FD; this borrow is never
    // closed (ManuallyDrop).
    ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(SOCKET_FD) })
}

/// What the worker still has to do once its library is in hand (the
/// pre-started checker receives it later): Landlock, which names the
/// library, and the system-call filter.
pub(crate) struct Confinement {
    spec: JailSpec,
    /// The socket on which the worker hands its keeper the seccomp
    /// listener.
    keeper: OwnedFd,
}

/// Sets up the sandbox the host described in its first frame. Returns in
/// the worker only; the keeper and init end the process themselves.
pub(crate) fn enter() -> io::Result<Confinement> {
    let mut socket = host_socket();
    let (spec, _): (JailSpec, Vec<u8>) = read_frame(&mut &*socket)?;
    let l = spec.layers;
    let mut flags = 0;
    if l.user_ns {
        flags |= libc::CLONE_NEWUSER;
    }
    if l.mount_ns {
        flags |= libc::CLONE_NEWNS;
    }
    if l.pid_ns {
        flags |= libc::CLONE_NEWPID;
    }
    if l.ipc_uts_cgroup_ns {
        flags |= libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    }
    if l.net_ns && spec.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    if l.user_ns && l.root {
        // The user namespace is made by the unprivileged host uid, not by
        // root: the namespace's owner is who its per-user kernel counters
        // (inotify instances, message queues, pending signals) are charged
        // to, and root's are the host's.
        become_ids(spec.host_uid, spec.host_gid, true)?;
    }
    if flags != 0 {
        // SAFETY: unshare takes no pointers; this process has one thread.
        ok(unsafe { libc::unshare(flags) }, "unshare")?;
    }
    if l.user_ns {
        // The host writes our uid and gid maps, then answers.
        socket.write_all(b"U")?;
        let mut go = [0u8; 1];
        (&*socket).read_exact(&mut go)?;
        if go != *b"G" {
            return Err(io::Error::other("the host did not map the sandbox's ids"));
        }
        // The inside ids, keeping the namespace's capabilities (the
        // namespace's uid 0 is not mapped, so changing ids clears none):
        // the mounts below need them, and files created here are then
        // owned by a mapped id.
        // (setgroups may be denied there when the host is unprivileged.)
        become_ids(spec.uid, spec.gid, false)?;
    }
    if l.ipc_uts_cgroup_ns {
        // Now that the host has put us in our cgroup: the namespace's
        // root is that cgroup.
        // SAFETY: unshare takes no pointers; one thread.
        ok(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }, "unshare")?;
    }
    let (status_read, status_write) = pipe()?;
    let (life_read, life_write) = pipe()?;
    let (keeper_end, worker_end) = UnixStream::pair()?;
    let (keeper_end, worker_end) = (high(keeper_end.into())?, high(worker_end.into())?);
    // SAFETY: this process has one thread; both sides go on running Rust.
    let init = unsafe { libc::fork() };
    if init < 0 {
        return Err(last_error("fork"));
    }
    if init == 0 {
        drop((status_read, life_write, keeper_end));
        close_report_fd();
        return init_then_worker(spec, status_write, life_read, worker_end);
    }
    drop((status_write, life_read, worker_end));
    keeper(spec, init, status_read, life_write, keeper_end)
}

/// Becomes `uid` and `gid` (real, effective and saved) without
/// supplementary groups; `groups_required`: a refused `setgroups` is an
/// error.
fn become_ids(uid: u32, gid: u32, groups_required: bool) -> io::Result<()> {
    // SAFETY: plain system calls without pointers (setgroups with 0 entries
    // reads none).
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 && groups_required {
            return Err(last_error("setgroups"));
        }
        ok(libc::setresgid(gid, gid, gid), "setresgid")?;
        ok(libc::setresuid(uid, uid, uid), "setresuid")
    }
}

fn close_report_fd() {
    // SAFETY: closes the keeper's report descriptor in a child; nothing
    // else here uses that number.
    unsafe { libc::close(REPORT_FD) };
}

/// Clears the capability sets and sets `no_new_privs`.
fn drop_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    // SAFETY: capset and prctl with plain values and pointers to locals
    // that live for each call.
    unsafe {
        let header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        ok(
            libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int,
            "capset",
        )?;
        ok(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            "no_new_privs",
        )
    }
}

/// Becomes a plain user: the host uid when root without a user namespace
/// (inside one the ids changed before the mounts), then no capabilities.
fn drop_privileges(spec: &JailSpec) -> io::Result<()> {
    // The bounding and ambient sets first, while CAP_SETPCAP is held.
    // SAFETY: prctl with plain values.
    unsafe {
        for cap in 0..64 {
            // Fails harmlessly past the kernel's last capability.
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
    }
    if !spec.layers.user_ns && spec.layers.root {
        become_ids(spec.host_uid, spec.host_gid, true)?;
    }
    drop_capabilities()
}

fn die_with_parent() -> io::Result<()> {
    // SAFETY: prctl with plain values.
    ok(
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) },
        "PR_SET_PDEATHSIG",
    )
}

/// Whether the other end of `life` (held by the keeper) is gone.
fn orphaned(life: &OwnedFd) -> bool {
    let mut fd = libc::pollfd {
        fd: life.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut fd, 1, 0) > 0 && fd.revents & (libc::POLLHUP | libc::POLLERR) != 0 }
}

/// Init: builds the root, drops privileges, starts the worker and reaps
/// until it ends. Returns in the worker.
fn init_then_worker(
    spec: JailSpec,
    status: OwnedFd,
    life: OwnedFd,
    worker_end: OwnedFd,
) -> io::Result<Confinement> {
    die_with_parent()?;
    if orphaned(&life) {
        // SAFETY: leaving at once.
        unsafe { libc::_exit(1) };
    }
    if spec.layers.mount_ns {
        filesystem::build_root(&spec)?;
    }
    if spec.layers.ipc_uts_cgroup_ns {
        // SAFETY: a pointer and length of a static string.
        unsafe { libc::sethostname(c"fnhost".as_ptr(), 6) };
    }
    drop_privileges(&spec)?;
    // Changing credentials cleared the parent-death signal.
    die_with_parent()?;
    // SAFETY: prctl with plain values: nothing of the same uid may read
    // init's memory.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // SAFETY: one thread; both sides go on running Rust.
    let worker = unsafe { libc::fork() };
    if worker < 0 {
        return Err(last_error("fork"));
    }
    if worker == 0 {
        drop((status, life));
        die_with_parent()?;
        return Ok(Confinement {
            spec,
            keeper: worker_end,
        });
    }
    drop(worker_end);
    // Only the worker keeps the host's descriptors: the host sees the
    // worker's end as soon as it ends.
    for fd in [SOCKET_FD, LIBRARY_FD, REGION_FD] {
        // SAFETY: closing descriptors this process does not use.
        unsafe { libc::close(fd) };
    }
    reap(worker, status, life)
}

/// Init's loop: collects every child (the orphans of a handler's double
/// forks come here); when the worker ends, tells the keeper how and
/// leaves, which ends everything left in the PID namespace.
fn reap(worker: libc::pid_t, status: OwnedFd, _life: OwnedFd) -> ! {
    loop {
        let mut wstatus = 0;
        // SAFETY: waits for any child, writing its status into a local.
        let pid = unsafe { libc::waitpid(-1, &mut wstatus, 0) };
        if pid == worker {
            let bytes = wstatus.to_le_bytes();
            // SAFETY: four bytes from a local to a pipe we own.
            unsafe { libc::write(status.as_raw_fd(), bytes.as_ptr().cast(), 4) };
            // SAFETY: leaving; the kernel ends the rest of the namespace.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: reads this thread's errno.
        if pid < 0 && unsafe { *libc::__errno_location() } == libc::ECHILD {
            // SAFETY: as above.
            unsafe { libc::_exit(1) };
        }
    }
}

/// The keeper: drops its own privileges, supervises, then reports and
/// ends as the worker ended.
fn keeper(
    spec: JailSpec,
    init: libc::pid_t,
    status: OwnedFd,
    life: OwnedFd,
    keeper_end: OwnedFd,
) -> ! {
    for fd in [SOCKET_FD, LIBRARY_FD, REGION_FD] {
        // SAFETY: closing descriptors the keeper does not use.
        unsafe { libc::close(fd) };
    }
    let kill_init = || {
        // SAFETY: kill with plain values; `init` is our unreaped child.
        unsafe { libc::kill(init, libc::SIGKILL) };
    };
    let host_alive = drop_privileges(&spec).is_ok()
        && die_with_parent().is_ok()
        // SAFETY: getppid has no preconditions.
        && unsafe { libc::getppid() } == spec.host_pid;
    let (worker_status, report, listener) = if host_alive {
        supervisor::run(&spec, status, keeper_end, kill_init)
    } else {
        (None, Report::default(), None)
    };
    kill_init();
    let mut wstatus = 0;
    // SAFETY: reaps our child into a local.
    unsafe { libc::waitpid(init, &mut wstatus, 0) };
    // Init reaped: every process of the namespace is gone.
    drop((life, listener));
    let mut record = [0u8; 16];
    record[..4].copy_from_slice(b"FNSB");
    record[8..].copy_from_slice(&report.forbidden_call.unwrap_or(-1).to_le_bytes());
    // SAFETY: writes a local buffer to the report pipe (the host's).
    unsafe { libc::write(REPORT_FD, record.as_ptr().cast(), record.len()) };
    end_as(worker_status, report.forbidden_call.is_some())
}

/// Ends the keeper the way the worker ended (the host reads its status).
fn end_as(status: Option<i32>, violation: bool) -> ! {
    let signal = match status {
        _ if violation => Some(libc::SIGSYS),
        Some(s) if libc::WIFSIGNALED(s) => Some(libc::WTERMSIG(s)),
        Some(s) if libc::WIFEXITED(s) => {
            // SAFETY: leaving with the worker's exit code.
            unsafe { libc::_exit(libc::WEXITSTATUS(s)) }
        }
        _ => None,
    };
    if let Some(sig) = signal {
        // SAFETY: restores the default action for `sig`, unblocks it and
        // raises it; a core dump is off (RLIMIT_CORE 0).
        unsafe {
            let limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
            libc::_exit(128 + sig);
        }
    }
    // SAFETY: leaving.
    unsafe { libc::_exit(1) }
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: a pointer to a local that lives for the call. Lowering a
    // limit needs no privilege; a failure leaves the inherited one.
    unsafe { libc::setrlimit(resource, &limit) };
}

impl Confinement {
    /// Limits, environment, Landlock and the system-call filter, once the
    /// library is on [`LIBRARY_FD`]: nothing of the library has run yet.
    pub(crate) fn apply(self) -> io::Result<()> {
        let spec = &self.spec;
        set_limit(libc::RLIMIT_CORE, 0);
        set_limit(libc::RLIMIT_NOFILE, spec.nofile);
        // No file may outgrow /tmp; a write past it fails with EFBIG
        // rather than killing the worker with SIGXFSZ.
        set_limit(
            libc::RLIMIT_FSIZE,
            (u64::from(spec.tmp_mb) + 1) * 1024 * 1024,
        );
        // SAFETY: sets a signal's disposition to ignored; no handler runs.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        if let Some(n) = spec.nproc {
            set_limit(libc::RLIMIT_NPROC, n);
        }
        if let Some(bytes) = spec.data_limit {
            set_limit(libc::RLIMIT_DATA, bytes);
        }
        // The host started us with the environment the function sees (the
        // marker and what it declared), plus what the dynamic loader needed
        // to start this executable: that goes now, in place (a Go library
        // reads the array the process started with).
        let keep = |name: &std::ffi::OsStr| {
            name.to_str().is_some_and(|n| {
                n == super::WORKER_ENV.to_str().unwrap_or_default()
                    || spec.env.iter().any(|(k, _)| k == n)
            })
        };
        let names: Vec<_> = std::env::vars_os()
            .map(|(k, _)| k)
            .filter(|k| !keep(k))
            .collect();
        for name in names {
            std::env::remove_var(name);
        }
        if spec.layers.mount_ns {
            std::env::set_current_dir("/tmp")?;
        }
        // SAFETY: prctl with plain values. Dumpable: the keeper reads the
        // worker's memory for the connections it mediates, and the
        // worker resets its own memory high-water mark through /proc.
        unsafe {
            ok(
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                "no_new_privs",
            )?;
            libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        }
        if spec.layers.landlock_abi > 0 {
            landlock(spec)?;
        }
        if spec.layers.seccomp {
            let mediate = spec.network == Network::Host;
            let (violations, clone3) =
                seccomp::filters(spec.layers.seccomp_notify, mediate).map_err(io::Error::other)?;
            seccomp::install(&clone3, false)?;
            if mediate {
                let network = seccomp::host_network_filter().map_err(io::Error::other)?;
                seccomp::install(&network, false)?;
            }
            if let Some(listener) = seccomp::install(&violations, spec.layers.seccomp_notify)? {
                // SAFETY: the descriptor the kernel just returned, ours.
                let listener = unsafe { OwnedFd::from_raw_fd(listener) };
                send_fd(self.keeper.as_raw_fd(), listener.as_raw_fd())?;
            }
        }
        Ok(())
    }
}

/// Landlock: the root read-only, `/tmp` writable, `/dev` and `/proc`
/// (the worker resets its memory mark there) readable and writable, the
/// library readable and executable; no signals and no abstract Unix
/// sockets out of the domain; no TCP without a network.
fn landlock(spec: &JailSpec) -> io::Result<()> {
    use landlock::{
        Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset,
        RulesetAttr, RulesetCreatedAttr, Scope, ABI,
    };
    let abi = ABI::V6;
    let e = |e: landlock::RulesetError| io::Error::other(format!("landlock: {e}"));
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))
        .map_err(e)?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)
        .map_err(e)?;
    if spec.network == Network::None {
        ruleset = ruleset
            .handle_access(AccessNet::ConnectTcp | AccessNet::BindTcp)
            .map_err(e)?;
    }
    let mut created = ruleset.create().map_err(e)?;
    let read = AccessFs::from_read(abi);
    let file_read = AccessFs::ReadFile | AccessFs::Execute;
    let readable: &[&str] = if spec.layers.mount_ns {
        &["/"]
    } else {
        &[
            "/usr",
            "/lib",
            "/lib64",
            "/lib32",
            "/bin",
            "/sbin",
            "/etc/ld.so.cache",
            "/etc/ssl",
            "/etc/localtime",
        ]
    };
    for path in readable {
        if let Ok(fd) = PathFd::new(path) {
            let is_dir = std::path::Path::new(path).is_dir();
            created = created
                .add_rule(PathBeneath::new(fd, if is_dir { read } else { file_read }))
                .map_err(e)?;
        }
    }
    let mut writable = vec!["/dev", "/proc"];
    if spec.layers.mount_ns {
        writable.push("/tmp");
    }
    for path in writable {
        if let Ok(fd) = PathFd::new(path) {
            let access = if path == "/tmp" {
                AccessFs::from_all(abi)
            } else {
                // Truncate: `> /dev/null`, and std's File::create.
                read | AccessFs::WriteFile | AccessFs::Truncate
            };
            created = created.add_rule(PathBeneath::new(fd, access)).map_err(e)?;
        }
    }
    // SAFETY: LIBRARY_FD is open (checked by the caller) for the life of
    // this call.
    let library = unsafe { BorrowedFd::borrow_raw(LIBRARY_FD) };
    created = created
        .add_rule(PathBeneath::new(library, file_read))
        .map_err(e)?;
    created.restrict_self().map_err(e)?;
    Ok(())
}
