//! Invocation metrics: counts by function, version and outcome, and
//! duration and cold-start histograms, rendered in Prometheus text format
//! for `GET /metrics` ([`crate::metrics`]).
//!
//! Recording is on every invocation's path, so it takes no lock for writing
//! and allocates nothing once a function's series exist: read locks to find
//! the series, then atomic counters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::activity::Activity;

/// Duration histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];

/// How an invocation ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Error,
    Timeout,
    /// Refused before it ran (too many requests, payload too large, ...).
    Rejected,
    /// Its caller went away before it was answered.
    Cancelled,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Success,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::Rejected,
        Outcome::Cancelled,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Rejected => "rejected",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One function's series.
#[derive(Default)]
struct FunctionSeries {
    /// Invocations by version, then by [`Outcome`] (in `Outcome::ALL` order).
    by_version: RwLock<BTreeMap<String, [AtomicU64; Outcome::ALL.len()]>>,
    /// Durations: observations per bucket (not cumulative; the `+Inf`
    /// bucket last), and their sum in nanoseconds.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    /// Cold starts (an instance started for the call): the same, of the
    /// start's own duration (its initializer included).
    cold_buckets: [AtomicU64; BUCKETS.len() + 1],
    cold_sum_nanos: AtomicU64,
}

/// Counts `took` into a histogram's (non-cumulative) buckets and sum.
fn observe(buckets: &[AtomicU64; BUCKETS.len() + 1], sum_nanos: &AtomicU64, took: Duration) {
    let seconds = took.as_secs_f64();
    let bucket = BUCKETS
        .iter()
        .position(|bound| seconds <= *bound)
        .unwrap_or(BUCKETS.len());
    buckets[bucket].fetch_add(1, Ordering::Relaxed);
    let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    sum_nanos.fetch_add(nanos, Ordering::Relaxed);
}

/// A label value as the text format wants it (backslash, quote and newline
/// escaped).
pub(crate) fn label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(value);
    }
    std::borrow::Cow::Owned(
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

/// Writes one histogram's samples (`name` with `labels`, e.g. `function="f"`).
fn render_histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    buckets: &[AtomicU64; BUCKETS.len() + 1],
    sum_nanos: &AtomicU64,
) {
    let mut cumulative = 0;
    for (i, bound) in BUCKETS.iter().enumerate() {
        cumulative += buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
    }
    cumulative += buckets[BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
    let sum = sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
}

impl FunctionSeries {
    fn record(&self, version: &str, outcome: Outcome, took: Duration) {
        let counted = self
            .by_version
            .read()
            .get(version)
            .map(|c| c[outcome as usize].fetch_add(1, Ordering::Relaxed))
            .is_some();
        if !counted {
            self.by_version
                .write()
                .entry(version.to_owned())
                .or_default()[outcome as usize]
                .fetch_add(1, Ordering::Relaxed);
        }
        observe(&self.buckets, &self.sum_nanos, took);
    }
}

/// Invocation metrics for `/metrics`.
#[derive(Default)]
pub(crate) struct Metrics {
    functions: RwLock<BTreeMap<String, Arc<FunctionSeries>>>,
    pub(crate) in_flight: AtomicI64,
    /// The recent window the console charts (counted with the rest).
    pub(crate) activity: Activity,
}

impl Metrics {
    pub(crate) fn record(&self, function: &str, version: &str, outcome: Outcome, took: Duration) {
        self.with_series(function, |series| series.record(version, outcome, took));
        let (error, timed) = match outcome {
            Outcome::Success => (false, true),
            Outcome::Error | Outcome::Timeout => (true, true),
            Outcome::Rejected => (true, false),
            Outcome::Cancelled => (false, false),
        };
        self.activity.record(
            function,
            version,
            error,
            timed.then_some(took),
            crate::activity::coarse_now(),
        );
    }

    /// Counts a cold start of `function` that took `took`.
    pub(crate) fn record_cold_start(&self, function: &str, took: Duration) {
        self.with_series(function, |series| {
            observe(&series.cold_buckets, &series.cold_sum_nanos, took)
        });
    }

    fn with_series(&self, function: &str, f: impl FnOnce(&FunctionSeries)) {
        // Under the read lock: no reference count to bounce between cores
        // on every invocation.
        if let Some(series) = self.functions.read().get(function) {
            f(series);
            return;
        }
        let series = Arc::clone(
            self.functions
                .write()
                .entry(function.to_owned())
                .or_default(),
        );
        f(&series);
    }

    pub(crate) fn render(&self, out: &mut String) {
        let functions = self.functions.read();
        let _ = writeln!(
            out,
            "# HELP fnhost_invocations_total Invocations by function, version and outcome."
        );
        let _ = writeln!(out, "# TYPE fnhost_invocations_total counter");
        for (f, series) in functions.iter() {
            let f = label(f);
            for (v, counts) in series.by_version.read().iter() {
                let v = label(v);
                for outcome in Outcome::ALL {
                    let n = counts[outcome as usize].load(Ordering::Relaxed);
                    if n > 0 {
                        let o = outcome.label();
                        let _ = writeln!(
                            out,
                            "fnhost_invocations_total{{function=\"{f}\",version=\"{v}\",outcome=\"{o}\"}} {n}"
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP fnhost_invocation_duration_seconds Invocation duration, queueing included."
        );
        let _ = writeln!(out, "# TYPE fnhost_invocation_duration_seconds histogram");
        for (f, series) in functions.iter() {
            let labels = format!("function=\"{}\"", label(f));
            render_histogram(
                out,
                "fnhost_invocation_duration_seconds",
                &labels,
                &series.buckets,
                &series.sum_nanos,
            );
        }
        let _ = writeln!(
            out,
            "# HELP fnhost_cold_start_duration_seconds Instance starts that an invocation waited for (cold starts), by function: how long the start took, its initializer included."
        );
        let _ = writeln!(out, "# TYPE fnhost_cold_start_duration_seconds histogram");
        for (f, series) in functions.iter() {
            let labels = format!("function=\"{}\"", label(f));
            render_histogram(
                out,
                "fnhost_cold_start_duration_seconds",
                &labels,
                &series.cold_buckets,
                &series.cold_sum_nanos,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_version_and_outcome_and_renders_cumulative_buckets() {
        let m = Metrics::default();
        m.record("f", "latest", Outcome::Success, Duration::from_micros(100));
        m.record("f", "latest", Outcome::Success, Duration::from_millis(3));
        m.record("f", "1", Outcome::Timeout, Duration::from_secs(40));
        m.record("g", "latest", Outcome::Rejected, Duration::ZERO);
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            r#"fnhost_invocations_total{function="f",version="latest",outcome="success"} 2"#,
            r#"fnhost_invocations_total{function="f",version="1",outcome="timeout"} 1"#,
            r#"fnhost_invocations_total{function="g",version="latest",outcome="rejected"} 1"#,
            r#"fnhost_invocation_duration_seconds_bucket{function="f",le="0.0005"} 1"#,
            r#"fnhost_invocation_duration_seconds_bucket{function="f",le="0.001"} 1"#,
            r#"fnhost_invocation_duration_seconds_bucket{function="f",le="0.005"} 2"#,
            r#"fnhost_invocation_duration_seconds_bucket{function="f",le="30"} 2"#,
            r#"fnhost_invocation_duration_seconds_bucket{function="f",le="+Inf"} 3"#,
            r#"fnhost_invocation_duration_seconds_sum{function="f"} 40.0031"#,
            r#"fnhost_invocation_duration_seconds_count{function="f"} 3"#,
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line} in\n{out}");
        }
        assert!(
            !out.contains(r#"outcome="error""#),
            "zero series are left out"
        );
    }
}
