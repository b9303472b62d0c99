//! Change propagation between the nodes of a cluster (a shared PostgreSQL
//! store, see `store::postgres`).
//!
//! Every change a node commits bumps the function's revision and notifies
//! [`CHANGES`](crate::store::postgres::CHANGES) with the function's name.
//! Each node keeps one connection of its own that `LISTEN`s there; a
//! notification makes it re-read that function and bring its registry in
//! line (`Changing::resync`: the same deploy path as a local update, so
//! identical code is a no-op and in-flight calls drain on this node). Every
//! [`COMPARE_EVERY`] (and after each reconnection) it also compares all
//! revisions with the ones it last applied, which catches notifications
//! lost while its connection was down. The node is *caught up* once a
//! comparison succeeded; `/readyz` answers 503 before that.
//!
//! The lag (from a change's commit to this node serving it) is measured
//! against the database's clock, which the notification carries, so it
//! includes the difference between the two clocks;
//! [`Propagation`](crate::propagation::Propagation) also exports the time
//! each resync took and the age of the last successful comparison.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::functions::blocking;
use crate::state::Shared;
use crate::store::postgres::CHANGES;

/// How often a node compares every revision with the ones it applied.
pub const COMPARE_EVERY: Duration = Duration::from_secs(3);

/// How long a node waits before connecting again after its listening
/// connection broke.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The advisory lock the node that fires timers holds ("fnhost" and 2).
const TIMER_LOCK: i64 = 0x0066_6e68_6f73_7402;

/// How often a node that does not fire timers tries to take the lock.
const LEAD_RETRY: Duration = Duration::from_secs(2);

/// Starts listening for changes on `url` (the store's database), and
/// competing for the timer lock. Call before the timers are restored.
pub(crate) fn start(state: &Shared, url: String) {
    state.propagation.start();
    state.timers.gate();
    let s = Arc::clone(state);
    let u = url.clone();
    tokio::spawn(async move { run(s, u).await });
    let s = Arc::clone(state);
    tokio::spawn(async move { lead(s, url).await });
}

/// How long connecting, or a heartbeat on the timer lock's connection, may
/// take before the connection counts as lost.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

type Connection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// A connection of this node's own (listening, the timer lock): bounded to
/// connect, with TCP keepalives after 10 s of silence so that a database
/// that vanished without closing is noticed.
async fn connect(url: &str) -> Result<(tokio_postgres::Client, Connection), String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    config
        .connect_timeout(CONNECTION_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(10));
    match tokio::time::timeout(CONNECTION_TIMEOUT, config.connect(NoTls)).await {
        Ok(connected) => connected.map_err(|e| e.to_string()),
        Err(_) => Err("connecting timed out".into()),
    }
}

/// One node at a time fires timers: the one holding [`TIMER_LOCK`], a
/// session lock on a connection of its own, so that when the node or its
/// connection dies, PostgreSQL releases it and another node takes over
/// within [`LEAD_RETRY`]. A node that loses its connection, or whose
/// heartbeat on it goes unanswered for [`CONNECTION_TIMEOUT`], stops its
/// timers at once (another may already lead).
async fn lead(state: Shared, url: String) {
    loop {
        if let Ok((client, connection)) = connect(&url).await {
            let mut connection = tokio::spawn(connection);
            loop {
                let taken = client
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&TIMER_LOCK])
                    .await
                    .map(|row| row.get::<_, bool>(0));
                match taken {
                    Ok(true) => {
                        log::info!(target: "fnhost::cluster", "this node fires the timers now");
                        let s = Arc::clone(&state);
                        let _ = blocking(move || {
                            s.timers.lead(&s, true);
                            Ok(())
                        })
                        .await;
                        loop {
                            tokio::select! {
                                _ = &mut connection => break,
                                () = tokio::time::sleep(LEAD_RETRY) => {
                                    let beat = tokio::time::timeout(
                                        CONNECTION_TIMEOUT,
                                        client.simple_query("SELECT 1"),
                                    )
                                    .await;
                                    if !matches!(beat, Ok(Ok(_))) {
                                        break;
                                    }
                                }
                            }
                        }
                        connection.abort();
                        state.timers.lead(&state, false);
                        log::warn!(target: "fnhost::cluster", "lost the timer lock's connection: this node stopped firing timers");
                        break;
                    }
                    Ok(false) => {
                        tokio::select! {
                            () = tokio::time::sleep(LEAD_RETRY) => {}
                            _ = &mut connection => break,
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

async fn run(state: Shared, url: String) {
    // One comparison at a time, in a task of its own: the loop below keeps
    // hearing notifications while one runs.
    let applied = Arc::new(tokio::sync::Mutex::new(Applied::default()));
    let compare_now = |state: &Shared| {
        if let Ok(mut guard) = Arc::clone(&applied).try_lock_owned() {
            let s = Arc::clone(state);
            tokio::spawn(async move {
                let _ = compare(&s, &mut guard).await;
            });
        }
    };
    loop {
        let (names, listening) = match listen(&url).await {
            Ok(pair) => pair,
            Err(e) => {
                log::warn!(target: "fnhost::cluster", "cannot listen for changes: {e}");
                compare_now(&state);
                tokio::time::sleep(RECONNECT_AFTER).await;
                continue;
            }
        };
        let mut names = names;
        // What changed while this node was not listening.
        compare_now(&state);
        let mut tick = tokio::time::interval(COMPARE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                heard = names.recv() => match heard {
                    Some(payload) => {
                        state.propagation.notifications.fetch_add(1, Ordering::Relaxed);
                        // `NAME MS`: the function, and when its change committed.
                        let (name, at_ms) = match payload.rsplit_once(' ') {
                            Some((name, ms)) => (name.to_owned(), ms.parse::<i64>().ok()),
                            None => (payload, None),
                        };
                        // Each change applies in a task of its own: a slow
                        // one (an initializer of minutes) delays no other
                        // function's (one function's changes still apply in
                        // order: they take its lock).
                        let s = Arc::clone(&state);
                        tokio::spawn(async move {
                            if resync(&s, name).await == Some(true) {
                                if let Some(at_ms) = at_ms {
                                    s.propagation.record_lag(at_ms);
                                }
                            }
                        });
                    }
                    None => break, // the connection ended
                },
                _ = tick.tick() => compare_now(&state),
            }
        }
        drop(listening);
        log::warn!(target: "fnhost::cluster", "the listening connection ended; connecting again");
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// A connection that listens on [`CHANGES`]: the names it hears, and the
/// client (listening while it lives).
async fn listen(
    url: &str,
) -> Result<(mpsc::UnboundedReceiver<String>, tokio_postgres::Client), String> {
    let (client, mut connection) = connect(url).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    log::warn!(target: "fnhost::cluster", "listening connection: {e}");
                    return;
                }
            }
        }
    });
    tokio::time::timeout(
        CONNECTION_TIMEOUT,
        client.batch_execute(&format!("LISTEN {CHANGES}")),
    )
    .await
    .map_err(|_| "LISTEN timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok((rx, client))
}

/// What this node applied of the shared store: each function's revision,
/// and the changes it could not apply, retried with backoff.
#[derive(Default)]
struct Applied {
    revisions: HashMap<String, i64>,
    failing: HashMap<String, Failing>,
}

/// A function whose stored change this node cannot apply.
struct Failing {
    /// The revision that failed (`None`: the function is not in the store).
    revision: Option<i64>,
    /// Failed attempts in a row.
    failures: u32,
    /// Not tried again before this, unless the revision moves.
    next_try: Instant,
}

/// How many functions a comparison applies at once.
const RESYNCS_AT_ONCE: usize = 8;

/// The first retry of a change that could not apply comes after this; each
/// next one after twice as long, up to [`MAX_APPLY_BACKOFF`].
const FIRST_APPLY_BACKOFF: Duration = Duration::from_secs(3);
/// The longest wait between two tries of a change that could not apply.
const MAX_APPLY_BACKOFF: Duration = Duration::from_secs(300);

impl Applied {
    /// Whether `name` at `revision` failed before and its backoff runs.
    fn backing_off(&self, name: &str, revision: Option<i64>) -> bool {
        self.failing
            .get(name)
            .is_some_and(|f| f.revision == revision && Instant::now() < f.next_try)
    }

    /// `name` at `revision` failed (again): the next try waits longer.
    fn failed(&mut self, name: &str, revision: Option<i64>) -> Duration {
        let failures = match self.failing.get(name) {
            Some(f) if f.revision == revision => f.failures + 1,
            _ => 1,
        };
        let backoff = FIRST_APPLY_BACKOFF
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_APPLY_BACKOFF);
        self.failing.insert(
            name.to_owned(),
            Failing {
                revision,
                failures,
                next_try: Instant::now() + backoff,
            },
        );
        backoff
    }
}

/// Re-reads one function and applies it here: `Some(changed)`, or `None`
/// when that failed (then the function shows `Failed` with the reason on
/// this node, what served before keeps serving, and it is retried with
/// backoff).
async fn resync(state: &Shared, name: String) -> Option<bool> {
    let started = Instant::now();
    let changing = state.management.begin(&name).await;
    let shown = name.clone();
    let result = blocking(move || changing.resync(&name)).await;
    let p = &state.propagation;
    p.last_resync_us.store(
        u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    match result {
        Ok(changed) => {
            // Triggers change the revision without changing the function:
            // their routes and timers are reloaded in any case.
            let (s, function) = (Arc::clone(state), shown.clone());
            let _ = blocking(move || {
                s.apig_routes.reload(&s);
                crate::triggers::restart_timers(&s, Some(&function));
                Ok(())
            })
            .await;
            if changed {
                p.applied.fetch_add(1, Ordering::Relaxed);
                log::info!(target: "fnhost::cluster", "function {shown}: applied a change made on another node in {:?}", started.elapsed());
            }
            Some(changed)
        }
        Err(e) => {
            p.failed.fetch_add(1, Ordering::Relaxed);
            log::warn!(target: "fnhost::cluster", "function {shown}: cannot apply a change made on another node (retried with backoff): {}", e.message);
            state.management.mark_apply_failed(&shown, &e.message);
            None
        }
    }
}

/// Compares every revision with what this node applied, and resyncs what
/// differs (new, changed, deleted functions).
async fn compare(state: &Shared, applied: &mut Applied) -> Result<(), ()> {
    let s = Arc::clone(state);
    let revisions = blocking(move || {
        s.management
            .store()
            .revisions()
            .map_err(crate::error::ApiError::store)
    })
    .await
    .map_err(|e| {
        log::warn!(target: "fnhost::cluster", "cannot compare revisions: {}", e.message);
    })?;
    let current: HashMap<String, i64> = revisions.into_iter().collect();
    let mut all_ok = true;
    let mut names: Vec<String> = current
        .iter()
        .filter(|(name, rev)| applied.revisions.get(*name) != Some(rev))
        .map(|(name, _)| name.clone())
        .collect();
    names.extend(
        applied
            .revisions
            .keys()
            .filter(|name| !current.contains_key(*name))
            .cloned(),
    );
    // Functions this node has that the store does not (deleted while it
    // was away before it ever compared).
    names.extend(
        state
            .management
            .records()
            .into_iter()
            .map(|r| r.func_name)
            .filter(|name| !current.contains_key(name) && !applied.revisions.contains_key(name)),
    );
    names.sort_unstable();
    names.dedup();
    names.retain(|name| !applied.backing_off(name, current.get(name).copied()));
    // Side by side, a few at a time: a slow function delays no other.
    let slots = Arc::new(tokio::sync::Semaphore::new(RESYNCS_AT_ONCE));
    let mut running = tokio::task::JoinSet::new();
    for name in names {
        let (s, slots) = (Arc::clone(state), Arc::clone(&slots));
        running.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let done = resync(&s, name.clone()).await;
            (name, done)
        });
    }
    while let Some(joined) = running.join_next().await {
        let Ok((name, done)) = joined else {
            all_ok = false;
            continue;
        };
        let revision = current.get(&name).copied();
        if done.is_some() {
            applied.failing.remove(&name);
            match revision {
                Some(rev) => applied.revisions.insert(name, rev),
                None => applied.revisions.remove(&name),
            };
        } else if state.management.store_reachable() {
            // The row cannot apply (not the database unreachable): counted,
            // reported, and retried later; the node is caught up with
            // everything else.
            let backoff = applied.failed(&name, revision);
            state
                .propagation
                .apply_failures
                .fetch_add(1, Ordering::Relaxed);
            log::warn!(target: "fnhost::cluster", "function {name}: its stored change cannot apply here; next try in {} s", backoff.as_secs());
        } else {
            all_ok = false;
        }
    }
    if all_ok {
        state.propagation.mark_compared();
    }
    Ok(())
}
