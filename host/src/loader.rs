//! Opens a library as fnhost code: validate the file, copy it to its content
//! address, `dlopen` that copy, read and check the descriptor, and only then
//! hand out its handlers.
//!
//! A library whose check fails is closed again (none of its code ran, apart
//! from the loader's own constructors). A library that passed is kept mapped
//! for the life of the process: a Rust cdylib that has run cannot be unloaded
//! soundly on glibc (thread-local and pthread-key destructors may still point
//! into it), so the loader never `dlclose`s it. Loading the same bytes again
//! returns the same [`Library`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fnhost_api::abi::{self, Descriptor};
use parking_lot::Mutex;

use crate::abi_check::{check_descriptor, CheckError, PluginInfo};
use crate::code_cache::{CodeCache, Digest};
use crate::elf;
use crate::error::LoadError;

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
    pub fn handler(&self, name: &str) -> Option<abi::HandlerFn> {
        self.info
            .handlers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
    }
    /// An initializer by name.
    pub fn initializer(&self, name: &str) -> Option<abi::InitializerFn> {
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

/// Loads libraries through a [`CodeCache`] and remembers every accepted one.
#[derive(Debug)]
pub struct Loader {
    cache: CodeCache,
    loaded: Mutex<HashMap<Digest, Arc<Library>>>,
}

impl Loader {
    /// The cache it copies libraries into.
    pub fn cache(&self) -> &CodeCache {
        &self.cache
    }

    /// A loader that copies libraries into `cache`.
    pub fn new(cache: CodeCache) -> Loader {
        Loader {
            cache,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Number of distinct libraries mapped (none is ever unmapped).
    pub fn mapped_count(&self) -> usize {
        self.loaded.lock().len()
    }

    /// Loads the library at `path` (see the module docs).
    pub fn load(&self, path: &Path) -> Result<Arc<Library>, LoadError> {
        let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
            path: path.to_owned(),
            error,
        })?;
        self.load_bytes(path, &bytes)
    }

    /// Checks that `path` is a complete shared object for this machine and
    /// stores its content-addressed copy, without mapping it: for functions
    /// whose workers load it (process isolation). The ABI check happens in
    /// the worker.
    pub fn store_unmapped(&self, path: &Path) -> Result<Arc<Library>, LoadError> {
        let bytes = std::fs::read(path).map_err(|error| LoadError::Io {
            path: path.to_owned(),
            error,
        })?;
        elf::check_shared_object(&bytes).map_err(|reason| LoadError::NotALibrary {
            path: path.to_owned(),
            reason,
        })?;
        let digest = Digest::of(&bytes);
        let mapped_path = self
            .cache
            .store(&digest, &bytes)
            .map_err(|error| LoadError::Io {
                path: self.cache.dir().to_owned(),
                error,
            })?;
        Ok(Arc::new(Library {
            digest,
            source: path.to_owned(),
            mapped_path,
            size: bytes.len() as u64,
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
        // The copy is stored (again, if it was pruned) even for a library
        // already mapped: the cache holds every library in use.
        let mapped_path = self
            .cache
            .store(&digest, bytes)
            .map_err(|error| LoadError::Io {
                path: self.cache.dir().to_owned(),
                error,
            })?;
        if let Some(lib) = self.loaded.lock().get(&digest) {
            return Ok(Arc::clone(lib));
        }
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
    // SAFETY: `descriptor` is the address of the exported symbol in `handle`,
    // which stays mapped for this call (and, if accepted, forever).
    let info = unsafe { check_descriptor(descriptor) }.map_err(|e| match e {
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
    })
}
