#!/usr/bin/env bash
# Prints the AMQP URL of a RabbitMQ broker the event-source tests may use:
# the one at 127.0.0.1:5672 (guest/guest) when it answers, otherwise a
# private RabbitMQ node (one per checkout, on 127.0.0.1:45672-45735) that
# this script starts, installing the distribution's rabbitmq-server package
# when it is missing. Tests use queues and exchanges of their own (random
# names) and delete them.
#
#   scripts/rabbitmq.sh           start what is needed, print the URL
#   scripts/rabbitmq.sh private   the private node even when 5672 answers
#   scripts/rabbitmq.sh stop      stop the private node, if it runs
#   scripts/rabbitmq.sh ctl ARGS  rabbitmqctl on the private node (the
#                                 restart test's stop_app and start_app)
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(printf %s "$PWD" | sha256sum | cut -c1-12)
port=$((45672 + 0x${tag:0:2} % 64))
dir=${TMPDIR:-/tmp}/fnhost-rabbitmq-$tag
node="fnhost-$tag@localhost"

answers() { # PORT: the AMQP 0-9-1 header answered by a Connection.Start frame
  python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.settimeout(2)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    frame = s.recv(11)
    # A method frame (type 1) on channel 0 carrying connection.start (10, 10).
    sys.exit(0 if frame[:3] == b"\x01\x00\x00" and frame[7:11] == b"\x00\x0a\x00\x0a" else 1)
except OSError:
    sys.exit(1)
PY
}

# Debian's /usr/sbin wrappers switch to the rabbitmq user; the node runs as
# whoever runs the tests, with its own Erlang cookie (HOME) and files.
bin=/usr/lib/rabbitmq/bin
ctl() { HOME="$dir" "$bin/rabbitmqctl" -n "$node" "$@"; }

if [ "${1:-}" = ctl ]; then
  shift
  ctl "$@"
  exit
fi

if [ "${1:-}" = stop ]; then
  if [ -d "$dir" ]; then
    ctl stop >/dev/null 2>&1 || true
    rm -rf "$dir"
  fi
  exit 0
fi

if [ "${1:-}" != private ] && answers 5672; then
  echo "amqp://guest:guest@127.0.0.1:5672/%2f"
  exit 0
fi
if ! answers "$port"; then
  if [ ! -x "$bin/rabbitmq-server" ]; then
    echo "== installing rabbitmq-server (for the event-source tests)" >&2
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get install -y rabbitmq-server >/dev/null 2>&1 ||
      { $sudo apt-get update >/dev/null && $sudo apt-get install -y rabbitmq-server >/dev/null; }
    # The package starts the system's node where it can; the tests use
    # their own, so it does not matter whether it did.
  fi
  mkdir -p "$dir/mnesia" "$dir/log"
  printf '[].\n' >"$dir/enabled_plugins"
  HOME="$dir" RABBITMQ_NODENAME="$node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_DIST_PORT=$((port + 1000)) RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
    "$bin/rabbitmq-server" -detached >"$dir/start.log" 2>&1
  # Up to 2 minutes: a node starting beside a busy test suite on 2 cores has
  # taken over one.
  for _ in $(seq 600); do answers "$port" && break; sleep 0.2; done
  answers "$port" || { echo "error: the private RabbitMQ did not answer on port $port (see $dir/log)" >&2; exit 1; }
fi
echo "amqp://guest:guest@127.0.0.1:$port/%2f"
