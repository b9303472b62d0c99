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
            hint: self.miss_hint(dir).unwrap_or_default(),
        })
    }

    /// Why the library is not in `dir`, as far as can be told, naming only
    /// file names and relative places (never `dir` itself): the directory
    /// does not exist; only a Rust library (`.rlib`) was built; the library
    /// was built for the other profile (`target/debug` beside
    /// `target/release`); or it sits in a subfolder.
    pub fn miss_hint(&self, dir: &Path) -> Option<String> {
        if !dir.is_dir() {
            return Some("the directory does not exist".into());
        }
        let names = [
            format!("{}.so", self.library),
            format!("lib{}.so", self.library),
        ];
        let crate_name = self.library.replace('-', "_");
        if dir.join(format!("lib{crate_name}.rlib")).is_file() {
            return Some(format!(
                "only lib{crate_name}.rlib is there, a Rust library rather than a shared one: add `crate-type = [\"cdylib\"]` under [lib] in Cargo.toml"
            ));
        }
        let profile = dir.file_name().and_then(|n| n.to_str());
        let other = match profile {
            Some("release") => Some("debug"),
            Some("debug") => Some("release"),
            _ => None,
        };
        if let (Some(profile), Some(other), Some(parent)) = (profile, other, dir.parent()) {
            if let Some(found) = names.iter().find(|n| parent.join(other).join(n).is_file()) {
                return Some(format!(
                    "{found} is in target/{other}, not target/{profile}: build with{} --release, or use the {other} directory",
                    if other == "release" { "" } else { "out" }
                ));
            }
        }
        let entries = std::fs::read_dir(dir).ok()?;
        for entry in entries.flatten().take(1000) {
            let sub = entry.path();
            if !sub.is_dir() {
                continue;
            }
            if let Some(found) = names.iter().find(|n| sub.join(n).is_file()) {
                return Some(format!(
                    "{}/{found} is in a subfolder: the library must be at the top level (of the zip, for a package)",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
        None
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
    fn a_miss_says_what_was_found_instead() {
        let root = tempfile::tempdir().unwrap();
        let e = Entry::parse("my-fn.Handler").unwrap();
        let hint = |dir: &Path| e.locate(dir).unwrap_err().to_string();
        assert!(hint(&root.path().join("nope")).contains("the directory does not exist"));
        let release = root.path().join("target/release");
        let debug = root.path().join("target/debug");
        std::fs::create_dir_all(&release).unwrap();
        std::fs::create_dir_all(&debug).unwrap();
        std::fs::write(release.join("libmy_fn.rlib"), b"x").unwrap();
        assert!(
            hint(&release).contains("crate-type = [\"cdylib\"]"),
            "{}",
            hint(&release)
        );
        std::fs::remove_file(release.join("libmy_fn.rlib")).unwrap();
        std::fs::write(debug.join("libmy-fn.so"), b"x").unwrap();
        assert!(
            hint(&release).contains("libmy-fn.so is in target/debug, not target/release"),
            "{}",
            hint(&release)
        );
        let zip_root = root.path().join("pkg");
        std::fs::create_dir_all(zip_root.join("build")).unwrap();
        std::fs::write(zip_root.join("build/my-fn.so"), b"x").unwrap();
        let miss = e.locate(&zip_root).unwrap_err();
        assert!(
            miss.to_string()
                .contains("build/my-fn.so is in a subfolder"),
            "{miss}"
        );
        // The public message keeps the hint and leaves out the directory.
        let public = miss.public_message();
        assert!(
            public.contains("build/my-fn.so is in a subfolder"),
            "{public}"
        );
        assert!(
            !public.contains(&root.path().to_string_lossy().into_owned()),
            "{public}"
        );
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
