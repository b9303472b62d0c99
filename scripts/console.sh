#!/usr/bin/env bash
# The web console's TypeScript and its browser tests.
#
#   scripts/console.sh build   compile host/server/console/src into dist/ (what
#                              the server embeds; commit the result)
#   scripts/console.sh check   compile into a scratch directory and fail when
#                              dist/ is not exactly that (CI: the embedded
#                              assets are the sources' build)
#   scripts/console.sh test    the end-to-end tests in a real browser: installs
#                              Debian's chromium and playwright-core (npm) when
#                              missing; needs target/debug (cargo build)
set -euo pipefail
cd "$(dirname "$0")/.."
console=host/server/console

command -v npm >/dev/null || { echo "error: Node.js with npm is needed for the console (its TypeScript and browser tests)" >&2; exit 1; }

compiler() {
    # typescript, pinned in package-lock.json, from the npm registry.
    (cd "$console" && { [ -x node_modules/.bin/tsc ] || npm ci --no-audit --no-fund --silent; })
}

case "${1:-}" in
build)
    compiler
    (cd "$console" && node_modules/.bin/tsc -p tsconfig.json)
    ;;
check)
    compiler
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    (cd "$console" && node_modules/.bin/tsc -p tsconfig.json --outDir "$scratch")
    if ! diff -r "$scratch" "$console/dist" >/dev/null; then
        diff -r "$scratch" "$console/dist" | head -20 >&2 || true
        echo "error: $console/dist is not the build of $console/src: run scripts/console.sh build and commit dist/" >&2
        exit 1
    fi
    echo "console: dist/ is the build of src/ ($(ls "$console/dist" | wc -l) modules)"
    ;;
test)
    chromium=${CHROMIUM:-/usr/bin/chromium}
    if [ ! -x "$chromium" ]; then
        echo "== installing Debian's chromium (for the console's browser tests)" >&2
        sudo=$([ "$(id -u)" = 0 ] || echo sudo)
        $sudo apt-get install -y chromium >/dev/null 2>&1 ||
            { $sudo apt-get update >/dev/null && $sudo apt-get install -y chromium >/dev/null; }
    fi
    (cd tests/console && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent; })
    rm -rf target/console-screenshots
    (cd tests/console && CHROMIUM="$chromium" node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout)
    echo "console: screenshots in target/console-screenshots/"
    ;;
*)
    echo "usage: $0 build|check|test" >&2
    exit 2
    ;;
esac
