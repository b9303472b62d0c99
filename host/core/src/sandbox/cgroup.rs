//! One cgroup per sandboxed worker, made by the host under its own: the
//! memory controller caps everything the worker's sandbox maps (shared
//! memory and `/tmp` included, which `RLIMIT_DATA` misses) and the pids
//! controller caps its processes and threads (a fork bomb fails to fork),
//! and the cpu controller caps it at one core and weighs it below the
//! host's own processes (a handler's busy background processes cannot take
//! every core from the server).
//! cgroup v1 (`memory` and `pids` hierarchies) or a v2 hierarchy whose
//! controllers are delegated to this process's cgroup.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

/// Where this process makes its workers' cgroups, per controller.
#[derive(Debug, Clone, Default)]
struct Bases {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    v2: bool,
}

static BASES: LazyLock<Bases> = LazyLock::new(find_bases);
static NEXT: AtomicU64 = AtomicU64::new(0);
/// Worker cgroups whose processes had not all gone when they were removed.
static LEFT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// This process's cgroup directory for each hierarchy: `(v1 controllers
/// or empty for v2, directory)`.
fn own_cgroups() -> Vec<(Vec<String>, PathBuf)> {
    let Ok(cgroups) = std::fs::read_to_string("/proc/self/cgroup") else {
        return Vec::new();
    };
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let controllers: Vec<String> = controllers
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        // The mount of this hierarchy: fields 4 (root) and 5 (mount point),
        // then after " - " the type and the super options.
        for m in mountinfo.lines() {
            let Some((left, right)) = m.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let rfields: Vec<&str> = right.split(' ').collect();
            if fields.len() < 5 || rfields.len() < 3 {
                continue;
            }
            let (root, mount, fstype, options) = (fields[3], fields[4], rfields[0], rfields[2]);
            let matches = if controllers.is_empty() {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup"
                    && controllers
                        .iter()
                        .all(|c| options.split(',').any(|o| o == c))
            };
            if !matches {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap_or(path);
            let dir = Path::new(mount).join(relative.trim_start_matches('/'));
            out.push((controllers.clone(), dir));
            break;
        }
    }
    out
}

/// Makes (or reuses) `<own cgroup>/fnhost-<pid>`, after removing such
/// directories of processes that are gone.
fn base_in(dir: &Path) -> Option<PathBuf> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("fnhost-"))
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            // SAFETY: kill with signal 0 only checks that the pid exists.
            if pid != std::process::id() as i32 && unsafe { libc::kill(pid, 0) } != 0 {
                remove_tree(&e.path());
            }
        }
    }
    let base = dir.join(format!("fnhost-{}", std::process::id()));
    match std::fs::create_dir(&base) {
        Ok(()) => Some(base),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Some(base),
        Err(_) => None,
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn find_bases() -> Bases {
    // SAFETY: geteuid has no preconditions.
    let mut bases = Bases::default();
    let own = own_cgroups();
    for (controllers, dir) in &own {
        if controllers.iter().any(|c| c == "memory") && bases.memory.is_none() {
            bases.memory = base_in(dir);
        }
        if controllers.iter().any(|c| c == "pids") && bases.pids.is_none() {
            bases.pids = base_in(dir);
        }
        if controllers.iter().any(|c| c == "cpu") && bases.cpu.is_none() {
            bases.cpu = base_in(dir);
        }
    }
    if bases.memory.is_none() && bases.pids.is_none() {
        // cgroup v2: only where this process's cgroup already delegates the
        // controllers to its children (a process may not sit in a cgroup
        // whose children have controllers, so fnhost cannot enable them).
        if let Some((_, dir)) = own.iter().find(|(c, _)| c.is_empty()) {
            let delegated =
                std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
            let has = |c: &str| delegated.split_whitespace().any(|d| d == c);
            if has("memory") || has("pids") {
                if let Some(base) = base_in(dir) {
                    let mut enable = String::new();
                    for c in ["memory", "pids", "cpu"].into_iter().filter(|c| has(c)) {
                        enable.push_str(&format!("+{c} "));
                    }
                    let _ = std::fs::write(base.join("cgroup.subtree_control"), enable.trim());
                    bases.v2 = true;
                    bases.memory = has("memory").then(|| base.clone());
                    bases.pids = has("pids").then(|| base.clone());
                    bases.cpu = has("cpu").then_some(base);
                }
            }
        }
    }
    bases
}

/// What `fnhost sandbox check` says of the cpu controller.
pub(crate) fn cpu_controller() -> Option<String> {
    let b = &*BASES;
    b.cpu.as_ref().map(|p| {
        format!(
            "one core at most, weighted below the host's processes (cgroup {} under {})",
            if b.v2 { "v2" } else { "v1" },
            p.display()
        )
    })
}

/// What `fnhost sandbox check` says of the memory and pids controllers.
pub(crate) fn controllers() -> (Option<String>, Option<String>) {
    let b = &*BASES;
    let describe = |d: &Option<PathBuf>| {
        d.as_ref().map(|p| {
            format!(
                "cgroup {} under {}",
                if b.v2 { "v2" } else { "v1" },
                p.display()
            )
        })
    };
    (describe(&b.memory), describe(&b.pids))
}

/// Whether workers get a pids cgroup.
pub(crate) fn has_pids() -> bool {
    BASES.pids.is_some()
}

/// One worker's cgroup (one directory per v1 hierarchy).
#[derive(Debug)]
pub(crate) struct Cgroup {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    v2: bool,
}

impl Cgroup {
    /// A new cgroup limited to `memory_bytes` and `max_processes`, or
    /// `None` where no controller is writable.
    pub(crate) fn create(memory_bytes: u64, max_processes: u32) -> Option<Cgroup> {
        let b = &*BASES;
        if b.memory.is_none() && b.pids.is_none() {
            return None;
        }
        retry_left();
        let name = format!("w{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let make = |base: &Option<PathBuf>| -> Option<PathBuf> {
            let dir = base.as_ref()?.join(&name);
            match std::fs::create_dir(&dir) {
                Ok(()) => Some(dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Some(dir),
                Err(_) => None,
            }
        };
        let memory = make(&b.memory);
        let pids = if b.v2 {
            memory.clone().or_else(|| make(&b.pids))
        } else {
            make(&b.pids)
        };
        let cpu = if b.v2 {
            memory.clone().or_else(|| pids.clone())
        } else {
            make(&b.cpu)
        };
        let cgroup = Cgroup {
            memory,
            pids,
            cpu,
            v2: b.v2,
        };
        if let Some(dir) = &cgroup.memory {
            let limit = memory_bytes.to_string();
            if cgroup.v2 {
                let _ = std::fs::write(dir.join("memory.max"), &limit);
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            } else {
                let _ = std::fs::write(dir.join("memory.limit_in_bytes"), &limit);
                // Swap counts too, where it is accounted.
                let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &limit);
            }
        }
        if let Some(dir) = &cgroup.pids {
            let _ = std::fs::write(dir.join("pids.max"), max_processes.to_string());
        }
        if let Some(dir) = &cgroup.cpu {
            if cgroup.v2 {
                let _ = std::fs::write(dir.join("cpu.max"), "100000 100000");
                let _ = std::fs::write(dir.join("cpu.weight"), "25");
            } else {
                let _ = std::fs::write(dir.join("cpu.cfs_period_us"), "100000");
                let _ = std::fs::write(dir.join("cpu.cfs_quota_us"), "100000");
                let _ = std::fs::write(dir.join("cpu.shares"), "256");
            }
        }
        Some(cgroup)
    }

    /// Sets the memory limit (a worker started parked gets its function's
    /// when it is activated).
    pub(crate) fn set_memory_limit(&self, bytes: u64) {
        if let Some(dir) = &self.memory {
            let limit = bytes.to_string();
            if self.v2 {
                let _ = std::fs::write(dir.join("memory.max"), &limit);
            } else {
                // memsw must stay at or above the limit: lowered after it,
                // raised before it.
                let _ = std::fs::write(dir.join("memory.limit_in_bytes"), &limit);
                let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &limit);
                let _ = std::fs::write(dir.join("memory.limit_in_bytes"), &limit);
            }
        }
    }

    /// Moves process `pid` (and so everything it starts later) in.
    pub(crate) fn add(&self, pid: u32) -> std::io::Result<()> {
        let mut dirs = vec![&self.memory, &self.pids, &self.cpu];
        dirs.dedup();
        for dir in dirs.into_iter().flatten() {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    fn counter(&self, dir: &Option<PathBuf>, file: &str, key: &str) -> u64 {
        dir.as_ref()
            .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse().ok()).flatten()
                })
            })
            .unwrap_or(0)
    }

    /// The most memory this cgroup ever charged, in bytes (`None`: no
    /// memory controller, or the kernel does not say).
    pub(crate) fn peak_bytes(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.memory.as_ref()?.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the kernel's OOM killer ended a process of this cgroup.
    pub(crate) fn oom_killed(&self) -> bool {
        let file = if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.counter(&self.memory, file, "oom_kill") > 0
    }

    /// Whether a fork failed at the process limit.
    pub(crate) fn hit_process_limit(&self) -> bool {
        self.counter(&self.pids, "pids.events", "max") > 0
    }
}

fn retry_left() {
    let mut left = LEFT.lock().unwrap_or_else(|e| e.into_inner());
    left.retain(|dir| std::fs::remove_dir(dir).is_err() && dir.exists());
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let mut dirs = vec![self.memory.take(), self.pids.take(), self.cpu.take()];
        dirs.dedup();
        for dir in dirs.into_iter().flatten() {
            // The worker's processes are reaped by now, but the kernel may
            // still be tearing the last of them down.
            if std::fs::remove_dir(&dir).is_err() && dir.exists() {
                LEFT.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
            }
        }
    }
}
