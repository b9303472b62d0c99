#!/usr/bin/env bash
# The attack suite: builds fnhost and the sample plugins (debug, as the tests
# do), starts `fnhost serve` on 127.0.0.1 and runs the hostile cases of
# tests/attack/attack.py against it (forged and replayed bodies, pre-auth
# floods, slow and idle connections, descriptor exhaustion, exposure,
# wrapping numbers, disconnects, zip bombs, package pile-up, kill -9 during
# uploads; library constructors that abort, segfault, exit or block; output
# floods without newlines, forged end-of-output markers, handlers that fork
# past their deadline, 64 MiB error messages, worker pile-ups past the cap;
# web pages of other origins and rebound DNS names against an unkeyed
# server, path tricks on the console's files; the sandbox's escape suite:
# isolated handlers and constructors that signal the server, read its keys,
# state and environment, connect to its port and to PostgreSQL, make
# forbidden system calls, fork-bomb, balloon and daemonize; event sources:
# broker settings that reach other hosts, a million-entry Redis burst,
# oversized and non-UTF-8 RabbitMQ and Kafka messages),
# then prints a table. Bounded: ATTACK_SECONDS (default 600) for
# the whole suite, and every case bounds its own requests and waits.
# Exits 1 if any attack failed, the server crashed, or anything was lost.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-deps.sh
cargo build --workspace --locked
python=$(./scripts/sdk-venv.sh)
# The brokers of the event-source cases: the machine's, else private ones.
FNHOST_TEST_REDIS=$(./scripts/redis.sh)
FNHOST_TEST_RABBITMQ=$(./scripts/rabbitmq.sh)
FNHOST_TEST_KAFKA=$(./scripts/kafka.sh)
export FNHOST_TEST_REDIS FNHOST_TEST_RABBITMQ FNHOST_TEST_KAFKA
cd tests/attack
trap 'cd ../..; ./scripts/redis.sh stop; ./scripts/rabbitmq.sh stop; ./scripts/kafka.sh stop' EXIT
timeout --signal=KILL $(( ${ATTACK_SECONDS:-600} + 120 )) "$python" attack.py
