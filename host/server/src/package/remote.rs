//! The cluster's code packages in object storage: every node writes the
//! zip of a package it accepted to `PREFIX/<digest>.zip`, create-only, and
//! a node that lacks a package locally downloads it from there, checks its
//! SHA-256 against the digest it asked for, and then treats it as an upload
//! of its own (the same checks, extracted into its local cache).
//!
//! `s3://BUCKET/PREFIX` uses the standard `AWS_*` variables (credentials,
//! `AWS_DEFAULT_REGION`, and `AWS_ENDPOINT_URL` for an S3-compatible
//! server; plain `http://` endpoints are allowed when named so);
//! `file:///DIR` is a directory every node mounts. Calls block the calling
//! thread (on a small runtime of this store's own) for at most
//! [`TRANSFER_TIMEOUT`], and a download is refused past [`MAX_ZIP_BYTES`].

use std::io;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use sha2::{Digest, Sha256};

/// The longest a package's upload or download may take.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

/// How long failed requests to object storage are retried.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// The largest zip accepted from object storage (the API accepts at most
/// 96 MiB of request body for one).
pub const MAX_ZIP_BYTES: u64 = 128 * 1024 * 1024;

/// Packages in an object store.
pub struct RemotePackages {
    runtime: Option<tokio::runtime::Runtime>,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// The URL without credentials, for messages.
    shown: String,
}

impl std::fmt::Debug for RemotePackages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePackages")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Drop for RemotePackages {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl RemotePackages {
    /// Opens `url`: `s3://BUCKET[/PREFIX]` or `file:///DIR`.
    pub fn open(url: &str) -> io::Result<RemotePackages> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--package-store {url}: {why} (expected s3://BUCKET/PREFIX or file:///DIR)"
                ),
            )
        };
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if let Some(rest) =
            url.strip_prefix("s3://")
        {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket"));
            }
            let mut builder = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                // A few quick retries, within the transfer's deadline (the
                // client's default retries for three minutes).
                .with_retry(object_store::RetryConfig {
                    max_retries: 3,
                    retry_timeout: RETRY_FOR,
                    backoff: object_store::BackoffConfig::default(),
                });
            if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
                .ok()
                .filter(|e| !e.is_empty())
            {
                builder = builder
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint);
            }
            (Arc::new(builder.build().map_err(other)?), prefix.to_owned())
        } else if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(invalid("a file:// store needs an absolute directory"));
            }
            std::fs::create_dir_all(dir)?;
            (
                Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(other)?,
                ),
                String::new(),
            )
        } else {
            return Err(invalid("unknown scheme"));
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fnhost-packages")
            .enable_all()
            .build()?;
        Ok(RemotePackages {
            runtime: Some(runtime),
            store,
            prefix: ObjectPath::from(prefix.trim_matches('/')),
            // A file:// URL is a path of this machine: never in an answer.
            shown: if url.starts_with("file://") {
                "the shared package directory".to_owned()
            } else {
                url.to_owned()
            },
        })
    }

    fn path(&self, digest: &str) -> ObjectPath {
        self.prefix.child(format!("{digest}.zip"))
    }

    fn run<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = io::Result<T>> + Send + 'static,
    ) -> io::Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| io::Error::other("the package store is closing"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let result = tokio::time::timeout(TRANSFER_TIMEOUT, work)
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the package store did not answer within {} s",
                            TRANSFER_TIMEOUT.as_secs()
                        ),
                    ))
                });
            let _ = tx.send(result);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(io::Error::other("the package store's task ended")))
    }

    /// Writes a package's zip under its digest, unless it is there already
    /// (create-only; the bytes under a digest never change).
    pub fn put(&self, digest: &str, zip: &[u8]) -> io::Result<()> {
        let (store, path) = (Arc::clone(&self.store), self.path(digest));
        let payload = PutPayload::from(zip.to_vec());
        let shown = self.shown.clone();
        self.run(async move {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match store.put_opts(&path, payload.clone(), options).await {
                Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
                // A store without conditional writes: the same bytes under
                // the same name, so an overwrite changes nothing.
                Err(object_store::Error::NotImplemented)
                | Err(object_store::Error::Precondition { .. }) => {
                    if store.head(&path).await.is_ok() {
                        return Ok(());
                    }
                    store.put(&path, payload).await.map(drop).map_err(other)
                }
                Err(e) => Err(other(format!("cannot write the package to {shown}: {e}"))),
            }
        })
    }

    /// The zip stored under `digest`, checked against it; `None` when the
    /// store has none.
    pub fn get(&self, digest: &str) -> io::Result<Option<Vec<u8>>> {
        let (store, path) = (Arc::clone(&self.store), self.path(digest));
        let shown = self.shown.clone();
        let zip = self.run(async move {
            let found = match store.get(&path).await {
                Ok(found) => found,
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(other(format!("cannot read a package from {shown}: {e}"))),
            };
            if found.meta.size > MAX_ZIP_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "a package in {shown} is {} bytes, over the limit",
                        found.meta.size
                    ),
                ));
            }
            Ok(Some(found.bytes().await.map_err(other)?.to_vec()))
        })?;
        match zip {
            Some(zip) if zip.len() as u64 > MAX_ZIP_BYTES => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a package is over the size limit",
            )),
            Some(zip) if hex::encode(Sha256::digest(&zip)) != digest => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the package {digest} in {} does not match its digest",
                    self.shown
                ),
            )),
            other => Ok(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_are_written_once_and_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("bucket").display());
        let remote = RemotePackages::open(&url).unwrap();
        let zip = b"not really a zip, but bytes".to_vec();
        let digest = hex::encode(Sha256::digest(&zip));
        assert_eq!(remote.get(&digest).unwrap(), None);
        remote.put(&digest, &zip).unwrap();
        remote.put(&digest, &zip).unwrap();
        assert_eq!(remote.get(&digest).unwrap().as_deref(), Some(&zip[..]));
        // Someone changed the bytes under the digest: refused.
        std::fs::write(
            dir.path().join("bucket").join(format!("{digest}.zip")),
            b"evil",
        )
        .unwrap();
        let e = remote.get(&digest).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(RemotePackages::open("ftp://x").is_err());
        assert!(RemotePackages::open("file://relative").is_err());
    }
}
