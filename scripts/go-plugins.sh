#!/usr/bin/env bash
# Builds the Go plugins the tests and benchmarks load, into target/go-plugins:
#   NAME.so              each sample-plugins/go/NAME (go build -buildmode=c-shared)
#   seed/HANDLER/testplugin.so
#                        the seed's test.go built the way the seed says (its
#                        go.mod, `replace huaweicloud.com/go-runtime =>
#                        ./go-runtime`), once per handler: the seed registers
#                        one handler and says to edit main() for another
#   build2/misbehaving.so
#                        a second build of misbehaving (its "build" case
#                        answers 2), for the hot-swap tests
#   plugin/echo.so       the Go echo as a Go plugin (-buildmode=plugin), the
#                        seed's original mechanism, and plugin/host, which
#                        loads and calls it with Go's plugin package: the
#                        baseline of the Go benchmark
# Installs Go from the distribution's packages when `go` is missing. Checks the
# SDK module first: gofmt, go vet, go test. Uses only Go's standard library:
# no module proxy is needed (GOFLAGS=-mod=mod, GOPROXY=off).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v go >/dev/null; then
    echo "== installing Go (golang-go) from the distribution's packages" >&2
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y golang-go >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y golang-go >/dev/null; }
fi
export GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=1 GOTOOLCHAIN=local
out="$root/target/go-plugins"
mkdir -p "$out/seed" "$out/plugin"

# One build into a temporary name, renamed into place: tests that run this
# at the same time never see half a library.
build() { # DIR OUTPUT [go build flags...]
    local dir=$1 output=$2; shift 2
    local tmp; tmp="$output.tmp.$$"
    (cd "$dir" && go build "$@" -o "$tmp" .) && mv -f "$tmp" "$output"
}

cmp -s plugin-api/include/fnhost.h plugin-api/go-runtime/pkg/runtime/fnhost.h ||
    { echo "plugin-api/go-runtime/pkg/runtime/fnhost.h differs from plugin-api/include/fnhost.h: copy it" >&2; exit 1; }
(cd plugin-api/go-runtime
 unformatted=$(gofmt -l .)
 [ -z "$unformatted" ] || { echo "gofmt: $unformatted" >&2; exit 1; }
 go vet ./... && go test -count=1 ./... >/dev/null)

for dir in sample-plugins/go/*/; do
    name=$(basename "$dir")
    case $name in testplugin | plugin-*) continue ;; esac
    build "$dir" "$out/$name.so" -buildmode=c-shared
done

# A second build of misbehaving that answers "build" with 2: the hot swap.
mkdir -p "$out/build2"
build sample-plugins/go/misbehaving "$out/build2/misbehaving.so" -buildmode=c-shared \
    -ldflags=-X=main.BUILD=2

# The seed's program, in a directory laid out as the seed describes.
seed=$(mktemp -d); trap 'rm -rf "$seed"' EXIT
cp -r plugin-api/go-runtime "$seed/go-runtime"
cp sample-plugins/go/testplugin/go.mod "$seed/go.mod"
sed -i 's#=> .*go-runtime#=> ./go-runtime#' "$seed/go.mod"
for handler in ApigTest CtsTest DdsTest DisTest KafkaTest LtsTest SmnTest TimerTest; do
    sed "s/runtime.Register(ApigTest)/runtime.Register($handler)/" \
        sample-plugins/go/testplugin/test.go > "$seed/test.go"
    mkdir -p "$out/seed/$handler"
    build "$seed" "$out/seed/$handler/testplugin.so" -buildmode=c-shared
done

build sample-plugins/go/plugin-echo "$out/plugin/echo.so" -buildmode=plugin
build sample-plugins/go/plugin-host "$out/plugin/host"
echo "$out"
