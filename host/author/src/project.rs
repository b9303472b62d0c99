//! A handler project: a directory with `fnhost.toml` and a `Cargo.toml`
//! (built with cargo), a `go.mod` (built with `go build -buildmode=c-shared`)
//! or a `Makefile` (built with make), and the library its build produced.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fnhost_manifest::{Manifest, ManifestError, FILE_NAME};

/// How a project is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `cargo build` (a `Cargo.toml` is there).
    Cargo,
    /// `make` (a `Makefile` is there).
    Make,
    /// `go build -buildmode=c-shared -o LIBRARY.so .` (a `go.mod` is there).
    Go,
}

/// A project directory and its manifest.
#[derive(Debug, Clone)]
pub struct Project {
    /// The directory.
    pub dir: PathBuf,
    /// Its `fnhost.toml`.
    pub manifest: Manifest,
    /// Its build tool.
    pub tool: Tool,
}

/// Why a project could not be opened, built or its library found.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// No `fnhost.toml` in the directory.
    #[error("{} has no {FILE_NAME}: run this in a project made with `fnhost new`, or pass --dir", .0.display())]
    NoManifest(PathBuf),
    /// The manifest was refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Neither a `Cargo.toml` nor a `Makefile`.
    #[error("{} has no Cargo.toml, go.mod or Makefile: fnhost does not know how to build it", .0.display())]
    NoBuild(PathBuf),
    /// The build tool could not be started.
    #[error("cannot run {tool}: {error}")]
    Spawn {
        /// `cargo` or `make`.
        tool: &'static str,
        /// Why.
        error: std::io::Error,
    },
    /// The build failed (its own messages were shown).
    #[error("{tool} failed ({status})")]
    BuildFailed {
        /// `cargo` or `make`.
        tool: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// cargo built the crate, but not as a shared library.
    #[error("cargo built only {} (a Rust library, not a shared one): add `crate-type = [\"cdylib\"]` under [lib] in Cargo.toml", .0.display())]
    NoCdylib(PathBuf),
    /// The build produced no library of the handler's name.
    #[error("the build produced no {library}.so or lib{library}.so (the handler in {FILE_NAME} is `{handler}`){found}")]
    NoLibrary {
        /// The handler's library name.
        library: String,
        /// The handler entry.
        handler: String,
        /// What was there instead, as a sentence (or empty).
        found: String,
    },
}

impl Project {
    /// Opens the project in `dir`.
    pub fn open(dir: &Path) -> Result<Project, ProjectError> {
        let path = dir.join(FILE_NAME);
        if !path.is_file() {
            return Err(ProjectError::NoManifest(dir.to_owned()));
        }
        let manifest = Manifest::read(&path)?;
        let tool = if dir.join("Cargo.toml").is_file() {
            Tool::Cargo
        } else if dir.join("go.mod").is_file() {
            Tool::Go
        } else if dir.join("Makefile").is_file() || dir.join("makefile").is_file() {
            Tool::Make
        } else {
            return Err(ProjectError::NoBuild(dir.to_owned()));
        };
        Ok(Project {
            dir: dir.to_owned(),
            manifest,
            tool,
        })
    }

    /// Builds the project (cargo: `--release` unless `debug`) and returns
    /// the library it produced. The tool's own output goes to stderr.
    pub fn build(&self, debug: bool) -> Result<PathBuf, ProjectError> {
        match self.tool {
            Tool::Cargo => self.cargo_build(debug),
            Tool::Make => {
                let mut make = Command::new(std::env::var_os("MAKE").unwrap_or("make".into()));
                self.run("make", &mut make)?;
                self.library_in(&self.dir)
            }
            Tool::Go => {
                let mut go = Command::new(std::env::var_os("GO").unwrap_or("go".into()));
                go.args(["build", "-buildmode=c-shared", "-o"])
                    .arg(format!("{}.so", self.manifest.library()))
                    .arg(".")
                    .env("CGO_ENABLED", "1");
                self.run("go", &mut go)?;
                self.library_in(&self.dir)
            }
        }
    }

    /// Runs a build tool in the project directory, its output on stderr.
    fn run(&self, tool: &'static str, command: &mut Command) -> Result<(), ProjectError> {
        let status = command
            .current_dir(&self.dir)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|error| ProjectError::Spawn { tool, error })?;
        if !status.success() {
            return Err(ProjectError::BuildFailed { tool, status });
        }
        Ok(())
    }

    fn cargo_build(&self, debug: bool) -> Result<PathBuf, ProjectError> {
        let mut command = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
        command
            .arg("build")
            .arg("--message-format=json-render-diagnostics")
            .current_dir(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if !debug {
            command.arg("--release");
        }
        let out = command.output().map_err(|error| ProjectError::Spawn {
            tool: "cargo",
            error,
        })?;
        if !out.status.success() {
            return Err(ProjectError::BuildFailed {
                tool: "cargo",
                status: out.status,
            });
        }
        let own = std::fs::canonicalize(self.dir.join("Cargo.toml")).ok();
        let mut shared = None;
        let mut rlib = None;
        for line in out.stdout.split(|&b| b == b'\n') {
            let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            if message["reason"] != "compiler-artifact" {
                continue;
            }
            let manifest = message["manifest_path"].as_str().map(PathBuf::from);
            if manifest.and_then(|m| std::fs::canonicalize(m).ok()) != own {
                continue;
            }
            for file in message["filenames"].as_array().into_iter().flatten() {
                let Some(file) = file.as_str() else { continue };
                if file.ends_with(".so") {
                    shared = Some(PathBuf::from(file));
                } else if file.ends_with(".rlib") {
                    rlib = Some(PathBuf::from(file));
                }
            }
        }
        match (shared, rlib) {
            (Some(library), _) => {
                let expected = self.manifest.library();
                let found = library
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .map(|s| s.strip_prefix("lib").unwrap_or(s).to_owned());
                if found.as_deref() != Some(expected) {
                    return Err(ProjectError::NoLibrary {
                        library: expected.to_owned(),
                        handler: self.manifest.handler.clone(),
                        found: format!(": it built {}", library.display()),
                    });
                }
                Ok(library)
            }
            (None, Some(rlib)) => Err(ProjectError::NoCdylib(rlib)),
            (None, None) => Err(ProjectError::NoLibrary {
                library: self.manifest.library().to_owned(),
                handler: self.manifest.handler.clone(),
                found: ": cargo reported no library of this package".into(),
            }),
        }
    }

    /// The handler's library in `dir`, if it is there.
    fn library_in(&self, dir: &Path) -> Result<PathBuf, ProjectError> {
        let library = self.manifest.library();
        [
            dir.join(format!("{library}.so")),
            dir.join(format!("lib{library}.so")),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| ProjectError::NoLibrary {
            library: library.to_owned(),
            handler: self.manifest.handler.clone(),
            found: String::new(),
        })
    }

    /// Where the built library is, without building: cargo's
    /// `target/release` (else `target/debug`), or the project directory for
    /// make.
    pub fn code_dir(&self) -> PathBuf {
        match self.tool {
            Tool::Make | Tool::Go => self.dir.clone(),
            Tool::Cargo => {
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .map(|t| if t.is_absolute() { t } else { self.dir.join(t) })
                    .unwrap_or_else(|| self.dir.join("target"));
                let release = target.join("release");
                if self.library_in(&release).is_err()
                    && self.library_in(&target.join("debug")).is_ok()
                {
                    target.join("debug")
                } else {
                    release
                }
            }
        }
    }
}
