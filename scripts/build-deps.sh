#!/usr/bin/env bash
# What building the workspace needs beyond the Rust toolchain and a C
# compiler: `make`, with which rdkafka builds librdkafka (the Kafka
# triggers' client) from its bundled source. Installed from the
# distribution's packages when missing.
set -euo pipefail
if ! command -v make >/dev/null; then
  echo "== installing make (librdkafka, the Kafka triggers' client, is built from source with it)" >&2
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get install -y make >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y make >/dev/null; }
fi
