//! Group commit: the writes to asynchronous invocations that concurrent
//! callers make (accepting, ending, retrying) share one transaction, and so
//! one sync to disk, instead of paying one each.
//!
//! One thread, `fnhost-commit`, owns the committing: it takes the first
//! write waiting, every other write waiting at that moment (up to
//! [`MAX_WRITES`] and [`MAX_BYTES`]), applies them in one transaction, and
//! answers each caller once that transaction is committed. Nothing waits
//! on a timer: while one transaction commits, the next batch gathers, so
//! a lone write commits at once and a busy server commits in large
//! batches. The queue needs no bound of its own: every insert holds one of
//! the asynchronous queue's reserved places (its capacity) while it waits,
//! and every end or retry holds a worker.
//!
//! A batch the database refuses as a whole for a reason that is not the
//! store's state (the database unreachable, the disk full) is applied again
//! one write at a time, so that one write the database refuses fails alone
//! and never takes the others' with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::asynchronous::{Claim, Claimed, InvocationWrite};
use super::{Backend, StoreError};

/// Most writes in one transaction.
pub(crate) const MAX_WRITES: usize = 256;
/// Most bytes (payloads, mostly) in one transaction: large payloads commit
/// in several.
pub(crate) const MAX_BYTES: usize = 16 * 1024 * 1024;

/// What waits for the committer: a write, or a claim of what is due.
enum Request {
    Write(InvocationWrite, oneshot::Sender<Result<bool, StoreError>>),
    Claim(Claim, oneshot::Sender<Result<Vec<Claimed>, StoreError>>),
}

/// What the committer counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct CommitCounts {
    /// Shared transactions committed (or refused).
    pub transactions: AtomicU64,
    /// Of them, the ones synced to disk (they held an insert).
    pub synced: AtomicU64,
    /// Writes and claims they applied.
    pub requests: AtomicU64,
}

/// The handle of the committing thread; the thread ends when this drops.
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Request>,
    counts: Arc<CommitCounts>,
}

fn stopped() -> StoreError {
    StoreError::new("the store's committer has stopped")
}

impl GroupCommit {
    /// Starts the committing thread for `backend`.
    pub(crate) fn start(backend: Arc<dyn Backend>) -> GroupCommit {
        let (queue, waiting) = mpsc::channel();
        let counts = Arc::new(CommitCounts::default());
        let counted = Arc::clone(&counts);
        let spawned = std::thread::Builder::new()
            .name("fnhost-commit".into())
            .spawn(move || commit(&*backend, &waiting, &counted));
        if let Err(e) = spawned {
            // The receiver is gone with the closure: every write answers
            // that the committer has stopped.
            log::error!(target: "fnhost::store", "cannot start the store's committer: {e}");
        }
        GroupCommit { queue, counts }
    }

    /// What the committer has done so far.
    pub(crate) fn counts(&self) -> &CommitCounts {
        &self.counts
    }

    /// Applies `write` in the next shared transaction; its result once
    /// that transaction is committed.
    pub(crate) async fn write(&self, write: InvocationWrite) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request::Write(write, reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Claims what is due in the next shared transaction, after its writes
    /// (so an invocation accepted in it may be claimed in it).
    pub(crate) async fn claim(&self, claim: Claim) -> Result<Vec<Claimed>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request::Claim(claim, reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The committing thread: batches what waits, applies, answers; until the
/// handle is dropped.
fn commit(backend: &dyn Backend, waiting: &mpsc::Receiver<Request>, counts: &CommitCounts) {
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(first) => first,
            None => match waiting.recv() {
                Ok(first) => first,
                Err(mpsc::RecvError) => return,
            },
        };
        let (mut writes, mut replies, mut claim, mut bytes) =
            (Vec::new(), Vec::new(), None, 0usize);
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Write(write, reply) => {
                    if !writes.is_empty() && bytes.saturating_add(write.size()) > MAX_BYTES {
                        carried = Some(Request::Write(write, reply));
                        break;
                    }
                    bytes += write.size();
                    writes.push(write);
                    replies.push(reply);
                }
                // One claim a transaction (the dispatcher makes one at a
                // time; another waits for the next).
                Request::Claim(c, reply) if claim.is_none() => claim = Some((c, reply)),
                other => {
                    carried = Some(other);
                    break;
                }
            }
            if writes.len() < MAX_WRITES {
                next = waiting.try_recv().ok();
            }
        }
        let (claim, claim_reply) = claim.unzip();
        counts.transactions.fetch_add(1, Ordering::Relaxed);
        if writes.iter().any(InvocationWrite::must_be_durable) {
            counts.synced.fetch_add(1, Ordering::Relaxed);
        }
        counts.requests.fetch_add(
            (writes.len() + usize::from(claim.is_some())) as u64,
            Ordering::Relaxed,
        );
        let (written, claimed) = apply(backend, &writes, claim.as_ref());
        for (reply, result) in replies.into_iter().zip(written) {
            // A caller that went away (its client hung up) needs no answer:
            // what it wrote is committed all the same.
            let _ = reply.send(result);
        }
        if let Some(reply) = claim_reply {
            let _ = reply.send(claimed);
        }
    }
}

/// Applies `writes` and `claim` in one transaction; where the database
/// refuses it for a reason of one write's, each write alone, then the
/// claim alone.
#[allow(clippy::type_complexity)]
pub(crate) fn apply(
    backend: &dyn Backend,
    writes: &[InvocationWrite],
    claim: Option<&Claim>,
) -> (
    Vec<Result<bool, StoreError>>,
    Result<Vec<Claimed>, StoreError>,
) {
    match backend.write_invocations(writes, claim) {
        Ok((done, claimed)) if done.len() == writes.len() => {
            (done.into_iter().map(Ok).collect(), Ok(claimed))
        }
        Ok(_) => {
            let e = StoreError::new("the store answered a batch of writes with another count");
            (vec![Err(e.clone()); writes.len()], Err(e))
        }
        Err(e)
            if writes.len() + usize::from(claim.is_some()) <= 1
                || e.is_unavailable()
                || e.is_disk_full() =>
        {
            (vec![Err(e.clone()); writes.len()], Err(e))
        }
        Err(e) => {
            log::warn!(target: "fnhost::store", "a shared transaction of {} writes failed ({e}); applying them one by one", writes.len());
            let written = writes
                .iter()
                .map(|w| {
                    backend
                        .write_invocations(std::slice::from_ref(w), None)?
                        .0
                        .first()
                        .copied()
                        .ok_or_else(|| StoreError::new("the store answered no result for a write"))
                })
                .collect();
            let claimed = match claim {
                Some(c) => backend
                    .write_invocations(&[], Some(c))
                    .map(|(_, claimed)| claimed),
                None => Ok(Vec::new()),
            };
            (written, claimed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::asynchronous::NewInvocation;
    use crate::store::{test_database, Store};

    fn insert(id: &str, function: &str) -> InvocationWrite {
        InvocationWrite::Insert(NewInvocation {
            request_id: id.into(),
            function: function.into(),
            target: function.into(),
            payload: b"{}".to_vec(),
            accepted_ms: 1,
            traceparent: String::new(),
            tracestate: String::new(),
            source: "api",
            depth: 0,
        })
    }

    /// One write the database refuses (here a NUL byte, which PostgreSQL's
    /// text refuses, or a trigger's abort in SQLite) fails alone; a
    /// duplicate fails alone; the rest of the batch is committed.
    fn a_refused_write_fails_alone(store: &Store, poison: &str) {
        let writes = [
            insert("a", "echo"),
            insert("b", poison),
            insert("a", "echo"),
            insert("c", "echo"),
        ];
        let (written, claimed) = apply(&*store.backend, &writes, None);
        assert!(written[0].as_ref().is_ok_and(|&w| w), "{written:?}");
        assert!(written[1].is_err(), "{written:?}");
        assert!(
            written[2].as_ref().is_ok_and(|&w| !w),
            "the duplicate: {written:?}"
        );
        assert!(written[3].as_ref().is_ok_and(|&w| w), "{written:?}");
        assert!(claimed.is_ok_and(|c| c.is_empty()));
        let listed = store.list_invocations("echo", None, None, 0, 10).unwrap();
        assert_eq!(listed.0, 2, "a and c: {listed:?}");
    }

    #[test]
    fn sqlite_a_refused_write_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON async_invocations
                 WHEN NEW.function = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
            )
            .unwrap();
        a_refused_write_fails_alone(&store, "poison");
    }

    #[test]
    fn postgres_a_refused_write_fails_alone() {
        let Some(db) = test_database::fresh() else {
            return;
        };
        a_refused_write_fails_alone(&Store::connect(&db.url).unwrap(), "nul\0byte");
    }

    /// Writes that wait while a transaction commits share the next one,
    /// and each caller is answered with its own result.
    #[test]
    fn writes_that_wait_together_share_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Arc::new(Store::open(&path).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // Another connection holds the database's write lock: the first
        // transaction waits for it, and every later write queues up.
        let side = rusqlite::Connection::open(&path).unwrap();
        side.execute_batch("BEGIN IMMEDIATE").unwrap();
        let writes: Vec<_> = (0..50)
            .map(|i| {
                let store = Arc::clone(&store);
                runtime.spawn(async move {
                    store
                        .write_invocation(insert(&format!("r{i}"), "echo"))
                        .await
                })
            })
            .collect();
        // Fixed waits: for the tasks to queue their writes (microseconds),
        // and then the duplicate behind them.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let duplicate = {
            let store = Arc::clone(&store);
            runtime.spawn(async move { store.write_invocation(insert("r7", "echo")).await })
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        side.execute_batch("COMMIT").unwrap();
        let mut inserted = 0;
        for w in writes {
            inserted += usize::from(runtime.block_on(w).unwrap().is_ok());
        }
        let duplicate = runtime.block_on(duplicate).unwrap();
        // r7 was inserted once: by the first of its two writes.
        assert_eq!(inserted, 50);
        assert!(duplicate.unwrap_err().is_duplicate());
        let counts = store.commit_counts().unwrap();
        assert_eq!(counts.requests.load(Ordering::Relaxed), 51);
        let transactions = counts.transactions.load(Ordering::Relaxed);
        assert!(
            transactions <= 3,
            "51 writes waiting together took {transactions} transactions"
        );
    }
}
