//! Entries (`NAME.HANDLER`) and where their library lives.

use std::path::{Path, PathBuf};

use crate::error::LoadError;

/// A parsed entry: `testplugin.Handler` is library `testplugin`, handler `Handler`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The library name (file `NAME.so` or `libNAME.so`).
    pub library: String,
    /// The handler (or initializer) name in the library's table.
    pub symbol: String,
}

impl Entry {
    /// Parses `NAME.HANDLER`; the handler is what follows the last dot.
    pub fn parse(entry: &str) -> Result<Entry, LoadError> {
        match entry.rsplit_once('.') {
            Some((library, symbol))
                if !library.is_empty()
                    && !symbol.is_empty()
                    && !library.contains('/')
                    && !library.contains('\0') =>
            {
                Ok(Entry {
                    library: library.to_owned(),
                    symbol: symbol.to_owned(),
                })
            }
            _ => Err(LoadError::InvalidEntry(entry.to_owned())),
        }
    }

    /// Finds the library in `dir`: `NAME.so`, else cargo's `libNAME.so`.
    pub fn locate(&self, dir: &Path) -> Result<PathBuf, LoadError> {
        let names = [
            format!("{}.so", self.library),
            format!("lib{}.so", self.library),
        ];
        for name in &names {
            let path = dir.join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
        Err(LoadError::LibraryNotFound {
            name: self.library.clone(),
            dir: dir.to_owned(),
            tried: names.to_vec(),
        })
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.library, self.symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_last_dot() {
        let e = Entry::parse("my.plugin.Handler").unwrap();
        assert_eq!(
            (e.library.as_str(), e.symbol.as_str()),
            ("my.plugin", "Handler")
        );
    }

    #[test]
    fn rejects_entries_without_both_parts_or_with_paths() {
        for bad in ["Handler", ".Handler", "plugin.", "", "../x.Handler"] {
            assert!(
                matches!(Entry::parse(bad), Err(LoadError::InvalidEntry(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn locates_plain_then_cargo_names() {
        let dir = tempfile::tempdir().unwrap();
        let e = Entry::parse("echo.Handler").unwrap();
        let err = e.locate(dir.path()).unwrap_err().to_string();
        assert!(err.contains("echo.so and libecho.so"), "{err}");
        std::fs::write(dir.path().join("libecho.so"), b"x").unwrap();
        assert_eq!(e.locate(dir.path()).unwrap(), dir.path().join("libecho.so"));
        std::fs::write(dir.path().join("echo.so"), b"x").unwrap();
        assert_eq!(e.locate(dir.path()).unwrap(), dir.path().join("echo.so"));
    }
}
