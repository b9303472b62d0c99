//! The FunctionGraph code package of a built project: a zip with the
//! handler's library at its root, as `fnhost serve` (and FunctionGraph)
//! expect it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The largest library packaged (as the loader's own bound).
pub const MAX_LIBRARY_BYTES: u64 = 512 * 1024 * 1024;

/// Why no package was written.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The library is not one fnhost could load.
    #[error("{path} cannot be packaged: {reason}")]
    NotALibrary {
        /// The library.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("cannot write {path}: {error}")]
    Io {
        /// What was being read or written.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// Writes `out`: a zip whose only entry is `library` named `LIBRARY.so`
/// (the handler's library name) at its root. The library is checked to be a
/// complete shared object for this machine first; the zip is written to a
/// temporary file and renamed into place, so `out` is never torn.
pub fn write(library: &Path, library_name: &str, out: &Path) -> Result<PathBuf, PackageError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |error| PackageError::Io { path, error }
    };
    let size = std::fs::metadata(library).map_err(io(library))?.len();
    if size > MAX_LIBRARY_BYTES {
        return Err(PackageError::NotALibrary {
            path: library.to_owned(),
            reason: format!("it is {size} bytes; the limit is {MAX_LIBRARY_BYTES}"),
        });
    }
    let bytes = std::fs::read(library).map_err(io(library))?;
    fnhost::check_shared_object(&bytes).map_err(|e| PackageError::NotALibrary {
        path: library.to_owned(),
        reason: e.to_string(),
    })?;
    let dir = out.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        out.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("package.zip"),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o755);
        zip.start_file(format!("{library_name}.so"), options)?;
        zip.write_all(&bytes)?;
        let file = zip.finish()?;
        file.sync_all()?;
        Ok(())
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(PackageError::Io {
            path: out.to_owned(),
            error,
        });
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(out.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_library_is_not_packaged() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("x.so");
        std::fs::write(&lib, b"not an ELF").unwrap();
        let out = dir.path().join("x.zip");
        assert!(matches!(
            write(&lib, "x", &out),
            Err(PackageError::NotALibrary { .. })
        ));
        assert!(!out.exists());
    }
}
