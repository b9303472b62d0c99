//! Which server a command talks to, how it signs, and what it prints: the
//! flags every server command shares (`deploy`, `invoke --url`, `logs`,
//! `publish`, `alias`, `trigger`, `functions`, `config`, `sign`).

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};

/// Which server a command talks to, and how it signs.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The server (default $FNHOST_URL, else http://127.0.0.1:8000).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// The project id in the API's paths (default $FNHOST_PROJECT_ID, else local).
    #[arg(long, value_name = "ID")]
    project: Option<String>,
    /// A JSON file with "access_key" and "secret_key" (default: the
    /// FNHOST_ACCESS_KEY and FNHOST_SECRET_KEY variables; neither: unsigned).
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
}

impl ServerArgs {
    /// The server these flags name.
    pub(crate) fn remote(self) -> anyhow::Result<Remote> {
        remote(self.url, self.project, self.keys.as_deref())
    }
}

/// Where the server is and how to sign for it, from flags, the environment
/// or a keys file.
pub(crate) struct Remote {
    pub(crate) client: fnhost_author::client::Client,
    pub(crate) project: String,
}

pub(crate) fn remote(
    url: Option<String>,
    project: Option<String>,
    keys: Option<&Path>,
) -> anyhow::Result<Remote> {
    let url = url
        .or_else(|| std::env::var("FNHOST_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8000".to_owned());
    let project = project
        .or_else(|| std::env::var("FNHOST_PROJECT_ID").ok())
        .unwrap_or_else(|| "local".to_owned());
    let keys = match keys {
        Some(file) => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Keys {
                access_key: String,
                secret_key: String,
            }
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let k: Keys = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            Some((k.access_key, k.secret_key))
        }
        None => match (
            std::env::var("FNHOST_ACCESS_KEY"),
            std::env::var("FNHOST_SECRET_KEY"),
        ) {
            (Ok(ak), Ok(sk)) => Some((ak, sk)),
            (Err(_), Err(_)) => None,
            _ => bail!("set both FNHOST_ACCESS_KEY and FNHOST_SECRET_KEY, or neither"),
        },
    };
    Ok(Remote {
        client: fnhost_author::client::Client::new(&url, keys)?,
        project,
    })
}

/// What a command prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// The server's JSON answer, for programs.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// What to print: text, or json (the server's answer).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub(crate) output: Output,
}
