//! The worker's system-call filter: a reviewed denylist compiled by
//! `seccompiler`.
//!
//! Denied (a *violation*: the keeper is notified, names the call to the
//! host and ends the worker; where the kernel lacks user notification the
//! worker is killed outright): debugging and other processes' memory
//! (`ptrace`, `process_vm_readv/writev`, `kcmp`, `pidfd_getfd`), mounts
//! and namespaces (`mount`, `umount2`, `pivot_root`, the new mount API,
//! `unshare`, `setns`, `clone` with any namespace flag, `chroot`), the
//! kernel's own attack surface (`bpf`, `perf_event_open`, `userfaultfd`,
//! `io_uring_*`, keyrings, modules, `kexec_*`, `personality` other than
//! the ordinary ones), host administration (`reboot`, `swapon/off`,
//! clocks, `acct`, `quotactl`, `syslog`, `iopl`/`ioperm`, host and
//! domain names), file handles (`open_by_handle_at`), and sockets that
//! bypass the network's rules (raw, packet, netlink, vsock). `clone3` answers
//! `ENOSYS` (its flags are behind a pointer the filter cannot read), so
//! C libraries fall back to `clone`, whose flags it can; so does `io_setup`
//! (kernel AIO contexts count against a host-wide limit).
//!
//! With `network = "host"`, `connect` goes to the keeper too, which
//! connects on the worker's behalf only to allowed addresses (see
//! [`super::supervisor`]).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// `SECCOMP_RET_USER_NOTIF`: the keeper decides.
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_RET_TRACE`, the action seccompiler compiles and this module
/// then rewrites into [`RET_USER_NOTIF`] (seccompiler has no such action).
const RET_TRACE: u32 = 0x7ff0_0000;
/// The marker data of that trace action.
const MARK: u32 = 0x0f4e;

/// Namespace flags `clone` may not carry.
const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// The system calls denied outright, by name (for messages) and number.
fn denied_calls() -> Vec<(&'static str, i64)> {
    let mut calls = vec![
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("kcmp", libc::SYS_kcmp),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("chroot", libc::SYS_chroot),
        ("open_tree", libc::SYS_open_tree),
        ("move_mount", libc::SYS_move_mount),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("reboot", libc::SYS_reboot),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("acct", libc::SYS_acct),
        ("quotactl", libc::SYS_quotactl),
        ("syslog", libc::SYS_syslog),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("clock_adjtime", libc::SYS_clock_adjtime),
        ("adjtimex", libc::SYS_adjtimex),
        ("sethostname", libc::SYS_sethostname),
        ("setdomainname", libc::SYS_setdomainname),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
        ("vhangup", libc::SYS_vhangup),
        ("fanotify_init", libc::SYS_fanotify_init),
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        ("iopl", libc::SYS_iopl),
        ("ioperm", libc::SYS_ioperm),
        ("uselib", libc::SYS_uselib),
        ("ustat", libc::SYS_ustat),
        ("sysfs", libc::SYS_sysfs),
    ]);
    calls
}

/// The name of system call `nr` for messages.
pub(crate) fn name_of(nr: i64) -> String {
    let conditional = [
        ("clone", libc::SYS_clone),
        ("socket", libc::SYS_socket),
        ("personality", libc::SYS_personality),
        ("ioctl", libc::SYS_ioctl),
        ("connect", libc::SYS_connect),
    ];
    denied_calls()
        .into_iter()
        .chain(conditional)
        .find(|&(_, n)| n == nr)
        .map(|(name, _)| name.to_owned())
        .unwrap_or_else(|| format!("system call {nr}"))
}

// The three constructors below fail only for an argument index above 5 or
// a rule without conditions; every call in this file passes constants that
// cannot (and the unit tests build every filter).
#[allow(clippy::expect_used, reason = "argument indexes are constants below 6")]
fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value).expect("argument index below 6")
}

#[allow(clippy::expect_used, reason = "argument indexes are constants below 6")]
fn dword(arg: u8, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).expect("argument index below 6")
}

#[allow(
    clippy::expect_used,
    reason = "every rule here is given at least one condition"
)]
fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("a rule with conditions")
}

/// The violation rules: system call number → rules (any matching one is
/// a violation; an empty list matches every call).
fn violation_rules(mediate_connect: bool) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denied_calls()
        .into_iter()
        .map(|(_, nr)| (nr, Vec::new()))
        .collect();
    // clone with a namespace flag (x86-64 and arm64 both pass flags first).
    rules.insert(
        libc::SYS_clone,
        NAMESPACE_FLAGS
            .iter()
            .map(|&flag| rule(vec![cond(0, SeccompCmpOp::MaskedEq(flag), flag)]))
            .collect(),
    );
    // Sockets that bypass the network's rules: raw (any family), packet,
    // netlink (routing tables, audit, the kernel's uevents).
    rules.insert(
        libc::SYS_socket,
        vec![
            rule(vec![dword(0, SeccompCmpOp::Eq, libc::AF_NETLINK as u64)]),
            rule(vec![dword(0, SeccompCmpOp::Eq, libc::AF_PACKET as u64)]),
            // vsock is not network-namespaced: it reaches the hypervisor
            // and the host's vsock services from any sandbox.
            rule(vec![dword(0, SeccompCmpOp::Eq, libc::AF_VSOCK as u64)]),
            rule(vec![dword(
                1,
                SeccompCmpOp::MaskedEq(0xf),
                libc::SOCK_RAW as u64,
            )]),
        ],
    );
    // personality: only the query and the ordinary Linux personalities.
    rules.insert(
        libc::SYS_personality,
        vec![rule(
            [0u64, 8, 0x20000, 0x20008, 0xffff_ffff]
                .iter()
                .map(|&p| dword(0, SeccompCmpOp::Ne, p))
                .collect(),
        )],
    );
    // Typing into a terminal the host might share.
    rules.insert(
        libc::SYS_ioctl,
        vec![rule(vec![dword(1, SeccompCmpOp::Eq, libc::TIOCSTI)])],
    );
    if mediate_connect {
        rules.insert(libc::SYS_connect, Vec::new());
    }
    rules
}

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())
}

/// Number of rules in the violation filter (for `fnhost sandbox check`).
pub(crate) fn rule_count() -> usize {
    violation_rules(false)
        .values()
        .map(|r| r.len().max(1))
        .sum()
}

/// The two filters of a worker: the violations (sent to the keeper when
/// `notify`, else killing the process) and `clone3` and `io_setup` →
/// `ENOSYS`.
pub(crate) fn filters(
    notify: bool,
    mediate_connect: bool,
) -> Result<(BpfProgram, BpfProgram), String> {
    let arch = arch()?;
    let action = if notify {
        SeccompAction::Trace(MARK)
    } else {
        SeccompAction::KillProcess
    };
    let violations = SeccompFilter::new(
        violation_rules(mediate_connect && notify),
        SeccompAction::Allow,
        action,
        arch,
    )
    .map_err(|e| e.to_string())?;
    let mut violations: BpfProgram = violations
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    if notify {
        for instruction in &mut violations {
            // BPF_RET | BPF_K returning the marked trace action.
            if instruction.code == 0x06 && instruction.k == RET_TRACE | MARK {
                instruction.k = RET_USER_NOTIF;
            }
        }
    }
    refuse_x32(&mut violations);
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    // Kernel AIO contexts count against a host-wide limit (fs.aio-max-nr):
    // a worker could take them all (found by an outside attack). `ENOSYS`,
    // as a kernel without AIO answers: libraries fall back to threads.
    clone3.insert(libc::SYS_io_setup, Vec::new());
    let clone3 = SeccompFilter::new(
        clone3,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    let clone3: BpfProgram = clone3
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())?;
    Ok((violations, clone3))
}

/// On x86-64, the x32 ABI's system calls carry the architecture of
/// x86-64 and their number with bit 30 set: a denylist of x86-64 numbers
/// would not see them (where the kernel has x32). Right after
/// seccompiler's architecture check (three instructions: load the
/// architecture, compare, kill), three more kill any such number; the
/// jumps after them are relative among later instructions, so none moves.
fn refuse_x32(program: &mut BpfProgram) {
    #[cfg(target_arch = "x86_64")]
    {
        use seccompiler::sock_filter;
        const X32_BIT: u32 = 0x4000_0000;
        // BPF_LD|BPF_W|BPF_ABS of seccomp_data.nr (offset 0); BPF_JMP|BPF_JGE|BPF_K;
        // BPF_RET|BPF_K.
        let guard = [
            sock_filter {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 0,
            },
            sock_filter {
                code: 0x35,
                jt: 0,
                jf: 1,
                k: X32_BIT,
            },
            sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_KILL_PROCESS,
            },
        ];
        if program.len() >= 3 {
            program.splice(3..3, guard);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = program;
}

/// With the host's network (`connect` is mediated by the keeper): what
/// would reach the network without a `connect` answers `EACCES`. UDP and
/// other datagram sockets of the IP families (`sendto` names any
/// destination), TCP Fast Open (`sendto`/`sendmsg` with `MSG_FASTOPEN`
/// connects), `listen` (a service on the host's ports) and `bind` (a
/// worker holding the host's ports, its ephemeral range, or an abstract
/// socket name of the host's network namespace: found by an outside
/// attack).
pub(crate) fn host_network_filter() -> Result<BpfProgram, String> {
    let arch = arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let dgram = libc::SOCK_DGRAM as u64;
    rules.insert(
        libc::SYS_socket,
        [libc::AF_INET, libc::AF_INET6]
            .iter()
            .map(|&family| {
                rule(vec![
                    dword(0, SeccompCmpOp::Eq, family as u64),
                    dword(1, SeccompCmpOp::MaskedEq(0xf), dgram),
                ])
            })
            .collect(),
    );
    let fast_open = libc::MSG_FASTOPEN as u64;
    rules.insert(
        libc::SYS_sendto,
        vec![rule(vec![dword(
            3,
            SeccompCmpOp::MaskedEq(fast_open),
            fast_open,
        )])],
    );
    rules.insert(
        libc::SYS_sendmsg,
        vec![rule(vec![dword(
            2,
            SeccompCmpOp::MaskedEq(fast_open),
            fast_open,
        )])],
    );
    rules.insert(
        libc::SYS_sendmmsg,
        vec![rule(vec![dword(
            3,
            SeccompCmpOp::MaskedEq(fast_open),
            fast_open,
        )])],
    );
    rules.insert(libc::SYS_listen, Vec::new());
    rules.insert(libc::SYS_bind, Vec::new());
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

/// Installs `program` on the calling thread (and the threads it starts
/// later); with `listener`, returns the user-notification descriptor.
pub(crate) fn install(program: &BpfProgram, listener: bool) -> std::io::Result<Option<i32>> {
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const seccompiler::sock_filter,
    }
    let len = libc::c_ushort::try_from(program.len())
        .map_err(|_| std::io::Error::other("seccomp filter too long"))?;
    let prog = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    let flags: libc::c_ulong = if listener {
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as libc::c_ulong
    } else {
        0
    };
    // SAFETY: `prog` describes `program`, which outlives the call; the
    // kernel copies the filter. no_new_privs is set by the caller.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            flags,
            &prog as *const SockFprog,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(listener.then_some(r as i32))
}

/// Whether the kernel supports an action (`SECCOMP_GET_ACTION_AVAIL`).
pub(crate) fn action_available(action: u32) -> bool {
    // SAFETY: the kernel reads one u32 through the pointer.
    unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL as libc::c_ulong,
            0 as libc::c_ulong,
            &action as *const u32,
        ) == 0
    }
}

/// `SECCOMP_RET_USER_NOTIF` is supported.
pub(crate) fn notify_available() -> bool {
    action_available(RET_USER_NOTIF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_compile_and_notify_rewrites_every_marked_return() {
        let (violations, clone3) = filters(true, true).unwrap();
        assert!(violations
            .iter()
            .any(|i| i.code == 0x06 && i.k == RET_USER_NOTIF));
        assert!(!violations.iter().any(|i| i.k == RET_TRACE | MARK));
        assert!(!clone3.is_empty());
        // The x32 guard follows the architecture check.
        #[cfg(target_arch = "x86_64")]
        assert!(violations[3..6]
            .iter()
            .any(|i| i.code == 0x35 && i.k == 0x4000_0000));
        let (killing, _) = filters(false, false).unwrap();
        assert!(!killing
            .iter()
            .any(|i| i.code == 0x06 && i.k == RET_USER_NOTIF));
        assert!(rule_count() > 50);
        assert!(!host_network_filter().unwrap().is_empty());
    }

    #[test]
    fn forbidden_calls_are_named() {
        assert_eq!(name_of(libc::SYS_ptrace), "ptrace");
        assert_eq!(name_of(libc::SYS_io_uring_setup), "io_uring_setup");
        assert_eq!(name_of(libc::SYS_clone), "clone");
        assert_eq!(name_of(99999), "system call 99999");
    }
}
