//! Code packages: a zip archive (FunctionGraph's `code_type=zip`) holding the
//! `.so` at its root. Each package is stored once, content-addressed by the
//! SHA-256 of the zip: extracted into a temporary directory, synced, then
//! renamed into place, so a crash in the middle of an upload leaves either no
//! package or a complete one. Entries that would land outside the package
//! directory (absolute paths, `..`), symlinks and oversized archives are refused.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Largest total of extracted bytes accepted from one package.
pub const MAX_EXTRACTED_BYTES: u64 = 512 * 1024 * 1024;
/// Most entries accepted in one package.
pub const MAX_ENTRIES: usize = 10_000;

/// A stored package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// SHA-256 (hex) of the zip: FunctionGraph's `digest`.
    pub digest: String,
    /// The directory it was extracted into (the function's code directory).
    pub dir: PathBuf,
    /// Size of the zip in bytes (`code_size`).
    pub size: u64,
}

/// Content-addressed package storage under one directory.
#[derive(Debug)]
pub struct PackageStore {
    root: PathBuf,
}

static TEMP: AtomicU64 = AtomicU64::new(0);

impl PackageStore {
    /// Uses (and creates) `root`.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<PackageStore> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        // Leftovers of uploads interrupted by a crash.
        for entry in fs::read_dir(&root)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_dir_all(entry.path());
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(PackageStore { root })
    }

    /// The package stored under `digest`, if any.
    pub fn get(&self, digest: &str) -> Option<Package> {
        let dir = self.root.join(digest);
        let size = fs::metadata(self.root.join(format!("{digest}.zip")))
            .ok()?
            .len();
        dir.is_dir().then(|| Package {
            digest: digest.to_owned(),
            dir,
            size,
        })
    }

    /// The zip bytes of a stored package.
    pub fn zip_bytes(&self, digest: &str) -> std::io::Result<Vec<u8>> {
        fs::read(self.root.join(format!("{digest}.zip")))
    }

    /// Stores a zip (idempotent: the same bytes give the same package).
    pub fn store(&self, zip: &[u8]) -> Result<Package, String> {
        let digest = hex::encode(Sha256::digest(zip));
        if let Some(p) = self.get(&digest) {
            return Ok(p);
        }
        let n = TEMP.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!(".tmp-{digest}-{}-{n}", std::process::id()));
        let result = extract(zip, &tmp).and_then(|()| {
            let tmp_zip = tmp.with_extension("zip");
            write_synced(&tmp_zip, zip).map_err(|e| e.to_string())?;
            fs::rename(&tmp, self.root.join(&digest)).map_err(|e| e.to_string())?;
            fs::rename(&tmp_zip, self.root.join(format!("{digest}.zip")))
                .map_err(|e| e.to_string())?;
            sync_dir(&self.root);
            Ok(())
        });
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            let _ = fs::remove_file(tmp.with_extension("zip"));
            return Err(e);
        }
        self.get(&digest)
            .ok_or_else(|| "package vanished after storing".to_owned())
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Extracts `zip` into `dir` (created), refusing unsafe or oversized content.
fn extract(zip: &[u8], dir: &Path) -> Result<(), String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| format!("not a valid zip archive: {e}"))?;
    if archive.len() > MAX_ENTRIES {
        return Err(format!(
            "{} entries, more than {MAX_ENTRIES}",
            archive.len()
        ));
    }
    fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut total = 0u64;
    let mut libraries = 0;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| format!("entry {i}: {e}"))?;
        let name = entry
            .name()
            .map(|n| n.into_owned())
            .unwrap_or_else(|_| format!("#{i}"));
        let relative = entry.enclosed_name().ok_or_else(|| {
            format!("entry `{name}` would be written outside the package directory")
        })?;
        if entry.is_symlink() {
            return Err(format!("entry `{name}` is a symbolic link"));
        }
        let target = dir.join(&relative);
        if entry.is_dir() {
            fs::create_dir_all(&target).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut data = Vec::new();
        let limit = MAX_EXTRACTED_BYTES.saturating_sub(total) + 1;
        (&mut entry)
            .take(limit)
            .read_to_end(&mut data)
            .map_err(|e| format!("entry `{name}`: {e}"))?;
        total += data.len() as u64;
        if total > MAX_EXTRACTED_BYTES {
            return Err(format!(
                "more than {MAX_EXTRACTED_BYTES} bytes once extracted"
            ));
        }
        write_synced(&target, &data).map_err(|e| e.to_string())?;
        if relative.components().count() == 1 && name.ends_with(".so") {
            libraries += 1;
        }
    }
    if libraries == 0 {
        return Err("no .so file at the root of the package".to_owned());
    }
    sync_dir(dir);
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

    #[test]
    fn stores_once_by_digest_and_extracts_the_library() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::new(dir.path()).unwrap();
        let zip = zip_of(&[("echo.so", b"\x7fELF..."), ("data/config.json", b"{}")]);
        let p = store.store(&zip).unwrap();
        assert_eq!(p.digest.len(), 64);
        assert_eq!(fs::read(p.dir.join("echo.so")).unwrap(), b"\x7fELF...");
        assert_eq!(fs::read(p.dir.join("data/config.json")).unwrap(), b"{}");
        assert_eq!(store.store(&zip).unwrap(), p);
        assert_eq!(store.zip_bytes(&p.digest).unwrap(), zip);
    }

    #[test]
    fn refuses_traversal_garbage_and_packages_without_a_library() {
        let dir = tempfile::tempdir().unwrap();
        let store = PackageStore::new(dir.path().join("code")).unwrap();
        let e = store.store(&zip_of(&[("../evil.so", b"x")])).unwrap_err();
        assert!(e.contains("outside the package directory"), "{e}");
        // An absolute name is confined to the package directory.
        let p = store
            .store(&zip_of(&[("/etc/fnhost-evil.so", b"x"), ("ok.so", b"y")]))
            .unwrap();
        assert!(p.dir.join("etc/fnhost-evil.so").is_file());
        assert!(!Path::new("/etc/fnhost-evil.so").exists());
        assert!(!dir.path().join("evil.so").exists());
        let e = store.store(b"PK\x03\x04 truncated").unwrap_err();
        assert!(e.contains("not a valid zip"), "{e}");
        let e = store.store(&zip_of(&[("lib/inner.so", b"x")])).unwrap_err();
        assert!(e.contains("no .so file at the root"), "{e}");
        // Nothing half-extracted is left behind: only the one good package.
        let left: Vec<_> = fs::read_dir(dir.path().join("code"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
