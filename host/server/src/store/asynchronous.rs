//! Asynchronous invocations in the store: each is a row from the moment it
//! is accepted (the 202 is sent after the row is committed) until it is
//! pruned, so a crash loses none. A row moves `WAIT` → `RUNNING` (claimed by
//! a worker) → `SUCCESS`, `FAIL` or `DISCARD`, or back to `WAIT` for a
//! retry. Lookups by request id use the primary key; listings by function
//! and claims by status and due time use their own indexes.

use rusqlite::{params, OptionalExtension, Row};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{to_json, Store, StoreError};

/// FunctionGraph's statuses of an asynchronous invocation.
pub mod status {
    /// Accepted, waiting to run (or to be retried).
    pub const WAIT: &str = "WAIT";
    /// Running now.
    pub const RUNNING: &str = "RUNNING";
    /// The handler succeeded.
    pub const SUCCESS: &str = "SUCCESS";
    /// It failed on its last attempt.
    pub const FAIL: &str = "FAIL";
    /// Cancelled, or older than its maximum age before it could run.
    pub const DISCARD: &str = "DISCARD";
}

/// An asynchronous invocation as it is accepted.
#[derive(Debug, Clone)]
pub struct NewInvocation<'a> {
    pub request_id: &'a str,
    pub function: &'a str,
    /// What to run: `name` or `name:qualifier`, resolved when it runs.
    pub target: &'a str,
    pub payload: &'a [u8],
    pub accepted_ms: i64,
    pub traceparent: &'a str,
    pub tracestate: &'a str,
    /// `api`, `timer` or `destination`.
    pub source: &'a str,
    /// How many destination deliveries led to this invocation.
    pub depth: u32,
}

/// An invocation a worker claimed, to run.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub request_id: String,
    pub function: String,
    pub target: String,
    pub payload: Vec<u8>,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// Attempts the server stopped in the middle of.
    pub interrupted: u32,
    pub accepted_ms: i64,
    pub traceparent: String,
    pub tracestate: String,
    pub source: String,
    pub depth: u32,
}

/// One invocation as `async-invocations` lists it (FunctionGraph's fields,
/// plus `attempts` and `trace_id`).
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub request_id: String,
    pub status: String,
    pub error_message: String,
    pub error_code: i64,
    pub start_time: String,
    pub end_time: String,
    pub attempts: u32,
    pub trace_id: String,
}

/// Waiting invocations of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    pub function: String,
    pub waiting: u64,
    /// When the oldest of them was accepted.
    pub oldest_accepted_ms: i64,
}

/// What a recovery at start did with the invocations a stopped server left
/// running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Queued to run again.
    pub requeued: usize,
    /// Failed: interrupted too often.
    pub failed: usize,
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

/// The trace id of a stored `traceparent` (`00-<trace id>-<span>-<flags>`).
fn trace_id_of(traceparent: &str) -> String {
    traceparent.split('-').nth(1).unwrap_or("").to_owned()
}

impl Store {
    /// Records an accepted invocation (committed when this returns).
    pub fn insert_invocation(&self, new: &NewInvocation<'_>) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO async_invocations (request_id, function, target, payload, status,
                 accepted_ms, next_ms, traceparent, tracestate, source, depth)
             VALUES (?1, ?2, ?3, ?4, 'WAIT', ?5, ?5, ?6, ?7, ?8, ?9)",
            params![
                new.request_id,
                new.function,
                new.target,
                new.payload,
                new.accepted_ms,
                new.traceparent,
                new.tracestate,
                new.source,
                new.depth
            ],
        )?;
        Ok(())
    }

    /// Claims the invocation due first (`next_ms <= now_ms`): it becomes
    /// `RUNNING`, its attempt counted.
    pub fn claim_invocation(
        &self,
        now_ms: i64,
        start_time: &str,
    ) -> Result<Option<Claimed>, StoreError> {
        Ok(self
            .db
            .lock()
            .query_row(
                "UPDATE async_invocations SET status = 'RUNNING', attempts = attempts + 1,
                     start_time = ?2
                 WHERE rowid = (SELECT rowid FROM async_invocations
                                WHERE status = 'WAIT' AND next_ms <= ?1
                                ORDER BY next_ms, rowid LIMIT 1)
                 RETURNING request_id, function, target, payload, attempts, interrupted,
                           accepted_ms, traceparent, tracestate, source, depth",
                params![now_ms, start_time],
                claimed,
            )
            .optional()?)
    }

    /// When the next waiting invocation is due, if any waits.
    pub fn next_invocation_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.db.lock().query_row(
            "SELECT MIN(next_ms) FROM async_invocations WHERE status = 'WAIT'",
            [],
            |r| r.get(0),
        )?)
    }

    /// Ends a running invocation with its final status; its payload is
    /// dropped (its destinations have it already).
    pub fn finish_invocation(
        &self,
        request_id: &str,
        status: &str,
        error_code: i64,
        error_message: &str,
        end_time: &str,
    ) -> Result<(), StoreError> {
        self.db.lock().execute(
            "UPDATE async_invocations SET status = ?2, error_code = ?3, error_message = ?4,
                 end_time = ?5, payload = x''
             WHERE request_id = ?1",
            params![request_id, status, error_code, error_message, end_time],
        )?;
        Ok(())
    }

    /// Puts a running invocation back to wait for a retry at `next_ms`,
    /// with the error of the attempt that failed.
    pub fn retry_invocation(
        &self,
        request_id: &str,
        next_ms: i64,
        error_code: i64,
        error_message: &str,
    ) -> Result<(), StoreError> {
        self.db.lock().execute(
            "UPDATE async_invocations SET status = 'WAIT', next_ms = ?2, error_code = ?3,
                 error_message = ?4
             WHERE request_id = ?1 AND status = 'RUNNING'",
            params![request_id, next_ms, error_code, error_message],
        )?;
        Ok(())
    }

    /// Discards a waiting invocation of `function`; returns its status
    /// before (`None`: no such invocation of that function). Only a `WAIT`
    /// one changes.
    pub fn cancel_invocation(
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

    /// At start: invocations left `RUNNING` by a server that stopped are
    /// queued again (at least once delivery), unless they were interrupted
    /// `max_interrupted` times already: those fail, with the reason.
    pub fn recover_invocations(
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

    /// The status of one invocation.
    pub fn invocation_status(&self, request_id: &str) -> Result<Option<String>, StoreError> {
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

    /// A function's invocations, newest first (filtered by request id and
    /// status when given): how many match, and the page from `offset`.
    pub fn list_invocations(
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

    /// Invocations not yet ended (waiting or running).
    pub fn unfinished_invocations(&self) -> Result<u64, StoreError> {
        let n: i64 = self.db.lock().query_row(
            "SELECT COUNT(*) FROM async_invocations WHERE status IN ('WAIT', 'RUNNING')",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// Waiting invocations by function.
    pub fn invocation_backlog(&self) -> Result<Vec<Backlog>, StoreError> {
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

    /// Deletes ended invocations accepted before `before_ms`, and the oldest
    /// ended ones beyond the newest `keep`; returns how many went.
    pub fn prune_invocations(&self, before_ms: i64, keep: u64) -> Result<usize, StoreError> {
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

    /// Inserts or replaces a function's asynchronous invocation
    /// configuration.
    pub fn put_async_config<T: Serialize>(
        &self,
        function: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.db.lock().execute(
            "INSERT INTO async_configs (function, record) VALUES (?1, ?2)
             ON CONFLICT(function) DO UPDATE SET record = excluded.record",
            params![function, to_json(record)?],
        )?;
        Ok(())
    }

    /// A function's asynchronous invocation configuration.
    pub fn async_config<T: DeserializeOwned>(
        &self,
        function: &str,
    ) -> Result<Option<T>, StoreError> {
        self.record_by_key(
            "SELECT record FROM async_configs WHERE function = ?1",
            function,
        )
    }

    /// Deletes a function's asynchronous invocation configuration; whether
    /// it had one.
    pub fn delete_async_config(&self, function: &str) -> Result<bool, StoreError> {
        Ok(self.db.lock().execute(
            "DELETE FROM async_configs WHERE function = ?1",
            params![function],
        )? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(id: &'a str, function: &'a str, at: i64) -> NewInvocation<'a> {
        NewInvocation {
            request_id: id,
            function,
            target: function,
            payload: b"{}",
            accepted_ms: at,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            tracestate: "",
            source: "api",
            depth: 0,
        }
    }

    #[test]
    fn invocations_are_claimed_in_order_recovered_after_a_crash_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = Store::open(&path).unwrap();
            for (i, id) in ["a", "b", "c"].iter().enumerate() {
                s.insert_invocation(&new(id, "echo", 1000 + i as i64))
                    .unwrap();
            }
            assert_eq!(
                s.claim_invocation(999, "t").unwrap().map(|c| c.request_id),
                None,
                "not due yet"
            );
            let a = s.claim_invocation(5000, "t").unwrap().unwrap();
            assert_eq!((a.request_id.as_str(), a.attempts), ("a", 1));
            // The server dies here, with `a` running and `b`, `c` waiting.
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(
            s.recover_invocations(6000, 3, "t").unwrap(),
            Recovered {
                requeued: 1,
                failed: 0
            }
        );
        assert_eq!(s.unfinished_invocations().unwrap(), 3);
        // `b` and `c` were due first; `a` is due again at the recovery.
        let order: Vec<String> = (0..3)
            .map(|_| s.claim_invocation(7000, "t").unwrap().unwrap().request_id)
            .collect();
        assert_eq!(order, ["b", "c", "a"]);
        s.finish_invocation("b", status::SUCCESS, 0, "", "t")
            .unwrap();
        s.retry_invocation("c", 9000, 1, "boom").unwrap();
        assert_eq!(
            s.cancel_invocation("echo", "c", "t").unwrap().as_deref(),
            Some("WAIT")
        );
        assert_eq!(s.cancel_invocation("other", "a", "t").unwrap(), None);
        let (count, page) = s.list_invocations("echo", None, None, 0, 10).unwrap();
        assert_eq!(count, 3);
        assert_eq!(page[0].request_id, "c", "newest first");
        assert_eq!(page[0].status, "DISCARD");
        assert_eq!(page[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            s.invocation_status("a").unwrap().as_deref(),
            Some("RUNNING")
        );
        // Interrupted again, past its allowance: it fails with the reason.
        let r = s.recover_invocations(8000, 2, "t").unwrap();
        assert_eq!(
            r,
            Recovered {
                requeued: 0,
                failed: 1
            }
        );
        let (_, a) = s.list_invocations("echo", Some("a"), None, 0, 10).unwrap();
        assert_eq!(a[0].status, "FAIL");
        assert!(
            a[0].error_message.contains("2 times"),
            "{}",
            a[0].error_message
        );
        // Pruning by age and count keeps the newest ended records.
        assert_eq!(s.prune_invocations(1001, 100).unwrap(), 1, "a is older");
        assert_eq!(s.prune_invocations(0, 1).unwrap(), 1, "b goes, c stays");
        let (count, page) = s.list_invocations("echo", None, None, 0, 10).unwrap();
        assert_eq!((count, page[0].request_id.as_str()), (1, "c"));
    }

    #[test]
    fn the_backlog_counts_waiting_invocations_per_function() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        s.insert_invocation(&new("a", "echo", 10)).unwrap();
        s.insert_invocation(&new("b", "echo", 20)).unwrap();
        s.insert_invocation(&new("c", "slow", 30)).unwrap();
        s.claim_invocation(100, "t").unwrap();
        assert_eq!(
            s.invocation_backlog().unwrap(),
            vec![
                Backlog {
                    function: "echo".into(),
                    waiting: 1,
                    oldest_accepted_ms: 20
                },
                Backlog {
                    function: "slow".into(),
                    waiting: 1,
                    oldest_accepted_ms: 30
                }
            ]
        );
        assert_eq!(s.next_invocation_due().unwrap(), Some(20));
    }
}
