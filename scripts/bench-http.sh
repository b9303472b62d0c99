#!/usr/bin/env bash
# HTTP benchmark on loopback, bounded in time:
#  1. sync invoke of `echo` (1 KiB body) through `fnhost serve`, in-process
#     (the default: worker threads), in-process with the I/O-thread lane
#     (`--io-lane`: a proven-short handler runs on the I/O threads) and inline
#     (`--isolation inline`), under wrk, versus a minimal server on the same stack answering the same bytes
#     (host/server/examples/http_baseline.rs): once with the body alone, once with
#     the FunctionGraph response headers fnhost sends, as constants. All are
#     started here and measured in interleaved rounds (the machine's speed
#     drifts over seconds); ratios are medians of the per-round ratios;
#  2. hot swap under load: 20 code updates during a 20 s wrk run, for each
#     mode, counting non-2xx answers and socket errors.
# Installs wrk from the distribution's packages when it is missing.
# ROUNDS (default 5) and DURATION (seconds per run, default 5) bound it.
# COMPARE_BIN=/path/to/another/fnhost adds that build in the default mode to
# the same interleaved rounds (an A/B of two builds against one baseline).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
    echo "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk
fi
# Two commands: a target selection (--example) would leave the binary out.
cargo build --release --locked -p fnhost-cli
cargo build --release --locked -p fnhost-server --example http_baseline
cargo build --release --locked -p echo   # the cdylib (a --bin build of the line above skips it)
out=target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
rounds=${ROUNDS:-5}
duration=${DURATION:-5}

# start_fnhost NAME PORT FLAGS...: a server deploying $work/NAME/echo.so.
start_fnhost() {
    local name=$1 port=$2
    shift 2
    mkdir -p "$work/$name"
    cp "$out/libecho.so" "$work/$name/echo.so"
    RUST_LOG="warn,fnhost::server=info" "$out/fnhost" serve --listen "127.0.0.1:$port" \
        --data-dir "$work/data-$name" --cache-dir "$work/cache-$name" \
        --functions-dir "$work/$name" "$@" > "$work/fnhost-$name.log" 2>&1 &
}
declare -A pid
start_fnhost in-process 18000; pid[in-process]=$!
start_fnhost lane 18003 --io-lane; pid[lane]=$!
start_fnhost inline 18002 --isolation inline; pid[inline]=$!
runs=(base base-fg in-process lane inline)
if [ -n "${COMPARE_BIN:-}" ]; then
    mkdir -p "$work/compare"
    cp "$out/libecho.so" "$work/compare/echo.so"
    RUST_LOG="warn" "$COMPARE_BIN" serve --listen 127.0.0.1:18004 --data-dir "$work/data-compare" \
        --cache-dir "$work/cache-compare" --functions-dir "$work/compare" > "$work/fnhost-compare.log" 2>&1 &
    pid[compare]=$!
    runs+=(compare)
fi
"$out/examples/http_baseline" 127.0.0.1:18001 > "$work/baseline.log" 2>&1 &
pid[base]=$!; pid[base-fg]=$!
declare -A url=(
    [base]=http://127.0.0.1:18001/x
    [base-fg]=http://127.0.0.1:18001/fg/x
    [in-process]=http://127.0.0.1:18000/v2/bench/fgs/functions/echo/invocations
    [lane]=http://127.0.0.1:18003/v2/bench/fgs/functions/echo/invocations
    [inline]=http://127.0.0.1:18002/v2/bench/fgs/functions/echo/invocations
    [compare]=http://127.0.0.1:18004/v2/bench/fgs/functions/echo/invocations
)
for _ in $(seq 100); do
    ready=1
    for r in "${runs[@]}"; do curl -sf -XPOST --data x "${url[$r]}" >/dev/null 2>&1 || ready=0; done
    [ $ready = 1 ] && break
    sleep 0.1
done

wrk_run() { wrk -t2 -c32 -d"$2" --latency -s "$work/post.lua" "$1"; }
reqs() { awk '/Requests\/sec/ {print $2}' "$1"; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v); print v } else { sub(/s/, "", v); print v * 1000 } }'; }
p99() { to_ms "$(awk '$1 == "99%" {print $2}' "$1")"; }
# Server CPU (user + system) per request, in µs: less noisy than requests/s
# when the machine's speed drifts, and free of the client's share.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
cpu() { cat "${1%.txt}.cpu"; }
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

echo "== $rounds interleaved rounds of ${duration}s per server (wrk -t2 -c32, 1 KiB POST)"
for round in $(seq "$rounds"); do
    for r in "${runs[@]}"; do
        before=$(ticks "${pid[$r]}")
        wrk_run "${url[$r]}" "${duration}s" > "$work/$r.$round.txt"
        after=$(ticks "${pid[$r]}")
        awk -v t=$((after - before)) -v hz="$hz" '/requests in/ {printf "%.2f\n", t * 1e6 / hz / $1}' \
            "$work/$r.$round.txt" > "$work/$r.$round.cpu"
        printf '%-10s round %s: %8s req/s, p99 %s ms, server CPU %s us/request\n' "$r" "$round" \
            "$(reqs "$work/$r.$round.txt")" "$(p99 "$work/$r.$round.txt")" "$(cpu "$work/$r.$round.txt")"
    done
done

# ratio KIND RUN BASE: median over rounds of RUN's value / BASE's value.
ratio() {
    for round in $(seq "$rounds"); do
        awk -v a="$($1 "$work/$2.$round.txt")" -v b="$($1 "$work/$3.$round.txt")" 'BEGIN {print a / b}'
    done | median
}
med() { for round in $(seq "$rounds"); do $1 "$work/$2.$round.txt"; done | median; }

for mode in in-process inline; do
    echo "== hot swap under load ($mode): 20 code updates during a 20 s run"
    (
        sleep 2
        for i in $(seq 20); do
            cp "$out/libecho.so" "$work/$mode/.echo.so.tmp"
            printf '%08d' "$i" >> "$work/$mode/.echo.so.tmp"   # a distinct build each time
            mv "$work/$mode/.echo.so.tmp" "$work/$mode/echo.so"
            sleep 0.8
        done
    ) &
    swapper=$!
    wrk_run "${url[$mode]}" 20s > "$work/swap-$mode.txt"
    wait $swapper
    grep -E "Requests/sec|Non-2xx|Socket errors" "$work/swap-$mode.txt" || true
done

echo "== I/O-thread lane of the --io-lane server (handler calls on the lane vs in all):"
curl -s http://127.0.0.1:18003/metrics | grep -E '^fnhost_(io_lane_[a-z_]+|invocations_total)' || true

echo
echo "| run (wrk -t2 -c32, 1 KiB POST, median of $rounds × ${duration}s) | requests/s | p99 | server CPU/request | req/s vs bare | req/s vs same headers | p99 vs bare |"
echo "|---|---|---|---|---|---|---|"
row() {
    printf '| %s | %.0f | %.2f ms | %.2f us | %.2fx | %.2fx | %.2fx |\n' "$1" "$(med reqs "$2")" \
        "$(med p99 "$2")" "$(med cpu "$2")" \
        "$(ratio reqs "$2" base)" "$(ratio reqs "$2" base-fg)" "$(ratio p99 "$2" base)"
}
row "minimal axum/hyper server, body only (baseline)" base
row "minimal server, same body and FunctionGraph headers" base-fg
row "fnhost serve, sync invoke of echo, in-process (default: worker threads)" in-process
row "fnhost serve, sync invoke of echo, in-process, I/O-thread lane (--io-lane)" lane
row "fnhost serve, sync invoke of echo, inline" inline
if [ -n "${COMPARE_BIN:-}" ]; then
    row "$COMPARE_BIN (COMPARE_BIN), in-process, default mode" compare
    echo "this build / COMPARE_BIN, default mode, req/s: $(ratio reqs in-process compare)x; server CPU/request: $(ratio cpu in-process compare)x (medians of per-round ratios)"
fi
echo
for mode in in-process inline; do
    f="$work/swap-$mode.txt"
    non2xx=$(awk '/Non-2xx/ {print $5}' "$f"); non2xx=${non2xx:-0}
    sockerr=$(awk '/Socket errors/ {print $0}' "$f"); sockerr=${sockerr:-none}
    deploys=$(grep -c "deployed echo" "$work/fnhost-$mode.log" || true)
    echo "hot swap under load ($mode): $(reqs "$f") requests/s, non-2xx: $non2xx, socket errors: $sockerr, deploys logged: $deploys"
done
