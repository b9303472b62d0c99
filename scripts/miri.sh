#!/usr/bin/env bash
# Runs the plugin API's unit tests and doc examples (TestContext, the ABI
# types, the export macro's helpers) under Miri, with Stacked Borrows and
# with Tree Borrows. Needs a nightly toolchain with the miri component
# (`rustup toolchain install nightly --component miri`); where there is
# none, says so and exits 0, so the stable-only test suite still passes.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: skipped (no nightly toolchain with the miri component here)"
    exit 0
fi
# The tests read the clock (deadlines): let them.
base="-Zmiri-disable-isolation"
for model in "stacked borrows:" "tree borrows:-Zmiri-tree-borrows"; do
    name=${model%%:*}
    flags=${model#*:}
    echo "== miri ($name): fnhost-api unit tests and doc examples"
    MIRIFLAGS="$base $flags" cargo +nightly miri test -q -p fnhost-api --lib
    MIRIFLAGS="$base $flags" cargo +nightly miri test -q -p fnhost-api --doc
done
