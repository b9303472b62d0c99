//! Asynchronous invocations in the store: each is a row from the moment it
//! is accepted (the 202 is sent after the row is committed) until it is
//! pruned, so a crash loses none. A row moves `WAIT` → `RUNNING` (claimed by
//! a worker) → `SUCCESS`, `FAIL` or `DISCARD`, or back to `WAIT` for a
//! retry. Lookups by request id use the primary key; listings by function
//! and claims by status and due time use their own indexes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{from_json, to_json, Store, StoreError};

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
pub struct NewInvocation {
    pub request_id: String,
    pub function: String,
    /// What to run: `name` or `name:qualifier`, resolved when it runs.
    pub target: String,
    pub payload: Vec<u8>,
    pub accepted_ms: i64,
    pub traceparent: String,
    pub tracestate: String,
    /// `api`, `timer` or `destination`.
    pub source: &'static str,
    /// How many destination deliveries led to this invocation.
    pub depth: u32,
}

/// A change to asynchronous invocations that may share a transaction with
/// others (see [`Store::write_invocation`]).
#[derive(Debug, Clone)]
pub enum InvocationWrite {
    /// Records an accepted invocation; `false` when one with its request id
    /// exists already (nothing changes).
    Insert(NewInvocation),
    /// Ends attempt `attempt` of a running invocation with its final
    /// status (its payload is dropped: its destinations have it already);
    /// `false` when the attempt no longer held the claim (nothing changes).
    Finish {
        request_id: String,
        attempt: u32,
        status: &'static str,
        error_code: i64,
        error_message: String,
        end_time: String,
    },
    /// Puts attempt `attempt` of a running invocation back to wait for a
    /// retry at `next_ms`, with its error; `false` when the attempt no
    /// longer held the claim.
    Retry {
        request_id: String,
        attempt: u32,
        next_ms: i64,
        error_code: i64,
        error_message: String,
    },
}

impl InvocationWrite {
    /// Whether the transaction that applies this write must be synced to
    /// disk before it is answered. Only an insert must: its caller is told
    /// the invocation is accepted. A claim, an end or a retry that a crash
    /// of the machine (or of the database server) loses takes the
    /// invocation back to an earlier state, from which it runs again, as
    /// at least once allows; a crash of fnhost's process loses none of
    /// them. Sparing their syncs is what lets a queue of short invocations
    /// run thousands a second.
    pub(crate) fn must_be_durable(&self) -> bool {
        matches!(self, InvocationWrite::Insert(_))
    }

    /// What this write holds in memory (its payload, mostly): bounds a
    /// shared transaction.
    pub(crate) fn size(&self) -> usize {
        match self {
            InvocationWrite::Insert(new) => new.payload.len() + 256,
            InvocationWrite::Finish { error_message, .. }
            | InvocationWrite::Retry { error_message, .. } => error_message.len() + 128,
        }
    }
}

/// A claim of the invocations due (see [`Store::claim_invocations`]).
#[derive(Debug, Clone)]
pub struct Claim {
    /// Claims what is due at this time (`next_ms <= now_ms`).
    pub now_ms: i64,
    /// The start time recorded on what is claimed.
    pub start_time: String,
    /// In a shared store, a claim whose lease ran out after this many
    /// interruptions fails instead of running again.
    pub max_interrupted: u32,
    /// In a shared store, how long a claim lasts unrenewed.
    pub lease: std::time::Duration,
    /// Claims at most this many.
    pub limit: usize,
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
    /// When it started, `null` while it waits (the SDK warns on `""`).
    #[serde(serialize_with = "empty_as_null")]
    pub start_time: String,
    /// When it ended, `null` until it does.
    #[serde(serialize_with = "empty_as_null")]
    pub end_time: String,
    pub attempts: u32,
    pub trace_id: String,
}

/// An empty time as JSON `null` (what FunctionGraph's SDKs parse as "none";
/// an empty string makes the Python SDK warn that it is not a time).
fn empty_as_null<S: serde::Serializer>(time: &str, s: S) -> Result<S::Ok, S::Error> {
    if time.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(time)
    }
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

/// The trace id of a stored `traceparent` (`00-<trace id>-<span>-<flags>`).
pub(crate) fn trace_id_of(traceparent: &str) -> String {
    traceparent.split('-').nth(1).unwrap_or("").to_owned()
}

fn duplicate_invocation(request_id: &str) -> StoreError {
    StoreError::duplicate(format!(
        "an asynchronous invocation with request id {request_id} exists already"
    ))
}

impl Store {
    #[cfg(test)]
    /// Records an accepted invocation (committed when this returns), in a
    /// transaction of its own: a duplicate request id is an error
    /// ([`StoreError::is_duplicate`]). The server's path shares
    /// transactions instead ([`write_invocation`](Self::write_invocation)).
    pub fn insert_invocation(&self, new: NewInvocation) -> Result<(), StoreError> {
        let id = new.request_id.clone();
        let inserted = self.write_now(InvocationWrite::Insert(new))?;
        if inserted {
            Ok(())
        } else {
            Err(duplicate_invocation(&id))
        }
    }

    #[cfg(test)]
    /// Applies one write in a transaction of its own.
    fn write_now(&self, write: InvocationWrite) -> Result<bool, StoreError> {
        let (done, _) = self
            .backend
            .write_invocations(std::slice::from_ref(&write), None)?;
        done.first()
            .copied()
            .ok_or_else(|| StoreError::new("the store answered no result for a write"))
    }

    /// Applies `write` in a transaction it shares with the writes other
    /// callers make meanwhile (group commit: one transaction and one sync
    /// to disk for all of them), and returns once that transaction is
    /// committed: an insert answers only when its row is durable, and a
    /// duplicate request id is an error ([`StoreError::is_duplicate`]); an
    /// end or a retry answers whether the attempt still held its claim.
    pub async fn write_invocation(&self, write: InvocationWrite) -> Result<bool, StoreError> {
        let insert = match &write {
            InvocationWrite::Insert(new) => Some(new.request_id.clone()),
            _ => None,
        };
        let done = self.group_commit().write(write).await?;
        match insert {
            Some(id) if !done => Err(duplicate_invocation(&id)),
            _ => Ok(done),
        }
    }

    #[cfg(test)]
    /// Claims the invocation due first (`next_ms <= now_ms`), in a
    /// transaction of its own (see [`claim_invocations`](Self::claim_invocations)).
    pub fn claim_invocation(
        &self,
        now_ms: i64,
        start_time: &str,
        max_interrupted: u32,
        lease: std::time::Duration,
    ) -> Result<Option<Claimed>, StoreError> {
        let claim = Claim {
            now_ms,
            start_time: start_time.to_owned(),
            max_interrupted,
            lease,
            limit: 1,
        };
        Ok(self.backend.write_invocations(&[], Some(&claim))?.1.pop())
    }

    /// Claims up to `claim.limit` invocations due, the first due first, in
    /// the transaction the writes of the moment share: each becomes
    /// `RUNNING`, its attempt counted. In a shared store a claim is a lease
    /// of `claim.lease` on the database's clock, which the claiming node
    /// renews while the attempt runs
    /// ([`renew_invocation`](Self::renew_invocation)): an invocation whose
    /// node died is claimed again once its lease ran out, and fails instead
    /// once it was interrupted `claim.max_interrupted` times. A claim
    /// need not be synced to disk
    /// ([`InvocationWrite::must_be_durable`] says why).
    pub async fn claim_invocations(&self, claim: Claim) -> Result<Vec<Claimed>, StoreError> {
        self.group_commit().claim(claim).await
    }

    /// Extends this node's claim of attempt `attempt` by `lease` from now;
    /// whether the claim is still this node's (`false`: another node has
    /// taken the invocation over, and this attempt's end will not count).
    pub fn renew_invocation(
        &self,
        request_id: &str,
        attempt: u32,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.backend.renew_invocation(request_id, attempt, lease)
    }

    /// When the next waiting invocation is due, if any waits.
    pub fn next_invocation_due(&self) -> Result<Option<i64>, StoreError> {
        self.backend.next_invocation_due()
    }

    #[cfg(test)]
    /// Ends attempt `attempt` of a running invocation with its final
    /// status, in a transaction of its own; whether the attempt still held
    /// the claim (else nothing changes).
    pub fn finish_invocation(
        &self,
        request_id: &str,
        attempt: u32,
        status: &'static str,
        error_code: i64,
        error_message: &str,
        end_time: &str,
    ) -> Result<bool, StoreError> {
        self.write_now(InvocationWrite::Finish {
            request_id: request_id.to_owned(),
            attempt,
            status,
            error_code,
            error_message: error_message.to_owned(),
            end_time: end_time.to_owned(),
        })
    }

    #[cfg(test)]
    /// Puts attempt `attempt` of a running invocation back to wait for a
    /// retry at `next_ms`, in a transaction of its own; whether it still
    /// held the claim.
    pub fn retry_invocation(
        &self,
        request_id: &str,
        attempt: u32,
        next_ms: i64,
        error_code: i64,
        error_message: &str,
    ) -> Result<bool, StoreError> {
        self.write_now(InvocationWrite::Retry {
            request_id: request_id.to_owned(),
            attempt,
            next_ms,
            error_code,
            error_message: error_message.to_owned(),
        })
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
        self.backend
            .cancel_invocation(function, request_id, end_time)
    }

    /// At start: invocations left `RUNNING` by a server that stopped are
    /// queued again (at least once delivery), unless they were interrupted
    /// `max_interrupted` times already: those fail, with the reason. In a
    /// shared database this does nothing: other nodes may be running them,
    /// and a claim's lease brings back the ones whose node died.
    pub fn recover_invocations(
        &self,
        now_ms: i64,
        max_interrupted: u32,
        end_time: &str,
    ) -> Result<Recovered, StoreError> {
        self.backend
            .recover_invocations(now_ms, max_interrupted, end_time)
    }

    #[cfg(test)]
    /// The status of one invocation.
    pub fn invocation_status(&self, request_id: &str) -> Result<Option<String>, StoreError> {
        self.backend.invocation_status(request_id)
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
        self.backend
            .list_invocations(function, request_id, status, offset, limit)
    }

    /// Invocations not yet ended (waiting or running).
    pub fn unfinished_invocations(&self) -> Result<u64, StoreError> {
        self.backend.unfinished_invocations()
    }

    /// Waiting invocations by function.
    pub fn invocation_backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        self.backend.invocation_backlog()
    }

    /// Deletes ended invocations accepted before `before_ms`, and the oldest
    /// ended ones beyond the newest `keep`; returns how many went.
    pub fn prune_invocations(&self, before_ms: i64, keep: u64) -> Result<usize, StoreError> {
        self.backend.prune_invocations(before_ms, keep)
    }

    /// Inserts or replaces a function's asynchronous invocation
    /// configuration.
    pub fn put_async_config<T: Serialize>(
        &self,
        function: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        self.backend.put_async_config(function, to_json(record)?)
    }

    /// A function's asynchronous invocation configuration.
    pub fn async_config<T: DeserializeOwned>(
        &self,
        function: &str,
    ) -> Result<Option<T>, StoreError> {
        self.backend
            .async_config(function)?
            .map(|r| from_json(&r))
            .transpose()
    }

    /// Deletes a function's asynchronous invocation configuration; whether
    /// it had one.
    pub fn delete_async_config(&self, function: &str) -> Result<bool, StoreError> {
        self.backend.delete_async_config(function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: &str, function: &str, at: i64) -> NewInvocation {
        NewInvocation {
            request_id: id.into(),
            function: function.into(),
            target: function.into(),
            payload: b"{}".to_vec(),
            accepted_ms: at,
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: String::new(),
            source: "api",
            depth: 0,
        }
    }

    const LEASE: std::time::Duration = std::time::Duration::from_secs(30);

    /// An outside attack queued an invocation of a function, deleted the
    /// function and created another of its name (in another project): the
    /// queued invocation ran on the new one. Deleting a function ends its
    /// waiting invocations `FAIL`, in the delete's transaction.
    fn waiting_invocations_fail_with_their_function(s: &Store) {
        s.insert_invocation(new("waits", "gone", 1000)).unwrap();
        s.insert_invocation(new("other", "stays", 1000)).unwrap();
        s.delete_function("gone", "t").unwrap();
        let (_, page) = s.list_invocations("gone", None, None, 0, 10).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].status, status::FAIL);
        assert_eq!(page[0].error_code, 404);
        let claimed = s.claim_invocation(5000, "t", 3, LEASE).unwrap().unwrap();
        assert_eq!(
            claimed.request_id, "other",
            "the deleted one is not claimed"
        );
        assert!(s.claim_invocation(5000, "t", 3, LEASE).unwrap().is_none());
    }

    #[test]
    fn sqlite_waiting_invocations_fail_with_their_function() {
        let dir = tempfile::tempdir().unwrap();
        waiting_invocations_fail_with_their_function(
            &Store::open(&dir.path().join("state.db")).unwrap(),
        );
    }

    #[test]
    fn postgres_waiting_invocations_fail_with_their_function() {
        let Some(db) = crate::store::test_database::fresh() else {
            return;
        };
        waiting_invocations_fail_with_their_function(&Store::connect(&db.url).unwrap());
    }

    #[test]
    fn invocations_are_claimed_in_order_recovered_after_a_crash_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = Store::open(&path).unwrap();
            for (i, id) in ["a", "b", "c"].iter().enumerate() {
                s.insert_invocation(new(id, "echo", 1000 + i as i64))
                    .unwrap();
            }
            assert_eq!(
                s.claim_invocation(999, "t", 3, LEASE)
                    .unwrap()
                    .map(|c| c.request_id),
                None,
                "not due yet"
            );
            let a = s.claim_invocation(5000, "t", 3, LEASE).unwrap().unwrap();
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
            .map(|_| {
                s.claim_invocation(7000, "t", 3, LEASE)
                    .unwrap()
                    .unwrap()
                    .request_id
            })
            .collect();
        assert_eq!(order, ["b", "c", "a"]);
        // Only the attempt that holds the claim ends it.
        assert!(!s
            .finish_invocation("b", 2, status::SUCCESS, 0, "", "t")
            .unwrap());
        assert!(s
            .finish_invocation("b", 1, status::SUCCESS, 0, "", "t")
            .unwrap());
        assert!(s.retry_invocation("c", 1, 9000, 1, "boom").unwrap());
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
        s.insert_invocation(new("a", "echo", 10)).unwrap();
        s.insert_invocation(new("b", "echo", 20)).unwrap();
        s.insert_invocation(new("c", "slow", 30)).unwrap();
        s.claim_invocation(100, "t", 3, LEASE).unwrap();
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
