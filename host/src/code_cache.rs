//! Content-addressed copies of libraries. Every library is copied to
//! `<cache>/<blake3 hex>.so` (written to a temporary file, then renamed)
//! before it is opened, so the host never `dlopen`s a path a build can
//! overwrite, and two different builds never share a path (the dynamic loader
//! returns the already-mapped library for a path it has seen).
//!
//! Byte-identical code maps to one path and therefore one loaded library:
//! redeploying identical bytes is a no-op for the code (its statics are shared).
//!
//! The cache is derived data: it is not fsynced, and by default it lives on a
//! per-user tmpfs (`$XDG_RUNTIME_DIR/fnhost/libs`, else
//! `/dev/shm/fnhost-<uid>/libs`, else `$TMPDIR/fnhost-<uid>/libs`), where
//! writing a copy costs a third of what it costs on disk. A file that exists
//! is reused when its size matches (rename makes a complete file appear
//! atomically; a crash-torn file has the wrong size and is rewritten). Since
//! existing files are trusted, the directory must belong to this user and
//! must not be writable by anyone else; the cache refuses it otherwise.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A library's content address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A directory of content-addressed library copies.
#[derive(Debug)]
pub struct CodeCache {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl CodeCache {
    /// Uses (and creates, mode 0700) `dir`, which must be owned by this
    /// user and writable by nobody else.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<CodeCache> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let meta = fs::metadata(&dir)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if meta.uid() != uid || meta.permissions().mode() & 0o022 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "code cache {} must be owned by uid {uid} and not writable by group or others (owner {}, mode {:o})",
                    dir.display(),
                    meta.uid(),
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
        Ok(CodeCache { dir })
    }

    /// The default directory (see the module docs).
    pub fn default_dir() -> PathBuf {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if let Some(runtime_dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(runtime_dir).join("fnhost").join("libs");
        }
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            return shm.join(format!("fnhost-{uid}")).join("libs");
        }
        std::env::temp_dir()
            .join(format!("fnhost-{uid}"))
            .join("libs")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes every copy whose digest is not in `keep` (copies being
    /// written are left alone); returns how many were deleted. Only for a
    /// cache no other process uses: a copy deleted under another process
    /// would be missing when it starts a worker from it.
    pub fn retain(&self, keep: &std::collections::HashSet<Digest>) -> io::Result<usize> {
        let keep: std::collections::HashSet<String> =
            keep.iter().map(|d| format!("{}.so", d.to_hex())).collect();
        let mut deleted = 0;
        for entry in fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_copy = name.len() == 67
                && name.ends_with(".so")
                && name[..64].bytes().all(|b| b.is_ascii_hexdigit());
            if is_copy && !keep.contains(&name) && fs::remove_file(entry.path()).is_ok() {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Stores `bytes` under `digest` and returns the path to open.
    pub fn store(&self, digest: &Digest, bytes: &[u8]) -> io::Result<PathBuf> {
        let path = self.dir.join(format!("{}.so", digest.to_hex()));
        if let Ok(meta) = fs::metadata(&path) {
            if meta.len() == bytes.len() as u64 {
                return Ok(path);
            }
        }
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            digest.to_hex(),
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            drop(f);
            fs::rename(&tmp, &path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map(|()| path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_deletes_only_copies_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path().join("libs")).unwrap();
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let kept = cache.store(&a, b"a").unwrap();
        let dropped = cache.store(&b, b"b").unwrap();
        fs::write(cache.dir().join(".x.tmp"), b"in progress").unwrap();
        let keep = std::collections::HashSet::from([a]);
        assert_eq!(cache.retain(&keep).unwrap(), 1);
        assert!(kept.exists() && !dropped.exists());
        assert!(cache.dir().join(".x.tmp").exists());
    }

    #[test]
    fn same_bytes_share_a_path_and_different_bytes_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path()).unwrap();
        let a = cache.store(&Digest::of(b"one"), b"one").unwrap();
        let a2 = cache.store(&Digest::of(b"one"), b"one").unwrap();
        let b = cache.store(&Digest::of(b"two"), b"two").unwrap();
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_eq!(fs::read(&b).unwrap(), b"two");
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn refuses_a_directory_others_can_write() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let e = CodeCache::new(&shared).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("mode 777"), "{e}");
    }

    #[test]
    fn a_torn_copy_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path()).unwrap();
        let d = Digest::of(b"complete");
        let path = cache.store(&d, b"complete").unwrap();
        fs::write(&path, b"comp").unwrap();
        cache.store(&d, b"complete").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"complete");
    }
}
