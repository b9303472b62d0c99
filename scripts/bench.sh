#!/usr/bin/env bash
# Library benchmarks. Each group runs its baseline and the fnhost paths in
# interleaved rounds and reports medians of per-round ratios with their
# spread (host/core/benches/support/rounds.rs); results also go to
# target/fnhost-bench/<group>.json under stable ids. Builds the sample
# plugins and the fnhost binary in release first.
#
#   invoke     echo_1KiB, logged_1KiB (direct call, bare thread hand-off,
#              calling thread, worker thread, I/O-thread lane)
#   handoff    the worker-thread path and the bare hand-off, median and p99,
#              in 10 processes in a row (is the path steady?)
#   isolation  isolation_1KiB (raw Unix socket, raw shared memory, fnhost
#              unsandboxed and sandboxed)
#   cold_load  cold loads beside a bare dlopen, the pre-flight beside a bare
#              spawn, worker_start (bare spawn, a worker, a sandboxed worker)
#   instructions  callgrind instruction counts of the in-process paths
#   lifecycle  hot swap (criterion)
#   go         a Go handler (criterion; needs Go)
#   host_call  a 64-byte host call from a handler, in process and from a
#              worker process, beside a direct call and a raw shared-memory
#              round trip
#
# With arguments, runs only those parts (e.g. scripts/bench.sh handoff).
# FNHOST_BENCH_ROUNDS and FNHOST_BENCH_BATCH_MS tune the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(invoke handoff isolation cold_load instructions lifecycle go host_call)
want() { local p; for p in "${parts[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

cargo build --release --locked -p echo -p testplugin -p hotswap
cargo build --release --locked -p fnhost-cli   # the fnhost binary the worker processes run

if want invoke; then
  FNHOST_BENCH_FILTER=_1KiB cargo bench --locked -p fnhost --bench invoke
fi
if want handoff; then
  cargo bench --locked -p fnhost --bench invoke --no-run 2>/dev/null
  for run in $(seq 1 10); do
    FNHOST_BENCH_FILTER=handoff_latency cargo bench --locked -q -p fnhost --bench invoke >/dev/null
    cp target/fnhost-bench/handoff_latency.json "target/fnhost-bench/handoff_latency.$run.json"
  done
  python3 - <<'PY'
import json, pathlib, statistics
runs = [json.loads(pathlib.Path(f"target/fnhost-bench/handoff_latency.{i}.json").read_text())["extra"]
        for i in range(1, 11)]
print()
print("handoff_latency: 10 benchmark processes in a row, 5 alternating blocks of 20,000 calls each")
print("| run | worker thread median | p99 | bare hand-off median | p99 | median ratio |")
print("|---|---|---|---|---|---|")
for i, r in enumerate(runs, 1):
    w, b = r["worker_thread_median_ns"], r["bare_handoff_median_ns"]
    print(f"| {i} | {w/1000:.2f} us | {r['worker_thread_p99_ns']/1000:.2f} us | {b/1000:.2f} us | "
          f"{r['bare_handoff_p99_ns']/1000:.2f} us | {w/b:.2f}x |")
def spread(key):
    v = [r[key] for r in runs]
    return (max(v) - min(v)) / statistics.median(v) * 100
ratios = [r["worker_thread_median_ns"] / r["bare_handoff_median_ns"] for r in runs]
print(f"spread of the medians ((max - min) / median): worker thread {spread('worker_thread_median_ns'):.0f} %, "
      f"bare hand-off {spread('bare_handoff_median_ns'):.0f} %; ratio {min(ratios):.2f}x to {max(ratios):.2f}x, "
      f"median {statistics.median(ratios):.2f}x")
PY
fi
if want isolation; then
  cargo bench --locked -p fnhost --bench isolation
fi
if want cold_load; then
  cargo bench --locked -p fnhost --bench cold_load
fi
if want instructions; then
  ./scripts/bench-instructions.sh
fi
if want lifecycle; then
  cargo bench --locked -p fnhost --bench lifecycle
fi
if want go; then
  # A Go handler through fnhost against Go's own plugin package (prints its table).
  ./scripts/go-plugins.sh >/dev/null
  cargo bench --locked -p fnhost --bench go_echo
fi
if want host_call; then
  cargo bench --locked -p fnhost --bench host_call
fi
