#!/usr/bin/env bash
# Instructions per call of the in-process paths, counted by valgrind's
# callgrind (they do not drift with the machine's speed as times do):
# each case runs 10,000 calls inside `callgrind_measured` in
# host/core/benches/invoke.rs, and only that function is counted.
# Installs valgrind from the distribution when it is missing.
# Run after `cargo build --release -p echo` (scripts/bench.sh does both).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
  if command -v apt-get >/dev/null; then
    ${SUDO:-$( [ "$(id -u)" = 0 ] || echo sudo )} apt-get install -y -qq valgrind >/dev/null
  else
    echo "valgrind is missing (install it to count instructions)" >&2
    exit 1
  fi
fi

bin=$(cargo bench --locked -p fnhost --bench invoke --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "invoke" and m.get("executable"):
        print(m["executable"])')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
calls=10000
declare -A ir
for id in echo_1KiB/direct_call echo_1KiB/fnhost_current_thread logged_1KiB/direct_call logged_1KiB/fnhost_current_thread; do
  file="$out/$(echo "$id" | tr / _).out"
  FNHOST_BENCH_CALLGRIND="$id" valgrind --tool=callgrind --collect-atstart=no \
    --toggle-collect='*callgrind_measured*' --callgrind-out-file="$file" "$bin" >/dev/null 2>&1
  total=$(grep -E '^(summary|totals):' "$file" | head -1 | awk '{print $2}')
  ir[$id]=$((total / calls))
done
echo
echo "instructions per call (valgrind --tool=callgrind, $calls calls each)"
echo "| id | instructions | ratio to the direct call |"
echo "|---|---|---|"
for group in echo_1KiB logged_1KiB; do
  base=${ir[$group/direct_call]}
  for case in direct_call fnhost_current_thread; do
    n=${ir[$group/$case]}
    python3 -c "print(f'| $group/$case | $n | {$n / $base:.2f}x |')"
  done
done
