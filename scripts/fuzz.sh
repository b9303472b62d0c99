#!/usr/bin/env bash
# Coverage-guided fuzzing of fnhost's parsers of hostile input, with
# cargo-fuzz (libFuzzer):
#   scripts/fuzz.sh TARGET SECONDS     one target
#   scripts/fuzz.sh all SECONDS        every target in turn (CI-sized: 30)
# Targets: elf worker_frame zip signature urn schedule event.
# Uses the nightly toolchain when one is installed, else the stable one with
# RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Z flags). Installs cargo-fuzz when it
# is missing. A crash leaves its input in fuzz/artifacts/TARGET/ and fails
# the run; turn it into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:?usage: scripts/fuzz.sh TARGET|all SECONDS}
seconds=${2:-30}
targets=(elf worker_frame zip signature urn schedule event)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
else
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

run() {
    local t=$1
    mkdir -p "fuzz/corpus/$t"
    if [ -d "fuzz/seeds/$t" ]; then cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true; fi
    echo "== fuzz $t for ${seconds}s"
    (cd fuzz && "${fuzz[@]}" run "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
        -print_final_stats=1 2>&1 | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)" || true)
    if compgen -G "fuzz/artifacts/$t/crash-*" >/dev/null || compgen -G "fuzz/artifacts/$t/oom-*" >/dev/null || compgen -G "fuzz/artifacts/$t/timeout-*" >/dev/null; then
        echo "fuzz $t: found a failing input in fuzz/artifacts/$t/" >&2
        return 1
    fi
}

if [ "$target" = all ]; then
    for t in "${targets[@]}"; do run "$t"; done
else
    run "$target"
fi
