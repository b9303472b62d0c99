#!/usr/bin/env bash
# A/B of two fnhost builds over HTTP: `scripts/bench-http-ab.sh OLD_FNHOST [NEW_FNHOST]`
# (NEW defaults to this checkout's release build). Both serve `echo` in the
# default mode beside the same-bytes baseline (host/server/examples/http_baseline.rs);
# wrk -t2 -c32 with a 1 KiB POST runs against each in interleaved rounds
# (the order alternates per round), and the medians of per-round ratios are
# printed with their spread (requests per second, server CPU per request,
# p99 latency). ROUNDS (default 10) and DURATION (seconds, 4).
# Loopback only, bounded. Used to check that a change costs the HTTP path
# nothing measurable (e.g. the front door's checks: see docs/src/performance/http.md).
# OLD_ECHO: the echo plugin the old build serves (default: this checkout's,
# which an old build of another ABI minor refuses: build echo in the old
# checkout then). NEW_ARGS: extra `fnhost serve` flags for the new build only; with
# OTLP_SINK=1 a collector that takes and drops OTLP/HTTP posts runs on
# 127.0.0.1:19003 (e.g. NEW_ARGS="--otlp-endpoint http://127.0.0.1:19003").
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    echo "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk
fi
# Two commands: a target selection (--example) would leave the binary out.
cargo build --release --locked -p fnhost-cli
cargo build --release --locked -p fnhost-server --example http_baseline
cargo build --release --locked -p echo
old=$(realpath "$1") new=$(realpath "${2:-target/release/fnhost}")
rounds=${ROUNDS:-10} dur=${DURATION:-4}
out=$PWD/target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
cat > "$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA
declare -A pid url
if [ "${OTLP_SINK:-0}" = 1 ]; then
  python3 -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"])); self.send_response(200)
        self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 19003), H).serve_forever()' &
fi
start() { mkdir -p "$work/$1"; cp "$out/libecho.so" "$work/$1/echo.so";
  [ "$1" = old ] && [ -n "${OLD_ECHO:-}" ] && cp "$OLD_ECHO" "$work/$1/echo.so";
  local extra=(); [ "$1" = new ] && extra=(${NEW_ARGS:-})
  RUST_LOG=warn "$2" serve --listen 127.0.0.1:$3 --data-dir "$work/d-$1" --cache-dir "$work/c-$1" --functions-dir "$work/$1" "${extra[@]}" > "$work/$1.log" 2>&1 &
  pid[$1]=$!; url[$1]=http://127.0.0.1:$3/v2/bench/fgs/functions/echo/invocations; }
start new "$new" 19000
start old "$old" 19001
"$out/examples/http_baseline" 127.0.0.1:19002 > /dev/null 2>&1 & pid[fg]=$!; url[fg]=http://127.0.0.1:19002/fg/x
for _ in $(seq 100); do ok=1; for r in new old fg; do curl -sf -XPOST --data x "${url[$r]}" >/dev/null 2>&1 || ok=0; done; [ $ok = 1 ] && break; sleep 0.1; done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for round in $(seq $rounds); do
  order="new old fg"; [ $((round % 2)) = 0 ] && order="old new fg"
  for r in $order; do
    b=$(ticks ${pid[$r]}); wrk -t2 -c32 -d${dur}s --latency -s "$work/post.lua" "${url[$r]}" > "$work/$r.$round"; a=$(ticks ${pid[$r]})
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/$r.$round"); n=$(awk '/requests in/ {print $1}' "$work/$r.$round")
    cpu=$(awk -v t=$((a-b)) -v hz=$hz -v n=$n 'BEGIN{printf "%.2f", t*1e6/hz/n}')
    # wrk's 99th percentile latency, in microseconds.
    p99=$(awk '$1 == "99%" { v = $2; u = 1; if (v ~ /us$/) u = 1; else if (v ~ /ms$/) u = 1000; else if (v ~ /s$/) u = 1000000;
                             gsub(/[a-z]+$/, "", v); printf "%.1f", v * u }' "$work/$r.$round")
    echo "$round $r $rps $cpu $p99" | tee -a "$work/all"
  done
done
python3 - "$work/all" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
d = {}
for rnd, r, rps, cpu, p99 in rows: d.setdefault(int(rnd), {})[r] = (float(rps), float(cpu), float(p99))
rr = [d[k]["new"][0] / d[k]["old"][0] for k in d]
cr = [d[k]["new"][1] / d[k]["old"][1] for k in d]
pr = [d[k]["new"][2] / d[k]["old"][2] for k in d]
nf = [d[k]["new"][0] / d[k]["fg"][0] for k in d]
of = [d[k]["old"][0] / d[k]["fg"][0] for k in d]
q = lambda v: f"median {statistics.median(v):.3f}x (min {min(v):.3f}, max {max(v):.3f})"
print("new/old req/s:", q(rr)); print("new/old server CPU per request:", q(cr)); print("new/old p99 latency:", q(pr))
print("new vs same-bytes baseline req/s:", q(nf)); print("old vs same-bytes baseline req/s:", q(of))
PY
