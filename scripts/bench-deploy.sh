#!/usr/bin/env bash
# Deploy-to-serving benchmark (issue 35, item 2), on loopback, bounded (about
# a minute): a never-seen 20 MB library in a zip package (deflated, as
# `fnhost package` and `zip` write it), through `fnhost serve`'s API, from
# just before the create request (the body already encoded) to the first
# successful invocation's answer, against unzip-alone of the same package
# (the floor: Python's zipfile, which inflates with zlib, extracting it into
# a directory on the same file system as the server's data, unsynced, as
# `unzip` does), in interleaved rounds; the ratio per round, its median and
# spread. Goal: at most 1.3x. The server's code cache is where a server keeps
# it by default, on tmpfs (/dev/shm here), its data on the target's disk.
# ROUNDS (default 5), MB (the library's size, default 20), FNHOST (the fnhost
# binary to measure, default this checkout's release build: to compare two
# builds, alternate runs of each).
set -euo pipefail
cd "$(dirname "$0")/.."

[ -n "${FNHOST:-}" ] || cargo build --release --locked -p fnhost-cli
export FNHOST=${FNHOST:-$PWD/target/release/fnhost}
export ROUNDS=${ROUNDS:-5} MB=${MB:-20}
python3 - <<'PY'
import base64, io, json, os, shutil, statistics, subprocess, sys, tempfile, time, urllib.request, zipfile

sys.path.insert(0, "scripts")
from bench_server import serve  # noqa: E402

ROOT = os.getcwd()
OUT = f"{ROOT}/target/release"
ROUNDS, MB = int(os.environ["ROUNDS"]), int(os.environ["MB"])
# On the target's file system (disk), where a user's server keeps its data.
os.makedirs(f"{ROOT}/target/bench-deploy", exist_ok=True)
work = tempfile.mkdtemp(prefix="run-", dir=f"{ROOT}/target/bench-deploy")

base = f"{work}/base.so"
subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-I", f"{ROOT}/plugin-api/include", "-o", base,
                f"{ROOT}/host/core/benches/support/padded.c"], check=True)
base_bytes = open(base, "rb").read()


def library(n):
    """A never-seen build of MB megabytes: the small plugin, then data after
    its ELF image (never mapped as code), half random bytes and half zeros
    so that it deflates about as a real library does; unique per round."""
    size = MB * 1024 * 1024 - len(base_bytes)
    tail = bytearray(size)
    tail[::2] = os.urandom(len(tail[::2]))
    tail[:8] = n.to_bytes(8, "little")
    return base_bytes + bytes(tail)


def package(lib):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("padded.so", lib)
    return buf.getvalue()


# The code cache where `fnhost serve` keeps it by default: on tmpfs.
cache = tempfile.mkdtemp(prefix="fnhost-bench-deploy-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
server, URL = serve(os.environ["FNHOST"], work, rust_log=os.environ.get("BENCH_RUST_LOG", "warn"), cache_dir=f"{cache}/libs")


def call(method, path, data):
    req = urllib.request.Request(URL + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def unzip_alone(zipped, n):
    target = f"{work}/unzipped-{n}"
    started = time.perf_counter()
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        z.extractall(target)
    took = time.perf_counter() - started
    shutil.rmtree(target)
    return took


def deploy_to_serving(zipped, n):
    name = f"big{n}"
    body = json.dumps({"func_name": name, "package": "default", "runtime": "Custom", "handler": "padded.Handler",
                       "memory_size": 128, "timeout": 30, "code_type": "zip",
                       "func_code": {"file": base64.b64encode(zipped).decode()}}).encode()
    started = time.perf_counter()
    status, answer = call("POST", "/v2/local/fgs/functions", body)
    assert status == 200, answer[:300]
    status, answer = call("POST", f"/v2/local/fgs/functions/{name}/invocations", b'{"k":"v"}')
    took = time.perf_counter() - started
    assert status == 200, answer[:300]
    return took


try:
    rows = []
    for n in range(ROUNDS):
        zipped = package(library(n))
        floor = unzip_alone(zipped, n)
        fnhost = deploy_to_serving(zipped, n)
        rows.append((floor, fnhost, fnhost / floor))
        print(f"round {n + 1}: unzip-alone {floor * 1000:.1f} ms, deploy-to-serving {fnhost * 1000:.1f} ms, "
              f"ratio {fnhost / floor:.2f}", flush=True)
    ratios = [r[2] for r in rows]
    print()
    print(f"Deploy-to-serving of a never-seen {MB} MB library ({len(zipped) / 1e6:.1f} MB zipped), "
          f"{ROUNDS} interleaved rounds:")
    print()
    print("| unzip-alone (median) | deploy-to-serving (median) | ratio median | spread | goal |")
    print("|---|---|---|---|---|")
    print(f"| {statistics.median(r[0] for r in rows) * 1000:.1f} ms | {statistics.median(r[1] for r in rows) * 1000:.1f} ms | "
          f"{statistics.median(ratios):.2f}x | {min(ratios):.2f}-{max(ratios):.2f} | 1.3x |")
finally:
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(cache, ignore_errors=True)
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("kept", work)
PY
