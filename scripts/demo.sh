#!/usr/bin/env bash
# The main job, on a fresh machine: build fnhost and the sample plugins
# (release), show the command line on them, then start `fnhost serve` with the
# samples deployed and invoke them with curl and with the official
# FunctionGraph SDK. The server is stopped at the end; pass --serve to keep it
# running in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${DEMO_PORT:-8000}

./scripts/build-deps.sh
cargo build --release --workspace --locked
out=target/release
cc -shared -fPIC -O2 -Wall -I plugin-api/include -o "$out/hello.so" sample-plugins/c/hello.c
fnhost="$out/fnhost"

run() {
    echo
    echo "\$ fnhost $*"
    "$fnhost" "$@" || echo "(exit status $?)"
}

echo "=== The command line"
run inspect "$out/libtestplugin.so"
run invoke testplugin.Handler --code-dir "$out" --init testplugin.Init \
    --data '{"key": "NAME"}' --user-data NAME=fnhost --memory 256
run invoke misbehaving.Panic --code-dir "$out" --data '{}'
run invoke misbehaving.Spin --code-dir "$out" --data '{}' --timeout 1 --json
echo
echo '$ fnhost event apig | fnhost invoke testplugin.ApigTest --code-dir target/release --json'
"$fnhost" event apig | "$fnhost" invoke testplugin.ApigTest --code-dir "$out" --json | cut -c1-300
run invoke hello.Handler --code-dir "$out" --init hello.Init --data '{}' --user-data NAME=C

echo
echo "=== fnhost serve, with the sample plugins deployed from a directory"
demo=target/demo
rm -rf "$demo" && mkdir -p "$demo/functions"
for p in echo testplugin; do cp "$out/lib$p.so" "$demo/functions/$p.so"; done
cp "$out/hello.so" "$demo/functions/hello.so"
"$fnhost" serve --listen "127.0.0.1:$port" --data-dir "$demo/data" --functions-dir "$demo/functions" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -sf -XPOST --data '{}' "http://127.0.0.1:$port/v2/demo/fgs/functions/testplugin/invocations" >/dev/null 2>&1 && break
    sleep 0.1
done

echo
echo "\$ curl -i -XPOST -H 'X-Cff-Log-Type: tail' --data '{\"key\": \"NAME\"}' http://127.0.0.1:$port/v2/demo/fgs/functions/urn:fss:local:demo:function:default:testplugin:latest/invocations"
curl -s -i -XPOST -H 'X-Cff-Log-Type: tail' --data '{"key": "NAME"}' \
    "http://127.0.0.1:$port/v2/demo/fgs/functions/urn:fss:local:demo:function:default:testplugin:latest/invocations"
echo
echo
echo "\$ curl -XPOST --data hello http://127.0.0.1:$port/apig/echo/any/path   (the APIG gateway: echo answers the APIG event it received)"
curl -s -XPOST --data 'hello' "http://127.0.0.1:$port/apig/echo/any/path"
echo

echo
echo "=== The official FunctionGraph SDK (huaweicloudsdkfunctiongraph, installed into target/sdk-venv)"
python=$(./scripts/sdk-venv.sh)
"$python" - "$port" <<'PY'
import json, sys
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkfunctiongraph.v2 import FunctionGraphClient, InvokeFunctionRequest, ListFunctionsRequest
client = (FunctionGraphClient.new_builder()
          .with_credentials(BasicCredentials("demo-ak", "demo-sk", "demo"))
          .with_endpoints([f"http://127.0.0.1:{sys.argv[1]}"]).build())
print("functions:", [f.func_name for f in client.list_functions(ListFunctionsRequest()).functions])
r = client.invoke_function(InvokeFunctionRequest(
    function_urn="urn:fss:local:demo:function:default:hello:latest",
    x_cff_log_type="tail", x_cff_request_version="v1", body={}))
print("invoke hello (a C plugin):", r.result)
print("log:", r.log.strip())
PY

echo
echo "=== The web console (embedded in the binary)"
echo "\$ curl -s http://127.0.0.1:$port/console/ | grep -o '<title>.*</title>'"
curl -sf "http://127.0.0.1:$port/console/" | grep -o '<title>.*</title>'
echo "open http://127.0.0.1:$port/console in a browser (with --serve)"

if [ "${1:-}" = "--serve" ]; then
    echo; echo "fnhost keeps serving on http://127.0.0.1:$port (Ctrl-C to stop); the console: http://127.0.0.1:$port/console"
    wait $server
fi
