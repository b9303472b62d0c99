//! Persistent state of the server: functions, published versions, aliases,
//! triggers and asynchronous invocations, behind one interface
//! ([`Backend`]) with two implementations:
//!
//! - [`sqlite`]: the zero-configuration default, one file in the data
//!   directory (WAL, full sync), for a single node;
//! - [`postgres`]: one PostgreSQL database shared by every node of a
//!   cluster (`--database-url`), where each change also bumps the
//!   function's revision and notifies the other nodes.
//!
//! Records are JSON, one transaction per change, so a crash leaves either
//! the old or the new state. Each schema is versioned and migrated at open;
//! a node refuses a schema newer than it knows. Code packages live outside
//! the store, content-addressed (see `server::package`). Asynchronous
//! invocations: [`asynchronous`].

pub mod asynchronous;
mod group_commit;
pub mod kv;

pub use group_commit::CommitCounts;
pub mod postgres;
pub mod sqlite;

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use asynchronous::{Backlog, Claim, Claimed, InvocationWrite, Listed, Recovered};

/// A store error (I/O, corruption, a record that no longer parses, or a
/// database that cannot be reached).
#[derive(Debug, Clone, thiserror::Error)]
#[error("state store: {message}")]
pub struct StoreError {
    message: String,
    disk_full: bool,
    unavailable: bool,
    duplicate: bool,
}

impl StoreError {
    pub(crate) fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            disk_full: false,
            unavailable: false,
            duplicate: false,
        }
    }

    /// A row with this key exists already.
    pub(crate) fn duplicate(message: impl Into<String>) -> StoreError {
        StoreError {
            duplicate: true,
            ..StoreError::new(message)
        }
    }

    /// Whether the change was refused because a row with its key exists.
    pub fn is_duplicate(&self) -> bool {
        self.duplicate
    }

    /// The database could not be reached (or did not answer in time): the
    /// request may succeed once it is back.
    pub(crate) fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError {
            unavailable: true,
            ..StoreError::new(message)
        }
    }

    /// Whether the store failed because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        self.disk_full
    }

    /// Whether the database could not be reached for the moment.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::new(e.to_string())
    }
}

/// What a store implementation does, on records already encoded as JSON.
/// [`Store`] puts the typed, serde-based interface the server uses on top.
///
/// A change to a function's record, versions, aliases or triggers is one
/// transaction. Calls block the calling thread until the database answered
/// (the server makes them from blocking tasks).
pub trait Backend: Send + Sync {
    /// Inserts or replaces a function's record.
    fn put_function(&self, name: &str, record: String) -> Result<(), StoreError>;
    /// Deletes a function with its versions, aliases, triggers and
    /// asynchronous configurations.
    /// (Its asynchronous invocations still waiting end `FAIL`, 404, at
    /// `end_time`.)
    fn delete_function(&self, name: &str, end_time: &str) -> Result<(), StoreError>;
    /// Every function record, by name.
    fn functions(&self) -> Result<Vec<String>, StoreError>;
    /// One function's record.
    fn function(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Every function's name and revision (bumped by each change to the
    /// function, its versions, aliases or triggers; 0 where the store keeps
    /// none, as a single node's does not need them).
    fn revisions(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Adds a published version (in publication order).
    fn put_version(&self, function: &str, version: &str, record: String) -> Result<(), StoreError>;
    #[cfg(test)]
    /// Deletes a published version.
    fn delete_version(&self, function: &str, version: &str) -> Result<(), StoreError>;
    /// A function's versions, in publication order.
    fn versions(&self, function: &str) -> Result<Vec<String>, StoreError>;
    /// Inserts or replaces an alias.
    fn put_alias(&self, function: &str, name: &str, record: String) -> Result<(), StoreError>;
    /// Deletes an alias.
    fn delete_alias(&self, function: &str, name: &str) -> Result<(), StoreError>;
    /// A function's aliases, by name.
    fn aliases(&self, function: &str) -> Result<Vec<String>, StoreError>;
    /// Inserts or replaces a trigger.
    fn put_trigger(&self, id: &str, function: &str, record: String) -> Result<(), StoreError>;
    /// Deletes a trigger; whether it existed.
    fn delete_trigger(&self, id: &str) -> Result<bool, StoreError>;
    /// One trigger.
    fn trigger(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Every trigger (of `function`, when given), by id.
    fn triggers(&self, function: Option<&str>) -> Result<Vec<String>, StoreError>;

    /// Applies `writes` in one transaction (one sync to disk for all),
    /// and then `claim`, when given, in the same transaction: for each
    /// write, in order, whether it changed anything (an insert whose
    /// request id exists, an end or a retry whose attempt no longer holds
    /// the claim: `false`), and what was claimed (the first due first).
    /// The transaction is synced to disk before this returns only when a
    /// write must be ([`InvocationWrite::must_be_durable`]).
    /// An error means nothing was applied.
    fn write_invocations(
        &self,
        writes: &[InvocationWrite],
        claim: Option<&Claim>,
    ) -> Result<(Vec<bool>, Vec<Claimed>), StoreError>;
    /// Extends this node's claim of attempt `attempt` by `lease` from now
    /// (the database's clock); whether the claim is still this node's.
    fn renew_invocation(
        &self,
        request_id: &str,
        attempt: u32,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// When the next waiting invocation is due, if any waits.
    fn next_invocation_due(&self) -> Result<Option<i64>, StoreError>;
    /// Discards a waiting invocation of `function`; its status before.
    fn cancel_invocation(
        &self,
        function: &str,
        request_id: &str,
        end_time: &str,
    ) -> Result<Option<String>, StoreError>;
    /// At start: what to do with invocations a stopped node left running.
    fn recover_invocations(
        &self,
        now_ms: i64,
        max_interrupted: u32,
        end_time: &str,
    ) -> Result<Recovered, StoreError>;
    #[cfg(test)]
    /// The status of one invocation.
    fn invocation_status(&self, request_id: &str) -> Result<Option<String>, StoreError>;
    /// A function's invocations, newest first: how many match, and a page.
    fn list_invocations(
        &self,
        function: &str,
        request_id: Option<&str>,
        status: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<Listed>), StoreError>;
    /// Invocations not yet ended (waiting or running).
    fn unfinished_invocations(&self) -> Result<u64, StoreError>;
    /// Waiting invocations by function.
    fn invocation_backlog(&self) -> Result<Vec<Backlog>, StoreError>;
    /// Deletes old ended invocations; how many went.
    fn prune_invocations(&self, before_ms: i64, keep: u64) -> Result<usize, StoreError>;
    /// Inserts or replaces an asynchronous invocation configuration.
    fn put_async_config(&self, function: &str, record: String) -> Result<(), StoreError>;
    /// An asynchronous invocation configuration.
    fn async_config(&self, function: &str) -> Result<Option<String>, StoreError>;
    /// Deletes an asynchronous invocation configuration; whether it existed.
    fn delete_async_config(&self, function: &str) -> Result<bool, StoreError>;
    /// Opens key-value space `space` of function `function` (nothing if it
    /// is open already); [`delete_function`](Self::delete_function) closes
    /// it.
    fn kv_open(&self, function: &str, space: &str) -> Result<(), StoreError>;
    /// Closes key-value space `space` and deletes its keys (a change that
    /// opened it failed).
    fn kv_close(&self, space: &str) -> Result<(), StoreError>;
    /// The value of `key` in key-value space `space` (an error for one
    /// stored past [`kv::MAX_VALUE_BYTES`]).
    fn kv_get(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` under `key` in `space`, if it is open and within its
    /// bounds.
    fn kv_put(&self, space: &str, key: &str, value: &[u8]) -> Result<kv::Put, StoreError>;
    /// Deletes `key` from `space`; whether it was there.
    fn kv_delete(&self, space: &str, key: &str) -> Result<bool, StoreError>;
}

/// The server's state store: one [`Backend`], typed records.
pub struct Store {
    backend: std::sync::Arc<dyn Backend>,
    shared: bool,
    /// The committer of shared transactions, started at the first write.
    group_commit: std::sync::OnceLock<group_commit::GroupCommit>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(s)?)
}

fn all_from_json<T: DeserializeOwned>(records: Vec<String>) -> Result<Vec<T>, StoreError> {
    records.iter().map(|r| from_json(r)).collect()
}

impl Store {
    /// Opens (creating and migrating) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Ok(Store {
            backend: std::sync::Arc::new(sqlite::SqliteStore::open(path)?),
            shared: false,
            group_commit: std::sync::OnceLock::new(),
        })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://...`),
    /// migrating its schema under an advisory lock.
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            backend: std::sync::Arc::new(postgres::PostgresStore::connect(url)?),
            shared: true,
            group_commit: std::sync::OnceLock::new(),
        })
    }

    /// The committer of shared transactions (started at the first call).
    fn group_commit(&self) -> &group_commit::GroupCommit {
        self.group_commit
            .get_or_init(|| group_commit::GroupCommit::start(std::sync::Arc::clone(&self.backend)))
    }

    /// What the committer of shared transactions has done (`None` before
    /// its first write).
    pub fn commit_counts(&self) -> Option<&CommitCounts> {
        self.group_commit
            .get()
            .map(group_commit::GroupCommit::counts)
    }

    /// Whether other nodes share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Inserts or replaces a function's record.
    pub fn put_function<T: Serialize>(&self, name: &str, record: &T) -> Result<(), StoreError> {
        self.backend.put_function(name, to_json(record)?)
    }

    /// Deletes a function with its versions, aliases and triggers.
    /// Its asynchronous invocations still waiting end `FAIL` (404) at
    /// `end_time`: none runs on a function created later under its name.
    pub fn delete_function(&self, name: &str, end_time: &str) -> Result<(), StoreError> {
        self.backend.delete_function(name, end_time)
    }

    /// Every function record.
    pub fn functions<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        all_from_json(self.backend.functions()?)
    }

    /// One function's record.
    pub fn function<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StoreError> {
        self.backend
            .function(name)?
            .map(|r| from_json(&r))
            .transpose()
    }

    /// Every function's name and revision (see [`Backend::revisions`]).
    pub fn revisions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.backend.revisions()
    }

    /// Opens key-value space `space` of function `function`.
    pub fn kv_open(&self, function: &str, space: &str) -> Result<(), StoreError> {
        self.backend.kv_open(function, space)
    }

    /// Closes key-value space `space` and deletes its keys.
    pub fn kv_close(&self, space: &str) -> Result<(), StoreError> {
        self.backend.kv_close(space)
    }

    /// The value of `key` in key-value space `space`.
    pub fn kv_get(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.kv_get(space, key)
    }

    /// Stores `value` under `key` in key-value space `space`.
    pub fn kv_put(&self, space: &str, key: &str, value: &[u8]) -> Result<kv::Put, StoreError> {
        self.backend.kv_put(space, key, value)
    }

    /// Deletes `key` from key-value space `space`.
    pub fn kv_delete(&self, space: &str, key: &str) -> Result<bool, StoreError> {
        self.backend.kv_delete(space, key)
    }

    /// Adds a published version (in publication order).
    pub fn put_version<T: Serialize>(
        &self,
        function: &str,
        version: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.backend
            .put_version(function, version, to_json(record)?)
    }

    /// A function's versions, in publication order.
    pub fn versions<T: DeserializeOwned>(&self, function: &str) -> Result<Vec<T>, StoreError> {
        all_from_json(self.backend.versions(function)?)
    }

    /// Inserts or replaces an alias.
    pub fn put_alias<T: Serialize>(
        &self,
        function: &str,
        name: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.backend.put_alias(function, name, to_json(record)?)
    }

    /// Deletes an alias.
    pub fn delete_alias(&self, function: &str, name: &str) -> Result<(), StoreError> {
        self.backend.delete_alias(function, name)
    }

    /// A function's aliases.
    pub fn aliases<T: DeserializeOwned>(&self, function: &str) -> Result<Vec<T>, StoreError> {
        all_from_json(self.backend.aliases(function)?)
    }

    /// Inserts or replaces a trigger.
    pub fn put_trigger<T: Serialize>(
        &self,
        id: &str,
        function: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.backend.put_trigger(id, function, to_json(record)?)
    }

    /// Deletes a trigger.
    pub fn delete_trigger(&self, id: &str) -> Result<bool, StoreError> {
        self.backend.delete_trigger(id)
    }

    /// One trigger.
    pub fn trigger<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        self.backend.trigger(id)?.map(|r| from_json(&r)).transpose()
    }

    /// Every trigger (of `function`, when given).
    pub fn triggers<T: DeserializeOwned>(
        &self,
        function: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        all_from_json(self.backend.triggers(function)?)
    }
}

/// Fresh PostgreSQL databases for tests.
#[cfg(test)]
pub(crate) mod test_database {
    /// A database of its own on the test server, dropped with this.
    pub(crate) struct TestDatabase {
        pub url: String,
        admin: String,
        name: String,
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    async fn admin(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A fresh database on the server `FNHOST_TEST_POSTGRES` names (what
    /// `scripts/postgres.sh` prints; 127.0.0.1:5432 by default). `None`
    /// when none answers, unless `FNHOST_REQUIRE_POSTGRES` is set (as
    /// `scripts/test.sh` sets it): then that is a failure.
    pub(crate) fn fresh() -> Option<TestDatabase> {
        let admin_url = std::env::var("FNHOST_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("fnhost_test_{}", uuid::Uuid::new_v4().simple());
        let created = run(async {
            let client = admin(&admin_url).await?;
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
        });
        match created {
            Ok(()) => {}
            Err(e) if std::env::var_os("FNHOST_REQUIRE_POSTGRES").is_some() => {
                panic!("no PostgreSQL at {admin_url}: {e}")
            }
            Err(e) => {
                eprintln!(
                    "skipped: no PostgreSQL at {admin_url} ({e}); scripts/test.sh starts one"
                );
                return None;
            }
        }
        let base = admin_url.rsplit_once('/').map_or(&*admin_url, |(b, _)| b);
        Some(TestDatabase {
            url: format!("{base}/{name}"),
            admin: admin_url,
            name,
        })
    }

    impl Drop for TestDatabase {
        fn drop(&mut self) {
            let (admin_url, name) = (self.admin.clone(), self.name.clone());
            // Its own thread: a test may drop this inside a runtime.
            let _ = std::thread::spawn(move || {
                run(async {
                    if let Ok(client) = admin(&admin_url).await {
                        let _ = client
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                })
            })
            .join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same checks on a store and on a second one opened on the same
    /// state (a restart, or another node).
    fn records_survive_reopening_and_cascade_on_delete(open: &dyn Fn() -> Store) {
        {
            let s = open();
            s.put_function("echo", &serde_json::json!({"n": 1}))
                .unwrap();
            s.put_function("echo", &serde_json::json!({"n": 2}))
                .unwrap();
            s.put_version("echo", "v1", &serde_json::json!({"v": 1}))
                .unwrap();
            s.put_version("echo", "v2", &serde_json::json!({"v": 2}))
                .unwrap();
            s.put_alias("echo", "prod", &serde_json::json!({"a": 1}))
                .unwrap();
            s.put_trigger("t1", "echo", &serde_json::json!({"t": 1}))
                .unwrap();
            s.put_async_config("echo:prod", &serde_json::json!({"c": 1}))
                .unwrap();
        }
        let s = open();
        assert_eq!(
            s.functions::<serde_json::Value>().unwrap(),
            vec![serde_json::json!({"n": 2})]
        );
        let versions: Vec<serde_json::Value> = s.versions("echo").unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0]["v"], 1, "publication order");
        assert_eq!(
            s.triggers::<serde_json::Value>(Some("echo")).unwrap().len(),
            1
        );
        assert_eq!(
            s.trigger::<serde_json::Value>("t1").unwrap(),
            Some(serde_json::json!({"t": 1}))
        );
        assert!(s.trigger::<serde_json::Value>("t2").unwrap().is_none());
        s.delete_function("echo", "t").unwrap();
        assert!(s.functions::<serde_json::Value>().unwrap().is_empty());
        assert!(s.versions::<serde_json::Value>("echo").unwrap().is_empty());
        assert!(s.aliases::<serde_json::Value>("echo").unwrap().is_empty());
        assert!(s.triggers::<serde_json::Value>(None).unwrap().is_empty());
        assert!(s
            .async_config::<serde_json::Value>("echo:prod")
            .unwrap()
            .is_none());
    }

    /// A function's key-value space: its own, bounded, and gone with it;
    /// a closed space takes no writes.
    fn kv_spaces_are_scoped_bounded_and_deleted_with_their_function(open: &dyn Fn() -> Store) {
        let s = open();
        s.put_function("a", &serde_json::json!({})).unwrap();
        s.kv_open("a", "space-a1").unwrap();
        s.kv_open("a", "space-a1").unwrap();
        s.kv_open("b", "space-b").unwrap();
        assert_eq!(s.kv_put("space-a1", "k", b"one").unwrap(), kv::Put::Stored);
        assert_eq!(s.kv_put("space-a1", "k", b"two").unwrap(), kv::Put::Stored);
        assert_eq!(s.kv_put("space-b", "k", b"b's").unwrap(), kv::Put::Stored);
        assert_eq!(
            s.kv_put("never-opened", "k", b"x").unwrap(),
            kv::Put::Closed
        );
        let s = open();
        assert_eq!(
            s.kv_get("space-a1", "k").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(
            s.kv_get("space-b", "k").unwrap().as_deref(),
            Some(&b"b's"[..])
        );
        assert_eq!(s.kv_get("space-a1", "missing").unwrap(), None);
        assert_eq!(s.kv_get("never-opened", "k").unwrap(), None);
        // Bytes: 15 values of 1 MiB fit in 16 MiB with their keys, a 16th
        // does not, and replacing one that is there still does.
        let big = vec![7u8; kv::MAX_VALUE_BYTES];
        for i in 0..15 {
            assert_eq!(
                s.kv_put("space-a1", &format!("big{i}"), &big).unwrap(),
                kv::Put::Stored
            );
        }
        assert_eq!(
            s.kv_put("space-a1", "big15", &big).unwrap(),
            kv::Put::TooManyBytes
        );
        assert_eq!(s.kv_put("space-a1", "big3", &big).unwrap(), kv::Put::Stored);
        assert_eq!(
            s.kv_get("space-a1", "big15").unwrap(),
            None,
            "nothing stored"
        );
        assert!(s.kv_delete("space-a1", "big0").unwrap());
        assert!(!s.kv_delete("space-a1", "big0").unwrap());
        assert_eq!(
            s.kv_put("space-a1", "big15", &big).unwrap(),
            kv::Put::Stored
        );
        // Deleting the function closes its space and deletes its keys; a
        // late write of its calls lands nowhere; a new function of the
        // same name has a new space.
        s.delete_function("a", "t").unwrap();
        assert_eq!(
            s.kv_get("space-a1", "k").unwrap(),
            None,
            "gone with its function"
        );
        assert_eq!(s.kv_get("space-a1", "big3").unwrap(), None);
        assert_eq!(s.kv_put("space-a1", "late", b"x").unwrap(), kv::Put::Closed);
        assert_eq!(s.kv_get("space-a1", "late").unwrap(), None);
        s.kv_open("a", "space-a2").unwrap();
        assert_eq!(s.kv_get("space-a2", "k").unwrap(), None);
        // A space closed alone (its function's creation failed).
        assert_eq!(s.kv_put("space-a2", "k", b"x").unwrap(), kv::Put::Stored);
        s.kv_close("space-a2").unwrap();
        assert_eq!(s.kv_get("space-a2", "k").unwrap(), None);
        assert_eq!(s.kv_put("space-a2", "k", b"x").unwrap(), kv::Put::Closed);
        assert_eq!(
            s.kv_get("space-b", "k").unwrap().as_deref(),
            Some(&b"b's"[..])
        );
    }

    #[test]
    fn the_kv_bound_counts_keys_and_bytes() {
        assert_eq!(kv::admit(0, 0, 10), kv::Put::Stored);
        assert_eq!(kv::admit(kv::MAX_KEYS as i64 - 1, 0, 10), kv::Put::Stored);
        assert_eq!(kv::admit(kv::MAX_KEYS as i64, 0, 10), kv::Put::TooManyKeys);
        assert_eq!(kv::admit(1, kv::MAX_BYTES as i64 - 10, 10), kv::Put::Stored);
        assert_eq!(
            kv::admit(1, kv::MAX_BYTES as i64 - 9, 10),
            kv::Put::TooManyBytes
        );
        assert_eq!(kv::admit(1, i64::MAX, i64::MAX), kv::Put::TooManyBytes);
    }

    #[test]
    fn sqlite_kv_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        kv_spaces_are_scoped_bounded_and_deleted_with_their_function(&|| {
            Store::open(&path).unwrap()
        });
    }

    #[test]
    fn postgres_kv_spaces() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        kv_spaces_are_scoped_bounded_and_deleted_with_their_function(&|| {
            Store::connect(&db.url).unwrap()
        });
    }

    #[test]
    fn a_kv_value_stored_past_the_bound_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Store::open(&path).unwrap());
        let db = rusqlite::Connection::open(&path).unwrap();
        db.execute(
            "INSERT INTO function_kv (space, key, value, size) VALUES ('a', 'k', ?1, 1)",
            [vec![0u8; kv::MAX_VALUE_BYTES + 1]],
        )
        .unwrap();
        drop(db);
        let e = Store::open(&path).unwrap().kv_get("a", "k").unwrap_err();
        assert!(e.to_string().contains("more than"), "{e}");
    }

    #[test]
    fn sqlite_records_survive_reopening_and_cascade_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        records_survive_reopening_and_cascade_on_delete(&|| Store::open(&path).unwrap());
    }

    #[test]
    fn postgres_records_survive_reconnecting_and_cascade_on_delete() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        records_survive_reopening_and_cascade_on_delete(&|| Store::connect(&db.url).unwrap());
    }
}
