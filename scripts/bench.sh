#!/usr/bin/env bash
# Library benchmarks (criterion): invocation overhead against a direct call
# of the same handler, and cold load. Builds the sample plugins in release
# first, then prints the medians as a table with ratios to the baseline.
# Extra arguments go to criterion (e.g. a filter: scripts/bench.sh echo).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p echo -p testplugin
cargo bench --locked -p fnhost --bench invoke -- "$@"

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
    for bench in ["fnhost_current_thread", "fnhost_worker_thread"]:
        m = median(group, bench)
        if m is not None:
            print(f"| {group} {bench} | {m:.0f} ns | +{m - base:.0f} ns | {m / base:.2f}x |")
cold = median("cold_load", "testplugin/copy+open+check+init")
if cold is not None:
    print(f"| cold load of testplugin (copy, open, check, init) | {cold / 1000:.0f} us | | |")
PY
