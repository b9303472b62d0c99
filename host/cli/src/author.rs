//! `fnhost new`, `build` and `package`: the author's loop over
//! [`fnhost_author`], with the runtime's pre-flight checking what was built.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};
use fnhost::Runtime;
use fnhost_author::project::Project;
use fnhost_author::scaffold::{self, Lang, Template};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LangArg {
    Rust,
    C,
    /// FunctionGraph's Go runtime SDK (huaweicloud.com/go-runtime).
    Go,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum TemplateArg {
    /// Takes JSON, answers JSON.
    Plain,
    /// An HTTP handler behind an APIG trigger (Rust, Go).
    Apig,
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The function's (and project's) name.
    name: String,
    /// The project's language.
    #[arg(long, value_enum, default_value = "rust")]
    lang: LangArg,
    /// What the handler does.
    #[arg(long, value_enum, default_value = "plain")]
    template: TemplateArg,
    /// Where to create it (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// The project (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Build without --release (cargo).
    #[arg(long)]
    debug: bool,
    /// Directory for content-addressed library copies.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PackageArgs {
    #[command(flatten)]
    build: BuildArgs,
    /// Where to write the zip (default: target/fnhost/NAME.zip in the project).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    #[command(flatten)]
    build: BuildArgs,
    #[command(flatten)]
    server: crate::remote::ServerArgs,
    #[command(flatten)]
    output: crate::remote::OutputArgs,
}

/// Exit status of a deploy that did not happen.
const EXIT_DEPLOY_FAILED: i32 = 1;

pub(crate) fn deploy(a: DeployArgs) -> anyhow::Result<i32> {
    let remote = a.server.remote()?;
    let (project, library) = build_checked(&a.build)?;
    let out = project
        .dir
        .join("target/fnhost")
        .join(format!("{}.zip", project.manifest.name));
    let zip = fnhost_author::package::write(&library, project.manifest.library(), &out)?;
    let bytes = std::fs::read(&zip)?;
    // The runtime a new function declares (informational; the library decides).
    let runtime = if fnhost::is_go_library(&std::fs::read(&library)?) {
        "Go1.x"
    } else {
        "Rust1.x"
    };
    match fnhost_author::lifecycle::deploy(
        &remote.client,
        &remote.project,
        &project.manifest,
        runtime,
        &bytes,
    ) {
        Ok(done) => {
            eprintln!(
                "{} {}{}",
                if done.created { "created" } else { "updated" },
                project.manifest.name,
                match done.triggers_created {
                    0 => String::new(),
                    n => format!(", {n} trigger(s) created"),
                }
            );
            match a.output.output {
                crate::remote::Output::Json => println!(
                    "{}",
                    serde_json::json!({
                        "func_urn": done.urn,
                        "created": done.created,
                        "triggers_created": done.triggers_created,
                    })
                ),
                crate::remote::Output::Text => println!("{}", done.urn),
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(EXIT_DEPLOY_FAILED)
        }
    }
}

pub(crate) fn new(a: NewArgs) -> anyhow::Result<i32> {
    let lang = match a.lang {
        LangArg::Rust => Lang::Rust,
        LangArg::C => Lang::C,
        LangArg::Go => Lang::Go,
    };
    let template = match a.template {
        TemplateArg::Plain => Template::Plain,
        TemplateArg::Apig => Template::Apig,
    };
    let dir = a.dir.unwrap_or_else(|| PathBuf::from(&a.name));
    let files = scaffold::create(&dir, &a.name, lang, template)?;
    for file in &files {
        println!("created {}", dir.join(file).display());
    }
    let go_build = format!(
        "go build -buildmode=c-shared -o {}.so .",
        a.name.replace('-', "_")
    );
    let build = match lang {
        Lang::Rust => "cargo build --release",
        Lang::C => "make",
        Lang::Go => &go_build,
    };
    let data = match template {
        Template::Plain => "fnhost invoke --data '{\"name\": \"ada\"}'",
        Template::Apig => "fnhost event apig | fnhost invoke",
    };
    println!(
        "next: cd {} && {build} && {data}   (or `fnhost build`, then `fnhost watch --build`)",
        dir.display()
    );
    Ok(0)
}

/// Builds the project and checks what it built in a pre-flight worker: its
/// ABI, and that the manifest's handler and initializer are in it. Returns
/// the project and the library.
fn build_checked(a: &BuildArgs) -> anyhow::Result<(Project, PathBuf)> {
    let project = Project::open(&a.dir)?;
    let library = project.build(a.debug)?;
    let runtime = Runtime::new(fnhost::RuntimeConfig {
        cache_dir: a.cache_dir.clone(),
        ..fnhost::RuntimeConfig::default()
    })?;
    let report = runtime.inspect_library(&library)?;
    let manifest = &project.manifest;
    let handler = manifest.handler.rsplit('.').next().unwrap_or_default();
    if !report.handlers.iter().any(|h| h == handler) {
        bail!(
            "{} has no handler `{handler}` (fnhost.toml's handler is `{}`); it has: {}",
            library.display(),
            manifest.handler,
            report.handlers.join(", ")
        );
    }
    if let Some(init) = manifest.initializer_entry() {
        let init = init.rsplit('.').next().unwrap_or_default().to_owned();
        if !report.initializers.contains(&init) {
            bail!(
                "{} has no initializer `{init}` (fnhost.toml's initializer); it has: {}",
                library.display(),
                if report.initializers.is_empty() {
                    "(none)".to_owned()
                } else {
                    report.initializers.join(", ")
                }
            );
        }
    }
    for warning in fnhost_author::agreement::trigger_warnings(manifest, &report.handler_events) {
        eprintln!("warning: {warning}");
    }
    eprintln!(
        "built {} ({} bytes): plugin {}, ABI {}.{}{}, handlers: {}; initializers: {}",
        library.display(),
        report.size,
        report.name,
        report.abi.0,
        report.abi.1,
        if report.layout_checked {
            ", layout checked"
        } else {
            ""
        },
        report
            .handler_events
            .iter()
            .map(|(name, event)| match event.as_str() {
                "" => name.clone(),
                event => format!("{name} ({event})"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        if report.initializers.is_empty() {
            "(none)".to_owned()
        } else {
            report.initializers.join(", ")
        }
    );
    Ok((project, library))
}

pub(crate) fn build(a: BuildArgs) -> anyhow::Result<i32> {
    let (_, library) = build_checked(&a)?;
    println!("{}", library.display());
    Ok(0)
}

pub(crate) fn package(a: PackageArgs) -> anyhow::Result<i32> {
    let (project, library) = build_checked(&a.build)?;
    let out = a.out.unwrap_or_else(|| {
        project
            .dir
            .join("target/fnhost")
            .join(format!("{}.zip", project.manifest.name))
    });
    let written = fnhost_author::package::write(&library, project.manifest.library(), &out)?;
    println!("{}", display(&written));
    Ok(0)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
