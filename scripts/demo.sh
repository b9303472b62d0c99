#!/usr/bin/env bash
# Builds fnhost and the sample plugins (release), compiles the C plugin, and
# invokes each sample the way a user would, showing the three-part output.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace --locked
out=target/release
cc -shared -fPIC -O2 -Wall -I plugin-api/include -o "$out/hello.so" sample-plugins/c/hello.c
fnhost="$out/fnhost"

run() {
    echo
    echo "\$ fnhost $*"
    "$fnhost" "$@" || echo "(exit status $?)"
}

run inspect "$out/libtestplugin.so"
run invoke echo.Handler --code-dir "$out" --data '{"hello": "fnhost"}'
run invoke testplugin.Handler --code-dir "$out" --init testplugin.Init \
    --data '{"key": "NAME"}' --user-data NAME=fnhost --memory 256
run invoke misbehaving.Panic --code-dir "$out" --data '{}'
run invoke misbehaving.Spin --code-dir "$out" --data '{}' --timeout 1 --json
run invoke misbehaving.Alloc64 --code-dir "$out" --data '{}' --json
echo
echo '$ fnhost event apig | fnhost invoke testplugin.ApigTest --code-dir target/release'
"$fnhost" event apig | "$fnhost" invoke testplugin.ApigTest --code-dir "$out"
run invoke hello.Handler --code-dir "$out" --init hello.Init --data '{}' --user-data NAME=C
