#!/usr/bin/env bash
# The C API benchmark (host/embed/benches/capi.rs): echo with 1 KiB through
# the C API, the Rust API and a direct call, in interleaved rounds. Builds
# the sample plugin and the fnhost binary (worker executable) in release.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p echo
cargo build --release --locked -p fnhost-cli   # the fnhost binary the worker processes run
cargo bench --locked -p fnhost-embed --bench capi
