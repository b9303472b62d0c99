//! The worker's root: a fresh tmpfs holding, read-only, what a library
//! needs to run (the system's shared libraries and dynamic loader, the
//! loader's cache, certificates, time zones), `/dev/null`, `/dev/zero`,
//! `/dev/full`, `/dev/random`, `/dev/urandom`, a `/proc` of the worker's
//! own PID namespace, a writable private `/tmp` of the function's size, and
//! the extra read-only paths the operator allowed. Nothing of the server's
//! data directory, configuration, code cache, home or the host's `/tmp`.
//!
//! Built by init (PID 1 of the new PID namespace, in the new mount
//! namespace) the way bubblewrap builds its root: a staging tmpfs becomes
//! the root with the old one under `/oldroot`, the new root is filled from
//! there, the old root is detached and the new root pivoted to and made
//! read-only.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sandbox::JailSpec;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::other("a path with a NUL byte"))
}

fn check(r: libc::c_int, what: &str, path: &Path) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(
            e.kind(),
            format!("{what} {}: {e}", path.display()),
        ))
    }
}

fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(cstr).transpose()?;
    let target_c = cstr(target)?;
    let no_nul =
        |s: &str| CString::new(s).map_err(|_| io::Error::other("a mount option with a NUL byte"));
    let fstype = fstype.map(no_nul).transpose()?;
    let data = data.map(no_nul).transpose()?;
    // SAFETY: every pointer is null or a NUL-terminated string that lives
    // for the call.
    let r = unsafe {
        libc::mount(
            source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target_c.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast()),
        )
    };
    check(r, "mount", target)
}

/// The per-mount flags a mount has now (`statvfs`), as `MS_*` flags: a
/// remount inside a user namespace must keep the ones it cannot clear.
fn current_flags(target: &Path) -> io::Result<libc::c_ulong> {
    let c = cstr(target)?;
    // SAFETY: `s` is written in full by a successful statvfs.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path, `s` a valid out-pointer.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    check(r, "statvfs", target)?;
    let f = s.f_flag;
    let mut flags = 0;
    for (st, ms) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st != 0 {
            flags |= ms;
        }
    }
    Ok(flags)
}

/// Binds `source` at `target` read-only, without set-uid or devices.
fn bind_read_only(source: &Path, target: &Path) -> io::Result<()> {
    mount(
        Some(source),
        target,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    let flags = current_flags(target)? | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    mount(
        None,
        target,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | flags,
        None,
    )
}

/// Makes `target` (a directory or an empty file, like `source`) and its
/// parents.
fn make_mount_point(source: &Path, target: &Path) -> io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if source.is_dir() {
        std::fs::create_dir_all(target)
    } else {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(target)
            .map(drop)
    }
}

/// Mirrors the host's `name` (`/usr`, `/lib`, ...) in the new root: the
/// same symbolic link, or the directory bound read-only.
fn mirror(old: &Path, new: &Path, name: &str) -> io::Result<()> {
    let source = old.join(name);
    let target = new.join(name);
    match std::fs::symlink_metadata(&source) {
        Err(_) => Ok(()),
        Ok(m) if m.file_type().is_symlink() => {
            let to = std::fs::read_link(&source)?;
            std::os::unix::fs::symlink(to, target)
        }
        Ok(_) => {
            make_mount_point(&source, &target)?;
            bind_read_only(&source, &target)
        }
    }
}

fn pivot_root(new: &Path, old: &Path) -> io::Result<()> {
    let (n, o) = (cstr(new)?, cstr(old)?);
    // SAFETY: two NUL-terminated paths that live for the call.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) };
    check(if r == 0 { 0 } else { -1 }, "pivot_root", new)
}

fn detach(target: &Path) -> io::Result<()> {
    let c = cstr(target)?;
    // SAFETY: a NUL-terminated path that lives for the call.
    check(
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) },
        "umount",
        target,
    )
}

/// Builds the root and pivots into it (init, with its capabilities in the
/// new user namespace, before it drops them).
pub(super) fn build_root(spec: &JailSpec) -> io::Result<()> {
    let root = Path::new("/");
    mount(None, root, None, libc::MS_REC | libc::MS_PRIVATE, None)?;
    // Staging: a tmpfs on /tmp becomes the root, the old one under /oldroot.
    let staging = Path::new("/tmp");
    mount(
        Some(Path::new("tmpfs")),
        staging,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=64k,mode=0700"),
    )?;
    std::fs::create_dir(staging.join("oldroot"))?;
    pivot_root(staging, &staging.join("oldroot"))?;
    std::env::set_current_dir(root)?;
    let old = Path::new("/oldroot");
    let new = Path::new("/newroot");
    std::fs::create_dir(new)?;
    mount(
        Some(Path::new("tmpfs")),
        new,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("size=4m,mode=0755"),
    )?;
    for name in ["usr", "lib", "lib64", "lib32", "libx32", "bin", "sbin"] {
        mirror(old, new, name)?;
    }
    // /etc: the dynamic loader's cache, certificates, time zone; users,
    // groups and hosts of the sandbox's own.
    let etc = new.join("etc");
    std::fs::create_dir(&etc)?;
    for name in [
        "ld.so.cache",
        "ssl",
        "ca-certificates",
        "localtime",
        "alternatives",
    ] {
        mirror(&old.join("etc"), &etc, name)?;
    }
    std::fs::write(
        etc.join("passwd"),
        format!(
            "fnhost:x:{uid}:{gid}:function:/tmp:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            uid = spec.uid,
            gid = spec.gid
        ),
    )?;
    std::fs::write(
        etc.join("group"),
        format!("fnhost:x:{}:\nnogroup:x:65534:\n", spec.gid),
    )?;
    std::fs::write(etc.join("hosts"), &spec.hosts)?;
    std::fs::write(etc.join("hostname"), "fnhost\n")?;
    std::fs::write(
        etc.join("nsswitch.conf"),
        "passwd: files\ngroup: files\nhosts: files\n",
    )?;
    // /dev: the harmless devices, bound from the host's.
    let dev = new.join("dev");
    std::fs::create_dir(&dev)?;
    for name in ["null", "zero", "full", "random", "urandom"] {
        let source = old.join("dev").join(name);
        if source.exists() {
            let target = dev.join(name);
            std::fs::write(&target, b"")?;
            mount(Some(&source), &target, None, libc::MS_BIND, None)?;
            let flags = current_flags(&target)? | libc::MS_NOSUID | libc::MS_NOEXEC;
            mount(
                None,
                &target,
                None,
                libc::MS_REMOUNT | libc::MS_BIND | flags,
                None,
            )?;
        }
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("shm", "/tmp"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))?;
    }
    // /proc of the new PID namespace (init is its PID 1).
    let proc = new.join("proc");
    std::fs::create_dir(&proc)?;
    mount(
        Some(Path::new("proc")),
        &proc,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    // The private /tmp, of the function's size.
    let tmp = new.join("tmp");
    std::fs::create_dir(&tmp)?;
    mount(
        Some(Path::new("tmpfs")),
        &tmp,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&format!("size={}m,mode=1777", spec.tmp_mb)),
    )?;
    // The extra read-only paths (checked against the operator's list).
    for path in &spec.read_only_paths {
        let relative = path.strip_prefix("/").unwrap_or(path);
        let source: PathBuf = old.join(relative);
        if !source.exists() {
            // Missing, or under a directory the sandbox's uid may not
            // enter: said, not skipped.
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "read-only path {} is not reachable by the sandbox's uid (missing, or under a directory closed to it)",
                    path.display()
                ),
            ));
        }
        let target = new.join(relative);
        make_mount_point(&source, &target)?;
        bind_read_only(&source, &target)?;
    }
    detach(old)?;
    std::env::set_current_dir(new)?;
    pivot_root(Path::new("."), Path::new("."))?;
    detach(Path::new("."))?;
    std::env::set_current_dir(root)?;
    let flags = current_flags(root)?;
    mount(
        None,
        root,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | flags,
        None,
    )
}
