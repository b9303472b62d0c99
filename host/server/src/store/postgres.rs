//! The cluster store: one PostgreSQL database shared by every node.
//!
//! - **Schema**: versioned in `fnhost_schema`, migrated at connect inside
//!   one transaction that holds an advisory lock, so nodes starting together
//!   migrate once; a node refuses a schema newer than it knows.
//! - **Revisions**: every change to a function's record, versions, aliases
//!   or triggers bumps `functions.revision` and sends a `NOTIFY` on
//!   [`CHANGES`] carrying the function's name (and the database's time), in
//!   the same transaction, so
//!   the other nodes hear of it on commit (and a node that missed the
//!   notification sees the revision move when it compares).
//! - **Asynchronous invocations** are claimed with `FOR UPDATE SKIP LOCKED`
//!   under a lease on the database's clock (so the nodes' clocks play no
//!   part), which the claiming node renews while the attempt runs (its
//!   queue wait, cold start, initializer and destination included): one
//!   whose node died is claimed again by any node once the lease ran out
//!   (its interruption counted). Renewals, the end and a retry each match
//!   the claim's node *and attempt number*, so the late answer of a node
//!   that lost its claim changes nothing.
//! - **Bounded**: every call waits at most [`CALL_TIMEOUT`] for the
//!   database (a free pooled connection included); past it, or when the
//!   database cannot be reached, the error says *unavailable* (the API
//!   answers 503 and the caller may retry).
//!
//! The client is `tokio-postgres` with a `deadpool-postgres` pool, driven by
//! a small runtime of the store's own, so the blocking interface the server
//! uses works from any thread. Connections are in plain text (`NoTls`): put
//! the database on a private network, or behind a TLS proxy.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::{NoTls, Row, Transaction};

use super::asynchronous::{
    status, trace_id_of, Backlog, Claim, Claimed, InvocationWrite, Listed, Recovered,
};
use super::{kv, Backend, StoreError};

/// The channel every change is notified on; the payload is the function's
/// name, a space, and the database's clock in ms since the Unix epoch.
pub const CHANGES: &str = "fnhost_changes";

/// How long one store call may wait for the database.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest record (a function's, a version's, a trigger's...) a node
/// reads: what the API accepts is far smaller (user data 4 KB, the request
/// 1 MiB), so a larger row was written past it, by an attacker or by hand.
/// It is refused in the database, before it costs this node memory.
pub const MAX_RECORD_BYTES: i32 = 2 * 1024 * 1024;

/// `sql` (`SELECT record FROM ...`) selecting the record only when it is
/// within [`MAX_RECORD_BYTES`], and its length.
fn bounded(sql: &str) -> String {
    sql.replacen(
        "SELECT record ",
        &format!(
            "SELECT CASE WHEN octet_length(record) <= {MAX_RECORD_BYTES} THEN record END, \
             octet_length(record) "
        ),
        1,
    )
}

/// A row of a [`bounded`] query: its record, or `None` (reported) when it
/// is too large.
fn within_bound(row: &Row) -> Option<String> {
    let record: Option<String> = row.try_get(0).ok().flatten();
    if record.is_none() {
        log::warn!(
            target: "fnhost::store",
            "skipped a stored record of {} bytes, more than the {MAX_RECORD_BYTES} this node reads",
            row.try_get::<_, i32>(1).unwrap_or(0)
        );
    }
    record
}

/// The database's clock, in ms since the Unix epoch (leases are on it).
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// Connections per node.
const POOL_SIZE: usize = 16;

/// The advisory lock migrations hold (any fixed number; "fnhost" in ASCII).
const MIGRATION_LOCK: i64 = 0x666e_686f_7374;

/// Migrations, in order; `fnhost_schema.version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: functions with their revisions, versions, aliases, triggers,
    // asynchronous invocations with their leases, and their configurations.
    "CREATE TABLE functions (name TEXT PRIMARY KEY, record TEXT NOT NULL,
                             revision BIGINT NOT NULL DEFAULT 1);
     CREATE TABLE versions (function TEXT NOT NULL, version TEXT NOT NULL,
                            seq BIGSERIAL NOT NULL, record TEXT NOT NULL,
                            PRIMARY KEY (function, version));
     CREATE TABLE aliases (function TEXT NOT NULL, name TEXT NOT NULL, record TEXT NOT NULL,
                           PRIMARY KEY (function, name));
     CREATE TABLE triggers (id TEXT PRIMARY KEY, function TEXT NOT NULL, record TEXT NOT NULL);
     CREATE INDEX triggers_by_function ON triggers (function);
     CREATE TABLE async_invocations (
         seq BIGSERIAL NOT NULL,
         request_id TEXT PRIMARY KEY,
         function TEXT NOT NULL,
         target TEXT NOT NULL,
         payload BYTEA NOT NULL,
         status TEXT NOT NULL,
         attempts INTEGER NOT NULL DEFAULT 0,
         interrupted INTEGER NOT NULL DEFAULT 0,
         accepted_ms BIGINT NOT NULL,
         next_ms BIGINT NOT NULL,
         lease_until_ms BIGINT NOT NULL DEFAULT 0,
         node TEXT NOT NULL DEFAULT '',
         start_time TEXT NOT NULL DEFAULT '',
         end_time TEXT NOT NULL DEFAULT '',
         error_code BIGINT NOT NULL DEFAULT 0,
         error_message TEXT NOT NULL DEFAULT '',
         traceparent TEXT NOT NULL DEFAULT '',
         tracestate TEXT NOT NULL DEFAULT '',
         source TEXT NOT NULL DEFAULT 'api',
         depth INTEGER NOT NULL DEFAULT 0);
     CREATE INDEX async_by_function ON async_invocations (function, accepted_ms);
     CREATE INDEX async_by_status ON async_invocations (status, next_ms);
     CREATE INDEX async_leases ON async_invocations (lease_until_ms) WHERE status = 'RUNNING';
     CREATE TABLE async_configs (function TEXT PRIMARY KEY, record TEXT NOT NULL);",
    // 2: the functions' key-value spaces (`kv.*` host functions): which
    // are open, of which function, and their keys; `size` is a key's and
    // its value's bytes, summed against the space's bound. Not part of a
    // function's revision: no node caches them.
    "CREATE TABLE kv_spaces (space TEXT PRIMARY KEY, function TEXT NOT NULL);
     CREATE INDEX kv_spaces_by_function ON kv_spaces (function);
     CREATE TABLE function_kv (space TEXT NOT NULL, key TEXT NOT NULL, value BYTEA NOT NULL,
                               size BIGINT NOT NULL, PRIMARY KEY (space, key));",
];

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if *db.code() == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => {
                StoreError::duplicate(format!("PostgreSQL: {}", db.message()))
            }
            // The database answered: the statement itself failed.
            Some(db) => StoreError::new(format!("PostgreSQL: {}", db.message())),
            // No answer: the connection broke or never was.
            None => StoreError::unavailable(format!("PostgreSQL: {e}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            e => StoreError::unavailable(format!("PostgreSQL connection pool: {e}")),
        }
    }
}

/// The PostgreSQL-backed store.
pub struct PostgresStore {
    /// Drives the connections; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// This node's name in the claims it makes.
    node: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async context forbids.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn int(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn uint(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn claimed(r: &Row) -> Claimed {
    Claimed {
        request_id: r.get(0),
        function: r.get(1),
        target: r.get(2),
        payload: r.get(3),
        attempts: uint(r.get(4)),
        interrupted: uint(r.get(5)),
        accepted_ms: r.get(6),
        traceparent: r.get(7),
        tracestate: r.get(8),
        source: r.get(9),
        depth: uint(r.get(10)),
    }
}

/// Tells the other nodes, on commit, that `function` changed: the payload
/// is its name and the database's clock in ms (`NAME MS`), from which a
/// node that applies the change measures the lag.
async fn notify(tx: &Transaction<'_>, function: &str) -> Result<(), StoreError> {
    tx.execute(
        "SELECT pg_notify($1, $2 || ' ' ||
             (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT::TEXT)",
        &[&CHANGES, &function],
    )
    .await?;
    Ok(())
}

/// Bumps a function's revision and tells the other nodes, on commit.
async fn touch(tx: &Transaction<'_>, function: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE functions SET revision = revision + 1 WHERE name = $1",
        &[&function],
    )
    .await?;
    notify(tx, function).await
}

/// Claims what `claim` asks for, in `tx`, for `node`: first fails the
/// claims whose lease ran out past the allowance of interruptions, then
/// takes the first due (waiting, or running under a lease that ran out),
/// both statements in one flight.
async fn claim_due(
    tx: &deadpool_postgres::Transaction<'_>,
    claim: &Claim,
    node: &str,
) -> Result<Vec<Claimed>, StoreError> {
    let (now_ms, start_time) = (claim.now_ms, claim.start_time.as_str());
    let lease = i64::try_from(claim.lease.as_millis()).unwrap_or(i64::MAX / 4);
    let max_interrupted = int(claim.max_interrupted);
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    // Leases that ran out past the allowance of interruptions fail
    // instead of running again.
    let fail = tx
        .prepare_cached(&format!(
            "UPDATE async_invocations SET status = 'FAIL', interrupted = interrupted + 1,
                 error_code = 500, end_time = $2, payload = '',
                 error_message = 'its node stopped while it ran, '
                                 || (interrupted + 1) || ' times'
             WHERE status = 'RUNNING' AND lease_until_ms <= {DB_NOW_MS}
               AND interrupted + 1 >= $1"
        ))
        .await?;
    // Each branch of the union finds its candidates by its own index (the
    // two conditions ORed would scan the table); the condition is checked
    // again on the rows locked.
    let take = tx
        .prepare_cached(&format!(
            "WITH due AS (
                     SELECT request_id, next_ms, seq FROM async_invocations
                     WHERE request_id IN (
                         (SELECT request_id FROM async_invocations
                          WHERE status = 'WAIT' AND next_ms <= $1
                          ORDER BY next_ms, seq LIMIT $5)
                         UNION ALL
                         (SELECT request_id FROM async_invocations
                          WHERE status = 'RUNNING' AND lease_until_ms <= {DB_NOW_MS}
                            AND interrupted + 1 < $6
                          LIMIT $5))
                       AND ((status = 'WAIT' AND next_ms <= $1)
                            OR (status = 'RUNNING' AND lease_until_ms <= {DB_NOW_MS}
                                AND interrupted + 1 < $6))
                     ORDER BY next_ms, seq LIMIT $5
                     FOR UPDATE SKIP LOCKED)
                 UPDATE async_invocations a SET
                     interrupted = a.interrupted
                         + CASE WHEN a.status = 'RUNNING' THEN 1 ELSE 0 END,
                     error_message = CASE WHEN a.status = 'RUNNING'
                         THEN 'its node stopped while it ran; it runs again'
                         ELSE a.error_message END,
                     status = 'RUNNING', attempts = a.attempts + 1, start_time = $2,
                     node = $3,
                     lease_until_ms = {DB_NOW_MS} + $4
                 FROM due WHERE a.request_id = due.request_id
                 RETURNING a.request_id, a.function, a.target, a.payload, a.attempts,
                           a.interrupted, a.accepted_ms, a.traceparent, a.tracestate,
                           a.source, a.depth, due.next_ms, due.seq"
        ))
        .await?;
    let (_, rows) = futures_util::future::try_join(
        tx.execute(&fail, &[&max_interrupted, &start_time]),
        tx.query(
            &take,
            &[
                &now_ms,
                &start_time,
                &node,
                &lease,
                &limit,
                &max_interrupted,
            ],
        ),
    )
    .await?;
    // RETURNING has no order of its own: the first due first.
    let mut claimed: Vec<_> = rows
        .iter()
        .map(|r| ((r.get::<_, i64>(11), r.get::<_, i64>(12)), claimed(r)))
        .collect();
    claimed.sort_by_key(|(order, _)| *order);
    Ok(claimed.into_iter().map(|(_, c)| c).collect())
}

async fn migrate(client: &mut Object) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS fnhost_schema (version INTEGER NOT NULL)")
        .await?;
    let applied: Option<i32> = tx
        .query_opt("SELECT version FROM fnhost_schema", &[])
        .await?
        .map(|r| r.get(0));
    if applied.is_none() {
        tx.execute("INSERT INTO fnhost_schema (version) VALUES (0)", &[])
            .await?;
    }
    let applied = usize::try_from(applied.unwrap_or(0)).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::new(format!(
            "the database was written by a newer fnhost (schema {applied}, this one knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "UPDATE fnhost_schema SET version = $1",
            &[&i32::try_from(i + 1).unwrap_or(i32::MAX)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or
    /// libpq's `key=value` form) and migrates the schema.
    pub fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::new(format!("the database URL is not valid: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fnhost-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::new(format!("the database client's runtime: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CALL_TIMEOUT))
            .create_timeout(Some(CALL_TIMEOUT))
            .recycle_timeout(Some(CALL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::new(format!("the database connection pool: {e}")))?;
        let store = PostgresStore {
            runtime: Some(runtime),
            pool,
            node: uuid::Uuid::new_v4().to_string(),
        };
        store.with_client(|mut c| async move { migrate(&mut c).await })?;
        Ok(store)
    }

    /// Runs `f` with a pooled connection on the store's runtime and waits
    /// for it, at most [`CALL_TIMEOUT`]. Works from any thread, an async
    /// executor's included (it blocks that thread as SQLite's calls do).
    fn with_client<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(StoreError::new("the store is closing"));
        };
        let pool = self.pool.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let work = async move { f(pool.get().await?).await };
            let result = tokio::time::timeout(CALL_TIMEOUT, work)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::unavailable(format!(
                        "PostgreSQL did not answer within {} s",
                        CALL_TIMEOUT.as_secs()
                    )))
                });
            let _ = tx.send(result);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::new("the database task ended")))
    }

    fn records(&self, sql: &'static str, key: Option<String>) -> Result<Vec<String>, StoreError> {
        let sql = bounded(sql);
        self.with_client(move |c| async move {
            let rows = c.query(sql.as_str(), &[&key]).await?;
            Ok(rows.iter().filter_map(within_bound).collect())
        })
    }

    fn record(&self, sql: &'static str, key: String) -> Result<Option<String>, StoreError> {
        let sql = bounded(sql);
        self.with_client(move |c| async move {
            match c.query_opt(sql.as_str(), &[&key]).await? {
                None => Ok(None),
                Some(row) => within_bound(&row).map(Some).ok_or_else(|| {
                    StoreError::new(format!(
                        "a stored record is {} bytes, more than the {MAX_RECORD_BYTES} this node reads",
                        row.try_get::<_, i32>(1).unwrap_or(0)
                    ))
                }),
            }
        })
    }

    /// Runs one statement that changes something of `function`, bumping its
    /// revision and notifying, in one transaction; the rows it changed.
    fn change(
        &self,
        function: String,
        sql: &'static str,
        args: Vec<String>,
    ) -> Result<u64, StoreError> {
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args
                .iter()
                .map(|a| a as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let n = tx.execute(sql, &params).await?;
            touch(&tx, &function).await?;
            tx.commit().await?;
            Ok(n)
        })
    }
}

impl Backend for PostgresStore {
    fn put_function(&self, name: &str, record: String) -> Result<(), StoreError> {
        self.change(
            name.to_owned(),
            "INSERT INTO functions (name, record) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET record = excluded.record",
            vec![name.to_owned(), record],
        )
        .map(drop)
    }

    fn delete_function(&self, name: &str, end_time: &str) -> Result<(), StoreError> {
        let (name, end_time) = (name.to_owned(), end_time.to_owned());
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            for table in [
                "functions WHERE name",
                "versions WHERE function",
                "aliases WHERE function",
                "triggers WHERE function",
                "async_configs WHERE function",
            ] {
                tx.execute(&format!("DELETE FROM {table} = $1"), &[&name])
                    .await?;
            }
            // The configurations of its versions and aliases (`name:qualifier`).
            tx.execute(
                "DELETE FROM async_configs WHERE starts_with(function, $1 || ':')",
                &[&name],
            )
            .await?;
            // Its key-value spaces, closed first: a write holding a space's
            // row finishes before this takes it, and the keys are deleted
            // after, so what it wrote goes too.
            let spaces: Vec<String> = tx
                .query(
                    "DELETE FROM kv_spaces WHERE function = $1 RETURNING space",
                    &[&name],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.execute("DELETE FROM function_kv WHERE space = ANY($1)", &[&spaces])
                .await?;
            // Its invocations still waiting: none runs on a function
            // created later under its name.
            tx.execute(
                "UPDATE async_invocations SET status = 'FAIL', end_time = $2, error_code = 404,
                     error_message = 'the function was deleted before it ran', payload = ''::BYTEA
                 WHERE function = $1 AND status = 'WAIT'",
                &[&name, &end_time],
            )
            .await?;
            notify(&tx, &name).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn functions(&self) -> Result<Vec<String>, StoreError> {
        self.records(
            "SELECT record FROM functions WHERE $1::TEXT IS NULL ORDER BY name",
            None,
        )
    }

    fn function(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.record(
            "SELECT record FROM functions WHERE name = $1",
            name.to_owned(),
        )
    }

    fn revisions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.with_client(|c| async move {
            let rows = c
                .query("SELECT name, revision FROM functions ORDER BY name", &[])
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn put_version(&self, function: &str, version: &str, record: String) -> Result<(), StoreError> {
        self.change(
            function.to_owned(),
            "INSERT INTO versions (function, version, record) VALUES ($1, $2, $3)",
            vec![function.to_owned(), version.to_owned(), record],
        )
        .map(drop)
    }

    #[cfg(test)]
    fn delete_version(&self, function: &str, version: &str) -> Result<(), StoreError> {
        self.change(
            function.to_owned(),
            "DELETE FROM versions WHERE function = $1 AND version = $2",
            vec![function.to_owned(), version.to_owned()],
        )
        .map(drop)
    }

    fn versions(&self, function: &str) -> Result<Vec<String>, StoreError> {
        self.records(
            "SELECT record FROM versions WHERE function = $1 ORDER BY seq",
            Some(function.to_owned()),
        )
    }

    fn put_alias(&self, function: &str, name: &str, record: String) -> Result<(), StoreError> {
        self.change(
            function.to_owned(),
            "INSERT INTO aliases (function, name, record) VALUES ($1, $2, $3)
             ON CONFLICT (function, name) DO UPDATE SET record = excluded.record",
            vec![function.to_owned(), name.to_owned(), record],
        )
        .map(drop)
    }

    fn delete_alias(&self, function: &str, name: &str) -> Result<(), StoreError> {
        self.change(
            function.to_owned(),
            "DELETE FROM aliases WHERE function = $1 AND name = $2",
            vec![function.to_owned(), name.to_owned()],
        )
        .map(drop)
    }

    fn aliases(&self, function: &str) -> Result<Vec<String>, StoreError> {
        self.records(
            "SELECT record FROM aliases WHERE function = $1 ORDER BY name",
            Some(function.to_owned()),
        )
    }

    fn put_trigger(&self, id: &str, function: &str, record: String) -> Result<(), StoreError> {
        let (id, function) = (id.to_owned(), function.to_owned());
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            // A trigger moved to another function changes both.
            let before: Option<String> = tx
                .query_opt(
                    "SELECT function FROM triggers WHERE id = $1 FOR UPDATE",
                    &[&id],
                )
                .await?
                .map(|r| r.get(0));
            tx.execute(
                "INSERT INTO triggers (id, function, record) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record,
                                                function = excluded.function",
                &[&id, &function, &record],
            )
            .await?;
            touch(&tx, &function).await?;
            if let Some(before) = before.filter(|b| *b != function) {
                touch(&tx, &before).await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn delete_trigger(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            let function: Option<String> = tx
                .query_opt(
                    "DELETE FROM triggers WHERE id = $1 RETURNING function",
                    &[&id],
                )
                .await?
                .map(|r| r.get(0));
            if let Some(function) = &function {
                touch(&tx, function).await?;
            }
            tx.commit().await?;
            Ok(function.is_some())
        })
    }

    fn trigger(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.record("SELECT record FROM triggers WHERE id = $1", id.to_owned())
    }

    fn triggers(&self, function: Option<&str>) -> Result<Vec<String>, StoreError> {
        self.records(
            "SELECT record FROM triggers WHERE $1::TEXT IS NULL OR function = $1 ORDER BY id",
            function.map(str::to_owned),
        )
    }

    fn write_invocations(
        &self,
        writes: &[InvocationWrite],
        claim: Option<&Claim>,
    ) -> Result<(Vec<bool>, Vec<Claimed>), StoreError> {
        let writes = writes.to_vec();
        let claim = claim.cloned();
        let node = self.node.clone();
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            if writes.is_empty() {
                // A claim alone waits for no flush to disk: lost with the
                // database server (not with a node), its invocations wait
                // again and run again, as at least once allows.
                tx.batch_execute("SET LOCAL synchronous_commit = off")
                    .await?;
            }
            // Prepared once per pooled connection.
            let insert = tx
                .prepare_cached(
                    "INSERT INTO async_invocations (request_id, function, target, payload, status,
                         accepted_ms, next_ms, traceparent, tracestate, source, depth)
                     VALUES ($1, $2, $3, $4, 'WAIT', $5, $5, $6, $7, $8, $9)
                     ON CONFLICT (request_id) DO NOTHING",
                )
                .await?;
            // Only the node and attempt that hold the claim end it.
            let finish = tx
                .prepare_cached(
                    "UPDATE async_invocations SET status = $2, error_code = $3, error_message = $4,
                         end_time = $5, payload = ''
                     WHERE request_id = $1 AND status = 'RUNNING' AND node = $6
                       AND attempts = $7",
                )
                .await?;
            let retry = tx
                .prepare_cached(
                    "UPDATE async_invocations SET status = 'WAIT', next_ms = $2, error_code = $3,
                         error_message = $4
                     WHERE request_id = $1 AND status = 'RUNNING' AND node = $5
                       AND attempts = $6",
                )
                .await?;
            // The statements are pipelined on the connection: one round
            // trip for the batch, not one per write.
            let changes = writes.iter().map(|write| {
                let (tx, insert, finish, retry, node) = (&tx, &insert, &finish, &retry, &node);
                async move {
                    match write {
                        InvocationWrite::Insert(new) => {
                            tx.execute(
                                insert,
                                &[
                                    &new.request_id,
                                    &new.function,
                                    &new.target,
                                    &new.payload,
                                    &new.accepted_ms,
                                    &new.traceparent,
                                    &new.tracestate,
                                    &new.source,
                                    &int(new.depth),
                                ],
                            )
                            .await
                        }
                        InvocationWrite::Finish {
                            request_id,
                            attempt,
                            status,
                            error_code,
                            error_message,
                            end_time,
                        } => {
                            tx.execute(
                                finish,
                                &[
                                    request_id,
                                    status,
                                    error_code,
                                    error_message,
                                    end_time,
                                    node,
                                    &int(*attempt),
                                ],
                            )
                            .await
                        }
                        InvocationWrite::Retry {
                            request_id,
                            attempt,
                            next_ms,
                            error_code,
                            error_message,
                        } => {
                            tx.execute(
                                retry,
                                &[
                                    request_id,
                                    next_ms,
                                    error_code,
                                    error_message,
                                    node,
                                    &int(*attempt),
                                ],
                            )
                            .await
                        }
                    }
                }
            });
            // The claim is sent behind the writes, in the same flight (the
            // server runs them in order, so it may take what they insert).
            let claiming = async {
                match &claim {
                    Some(claim) => claim_due(&tx, claim, &node).await,
                    None => Ok(Vec::new()),
                }
            };
            let writing = futures_util::future::try_join_all(
                changes.map(|change| async { change.await.map_err(StoreError::from) }),
            );
            let (changed, claimed) = futures_util::future::try_join(writing, claiming).await?;
            tx.commit().await?;
            Ok((changed.into_iter().map(|n| n == 1).collect(), claimed))
        })
    }

    fn renew_invocation(
        &self,
        request_id: &str,
        attempt: u32,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let args = (request_id.to_owned(), self.node.clone(), int(attempt));
        let lease = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4);
        self.with_client(move |c| async move {
            let (request_id, node, attempt) = args;
            let renewed = c
                .execute(
                    &format!(
                        "UPDATE async_invocations SET lease_until_ms = {DB_NOW_MS} + $4
                         WHERE request_id = $1 AND status = 'RUNNING' AND node = $2
                           AND attempts = $3"
                    ),
                    &[&request_id, &node, &attempt, &lease],
                )
                .await?;
            Ok(renewed == 1)
        })
    }

    fn next_invocation_due(&self) -> Result<Option<i64>, StoreError> {
        self.with_client(|c| async move {
            let row = c
                .query_one(
                    "SELECT MIN(CASE WHEN status = 'WAIT' THEN next_ms ELSE lease_until_ms END)
                     FROM async_invocations WHERE status IN ('WAIT', 'RUNNING')",
                    &[],
                )
                .await?;
            Ok(row.get(0))
        })
    }

    fn cancel_invocation(
        &self,
        function: &str,
        request_id: &str,
        end_time: &str,
    ) -> Result<Option<String>, StoreError> {
        let args = (
            function.to_owned(),
            request_id.to_owned(),
            end_time.to_owned(),
        );
        self.with_client(move |mut c| async move {
            let (function, request_id, end_time) = args;
            let tx = c.transaction().await?;
            let before: Option<String> = tx
                .query_opt(
                    "SELECT status FROM async_invocations
                     WHERE request_id = $1 AND function = $2 FOR UPDATE",
                    &[&request_id, &function],
                )
                .await?
                .map(|r| r.get(0));
            if before.as_deref() == Some(status::WAIT) {
                tx.execute(
                    "UPDATE async_invocations SET status = 'DISCARD', end_time = $2,
                         error_message = 'cancelled', payload = ''
                     WHERE request_id = $1",
                    &[&request_id, &end_time],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(before)
        })
    }

    fn recover_invocations(
        &self,
        _now_ms: i64,
        _max_interrupted: u32,
        _end_time: &str,
    ) -> Result<Recovered, StoreError> {
        // Other nodes may be running what is `RUNNING`; the leases bring
        // back what a dead node held (see `claim_invocation`).
        Ok(Recovered::default())
    }

    #[cfg(test)]
    fn invocation_status(&self, request_id: &str) -> Result<Option<String>, StoreError> {
        self.record(
            "SELECT status FROM async_invocations WHERE request_id = $1",
            request_id.to_owned(),
        )
    }

    fn list_invocations(
        &self,
        function: &str,
        request_id: Option<&str>,
        status: Option<&str>,
        offset: u64,
        limit: u64,
    ) -> Result<(u64, Vec<Listed>), StoreError> {
        let args = (
            function.to_owned(),
            request_id.map(str::to_owned),
            status.map(str::to_owned),
            big(offset),
            big(limit),
        );
        self.with_client(move |c| async move {
            let (function, request_id, status, offset, limit) = args;
            let filter = "function = $1 AND ($2::TEXT IS NULL OR request_id = $2)
                          AND ($3::TEXT IS NULL OR status = $3)";
            let count: i64 = c
                .query_one(
                    &format!("SELECT COUNT(*) FROM async_invocations WHERE {filter}"),
                    &[&function, &request_id, &status],
                )
                .await?
                .get(0);
            let rows = c
                .query(
                    &format!(
                        "SELECT request_id, status, error_message, error_code, start_time,
                                end_time, attempts, traceparent
                         FROM async_invocations WHERE {filter}
                         ORDER BY accepted_ms DESC, seq DESC LIMIT $4 OFFSET $5"
                    ),
                    &[&function, &request_id, &status, &limit, &offset],
                )
                .await?;
            let page = rows
                .iter()
                .map(|r| Listed {
                    request_id: r.get(0),
                    status: r.get(1),
                    error_message: r.get(2),
                    error_code: r.get(3),
                    start_time: r.get(4),
                    end_time: r.get(5),
                    attempts: uint(r.get(6)),
                    trace_id: trace_id_of(r.get(7)),
                })
                .collect();
            Ok((u64::try_from(count).unwrap_or(0), page))
        })
    }

    fn unfinished_invocations(&self) -> Result<u64, StoreError> {
        self.with_client(|c| async move {
            let n: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM async_invocations WHERE status IN ('WAIT', 'RUNNING')",
                    &[],
                )
                .await?
                .get(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn invocation_backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        self.with_client(|c| async move {
            let rows = c
                .query(
                    "SELECT function, COUNT(*), MIN(accepted_ms) FROM async_invocations
                     WHERE status = 'WAIT' GROUP BY function ORDER BY function",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| Backlog {
                    function: r.get(0),
                    waiting: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                    oldest_accepted_ms: r.get(2),
                })
                .collect())
        })
    }

    fn prune_invocations(&self, before_ms: i64, keep: u64) -> Result<usize, StoreError> {
        let keep = big(keep);
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            let ended = "status IN ('SUCCESS', 'FAIL', 'DISCARD')";
            let mut gone = tx
                .execute(
                    &format!("DELETE FROM async_invocations WHERE {ended} AND accepted_ms < $1"),
                    &[&before_ms],
                )
                .await?;
            gone += tx
                .execute(
                    &format!(
                        "DELETE FROM async_invocations WHERE {ended} AND seq NOT IN
                             (SELECT seq FROM async_invocations WHERE {ended}
                              ORDER BY accepted_ms DESC, seq DESC LIMIT $1)"
                    ),
                    &[&keep],
                )
                .await?;
            tx.commit().await?;
            Ok(usize::try_from(gone).unwrap_or(usize::MAX))
        })
    }

    fn put_async_config(&self, function: &str, record: String) -> Result<(), StoreError> {
        let function = function.to_owned();
        self.with_client(move |c| async move {
            c.execute(
                "INSERT INTO async_configs (function, record) VALUES ($1, $2)
                 ON CONFLICT (function) DO UPDATE SET record = excluded.record",
                &[&function, &record],
            )
            .await?;
            Ok(())
        })
    }

    fn async_config(&self, function: &str) -> Result<Option<String>, StoreError> {
        self.record(
            "SELECT record FROM async_configs WHERE function = $1",
            function.to_owned(),
        )
    }

    fn kv_open(&self, function: &str, space: &str) -> Result<(), StoreError> {
        let (function, space) = (function.to_owned(), space.to_owned());
        self.with_client(move |c| async move {
            c.execute(
                "INSERT INTO kv_spaces (space, function) VALUES ($1, $2) ON CONFLICT (space) DO NOTHING",
                &[&space, &function],
            )
            .await?;
            Ok(())
        })
    }

    fn kv_close(&self, space: &str) -> Result<(), StoreError> {
        let space = space.to_owned();
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            // The space's row first, as a delete of the function does.
            tx.execute("DELETE FROM kv_spaces WHERE space = $1", &[&space])
                .await?;
            tx.execute("DELETE FROM function_kv WHERE space = $1", &[&space])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn kv_get(&self, space: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (space, key) = (space.to_owned(), key.to_owned());
        let max = kv::MAX_VALUE_BYTES as i32;
        self.with_client(move |c| async move {
            let Some(row) = c
                .query_opt(
                    "SELECT CASE WHEN octet_length(value) <= $3 THEN value END, octet_length(value)
                     FROM function_kv WHERE space = $1 AND key = $2",
                    &[&space, &key, &max],
                )
                .await?
            else {
                return Ok(None);
            };
            match row.try_get::<_, Option<Vec<u8>>>(0)? {
                Some(value) => Ok(Some(value)),
                None => Err(StoreError::new(format!(
                    "a stored value is {} bytes, more than the {max} this node reads",
                    row.try_get::<_, i32>(1).unwrap_or(0)
                ))),
            }
        })
    }

    fn kv_put(&self, space: &str, key: &str, value: &[u8]) -> Result<kv::Put, StoreError> {
        let size = kv::size_of(key, value);
        let (space, key, value) = (space.to_owned(), key.to_owned(), value.to_vec());
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            // The space's row, held until this commits: a delete of the
            // function waits for this write and then deletes it too; once
            // the delete has the row, this finds the space closed. One
            // writer per space at a time, so that two writers (on two
            // nodes) cannot both pass the bound's check.
            let open = tx
                .query_opt(
                    "SELECT 1 FROM kv_spaces WHERE space = $1 FOR UPDATE",
                    &[&space],
                )
                .await?
                .is_some();
            if !open {
                return Ok(kv::Put::Closed);
            }
            let row = tx
                .query_one(
                    "SELECT count(*), coalesce(sum(size), 0)::BIGINT FROM function_kv
                     WHERE space = $1 AND key <> $2",
                    &[&space, &key],
                )
                .await?;
            let admitted = kv::admit(row.try_get(0)?, row.try_get(1)?, size);
            if admitted == kv::Put::Stored {
                tx.execute(
                    "INSERT INTO function_kv (space, key, value, size) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (space, key) DO UPDATE SET value = excluded.value, size = excluded.size",
                    &[&space, &key, &value, &size],
                )
                .await?;
                tx.commit().await?;
            }
            Ok(admitted)
        })
    }

    fn kv_delete(&self, space: &str, key: &str) -> Result<bool, StoreError> {
        let (space, key) = (space.to_owned(), key.to_owned());
        self.with_client(move |c| async move {
            Ok(c.execute(
                "DELETE FROM function_kv WHERE space = $1 AND key = $2",
                &[&space, &key],
            )
            .await?
                > 0)
        })
    }

    fn delete_async_config(&self, function: &str) -> Result<bool, StoreError> {
        let function = function.to_owned();
        self.with_client(move |c| async move {
            Ok(c.execute(
                "DELETE FROM async_configs WHERE function = $1",
                &[&function],
            )
            .await?
                > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::asynchronous::NewInvocation;
    use crate::store::test_database;
    use crate::store::Backend;
    use crate::store::Store;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn new(id: &str, at: i64) -> NewInvocation {
        NewInvocation {
            request_id: id.into(),
            function: "echo".into(),
            target: "echo".into(),
            payload: b"{}".to_vec(),
            accepted_ms: at,
            traceparent: String::new(),
            tracestate: String::new(),
            source: "api",
            depth: 0,
        }
    }

    /// Leases are on the database's clock and last as long as their node
    /// renews them: a run longer than any fixed lease stays with its node;
    /// a dead node's claim runs again elsewhere after one lease, and the
    /// late node's renewal, retry and end change nothing.
    #[test]
    fn a_renewed_claim_holds_and_a_dead_nodes_claim_runs_again_elsewhere() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        let (one, two) = (
            Store::connect(&db.url).unwrap(),
            Store::connect(&db.url).unwrap(),
        );
        let lease = Duration::from_millis(600);
        one.insert_invocation(new("a", 1000)).unwrap();
        let first = one.claim_invocation(1000, "t", 3, lease).unwrap().unwrap();
        assert_eq!((first.attempts, first.interrupted), (1, 0));
        // Renewed every third of its lease, the claim outlives three leases.
        for _ in 0..9 {
            std::thread::sleep(lease / 3);
            assert!(one.renew_invocation("a", 1, lease).unwrap());
            assert!(two.claim_invocation(1000, "t", 3, lease).unwrap().is_none());
        }
        // Node one dies (no more renewals). Fixed wait: the lease must run out.
        std::thread::sleep(lease + Duration::from_millis(200));
        let again = two.claim_invocation(1000, "t", 3, lease).unwrap().unwrap();
        assert_eq!(
            (again.request_id.as_str(), again.attempts, again.interrupted),
            ("a", 2, 1)
        );
        // Node one comes back late: nothing it says counts any more.
        assert!(!one.renew_invocation("a", 1, lease).unwrap());
        assert!(!one.retry_invocation("a", 1, 0, 1, "late").unwrap());
        assert!(!one
            .finish_invocation("a", 1, status::FAIL, 500, "late", "t")
            .unwrap());
        // Nor does an earlier attempt's number on the node that holds it.
        assert!(!two
            .finish_invocation("a", 1, status::FAIL, 500, "stale", "t")
            .unwrap());
        assert_eq!(
            one.invocation_status("a").unwrap().as_deref(),
            Some("RUNNING")
        );
        assert!(two
            .finish_invocation("a", 2, status::SUCCESS, 0, "", "t")
            .unwrap());
        assert_eq!(
            one.invocation_status("a").unwrap().as_deref(),
            Some("SUCCESS")
        );
        // Interrupted past the allowance: it fails instead of running again.
        let short = Duration::from_millis(1);
        one.insert_invocation(new("b", 2000)).unwrap();
        for _ in 0..2 {
            assert!(one.claim_invocation(2000, "t", 2, short).unwrap().is_some());
            // Fixed wait: past the 1 ms lease on the database's clock.
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(one.claim_invocation(2000, "t", 2, short).unwrap().is_none());
        let (_, b) = one.list_invocations("echo", Some("b"), None, 0, 1).unwrap();
        assert_eq!(b[0].status, "FAIL");
        assert!(
            b[0].error_message.contains("2 times"),
            "{}",
            b[0].error_message
        );
        // Recovery at start is the leases' job in a shared store.
        assert_eq!(
            one.recover_invocations(2000, 3, "t").unwrap(),
            Recovered::default()
        );
    }

    /// A row past the bound is refused in the database, before it costs the
    /// node memory: read alone, an error that says so; in a listing, skipped.
    #[test]
    fn a_record_past_the_bound_is_not_read() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        let store = Store::connect(&db.url).unwrap();
        store
            .put_function("small", &serde_json::json!({"user_data": "x"}))
            .unwrap();
        let huge = "x".repeat(MAX_RECORD_BYTES as usize + 1);
        store
            .put_function("huge", &serde_json::json!({ "user_data": huge }))
            .unwrap();
        let e = store
            .function::<serde_json::Value>("huge")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than the 2097152"), "{e}");
        let all: Vec<serde_json::Value> = store.functions().unwrap();
        assert_eq!(all, [serde_json::json!({"user_data": "x"})]);
    }

    #[test]
    fn concurrent_claims_from_several_nodes_take_each_invocation_once() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        let nodes: Vec<Arc<Store>> = (0..3)
            .map(|_| Arc::new(Store::connect(&db.url).unwrap()))
            .collect();
        let ids: Vec<String> = (0..120).map(|i| format!("r{i:03}")).collect();
        for (i, id) in ids.iter().enumerate() {
            nodes[i % 3].insert_invocation(new(id, i as i64)).unwrap();
        }
        let claimers: Vec<_> = (0..6)
            .map(|t| {
                let node = Arc::clone(&nodes[t % 3]);
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(c) = node
                        .claim_invocation(10_000, "t", 3, Duration::from_secs(30))
                        .unwrap()
                    {
                        got.push(c.request_id);
                    }
                    got
                })
            })
            .collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for c in claimers {
            for id in c.join().unwrap() {
                *seen.entry(id).or_default() += 1;
            }
        }
        assert_eq!(seen.len(), ids.len(), "every invocation was claimed");
        assert!(seen.values().all(|&n| n == 1), "none twice: {seen:?}");
    }

    #[test]
    fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let url = db.url.clone();
                std::thread::spawn(move || PostgresStore::connect(&url).map(drop))
            })
            .collect();
        for s in starts {
            s.join().unwrap().unwrap();
        }
        let store = PostgresStore::connect(&db.url).unwrap();
        store
            .with_client(|c| async move {
                c.batch_execute("UPDATE fnhost_schema SET version = 99")
                    .await?;
                Ok(())
            })
            .unwrap();
        let e = PostgresStore::connect(&db.url).unwrap_err().to_string();
        assert!(e.contains("newer fnhost (schema 99"), "{e}");
    }

    #[test]
    fn every_change_to_a_function_bumps_its_revision_once() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        let s = PostgresStore::connect(&db.url).unwrap();
        let revision = || {
            s.revisions()
                .unwrap()
                .into_iter()
                .find(|(n, _)| n == "echo")
                .map(|(_, r)| r)
        };
        s.put_function("echo", "{}".into()).unwrap();
        let mut last = revision().unwrap();
        let changes: [&dyn Fn(); 7] = [
            &|| s.put_function("echo", "{\"a\":1}".into()).unwrap(),
            &|| s.put_version("echo", "v1", "{}".into()).unwrap(),
            &|| s.put_alias("echo", "prod", "{}".into()).unwrap(),
            &|| s.put_trigger("t1", "echo", "{}".into()).unwrap(),
            &|| assert!(s.delete_trigger("t1").unwrap()),
            &|| s.delete_alias("echo", "prod").unwrap(),
            &|| s.delete_version("echo", "v1").unwrap(),
        ];
        for (i, change) in changes.iter().enumerate() {
            change();
            let now = revision().unwrap();
            assert_eq!(now, last + 1, "change {i}");
            last = now;
        }
        s.delete_function("echo", "t").unwrap();
        assert_eq!(revision(), None);
    }

    #[test]
    fn a_second_insert_under_the_same_request_id_is_a_duplicate() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        let s = Store::connect(&db.url).unwrap();
        s.insert_invocation(new("tick", 1)).unwrap();
        let e = s.insert_invocation(new("tick", 1)).unwrap_err();
        assert!(e.is_duplicate(), "{e}");
        assert_eq!(s.unfinished_invocations().unwrap(), 1);
    }

    #[test]
    fn an_unreachable_database_is_reported_as_unavailable() {
        // Nothing listens on port 1.
        let e = PostgresStore::connect("postgres://postgres@127.0.0.1:1/none").unwrap_err();
        assert!(e.is_unavailable(), "{e}");
    }
}
