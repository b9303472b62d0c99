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

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fnhost_api::abi::{self, Descriptor};
use parking_lot::Mutex;

use crate::abi_check::{check_descriptor, CheckError, PluginInfo};
use crate::code_cache::{CodeCache, Digest};
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
    /// The verified cache copy, open, for worker processes to inherit
    /// (libraries stored for process isolation).
    file: Option<Arc<OwnedFd>>,
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
    /// Whether the library is mapped in this process (false for a library
    /// stored only for worker processes).
    pub fn is_mapped(&self) -> bool {
        self._handle.is_some()
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

/// Reads a library file: a regular file only (a FIFO or a device is
/// refused without blocking on it), at most [`MAX_LIBRARY_BYTES`].
pub fn read_library(path: &Path) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
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
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_LIBRARY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_LIBRARY_BYTES {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the file grew past the library size limit while it was read",
        )));
    }
    Ok(bytes)
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
}

impl Loader {
    /// The cache it copies libraries into.
    pub fn cache(&self) -> &CodeCache {
        &self.cache
    }

    /// A loader that copies libraries into `cache` and tries each new one
    /// in a worker process as `preflight` says before mapping it.
    pub fn new(cache: CodeCache, preflight: Preflight) -> Loader {
        Loader {
            cache,
            preflight: Some(preflight),
            passed: Mutex::new(std::collections::HashSet::new()),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The loader of a worker process: it loads its one library in place
    /// ([`Loader::open_in_place`]) and has nothing to pre-flight or cache.
    pub(crate) fn in_worker() -> Loader {
        Loader {
            cache: CodeCache::none(),
            preflight: None,
            passed: Mutex::new(std::collections::HashSet::new()),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Loads the library at `path` without copying or pre-flighting it: for
    /// a worker process, given the host's verified copy as a descriptor.
    /// `name` names it in messages.
    pub(crate) fn open_in_place(
        &self,
        name: &Path,
        path: &Path,
    ) -> Result<Arc<Library>, LoadError> {
        let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
            path: name.to_owned(),
            error,
        })?;
        elf::check_shared_object(&bytes).map_err(|reason| LoadError::NotALibrary {
            path: name.to_owned(),
            reason,
        })?;
        let digest = Digest::of(&bytes);
        let library = open_checked(name, path, digest, bytes.len() as u64)?;
        Ok(Arc::new(library))
    }

    /// Reads the library at `path` and checks it is a complete shared
    /// object for this machine.
    fn read_checked(path: &Path) -> Result<Vec<u8>, LoadError> {
        let bytes = read_library(path)?;
        elf::check_shared_object(&bytes).map_err(|reason| LoadError::NotALibrary {
            path: path.to_owned(),
            reason,
        })?;
        Ok(bytes)
    }

    /// Stores the copy of `bytes` and opens it, verified.
    fn store(&self, digest: &Digest, bytes: &[u8]) -> Result<(PathBuf, OwnedFd), LoadError> {
        self.cache
            .store_verified(digest, bytes)
            .map_err(|error| LoadError::Io {
                path: self.cache.dir().to_owned(),
                error,
            })
    }

    /// Tries the verified copy `file` of `digest` in a throwaway worker
    /// process (once per digest).
    fn preflight(&self, source: &Path, digest: &Digest, file: &OwnedFd) -> Result<(), LoadError> {
        let Some(preflight) = &self.preflight else {
            return Ok(());
        };
        if self.passed.lock().contains(digest) {
            return Ok(());
        }
        preflight
            .check(file)
            .map_err(|failure| failure_to_error(source, failure))?;
        self.passed.lock().insert(*digest);
        Ok(())
    }

    /// Number of distinct libraries mapped (none is ever unmapped).
    pub fn mapped_count(&self) -> usize {
        self.loaded.lock().len()
    }

    /// Loads the library at `path` (see the module docs).
    pub fn load(&self, path: &Path) -> Result<Arc<Library>, LoadError> {
        let bytes = read_library(path)?;
        self.load_bytes(path, &bytes)
    }

    /// What the library at `path` declares, read by a pre-flight worker
    /// process: nothing of it is mapped or run here (for `fnhost inspect`
    /// and for the watcher, which looks for an initializer).
    pub fn inspect(&self, path: &Path) -> Result<LibraryReport, LoadError> {
        let bytes = Self::read_checked(path)?;
        let digest = Digest::of(&bytes);
        let (_, file) = self.store(&digest, &bytes)?;
        let Some(preflight) = &self.preflight else {
            return Err(LoadError::InWorker(
                "a worker process cannot inspect libraries".to_owned(),
            ));
        };
        let checked = preflight
            .check(&file)
            .map_err(|failure| failure_to_error(path, failure))?;
        self.passed.lock().insert(digest);
        Ok(LibraryReport {
            digest,
            size: bytes.len() as u64,
            name: checked.name,
            sdk: checked.sdk,
            abi: checked.abi,
            layout_checked: checked.layout_checked,
            handlers: checked.handlers,
            initializers: checked.initializers,
            go_runtime: elf::is_go_library(&bytes),
        })
    }

    /// Checks that `path` is a complete shared object for this machine and
    /// stores its content-addressed copy, without mapping it: for functions
    /// whose workers load it (process isolation). The ABI check happens in
    /// the worker.
    pub fn store_unmapped(&self, path: &Path) -> Result<Arc<Library>, LoadError> {
        let bytes = Self::read_checked(path)?;
        self.store_unmapped_checked(path, &bytes)
    }

    /// [`Loader::store_unmapped`] of bytes already read from `source`.
    pub fn store_unmapped_bytes(
        &self,
        source: &Path,
        bytes: &[u8],
    ) -> Result<Arc<Library>, LoadError> {
        elf::check_shared_object(bytes).map_err(|reason| LoadError::NotALibrary {
            path: source.to_owned(),
            reason,
        })?;
        self.store_unmapped_checked(source, bytes)
    }

    fn store_unmapped_checked(&self, path: &Path, bytes: &[u8]) -> Result<Arc<Library>, LoadError> {
        let digest = Digest::of(bytes);
        let (mapped_path, file) = self.store(&digest, bytes)?;
        Ok(Arc::new(Library {
            digest,
            source: path.to_owned(),
            mapped_path,
            size: bytes.len() as u64,
            file: Some(Arc::new(file)),
            info: PluginInfo {
                name: String::new(),
                sdk: String::new(),
                abi: (0, 0),
                layout_checked: false,
                handlers: Vec::new(),
                initializers: Vec::new(),
            },
            _handle: None,
        }))
    }

    /// Loads a library from bytes already read from `source`.
    pub fn load_bytes(&self, source: &Path, bytes: &[u8]) -> Result<Arc<Library>, LoadError> {
        elf::check_shared_object(bytes).map_err(|source_err| LoadError::NotALibrary {
            path: source.to_owned(),
            reason: source_err,
        })?;
        let digest = Digest::of(bytes);
        let mapped = self.loaded.lock().get(&digest).cloned();
        if let Some(lib) = mapped {
            // Already mapped: its copy is never opened again, so it is not
            // re-verified, only put back if it was pruned (the cache holds
            // every library in use).
            if !lib.mapped_path().exists() {
                self.store(&digest, bytes)?;
            }
            return Ok(lib);
        }
        let (mapped_path, file) = self.store(&digest, bytes)?;
        // Nothing of a library runs here before it ran once elsewhere.
        self.preflight(source, &digest, &file)?;
        let library = open_checked(source, &mapped_path, digest, bytes.len() as u64)?;
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
    Ok(Library {
        digest,
        source: source.to_owned(),
        mapped_path: mapped_path.to_owned(),
        size,
        info,
        _handle: Some(handle),
        file: None,
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
