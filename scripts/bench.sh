#!/usr/bin/env bash
# Library benchmarks (criterion): invocation overhead against a direct call
# of the same handler, and cold load. Builds the sample plugins in release
# first, then prints the medians as a table with ratios to the baseline.
# Extra arguments go to criterion (e.g. a filter: scripts/bench.sh echo).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p echo -p testplugin -p hotswap
cargo build --release --locked -p fnhost-cli   # the fnhost binary the worker processes run
cargo bench --locked -p fnhost --bench invoke -- "$@"
cargo bench --locked -p fnhost --bench lifecycle -- "$@"
cargo bench --locked -p fnhost --bench isolation -- "$@"
# A Go handler through fnhost against Go's own plugin package (prints its table).
./scripts/go-plugins.sh >/dev/null
cargo bench --locked -p fnhost --bench go_echo

python3 - <<'PY'
import json, pathlib
root = pathlib.Path("target/criterion")
def median(group, bench):
    p = root / group / bench / "new" / "estimates.json"
    if not p.exists():
        return None
    return json.loads(p.read_text())["median"]["point_estimate"]
print()
print("| benchmark | median | overhead vs direct call | ratio |")
print("|---|---|---|---|")
for group in ["echo_1KiB", "logged_1KiB"]:
    base = median(group, "direct_call")
    if base is None:
        continue
    print(f"| {group} direct call (baseline) | {base:.0f} ns | | 1.00x |")
    for bench in ["fnhost_current_thread", "fnhost_worker_thread", "fnhost_io_lane_here"]:
        m = median(group, bench)
        if m is not None:
            print(f"| {group} {bench} | {m:.0f} ns | +{m - base:.0f} ns | {m / base:.2f}x |")
cold = median("cold_load", "testplugin/copy+open+check+init")
if cold is not None:
    print(f"| cold load of testplugin (copy, open, check, init) | {cold / 1000:.0f} us | | |")
print()
print("| hot swap | median | ratio |")
print("|---|---|---|")
for bench, label in [("new_build_to_serving", "deploy a never-seen build until it serves"),
                     ("mapped_build_to_serving", "deploy an already-mapped build until it serves")]:
    m = median("deploy", bench)
    if m is not None:
        print(f"| {label} | {m / 1000:.0f} us | |")
steady = median("invoke_hotswap", "steady_state")
during = median("invoke_hotswap", "while_swapping")
if steady is not None and during is not None:
    print(f"| invoke (registry, 1 KiB), steady state (baseline) | {steady:.0f} ns | 1.00x |")
    print(f"| invoke (registry, 1 KiB), while another thread swaps the code every ms | {during:.0f} ns | {during / steady:.2f}x |")
raw = median("isolation_1KiB", "raw_unix_socket_round_trip")
iso = median("isolation_1KiB", "fnhost_process_isolation")
inp = median("isolation_1KiB", "fnhost_in_process")
if raw is not None and iso is not None:
    print()
    print("| process isolation, 1 KiB | median | ratio |")
    print("|---|---|---|")
    print(f"| raw round trip over a Unix socket to a child (baseline) | {raw / 1000:.1f} us | 1.00x |")
    print(f"| fnhost, echo in a worker process | {iso / 1000:.1f} us | {iso / raw:.2f}x |")
    if inp is not None:
        print(f"| fnhost, echo in process (reference) | {inp / 1000:.1f} us | {inp / raw:.2f}x |")
PY
