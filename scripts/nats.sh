#!/usr/bin/env bash
# Prints the URL of a NATS server with JetStream the event-source tests may
# use: the one at 127.0.0.1:4222 when it answers with JetStream on,
# otherwise a private one (its store under /tmp, one per checkout, on
# 127.0.0.1:54222-54285) that this script starts, installing the
# distribution's nats-server package when it is missing. Tests create
# streams of their own (random names) and delete them.
#
#   scripts/nats.sh          start what is needed, print the URL
#   scripts/nats.sh stop     stop the private server, if it runs
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(printf %s "$PWD" | sha256sum | cut -c1-12)
port=$((54222 + 0x${tag:0:2} % 64))
dir=${TMPDIR:-/tmp}/fnhost-nats-$tag

jetstream() { # PORT: the server's INFO line says "jetstream":true
  python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.settimeout(2)
    info = s.recv(4096)
    sys.exit(0 if info.startswith(b"INFO ") and b'"jetstream":true' in info else 1)
except OSError:
    sys.exit(1)
PY
}

if [ "${1:-}" = stop ]; then
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -rf "$dir"
  exit 0
fi

if jetstream 4222; then
  echo "nats://127.0.0.1:4222"
  exit 0
fi
if ! jetstream "$port"; then
  if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
    echo "== installing nats-server (for the event-source tests)" >&2
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get install -y nats-server >/dev/null 2>&1 ||
      { $sudo apt-get update >/dev/null && $sudo apt-get install -y nats-server >/dev/null; }
  fi
  server=$(command -v nats-server || echo /usr/sbin/nats-server)
  mkdir -p "$dir"
  nohup "$server" -a 127.0.0.1 -p "$port" -js -sd "$dir/store" -P "$dir/pid" >"$dir/log" 2>&1 &
  for _ in $(seq 50); do jetstream "$port" && break; sleep 0.1; done
  jetstream "$port" || { echo "error: the private nats-server did not answer on port $port" >&2; exit 1; }
fi
echo "nats://127.0.0.1:$port"
