//! Opens a library as fnhost code: validate the file, copy it to its content
//! address, load that copy once in a throwaway worker process (the
//! pre-flight: its constructors run there, not here), then `dlopen` the
//! copy, read and check the descriptor, and only then hand out its handlers.
//!
//! A library whose pre-flight or check fails is never mapped here (or is
//! closed again). A library that passed is kept mapped
//! for the life of the process: a Rust cdylib that has run cannot be unloaded
//! soundly on glibc (thread-local and pthread-key destructors may still point
//! into it), so the loader never `dlclose`s it. Loading the same bytes again
//! returns the same [`Library`].

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use fnhost_api::abi::{self, Descriptor};
use parking_lot::Mutex;

use crate::abi_check::{check_descriptor, CheckError, PluginInfo};
use crate::code_cache::{CodeCache, Digest, Stored};
use crate::elf;
use crate::error::LoadError;
use crate::isolation::preflight::{Failure, Preflight};

/// A checked, mapped plugin library: the code shared by every function and
/// generation built from the same bytes. Lives as long as the process.
pub struct Library {
    digest: Digest,
    source: PathBuf,
    mapped_path: PathBuf,
    size: u64,
    info: PluginInfo,
    // Held, never dropped while referenced; see the module docs. `None` for
    // a library stored for worker processes and never mapped here.
    _handle: Option<libloading::Library>,
    /// ABI 1.4's `fnhost_start_thread`, when the plugin (of 1.4 or newer)
    /// exports it: a worker process serves its calls from a thread it
    /// starts (see [`crate::worker`]).
    start_thread: Option<abi::StartThreadFn>,
    /// The verified cache copy, open, for worker processes to inherit
    /// (libraries stored for process isolation).
    file: Option<Arc<OwnedFd>>,
    timings: LoadTimings,
}

/// Where the time of a library's load went (recorded once, when it was
/// first loaded or stored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTimings {
    /// Opening the file, copying it into the code cache and hashing it in
    /// the same pass, checking its ELF headers (or finding a build already
    /// hashed in this process).
    pub ingest: Duration,
    /// Trying it in a throwaway worker process, when it had not passed
    /// there yet.
    pub preflight: Option<Duration>,
    /// `dlopen` (its constructors run), finding and checking the
    /// descriptor; zero for a library stored only for worker processes.
    pub open: Duration,
}

impl Library {
    /// The content address of the library's bytes.
    pub fn digest(&self) -> Digest {
        self.digest
    }
    /// The file it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }
    /// The content-addressed copy that was mapped.
    pub fn mapped_path(&self) -> &Path {
        &self.mapped_path
    }
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// What the descriptor declared.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }
    /// Where the time of its load went.
    pub fn load_timings(&self) -> LoadTimings {
        self.timings
    }

    /// Whether the library is mapped in this process (false for a library
    /// stored only for worker processes).
    pub fn is_mapped(&self) -> bool {
        self._handle.is_some()
    }

    /// ABI 1.4's `fnhost_start_thread`, when the plugin exports it.
    pub(crate) fn start_thread(&self) -> Option<abi::StartThreadFn> {
        self.start_thread
    }

    /// The verified cache copy, open (for libraries stored for worker processes).
    pub(crate) fn file(&self) -> Option<&Arc<OwnedFd>> {
        self.file.as_ref()
    }

    /// Handler names, in table order.
    pub fn handler_names(&self) -> Vec<String> {
        self.info.handlers.iter().map(|(n, _)| n.clone()).collect()
    }
    /// Initializer names, in table order.
    pub fn initializer_names(&self) -> Vec<String> {
        self.info
            .initializers
            .iter()
            .map(|(n, _)| n.clone())
            .collect()
    }
    /// A handler by name.
    pub(crate) fn handler(&self, name: &str) -> Option<abi::HandlerFn> {
        self.info
            .handlers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
    }
    /// An initializer by name.
    pub(crate) fn initializer(&self, name: &str) -> Option<abi::InitializerFn> {
        self.info
            .initializers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
    }
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("digest", &self.digest)
            .field("source", &self.source)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Largest library file read (a plugin is a few MB; this bounds what a
/// wrong path, `/dev/zero` say, can cost).
pub const MAX_LIBRARY_BYTES: u64 = 512 * 1024 * 1024;

/// Opens a library file: a regular file only (a FIFO or a device is
/// refused without blocking on it), at most [`MAX_LIBRARY_BYTES`].
fn open_library(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), LoadError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |error: std::io::Error| LoadError::Io {
        path: path.to_owned(),
        error,
    };
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    if meta.len() > MAX_LIBRARY_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{} bytes is over the {} MiB a library may have",
                meta.len(),
                MAX_LIBRARY_BYTES >> 20
            ),
        )));
    }
    Ok((file, meta))
}

/// Reads a library file (see [`open_library`]); the watcher's (`watch`
/// feature) way to see a rebuilt library's bytes.
#[cfg(feature = "watch")]
pub fn read_library(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let (file, meta) = open_library(path)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_LIBRARY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| LoadError::Io {
            path: path.to_owned(),
            error,
        })?;
    if bytes.len() as u64 > MAX_LIBRARY_BYTES {
        return Err(LoadError::Io {
            path: path.to_owned(),
            error: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the file grew past the library size limit while it was read",
            ),
        });
    }
    Ok(bytes)
}

/// Whether `path` names the open file `file`.
fn still_at(file: &OwnedFd, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(open) = file
        .try_clone()
        .and_then(|dup| std::fs::File::from(dup).metadata())
    else {
        return false;
    };
    std::fs::symlink_metadata(path).is_ok_and(|at| at.dev() == open.dev() && at.ino() == open.ino())
}

/// A source file's identity as `stat` gives it. Two equal keys of a
/// settled file (see [`SourceKey::settled`]) are the same bytes: any write
/// after the first `stat` moves its change time past the recorded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct SourceKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// How long a file must have been left alone before its `stat` identity
/// stands for its bytes: well over the coarsest file timestamp tick (10 ms
/// at HZ=100), so a write in the same tick as the last one cannot leave
/// the change time as it was (git's "racily clean" rule).
const SETTLE: Duration = Duration::from_millis(50);

impl SourceKey {
    fn of(meta: &std::fs::Metadata) -> SourceKey {
        use std::os::unix::fs::MetadataExt;
        SourceKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether the file was last changed at least [`SETTLE`] before `now`.
    fn settled(&self, now: SystemTime) -> bool {
        let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
            return false;
        };
        let limit = now.as_nanos() as i128 - SETTLE.as_nanos() as i128;
        self.mtime_ns < limit && self.ctime_ns < limit
    }
}

/// A build this process copied and hashed, by its source's identity.
#[derive(Debug, Clone)]
struct Known {
    digest: Digest,
    size: u64,
    path: PathBuf,
    go_runtime: bool,
    /// The verified copy, while something holds it open.
    file: Weak<OwnedFd>,
}

/// A copy just written into the cache and checked ([`Loader::check_copy`]).
struct Checked {
    digest: Digest,
    size: u64,
    path: PathBuf,
    file: Arc<OwnedFd>,
    go_runtime: bool,
}

/// Most source identities remembered (a cleared table costs one re-hash
/// per library).
const MAX_KNOWN: usize = 4096;

/// Verified copies kept open after the last holder let go, so that a load
/// right after an inspection (the watcher's way) reuses the copy.
const RECENT_COPIES: usize = 4;

/// A library file in the code cache: its verified copy, and what the host
/// checks before anything of it is mapped.
#[derive(Debug, Clone)]
pub(crate) struct Ingested {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) path: PathBuf,
    /// The verified copy, open.
    pub(crate) file: Arc<OwnedFd>,
    /// Whether it carries a Go runtime.
    pub(crate) go_runtime: bool,
    pub(crate) took: Duration,
}

/// A read-only mapping of a verified copy, for the ELF checks (which then
/// touch only the pages they read).
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn of(file: &OwnedFd, len: u64) -> std::io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(len).map_err(|_| std::io::Error::other("library too large"))?;
        if len == 0 {
            return Ok(Mapping {
                ptr: std::ptr::null_mut(),
                len,
            });
        }
        // SAFETY: a new private read-only mapping of `len` bytes of an open
        // file; it aliases nothing of ours. The file is a copy in the code
        // cache (a directory of mode 0700 owned by this uid, the copy
        // itself mode 0444) or, in a worker, the descriptor its host
        // handed it: only a process of this uid could truncate it under the
        // mapping (a SIGBUS), and such a process is inside the trust
        // boundary already (it could ptrace this one); sandboxed workers
        // run as another uid and reach neither.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` is a live readable mapping of `len` bytes (see
        // `of`), unmapped only when `self` drops, after this borrow.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping `of` made, unmapped once; no borrow of it
            // outlives `self`.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

/// What a library declares, as a pre-flight worker read it: nothing of the
/// library ran in this process ([`Runtime::inspect_library`](crate::Runtime::inspect_library)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryReport {
    /// The content address of its bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// The plugin's declared name.
    pub name: String,
    /// What built it.
    pub sdk: String,
    /// ABI major.minor it was built against.
    pub abi: (u16, u16),
    /// Whether it carried a layout table.
    pub layout_checked: bool,
    /// Handler names, in table order.
    pub handlers: Vec<String>,
    /// Initializer names, in table order.
    pub initializers: Vec<String>,
    /// Each handler's name and the event it takes (ABI 1.3: `apig`,
    /// `timer`, ..., `json`, `bytes`; empty when undeclared), in table order.
    pub handler_events: Vec<(String, String)>,
    /// Whether it is a Go `c-shared` library (it carries a Go runtime), so
    /// that [`Isolation::Auto`](crate::Isolation::Auto) runs it in worker
    /// processes.
    pub go_runtime: bool,
}

/// Loads libraries through a [`CodeCache`] and remembers every accepted one.
#[derive(Debug)]
pub struct Loader {
    cache: CodeCache,
    /// `None` only in a worker process, which is itself the throwaway
    /// process a library is tried in.
    preflight: Option<Preflight>,
    /// Digests whose pre-flight passed (an inspected library is not tried
    /// again when it is then loaded).
    passed: Mutex<std::collections::HashSet<Digest>>,
    loaded: Mutex<HashMap<Digest, Arc<Library>>>,
    /// Builds already copied and hashed, by their source's identity.
    known: Mutex<HashMap<SourceKey, Known>>,
    /// The last few verified copies, kept open (see [`RECENT_COPIES`]).
    recent: Mutex<VecDeque<Arc<OwnedFd>>>,
}

impl Loader {
    /// The cache it copies libraries into.
    pub fn cache(&self) -> &CodeCache {
        &self.cache
    }

    fn with(cache: CodeCache, preflight: Option<Preflight>) -> Loader {
        Loader {
            cache,
            preflight,
            passed: Mutex::new(std::collections::HashSet::new()),
            loaded: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// A loader that copies libraries into `cache` and tries each new one
    /// in a worker process as `preflight` says before mapping it.
    pub fn new(cache: CodeCache, preflight: Preflight) -> Loader {
        Loader::with(cache, Some(preflight))
    }

    /// The loader of a worker process: it loads its one library in place
    /// ([`Loader::open_in_place`]) and has nothing to pre-flight or cache.
    pub(crate) fn in_worker() -> Loader {
        Loader::with(CodeCache::none(), None)
    }

    /// Loads the library at `path` without copying or pre-flighting it: for
    /// a worker process, given the host's verified copy as a descriptor.
    /// `name` names it in messages. The copy is not hashed again (the host
    /// hashed it, and nothing in a worker uses the digest): its digest reads
    /// as zeros here.
    pub(crate) fn open_in_place(
        &self,
        name: &Path,
        path: &Path,
    ) -> Result<Arc<Library>, LoadError> {
        let started = Instant::now();
        let io = |error: std::io::Error| LoadError::Io {
            path: name.to_owned(),
            error,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let file = OwnedFd::from(file);
        let mapping = Mapping::of(&file, size).map_err(io)?;
        elf::check_shared_object(mapping.bytes()).map_err(|reason| LoadError::NotALibrary {
            path: name.to_owned(),
            reason,
        })?;
        drop(mapping);
        let ingest = started.elapsed();
        let mut library = open_checked(name, path, Digest([0; 32]), size)?;
        library.timings.ingest = ingest;
        Ok(Arc::new(library))
    }

    /// Copies the library at `path` into the cache, hashing it in the same
    /// pass, and checks the copy is a complete shared object for this
    /// machine; a build this process already copied, from a source file
    /// unchanged since (same device, inode, size, modification and change
    /// times, changed longer than [`SETTLE`] before), is not read again.
    pub(crate) fn ingest(&self, path: &Path) -> Result<Ingested, LoadError> {
        let started = Instant::now();
        let now = SystemTime::now();
        let (source, meta) = open_library(path)?;
        let key = SourceKey::of(&meta);
        let io = |error: std::io::Error| LoadError::Io {
            path: path.to_owned(),
            error,
        };
        let known = self.known.lock().get(&key).cloned();
        if let Some(known) = known {
            let file = match known.file.upgrade() {
                Some(file) => Some(file),
                // Nobody holds the copy open any more: use it again once it
                // hashes as it should (else copy the source again).
                None => self.cache.open_verified(&known.digest).ok().map(Arc::new),
            };
            // The copy is used by path (dlopen): only while the path still
            // names it (a pruned cache lost it).
            if let Some(file) = file.filter(|f| still_at(f, &known.path)) {
                self.keep_recent(&file);
                return Ok(Ingested {
                    digest: known.digest,
                    size: known.size,
                    path: known.path,
                    file,
                    go_runtime: known.go_runtime,
                    took: started.elapsed(),
                });
            }
        }
        let stored = self
            .cache
            .copy_in(&mut &source, Some(source.as_fd()), MAX_LIBRARY_BYTES)
            .map_err(io)?;
        let known = self.check_copy(path, stored)?;
        // Remembered only when the source did not change while it was
        // copied and had been left alone for a while before.
        let unchanged = source
            .metadata()
            .is_ok_and(|after| SourceKey::of(&after) == key);
        if unchanged && key.settled(now) {
            self.remember(key, &known);
        }
        Ok(Ingested {
            digest: known.digest,
            size: known.size,
            path: known.path,
            file: known.file,
            go_runtime: known.go_runtime,
            took: started.elapsed(),
        })
    }

    /// Checks a copy just written into the cache (a complete shared object
    /// for this machine; one that is not is deleted, `path` naming it in
    /// the error) and keeps it open among the recent copies.
    fn check_copy(&self, path: &Path, stored: Stored) -> Result<Checked, LoadError> {
        let io = |error: std::io::Error| LoadError::Io {
            path: path.to_owned(),
            error,
        };
        let mapping = Mapping::of(&stored.file, stored.size).map_err(io)?;
        if let Err(reason) = elf::check_shared_object(mapping.bytes()) {
            drop(mapping);
            // Nothing will load it: do not keep the copy.
            let _ = std::fs::remove_file(&stored.path);
            return Err(LoadError::NotALibrary {
                path: path.to_owned(),
                reason,
            });
        }
        let go_runtime = elf::is_go_library(mapping.bytes());
        drop(mapping);
        let file = Arc::new(stored.file);
        self.keep_recent(&file);
        Ok(Checked {
            digest: stored.digest,
            size: stored.size,
            path: stored.path,
            file,
            go_runtime,
        })
    }

    /// Remembers `copy` as the copy of the source whose identity is `key`.
    fn remember(&self, key: SourceKey, copy: &Checked) {
        let mut known = self.known.lock();
        if known.len() >= MAX_KNOWN {
            known.clear();
        }
        known.insert(
            key,
            Known {
                digest: copy.digest,
                size: copy.size,
                path: copy.path.clone(),
                go_runtime: copy.go_runtime,
                file: Arc::downgrade(&copy.file),
            },
        );
    }

    /// Takes `stored`, a copy its caller wrote into this loader's cache
    /// ([`CodeCache::incoming`]) of the very bytes it wrote to `source` (a
    /// file it wrote, open), as that file's copy: the next load of the
    /// file, while its `stat` identity is what it is now, maps `stored`
    /// and does not read the file again. Checked as a copy this loader
    /// made is (ELF headers); a copy that is no library is deleted.
    ///
    /// Unlike a build this loader copied itself, the file need not have
    /// been left alone for [`SETTLE`] first: the caller vouches for the
    /// bytes, so a change to the file that its identity would not show
    /// (another write in the same clock tick) still leaves the copy
    /// holding the bytes the caller meant, never other ones.
    pub(crate) fn stage(
        &self,
        source: &std::fs::File,
        stored: Stored,
    ) -> Result<Digest, LoadError> {
        let path = stored.path.clone();
        let key = SourceKey::of(&source.metadata().map_err(|error| LoadError::Io {
            path: path.clone(),
            error,
        })?);
        let copy = self.check_copy(&path, stored)?;
        self.remember(key, &copy);
        Ok(copy.digest)
    }

    fn keep_recent(&self, file: &Arc<OwnedFd>) {
        let mut recent = self.recent.lock();
        if recent.iter().any(|f| Arc::ptr_eq(f, file)) {
            return;
        }
        if recent.len() >= RECENT_COPIES {
            recent.pop_front();
        }
        recent.push_back(Arc::clone(file));
    }

    /// Tries the verified copy `file` of `digest` in a throwaway worker
    /// process (once per digest); how long it took when it ran.
    fn preflight(
        &self,
        source: &Path,
        digest: &Digest,
        file: &OwnedFd,
    ) -> Result<Option<Duration>, LoadError> {
        let Some(preflight) = &self.preflight else {
            return Ok(None);
        };
        if self.passed.lock().contains(digest) {
            return Ok(None);
        }
        let started = Instant::now();
        preflight
            .check(file)
            .map_err(|failure| failure_to_error(source, failure))?;
        self.passed.lock().insert(*digest);
        Ok(Some(started.elapsed()))
    }

    /// Pre-flights run, how many of them on a pre-started checker, and
    /// whether one is waiting now.
    pub(crate) fn preflight_counts(&self) -> (u64, u64, bool) {
        self.preflight
            .as_ref()
            .map_or((0, 0, false), Preflight::counts)
    }

    /// Number of distinct libraries mapped (none is ever unmapped).
    pub fn mapped_count(&self) -> usize {
        self.loaded.lock().len()
    }

    /// Loads the library at `path` (see the module docs).
    pub fn load(&self, path: &Path) -> Result<Arc<Library>, LoadError> {
        let ingested = self.ingest(path)?;
        self.load_ingested(path, ingested)
    }

    /// What the library at `path` declares, read by a pre-flight worker
    /// process: nothing of it is mapped or run here (for `fnhost inspect`
    /// and for the watcher, which looks for an initializer).
    pub fn inspect(&self, path: &Path) -> Result<LibraryReport, LoadError> {
        let ingested = self.ingest(path)?;
        let Some(preflight) = &self.preflight else {
            return Err(LoadError::InWorker(
                "a worker process cannot inspect libraries".to_owned(),
            ));
        };
        let checked = preflight
            .check(&ingested.file)
            .map_err(|failure| failure_to_error(path, failure))?;
        self.passed.lock().insert(ingested.digest);
        Ok(LibraryReport {
            digest: ingested.digest,
            size: ingested.size,
            name: checked.name,
            sdk: checked.sdk,
            abi: checked.abi,
            layout_checked: checked.layout_checked,
            handlers: checked.handlers,
            initializers: checked.initializers,
            handler_events: checked.handler_events,
            go_runtime: ingested.go_runtime,
        })
    }

    /// Stores a library already ingested without mapping it: for functions
    /// whose workers load it (process isolation). The ABI check happens in
    /// the worker.
    pub(crate) fn store_ingested(&self, source: &Path, ingested: Ingested) -> Arc<Library> {
        Arc::new(Library {
            digest: ingested.digest,
            source: source.to_owned(),
            mapped_path: ingested.path,
            size: ingested.size,
            file: Some(ingested.file),
            info: PluginInfo {
                name: String::new(),
                sdk: String::new(),
                abi: (0, 0),
                layout_checked: false,
                handlers: Vec::new(),
                initializers: Vec::new(),
                handler_events: Vec::new(),
            },
            _handle: None,
            start_thread: None,
            timings: LoadTimings {
                ingest: ingested.took,
                preflight: None,
                open: Duration::ZERO,
            },
        })
    }

    /// Maps a library already ingested from `source` (once per digest: the
    /// same bytes give the same [`Library`]).
    pub(crate) fn load_ingested(
        &self,
        source: &Path,
        ingested: Ingested,
    ) -> Result<Arc<Library>, LoadError> {
        let digest = ingested.digest;
        if let Some(lib) = self.loaded.lock().get(&digest).cloned() {
            return Ok(lib);
        }
        // Nothing of a library runs here before it ran once elsewhere.
        let preflight = self.preflight(source, &digest, &ingested.file)?;
        let started = Instant::now();
        let mut library = open_checked(source, &ingested.path, digest, ingested.size)?;
        library.timings = LoadTimings {
            ingest: ingested.took,
            preflight,
            open: started.elapsed(),
        };
        let mut loaded = self.loaded.lock();
        let entry = loaded.entry(digest).or_insert_with(|| Arc::new(library));
        Ok(Arc::clone(entry))
    }
}

fn open_checked(
    source: &Path,
    mapped_path: &Path,
    digest: Digest,
    size: u64,
) -> Result<Library, LoadError> {
    // SAFETY: opening a library runs its ELF constructors. The file passed the
    // ELF checks and is a private content-addressed copy nobody rewrites.
    // RTLD_LOCAL keeps its symbols out of the global namespace, RTLD_NOW
    // surfaces missing symbols here rather than at the first call.
    let handle = unsafe {
        libloading::os::unix::Library::open(
            Some(mapped_path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map_err(|e| LoadError::Open {
        path: source.to_owned(),
        message: e.to_string(),
    })?;
    let handle = libloading::Library::from(handle);
    let symbol = format!("{}\0", abi::DESCRIPTOR_SYMBOL);
    // SAFETY: we only take the symbol's address; it is not dereferenced here.
    let descriptor: *const Descriptor =
        match unsafe { handle.get::<*const Descriptor>(symbol.as_bytes()) } {
            // A `Symbol<*const T>` of a data symbol derefs to the symbol's address.
            Ok(sym) => *sym,
            Err(_) => {
                return Err(LoadError::NotAPlugin {
                    path: source.to_owned(),
                })
            }
        };
    if descriptor.is_null() {
        return Err(LoadError::NotAPlugin {
            path: source.to_owned(),
        });
    }
    let symbol_size = symbol_size(descriptor);
    // SAFETY: `descriptor` is the address of the exported symbol in `handle`,
    // which stays mapped for this call (and, if accepted, forever), and
    // `symbol_size` is what the library's own symbol table says it spans.
    let info = unsafe { check_descriptor(descriptor, symbol_size) }.map_err(|e| match e {
        CheckError::Version { major, minor } => LoadError::AbiVersion {
            path: source.to_owned(),
            plugin_major: major,
            plugin_minor: minor,
            host_major: abi::ABI_MAJOR,
            host_minor: abi::ABI_MINOR,
        },
        CheckError::Layout(differences) => LoadError::AbiLayout {
            path: source.to_owned(),
            differences,
        },
        CheckError::Invalid(reason) => LoadError::InvalidDescriptor {
            path: source.to_owned(),
            reason,
        },
    })?;
    // 1.4's optional thread starter, looked up only in a plugin that
    // declares 1.4 (an older one's function of that name may be anything).
    let start_thread = if info.abi >= (1, 4) {
        let name = format!("{}\0", abi::START_THREAD_SYMBOL);
        // SAFETY: the symbol's type is fixed by ABI 1.4, which the plugin
        // declared; the pointer is only called as such (see
        // `Library::start_thread`), while the library stays mapped (forever).
        unsafe { handle.get::<abi::StartThreadFn>(name.as_bytes()) }
            .ok()
            .map(|f| *f)
    } else {
        None
    };
    Ok(Library {
        digest,
        source: source.to_owned(),
        mapped_path: mapped_path.to_owned(),
        size,
        info,
        _handle: Some(handle),
        start_thread,
        file: None,
        timings: LoadTimings::default(),
    })
}

/// The size of the data symbol at `address`, from the library's symbol
/// table (`dladdr1` with `RTLD_DL_SYMENT`), when the loader knows it.
fn symbol_size(address: *const Descriptor) -> Option<u64> {
    const RTLD_DL_SYMENT: libc::c_int = 1;
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let mut symbol: *const libc::Elf64_Sym = std::ptr::null();
    // SAFETY: dladdr1 writes a Dl_info and, for RTLD_DL_SYMENT, a pointer to
    // the symbol's table entry (owned by the loader, valid while the library
    // is mapped) into the two out-parameters given.
    let found = unsafe {
        libc::dladdr1(
            address.cast(),
            info.as_mut_ptr(),
            (&mut symbol as *mut *const libc::Elf64_Sym).cast(),
            RTLD_DL_SYMENT,
        )
    };
    if found == 0 || symbol.is_null() {
        return None;
    }
    // SAFETY: non-null, pointing into the mapped library's symbol table.
    let symbol = unsafe { &*symbol };
    // Only when the entry found is the symbol itself, not a neighbour.
    // SAFETY: dladdr1 filled in `info` since it returned non-zero.
    let info = unsafe { info.assume_init() };
    (info.dli_saddr == address as *mut libc::c_void && symbol.st_size > 0).then_some(symbol.st_size)
}

/// The load error a failed pre-flight stands for.
pub(crate) fn failure_to_error(source: &Path, failure: Failure) -> LoadError {
    use crate::isolation::protocol::Refusal;
    let path = source.to_owned();
    match failure {
        Failure::Refused(Refusal::Open(message)) => LoadError::Open { path, message },
        Failure::Refused(Refusal::NotAPlugin) => LoadError::NotAPlugin { path },
        Failure::Refused(Refusal::Version { major, minor }) => LoadError::AbiVersion {
            path,
            plugin_major: major,
            plugin_minor: minor,
            host_major: abi::ABI_MAJOR,
            host_minor: abi::ABI_MINOR,
        },
        Failure::Refused(Refusal::Layout(differences)) => {
            LoadError::AbiLayout { path, differences }
        }
        Failure::Refused(Refusal::Invalid(reason)) => LoadError::InvalidDescriptor { path, reason },
        Failure::Refused(Refusal::Other(reason)) => LoadError::InvalidDescriptor { path, reason },
        other => LoadError::Initialization {
            path,
            what: other.describe(),
        },
    }
}

/// What a pre-flight worker reports about a load error it met.
pub(crate) fn error_to_refusal(error: &LoadError) -> crate::isolation::protocol::Refusal {
    use crate::isolation::protocol::Refusal;
    match error {
        LoadError::Open { message, .. } => Refusal::Open(message.clone()),
        LoadError::NotAPlugin { .. } => Refusal::NotAPlugin,
        LoadError::AbiVersion {
            plugin_major,
            plugin_minor,
            ..
        } => Refusal::Version {
            major: *plugin_major,
            minor: *plugin_minor,
        },
        LoadError::AbiLayout { differences, .. } => Refusal::Layout(differences.clone()),
        LoadError::InvalidDescriptor { reason, .. } => Refusal::Invalid(reason.clone()),
        other => Refusal::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    /// An ELF shared object to ingest: this test executable (a PIE, so
    /// `ET_DYN`), copied to `dir`.
    fn elf_file(dir: &Path) -> PathBuf {
        let path = dir.join("lib.so");
        std::fs::copy(std::env::current_exe().unwrap(), &path).unwrap();
        path
    }

    fn loader(dir: &Path) -> Loader {
        Loader::with(CodeCache::new(dir.join("cache")).unwrap(), None)
    }

    #[test]
    fn a_settled_unchanged_build_is_not_copied_again_and_a_rewritten_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = elf_file(dir.path());
        let loader = loader(dir.path());
        // Fresh from the build: not trusted by its stat identity yet.
        let fresh = loader.ingest(&path).unwrap();
        assert!(!Arc::ptr_eq(
            &fresh.file,
            &loader.ingest(&path).unwrap().file
        ));
        std::thread::sleep(SETTLE * 2);
        let first = loader.ingest(&path).unwrap();
        let again = loader.ingest(&path).unwrap();
        assert!(Arc::ptr_eq(&first.file, &again.file), "re-copied");
        assert_eq!(first.digest, fresh.digest);
        // Rewritten in place, same size, same inode, right away.
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(std::io::SeekFrom::End(-8)).unwrap();
        f.write_all(b"rewrite!").unwrap();
        drop(f);
        let rewritten = loader.ingest(&path).unwrap();
        assert_ne!(rewritten.digest, first.digest);
        assert_eq!(rewritten.digest, Digest::of(&std::fs::read(&path).unwrap()));
    }

    #[test]
    fn a_staged_copy_stands_for_its_file_at_once_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = elf_file(dir.path());
        let loader = loader(dir.path());
        // A copy of other bytes than the file's (the contract says the
        // same: the difference shows which one a load used).
        let mut other = std::fs::read(&path).unwrap();
        other.extend_from_slice(b"staged");
        let mut incoming = loader.cache().incoming(MAX_LIBRARY_BYTES).unwrap();
        for piece in other.chunks(100_000) {
            incoming.write_all(piece).unwrap();
        }
        let stored = incoming.finish().unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let staged = loader.stage(&file, stored).unwrap();
        assert_eq!(staged, Digest::of(&other));
        // Used at once, not only after SETTLE, and without reading the file.
        let first = loader.ingest(&path).unwrap();
        assert_eq!(first.digest, staged);
        assert!(Arc::ptr_eq(
            &first.file,
            &loader.ingest(&path).unwrap().file
        ));
        // The file changed: its own bytes again.
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(std::io::SeekFrom::End(-8)).unwrap();
        f.write_all(b"rewrite!").unwrap();
        drop(f);
        let rewritten = loader.ingest(&path).unwrap();
        assert_eq!(rewritten.digest, Digest::of(&std::fs::read(&path).unwrap()));
        // A staged copy that is no library is refused and deleted.
        let mut junk = loader.cache().incoming(MAX_LIBRARY_BYTES).unwrap();
        junk.write_all(&[7u8; 4096]).unwrap();
        let stored = junk.finish().unwrap();
        let junk_path = stored.path.clone();
        let e = loader.stage(&file, stored).unwrap_err();
        assert!(matches!(e, LoadError::NotALibrary { .. }), "{e}");
        assert!(!junk_path.exists());
    }

    #[test]
    fn a_known_build_whose_copy_was_pruned_is_copied_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = elf_file(dir.path());
        let loader = loader(dir.path());
        std::thread::sleep(SETTLE * 2);
        let first = loader.ingest(&path).unwrap();
        std::fs::remove_file(&first.path).unwrap();
        let again = loader.ingest(&path).unwrap();
        assert!(again.path.is_file());
        assert_eq!(again.digest, first.digest);
    }

    #[test]
    fn what_is_not_a_library_leaves_no_copy_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.so");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let loader = loader(dir.path());
        let e = loader.ingest(&path).unwrap_err();
        assert!(matches!(e, LoadError::NotALibrary { .. }), "{e}");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
