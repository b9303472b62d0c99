//! The single-node store: one SQLite file in the data directory (WAL,
//! full sync), the schema versioned in `PRAGMA user_version` and migrated
//! at open. Every call takes the one connection's lock for its statement
//! or transaction.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::asynchronous::{
    status, trace_id_of, Backlog, Claim, Claimed, InvocationWrite, Listed, Recovered,
};
use super::{kv, Backend, StoreError};

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
    // 3: the functions' key-value spaces (`kv.*` host functions): which
    // are open, of which function, and their keys; `size` is a key's and
    // its value's bytes, summed against the space's bound.
    "CREATE TABLE kv_spaces (space TEXT PRIMARY KEY, function TEXT NOT NULL);
     CREATE INDEX kv_spaces_by_function ON kv_spaces (function);
     CREATE TABLE function_kv (space TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                               size INTEGER NOT NULL, PRIMARY KEY (space, key));",
];

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let code = e.sqlite_error_code();
        StoreError {
            disk_full: code == Some(rusqlite::ErrorCode::DiskFull),
            duplicate: code == Some(rusqlite::ErrorCode::ConstraintViolation),
            ..StoreError::new(e.to_string())
        }
    }
}

/// The SQLite-backed store.
pub struct SqliteStore {
    db: Mutex<Connection>,
}

fn claimed(r: &Row<'_>) -> rusqlite::Result<Claimed> {
    Ok(Claimed {
        request_id: r.get(0)?,
        function: r.get(1)?,
        target: r.get(2)?,
        payload: r.get(3)?,
        attempts: r.get(4)?,
        interrupted: r.get(5)?,
        accepted_ms: r.get(6)?,
        traceparent: r.get(7)?,
        tracestate: r.get(8)?,
        source: r.get(9)?,
        depth: r.get(10)?,
    })
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
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
        Ok(SqliteStore { db: Mutex::new(db) })
    }

    /// The JSON records `sql` selects (in its order).
    fn records(
        &self,
        sql: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<String>, StoreError> {
        let db = self.db.lock();
        let mut stmt = db.prepare(sql)?;
        let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The JSON record `sql` selects by its one key parameter, if any.
    fn record_by_key(&self, sql: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .lock()
            .query_row(sql, params![key], |r| r.get(0))
            .optional()?)
    }
}

/// Applies `writes`, then claims what `claim` asks for (one node: what a
/// stopped server left running is recovered at start, so there are no
/// leases), in one transaction.
fn write_and_claim(
    db: &mut Connection,
    writes: &[InvocationWrite],
    claim: Option<&Claim>,
) -> Result<(Vec<bool>, Vec<Claimed>), StoreError> {
    let tx = db.transaction()?;
    let mut done = Vec::with_capacity(writes.len());
    for write in writes {
        let changed = match write {
            InvocationWrite::Insert(new) => tx
                .prepare_cached(
                    "INSERT INTO async_invocations (request_id, function, target, payload,
                         status, accepted_ms, next_ms, traceparent, tracestate, source, depth)
                     VALUES (?1, ?2, ?3, ?4, 'WAIT', ?5, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (request_id) DO NOTHING",
                )?
                .execute(params![
                    new.request_id,
                    new.function,
                    new.target,
                    new.payload,
                    new.accepted_ms,
                    new.traceparent,
                    new.tracestate,
                    new.source,
                    new.depth
                ])?,
            InvocationWrite::Finish {
                request_id,
                attempt,
                status,
                error_code,
                error_message,
                end_time,
            } => tx
                .prepare_cached(
                    "UPDATE async_invocations SET status = ?2, error_code = ?3,
                         error_message = ?4, end_time = ?5, payload = x''
                     WHERE request_id = ?1 AND status = 'RUNNING' AND attempts = ?6",
                )?
                .execute(params![
                    request_id,
                    status,
                    error_code,
                    error_message,
                    end_time,
                    attempt
                ])?,
            InvocationWrite::Retry {
                request_id,
                attempt,
                next_ms,
                error_code,
                error_message,
            } => tx
                .prepare_cached(
                    "UPDATE async_invocations SET status = 'WAIT', next_ms = ?2,
                         error_code = ?3, error_message = ?4
                     WHERE request_id = ?1 AND status = 'RUNNING' AND attempts = ?5",
                )?
                .execute(params![
                    request_id,
                    next_ms,
                    error_code,
                    error_message,
                    attempt
                ])?,
        };
        done.push(changed == 1);
    }
    let claimed = match claim {
        Some(c) => claim_due(&tx, c.now_ms, &c.start_time, c.limit)?,
        None => Vec::new(),
    };
    tx.commit()?;
    Ok((done, claimed))
}

/// Claims up to `limit` invocations due at `now_ms`, the first due first.
fn claim_due(
    db: &Connection,
    now_ms: i64,
    start_time: &str,
    limit: usize,
) -> Result<Vec<Claimed>, StoreError> {
    let mut stmt = db.prepare_cached(
        "UPDATE async_invocations SET status = 'RUNNING', attempts = attempts + 1,
                 start_time = ?2
             WHERE rowid IN (SELECT rowid FROM async_invocations
                             WHERE status = 'WAIT' AND next_ms <= ?1
                             ORDER BY next_ms, rowid LIMIT ?3)
             RETURNING request_id, function, target, payload, attempts, interrupted,
                       accepted_ms, traceparent, tracestate, source, depth, next_ms, rowid",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt
        .query_map(params![now_ms, start_time, limit], |r| {
            Ok(((r.get::<_, i64>(11)?, r.get::<_, i64>(12)?), claimed(r)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // RETURNING has no order of its own: the first due first.
    rows.sort_by_key(|(order, _)| *order);
    Ok(rows.into_iter().map(|(_, c)| c).collect())
}

impl Backend for SqliteStore {
    fn put_function(&self, name: &str, record: String) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO functions (name, record) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET record = excluded.record",
            params![name, record],
        )?;
        Ok(())
    }

    fn delete_function(&self, name: &str, end_time: &str) -> Result<(), StoreError> {
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
        // Its key-value spaces, closed, and their keys.
        tx.execute(
            "DELETE FROM function_kv WHERE space IN (SELECT space FROM kv_spaces WHERE function = ?1)",
            params![name],
        )?;
        tx.execute("DELETE FROM kv_spaces WHERE function = ?1", params![name])?;
        // Its invocations still waiting: none runs on a function created
        // later under its name.
        tx.execute(
            "UPDATE async_invocations SET status = 'FAIL', end_time = ?2, error_code = 404,
                 error_message = 'the function was deleted before it ran', payload = x''
             WHERE function = ?1 AND status = 'WAIT'",
            params![name, end_time],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn functions(&self) -> Result<Vec<String>, StoreError> {
        self.records("SELECT record FROM functions ORDER BY name", &[])
    }

    fn function(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.record_by_key("SELECT record FROM functions WHERE name = ?1", name)
    }

    fn revisions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let db = self.db.lock();
        let mut stmt = db.prepare("SELECT name FROM functions ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, 0)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn put_version(&self, function: &str, version: &str, record: String) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO versions (function, version, seq, record)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM versions), ?3)",
            params![function, version, record],
        )?;
        Ok(())
    }

    #[cfg(test)]
    fn delete_version(&self, function: &str, version: &str) -> Result<(), StoreError> {
        self.db.lock().execute(
            "DELETE FROM versions WHERE function = ?1 AND version = ?2",
            params![function, version],
        )?;
        Ok(())
    }

    fn versions(&self, function: &str) -> Result<Vec<String>, StoreError> {
        self.records(
            "SELECT record FROM versions WHERE function = ?1 ORDER BY seq",
            params![function],
        )
    }

    fn put_alias(&self, function: &str, name: &str, record: String) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO aliases (function, name, record) VALUES (?1, ?2, ?3)
             ON CONFLICT(function, name) DO UPDATE SET record = excluded.record",
            params![function, name, record],
        )?;
        Ok(())
    }

    fn delete_alias(&self, function: &str, name: &str) -> Result<(), StoreError> {
        self.db.lock().execute(
            "DELETE FROM aliases WHERE function = ?1 AND name = ?2",
            params![function, name],
        )?;
        Ok(())
    }

    fn aliases(&self, function: &str) -> Result<Vec<String>, StoreError> {
        self.records(
            "SELECT record FROM aliases WHERE function = ?1 ORDER BY name",
            params![function],
        )
    }

    fn put_trigger(&self, id: &str, function: &str, record: String) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO triggers (id, function, record) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET record = excluded.record, function = excluded.function",
            params![id, function, record],
        )?;
        Ok(())
    }

    fn delete_trigger(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .lock()
            .execute("DELETE FROM triggers WHERE id = ?1", params![id])?
            > 0)
    }

    fn trigger(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.record_by_key("SELECT record FROM triggers WHERE id = ?1", id)
    }

    fn triggers(&self, function: Option<&str>) -> Result<Vec<String>, StoreError> {
        self.records(
            "SELECT record FROM triggers WHERE ?1 IS NULL OR function = ?1 ORDER BY id",
            params![function],
        )
    }

    fn write_invocations(
        &self,
        writes: &[InvocationWrite],
        claim: Option<&Claim>,
    ) -> Result<(Vec<bool>, Vec<Claimed>), StoreError> {
        let mut db = self.db.lock();
        if writes.iter().any(InvocationWrite::must_be_durable) {
            write_and_claim(&mut db, writes, claim)
        } else {
            // Not synced to disk (see `InvocationWrite::must_be_durable`):
            // the transaction survives the server's crash (it is in the
            // log), and the next synced commit takes it to disk.
            db.pragma_update(None, "synchronous", "NORMAL")?;
            let done = write_and_claim(&mut db, writes, claim);
            db.pragma_update(None, "synchronous", "FULL")?;
            done
        }
    }

    fn next_invocation_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.db.lock().query_row(
            "SELECT MIN(next_ms) FROM async_invocations WHERE status = 'WAIT'",
            [],
            |r| r.get(0),
        )?)
    }

    fn renew_invocation(
        &self,
        _request_id: &str,
        _attempt: u32,
        _lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        // One node, no leases: its claims are its own until it stops.
        Ok(true)
    }

    fn cancel_invocation(
        &self,
        function: &str,
        request_id: &str,
        end_time: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM async_invocations WHERE request_id = ?1 AND function = ?2",
                params![request_id, function],
                |r| r.get(0),
            )
            .optional()?;
        if status.as_deref() == Some(status::WAIT) {
            tx.execute(
                "UPDATE async_invocations SET status = 'DISCARD', end_time = ?2,
                     error_message = 'cancelled', payload = x''
                 WHERE request_id = ?1",
                params![request_id, end_time],
            )?;
        }
        tx.commit()?;
        Ok(status)
    }

    fn recover_invocations(
        &self,
        now_ms: i64,
        max_interrupted: u32,
        end_time: &str,
    ) -> Result<Recovered, StoreError> {
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        let failed = tx.execute(
            "UPDATE async_invocations SET status = 'FAIL', interrupted = interrupted + 1,
                 error_code = 500, end_time = ?3, payload = x'',
                 error_message = 'the server stopped while it ran, ' || (interrupted + 1) || ' times'
             WHERE status = 'RUNNING' AND interrupted + 1 >= ?2",
            params![now_ms, max_interrupted, end_time],
        )?;
        let requeued = tx.execute(
            "UPDATE async_invocations SET status = 'WAIT', interrupted = interrupted + 1,
                 next_ms = ?1,
                 error_message = 'the server stopped while it ran; it runs again'
             WHERE status = 'RUNNING'",
            params![now_ms],
        )?;
        tx.commit()?;
        Ok(Recovered { requeued, failed })
    }

    #[cfg(test)]
    fn invocation_status(&self, request_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .lock()
            .query_row(
                "SELECT status FROM async_invocations WHERE request_id = ?1",
                params![request_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn list_invocations(
        &self,
        function: &str,
        request_id: Option<&str>,
        status: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<Listed>), StoreError> {
        let db = self.db.lock();
        let filter =
            "function = ?1 AND (?2 IS NULL OR request_id = ?2) AND (?3 IS NULL OR status = ?3)";
        let count: i64 = db.query_row(
            &format!("SELECT COUNT(*) FROM async_invocations WHERE {filter}"),
            params![function, request_id, status],
            |r| r.get(0),
        )?;
        let count = count.max(0) as u64;
        let mut stmt = db.prepare(&format!(
            "SELECT request_id, status, error_message, error_code, start_time, end_time,
                    attempts, traceparent
             FROM async_invocations WHERE {filter}
             ORDER BY accepted_ms DESC, rowid DESC LIMIT ?4 OFFSET ?5"
        ))?;
        let rows = stmt.query_map(
            params![
                function,
                request_id,
                status,
                limit.min(i64::MAX as u64) as i64,
                offset.min(i64::MAX as u64) as i64
            ],
            |r| {
                Ok(Listed {
                    request_id: r.get(0)?,
                    status: r.get(1)?,
                    error_message: r.get(2)?,
                    error_code: r.get(3)?,
                    start_time: r.get(4)?,
                    end_time: r.get(5)?,
                    attempts: r.get(6)?,
                    trace_id: trace_id_of(&r.get::<_, String>(7)?),
                })
            },
        )?;
        Ok((count, rows.collect::<Result<_, _>>()?))
    }

    fn unfinished_invocations(&self) -> Result<u64, StoreError> {
        let n: i64 = self.db.lock().query_row(
            "SELECT COUNT(*) FROM async_invocations WHERE status IN ('WAIT', 'RUNNING')",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    fn invocation_backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        let db = self.db.lock();
        let mut stmt = db.prepare(
            "SELECT function, COUNT(*), MIN(accepted_ms) FROM async_invocations
             WHERE status = 'WAIT' GROUP BY function ORDER BY function",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Backlog {
                function: r.get(0)?,
                waiting: r.get::<_, i64>(1)?.max(0) as u64,
                oldest_accepted_ms: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn prune_invocations(&self, before_ms: i64, keep: u64) -> Result<usize, StoreError> {
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        let ended = "status IN ('SUCCESS', 'FAIL', 'DISCARD')";
        let mut gone = tx.execute(
            &format!("DELETE FROM async_invocations WHERE {ended} AND accepted_ms < ?1"),
            params![before_ms],
        )?;
        gone += tx.execute(
            &format!(
                "DELETE FROM async_invocations WHERE {ended} AND rowid NOT IN
                     (SELECT rowid FROM async_invocations WHERE {ended}
                      ORDER BY accepted_ms DESC, rowid DESC LIMIT ?1)"
            ),
            params![keep.min(i64::MAX as u64) as i64],
        )?;
        tx.commit()?;
        Ok(gone)
    }

    fn put_async_config(&self, function: &str, record: String) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO async_configs (function, record) VALUES (?1, ?2)
             ON CONFLICT(function) DO UPDATE SET record = excluded.record",
            params![function, record],
        )?;
        Ok(())
    }

    fn async_config(&self, function: &str) -> Result<Option<String>, StoreError> {
        self.record_by_key(
            "SELECT record FROM async_configs WHERE function = ?1",
            function,
        )
    }

    fn delete_async_config(&self, function: &str) -> Result<bool, StoreError> {
        Ok(self.db.lock().execute(
            "DELETE FROM async_configs WHERE function = ?1",
            params![function],
        )? > 0)
    }

    fn kv_open(&self, function: &str, space: &str) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO kv_spaces (space, function) VALUES (?1, ?2) ON CONFLICT(space) DO NOTHING",
            params![space, function],
        )?;
        Ok(())
    }

    fn kv_close(&self, space: &str) -> Result<(), StoreError> {
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM kv_spaces WHERE space = ?1", params![space])?;
        tx.execute("DELETE FROM function_kv WHERE space = ?1", params![space])?;
        tx.commit()?;
        Ok(())
    }

    fn kv_get(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let max = kv::MAX_VALUE_BYTES as i64;
        let row: Option<(Option<Vec<u8>>, i64)> = self
            .db
            .lock()
            .query_row(
                "SELECT CASE WHEN length(value) <= ?3 THEN value END, length(value)
                 FROM function_kv WHERE space = ?1 AND key = ?2",
                params![space, key, max],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match row {
            None => Ok(None),
            Some((Some(value), _)) => Ok(Some(value)),
            Some((None, len)) => Err(StoreError::new(format!(
                "a stored value is {len} bytes, more than the {max} this node reads"
            ))),
        }
    }

    fn kv_put(&self, space: &str, key: &str, value: &[u8]) -> Result<kv::Put, StoreError> {
        let size = kv::size_of(key, value);
        // One connection, one transaction at a time: a delete of the
        // function runs before this (and the space is closed) or after it
        // (and deletes what it wrote).
        let mut db = self.db.lock();
        let tx = db.transaction()?;
        let open: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM kv_spaces WHERE space = ?1)",
            params![space],
            |r| r.get(0),
        )?;
        if !open {
            return Ok(kv::Put::Closed);
        }
        let (keys, bytes): (i64, i64) = tx.query_row(
            "SELECT count(*), coalesce(sum(size), 0) FROM function_kv
             WHERE space = ?1 AND key <> ?2",
            params![space, key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let admitted = kv::admit(keys, bytes, size);
        if admitted == kv::Put::Stored {
            tx.execute(
                "INSERT INTO function_kv (space, key, value, size) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(space, key) DO UPDATE SET value = excluded.value, size = excluded.size",
                params![space, key, value, size],
            )?;
            tx.commit()?;
        }
        Ok(admitted)
    }

    fn kv_delete(&self, space: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self.db.lock().execute(
            "DELETE FROM function_kv WHERE space = ?1 AND key = ?2",
            params![space, key],
        )? > 0)
    }
}
