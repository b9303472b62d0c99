//! Recent activity per function and version, for the console's charts and
//! its function list: invocations, errors and latency quantiles (p50, p99)
//! in [`BUCKET`]-long buckets over the last [`WINDOW`].
//!
//! `/metrics` gives counters since the start for a scraper to difference;
//! a browser has no scraper, so the server keeps the recent window itself.
//! Each version's buckets form a ring behind one mutex (held for a few
//! additions per invocation, never across anything that blocks); a bucket's
//! latencies are a log-linear histogram (four bins per power of two of
//! microseconds, so a quantile is within about 12 % of the true value),
//! allocated on the bucket's first invocation and reused when the ring
//! comes round. Memory is bounded: at most [`BUCKETS`] histograms of
//! [`BINS`] counters per version that ran, and a deleted function's series
//! go with it ([`Activity::forget`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

/// One bucket's span.
pub(crate) const BUCKET: Duration = Duration::from_secs(10);
/// How far back the series reach.
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Buckets per ring.
pub(crate) const BUCKETS: usize = (WINDOW.as_secs() / BUCKET.as_secs()) as usize;
/// Latency bins per bucket: four per power of two up to 2^40 µs (12 days);
/// longer calls fall in the last.
const BINS: usize = 160;

/// The latency bin of a call that took `micros` µs.
fn bin(micros: u64) -> usize {
    if micros < 4 {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros() as usize; // >= 2
    let sub = ((micros >> (exponent - 2)) & 3) as usize;
    (4 * (exponent - 1) + sub).min(BINS - 1)
}

/// The middle of bin `b`, in µs.
fn bin_middle(b: usize) -> f64 {
    if b < 4 {
        return b as f64;
    }
    let exponent = b / 4 + 1;
    let width = 1u64 << (exponent - 2);
    let lower = (4 + (b % 4) as u64) << (exponent - 2);
    lower as f64 + width as f64 / 2.0
}

#[derive(Default)]
struct Bucket {
    /// Which bucket of time this is (seconds since 1970 / [`BUCKET`]);
    /// counts of an older number are stale.
    number: u64,
    invocations: u64,
    errors: u64,
    latency: Option<Box<[u32; BINS]>>,
}

impl Bucket {
    fn reset(&mut self, number: u64) {
        self.number = number;
        self.invocations = 0;
        self.errors = 0;
        if let Some(latency) = &mut self.latency {
            latency.fill(0);
        }
    }
}

struct Ring {
    buckets: Vec<Bucket>,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            buckets: (0..BUCKETS).map(|_| Bucket::default()).collect(),
        }
    }

    fn record(&mut self, number: u64, error: bool, took: Option<Duration>) {
        let bucket = &mut self.buckets[(number % BUCKETS as u64) as usize];
        if bucket.number != number {
            bucket.reset(number);
        }
        bucket.invocations += 1;
        bucket.errors += u64::from(error);
        if let Some(took) = took {
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            let latency = bucket.latency.get_or_insert_with(|| Box::new([0; BINS]));
            latency[bin(micros)] = latency[bin(micros)].saturating_add(1);
        }
    }
}

/// Counts and latency quantiles over some span.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Stats {
    pub(crate) invocations: u64,
    pub(crate) errors: u64,
    /// Median latency in ms (none without a timed call).
    pub(crate) p50_ms: Option<f64>,
    /// 99th percentile latency in ms.
    pub(crate) p99_ms: Option<f64>,
}

/// Sums of buckets, from which [`Stats`] are read.
struct Sum {
    invocations: u64,
    errors: u64,
    latency: Box<[u64; BINS]>,
}

impl Sum {
    fn new() -> Sum {
        Sum {
            invocations: 0,
            errors: 0,
            latency: Box::new([0; BINS]),
        }
    }

    fn add(&mut self, bucket: &Bucket) {
        self.invocations += bucket.invocations;
        self.errors += bucket.errors;
        if let Some(latency) = &bucket.latency {
            for (sum, n) in self.latency.iter_mut().zip(latency.iter()) {
                *sum += u64::from(*n);
            }
        }
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        let timed: u64 = self.latency.iter().sum();
        if timed == 0 {
            return None;
        }
        // The smallest bin holding the ceil(q * n)-th call.
        let rank = ((q * timed as f64).ceil() as u64).clamp(1, timed);
        let mut seen = 0;
        for (b, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bin_middle(b).round() / 1000.0);
            }
        }
        None
    }

    fn stats(&self) -> Stats {
        Stats {
            invocations: self.invocations,
            errors: self.errors,
            p50_ms: self.quantile(0.50),
            p99_ms: self.quantile(0.99),
        }
    }
}

/// One bucket of a version's series, as the API answers it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    /// When the bucket starts (ms since 1970).
    pub(crate) start_ms: u64,
    #[serde(flatten)]
    pub(crate) stats: Stats,
}

/// A version's recent activity: totals over the span and every bucket of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VersionSeries {
    pub(crate) version: String,
    #[serde(flatten)]
    pub(crate) total: Stats,
    pub(crate) buckets: Vec<Point>,
}

/// A function's rings by version.
type Versions = BTreeMap<String, Arc<Mutex<Ring>>>;

/// The recent activity of every function and version.
#[derive(Default)]
pub(crate) struct Activity {
    functions: RwLock<BTreeMap<String, Versions>>,
}

/// The wall clock to a few milliseconds (the kernel's last tick, read
/// without a full clock read): enough to put an invocation in its
/// [`BUCKET`], at a third of the cost on every invocation.
pub(crate) fn coarse_now() -> SystemTime {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_REALTIME_COARSE
    // takes no other argument.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
        return SystemTime::now();
    }
    match (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
        (Ok(secs), Ok(nanos)) => UNIX_EPOCH + Duration::new(secs, nanos),
        _ => SystemTime::now(),
    }
}

fn bucket_number(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / BUCKET.as_secs()
}

/// The bucket numbers of the last `span` up to `now`, oldest first.
fn span_numbers(now: SystemTime, span: Duration) -> std::ops::RangeInclusive<u64> {
    let last = bucket_number(now);
    let count = (span.as_secs() / BUCKET.as_secs()).clamp(1, BUCKETS as u64);
    (last + 1).saturating_sub(count)..=last
}

impl Activity {
    /// Counts one invocation of `function`'s `version` ending at `at`: an
    /// error or not, and how long it took (none for a call refused before
    /// it ran).
    pub(crate) fn record(
        &self,
        function: &str,
        version: &str,
        error: bool,
        took: Option<Duration>,
        at: SystemTime,
    ) {
        let number = bucket_number(at);
        {
            // Counted under the read lock: no reference count to bounce
            // between the executor threads on every invocation.
            let functions = self.functions.read();
            if let Some(ring) = functions.get(function).and_then(|v| v.get(version)) {
                ring.lock().record(number, error, took);
                return;
            }
        }
        // The version's first call: its ring is made (once, under the
        // write lock).
        self.functions
            .write()
            .entry(function.to_owned())
            .or_default()
            .entry(version.to_owned())
            .or_insert_with(|| Arc::new(Mutex::new(Ring::new())))
            .lock()
            .record(number, error, took);
    }

    /// Drops a deleted function's series.
    pub(crate) fn forget(&self, function: &str) {
        self.functions.write().remove(function);
    }

    fn rings(&self, function: &str) -> Vec<(String, Arc<Mutex<Ring>>)> {
        self.functions
            .read()
            .get(function)
            .map(|versions| {
                versions
                    .iter()
                    .map(|(v, ring)| (v.clone(), Arc::clone(ring)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `function`'s versions over the last `span` (at most [`WINDOW`])
    /// up to `now`, one point per bucket (empty ones included).
    pub(crate) fn series(
        &self,
        function: &str,
        span: Duration,
        now: SystemTime,
    ) -> Vec<VersionSeries> {
        let numbers = span_numbers(now, span);
        self.rings(function)
            .into_iter()
            .map(|(version, ring)| {
                let ring = ring.lock();
                let mut total = Sum::new();
                let buckets = numbers
                    .clone()
                    .map(|number| {
                        let bucket = &ring.buckets[(number % BUCKETS as u64) as usize];
                        let mut sum = Sum::new();
                        if bucket.number == number {
                            sum.add(bucket);
                            total.add(bucket);
                        }
                        Point {
                            start_ms: number * BUCKET.as_millis() as u64,
                            stats: sum.stats(),
                        }
                    })
                    .collect();
                VersionSeries {
                    version,
                    total: total.stats(),
                    buckets,
                }
            })
            .collect()
    }

    /// `function`'s totals, all versions together, over the last `span`.
    pub(crate) fn totals(&self, function: &str, span: Duration, now: SystemTime) -> Stats {
        let numbers = span_numbers(now, span);
        let mut total = Sum::new();
        for (_, ring) in self.rings(function) {
            let ring = ring.lock();
            for number in numbers.clone() {
                let bucket = &ring.buckets[(number % BUCKETS as u64) as usize];
                if bucket.number == number {
                    total.add(bucket);
                }
            }
        }
        total.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    #[test]
    fn bins_are_contiguous_and_their_middles_within_an_eighth() {
        let mut previous = 0;
        for micros in 0..100_000u64 {
            let b = bin(micros);
            assert!(
                b == previous || b == previous + 1,
                "{micros}: {previous} -> {b}"
            );
            previous = b;
            if micros >= 4 {
                let error = (bin_middle(b) - micros as f64).abs() / micros as f64;
                assert!(
                    error <= 0.125,
                    "{micros} µs: middle {} ({error})",
                    bin_middle(b)
                );
            }
        }
        assert_eq!(bin(u64::MAX), BINS - 1);
    }

    #[test]
    fn quantiles_follow_the_calls_of_the_span() {
        let activity = Activity::default();
        // 98 fast calls, 2 slow errors in one bucket; one more call later.
        for _ in 0..98 {
            activity.record("f", "latest", false, Some(Duration::from_millis(2)), at(0));
        }
        for _ in 0..2 {
            activity.record("f", "latest", true, Some(Duration::from_millis(400)), at(1));
        }
        activity.record("f", "1", false, None, at(25));
        let series = activity.series("f", WINDOW, at(25));
        assert_eq!(series.len(), 2);
        let latest = series.iter().find(|s| s.version == "latest").unwrap();
        assert_eq!(latest.buckets.len(), BUCKETS);
        assert_eq!((latest.total.invocations, latest.total.errors), (100, 2));
        let p50 = latest.total.p50_ms.unwrap();
        let p99 = latest.total.p99_ms.unwrap();
        assert!((1.75..=2.25).contains(&p50), "{p50}");
        assert!((350.0..=450.0).contains(&p99), "{p99}");
        // The newest bucket is last; the calls sit two buckets back.
        let last = latest.buckets.last().unwrap();
        assert_eq!(last.start_ms, bucket_number(at(25)) * 10_000);
        assert_eq!(latest.buckets[BUCKETS - 3].stats.invocations, 100);
        let version_1 = series.iter().find(|s| s.version == "1").unwrap();
        assert_eq!(version_1.total.invocations, 1);
        assert_eq!(version_1.total.p50_ms, None);
        assert_eq!(activity.totals("f", WINDOW, at(25)).invocations, 101);
        // A one-minute span still holds them; past the window they are gone.
        assert_eq!(
            activity.totals("f", Duration::from_secs(60), at(25)).errors,
            2
        );
        assert_eq!(activity.totals("f", WINDOW, at(25 + 901)).invocations, 0);
    }

    #[test]
    fn a_ring_that_comes_round_counts_only_its_new_span() {
        let activity = Activity::default();
        activity.record("f", "latest", true, Some(Duration::from_secs(1)), at(0));
        // The same slot of the ring, one window later.
        let later = at(WINDOW.as_secs());
        activity.record("f", "latest", false, Some(Duration::from_millis(1)), later);
        let totals = activity.totals("f", WINDOW, later);
        assert_eq!((totals.invocations, totals.errors), (1, 0));
        assert!(totals.p99_ms.unwrap() < 2.0);
        activity.forget("f");
        assert!(activity.series("f", WINDOW, later).is_empty());
    }

    #[test]
    fn the_coarse_clock_is_the_wall_clock_to_a_few_milliseconds() {
        let before = SystemTime::now();
        let coarse = coarse_now();
        let after = SystemTime::now();
        // The kernel's tick: at most one (up to 10 ms at HZ=100) behind.
        assert!(coarse <= after, "{coarse:?} after {after:?}");
        assert!(
            before.duration_since(coarse).unwrap_or_default() < Duration::from_millis(50),
            "{coarse:?} long before {before:?}"
        );
    }
}
