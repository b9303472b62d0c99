#!/usr/bin/env bash
# Prints the URL of a Redis server the event-source tests may use: the one
# at 127.0.0.1:6379 when it answers PING, otherwise a private one (no
# persistence, one per checkout, on 127.0.0.1:56379-56442) that this script
# starts, installing the distribution's redis-server package when it is
# missing. Tests use keys of their own (random stream names).
#
#   scripts/redis.sh          start what is needed, print the URL
#   scripts/redis.sh stop     stop the private server, if it runs
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(printf %s "$PWD" | sha256sum | cut -c1-12)
port=$((56379 + 0x${tag:0:2} % 64))
pidfile=${TMPDIR:-/tmp}/fnhost-redis-$tag.pid

answers() { # PORT
  python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.settimeout(2)
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(7).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

if [ "${1:-}" = stop ]; then
  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
  exit 0
fi

if answers 6379; then
  echo "redis://127.0.0.1:6379"
  exit 0
fi
if ! answers "$port"; then
  if ! command -v redis-server >/dev/null; then
    echo "== installing redis-server (for the event-source tests)" >&2
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get install -y redis-server >/dev/null 2>&1 ||
      { $sudo apt-get update >/dev/null && $sudo apt-get install -y redis-server >/dev/null; }
  fi
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --daemonize yes --pidfile "$pidfile" --logfile /dev/null >/dev/null
  for _ in $(seq 50); do answers "$port" && break; sleep 0.1; done
  answers "$port" || { echo "error: the private redis-server did not answer on port $port" >&2; exit 1; }
fi
echo "redis://127.0.0.1:$port"
