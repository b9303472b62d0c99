#!/usr/bin/env bash
# Cluster benchmarks on loopback, bounded in time (about 2 minutes):
#  1. synchronous invocations per second of `echo` (1 KiB) on one node whose
#     state is in PostgreSQL against the same node on SQLite, under wrk, in
#     interleaved rounds (the database is not on the invocation path: the
#     ratio should be 1);
#  2. create-to-serving-everywhere across three nodes: a function created
#     through node 1, polled on nodes 2 and 3 until they answer;
#  3. asynchronous enqueue-to-start latency and throughput through
#     PostgreSQL: N invocations accepted by three nodes, the time from the
#     first 202 to the last SUCCESS, and the median accept-to-start gap.
# Needs PostgreSQL (scripts/postgres.sh provides one) and wrk (installed
# from the distribution when missing). ROUNDS (default 5), DURATION
# (seconds per wrk run, default 5), ASYNC (invocations, default 500).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -p fnhost-cli -p echo -p misbehaving
admin=$(./scripts/postgres.sh)
export ADMIN=$admin ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-5} ASYNC=${ASYNC:-500}
exec python3 - <<'PY'
import base64, io, json, os, signal, socket, statistics, subprocess, tempfile, time, urllib.request, uuid, zipfile
from datetime import datetime

ROOT = os.getcwd()
OUT = f"{ROOT}/target/release"
ADMIN = os.environ["ADMIN"]
ROUNDS, DURATION, ASYNC = int(os.environ["ROUNDS"]), int(os.environ["DURATION"]), int(os.environ["ASYNC"])
work = tempfile.mkdtemp()
procs = []

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def psql(url, sql):
    subprocess.run(["psql", url, "-qc", sql], check=True, capture_output=True)

def start(name, *flags):
    port = free_port()
    log = open(f"{work}/{name}.log", "w")
    p = subprocess.Popen([f"{OUT}/fnhost", "serve", "--listen", f"127.0.0.1:{port}",
                          "--data-dir", f"{work}/{name}/data", "--cache-dir", f"{work}/{name}/cache", *flags],
                         stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
    procs.append(p)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(url + "/readyz", timeout=1).status == 200:
                return url
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} did not come up: " + open(f"{work}/{name}.log").read())

def call(url, method, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()

def zip_of(lib, name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{name}.so", open(f"{OUT}/{lib}", "rb").read())
    return base64.b64encode(buf.getvalue()).decode()

def create(url, name, lib="libecho.so", module="echo", handler="Handler"):
    call(url, "POST", "/v2/p/fgs/functions", {
        "func_name": name, "package": "default", "runtime": "Rust1.x", "handler": f"{module}.{handler}",
        "memory_size": 256, "timeout": 30, "code_type": "zip", "func_code": {"file": zip_of(lib, module)}})

def invoke_path(name):
    return f"/v2/p/fgs/functions/urn:fss:local:p:function:default:{name}:latest/invocations"

def wrk(url, name):
    lua = f"{work}/post.lua"
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = string.rep("x", 1024)\n')
    r = subprocess.run(["wrk", "-t2", "-c32", f"-d{DURATION}s", "-s", lua, url + invoke_path(name)],
                       capture_output=True, text=True, check=True).stdout
    line = next(l for l in r.splitlines() if l.startswith("Requests/sec"))
    return float(line.split()[1])

db = "fnhost_bench_" + uuid.uuid4().hex
psql(ADMIN, f"CREATE DATABASE {db}")
db_url = ADMIN.rsplit("/", 1)[0] + "/" + db
try:
    # 1. One node on SQLite, one on PostgreSQL: the same echo function.
    sqlite = start("sqlite")
    pg = start("pg", "--database-url", db_url, "--package-store", f"file://{work}/bucket")
    for url in (sqlite, pg):
        create(url, "echo")
        call(url, "POST", invoke_path("echo"), b"x")
    ratios, rates = [], {"sqlite": [], "pg": []}
    for r in range(ROUNDS):
        order = [("sqlite", sqlite), ("pg", pg)] if r % 2 == 0 else [("pg", pg), ("sqlite", sqlite)]
        got = {n: wrk(u, "echo") for n, u in order}
        for n in got:
            rates[n].append(got[n])
        ratios.append(got["pg"] / got["sqlite"])
    print(f"\nsync invocations/s, one node ({ROUNDS} interleaved rounds of {DURATION} s, wrk -t2 -c32, echo 1 KiB)")
    print("| store | median req/s | range |")
    print("|---|---|---|")
    for n in ("sqlite", "pg"):
        print(f"| {n} | {statistics.median(rates[n]):.0f} | {min(rates[n]):.0f}-{max(rates[n]):.0f} |")
    print(f"PostgreSQL / SQLite: median {statistics.median(ratios):.3f}x (per-round {min(ratios):.3f}-{max(ratios):.3f}x)")
    for p in procs:
        p.send_signal(signal.SIGKILL)
    procs.clear()

    # 2. Create-to-serving-everywhere across three nodes.
    psql(db_url, "DELETE FROM functions; DELETE FROM versions; DELETE FROM aliases; DELETE FROM triggers")
    nodes = [start(f"n{i}", "--database-url", db_url, "--package-store", f"file://{work}/bucket") for i in range(3)]
    spreads = []
    for i in range(10):
        name = f"f{i}"
        t0 = time.perf_counter()
        create(nodes[0], name)
        done = {}
        while len(done) < 3:
            for j, url in enumerate(nodes):
                if j in done:
                    continue
                try:
                    call(url, "POST", invoke_path(name), b"x")
                    done[j] = time.perf_counter() - t0
                except urllib.error.HTTPError:
                    pass
            time.sleep(0.002)
        spreads.append(max(done.values()) * 1000)
    print(f"\ncreate-to-serving-everywhere, 3 nodes, 10 functions: median {statistics.median(spreads):.1f} ms "
          f"(range {min(spreads):.1f}-{max(spreads):.1f} ms; the create itself included)")

    # 3. Async through PostgreSQL: accept on all three nodes, run everywhere.
    create(nodes[0], "work", "libmisbehaving.so", "misbehaving", "Sleep")
    time.sleep(1)
    from concurrent.futures import ThreadPoolExecutor

    def accept(i):
        req = urllib.request.Request(
            nodes[i % 3] + "/v2/p/fgs/functions/urn:fss:local:p:function:default:work:latest/invocations-async",
            data=b"0", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["request_id"]

    t0 = time.time()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(accept, range(ASYNC)))
    t_accepted = time.time()
    assert len(set(ids)) == ASYNC
    while True:
        out = subprocess.run(["psql", db_url, "-Atc",
                              "SELECT count(*) FILTER (WHERE status = 'SUCCESS') FROM async_invocations"],
                             capture_output=True, text=True, check=True).stdout.strip()
        if int(out) == ASYNC:
            break
        time.sleep(0.05)
    t_done = time.time()
    # The claim's time in ms: its lease ends the function's timeout (30 s)
    # and the grace (5 s) after it. Accept and claim are both this
    # machine's clock.
    gaps = [int(x) for x in subprocess.run(
        ["psql", db_url, "-Atc", "SELECT lease_until_ms - 35000 - accepted_ms FROM async_invocations"],
        capture_output=True, text=True, check=True).stdout.split()]
    gaps.sort()
    print(f"\nasync through PostgreSQL, 3 nodes x 4 workers, {ASYNC} invocations of a no-op handler, "
          "accepted by 8 concurrent clients:")
    print(f"accepted at {ASYNC / (t_accepted - t0):.0f}/s; all SUCCESS {t_done - t0:.2f} s after the first "
          f"accept ({ASYNC / (t_done - t0):.0f}/s end to end)")
    print(f"accept-to-claim: median {statistics.median(gaps):.0f} ms, p90 {gaps[int(len(gaps) * 0.9)]} ms, "
          f"max {gaps[-1]} ms (includes waiting for a free worker while the queue is long)")
    # One at a time, on an idle queue.
    psql(db_url, "DELETE FROM async_invocations")
    for i in range(20):
        accept(i)
        time.sleep(0.05)
    time.sleep(0.5)
    idle = sorted(int(x) for x in subprocess.run(
        ["psql", db_url, "-Atc", "SELECT lease_until_ms - 35000 - accepted_ms FROM async_invocations"],
        capture_output=True, text=True, check=True).stdout.split())
    print(f"accept-to-claim on an idle queue (20 invocations, one at a time): median {statistics.median(idle):.0f} ms, "
          f"max {idle[-1]} ms")
finally:
    for p in procs:
        p.send_signal(signal.SIGKILL)
    psql(ADMIN, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
PY
