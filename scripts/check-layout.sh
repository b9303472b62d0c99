#!/usr/bin/env bash
# The architecture's two rules that the compiler does not check:
# 1. the runtime library (crate fnhost) stays lean: none of the server's or
#    the binary's dependencies among its normal dependencies, with every
#    feature on;
# 2. no module cycles inside any crate (scripts/module-cycles.py);
# 3. its public surface is documented and its docs link to nothing private
#    (missing_docs is on in the crate; rustdoc's warnings are errors here).
set -euo pipefail
cd "$(dirname "$0")/.."

heavy=(tokio hyper axum rusqlite zip clap anyhow env_logger mimalloc)
deps=$(cargo tree -p fnhost -e normal --all-features --prefix none --locked | awk '{print $1}' | sort -u)
bad=()
for crate in "${heavy[@]}"; do
    if grep -qx "$crate" <<<"$deps"; then
        bad+=("$crate")
    fi
done
if ((${#bad[@]})); then
    echo "error: crate fnhost depends on ${bad[*]} (its normal dependencies must exclude ${heavy[*]}):" >&2
    for crate in "${bad[@]}"; do
        cargo tree -p fnhost -e normal --all-features --locked -i "$crate" >&2 || true
    done
    exit 1
fi
echo "crate fnhost: $(wc -l <<<"$deps") crates in its normal dependency tree, none of: ${heavy[*]}"

python3 scripts/module-cycles.py host/core/src host/server/src host/cli/src host/embed/src \
    host/manifest/src host/author/src plugin-api/src

RUSTDOCFLAGS="-D warnings" cargo doc -q -p fnhost --no-deps --locked
echo "crate fnhost: the documentation builds without warnings"

# An embedder's lean build (`default-features = false`) builds without a
# warning (it once warned `read_library is never used`).
cargo clippy -q -p fnhost --no-default-features --lib --locked -- -D warnings
echo "crate fnhost: builds without its default features, without warnings"
