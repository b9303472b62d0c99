#!/usr/bin/env bash
# The architecture's two rules that the compiler does not check:
# 1. the runtime library (crate fnhost) stays lean: its normal dependency
#    tree, with every feature on, holds only the crates of an allowlist
#    (scripts/lean-core-dependencies.txt);
# 2. no module cycles inside any crate (scripts/module-cycles.py);
# 3. its public surface is documented and its docs link to nothing private
#    (missing_docs is on in the crate; rustdoc's warnings are errors here).
set -euo pipefail
cd "$(dirname "$0")/.."

# An allowlist, not a denylist: a new crate anywhere in the tree (a
# dependency's new dependency included) fails until it is added on purpose.
allowed=$(grep -v '^#' scripts/lean-core-dependencies.txt | sort -u)
deps=$(cargo tree -p fnhost -e normal --all-features --prefix none --locked | awk '{print $1}' | sort -u)
extra=$(comm -23 <(echo "$deps") <(echo "$allowed"))
if [[ -n "$extra" ]]; then
    echo "error: crate fnhost's normal dependency tree has crates outside scripts/lean-core-dependencies.txt:" >&2
    for crate in $extra; do
        echo "  $crate, through:" >&2
        cargo tree -p fnhost -e normal --all-features --locked -i "$crate" >&2 || true
    done
    exit 1
fi
echo "crate fnhost: $(wc -l <<<"$deps") crates in its normal dependency tree, all on the allowlist"

python3 scripts/module-cycles.py host/core/src host/server/src host/cli/src host/embed/src \
    host/manifest/src host/author/src host/signing/src plugin-api/src

RUSTDOCFLAGS="-D warnings" cargo doc -q -p fnhost --no-deps --locked
echo "crate fnhost: the documentation builds without warnings"

# An embedder's lean build (`default-features = false`) builds without a
# warning (it once warned `read_library is never used`).
cargo clippy -q -p fnhost --no-default-features --lib --locked -- -D warnings
echo "crate fnhost: builds without its default features, without warnings"
