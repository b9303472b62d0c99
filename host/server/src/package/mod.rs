//! Code packages: a zip archive (FunctionGraph's `code_type=zip`) holding the
//! `.so` at its root. Each package is stored once, content-addressed by the
//! SHA-256 of the zip, as one directory `<digest>/` holding `package.zip`
//! and the extracted tree `root/`.
//!
//! A package is checked before anything of it is kept: a valid zip, at
//! most [`MAX_ENTRIES`] entries and [`MAX_EXTRACTED_BYTES`] once extracted,
//! no entry outside its directory and no symbolic link, at least one `.so`
//! at its root, every root `.so` a complete ELF shared object for this
//! machine, and, when asked for, the handler's library among them. It is
//! extracted into a temporary directory, synced, and renamed into place in
//! one step: a crash at any point leaves either no package or a complete
//! one, and [`PackageStore::new`] removes what an interrupted upload left.
//! [`PackageStore::retain`] deletes the packages nothing references.
//!
//! In a cluster the local store is each node's cache, and the packages
//! themselves are in object storage too ([`remote`]): an accepted package
//! is written there before it is referenced, and [`PackageStore::fetch`]
//! downloads (and checks) one a node does not have yet.

pub mod remote;

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Largest total of extracted bytes accepted from one package.
pub const MAX_EXTRACTED_BYTES: u64 = 512 * 1024 * 1024;
/// Most entries accepted in one package.
pub const MAX_ENTRIES: usize = 10_000;
/// Longest entry name (a path inside the package) accepted, in bytes.
pub const MAX_ENTRY_NAME_BYTES: usize = 1024;
/// Longest part of an entry's name between slashes (Linux's `NAME_MAX`).
pub const MAX_ENTRY_COMPONENT_BYTES: usize = 255;
/// Largest library at a package's root (read whole to be checked before it
/// is kept; every other entry streams to disk).
pub const MAX_LIBRARY_BYTES: u64 = 256 * 1024 * 1024;
/// Deepest folder nesting accepted for an entry.
pub const MAX_ENTRY_DEPTH: usize = 32;
/// The zip's name inside a package directory.
const ZIP: &str = "package.zip";
/// The extracted tree's name inside a package directory.
const ROOT: &str = "root";
/// Prefix of directories being written.
const TMP: &str = ".tmp-";

/// A stored package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// SHA-256 (hex) of the zip: FunctionGraph's `digest`.
    pub digest: String,
    /// The directory it was extracted into (the function's code directory).
    pub dir: PathBuf,
    /// Size of the zip in bytes (`code_size`).
    pub size: u64,
    /// Whether the call that answered it extracted it just now: its tree
    /// is what this process wrote a moment ago, each file checked as it
    /// was written, so it is used without being verified again (as
    /// [`PackageStore::fetch`] verifies a stored one).
    pub extracted_now: bool,
}

/// Why a package was not stored. Nothing of it is left on disk.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The package itself is unacceptable (the uploader's mistake).
    #[error("invalid code package: {0}")]
    Invalid(String),
    /// The disk (or the quota) is full.
    #[error("the server's disk is full: {0}")]
    DiskFull(io::Error),
    /// Another I/O failure of the server.
    #[error("cannot store the code package: {0}")]
    Io(io::Error),
    /// The shared object storage could not be reached (or did not answer
    /// in time): retry later.
    #[error("the package store is unavailable: {0}")]
    Unavailable(io::Error),
}

impl From<io::Error> for PackageError {
    fn from(e: io::Error) -> PackageError {
        if is_disk_full(&e) {
            PackageError::DiskFull(e)
        } else {
            PackageError::Io(e)
        }
    }
}

/// Whether an I/O error says the disk or the quota is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Content-addressed package storage under one directory, and in object
/// storage shared with other nodes when given.
#[derive(Debug)]
pub struct PackageStore {
    root: PathBuf,
    remote: Option<remote::RemotePackages>,
    /// What this process extracted, by digest (see [`Manifest`]).
    extracted: parking_lot::Mutex<std::collections::HashMap<String, std::sync::Arc<Manifest>>>,
}

/// A package's tree as this process extracted it: each file's path under
/// the root, its size and its BLAKE3 digest, and the names at the root.
/// Kept in memory, which nothing outside this process can write, so a
/// package extracted here is verified by reading its files against it
/// ([`PackageStore::fetch`]) rather than against a second inflate of its
/// zip (which cost more than the extraction itself). The deploy that
/// extracted it does not verify it at all ([`Package::extracted_now`]).
#[derive(Debug, Default)]
pub(crate) struct Manifest {
    files: Vec<(PathBuf, u64, [u8; 32])>,
    roots: HashSet<PathBuf>,
    /// The libraries whose copy the code cache took as they were written
    /// ([`Stage`]), by their file's `stat` identity then.
    staged: std::collections::HashMap<PathBuf, Identity>,
}

/// A package as uploaded: the zip and its digest (the SHA-256 of the zip,
/// FunctionGraph's `digest`, which names it in the store).
#[derive(Debug, Clone)]
pub struct Upload {
    zip: Vec<u8>,
    digest: String,
}

/// From this many base64 characters, [`Upload::decode_base64`] hashes on
/// its thread while a second one decodes the next chunk.
const PIPELINED_BASE64: usize = 1 << 20;
/// Base64 characters decoded per chunk (a multiple of 4).
const BASE64_CHUNK: usize = 1 << 20;

impl Upload {
    /// A zip already in memory, hashed here.
    pub fn of(zip: Vec<u8>) -> Upload {
        let digest = PackageStore::digest_of(&zip);
        Upload { zip, digest }
    }

    /// Decodes a package sent as standard base64 (FunctionGraph's
    /// `func_code.file`; whitespace at either end ignored) and hashes it
    /// in the same pass: for a large package, a second thread decodes
    /// chunk after chunk while this one hashes each decoded chunk, so the
    /// hash costs little more than the decode (a 13.5 MB package: about
    /// 15 ms each, on this machine, one after the other).
    pub fn decode_base64(text: &str) -> Result<Upload, base64::DecodeError> {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        let text = text.trim().as_bytes();
        if text.len() < PIPELINED_BASE64 {
            return Ok(Upload::of(STANDARD.decode(text)?));
        }
        let mut zip = vec![0u8; text.len().div_ceil(4) * 3];
        let chunks = text.len().div_ceil(BASE64_CHUNK);
        let decoded = std::thread::scope(|scope| {
            let (ready, decoded) = std::sync::mpsc::sync_channel::<&[u8]>(4);
            let mut out = &mut zip[..];
            let decoder = scope.spawn(move || -> Option<usize> {
                let mut total = 0;
                for (i, chunk) in text.chunks(BASE64_CHUNK).enumerate() {
                    let last = i + 1 == chunks;
                    // Every chunk but the last is a multiple of 4 long and
                    // decodes to exactly three quarters of itself (padding
                    // inside the text is an error).
                    let room = if last { out.len() } else { chunk.len() / 4 * 3 };
                    let (here, rest) = std::mem::take(&mut out).split_at_mut(room);
                    let n = STANDARD.decode_slice(chunk, here).ok()?;
                    if !last && n != room {
                        return None;
                    }
                    total += n;
                    let here: &[u8] = here;
                    ready.send(&here[..n]).ok()?;
                    out = rest;
                }
                Some(total)
            });
            let mut hasher = Sha256::new();
            for chunk in decoded {
                hasher.update(chunk);
            }
            let total = decoder.join().ok().flatten();
            total.map(|n| (n, hex::encode(hasher.finalize())))
        });
        match decoded {
            Some((n, digest)) => {
                zip.truncate(n);
                Ok(Upload { zip, digest })
            }
            // Not valid base64: the whole text again, on one thread, for the
            // error and its exact offset.
            None => {
                let zip = STANDARD.decode(text)?;
                debug_assert!(false, "valid base64 the chunked decode refused");
                Ok(Upload::of(zip))
            }
        }
    }

    /// The zip's bytes.
    pub fn zip(&self) -> &[u8] {
        &self.zip
    }

    /// The zip's SHA-256 (hex).
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

/// Copy a package's handler library into the code cache as it is
/// extracted ([`fnhost::Runtime::library_copy`]): the deploy that follows
/// then maps that copy rather than reading and hashing the library again.
#[derive(Clone, Copy)]
pub struct Stage<'a> {
    /// The runtime whose code cache takes the copy.
    pub runtime: &'a fnhost::Runtime,
    /// The handler's library (`NAME` of `NAME.HANDLER`): `NAME.so` or
    /// `libNAME.so` at the package's root is copied.
    pub library: &'a str,
}

impl Stage<'_> {
    fn wants(&self, relative: &Path) -> bool {
        let name = relative.as_os_str().as_encoded_bytes();
        let library = self.library.as_bytes();
        name.strip_suffix(b".so")
            .is_some_and(|stem| stem == library || stem.strip_prefix(b"lib") == Some(library))
    }
}

/// A file's identity as `stat` gives it: any write to it moves its change
/// time (but one in the same clock tick as the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(meta: &fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// A library's copy into the code cache, written as it was extracted and
/// finished (named, and taken as the copy of its file) only once the
/// package is stored: a refused package leaves no copy.
pub(crate) struct Staged<'a> {
    copy: fnhost::LibraryCopy<'a>,
    file: fs::File,
    relative: PathBuf,
}

/// Where an extracted entry's bytes go: its file in the tree, and either a
/// hash of them or, for a library staged into the code cache, that copy
/// (which hashes them itself: the same BLAKE3 digest).
struct EntryWriter<'a> {
    file: fs::File,
    hasher: blake3::Hasher,
    copy: Option<fnhost::LibraryCopy<'a>>,
}

impl Write for EntryWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_all(buf)?;
        match &mut self.copy {
            Some(copy) => copy.write_all(buf)?,
            None => {
                self.hasher.update(buf);
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

static TEMP: AtomicU64 = AtomicU64::new(0);

fn is_digest(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl PackageStore {
    /// Uses (and creates) `root`, removing what interrupted uploads left
    /// (temporary directories, package directories without their zip) and
    /// moving packages of the older layout (`<digest>/` beside
    /// `<digest>.zip`) into the current one.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<PackageStore> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        let store = PackageStore {
            root,
            remote: None,
            extracted: parking_lot::Mutex::default(),
        };
        let mut older = Vec::new();
        for entry in fs::read_dir(&store.root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(TMP) {
                remove(&path);
            } else if let Some(digest) = name.strip_suffix(".zip").filter(|d| is_digest(d)) {
                older.push((digest.to_owned(), path));
            } else if is_digest(&name) && !path.join(ZIP).is_file() {
                // Torn (or of the older layout; restored from its zip below).
                remove(&path);
            }
        }
        for (digest, zip_path) in older {
            match fs::read(&zip_path) {
                Ok(zip) if hex::encode(Sha256::digest(&zip)) == digest => {
                    if let Err(e) = store.store(&zip, None) {
                        log::error!(target: "fnhost::server", "cannot move package {digest} to the current layout: {e}");
                        continue;
                    }
                }
                _ => {
                    log::warn!(target: "fnhost::server", "dropping package {digest}: its zip does not match its digest")
                }
            }
            let _ = fs::remove_file(&zip_path);
        }
        sync_dir(&store.root);
        Ok(store)
    }

    /// Also keeps every accepted package in `remote`, and takes the ones
    /// missing here from there.
    pub fn with_remote(mut self, remote: remote::RemotePackages) -> PackageStore {
        self.remote = Some(remote);
        self
    }

    /// The package stored under `digest`: here, or else downloaded from the
    /// shared object storage (checked against the digest, then stored here
    /// as an upload would be). `Ok(None)`: neither has it.
    ///
    /// A package found here is verified first, as every package to be
    /// mapped is: its zip against the digest, its extracted tree against
    /// the zip (a worker without the sandbox, or anything else that could
    /// write the data directory, may have changed either). A tree that
    /// differs is extracted again from the verified zip; a zip that
    /// differs is dropped and, in a cluster, downloaded again.
    pub fn fetch(&self, digest: &str) -> Result<Option<Package>, PackageError> {
        if let Some(p) = self.get(digest) {
            let known = self.extracted.lock().get(digest).cloned();
            match self.verify(&p, known.as_deref()) {
                Ok(found) => {
                    if let Some(manifest) = found {
                        self.extracted
                            .lock()
                            .insert(digest.to_owned(), std::sync::Arc::new(manifest));
                    }
                    return Ok(Some(p));
                }
                Err(why) => {
                    log::warn!(target: "fnhost::server", "code package {digest} was altered on disk ({why}): not used as it is");
                    match fs::read(p.dir.with_file_name(ZIP)) {
                        Ok(zip) if hex::encode(Sha256::digest(&zip)) == digest => {
                            self.extract_again(digest, &zip)?;
                            return Ok(self.get(digest));
                        }
                        _ => {
                            remove(&self.root.join(digest));
                            if self.remote.is_none() {
                                return Err(PackageError::Io(io::Error::other(format!(
                                    "code package {digest} was altered on disk and its zip no longer matches its digest: upload the code again"
                                ))));
                            }
                        }
                    }
                }
            }
        }
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        if !is_digest(digest) {
            return Ok(None);
        }
        match remote.get(digest).map_err(|e| match e.kind() {
            // Bytes that do not match their digest are not a matter of time.
            io::ErrorKind::InvalidData => PackageError::Io(e),
            _ => PackageError::Unavailable(e),
        })? {
            Some(zip) => self
                .store_here(&zip, &Self::digest_of(&zip), None, None)
                .map(Some),
            None => Ok(None),
        }
    }

    /// Checks a stored package: its zip hashes to its digest, and its
    /// extracted tree holds exactly the zip's files with the zip's bytes:
    /// against what this process extracted when it has the `manifest`,
    /// else against a second extraction of the zip.
    /// Answers, after a second extraction, the manifest of what it found
    /// (so that the next check of the package is the cheap one).
    fn verify(
        &self,
        package: &Package,
        manifest: Option<&Manifest>,
    ) -> Result<Option<Manifest>, String> {
        let zip = fs::read(package.dir.with_file_name(ZIP)).map_err(|e| e.to_string())?;
        if hex::encode(Sha256::digest(&zip)) != package.digest {
            return Err("its zip does not match its digest".into());
        }
        if let Some(manifest) = manifest {
            return verify_extracted(package, manifest, false).map(|()| None);
        }
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(&zip[..])).map_err(|e| e.to_string())?;
        let mut files = Vec::new();
        let mut expected = HashSet::new();
        for i in 0..archive.len().min(MAX_ENTRIES) {
            let mut entry = archive.by_index(i).map_err(|e| e.to_string())?;
            let Some(relative) = entry.enclosed_name() else {
                return Err("an entry outside the package".into());
            };
            if let Some(first) = relative.components().next() {
                expected.insert(PathBuf::from(first.as_os_str()));
            }
            if entry.is_dir() {
                continue;
            }
            let path = package.dir.join(&relative);
            let meta =
                fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", relative.display()))?;
            if !meta.file_type().is_file() || meta.len() != entry.size() {
                return Err(format!("{} changed", relative.display()));
            }
            let mut file = fs::File::open(&path).map_err(|e| e.to_string())?;
            let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
            let mut hasher = blake3::Hasher::new();
            loop {
                let n = read_full(&mut entry, &mut a).map_err(|e| e.to_string())?;
                let m = read_full(&mut file, &mut b[..n.max(1)]).map_err(|e| e.to_string())?;
                if n != m || a[..n] != b[..m] {
                    return Err(format!("{} changed", relative.display()));
                }
                if n == 0 {
                    break;
                }
                hasher.update(&a[..n]);
            }
            files.push((relative, entry.size(), *hasher.finalize().as_bytes()));
        }
        // Nothing planted beside them at the root (a libNAME.so beside
        // NAME.so would be loaded instead).
        for e in fs::read_dir(&package.dir)
            .map_err(|e| e.to_string())?
            .flatten()
        {
            let name = PathBuf::from(e.file_name());
            if !expected.contains(&name) {
                return Err(format!("{} was added", name.display()));
            }
        }
        Ok(Some(Manifest {
            files,
            roots: expected,
            staged: Default::default(),
        }))
    }

    /// Replaces a package's extracted tree with a fresh extraction of its
    /// (verified) zip.
    fn extract_again(&self, digest: &str, zip: &[u8]) -> Result<(), PackageError> {
        let dir = self.root.join(digest);
        let n = TEMP.fetch_add(1, Ordering::Relaxed);
        let fresh = self
            .root
            .join(format!("{TMP}{digest}-{}-{n}", std::process::id()));
        let digest = digest.to_owned();
        let stale = self
            .root
            .join(format!("{TMP}{digest}-{}-{n}-stale", std::process::id()));
        let result = (|| -> Result<Manifest, PackageError> {
            let (manifest, _) = extract(zip, &fresh, None)?;
            fs::rename(dir.join(ROOT), &stale)?;
            fs::rename(&fresh, dir.join(ROOT))?;
            sync_dir(&dir);
            Ok(manifest)
        })();
        remove(&fresh);
        remove(&stale);
        let manifest = result?;
        self.extracted
            .lock()
            .insert(digest, std::sync::Arc::new(manifest));
        Ok(())
    }

    /// Checks a package this process has just extracted
    /// ([`Package::extracted_now`]) before it is mapped, cheaply: its tree
    /// against what was written (the libraries the code cache took as they
    /// were written by their identity, every other file by its bytes), and
    /// nothing added at its root. `Err`: something changed it; the caller
    /// verifies it fully ([`fetch`](Self::fetch)), which extracts it again.
    pub fn verify_fresh(&self, package: &Package) -> Result<(), String> {
        let manifest = self
            .extracted
            .lock()
            .get(&package.digest)
            .cloned()
            .ok_or_else(|| "not extracted by this process".to_owned())?;
        verify_extracted(package, &manifest, true)
    }

    /// The package stored under `digest` here, if any.
    pub fn get(&self, digest: &str) -> Option<Package> {
        if !is_digest(digest) {
            return None;
        }
        let dir = self.root.join(digest);
        let size = fs::metadata(dir.join(ZIP)).ok()?.len();
        let root = dir.join(ROOT);
        root.is_dir().then(|| Package {
            digest: digest.to_owned(),
            dir: root,
            size,
            extracted_now: false,
        })
    }

    /// The zip bytes of a stored package.
    pub fn zip_bytes(&self, digest: &str) -> io::Result<Vec<u8>> {
        if !is_digest(digest) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such package"));
        }
        fs::read(self.root.join(digest).join(ZIP))
    }

    /// Checks and stores a zip (idempotent: the same bytes give the same
    /// package, also when two uploads of them race). `library`: the name
    /// of the handler's library (`NAME` of `NAME.HANDLER`), which must then
    /// be at the root as `NAME.so` or `libNAME.so`.
    /// With shared object storage, the package is written there too before
    /// this returns.
    pub fn store(&self, zip: &[u8], library: Option<&str>) -> Result<Package, PackageError> {
        self.store_digested(zip, &Self::digest_of(zip), library, None)
    }

    /// The digest a package of `zip` is stored under.
    pub fn digest_of(zip: &[u8]) -> String {
        hex::encode(Sha256::digest(zip))
    }

    /// [`store`](Self::store) with the zip's digest already computed
    /// ([`digest_of`](Self::digest_of)): a caller that must keep the package
    /// from garbage collection holds the digest before the package exists.
    pub fn store_digested(
        &self,
        zip: &[u8],
        digest: &str,
        library: Option<&str>,
        stage: Option<Stage<'_>>,
    ) -> Result<Package, PackageError> {
        let package = self.store_here(zip, digest, library, stage)?;
        if let Some(remote) = &self.remote {
            remote
                .put(&package.digest, zip)
                .map_err(PackageError::Unavailable)?;
        }
        Ok(package)
    }

    fn store_here(
        &self,
        zip: &[u8],
        digest: &str,
        library: Option<&str>,
        stage: Option<Stage<'_>>,
    ) -> Result<Package, PackageError> {
        if let Some(p) = self.get(digest) {
            if let Some(library) = library {
                check_library_present(&p.dir, library)?;
            }
            // Renamed into place by a concurrent upload that may not have
            // synced the directory yet: durable before it is referenced.
            sync_dir(&self.root);
            return Ok(p);
        }
        let n = TEMP.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!("{TMP}{digest}-{}-{n}", std::process::id()));
        let digest = digest.to_owned();
        let result = (|| -> Result<(Manifest, Vec<Staged<'_>>, bool), PackageError> {
            fs::create_dir_all(&tmp)?;
            // The zip is what makes the package durable: its tree is
            // verified against it whenever it is mapped, and extracted
            // again from it when it differs (a tree torn by a crash
            // included), so only the zip is synced. It is written first and
            // its writeback started, so that the disk writes it while the
            // tree is extracted; synced after. (Syncing it on a second
            // thread during the extraction cost more than it saved: ext4
            // held back the extraction's writes while it synced.)
            let zip_file = write_and_start_writeback(&tmp.join(ZIP), zip)?;
            let (manifest, staged) = extract(zip, &tmp.join(ROOT), stage)?;
            if let Some(library) = library {
                check_library_present(&tmp.join(ROOT), library)?;
            }
            zip_file.sync_all()?;
            sync_dir(&tmp);
            let extracted_now = match fs::rename(&tmp, self.root.join(&digest)) {
                Ok(()) => true,
                // Stored meanwhile by a concurrent upload of the same bytes.
                Err(_) if self.get(&digest).is_some() => {
                    remove(&tmp);
                    false
                }
                Err(e) => return Err(e.into()),
            };
            sync_dir(&self.root);
            Ok((manifest, staged, extracted_now))
        })();
        let extracted_now = match result {
            Ok((mut manifest, staged, extracted_now)) => {
                if extracted_now {
                    finish_staged(&mut manifest, staged);
                }
                self.extracted
                    .lock()
                    .insert(digest.clone(), std::sync::Arc::new(manifest));
                extracted_now
            }
            Err(e) => {
                remove(&tmp);
                return Err(e);
            }
        };
        self.get(&digest)
            .map(|p| Package { extracted_now, ..p })
            .ok_or_else(|| PackageError::Io(io::Error::other("package vanished after storing")))
    }

    /// Deletes every package whose digest is not in `keep`; returns how
    /// many were deleted.
    pub fn retain(&self, keep: &HashSet<String>) -> usize {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return 0;
        };
        let mut deleted = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_digest(&name) && !keep.contains(&name) {
                self.extracted.lock().remove(&name);
                remove(&entry.path());
                deleted += 1;
            }
        }
        if deleted > 0 {
            sync_dir(&self.root);
        }
        deleted
    }

    #[cfg(test)]
    /// The digests of every stored package.
    pub fn digests(&self) -> Vec<String> {
        fs::read_dir(&self.root)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| is_digest(n))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn remove(path: &Path) {
    if fs::remove_dir_all(path).is_err() {
        let _ = fs::remove_file(path);
    }
}

/// The handler's library, `NAME.so` or `libNAME.so`, at the root of `dir`.
fn check_library_present(dir: &Path, library: &str) -> Result<(), PackageError> {
    let names = [format!("{library}.so"), format!("lib{library}.so")];
    if names.iter().any(|n| dir.join(n).is_file()) {
        return Ok(());
    }
    let hint = fnhost::Entry {
        library: library.to_owned(),
        symbol: String::new(),
    }
    .miss_hint(dir)
    .map(|h| format!("; {h}"))
    .unwrap_or_default();
    Err(PackageError::Invalid(format!(
        "the handler's library is not at the root of the package: looked for {}{hint}",
        names.join(" and ")
    )))
}

/// Writes `bytes` to a new file at `path` and asks the kernel to start
/// writing them to the disk now (`sync_file_range`, which waits for
/// nothing and commits nothing: the caller still syncs the file).
fn write_and_start_writeback(path: &Path, bytes: &[u8]) -> io::Result<fs::File> {
    use std::os::fd::AsRawFd;
    let mut f = fs::File::create(path)?;
    write_in_chunks(&mut f, bytes)?;
    // SAFETY: sync_file_range reads no memory of ours; the descriptor is
    // open for the call. A file system that cannot (or an error) only
    // leaves the writeback to the later sync.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
    Ok(f)
}

/// Largest `write` a file gets from memory: on ext4 (this machine's disk,
/// under a VM) one `write` of 20 MB into a new file took 66-72 ms where
/// the same bytes in writes of 1 MB or less took 9-13 ms (and Python's
/// `zipfile`, the deploy benchmark's floor, writes in 64 KiB pieces).
const WRITE_CHUNK: usize = 256 * 1024;

/// Why [`copy_entry`] stopped.
enum CopyFailure {
    /// Reading the source failed (for an entry: the package is corrupt).
    Read(io::Error),
    /// Writing failed (the server's disk).
    Write(io::Error),
}

/// From this many bytes actually inflated (not what the zip says), the
/// rest of an entry is written on a second thread while the next piece is
/// inflated ([`copy_pipelined`]): an entry that only claims to be large
/// costs no thread and no pieces.
const PIPELINED_ENTRY_BYTES: u64 = 4 << 20;

/// Pieces in flight in [`copy_pipelined`], each of this size.
const PIPELINED_PIECES: usize = 4;
const PIPELINED_PIECE: usize = 1 << 20;

/// Copies an entry through `buffer` (writes of its size: see
/// [`WRITE_CHUNK`]) for its first [`PIPELINED_ENTRY_BYTES`], then, when
/// there is more, with [`copy_pipelined`] and `pieces` (allocated once per
/// extraction, handed back for the next entry); answers the bytes copied.
fn copy_entry(
    from: &mut impl Read,
    to: &mut (impl Write + Send),
    buffer: &mut [u8],
    pieces: &mut Vec<Vec<u8>>,
) -> Result<u64, CopyFailure> {
    let mut total = 0u64;
    while total < PIPELINED_ENTRY_BYTES {
        let n = read_full(from, buffer).map_err(CopyFailure::Read)?;
        if n == 0 {
            return Ok(total);
        }
        to.write_all(&buffer[..n]).map_err(CopyFailure::Write)?;
        total += n as u64;
    }
    Ok(total + copy_pipelined(from, to, pieces)?)
}

/// A copy on two threads: this one reads (for a zip entry:
/// inflates) piece `i + 1` while a second one writes piece `i` (to the
/// package's tree and, for the handler's library, the code cache, hashed).
/// The pieces are taken from `pieces` (allocated when missing) and put
/// back when the copy succeeds.
fn copy_pipelined(
    from: &mut impl Read,
    to: &mut (impl Write + Send),
    pieces: &mut Vec<Vec<u8>>,
) -> Result<u64, CopyFailure> {
    use std::sync::mpsc::sync_channel;
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(PIPELINED_PIECES);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(PIPELINED_PIECES);
        for _ in 0..PIPELINED_PIECES {
            let piece = pieces.pop().unwrap_or_else(|| vec![0u8; PIPELINED_PIECE]);
            let _ = empty_tx.send(piece);
        }
        let writer = scope.spawn(move || -> io::Result<()> {
            for (piece, n) in full_rx {
                write_in_chunks(to, &piece[..n])?;
                if empty_tx.send(piece).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut total = 0u64;
        let read = (|| loop {
            // The writer failed (and said why) when it hands nothing back.
            let Ok(mut piece) = empty_rx.recv() else {
                return Ok(None);
            };
            let n = read_full(from, &mut piece).map_err(CopyFailure::Read)?;
            if n == 0 {
                return Ok(Some(piece));
            }
            total += n as u64;
            if full_tx.send((piece, n)).is_err() {
                return Ok(None);
            }
        })();
        drop(full_tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the writing thread panicked")));
        let last = read?;
        written.map_err(CopyFailure::Write)?;
        pieces.extend(last);
        pieces.extend(empty_rx.try_iter());
        Ok(total)
    })
}

/// Writes `bytes` whole, in [`WRITE_CHUNK`] pieces.
fn write_in_chunks(file: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    for chunk in bytes.chunks(WRITE_CHUNK) {
        file.write_all(chunk)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn invalid(message: impl Into<String>) -> PackageError {
    PackageError::Invalid(message.into())
}

/// Reads until `buf` is full or the end.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Extracts `zip` into `dir` (created), refusing unsafe, oversized or
/// incomplete content; answers what it wrote. Nothing is synced (see the
/// end).
pub(crate) fn extract<'a>(
    zip: &[u8],
    dir: &Path,
    stage: Option<Stage<'a>>,
) -> Result<(Manifest, Vec<Staged<'a>>), PackageError> {
    let mut manifest = Manifest::default();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| invalid(format!("not a valid zip archive: {e}")))?;
    if archive.len() > MAX_ENTRIES {
        return Err(invalid(format!(
            "{} entries, more than {MAX_ENTRIES}",
            archive.len()
        )));
    }
    // Two entries of one name: which one a tool extracts differs (this
    // reader keeps one, `unzip` asks, others write both in turn), so what
    // an author inspected might not be what runs.
    if archive.has_duplicate_names() {
        return Err(invalid(
            "an entry name appears twice: the same name twice cannot be extracted one way",
        ));
    }
    fs::create_dir_all(dir)?;
    let mut total = 0u64;
    let mut libraries = 0;
    let mut buffer = vec![0u8; WRITE_CHUNK];
    // The pieces of large entries' pipelined copies, reused entry to entry.
    let mut pieces = Vec::new();
    // The handler's library's copies into the code cache, finished once
    // the package is accepted, each with its file in the tree.
    let mut staged = Vec::new();
    // The first library below the root, for the answer when none is at it.
    let mut nested: Option<String> = None;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| invalid(format!("entry {i}: {e}")))?;
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("#{i}"));
        // A name the filesystem would refuse (too long, too deep) is the
        // package's fault, answered as such before anything is created.
        if name.len() > MAX_ENTRY_NAME_BYTES {
            return Err(invalid(format!(
                "entry {i}'s name is {} bytes, more than {MAX_ENTRY_NAME_BYTES}",
                name.len()
            )));
        }
        let depth = name.split(['/', '\\']).filter(|c| !c.is_empty()).count();
        if depth > MAX_ENTRY_DEPTH {
            return Err(invalid(format!(
                "entry {i} is {depth} folders deep, more than {MAX_ENTRY_DEPTH}"
            )));
        }
        if let Some(long) = name
            .split(['/', '\\'])
            .find(|c| c.len() > MAX_ENTRY_COMPONENT_BYTES)
        {
            return Err(invalid(format!(
                "entry {i} has a name part of {} bytes, more than {MAX_ENTRY_COMPONENT_BYTES}",
                long.len()
            )));
        }
        let relative = entry.enclosed_name().ok_or_else(|| {
            invalid(format!(
                "entry `{name}` would be written outside the package directory"
            ))
        })?;
        if entry.is_symlink() {
            return Err(invalid(format!("entry `{name}` is a symbolic link")));
        }
        if let Some(first) = relative.components().next() {
            manifest.roots.insert(PathBuf::from(first.as_os_str()));
        }
        let target = dir.join(&relative);
        // A file and a folder of the same name (`x` and `x/y`) are the
        // package's fault, not the server's.
        let clash = |e: io::Error| -> PackageError {
            match e.kind() {
                io::ErrorKind::AlreadyExists
                | io::ErrorKind::IsADirectory
                | io::ErrorKind::NotADirectory => invalid(format!(
                    "entry {i} clashes with another entry: the same name twice, or a file and a folder of the same name"
                )),
                _ => e.into(),
            }
        };
        if entry.is_dir() {
            fs::create_dir_all(&target).map_err(clash)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(clash)?;
        }
        let limit = MAX_EXTRACTED_BYTES.saturating_sub(total) + 1;
        let library = relative.components().count() == 1 && name.ends_with(".so");
        if !library && name.ends_with(".so") && nested.is_none() {
            nested = Some(name.clone());
        }
        // Every entry streams to disk, hashed as it is written: a bomb costs
        // the server its extraction limit in disk, never in memory. A root
        // library is also at most MAX_LIBRARY_BYTES, and checked (from the
        // file) before anything is kept.
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(clash)?;
        let copy = match stage.filter(|s| library && s.wants(&relative)) {
            Some(stage) => Some(stage.runtime.library_copy(MAX_LIBRARY_BYTES + 1)?),
            None => None,
        };
        let mut file = EntryWriter {
            file,
            hasher: blake3::Hasher::new(),
            copy,
        };
        let cap = if library {
            limit.min(MAX_LIBRARY_BYTES + 1)
        } else {
            limit
        };
        let copied = copy_entry(
            &mut (&mut entry).take(cap),
            &mut file,
            &mut buffer,
            &mut pieces,
        );
        let written = copied.map_err(|e| match e {
            CopyFailure::Read(e) => invalid(format!("entry `{name}`: {e}")),
            CopyFailure::Write(e) => PackageError::from(e),
        })?;
        if library {
            if written > MAX_LIBRARY_BYTES {
                return Err(invalid(format!(
                    "`{name}` is more than {MAX_LIBRARY_BYTES} bytes"
                )));
            }
            if written < limit {
                use std::os::unix::fs::FileExt;
                let f = &file.file;
                fnhost::check_shared_object_read(written, &mut |at, buf| f.read_exact_at(buf, at))
                    .map_err(|e| invalid(format!("`{name}` is not a loadable library: {e}")))?;
                libraries += 1;
            }
        }
        let digest = match file.copy {
            // Kept unfinished (a temporary file the cache deletes when it
            // is dropped) until the whole package is accepted.
            Some(copy) => {
                let digest = copy.digest().0;
                staged.push(Staged {
                    copy,
                    file: file.file,
                    relative: relative.clone(),
                });
                digest
            }
            None => *file.hasher.finalize().as_bytes(),
        };
        manifest.files.push((relative.clone(), written, digest));
        total += written;
        if total > MAX_EXTRACTED_BYTES {
            return Err(invalid(format!(
                "more than {MAX_EXTRACTED_BYTES} bytes once extracted"
            )));
        }
    }
    if libraries == 0 {
        return Err(invalid(match nested {
            // A zip of a directory rather than of its contents.
            Some(name) => format!(
                "no .so file at the root of the package; `{name}` is in a subfolder: zip the library itself (`fnhost package` does)"
            ),
            None => "no .so file at the root of the package".to_owned(),
        }));
    }
    // Not synced: the tree is verified against the package's synced zip
    // whenever it is mapped (`PackageStore::fetch`), and extracted again
    // from it when a crash tore it.
    Ok((manifest, staged))
}

/// Finishes the copies into the code cache of a package just stored, each
/// taken as the copy of its file in the tree, and records each file's
/// identity in `manifest`. A copy that cannot be finished is only logged:
/// the load then copies the library itself.
fn finish_staged(manifest: &mut Manifest, staged: Vec<Staged<'_>>) {
    for Staged {
        copy,
        file,
        relative,
    } in staged
    {
        let identity = file.metadata().map(|m| Identity::of(&m));
        match (copy.finish(&file), identity) {
            (Ok(_), Ok(identity)) => {
                manifest.staged.insert(relative, identity);
            }
            (Err(e), _) => {
                log::warn!(target: "fnhost::server", "the code cache did not take a library's copy ({e}): it is copied when loaded")
            }
            (_, Err(e)) => {
                log::warn!(target: "fnhost::server", "cannot stat an extracted library ({e}): it is copied when loaded")
            }
        }
    }
}

/// Checks a package's tree against what this process extracted: the same
/// files with the same bytes, and nothing else at its root.
///
/// With `by_identity`, a library whose copy the code cache took as it was
/// written is checked by its `stat` identity instead of its bytes: a load
/// of a file of that identity maps the copy (which holds the bytes
/// extracted from the zip, whatever happened to the file since), and a
/// load of any other file is one this check refuses first.
fn verify_extracted(
    package: &Package,
    manifest: &Manifest,
    by_identity: bool,
) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut buf = vec![0u8; 256 * 1024];
    for (relative, size, digest) in &manifest.files {
        let changed = || format!("{} changed", relative.display());
        let path = package.dir.join(relative);
        if let Some(identity) = manifest.staged.get(relative).filter(|_| by_identity) {
            let meta =
                fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", relative.display()))?;
            if !meta.file_type().is_file() || Identity::of(&meta) != *identity {
                return Err(changed());
            }
            continue;
        }
        let mut file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("{}: {e}", relative.display()))?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.file_type().is_file() || meta.len() != *size {
            return Err(changed());
        }
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > *size {
                return Err(changed());
            }
            hasher.update(&buf[..n]);
        }
        if total != *size || hasher.finalize().as_bytes() != digest {
            return Err(changed());
        }
    }
    for e in fs::read_dir(&package.dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = PathBuf::from(e.file_name());
        if !manifest.roots.contains(&name) {
            return Err(format!("{} was added", name.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        for (name, data) in files {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        out.into_inner()
    }

    /// A zip of two entries named `name` (ending in `.so`), `first` and
    /// then `second` (the writer refuses the second: written under another
    /// name of the same length, renamed in the bytes).
    fn twice(name: &str, first: &[u8], second: &[u8]) -> Vec<u8> {
        let other = format!("{}_", &name[..name.len() - 1]);
        let zip = zip_of(&[(name, first), (&other, second)]);
        let (from, to) = (other.as_bytes(), name.as_bytes());
        let mut out = zip.clone();
        for at in 0..zip.len() - from.len() {
            if &zip[at..at + from.len()] == from {
                out[at..at + from.len()].copy_from_slice(to);
            }
        }
        out
    }

    /// A complete shared object: the C library this test runs with.
    fn library() -> Vec<u8> {
        let maps = fs::read_to_string("/proc/self/maps").unwrap();
        let path = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.contains("libc.so"))
            .expect("a C library is mapped");
        fs::read(path).unwrap()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_large_package_decodes_and_hashes_as_one_pass_would() {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        // Past the pipelined threshold, at several lengths around the
        // chunk's size and with each amount of padding.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut bytes = Vec::new();
        for _ in 0..(3 * BASE64_CHUNK) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(state as u8);
        }
        for len in [
            BASE64_CHUNK / 4 * 3,
            BASE64_CHUNK / 4 * 3 + 1,
            BASE64_CHUNK / 4 * 3 + 2,
            BASE64_CHUNK / 2 * 3,
            2 * BASE64_CHUNK + 7,
            bytes.len(),
        ] {
            let zip = &bytes[..len];
            let text = format!(" {}\n", STANDARD.encode(zip));
            let upload = Upload::decode_base64(&text).unwrap();
            assert_eq!(upload.zip(), zip, "{len} bytes");
            assert_eq!(upload.digest(), PackageStore::digest_of(zip), "{len} bytes");
        }
        // Refused as the one-pass decoder refuses them, with its error:
        // a bad byte in a later chunk, padding inside the text, a length
        // that is not a multiple of 4.
        let text = STANDARD.encode(&bytes);
        let mut bad_byte = text.clone().into_bytes();
        bad_byte[BASE64_CHUNK + 5] = b'*';
        let mut inner_padding = text.clone().into_bytes();
        inner_padding[BASE64_CHUNK - 1] = b'=';
        inner_padding[BASE64_CHUNK - 2] = b'=';
        let short = text[..text.len() - 1].to_owned();
        for bad in [
            String::from_utf8(bad_byte).unwrap(),
            String::from_utf8(inner_padding).unwrap(),
            short,
        ] {
            let expected = STANDARD.decode(bad.as_bytes()).unwrap_err();
            assert_eq!(Upload::decode_base64(&bad).unwrap_err(), expected);
        }
    }

    #[test]
    fn stores_once_by_digest_and_extracts_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::new(dir.path()).unwrap();
        let lib = library();
        let zip = zip_of(&[("echo.so", &lib), ("data/config.json", b"{}")]);
        let p = store.store(&zip, Some("echo")).unwrap();
        assert!(p.extracted_now);
        assert_eq!(p.digest.len(), 64);
        assert_eq!(fs::read(p.dir.join("echo.so")).unwrap(), lib);
        assert_eq!(fs::read(p.dir.join("data/config.json")).unwrap(), b"{}");
        // Stored already: not extracted again (and so verified when used).
        let again = store.store(&zip, None).unwrap();
        assert!(!again.extracted_now);
        assert_eq!(
            again,
            Package {
                extracted_now: false,
                ..p.clone()
            }
        );
        assert_eq!(store.zip_bytes(&p.digest).unwrap(), zip);
        assert_eq!(
            leftovers(dir.path()),
            std::slice::from_ref(&p.digest),
            "one directory"
        );
        // Stored, but not for a handler whose library it lacks.
        let e = store.store(&zip, Some("orders")).unwrap_err();
        assert!(e.to_string().contains("orders.so and liborders.so"), "{e}");
        // A zip of a directory: the library one level down, and the answer
        // says so (naming only the zip's own names).
        let nested = zip_of(&[("target/release/libshop.so", &lib)]);
        let e = store.store(&nested, Some("shop")).unwrap_err().to_string();
        assert!(
            e.contains("`target/release/libshop.so` is in a subfolder"),
            "{e}"
        );
        // Another library at the root, the handler's one level down.
        let beside = zip_of(&[("echo.so", &lib), ("release/libshop.so", &lib)]);
        let e = store.store(&beside, Some("shop")).unwrap_err().to_string();
        assert!(e.contains("release/libshop.so is in a subfolder"), "{e}");
        assert!(
            !e.contains(&dir.path().to_string_lossy().into_owned()),
            "{e}"
        );
    }

    /// Stores `zip` for a handler in `echo.so`, staging its library.
    fn store_staged(
        store: &PackageStore,
        zip: &[u8],
        stage: Stage<'_>,
    ) -> Result<Package, PackageError> {
        store.store_digested(
            zip,
            &PackageStore::digest_of(zip),
            Some("echo"),
            Some(stage),
        )
    }

    #[test]
    fn the_handlers_library_is_copied_into_the_code_cache_as_it_is_extracted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let runtime = fnhost::Runtime::new(fnhost::RuntimeConfig {
            cache_dir: Some(cache.clone()),
            ..fnhost::RuntimeConfig::default()
        })
        .unwrap();
        let store = PackageStore::new(dir.path().join("code")).unwrap();
        let copies = || -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&cache)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let lib = library();
        let helper = [&lib[..], b"helper"].concat();
        let stage = Stage {
            runtime: &runtime,
            library: "echo",
        };
        // Only the handler's library (`libecho.so` here), not the other
        // library beside it.
        let zip = zip_of(&[("libecho.so", &lib), ("helper.so", &helper)]);
        let p = store_staged(&store, &zip, stage).unwrap();
        let copy = format!("{}.so", blake3::hash(&lib).to_hex());
        assert_eq!(copies(), vec![copy.clone()]);
        // A load finds that copy (this test's library is no plugin: it is
        // refused once mapped) and makes no other.
        assert!(runtime.open_library(&p.dir.join("libecho.so")).is_err());
        // Checked cheaply before it is mapped, and found changed when a
        // library is replaced, planted beside it or a data file rewritten.
        assert!(p.extracted_now);
        assert_eq!(store.verify_fresh(&p), Ok(()));
        let planted = p.dir.join("echo.so");
        fs::write(&planted, &helper).unwrap();
        assert!(store
            .verify_fresh(&p)
            .unwrap_err()
            .contains("echo.so was added"));
        fs::remove_file(&planted).unwrap();
        let replacement = p.dir.join("replacement");
        fs::write(&replacement, &helper).unwrap();
        fs::rename(&replacement, p.dir.join("libecho.so")).unwrap();
        assert!(store
            .verify_fresh(&p)
            .unwrap_err()
            .contains("libecho.so changed"));
        assert_eq!(copies(), vec![copy.clone()]);
        // A refused package leaves no copy: not a library, or a bad zip
        // entry after it.
        let junk = zip_of(&[("echo.so", b"text, not a library")]);
        let e = store_staged(&store, &junk, stage).unwrap_err();
        assert!(e.to_string().contains("not a loadable library"), "{e}");
        let other = [&lib[..], b"other"].concat();
        let second = zip_of(&[("echo.so", &other), ("libecho.so", b"text")]);
        store_staged(&store, &second, stage).unwrap_err();
        let outside = zip_of(&[("echo.so", &other), ("../evil", b"x")]);
        store_staged(&store, &outside, stage).unwrap_err();
        assert_eq!(copies(), vec![copy]);
    }

    #[test]
    fn a_large_entry_is_written_whole_on_a_second_thread_and_its_failures_are_told_apart() {
        let bytes: Vec<u8> = (0..(5 * PIPELINED_PIECE + 12_345))
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        let mut out = Vec::new();
        let mut pieces = Vec::new();
        let n = copy_entry(&mut &bytes[..], &mut out, &mut [0u8; 4096], &mut pieces)
            .ok()
            .unwrap();
        assert_eq!(n, bytes.len() as u64);
        assert!(out == bytes, "the copy differs");
        // The pieces are handed back for the next entry; an entry that only
        // claims to be large (short in fact) needs none of them.
        assert_eq!(pieces.len(), PIPELINED_PIECES);
        let mut short = Vec::new();
        let mut none = Vec::new();
        copy_entry(&mut &bytes[..1000], &mut short, &mut [0u8; 4096], &mut none)
            .ok()
            .unwrap();
        assert!(short == bytes[..1000] && none.is_empty());
        // A source that fails partway: a read failure (the package's).
        struct Failing<'a>(&'a [u8]);
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::other("corrupt deflate stream"));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let failed = copy_pipelined(
            &mut Failing(&bytes[..3 * PIPELINED_PIECE]),
            &mut Vec::new(),
            &mut Vec::new(),
        );
        assert!(matches!(failed, Err(CopyFailure::Read(_))));
        // A disk that fills partway: a write failure (the server's), and
        // the reader stops rather than waiting for pieces back.
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(io::Error::from_raw_os_error(libc::ENOSPC));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let failed = copy_pipelined(
            &mut &bytes[..],
            &mut Full(2 * PIPELINED_PIECE),
            &mut Vec::new(),
        );
        assert!(matches!(failed, Err(CopyFailure::Write(e)) if is_disk_full(&e)));
    }

    #[test]
    fn refused_packages_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::new(dir.path().join("code")).unwrap();
        let lib = library();
        // Another library as loadable: the same with a byte after it.
        let longer = [&lib[..], b"\0"].concat();
        let refused = [
            (
                zip_of(&[("../evil.so", &lib)]),
                "outside the package directory",
            ),
            (b"PK\x03\x04 truncated".to_vec(), "not a valid zip"),
            (zip_of(&[("lib/inner.so", &lib)]), "no .so file at the root"),
            (
                zip_of(&[("echo.so", b"this is text")]),
                "not a loadable library",
            ),
            (
                zip_of(&[("echo.so", &lib[..lib.len() / 2])]),
                "not a loadable library",
            ),
            (zip_of(&[("other.so", &lib)]), "echo.so and libecho.so"),
            // Once answered 500: the filesystem refused them.
            (
                zip_of(&[("echo.so", &lib), (&"a".repeat(60_000), b"x")]),
                "more than 1024",
            ),
            (
                zip_of(&[("echo.so", &lib), (&"d/".repeat(100), b"")]),
                "folders deep",
            ),
            (
                zip_of(&[("echo.so", &lib), (&format!("d/{}", "n".repeat(300)), b"x")]),
                "name part of 300 bytes",
            ),
            // Once answered 500 (File exists, Is a directory).
            (
                zip_of(&[("echo.so", &lib), ("x", b"1"), ("x/y", b"2")]),
                "a file and a folder of the same name",
            ),
            (
                zip_of(&[("echo.so", &lib), ("x/y", b"2"), ("x", b"1")]),
                "a file and a folder of the same name",
            ),
            // Two entries of one name: the second never replaces the
            // first (the library checked is the library kept).
            (twice("echo.so", &lib, &longer), "the same name twice"),
        ];
        for (zip, why) in refused {
            let e = store.store(&zip, Some("echo")).unwrap_err();
            assert!(matches!(e, PackageError::Invalid(_)), "{e}");
            assert!(e.to_string().contains(why), "{why}: {e}");
        }
        assert!(leftovers(&dir.path().join("code")).is_empty());
        // An absolute name is confined to the package directory.
        let p = store
            .store(
                &zip_of(&[("/etc/fnhost-evil.so", &lib), ("ok.so", &lib)]),
                None,
            )
            .unwrap();
        assert!(p.dir.join("etc/fnhost-evil.so").is_file());
        assert!(!Path::new("/etc/fnhost-evil.so").exists());
    }

    #[test]
    fn interrupted_uploads_and_the_older_layout_are_tidied_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("code");
        let lib = library();
        let zip = zip_of(&[("echo.so", &lib)]);
        let digest = hex::encode(Sha256::digest(&zip));
        fs::create_dir_all(code.join(format!(".tmp-{digest}-1-0/root"))).unwrap();
        // A package directory whose zip never landed (the older layout's
        // torn state), and one of the older layout whose zip did.
        let torn = "ab".repeat(32);
        fs::create_dir_all(code.join(&torn)).unwrap();
        fs::create_dir_all(code.join(&digest)).unwrap();
        fs::write(code.join(&digest).join("echo.so"), &lib).unwrap();
        fs::write(code.join(format!("{digest}.zip")), &zip).unwrap();
        let store = PackageStore::new(&code).unwrap();
        assert_eq!(leftovers(&code), std::slice::from_ref(&digest));
        let p = store.get(&digest).expect("moved to the current layout");
        assert_eq!(fs::read(p.dir.join("echo.so")).unwrap(), lib);
        // Storing the same bytes again works (it once failed with
        // "Directory not empty").
        assert_eq!(store.store(&zip, Some("echo")).unwrap(), p);
    }

    #[test]
    fn a_package_altered_on_disk_is_extracted_again_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::new(dir.path()).unwrap();
        let lib = library();
        let zip = zip_of(&[("victim.so", &lib)]);
        let p = store.store(&zip, Some("victim")).unwrap();
        // What a worker that could write the data directory would do:
        // another function's library replaced, a second one planted.
        let mut planted = lib.clone();
        planted.extend_from_slice(b"attacker");
        fs::set_permissions(
            p.dir.join("victim.so"),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        fs::write(p.dir.join("victim.so"), &planted).unwrap();
        fs::write(p.dir.join("libvictim.so"), &planted).unwrap();
        let again = store.fetch(&p.digest).unwrap().unwrap();
        assert_eq!(fs::read(again.dir.join("victim.so")).unwrap(), lib);
        assert!(!again.dir.join("libvictim.so").exists());
        assert!(store.verify(&again, None).is_ok());
        // The zip itself changed: nothing of it is trusted.
        fs::write(
            again.dir.with_file_name(ZIP),
            zip_of(&[("victim.so", &planted)]),
        )
        .unwrap();
        let e = store.fetch(&p.digest).unwrap_err().to_string();
        assert!(e.contains("upload the code again"), "{e}");
        assert!(store.get(&p.digest).is_none());
    }

    #[test]
    fn a_tree_this_process_extracted_is_checked_against_what_it_wrote() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::new(dir.path()).unwrap();
        let lib = library();
        let zip = zip_of(&[("victim.so", &lib), ("data/x.txt", b"hello")]);
        let p = store.store(&zip, Some("victim")).unwrap();
        assert!(store.extracted.lock().contains_key(&p.digest));
        assert_eq!(store.fetch(&p.digest).unwrap().unwrap().dir, p.dir);
        // A byte changed in a nested file, its size kept: caught, and the
        // tree extracted again from the zip.
        let nested = p.dir.join("data/x.txt");
        fs::set_permissions(&nested, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&nested, b"hellO").unwrap();
        assert!(store
            .verify(&p, store.extracted.lock().get(&p.digest).map(|m| &**m))
            .is_err());
        let again = store.fetch(&p.digest).unwrap().unwrap();
        assert_eq!(fs::read(again.dir.join("data/x.txt")).unwrap(), b"hello");
        // A file swapped for a symbolic link to the same bytes: refused too.
        let victim = again.dir.join("victim.so");
        let elsewhere = dir.path().join("elsewhere.so");
        fs::write(&elsewhere, &lib).unwrap();
        fs::remove_file(&victim).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &victim).unwrap();
        let again = store.fetch(&p.digest).unwrap().unwrap();
        assert!(fs::symlink_metadata(again.dir.join("victim.so"))
            .unwrap()
            .file_type()
            .is_file());
        // A restarted server has no manifest: the zip is extracted again to
        // compare with, and a change is still caught.
        let restarted = PackageStore::new(dir.path()).unwrap();
        assert!(!restarted.extracted.lock().contains_key(&p.digest));
        let mut flipped = lib.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let victim = again.dir.join("victim.so");
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&victim, &flipped).unwrap();
        let again = restarted.fetch(&p.digest).unwrap().unwrap();
        assert_eq!(fs::read(again.dir.join("victim.so")).unwrap(), lib);
        // An intact package checked the slow way after a restart is
        // checked the cheap way from then on, which still catches a change.
        let restarted = PackageStore::new(dir.path()).unwrap();
        assert!(restarted.fetch(&p.digest).unwrap().is_some());
        assert!(restarted.extracted.lock().contains_key(&p.digest));
        let victim = again.dir.join("victim.so");
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&victim, &flipped).unwrap();
        let again = restarted.fetch(&p.digest).unwrap().unwrap();
        assert_eq!(fs::read(again.dir.join("victim.so")).unwrap(), lib);
    }

    #[test]
    fn unreferenced_packages_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::new(dir.path()).unwrap();
        let lib = library();
        let a = store.store(&zip_of(&[("a.so", &lib)]), None).unwrap();
        let b = store.store(&zip_of(&[("b.so", &lib)]), None).unwrap();
        assert_eq!(store.retain(&HashSet::from([a.digest.clone()])), 1);
        assert!(store.get(&a.digest).is_some());
        assert!(store.get(&b.digest).is_none());
        assert_eq!(store.digests(), [a.digest]);
    }

    #[test]
    fn a_full_disk_is_told_apart_from_a_bad_package() {
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(matches!(
            PackageError::from(full),
            PackageError::DiskFull(_)
        ));
        let other = io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(PackageError::from(other), PackageError::Io(_)));
        // Writing to a full device is such an error.
        let e = write_and_start_writeback(Path::new("/dev/full"), b"x").unwrap_err();
        assert!(is_disk_full(&e), "{e}");
    }
}
