//! `GET /metrics` (Prometheus text format): the invocation metrics
//! ([`crate::invocation_metrics`]) and the gauges and counters of the
//! asynchronous queue, instances, connections, the runtime, the I/O lane
//! and the cluster, read from the server's state.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::invocation_metrics::label;
use crate::state::Shared;
use crate::store::asynchronous::Backlog;

/// The asynchronous queue's families: waiting invocations and the age of
/// the oldest per function (from the store), and the queue's counters.
fn render_async(state: &Shared, out: &mut String, backlog: &[Backlog], now_ms: i64) {
    let _ = writeln!(
        out,
        "# HELP fnhost_async_invocations_waiting Asynchronous invocations waiting to run (or to be retried), by function.\n# TYPE fnhost_async_invocations_waiting gauge"
    );
    for b in backlog {
        let _ = writeln!(
            out,
            "fnhost_async_invocations_waiting{{function=\"{}\"}} {}",
            label(&b.function),
            b.waiting
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_async_oldest_waiting_age_seconds Age of the oldest waiting asynchronous invocation, by function.\n# TYPE fnhost_async_oldest_waiting_age_seconds gauge"
    );
    for b in backlog {
        let age = (now_ms - b.oldest_accepted_ms).max(0) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "fnhost_async_oldest_waiting_age_seconds{{function=\"{}\"}} {age}",
            label(&b.function)
        );
    }
    if crate::telemetry::enabled() {
        let _ = writeln!(
            out,
            "# HELP fnhost_spans_dropped_total Sampled invocations whose spans were dropped: the export queue was full.\n# TYPE fnhost_spans_dropped_total counter\nfnhost_spans_dropped_total {}",
            crate::telemetry::dropped()
        );
    }
    let c = &state.asynchronous.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# HELP fnhost_async_accepted_total Asynchronous invocations accepted (API, timers and destinations).\n# TYPE fnhost_async_accepted_total counter\nfnhost_async_accepted_total {}",
        load(&c.accepted)
    );
    let commits = state.management.store().commit_counts();
    let commit = |f: fn(&crate::store::CommitCounts) -> &std::sync::atomic::AtomicU64| {
        commits.map_or(0, |c| load(f(c)))
    };
    let _ = writeln!(
        out,
        "# HELP fnhost_async_store_transactions_total Transactions the asynchronous queue's writes (accepting, claiming, ending) shared, by whether they were synced to disk (those holding an accepted invocation).\n# TYPE fnhost_async_store_transactions_total counter\nfnhost_async_store_transactions_total{{synced=\"true\"}} {}\nfnhost_async_store_transactions_total{{synced=\"false\"}} {}",
        commit(|c| &c.synced),
        commit(|c| &c.transactions).saturating_sub(commit(|c| &c.synced))
    );
    let _ = writeln!(
        out,
        "# HELP fnhost_async_store_writes_total Writes and claims of the asynchronous queue applied in those transactions.\n# TYPE fnhost_async_store_writes_total counter\nfnhost_async_store_writes_total {}",
        commit(|c| &c.requests)
    );
    let _ = writeln!(
        out,
        "# HELP fnhost_async_retries_total Failed asynchronous attempts queued to run again.\n# TYPE fnhost_async_retries_total counter\nfnhost_async_retries_total {}",
        load(&c.retries)
    );
    let _ = writeln!(
        out,
        "# HELP fnhost_async_discards_total Asynchronous invocations discarded before they ran, by reason.\n# TYPE fnhost_async_discards_total counter\nfnhost_async_discards_total{{reason=\"max_age\"}} {}\nfnhost_async_discards_total{{reason=\"cancelled\"}} {}",
        load(&c.discarded_age),
        load(&c.discarded_cancelled)
    );
    let _ = writeln!(
        out,
        "# HELP fnhost_async_destination_deliveries_total Outcome records delivered to destinations, by destination kind and result.\n# TYPE fnhost_async_destination_deliveries_total counter"
    );
    for (kind, result, n) in [
        (
            "FunctionGraph",
            "delivered",
            load(&c.deliveries_function_ok),
        ),
        (
            "FunctionGraph",
            "failed",
            load(&c.deliveries_function_failed),
        ),
        ("HTTP", "delivered", load(&c.deliveries_http_ok)),
        ("HTTP", "failed", load(&c.deliveries_http_failed)),
    ] {
        let _ = writeln!(
            out,
            "fnhost_async_destination_deliveries_total{{kind=\"{kind}\",result=\"{result}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_async_recovered_at_start Asynchronous invocations the previous server left running, at this start: run again, or failed (interrupted too often).\n# TYPE fnhost_async_recovered_at_start gauge\nfnhost_async_recovered_at_start{{result=\"requeued\"}} {}\nfnhost_async_recovered_at_start{{result=\"failed\"}} {}",
        load(&c.requeued_at_start),
        load(&c.failed_at_start)
    );
}

/// Per function and version, from the registry's generations: instances
/// alive, slots busy, calls queued for a slot, and runaways (calls past
/// their deadline whose handler still runs, each holding its slot).
fn render_instances(state: &Shared, out: &mut String) {
    let functions = state.runtime.registry().list();
    let mut rows = Vec::new();
    for f in &functions {
        rows.push((f.name.as_str(), "latest", &f.latest));
        for v in &f.versions {
            rows.push((f.name.as_str(), v.version.as_str(), &v.generation));
        }
    }
    type Gauge = fn(&fnhost::Generation) -> usize;
    let families: [(&str, &str, Gauge); 4] = [
        (
            "fnhost_function_instances",
            "Instances alive (initialized or initializing), by function and version.",
            |g| g.instance_stats().instances,
        ),
        (
            "fnhost_function_instance_slots_busy",
            "Instance slots held by running calls, runaways included, by function and version.",
            |g| g.instance_stats().active,
        ),
        (
            "fnhost_function_invocations_queued",
            "Calls waiting for an instance slot, by function and version.",
            |g| g.instance_stats().queued,
        ),
        (
            "fnhost_function_runaway_invocations",
            "Calls past their deadline whose handler still runs (each holds its instance slot until it returns), by function and version.",
            |g| g.runaway_invocations(),
        ),
    ];
    for (name, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (function, version, generation) in &rows {
            let _ = writeln!(
                out,
                "{name}{{function=\"{}\",version=\"{}\"}} {}",
                label(function),
                label(version),
                value(generation)
            );
        }
    }
}

/// `GET /metrics`: Prometheus text format.
/// The event sources' families, one series per running consumer.
fn render_triggers(state: &Shared, out: &mut String) {
    let consumers: Vec<(String, std::sync::Arc<crate::active_triggers::SourceStatus>)> = state
        .timers
        .consumers
        .lock()
        .iter()
        .map(|(id, c)| (id.clone(), std::sync::Arc::clone(&c.status)))
        .collect();
    let labels = |id: &str, s: &crate::active_triggers::SourceStatus| {
        format!(
            "trigger=\"{}\",type=\"{}\",function=\"{}\"",
            label(id),
            label(&s.trigger_type),
            label(&s.function)
        )
    };
    if consumers.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_trigger_messages_total Messages of event-source triggers, by how they ended: succeeded, retried (a failed attempt of a batch, retried), dead_lettered (given up on after the last retry).\n# TYPE fnhost_trigger_messages_total counter"
    );
    for (id, s) in &consumers {
        let l = labels(id, s);
        for (result, n) in [
            ("succeeded", &s.succeeded),
            ("retried", &s.retried),
            ("dead_lettered", &s.dead_lettered),
        ] {
            let _ = writeln!(
                out,
                "fnhost_trigger_messages_total{{{l},result=\"{result}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_trigger_lag Messages of an event-source trigger not yet handled: a Redis group's unread and pending entries, a JetStream consumer's pending and unacknowledged messages, MQTT messages not yet acknowledged, a RabbitMQ queue's depth, a Kafka group's consumer lag.\n# TYPE fnhost_trigger_lag gauge"
    );
    for (id, s) in &consumers {
        let _ = writeln!(
            out,
            "fnhost_trigger_lag{{{}}} {}",
            labels(id, s),
            s.lag.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_trigger_last_batch_timestamp_seconds When an event-source trigger last acknowledged a batch (Unix time; 0 before its first).\n# TYPE fnhost_trigger_last_batch_timestamp_seconds gauge"
    );
    for (id, s) in &consumers {
        let _ = writeln!(
            out,
            "fnhost_trigger_last_batch_timestamp_seconds{{{}}} {:.6}",
            labels(id, s),
            s.last_batch_unix_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_trigger_batch_seconds Time from reading a batch to acknowledging it.\n# TYPE fnhost_trigger_batch_seconds histogram"
    );
    for (id, s) in &consumers {
        let l = labels(id, s);
        for (bound, count) in crate::active_triggers::BATCH_BUCKETS
            .iter()
            .zip(&s.batch_buckets)
        {
            let _ = writeln!(
                out,
                "fnhost_trigger_batch_seconds_bucket{{{l},le=\"{bound}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "fnhost_trigger_batch_seconds_bucket{{{l},le=\"+Inf\"}} {}",
            s.batches.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "fnhost_trigger_batch_seconds_sum{{{l}}} {:.6}\nfnhost_trigger_batch_seconds_count{{{l}}} {}",
            s.batch_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            s.batches.load(Ordering::Relaxed)
        );
    }
}

pub(crate) async fn metrics(State(state): State<Shared>) -> Response {
    let mut out = String::new();
    let m = &state.metrics;
    m.render(&mut out);
    let s = Shared::clone(&state);
    let backlog = tokio::task::spawn_blocking(move || s.management.store().invocation_backlog())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    render_async(&state, &mut out, &backlog, now_ms);
    render_instances(&state, &mut out);
    render_triggers(&state, &mut out);
    let stats = state.runtime.stats();
    let gauges = [
        (
            "fnhost_connections_open",
            "Connections being served (priority connections included).",
            state.connections.open().to_string(),
        ),
        (
            "fnhost_connections_priority",
            "Connections served beyond the connection cap (health checks and management only).",
            state.connections.priority().to_string(),
        ),
        (
            "fnhost_invocations_in_flight",
            "Invocations running now.",
            m.in_flight.load(Ordering::Relaxed).to_string(),
        ),
        (
            "fnhost_async_invocations_unfinished",
            "Asynchronous invocations accepted and not yet ended (waiting or running).",
            state.asynchronous.unfinished().to_string(),
        ),
        (
            "fnhost_runaway_invocations",
            "Handlers still running past their deadline: each holds its instance slot (and, in process, a worker thread) until it returns.",
            stats.runaway_invocations.to_string(),
        ),
        (
            "fnhost_libraries_mapped",
            "Distinct libraries mapped (never unmapped).",
            stats.libraries_mapped.to_string(),
        ),
        (
            "fnhost_worker_threads",
            "Worker threads alive.",
            stats.worker_threads.to_string(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_sandbox_layer Sandbox layers worker processes get (1) or lack (0) on this host.\n# TYPE fnhost_sandbox_layer gauge"
    );
    for layer in fnhost::sandbox::check(&state.runtime.config().sandbox) {
        let _ = writeln!(
            out,
            "fnhost_sandbox_layer{{layer=\"{}\"}} {}",
            layer.name,
            u8::from(layer.available)
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_timeouts_total Invocations and initializers answered with timeout.\n# TYPE fnhost_timeouts_total counter\nfnhost_timeouts_total {}",
        stats.timeouts
    );
    let _ = writeln!(
        out,
        "# HELP fnhost_connections_refused_total Connections answered 503 without being read (every cap full).\n# TYPE fnhost_connections_refused_total counter\nfnhost_connections_refused_total {}",
        state.connections.refused()
    );
    if state.management.store().is_shared() {
        render_cluster(&state.propagation, state.timers.fires(), &mut out);
    }
    if let Some(lane) = &state.lane {
        let l = lane.stats();
        let counters = [
            (
                "fnhost_io_lane_runs_total",
                "Handler calls run on the I/O threads.",
                l.runs,
            ),
            (
                "fnhost_io_lane_strikes_total",
                "I/O-thread calls that ran long (each sent its function back to worker threads).",
                l.strikes,
            ),
            (
                "fnhost_io_lane_deadline_answers_total",
                "Callers of I/O-thread calls answered at the deadline by the watchdog.",
                l.deadline_answers,
            ),
            (
                "fnhost_io_lane_nudges_total",
                "Idle I/O threads woken by the watchdog because an I/O-thread call ran past 100 us.",
                l.nudges,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP fnhost_io_lane_running Handler calls running on the I/O threads now.\n# TYPE fnhost_io_lane_running gauge\nfnhost_io_lane_running {}",
            l.running
        );
    }
    let g = stats.generations;
    let _ = writeln!(
        out,
        "# HELP fnhost_generations Code generations by state.\n# TYPE fnhost_generations gauge"
    );
    let _ = writeln!(out, "fnhost_generations{{state=\"live\"}} {}", g.live);
    let _ = writeln!(
        out,
        "fnhost_generations{{state=\"draining\"}} {}",
        g.draining
    );
    let _ = writeln!(out, "fnhost_generations{{state=\"retired\"}} {}", g.retired);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        out,
    )
        .into_response()
}

/// Change propagation in a cluster (see `server::propagation`).
fn render_cluster(p: &crate::propagation::Propagation, fires_timers: bool, out: &mut String) {
    let counters = [
        (
            "fnhost_cluster_changes_applied_total",
            "Changes made on other nodes that this node applied.",
            p.applied.load(Ordering::Relaxed),
        ),
        (
            "fnhost_cluster_change_failures_total",
            "Changes from other nodes that failed to apply here (retried at the next comparison).",
            p.failed.load(Ordering::Relaxed),
        ),
        (
            "fnhost_cluster_apply_failures_total",
            "Stored changes this node read but could not apply (a row another node or a hand wrote that does not load or is out of bounds): the function shows Failed with the reason, and the change is retried with backoff (3 s, doubling, at most 5 min).",
            p.apply_failures.load(Ordering::Relaxed),
        ),
        (
            "fnhost_cluster_notifications_total",
            "Change notifications heard from the shared database.",
            p.notifications.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP fnhost_cluster_apply_seconds How long applying the last change from another node took.\n# TYPE fnhost_cluster_apply_seconds gauge\nfnhost_cluster_apply_seconds {}",
        p.last_resync_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "# HELP fnhost_cluster_lag_seconds From the commit of the last change another node made to this node serving it (the database's clock to this node's: their difference included).\n# TYPE fnhost_cluster_lag_seconds gauge\nfnhost_cluster_lag_seconds {}",
        p.last_lag_ms.load(Ordering::Relaxed) as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "# HELP fnhost_cluster_caught_up Whether this node has applied what the shared store held at its last comparison.\n# TYPE fnhost_cluster_caught_up gauge\nfnhost_cluster_caught_up {}",
        u8::from(p.caught_up())
    );
    let _ = writeln!(
        out,
        "# HELP fnhost_cluster_fires_timers Whether this node is the one that fires the timer triggers (it holds the timer lock).\n# TYPE fnhost_cluster_fires_timers gauge\nfnhost_cluster_fires_timers {}",
        u8::from(fires_timers)
    );
    if let Some(age) = p.since_compared() {
        let _ = writeln!(
            out,
            "# HELP fnhost_cluster_compare_age_seconds Seconds since this node last compared every revision with the shared store (the bound on its lag when a notification is lost).\n# TYPE fnhost_cluster_compare_age_seconds gauge\nfnhost_cluster_compare_age_seconds {age:.3}"
        );
    }
}
