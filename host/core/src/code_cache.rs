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
//! writing a copy costs a third of what it costs on disk.
//!
//! The cache trusts nothing it did not write:
//! - every directory on its path, from `/` down, belongs to this user or to
//!   root, and one that others may write (`/tmp`, `/dev/shm`) must be
//!   sticky, so nobody else can replace what lies below it; the cache's own
//!   directories belong to this user and nobody else may write them
//!   ([`CodeCache::new`] refuses the cache otherwise);
//! - a library is copied in as a new private file, hashed as it is written,
//!   and only then renamed to its content address, replacing whatever had
//!   that name (a planted or torn file is never reused); the descriptor that
//!   wrote it is the one used ([`CodeCache::copy_in`]; or written by a
//!   caller that has the bytes in hand, [`CodeCache::incoming`]);
//! - an existing copy is used again only after it is opened with
//!   `O_NOFOLLOW`, checked (a regular file of this user's that nobody else
//!   may write) and hashed from the open descriptor
//!   ([`CodeCache::open_verified`]); worker processes inherit a verified
//!   descriptor and load it, never a path.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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
    /// Uses (and creates, mode 0700) `dir`: refused unless every directory
    /// on its path is safe from other users (see the module docs).
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<CodeCache> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let dir = fs::canonicalize(&dir)?;
        check_chain(&dir)?;
        Ok(CodeCache { dir })
    }

    /// A cache that holds nothing and refuses writes: a worker process
    /// loads its one library in place, from the descriptor it inherited.
    pub(crate) fn none() -> CodeCache {
        CodeCache {
            dir: PathBuf::new(),
        }
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
    #[cfg(test)]
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

    /// The path of the copy of `digest`.
    pub fn path_of(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.so", digest.to_hex()))
    }

    /// Opens the copy of `digest` for use: without following a symbolic
    /// link, checked to be a regular file of this user's that nobody else
    /// may write, and hashed from the open descriptor. `InvalidData` when its
    /// bytes are not the ones its name promises.
    pub fn open_verified(&self, digest: &Digest) -> io::Result<OwnedFd> {
        let path = self.path_of(digest);
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)?;
        let meta = file.metadata()?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if !meta.file_type().is_file() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a private regular file of uid {uid} (owner {}, mode {:o})",
                    path.display(),
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
            ));
        }
        if meta.mode() & 0o444 != 0o444 {
            // A copy an older fnhost made (mode 0400): a sandboxed worker,
            // of another uid, opens it again through its descriptor.
            file.set_permissions(fs::Permissions::from_mode(0o444))?;
        }
        let mut hasher = blake3::Hasher::new();
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            hasher.update(&chunk[..n]);
        }
        if Digest(*hasher.finalize().as_bytes()) != *digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold the bytes its name promises: refused",
                    path.display()
                ),
            ));
        }
        Ok(file.into())
    }

    /// Stores `bytes` (whose digest is `digest`) and returns the copy's path.
    #[cfg(test)]
    pub fn store(&self, digest: &Digest, bytes: &[u8]) -> io::Result<PathBuf> {
        let stored = self.copy_in(&mut io::Cursor::new(bytes), None, bytes.len() as u64)?;
        assert_eq!(stored.digest, *digest, "store: the digest of other bytes");
        Ok(stored.path)
    }

    /// Copies a library into the cache and hashes it in the same pass:
    /// reads `source` (at most `limit` bytes; more is `InvalidInput`) into
    /// a new private file (mode 0444, in this user's cache directory),
    /// hashing each chunk as it is written, then renames that file to the
    /// content address the hash gives. The digest is of the bytes written
    /// to the copy, whatever the source does meanwhile; the returned
    /// descriptor is the copy's, open for reading.
    ///
    /// Where the file system can share extents (`FICLONE`: btrfs, XFS,
    /// bcachefs, with `source_fd` on the same file system as the cache) the
    /// copy costs no data copy, only the hash of the clone. Large libraries
    /// (from [`PIPELINED_BYTES`]) are hashed on a second thread while the
    /// next chunk is copied.
    pub fn copy_in(
        &self,
        source: &mut dyn Read,
        source_fd: Option<std::os::fd::BorrowedFd<'_>>,
        limit: u64,
    ) -> io::Result<Stored> {
        if self.dir.as_os_str().is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this process has no code cache",
            ));
        }
        let tmp = self.temporary_path();
        let stored = (|| {
            let mut copy = create_private(&tmp)?;
            let (digest, size) = match source_fd.filter(|_| clone_into(&copy, source_fd)) {
                Some(_) => hash_file(&mut copy, limit)?,
                None => copy_hashing(source, &mut copy, limit)?,
            };
            self.seal(&tmp, copy, digest, size)
        })();
        if stored.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        stored
    }

    /// Starts a copy that its caller writes, hashed as it is written, as
    /// [`copy_in`](Self::copy_in) copies: for a caller that has the bytes
    /// in hand anyway (a server extracting a package writes the library
    /// here as it writes it into the package), so that nothing reads them
    /// again. More than `limit` bytes is `InvalidInput`. The copy is kept
    /// only once [`Incoming::finish`] names it by its content.
    pub fn incoming(&self, limit: u64) -> io::Result<Incoming<'_>> {
        if self.dir.as_os_str().is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this process has no code cache",
            ));
        }
        let tmp = self.temporary_path();
        let file = create_private(&tmp)?;
        Ok(Incoming {
            cache: self,
            tmp,
            file: Some(file),
            hasher: blake3::Hasher::new(),
            size: 0,
            limit,
        })
    }

    fn temporary_path(&self) -> PathBuf {
        self.dir.join(format!(
            ".incoming.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Renames the written copy at `tmp` to its content address and
    /// answers it with a read-only descriptor.
    fn seal(&self, tmp: &Path, copy: fs::File, digest: Digest, size: u64) -> io::Result<Stored> {
        let path = self.path_of(&digest);
        // Replaces a copy of the same name: it held these bytes or was
        // planted or torn; a library already mapped from it keeps its
        // own inode.
        fs::rename(tmp, &path)?;
        // The descriptor kept (and handed to worker processes) is a new
        // read-only one: the one that wrote the copy could write it
        // still, and a worker holding it could rewrite the cache.
        let read_only = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&copy)
            ))?;
        drop(copy);
        Ok(Stored {
            digest,
            size,
            path,
            file: read_only.into(),
        })
    }
}

/// A new private file in the cache: read-only, and readable by the
/// sandbox's unprivileged uid (mode 0444: a sandboxed worker opens it again
/// through its descriptor, /proc/self/fd/4, and the directory's mode 0700
/// keeps every other user from reaching it by path); the descriptor
/// answered may still read and write it.
fn create_private(tmp: &Path) -> io::Result<fs::File> {
    let copy = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o444)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)?;
    // Whatever the umask says.
    copy.set_permissions(fs::Permissions::from_mode(0o444))?;
    Ok(copy)
}

/// A library being written into the cache by its caller
/// ([`CodeCache::incoming`]): hashed as it is written; removed unless
/// [`finish`](Incoming::finish)ed.
#[derive(Debug)]
pub struct Incoming<'a> {
    cache: &'a CodeCache,
    tmp: PathBuf,
    file: Option<fs::File>,
    hasher: blake3::Hasher,
    size: u64,
    limit: u64,
}

impl Write for Incoming<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("the copy is finished"));
        };
        if self.size.saturating_add(buf.len() as u64) > self.limit {
            return Err(too_large(self.limit));
        }
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Incoming<'_> {
    /// The digest of what was written so far.
    pub fn digest(&self) -> Digest {
        Digest(*self.hasher.finalize().as_bytes())
    }

    /// Names the copy by the digest of what was written and answers it,
    /// open for reading only.
    pub fn finish(mut self) -> io::Result<Stored> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the copy is finished"))?;
        let digest = self.digest();
        let stored = self.cache.seal(&self.tmp, file, digest, self.size);
        if stored.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        stored
    }
}

impl Drop for Incoming<'_> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A library copied into the cache ([`CodeCache::copy_in`]).
#[derive(Debug)]
pub struct Stored {
    /// The content address of the copy's bytes.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its path, `<cache>/<digest>.so`.
    pub path: PathBuf,
    /// The copy, open for reading only.
    pub file: OwnedFd,
}

/// From this size, [`CodeCache::copy_in`] hashes on a second thread while
/// it copies (below it, starting the thread costs more than it saves).
pub const PIPELINED_BYTES: u64 = 4 << 20;

/// Chunk of the sequential copy: fits the L2 cache, so each chunk is still
/// there when it is hashed and then written.
const CHUNK: usize = 256 * 1024;

/// Chunk of the pipelined copy (three in flight).
const PIPELINED_CHUNK: usize = 1 << 20;

fn too_large(limit: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("the library is larger than the {limit} bytes it may have"),
    )
}

/// Makes `copy` share `source`'s extents (`FICLONE`); false where the file
/// system cannot (then nothing was written).
fn clone_into(copy: &fs::File, source: Option<std::os::fd::BorrowedFd<'_>>) -> bool {
    use std::os::fd::AsRawFd;
    let Some(source) = source else { return false };
    // FICLONE = _IOW(0x94, 9, int)
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: FICLONE takes the source descriptor as its argument and
    // changes only the destination file, which is ours; both descriptors
    // are open for the duration of the call.
    unsafe { libc::ioctl(copy.as_raw_fd(), FICLONE, source.as_raw_fd()) == 0 }
}

/// Hashes `file` from its start (a clone just made), at most `limit` bytes.
fn hash_file(file: &mut fs::File, limit: u64) -> io::Result<(Digest, u64)> {
    use std::io::Seek;
    file.rewind()?;
    let mut hasher = blake3::Hasher::new();
    let mut chunk = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = next_chunk(file, &mut chunk, &mut size, limit)?;
        if n == 0 {
            return Ok((Digest(*hasher.finalize().as_bytes()), size));
        }
        hasher.update(&chunk[..n]);
    }
}

/// Copies `source` to `copy`, hashing what is written, in one pass.
fn copy_hashing(
    source: &mut dyn Read,
    copy: &mut fs::File,
    limit: u64,
) -> io::Result<(Digest, u64)> {
    let mut chunk = vec![0u8; CHUNK];
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    loop {
        let n = next_chunk(source, &mut chunk, &mut size, limit)?;
        if n == 0 {
            return Ok((Digest(*hasher.finalize().as_bytes()), size));
        }
        hasher.update(&chunk[..n]);
        copy.write_all(&chunk[..n])?;
        if size >= PIPELINED_BYTES {
            // A large library: the rest on two threads.
            return copy_pipelined(source, copy, limit, hasher, size);
        }
    }
}

/// Copies what is left of `source` (`size` bytes were copied) unhashed.
fn copy_rest(
    source: &mut dyn Read,
    copy: &mut fs::File,
    limit: u64,
    mut size: u64,
) -> io::Result<()> {
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = next_chunk(source, &mut chunk, &mut size, limit)?;
        if n == 0 {
            return Ok(());
        }
        copy.write_all(&chunk[..n])?;
    }
}

/// Reads the next chunk into `buf` (until it is full or the source ends),
/// adds it to `size`, and refuses a source past `limit` bytes.
fn next_chunk(
    source: &mut dyn Read,
    buf: &mut [u8],
    size: &mut u64,
    limit: u64,
) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    *size += filled as u64;
    if *size > limit {
        return Err(too_large(limit));
    }
    Ok(filled)
}

/// The rest of [`copy_hashing`] for a large library: this thread reads and
/// writes chunk `i + 1` while a second one hashes chunk `i` (each buffer
/// is hashed exactly as it was written, then handed back to be refilled).
fn copy_pipelined(
    source: &mut dyn Read,
    copy: &mut fs::File,
    limit: u64,
    mut hasher: blake3::Hasher,
    mut size: u64,
) -> io::Result<(Digest, u64)> {
    use std::sync::mpsc::sync_channel;
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(3);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(3);
        for _ in 0..3 {
            let _ = empty_tx.send(vec![0u8; PIPELINED_CHUNK]);
        }
        let worker = std::thread::Builder::new()
            .name("fnhost-hash".into())
            .spawn_scoped(scope, move || {
                for (buf, n) in full_rx {
                    hasher.update(&buf[..n]);
                    if empty_tx.send(buf).is_err() {
                        break;
                    }
                }
                hasher
            });
        let Ok(worker) = worker else {
            // No second thread: finish the copy, then hash it from its start.
            copy_rest(source, copy, limit, size)?;
            return hash_file(copy, limit);
        };
        let copied = (|| loop {
            let Ok(mut buf) = empty_rx.recv() else {
                return Err(io::Error::other("the hashing thread ended"));
            };
            let n = next_chunk(source, &mut buf, &mut size, limit)?;
            if n == 0 {
                return Ok(());
            }
            copy.write_all(&buf[..n])?;
            if full_tx.send((buf, n)).is_err() {
                return Err(io::Error::other("the hashing thread ended"));
            }
        })();
        drop(full_tx);
        let hasher = worker
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        copied.map(|()| (Digest(*hasher.finalize().as_bytes()), size))
    })
}

/// Checks every directory from `/` down to `dir` (canonical): owned by this
/// user or root, and sticky where others may write; `dir` and the
/// directories below the last root-owned one belong to this user and
/// nobody else may write them.
fn check_chain(dir: &Path) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let ancestors: Vec<&Path> = dir.ancestors().collect();
    for (i, path) in ancestors.iter().rev().enumerate() {
        let meta = fs::symlink_metadata(path)?;
        let mode = meta.permissions().mode();
        let leaf = i + 1 == ancestors.len();
        let others_may_write = mode & 0o022 != 0;
        let sticky = mode & 0o1000 != 0;
        let refused = if !meta.file_type().is_dir() {
            Some("is not a directory")
        } else if meta.uid() != uid && (leaf || meta.uid() != 0) {
            Some("belongs to another user")
        } else if others_may_write && (leaf || !sticky) {
            Some("is writable by other users")
        } else {
            None
        };
        if let Some(why) = refused {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "code cache {}: {} {why} (owner {}, mode {:o}); it must be owned by uid {uid} and not writable by group or others",
                    dir.display(),
                    path.display(),
                    meta.uid(),
                    mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_copy_is_named_by_what_was_written_and_an_unfinished_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path().join("c")).unwrap();
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut incoming = cache.incoming(bytes.len() as u64).unwrap();
        for piece in bytes.chunks(70_000) {
            incoming.write_all(piece).unwrap();
        }
        let stored = incoming.finish().unwrap();
        assert_eq!(stored.digest, Digest::of(&bytes));
        assert_eq!(stored.size, bytes.len() as u64);
        assert_eq!(stored.path, cache.path_of(&stored.digest));
        assert_eq!(fs::read(&stored.path).unwrap(), bytes);
        assert_eq!(
            fs::metadata(&stored.path).unwrap().permissions().mode() & 0o777,
            0o444
        );
        // Past its limit: refused; dropped unfinished: nothing left.
        let mut over = cache.incoming(10).unwrap();
        let e = over.write_all(&[1u8; 11]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        drop(over);
        let mut unfinished = cache.incoming(100).unwrap();
        unfinished.write_all(b"half").unwrap();
        drop(unfinished);
        let names: Vec<_> = fs::read_dir(&cache.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from(format!("{}.so", stored.digest))]
        );
    }

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
        // Below it, even a private directory is refused: whoever may write
        // `shared` may replace it.
        let below = shared.join("libs");
        fs::DirBuilder::new().mode(0o700).create(&below).unwrap();
        let e = CodeCache::new(&below).unwrap_err();
        assert!(e.to_string().contains("writable by other users"), "{e}");
    }

    #[test]
    fn a_directory_of_another_user_is_refused_anywhere_on_the_path() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to give a directory to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let planted = dir.path().join("fnhost-0");
        fs::DirBuilder::new().mode(0o755).create(&planted).unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        let e = CodeCache::new(planted.join("libs")).unwrap_err();
        assert!(e.to_string().contains("belongs to another user"), "{e}");
    }

    #[test]
    fn a_planted_file_of_the_right_size_is_rewritten_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path()).unwrap();
        let d = Digest::of(b"genuine!");
        let path = cache.path_of(&d);
        fs::write(&path, b"planted!").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        let e = cache.open_verified(&d).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        cache.store(&d, b"genuine!").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"genuine!");
        cache.open_verified(&d).unwrap();
    }

    #[test]
    fn a_symbolic_link_in_place_of_a_copy_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path().join("libs")).unwrap();
        let d = Digest::of(b"real");
        fs::write(dir.path().join("elsewhere"), b"real").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), cache.path_of(&d)).unwrap();
        assert!(cache.open_verified(&d).is_err());
        cache.store(&d, b"real").unwrap();
        assert!(!fs::symlink_metadata(cache.path_of(&d))
            .unwrap()
            .file_type()
            .is_symlink());
        cache.open_verified(&d).unwrap();
    }

    #[test]
    fn a_torn_copy_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path()).unwrap();
        let d = Digest::of(b"complete");
        let path = cache.store(&d, b"complete").unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(&path, b"comp").unwrap();
        cache.store(&d, b"complete").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"complete");
    }

    #[test]
    fn a_large_copy_is_hashed_as_written_and_a_limit_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CodeCache::new(dir.path()).unwrap();
        // Past the pipelined threshold, not a multiple of any chunk.
        let bytes: Vec<u8> = (0..PIPELINED_BYTES * 2 + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let stored = cache
            .copy_in(&mut io::Cursor::new(&bytes), None, u64::MAX)
            .unwrap();
        assert_eq!(stored.digest, Digest::of(&bytes));
        assert_eq!(stored.size, bytes.len() as u64);
        assert_eq!(fs::read(&stored.path).unwrap(), bytes);
        for limit in [1000, PIPELINED_BYTES + 1] {
            let e = cache
                .copy_in(&mut io::Cursor::new(&bytes), None, limit)
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
