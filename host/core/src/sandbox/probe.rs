//! Which sandbox layers this kernel (and the container around it) allows,
//! found once per process by trying each in a throwaway child.

use std::sync::LazyLock;

use serde::Serialize;

/// What the sandbox can use here, and why a layer is missing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Availability {
    /// User namespaces can be created.
    pub user_ns: bool,
    /// Why not.
    pub user_ns_error: Option<String>,
    /// PID namespaces (with a `/proc` of their own mounted in them).
    pub pid_ns: bool,
    /// Why not.
    pub pid_ns_error: Option<String>,
    /// Mount namespaces with a fresh root and a private `/proc`.
    pub mount_ns: bool,
    /// Why not.
    pub mount_ns_error: Option<String>,
    /// Network namespaces.
    pub net_ns: bool,
    /// Why not.
    pub net_ns_error: Option<String>,
    /// IPC, UTS and cgroup namespaces.
    pub ipc_uts_cgroup_ns: bool,
    /// Why not.
    pub ipc_uts_cgroup_ns_error: Option<String>,
    /// seccomp-BPF filters.
    pub seccomp: bool,
    /// Why not.
    pub seccomp_error: Option<String>,
    /// seccomp user notification (forbidden calls named).
    pub seccomp_notify: bool,
    /// The kernel's Landlock ABI version (0: none).
    pub landlock_abi: i32,
    /// Why not.
    pub landlock_error: Option<String>,
    /// Running as root (uids can be dropped without a user namespace).
    pub root: bool,
}

static AVAILABLE: LazyLock<Availability> = LazyLock::new(probe);

/// The layers this process can give workers (probed on first use).
pub fn availability() -> &'static Availability {
    &AVAILABLE
}

/// Runs `f` in a forked child and returns its exit code (0: it worked;
/// else an errno). The child makes only raw system calls (this process may
/// have threads).
fn in_child(f: fn() -> i32) -> i32 {
    // SAFETY: the child runs `f`, which makes only async-signal-safe
    // system calls, and leaves with _exit; the parent reaps it.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(f());
        }
        if pid < 0 {
            return *libc::__errno_location();
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 {
            if *libc::__errno_location() != libc::EINTR {
                return libc::ECHILD;
            }
        }
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            libc::EFAULT
        }
    }
}

fn errno() -> i32 {
    // SAFETY: reads this thread's errno.
    unsafe { *libc::__errno_location() }
}

fn try_user() -> i32 {
    // SAFETY: unshare takes no pointers.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0 {
        0
    } else {
        errno()
    }
}

fn try_flags(flags: libc::c_int) -> i32 {
    // SAFETY: as above.
    if unsafe { libc::unshare(flags) } == 0 {
        0
    } else {
        errno()
    }
}

/// Namespaces other than the user one, in a user namespace when there is
/// one (as root, without one too).
fn try_net() -> i32 {
    let _ = try_user();
    try_flags(libc::CLONE_NEWNET)
}

fn try_ipc() -> i32 {
    let _ = try_user();
    try_flags(libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWCGROUP)
}

/// A PID namespace whose first process mounts a `/proc` of its own in a
/// private mount namespace, and a tmpfs (what the sandbox's root needs).
fn try_pid_and_proc() -> i32 {
    let _ = try_user();
    let e = try_flags(libc::CLONE_NEWNS | libc::CLONE_NEWPID);
    if e != 0 {
        return e;
    }
    // SAFETY: fork in a single-threaded child; the grandchild makes raw
    // system calls on static C strings and leaves with _exit.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            let none = std::ptr::null::<libc::c_char>();
            if libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                libc::_exit(100 + errno().min(100));
            }
            if libc::mount(
                c"tmpfs".as_ptr(),
                c"/tmp".as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                c"size=1m".as_ptr().cast(),
            ) != 0
            {
                libc::_exit(100 + errno().min(100));
            }
            if libc::mount(
                c"proc".as_ptr(),
                c"/tmp".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ) != 0
            {
                libc::_exit(200 + errno().min(55));
            }
            libc::_exit(0);
        }
        if pid < 0 {
            return errno();
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            libc::EFAULT
        }
    }
}

fn describe(code: i32) -> String {
    let hint = |e: i32| {
        let mut s = std::io::Error::from_raw_os_error(e).to_string();
        if e == libc::EPERM || e == libc::ENOSPC || e == libc::EINVAL {
            if std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
                .is_ok_and(|v| v.trim() == "0")
            {
                s.push_str(", kernel.unprivileged_userns_clone=0");
            }
            if std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
                .is_ok_and(|v| v.trim() == "0")
            {
                s.push_str(", user.max_user_namespaces=0");
            }
            if e == libc::EPERM {
                s.push_str(", or a container's seccomp profile forbids it");
            }
        }
        s
    };
    match code {
        100..=199 => format!("mounting a tmpfs: {}", hint(code - 100)),
        200..=255 => format!(
            "mounting a /proc of its own: {} (a container that masks parts of /proc forbids it)",
            hint(code - 200)
        ),
        e => hint(e),
    }
}

fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute and size 0 the call only reports the ABI.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        -errno()
    } else {
        v as i32
    }
}

fn probe() -> Availability {
    let mut a = Availability {
        // SAFETY: geteuid has no preconditions.
        root: unsafe { libc::geteuid() } == 0,
        ..Availability::default()
    };
    let user = in_child(try_user);
    a.user_ns = user == 0;
    a.user_ns_error = (user != 0).then(|| describe(user));
    if a.user_ns || a.root {
        let pid = in_child(try_pid_and_proc);
        a.pid_ns = pid == 0;
        a.mount_ns = pid == 0;
        if pid != 0 {
            a.pid_ns_error = Some(describe(pid));
            a.mount_ns_error = Some(describe(pid));
        }
        let net = in_child(try_net);
        a.net_ns = net == 0;
        a.net_ns_error = (net != 0).then(|| describe(net));
        let ipc = in_child(try_ipc);
        a.ipc_uts_cgroup_ns = ipc == 0;
        a.ipc_uts_cgroup_ns_error = (ipc != 0).then(|| describe(ipc));
    } else {
        let why = "needs a user namespace (or root)".to_owned();
        a.pid_ns_error = Some(why.clone());
        a.mount_ns_error = Some(why.clone());
        a.net_ns_error = Some(why.clone());
        a.ipc_uts_cgroup_ns_error = Some(why);
    }
    // SAFETY: PR_GET_SECCOMP takes no pointer.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP) };
    a.seccomp = mode >= 0 && super::seccomp::action_available(libc::SECCOMP_RET_KILL_PROCESS);
    if !a.seccomp {
        a.seccomp_error = Some(if mode < 0 {
            "the kernel has no seccomp".to_owned()
        } else {
            "the kernel cannot kill a process from a filter".to_owned()
        });
    }
    a.seccomp_notify = a.seccomp && super::seccomp::notify_available();
    let abi = landlock_abi();
    a.landlock_abi = abi.max(0);
    if abi <= 0 {
        a.landlock_error = Some(match -abi {
            libc::ENOSYS => "the kernel has no Landlock".to_owned(),
            libc::EOPNOTSUPP => "Landlock is not enabled (boot with lsm=...,landlock)".to_owned(),
            e => std::io::Error::from_raw_os_error(e).to_string(),
        });
    }
    a
}
