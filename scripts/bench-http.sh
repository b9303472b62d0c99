#!/usr/bin/env bash
# HTTP benchmark on loopback, bounded in time:
#  1. sync invoke of `echo` (1 KiB body) through `fnhost serve` under wrk,
#     versus a minimal server on the same stack answering the same bytes
#     (host/examples/http_baseline.rs), both started here, in the same run;
#  2. hot swap under load: 20 code updates during a 20 s wrk run, counting
#     non-2xx answers and socket errors.
# Installs wrk from the distribution's packages when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    echo "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk
fi
cargo build --release --locked -p fnhost -p echo --bin fnhost --example http_baseline
out=target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/functions"
cp "$out/libecho.so" "$work/functions/echo.so"
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
duration=${DURATION:-10}

RUST_LOG="warn,fnhost::server=info" "$out/fnhost" serve --listen 127.0.0.1:18000 --data-dir "$work/data" --cache-dir "$work/cache" \
    --functions-dir "$work/functions" > "$work/fnhost.log" 2>&1 &
"$out/examples/http_baseline" 127.0.0.1:18001 > "$work/baseline.log" 2>&1 &
url=http://127.0.0.1:18000/v2/bench/fgs/functions/echo/invocations
for _ in $(seq 100); do
    curl -sf -XPOST --data x "$url" >/dev/null 2>&1 && curl -sf -XPOST --data x http://127.0.0.1:18001/x >/dev/null 2>&1 && break
    sleep 0.1
done

run() { wrk -t2 -c32 -d"${duration}s" --latency -s "$work/post.lua" "$1"; }
reqs() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v); print v } else { sub(/s/, "", v); print v * 1000 } }'; }

echo "== baseline (minimal axum/hyper server, same bytes)"; run http://127.0.0.1:18001/x | tee "$work/base.txt"
echo "== fnhost serve, sync invoke of echo"; run "$url" | tee "$work/fnhost.txt"

echo "== hot swap under load: 20 code updates during a 20 s run"
(
    sleep 2
    for i in $(seq 20); do
        cp "$out/libecho.so" "$work/functions/.echo.so.tmp"
        printf '%08d' "$i" >> "$work/functions/.echo.so.tmp"   # a distinct build each time
        mv "$work/functions/.echo.so.tmp" "$work/functions/echo.so"
        sleep 0.8
    done
) &
wrk -t2 -c32 -d20s --latency -s "$work/post.lua" "$url" | tee "$work/swap.txt"
wait %3 2>/dev/null || true
deploys=$(grep -c "deployed echo" "$work/fnhost.log" || true)

b=$(reqs "$work/base.txt"); f=$(reqs "$work/fnhost.txt")
bp=$(to_ms "$(p99 "$work/base.txt")"); fp=$(to_ms "$(p99 "$work/fnhost.txt")")
non2xx=$(awk '/Non-2xx/ {print $5}' "$work/swap.txt"); non2xx=${non2xx:-0}
sockerr=$(awk '/Socket errors/ {print $0}' "$work/swap.txt"); sockerr=${sockerr:-none}
echo
echo "| run (wrk -t2 -c32, ${duration}s, 1 KiB POST) | requests/s | p99 | ratio to baseline |"
echo "|---|---|---|---|"
echo "| minimal axum/hyper server (baseline) | $b | ${bp} ms | 1.00x |"
echo "| fnhost serve, sync invoke of echo | $f | ${fp} ms | $(awk -v a="$f" -v b="$b" 'BEGIN{printf "%.2fx req/s", a/b}'), $(awk -v a="$fp" -v b="$bp" 'BEGIN{printf "%.2fx p99", a/b}') |"
echo
echo "hot swap under load: $(reqs "$work/swap.txt") requests/s, non-2xx: $non2xx, socket errors: $sockerr, deploys logged: $deploys"
