//! Persistent state of the server: functions, published versions, aliases
//! and triggers, as JSON records in SQLite (WAL, full sync), one transaction
//! per change, so a crash leaves either the old or the new state. Code
//! packages live beside it, content-addressed (see `server::package`).
//! The schema is versioned (`PRAGMA user_version`) and migrated at open.
//! Asynchronous invocations and their configuration: [`asynchronous`].

pub mod asynchronous;

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Migrations, in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "CREATE TABLE functions (name TEXT PRIMARY KEY, record TEXT NOT NULL);
     CREATE TABLE versions (function TEXT NOT NULL, version TEXT NOT NULL, seq INTEGER NOT NULL,
                            record TEXT NOT NULL, PRIMARY KEY (function, version));
     CREATE TABLE aliases (function TEXT NOT NULL, name TEXT NOT NULL, record TEXT NOT NULL,
                           PRIMARY KEY (function, name));
     CREATE TABLE triggers (id TEXT PRIMARY KEY, function TEXT NOT NULL, record TEXT NOT NULL);",
    // 2: durable asynchronous invocations, and their configuration per
    // function. Times are milliseconds since the Unix epoch; start and end
    // times are kept as FunctionGraph lists them.
    "CREATE TABLE async_invocations (
         request_id TEXT PRIMARY KEY,
         function TEXT NOT NULL,
         target TEXT NOT NULL,
         payload BLOB NOT NULL,
         status TEXT NOT NULL,
         attempts INTEGER NOT NULL DEFAULT 0,
         interrupted INTEGER NOT NULL DEFAULT 0,
         accepted_ms INTEGER NOT NULL,
         next_ms INTEGER NOT NULL,
         start_time TEXT NOT NULL DEFAULT '',
         end_time TEXT NOT NULL DEFAULT '',
         error_code INTEGER NOT NULL DEFAULT 0,
         error_message TEXT NOT NULL DEFAULT '',
         traceparent TEXT NOT NULL DEFAULT '',
         tracestate TEXT NOT NULL DEFAULT '',
         source TEXT NOT NULL DEFAULT 'api',
         depth INTEGER NOT NULL DEFAULT 0);
     CREATE INDEX async_by_function ON async_invocations (function, accepted_ms);
     CREATE INDEX async_by_status ON async_invocations (status, next_ms);
     CREATE TABLE async_configs (function TEXT PRIMARY KEY, record TEXT NOT NULL);",
];

/// A store error (I/O, corruption, or a record that no longer parses).
#[derive(Debug, thiserror::Error)]
#[error("state store: {message}")]
pub struct StoreError {
    message: String,
    disk_full: bool,
}

impl StoreError {
    fn new(message: String) -> StoreError {
        StoreError {
            message,
            disk_full: false,
        }
    }

    /// Whether the store failed because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        self.disk_full
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let disk_full = e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull);
        StoreError {
            message: e.to_string(),
            disk_full,
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::new(e.to_string())
    }
}

/// The SQLite-backed store.
pub struct Store {
    db: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    Ok(serde_json::from_str(s)?)
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        let applied: usize =
            db.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::new(format!(
                "{} was written by a newer fnhost (schema {applied}, this one knows {})",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = db.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Store { db: Mutex::new(db) })
    }

    /// Inserts or replaces a function's record.
    pub fn put_function<T: Serialize>(&self, name: &str, record: &T) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO functions (name, record) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET record = excluded.record",
            params![name, to_json(record)?],
        )?;
        Ok(())
    }

    /// Deletes a function with its versions, aliases and triggers.
    pub fn delete_function(&self, name: &str) -> Result<(), StoreError> {
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        for table in [
            "functions WHERE name",
            "versions WHERE function",
            "aliases WHERE function",
            "triggers WHERE function",
            "async_configs WHERE function",
        ] {
            tx.execute(&format!("DELETE FROM {table} = ?1"), params![name])?;
        }
        // The configurations of its versions and aliases (`name:qualifier`).
        tx.execute(
            "DELETE FROM async_configs WHERE substr(function, 1, length(?1) + 1) = ?1 || ':'",
            params![name],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every function record.
    pub fn functions<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let db = self.db.lock();
        let mut stmt = db.prepare("SELECT record FROM functions ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|r| from_json(&r?)).collect()
    }

    /// Adds a published version (in publication order).
    pub fn put_version<T: Serialize>(
        &self,
        function: &str,
        version: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO versions (function, version, seq, record)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM versions), ?3)",
            params![function, version, to_json(record)?],
        )?;
        Ok(())
    }

    /// Deletes a published version.
    pub fn delete_version(&self, function: &str, version: &str) -> Result<(), StoreError> {
        self.db.lock().execute(
            "DELETE FROM versions WHERE function = ?1 AND version = ?2",
            params![function, version],
        )?;
        Ok(())
    }

    /// A function's versions, in publication order.
    pub fn versions<T: DeserializeOwned>(&self, function: &str) -> Result<Vec<T>, StoreError> {
        let db = self.db.lock();
        let mut stmt =
            db.prepare("SELECT record FROM versions WHERE function = ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![function], |r| r.get::<_, String>(0))?;
        rows.map(|r| from_json(&r?)).collect()
    }

    /// Inserts or replaces an alias.
    pub fn put_alias<T: Serialize>(
        &self,
        function: &str,
        name: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO aliases (function, name, record) VALUES (?1, ?2, ?3)
             ON CONFLICT(function, name) DO UPDATE SET record = excluded.record",
            params![function, name, to_json(record)?],
        )?;
        Ok(())
    }

    /// Deletes an alias.
    pub fn delete_alias(&self, function: &str, name: &str) -> Result<(), StoreError> {
        self.db.lock().execute(
            "DELETE FROM aliases WHERE function = ?1 AND name = ?2",
            params![function, name],
        )?;
        Ok(())
    }

    /// A function's aliases.
    pub fn aliases<T: DeserializeOwned>(&self, function: &str) -> Result<Vec<T>, StoreError> {
        let db = self.db.lock();
        let mut stmt =
            db.prepare("SELECT record FROM aliases WHERE function = ?1 ORDER BY name")?;
        let rows = stmt.query_map(params![function], |r| r.get::<_, String>(0))?;
        rows.map(|r| from_json(&r?)).collect()
    }

    /// Inserts or replaces a trigger.
    pub fn put_trigger<T: Serialize>(
        &self,
        id: &str,
        function: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO triggers (id, function, record) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET record = excluded.record, function = excluded.function",
            params![id, function, to_json(record)?],
        )?;
        Ok(())
    }

    /// Deletes a trigger.
    pub fn delete_trigger(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .lock()
            .execute("DELETE FROM triggers WHERE id = ?1", params![id])?
            > 0)
    }

    /// One trigger.
    pub fn trigger<T: DeserializeOwned>(&self, id: &str) -> Result<Option<T>, StoreError> {
        self.record_by_key("SELECT record FROM triggers WHERE id = ?1", id)
    }

    /// The JSON record `sql` selects by its one key parameter, if any.
    fn record_by_key<T: DeserializeOwned>(
        &self,
        sql: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let record: Option<String> = self
            .db
            .lock()
            .query_row(sql, params![key], |r| r.get(0))
            .optional()?;
        record.map(|r| from_json(&r)).transpose()
    }

    /// Every trigger (of `function`, when given).
    pub fn triggers<T: DeserializeOwned>(
        &self,
        function: Option<&str>,
    ) -> Result<Vec<T>, StoreError> {
        let db = self.db.lock();
        let mut stmt = db
            .prepare("SELECT record FROM triggers WHERE ?1 IS NULL OR function = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![function], |r| r.get::<_, String>(0))?;
        rows.map(|r| from_json(&r?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_cascade_on_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = Store::open(&path).unwrap();
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
        }
        let s = Store::open(&path).unwrap();
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
        s.delete_function("echo").unwrap();
        assert!(s.functions::<serde_json::Value>().unwrap().is_empty());
        assert!(s.versions::<serde_json::Value>("echo").unwrap().is_empty());
        assert!(s.aliases::<serde_json::Value>("echo").unwrap().is_empty());
        assert!(s.triggers::<serde_json::Value>(None).unwrap().is_empty());
    }
}
