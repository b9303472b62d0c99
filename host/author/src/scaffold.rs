//! `fnhost new`: a ready project, built with its own tool and invoked with
//! `fnhost invoke` without edits.
//!
//! - Rust: a `cdylib` crate depending on `fnhost-api` (by path: the
//!   `plugin-api` directory of the fnhost this was built from, or
//!   `$FNHOST_API_PATH`), a handler using the context and both loggers, an
//!   initializer, a unit test with `TestContext`, and `fnhost.toml`.
//! - C: `fnhost.h` (copied in), a Makefile, a handler and an initializer,
//!   and `fnhost.toml`.
//! - Go: a FunctionGraph Go handler (`main.go`, `runtime.Register` in
//!   `main()`), a `go.mod` whose `replace` points `huaweicloud.com/go-runtime`
//!   at the `plugin-api/go-runtime` next to the `fnhost-api` above, and
//!   `fnhost.toml` (no initializer: FunctionGraph's Go SDK has none; the
//!   default isolation runs it in worker processes).
//!
//! Templates: `plain` (a JSON handler) and `apig` (an HTTP handler behind an
//! APIG trigger).

use std::path::{Path, PathBuf};

use fnhost_manifest::{Manifest, Trigger, FILE_NAME};

/// The language of a new project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// A Rust `cdylib` crate.
    Rust,
    /// A C project with a Makefile.
    C,
    /// A Go module built with `go build -buildmode=c-shared`.
    Go,
}

/// What the new handler does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// Takes JSON, answers JSON.
    Plain,
    /// Takes an APIG event, answers an APIG response; the manifest has an
    /// APIG trigger.
    Apig,
}

/// Why no project was created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot be a function (and crate) name.
    #[error("`{0}` cannot be a function name: use 1 to 60 letters, digits, `-` and `_`, starting with a letter")]
    Name(String),
    /// The target directory exists and is not empty.
    #[error("{0} exists and is not empty: choose another --dir")]
    NotEmpty(PathBuf),
    /// No `fnhost-api` to depend on.
    #[error("cannot find fnhost-api (the plugin-api directory of an fnhost checkout): set FNHOST_API_PATH to it")]
    NoApi,
    /// A template is not available for this language.
    #[error("the {0} template is for Rust and Go projects")]
    Unsupported(&'static str),
    /// Writing failed.
    #[error("cannot write {path}: {error}")]
    Io {
        /// What was being written.
        path: PathBuf,
        /// Why it failed.
        error: std::io::Error,
    },
}

const RUST_CARGO: &str = include_str!("templates/rust_Cargo.toml");
const RUST_PLAIN: &str = include_str!("templates/rust_plain.rs");
const RUST_APIG: &str = include_str!("templates/rust_apig.rs");
const C_HANDLER: &str = include_str!("templates/c_handler.c");
const C_MAKEFILE: &str = include_str!("templates/c_Makefile");
const GO_MOD: &str = include_str!("templates/go_mod");
const GO_PLAIN: &str = include_str!("templates/go_plain.go");
const GO_APIG: &str = include_str!("templates/go_apig.go");
/// The ABI header, as this fnhost was built with it.
const FNHOST_H: &str = include_str!("../../../plugin-api/include/fnhost.h");

/// The `plugin-api` directory `fnhost new` points a Rust project at:
/// `$FNHOST_API_PATH`, else the one this fnhost was built from (when it
/// still exists).
pub fn api_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FNHOST_API_PATH") {
        let path = PathBuf::from(path);
        return path.join("Cargo.toml").is_file().then_some(path);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugin-api");
    let built = std::fs::canonicalize(built).ok()?;
    built.join("Cargo.toml").is_file().then_some(built)
}

fn valid_name(name: &str) -> bool {
    name.len() <= 60
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The files of a new project, relative to its directory.
pub fn files(
    name: &str,
    lang: Lang,
    template: Template,
    api: Option<&Path>,
) -> Result<Vec<(PathBuf, String)>, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::Name(name.to_owned()));
    }
    // cargo names the library after the crate, with `-` as `_`.
    let lib = name.replace('-', "_");
    let fill = |text: &str, api: &str| {
        text.replace("{{name}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{api}}", api)
    };
    let mut manifest = Manifest {
        name: name.to_owned(),
        handler: format!("{lib}.Handler"),
        initializer: Some(format!("{lib}.Init")),
        memory_mb: 128,
        timeout_s: 3,
        initializer_timeout_s: None,
        isolation: Some(fnhost::Isolation::InProcess),
        concurrency: Default::default(),
        user_data: [("GREETING".to_owned(), "hello".to_owned())].into(),
        sandbox: None,
        host_functions: Vec::new(),
        triggers: Vec::new(),
    };
    if lang == Lang::Go {
        manifest.initializer = None;
        manifest.isolation = None;
    }
    if template == Template::Apig {
        manifest.triggers.push(Trigger::Apig {
            path: format!("/{name}"),
            method: "ANY".into(),
        });
    }
    let header = format!(
        "# The function {name}: read by `fnhost invoke`, `build`, `package`, `deploy`\n# and a server's --functions-dir. Keys: see the book, docs/src/manifest.md.\n"
    );
    let mut out = vec![(PathBuf::from(FILE_NAME), header + &manifest.to_toml())];
    match lang {
        Lang::Rust | Lang::Go => {
            let api = api.ok_or(ScaffoldError::NoApi)?;
            let api = api.to_string_lossy().replace('\\', "/");
            // (build file, its template, source file, plain, apig, ignored)
            let (build, build_text, source, plain, apig, ignore) = if lang == Lang::Rust {
                (
                    "Cargo.toml",
                    RUST_CARGO,
                    "src/lib.rs",
                    RUST_PLAIN,
                    RUST_APIG,
                    "/target\n",
                )
            } else {
                (
                    "go.mod",
                    GO_MOD,
                    "main.go",
                    GO_PLAIN,
                    GO_APIG,
                    "*.so\n*.h\n",
                )
            };
            let text = match template {
                Template::Plain => plain,
                Template::Apig => apig,
            };
            out.push((build.into(), fill(build_text, &api)));
            out.push((source.into(), fill(text, &api)));
            out.push((".gitignore".into(), ignore.into()));
        }
        Lang::C => {
            if template == Template::Apig {
                return Err(ScaffoldError::Unsupported("apig"));
            }
            out.push((format!("{lib}.c").into(), fill(C_HANDLER, "")));
            out.push(("Makefile".into(), fill(C_MAKEFILE, "")));
            out.push(("include/fnhost.h".into(), FNHOST_H.to_owned()));
            out.push((".gitignore".into(), "*.so\n".into()));
        }
    }
    Ok(out)
}

/// Creates the project in `dir` (which must not exist or be empty);
/// returns the files written.
pub fn create(
    dir: &Path,
    name: &str,
    lang: Lang,
    template: Template,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    let api = match lang {
        Lang::Rust | Lang::Go => Some(api_path().ok_or(ScaffoldError::NoApi)?),
        Lang::C => None,
    };
    let files = files(name, lang, template, api.as_deref())?;
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ScaffoldError::NotEmpty(dir.to_owned()));
    }
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(&rel);
        let io = |error| ScaffoldError::Io {
            path: path.clone(),
            error,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
        written.push(rel);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_a_valid_manifest_and_no_placeholder_left() {
        for (lang, template) in [
            (Lang::Rust, Template::Plain),
            (Lang::Rust, Template::Apig),
            (Lang::C, Template::Plain),
            (Lang::Go, Template::Plain),
            (Lang::Go, Template::Apig),
        ] {
            let files = files("my-fn", lang, template, Some(Path::new("/api"))).unwrap();
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{}: {text}", path.display());
            }
            let (_, manifest) = files
                .iter()
                .find(|(p, _)| p == Path::new(FILE_NAME))
                .unwrap();
            let m = Manifest::parse(manifest, Path::new(FILE_NAME)).unwrap();
            assert_eq!(m.handler, "my_fn.Handler");
            let init = (lang != Lang::Go).then_some("my_fn.Init");
            assert_eq!(m.initializer_entry().as_deref(), init);
            assert_eq!(m.triggers.len(), usize::from(template == Template::Apig));
        }
    }

    #[test]
    fn bad_names_and_non_empty_directories_are_refused() {
        for name in ["", "9lives", "a b", "a.b", &"x".repeat(61)] {
            assert!(matches!(
                files(name, Lang::C, Template::Plain, None),
                Err(ScaffoldError::Name(_))
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep"), "").unwrap();
        assert!(matches!(
            create(dir.path(), "x", Lang::C, Template::Plain),
            Err(ScaffoldError::NotEmpty(_))
        ));
        assert!(matches!(
            files("x", Lang::C, Template::Apig, None),
            Err(ScaffoldError::Unsupported(_))
        ));
    }
}
