#!/usr/bin/env bash
# Durable asynchronous acceptance on loopback, bounded in time (about 4
# minutes with the defaults), on SQLite and on PostgreSQL:
#  1. fnhost accepting: CONNECTIONS clients POST a 1 KiB body to `echo`'s
#     invocations-async back to back for DURATION seconds; accepted per
#     second and the accept latency p50/p99 (each 202 is sent once its row
#     is durable), and how many ran meanwhile and how fast the rest ran after;
#  2. the floor of the same store, in the same rounds: a loop of single-row
#     durable inserts of the same shape and size (one transaction and one
#     sync each), and the same with batches of 64 rows a transaction;
#  3. the kill -9 check: a server accepting under the same load is killed
#     with SIGKILL halfway; restarted on the same state, it must run every
#     invocation it acknowledged (each listed SUCCESS), or the script fails.
# Rounds are interleaved (fnhost, floor, batch floor, per store) because the
# machine's speed drifts; ratios are medians of per-round ratios, with their
# spread. The asynchronous queue's capacity is raised for the benchmark
# (asynchronous.queue_capacity), so that what it measures is acceptance,
# not the 429 of a full queue; its workers stay at the default.
# Needs PostgreSQL (scripts/postgres.sh provides one). ROUNDS (default 5),
# DURATION (seconds per run, default 4), CONNECTIONS (default 32),
# STORES (default "sqlite postgres").
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p fnhost-cli -p echo
cargo build --release --locked -p fnhost-server --example async_load
admin=$(./scripts/postgres.sh)
export ADMIN=$admin ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-4} CONNECTIONS=${CONNECTIONS:-32}
export STORES=${STORES:-sqlite postgres}
exec python3 - <<'PY'
import base64, io, json, os, shutil, signal, socket, statistics, subprocess, tempfile, threading, time
import urllib.request, uuid, zipfile

ROOT = os.getcwd()
OUT = f"{ROOT}/target/release"
LOAD = f"{OUT}/examples/async_load"
ADMIN = os.environ["ADMIN"]
ROUNDS, DURATION, CONNECTIONS = int(os.environ["ROUNDS"]), float(os.environ["DURATION"]), int(os.environ["CONNECTIONS"])
STORES = os.environ["STORES"].split()
work = tempfile.mkdtemp()
procs = []

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def admin_sql(sql):
    # Through the load tool's client would need a mode; psql is there
    # wherever scripts/postgres.sh found or started a server.
    subprocess.run(["psql", ADMIN, "-qc", sql], check=True, capture_output=True)

def fresh_database():
    name = "fnhost_bench_async_" + uuid.uuid4().hex[:12]
    admin_sql(f"CREATE DATABASE {name}")
    return name, ADMIN.rsplit("/", 1)[0] + "/" + name

def drop_database(name):
    admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

def start(store, data, port=None):
    port = port or free_port()
    with open(f"{data}.json", "w") as f:
        json.dump({"asynchronous": {"queue_capacity": 1_000_000}}, f)
    flags = ["--config", f"{data}.json", "--listen", f"127.0.0.1:{port}",
             "--data-dir", f"{data}/data", "--cache-dir", f"{data}/cache"]
    if store != "sqlite":
        flags += ["--database-url", store]
    log = open(f"{data}.log", "a")
    p = subprocess.Popen([f"{OUT}/fnhost", "serve", *flags], stdout=log, stderr=log,
                         env={**os.environ, "RUST_LOG": "warn"})
    procs.append(p)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(url + "/readyz", timeout=1).status == 200:
                return p, url, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("fnhost did not come up: " + open(f"{data}.log").read())

def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()

def deploy(url):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("echo.so", open(f"{OUT}/libecho.so", "rb").read())
    body = json.dumps({"func_name": "echo", "package": "default", "runtime": "Rust1.x",
                       "handler": "echo.Handler", "memory_size": 256, "timeout": 30,
                       "code_type": "zip", "func_code": {"file": base64.b64encode(buf.getvalue()).decode()}}).encode()
    req = urllib.request.Request(url + "/v2/bench/fgs/functions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()

def unfinished(url):
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    return int(next(l.split()[1] for l in text.splitlines()
                    if l.startswith("fnhost_async_invocations_unfinished ")))

def accept(url, ids, seconds=DURATION):
    r = subprocess.run([LOAD, "accept", url + "/v2/bench/fgs/functions/echo/invocations-async",
                        str(CONNECTIONS), str(seconds), ids], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)

def floor(kind, target, batch):
    r = subprocess.run([LOAD, f"floor-{kind}", target, str(DURATION), str(batch)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)

def fnhost_round(store_url, data):
    p, url, _ = start(store_url, data)
    try:
        deploy(url)
        got = accept(url, f"{data}.ids")
        left = unfinished(url)
        got["ran_during"] = got["accepted"] - left
        t = time.monotonic()
        time.sleep(2)
        got["ran_after_per_second"] = (left - unfinished(url)) / (time.monotonic() - t)
        return got
    finally:
        stop(p)

def kill_check(store, store_url, data):
    """Every acknowledged invocation runs, after a kill -9 halfway."""
    p, url, port = start(store_url, data)
    deploy(url)
    killer = threading.Timer(DURATION / 2, lambda: os.kill(p.pid, signal.SIGKILL))
    killer.start()
    got = accept(url, f"{data}.ids")
    killer.join()
    p.wait()
    p, url, _ = start(store_url, data, port)
    try:
        deadline = time.monotonic() + 120
        while unfinished(url) > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        r = subprocess.run([LOAD, "verify", url, "echo", f"{data}.ids"], capture_output=True, text=True)
        verdict = json.loads(r.stdout) if r.stdout else {"error": r.stderr}
        print(f"kill -9 check ({store}): {got['accepted']} acknowledged before the kill, "
              f"{verdict.get('ran')} ran after the restart, {verdict.get('missing')} missing", flush=True)
        return r.returncode == 0
    finally:
        stop(p)

def med(xs):
    return statistics.median(xs)

def spread(xs):
    return f"{min(xs):.2f}-{max(xs):.2f}"

ok = True
try:
    for store in STORES:
        rows = []
        for i in range(ROUNDS):
            d = f"{work}/{store}-{i}"
            if store == "sqlite":
                fn = fnhost_round("sqlite", d)
                one = floor("sqlite", f"{d}-floor1.db", 1)
                many = floor("sqlite", f"{d}-floor64.db", 64)
            else:
                name, db = fresh_database()
                try:
                    fn = fnhost_round(db, d)
                    one = floor("postgres", db, 1)
                    many = floor("postgres", db, 64)
                finally:
                    drop_database(name)
            shutil.rmtree(d, ignore_errors=True)
            rows.append((fn, one, many))
            print(f"{store} round {i + 1}: fnhost {fn['per_second']:.0f}/s accepted "
                  f"(p50 {fn['p50_ms']:.2f} ms, p99 {fn['p99_ms']:.2f} ms, refused {fn['refused']}, "
                  f"errors {fn['errors']}; ran {fn['ran_during']} meanwhile, then "
                  f"{fn['ran_after_per_second']:.0f}/s); floor {one['per_second']:.0f}/s single rows, "
                  f"{many['per_second']:.0f}/s in batches of 64", flush=True)
        acc = [r[0]["per_second"] for r in rows]
        p50 = [r[0]["p50_ms"] for r in rows]
        p99 = [r[0]["p99_ms"] for r in rows]
        vs_one = [r[0]["per_second"] / r[1]["per_second"] for r in rows]
        vs_many = [r[0]["per_second"] / r[2]["per_second"] for r in rows]
        after = [r[0]["ran_after_per_second"] for r in rows]
        print(f"\n{store}: accepted per second, median {med(acc):.0f} ({min(acc):.0f}-{max(acc):.0f}); "
              f"accept latency p50 {med(p50):.2f} ms, p99 {med(p99):.2f} ms ({spread(p99)}); "
              f"x single-row floor {med(vs_one):.2f} ({spread(vs_one)}); "
              f"x batch-64 floor {med(vs_many):.2f} ({spread(vs_many)}); "
              f"queued ones ran after at {med(after):.0f}/s")
        goal = all(a >= 5000 for a in acc) and all(p < 20 for p in p99)
        some = sum(a >= 5000 and p < 20 for a, p in zip(acc, p99))
        print(f"{store}: goal (>= 5000/s, p99 < 20 ms) held in {some} of {ROUNDS} rounds"
              + (" (every round)" if goal else ""), flush=True)
    for store in STORES:
        d = f"{work}/{store}-kill"
        if store == "sqlite":
            ok &= kill_check(store, "sqlite", d)
        else:
            name, db = fresh_database()
            try:
                ok &= kill_check(store, db, d)
            finally:
                drop_database(name)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
raise SystemExit(0 if ok else 1)
PY
