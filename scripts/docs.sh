#!/usr/bin/env bash
# The book (docs/): checks the command-line reference against the fnhost
# binary's --help, builds the book with mdBook into docs/book/ (not committed),
# and checks every internal link and anchor of the book and of the README.
#
#   ./scripts/docs.sh            what scripts/test.sh runs
#   mdbook serve docs            read it while editing (an mdbook built with its
#                                default features; http://localhost:3000)
#
# Needs the fnhost binary ($FNHOST_BIN, else target/debug/fnhost: build it
# first), python3, and mdBook $MDBOOK_VERSION, installed from crates.io with
# cargo when no mdbook of that version is on the PATH (into target/tools, once).
set -euo pipefail
cd "$(dirname "$0")/.."

MDBOOK_VERSION=0.5.4

command -v python3 >/dev/null || { echo "error: python3 is needed to check the book" >&2; exit 1; }
bin=${FNHOST_BIN:-target/debug/fnhost}
if [[ ! -x "$bin" ]]; then
    echo "error: no fnhost binary at $bin: build it first (cargo build -p fnhost-cli), or set FNHOST_BIN" >&2
    exit 1
fi

echo "== the command-line reference against \`fnhost --help\` (scripts/cli-reference.py)"
FNHOST_BIN=$bin python3 scripts/cli-reference.py

mdbook=mdbook
if [[ "$(mdbook --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]]; then
    mdbook=target/tools/bin/mdbook
    if [[ "$("$mdbook" --version 2>/dev/null)" != "mdbook v$MDBOOK_VERSION" ]]; then
        echo "== installing mdBook $MDBOOK_VERSION from crates.io (cargo install, into target/tools)"
        # Only the HTML renderer and its search: no `mdbook serve`/`watch` (an
        # HTTP server and a file watcher this script does not use).
        cargo install --locked --version "$MDBOOK_VERSION" --root target/tools \
            --no-default-features --features search mdbook
    fi
fi

echo "== the book: $mdbook build docs"
rm -rf docs/book
"$mdbook" build docs

echo "== links and anchors of the book and the README (scripts/check-links.py)"
python3 scripts/check-links.py --html docs/book
