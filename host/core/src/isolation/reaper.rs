//! Reaping orphans when the host is PID 1 (a container's entrypoint) or a
//! subreaper: the processes a handler started are killed with its worker's
//! process group, and their zombies are then reparented to the host, which
//! must collect them or the container runs out of process ids. Worker
//! processes themselves are reaped by their pool (`Child::wait`), so the
//! reaper leaves the pids it is told are workers alone.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, Once};
use std::time::Duration;

/// Pids of live worker processes (reaped by their pools, not here).
static WORKERS: LazyLock<Mutex<HashSet<i32>>> = LazyLock::new(|| Mutex::new(HashSet::new()));
static START: Once = Once::new();

/// Whether orphans are reparented to this process.
fn adopts_orphans() -> bool {
    if std::process::id() == 1 {
        return true;
    }
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer given.
    let got = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag as *mut libc::c_int) };
    got == 0 && flag != 0
}

/// Records a worker's pid; starts the reaper the first time, when this
/// process adopts orphans.
pub(crate) fn worker_started(pid: i32) {
    if let Ok(mut w) = WORKERS.lock() {
        w.insert(pid);
    }
    START.call_once(|| {
        if adopts_orphans() {
            let _ = std::thread::Builder::new()
                .name("fnhost-reaper".into())
                .stack_size(64 * 1024)
                .spawn(|| loop {
                    reap_orphans();
                    std::thread::sleep(Duration::from_millis(200));
                });
        }
    });
}

/// Forgets a worker's pid (once its pool reaped it).
pub(crate) fn worker_reaped(pid: i32) {
    if let Ok(mut w) = WORKERS.lock() {
        w.remove(&pid);
    }
}

/// Collects every zombie child that is not a worker.
fn reap_orphans() {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let (state, ppid) = (
            fields.next(),
            fields.next().and_then(|p| p.parse::<i32>().ok()),
        );
        if state != Some("Z") || ppid != Some(me) {
            continue;
        }
        let is_worker = WORKERS.lock().map(|w| w.contains(&pid)).unwrap_or(true);
        if !is_worker {
            let mut status = 0;
            // SAFETY: waitpid on a specific zombie child, writing its status
            // into a local; WNOHANG never blocks.
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        }
    }
}
