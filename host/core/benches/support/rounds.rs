//! Benchmarks in interleaved rounds, reported as ratios to a baseline that
//! ran in the same rounds.
//!
//! This machine's speed drifts by ±15 % within a minute and by 2x between
//! days, so a time measured minutes away from its baseline says little.
//! Here every round runs one batch of each case, in an order that rotates
//! from round to round, so the baseline and the cases it is compared with
//! run seconds apart at most; each round gives each case a ratio to the
//! baseline of that round, and the report is the median of those ratios
//! with their lowest and highest (the spread), beside the median time.
//! (criterion measures one benchmark after the other, so two of its
//! medians are minutes apart: that is why these benchmarks have their own
//! small harness.)
//!
//! Results go to stdout as a table and to
//! `target/fnhost-bench/<group>.json` under the benchmarks' stable ids
//! (`<group>/<case>`), for scripts that compare runs.
//!
//! Environment: `FNHOST_BENCH_ROUNDS` (rounds, default 15),
//! `FNHOST_BENCH_BATCH_MS` (target time of one batch, default 20),
//! `FNHOST_BENCH_FILTER` (run only groups whose name contains it).

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Times `n` iterations of something and returns how long they took
/// (set-up between iterations may be left out of the time).
pub type Batch<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// Wraps one iteration as a [`Batch`] timed as a whole.
pub fn each<'a>(mut f: impl FnMut() + 'a) -> Batch<'a> {
    Box::new(move |n| {
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        start.elapsed()
    })
}

/// One case of a group.
pub struct Case<'a> {
    name: String,
    batch: Batch<'a>,
    max_batch: u64,
}

impl<'a> Case<'a> {
    pub fn new(name: &str, batch: Batch<'a>) -> Case<'a> {
        Case {
            name: name.to_owned(),
            batch,
            max_batch: 10_000_000,
        }
    }

    /// At most this many iterations per batch (for cases whose iterations
    /// leave something behind, such as a mapped library).
    pub fn max_batch(mut self, n: u64) -> Case<'a> {
        self.max_batch = n.max(1);
        self
    }
}

/// What one case measured over the rounds.
#[derive(Debug, Clone)]
pub struct Measured {
    pub id: String,
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
    /// Per-round ratios to the baseline: median, lowest, highest.
    pub ratio: (f64, f64, f64),
    /// Each round's time per iteration, in round order.
    pub rounds_ns: Vec<f64>,
}

/// Per-round ratios of `a` to `b` (cases of one run): median, lowest,
/// highest.
pub fn ratio(a: &Measured, b: &Measured) -> (f64, f64, f64) {
    let mut r: Vec<f64> = a
        .rounds_ns
        .iter()
        .zip(&b.rounds_ns)
        .map(|(x, y)| x / y)
        .collect();
    let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.iter().copied().fold(0.0, f64::max);
    (median(&mut r), lo, hi)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether a group runs under `FNHOST_BENCH_FILTER`.
pub fn selected(group: &str) -> bool {
    std::env::var("FNHOST_BENCH_FILTER").map_or(true, |f| group.contains(&f))
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Runs `cases` (the first is the baseline) in interleaved rounds; prints
/// and saves the result.
pub fn run(group: &str, mut cases: Vec<Case<'_>>) -> Vec<Measured> {
    run_with(group, &mut cases, env_u64("FNHOST_BENCH_ROUNDS", 15))
}

pub fn run_with(group: &str, cases: &mut [Case<'_>], rounds: u64) -> Vec<Measured> {
    let target = Duration::from_millis(env_u64("FNHOST_BENCH_BATCH_MS", 20));
    // Calibrate: iterations per batch so a batch takes about `target`.
    let sizes: Vec<u64> = cases
        .iter_mut()
        .map(|case| {
            let mut n = 1u64;
            loop {
                let took = (case.batch)(n);
                if took >= target / 4 || n >= case.max_batch {
                    let per = took.as_secs_f64() / n as f64;
                    let wanted = (target.as_secs_f64() / per.max(1e-9)) as u64;
                    return wanted.clamp(1, case.max_batch);
                }
                n = (n * 4).min(case.max_batch);
            }
        })
        .collect();
    let k = cases.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); k];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); k];
    for round in 0..rounds as usize {
        let mut this = vec![0f64; k];
        for j in 0..k {
            let i = (round + j) % k;
            let took = (cases[i].batch)(sizes[i]);
            this[i] = took.as_nanos() as f64 / sizes[i] as f64;
        }
        for i in 0..k {
            times[i].push(this[i]);
            ratios[i].push(this[i] / this[0]);
        }
    }
    let measured: Vec<Measured> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let rounds_ns = times[i].clone();
            let t = &mut times[i];
            let r = &mut ratios[i];
            Measured {
                rounds_ns,
                id: format!("{group}/{}", case.name),
                median_ns: median(t),
                min_ns: t.iter().copied().fold(f64::INFINITY, f64::min),
                max_ns: t.iter().copied().fold(0.0, f64::max),
                ratio: (
                    median(r),
                    r.iter().copied().fold(f64::INFINITY, f64::min),
                    r.iter().copied().fold(0.0, f64::max),
                ),
            }
        })
        .collect();
    report(group, rounds, &measured);
    measured
}

pub fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn report(group: &str, rounds: u64, measured: &[Measured]) {
    println!();
    println!("{group}: {rounds} interleaved rounds; ratio = per-round time / the same round's {}, median (lowest-highest)", measured[0].id);
    println!("| id | median | range | ratio to baseline |");
    println!("|---|---|---|---|");
    for m in measured {
        println!(
            "| {} | {} | {}-{} | {:.2}x ({:.2}-{:.2}) |",
            m.id,
            human(m.median_ns),
            human(m.min_ns),
            human(m.max_ns),
            m.ratio.0,
            m.ratio.1,
            m.ratio.2
        );
    }
    save(group, rounds, measured, &[]);
}

/// Per-call latency percentiles of a case, for paths whose distribution
/// matters (bimodal hand-offs): `(median, p99)` in ns over `samples` calls.
pub fn latency(mut f: impl FnMut(), samples: usize) -> (f64, f64) {
    for _ in 0..samples / 10 {
        f();
    }
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_nanos() as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    (p(0.5), p(0.99))
}

fn out_dir() -> PathBuf {
    // target/release/deps/<bench>-<hash> -> target/fnhost-bench
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map(|t| t.join("fnhost-bench"))
        .unwrap_or_else(|| PathBuf::from("fnhost-bench"))
}

/// Writes `target/fnhost-bench/<group>.json` (with extra `(key, value)`
/// numbers such as latency percentiles).
pub fn save(group: &str, rounds: u64, measured: &[Measured], extra: &[(&str, f64)]) {
    let dir = out_dir();
    let _ = std::fs::create_dir_all(&dir);
    let cases: Vec<String> = measured
        .iter()
        .map(|m| {
            format!(
                "{{\"id\":\"{}\",\"median_ns\":{:.1},\"min_ns\":{:.1},\"max_ns\":{:.1},\"ratio\":{:.4},\"ratio_min\":{:.4},\"ratio_max\":{:.4}}}",
                m.id, m.median_ns, m.min_ns, m.max_ns, m.ratio.0, m.ratio.1, m.ratio.2
            )
        })
        .collect();
    let extra: Vec<String> = extra
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v:.1}"))
        .collect();
    let json = format!(
        "{{\"group\":\"{group}\",\"rounds\":{rounds},\"cases\":[{}],\"extra\":{{{}}}}}\n",
        cases.join(","),
        extra.join(",")
    );
    let _ = std::fs::write(dir.join(format!("{group}.json")), json);
}
