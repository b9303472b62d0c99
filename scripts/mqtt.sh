#!/usr/bin/env bash
# Prints the URL of an MQTT broker the event-source tests may use: the one
# at 127.0.0.1:1883 when it answers a CONNECT, otherwise a private Mosquitto
# (in memory, one per checkout, on 127.0.0.1:51883-51946) that this script
# starts, installing the distribution's mosquitto package when it is
# missing. Tests use topics of their own (random names).
#
#   scripts/mqtt.sh          start what is needed, print the URL
#   scripts/mqtt.sh stop     stop the private broker, if it runs
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(printf %s "$PWD" | sha256sum | cut -c1-12)
port=$((51883 + 0x${tag:0:2} % 64))
dir=${TMPDIR:-/tmp}/fnhost-mqtt-$tag

answers() { # PORT: CONNECT (MQTT 3.1.1, clean session) answered by CONNACK 0
  python3 - "$1" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.settimeout(2)
    client = b"fnhost-probe"
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(client).to_bytes(2, "big") + client
    s.sendall(b"\x10" + bytes([len(body)]) + body)
    sys.exit(0 if s.recv(4) == b"\x20\x02\x00\x00" else 1)
except OSError:
    sys.exit(1)
PY
}

if [ "${1:-}" = stop ]; then
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -rf "$dir"
  exit 0
fi

if answers 1883; then
  echo "mqtt://127.0.0.1:1883"
  exit 0
fi
if ! answers "$port"; then
  if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    echo "== installing mosquitto (for the event-source tests)" >&2
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get install -y mosquitto >/dev/null 2>&1 ||
      { $sudo apt-get update >/dev/null && $sudo apt-get install -y mosquitto >/dev/null; }
  fi
  server=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  mkdir -p "$dir"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\npid_file %s/pid\nmax_queued_messages 100000\n' \
    "$port" "$dir" >"$dir/mosquitto.conf"
  [ "$(id -u)" = 0 ] && printf 'user root\n' >>"$dir/mosquitto.conf"
  nohup "$server" -c "$dir/mosquitto.conf" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 50); do answers "$port" && break; sleep 0.1; done
  answers "$port" || { echo "error: the private mosquitto did not answer on port $port" >&2; exit 1; }
fi
echo "mqtt://127.0.0.1:$port"
